//! Tests of `SharedValue` and `SharedArray` across real processes.
//!
//! `SharedValue` and `SharedArray` across real processes: children that change
//! what the parent created, typed errors on a wrong open, a lock holder killed
//! with SIGKILL, the `value`, `array` and `race` examples, and the Python
//! consumer against the real `producer`.
//!
//! Every test uses its own segment names (a tag and this process's pid) and
//! checks that nothing with them is left in `/dev/shm` afterwards. A child
//! process is either an example binary (cargo builds them for `cargo test`) or
//! this test executable run again with [`CHILD_ROLE`] set, which makes the
//! otherwise ignored test `child_process` do one job.

mod util;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::layout::{state, Geometry, Kind};
use common::liveness::Ident;
use common::segment::Segment;
use common::shared::{Lock, SharedArray, SharedValue};
use common::{Error, Name};

/// Environment variable that makes `child_process` act, and says how.
const CHILD_ROLE: &str = "P1P2_SHARED_TEST_CHILD";
/// Environment variable with the segment name for `child_process`.
const CHILD_NAME: &str = "P1P2_SHARED_TEST_NAME";
/// The value the `value` child stores.
const CHILD_VALUE: f64 = 1234.5;
/// How long any child may take before the test kills it and fails.
const CHILD_TIMEOUT: Duration = Duration::from_secs(60);

fn unique(tag: &str) -> String {
    format!("itest-{tag}-{}", std::process::id())
}

fn name(tag: &str) -> Name {
    Name::new(&unique(tag)).unwrap()
}

/// The files in /dev/shm whose names contain `fragment`.
fn shm_files_with(fragment: &str) -> Vec<String> {
    std::fs::read_dir("/dev/shm")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|f| f.contains(fragment))
        .collect()
}

fn assert_nothing_left(fragment: &str) {
    let left = shm_files_with(fragment);
    assert!(left.is_empty(), "left in /dev/shm: {left:?}");
}

/// The repository root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `target/<profile>`: this test runs as `target/<profile>/deps/shared-HASH`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_owned()
}

fn example(name: &str) -> PathBuf {
    let path = profile_dir().join("examples").join(name);
    assert!(
        path.exists(),
        "{} is missing (cargo test builds the examples)",
        path.display()
    );
    path
}

/// A child process that is killed and reaped if the test ends early.
struct Reaped(Option<Child>);

impl Reaped {
    fn spawn(command: &mut Command) -> Reaped {
        Reaped(Some(command.spawn().expect("spawn a child process")))
    }

    fn id(&self) -> u32 {
        self.0.as_ref().unwrap().id()
    }

    fn child(&mut self) -> &mut Child {
        self.0.as_mut().unwrap()
    }

    /// Waits at most `limit`; panics (after killing it) if it runs longer.
    fn wait(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        let child = self.child();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("child pid {} ran longer than {limit:?}", child.id());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits (bounded) and collects stdout and stderr, which must be piped.
    /// Reading happens on threads, so a full pipe cannot stall the child.
    fn output(mut self, limit: Duration) -> Output {
        let child = self.child();
        let mut out = child.stdout.take().unwrap();
        let mut err = child.stderr.take().unwrap();
        let out = std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = out.read_to_end(&mut v);
            v
        });
        let err = std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = err.read_to_end(&mut v);
            v
        });
        let status = self.wait(limit);
        self.0 = None;
        Output {
            status,
            stdout: out.join().unwrap(),
            stderr: err.join().unwrap(),
        }
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            if let Ok(None) = child.try_wait() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

fn piped(command: &mut Command) -> &mut Command {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
}

/// This test executable again, running only `child_process` as `role`.
fn child_command(role: &str, name: &Name) -> Command {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "child_process",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ROLE, role)
        .env(CHILD_NAME, name.as_str());
    command
}

/// Runs `child_process` as `role` and asserts that it succeeded.
fn run_child(role: &str, name: &Name) {
    let out = Reaped::spawn(piped(&mut child_command(role, name))).output(CHILD_TIMEOUT);
    assert_success(&out, &format!("child {role}"));
}

