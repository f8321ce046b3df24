//! Tests of the sealed memfd transport, with the real binaries and a fake producer.
//!
//! The memfd transport with the real binaries, and against a fake producer
//! written here with rustix's `sendmsg`: a sealed memfd is read in place with
//! no payload byte through the socket, nothing ever appears in /dev/shm, the
//! producer's decision is the outcome both sides report, a kill at any step
//! leaves nothing, and every bad descriptor is refused in one line and
//! closed.

mod util;

use std::io::{IoSlice, Read};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::error::{Error, Role};
use common::story::Story;
use common::transport::{Incoming, Received, Session, TransportKind};
use common::Name;
use rustix::fs::{MemfdFlags, SealFlags};
use rustix::net::{sendmsg, SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
use serde_json::Value;
use util::{assert_clean, copies, image, root, run, unique, Proc, Run};

const LIMIT: Duration = Duration::from_secs(60);

/// `--name NAME --transport memfd --timeout 10 --json`.
fn memfd_args(name: &str) -> Vec<&str> {
    vec![
        "--name",
        name,
        "--transport",
        "memfd",
        "--timeout",
        "10",
        "--json",
    ]
}

/// Runs a consumer, then a producer, over memfd; extra arguments and
/// environment for each.
fn pair<'a>(
    name: &'a str,
    producer_extra: &[&'a str],
    consumer_extra: &[&'a str],
    producer_env: &[(&str, &str)],
    consumer_env: &[(&str, &str)],
) -> (Proc, Proc) {
    // A `--timeout` among the extras replaces the default.
    let args = |extra: &[&'a str]| -> Vec<&'a str> {
        let mut args = memfd_args(name);
        if extra.contains(&"--timeout") {
            args.drain(4..6);
        }
        args.extend_from_slice(extra);
        args
    };
    let c = args(consumer_extra);
    let consumer = Proc::start_env("consumer", &c, consumer_env);
    std::thread::sleep(Duration::from_millis(100));
    let p = args(producer_extra);
    let producer = Proc::start_env("producer", &p, producer_env);
    (producer, consumer)
}

fn transfer(name: &str, producer_extra: &[&str], consumer_extra: &[&str]) -> (Run, Run) {
    let (p, c) = pair(name, producer_extra, consumer_extra, &[], &[]);
    (p.wait(LIMIT), c.wait(LIMIT))
}

fn rw_bytes(report: &Value) -> Option<u64> {
    let io = report.get("proc_io")?;
    Some(io["rchar"].as_u64()? + io["wchar"].as_u64()?)
}

#[test]
fn a_sealed_memfd_is_read_in_place_and_no_payload_byte_crosses_the_socket() {
    let png_len = std::fs::metadata(image()).unwrap().len();
    for read in ["direct", "heap"] {
        let name = unique("memfd-ok");
        let (p, c) = transfer(&name, &["--read", read], &[]);
        let (p, c) = (p.ok().json(), c.ok().json());
        assert_eq!(p["transport"], "memfd");
        assert_eq!(c["transport"], "memfd");
        assert_eq!(p["crc32"], c["crc32"]);
        assert_eq!(c["bytes"].as_u64(), Some(png_len));
        assert_eq!(
            (c["width"].as_u64(), c["height"].as_u64()),
            (Some(512), Some(512))
        );
        assert_eq!(
            c["seals"],
            serde_json::json!(["seal", "shrink", "grow", "write"])
        );
        assert!(p.get("seals").is_none(), "the producer reports no seals");
        // The consumer reads in place: no copy at all.
        assert_eq!(copies(&c), []);
        // The producer's one copy is into the memfd.
        let want = match read {
            "direct" => ("file -> memfd (pread)", "kernel"),
            _ => ("heap -> memfd (memcpy)", "user"),
        };
        assert_eq!(copies(&p), [(want.0.to_owned(), want.1.to_owned())]);
        // What the kernel counted through read/write: the consumer, only its
        // hello; the producer, the hello and the answer (and, reading
        // straight from the file, the file).
        if let (Some(pc), Some(cc)) = (rw_bytes(&p), rw_bytes(&c)) {
            assert!(cc < 1000, "consumer read/wrote {cc} bytes: {c}");
            match read {
                "direct" => assert!(
                    (png_len..png_len + 1000).contains(&pc),
                    "producer read/wrote {pc} bytes: {p}"
                ),
                _ => assert!(pc < 1000, "producer read/wrote {pc} bytes: {p}"),
            }
        }
        assert_clean(&name);
    }
}

#[test]
fn the_decoded_image_matches_the_other_transports() {
    let dir = util::temp_dir("memfd-out");
    let name = unique("memfd-out");
    let out = dir.path().join("memfd.png");
    let (p, c) = transfer(&name, &[], &["--out", out.to_str().unwrap()]);
    p.ok();
    c.ok();
    let shm_out = dir.path().join("shm.png");
    let name2 = unique("memfd-shm-out");
    let consumer = Proc::start(
        "consumer",
        &["--name", &name2, "--out", shm_out.to_str().unwrap()],
    );
    std::thread::sleep(Duration::from_millis(100));
    run("producer", &["--name", &name2]).ok();
    consumer.wait(LIMIT).ok();
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(&shm_out).unwrap()
    );
    std::fs::remove_dir_all(&dir).unwrap();
    assert_clean(&name);
    assert_clean(&name2);
}

/// Watches /dev/shm with inotify (every entry created or moved in) and by
/// listing it every millisecond, until stopped; returns every name seen.
struct ShmWatch {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<String>>>,
    thread: Option<JoinHandle<()>>,
}

impl ShmWatch {
    fn start() -> ShmWatch {
        use rustix::fs::inotify;
        let fd =
            inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK).unwrap();
        inotify::add_watch(
            &fd,
            "/dev/shm",
            inotify::WatchFlags::CREATE | inotify::WatchFlags::MOVED_TO,
        )
        .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (stop2, seen2) = (Arc::clone(&stop), Arc::clone(&seen));
        let thread = std::thread::spawn(move || {
            let mut buf = [MaybeUninit::<u8>::uninit(); 4096];
            loop {
                let done = stop2.load(Ordering::Acquire);
                let mut names = Vec::new();
                let mut reader = inotify::Reader::new(&fd, &mut buf);
                while let Ok(event) = reader.next() {
                    if let Some(file) = event.file_name() {
                        names.push(file.to_string_lossy().into_owned());
                    }
                }
                if let Ok(entries) = std::fs::read_dir("/dev/shm") {
                    names.extend(
                        entries
                            .flatten()
                            .map(|e| e.file_name().to_string_lossy().into_owned()),
                    );
                }
                seen2.lock().unwrap().extend(names);
                if done {
                    return;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        ShmWatch {
            stop,
            seen,
            thread: Some(thread),
        }
    }

    /// Stops watching; every name seen that contains `fragment`.
    fn finish(mut self, fragment: &str) -> Vec<String> {
        self.stop.store(true, Ordering::Release);
        self.thread.take().unwrap().join().unwrap();
        let mut hits: Vec<String> = self
            .seen
            .lock()
            .unwrap()
            .iter()
            .filter(|n| n.contains(fragment))
            .cloned()
            .collect();
        hits.dedup();
        hits
    }
}

#[test]
fn nothing_appears_in_dev_shm_at_any_moment_of_a_memfd_transfer() {
    let name = unique("memfd-watch");
    let watch = ShmWatch::start();
    // The watch works: a file created and removed at once is seen.
    let probe = Path::new("/dev/shm").join(format!("probe.{name}"));
    std::fs::write(&probe, b"x").unwrap();
    std::fs::remove_file(&probe).unwrap();
    let (p, c) = transfer(&name, &["--hold", "400"], &["--hold", "400"]);
    p.ok();
    c.ok();
    let seen = watch.finish(&name);
    assert_eq!(
        seen,
        [format!("probe.{name}")],
        "/dev/shm saw more than the probe during the transfer"
    );
    assert_clean(&name);
}

#[test]
fn the_producer_withdraws_at_its_deadline_and_both_sides_say_not_delivered() {
    let name = unique("memfd-withdraw");
    let (p, c) = pair(&name, &["--timeout", "1"], &["--hold", "2500"], &[], &[]);
    let p = p.wait(LIMIT);
    let c = c.wait(LIMIT);
    p.fails_with(1, &["did not answer", "withdrawn", "not delivered"]);
    c.fails_with(1, &["not delivered: the producer withdrew it"]);
    assert_clean(&name);
}

/// `producer --clean`, then nothing of `name` is left.
fn clean_and_check(name: &str) {
    run("producer", &["--clean"]).ok();
    assert_clean(name);
}

#[test]
fn killing_the_producer_at_any_step_leaves_nothing() {
    for (point, consumer_says) in [
        ("producer:sealed", "no producer listened"),
        ("producer:bound", "no producer listened"),
        ("producer:sent", "died before confirming"),
    ] {
        let name = unique("memfd-killp");
        let (p, c) = pair(
            &name,
            &[],
            &["--timeout", "2"],
            &[("P1P2_STOP_AT", point)],
            &[],
        );
        p.wait_stopped(Duration::from_secs(20));
        p.signal(libc::SIGKILL);
        let _ = p.wait(LIMIT);
        let c = c.wait(LIMIT);
        c.fails_with(1, &[consumer_says]);
        if point == "producer:sent" {
            // The next producer replaces the dead one's socket.
            let (p, c) = transfer(&name, &[], &[]);
            p.ok();
            c.ok();
        }
        clean_and_check(&name);
    }
}

#[test]
fn killing_the_consumer_at_any_step_leaves_nothing_and_the_producer_decides() {
    for (point, producer_ok) in [("consumer:received", false), ("consumer:answered", true)] {
        let name = unique("memfd-killc");
        let (p, c) = pair(&name, &[], &[], &[], &[("P1P2_STOP_AT", point)]);
        c.wait_stopped(Duration::from_secs(20));
        c.signal(libc::SIGKILL);
        let _ = c.wait(LIMIT);
        let p = p.wait(LIMIT);
        if producer_ok {
            // The ACK arrived before the consumer died: delivered.
            p.ok();
        } else {
            p.fails_with(
                1,
                &["closed the connection before answering", "not delivered"],
            );
        }
        assert_clean(&name);
    }
}

#[test]
fn try_tamper_shows_every_change_to_the_received_memfd_refused() {
    let name = unique("memfd-tamper");
    let (p, c) = transfer(&name, &[], &["--try-tamper"]);
    let (p, c) = (p.ok().json(), c.ok().json());
    assert_eq!(p["crc32"], c["crc32"]);
    let attempts = c["tamper"].as_array().expect("a tamper list");
    let what: Vec<&str> = attempts.iter().filter_map(|a| a["what"].as_str()).collect();
    assert_eq!(what, ["shrink", "grow", "write", "map-writable"]);
    for a in attempts {
        assert_eq!(a["refused"], true, "{a}");
        assert_eq!(a["errno"], "EPERM", "{a}");
        assert_eq!(a["error"], "Operation not permitted", "{a}");
    }
    let half = c["bytes"].as_u64().unwrap() / 2;
    assert_eq!(attempts[0]["call"], format!("ftruncate(fd, {half})"));
    assert!(p.get("tamper").is_none());
    assert_clean(&name);

    // The story says it too, one line per attempt.
    let name = unique("memfd-tamper-story");
    let consumer = Proc::start(
        "consumer",
        &[
            "--name",
            &name,
            "--transport",
            "memfd",
            "--timeout",
            "10",
            "--try-tamper",
        ],
    );
    std::thread::sleep(Duration::from_millis(100));
    let producer = Proc::start(
        "producer",
        &["--name", &name, "--transport", "memfd", "--timeout", "10"],
    );
    producer.wait(LIMIT).ok();
    let story = consumer.wait(LIMIT).ok().stdout.clone();
    let refused: Vec<&str> = story
        .lines()
        .filter(|l| l.contains("tried to") && l.contains("refused with EPERM"))
        .collect();
    assert_eq!(refused.len(), 4, "{story}");
    assert_clean(&name);

    // Other transports have no seals to show: a usage error.
    let other = run(
        "consumer",
        &["--name", &name, "--try-tamper", "--timeout", "1"],
    );
    other.fails_with(2, &["--try-tamper", "needs --transport memfd"]);
}

#[test]
fn a_memfd_consumer_names_a_unix_producer() {
    let name = unique("memfd-mismatch");
    let consumer = Proc::start("consumer", &memfd_args(&name));
    std::thread::sleep(Duration::from_millis(100));
    let producer = Proc::start(
        "producer",
        &["--name", &name, "--transport", "unix", "--timeout", "10"],
    );
    consumer
        .wait(LIMIT)
        .fails_with(1, &["--transport unix", "not as a memfd"]);
    // Its NAK may arrive, or the connection close while it still writes.
    producer.wait(LIMIT).fails_with(1, &[]);
    assert_clean(&name);
}

// ---------------------------------------------------------------------------
// A fake producer: listens where the real one would, reads the hello, sends
// one offer with the given descriptors, and returns the consumer's answer.

fn offer(len: u64, crc32: u32) -> [u8; 24] {
    let mut offer = [0u8; 24];
    offer[..8].copy_from_slice(b"P1P2MFD\0");
    offer[8..16].copy_from_slice(&len.to_le_bytes());
    offer[16..20].copy_from_slice(&crc32.to_le_bytes());
    offer
}

fn fake_producer(name: &Name, offer: [u8; 24], fds: Vec<OwnedFd>) -> JoinHandle<Option<[u8; 8]>> {
    let path = name.socket_path();
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).unwrap();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut sock = loop {
            match listener.accept() {
                Ok((sock, _)) => break sock,
                Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(2)),
                Err(e) => panic!("no consumer connected: {e}"),
            }
        };
        drop(listener);
        let _ = std::fs::remove_file(&path);
        sock.set_nonblocking(false).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut hello = [0u8; 16];
        sock.read_exact(&mut hello).unwrap();
        assert_eq!(&hello[..8], b"P1P2HEL\0");
        {
            let borrowed: Vec<BorrowedFd<'_>> = fds.iter().map(|fd| fd.as_fd()).collect();
            let mut space =
                vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(borrowed.len().max(1)))];
            let mut control = SendAncillaryBuffer::new(&mut space);
            if !borrowed.is_empty() {
                assert!(control.push(SendAncillaryMessage::ScmRights(&borrowed)));
            }
            sendmsg(
                &sock,
                &[IoSlice::new(&offer)],
                &mut control,
                SendFlags::NOSIGNAL,
            )
            .unwrap();
        }
        // The fake keeps no copy: whatever is still open is the consumer's.
        drop(fds);
        let mut answer = [0u8; 8];
        sock.read_exact(&mut answer).ok().map(|()| answer)
    })
}

