//! What one benchmark run produced, as written to `results.json`.
//!
//! What one benchmark run produced, as written to `results.json`: the
//! throughput and latency of every case with its raw samples, the machine,
//! the configuration and the notes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::bootstrap::{Clusters, Interval};
use crate::case::{Case, Channel, Mode, Pin, Wait};
use crate::frames::{FrameCeiling, FrameResult};
use crate::machine::{HostState, Machine};
use crate::stats;
use common::copy::CopyMode;

/// How the benchmark was asked to run (informative; nothing reads it back).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Payload sizes in bytes.
    pub sizes: Vec<u64>,
    /// Measured transfers per case.
    pub runs: usize,
    /// Unmeasured warm-up transfers per case.
    pub warmup: usize,
    /// Whether the quick (smaller, shorter) set was run.
    pub quick: bool,
    /// The pinnings measured.
    pub pins: Vec<Pin>,
    /// Measured round trips per latency case.
    pub round_trips: usize,
    /// With a time budget, the most measured transfers per case (`runs` is
    /// then the least); absent when every case made exactly `runs`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_runs: Option<usize>,
    /// With a time budget, how long each case kept measuring after `runs`,
    /// in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget_ms: Option<u64>,
    /// The `--copy` of the shm and shm-pipelined rows, when recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub copy: Option<CopyMode>,
    /// Rounds per throughput case (`--rounds`; 1 with `--runs`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rounds: Option<usize>,
    /// Rounds per latency case.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_rounds: Option<usize>,
    /// Slots of the pipelined segment, and payloads outstanding in the
    /// streamed socket rows (`--slots`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slots: Option<u32>,
    /// The spin budget of `wait=spin`, in microseconds (`--spin-us`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spin_us: Option<u64>,
    /// The factor on every time budget (`--budget-scale`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget_scale: Option<f64>,
    /// The waiting modes measured (`--wait`; both by default).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub wait: Vec<Wait>,
    /// The sizes at which every waiting mode ran.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub wait_sizes: Vec<u64>,
    /// The seed of the shuffled case order (`--seed`; from the clock when
    /// not given).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// How the cases took turns.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order: Option<String>,
    /// What happens to the samples of a pipeline's drain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drained: Option<String>,
    /// The full command line, program first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub command_line: Vec<String>,
    /// The state of the machine over the run: steal time, THP, git tree.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<HostState>,
}

