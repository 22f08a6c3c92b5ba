# shellcheck shell=sh
# Network-namespace harness for integration tests. Source it from a POSIX sh
# test (exit 0 pass, 77 skip, anything else fail):
#
#   . "$(dirname "$0")/lib.sh"
#   netns_require python3          # root, ip, iptables, namespaces (or skip)
#   netns_setup                    # the "internet" namespace "inet"
#   netns_add_nat_lan a eim        # router "a-r" + host "a" on 10.1.0.0/24
#   netns_add_nat_lan s symmetric  # router "s-r" + host "s" on 10.2.0.0/24
#   netns_add_lan_host a a2        # another host "a2" behind router "a-r"
#   netns_exec a some-command ...  # run in host "a"
#   netns_loss a 10                # drop 10 % of what arrives in "a"
#   netns_addr a-r                 # router a's public address
#
# Topology. The internet segment is 100.64.0.0/24 (carrier-grade NAT space,
# never leaves the namespaces): a bridge br0 inside namespace "inet", which
# is also a host at 100.64.0.1 (run the registry and beacon there).
# A NAT LAN number N has a router namespace "NAME-r" with "wan"
# 100.64.0.(10+N) on that bridge and "lan" 10.N.0.1/24, and a host
# namespace "NAME" with "eth0" 10.N.0.2/24, default route via the router;
# netns_add_lan_host adds hosts 10.N.0.3, .4, ... on the same LAN (the
# router's "lan" is a bridge, each host a veth port "hK" of it).
# netns_add_public adds more hosts on the segment at 100.64.0.(100+N).
#
# Every namespace of a run is called "pn<6 hex>-<name>" (NETNS_PREFIX is
# random per run), so parallel runs never clash. Interfaces are created
# directly inside the run's namespaces (never in the root namespace), so
# short fixed names (br0, wan, lan, eth0, lN, pN) cannot clash either, and
# deleting the namespaces removes every veth of the run.
#
# Build the topology from the test's main shell, not inside $(...): the
# builders remember the LANs in shell variables. Everything created is also
# listed in "$NETNS_STATE/namespaces" for netns_cleanup; $NETNS_STATE is a
# scratch directory of the run (all namespaces see the same file system),
# removed by netns_cleanup. The first namespace created installs traps on
# EXIT, INT, TERM and HUP that call netns_cleanup.

PATH=$PATH:/usr/sbin:/sbin
NETNS_TEST_NAME=${NETNS_TEST_NAME:-$(basename "$0" .sh)}
NETNS_DIR=${NETNS_DIR:-$(cd "$(dirname "$0")" && pwd)}
NETNS_IPTABLES=${NETNS_IPTABLES:-iptables}
NETNS_PUBLIC_NET=100.64.0
NETNS_INET_ADDR=$NETNS_PUBLIC_NET.1
NETNS_STATE=""
_netns_lans=0
_netns_publics=0

