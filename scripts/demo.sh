#!/usr/bin/env bash
# The P1 -> P2 demo.
#
# 1. Builds in release, starts the consumer (P2), then the producer (P1), side
#    by side in this terminal. The producer keeps exclusive access for a moment
#    (--hold) so you can watch the consumer wait for it.
# 2. Sends the same image over shared memory (both read modes), a Unix socket,
#    TCP and a sealed memfd, and prints one table: the copies each transport
#    made, and what the kernel counted, with a few sentences that read it.
# 3. Streams raw frames of the image through a ring to three readers at once,
#    and prints what each reader got: frames, skipped frames, fps, latency.
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
readers=()
trap '[ -n "$consumer" ] && kill "$consumer" 2>/dev/null; for r in "${readers[@]}"; do kill "$r" 2>/dev/null; done; true' EXIT

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
echo
echo "==> 3. A stream of raw frames through a ring to three readers (2 s at 60 fps)"
echo "    P1 decodes $image once and publishes it scrolled, frame number drawn in;"
echo "    each reader verifies every frame it reads in place, without copying it"
for _ in 1 2 3; do
  "$bin/consumer" --stream --name "$name-stream" --timeout 10 &
  readers+=("$!")
done
"$bin/producer" --stream "$image" --name "$name-stream" --fps 60 --seconds 2 --consumers 3 --timeout 10
for r in "${readers[@]}"; do wait "$r"; done
readers=()
echo "    Watch one live: producer --stream --seconds 30 & consumer --stream --preview"
