//! What a benchmark run measures and for how long: sizes, lists and the time budget.
//!
//! What a benchmark run measures and for how long: payload sizes as people
//! write them ("4KiB", "256MiB"), the lists given to `p1p2-bench`, and the
//! time budget that decides how many runs each case gets.
//!
//! # Run counts
//! Like hyperfine, a case first makes a fixed number of unmeasured warm-up
//! transfers, then measures transfers until its time budget is spent, with
//! at least `min_runs` and at most `max_runs` measured runs. A slow case (a
//! Python baseline at 256 MiB, say) stops at a hard limit even below
//! `min_runs`; it is then reported as capped rather than silently shortened.
//! A case may run in several rounds, interleaved with the other cases of its
//! size, each round with its share of the budget ([`Budget::split`]).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::case::{Channel, Pin};
use common::error::{Error, Result};

/// The smallest payload: the sequence stamp takes 8 bytes.
pub const MIN_SIZE: u64 = 8;

/// The largest payload (1 GiB): every peer holds the payload up to three
/// times (its own buffer and one or more slots).
pub const MAX_SIZE: u64 = 1 << 30;

/// The sizes of a full run.
pub const FULL_SIZES: [u64; 6] = [4 << 10, 64 << 10, 1 << 20, 8 << 20, 64 << 20, 256 << 20];

/// The sizes of a quick run (up to 64 MiB).
pub const QUICK_SIZES: [u64; 5] = [4 << 10, 64 << 10, 1 << 20, 8 << 20, 64 << 20];

/// Parses one payload size: a whole number followed by an optional binary
/// unit, `B`, `KiB`, `MiB` or `GiB` (case-insensitive, a space allowed
/// between): "4096", "64B", "4KiB", "1 MiB", "256mib".
///
/// # Errors
/// [`Error::Usage`] naming the size and what is wrong with it: no number,
/// an unknown unit (decimal "KB" and "MB" included, to avoid ambiguity),
/// below [`MIN_SIZE`] or above [`MAX_SIZE`].
pub fn parse_size(text: &str) -> Result<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let bad = |why: String| Error::Usage(format!("--sizes: {text:?} {why}"));
    if number.is_empty() {
        return Err(bad(
            "is not a size (write a whole number and a unit, like 4KiB or 1MiB)".into(),
        ));
    }
    let n: u64 = number
        .parse()
        .map_err(|_| bad("is too large a number".into()))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "kib" => 10,
        "mib" => 20,
        "gib" => 30,
        other => {
            return Err(bad(format!(
                "has an unknown unit {other:?} (use B, KiB, MiB or GiB)"
            )))
        }
    };
    let bytes = n
        .checked_mul(1 << shift)
        .ok_or_else(|| bad("is too large".into()))?;
    if bytes < MIN_SIZE {
        return Err(bad(format!(
            "is too small: payloads carry an 8-byte sequence stamp, so at least {MIN_SIZE} bytes"
        )));
    }
    if bytes > MAX_SIZE {
        return Err(bad("is larger than the 1 GiB this benchmark allows".into()));
    }
    Ok(bytes)
}

/// Parses a comma-separated list of sizes, sorted and without repeats.
///
/// # Errors
/// As [`parse_size`], for the first bad item, or for an empty list.
pub fn parse_sizes(text: &str) -> Result<Vec<u64>> {
    let mut sizes = parse_list(text, "--sizes", parse_size)?;
    sizes.sort_unstable();
    sizes.dedup();
    Ok(sizes)
}

/// Parses a comma-separated list of pinnings ("same,split"), without repeats.
///
/// # Errors
/// [`Error::Usage`] naming an unknown pinning, or for an empty list.
pub fn parse_pins(text: &str) -> Result<Vec<Pin>> {
    parse_list(text, "--pin", |s| s.parse::<Pin>())
}

/// Parses a comma-separated list of transports ("shm,unix,memcpy"), without
/// repeats.
///
/// # Errors
/// [`Error::Usage`] naming an unknown transport, or for an empty list.
pub fn parse_transports(text: &str) -> Result<Vec<Channel>> {
    parse_list(text, "--transports", |s| s.parse::<Channel>())
}

