//! Shared-memory segments: the [`Segment`] handle, its accessors and re-exports.
//!
//! Each part of a segment's life has its own module:
//!
//! - `lifecycle`: creating, publishing, opening, waiting for and removing a
//!   segment;
//! - `mutex`: the robust, process-shared mutex with monotonic deadlines;
//! - `lock`: taking and releasing a slot's mutex ([`SlotGuard`]);
//! - `claim`: the consumer's claim on a segment, and its liveness;
//! - `files`: opening, inspecting and removing segment files;
//! - `sigbus`: the SIGBUS guard over every mapping, so a file truncated by
//!   another process is an error and not a dead process.
//!
//! # Guarantees
//! - **Nobody sees a half-made segment.** The creator builds the file unnamed
//!   (`O_TMPFILE` in `/dev/shm`, mode 0600), takes its `flock`, sizes it with
//!   `fallocate` (so a full `/dev/shm` is an error now, not a SIGBUS later),
//!   initialises the header and the mutexes, stores the magic with Release
//!   ordering and only then gives it its name with `linkat` (which fails with
//!   EEXIST if the name is taken). Openers check the magic with Acquire
//!   ordering. Where `O_TMPFILE` is unsupported, it is built under a temporary
//!   name (`O_CREAT | O_EXCL`) and published with
//!   `renameat2(RENAME_NOREPLACE)`.
//! - **One owner per name.** The creator holds an exclusive `flock` on its file
//!   for as long as it lives. The kernel drops it when the process dies, however
//!   it dies, so "can I take that flock?" tells a stale segment from a live one
//!   without trusting pids. A stale segment is removed only by a process that
//!   holds its flock, and only if the path still names the file it locked
//!   (`files::remove_if_stale`, for producers, consumers and
//!   `producer --clean` alike), so nobody racing to replace or clean it can
//!   remove a fresh segment.
//! - **Nothing is followed or reused.** Files are opened with `O_NOFOLLOW`; a
//!   symlink, a non-regular file or another user's file at one of our paths is
//!   refused.
//! - **Nothing is left behind.** Dropping the owner's [`Segment`] unlinks its file
//!   (after a normal run, an error, or a signal turned into an error).
//! - **Every lock wait is bounded, and a dead holder is known at once.**
//!   [`Segment::lock`] sleeps on a robust mutex until a CLOCK_MONOTONIC
//!   deadline, in slices, checking for signals between them; the kernel
//!   hands the mutex to a waiter as soon as its holder dies.
//! - **A truncated file is an error, not a SIGBUS.** Every mapping is
//!   registered with the SIGBUS guard for the segment's whole life. Another
//!   process of the same user can shrink the file at any moment; an access
//!   past its new end then reads zero pages instead of killing this process,
//!   and [`Segment::check_intact`] reports it, so whatever was read in that
//!   phase is refused.

use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

use memmap2::MmapRaw;

use crate::error::{Error, IoContext, Result};
use crate::layout::{Geometry, Header, Slot, HEADER_SIZE, SLOTS_OFFSET, SLOT_SIZE};
use crate::name::Name;

mod claim;
mod files;
mod lifecycle;
mod lock;
pub mod mutex;
mod sigbus;

pub(crate) use files::{open_existing, owner_alive, recorded_pid, remove_if_stale, Stale};
pub use lifecycle::Published;
pub use lock::{Recovered, SlotGuard};

/// A mapped segment, either created by this process (its owner) or opened by name.
pub struct Segment {
    name: Name,
    file: File,
    /// The SIGBUS guard over the whole of `map`. Declared before `map` so it
    /// is dropped (unregistered) before the mapping is unmapped.
    sigbus: sigbus::Guard,
    map: MmapRaw,
    geometry: Geometry,
    owner: Option<lifecycle::Ownership>,
    /// This process's identity word, recorded as a lock's holder. Read
    /// once: `getpid` is a system call, and a lock is taken on every
    /// transfer. (A segment is not carried across `fork`; a child opens its own.)
    me: u64,
}

impl Segment {
    /// The segment's name.
    pub fn name(&self) -> &Name {
        &self.name
    }

