//! The evidence for the robust mutex: a killed holder wedges raw_sync's mutex for good, not ours.
//!
//! raw_sync was the project's first lock. Its mutex is a plain
//! process-shared pthread mutex: when its holder is killed, nobody can ever
//! take it again, and a waiter can only time out. The segment's robust
//! mutex hands itself to the next locker at once, saying that its owner
//! died. Both are tried here under the same conditions: a child process
//! maps the same file, takes the mutex, and is killed with SIGKILL.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::segment::mutex::{monotonic_after, Acquired, RawMutexBytes, RobustMutex};
use memmap2::MmapRaw;
use raw_sync::locks::{LockInit, Mutex};
use raw_sync::Timeout;

const CHILD: &str = "P1P2_ROBUST_LOCK_CHILD";

/// A file in /dev/shm, mapped, removed when dropped.
struct Shared {
    _file: tempfile::NamedTempFile,
    map: MmapRaw,
}

impl Shared {
    fn new() -> Shared {
        let file = tempfile::Builder::new()
            .prefix("p1p2-test-robust-")
            .tempfile_in("/dev/shm")
            .unwrap();
        file.as_file().set_len(4096).unwrap();
        let map = MmapRaw::map_raw(file.as_file()).unwrap();
        Shared { _file: file, map }
    }

    fn open(path: &str) -> MmapRaw {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .unwrap();
        MmapRaw::map_raw(&file).unwrap()
    }

    fn path(&self) -> String {
        self._file.path().display().to_string()
    }
}

fn bytes(map: &MmapRaw) -> &RawMutexBytes {
    // SAFETY: the mapping is page-aligned and 4096 bytes long, more than the
    // 64 bytes of `RawMutexBytes`; it lives as long as the borrow of `map`.
    unsafe { &*(map.as_ptr() as *const RawMutexBytes) }
}

/// Runs this test binary as a child that takes the mutex of `kind` in the
/// file at `path` and then waits to be killed; returns once it holds it.
fn holder(kind: &str, path: &str) -> std::process::Child {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child", "--nocapture", "--include-ignored"])
        .env(CHILD, format!("{kind}:{path}"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    while !line.starts_with("locked") {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "the child ended");
    }
    child
}

/// The child's side: not a test of its own (it does nothing without the
/// environment variable).
#[test]
#[ignore = "run by the other tests as a child process"]
fn child() {
    let Ok(spec) = std::env::var(CHILD) else {
        return;
    };
    let (kind, path) = spec.split_once(':').unwrap();
    let map = Shared::open(path);
    match kind {
        "raw_sync" => {
            let ptr = map.as_mut_ptr();
            // SAFETY: the parent initialised a raw_sync mutex at the start
            // of this mapping before starting the child.
            let (lock, _) = unsafe { Mutex::from_existing(ptr, ptr.wrapping_add(64)) }.unwrap();
            std::mem::forget(lock.lock().unwrap());
        }
        _ => {
            // SAFETY: the parent initialised a robust mutex there before
            // starting the child.
            let mutex = unsafe { RobustMutex::open(bytes(&map)) }.unwrap();
            assert_eq!(mutex.try_lock().unwrap(), Some(Acquired::Clean));
        }
    }
    println!("locked");
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn a_killed_holder_wedges_raw_syncs_mutex_for_good() {
    let shared = Shared::new();
    let ptr = shared.map.as_mut_ptr();
    // SAFETY: a fresh mapping nobody else uses yet; the mutex is
    // initialised once, before the child opens it.
    let (lock, _) = unsafe { Mutex::new(ptr, ptr.wrapping_add(64)) }.unwrap();
    let mut child = holder("raw_sync", &shared.path());
    child.kill().unwrap();
    child.wait().unwrap();
    // The holder is gone and reaped, yet the mutex stays locked: every
    // timed attempt times out, however often it is made.
    for _ in 0..2 {
        let started = Instant::now();
        assert!(lock.try_lock(Timeout::Val(Duration::from_secs(1))).is_err());
        assert!(started.elapsed() >= Duration::from_millis(900));
    }
}

#[test]
fn a_killed_holder_hands_the_robust_mutex_over_at_once() {
    let shared = Shared::new();
    // SAFETY: a fresh mapping nobody else uses yet; initialised once,
    // before the child opens it.
    let mutex = unsafe { RobustMutex::init(bytes(&shared.map)) }.unwrap();
    let mut child = holder("robust", &shared.path());
    assert_eq!(mutex.try_lock().unwrap(), None, "the child holds it");
    let started = Instant::now();
    child.kill().unwrap();
    let got = mutex
        .lock_until(monotonic_after(Duration::from_secs(30)))
        .unwrap();
    assert_eq!(got, Some(Acquired::OwnerDied));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "woke at the deadline, not at the death: {:?}",
        started.elapsed()
    );
    mutex.unlock().unwrap();
    // Made consistent: it works as before.
    assert_eq!(mutex.try_lock().unwrap(), Some(Acquired::Clean));
    mutex.unlock().unwrap();
    child.wait().unwrap();
}

#[test]
fn raw_syncs_sub_second_timeouts_fail_at_once_with_einval() {
    let shared = Shared::new();
    let ptr = shared.map.as_mut_ptr() as usize;
    // SAFETY: a fresh mapping nobody else uses yet; initialised once.
    let (lock, _) = unsafe { Mutex::new(ptr as *mut u8, (ptr + 64) as *mut u8) }.unwrap();
    // Another thread holds it for the whole test, so a timed lock can only
    // time out or fail.
    let (held_tx, held_rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        // SAFETY: initialised above; the mapping outlives this thread,
        // which is joined before `shared` is dropped.
        let (lock, _) =
            unsafe { Mutex::from_existing(ptr as *mut u8, (ptr + 64) as *mut u8) }.unwrap();
        let guard = lock.lock().unwrap();
        held_tx.send(()).unwrap();
        let _ = done_rx.recv();
        drop(guard);
    });
    held_rx.recv().unwrap();
    // A 900 ms timeout is added to the current nanoseconds without carrying
    // into the seconds: whenever those exceed 100 ms (nine calls in ten),
    // the deadline is invalid and the call fails at once with EINVAL (22).
    let mut einval = None;
    for _ in 0..20 {
        let started = Instant::now();
        if let Err(e) = lock.try_lock(Timeout::Val(Duration::from_millis(900))) {
            if e.to_string().trim_end().ends_with("22") {
                einval = Some(started.elapsed());
                break;
            }
        }
    }
    done_tx.send(()).unwrap();
    holder.join().unwrap();
    let took = einval.expect("no call failed with EINVAL in 20 tries");
    assert!(took < Duration::from_millis(100), "{took:?}");
}
