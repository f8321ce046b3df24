//! The byte layout of a segment, and the checks a reader makes before trusting it.
//!
//! A segment is one file in `/dev/shm`: a 4096-byte header page, then
//! `slot_count` payload slots of `slot_stride` bytes each. The header page holds
//! a 128-byte global header and, from offset 128, one 128-byte control block per
//! slot (its state word, length, CRC-32, sequence number, lock holder and the
//! process-shared mutex). Value and array segments (`shared`) also use the
//! element fields and the `flags` word of the global header. `docs/segment-format.md` gives the same layout as a
//! table of offsets for readers in other languages.
//!
//! Every field is an atomic, so a `&Header` over memory that another process
//! writes at the same time is sound in Rust's memory model. All integers are
//! little-endian (the native order on every supported target).
//!
//! The fields are written by another process, so a reader never trusts them:
//! [`RawHeader::check`] validates a snapshot against the file's real size and
//! returns the [`Geometry`] the reader then uses, and every later read of a
//! slot's length is checked against that geometry.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::segment::mutex::RawMutexBytes;

#[cfg(target_endian = "big")]
compile_error!("the segment format is little-endian; big-endian targets are not supported");

/// `b"P1P2SHM\0"` read as a little-endian u64. Written last by the creator.
pub const MAGIC: u64 = u64::from_le_bytes(*b"P1P2SHM\0");

/// The layout version this code reads and writes. Version 2 packs each
/// process identity (pid and start time) into one 64-bit word, puts a
/// robust mutex in each slot, and adds the Taken state.
pub const VERSION: u32 = 2;

/// Size of the header page; slot 0's payload starts here.
pub const HEADER_SIZE: usize = 4096;

/// Offset of the first slot control block inside the header page.
pub const SLOTS_OFFSET: usize = 128;

/// Size of one slot control block.
pub const SLOT_SIZE: usize = 128;

/// Offset of the mutex inside a slot control block.
pub const LOCK_OFFSET: usize = 64;

/// Bytes reserved for the mutex (glibc's `pthread_mutex_t` uses 40 on
/// x86-64, 48 on aarch64).
pub const LOCK_SIZE: usize = crate::segment::mutex::MUTEX_BYTES;

/// The most slots that fit in the header page.
pub const MAX_SLOTS: u32 = ((HEADER_SIZE - SLOTS_OFFSET) / SLOT_SIZE) as u32;

/// Payload slots are a whole number of pages, so each starts page-aligned.
pub const PAGE: u64 = 4096;

/// The largest segment a reader agrees to map (1 TiB): anything bigger is a
/// corrupt header, not a real payload.
pub const MAX_SEGMENT_BYTES: u64 = 1 << 40;

/// What a segment is used for (`kind` field).
///
/// Kind 4 is retired (it once marked benchmark segments, which are now
/// ordinary transfer segments): a reader refuses it as unknown, like any other
/// value not listed here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Kind {
    /// An image (or any byte payload) handed from producer to consumer: 1 to
    /// [`MAX_SLOTS`] slots. The `producer` and `consumer` binaries use slot 0;
    /// the benchmark's pipelined mode uses several.
    Transfer = 1,
    /// A `SharedValue<T>`.
    Value = 2,
    /// A `SharedArray<T>`.
    Array = 3,
    /// A ring of raw frames for any number of readers (`crate::stream`):
    /// 2 to [`crate::stream::MAX_SLOTS`] slots.
    Stream = 5,
}

impl Kind {
    /// The kind for a raw `kind` field, if known.
    pub fn from_u32(v: u32) -> Option<Kind> {
        Some(match v {
            1 => Kind::Transfer,
            2 => Kind::Value,
            3 => Kind::Array,
            5 => Kind::Stream,
            _ => return None,
        })
    }

