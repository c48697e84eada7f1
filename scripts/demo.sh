#!/usr/bin/env bash
# Demo: the Proximity appliance gives a lease to a real DHCP client, then serves two apps by name
# over HTTP and HTTPS, in a throwaway network lab on this machine (network namespaces and a
# bridge; no traffic leaves them). Needs root.
#
#   switch namespace: bridge br0
#   appliance namespace: eth1 = 10.20.0.1/24, runs target/debug/proximity-appliance
#   client namespace: eth0, runs dhclient; the user's machine: curl, the admin API
#   web, notes namespaces: eth0, dhclient with host names web and notes, a small python3 web server
#
# The client gets a lease and the appliance's DNS; the apps get leases too. The client registers
# the apps through the admin API (web by host name, notes by address) and fetches
# http://web.prox.local/ and https://web.prox.local/ by name. Then everything it made is removed.
#
#   sudo scripts/demo.sh          run, print, clean up
#   sudo scripts/demo.sh --hold   the same, but keep the lab until Enter, to try the URLs yourself
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "demo: $*" >&2; exit 1; }
hold=false
case "${1:-}" in
    "") ;;
    --hold) hold=true ;;
    *) die "usage: $0 [--hold]" ;;
esac
[ "$(id -u)" = 0 ] || die "needs root (it creates network namespaces); try: sudo $0"
for tool in ip dhclient ping cargo python3 curl; do
    command -v "$tool" >/dev/null ||
        die "$tool is missing (apt-get install iproute2 isc-dhcp-client iputils-ping python3 curl)"
done
# curl must talk to the lab directly, never through a proxy of this machine.
unset http_proxy https_proxy all_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY

echo "==> building proximity-appliance"
cargo build --quiet -p proximity-appliance
bin="$PWD/target/debug/proximity-appliance"

# Unique per run, so two demos (or a demo and the tests) never meet.
sw="pxdemo-$$-sw" ap="pxdemo-$$-ap" cl="pxdemo-$$-cl" web="pxdemo-$$-web" notes="pxdemo-$$-notes"
work="$(mktemp -d /tmp/pxdemo.XXXXXX)"
appliance_pid=""
app_pids=()
netns_etc_made=false  # whether the demo made /etc/netns, so it removes it again

