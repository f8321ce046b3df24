//! The SIGBUS guard: a fault on a truncated mapping becomes zero pages and a flag, not a dead process.
//!
//! # Why
//!
//! A file in `/dev/shm` that is mapped by this process can be truncated at any
//! time by any other process of the same user. An access to a mapped page that
//! now lies past the end of the file raises `SIGBUS` (`BUS_ADRERR`), whose
//! default action kills the reader. Code that maps such files cannot prevent
//! the truncation, so it needs the access to survive and to learn that the data
//! it read is bad.
//!
//! # Technique
//!
//! The one Wayland compositors use for `wl_shm` pools (libwayland's
//! `wl_shm_buffer_begin_access`): a process-wide `SIGBUS` handler looks up the
//! faulting address (`si_addr`) in a registry of guarded ranges. When it lies in
//! one, the handler maps private anonymous zero pages with
//! `mmap(MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, PROT_READ | PROT_WRITE)` over
//! the range from the faulting page to the end of the registration, marks the
//! registration as tripped and returns, so the faulting instruction is executed
//! again and reads zeros. Only that suffix is replaced, because a truncation
//! removes a suffix of the file: the pages before it (for example a header page
//! holding a lock and a state word) stay shared with the other process.
//!
//! A `SIGBUS` that is not a `BUS_ADRERR` fault inside a registered range is
//! passed on to the disposition that was in place before the handler was
//! installed (Rust's std installs one on Linux for stack-overflow detection), so
//! such a fault behaves as if this module did not exist: by default the process
//! dies with `SIGBUS`.
//!
//! # Limits
//!
//! - Linux only (`si_addr` semantics, `MAP_FIXED` over part of a mapping,
//!   `__errno_location`).
//! - The zero pages are private: writes to them are lost and never reach the
//!   file, and data read from them is zeros, not the other process's data.
//! - A tripped registration stays tripped. The caller must check
//!   [`Guard::tripped`] after each phase of access (for example after copying
//!   a record out, before trusting it) and treat everything read in that phase
//!   as bad.
//! - At most [`MAX_GUARDS`] registrations are live at once.
//! - The handler is installed once, on the first registration, and stays
//!   installed. A `SIGBUS` handler that other code installs later replaces it;
//!   install such handlers before the first registration so they are chained.

use std::cell::UnsafeCell;
use std::ffi::c_int;
use std::ffi::c_void;
use std::io;
use std::mem::MaybeUninit;
use std::ptr;
use std::sync::atomic::{fence, AtomicBool, AtomicUsize, Ordering};
use std::sync::OnceLock;

/// How many registrations can be live at the same time.
pub const MAX_GUARDS: usize = 64;

/// One registry entry.
///
/// `owned` says which [`Guard`] holds the slot and is only touched outside the
/// signal handler. `start`/`end` are the registered range, published with a
/// sequence lock (`seq`), so that the handler, which cannot wait, reads either
/// a consistent range or none: an odd `seq` means the owner is rewriting the
/// range; `end == 0` means the slot holds no range.
#[derive(Debug)]
struct Slot {
    owned: AtomicBool,
    seq: AtomicUsize,
    start: AtomicUsize,
    end: AtomicUsize,
    tripped: AtomicBool,
}

impl Slot {
    const fn new() -> Slot {
        Slot {
            owned: AtomicBool::new(false),
            seq: AtomicUsize::new(0),
            start: AtomicUsize::new(0),
            end: AtomicUsize::new(0),
            tripped: AtomicBool::new(false),
        }
    }

    /// Publishes `[start, end)` (or "no range" for `0, 0`) and clears `tripped`.
    /// Only the owner of the slot calls this, so `seq` has a single writer.
    fn publish(&self, start: usize, end: usize) {
        // Relaxed: only this thread writes `seq` while it owns the slot, and the
        // claim (Acquire on `owned`) ordered this load after the previous
        // owner's last store to `seq`.
        let seq = self.seq.load(Ordering::Relaxed);
        self.seq.store(seq.wrapping_add(1), Ordering::Relaxed);
        // Release fence: a handler whose Relaxed loads of `start`/`end` below see
        // any of the new values has its Acquire fence (in `range`) synchronize
        // with this fence, so its second load of `seq` sees the odd value (or a
        // later one) and it discards the read.
        fence(Ordering::Release);
        self.start.store(start, Ordering::Relaxed);
        self.end.store(end, Ordering::Relaxed);
        self.tripped.store(false, Ordering::Relaxed);
        // Release: pairs with the Acquire load of `seq` in `range`; a handler
        // that reads this even value also reads the `start`/`end` stored above.
        // It also publishes `tripped = false` to whoever later receives the
        // `Guard`, and, in `register`, the install that ran before it.
        self.seq.store(seq.wrapping_add(2), Ordering::Release);
    }

