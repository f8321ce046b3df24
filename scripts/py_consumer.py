#!/usr/bin/env python3
"""A consumer (P2) in Python: takes the payload that `producer` put into a
shared-memory segment, checks it, acknowledges it and writes it to a file.

    scripts/py_consumer.py [--name p1p2] [--timeout 30] [--hold MS] --out FILE

It uses only the standard library, and through ctypes two C libraries that
every glibc system has: libc (for the pthread mutex and the futex system
call) and libatomic (libatomic.so.1, for atomic loads, stores and
compare-and-swap on the shared words, which Python cannot do by itself).
Linux on x86_64 or aarch64 with glibc 2.30 or later.

It takes part in the hand-off exactly as the Rust consumer does (see
common/src/transport/shm.rs and docs/segment-format.md, layout version 2):

1. waits for /dev/shm/p1p2.NAME to be published by a live producer, maps it,
   validates the header and checks that slot 0 holds a robust,
   process-shared mutex;
2. claims the segment: one compare-and-swap of its identity (pid and start
   time in one word) into the header's consumer word, from nobody or from a
   dead consumer; the claim is released however the script ends, unless it
   is killed;
3. takes slot 0's robust mutex with pthread_mutex_clocklock on
   CLOCK_MONOTONIC, in slices of at most 100 ms (so a signal is noticed),
   until its deadline, and records itself as the holder;
4. holding the lock, reads the state word: Ready -> applies Take (Ready ->
   Taken); a holder that died (EOWNERDEAD) over Empty means the producer
   died while writing, so it applies Withdraw and fails; one that died over
   Ready or Taken left a complete payload, which it uses; Withdrawn is
   refused;
5. copies the payload as a sequence-lock read (the sequence number must be
   even, and the same after the copy), verifies the CRC-32, writes it to a
   temporary file next to FILE, keeps the lock for --hold ms, then applies
   Ack (Taken -> Acked), or Reject (Taken -> Rejected) if anything failed or
   a signal arrived;
6. clears its holder record, releases the lock and its claim, and removes
   the segment only if its producer is dead (a live producer's segment is
   the producer's to remove).

Every state change is one compare-and-swap, followed by a futex wake of the
state word. When the producer withdraws first (its --timeout passed, or it
was interrupted), the Ack loses: the script reports that the payload was not
delivered and FILE is not written. FILE appears (renamed from the temporary
file) only once the Ack has won.

Errors are one line on stderr and a non-zero exit: 1 for a failed transfer,
2 for bad arguments, 128 + the signal number for SIGINT, SIGTERM or SIGHUP.

What it shares with scripts/py_stream.py (the header's layout and checks,
the ctypes functions, identity words, signals) is in scripts/p1p2shm.py,
which it imports from its own directory.
"""

import argparse
import ctypes
import errno
import fcntl
import os
import stat
import struct
import sys
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
import p1p2shm  # noqa: E402  (the shared pieces, next to this script)
from p1p2shm import (  # noqa: E402
    ACQUIRE, ACQ_REL, HEADER_SIZE, KIND_TRANSFER, PID_MASK, POLL, RELAXED, SLICE, Failure,
    Interrupted, Mapped, check_signals, error_status, ident_alive, my_ident, name_type,
    record_signals, seconds_type, timespec, wait_live, whole_type,
)

# The global header's word for the hand-off (common/src/layout.rs); the rest
# of the header is p1p2shm's.
OFF_CONSUMER = 72  # u64: identity word of the consumer, 0 = none

# Slot 0's control block at offset 128.
OFF_STATE = 128  # u32, the futex word
OFF_CRC32 = 132  # u32
OFF_LEN = 136  # u64
OFF_SEQ = 144  # u64: a sequence lock, odd while the producer writes
OFF_HOLDER = 152  # u64: identity word of the mutex holder, 0 = none
OFF_LOCK = 192  # the robust pthread mutex (64 bytes reserved)
OFF_LOCK_KIND = OFF_LOCK + 16  # glibc's __kind word (every 64-bit glibc)
MUTEX_BYTES = 64

# The hand-off's states and steps (common/src/handoff/mod.rs).
EMPTY, READY, ACKED, REJECTED, WITHDRAWN, TAKEN = 0, 1, 2, 3, 4, 5
STATE_NAMES = {
    EMPTY: "empty",
    READY: "ready",
    ACKED: "acknowledged",
    REJECTED: "rejected",
    WITHDRAWN: "withdrawn",
    TAKEN: "taken",
}
STEPS = {
    "Take": ((READY,), TAKEN),
    "Ack": ((TAKEN,), ACKED),
    "Reject": ((TAKEN,), REJECTED),
    "Withdraw": ((EMPTY, READY, TAKEN), WITHDRAWN),
}

