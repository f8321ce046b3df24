//! Segment files as files: safe opening, owner probing, recorded pid, stale removal.
//!
//! These work on the file alone, without mapping it, so `producer --list` and
//! `--clean` can judge a segment whose header is broken.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::time::Duration;

use rustix::fs::{flock, FlockOperation};

use super::is_not_found;
use crate::error::{Error, IoContext, Result};
use crate::layout::{RawHeader, SLOTS_OFFSET};
use crate::name::Name;

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

/// What [`remove_if_stale`] found at the path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Stale {
    /// Nothing any more: the file vanished meanwhile.
    Vanished,
    /// A segment whose creator is dead; it was removed, unless the path
    /// already named another file.
    Removed {
        /// The dead creator's pid, as its header recorded it.
        pid: Option<u32>,
    },
}

/// Removes the file at `path` if its creator is dead.
///
/// # Errors
/// [`Error::InUse`] if its creator lives; the file's errors as in
/// [`open_existing`].
pub(super) fn remove_if_stale(name: &Name, path: &Path) -> Result<Stale> {
    let file = match open_existing(path, false) {
        Ok(file) => file,
        // Vanished meanwhile: the caller simply retries the rename.
        Err(e) if is_not_found(&e) => return Ok(Stale::Vanished),
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
    Ok(Stale::Removed { pid })
}