# A short id from /dev/urandom, falling back to the PID.
_netns_new_id() {
    _nn_id=$(od -An -N3 -tx1 /dev/urandom 2>/dev/null | tr -d ' \n')
    [ ${#_nn_id} = 6 ] || _nn_id=$(printf '%06x' $(($$ % 16777216)))
    printf '%s\n' "$_nn_id"
}
NETNS_ID=${NETNS_ID:-$(_netns_new_id)}
NETNS_PREFIX=pn$NETNS_ID

netns_fail() { # REASON: one FAIL line, exit 1
    printf '%s: FAIL: %s\n' "$NETNS_TEST_NAME" "$*" >&2
    exit 1
}

netns_skip() { # REASON: skip (exit 77), but fail under CI=true
    if [ "${CI:-}" = true ]; then netns_fail "cannot run under CI=true: $*"; fi
    printf '%s: SKIP: %s\n' "$NETNS_TEST_NAME" "$*" >&2
    exit 77
}

netns_log() { # MESSAGE: progress on stderr when NETNS_VERBOSE is set
    [ -z "${NETNS_VERBOSE:-}" ] || printf '%s: %s\n' "$NETNS_TEST_NAME" "$*" >&2
}

# _netns_need_pkg COMMAND PACKAGE: installs PACKAGE with apt-get, only when
# dpkg -s says it is not installed, then requires COMMAND.
_netns_need_pkg() {
    if ! command -v "$1" >/dev/null 2>&1 && ! dpkg -s "$2" >/dev/null 2>&1; then
        command -v apt-get >/dev/null 2>&1 || netns_skip "needs $1 (package $2) and there is no apt-get"
        _nn_log=$(mktemp "${TMPDIR:-/tmp}/netns-apt.XXXXXX")
        printf '%s: installing %s with apt-get\n' "$NETNS_TEST_NAME" "$2" >&2
        # Maybe the package lists are stale or empty: then update once, retry once.
        if ! _netns_apt_install "$2" >"$_nn_log" 2>&1; then
            timeout 300 apt-get -q -o DPkg::Lock::Timeout=120 update >>"$_nn_log" 2>&1 || true
            if ! _netns_apt_install "$2" >>"$_nn_log" 2>&1; then
                _nn_why=$(grep -E '^E:' "$_nn_log" | tail -n 1)
                rm -f "$_nn_log"
                netns_skip "needs $1: apt-get install $2 failed${_nn_why:+ ($_nn_why)}"
            fi
        fi
        rm -f "$_nn_log"
    fi
    command -v "$1" >/dev/null 2>&1 || netns_skip "needs $1 (package $2)"
}

_netns_apt_install() { # PACKAGE
    DEBIAN_FRONTEND=noninteractive timeout 300 apt-get -q -y -o DPkg::Lock::Timeout=120 \
        install --no-install-recommends "$1"
}

# _netns_register NAME: notes namespace NAME of this run for netns_cleanup
# before it exists. The first call picks a prefix no existing namespace uses, creates
# the state directory and installs the traps (EXIT, INT, TERM, HUP) that run
# netns_cleanup. A test that sets its own EXIT trap afterwards must call
# netns_cleanup from it.
_netns_register() {
    if [ -z "$NETNS_STATE" ]; then
        for _nn_try in 1 2 3 4 5; do
            [ -n "$(netns_list)" ] || break
            NETNS_ID=$(_netns_new_id)
            NETNS_PREFIX=pn$NETNS_ID
        done
        NETNS_STATE=$(mktemp -d "${TMPDIR:-/tmp}/netns-$NETNS_PREFIX.XXXXXX") ||
            netns_fail "cannot create a state directory"
        trap 'netns_cleanup' EXIT
        trap 'netns_cleanup; trap - EXIT; exit 130' INT
        trap 'netns_cleanup; trap - EXIT; exit 143' TERM HUP
    fi
    netns_ns "$1" >>"$NETNS_STATE/namespaces"
}

# netns_require [COMMAND...]: root, ip, iptables (installed when missing),
# namespaces, veths, NAT and the statistic match inside a namespace, and any
# extra COMMANDs. Skips (exit 77) with the reason, or fails under CI=true.
netns_require() {
    [ "$(id -u)" = 0 ] || netns_skip "needs root (ip netns)"
    _netns_need_pkg ip iproute2
    _netns_need_pkg iptables iptables
    for _nn_cmd in "$@"; do
        command -v "$_nn_cmd" >/dev/null 2>&1 || netns_skip "needs $_nn_cmd"
    done
    _netns_register probe
    _nn_probe=$(netns_ns probe)
    _nn_err=$(ip netns add "$_nn_probe" 2>&1) || netns_skip "cannot create a network namespace: $_nn_err"
    _nn_ok=no
    if _nn_err=$(ip -n "$_nn_probe" link add v0 type veth peer name v1 2>&1); then
        # Debian's iptables uses nf_tables; fall back to the legacy backend.
        for _nn_ipt in "$NETNS_IPTABLES" iptables-legacy; do
            if ip netns exec "$_nn_probe" "$_nn_ipt" -w -t nat -A POSTROUTING -o v0 -j MASQUERADE >/dev/null 2>&1 &&
                ip netns exec "$_nn_probe" "$_nn_ipt" -w -t raw -A PREROUTING -m statistic --mode random --probability 0.5 -j DROP >/dev/null 2>&1; then
                NETNS_IPTABLES=$_nn_ipt
                _nn_ok=yes
                break
            fi
        done
        [ $_nn_ok = yes ] || _nn_err="iptables MASQUERADE or '-m statistic' does not work inside a namespace"
    else
        _nn_err="cannot create a veth pair: $_nn_err"
    fi
    ip netns del "$_nn_probe" 2>/dev/null
    [ $_nn_ok = yes ] || netns_skip "$_nn_err"
}

# netns_ns NAME: the full namespace name of host/router NAME of this run.
netns_ns() {
    printf '%s-%s\n' "$NETNS_PREFIX" "$1"
}

# netns_exec NAME CMD...: runs CMD inside namespace NAME.
netns_exec() {
    _nn_ns=$(netns_ns "$1")
    shift
    ip netns exec "$_nn_ns" "$@"
}

# netns_addr NAME: the IPv4 address of host NAME ("inet", a LAN host, a
# router "LAN-r" (its public address) or a public host).
netns_addr() {
    _nn_key=$(printf '%s' "$1" | tr -- - _)
    eval "_nn_a=\${_netns_addr_$_nn_key:-}"
    # shellcheck disable=SC2154 # set by the eval above
    [ -n "$_nn_a" ] || netns_fail "netns_addr: no host called '$1' in this run"
    printf '%s\n' "$_nn_a"
}

_netns_set_addr() { # NAME ADDRESS
    _nn_key=$(printf '%s' "$1" | tr -- - _)
    eval "_netns_addr_$_nn_key=\$2"
}

_netns_ipt() { # NAME IPTABLES-ARGS...
    _nn_ns=$(netns_ns "$1")
    shift
    ip netns exec "$_nn_ns" "$NETNS_IPTABLES" -w "$@"
}

# _netns_run WHAT CMD...: runs CMD, fails the test with its error if it fails.
_netns_run() {
    _nn_what=$1
    shift
    _nn_err=$("$@" 2>&1) || netns_fail "$_nn_what: $* : $_nn_err"
}

# _netns_add_ns NAME FORWARD: creates namespace NAME with lo up and
# IPv4 forwarding FORWARD (0/1; a new namespace may inherit the root's).
_netns_add_ns() {
    _netns_register "$1"
    _nn_ns=$(netns_ns "$1")
    _netns_run "create namespace $1" ip netns add "$_nn_ns"
    _netns_run "lo up in $1" ip -n "$_nn_ns" link set lo up
    _netns_run "forwarding in $1" ip netns exec "$_nn_ns" sysctl -q -w net.ipv4.ip_forward="$2"
}

_netns_check_name() { # NAME
    case $1 in
        inet | *-r | *[!a-z0-9]* | [!a-z]*) netns_fail "bad host name '$1' (want [a-z][a-z0-9]*, not inet, at most 8 chars)" ;;
    esac
    [ ${#1} -le 8 ] || netns_fail "host name '$1' is longer than 8 chars"
    _nn_key=$(printf '%s' "$1" | tr -- - _)
    eval "_nn_used=\${_netns_addr_$_nn_key:-}"
    # shellcheck disable=SC2154 # set by the eval above
    [ -z "$_nn_used" ] || netns_fail "host name '$1' is already used in this run"
}

# netns_setup: the "inet" namespace (bridge br0, host 100.64.0.1/24). Call
# once, after netns_require; the first namespace installs the cleanup traps.
netns_setup() {
    [ -z "${_netns_addr_inet:-}" ] || netns_fail "netns_setup called twice"
    _netns_add_ns inet 0
    _nn_ns=$(netns_ns inet)
    _netns_run "bridge in inet" ip -n "$_nn_ns" link add br0 type bridge
    # A plain switch: do not pass bridged frames through inet's iptables/conntrack.
    ip netns exec "$_nn_ns" sysctl -q -w net.bridge.bridge-nf-call-iptables=0 >/dev/null 2>&1 || true
    _netns_run "address of inet" ip -n "$_nn_ns" addr add "$NETNS_INET_ADDR/24" dev br0
    _netns_run "br0 up" ip -n "$_nn_ns" link set br0 up
    _netns_set_addr inet "$NETNS_INET_ADDR"
}

# _netns_plug NAME PORT IFACE ADDR: a veth from inet's bridge (port PORT) to
# namespace NAME (interface IFACE with ADDR/24 on the public segment).
_netns_plug() {
    _nn_inet=$(netns_ns inet)
    _nn_ns=$(netns_ns "$1")
    _netns_run "veth inet-$1" ip link add "$2" netns "$_nn_inet" type veth peer name "$3" netns "$_nn_ns"
    _netns_run "bridge port $2" ip -n "$_nn_inet" link set "$2" master br0 up
    _netns_run "address of $1" ip -n "$_nn_ns" addr add "$4/24" dev "$3"
    _netns_run "$3 up in $1" ip -n "$_nn_ns" link set "$3" up
}

# netns_add_public NAME: another host on the internet segment, no NAT
# (100.64.0.(100+N)), e.g. a second server to compare NAT mappings.
netns_add_public() {
    [ -n "${_netns_addr_inet:-}" ] || netns_fail "call netns_setup before netns_add_public"
    _netns_check_name "$1"
    _netns_publics=$((_netns_publics + 1))
    [ $_netns_publics -le 100 ] || netns_fail "too many public hosts"
    _nn_a=$NETNS_PUBLIC_NET.$((100 + _netns_publics))
    _netns_add_ns "$1" 0
    _netns_plug "$1" "p$_netns_publics" eth0 "$_nn_a"
    _netns_set_addr "$1" "$_nn_a"
}

# netns_add_nat_lan NAME KIND: router namespace NAME-r (public address on
# the internet segment, forwarding on) and host namespace NAME behind it on
# 10.N.0.0/24. KIND: eim = MASQUERADE (keeps the source port: endpoint-
# independent mapping), symmetric = MASQUERADE --random-fully (a new port
# per destination). Both behave like home routers: INPUT policy DROP with
# ESTABLISHED,RELATED accepted, unsolicited forwarded packets dropped.
netns_add_nat_lan() {
    [ -n "${_netns_addr_inet:-}" ] || netns_fail "call netns_setup before netns_add_nat_lan"
    [ $# = 2 ] || netns_fail "usage: netns_add_nat_lan NAME eim|symmetric"
    _netns_check_name "$1"
    case $2 in
        eim) _nn_masq="" ;;
        symmetric) _nn_masq="--random-fully" ;;
        *) netns_fail "netns_add_nat_lan: KIND must be eim or symmetric, not '$2'" ;;
    esac
    _netns_lans=$((_netns_lans + 1))
    [ $_netns_lans -le 80 ] || netns_fail "too many NAT LANs"
    _nn_n=$_netns_lans
    _nn_name=$1
    _nn_router=$_nn_name-r
    _nn_pub=$NETNS_PUBLIC_NET.$((10 + _nn_n))
    _netns_add_ns "$_nn_router" 1
    _netns_plug "$_nn_router" "l$_nn_n" wan "$_nn_pub"
    _nn_r=$(netns_ns "$_nn_router")
    _netns_run "lan bridge" ip -n "$_nn_r" link add lan type bridge
    ip netns exec "$_nn_r" sysctl -q -w net.bridge.bridge-nf-call-iptables=0 >/dev/null 2>&1 || true
    _netns_run "lan address" ip -n "$_nn_r" addr add "10.$_nn_n.0.1/24" dev lan
    _netns_run "lan up" ip -n "$_nn_r" link set lan up
    eval "_netns_lan_$_nn_name=$_nn_n; _netns_hosts_$_nn_name=0"
    _netns_lan_plug "$_nn_name" "$_nn_name"
    # shellcheck disable=SC2086 # $_nn_masq is empty or one word
    _netns_run "NAT ($2)" _netns_ipt "$_nn_router" -t nat -A POSTROUTING -o wan -j MASQUERADE $_nn_masq
    _netns_run "INPUT lo" _netns_ipt "$_nn_router" -A INPUT -i lo -j ACCEPT
    _netns_run "INPUT lan" _netns_ipt "$_nn_router" -A INPUT -i lan -j ACCEPT
    _netns_run "INPUT established" _netns_ipt "$_nn_router" -A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
    _netns_run "INPUT policy" _netns_ipt "$_nn_router" -P INPUT DROP
    _netns_run "FORWARD established" _netns_ipt "$_nn_router" -A FORWARD -i wan -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
    _netns_run "FORWARD drop" _netns_ipt "$_nn_router" -A FORWARD -i wan -j DROP
    _netns_set_addr "$_nn_router" "$_nn_pub"
    eval "_netns_kind_$_nn_name=\$2"
}

# netns_add_lan_host LAN NAME: one more host namespace NAME behind LAN's
# router, at the LAN's next address (10.N.0.3 for the second host).
netns_add_lan_host() {
    [ $# = 2 ] || netns_fail "usage: netns_add_lan_host LAN NAME"
    eval "_nn_n=\${_netns_lan_$1:-}"
    [ -n "$_nn_n" ] || netns_fail "netns_add_lan_host: no NAT LAN called '$1' in this run"
    _netns_check_name "$2"
    _netns_lan_plug "$1" "$2"
    eval "_nn_kind=\$_netns_kind_$1"
    eval "_netns_kind_$2=\$_nn_kind"
}

# _netns_lan_plug LAN NAME: host namespace NAME with eth0 at LAN's next
# address, a port of the router's lan bridge, default route via the router.
_netns_lan_plug() {
    eval "_nn_n=\$_netns_lan_$1; _nn_k=\$((_netns_hosts_$1 + 1)); _netns_hosts_$1=\$_nn_k"
    # shellcheck disable=SC2154 # _nn_k is set by the eval above
    [ "$_nn_k" -le 200 ] || netns_fail "too many hosts on LAN $1"
    _nn_r=$(netns_ns "$1-r")
    _netns_add_ns "$2" 0
    _nn_h=$(netns_ns "$2")
    _nn_a=10.$_nn_n.0.$((_nn_k + 1))
    _netns_run "veth $1-r-$2" ip link add "h$_nn_k" netns "$_nn_r" type veth peer name eth0 netns "$_nn_h"
    _netns_run "lan port h$_nn_k" ip -n "$_nn_r" link set "h$_nn_k" master lan up
    _netns_run "host address" ip -n "$_nn_h" addr add "$_nn_a/24" dev eth0
    _netns_run "eth0 up" ip -n "$_nn_h" link set eth0 up
    _netns_run "default route" ip -n "$_nn_h" route add default via "10.$_nn_n.0.1"
    _netns_set_addr "$2" "$_nn_a"
}

# netns_loss NAME PERCENT [in|out|both]: drops PERCENT % (0-100, decimals
# allowed) of the packets arriving on (in, the default), leaving from (out)
# or both on every interface of namespace NAME but lo, forwarded ones too,
# with iptables -m statistic (this kernel has no netem). Replaces any
# earlier loss of that direction; PERCENT 0 removes it.
netns_loss() {
    [ $# -ge 2 ] || netns_fail "usage: netns_loss NAME PERCENT [in|out|both]"
    _nn_p=$(awk -v p="$2" 'BEGIN { if (p !~ /^[0-9]+(\.[0-9]+)?$/ || p + 0 > 100) exit 1; printf "%.6f", p / 100 }') ||
        netns_fail "netns_loss: PERCENT must be 0-100, not '$2'"
    case ${3:-in} in
        in) _netns_loss_dir "$1" "$_nn_p" - ;;
        out) _netns_loss_dir "$1" - "$_nn_p" ;;
        both) _netns_loss_dir "$1" "$_nn_p" "$_nn_p" ;;
        *) netns_fail "netns_loss: direction must be in, out or both, not '$3'" ;;
    esac
}