/// Throughput of one case: every raw sample and the statistics made from them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CaseResult {
    /// How the payload travels.
    pub transport: Channel,
    /// Reused or fresh resources.
    pub mode: Mode,
    /// Where the processes ran.
    pub pin: Pin,
    /// Payload size in bytes.
    pub bytes: u64,
    /// How the processes waited for each other (`--wait`): "block" or
    /// "spin"; absent for rows whose waiting the benchmark does not set
    /// (memcpy, memfd, Python).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<Wait>,
    /// Socket buffer sizes the kernel granted, read back with `getsockopt`
    /// (socket rows): the sender's `SO_SNDBUF` and the receiver's
    /// `SO_RCVBUF`, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket_buffers: Option<SocketBuffers>,
    /// Measured transfers (the number of samples).
    pub runs: usize,
    /// Unmeasured warm-up transfers before them.
    pub warmup: usize,
    /// Median time per transfer, over all samples of all rounds (the
    /// per-transfer median; the row's figure is [`CaseResult::round_median_ns`]).
    pub median_ns: f64,
    /// 10th percentile (all samples).
    pub p10_ns: f64,
    /// 90th percentile (all samples).
    pub p90_ns: f64,
    /// Arithmetic mean.
    pub mean_ns: f64,
    /// Sample standard deviation; `null` with fewer than two runs.
    pub stddev_ns: Option<f64>,
    /// Fastest transfer.
    pub min_ns: u64,
    /// Slowest transfer.
    pub max_ns: u64,
    /// The row's figure, in GB/s: bytes / [`CaseResult::round_median_ns`]
    /// (the median of the round medians) / 10^9, once [`CaseResult::analyse`]
    /// has run; bytes / [`CaseResult::median_ns`] before (0 when the time
    /// is 0).
    pub gbps: f64,
    /// Payload copies per transfer, from the copy ledger.
    pub copies: f64,
    /// read/write-family system calls per transfer.
    pub syscalls: f64,
    /// User CPU time of both processes over the measured runs, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_user_ms: Option<f64>,
    /// System CPU time of both processes over the measured runs, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_sys_ms: Option<f64>,
    /// The copy the sender made into shared memory, "std" or "nt" (shm rows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy: Option<String>,
    /// Anything a reader should know about this case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Every measured transfer time, in the order measured.
    pub samples_ns: Vec<u64>,
    /// The rounds this row merges, in the order they ran, each with its own
    /// samples, wall time and CPU time: the unit of every statistic that
    /// must give each round equal weight.
    #[serde(default)]
    pub rounds: Vec<Round>,
    /// The row's figure: the median of its round medians, so that every
    /// round weighs alike (derived by [`CaseResult::analyse`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub round_median_ns: Option<f64>,
    /// 95 % interval of `gbps`: a cluster bootstrap over the rounds (see
    /// [`crate::bootstrap`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci95: Option<Interval>,
    /// Sustained throughput, GB/s: bytes × runs / the rounds' total measured
    /// wall time (the sum of the samples when wall times were not recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gbps_sustained: Option<f64>,
    /// 95 % interval of `gbps_sustained` (cluster bootstrap over rounds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci95_sustained: Option<Interval>,
    /// 99th percentile time per transfer (all samples).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_ns: Option<f64>,
    /// CPU seconds of both processes per GB (10^9 bytes) moved, from the
    /// rounds' CPU times (or the row's user + system time), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_s_per_gb: Option<f64>,
    /// Each round's statistics, in the order of `rounds` (derived).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub round_stats: Vec<RoundStats>,
}

/// The statistics of one round (derived from a [`Round`]).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RoundStats {
    /// The round's [`Round::index`].
    pub index: usize,
    /// Its measured transfers (or round trips).
    pub runs: usize,
    /// Median time.
    pub median_ns: f64,
    /// 10th percentile.
    pub p10_ns: f64,
    /// 90th percentile.
    pub p90_ns: f64,
    /// bytes / median (throughput rows; 0 for latency rows).
    pub gbps: f64,
}

impl RoundStats {
    fn of(round: &Round, bytes: u64, throughput: bool) -> Option<RoundStats> {
        let s = stats::Summary::of(&round.samples_ns)?;
        Some(RoundStats {
            index: round.index,
            runs: s.n,
            median_ns: s.median,
            p10_ns: s.p10,
            p90_ns: s.p90,
            gbps: if throughput {
                stats::gbps(bytes, s.median)
            } else {
                0.0
            },
        })
    }
}

/// The rounds of a row as the bootstrap takes them.
fn clusters(rounds: &[Round], samples: &[u64]) -> Option<Clusters> {
    Clusters::of(
        rounds.iter().map(|r| (r.samples_ns.as_slice(), r.wall_ns)),
        samples,
    )
}

/// What a row's `analyse` derives the same way for throughput and latency:
/// each round's statistics into `round_stats` (`throughput` as in
/// [`RoundStats`]), and the rounds for the bootstrap with the row's figure,
/// the median of the round medians. `None` (and `round_stats` untouched)
/// without samples.
fn by_rounds(
    rounds: &[Round],
    samples: &[u64],
    bytes: u64,
    throughput: bool,
    round_stats: &mut Vec<RoundStats>,
) -> Option<(Clusters, f64)> {
    let c = clusters(rounds, samples)?;
    *round_stats = rounds
        .iter()
        .filter_map(|r| RoundStats::of(r, bytes, throughput))
        .collect();
    let figure = c.figure_ns();
    Some((c, figure))
}

/// The socket buffer sizes the kernel granted to a socket row's peers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SocketBuffers {
    /// The sender's `SO_SNDBUF`.
    pub sndbuf: u64,
    /// The receiver's `SO_RCVBUF`.
    pub rcvbuf: u64,
}

