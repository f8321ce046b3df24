//! Shared-memory segments: creating, publishing, opening, locking and removing
//! them, and telling live ones from stale ones.
//!
//! # Guarantees
//! - **Nobody sees a half-made segment.** The creator builds the file under a
//!   temporary name (`O_CREAT | O_EXCL`, mode 0600), sizes it with `fallocate`
//!   (so a full `/dev/shm` is an error now, not a SIGBUS later), initialises the
//!   header and the mutexes, stores the magic with Release ordering and only then
//!   publishes it with `renameat2(RENAME_NOREPLACE)`. Openers check the magic
//!   with Acquire ordering.
//! - **One owner per name.** The creator holds an exclusive `flock` on its file
//!   for as long as it lives. The kernel drops it when the process dies, however
//!   it dies, so "can I take that flock?" tells a stale segment from a live one
//!   without trusting pids. A stale segment is removed only by a process that
//!   holds its flock, so two producers racing to replace it cannot remove each
//!   other's fresh segment.
//! - **Nothing is followed or reused.** Files are opened with `O_NOFOLLOW`; a
//!   symlink, a non-regular file or another user's file at one of our paths is
//!   refused.
//! - **Nothing is left behind.** Dropping the owner's [`Segment`] unlinks its file
//!   (after a normal run, an error, or a signal turned into an error).
//! - **Every lock wait is bounded.** [`Segment::lock`] never calls raw_sync's
//!   unbounded `lock()`; it waits in whole-second slices (raw_sync's sub-second
//!   timeouts are broken) and between slices checks for signals and whether the
//!   holder is still alive.

use std::cell::Cell;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;

use memmap2::{MmapOptions, MmapRaw};
use raw_sync::locks::{LockImpl, LockInit, Mutex};
use raw_sync::Timeout;
use rustix::fs::{flock, FlockOperation};

use crate::error::{Error, IoContext, Result, Role};
use crate::layout::{
    state, Geometry, Header, RawHeader, Slot, HEADER_SIZE, LOCK_SIZE, MAGIC, MAX_SEGMENT_BYTES,
    SLOTS_OFFSET, SLOT_SIZE,
};
use crate::liveness;
use crate::name::{Name, SHM_DIR};
use crate::signals;
use crate::wait::Deadline;

/// A mapped segment, either created by this process (its owner) or opened by name.
pub struct Segment {
    name: Name,
    file: File,
    map: MmapRaw,
    geometry: Geometry,
    locks: Vec<Box<dyn LockImpl>>,
    owner: Option<Ownership>,
    /// This process's pid and start time, recorded as a lock's holder. Read
    /// once: `getpid` is a system call, and a lock is taken on every
    /// transfer. (A segment is not carried across `fork`; a child opens its own.)
    me: (u32, u64),
}

/// What the creator must clean up.
struct Ownership {
    temp_path: PathBuf,
    published: Cell<bool>,
}

/// What [`Segment::publish`] found at the name, if anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Published {
    /// The name was free.
    Fresh,
    /// A stale segment left by a dead process was removed first.
    ReplacedStale {
        /// The dead creator's pid as its header recorded it (0 if unreadable).
        pid: u32,
    },
}

