//! Typed values and arrays in shared memory, as Python's
//! `multiprocessing.Value` and `multiprocessing.Array`.
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
//! ignoring it (or truncates the file, which turns the next access into
//! SIGBUS) is outside what this module can defend against.
//!
//! # Ownership and threads
//! The creating process owns the segment: dropping its [`SharedValue`] or
//! [`SharedArray`] removes `/dev/shm/p1p2.NAME` (openers' drops only unmap).
//! The types are neither `Send` nor `Sync` (the mutex handle is not); a thread
//! or process that wants its own handle opens the name.

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::layout::{flags, Geometry, Kind};
use crate::name::Name;
use crate::segment::{is_not_found, Segment, SlotGuard};
use crate::wait::Deadline;

/// How long a locked access waits for the mutex unless `set_timeout` says
/// otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The element types a segment can hold. The code recorded in the header is
/// the Python `struct` / `array` type code of the same type, as an ASCII
/// value, so a Python reader can use `chr(elem_type)` as a format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum ElementType {
    /// `u8`, Python `'B'`.
    U8 = b'B' as u32,
    /// `i8`, Python `'b'`.
    I8 = b'b' as u32,
    /// `u16`, Python `'H'`.
    U16 = b'H' as u32,
    /// `i16`, Python `'h'`.
    I16 = b'h' as u32,
    /// `u32`, Python `'I'`.
    U32 = b'I' as u32,
    /// `i32`, Python `'i'`.
    I32 = b'i' as u32,
    /// `u64`, Python `'Q'`.
    U64 = b'Q' as u32,
    /// `i64`, Python `'q'`.
    I64 = b'q' as u32,
    /// `f32`, Python `'f'`.
    F32 = b'f' as u32,
    /// `f64`, Python `'d'`.
    F64 = b'd' as u32,
}

impl ElementType {
    /// Every element type.
    pub const ALL: [ElementType; 10] = [
        ElementType::U8,
        ElementType::I8,
        ElementType::U16,
        ElementType::I16,
        ElementType::U32,
        ElementType::I32,
        ElementType::U64,
        ElementType::I64,
        ElementType::F32,
        ElementType::F64,
    ];

    /// The code stored in the header's `elem_type` field.
    pub const fn code(self) -> u32 {
        self as u32
    }

    /// The element type for a header's `elem_type` code, if it is one.
    pub fn from_code(code: u32) -> Option<ElementType> {
        ElementType::ALL.into_iter().find(|t| t.code() == code)
    }

    /// Size of one element in bytes.
    pub const fn size(self) -> usize {
        match self {
            ElementType::U8 | ElementType::I8 => 1,
            ElementType::U16 | ElementType::I16 => 2,
            ElementType::U32 | ElementType::I32 | ElementType::F32 => 4,
            ElementType::U64 | ElementType::I64 | ElementType::F64 => 8,
        }
    }

    /// The Rust name of the type, e.g. `"i32"`.
    pub const fn name(self) -> &'static str {
        match self {
            ElementType::U8 => "u8",
            ElementType::I8 => "i8",
            ElementType::U16 => "u16",
            ElementType::I16 => "i16",
            ElementType::U32 => "u32",
            ElementType::I32 => "i32",
            ElementType::U64 => "u64",
            ElementType::I64 => "i64",
            ElementType::F32 => "f32",
            ElementType::F64 => "f64",
        }
    }

    /// The Python type code, e.g. `'i'` for `i32`.
    pub const fn typecode(self) -> char {
        self as u32 as u8 as char
    }
}

impl fmt::Display for ElementType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Types that may live in shared memory and be read and written by other
/// processes.
///
/// # Safety
/// An implementing type must be plain old data, laid out like a C type
/// (`#[repr(C)]` or a primitive):
/// - no pointers or references (another process maps the memory elsewhere),
///   no file descriptors or handles (they mean nothing in another process),
///   nothing with a destructor;
/// - every bit pattern of its size is a valid value (another process can write
///   any bytes), and it has no padding bytes;
/// - `size_of::<Self>()` equals `Self::ELEMENT.size()`, which is 1, 2, 4 or 8,
///   so each element can be read and written as one atomic of that width.
///
/// It is implemented for `u8`, `i8`, `u16`, `i16`, `u32`, `i32`, `u64`, `i64`,
/// `f32` and `f64`.
pub unsafe trait ShmSafe: Copy + Send + Sync + 'static {
    /// The element type recorded in the header.
    const ELEMENT: ElementType;
}

