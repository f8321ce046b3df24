//! Tests of `scripts/py_stream.py`, the Python reader of a stream ring, against the real producer and against lying files.
//!
//! The script reads the ring as `docs/segment-format.md` describes it: these
//! tests hold it to what the Rust reader does. Under `--policy every` it
//! gets every frame and reports the producer's shape; a header that lies
//! (in the segment's header or in a frame's) is one line on stderr and a
//! non-zero exit, never a traceback; a producer that dies or aborts is
//! reported as such. Nothing is left in /dev/shm.

mod util;

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use util::{assert_clean, poll, root, unique, Proc, Run};

const LIMIT: Duration = Duration::from_secs(60);

/// Whether `python3` can run the script (the test passes with a note if not).
fn python3() -> bool {
    util::python3("import ctypes, fcntl, mmap, zlib, json", "3.8 or later")
}

/// Whether the script will find numpy (and so hand frames over as arrays).
fn has_numpy() -> bool {
    Command::new("python3")
        .args(["-c", "import numpy"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Starts `scripts/py_stream.py NAME --json` with `extra` arguments.
fn py_stream(name: &str, extra: &[&str]) -> Proc {
    let mut cmd = Command::new("python3");
    cmd.arg(root().join("scripts/py_stream.py"))
        .arg(name)
        .arg("--json")
        .args(extra);
    Proc::start_cmd(&mut cmd)
}

/// Asserts that the script failed with exit 1 and one line on stderr that
/// holds every one of `words`, without a traceback.
fn refused(run: &Run, words: &[&str]) {
    run.fails_with(1, words);
    assert!(!run.stderr.contains("Traceback"), "{}", run.stderr);
    assert!(run.stdout.is_empty(), "stdout: {}", run.stdout);
}

fn shm_path(name: &str) -> PathBuf {
    PathBuf::from(format!("/dev/shm/p1p2.{name}"))
}

/// A segment file made by hand, removed when dropped (also when the test fails).
struct HandMade {
    file: File,
    _removal: Removal,
}

/// Removes a path when dropped, whether or not the test failed.
struct Removal(PathBuf);

impl Drop for Removal {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The bytes of a stream ring's header page and `slots` slots of one page:
/// magic, version 2, kind 5, the geometry, and `tweak` applied last.
fn ring_bytes(slots: u32, tweak: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut bytes = vec![0u8; 4096 + slots as usize * 4096];
    let mut put = |offset: usize, value: &[u8]| {
        bytes[offset..offset + value.len()].copy_from_slice(value);
    };
    put(0, b"P1P2SHM\0");
    put(8, &2u32.to_le_bytes()); // version
    put(12, &4096u32.to_le_bytes()); // header size
    put(16, &4096u64.to_le_bytes()); // capacity
    put(24, &4096u64.to_le_bytes()); // slot stride
    put(32, &slots.to_le_bytes()); // slot count
    put(36, &5u32.to_le_bytes()); // kind: stream
    put(44, &1u32.to_le_bytes()); // element size
    tweak(&mut bytes);
    bytes
}

/// Writes `bytes` as /dev/shm/p1p2.NAME (mode 0600, a new file).
fn hand_made(name: &str, bytes: &[u8]) -> HandMade {
    let path = shm_path(name);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .unwrap();
    let made = HandMade {
        file,
        _removal: Removal(path),
    };
    made.file.write_all_at(bytes, 0).unwrap();
    made
}

#[test]
fn under_every_the_python_reader_gets_every_frame_in_place() {
    if !python3() {
        return;
    }
    const FRAMES: u64 = 200;
    let name = unique("py-stream");
    let producer = Proc::start(
        "producer",
        &[
            "--stream",
            "--frames",
            &FRAMES.to_string(),
            "--fps",
            "200",
            "--consumers",
            "1",
            "--policy",
            "every",
            "--name",
            &name,
            "--json",
        ],
    );
    let reader = py_stream(&name, &["--timeout", "30"]);
    let c: Value = reader.wait(LIMIT).ok().json();
    let p: Value = producer.wait(LIMIT).ok().json();
    assert_eq!(p["frames"], FRAMES, "{p}");
    assert_eq!(p["evicted"], 0, "{p}");
    assert_eq!(c["frames"], FRAMES, "{c}");
    assert_eq!(c["skipped"], 0, "{c}");
    assert_eq!(c["policy"], "every", "{c}");
    for key in ["width", "height", "format"] {
        assert_eq!(c[key], p[key], "{key}: {c} / {p}");
    }
    assert!(c["fps"].as_f64().unwrap() > 0.0, "{c}");
    let latency = &c["latency_us"];
    let (p50, p99, max) = (
        latency["p50"].as_f64().unwrap(),
        latency["p99"].as_f64().unwrap(),
        latency["max"].as_f64().unwrap(),
    );
    assert!(0.0 < p50 && p50 <= p99 && p99 <= max, "{c}");
    let expected = if has_numpy() { "numpy" } else { "memoryview" };
    assert_eq!(c["zero_copy"], expected, "{c}");
    assert_clean(&name);
}

#[test]
fn a_ring_whose_header_lies_is_refused_in_one_line() {
    if !python3() {
        return;
    }
    // The segment's header: a slot count no ring has, then a file smaller
    // than its header says. No producer holds these files: the header is
    // checked before the producer's liveness, as the Rust reader does.
    let cases: [(Vec<u8>, &[&str]); 2] = [
        (
            ring_bytes(3, |b| b[32..36].copy_from_slice(&99u32.to_le_bytes())),
            &["99 slots", "2..=15"],
        ),
        (
            ring_bytes(3, |b| b.truncate(4096 + 2 * 4096)),
            &["header describes 16384 bytes", "file has 12288"],
        ),
    ];
    for (bytes, words) in cases {
        let name = unique("py-stream-lie");
        let made = hand_made(&name, &bytes);
        let run = py_stream(&name, &["--timeout", "5"]).wait(LIMIT);
        refused(&run, words);
        drop(made);
        assert_clean(&name);
    }
}

#[test]
fn a_frame_whose_header_lies_is_refused_in_one_line() {
    if !python3() {
        return;
    }
    // A live ring (this test holds its flock, as a producer does) whose head
    // says frame 1 is published, in a slot whose header claims 64 rows of
    // 192 bytes: 12288 bytes in a slot of 4096.
    let name = unique("py-stream-frame-lie");
    let bytes = ring_bytes(3, |b| {
        let mut put = |offset: usize, value: u64| {
            b[offset..offset + 8].copy_from_slice(&value.to_le_bytes());
        };
        put(88, 1); // head
        let slot = 128 + 128; // frame 1 lives in slot 1 % 3
        put(slot + 8, 192 * 64); // len
        put(slot + 16, 2); // seq: even, a complete frame
        put(slot + 32, 1); // frame id
        put(slot + 48, 64 | 64 << 32); // width | height << 32
        put(slot + 56, 192 | 2 << 32); // stride | format (Rgb8) << 32
    });
    let made = hand_made(&name, &bytes);
    rustix::fs::flock(&made.file, rustix::fs::FlockOperation::LockExclusive).unwrap();
    let run = py_stream(&name, &["--timeout", "5"]).wait(LIMIT);
    refused(
        &run,
        &["frame 1's header lies", "does not fit a slot of 4096"],
    );
    drop(made);
    assert_clean(&name);
}

/// The newest frame's id in the ring `name`, 0 before the first (or without a file).
fn head(name: &str) -> u64 {
    let mut word = [0u8; 8];
    File::open(shm_path(name))
        .and_then(|f| f.read_exact_at(&mut word, 88))
        .map_or(0, |()| u64::from_le_bytes(word))
}

#[test]
fn a_producer_that_dies_or_aborts_ends_the_python_reader_with_one_line() {
    if !python3() {
        return;
    }
    for (signal, words) in [
        (
            libc::SIGKILL,
            ["died after frame", "without ending the stream"],
        ),
        (libc::SIGTERM, ["stopped stream", "without ending it"]),
    ] {
        let name = unique("py-stream-gone");
        // A killed producer cannot remove its file; once it is dead (reaped,
        // or killed by the drop of `producer` when the test fails, before
        // this runs) the file is stale, and this test's to remove.
        let _removal = Removal(shm_path(&name));
        let producer = Proc::start(
            "producer",
            &[
                "--stream",
                "--frames",
                "100000",
                "--fps",
                "100",
                "--consumers",
                "1",
                "--policy",
                "every",
                "--name",
                &name,
            ],
        );
        let reader = py_stream(&name, &["--timeout", "30"]);
        assert!(
            poll(Duration::from_secs(30), || head(&name) >= 5),
            "the stream did not start"
        );
        producer.signal(signal);
        let run = reader.wait(LIMIT);
        refused(&run, &words);
        let _ = producer.wait(LIMIT);
        if signal == libc::SIGKILL {
            std::fs::remove_file(shm_path(&name)).unwrap();
        }
        assert_clean(&name);
    }
}
