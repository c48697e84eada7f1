#!/usr/bin/env bash
# The test command (README, CI): builds every binary, then runs every test of the workspace.
# The lab tests (tests/tests/lab) run the real target/debug/proximity-appliance, which cargo does
# not build for another crate's tests, hence the build first. They need root, iproute2,
# isc-dhcp-client, udhcpc and iputils-ping, and fail (never skip) without them.
#
# Then the lab runs once more pinned to one CPU: an appliance that has one core (a Proxmox
# container with cores=1) runs on tokio's current-thread runtime instead of the multi-thread one,
# and both must behave the same.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --workspace --all-targets
cargo test --workspace
if [ "$(nproc)" -ge 2 ]; then
    echo "==> the lab again, on one CPU (the appliance's current-thread runtime)"
    taskset -c 0 cargo test -p proximity-tests --test lab
fi
