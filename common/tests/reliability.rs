//! Reliability tests: crashes, signals, stale files and hostile input, with the real binaries.
//!
//! Crashes, signals, stale files and hostile input, with the real binaries:
//! nothing hangs, nothing is lost, nobody else gets in, nothing is left behind.
//! `docs/reliability.md` lists each case and the test that proves it.

mod util;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::layout::{Kind, HEADER_SIZE, MAGIC, VERSION};
use common::segment::Segment;
use common::Name;
use util::{assert_clean, image, live_segment, run, unique, wait_for, Proc};

const LIMIT: Duration = Duration::from_secs(60);

fn shm_path(name: &str) -> std::path::PathBuf {
    Name::new(name).unwrap().shm_path()
}

/// Waits until `pid` holds slot 0's lock of segment `name`.
fn wait_until_holding(name: &str, pid: u32) {
    let segment = Segment::open(&Name::new(name).unwrap()).unwrap();
    util::retry(|| (segment.holder_pid(0) == Some(pid)).then_some(()));
}

/// A transfer with the same name succeeds and leaves nothing behind.
fn a_later_run_works(name: &str) {
    let consumer = Proc::start("consumer", &["--name", name]);
    run("producer", &["--name", name]).ok();
    consumer.wait(LIMIT).ok();
    assert_clean(name);
}

// ---------------------------------------------------------------- crashes

#[test]
fn a_producer_killed_holding_a_complete_payload_hands_it_over_at_once() {
    let name = unique("pkill");
    // A long timeout: an answer well before it is the kernel handing the
    // robust mutex over, not the wait running out.
    let consumer = Proc::start("consumer", &["--name", &name, "--timeout", "30"]);
    let producer = Proc::start("producer", &["--name", &name, "--hold", "30000"]);
    assert!(wait_for(&shm_path(&name), LIMIT));
    std::thread::sleep(Duration::from_millis(500));
    let killed = Instant::now();
    producer.signal(libc::SIGKILL);
    let pid = producer.pid;
    producer.wait(LIMIT);
    let c = consumer.wait(LIMIT);
    c.ok();
    assert!(
        killed.elapsed() < Duration::from_secs(10),
        "{:?}",
        killed.elapsed()
    );
    for line in [
        format!("producer pid {pid} died holding the lock after publishing a complete payload"),
        "crc32 3a0dc29e ok".to_owned(),
        format!("removed segment {name}, left behind by its dead producer pid {pid}"),
    ] {
        assert!(c.stdout.contains(&line), "{line:?} not in {}", c.stdout);
    }
    assert_clean(&name);
}

#[test]
fn a_stale_segment_is_listed_dead_and_replaced_by_the_next_producer() {
    let name = unique("stale");
    let producer = Proc::start("producer", &["--name", &name, "--hold", "30000"]);
    assert!(wait_for(&shm_path(&name), LIMIT));
    producer.signal(libc::SIGKILL);
    let pid = producer.pid;
    producer.wait(LIMIT);

    // Nobody was there to clean up after SIGKILL.
    assert!(shm_path(&name).exists(), "SIGKILL cannot clean up");
    let list = run("producer", &["--list"]);
    let line = list
        .stdout
        .lines()
        .find(|l| l.contains(&format!("p1p2.{name} ")))
        .unwrap_or_else(|| panic!("not listed: {}", list.stdout));
    assert!(
        line.contains("dead (stale)") && line.contains(&pid.to_string()),
        "{line}"
    );
    let consumer = Proc::start("consumer", &["--name", &name]);
    let p = run("producer", &["--name", &name]);
    p.ok();
    assert!(
        p.stdout.contains(&format!(
            "replaced a stale segment {name} left by dead pid {pid}"
        )),
        "{}",
        p.stdout
    );
    consumer.wait(LIMIT).ok();
    assert_clean(&name);
}

