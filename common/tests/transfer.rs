//! Tests of P1 -> P2 over shared memory, with the real binaries.
//!
//! P1 -> P2 over shared memory, with the real binaries: both start orders, the
//! decoded pixels, the CRC and byte count, the story each side tells, and one
//! clear error line for every bad input. Nothing may be left in /dev/shm.

mod util;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::Name;
use util::{assert_clean, image, run, unique, wait_for, Proc};

const LIMIT: Duration = Duration::from_secs(60);

fn file_crc(path: &Path) -> String {
    format!("{:08x}", crc32fast::hash(&std::fs::read(path).unwrap()))
}

#[test]
fn consumer_first_then_producer_hands_over_the_exact_pixels() {
    let name = unique("cfirst");
    let dir = util::temp_dir("cfirst");
    let out = dir.path().join("out.png");
    let consumer = Proc::start(
        "consumer",
        &["--name", &name, "--json", "--out", out.to_str().unwrap()],
    );
    std::thread::sleep(Duration::from_millis(200));
    let producer = Proc::start("producer", &["--name", &name, "--json", "--hold", "300"]);
    let p = producer.wait(LIMIT);
    let c = consumer.wait(LIMIT);
    p.ok();
    c.ok();
    let (p, c) = (p.json(), c.json());

    let size = std::fs::metadata(image()).unwrap().len();
    let crc = file_crc(&image());
    for report in [&p, &c] {
        assert_eq!(report["transport"], "shm");
        assert_eq!(report["bytes"], size);
        assert_eq!(report["crc32"], crc.as_str());
    }
    let direct = image::open(image()).unwrap();
    assert_eq!(c["width"], direct.width());
    assert_eq!(c["height"], direct.height());
    assert_eq!(c["color"], format!("{:?}", direct.color()));
    for key in ["wait_ms", "transfer_ms", "decode_ms"] {
        assert!(c[key].as_f64().unwrap() >= 0.0, "{key}");
    }
    for key in ["copy_ms", "wait_ms"] {
        assert!(p[key].as_f64().unwrap() >= 0.0, "{key}");
    }
    // The consumer came first, so it waited at least as long as the hold.
    assert!(c["wait_ms"].as_f64().unwrap() >= 300.0, "{c}");

    let written = image::open(&out).unwrap();
    assert_eq!(written.as_bytes(), direct.as_bytes(), "pixels differ");
    std::fs::remove_dir_all(dir).unwrap();
    assert_clean(&name);
}

#[test]
fn producer_first_then_consumer() {
    let name = unique("pfirst");
    let producer = Proc::start("producer", &["--name", &name, "--json"]);
    let segment = Name::new(&name).unwrap().shm_path();
    assert!(wait_for(&segment, LIMIT), "segment never appeared");
    std::thread::sleep(Duration::from_millis(100));
    let c = run("consumer", &["--name", &name, "--json"]);
    let p = producer.wait(LIMIT);
    c.ok();
    p.ok();
    assert_eq!(c.json()["crc32"], file_crc(&image()).as_str());
    assert_eq!(p.json()["consumer_pid"], c.json()["pid"]);
    assert_clean(&name);
}

#[test]
fn each_side_tells_the_story_of_the_lock() {
    let name = unique("story");
    let consumer = Proc::start("consumer", &["--name", &name]);
    std::thread::sleep(Duration::from_millis(200));
    let producer = Proc::start("producer", &["--name", &name, "--hold", "500"]);
    let producer_pid = producer.pid;
    let p = producer.wait(LIMIT);
    let c = consumer.wait(LIMIT);
    p.ok();
    c.ok();
    for line in [
        "took its lock",
        "copied 791,555 bytes",
        "holding exclusive access for 500 ms",
        "released the lock",
        "acknowledged",
    ] {
        assert!(
            p.stdout.contains(line),
            "producer lacks {line:?}:\n{}",
            p.stdout
        );
    }
    for line in [
        &format!("waiting for the lock, held by producer pid {producer_pid}"),
        "got the lock after",
        "crc32 3a0dc29e ok",
        "decoded a 512x512 Rgb8 PNG",
        "acknowledged and released the lock",
    ] {
        assert!(
            c.stdout.contains(line),
            "consumer lacks {line:?}:\n{}",
            c.stdout
        );
    }
    assert!(p.stdout.lines().all(|l| l.starts_with("P1 producer | ")));
    assert!(c.stdout.lines().all(|l| l.starts_with("P2 consumer | ")));
    assert_clean(&name);
}

