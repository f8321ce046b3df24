#!/usr/bin/env python3
"""A memfd consumer (P2) in Python: receives the sealed memfd that
`producer --transport memfd` passes over its Unix socket, checks it, reads
the payload in place and acknowledges it.

    scripts/py_memfd_consumer.py [--name p1p2] [--timeout 30] [--out FILE] [--json]

Standard library only (Python 3.9 or later, Linux). It speaks the framing
described in docs/segment-format.md ("The memfd transport"):

1. connects to the producer's socket ($XDG_RUNTIME_DIR/p1p2.NAME.sock, or
   $TMPDIR or /tmp when XDG_RUNTIME_DIR is unset), refusing a socket file or
   a listener of another user (SO_PEERCRED), and says hello;
2. receives the 24-byte offer (length, CRC-32) and the descriptors that come
   with it with socket.recv_fds (MSG_CMSG_CLOEXEC); every descriptor
   received is closed, whatever happens;
3. refuses, with one line on stderr and a NAK: no descriptor or more than
   one; one that is not a memfd (fstat, /proc/self/fd); one that lacks any of
   the shrink, grow and write seals (fcntl F_GET_SEALS); one smaller than the
   length offered;
4. maps it read-only, checks the CRC-32 (zlib.crc32 over the mapping, no
   copy) and the PNG header, and answers ACK;
5. waits for the producer's decision: DONE means delivered; WITHDRAWN means
   the producer gave up first, and a closed connection that it died before
   confirming. Only after DONE is --out written and success reported.

The seals make the memory immutable and fixed in size for everyone, for as
long as it exists: reading it in place needs no trust in the producer.

Errors are one line on stderr and exit status 1 (2 for bad arguments).
"""

import argparse
import errno
import fcntl
import json
import mmap
import os
import socket
import stat
import struct
import sys
import time
import zlib

HELLO = b"P1P2HEL\0"
OFFER = b"P1P2MFD\0"
STREAM = b"P1P2MSG\0"
ACK = b"P1P2ACK\0"
NAK = b"P1P2NAK\0"
DONE = b"P1P2DON\0"
WITHDRAWN = b"P1P2WDR\0"
OFFER_LEN = 24
MAX_FDS = 4

# The seals the consumer requires, and every seal's name for the report.
REQUIRED = [
    ("shrink", fcntl.F_SEAL_SHRINK, "F_SEAL_SHRINK"),
    ("grow", fcntl.F_SEAL_GROW, "F_SEAL_GROW"),
    ("write", fcntl.F_SEAL_WRITE, "F_SEAL_WRITE"),
]
NAMES = [
    ("seal", fcntl.F_SEAL_SEAL),
    ("shrink", fcntl.F_SEAL_SHRINK),
    ("grow", fcntl.F_SEAL_GROW),
    ("write", fcntl.F_SEAL_WRITE),
    ("future-write", 0x0010),
    ("exec", 0x0020),
]


class Refused(Exception):
    """The producer or what it sent is refused: one line for stderr."""


def socket_path(name):
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    directory = runtime if os.path.isabs(runtime) else os.environ.get("TMPDIR") or "/tmp"
    return os.path.join(directory, f"p1p2.{name}.sock")


def connect(path, deadline):
    """Connects to the producer's socket, waiting for it to appear."""
    while True:
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            info = None
        if info is not None:
            if not stat.S_ISSOCK(info.st_mode):
                raise Refused(f"refusing {path}: it is not a socket")
            if info.st_uid != os.geteuid():
                raise Refused(f"refusing {path}: it belongs to uid {info.st_uid}")
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(path)
                return sock
            except (FileNotFoundError, ConnectionRefusedError):
                sock.close()
        if time.monotonic() >= deadline:
            raise Refused(f"no producer listened on {path}: gave up (raise --timeout)")
        time.sleep(0.005)


