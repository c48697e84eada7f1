#!/usr/bin/env bash
# bench/dhcp.sh: DHCPv4 benchmark of proximity-appliance against dnsmasq and kea-dhcp4, with
# perfdhcp, in the same run on this machine. Each server gets its own pair of network
# namespaces (server ns + client ns joined by a veth pair); no packet leaves them.
#
# For every server it finds the highest DORA rate (new client per exchange, so one new lease
# per exchange) with under 1% failed exchanges, and reports latency and RSS at that rate, then
# the ratios ours/dnsmasq and ours/kea. See bench/README.md for how to read the output.
#
# Usage: sudo bench/dhcp.sh [--quick] [--no-build] [--servers ours,dnsmasq,kea] [--keep-state]
set -uo pipefail

# ---------------------------------------------------------------------------------------------
# Settings (named, so the README can refer to them)

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OURS_BIN="$ROOT/target/release/proximity-appliance"

LAN_PREFIX=16                          # a big LAN so a step never runs out of addresses
SERVER_ADDR=10.20.0.1
CLIENT_ADDR=10.20.0.2                  # perfdhcp's address = giaddr of its relayed packets
POOL_FIRST=10.20.0.100
POOL_LAST=10.20.255.250
POOL_SIZE=65379                        # addresses in POOL_FIRST..POOL_LAST
RESERVED="10.20.0.2-10.20.0.99"
LEASE_SECS=3600
MAX_EXCHANGES=$((POOL_SIZE * 7 / 10))  # cap per step: the pool never runs dry inside a step
DROP_LIMIT_PCT=1                       # a step passes with fewer failed DORAs than this
SENT_MIN_PCT=97                        # ...and if perfdhcp really offered the rate (>= 97%)
CLIENTS=16777216                       # -R: distinct MACs (sequential from the step's base)
EXIT_WAIT_US=1000000                   # -W: how long perfdhcp waits for late answers at the end
READY_LIMIT_S=20                       # a server must answer a probe DORA within this
STOP_LIMIT_S=10                        # SIGTERM, then SIGKILL after this
MAX_RATE=64000

QUICK=0; BUILD=1; KEEP_STATE=0; SERVERS="ours,dnsmasq,kea"; MACS=random; CHECK=1
RATES=""; SECS=""

usage() {
    sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    cat <<'EOF'

Options:
  --quick           short run (3 s steps, coarser search; about 2-3 minutes)
  --no-build        use the existing target/release/proximity-appliance
  --servers LIST    comma-separated subset of ours,dnsmasq,kea (default: all three)
  --rates LIST      no search: run exactly these offered rates, e.g. --rates 2000,4000
  --secs N          step length in seconds (default 6, --quick 3)
  --keep-state      keep the servers' lease files in the results dir
  --macs MODE       clients of the search: random (default): MACs drawn from a list of 65536
                    random ones (perfdhcp -M): realistic, but some clients come back in a step;
                    sequential: perfdhcp counts MACs up from a base: every exchange a new client
  --no-check        skip the check (each server at its best rate with sequential MACs, perfdhcp -u)
  -h, --help        this text
Exit status: 0 done (read the report: a server may still have failed), 1 error, 2 tools missing.
EOF
}

while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --no-build) BUILD=0 ;;
        --keep-state) KEEP_STATE=1 ;;
        --servers) shift; SERVERS="${1:-}" ;;
        --servers=*) SERVERS="${1#--servers=}" ;;
        --macs) shift; MACS="${1:-}" ;;
        --rates) shift; RATES="${1:-}" ;;
        --rates=*) RATES="${1#--rates=}" ;;
        --secs) shift; SECS="${1:-}" ;;
        --secs=*) SECS="${1#--secs=}" ;;
        --macs=*) MACS="${1#--macs=}" ;;
        --no-check) CHECK=0 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "dhcp.sh: unknown argument: $1 (see --help)" >&2; exit 1 ;;
    esac
    shift
done

case "$MACS" in sequential|random) ;; *) echo "dhcp.sh: --macs must be sequential or random" >&2; exit 1 ;; esac

if [ "$QUICK" = 1 ]; then
    STEP_SECS=3; LADDER=(250 1000 4000 16000 64000); BISECTS=2; TIME_BUDGET_S=240
else
    STEP_SECS=6; LADDER=(250 500 1000 2000 4000 8000 16000 32000 64000); BISECTS=3; TIME_BUDGET_S=540
fi
if [ -n "$SECS" ]; then
    [[ "$SECS" =~ ^[1-9][0-9]?$ ]] || { echo "dhcp.sh: --secs takes 1..99" >&2; exit 1; }
    STEP_SECS=$SECS
fi
FIXED=0
if [ -n "$RATES" ]; then
    [[ "$RATES" =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]] || { echo "dhcp.sh: --rates takes numbers, comma-separated" >&2; exit 1; }
    IFS=, read -r -a LADDER <<<"$RATES"; FIXED=1; BISECTS=0; TIME_BUDGET_S=1800
fi

# ---------------------------------------------------------------------------------------------
# Preconditions: root, tools. Nothing is installed from here.

