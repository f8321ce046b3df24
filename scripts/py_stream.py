#!/usr/bin/env python3
"""A reader of a stream in Python: attaches to the ring that
`producer --stream` publishes, reads its frames in place and reports frames,
skipped frames, fps and publish-to-read latency.

    scripts/py_stream.py NAME [--frames N] [--seconds S] [--timeout S] [--json]

It uses the standard library, numpy if it is importable (each frame is then
handed over as a read-only numpy array of shape (height, width, channels)
over the shared memory itself, without a copy; otherwise as a memoryview of
the slot's bytes), and through ctypes libatomic (libatomic.so.1, for atomic
loads, stores and compare-and-swap on the shared words) and libc's
syscall(2) for futexes. Linux on x86_64 or aarch64.

It takes part in the stream exactly as `consumer --stream` does (see
common/src/stream/ring.rs and docs/segment-format.md, "The stream ring"):

1. waits for /dev/shm/p1p2.NAME, maps it and validates the header (a stream,
   kind 5, of 2 to 15 slots, the file exactly as large as the header says);
   a segment whose producer is dead is not used: a new producer will
   replace it;
2. takes a free entry of the reader table: one compare-and-swap of its
   identity word (pid and start time) from 0 or from a dead reader's word,
   so that a producer under `--policy every` waits for it; the entry is
   released however the script ends, unless it is killed;
3. reads, under the policy the producer set, the newest frame (latest) or
   the next one (every), each with a sequence-lock read: `seq` even before,
   the frame header checked, the pixels taken in place and their CRC-32
   verified, `seq` the same after; a frame overwritten meanwhile is counted
   as skipped and never delivered;
4. records each frame it is done with in its entry (its cursor) and, under
   `every`, changes the readers' futex word so that a waiting producer
   goes on;
5. sleeps on the frames' futex word between frames, in slices of at most
   100 ms, checking its deadline, signals and the producer's liveness
   (its flock on the file) between them.

It stops at the stream's end, after --frames or --seconds. Errors are one
line on stderr and a non-zero exit: 1 for a failed stream (a header that
lies, a producer that died or aborted, a timeout), 2 for bad arguments,
128 + the signal number for SIGINT, SIGTERM or SIGHUP.

What it shares with scripts/py_consumer.py (the header's layout and checks,
the ctypes functions, identity words, signals) is in scripts/p1p2shm.py,
which it imports from its own directory.
"""

import argparse
import json
import math
import os
import sys
import time
import zlib

try:
    import numpy as np
    from numpy.lib.stride_tricks import as_strided
except ImportError:  # the frames are then memoryviews
    np = None

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
from p1p2shm import (  # noqa: E402
    ACQUIRE, ACQ_REL, HEADER_SIZE, KIND_STREAM, RELAXED, RELEASE, SLICE, Failure, Interrupted,
    Mapped, Native, check_signals, error_status, ident_alive, my_ident, name_type,
    record_signals, seconds_type, wait_live, whole_type,
)

# The stream's words in the global header (common/src/stream/ring.rs).
OFF_READERS_PULSE = 60  # u32 futex word: readers change it
OFF_FRAMES_PULSE = 84  # u32 futex word: the producer changes it
OFF_HEAD = 88  # u64: id of the newest complete frame, 0 before the first
OFF_POLICY = 96  # u64: 0 latest, 1 every
OFF_STATUS = 104  # u64: 0 running, 1 ended, 2 aborted
RUNNING, ENDED, ABORTED = 0, 1, 2
POLICIES = {0: "latest", 1: "every"}
LATEST, EVERY = 0, 1

# Slot i's control block at 128 + 128 * i.
SLOTS_OFFSET, SLOT_SIZE = 128, 128
SLOT_CRC32 = 4  # u32
SLOT_LEN = 8  # u64: bytes of pixels
SLOT_SEQ = 16  # u64: sequence lock, odd while the producer writes the slot
SLOT_FRAME_ID = 32  # u64
SLOT_TIMESTAMP = 40  # u64: CLOCK_MONOTONIC ns at publication
SLOT_SIZE_WORD = 48  # u64: width | height << 32
SLOT_LAYOUT_WORD = 56  # u64: stride | format << 32

# The reader table: 32 entries of 64 bytes from 2048.
READERS_OFFSET, READER_SIZE, MAX_READERS = 2048, 64, 32
R_IDENT, R_CURSOR, R_FLAGS, R_FRAMES = 0, 8, 16, 24
EVICTED = 1  # bit of flags: the producer stopped waiting for this reader

