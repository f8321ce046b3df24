//! The socket transports, Unix domain and TCP: the classic way, in which the
//! payload is copied from the producer into the kernel (`write`) and from the
//! kernel into the consumer (`read`).
//!
//! The I/O is done with `read(2)`/`write(2)` on the socket's descriptor, not
//! with `recv`/`send`, so the kernel's `/proc/self/io` counters witness every
//! byte (see [`crate::ledger`]).
//!
//! # Wire protocol
//! 1. consumer -> producer: `P1P2HEL\0`, u32 pid, u32 zero (16 bytes). A
//!    connection that does not say hello (a liveness probe, a port scanner) is
//!    dropped and the producer keeps listening.
//! 2. producer -> consumer: `P1P2MSG\0`, u64 length, u32 CRC-32, u32 zero
//!    (24 bytes), then the payload.
//! 3. consumer -> producer: `P1P2ACK\0` or `P1P2NAK\0`.
//!
//! All integers little-endian. Every read and write waits in slices of
//! [`SLICE`] (socket timeouts), so signals are noticed, and gives up when no
//! byte moved for the session's timeout.
//!
//! # Files
//! The Unix socket is bound under a temporary name, made mode 0600, and
//! renamed into place with `RENAME_NOREPLACE`, while holding a `flock` on the
//! socket directory so that two producers replacing a stale socket cannot
//! remove each other's. A stale socket (nobody listening) is removed; a live
//! one is never touched. The listener removes its file when dropped.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use indicatif::ProgressBar;
use rustix::fs::{flock, FlockOperation};
use rustix::net::sockopt;

use crate::error::{Error, IoContext, Result, Role};
use crate::ledger::{Copier, Ledger, Meter};
use crate::name::{socket_dir, Name, TEMP_PREFIX};
use crate::progress;
use crate::signals;
use crate::story::{gbps, ms, thousands, Story};
use crate::transport::{
    Incoming, Outgoing, Payload, Received, Sent, Session, Transport, TransportKind,
};
use crate::wait::{Deadline, SLICE};

/// Default TCP address of the `tcp` transport.
pub const DEFAULT_TCP_ADDR: &str = "127.0.0.1:47800";

const HELLO: &[u8; 8] = b"P1P2HEL\0";
const MSG: &[u8; 8] = b"P1P2MSG\0";
const ACK: &[u8; 8] = b"P1P2ACK\0";
const NAK: &[u8; 8] = b"P1P2NAK\0";

/// Socket buffer size asked for (the kernel may grant less).
const SOCKET_BUFFER: usize = 4 << 20;

