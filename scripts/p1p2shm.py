"""What the Python readers of p1p2 segments share: scripts/py_consumer.py
(the one-image transfer segment) and scripts/py_stream.py (the stream ring)
import it from the directory they live in. Not a program of its own.

It holds the global header's layout and its validation (as
RawHeader::check in common/src/layout.rs), the identity words of
common/src/liveness.rs, the C functions reached through ctypes (libatomic's
atomics, syscall(2) for futexes), the mapping of /dev/shm/p1p2.NAME and the
wait for a live producer to publish it, the signal handling that turns
SIGINT, SIGTERM and SIGHUP into a clean exit, and the argument types and
error line the scripts have in common. Standard library only; Linux on
x86_64 or aarch64.
"""

import argparse
import ctypes
import errno
import fcntl
import mmap
import os
import platform
import re
import signal
import stat
import sys
import time

# The global header at offset 0 (common/src/layout.rs).
MAGIC = b"P1P2SHM\0"  # offset 0, 8 bytes
VERSION = 2  # u32 at 8
HEADER_SIZE = 4096  # u32 at 12; also where slot 0's payload starts
OFF_VERSION = 8
OFF_HEADER_SIZE = 12
OFF_CAPACITY = 16  # u64: usable bytes per slot
OFF_SLOT_STRIDE = 24  # u64: capacity rounded up to whole pages
OFF_SLOT_COUNT = 32  # u32
OFF_KIND = 36  # u32: 1 = transfer, 5 = stream
OFF_ELEM_SIZE = 44  # u32
OFF_ELEM_COUNT = 48  # u64
OFF_PRODUCER_PID = 56  # u32
OFF_FLAGS = 80  # u32: 0 for transfers and streams
PAGE = 4096
MAX_SEGMENT_BYTES = 1 << 40
KIND_TRANSFER, KIND_STREAM = 1, 5
KINDS = {1: "transfer", 2: "value", 3: "array", 5: "stream"}  # 4 is retired
MAX_SLOTS = 31
STREAM_SLOTS = (2, 15)  # a ring has 2..=15 slots (common/src/stream)

# Identity words (common/src/liveness.rs): pid in the low 22 bits, start
# time (clock ticks after boot, /proc/PID/stat field 22) above.
PID_BITS = 22
PID_MASK = (1 << PID_BITS) - 1

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


# ------------------------------------------------------------ errors, signals


class Failure(Exception):
    """What cannot complete; the message is one line."""


class Interrupted(Exception):
    """A signal arrived; the script leaves cleanly."""

    def __init__(self, signum):
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum


_received = []


def _record(signum, _frame):
    # Only recorded: the waits notice it between slices, so no lock is left
    # held and no shared word half updated by an exception at a random point.
    _received.append(signum)


def record_signals():
    """From now on SIGINT, SIGTERM and SIGHUP are only recorded, for
    check_signals to raise."""
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _record)


def check_signals():
    """Raises Interrupted if one of the signals arrived."""
    if _received:
        raise Interrupted(_received[0])


def error_status(prog, error):
    """Prints `error` as one line on stderr; returns the exit status, 128 +
    the signal number for an Interrupted, else 1."""
    print(f"{prog}: error: {error}", file=sys.stderr)
    return 128 + error.signum if isinstance(error, Interrupted) else 1


# ----------------------------------------------------------------- arguments


def seconds_type(allow_zero):
    """An argparse type: a finite number of seconds, 0 allowed or not."""

    def seconds(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
        usable = 0 <= value if allow_zero else 0 < value
        if not (usable and value < float("inf")):
            raise argparse.ArgumentTypeError(f"{text!r} is not a usable duration")
        return value

    return seconds


def whole_type(minimum, unit, too_small):
    """An argparse type: a whole number of at least `minimum`; `unit` and
    `too_small` end the messages that refuse one."""

    def whole(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number{unit}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text!r}{too_small}")
        return value

    return whole


def name_type(noun):
    """An argparse type: a segment name (`noun` names it in the message)."""

    def segment_name(text):
        if not NAME_RE.fullmatch(text) or text in (".", ".."):
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a {noun} name (1 to 64 of A-Z a-z 0-9 . _ -)"
            )
        return text

    return segment_name


