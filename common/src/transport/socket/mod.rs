//! The socket transports (Unix domain and TCP), which copy through the kernel.
//!
//! This is the classic way, in which the payload is copied from the producer
//! into the kernel (`write`) and from the kernel into the consumer (`read`).
//!
//! - `protocol`: the wire protocol (hello, message header, answer), also
//!   described in `docs/segment-format.md`;
//! - `connection`: where to listen ([`Endpoint`]), listening ([`Listener`])
//!   and connection I/O ([`Conn`]), with bounded waits;
//! - `paths`: the Unix socket files: publishing, probing and removing them.
//!
//! The I/O is done with `read(2)`/`write(2)` on the socket's descriptor, not
//! with `recv`/`send`, so the kernel's `/proc/self/io` counters witness every
//! byte (see [`crate::ledger`]).

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use crate::error::{Error, Result, Role};
use crate::ledger::{Copier, Ledger, Meter};
use crate::progress;
use crate::story::{gbps, ms, thousands};
use crate::transport::{
    Incoming, Outgoing, Payload, Received, Sent, Session, Transport, TransportKind,
};
use crate::wait::{Deadline, SLICE};

mod connection;
mod paths;
pub(crate) mod protocol;

pub use connection::{Conn, Endpoint, Listener};
pub use paths::{is_socket_file, probe, remove_stale, Probe};

/// Default TCP address of the `tcp` transport.
pub const DEFAULT_TCP_ADDR: &str = "127.0.0.1:47800";

/// Payloads at least this large get a progress bar.
const PROGRESS_FROM: u64 = 16 << 20;

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
        let header = protocol::header(len, crc32);
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
            a if a == protocol::ACK => Ok(Sent {
                crc32,
                copy_started,
                copy,
                wait,
                consumer_pid: Some(consumer_pid),
                ledger,
                witness,
            }
            .acknowledged(story, "")),
            a if a == protocol::NAK => Err(Error::rejected_by(Some(consumer_pid))),
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
            Endpoint::Unix(_) => conn.peer_pid(),
            Endpoint::Tcp(_) => None,
        };
        conn.hello(session.timeout)?;
        story.say(format_args!(
            "connected to {endpoint}{}",
            producer_pid.map_or(String::new(), |pid| format!(" (producer pid {pid})"))
        ));

        let mut header = [0u8; protocol::HEADER_LEN];
        {
            let _spin = story.waiting("waiting for the producer to send");
            let left = deadline.remaining().unwrap_or(Duration::ZERO);
            conn.read_exact(&mut header, left.max(SLICE), Role::Producer, None)?;
        }
        let wait = deadline.elapsed();
        let (len, crc32) = protocol::parse_header(&header).ok_or_else(|| Error::BadMessage {
            peer: Role::Producer,
            reason: "wrong magic (is something else listening there?)".into(),
        })?;
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
                conn.write_all(protocol::ACK, session.timeout, Role::Producer, None)?;
                story.say("acknowledged");
                Ok(Received {
                    wait,
                    receive,
                    producer_pid,
                    ledger,
                    seals: None,
                    tamper: None,
                })
            }
            Err(e) => {
                let _ = conn.write_all(protocol::NAK, Duration::from_secs(1), Role::Producer, None);
                Err(e)
            }
        }
    }
}