if [ "$(id -u)" -ne 0 ]; then
    echo "dhcp.sh: must run as root (it creates network namespaces); try: sudo $0 $*" >&2
    exit 1
fi

missing=()
for tool in perfdhcp dnsmasq kea-dhcp4 ip taskset nice timeout awk; do
    PATH="$PATH:/usr/sbin:/sbin" command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "dhcp.sh: missing tools: ${missing[*]}" >&2
    echo "install them with:" >&2
    echo "  apt-get install -y kea-admin kea-dhcp4-server dnsmasq-base" >&2
    exit 2
fi
export PATH="$PATH:/usr/sbin:/sbin"

declare -A WANT=()
IFS=, read -r -a _list <<<"$SERVERS"
for s in "${_list[@]}"; do
    case "$s" in ours|dnsmasq|kea) WANT[$s]=1 ;; *) echo "dhcp.sh: unknown server: $s" >&2; exit 1 ;; esac
done
ORDER=()
for s in ours dnsmasq kea; do [ -n "${WANT[$s]:-}" ] && ORDER+=("$s"); done
[ ${#ORDER[@]} -gt 0 ] || { echo "dhcp.sh: no server selected" >&2; exit 1; }

# CPU placement: the server on CPU 0, perfdhcp on CPU 1, so the load generator never steals the
# server's core (and every server gets the same single core). One CPU: no pinning.
if [ "$(nproc)" -ge 2 ]; then SRV_CPU=(taskset -c 0); GEN_CPU=(taskset -c 1); else SRV_CPU=(); GEN_CPU=(); fi

STAMP=$(date +%Y%m%d-%H%M%S)
OUT="$ROOT/target/bench/dhcp-$STAMP"
mkdir -p "$OUT" || exit 1
RAW="$OUT/raw"; STATE="$OUT/state"
mkdir -p "$RAW" "$STATE"
cd "$OUT" || exit 1                      # every path below is absolute; strays land here
TAG="pxd$$"                              # namespaces: pxd<pid>-<server>-{s,c}
START_S=$SECONDS

log() { printf '%s\n' "$*" | tee -a "$OUT/report.txt"; }

# ---------------------------------------------------------------------------------------------
# Cleanup: every process we started (by PID) and every namespace we created, on any exit.

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
    [ "$KEEP_STATE" = 1 ] || rm -rf "$STATE"
    exit "$rc"
}
trap cleanup EXIT
trap 'echo; echo "dhcp.sh: interrupted, cleaning up" >&2; exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# Waits for a background pid, interruptibly (a trapped signal makes `wait` return at once).
wait_pid() { wait "$1" 2>/dev/null; local rc=$?; unset "PIDS[$1]"; return $rc; }

# ---------------------------------------------------------------------------------------------
# Namespaces: <tag>-<srv>-s holds the server on veth srv0 (10.20.0.1), <tag>-<srv>-c holds
# perfdhcp on veth cli0 (10.20.0.2). The pair is created inside the namespaces, so no interface
# ever appears in the host's namespace.

make_pair() {
    local s="$TAG-$1-s" c="$TAG-$1-c"
    ip netns add "$s" || return 1; NETNS+=("$s")
    ip netns add "$c" || return 1; NETNS+=("$c")
    ip -n "$s" link add srv0 type veth peer name cli0 netns "$c" || return 1
    ip -n "$s" addr add "$SERVER_ADDR/$LAN_PREFIX" dev srv0 &&
    ip -n "$c" addr add "$CLIENT_ADDR/$LAN_PREFIX" dev cli0 &&
    ip -n "$s" link set lo up && ip -n "$c" link set lo up &&
    ip -n "$s" link set srv0 up && ip -n "$c" link set cli0 up
}

# ---------------------------------------------------------------------------------------------
# Servers. start_<srv> DIR LOG starts the server in the background with its state in DIR and
# sets SRV_PID; the command chain (ip netns exec, taskset, nice) execs, so $! is the server.

write_ours_config() {
    cat >"$1/proximity.toml" <<EOF
[lan]
interface = "srv0"
address = "$SERVER_ADDR/$LAN_PREFIX"

[dhcp]
range = "$POOL_FIRST-$POOL_LAST"
reserved = "$RESERVED"
lease_time = "1h"

[state]
dir = "$1/state"
EOF
}

start_ours() {
    write_ours_config "$1"
    mkdir -p "$1/state"
    ip netns exec "$TAG-ours-s" "${SRV_CPU[@]}" nice -n -5 \
        "$OURS_BIN" --config "$1/proximity.toml" >"$2" 2>&1 &
    SRV_PID=$!
}

start_dnsmasq() {
    # --no-ping: dnsmasq would otherwise ICMP-probe each address before offering it (up to 3 s
    # per offer, one at a time); Kea and ours do not probe. --quiet-dhcp: no per-packet log.
    ip netns exec "$TAG-dnsmasq-s" "${SRV_CPU[@]}" nice -n -5 \
        dnsmasq --no-daemon --conf-file=/dev/null --no-hosts --no-resolv --port=0 \
        --interface=srv0 --bind-interfaces \
        --dhcp-range="$POOL_FIRST,$POOL_LAST,255.255.0.0,1h" \
        --dhcp-leasefile="$1/dnsmasq.leases" --dhcp-lease-max=1000000 \
        --dhcp-authoritative --no-ping --quiet-dhcp \
        --pid-file="$1/dnsmasq.pid" --log-facility=- >"$2" 2>&1 &
    SRV_PID=$!
}

start_kea() {
    cat >"$1/kea-dhcp4.json" <<EOF
{ "Dhcp4": {
    "interfaces-config": { "interfaces": [ "srv0" ] },
    "lease-database": { "type": "memfile", "persist": true, "name": "$1/leases.csv", "lfc-interval": 0 },
    "authoritative": true,
    "valid-lifetime": $LEASE_SECS,
    "subnet4": [ {
        "id": 1, "subnet": "10.20.0.0/$LAN_PREFIX",
        "pools": [ { "pool": "$POOL_FIRST - $POOL_LAST" } ],
        "option-data": [ { "name": "routers", "data": "$SERVER_ADDR" } ]
    } ],
    "loggers": [ { "name": "kea-dhcp4", "severity": "WARN",
                   "output_options": [ { "output": "stderr" } ] } ]
} }
EOF
    KEA_PIDFILE_DIR="$1" KEA_LOCKFILE_DIR="$1" \
        ip netns exec "$TAG-kea-s" "${SRV_CPU[@]}" nice -n -5 \
        kea-dhcp4 -c "$1/kea-dhcp4.json" >"$2" 2>&1 &
    SRV_PID=$!
}

# A few DORAs from a MAC no step uses; 0 when at least one ACK came back. (perfdhcp without -r
# floods, and with -n 1 it stops before sending the REQUEST.)
probe() {
    timeout 5 ip netns exec "$TAG-$1-c" perfdhcp -4 -r 20 -n 3 -W 300000 -l "$CLIENT_ADDR" \
        -b mac=02:ff:ff:00:00:01 "$SERVER_ADDR" 2>/dev/null |
        awk '/Statistics for: REQUEST-ACK/ { s = 1 } s && /^received packets:/ { ok = $3 > 0 } END { exit !ok }'
}

# Polls until the server answers a probe, with a deadline; fails if it died or never answered.
wait_ready() {
    local srv=$1 pid=$2 logf=$3 deadline=$((SECONDS + READY_LIMIT_S))
    while [ $SECONDS -lt $deadline ]; do
        kill -0 "$pid" 2>/dev/null || return 1
        if [ "$srv" = ours ] && ! grep -qs 'listening for dhcp' "$logf"; then sleep 0.2; continue; fi
        probe "$srv" && return 0
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

rss_kib() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null || true; }

# ---------------------------------------------------------------------------------------------
# One step: fresh server (empty lease store), probe, idle RSS, perfdhcp at RATE, RSS after load.
# run_step SERVER RATE MACS TABLE: MACS is random|sequential; writes one line to TABLE (a .tsv)
# and sets STEP_PASS=1|0.

TSV_HEADER='server\tstep\trate\tsecs\tdo_sent\tdo_recv\tra_sent\tra_recv\tdrop_pct\tack_per_s\tdo_avg\tdo_max\tra_avg\tra_max\trss_idle_kib\trss_load_kib\thwm_kib\tstatus\torphans\tacked_twice\tmacs\n'
printf "$TSV_HEADER" >"$OUT/steps.tsv"
declare -A STEPNO=()

run_step() {
    local srv=$1 rate=$2 macs=$3 tsv=$4
    local n=$(( ${STEPNO[$srv]:-0} + 1 )); STEPNO[$srv]=$n
    local id; id=$(printf '%s-%02d-%s-r%s' "$srv" "$n" "${macs:0:3}" "$rate")
    local dir="$STATE/$id" slog="$RAW/$id.server.log" plog="$RAW/$id.perfdhcp.txt"
    mkdir -p "$dir"
    STEP_PASS=0

    "start_$srv" "$dir" "$slog"
    local pid=$SRV_PID; PIDS[$pid]="$srv"
    if ! wait_ready "$srv" "$pid" "$slog"; then
        local why="not ready in ${READY_LIMIT_S}s"; kill -0 "$pid" 2>/dev/null || why="exited"
        stop_server "$pid"
        printf '%s\t%d\t%s\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\tSTART-FAILED(%s)\t-\t-\t%s\n' "$srv" "$n" "$rate" "$why" "$macs" >>"$tsv"
        log "  $srv @ $rate/s: server failed to start ($why); log: $slog"
        STEP_FAILED_START=1
        return 1
    fi
    STEP_FAILED_START=0
    local rss_idle; rss_idle=$(rss_kib "$pid" VmRSS)

    # Exchanges: rate x secs, capped so the pool never runs dry within the step.
    local count=$((rate * STEP_SECS)); [ $count -gt $MAX_EXCHANGES ] && count=$MAX_EXCHANGES
    local secs; secs=$(awk -v c="$count" -v r="$rate" 'BEGIN { printf "%.3f", c / r }')
    local clients
    if [ "$macs" = random ]; then
        clients=(-M "$MAC_LIST")
    else
        # A base MAC per step (locally administered, 02:..): perfdhcp counts up from it.
        # -u: perfdhcp checks that no address is handed to two clients (every client is new).
        clients=(-u -R "$CLIENTS" -b "mac=$(printf '02:%02x:%02x:00:00:00' "$(printf '%d' "'${srv:0:1}")" "$n")")
    fi
    timeout $((STEP_SECS + 30)) ip netns exec "$TAG-$srv-c" "${GEN_CPU[@]}" nice -n -5 \
        perfdhcp -4 -r "$rate" -n "$count" -p "$STEP_SECS" "${clients[@]}" \
        -W "$EXIT_WAIT_US" -t 1 -l "$CLIENT_ADDR" "$SERVER_ADDR" >"$plog" 2>&1 &
    local gen=$!; PIDS[$gen]="perfdhcp"
    wait_pid "$gen"; local prc=$?

    local alive=1; kill -0 "$pid" 2>/dev/null || alive=0
    local rss_load hwm
    rss_load=$(rss_kib "$pid" VmRSS); hwm=$(rss_kib "$pid" VmHWM)
    stop_server "$pid"
    [ "$KEEP_STATE" = 1 ] || rm -rf "$dir"

    # Parse perfdhcp's final report: DISCOVER-OFFER and REQUEST-ACK sections.
    local stats
    stats=$(awk '
        /Statistics for: DISCOVER-OFFER/ { s = "do" } /Statistics for: REQUEST-ACK/ { s = "ra" }
        s && /^sent packets:/     { v[s "_sent"] = $3 }
        s && /^received packets:/ { v[s "_recv"] = $3 }
        s && /^avg delay:/ && $3 != "n/a" && $3 !~ /min/ { v[s "_avg"] = $3 }
        s && /^max delay:/        { v[s "_max"] = $3 }
        s && /^orphans:/          { orph += $2 }
        s && /^non unique addresses:/ { nonu += $4; nu[s] = $4 }
        END {
            printf "%d %d %d %d %d %d %d %d %s %s %s %s\n", v["do_sent"], v["do_recv"], v["ra_sent"], v["ra_recv"], orph, nonu, nu["do"], nu["ra"],
                (v["do_avg"] == "" ? "nan" : v["do_avg"]), (v["do_max"] == "" || v["do_max"] == "n/a" ? "nan" : v["do_max"]),
                (v["ra_avg"] == "" ? "nan" : v["ra_avg"]), (v["ra_max"] == "" || v["ra_max"] == "n/a" ? "nan" : v["ra_max"])
        }' "$plog")
    local do_sent do_recv ra_sent ra_recv orphans nonuniq nonuniq_o nonuniq_a do_avg do_max ra_avg ra_max
    read -r do_sent do_recv ra_sent ra_recv orphans nonuniq nonuniq_o nonuniq_a do_avg do_max ra_avg ra_max <<<"$stats"
    local drop ackps
    drop=$(awk -v s="$do_sent" -v r="$ra_recv" 'BEGIN { printf "%.3f", (s > 0) ? 100 * (s - r) / s : 100 }')
    ackps=$(awk -v r="$ra_recv" -v t="$secs" 'BEGIN { printf "%.0f", r / t }')

    local status=pass
    if [ "$alive" = 0 ]; then
        status="FAIL(server died)"
    elif [ "$prc" -ne 0 ] && [ "$prc" -ne 3 ]; then
        status="FAIL(perfdhcp rc=$prc)"
    elif awk -v d="$drop" -v l="$DROP_LIMIT_PCT" 'BEGIN { exit !(d >= l) }'; then
        status="fail(drops)"
    elif [ "$do_sent" -lt $((count * SENT_MIN_PCT / 100)) ]; then
        status="fail(perfdhcp sent only $do_sent of $count)"
    fi
    [ "$status" = pass ] && STEP_PASS=1

    printf '%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
        "$srv" "$n" "$rate" "$secs" "$do_sent" "$do_recv" "$ra_sent" "$ra_recv" "$drop" "$ackps" \
        "$do_avg" "$do_max" "$ra_avg" "$ra_max" "${rss_idle:--}" "${rss_load:--}" "${hwm:--}" "$status" \
        "$orphans" "$nonuniq_a" "$macs" >>"$tsv"
    log "$(printf '  %-8s %3s %6s/s  %5ss  acks %6s (%6s/s)  failed %7s%%  DORA avg %8s ms  RSS %6s -> %6s KiB  %s' \
        "$srv" "$([ "$macs" = random ] && echo rnd || echo seq)" "$rate" "$secs" "$ra_recv" "$ackps" "$drop" \
        "$(awk -v a="$do_avg" -v b="$ra_avg" 'BEGIN { printf "%.3f", a + b }')" \
        "${rss_idle:--}" "${rss_load:--}" "$status")"
    if [ "$nonuniq" -gt 0 ]; then
        log "  $srv: perfdhcp -u saw $nonuniq address(es) given to a second client ($nonuniq_o in OFFERs, $nonuniq_a in ACKs); see $plog"
    fi
    if [ "$alive" = 0 ]; then
        log "  $srv died during the step; last lines of $slog:"
        tail -n 15 "$slog" | sed 's/^/    | /' | tee -a "$OUT/report.txt"
    fi
    return 0
}

# ---------------------------------------------------------------------------------------------
# Build ours

declare -A FAILED=()     # srv -> reason (server could not be measured at all)
MAC_LIST="$OUT/macs.txt"
if [ "$MACS" = random ]; then
    # 65536 distinct random locally administered MACs: perfdhcp 2.2 indexes the list with 16 bits.
    awk 'BEGIN { srand(); n = 0; while (n < 65536) {
            m = sprintf("02:%02x:%02x:%02x:%02x:%02x", int(rand() * 256), int(rand() * 256),
                        int(rand() * 256), int(rand() * 256), int(rand() * 256))
            if (!(m in seen)) { seen[m] = 1; print m; n++ } } }' >"$MAC_LIST"
