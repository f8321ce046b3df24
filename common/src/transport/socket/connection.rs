//! Socket connections: endpoints, listeners, and bounded connection I/O.
//!
//! Where to listen is an [`Endpoint`], listening a [`Listener`], and reading
//! and writing a connection a [`Conn`].
//!
//! The I/O is done with `read(2)`/`write(2)` on the socket's descriptor, not
//! with `recv`/`send`, so the kernel's `/proc/self/io` counters witness every
//! byte (see [`crate::ledger`]). Every read and write waits in slices of
//! [`SLICE`] (socket timeouts), so signals are noticed, and gives up when no
//! byte moved for the caller's stall limit.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use rustix::net::sockopt;

use super::paths::{bind_unix, check_socket_file, peer_of_this_user};
use super::protocol;
use crate::error::{Error, IoContext, Result, Role};
use crate::name::{socket_dir, Name};
use crate::signals;
use crate::story::{thousands, Story};
use crate::transport::TransportKind;
use crate::wait::{Deadline, SLICE};

/// Socket buffer size asked for (the kernel may grant less).
const SOCKET_BUFFER: usize = 4 << 20;

/// Where a socket transport listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// A Unix domain socket at this path.
    Unix(PathBuf),
    /// A TCP address.
    Tcp(SocketAddr),
}

impl Endpoint {
    /// The endpoint for `kind` (Unix: the name's socket path).
    pub fn new(kind: TransportKind, name: &Name, addr: SocketAddr) -> Endpoint {
        match kind {
            TransportKind::Tcp => Endpoint::Tcp(addr),
            _ => Endpoint::Unix(name.socket_path()),
        }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Unix(path) => write!(f, "{}", path.display()),
            Endpoint::Tcp(addr) => write!(f, "tcp {addr}"),
        }
    }
}

/// A listening socket; a Unix one removes its file when dropped.
pub struct Listener {
    pub(super) fd: OwnedFd,
    pub(super) endpoint: Endpoint,
    /// The socket file this listener removes when dropped.
    pub(super) file: Option<PathBuf>,
}

impl Listener {
    /// Binds and listens on `endpoint`.
    ///
    /// # Errors
    /// [`Error::InUse`] if a live producer listens there already,
    /// [`Error::Refused`] for a path that is not ours to replace, or the
    /// system's error.
    pub fn bind(endpoint: &Endpoint, name: &Name) -> Result<Listener> {
        match endpoint {
            Endpoint::Tcp(addr) => {
                let listener = TcpListener::bind(addr).map_err(|e| {
                    if e.kind() == io::ErrorKind::AddrInUse {
                        Error::InUse {
                            what: "address",
                            name: addr.to_string(),
                            pid: None,
                        }
                    } else {
                        Error::io(format!("listen on {addr}"), e)
                    }
                })?;
                let fd = OwnedFd::from(listener);
                set_slices(&fd)?;
                Ok(Listener {
                    fd,
                    endpoint: endpoint.clone(),
                    file: None,
                })
            }
            Endpoint::Unix(path) => bind_unix(path, name),
        }
    }

    /// Waits for a consumer that says hello; `Ok(None)` at the deadline.
    /// Returns the connection and the consumer's pid.
    ///
    /// On a Unix socket, a connection from a process of another user
    /// (`SO_PEERCRED`) is closed at once with one line in the story, and the
    /// wait goes on: a stranger who can reach the socket must not be able to
    /// end the producer's wait, just as a connection that does not say hello
    /// cannot.
    ///
    /// # Errors
    /// [`Error::Interrupted`] or the system's error.
    pub fn accept(&self, deadline: &Deadline, story: &Story) -> Result<Option<(Conn, u32)>> {
        loop {
            signals::check()?;
            if deadline.remaining().is_none() {
                return Ok(None);
            }
            let fd = match rustix::net::accept_with(&self.fd, rustix::net::SocketFlags::CLOEXEC) {
                Ok(fd) => fd,
                Err(e) if retryable(e.into()) => continue,
                Err(e) => return Err(Error::io(format!("accept on {}", self.endpoint), e.into())),
            };
            match self.endpoint {
                Endpoint::Tcp(_) => {
                    // As the connecting side does: small messages go out at once.
                    let _ = sockopt::set_tcp_nodelay(&fd, true);
                }
                Endpoint::Unix(_) => {
                    if let Err(who) = peer_of_this_user(fd.as_fd()) {
                        story.say(format_args!(
                            "refused a connection from another user: {who}"
                        ));
                        continue;
                    }
                }
            }
            let mut conn = Conn::new(fd)?;
            let mut hello = [0u8; protocol::HELLO_LEN];
            let pid = conn
                .read_exact(&mut hello, Duration::from_secs(2), Role::Consumer, None)
                .ok()
                .and_then(|()| protocol::parse_hello(&hello));
            if let Some(pid) = pid {
                return Ok(Some((conn, pid)));
            }
            story.say("ignored a connection that did not say hello");
        }
    }
}

