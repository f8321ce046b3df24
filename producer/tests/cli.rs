//! The `producer` binary's command line: its flags, exit codes, one-line errors.
//!
//! Being an integration test of this package also makes `cargo test
//! --workspace` build the `producer` executable before any test runs, which
//! the workspace's end-to-end tests (in `common/tests`) rely on.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs `producer` with `args`, killing it and failing the test after 30 s.
fn producer(args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_producer"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start producer");
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().expect("poll producer").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("producer {args:?} did not finish within 30 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().expect("collect producer's output")
}

/// Asserts exit `code` and exactly one line on stderr, containing `words`.
fn fails_with(out: &Output, code: i32, words: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "stderr: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "stderr: {stderr:?}");
    assert!(stderr.starts_with("producer: error: "), "{stderr:?}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    for word in words {
        assert!(stderr.contains(word), "stderr {stderr:?} lacks {word:?}");
    }
}

fn unique(tag: &str) -> String {
    format!("t-cli-{tag}-{}", std::process::id())
}

#[test]
fn help_lists_the_flags_but_not_the_hidden_bench_peer() {
    let out = producer(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--name",
        "--timeout",
        "--hold",
        "--transport",
        "--addr",
        "--read",
        "--list",
        "--clean",
        "--json",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}:\n{help}");
    }
    assert!(!help.contains("--bench-peer"), "{help}");
}

#[test]
fn an_invalid_name_exits_2_with_one_line() {
    let out = producer(&["--name", "a/b", "--timeout", "1"]);
    fails_with(&out, 2, &["invalid name \"a/b\""]);
}

#[test]
fn a_missing_image_exits_1_naming_the_path_and_leaves_nothing() {
    let name = unique("missing");
    let out = producer(&["/nonexistent/p1p2.png", "--name", &name, "--timeout", "1"]);
    fails_with(&out, 1, &["/nonexistent/p1p2.png"]);
    assert!(!Path::new("/dev/shm").join(format!("p1p2.{name}")).exists());
}

#[test]
fn an_unparsable_timeout_is_a_usage_error() {
    let out = producer(&["--timeout", "soon"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("\"soon\" is not a number of seconds"),
        "{stderr}"
    );
}
