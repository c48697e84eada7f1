#!/usr/bin/env bash
# bench/proxy.sh: reverse-proxy benchmark of proximity-appliance against nginx and Caddy, with
# wrk (HTTP/1.1) and h2load (HTTP/2 over TLS), in the same run on this machine; with hyper-floor
# (appliance/examples/hyper_floor.rs, a bare hyper HTTP/1.1 proxy) as the floor of a hyper-based
# proxy. Each proxy gets its own pair of network namespaces (proxy ns + client ns joined by a veth
# pair) and a leg into one shared LAN bridge where the one backend (an nginx serving fixed
# bodies) lives; no packet leaves them.
#
# Every proxy routes by Host (app.prox.local) to the same backend (hyper-floor sends everything
# there). Cases: a 6-byte body and a 64 KiB body over HTTP/1.1 keep-alive (wrk, 64 connections),
# the small body over HTTP/2 with TLS (h2load, 8 connections x 8 streams: 64 in flight too; not
# hyper-floor); the backend alone as a reference. Rounds are interleaved, the median round is
# reported: requests/s, p50/p99 latency, errors, CPU, RSS and the ratios ours/nginx, ours/caddy,
# hyper-floor/nginx and ours/hyper-floor. Then, for ours, the time from registering an app
# (POST /v1/apps) to the first request it proxies. See bench/README.md for how to read it.
#
# Usage: sudo bench/proxy.sh [--quick] [options]      (--help lists them)
# shellcheck disable=SC2034  # LAN_PREFIX, CLIENT_ADDR, STOP_LIMIT_S, PIDS...: read by lib.sh
set -uo pipefail
. "$(dirname "$0")/lib.sh"

# ---------------------------------------------------------------------------------------------
# Settings

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OURS_BIN=${OURS_BIN:-"$ROOT/target/release/proximity-appliance"}   # override to bench another build
HYPER_BIN=${HYPER_BIN:-"$ROOT/target/release/examples/hyper_floor"}  # the hyper-floor reference

# The clients' side: every proxy ns has srv0 = 10.30.0.1, its client ns cli0 = 10.30.0.2
# (make_lan_pair, lib.sh). The proxies listen there, as the appliance listens on its WAN side.
LAN_PREFIX=24
SERVER_ADDR=10.30.0.1
CLIENT_ADDR=10.30.0.2
# The LAN: one bridge (br0) in <tag>-lan holding the backend; each proxy has a leg lan0 into it.
BACKEND_ADDR=10.20.0.10
declare -A LAN_ADDR=([ours]=10.20.0.1 [nginx]=10.20.0.2 [caddy]=10.20.0.3 [hyper]=10.20.0.4 [backend]=10.20.0.200)
LAN_NET_PREFIX=24                     # ours: lan.address 10.20.0.1/24 holds the backend
APP=app                               # the app's name; requests carry Host: app.prox.local
DOMAIN=prox.local
HOST="$APP.$DOMAIN"
SMALL_PATH=/                          # the backend answers "hello\n" (6 bytes)
BIG_PATH=/64k.bin                     # a 65536-byte static file
BIG_BYTES=65536
ADMIN_PORT=9090
READY_LIMIT_S=20
STOP_LIMIT_S=10
CONNS=${PROXY_CONNS:-64}              # wrk -c; h2load: the streams in flight over all connections
H2_STREAMS=${PROXY_H2_STREAMS:-8}     # h2load -m: streams in flight per connection
# Idle connections each proxy keeps to the backend: ours' POOL_MAX_IDLE_PER_BACKEND
# (appliance/src/proxy/pool.rs, not configurable), nginx's upstream keepalive, Caddy's
# keepalive_idle_conns_per_host. More requests in flight than this and every proxy opens and
# closes a backend connection per request beyond it: its TIME-WAIT sockets fill the ephemeral
# ports to the one backend address and connect() spends the core searching for a free port
# (bench/README.md, h2). So the h2 case keeps CONNS streams in flight, not CONNS x streams.
BACKEND_POOL=64
ERROR_MAX_PCT=0.1                     # a run with more failed requests than this does not count
REGISTRATIONS=10                      # registration-to-first-success measurements (ours)
REG_LIMIT_S=10                        # a new app must answer within this

QUICK=0; BUILD=1; SECS=""; ROUNDS=""; WAIT_QUIET=0; CASES="small,64k,h2"; SERVERS="backend,ours,nginx,caddy,hyper"; CPU_CAP_PCT=50

usage() {
    sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    cat <<'EOF'

Options:
  --quick           short run: 3 s runs, one round (about 2 minutes instead of 7)
  --no-build        use the existing target/release/proximity-appliance (and
                    target/release/examples/hyper_floor)
  --servers LIST    comma-separated subset of backend,ours,nginx,caddy,hyper (default: all five);
                    hyper = hyper-floor, a bare hyper HTTP/1.1 proxy (no h2 case)
  --cases LIST      small (6 B body, HTTP/1.1), 64k (64 KiB body, HTTP/1.1), h2 (6 B, HTTP/2
                    over TLS); default all three
  --secs N          length of each wrk/h2load run (default 10, --quick 3)
  --rounds N        runs per server and case, interleaved; the median is reported (default 3, --quick 1)
  --cpu-cap PCT     the HTTP/1.1 cases also run with each proxy held to PCT% of its core (cgroup CPU
                    quota), so the proxy, not CPU 1 (wrk + backend), is the bottleneck (default 50; 0 = none)
  --registrations N registration-to-first-success measurements for ours (default 10, --quick 5)
  --wait-quiet S    first wait up to S seconds for other processes to use under 15% CPU
  -h, --help        this text
PROXY_CONNS in the environment changes the requests in flight (64: wrk's connections, h2load's
streams over all its connections), PROXY_H2_STREAMS the h2 streams per connection (8); OURS_BIN
and HYPER_BIN the binaries run.
Exit status: 0 done (read the report: a server may have failed), 1 error, 2 tools missing.
EOF
}

ARGS="$*" # kept for the root hint: the loop below consumes "$@"
REGS=""
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --no-build) BUILD=0 ;;
        --servers) shift; SERVERS="${1:-}" ;;
        --servers=*) SERVERS="${1#--servers=}" ;;
        --cases) shift; CASES="${1:-}" ;;
        --cases=*) CASES="${1#--cases=}" ;;
        --secs) shift; SECS="${1:-}" ;;
        --secs=*) SECS="${1#--secs=}" ;;
        --rounds) shift; ROUNDS="${1:-}" ;;
        --rounds=*) ROUNDS="${1#--rounds=}" ;;
        --cpu-cap) shift; CPU_CAP_PCT="${1:-}" ;;
        --cpu-cap=*) CPU_CAP_PCT="${1#--cpu-cap=}" ;;
        --registrations) shift; REGS="${1:-}" ;;
        --registrations=*) REGS="${1#--registrations=}" ;;
        --wait-quiet) shift; WAIT_QUIET="${1:-}" ;;
        --wait-quiet=*) WAIT_QUIET="${1#--wait-quiet=}" ;;
        -h|--help) usage; exit 0 ;;
        *) echo "proxy.sh: unknown argument: $1 (see --help)" >&2; exit 1 ;;
    esac
    shift
done

if [ "$QUICK" = 1 ]; then RUN_SECS=3; NROUNDS=1; REGISTRATIONS=5; WARM_SECS=1; else RUN_SECS=10; NROUNDS=3; WARM_SECS=2; fi
if [ -n "$SECS" ]; then
    [[ "$SECS" =~ ^[1-9][0-9]?$ ]] || { echo "proxy.sh: --secs takes 1..99" >&2; exit 1; }
    RUN_SECS=$SECS
fi
if [ -n "$ROUNDS" ]; then
    [[ "$ROUNDS" =~ ^[1-9]$ ]] || { echo "proxy.sh: --rounds takes 1..9" >&2; exit 1; }
    NROUNDS=$ROUNDS
