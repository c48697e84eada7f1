#!/usr/bin/env bash
# bench/dhcp.sh: DHCPv4 benchmark of proximity-appliance against dnsmasq and kea-dhcp4, with
# perfdhcp, in the same run on this machine. Each server gets its own pair of network
# namespaces (server ns + client ns joined by a veth pair); no packet leaves them.
#
# For every server it finds the highest rate of DORA exchanges with under 1% failed, twice:
# with every exchange a new client (sequential MACs) and with a realistic MAC spread (random
# MACs), and reports latency and RSS at that rate, then the ratios ours/dnsmasq and ours/kea.
# See bench/README.md for how to read the output.
#
# Usage: sudo bench/dhcp.sh [--quick] [options]      (--help lists them)
set -uo pipefail
. "$(dirname "$0")/lib.sh"

# ---------------------------------------------------------------------------------------------
# Settings

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OURS_BIN=${OURS_BIN:-"$ROOT/target/release/proximity-appliance"}   # override to bench another build

LAN_PREFIX=16                          # a big LAN: 65379 addresses in the pool
NETMASK=255.255.0.0
SERVER_ADDR=10.20.0.1
CLIENT_ADDR=10.20.0.2                  # perfdhcp's address = giaddr of its relayed packets
POOL_FIRST=10.20.0.100
POOL_LAST=10.20.255.250
POOL_SIZE=65379                        # addresses in POOL_FIRST..POOL_LAST
RESERVED="10.20.0.2-10.20.0.99"
LEASE_SECS=3600
MAX_EXCHANGES=$((POOL_SIZE * 7 / 10))  # per step: the pool never runs dry inside a step
DROP_LIMIT_PCT=1                       # a step passes with fewer failed DORAs than this...
SENT_MIN_PCT=97                        # ...if perfdhcp really offered the rate (>= 97% sent)
SEQ_CLIENTS=16777216                   # -R: distinct MACs, counted up from the step's base MAC
RND_MACS=65536                         # random MAC list size (perfdhcp 2.2 indexes it with 16 bits)
EXIT_WAIT_US=1000000                   # -W: how long perfdhcp waits for late answers at the end
READY_LIMIT_S=20                       # a server must answer a probe DORA within this
STOP_LIMIT_S=10                        # SIGTERM, then SIGKILL after this
MAX_ROUNDS=60
NOISE_PCT=15                           # a failed step during which other processes took more CPU
MAX_NOISE_RETRIES=8                    # than this is run once more (at most this many per run)
# perfdhcp in one thread: on its single pinned core a receiver thread only competes with the
# sender (measured: lower latency and fewer drops than "-g multi" for every server).
PERFDHCP_MODE=${PERFDHCP_MODE:--g single}

ARGS="$*"
QUICK=0; BUILD=1; KEEP_STATE=0; SERVERS="ours,dnsmasq,kea"; MACS=both; RATES=""; SECS=""; WAIT_QUIET=0

usage() {
    sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    cat <<'EOF'

Options:
  --quick           short run: 3 s steps, coarser search (about 3 minutes instead of 6-8)
  --no-build        use the existing target/release/proximity-appliance
  --servers LIST    comma-separated subset of ours,dnsmasq,kea (default: all three)
  --macs MODE       both (default), sequential (every exchange a new client, perfdhcp -u
                    checks no address goes to two clients) or random (MACs drawn from a list
                    of 65536 random ones: realistic spread, some clients return within a step)
  --rates LIST      no search: run exactly these offered rates, e.g. --rates 2000,4000
  --secs N          step length in seconds (default 5, --quick 3)
  --keep-state      keep the servers' lease files in the results dir
  --wait-quiet S    first wait up to S seconds for other processes to use under 15% CPU
  -h, --help        this text
Exit status: 0 done (read the report: a server may have failed), 1 error, 2 tools missing.
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
        --macs=*) MACS="${1#--macs=}" ;;
        --rates) shift; RATES="${1:-}" ;;
        --rates=*) RATES="${1#--rates=}" ;;
        --secs) shift; SECS="${1:-}" ;;
        --secs=*) SECS="${1#--secs=}" ;;
        --wait-quiet) shift; WAIT_QUIET="${1:-}" ;;
        --wait-quiet=*) WAIT_QUIET="${1#--wait-quiet=}" ;;
        -h|--help) usage; exit 0 ;;
        *) echo "dhcp.sh: unknown argument: $1 (see --help)" >&2; exit 1 ;;
    esac
    shift
done

case "$MACS" in
    both) MODES=(seq rnd) ;; sequential|seq) MODES=(seq) ;; random|rnd) MODES=(rnd) ;;
    *) echo "dhcp.sh: --macs takes both, sequential or random" >&2; exit 1 ;;
