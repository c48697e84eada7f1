#!/usr/bin/env bash
# Demo: the Proximity appliance gives a lease to a real DHCP client, in a throwaway network lab on
# this machine (network namespaces and a bridge; no traffic leaves them). Needs root.
#
#   switch namespace: bridge br0
#   appliance namespace: eth1 = 10.20.0.1/24, runs target/debug/proximity-appliance
#   client namespace: eth0, runs dhclient
#
# Prints what the client was given and what got configured, then removes everything it made.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "demo: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (it creates network namespaces); try: sudo $0"
for tool in ip dhclient ping cargo; do
    command -v "$tool" >/dev/null || die "$tool is missing (apt-get install iproute2 isc-dhcp-client iputils-ping)"
done

echo "==> building proximity-appliance"
cargo build --quiet -p proximity-appliance
bin="$PWD/target/debug/proximity-appliance"

# Unique per run, so two demos (or a demo and the tests) never meet.
sw="pxdemo-$$-sw" ap="pxdemo-$$-ap" cl="pxdemo-$$-cl"
work="$(mktemp -d /tmp/pxdemo.XXXXXX)"
appliance_pid=""

cleanup() {
    set +e
    if [ -s "$work/dhclient.pid" ]; then kill "$(cat "$work/dhclient.pid")" 2>/dev/null; fi
    if [ -n "$appliance_pid" ]; then kill -TERM "$appliance_pid" 2>/dev/null; wait "$appliance_pid" 2>/dev/null; fi
    for ns in "$cl" "$ap" "$sw"; do ip netns del "$ns" 2>/dev/null; done
    rm -rf "$work"
}
trap cleanup EXIT

echo "==> building the lab: namespaces $sw, $ap, $cl"
ip netns add "$sw"; ip netns add "$ap"; ip netns add "$cl"
ip -n "$sw" link add br0 type bridge
ip -n "$sw" link set br0 up
ip -n "$sw" link add port-ap type veth peer name eth1 netns "$ap"
ip -n "$sw" link add port-cl type veth peer name eth0 address 02:70:78:de:00:01 netns "$cl"
for port in port-ap port-cl; do ip -n "$sw" link set "$port" master br0 up; done
ip -n "$ap" link set lo up; ip -n "$ap" link set eth1 up
ip -n "$ap" addr add 10.20.0.1/24 dev eth1
ip -n "$cl" link set lo up; ip -n "$cl" link set eth0 up

cat > "$work/proximity.toml" <<TOML
[lan]
interface = "eth1"
address = "10.20.0.1/24"

[dhcp]
range = "10.20.0.100-10.20.0.250"
lease_time = "12h"

[dns]
domain = "prox.local"

[state]
dir = "$work/state"
TOML

echo "==> starting the appliance (config: $work/proximity.toml)"
"$bin" --config "$work/proximity.toml" --validate
ip netns exec "$ap" "$bin" --config "$work/proximity.toml" 2>"$work/appliance.log" &
appliance_pid=$!
for _ in $(seq 200); do  # up to 20 s
    grep -q "listening for dhcp" "$work/appliance.log" && break
    kill -0 "$appliance_pid" 2>/dev/null || { cat "$work/appliance.log"; die "the appliance exited"; }
    sleep 0.1
done
grep -q "listening for dhcp" "$work/appliance.log" || { cat "$work/appliance.log"; die "the appliance did not start listening"; }

# dhclient's script: configure the address and default route, and keep what dhclient was given.
cat > "$work/dhclient-script" <<'SH'
#!/bin/sh
case "$reason" in
  BOUND|RENEW|REBIND|REBOOT)
    ip addr add "$new_ip_address/$new_subnet_mask" dev "$interface"
    ip route replace default via "${new_routers%% *}" dev "$interface"
    env | grep '^new_' > "$(dirname "$0")/lease.env" ;;
esac
SH
chmod +x "$work/dhclient-script"

echo "==> client: dhclient -1 eth0"
ip netns exec "$cl" dhclient -1 -sf "$work/dhclient-script" -lf "$work/dhclient.leases" \
    -pf "$work/dhclient.pid" eth0 || die "dhclient got no lease; appliance log:$(printf '\n'; cat "$work/appliance.log")"

# shellcheck disable=SC1091
. <(sed "s/^\([a-z_0-9]*\)=\(.*\)$/\1='\2'/" "$work/lease.env")
echo
echo "The client got a lease from the appliance:"
echo "  address      $new_ip_address (netmask $new_subnet_mask)"
echo "  router       $new_routers"
echo "  DNS server   $new_domain_name_servers"
echo "  domain       $new_domain_name (search list: ${new_domain_search:-none})"
echo "  lease time   $new_dhcp_lease_time s"
echo "  from server  $new_dhcp_server_identifier"
echo
echo "Configured in the client namespace:"
ip -n "$cl" -4 -br addr show dev eth0 | sed 's/^/  /'
ip -n "$cl" -4 route show default | sed 's/^/  /'
echo
echo "The client pings the gateway:"
ip netns exec "$cl" ping -n -c 1 -W 2 10.20.0.1 | sed -n 's/^/  /; 2p'
echo
if command -v dig >/dev/null; then
    echo "The appliance's DNS knows the client by the host name it sent (dig @10.20.0.1):"
    ptr=$(ip netns exec "$cl" dig +short +time=2 +tries=1 @10.20.0.1 -x "$new_ip_address" PTR)
    echo "  $new_ip_address -> ${ptr:-(no name)}"
    if [ -n "$ptr" ]; then
        echo "  $ptr -> $(ip netns exec "$cl" dig +short +time=2 +tries=1 @10.20.0.1 "$ptr" A)"
    fi
    echo
fi
echo "Appliance log:"
sed 's/^/  /' "$work/appliance.log"
echo
echo "==> cleaning up (appliance stopped with SIGTERM, namespaces deleted)"
