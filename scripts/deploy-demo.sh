#!/usr/bin/env bash
# The main command on a machine without Proxmox: deploy the appliance with `proximity up` onto a
# simulated Proxmox VE node (pve-sim, the test double, in a network namespace of this machine),
# add an app, try its URLs from both sides, print the figures (up times, template size, appliance
# memory) and remove everything with `proximity down`. Needs root; sends no traffic outside the
# namespaces it makes.
#
#   sudo scripts/deploy-demo.sh          run, print, clean up
#   sudo scripts/deploy-demo.sh --hold   keep it all until Enter, to try the URLs by hand
#
# The appliance is built as the template carries it: static, with the `template` profile
# (release without debug info). The rest is a debug build.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "deploy-demo: $*" >&2; exit 1; }
hold=()
case "${1:-}" in
    "") ;;
    --hold) hold=(--hold) ;;
    *) die "usage: $0 [--hold]" ;;
esac
[ "$(id -u)" = 0 ] || die "needs root (network namespaces, LXC); try: sudo $0"
for tool in ip lxc-start dnsmasq dhclient curl dig nft cargo; do
    command -v "$tool" >/dev/null || die "$tool is missing (see .ci/run for the packages)"
done
unset http_proxy https_proxy all_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY

echo "==> building the appliance for the template (static, profile template)"
RUSTFLAGS='-C target-feature=+crt-static' cargo build --quiet --profile template \
    -p proximity-appliance --target x86_64-unknown-linux-gnu
echo "==> building proximity, pve-sim and the demo"
cargo build --quiet -p proximity-provisioner -p proximity-tests --bins
exec target/debug/deploy-demo \
    --appliance target/x86_64-unknown-linux-gnu/template/proximity-appliance "${hold[@]}"
