#!/usr/bin/env bash
# The P1 -> P2 demo.
#
# 1. Builds in release, starts the consumer (P2), then the producer (P1), side
#    by side in this terminal. The producer keeps exclusive access for a moment
#    (--hold) so you can watch the consumer wait for it.
# 2. Sends the same image over shared memory (both read modes), a Unix socket,
#    TCP and a sealed memfd, and prints one table: the copies each transport
#    made, and what the kernel counted, with a few sentences that read it.
#
# Usage: scripts/demo.sh [--json] [IMAGE]
#   --json  skip the story and print the table's rows as JSON
set -euo pipefail
cd "$(dirname "$0")/.."

json=0
if [ "${1:-}" = "--json" ]; then
  json=1
  shift
fi
image=${1:-assets/image.png}
hold_ms=${HOLD_MS:-1000}
name="demo-$$"
out=target/demo/received.png

cargo build --release --quiet -p producer -p consumer -p bench
bin=target/release

if [ "$json" = 1 ]; then
  exec "$bin/p1p2-compare" "$image" --json
fi

mkdir -p "$(dirname "$out")"
consumer=
trap '[ -n "$consumer" ] && kill "$consumer" 2>/dev/null; true' EXIT

echo "==> 1. P1 -> P2 through shared memory"
echo "    P2 (consumer) starts first and waits for the segment"
"$bin/consumer" --name "$name" --out "$out" &
consumer=$!
sleep 0.3
echo "    P1 (producer) copies $image into shared memory and holds the lock ${hold_ms} ms"
"$bin/producer" "$image" --name "$name" --hold "$hold_ms"
wait "$consumer"
consumer=
left=$(find /dev/shm -maxdepth 1 -name "p1p2*$name*" | wc -l)
echo "    P2 wrote what it decoded to $out; files of this run left in /dev/shm: $left"
echo
echo "==> 2. The same image over shared memory, a Unix socket, TCP and a sealed memfd (median of 5 runs each)"
echo
"$bin/p1p2-compare" "$image"