/// A memfd labelled `label`, `size` bytes of `fill`, with `seals`.
fn memfd(label: &str, size: u64, seals: SealFlags) -> OwnedFd {
    let fd =
        rustix::fs::memfd_create(label, MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING).unwrap();
    rustix::fs::ftruncate(&fd, size).unwrap();
    rustix::fs::fcntl_add_seals(&fd, seals).unwrap();
    fd
}

/// The descriptors of this process whose target contains `marker`.
fn open_fds(marker: &str) -> Vec<String> {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .map(|link| link.display().to_string())
        .filter(|link| link.contains(marker))
        .collect()
}

/// Receives with the library's memfd consumer, in this process.
fn receive_here(name: &Name) -> common::Result<Received> {
    let story = Story::new(Role::Consumer, true);
    let session = Session {
        name,
        timeout: Duration::from_secs(10),
        max_payload: 1 << 30,
        hold: Duration::ZERO,
        try_tamper: false,
        story: &story,
    };
    let mut accept = |incoming: Incoming<'_>| {
        let actual = crc32fast::hash(incoming.bytes);
        if actual == incoming.crc32 {
            Ok(())
        } else {
            Err(Error::CrcMismatch {
                expected: incoming.crc32,
                actual,
            })
        }
    };
    TransportKind::Memfd
        .transport("127.0.0.1:9".parse().unwrap())
        .receive(&session, &mut accept)
}

