#!/usr/bin/env bash
# The test command (README, CI): builds every binary, then runs every test of the workspace.
# The lab tests (tests/tests/lab) run the real target/debug/proximity-appliance, which cargo does
# not build for another crate's tests, hence the build first. They need root, iproute2,
# isc-dhcp-client, udhcpc and iputils-ping, and fail (never skip) without them.
#
# The container test runs the appliance as PID 1 of an LXC container whose rootfs has no libc, so
# it needs a static build too: glibc's static-pie (no musl target here), in
# target/x86_64-unknown-linux-gnu/debug/. `--target` keeps the flag off build scripts and proc
# macros. It also needs lxc, nftables and strace (see .ci/run).
#
# Then the lab runs once more pinned to one CPU: an appliance that has one core (a Proxmox
# container with cores=1) runs on tokio's current-thread runtime instead of the multi-thread one,
# and both must behave the same.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --workspace --all-targets
RUSTFLAGS='-C target-feature=+crt-static' cargo build -p proximity-appliance --target x86_64-unknown-linux-gnu
cargo test --workspace
if [ "$(nproc)" -ge 2 ]; then
    echo "==> the lab again, on one CPU (the appliance's current-thread runtime)"
    taskset -c 0 cargo test -p proximity-tests --test lab
fi