    /// The validated geometry.
    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }

    /// The global header.
    pub fn header(&self) -> &Header {
        // SAFETY: the mapping is page-aligned, at least HEADER_SIZE bytes long
        // (checked at create/open), lives as long as `self`, and `Header` is
        // made only of atomics, so shared access concurrent with other processes'
        // writes is allowed.
        unsafe { &*(self.map.as_ptr() as *const Header) }
    }

    /// Slot `i`'s control block.
    ///
    /// # Panics
    /// If `i` is not below the slot count.
    pub fn slot(&self, i: usize) -> &Slot {
        assert!(
            i < self.geometry.slot_count as usize,
            "slot {i} out of range"
        );
        // SAFETY: as for `header`: the block lies inside the header page
        // (slot_count <= MAX_SLOTS), is 8-aligned, and is all atomics apart from
        // the mutex bytes, which sit in an UnsafeCell and are only touched
        // through the pthread functions and atomic loads (`mutex`).
        unsafe { &*(self.map.as_ptr().add(SLOTS_OFFSET + i * SLOT_SIZE) as *const Slot) }
    }

    /// `count` 64-bit words of the header page from byte `offset` on: room
    /// that a kind of segment uses beyond the slot control blocks (a
    /// stream's reader table).
    ///
    /// # Panics
    /// If the words do not lie inside the header page or `offset` is not a
    /// multiple of 8 (a programming error).
    pub fn header_words(&self, offset: usize, count: usize) -> &[AtomicU64] {
        assert!(offset.is_multiple_of(8) && offset + count * 8 <= HEADER_SIZE);
        // SAFETY: the header page is mapped for as long as `self` lives (every
        // segment is at least HEADER_SIZE bytes, checked at create and open);
        // the words lie inside it (asserted) and are 8-aligned (the mapping is
        // page-aligned, the offset a multiple of 8); other processes touch
        // them only with atomic operations, so shared access is sound.
        unsafe {
            std::slice::from_raw_parts(self.map.as_ptr().add(offset) as *const AtomicU64, count)
        }
    }

    /// Raw pointer to slot `i`'s payload (capacity bytes). For types that
    /// access shared memory with atomics or volatile operations.
    ///
    /// # Panics
    /// If `i` is not below the slot count.
    pub fn payload_ptr(&self, i: usize) -> *mut u8 {
        assert!(
            i < self.geometry.slot_count as usize,
            "slot {i} out of range"
        );
        // The offset is within the mapping: header + i * stride < file_len.
        self.map
            .as_mut_ptr()
            .wrapping_add(self.geometry.payload_offset(i))
    }

    /// Fails unless the file still holds at least `len` bytes. Called before
    /// touching memory that a truncation would have unmapped (SIGBUS).
    ///
    /// # Errors
    /// [`Error::BadSegment`] naming the new size.
    pub fn check_size(&self, len: u64) -> Result<()> {
        let now = rustix::fs::fstat(&self.file)
            .context(|| format!("stat segment {}", self.name))?
            .st_size as u64;
        if now < len {
            return Err(Error::BadSegment {
                name: self.name.to_string(),
                reason: format!("the file was truncated to {now} bytes while mapped"),
            });
        }
        Ok(())
    }

    /// Fails if the file was truncated while mapped and this process then
    /// touched a page past its new end: that page, and every later one of
    /// the mapping, now reads as zeros and is no longer shared. Call it after
    /// each phase of reading or writing the payload, before trusting (or
    /// publishing) what was read or written; one atomic load.
    ///
    /// # Errors
    /// [`Error::BadSegment`] saying the file was truncated.
    pub fn check_intact(&self) -> Result<()> {
        if self.sigbus.tripped() {
            return Err(Error::BadSegment {
                name: self.name.to_string(),
                reason: "the file was truncated while it was mapped (by another process); \
                         its pages now read as zeros"
                    .into(),
            });
        }
        Ok(())
    }

    /// Whether the creator still lives (holds its flock on the file).
    pub fn owner_alive(&self) -> bool {
        if self.owner.is_some() {
            // Probing our own flock would convert it; we are alive anyway.
            return true;
        }
        owner_alive(&self.file)
    }

    /// The producer's pid as recorded in the header.
    pub fn producer_pid(&self) -> u32 {
        self.header().producer_pid.load(Ordering::Relaxed)
    }
}

/// Whether an [`Error`] means "no such segment".
pub fn is_not_found(error: &Error) -> bool {
    matches!(error, Error::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
}
