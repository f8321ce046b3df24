//! The figures this project aims for, checked against one run's report.
//!
//! Each target compares rows measured in the same run, in steady state and in
//! one placement (the one the plot shows, see [`Report::plotted_pin`]):
//!
//! - at 8 MiB and above: `shm` at least 0.6 × the best copy (the faster of
//!   `memcpy` and `memcpy-nt` at that size), `shm-pipelined` at least
//!   0.85 × the best copy, 2 × `unix` and 4 × `tcp`;
//! - `shm` and `shm-pipelined` (with the run's `--copy`) no more than 3 %
//!   slower than their `[std]` rows (the standard copy), where measured;
//! - at every size, `shm` at least 1 × `python-shm`, and 1.5 × at 64 KiB;
//! - a 64-byte round trip over shm (blocking) no slower than over unix in the
//!   same placement, and with bounded spinning on different CPUs a median
//!   under 1 µs.
//!
//! A target whose rows were not measured is reported as such, not as met.

use crate::case::{Channel, Mode, Pin};
use crate::export::ratios::best_copy;
use crate::report::{CaseResult, LatencyResult, Report};
use crate::units::human_bytes;

/// The outcome of one target.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    /// What is aimed for, e.g. "shm ≥ 0.6× best copy at 8 MiB and above".
    pub target: String,
    /// Met, missed, or `None` when the rows it needs were not measured.
    pub met: Option<bool>,
    /// The figures behind the verdict, worst first.
    pub detail: String,
}

impl Verdict {
    /// One line: "met: TARGET (DETAIL)", "missed: ..." or "not measured: ...".
    pub fn line(&self) -> String {
        let word = match self.met {
            Some(true) => "met",
            Some(false) => "missed",
            None => "not measured",
        };
        if self.detail.is_empty() {
            format!("target {word}: {}", self.target)
        } else {
            format!("target {word}: {} ({})", self.target, self.detail)
        }
    }
}

const LARGE: u64 = 8 << 20;

/// The rows of one placement, in steady state.
struct Rows<'a> {
    report: &'a Report,
    pin: Pin,
}

impl<'a> Rows<'a> {
    fn row(&self, t: Channel, bytes: u64) -> Option<&'a CaseResult> {
        self.report.results.iter().find(|r| {
            r.transport == t && r.mode == Mode::Steady && r.pin == self.pin && r.bytes == bytes
        })
    }

    /// The best copy of that size (memcpy or memcpy-nt, whichever is
    /// faster), of this placement when measured, else any.
    fn memcpy(&self, bytes: u64) -> Option<&'a CaseResult> {
        best_copy(&self.report.results, bytes, self.pin, Mode::Steady)
    }

    fn sizes(&self, t: Channel, min: u64) -> Vec<u64> {
        let mut v: Vec<u64> = self
            .report
            .results
            .iter()
            .filter(|r| {
                r.transport == t && r.mode == Mode::Steady && r.pin == self.pin && r.bytes >= min
            })
            .map(|r| r.bytes)
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// `t` over `reference` at each size of `t` from `min` up, wanting
    /// `want(size)`.
    fn ratio(
        &self,
        target: String,
        t: Channel,
        reference: impl Fn(u64) -> Option<&'a CaseResult>,
        min: u64,
        want: impl Fn(u64) -> f64,
    ) -> Verdict {
        let pairs = self
            .sizes(t, min)
            .into_iter()
            .filter_map(|bytes| {
                let a = self.row(t, bytes)?;
                let b = reference(bytes).filter(|b| b.gbps > 0.0)?;
                Some((bytes, a.gbps / b.gbps, want(bytes)))
            })
            .collect();
        ratio_verdict(target, pairs)
    }
}