    /// The name with its article, for messages: "a transfer", "an array"...
    pub fn with_article(self) -> &'static str {
        match self {
            Kind::Transfer => "a transfer",
            Kind::Value => "a value",
            Kind::Array => "an array",
            Kind::Stream => "a stream",
        }
    }

    /// Lower-case name, as `producer --list` shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Transfer => "transfer",
            Kind::Value => "value",
            Kind::Array => "array",
            Kind::Stream => "stream",
        }
    }
}

/// Bits of the header's `flags` field.
pub mod flags {
    /// A value or array segment whose elements are read and written without
    /// the lock (Python's `lock=False`): every access is one atomic load or
    /// store. Recorded by the creator, so every opener uses the same mode.
    pub const UNLOCKED: u32 = 1;
    /// Every bit this version knows; a header with any other bit is refused.
    pub const KNOWN: u32 = UNLOCKED;
}

/// Values of a slot's `state` word, the word waiters sleep on with a futex.
pub mod state {
    /// No payload yet.
    pub const EMPTY: u32 = 0;
    /// The producer has written a payload and its length, CRC and sequence number.
    pub const READY: u32 = 1;
    /// The consumer has verified (and decoded) the payload.
    pub const ACKED: u32 = 2;
    /// The consumer found the payload bad (CRC mismatch or decode failure).
    pub const REJECTED: u32 = 3;
    /// The producer gave up (a signal, a timeout, an error, a dead consumer)
    /// before the consumer acknowledged, or died while writing the payload:
    /// the payload must not be used.
    pub const WITHDRAWN: u32 = 4;
    /// A consumer holds the lock and is reading the payload.
    pub const TAKEN: u32 = 5;
}

/// The global header at offset 0 (128 bytes).
#[repr(C)]
#[derive(Debug)]
pub struct Header {
    /// [`MAGIC`]; stored last, with Release ordering, once everything else is initialised.
    pub magic: AtomicU64,
    /// [`VERSION`].
    pub version: AtomicU32,
    /// [`HEADER_SIZE`]: the offset of slot 0's payload.
    pub header_size: AtomicU32,
    /// Usable bytes in each slot.
    pub capacity: AtomicU64,
    /// Distance between two slots' payloads: `capacity` rounded up to [`PAGE`].
    pub slot_stride: AtomicU64,
    /// Number of slots, 1 to [`MAX_SLOTS`].
    pub slot_count: AtomicU32,
    /// A [`Kind`].
    pub kind: AtomicU32,
    /// Element type code for value/array segments (see `shared::ElementType`); 0 otherwise.
    pub elem_type: AtomicU32,
    /// Size of one element in bytes (1 for a byte payload).
    pub elem_size: AtomicU32,
    /// Number of elements for value/array segments; 0 otherwise.
    pub elem_count: AtomicU64,
    /// Pid of the process that created the segment.
    pub producer_pid: AtomicU32,
    /// Zero.
    pub reserved1: AtomicU32,
    /// Start time of the producer (clock ticks after boot, `/proc/PID/stat`
    /// field 22). Written once, before the magic.
    pub producer_start: AtomicU64,
    /// The consumer that claimed the segment, as an [`Ident`] word (pid and
    /// start time in one atomic, so no reader pairs one process's pid with
    /// another's start time); 0 while unclaimed.
    ///
    /// [`Ident`]: crate::liveness::Ident
    pub consumer: AtomicU64,
    /// Bits from [`flags`]; 0 for transfer segments.
    pub flags: AtomicU32,
    /// Zero.
    pub reserved0: AtomicU32,
    /// Zero.
    pub reserved: [AtomicU64; 5],
}

