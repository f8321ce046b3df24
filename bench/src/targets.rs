//! The figures this project aims for, checked against one run's report.
//!
//! Each target compares rows measured in the same run, in steady state and in
//! one placement (the one the plot shows, see [`Report::plotted_pin`]):
//!
//! - at 8 MiB and above: `shm` at least 0.6 × the best copy (the faster of
//!   `memcpy` and `memcpy-nt` at that size), `shm-pipelined` at least
//!   0.85 × the best copy, 2 × `unix-stream` and 4 × `tcp-stream` (the
//!   streamed socket rows, which keep as many payloads outstanding as the
//!   pipelined segment; when they were not measured, the stop-and-wait
//!   `unix` and `tcp` rows, and the target says so);
//! - `shm` and `shm-pipelined` (with the run's `--copy`) no more than 3 %
//!   slower than their `[std]` rows (the standard copy), where measured;
//! - at every size, `shm` at least 1 × `python-shm`, and 1.5 × at 64 KiB;
//! - a 64-byte round trip over shm (blocking) no slower than over unix in the
//!   same placement, and with bounded spinning on different CPUs a median
//!   under 1 µs.
//!
//! Throughput ratios use sustained throughput (`gbps_sustained`: bytes × runs
//! / measured wall time); round trips use the figure (the median of the round
//! medians). Every value gets a 95 % interval from a cluster bootstrap over
//! rounds ([`crate::bootstrap`]), and the verdict reads it: **met** when the
//! whole interval is on the right side of the goal, **missed** when it is
//! wholly on the wrong side, **within noise** when it straddles the goal. A
//! target over several sizes is missed when one size misses, within noise
//! when none misses but one is within noise, and met otherwise.
//!
//! A target whose rows were not measured is reported as such, not as met.

use crate::bootstrap::{self, Estimate, Interval};
use crate::case::{Channel, Mode, Pin, Wait};
use crate::export::ratios::best_copy;
use crate::report::{CaseResult, LatencyResult, Report, Target};
use crate::units::human_bytes;

/// The verdict on a value with an interval, against a goal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// The whole interval is on the wrong side of the goal.
    Missed,
    /// The interval straddles the goal.
    WithinNoise,
    /// The whole interval is on the right side of the goal.
    Met,
}

impl Outcome {
    /// Decides from the interval `ci` whether the value is at least `goal`
    /// (`at_least`) or below it.
    pub fn decide(ci: Interval, goal: f64, at_least: bool) -> Outcome {
        let (right, wrong) = if at_least {
            (ci.lo >= goal, ci.hi < goal)
        } else {
            (ci.hi < goal, ci.lo >= goal)
        };
        if right {
            Outcome::Met
        } else if wrong {
            Outcome::Missed
        } else {
            Outcome::WithinNoise
        }
    }

    /// "met", "missed" or "within noise".
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Met => "met",
            Outcome::Missed => "missed",
            Outcome::WithinNoise => "within noise",
        }
    }
}

/// The outcome of one target, over all the sizes it covers.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    /// What is aimed for, e.g. "shm ≥ 0.6× best copy at 8 MiB and above".
    pub target: String,
    /// The worst outcome of its entries, or `None` when the rows it needs
    /// were not measured.
    pub outcome: Option<Outcome>,
    /// The figures behind the verdict, worst first.
    pub detail: String,
    /// One entry per size (or placement), as `results.json` lists them.
    pub entries: Vec<Target>,
}

impl Verdict {
    /// One line: "target met: TARGET (DETAIL)", "target missed: ...",
    /// "target within noise: ..." or "target not measured: ...".
    pub fn line(&self) -> String {
        let word = self.outcome.map_or("not measured", Outcome::as_str);
        if self.detail.is_empty() {
            format!("target {word}: {}", self.target)
        } else {
            format!("target {word}: {} ({})", self.target, self.detail)
        }
    }

