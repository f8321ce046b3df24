//! The two processes of a benchmark case: the sender and the receiver.
//!
//! The two processes of a benchmark case: `p1p2-bench-peer --role sender
//! --bench-peer SPEC` is the sender, `--role receiver` the receiver.
//! `p1p2-bench` starts both, each prints one JSON line ([`PeerReport`]) and
//! exits.
//!
//! # What each sample times
//! - **shm, steady** (one slot, reused): from the sender taking the slot's
//!   lock, through its `memcpy` of the payload into the slot, the release,
//!   the READY store, the receiver taking the lock and reading every byte in
//!   place (stamp and [`checksum`](crate::checksum)), its release and ACKED
//!   store, until the sender sees ACKED.
//! - **shm, cold**: the same, but every transfer creates, publishes, maps,
//!   fills, hands off and removes a fresh segment; the receiver opens and
//!   maps it and unmaps it again. First-touch page faults are in the figure.
//! - **shm-pipelined** (two or more slots): the sender fills slot k while the
//!   receiver reads slot k-1. A sample is the interval between two successive
//!   acknowledgements as the sender observes them, which is when it waits for
//!   a slot to be free again: the steady-state period of the pipeline. The
//!   acknowledgements of the last `slots - 1` transfers come after the
//!   sender stopped sending (a drain: the receiver alone) and are not
//!   samples; the budget sends that many transfers more instead.
//! - **memfd, cold** (the only memfd mode): from the sender's `memfd_create`,
//!   through its `memcpy` into the memfd, the seals and the `sendmsg` of the
//!   descriptor, the receiver's checks, read-only mapping and read of every
//!   byte in place, until the sender has read the 8-byte answer. Why there
//!   is no steady mode: see `memfd`.
//! - **unix, tcp**: from the sender's first `write(2)` of the payload until it
//!   has read the receiver's 8-byte acknowledgement, written after the
//!   receiver `read(2)` every byte into its buffer and checked it.
//! - **unix-stream, tcp-stream**: the sender writes payload after payload
//!   with up to `slots` unacknowledged (as shm-pipelined), and the receiver
//!   reads, checks and acknowledges each; a sample is the interval between
//!   two acknowledgements, drained ones excluded, exactly as shm-pipelined.
//! - **latency**: one round trip of a small message and its reply.
//!
//! Every sender also reports `wall_ns`: from the start of its first measured
//! sample to the end of its last, the time the sustained throughput of a
//! round divides by.
//!
//! # Waiting
//! Every wait is bounded by the spec's `timeout_ms` and checks signals.
//! Socket readers busy-poll with non-blocking reads for up to `spin_us`
//! without a byte before they block (see `socket`). The
//! shared-memory waits use [`common::wait::spin_until`]: a bounded spin of `spin_us`
//! (zero unless the peers are pinned to different CPUs), then the futex in
//! slices, checking the peer's liveness only once a wait has lasted a slice.
//! The hot loop allocates nothing, reads nothing in /proc and prints nothing
//! (progress lines, when asked for, are rate-limited and subtracted from the
//! counts).
//!
//! # Modules
//! - [`spec`]: what a peer is asked to do;
//! - [`report`]: what it answers;
//! - [`affinity`]: pinning to CPUs;
//! - [`sample`]: counting warm-up and measured transfers, and the counters
//!   around them;
//! - `shm`: the shared-memory peers, on the product's segments;
//! - `socket`: the Unix and TCP socket peers, on the product's connections;
//! - `memfd`: the sealed-memfd peers, on the product's memfd code.

pub mod affinity;
mod memfd;
pub mod report;
pub mod sample;
mod shm;
mod socket;
pub mod spec;

use std::process::ExitCode;

use crate::case::{Channel, Mode};
use crate::plan::MIN_SIZE;
use common::error::{Error, Result, Role};

pub use report::PeerReport;
pub use sample::{Lap, Measure, Tally};
pub use spec::{Spec, Test};

/// How a peer binary is called.
pub const USAGE: &str = "--role sender|receiver --bench-peer SPEC (p1p2-bench runs it)";