fi
if [ -n "$REGS" ]; then
    [[ "$REGS" =~ ^[0-9]{1,2}$ ]] || { echo "proxy.sh: --registrations takes 0..99" >&2; exit 1; }
    REGISTRATIONS=$REGS
fi
[[ "$WAIT_QUIET" =~ ^[0-9]{1,5}$ ]] || { echo "proxy.sh: --wait-quiet takes seconds" >&2; exit 1; }
[[ "$CPU_CAP_PCT" =~ ^[0-9]{1,2}$ ]] || { echo "proxy.sh: --cpu-cap takes 0..99" >&2; exit 1; }
[[ "$CONNS" =~ ^[1-9][0-9]{0,3}$ ]] || { echo "proxy.sh: PROXY_CONNS takes 1..9999" >&2; exit 1; }
{ [[ "$H2_STREAMS" =~ ^[1-9][0-9]{0,2}$ ]] && [ "$H2_STREAMS" -le "$CONNS" ]; } ||
    { echo "proxy.sh: PROXY_H2_STREAMS takes 1..PROXY_CONNS" >&2; exit 1; }
H2_CONNS=$(( (CONNS + H2_STREAMS - 1) / H2_STREAMS ))   # h2load -c: CONNS streams in flight in all
ORDER_CASES=()
IFS=, read -r -a _list <<<"$CASES"
for c in "${_list[@]}"; do
    case "$c" in small|64k|h2) ORDER_CASES+=("$c") ;; *) echo "proxy.sh: unknown case: $c" >&2; exit 1 ;; esac
done
[ ${#ORDER_CASES[@]} -gt 0 ] || { echo "proxy.sh: no case selected" >&2; exit 1; }
ORDER=()
IFS=, read -r -a _list <<<"$SERVERS"
for s in backend ours nginx caddy hyper; do  # fixed order, whatever the order given
    for x in "${_list[@]}"; do [ "$x" = "$s" ] && ORDER+=("$s"); done
done
for x in "${_list[@]}"; do
    case "$x" in backend|ours|nginx|caddy|hyper) ;; *) echo "proxy.sh: unknown server: $x" >&2; exit 1 ;; esac
done
[ ${#ORDER[@]} -gt 0 ] || { echo "proxy.sh: no server selected" >&2; exit 1; }

# ---------------------------------------------------------------------------------------------
# Preconditions: root, tools. Nothing is installed from here. The backend is an nginx of our own,
# so nginx is needed even when it is not measured as a proxy.

need_root proxy.sh "$ARGS"
need_tools proxy.sh "wrk nghttp2-client nginx-light caddy curl openssl" \
    wrk h2load nginx caddy curl openssl ip taskset nice timeout awk sort

pin_cpus                                 # lib.sh: SRV_CPU (CPU 0), GEN_CPU (CPU 1)
results_dir proxy                        # OUT, RAW, STATE; cd "$OUT"
TAG="pxp$$"                              # namespaces: pxp<pid>-<server>-{s,c}, pxp<pid>-lan

name() { case "$1" in ours) echo "proximity" ;; hyper) echo "hyper-floor" ;; backend) echo "backend" ;; *) echo "$1" ;; esac; }
# The short name of the ratio lines (ours/nginx, hyper-floor/nginx, ours/hyper-floor).
rname() { case "$1" in hyper) echo "hyper-floor" ;; *) echo "$1" ;; esac; }
case_name() {
    case "$1" in
        small) echo "small: GET $SMALL_PATH (6-byte body), HTTP/1.1 keep-alive, wrk -c$CONNS" ;;
        64k) echo "64k: GET $BIG_PATH (65536-byte body), HTTP/1.1 keep-alive, wrk -c$CONNS" ;;
        h2) echo "h2: GET $SMALL_PATH (6-byte body), HTTP/2 over TLS, h2load -c$H2_CONNS -m$H2_STREAMS" ;;
    esac
}
case_path() { case "$1" in 64k) echo "$BIG_PATH" ;; *) echo "$SMALL_PATH" ;; esac; }
# Where each server's clients connect: the proxies on their front veth, the backend directly.
target_addr() { if [ "$1" = backend ]; then echo "$BACKEND_ADDR"; else echo "$SERVER_ADDR"; fi; }
client_ns() { echo "$TAG-$1-c"; }

# ---------------------------------------------------------------------------------------------
# Cleanup (lib.sh): every process we started (by PID) and every namespace we created, on any
# exit; then the state (configs, keys, the servers' files).

CGROUPS=()                # CPU cgroups we made, removed on exit

cleanup_extra() {
    for cg in "${CGROUPS[@]}"; do rmdir "$cg" 2>/dev/null; done
    rm -rf "$STATE"
}
install_traps proxy.sh

# ---------------------------------------------------------------------------------------------
# CPU caps, as in dns.sh (lib.sh's cg_*). Why: on two cores the backend and wrk share CPU 1, and
# at a whole core a fast proxy can use all of it; held to part of its core, the proxy is the
# bottleneck. No cgroup (or --cpu-cap 0): no capped runs.
cg_detect

# ---------------------------------------------------------------------------------------------
# Namespaces. <tag>-lan holds bridge br0 with the backend at 10.20.0.10. <tag>-<proxy>-s holds
# the proxy: srv0 (10.30.0.1) to its client ns <tag>-<proxy>-c (cli0, 10.30.0.2) and lan0
# (10.20.0.1/.2/.3) into the bridge. <tag>-backend-c holds the client of the backend-alone runs,
# on the bridge (10.20.0.200). Every veth is created inside the namespaces.

make_lan_ns() {
    local l="$TAG-lan"
    ip netns add "$l" || return 1; NETNS+=("$l")
    ip -n "$l" link set lo up &&
    ip -n "$l" link add br0 type bridge && ip -n "$l" link set br0 up &&
    ip -n "$l" addr add "$BACKEND_ADDR/$LAN_NET_PREFIX" dev br0
}

# lan_leg NS SRV IFNAME: a veth IFNAME in NS with SRV's LAN address, its peer in the bridge.
lan_leg() {
    local ns=$1 srv=$2 ifname=$3 l="$TAG-lan"
    ip -n "$ns" link add "$ifname" type veth peer name "p$srv" netns "$l" || return 1
    ip -n "$ns" addr add "${LAN_ADDR[$srv]}/$LAN_NET_PREFIX" dev "$ifname" && ip -n "$ns" link set "$ifname" up &&
    ip -n "$l" link set "p$srv" master br0 && ip -n "$l" link set "p$srv" up
}

make_proxy_ns() { make_lan_pair "$1" && lan_leg "$TAG-$1-s" "$1" lan0; }
make_backend_client_ns() {
    local c="$TAG-backend-c"
    ip netns add "$c" || return 1; NETNS+=("$c")
    ip -n "$c" link set lo up && lan_leg "$c" backend cli0
}

# ---------------------------------------------------------------------------------------------
# Files: the backend's content, one certificate for nginx and Caddy (ours issues its own).

make_data() {
    mkdir -p "$STATE/www" || return 1
    head -c "$BIG_BYTES" /dev/urandom >"$STATE/www/64k.bin" || return 1
    # ECDSA P-256, as ours' CA issues, so the TLS cost is alike.
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -subj "/CN=$HOST" -addext "subjectAltName=DNS:$HOST" \
        -keyout "$STATE/app.key" -out "$STATE/app.crt" >"$RAW/openssl.log" 2>&1
}

# ---------------------------------------------------------------------------------------------
# Servers. start_<srv> DIR LOG starts it in the background and sets SRV_PID; the command chain
# (ip netns exec, taskset, nice) execs, so $! is the server (nginx: its master).

