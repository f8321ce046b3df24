//! Unix socket files: safe publication, liveness probes and stale removal.
//!
//! The Unix socket is bound under a temporary name with mode 0600 from the
//! moment the file exists (see [`bind_private`]), and renamed into place with
//! `RENAME_NOREPLACE`, all while holding a `flock` on the socket directory, so
//! that two producers replacing a stale socket cannot remove each other's and
//! `producer --clean` (which removes only under that lock) never judges a
//! temporary socket that is not listening yet. A stale socket (nobody
//! listening) is removed; a live one is never touched. The listener removes
//! its file when dropped.
//!
//! Who is at the other end is checked with `SO_PEERCRED` on both sides
//! ([`peer_of_this_user`]): the producer ignores a connection from another
//! user and keeps listening, and the consumer refuses a listener of another
//! user.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use rustix::fs::{flock, FlockOperation, Mode};
use rustix::net::sockopt;

use super::connection::{set_slices, Endpoint, Listener};
use crate::error::{Error, IoContext, Result};
use crate::name::{socket_dir, Name, TEMP_PREFIX};
use crate::wait::Deadline;

/// Binds a Unix listener at `path` as described in the module docs.
pub(super) fn bind_unix(path: &Path, name: &Name) -> Result<Listener> {
    let dir = path.parent().map_or_else(socket_dir, Path::to_path_buf);
    // Serialise publication among producers sharing the directory.
    let _dir_lock = lock_dir(&dir)?;
    let temp = dir.join(format!("{}.sock", name.temp_file_name()));
    let listener = bind_private(&temp).context(|| format!("bind {}", temp.display()))?;
    let mut out = Listener {
        fd: OwnedFd::from(listener),
        endpoint: Endpoint::Unix(path.to_owned()),
        file: Some(temp.clone()),
    };
    crate::failpoint::hit("producer:bound");
    set_slices(&out.fd)?;
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

/// Binds and listens on a Unix socket at `path` whose file has mode 0600 from
/// the moment it exists.
///
/// `bind(2)` creates the file with mode 0777 minus the umask; a `chmod`
/// afterwards would leave a moment in which another user could connect. So
/// the umask is 0177 just around the bind (and the `listen` that
/// `UnixListener::bind` does with it), then restored.
///
/// The umask is process-wide, not per thread: a file another thread created
/// meanwhile would get at most mode 0600, and two threads swapping it at once
/// could leave the wrong one behind. The second is prevented by a lock around
/// every umask change here. The first cannot happen in this project: the
/// producer and the benchmark's peers bind before they start any thread (the
/// waiting spinner starts after), and nothing else in them creates files
/// concurrently. This was preferred to binding inside a private 0700
/// directory, which would leave a directory behind after a crash whose
/// liveness `producer --clean` could not judge safely.
fn bind_private(path: &Path) -> io::Result<UnixListener> {
    static UMASK: Mutex<()> = Mutex::new(());
    let _only_us = UMASK.lock().unwrap_or_else(PoisonError::into_inner);
    let found = rustix::process::umask(Mode::from_raw_mode(0o177));
    let bound = UnixListener::bind(path);
    rustix::process::umask(found);
    bound
}

/// Whether the process at the other end of a Unix socket runs as this
/// process's effective user (`SO_PEERCRED`, the credentials it had when it
/// connected or listened). `Err` names the peer when it is someone else.
pub(super) fn peer_of_this_user(fd: BorrowedFd<'_>) -> std::result::Result<(), String> {
    let me = rustix::process::geteuid().as_raw();
    match sockopt::socket_peercred(fd) {
        Ok(cred) if cred.uid.as_raw() == me => Ok(()),
        Ok(cred) => Err(format!(
            "pid {} runs as uid {}, not as this user ({me})",
            cred.pid.as_raw_nonzero(),
            cred.uid.as_raw()
        )),
        Err(e) => Err(format!("its credentials are unknown ({e})")),
    }
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
