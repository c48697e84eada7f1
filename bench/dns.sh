#!/usr/bin/env bash
# bench/dns.sh: DNS benchmark of proximity-appliance against dnsmasq, with dnsperf, in the same
# run on this machine. Each server gets its own pair of network namespaces (server ns + client
# ns joined by a veth pair), and both forward to one upstream dnsmasq in a third namespace; no
# packet leaves them.
#
# Two cases, UDP, each server serving the same 200-name prox.local zone and forwarding to the
# same upstream: "auth" (90% existing names of prox.local, 10% NXDOMAIN names) and "fwd" (200
# names of example.test, asked again and again after a warm-up: answers from each server's
# cache). dnsperf runs in max-QPS mode for a fixed time, with each server on a whole core and
# again held to part of it (so the server, not dnsperf, sets the pace); then both servers at the
# same fixed rate, for latency under equal load. Reports queries/s, lost %, latency, CPU, RSS and
# the ratios ours/dnsmasq. See bench/README.md for how to read the output.
#
# Usage: sudo bench/dns.sh [--quick] [options]      (--help lists them)
set -uo pipefail
. "$(dirname "$0")/lib.sh"

# ---------------------------------------------------------------------------------------------
# Settings

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OURS_BIN="$ROOT/target/release/proximity-appliance"

LAN_PREFIX=16
SERVER_ADDR=10.20.0.1
CLIENT_ADDR=10.20.0.2                 # dnsperf: inside the LAN, so it gets the LAN view
RESERVED="10.20.0.2-10.20.3.255"      # room for the 200 reserved names at 10.20.1.1-200
POOL="10.20.4.0-10.20.255.250"
UP_ADDR=10.99.0.1                     # the upstream, on a bridge in its own namespace
OURS_WAN=10.99.0.2
DNSMASQ_WAN=10.99.0.3
NAMES=200                             # host001..host200.prox.local and name001..name200.example.test
NX_NAMES=200                          # nx001..nx200.prox.local: NXDOMAIN
TTL=30                                # both servers' TTL for their own names (our default)
UP_TTL=3600                           # the upstream's names stay cached through the run
CACHE=4096                            # both caches (our default; dnsmasq's is 150)
READY_LIMIT_S=20
STOP_LIMIT_S=10
# dnsperf: clients (source ports), queries in flight, per-query timeout (an answer later than
# this counts as lost). One thread: it has one CPU of its own (below).
CLIENTS=${DNSPERF_CLIENTS:-8}
IN_FLIGHT=${DNSPERF_IN_FLIGHT:-200}
QUERY_TIMEOUT_S=1

QUICK=0; BUILD=1; SECS=""; ROUNDS=""; WAIT_QUIET=0; CASES="auth,fwd"; SAME_RATE_PCT=50; CPU_CAP_PCT=40

usage() {
    sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    cat <<'EOF'

Options:
  --quick           short run: 3 s runs, one round (about 1 minute instead of 6)
  --no-build        use the existing target/release/proximity-appliance
  --cases LIST      auth,fwd (default: both)
  --secs N          length of each dnsperf run (default 10, --quick 3)
  --rounds N        max-QPS runs per server and case, interleaved; the median is reported (default 3, --quick 1)
  --cpu-cap PCT     also run max-QPS with each server held to PCT% of its core (cgroup CPU quota), so
                    the server, not dnsperf, is the bottleneck (default 40; 0 = no capped runs)
  --same-rate PCT   the equal-load runs go at PCT% of the lower of the two max rates (default 50; 0 = none)
  --wait-quiet S    first wait up to S seconds for other processes to use under 15% CPU
  -h, --help        this text
Exit status: 0 done (read the report: a server may have failed), 1 error, 2 tools missing.
EOF
}

ARGS="$*" # kept for the root hint: the loop below consumes "$@"
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --no-build) BUILD=0 ;;
        --cases) shift; CASES="${1:-}" ;;
        --cases=*) CASES="${1#--cases=}" ;;
        --secs) shift; SECS="${1:-}" ;;
        --secs=*) SECS="${1#--secs=}" ;;
        --rounds) shift; ROUNDS="${1:-}" ;;
        --rounds=*) ROUNDS="${1#--rounds=}" ;;
        --cpu-cap) shift; CPU_CAP_PCT="${1:-}" ;;
        --cpu-cap=*) CPU_CAP_PCT="${1#--cpu-cap=}" ;;
        --same-rate) shift; SAME_RATE_PCT="${1:-}" ;;
        --same-rate=*) SAME_RATE_PCT="${1#--same-rate=}" ;;
        --wait-quiet) shift; WAIT_QUIET="${1:-}" ;;
        --wait-quiet=*) WAIT_QUIET="${1#--wait-quiet=}" ;;
        -h|--help) usage; exit 0 ;;
        *) echo "dns.sh: unknown argument: $1 (see --help)" >&2; exit 1 ;;
    esac
    shift