/// The role and the JSON spec from a peer binary's arguments (without the
/// program name): `--role sender|receiver --bench-peer SPEC`; `None` for
/// anything else.
pub fn parse_args(args: &[String]) -> Option<(Role, &str)> {
    match args {
        [r, role, b, spec] if r == "--role" && b == "--bench-peer" => match role.as_str() {
            "sender" => Some((Role::Producer, spec)),
            "receiver" => Some((Role::Consumer, spec)),
            _ => None,
        },
        _ => None,
    }
}

/// Runs a peer for `role` from the JSON `spec`, prints its report as one
/// JSON line, and returns the exit code (errors: one line on stderr).
pub fn main(role: Role, spec: &str) -> ExitCode {
    serve(role, spec, run)
}

/// What every peer binary does around its transport: parses the spec,
/// installs the signal handlers, asks to be ended with its driver, pins
/// itself, runs `body`, completes the report (role, pid, CPU) and prints it
/// as one JSON line. The iceoryx2 peer binary uses it with its own body.
pub fn serve(role: Role, spec: &str, body: fn(Role, &Spec) -> Result<PeerReport>) -> ExitCode {
    let result = serde_json::from_str::<Spec>(spec)
        .map_err(|e| Error::Usage(format!("--bench-peer: not a peer spec ({e})")))
        .and_then(|spec| {
            prepare(&spec)?;
            let mut report = body(role, &spec)?;
            report.role = match role {
                Role::Producer => "sender",
                Role::Consumer => "receiver",
            }
            .into();
            report.pid = Some(std::process::id());
            report.cpu = rustix::thread::sched_getcpu();
            Ok(report)
        });
    common::cli::finish(role, true, result)
}

fn prepare(spec: &Spec) -> Result<()> {
    common::signals::install()?;
    // A peer outliving its driver would only wait for its timeout: end it.
    let _ = rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::TERM));
    if let Some(cpu) = spec.cpu {
        affinity::pin_to(cpu)?;
    }
    if spec.bytes < MIN_SIZE {
        return Err(Error::Usage(format!(
            "--bench-peer: {} bytes is below the 8-byte minimum",
            spec.bytes
        )));
    }
    Ok(())
}

/// Runs the producer's (sender's) or consumer's (receiver's) side of `spec`
/// over this crate's transports.
///
/// # Errors
/// A timeout, a dead peer, a payload that fails its checks, a signal, or a
/// system error.
pub fn run(role: Role, spec: &Spec) -> Result<PeerReport> {
    match (spec.test, spec.transport.base(), role) {
        (Test::Throughput, Channel::Shm, Role::Producer) if spec.mode == Mode::Cold => {
            shm::cold_sender(spec)
        }
        (Test::Throughput, Channel::Shm, Role::Consumer) if spec.mode == Mode::Cold => {
            shm::cold_receiver(spec)
        }
        (Test::Throughput, Channel::Shm, Role::Producer) => shm::sender(spec, false),
        (Test::Throughput, Channel::ShmPipelined, Role::Producer) => shm::sender(spec, true),
        (Test::Throughput, Channel::Shm | Channel::ShmPipelined, Role::Consumer) => {
            shm::receiver(spec)
        }
        (Test::Throughput, Channel::Memfd, Role::Producer) if spec.mode == Mode::Cold => {
            memfd::cold_sender(spec)
        }
        (Test::Throughput, Channel::Memfd, Role::Consumer) if spec.mode == Mode::Cold => {
            memfd::cold_receiver(spec)
        }
        (
            Test::Throughput,
            Channel::Unix | Channel::Tcp | Channel::UnixStream | Channel::TcpStream,
            Role::Producer,
        ) => socket::sender(spec, false),
        (
            Test::Throughput,
            Channel::Unix | Channel::Tcp | Channel::UnixStream | Channel::TcpStream,
            Role::Consumer,
        ) => socket::receiver(spec, false),
        (Test::Latency, Channel::Shm, Role::Producer) => shm::ping(spec),
        (Test::Latency, Channel::Shm, Role::Consumer) => shm::pong(spec),
        (Test::Latency, Channel::Unix | Channel::Tcp, Role::Producer) => socket::sender(spec, true),
        (Test::Latency, Channel::Unix | Channel::Tcp, Role::Consumer) => {
            socket::receiver(spec, true)
        }
        (test, transport, _) => Err(Error::Usage(format!(
            "--bench-peer: no {test:?} peer for transport {transport} in mode {}",
            spec.mode
        ))),
    }
}
