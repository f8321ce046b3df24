//! [`SharedValue`]: one `T` in shared memory (Python's `Value`).
//!
//! Also its lock guard, [`ValueGuard`].

use std::fmt;
use std::ops::{Deref, DerefMut};

use super::cell::{cells_accessors, Cells, Held, Lock};
use super::element::ShmSafe;
#[cfg(doc)]
use crate::error::Error;
use crate::error::Result;
use crate::layout::Kind;
use crate::name::Name;

/// One `T` in shared memory: Python's `multiprocessing.Value`.
///
/// # Examples
/// One process creates the value; another (here the same one, for brevity)
/// opens it by name and adds 10 under the lock:
/// ```
/// use common::shared::SharedValue;
/// use common::Name;
///
/// let name = Name::new(&format!("doc-value-{}", std::process::id()))?;
/// let num = SharedValue::create(&name, 0i32)?; // Value('i', 0)
///
/// let in_child = SharedValue::<i32>::open(&name)?;
/// *in_child.lock()? += 10; // with num.get_lock(): num.value += 10
/// drop(in_child);
///
/// assert_eq!(num.get()?, 10);
/// drop(num); // the creator's drop removes /dev/shm/p1p2.doc-value-PID
/// assert!(!name.shm_path().exists());
/// # Ok::<(), common::Error>(())
/// ```
///
/// Opening with the wrong type is an error, not a reinterpretation:
/// ```
/// use common::shared::SharedValue;
/// use common::{Error, Name};
///
/// let name = Name::new(&format!("doc-value-type-{}", std::process::id()))?;
/// let _num = SharedValue::create(&name, 7i64)?;
/// let err = SharedValue::<i32>::open(&name).unwrap_err();
/// assert!(matches!(err, Error::WrongElementType { found: "i64", expected: "i32", .. }));
/// assert_eq!(err.to_string(), format!("segment {name} holds i64, not i32"));
/// # Ok::<(), common::Error>(())
/// ```
pub struct SharedValue<T: ShmSafe> {
    cells: Cells<T>,
}

impl<T: ShmSafe> SharedValue<T> {
    /// Creates and publishes the value `name`, with a lock (Python's default).
    ///
    /// This process owns it: dropping the returned value removes the segment.
    ///
    /// # Errors
    /// [`Error::InUse`] if a live process already owns `name`; [`Error::Io`]
    /// if the segment cannot be created (e.g. `/dev/shm` is full).
    pub fn create(name: &Name, value: T) -> Result<SharedValue<T>> {
        SharedValue::create_with(name, value, Lock::Yes)
    }

    /// Creates and publishes the value `name`, choosing whether it has a lock.
    ///
    /// # Errors
    /// As [`SharedValue::create`].
    pub fn create_with(name: &Name, value: T, lock: Lock) -> Result<SharedValue<T>> {
        Ok(SharedValue {
            cells: Cells::create(name, Kind::Value, 1, std::iter::once(value), lock)?,
        })
    }

    /// Opens the value `name` that another process created, in the lock mode
    /// its creator chose.
    ///
    /// # Errors
    /// [`Error::NoSuchSegment`] if nothing is published under `name`;
    /// [`Error::WrongKind`] if it is not a value; [`Error::WrongElementType`]
    /// if it does not hold a `T`; [`Error::BadSegment`] if its header is
    /// inconsistent; [`Error::Refused`] for a file that is not ours.
    pub fn open(name: &Name) -> Result<SharedValue<T>> {
        Ok(SharedValue {
            cells: Cells::open(name, Kind::Value)?,
        })
    }

    /// Reads the value (under the lock, in locked mode).
    ///
    /// # Errors
    /// In locked mode: [`Error::Timeout`] if the lock stays held past the
    /// timeout, [`Error::PeerDied`] if its holder died holding it.
    pub fn get(&self) -> Result<T> {
        self.cells.access(|| self.cells.load(0))
    }

    /// Writes the value (under the lock, in locked mode).
    ///
    /// # Errors
    /// As [`SharedValue::get`].
    pub fn set(&self, value: T) -> Result<()> {
        self.cells.access(|| self.cells.store(0, value))
    }

    /// Takes the lock for a compound update: the guard derefs to the value,
    /// mutably, and releases the lock when dropped.
    ///
    /// Taking it twice in one thread without dropping the first guard waits
    /// for the timeout and fails: the mutex is not recursive.
    ///
    /// # Errors
    /// [`Error::Unlocked`] for a value created with [`Lock::No`]; otherwise as
    /// [`SharedValue::get`].
    pub fn lock(&self) -> Result<ValueGuard<'_, T>> {
        Ok(ValueGuard(self.cells.hold()?))
    }
}

cells_accessors!(SharedValue);

/// The lock on a [`SharedValue`], held until dropped; derefs to the value.
pub struct ValueGuard<'a, T: ShmSafe>(Held<'a, T>);

impl<T: ShmSafe> Deref for ValueGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0.elements()[0]
    }
}

impl<T: ShmSafe> DerefMut for ValueGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0.elements_mut()[0]
    }
}

impl<T: ShmSafe + fmt::Debug> fmt::Debug for ValueGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ValueGuard").field(&**self).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use std::time::Duration;

    use crate::shared::for_unit_test as name;

    #[test]
    fn a_value_round_trips_in_both_modes_and_its_creator_removes_it() {
        for lock in [Lock::Yes, Lock::No] {
            let n = name(&format!("value-{lock:?}"));
            let v = SharedValue::create_with(&n, 1.5f32, lock).unwrap();
            let other = SharedValue::<f32>::open(&n).unwrap();
            assert_eq!(other.lock_mode(), lock);
            other.set(-2.25).unwrap();
            assert_eq!(v.get().unwrap(), -2.25);
            drop(other);
            assert!(n.shm_path().exists(), "an opener's drop removed it");
            drop(v);
            assert!(!n.shm_path().exists(), "left behind");
        }
    }

    #[test]
    fn the_guard_makes_a_compound_update_and_releases_the_lock() {
        let n = name("guard");
        let v = SharedValue::create(&n, 40u64).unwrap();
        {
            let mut guard = v.lock().unwrap();
            *guard += 2;
            assert_eq!(*guard, 42);
        }
        assert_eq!(v.get().unwrap(), 42);
        // Released: a second handle takes it without waiting.
        let mut other = SharedValue::<u64>::open(&n).unwrap();
        other.set_timeout(Duration::ZERO);
        assert_eq!(other.get().unwrap(), 42);
    }

    #[test]
    fn a_held_lock_times_out_with_the_holder_named() {
        let n = name("held");
        let v = SharedValue::create(&n, 0i16).unwrap();
        let mut other = SharedValue::<i16>::open(&n).unwrap();
        other.set_timeout(Duration::from_millis(200));
        let _guard = v.lock().unwrap();
        let err = other.get().unwrap_err();
        let me = std::process::id();
        assert!(matches!(err, Error::Timeout { .. }), "{err}");
        assert!(
            err.to_string().contains(&format!("held by pid {me}")),
            "{err}"
        );
    }

    #[test]
    fn a_live_owner_keeps_its_name() {
        let n = name("twice");
        let _first = SharedValue::create(&n, 1u32).unwrap();
        let err = SharedValue::create(&n, 2u32).unwrap_err();
        assert!(matches!(err, Error::InUse { .. }), "{err}");
        assert_eq!(SharedValue::<u32>::open(&n).unwrap().get().unwrap(), 1);
    }
}
