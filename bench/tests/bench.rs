//! End-to-end tests of `p1p2-bench` with its peer binary.
//!
//! End-to-end tests of `p1p2-bench` with its peer binary, `p1p2-bench-peer`:
//! a tiny benchmark writes every file with the agreed keys, the
//! Python baseline runs when python3 is there, a killed peer fails its case
//! with a note, bad input gets one line, and nothing is left in /dev/shm or
//! the socket directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// `p1p2-bench`; cargo builds `p1p2-bench-peer` next to it for these tests.
fn bench() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_p1p2-bench"))
}

/// `p1p2-bench-peer`, the sender and receiver of every case.
fn peer() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_p1p2-bench-peer"))
}

/// A test's own directory, removed when dropped, also when the test fails.
fn temp_dir(tag: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("p1p2-bench-test-{tag}-{}-", std::process::id()))
        .tempdir()
        .unwrap()
}

/// Runs `p1p2-bench` with `args`, failing the test after `limit`.
fn run(args: &[&str], limit: Duration) -> (Output, u32) {
    let child = Command::new(bench())
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start p1p2-bench");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => (out.expect("wait"), pid),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("p1p2-bench did not finish within {limit:?}");
        }
    }
}

/// This project's files left by the run of driver `pid`.
fn leftovers(pid: u32) -> Vec<String> {
    let tag = format!("bench-{pid}-");
    let mut dirs = vec![PathBuf::from("/dev/shm"), common::name::socket_dir()];
    dirs.push(std::env::temp_dir());
    let mut found = Vec::new();
    for dir in dirs {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("p1p2") && name.contains(&tag) {
                found.push(dir.join(name).display().to_string());
            }
        }
    }
    found
}

fn json(dir: &Path) -> Value {
    let text = std::fs::read_to_string(dir.join("results.json")).expect("results.json");
    serde_json::from_str(&text).expect("results.json is JSON")
}

fn row<'a>(v: &'a Value, transport: &str, mode: &str, bytes: u64) -> &'a Value {
    v["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["transport"] == transport && r["mode"] == mode && r["bytes"] == bytes)
        .unwrap_or_else(|| panic!("no {transport} {mode} row at {bytes} bytes"))
}

