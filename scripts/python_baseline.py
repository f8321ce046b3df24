#!/usr/bin/env python3
"""The Python baseline of p1p2-bench: the same transfer the Rust peers make,
done the way a Python program would, with the standard library only.

Two processes (this one sends; a multiprocessing child receives):

- mode ``shm``: a reused ``multiprocessing.shared_memory.SharedMemory``. The
  sender copies the payload in through a memoryview and sends the sequence
  number through a pipe; the receiver copies every byte out through a
  memoryview, checks the stamp, and acknowledges through another pipe.
- mode ``array``: ``multiprocessing.Array('B', n)`` (lock=True). The sender
  copies in with ctypes.memmove under the array's lock; the receiver copies
  out with ctypes.memmove under the same lock.

A sample is what the Rust sender times: from the start of the copy until the
receiver's acknowledgement has arrived. The first 8 bytes of each payload
carry its sequence number; the receiver checks it every time, and checks
the checksum of the whole payload (the wrapping sum of little-endian 64-bit
words, as in the Rust peers) once, on the last payload, outside the timed
transfers, because summing in Python would cost more than the transfer.

The buffers copied from and into start at the same offset modulo 4096 as the
shared buffer, as the Rust peers' do: on some CPUs memcpy is many times
slower when the two are a few bytes apart modulo 4096.

Prints one JSON object on stdout; on failure, one line on stderr and exit 1.
Every wait is bounded by --timeout; SIGTERM and SIGINT clean up (the
segment is unlinked) before exiting.
"""

import argparse
import ctypes
import json
import mmap
import multiprocessing as mp
import os
import platform
import resource
import signal
import struct
import sys
import time
from multiprocessing import shared_memory

MASK = (1 << 64) - 1
STOP = MASK
PAGE = 4096


class Failure(Exception):
    """A problem worth one line on stderr."""


def checksum(view):
    """Wrapping sum of little-endian u64 words, the zero-padded tail included."""
    n = len(view)
    whole = n - n % 8
    total = sum(view[:whole].cast("Q")) if whole else 0
    if n % 8:
        tail = bytes(view[whole:]) + bytes(8 - n % 8)
        total += int.from_bytes(tail, "little")
    return total & MASK


def aligned(n, offset=0):
    """A zeroed anonymous mapping, and a view of n bytes starting `offset`
    bytes after a page boundary."""
    m = mmap.mmap(-1, n + offset + PAGE)
    return m, memoryview(m)[offset : offset + n]


def fill(view):
    """A cheap pattern: bytes 0..255 repeated."""
    period = bytes(range(256))
    n = len(view)
    block = period * (1 << 12)  # 1 MiB
    for start in range(0, n, len(block)):
        chunk = block[: n - start]
        view[start : start + len(chunk)] = chunk


def proc_io():
    """(syscr + syscw) of this process, or None without /proc/self/io."""
    try:
        with open("/proc/self/io", "rb") as f:
            text = f.read().decode()
    except OSError:
        return None
    fields = dict(line.split(": ") for line in text.splitlines() if ": " in line)
    return int(fields["syscr"]) + int(fields["syscw"])


class Window:
    """CPU time and read/write calls of this process over the measured runs."""

    def __init__(self):
        a = proc_io()
        b = proc_io()
        # What reading /proc/self/io costs in calls, subtracted at the end.
        self.overhead = (b - a) if a is not None and b is not None else 0
        self.io = proc_io()
        self.usage = resource.getrusage(resource.RUSAGE_SELF)

    def finish(self):
        usage = resource.getrusage(resource.RUSAGE_SELF)
        io = proc_io()
        calls = None
        if io is not None and self.io is not None:
            calls = max(0, io - self.io - self.overhead)
        return {
            "user_ms": (usage.ru_utime - self.usage.ru_utime) * 1e3,
            "sys_ms": (usage.ru_stime - self.usage.ru_stime) * 1e3,
            "calls": calls,
        }


def pin(cpu):
    if cpu >= 0:
        os.sched_setaffinity(0, {cpu})


def recv(conn, timeout, what):
    if not conn.poll(timeout):
        raise Failure(f"{what}: nothing arrived within {timeout:g} s")
    try:
        return conn.recv_bytes()
    except EOFError:
        raise Failure(f"{what}: the other process closed its pipe") from None


class Shared:
    """The shared buffer of one mode, as either process sees it."""

    def __init__(self, mode, n, name):
        self.mode, self.n, self.name = mode, n, name
        if mode == "shm":
            self.shm = shared_memory.SharedMemory(name=name, create=True, size=n)
            self.array = None
        else:
            self.shm = None
            self.array = mp.get_context("fork").Array("B", n, lock=True)

    def offset(self):
        if self.shm is not None:
            return 0
        return ctypes.addressof(self.array.get_obj()) % PAGE

    def attach(self):
        """In the receiver: its own handle on the shared buffer."""
        if self.shm is not None:
            self.shm = shared_memory.SharedMemory(name=self.name)

    def copy_in(self, src, src_addr):
        if self.shm is not None:
            self.shm.buf[: self.n] = src
        else:
            with self.array.get_lock():
                ctypes.memmove(ctypes.addressof(self.array.get_obj()), src_addr, self.n)

    def copy_out(self, dst, dst_addr):
        if self.shm is not None:
            dst[:] = self.shm.buf[: self.n]
        else:
            with self.array.get_lock():
                ctypes.memmove(dst_addr, ctypes.addressof(self.array.get_obj()), self.n)

    def close(self, unlink):
        if self.shm is not None:
            try:
                self.shm.close()
            except BufferError:
                pass
            if unlink:
                self.shm.unlink()


