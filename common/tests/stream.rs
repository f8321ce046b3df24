//! Streams of frames through the ring and over sockets, with the real binaries and hostile rings.
//!
//! Every multi-process behaviour is checked by spawning `producer --stream`
//! and `consumer --stream`; the hostile cases publish a ring from this test
//! process and then rewrite its bytes as a lying producer would.

mod util;

use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::copy::CopyMode;
use common::segment::Segment;
use common::stream::frames::Source;
use common::stream::{Policy, Read, Reader, Writer};
use common::wait::Deadline;
use common::Name;
use util::{assert_clean, poll, unique, Proc, Run};

const LIMIT: Duration = Duration::from_secs(60);

fn producer(name: &str, extra: &[&str]) -> Proc {
    let mut args = vec!["--stream", "--name", name, "--json", "--timeout", "20"];
    args.extend_from_slice(extra);
    Proc::start("producer", &args)
}

fn consumer(name: &str, extra: &[&str]) -> Proc {
    let mut args = vec!["--stream", "--name", name, "--json", "--timeout", "20"];
    args.extend_from_slice(extra);
    Proc::start("consumer", &args)
}

fn num(report: &serde_json::Value, key: &str) -> u64 {
    report[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} in {report}"))
}

/// The frames a consumer got match the producer's shape and format.
fn same_picture(c: &serde_json::Value, p: &serde_json::Value) {
    for key in ["width", "height", "format"] {
        assert_eq!(c[key], p[key], "{key}: consumer {c} producer {p}");
    }
}

/// Waits until `n` readers are attached to the ring `name`.
fn await_readers(name: &str, n: usize) {
    let path = format!("/dev/shm/p1p2.{name}");
    assert!(
        poll(Duration::from_secs(20), || {
            let Ok(file) = std::fs::File::open(&path) else {
                return false;
            };
            let mut table = [0u8; 2048];
            file.read_exact_at(&mut table, 2048).is_ok()
                && table
                    .chunks(64)
                    .filter(|e| e[..8] != [0; 8] && e[16] & 1 == 0)
                    .count()
                    >= n
        }),
        "{n} readers never attached to {name}"
    );
}

/// Waits until the ring `name` has published frame `n` (its head, at offset 88).
fn await_frame(name: &str, n: u64) {
    let path = format!("/dev/shm/p1p2.{name}");
    assert!(
        poll(Duration::from_secs(20), || {
            let mut head = [0u8; 8];
            std::fs::File::open(&path)
                .and_then(|f| f.read_exact_at(&mut head, 88))
                .is_ok_and(|()| u64::from_le_bytes(head) >= n)
        }),
        "{name} never published frame {n}"
    );
}

#[test]
fn under_every_each_of_three_consumers_gets_every_frame_in_place() {
    let name = unique("every3");
    let p = producer(
        &name,
        &[
            "--policy",
            "every",
            "--fps",
            "0",
            "--frames",
            "90",
            "--consumers",
            "3",
        ],
    );
    let cs: Vec<Proc> = (0..3).map(|_| consumer(&name, &[])).collect();
    let p = p.wait(LIMIT);
    let pj = p.ok().json();
    assert_eq!(num(&pj, "frames"), 90);
    assert_eq!(pj["policy"], "every");
    assert_eq!(num(&pj, "evicted"), 0);
    assert_eq!(num(&pj, "consumers"), 3);
    for c in cs {
        let cj = c.wait(LIMIT).ok().json();
        assert_eq!(num(&cj, "frames"), 90, "{cj}");
        assert_eq!(num(&cj, "skipped"), 0, "{cj}");
        assert_eq!(num(&cj, "copies"), 0, "read in place: {cj}");
        assert_eq!(cj["policy"], "every");
        same_picture(&cj, &pj);
        assert!(cj["latency_us"]["p50"].as_f64().unwrap() > 0.0);
        assert!(cj["latency_us"]["p99"].as_f64() >= cj["latency_us"]["p50"].as_f64());
        assert!(cj["latency_us"]["max"].as_f64() >= cj["latency_us"]["p99"].as_f64());
        assert!(cj["fps"].as_f64().unwrap() > 0.0);
    }
    assert_clean(&name);
}

