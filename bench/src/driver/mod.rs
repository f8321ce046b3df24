//! The benchmark driver behind `p1p2-bench`: plan the cases, run each, write the report.
//!
//! The benchmark driver behind `p1p2-bench`: plans the cases, runs each one
//! (memcpy in this process; every transport as two real processes, the
//! `p1p2-bench-peer` binary as sender and receiver; the Python baseline as
//! `scripts/python_baseline.py`), and writes the report.
//!
//! A case that fails (a peer dies, times out, or finds a payload wrong) is
//! recorded in the report's notes and the run goes on; its segment and
//! socket files are removed. Every wait is bounded: a case that outlives its
//! limit has its processes terminated (SIGTERM, then SIGKILL).
//!
//! This module is the run loop; its parts:
//! - `jobs`: the units of work, the blocks that take turns in
//!   rounds, and how a case's rounds merge into one row;
//! - `memcpy`: the one-copy ceiling, measured in this process;
//! - `python`: the Python baseline, run as a script;
//! - `child`: starting, watching and ending the processes of
//!   a case;
//! - `cleanup`: removing what failed cases left behind;
//! - `frames`: one round of a frame row, with the real `producer --stream`
//!   and `consumer --stream` binaries.

mod child;
mod cleanup;
mod frames;
mod jobs;
mod memcpy;
mod python;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use indicatif::ProgressBar;

use self::child::{finish_all, wait_all, Running};
use self::cleanup::{remove_iceoryx2_files, remove_leftovers};
pub use self::frames::StreamBins;
use self::jobs::{blocks, merge, merge_latency, Job, Shuffle};
use crate::case::{Case, Channel, Mode, Pin, Wait};
use crate::export::write_all;
use crate::frames::{FrameCase, FrameCeiling, FrameResult, FrameRound, FrameSize, Variant};
use crate::machine::{HostState, Machine};
use crate::peer::affinity::allowed_cpus;
use crate::peer::{PeerReport, Spec, Test};
use crate::plan::Budget;
use crate::report::{CaseResult, Config, LatencyResult, Report, Round, SocketBuffers};
use crate::targets;
use crate::units::{human_bytes, human_ns};
use common::copy::CopyMode;
use common::error::{Error, Result};
use common::signals;

/// Everything `p1p2-bench` was asked for.
#[derive(Clone, Debug)]
pub struct Options {
    /// Where the files go.
    pub out: PathBuf,
    /// The quick set (shorter budgets, fewer round trips).
    pub quick: bool,
    /// Payload sizes.
    pub sizes: Vec<u64>,
    /// Throughput transports to measure.
    pub transports: Vec<Channel>,
    /// Also measure shm with a fresh segment per transfer.
    pub cold: bool,
    /// Placements of the throughput cases.
    pub pins: Vec<Pin>,
    /// Placements of the latency cases (empty: no latency cases).
    pub latency_pins: Vec<Pin>,
    /// Exactly this many measured runs per case, instead of a time budget.
    pub runs: Option<usize>,
    /// Multiplies every time budget.
    pub budget_scale: f64,
    /// Rounds per case: the cases of one size (and the latency cases of one
    /// placement) run in turn, this many times, in an order shuffled anew
    /// each round, each with its share of the budget (throughput: ignored
    /// with `runs`).
    pub rounds: usize,
    /// The waiting mode of every row (`--wait`); `None`: `spin`, and
    /// `block` too at `wait_sizes`.
    pub wait: Option<Wait>,
    /// The sizes at which both waiting modes run when `wait` is `None`.
    pub wait_sizes: Vec<u64>,
    /// The seed of the case order.
    pub seed: u64,
    /// The command line, for the record.
    pub command_line: Vec<String>,
    /// Measured round trips per latency case.
    pub round_trips: usize,
    /// Size of a latency message.
    pub message_bytes: u64,
    /// Slots of the pipelined segment.
    pub slots: u32,
    /// How the shm senders copy a payload into shared memory (`--copy`).
    pub copy: CopyMode,
    /// The sizes at which the `[std]` and `[nt]` rows run (`--copy-sizes`).
    pub copy_sizes: Vec<u64>,
    /// Bounded spin before sleeping, when the peers are on different CPUs.
    pub spin: Duration,
    /// Longest a peer waits for the other.
    pub timeout: Duration,
    /// The `p1p2-bench-peer` binary, which runs both sides of a case.
    pub peer: PathBuf,
    /// The Python baseline script, or `None` to skip it.
    pub python_script: Option<PathBuf>,
    /// The Python interpreter.
    pub python: String,
    /// The iceoryx2 peer binary, when built with that feature.
    pub iceoryx2_peer: Option<PathBuf>,
    /// Frame sizes of the frame rows (empty: no frame rows).
    pub frame_sizes: Vec<FrameSize>,
    /// Seconds of streaming per round of a frame row (paced rows stream at
    /// least 20 frames' worth).
    pub frame_seconds: f64,
    /// `producer` and `consumer`, or why they were not found.
    pub stream_bins: std::result::Result<StreamBins, String>,
}

