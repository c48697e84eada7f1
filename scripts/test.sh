#!/usr/bin/env bash
# The test command (README, CI): builds every binary, then runs every test of the workspace.
# The lab tests (tests/tests/lab) run the real target/debug/proximity-appliance, which cargo does
# not build for another crate's tests, hence the build first. They need root, iproute2,
# isc-dhcp-client, udhcpc and iputils-ping, and fail (never skip) without them.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --workspace --all-targets
cargo test --workspace