    fn of(target: String, mut entries: Vec<Target>, note: Option<String>) -> Verdict {
        let outcome = entries.iter().map(|e| outcome_of(&e.verdict)).min();
        entries.sort_by(|a, b| margin(a).total_cmp(&margin(b)));
        let mut detail = entries
            .iter()
            .map(|e| {
                let what = e.name.rsplit_once(" (").map_or("", |(_, w)| w);
                let size = what.split(',').next().unwrap_or("");
                format!(
                    "{size} {} [{}–{}]",
                    fmt_value(e.value, e.is_ratio()),
                    fmt_value(e.ci95.lo, e.is_ratio()),
                    fmt_value(e.ci95.hi, e.is_ratio())
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        if !detail.is_empty() {
            detail = format!("worst first: {detail}");
            if let Some(note) = note {
                detail = format!("{detail}; {note}");
            }
        }
        Verdict {
            target,
            outcome,
            detail,
            entries,
        }
    }
}

fn fmt_value(x: f64, ratio: bool) -> String {
    if ratio {
        format!("{x:.3}×")
    } else {
        format!("{:.2} µs", x / 1e3)
    }
}

fn outcome_of(word: &str) -> Outcome {
    match word {
        "met" => Outcome::Met,
        "missed" => Outcome::Missed,
        _ => Outcome::WithinNoise,
    }
}

/// How far the value is on the right side of the goal (negative: wrong).
fn margin(t: &Target) -> f64 {
    if t.at_least {
        t.value / t.goal
    } else {
        t.goal / t.value
    }
}

/// Makes one target entry from a value and its interval.
pub fn entry(name: String, value: f64, ci95: Interval, goal: f64, at_least: bool) -> Target {
    Target {
        name,
        value,
        goal,
        at_least,
        ci95,
        verdict: Outcome::decide(ci95, goal, at_least).as_str().to_string(),
        note: None,
        unit: None,
    }
}

const LARGE: u64 = 8 << 20;

/// The rows of one placement, in steady state.
struct Rows<'a> {
    report: &'a Report,
    pin: Pin,
    seed: u64,
}

impl<'a> Rows<'a> {
    fn named(&self, name: &str, bytes: u64) -> Option<&'a CaseResult> {
        // Like for like: every row of a comparison in the placement's main
        // waiting mode (spinning across CPUs, sleeping on one), never a
        // spinning row against a sleeping one.
        let main = if self.pin == Pin::Split {
            Wait::Spin
        } else {
            Wait::Block
        };
        self.report.results.iter().find(|r| {
            r.transport.as_str() == name
                && r.mode == Mode::Steady
                && r.pin == self.pin
                && r.bytes == bytes
                && r.wait.is_none_or(|w| w == main)
        })
    }

    fn row(&self, t: Channel, bytes: u64) -> Option<&'a CaseResult> {
        self.named(t.as_str(), bytes)
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

    /// `t` over `reference` by sustained throughput at each size of `t`
    /// from `min` up, wanting at least `want(size)`.
    fn ratio(
        &self,
        target: String,
        t: Channel,
        reference: impl Fn(u64) -> Option<&'a CaseResult>,
        min: u64,
        want: impl Fn(u64) -> f64,
        note: Option<String>,
    ) -> Verdict {
        let goal_text = target
            .split(" at ")
            .next()
            .unwrap_or(&target)
            .trim_end_matches(',')
            .to_string();
        let entries = self
            .sizes(t, min)
            .into_iter()
            .filter_map(|bytes| {
                let a = self.row(t, bytes)?;
                let b = reference(bytes)?;
                let (value, ci) = bootstrap::throughput_ratio(
                    &a.clusters()?,
                    a.bytes,
                    &b.clusters()?,
                    b.bytes,
                    Estimate::Sustained,
                    self.seed,
                )?;
                let name = format!(
                    "{goal_text}, sustained ({}, pin={})",
                    human_bytes(bytes),
                    self.pin
                );
                let mut e = entry(name, value, ci, want(bytes), true);
                e.note.clone_from(&note);
                Some(e)
            })
            .collect();
        Verdict::of(target, entries, note)
    }

    /// `t` over the streamed socket row `streamed`, or over the
    /// stop-and-wait row `fallback` (saying so) when no streamed row was
    /// measured at that size.
    fn against_streamed(
        &self,
        t: Channel,
        streamed: &str,
        fallback: Channel,
        goal: f64,
    ) -> Verdict {
        let sizes = self.sizes(t, LARGE);
        let have_streamed = sizes.iter().any(|&b| self.named(streamed, b).is_some());
        let pin = self.pin;
        if have_streamed {
            self.ratio(
                format!("{t} ≥ {goal}× {streamed} at 8 MiB and above (pin={pin})"),
                t,
                |b| self.named(streamed, b),
                LARGE,
                |_| goal,
                None,
            )
        } else {
            self.ratio(
                format!("{t} ≥ {goal}× {fallback} at 8 MiB and above (pin={pin})"),
                t,
                |b| self.row(fallback, b),
                LARGE,
                |_| goal,
                Some(format!(
                    "no {streamed} row was measured: compared with the stop-and-wait \
                     {fallback} row, which favours {t}"
                )),
            )
        }
    }
}

/// The seed of a report's intervals: the one its analysis recorded.
fn seed_of(report: &Report) -> u64 {
    report
        .analysis
        .as_ref()
        .map_or(bootstrap::DEFAULT_SEED, |a| a.seed)
}

/// Checks every target against `report` (analysed or not: the intervals come
/// from the rows' rounds, with the seed of `report.analysis`).
pub fn evaluate(report: &Report) -> Vec<Verdict> {
    let pin = report.plotted_pin();
    let seed = seed_of(report);
    let rows = Rows { report, pin, seed };
    let mut out = vec![
        rows.ratio(
            format!("shm ≥ 0.6× best copy at 8 MiB and above (pin={pin})"),
            Channel::Shm,
            |b| rows.memcpy(b),
            LARGE,
            |_| 0.6,
            None,
        ),
        rows.ratio(
            format!("shm-pipelined ≥ 0.85× best copy at 8 MiB and above (pin={pin})"),
            Channel::ShmPipelined,
            |b| rows.memcpy(b),
            LARGE,
            |_| 0.85,
            None,
        ),
        rows.against_streamed(Channel::ShmPipelined, "unix-stream", Channel::Unix, 2.0),
        rows.against_streamed(Channel::ShmPipelined, "tcp-stream", Channel::Tcp, 4.0),
        rows.ratio(
            format!("shm ≥ 1× python-shm at every size, ≥ 1.5× at 64 KiB (pin={pin})"),
            Channel::Shm,
            |b| rows.row(Channel::PythonShm, b),
            0,
            |b| if b == 64 << 10 { 1.5 } else { 1.0 },
            None,
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
            None,
        ));
    }
    out.extend(latency_verdicts(&report.latency, seed));
    out.extend(frame_verdicts(report, seed));
    out
}

