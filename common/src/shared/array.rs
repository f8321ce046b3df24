//! [`SharedArray`]: a fixed number of `T` in shared memory (Python's `Array`).
//!
//! Also its lock guard, [`ArrayGuard`].

use std::fmt;
use std::ops::{Deref, DerefMut};

use super::cell::{cells_accessors, Cells, Held, Lock};
use super::element::ShmSafe;
#[cfg(doc)]
use super::SharedValue;
use crate::error::{Error, Result};
use crate::layout::Kind;
use crate::name::Name;

/// A fixed number of `T` in shared memory: Python's `multiprocessing.Array`.
///
/// # Examples
/// ```
/// use common::shared::SharedArray;
/// use common::Name;
///
/// let name = Name::new(&format!("doc-array-{}", std::process::id()))?;
/// let arr = SharedArray::create(&name, &[2i32, 3, 5, 7])?; // Array('i', [2, 3, 5, 7])
///
/// // In another process: open it, checking the length, and add 1 to each.
/// let in_child = SharedArray::<i32>::open_with_len(&name, 4)?;
/// for x in in_child.lock()?.iter_mut() {
///     *x += 1;
/// }
///
/// assert_eq!(arr.to_vec()?, [3, 4, 6, 8]);
/// assert_eq!(arr.get(3)?, 8);
/// # Ok::<(), common::Error>(())
/// ```
///
/// Without a lock (`lock=False`), each element access is one atomic load or
/// store:
/// ```
/// use common::shared::{Lock, SharedArray};
/// use common::{Error, Name};
///
/// let name = Name::new(&format!("doc-array-nolock-{}", std::process::id()))?;
/// let arr = SharedArray::create_filled_with(&name, 3, 0.5f64, Lock::No)?;
/// let other = SharedArray::<f64>::open(&name)?;
/// assert_eq!(other.lock_mode(), Lock::No); // the creator's choice
/// other.set(2, 3.1415927)?;
/// assert_eq!(arr.to_vec()?, [0.5, 0.5, 3.1415927]);
/// assert!(matches!(arr.lock(), Err(Error::Unlocked { .. })));
/// # Ok::<(), common::Error>(())
/// ```
pub struct SharedArray<T: ShmSafe> {
    cells: Cells<T>,
}

impl<T: ShmSafe> SharedArray<T> {
    /// Creates and publishes the array `name` holding a copy of `values`, with
    /// a lock (Python's default).
    ///
    /// This process owns it: dropping the returned array removes the segment.
    ///
    /// # Errors
    /// [`Error::InUse`] if a live process already owns `name`; [`Error::Io`]
    /// if the segment cannot be created; [`Error::Usage`] if it would be
    /// larger than a segment may be.
    pub fn create(name: &Name, values: &[T]) -> Result<SharedArray<T>> {
        SharedArray::create_with(name, values, Lock::Yes)
    }

    /// As [`SharedArray::create`], choosing whether it has a lock.
    ///
    /// # Errors
    /// As [`SharedArray::create`].
    pub fn create_with(name: &Name, values: &[T], lock: Lock) -> Result<SharedArray<T>> {
        Ok(SharedArray {
            cells: Cells::create(
                name,
                Kind::Array,
                values.len(),
                values.iter().copied(),
                lock,
            )?,
        })
    }

    /// Creates and publishes the array `name` of `len` copies of `fill`, with
    /// a lock.
    ///
    /// # Errors
    /// As [`SharedArray::create`].
    pub fn create_filled(name: &Name, len: usize, fill: T) -> Result<SharedArray<T>> {
        SharedArray::create_filled_with(name, len, fill, Lock::Yes)
    }

    /// As [`SharedArray::create_filled`], choosing whether it has a lock.
    ///
    /// # Errors
    /// As [`SharedArray::create`].
    pub fn create_filled_with(
        name: &Name,
        len: usize,
        fill: T,
        lock: Lock,
    ) -> Result<SharedArray<T>> {
        Ok(SharedArray {
            cells: Cells::create(name, Kind::Array, len, std::iter::repeat(fill), lock)?,
        })
    }

    /// Opens the array `name` that another process created, whatever its
    /// length ([`SharedArray::len`] tells it), in its creator's lock mode.
    ///
    /// # Errors
    /// [`Error::NoSuchSegment`] if nothing is published under `name`;
    /// [`Error::WrongKind`] if it is not an array; [`Error::WrongElementType`]
    /// if it does not hold `T`s; [`Error::BadSegment`] if its header is
    /// inconsistent; [`Error::Refused`] for a file that is not ours.
    pub fn open(name: &Name) -> Result<SharedArray<T>> {
        Ok(SharedArray {
            cells: Cells::open(name, Kind::Array)?,
        })
    }

    /// As [`SharedArray::open`], and checks that it holds `len` elements.
    ///
    /// # Errors
    /// As [`SharedArray::open`], and [`Error::WrongLength`].
    pub fn open_with_len(name: &Name, len: usize) -> Result<SharedArray<T>> {
        let array = SharedArray::open(name)?;
        if array.len() != len {
            return Err(Error::WrongLength {
                name: name.to_string(),
                found: array.len() as u64,
                expected: len as u64,
            });
        }
        Ok(array)
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.cells.len
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.cells.len == 0
    }