impl Segment {
    /// Creates a segment for `name` under a temporary file name. Nobody can open
    /// it until [`Segment::publish`].
    ///
    /// # Errors
    /// If the file cannot be created, sized (e.g. `/dev/shm` is full) or mapped.
    pub fn create(name: &Name, geometry: Geometry) -> Result<Segment> {
        let len = geometry
            .file_len()
            .filter(|&len| len <= MAX_SEGMENT_BYTES)
            .ok_or_else(|| Error::Usage(format!("a segment of {geometry:?} is too large")))?;
        let temp_path = Path::new(SHM_DIR).join(name.temp_file_name());
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&temp_path)
            .context(|| format!("create {}", temp_path.display()))?;
        // From here on, dropping `segment` removes the temporary file.
        let owner = Ownership {
            temp_path,
            published: Cell::new(false),
        };
        let path = owner.temp_path.display().to_string();
        // Nobody else knows the file yet, so this cannot fail with EWOULDBLOCK.
        flock(&file, FlockOperation::NonBlockingLockExclusive)
            .context(|| format!("flock {path}"))?;
        rustix::fs::fallocate(&file, rustix::fs::FallocateFlags::empty(), 0, len).map_err(
            |errno| {
                let _ = std::fs::remove_file(&owner.temp_path);
                Error::io(
                    format!("reserve {len} bytes for {path} (is {SHM_DIR} full?)"),
                    errno.into(),
                )
            },
        )?;
        let map = match MmapOptions::new().len(len as usize).map_raw(&file) {
            Ok(map) => map,
            Err(e) => {
                let _ = std::fs::remove_file(&owner.temp_path);
                return Err(Error::io(format!("map {path}"), e));
            }
        };
        let mut segment = Segment {
            name: name.clone(),
            file,
            map,
            geometry,
            locks: Vec::new(),
            owner: Some(owner),
            me: (std::process::id(), liveness::own_start_time()),
        };
        segment.header().init(&geometry, segment.me.0, segment.me.1);
        for slot in 0..geometry.slot_count as usize {
            let (lock_ptr, data_ptr) = segment.lock_and_data(slot);
            // SAFETY: `lock_ptr` points at LOCK_SIZE bytes inside our mapping,
            // 8-aligned (the slot block is at a multiple of 128 in a page-aligned
            // map), which no other process can see yet: the file has a private
            // temporary name and its magic is not written. So this is the single,
            // first initialisation raw_sync requires (notes: defect 4).
            let (lock, used) =
                unsafe { Mutex::new(lock_ptr, data_ptr) }.map_err(|e| Error::Lock {
                    name: name.to_string(),
                    reason: e.to_string(),
                })?;
            assert!(used <= LOCK_SIZE, "raw_sync's mutex outgrew its slot");
            segment.locks.push(lock);
        }
        // Release: pairs with the Acquire load in `Header::snapshot` of every
        // opener; the header fields and mutexes written above are visible to
        // anyone who sees the magic.
        segment.header().magic.store(MAGIC, Ordering::Release);
        Ok(segment)
    }

    /// Publishes a created segment under its real name.
    ///
    /// If the name is taken by a stale segment (its creator is dead), that one
    /// is removed first. A live owner's segment is never touched.
    ///
    /// # Errors
    /// [`Error::InUse`] when a live process owns the name, [`Error::Refused`]
    /// when the path holds something that is not ours to replace.
    ///
    /// # Panics
    /// If called on a segment that was opened rather than created.
    pub fn publish(&self) -> Result<Published> {
        let owner = self.owner.as_ref().expect("only the creator publishes");
        let path = self.name.shm_path();
        let mut replaced = None;
        for _attempt in 0..5 {
            match rustix::fs::renameat_with(
                rustix::fs::CWD,
                &owner.temp_path,
                rustix::fs::CWD,
                &path,
                rustix::fs::RenameFlags::NOREPLACE,
            ) {
                Ok(()) => {
                    owner.published.set(true);
                    return Ok(match replaced {
                        Some(pid) => Published::ReplacedStale { pid },
                        None => Published::Fresh,
                    });
                }
                Err(rustix::io::Errno::EXIST) => {
                    replaced = Some(remove_if_stale(&self.name, &path)?);
                }
                Err(errno) => {
                    return Err(Error::io(
                        format!("publish {}", path.display()),
                        errno.into(),
                    ))
                }
            }
        }
        Err(Error::Io {
            what: format!("publish {}", path.display()),
            source: io::Error::other("the name kept being taken by other processes"),
        })
    }

    /// Opens the published segment `name`, validating its header.
    ///
    /// # Errors
    /// An [`Error::Io`] of kind `NotFound` if there is no such segment (see
    /// [`is_not_found`]); [`Error::Refused`] for a symlink, a non-regular file or
    /// another user's file; [`Error::BadSegment`] for a header that breaks the
    /// format or disagrees with the file's size.
    pub fn open(name: &Name) -> Result<Segment> {
        let path = name.shm_path();
        let file = open_existing(&path, true)?;
        let file_len = file
            .metadata()
            .context(|| format!("stat {}", path.display()))?
            .len();
        let bad = |reason: String| Error::BadSegment {
            name: name.to_string(),
            reason,
        };
        if file_len < HEADER_SIZE as u64 {
            return Err(bad(format!(
                "the file has {file_len} bytes, less than the {HEADER_SIZE}-byte header"
            )));
        }
        if file_len > MAX_SEGMENT_BYTES {
            return Err(bad(format!(
                "the file is implausibly large ({file_len} bytes)"
            )));
        }
        let map = MmapOptions::new()
            .len(file_len as usize)
            .map_raw(&file)
            .context(|| format!("map {}", path.display()))?;
        let mut segment = Segment {
            name: name.clone(),
            file,
            map,
            geometry: Geometry::new(crate::layout::Kind::Transfer, 0, 1),
            locks: Vec::new(),
            owner: None,
            me: (std::process::id(), liveness::own_start_time()),
        };
        // The file may have shrunk since `metadata()`; check again right before
        // the first access, so a truncated file is an error and not a SIGBUS.
        segment.check_size(HEADER_SIZE as u64)?;
        segment.geometry = segment.header().snapshot().check(file_len).map_err(bad)?;
        for slot in 0..segment.geometry.slot_count as usize {
            let (lock_ptr, data_ptr) = segment.lock_and_data(slot);
            if !mutex_looks_initialised(segment.slot(slot)) {
                return Err(bad(format!(
                    "slot {slot}'s lock is not a process-shared mutex"
                )));
            }
            // SAFETY: the magic was checked with Acquire ordering, so the creator's
            // `Mutex::new` on these bytes happened before; `lock_ptr` is inside the
            // mapping (slot < slot_count <= MAX_SLOTS, all within the header page
            // whose presence `check_size` confirmed) and 8-aligned.
            let (lock, _) =
                unsafe { Mutex::from_existing(lock_ptr, data_ptr) }.map_err(|e| Error::Lock {
                    name: name.to_string(),
                    reason: e.to_string(),
                })?;
            segment.locks.push(lock);
        }
        Ok(segment)
    }

    /// Waits up to the deadline for `name` to be published by a live
    /// producer, then opens it. Returns `Ok(None)` on timeout.
    ///
    /// A stale segment (its creator is dead) is not opened: `on_stale` is told
    /// the dead creator's pid and the wait goes on, since a new producer will
    /// replace it.
    ///
    /// # Errors
    /// As [`Segment::open`] (other than not-found), or [`Error::Interrupted`].
    pub fn wait_open(
        name: &Name,
        deadline: &Deadline,
        mut on_stale: impl FnMut(u32),
    ) -> Result<Option<Segment>> {
        crate::wait::appear(Path::new(SHM_DIR), deadline, || match Segment::open(name) {
            Ok(segment) if !segment.owner_alive() => {
                on_stale(segment.producer_pid());
                Ok(None)
            }
            Ok(segment) => Ok(Some(segment)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e),
        })
    }

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
        // through raw_sync.
        unsafe { &*(self.map.as_ptr().add(SLOTS_OFFSET + i * SLOT_SIZE) as *const Slot) }
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

    fn lock_and_data(&self, slot: usize) -> (*mut u8, *mut u8) {
        let lock = self.slot(slot).lock.get() as *mut u8;
        (lock, self.payload_ptr(slot))
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

    /// Takes slot `i`'s mutex if it is free, without waiting.
    ///
    /// # Errors
    /// [`Error::Lock`] if raw_sync reports anything but "busy".
    pub fn try_lock(&self, i: usize) -> Result<Option<SlotGuard<'_>>> {
        self.lock_slice(i, Duration::ZERO)
    }

    /// Takes slot `i`'s mutex, waiting at most until `deadline` (`Ok(None)` then).
    ///
    /// `on_wait` runs once, with the holder's pid, if the lock is busy at first.
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
        on_wait: impl FnOnce(u32),
    ) -> Result<Option<SlotGuard<'_>>> {
        if let Some(guard) = self.try_lock(i)? {
            return Ok(Some(guard));
        }
        on_wait(self.slot(i).holder_pid.load(Ordering::Relaxed));
        loop {
            signals::check()?;
            self.check_holder(i)?;
            let Some(left) = deadline.remaining() else {
                return Ok(None);
            };
            // raw_sync adds sub-second parts without carrying into seconds, so
            // only whole seconds are safe (notes: defect 2). Below one second
            // left, poll with zero timeouts instead.
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

    /// One timed attempt; `Ok(None)` when it timed out.
    fn lock_slice(&self, i: usize, slice: Duration) -> Result<Option<SlotGuard<'_>>> {
        let lock = &self.locks[i];
        match lock.try_lock(Timeout::Val(slice)) {
            Ok(guard) => {
                // We release explicitly in `SlotGuard::drop`; raw_sync's guard
                // would `unwrap()` a failed unlock (notes: defect 6).
                std::mem::forget(guard);
                let slot = self.slot(i);
                slot.holder_pid.store(self.me.0, Ordering::Relaxed);
                slot.holder_start.store(self.me.1, Ordering::Relaxed);
                Ok(Some(SlotGuard {
                    segment: self,
                    slot: i,
                }))
            }
            // raw_sync's errors are strings ending in the errno (defect 7).
            Err(e) if errno_of(&e.to_string()) == Some(libc::ETIMEDOUT) => Ok(None),
            Err(e) => Err(Error::Lock {
                name: self.name.to_string(),
                reason: e.to_string(),
            }),
        }
    }

    /// Fails with [`Error::PeerDied`] if slot `i`'s lock holder has died.
    fn check_holder(&self, i: usize) -> Result<()> {
        let slot = self.slot(i);
        let pid = slot.holder_pid.load(Ordering::Relaxed);
        let start = slot.holder_start.load(Ordering::Relaxed);
        let producer = self.producer_pid();
        let dead = if pid == 0 {
            // Locked but the holder not yet recorded: only the creator can be
            // in that window (it locks before publishing).
            !self.owner_alive()
        } else if pid == producer {
            !self.owner_alive()
        } else {
            !liveness::is_alive(pid, start)
        };
        if dead {
            // Re-read: the holder may have released just now and died later.
            if self.slot(i).holder_pid.load(Ordering::Relaxed) != pid {
                return Ok(());
            }
            return Err(Error::PeerDied {
                role: if pid == producer || pid == 0 {
                    Role::Producer
                } else {
                    Role::Consumer
                },
                pid: if pid == 0 { producer } else { pid },
                when: format!("while holding the lock on segment {}", self.name),
            });
        }
        Ok(())
    }

    /// Records this process as the segment's consumer.
    ///
    /// # Errors
    /// [`Error::Claimed`] if another live consumer claimed it first.
    pub fn claim(&self) -> Result<()> {
        let header = self.header();
        let me = std::process::id();
        let mut current = header.consumer_pid.load(Ordering::Acquire);
        loop {
            if current != 0
                && current != me
                && liveness::is_alive(current, header.consumer_start.load(Ordering::Relaxed))
            {
                return Err(Error::Claimed {
                    name: self.name.to_string(),
                    pid: current,
                });
            }
            match header.consumer_pid.compare_exchange(
                current,
                me,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(now) => current = now,
            }
        }
        header
            .consumer_start
            .store(liveness::own_start_time(), Ordering::Relaxed);
        Ok(())
    }

    /// The claiming consumer's pid, if one claimed the segment and is dead.
    pub fn dead_consumer(&self) -> Option<u32> {
        let header = self.header();
        let pid = header.consumer_pid.load(Ordering::Acquire);
        (pid != 0 && !liveness::is_alive(pid, header.consumer_start.load(Ordering::Relaxed)))
            .then_some(pid)
    }

    /// The claiming consumer's pid (0 while unclaimed).
    pub fn consumer_pid(&self) -> u32 {
        self.header().consumer_pid.load(Ordering::Acquire)
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        let Some(owner) = &self.owner else { return };
        if owner.published.get() {
            // Only remove the name if it is still ours (compare inodes).
            let path = self.name.shm_path();
            let ours = rustix::fs::fstat(&self.file).ok();
            let there = rustix::fs::statat(
                rustix::fs::CWD,
                &path,
                rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
            )
            .ok();
            if let (Some(a), Some(b)) = (ours, there) {
                if (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino) {
                    let _ = std::fs::remove_file(&path);
                }
            }
        } else {
            let _ = std::fs::remove_file(&owner.temp_path);
        }
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

/// Whether an [`Error`] means "no such segment".
pub fn is_not_found(error: &Error) -> bool {
    matches!(error, Error::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
}

/// The state names, for messages.
pub fn state_name(value: u32) -> &'static str {
    match value {
        state::EMPTY => "empty",
        state::READY => "ready",
        state::ACKED => "acknowledged",
        state::REJECTED => "rejected",
        state::WITHDRAWN => "withdrawn by its producer",
        _ => "invalid",
    }
}

/// Opens an existing file at one of our paths without following symlinks, and
/// refuses anything that is not a regular file owned by us.
pub(crate) fn open_existing(path: &Path, write: bool) -> Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(write)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(path);
    let file = match file {
        Ok(file) => file,
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(Error::Refused {
                path: path.to_owned(),
                reason: "it is a symbolic link".into(),
            })
        }
        Err(e) if e.raw_os_error() == Some(libc::EISDIR) => {
            return Err(Error::Refused {
                path: path.to_owned(),
                reason: "it is not a regular file".into(),
            })
        }
        Err(e) => return Err(Error::io(format!("open {}", path.display()), e)),
    };
    let meta = file
        .metadata()
        .context(|| format!("stat {}", path.display()))?;
    if !meta.file_type().is_file() {
        return Err(Error::Refused {
            path: path.to_owned(),
            reason: "it is not a regular file".into(),
        });
    }
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        return Err(Error::Refused {
            path: path.to_owned(),
            reason: format!("it belongs to uid {}, not to this user ({me})", meta.uid()),
        });
    }
    Ok(file)
}