/// The frame rows' targets, each over every frame size measured: the shm
/// ring with 1 reader at least 0.8 × the memcpy-bound frame rate and 3 ×
/// unix; with 3 readers under `every`, 2 × unix with 3 readers; under
/// `latest`, the producer with a stopped reader at least 0.9 × its rate
/// without; paced and spinning, the publish-to-read p50 at most 2 × one
/// frame's copy. Frame rates compare the figures (medians over rounds).
pub fn frame_verdicts(report: &Report, seed: u64) -> Vec<Verdict> {
    use crate::frames::{FrameResult, Variant};
    let frames = &report.frames;
    if frames.is_empty() {
        return Vec::new();
    }
    let mut sizes: Vec<_> = frames.iter().map(FrameResult::size).collect();
    sizes.sort_unstable();
    sizes.dedup();
    let find = |t: &str, size, readers: usize, policy: &str, variant: Variant| {
        frames.iter().find(|f| {
            f.transport == t
                && f.size() == size
                && f.consumers == readers
                && f.policy == policy
                && f.variant == variant
                // Rates compare blocking readers (the sockets block); the
                // paced latency row is the spinning one.
                && (variant == Variant::Paced || f.wait == "block")
        })
    };
    let ceiling = |size| report.frame_ceilings.iter().find(|c| c.size() == size);
    let pin = frames.first().map_or(Pin::Split, |f| f.pin);
    let name =
        |what: &str, size: crate::frames::FrameSize| format!("frames: {what} ({size}, pin={pin})");
    let ratio = |a: Option<crate::bootstrap::Clusters>, b: Option<crate::bootstrap::Clusters>| {
        bootstrap::throughput_ratio(&a?, 1, &b?, 1, Estimate::Figure, seed)
    };
    let verdict =
        |target: &str,
         what: &str,
         goal: f64,
         pick: &dyn Fn(crate::frames::FrameSize) -> Option<(f64, Interval)>| {
            let entries = sizes
                .iter()
                .filter_map(|&size| {
                    let (value, ci) = pick(size)?;
                    Some(entry(name(what, size), value, ci, goal, true))
                })
                .collect();
            Verdict::of(format!("{target} (pin={pin})"), entries, None)
        };
    let mut out = vec![
        verdict(
            "frames: shm ring, 1 reader, ≥ 0.8× the memcpy-bound frame rate at every frame size",
            "shm 1 reader ≥ 0.8× memcpy-bound fps",
            0.8,
            &|size| {
                let shm = find("shm", size, 1, "every", Variant::Max)?;
                ratio(shm.clusters(), ceiling(size)?.clusters())
            },
        ),
        verdict(
            "frames: shm ring, 1 reader, ≥ 3× unix with 1 reader (every) at every frame size",
            "shm ÷ unix fps, 1 reader, every",
            3.0,
            &|size| {
                let shm = find("shm", size, 1, "every", Variant::Max)?;
                let unix = find("unix", size, 1, "every", Variant::Max)?;
                ratio(shm.clusters(), unix.clusters())
            },
        ),
        verdict(
            "frames: shm ring, 3 readers, ≥ 2× unix with 3 readers (every) at every frame size",
            "shm ÷ unix fps, 3 readers, every",
            2.0,
            &|size| {
                let shm = find("shm", size, 3, "every", Variant::Max)?;
                let unix = find("unix", size, 3, "every", Variant::Max)?;
                ratio(shm.clusters(), unix.clusters())
            },
        ),
        verdict(
            "frames: under latest, a stopped reader leaves the producer ≥ 0.9× its fps without it",
            "producer fps with ÷ without a stopped reader, latest, 3 readers",
            0.9,
            &|size| {
                let stopped = find("shm", size, 3, "latest", Variant::Stopped)?;
                let free = find("shm", size, 3, "latest", Variant::Max)?;
                ratio(stopped.producer_clusters(), free.producer_clusters())
            },
        ),
    ];
    // Latency: a time ratio that must stay below its goal.
    let entries: Vec<Target> = sizes
        .iter()
        .filter_map(|&size| {
            let paced = find("shm", size, 1, "every", Variant::Paced)?;
            let copy = ceiling(size)?.clusters()?;
            let (value, ci) = bootstrap::time_ratio(&paced.latency_clusters()?, &copy, seed)?;
            let mut e = entry(
                name("shm publish→read p50 ÷ one frame's copy, paced, spin", size),
                value,
                ci,
                2.0,
                false,
            );
            e.unit = Some("×".into());
            Some(e)
        })
        .collect();
    out.push(Verdict::of(
        format!(
            "frames: shm ring, paced and spinning, publish→read p50 ≤ 2× one frame's memcpy at \
             every frame size (pin={pin})"
        ),
        entries,
        None,
    ));
    out
}

