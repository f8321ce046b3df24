//! A process-shared, robust pthread mutex whose waits end at a CLOCK_MONOTONIC deadline.
//!
//! # Why not raw_sync
//! The segment's lock started as `raw_sync`'s mutex. Measured on Linux with
//! glibc, that mutex cannot keep this project's promises:
//! - it is not robust: a holder killed with SIGKILL leaves it locked for
//!   ever, so a waiter can only poll the holder's pid, and a shared value
//!   whose holder died can never be locked again;
//! - its timed lock is `pthread_mutex_timedlock`, whose absolute deadline is
//!   on CLOCK_REALTIME: when the wall clock steps back during a wait, the
//!   wait lasts as much longer;
//! - it adds the sub-second part of a timeout without carrying into the
//!   seconds, so most sub-second timeouts fail at once with EINVAL;
//! - it calls `MaybeUninit::uninit().assume_init()` on a `timespec` and a
//!   `pthread_mutexattr_t` (undefined behaviour) on every initialisation and
//!   every timed lock.
//!
//! # What this mutex does instead
//! - **Robust** (`PTHREAD_MUTEX_ROBUST`): glibc keeps the mutexes a thread
//!   holds on a list that the kernel walks when the thread dies. The next
//!   locker, or a waiter already asleep, gets `EOWNERDEAD` at once (no
//!   polling) and owns the mutex; [`RobustMutex::lock_until`] then marks it
//!   consistent and reports [`Acquired::OwnerDied`], so the protocol above
//!   decides what the dead holder's data is worth.
//! - **Process-shared** (`PTHREAD_PROCESS_SHARED`), in a mapped file.
//! - **Monotonic deadlines**: `pthread_mutex_clocklock` with
//!   `CLOCK_MONOTONIC` (glibc 2.30 and later; the `libc` crate has no
//!   binding for it yet, so it is declared here). Stepping the wall clock
//!   does not move the deadline.
//! - Nothing uninitialised is read: the attribute object is initialised by
//!   `pthread_mutexattr_init` before it is used, and destroyed afterwards.
//!
//! A robust mutex protects against death, not against a live process that
//! ignores the lock or scribbles over the mutex: that is the limit of any
//! lock in memory that other processes can write.

use std::cell::UnsafeCell;
use std::io;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use rustix::time::{clock_gettime, ClockId, Timespec};

extern "C" {
    // glibc >= 2.30 (POSIX.1-2024). Same contract as
    // `pthread_mutex_timedlock`, with the clock of `abstime` named by `clockid`.
    fn pthread_mutex_clocklock(
        mutex: *mut libc::pthread_mutex_t,
        clockid: libc::clockid_t,
        abstime: *const libc::timespec,
    ) -> libc::c_int;
}

/// Bytes a slot reserves for its mutex. `pthread_mutex_t` is 40 bytes on
/// x86-64 and 48 on aarch64 with glibc.
pub const MUTEX_BYTES: usize = 64;

const _: () = assert!(std::mem::size_of::<libc::pthread_mutex_t>() <= MUTEX_BYTES);
const _: () = assert!(std::mem::align_of::<libc::pthread_mutex_t>() <= 8);

/// The memory of one mutex inside a mapped segment.
///
/// Only ever reached through a shared reference into the mapping; all access
/// goes through the pthread functions (which use atomic instructions on it)
/// or an atomic load of its kind word (see [`RobustMutex::open`]).
#[repr(C, align(8))]
pub struct RawMutexBytes(UnsafeCell<[u8; MUTEX_BYTES]>);

impl std::fmt::Debug for RawMutexBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RawMutexBytes(..)")
    }
}

// SAFETY: the bytes are only touched by pthread calls, which synchronise
// between threads and processes themselves, and by atomic loads.
unsafe impl Sync for RawMutexBytes {}

impl RawMutexBytes {
    fn as_ptr(&self) -> *mut libc::pthread_mutex_t {
        self.0.get().cast()
    }

    /// glibc's `__kind` word (offset 16 on every 64-bit glibc target), read
    /// atomically: `pthread_mutex_init` sets it and no lock operation on a
    /// robust, process-shared mutex changes it. Used to tell an initialised
    /// mutex from garbage before any pthread function touches it.
    fn kind_word(&self) -> i32 {
        // SAFETY: offset 16 + 4 <= MUTEX_BYTES lies inside the cell, which
        // is 8-aligned, so the pointer is 4-aligned. Other processes write
        // this memory only through glibc, with atomic instructions or (at
        // initialisation, before the segment is published) plain stores, so
        // an atomic load never races with a non-atomic write.
        let word = unsafe { &*self.0.get().cast::<u8>().add(16).cast::<AtomicI32>() };
        word.load(Ordering::Relaxed)
    }
}