/// What a run produced.
#[derive(Debug)]
pub struct Outcome {
    /// The report, as written.
    pub report: Report,
    /// The files written.
    pub files: Vec<PathBuf>,
    /// Cases that failed (their reasons are in the notes).
    pub failed: usize,
}

/// A row of either table.
#[derive(Clone)]
enum Measurement {
    Throughput(Box<CaseResult>),
    Latency(LatencyResult),
    Frame(FrameCase, FrameRound),
    FrameCopy(FrameSize, Box<CaseResult>),
}

/// Runs the whole benchmark and writes its files into `options.out`.
///
/// # Errors
/// [`Error::Usage`] for a request this machine cannot serve (e.g. `split`
/// on one CPU), [`Error::Interrupted`] on a signal (after cleaning up), or
/// an error writing the files. Failed cases are not errors: see
/// [`Outcome::failed`].
pub fn run(options: &Options) -> Result<Outcome> {
    signals::install()?;
    let cpus = allowed_cpus();
    for pin in options.pins.iter().chain(&options.latency_pins) {
        if *pin == Pin::Split && cpus.len() < 2 {
            return Err(Error::Usage(format!(
                "--pin split needs two CPUs, and this process may use only {} (try --pin same)",
                cpus.len()
            )));
        }
    }
    let mut driver = Driver {
        options,
        cpus,
        case_number: 0,
        notes: Vec::new(),
        failed: 0,
        python_version: None,
    };
    let jobs = driver.plan();
    let blocks = blocks(&jobs);
    let steps: usize = blocks
        .iter()
        .map(|b| b.len() * driver.rounds_of(&b[0]))
        .sum();
    let bar = common::progress::steps(steps as u64);
    let host_start = HostState::detect();
    let mut report = Report::new(Machine::detect());
    report.config = Some(driver.config());
    let mut shuffle = Shuffle::new(options.seed);
    // The place of each round in the run's order, across all cases.
    let mut round_index = 0usize;
    let mut frame_copies: Vec<(FrameSize, CaseResult)> = Vec::new();
    for block in blocks {
        let rounds = driver.rounds_of(&block[0]);
        let mut parts: Vec<Option<Vec<Measurement>>> = vec![Some(Vec::new()); block.len()];
        for round in 0..rounds {
            for i in shuffle.order(block.len()) {
                let (job, part) = (&block[i], &mut parts[i]);
                let mut label = job.label(options.message_bytes);
                if rounds > 1 {
                    label = format!("{label} (round {} of {rounds})", round + 1);
                }
                bar.set_message(label.clone());
                if part.is_none() {
                    // An earlier round failed.
                    bar.inc(1);
                    continue;
                }
                let index = round_index;
                round_index += 1;
                match driver.run_job(job, (round, rounds), &bar) {
                    Ok(Some(mut m)) => {
                        let line = match &mut m {
                            Measurement::Throughput(row) => {
                                let cpu = row.cpu_user_ms.zip(row.cpu_sys_ms).map(|(u, s)| u + s);
                                number_rounds(&mut row.rounds, &row.samples_ns, cpu, index);
                                format!(
                                    "{label}: {} runs, median {}, {:.0} MB/s",
                                    row.runs,
                                    human_ns(row.median_ns),
                                    row.gbps * 1e3
                                )
                            }
                            Measurement::Latency(row) => {
                                number_rounds(&mut row.rounds, &row.samples_ns, None, index);
                                format!(
                                    "{label}: {} round trips, median {}",
                                    row.round_trips,
                                    human_ns(row.median_ns)
                                )
                            }
                            Measurement::Frame(_, round) => {
                                round.index = index;
                                format!(
                                    "{label}: {} frames, {:.1} fps, latency p50 {:.0} µs",
                                    round.frames, round.fps, round.latency_us.p50
                                )
                            }
                            Measurement::FrameCopy(_, row) => {
                                let cpu = row.cpu_user_ms.zip(row.cpu_sys_ms).map(|(u, s)| u + s);
                                number_rounds(&mut row.rounds, &row.samples_ns, cpu, index);
                                format!(
                                    "{label}: {} copies, median {} ({:.0} frames/s)",
                                    row.runs,
                                    human_ns(row.median_ns),
                                    1e9 / row.median_ns.max(1.0)
                                )
                            }
                        };
                        bar.println(line);
                        if let Some(p) = part.as_mut() {
                            p.push(m);
                        }
                    }
                    Ok(None) => {}
                    Err(Error::Interrupted(signal)) => {
                        bar.finish_and_clear();
                        driver.sweep();
                        return Err(Error::Interrupted(signal));
                    }
                    Err(e) => {
                        driver.failed += 1;
                        let line = format!("{label} failed: {e}");
                        bar.println(&line);
                        driver.notes.push(line);
                        *part = None;
                    }
                }
                bar.inc(1);
            }
        }
        for part in parts.into_iter().flatten() {
            let (mut rows, mut latency) = (Vec::new(), Vec::new());
            let (mut frame_rounds, mut copies) = (Vec::new(), Vec::new());
            let mut frame_case = None;
            let mut copy_size = None;
            for m in part {
                match m {
                    Measurement::Throughput(r) => rows.push(*r),
                    Measurement::Latency(r) => latency.push(r),
                    Measurement::Frame(case, round) => {
                        frame_case = Some(case);
                        frame_rounds.push(round);
                    }
                    Measurement::FrameCopy(size, r) => {
                        copy_size = Some(size);
                        copies.push(*r);
                    }
                }
            }
            report.results.extend(merge(rows));
            report.latency.extend(merge_latency(latency));
            if let Some(case) = frame_case {
                report
                    .frames
                    .push(FrameResult::from_rounds(&case, frame_rounds, 0.0));
            }
            if let (Some(size), Some(row)) = (copy_size, merge(copies)) {
                frame_copies.push((size, row));
            }
        }
    }
    let mut sizes: Vec<FrameSize> = frame_copies.iter().map(|(s, _)| *s).collect();
    sizes.dedup();
    for size in sizes {
        let rows: Vec<CaseResult> = frame_copies
            .iter()
            .filter(|(s, _)| *s == size)
            .map(|(_, r)| r.clone())
            .collect();
        report
            .frame_ceilings
            .extend(FrameCeiling::of(size, rows, crate::bootstrap::DEFAULT_SEED));
    }
    if let Some(config) = report.config.as_mut() {
        config.host = Some(host_start.until_now());
    }
    bar.finish_and_clear();
    if let Some(n) = driver.sweep() {
        driver.notes.push(format!(
            "removed {n} leftover segment or socket file(s) of failed cases"
        ));
    }
    driver.notes.extend(method_notes(
        options,
        &report,
        driver.python_version.as_deref(),
    ));
    report.notes = driver.notes;
    // The statistics over rounds, the intervals and the targets' verdicts.
    targets::analyse(&mut report, crate::bootstrap::DEFAULT_SEED);
    let files = write_all(&report, &options.out)?;
    Ok(Outcome {
        report,
        files,
        failed: driver.failed,
    })
}

