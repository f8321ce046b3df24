//! Bounded waiting: deadlines, short sleeps, and signal and liveness checks between them.
//!
//! Bounded waiting: every wait in this crate has a deadline, sleeps in short
//! slices, and between slices checks for signals and lets the caller check its
//! peer's liveness.
//!
//! State changes in a segment are announced on a 32-bit state word with a futex
//! (`FUTEX_WAIT` / `FUTEX_WAKE` without `FUTEX_PRIVATE_FLAG`, so they work across
//! processes mapping the same file). Unlike a process-shared condition variable,
//! a futex keeps no state in user memory that a dying process could leave
//! inconsistent: a waiter killed in `FUTEX_WAIT` simply disappears from the
//! kernel's wait queue, and a wake with no waiter is a no-op.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rustix::thread::futex;

use crate::error::{Error, Result};
use crate::signals;

/// Longest single sleep: how quickly a signal or a dead peer is noticed.
pub const SLICE: Duration = Duration::from_millis(100);

/// A point in time after which a wait gives up.
#[derive(Clone, Copy, Debug)]
pub struct Deadline {
    start: Instant,
    limit: Duration,
}

impl Deadline {
    /// A deadline `limit` from now.
    pub fn after(limit: Duration) -> Deadline {
        Deadline {
            start: Instant::now(),
            limit,
        }
    }

    /// Time left, or `None` once the deadline has passed.
    pub fn remaining(&self) -> Option<Duration> {
        self.limit
            .checked_sub(self.start.elapsed())
            .filter(|d| !d.is_zero())
    }

    /// Time since the deadline was set.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// The [`Error::Timeout`] for this deadline, saying what was awaited.
    pub fn timeout(&self, what: impl Into<String>) -> Error {
        Error::Timeout {
            what: what.into(),
            waited: self.elapsed(),
        }
    }
}

/// Sleeps until `done(word)` holds, or the deadline passes (`Ok(None)`).
///
/// Between slices of at most [`SLICE`] it checks for signals and, from the
/// second slice on, calls `between`, which may end the wait with an error (a
/// dead peer, say).
/// The load of the word is `Acquire`: it pairs with the `Release` store that
/// changed the state, so everything written before that store is visible.
///
/// # Errors
/// [`Error::Interrupted`] on a signal, or whatever `between` returns.
pub fn until(
    word: &AtomicU32,
    deadline: &Deadline,
    mut done: impl FnMut(u32) -> bool,
    mut between: impl FnMut() -> Result<()>,
) -> Result<Option<u32>> {
    let mut first = true;
    loop {
        let value = word.load(Ordering::Acquire);
        if done(value) {
            return Ok(Some(value));
        }
        signals::check()?;
        // Liveness checks read /proc; skip them until a first sleep has not
        // been enough, so a quick hand-off costs no extra system calls.
        if !first {
            between()?;
        }
        first = false;
        let Some(left) = deadline.remaining() else {
            return Ok(None);
        };
        sleep_on(word, value, left);
    }
}

/// One futex sleep of at most [`SLICE`] (and at most `left`) while `word`
/// holds `value`. It returns on a wake, on a timeout, with EAGAIN if the word
/// no longer holds `value`, or with EINTR: in every case the caller re-reads
/// the word.
fn sleep_on(word: &AtomicU32, value: u32, left: Duration) {
    let _ = futex::wait(
        word,
        futex::Flags::empty(),
        value,
        Some(&slice_timespec(left)),
    );
}

/// `left`, capped at [`SLICE`], as a relative timeout.
fn slice_timespec(left: Duration) -> rustix::time::Timespec {
    let slice = left.min(SLICE);
    rustix::time::Timespec {
        tv_sec: slice.as_secs() as _,
        tv_nsec: slice.subsec_nanos() as _,
    }
}

/// Wakes every process sleeping on `word` (after a `Release` store to it),
/// and returns how many the kernel woke.
pub fn wake_all(word: &AtomicU32) -> usize {
    // Errors are impossible for a valid address; a failed wake would only
    // delay waiters until their next slice. The kernel reads the count as a
    // signed int: u32::MAX would be -1, which wakes one waiter only.
    futex::wake(word, futex::Flags::empty(), i32::MAX as u32).unwrap_or(0)
}