/// One round of a case: a run of the two processes, taking its turn with the
/// other cases of its size.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Round {
    /// Its place in the run's order of rounds (0 first), so that a reader
    /// can tell where a round starts and ends, and what ran before it.
    pub index: usize,
    /// Every measured transfer (or round trip) of the round, in order.
    pub samples_ns: Vec<u64>,
    /// Wall time from the start of the round's first measured transfer to
    /// the end of its last, as the sender measured it.
    pub wall_ns: u64,
    /// User plus system CPU time of both processes over the round, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_ms: Option<f64>,
}

impl CaseResult {
    /// Computes the statistics of `samples_ns` (one time per measured
    /// transfer, in nanoseconds) for `case`. `copies` and `syscalls` are per
    /// transfer; values that are not finite or are negative are recorded as 0.
    ///
    /// Returns `None` when there are no samples: there is nothing to report.
    pub fn from_samples(
        case: Case,
        samples_ns: Vec<u64>,
        warmup: usize,
        copies: f64,
        syscalls: f64,
    ) -> Option<CaseResult> {
        let s = stats::Summary::of(&samples_ns)?;
        Some(CaseResult {
            transport: case.transport,
            mode: case.mode,
            pin: case.pin,
            bytes: case.bytes,
            wait: None,
            socket_buffers: None,
            runs: s.n,
            warmup,
            median_ns: s.median,
            p10_ns: s.p10,
            p90_ns: s.p90,
            mean_ns: s.mean,
            stddev_ns: s.stddev,
            min_ns: s.min,
            max_ns: s.max,
            gbps: stats::gbps(case.bytes, s.median),
            copies: non_negative(copies),
            syscalls: non_negative(syscalls),
            cpu_user_ms: None,
            cpu_sys_ms: None,
            copy: None,
            note: None,
            samples_ns,
            rounds: Vec::new(),
            round_median_ns: None,
            ci95: None,
            gbps_sustained: None,
            ci95_sustained: None,
            p99_ns: Some(s.p99),
            cpu_s_per_gb: None,
            round_stats: Vec::new(),
        })
    }

    /// The rounds of this row for the bootstrap; all samples as one round
    /// when the rounds were not recorded. `None` without samples.
    pub fn clusters(&self) -> Option<Clusters> {
        clusters(&self.rounds, &self.samples_ns)
    }

    /// Derives the statistics over rounds: `round_stats`, the figure
    /// (`round_median_ns`, and `gbps` from it), `gbps_sustained`, `p99_ns`,
    /// `cpu_s_per_gb` and the intervals, bootstrapped from `seed`. Returns
    /// whether the rounds were missing, so that all samples were taken as one
    /// round. Running it again gives the same values.
    pub fn analyse(&mut self, seed: u64) -> bool {
        let bytes = self.bytes;
        let Some((c, figure)) = by_rounds(
            &self.rounds,
            &self.samples_ns,
            bytes,
            true,
            &mut self.round_stats,
        ) else {
            return false;
        };
        self.round_median_ns = Some(figure);
        self.gbps = stats::gbps(bytes, figure);
        let to_gbps = |ns: f64| stats::gbps(bytes, ns);
        self.ci95 = c.figure_interval(seed).map(|i| i.map_decreasing(to_gbps));
        self.gbps_sustained = Some(to_gbps(c.sustained_ns()));
        self.ci95_sustained = c
            .sustained_interval(seed)
            .map(|i| i.map_decreasing(to_gbps));
        self.p99_ns = stats::percentile(&self.samples_ns, 99.0);
        // The rounds' CPU times when every round has one, else the row's.
        let cpu_ms = (!self.rounds.is_empty())
            .then(|| self.rounds.iter().map(|r| r.cpu_ms).sum::<Option<f64>>())
            .flatten()
            .or_else(|| self.cpu_user_ms.zip(self.cpu_sys_ms).map(|(u, s)| u + s));
        let moved = bytes as f64 * self.samples_ns.len() as f64;
        self.cpu_s_per_gb = cpu_ms
            .filter(|ms| ms.is_finite() && *ms >= 0.0 && moved > 0.0)
            .map(|ms| ms / 1e3 / (moved / 1e9));
        c.pooled()
    }