done

if [ "$QUICK" = 1 ]; then RUN_SECS=3; NROUNDS=1; else RUN_SECS=10; NROUNDS=3; fi
if [ -n "$SECS" ]; then
    [[ "$SECS" =~ ^[1-9][0-9]?$ ]] || { echo "dns.sh: --secs takes 1..99" >&2; exit 1; }
    RUN_SECS=$SECS
fi
if [ -n "$ROUNDS" ]; then
    [[ "$ROUNDS" =~ ^[1-9]$ ]] || { echo "dns.sh: --rounds takes 1..9" >&2; exit 1; }
    NROUNDS=$ROUNDS
fi
[[ "$WAIT_QUIET" =~ ^[0-9]{1,5}$ ]] || { echo "dns.sh: --wait-quiet takes seconds" >&2; exit 1; }
[[ "$SAME_RATE_PCT" =~ ^[0-9]{1,2}$ ]] || { echo "dns.sh: --same-rate takes 0..99" >&2; exit 1; }
[[ "$CPU_CAP_PCT" =~ ^[0-9]{1,2}$ ]] || { echo "dns.sh: --cpu-cap takes 0..99" >&2; exit 1; }
ORDER_CASES=()
IFS=, read -r -a _list <<<"$CASES"
for c in "${_list[@]}"; do
    case "$c" in auth|fwd) ORDER_CASES+=("$c") ;; *) echo "dns.sh: unknown case: $c" >&2; exit 1 ;; esac
done
[ ${#ORDER_CASES[@]} -gt 0 ] || { echo "dns.sh: no case selected" >&2; exit 1; }
SERVERS=(ours dnsmasq)

# ---------------------------------------------------------------------------------------------
# Preconditions: root, tools. Nothing is installed from here.

need_root dns.sh "$ARGS"
need_tools dns.sh "dnsperf dnsmasq-base dnsutils" dnsperf dnsmasq dig ip taskset nice timeout awk

# CPU placement: the server under test on CPU 0, dnsperf (and the idle upstream) on CPU 1, so the
# load generator never takes the server's core and both servers get the same single core. One
# CPU: no pinning.
pin_cpus

results_dir dns                          # OUT, RAW, STATE; cd "$OUT"
TAG="pxn$$"                              # namespaces: pxn<pid>-<server>-{s,c}, pxn<pid>-up

name() { case "$1" in ours) echo "proximity" ;; dnsmasq) echo "dnsmasq" ;; esac; }
case_name() {
    case "$1" in
        auth) echo "authoritative: prox.local, $NAMES names, 90% existing / 10% NXDOMAIN" ;;
        fwd) echo "cached forwarding: $NAMES names of example.test from the upstream, after a warm-up" ;;
    esac
}

# ---------------------------------------------------------------------------------------------
# Cleanup (lib.sh): every process we started (by PID) and every namespace we created, on any
# exit; then our CPU cgroups and the state.

CGROUPS=()                # CPU cgroups we made, removed on exit

cleanup_extra() {
    for cg in "${CGROUPS[@]}"; do rmdir "$cg" 2>/dev/null; done
    rm -rf "$STATE"
}
install_traps dns.sh

# ---------------------------------------------------------------------------------------------
# Namespaces. <tag>-up holds the upstream on bridge br0 (10.99.0.1). <tag>-<srv>-s holds the
# server: veth srv0 (10.20.0.1/16) to its client ns and veth wan0 (10.99.0.2 or .3) into the
# upstream's bridge. <tag>-<srv>-c holds dnsperf on veth cli0 (10.20.0.2). Every pair is created
# inside the namespaces, so no interface ever appears in the host's namespace.

make_upstream_ns() {
    local u="$TAG-up"
    ip netns add "$u" || return 1; NETNS+=("$u")
    ip -n "$u" link set lo up &&
    ip -n "$u" link add br0 type bridge && ip -n "$u" link set br0 up &&
    ip -n "$u" addr add "$UP_ADDR/24" dev br0
}

make_pair() {
    local srv=$1 wan_addr=$2 s="$TAG-$1-s" u="$TAG-up"
    make_lan_pair "$srv" || return 1     # lib.sh: srv0 <-> cli0
    ip -n "$s" link add wan0 type veth peer name "p$srv" netns "$u" || return 1
    ip -n "$s" addr add "$wan_addr/24" dev wan0 && ip -n "$s" link set wan0 up &&
    ip -n "$u" link set "p$srv" master br0 && ip -n "$u" link set "p$srv" up
}