# Pixel formats: code -> (name, bytes per pixel).
FORMATS = {1: ("L8", 1), 2: ("Rgb8", 3), 3: ("Rgba8", 4)}

# Bit 31 of a futex word: a waiter sets it just before it sleeps, so that
# whoever changes the word knows a FUTEX_WAKE is needed (common/src/wait.rs).
SLEEPER = 1 << 31
COUNTER = SLEEPER - 1

SHORT = 50e-6  # pause while a slot is being rewritten


def monotonic_ns():
    """CLOCK_MONOTONIC in nanoseconds: the clock of the frames' timestamps."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


class Frame:
    """A frame header that passed `check_header`."""

    __slots__ = ("id", "timestamp_ns", "width", "height", "stride", "format", "len", "crc32")

    def __init__(self, **fields):
        for key, value in fields.items():
            setattr(self, key, value)

    @property
    def format_name(self):
        return FORMATS[self.format][0]

    @property
    def channels(self):
        return FORMATS[self.format][1]


def check_header(header, capacity):
    """Validates a slot's frame header (as FrameHeader::check): a Frame, or
    a one-line reason naming the first field that lies."""
    frame_id, timestamp, width, height, stride, code, length, crc = header
    if code not in FORMATS:
        return f"unknown pixel format code {code}"
    name, bpp = FORMATS[code]
    if width == 0 or height == 0:
        return f"a frame of {width}x{height} pixels has no pixels"
    row = width * bpp
    if stride < row:
        return f"stride {stride} is shorter than a row of {width} {name} pixels ({row} bytes)"
    needed = stride * height
    if needed > capacity:
        return (
            f"stride {stride} x height {height} = {needed} bytes does not fit a slot of {capacity}"
        )
    if length != needed:
        return f"payload length {length} is not stride x height = {needed}"
    return Frame(
        id=frame_id,
        timestamp_ns=timestamp,
        width=width,
        height=height,
        stride=stride,
        format=code,
        len=needed,
        crc32=crc,
    )


class Ring(Mapped):
    """A mapped, validated stream segment."""

    def __init__(self, native, name, path, fd, size):
        super().__init__(native, name, path, fd, size)
        self.view = memoryview(self.map)

    def close(self):
        self.view.release()
        super().close()

    def check(self):
        """Validates the header against the file (as RawHeader::check for a stream)."""
        self.check_size()
        slots, capacity, stride = self.check_segment_header(KIND_STREAM)
        code = self.u64(OFF_POLICY)
        if code not in POLICIES:
            raise self.bad(f"unknown stream policy {code}")
        self.slots, self.capacity, self.slot_stride = slots, capacity, stride
        self.policy = code

    def head(self):
        return self.u64(OFF_HEAD, ACQUIRE)

    def status(self):
        return self.u64(OFF_STATUS, ACQUIRE)

    def slot_addr(self, frame_id):
        return self.base + SLOTS_OFFSET + (frame_id % self.slots) * SLOT_SIZE

    def payload_offset(self, frame_id):
        return HEADER_SIZE + (frame_id % self.slots) * self.slot_stride

    def entry_addr(self, i):
        return self.base + READERS_OFFSET + i * READER_SIZE

    def pulse(self, offset):
        """Changes a futex word (a counter in its low 31 bits) and wakes
        whoever sleeps on it: a sleeper set bit 31 before sleeping."""
        n, addr = self.native, self.base + offset
        old = n.load4(addr, RELAXED)
        while True:
            won, found = n.cas(4, addr, old, ((old & COUNTER) + 1) & COUNTER, RELEASE, RELAXED)
            if won:
                break
            old = found
        if old & SLEEPER:
            n.futex_wake(addr)


def wait_ring(native, name, timeout):
    """Waits for a live producer to publish /dev/shm/p1p2.NAME, then maps
    and validates it. A header that lies ends the wait at once; a stale
    segment (its producer is dead) is not used: a new producer will replace it."""
    missing = (
        f"no stream named {name} appeared within {timeout:g} s "
        "(is `producer --stream` running with this --name?)"
    )
    deadline = time.monotonic() + timeout
    return wait_live(Ring, native, name, deadline, timeout, "stream", missing)


class Reader:
    """This process's entry in the ring's reader table, and the reads."""

    def __init__(self, ring, use_numpy):
        self.ring = ring
        self.native = ring.native
        self.use_numpy = use_numpy and np is not None
        self.me = my_ident()
        self.entry = None
        self.cursor = 0
        self.frames = 0
        self.skipped = 0
        self.evicted = 0
        self.timeout = 0.0

    # ------------------------------------------------------- the entry

    def attach(self):
        """Takes a free entry: one compare-and-swap of this process's
        identity word from 0 or from a dead reader's word."""
        n = self.native
        for i in range(MAX_READERS):
            addr = self.ring.entry_addr(i) + R_IDENT
            old = n.load8(addr, ACQUIRE)
            if old != 0 and ident_alive(old):
                continue
            won, _ = n.cas(8, addr, old, self.me, ACQ_REL, RELAXED)
            if won:
                self.entry = i
                break
        else:
            raise Failure(f"every reader entry of stream {self.ring.name} is in use")
        self.join()
        self.ring.pulse(OFF_READERS_PULSE)

    def release(self):
        """Frees the entry, if it is still this process's."""
        if self.entry is None:
            return
        addr = self.ring.entry_addr(self.entry) + R_IDENT
        self.entry = None
        won, _ = self.native.cas(8, addr, self.me, 0, ACQ_REL, RELAXED)
        if won:
            self.ring.pulse(OFF_READERS_PULSE)

    def join(self):
        """Starts (or restarts, after an eviction) from the stream's present:
        the newest frame under latest, the next one under every."""
        head = self.ring.head()
        self.cursor = max(head - 1, 0) if self.ring.policy == LATEST else head
        entry = self.ring.entry_addr(self.entry)
        self.native.store8(entry + R_CURSOR, self.cursor, RELEASE)
        self.native.store8(entry + R_FLAGS, 0, RELEASE)

    def finish(self, frame_id, read):
        """Moves the cursor to frame_id (read or skipped), and tells a
        producer that waits for it."""
        entry = self.ring.entry_addr(self.entry)
        if read:
            self.native.store8(entry + R_FRAMES, self.frames, RELAXED)
        self.cursor = frame_id
        self.native.store8(entry + R_CURSOR, frame_id, RELEASE)
        if self.ring.policy == EVERY:
            self.ring.pulse(OFF_READERS_PULSE)

    def check_evicted(self):
        """If the producer dropped this reader for holding the stream up,
        counts it and rejoins: the frames published meanwhile are skipped."""
        flags = self.native.load8(self.ring.entry_addr(self.entry) + R_FLAGS, ACQUIRE)
        if not flags & EVICTED:
            return
        before = self.cursor
        self.join()
        self.evicted += 1
        self.skipped += max(self.cursor - before, 0)
        self.ring.pulse(OFF_READERS_PULSE)

    # ------------------------------------------------------- the frames

    def next(self, timeout, look, stop_at=None):
        """Waits for the next frame this reader should read and hands it to
        look(frame, pixels) while it is in place. Returns (frame, what look
        returned), or None once the stream has ended or stop_at (a
        time.monotonic() value) has passed. The pixels must not be kept:
        the slot may be rewritten as soon as look returns."""
        ring = self.ring
        self.timeout = timeout
        deadline = time.monotonic() + timeout
        while True:
            check_signals()
            self.check_evicted()
            head = ring.head()
            if head <= self.cursor:
                status = ring.status()
                if status == RUNNING:
                    if not self.await_frame(deadline, stop_at):
                        return None
                elif status == ENDED:
                    # Re-read the head: the end is stored after the last frame.
                    if ring.head() <= self.cursor:
                        return None
                else:
                    raise self.aborted()
                continue
            target = head if ring.policy == LATEST else self.cursor + 1
            outcome, frame, seen = self.try_read(target, look)
            if outcome == "got":
                self.skipped += target - self.cursor - 1
                self.frames += 1
                self.finish(target, True)
                return frame, seen
            if ring.policy == LATEST:
                # A newer frame is there (the head moves before a slot is
                # rewritten): the loop takes it. If the head has not moved,
                # the producer is stuck or lies: wait, with the checks.
                if ring.head() == head:
                    self.await_short(deadline)
            elif outcome == "gone":
                # Frame `target` was overwritten before this reader got to it.
                self.skipped += 1
                self.finish(target, False)
            else:
                self.await_short(deadline)

    def try_read(self, target, look):
        """One sequence-lock read of frame `target`: ("got", frame, seen),
        ("busy", None, None) while its slot is rewritten, or ("gone", None,
        None) once the slot holds a newer frame."""
        ring, n = self.ring, self.native
        slot = ring.slot_addr(target)
        # Acquire: pairs with the producer's Release store of the even
        # sequence number; the header and pixels written before it are visible.
        before = n.load8(slot + SLOT_SEQ, ACQUIRE)
        if before & 1:
            return "busy", None, None

        def changed():
            # Acquire fence: the reads before it complete before the re-read.
            n.fence(ACQUIRE)
            return n.load8(slot + SLOT_SEQ, RELAXED) != before

        size = n.load8(slot + SLOT_SIZE_WORD, RELAXED)
        layout = n.load8(slot + SLOT_LAYOUT_WORD, RELAXED)
        header = (
            n.load8(slot + SLOT_FRAME_ID, RELAXED),
            n.load8(slot + SLOT_TIMESTAMP, RELAXED),
            size & 0xFFFFFFFF,
            size >> 32,
            layout & 0xFFFFFFFF,
            layout >> 32,
            n.load8(slot + SLOT_LEN, RELAXED),
            n.load4(slot + SLOT_CRC32, RELAXED),
        )
        if header[0] != target:
            if changed():
                return "busy", None, None
            if header[0] > target:
                return "gone", None, None
            raise self.bad(
                f"the head says frame {target} is published, but its slot holds frame {header[0]}"
            )
        frame = check_header(header, ring.capacity)
        if isinstance(frame, str):
            if changed():
                return "busy", None, None
            raise self.bad(f"frame {target}'s header lies: {frame}")
        ring.check_size()
        start = ring.payload_offset(target)
        # The pixels in place: no copy. The producer may rewrite them while
        # they are read (a reader that fell behind under latest): that is
        # the sequence lock's case, and whatever was read is then thrown
        # away, since `seq` is read again before anything made of it is used.
        with ring.view[start : start + frame.len] as raw:
            crc = zlib.crc32(raw) & 0xFFFFFFFF
            if self.use_numpy:
                flat = np.frombuffer(ring.map, dtype=np.uint8, count=frame.len, offset=start)
                pixels = as_strided(
                    flat,
                    shape=(frame.height, frame.width, frame.channels),
                    strides=(frame.stride, frame.channels, 1),
                    writeable=False,
                )
                seen = look(frame, pixels)
                del flat, pixels
            else:
                seen = look(frame, raw)
        if changed():
            return "busy", None, None
        if crc != frame.crc32:
            raise self.bad(
                f"frame {target} fails its CRC-32 (recorded {frame.crc32:08x}, pixels have "
                f"{crc:08x}) although no write overlapped the read"
            )
        return "got", frame, seen

    # ------------------------------------------------------- the waits

    def await_frame(self, deadline, stop_at):
        """Sleeps on the frames' futex word until the producer publishes a
        frame or ends the stream. False if stop_at passed first."""
        ring, n = self.ring, self.native
        addr = ring.base + OFF_FRAMES_PULSE
        seen = n.load4(addr, ACQUIRE) & COUNTER
        cursor = self.cursor
        last_check = time.monotonic()
        while True:
            value = n.load4(addr, ACQUIRE)
            if value & COUNTER != seen or ring.head() > cursor or ring.status() != RUNNING:
                return True
            check_signals()
            now = time.monotonic()
            if stop_at is not None and now >= stop_at:
                return False
            if now - last_check >= SLICE:
                self.producer_alive()
                last_check = now
            left = deadline - now
            if left <= 0:
                raise Failure(
                    f"no frame from the producer of stream {ring.name} within {self.timeout:g} s"
                )
            if stop_at is not None:
                left = min(left, stop_at - now)
            # Announce the sleep (bit 31), so the producer's next change of
            # the word wakes this process; a failed swap means it changed.
            expected = value | SLEEPER
            if not value & SLEEPER:
                won, _ = n.cas(4, addr, value, expected, RELAXED, RELAXED)
                if not won:
                    continue
            n.futex_wait(addr, expected, min(left, SLICE))

    def await_short(self, deadline):
        """A short pause while a slot is being rewritten, still checking the
        deadline and the producer."""
        if time.monotonic() >= deadline:
            raise Failure(
                f"no whole frame of stream {self.ring.name} within {self.timeout:g} s"
            )
        self.producer_alive()
        time.sleep(SHORT)

    def producer_alive(self):
        """Fails if the producer died, or stopped the stream on an error."""
        ring = self.ring
        status = ring.status()
        if status == ENDED:
            return
        if status != RUNNING:
            raise self.aborted()
        if ring.owner_alive():
            return
        head = ring.head()
        writing = any(
            self.native.load8(ring.base + SLOTS_OFFSET + i * SLOT_SIZE + SLOT_SEQ, ACQUIRE) & 1
            for i in range(ring.slots)
        )
        when = (
            f"in the middle of writing frame {head + 1}"
            if writing
            else f"after frame {head}, without ending the stream"
        )
        raise Failure(f"the producer (pid {ring.producer}) of stream {ring.name} died {when}")

    def aborted(self):
        ring = self.ring
        return Failure(
            f"the producer (pid {ring.producer}) stopped stream {ring.name} after frame "
            f"{ring.head()} without ending it (see its error)"
        )

    def bad(self, reason):
        return self.ring.bad(reason)


