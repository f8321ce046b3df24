//! SIGINT, SIGTERM and SIGHUP become an error instead of an abrupt exit.
//!
//! [`install`] replaces the default action with a handler that only records the
//! signal. Every wait in this crate is a loop of short slices that calls
//! [`check`], which turns a recorded signal into [`Error::Interrupted`]. The error
//! then unwinds normally, so the `Drop` of every segment and socket this process
//! created removes its file, and the binary exits with 128 + the signal number.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use crate::error::{Error, IoContext, Result};

static RECEIVED: OnceLock<Arc<AtomicUsize>> = OnceLock::new();

const SIGNALS: [i32; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// Installs the handlers (once per process; later calls do nothing).
///
/// # Errors
/// If the kernel refuses to install a handler.
pub fn install() -> Result<()> {
    if RECEIVED.get().is_some() {
        return Ok(());
    }
    let flag = RECEIVED.get_or_init(|| Arc::new(AtomicUsize::new(0)));
    for signal in SIGNALS {
        signal_hook::flag::register_usize(signal, Arc::clone(flag), signal as usize)
            .context(|| format!("install a handler for signal {signal}"))?;
    }
    Ok(())
}

/// The signal received since [`install`], if any.
pub fn received() -> Option<i32> {
    let signal = RECEIVED.get()?.load(Ordering::Relaxed);
    (signal != 0).then_some(signal as i32)
}

/// `Err(Error::Interrupted(signal))` once a signal has arrived.
///
/// # Errors
/// When SIGINT, SIGTERM or SIGHUP was received.
pub fn check() -> Result<()> {
    match received() {
        Some(signal) => Err(Error::Interrupted(signal)),
        None => Ok(()),
    }
}