#[test]
fn consumers_join_mid_stream_and_leave_freely() {
    let name = unique("join");
    let p = producer(&name, &["--fps", "100", "--frames", "300"]);
    assert!(util::wait_for(
        std::path::Path::new(&format!("/dev/shm/p1p2.{name}")),
        Duration::from_secs(20)
    ));
    std::thread::sleep(Duration::from_millis(300));
    // One reads the rest of the stream; one leaves after 20 frames, and a
    // third attaches after it left.
    let stays = consumer(&name, &[]);
    let leaves = consumer(&name, &["--frames", "20"]).wait(LIMIT);
    let lj = leaves.ok().json();
    assert_eq!(num(&lj, "frames"), 20);
    let late = consumer(&name, &[]);
    let pj = p.wait(LIMIT).ok().json();
    assert_eq!(num(&pj, "frames"), 300);
    for c in [stays, late] {
        let cj = c.wait(LIMIT).ok().json();
        // It joined late: it got fewer frames than were published, but some.
        assert!(
            (1..300).contains(&num(&cj, "frames")),
            "a late reader starts at the stream's present: {cj}"
        );
        same_picture(&cj, &pj);
    }
    assert_clean(&name);
}

/// A stream of `frames` frames at 50 a second under `every`, started once
/// two readers are attached; returns its name, the producer, and the two
/// readers, once the stream runs (frame 5 is out).
fn every_with_two_readers(tag: &str, frames: u64) -> (String, Proc, Proc, Proc) {
    let name = unique(tag);
    let frames = frames.to_string();
    let p = producer(
        &name,
        &[
            "--policy",
            "every",
            "--fps",
            "50",
            "--frames",
            &frames,
            "--consumers",
            "2",
        ],
    );
    let first = consumer(&name, &[]);
    let second = consumer(&name, &[]);
    // The producer counted both readers before frame 1.
    await_frame(&name, 5);
    (name, p, first, second)
}

#[test]
fn under_every_a_stopped_consumer_is_dropped_and_the_stream_goes_on() {
    let (name, p, healthy, sleeper) = every_with_two_readers("stopped", 150);
    sleeper.signal(libc::SIGSTOP);
    let pj = p.wait(LIMIT).ok().json();
    assert_eq!(num(&pj, "frames"), 150);
    assert_eq!(
        num(&pj, "evicted"),
        1,
        "the stopped reader is dropped: {pj}"
    );
    // It was waited for one second at most, not for ever: 150 frames at 50
    // fps take 3 s.
    assert!(pj["seconds"].as_f64().unwrap() < 3.0 + 1.0 + 2.0, "{pj}");
    let hj = healthy.wait(LIMIT).ok().json();
    assert_eq!(
        num(&hj, "frames"),
        150,
        "the live reader lost nothing: {hj}"
    );
    assert_eq!(num(&hj, "skipped"), 0);
    // Woken up, the stopped reader learns it was dropped, counts what it
    // missed and finishes the stream.
    sleeper.signal(libc::SIGCONT);
    let sj = sleeper.wait(LIMIT).ok().json();
    assert_eq!(num(&sj, "evicted"), 1, "{sj}");
    assert!(num(&sj, "skipped") > 0, "{sj}");
    assert_eq!(num(&sj, "frames") + num(&sj, "skipped"), 150, "{sj}");
    assert_clean(&name);
}

#[test]
fn under_every_a_killed_consumer_is_dropped_not_evicted() {
    let (name, p, healthy, victim) = every_with_two_readers("killed", 100);
    victim.signal(libc::SIGKILL);
    let pj = p.wait(LIMIT).ok().json();
    assert_eq!(num(&pj, "frames"), 100);
    // Dead, not slow: its entry is freed, it is not counted as evicted.
    assert_eq!(num(&pj, "evicted"), 0, "{pj}");
    let hj = healthy.wait(LIMIT).ok().json();
    assert_eq!(num(&hj, "frames"), 100);
    let _ = victim.wait(LIMIT);
    assert_clean(&name);
}

#[test]
fn under_latest_a_stopped_consumer_never_holds_the_producer() {
    let name = unique("latest");
    let p = producer(
        &name,
        &["--fps", "200", "--frames", "400", "--consumers", "1"],
    );
    let sleeper = consumer(&name, &[]);
    await_frame(&name, 1);
    sleeper.signal(libc::SIGSTOP);
    let pj = p.wait(LIMIT).ok().json();
    assert_eq!(num(&pj, "frames"), 400);
    assert_eq!(pj["policy"], "latest");
    assert_eq!(num(&pj, "evicted"), 0, "nobody is waited for under latest");
    sleeper.signal(libc::SIGCONT);
    let sj = sleeper.wait(LIMIT).ok().json();
    assert!(num(&sj, "skipped") > 0, "it missed frames: {sj}");
    assert!(num(&sj, "frames") >= 1);
    assert_clean(&name);
}