#[test]
fn a_consumer_killed_waiting_for_the_lock_fails_the_producer_cleanly() {
    let name = unique("ckillw");
    let producer = Proc::start(
        "producer",
        &["--name", &name, "--hold", "1500", "--timeout", "10"],
    );
    assert!(wait_for(&shm_path(&name), LIMIT));
    let consumer = Proc::start("consumer", &["--name", &name]);
    std::thread::sleep(Duration::from_millis(500));
    consumer.signal(libc::SIGKILL);
    let cpid = consumer.pid;
    consumer.wait(LIMIT);
    let p = producer.wait(LIMIT);
    p.fails_with(
        1,
        &[&format!(
            "consumer pid {cpid} died before acknowledging segment {name}"
        )],
    );
    assert!(p.elapsed < Duration::from_secs(10), "{:?}", p.elapsed);
    assert_clean(&name);
    a_later_run_works(&name);
}

#[test]
fn a_consumer_killed_holding_the_lock_fails_the_producer_cleanly() {
    let name = unique("ckillh");
    let producer = Proc::start("producer", &["--name", &name, "--timeout", "10"]);
    assert!(wait_for(&shm_path(&name), LIMIT));
    let consumer = Proc::start("consumer", &["--name", &name, "--hold", "30000"]);
    wait_until_holding(&name, consumer.pid);
    consumer.signal(libc::SIGKILL);
    let cpid = consumer.pid;
    consumer.wait(LIMIT);
    let p = producer.wait(LIMIT);
    p.fails_with(1, &[&format!("consumer pid {cpid} died")]);
    assert!(p.elapsed < Duration::from_secs(10), "{:?}", p.elapsed);
    assert_clean(&name);
    a_later_run_works(&name);
}

// ---------------------------------------------------------------- signals

#[test]
fn signals_remove_what_each_side_made_and_set_the_exit_code() {
    for (transport, signal, code) in [
        ("shm", libc::SIGINT, 130),
        ("shm", libc::SIGTERM, 143),
        ("unix", libc::SIGINT, 130),
        ("unix", libc::SIGTERM, 143),
        ("tcp", libc::SIGTERM, 143),
    ] {
        let name = unique("sig");
        let addr = util::free_addr();
        let args = ["--name", &name, "--transport", transport, "--addr", &addr];
        // A producer waiting for a consumer.
        let producer = Proc::start("producer", &args);
        let made = match transport {
            "shm" => Some(shm_path(&name)),
            "unix" => Some(Name::new(&name).unwrap().socket_path()),
            _ => None,
        };
        match &made {
            Some(path) => assert!(wait_for(path, LIMIT)),
            None => {
                util::retry(|| std::net::TcpStream::connect(&addr).ok());
            }
        }
        producer.signal(signal);
        let r = producer.wait(LIMIT);
        r.fails_with(code, &["interrupted by SIG"]);
        assert_clean(&name);
        // A consumer waiting for a producer.
        let consumer = Proc::start("consumer", &args);
        std::thread::sleep(Duration::from_millis(300));
        consumer.signal(signal);
        consumer
            .wait(LIMIT)
            .fails_with(code, &["interrupted by SIG"]);
        assert_clean(&name);
    }
}

#[test]
fn an_interrupted_producer_withdraws_its_payload() {
    let name = unique("withdraw");
    let consumer = Proc::start("consumer", &["--name", &name, "--timeout", "20"]);
    let producer = Proc::start("producer", &["--name", &name, "--hold", "20000"]);
    assert!(wait_for(&shm_path(&name), LIMIT));
    std::thread::sleep(Duration::from_millis(500));
    producer.signal(libc::SIGTERM);
    let ppid = producer.pid;
    producer
        .wait(LIMIT)
        .fails_with(143, &["interrupted by SIGTERM"]);
    consumer.wait(LIMIT).fails_with(
        1,
        &[&format!("producer pid {ppid} withdrew segment {name}")],
    );
    assert_clean(&name);
}