esac
if [ "$QUICK" = 1 ]; then
    STEP_SECS=3; LADDER=(250 1000 4000 16000 64000); BISECTS=2; TIME_BUDGET_S=240
else
    STEP_SECS=5; LADDER=(250 500 1000 2000 4000 8000 16000 32000 64000); BISECTS=3; TIME_BUDGET_S=480
fi
[[ "$WAIT_QUIET" =~ ^[0-9]{1,5}$ ]] || { echo "dhcp.sh: --wait-quiet takes seconds" >&2; exit 1; }
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

need_root dhcp.sh "$ARGS"
need_tools dhcp.sh "kea-admin kea-dhcp4-server dnsmasq-base" perfdhcp dnsmasq kea-dhcp4 ip taskset nice timeout awk

declare -A WANT=()
IFS=, read -r -a _list <<<"$SERVERS"
for s in "${_list[@]}"; do
    case "$s" in ours|dnsmasq|kea) WANT[$s]=1 ;; *) echo "dhcp.sh: unknown server: $s" >&2; exit 1 ;; esac
done
ORDER=()
for s in ours dnsmasq kea; do [ -n "${WANT[$s]:-}" ] && ORDER+=("$s"); done
[ ${#ORDER[@]} -gt 0 ] || { echo "dhcp.sh: no server selected" >&2; exit 1; }

# CPU placement: the server on CPU 0, perfdhcp on CPU 1, so the load generator never takes the
# server's core and every server gets the same single core. One CPU: no pinning.
pin_cpus

results_dir dhcp                         # OUT, RAW, STATE; cd "$OUT"
TAG="pxd$$"                              # namespaces: pxd<pid>-<server>-{s,c}

name() { case "$1" in ours) echo "proximity" ;; dnsmasq) echo "dnsmasq" ;; kea) echo "kea-dhcp4" ;; esac; }
mode_name() { case "$1" in seq) echo "sequential MACs: every exchange a new client" ;; rnd) echo "random MACs: realistic spread, some clients return" ;; esac; }

# ---------------------------------------------------------------------------------------------
# Cleanup (lib.sh): every process we started (by PID) and every namespace we created, on any
# exit; then the state unless --keep-state, and the run's copy of ours.

cleanup_extra() {
    [ "$KEEP_STATE" = 1 ] || rm -rf "$STATE"
    rm -f "$OUT/proximity-appliance"    # the run's copy of ours (30 MB)
}
install_traps dhcp.sh

# ---------------------------------------------------------------------------------------------
# Namespaces: <tag>-<srv>-s holds the server on veth srv0 (10.20.0.1), <tag>-<srv>-c holds
# perfdhcp on veth cli0 (10.20.0.2). The pair is created inside the namespaces, so no interface
# ever appears in the host's namespace (make_lan_pair, lib.sh).

make_pair() { make_lan_pair "$1"; }

# ---------------------------------------------------------------------------------------------
# Servers. start_<srv> DIR LOG starts the server in the background with its state in DIR and
# sets SRV_PID; the command chain (ip netns exec, taskset, nice) execs, so $! is the server.

