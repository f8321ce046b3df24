#!/usr/bin/env python3
"""A consumer (P2) in Python: reads the payload that `producer` put into a
shared-memory segment, checks it, writes it to a file and acknowledges it.

    scripts/py_consumer.py [--name p1p2] [--timeout 30] --out FILE

It uses only the standard library. It attaches to /dev/shm/p1p2.NAME with
multiprocessing.shared_memory, reads the header by the layout documented in
common/src/layout.rs, records its pid as the segment's consumer, waits for
slot 0 to become READY, copies the payload, checks it, writes it to FILE and
sets slot 0's state to ACKED, as the Rust consumer does. A payload whose
CRC-32 does not match (or that changed while being copied) is marked
REJECTED. The segment belongs to the producer: this script never unlinks it.

Python cannot take the segment's lock (a process-shared pthread mutex inside
the header), so this reader never does. It relies on the state word and the
sequence number instead:
- the producer writes the payload, then its length, CRC-32 and sequence
  number, and only then stores READY; it writes nothing more into the slot
  until it is acknowledged, so a reader that sees READY sees a finished
  payload;
- the sequence number is read before the copy and again after it: if it
  moved, the payload was rewritten meanwhile and the copy is refused. The
  CRC-32 over the copy catches anything else that went wrong.
Python has no atomic loads with an ordering; its reads of the header are plain
loads of aligned words, and the sequence and CRC-32 checks are what make a
reordered or torn read harmless (it is refused, never accepted).

Errors are one line on stderr and a non-zero exit: 1 for a failed transfer,
2 for bad arguments, 130 when interrupted.
"""

import argparse
import os
import struct
import sys
import time
import zlib
from multiprocessing import resource_tracker, shared_memory

# The global header at offset 0 (see common/src/layout.rs).
MAGIC = b"P1P2SHM\0"  # offset 0, 8 bytes
VERSION = 1  # u32 at 8
HEADER_SIZE = 4096  # u32 at 12; also where slot 0's payload starts
OFF_VERSION = 8
OFF_HEADER_SIZE = 12
OFF_CAPACITY = 16  # u64: usable bytes per slot
OFF_SLOT_STRIDE = 24  # u64: capacity rounded up to whole pages
OFF_SLOT_COUNT = 32  # u32
OFF_KIND = 36  # u32: 1 = transfer
OFF_PRODUCER_PID = 56  # u32
OFF_CONSUMER_PID = 60  # u32
OFF_CONSUMER_START = 72  # u64: start time, /proc/PID/stat field 22
KIND_TRANSFER = 1
KINDS = {1: "transfer", 2: "value", 3: "array"}
MAX_SLOTS = 31
PAGE = 4096

# Slot 0's control block at offset 128.
OFF_STATE = 128  # u32
OFF_CRC32 = 132  # u32
OFF_LEN = 136  # u64
OFF_SEQ = 144  # u64

EMPTY, READY, ACKED, REJECTED, WITHDRAWN = 0, 1, 2, 3, 4

PREFIX = "p1p2."
POLL = 0.01  # seconds between looks at the file and the state word


class Failure(Exception):
    """A transfer that cannot complete; the message is one line."""


def u32(buf, offset):
    return struct.unpack_from("<I", buf, offset)[0]


def u64(buf, offset):
    return struct.unpack_from("<Q", buf, offset)[0]


def put_u32(buf, offset, value):
    # One aligned 4-byte write.
    struct.pack_into("<I", buf, offset, value)


def put_u64(buf, offset, value):
    struct.pack_into("<Q", buf, offset, value)


def start_time(pid):
    """Field 22 of /proc/PID/stat (clock ticks after boot), or None."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            text = f.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: count the
    # fields after the last ')'. There, field 3 (the state) comes first.
    fields = text[text.rfind(")") + 1 :].split()
    try:
        return fields[0], int(fields[22 - 3])
    except (IndexError, ValueError):
        return None


def alive(pid, start=0):
    """Whether pid runs (a zombie counts as dead), and started at `start`
    when `start` is not 0."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    stat = start_time(pid)
    if stat is None:
        return not os.path.exists("/proc/self")
    state, started = stat
    return state not in ("Z", "X", "x") and (start == 0 or started == start)


def attach(name, deadline, timeout):
    """Waits for /dev/shm/p1p2.NAME to appear and maps it."""
    shm_name = PREFIX + name
    while True:
        try:
            if sys.version_info >= (3, 13):
                return shared_memory.SharedMemory(name=shm_name, track=False)
            shm = shared_memory.SharedMemory(name=shm_name)
        except FileNotFoundError:
            if time.monotonic() >= deadline:
                raise Failure(
                    f"segment {shm_name} did not appear within {timeout:g} s "
                    "(is the producer running with this --name?)"
                ) from None
            time.sleep(POLL)
            continue
        except (OSError, ValueError) as e:
            raise Failure(f"cannot attach segment {shm_name}: {e}") from None
        # Before 3.13 the resource tracker would unlink the segment when this
        # process exits; it is the producer's to remove.
        resource_tracker.unregister(shm._name, "shared_memory")
        return shm