/// Not a test of its own: the other tests run this executable again with
/// `CHILD_ROLE` set, and then this function is the child process.
#[test]
#[ignore = "runs only as the child process of the other tests in this file"]
fn child_process() {
    let Ok(role) = std::env::var(CHILD_ROLE) else {
        return;
    };
    let name = Name::new(&std::env::var(CHILD_NAME).unwrap()).unwrap();
    match role.as_str() {
        "value" => {
            let value = SharedValue::<f64>::open(&name).unwrap();
            assert_eq!(value.lock_mode(), Lock::Yes);
            value.set(CHILD_VALUE).unwrap();
        }
        "array" => {
            let array = SharedArray::<i32>::open_with_len(&name, 4).unwrap();
            for x in array.lock().unwrap().iter_mut() {
                *x = -*x;
            }
        }
        "unlocked" => {
            let value = SharedValue::<u16>::open(&name).unwrap();
            assert_eq!(value.lock_mode(), Lock::No);
            assert!(matches!(value.lock(), Err(Error::Unlocked { .. })));
            value.set(value.get().unwrap() + 1).unwrap();
        }
        "wrong-open" => {
            let err = SharedArray::<i32>::open(&name).unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::WrongElementType {
                        found: "i64",
                        expected: "i32",
                        ..
                    }
                ),
                "{err}"
            );
            assert_eq!(
                err.to_string(),
                format!("segment {name} holds i64, not i32")
            );
            let err = SharedArray::<i64>::open_with_len(&name, 4).unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::WrongLength {
                        found: 3,
                        expected: 4,
                        ..
                    }
                ),
                "{err}"
            );
            let err = SharedValue::<i64>::open(&name).unwrap_err();
            assert!(matches!(err, Error::WrongKind { .. }), "{err}");
            let missing = Name::new(&format!("{name}-missing")).unwrap();
            let err = SharedArray::<i64>::open(&missing).unwrap_err();
            assert!(
                matches!(&err, Error::NoSuchSegment { name } if *name == missing.as_str()),
                "{err}"
            );
            assert!(err.to_string().contains(missing.as_str()), "{err}");
            // And the right open still works.
            let array = SharedArray::<i64>::open_with_len(&name, 3).unwrap();
            assert_eq!(array.to_vec().unwrap(), [10, 20, 30]);
        }
        "hold" => {
            let value = SharedValue::<u32>::open(&name).unwrap();
            let mut guard = value.lock().unwrap();
            *guard = 8;
            // Killed by the parent long before this ends.
            std::thread::sleep(CHILD_TIMEOUT);
        }
        other => panic!("unknown child role {other:?}"),
    }
}

#[test]
fn a_child_process_sets_a_value_and_the_parent_sees_it() {
    let n = name("value");
    let value = SharedValue::create(&n, 0.0f64).unwrap();
    run_child("value", &n);
    assert_eq!(value.get().unwrap(), CHILD_VALUE);
    drop(value);
    assert_nothing_left(n.as_str());
}

#[test]
fn a_child_process_negates_an_array_under_the_lock() {
    let n = name("array");
    let array = SharedArray::create(&n, &[2i32, 3, 5, 7]).unwrap();
    run_child("array", &n);
    assert_eq!(array.to_vec().unwrap(), [-2, -3, -5, -7]);
    drop(array);
    assert_nothing_left(n.as_str());
}

#[test]
fn the_child_of_an_unlocked_value_finds_it_unlocked() {
    let n = name("unlocked");
    let value = SharedValue::create_with(&n, 41u16, Lock::No).unwrap();
    run_child("unlocked", &n);
    assert_eq!(value.get().unwrap(), 42);
    drop(value);
    assert_nothing_left(n.as_str());
}

#[test]
fn a_wrong_type_length_kind_or_name_is_a_typed_error_in_another_process() {
    let n = name("wrong");
    let array = SharedArray::create(&n, &[10i64, 20, 30]).unwrap();
    run_child("wrong-open", &n);
    drop(array);
    assert_nothing_left(n.as_str());
}