    /// Records the CPU time of both processes over the measured runs, in
    /// milliseconds; values that are not finite or are negative are dropped.
    pub fn with_cpu_ms(mut self, user: f64, sys: f64) -> CaseResult {
        self.cpu_user_ms = (user.is_finite() && user >= 0.0).then_some(user);
        self.cpu_sys_ms = (sys.is_finite() && sys >= 0.0).then_some(sys);
        self
    }

    /// Attaches a note for the reader.
    pub fn with_note(mut self, note: impl Into<String>) -> CaseResult {
        self.note = Some(note.into());
        self
    }

    /// What identifies this case.
    pub fn case(&self) -> Case {
        Case {
            transport: self.transport,
            mode: self.mode,
            pin: self.pin,
            bytes: self.bytes,
        }
    }

    /// Warnings about the spread of the samples (see [`stats::warnings`]).
    pub fn warnings(&self) -> Vec<String> {
        stats::warnings(&self.samples_ns, self.warmup)
    }
}

/// Round-trip latency of one small message: every raw sample and the
/// statistics made from them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LatencyResult {
    /// How the message travels.
    pub transport: Channel,
    /// Where the processes ran.
    pub pin: Pin,
    /// Message size in bytes (64 in the standard set).
    pub bytes: u64,
    /// How the receiver waits, e.g. "blocking" or "spin".
    pub variant: String,
    /// Measured round trips (the number of samples).
    pub round_trips: usize,
    /// Median round-trip time.
    pub median_ns: f64,
    /// 10th percentile.
    pub p10_ns: f64,
    /// 90th percentile.
    pub p90_ns: f64,
    /// 99th percentile.
    pub p99_ns: f64,
    /// Every measured round-trip time, in the order measured.
    pub samples_ns: Vec<u64>,
    /// The rounds this row merges (see [`Round`]).
    #[serde(default)]
    pub rounds: Vec<Round>,
    /// The row's figure: the median of its round medians (derived by
    /// [`LatencyResult::analyse`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub round_median_ns: Option<f64>,
    /// 95 % interval of `round_median_ns`, in nanoseconds (cluster
    /// bootstrap over rounds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci95: Option<Interval>,
    /// Each round's statistics (derived).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub round_stats: Vec<RoundStats>,
}

impl LatencyResult {
    /// Computes the statistics of `samples_ns`, one time per round trip, in
    /// nanoseconds. Returns `None` when there are no samples.
    pub fn from_samples(
        transport: Channel,
        pin: Pin,
        bytes: u64,
        variant: impl Into<String>,
        samples_ns: Vec<u64>,
    ) -> Option<LatencyResult> {
        let s = stats::Summary::of(&samples_ns)?;
        Some(LatencyResult {
            transport,
            pin,
            bytes,
            variant: variant.into(),
            round_trips: s.n,
            median_ns: s.median,
            p10_ns: s.p10,
            p90_ns: s.p90,
            p99_ns: s.p99,
            samples_ns,
            rounds: Vec::new(),
            round_median_ns: None,
            ci95: None,
            round_stats: Vec::new(),
        })
    }

    /// The rounds of this row for the bootstrap (see [`CaseResult::clusters`]).
    pub fn clusters(&self) -> Option<Clusters> {
        clusters(&self.rounds, &self.samples_ns)
    }

    /// The row's figure: `round_median_ns` once analysed, else the median.
    pub fn figure_ns(&self) -> f64 {
        self.round_median_ns.unwrap_or(self.median_ns)
    }

    /// Derives `round_stats`, the figure and its interval (see
    /// [`CaseResult::analyse`]); returns whether the rounds were missing.
    pub fn analyse(&mut self, seed: u64) -> bool {
        let Some((c, figure)) = by_rounds(
            &self.rounds,
            &self.samples_ns,
            self.bytes,
            false,
            &mut self.round_stats,
        ) else {
            return false;
        };
        self.round_median_ns = Some(figure);
        self.ci95 = c.figure_interval(seed);
        c.pooled()
    }
}

