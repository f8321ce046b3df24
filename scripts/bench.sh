#!/usr/bin/env bash
# The benchmark, in one command: builds in release and runs p1p2-bench, which
# measures shared memory against Unix and TCP sockets, the one-copy ceiling
# (memcpy in one process) and Python, with two real processes per case
# (p1p2-bench-peer as sender and receiver), and writes results.json,
# results.csv, latency.csv, results.md and throughput.svg. See
# docs/BENCHMARKS.md.
#
# Usage: scripts/bench.sh [--quick] [--out DIR] [--peers] [p1p2-bench options]
#   --quick   sizes up to 64 MiB and short budgets (about a minute)
#   --out DIR where the files go (default: bench-results/)
#   --peers   also build and measure iceoryx2 (the iceoryx2 cargo feature)
# Any other option goes to p1p2-bench; `scripts/bench.sh --help` lists them.
set -euo pipefail
cd "$(dirname "$0")/.."

features=()
args=()
for arg in "$@"; do
  case "$arg" in
    --peers) features=(--features iceoryx2) ;;
    *) args+=("$arg") ;;
  esac
done

cargo build --release --quiet -p producer -p consumer -p bench ${features[@]+"${features[@]}"}
exec "${CARGO_TARGET_DIR:-target}/release/p1p2-bench" ${args[@]+"${args[@]}"}