macro_rules! shm_safe {
    ($($t:ty => $e:ident),* $(,)?) => {
        $(
            // SAFETY: a primitive number: no pointers, no padding, every bit
            // pattern valid, and its size is the one `ElementType::size` gives
            // (checked by the `sizes_match` test).
            unsafe impl ShmSafe for $t {
                const ELEMENT: ElementType = ElementType::$e;
            }
        )*
    };
}

shm_safe! {
    u8 => U8, i8 => I8, u16 => U16, i16 => I16, u32 => U32, i32 => I32,
    u64 => U64, i64 => I64, f32 => F32, f64 => F64,
}

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

/// Reads element `ptr` with one Relaxed atomic load of its width.
///
/// # Safety
/// `ptr` must point into a live mapping, to `T::ELEMENT.size()` bytes aligned
/// to that size, which are only ever accessed atomically or under the lock.
unsafe fn load<T: ShmSafe>(ptr: *mut u8) -> T {
    const { assert!(std::mem::size_of::<T>() == T::ELEMENT.size()) };
    // In each arm: SAFETY (from_ptr): the caller's promise: valid, aligned to
    // the atomic's size, and never accessed non-atomically at the same time.
    // SAFETY (transmute_copy): same size (the assertion above) and every bit
    // pattern is a valid `T` (ShmSafe); for floats this is `from_bits`.
    match T::ELEMENT.size() {
        1 => {
            // SAFETY: see above.
            let bits = unsafe { AtomicU8::from_ptr(ptr) }.load(Ordering::Relaxed);
            // SAFETY: see above.
            unsafe { std::mem::transmute_copy::<u8, T>(&bits) }
        }
        2 => {
            // SAFETY: see above.
            let bits = unsafe { AtomicU16::from_ptr(ptr.cast()) }.load(Ordering::Relaxed);
            // SAFETY: see above.
            unsafe { std::mem::transmute_copy::<u16, T>(&bits) }
        }
        4 => {
            // SAFETY: see above.
            let bits = unsafe { AtomicU32::from_ptr(ptr.cast()) }.load(Ordering::Relaxed);
            // SAFETY: see above.
            unsafe { std::mem::transmute_copy::<u32, T>(&bits) }
        }
        _ => {
            // SAFETY: see above (the size is 8: ShmSafe allows no other).
            let bits = unsafe { AtomicU64::from_ptr(ptr.cast()) }.load(Ordering::Relaxed);
            // SAFETY: see above.
            unsafe { std::mem::transmute_copy::<u64, T>(&bits) }
        }
    }
}

/// Writes `value` to element `ptr` with one Relaxed atomic store of its width.
///
/// # Safety
/// As for [`load`].
unsafe fn store<T: ShmSafe>(ptr: *mut u8, value: T) {
    const { assert!(std::mem::size_of::<T>() == T::ELEMENT.size()) };
    // In each arm: SAFETY (transmute_copy): same size and no padding bytes
    // (ShmSafe), so every byte read is initialised; for floats this is
    // `to_bits`. SAFETY (from_ptr): as in `load`.
    match T::ELEMENT.size() {
        1 => {
            // SAFETY: see above.
            let bits = unsafe { std::mem::transmute_copy::<T, u8>(&value) };
            // SAFETY: see above.
            unsafe { AtomicU8::from_ptr(ptr) }.store(bits, Ordering::Relaxed);
        }
        2 => {
            // SAFETY: see above.
            let bits = unsafe { std::mem::transmute_copy::<T, u16>(&value) };
            // SAFETY: see above.
            unsafe { AtomicU16::from_ptr(ptr.cast()) }.store(bits, Ordering::Relaxed);
        }
        4 => {
            // SAFETY: see above.
            let bits = unsafe { std::mem::transmute_copy::<T, u32>(&value) };
            // SAFETY: see above.
            unsafe { AtomicU32::from_ptr(ptr.cast()) }.store(bits, Ordering::Relaxed);
        }
        _ => {
            // SAFETY: see above.
            let bits = unsafe { std::mem::transmute_copy::<T, u64>(&value) };
            // SAFETY: see above.
            unsafe { AtomicU64::from_ptr(ptr.cast()) }.store(bits, Ordering::Relaxed);
        }
    }
}

/// What a value and an array share: the segment, the element count, the mode.
struct Cells<T: ShmSafe> {
    segment: Segment,
    len: usize,
    lock: Lock,
    timeout: Duration,
    _type: PhantomData<T>,
}

