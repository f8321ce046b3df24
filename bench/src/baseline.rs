//! `p1p2-bench compare A B`: every row two runs share, B over A, with an interval.
//!
//! The check after a change: for every throughput row present in both
//! `results.json` files (matched by transport, mode, pin, bytes, and `wait`
//! and `copy` when a file has them), the throughput ratio B / A of the rows'
//! figures (the median of the round medians), with a 95 % interval from a
//! cluster bootstrap that resamples both files' rounds independently
//! ([`crate::bootstrap`]); and for every latency row present in both
//! (transport, pin, bytes, variant, and `wait`), the time ratio B / A.
//!
//! The word reads the interval: **faster** when it lies wholly on the
//! faster side of 1 (above 1 for throughput, below 1 for time), **slower**
//! when wholly on the other, **same within noise** when it holds 1.

use serde_json::Value;

use crate::bootstrap::{self, Estimate, Interval};
use crate::export::json::from_json;
use crate::report::Report;
use crate::units::human_bytes;

/// One row both runs have, B against A.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    /// Which row, e.g. "shm steady pin=split 8 MiB".
    pub row: String,
    /// Whether it is a round-trip row (the ratio is then of times).
    pub latency: bool,
    /// B / A: of throughputs, or of round-trip times for latency rows.
    pub ratio: f64,
    /// 95 % interval of the ratio.
    pub ci95: Interval,
    /// "faster", "slower" or "same within noise".
    pub word: &'static str,
}

impl Change {
    /// One line, e.g. "shm steady pin=split 8 MiB: B/A 1.120× GB/s
    /// [1.050–1.200] faster".
    pub fn line(&self) -> String {
        let what = if self.latency { "time" } else { "GB/s" };
        format!(
            "{}: B/A {:.3}× {what} [{:.3}–{:.3}] {}",
            self.row, self.ratio, self.ci95.lo, self.ci95.hi, self.word
        )
    }
}

fn word(ci: Interval, higher_is_faster: bool) -> &'static str {
    let (up, down) = (ci.lo > 1.0, ci.hi < 1.0);
    match (up, down, higher_is_faster) {
        (true, _, true) | (_, true, false) => "faster",
        (true, _, false) | (_, true, true) => "slower",
        _ => "same within noise",
    }
}

/// A row's identity: the values of `keys`, missing keys as null.
fn key(row: &Value, keys: &[&str]) -> Vec<Value> {
    keys.iter()
        .map(|k| row.get(*k).cloned().unwrap_or(Value::Null))
        .collect()
}

const RESULT_KEY: [&str; 6] = ["transport", "mode", "pin", "bytes", "wait", "copy"];
const LATENCY_KEY: [&str; 5] = ["transport", "pin", "bytes", "variant", "wait"];

