//! A slot's lock: its robust mutex, taken with bounded waits that end at CLOCK_MONOTONIC deadlines.
//!
//! [`Segment::lock`] sleeps in `pthread_mutex_clocklock` in slices of at
//! most [`SLICE`], checking for signals between slices, so SIGINT is noticed
//! within a slice and the deadline holds whatever the wall clock does. A
//! holder that dies wakes the sleeper at once: the mutex is robust, and the
//! waiter gets it with [`Recovered`] set, naming the dead holder when it had
//! recorded itself. The protocol above then decides what the dead holder
//! left: the lock only says that it died.
//!
//! The holder records its [`Ident`] in the slot right after locking and
//! clears it right before unlocking, for messages ("held by pid N").

use std::sync::atomic::Ordering;

use super::mutex::{monotonic_after, Acquired, MutexError, RobustMutex};
use super::Segment;
use crate::error::{Error, Result};
use crate::layout::Slot;
use crate::liveness::Ident;
use crate::signals;
use crate::wait::{Deadline, SLICE};

/// The lock was taken from a holder that died holding it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recovered {
    /// The dead holder, if it had recorded itself (it records itself right
    /// after locking and clears the record right before unlocking).
    pub holder: Option<Ident>,
}

impl Segment {
    /// Slot `i`'s mutex.
    fn mutex(&self, i: usize) -> RobustMutex<'_> {
        // SAFETY: `create` initialised every slot's mutex before publishing
        // the segment, and `open` checked every slot's mutex with
        // `RobustMutex::open` after reading the magic with Acquire; the
        // mapping lives as long as `self`.
        unsafe { RobustMutex::opened(&self.slot(i).lock) }
    }

    /// Takes slot `i`'s mutex if it is free, without waiting.
    ///
    /// # Errors
    /// [`Error::Lock`] if the mutex is broken (see [`Segment::lock`]).
    pub fn try_lock(&self, i: usize) -> Result<Option<SlotGuard<'_>>> {
        let got = self
            .mutex(i)
            .try_lock()
            .map_err(|e| self.lock_error(i, e))?;
        Ok(got.map(|how| self.acquired(i, how)))
    }

    /// Takes slot `i`'s mutex, waiting at most until `deadline` (`Ok(None)`
    /// then). A holder's death ends the wait at once, with the guard's
    /// [`SlotGuard::recovered`] set.
    ///
    /// `on_wait` runs once, with the holder's pid (`None` if not recorded),
    /// if the lock is busy at first.
    ///
    /// # Errors
    /// [`Error::Interrupted`] on a signal, [`Error::Lock`] if the mutex is
    /// not a robust mutex or was made unrecoverable.
    pub fn lock(
        &self,
        i: usize,
        deadline: &Deadline,
        on_wait: impl FnOnce(Option<u32>),
    ) -> Result<Option<SlotGuard<'_>>> {
        if let Some(guard) = self.try_lock(i)? {
            return Ok(Some(guard));
        }
        on_wait(self.holder_pid(i));
        let mutex = self.mutex(i);
        loop {
            signals::check()?;
            let Some(left) = deadline.remaining() else {
                return Ok(None);
            };
            let until = monotonic_after(left.min(SLICE));
            if let Some(how) = mutex.lock_until(until).map_err(|e| self.lock_error(i, e))? {
                return Ok(Some(self.acquired(i, how)));
            }
        }
    }

    /// The process recorded as holding slot `i`'s mutex: `None` when it is
    /// free, or taken but its holder not recorded yet.
    ///
    /// # Panics
    /// If `i` is not below the slot count.
    pub fn holder(&self, i: usize) -> Option<Ident> {
        Ident::from_word(self.slot(i).holder.load(Ordering::Relaxed))
    }

    /// The pid of [`Segment::holder`].
    pub fn holder_pid(&self, i: usize) -> Option<u32> {
        self.holder(i).map(|id| id.pid)
    }

    /// Records this process as the holder of slot `i`'s mutex, which it has
    /// just taken, and returns the guard.
    fn acquired(&self, i: usize, how: Acquired) -> SlotGuard<'_> {
        let slot = self.slot(i);
        // Relaxed: the mutex orders these stores with every other holder's;
        // a waiter that reads the word without the mutex only prints it.
        // The dead holder's record is read only when there is one: a plain
        // store is cheaper than a swap on every lock.
        let recovered = (how == Acquired::OwnerDied).then(|| Recovered {
            holder: Ident::from_word(slot.holder.load(Ordering::Relaxed)),
        });
        slot.holder.store(self.me, Ordering::Relaxed);
        SlotGuard {
            segment: self,
            slot: i,
            recovered,
        }
    }

    fn lock_error(&self, i: usize, e: MutexError) -> Error {
        Error::Lock {
            name: self.name.to_string(),
            reason: format!("slot {i}'s lock: {e}"),
        }
    }
}

