//! Tests of SIGKILL at every step of the shared-memory hand-off, with the real binaries.
//!
//! SIGKILL at every step of the shared-memory hand-off, on both sides; the
//! time a peer needs to notice a dead lock holder; deadlines that ignore the
//! wall clock; both sides reporting the same outcome; a consumer that leaves
//! normally is not taken for a dead one. All with the real binaries.
//!
//! The process under test stops itself at a named step (`P1P2_STOP_AT`, see
//! `common/src/failpoint.rs`); the test waits for the stop, kills it, and
//! checks what its peer reports and that nothing is left behind.

mod util;

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use common::failpoint;
use common::segment::Segment;
use common::Name;
use util::{assert_clean, leftovers, poll, run, unique, wait_for, Proc, Run};

/// The longest any single process may take before the test fails.
const LIMIT: Duration = Duration::from_secs(60);
/// How long a process may take to reach its stop point.
const STOP: Duration = Duration::from_secs(20);
/// "At once": well below the 30 s `--timeout` the waiting side is given, so
/// an answer within this is the dead holder being noticed, not a deadline.
const AT_ONCE: Duration = Duration::from_secs(5);

/// `producer --clean` removes every dead segment on the machine, including
/// the ones other tests here leave for a survivor to remove and check. Tests
/// hold this for reading while such a segment may exist; `--clean` runs
/// holding it for writing.
static CLEANING: RwLock<()> = RwLock::new(());

fn scenario() -> RwLockReadGuard<'static, ()> {
    CLEANING.read().unwrap_or_else(|e| e.into_inner())
}

fn shm_path(name: &str) -> PathBuf {
    Name::new(name).unwrap().shm_path()
}

fn open(name: &str) -> Segment {
    Segment::open(&Name::new(name).unwrap()).unwrap()
}

