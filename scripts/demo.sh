#!/usr/bin/env bash
# The demo lab: builds RVS, creates a client, a director running rvs-dataplane on an af_packet
# port and three real servers in network namespaces, sends HTTP requests through two VIPs (rr and
# wrr) with real kernel TCP, shows which real server answered each, and tears it all down.
# Extra arguments go to `rvs-lab demo` (e.g. --requests 12).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --bins
exec target/release/rvs-lab demo "$@"