    /// The published range, or `None` if the slot is empty or being rewritten.
    /// Async-signal-safe: atomics only, never waits.
    fn range(&self) -> Option<(usize, usize)> {
        // Acquire: pairs with the final Release store of `seq` in `publish`.
        let before = self.seq.load(Ordering::Acquire);
        if before & 1 != 0 {
            return None;
        }
        let start = self.start.load(Ordering::Relaxed);
        let end = self.end.load(Ordering::Relaxed);
        // Acquire fence: pairs with the Release fence in `publish` (see there).
        fence(Ordering::Acquire);
        let after = self.seq.load(Ordering::Relaxed);
        (before == after && end != 0).then_some((start, end))
    }
}

static SLOTS: [Slot; MAX_GUARDS] = [const { Slot::new() }; MAX_GUARDS];

/// The page size, stored by `install` before any slot is published.
static PAGE_SIZE: AtomicUsize = AtomicUsize::new(0);

/// The `SIGBUS` disposition that was in place before ours, for chaining.
struct OldAction(UnsafeCell<MaybeUninit<libc::sigaction>>);

// SAFETY: the cell is written exactly once, inside the `OnceLock` initializer
// of `INSTALL` (so by one thread), before `OLD_SAVED` is set with Release; it
// is only read after an Acquire load of `OLD_SAVED` returned true, and never
// written again. Shared references therefore never see a concurrent write.
unsafe impl Sync for OldAction {}

static OLD_ACTION: OldAction = OldAction(UnsafeCell::new(MaybeUninit::uninit()));

/// Set once `OLD_ACTION` holds the previous disposition.
static OLD_SAVED: AtomicBool = AtomicBool::new(false);

/// Result of installing the handler (an errno on failure), computed once.
static INSTALL: OnceLock<Result<(), i32>> = OnceLock::new();

/// Registration of one mapping `[addr, addr + len)` whose `SIGBUS` faults
/// (accesses past the end of a truncated file) are caught.
///
/// Dropping the guard unregisters the range; it must be dropped before the
/// mapping is unmapped.
#[derive(Debug)]
pub struct Guard {
    slot: &'static Slot,
}

impl Guard {
    /// Registers `[addr, addr + len)`, installing the process-wide handler on
    /// first use.
    ///
    /// `len` is rounded up to whole pages, as the mapping itself is. Fails
    /// with `InvalidInput` if `addr` is null or not page-aligned, if `len` is
    /// zero or the range wraps, with the OS error if the handler cannot be
    /// installed, and with an error if [`MAX_GUARDS`] registrations are live.
    ///
    /// # Safety
    ///
    /// - Every page of the range must belong to a mapping that this code owns
    ///   (typically one `mmap` of a shared file), and stay mapped until the
    ///   returned guard is dropped: on a fault in the range, the handler
    ///   replaces the pages from the faulting one to the end of the range with
    ///   private zero pages, which would corrupt any other memory there.
    /// - Whoever accesses the range must accept that those pages then read as
    ///   zeros and drop writes to the file, and must check
    ///   [`tripped`](Guard::tripped).
    /// - Ranges of live guards should not overlap; a fault is attributed to
    ///   the first matching registration.
    pub unsafe fn register(addr: *mut u8, len: usize) -> io::Result<Guard> {
        INSTALL
            .get_or_init(install)
            .map_err(io::Error::from_raw_os_error)?;
        // Relaxed: `install` stored it on this thread or on the thread whose
        // `OnceLock` initialization `get_or_init` synchronized with.
        let page = PAGE_SIZE.load(Ordering::Relaxed);
        let start = addr as usize;
        let end = len
            .checked_next_multiple_of(page)
            .and_then(|len| start.checked_add(len));
        let end = match end {
            Some(end) if start != 0 && start.is_multiple_of(page) && len != 0 => end,
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "SIGBUS guard range must be a non-empty page-aligned range",
                ))
            }
        };
        let slot = SLOTS
            .iter()
            // Acquire: pairs with the Release store of `owned = false` in
            // `Drop`, so the previous owner's stores to the slot happen before
            // ours.
            .find(|slot| {
                slot.owned
                    .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            })
            .ok_or_else(|| {
                io::Error::other(format!("all {MAX_GUARDS} SIGBUS guard slots are in use"))
            })?;
        slot.publish(start, end);
        Ok(Guard { slot })
    }

    /// Whether a fault inside this range was caught: some of its pages now
    /// read as zeros and are no longer shared with the file.
    pub fn tripped(&self) -> bool {
        // Acquire: pairs with the Release store in the handler, so a caller
        // that sees `true` also sees everything the faulting thread did before
        // the fault.
        self.slot.tripped.load(Ordering::Acquire)
    }
}