/// Bit 31 of a state word: set by a waiter of [`spin_until`] just before it
/// sleeps on the futex, so that [`post`] knows a wake-up is needed. The other
/// 31 bits hold the state value.
pub const SLEEPER: u32 = 1 << 31;

/// Stores `value` (Release) and wakes the word's sleepers, with a system call
/// only when a waiter of [`spin_until`] announced that it sleeps (set
/// [`SLEEPER`]). A hand-off to a spinning waiter thus costs no system call.
pub fn post(word: &AtomicU32, value: u32) {
    // Release: pairs with the Acquire loads in `spin_until`; everything
    // written before this store (payload, length, sequence) is visible to the
    // waiter that sees `value`. The swap also reads the sleeper bit atomically
    // with the store, so a waiter that set it before this point is woken, and
    // one that sets it afterwards fails its compare-exchange and re-reads.
    if word.swap(value, Ordering::Release) & SLEEPER != 0 {
        wake_all(word);
    }
}

/// Waits until `done(state)` holds for the word's state (the word without
/// [`SLEEPER`]): first by spinning for up to `spin` (pass zero to sleep at
/// once), then by sleeping on the futex in slices of at most [`SLICE`], as
/// [`until`] does. Returns the state, or `Ok(None)` at the deadline.
///
/// Spin only when the two processes run on different CPUs: a spinner on the
/// CPU its peer needs only delays the peer. Before sleeping, the waiter sets
/// [`SLEEPER`] so that [`post`] wakes it; the peer must change the state with
/// [`post`]. Signals are checked after the spin and between slices;
/// `between` (a liveness check, say) runs only once the wait has lasted a
/// whole [`SLICE`], so a quick hand-off costs no extra system calls.
///
/// # Errors
/// [`Error::Interrupted`] on a signal, or whatever `between` returns.
pub fn spin_until(
    word: &AtomicU32,
    deadline: &Deadline,
    spin: Duration,
    mut done: impl FnMut(u32) -> bool,
    mut between: impl FnMut() -> Result<()>,
) -> Result<Option<u32>> {
    // Acquire: pairs with the Release swap in `post`.
    let state = word.load(Ordering::Acquire) & !SLEEPER;
    if done(state) {
        return Ok(Some(state));
    }
    if !spin.is_zero() {
        let started = Instant::now();
        'spin: loop {
            // Reading the clock costs tens of nanoseconds: look at it only
            // every 64 polls.
            for _ in 0..64 {
                std::hint::spin_loop();
                let state = word.load(Ordering::Acquire) & !SLEEPER;
                if done(state) {
                    return Ok(Some(state));
                }
            }
            if started.elapsed() >= spin {
                break 'spin;
            }
        }
    }
    let mut last_check = Instant::now();
    loop {
        let value = word.load(Ordering::Acquire);
        if done(value & !SLEEPER) {
            return Ok(Some(value & !SLEEPER));
        }
        signals::check()?;
        if last_check.elapsed() >= SLICE {
            between()?;
            last_check = Instant::now();
        }
        let Some(left) = deadline.remaining() else {
            return Ok(None);
        };
        let expected = value | SLEEPER;
        // Relaxed: the bit carries no data; a failure means the state moved,
        // and the loop re-reads it with Acquire.
        if value & SLEEPER == 0
            && word
                .compare_exchange(value, expected, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            continue;
        }
        sleep_on(word, expected, left);
    }
}

/// Calls `poll` every `interval` until it yields a value or the deadline passes
/// (`Ok(None)`), checking for signals in between.
///
/// # Errors
/// [`Error::Interrupted`] on a signal, or whatever `poll` returns.
pub fn poll<T>(
    deadline: &Deadline,
    interval: Duration,
    mut poll: impl FnMut() -> Result<Option<T>>,
) -> Result<Option<T>> {
    loop {
        if let Some(value) = poll()? {
            return Ok(Some(value));
        }
        signals::check()?;
        let Some(left) = deadline.remaining() else {
            return Ok(None);
        };
        std::thread::sleep(left.min(interval));
    }
}

