//! Unix socket files: safe publication, liveness probes and stale removal.
//!
//! The Unix socket is bound under a temporary name, made mode 0600, and
//! renamed into place with `RENAME_NOREPLACE`, while holding a `flock` on the
//! socket directory so that two producers replacing a stale socket cannot
//! remove each other's. A stale socket (nobody listening) is removed; a live
//! one is never touched. The listener removes its file when dropped.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::Duration;

use rustix::fs::{flock, FlockOperation};
use rustix::net::sockopt;

use super::connection::{set_slices, Endpoint, Listener};
use crate::error::{Error, IoContext, Result};
use crate::name::{socket_dir, Name, TEMP_PREFIX};
use crate::wait::Deadline;

/// Binds a Unix listener at `path` as described in the module docs.
pub(super) fn bind_unix(path: &Path, name: &Name) -> Result<Listener> {
    let dir = path.parent().map_or_else(socket_dir, Path::to_path_buf);
    let temp = dir.join(format!("{}.sock", name.temp_file_name()));
    let listener = UnixListener::bind(&temp).context(|| format!("bind {}", temp.display()))?;
    let mut out = Listener {
        fd: OwnedFd::from(listener),
        endpoint: Endpoint::Unix(path.to_owned()),
        file: Some(temp.clone()),
    };
    std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(0o600))
        .context(|| format!("chmod {}", temp.display()))?;
    set_slices(&out.fd)?;

    // Serialise publication among producers sharing the directory.
    let _dir_lock = lock_dir(&dir)?;
    for _ in 0..2 {
        match rustix::fs::renameat_with(
            rustix::fs::CWD,
            &temp,
            rustix::fs::CWD,
            path,
            rustix::fs::RenameFlags::NOREPLACE,
        ) {
            Ok(()) => {
                out.file = Some(path.to_owned());
                return Ok(out);
            }
            Err(rustix::io::Errno::EXIST) => match probe(path)? {
                Probe::Stale => std::fs::remove_file(path)
                    .context(|| format!("remove stale {}", path.display()))?,
                Probe::Listening { pid } => {
                    return Err(Error::InUse {
                        what: "socket",
                        name: name.to_string(),
                        pid,
                    })
                }
            },
            Err(e) => return Err(Error::io(format!("publish {}", path.display()), e.into())),
        }
    }
    Err(Error::InUse {
        what: "socket",
        name: name.to_string(),
        pid: None,
    })
}

/// Takes the socket directory's `flock` (waiting at most 5 s): producers hold
/// it while publishing, `producer --clean` while removing.
fn lock_dir(dir: &Path) -> Result<File> {
    let dir_file = File::open(dir).context(|| format!("open {}", dir.display()))?;
    let deadline = Deadline::after(Duration::from_secs(5));
    let locked = crate::wait::poll(&deadline, Duration::from_millis(2), || {
        Ok(flock(&dir_file, FlockOperation::NonBlockingLockExclusive)
            .is_ok()
            .then_some(()))
    })?;
    match locked {
        Some(()) => Ok(dir_file),
        None => Err(Error::Io {
            what: format!("lock {}", dir.display()),
            source: io::Error::other("another producer kept it locked for 5 s"),
        }),
    }
}

/// What is at a socket path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// A process listens there.
    Listening {
        /// The listener's pid, from `SO_PEERCRED` (`None` if the kernel does
        /// not say).
        pid: Option<u32>,
    },
    /// A socket file nobody listens on: left by a dead producer.
    Stale,
}

/// Refuses a path that is a symlink, not a socket, or another user's.
pub(super) fn check_socket_file(path: &Path) -> Result<()> {
    let meta = std::fs::symlink_metadata(path).context(|| format!("stat {}", path.display()))?;
    let refuse = |reason: String| Error::Refused {
        path: path.to_owned(),
        reason,
    };
    if meta.file_type().is_symlink() {
        return Err(refuse("it is a symbolic link".into()));
    }
    if !meta.file_type().is_socket() {
        return Err(refuse("it is not a socket".into()));
    }
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        return Err(refuse(format!(
            "it belongs to uid {}, not to this user ({me})",
            meta.uid()
        )));
    }
    Ok(())
}

/// Looks at the socket file at `path`: whether anyone listens on it.
///
/// The probe connects and hangs up at once; a producer ignores a connection
/// that does not say hello.
///
/// # Errors
/// [`Error::Refused`] for a symlink, a non-socket or another user's file; an
/// I/O error if the path cannot be examined.
pub fn probe(path: &Path) -> Result<Probe> {
    check_socket_file(path)?;
    match UnixStream::connect(path) {
        Ok(probe) => Ok(Probe::Listening {
            pid: sockopt::socket_peercred(probe.as_fd())
                .ok()
                .map(|cred| cred.pid.as_raw_nonzero().get() as u32),
        }),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => Ok(Probe::Stale),
        Err(e) => Err(Error::io(format!("probe {}", path.display()), e)),
    }
}

/// Removes the socket file at `path` if nobody listens on it, holding the
/// directory's lock so that no producer publishes there meanwhile. Returns
/// whether it removed it.
///
/// # Errors
/// As [`probe`], or if the directory cannot be locked.
pub fn remove_stale(path: &Path) -> Result<bool> {
    let dir = path.parent().map_or_else(socket_dir, Path::to_path_buf);
    let _dir_lock = lock_dir(&dir)?;
    match probe(path)? {
        Probe::Stale => Ok(std::fs::remove_file(path).is_ok()),
        Probe::Listening { .. } => Ok(false),
    }
}

/// Whether a file name in the socket directory is one of ours.
pub fn is_socket_file(file_name: &str) -> bool {
    (file_name.starts_with(crate::name::PUBLISHED_PREFIX) || file_name.starts_with(TEMP_PREFIX))
        && file_name.ends_with(".sock")
}