/// One bad offer: its descriptors (made fresh for each run), the length it
/// claims, the marker that finds its descriptors in /proc/self/fd, and the
/// words of the refusal.
struct Bad {
    what: &'static str,
    make: fn(&str) -> (Vec<OwnedFd>, u64, String),
    says: &'static [&'static str],
}

fn all_seals() -> SealFlags {
    SealFlags::SHRINK | SealFlags::GROW | SealFlags::WRITE | SealFlags::SEAL
}

fn bad_offers() -> Vec<Bad> {
    vec![
        Bad {
            what: "no descriptor",
            make: |_| (Vec::new(), 8, "no-such-marker".into()),
            says: &["sent no file descriptor", "expected exactly one"],
        },
        Bad {
            what: "two descriptors",
            make: |m| {
                let label = format!("fake-two.{m}");
                (
                    vec![memfd(&label, 8, all_seals()), memfd(&label, 8, all_seals())],
                    8,
                    label,
                )
            },
            says: &["sent 2 file descriptors", "expected exactly one"],
        },
        Bad {
            what: "an unsealed memfd",
            make: |m| {
                let label = format!("fake-unsealed.{m}");
                (vec![memfd(&label, 8, SealFlags::empty())], 8, label)
            },
            says: &["lacks the shrink, grow and write seals"],
        },
        Bad {
            what: "a memfd without the write seal",
            make: |m| {
                let label = format!("fake-nowrite.{m}");
                let seals = SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL;
                (vec![memfd(&label, 8, seals)], 8, label)
            },
            says: &["lacks the write seal (F_SEAL_WRITE)"],
        },
        Bad {
            what: "a memfd smaller than it claims",
            make: |m| {
                let label = format!("fake-short.{m}");
                (vec![memfd(&label, 100, all_seals())], 1000, label)
            },
            says: &["holds 100 bytes, less than the 1,000 its offer claims"],
        },
        Bad {
            what: "a regular file",
            make: |m| {
                let path = std::env::temp_dir().join(format!("p1p2-test-fake-file.{m}"));
                std::fs::write(&path, [0u8; 64]).unwrap();
                let file = std::fs::File::open(&path).unwrap();
                std::fs::remove_file(&path).unwrap();
                (vec![file.into()], 8, format!("fake-file.{m}"))
            },
            says: &["is the file", "not a memfd"],
        },
        Bad {
            what: "a /dev/shm file",
            make: |m| {
                let path = Path::new("/dev/shm").join(format!("p1p2-test-fake-shm.{m}"));
                std::fs::write(&path, [0u8; 64]).unwrap();
                let file = std::fs::File::open(&path).unwrap();
                std::fs::remove_file(&path).unwrap();
                (vec![file.into()], 8, format!("fake-shm.{m}"))
            },
            says: &["is the file /dev/shm/", "not a memfd"],
        },
        Bad {
            what: "a socket",
            make: |_| {
                let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
                drop(b);
                let ino = rustix::fs::fstat(&a).unwrap().st_ino;
                (vec![a.into()], 8, format!("socket:[{ino}]"))
            },
            says: &["is a socket, not a memfd"],
        },
    ]
}

