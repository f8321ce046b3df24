//! The cells behind a value or an array: elements, lock mode, header checks.
//!
//! One segment holds `len` elements in slot 0's payload; its lock mode is
//! recorded in the header, which an opener checks before trusting it.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use super::element::{load, store, ElementType, ShmSafe};
use crate::error::{Error, Result};
use crate::layout::{flags, Geometry, Kind};
use crate::name::Name;
use crate::segment::{is_not_found, Segment, SlotGuard};
use crate::wait::Deadline;

/// How long a locked access waits for the mutex unless `set_timeout` says
/// otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether accesses take the segment's mutex: Python's `lock=True` (the
/// default) or `lock=False`. Chosen by the creator and recorded in the
/// segment, so openers follow it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Lock {
    /// Every access takes the process-shared mutex; `lock()` is available.
    #[default]
    Yes,
    /// No mutex: each element access is a single Relaxed atomic load or store.
    No,
}

impl Lock {
    fn flags(self) -> u32 {
        match self {
            Lock::Yes => 0,
            Lock::No => flags::UNLOCKED,
        }
    }
}

/// What a value and an array share: the segment, the element count, the mode.
pub(super) struct Cells<T: ShmSafe> {
    pub(super) segment: Segment,
    pub(super) len: usize,
    pub(super) lock: Lock,
    pub(super) timeout: Duration,
    _type: PhantomData<T>,
}

impl<T: ShmSafe> Cells<T> {
    /// Creates the segment, writes `values` (exactly `len` of them) and
    /// publishes it.
    pub(super) fn create(
        name: &Name,
        kind: Kind,
        len: usize,
        values: impl Iterator<Item = T>,
        lock: Lock,
    ) -> Result<Cells<T>> {
        let element = T::ELEMENT;
        let geometry = Geometry::elements(
            kind,
            element.code(),
            element.size() as u32,
            len as u64,
            lock.flags(),
        )
        .ok_or_else(|| {
            Error::Usage(format!(
                "{len} elements of {element} do not fit in one segment"
            ))
        })?;
        let cells = Cells {
            segment: Segment::create(name, geometry)?,
            len,
            lock,
            timeout: DEFAULT_TIMEOUT,
            _type: PhantomData,
        };
        {
            // Nobody else can see the segment yet, so the lock is free. The
            // values are written under it all the same: a locked opener's
            // first access takes the mutex, which orders it after our unlock.
            // An unlocked opener can only find the segment after the link
            // (or rename) in `publish` and its own open and mmap, system calls that come
            // after these stores.
            let _guard = cells
                .segment
                .try_lock(0)?
                .ok_or_else(|| Error::Usage("a fresh segment's lock was taken".into()))?;
            // Callers pass at least `len` values; the file starts zeroed.
            for (i, value) in values.take(len).enumerate() {
                cells.store(i, value);
            }
        }
        // A stale segment of a dead process under the same name is replaced;
        // a live one is an `Error::InUse`.
        cells.segment.publish()?;
        Ok(cells)
    }

    /// Opens `name` and checks that it holds `kind` of `T`.
    pub(super) fn open(name: &Name, kind: Kind) -> Result<Cells<T>> {
        let segment = Segment::open(name).map_err(|e| {
            if is_not_found(&e) {
                Error::NoSuchSegment {
                    name: name.to_string(),
                }
            } else {
                e
            }
        })?;
        let geometry = *segment.geometry();
        let (len, lock) = check_elements::<T>(name, kind, &geometry)?;
        Ok(Cells {
            segment,
            len,
            lock,
            timeout: DEFAULT_TIMEOUT,
            _type: PhantomData,
        })
    }

    pub(super) fn name(&self) -> &Name {
        self.segment.name()
    }

    /// Pointer to element `i`.
    pub(super) fn ptr(&self, i: usize) -> *mut u8 {
        debug_assert!(i < self.len);
        self.segment
            .payload_ptr(0)
            .wrapping_add(i * T::ELEMENT.size())
    }

    pub(super) fn load(&self, i: usize) -> T {
        assert!(i < self.len, "element {i} out of range");
        // SAFETY: i < len, and len elements fit in slot 0's payload (checked
        // against the file size when the segment was created or opened), which
        // starts page-aligned, so element i is aligned to its size. In locked
        // mode accesses run under the mutex; in unlocked mode every access in
        // every process is atomic (the mode is in the header, so all agree).
        unsafe { load(self.ptr(i)) }
    }