def check_peer(sock, path):
    """The listener must run as this user (SO_PEERCRED: pid, uid, gid)."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, _gid = struct.unpack("3i", creds)
    if uid != os.geteuid():
        raise Refused(f"refusing {path}: the process listening on it, pid {pid}, runs as uid {uid}")
    return pid


def recv_offer(sock, deadline):
    """The 24-byte offer and every descriptor that came with it."""
    data, fds, truncated = b"", [], False
    while len(data) < OFFER_LEN:
        sock.settimeout(max(deadline - time.monotonic(), 0.001))
        try:
            chunk, new_fds, flags, _ = socket.recv_fds(
                sock, OFFER_LEN - len(data), MAX_FDS, socket.MSG_CMSG_CLOEXEC
            )
        except socket.timeout:
            for fd in fds:
                os.close(fd)
            raise Refused("the producer sent no memfd: gave up (raise --timeout)")
        fds.extend(new_fds)
        truncated |= bool(flags & socket.MSG_CTRUNC)
        if not chunk:
            for fd in fds:
                os.close(fd)
            raise Refused("the producer closed the connection before sending its memfd")
        data += chunk
    return data, fds, truncated


def check_memfd(fd, length):
    """Refuses anything but a memfd with the three seals and enough bytes;
    returns the names of its seals."""
    info = os.fstat(fd)
    if stat.S_ISSOCK(info.st_mode):
        raise Refused("the descriptor it sent is a socket, not a memfd")
    if not stat.S_ISREG(info.st_mode):
        raise Refused("the descriptor it sent is not a memfd")
    try:
        link = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        link = None
    if link is not None and not link.startswith("/memfd:"):
        raise Refused(f"the descriptor it sent is the file {link}, not a memfd")
    try:
        seals = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
    except OSError as e:
        if e.errno == errno.EINVAL:
            raise Refused("the descriptor it sent is a file that cannot be sealed, not a memfd")
        raise
    missing = [(word, flag) for word, bit, flag in REQUIRED if not seals & bit]
    if missing:
        words = [w for w, _ in missing]
        listed = words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]
        raise Refused(
            f"the memfd lacks the {listed} seal{'s' if len(words) > 1 else ''} "
            f"({', '.join(f for _, f in missing)})"
        )
    if info.st_size < length:
        raise Refused(f"the memfd holds {info.st_size} bytes, less than the {length} its offer claims")
    return [name for name, bit in NAMES if seals & bit]


def read_word(sock, deadline):
    """One 8-byte answer or decision; b"" if the peer closed first."""
    word = b""
    while len(word) < 8:
        sock.settimeout(max(deadline - time.monotonic(), 0.001))
        try:
            chunk = sock.recv(8 - len(word))
        except socket.timeout:
            raise Refused("the producer did not confirm in time; its decision says whether the image was delivered")
        except ConnectionResetError:
            return b""
        if not chunk:
            return b""
        word += chunk
    return word


def png_size(payload):
    """Width and height from the PNG header, read in place."""
    if bytes(payload[:8]) != b"\x89PNG\r\n\x1a\n" or bytes(payload[12:16]) != b"IHDR":
        raise Refused("the payload is not a PNG image")
    return struct.unpack(">II", bytes(payload[16:24]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="p1p2")
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--out", help="write the received image here (after DONE)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    path = socket_path(args.name)
    deadline = time.monotonic() + args.timeout
    sock = connect(path, deadline)
    with sock:
        producer = check_peer(sock, path)
        sock.sendall(struct.pack("<8sII", HELLO, os.getpid(), 0))
        data, fds, truncated = recv_offer(sock, deadline)
        try:
            magic, length, crc, _zero = struct.unpack("<8sQII", data)
            try:
                if magic == STREAM:
                    raise Refused("the producer sends the payload through the socket (--transport unix), not as a memfd")
                if magic != OFFER:
                    raise Refused("wrong magic (is something else listening there?)")
                if truncated or len(fds) > 1:
                    raise Refused(f"it sent {len(fds)} or more file descriptors, expected exactly one")
                if not fds:
                    raise Refused("it sent no file descriptor with its offer, expected exactly one")
                if length == 0:
                    raise Refused("it offered an empty payload")
                seals = check_memfd(fds[0], length)
                # mmap keeps its own reference: the descriptor is closed below.
                with mmap.mmap(fds[0], length, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ) as payload:
                    actual = zlib.crc32(payload)
                    if actual != crc:
                        raise Refused(f"CRC-32 mismatch: the producer recorded {crc:08x}, the payload has {actual:08x}")
                    width, height = png_size(payload)
                    image = bytes(payload) if args.out else None
            except Refused:
                try:
                    sock.sendall(NAK)
                except OSError:
                    pass  # the producer is gone: the refusal stands
                raise
        finally:
            for fd in fds:
                os.close(fd)
        try:
            sock.sendall(ACK)
        except (BrokenPipeError, ConnectionResetError):
            pass  # a producer that withdrew may have hung up: its decision is still readable
        decision = read_word(sock, time.monotonic() + args.timeout)
    if decision == WITHDRAWN:
        raise Refused(f"not delivered: the producer withdrew it (producer pid {producer} gave up or was interrupted)")
    if decision == b"":
        raise Refused(f"producer pid {producer} died before confirming the hand-off: not delivered")
    if decision != DONE:
        raise Refused("bad message from the producer: its decision is neither DONE nor WITHDRAWN")
    if args.out:
        with open(args.out, "wb") as out:
            out.write(image)
    report = {
        "transport": "memfd",
        "name": args.name,
        "pid": os.getpid(),
        "producer_pid": producer,
        "bytes": length,
        "crc32": f"{crc:08x}",
        "width": width,
        "height": height,
        "seals": seals,
        "copies": [],
    }
    if args.json:
        print(json.dumps(report))
    else:
        print(
            f"P2 python | received a memfd sealed with {', '.join(seals)}: {length} bytes, "
            f"crc32 {crc:08x} ok, a {width}x{height} PNG read in place; the producer confirmed: delivered"
        )


if __name__ == "__main__":
    try:
        main()
    except Refused as e:
        print(f"py_memfd_consumer: error: {e}", file=sys.stderr)
        sys.exit(1)
    except (OSError, struct.error) as e:
        print(f"py_memfd_consumer: error: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("py_memfd_consumer: error: interrupted by SIGINT", file=sys.stderr)
        sys.exit(130)