fi
log "DHCP benchmark: perfdhcp against ${ORDER[*]}"
log "results: $OUT"
log "machine: $(nproc) CPUs, $(uname -r), load average: $(cut -d' ' -f1-3 /proc/loadavg)"
# Background CPU use over one second: other work on the machine (builds...) skews every figure.
busy_pct() {
    local a b
    a=($(head -1 /proc/stat)); sleep 1; b=($(head -1 /proc/stat))
    awk -v u=$(( (b[1]+b[2]+b[3]+b[6]+b[7]) - (a[1]+a[2]+a[3]+a[6]+a[7]) )) \
        -v t=$(( (b[1]+b[2]+b[3]+b[4]+b[5]+b[6]+b[7]+b[8]) - (a[1]+a[2]+a[3]+a[4]+a[5]+a[6]+a[7]+a[8]) )) \
        'BEGIN { printf "%.0f", (t > 0) ? 100 * u / t : 0 }'
}
BUSY=$(busy_pct)

# CPU seconds used by this script and everything it waited for (servers, perfdhcp), and by the
# whole machine: their difference over the run is what other processes took from us.
own_cpu_s() { times | awk '{ for (i = 1; i <= NF; i++) { split($i, t, /[ms]/); c += t[1] * 60 + t[2] } } END { printf "%.2f", c }'; }
machine_cpu() { head -1 /proc/stat | awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f %.2f", ($2+$3+$4+$7+$8) / hz, ($2+$3+$4+$5+$6+$7+$8+$9) / hz }'; }
if [ "$BUSY" -gt 15 ]; then
    log "WARNING: other processes use ${BUSY}% of the CPUs before we start: figures will be low and noisy"
    log "         (top now: $(ps -eo pcpu=,comm= --sort=-pcpu | head -3 | awk '{ printf "%s %s%%  ", $2, $1 }'))"
fi
log "perfdhcp $(perfdhcp -v 2>&1 | awk '{print $2}'), dnsmasq $(dnsmasq -v | awk 'NR==1 {print $3}'), kea-dhcp4 $(kea-dhcp4 -v 2>&1 | head -1)"

if [ -n "${WANT[ours]:-}" ]; then
    if [ "$BUILD" = 1 ]; then
        log "building: cargo build --release -p proximity-appliance (log: $RAW/build.log)"
        CARGO=$(command -v cargo || echo "${HOME:-/root}/.cargo/bin/cargo")
        ( cd "$ROOT" && timeout 1200 "$CARGO" build --release -p proximity-appliance ) >"$RAW/build.log" 2>&1 &
        bpid=$!; PIDS[$bpid]=cargo
        if ! wait_pid "$bpid"; then
            FAILED[ours]="cargo build failed"
            log "OURS FAILED: cargo build --release -p proximity-appliance failed; last lines:"
            tail -n 20 "$RAW/build.log" | sed 's/^/    | /' | tee -a "$OUT/report.txt"
        fi
    fi
    if [ -z "${FAILED[ours]:-}" ] && [ ! -x "$OURS_BIN" ]; then
        FAILED[ours]="no binary at $OURS_BIN"
        log "OURS FAILED: no binary at $OURS_BIN"
    fi
    if [ -z "${FAILED[ours]:-}" ]; then
        mkdir -p "$STATE/validate"; write_ours_config "$STATE/validate"
        if ! "$OURS_BIN" --config "$STATE/validate/proximity.toml" --validate >"$RAW/ours-validate.log" 2>&1; then
            FAILED[ours]="config rejected by --validate"
            log "OURS FAILED: the benchmark config does not validate:"
            sed 's/^/    | /' "$RAW/ours-validate.log" | tee -a "$OUT/report.txt"
        fi
    fi
fi

for s in "${ORDER[@]}"; do
    make_pair "$s" || { log "cannot create the namespaces for $s"; exit 1; }
done

# ---------------------------------------------------------------------------------------------
# Search, round robin: each round runs one step for every server still searching, so a change in
# the machine's background load hits all servers alike. Ladder up until the first failure, then
# bisect between the last pass and the first failure.

declare -A LO=() HI=() LADDER_I=() NEXT=() DONE=() BIS=() STARTFAIL=()
for s in "${ORDER[@]}"; do
    LO[$s]=0; HI[$s]=0; LADDER_I[$s]=0; NEXT[$s]=${LADDER[0]}; BIS[$s]=0; STARTFAIL[$s]=0
    [ -n "${FAILED[$s]:-}" ] && DONE[$s]=1
done

round_to() {  # a rate between lo and hi, rounded to a readable step
    awk -v lo="$1" -v hi="$2" 'BEGIN { m = (lo + hi) / 2; g = (m >= 4000) ? 250 : (m >= 1000) ? 100 : (m >= 200) ? 25 : 5;
        r = int(m / g + 0.5) * g; if (r <= lo) r = lo + g; if (r >= hi) r = -1; print r }'
}