    pub(super) fn store(&self, i: usize, value: T) {
        assert!(i < self.len, "element {i} out of range");
        // SAFETY: as in `load`.
        unsafe { store(self.ptr(i), value) }
    }

    pub(super) fn check_index(&self, index: usize) -> Result<()> {
        if index < self.len {
            Ok(())
        } else {
            Err(Error::IndexOutOfRange {
                name: self.name().to_string(),
                index,
                len: self.len,
            })
        }
    }

    /// Takes the mutex (locked mode only), waiting at most the timeout.
    pub(super) fn guard(&self) -> Result<SlotGuard<'_>> {
        if self.lock == Lock::No {
            return Err(Error::Unlocked {
                name: self.name().to_string(),
            });
        }
        let deadline = Deadline::after(self.timeout);
        let guard = self.segment.lock(0, &deadline, |_| {})?.ok_or_else(|| {
            deadline.timeout(format!(
                "the lock on segment {} stayed held by {}",
                self.name(),
                self.segment
                    .holder_pid(0)
                    .map_or("another process".to_owned(), |pid| format!("pid {pid}"))
            ))
        })?;
        Ok(guard)
    }

    /// Runs `f` under the mutex in locked mode, directly in unlocked mode.
    pub(super) fn access<R>(&self, f: impl FnOnce() -> R) -> Result<R> {
        match self.lock {
            Lock::Yes => {
                let _guard = self.guard()?;
                Ok(f())
            }
            Lock::No => Ok(f()),
        }
    }

    /// Takes the mutex (as [`Cells::guard`]) for access to the elements as a
    /// slice while it is held.
    pub(super) fn hold(&self) -> Result<Held<'_, T>> {
        let guard = self.guard()?;
        Ok(Held {
            _guard: guard,
            ptr: self.segment.payload_ptr(0).cast(),
            len: self.len,
        })
    }
}

/// The mutex held over the elements until dropped: what a value's and an
/// array's lock guards are made of.
pub(super) struct Held<'a, T: ShmSafe> {
    _guard: SlotGuard<'a>,
    ptr: *mut T,
    len: usize,
}

impl<T: ShmSafe> Held<'_, T> {
    /// The elements.
    pub(super) fn elements(&self) -> &[T] {
        // SAFETY: `ptr` is slot 0's payload: page-aligned and followed by
        // `len` elements inside the mapping (the geometry was checked against
        // the file size at create/open); any bits are valid `T`s. The mutex
        // is held for the guard's lifetime, so no cooperating process or
        // thread writes them.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    /// The elements, mutably.
    pub(super) fn elements_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `elements`; `&mut self` makes this the only reference
        // made through this guard, and the held mutex rules out other guards.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

/// The accessors a value and an array share, served by their `cells`, and
/// their `Debug`.
macro_rules! cells_accessors {
    ($shared:ident) => {
        impl<T: $crate::shared::ShmSafe> $shared<T> {
            /// The segment name.
            pub fn name(&self) -> &$crate::name::Name {
                self.cells.name()
            }

            /// Whether accesses take the lock (as the creator chose).
            pub fn lock_mode(&self) -> $crate::shared::Lock {
                self.cells.lock
            }

            /// How long a locked access waits for the lock.
            pub fn timeout(&self) -> std::time::Duration {
                self.cells.timeout
            }

            /// Changes how long a locked access waits for the lock.
            pub fn set_timeout(&mut self, timeout: std::time::Duration) {
                self.cells.timeout = timeout;
            }
        }

        impl<T: $crate::shared::ShmSafe> std::fmt::Debug for $shared<T> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.cells.fmt(f)
            }
        }
    };
}
pub(super) use cells_accessors;

impl<T: ShmSafe> fmt::Debug for Cells<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("name", &self.name().as_str())
            .field("element", &T::ELEMENT)
            .field("len", &self.len)
            .field("lock", &self.lock)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Checks an opened segment's header against what the caller asked for;