fn parse_list<T: PartialEq>(
    text: &str,
    flag: &str,
    parse: impl Fn(&str) -> Result<T>,
) -> Result<Vec<T>> {
    let mut out = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let value = parse(item).map_err(|e| match e {
            Error::Usage(m) if m.starts_with("--") => Error::Usage(m),
            Error::Usage(m) => Error::Usage(format!("{flag}: {m}")),
            other => other,
        })?;
        if !out.contains(&value) {
            out.push(value);
        }
    }
    if out.is_empty() {
        return Err(Error::Usage(format!("{flag}: the list is empty")));
    }
    Ok(out)
}

/// How many transfers one case makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budget {
    /// Unmeasured warm-up transfers, at least 1.
    pub warmup: usize,
    /// Keep measuring until this much time has passed (after `min_runs`).
    #[serde(with = "millis")]
    pub time: Duration,
    /// Measure at least this many runs, unless `hard` passes first.
    pub min_runs: usize,
    /// Never measure more than this many runs.
    pub max_runs: usize,
    /// Stop measuring once this much time has passed, whatever the count.
    #[serde(with = "millis")]
    pub hard: Duration,
}

impl Budget {
    /// The budget of a full run for `bytes`: 4 s per case, 10 to 10,000
    /// runs, 5 warm-up runs (3 at 8 MiB and above, 2 at 64 MiB and above).
    pub fn full(bytes: u64) -> Budget {
        Budget {
            warmup: warmup_for(bytes, [5, 3, 2]),
            time: Duration::from_secs(4),
            min_runs: 10,
            max_runs: 10_000,
            hard: Duration::from_secs(15),
        }
    }

    /// The budget of a quick run: 0.3 s per case, 5 to 2,000 runs, 2 warm-up
    /// runs (1 at 8 MiB and above).
    pub fn quick(bytes: u64) -> Budget {
        Budget {
            warmup: warmup_for(bytes, [2, 1, 1]),
            time: Duration::from_millis(300),
            min_runs: 5,
            max_runs: 2_000,
            hard: Duration::from_millis(1_500),
        }
    }

    /// Exactly `runs` measured runs after one warm-up run (`--runs`).
    pub fn fixed(runs: usize) -> Budget {
        Budget {
            warmup: 1,
            time: Duration::ZERO,
            min_runs: runs,
            max_runs: runs,
            hard: Duration::from_secs(3600),
        }
    }

    /// This budget with its time scaled by `factor` (hard limit included).
    pub fn scaled(mut self, factor: f64) -> Budget {
        self.time = self.time.mul_f64(factor);
        self.hard = self.hard.mul_f64(factor);
        self
    }

    /// This budget shared by `rounds` rounds of the same case: each round
    /// warms up again, and measures its share of the time and of the run
    /// counts (rounded up).
    pub fn split(self, rounds: usize) -> Budget {
        let r = rounds.max(1);
        Budget {
            warmup: self.warmup,
            time: self.time / r as u32,
            min_runs: self.min_runs.div_ceil(r),
            max_runs: self.max_runs.div_ceil(r),
            hard: self.hard / r as u32,
        }
    }

    /// Whether to measure another run after `runs` measured runs that took
    /// `elapsed` in all.
    pub fn more(&self, runs: usize, elapsed: Duration) -> bool {
        if runs >= self.max_runs || elapsed >= self.hard {
            return false;
        }
        runs < self.min_runs || elapsed < self.time
    }

    /// Whether a case that stopped after `runs` runs was cut short of
    /// `min_runs` by the hard limit.
    pub fn capped(&self, runs: usize) -> bool {
        runs < self.min_runs
    }

    /// The longest a case can take once warmed up: its hard limit.
    pub fn longest(&self) -> Duration {
        self.hard
    }
}

fn warmup_for(bytes: u64, [small, large, huge]: [usize; 3]) -> usize {
    if bytes >= 64 << 20 {
        huge
    } else if bytes >= 8 << 20 {
        large
    } else {
        small
    }
}