#[test]
fn bad_offers_are_refused_in_one_line_and_every_descriptor_is_closed() {
    for bad in bad_offers() {
        // In this process: the refusal, the NAK, and no descriptor left.
        let name = Name::new(&unique("memfd-bad")).unwrap();
        let (fds, len, marker) = (bad.make)(name.as_str());
        let fake = fake_producer(&name, offer(len, 0), fds);
        let err = receive_here(&name).expect_err(bad.what).to_string();
        let answer = fake.join().unwrap();
        assert_eq!(
            answer.as_ref(),
            Some(b"P1P2NAK\0"),
            "{}: the answer",
            bad.what
        );
        assert_eq!(err.lines().count(), 1, "{}: {err}", bad.what);
        for word in bad.says {
            assert!(err.contains(word), "{}: {err:?} lacks {word:?}", bad.what);
        }
        assert_eq!(
            open_fds(&marker),
            Vec::<String>::new(),
            "{}: left open",
            bad.what
        );
        assert_clean(name.as_str());

        // The consumer binary: one line, exit 1, no panic.
        let name = Name::new(&unique("memfd-bad-bin")).unwrap();
        let (fds, len, _) = (bad.make)(name.as_str());
        let fake = fake_producer(&name, offer(len, 0), fds);
        let consumer = Proc::start("consumer", &memfd_args(name.as_str()));
        let answer = fake.join().unwrap();
        consumer.wait(LIMIT).fails_with(1, bad.says);
        assert_eq!(
            answer.as_ref(),
            Some(b"P1P2NAK\0"),
            "{}: the answer",
            bad.what
        );
        assert_clean(name.as_str());
    }
}