/// Probes the creator's flock: a shared, non-blocking lock succeeds only when
/// no process holds the exclusive one, i.e. the creator is gone.
pub(crate) fn owner_alive(file: &File) -> bool {
    match flock(file, FlockOperation::NonBlockingLockShared) {
        Ok(()) => {
            let _ = flock(file, FlockOperation::Unlock);
            false
        }
        Err(_) => true,
    }
}

/// Reads the recorded creator pid from a segment file (0 if unreadable).
pub(crate) fn recorded_pid(file: &File) -> u32 {
    let mut bytes = [0u8; SLOTS_OFFSET];
    match file.read_exact_at(&mut bytes, 0) {
        Ok(()) => RawHeader::from_bytes(&bytes).map_or(0, |h| h.producer_pid),
        Err(_) => 0,
    }
}

/// Removes the file at `path` if its creator is dead; returns the dead pid.
fn remove_if_stale(name: &Name, path: &Path) -> Result<u32> {
    let file = match open_existing(path, false) {
        Ok(file) => file,
        // Vanished meanwhile: the caller simply retries the rename.
        Err(e) if is_not_found(&e) => return Ok(0),
        Err(e) => return Err(e),
    };
    // A consumer probing liveness holds a shared flock for a moment; retry a
    // few times before concluding that the owner is alive.
    let mut got = false;
    for _ in 0..5 {
        if flock(&file, FlockOperation::NonBlockingLockExclusive).is_ok() {
            got = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let pid = recorded_pid(&file);
    if !got {
        return Err(Error::InUse {
            what: "segment",
            name: name.to_string(),
            pid,
        });
    }
    // We hold the dead file's flock, so no other producer can be removing it;
    // make sure the path still names the file we inspected before unlinking.
    let ours = rustix::fs::fstat(&file)?;
    let there = rustix::fs::statat(rustix::fs::CWD, path, rustix::fs::AtFlags::SYMLINK_NOFOLLOW);
    if let Ok(there) = there {
        if (there.st_dev, there.st_ino) == (ours.st_dev, ours.st_ino) {
            std::fs::remove_file(path).context(|| format!("remove stale {}", path.display()))?;
        }
    }
    Ok(pid)
}

/// A raw_sync error string ends in ": <errno>".
fn errno_of(message: &str) -> Option<i32> {
    message.rsplit(':').next()?.trim().parse().ok()
}

/// Checks the part of a pthread mutex that `pthread_mutex_init` sets and no
/// lock operation changes (glibc's `__kind` word at offset 16), against a
/// freshly initialised one. Catches a header page of garbage before it reaches
/// `pthread_mutex_timedlock`.
fn mutex_looks_initialised(slot: &Slot) -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
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
    use crate::layout::Kind;

    fn name(tag: &str) -> Name {
        Name::new(&format!("unit-{tag}-{}", std::process::id())).unwrap()
    }

    #[test]
    fn raw_sync_errors_carry_their_errno() {
        assert_eq!(errno_of("Failed to acquire mutex : 110"), Some(110));
        assert_eq!(errno_of("nothing"), None);
    }

    #[test]
    fn create_publish_open_and_drop_removes_the_file() {
        let name = name("cycle");
        let seg = Segment::create(&name, Geometry::new(Kind::Transfer, 5000, 2)).unwrap();
        assert!(!name.shm_path().exists(), "visible before publish");
        assert_eq!(seg.publish().unwrap(), Published::Fresh);
        let mode = std::fs::metadata(name.shm_path()).unwrap().mode();
        assert_eq!(mode & 0o777, 0o600);
        let other = Segment::open(&name).unwrap();
        assert_eq!(other.geometry(), seg.geometry());
        assert_eq!(other.producer_pid(), std::process::id());
        assert!(other.owner_alive());
        drop(other);
        drop(seg);
        assert!(!name.shm_path().exists(), "left behind");
    }

    #[test]
    fn a_second_publisher_is_refused_while_the_first_lives() {
        let name = name("twice");
        let first = Segment::create(&name, Geometry::new(Kind::Transfer, 10, 1)).unwrap();
        first.publish().unwrap();
        let second = Segment::create(&name, Geometry::new(Kind::Transfer, 10, 1)).unwrap();
        // Our own flock is per open file, so the second open can't take it.
        let err = second.publish().unwrap_err();
        assert!(
            matches!(err, Error::InUse { pid, .. } if pid == std::process::id()),
            "{err}"
        );
        drop(second);
        assert!(Segment::open(&name).is_ok(), "the first was disturbed");
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
        assert_eq!(saw, Some(std::process::id()));
        drop(guard);
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
