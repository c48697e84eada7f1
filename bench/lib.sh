# shellcheck shell=bash
# bench/lib.sh: shell code shared by bench/dhcp.sh and bench/dns.sh, sourced by both with
#   . "$(dirname "$0")/lib.sh"
# Only functions: nothing runs when it is sourced. They use the globals the scripts set (OUT,
# RAW, STATE, PIDS, NETNS, READY_LIMIT_S, STOP_LIMIT_S, SERVER_ADDR, ...), as they did when they
# stood in each script.
# shellcheck disable=SC2034,SC2154  # globals set here are read by the scripts, and the other way round

# ---------------------------------------------------------------------------------------------
# Preconditions

# need_root PROG ARGS: exits 1 unless root.
need_root() {
    if [ "$(id -u)" -ne 0 ]; then
        echo "$1: must run as root (it creates network namespaces); try: sudo $0 $2" >&2
        exit 1
    fi
}

# need_tools PROG "APT PACKAGES" TOOL...: exits 2 naming the missing tools and how to install them.
need_tools() {
    local prog=$1 pkgs=$2 tool; shift 2
    export PATH="$PATH:/usr/sbin:/sbin"
    missing=()
    for tool in "$@"; do
        command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "$prog: missing tools: ${missing[*]}" >&2
        echo "install them with:" >&2
        echo "  apt-get install -y $pkgs" >&2
        exit 2
    fi
}

# CPU placement: the server under test on CPU 0, the load generator on CPU 1, so it never takes
# the server's core and every server gets the same single core. One CPU: no pinning.
pin_cpus() {
    if [ "$(nproc)" -ge 2 ]; then SRV_CPU=(taskset -c 0); GEN_CPU=(taskset -c 1); else SRV_CPU=(); GEN_CPU=(); fi
}

# results_dir KIND: OUT=target/bench/KIND-<time>, RAW and STATE inside it, created; cd there
# (every path is absolute; strays land there); START_S for the run's duration.
results_dir() {
    OUT="$ROOT/target/bench/$1-$(date +%Y%m%d-%H%M%S)"
    RAW="$OUT/raw"; STATE="$OUT/state"
    mkdir -p "$RAW" "$STATE" || exit 1
    cd "$OUT" || exit 1
    START_S=$SECONDS
}

log() { printf '%s\n' "$*" | tee -a "$OUT/report.txt"; }

# ---------------------------------------------------------------------------------------------
# Cleanup: every process we started (by PID) and every namespace we created, on any exit. A
# script may define cleanup_extra, run after the namespaces are gone (its own files, cgroups).

declare -A PIDS=()        # pid -> what
NETNS=()

cleanup() {
    local rc=$?
    trap - EXIT INT TERM HUP
    local pid ns
    for pid in "${!PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
    for ns in "${NETNS[@]}"; do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -TERM "$pid" 2>/dev/null; done
    done
    local deadline=$((SECONDS + 5))
    for pid in "${!PIDS[@]}"; do
        while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null
    done
    for ns in "${NETNS[@]}"; do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
        ip netns del "$ns" 2>/dev/null
    done
    if declare -F cleanup_extra >/dev/null; then cleanup_extra; fi
    exit "$rc"
}

# install_traps PROG: cleanup on every exit; INT, TERM and HUP exit with 128 + the signal.
install_traps() {
    trap cleanup EXIT
    # shellcheck disable=SC2064  # PROG is expanded now, on purpose
    trap "echo; echo \"$1: interrupted, cleaning up\" >&2; exit 130" INT
    trap 'exit 143' TERM
    trap 'exit 129' HUP
}

# Waits for a background pid, interruptibly (a trapped signal makes `wait` return at once).
wait_pid() { wait "$1" 2>/dev/null; local rc=$?; unset "PIDS[$1]"; return $rc; }

# ---------------------------------------------------------------------------------------------
# Namespaces and servers