#[test]
fn an_interrupted_consumer_is_not_taken_for_an_acknowledgement() {
    let name = unique("cint");
    let producer = Proc::start("producer", &["--name", &name, "--timeout", "20"]);
    assert!(wait_for(&shm_path(&name), LIMIT));
    let consumer = Proc::start("consumer", &["--name", &name, "--hold", "20000"]);
    wait_until_holding(&name, consumer.pid);
    consumer.signal(libc::SIGINT);
    consumer
        .wait(LIMIT)
        .fails_with(130, &["interrupted by SIGINT"]);
    producer
        .wait(LIMIT)
        .fails_with(1, &["the consumer rejected the payload"]);
    assert_clean(&name);
}

// ------------------------------------------------------- names and owners

#[test]
fn a_second_producer_on_one_name_is_refused_at_once() {
    let name = unique("twoprod");
    let first = Proc::start("producer", &["--name", &name, "--timeout", "20"]);
    assert!(wait_for(&shm_path(&name), LIMIT));
    let second = run("producer", &["--name", &name]);
    second.fails_with(
        1,
        &[&format!("segment {name} is in use by pid {}", first.pid)],
    );
    assert!(
        second.elapsed < Duration::from_secs(5),
        "{:?}",
        second.elapsed
    );
    // The first is unaffected.
    run("consumer", &["--name", &name]).ok();
    first.wait(LIMIT).ok();
    assert_clean(&name);
}

/// Leaves a stale segment behind: a producer SIGKILLed while waiting.
fn make_stale(name: &str) -> u32 {
    let producer = Proc::start("producer", &["--name", name, "--timeout", "30"]);
    assert!(wait_for(&shm_path(name), LIMIT));
    std::thread::sleep(Duration::from_millis(100));
    producer.signal(libc::SIGKILL);
    let pid = producer.pid;
    producer.wait(LIMIT);
    pid
}

#[test]
fn stale_segments_are_recognised_listed_and_cleaned() {
    let stale = unique("stale");
    let pid = make_stale(&stale);
    // A consumer does not take a dead producer's segment for a live one.
    run("consumer", &["--name", &stale, "--timeout", "1"]).fails_with(
        1,
        &[&format!(
            "segment {stale} is stale (its producer pid {pid} is dead) and no live producer replaced it"
        )],
    );
    // A consumer that starts first keeps waiting until a new producer replaces it.
    let consumer = Proc::start("consumer", &["--name", &stale, "--json"]);
    std::thread::sleep(Duration::from_millis(300));
    let p = run("producer", &["--name", &stale, "--json"]);
    p.ok();
    assert_eq!(
        consumer.wait(LIMIT).ok().json()["producer_pid"],
        p.json()["pid"]
    );
    assert_clean(&stale);

    // --clean removes dead segments only.
    let stale = unique("stale");
    make_stale(&stale);
    let live = unique("live");
    let producer = Proc::start("producer", &["--name", &live, "--timeout", "20"]);
    assert!(wait_for(&shm_path(&live), LIMIT));
    let c = run("producer", &["--clean"]);
    c.ok();
    assert!(
        c.stdout
            .contains(&format!("removed /dev/shm/p1p2.{stale} (its owner pid")),
        "{}",
        c.stdout
    );
    assert!(!shm_path(&stale).exists());
    assert!(shm_path(&live).exists(), "--clean removed a live segment");
    let listed = run("producer", &["--list", "--json"]).ok().json();
    let entry = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == live.as_str())
        .expect("live segment listed");
    assert_eq!(entry["alive"], true);
    assert_eq!(entry["pid"], producer.pid);
    run("consumer", &["--name", &live]).ok();
    producer.wait(LIMIT).ok();
    assert_clean(&stale);
    assert_clean(&live);
}