advance() {  # decides the next rate for $1 after a step with result $2 (1 pass / 0 fail)
    local s=$1 pass=$2
    if [ "$FIXED" = 1 ]; then           # --rates: every listed rate, whatever happens
        local j=$(( ${LADDER_I[$s]} + 1 )); LADDER_I[$s]=$j
        if [ $j -ge ${#LADDER[@]} ]; then DONE[$s]=1; else NEXT[$s]=${LADDER[$j]}; fi
        return
    fi
    if [ "$pass" = 1 ]; then LO[$s]=${NEXT[$s]}; else HI[$s]=${NEXT[$s]}; fi
    if [ "${HI[$s]}" = 0 ]; then        # still laddering up
        local i=$(( ${LADDER_I[$s]} + 1 )); LADDER_I[$s]=$i
        if [ $i -ge ${#LADDER[@]} ]; then DONE[$s]=1; return; fi
        NEXT[$s]=${LADDER[$i]}; return
    fi
    if [ "${BIS[$s]}" -ge "$BISECTS" ]; then DONE[$s]=1; return; fi
    local lo=${LO[$s]}; [ "$lo" = 0 ] && lo=$(( HI[$s] / 8 ))   # below the first rung: search down
    if [ "${LO[$s]}" = 0 ] && [ "$lo" -lt 10 ]; then DONE[$s]=1; return; fi
    local next; next=$(round_to "$lo" "${HI[$s]}")
    [ "${LO[$s]}" = 0 ] && next=$lo && [ "$next" -lt 10 ] && next=10
    if [ "$next" = -1 ]; then DONE[$s]=1; return; fi
    BIS[$s]=$(( BIS[$s] + 1 )); NEXT[$s]=$next
}

read -r M0_BUSY M0_ALL <<<"$(machine_cpu)"; OWN0=$(own_cpu_s)
log ""
log "clients: $MACS MACs$([ "$MACS" = sequential ] && echo " (perfdhcp -u -R $CLIENTS -b mac=<base per step>: each exchange a new client)" || echo " (perfdhcp -M $MAC_LIST)")"
log "search: ${STEP_SECS}s steps (each with a fresh server and empty lease store), ladder ${LADDER[*]}/s, then $BISECTS bisections; pass = under ${DROP_LIMIT_PCT}% failed DORA exchanges"
round=0
while :; do
    active=()
    for s in "${ORDER[@]}"; do [ -z "${DONE[$s]:-}" ] && active+=("$s"); done
    [ ${#active[@]} -eq 0 ] && break
    if [ $((SECONDS - START_S)) -gt "$TIME_BUDGET_S" ]; then
        log "time budget (${TIME_BUDGET_S}s) used up: stopping the search (${active[*]} not finished)"
        break
    fi
    round=$((round + 1)); [ $round -gt 40 ] && break
    for s in "${active[@]}"; do
        if ! run_step "$s" "${NEXT[$s]}" "$MACS" "$OUT/steps.tsv"; then
            STARTFAIL[$s]=$(( STARTFAIL[$s] + 1 ))
            if [ "${STARTFAIL[$s]}" -ge 2 ] || [ "${LO[$s]}" = 0 ]; then
                FAILED[$s]="did not start/answer (see ${RAW#"$ROOT"/}/$s-*.server.log)"
                DONE[$s]=1
                log "$(echo "$s" | tr a-z A-Z) FAILED: it did not answer a probe DORA within ${READY_LIMIT_S}s; last lines of its log:"
                tail -n 20 "$(ls -t "$RAW/$s-"*.server.log | head -1)" | sed 's/^/    | /' | tee -a "$OUT/report.txt"
            fi
            continue
        fi
        advance "$s" "$STEP_PASS"
    done
done

# ---------------------------------------------------------------------------------------------
# Report

# Best passing step per server (highest rate; latest such step on ties).
best_line() {
    awk -F'\t' -v s="$1" 'NR > 1 && $1 == s && $18 == "pass" && $3 + 0 >= best { best = $3 + 0; line = $0 }
        END { print line }' "$OUT/steps.tsv"
}
field() { cut -f"$2" <<<"$1"; }
mib() { awk -v k="$1" 'BEGIN { if (k == "" || k == "-") print "-"; else printf "%.1f", k / 1024 }'; }
sum() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "nan" || b == "nan" || a == "" || b == "") print "-"; else printf "%.3f", a + b }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || a == "" || b == "" || b + 0 == 0) print "-"; else printf "%.2f", a / b }'; }

declare -A R_RATE=() R_ACK=() R_DROP=() R_AVG=() R_MAX=() R_IDLE=() R_LOAD=() R_HWM=() R_NOTE=()
for s in "${ORDER[@]}"; do
    line=$(best_line "$s")
    if [ -n "${FAILED[$s]:-}" ] && [ -z "$line" ]; then R_NOTE[$s]="FAILED: ${FAILED[$s]}"; continue; fi
    if [ -z "$line" ]; then
        R_NOTE[$s]="no passing rate (lowest tried: $(awk -F'\t' -v s="$s" 'NR>1 && $1==s {print $3}' "$OUT/steps.tsv" | sort -n | head -1)/s)"
        continue
    fi
    R_RATE[$s]=$(field "$line" 3); R_ACK[$s]=$(field "$line" 10); R_DROP[$s]=$(field "$line" 9)
    R_AVG[$s]=$(sum "$(field "$line" 11)" "$(field "$line" 13)")
    R_MAX[$s]=$(sum "$(field "$line" 12)" "$(field "$line" 14)")
    R_IDLE[$s]=$(mib "$(field "$line" 15)"); R_LOAD[$s]=$(mib "$(field "$line" 16)"); R_HWM[$s]=$(mib "$(field "$line" 17)")
    fails=$(awk -F'\t' -v s="$s" -v r="${R_RATE[$s]}" 'NR>1 && $1==s && $18!="pass" && $3+0 <= r+0 {print $3}' "$OUT/steps.tsv" | tr '\n' ' ')
    [ -n "$fails" ] && R_NOTE[$s]="also failed at or below it: $fails/s (noise?)"
    [ -n "${FAILED[$s]:-}" ] && R_NOTE[$s]="${R_NOTE[$s]:-} FAILED later: ${FAILED[$s]}"
    dups=$(awk -F'\t' -v s="$s" 'NR>1 && $1==s && $20+0 > 0 {n += $20} END {print n+0}' "$OUT/steps.tsv")
    [ "$dups" -gt 0 ] && R_NOTE[$s]="${R_NOTE[$s]:-} DUPLICATE ADDRESSES: $dups over all steps (perfdhcp -u)"
    crashed=$(awk -F'\t' -v s="$s" 'NR>1 && $1==s && $18 ~ /died/ {print $3}' "$OUT/steps.tsv" | tr '\n' ' ')
    [ -n "$crashed" ] && R_NOTE[$s]="${R_NOTE[$s]:-} DIED during steps at: $crashed/s"
done

# The check: each server again at its best rate, but every exchange a new client (sequential
# MACs) and perfdhcp -u watching for an address given to two clients. It shows what the random
# MACs of the search hid: the cost of all-new leases, and allocation bugs.
if [ "$CHECK" = 1 ] && [ "$MACS" = random ]; then
    printf "$TSV_HEADER" >"$OUT/checks.tsv"
    log ""
    log "check: each server at its best rate with every exchange a new client (sequential MACs, perfdhcp -u)"
    for s in "${ORDER[@]}"; do
        [ -n "${R_RATE[$s]:-}" ] || continue
        run_step "$s" "${R_RATE[$s]}" sequential "$OUT/checks.tsv" || true
    done
fi

# Latency at a common rate: the highest ladder rate that every measured server passed.
common=""; declare -A C_AVG=() C_LOAD=()
for r in "${LADDER[@]}"; do
    ok=1; any=0
    for s in "${ORDER[@]}"; do
        [ -n "${R_RATE[$s]:-}" ] || continue; any=1
        awk -F'\t' -v s="$s" -v r="$r" 'NR>1 && $1==s && $3==r && $18=="pass" {f=1} END {exit !f}' "$OUT/steps.tsv" || ok=0
    done
    [ "$any" = 1 ] && [ "$ok" = 1 ] && common=$r
done

read -r M1_BUSY M1_ALL <<<"$(machine_cpu)"; OWN1=$(own_cpu_s)
OTHERS=$(awk -v b="$(awk -v a="$M0_BUSY" -v b="$M1_BUSY" 'BEGIN { print b - a }')" \
             -v t="$(awk -v a="$M0_ALL" -v b="$M1_ALL" 'BEGIN { print b - a }')" \
             -v o="$(awk -v a="$OWN0" -v b="$OWN1" 'BEGIN { print b - a }')" \
             'BEGIN { x = (t > 0) ? 100 * (b - o) / t : 0; if (x < 0) x = 0; printf "%.0f", x }')

name() { case "$1" in ours) echo "proximity" ;; dnsmasq) echo "dnsmasq" ;; kea) echo "kea-dhcp4" ;; esac; }

