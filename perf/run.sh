#!/usr/bin/env bash
# The performance matrix in one command. Installs what it needs (scripts/setup.sh), builds the
# release binaries, and runs rvs-perf-run: the dpdk-testpmd baseline, an idle director, every
# mode (dr tun nat fnat) at 1k/100k/1M/10M flows through rvs-pktgen over memif, and the
# pipeline benchmarks. Writes perf/out/summary.json, run.json, report.md and *.svg.
#
#   perf/run.sh            the full matrix (under 20 minutes on a 2-vCPU machine)
#   perf/run.sh --quick    every mode at 100k flows (under 5 minutes)
#   perf/run.sh ARGS       any other rvs-perf-run option (--modes, --flows, --proto udp, ...)
#
# Exits non-zero when a scenario could not run. When the namespace lab's comparison binary
# (target/release/rvs-compare) exists, it runs too and its perf/out/lab.json joins the report
# (RVS_PERF_NO_COMPARE=1 skips it).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh >&2
echo "run.sh: building release binaries" >&2
cargo build --release -q -p rvs-dataplane -p rvs-perf --bins
if grep -qs 'rvs-compare' lab/Cargo.toml; then
  cargo build --release -q -p rvs-lab --bin rvs-compare
fi
cargo bench -q -p rvs-perf --bench pipeline --bench burst --no-run 2>/dev/null

out=perf/out
quick=
prev=
for a in "$@"; do
  case "$a" in --out=*) out=${a#--out=} ;; --quick) quick=--quick ;; esac
  [ "$prev" = --out ] && out=$a
  prev=$a
done

rc=0
target/release/rvs-perf-run --out "$out" --cargo "$(command -v cargo)" "$@" || rc=$?

if [ -x target/release/rvs-compare ] && [ "${RVS_PERF_NO_COMPARE:-0}" != 1 ]; then
  echo "run.sh: namespace comparison (rvs-compare $quick --out $out/lab.json)" >&2
  if target/release/rvs-compare ${quick:+"$quick"} --out "$out/lab.json"; then
    target/release/rvs-perf-run --report-only --out "$out" || rc=1
  else
    echo "run.sh: rvs-compare failed" >&2
    rc=1
  fi
fi
exit "$rc"
