//! Element types: their header codes, the [`ShmSafe`] marker, atomic access.
//!
//! An element is read and written with one atomic load or store of its width.

use std::fmt;
use std::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, AtomicU8, Ordering};

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

/// Reads element `ptr` with one Relaxed atomic load of its width.
///
/// # Safety
/// `ptr` must point into a live mapping, to `T::ELEMENT.size()` bytes aligned
/// to that size, which are only ever accessed atomically or under the lock.
pub(super) unsafe fn load<T: ShmSafe>(ptr: *mut u8) -> T {
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
pub(super) unsafe fn store<T: ShmSafe>(ptr: *mut u8, value: T) {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
