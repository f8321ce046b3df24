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
"""

import argparse
import ctypes
import errno
import fcntl
import json
import math
import mmap
import os
import platform
import re
import signal
import stat
import sys
import time
import zlib

try:
    import numpy as np
    from numpy.lib.stride_tricks import as_strided
except ImportError:  # the frames are then memoryviews
    np = None

# The global header at offset 0 (common/src/layout.rs).
MAGIC = b"P1P2SHM\0"  # offset 0
VERSION = 2  # u32 at 8
HEADER_SIZE = 4096  # u32 at 12; also where slot 0's payload starts
OFF_VERSION = 8
OFF_HEADER_SIZE = 12
OFF_CAPACITY = 16  # u64: usable bytes per slot
OFF_SLOT_STRIDE = 24  # u64: capacity rounded up to whole pages
OFF_SLOT_COUNT = 32  # u32
OFF_KIND = 36  # u32: 5 = stream
OFF_ELEM_SIZE = 44  # u32
OFF_ELEM_COUNT = 48  # u64
OFF_PRODUCER_PID = 56  # u32
OFF_FLAGS = 80  # u32: 0 for a stream
PAGE = 4096
MAX_SEGMENT_BYTES = 1 << 40
KIND_STREAM = 5
KINDS = {1: "transfer", 2: "value", 3: "array", 5: "stream"}
MIN_SLOTS, MAX_SLOTS = 2, 15

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

# Identity words (common/src/liveness.rs): pid in the low 22 bits, start
# time (clock ticks after boot, /proc/PID/stat field 22) above.
PID_BITS = 22
PID_MASK = (1 << PID_BITS) - 1

# Bit 31 of a futex word: a waiter sets it just before it sleeps, so that
# whoever changes the word knows a FUTEX_WAKE is needed (common/src/wait.rs).
SLEEPER = 1 << 31
COUNTER = SLEEPER - 1

# C constants (Linux).
RELAXED, ACQUIRE, RELEASE, ACQ_REL = 0, 2, 3, 4
FUTEX_WAIT, FUTEX_WAKE = 0, 1
INT_MAX = 2**31 - 1
SYS_FUTEX = {"x86_64": 202, "amd64": 202, "aarch64": 98, "arm64": 98}

PREFIX = "p1p2."
SHM_DIR = "/dev/shm"
NAME_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
POLL = 0.01  # seconds between looks for the file
SLICE = 0.1  # longest single sleep: how quickly a signal or a death is noticed
SHORT = 50e-6  # pause while a slot is being rewritten


class Failure(Exception):
    """A stream that cannot go on; the message is one line."""


class Interrupted(Exception):
    """A signal arrived; the reader leaves cleanly."""

    def __init__(self, signum):
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum


_received = []


def _record(signum, _frame):
    # Only recorded: the waits notice it between slices, so the reader entry
    # is never left half updated by an exception at a random point.
    _received.append(signum)


def check_signals():
    if _received:
        raise Interrupted(_received[0])


def monotonic_ns():
    """CLOCK_MONOTONIC in nanoseconds: the clock of the frames' timestamps."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


class Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class Native:
    """The C functions this script calls: libatomic's atomics and
    syscall(2) for futexes."""

    def __init__(self):
        machine = platform.machine()
        self.sys_futex = SYS_FUTEX.get(machine.lower())
        if not sys.platform.startswith("linux") or self.sys_futex is None:
            raise Failure(
                f"this script runs on Linux on x86_64 or aarch64, not on {sys.platform} {machine}"
            )
        try:
            atomic = ctypes.CDLL("libatomic.so.1")
        except OSError as e:
            raise Failure(
                f"cannot load libatomic.so.1 ({e}); it provides the atomic operations this "
                "script needs (Debian/Ubuntu: apt-get install libatomic1)"
            ) from None
        try:
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
        except OSError as e:
            raise Failure(f"cannot load the C library libc.so.6 ({e})") from None

        def fn(lib, what, name, restype, argtypes):
            try:
                f = getattr(lib, name)
            except AttributeError:
                raise Failure(f"{what} has no {name}") from None
            f.restype = restype
            f.argtypes = argtypes
            return f

        u32p = ctypes.POINTER(ctypes.c_uint32)
        u64p = ctypes.POINTER(ctypes.c_uint64)
        vp, i, u32, u64 = ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32, ctypes.c_uint64
        a, b = "libatomic.so.1", ctypes.c_bool
        self.cas4 = fn(atomic, a, "__atomic_compare_exchange_4", b, [vp, u32p, u32, i, i])
        self.cas8 = fn(atomic, a, "__atomic_compare_exchange_8", b, [vp, u64p, u64, i, i])
        self.load4 = fn(atomic, a, "__atomic_load_4", u32, [vp, i])
        self.load8 = fn(atomic, a, "__atomic_load_8", u64, [vp, i])
        self.store8 = fn(atomic, a, "__atomic_store_8", None, [vp, u64, i])
        self.fence = fn(atomic, a, "atomic_thread_fence", None, [i])
        self.syscall = fn(libc, "the C library", "syscall", ctypes.c_long, None)

    def cas(self, load_width, addr, old, new, success=ACQ_REL, failure=ACQUIRE):
        """Compare-and-swap of the 4- or 8-byte word at addr; (won, found)."""
        if load_width == 4:
            expected = ctypes.c_uint32(old)
            won = self.cas4(addr, ctypes.byref(expected), new, success, failure)
        else:
            expected = ctypes.c_uint64(old)
            won = self.cas8(addr, ctypes.byref(expected), new, success, failure)
        return won, expected.value

    def futex_wake(self, addr):
        # A failed wake (impossible for a valid address) only delays the
        # waiter until the end of its 100 ms slice.
        self.syscall(
            ctypes.c_long(self.sys_futex),
            ctypes.c_void_p(addr),
            ctypes.c_long(FUTEX_WAKE),
            ctypes.c_long(INT_MAX),
            ctypes.c_void_p(None),
            ctypes.c_void_p(None),
            ctypes.c_long(0),
        )

    def futex_wait(self, addr, expected, seconds):
        """Sleeps while the word at addr holds `expected`, at most `seconds`
        (a wake, EAGAIN, ETIMEDOUT and EINTR all just return)."""
        ns = max(0, int(seconds * 1e9))
        ts = Timespec(ns // 1_000_000_000, ns % 1_000_000_000)
        self.syscall(
            ctypes.c_long(self.sys_futex),
            ctypes.c_void_p(addr),
            ctypes.c_long(FUTEX_WAIT),
            ctypes.c_long(expected),
            ctypes.byref(ts),
            ctypes.c_void_p(None),
            ctypes.c_long(0),
        )


def proc_stat(pid):
    """(state, start time) from /proc/PID/stat, or None."""
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


def my_ident():
    pid = os.getpid()
    st = proc_stat(pid)
    return (pid & PID_MASK) | ((st[1] if st else 0) << PID_BITS)


def ident_alive(word):
    """Whether the process named by an identity word runs (a zombie counts
    as dead; a start time of 0 is not compared)."""
    pid, start = word & PID_MASK, word >> PID_BITS
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    st = proc_stat(pid)
    if st is None:
        return not os.path.exists("/proc/self")
    return st[0] not in ("Z", "X", "x") and (start == 0 or st[1] == start)


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


class Ring:
    """A mapped, validated stream segment."""

    def __init__(self, native, name, path, fd, size):
        self.native = native
        self.name = name
        self.path = path
        self.fd = fd
        self.size = size
        self.map = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        # The mapping's address, for the C functions. This exported buffer
        # must be released before the mapping is closed.
        self._anchor = ctypes.c_char.from_buffer(self.map)
        self.base = ctypes.addressof(self._anchor)
        self.view = memoryview(self.map)

    def close(self):
        self.view.release()
        del self._anchor
        try:
            self.map.close()
        except BufferError:
            # A caller kept a frame's numpy array: the mapping then goes
            # with the process.
            pass
        os.close(self.fd)

    def u32(self, offset, order=RELAXED):
        return self.native.load4(self.base + offset, order)

    def u64(self, offset, order=RELAXED):
        return self.native.load8(self.base + offset, order)

    def check(self):
        """Validates the header against the file (as RawHeader::check for a stream)."""

        def bad(reason):
            return Failure(f"segment {self.name}: {reason}")

        # Acquire: pairs with the creator's Release store of the magic, after
        # which it changes none of the fields read below.
        magic = self.u64(0, ACQUIRE).to_bytes(8, "little")
        if magic != MAGIC:
            raise bad(f"wrong magic {magic!r} (not a p1p2 segment, or not initialised)")
        version = self.u32(OFF_VERSION)
        if version != VERSION:
            raise bad(f"layout version {version}, this script reads version {VERSION}")
        if self.u32(OFF_HEADER_SIZE) != HEADER_SIZE:
            raise bad(f"header size {self.u32(OFF_HEADER_SIZE)} differs from {HEADER_SIZE}")
        kind = self.u32(OFF_KIND)
        if kind not in KINDS:
            raise bad(f"unknown kind {kind}")
        if kind != KIND_STREAM:
            raise bad(f"it holds a {KINDS[kind]}, not a stream")
        slots = self.u32(OFF_SLOT_COUNT)
        if not MIN_SLOTS <= slots <= MAX_SLOTS:
            raise bad(f"a stream with {slots} slots (a ring has {MIN_SLOTS}..={MAX_SLOTS})")
        capacity, stride = self.u64(OFF_CAPACITY), self.u64(OFF_SLOT_STRIDE)
        if stride != max(1, -(-capacity // PAGE)) * PAGE:
            raise bad(f"slot stride {stride} does not fit capacity {capacity}")
        if self.u32(OFF_FLAGS) != 0:
            raise bad(f"flags {self.u32(OFF_FLAGS):#x} on a stream segment")
        described = HEADER_SIZE + stride * slots
        if described != self.size or described > MAX_SEGMENT_BYTES:
            raise bad(f"header describes {described} bytes but the file has {self.size}")
        elem_size, elem_count = self.u32(OFF_ELEM_SIZE), self.u64(OFF_ELEM_COUNT)
        if elem_size * elem_count > capacity:
            raise bad(f"{elem_count} elements of {elem_size} bytes do not fit capacity {capacity}")
        code = self.u64(OFF_POLICY)
        if code not in POLICIES:
            raise bad(f"unknown stream policy {code}")
        self.slots, self.capacity, self.slot_stride = slots, capacity, stride
        self.policy = code
        self.producer = self.u32(OFF_PRODUCER_PID)

    def owner_alive(self):
        """The producer holds an exclusive flock on the file until it exits:
        a shared one can be had only once it is dead."""
        try:
            fcntl.flock(self.fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        return False

    def check_size(self):
        """Fails if another process shrank the file: touching a page past
        its end would kill this process with SIGBUS."""
        now = os.fstat(self.fd).st_size
        if now < self.size:
            raise Failure(
                f"segment {self.name}: the file was truncated to {now} bytes while mapped"
            )

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


def open_ring(native, shm_name, path):
    """Maps and validates the segment at path; None if there is none."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise Failure(f"refusing {path}: it is a symbolic link") from None
        raise Failure(f"cannot open {path}: {e.strerror}") from None
    ring = None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise Failure(f"refusing {path}: it is not a regular file")
        if st.st_uid != os.geteuid():
            raise Failure(
                f"refusing {path}: it belongs to uid {st.st_uid}, not to this user ({os.geteuid()})"
            )
        if st.st_size < HEADER_SIZE:
            raise Failure(
                f"segment {shm_name}: the file has {st.st_size} bytes, less than the "
                f"{HEADER_SIZE}-byte header"
            )
        if st.st_size > MAX_SEGMENT_BYTES:
            raise Failure(f"segment {shm_name}: the file is implausibly large ({st.st_size} bytes)")
        ring = Ring(native, shm_name, path, fd, st.st_size)
        ring.check_size()
        ring.check()
        return ring
    except BaseException:
        if ring is not None:
            ring.close()
        else:
            os.close(fd)
        raise


def wait_ring(native, name, timeout):
    """Waits for a live producer to publish /dev/shm/p1p2.NAME, then maps
    and validates it. A header that lies ends the wait at once; a stale
    segment (its producer is dead) is not used: a new producer will replace it."""
    shm_name = PREFIX + name
    path = os.path.join(SHM_DIR, shm_name)
    deadline = time.monotonic() + timeout
    stale = None
    while True:
        check_signals()
        ring = open_ring(native, shm_name, path)
        if ring is not None:
            if ring.owner_alive():
                return ring
            stale = ring.producer
            ring.close()
        if time.monotonic() >= deadline:
            if stale is not None:
                raise Failure(
                    f"stream {shm_name} is stale (its producer pid {stale} is dead) and no live "
                    f"producer replaced it within {timeout:g} s"
                )
            raise Failure(
                f"no stream named {name} appeared within {timeout:g} s "
                "(is `producer --stream` running with this --name?)"
            )
        time.sleep(POLL)


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
        return Failure(f"segment {self.ring.name}: {reason}")


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


def seconds_arg(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a usable duration")
    return value


def count_arg(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give 1 or more")
    return value


def segment_name(text):
    if not NAME_RE.fullmatch(text) or text in (".", ".."):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a stream name (1 to 64 of A-Z a-z 0-9 . _ -)"
        )
    return text


def main():
    parser = argparse.ArgumentParser(
        prog="py_stream.py",
        description="Read the frames of a p1p2 stream (producer --stream) in place, "
        "and report frames, skipped frames, fps and publish-to-read latency.",
    )
    parser.add_argument("name", type=segment_name, help="the stream's name, as given to --name")
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
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _record)
    try:
        report = stream(args)
    except Failure as e:
        print(f"py_stream: error: {e}", file=sys.stderr)
        return 1
    except Interrupted as e:
        print(f"py_stream: error: {e}", file=sys.stderr)
        return 128 + e.signum
    except OSError as e:
        print(f"py_stream: error: {e}", file=sys.stderr)
        return 1
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
