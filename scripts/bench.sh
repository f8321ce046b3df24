#!/usr/bin/env bash
# The benchmark, in one command: builds in release and runs p1p2-bench, which
# measures shared memory against Unix and TCP sockets, the one-copy ceiling
# (memcpy in one process) and Python, with two real processes per case
# (p1p2-bench-peer as sender and receiver), and writes results.json,
# results.csv, latency.csv, results.md, throughput.svg, latency.svg, and for
# the frame streams (producer --stream to consumer --stream) frames.csv and
# frames.svg. See docs/BENCHMARKS.md and docs/streaming.md.
#
# Usage: scripts/bench.sh [--quick] [--out DIR] [--peers] [p1p2-bench options]
#        scripts/bench.sh --compare A B
#   --quick   sizes up to 64 MiB, 1920x1080 frames and short budgets (about a minute)
#   --out DIR where the files go (default: bench-results/)
#   --peers   also build and measure iceoryx2 (the iceoryx2 cargo feature)
#   --compare A B  compare two runs (A and B: results.json files or the
#             directories holding them): B/A for every row both have, with a
#             95 % interval and "faster", "slower" or "same within noise"
# Any other option goes to p1p2-bench; `scripts/bench.sh --help` lists them.
set -euo pipefail

if [ "${1:-}" = "--compare" ]; then
  [ $# -eq 3 ] || { echo "usage: scripts/bench.sh --compare A B" >&2; exit 2; }
  a=$2; b=$3
  [ -d "$a" ] && a="$a/results.json"
  [ -d "$b" ] && b="$b/results.json"
  # Paths are taken from where the script was called.
  a=$(realpath -- "$a"); b=$(realpath -- "$b")
  cd "$(dirname "$0")/.."
  cargo build --release --quiet -p bench --bin p1p2-bench
  exec "${CARGO_TARGET_DIR:-target}/release/p1p2-bench" compare "$a" "$b"
fi

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