#[test]
fn symlinks_directories_and_other_users_files_are_refused() {
    let name = unique("link");
    let path = shm_path(&name);
    let target = std::env::temp_dir().join(format!("p1p2-test-target-{name}"));
    std::os::unix::fs::symlink(&target, &path).unwrap();
    run("producer", &["--name", &name]).fails_with(1, &["it is a symbolic link"]);
    run("consumer", &["--name", &name]).fails_with(1, &["it is a symbolic link"]);
    assert!(!target.exists(), "the link was followed");
    assert!(std::fs::symlink_metadata(&path)
        .unwrap()
        .file_type()
        .is_symlink());
    std::fs::remove_file(&path).unwrap();

    std::fs::create_dir(&path).unwrap();
    run("producer", &["--name", &name]).fails_with(1, &["it is not a regular file"]);
    run("consumer", &["--name", &name]).fails_with(1, &["it is not a regular file"]);
    std::fs::remove_dir(&path).unwrap();

    // A socket path that is a symlink.
    let sock = Name::new(&name).unwrap().socket_path();
    std::os::unix::fs::symlink(&target, &sock).unwrap();
    run("producer", &["--name", &name, "--transport", "unix"])
        .fails_with(1, &["it is a symbolic link"]);
    run("consumer", &["--name", &name, "--transport", "unix"])
        .fails_with(1, &["it is a symbolic link"]);
    std::fs::remove_file(&sock).unwrap();

    // Another user's file (only root can make one to test with).
    if rustix::process::geteuid().is_root() {
        std::fs::write(&path, vec![0u8; 8192]).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
        run("producer", &["--name", &name]).fails_with(1, &["belongs to uid 65534"]);
        run("consumer", &["--name", &name]).fails_with(1, &["belongs to uid 65534"]);
        run("producer", &["--clean"]).ok();
        assert!(path.exists(), "--clean removed another user's file");
        std::fs::remove_file(&path).unwrap();
    }
    assert_clean(&name);
}

// ------------------------------------------------------- hostile segments

/// A header page with the given fields, followed by `payload` zero bytes.
fn raw_segment(version: u32, capacity: u64, stride: u64, payload: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; HEADER_SIZE + payload];
    bytes[0..8].copy_from_slice(&MAGIC.to_le_bytes());
    bytes[8..12].copy_from_slice(&version.to_le_bytes());
    bytes[12..16].copy_from_slice(&(HEADER_SIZE as u32).to_le_bytes());
    bytes[16..24].copy_from_slice(&capacity.to_le_bytes());
    bytes[24..32].copy_from_slice(&stride.to_le_bytes());
    bytes[32..36].copy_from_slice(&1u32.to_le_bytes());
    bytes[36..40].copy_from_slice(&(Kind::Transfer as u32).to_le_bytes());
    bytes[44..48].copy_from_slice(&1u32.to_le_bytes());
    bytes
}

#[test]
fn malformed_segment_files_are_clear_errors() {
    let cases: [(Vec<u8>, &str); 5] = [
        (vec![0x41; 8192], "wrong magic"),
        (vec![0; 100], "less than the 4096-byte header"),
        (raw_segment(9, 4096, 4096, 4096), "layout version 9"),
        (
            raw_segment(VERSION, 4096, 4096, 8192),
            "header describes 8192 bytes but the file has 12288",
        ),
        (
            raw_segment(VERSION, 1 << 40, 1 << 40, 4096),
            "header describes",
        ),
    ];
    for (bytes, reason) in cases {
        let name = unique("hostile");
        let path = shm_path(&name);
        std::fs::write(&path, &bytes).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let c = run("consumer", &["--name", &name, "--timeout", "5"]);
        c.fails_with(1, &[&format!("segment {name}: "), reason]);
        assert!(
            c.elapsed < Duration::from_secs(4),
            "it waited: {:?}",
            c.elapsed
        );
        std::fs::remove_file(&path).unwrap();
        assert_clean(&name);
    }
}

#[test]
fn a_length_beyond_the_capacity_is_refused() {
    let name = unique("toolong");
    let segment = live_segment(&name, |slot, len| {
        slot.len.store(len as u64 + 1_000_000, Ordering::Relaxed);
    });
    run("consumer", &["--name", &name]).fails_with(1, &["exceeds the slot capacity"]);
    drop(segment);
    assert_clean(&name);
}