# nginx_common DIR ERRLOG: the part of every nginx config we run (backend and proxy): one worker, no
# access log, files in DIR, the worker as root (it reads our files wherever the tree is).
nginx_common() {
    cat <<EOF
daemon off;
master_process on;
user root;
worker_processes 1;
pid $1/nginx.pid;
error_log $2 warn;
events { worker_connections 4096; }
EOF
}
nginx_http_common() {
    cat <<EOF
    access_log off;
    client_body_temp_path $1/tmp-body;
    proxy_temp_path $1/tmp-proxy;
    fastcgi_temp_path $1/tmp-fastcgi;
    uwsgi_temp_path $1/tmp-uwsgi;
    scgi_temp_path $1/tmp-scgi;
    keepalive_requests 1000000;
    default_type application/octet-stream;
EOF
}

start_backend() {
    { nginx_common "$1" "$RAW/backend.error.log"; cat <<EOF
http {
$(nginx_http_common "$1")
    sendfile on;
    server {
        listen $BACKEND_ADDR:80 default_server backlog=4096;
        root $STATE/www;
        location = $SMALL_PATH { return 200 "hello\n"; }
    }
}
EOF
    } >"$1/nginx.conf"
    # Pinned with the load generator (CPU 1) while it serves the proxies; the backend-alone runs
    # move it to CPU 0 (backend_pin).
    ip netns exec "$TAG-lan" "${GEN_CPU[@]}" nice -n -5 \
        nginx -e "$RAW/backend.error.log" -p "$1" -c "$1/nginx.conf" >"$2" 2>&1 &
    SRV_PID=$!
}