# _netns_loss_dir NAME P-IN P-OUT: incoming loss in raw PREROUTING (before
# conntrack sees the packet), outgoing in mangle POSTROUTING (local and
# forwarded), each in its own chain that is flushed first; "-" leaves a
# direction as it is.
_netns_loss_dir() {
    for _nn_spec in "NETNS_LOSS_IN raw PREROUTING -i $2" "NETNS_LOSS_OUT mangle POSTROUTING -o $3"; do
        # shellcheck disable=SC2086 # five words
        set -- "$1" "$2" "$3" $_nn_spec
        [ "$8" != - ] || continue
        if ! _netns_ipt "$1" -t "$5" -F "$4" >/dev/null 2>&1; then
            _netns_run "loss chain $4" _netns_ipt "$1" -t "$5" -N "$4"
            _netns_run "loss jump $4" _netns_ipt "$1" -t "$5" -A "$6" ! "$7" lo -j "$4"
        fi
        [ "$8" = 0.000000 ] ||
            _netns_run "loss rule $4" _netns_ipt "$1" -t "$5" -A "$4" -m statistic --mode random --probability "$8" -j DROP
    done
}

# netns_wait_file SECONDS FILE: waits (polling, bounded) until FILE is non-empty.
netns_wait_file() {
    _nn_i=$(($1 * 20))
    while [ "$_nn_i" -gt 0 ]; do
        [ -s "$2" ] && return 0
        sleep 0.05
        _nn_i=$((_nn_i - 1))
    done
    return 1
}

