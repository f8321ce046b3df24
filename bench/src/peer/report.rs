//! What one peer answers: its samples and counters, as one JSON line.
//!
//! What one peer answers: one JSON line on stdout with its samples and the
//! kernel's and getrusage's counters over the measured runs.

use serde::{Deserialize, Serialize};

use common::ledger::ProcIo;

/// What one peer reports: one JSON line on stdout.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PeerReport {
    /// "sender" or "receiver".
    pub role: String,
    /// This process; `None` until the peer fills it in, just before it
    /// prints the report.
    pub pid: Option<u32>,
    /// The CPU it ran on at the end.
    pub cpu: usize,
    /// Warm-up transfers made before measuring.
    pub warmup: usize,
    /// Measured transfers or round trips.
    pub runs: usize,
    /// Time of every measured transfer (sender only; empty for the receiver).
    pub samples_ns: Vec<u64>,
    /// Wall time from the start of the first measured transfer to the end
    /// of the last, as this process measured it (sender only; 0 for the
    /// receiver).
    #[serde(default)]
    pub wall_ns: u64,
    /// The socket buffer this process's kernel granted, read back with
    /// `getsockopt` (socket peers only): `SO_SNDBUF` for the sender,
    /// `SO_RCVBUF` for the receiver, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket_buffer: Option<u64>,
    /// Copies of the payload this process made per measured transfer.
    pub copies: f64,
    /// Change of `/proc/self/io` over the measured runs (absent without it).
    pub proc_io: Option<ProcIo>,
    /// User CPU time over the measured runs.
    pub user_ms: f64,
    /// System CPU time over the measured runs.
    pub sys_ms: f64,
    /// Minor page faults over the measured runs.
    pub minflt: u64,
    /// Voluntary context switches (sleeps) over the measured runs.
    pub nvcsw: u64,
    /// Involuntary context switches over the measured runs.
    pub nivcsw: u64,
    /// Whether the hard time limit stopped the runs below the minimum count.
    pub capped: bool,
    /// The copy the sender made into shared memory, "std" or "nt" (shm
    /// senders only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pid_is_absent_until_filled_in_and_then_round_trips() {
        let empty = PeerReport::default();
        assert_eq!(empty.pid, None);
        let json = serde_json::to_string(&empty).unwrap();
        assert!(json.contains("\"pid\":null"), "{json}");
        let report = PeerReport {
            pid: Some(4242),
            ..PeerReport::default()
        };
        let json = serde_json::to_string(&report).unwrap();
        assert!(json.contains("\"pid\":4242"), "{json}");
        assert_eq!(serde_json::from_str::<PeerReport>(&json).unwrap(), report);
    }
}