def address(mapping, offset):
    return ctypes.addressof(ctypes.c_char.from_buffer(mapping)) + offset


def receiver(shared, args, messages, acks):
    """The child: copy every payload out, check its stamp, acknowledge."""
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        pin(args.receiver_cpu)
        shared.attach()
        offset = shared.offset()
        dst_map, dst = aligned(shared.n, offset)
        dst_addr = address(dst_map, offset)
        window = None
        seq = 0
        while True:
            seq += 1
            if seq == args.warmup + 1:
                window = Window()
            msg = recv(messages, args.timeout, "receiver waiting for a payload")
            (got,) = struct.unpack("<Q", msg)
            if got == STOP:
                break
            shared.copy_out(dst, dst_addr)
            (stamp,) = struct.unpack_from("<Q", dst, 0)
            if stamp != got or got != seq:
                raise Failure(f"stale payload: stamp {stamp}, message {got}, expected {seq}")
            acks.send_bytes(msg)
        stats = (window or Window()).finish()
        stats["last"] = seq - 1
        stats["checksum"] = checksum(dst)
        del dst
        acks.send_bytes(json.dumps(stats).encode())
    except Failure as e:
        acks.send_bytes(json.dumps({"error": str(e)}).encode())
    finally:
        shared.close(unlink=False)


def more(args, runs, elapsed_ns):
    if runs >= args.max_runs or elapsed_ns >= args.hard_ms * 1e6:
        return False
    return runs < args.min_runs or elapsed_ns < args.time_ms * 1e6


def run(args):
    n = args.bytes
    if n < 8:
        raise Failure("--bytes must be at least 8")
    shared = Shared(args.mode, n, args.name)
    child = None
    try:
        offset = shared.offset()
        src_map, src = aligned(n, offset)
        fill(src)
        src_addr = address(src_map, offset)
        struct.pack_into("<Q", src, 0, 0)
        base = checksum(src)
        ctx = mp.get_context("fork")
        to_child, messages = ctx.Pipe(duplex=False)
        acks, to_parent = ctx.Pipe(duplex=False)
        child = ctx.Process(
            target=receiver, args=(shared, args, to_child, to_parent), daemon=True
        )
        child.start()
        pin(args.sender_cpu)

        samples = []
        seq = 0
        window = None
        started = None
        while True:
            if seq >= args.warmup:
                if started is None:
                    window = Window()
                    started = time.perf_counter_ns()
                if not more(args, len(samples), time.perf_counter_ns() - started):
                    break
            seq += 1
            struct.pack_into("<Q", src, 0, seq)
            msg = struct.pack("<Q", seq)
            t0 = time.perf_counter_ns()
            shared.copy_in(src, src_addr)
            messages.send_bytes(msg)
            ack = recv(acks, args.timeout, "sender waiting for an acknowledgement")
            t1 = time.perf_counter_ns()
            if ack != msg:
                raise Failure(f"receiver: {json.loads(ack).get('error', 'bad acknowledgement')}")
            if seq > args.warmup:
                samples.append(t1 - t0)
        mine = window.finish()
        messages.send_bytes(struct.pack("<Q", STOP))
        theirs = json.loads(recv(acks, args.timeout, "sender waiting for the receiver's report"))
        if "error" in theirs:
            raise Failure(f"receiver: {theirs['error']}")
        want = (base + theirs["last"]) & MASK
        if theirs["checksum"] != want:
            raise Failure(
                f"checksum mismatch in payload {theirs['last']}: "
                f"{theirs['checksum']:#018x}, expected {want:#018x}"
            )
        child.join(args.timeout)
        runs = len(samples)
        calls = None
        if mine["calls"] is not None and theirs["calls"] is not None and runs:
            calls = (mine["calls"] + theirs["calls"]) / runs
        del src
        return {
            "transport": "python-shm" if args.mode == "shm" else "python-array",
            "bytes": n,
            "warmup": args.warmup,
            "runs": runs,
            "samples_ns": samples,
            # Copied in by the sender, copied out by the receiver.
            "copies": 2.0,
            "syscalls": calls,
            "cpu_user_ms": mine["user_ms"] + theirs["user_ms"],
            "cpu_sys_ms": mine["sys_ms"] + theirs["sys_ms"],
            "capped": runs < args.min_runs,
            "python": platform.python_version(),
        }
    finally:
        if child is not None and child.is_alive():
            child.terminate()
            child.join(2)
        shared.close(unlink=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mode", choices=["shm", "array"], required=True)
    p.add_argument("--bytes", type=int, required=True)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--time-ms", type=int, default=1000)
    p.add_argument("--min-runs", type=int, default=5)
    p.add_argument("--max-runs", type=int, default=10000)
    p.add_argument("--hard-ms", type=int, default=5000)
    p.add_argument("--sender-cpu", type=int, default=-1)
    p.add_argument("--receiver-cpu", type=int, default=-1)
    p.add_argument("--name", default=f"p1p2.pybench-{os.getpid()}")
    p.add_argument("--timeout", type=float, default=20.0)
    args = p.parse_args()
    args.warmup = max(1, args.warmup)

    def stop(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    try:
        report = run(args)
    except Failure as e:
        print(f"python_baseline: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"python_baseline: error: {e}", file=sys.stderr)
        return 1
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
