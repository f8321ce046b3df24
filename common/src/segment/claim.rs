//! The consumer's claim on a segment: one consumer at a time, released when it leaves undecided.
//!
//! The consumer records its [`Ident`] (pid and start time in one atomic
//! word) in the header, so the producer can tell whether its reader still
//! lives and a second consumer is refused. [`Claim`] releases the record
//! when the consumer leaves normally before the hand-off has an outcome
//! (timed out, interrupted, the payload refused), so the producer never
//! mistakes a consumer that left for one that died; only a killed consumer
//! leaves such a claim behind, and it is then dead.
//!
//! A consumer whose own Ack or Reject ended the hand-off keeps its claim
//! ([`Claim::keep`]): the producer reads it after the end to name the
//! consumer that acknowledged, and a finished hand-off is watched for no
//! dead claimant.

use std::sync::atomic::Ordering;

use super::Segment;
use crate::error::{Error, Result};
use crate::liveness::Ident;

/// This process's claim on a segment; released when dropped.
pub struct Claim<'a> {
    segment: &'a Segment,
}

impl std::fmt::Debug for Claim<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Claim")
            .field("segment", &self.segment.name().to_string())
            .finish()
    }
}

impl Segment {
    /// Records this process as the segment's consumer.
    ///
    /// # Errors
    /// [`Error::Claimed`] if another live consumer claimed it first.
    pub fn claim(&self) -> Result<Claim<'_>> {
        let word = &self.header().consumer;
        let mut current = word.load(Ordering::Acquire);
        loop {
            if let Some(other) = Ident::from_word(current) {
                if current != self.me && other.is_alive() {
                    return Err(Error::Claimed {
                        name: self.name.to_string(),
                        pid: other.pid,
                    });
                }
            }
            // AcqRel: one compare-and-swap takes the claim from nobody or
            // from a dead consumer; of two consumers racing, one wins.
            match word.compare_exchange(current, self.me, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Ok(Claim { segment: self }),
                Err(now) => current = now,
            }
        }
    }

    /// The consumer that claimed the segment, if any.
    pub fn consumer(&self) -> Option<Ident> {
        Ident::from_word(self.header().consumer.load(Ordering::Acquire))
    }

    /// The claiming consumer's pid, if one claimed the segment and is dead.
    pub fn dead_consumer(&self) -> Option<u32> {
        self.consumer().filter(|id| !id.is_alive()).map(|id| id.pid)
    }

    /// The claiming consumer's pid (`None` while unclaimed).
    pub fn consumer_pid(&self) -> Option<u32> {
        self.consumer().map(|id| id.pid)
    }
}

impl Claim<'_> {
    /// Leaves the claim in place: for a consumer whose own Ack or Reject
    /// ended the hand-off, so that the producer, which reads the claim once
    /// the hand-off has ended, names the consumer that ended it. (Released
    /// before, it could be gone by the time the producer looks.)
    pub fn keep(self) {
        std::mem::forget(self);
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        // Only our own claim is released: a compare-and-swap from our word.
        let _ = self.segment.header().consumer.compare_exchange(
            self.segment.me,
            0,
            Ordering::AcqRel,
            Ordering::Relaxed,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{Geometry, Kind};
    use crate::name::Name;

    #[test]
    fn a_claim_is_exclusive_and_released_when_dropped() {
        let name = Name::new(&format!("unit-claim-{}", std::process::id())).unwrap();
        let seg = Segment::create(&name, Geometry::new(Kind::Transfer, 10, 1)).unwrap();
        seg.publish().unwrap();
        let reader = Segment::open(&name).unwrap();
        assert_eq!(seg.consumer(), None);
        let claim = reader.claim().unwrap();
        assert_eq!(seg.consumer(), Some(Ident::me()));
        assert_eq!(seg.dead_consumer(), None);
        // A dead claimant's claim can be taken over; a live one's cannot.
        let other = Ident {
            pid: std::process::id(),
            start: Ident::me().start + 1,
        };
        seg.header()
            .consumer
            .store(other.to_word(), Ordering::Relaxed);
        assert_eq!(seg.dead_consumer(), Some(std::process::id()));
        drop(claim);
        assert_eq!(seg.consumer(), Some(other), "released someone else's claim");
        let again = reader.claim().unwrap();
        assert_eq!(seg.consumer(), Some(Ident::me()));
        drop(again);
        assert_eq!(seg.consumer(), None, "a normal exit left its claim");
    }
}