# make_lan_pair SRV: <tag>-<srv>-s with veth srv0 (SERVER_ADDR) and <tag>-<srv>-c with veth cli0
# (CLIENT_ADDR), joined. The pair is created inside the namespaces, so no interface ever appears
# in the host's namespace.
make_lan_pair() {
    local s="$TAG-$1-s" c="$TAG-$1-c"
    ip netns add "$s" || return 1; NETNS+=("$s")
    ip netns add "$c" || return 1; NETNS+=("$c")
    ip -n "$s" link add srv0 type veth peer name cli0 netns "$c" || return 1
    ip -n "$s" addr add "$SERVER_ADDR/$LAN_PREFIX" dev srv0 &&
    ip -n "$c" addr add "$CLIENT_ADDR/$LAN_PREFIX" dev cli0 &&
    ip -n "$s" link set lo up && ip -n "$c" link set lo up &&
    ip -n "$s" link set srv0 up && ip -n "$c" link set cli0 up
}

# wait_ready SRV PID: polls until ready_probe SRV (the script's) succeeds, with a deadline; fails
# if the server died or never answered.
wait_ready() {
    local srv=$1 pid=$2 deadline=$((SECONDS + READY_LIMIT_S))
    while [ $SECONDS -lt $deadline ]; do
        kill -0 "$pid" 2>/dev/null || return 1
        ready_probe "$srv" && return 0
        sleep 0.2
    done
    return 1
}

stop_server() {
    local pid=$1 deadline=$((SECONDS + STOP_LIMIT_S))
    kill -TERM "$pid" 2>/dev/null
    while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
    wait_pid "$pid"
}

# UDP counters of a namespace: "InDatagrams RcvbufErrors" (the kernel's drops when a server does
# not read its socket fast enough).
udp_counters() {
    ip netns exec "$1" cat /proc/net/snmp 2>/dev/null | awk '$1 == "Udp:" && $2 ~ /^[0-9]+$/ { print $2, $6; exit }'
}

rss_kib() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null || true; }

# build_ours: cargo build --release of the appliance, logged to $RAW/build.log; its status.
build_ours() {
    log "building: cargo build --release -p proximity-appliance (log: $RAW/build.log)"
    CARGO=$(command -v cargo || echo "${HOME:-/root}/.cargo/bin/cargo")
    ( cd "$ROOT" && timeout 1200 "$CARGO" build --release -p proximity-appliance ) >"$RAW/build.log" 2>&1 &
    bpid=$!; PIDS[$bpid]=cargo
    wait_pid "$bpid"
}

# ---------------------------------------------------------------------------------------------
# Machine load

# CPU used by other processes over one second: builds and tests running beside us skew every figure.
# shellcheck disable=SC2207  # /proc/stat's numbers, split on purpose
busy_pct() {
    local a b
    a=($(head -1 /proc/stat)); sleep 1; b=($(head -1 /proc/stat))
    awk -v u=$(( (b[1]+b[2]+b[3]+b[6]+b[7]) - (a[1]+a[2]+a[3]+a[6]+a[7]) )) \
        -v t=$(( (b[1]+b[2]+b[3]+b[4]+b[5]+b[6]+b[7]+b[8]) - (a[1]+a[2]+a[3]+a[4]+a[5]+a[6]+a[7]+a[8]) )) \
        'BEGIN { printf "%.0f", (t > 0) ? 100 * u / t : 0 }'
}

# With --wait-quiet S (WAIT_QUIET), first waits up to S seconds for other processes to use under
# 15% of the CPUs; then warns if they still use more.
wait_quiet() {
    BUSY=$(busy_pct)
    if [ "$BUSY" -gt 15 ] && [ "$WAIT_QUIET" -gt 0 ]; then
        log "waiting up to ${WAIT_QUIET}s for the machine to be quiet (other processes use ${BUSY}% of the CPUs)"
        quiet_deadline=$((SECONDS + WAIT_QUIET))
        while [ "$BUSY" -gt 15 ] && [ $SECONDS -lt $quiet_deadline ]; do sleep 4; BUSY=$(busy_pct); done
    fi
    if [ "$BUSY" -gt 15 ]; then
        log "WARNING: other processes use ${BUSY}% of the CPUs right now: figures will be low and noisy"
        log "         (top: $(ps -eo pcpu=,comm= --sort=-pcpu | head -3 | awk '{ printf "%s %s%%  ", $2, $1 }'))"
    fi
}