/// "a value", "an array", ... for messages.
fn a_kind(kind: Kind) -> &'static str {
    match kind {
        Kind::Transfer => "a transfer",
        Kind::Value => "a value",
        Kind::Array => "an array",
        Kind::Bench => "a benchmark",
    }
}

impl<T: ShmSafe> Cells<T> {
    /// Creates the segment, writes `values` (exactly `len` of them) and
    /// publishes it.
    fn create(
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
            // An unlocked opener can only find the segment after the rename
            // in `publish` and its own open and mmap, system calls that come
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
    fn open(name: &Name, kind: Kind) -> Result<Cells<T>> {
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

    fn name(&self) -> &Name {
        self.segment.name()
    }

    /// Pointer to element `i`.
    fn ptr(&self, i: usize) -> *mut u8 {
        debug_assert!(i < self.len);
        self.segment
            .payload_ptr(0)
            .wrapping_add(i * T::ELEMENT.size())
    }

    fn load(&self, i: usize) -> T {
        assert!(i < self.len, "element {i} out of range");
        // SAFETY: i < len, and len elements fit in slot 0's payload (checked
        // against the file size when the segment was created or opened), which
        // starts page-aligned, so element i is aligned to its size. In locked
        // mode accesses run under the mutex; in unlocked mode every access in
        // every process is atomic (the mode is in the header, so all agree).
        unsafe { load(self.ptr(i)) }
    }

    fn store(&self, i: usize, value: T) {
        assert!(i < self.len, "element {i} out of range");
        // SAFETY: as in `load`.
        unsafe { store(self.ptr(i), value) }
    }

    fn check_index(&self, index: usize) -> Result<()> {
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
    fn guard(&self) -> Result<SlotGuard<'_>> {
        if self.lock == Lock::No {
            return Err(Error::Unlocked {
                name: self.name().to_string(),
            });
        }
        let deadline = Deadline::after(self.timeout);
        let guard = self.segment.lock(0, &deadline, |_| {})?.ok_or_else(|| {
            let holder = self.segment.slot(0).holder_pid.load(Ordering::Relaxed);
            deadline.timeout(format!(
                "the lock on segment {} stayed held by pid {holder}",
                self.name()
            ))
        })?;
        Ok(guard)
    }

    /// Runs `f` under the mutex in locked mode, directly in unlocked mode.
    fn access<R>(&self, f: impl FnOnce() -> R) -> Result<R> {
        match self.lock {
            Lock::Yes => {
                let _guard = self.guard()?;
                Ok(f())
            }
            Lock::No => Ok(f()),
        }
    }

    /// A slice over the elements, valid while `_guard` holds the mutex.
    fn slice_ptr(&self) -> *mut T {
        self.segment.payload_ptr(0).cast()
    }
}

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
            found: a_kind(geometry.kind),
            expected: a_kind(kind),
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
        let guard = self.cells.guard()?;
        Ok(ValueGuard {
            _guard: guard,
            ptr: self.cells.slice_ptr(),
        })
    }

    /// The segment name.
    pub fn name(&self) -> &Name {
        self.cells.name()
    }

    /// Whether accesses take the lock (as the creator chose).
    pub fn lock_mode(&self) -> Lock {
        self.cells.lock
    }

    /// How long a locked access waits for the lock.
    pub fn timeout(&self) -> Duration {
        self.cells.timeout
    }

    /// Changes how long a locked access waits for the lock.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.cells.timeout = timeout;
    }
}

impl<T: ShmSafe> fmt::Debug for SharedValue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.cells.fmt(f)
    }
}

/// The lock on a [`SharedValue`], held until dropped; derefs to the value.
pub struct ValueGuard<'a, T: ShmSafe> {
    _guard: SlotGuard<'a>,
    ptr: *mut T,
}

impl<T: ShmSafe> Deref for ValueGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: `ptr` is slot 0's payload: inside the mapping (the geometry
        // was checked against the file size at create/open), page-aligned, and
        // holding a `T` (any bits are a valid `T`). The mutex is held for the
        // guard's lifetime, so no cooperating process or thread writes it.
        unsafe { &*self.ptr }
    }
}

impl<T: ShmSafe> DerefMut for ValueGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes this the only reference
        // made through this guard, and the held mutex rules out other guards.
        unsafe { &mut *self.ptr }
    }
}