impl Listener {
    /// Whether a connection is waiting to be accepted (without waiting).
    pub fn pending(&self) -> bool {
        ready(self.fd.as_fd(), rustix::event::PollFlags::IN)
    }
}

/// Whether `fd` is ready for `flags` right now (a poll with no timeout).
fn ready(fd: std::os::fd::BorrowedFd<'_>, flags: rustix::event::PollFlags) -> bool {
    let mut fds = [rustix::event::PollFd::from_borrowed_fd(fd, flags)];
    let zero = rustix::time::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    matches!(rustix::event::poll(&mut fds, Some(&zero)), Ok(n) if n > 0)
        && fds[0].revents().intersects(flags)
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Some(path) = &self.file {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// A connected socket, read and written with `read(2)`/`write(2)`.
pub struct Conn {
    file: File,
}

impl Conn {
    fn new(fd: OwnedFd) -> Result<Conn> {
        set_slices(&fd)?;
        // Ask for large buffers, as a tuned classic program would; the forced
        // variant needs privileges, the plain one is capped by the kernel.
        for (force, plain) in [
            (
                sockopt::set_socket_send_buffer_size_force as fn(_, _) -> _,
                sockopt::set_socket_send_buffer_size as fn(_, _) -> _,
            ),
            (
                sockopt::set_socket_recv_buffer_size_force,
                sockopt::set_socket_recv_buffer_size,
            ),
        ] {
            if force(fd.as_fd(), SOCKET_BUFFER).is_err() {
                let _ = plain(fd.as_fd(), SOCKET_BUFFER);
            }
        }
        Ok(Conn {
            file: File::from(fd),
        })
    }

    /// Connects to `endpoint`, retrying while nobody listens yet;
    /// `Ok(None)` at the deadline.
    ///
    /// # Errors
    /// [`Error::Refused`] for a Unix socket file that is not this user's, or
    /// whose listener runs as another user (`SO_PEERCRED`);
    /// [`Error::Interrupted`] or a system error other than "not there yet".
    pub fn connect(endpoint: &Endpoint, deadline: &Deadline) -> Result<Option<Conn>> {
        let attempt = || {
            if let Endpoint::Unix(path) = endpoint {
                // Never follow a symlink or talk to someone else's socket.
                match check_socket_file(path) {
                    Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                        return Ok(None)
                    }
                    other => other?,
                }
            }
            let attempt = match endpoint {
                Endpoint::Unix(path) => UnixStream::connect(path).map(OwnedFd::from),
                Endpoint::Tcp(addr) => TcpStream::connect(addr).map(|s| {
                    let _ = s.set_nodelay(true);
                    OwnedFd::from(s)
                }),
            };
            match attempt {
                Ok(fd) => {
                    if let Endpoint::Unix(path) = endpoint {
                        // Never talk to a listener of another user either.
                        peer_of_this_user(fd.as_fd()).map_err(|who| Error::Refused {
                            path: path.clone(),
                            reason: format!("the process listening on it, {who}"),
                        })?;
                    }
                    Conn::new(fd).map(Some)
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
                    ) =>
                {
                    Ok(None)
                }
                Err(e) => Err(Error::io(format!("connect to {endpoint}"), e)),
            }
        };
        match endpoint {
            Endpoint::Unix(path) => {
                let dir = path.parent().map_or_else(socket_dir, Path::to_path_buf);
                crate::wait::appear(&dir, deadline, attempt)
            }
            Endpoint::Tcp(_) => crate::wait::poll(deadline, Duration::from_millis(2), attempt),
        }
    }

    /// The pid of the process at the other end of a Unix socket
    /// (`SO_PEERCRED`); `None` for TCP or when the kernel does not say.
    pub(crate) fn peer_pid(&self) -> Option<u32> {
        sockopt::socket_peercred(self.file.as_fd())
            .ok()
            .map(|cred| cred.pid.as_raw_nonzero().get() as u32)
    }

    /// Says hello as a consumer (step 1 of the wire protocol), so that
    /// [`Listener::accept`] takes this connection.
    ///
    /// # Errors
    /// As [`Conn::write_all`].
    pub fn hello(&mut self, stall: Duration) -> Result<()> {
        let hello = protocol::hello(std::process::id());
        self.write_all(&hello, stall, Role::Producer, None)
    }

    /// Whether the socket's send buffer has room now (a poll with no timeout).
    pub fn writable(&self) -> bool {
        ready(self.file.as_fd(), rustix::event::PollFlags::OUT)
    }

    /// Writes all of `buf`, failing if no byte moves for `stall`.
    ///
    /// # Errors
    /// [`Error::PeerGone`] if the peer closed the connection or stalled,
    /// [`Error::Interrupted`], or the system's error.
    pub fn write_all(
        &mut self,
        mut buf: &[u8],
        stall: Duration,
        peer: Role,
        bar: Option<&ProgressBar>,
    ) -> Result<()> {
        let total = buf.len();
        let mut last = Instant::now();
        while !buf.is_empty() {
            signals::check()?;
            // Chunks the size of the socket buffer: large payloads stream,
            // and the progress bar moves.
            match self.file.write(&buf[..buf.len().min(SOCKET_BUFFER)]) {
                Ok(0) => return Err(gone(peer, "stopped reading", total - buf.len(), total)),
                Ok(n) => {
                    buf = &buf[n..];
                    last = Instant::now();
                    if let Some(bar) = bar {
                        bar.inc(n as u64);
                    }
                }
                Err(e) if retryable(e.kind().into()) => {
                    if last.elapsed() >= stall {
                        return Err(stalled(peer, stall, total - buf.len(), total));
                    }
                }
                Err(e) if is_disconnect(&e) => {
                    return Err(gone(
                        peer,
                        "closed the connection",
                        total - buf.len(),
                        total,
                    ))
                }
                Err(e) => return Err(Error::io("write to the socket", e)),
            }
        }
        Ok(())
    }

    /// Fills all of `buf`, failing if no byte arrives for `stall`.
    ///
    /// # Errors
    /// [`Error::PeerGone`] if the peer closed the connection early or stalled,
    /// [`Error::Interrupted`], or the system's error.
    pub fn read_exact(
        &mut self,
        buf: &mut [u8],
        stall: Duration,
        peer: Role,
        bar: Option<&ProgressBar>,
    ) -> Result<()> {
        if self.fill(buf, stall, peer, bar, false)? {
            Ok(())
        } else {
            Err(gone(peer, "closed the connection", 0, buf.len()))
        }
    }

    /// Like [`Conn::read_exact`], but a connection closed before the first
    /// byte is a normal end: `Ok(false)`. For streams of messages whose
    /// sender ends by closing.
    ///
    /// # Errors
    /// As [`Conn::read_exact`] (a close in the middle of `buf` is an error).
    pub fn read_exact_or_eof(
        &mut self,
        buf: &mut [u8],
        stall: Duration,
        peer: Role,
    ) -> Result<bool> {
        self.fill(buf, stall, peer, None, true)
    }

    fn fill(
        &mut self,
        buf: &mut [u8],
        stall: Duration,
        peer: Role,
        bar: Option<&ProgressBar>,
        eof_ok: bool,
    ) -> Result<bool> {
        let total = buf.len();
        let mut got = 0;
        let mut last = Instant::now();
        while got < total {
            signals::check()?;
            match self.file.read(&mut buf[got..]) {
                Ok(0) if got == 0 && eof_ok => return Ok(false),
                Ok(0) => return Err(gone(peer, "closed the connection", got, total)),
                Ok(n) => {
                    got += n;
                    last = Instant::now();
                    if let Some(bar) = bar {
                        bar.inc(n as u64);
                    }
                }
                Err(e) if retryable(e.kind().into()) => {
                    if last.elapsed() >= stall {
                        return Err(stalled(peer, stall, got, total));
                    }
                }
                Err(e) if is_disconnect(&e) => {
                    return Err(gone(peer, "closed the connection", got, total))
                }
                Err(e) => return Err(Error::io("read from the socket", e)),
            }
        }
        Ok(true)
    }
}

impl AsFd for Conn {
    /// The socket's descriptor, for `sendmsg`/`recvmsg` with ancillary data.
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.file.as_fd()
    }
}

/// Blocking I/O that returns every [`SLICE`] so signals and stalls are noticed.
pub(super) fn set_slices(fd: &OwnedFd) -> Result<()> {
    for which in [sockopt::Timeout::Recv, sockopt::Timeout::Send] {
        sockopt::set_socket_timeout(fd, which, Some(SLICE))
            .context(|| "set a socket timeout".into())?;
    }
    Ok(())
}

fn retryable(e: io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

fn is_disconnect(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::UnexpectedEof
    )
}

fn gone(peer: Role, what: &str, done: usize, total: usize) -> Error {
    Error::PeerGone(format!(
        "the {peer} {what} after {} of {} bytes",
        thousands(done as u64),
        thousands(total as u64)
    ))
}

fn stalled(peer: Role, stall: Duration, done: usize, total: usize) -> Error {
    Error::PeerGone(format!(
        "the {peer} moved no data for {:.1} s, after {} of {} bytes (raise --timeout to wait longer)",
        stall.as_secs_f64(),
        thousands(done as u64),
        thousands(total as u64)
    ))
}