# netns_list: the namespaces of this run that exist now, one a line.
netns_list() {
    ip netns list 2>/dev/null | awk -v p="$NETNS_PREFIX-" 'index($1, p) == 1 { print $1 }'
}

# netns_cleanup: kills what still runs inside this run's namespaces, then
# deletes them (which deletes their veths). Touches nothing of other runs;
# safe to call twice; installed as the EXIT trap by netns_setup.
netns_cleanup() {
    case $- in *e*) _nn_e=-e ;; *) _nn_e=+e ;; esac
    set +e
    _nn_nss=$( { [ -z "$NETNS_STATE" ] || cat "$NETNS_STATE/namespaces"; netns_list; } 2>/dev/null | sort -u)
    _nn_live=""
    for _nn_ns in $_nn_nss; do
        case $_nn_ns in "$NETNS_PREFIX"-*) ;; *) continue ;; esac
        [ -e "/run/netns/$_nn_ns" ] && _nn_live="$_nn_live $_nn_ns"
    done
    # Processes still inside would keep a namespace (and its veths) alive
    # after "ip netns del": TERM them, wait up to 1 s, then KILL.
    for _nn_sig in TERM 0 0 0 0 0 0 0 0 0 0 KILL; do
        _nn_pids=""
        for _nn_ns in $_nn_live; do
            _nn_pids="$_nn_pids $(ip netns pids "$_nn_ns" 2>/dev/null | tr '\n' ' ')"
        done
        [ -n "$(printf '%s' "$_nn_pids" | tr -d ' ')" ] || break
        if [ "$_nn_sig" = 0 ]; then
            sleep 0.1
        else
            # shellcheck disable=SC2086 # one PID a word
            kill -s "$_nn_sig" $_nn_pids 2>/dev/null
        fi
    done
    for _nn_ns in $_nn_live; do
        ip netns del "$_nn_ns" 2>/dev/null ||
            printf '%s: warning: could not delete namespace %s\n' "$NETNS_TEST_NAME" "$_nn_ns" >&2
    done
    [ -z "$NETNS_STATE" ] || rm -rf "$NETNS_STATE"
    NETNS_STATE=""
    set "$_nn_e"
    return 0
}