cleanup() {
    set +e
    for pidfile in "$work"/*.dhclient.pid; do
        if [ -s "$pidfile" ]; then kill "$(cat "$pidfile")" 2>/dev/null; fi
    done
    for pid in "${app_pids[@]}"; do kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
    if [ -n "$appliance_pid" ]; then kill -TERM "$appliance_pid" 2>/dev/null; wait "$appliance_pid" 2>/dev/null; fi
    for ns in "$notes" "$web" "$cl" "$ap" "$sw"; do ip netns del "$ns" 2>/dev/null; done
    rm -rf "/etc/netns/$cl"
    if $netns_etc_made; then rmdir /etc/netns 2>/dev/null; fi
    rm -rf "$work"
}
trap cleanup EXIT

# A failed check: says what failed, shows the end of the appliance's log, and exits 1.
fail() {
    echo "  ✗ $*"
    echo
    echo "Appliance log (last 30 lines):"
    tail -n 30 "$work/appliance.log" | sed 's/^/  /'
    exit 1
}
ok() { echo "  ✓ $*"; }

echo "==> building the lab: namespaces $sw, $ap, $cl, $web, $notes"
ip netns add "$sw"; ip netns add "$ap"
ip -n "$sw" link add br0 type bridge
ip -n "$sw" link set br0 up
ip -n "$sw" link add port-ap type veth peer name eth1 netns "$ap"
ip -n "$sw" link set port-ap master br0 up
ip -n "$ap" link set lo up; ip -n "$ap" link set eth1 up
ip -n "$ap" addr add 10.20.0.1/24 dev eth1
# add_host NS PORT MAC: a namespace with eth0 (hardware address MAC) on the bridge's port PORT.
add_host() {
    ip netns add "$1"
    ip -n "$sw" link add "$2" type veth peer name eth0 address "$3" netns "$1"
    ip -n "$sw" link set "$2" master br0 up
    ip -n "$1" link set lo up; ip -n "$1" link set eth0 up
}
add_host "$cl" port-cl 02:70:78:de:00:01
add_host "$web" port-web 02:70:78:de:00:02
add_host "$notes" port-notes 02:70:78:de:00:03

cat > "$work/proximity.toml" <<TOML
[lan]
interface = "eth1"
address = "10.20.0.1/24"

# This lab has no WAN side: "host" mode only follows an eth0 should one appear (the default,
# "dhcp", would look for a DHCP server on it).
[wan]
interface = "eth0"
mode = "host"

[dhcp]
range = "10.20.0.100-10.20.0.250"
lease_time = "12h"

[dns]
domain = "prox.local"

[proxy]
http_listen = ["0.0.0.0:80"]
https_listen = ["0.0.0.0:443"]

[admin]
listen = ["0.0.0.0:9090"]
tls = true

[state]
dir = "$work/state"
TOML

echo "==> starting the appliance (config: $work/proximity.toml)"
"$bin" --config "$work/proximity.toml" --validate
ip netns exec "$ap" "$bin" --config "$work/proximity.toml" 2>"$work/appliance.log" &
appliance_pid=$!
for line in "listening for dhcp" "listening for the admin api"; do
    for _ in $(seq 200); do  # up to 20 s
        grep -q "$line" "$work/appliance.log" && break
        kill -0 "$appliance_pid" 2>/dev/null || { cat "$work/appliance.log"; die "the appliance exited"; }
        sleep 0.1
    done
    grep -q "$line" "$work/appliance.log" || { cat "$work/appliance.log"; die "the appliance is not $line"; }
done

# dhclient's script: configure the address and default route, keep what dhclient was given in
# $LEASE_ENV and, when $RESOLV_CONF is set, write the DNS server and search list there.
cat > "$work/dhclient-script" <<'SH'
#!/bin/sh
case "$reason" in
  BOUND|RENEW|REBIND|REBOOT)
    ip addr add "$new_ip_address/$new_subnet_mask" dev "$interface"
    ip route replace default via "${new_routers%% *}" dev "$interface"
    env | grep '^new_' > "$LEASE_ENV"
    if [ -n "$RESOLV_CONF" ]; then
      { echo "search ${new_domain_search:-$new_domain_name}"
        for ns in $new_domain_name_servers; do echo "nameserver $ns"; done; } > "$RESOLV_CONF"
    fi ;;
esac
SH
chmod +x "$work/dhclient-script"

# lease HOST NS [DHCLIENT ARGS...]: dhclient -1 on NS's eth0; its files are $work/HOST.*.
lease() {
    local host=$1 ns=$2; shift 2
    ip netns exec "$ns" dhclient -1 "$@" -sf "$work/dhclient-script" -e "LEASE_ENV=$work/$host.lease.env" \
        -lf "$work/$host.dhclient.leases" -pf "$work/$host.dhclient.pid" eth0 ||
        die "dhclient on $host got no lease; appliance log:$(printf '\n'; cat "$work/appliance.log")"
}
# lease_var HOST VAR: the value dhclient was given for HOST as new_VAR.
lease_var() { sed -n "s/^new_$2=//p" "$work/$1.lease.env"; }

# The client's DNS settings go to /etc/netns/$cl/resolv.conf, which `ip netns exec "$cl"` shows
# its commands as /etc/resolv.conf; the machine's own /etc/resolv.conf is never touched.
[ -d /etc/netns ] || netns_etc_made=true
mkdir -p "/etc/netns/$cl"
echo "==> client: dhclient -1 eth0"
lease client "$cl" -e "RESOLV_CONF=/etc/netns/$cl/resolv.conf"

client_ip=$(lease_var client ip_address)
echo
echo "The client got a lease from the appliance:"
echo "  address      $client_ip (netmask $(lease_var client subnet_mask))"
echo "  router       $(lease_var client routers)"
echo "  DNS server   $(lease_var client domain_name_servers)"
echo "  domain       $(lease_var client domain_name) (search list: $(lease_var client domain_search))"
echo "  lease time   $(lease_var client dhcp_lease_time) s"
echo "  from server  $(lease_var client dhcp_server_identifier)"
echo
echo "Configured in the client namespace:"
ip -n "$cl" -4 -br addr show dev eth0 | sed 's/^/  /'
ip -n "$cl" -4 route show default | sed 's/^/  /'
sed 's/^/  resolv.conf: /' "/etc/netns/$cl/resolv.conf"
echo
echo "The client pings the gateway:"
ip netns exec "$cl" ping -n -c 1 -W 2 10.20.0.1 >"$work/ping.txt" || fail "the client cannot ping 10.20.0.1"
sed -n 's/^/  /; 2p' "$work/ping.txt"
echo
if command -v dig >/dev/null; then
    echo "The appliance's DNS knows the client by the host name it sent (dig @10.20.0.1):"
    ptr=$(ip netns exec "$cl" dig +short +time=2 +tries=1 @10.20.0.1 -x "$client_ip" PTR)
    echo "  $client_ip -> ${ptr:-(no name)}"
    if [ -n "$ptr" ]; then
        echo "  $ptr -> $(ip netns exec "$cl" dig +short +time=2 +tries=1 @10.20.0.1 "$ptr" A)"
    fi
    echo
fi

# The apps: a page naming the app and showing the request as the app received it (so the
# proxy's X-Forwarded-* headers are visible).
cat > "$work/app.py" <<'PY'
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

name, port = sys.argv[1], int(sys.argv[2])

class Page(BaseHTTPRequestHandler):
    def do_GET(self):
        lines = [f"Hello from {name}!",
                 f"connection from {self.client_address[0]}, to port {port}"]
        for header in ("Host", "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host"):
            lines.append(f"{header}: {self.headers.get(header, '(none)')}")
        body = ("\n".join(lines) + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

ThreadingHTTPServer(("0.0.0.0", port), Page).serve_forever()
PY

echo "==> apps: dhclient with host names web and notes, then a python3 web server on each"
declare -A app_ip app_port=([web]=8080 [notes]=8081) app_ns=([web]=$web [notes]=$notes)
for app in web notes; do
    printf 'send host-name "%s";\nrequest subnet-mask, broadcast-address, routers, domain-name, domain-name-servers, domain-search;\n' \
        "$app" > "$work/$app.dhclient.conf"
    lease "$app" "${app_ns[$app]}" -cf "$work/$app.dhclient.conf"
    app_ip[$app]=$(lease_var "$app" ip_address)
    ip netns exec "${app_ns[$app]}" python3 "$work/app.py" "$app" "${app_port[$app]}" 2>"$work/$app.log" &
    app_pids+=($!)
done
for app in web notes; do
    for _ in $(seq 50); do  # up to 5 s
        ip netns exec "${app_ns[$app]}" curl -s -o /dev/null "http://127.0.0.1:${app_port[$app]}/" && break
        sleep 0.1
    done
    ip netns exec "${app_ns[$app]}" curl -s -o /dev/null "http://127.0.0.1:${app_port[$app]}/" ||
        { cat "$work/$app.log"; die "the $app server does not answer"; }
    printf '  %-6s %s (host name %s), serving on port %s\n' "$app" "${app_ip[$app]}" "$app" "${app_port[$app]}"
done
echo

# The admin API, as a user's machine uses it: the CA to trust, the token, then curl.
api="https://10.20.0.1:9090"
token=$(cat "$work/state/admin.token")
in_client() { ip netns exec "$cl" "$@"; }
echo "==> the client registers the apps through the admin API ($api)"
# The demo owns the appliance's state dir, so it knows the CA to trust: the state dir's ca.crt.
# Fetching /v1/ca.crt with it checks that the API's certificate comes from that CA and that the
# API hands out that same CA.
ca="$work/client-ca.crt"
in_client curl -sS --fail --cacert "$work/state/ca.crt" -o "$ca" "$api/v1/ca.crt" ||
    fail "GET $api/v1/ca.crt with --cacert <state dir>/ca.crt failed"
cmp -s "$ca" "$work/state/ca.crt" || fail "GET /v1/ca.crt differs from <state dir>/ca.crt"
ok "GET /v1/ca.crt over TLS, verified with the state dir's ca.crt, returns that same CA (saved as ca.crt)"
# api_call METHOD PATH [CURL ARGS...]: the body to $work/reply.json, the status to stdout.
api_call() {
    local method=$1 path=$2; shift 2
    in_client curl -sS --cacert "$ca" -H "Authorization: Bearer $token" -X "$method" \
        -o "$work/reply.json" -w '%{http_code}' "$@" "$api$path"
}
register() {
    local body=$1 status
    status=$(api_call POST /v1/apps -d "$body") || fail "POST /v1/apps $body: curl failed"
    [ "$status" = 201 ] || fail "POST /v1/apps $body: $status $(cat "$work/reply.json")"
    ok "POST /v1/apps $body -> 201 Created"
}
register '{"name":"web","backend":{"hostname":"web"},"port":8080}'
register "{\"name\":\"notes\",\"backend\":{\"ip\":\"${app_ip[notes]}\"},\"port\":8081}"
status=$(api_call GET /v1/apps) || fail "GET /v1/apps: curl failed"
[ "$status" = 200 ] || fail "GET /v1/apps: $status $(cat "$work/reply.json")"
echo
echo "GET /v1/apps:"
python3 -m json.tool "$work/reply.json" | sed 's/^/  /'
echo

echo "==> the client opens the apps by name (DNS from its resolv.conf, written from its lease)"
resolved=$(in_client getent hosts web.prox.local | awk '{print $1}') || true
[ "$resolved" = 10.20.0.1 ] || fail "web.prox.local resolves to '${resolved:-nothing}' in the client, not 10.20.0.1"
ok "web.prox.local -> 10.20.0.1 (the appliance's proxy), from the appliance's DNS"
# fetch URL [CURL ARGS...]: the page to $work/page.txt, or fail.
fetch() {
    local url=$1; shift
    in_client curl -sS --fail --max-time 10 -o "$work/page.txt" "$@" "$url" 2>"$work/curl.err" ||
        fail "curl ${*:+$* }$url: $(cat "$work/curl.err")"
}
for app in web notes; do
    fetch "http://$app.prox.local/"
    grep -qx "Hello from $app!" "$work/page.txt" || fail "http://$app.prox.local/ answered: $(cat "$work/page.txt")"
    ok "curl http://$app.prox.local/ -> \"$(head -n 1 "$work/page.txt")\""
    fetch "https://$app.prox.local/" --cacert "$ca"
    grep -qx "Hello from $app!" "$work/page.txt" || fail "https://$app.prox.local/ answered: $(cat "$work/page.txt")"
    ok "curl --cacert ca.crt https://$app.prox.local/ -> \"$(head -n 1 "$work/page.txt")\" (certificate from the local CA)"
done
grep -qx "X-Forwarded-For: $client_ip" "$work/page.txt" ||
    fail "the app did not see X-Forwarded-For: $client_ip: $(cat "$work/page.txt")"
ok "the app sees the client's address in X-Forwarded-For ($client_ip)"
echo
echo "The page of https://notes.prox.local/, as the client got it:"
sed 's/^/  /' "$work/page.txt"
echo
echo "The URLs to try (from the client namespace, trusting the appliance's CA):"
for app in web notes; do
    printf '  %-26s %s\n' "http://$app.prox.local/" "https://$app.prox.local/"
done
$hold || echo "  (run $0 --hold to keep the lab up and try them)"
if $hold; then
    echo
    echo "The lab stays up until you press Enter. In another terminal, for example:"
    echo "  sudo ip netns exec $cl curl http://web.prox.local/"
    echo "  sudo ip netns exec $cl curl --cacert $ca https://notes.prox.local/"
    echo "  sudo ip netns exec $cl curl --cacert $ca -H \"Authorization: Bearer \$(sudo cat $work/state/admin.token)\" $api/v1/apps"
    read -r _
fi
echo
echo "Appliance log:"
sed 's/^/  /' "$work/appliance.log"
echo
echo "==> cleaning up (apps, dhclients and the appliance stopped, namespaces deleted)"