impl Drop for Guard {
    /// Unregisters the range.
    ///
    /// A guard is dropped only when no access into its range can still run
    /// (its mapping outlives it and the accesses go through the mapping's
    /// owner), so no fault in this range can race with the drop. A handler
    /// running for a fault in another range may read this slot meanwhile: the
    /// sequence lock makes it see the old range, no range, or an inconsistent
    /// read it discards; none of those contain its faulting address.
    fn drop(&mut self) {
        self.slot.publish(0, 0);
        // Release: pairs with the Acquire compare-exchange in `register`.
        self.slot.owned.store(false, Ordering::Release);
    }
}

/// Saves the current `SIGBUS` disposition and installs `handle_sigbus`.
/// Runs once, inside the `OnceLock` initializer.
///
/// The disposition is read and replaced by two calls; a handler installed by
/// another thread between them would be replaced without being chained to.
fn install() -> Result<(), i32> {
    // SAFETY: sysconf has no memory-safety preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let page = usize::try_from(page)
        .ok()
        .filter(|page| page.is_power_of_two())
        .ok_or(libc::EINVAL)?;
    // Relaxed: readers are ordered after this store by the `OnceLock` (in
    // `register`) or by the Release/Acquire pair on a slot's `seq` (the
    // handler reads it only after finding a published slot).
    PAGE_SIZE.store(page, Ordering::Relaxed);

    // SAFETY: a null new action only queries. The out-pointer is valid for a
    // `sigaction` write, and nothing else accesses the cell now: this is the
    // only write, it runs once under the `OnceLock`, and readers wait for
    // `OLD_SAVED`, which is still false.
    if unsafe { libc::sigaction(libc::SIGBUS, ptr::null(), OLD_ACTION.0.get().cast()) } != 0 {
        return Err(errno());
    }
    // Release: pairs with the Acquire load in `chain`, making the write to
    // `OLD_ACTION` above visible to the handler.
    OLD_SAVED.store(true, Ordering::Release);

    // SAFETY: `libc::sigaction` is plain integers and a signal set; all zeros
    // is a valid value (no handler, no flags, empty mask).
    let mut action: libc::sigaction = unsafe { MaybeUninit::zeroed().assume_init() };
    action.sa_sigaction = handle_sigbus as *const () as libc::sighandler_t;
    // SA_SIGINFO: the handler needs `si_addr` and `si_code`.
    // SA_ONSTACK: the chained std handler detects stack overflow and expects to
    //   run on the thread's alternate signal stack; without one, the normal
    //   stack is used, as before.
    // No SA_NODEFER: the handler never raises SIGBUS synchronously (it returns
    //   to re-execute the fault, or leaves a raised SIGBUS pending until it
    //   returns), so it has no use for it; and keeping SIGBUS blocked while the
    //   handler runs means a SIGBUS inside the handler, or inside a chained
    //   handler, kills the process (the kernel forces the default action on a
    //   blocked fault signal) instead of recursing.
    action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
    // SAFETY: `action.sa_mask` is a valid, writable signal set.
    unsafe { libc::sigemptyset(&mut action.sa_mask) };
    // SAFETY: `action` is a fully initialized `sigaction` whose handler is an
    // `extern "C"` function with the SA_SIGINFO signature; the old action is
    // not requested.
    if unsafe { libc::sigaction(libc::SIGBUS, &action, ptr::null_mut()) } != 0 {
        return Err(errno());
    }
    Ok(())
}

