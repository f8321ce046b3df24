//! Named pause points in the hand-off, so that tests can kill a process at an exact step.
//!
//! When the environment variable `P1P2_STOP_AT` names a point that the
//! process reaches (for example `producer:ready`), the process stops itself
//! there with SIGSTOP, exactly as a debugger's breakpoint would. A test
//! waits for the stop (`/proc/PID/stat` state `T`), then sends SIGKILL or
//! SIGCONT. Without the variable a point costs one relaxed atomic load.
//!
//! The points, in protocol order, are listed in [`POINTS`] and in
//! `docs/reliability.md`.

use std::sync::OnceLock;

/// The environment variable naming the point to stop at.
pub const ENV: &str = "P1P2_STOP_AT";

/// Every point the producer and the consumer pass, in protocol order.
pub const POINTS: &[&str] = &[
    "producer:created",
    "producer:published",
    "producer:writing",
    "producer:ready",
    "producer:released",
    "producer:locked",
    "consumer:opened",
    "consumer:claimed",
    "consumer:locked",
    "consumer:taken",
    "consumer:resolved",
    // Unix socket transport: the socket is bound and listening under its
    // temporary name, not yet published.
    "producer:bound",
    // memfd transport: the memfd is filled and sealed (no socket yet); the
    // offer carrying it has been sent; the consumer holds the received
    // descriptors; the consumer has answered and awaits the decision.
    "producer:sealed",
    "producer:sent",
    "consumer:received",
    "consumer:answered",
    // Stream ring: the producer has written a frame's pixels, and its slot's
    // sequence number is still odd (the frame is not yet published).
    "producer:mid-frame",
];

/// Stops this process with SIGSTOP if `P1P2_STOP_AT` names `point`.
pub fn hit(point: &'static str) {
    static TARGET: OnceLock<Option<String>> = OnceLock::new();
    let target = TARGET.get_or_init(|| std::env::var(ENV).ok());
    if target.as_deref() == Some(point) {
        debug_assert!(POINTS.contains(&point), "unlisted stop point {point}");
        let _ =
            rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::STOP);
    }
}