fn label(row: &Value, keys: &[&str]) -> String {
    keys.iter()
        .filter_map(|k| {
            let v = row.get(*k)?;
            Some(match (*k, v) {
                ("bytes", Value::Number(n)) => human_bytes(n.as_u64()?),
                ("pin", Value::String(s)) => format!("pin={s}"),
                ("wait", Value::String(s)) => format!("wait={s}"),
                ("copy", Value::String(s)) => format!("copy={s}"),
                (_, Value::String(s)) => s.clone(),
                _ => return None,
            })
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Compares run B with run A, from the texts of their `results.json`.
///
/// # Errors
/// A one-line reason when either text is not a `results.json`.
pub fn compare(a: &str, b: &str, seed: u64) -> Result<Vec<Change>, String> {
    let parse = |text: &str, which: &str| -> Result<(Report, Value), String> {
        let report = from_json(text).map_err(|e| format!("{which}: not a results.json: {e}"))?;
        let value: Value = serde_json::from_str(text).map_err(|e| format!("{which}: {e}"))?;
        Ok((report, value))
    };
    let (ra, va) = parse(a, "A")?;
    let (rb, vb) = parse(b, "B")?;
    let rows = |v: &Value, field: &str| -> Vec<Value> {
        v.get(field)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let mut out = Vec::new();
    let (a_rows, b_rows) = (rows(&va, "results"), rows(&vb, "results"));
    for (i, row_a) in a_rows.iter().enumerate() {
        let k = key(row_a, &RESULT_KEY);
        let Some(j) = b_rows.iter().position(|r| key(r, &RESULT_KEY) == k) else {
            continue;
        };
        let (Some(x), Some(y)) = (ra.results.get(i), rb.results.get(j)) else {
            continue;
        };
        let (Some(cx), Some(cy)) = (x.clusters(), y.clusters()) else {
            continue;
        };
        if let Some((ratio, ci)) =
            bootstrap::throughput_ratio(&cy, y.bytes, &cx, x.bytes, Estimate::Figure, seed)
        {
            out.push(Change {
                row: label(row_a, &RESULT_KEY),
                latency: false,
                ratio,
                ci95: ci,
                word: word(ci, true),
            });
        }
    }
    let (a_rows, b_rows) = (rows(&va, "latency"), rows(&vb, "latency"));
    for (i, row_a) in a_rows.iter().enumerate() {
        let k = key(row_a, &LATENCY_KEY);
        let Some(j) = b_rows.iter().position(|r| key(r, &LATENCY_KEY) == k) else {
            continue;
        };
        let (Some(x), Some(y)) = (ra.latency.get(i), rb.latency.get(j)) else {
            continue;
        };
        let (Some(cx), Some(cy)) = (x.clusters(), y.clusters()) else {
            continue;
        };
        if let Some((ratio, ci)) = bootstrap::time_ratio(&cy, &cx, seed) {
            out.push(Change {
                row: format!("round trip {}", label(row_a, &LATENCY_KEY)),
                latency: true,
                ratio,
                ci95: ci,
                word: word(ci, false),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::case::{Channel, Mode, Pin};
    use crate::export::json::to_json;
    use crate::report::LatencyResult;
    use crate::testdata::{self, rounds_with_medians, KIB4, MIB8};

    fn set_rounds(report: &mut Report, t: Channel, bytes: u64, medians: &[f64]) {
        let r = report
            .results
            .iter_mut()
            .find(|r| r.transport == t && r.bytes == bytes && r.mode == Mode::Steady)
            .unwrap();
        let spec: Vec<(f64, usize)> = medians.iter().map(|&m| (m, 21)).collect();
        r.rounds = rounds_with_medians(&spec, 1e3);
        r.samples_ns = r.rounds.iter().flat_map(|r| r.samples_ns.clone()).collect();
    }

    #[test]
    fn compare_gives_known_ratios_with_intervals_and_words() {
        let mut a = testdata::report();
        let mut b = testdata::report();
        // shm 8 MiB: B takes half the time (2× the throughput): faster.
        set_rounds(&mut a, Channel::Shm, MIB8, &[100.0, 102.0, 98.0, 101.0]);
        set_rounds(&mut b, Channel::Shm, MIB8, &[50.0, 51.0, 49.0, 50.5]);
        // unix 8 MiB: B takes 1.25× the time (0.8× the throughput): slower.
        set_rounds(&mut a, Channel::Unix, MIB8, &[100.0, 101.0, 99.0]);
        set_rounds(&mut b, Channel::Unix, MIB8, &[125.0, 126.0, 124.0]);
        // memcpy 4 KiB: rounds that overlap: same within noise.
        set_rounds(&mut a, Channel::Memcpy, KIB4, &[10.0, 12.0, 11.0]);
        set_rounds(&mut b, Channel::Memcpy, KIB4, &[11.5, 10.5, 11.0]);
        // A row only B has is left out.
        b.results.push(testdata::row(
            Channel::Tcp,
            Mode::Steady,
            Pin::Split,
            KIB4,
            1.0,
        ));
        // Latency: B's shm spin round trip takes 2× the time: slower.
        b.latency[1] = LatencyResult::from_samples(
            Channel::Shm,
            Pin::Split,
            64,
            "spin",
            (1..=1000).map(|x| 400 + 2 * (x % 100)).collect(),
        )
        .unwrap();
        let changes = compare(&to_json(&a).unwrap(), &to_json(&b).unwrap(), 5).unwrap();
        let get = |row: &str| {
            changes
                .iter()
                .find(|c| c.row == row)
                .unwrap_or_else(|| panic!("no {row} in {changes:#?}"))
        };
        let shm = get("shm steady pin=split 8 MiB");
        assert!((shm.ratio - 2.0).abs() < 1e-9, "{shm:?}");
        assert!(shm.ci95.contains(2.0) && shm.ci95.lo > 1.9, "{shm:?}");
        assert_eq!(shm.word, "faster");
        let unix = get("unix steady pin=split 8 MiB");
        assert!(
            (unix.ratio - 0.8).abs() < 1e-9 && unix.ci95.contains(0.8),
            "{unix:?}"
        );
        assert_eq!(unix.word, "slower");
        let memcpy = get("memcpy steady pin=none 4 KiB");
        assert_eq!(memcpy.word, "same within noise", "{memcpy:?}");
        assert!(!changes
            .iter()
            .any(|c| c.row.starts_with("tcp steady pin=split 4 KiB")));
        let spin = get("round trip shm pin=split 64 B spin");
        assert!(spin.latency && (spin.ratio - 2.0).abs() < 0.05, "{spin:?}");
        assert_eq!(spin.word, "slower");
        assert!(spin.line().contains("B/A 2.0"), "{}", spin.line());
        // Every row of a file against itself: ratio 1, same within noise.
        let same = compare(&to_json(&a).unwrap(), &to_json(&a).unwrap(), 5).unwrap();
        assert_eq!(same.len(), a.results.len() + a.latency.len());
        assert!(same
            .iter()
            .all(|c| c.ratio == 1.0 && c.word == "same within noise"));
    }

    #[test]
    fn rows_differing_in_wait_or_copy_are_not_matched() {
        let a = testdata::report();
        let mut v: Value = serde_json::from_str(&to_json(&a).unwrap()).unwrap();
        for row in v["results"].as_array_mut().unwrap() {
            row["wait"] = "spin".into();
        }
        let b = serde_json::to_string(&v).unwrap();
        let changes = compare(&to_json(&a).unwrap(), &b, 1).unwrap();
        assert_eq!(changes.len(), a.latency.len(), "{changes:#?}");
        let err = compare("{}", &b, 1).unwrap_err();
        assert!(err.starts_with("A: not a results.json"), "{err}");
    }
}
