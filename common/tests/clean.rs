//! Tests of `producer --clean` racing live producers.
//!
//! `producer --clean` racing live producers: it removes dead segments only,
//! never one a new producer has just put in a dead one's place.
//!
//! A test binary of its own: `--clean` acts on every segment of this user, so
//! it must not run beside tests that leave stale segments on purpose.

mod util;

use std::collections::HashSet;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use util::{assert_clean, run, unique, Proc};

const LIMIT: Duration = Duration::from_secs(60);

/// How many times `--clean` runs while the transfers go on.
const CLEANS: u32 = 50;

/// Leaves a stale segment `name`: a producer stopped right after publishing
/// it, then SIGKILLed. Its pid goes into `killed` before it dies.
fn make_stale(name: &str, killed: &Mutex<HashSet<u32>>) {
    let mut cmd = Command::new(util::bin("producer"));
    cmd.args(["--name", name, "--timeout", "30"])
        .env(common::failpoint::ENV, "producer:published");
    let producer = Proc::start_cmd(&mut cmd);
    util::retry(|| util::stopped(producer.pid).then_some(()));
    killed.lock().unwrap().insert(producer.pid);
    producer.signal(libc::SIGKILL);
    producer.wait(LIMIT);
}

#[test]
fn clean_in_a_loop_never_removes_a_live_segment() {
    let names: Vec<String> = (0..3).map(|_| unique("cleanrace")).collect();
    let killed = Arc::new(Mutex::new(HashSet::new()));
    let cleaning = Arc::new(AtomicBool::new(true));
    let replaced = Arc::new(AtomicU32::new(0));

    // Back-to-back transfers on each name, each over a stale segment left
    // by a killed producer, until the cleaning is over (at least 5 each).
    let transfers: Vec<_> = names
        .iter()
        .cloned()
        .map(|name| {
            let (killed, cleaning, replaced) = (killed.clone(), cleaning.clone(), replaced.clone());
            std::thread::spawn(move || {
                let started = Instant::now();
                let mut rounds = 0;
                while rounds < 5 || (cleaning.load(Ordering::Relaxed) && rounds < 100) {
                    assert!(started.elapsed() < LIMIT * 3, "the transfers took too long");
                    make_stale(&name, &killed);
                    let consumer = Proc::start("consumer", &["--name", &name, "--timeout", "30"]);
                    let p = run("producer", &["--name", &name, "--timeout", "30"]);
                    p.ok();
                    if p.stdout.contains("replaced a stale segment") {
                        replaced.fetch_add(1, Ordering::Relaxed);
                    }
                    let c = consumer.wait(LIMIT);
                    c.ok();
                    assert!(c.stdout.contains("crc32 3a0dc29e ok"), "{}", c.stdout);
                    rounds += 1;
                }
                rounds
            })
        })
        .collect();

    let mut removed = 0;
    for _ in 0..CLEANS {
        let c = run("producer", &["--clean"]);
        c.ok();
        for line in c.stdout.lines() {
            let Some(name) = names.iter().find(|n| line.contains(&format!("p1p2.{n} "))) else {
                continue;
            };
            // Only what a killed producer left: "removed PATH (its owner pid N is dead)".
            let pid: u32 = line
                .split("its owner pid ")
                .nth(1)
                .and_then(|rest| rest.split(' ').next())
                .and_then(|pid| pid.parse().ok())
                .unwrap_or_else(|| panic!("no owner pid in {line:?}"));
            assert!(
                killed.lock().unwrap().contains(&pid),
                "--clean removed {name}'s segment of pid {pid}, which was never killed: {line}"
            );
            removed += 1;
        }
    }
    cleaning.store(false, Ordering::Relaxed);
    let rounds: Vec<u32> = transfers.into_iter().map(|t| t.join().unwrap()).collect();
    eprintln!(
        "{rounds:?} transfers per name; stale segments removed by --clean: {removed}, \
         replaced by a producer: {}",
        replaced.load(Ordering::Relaxed)
    );
    for name in &names {
        assert_clean(name);
    }
}