/// Analyses `report` with `seed` ([`Report::analyse`]), evaluates the
/// targets, lists their entries in `report.targets` and adds one line per
/// target to the notes. Returns the verdicts.
pub fn analyse(report: &mut Report, seed: u64) -> Vec<Verdict> {
    report.analyse(seed);
    let verdicts = evaluate(report);
    report.targets = verdicts.iter().flat_map(|v| v.entries.clone()).collect();
    report.notes.retain(|n| !n.starts_with("target "));
    report.notes.extend(verdicts.iter().map(Verdict::line));
    verdicts
}

fn latency_verdicts(latency: &[LatencyResult], seed: u64) -> Vec<Verdict> {
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
            let target =
                format!("64-byte round trip over shm no slower than over unix (pin={pin})");
            // unix time / shm time ≥ 1: shm no slower.
            let entries = unix
                .clusters()
                .zip(shm.clusters())
                .and_then(|(u, s)| bootstrap::time_ratio(&u, &s, seed))
                .map(|(value, ci)| {
                    entry(
                        format!("round trip unix ÷ shm, blocking, 64 B (pin={pin})"),
                        value,
                        ci,
                        1.0,
                        true,
                    )
                })
                .into_iter()
                .collect();
            let mut v = Verdict::of(target, entries, None);
            v.detail = format!(
                "unix ÷ shm {}; shm {:.2} µs, unix {:.2} µs",
                v.entries.first().map_or(String::new(), |e| format!(
                    "{:.3}× [{:.3}–{:.3}]",
                    e.value, e.ci95.lo, e.ci95.hi
                )),
                shm.figure_ns() / 1e3,
                unix.figure_ns() / 1e3
            );
            out.push(v);
        }
    }
    let spin = find(Channel::Shm, Pin::Split, "spin");
    let entries = spin
        .and_then(|l| {
            let c = l.clusters()?;
            Some(entry(
                "round trip over shm, spin, 64 B (pin=split)".into(),
                c.figure_ns(),
                c.figure_interval(seed)?,
                1000.0,
                false,
            ))
        })
        .into_iter()
        .collect();
    let mut v = Verdict::of(
        "64-byte round trip over shm with bounded spinning on different CPUs under 1 µs".into(),
        entries,
        None,
    );
    if let Some(e) = v.entries.first() {
        v.detail = format!(
            "median of round medians {:.2} µs [{:.2}–{:.2}]",
            e.value / 1e3,
            e.ci95.lo / 1e3,
            e.ci95.hi / 1e3
        );
    }
    out.push(v);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_rates_compare_blocking_readers_even_beside_spinning_ones() {
        let report = crate::export::frames::tests::report();
        let ratio = |r: &Report| {
            frame_verdicts(r, 1)
                .into_iter()
                .find(|v| v.target.contains("≥ 3× unix with 1 reader"))
                .map(|v| v.detail)
                .unwrap()
        };
        let blocking = ratio(&report);
        assert!(blocking.contains("4.0"), "{blocking}");
        // A spinning ring row (as a run with iceoryx2 adds), listed first
        // and ten times as fast, changes nothing: the sockets block.
        let mut with_spin = report.clone();
        let mut spin = with_spin.frames[0].clone();
        spin.wait = "spin".into();
        spin.fps *= 10.0;
        with_spin.frames.insert(0, spin);
        assert_eq!(ratio(&with_spin), blocking);
    }
    use crate::testdata::{self, rounds_with_medians, row, MIB8};

    fn find<'a>(v: &'a [Verdict], start: &str) -> &'a Verdict {
        v.iter()
            .find(|v| v.target.starts_with(start))
            .unwrap_or_else(|| panic!("no target {start:?} in {v:#?}"))
    }

    #[test]
    fn a_verdict_reads_the_interval_against_the_goal() {
        let cases = [
            ((0.61, 0.7), 0.6, true, Outcome::Met),
            ((0.5, 0.59), 0.6, true, Outcome::Missed),
            ((0.55, 0.65), 0.6, true, Outcome::WithinNoise),
            ((800.0, 990.0), 1000.0, false, Outcome::Met),
            ((1001.0, 1200.0), 1000.0, false, Outcome::Missed),
            ((900.0, 1100.0), 1000.0, false, Outcome::WithinNoise),
        ];
        for ((lo, hi), goal, at_least, want) in cases {
            let got = Outcome::decide(Interval { lo, hi }, goal, at_least);
            assert_eq!(
                got, want,
                "[{lo}, {hi}] against {goal} (at least: {at_least})"
            );
        }
    }

    #[test]
    fn ratios_decide_on_sustained_throughput_with_intervals() {
        let mut report = testdata::report();
        // shm 6 GB/s over memcpy 10 GB/s at 8 MiB: 0.60×, exactly the goal,
        // with rounds ±5 %: within noise.
        let v = evaluate(&report);
        assert_eq!(v[0].outcome, Some(Outcome::WithinNoise), "{:?}", v[0]);
        let e = &v[0].entries[0];
        assert!((e.value - 0.6).abs() < 1e-3, "{e:?}");
        assert!(e.ci95.lo < 0.6 && e.ci95.hi > 0.6, "{e:?}");
        assert_eq!(e.verdict, "within noise");
        assert!(
            e.name.contains("sustained (8 MiB, pin=split)"),
            "{}",
            e.name
        );
        assert!(v[0]
            .line()
            .starts_with("target within noise: shm ≥ 0.6× best copy"));
        // No shm-pipelined rows in the test data.
        assert_eq!(v[1].outcome, None);
        assert!(v[1]
            .line()
            .starts_with("target not measured: shm-pipelined"));

        report.results.push(row(
            Channel::ShmPipelined,
            Mode::Steady,
            Pin::Split,
            MIB8,
            7.0,
        ));
        let v = evaluate(&report);
        // 7 / 10 = 0.7 < 0.85: missed; 7 / 3 (unix) ≥ 2: met; 7 / 2.4 (tcp) < 4: missed.
        assert_eq!(v[1].outcome, Some(Outcome::Missed));
        assert_eq!(v[2].outcome, Some(Outcome::Met));
        assert_eq!(v[3].outcome, Some(Outcome::Missed));
        // Without streamed rows, the stop-and-wait rows stand in, and the
        // target says so.
        assert!(
            v[2].target.starts_with("shm-pipelined ≥ 2× unix at"),
            "{}",
            v[2].target
        );
        assert!(
            v[2].detail.contains("no unix-stream row was measured"),
            "{}",
            v[2].detail
        );
        assert!(v[3]
            .line()
            .starts_with("target missed: shm-pipelined ≥ 4× tcp"));
    }

    #[test]
    fn sustained_throughput_decides_not_the_median() {
        let mut report = testdata::report();
        // memcpy: 8 MiB in 1 ms per transfer, 3 rounds, tight.
        let memcpy = report
            .results
            .iter_mut()
            .find(|r| r.transport == Channel::Memcpy && r.bytes == MIB8)
            .unwrap();
        memcpy.rounds = rounds_with_medians(&[(1.0, 9), (1.0, 9), (1.0, 9)], 1e6);
        // shm: a median of 1.5 ms (0.67× memcpy) but rounds whose wall time
        // is twice the sum of their samples (waiting between transfers):
        // sustained 0.33×, missed.
        let shm = report
            .results
            .iter_mut()
            .find(|r| r.transport == Channel::Shm && r.mode == Mode::Steady && r.bytes == MIB8)
            .unwrap();
        shm.rounds = rounds_with_medians(&[(1.5, 9), (1.5, 9), (1.5, 9)], 1e6);
        for r in &mut shm.rounds {
            r.wall_ns *= 2;
        }
        let v = evaluate(&report);
        let t = find(&v, "shm ≥ 0.6× best copy");
        assert_eq!(t.outcome, Some(Outcome::Missed), "{t:?}");
        assert!((t.entries[0].value - 1.0 / 3.0).abs() < 1e-3, "{t:?}");
        // Without the waiting, 0.67× and met.
        let shm = report
            .results
            .iter_mut()
            .find(|r| r.transport == Channel::Shm && r.mode == Mode::Steady && r.bytes == MIB8)
            .unwrap();
        for r in &mut shm.rounds {
            r.wall_ns /= 2;
        }
        assert_eq!(
            find(&evaluate(&report), "shm ≥ 0.6× best copy").outcome,
            Some(Outcome::Met)
        );
    }

    #[test]
    fn pipelined_shm_is_compared_with_the_streamed_socket_rows_when_present() {
        let mut report = testdata::report();
        report.results.push(row(
            Channel::ShmPipelined,
            Mode::Steady,
            Pin::Split,
            MIB8,
            7.0,
        ));
        // A streamed unix row (its name, as the measurement side writes it),
        // at 5 GB/s: 7 / 5 = 1.4 < 2, missed, while 7 / 3 (stop-and-wait)
        // would be met.
        let mut json =
            serde_json::to_value(row(Channel::Unix, Mode::Steady, Pin::Split, MIB8, 5.0)).unwrap();
        json["transport"] = "unix-stream".into();
        match serde_json::from_value::<CaseResult>(json) {
            Ok(streamed) => {
                report.results.push(streamed);
                let v = evaluate(&report);
                let t = find(&v, "shm-pipelined ≥ 2× unix-stream");
                assert_eq!(t.outcome, Some(Outcome::Missed), "{t:?}");
                assert!(!t.detail.contains("stop-and-wait"));
            }
            // This build has no unix-stream row; the fallback is tested above.
            Err(_) => {
                let v = evaluate(&report);
                assert!(find(&v, "shm-pipelined ≥ 2× unix at")
                    .detail
                    .contains("stop-and-wait"));
            }
        }
    }

    #[test]
    fn the_reference_is_the_best_copy_and_std_rows_bound_the_copy() {
        let mut report = testdata::report();
        // memcpy-nt at 12 GB/s beats memcpy's 10: shm's 6 is now 0.5×, missed.
        report
            .results
            .push(row(Channel::MemcpyNt, Mode::Steady, Pin::None, MIB8, 12.0));
        let v = evaluate(&report);
        assert_eq!(v[0].outcome, Some(Outcome::Missed), "{:?}", v[0]);
        assert!(v[0].detail.contains("8 MiB 0.500×"), "{}", v[0].detail);

        let std_target = |v: &[Verdict]| find(v, "shm ≥ 0.97× shm[std]").clone();
        assert_eq!(std_target(&v).outcome, None);
        // shm 6.0 against shm[std] 5.0: 1.2×, met; against 6.1: within
        // noise; against 8.0: 0.75×, missed.
        report
            .results
            .push(row(Channel::ShmStd, Mode::Steady, Pin::Split, MIB8, 5.0));
        assert_eq!(std_target(&evaluate(&report)).outcome, Some(Outcome::Met));
        let set = |report: &mut Report, gbps: f64| {
            *report.results.last_mut().unwrap() =
                row(Channel::ShmStd, Mode::Steady, Pin::Split, MIB8, gbps);
        };
        set(&mut report, 6.1);
        assert_eq!(
            std_target(&evaluate(&report)).outcome,
            Some(Outcome::WithinNoise)
        );
        set(&mut report, 8.0);
        let t = std_target(&evaluate(&report));
        assert_eq!(t.outcome, Some(Outcome::Missed), "{t:?}");
        assert!(t.detail.contains("8 MiB 0.750×"), "{}", t.detail);
    }

    #[test]
    fn latency_targets_compare_within_a_placement() {
        let report = testdata::report();
        let v = evaluate(&report);
        let spin = v.last().unwrap();
        // The test data's spin round trip has a median of ~250 ns.
        assert_eq!(spin.outcome, Some(Outcome::Met), "{spin:?}");
        assert!(spin.entries[0].ci95.hi < 1000.0);
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
        let vs = find(&v, "64-byte round trip over shm no slower");
        // Unix's median is ~9.5 µs, shm's 20 µs: missed.
        assert_eq!(vs.outcome, Some(Outcome::Missed), "{vs:?}");
    }

    #[test]
    fn analyse_lists_every_entry_in_the_report() {
        let report = testdata::analysed();
        assert!(report.analysis.is_some());
        assert!(!report.targets.is_empty());
        for t in &report.targets {
            assert!(
                ["met", "missed", "within noise"].contains(&t.verdict.as_str()),
                "{t:?}"
            );
            assert!(t.ci95.lo <= t.ci95.hi, "{t:?}");
        }
        let lines = report
            .notes
            .iter()
            .filter(|n| n.starts_with("target "))
            .count();
        let mut again = report.clone();
        analyse(&mut again, 1);
        assert_eq!(
            again
                .notes
                .iter()
                .filter(|n| n.starts_with("target "))
                .count(),
            lines
        );
        assert_eq!(again, report);
    }
}
