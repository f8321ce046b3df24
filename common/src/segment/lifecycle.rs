//! A segment's life: create, publish, open, wait for it, and remove it on drop.
//!
//! It is created under a temporary name, published under its real one, opened
//! by others, and removed when its owner drops it.

use std::cell::Cell;
use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use memmap2::{MmapOptions, MmapRaw};
use rustix::fs::{flock, FlockOperation};

use super::files::{open_existing, remove_if_stale, Stale};
use super::mutex::RobustMutex;
use super::sigbus::Guard;
use super::{is_not_found, Segment};
use crate::error::{Error, IoContext, Result};
use crate::layout::{Geometry, HEADER_SIZE, MAGIC, MAX_SEGMENT_BYTES};
use crate::liveness::Ident;
use crate::name::{Name, SHM_DIR};
use crate::wait::Deadline;

/// What the creator must clean up.
pub(super) struct Ownership {
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
        /// The dead creator's pid as its header recorded it (`None` if
        /// unreadable or not recorded).
        pid: Option<u32>,
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
        let sigbus = match guard(&map) {
            Ok(guard) => guard,
            Err(e) => {
                let _ = std::fs::remove_file(&owner.temp_path);
                return Err(Error::io(format!("guard the mapping of {path}"), e));
            }
        };
        let me = Ident::me();
        let segment = Segment {
            name: name.clone(),
            file,
            sigbus,
            map,
            geometry,
            owner: Some(owner),
            me: me.to_word(),
        };
        segment.header().init(&geometry, me.pid, me.start);
        for slot in 0..geometry.slot_count as usize {
            // SAFETY: the mutex bytes lie inside our mapping, 8-aligned (the
            // slot block is at a multiple of 128 in a page-aligned map), and
            // no other process can see them yet: the file has a private
            // temporary name and its magic is not written. This is their
            // single, first initialisation.
            unsafe { RobustMutex::init(&segment.slot(slot).lock) }.map_err(|e| Error::Lock {
                name: name.to_string(),
                reason: format!("slot {slot}'s lock: {e}"),
            })?;
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
                    if let Stale::Removed { pid } = remove_if_stale(&self.name, &path)? {
                        replaced = Some(pid);
                    }
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
        let sigbus = guard(&map).context(|| format!("guard the mapping of {}", path.display()))?;
        let mut segment = Segment {
            name: name.clone(),
            file,
            sigbus,
            map,
            geometry: Geometry::new(crate::layout::Kind::Transfer, 0, 1),
            owner: None,
            me: Ident::me().to_word(),
        };
        // The file may have shrunk since `metadata()`; check again right before
        // the first access, so a truncated file is named as such rather than
        // read as a zeroed header (the SIGBUS guard's zero pages).
        segment.check_size(HEADER_SIZE as u64)?;
        segment.geometry = segment.header().snapshot().check(file_len).map_err(bad)?;
        for slot in 0..segment.geometry.slot_count as usize {
            // SAFETY: the magic was checked with Acquire ordering, so the
            // creator's initialisation of these bytes happened before; they
            // lie inside the mapping (slot < slot_count <= MAX_SLOTS, all
            // within the header page whose presence `check_size` confirmed)
            // and are 8-aligned. `open` checks that they hold a robust,
            // process-shared mutex.
            if let Err(e) = unsafe { RobustMutex::open(&segment.slot(slot).lock) } {
                return Err(bad(format!("slot {slot}'s lock: {e}")));
            }
        }
        Ok(segment)
    }

    /// Removes the segment's file if its creator is dead (a consumer cleaning
    /// up after a producer that was killed); whether a stale file was
    /// removed. A live producer's file is never touched: the removal holds
    /// the dead creator's flock and checks that the path still names the
    /// file it locked.
    pub fn remove_stale(&self) -> bool {
        self.owner.is_none()
            && matches!(
                remove_if_stale(&self.name, &self.name.shm_path()),
                Ok(Stale::Removed { .. })
            )
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
}

/// Registers the whole of `map` with the SIGBUS guard.
fn guard(map: &MmapRaw) -> io::Result<Guard> {
    // SAFETY: the range is exactly one mapping of the segment's file, made
    // by the caller for a `Segment` that stores the guard in a field
    // declared before the map, so the guard is dropped (unregistered)
    // before the mapping is unmapped. Everything read through the mapping
    // is either atomics (header, slots) or a payload that is checked with
    // `Segment::check_intact` after use, so pages that turn into zeros
    // after a truncation are reported, not trusted. Segments never
    // overlap: each has its own `mmap`.
    unsafe { Guard::register(map.as_mut_ptr(), map.len()) }
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

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;
    use crate::layout::Kind;

    fn name(tag: &str) -> Name {
        Name::new(&format!("unit-{tag}-{}", std::process::id())).unwrap()
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
            matches!(err, Error::InUse { pid, .. } if pid == Some(std::process::id())),
            "{err}"
        );
        drop(second);
        assert!(Segment::open(&name).is_ok(), "the first was disturbed");
    }
}