log ""
log "=== DHCP results ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, ${STEP_SECS}s steps, $MACS MACs) ==="
log "other processes used about ${OTHERS}% of the CPUs during the measurements (${BUSY}% just before)$( [ "$OTHERS" -gt 10 ] && echo ": NOISY, compare with care")"
log "max rate = highest offered DORA rate with < ${DROP_LIMIT_PCT}% failed exchanges; latency = DISCOVER->OFFER + REQUEST->ACK"
log "(avg = sum of the averages; max = sum of the maxima, an upper bound) at that rate; RSS idle = after start, load = right after the step"
log ""
hdr=$(printf '%-10s %10s %9s %8s %10s %10s %9s %9s %9s' server "rate/s" "acks/s" "failed%" "avg ms" "max ms" "RSS idle" "RSS load" "RSS peak")
log "$hdr"
log "$(printf '%-10s %10s %9s %8s %10s %10s %9s %9s %9s' "" "(offered)" "" "" "" "" "MiB" "MiB" "MiB")"
for s in "${ORDER[@]}"; do
    if [ -n "${R_RATE[$s]:-}" ]; then
        log "$(printf '%-10s %10s %9s %8s %10s %10s %9s %9s %9s' "$(name "$s")" "${R_RATE[$s]}" "${R_ACK[$s]}" "${R_DROP[$s]}" \
            "${R_AVG[$s]}" "${R_MAX[$s]}" "${R_IDLE[$s]}" "${R_LOAD[$s]}" "${R_HWM[$s]}")"
        [ -n "${R_NOTE[$s]:-}" ] && log "           note: ${R_NOTE[$s]}"
    else
        log "$(printf '%-10s %s' "$(name "$s")" "${R_NOTE[$s]}")"
    fi
