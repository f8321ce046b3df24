//! Helpers for tests that run the real `producer` and `consumer` binaries.
//!
//! Helpers for tests that run the real `producer` and `consumer` binaries:
//! locating them, unique names per test, bounded waits for
//! child processes, and checks that nothing is left in /dev/shm.

#![allow(dead_code)] // each test file uses its own subset

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The sample image.
pub fn image() -> PathBuf {
    root().join("assets/image.png")
}

/// The directory cargo builds this test's profile into: the test runs as
/// `target/<profile>/deps/<test>`, and the binaries sit in `target/<profile>/`.
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    exe.parent()
        .and_then(Path::parent)
        .unwrap_or_else(|| panic!("{} is not in target/<profile>/deps", exe.display()))
        .to_owned()
}

/// Path of a workspace binary, already built next to this test.
/// `cargo test --workspace` builds `producer` and `consumer` before any test
/// runs, since their packages have integration tests of their own.
///
/// # Panics
/// If the binary is missing, saying how to build it.
pub fn bin(name: &str) -> PathBuf {
    let path = target_dir().join(name);
    assert!(
        path.is_file(),
        "{} is missing: build them first: cargo build (or run cargo test --workspace)",
        path.display()
    );
    path
}

/// A segment name no other test (or test run) uses.
pub fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "t-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A fresh temporary directory for one test, removed when dropped, also
/// when the test fails (a panic unwinds through the drop), so no run leaves
/// it behind.
pub fn temp_dir(tag: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("p1p2-test-{}-", unique(tag)))
        .tempdir()
        .unwrap()
}

/// The copies in a report's ledger, as (what, by) pairs.
pub fn copies(report: &serde_json::Value) -> Vec<(String, String)> {
    report["copies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["what"].as_str().unwrap().to_owned(),
                c["by"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// A finished process.
#[derive(Debug)]
pub struct Run {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    pub fn ok(&self) -> &Run {
        assert!(
            self.status.success(),
            "failed ({:?}):\nstdout: {}\nstderr: {}",
            self.status,
            self.stdout,
            self.stderr
        );
        self
    }

    /// The single JSON object `--json` prints.
    pub fn json(&self) -> serde_json::Value {
        let lines: Vec<&str> = self.stdout.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "expected one JSON line, got: {}",
            self.stdout
        );
        serde_json::from_str(lines[0]).expect("stdout is JSON")
    }

    /// Asserts a failure with exit `code`, reported as exactly one line on
    /// stderr that contains every one of `words`, and no panic.
    pub fn fails_with(&self, code: i32, words: &[&str]) -> &Run {
        assert_eq!(
            self.status.code(),
            Some(code),
            "exit status; stdout: {}\nstderr: {}",
            self.stdout,
            self.stderr
        );
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "stderr should be one line: {:?}",
            self.stderr
        );
        assert!(!self.stderr.contains("panicked"), "{}", self.stderr);
        for word in words {
            assert!(
                self.stderr.contains(word),
                "stderr {:?} lacks {word:?}",
                self.stderr
            );
        }
        self
    }
}

/// A running process whose wait is bounded.
pub struct Proc {
    pub pid: u32,
    started: Instant,
    done: mpsc::Receiver<std::io::Result<std::process::Output>>,
    reaped: bool,
}

impl Proc {
    /// Starts `bin` with `args` in the repository root, capturing its output.
    pub fn start(bin_name: &str, args: &[&str]) -> Proc {
        Proc::start_cmd(Command::new(bin(bin_name)).args(args))
    }

    /// Starts `bin` with `args` and the extra environment variables `env`.
    pub fn start_env(bin_name: &str, args: &[&str], env: &[(&str, &str)]) -> Proc {
        let mut cmd = Command::new(bin(bin_name));
        cmd.args(args);
        for (key, value) in env {
            cmd.env(key, value);
        }
        Proc::start_cmd(&mut cmd)
    }

    /// Starts a prepared command, capturing its output.
    pub fn start_cmd(cmd: &mut Command) -> Proc {
        // The clock starts before the spawn: the child may run (and its own
        // timeouts start) before this thread is scheduled again, and a
        // later start would make its life look shorter than it was.
        let started = Instant::now();
        let child = cmd
            .current_dir(root())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let pid = child.id();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        Proc {
            pid,
            started,
            done: rx,
            reaped: false,
        }
    }

    /// Sends `signal` to the process.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) with a pid we spawned and have not reaped yet (the
        // waiting thread reaps it only after it exits) and a valid signal.
        let rc = unsafe { libc::kill(self.pid as i32, signal) };
        assert_eq!(rc, 0, "kill({}, {signal})", self.pid);
    }

    /// Waits at most `limit` until the process has stopped itself (state `T`
    /// in `/proc/PID/stat`, as at a `P1P2_STOP_AT` point).
    ///
    /// # Panics
    /// If it does not stop in time, or ends instead.
    pub fn wait_stopped(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            match proc_state(self.pid) {
                Some('T') => return,
                Some('Z' | 'X') | None => panic!("pid {} ended instead of stopping", self.pid),
                Some(_) => {}
            }
            if Instant::now() >= deadline {
                self.signal(libc::SIGKILL);
                panic!("pid {} did not stop within {limit:?}", self.pid);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits at most `limit` for the process; kills it and fails the test if it
    /// does not finish.
    pub fn wait(mut self, limit: Duration) -> Run {
        match self.done.recv_timeout(limit) {
            Ok(output) => {
                self.reaped = true;
                let output = output.expect("wait");
                Run {
                    status: output.status,
                    stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
                    stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
                    elapsed: self.started.elapsed(),
                }
            }
            Err(_) => {
                self.signal(libc::SIGKILL);
                panic!("pid {} did not finish within {limit:?}", self.pid);
            }
        }
    }
}

/// The state letter of process `pid` (`R`, `S`, `T`, `Z`...) from
/// `/proc/PID/stat`; `None` once it is gone.
pub fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name in parentheses may itself hold spaces or parentheses.
    let after = &stat[stat.rfind(')')? + 1..];
    after.trim_start().chars().next()
}

/// Calls `f` every 5 ms until it is true; whether it was within `limit`.
pub fn poll(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

impl Drop for Proc {
    /// Kills a process the test did not wait for (a failed assertion left it
    /// running, perhaps stopped), so that no stray process outlives its test.
    fn drop(&mut self) {
        // Nothing received: the waiting thread has not reaped it, so the
        // pid is still this process's.
        if !self.reaped && matches!(self.done.try_recv(), Err(mpsc::TryRecvError::Empty)) {
            // SAFETY: kill(2) with a pid we spawned and have not reaped yet,
            // and a valid signal; an error (it ended just now) is harmless.
            unsafe { libc::kill(self.pid as i32, libc::SIGKILL) };
        }
    }
}

/// Runs `bin` to completion (at most 60 s).
pub fn run(bin_name: &str, args: &[&str]) -> Run {
    Proc::start(bin_name, args).wait(Duration::from_secs(60))
}

/// Whether `pid` is stopped (state `T` in `/proc/PID/stat`), as a process
/// is at a `P1P2_STOP_AT` point.
pub fn stopped(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let state = stat.rsplit_once(')')?.1.trim_start().chars().next()?;
            Some(state == 'T')
        })
        .unwrap_or(false)
}

