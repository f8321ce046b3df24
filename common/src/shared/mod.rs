//! Typed values and arrays in shared memory, like Python's `multiprocessing` ones.
//!
//! [`SharedValue`] and [`SharedArray`] work as Python's `multiprocessing.Value`
//! and `multiprocessing.Array`. The parts:
//!
//! - `element`: the element types, their header codes, and the [`ShmSafe`]
//!   marker for types that may live in shared memory;
//! - `cell`: what a value and an array share: one segment of elements, its
//!   lock mode ([`Lock`]) and the checks an opener makes;
//! - `value`: [`SharedValue`], one element;
//! - `array`: [`SharedArray`], a fixed number of elements.
//!
//! In Python's terms:
//!
//! | Python | Rust |
//! |---|---|
//! | `num = Value('i', 0)` | `let num = SharedValue::create(&name, 0i32)?` |
//! | `arr = Array('i', [2, 3, 5, 7])` | `let arr = SharedArray::create(&name, &[2i32, 3, 5, 7])?` |
//! | `Array('d', 10)` (ten zeros) | `SharedArray::create_filled(&name, 10, 0.0f64)?` |
//! | `Value('i', 0, lock=False)` | `SharedValue::create_with(&name, 0i32, Lock::No)?` |
//! | `num.value` / `num.value = 5` | `num.get()?` / `num.set(5)?` |
//! | `with num.get_lock(): num.value += 10` | `*num.lock()? += 10` |
//! | passing `num` to `Process(...)` | `SharedValue::<i32>::open(&name)?` in the child |
//!
//! Python hands the object to the child through `fork` or pickling; here the
//! child process opens the segment by its name.
//!
//! # The segment
//! Each value or array is one segment ([`Segment`]) with one slot: kind
//! [`Kind::Value`] or [`Kind::Array`], and in the global header the element
//! type (`elem_type`, an [`ElementType`] code, which is the element's Python
//! `struct`/`array` type code in ASCII, e.g. `'i'` for `i32`), the element size
//! in bytes (`elem_size`) and the number of elements (`elem_count`, 1 for a
//! value). The elements sit one after another at the start of slot 0's payload
//! (offset 4096, page-aligned, so element `i` is aligned to its own size). The
//! lock is slot 0's process-shared mutex.
//!
//! # Lock or no lock
//! The creator chooses, and the choice is recorded in the header's `flags`
//! (bit [`flags::UNLOCKED`]), so every process that opens the segment uses the
//! same mode; `open` takes no mode.
//!
//! - [`Lock::Yes`] (the default, like Python): `get`, `set`, `to_vec` and
//!   `copy_from_slice` each take the mutex for the one operation, waiting at
//!   most the timeout ([`DEFAULT_TIMEOUT`], change it with `set_timeout`).
//!   `lock()` returns a guard that holds the mutex and derefs to `T` (to `[T]`
//!   for arrays), mutably, so that a read-modify-write such as `*guard += 10`
//!   is one indivisible step for every process that also takes the lock. A
//!   holder that died keeps the mutex locked forever (it is not robust); the
//!   waiter notices (between one-second waits) and returns
//!   [`Error::PeerDied`] instead of hanging.
//! - [`Lock::No`] (Python's `lock=False`): no mutex is taken, and `lock()`
//!   returns [`Error::Unlocked`]. Every element access is one Relaxed atomic
//!   load or store of the element's width, so each read sees a whole value
//!   some process wrote and there is no data race in Rust's sense, but
//!   `set(get()? + 1)` from two processes loses updates: the `race` example
//!   counts how many.
//!
//! # Trust
//! The header is written by another process, so an opener checks it:
//! [`Segment::open`] validates the geometry against the file's size, and
//! `open` here checks the kind, the element type code, the element size and
//! the element count against the type asked for, with a typed error for each
//! ([`Error::NoSuchSegment`], [`Error::WrongKind`], [`Error::WrongElementType`],
//! [`Error::WrongLength`], [`Error::BadSegment`]). The element types are plain
//! numbers with no invalid bit patterns, so whatever another process writes
//! into the payload reads as some number.
//!
//! A guard's `&mut T` assumes what every lock does: that the processes that
//! change the memory take the lock. A process that writes the segment while
//! ignoring it is outside what this module can defend against. One that
//! truncates the file does not kill this process: the segment's SIGBUS guard
//! turns the pages past the new end into private zero pages, so the elements
//! there read as zero and writes to them are no longer shared.
//!
//! # Ownership and threads
//! The creating process owns the segment: dropping its [`SharedValue`] or
//! [`SharedArray`] removes `/dev/shm/p1p2.NAME` (openers' drops only unmap).
//! The types are neither `Send` nor `Sync` (the mutex handle is not); a thread
//! or process that wants its own handle opens the name.

#[cfg(doc)]
use crate::{
    error::Error,
    layout::{flags, Kind},
    segment::Segment,
};

mod array;
mod cell;
mod element;
mod value;

pub use array::{ArrayGuard, SharedArray};
pub use cell::{Lock, DEFAULT_TIMEOUT};
pub use element::{ElementType, ShmSafe};
pub use value::{SharedValue, ValueGuard};

/// A name of this process's own for the unit test `tag` of a value or an
/// array: "unit-shared-TAG-PID".
#[cfg(test)]
fn for_unit_test(tag: &str) -> crate::name::Name {
    crate::name::for_unit_test(&format!("shared-{tag}"))
}