/// How [`RobustMutex::lock_until`] got the mutex.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acquired {
    /// From a holder that unlocked it.
    Clean,
    /// Its holder died holding it. The mutex has been marked consistent and
    /// is held by the caller; whatever the dead holder was changing under it
    /// may be half done.
    OwnerDied,
}

/// Why a lock attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum MutexError {
    /// The bytes are not a robust, process-shared mutex made by
    /// [`RobustMutex::init`] (an uninitialised or hostile segment).
    #[error("it is not a robust process-shared mutex")]
    NotAMutex,
    /// An earlier owner died and its successor unlocked it without marking
    /// it consistent; nobody can ever lock it again.
    #[error("it was left unrecoverable by a holder that died")]
    NotRecoverable,
    /// Any other error the pthread functions report.
    #[error("{0}")]
    Os(#[from] io::Error),
}

/// A robust, process-shared mutex living in a mapped segment.
#[derive(Clone, Copy)]
pub struct RobustMutex<'a> {
    bytes: &'a RawMutexBytes,
}

impl std::fmt::Debug for RobustMutex<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RobustMutex").finish_non_exhaustive()
    }
}

/// The `__kind` word of a freshly initialised robust, process-shared mutex,
/// computed once on a private buffer.
fn expected_kind() -> i32 {
    use std::sync::OnceLock;
    static KIND: OnceLock<i32> = OnceLock::new();
    *KIND.get_or_init(|| {
        let private = RawMutexBytes(UnsafeCell::new([0; MUTEX_BYTES]));
        // SAFETY: `private` is this function's own buffer, unseen by any
        // other thread or process, and outlives the call.
        match unsafe { RobustMutex::init(&private) } {
            Ok(_) => private.kind_word(),
            // i32::MIN is no valid kind: every opener will then refuse.
            Err(_) => i32::MIN,
        }
    })
}

