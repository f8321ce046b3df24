//! A slot's lock: its process-shared mutex, taken with bounded waits.
//!
//! The holder is recorded in the slot while it holds the mutex, and
//! [`SlotGuard`] releases it.
//!
//! The mutex is raw_sync's pthread mutex, which is not robust: a holder that
//! dies leaves it locked forever. So the holder records its pid and start
//! time in the slot, and a waiter checks between slices that the holder still
//! lives, failing with [`Error::PeerDied`] instead of hanging.

use std::sync::atomic::Ordering;
use std::time::Duration;

use raw_sync::locks::Mutex;
use raw_sync::Timeout;

use super::Segment;
use crate::error::{Error, Result, Role};
use crate::layout::{Slot, LOCK_SIZE};
use crate::liveness;
use crate::signals;
use crate::wait::Deadline;

impl Segment {
    /// Takes slot `i`'s mutex if it is free, without waiting.
    ///
    /// # Errors
    /// [`Error::Lock`] if raw_sync reports anything but "busy".
    pub fn try_lock(&self, i: usize) -> Result<Option<SlotGuard<'_>>> {
        self.lock_slice(i, Duration::ZERO)
    }

    /// Takes slot `i`'s mutex, waiting at most until `deadline` (`Ok(None)` then).
    ///
    /// `on_wait` runs once, with the holder's pid (`None` if not recorded
    /// yet), if the lock is busy at first.
    /// While waiting, the holder's liveness is checked about once a second.
    ///
    /// # Errors
    /// [`Error::PeerDied`] if the holder died holding the lock (the mutex is not
    /// robust, so it would stay locked forever), [`Error::Interrupted`] on a
    /// signal, [`Error::Lock`] on any other mutex error.
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
        loop {
            signals::check()?;
            self.check_holder(i)?;
            let Some(left) = deadline.remaining() else {
                return Ok(None);
            };
            // raw_sync adds the sub-second part of a timeout to the current
            // time's nanoseconds without carrying into the seconds, so only
            // whole seconds are safe. Below one second left, poll with zero
            // timeouts instead.
            let guard = if left >= Duration::from_secs(1) {
                self.lock_slice(i, Duration::from_secs(1))?
            } else {
                let guard = self.lock_slice(i, Duration::ZERO)?;
                if guard.is_none() {
                    std::thread::sleep(left.min(Duration::from_millis(5)));
                }
                guard
            };
            if guard.is_some() {
                return Ok(guard);
            }
        }
    }

    /// The pid recorded as holding slot `i`'s mutex: `None` when it is free,
    /// or taken but its holder not recorded yet (a moment after locking).
    ///
    /// # Panics
    /// If `i` is not below the slot count.
    pub fn holder_pid(&self, i: usize) -> Option<u32> {
        Some(self.slot(i).holder_pid.load(Ordering::Relaxed)).filter(|&pid| pid != 0)
    }

    /// One timed attempt; `Ok(None)` when it timed out.
    fn lock_slice(&self, i: usize, slice: Duration) -> Result<Option<SlotGuard<'_>>> {
        let lock = &self.locks[i];
        match lock.try_lock(Timeout::Val(slice)) {
            Ok(guard) => {
                // We release explicitly in `SlotGuard::drop`: raw_sync's guard
                // would `unwrap()` a failed unlock and panic in a drop.
                std::mem::forget(guard);
                let slot = self.slot(i);
                slot.holder_pid.store(self.me.0, Ordering::Relaxed);
                slot.holder_start.store(self.me.1, Ordering::Relaxed);
                Ok(Some(SlotGuard {
                    segment: self,
                    slot: i,
                }))
            }
            // raw_sync reports errors as strings that end in the errno.
            Err(e) if errno_of(&e.to_string()) == Some(libc::ETIMEDOUT) => Ok(None),
            Err(e) => Err(Error::Lock {
                name: self.name.to_string(),
                reason: e.to_string(),
            }),
        }
    }

    /// Fails with [`Error::PeerDied`] if slot `i`'s lock holder has died.
    fn check_holder(&self, i: usize) -> Result<()> {
        let pid = self.holder_pid(i);
        let start = self.slot(i).holder_start.load(Ordering::Relaxed);
        let producer = self.producer_pid();
        // Locked but the holder not recorded yet: only the creator can be in
        // that window (it locks before publishing).
        let holder = pid.unwrap_or(producer);
        let dead = if holder == producer {
            !self.owner_alive()
        } else {
            !liveness::is_alive(holder, start)
        };
        if dead {
            // Re-read: the holder may have released just now and died later.
            if self.holder_pid(i) != pid {
                return Ok(());
            }
            return Err(Error::PeerDied {
                role: if holder == producer {
                    Role::Producer
                } else {
                    Role::Consumer
                },
                pid: holder,
                when: format!("while holding the lock on segment {}", self.name),
            });
        }
        Ok(())
    }
}