/// Durations as whole milliseconds in JSON.
mod millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis().min(u128::from(u64::MAX)) as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_size("4KiB").unwrap(), 4096);
        assert_eq!(parse_size("64KiB").unwrap(), 65_536);
        assert_eq!(parse_size("1MiB").unwrap(), 1_048_576);
        assert_eq!(parse_size("256MiB").unwrap(), 268_435_456);
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("64B").unwrap(), 64);
        assert_eq!(parse_size(" 8 mib ").unwrap(), 8 << 20);
    }

    #[test]
    fn bad_sizes_say_why() {
        let err = |s: &str| parse_size(s).unwrap_err().to_string();
        assert!(err("4KB").contains("unknown unit \"kb\""), "{}", err("4KB"));
        assert!(err("MiB").contains("is not a size"));
        assert!(err("").contains("is not a size"));
        assert!(err("-4KiB").contains("is not a size"));
        assert!(err("1.5MiB").contains("unknown unit"));
        assert!(err("4").contains("at least 8 bytes"));
        assert!(err("2GiB").contains("larger than the 1 GiB"));
        assert!(err("99999999999999999999").contains("too large"));
        assert!(err("99999999999GiB").contains("too large"));
        for e in [err("4KB"), err("x")] {
            assert!(e.starts_with("--sizes: "), "{e}");
            assert_eq!(e.lines().count(), 1);
        }
    }

    #[test]
    fn lists_are_sorted_deduplicated_and_never_empty() {
        assert_eq!(
            parse_sizes("1MiB,4KiB, 4096,256MiB").unwrap(),
            [4096, 1 << 20, 256 << 20]
        );
        assert!(parse_sizes(" , ")
            .unwrap_err()
            .to_string()
            .contains("empty"));
        assert_eq!(
            parse_pins("split,same,split").unwrap(),
            [Pin::Split, Pin::Same]
        );
        let e = parse_pins("both").unwrap_err().to_string();
        assert!(e.starts_with("--pin: unknown pin \"both\""), "{e}");
        assert_eq!(
            parse_transports("shm,memcpy").unwrap(),
            [Channel::Shm, Channel::Memcpy]
        );
        let e = parse_transports("udp").unwrap_err().to_string();
        assert!(e.starts_with("--transports: unknown transport"), "{e}");
    }

    #[test]
    fn the_budget_keeps_min_runs_then_time_then_stops_at_max_or_hard() {
        let b = Budget {
            warmup: 1,
            time: Duration::from_secs(1),
            min_runs: 10,
            max_runs: 100,
            hard: Duration::from_secs(5),
        };
        let ms = Duration::from_millis;
        // Below the minimum: go on even past the time budget...
        assert!(b.more(3, ms(2_000)));
        // ...but not past the hard limit.
        assert!(!b.more(3, ms(5_000)));
        assert!(b.capped(3));
        // Minimum reached: go on while time is left.
        assert!(b.more(10, ms(999)));
        assert!(!b.more(10, ms(1_000)));
        assert!(!b.capped(10));
        // Never beyond max_runs, however fast.
        assert!(b.more(99, ms(1)));
        assert!(!b.more(100, ms(1)));
        // A fixed budget measures exactly its count.
        let f = Budget::fixed(3);
        assert!(f.more(2, Duration::from_secs(100)));
        assert!(!f.more(3, Duration::ZERO));
        assert_eq!(f.warmup, 1);
    }

    #[test]
    fn full_and_quick_budgets_warm_up_less_for_large_payloads() {
        assert_eq!(Budget::full(4096).warmup, 5);
        assert_eq!(Budget::full(8 << 20).warmup, 3);
        assert_eq!(Budget::full(256 << 20).warmup, 2);
        assert_eq!(Budget::quick(4096).warmup, 2);
        assert!(Budget::quick(4096).time < Budget::full(4096).time);
        let third = Budget::full(4096).split(3);
        assert_eq!((third.warmup, third.min_runs, third.max_runs), (5, 4, 3334));
        assert_eq!(third.time, Duration::from_secs(4) / 3);
        assert_eq!(Budget::fixed(3).split(1), Budget::fixed(3));
        let half = Budget::full(4096).scaled(0.5);
        assert_eq!(half.time, Duration::from_secs(2));
        let json = serde_json::to_string(&Budget::quick(4096)).unwrap();
        assert!(json.contains("\"time\":300"), "{json}");
        assert_eq!(
            serde_json::from_str::<Budget>(&json).unwrap(),
            Budget::quick(4096)
        );
    }
}