impl<T: ShmSafe + fmt::Debug> fmt::Debug for ValueGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ValueGuard").field(&**self).finish()
    }
}

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
        let guard = self.cells.guard()?;
        Ok(ArrayGuard {
            _guard: guard,
            ptr: self.cells.slice_ptr(),
            len: self.cells.len,
        })
    }

    /// The segment name.
    pub fn name(&self) -> &Name {
        self.cells.name()
    }

    /// Whether accesses take the lock (as the creator chose).
    pub fn lock_mode(&self) -> Lock {
        self.cells.lock
    }

    /// How long a locked access waits for the lock.
    pub fn timeout(&self) -> Duration {
        self.cells.timeout
    }

    /// Changes how long a locked access waits for the lock.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.cells.timeout = timeout;
    }
}

impl<T: ShmSafe> fmt::Debug for SharedArray<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.cells.fmt(f)
    }
}

/// The lock on a [`SharedArray`], held until dropped; derefs to the elements.
pub struct ArrayGuard<'a, T: ShmSafe> {
    _guard: SlotGuard<'a>,
    ptr: *mut T,
    len: usize,
}

impl<T: ShmSafe> Deref for ArrayGuard<'_, T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        // SAFETY: `ptr` is slot 0's payload: page-aligned and followed by
        // `len` elements inside the mapping (the geometry was checked against
        // the file size at create/open); any bits are valid `T`s. The mutex is held
        // for the guard's lifetime, so no cooperating process or thread
        // writes them.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl<T: ShmSafe> DerefMut for ArrayGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`; `&mut self` makes this the only reference
        // made through this guard, and the held mutex rules out other guards.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
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

    fn name(tag: &str) -> Name {
        Name::new(&format!("unit-shared-{tag}-{}", std::process::id())).unwrap()
    }

    fn geometry(kind: Kind, element: ElementType, count: u64, flags: u32) -> Geometry {
        Geometry::elements(kind, element.code(), element.size() as u32, count, flags).unwrap()
    }

    #[test]
    fn sizes_match() {
        fn check<T: ShmSafe>() {
            assert_eq!(
                std::mem::size_of::<T>(),
                T::ELEMENT.size(),
                "{}",
                T::ELEMENT
            );
            assert!(std::mem::align_of::<T>() <= T::ELEMENT.size());
        }
        check::<u8>();
        check::<i8>();
        check::<u16>();
        check::<i16>();
        check::<u32>();
        check::<i32>();
        check::<u64>();
        check::<i64>();
        check::<f32>();
        check::<f64>();
    }

    #[test]
    fn codes_are_python_type_codes_and_round_trip() {
        let codes: String = ElementType::ALL.iter().map(|t| t.typecode()).collect();
        assert_eq!(codes, "BbHhIiQqfd");
        for t in ElementType::ALL {
            assert_eq!(ElementType::from_code(t.code()), Some(t));
        }
        assert_eq!(ElementType::from_code(0), None);
        assert_eq!(ElementType::from_code(u32::from(b'l')), None);
        assert_eq!(i64::ELEMENT.to_string(), "i64");
    }

    #[test]
    fn atomic_access_round_trips_every_width_and_bit_pattern() {
        #[repr(C, align(8))]
        struct Buf([u8; 16]);
        let mut buf = Buf([0; 16]);
        let p = buf.0.as_mut_ptr();
        // SAFETY: `p` and `p + 8` are 8-aligned pointers into a local
        // buffer that nothing else touches.
        unsafe {
            store(p, -2i8);
            assert_eq!(load::<i8>(p), -2);
            store(p, 0xbeefu16);
            assert_eq!(load::<u16>(p), 0xbeef);
            store(p, f32::NAN);
            assert!(load::<f32>(p).is_nan());
            store(p, -0.0f32);
            assert_eq!(load::<u32>(p), 0x8000_0000);
            store(p.add(8), 1.0e-300f64);
            assert_eq!(load::<f64>(p.add(8)), 1.0e-300);
            store(p.add(8), i64::MIN);
            assert_eq!(load::<u64>(p.add(8)), 1 << 63);
        }
        assert_eq!(&buf.0[..4], &0x8000_0000u32.to_le_bytes());
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

    #[test]
    fn a_live_owner_keeps_its_name() {
        let n = name("twice");
        let _first = SharedValue::create(&n, 1u32).unwrap();
        let err = SharedValue::create(&n, 2u32).unwrap_err();
        assert!(matches!(err, Error::InUse { .. }), "{err}");
        assert_eq!(SharedValue::<u32>::open(&n).unwrap().get().unwrap(), 1);
    }
}