start_nginx() {
    mkdir -p "$1/apps"
    { nginx_common "$1" "$RAW/nginx.error.log"; cat <<EOF
http {
$(nginx_http_common "$1")
    ssl_protocols TLSv1.2 TLSv1.3;    # 1.22's default has no TLSv1.3; Caddy and ours speak it
    ssl_certificate $STATE/app.crt;
    ssl_certificate_key $STATE/app.key;
    upstream backend {
        server $BACKEND_ADDR:80;
        keepalive $BACKEND_POOL;
    }
    server {
        listen $SERVER_ADDR:80 default_server backlog=4096;
        listen $SERVER_ADDR:443 ssl http2 default_server backlog=4096;
        return 404;
    }
    server {
        listen $SERVER_ADDR:80;
        listen $SERVER_ADDR:443 ssl http2;
        server_name $HOST;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            # What ours and Caddy send too: the client's Host and the X-Forwarded-* trio.
            proxy_set_header Host \$host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto \$scheme;
            proxy_set_header X-Forwarded-Host \$host;
        }
    }
    # The registration runs add apps here, then reload.
    include $1/apps/*.conf;
}
EOF
    } >"$1/nginx.conf"
    local enter=(); mapfile -d '' -t enter < <(cg_enter nginx)
    "${enter[@]}" ip netns exec "$TAG-nginx-s" "${SRV_CPU[@]}" nice -n -5 \
        nginx -e "$RAW/nginx.error.log" -p "$1" -c "$1/nginx.conf" >"$2" 2>&1 &
    SRV_PID=$!
}

start_caddy() {
    # Admin API and automatic HTTPS off, no access log (Caddy writes none without a `log`
    # directive), runtime log at WARN; HTTP/1.1 and HTTP/2 (no HTTP/3: the others have none).
    # An idle pool of BACKEND_POOL (64) connections to the backend, as nginx's keepalive and ours
    # (Caddy's default: 32).
    cat >"$1/Caddyfile" <<EOF
{
    admin off
    auto_https off
    log default {
        level WARN
    }
    servers {
        protocols h1 h2
    }
}
(backend) {
    reverse_proxy $BACKEND_ADDR:80 {
        transport http {
            keepalive_idle_conns_per_host $BACKEND_POOL
        }
    }
}
http://$HOST:80 {
    bind $SERVER_ADDR
    import backend
}
https://$HOST:443 {
    bind $SERVER_ADDR
    tls $STATE/app.crt $STATE/app.key
    import backend
}
EOF
    local enter=(); mapfile -d '' -t enter < <(cg_enter caddy)
    GOMAXPROCS=1 HOME="$1" XDG_DATA_HOME="$1/data" XDG_CONFIG_HOME="$1/config" \
        "${enter[@]}" ip netns exec "$TAG-caddy-s" "${SRV_CPU[@]}" nice -n -5 \
        caddy run --config "$1/Caddyfile" --adapter caddyfile >"$2" 2>&1 &
    SRV_PID=$!
}

write_ours_config() {
    cat >"$1/proximity.toml" <<EOF
[lan]
interface = "lan0"
address = "${LAN_ADDR[ours]}/$LAN_NET_PREFIX"

# The bench has no WAN side: follow an eth0 should one appear, no DHCP client on it.
[wan]
mode = "host"

# The peers run without a firewall; ours' table would add connection tracking to every packet.
[nat]
enabled = false

[dhcp]
# The proxy alone is measured.
enabled = false

[dns]
enabled = false

[proxy]
http_listen = ["$SERVER_ADDR:80"]
https_listen = ["$SERVER_ADDR:443"]

[admin]
listen = ["$SERVER_ADDR:$ADMIN_PORT"]
# Plain HTTP on the bench's private veth: the token never leaves the namespaces.
tls = false

[state]
dir = "$1/state"
EOF
}

start_ours() {
    write_ours_config "$1"
    mkdir -p "$1/state"
    # RUST_LOG=warn: no per-request logging, as nginx and Caddy run without access logs.
    local enter=(); mapfile -d '' -t enter < <(cg_enter ours)
    RUST_LOG=warn "${enter[@]}" ip netns exec "$TAG-ours-s" "${SRV_CPU[@]}" nice -n -5 \
        "$OURS_BIN" --config "$1/proximity.toml" >"$2" 2>&1 &
    SRV_PID=$!
}

# hyper-floor: the bare hyper proxy (appliance/examples/hyper_floor.rs), run as ours is: its own
# namespace, CPU 0, nice -5, its cgroup, the same backend. It forwards everything to the backend,
# whatever the Host, and speaks plain HTTP/1.1 only (no h2 case).
start_hyper() {
    local enter=(); mapfile -d '' -t enter < <(cg_enter hyper)
    "${enter[@]}" ip netns exec "$TAG-hyper-s" "${SRV_CPU[@]}" nice -n -5 \
        "$HYPER_BIN" "$SERVER_ADDR:80" "$BACKEND_ADDR:80" >"$2" 2>&1 &
    SRV_PID=$!
}

# backend_pin CPU: moves the backend (master and worker, every thread) to CPU.
backend_pin() {
    [ ${#SRV_CPU[@]} -gt 0 ] || return 0
    local p
    for p in $(tree_pids "${SRVPID[backend]}"); do taskset -a -p -c "$1" "$p" >/dev/null 2>&1; done
}

# ---------------------------------------------------------------------------------------------
# Probes, from the client namespace. http_get SRV PATH [HOST] -> "status size" (curl's view).

http_get() {
    local srv=$1 path=$2 host=${3:-$HOST}
    timeout 5 ip netns exec "$(client_ns "$srv")" curl -s -o /dev/null --max-time 3 \
        -w '%{http_code} %{size_download}' -H "Host: $host" "http://$(target_addr "$srv")$path" 2>/dev/null
}
# h2_get SRV -> "status http_version size" over TLS with SNI app.prox.local, certificate unchecked.
h2_get() {
    timeout 5 ip netns exec "$(client_ns "$1")" curl -sk --http2 -o /dev/null --max-time 3 \
        --resolve "$HOST:443:$SERVER_ADDR" -w '%{http_code} %{http_version} %{size_download}' \
        "https://$HOST$SMALL_PATH" 2>/dev/null
}
admin_url() { echo "http://$SERVER_ADDR:$ADMIN_PORT$1"; }
admin_token() { cat "$STATE/ours/state/admin.token" 2>/dev/null; }

# Ready: the proxy passes a request for app.prox.local (ours: the admin API answers /v1/health;
# the app is registered afterwards).
ready_probe() {
    if [ "$1" = ours ]; then
        [ "$(timeout 5 ip netns exec "$(client_ns ours)" curl -s -o /dev/null --max-time 2 -w '%{http_code}' "$(admin_url /v1/health)")" = 200 ]
    else
        local st; st=$(http_get "$1" "$SMALL_PATH"); [ "${st%% *}" = 200 ]
    fi
}

# register_app NAME -> prints "http_status seconds" of POST /v1/apps (curl's time_total).
register_app() {
    timeout 10 ip netns exec "$(client_ns ours)" curl -s -o "$RAW/register-$1.json" --max-time 5 \
        -w '%{http_code} %{time_total}' -H "Authorization: Bearer $(admin_token)" -H 'Content-Type: application/json' \
        -X POST "$(admin_url /v1/apps)" \
        -d "{\"name\":\"$1\",\"backend\":{\"ip\":\"$BACKEND_ADDR\"},\"port\":80}" 2>/dev/null
}

# Correctness before speed: each case's request gives 200 and the right body size. Sets CASE_OK[srv:case].
declare -A CASE_OK=()
check_answers() {
    local srv=$1 a b c msg=""
    a=$(http_get "$srv" "$SMALL_PATH"); b=$(http_get "$srv" "$BIG_PATH")
    [ "$a" = "200 6" ] && CASE_OK[$srv:small]=1
    [ "$b" = "200 $BIG_BYTES" ] && CASE_OK[$srv:64k]=1
    msg="$(name "$srv"): GET $SMALL_PATH -> ${a:-no answer}, GET $BIG_PATH -> ${b:-no answer}"
    if [ "$srv" != backend ] && [ "$srv" != hyper ]; then
        c=$(h2_get "$srv"); [ "$c" = "200 2 6" ] && CASE_OK[$srv:h2]=1
        msg="$msg, https h2 GET $SMALL_PATH -> ${c:-no answer} (status, HTTP version, bytes)"
    fi
    log "  $msg"
    # A wrong host must not reach the backend: routing is by Host (not hyper-floor's: it has none).
    case "$srv" in backend|hyper) return 0 ;; esac
    local w; w=$(http_get "$srv" "$SMALL_PATH" nosuch.example)
    [ "$w" = "200 6" ] && log "  WARNING: $(name "$srv") passes Host nosuch.example to the backend too"
    return 0
}

# ---------------------------------------------------------------------------------------------
# Accounting. A server's processes: its pid and its children (nginx: master + worker).

tree_pids() { echo "$1"; pgrep -P "$1" 2>/dev/null; }
# CPU ticks (user + system, all threads) of a server's processes.
cpu_ticks() {
    local p t=0 v
    for p in $(tree_pids "$1"); do
        v=$(awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$p/stat" 2>/dev/null) && t=$((t + ${v:-0}))
    done
    echo "$t"
}
# TCP connections opened from a proxy's namespace (/proc/net/snmp ActiveOpens): its connections
# to the backend (ours: its health checks too). Many more than BACKEND_POOL: the run churned.
active_opens() { ip netns exec "$TAG-$1-s" cat /proc/net/snmp 2>/dev/null | awk '$1 == "Tcp:" && $6 ~ /^[0-9]+$/ { print $6 }'; }
# RSS (KiB) of a server's processes, summed.
tree_rss() {
    local p t=0 v
    for p in $(tree_pids "$1"); do v=$(rss_kib "$p" VmRSS); t=$((t + ${v:-0})); done
    echo "$t"
}

# ---------------------------------------------------------------------------------------------
# One load run: run_load SERVER CASE KIND ROUND SECS appends a line to runs.tsv.
#
# runs.tsv columns: 1 server  2 case  3 kind (run|cap|warmup: cap = the proxy held to --cpu-cap)  4 round  5 secs  6 requests  7 rps
#   8 avg_ms  9 p50_ms  10 p90_ms  11 p99_ms  12 max_ms  13 non2xx  14 sock_errors  15 errors_pct
#   16 srv_cpu_pct (the server's CPU time over the run: 100 = its whole core)  17 backend_cpu_pct
#   (the backend's, when proxied)  18 gen_cpu_pct (wrk's / h2load's)  19 rss_kib (after the run)

RUNS="$OUT/runs.tsv"
printf 'server\tcase\tkind\tround\tsecs\trequests\trps\tavg_ms\tp50_ms\tp90_ms\tp99_ms\tmax_ms\tnon2xx\tsock_errors\terrors_pct\tsrv_cpu_pct\tbackend_cpu_pct\tgen_cpu_pct\trss_kib\n' >"$RUNS"
declare -A SRVPID=() RSS_IDLE=() RSS_END=()

# wrk's --latency output -> the columns 6..15 (latencies in ms).
parse_wrk() {
    awk '
        function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /m$/) return v * 60000; if (v ~ /s$/) return v * 1000; return v }
        $1 == "Latency" && NF >= 5 { avg = ms($2); mx = ms($4) }
        $1 == "50%" { p50 = ms($2) } $1 == "90%" { p90 = ms($2) } $1 == "99%" { p99 = ms($2) }
        / requests in / { n = $1 }
        /Socket errors:/ { gsub(/,/, ""); se = $4 + $6 + $8 + $10 }
        /Non-2xx or 3xx responses:/ { bad = $5 }
        /^Requests\/sec:/ { rps = $2 }
        END { if (rps == "" || n == "") exit 1
              printf "%d\t%.0f\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\t%d\t%d\t%.3f\n", n, rps, avg, p50, p90, p99, mx,
                  bad, se, (n > 0) ? 100 * (bad + se) / n : 100 }' "$1"
}

# h2load's summary and its per-request log (--log-file: start, status, duration in us) -> the
# same columns. h2load prints no percentiles; they come from the log.
parse_h2load() {
    local out=$1 reqlog=$2 lat
    lat=$(awk -F'\t' '$3 ~ /^[0-9]+$/ { print $3 }' "$reqlog" 2>/dev/null | sort -n |
        awk 'function at(q,  i) { i = int(NR * q); if (i < 1) i = 1; return v[i] / 1000 }
             { v[NR] = $1; s += $1 } END { if (NR == 0) exit 1
             printf "%.3f %.3f %.3f %.3f %.3f", s / NR / 1000, at(0.50), at(0.90), at(0.99), v[NR] / 1000 }') || return 1
    awk -v lat="$lat" '
        /^finished in/ { rps = $4 }
        # "requests: T total, S started, D done, OK succeeded, F failed, E errored, O timeout"
        /^requests:/ { done = $6; failed = $10 }
        # "status codes: a 2xx, b 3xx, c 4xx, d 5xx"
        /^status codes:/ { bad = $7 + $9 }
        END { if (rps == "" || done == "") exit 1
              split(lat, l, " ")
              other = (failed > bad) ? failed - bad : 0
              printf "%d\t%.0f\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\t%d\t%d\t%.3f\n", done, rps, l[1], l[2], l[3], l[4], l[5],
                  bad, other, (done > 0) ? 100 * (bad + other) / done : 100 }' "$out"
}

run_load() {
    local srv=$1 cse=$2 kind=$3 round=$4 secs=$5
    local id; id=$(printf '%s-%s-%s-%s' "$cse" "$kind" "$round" "$srv")
    local gen_name=wrk; [ "$cse" = h2 ] && gen_name=h2load
    local glog="$RAW/$id.$gen_name.txt" pid=${SRVPID[$srv]}
    local bpid=""; [ "$srv" != backend ] && bpid=${SRVPID[backend]:-}
    local tfile="$RAW/$id.time" reqlog="$STATE/$id.reqlog" cmd
    if [ "$cse" = h2 ]; then
        cmd=(h2load -t1 -c "$H2_CONNS" -m "$H2_STREAMS" -D "$secs" --connect-to="$SERVER_ADDR:443"
             --log-file="$reqlog" "https://$HOST$SMALL_PATH")
    else
        cmd=(wrk -t1 -c "$CONNS" -d "${secs}s" --latency -H "Host: $HOST" "http://$(target_addr "$srv")$(case_path "$cse")")
    fi
    local t0 b0 o0=""; t0=$(cpu_ticks "$pid"); b0=$([ -n "$bpid" ] && cpu_ticks "$bpid")
    [ "$srv" != backend ] && o0=$(active_opens "$srv")
    timeout $((secs + 30)) ip netns exec "$(client_ns "$srv")" "${GEN_CPU[@]}" nice -n -5 \
        /usr/bin/time -o "$tfile" -f '%e %U %S' "${cmd[@]}" >"$glog" 2>&1 &
    local gen=$!; PIDS[$gen]=loadgen
    wait_pid "$gen"; local grc=$?
    local t1 b1; t1=$(cpu_ticks "$pid"); b1=$([ -n "$bpid" ] && cpu_ticks "$bpid")
    local srv_cpu bk_cpu gen_cpu
    read -r srv_cpu bk_cpu gen_cpu <<<"$(awk -v a="$t0" -v b="$t1" -v c="${b0:-}" -v d="${b1:-}" -v hz="$(getconf CLK_TCK)" '
        NR == 1 && $1 > 0 { printf "%.0f %s %.0f", 100 * (b - a) / hz / $1, (c == "") ? "-" : sprintf("%.0f", 100 * (d - c) / hz / $1), 100 * ($2 + $3) / $1 }' "$tfile" 2>/dev/null)"
    local rss; rss=$(tree_rss "$pid")
    local opens=""; [ -n "$o0" ] && opens=$(( $(active_opens "$srv") - o0 ))
    local alive=1; kill -0 "$pid" 2>/dev/null || alive=0
    local line
    if [ "$cse" = h2 ]; then line=$(parse_h2load "$glog" "$reqlog"); else line=$(parse_wrk "$glog"); fi
    rm -f "$reqlog"
    if [ -z "$line" ] || [ "$alive" = 0 ]; then
        local why="load generator exit $grc, no summary"; [ "$alive" = 0 ] && why="server died"
        log "  $(printf '%-9s %-5s %-6s' "$(name "$srv")" "$cse" "$kind") FAILED: $why; see $glog"
        printf '%s\t%s\t%s\t%s\t%s\t-\t-\t-\t-\t-\t-\t-\t-\t-\tFAILED(%s)\t-\t-\t-\t-\n' "$srv" "$cse" "$kind" "$round" "$secs" "$why" >>"$RUNS"
        return 1
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$srv" "$cse" "$kind" "$round" "$secs" "$line" \
        "${srv_cpu:--}" "${bk_cpu:--}" "${gen_cpu:--}" "${rss:--}" >>"$RUNS"
    [ "$kind" = warmup ] && return 0
    local n rps avg p50 p90 p99 mx bad se errp
    IFS=$'\t' read -r n rps _ p50 p90 p99 mx bad se errp <<<"$line"
    log "$(printf '  %-11s %-5s %-3s r%s %9s req/s  p50 %7s ms  p99 %7s ms  max %8s ms  errors %s%s  CPU srv %s%% backend %s%% gen %s%%  RSS %s KiB' \
        "$(name "$srv")" "$cse" "$kind" "$round" "$rps" "$p50" "$p99" "$mx" "$((bad + se))" \
        "$( [ $((bad + se)) -gt 0 ] && echo " (non-2xx $bad, socket $se)")" "${srv_cpu:--}" "${bk_cpu:--}" "${gen_cpu:--}" "${rss:--}")"
    # More than 1% of the requests on a new backend connection: the pool did not hold.
    [ "${opens:-0}" -gt "$BACKEND_POOL" ] && [ $((opens * 100)) -gt "$n" ] &&
        log "  $(printf '%-9s' "$(name "$srv")") opened $opens backend connections for $n requests (pool $BACKEND_POOL): connection set-up and TIME-WAIT are in its figures"
    return 0
}

# ---------------------------------------------------------------------------------------------
# Registration to first success. One bash in the client namespace times everything: curl sends
# the registration (ours: POST /v1/apps; nginx: a config file and SIGHUP to the master), then the
# shell polls GET / with the new Host until 200. The poll is bash's own /dev/tcp, no process per
# request, so one poll costs well under a millisecond (a curl per poll costs a few ms, more on a
# busy machine): the figures resolve to that. Prints "status register_ms first_ok_ms polls".

poll_lib() {
    cat <<'EOF'
# poll ADDR HOST: one GET / over a new connection; sets ST to the status code ("" on failure).
poll() {
    ST=""
    exec 3<>"/dev/tcp/$1/80" 2>/dev/null || return 1
    printf 'GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' "$2" >&3
    local line=""; read -r -t 2 line <&3; exec 3<&- 3>&-
    line=${line#* }; ST=${line%% *}
}
# poll_until ADDR HOST LIMIT_S: polls until 200; sets OK (EPOCHREALTIME of the 200, "" if none) and POLLS.
poll_until() {
    local end=$(( ${EPOCHREALTIME%.*} + $3 ))
    OK="" POLLS=0
    while [ "${EPOCHREALTIME%.*}" -lt "$end" ]; do
        POLLS=$((POLLS + 1)); poll "$1" "$2"
        if [ "$ST" = 200 ]; then OK=$EPOCHREALTIME; return 0; fi
    done
    return 1
}
report() {  # STATUS T_START T_REGISTERED [REGISTER_MS]: the line
    awk -v s="$1" -v a="$2" -v b="$3" -v r="${4:-}" -v c="$OK" -v p="$POLLS" 'BEGIN {
        printf "%s %.2f %s %d\n", s, (r != "") ? r : (b - a) * 1000, (c == "") ? "-" : sprintf("%.2f", (c - b) * 1000), p }'
}
EOF
}

reg_script() {
    poll_lib
    cat <<'EOF'
# $1 name, $2 admin url, $3 token, $4 backend ip, $5 proxy addr, $6 domain, $7 limit (s).
name=$1 admin=$2 token=$3 backend=$4 addr=$5 domain=$6 limit=$7
t0=$EPOCHREALTIME
res=$(curl -s -o /dev/null --max-time 5 -w '%{http_code} %{time_total}' -H "Authorization: Bearer $token" \
    -H 'Content-Type: application/json' -X POST "$admin/v1/apps" \
    -d "{\"name\":\"$name\",\"backend\":{\"ip\":\"$backend\"},\"port\":80}")
t1=$EPOCHREALTIME
st=${res%% *}
# Nothing that forks between the POST's answer and the first poll.
case "$st" in 2??) poll_until "$addr" "$name.$domain" "$limit" ;; *) OK="" POLLS=0 ;; esac
report "$st" "$t0" "$t1" "$(awk -v t="${res#* }" 'BEGIN { printf "%.2f", t * 1000 }')"
EOF
}

nginx_reg_script() {
    poll_lib
    cat <<'EOF'
# $1 name, $2 conf file to write, $3 master pid, $4 proxy addr, $5 domain, $6 limit (s).
name=$1 conf=$2 master=$3 addr=$4 domain=$5 limit=$6
t0=$EPOCHREALTIME
printf 'server { listen %s:80; server_name %s.%s; location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; } }\n' \
    "$addr" "$name" "$domain" >"$conf"
kill -HUP "$master"
t1=$EPOCHREALTIME
poll_until "$addr" "$name.$domain" "$limit"
report 0 "$t0" "$t1"
EOF
}

# The cost of one poll (to a name the proxy does not know), in ms: the resolution of the figures.
poll_cost_ms() {
    { poll_lib; cat <<'EOF'
t0=$EPOCHREALTIME; for i in $(seq 1 50); do poll "$1" "nosuch.$2"; done
awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", (b - a) * 1000 / 50 }'
EOF
    } >"$STATE/poll-cost.sh"
    timeout 20 ip netns exec "$(client_ns "$1")" bash "$STATE/poll-cost.sh" "$SERVER_ADDR" "$DOMAIN"
}

# median of the numbers on stdin ("-" skipped)
median_of() { grep -E '^[0-9.]+$' | sort -n | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print "-" }'; }
minmax_of() { grep -E '^[0-9.]+$' | sort -n | awk 'NR == 1 { a = $1 } { b = $1 } END { if (NR) printf "%s-%s", a, b; else print "-" }'; }

# ---------------------------------------------------------------------------------------------
# Start: machine state, versions, build ours and hyper-floor (busy_pct, machine_cpu, own_cpu: lib.sh)

# build_hyper: cargo build --release of the hyper-floor example, logged to $RAW/build-hyper.log; its status.
build_hyper() {
    log "building: cargo build --release --example hyper_floor -p proximity-appliance (log: $RAW/build-hyper.log)"
    CARGO=$(command -v cargo || echo "${HOME:-/root}/.cargo/bin/cargo")
    ( cd "$ROOT" && timeout 1200 "$CARGO" build --release --example hyper_floor -p proximity-appliance ) >"$RAW/build-hyper.log" 2>&1 &
    bpid=$!; PIDS[$bpid]=cargo
    wait_pid "$bpid"
}
# tree_at BIN: "built <date>, tree at <commit>[ + uncommitted changes]" (changes under appliance/ or config/).
tree_at() {
    echo "built $(date -r "$1" '+%Y-%m-%d %H:%M'), tree at $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)$( [ -n "$(git -C "$ROOT" status --porcelain -- appliance config 2>/dev/null)" ] && echo ' + uncommitted changes')"
}

log "reverse-proxy benchmark: wrk and h2load through proximity-appliance, nginx and Caddy to one backend$([[ " ${ORDER[*]} " == *" hyper "* ]] && echo "; wrk through hyper-floor (the bare hyper reference)")"
log "results: $OUT"
log "machine: $(nproc) CPUs, kernel $(uname -r); $(wrk -v 2>&1 | awk 'NR == 1 { print "wrk " $2 }'), $(h2load --version 2>&1 | awk 'NR == 1 { print $2 }'), $(nginx -v 2>&1 | sed 's/.*: //'), caddy $(caddy version 2>/dev/null | awk '{ print $1 }')"

declare -A FAILED=()
if [[ " ${ORDER[*]} " == *" ours "* ]]; then
    if [ "$BUILD" = 1 ]; then
        build_ours || FAILED[ours]="cargo build --release -p proximity-appliance failed (log: $RAW/build.log)"
    fi
    if [ -z "${FAILED[ours]:-}" ] && [ ! -x "$OURS_BIN" ]; then FAILED[ours]="no binary at $OURS_BIN"; fi
    if [ -z "${FAILED[ours]:-}" ]; then
        log "ours: $OURS_BIN, $(tree_at "$OURS_BIN")"
        mkdir -p "$STATE/validate"; write_ours_config "$STATE/validate"
        "$OURS_BIN" --config "$STATE/validate/proximity.toml" --validate >"$RAW/ours-validate.log" 2>&1 ||
            FAILED[ours]="the benchmark config does not pass --validate (log: $RAW/ours-validate.log)"
    fi
fi
if [[ " ${ORDER[*]} " == *" hyper "* ]]; then
    if [ "$BUILD" = 1 ]; then
        build_hyper || FAILED[hyper]="cargo build --release --example hyper_floor -p proximity-appliance failed (log: $RAW/build-hyper.log)"
    fi
    if [ -z "${FAILED[hyper]:-}" ] && [ ! -x "$HYPER_BIN" ]; then FAILED[hyper]="no binary at $HYPER_BIN"; fi
    [ -z "${FAILED[hyper]:-}" ] && log "hyper-floor: $HYPER_BIN, $(tree_at "$HYPER_BIN")"
fi

make_data || { log "cannot create the backend's files or the certificate (log: $RAW/openssl.log)"; exit 1; }
make_lan_ns || { log "cannot create the LAN namespace"; exit 1; }
for s in "${ORDER[@]}"; do
    if [ "$s" = backend ]; then make_backend_client_ns || { log "cannot create the namespace for the backend's client"; exit 1; }
    else make_proxy_ns "$s" || { log "cannot create the namespaces for $s"; exit 1; }; fi
done

wait_quiet

log ""
log "placement: proxies on CPU 0, the load generator and the backend on CPU 1 (backend-alone runs: the backend on CPU 0), all at nice -5"
if [ "$CPU_CAP_PCT" -gt 0 ] && [ -z "$CG_BASE" ]; then log "no CPU cgroup controller found: no capped runs"; CPU_CAP_PCT=0; fi
[ "$CONNS" -gt "$BACKEND_POOL" ] && log "note: $CONNS requests in flight, more than the proxies' $BACKEND_POOL pooled backend connections: expect backend connection churn"
log "backend: nginx, 1 worker, at $BACKEND_ADDR:80 on the LAN bridge: $SMALL_PATH -> \"hello\\n\", $BIG_PATH -> $BIG_BYTES bytes"

# The backend first: every proxy needs it (a failure there ends the run).
mkdir -p "$STATE/backend"
start_backend "$STATE/backend" "$RAW/backend.server.log"
SRVPID[backend]=$SRV_PID; PIDS[$SRV_PID]=backend
backend_probe() {
    [ "$(timeout 5 ip netns exec "$TAG-lan" curl -s -o /dev/null --max-time 2 -w '%{http_code}' "http://$BACKEND_ADDR$SMALL_PATH")" = 200 ]
}
deadline=$((SECONDS + READY_LIMIT_S))
until backend_probe; do
    if ! kill -0 "${SRVPID[backend]}" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
        log "the backend did not start (log: $RAW/backend.server.log, $RAW/backend.error.log):"
        tail -n 15 "$RAW/backend.server.log" "$RAW/backend.error.log" 2>/dev/null | sed 's/^/    | /' | tee -a "$OUT/report.txt"
        exit 1
    fi
    sleep 0.2
done
RSS_IDLE[backend]=$(tree_rss "${SRVPID[backend]}")

# ours_fail WHY: marks ours failed, logs WHY and the tail of its log, stops it.
ours_fail() {
    FAILED[ours]=$1
    log "PROXIMITY FAILED: $1"
    tail -n 15 "$RAW/ours.server.log" 2>/dev/null | sed 's/^/    | /' | tee -a "$OUT/report.txt"
    [ -n "${SRVPID[ours]:-}" ] && stop_server "${SRVPID[ours]}"
    unset "SRVPID[ours]"
}

for s in "${ORDER[@]}"; do
    [ "$s" = backend ] && { check_answers backend; continue; }
    if [ -n "${FAILED[$s]:-}" ]; then log "$(name "$s" | tr a-z A-Z) FAILED: ${FAILED[$s]}"; continue; fi
    mkdir -p "$STATE/$s"
    cg_make "$s" || { log "cannot create a CPU cgroup for $s: no capped runs"; CG_BASE=""; }
    "start_$s" "$STATE/$s" "$RAW/$s.server.log"
    SRVPID[$s]=$SRV_PID; PIDS[$SRV_PID]=$s
    if ! wait_ready "$s" "$SRV_PID"; then
        what="it did not pass a request for $HOST within ${READY_LIMIT_S}s"
        [ "$s" = ours ] && what="its admin API did not answer GET /v1/health at $(admin_url /v1/health) within ${READY_LIMIT_S}s"
        if ! kill -0 "$SRV_PID" 2>/dev/null; then wait_pid "$SRV_PID"; what="it exited at start with status $?"; fi
        if [ "$s" = ours ]; then ours_fail "$what (log: $RAW/ours.server.log)"; continue; fi
        FAILED[$s]="$what (log: $RAW/$s.server.log)"
        log "$(name "$s" | tr a-z A-Z) FAILED: ${FAILED[$s]}"; tail -n 15 "$RAW/$s.server.log" | sed 's/^/    | /' | tee -a "$OUT/report.txt"
        stop_server "$SRV_PID"; unset "SRVPID[$s]"; continue
    fi
    if [ "$s" = ours ]; then
        # Register the app the runs use, then wait until the proxy passes it.
        tdl=$((SECONDS + 5)); until [ -s "$STATE/ours/state/admin.token" ] || [ $SECONDS -ge $tdl ]; do sleep 0.1; done
        [ -s "$STATE/ours/state/admin.token" ] || { ours_fail "no admin token at $STATE/ours/state/admin.token"; continue; }
        reg=$(register_app "$APP")
        case "${reg%% *}" in
            2??) ;;
            *) ours_fail "POST /v1/apps for $APP answered ${reg%% *}: $(head -c 300 "$RAW/register-$APP.json" 2>/dev/null)"; continue ;;
        esac
        rdl=$((SECONDS + READY_LIMIT_S)); st=""
        until st=$(http_get ours "$SMALL_PATH"); [ "${st%% *}" = 200 ] || [ $SECONDS -ge $rdl ]; do sleep 0.1; done
        [ "${st%% *}" = 200 ] || { ours_fail "the proxy did not pass a request for $HOST within ${READY_LIMIT_S}s of its registration (last: ${st:-no answer})"; continue; }
    fi
    check_answers "$s"
    RSS_IDLE[$s]=$(tree_rss "$SRV_PID")
done
LIVE=(); for s in "${ORDER[@]}"; do [ -z "${FAILED[$s]:-}" ] && [ -n "${SRVPID[$s]:-}" ] && LIVE+=("$s"); done
[ ${#LIVE[@]} -gt 0 ] || { log "no server to measure"; exit 0; }

# ---------------------------------------------------------------------------------------------
# Runs: per case, a warm-up run per server (connection pools, TLS sessions, caches), then
# NROUNDS rounds with the servers interleaved (backend, ours, nginx, caddy, backend, ...).

read -r M0_BUSY M0_ALL <<<"$(machine_cpu)"; times >"$OUT/.times"; OWN0=$(own_cpu)
alive() { [ -n "${SRVPID[$1]:-}" ] && kill -0 "${SRVPID[$1]}" 2>/dev/null; }
# no_case SRV CASE: SRV has no CASE (the backend has no TLS, hyper-floor no TLS nor HTTP/2).
no_case() { case "$1:$2" in backend:h2|hyper:h2) return 0 ;; *) return 1 ;; esac; }
# in_case SRV CASE: whether SRV is measured in CASE (a failed check skips).
in_case() { ! no_case "$1" "$2" && [ -n "${CASE_OK[$1:$2]:-}" ]; }
# kinds CASE: the kinds of runs of CASE: run (whole core), and cap (the small case, with a cgroup).
kinds() { echo run; [ "$1" != h2 ] && [ "$CPU_CAP_PCT" -gt 0 ] && [ -n "$CG_BASE" ] && echo cap; }
# run_one SRV CASE KIND ROUND SECS: the backend-alone runs move the backend to the server's core.
run_one() {
    [ "$1" = backend ] && backend_pin 0
    run_load "$@"; local rc=$?
    [ "$1" = backend ] && backend_pin 1
    return $rc
}
for cse in "${ORDER_CASES[@]}"; do
    log ""
    log "--- $(case_name "$cse") ---"
    for s in "${LIVE[@]}"; do
        if in_case "$s" "$cse"; then alive "$s" && run_one "$s" "$cse" warmup 0 "$WARM_SECS" >/dev/null
        elif ! no_case "$s" "$cse"; then log "  $(name "$s"): not measured: its answer to this case's request was wrong (above)"; fi
    done
    for kind in $(kinds "$cse"); do
        if [ "$kind" = cap ]; then for s in "${LIVE[@]}"; do [ "$s" != backend ] && cg_cap "$s" "$CPU_CAP_PCT"; done; fi
        for r in $(seq 1 "$NROUNDS"); do
            for s in "${LIVE[@]}"; do
                [ "$kind:$s" = cap:backend ] && continue
                in_case "$s" "$cse" && alive "$s" && { run_one "$s" "$cse" "$kind" "$r" "$RUN_SECS" || true; }
            done
        done
        for s in "${LIVE[@]}"; do [ "$s" != backend ] && cg_cap "$s" 0; done
    done
done
for s in "${LIVE[@]}"; do
    RSS_END[$s]=$(tree_rss "${SRVPID[$s]}")
    kill -0 "${SRVPID[$s]}" 2>/dev/null || FAILED[$s]="died during the runs (log: $RAW/$s.server.log)"
done
read -r M1_BUSY M1_ALL <<<"$(machine_cpu)"; times >"$OUT/.times"; OWN1=$(own_cpu); rm -f "$OUT/.times"
OTHERS=$(others_pct "$M0_BUSY" "$M1_BUSY" "$M0_ALL" "$M1_ALL" "$OWN0" "$OWN1")

# ---------------------------------------------------------------------------------------------
# Registration to first success: ours through its API; nginx (for comparison) by a config file
# and a reload. Caddy runs with its admin API off, so it has no reload here.

REGTSV="$OUT/registrations.tsv"
printf 'server\ti\tname\tpost_status\tpost_ms\tfirst_ok_ms\tpolls\n' >"$REGTSV"
declare -A REG_OK=() POLL_MS=()
if [ "$REGISTRATIONS" -gt 0 ]; then
    reg_script >"$STATE/reg.sh"; nginx_reg_script >"$STATE/nginx-reg.sh"
    for s in ours nginx; do
        alive "$s" || continue
        POLL_MS[$s]=$(poll_cost_ms "$s")
        for i in $(seq 1 "$REGISTRATIONS"); do
            n=$(printf 'reg%02d' "$i")
            if [ "$s" = ours ]; then
                res=$(timeout $((REG_LIMIT_S + 10)) ip netns exec "$(client_ns ours)" bash "$STATE/reg.sh" "$n" \
                    "http://$SERVER_ADDR:$ADMIN_PORT" "$(admin_token)" "$BACKEND_ADDR" "$SERVER_ADDR" "$DOMAIN" "$REG_LIMIT_S")
            else
                # The shell runs in the client ns; the conf file and the master's pid are the host's view (same pid ns).
                res=$(timeout $((REG_LIMIT_S + 10)) ip netns exec "$(client_ns nginx)" bash "$STATE/nginx-reg.sh" "$n" \
                    "$STATE/nginx/apps/$n.conf" "${SRVPID[nginx]}" "$SERVER_ADDR" "$DOMAIN" "$REG_LIMIT_S")
            fi
            read -r pst pms okms polls <<<"${res:-- - - 0}"
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$s" "$i" "$n" "$pst" "$pms" "$okms" "$polls" >>"$REGTSV"
            [ "$s" = ours ] && [[ "$pst" != 2?? ]] && { log "  proximity: POST /v1/apps for $n answered ${pst:-nothing}: no more registrations"; break; }
            REG_OK[$s]=1
        done
    done
fi
for s in "${LIVE[@]}"; do alive "$s" && stop_server "${SRVPID[$s]}"; done

# ---------------------------------------------------------------------------------------------
# Report

mib() { awk -v k="$1" 'BEGIN { if (k !~ /^[0-9]+$/) print "-"; else printf "%.1f", k / 1024 }'; }
# median_run SERVER CASE -> the runs.tsv line of the median round by req/s (rounds without a
# summary skipped); rounds with too many errors count as they are (the report flags them).
median_run() {  # SERVER CASE KIND
    awk -F'\t' -v s="$1" -v c="$2" -v k="$3" 'NR > 1 && $1 == s && $2 == c && $3 == k && $7 ~ /^[0-9]/' "$RUNS" |
        sort -t$'\t' -k7,7n | awk '{ l[NR] = $0 } END { if (NR) print l[int((NR + 1) / 2)] }'
}
kind_label() { case "$1" in run) echo "whole core" ;; cap) echo "proxies capped at ${CPU_CAP_PCT}% of their core" ;; esac; }

log ""
log "=== proxy results: $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, ${RUN_SECS}s runs, $NROUNDS round(s), took $((SECONDS - START_S))s ==="
log "other processes used about ${OTHERS}% of the CPUs during the measurements$( [ "$OTHERS" -gt 10 ] && echo ": NOISY, compare with care")"
log "each row: the median of $NROUNDS round(s) by req/s (range in runs.tsv). $CONNS connections; keep-alive throughout."
log "errors = non-2xx answers + socket errors (h2load: failed requests). CPU = % of one core over the run:"
log "srv = the server measured, bk = the backend behind it, gen = wrk/h2load (near 100: the load generator set the pace)."
for s in "${ORDER[@]}"; do [ -n "${FAILED[$s]:-}" ] && log "$(name "$s" | tr a-z A-Z) FAILED: ${FAILED[$s]}"; done
declare -A V=()
for cse in "${ORDER_CASES[@]}"; do
    log ""
    log "--- $(case_name "$cse") ---"
    for kind in $(kinds "$cse"); do
    [ "$kind" = cap ] && log "" && log "  $(kind_label cap) (cgroup quota), the backend and wrk as before:"
    log "$(printf '%-11s %9s %8s %8s %8s %8s %7s %6s %5s %5s %8s' server "req/s" "p50 ms" "p90 ms" "p99 ms" "max ms" errors "srv%" "bk%" "gen%" "RSS MiB")"
    for s in "${ORDER[@]}"; do
        line=$(median_run "$s" "$cse" "$kind"); [ -n "$line" ] || continue
        V[$s:$cse]=$line
        IFS=$'\t' read -r _ _ _ _ _ _ rps _ p50 p90 p99 mx bad se errp scpu bcpu gcpu rss <<<"$line"
        flag=""; awk -v e="$errp" -v m="$ERROR_MAX_PCT" 'BEGIN { exit !(e > m) }' && flag="  <- ${errp}% failed: not a valid run"
        log "$(printf '%-11s %9s %8s %8s %8s %8s %7s %5s%% %4s%% %4s%% %8s%s' "$( [ "$s" = backend ] && echo "backend*" || name "$s")"             "$rps" "$p50" "$p90" "$p99" "$mx" "$((bad + se))" "$scpu" "$bcpu" "$gcpu" "$(mib "$rss")" "$flag")"
    done
    [ "$kind" = run ] && [ -n "${V[backend:$cse]:-}" ] && log "(* backend alone: the backend on CPU 0, wrk straight to it: the ceiling of one core serving this directly)"
    # Ratios A/B: ours against the peers, then the hyper-floor reference against nginx and ours against it.
    for pair in ours:nginx ours:caddy hyper:nginx ours:hyper; do
        me=${pair%%:*} peer=${pair#*:}
        [ -n "${V[$me:$cse]:-}" ] && [ -n "${V[$peer:$cse]:-}" ] || continue
        IFS=$'\t' read -r _ _ _ _ _ _ orps _ op50 _ op99 _ _ _ oerr ocpu _ _ orss <<<"${V[$me:$cse]}"
        IFS=$'\t' read -r _ _ _ _ _ _ prps _ pp50 _ pp99 _ _ _ _ pcpu _ _ prss <<<"${V[$peer:$cse]}"
        ocpr=$(awk -v c="$ocpu" -v q="$orps" 'BEGIN { if (q > 0 && c ~ /^[0-9]+$/) printf "%.9f", c / q }')
        pcpr=$(awk -v c="$pcpu" -v q="$prps" 'BEGIN { if (q > 0 && c ~ /^[0-9]+$/) printf "%.9f", c / q }')
        log "$(printf '%-11s req/s %s  p50 %s  p99 %s  CPU/request %s  RSS %s' "$(rname "$me")/$(rname "$peer")" "$(ratio "$orps" "$prps")"             "$(ratio "$op50" "$pp50")" "$(ratio "$op99" "$pp99")" "$(ratio "$ocpr" "$pcpr")" "$(ratio "$orss" "$prss")")"
        if [ "$pair" = ours:nginx ]; then
            target="MET"
            awk -v a="$orps" -v b="$prps" -v x="$op99" -v y="$pp99" -v e="$oerr" -v m="$ERROR_MAX_PCT"                 'BEGIN { exit !(a >= b && x <= y && e <= m) }' || target="NOT MET"
            log "  target (requests/s at least nginx's, p99 no worse than nginx's), $cse, $(kind_label "$kind"): $target: ours $orps req/s p99 $op99 ms, nginx $prps req/s p99 $pp99 ms"
        fi
    done
    if [ "$kind" = run ] && [ -n "${V[ours:$cse]:-}" ]; then
        IFS=$'\t' read -r _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ obk ogen _ <<<"${V[ours:$cse]}"
        awk -v a="$obk" -v b="$ogen" 'BEGIN { exit !(a + b >= 90) }' 2>/dev/null &&
            log "  note: CPU 1 (backend $obk% + load generator $ogen%) was near full in ours' run: ours may be faster than shown$( [ "$cse" != h2 ] && [ "$CPU_CAP_PCT" -gt 0 ] && echo "; the capped runs compare the proxies")"
    fi
    unset V; declare -A V=()
    done
done
log ""
log "$(printf '%-11s %9s %9s' server "RSS idle" "RSS end")"
for s in "${ORDER[@]}"; do
    [ -n "${RSS_IDLE[$s]:-}" ] || continue
    log "$(printf '%-11s %7s M %7s M' "$(name "$s")" "$(mib "${RSS_IDLE[$s]:-}")" "$(mib "${RSS_END[$s]:-}")")"
done
log "(RSS: the server's processes summed, nginx master + worker; idle = after start, end = after all runs)"
if [ "$REGISTRATIONS" -gt 0 ]; then
    log ""
    log "--- registration to first success: a new name, then GET through the proxy in a loop until 200 ---"
    for s in ours nginx; do
        [ -n "${REG_OK[$s]:-}" ] || continue
        cnt=$(awk -F'\t' -v s="$s" '$1 == s && $6 ~ /^[0-9]/' "$REGTSV" | wc -l)
        at_once=$(awk -F'\t' -v s="$s" '$1 == s && $6 ~ /^[0-9]/ && $7 == 1' "$REGTSV" | wc -l)
        post=$(awk -F'\t' -v s="$s" '$1 == s { print $5 }' "$REGTSV" | median_of)
        first=$(awk -F'\t' -v s="$s" '$1 == s { print $6 }' "$REGTSV" | median_of)
        frange=$(awk -F'\t' -v s="$s" '$1 == s { print $6 }' "$REGTSV" | minmax_of)
        total=$(awk -F'\t' -v s="$s" '$1 == s && $5 ~ /^[0-9]/ && $6 ~ /^[0-9]/ { print $5 + $6 }' "$REGTSV" | median_of)
        if [ "$s" = ours ]; then
            log "proximity: POST /v1/apps took a median $post ms; from its answer to the first 200: median $first ms ($frange);"
            log "           POST sent to first 200: median $total ms. $cnt of $REGISTRATIONS served within ${REG_LIMIT_S}s, $at_once at the first poll (live when the POST returned)"
        else
            log "nginx:     config file + SIGHUP (reload) $post ms; from the signal to the first 200: median $first ms ($frange); $cnt of $REGISTRATIONS within ${REG_LIMIT_S}s"
        fi
    done
    log "(one poll, a new connection and GET / to an unknown name, costs about ${POLL_MS[ours]:-${POLL_MS[nginx]:--}} ms: the figures' resolution. caddy: admin API off, no reload measured)"
    [ -z "${REG_OK[ours]:-}" ] && log "proximity: not measured$( [ -n "${FAILED[ours]:-}" ] && echo " (it failed, above)")"
fi
log ""
log "(ratios A/B: req/s above 1 = A faster; latency, CPU/request and RSS below 1 = A lower. hyper-floor: a bare hyper"
log " proxy, no routing or headers work, a backend connection per client connection: the floor of a hyper-based proxy.)"
log "every run: $RUNS; registrations: $REGTSV; wrk/h2load output and server logs: $RAW"
log "this report: $OUT/report.txt"
exit 0