/// Waits until `path` exists (at most `limit`).
pub fn wait_for(path: &Path, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if path.exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

/// This project's files in /dev/shm and the socket directory that belong to `name`.
pub fn leftovers(name: &str) -> Vec<String> {
    let mut found = Vec::new();
    let dirs = [
        PathBuf::from("/dev/shm"),
        common::name::socket_dir(),
        std::env::temp_dir(),
    ];
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let file = entry.file_name().to_string_lossy().into_owned();
            let ours = file.starts_with("p1p2.") || file.starts_with("p1p2-tmp.");
            if ours && (file.ends_with(&format!(".{name}")) || file.contains(&format!(".{name}.")))
            {
                found.push(dir.join(file).display().to_string());
            }
        }
    }
    found
}

/// Fails the test if anything of `name` remains.
pub fn assert_clean(name: &str) {
    let left = leftovers(name);
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// Calls `f` every 5 ms until it returns something (at most 30 s).
pub fn retry<T>(mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(value) = f() {
            return value;
        }
        assert!(Instant::now() < deadline, "gave up retrying");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A loopback address with a port that was free a moment ago.
pub fn free_addr() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

/// A live, published segment `name` owned by the caller, holding the sample
/// image and marked READY; `tweak` may change the slot's fields first.
pub fn live_segment(
    name: &str,
    tweak: impl FnOnce(&common::layout::Slot, usize),
) -> common::segment::Segment {
    use common::layout::{state, Geometry, Kind};
    use std::sync::atomic::Ordering;
    let png = std::fs::read(image()).unwrap();
    let segment = common::segment::Segment::create(
        &common::Name::new(name).unwrap(),
        Geometry::new(Kind::Transfer, png.len() as u64, 1),
    )
    .unwrap();
    {
        let mut guard = segment.try_lock(0).unwrap().unwrap();
        segment.publish().unwrap();
        guard.payload_mut().unwrap()[..png.len()].copy_from_slice(&png);
        let slot = guard.slot();
        slot.len.store(png.len() as u64, Ordering::Relaxed);
        slot.crc32.store(crc32fast::hash(&png), Ordering::Relaxed);
        tweak(slot, png.len());
        guard.set_state(state::READY);
    }
    segment
}

/// One PNG chunk: length, `kind`, `data` and the CRC-32 of kind and data.
pub fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = (data.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let mut crc = crc32fast::Hasher::new();
    crc.update(kind);
    crc.update(data);
    out.extend_from_slice(&crc.finalize().to_be_bytes());
    out
}

/// Asserts that the consumer rejected the payload of `segment` (slot 0
/// REJECTED), then drops it (its owner removes it) and checks that nothing
/// of `name` is left.
pub fn assert_rejected_and_clean(segment: common::segment::Segment, name: &str) {
    use common::layout::state;
    use std::sync::atomic::Ordering;
    assert_eq!(
        segment.slot(0).state.load(Ordering::Acquire),
        state::REJECTED
    );
    drop(segment);
    assert_clean(name);
}

/// Whether `python3` is installed and runs `check` (the imports and
/// attributes a script needs); prints a note when it does not, and the
/// calling test then passes without running it.
pub fn python3(check: &str, needs: &str) -> bool {
    let ok = Command::new("python3")
        .args(["-c", check])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("note: skipped, python3 ({needs}) is not available");
    }
    ok
}
