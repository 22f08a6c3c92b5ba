#!/bin/sh
# Builds the OCI image that Containerfile describes, without a container
# engine: umoci lays out an empty image, this script carries out the
# Containerfile's directives (FROM scratch, COPY, ENV, VOLUME, ENTRYPOINT,
# CMD; nothing else is accepted), and the layout is written as a tarball.
#
#   packaging/build-image.sh CONTAINERFILE CONTEXT_DIR OUTPUT.tar [TAG]
set -eu

die() { printf 'build-image: %s\n' "$*" >&2; exit 1; }

[ $# -ge 3 ] || die "usage: build-image.sh CONTAINERFILE CONTEXT_DIR OUTPUT.tar [TAG]"
containerfile=$1
context=$2
output=$3
tag=${4:-latest}
command -v umoci >/dev/null 2>&1 || die "umoci is not installed (apt-get install umoci)"
[ -f "$containerfile" ] || die "$containerfile: no such file"

work=$(mktemp -d "${TMPDIR:-/tmp}/pilot-image.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
layout="$work/oci"
image="$layout:$tag"
umoci init --layout "$layout"
umoci new --image "$image"
umoci unpack --image "$image" "$work/bundle" >/dev/null
rootfs="$work/bundle/rootfs"

# JSON exec form ["a", "b"] to one --config.FLAG=ITEM argument per element.
exec_form() { # FLAG JSON
    list=$(printf '%s' "$2" | sed -e 's/^[[:space:]]*\[//' -e 's/\][[:space:]]*$//')
    printf '%s\n' "$list" | tr ',' '\n' | sed -e 's/^[[:space:]]*"//' -e 's/"[[:space:]]*$//' |
        while IFS= read -r item; do printf -- '--config.%s=%s\n' "$1" "$item"; done
}

config_args="$work/config-args"
: > "$config_args"
line_number=0
while IFS= read -r line || [ -n "$line" ]; do
    line_number=$((line_number + 1))
    case "$line" in ''|'#'*) continue ;; esac
    directive=${line%% *}
    rest=${line#* }
    case "$directive" in
        FROM) [ "$rest" = scratch ] || die "$containerfile:$line_number: only FROM scratch is supported" ;;
        COPY)
            src=${rest%% *}
            dst=${rest#* }
            [ -f "$context/$src" ] || die "$containerfile:$line_number: $context/$src does not exist"
            mkdir -p "$rootfs$(dirname "$dst")"
            cp "$context/$src" "$rootfs$dst"
            ;;
        ENV) printf -- '--config.env=%s\n' "$rest" >> "$config_args" ;;
        VOLUME) printf -- '--config.volume=%s\n' "$rest" >> "$config_args" ;;
        ENTRYPOINT) exec_form entrypoint "$rest" >> "$config_args" ;;
        CMD) exec_form cmd "$rest" >> "$config_args" ;;
        *) die "$containerfile:$line_number: unsupported directive $directive" ;;
    esac
done < "$containerfile"

umoci repack --image "$image" "$work/bundle" >/dev/null
# One argument a line, so values keep their spaces.
set --
while IFS= read -r arg; do set -- "$@" "$arg"; done < "$config_args"
umoci config --image "$image" "$@"
umoci gc --layout "$layout"
tar -C "$layout" -cf "$output.tmp" . && mv -f "$output.tmp" "$output"
printf 'built OCI image %s (tag %s)\n' "$output" "$tag"