done

if [ -f "$OUT/checks.tsv" ]; then
    log ""
    log "check at the best rate, every exchange a new client (sequential MACs; perfdhcp -u; duplicates = addresses ACKed to two clients):"
    for s in "${ORDER[@]}"; do
        line=$(awk -F'\t' -v s="$s" 'NR > 1 && $1 == s' "$OUT/checks.tsv" | tail -1)
        [ -n "$line" ] || continue
        log "$(awk -F'\t' -v n="$(name "$s")" -v lim="$DROP_LIMIT_PCT" '{
            verdict = ($18 == "pass") ? "ok" : "over " lim "% failed";
            if ($20 + 0 > 0) verdict = verdict ", ADDRESS GIVEN TWICE x" $20;
            printf "  %-10s %6s/s  failed %7s%%  avg %8.3f ms  max %9.3f ms  duplicates %s  -> %s", n, $3, $9, $11 + $13, $12 + $14, $20, verdict }' <<<"$line")"
    done
fi

if [ -n "$common" ]; then
    log ""
    log "at the highest ladder rate every server passed ($common/s, so the same number of leases):"
    for s in "${ORDER[@]}"; do
        [ -n "${R_RATE[$s]:-}" ] || continue
        l=$(awk -F'\t' -v s="$s" -v r="$common" 'NR>1 && $1==s && $3==r && $18=="pass" {a=$11+$13; m=$12+$14; k=$16/1024} END {printf "latency avg %.3f ms  max %.3f ms   RSS after %.1f MiB", a, m, k}' "$OUT/steps.tsv")
        C_LOAD[$s]=$(awk -F'\t' -v s="$s" -v r="$common" 'NR>1 && $1==s && $3==r && $18=="pass" {k=$16/1024} END {printf "%.1f", k}' "$OUT/steps.tsv")
        log "$(printf '  %-10s %s' "$(name "$s")" "$l")"
        C_AVG[$s]=$(awk -F'\t' -v s="$s" -v r="$common" 'NR>1 && $1==s && $3==r && $18=="pass" {a=$11+$13} END {printf "%.3f", a}' "$OUT/steps.tsv")
    done