def percentiles(samples_ns):
    """p50, p99 and max in microseconds (nearest rank), as run.rs's Latency::of."""
    if not samples_ns:
        return {"p50": 0.0, "p99": 0.0, "max": 0.0}
    samples = sorted(samples_ns)

    def at(q):
        rank = min(max(math.ceil(q * len(samples)), 1), len(samples))
        return samples[rank - 1] / 1e3

    return {"p50": at(0.50), "p99": at(0.99), "max": at(1.0)}


def stream(args):
    native = Native()
    ring = wait_ring(native, args.name, args.timeout)
    reader = Reader(ring, use_numpy=not args.no_numpy)
    try:
        reader.attach()
        latencies = []
        kinds = set()
        last = None
        first_at = last_at = None
        started = time.monotonic()
        stop_at = started + args.seconds if args.seconds is not None else None

        def look(frame, pixels):
            # What a real reader does with the frame happens here, in place
            # (pixels[y, x] is a pixel's channels); this one only notes what
            # it was given.
            return "numpy" if np is not None and isinstance(pixels, np.ndarray) else "memoryview"

        while args.frames is None or reader.frames < args.frames:
            if stop_at is not None and time.monotonic() >= stop_at:
                break
            got = reader.next(args.timeout, look, stop_at)
            if got is None:
                break
            frame, kind = got
            latencies.append(max(monotonic_ns() - frame.timestamp_ns, 0))
            last_at = time.monotonic()
            if first_at is None:
                first_at = last_at
            last = frame
            kinds.add(kind)
        if last is None:
            raise Failure(f"stream {ring.name} ended before this reader read a frame")
        seconds = last_at - first_at
        fps = (reader.frames - 1) / seconds if reader.frames > 1 and seconds > 0 else 0.0
        return {
            "name": args.name,
            "policy": POLICIES[ring.policy],
            "frames": reader.frames,
            "skipped": reader.skipped,
            "evicted": reader.evicted,
            "fps": fps,
            "seconds": seconds,
            "latency_us": percentiles(latencies),
            "width": last.width,
            "height": last.height,
            "format": last.format_name,
            "zero_copy": "numpy" if kinds == {"numpy"} else "memoryview",
        }
    finally:
        reader.release()
        ring.close()