# ---------------------------------------------------------------------------------------------
# CPU caps: each server in a CPU cgroup of its own (lib.sh's cg_*); no cgroup (or --cpu-cap 0):
# no capped runs.
cg_detect

# ---------------------------------------------------------------------------------------------
# Data: the zone both servers serve, the upstream's names, dnsperf's query files.

host_ip() { echo "10.20.1.$((10#$1))"; }          # host007 -> 10.20.1.7
make_data() {
    local i n
    : >"$STATE/hosts.prox.local"; : >"$STATE/reservations.toml"; : >"$STATE/upstream.hosts"
    for i in $(seq 1 "$NAMES"); do
        n=$(printf '%03d' "$i")
        printf '%s host%s.prox.local\n' "$(host_ip "$n")" "$n" >>"$STATE/hosts.prox.local"
        printf '\n[[dhcp.reservations]]\nmac = "02:00:00:00:%02x:%02x"\nip = "%s"\nname = "host%s"\n' \
            $((i / 256)) $((i % 256)) "$(host_ip "$n")" "$n" >>"$STATE/reservations.toml"
        printf '198.51.%d.%d name%s.example.test\n' $((100 + i / 250)) $((i % 250 + 1)) "$n" >>"$STATE/upstream.hosts"
    done
    # auth: every existing name 9 times and every NXDOMAIN name once (90/10), shuffled with a
    # fixed seed so both servers get the same sequence.
    awk -v n="$NAMES" -v x="$NX_NAMES" 'BEGIN { srand(42)
            for (i = 1; i <= n; i++) for (k = 0; k < 9; k++) q[c++] = sprintf("host%03d.prox.local A", i)
            for (i = 1; i <= x; i++) q[c++] = sprintf("nx%03d.prox.local A", i)
            for (i = c - 1; i > 0; i--) { j = int(rand() * (i + 1)); t = q[i]; q[i] = q[j]; q[j] = t }
            for (i = 0; i < c; i++) print q[i] }' >"$STATE/queries.auth"
    awk -v n="$NAMES" 'BEGIN { for (i = 1; i <= n; i++) printf "name%03d.example.test A\n", i }' >"$STATE/queries.fwd"
}

# ---------------------------------------------------------------------------------------------
# Servers. start_<srv> DIR LOG starts it in the background and sets SRV_PID; the command chain
# (ip netns exec, taskset, nice) execs, so $! is the server.

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
# DNS alone is measured; dnsmasq serves no DHCP either. The names come from reservations.
enabled = false
range = "$POOL"
reserved = "$RESERVED"

[dns]
upstreams = ["$UP_ADDR"]
ttl = "${TTL}s"
cache_size = $CACHE

[proxy]
# DNS alone is measured: the proxy and the admin API (which the peers do not have) are off.
enabled = false

[admin]
enabled = false

[state]
dir = "$1/state"
EOF
    cat "$STATE/reservations.toml" >>"$1/proximity.toml"
}

start_ours() {
    write_ours_config "$1"
    mkdir -p "$1/state"
    # RUST_LOG=warn: no per-query logging, as dnsmasq runs without --log-queries.
    local enter=(); mapfile -d '' -t enter < <(cg_enter ours)
    RUST_LOG=warn "${enter[@]}" ip netns exec "$TAG-ours-s" "${SRV_CPU[@]}" nice -n -5 \
        "$OURS_BIN" --config "$1/proximity.toml" >"$2" 2>&1 &
    SRV_PID=$!
}

start_dnsmasq() {
    # Authoritative for prox.local from the same 200 names (--local: never forwarded, unknown
    # names NXDOMAIN), TTL as ours, forwarding the rest to the upstream with a cache as big as ours.
    local enter=(); mapfile -d '' -t enter < <(cg_enter dnsmasq)
    "${enter[@]}" ip netns exec "$TAG-dnsmasq-s" "${SRV_CPU[@]}" nice -n -5 \
        dnsmasq --keep-in-foreground --conf-file=/dev/null --no-hosts --no-resolv \
        --listen-address="$SERVER_ADDR" --bind-interfaces --port=53 \
        --domain=prox.local --local=/prox.local/ --addn-hosts="$STATE/hosts.prox.local" \
        --local-ttl="$TTL" --server="$UP_ADDR" --cache-size="$CACHE" \
        --pid-file="$1/dnsmasq.pid" --log-facility=- >"$2" 2>&1 &
    SRV_PID=$!
}