/// One slot's control block (128 bytes), at `SLOTS_OFFSET + i * SLOT_SIZE`.
#[repr(C)]
#[derive(Debug)]
pub struct Slot {
    /// A [`state`] value; the futex word waiters sleep on.
    pub state: AtomicU32,
    /// CRC-32 (as zlib computes it) of the payload's first `len` bytes.
    pub crc32: AtomicU32,
    /// Bytes of payload in the slot.
    pub len: AtomicU64,
    /// A sequence lock over the payload: odd while the producer writes it,
    /// even (and two more than before) once it is complete. A reader that
    /// sees the same even value before and after reading saw no write.
    pub seq: AtomicU64,
    /// The process holding the mutex, as an [`Ident`] word; 0 when free or
    /// not yet recorded (just after locking).
    ///
    /// [`Ident`]: crate::liveness::Ident
    pub holder: AtomicU64,
    /// Zero.
    pub reserved: [AtomicU64; 4],
    /// The robust, process-shared pthread mutex.
    pub lock: RawMutexBytes,
}

const _: () = assert!(std::mem::size_of::<Header>() == SLOTS_OFFSET);
const _: () = assert!(std::mem::offset_of!(Header, flags) == 80);
const _: () = assert!(std::mem::offset_of!(Header, consumer) == 72);
const _: () = assert!(std::mem::offset_of!(Slot, holder) == 24);
const _: () = assert!(std::mem::size_of::<Slot>() == SLOT_SIZE);
const _: () = assert!(std::mem::offset_of!(Slot, lock) == LOCK_OFFSET);
const _: () = assert!(std::mem::align_of::<Header>() <= PAGE as usize);

/// A plain copy of the header fields, taken once and then validated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RawHeader {
    /// See [`Header::magic`].
    pub magic: u64,
    /// See [`Header::version`].
    pub version: u32,
    /// See [`Header::header_size`].
    pub header_size: u32,
    /// See [`Header::capacity`].
    pub capacity: u64,
    /// See [`Header::slot_stride`].
    pub slot_stride: u64,
    /// See [`Header::slot_count`].
    pub slot_count: u32,
    /// See [`Header::kind`].
    pub kind: u32,
    /// See [`Header::elem_type`].
    pub elem_type: u32,
    /// See [`Header::elem_size`].
    pub elem_size: u32,
    /// See [`Header::elem_count`].
    pub elem_count: u64,
    /// See [`Header::producer_pid`].
    pub producer_pid: u32,
    /// See [`Header::flags`].
    pub flags: u32,
}

/// The validated shape of a segment: everything a reader may rely on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Usable bytes per slot.
    pub capacity: u64,
    /// Distance between slot payloads.
    pub slot_stride: u64,
    /// Number of slots.
    pub slot_count: u32,
    /// What the segment is for.
    pub kind: Kind,
    /// Element type code (value/array segments).
    pub elem_type: u32,
    /// Element size in bytes.
    pub elem_size: u32,
    /// Element count (value/array segments).
    pub elem_count: u64,
    /// Bits from [`flags`].
    pub flags: u32,
}

impl Geometry {
    /// The geometry of a new segment with `slot_count` slots of `capacity` bytes.
    ///
    /// # Panics
    /// If `slot_count` is 0 or above [`MAX_SLOTS`] (a programming error).
    pub fn new(kind: Kind, capacity: u64, slot_count: u32) -> Geometry {
        assert!((1..=MAX_SLOTS).contains(&slot_count), "bad slot count");
        Geometry {
            capacity,
            slot_stride: stride_for(capacity).unwrap_or(u64::MAX),
            slot_count,
            kind,
            elem_type: 0,
            elem_size: 1,
            elem_count: 0,
            flags: 0,
        }
    }

    /// The geometry of a one-slot value or array segment holding `elem_count`
    /// elements of type code `elem_type`, `elem_size` bytes each, with the
    /// payload exactly `elem_size * elem_count` bytes. `None` if that overflows
    /// or exceeds [`MAX_SEGMENT_BYTES`].
    pub fn elements(
        kind: Kind,
        elem_type: u32,
        elem_size: u32,
        elem_count: u64,
        flags: u32,
    ) -> Option<Geometry> {
        let capacity = u64::from(elem_size).checked_mul(elem_count)?;
        let geometry = Geometry {
            elem_type,
            elem_size,
            elem_count,
            flags,
            ..Geometry::new(kind, capacity, 1)
        };
        geometry
            .file_len()
            .filter(|&len| len <= MAX_SEGMENT_BYTES)
            .map(|_| geometry)
    }