/// Calls `attempt` whenever an entry is created in (or moved into) `dir`,
/// until it yields a value or the deadline passes (`Ok(None)`).
///
/// Waiting on inotify instead of polling means a consumer that starts first
/// attaches within microseconds of the producer publishing. Where inotify is
/// unavailable it falls back to polling every 2 ms.
///
/// # Errors
/// [`Error::Interrupted`] on a signal, or whatever `attempt` returns.
pub fn appear<T>(
    dir: &std::path::Path,
    deadline: &Deadline,
    mut attempt: impl FnMut() -> Result<Option<T>>,
) -> Result<Option<T>> {
    let Some(fd) = watcher(dir) else {
        return poll(deadline, Duration::from_millis(2), attempt);
    };
    let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 4096];
    loop {
        // The watch exists before this attempt, so an entry created after a
        // failed attempt always leaves an event behind: no lost wake-up.
        if let Some(value) = attempt()? {
            return Ok(Some(value));
        }
        signals::check()?;
        let Some(left) = deadline.remaining() else {
            return Ok(None);
        };
        let mut fds = [rustix::event::PollFd::new(
            &*fd,
            rustix::event::PollFlags::IN,
        )];
        let _ = rustix::event::poll(&mut fds, Some(&slice_timespec(left)));
        // Drain the events; which entry appeared does not matter, the next
        // attempt looks for ours.
        let mut reader = rustix::fs::inotify::Reader::new(&*fd, &mut buf);
        while reader.next().is_ok() {}
    }
}

/// This process's inotify watch on `dir`, made on first use and kept open
/// for the life of the process: closing an inotify descriptor waits for an
/// RCU grace period (milliseconds), which would delay the very hand-off the
/// watch was meant to speed up. Stale events only cause one extra attempt.
fn watcher(dir: &std::path::Path) -> Option<std::sync::Arc<std::os::fd::OwnedFd>> {
    use rustix::fs::inotify;
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex, OnceLock};
    static WATCHERS: OnceLock<Mutex<HashMap<std::path::PathBuf, Arc<std::os::fd::OwnedFd>>>> =
        OnceLock::new();
    let mut watchers = WATCHERS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(fd) = watchers.get(dir) {
        return Some(Arc::clone(fd));
    }
    let fd = inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK).ok()?;
    inotify::add_watch(
        &fd,
        dir,
        inotify::WatchFlags::CREATE | inotify::WatchFlags::MOVED_TO,
    )
    .ok()?;
    let fd = Arc::new(fd);
    watchers.insert(dir.to_owned(), Arc::clone(&fd));
    Some(fd)
}