#[test]
fn a_lock_held_by_a_killed_process_is_recovered_at_once_and_the_value_stays_usable() {
    let n = name("killed");
    let mut value = SharedValue::create(&n, 7u32).unwrap();
    let mut child = Reaped::spawn(child_command("hold", &n).stdout(Stdio::null()));
    let pid = child.id();

    // Wait (bounded) until the child holds the lock and wrote 8 under it.
    let probe = Segment::open(&n).unwrap();
    let deadline = Instant::now() + CHILD_TIMEOUT;
    let written = || {
        // SAFETY: the payload is a u32 at the start of slot 0, 4-aligned,
        // inside the mapping that `probe` keeps alive; an atomic load races
        // with nothing.
        let word = unsafe { &*(probe.payload_ptr(0) as *const std::sync::atomic::AtomicU32) };
        word.load(Ordering::Relaxed)
    };
    while probe.holder_pid(0) != Some(pid) || written() != 8 {
        assert!(
            child.child().try_wait().unwrap().is_none(),
            "the child exited"
        );
        assert!(Instant::now() < deadline, "the child never took the lock");
        std::thread::sleep(Duration::from_millis(5));
    }
    // SIGKILL, and not reaped yet: a zombie counts as dead.
    child.child().kill().unwrap();

    // A long timeout, so that an answer well before it is the kernel
    // handing over the robust mutex, not the wait running out.
    value.set_timeout(Duration::from_secs(30));
    let started = Instant::now();
    assert_eq!(value.get().unwrap(), 8, "the dead holder's write was lost");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert!(!child.wait(CHILD_TIMEOUT).success());
    // The mutex was made consistent: the value keeps working, locked.
    value.set(1).unwrap();
    *value.lock().unwrap() += 1;
    assert_eq!(value.get().unwrap(), 2);
    drop(probe);
    drop(value);
    assert_nothing_left(n.as_str());
}

/// Runs an example binary, bounded, and returns its output and pid.
fn run_example(name: &str, args: &[&str]) -> (Output, u32) {
    let mut command = Command::new(example(name));
    command.args(args);
    let child = Reaped::spawn(piped(&mut command));
    let pid = child.id();
    (child.output(CHILD_TIMEOUT), pid)
}

/// Asserts that the process `what` succeeded, showing its stderr if not.
fn assert_success(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_value_example_prints_value_is_10() {
    let (out, pid) = run_example("value", &[]);
    assert_success(&out, "the example");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "Value is  10\n");
    assert_nothing_left(&format!("example-value-{pid}"));
}

#[test]
fn the_array_example_prints_the_primes_plus_one() {
    let (out, pid) = run_example("array", &[]);
    assert_success(&out, "the example");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "3\n4\n6\n8\n");
    assert_nothing_left(&format!("example-array-{pid}"));
}

/// Parses "NAME N (M lost)" into (N, M).
fn count_and_lost(part: &str, label: &str) -> (u64, u64) {
    let rest = part
        .strip_prefix(label)
        .unwrap_or_else(|| panic!("{part:?} does not start with {label:?}"));
    let (count, lost) = rest.trim().split_once(" (").unwrap();
    let lost = lost.strip_suffix(" lost)").unwrap();
    (count.parse().unwrap(), lost.parse().unwrap())
}

#[test]
fn the_race_example_loses_nothing_with_the_lock() {
    let (out, pid) = run_example("race", &["--procs", "2", "--iters", "2000"]);
    assert_success(&out, "the example");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let parts: Vec<&str> = stdout.trim_end().split(" | ").collect();
    assert_eq!(parts.len(), 3, "{stdout:?}");
    assert_eq!(parts[0], "expected 4000");
    assert_eq!(count_and_lost(parts[1], "with lock"), (4000, 0));
    let (without, lost) = count_and_lost(parts[2], "without lock");
    assert!(without <= 4000 && without + lost == 4000, "{stdout:?}");
    assert_nothing_left(&format!("example-race-{pid}"));
}

/// The pids whose parent is `parent`, from `/proc/*/stat` (field 4, counted
/// after the command name's closing parenthesis).
fn children_of(parent: u32) -> Vec<i32> {
    let mut children = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        if rest.split_whitespace().nth(1) == Some(parent.to_string().as_str()) {
            children.push(pid);
        }
    }
    children
}