def check_header(buf, size, name):
    """Validates the global header against the mapping's size; returns the
    slot capacity and the producer's pid."""
    if size < HEADER_SIZE:
        raise Failure(f"segment {name}: {size} bytes, less than the {HEADER_SIZE}-byte header")
    magic = bytes(buf[0:8])
    if magic != MAGIC:
        raise Failure(f"segment {name}: wrong magic {magic!r} (not a p1p2 segment)")
    version = u32(buf, OFF_VERSION)
    if version != VERSION:
        raise Failure(f"segment {name}: layout version {version}, this script reads {VERSION}")
    header_size = u32(buf, OFF_HEADER_SIZE)
    if header_size != HEADER_SIZE:
        raise Failure(f"segment {name}: header size {header_size} differs from {HEADER_SIZE}")
    kind = u32(buf, OFF_KIND)
    if kind != KIND_TRANSFER:
        raise Failure(
            f"segment {name} holds a {KINDS.get(kind, f'kind {kind}')}, not a transfer"
        )
    slot_count = u32(buf, OFF_SLOT_COUNT)
    if not 1 <= slot_count <= MAX_SLOTS:
        raise Failure(f"segment {name}: slot count {slot_count} is outside 1..={MAX_SLOTS}")
    capacity = u64(buf, OFF_CAPACITY)
    stride = u64(buf, OFF_SLOT_STRIDE)
    if stride != max(1, -(-capacity // PAGE)) * PAGE:
        raise Failure(f"segment {name}: slot stride {stride} does not fit capacity {capacity}")
    if HEADER_SIZE + stride * slot_count != size:
        raise Failure(
            f"segment {name}: header describes {HEADER_SIZE + stride * slot_count} bytes "
            f"but the mapping has {size}"
        )
    return capacity, u32(buf, OFF_PRODUCER_PID)


def claim(buf, name):
    """Records this process as the consumer, so the producer watches it."""
    me = os.getpid()
    current = u32(buf, OFF_CONSUMER_PID)
    if current not in (0, me) and alive(current, u64(buf, OFF_CONSUMER_START)):
        raise Failure(f"segment {name} is already claimed by consumer pid {current}")
    stat = start_time(me)
    # The start time first: a producer that sees our pid then finds the
    # matching start time (or 0, which it treats as unknown).
    put_u64(buf, OFF_CONSUMER_START, stat[1] if stat else 0)
    put_u32(buf, OFF_CONSUMER_PID, me)


def wait_ready(buf, name, producer, deadline, timeout):
    while True:
        state = u32(buf, OFF_STATE)
        if state == READY:
            return
        if state == WITHDRAWN:
            raise Failure(f"producer pid {producer} withdrew segment {name} before handing it over")
        if state in (ACKED, REJECTED):
            word = "acknowledged" if state == ACKED else "rejected"
            raise Failure(f"segment {name}: its payload was already {word}")
        if state != EMPTY:
            raise Failure(f"segment {name}: invalid state {state}")
        if not alive(producer):
            raise Failure(f"producer pid {producer} died before writing a payload into {name}")
        if time.monotonic() >= deadline:
            raise Failure(f"no payload was written into segment {name} within {timeout:g} s")
        time.sleep(POLL)


def consume(name, timeout, out):
    deadline = time.monotonic() + timeout
    shm = attach(name, deadline, timeout)
    buf = shm.buf
    shm_name = PREFIX + name
    try:
        capacity, producer = check_header(buf, shm.size, shm_name)
        claim(buf, shm_name)
        wait_ready(buf, shm_name, producer, deadline, timeout)

        seq = u64(buf, OFF_SEQ)
        length = u64(buf, OFF_LEN)
        expected = u32(buf, OFF_CRC32)
        if length > capacity or HEADER_SIZE + length > shm.size:
            raise Failure(
                f"segment {shm_name}: payload length {length} exceeds the capacity "
                f"{capacity} or the mapping's {shm.size} bytes"
            )
        payload = bytes(buf[HEADER_SIZE : HEADER_SIZE + length])
        actual = zlib.crc32(payload) & 0xFFFFFFFF
        seq_after = u64(buf, OFF_SEQ)
        if seq_after != seq:
            put_u32(buf, OFF_STATE, REJECTED)
            raise Failure(
                f"segment {shm_name}: the payload changed while being read "
                f"(sequence {seq} -> {seq_after})"
            )
        if actual != expected:
            put_u32(buf, OFF_STATE, REJECTED)
            raise Failure(
                f"CRC-32 mismatch: the producer recorded {expected:08x}, "
                f"the payload has {actual:08x}"
            )
        try:
            with open(out, "wb") as f:
                f.write(payload)
        except OSError as e:
            raise Failure(f"cannot write {out}: {e.strerror or e}") from None
        if u32(buf, OFF_STATE) == WITHDRAWN:
            raise Failure(f"producer pid {producer} withdrew segment {shm_name} while it was read")
        # The producer polls the state word every 100 ms (its futex waits are
        # sliced), so a plain store is seen without a futex wake, which
        # Python cannot issue. (Without a compare-and-swap, a withdrawal in
        # the instant between the check above and this store is overwritten;
        # the payload was complete and verified by then.)
        put_u32(buf, OFF_STATE, ACKED)
        print(
            f"py_consumer: read {length} bytes (crc32 {actual:08x}, sequence {seq}) "
            f"from {shm_name}, wrote {out}, acknowledged"
        )
    finally:
        # Release the memoryview before closing the mapping; never unlink.
        del buf
        shm.close()


def seconds(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a usable duration")
    return value


def main():
    parser = argparse.ArgumentParser(
        prog="py_consumer.py",
        description="Read the payload a p1p2 producer put into shared memory, "
        "verify it, write it to FILE and acknowledge it.",
    )
    parser.add_argument(
        "--name", default="p1p2", help="segment name, as given to the producer (default p1p2)"
    )
    parser.add_argument(
        "--timeout",
        type=seconds,
        default=30.0,
        metavar="SECS",
        help="seconds to wait for the segment and its payload (default 30)",
    )
    parser.add_argument("--out", required=True, metavar="FILE", help="where to write the payload")
    args = parser.parse_args()
    try:
        consume(args.name, args.timeout, args.out)
    except Failure as e:
        print(f"py_consumer: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("py_consumer: error: interrupted by SIGINT", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
