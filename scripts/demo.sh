#!/usr/bin/env bash
# The P1 -> P2 demo: builds in release, starts the consumer (P2), then the
# producer (P1), side by side in this terminal. The producer keeps exclusive
# access for a moment (--hold) so you can watch the consumer wait for it.
#
# Usage: scripts/demo.sh [IMAGE]
set -euo pipefail
cd "$(dirname "$0")/.."

image=${1:-assets/image.png}
hold_ms=${HOLD_MS:-1000}
name="demo-$$"
out=target/demo/received.png
mkdir -p "$(dirname "$out")"
consumer=
trap '[ -n "$consumer" ] && kill "$consumer" 2>/dev/null; true' EXIT

echo "==> building (release)"
cargo build --release --quiet -p producer -p consumer
bin=target/release

echo "==> P2 (consumer) starts first and waits for the segment"
"$bin/consumer" --name "$name" --out "$out" &
consumer=$!
sleep 0.3
echo "==> P1 (producer) copies $image into shared memory and holds the lock ${hold_ms} ms"
"$bin/producer" "$image" --name "$name" --hold "$hold_ms"
wait "$consumer"
consumer=
left=$(find /dev/shm -maxdepth 1 -name "p1p2*$name*" | wc -l)
echo "==> P2 wrote what it decoded to $out; files of this run left in /dev/shm: $left"