/// Sleeps for `total`, in slices, returning early with an error on a signal.
///
/// # Errors
/// [`Error::Interrupted`].
pub fn sleep(total: Duration) -> Result<()> {
    let deadline = Deadline::after(total);
    while let Some(left) = deadline.remaining() {
        signals::check()?;
        std::thread::sleep(left.min(SLICE));
    }
    signals::check()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_wait_ends_at_its_deadline() {
        let word = AtomicU32::new(0);
        let deadline = Deadline::after(Duration::from_millis(250));
        let mut slices = 0;
        let got = until(
            &word,
            &deadline,
            |v| v == 1,
            || {
                slices += 1;
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(got, None);
        assert!(deadline.elapsed() >= Duration::from_millis(250));
        assert!(slices >= 3, "between() ran {slices} times");
    }

    #[test]
    fn a_store_and_wake_ends_the_wait() {
        let word = Arc::new(AtomicU32::new(0));
        let w2 = Arc::clone(&word);
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            w2.store(7, Ordering::Release);
            wake_all(&w2);
        });
        let deadline = Deadline::after(Duration::from_secs(10));
        let got = until(&word, &deadline, |v| v == 7, || Ok(())).unwrap();
        assert_eq!(got, Some(7));
        assert!(deadline.elapsed() < Duration::from_secs(5));
        t.join().unwrap();
    }

    /// Whether thread `tid` of this process is blocked in `futex(2)`, as
    /// `/proc/self/task/TID/syscall` shows it (its first field is the number
    /// of the system call it is blocked in).
    /// `None` where the file cannot be read (no /proc, or a kernel
    /// without it).
    fn in_futex(tid: i32) -> Option<bool> {
        let text = std::fs::read_to_string(format!("/proc/self/task/{tid}/syscall")).ok()?;
        let nr = text.split_whitespace().next()?.parse::<i64>().ok();
        Some(nr == Some(libc::SYS_futex))
    }

    #[test]
    fn one_wake_reaches_every_sleeper() {
        let word = Arc::new(AtomicU32::new(0));
        let tids = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sleepers: Vec<_> = (0..3)
            .map(|_| {
                let (word, tids) = (Arc::clone(&word), Arc::clone(&tids));
                std::thread::spawn(move || {
                    tids.lock()
                        .unwrap()
                        .push(rustix::thread::gettid().as_raw_nonzero().get());
                    // One long futex sleep (not `until`'s slices, which end
                    // every 100 ms), so the sleepers are all in the kernel
                    // when the wake comes.
                    let long = rustix::time::Timespec {
                        tv_sec: 20,
                        tv_nsec: 0,
                    };
                    while word.load(Ordering::Acquire) == 0 {
                        let _ = futex::wait(&word, futex::Flags::empty(), 0, Some(&long));
                    }
                    word.load(Ordering::Acquire)
                })
            })
            .collect();
        // Wait until all three sleep in the kernel; then a single wake must
        // reach them all.
        let start = std::time::Instant::now();
        loop {
            let tids = tids.lock().unwrap().clone();
            if tids.len() == 3 {
                match tids
                    .iter()
                    .map(|&t| in_futex(t))
                    .collect::<Option<Vec<_>>>()
                {
                    Some(asleep) if asleep.iter().all(|&a| a) => break,
                    Some(_) => {}
                    // Nothing to watch them with: give them time to sleep.
                    None => {
                        std::thread::sleep(Duration::from_millis(300));
                        break;
                    }
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the sleepers never slept"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        word.store(1, Ordering::Release);
        assert_eq!(wake_all(&word), 3, "one wake must reach every sleeper");
        for s in sleepers {
            assert_eq!(s.join().unwrap(), 1);
        }
    }

    #[test]
    fn between_can_end_the_wait_with_an_error() {
        let word = AtomicU32::new(0);
        let deadline = Deadline::after(Duration::from_secs(10));
        let err = until(
            &word,
            &deadline,
            |_| false,
            || Err(Error::Usage("peer gone".into())),
        );
        assert!(matches!(err, Err(Error::Usage(_))));
    }

    #[test]
    fn a_post_wakes_a_sleeper_and_spinners_need_no_wake() {
        for spin in [Duration::ZERO, Duration::from_millis(50)] {
            let word = Arc::new(AtomicU32::new(0));
            let w2 = Arc::clone(&word);
            let t = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(80));
                post(&w2, 5);
            });
            let deadline = Deadline::after(Duration::from_secs(10));
            let got = spin_until(&word, &deadline, spin, |v| v == 5, || Ok(())).unwrap();
            assert_eq!(got, Some(5));
            // Well before the 100 ms slice would have ended the sleep anyway.
            assert!(deadline.elapsed() < Duration::from_millis(180), "{spin:?}");
            t.join().unwrap();
            assert_eq!(word.load(Ordering::Relaxed), 5, "the sleeper bit stayed");
        }
    }

    #[test]
    fn a_sleeper_announces_itself_and_the_deadline_holds() {
        let word = AtomicU32::new(2);
        let deadline = Deadline::after(Duration::from_millis(250));
        let mut checks = 0;
        let got = spin_until(
            &word,
            &deadline,
            Duration::from_millis(1),
            |v| v == 1,
            || {
                checks += 1;
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(got, None);
        assert_eq!(word.load(Ordering::Relaxed), 2 | SLEEPER);
        assert!(checks >= 1, "between never ran");
        assert!(deadline.elapsed() >= Duration::from_millis(250));
        post(&word, 1);
        assert_eq!(word.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn poll_returns_the_first_value() {
        let mut n = 0;
        let deadline = Deadline::after(Duration::from_secs(10));
        let got = poll(&deadline, Duration::from_millis(1), || {
            n += 1;
            Ok((n == 3).then_some(n))
        })
        .unwrap();
        assert_eq!(got, Some(3));
    }
}
