//! Lost updates, counted: processes add to one shared counter, with and without the lock.
//!
//! Lost updates, counted: several child processes add 1 to one shared counter
//! many times, first holding the lock over each `+=`, then without a lock.
//!
//! ```text
//! cargo run -p common --example race -- --procs 4 --iters 100000
//! expected 400000 | with lock 400000 (0 lost) | without lock 123456 (276544 lost)
//! ```
//!
//! With the lock, `*counter.lock()? += 1` reads and writes while no other
//! process can, so no increment is lost. Without it (`Lock::No`), each child
//! does `counter.set(counter.get()? + 1)`: a load, then a store. When two
//! processes load the same number, both store that number plus one, and one
//! increment is lost. Each load and store is atomic, so every number read is
//! one that some process wrote; only the increments go missing. How many are
//! lost depends on how often the children really run at the same time: on a
//! busy or single-core machine it may be few, or none.

mod support;

use std::process::ExitCode;
use std::time::Duration;

use common::shared::{Lock, SharedValue};
use common::Name;

const USAGE: &str = "usage: race [--procs N] [--iters N] [--timeout SECS]";

/// The parent's flags.
struct Args {
    /// Child processes per round.
    procs: u32,
    /// Increments per child.
    iters: u64,
    /// How long each round may take.
    timeout: Duration,
}

fn main() -> ExitCode {
    support::main("race", run)
}

fn run(args: &[String]) -> support::Result {
    match args {
        [flag, name, iters] if flag == "--child" => child(name, iters),
        _ => parent(&parse(args)?),
    }
}

fn parse(args: &[String]) -> support::Result<Args> {
    let mut parsed = Args {
        procs: 4,
        iters: 100_000,
        timeout: Duration::from_secs(300),
    };
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        if flag == "-h" || flag == "--help" {
            return Err(support::usage(USAGE));
        }
        let mut value = || {
            args.next()
                .ok_or_else(|| support::usage(format!("{flag} needs a value ({USAGE})")))
        };
        match flag.as_str() {
            "--procs" => {
                parsed.procs = value()?
                    .parse()
                    .ok()
                    .filter(|n| (1..=64).contains(n))
                    .ok_or_else(|| support::usage("--procs takes a number from 1 to 64"))?;
            }
            "--iters" => {
                parsed.iters = value()?
                    .parse()
                    .ok()
                    .filter(|&n| n <= 1_000_000_000)
                    .ok_or_else(|| support::usage("--iters takes a number from 0 to 1000000000"))?;
            }
            "--timeout" => {
                parsed.timeout = common::cli::parse_secs(value()?)
                    .map_err(|e| support::usage(format!("--timeout: {e}")))?;
            }
            other => {
                return Err(support::usage(format!(
                    "unknown argument {other:?} ({USAGE})"
                )))
            }
        }
    }
    Ok(parsed)
}

fn parent(args: &Args) -> support::Result {
    let expected = u64::from(args.procs) * args.iters;
    let with_lock = count(args, Lock::Yes)?;
    let without_lock = count(args, Lock::No)?;
    println!(
        "expected {expected} | with lock {with_lock} ({} lost) | without lock {without_lock} ({} lost)",
        expected.saturating_sub(with_lock),
        expected.saturating_sub(without_lock),
    );
    Ok(())
}

/// One round: a fresh counter at 0, `procs` children, the final count.
fn count(args: &Args, lock: Lock) -> support::Result<u64> {
    let mode = match lock {
        Lock::Yes => "locked",
        Lock::No => "unlocked",
    };
    let name = Name::new(&format!("example-race-{}-{mode}", std::process::id()))?;
    let counter = SharedValue::create_with(&name, 0u64, lock)?;
    let child = vec!["--child".into(), name.to_string(), args.iters.to_string()];
    support::run_children(&vec![child; args.procs as usize], args.timeout)?;
    Ok(counter.get()?)
}

fn child(name: &str, iters: &str) -> support::Result {
    let iters: u64 = iters.parse()?;
    let counter = SharedValue::<u64>::open(&Name::new(name)?)?;
    support::wait_for_start()?;
    // The mode is the one the parent recorded in the segment.
    match counter.lock_mode() {
        Lock::Yes => {
            for _ in 0..iters {
                *counter.lock()? += 1;
            }
        }
        Lock::No => {
            for _ in 0..iters {
                let seen = counter.get()?;
                counter.set(seen + 1)?;
            }
        }
    }
    Ok(())
}