/// Checks every target against `report`.
pub fn evaluate(report: &Report) -> Vec<Verdict> {
    let pin = report.plotted_pin();
    let rows = Rows { report, pin };
    let mut out = vec![
        rows.ratio(
            format!("shm ≥ 0.6× best copy at 8 MiB and above (pin={pin})"),
            Channel::Shm,
            |b| rows.memcpy(b),
            LARGE,
            |_| 0.6,
        ),
        rows.ratio(
            format!("shm-pipelined ≥ 0.85× best copy at 8 MiB and above (pin={pin})"),
            Channel::ShmPipelined,
            |b| rows.memcpy(b),
            LARGE,
            |_| 0.85,
        ),
        rows.ratio(
            format!("shm-pipelined ≥ 2× unix at 8 MiB and above (pin={pin})"),
            Channel::ShmPipelined,
            |b| rows.row(Channel::Unix, b),
            LARGE,
            |_| 2.0,
        ),
        rows.ratio(
            format!("shm-pipelined ≥ 4× tcp at 8 MiB and above (pin={pin})"),
            Channel::ShmPipelined,
            |b| rows.row(Channel::Tcp, b),
            LARGE,
            |_| 4.0,
        ),
        rows.ratio(
            format!("shm ≥ 1× python-shm at every size, ≥ 1.5× at 64 KiB (pin={pin})"),
            Channel::Shm,
            |b| rows.row(Channel::PythonShm, b),
            0,
            |b| if b == 64 << 10 { 1.5 } else { 1.0 },
        ),
    ];
    let copy = report
        .config
        .as_ref()
        .and_then(|c| c.copy)
        .map_or(String::new(), |c| format!(" --copy {c}"));
    for (t, std) in [
        (Channel::Shm, Channel::ShmStd),
        (Channel::ShmPipelined, Channel::ShmPipelinedStd),
    ] {
        out.push(rows.ratio(
            format!("{t}{copy} ≥ 0.97× {std}, at every size both have (pin={pin})"),
            t,
            |b| rows.row(std, b),
            0,
            |_| 0.97,
        ));
    }
    out.extend(latency_verdicts(&report.latency));
    out
}

/// A verdict from (size, ratio, wanted ratio) triples; worst margin first.
fn ratio_verdict(target: String, mut pairs: Vec<(u64, f64, f64)>) -> Verdict {
    if pairs.is_empty() {
        return Verdict {
            target,
            met: None,
            detail: String::new(),
        };
    }
    let met = pairs.iter().all(|&(_, ratio, want)| ratio >= want);
    pairs.sort_by(|a, b| (a.1 / a.2).total_cmp(&(b.1 / b.2)));
    let detail = pairs
        .iter()
        .map(|&(bytes, ratio, _)| format!("{} {ratio:.3}×", human_bytes(bytes)))
        .collect::<Vec<_>>()
        .join(", ");
    Verdict {
        target,
        met: Some(met),
        detail: format!("worst first: {detail}"),
    }
}

