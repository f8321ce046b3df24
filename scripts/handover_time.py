#!/usr/bin/env python3
"""Time from a lock holder's SIGKILL to the waiting peer's exit, median of N.

    scripts/handover_time.py [--bin target/release] [--runs 20] producer|consumer

`producer`: the producer holds the lock (`--hold`) while a consumer waits for
it; the producer is killed. `consumer`: the consumer holds the lock while the
producer waits for its outcome; the consumer is killed. Either way the time
measured runs from the SIGKILL to the exit of the peer that was waiting.
Point `--bin` at another build (for example one of an older commit) to
compare the two. Every run uses its own segment name; `producer --clean`
removes what a killed producer left.
"""

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time

IMAGE = os.path.join(os.path.dirname(__file__), "..", "assets", "image.png")


def one(bindir, case, name):
    producer, consumer = f"{bindir}/producer", f"{bindir}/consumer"
    if case == "producer":
        waiter = subprocess.Popen(
            [consumer, "--name", name, "--timeout", "30"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        holder = subprocess.Popen(
            [producer, IMAGE, "--name", name, "--hold", "30000"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        watched, marker = waiter, "waiting for the lock"
    else:
        waiter = subprocess.Popen(
            [producer, IMAGE, "--name", name, "--timeout", "30"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.2)
        holder = subprocess.Popen(
            [consumer, "--name", name, "--hold", "30000"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        watched, marker = holder, "holding exclusive access"
    deadline = time.monotonic() + 20
    for line in watched.stdout:
        if marker in line or time.monotonic() > deadline:
            break
    time.sleep(0.3)
    killed = time.monotonic()
    holder.send_signal(signal.SIGKILL)
    waiter.wait(timeout=60)
    took = time.monotonic() - killed
    holder.wait()
    subprocess.run([producer, "--clean"], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=False)
    return took


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case", choices=["producer", "consumer"])
    parser.add_argument("--bin", default="target/release")
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    for exe in ("producer", "consumer"):
        if not os.access(f"{args.bin}/{exe}", os.X_OK):
            sys.exit(f"handover_time.py: {args.bin}/{exe} is missing: cargo build --release")
    times = [one(args.bin, args.case, f"handover-{os.getpid()}-{i}")
             for i in range(args.runs)]
    print(f"{args.case} killed holding the lock: median "
          f"{statistics.median(times) * 1e3:.1f} ms over {args.runs} runs "
          f"(min {min(times) * 1e3:.1f}, max {max(times) * 1e3:.1f})")


if __name__ == "__main__":
    main()
