//! The library's error type.
//!
//! Every variant renders as one line that names what went wrong and, where it
//! helps, the flag that changes it. The binaries print it after their own name
//! and exit with [`Error::exit_code`].

use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Which side of a transfer a process plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// P1, the writer.
    Producer,
    /// P2, the reader.
    Consumer,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Producer => "producer",
            Role::Consumer => "consumer",
        })
    }
}

/// Everything that can go wrong in a transfer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A `--name` that breaks the naming rules.
    #[error("invalid name {name:?}: {reason} (names are 1-64 characters of [A-Za-z0-9._-])")]
    InvalidName {
        /// The rejected name.
        name: String,
        /// Which rule it broke.
        reason: &'static str,
    },

    /// The image given to the producer cannot be sent.
    #[error("image {}: {reason}", path.display())]
    BadImage {
        /// The image path.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// An I/O call failed; `what` says on what.
    #[error("{what}: {source}")]
    Io {
        /// The operation and the object, e.g. "create /dev/shm/p1p2.x".
        what: String,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },

    /// Another live process owns this name.
    #[error("{what} {name} is in use by {}", owner(*pid))]
    InUse {
        /// "segment" or "socket".
        what: &'static str,
        /// The contested name.
        name: String,
        /// The owner, as far as it is known.
        pid: Option<u32>,
    },

    /// Another live consumer claimed the segment first.
    #[error("segment {name} is already claimed by consumer pid {pid}")]
    Claimed {
        /// The segment name.
        name: String,
        /// The other consumer.
        pid: u32,
    },

    /// A file at one of this project's paths that it must not touch.
    #[error("refusing {}: {reason}", path.display())]
    Refused {
        /// The path.
        path: PathBuf,
        /// Why it is refused (a symlink, not a regular file, another user's...).
        reason: String,
    },

    /// A wait ran out of time.
    #[error("{what}: gave up after {:.1} s (raise --timeout to wait longer)", waited.as_secs_f64())]
    Timeout {
        /// What was awaited, e.g. "no consumer read segment p1p2".
        what: String,
        /// How long it waited.
        waited: Duration,
    },

    /// The peer process died at a point where it matters.
    #[error("{role} pid {pid} died {when}")]
    PeerDied {
        /// The role of the dead process.
        role: Role,
        /// Its pid.
        pid: u32,
        /// What it was doing, e.g. "while holding the lock on segment p1p2".
        when: String,
    },

    /// The peer closed the connection or gave up before the transfer completed.
    #[error("{0}")]
    PeerGone(String),

    /// A segment whose contents break the format; the reader stopped before
    /// trusting anything else in it.
    #[error("segment {name}: {reason}")]
    BadSegment {
        /// The segment name (or path).
        name: String,
        /// What is wrong.
        reason: String,
    },

    /// No segment is published under this name.
    #[error("no segment named {name} (is the process that creates it running?)")]
    NoSuchSegment {
        /// The name looked for.
        name: String,
    },

    /// The segment holds another kind of object than the one asked for.
    #[error("segment {name} holds {found}, not {expected}")]
    WrongKind {
        /// The segment name.
        name: String,
        /// What it holds, e.g. "a transfer".
        found: &'static str,
        /// What was asked for, e.g. "a value".
        expected: &'static str,
    },

    /// A value or array segment whose elements are of another type.
    #[error("segment {name} holds {found}, not {expected}")]
    WrongElementType {
        /// The segment name.
        name: String,
        /// The element type it holds, e.g. "i64".
        found: &'static str,
        /// The element type asked for, e.g. "i32".
        expected: &'static str,
    },

    /// An array segment, or a slice written to it, of another length.
    #[error("segment {name} holds {found} elements, not {expected}")]
    WrongLength {
        /// The segment name.
        name: String,
        /// Its number of elements.
        found: u64,
        /// The number expected.
        expected: u64,
    },

    /// An array index past the end.
    #[error("index {index} is out of range for segment {name}, which holds {len} elements")]
    IndexOutOfRange {
        /// The segment name.
        name: String,
        /// The index asked for.
        index: usize,
        /// The array's length.
        len: usize,
    },

    /// `lock()` on a value or array created without a lock.
    #[error("segment {name} was created without a lock (Lock::No), so there is none to take")]
    Unlocked {
        /// The segment name.
        name: String,
    },

    /// A message on a socket that breaks the wire format.
    #[error("bad message from the {peer}: {reason}")]
    BadMessage {
        /// Who sent it.
        peer: Role,
        /// What is wrong.
        reason: String,
    },

    /// The payload's CRC-32 differs from the one the producer recorded.
    #[error("CRC-32 mismatch: the producer recorded {expected:08x}, the payload has {actual:08x}")]
    CrcMismatch {
        /// CRC-32 recorded by the producer.
        expected: u32,
        /// CRC-32 of the bytes received.
        actual: u32,
    },

    /// The consumer reported that it could not use the payload.
    #[error("the consumer rejected the payload ({0})")]
    Rejected(String),

    /// The payload is not a decodable PNG, or breaks the decode limits.
    #[error("cannot decode the image: {0}")]
    Decode(String),

    /// The output file could not be written.
    #[error("cannot write {}: {reason}", path.display())]
    Output {
        /// The `--out` path.
        path: PathBuf,
        /// Why.
        reason: String,
    },

    /// The raw_sync mutex reported an error other than a timeout.
    #[error("lock on segment {name}: {reason}")]
    Lock {
        /// The segment name.
        name: String,
        /// raw_sync's message.
        reason: String,
    },

    /// A request that the arguments rule out.
    #[error("{0}")]
    Usage(String),

    /// A signal asked the process to stop; what it made has been removed.
    #[error("interrupted by {}", signal_name(*.0))]
    Interrupted(i32),
}