fn latency_verdicts(latency: &[LatencyResult]) -> Vec<Verdict> {
    let find = |t: Channel, pin: Pin, variant: &str| {
        latency
            .iter()
            .find(|l| l.transport == t && l.pin == pin && l.variant == variant && l.bytes == 64)
    };
    let mut pins: Vec<Pin> = latency.iter().map(|l| l.pin).collect();
    pins.sort_unstable();
    pins.dedup();
    let mut out = Vec::new();
    for pin in pins {
        if let (Some(shm), Some(unix)) = (
            find(Channel::Shm, pin, "blocking"),
            find(Channel::Unix, pin, "blocking"),
        ) {
            out.push(Verdict {
                target: format!("64-byte round trip over shm no slower than over unix (pin={pin})"),
                met: Some(shm.median_ns <= unix.median_ns),
                detail: format!(
                    "shm {:.2} µs, unix {:.2} µs",
                    shm.median_ns / 1e3,
                    unix.median_ns / 1e3
                ),
            });
        }
    }
    let spin = find(Channel::Shm, Pin::Split, "spin");
    out.push(Verdict {
        target: "64-byte round trip over shm with bounded spinning on different CPUs under 1 µs"
            .into(),
        met: spin.map(|l| l.median_ns < 1000.0),
        detail: spin.map_or(String::new(), |l| {
            format!("median {:.2} µs", l.median_ns / 1e3)
        }),
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::{self, row, MIB8};

    #[test]
    fn ratios_decide_and_missing_rows_are_not_measured() {
        let mut report = testdata::report();
        // shm 6 GB/s over memcpy 10 GB/s at 8 MiB: 0.60×, met.
        let v = evaluate(&report);
        assert_eq!(v[0].met, Some(true), "{:?}", v[0]);
        assert!(v[0].detail.contains("8 MiB 0.600×"), "{}", v[0].detail);
        // No shm-pipelined rows in the test data.
        assert_eq!(v[1].met, None);
        assert!(v[1]
            .line()
            .starts_with("target not measured: shm-pipelined"));

        report.results.push(row(
            Channel::ShmPipelined,
            Mode::Steady,
            Pin::Split,
            MIB8,
            8.0,
        ));
        let v = evaluate(&report);
        // 8 / 10 = 0.8 < 0.85: missed; 8 / 3 (unix) ≥ 2: met; 8 / 2.4 (tcp) < 4: missed.
        assert_eq!(v[1].met, Some(false));
        assert_eq!(v[2].met, Some(true));
        assert_eq!(v[3].met, Some(false));
        assert!(v[3]
            .line()
            .starts_with("target missed: shm-pipelined ≥ 4× tcp"));
    }

    #[test]
    fn the_reference_is_the_best_copy_and_std_rows_bound_the_copy() {
        let mut report = testdata::report();
        // memcpy-nt at 12 GB/s beats memcpy's 10: shm's 6 is now 0.5×, missed.
        report
            .results
            .push(row(Channel::MemcpyNt, Mode::Steady, Pin::None, MIB8, 12.0));
        let v = evaluate(&report);
        assert_eq!(v[0].met, Some(false), "{:?}", v[0]);
        assert!(v[0].detail.contains("8 MiB 0.500×"), "{}", v[0].detail);
        assert!(v[0].target.starts_with("shm ≥ 0.6× best copy"));

        let std_target = |v: &[Verdict]| {
            v.iter()
                .find(|v| v.target.starts_with("shm ≥ 0.97× shm[std]"))
                .cloned()
                .unwrap()
        };
        assert_eq!(std_target(&v).met, None);
        // shm 6.0 against shm[std] 6.1: 0.984×, met; against 6.4: 0.9375×, missed.
        report
            .results
            .push(row(Channel::ShmStd, Mode::Steady, Pin::Split, MIB8, 6.1));
        assert_eq!(std_target(&evaluate(&report)).met, Some(true));
        report.results.last_mut().unwrap().gbps = 6.4;
        let t = std_target(&evaluate(&report));
        assert_eq!(t.met, Some(false), "{t:?}");
        assert!(t.detail.contains("8 MiB 0.938×"), "{}", t.detail);
    }

    #[test]
    fn latency_targets_compare_within_a_placement() {
        let report = testdata::report();
        let v = evaluate(&report);
        let spin = v.last().unwrap();
        // The test data's spin round trip has a median of ~250 ns.
        assert_eq!(spin.met, Some(true), "{spin:?}");
        // It has no blocking shm row, so no shm-versus-unix verdict.
        assert!(!v
            .iter()
            .any(|v| v.target.contains("no slower than over unix")));

        let mut report = report;
        report.latency.push(
            LatencyResult::from_samples(Channel::Shm, Pin::Split, 64, "blocking", vec![20_000; 5])
                .unwrap(),
        );
        let v = evaluate(&report);
        let vs = v
            .iter()
            .find(|v| v.target.contains("no slower than over unix"))
            .unwrap();
        // Unix's median is ~9.5 µs, shm's 20 µs: missed.
        assert_eq!(vs.met, Some(false), "{vs:?}");
    }
}