/// returns the element count and the lock mode. The header is untrusted.
fn check_elements<T: ShmSafe>(
    name: &Name,
    kind: Kind,
    geometry: &Geometry,
) -> Result<(usize, Lock)> {
    let bad = |reason: String| Error::BadSegment {
        name: name.to_string(),
        reason,
    };
    if geometry.kind != kind {
        return Err(Error::WrongKind {
            name: name.to_string(),
            found: geometry.kind.with_article(),
            expected: kind.with_article(),
        });
    }
    let found = ElementType::from_code(geometry.elem_type)
        .ok_or_else(|| bad(format!("unknown element type code {}", geometry.elem_type)))?;
    if found != T::ELEMENT {
        return Err(Error::WrongElementType {
            name: name.to_string(),
            found: found.name(),
            expected: T::ELEMENT.name(),
        });
    }
    if geometry.elem_size as usize != found.size() {
        return Err(bad(format!(
            "element size {} is not the {} bytes of {found}",
            geometry.elem_size,
            found.size()
        )));
    }
    let bytes = geometry
        .elem_count
        .checked_mul(u64::from(geometry.elem_size));
    if bytes.is_none_or(|bytes| bytes > geometry.capacity) {
        return Err(bad(format!(
            "{} elements of {found} do not fit its capacity {}",
            geometry.elem_count, geometry.capacity
        )));
    }
    if kind == Kind::Value && geometry.elem_count != 1 {
        return Err(bad(format!(
            "a value with {} elements",
            geometry.elem_count
        )));
    }
    let len = usize::try_from(geometry.elem_count)
        .map_err(|_| bad(format!("{} elements is too many", geometry.elem_count)))?;
    let lock = if geometry.flags & flags::UNLOCKED != 0 {
        Lock::No
    } else {
        Lock::Yes
    };
    Ok((len, lock))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared::SharedValue;

    use crate::shared::for_unit_test as name;

    fn geometry(kind: Kind, element: ElementType, count: u64, flags: u32) -> Geometry {
        Geometry::elements(kind, element.code(), element.size() as u32, count, flags).unwrap()
    }

    #[test]
    fn the_header_is_checked_field_by_field() {
        let n = name("check");
        let ok = geometry(Kind::Array, ElementType::I32, 4, 0);
        assert_eq!(
            check_elements::<i32>(&n, Kind::Array, &ok).unwrap(),
            (4, Lock::Yes)
        );
        let unlocked = geometry(Kind::Array, ElementType::I32, 4, flags::UNLOCKED);
        assert_eq!(
            check_elements::<i32>(&n, Kind::Array, &unlocked).unwrap(),
            (4, Lock::No)
        );

        let err = check_elements::<i32>(&n, Kind::Value, &ok).unwrap_err();
        assert!(matches!(
            err,
            Error::WrongKind {
                found: "an array",
                expected: "a value",
                ..
            }
        ));
        let err = check_elements::<u32>(&n, Kind::Array, &ok).unwrap_err();
        assert_eq!(err.to_string(), format!("segment {n} holds i32, not u32"));

        let cases = [
            (
                Geometry { elem_type: 0, ..ok },
                "unknown element type code 0",
            ),
            (
                Geometry {
                    elem_type: u32::from(b'l'),
                    ..ok
                },
                "unknown element type",
            ),
            (Geometry { elem_size: 8, ..ok }, "element size 8"),
            (
                Geometry {
                    elem_count: 5,
                    ..ok
                },
                "do not fit",
            ),
            (
                Geometry {
                    elem_count: u64::MAX,
                    ..ok
                },
                "do not fit",
            ),
        ];
        for (g, words) in cases {
            let err = check_elements::<i32>(&n, Kind::Array, &g).unwrap_err();
            assert!(
                matches!(&err, Error::BadSegment { reason, .. } if reason.contains(words)),
                "{err} should mention {words}"
            );
        }
        let two = geometry(Kind::Value, ElementType::I32, 2, 0);
        let err = check_elements::<i32>(&n, Kind::Value, &two).unwrap_err();
        assert!(err.to_string().contains("a value with 2 elements"), "{err}");
    }

    #[test]
    fn a_transfer_segment_is_not_a_value() {
        let n = name("transfer");
        let seg = Segment::create(&n, Geometry::new(Kind::Transfer, 8, 1)).unwrap();
        seg.publish().unwrap();
        let err = SharedValue::<u8>::open(&n).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("segment {n} holds a transfer, not a value")
        );
    }
}
