#!/usr/bin/env bash
# The whole test suite: installs the system packages it needs, then runs every test of every crate,
# including the root-only tests (network namespaces, QEMU, ipmi_sim, libvirtd) and the lab boot.
# Run as root. With CI=true a missing prerequisite fails the run instead of skipping a test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cargo test --workspace --all-features --locked "$@"
