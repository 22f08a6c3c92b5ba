#!/bin/sh
# Install the pilot binary and its role links.
#
#   ./install.sh --from ./pilot                     # from a local file (air-gapped hosts)
#   curl -fsSL "$URL/install.sh" | PILOT_DOWNLOAD_URL="$URL" sh
#   ./install.sh --from ./pilot --systemd agent     # also write a hardened unit
#   ./install.sh --uninstall                        # remove exactly what was installed
#
# Options: --from FILE, --prefix DIR (default /usr/local, or $PREFIX),
# --sha256 HEX (or $PILOT_SHA256), --systemd ROLE (repeatable),
# --unit-dir DIR (default /etc/systemd/system), --uninstall, --help.
# Installing again is safe: the binary is replaced atomically and the
# record of installed files (PREFIX/share/pilot/install-manifest) is kept.
set -eu

PREFIX=${PREFIX:-/usr/local}
FROM=""
SHA256=${PILOT_SHA256:-}
UNIT_DIR=${PILOT_UNIT_DIR:-/etc/systemd/system}
ROLES=""
UNINSTALL=0

say() { printf '%s\n' "$*"; }
die() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }

usage() {
    sed -n '2,15p' "$0" 2>/dev/null | sed 's/^# \{0,1\}//' || true
}

need_value() {
    if [ $# -lt 2 ] || [ -z "$2" ]; then die "option $1 needs a value (see --help)"; fi
}

while [ $# -gt 0 ]; do
    case "$1" in
        --from) need_value "$@"; FROM=$2; shift 2 ;;
        --from=*) FROM=${1#*=}; shift ;;
        --prefix) need_value "$@"; PREFIX=$2; shift 2 ;;
        --prefix=*) PREFIX=${1#*=}; shift ;;
        --sha256) need_value "$@"; SHA256=$2; shift 2 ;;
        --sha256=*) SHA256=${1#*=}; shift ;;
        --systemd) need_value "$@"; ROLES="$ROLES $2"; shift 2 ;;
        --systemd=*) ROLES="$ROLES ${1#*=}"; shift ;;
        --unit-dir) need_value "$@"; UNIT_DIR=$2; shift 2 ;;
        --unit-dir=*) UNIT_DIR=${1#*=}; shift ;;
        --uninstall) UNINSTALL=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown option '$1' (see --help)" ;;
    esac
done

case "$PREFIX" in
    /*) ;;
    *) PREFIX="$(pwd)/$PREFIX" ;;
esac
BIN_DIR="$PREFIX/bin"
SHARE_DIR="$PREFIX/share/pilot"
MANIFEST="$SHARE_DIR/install-manifest"

# The manifest holds one "KIND PATH" a line: dir (created by us), file, link.
record() {
    grep -qxF "$1 $2" "$MANIFEST" 2>/dev/null || printf '%s %s\n' "$1" "$2" >> "$MANIFEST"
}

# mkdir -p that remembers which directories it created, so uninstall can
# remove those (when empty) and nothing else.
CREATED_DIRS=""
make_dir() {
    case "$1" in /*) ;; *) die "internal error: relative path $1" ;; esac
    path=""
    rest=${1#/}
    while [ -n "$rest" ]; do
        part=${rest%%/*}
        case "$rest" in */*) rest=${rest#*/} ;; *) rest="" ;; esac
        [ -n "$part" ] || continue
        path="$path/$part"
        if [ ! -d "$path" ]; then
            [ ! -e "$path" ] || die "$path exists and is not a directory"
            mkdir "$path" || die "cannot create directory $path"
            CREATED_DIRS="$CREATED_DIRS $path"
        fi
    done
}

sha256_of() {
    if command -v sha256sum >/dev/null 2>&1; then sha256sum "$1" | cut -d' ' -f1
    elif command -v shasum >/dev/null 2>&1; then shasum -a 256 "$1" | cut -d' ' -f1
    else die "neither sha256sum nor shasum is available to verify the checksum"
    fi
}

fetch() { # URL DEST
    if command -v curl >/dev/null 2>&1; then curl -fsSL -o "$2" "$1"
    elif command -v wget >/dev/null 2>&1; then wget -q -O "$2" "$1"
    else die "neither curl nor wget is available; download pilot yourself and use --from FILE"
    fi
}