#[test]
fn a_good_fake_offer_is_accepted_and_its_descriptor_closed_after_use() {
    // The control case for the test above: the same fake with a sealed
    // memfd holding what it claims is acknowledged, and nothing stays open.
    let name = Name::new(&unique("memfd-good-fake")).unwrap();
    let label = format!("fake-good.{name}");
    let payload = b"a payload that is not a PNG, checked by CRC only";
    let fd = rustix::fs::memfd_create(
        label.as_str(),
        MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
    )
    .unwrap();
    rustix::io::write(&fd, payload).unwrap();
    rustix::fs::fcntl_add_seals(&fd, all_seals()).unwrap();
    let fake = fake_producer(
        &name,
        offer(payload.len() as u64, crc32fast::hash(payload)),
        vec![fd],
    );
    // The fake never sends DONE: after the ACK the consumer sees the
    // connection close, as from a producer that died before confirming.
    let err = receive_here(&name).unwrap_err().to_string();
    assert_eq!(fake.join().unwrap().as_ref(), Some(b"P1P2ACK\0"));
    assert!(err.contains("died before confirming"), "{err}");
    assert_eq!(open_fds(&label), Vec::<String>::new());
}

// ---------------------------------------------------------------------------
// The Python example.

fn python3() -> bool {
    util::python3(
        "import socket, fcntl; socket.recv_fds; fcntl.F_GET_SEALS",
        "3.9 or later",
    )
}