fi

if [ -n "${WANT[ours]:-}" ]; then
    log ""
    if [ -z "${R_RATE[ours]:-}" ]; then
        log "ratios: none, OURS FAILED (${R_NOTE[ours]:-}); see $RAW"
    else
        log "ratios ours / peer (rate: higher is better; latency and RSS: lower is better)"
        log "$(printf '%-16s %8s %9s %9s %9s %9s %s' "" "rate" "lat avg" "lat max" "RSS idle" "RSS load" "${common:+  @$common/s: lat avg, RSS load}")"
        for p in dnsmasq kea; do
            [ -n "${WANT[$p]:-}" ] || continue
            if [ -z "${R_RATE[$p]:-}" ]; then log "$(printf '%-16s %s' "ours/$p" "- (${R_NOTE[$p]:-no result})")"; continue; fi
            ca="-"; [ -n "$common" ] && ca="$(printf '%9s %9s' "$(ratio "${C_AVG[ours]:-}" "${C_AVG[$p]:-}")" "$(ratio "${C_LOAD[ours]:-}" "${C_LOAD[$p]:-}")")"
            log "$(printf '%-16s %8s %9s %9s %9s %9s %s' "ours/$(name "$p")" \
                "$(ratio "${R_RATE[ours]}" "${R_RATE[$p]}")" "$(ratio "${R_AVG[ours]}" "${R_AVG[$p]}")" \
                "$(ratio "${R_MAX[ours]}" "${R_MAX[$p]}")" "$(ratio "${R_IDLE[ours]}" "${R_IDLE[$p]}")" \
                "$(ratio "${R_LOAD[ours]}" "${R_LOAD[$p]}")" "${common:+$ca}")"
        done
    fi
fi
log ""
log "every step: $OUT/steps.tsv; raw perfdhcp output and server logs: $RAW"
log "report: $OUT/report.txt  (took $((SECONDS - START_S))s)"
exit 0