/// Gives a row's rounds their place in the run's order: a row measured in
/// this process (one round, no peer to time it) gets one round whose wall
/// time is the sum of its samples.
fn number_rounds(rounds: &mut Vec<Round>, samples: &[u64], cpu_ms: Option<f64>, index: usize) {
    if rounds.is_empty() {
        rounds.push(Round {
            index,
            samples_ns: samples.to_vec(),
            wall_ns: samples.iter().sum(),
            cpu_ms,
        });
    }
    for round in rounds {
        round.index = index;
    }
}

struct Driver<'a> {
    options: &'a Options,
    cpus: Vec<usize>,
    case_number: u32,
    notes: Vec<String>,
    failed: usize,
    python_version: Option<String>,
}

impl Driver<'_> {
    /// Rounds of the block that `job` opens: a throughput block's, or the
    /// latency rounds (`--rounds`, fewer when there are fewer round trips).
    fn rounds_of(&self, job: &Job) -> usize {
        match job {
            Job::Latency { .. } => self
                .options
                .rounds
                .clamp(1, self.options.round_trips.max(1)),
            _ => self.rounds(),
        }
    }

    /// Rounds per throughput case (1 with a fixed run count).
    fn rounds(&self) -> usize {
        match self.options.runs {
            Some(_) => 1,
            None => self.options.rounds.max(1),
        }
    }

    /// The budget of one round of a throughput case of `bytes`.
    fn budget(&self, bytes: u64) -> Budget {
        match self.options.runs {
            Some(runs) => Budget::fixed(runs),
            None if self.options.quick => Budget::quick(bytes)
                .scaled(self.options.budget_scale)
                .split(self.rounds()),
            None => Budget::full(bytes)
                .scaled(self.options.budget_scale)
                .split(self.rounds()),
        }
    }

    /// What every case got, over all its rounds.
    fn config(&self) -> Config {
        let rounds = self.rounds();
        let round = self.budget(self.options.sizes.first().copied().unwrap_or(4096));
        let adaptive = self.options.runs.is_none();
        Config {
            sizes: self.options.sizes.clone(),
            runs: round.min_runs * rounds,
            warmup: self
                .options
                .sizes
                .iter()
                .map(|&b| self.budget(b).warmup)
                .max()
                .unwrap_or(1)
                * rounds,
            quick: self.options.quick,
            pins: self.options.pins.clone(),
            round_trips: self.options.round_trips,
            max_runs: adaptive.then_some(round.max_runs * rounds),
            budget_ms: adaptive.then_some(round.time.as_millis() as u64 * rounds as u64),
            copy: Some(self.options.copy),
            rounds: Some(rounds),
            latency_rounds: Some(
                self.options
                    .rounds
                    .clamp(1, self.options.round_trips.max(1)),
            ),
            slots: Some(self.options.slots),
            spin_us: Some(self.options.spin.as_micros() as u64),
            budget_scale: Some(self.options.budget_scale),
            wait: match self.options.wait {
                Some(w) => vec![w],
                None => vec![Wait::Spin, Wait::Block],
            },
            wait_sizes: match self.options.wait {
                Some(_) => self.options.sizes.clone(),
                None => self.options.wait_sizes.clone(),
            },
            seed: Some(self.options.seed),
            order: Some(
                "the cases of one size (and the latency cases of one placement) take turns; \
                 their order is shuffled anew for every round from the seed (SplitMix64, \
                 Fisher-Yates)"
                    .into(),
            ),
            drained: Some(
                "pipelined rows (shm-pipelined, unix-stream, tcp-stream): the acknowledgements \
                 of the last slots - 1 transfers of a round come after the sender stopped \
                 sending and time the receiver alone; they are excluded from the samples, and \
                 the sender sends that many transfers more so the count is unchanged"
                    .into(),
            ),
            command_line: self.options.command_line.clone(),
            host: None,
        }
    }

    /// The jobs in order: for each placement and size, every throughput
    /// transport; then the latency cases.
    fn plan(&mut self) -> Vec<Job> {
        let o = self.options;
        let mut jobs = Vec::new();
        let python_ok = self.python_ready();
        for &pin in &o.pins {
            for &bytes in &o.sizes {
                for &transport in Channel::ALL {
                    if !o.transports.contains(&transport) {
                        continue;
                    }
                    let case = |mode| Case {
                        transport,
                        mode,
                        pin,
                        bytes,
                    };
                    let waits = self.waits(transport, pin, bytes);
                    let primary = waits[0];
                    match transport {
                        Channel::Memcpy | Channel::MemcpyNt => {
                            jobs.push(Job::Memcpy(case(Mode::Steady)))
                        }
                        Channel::ShmStd
                        | Channel::ShmNt
                        | Channel::ShmPipelinedStd
                        | Channel::ShmPipelinedNt => {
                            if o.copy_sizes.contains(&bytes) {
                                jobs.push(Job::Peers(case(Mode::Steady), primary))
                            }
                        }
                        Channel::Shm => {
                            for &wait in &waits {
                                jobs.push(Job::Peers(case(Mode::Steady), wait));
                            }
                            if o.cold {
                                jobs.push(Job::Peers(case(Mode::Cold), primary));
                            }
                        }
                        Channel::ShmPipelined
                        | Channel::Unix
                        | Channel::Tcp
                        | Channel::UnixStream
                        | Channel::TcpStream => {
                            for &wait in &waits {
                                jobs.push(Job::Peers(case(Mode::Steady), wait));
                            }
                        }
                        // A fresh sealed memfd per payload is the transport;
                        // there is no steady mode (see peer/memfd.rs).
                        Channel::Memfd => jobs.push(Job::Peers(case(Mode::Cold), None)),
                        Channel::PythonShm | Channel::PythonArray if python_ok => {
                            jobs.push(Job::Python(case(Mode::Steady)))
                        }
                        Channel::PythonShm | Channel::PythonArray => {}
                        Channel::Iceoryx2 if o.iceoryx2_peer.is_some() => {
                            jobs.push(Job::Iceoryx2(case(Mode::Steady), primary))
                        }
                        Channel::Iceoryx2 => {}
                    }
                }
            }
        }
        if o.transports.contains(&Channel::Iceoryx2) && o.iceoryx2_peer.is_none() {
            self.notes.push(
                "iceoryx2 rows skipped: this p1p2-bench was built without the iceoryx2 \
                 feature (scripts/bench.sh --peers builds it)"
                    .into(),
            );
        }
        self.plan_frames(&mut jobs);
        for &pin in &o.latency_pins {
            // Every reader of a round trip spins with --wait spin (and by
            // default), on different CPUs only.
            let spin = pin == Pin::Split && !o.spin.is_zero();
            for transport in [Channel::Shm, Channel::Unix, Channel::Tcp] {
                if o.wait != Some(Wait::Spin) || !spin {
                    jobs.push(Job::Latency {
                        transport,
                        pin,
                        variant: "blocking",
                    });
                }
                if o.wait != Some(Wait::Block) && spin {
                    jobs.push(Job::Latency {
                        transport,
                        pin,
                        variant: "spin",
                    });
                }
            }
        }
        jobs
    }

    /// The frame rows, per frame size: the two copies of one frame (the
    /// ceiling); 1 and 3 readers under `every` over shm, unix and tcp;
    /// 3 readers under `latest` over shm, without and with one stopped; a
    /// paced stream to 1 reader for the latency (shm spinning; in a full run
    /// unix and tcp too); with the iceoryx2 peer built, iceoryx2 with 1 and
    /// 3 subscribers and paced to 1.
    fn plan_frames(&mut self, jobs: &mut Vec<Job>) {
        let o = self.options;
        if o.frame_sizes.is_empty() {
            return;
        }
        if let Err(why) = &o.stream_bins {
            self.notes.push(format!("frame rows skipped: {why}"));
            return;
        }
        let pin = if self.cpus.len() >= 2 {
            Pin::Split
        } else {
            Pin::Same
        };
        let iceoryx2 = o.iceoryx2_peer.as_deref().is_some_and(Path::is_file);
        if o.iceoryx2_peer.is_some() && !iceoryx2 {
            self.notes.push(
                "iceoryx2 frame rows skipped: no p1p2-iceoryx2-peer next to p1p2-bench".into(),
            );
        }
        for &size in &o.frame_sizes {
            for t in [Channel::Memcpy, Channel::MemcpyNt] {
                let case = Case {
                    transport: t,
                    mode: Mode::Steady,
                    pin,
                    bytes: size.bytes(),
                };
                jobs.push(Job::FrameCopy(case, size));
            }
            let case = |transport, consumers, policy, variant, spin| {
                Job::Frames(FrameCase {
                    transport,
                    size,
                    consumers,
                    policy,
                    variant,
                    spin,
                    pin,
                })
            };
            for consumers in crate::frames::READERS {
                for t in frames::transports() {
                    jobs.push(case(t, consumers, "every", Variant::Max, false));
                }
            }
            jobs.push(case(Channel::Shm, 3, "latest", Variant::Max, false));
            jobs.push(case(Channel::Shm, 3, "latest", Variant::Stopped, false));
            jobs.push(case(
                Channel::Shm,
                1,
                "every",
                Variant::Paced,
                pin == Pin::Split,
            ));
            if !o.quick {
                for t in [Channel::Unix, Channel::Tcp] {
                    jobs.push(case(t, 1, "every", Variant::Paced, false));
                }
            }
            // iceoryx2, when built in: every subscriber gets every frame,
            // as under `every`; its subscribers poll (spin, then yield).
            if iceoryx2 {
                for consumers in crate::frames::READERS {
                    jobs.push(case(
                        Channel::Iceoryx2,
                        consumers,
                        "every",
                        Variant::Max,
                        true,
                    ));
                    // Like for like with them: the ring's readers spinning too.
                    jobs.push(case(Channel::Shm, consumers, "every", Variant::Max, true));
                }
                jobs.push(case(Channel::Iceoryx2, 1, "every", Variant::Paced, true));
            }
        }
    }

    /// The waiting modes of a case, the first the run's own: `None` for a
    /// transport whose waiting `--wait` does not set; `block` alone off
    /// `pin=split` (nobody spins on a shared or unpinned CPU); else the mode
    /// of `--wait`, or `spin` and, at the wait sizes, `block` too.
    fn waits(&self, transport: Channel, pin: Pin, bytes: u64) -> Vec<Option<Wait>> {
        let o = self.options;
        if !transport.waits() {
            vec![None]
        } else if pin != Pin::Split || o.spin.is_zero() {
            vec![Some(Wait::Block)]
        } else if let Some(wait) = o.wait {
            vec![Some(wait)]
        } else if o.wait_sizes.contains(&bytes) {
            vec![Some(Wait::Spin), Some(Wait::Block)]
        } else {
            vec![Some(Wait::Spin)]
        }
    }

    /// Whether the Python baseline can run; notes why not.
    fn python_ready(&mut self) -> bool {
        let o = self.options;
        let wanted = o.transports.contains(&Channel::PythonShm)
            || o.transports.contains(&Channel::PythonArray);
        if !wanted {
            return false;
        }
        match python::check(&o.python, o.python_script.as_deref()) {
            Ok(()) => true,
            Err(note) => {
                self.notes.push(note);
                false
            }
        }
    }

    /// A Python baseline case: one `python3 scripts/python_baseline.py` run.
    fn python(&mut self, case: Case, bar: &ProgressBar) -> Result<Option<Measurement>> {
        let o = self.options;
        let script = o.python_script.clone().expect("checked in plan");
        let budget = self.budget(case.bytes);
        let cpus = self.placement(case.pin);
        let name = self.next_name();
        let limit = self.limit(&budget) + budget.longest();
        let baseline = python::Baseline {
            python: &o.python,
            script: &script,
            timeout: o.timeout,
        };
        let run = baseline.run(case, budget, cpus, &name, limit, bar);
        if run.is_err() {
            remove_leftovers(&name);
        }
        let run = run?;
        self.python_version.get_or_insert(run.python);
        if run.capped {
            self.notes.push(format!(
                "{case}: Python was capped by the time limit at {} runs",
                run.runs
            ));
        }
        Ok(Some(Measurement::Throughput(Box::new(run.row))))
    }

    /// A fresh segment or socket name for a case: `bench-PID-N`.
    fn next_name(&mut self) -> String {
        self.case_number += 1;
        format!("bench-{}-{}", std::process::id(), self.case_number)
    }

    /// The sender's and receiver's CPUs for a placement.
    fn placement(&self, pin: Pin) -> (Option<usize>, Option<usize>) {
        match pin {
            Pin::Same => (Some(self.cpus[0]), Some(self.cpus[0])),
            Pin::Split => (Some(self.cpus[0]), Some(self.cpus[1])),
            Pin::None => (None, None),
        }
    }

    fn spin_for(&self, pin: Pin) -> u64 {
        if pin == Pin::Split {
            self.options.spin.as_micros() as u64
        } else {
            0
        }
    }

    fn run_job(
        &mut self,
        job: &Job,
        round: (usize, usize),
        bar: &ProgressBar,
    ) -> Result<Option<Measurement>> {
        signals::check()?;
        match job {
            Job::Memcpy(case) => {
                let budget = self.budget(case.bytes);
                let cpu = self.placement(case.pin).0;
                memcpy::measure(*case, budget, cpu)
                    .map(|r| Some(Measurement::Throughput(Box::new(r))))
            }
            Job::Peers(case, wait) => self.peers(*case, *wait, None, bar),
            Job::Iceoryx2(case, wait) => {
                let bin = self.options.iceoryx2_peer.clone();
                self.peers(*case, *wait, bin, bar)
            }
            Job::Python(case) => self.python(*case, bar),
            Job::FrameCopy(case, size) => {
                let budget = self.budget(case.bytes);
                let cpu = self.placement(case.pin).0;
                memcpy::measure(*case, budget, cpu)
                    .map(|r| Some(Measurement::FrameCopy(*size, Box::new(r))))
            }
            Job::Frames(case) => self.frames(*case, bar),
            Job::Latency {
                transport,
                pin,
                variant,
            } => self.latency(*transport, *pin, variant, round, bar),
        }
    }

    /// One round of a frame row: the real producer and consumers.
    fn frames(&mut self, case: FrameCase, bar: &ProgressBar) -> Result<Option<Measurement>> {
        let o = self.options;
        let bins = o.stream_bins.clone().map_err(Error::Usage)?;
        let name = self.next_name();
        let seconds = match case.variant {
            // At least 20 frames of a paced stream.
            Variant::Paced => o.frame_seconds.max(20.0 / crate::frames::PACE_FPS),
            _ => o.frame_seconds,
        };
        let spec = frames::RoundSpec {
            bins: &bins,
            iceoryx2: o.iceoryx2_peer.as_deref(),
            case,
            name: &name,
            addr: free_loopback_addr(),
            cpus: self.placement(case.pin),
            seconds,
            timeout: o.timeout,
        };
        let round = frames::run_round(&spec, bar);
        // Every process has exited: what a crashed one left can go.
        remove_leftovers(&name);
        if case.transport == Channel::Iceoryx2 {
            remove_iceoryx2_files(&name);
        }
        round.map(|r| Some(Measurement::Frame(case, r)))
    }

    fn spec(
        &mut self,
        case: Case,
        wait: Option<Wait>,
        test: Test,
        budget: Budget,
        cpu: Option<usize>,
    ) -> Spec {
        let name = self.next_name();
        let addr =
            matches!(case.transport, Channel::Tcp | Channel::TcpStream).then(free_loopback_addr);
        Spec {
            test,
            transport: case.transport,
            mode: case.mode,
            bytes: case.bytes,
            slots: self.options.slots,
            budget,
            name,
            addr,
            cpu,
            spin_us: match wait {
                Some(Wait::Block) => 0,
                _ => self.spin_for(case.pin),
            },
            timeout_ms: self.options.timeout.as_millis() as u64,
            progress: common::progress::enabled(),
            copy: self.options.copy,
        }
    }

    /// A throughput case with two peer processes: the peer binary, or the
    /// iceoryx2 peer binary, in both roles.
    fn peers(
        &mut self,
        case: Case,
        wait: Option<Wait>,
        iceoryx2: Option<PathBuf>,
        bar: &ProgressBar,
    ) -> Result<Option<Measurement>> {
        let budget = self.budget(case.bytes);
        let (cpu_s, cpu_r) = self.placement(case.pin);
        let sender = self.spec(case, wait, Test::Throughput, budget, cpu_s);
        let receiver = Spec {
            cpu: cpu_r,
            progress: false,
            ..sender.clone()
        };
        let pair = self.run_pair(&sender, &receiver, iceoryx2.as_deref(), case.bytes, bar);
        if iceoryx2.is_some() {
            remove_iceoryx2_files(&sender.name);
        }
        let (s, r) = pair?;
        let copies = s.copies + r.copies;
        let syscalls = match (s.proc_io, r.proc_io) {
            (Some(a), Some(b)) if s.runs > 0 => {
                let io = a.plus(&b);
                (io.syscr + io.syscw) as f64 / s.runs as f64
            }
            _ => 0.0,
        };
        let mut row =
            CaseResult::from_samples(case, s.samples_ns.clone(), s.warmup, copies, syscalls)
                .ok_or_else(|| Error::Usage("the sender measured no transfer".into()))?
                .with_cpu_ms(s.user_ms + r.user_ms, s.sys_ms + r.sys_ms);
        row.copy = s.copy.clone();
        row.wait = wait;
        if let (Some(sndbuf), Some(rcvbuf)) = (s.socket_buffer, r.socket_buffer) {
            row.socket_buffers = Some(SocketBuffers { sndbuf, rcvbuf });
        }
        row.rounds = vec![Round {
            index: 0,
            samples_ns: s.samples_ns.clone(),
            wall_ns: s.wall_ns,
            cpu_ms: Some(s.user_ms + r.user_ms + s.sys_ms + r.sys_ms),
        }];
        let mut notes = Vec::new();
        if s.proc_io.is_none() || r.proc_io.is_none() {
            notes.push("no /proc/self/io here: syscalls not counted (0)".to_string());
        }
        if s.capped {
            notes.push(format!(
                "capped by the time limit at {} runs (minimum {})",
                s.runs, budget.min_runs
            ));
        }
        if case.pin == Pin::None {
            notes.push(format!(
                "unpinned: the sender ended on CPU {}, the receiver on CPU {}",
                s.cpu, r.cpu
            ));
        }
        if !notes.is_empty() {
            row = row.with_note(notes.join("; "));
        }
        Ok(Some(Measurement::Throughput(Box::new(row))))
    }

    fn latency(
        &mut self,
        transport: Channel,
        pin: Pin,
        variant: &'static str,
        (round, rounds): (usize, usize),
        bar: &ProgressBar,
    ) -> Result<Option<Measurement>> {
        // This round's share of the round trips (they add up to --round-trips).
        let total = self.options.round_trips.max(1);
        let rounds = rounds.max(1);
        let rt = (total / rounds + usize::from(round < total % rounds)).max(1);
        let budget = Budget {
            warmup: (rt / 10).clamp(1, 1000),
            time: Duration::ZERO,
            min_runs: rt,
            max_runs: rt,
            hard: Duration::from_secs(120),
        };
        let case = Case {
            transport,
            mode: Mode::Steady,
            pin,
            bytes: self.options.message_bytes,
        };
        let (cpu_s, cpu_r) = self.placement(pin);
        let wait = if variant == "spin" {
            Wait::Spin
        } else {
            Wait::Block
        };
        let mut sender = self.spec(case, Some(wait), Test::Latency, budget, cpu_s);
        sender.progress = false;
        let receiver = Spec {
            cpu: cpu_r,
            ..sender.clone()
        };
        let (s, r) = self.run_pair(&sender, &receiver, None, case.bytes, bar)?;
        let mut row =
            LatencyResult::from_samples(transport, pin, case.bytes, variant, s.samples_ns.clone())
                .ok_or_else(|| Error::Usage("the sender measured no round trip".into()))?;
        row.rounds = vec![Round {
            index: 0,
            samples_ns: s.samples_ns,
            wall_ns: s.wall_ns,
            cpu_ms: Some(s.user_ms + r.user_ms + s.sys_ms + r.sys_ms),
        }];
        Ok(Some(Measurement::Latency(row)))
    }

    /// The longest a case may take before its processes are ended.
    fn limit(&self, budget: &Budget) -> Duration {
        self.options.timeout * 2 + budget.longest() + Duration::from_secs(10)
    }

    /// Starts the receiver, then the sender; collects both reports.
    fn run_pair(
        &mut self,
        sender: &Spec,
        receiver: &Spec,
        iceoryx2: Option<&Path>,
        bytes: u64,
        bar: &ProgressBar,
    ) -> Result<(PeerReport, PeerReport)> {
        let args = |spec: &Spec, role: &str| -> Vec<String> {
            let json = serde_json::to_string(spec).expect("specs serialise");
            vec!["--role".into(), role.into(), "--bench-peer".into(), json]
        };
        let bin = iceoryx2.unwrap_or(&self.options.peer);
        let limit = self.limit(&sender.budget);
        let (tx, rx) = mpsc::channel();
        let result = (|| {
            let receiver_proc = Running::start("receiver", bin, &args(receiver, "receiver"), None)?;
            let sender_proc = Running::start("sender", bin, &args(sender, "sender"), Some(tx));
            let sender_proc = match sender_proc {
                Ok(p) => p,
                Err(e) => {
                    finish_all(vec![receiver_proc], Duration::from_secs(2), &rx, bar, bytes);
                    return Err(e);
                }
            };
            let outputs = wait_all(vec![sender_proc, receiver_proc], limit, &rx, bar, bytes)?;
            let mut reports = Vec::new();
            let mut failures = Vec::new();
            for out in outputs {
                match out.report::<PeerReport>() {
                    Ok(r) => reports.push(r),
                    Err(e) => failures.push(e),
                }
            }
            if !failures.is_empty() {
                return Err(Error::PeerGone(failures.join("; ")));
            }
            let r = reports.pop().expect("two reports");
            let s = reports.pop().expect("two reports");
            Ok((s, r))
        })();
        if result.is_err() {
            remove_leftovers(&sender.name);
        }
        result
    }

    /// Removes files of this run's cases that failed; returns how many, if any.
    fn sweep(&self) -> Option<usize> {
        let n = remove_leftovers(&format!("bench-{}-", std::process::id()));
        (n > 0).then_some(n)
    }
}

