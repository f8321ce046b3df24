//! The `consumer` binary's command line: its flags, exit codes, one-line errors.
//!
//! Being an integration test of this package also makes `cargo test
//! --workspace` build the `consumer` executable before any test runs, which
//! the workspace's end-to-end tests (in `common/tests`) rely on.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs `consumer` with `args`, killing it and failing the test after 30 s.
fn consumer(args: &[&str]) -> (Output, Duration) {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_consumer"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start consumer");
    let deadline = started + Duration::from_secs(30);
    while child.try_wait().expect("poll consumer").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("consumer {args:?} did not finish within 30 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().expect("collect consumer's output");
    (out, started.elapsed())
}

/// Asserts exit `code` and exactly one line on stderr, containing `words`.
fn fails_with(out: &Output, code: i32, words: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "stderr: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "stderr: {stderr:?}");
    assert!(stderr.starts_with("consumer: error: "), "{stderr:?}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    for word in words {
        assert!(stderr.contains(word), "stderr {stderr:?} lacks {word:?}");
    }
}

#[test]
fn help_lists_the_flags_but_not_the_hidden_bench_peer() {
    let (out, _) = consumer(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--name",
        "--timeout",
        "--out",
        "--hold",
        "--max-dim",
        "--max-alloc",
        "--transport",
        "--addr",
        "--json",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}:\n{help}");
    }
    assert!(!help.contains("--bench-peer"), "{help}");
}

#[test]
fn an_invalid_name_exits_2_with_one_line() {
    let (out, _) = consumer(&["--name", "..", "--timeout", "1"]);
    fails_with(&out, 2, &["invalid name \"..\""]);
}

#[test]
fn without_a_producer_it_gives_up_at_its_timeout_with_one_line() {
    let name = format!("t-cli-alone-{}", std::process::id());
    let (out, elapsed) = consumer(&["--name", &name, "--timeout", "0.2"]);
    fails_with(
        &out,
        1,
        &[
            &format!("no producer published segment {name}"),
            "--timeout",
        ],
    );
    assert!(elapsed >= Duration::from_millis(200), "{elapsed:?}");
}