# C constants (Linux, glibc).
CLOCK_MONOTONIC = 1
PTHREAD_PROCESS_SHARED = 1
PTHREAD_MUTEX_ROBUST = 1


def pause(seconds):
    """Sleeps, in slices that check for signals."""
    end = time.monotonic() + seconds
    while True:
        check_signals()
        left = end - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(left, SLICE))


class Native(p1p2shm.Native):
    """The C functions this script calls: p1p2shm's (libatomic's atomics,
    syscall(2) for futexes) and libc's robust-mutex functions."""

    ATOMICS_FOR = "the atomic compare-and-swap"
    LIBC_NOTE = "; glibc is needed"
    LIBC = "the C library (glibc 2.30 or later is needed)"

    def more(self, libc):
        fn, c = self.fn, self.LIBC
        vp, i = ctypes.c_void_p, ctypes.c_int
        ts = ctypes.POINTER(p1p2shm.Timespec)
        self.clocklock = fn(libc, c, "pthread_mutex_clocklock", i, [vp, i, ts])
        self.trylock = fn(libc, c, "pthread_mutex_trylock", i, [vp])
        self.unlock = fn(libc, c, "pthread_mutex_unlock", i, [vp])
        self.consistent = fn(libc, c, "pthread_mutex_consistent", i, [vp])
        self.expected_kind = self._robust_kind(libc, fn, c)

    @staticmethod
    def _robust_kind(libc, fn, c):
        """glibc's __kind word of a fresh robust, process-shared mutex, made
        in private memory: what a producer's mutex must hold."""
        vp, i = ctypes.c_void_p, ctypes.c_int
        attr = (ctypes.c_uint64 * 8)()
        mutex = (ctypes.c_uint64 * (MUTEX_BYTES // 8))()
        init = fn(libc, c, "pthread_mutexattr_init", i, [vp])
        pshared = fn(libc, c, "pthread_mutexattr_setpshared", i, [vp, i])
        robust = fn(libc, c, "pthread_mutexattr_setrobust", i, [vp, i])
        destroy = fn(libc, c, "pthread_mutexattr_destroy", i, [vp])
        mutex_init = fn(libc, c, "pthread_mutex_init", i, [vp, vp])
        if init(attr) != 0:
            raise Failure("pthread_mutexattr_init failed")
        try:
            rc = pshared(attr, PTHREAD_PROCESS_SHARED) or robust(attr, PTHREAD_MUTEX_ROBUST)
            rc = rc or mutex_init(mutex, attr)
        finally:
            destroy(attr)
        if rc != 0:
            raise Failure(f"cannot make a robust process-shared mutex: {os.strerror(rc)}")
        return struct.unpack_from("<i", bytes(mutex), 16)[0]


class Segment(Mapped):
    """A mapped segment and the operations on slot 0."""

    def __init__(self, native, name, path, fd, size):
        super().__init__(native, name, path, fd, size)
        self.me = my_ident()
        self.locked = False
        self.claimed = False

    def close(self):
        if self.locked:  # never unmap a held robust mutex
            self.unlock()
        self.release_claim()
        super().close()

    # ---------------------------------------------------------- the header

    def check(self):
        """Validates the header against the mapping (as RawHeader::check),
        and slot 0's mutex."""
        n = self.native
        _, self.capacity, _ = self.check_segment_header(KIND_TRANSFER)
        if n.load4(self.base + OFF_LOCK_KIND, RELAXED) != n.expected_kind & 0xFFFFFFFF:
            raise self.bad("slot 0's lock: it is not a robust process-shared mutex")

    def remove_stale(self, dying=False):
        """Removes the file if its producer is dead and the path still names
        it; whether it did. `dying`: the producer is known to have died (it
        died holding the lock), but it may not have closed its files yet, so
        its flock is awaited for up to a second."""
        for _ in range(100 if dying else 1):
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if dying:
                    time.sleep(POLL)
        else:
            return False
        try:
            ours, there = os.fstat(self.fd), os.lstat(self.path)
            if (ours.st_dev, ours.st_ino) == (there.st_dev, there.st_ino):
                os.unlink(self.path)
                return True
        except OSError:
            pass
        finally:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        return False

    # ---------------------------------------------------------- the claim

    def claim(self):
        """One compare-and-swap of this process's identity into the consumer
        word, from nobody or from a dead consumer."""
        n, addr = self.native, self.base + OFF_CONSUMER
        current = n.load8(addr, ACQUIRE)
        while True:
            if current not in (0, self.me) and ident_alive(current):
                raise Failure(
                    f"segment {self.name} is already claimed by consumer pid {current & PID_MASK}"
                )
            won, current = n.cas(8, addr, current, self.me)
            if won:
                self.claimed = True
                return

    def release_claim(self):
        if self.claimed:
            self.claimed = False
            # Only our own claim: a compare-and-swap from our word to 0.
            self.native.cas(8, self.base + OFF_CONSUMER, self.me, 0, ACQ_REL, RELAXED)

    # ----------------------------------------------------------- the lock

    def holder_label(self, word=None):
        """Who holds (or held) the lock, for messages; a holder not recorded
        yet can only be the producer, which locks before publishing."""
        if word is None:
            word = self.native.load8(self.base + OFF_HOLDER, RELAXED)
        pid = word & PID_MASK
        if pid in (0, self.producer):
            return f"producer pid {self.producer}"
        return f"pid {pid}"

    def lock(self, deadline):
        """Takes slot 0's robust mutex, waiting until `deadline` at most.
        Returns None at the deadline, else (recovered, dead): whether its
        holder died holding it, and that holder's identity word (0 if it had
        not recorded itself)."""
        n, addr = self.native, self.base + OFF_LOCK
        rc = n.trylock(addr)
        if rc == errno.EBUSY:
            print(f"py_consumer: waiting for the lock, held by {self.holder_label()}", flush=True)
        while rc in (errno.EBUSY, errno.ETIMEDOUT):
            check_signals()
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            until = time.clock_gettime_ns(time.CLOCK_MONOTONIC) + int(min(left, SLICE) * 1e9)
            rc = n.clocklock(addr, CLOCK_MONOTONIC, ctypes.byref(timespec(until)))
        if rc == errno.EOWNERDEAD:
            # We own it now; marking it consistent keeps it usable for
            # everyone after our unlock. What the dead holder left is for
            # the protocol to judge.
            if n.consistent(addr) != 0:
                # Not unlocked: that would make it unrecoverable for everyone.
                # It stays held until this process exits.
                raise Failure(f"segment {self.name}: slot 0's lock cannot be made consistent")
        elif rc == errno.ENOTRECOVERABLE:
            raise Failure(
                f"segment {self.name}: slot 0's lock was left unrecoverable by a holder that died"
            )
        elif rc == errno.EINVAL:
            raise Failure(
                f"segment {self.name}: slot 0's lock: it is not a robust process-shared mutex"
            )
        elif rc != 0:
            raise Failure(f"segment {self.name}: slot 0's lock: {os.strerror(rc)}")
        self.locked = True
        # Recorded while held (and cleared before unlocking), for messages.
        before = n.exchange8(self.base + OFF_HOLDER, self.me, RELAXED)
        return rc == errno.EOWNERDEAD, before

    def is_producer(self, word):
        """Whether an identity word names this segment's producer."""
        return word & PID_MASK == self.producer

    def unlock(self):
        self.native.store8(self.base + OFF_HOLDER, 0, RELAXED)
        self.locked = False
        # Fails only for a mutex this thread does not hold.
        self.native.unlock(self.base + OFF_LOCK)

    # ---------------------------------------------------- the state word

    def state(self):
        return self.native.load4(self.base + OFF_STATE, ACQUIRE)

    def apply(self, step):
        """Applies a step of the hand-off with one compare-and-swap from the
        state the word holds, if the step leaves it (AcqRel, as
        handoff::apply). Returns (True, state left) or (False, state found)."""
        sources, target = STEPS[step]
        n, addr = self.native, self.base + OFF_STATE
        raw = n.load4(addr, ACQUIRE)
        while True:
            if raw not in sources:
                return False, raw
            won, found = n.cas(4, addr, raw, target)
            if won:
                n.futex_wake(addr)
                return True, raw
            raw = found

    def bad_state(self, raw):
        if raw in STATE_NAMES:
            return Failure(f"segment {self.name}: its payload was already {STATE_NAMES[raw]}")
        return Failure(f"segment {self.name}: its state word holds {raw}, which is no state")

    def refusal(self, raw):
        if raw == WITHDRAWN:
            return Failure(
                f"producer pid {self.producer} withdrew segment {self.name} before handing it "
                "over (it was interrupted or gave up)"
            )
        return self.bad_state(raw)


def attach(native, name, deadline, timeout):
    """Waits for a live producer to publish /dev/shm/p1p2.NAME, then maps and
    validates it. A stale segment (its producer is dead) is not used: a new
    producer will replace it."""
    missing = (
        f"segment {p1p2shm.PREFIX}{name} did not appear within {timeout:g} s "
        "(is the producer running with this --name?)"
    )
    return wait_live(Segment, native, name, deadline, timeout, "segment", missing)


def take(segment, deadline, timeout):
    """Takes the lock once slot 0 holds a payload this consumer may use and
    applies Take (or takes over from a consumer that died reading). Returns
    with the lock held, and whether the producer died holding it; raises
    with it released."""
    name, producer = segment.name, segment.producer
    while True:
        got = segment.lock(deadline)
        if got is None:
            raise Failure(
                f"the lock on segment {name} stayed held by {segment.holder_label()} "
                f"for {timeout:g} s"
            )
        recovered, dead = got
        try:
            state = segment.state()
            if state == READY:
                if recovered:
                    print(
                        f"py_consumer: {segment.holder_label(dead)} died holding the lock after "
                        "publishing a complete payload; using it",
                        flush=True,
                    )
                won, found = segment.apply("Take")
                if not won:
                    raise segment.refusal(found)
                return recovered and segment.is_producer(dead)
            if state == TAKEN and recovered:
                who = (
                    segment.holder_label(dead)
                    if dead & PID_MASK
                    else "its holder (which had not recorded its pid)"
                )
                print(
                    f"py_consumer: {who} died while reading the payload; taking over",
                    flush=True,
                )
                return False
            if state == EMPTY and recovered:
                # Only the producer holds the lock while the word is Empty:
                # it died writing. Discard the half-written payload.
                segment.apply("Withdraw")
                segment.unlock()
                segment.remove_stale(dying=segment.is_producer(dead))
                raise Failure(
                    f"producer pid {producer} died while writing its payload into segment "
                    f"{name}; the half-written payload was discarded"
                )
            if state != EMPTY:
                raise segment.refusal(state)
        except BaseException:
            if segment.locked:
                segment.unlock()
            raise
        # Not written yet: let the producer in, and sleep until the word moves.
        segment.unlock()
        while segment.state() == EMPTY:
            check_signals()
            if not segment.owner_alive():
                raise Failure(f"producer pid {producer} died before writing a payload into {name}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise Failure(f"no payload was written into segment {name} within {timeout:g} s")
            segment.native.futex_wait(segment.base + OFF_STATE, EMPTY, min(left, SLICE))


class Output:
    """FILE, written only after the Ack won. A regular file (or a new one) is
    first written under a temporary name in the same directory, so that a
    path that cannot be written is found before the acknowledgement; it is
    renamed into place after it. Anything else (/dev/null, a symbolic link)
    is written directly, after the acknowledgement."""

    def __init__(self, path):
        self.path = path
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            st = None
        except OSError as e:
            raise Failure(f"cannot write {path}: {e.strerror}") from None
        if st is not None and stat.S_ISDIR(st.st_mode):
            raise Failure(f"cannot write {path}: it is a directory")
        self.direct = st is not None and not stat.S_ISREG(st.st_mode)
        head, tail = os.path.split(path)
        temp = os.path.join(head, f".{tail}.py_consumer-{os.getpid()}")
        self.temp = None if self.direct else temp
        self.payload = None

    def prepare(self, payload):
        self.payload = payload
        if self.direct:
            return
        try:
            fd = os.open(self.temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
            with open(fd, "wb") as f:
                f.write(payload)
        except OSError as e:
            raise Failure(f"cannot write {self.path}: {e.strerror or e}") from None

    def commit(self):
        try:
            if self.direct:
                with open(self.path, "wb") as f:
                    f.write(self.payload)
            else:
                os.replace(self.temp, self.path)
                self.temp = None
        except OSError as e:
            raise Failure(
                f"acknowledged, but cannot write {self.path}: {e.strerror or e}"
            ) from None

    def discard(self):
        if self.temp is not None:
            try:
                os.unlink(self.temp)
            except FileNotFoundError:
                pass
            self.temp = None


def read_payload(segment):
    """The payload, read while holding the lock after Take: a sequence-lock
    read (the number even, and the same after the copy) checked by CRC-32."""
    n, name = segment.native, segment.name
    # Acquire: pairs with the producer's Release store of the even value
    # after its last write of the payload.
    seq = n.load8(segment.base + OFF_SEQ, ACQUIRE)
    length = n.load8(segment.base + OFF_LEN, RELAXED)
    expected = n.load4(segment.base + OFF_CRC32, RELAXED)
    if seq % 2 == 1:
        raise Failure(f"segment {name}: its sequence number {seq} is odd: a write never finished")
    if length > segment.capacity or HEADER_SIZE + length > os.fstat(segment.fd).st_size:
        raise Failure(
            f"segment {name}: payload length {length} exceeds the capacity "
            f"{segment.capacity} or the file's size"
        )
    payload = segment.map[HEADER_SIZE : HEADER_SIZE + length]
    # Acquire fence: the copy's loads complete before seq is read again.
    n.fence(ACQUIRE)
    after = n.load8(segment.base + OFF_SEQ, RELAXED)
    if after != seq:
        raise Failure(
            f"segment {name}: the payload changed while being read (sequence {seq} -> {after})"
        )
    actual = zlib.crc32(payload) & 0xFFFFFFFF
    if actual != expected:
        raise Failure(
            f"CRC-32 mismatch: the producer recorded {expected:08x}, the payload has {actual:08x}"
        )
    return payload, seq, actual


def consume(name, timeout, out, hold):
    output = Output(out)
    native = Native()
    deadline = time.monotonic() + timeout
    segment = attach(native, name, deadline, timeout)
    shm_name, producer = segment.name, segment.producer
    try:
        segment.claim()
        producer_died = take(segment, deadline, timeout)
        error = None
        try:
            payload, seq, crc = read_payload(segment)
            output.prepare(payload)
            if hold > 0:
                print(
                    f"py_consumer: holding the lock for {hold:g} ms before acknowledging (--hold)",
                    flush=True,
                )
                pause(hold / 1000)
            check_signals()
        except BaseException as e:  # whatever it is, the payload is rejected
            error = e
        # Before the step: once it is applied, a live producer ends at once.
        orphaned = producer_died or not segment.owner_alive()
        won, found = segment.apply("Reject" if error else "Ack")
        segment.unlock()
        segment.release_claim()
        removed = orphaned and segment.remove_stale(dying=producer_died)
        if won and error is None:
            output.commit()
            to_whom = " (to nobody: the producer is dead)" if orphaned else ""
            cleaned = f"; removed the segment its dead producer pid {producer} left"
            print(
                f"py_consumer: read {len(payload)} bytes (crc32 {crc:08x}, sequence {seq}) "
                f"from {shm_name}, wrote {out}, acknowledged{to_whom}{cleaned if removed else ''}"
            )
            return
        if won:
            raise error
        if found == WITHDRAWN:
            raise Failure(
                f"producer pid {producer} withdrew segment {shm_name} before the acknowledgement "
                "(its --timeout passed, or it was interrupted): the image was not delivered"
            )
        raise segment.bad_state(found)
    finally:
        output.discard()
        segment.close()


def main():
    parser = argparse.ArgumentParser(
        prog="py_consumer.py",
        description="Take the payload a p1p2 producer put into shared memory, "
        "verify it, acknowledge it and write it to FILE.",
    )
    parser.add_argument(
        "--name",
        type=name_type("segment"),
        default="p1p2",
        help="segment name, as given to the producer (default p1p2)",
    )
    parser.add_argument(
        "--timeout",
        type=seconds_type(allow_zero=True),
        default=30.0,
        metavar="SECS",
        help="seconds to wait for the segment, its lock and its payload (default 30)",
    )
    parser.add_argument(
        "--hold",
        type=whole_type(0, " of milliseconds", " is negative"),
        default=0,
        metavar="MS",
        help="keep the lock this many milliseconds before acknowledging (default 0)",
    )
    parser.add_argument("--out", required=True, metavar="FILE", help="where to write the payload")
    args = parser.parse_args()
    record_signals()
    try:
        consume(args.name, args.timeout, args.out, args.hold)
    except (Failure, Interrupted) as e:
        return error_status("py_consumer", e)
    return 0


if __name__ == "__main__":
    sys.exit(main())