    /// The size of the whole file, or `None` if it overflows.
    pub fn file_len(&self) -> Option<u64> {
        self.slot_stride
            .checked_mul(u64::from(self.slot_count))?
            .checked_add(HEADER_SIZE as u64)
    }

    /// Offset of slot `i`'s payload from the start of the file.
    pub fn payload_offset(&self, slot: usize) -> usize {
        HEADER_SIZE + slot * self.slot_stride as usize
    }
}

/// The slot stride for a capacity: rounded up to whole pages, at least one page.
pub fn stride_for(capacity: u64) -> Option<u64> {
    capacity.div_ceil(PAGE).max(1).checked_mul(PAGE)
}

impl RawHeader {
    /// Reads the header fields from the first bytes of a segment file.
    /// Returns `None` when fewer than 128 bytes are given.
    pub fn from_bytes(bytes: &[u8]) -> Option<RawHeader> {
        let bytes = bytes.get(..SLOTS_OFFSET)?;
        let u32_at = |o: usize| u32::from_le_bytes(bytes[o..o + 4].try_into().unwrap());
        let u64_at = |o: usize| u64::from_le_bytes(bytes[o..o + 8].try_into().unwrap());
        Some(RawHeader {
            magic: u64_at(0),
            version: u32_at(8),
            header_size: u32_at(12),
            capacity: u64_at(16),
            slot_stride: u64_at(24),
            slot_count: u32_at(32),
            kind: u32_at(36),
            elem_type: u32_at(40),
            elem_size: u32_at(44),
            elem_count: u64_at(48),
            producer_pid: u32_at(56),
            flags: u32_at(80),
        })
    }

    /// Validates the fields against the real size of the file.
    ///
    /// # Errors
    /// A one-line reason naming the first field that is wrong.
    pub fn check(&self, file_len: u64) -> Result<Geometry, String> {
        if self.magic != MAGIC {
            return Err(format!(
                "wrong magic {:#018x} (not a p1p2 segment, or not initialised)",
                self.magic
            ));
        }
        if self.version != VERSION {
            return Err(format!(
                "layout version {}, this program reads version {VERSION}",
                self.version
            ));
        }
        if self.header_size as usize != HEADER_SIZE {
            return Err(format!(
                "header size {} differs from {HEADER_SIZE}",
                self.header_size
            ));
        }
        if !(1..=MAX_SLOTS).contains(&self.slot_count) {
            return Err(format!(
                "slot count {} is outside 1..={MAX_SLOTS}",
                self.slot_count
            ));
        }
        let kind =
            Kind::from_u32(self.kind).ok_or_else(|| format!("unknown kind {}", self.kind))?;
        if Some(self.slot_stride) != stride_for(self.capacity) {
            return Err(format!(
                "slot stride {} does not fit capacity {}",
                self.slot_stride, self.capacity
            ));
        }
        let geometry = Geometry {
            capacity: self.capacity,
            slot_stride: self.slot_stride,
            slot_count: self.slot_count,
            kind,
            elem_type: self.elem_type,
            elem_size: self.elem_size,
            elem_count: self.elem_count,
            flags: self.flags,
        };
        if self.flags & !flags::KNOWN != 0 {
            return Err(format!("unknown flags {:#x}", self.flags));
        }
        if self.flags != 0 && !matches!(kind, Kind::Value | Kind::Array) {
            return Err(format!(
                "flags {:#x} on a {} segment (only values and arrays have flags)",
                self.flags,
                kind.as_str()
            ));
        }
        if kind == Kind::Stream && !(2..=crate::stream::MAX_SLOTS).contains(&self.slot_count) {
            return Err(format!(
                "a stream with {} slots (a ring has 2..={})",
                self.slot_count,
                crate::stream::MAX_SLOTS
            ));
        }
        match geometry.file_len() {
            Some(len) if len == file_len && len <= MAX_SEGMENT_BYTES => {}
            Some(len) => {
                return Err(format!(
                    "header describes {len} bytes but the file has {file_len}"
                ))
            }
            None => return Err("header sizes overflow".to_owned()),
        }
        let elems = u64::from(self.elem_size).checked_mul(self.elem_count);
        if elems.is_none_or(|bytes| bytes > self.capacity) {
            return Err(format!(
                "{} elements of {} bytes do not fit capacity {}",
                self.elem_count, self.elem_size, self.capacity
            ));
        }
        Ok(geometry)
    }
}

