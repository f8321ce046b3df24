//! What a peer is asked to do, as the JSON given after `--bench-peer`.
//!
//! What a peer is asked to do, as JSON after `--bench-peer`: the case, its
//! budget, the names to meet at, the CPU and how long to wait.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::case::{Channel, Mode};
use crate::plan::Budget;
use common::copy::CopyMode;
use common::error::Result;
use common::name::Name;

/// What a case measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Test {
    /// Payload transfers, timed one by one.
    Throughput,
    /// Round trips of a small message.
    Latency,
}

/// Everything a peer needs to know, given as JSON after `--bench-peer`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Spec {
    /// Throughput or latency.
    pub test: Test,
    /// shm, shm-pipelined, unix, tcp (or iceoryx2, for its own peer binary).
    pub transport: Channel,
    /// Steady (reused) or cold (fresh segment per transfer; shm only).
    pub mode: Mode,
    /// Payload or message size.
    pub bytes: u64,
    /// Slots of the segment (shm-pipelined: 2 or more).
    pub slots: u32,
    /// Warm-up and measured run counts (latency: `min_runs` round trips).
    pub budget: Budget,
    /// Segment or socket name, unique to the case.
    pub name: String,
    /// TCP address (tcp only).
    #[serde(default)]
    pub addr: Option<SocketAddr>,
    /// CPU to pin this peer to, if any.
    #[serde(default)]
    pub cpu: Option<usize>,
    /// Bounded spin before sleeping, in microseconds (0: never spin).
    #[serde(default)]
    pub spin_us: u64,
    /// Longest any single wait for the peer may last.
    pub timeout_ms: u64,
    /// Whether the sender reports progress on stderr.
    #[serde(default)]
    pub progress: bool,
    /// How the sender copies a payload into shared memory (`--copy`); a
    /// `[std]` or `[nt]` transport overrides it.
    #[serde(default)]
    pub copy: CopyMode,
}

impl Spec {
    /// The longest any single wait may last.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// The bounded spin before sleeping.
    pub fn spin(&self) -> Duration {
        Duration::from_micros(self.spin_us)
    }

    /// The payload size as a length.
    pub fn payload_len(&self) -> usize {
        self.bytes as usize
    }

    /// The copy into shared memory: the transport's forced one, else `copy`.
    pub fn copy_mode(&self) -> CopyMode {
        self.transport.forced_copy().unwrap_or(self.copy)
    }

    /// The segment or socket name of the case.
    ///
    /// # Errors
    /// [`common::Error::InvalidName`] for a name that breaks the naming rules.
    pub fn segment_name(&self) -> Result<Name> {
        Name::new(&self.name)
    }

    /// A small throughput spec for tests: shm, 4 KiB, 3 measured runs.
    #[cfg(test)]
    pub(crate) fn example() -> Spec {
        Spec {
            test: Test::Throughput,
            transport: Channel::Shm,
            mode: Mode::Steady,
            bytes: 4096,
            slots: 1,
            budget: Budget::fixed(3),
            name: "bench-unit".into(),
            addr: None,
            cpu: None,
            spin_us: 0,
            timeout_ms: 5000,
            progress: false,
            copy: CopyMode::Auto,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_round_trip_through_json() {
        let s = Spec::example();
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.contains("\"transport\":\"shm\""), "{json}");
        assert_eq!(serde_json::from_str::<Spec>(&json).unwrap(), s);
    }

    #[test]
    fn a_forced_copy_overrides_the_runs_copy() {
        let mut s = Spec::example();
        assert_eq!(s.copy_mode(), CopyMode::Auto);
        s.copy = CopyMode::Std;
        assert_eq!(s.copy_mode(), CopyMode::Std);
        s.transport = Channel::ShmNt;
        assert_eq!(s.copy_mode(), CopyMode::Nt);
    }
}