/// Builds `producer` and `consumer` next to `p1p2-bench` (same profile), as
/// `cargo build` would, so the frame rows find them.
fn build_stream_bins() {
    let dir = bench().parent().unwrap().to_path_buf();
    let mut args = vec!["build", "--quiet", "-p", "producer", "-p", "consumer"];
    if dir.ends_with("release") {
        args.push("--release");
    }
    let status = Command::new(env!("CARGO"))
        .args(&args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("run cargo build");
    assert!(
        status.success(),
        "cargo build of producer and consumer failed"
    );
    for bin in ["producer", "consumer"] {
        assert!(dir.join(bin).is_file(), "no {bin} in {}", dir.display());
    }
}

fn has_proc_io() -> bool {
    Path::new("/proc/self/io").exists()
}

#[test]
fn a_tiny_benchmark_writes_every_file_and_leaves_nothing_behind() {
    let dir = temp_dir("tiny");
    let out = dir.path().to_str().unwrap();
    let (o, pid) = run(
        &[
            "--sizes",
            "4KiB,64KiB",
            "--copy-sizes",
            "64KiB",
            "--runs",
            "3",
            "--round-trips",
            "200",
            "--no-python",
            "--no-frames",
            "--seed",
            "7",
            "--out",
            out,
        ],
        Duration::from_secs(120),
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "failed: {stderr}");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("| transport | mode | wait | size |"),
        "{stdout}"
    );

    let v = json(dir.path());
    for key in ["cpu_model", "cpus", "kernel", "git_rev"] {
        assert!(v["machine"].get(key).is_some(), "no machine.{key}");
    }
    assert!(v["machine"]["cpus"].as_u64().unwrap() >= 1);
    assert!(
        v["machine"]["git_rev"].is_string(),
        "run inside the repository"
    );

    let want_pin = if v["machine"]["cpus"].as_u64().unwrap() >= 2 {
        "split"
    } else {
        "same"
    };
    let copies = [
        ("memcpy", 1.0),
        ("shm", 1.0),
        ("shm-pipelined", 1.0),
        ("unix", 2.0),
        ("tcp", 2.0),
        ("unix-stream", 2.0),
        ("tcp-stream", 2.0),
    ];
    for bytes in [4096u64, 65_536] {
        for (transport, want_copies) in copies {
            let r = row(&v, transport, "steady", bytes);
            for key in bench::export::json::RESULT_KEYS {
                assert!(r.get(key).is_some(), "{transport}: no key {key}");
            }
            assert_eq!(r["runs"], 3, "{transport}");
            assert_eq!(r["samples_ns"].as_array().unwrap().len(), 3, "{transport}");
            assert!(r["median_ns"].as_f64().unwrap() > 0.0, "{transport}");
            assert!(r["p10_ns"].as_f64() <= r["p90_ns"].as_f64(), "{transport}");
            assert!(r["gbps"].as_f64().unwrap() > 0.0, "{transport}");
            assert_eq!(r["copies"].as_f64(), Some(want_copies), "{transport}");
            assert_eq!(r["pin"], want_pin, "{transport}");
            let syscalls = r["syscalls"].as_f64().unwrap();
            if has_proc_io() {
                match transport {
                    // write + read of the acknowledgement, read + its write.
                    "unix" | "tcp" | "unix-stream" | "tcp-stream" => {
                        assert!(syscalls >= 4.0, "{transport}: {syscalls}")
                    }
                    // A memcpy and reads in place: no read/write call at all.
                    _ => assert_eq!(syscalls, 0.0, "{transport}"),
                }
            }
        }
        let cold = row(&v, "shm", "cold", bytes);
        assert_eq!(cold["runs"], 3);
        assert_eq!(row(&v, "memcpy-nt", "steady", bytes)["runs"], 3);
        // --copy auto: the standard copy, below the threshold.
        assert_eq!(row(&v, "shm", "steady", bytes)["copy"], "std");
        assert_eq!(row(&v, "shm-pipelined", "steady", bytes)["copy"], "std");
    }
    // The forced copies, at the --copy-sizes only.
    let forced = |t: &str| {
        v["results"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["transport"] == t)
            .collect::<Vec<_>>()
    };
    for (t, copy) in [
        ("shm[std]", "std"),
        ("shm[nt]", "nt"),
        ("shm-pipelined[std]", "std"),
        ("shm-pipelined[nt]", "nt"),
    ] {
        let rows = forced(t);
        assert_eq!(rows.len(), 1, "{t}: {rows:?}");
        assert_eq!(rows[0]["bytes"], 65_536, "{t}");
        assert_eq!(rows[0]["runs"], 3, "{t}");
        if cfg!(target_arch = "x86_64") {
            assert_eq!(rows[0]["copy"], copy, "{t}");
        }
    }
    assert_eq!(v["config"]["copy"], "auto");

    // Rounds: with --runs, one per throughput case; --rounds (3) per
    // latency case. Every round has its own place in the run's order.
    let mut indexes = Vec::new();
    for r in v["results"].as_array().unwrap() {
        let rounds = r["rounds"].as_array().unwrap();
        assert_eq!(rounds.len(), 1, "{r}");
        assert_eq!(rounds[0]["samples_ns"], r["samples_ns"]);
        let wall = rounds[0]["wall_ns"].as_u64().unwrap();
        let sum: u64 = r["samples_ns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap())
            .sum();
        assert!(wall >= sum.min(wall.max(1)) && wall > 0, "{r}");
        if r["transport"] != "memcpy" && r["transport"] != "memcpy-nt" {
            assert!(rounds[0]["cpu_ms"].as_f64().unwrap() > 0.0, "{r}");
        }
        indexes.push(rounds[0]["index"].as_u64().unwrap());
    }
    let latency_rows = v["latency"].as_array().unwrap();
    for l in latency_rows {
        let rounds = l["rounds"].as_array().unwrap();
        assert_eq!(rounds.len(), 3, "{l}");
        let n: usize = rounds
            .iter()
            .map(|r| r["samples_ns"].as_array().unwrap().len())
            .sum();
        assert_eq!(n, 200, "the rounds' round trips add up");
        indexes.extend(rounds.iter().map(|r| r["index"].as_u64().unwrap()));
    }
    indexes.sort_unstable();
    assert_eq!(
        indexes,
        (0..indexes.len() as u64).collect::<Vec<_>>(),
        "one index per round, 0 first, none twice"
    );
    // The latency cases of one placement take turns: a case's rounds are
    // not consecutive.
    let first = &latency_rows[0]["rounds"];
    assert!(first[1]["index"].as_u64().unwrap() > first[0]["index"].as_u64().unwrap() + 1);

    // Waiting modes: both at 4 KiB on two CPUs (the default --wait-sizes),
    // block alone on one; none for memcpy.
    let waits = |t: &str, bytes: u64| -> Vec<String> {
        v["results"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["transport"] == t && r["mode"] == "steady" && r["bytes"] == bytes)
            .map(|r| r["wait"].as_str().unwrap_or("none").to_string())
            .collect()
    };
    for t in [
        "shm",
        "shm-pipelined",
        "unix",
        "tcp",
        "unix-stream",
        "tcp-stream",
    ] {
        if want_pin == "split" {
            assert_eq!(waits(t, 4096), ["spin", "block"], "{t}");
            assert_eq!(waits(t, 65_536), ["spin"], "{t}");
        } else {
            assert_eq!(waits(t, 4096), ["block"], "{t}");
        }
    }
    assert_eq!(waits("memcpy", 4096), ["none"]);
    // The socket buffers the kernel granted, read back.
    for t in ["unix", "tcp-stream"] {
        let b = &row(&v, t, "steady", 65_536)["socket_buffers"];
        assert!(b["sndbuf"].as_u64().unwrap() > 0, "{t}: {b}");
        assert!(b["rcvbuf"].as_u64().unwrap() > 0, "{t}: {b}");
    }

    // Settings and the machine's state.
    let config = &v["config"];
    assert_eq!(config["seed"], 7);
    assert_eq!(config["slots"], 2);
    assert_eq!(config["spin_us"], 1000);
    assert_eq!(config["latency_rounds"], 3);
    assert_eq!(config["wait"], serde_json::json!(["spin", "block"]));
    let cmd: Vec<&str> = config["command_line"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(cmd.windows(2).any(|w| w == ["--seed", "7"]), "{cmd:?}");
    assert!(config["drained"].as_str().unwrap().contains("excluded"));
    let host = &config["host"];
    assert!(host["git_dirty"].is_boolean(), "{host}");
    if Path::new("/proc/stat").exists() {
        assert!(host["steal"]["percent"].as_f64().unwrap() >= 0.0, "{host}");
    }
    if Path::new("/sys/kernel/mm/transparent_hugepage/enabled").exists() {
        assert!(host["thp_enabled"].is_string(), "{host}");
    }

    let latency = v["latency"].as_array().unwrap();
    for (transport, variant) in [
        ("shm", "blocking"),
        ("unix", "blocking"),
        ("tcp", "blocking"),
    ] {
        let l = latency
            .iter()
            .find(|l| l["transport"] == transport && l["variant"] == variant)
            .unwrap_or_else(|| panic!("no {transport} {variant} latency row"));
        assert_eq!(l["round_trips"], 200);
        assert_eq!(l["bytes"], 64);
        assert_eq!(l["samples_ns"].as_array().unwrap().len(), 200);
        assert!(l["p99_ns"].as_f64() >= l["median_ns"].as_f64());
    }

    let csv = std::fs::read_to_string(dir.path().join("results.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], bench::export::CSV_HEADER);
    assert_eq!(lines.len(), 1 + v["results"].as_array().unwrap().len());
    let columns = lines[0].split(',').count();
    assert!(lines.iter().all(|l| l.split(',').count() == columns));
    let latency_csv = std::fs::read_to_string(dir.path().join("latency.csv")).unwrap();
    assert_eq!(latency_csv.lines().count(), 1 + latency.len());
    assert_eq!(
        latency_csv.lines().next(),
        Some(bench::export::LATENCY_CSV_HEADER)
    );
    for line in latency_csv.lines().skip(1) {
        // The figure and its interval, last, filled in an analysed run.
        let fields: Vec<&str> = line.split(',').collect();
        let n = fields.len();
        assert_eq!(n, bench::export::LATENCY_CSV_HEADER.split(',').count());
        let lo: f64 = fields[n - 2].parse().unwrap();
        let figure: f64 = fields[n - 3].parse().unwrap();
        let hi: f64 = fields[n - 1].parse().unwrap();
        assert!(lo <= figure && figure <= hi, "{line}");
    }

    let md = std::fs::read_to_string(dir.path().join("results.md")).unwrap();
    assert!(md.contains(bench::export::MARKDOWN_HEADER));
    assert!(md.contains("## Round-trip latency (64 B)"));
    assert!(
        md.contains("| shm-pipelined | steady | spin | 64 KiB |"),
        "{md}"
    );
    assert!(md.contains("3 measured runs per case after 1 warm-up run."));

    let svg = std::fs::read_to_string(dir.path().join("throughput.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains("memcpy (ceiling)") && svg.contains("shm-pipelined"));
    assert!(svg.contains("memcpy-nt (ceiling)"));
    let latency_svg = std::fs::read_to_string(dir.path().join("latency.svg")).unwrap();
    assert!(latency_svg.starts_with("<svg") && latency_svg.trim_end().ends_with("</svg>"));
    assert!(latency_svg.contains("round-trip time (log scale)"));
    assert!(latency_svg.contains("shm · blocking") && latency_svg.contains("tcp · blocking"));
    // One p10–p90 bar per latency row, and the legend's.
    let bars = latency_svg
        .lines()
        .filter(|l| l.starts_with("<polyline") && l.contains("stroke-width=\"3\""))
        .count();
    assert_eq!(bars, latency.len() + 1, "{latency_svg}");
    for f in [
        "results.json",
        "results.csv",
        "latency.csv",
        "results.md",
        "throughput.svg",
        "latency.svg",
    ] {
        assert!(stdout.contains(f), "{f} not in the Wrote line: {stdout}");
    }
    assert!(md.contains("### Best copy"));

    assert_eq!(leftovers(pid), Vec::<String>::new());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_python_baseline_runs_when_python3_is_there() {
    let python = Command::new("python3")
        .args(["-c", "import multiprocessing.shared_memory"])
        .status();
    if !python.is_ok_and(|s| s.success()) {
        eprintln!("skipped: no python3 with multiprocessing.shared_memory");
        return;
    }
    let dir = temp_dir("python");
    let (o, pid) = run(
        &[
            "--sizes",
            "4KiB,64KiB",
            "--runs",
            "3",
            "--no-latency",
            "--no-frames",
            "--transports",
            "memcpy,python-shm,python-array",
            "--out",
            dir.path().to_str().unwrap(),
        ],
        Duration::from_secs(120),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v = json(dir.path());
    for transport in ["python-shm", "python-array"] {
        for bytes in [4096u64, 65_536] {
            let r = row(&v, transport, "steady", bytes);
            assert_eq!(r["runs"], 3, "{transport}");
            assert_eq!(r["samples_ns"].as_array().unwrap().len(), 3);
            assert_eq!(r["copies"].as_f64(), Some(2.0), "{transport}");
            assert!(r["gbps"].as_f64().unwrap() > 0.0);
        }
    }
    let notes = v["notes"].as_array().unwrap();
    assert!(notes
        .iter()
        .any(|n| n.as_str().unwrap().starts_with("python rows: Python 3")));
    assert_eq!(leftovers(pid), Vec::<String>::new());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Pids of this driver's receiver peers, found through /proc.
fn consumer_peers(driver: u32) -> Vec<u32> {
    let tag = format!("bench-{driver}-");
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline);
        if cmdline.contains("p1p2-bench-peer")
            && cmdline.contains("receiver")
            && cmdline.contains(&tag)
        {
            pids.push(pid);
        }
    }
    pids
}

#[test]
fn a_killed_peer_fails_its_case_with_a_note_and_the_run_goes_on() {
    let dir = temp_dir("killed");
    let child = Command::new(bench())
        .args([
            "--sizes",
            "64KiB",
            "--transports",
            "shm,unix",
            "--no-cold",
            "--no-latency",
            "--no-frames",
            "--budget-scale",
            "1.5",
            "--out",
            dir.path().to_str().unwrap(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let driver = child.id();
    let started = Instant::now();
    let victim = loop {
        if let Some(&pid) = consumer_peers(driver).first() {
            break pid;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no consumer peer appeared"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    // Let it get into its loop, then kill it without a chance to clean up.
    std::thread::sleep(Duration::from_millis(300));
    let _ = Command::new("kill")
        .args(["-9", &victim.to_string()])
        .status();
    let o = child.wait_with_output().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("1 case(s) failed"), "{stderr}");

    let v = json(dir.path());
    let notes: Vec<&str> = v["notes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    // The case order is shuffled, so the first consumer peer, the one
    // killed, belongs to either case; the other must still be measured.
    let (failed, other) = notes
        .iter()
        .find_map(|n| {
            ["shm", "unix"]
                .into_iter()
                .find(|t| n.starts_with(&format!("{t} steady pin=")))
                .map(|t| (*n, if t == "shm" { "unix" } else { "shm" }))
        })
        .unwrap_or_else(|| panic!("no note on the failed case: {notes:?}"));
    assert!(
        failed.contains("failed") && failed.contains("killed by signal 9"),
        "{failed}"
    );
    // The run went on: the other case was measured despite the failure.
    assert_eq!(row(&v, other, "steady", 65_536)["transport"], other);
    assert_eq!(leftovers(driver), Vec::<String>::new());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_input_gets_one_line_and_exit_code_2() {
    for (args, words) in [
        (vec!["--sizes", "4KB"], vec!["--sizes", "\"4KB\"", "unit"]),
        (vec!["--sizes", "4"], vec!["--sizes", "at least 8 bytes"]),
        (vec!["--bogus"], vec!["--bogus"]),
        (vec!["--runs", "0"], vec!["--runs"]),
        (vec!["--pin", "both"], vec!["--pin", "both"]),
        (vec!["--transports", "udp"], vec!["--transports", "udp"]),
        (
            vec!["--copy", "fast"],
            vec!["--copy", "fast", "std, nt or auto"],
        ),
        (vec!["--copy-sizes", "4KB"], vec!["--copy-sizes", "\"4KB\""]),
        (
            vec!["--budget-scale", "0"],
            vec!["--budget-scale", "factor"],
        ),
    ] {
        let (o, _) = run(&args, Duration::from_secs(30));
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        for word in words {
            assert!(stderr.contains(word), "{args:?}: {stderr:?} lacks {word}");
        }
    }
}

#[test]
fn a_peer_alone_gives_up_in_time_and_removes_its_files() {
    let name = format!("bench-{}-alone", std::process::id());
    for (role, transport) in [("sender", "shm"), ("receiver", "shm"), ("sender", "unix")] {
        let spec = serde_json::json!({
            "test": "throughput", "transport": transport, "mode": "steady", "bytes": 4096,
            "slots": 1,
            "budget": {"warmup": 1, "time": 0, "min_runs": 3, "max_runs": 3, "hard": 10_000},
            "name": name, "timeout_ms": 400,
        });
        let started = Instant::now();
        let o = Command::new(peer())
            .args(["--role", role, "--bench-peer", &spec.to_string()])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{role} {transport}: {stderr}");
        assert!(
            stderr.contains("gave up after"),
            "{role} {transport}: {stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(started.elapsed() < Duration::from_secs(10));
        assert!(!Path::new("/dev/shm").join(format!("p1p2.{name}")).exists());
        assert!(!common::Name::new(&name).unwrap().socket_path().exists());
    }
    let o = Command::new(peer())
        .args(["--role", "receiver", "--bench-peer", "{not json"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--bench-peer: not a peer spec"));
    for args in [
        &["--bench-peer", "{}"][..],
        &["--role", "both", "--bench-peer", "{}"],
    ] {
        let o = Command::new(peer()).args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains("usage: p1p2-bench-peer --role"), "{stderr}");
    }
}

#[test]
fn a_quick_run_has_frame_rows_in_every_export() {
    build_stream_bins();
    let dir = temp_dir("frames");
    let out = dir.path().to_str().unwrap();
    // The quick set's frame rows, at a small frame size (this may be a
    // debug build) and with two short rounds.
    let (o, pid) = run(
        &[
            "--quick",
            "--sizes",
            "4KiB",
            "--transports",
            "memcpy",
            "--no-latency",
            "--no-python",
            "--frame-sizes",
            "320x240",
            "--frame-seconds",
            "0.3",
            "--rounds",
            "2",
            "--out",
            out,
        ],
        Duration::from_secs(300),
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "failed: {stderr}");
    let v = json(dir.path());
    let frames = v["frames"].as_array().expect("a frames list");
    assert!(!frames.is_empty());
    for f in frames {
        for key in [
            "transport",
            "width",
            "height",
            "consumers",
            "policy",
            "fps",
            "latency_us",
            "memcpy_fps",
            "copies",
        ] {
            assert!(f.get(key).is_some(), "no frames[].{key}: {f}");
        }
        assert!(f["fps"].as_f64().unwrap() > 0.0, "{f}");
        assert!(f["memcpy_fps"].as_f64().unwrap() > 0.0, "{f}");
        assert!(f["latency_us"]["p50"].as_f64().unwrap() > 0.0, "{f}");
        assert!(
            f["latency_us"]["p99"].as_f64() >= f["latency_us"]["p50"].as_f64(),
            "{f}"
        );
        assert!([1, 3].contains(&f["consumers"].as_u64().unwrap()), "{f}");
        assert!(["every", "latest"].contains(&f["policy"].as_str().unwrap()));
        assert!(["shm", "unix", "tcp"].contains(&f["transport"].as_str().unwrap()));
        assert_eq!(
            (f["width"].as_u64(), f["height"].as_u64()),
            (Some(320), Some(240))
        );
        assert_eq!(f["rounds"].as_array().unwrap().len(), 2, "{f}");
        // 1 copy over shm whatever the readers; 1 + 2 per reader over a socket.
        let readers = f["consumers"].as_f64().unwrap();
        let want = if f["transport"] == "shm" {
            1.0
        } else {
            1.0 + 2.0 * readers
        };
        assert_eq!(f["copies"].as_f64(), Some(want), "{f}");
        if has_proc_io() && f["stopped"] == 0 {
            let seen = f["copies_witnessed"].as_f64().unwrap();
            assert!(
                (seen - want).abs() < 0.5,
                "witnessed {seen}, want {want}: {f}"
            );
        }
    }
    let find = |t: &str, n: u64, policy: &str, variant: &str| {
        frames.iter().any(|f| {
            f["transport"] == t
                && f["consumers"] == n
                && f["policy"] == policy
                && f["variant"] == variant
        })
    };
    for t in ["shm", "unix", "tcp"] {
        for n in [1, 3] {
            assert!(find(t, n, "every", "max"), "no {t} row with {n} reader(s)");
        }
    }
    assert!(find("shm", 3, "latest", "stopped"));
    assert!(find("shm", 1, "every", "paced"));
    let ceilings = v["frame_ceilings"].as_array().unwrap();
    assert_eq!(ceilings.len(), 1);
    assert!(ceilings[0]["memcpy_fps"].as_f64().unwrap() > 0.0);
    let targets = v["targets"].as_array().unwrap();
    assert!(
        targets
            .iter()
            .any(|t| t["name"].as_str().unwrap().starts_with("frames: ")),
        "{targets:?}"
    );

    let md = std::fs::read_to_string(dir.path().join("results.md")).unwrap();
    assert!(md.contains(bench::export::FRAMES_MARKDOWN_HEADER), "{md}");
    assert!(
        md.contains("| shm | every | 1 | as fast as possible |"),
        "{md}"
    );
    assert!(
        md.contains("| unix | every | 3 | as fast as possible |"),
        "{md}"
    );
    assert!(md.contains("| memcpy-bound ("), "{md}");
    let csv = std::fs::read_to_string(dir.path().join("frames.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], bench::export::FRAMES_CSV_HEADER);
    assert_eq!(lines.len(), 1 + frames.len());
    assert!(lines
        .iter()
        .any(|l| l.starts_with("tcp,320,240,230400,3,every,max,")));
    let svg = std::fs::read_to_string(dir.path().join("frames.svg")).unwrap();
    assert!(svg.contains("shm 320×240") && svg.contains("memcpy-bound 320×240"));

    assert_eq!(leftovers(pid), Vec::<String>::new());
}