start_upstream() {
    ip netns exec "$TAG-up" "${GEN_CPU[@]}" \
        dnsmasq --keep-in-foreground --conf-file=/dev/null --no-hosts --no-resolv \
        --listen-address="$UP_ADDR" --bind-interfaces --port=53 \
        --local=/example.test/ --addn-hosts="$STATE/upstream.hosts" --local-ttl="$UP_TTL" \
        --log-queries --pid-file="$STATE/upstream.pid" --log-facility=- >"$RAW/upstream.log" 2>&1 &
    UP_PID=$!
}

# One query from the client namespace; prints the status (NOERROR, NXDOMAIN, ...) or nothing.
ask() {
    timeout 5 ip netns exec "$TAG-$1-c" dig @"$SERVER_ADDR" +tries=1 +time=1 "$2" A 2>/dev/null |
        awk '/->>HEADER<<-/ { for (i = 1; i <= NF; i++) if ($i == "status:") { s = $(i + 1); sub(",", "", s); print s } }'
}

# Ready when the server answers a name of its zone (wait_ready, lib.sh, polls this).
ready_probe() { [ "$(ask "$1" host001.prox.local)" = NOERROR ]; }

# Correctness before speed: an existing name, a missing one and an upstream name, as dig sees them.
check_answers() {
    local srv=$1 a b c
    a=$(ask "$srv" host123.prox.local); b=$(ask "$srv" nx007.prox.local); c=$(ask "$srv" name042.example.test)
    log "  $(name "$srv"): host123.prox.local -> ${a:-no answer}, nx007.prox.local -> ${b:-no answer}, name042.example.test -> ${c:-no answer}"
    [ "$a" = NOERROR ] && [ "$b" = NXDOMAIN ] && [ "$c" = NOERROR ]
}

# (stop_server, udp_counters and rss_kib: lib.sh)

# CPU ticks (user + system, all threads) a process has used.
cpu_ticks() { awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null || echo 0; }

# ---------------------------------------------------------------------------------------------
# One dnsperf run: run SERVER CASE KIND SECS [QPS] appends a line to runs.tsv and sets RUN_QPS.
#
# runs.tsv columns: 1 server  2 case  3 kind (max|cap|same|warmup)  4 round  5 secs  6 limit_qps
#   7 sent  8 completed  9 lost  10 lost_pct  11 qps  12 avg_ms  13 min_ms  14 max_ms  15 stddev_ms
#   16 noerror  17 nxdomain  18 other_rcodes  19 rss_kib  20 hwm_kib  21 udp_in  22 rcvbuf_drops
#   23 srv_cpu_pct (the server's CPU time over the run: 100 = its whole core)  24 gen_cpu_pct (dnsperf's:
#   near 100 means dnsperf, not the server, set the pace)

declare -A RSS_IDLE=() RSS_END=() HWM_END=() SAME_RATE=()
RUNS="$OUT/runs.tsv"
printf 'server\tcase\tkind\tround\tsecs\tlimit_qps\tsent\tcompleted\tlost\tlost_pct\tqps\tavg_ms\tmin_ms\tmax_ms\tstddev_ms\tnoerror\tnxdomain\tother_rcodes\trss_kib\thwm_kib\tudp_in\trcvbuf_drops\tsrv_cpu_pct\tgen_cpu_pct\n' >"$RUNS"
declare -A SRVPID=()