    /// Reads element `index` (under the lock, in locked mode).
    ///
    /// # Errors
    /// [`Error::IndexOutOfRange`]; in locked mode, [`Error::Timeout`] if the
    /// lock stays held past the timeout and [`Error::PeerDied`] if its holder
    /// died holding it.
    pub fn get(&self, index: usize) -> Result<T> {
        self.cells.check_index(index)?;
        self.cells.access(|| self.cells.load(index))
    }

    /// Writes element `index` (under the lock, in locked mode).
    ///
    /// # Errors
    /// As [`SharedArray::get`].
    pub fn set(&self, index: usize, value: T) -> Result<()> {
        self.cells.check_index(index)?;
        self.cells.access(|| self.cells.store(index, value))
    }

    /// Copies all elements out (under one lock, in locked mode; element by
    /// element without it, so other processes' writes may land in between).
    ///
    /// # Errors
    /// In locked mode, as [`SharedArray::get`].
    pub fn to_vec(&self) -> Result<Vec<T>> {
        self.cells
            .access(|| (0..self.cells.len).map(|i| self.cells.load(i)).collect())
    }

    /// Overwrites all elements with `values` (under one lock, in locked mode).
    ///
    /// # Errors
    /// [`Error::WrongLength`] if `values` has another length; in locked mode,
    /// as [`SharedArray::get`].
    pub fn copy_from_slice(&self, values: &[T]) -> Result<()> {
        if values.len() != self.cells.len {
            return Err(Error::WrongLength {
                name: self.name().to_string(),
                found: self.cells.len as u64,
                expected: values.len() as u64,
            });
        }
        self.cells.access(|| {
            for (i, &value) in values.iter().enumerate() {
                self.cells.store(i, value);
            }
        })
    }

    /// Takes the lock for a compound update: the guard derefs to the elements
    /// as a slice, mutably, and releases the lock when dropped.
    ///
    /// # Errors
    /// As [`SharedValue::lock`].
    pub fn lock(&self) -> Result<ArrayGuard<'_, T>> {
        Ok(ArrayGuard(self.cells.hold()?))
    }
}

cells_accessors!(SharedArray);

/// The lock on a [`SharedArray`], held until dropped; derefs to the elements.
pub struct ArrayGuard<'a, T: ShmSafe>(Held<'a, T>);

impl<T: ShmSafe> Deref for ArrayGuard<'_, T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        self.0.elements()
    }
}

impl<T: ShmSafe> DerefMut for ArrayGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut [T] {
        self.0.elements_mut()
    }
}

impl<T: ShmSafe + fmt::Debug> fmt::Debug for ArrayGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ArrayGuard").field(&&**self).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared::SharedValue;

    use crate::shared::for_unit_test as name;

    #[test]
    fn arrays_check_indices_and_lengths() {
        let n = name("array");
        let a = SharedArray::create_filled(&n, 3, 7u8).unwrap();
        assert_eq!(a.len(), 3);
        assert_eq!(a.to_vec().unwrap(), [7, 7, 7]);
        a.copy_from_slice(&[1, 2, 3]).unwrap();
        a.set(0, 9).unwrap();
        assert_eq!(a.get(0).unwrap(), 9);
        assert_eq!(&*a.lock().unwrap(), &[9, 2, 3]);
        let err = a.get(3).unwrap_err();
        assert!(
            matches!(
                err,
                Error::IndexOutOfRange {
                    index: 3,
                    len: 3,
                    ..
                }
            ),
            "{err}"
        );
        assert!(matches!(
            a.set(usize::MAX, 0),
            Err(Error::IndexOutOfRange { .. })
        ));
        let err = a.copy_from_slice(&[1, 2]).unwrap_err();
        assert!(
            matches!(
                err,
                Error::WrongLength {
                    found: 3,
                    expected: 2,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(a.to_vec().unwrap(), [9, 2, 3], "a refused write changed it");
    }

    #[test]
    fn an_empty_array_is_allowed() {
        let n = name("empty");
        let a = SharedArray::<f64>::create(&n, &[]).unwrap();
        assert!(a.is_empty());
        assert!(a.to_vec().unwrap().is_empty());
        assert!(a.lock().unwrap().is_empty());
        assert!(SharedArray::<f64>::open_with_len(&n, 0).is_ok());
    }

    #[test]
    fn opening_checks_name_kind_type_and_length() {
        let n = name("open");
        let missing = SharedValue::<i32>::open(&n).unwrap_err();
        assert!(matches!(&missing, Error::NoSuchSegment { name } if *name == n.as_str()));
        assert!(missing.to_string().contains(n.as_str()));

        let _a = SharedArray::create(&n, &[1i64, 2]).unwrap();
        let err = SharedValue::<i64>::open(&n).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("segment {n} holds an array, not a value")
        );
        let err = SharedArray::<f64>::open(&n).unwrap_err();
        assert_eq!(err.to_string(), format!("segment {n} holds i64, not f64"));
        let err = SharedArray::<i64>::open_with_len(&n, 3).unwrap_err();
        assert!(
            matches!(
                err,
                Error::WrongLength {
                    found: 2,
                    expected: 3,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            format!("segment {n} holds 2 elements, not 3")
        );
        assert_eq!(SharedArray::<i64>::open(&n).unwrap().len(), 2);
    }
}
