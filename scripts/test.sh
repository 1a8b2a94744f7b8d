#!/usr/bin/env bash
# The test suite: unit, DPDK (EAL, mempool, rings, net_ring port), boot errors and end-to-end
# namespace tests, then doc tests. Installs what they need first (scripts/setup.sh).
# Ends with one summary line over every test binary: "tests: N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace "$@" 2>&1 | tee "$log" || status=$?
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