# ------------------------------------------------------------- C functions


class Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


def timespec(ns):
    return Timespec(ns // 1_000_000_000, ns % 1_000_000_000)


class Native:
    """The C functions a reader calls: libatomic's atomics and syscall(2)
    for futexes. A subclass loads more in `more` (with `fn`), and may say
    differently what the libraries are needed for."""

    ATOMICS_FOR = "the atomic operations"  # what libatomic provides
    LIBC_NOTE = ""  # added to the message when libc.so.6 cannot be loaded
    LIBC = "the C library"  # named when a function is missing

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
                f"cannot load libatomic.so.1 ({e}); it provides {self.ATOMICS_FOR} this "
                "script needs (Debian/Ubuntu: apt-get install libatomic1)"
            ) from None
        try:
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
        except OSError as e:
            raise Failure(f"cannot load the C library libc.so.6 ({e}){self.LIBC_NOTE}") from None

        fn = self.fn
        u32p = ctypes.POINTER(ctypes.c_uint32)
        u64p = ctypes.POINTER(ctypes.c_uint64)
        vp, i, u32, u64 = ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32, ctypes.c_uint64
        a, b = "libatomic.so.1", ctypes.c_bool
        self.cas4 = fn(atomic, a, "__atomic_compare_exchange_4", b, [vp, u32p, u32, i, i])
        self.cas8 = fn(atomic, a, "__atomic_compare_exchange_8", b, [vp, u64p, u64, i, i])
        self.load4 = fn(atomic, a, "__atomic_load_4", u32, [vp, i])
        self.load8 = fn(atomic, a, "__atomic_load_8", u64, [vp, i])
        self.store8 = fn(atomic, a, "__atomic_store_8", None, [vp, u64, i])
        self.exchange8 = fn(atomic, a, "__atomic_exchange_8", u64, [vp, u64, i])
        self.fence = fn(atomic, a, "atomic_thread_fence", None, [i])
        self.syscall = fn(libc, self.LIBC, "syscall", ctypes.c_long, None)
        self.more(libc)

    @staticmethod
    def fn(lib, what, name, restype, argtypes):
        """The function `name` of `lib` (`what` names it in the message)."""
        try:
            f = getattr(lib, name)
        except AttributeError:
            raise Failure(f"{what} has no {name}") from None
        f.restype = restype
        f.argtypes = argtypes
        return f

    def more(self, libc):
        """Loads what a subclass needs besides; nothing here."""

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
        ts = timespec(max(0, int(seconds * 1e9)))
        self.syscall(
            ctypes.c_long(self.sys_futex),
            ctypes.c_void_p(addr),
            ctypes.c_long(FUTEX_WAIT),
            ctypes.c_long(expected),
            ctypes.byref(ts),
            ctypes.c_void_p(None),
            ctypes.c_long(0),
        )


# ---------------------------------------------------------------- liveness


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
    """This process's identity word."""
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


# ------------------------------------------------------------ the segment


