#!/usr/bin/env bash
# The test suite: unit, DPDK (EAL, mempool, rings, net_ring port), boot errors and end-to-end
# namespace tests, then doc tests, then the loom models of rvs-shm. Installs what they need first (scripts/setup.sh).
# Ends with one summary line over every test binary: "tests: N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace "$@" 2>&1 | tee "$log" || status=$?
# The loom models of the shared-memory ring and seqlock (their own cfg, so their own target dir).
if [ "$#" -eq 0 ]; then
  RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
    cargo test -p rvs-shm --release --lib loom 2>&1 | tee -a "$log" || status=$?
fi
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