write_ours_config() {
    cat >"$1/proximity.toml" <<EOF
[lan]
interface = "srv0"
address = "$SERVER_ADDR/$LAN_PREFIX"

# The bench has no WAN side: follow an eth0 should one appear, no DHCP client on it.
[wan]
mode = "host"

# The peers run without a firewall; ours' table would add connection tracking to every packet.
[nat]
enabled = false

[dhcp]
range = "$POOL_FIRST-$POOL_LAST"
reserved = "$RESERVED"
lease_time = "1h"

[proxy]
# DHCP alone is measured: the proxy and the admin API (which the peers do not have) are off.
enabled = false

[admin]
enabled = false

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
    # --no-ping: dnsmasq would otherwise ICMP-probe each address before offering it (up to 3 s,
    # one at a time); Kea and ours do not probe. --quiet-dhcp: no per-packet log.
    ip netns exec "$TAG-dnsmasq-s" "${SRV_CPU[@]}" nice -n -5 \
        dnsmasq --no-daemon --conf-file=/dev/null --no-hosts --no-resolv --port=0 \
        --interface=srv0 --bind-interfaces \
        --dhcp-range="$POOL_FIRST,$POOL_LAST,$NETMASK,1h" \
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
ready_probe() {
    timeout 5 ip netns exec "$TAG-$1-c" perfdhcp -4 -r 20 -n 3 -W 300000 -l "$CLIENT_ADDR" \
        -b mac=02:ff:ff:00:00:01 "$SERVER_ADDR" 2>/dev/null |
        awk '/Statistics for: REQUEST-ACK/ { s = 1 } s && /^received packets:/ { ok = $3 > 0 } END { exit !ok }'
}
# (wait_ready, lib.sh, polls it until the server answers; stop_server, udp_counters and rss_kib
# are there too.)

# ---------------------------------------------------------------------------------------------
# One step: fresh server (empty lease store), probe, idle RSS, perfdhcp at RATE, RSS after load.
# run_step SERVER MODE RATE appends one line to steps.tsv and sets STEP_PASS=1|0; it fails
# (returns 1) only when the server did not start or answer.
#
# steps.tsv columns: 1 server  2 macs  3 step  4 rate  5 secs  6 do_sent  7 do_recv  8 ra_sent
#   9 ra_recv  10 failed_pct  11 acks_per_s  12 do_avg_ms  13 do_max_ms  14 ra_avg_ms  15 ra_max_ms
#   16 rss_idle_kib  17 rss_load_kib  18 rss_peak_kib  19 status  20 orphans  21 offered_twice
#   22 acked_twice  23 udp_in (datagrams the server's kernel received)  24 rcvbuf_drops (of those,
#   dropped because the server's socket buffer was full)  25 shed (requests ours dropped itself
#   because too many ACKs were waiting for the disk: its dhcp_dropped_overload_total; "-" for peers)
#   26 others_pct (CPU other processes took during the step, % of the machine)  27 gen_drops
#   (answers the kernel dropped because perfdhcp's socket buffer was full: the load generator's limit)

STEPS="$OUT/steps.tsv"
printf 'server\tmacs\tstep\trate\tsecs\tdo_sent\tdo_recv\tra_sent\tra_recv\tfailed_pct\tacks_per_s\tdo_avg_ms\tdo_max_ms\tra_avg_ms\tra_max_ms\trss_idle_kib\trss_load_kib\trss_peak_kib\tstatus\torphans\toffered_twice\tacked_twice\tudp_in\trcvbuf_drops\tshed\tothers_pct\tgen_drops\n' >"$STEPS"
declare -A STEPNO=()
MAC_LIST="$OUT/macs.txt"

run_step() {
    local srv=$1 mode=$2 rate=$3
    local n=$(( ${STEPNO[$srv]:-0} + 1 )); STEPNO[$srv]=$n
    local id; id=$(printf '%s-%02d-%s-r%s' "$srv" "$n" "$mode" "$rate")
    local dir="$STATE/$id" slog="$RAW/$id.server.log" plog="$RAW/$id.perfdhcp.txt"
    mkdir -p "$dir"
    STEP_PASS=0; STEP_OTHERS=0
    local cpu0 all0 own0; read -r cpu0 all0 <<<"$(machine_cpu)"; times >"$OUT/.times"; own0=$(own_cpu)

    "start_$srv" "$dir" "$slog"
    local pid=$SRV_PID; PIDS[$pid]="$srv"
    if ! wait_ready "$srv" "$pid"; then
        local why="no answer to a probe in ${READY_LIMIT_S}s"; kill -0 "$pid" 2>/dev/null || why="exited"
        stop_server "$pid"
        printf '%s\t%s\t%d\t%s\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\tSTART-FAILED(%s)\t-\t-\t-\t-\t-\t-\t-\t-\n' \
            "$srv" "$mode" "$n" "$rate" "$why" >>"$STEPS"
        log "  $srv @ $rate/s: server failed to start ($why); log: $slog"
        LAST_START_LOG=$slog
        return 1
    fi
    local rss_idle; rss_idle=$(rss_kib "$pid" VmRSS)
    local udp0 rcvbuf0 gudp0 gdrop0; read -r udp0 rcvbuf0 <<<"$(udp_counters "$TAG-$srv-s")"
    read -r gudp0 gdrop0 <<<"$(udp_counters "$TAG-$srv-c")"

    local count=$((rate * STEP_SECS)); [ $count -gt $MAX_EXCHANGES ] && count=$MAX_EXCHANGES
    local secs; secs=$(awk -v c="$count" -v r="$rate" 'BEGIN { printf "%.3f", c / r }')
    local clients
    if [ "$mode" = rnd ]; then
        clients=(-M "$MAC_LIST")
    else
        # A base MAC per step (locally administered, 02:<server letter>:<step>:...): perfdhcp
        # counts up from it. -u: perfdhcp reports any address given to two clients.
        clients=(-u -R "$SEQ_CLIENTS" -b "mac=$(printf '02:%02x:%02x:00:00:00' "'${srv:0:1}" "$n")")
    fi
    timeout $((STEP_SECS + 30)) ip netns exec "$TAG-$srv-c" "${GEN_CPU[@]}" nice -n -5 \
        perfdhcp -4 $PERFDHCP_MODE -r "$rate" -n "$count" -p "$STEP_SECS" "${clients[@]}" \
        -W "$EXIT_WAIT_US" -t 1 -l "$CLIENT_ADDR" "$SERVER_ADDR" >"$plog" 2>&1 &
    local gen=$!; PIDS[$gen]="perfdhcp"
    wait_pid "$gen"; local prc=$?

    local alive=1; kill -0 "$pid" 2>/dev/null || alive=0
    local udp1 rcvbuf1; read -r udp1 rcvbuf1 <<<"$(udp_counters "$TAG-$srv-s")"
    local udp_in=$(( ${udp1:-0} - ${udp0:-0} )) rcvbuf_drops=$(( ${rcvbuf1:-0} - ${rcvbuf0:-0} ))
    local gudp1 gdrop1; read -r gudp1 gdrop1 <<<"$(udp_counters "$TAG-$srv-c")"
    local gen_drops=$(( ${gdrop1:-0} - ${gdrop0:-0} ))
    local rss_load rss_peak
    rss_load=$(rss_kib "$pid" VmRSS); rss_peak=$(rss_kib "$pid" VmHWM)
    stop_server "$pid"
    [ "$KEEP_STATE" = 1 ] || rm -rf "$dir"
    local cpu1 all1 own1; read -r cpu1 all1 <<<"$(machine_cpu)"; times >"$OUT/.times"; own1=$(own_cpu)
    STEP_OTHERS=$(others_pct "$cpu0" "$cpu1" "$all0" "$all1" "$own0" "$own1")
    local shed=-
    if [ "$srv" = ours ]; then
        shed=$(grep -o 'dhcp_dropped_overload_total=[0-9]*' "$slog" | tail -1 | cut -d= -f2)
        shed=${shed:-0}
    fi

    # perfdhcp's final report has a DISCOVER-OFFER and a REQUEST-ACK section.
    local do_sent do_recv ra_sent ra_recv orphans nu_do nu_ra do_avg do_max ra_avg ra_max
    read -r do_sent do_recv ra_sent ra_recv orphans nu_do nu_ra do_avg do_max ra_avg ra_max <<<"$(awk '
        /Statistics for: DISCOVER-OFFER/ { s = "do" } /Statistics for: REQUEST-ACK/ { s = "ra" }
        s && /^sent packets:/          { v[s "_sent"] = $3 }
        s && /^received packets:/      { v[s "_recv"] = $3 }
        s && /^avg delay:/ && $3 ~ /^[0-9.]+$/ { v[s "_avg"] = $3 }
        s && /^max delay:/ && $3 ~ /^[0-9.]+$/ { v[s "_max"] = $3 }
        s && /^orphans:/               { orphans += $2 }
        s && /^non unique addresses:/  { nu[s] = $4 }
        function d(k) { return (k in v) ? v[k] : "nan" }
        END { printf "%d %d %d %d %d %d %d %s %s %s %s\n", v["do_sent"], v["do_recv"], v["ra_sent"],
                v["ra_recv"], orphans, nu["do"], nu["ra"], d("do_avg"), d("do_max"), d("ra_avg"), d("ra_max") }' "$plog")"
    local failed ackps
    failed=$(awk -v s="$do_sent" -v r="$ra_recv" 'BEGIN { printf "%.3f", (s > 0) ? 100 * (s - r) / s : 100 }')
    ackps=$(awk -v r="$ra_recv" -v t="$secs" 'BEGIN { printf "%.0f", r / t }')

    local status=pass
    if [ "$alive" = 0 ]; then
        status="FAIL(server died)"
    elif [ "$prc" -ne 0 ] && [ "$prc" -ne 3 ]; then
        status="FAIL(perfdhcp exit $prc)"
    elif awk -v d="$failed" -v l="$DROP_LIMIT_PCT" 'BEGIN { exit !(d >= l) }'; then
        status="fail"
    elif [ "$do_sent" -lt $((count * SENT_MIN_PCT / 100)) ]; then
        status="fail(perfdhcp sent only $do_sent of $count)"
    fi
    [ "$status" = pass ] && STEP_PASS=1

    printf '%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
        "$srv" "$mode" "$n" "$rate" "$secs" "$do_sent" "$do_recv" "$ra_sent" "$ra_recv" "$failed" "$ackps" \
        "$do_avg" "$do_max" "$ra_avg" "$ra_max" "${rss_idle:--}" "${rss_load:--}" "${rss_peak:--}" "$status" \
        "$orphans" "$nu_do" "$nu_ra" "$udp_in" "$rcvbuf_drops" "$shed" "$STEP_OTHERS" "$gen_drops" >>"$STEPS"
    log "$(printf '  %-8s %s %6s/s %5ss  acks %6s (%6s/s)  failed %7s%%  DORA avg %8s ms  RSS %6s -> %6s KiB  %s%s' \
        "$srv" "$mode" "$rate" "$secs" "$ra_recv" "$ackps" "$failed" \
        "$(awk -v a="$do_avg" -v b="$ra_avg" 'BEGIN { printf "%.3f", a + b }')" \
        "${rss_idle:--}" "${rss_load:--}" "$status" "$([ "$STEP_OTHERS" -gt "$NOISE_PCT" ] && echo " [others took ${STEP_OTHERS}% CPU]")$([ "$rcvbuf_drops" -gt 0 ] && echo " (kernel dropped $rcvbuf_drops: socket buffer full)")$([ "$shed" != - ] && [ "$shed" -gt 0 ] && echo " (shed $shed: too many ACKs waiting for the disk)")$([ "$gen_drops" -gt 0 ] && echo " (perfdhcp's socket dropped $gen_drops answers)")")"
    if [ "$nu_ra" -gt 0 ]; then
        log "  $srv: ADDRESS ACKED TO TWO CLIENTS: perfdhcp -u counted $nu_ra; see $plog"
    fi
    if [ "$alive" = 0 ]; then
        log "  $srv DIED during the step; last lines of $slog:"
        tail -n 15 "$slog" | sed 's/^/    | /' | tee -a "$OUT/report.txt"
    fi
    return 0
}

# ---------------------------------------------------------------------------------------------
# Start: machine state, versions, build ours (busy_pct, machine_cpu, own_cpu: lib.sh)

log "DHCP benchmark: perfdhcp against ${ORDER[*]}"
log "results: $OUT"
log "machine: $(nproc) CPUs, kernel $(uname -r); perfdhcp $(perfdhcp -v 2>&1 | awk '{print $2}'), dnsmasq $(dnsmasq -v | awk 'NR == 1 {print $3}'), kea-dhcp4 $(kea-dhcp4 -v 2>&1 | head -1)"

declare -A FAILED=()     # srv -> why it could not be measured
declare -A FAILED_LOG=() # srv -> the log to show
if [ -n "${WANT[ours]:-}" ]; then
    if [ "$BUILD" = 1 ]; then
        if ! build_ours; then
            FAILED[ours]="cargo build --release -p proximity-appliance failed"; FAILED_LOG[ours]="$RAW/build.log"
        fi
    fi
    if [ -z "${FAILED[ours]:-}" ] && [ ! -x "$OURS_BIN" ]; then
        FAILED[ours]="no binary at $OURS_BIN"
    fi
    if [ -z "${FAILED[ours]:-}" ]; then
        # Run a copy: others building in the same checkout may replace target/release/ mid-run.
        cp "$OURS_BIN" "$OUT/proximity-appliance" && OURS_BIN="$OUT/proximity-appliance"
        log "ours: built from $(cd "$ROOT" && git log -1 --format='%h %s' -- appliance config Cargo.toml Cargo.lock 2>/dev/null | cut -c1-72)$(cd "$ROOT" && [ -n "$(git status --porcelain -- appliance config Cargo.toml Cargo.lock 2>/dev/null)" ] && echo ' (+ uncommitted changes)')"
    fi
    if [ -z "${FAILED[ours]:-}" ]; then
        mkdir -p "$STATE/validate"; write_ours_config "$STATE/validate"
        if ! "$OURS_BIN" --config "$STATE/validate/proximity.toml" --validate >"$RAW/ours-validate.log" 2>&1; then
            FAILED[ours]="the benchmark config does not pass --validate"; FAILED_LOG[ours]="$RAW/ours-validate.log"
        fi
    fi
    if [ -n "${FAILED[ours]:-}" ]; then
        log "OURS FAILED: ${FAILED[ours]}"
        [ -n "${FAILED_LOG[ours]:-}" ] && tail -n 20 "${FAILED_LOG[ours]}" | sed 's/^/    | /' | tee -a "$OUT/report.txt"
    fi
fi

if [[ " ${MODES[*]} " == *" rnd "* ]]; then
    awk -v n="$RND_MACS" 'BEGIN { srand(); while (c < n) {
            m = sprintf("02:%02x:%02x:%02x:%02x:%02x", int(rand() * 256), int(rand() * 256),
                        int(rand() * 256), int(rand() * 256), int(rand() * 256))
            if (!(m in seen)) { seen[m] = 1; print m; c++ } } }' >"$MAC_LIST"
