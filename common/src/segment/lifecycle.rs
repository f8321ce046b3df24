//! A segment's life: create, publish, open, wait for it, and remove it on drop.
//!
//! It is created unnamed (`O_TMPFILE` in `/dev/shm`), locked and initialised,
//! then given its real name with `linkat`; others open it by that name, and
//! its owner removes the name when it drops the segment.
//!
//! Nothing of a segment is visible before it is locked and initialised, so no
//! other process (a consumer, `producer --clean`) can open a file whose
//! creator has not yet taken its `flock`, and a crash leaves no temporary file
//! behind. Where `O_TMPFILE` is unsupported, the segment is built under a
//! temporary name (`p1p2-tmp.PID.N.NAME`, `O_CREAT | O_EXCL`) and renamed
//! into place with `renameat2(RENAME_NOREPLACE)`; there, a temporary file can
//! be seen between its creation and its `flock`.

use std::cell::Cell;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::OnceLock;
use std::time::Duration;

use memmap2::{MmapOptions, MmapRaw};
use rustix::fs::{flock, FlockOperation};

use super::files::{open_existing, owner_alive, remove_if_stale, Stale};
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
    /// The temporary name of a segment built without `O_TMPFILE`; `None` for
    /// an unnamed one, which vanishes with its descriptor if never published.
    temp_path: Option<PathBuf>,
    published: Cell<bool>,
}

impl Ownership {
    /// Removes the temporary file, if there is one (an unpublished segment).
    fn discard(&self) {
        if let Some(temp) = &self.temp_path {
            let _ = std::fs::remove_file(temp);
        }
    }
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

/// Whether segments are created unnamed: `O_TMPFILE` works in `/dev/shm` and
/// `/proc/self/fd` is there to name the file with `linkat`. Asked once.
fn unnamed_supported() -> bool {
    static SUPPORTED: OnceLock<bool> = OnceLock::new();
    *SUPPORTED.get_or_init(|| {
        if !Path::new("/proc/self/fd").is_dir() {
            return false;
        }
        match create_unnamed() {
            Ok(_) => true,
            // EISDIR: a kernel that predates O_TMPFILE sees only O_DIRECTORY.
            // Other errors (a full /dev/shm...) are reported by the real
            // creation.
            Err(e) => !matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::EISDIR)),
        }
    })
}

/// An unnamed, mode-0600 file in `/dev/shm`.
fn create_unnamed() -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_TMPFILE | libc::O_CLOEXEC)
        .open(SHM_DIR)
}

impl Segment {
    /// Creates a segment for `name`, unnamed (or, where `O_TMPFILE` is
    /// unsupported, under a temporary file name). Nobody can open it until
    /// [`Segment::publish`].
    ///
    /// # Errors
    /// If the file cannot be created, sized (e.g. `/dev/shm` is full) or mapped.
    pub fn create(name: &Name, geometry: Geometry) -> Result<Segment> {
        Segment::create_as(name, geometry, unnamed_supported())
    }