#[test]
fn the_race_example_fails_cleanly_when_a_child_is_killed() {
    let mut command = Command::new(example("race"));
    command.args(["--procs", "2", "--iters", "1000000000", "--timeout", "60"]);
    let mut race = Reaped::spawn(piped(&mut command));
    let pid = race.id();
    let fragment = format!("example-race-{pid}");

    // Wait until the first round runs, then SIGKILL one of its children.
    let deadline = Instant::now() + CHILD_TIMEOUT;
    let children = loop {
        let children = children_of(pid);
        if children.len() == 2 && !shm_files_with(&fragment).is_empty() {
            break children;
        }
        assert!(
            race.child().try_wait().unwrap().is_none(),
            "race exited early"
        );
        assert!(Instant::now() < deadline, "the children never started");
        std::thread::sleep(Duration::from_millis(10));
    };
    // SAFETY: kill(2) on a pid whose parent is our own child.
    assert_eq!(unsafe { libc::kill(children[0], libc::SIGKILL) }, 0);

    let out = race.output(CHILD_TIMEOUT);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("race: error: "), "{stderr}");
    assert!(out.stdout.is_empty());
    // The other child was killed too, and nothing is left.
    assert!(!common::liveness::is_alive(children[1] as u32, 0));
    assert_nothing_left(&fragment);
}

/// `python3`, if it is installed and can run the consumer.
fn python3() -> Option<&'static str> {
    util::python3("import ctypes, fcntl, mmap", "3.8 or later").then_some("python3")
}

fn py_consumer(python: &str, args: &[&str]) -> Reaped {
    let mut command = Command::new(python);
    command
        .arg(root().join("scripts/py_consumer.py"))
        .args(args);
    Reaped::spawn(piped(&mut command))
}

/// The `producer` binary (`target/<profile>/producer`). `cargo build` makes
/// it; if it is missing (only `cargo test` ran), it is built here.
fn producer_binary() -> PathBuf {
    let dir = profile_dir();
    let path = dir.join("producer");
    if !path.exists() {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut command = Command::new(cargo);
        command
            .args(["build", "--quiet", "-p", "producer"])
            .current_dir(root());
        if dir.file_name().is_some_and(|p| p == "release") {
            command.arg("--release");
        }
        let status = Reaped::spawn(&mut command).wait(Duration::from_secs(300));
        assert!(status.success(), "cargo build -p producer failed");
    }
    assert!(path.exists(), "{} is missing", path.display());
    path
}

/// A file of the test's own, removed at the end even if the test fails.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn temp_file(tag: &str) -> TempFile {
    TempFile(std::env::temp_dir().join(format!("shared-test-{}.{tag}", std::process::id())))
}

#[test]
fn py_consumer_reads_the_producers_image_and_acknowledges_it() {
    let Some(python) = python3() else { return };
    let n = name("py");
    let image = root().join("assets/image.png");
    let out = temp_file("py-out.png");
    let mut producer = Command::new(producer_binary());
    producer
        .args(["--name", n.as_str(), "--timeout", "30"])
        .arg(&image);
    let producer = Reaped::spawn(piped(&mut producer));
    let consumer = py_consumer(
        python,
        &[
            "--name",
            n.as_str(),
            "--timeout",
            "30",
            "--out",
            out.0.to_str().unwrap(),
        ],
    );
    let consumed = consumer.output(CHILD_TIMEOUT);
    assert_success(&consumed, "the Python consumer");
    assert!(consumed.stderr.is_empty());
    let produced = producer.output(CHILD_TIMEOUT);
    assert_success(&produced, "the producer");
    let stdout = String::from_utf8_lossy(&produced.stdout);
    assert!(stdout.contains("acknowledged"), "{stdout}");
    assert!(std::fs::read(&out.0).unwrap() == std::fs::read(&image).unwrap());
    assert_nothing_left(n.as_str());
}

/// A published segment of this process with `payload` Ready in slot 0,
/// recorded with CRC-32 `crc32`.
fn ready_segment(n: &Name, payload: &[u8], crc32: u32) -> Segment {
    let segment = Segment::create(n, Geometry::new(Kind::Transfer, 100, 1)).unwrap();
    {
        let mut guard = segment.try_lock(0).unwrap().unwrap();
        guard.payload_mut().unwrap()[..payload.len()].copy_from_slice(payload);
        let slot = guard.slot();
        slot.len.store(payload.len() as u64, Ordering::Relaxed);
        slot.crc32.store(crc32, Ordering::Relaxed);
        // The sequence lock after one complete write: even.
        slot.seq.store(2, Ordering::Relaxed);
        guard.set_state(state::READY);
    }
    segment.publish().unwrap();
    segment
}