class Mapped:
    """A segment file mapped read-write. A subclass validates it in `check`
    (which sets `producer`) before it is used."""

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

    def close(self):
        del self._anchor
        try:
            self.map.close()
        except BufferError:
            # A caller kept an array over the mapping: the mapping then goes
            # with the process.
            pass
        os.close(self.fd)

    def u32(self, offset, order=RELAXED):
        return self.native.load4(self.base + offset, order)

    def u64(self, offset, order=RELAXED):
        return self.native.load8(self.base + offset, order)

    def bad(self, reason):
        return Failure(f"segment {self.name}: {reason}")

    def check_segment_header(self, want_kind):
        """Validates the global header against the file (as RawHeader::check):
        a segment of kind `want_kind`, with as many slots as that kind may
        have. Returns (slot count, capacity, slot stride)."""
        bad = self.bad
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
        slots = self.u32(OFF_SLOT_COUNT)
        if want_kind != KIND_STREAM and not 1 <= slots <= MAX_SLOTS:
            raise bad(f"slot count {slots} is outside 1..={MAX_SLOTS}")
        kind = self.u32(OFF_KIND)
        if kind not in KINDS:
            raise bad(f"unknown kind {kind}")
        if kind != want_kind:
            raise bad(f"it holds a {KINDS[kind]}, not a {KINDS[want_kind]}")
        low, high = STREAM_SLOTS
        if kind == KIND_STREAM and not low <= slots <= high:
            raise bad(f"a stream with {slots} slots (a ring has {low}..={high})")
        capacity, stride = self.u64(OFF_CAPACITY), self.u64(OFF_SLOT_STRIDE)
        if stride != max(1, -(-capacity // PAGE)) * PAGE:
            raise bad(f"slot stride {stride} does not fit capacity {capacity}")
        if self.u32(OFF_FLAGS) != 0:
            raise bad(f"flags {self.u32(OFF_FLAGS):#x} on a {KINDS[kind]} segment")
        described = HEADER_SIZE + stride * slots
        if described != self.size or described > MAX_SEGMENT_BYTES:
            raise bad(f"header describes {described} bytes but the file has {self.size}")
        elem_size, elem_count = self.u32(OFF_ELEM_SIZE), self.u64(OFF_ELEM_COUNT)
        if elem_size * elem_count > capacity:
            raise bad(f"{elem_count} elements of {elem_size} bytes do not fit capacity {capacity}")
        self.producer = self.u32(OFF_PRODUCER_PID)
        return slots, capacity, stride

    def check_size(self):
        """Fails if another process shrank the file: touching a page past
        its end would kill this process with SIGBUS."""
        now = os.fstat(self.fd).st_size
        if now < self.size:
            raise Failure(
                f"segment {self.name}: the file was truncated to {now} bytes while mapped"
            )

    def owner_alive(self):
        """The producer holds an exclusive flock on the file until it exits:
        a shared one can be had only once it is dead."""
        try:
            fcntl.flock(self.fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        return False


def open_mapped(cls, native, shm_name, path):
    """Maps the segment at path as a `cls` (a Mapped) and validates it with
    its `check`; None if there is no file."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise Failure(f"refusing {path}: it is a symbolic link") from None
        raise Failure(f"cannot open {path}: {e.strerror}") from None
    segment = None
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
        segment = cls(native, shm_name, path, fd, st.st_size)
        segment.check()
        return segment
    except BaseException:
        if segment is not None:
            segment.close()
        else:
            os.close(fd)
        raise


def wait_live(cls, native, name, deadline, timeout, noun, missing):
    """Waits until `deadline` for a live producer to publish
    /dev/shm/p1p2.NAME, then returns it mapped and validated as a `cls`. A
    header that lies ends the wait at once; a stale segment (its producer
    is dead) is not used: a new producer will replace it. `noun` names the
    segment in the message of a timeout, `missing` is that message when no
    file appeared at all."""
    shm_name = PREFIX + name
    path = os.path.join(SHM_DIR, shm_name)
    stale = None
    while True:
        check_signals()
        segment = open_mapped(cls, native, shm_name, path)
        if segment is not None:
            if segment.owner_alive():
                return segment
            stale = segment.producer
            segment.close()
        if time.monotonic() >= deadline:
            if stale is not None:
                raise Failure(
                    f"{noun} {shm_name} is stale (its producer pid {stale} is dead) and no live "
                    f"producer replaced it within {timeout:g} s"
                )
            raise Failure(missing)
        time.sleep(POLL)
