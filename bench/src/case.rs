//! What identifies one benchmark case: transport, reuse, pinning and payload size.
//!
//! What identifies one benchmark case: how the payload travels ([`Channel`],
//! written `transport` in files and flags), whether resources are reused,
//! where the processes run, and the payload size.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::units::human_bytes;
use common::copy::CopyMode;
use common::error::Error;

/// Defines a field-less enum that serialises as the given kebab-case words,
/// with `ALL` in its
/// sort order, `as_str`, `Display` and `FromStr`.
macro_rules! word_enum {
    (
        $(#[$meta:meta])*
        $name:ident, $what:literal {
            $($(#[$vmeta:meta])* $variant:ident => $text:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant,)+
        }

        impl $name {
            /// Every value, in the order tables and plots list them.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The name used in JSON, CSV, tables and on the command line.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = Error;

            fn from_str(s: &str) -> Result<Self, Error> {
                $name::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| {
                        let names: Vec<&str> = $name::ALL.iter().map(|v| v.as_str()).collect();
                        Error::Usage(format!(
                            "unknown {} {s:?} (expected one of {})",
                            $what,
                            names.join(", ")
                        ))
                    })
            }
        }
    };
}

word_enum! {
    /// How the payload travels in one benchmark case: the benchmark's own
    /// list, which goes beyond the product's transports (memcpy, Python,
    /// iceoryx2). Files, tables and flags call it `transport`. The order of
    /// the variants is the order of rows in tables and of lines in the plot.
    Channel, "transport" {
        /// One `memcpy` inside a single process: the ceiling for any transport.
        Memcpy => "memcpy",
        /// One copy with non-temporal stores inside a single process: the
        /// other ceiling (`common::copy`).
        MemcpyNt => "memcpy-nt",
        /// A shared-memory segment, one transfer at a time.
        Shm => "shm",
        /// `shm` with the standard copy into the slot, whatever `--copy` says.
        ShmStd => "shm[std]",
        /// `shm` with the non-temporal copy into the slot.
        ShmNt => "shm[nt]",
        /// A shared-memory segment with the next copy overlapping the read.
        ShmPipelined => "shm-pipelined",
        /// `shm-pipelined` with the standard copy, whatever `--copy` says.
        ShmPipelinedStd => "shm-pipelined[std]",
        /// `shm-pipelined` with the non-temporal copy.
        ShmPipelinedNt => "shm-pipelined[nt]",
        /// A sealed memfd passed over a Unix socket, a fresh one per payload.
        Memfd => "memfd",
        /// A Unix-domain stream socket.
        Unix => "unix",
        /// A TCP connection over loopback.
        Tcp => "tcp",
        /// `unix` streamed: the sender keeps `--slots` payloads outstanding,
        /// as `shm-pipelined` does, and the receiver acknowledges each one.
        UnixStream => "unix-stream",
        /// `tcp` streamed, like `unix-stream`.
        TcpStream => "tcp-stream",
        /// Python's `multiprocessing.shared_memory`.
        PythonShm => "python-shm",
        /// Python, the payload copied through a `multiprocessing` array.
        PythonArray => "python-array",
        /// The iceoryx2 zero-copy middleware.
        Iceoryx2 => "iceoryx2",
    }
}

word_enum! {
    /// Whether the transport's resources are reused between transfers.
    Mode, "mode" {
        /// One segment or connection, reused for every transfer.
        Steady => "steady",
        /// A fresh segment (or connection) for every transfer.
        Cold => "cold",
    }
}

word_enum! {
    /// Where the two processes run.
    Pin, "pin" {
        /// Both pinned to the same CPU.
        Same => "same",
        /// Pinned to two different CPUs.
        Split => "split",
        /// Not pinned; the scheduler decides.
        None => "none",
    }
}

word_enum! {
    /// How every waiting process of a case waits for the other (`--wait`).
    Wait, "wait mode" {
        /// Sleep at once: shared-memory waits go to the futex without
        /// spinning, socket readers block in `read(2)`.
        Block => "block",
        /// Busy-poll first, up to `--spin-us`, then sleep: shared-memory
        /// waits spin on the state word, socket readers make non-blocking
        /// reads in a loop. Only with the peers on different CPUs
        /// (`pin=split`); elsewhere a spin could only delay the peer.
        Spin => "spin",
    }
}

impl Channel {
    /// The single copies in one process (`memcpy`, `memcpy-nt`): the
    /// ceilings every transport is compared with.
    pub fn is_ceiling(self) -> bool {
        matches!(self, Channel::Memcpy | Channel::MemcpyNt)
    }

    /// The copy a `[std]` or `[nt]` row forces, whatever `--copy` says.
    pub fn forced_copy(self) -> Option<CopyMode> {
        match self {
            Channel::ShmStd | Channel::ShmPipelinedStd => Some(CopyMode::Std),
            Channel::ShmNt | Channel::ShmPipelinedNt => Some(CopyMode::Nt),
            _ => None,
        }
    }

    /// The socket transports streamed with several payloads outstanding.
    pub fn is_stream(self) -> bool {
        matches!(self, Channel::UnixStream | Channel::TcpStream)
    }

    /// Whether its processes wait for each other in a way `--wait` sets
    /// (shared memory and sockets on this crate's code, and iceoryx2's
    /// polling; not the ceilings, memfd or Python, which wait as their own
    /// code does).
    pub fn waits(self) -> bool {
        matches!(
            self,
            Channel::Shm
                | Channel::ShmStd
                | Channel::ShmNt
                | Channel::ShmPipelined
                | Channel::ShmPipelinedStd
                | Channel::ShmPipelinedNt
                | Channel::Unix
                | Channel::Tcp
                | Channel::UnixStream
                | Channel::TcpStream
                | Channel::Iceoryx2
        )
    }

    /// The transport a `[std]` or `[nt]` row measures (`shm` or
    /// `shm-pipelined`); any other channel itself.
    pub fn base(self) -> Channel {
        match self {
            Channel::ShmStd | Channel::ShmNt => Channel::Shm,
            Channel::ShmPipelinedStd | Channel::ShmPipelinedNt => Channel::ShmPipelined,
            other => other,
        }
    }
}

/// What identifies one benchmark case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Case {
    /// How the payload travels.
    pub transport: Channel,
    /// Reused or fresh resources.
    pub mode: Mode,
    /// Where the processes run.
    pub pin: Pin,
    /// Payload size in bytes.
    pub bytes: u64,
}

impl fmt::Display for Case {
    /// E.g. `shm steady pin=split 8 MiB`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} pin={} {}",
            self.transport,
            self.mode,
            self.pin,
            human_bytes(self.bytes)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_kebab_case_and_round_trip() {
        let names: Vec<&str> = Channel::ALL.iter().map(|t| t.as_str()).collect();
        assert_eq!(
            names,
            [
                "memcpy",
                "memcpy-nt",
                "shm",
                "shm[std]",
                "shm[nt]",
                "shm-pipelined",
                "shm-pipelined[std]",
                "shm-pipelined[nt]",
                "memfd",
                "unix",
                "tcp",
                "unix-stream",
                "tcp-stream",
                "python-shm",
                "python-array",
                "iceoryx2"
            ]
        );
        for t in Channel::ALL {
            let json = serde_json::to_string(t).unwrap();
            assert_eq!(json, format!("\"{}\"", t.as_str()));
            assert_eq!(serde_json::from_str::<Channel>(&json).unwrap(), *t);
            assert_eq!(t.as_str().parse::<Channel>().unwrap(), *t);
        }
        assert_eq!(serde_json::to_string(&Pin::None).unwrap(), "\"none\"");
        assert_eq!(serde_json::to_string(&Mode::Cold).unwrap(), "\"cold\"");
        assert_eq!(Channel::ShmPipelinedNt.base(), Channel::ShmPipelined);
        assert_eq!(Channel::ShmStd.base(), Channel::Shm);
        assert_eq!(Channel::Tcp.base(), Channel::Tcp);
        assert!(Channel::TcpStream.is_stream() && !Channel::Tcp.is_stream());
        assert!(Channel::UnixStream.waits() && !Channel::Memcpy.waits());
        assert_eq!("block".parse::<Wait>().unwrap(), Wait::Block);
        assert_eq!(serde_json::to_string(&Wait::Spin).unwrap(), "\"spin\"");
        assert_eq!(Channel::ShmNt.forced_copy(), Some(CopyMode::Nt));
        assert_eq!(Channel::ShmPipelinedStd.forced_copy(), Some(CopyMode::Std));
        assert_eq!(Channel::Shm.forced_copy(), None);
        assert!(Channel::MemcpyNt.is_ceiling() && !Channel::Shm.is_ceiling());
        let err = "udp".parse::<Channel>().unwrap_err().to_string();
        assert!(err.contains("unknown transport \"udp\"") && err.contains("iceoryx2"));
    }
}