impl Error {
    /// The process exit code for this error: 128 + the signal number for an
    /// interruption (130 for SIGINT, 143 for SIGTERM), 2 for usage errors, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Interrupted(signal) => 128 + signal,
            Error::InvalidName { .. } | Error::Usage(_) => 2,
            _ => 1,
        }
    }

    /// The consumer `pid` (if known) refused a payload (a CRC mismatch, a
    /// decode failure, an interruption): its own message says which.
    pub fn rejected_by(pid: Option<u32>) -> Error {
        Error::Rejected(match pid {
            Some(pid) => format!("consumer pid {pid} did not accept it; see its message"),
            None => "the consumer did not accept it; see its message".to_owned(),
        })
    }

    /// Wraps an I/O error with what was being done.
    pub fn io(what: impl Into<String>, source: io::Error) -> Error {
        Error::Io {
            what: what.into(),
            source,
        }
    }
}

impl From<rustix::io::Errno> for Error {
    fn from(errno: rustix::io::Errno) -> Error {
        Error::io("system call", errno.into())
    }
}

/// Extension for `Result<T, io::Error>` to say what was being done.
pub trait IoContext<T> {
    /// Wraps the error in [`Error::Io`] with `what` as context.
    fn context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: Into<io::Error>> IoContext<T> for std::result::Result<T, E> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::io(what(), e.into()))
    }
}

fn owner(pid: Option<u32>) -> String {
    match pid {
        Some(pid) => format!("pid {pid}"),
        None => "another process".to_owned(),
    }
}

fn signal_name(signal: i32) -> String {
    match signal {
        libc::SIGINT => "SIGINT".into(),
        libc::SIGTERM => "SIGTERM".into(),
        libc::SIGHUP => "SIGHUP".into(),
        other => format!("signal {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_shell_convention() {
        assert_eq!(Error::Interrupted(libc::SIGINT).exit_code(), 130);
        assert_eq!(Error::Interrupted(libc::SIGTERM).exit_code(), 143);
        assert_eq!(Error::Usage("x".into()).exit_code(), 2);
        assert_eq!(Error::Decode("x".into()).exit_code(), 1);
    }

    #[test]
    fn messages_are_one_line() {
        let e = Error::Timeout {
            what: "no consumer read segment p1p2".into(),
            waited: Duration::from_millis(2500),
        };
        assert_eq!(
            e.to_string(),
            "no consumer read segment p1p2: gave up after 2.5 s (raise --timeout to wait longer)"
        );
        let e = Error::CrcMismatch {
            expected: 0xdead_beef,
            actual: 0x0102_0304,
        };
        assert!(e.to_string().contains("deadbeef") && e.to_string().contains("01020304"));
        assert_eq!(
            Error::Interrupted(libc::SIGTERM).to_string(),
            "interrupted by SIGTERM"
        );
        let in_use = |pid| Error::InUse {
            what: "address",
            name: "127.0.0.1:1".into(),
            pid,
        };
        assert_eq!(
            in_use(None).to_string(),
            "address 127.0.0.1:1 is in use by another process"
        );
        assert_eq!(
            in_use(Some(7)).to_string(),
            "address 127.0.0.1:1 is in use by pid 7"
        );
    }
}
