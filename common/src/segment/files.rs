//! Segment files as files: safe opening, owner probing, recorded pid, stale removal.
//!
//! These work on the file alone, without mapping it, so `producer --list` and
//! `--clean` can judge a segment whose header is broken.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use rustix::fs::{flock, FlockOperation};

use super::is_not_found;
use crate::error::{Error, IoContext, Result};
use crate::layout::{Header, RawHeader, SLOTS_OFFSET};

/// Where the header records its creator's start time.
const PRODUCER_START_OFFSET: u64 = std::mem::offset_of!(Header, producer_start) as u64;

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

/// Reads the recorded creator pid from a segment file (`None` if the header
/// is unreadable or records none).
pub(crate) fn recorded_pid(file: &File) -> Option<u32> {
    let mut bytes = [0u8; SLOTS_OFFSET];
    file.read_exact_at(&mut bytes, 0).ok()?;
    RawHeader::from_bytes(&bytes)
        .map(|h| h.producer_pid)
        .filter(|&pid| pid != 0)
}

/// Takes the exclusive flock of a segment file; `false` if its creator lives.
///
/// Others hold a dead creator's flock for a moment too: a consumer or
/// `producer --list` probing liveness (shared), a producer or
/// `producer --clean` removing it (exclusive). So the lock is tried a few
/// times; if it stays taken while the creator recorded in the header is dead
/// (pid and start time), it is someone else's brief hold and the wait goes on,
/// for at most 2 s.
fn lock_unless_alive(file: &File) -> bool {
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut attempt = 0;
    loop {
        if flock(file, FlockOperation::NonBlockingLockExclusive).is_ok() {
            return true;
        }
        attempt += 1;
        if (attempt >= 5 && creator_alive(file)) || Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether the creator recorded in a segment file's header still runs
/// (`true` when the header records none: then only the flock can tell).
fn creator_alive(file: &File) -> bool {
    let mut start = [0u8; 8];
    match (
        recorded_pid(file),
        file.read_exact_at(&mut start, PRODUCER_START_OFFSET),
    ) {
        (Some(pid), Ok(())) => crate::liveness::is_alive(pid, u64::from_le_bytes(start)),
        _ => true,
    }
}

/// What [`remove_if_stale`] found at the path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stale {
    /// Nothing any more: the file vanished meanwhile.
    Vanished,
    /// Its creator lives (holds the file's flock); nothing was removed.
    Alive {
        /// The creator's pid, as its header records it.
        pid: Option<u32>,
    },
    /// The file was stale, but by the time its flock was ours the path named
    /// another file (a new producer had replaced it); nothing was removed.
    Replaced,
    /// A segment whose creator is dead; it was removed.
    Removed {
        /// The dead creator's pid, as its header recorded it.
        pid: Option<u32>,
    },
}

/// Removes the file at `path` if its creator is dead: the one removal of a
/// stale segment, for a producer replacing it, a consumer cleaning up after a
/// killed producer, and `producer --clean`.
///
/// # Errors
/// The file's errors as in [`open_existing`], or a failed `unlink`.
pub(crate) fn remove_if_stale(path: &Path) -> Result<Stale> {
    remove_if_stale_then(path, || ())
}

/// [`remove_if_stale`], calling `locked` once the stale file's flock is held
/// (tests replace the file there).
fn remove_if_stale_then(path: &Path, locked: impl FnOnce()) -> Result<Stale> {
    let file = match open_existing(path, false) {
        Ok(file) => file,
        // Vanished meanwhile: a producer simply retries publishing.
        Err(e) if is_not_found(&e) => return Ok(Stale::Vanished),
        Err(e) => return Err(e),
    };
    if !lock_unless_alive(&file) {
        return Ok(Stale::Alive {
            pid: recorded_pid(&file),
        });
    }
    let pid = recorded_pid(&file);
    locked();
    // The file we opened may no longer be the one at `path`: between our
    // open and our flock, a producer may have taken the flock itself,
    // removed this stale file and published its own segment under the name.
    // Unlink only if the path still names the inode we locked.
    //
    // Nobody can swap the file between this check and the unlink: removing
    // the file at `path` takes its flock (this function) or is done by its
    // live creator (who holds the flock for life), and we hold that flock
    // now; publishing under `path` needs the name free (`linkat` and
    // `renameat2(RENAME_NOREPLACE)` fail with EEXIST while it is taken). So
    // until our unlink, `path` names the file we checked.
    let ours = rustix::fs::fstat(&file).context(|| format!("stat {}", path.display()))?;
    let there =
        match rustix::fs::statat(rustix::fs::CWD, path, rustix::fs::AtFlags::SYMLINK_NOFOLLOW) {
            Ok(there) => there,
            Err(rustix::io::Errno::NOENT) => return Ok(Stale::Vanished),
            Err(e) => return Err(Error::io(format!("stat {}", path.display()), e.into())),
        };
    if (there.st_dev, there.st_ino) != (ours.st_dev, ours.st_ino) {
        return Ok(Stale::Replaced);
    }
    std::fs::remove_file(path).context(|| format!("remove stale {}", path.display()))?;
    Ok(Stale::Removed { pid })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file at a fresh `/dev/shm/p1p2.unit-...` path holding `bytes`.
    fn file_at(tag: &str, bytes: &[u8]) -> std::path::PathBuf {
        let path = Path::new(crate::name::SHM_DIR)
            .join(format!("p1p2.unit-files-{tag}-{}", std::process::id()));
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn a_stale_file_replaced_while_its_lock_is_taken_survives() {
        let path = file_at("replaced", b"stale");
        // A new producer's file, put in place after the removal locked the
        // stale one and before it unlinked the path.
        let fresh = file_at("replacement", b"fresh");
        let found = remove_if_stale_then(&path, || std::fs::rename(&fresh, &path).unwrap());
        assert_eq!(found.unwrap(), Stale::Replaced);
        assert_eq!(
            std::fs::read(&path).unwrap(),
            b"fresh",
            "the replacement was removed"
        );
        // Nobody holds the replacement's flock either: a second call removes it.
        assert_eq!(
            remove_if_stale(&path).unwrap(),
            Stale::Removed { pid: None }
        );
        assert!(!path.exists());
    }

    #[test]
    fn a_dead_creators_file_held_briefly_by_someone_else_is_still_removed() {
        // A creator that has exited: its pid is recorded, it runs no more.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let mut header = vec![0u8; SLOTS_OFFSET];
        header[56..60].copy_from_slice(&dead.to_le_bytes());
        let path = file_at("held", &header);
        // Someone else (a remover, a prober) holds its flock for a while,
        // longer than the few quick retries.
        let other = File::open(&path).unwrap();
        flock(&other, FlockOperation::NonBlockingLockExclusive).unwrap();
        let holder = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            drop(other);
        });
        assert_eq!(
            remove_if_stale(&path).unwrap(),
            Stale::Removed { pid: Some(dead) }
        );
        holder.join().unwrap();
        assert!(!path.exists());
    }

    #[test]
    fn a_locked_file_is_alive_and_kept_and_a_missing_one_vanished() {
        let path = file_at("alive", b"live");
        let owner = File::open(&path).unwrap();
        flock(&owner, FlockOperation::NonBlockingLockExclusive).unwrap();
        assert_eq!(remove_if_stale(&path).unwrap(), Stale::Alive { pid: None });
        assert!(path.exists(), "a live file was removed");
        std::fs::remove_file(&path).unwrap();
        assert_eq!(remove_if_stale(&path).unwrap(), Stale::Vanished);
    }
}