fi

for s in "${ORDER[@]}"; do
    make_pair "$s" || { log "cannot create the namespaces for $s"; exit 1; }
done

wait_quiet

# ---------------------------------------------------------------------------------------------
# Search. A contestant is a server with a MAC mode. Round robin: each round runs one step of every
# contestant still searching, so a change in the machine's background load hits all alike. Ladder
# up to the first failure, then bisect between the last pass and the first failure.

CONTESTANTS=()
declare -A LO=() HI=() RUNG=() NEXT=() DONE=() BIS=() RETRIED=() RETRIED_STEP=()
NOISE_RETRIES=0
for m in "${MODES[@]}"; do
    for s in "${ORDER[@]}"; do
        c="$s:$m"; CONTESTANTS+=("$c")
        LO[$c]=0; HI[$c]=0; RUNG[$c]=0; NEXT[$c]=${LADDER[0]}; BIS[$c]=0
        [ -n "${FAILED[$s]:-}" ] && DONE[$c]=1
    done
done

round_to() {  # a readable rate between lo and hi (exclusive), or -1 when there is none
    awk -v lo="$1" -v hi="$2" 'BEGIN { m = (lo + hi) / 2; g = (m >= 4000) ? 250 : (m >= 1000) ? 100 : (m >= 200) ? 25 : 5;
        r = int(m / g + 0.5) * g; if (r <= lo) r = lo + g; if (r >= hi) r = -1; print r }'
}