#[test]
fn a_producer_that_dies_mid_frame_is_reported_by_its_readers() {
    let name = unique("midframe");
    let p = Proc::start_env(
        "producer",
        &[
            "--stream",
            "--name",
            &name,
            "--fps",
            "0",
            "--frames",
            "10",
            "--consumers",
            "1",
            "--timeout",
            "20",
        ],
        &[("P1P2_STOP_AT", "producer:mid-frame")],
    );
    let c = consumer(&name, &[]);
    p.wait_stopped(Duration::from_secs(20));
    p.signal(libc::SIGKILL);
    let run: Run = c.wait(LIMIT);
    run.fails_with(1, &["producer", "died", "in the middle of writing frame 1"]);
    let _ = p.wait(LIMIT);
    // The dead producer's ring is stale: --clean removes it.
    let _ = util::run("producer", &["--clean"]);
    assert_clean(&name);
}

#[test]
fn an_aborted_stream_is_not_mistaken_for_a_death() {
    let name = unique("abort");
    let p = producer(&name, &["--fps", "20", "--seconds", "30"]);
    let c = consumer(&name, &[]);
    await_readers(&name, 1);
    p.signal(libc::SIGTERM);
    let pr = p.wait(LIMIT);
    assert_eq!(pr.status.code(), Some(128 + libc::SIGTERM), "{}", pr.stderr);
    c.wait(LIMIT)
        .fails_with(1, &["stopped stream", "without ending it"]);
    assert_clean(&name);
}

/// Publishes a ring from this process, lets `lie` rewrite the file, and
/// returns what a consumer makes of it.
fn consume_lying_ring(tag: &str, lie: impl FnOnce(&std::fs::File)) -> Run {
    let name = unique(tag);
    let n = Name::new(&name).unwrap();
    let source = Source::pattern(64, 48);
    let (mut writer, _) = Writer::create(&n, source.shape().len(), 3, Policy::Latest).unwrap();
    writer
        .publish(source.shape(), |dst| source.fill(1, dst, CopyMode::Std))
        .unwrap();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/dev/shm/p1p2.{name}"))
        .unwrap();
    lie(&file);
    let run = util::run("consumer", &["--stream", "--name", &name, "--timeout", "3"]);
    drop(writer);
    assert_clean(&name);
    run
}

#[test]
fn a_ring_with_a_slot_count_out_of_range_is_refused() {
    // Slot count (offset 32) of 99: more than the header page holds.
    let run = consume_lying_ring("slots", |f| {
        f.write_all_at(&99u32.to_le_bytes(), 32).unwrap();
    });
    run.fails_with(1, &["slot count"]);
}

#[test]
fn a_frame_header_larger_than_its_slot_is_refused() {
    // Frame 1 is in slot 1; its height (high half of the word at 128 + 128 + 48)
    // becomes 100000 rows: stride x height no longer fits the slot.
    let run = consume_lying_ring("stride", |f| {
        let size = 64u64 | 100_000u64 << 32;
        f.write_all_at(&size.to_le_bytes(), 128 + 128 + 48).unwrap();
    });
    run.fails_with(1, &["frame 1", "lies", "does not fit a slot"]);
}

#[test]
fn a_frame_whose_pixels_disagree_with_its_crc_is_refused() {
    let run = consume_lying_ring("crc", |f| {
        // Slot 1's pixels start at 4096 + one slot stride (3 pages here).
        f.write_all_at(&[0x55; 16], 4096 + 3 * 4096 + 5000).unwrap();
    });
    run.fails_with(1, &["frame 1", "CRC-32"]);
}

#[test]
fn a_stream_and_a_transfer_are_not_mistaken_for_each_other() {
    let name = unique("kinds");
    let n = Name::new(&name).unwrap();
    let (writer, _) = Writer::create(&n, 4096, 2, Policy::Latest).unwrap();
    util::run("consumer", &["--name", &name, "--timeout", "3"])
        .fails_with(1, &["stream", "not a transfer"]);
    drop(writer);
    let segment = util::live_segment(&name, |_, _| {});
    util::run("consumer", &["--stream", "--name", &name, "--timeout", "3"])
        .fails_with(1, &["holds a transfer, not a stream"]);
    drop(segment);
    assert_clean(&name);
}