impl Header {
    /// Copies the fields (magic with Acquire, pairing with the creator's Release
    /// store of the magic, so every field initialised before it is visible).
    pub fn snapshot(&self) -> RawHeader {
        let magic = self.magic.load(Ordering::Acquire);
        RawHeader {
            magic,
            version: self.version.load(Ordering::Relaxed),
            header_size: self.header_size.load(Ordering::Relaxed),
            capacity: self.capacity.load(Ordering::Relaxed),
            slot_stride: self.slot_stride.load(Ordering::Relaxed),
            slot_count: self.slot_count.load(Ordering::Relaxed),
            kind: self.kind.load(Ordering::Relaxed),
            elem_type: self.elem_type.load(Ordering::Relaxed),
            elem_size: self.elem_size.load(Ordering::Relaxed),
            elem_count: self.elem_count.load(Ordering::Relaxed),
            producer_pid: self.producer_pid.load(Ordering::Relaxed),
            flags: self.flags.load(Ordering::Relaxed),
        }
    }

    /// Writes every field but the magic from `geometry` (the creator does this
    /// while the file is still private, then publishes the magic).
    pub fn init(&self, geometry: &Geometry, pid: u32, start: u64) {
        self.version.store(VERSION, Ordering::Relaxed);
        self.header_size
            .store(HEADER_SIZE as u32, Ordering::Relaxed);
        self.capacity.store(geometry.capacity, Ordering::Relaxed);
        self.slot_stride
            .store(geometry.slot_stride, Ordering::Relaxed);
        self.slot_count
            .store(geometry.slot_count, Ordering::Relaxed);
        self.kind.store(geometry.kind as u32, Ordering::Relaxed);
        self.elem_type.store(geometry.elem_type, Ordering::Relaxed);
        self.elem_size.store(geometry.elem_size, Ordering::Relaxed);
        self.elem_count
            .store(geometry.elem_count, Ordering::Relaxed);
        self.producer_pid.store(pid, Ordering::Relaxed);
        self.producer_start.store(start, Ordering::Relaxed);
        self.flags.store(geometry.flags, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> RawHeader {
        let g = Geometry::new(Kind::Transfer, 10_000, 1);
        RawHeader {
            magic: MAGIC,
            version: VERSION,
            header_size: HEADER_SIZE as u32,
            capacity: g.capacity,
            slot_stride: g.slot_stride,
            slot_count: 1,
            kind: Kind::Transfer as u32,
            elem_type: 0,
            elem_size: 1,
            elem_count: 0,
            producer_pid: 42,
            flags: 0,
        }
    }

    #[test]
    fn a_well_formed_header_passes() {
        let g = good().check(4096 + 12_288).unwrap();
        assert_eq!(g.capacity, 10_000);
        assert_eq!(g.slot_stride, 12_288);
        assert_eq!(g.payload_offset(0), 4096);
    }

    #[test]
    fn each_bad_field_is_named() {
        let cases: Vec<(RawHeader, u64, &str)> = vec![
            (RawHeader { magic: 1, ..good() }, 16384, "magic"),
            (
                RawHeader {
                    version: 9,
                    ..good()
                },
                16384,
                "version",
            ),
            (
                RawHeader {
                    header_size: 64,
                    ..good()
                },
                16384,
                "header size",
            ),
            (
                RawHeader {
                    slot_count: 0,
                    ..good()
                },
                16384,
                "slot count",
            ),
            (
                RawHeader {
                    slot_count: 99,
                    ..good()
                },
                16384,
                "slot count",
            ),
            (RawHeader { kind: 77, ..good() }, 16384, "kind"),
            (RawHeader { kind: 0, ..good() }, 16384, "unknown kind 0"),
            (RawHeader { kind: 4, ..good() }, 16384, "unknown kind 4"),
            (
                RawHeader {
                    slot_stride: 4096,
                    ..good()
                },
                16384,
                "stride",
            ),
            (good(), 16383, "file has"),
            (
                RawHeader {
                    capacity: u64::MAX - 5,
                    slot_stride: 0,
                    ..good()
                },
                16384,
                "stride",
            ),
            (
                RawHeader {
                    elem_size: 8,
                    elem_count: 2000,
                    ..good()
                },
                16384,
                "elements",
            ),
            (RawHeader { flags: 2, ..good() }, 16384, "unknown flags"),
            (
                RawHeader {
                    flags: flags::UNLOCKED,
                    ..good()
                },
                16384,
                "only values and arrays",
            ),
        ];
        for (raw, len, word) in cases {
            let err = raw.check(len).unwrap_err();
            assert!(err.contains(word), "{err:?} should mention {word}");
        }
    }

    #[test]
    fn bytes_round_trip_through_the_documented_offsets() {
        let mut bytes = vec![0u8; 128];
        bytes[0..8].copy_from_slice(b"P1P2SHM\0");
        bytes[8..12].copy_from_slice(&VERSION.to_le_bytes());
        bytes[12..16].copy_from_slice(&4096u32.to_le_bytes());
        bytes[16..24].copy_from_slice(&10_000u64.to_le_bytes());
        bytes[24..32].copy_from_slice(&12_288u64.to_le_bytes());
        bytes[32..36].copy_from_slice(&1u32.to_le_bytes());
        bytes[36..40].copy_from_slice(&1u32.to_le_bytes());
        bytes[44..48].copy_from_slice(&1u32.to_le_bytes());
        bytes[56..60].copy_from_slice(&42u32.to_le_bytes());
        assert_eq!(RawHeader::from_bytes(&bytes), Some(good()));
        assert_eq!(RawHeader::from_bytes(&bytes[..127]), None);
        bytes[80..84].copy_from_slice(&flags::UNLOCKED.to_le_bytes());
        assert_eq!(
            RawHeader::from_bytes(&bytes).unwrap().flags,
            flags::UNLOCKED
        );
    }

    #[test]
    fn element_geometries_size_the_payload_and_pass_the_reader_checks() {
        let g = Geometry::elements(Kind::Array, 0x69, 4, 5, flags::UNLOCKED).unwrap();
        assert_eq!((g.capacity, g.slot_stride, g.slot_count), (20, 4096, 1));
        assert_eq!((g.elem_type, g.elem_size, g.elem_count), (0x69, 4, 5));
        let raw = RawHeader {
            magic: MAGIC,
            version: VERSION,
            header_size: HEADER_SIZE as u32,
            capacity: g.capacity,
            slot_stride: g.slot_stride,
            slot_count: g.slot_count,
            kind: g.kind as u32,
            elem_type: g.elem_type,
            elem_size: g.elem_size,
            elem_count: g.elem_count,
            producer_pid: 1,
            flags: g.flags,
        };
        assert_eq!(raw.check(g.file_len().unwrap()), Ok(g));
        assert_eq!(Geometry::elements(Kind::Array, 0x71, 8, u64::MAX, 0), None);
        assert_eq!(
            Geometry::elements(Kind::Array, 0x71, 8, MAX_SEGMENT_BYTES, 0),
            None
        );
    }
}