advance() {  # advance CONTESTANT PASSED: picks its next rate, or marks it done
    local c=$1 pass=$2
    if [ "$FIXED" = 1 ]; then            # --rates: every listed rate, whatever happens
        RUNG[$c]=$(( RUNG[$c] + 1 ))
        if [ "${RUNG[$c]}" -ge ${#LADDER[@]} ]; then DONE[$c]=1; else NEXT[$c]=${LADDER[${RUNG[$c]}]}; fi
        return
    fi
    if [ "$pass" = 1 ]; then LO[$c]=${NEXT[$c]}; else HI[$c]=${NEXT[$c]}; fi
    if [ "${HI[$c]}" = 0 ]; then         # no failure yet: next rung
        RUNG[$c]=$(( RUNG[$c] + 1 ))
        if [ "${RUNG[$c]}" -ge ${#LADDER[@]} ]; then DONE[$c]=1; else NEXT[$c]=${LADDER[${RUNG[$c]}]}; fi
        return
    fi
    if [ "${BIS[$c]}" -ge "$BISECTS" ]; then DONE[$c]=1; return; fi
    local next
    if [ "${LO[$c]}" = 0 ]; then         # failed at the lowest rate tried: go down 8x
        next=$(( HI[$c] / 8 ))
        if [ "$next" -lt 10 ]; then DONE[$c]=1; return; fi
    else
        next=$(round_to "${LO[$c]}" "${HI[$c]}")
        if [ "$next" = -1 ]; then DONE[$c]=1; return; fi
    fi
    BIS[$c]=$(( BIS[$c] + 1 )); NEXT[$c]=$next
}

read -r M0_BUSY M0_ALL <<<"$(machine_cpu)"; times >"$OUT/.times"; OWN0=$(own_cpu)
SEARCH_S=$SECONDS
log ""
log "search: ${STEP_SECS}s steps, each with a fresh server and an empty lease store; rates ${LADDER[*]}/s up to"
log "the first failure, then $BISECTS bisections; a step passes with under ${DROP_LIMIT_PCT}% failed DORA exchanges."
[[ " ${MODES[*]} " == *" seq "* ]] && log "seq = $(mode_name seq) (perfdhcp -u -R $SEQ_CLIENTS -b mac=<base per step>)"
[[ " ${MODES[*]} " == *" rnd "* ]] && log "rnd = $(mode_name rnd) (perfdhcp -M <$RND_MACS random MACs>)"
round=0
while :; do
    active=()
    for c in "${CONTESTANTS[@]}"; do [ -z "${DONE[$c]:-}" ] && active+=("$c"); done
    [ ${#active[@]} -eq 0 ] && break
    if [ $((SECONDS - SEARCH_S)) -gt "$TIME_BUDGET_S" ]; then
        log "TIME BUDGET (${TIME_BUDGET_S}s) USED UP: search stopped early for ${active[*]}; their figures are lower bounds"
        break
    fi
    round=$((round + 1)); [ $round -gt $MAX_ROUNDS ] && break
    for c in "${active[@]}"; do
        s=${c%%:*}; m=${c#*:}
        [ -n "${FAILED[$s]:-}" ] && { DONE[$c]=1; continue; }
        if ! run_step "$s" "$m" "${NEXT[$c]}"; then
            # A server that will not start is not measured further (one retry, at a lower rate).
            if [ "${LO[$c]}" = 0 ] || [ -n "${RETRIED[$s]:-}" ]; then
                FAILED[$s]="it did not start or answer"; FAILED_LOG[$s]=$LAST_START_LOG
                log "$(name "$s" | tr a-z A-Z) FAILED: it did not start or answer a probe; last lines of $LAST_START_LOG:"
                tail -n 20 "$LAST_START_LOG" | sed 's/^/    | /' | tee -a "$OUT/report.txt"
                for x in "${CONTESTANTS[@]}"; do [ "${x%%:*}" = "$s" ] && DONE[$x]=1; done
            else
                RETRIED[$s]=1
            fi
            continue
        fi
        if [ "$STEP_PASS" = 0 ] && [ "$STEP_OTHERS" -gt "$NOISE_PCT" ] && [ "$NOISE_RETRIES" -lt "$MAX_NOISE_RETRIES" ] \
            && [ -z "${RETRIED_STEP[$c@${NEXT[$c]}]:-}" ]; then
            RETRIED_STEP[$c@${NEXT[$c]}]=1; NOISE_RETRIES=$((NOISE_RETRIES + 1))
            log "  (other processes took ${STEP_OTHERS}% of the CPU during that step: it runs once more)"
            continue
        fi
        advance "$c" "$STEP_PASS"
    done
done
read -r M1_BUSY M1_ALL <<<"$(machine_cpu)"; times >"$OUT/.times"; OWN1=$(own_cpu); rm -f "$OUT/.times"
OTHERS=$(others_pct "$M0_BUSY" "$M1_BUSY" "$M0_ALL" "$M1_ALL" "$OWN0" "$OWN1")

# ---------------------------------------------------------------------------------------------
# Report

mib() { awk -v k="$1" 'BEGIN { if (k == "" || k == "-") print "-"; else printf "%.1f", k / 1024 }'; }
# ratio: lib.sh

# best SERVER MODE -> "rate acks failed avg max rss_idle rss_load rss_peak" of its best passing step
best() {
    awk -F'\t' -v s="$1" -v m="$2" 'NR > 1 && $1 == s && $2 == m && $19 == "pass" && $4 + 0 >= top {
            top = $4 + 0
            line = sprintf("%s %s %s %.3f %.3f %.1f %.1f %.1f", $4, $11, $10, $12 + $14, $13 + $15, $16 / 1024, $17 / 1024, $18 / 1024) }
        END { print line }' "$STEPS"
}
# at SERVER MODE RATE -> "avg max rss_load" of its passing step at RATE
at() {
    awk -F'\t' -v s="$1" -v m="$2" -v r="$3" 'NR > 1 && $1 == s && $2 == m && $4 == r && $19 == "pass" {
        line = sprintf("%.3f %.3f %.1f", $12 + $14, $13 + $15, $17 / 1024) } END { print line }' "$STEPS"
}
# same MODE PEER -> the highest rate both ours and PEER passed
same() {
    awk -F'\t' -v m="$1" -v p="$2" 'NR > 1 && $2 == m && $19 == "pass" && ($1 == "ours" || $1 == p) { ok[$4 "," $1] = 1; r[$4] = 1 }
        END { top = ""; for (x in r) if (ok[x ",ours"] && ok[x "," p] && (top == "" || x + 0 > top + 0)) top = x; print top }' "$STEPS"
}
notes() {  # notes SERVER MODE: what a reader must know about these steps
    awk -F'\t' -v s="$1" -v m="$2" -v best="${3:-0}" -v noise="$NOISE_PCT" 'NR > 1 && $1 == s && $2 == m {
            if ($19 != "pass" && $4 + 0 <= best + 0 && $19 !~ /START/) low = low " " $4 (($26 + 0 > noise) ? "(others " $26 "% CPU)" : "")
            if ($19 ~ /died/) died = died " " $4
            acked += $22; offered += $21
            if ($4 + 0 > best + 0 && $19 != "pass" && $27 + 0 > 0 && (gen == "" || $4 + 0 < genr)) { gen = $27; genr = $4 + 0; genf = ($7 + $9 > 0) ? 100 * $27 / ($7 + $9) : 0 } }
        END {
            if (died != "") printf "DIED during the steps at%s/s. ", died
            if (acked > 0) printf "ADDRESSES ACKED TO TWO CLIENTS: %d (perfdhcp -u). ", acked
            if (offered > 0) printf "offered an address already offered to another client %d times (the second REQUEST is NAKed). ", offered
            if (low != "") printf "also failed at or below its best rate:%s (noise?). ", low
            if (gen != "") printf "at %d/s (failed) perfdhcp itself dropped %d answers (%.1f%% of them, its socket buffer was full): the load generator is near its limit. ", genr, gen, genf
        }' "$STEPS"
}

log ""
log "=== DHCP results: $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, ${STEP_SECS}s steps, took $((SECONDS - START_S))s ==="
log "other processes used about ${OTHERS}% of the CPUs during the measurements$( [ "$OTHERS" -gt 10 ] && echo ": NOISY, compare with care")"
log "rate = highest offered DORA/s with under ${DROP_LIMIT_PCT}% failed exchanges (fresh server, empty store)."
log "latency at that rate: avg = DISCOVER->OFFER avg + REQUEST->ACK avg; max = sum of the maxima (upper bound)."
log "RSS: idle = after start, load = right after the step at that rate, peak = VmHWM."
for s in "${ORDER[@]}"; do
    if [ -n "${FAILED[$s]:-}" ] && [ -z "$(for m in "${MODES[@]}"; do best "$s" "$m"; done)" ]; then
        log ""
        log "$(name "$s" | tr a-z A-Z) FAILED: ${FAILED[$s]}${FAILED_LOG[$s]:+; last lines of ${FAILED_LOG[$s]}:}"
        [ -n "${FAILED_LOG[$s]:-}" ] && tail -n 12 "${FAILED_LOG[$s]}" | sed 's/^/    | /' | tee -a "$OUT/report.txt"
    fi
done

for m in "${MODES[@]}"; do
    log ""
    log "--- $(mode_name "$m") ---"
    log "$(printf '%-10s %8s %8s %8s %9s %9s %8s %8s %8s' server "rate/s" "acks/s" "failed%" "avg ms" "max ms" "RSS idle" "RSS load" "RSS peak")"
    declare -A B=()
    for s in "${ORDER[@]}"; do
        B[$s]=$(best "$s" "$m")
        if [ -z "${B[$s]}" ]; then
            if [ -n "${FAILED[$s]:-}" ]; then log "$(printf '%-10s %s' "$(name "$s")" "FAILED: ${FAILED[$s]}")"
            else log "$(printf '%-10s %s' "$(name "$s")" "no passing rate (lowest tried: $(awk -F'\t' -v s="$s" -v m="$m" 'NR > 1 && $1 == s && $2 == m { print $4 }' "$STEPS" | sort -n | head -1)/s)")"; fi
            continue
        fi
        read -r rate acks failed avg max ri rl rp <<<"${B[$s]}"
        log "$(printf '%-10s %8s %8s %8s %9s %9s %7s M %7s M %7s M' "$(name "$s")" "$rate" "$acks" "$failed" "$avg" "$max" "$ri" "$rl" "$rp")"
        n=$(notes "$s" "$m" "$rate"); [ -n "$n" ] && log "           note: $n"
    done
    if [ -n "${B[ours]:-}" ]; then
        read -r o_rate _ _ o_avg o_max o_ri o_rl _ <<<"${B[ours]}"
        first=1
        for p in dnsmasq kea; do
            [ -n "${B[$p]:-}" ] || continue
            if [ "$first" = 1 ]; then
                log "$(printf '%-18s %7s %8s %8s %8s %8s  %s' "ratio ours/peer" "rate" "lat avg" "lat max" "RSS idle" "RSS load" "| at the same rate: lat avg  lat max  RSS")"
                first=0
            fi
            read -r p_rate _ _ p_avg p_max p_ri p_rl _ <<<"${B[$p]}"
            like="-"
            r=$(same "$m" "$p")
            if [ -n "$r" ]; then
                read -r oa om ol <<<"$(at ours "$m" "$r")"; read -r pa pm pl <<<"$(at "$p" "$m" "$r")"
                like=$(printf '@%6s/s %8s %8s %6s' "$r" "$(ratio "$oa" "$pa")" "$(ratio "$om" "$pm")" "$(ratio "$ol" "$pl")")
            fi
            log "$(printf '%-18s %7s %8s %8s %8s %8s  | %s' "  ours/$(name "$p")" "$(ratio "$o_rate" "$p_rate")" \
                "$(ratio "$o_avg" "$p_avg")" "$(ratio "$o_max" "$p_max")" "$(ratio "$o_ri" "$p_ri")" "$(ratio "$o_rl" "$p_rl")" "$like")"
        done
    elif [ -n "${WANT[ours]:-}" ]; then
        log "ratios: none, ours has no result (${FAILED[ours]:-no passing rate})"
    fi
    unset B
done
log ""
log "(ratios: rate above 1 = ours faster; latency and RSS below 1 = ours lower. \"At the same rate\" compares"
log " ours and the peer at the highest rate both passed, so with the same number of leases.)"
log "every step: $STEPS; perfdhcp output and server logs: $RAW"
log "this report: $OUT/report.txt"
exit 0
