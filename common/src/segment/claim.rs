//! The consumer's claim on a segment, and whether the claimant still lives.
//!
//! The consumer records its pid and start time in the header, so the producer
//! can tell whether its reader is still alive, and a second consumer is refused.

use std::sync::atomic::Ordering;

use super::Segment;
use crate::error::{Error, Result};
use crate::liveness;

impl Segment {
    /// Records this process as the segment's consumer.
    ///
    /// # Errors
    /// [`Error::Claimed`] if another live consumer claimed it first.
    pub fn claim(&self) -> Result<()> {
        let header = self.header();
        let me = std::process::id();
        let mut current = header.consumer_pid.load(Ordering::Acquire);
        loop {
            if current != 0
                && current != me
                && liveness::is_alive(current, header.consumer_start.load(Ordering::Relaxed))
            {
                return Err(Error::Claimed {
                    name: self.name.to_string(),
                    pid: current,
                });
            }
            match header.consumer_pid.compare_exchange(
                current,
                me,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(now) => current = now,
            }
        }
        header
            .consumer_start
            .store(liveness::own_start_time(), Ordering::Relaxed);
        Ok(())
    }

    /// The claiming consumer's pid, if one claimed the segment and is dead.
    pub fn dead_consumer(&self) -> Option<u32> {
        let header = self.header();
        let pid = header.consumer_pid.load(Ordering::Acquire);
        (pid != 0 && !liveness::is_alive(pid, header.consumer_start.load(Ordering::Relaxed)))
            .then_some(pid)
    }

    /// The claiming consumer's pid (`None` while unclaimed).
    pub fn consumer_pid(&self) -> Option<u32> {
        Some(self.header().consumer_pid.load(Ordering::Acquire)).filter(|&pid| pid != 0)
    }
}