#[test]
fn py_consumer_rejects_a_crc_mismatch_and_leaves_the_segment_to_its_owner() {
    let Some(python) = python3() else { return };
    let n = name("py-crc");
    let out = temp_file("py-crc.out");
    let payload = b"not what the CRC says";
    let segment = ready_segment(&n, payload, common::png::crc32(payload) ^ 1);

    let consumer = py_consumer(
        python,
        &[
            "--name",
            n.as_str(),
            "--timeout",
            "10",
            "--out",
            out.0.to_str().unwrap(),
        ],
    );
    let python_pid = consumer.id();
    let result = consumer.output(CHILD_TIMEOUT);
    assert_eq!(result.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(
        stderr.starts_with("py_consumer: error: CRC-32 mismatch") && stderr.lines().count() == 1,
        "{stderr}"
    );
    assert_eq!(
        segment.slot(0).state.load(Ordering::Acquire),
        state::REJECTED
    );
    // It released its claim, its holder record and the lock, cleanly.
    assert_eq!(segment.consumer(), None, "pid {python_pid} left its claim");
    assert_eq!(segment.holder_pid(0), None);
    let guard = segment.try_lock(0).unwrap().expect("the lock stayed held");
    assert_eq!(guard.recovered(), None, "the lock was not released");
    drop(guard);
    assert!(!out.0.exists(), "a rejected payload was written");
    // The segment of a live producer is left to it.
    assert!(n.shm_path().exists());
    drop(segment);
    assert_nothing_left(n.as_str());
}

#[test]
fn py_consumer_refuses_a_segment_that_a_live_consumer_claimed() {
    let Some(python) = python3() else { return };
    let n = name("py-claimed");
    let payload = b"claimed by someone else";
    let segment = ready_segment(&n, payload, common::png::crc32(payload));
    // This (live) process claims it first.
    let me = Ident::me().to_word();
    segment.header().consumer.store(me, Ordering::Release);
    let result = py_consumer(
        python,
        &[
            "--name",
            n.as_str(),
            "--timeout",
            "10",
            "--out",
            "/dev/null",
        ],
    )
    .output(CHILD_TIMEOUT);
    assert_eq!(result.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&result.stderr);
    let expected = format!("is already claimed by consumer pid {}", std::process::id());
    assert!(
        stderr.contains(&expected) && stderr.lines().count() == 1,
        "{stderr}"
    );
    assert_eq!(segment.header().consumer.load(Ordering::Acquire), me);
    assert_eq!(segment.slot(0).state.load(Ordering::Acquire), state::READY);
    drop(segment);
    assert_nothing_left(n.as_str());
}

#[test]
fn py_consumer_that_loses_the_race_to_a_withdrawal_and_the_producer_both_report_not_delivered() {
    let Some(python) = python3() else { return };
    let n = name("py-late");
    let out = temp_file("py-late.png");
    // The consumer first, so that it takes the payload as soon as it is
    // published; it then holds the lock past the producer's deadline.
    let consumer = py_consumer(
        python,
        &[
            "--name",
            n.as_str(),
            "--timeout",
            "30",
            "--hold",
            "4000",
            "--out",
            out.0.to_str().unwrap(),
        ],
    );
    let python_pid = consumer.id();
    let mut producer = Command::new(producer_binary());
    producer
        .args(["--name", n.as_str(), "--timeout", "1"])
        .arg(root().join("assets/image.png"));
    let produced = Reaped::spawn(piped(&mut producer)).output(CHILD_TIMEOUT);
    let started = Instant::now();
    let consumed = consumer.output(CHILD_TIMEOUT);

    assert_eq!(produced.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&produced.stderr);
    let expected = format!("consumer pid {python_pid} took segment {n} but did not acknowledge it");
    assert!(stderr.contains(&expected), "{stderr}");

    assert_eq!(consumed.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&consumed.stderr);
    assert!(
        stderr.contains(&format!(
            "withdrew segment p1p2.{n} before the acknowledgement"
        )) && stderr.contains("not delivered")
            && stderr.lines().count() == 1,
        "{stderr}"
    );
    // It noticed at the end of its hold, not at its own deadline.
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(
        !out.0.exists(),
        "the output of an undelivered payload was written"
    );
    let temp = out.0.with_file_name(format!(
        ".{}.py_consumer-{python_pid}",
        out.0.file_name().unwrap().to_string_lossy()
    ));
    assert!(!temp.exists(), "{} was left behind", temp.display());
    assert_nothing_left(n.as_str());
}

/// Waits until `pid` has stopped itself at a `P1P2_STOP_AT` point.
fn wait_stopped(pid: u32) {
    let deadline = Instant::now() + CHILD_TIMEOUT;
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('T'))
        {
            return;
        }
        assert!(Instant::now() < deadline, "pid {pid} never stopped");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Starts a producer that stops itself at `point`, then a Python consumer;
/// kills the producer once the consumer has claimed the segment (it then
/// waits for the lock the producer holds). Returns the producer's pid and
/// the consumer's output.
fn kill_the_producer_at(python: &str, point: &str, n: &Name, out: &Path) -> (u32, Output) {
    let mut producer = Command::new(producer_binary());
    producer
        .args(["--name", n.as_str(), "--timeout", "30"])
        .arg(root().join("assets/image.png"))
        .env("P1P2_STOP_AT", point);
    let mut producer = Reaped::spawn(piped(&mut producer));
    let producer_pid = producer.id();
    wait_stopped(producer_pid);
    let consumer = py_consumer(
        python,
        &[
            "--name",
            n.as_str(),
            "--timeout",
            "30",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    let segment = Segment::open(n).unwrap();
    let deadline = Instant::now() + CHILD_TIMEOUT;
    while segment.consumer_pid() != Some(consumer.id()) {
        assert!(Instant::now() < deadline, "the consumer never claimed it");
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(segment);
    producer.child().kill().unwrap();
    producer.wait(CHILD_TIMEOUT);
    (producer_pid, consumer.output(CHILD_TIMEOUT))
}

#[test]
fn py_consumer_discards_the_payload_of_a_producer_killed_while_writing() {
    let Some(python) = python3() else { return };
    let n = name("py-kill-writing");
    let out = temp_file("py-kill-writing.png");
    let (producer_pid, consumed) = kill_the_producer_at(python, "producer:writing", &n, &out.0);
    assert_eq!(consumed.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&consumed.stderr);
    let expected = format!(
        "producer pid {producer_pid} died while writing its payload into segment p1p2.{n}; \
         the half-written payload was discarded"
    );
    assert!(
        stderr.contains(&expected) && stderr.lines().count() == 1,
        "{stderr}"
    );
    assert!(!out.0.exists(), "a half-written payload was written");
    // The consumer removed the dead producer's segment.
    assert_nothing_left(n.as_str());
}

#[test]
fn py_consumer_uses_the_complete_payload_of_a_producer_killed_after_publishing_it() {
    let Some(python) = python3() else { return };
    let n = name("py-kill-ready");
    let out = temp_file("py-kill-ready.png");
    let (producer_pid, consumed) = kill_the_producer_at(python, "producer:ready", &n, &out.0);
    assert_success(&consumed, "the Python consumer");
    let stdout = String::from_utf8_lossy(&consumed.stdout);
    assert!(
        stdout.contains(&format!(
            "producer pid {producer_pid} died holding the lock after publishing a complete payload"
        )) && stdout.contains("acknowledged (to nobody: the producer is dead)"),
        "{stdout}"
    );
    assert!(
        std::fs::read(&out.0).unwrap() == std::fs::read(root().join("assets/image.png")).unwrap()
    );
    assert_nothing_left(n.as_str());
}

#[test]
fn py_consumer_refuses_a_file_that_is_not_a_segment() {
    let Some(python) = python3() else { return };
    let n = name("py-magic");
    let bogus = TempFile(n.shm_path());
    std::fs::write(&bogus.0, vec![0u8; 8192]).unwrap();
    let result = py_consumer(
        python,
        &["--name", n.as_str(), "--timeout", "5", "--out", "/dev/null"],
    )
    .output(CHILD_TIMEOUT);
    assert_eq!(result.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(stderr.contains("wrong magic"), "{stderr}");
    assert_eq!(
        std::fs::read(&bogus.0).unwrap(),
        vec![0u8; 8192],
        "it wrote"
    );
    drop(bogus);
    assert_nothing_left(n.as_str());
}

#[test]
fn py_consumer_gives_up_when_no_segment_appears() {
    let Some(python) = python3() else { return };
    let n = name("py-none");
    let started = Instant::now();
    let result = py_consumer(
        python,
        &[
            "--name",
            n.as_str(),
            "--timeout",
            "0.3",
            "--out",
            "/dev/null",
        ],
    )
    .output(CHILD_TIMEOUT);
    assert_eq!(result.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("did not appear within 0.3 s"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_nothing_left(n.as_str());
}