fn py_consumer(name: &str) -> Proc {
    let mut cmd = Command::new("python3");
    cmd.arg(root().join("scripts/py_memfd_consumer.py")).args([
        "--name",
        name,
        "--timeout",
        "10",
        "--json",
    ]);
    Proc::start_cmd(&mut cmd)
}

#[test]
fn the_python_consumer_receives_checks_and_acknowledges_the_real_producer() {
    if !python3() {
        return;
    }
    let name = unique("memfd-py");
    let consumer = py_consumer(&name);
    std::thread::sleep(Duration::from_millis(200));
    let producer = Proc::start("producer", &memfd_args(&name));
    let p = producer.wait(LIMIT).ok().json();
    let c = consumer.wait(LIMIT).ok().json();
    assert_eq!(c["crc32"], p["crc32"]);
    assert_eq!(c["bytes"], p["bytes"]);
    assert_eq!(
        c["seals"],
        serde_json::json!(["seal", "shrink", "grow", "write"])
    );
    assert_eq!(
        (c["width"].as_u64(), c["height"].as_u64()),
        (Some(512), Some(512))
    );
    assert_eq!(p["consumer_pid"], c["pid"]);
    assert_clean(&name);
}

#[test]
fn the_python_consumer_refuses_an_unsealed_memfd_and_closes_it() {
    if !python3() {
        return;
    }
    let name = Name::new(&unique("memfd-py-bad")).unwrap();
    let label = format!("fake-py.{name}");
    let fake = fake_producer(
        &name,
        offer(8, 0),
        vec![memfd(&label, 8, SealFlags::empty())],
    );
    let consumer = py_consumer(name.as_str());
    assert_eq!(fake.join().unwrap().as_ref(), Some(b"P1P2NAK\0"));
    consumer
        .wait(LIMIT)
        .fails_with(1, &["lacks the shrink, grow and write seals"]);
    assert_clean(name.as_str());
}

#[test]
fn the_raw_descriptor_numbers_of_this_test_are_real() {
    // open_fds must see what is open, or the closing checks prove nothing.
    let label = format!("fake-visible.{}", unique("memfd-visible"));
    let fd = memfd(&label, 8, SealFlags::empty());
    assert_eq!(open_fds(&label).len(), 1, "fd {}", fd.as_raw_fd());
    drop(fd);
    assert_eq!(open_fds(&label).len(), 0);
}