uninstall() {
    [ -f "$MANIFEST" ] || die "nothing to uninstall: $MANIFEST does not exist"
    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
        grep '^unit ' "$MANIFEST" | while read -r _ unit; do
            systemctl disable --now "$(basename "$unit")" >/dev/null 2>&1 || true
        done
    fi
    grep -E '^(file|link|unit) ' "$MANIFEST" | while read -r _ path; do
        rm -f "$path" && say "removed $path"
    done
    dirs=$(grep '^dir ' "$MANIFEST" | cut -d' ' -f2- | sort -r)
    rm -f "$MANIFEST"
    for dir in $dirs; do
        rmdir "$dir" 2>/dev/null || say "kept $dir (not empty)"
    done
    say "pilot uninstalled from $PREFIX"
}

write_unit() { # ROLE
    role=$1
    printf '%s\n' "$LINKS" | grep -qx "pilot-$role" || die "unknown role '$role' for --systemd; roles: $(printf '%s' "$LINKS" | sed -n 's/^pilot-//p' | tr '\n' ' ')"
    state="pilot-$role"
    [ "$role" = agent ] && state="pilot" # the host's node lives where the CLI looks first
    make_dir "$UNIT_DIR"
    unit="$UNIT_DIR/pilot-$role.service"
    cat > "$unit.tmp" <<UNIT
[Unit]
Description=Pilot $role
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
ExecStartPre=$BIN_DIR/pilot init --state-dir /var/lib/$state
ExecStart=$BIN_DIR/pilot-$role --state-dir /var/lib/$state
Restart=on-failure
RestartSec=5s
# pilot stops gracefully on SIGTERM within 10 s (spools, logs and
# subscribers committed), or exits 1 naming what did not finish.
KillSignal=SIGTERM
TimeoutStopSec=15s
StateDirectory=$state
StateDirectoryMode=0700
UMask=0077
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=read-only
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectControlGroups=yes
RestrictSUIDSGID=yes
RestrictRealtime=yes
LockPersonality=yes
SystemCallArchitectures=native

[Install]
WantedBy=multi-user.target
UNIT
    mv -f "$unit.tmp" "$unit"
    UNITS="$UNITS $unit"
    say "wrote $unit (start it with: systemctl enable --now pilot-$role)"
}

if [ "$UNINSTALL" = 1 ]; then
    uninstall
    exit 0
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/pilot-install.XXXXXX") || die "cannot create a temporary directory"
trap 'rm -rf "$WORK"' EXIT INT TERM

if [ -n "$FROM" ]; then
    [ -f "$FROM" ] || die "--from $FROM: no such file"
    cp "$FROM" "$WORK/pilot" || die "cannot read $FROM"
else
    [ -n "${PILOT_DOWNLOAD_URL:-}" ] || die "give --from FILE, or set PILOT_DOWNLOAD_URL to where pilot is published"
    arch=$(uname -m)
    url="${PILOT_DOWNLOAD_URL%/}/pilot-linux-$arch"
    say "downloading $url"
    fetch "$url" "$WORK/pilot" || die "download of $url failed"
    if [ -z "$SHA256" ] && fetch "$url.sha256" "$WORK/pilot.sha256" 2>/dev/null; then
        SHA256=$(cut -d' ' -f1 < "$WORK/pilot.sha256")
    fi
fi

if [ -n "$SHA256" ]; then
    actual=$(sha256_of "$WORK/pilot")
    [ "$actual" = "$SHA256" ] || die "checksum mismatch: expected $SHA256, got $actual; nothing was installed"
    say "sha256 verified: $actual"
else
    say "note: no sha256 given (--sha256 or PILOT_SHA256), so the binary was not verified"
fi

chmod 755 "$WORK/pilot"
# The binary itself says which role links it answers to; this also proves it runs here.
LINKS=$("$WORK/pilot" links 2>/dev/null) || die "the binary does not run on this machine ($(uname -m)); is it the right architecture?"

make_dir "$BIN_DIR"
make_dir "$SHARE_DIR"
for dir in $CREATED_DIRS; do record dir "$dir"; done
CREATED_DIRS=""

cp "$WORK/pilot" "$BIN_DIR/.pilot.new.$$"
mv -f "$BIN_DIR/.pilot.new.$$" "$BIN_DIR/pilot"
record file "$BIN_DIR/pilot"
for link in $LINKS; do
    ln -sfn pilot "$BIN_DIR/$link"
    record link "$BIN_DIR/$link"
done
say "installed $BIN_DIR/pilot and links: $(printf '%s' "$LINKS" | tr '\n' ' ')"

UNITS=""
for role in $ROLES; do write_unit "$role"; done
for dir in $CREATED_DIRS; do record dir "$dir"; done
for unit in $UNITS; do record unit "$unit"; done
if [ -n "$UNITS" ] && command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl daemon-reload || true
fi
"$BIN_DIR/pilot" version | head -n 1