fn errno() -> i32 {
    io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EINVAL)
}

/// The `SIGBUS` handler.
///
/// Async-signal-safe: it uses atomics, stack values and direct system calls
/// only (`mmap`, `sigaction`, `raise`); no allocation, no locks, no panics
/// (all arithmetic is checked by comparisons before it is done). glibc's and
/// musl's `mmap` are thin wrappers around the system call, and libwayland's
/// SIGBUS handler calls it the same way; `sigaction` and `raise` are
/// async-signal-safe by POSIX. `errno` is saved and restored for the
/// interrupted code.
///
/// # Safety
///
/// Only to be called by the kernel as a `SA_SIGINFO` handler for `SIGBUS`.
unsafe extern "C" fn handle_sigbus(sig: c_int, info: *mut libc::siginfo_t, ctx: *mut c_void) {
    // SAFETY: `__errno_location` returns the calling thread's errno slot,
    // valid for the life of the thread.
    let errno = unsafe { libc::__errno_location() };
    // SAFETY: `errno` is valid and aligned (see above).
    let saved_errno = unsafe { errno.read() };
    // SAFETY: with SA_SIGINFO the kernel passes a valid `siginfo_t` that lives
    // until the handler returns; `info` is checked for null regardless.
    // `si_addr` is only read for a `BUS_ADRERR` fault, for which the kernel
    // fills it in.
    let fault = unsafe {
        match info.as_ref() {
            Some(info) if info.si_code == libc::BUS_ADRERR => Some(info.si_addr() as usize),
            _ => None,
        }
    };
    if !fault.is_some_and(catch) {
        // SAFETY: forwarded unchanged from the kernel's call of this handler.
        unsafe { chain(sig, info, ctx) };
    }
    // SAFETY: as for the read above.
    unsafe { errno.write(saved_errno) };
}