/// Payloads at least this large get a progress bar.
const PROGRESS_FROM: u64 = 16 << 20;

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
    fd: OwnedFd,
    endpoint: Endpoint,
    file: Option<PathBuf>,
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
                            pid: 0,
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
            if matches!(self.endpoint, Endpoint::Tcp(_)) {
                // As the connecting side does: small messages go out at once.
                let _ = sockopt::set_tcp_nodelay(&fd, true);
            }
            let mut conn = Conn::new(fd)?;
            let mut hello = [0u8; 16];
            let said_hello = conn
                .read_exact(&mut hello, Duration::from_secs(2), Role::Consumer, None)
                .is_ok()
                && &hello[..8] == HELLO;
            if said_hello {
                let pid = u32::from_le_bytes(hello[8..12].try_into().expect("4 bytes"));
                return Ok(Some((conn, pid)));
            }
            story.say("ignored a connection that did not say hello");
        }
    }
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
                Ok(fd) => Conn::new(fd).map(Some),
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

    /// Says hello as a consumer (step 1 of the wire protocol), so that
    /// [`Listener::accept`] takes this connection.
    ///
    /// # Errors
    /// As [`Conn::write_all`].
    pub fn hello(&mut self, stall: Duration) -> Result<()> {
        let mut hello = [0u8; 16];
        hello[..8].copy_from_slice(HELLO);
        hello[8..12].copy_from_slice(&std::process::id().to_le_bytes());
        self.write_all(&hello, stall, Role::Producer, None)
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

/// The Unix and TCP transports.
#[derive(Clone, Copy, Debug)]
pub struct Socket {
    kind: TransportKind,
    addr: SocketAddr,
}

impl Socket {
    /// A socket transport of `kind` (`Unix` or `Tcp`); `addr` is used by TCP.
    pub fn new(kind: TransportKind, addr: SocketAddr) -> Socket {
        Socket { kind, addr }
    }
}

impl Transport for Socket {
    fn send(&self, session: &Session<'_>, out: &Outgoing<'_>) -> Result<Sent> {
        let story = session.story;
        let Payload::Heap(payload) = &out.payload else {
            return Err(Error::Usage(
                "the socket transports send from a heap buffer".into(),
            ));
        };
        let endpoint = Endpoint::new(self.kind, session.name, self.addr);
        let listener = Listener::bind(&endpoint, session.name)?;
        story.say(format_args!("listening on {endpoint}"));

        let deadline = Deadline::after(session.timeout);
        let accepted = {
            let _spin = story.waiting(format!("waiting for a consumer to connect to {endpoint}"));
            listener.accept(&deadline, story)?
        };
        let Some((mut conn, consumer_pid)) = accepted else {
            return Err(deadline.timeout(format!("no consumer connected to {endpoint}")));
        };
        story.say(format_args!("consumer pid {consumer_pid} connected"));
        if !session.hold.is_zero() {
            story.say(format_args!(
                "holding the payload for {} ms before sending (--hold)",
                session.hold.as_millis()
            ));
            crate::wait::sleep(session.hold)?;
        }

        let meter = Meter::start();
        let copy_started = SystemTime::now();
        let started = Instant::now();
        let len = payload.len() as u64;
        let crc32 = crate::png::crc32(payload);
        let mut header = [0u8; 24];
        header[..8].copy_from_slice(MSG);
        header[8..16].copy_from_slice(&len.to_le_bytes());
        header[16..20].copy_from_slice(&crc32.to_le_bytes());
        let bar = (len >= PROGRESS_FROM).then(|| progress::bytes(len, "sending"));
        conn.write_all(&header, session.timeout, Role::Consumer, None)?;
        conn.write_all(payload, session.timeout, Role::Consumer, bar.as_ref())?;
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        let copy = started.elapsed();
        let mut ledger = Ledger::new();
        ledger.record("heap -> socket (write)", len, Copier::Kernel);
        story.say(format_args!(
            "wrote {} bytes into the socket in {} ({}): the kernel copied them out of this process",
            thousands(len),
            ms(copy),
            gbps(len, copy)
        ));

        let waited = Instant::now();
        let mut answer = [0u8; 8];
        {
            let _spin = story.waiting("waiting for the consumer's acknowledgement");
            conn.read_exact(&mut answer, session.timeout, Role::Consumer, None)
                .map_err(|e| match e {
                    Error::PeerGone(_) => Error::PeerGone(format!(
                        "consumer pid {consumer_pid} closed the connection before acknowledging"
                    )),
                    other => other,
                })?;
        }
        let wait = waited.elapsed();
        let witness = meter.finish();
        match &answer {
            a if a == ACK => {
                story.say(format_args!(
                    "consumer pid {consumer_pid} acknowledged after {}",
                    ms(wait)
                ));
                Ok(Sent {
                    crc32,
                    copy_started,
                    copy,
                    wait,
                    consumer_pid: Some(consumer_pid),
                    ledger,
                    witness,
                })
            }
            a if a == NAK => Err(Error::rejected_by(consumer_pid)),
            _ => Err(Error::BadMessage {
                peer: Role::Consumer,
                reason: "the answer is neither ACK nor NAK".into(),
            }),
        }
    }

    fn receive(
        &self,
        session: &Session<'_>,
        accept: &mut dyn FnMut(Incoming<'_>) -> Result<()>,
    ) -> Result<Received> {
        let story = session.story;
        let endpoint = Endpoint::new(self.kind, session.name, self.addr);
        let deadline = Deadline::after(session.timeout);
        let conn = {
            let _spin = story.waiting(format!("waiting for a producer on {endpoint}"));
            Conn::connect(&endpoint, &deadline)?
        };
        let mut conn =
            conn.ok_or_else(|| deadline.timeout(format!("no producer listened on {endpoint}")))?;
        let producer_pid = match &endpoint {
            Endpoint::Unix(_) => sockopt::socket_peercred(conn.file.as_fd())
                .ok()
                .map(|cred| cred.pid.as_raw_nonzero().get() as u32),
            Endpoint::Tcp(_) => None,
        };
        conn.hello(session.timeout)?;
        story.say(format_args!(
            "connected to {endpoint}{}",
            producer_pid.map_or(String::new(), |pid| format!(" (producer pid {pid})"))
        ));

        let mut header = [0u8; 24];
        {
            let _spin = story.waiting("waiting for the producer to send");
            let left = deadline.remaining().unwrap_or(Duration::ZERO);
            conn.read_exact(&mut header, left.max(SLICE), Role::Producer, None)?;
        }
        let wait = deadline.elapsed();
        if &header[..8] != MSG {
            return Err(Error::BadMessage {
                peer: Role::Producer,
                reason: "wrong magic (is something else listening there?)".into(),
            });
        }
        let len = u64::from_le_bytes(header[8..16].try_into().expect("8 bytes"));
        let crc32 = u32::from_le_bytes(header[16..20].try_into().expect("4 bytes"));
        if len > session.max_payload {
            return Err(Error::BadMessage {
                peer: Role::Producer,
                reason: format!(
                    "announced {len} bytes, more than the {} allowed (--max-alloc)",
                    session.max_payload
                ),
            });
        }

        let meter = Meter::start();
        let started = Instant::now();
        let mut payload = vec![0u8; len as usize];
        let bar = (len >= PROGRESS_FROM).then(|| progress::bytes(len, "receiving"));
        conn.read_exact(&mut payload, session.timeout, Role::Producer, bar.as_ref())?;
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        let receive = started.elapsed();
        let mut ledger = Ledger::new();
        ledger.record("socket -> heap (read)", len, Copier::Kernel);
        story.say(format_args!(
            "read {} bytes from the socket in {} ({}): the kernel copied them into this process",
            thousands(len),
            ms(receive),
            gbps(len, receive)
        ));
        let accepted = accept(Incoming {
            bytes: &payload,
            crc32,
            meter,
        });
        let accepted = accepted.and_then(|()| {
            if !session.hold.is_zero() {
                story.say(format_args!(
                    "holding for {} ms before acknowledging (--hold)",
                    session.hold.as_millis()
                ));
            }
            crate::wait::sleep(session.hold)
        });
        match accepted {
            Ok(()) => {
                conn.write_all(ACK, session.timeout, Role::Producer, None)?;
                story.say("acknowledged");
                Ok(Received {
                    wait,
                    receive,
                    producer_pid,
                    ledger,
                })
            }
            Err(e) => {
                let _ = conn.write_all(NAK, Duration::from_secs(1), Role::Producer, None);
                Err(e)
            }
        }
    }
}

/// Binds a Unix listener at `path` as described in the module docs.
fn bind_unix(path: &Path, name: &Name) -> Result<Listener> {
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
        pid: 0,
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
    /// A process listens there (its pid from `SO_PEERCRED`, 0 if unknown).
    Listening {
        /// The listener's pid.
        pid: u32,
    },
    /// A socket file nobody listens on: left by a dead producer.
    Stale,
}

/// Refuses a path that is a symlink, not a socket, or another user's.
fn check_socket_file(path: &Path) -> Result<()> {
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
                .map_or(0, |cred| cred.pid.as_raw_nonzero().get() as u32),
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

/// Blocking I/O that returns every [`SLICE`] so signals and stalls are noticed.
fn set_slices(fd: &OwnedFd) -> Result<()> {
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

/// Whether a file name in the socket directory is one of ours.
pub fn is_socket_file(file_name: &str) -> bool {
    (file_name.starts_with(crate::name::PUBLISHED_PREFIX) || file_name.starts_with(TEMP_PREFIX))
        && file_name.ends_with(".sock")
}