/// Everything one benchmark run produced: the contents of `results.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Where it ran.
    pub machine: Machine,
    /// How it was asked to run, when recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Config>,
    /// Throughput cases.
    pub results: Vec<CaseResult>,
    /// Round-trip latency cases.
    #[serde(default)]
    pub latency: Vec<LatencyResult>,
    /// Frame streams (`producer --stream` to `consumer --stream`): frames
    /// a second and latency by transport, frame size and readers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub frames: Vec<FrameResult>,
    /// The memcpy-bound frame rate of each frame size, from the same run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub frame_ceilings: Vec<FrameCeiling>,
    /// Things the reader should know, e.g. "python3 not found: python rows
    /// skipped".
    #[serde(default)]
    pub notes: Vec<String>,
    /// How the figures and intervals were made, once analysed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<Analysis>,
    /// Every target with its value, interval and verdict, once evaluated.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<Target>,
}

/// How a report's figures and intervals were made (see [`crate::bootstrap`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    /// The estimator of a row's figure.
    pub estimator: String,
    /// How the intervals were made.
    pub interval: String,
    /// Bootstrap resamples per interval.
    pub resamples: usize,
    /// The seed every interval's generator starts from.
    pub seed: u64,
}

/// One target checked against a report: its value, the 95 % interval of that
/// value and the verdict.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Target {
    /// What is aimed for, with the size and placement, e.g.
    /// "shm ≥ 0.6× best copy, sustained (8 MiB, pin=split)".
    pub name: String,
    /// The measured value (a ratio, or nanoseconds for a time bound).
    pub value: f64,
    /// The goal it is compared with.
    pub goal: f64,
    /// Whether the value must be at least the goal (`true`) or below it.
    pub at_least: bool,
    /// 95 % interval of the value.
    pub ci95: Interval,
    /// `met` (the whole interval on the right side of the goal), `missed`
    /// (the whole interval on the wrong side) or `within noise` (the interval
    /// straddles the goal).
    pub verdict: String,
    /// The rows behind it, when the reader should know which were used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// "×" for a ratio that must stay below its goal (a ratio that must
    /// reach its goal has `at_least`); absent otherwise (a time in ns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
}

impl Target {
    /// Whether the value is a ratio (written "1.234×"), not a time.
    pub fn is_ratio(&self) -> bool {
        self.at_least || self.unit.as_deref() == Some("×")
    }
}

impl Report {
    /// An empty report for `machine`.
    pub fn new(machine: Machine) -> Report {
        Report {
            machine,
            config: None,
            results: Vec::new(),
            latency: Vec::new(),
            frames: Vec::new(),
            frame_ceilings: Vec::new(),
            notes: Vec::new(),
            analysis: None,
            targets: Vec::new(),
        }
    }

    /// Derives every row's statistics over rounds and intervals (see
    /// [`CaseResult::analyse`]) with `seed`, records how in `analysis`, and
    /// adds a note when some rows had no recorded rounds. Does not evaluate
    /// the targets ([`crate::targets::evaluate`] does, from the analysed
    /// report).
    pub fn analyse(&mut self, seed: u64) {
        let mut pooled = 0;
        for r in &mut self.results {
            pooled += usize::from(r.analyse(seed));
        }
        for l in &mut self.latency {
            pooled += usize::from(l.analyse(seed));
        }
        for c in &mut self.frame_ceilings {
            if let Some(again) = FrameCeiling::of(c.size(), std::mem::take(&mut c.copies), seed) {
                *c = again;
            }
        }
        for f in &mut self.frames {
            let ceiling = self
                .frame_ceilings
                .iter()
                .find(|c| c.size() == f.size())
                .map(|c| c.memcpy_fps);
            f.analyse(ceiling, seed);
        }
        if pooled > 0 && !self.notes.iter().any(|n| n.starts_with(POOLED_NOTE)) {
            self.notes.push(format!(
                "{POOLED_NOTE} for {pooled} row(s): all their samples were taken as one round, \
                 and their intervals resample transfers within it, which ignores drift between \
                 rounds"
            ));
        }
        self.analysis = Some(Analysis {
            estimator: "median of the round medians (every round weighs alike)".into(),
            interval: "95 %, percentile cluster bootstrap: resample rounds with replacement, \
                       recompute the estimate; ratios resample both rows independently"
                .into(),
            resamples: crate::bootstrap::RESAMPLES,
            seed,
        });
    }