#[test]
fn a_segment_truncated_after_mapping_is_an_error_not_a_sigbus() {
    let name = unique("trunc");
    let segment = live_segment(&name, |_, _| {});
    let guard = segment.try_lock(0).unwrap().unwrap();
    let consumer = Proc::start("consumer", &["--name", &name, "--timeout", "20"]);
    // The consumer maps the file and waits for the lock; then the file shrinks.
    util::retry(|| (segment.consumer_pid() == Some(consumer.pid)).then_some(()));
    std::fs::OpenOptions::new()
        .write(true)
        .open(shm_path(&name))
        .unwrap()
        .set_len(HEADER_SIZE as u64)
        .unwrap();
    drop(guard);
    consumer
        .wait(LIMIT)
        .fails_with(1, &["truncated to 4096 bytes while mapped"]);
    drop(segment);
    assert_clean(&name);
}

#[test]
fn a_payload_that_changes_during_the_read_is_refused() {
    let name = unique("seq");
    let segment = live_segment(&name, |_, _| {});
    let stop = Arc::new(AtomicBool::new(false));
    let consumer = Proc::start("consumer", &["--name", &name, "--hold", "300"]);
    // A writer that ignores the lock and keeps bumping the sequence number,
    // by two, so it stays even: the consumer may read it before or after the
    // first bump, and either way sees it move during the read (an odd value
    // would be refused earlier, as a write that never finished).
    let writer = {
        let stop = Arc::clone(&stop);
        let pid = consumer.pid;
        let name = Name::new(&name).unwrap();
        std::thread::spawn(move || {
            // Its own mapping: a Segment stays on the thread that made it.
            let segment = Segment::open(&name).unwrap();
            while !stop.load(Ordering::Relaxed) {
                if segment.holder_pid(0) == Some(pid) {
                    segment.slot(0).seq.fetch_add(2, Ordering::Relaxed);
                }
                std::hint::spin_loop();
            }
        })
    };
    let c = consumer.wait(LIMIT);
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    c.fails_with(1, &["the payload changed while being read (sequence"]);
    util::assert_rejected_and_clean(segment, &name);
}

#[test]
fn garbage_where_the_mutex_should_be_is_refused() {
    let name = unique("badlock");
    let segment = live_segment(&name, |_, _| {});
    // Overwrite the mutex's type word in the published file.
    let lock_kind = 128 + 64 + 16;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(shm_path(&name))
        .unwrap();
    std::os::unix::fs::FileExt::write_all_at(&file, &[0xff; 4], lock_kind as u64).unwrap();
    run("consumer", &["--name", &name]).fails_with(
        1,
        &["slot 0's lock: it is not a robust process-shared mutex"],
    );
    drop(segment);
    assert_clean(&name);
}

// --------------------------------------------------------- hostile images

/// A PNG with the given IHDR (8-bit, `color` type) and an IDAT holding
/// `inflated` zero bytes, compressed.
fn crafted_png(width: u32, height: u32, color: u8, inflated: usize) -> Vec<u8> {
    use std::io::Write;
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, color, 0, 0, 0]);
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 1 << 20];
    let mut left = inflated;
    while left > 0 {
        let n = left.min(zeros.len());
        z.write_all(&zeros[..n]).unwrap();
        left -= n;
    }
    let idat = z.finish().unwrap();
    let mut png = common::png::SIGNATURE.to_vec();
    png.extend(util::png_chunk(b"IHDR", &ihdr));
    png.extend(util::png_chunk(b"IDAT", &idat));
    png.extend(util::png_chunk(b"IEND", &[]));
    png
}