/// If `addr` lies in a registered range, replaces the pages from the one
/// holding `addr` to the end of that range with zero pages, marks the range
/// tripped and returns true.
fn catch(addr: usize) -> bool {
    for slot in &SLOTS {
        let Some((start, end)) = slot.range() else {
            continue;
        };
        if addr < start || addr >= end {
            continue;
        }
        // Relaxed: `install` stored it before the slot's `seq` was published
        // with Release, and `range` read `seq` with Acquire.
        let page = PAGE_SIZE.load(Ordering::Relaxed);
        if page == 0 {
            return false;
        }
        // `start` and `end` are page-aligned, so `from` lies in [start, addr]
        // and `end - from` is a positive multiple of the page size.
        let from = addr & !(page - 1);
        // SAFETY: [from, end) lies in a registered range, which by the contract
        // of `Guard::register` consists of pages of a mapping that its owner
        // set aside for this replacement and that stays mapped while the guard
        // lives; the guard is live because an access into its range is running
        // (the faulting one). MAP_FIXED replaces exactly those pages and no
        // other memory. `from` is page-aligned as MAP_FIXED requires.
        let mapped = unsafe {
            libc::mmap(
                from as *mut c_void,
                end - from,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_FIXED | libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if mapped == libc::MAP_FAILED {
            return false;
        }
        // Release: pairs with the Acquire load in `Guard::tripped`. The slot
        // cannot have been reused since `range` read it: its guard lives while
        // the faulting access runs.
        slot.tripped.store(true, Ordering::Release);
        return true;
    }
    false
}

/// Passes a `SIGBUS` that is not ours to the disposition saved at install
/// time, with the effect that disposition would have had on its own.
///
/// # Safety
///
/// Only to be called from `handle_sigbus`, with the arguments the kernel
/// passed to it.
unsafe fn chain(sig: c_int, info: *mut libc::siginfo_t, ctx: *mut c_void) {
    // SAFETY: see `handle_sigbus`; null is handled.
    let from_kernel = unsafe { info.as_ref() }.is_some_and(|info| info.si_code > 0);
    // Acquire: pairs with the Release store in `install`. The handler is only
    // installed after that store, so this is true whenever the kernel runs
    // the handler; the check orders the read of `OLD_ACTION` formally.
    if !OLD_SAVED.load(Ordering::Acquire) {
        reset_default(sig);
        // SAFETY: `raise` is async-signal-safe and has no preconditions.
        unsafe { libc::raise(sig) };
        return;
    }
    // SAFETY: `OLD_SAVED` is true, so the cell was initialized by the query in
    // `install` and is never written again (see `impl Sync for OldAction`).
    let old = unsafe { (*OLD_ACTION.0.get()).assume_init_ref() };
    match old.sa_sigaction {
        libc::SIG_DFL => {
            // Default action (terminate with a core dump): restore it and
            // raise. SIGBUS is blocked while this handler runs, so the signal
            // stays pending and kills the process when the handler returns.
            reset_default(sig);
            // SAFETY: `raise` is async-signal-safe and has no preconditions.
            unsafe { libc::raise(sig) };
        }
        libc::SIG_IGN => {
            // An ignored signal sent by a process stays ignored. A fault
            // cannot be ignored: the kernel forces the default action for it,
            // which this reproduces.
            if from_kernel {
                reset_default(sig);
                // SAFETY: `raise` is async-signal-safe and has no preconditions.
                unsafe { libc::raise(sig) };
            }
        }
        handler => {
            if old.sa_flags & libc::SA_RESETHAND != 0 {
                reset_default(sig);
            }
            if old.sa_flags & libc::SA_SIGINFO != 0 {
                // SAFETY: with SA_SIGINFO, a disposition other than SIG_DFL and
                // SIG_IGN is the address of a function with this signature
                // (that is how the kernel would call it).
                let handler: unsafe extern "C" fn(c_int, *mut libc::siginfo_t, *mut c_void) =
                    unsafe { std::mem::transmute(handler) };
                // SAFETY: called as the kernel would have called it, with the
                // kernel's arguments.
                unsafe { handler(sig, info, ctx) };
            } else {
                // SAFETY: without SA_SIGINFO, a disposition other than SIG_DFL
                // and SIG_IGN is the address of a `void (*)(int)` handler.
                let handler: unsafe extern "C" fn(c_int) = unsafe { std::mem::transmute(handler) };
                // SAFETY: called as the kernel would have called it.
                unsafe { handler(sig) };
            }
        }
    }
}

/// Sets the disposition of `sig` to the default. Async-signal-safe.
fn reset_default(sig: c_int) {
    // SAFETY: all zeros is a valid `sigaction`: SIG_DFL (0), no flags, empty mask.
    let action: libc::sigaction = unsafe { MaybeUninit::zeroed().assume_init() };
    // SAFETY: `action` is a valid `sigaction`; the old action is not requested.
    unsafe { libc::sigaction(sig, &action, ptr::null_mut()) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use memmap2::MmapRaw;
    use std::fs::File;
    use std::os::unix::process::ExitStatusExt;
    use std::process::{Command, Output, Stdio};
    use std::ptr::{read_volatile, write_volatile};
    use std::time::{Duration, Instant};

    /// Set in a re-executed test binary to run the child half of a test.
    const CHILD_ENV: &str = "SIGBUS_GUARD_TEST_CHILD";

    fn page_size() -> usize {
        // SAFETY: sysconf has no memory-safety preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        usize::try_from(page).unwrap()
    }

    /// An unnamed file in /dev/shm (nothing is left behind, even if the process
    /// dies) of `len` bytes.
    fn shm_file(len: usize) -> File {
        let file = tempfile::tempfile_in("/dev/shm").unwrap();
        file.set_len(len as u64).unwrap();
        file
    }

    fn pattern(i: usize) -> u8 {
        (i % 251) as u8 + 1
    }

    /// Writes `pattern` to `[base, base + len)`.
    ///
    /// # Safety
    ///
    /// The range must be mapped, writable and within the file.
    unsafe fn fill(base: *mut u8, len: usize) {
        for i in 0..len {
            // SAFETY: the caller guarantees the range is mapped and writable.
            unsafe { write_volatile(base.add(i), pattern(i)) };
        }
    }

    /// Reads `[base, base + len)` byte by byte.
    ///
    /// # Safety
    ///
    /// The range must be mapped and readable, or guarded.
    unsafe fn read_all(base: *const u8, len: usize) -> Vec<u8> {
        // SAFETY: the caller guarantees the range is readable or guarded.
        (0..len)
            .map(|i| unsafe { read_volatile(base.add(i)) })
            .collect()
    }

    /// The name libtest knows this module's test `name` by.
    fn test_path(name: &str) -> String {
        let module = module_path!();
        let module = module.split_once("::").map_or(module, |(_, rest)| rest);
        format!("{module}::{name}")
    }

    /// Runs test `name` alone in a fresh process of this test binary, with
    /// `CHILD_ENV` set; kills it and fails if it runs for over a minute.
    fn run_child(name: &str) -> Output {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                &test_path(name),
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                child.kill().unwrap();
                let out = child.wait_with_output().unwrap();
                panic!(
                    "child {name} hung; stderr: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        child.wait_with_output().unwrap()
    }

    fn is_child() -> bool {
        std::env::var_os(CHILD_ENV).is_some()
    }

    #[test]
    fn truncation_reads_zeros_and_keeps_prefix_shared() {
        let page = page_size();
        let len = 3 * page;
        let file = shm_file(len);
        let map = MmapRaw::map_raw(&file).unwrap();
        let other = MmapRaw::map_raw(&file).unwrap();
        let base = map.as_mut_ptr();
        // SAFETY: `map` is a mapping owned here and outlives `guard` (declared
        // later, dropped first); all accesses go through volatile raw reads.
        let guard = unsafe { Guard::register(base, len) }.unwrap();
        // SAFETY: the file is `len` bytes long, the mapping is writable.
        unsafe { fill(base, len) };
        assert!(!guard.tripped());

        file.set_len(page as u64).unwrap();
        assert!(!guard.tripped());
        // SAFETY: the range is guarded.
        let bytes = unsafe { read_all(base, len) };
        assert!(guard.tripped());
        for (i, &b) in bytes[..page].iter().enumerate() {
            assert_eq!(b, pattern(i), "byte {i} of the kept page");
        }
        assert!(bytes[page..].iter().all(|&b| b == 0), "tail not zero");

        // Page 0 is still shared with the file, both ways.
        // SAFETY: page 0 lies within the file and both mappings.
        unsafe {
            write_volatile(other.as_mut_ptr(), 0xA5);
            assert_eq!(read_volatile(base), 0xA5);
            write_volatile(base.add(1), 0x5A);
            assert_eq!(read_volatile(other.as_ptr().add(1)), 0x5A);
        }
        // The replaced pages are private and writable.
        // SAFETY: page 1 of `map` is now a private zero page.
        unsafe {
            write_volatile(base.add(page), 7);
            assert_eq!(read_volatile(base.add(page)), 7);
        }
        assert_eq!(file.metadata().unwrap().len(), page as u64);
    }

    #[test]
    fn untouched_guard_is_not_tripped() {
        let page = page_size();
        let len = 2 * page;
        let file = shm_file(len);
        let map = MmapRaw::map_raw(&file).unwrap();
        let base = map.as_mut_ptr();
        // SAFETY: `map` outlives `guard`.
        let guard = unsafe { Guard::register(base, len) }.unwrap();
        // SAFETY: the file is `len` bytes long, the mapping is writable.
        let bytes = unsafe {
            fill(base, len);
            read_all(base, len)
        };
        assert!(bytes.iter().enumerate().all(|(i, &b)| b == pattern(i)));
        assert!(!guard.tripped());
    }

    #[test]
    fn only_the_faulting_registration_trips() {
        let page = page_size();
        let len = 2 * page;
        let (file_a, file_b) = (shm_file(len), shm_file(len));
        let (map_a, map_b) = (
            MmapRaw::map_raw(&file_a).unwrap(),
            MmapRaw::map_raw(&file_b).unwrap(),
        );
        let (a, b) = (map_a.as_mut_ptr(), map_b.as_mut_ptr());
        // SAFETY: both mappings outlive their guards.
        let (guard_a, guard_b) = unsafe {
            (
                Guard::register(a, len).unwrap(),
                Guard::register(b, len).unwrap(),
            )
        };
        // SAFETY: both files are `len` bytes long, the mappings are writable.
        unsafe {
            fill(a, len);
            fill(b, len);
        }
        file_a.set_len(page as u64).unwrap();
        // SAFETY: both ranges are guarded.
        let (bytes_a, bytes_b) = unsafe { (read_all(a, len), read_all(b, len)) };
        assert!(guard_a.tripped());
        assert!(!guard_b.tripped());
        assert!(bytes_a[..page]
            .iter()
            .enumerate()
            .all(|(i, &x)| x == pattern(i)));
        assert!(bytes_a[page..].iter().all(|&x| x == 0));
        assert!(bytes_b.iter().enumerate().all(|(i, &x)| x == pattern(i)));
    }

    /// Parent: runs test `name` in a child and checks that it died of SIGBUS
    /// after reaching the fault. Child: faults on an unguarded truncated
    /// mapping while a guard is live, after setting the SIGBUS disposition to
    /// the default first if `default_first` (so the handler chains to SIG_DFL
    /// rather than to std's handler).
    fn fault_outside_registrations(name: &str, default_first: bool) {
        if !is_child() {
            let out = run_child(name);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(stderr.contains("faulting now"), "child stderr: {stderr}");
            assert_eq!(out.status.signal(), Some(libc::SIGBUS), "{:?}", out.status);
            return;
        }
        let no_core = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `no_core` is a valid rlimit.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_CORE, &no_core) }, 0);
        let query = || {
            // SAFETY: querying the current disposition into a valid out-pointer.
            unsafe {
                let mut current = MaybeUninit::<libc::sigaction>::zeroed();
                assert_eq!(
                    libc::sigaction(libc::SIGBUS, ptr::null(), current.as_mut_ptr()),
                    0
                );
                current.assume_init().sa_sigaction
            }
        };
        // std's stack-overflow handler is installed before main.
        assert_ne!(query(), libc::SIG_DFL);
        if default_first {
            reset_default(libc::SIGBUS);
        }
        let page = page_size();
        let (guarded_file, loose_file) = (shm_file(page), shm_file(2 * page));
        let guarded = MmapRaw::map_raw(&guarded_file).unwrap();
        let loose = MmapRaw::map_raw(&loose_file).unwrap();
        // SAFETY: `guarded` outlives `_guard`.
        let _guard = unsafe { Guard::register(guarded.as_mut_ptr(), page) }.unwrap();
        assert_eq!(query(), handle_sigbus as *const () as libc::sighandler_t);
        loose_file.set_len(0).unwrap();
        eprintln!("faulting now");
        // SAFETY: deliberately faulting: the page lies past the end of the file
        // and outside every registration, so this raises SIGBUS.
        let byte = unsafe { read_volatile(loose.as_ptr().add(page)) };
        eprintln!("survived the fault, read {byte}");
    }

    #[test]
    fn fault_outside_registrations_kills_with_sigbus() {
        fault_outside_registrations("fault_outside_registrations_kills_with_sigbus", false);
    }

    #[test]
    fn fault_outside_registrations_kills_with_sigbus_over_sig_dfl() {
        fault_outside_registrations(
            "fault_outside_registrations_kills_with_sigbus_over_sig_dfl",
            true,
        );
    }

    #[test]
    fn registry_full_is_an_error() {
        if !is_child() {
            let out = run_child("registry_full_is_an_error");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "child failed: {stderr}");
            assert!(
                stderr.contains("registry checked"),
                "child stderr: {stderr}"
            );
            return;
        }
        // Alone in this process, so every slot is free.
        let page = page_size();
        let file = shm_file(page);
        let map = MmapRaw::map_raw(&file).unwrap();
        // SAFETY: `map` outlives the guards; nothing faults.
        let register = || unsafe { Guard::register(map.as_mut_ptr(), page) };
        let mut guards: Vec<Guard> = (0..MAX_GUARDS).map(|_| register().unwrap()).collect();
        assert!(register().is_err());
        guards.pop();
        guards.push(register().unwrap());
        // SAFETY: an unaligned address is rejected before anything is registered.
        let unaligned = unsafe { Guard::register(map.as_mut_ptr().add(1), page) };
        assert_eq!(unaligned.unwrap_err().kind(), io::ErrorKind::InvalidInput);
        drop(guards);
        eprintln!("registry checked");
    }
}