    /// Spread warnings of every throughput case, each prefixed with the case,
    /// e.g. "shm steady pin=split 8 MiB: wide spread: ...".
    pub fn warnings(&self) -> Vec<String> {
        self.results
            .iter()
            .flat_map(|r| {
                let case = r.case();
                r.warnings()
                    .into_iter()
                    .map(move |w| format!("{case}: {w}"))
            })
            .collect()
    }

    /// The pinning the headline figures show (the plot and the targets):
    /// `split` when any non-memcpy steady-state row has it, otherwise the
    /// most common among those rows (`split` when there are none).
    pub fn plotted_pin(&self) -> Pin {
        let mut counts: BTreeMap<Pin, usize> = BTreeMap::new();
        for r in &self.results {
            if !r.transport.is_ceiling() && r.mode == Mode::Steady {
                *counts.entry(r.pin).or_default() += 1;
            }
        }
        if counts.is_empty() || counts.contains_key(&Pin::Split) {
            return Pin::Split;
        }
        // Ties go to the first pinning in `Pin::ALL` order.
        counts
            .into_iter()
            .rev()
            .max_by_key(|&(_, n)| n)
            .map_or(Pin::Split, |(pin, _)| pin)
    }
}

/// The start of the note about rows without recorded rounds.
pub const POOLED_NOTE: &str = "rounds not recorded";

