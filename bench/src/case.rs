//! What identifies one benchmark case: how the payload travels ([`Channel`],
//! written `transport` in files and flags), whether resources are reused,
//! where the processes run, and the payload size.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::units::human_bytes;
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
        /// A shared-memory segment, one transfer at a time.
        Shm => "shm",
        /// A shared-memory segment with the next copy overlapping the read.
        ShmPipelined => "shm-pipelined",
        /// A sealed memfd passed over a Unix socket, a fresh one per payload.
        Memfd => "memfd",
        /// A Unix-domain stream socket.
        Unix => "unix",
        /// A TCP connection over loopback.
        Tcp => "tcp",
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
                "shm",
                "shm-pipelined",
                "memfd",
                "unix",
                "tcp",
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
        let err = "udp".parse::<Channel>().unwrap_err().to_string();
        assert!(err.contains("unknown transport \"udp\"") && err.contains("iceoryx2"));
    }
}