# Over the measurements: machine CPU seconds minus those of this script and all it waited for
# (servers, load generator). `times` must run in the script's shell (a $(...) subshell has its
# own account): `times >"$OUT/.times"`, then own_cpu.
machine_cpu() { head -1 /proc/stat | awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f %.2f", ($2+$3+$4+$7+$8) / hz, ($2+$3+$4+$5+$6+$7+$8+$9) / hz }'; }
own_cpu() { awk '{ for (i = 1; i <= NF; i++) { split($i, t, /[ms]/); c += t[1] * 60 + t[2] } } END { printf "%.2f", c }' "$OUT/.times"; }
# others_pct BUSY0 BUSY1 ALL0 ALL1 OWN0 OWN1: % of the machine other processes took in between.
others_pct() {
    awk -v b0="$1" -v b1="$2" -v t0="$3" -v t1="$4" -v o0="$5" -v o1="$6" \
        'BEGIN { t = t1 - t0; x = (t > 0) ? 100 * ((b1 - b0) - (o1 - o0)) / t : 0; if (x < 0) x = 0; printf "%.0f", x }'
}

# ---------------------------------------------------------------------------------------------
# Report

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a !~ /^[0-9.]+$/ || b !~ /^[0-9.]+$/ || b + 0 == 0) print "-"; else printf "%.2f", a / b }'; }

# ---------------------------------------------------------------------------------------------
# CPU caps (dns.sh, proxy.sh): each server in a CPU cgroup of its own whose quota the capped runs
# set (cgroup v1 cpu.cfs_quota_us or v2 cpu.max), with a 10 ms period so a capped server is paused
# for short slices, not for tens of milliseconds. cg_detect finds the controller (nothing when
# CPU_CAP_PCT is 0 or there is none: then no capped runs); the caller keeps CGROUPS (made here)
# to remove on exit, and TAG names the groups.

CG_PERIOD_US=10000
CG_BASE=""; CG_V=""
cg_detect() {
    CG_BASE=""; CG_V=""
    [ "$CPU_CAP_PCT" -gt 0 ] || return 0
    if [ -f /sys/fs/cgroup/cgroup.subtree_control ] && grep -qw cpu /sys/fs/cgroup/cgroup.subtree_control; then
        CG_BASE=/sys/fs/cgroup; CG_V=2
    elif [ -f /sys/fs/cgroup/cpu/cpu.cfs_quota_us ]; then
        CG_BASE=/sys/fs/cgroup/cpu; CG_V=1
    fi
}
cg_dir() { echo "$CG_BASE/$TAG-$1"; }
cg_make() {
    [ -n "$CG_BASE" ] || return 0
    local d; d=$(cg_dir "$1")
    mkdir "$d" || return 1; CGROUPS+=("$d")
    cg_cap "$1" 0
}
cg_cap() {  # cg_cap SERVER PCT (0 = no cap)
    [ -n "$CG_BASE" ] || return 0
    local d quota; d=$(cg_dir "$1"); quota=$(( $2 * CG_PERIOD_US / 100 ))
    if [ "$CG_V" = 1 ]; then
        echo "$CG_PERIOD_US" >"$d/cpu.cfs_period_us" && echo "$([ "$2" -gt 0 ] && echo "$quota" || echo -1)" >"$d/cpu.cfs_quota_us"
    else
        echo "$([ "$2" -gt 0 ] && echo "$quota" || echo max) $CG_PERIOD_US" >"$d/cpu.max"
    fi
}
# The command prefix that puts a server into its cgroup, then execs it (so $! stays the server;
# nginx's worker inherits it). Outside `ip netns exec`, which mounts a sysfs of its own where the
# cgroup mount is not.
cg_enter() {
    if [ -n "$CG_BASE" ]; then printf '%s\0' sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$(cg_dir "$1")"; fi
}