/// Proof that this process holds a slot's mutex; releases it when dropped.
pub struct SlotGuard<'a> {
    segment: &'a Segment,
    slot: usize,
    recovered: Option<Recovered>,
}

impl SlotGuard<'_> {
    /// The slot's control block.
    pub fn slot(&self) -> &Slot {
        self.segment.slot(self.slot)
    }

    /// Set when the lock was taken from a holder that died holding it.
    pub fn recovered(&self) -> Option<Recovered> {
        self.recovered
    }

    /// The first `len` bytes of the payload, read-only.
    ///
    /// # Errors
    /// [`Error::BadSegment`] if `len` exceeds the capacity or the file was
    /// truncated.
    pub fn payload(&self, len: u64) -> Result<&[u8]> {
        self.check_capacity(len)?;
        let offset = self.segment.geometry.payload_offset(self.slot);
        self.segment.check_size(offset as u64 + len)?;
        self.payload_prechecked(len)
    }

    /// Like [`payload`](Self::payload) without its `fstat` (half a
    /// microsecond): for loops that take the lock many times, after one
    /// [`Segment::check_size`] of the whole file. A file truncated later is
    /// caught by the segment's SIGBUS guard (see [`Segment::check_intact`]).
    ///
    /// # Errors
    /// [`Error::BadSegment`] if `len` exceeds the capacity.
    pub fn payload_prechecked(&self, len: u64) -> Result<&[u8]> {
        self.check_capacity(len)?;
        // SAFETY: offset + len <= file length (geometry checked against the
        // file size at open, `len` against the capacity just now). The
        // slice lives no longer than the guard, that is while this process
        // holds the slot's lock. Every process that follows the protocol
        // writes a slot's payload only while it holds that lock and the
        // state is Empty, so nobody writes these bytes while the slice
        // lives. That is the named segment's trust boundary: a process of
        // the same user that ignores the protocol could still write them,
        // and then this reference would not be sound; the sealed memfd
        // transport is the way to share with processes one does not trust.
        // A truncation (which unmaps rather than writes) is caught by the
        // segment's SIGBUS guard, which puts zero pages in place.
        Ok(
            unsafe {
                std::slice::from_raw_parts(self.segment.payload_ptr(self.slot), len as usize)
            },
        )
    }

    /// The whole payload area, writable.
    ///
    /// # Errors
    /// [`Error::BadSegment`] if the file was truncated.
    pub fn payload_mut(&mut self) -> Result<&mut [u8]> {
        let geometry = self.segment.geometry;
        let offset = geometry.payload_offset(self.slot);
        self.segment.check_size(offset as u64 + geometry.capacity)?;
        Ok(self.payload_mut_prechecked())
    }

    /// Like [`payload_mut`](Self::payload_mut) without its `fstat`, under the
    /// same condition as [`payload_prechecked`](Self::payload_prechecked).
    pub fn payload_mut_prechecked(&mut self) -> &mut [u8] {
        let capacity = self.segment.geometry.capacity as usize;
        // SAFETY: as in `payload_prechecked`: the lock keeps every process
        // that follows the protocol away from the payload while the guard
        // lives, and `&mut self` makes this the only reference into the slot
        // from this process.
        unsafe { std::slice::from_raw_parts_mut(self.segment.payload_ptr(self.slot), capacity) }
    }

    fn check_capacity(&self, len: u64) -> Result<()> {
        let capacity = self.segment.geometry.capacity;
        if len > capacity {
            return Err(Error::BadSegment {
                name: self.segment.name.to_string(),
                reason: format!("payload length {len} exceeds the slot capacity {capacity}"),
            });
        }
        Ok(())
    }

    /// Sets the slot's state with Release ordering and wakes its waiters.
    pub fn set_state(&self, value: u32) {
        let word = &self.slot().state;
        word.store(value, Ordering::Release);
        crate::wait::wake_all(word);
    }
}

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        self.slot().holder.store(0, Ordering::Relaxed);
        // An unlock fails only for a mutex this thread does not hold, which
        // the guard rules out; there is nothing useful to do with such an
        // error in a drop.
        let _ = self.segment.mutex(self.slot).unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{Geometry, Kind};
    use std::time::Duration;

    use crate::name::for_unit_test as name;

    #[test]
    fn the_lock_excludes_and_releases() {
        let name = name("lock");
        let seg = Segment::create(&name, Geometry::new(Kind::Transfer, 10, 1)).unwrap();
        seg.publish().unwrap();
        let guard = seg.try_lock(0).unwrap().expect("free lock");
        assert_eq!(guard.recovered(), None);
        assert_eq!(seg.holder(0), Some(Ident::me()));
        // Another thread: a robust mutex knows its owner thread.
        let waited = std::thread::scope(|s| {
            s.spawn(|| {
                let other = Segment::open(&name).unwrap();
                let deadline = Deadline::after(Duration::from_millis(300));
                let mut saw = None;
                let got = other.lock(0, &deadline, |pid| saw = Some(pid)).unwrap();
                (got.is_none(), saw, deadline.elapsed())
            })
            .join()
            .unwrap()
        });
        assert!(waited.0, "took a held lock");
        assert_eq!(waited.1, Some(Some(std::process::id())));
        assert!(waited.2 >= Duration::from_millis(300));
        drop(guard);
        let other = Segment::open(&name).unwrap();
        assert_eq!(other.holder_pid(0), None);
        assert!(other.try_lock(0).unwrap().is_some());
    }

    #[test]
    fn a_holder_that_dies_is_named_and_the_lock_stays_usable() {
        let name = name("dead");
        let seg = Segment::create(&name, Geometry::new(Kind::Transfer, 10, 1)).unwrap();
        seg.publish().unwrap();
        // A thread that ends holding the lock dies holding it, for the
        // robust mutex as for a killed process.
        std::thread::scope(|s| {
            s.spawn(|| {
                let other = Segment::open(&name).unwrap();
                std::mem::forget(other.try_lock(0).unwrap().unwrap());
                // Leaked too: unmapping a held robust mutex would leave a
                // dangling entry on this thread's robust list.
                std::mem::forget(other);
            });
        });
        let deadline = Deadline::after(Duration::from_secs(10));
        let guard = seg.lock(0, &deadline, |_| {}).unwrap().unwrap();
        assert_eq!(
            guard.recovered(),
            Some(Recovered {
                holder: Some(Ident::me())
            })
        );
        drop(guard);
        let again = seg.try_lock(0).unwrap().unwrap();
        assert_eq!(again.recovered(), None, "the mutex was not made consistent");
    }

    #[test]
    fn payload_lengths_beyond_capacity_are_refused() {
        let name = name("cap");
        let seg = Segment::create(&name, Geometry::new(Kind::Transfer, 100, 1)).unwrap();
        let guard = seg.try_lock(0).unwrap().unwrap();
        assert_eq!(guard.payload(100).unwrap().len(), 100);
        assert!(matches!(guard.payload(101), Err(Error::BadSegment { .. })));
        assert!(matches!(
            guard.payload(u64::MAX),
            Err(Error::BadSegment { .. })
        ));
    }
}