fn non_negative(x: f64) -> f64 {
    if x.is_finite() && x > 0.0 {
        x
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_samples_computes_statistics_and_throughput() {
        let case = Case {
            transport: Channel::Shm,
            mode: Mode::Steady,
            pin: Pin::Split,
            bytes: 8_000_000,
        };
        let r = CaseResult::from_samples(case, vec![4000, 1000, 3000, 2000], 2, 1.0, 2.0)
            .unwrap()
            .with_cpu_ms(1.5, f64::NAN);
        assert_eq!(r.runs, 4);
        assert_eq!(r.warmup, 2);
        assert_eq!(r.median_ns, 2500.0);
        assert_eq!(r.mean_ns, 2500.0);
        assert_eq!((r.min_ns, r.max_ns), (1000, 4000));
        // 8e6 bytes in 2.5 µs = 3.2e12 B/s = 3200 GB/s.
        assert!((r.gbps - 3200.0).abs() < 1e-9);
        assert_eq!(r.cpu_user_ms, Some(1.5));
        assert_eq!(r.cpu_sys_ms, None);
        assert_eq!(r.samples_ns, [4000, 1000, 3000, 2000]);
        assert_eq!(r.case(), case);
        assert_eq!(case.to_string(), "shm steady pin=split 7.63 MiB");
    }

    #[test]
    fn odd_samples_give_finite_numbers_or_nothing() {
        let case = Case {
            transport: Channel::Memcpy,
            mode: Mode::Steady,
            pin: Pin::None,
            bytes: 4096,
        };
        assert!(CaseResult::from_samples(case, vec![], 0, 0.0, 0.0).is_none());
        let r = CaseResult::from_samples(case, vec![0, 0], 0, f64::INFINITY, -1.0).unwrap();
        assert_eq!(r.gbps, 0.0);
        assert_eq!((r.copies, r.syscalls), (0.0, 0.0));
        let one = CaseResult::from_samples(case, vec![7], 0, 1.0, 0.0).unwrap();
        assert_eq!(one.stddev_ns, None);
        assert_eq!(one.p10_ns, 7.0);
        assert!(LatencyResult::from_samples(Channel::Shm, Pin::Same, 64, "spin", vec![]).is_none());
    }

    #[test]
    fn analyse_weighs_rounds_alike_and_derives_sustained_and_cpu() {
        use crate::testdata::rounds_with_medians;
        let bytes = 64 << 20;
        let case = Case {
            transport: Channel::Shm,
            mode: Mode::Steady,
            pin: Pin::Split,
            bytes,
        };
        // Round medians 9, 12.5 and 15.5 ms; the fast round has more samples.
        let mut rounds = rounds_with_medians(&[(9.0, 11), (12.5, 8), (15.5, 8)], 1e6);
        for (r, cpu) in rounds.iter_mut().zip([10.0, 20.0, 30.0]) {
            r.cpu_ms = Some(cpu);
        }
        let samples: Vec<u64> = rounds.iter().flat_map(|r| r.samples_ns.clone()).collect();
        let wall: u64 = rounds.iter().map(|r| r.wall_ns).sum();
        let mut r = CaseResult::from_samples(case, samples, 2, 1.0, 0.0).unwrap();
        r.rounds = rounds;
        assert!(
            r.median_ns < 12.5e6,
            "the pooled median leans to the fast round"
        );
        assert!(!r.analyse(42));
        assert_eq!(r.round_median_ns, Some(12.5e6));
        assert_eq!(r.gbps, bytes as f64 / 12.5e6);
        let ci = r.ci95.unwrap();
        assert!((ci.lo - bytes as f64 / 15.5e6).abs() < 1e-9, "{ci:?}");
        assert!((ci.hi - bytes as f64 / 9e6).abs() < 1e-9, "{ci:?}");
        let sustained = r.gbps_sustained.unwrap();
        assert!((sustained - bytes as f64 * 27.0 / wall as f64).abs() < 1e-9);
        assert!(r.ci95_sustained.unwrap().contains(sustained));
        // 60 ms of CPU for 27 × 64 MiB.
        let gb = bytes as f64 * 27.0 / 1e9;
        assert!((r.cpu_s_per_gb.unwrap() - 0.060 / gb).abs() < 1e-12);
        assert_eq!(r.round_stats.len(), 3);
        assert_eq!(r.round_stats[1].median_ns, 12.5e6);
        assert_eq!((r.round_stats[0].runs, r.round_stats[2].index), (11, 2));
        assert!(r.p99_ns.unwrap() > 15.5e6);
        // Again: the same values.
        let before = r.clone();
        r.analyse(42);
        assert_eq!(r, before);
        // One round's CPU unknown: no CPU per GB.
        r.rounds[1].cpu_ms = None;
        r.analyse(42);
        assert_eq!(r.cpu_s_per_gb, None);
    }

    #[test]
    fn without_rounds_the_report_says_all_samples_were_one_round() {
        let mut report = Report::new(crate::testdata::machine());
        let case = Case {
            transport: Channel::Unix,
            mode: Mode::Steady,
            pin: Pin::Split,
            bytes: 4096,
        };
        let mut r = CaseResult::from_samples(case, (1..=101).collect(), 0, 2.0, 2.0)
            .unwrap()
            .with_cpu_ms(3.0, 1.0);
        assert!(r.clone().analyse(1));
        r.rounds.clear();
        report.results.push(r);
        report.analyse(1);
        report.analyse(1);
        let r = &report.results[0];
        assert_eq!(r.round_median_ns, Some(51.0));
        // 101 transfers of 4096 bytes in 5151 ns (the samples' sum).
        assert!((r.gbps_sustained.unwrap() - 4096.0 * 101.0 / 5151.0).abs() < 1e-9);
        assert!(r.cpu_s_per_gb.is_some());
        let notes: Vec<&String> = report
            .notes
            .iter()
            .filter(|n| n.starts_with(POOLED_NOTE))
            .collect();
        assert_eq!(notes.len(), 1, "{:?}", report.notes);
        assert!(notes[0].contains("for 1 row(s)"));
        assert_eq!(report.analysis.as_ref().unwrap().seed, 1);
    }
}