seconds_arg = seconds_type(allow_zero=False)
count_arg = whole_type(1, "", ": give 1 or more")


def main():
    parser = argparse.ArgumentParser(
        prog="py_stream.py",
        description="Read the frames of a p1p2 stream (producer --stream) in place, "
        "and report frames, skipped frames, fps and publish-to-read latency.",
    )
    parser.add_argument(
        "name", type=name_type("stream"), help="the stream's name, as given to --name"
    )
    parser.add_argument(
        "--frames", type=count_arg, metavar="N", help="stop after N frames (default: at the end)"
    )
    parser.add_argument("--seconds", type=seconds_arg, metavar="S", help="stop after S seconds")
    parser.add_argument(
        "--timeout",
        type=seconds_arg,
        default=30.0,
        metavar="S",
        help="seconds to wait for the stream, then for each frame (default 30)",
    )
    parser.add_argument(
        "--no-numpy",
        action="store_true",
        help="hand frames over as memoryviews even where numpy is installed",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    record_signals()
    try:
        report = stream(args)
    except (Failure, Interrupted, OSError) as e:
        return error_status("py_stream", e)
    if args.json:
        print(json.dumps(report))
    else:
        lat = report["latency_us"]
        how = "numpy arrays" if report["zero_copy"] == "numpy" else "memoryviews"
        print(
            f"py_stream: read {report['frames']} frames of {report['width']}x{report['height']} "
            f"{report['format']} ({report['fps']:.1f} fps), {report['skipped']} skipped, "
            f"as {how} in place (0 copies); latency p50 {lat['p50']:.0f} us, "
            f"p99 {lat['p99']:.0f} us, max {lat['max']:.0f} us"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