/// Sends `png` and returns the consumer's run. The consumer's address space is
/// capped at 1 GiB, so a decoder that allocated beyond its limits would die
/// of it instead of passing.
fn send_hostile(png: &[u8], consumer_args: &[&str]) -> util::Run {
    let dir = util::temp_dir("himg");
    let path = dir.path().join("hostile.png");
    std::fs::write(&path, png).unwrap();
    let name = unique("himg");
    let mut cmd = Command::new(util::bin("consumer"));
    cmd.args(["--name", &name, "--timeout", "30"])
        .args(consumer_args);
    // SAFETY: between fork and exec only the async-signal-safe setrlimit runs,
    // on a stack value.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 1 << 30,
                rlim_max: 1 << 30,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let consumer = Proc::start_cmd(&mut cmd);
    let producer = Proc::start("producer", &[path.to_str().unwrap(), "--name", &name]);
    let c = consumer.wait(LIMIT);
    producer.wait(LIMIT);
    std::fs::remove_dir_all(dir).unwrap();
    assert_clean(&name);
    c
}

#[test]
fn hostile_images_are_clear_errors_within_the_decode_limits() {
    // Declared dimensions beyond --max-dim: refused before any pixel is inflated.
    let huge = crafted_png(100_000, 100_000, 6, 1024);
    send_hostile(&huge, &[]).fails_with(1, &["cannot decode the image:", "--max-dim"]);

    // Within the dimensions but beyond --max-alloc (16000 x 16000 RGBA = 1 GB).
    let big = crafted_png(16_000, 16_000, 6, 1024);
    send_hostile(&big, &["--max-alloc", "64"])
        .fails_with(1, &["cannot decode the image:", "64 MiB of allocations"]);

    // A small image whose IDAT inflates to 256 MiB: only what the image
    // needs is inflated, so memory stays bounded.
    let bomb = crafted_png(256, 256, 0, 256 << 20);
    assert!(bomb.len() < 1 << 20, "the bomb is small on disk");
    let c = send_hostile(&bomb, &[]);
    assert!(
        c.status.code() == Some(0) || c.status.code() == Some(1),
        "killed by the bomb: {:?} {}",
        c.status,
        c.stderr
    );
    assert!(!c.stderr.contains("panicked"), "{}", c.stderr);

    // A chunk with a bad CRC.
    let mut bad_crc = std::fs::read(image()).unwrap();
    bad_crc[29] ^= 0xff; // last byte of IHDR's CRC
    send_hostile(&bad_crc, &[]).fails_with(1, &["cannot decode the image:", "CRC error"]);
}

// ------------------------------------------------------------------- soak

/// `count` consecutive transfers over one name, alternating start orders,
/// each verified against the file's CRC-32.
fn soak(count: usize, limit: Duration) {
    let name = unique("soak");
    let expected = format!("{:08x}", crc32fast::hash(&std::fs::read(image()).unwrap()));
    let started = Instant::now();
    let (mut lost, mut corrupted) = (0, 0);
    for i in 0..count {
        assert!(started.elapsed() < limit, "soak ran out of time at {i}");
        let args = ["--name", name.as_str(), "--json", "--timeout", "20"];
        let (p, c) = if i % 2 == 0 {
            let consumer = Proc::start("consumer", &args);
            let p = Proc::start("producer", &args).wait(LIMIT);
            (p, consumer.wait(LIMIT))
        } else {
            let producer = Proc::start("producer", &args);
            let c = Proc::start("consumer", &args).wait(LIMIT);
            (producer.wait(LIMIT), c)
        };
        if !(p.status.success() && c.status.success()) {
            lost += 1;
            eprintln!("transfer {i} failed: {} | {}", p.stderr, c.stderr);
            continue;
        }
        if c.json()["crc32"] != expected.as_str() || p.json()["crc32"] != expected.as_str() {
            corrupted += 1;
        }
    }
    assert_eq!((lost, corrupted), (0, 0), "of {count} transfers");
    assert_clean(&name);
}

#[test]
fn soak_short() {
    soak(100, Duration::from_secs(600));
}

/// The long form: `cargo test --release --test reliability -- --ignored soak_long`.
#[test]
#[ignore = "long: 10,000 transfers"]
fn soak_long() {
    let count = std::env::var("P1P2_SOAK")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    soak(count, Duration::from_secs(3600));
}