/// Proof that this process holds a slot's mutex; releases it when dropped.
pub struct SlotGuard<'a> {
    segment: &'a Segment,
    slot: usize,
}

impl SlotGuard<'_> {
    /// The slot's control block.
    pub fn slot(&self) -> &Slot {
        self.segment.slot(self.slot)
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
    /// [`Segment::check_size`] of the whole file. A file truncated later
    /// raises SIGBUS on access, as it can between the check and the access in
    /// [`payload`](Self::payload) too.
    ///
    /// # Errors
    /// [`Error::BadSegment`] if `len` exceeds the capacity.
    pub fn payload_prechecked(&self, len: u64) -> Result<&[u8]> {
        self.check_capacity(len)?;
        // SAFETY: offset + len <= file length (geometry checked against the
        // file size at open, `len` against the capacity just now, and the
        // caller checked the file still holds that many bytes). The
        // slice lives no longer than the guard, during which cooperating
        // processes do not write the slot. A process that ignores the lock can
        // change these bytes under us; `u8` has no invalid values, and the
        // readers treat the bytes as untrusted (CRC-32 and sequence checks).
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
        // SAFETY: as in `payload_prechecked`; and `&mut self` makes this the
        // only reference into the slot from this process while the guard lives.
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
        let slot = self.slot();
        slot.holder_pid.store(0, Ordering::Relaxed);
        slot.holder_start.store(0, Ordering::Relaxed);
        // An unlock can only fail for a mutex that is not ours, which the guard
        // rules out; there is nothing useful to do with such an error in drop.
        let _ = self.segment.locks[self.slot].release();
    }
}

/// A raw_sync error string ends in ": <errno>".
fn errno_of(message: &str) -> Option<i32> {
    message.rsplit(':').next()?.trim().parse().ok()
}

/// Checks the part of a pthread mutex that `pthread_mutex_init` sets and no
/// lock operation changes (glibc's `__kind` word at offset 16), against a
/// freshly initialised one. Catches a header page of garbage before it reaches
/// `pthread_mutex_timedlock`.
pub(super) fn mutex_looks_initialised(slot: &Slot) -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use raw_sync::locks::LockInit;
        use std::sync::OnceLock;
        static TEMPLATE: OnceLock<[u8; 4]> = OnceLock::new();
        let template = TEMPLATE.get_or_init(|| {
            #[repr(C, align(8))]
            struct Area([u8; LOCK_SIZE]);
            let mut area = Area([0; LOCK_SIZE]);
            let ptr = area.0.as_mut_ptr();
            // SAFETY: `area` is a private, 8-aligned buffer large enough for a
            // pthread mutex; nothing else uses it, and it outlives the lock object,
            // which is dropped at once (raw_sync's Drop does nothing).
            let _ = unsafe { Mutex::new(ptr, ptr) };
            area.0[16..20].try_into().unwrap()
        });
        // SAFETY: reading 4 bytes of the lock area, which lies inside the
        // mapping. Another process may be locking the mutex concurrently, but it
        // only writes the first 16 bytes (lock word, count, owner, users).
        let kind: [u8; 4] = unsafe { std::ptr::read_volatile(slot.lock.get() as *const [u8; 20]) }
            [16..20]
            .try_into()
            .unwrap();
        kind == *template
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        let _ = slot;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{Geometry, Kind};
    use crate::name::Name;

    fn name(tag: &str) -> Name {
        Name::new(&format!("unit-{tag}-{}", std::process::id())).unwrap()
    }

    #[test]
    fn raw_sync_errors_carry_their_errno() {
        assert_eq!(errno_of("Failed to acquire mutex : 110"), Some(110));
        assert_eq!(errno_of("nothing"), None);
    }

    #[test]
    fn the_lock_excludes_and_releases() {
        let name = name("lock");
        let seg = Segment::create(&name, Geometry::new(Kind::Transfer, 10, 1)).unwrap();
        seg.publish().unwrap();
        let other = Segment::open(&name).unwrap();
        let guard = seg.try_lock(0).unwrap().expect("free lock");
        assert_eq!(
            guard.slot().holder_pid.load(Ordering::Relaxed),
            std::process::id()
        );
        let deadline = Deadline::after(Duration::from_millis(300));
        let mut saw = None;
        assert!(other
            .lock(0, &deadline, |pid| saw = Some(pid))
            .unwrap()
            .is_none());
        assert_eq!(saw, Some(Some(std::process::id())));
        assert_eq!(other.holder_pid(0), Some(std::process::id()));
        drop(guard);
        assert_eq!(other.holder_pid(0), None);
        assert!(other.try_lock(0).unwrap().is_some());
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