    /// [`Segment::create`], unnamed or under a temporary name.
    fn create_as(name: &Name, geometry: Geometry, unnamed: bool) -> Result<Segment> {
        let len = geometry
            .file_len()
            .filter(|&len| len <= MAX_SEGMENT_BYTES)
            .ok_or_else(|| Error::Usage(format!("a segment of {geometry:?} is too large")))?;
        let (file, owner) = if unnamed {
            let file = create_unnamed()
                .context(|| format!("create an unnamed file in {SHM_DIR} for segment {name}"))?;
            let owner = Ownership {
                temp_path: None,
                published: Cell::new(false),
            };
            (file, owner)
        } else {
            let temp_path = Path::new(SHM_DIR).join(name.temp_file_name());
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(&temp_path)
                .context(|| format!("create {}", temp_path.display()))?;
            let owner = Ownership {
                temp_path: Some(temp_path),
                published: Cell::new(false),
            };
            (file, owner)
        };
        // From here on, dropping `segment` (or `owner`, on an early error)
        // removes the temporary file, if there is one.
        let path = owner.temp_path.as_ref().map_or_else(
            || format!("the new segment {name}"),
            |temp| temp.display().to_string(),
        );
        // Nobody else can open an unnamed file, so this cannot fail with
        // EWOULDBLOCK. A temporary name can be seen: a `producer --clean`
        // that takes its flock first makes this fail, and one that removes
        // it makes the publication fail, each with a clear error.
        if let Err(e) = flock(&file, FlockOperation::NonBlockingLockExclusive) {
            owner.discard();
            return Err(Error::io(format!("flock {path}"), e.into()));
        }
        if let Err(errno) =
            rustix::fs::fallocate(&file, rustix::fs::FallocateFlags::empty(), 0, len)
        {
            owner.discard();
            return Err(Error::io(
                format!("reserve {len} bytes for {path} (is {SHM_DIR} full?)"),
                errno.into(),
            ));
        }
        let map = match MmapOptions::new().len(len as usize).map_raw(&file) {
            Ok(map) => map,
            Err(e) => {
                owner.discard();
                return Err(Error::io(format!("map {path}"), e));
            }
        };
        let sigbus = match guard(&map) {
            Ok(guard) => guard,
            Err(e) => {
                owner.discard();
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
            // no other process uses them yet: the file has no name (or a
            // private temporary one) and its magic is not written. This is
            // their single, first initialisation.
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

    /// Gives the created file its real name: `linkat` of the unnamed file
    /// (through `/proc/self/fd`), or the rename of the temporary one. Either
    /// fails with EEXIST while the name is taken, and never replaces it.
    fn link_into_place(&self, owner: &Ownership, path: &Path) -> rustix::io::Result<()> {
        match &owner.temp_path {
            None => rustix::fs::linkat(
                rustix::fs::CWD,
                format!("/proc/self/fd/{}", self.file.as_raw_fd()),
                rustix::fs::CWD,
                path,
                rustix::fs::AtFlags::SYMLINK_FOLLOW,
            ),
            Some(temp) => rustix::fs::renameat_with(
                rustix::fs::CWD,
                temp,
                rustix::fs::CWD,
                path,
                rustix::fs::RenameFlags::NOREPLACE,
            ),
        }
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
            match self.link_into_place(owner, &path) {
                Ok(()) => {
                    owner.published.set(true);
                    return Ok(match replaced {
                        Some(pid) => Published::ReplacedStale { pid },
                        None => Published::Fresh,
                    });
                }
                Err(rustix::io::Errno::EXIST) => match remove_if_stale(&path)? {
                    Stale::Removed { pid } => replaced = Some(pid),
                    Stale::Alive { pid } => {
                        return Err(Error::InUse {
                            what: "segment",
                            name: self.name.to_string(),
                            pid,
                        })
                    }
                    // Someone else moved first; look again.
                    Stale::Vanished | Stale::Replaced => {}
                },
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
    ///
    /// A process that dies hands over its robust mutexes before the kernel
    /// closes its files, so its flock may outlive it by a moment: when the
    /// caller knows the creator died, `patience` bounds how long to wait for
    /// that flock to go.
    pub fn remove_stale(&self, patience: Duration) -> bool {
        if self.owner.is_some() {
            return false;
        }
        let deadline = Deadline::after(patience);
        while owner_alive(&self.file) {
            let Some(left) = deadline.remaining() else {
                return false;
            };
            std::thread::sleep(left.min(Duration::from_millis(5)));
        }
        matches!(
            remove_if_stale(&self.name.shm_path()),
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
            owner.discard();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;
    use crate::layout::Kind;

    use crate::name::for_unit_test as name;

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

    /// The files in /dev/shm that mention `name`.
    fn files_of(name: &Name) -> Vec<String> {
        std::fs::read_dir(SHM_DIR)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|f| f.ends_with(&format!(".{name}")))
            .collect()
    }

    #[test]
    fn nothing_of_a_segment_is_visible_before_it_is_published() {
        let name = name("unnamed");
        assert!(unnamed_supported(), "O_TMPFILE works in {SHM_DIR} here");
        let seg = Segment::create(&name, Geometry::new(Kind::Transfer, 10, 1)).unwrap();
        // No temporary file that `producer --clean` (or anyone) could see
        // before its creator locked it.
        assert_eq!(files_of(&name), Vec::<String>::new());
        seg.publish().unwrap();
        assert_eq!(files_of(&name), [name.shm_file_name()]);
        // Published already locked: its flock is held.
        let other = Segment::open(&name).unwrap();
        assert!(other.owner_alive());
        drop(other);
        // An unpublished segment leaves nothing behind either.
        let unpublished = self::name("unpublished");
        drop(Segment::create(&unpublished, Geometry::new(Kind::Transfer, 10, 1)).unwrap());
        drop(seg);
        assert_eq!(files_of(&name), Vec::<String>::new());
        assert_eq!(files_of(&unpublished), Vec::<String>::new());
    }

    #[test]
    fn without_o_tmpfile_a_temporary_name_is_published_and_cleaned_up() {
        let name = name("fallback");
        let seg = Segment::create_as(&name, Geometry::new(Kind::Transfer, 10, 1), false).unwrap();
        let temp = files_of(&name);
        assert!(
            temp.len() == 1 && temp[0].starts_with(crate::name::TEMP_PREFIX),
            "{temp:?}"
        );
        let first = Segment::create(&name, Geometry::new(Kind::Transfer, 10, 1)).unwrap();
        first.publish().unwrap();
        // The name is taken by a live segment: refused, the temporary file kept.
        assert!(matches!(seg.publish(), Err(Error::InUse { .. })));
        assert_eq!(files_of(&name).len(), 2);
        drop(first);
        assert_eq!(seg.publish().unwrap(), Published::Fresh);
        assert_eq!(files_of(&name), [name.shm_file_name()]);
        assert!(Segment::open(&name).unwrap().owner_alive());
        drop(seg);
        assert_eq!(files_of(&name), Vec::<String>::new());
        // Dropped unpublished, it removes its temporary file.
        drop(Segment::create_as(&name, Geometry::new(Kind::Transfer, 10, 1), false).unwrap());
        assert_eq!(files_of(&name), Vec::<String>::new());
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