#[test]
fn bad_images_are_refused_before_any_segment_exists() {
    let dir = util::temp_dir("badimg");
    let empty = dir.path().join("empty.png");
    std::fs::write(&empty, b"").unwrap();
    let text = dir.path().join("notes.png");
    std::fs::write(&text, b"hello, this is not an image\n").unwrap();
    let short = dir.path().join("short.png");
    std::fs::write(&short, [0x89, b'P', b'N']).unwrap();
    let cases: [(&Path, &str); 5] = [
        (&dir.path().join("missing.png"), "no such file"),
        (&empty, "is empty"),
        (&text, "not a PNG file (it starts with 68 65 6c"),
        (&short, "not a PNG file"),
        (dir.path(), "is a directory"),
    ];
    for (path, reason) in cases {
        let name = unique("badimg");
        let r = run("producer", &[path.to_str().unwrap(), "--name", &name]);
        r.fails_with(1, &["producer: error: image", reason]);
        assert_clean(&name);
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// Sends `bytes` (which start with a PNG signature) and returns both runs.
fn send_corrupt(bytes: &[u8], tag: &str) -> (util::Run, util::Run) {
    let dir = util::temp_dir(tag);
    let path = dir.path().join("corrupt.png");
    std::fs::write(&path, bytes).unwrap();
    let name = unique(tag);
    let consumer = Proc::start("consumer", &["--name", &name, "--timeout", "20"]);
    let producer = Proc::start(
        "producer",
        &[path.to_str().unwrap(), "--name", &name, "--timeout", "20"],
    );
    let (p, c) = (producer.wait(LIMIT), consumer.wait(LIMIT));
    std::fs::remove_dir_all(dir).unwrap();
    assert_clean(&name);
    (p, c)
}

#[test]
fn a_corrupt_png_is_a_decode_error_on_one_line() {
    let mut bytes = std::fs::read(image()).unwrap();
    // Flip bytes in the middle of the compressed image data.
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 64] {
        *b ^= 0x5a;
    }
    let (p, c) = send_corrupt(&bytes, "corrupt");
    c.fails_with(1, &["consumer: error: cannot decode the image:"]);
    p.fails_with(1, &["producer: error: the consumer rejected the payload"]);
}

#[test]
fn a_truncated_png_is_a_decode_error() {
    let bytes = std::fs::read(image()).unwrap();
    let (p, c) = send_corrupt(&bytes[..bytes.len() / 3], "trunc");
    c.fails_with(1, &["cannot decode the image:"]);
    p.fails_with(1, &["rejected"]);
}

#[test]
fn invalid_names_are_usage_errors() {
    for bad in ["../etc", "a/b", "", "sp ace", &"n".repeat(65)] {
        run("producer", &["--name", bad]).fails_with(2, &["invalid name"]);
        run("consumer", &["--name", bad]).fails_with(2, &["invalid name"]);
    }
}

#[test]
fn a_peer_that_never_comes_ends_in_a_timeout_message() {
    let name = unique("alone");
    let c = run("consumer", &["--name", &name, "--timeout", "0.5"]);
    c.fails_with(
        1,
        &[
            &format!("no producer published segment {name}"),
            "gave up after",
        ],
    );
    let p = run("producer", &["--name", &name, "--timeout", "0.5"]);
    p.fails_with(
        1,
        &[&format!("no consumer read segment {name}"), "gave up after"],
    );
    assert!(p.elapsed < Duration::from_secs(10));
    assert_clean(&name);
}

#[test]
fn a_crc_mismatch_is_reported_and_the_payload_rejected() {
    let name = unique("crc");
    let segment = util::live_segment(&name, |slot, _| {
        slot.crc32.fetch_xor(1, Ordering::Relaxed);
    });
    let c = run("consumer", &["--name", &name, "--timeout", "10"]);
    c.fails_with(1, &["CRC-32 mismatch"]);
    util::assert_rejected_and_clean(segment, &name);
}

#[test]
fn an_unsupported_output_format_is_refused_before_waiting() {
    let name = unique("outfmt");
    let r = run(
        "consumer",
        &["--name", &name, "--out", "/tmp/x.jpg", "--timeout", "20"],
    );
    r.fails_with(1, &["/tmp/x.jpg", "use .png"]);
    assert!(r.elapsed < Duration::from_secs(10), "it waited first");
}