impl<'a> RobustMutex<'a> {
    /// Initialises a robust, process-shared mutex in `bytes`.
    ///
    /// # Safety
    /// No other thread or process may use `bytes` as a mutex, or read or
    /// write them, until this returns and the initialisation is published to
    /// them with a Release store they read with Acquire. Initialising a mutex
    /// that someone may hold is undefined behaviour.
    ///
    /// # Errors
    /// Whatever `pthread_mutexattr_*` or `pthread_mutex_init` report.
    pub unsafe fn init(bytes: &'a RawMutexBytes) -> io::Result<RobustMutex<'a>> {
        let mut attr = MaybeUninit::<libc::pthread_mutexattr_t>::uninit();
        // SAFETY: `pthread_mutexattr_init` initialises the attribute object it
        // is given; nothing reads `attr` before it returned 0.
        check(unsafe { libc::pthread_mutexattr_init(attr.as_mut_ptr()) })?;
        let attr_ptr = attr.as_mut_ptr();
        let result = (|| {
            // SAFETY: `attr_ptr` is an initialised attribute object (above).
            check(unsafe {
                libc::pthread_mutexattr_setpshared(attr_ptr, libc::PTHREAD_PROCESS_SHARED)
            })?;
            // SAFETY: as above.
            check(unsafe {
                libc::pthread_mutexattr_setrobust(attr_ptr, libc::PTHREAD_MUTEX_ROBUST)
            })?;
            // SAFETY: `bytes` is large and aligned enough for a
            // `pthread_mutex_t` (checked at compile time), and the caller
            // promises nobody else uses it yet.
            check(unsafe { libc::pthread_mutex_init(bytes.as_ptr(), attr_ptr) })
        })();
        // SAFETY: `attr_ptr` is initialised and not used after this.
        unsafe { libc::pthread_mutexattr_destroy(attr_ptr) };
        result.map(|()| RobustMutex { bytes })
    }

    /// The mutex in `bytes`, which another process initialised.
    ///
    /// # Errors
    /// [`MutexError::NotAMutex`] when the bytes do not hold a robust,
    /// process-shared mutex.
    ///
    /// # Safety
    /// [`RobustMutex::init`] must have run on `bytes` and be visible to this
    /// thread (the segment's magic was read with Acquire after the creator's
    /// Release store). The check made here catches garbage, not a mutex
    /// initialised concurrently.
    pub unsafe fn open(bytes: &'a RawMutexBytes) -> Result<RobustMutex<'a>, MutexError> {
        if bytes.kind_word() != expected_kind() {
            return Err(MutexError::NotAMutex);
        }
        Ok(RobustMutex { bytes })
    }

    /// The mutex in `bytes`, without the check of [`RobustMutex::open`].
    ///
    /// # Safety
    /// As for [`RobustMutex::open`], and `init` or `open` already succeeded
    /// on these bytes in this process.
    pub unsafe fn opened(bytes: &'a RawMutexBytes) -> RobustMutex<'a> {
        RobustMutex { bytes }
    }

    /// Takes the mutex if it is free; `Ok(None)` if someone holds it.
    ///
    /// # Errors
    /// As [`RobustMutex::lock_until`].
    pub fn try_lock(&self) -> Result<Option<Acquired>, MutexError> {
        // SAFETY: `bytes` holds an initialised mutex (`init` or `open`) that
        // stays mapped for 'a.
        let rc = unsafe { libc::pthread_mutex_trylock(self.bytes.as_ptr()) };
        self.acquired(rc)
    }

    /// Takes the mutex, sleeping until `deadline` at the latest (a
    /// CLOCK_MONOTONIC time, see [`monotonic_after`]); `Ok(None)` if it is
    /// still held then. A holder's death wakes the sleeper at once.
    ///
    /// # Errors
    /// [`MutexError::NotRecoverable`], [`MutexError::NotAMutex`] (EINVAL),
    /// or another error of `pthread_mutex_clocklock`.
    pub fn lock_until(&self, deadline: Timespec) -> Result<Option<Acquired>, MutexError> {
        let abstime = libc::timespec {
            tv_sec: deadline.tv_sec as _,
            tv_nsec: deadline.tv_nsec as _,
        };
        // SAFETY: as in `try_lock`; `abstime` is a valid timespec that lives
        // across the call.
        let rc = unsafe {
            pthread_mutex_clocklock(self.bytes.as_ptr(), libc::CLOCK_MONOTONIC, &abstime)
        };
        self.acquired(rc)
    }

    /// Releases the mutex, which this thread must hold.
    ///
    /// # Errors
    /// `EPERM` if this thread does not hold it (a robust mutex checks).
    pub fn unlock(&self) -> Result<(), MutexError> {
        // SAFETY: as in `try_lock`. Unlocking a robust mutex this thread
        // does not own fails with EPERM rather than corrupting it.
        check(unsafe { libc::pthread_mutex_unlock(self.bytes.as_ptr()) }).map_err(MutexError::Os)
    }

    /// Turns a pthread return code into an outcome; on `EOWNERDEAD` marks
    /// the mutex consistent, so that unlocking it later does not make it
    /// unrecoverable for everyone.
    fn acquired(&self, rc: libc::c_int) -> Result<Option<Acquired>, MutexError> {
        match rc {
            0 => Ok(Some(Acquired::Clean)),
            libc::EBUSY | libc::ETIMEDOUT => Ok(None),
            libc::EOWNERDEAD => {
                // SAFETY: EOWNERDEAD means this thread now owns the mutex,
                // which is the precondition of `pthread_mutex_consistent`.
                check(unsafe { libc::pthread_mutex_consistent(self.bytes.as_ptr()) })?;
                Ok(Some(Acquired::OwnerDied))
            }
            libc::ENOTRECOVERABLE => Err(MutexError::NotRecoverable),
            libc::EINVAL => Err(MutexError::NotAMutex),
            errno => Err(MutexError::Os(io::Error::from_raw_os_error(errno))),
        }
    }
}

/// The CLOCK_MONOTONIC time `after` from now, for [`RobustMutex::lock_until`].
pub fn monotonic_after(after: Duration) -> Timespec {
    let now = clock_gettime(ClockId::Monotonic);
    let nanos = now.tv_nsec as u64 + u64::from(after.subsec_nanos());
    Timespec {
        tv_sec: now
            .tv_sec
            .saturating_add(after.as_secs().min(i64::MAX as u64 / 2) as i64)
            .saturating_add((nanos / 1_000_000_000) as i64),
        tv_nsec: (nanos % 1_000_000_000) as _,
    }
}

fn check(rc: libc::c_int) -> io::Result<()> {
    match rc {
        0 => Ok(()),
        errno => Err(io::Error::from_raw_os_error(errno)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Instant;

    fn fresh() -> Arc<RawMutexBytes> {
        let bytes = Arc::new(RawMutexBytes(UnsafeCell::new([0; MUTEX_BYTES])));
        // SAFETY: nobody else has seen `bytes` yet.
        unsafe { RobustMutex::init(&bytes) }.unwrap();
        bytes
    }

    #[test]
    fn excludes_times_out_and_releases() {
        let bytes = fresh();
        // SAFETY: initialised above, in this process.
        let m = unsafe { RobustMutex::open(&bytes) }.unwrap();
        assert_eq!(m.try_lock().unwrap(), Some(Acquired::Clean));
        let b2 = Arc::clone(&bytes);
        let waited = std::thread::spawn(move || {
            // SAFETY: as above.
            let m = unsafe { RobustMutex::open(&b2) }.unwrap();
            assert_eq!(m.try_lock().unwrap(), None);
            let t = Instant::now();
            let got = m
                .lock_until(monotonic_after(Duration::from_millis(150)))
                .unwrap();
            (got, t.elapsed())
        })
        .join()
        .unwrap();
        assert_eq!(waited.0, None);
        assert!(waited.1 >= Duration::from_millis(140), "{:?}", waited.1);
        m.unlock().unwrap();
        let b3 = Arc::clone(&bytes);
        let got = std::thread::spawn(move || {
            // SAFETY: as above.
            let m = unsafe { RobustMutex::open(&b3) }.unwrap();
            let got = m
                .lock_until(monotonic_after(Duration::from_secs(5)))
                .unwrap();
            m.unlock().unwrap();
            got
        })
        .join()
        .unwrap();
        assert_eq!(got, Some(Acquired::Clean));
    }

    #[test]
    fn a_dead_holder_is_reported_once_and_the_mutex_stays_usable() {
        let bytes = fresh();
        let b2 = Arc::clone(&bytes);
        // A thread that exits holding the mutex: glibc's robust list makes
        // the next locker see EOWNERDEAD, as for a killed process.
        std::thread::spawn(move || {
            // SAFETY: as above.
            let m = unsafe { RobustMutex::open(&b2) }.unwrap();
            assert_eq!(m.try_lock().unwrap(), Some(Acquired::Clean));
        })
        .join()
        .unwrap();
        // SAFETY: as above.
        let m = unsafe { RobustMutex::open(&bytes) }.unwrap();
        let got = m
            .lock_until(monotonic_after(Duration::from_secs(5)))
            .unwrap();
        assert_eq!(got, Some(Acquired::OwnerDied));
        m.unlock().unwrap();
        assert_eq!(m.try_lock().unwrap(), Some(Acquired::Clean));
        m.unlock().unwrap();
    }

    #[test]
    fn a_sleeping_waiter_wakes_when_the_holder_dies() {
        let bytes = fresh();
        let b2 = Arc::clone(&bytes);
        let (tx, rx) = std::sync::mpsc::channel();
        let holder = std::thread::spawn(move || {
            // SAFETY: as above.
            let m = unsafe { RobustMutex::open(&b2) }.unwrap();
            m.try_lock().unwrap().unwrap();
            tx.send(()).unwrap();
            std::thread::sleep(Duration::from_millis(200));
            // Ends holding it.
        });
        rx.recv().unwrap();
        // SAFETY: as above.
        let m = unsafe { RobustMutex::open(&bytes) }.unwrap();
        let t = Instant::now();
        let got = m
            .lock_until(monotonic_after(Duration::from_secs(30)))
            .unwrap();
        assert_eq!(got, Some(Acquired::OwnerDied));
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "woke at the deadline, not the death"
        );
        m.unlock().unwrap();
        holder.join().unwrap();
    }

    #[test]
    fn garbage_is_not_a_mutex() {
        let bytes = RawMutexBytes(UnsafeCell::new([0x5a; MUTEX_BYTES]));
        // SAFETY: a private buffer; `open` only reads the kind word.
        let got = unsafe { RobustMutex::open(&bytes) };
        assert!(matches!(got, Err(MutexError::NotAMutex)));
        let zeros = RawMutexBytes(UnsafeCell::new([0; MUTEX_BYTES]));
        // SAFETY: as above.
        let got = unsafe { RobustMutex::open(&zeros) };
        assert!(matches!(got, Err(MutexError::NotAMutex)));
    }

    #[test]
    fn monotonic_deadlines_carry_nanoseconds() {
        let a = monotonic_after(Duration::from_millis(1999));
        assert!((0..1_000_000_000).contains(&a.tv_nsec));
        let now = clock_gettime(ClockId::Monotonic);
        let diff = (a.tv_sec - now.tv_sec) as f64 + (a.tv_nsec - now.tv_nsec) as f64 / 1e9;
        assert!((1.9..2.1).contains(&diff), "{diff}");
    }
}