run_dnsperf() {
    local srv=$1 cse=$2 kind=$3 round=$4 secs=$5 qps=${6:-}
    local id; id=$(printf '%s-%s-%s-%s' "$cse" "$kind" "$round" "$srv")
    local plog="$RAW/$id.dnsperf.txt" pid=${SRVPID[$srv]}
    local udp0 rcvbuf0; read -r udp0 rcvbuf0 <<<"$(udp_counters "$TAG-$srv-s")"
    local limit=(); [ -n "$qps" ] && limit=(-Q "$qps")
    # The warm-up is one pass over the names, a few at a time: every name reaches the upstream
    # once and lands in the cache (dnsmasq forwards at most 150 queries at once by default).
    local runs=(-l "$secs" -q "$IN_FLIGHT"); [ "$kind" = warmup ] && runs=(-n 1 -q 10)
    local tfile="$RAW/$id.time" t0; t0=$(cpu_ticks "$pid")
    timeout $((secs + 30)) ip netns exec "$TAG-$srv-c" "${GEN_CPU[@]}" nice -n -5 \
        /usr/bin/time -o "$tfile" -f '%e %U %S' dnsperf -s "$SERVER_ADDR" -d "$STATE/queries.$cse" "${runs[@]}" -c "$CLIENTS" -T 1 \
        -t "$QUERY_TIMEOUT_S" "${limit[@]}" >"$plog" 2>&1 &
    local gen=$!; PIDS[$gen]=dnsperf
    wait_pid "$gen"; local prc=$?
    local t1; t1=$(cpu_ticks "$pid")
    local udp1 rcvbuf1; read -r udp1 rcvbuf1 <<<"$(udp_counters "$TAG-$srv-s")"
    local srv_cpu gen_cpu
    read -r srv_cpu gen_cpu <<<"$(awk -v a="$t0" -v b="$t1" -v hz="$(getconf CLK_TCK)" '
        NR == 1 && $1 > 0 { printf "%.0f %.0f", 100 * (b - a) / hz / $1, 100 * ($2 + $3) / $1 }' "$tfile" 2>/dev/null)"
    local rss hwm; rss=$(rss_kib "$pid" VmRSS); hwm=$(rss_kib "$pid" VmHWM)
    local alive=1; kill -0 "$pid" 2>/dev/null || alive=0

    # dnsperf's summary: "Queries sent: N", "Queries completed: N (x%)", "Queries lost: N (x%)",
    # "Response codes: NOERROR N (x%), NXDOMAIN N (x%)", "Queries per second: Q",
    # "Average Latency (s): A (min M, max X)", "Latency StdDev (s): S".
    local line
    line=$(awk '
        /Queries sent:/      { sent = $3 }
        /Queries completed:/ { done = $3 }
        /Queries lost:/      { lost = $3 }
        /Response codes:/    { sub(/.*Response codes: */, ""); n = split($0, p, /, /)
                               for (i = 1; i <= n; i++) { split(p[i], w, " "); if (w[1] == "NOERROR") ok = w[2]; else if (w[1] == "NXDOMAIN") nx = w[2]; else other = other w[1] "=" w[2] "," } }
        /Queries per second:/ { qps = $4 }
        /Average Latency/    { avg = $4; gsub(/[(,]/, "", $6); mn = $6; gsub(/[),]/, "", $8); mx = $8 }
        /Latency StdDev/     { sd = $4 }
        END { if (sent == "") exit 1
              printf "%d\t%d\t%d\t%.3f\t%.0f\t%.3f\t%.3f\t%.3f\t%.3f\t%d\t%d\t%s\n", sent, done, lost,
                  (sent > 0) ? 100 * lost / sent : 100, qps, avg * 1000, mn * 1000, mx * 1000, sd * 1000,
                  ok, nx, (other == "") ? "-" : other }' "$plog")
    if [ -z "$line" ] || [ "$alive" = 0 ]; then
        local why="dnsperf exit $prc, no summary"; [ "$alive" = 0 ] && why="server died"
        log "  $(printf '%-9s %-4s %-6s' "$srv" "$cse" "$kind") FAILED: $why; see $plog"
        printf '%s\t%s\t%s\t%s\t%s\t%s\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\tFAILED(%s)\t-\t-\t-\t-\n' \
            "$srv" "$cse" "$kind" "$round" "$secs" "${qps:--}" "$why" >>"$RUNS"
        RUN_QPS=""
        return 1
    fi
    local udp_in=$(( ${udp1:-0} - ${udp0:-0} )) drops=$(( ${rcvbuf1:-0} - ${rcvbuf0:-0} ))
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$srv" "$cse" "$kind" "$round" "$secs" \
        "${qps:--}" "$line" "${rss:--}" "${hwm:--}" "$udp_in" "$drops" "${srv_cpu:--}" "${gen_cpu:--}" >>"$RUNS"
    local sent done lost lostp q avg mn mx sd ok nx other
    IFS=$'\t' read -r sent done lost lostp q avg mn mx sd ok nx other <<<"$line"
    RUN_QPS=$q
    log "$(printf '  %-9s %-4s %-6s %s  %8s q/s  lost %6s%%  avg %7s ms  max %8s ms  NOERROR %s NXDOMAIN %s%s  CPU srv %s%% dnsperf %s%%  RSS %s KiB%s' \
        "$(name "$srv")" "$cse" "$kind" "${qps:+@$qps}" "$q" "$lostp" "$avg" "$mx" "$ok" "$nx" \
        "$([ "$other" != - ] && echo " other $other")" "${srv_cpu:--}" "${gen_cpu:--}" "${rss:--}" \
        "$([ "$drops" -gt 0 ] && echo "  (kernel dropped $drops: socket buffer full)")")"
    return 0
}

# ---------------------------------------------------------------------------------------------
# Start: machine state, versions, build ours (busy_pct, machine_cpu, own_cpu: lib.sh)

log "DNS benchmark: dnsperf against proximity-appliance and dnsmasq"
log "results: $OUT"
log "machine: $(nproc) CPUs, kernel $(uname -r); $(dnsperf -h 2>&1 | awk '/^Version/ { print "dnsperf " $2 }'), dnsmasq $(dnsmasq -v | awk 'NR == 1 {print $3}')"

declare -A FAILED=()
if [ "$BUILD" = 1 ]; then
    build_ours || FAILED[ours]="cargo build --release -p proximity-appliance failed (log: $RAW/build.log)"
fi
[ -z "${FAILED[ours]:-}" ] && [ ! -x "$OURS_BIN" ] && FAILED[ours]="no binary at $OURS_BIN"

make_data
if [ -z "${FAILED[ours]:-}" ]; then
    mkdir -p "$STATE/validate"; write_ours_config "$STATE/validate"
    "$OURS_BIN" --config "$STATE/validate/proximity.toml" --validate >"$RAW/ours-validate.log" 2>&1 ||
        FAILED[ours]="the benchmark config does not pass --validate (log: $RAW/ours-validate.log)"
fi

make_upstream_ns || { log "cannot create the upstream namespace"; exit 1; }
make_pair ours "$OURS_WAN" || { log "cannot create the namespaces for ours"; exit 1; }
make_pair dnsmasq "$DNSMASQ_WAN" || { log "cannot create the namespaces for dnsmasq"; exit 1; }
start_upstream; PIDS[$UP_PID]=upstream

wait_quiet

log ""
log "servers: both on CPU 0 at nice -5, dnsperf on CPU 1 (-c $CLIENTS -T 1 -q $IN_FLIGHT -t $QUERY_TIMEOUT_S), UDP"
if [ "$CPU_CAP_PCT" -gt 0 ] && [ -z "$CG_BASE" ]; then
    log "no CPU cgroup controller found: no capped runs"; CPU_CAP_PCT=0
fi
for s in "${SERVERS[@]}"; do
    if [ -n "${FAILED[$s]:-}" ]; then log "$(name "$s" | tr a-z A-Z) FAILED: ${FAILED[$s]}"; continue; fi
    mkdir -p "$STATE/$s"
    cg_make "$s" || { log "cannot create a CPU cgroup for $s: no capped runs"; CG_BASE=""; }
    "start_$s" "$STATE/$s" "$RAW/$s.server.log"
    SRVPID[$s]=$SRV_PID; PIDS[$SRV_PID]=$s
    if ! wait_ready "$s" "$SRV_PID"; then
        FAILED[$s]="it did not answer host001.prox.local within ${READY_LIMIT_S}s (log: $RAW/$s.server.log)"
        log "$(name "$s" | tr a-z A-Z) FAILED: ${FAILED[$s]}"; tail -n 15 "$RAW/$s.server.log" | sed 's/^/    | /' | tee -a "$OUT/report.txt"
        stop_server "$SRV_PID"; continue
    fi
    check_answers "$s" || log "  WARNING: $(name "$s") gives wrong answers; its figures measure something else"
    RSS_IDLE[$s]=$(rss_kib "$SRV_PID" VmRSS)
done
LIVE=(); for s in "${SERVERS[@]}"; do [ -z "${FAILED[$s]:-}" ] && LIVE+=("$s"); done
[ ${#LIVE[@]} -gt 0 ] || { log "no server to measure"; exit 0; }

# ---------------------------------------------------------------------------------------------
# Runs: per case, a warm-up pass (fills the forwarding caches; one pass over the names), then
# NROUNDS max-QPS rounds with the servers interleaved, then the equal-load runs.

read -r M0_BUSY M0_ALL <<<"$(machine_cpu)"; times >"$OUT/.times"; OWN0=$(own_cpu)
declare -A MEDIAN=()
KINDS=(max); [ "$CPU_CAP_PCT" -gt 0 ] && KINDS+=(cap)
# median SERVER CASE KIND -> the median q/s of its rounds
median() {
    awk -F'\t' -v s="$1" -v c="$2" -v k="$3" 'NR > 1 && $1 == s && $2 == c && $3 == k && $11 ~ /^[0-9]/ { print $11 }' "$RUNS" |
        sort -n | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'
}
alive() { [ -n "${SRVPID[$1]:-}" ] && kill -0 "${SRVPID[$1]}" 2>/dev/null; }
for cse in "${ORDER_CASES[@]}"; do
    log ""
    log "--- $(case_name "$cse") ---"
    for s in "${LIVE[@]}"; do run_dnsperf "$s" "$cse" warmup 0 30 >/dev/null; done
    up_before=$(grep -c 'query\[' "$RAW/upstream.log")
    for kind in "${KINDS[@]}"; do
        if [ "$kind" = cap ]; then for s in "${LIVE[@]}"; do cg_cap "$s" "$CPU_CAP_PCT"; done; fi
        for r in $(seq 1 "$NROUNDS"); do
            for s in "${LIVE[@]}"; do alive "$s" && { run_dnsperf "$s" "$cse" "$kind" "$r" "$RUN_SECS" || true; }; done
        done
        for s in "${LIVE[@]}"; do cg_cap "$s" 0; MEDIAN[$s:$cse:$kind]=$(median "$s" "$cse" "$kind"); done
    done
    up_after=$(grep -c 'query\[' "$RAW/upstream.log")
    [ "$cse" = fwd ] && log "  the upstream got $((up_after - up_before)) queries during the measured runs (0: every answer came from a cache)"
    if [ "$SAME_RATE_PCT" -gt 0 ] && [ ${#LIVE[@]} -eq 2 ] && [ -n "${MEDIAN[ours:$cse:max]:-}" ] && [ -n "${MEDIAN[dnsmasq:$cse:max]:-}" ]; then
        SAME=$(awk -v a="${MEDIAN[ours:$cse:max]}" -v b="${MEDIAN[dnsmasq:$cse:max]}" -v p="$SAME_RATE_PCT" \
            'BEGIN { m = (a < b) ? a : b; r = int(m * p / 100 / 1000) * 1000; if (r < 1000) r = int(m * p / 100); print r }')
        SAME_RATE[$cse]=$SAME
        for s in "${LIVE[@]}"; do alive "$s" && { run_dnsperf "$s" "$cse" same 1 "$RUN_SECS" "$SAME" || true; }; done
    fi
done
for s in "${LIVE[@]}"; do
    RSS_END[$s]=$(rss_kib "${SRVPID[$s]}" VmRSS); HWM_END[$s]=$(rss_kib "${SRVPID[$s]}" VmHWM)
    kill -0 "${SRVPID[$s]}" 2>/dev/null || FAILED[$s]="died during the runs (log: $RAW/$s.server.log)"
done
# Stopped (and waited for) before the CPU account is read, so their CPU time counts as ours.
for s in "${LIVE[@]}"; do stop_server "${SRVPID[$s]}"; done
stop_server "$UP_PID"
read -r M1_BUSY M1_ALL <<<"$(machine_cpu)"; times >"$OUT/.times"; OWN1=$(own_cpu); rm -f "$OUT/.times"
OTHERS=$(others_pct "$M0_BUSY" "$M1_BUSY" "$M0_ALL" "$M1_ALL" "$OWN0" "$OWN1")

# ---------------------------------------------------------------------------------------------
# Report

mib() { awk -v k="$1" 'BEGIN { if (k !~ /^[0-9]+$/) print "-"; else printf "%.1f", k / 1024 }'; }
# pick SERVER CASE KIND [QPS] -> "qps lost_pct avg max rss" of the median max run (or the same-rate run)
pick() {
    awk -F'\t' -v s="$1" -v c="$2" -v k="$3" -v q="${4:-}" 'NR > 1 && $1 == s && $2 == c && $3 == k && $11 ~ /^[0-9]/ && (q == "" || $11 == q) {
        line = sprintf("%s %s %s %s %s %s %s", $11, $10, $12, $14, $19, $23, $24) } END { print line }' "$RUNS"
}

log ""
log "=== DNS results: $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, ${RUN_SECS}s runs, $NROUNDS round(s), took $((SECONDS - START_S))s ==="
log "other processes used about ${OTHERS}% of the CPUs during the measurements$( [ "$OTHERS" -gt 10 ] && echo ": NOISY, compare with care")"
log "max: dnsperf as fast as the server answers ($IN_FLIGHT queries in flight), the median of $NROUNDS round(s) by q/s;"
[ "$CPU_CAP_PCT" -gt 0 ] && log "cap: the same with each server held to ${CPU_CAP_PCT}% of its core, so the server is the bottleneck, not dnsperf;"
log "@rate: both servers at one fixed rate (${SAME_RATE_PCT}% of the lower max) for latency under equal load."
log "lost = no answer within ${QUERY_TIMEOUT_S}s. RSS: idle = after start, end = after all runs, peak = VmHWM."
log "CPU srv = the server's CPU time in % of one core; dnsperf = dnsperf's (near 100: dnsperf set the pace)."
for s in "${SERVERS[@]}"; do [ -n "${FAILED[$s]:-}" ] && log "$(name "$s" | tr a-z A-Z) FAILED: ${FAILED[$s]}"; done
kind_label() { case "$1" in max) echo max ;; cap) echo "cap${CPU_CAP_PCT}%" ;; same) echo "@${SAME_RATE[$2]:-?}" ;; esac; }
for cse in "${ORDER_CASES[@]}"; do
    log ""
    log "--- $(case_name "$cse") ---"
    log "$(printf '%-10s %-7s %8s %8s %8s %8s %8s %8s %8s' server run "q/s" "lost%" "avg ms" "max ms" "RSS MiB" "CPU srv" "dnsperf")"
    declare -A V=()
    for s in "${LIVE[@]}"; do
        for k in "${KINDS[@]}" same; do
            if [ "$k" = same ]; then V[$s:$k]=$(pick "$s" "$cse" same); else V[$s:$k]=$(pick "$s" "$cse" "$k" "${MEDIAN[$s:$cse:$k]:-x}"); fi
            [ -n "${V[$s:$k]}" ] || continue
            read -r q lp avg mx rss scpu gcpu <<<"${V[$s:$k]}"
            log "$(printf '%-10s %-7s %8s %8s %8s %8s %8s %7s%% %7s%%' "$(name "$s")" "$(kind_label "$k" "$cse")" "$q" "$lp" "$avg" "$mx" "$(mib "$rss")" "$scpu" "$gcpu")"
        done
    done
    for k in "${KINDS[@]}"; do
        [ -n "${V[ours:$k]:-}" ] && [ -n "${V[dnsmasq:$k]:-}" ] || continue
        read -r oq olp oavg omx orss ocpu ogen <<<"${V[ours:$k]}"; read -r dq dlp davg dmx drss dcpu dgen <<<"${V[dnsmasq:$k]}"
        # CPU per query: the server's CPU share over its rate (tells efficiency even when dnsperf set the pace).
        ocpq=$(awk -v c="$ocpu" -v q="$oq" 'BEGIN { if (q > 0 && c ~ /^[0-9]+$/) printf "%.9f", c / q }')
        dcpq=$(awk -v c="$dcpu" -v q="$dq" 'BEGIN { if (q > 0 && c ~ /^[0-9]+$/) printf "%.9f", c / q }')
        log "$(printf 'ours/dnsmasq %-7s q/s %s  avg %s  max %s  RSS %s  CPU/query %s' "$(kind_label "$k" "$cse")" "$(ratio "$oq" "$dq")" \
            "$(ratio "$oavg" "$davg")" "$(ratio "$omx" "$dmx")" "$(ratio "$orss" "$drss")" "$(ratio "$ocpq" "$dcpq")")"
        target="MET"
        awk -v a="$oq" -v b="$dq" -v l="$olp" 'BEGIN { exit !(a >= b && l == 0) }' || target="NOT MET"
        paced=""; { [ "${ogen:-0}" -ge 90 ] || [ "${dgen:-0}" -ge 90 ]; } 2>/dev/null && paced=" (dnsperf near 100% CPU: it set the pace, read with care)"
        log "  target (at least dnsmasq's q/s with 0 lost), $(kind_label "$k" "$cse"): $target: ours $oq q/s lost $olp%, dnsmasq $dq q/s lost $dlp%$paced"
    done
    if [ -n "${V[ours:same]:-}" ] && [ -n "${V[dnsmasq:same]:-}" ]; then
        read -r _ _ osa osm _ _ _ <<<"${V[ours:same]}"; read -r _ _ dsa dsm _ _ _ <<<"${V[dnsmasq:same]}"
        log "$(printf 'ours/dnsmasq %-7s avg %s  max %s  (latency under the same load)' "$(kind_label same "$cse")" "$(ratio "$osa" "$dsa")" "$(ratio "$osm" "$dsm")")"
    fi
    unset V
done
log ""
log "$(printf '%-10s %9s %9s %9s' server "RSS idle" "RSS end" "RSS peak")"
for s in "${LIVE[@]}"; do
    log "$(printf '%-10s %7s M %7s M %7s M' "$(name "$s")" "$(mib "${RSS_IDLE[$s]:-}")" "$(mib "${RSS_END[$s]:-}")" "$(mib "${HWM_END[$s]:-}")")"
done
[ -n "${RSS_END[ours]:-}" ] && [ -n "${RSS_END[dnsmasq]:-}" ] && log "RSS ours/dnsmasq: idle $(ratio "${RSS_IDLE[ours]}" "${RSS_IDLE[dnsmasq]}"), end $(ratio "${RSS_END[ours]}" "${RSS_END[dnsmasq]}")"
log ""
log "(ratios: q/s above 1 = ours faster; latency, RSS and CPU/query below 1 = ours lower.)"
log "every run: $RUNS; dnsperf output and server logs: $RAW"
log "this report: $OUT/report.txt"
exit 0