/// Notes on how the rows were made, once per report.
fn method_notes(options: &Options, report: &Report, python: Option<&str>) -> Vec<String> {
    let has = |t: Channel| report.results.iter().any(|r| r.transport == t);
    let mut notes = Vec::new();
    if options.runs.is_none() && options.rounds > 1 && !report.results.is_empty() {
        notes.push(format!(
            "each throughput case ran in {} rounds, taking turns with the other cases of its \
             size in an order shuffled per round (seed {}), each round in fresh processes with \
             its own warm-up; a row keeps every round (rounds) and pools their samples \
             (samples_ns)",
            options.rounds, options.seed
        ));
    }
    if has(Channel::Memcpy) {
        notes.push(
            "memcpy: one copy between two hot, page-aligned buffers in one process, on the \
             sender's CPU; below 1 MiB each sample is the mean of 1 MiB / size copies"
                .to_string(),
        );
    }
    if has(Channel::MemcpyNt) {
        notes.push(
            "memcpy-nt: the same copy with non-temporal stores (common::copy); × best copy \
             divides by the faster of memcpy and memcpy-nt at each size"
                .to_string(),
        );
    }
    if has(Channel::Shm) || has(Channel::ShmPipelined) {
        notes.push(format!(
            "shm, shm-pipelined: the sender copies with --copy {} (auto: non-temporal stores \
             from {}); the [std] and [nt] rows force one copy",
            options.copy,
            human_bytes(common::copy::NT_THRESHOLD as u64)
        ));
    }
    if has(Channel::ShmPipelined) {
        notes.push(format!(
            "shm-pipelined, unix-stream, tcp-stream: {} payloads outstanding; a sample is the \
             interval between two acknowledgements, the drained last ones of a round excluded",
            options.slots.max(2)
        ));
    }
    if has(Channel::Memfd) {
        notes.push(
            "memfd: cold only, a fresh memfd per payload, filled with one memcpy, unmapped, \
             sealed (shrink, grow, write, seal) and passed over a Unix socket (SCM_RIGHTS); the \
             receiver checks it (fstat, /proc/self/fd, F_GET_SEALS, size), maps it read-only and \
             reads it in place. No steady mode: a reused memfd cannot carry F_SEAL_WRITE, and \
             without it the receiver must trust the sender as with named shm (the shm steady \
             row). Its syscalls column counts read/write only (the 8-byte answer); each \
             transfer also makes memfd_create, ftruncate, mmap, munmap, fcntl and sendmsg on \
             the sender's side and recvmsg, fstat, readlink, fcntl, mmap, munmap and close on \
             the receiver's"
                .to_string(),
        );
    }
    if options.pins.contains(&Pin::Split) || options.latency_pins.contains(&Pin::Split) {
        notes.push(if options.spin.is_zero() {
            "every wait sleeps at once (--spin-us 0): wait=block".to_string()
        } else {
            format!(
                "wait=spin (pin=split only): shared-memory waits spin on the state word and \
                 socket readers make non-blocking reads in a loop, up to {} µs without progress, \
                 before sleeping; wait=block: every wait sleeps at once (futex, blocking read). \
                 {}",
                options.spin.as_micros(),
                match options.wait {
                    Some(w) => format!("This run: wait={w} for every row."),
                    None => format!(
                        "This run: wait=spin, and wait=block too at {}.",
                        options
                            .wait_sizes
                            .iter()
                            .map(|&b| human_bytes(b))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                }
            )
        });
    }
    if !report.frames.is_empty() {
        notes.push(format!(
            "frame rows: the real `producer --stream` and `consumer --stream` binaries, \
             generated Rgb8 frames, {} s of streaming per round (paced rows at least 20 \
             frames), the producer pinned to one CPU and every consumer to the other \
             (pin=split), every consumer verifying the CRC-32 of every frame it reads; fps is \
             the slowest running reader's under every and the producer's under latest, the \
             median over rounds; memcpy_fps (the ceiling) is 1 / the faster copy of one \
             frame (memcpy or memcpy-nt) measured in this run on the producer's CPU; the \
             paced rows publish {} frames a second, so their latency is the hand-off's, not \
             queueing; copies_witnessed is 1 (the producer's copy of the pixels) + the bytes \
             through read/write of every process per frame over the frame's bytes{}",
            options.frame_seconds,
            crate::frames::PACE_FPS,
            if report.frames.iter().any(|f| f.transport == "iceoryx2") {
                "; the iceoryx2 rows (built with --peers) are p1p2-iceoryx2-peer stream-pub \
                 and stream-sub: the same frames and checks, one copy into a loaned sample, \
                 the publisher retrying a full subscriber queue (every subscriber gets every \
                 frame), the subscribers polling (see docs/streaming.md)"
            } else {
                "; no iceoryx2 frame row without --peers (see docs/streaming.md)"
            }
        ));
    }
    if let Some(version) = python {
        notes.push(format!(
            "python rows: Python {version}; its receiver checks the stamp of every payload and \
             the checksum of the last"
        ));
    }
    notes
}

/// A free TCP port on the loopback address (the peer binds it at once).
fn free_loopback_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 47_801)))
}