/// The writer rewrites the slots as fast as it can while the reader takes
/// its time over each frame: most reads overlap a write, and not one of
/// them may be delivered. Every frame that is delivered is exactly the
/// frame its header names.
#[test]
fn a_frame_overwritten_while_it_is_read_is_never_delivered() {
    let name = unique("torn");
    let n = Name::new(&name).unwrap();
    let source = Arc::new(Source::pattern(320, 240));
    let (mut writer, _) = Writer::create(&n, source.shape().len(), 2, Policy::Latest).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let mut reader = Reader::attach(Segment::open(&n).unwrap(), Duration::ZERO).unwrap();
    let writing = {
        let (source, stop) = (Arc::clone(&source), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut id = 0;
            while !stop.load(Ordering::Relaxed) {
                id += 1;
                writer
                    .publish(source.shape(), |dst| source.fill(id, dst, CopyMode::Std))
                    .unwrap();
            }
            writer.end();
            writer
        })
    };
    let mut delivered = 0;
    let deadline = Deadline::after(Duration::from_secs(20));
    while delivered < 40 {
        let read = reader
            .next(&deadline, |_, pixels| {
                // Slow on purpose: the writer laps the reader.
                std::thread::sleep(Duration::from_micros(300));
                pixels.to_vec()
            })
            .unwrap();
        let Read::Frame(frame, copy) = read else {
            panic!("the stream ended early")
        };
        let mut expected = vec![0u8; copy.len()];
        let crc = source.fill(frame.id, &mut expected, CopyMode::Std);
        assert_eq!(crc, frame.crc32);
        assert!(copy == expected, "frame {} was delivered torn", frame.id);
        delivered += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let writer = writing.join().unwrap();
    assert!(
        reader.stats().skipped > 0,
        "the writer never lapped the reader: {:?}",
        reader.stats()
    );
    drop((reader, writer));
    assert_clean(&name);
}

#[test]
fn sockets_carry_the_same_stream_with_one_copy_per_reader() {
    for transport in ["unix", "tcp"] {
        let name = unique(transport);
        let addr = util::free_addr();
        let net = ["--transport", transport, "--addr", &addr];
        let mut args = vec![
            "--policy",
            "every",
            "--fps",
            "0",
            "--frames",
            "40",
            "--consumers",
            "2",
        ];
        args.extend_from_slice(&net);
        let p = producer(&name, &args);
        let cs: Vec<Proc> = (0..2).map(|_| consumer(&name, &net)).collect();
        let pj = p.wait(LIMIT).ok().json();
        assert_eq!(num(&pj, "frames"), 40);
        let frame_bytes = num(&pj, "frame_bytes");
        // The kernel saw every frame written once per reader.
        let written = num(&pj["witness"]["proc_io"], "wchar");
        assert!(written >= 2 * 40 * frame_bytes, "{pj}");
        for c in cs {
            let cj = c.wait(LIMIT).ok().json();
            assert_eq!(num(&cj, "frames"), 40, "{transport}: {cj}");
            assert_eq!(num(&cj, "skipped"), 0);
            assert_eq!(num(&cj, "copies"), 1);
            assert_eq!(cj["policy"], "every", "the policy travels in the headers");
            assert!(num(&cj["witness"]["proc_io"], "rchar") >= 40 * frame_bytes);
            same_picture(&cj, &pj);
        }
        assert_clean(&name);
    }
}

#[test]
fn the_preview_stays_off_when_stdout_is_not_a_terminal() {
    let name = unique("preview");
    let p = producer(
        &name,
        &["--fps", "50", "--frames", "30", "--consumers", "1"],
    );
    let c = Proc::start(
        "consumer",
        &["--stream", "--name", &name, "--preview", "--timeout", "20"],
    );
    p.wait(LIMIT).ok();
    let run = c.wait(LIMIT);
    run.ok();
    assert!(
        !run.stdout.contains('\x1b'),
        "escape codes in a pipe: {:?}",
        run.stdout
    );
    assert_clean(&name);
}

#[test]
fn bad_stream_options_get_one_line_and_no_segment() {
    let name = unique("badopts");
    util::run("producer", &["--stream", "--name", &name, "--slots", "1"])
        .fails_with(2, &["--slots 1", "2 to 15"]);
    util::run(
        "producer",
        &["--stream", "--name", &name, "/nonexistent.png"],
    )
    .fails_with(1, &["no such file"]);
    util::run(
        "producer",
        &["--stream", "--name", &name, "--transport", "memfd"],
    )
    .fails_with(2, &["shm, unix or tcp"]);
    assert_clean(&name);
}

#[test]
fn a_full_reader_table_refuses_one_more_reader_with_a_clear_error() {
    let name = unique("full");
    let n = Name::new(&name).unwrap();
    let (writer, _) = Writer::create(&n, 4096, 2, Policy::Latest).unwrap();
    let readers: Vec<Reader> = (0..common::stream::MAX_READERS)
        .map(|_| Reader::attach(Segment::open(&n).unwrap(), Duration::ZERO).unwrap())
        .collect();
    assert_eq!(writer.readers(), common::stream::MAX_READERS);
    let err = Reader::attach(Segment::open(&n).unwrap(), Duration::ZERO).unwrap_err();
    assert!(
        err.to_string()
            .contains("reader table (32 entries, all taken)"),
        "{err}"
    );
    // They leave: their entries are free for the next.
    drop(readers);
    assert_eq!(writer.readers(), 0);
    let again = Reader::attach(Segment::open(&n).unwrap(), Duration::ZERO).unwrap();
    assert_eq!(writer.readers(), 1);
    drop((again, writer));
    assert_clean(&name);
}