fn stop_at(point: &str) -> [(&'static str, &str); 1] {
    assert!(failpoint::POINTS.contains(&point), "no stop point {point}");
    [(failpoint::ENV, point)]
}

/// Waits until segment `name` exists.
fn published(name: &str) {
    assert!(wait_for(&shm_path(name), LIMIT), "{name} never appeared");
}

/// Waits until `pid` has claimed segment `name` as its consumer.
fn claimed_by(name: &str, pid: u32) {
    let segment = open(name);
    assert!(
        poll(LIMIT, || segment.consumer_pid() == Some(pid)),
        "consumer pid {pid} never claimed {name}"
    );
}

/// SIGKILLs a process and reaps it.
fn kill(proc: Proc) -> (u32, Instant) {
    let pid = proc.pid;
    proc.signal(libc::SIGKILL);
    let killed = Instant::now();
    let run = proc.wait(LIMIT);
    assert_eq!(run.status.signal(), Some(libc::SIGKILL), "{run:?}");
    (pid, killed)
}

/// Asserts that `run` printed every one of `lines` on stdout.
fn says(run: &Run, lines: &[String]) {
    for line in lines {
        assert!(
            run.stdout.contains(line.as_str()),
            "{line:?} not in stdout:\n{}\nstderr: {}",
            run.stdout,
            run.stderr
        );
    }
}

/// Asserts that `run` ended within `limit` of `since`.
fn ended_within(since: Instant, limit: Duration, what: &str) {
    let took = since.elapsed();
    assert!(took < limit, "{what} took {took:?}, not under {limit:?}");
}

/// Runs `producer --clean` and asserts that it removes exactly what is left
/// of `name`, which is one file: the segment (or its temporary file) of a
/// producer that was killed before anyone else attached to it.
///
/// Test runs of other checkouts on the machine may list or clean at the
/// same moment: a `--list` probing the file's flock makes `--clean` leave it
/// (it is tried again), and another `--clean` may remove it first (said on
/// stdout, and not a failure).
fn clean_removes_the_dead_producers_file(name: &str, pid: u32) {
    let left = leftovers(name);
    assert_eq!(left.len(), 1, "expected one file of {name}, found {left:?}");
    let file = &left[0];
    // The header records the creator's pid from the start, and `--clean`
    // names it.
    let removed = format!("removed {file} (its owner pid {pid} is dead)");
    let _alone = CLEANING.write().unwrap_or_else(|e| e.into_inner());
    for _attempt in 0..5 {
        if !Path::new(file).exists() {
            println!("{file} was removed by another process's --clean");
            break;
        }
        let c = run("producer", &["--clean"]);
        c.ok();
        if c.stdout.contains(&removed) {
            break;
        }
        assert!(
            !c.stdout.contains(file.as_str()),
            "--clean named {file} but not as {removed:?}: {}",
            c.stdout
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_clean(name);
}

// ------------------------------------------------- the producer killed

/// A producer killed after creating its segment, before publishing it: no
/// consumer can see it, so the consumer times out; and since the segment was
/// an unnamed file (`O_TMPFILE`) until its publication, nothing is left.
#[test]
fn producer_killed_at_created() {
    let name = unique("k-created");
    let _s = scenario();
    let producer = Proc::start_env("producer", &["--name", &name], &stop_at("producer:created"));
    producer.wait_stopped(STOP);
    let consumer = Proc::start("consumer", &["--name", &name, "--timeout", "1"]);
    kill(producer);
    consumer.wait(LIMIT).fails_with(
        1,
        &[
            &format!("no producer published segment {name}"),
            "gave up after",
        ],
    );
    assert!(!shm_path(&name).exists());
    let left = leftovers(&name);
    assert!(left.is_empty(), "the killed producer left {left:?}");
}

/// A producer killed while it holds the lock over an Empty slot (at
/// `producer:published`, before it starts writing, or at `producer:writing`,
/// halfway): the consumer waiting for the lock gets it at once, recovered
/// over Empty, discards the payload and removes the stale segment.
fn producer_killed_before_its_payload_is_complete(point: &str, seq_odd: bool) {
    let name = unique("k-empty");
    let _s = scenario();
    let producer = Proc::start_env("producer", &["--name", &name], &stop_at(point));
    producer.wait_stopped(STOP);
    let seq = open(&name).slot(0).seq.load(Ordering::Acquire);
    assert_eq!(seq % 2 == 1, seq_odd, "sequence number {seq} at {point}");
    let consumer = Proc::start("consumer", &["--name", &name, "--timeout", "30"]);
    claimed_by(&name, consumer.pid);
    std::thread::sleep(Duration::from_millis(200)); // into its lock wait
    let (pid, killed) = kill(producer);
    let c = consumer.wait(LIMIT);
    ended_within(killed, AT_ONCE, "the consumer");
    c.fails_with(
        1,
        &[&format!(
            "producer pid {pid} died while writing its payload into segment {name}; \
             the half-written payload was discarded"
        )],
    );
    says(
        &c,
        &[format!(
            "removed segment {name}, left behind by its dead producer pid {pid}"
        )],
    );
    assert_clean(&name);
}

#[test]
fn producer_killed_at_published() {
    producer_killed_before_its_payload_is_complete("producer:published", false);
}

#[test]
fn producer_killed_at_writing() {
    producer_killed_before_its_payload_is_complete("producer:writing", true);
}

/// A producer killed holding the lock over a complete, published payload:
/// the consumer gets the lock at once, uses the payload and removes the
/// stale segment.
#[test]
fn producer_killed_at_ready() {
    let name = unique("k-ready");
    let _s = scenario();
    let producer = Proc::start_env("producer", &["--name", &name], &stop_at("producer:ready"));
    producer.wait_stopped(STOP);
    let consumer = Proc::start("consumer", &["--name", &name, "--timeout", "30"]);
    claimed_by(&name, consumer.pid);
    std::thread::sleep(Duration::from_millis(200));
    let (pid, killed) = kill(producer);
    let c = consumer.wait(LIMIT);
    ended_within(killed, AT_ONCE, "the consumer");
    c.ok();
    says(
        &c,
        &[
            format!(
                "producer pid {pid} died holding the lock after publishing a complete payload; \
                 using it"
            ),
            "crc32 3a0dc29e ok".to_owned(),
            format!("removed segment {name}, left behind by its dead producer pid {pid}"),
            "acknowledged (to nobody: the producer is dead)".to_owned(),
        ],
    );
    assert_clean(&name);
}

/// A producer killed after releasing the lock over a complete payload,
/// before any consumer took it: a consumer that had claimed it (stopped
/// there meanwhile) takes the lock normally, uses the payload and removes
/// the stale segment.
#[test]
fn producer_killed_at_released_before_the_consumer_locks() {
    let name = unique("k-rel");
    let _s = scenario();
    let producer = Proc::start_env(
        "producer",
        &["--name", &name],
        &stop_at("producer:released"),
    );
    producer.wait_stopped(STOP);
    let consumer = Proc::start_env(
        "consumer",
        &["--name", &name, "--timeout", "30"],
        &stop_at("consumer:claimed"),
    );
    consumer.wait_stopped(STOP);
    let (pid, _) = kill(producer);
    consumer.signal(libc::SIGCONT);
    let c = consumer.wait(LIMIT);
    c.ok();
    says(
        &c,
        &[
            "crc32 3a0dc29e ok".to_owned(),
            format!("removed segment {name}, left behind by its dead producer pid {pid}"),
            "acknowledged (to nobody: the producer is dead)".to_owned(),
        ],
    );
    assert!(!c.stdout.contains("died"), "{}", c.stdout);
    assert_clean(&name);
}

/// A producer stopped after releasing the lock: a consumer takes the
/// payload and acknowledges it meanwhile; then the producer is killed.
/// Nobody is left to remove its segment: `producer --clean` does.
#[test]
fn producer_killed_at_released_after_the_consumer_acknowledged() {
    let name = unique("k-rel-ack");
    let pid = {
        let _s = scenario();
        let producer = Proc::start_env(
            "producer",
            &["--name", &name],
            &stop_at("producer:released"),
        );
        producer.wait_stopped(STOP);
        let c = run("consumer", &["--name", &name, "--timeout", "10"]);
        c.ok();
        says(&c, &["acknowledged and released the lock".to_owned()]);
        let (pid, _) = kill(producer);
        pid
    };
    clean_removes_the_dead_producers_file(&name, pid);
}

/// A producer killed holding the lock it took back after the consumer's
/// Ack: the consumer had already finished (exit 0); the segment stays
/// until `producer --clean`.
#[test]
fn producer_killed_at_locked() {
    let name = unique("k-locked");
    let pid = {
        let _s = scenario();
        let producer = Proc::start_env(
            "producer",
            &["--name", &name, "--timeout", "10"],
            &stop_at("producer:locked"),
        );
        published(&name);
        let c = run("consumer", &["--name", &name, "--timeout", "10"]);
        c.ok();
        says(&c, &["acknowledged and released the lock".to_owned()]);
        producer.wait_stopped(STOP);
        let (pid, _) = kill(producer);
        pid
    };
    clean_removes_the_dead_producers_file(&name, pid);
}

// ------------------------------------------------- the consumer killed

/// Starts a producer (`--timeout` `secs`), then a consumer that stops at
/// `point`; kills the consumer there; returns the producer's run, the dead
/// consumer's pid and how long after the kill the producer ended.
fn kill_consumer_at(name: &str, point: &str, secs: &str) -> (Run, u32, Duration) {
    let producer = Proc::start("producer", &["--name", name, "--timeout", secs]);
    published(name);
    let consumer = Proc::start_env(
        "consumer",
        &["--name", name, "--timeout", "30"],
        &stop_at(point),
    );
    consumer.wait_stopped(STOP);
    std::thread::sleep(Duration::from_millis(200)); // the producer waits meanwhile
    let (pid, killed) = kill(consumer);
    let p = producer.wait(LIMIT);
    (p, pid, killed.elapsed())
}

/// A consumer killed after opening the segment, before claiming it: the
/// producer never learns of it and gives up at its `--timeout`.
#[test]
fn consumer_killed_at_opened() {
    let name = unique("k-opened");
    let (p, _, _) = kill_consumer_at(&name, "consumer:opened", "2");
    p.fails_with(
        1,
        &[&format!("no consumer read segment {name}"), "gave up after"],
    );
    assert!(p.elapsed >= Duration::from_secs(2), "{:?}", p.elapsed);
    assert_clean(&name);
}

/// A consumer killed after claiming the segment, or holding the lock
/// before taking the payload: the producer notices the dead claimant at
/// once, withdraws the payload and removes the segment.
fn consumer_killed_before_taking(point: &str) {
    let name = unique("k-claim");
    let (p, pid, after) = kill_consumer_at(&name, point, "30");
    assert!(after < AT_ONCE, "the producer took {after:?}");
    p.fails_with(
        1,
        &[&format!(
            "consumer pid {pid} died before acknowledging segment {name}"
        )],
    );
    assert_clean(&name);
}

#[test]
fn consumer_killed_at_claimed() {
    consumer_killed_before_taking("consumer:claimed");
}

#[test]
fn consumer_killed_at_locked() {
    consumer_killed_before_taking("consumer:locked");
}

/// A consumer killed holding the lock over the payload it took: the robust
/// mutex hands the lock to the waiting producer at once, which withdraws
/// the payload.
#[test]
fn consumer_killed_at_taken() {
    let name = unique("k-taken");
    let (p, pid, after) = kill_consumer_at(&name, "consumer:taken", "30");
    assert!(after < AT_ONCE, "the producer took {after:?}");
    p.fails_with(
        1,
        &[&format!(
            "consumer pid {pid} died while reading segment {name}"
        )],
    );
    says(
        &p,
        &[format!(
            "the consumer died holding the lock while reading; withdrawing segment {name}"
        )],
    );
    assert_clean(&name);
}

/// A consumer killed after its Ack, before releasing the lock: the image
/// was delivered, and the producer, handed the lock at once, says so.
#[test]
fn consumer_killed_at_resolved() {
    let name = unique("k-resolved");
    let (p, pid, after) = kill_consumer_at(&name, "consumer:resolved", "30");
    assert!(after < AT_ONCE, "the producer took {after:?}");
    p.ok();
    says(&p, &[format!("consumer pid {pid} acknowledged after")]);
    assert_clean(&name);
}

// ------------------------------------------------- time to notice a death

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// How long after a lock holder's SIGKILL its waiting peer ends, cleanly:
/// (a) the producer killed holding the lock (`--hold`), the consumer
/// waiting; (b) the consumer killed holding it (`--hold`), the producer
/// waiting. Prints the median of `P1P2_ROUNDS` (20) rounds of each.
///
/// `cargo test -p common --test crash -- --ignored --nocapture handover`
#[test]
#[ignore = "a measurement: run it on its own, with --nocapture"]
fn handover_after_sigkill_medians() {
    let rounds: usize = std::env::var("P1P2_ROUNDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20);
    let _s = scenario();
    let mut producer_killed = Vec::new();
    let mut consumer_killed = Vec::new();
    for _ in 0..rounds {
        // (a)
        let name = unique("t-pkill");
        let producer = Proc::start(
            "producer",
            &["--name", &name, "--hold", "60000", "--timeout", "30"],
        );
        published(&name);
        let consumer = Proc::start("consumer", &["--name", &name, "--timeout", "30"]);
        claimed_by(&name, consumer.pid);
        std::thread::sleep(Duration::from_millis(200));
        let pid = producer.pid;
        producer.signal(libc::SIGKILL);
        let killed = Instant::now();
        let c = consumer.wait(LIMIT);
        producer_killed.push(killed.elapsed());
        producer.wait(LIMIT);
        c.ok();
        says(
            &c,
            &[format!(
                "producer pid {pid} died holding the lock after publishing a complete payload"
            )],
        );
        assert_clean(&name);

        // (b)
        let name = unique("t-ckill");
        let producer = Proc::start("producer", &["--name", &name, "--timeout", "30"]);
        published(&name);
        let consumer = Proc::start(
            "consumer",
            &["--name", &name, "--timeout", "30", "--hold", "60000"],
        );
        let segment = open(&name);
        assert!(poll(LIMIT, || segment.holder_pid(0) == Some(consumer.pid)
            && segment.slot(0).state.load(Ordering::Acquire)
                == common::handoff::State::Taken as u32));
        std::thread::sleep(Duration::from_millis(200));
        let pid = consumer.pid;
        consumer.signal(libc::SIGKILL);
        let killed = Instant::now();
        let p = producer.wait(LIMIT);
        consumer_killed.push(killed.elapsed());
        consumer.wait(LIMIT);
        p.fails_with(
            1,
            &[&format!(
                "consumer pid {pid} died while reading segment {name}"
            )],
        );
        assert_clean(&name);
    }
    println!("SIGKILL of the lock holder to the waiting peer's exit, {rounds} rounds each:");
    for (what, times) in [
        ("(a) producer killed, consumer waiting", producer_killed),
        ("(b) consumer killed, producer waiting", consumer_killed),
    ] {
        let (min, max) = (times.iter().min().copied(), times.iter().max().copied());
        println!(
            "{what}: median {:?} (min {min:?}, max {max:?})",
            median(times)
        );
    }
}

// ------------------------------------------------- the wall clock

/// An LD_PRELOAD shim: CLOCK_REALTIME reads `SKEW_SECS` ahead of the
/// kernel's clock. For a deadline computed from the wall clock, the same as
/// the clock being stepped back by that much right after computing it.
const SKEW_C: &str = r#"#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <time.h>
int clock_gettime(clockid_t id, struct timespec *ts) {
    static int (*real)(clockid_t, struct timespec *);
    if (!real) real = dlsym(RTLD_NEXT, "clock_gettime");
    int rc = real(id, ts);
    if (rc == 0 && id == CLOCK_REALTIME) {
        const char *s = getenv("SKEW_SECS");
        if (s) ts->tv_sec += atol(s);
    }
    return rc;
}
"#;

/// Builds the shim into a temporary directory; `None` (said on stdout)
/// without a C compiler.
fn skew_shim() -> Option<(tempfile::TempDir, PathBuf)> {
    let dir = util::temp_dir("skew");
    let source = dir.path().join("skew.c");
    let shim = dir.path().join("skew.so");
    std::fs::write(&source, SKEW_C).unwrap();
    let built = std::process::Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&shim)
        .arg(&source)
        .arg("-ldl")
        .output();
    match built {
        Err(e) => {
            println!("skipped: cannot run cc ({e})");
            let _ = std::fs::remove_dir_all(&dir);
            None
        }
        Ok(out) => {
            assert!(
                out.status.success(),
                "cc failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            // The shim works: `date` under it reads an hour ahead.
            let date = std::process::Command::new("date")
                .arg("+%s")
                .env("LD_PRELOAD", &shim)
                .env("SKEW_SECS", "3600")
                .output()
                .unwrap();
            let skewed: u64 = String::from_utf8_lossy(&date.stdout)
                .trim()
                .parse()
                .unwrap();
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            assert!(
                skewed >= now + 3500,
                "the shim did not move the clock: {skewed} vs {now}"
            );
            Some((dir, shim))
        }
    }
}

/// A consumer whose wall clock reads an hour ahead.
fn skewed_consumer(shim: &Path, args: &[&str]) -> Proc {
    let shim = shim.to_str().unwrap();
    Proc::start_env(
        "consumer",
        args,
        &[("LD_PRELOAD", shim), ("SKEW_SECS", "3600")],
    )
}

/// A consumer whose wall clock reads an hour ahead waits for a lock whose
/// holder is then killed: it ends within seconds, naming the dead holder.
#[test]
fn a_skewed_clock_does_not_delay_noticing_a_dead_holder() {
    let Some((dir, shim)) = skew_shim() else {
        return;
    };
    let name = unique("skew-kill");
    let _s = scenario();
    let producer = Proc::start("producer", &["--name", &name, "--hold", "60000"]);
    published(&name);
    let consumer = skewed_consumer(&shim, &["--name", &name, "--timeout", "30"]);
    claimed_by(&name, consumer.pid);
    std::thread::sleep(Duration::from_secs(1));
    let (pid, killed) = kill(producer);
    let c = consumer.wait(LIMIT);
    ended_within(killed, AT_ONCE, "the skewed consumer");
    c.ok();
    says(
        &c,
        &[format!(
            "producer pid {pid} died holding the lock after publishing a complete payload"
        )],
    );
    assert_clean(&name);
    std::fs::remove_dir_all(dir).unwrap();
}

/// A consumer whose wall clock reads an hour ahead gives up on a held lock
/// at its `--timeout` of 2 s, not an hour later.
#[test]
fn a_skewed_clock_does_not_stretch_the_timeout() {
    let Some((dir, shim)) = skew_shim() else {
        return;
    };
    let name = unique("skew-timeout");
    let producer = Proc::start(
        "producer",
        &["--name", &name, "--hold", "60000", "--timeout", "5"],
    );
    published(&name);
    let c = skewed_consumer(&shim, &["--name", &name, "--timeout", "2"]).wait(LIMIT);
    assert!(
        c.elapsed >= Duration::from_secs(2) && c.elapsed < Duration::from_secs(10),
        "the consumer with --timeout 2 took {:?}",
        c.elapsed
    );
    c.fails_with(
        1,
        &[
            &format!(
                "the lock on segment {name} stayed held by producer pid {}",
                producer.pid
            ),
            "gave up after",
        ],
    );
    producer.signal(libc::SIGTERM);
    producer
        .wait(LIMIT)
        .fails_with(143, &["interrupted by SIGTERM"]);
    assert_clean(&name);
    std::fs::remove_dir_all(dir).unwrap();
}

// ------------------------------------------------- one outcome, two reports

/// Runs a consumer that holds the verified payload for `hold` ms before
/// acknowledging, then a producer that waits at most `timeout` s for that:
/// the segment's name, both runs (producer's first), the consumer's pid,
/// and whether the consumer wrote its output file. Checks that nothing is
/// left behind.
fn hold_against_timeout(tag: &str, hold: &str, timeout: &str) -> (String, Run, Run, u32, bool) {
    let name = unique(tag);
    let dir = util::temp_dir(tag);
    let out = dir.path().join("out.png");
    let consumer = Proc::start(
        "consumer",
        &[
            "--name",
            &name,
            "--timeout",
            "20",
            "--hold",
            hold,
            "--out",
            out.to_str().unwrap(),
        ],
    );
    let cpid = consumer.pid;
    let p = run("producer", &["--name", &name, "--timeout", timeout]);
    let c = consumer.wait(LIMIT);
    let written = out.is_file();
    assert_clean(&name);
    std::fs::remove_dir_all(dir).unwrap();
    (name, p, c, cpid, written)
}

/// The producer gives up (`--timeout 1`) while the consumer holds the
/// verified payload (`--hold 3000`): the producer's Withdraw wins over the
/// late Ack, and both say the image was not delivered; the consumer writes
/// no output file.
#[test]
fn a_withdrawal_before_the_ack_is_reported_by_both_sides() {
    let (name, p, c, cpid, written) = hold_against_timeout("wva", "3000", "1");
    p.fails_with(
        1,
        &[
            &format!("consumer pid {cpid} took segment {name} but did not acknowledge it"),
            "gave up after",
        ],
    );
    c.fails_with(
        1,
        &[
            &format!("withdrew segment {name} before the acknowledgement"),
            "the image was not delivered",
        ],
    );
    assert!(!written, "the consumer wrote its output file");
}

/// The reverse: the producer waits long enough (`--timeout 5`) for the
/// consumer's `--hold 500`: both succeed, and the image is written.
#[test]
fn an_ack_within_the_producers_timeout_is_reported_by_both_sides() {
    let (_, p, c, cpid, written) = hold_against_timeout("ack", "500", "5");
    p.ok();
    c.ok();
    says(&p, &[format!("consumer pid {cpid} acknowledged after")]);
    says(&c, &["acknowledged and released the lock".to_owned()]);
    assert!(written, "no output file");
}

// ------------------------------------------------- leaving is not dying

/// A consumer that times out waiting for the lock leaves normally: its
/// claim goes with it, so the producer, watching for a dead claimant after
/// it releases the lock, does not report one, and delivers to the next
/// consumer.
#[test]
fn a_consumer_that_timed_out_is_not_reported_dead() {
    let name = unique("left");
    let producer = Proc::start(
        "producer",
        &["--name", &name, "--hold", "2500", "--timeout", "10"],
    );
    published(&name);
    let first = Proc::start("consumer", &["--name", &name, "--timeout", "1"]);
    first.wait(LIMIT).fails_with(
        1,
        &[
            &format!(
                "the lock on segment {name} stayed held by producer pid {}",
                producer.pid
            ),
            "gave up after",
        ],
    );
    let segment = open(&name);
    assert_eq!(
        segment.consumer_pid(),
        None,
        "the claim outlived its consumer"
    );
    // The producer releases the lock and watches for a dead claimant (every
    // 100 ms) for a while before the next consumer comes.
    assert!(poll(LIMIT, || segment.holder_pid(0).is_none()));
    std::thread::sleep(Duration::from_millis(500));
    let second = Proc::start("consumer", &["--name", &name, "--timeout", "10"]);
    let second_pid = second.pid;
    second.wait(LIMIT).ok();
    let p = producer.wait(LIMIT);
    p.ok();
    assert!(
        !p.stdout.contains("died") && !p.stderr.contains("died"),
        "{}{}",
        p.stdout,
        p.stderr
    );
    says(
        &p,
        &[format!("consumer pid {second_pid} acknowledged after")],
    );
    assert_clean(&name);
}
