//! The benchmark driver behind `p1p2-bench`: plans the cases, runs each one
//! (memcpy in this process; every transport as two real processes, the
//! `p1p2-bench-peer` binary as sender and receiver; the Python baseline as
//! `scripts/python_baseline.py`), and writes the report.
//!
//! A case that fails (a peer dies, times out, or finds a payload wrong) is
//! recorded in the report's notes and the run goes on; its segment and
//! socket files are removed. Every wait is bounded: a case that outlives its
//! limit has its processes terminated (SIGTERM, then SIGKILL).

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use serde::Deserialize;

use super::checksum::PageBuf;
use super::peer::{self, PeerReport, Spec, Test};
use super::plan::Budget;
use super::{Case, CaseResult, Config, LatencyResult, Machine, Mode, Pin, Report, Transport};
use common::error::{Error, Result};
use common::ledger::{Meter, Usage};
use common::name::{socket_dir, SHM_DIR};
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
    pub transports: Vec<Transport>,
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
    /// Rounds per throughput case: the cases of one size run in turn, this
    /// many times, each with its share of the budget, and each case's
    /// samples are merged (ignored with `runs`).
    pub rounds: usize,
    /// Measured round trips per latency case.
    pub round_trips: usize,
    /// Size of a latency message.
    pub message_bytes: u64,
    /// Slots of the pipelined segment.
    pub slots: u32,
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

/// One unit of work.
#[derive(Clone, Debug)]
enum Job {
    Memcpy(Case),
    Peers(Case),
    Python(Case),
    Iceoryx2(Case),
    Latency {
        transport: Transport,
        pin: Pin,
        variant: &'static str,
    },
}

impl Job {
    fn label(&self, message_bytes: u64) -> String {
        match self {
            Job::Memcpy(c) | Job::Peers(c) | Job::Python(c) | Job::Iceoryx2(c) => c.to_string(),
            Job::Latency {
                transport,
                pin,
                variant,
            } => format!(
                "{transport} round trip {variant} pin={pin} {}",
                super::export::human_bytes(message_bytes)
            ),
        }
    }
}

/// A row of either table.
enum Row {
    Throughput(CaseResult),
    Latency(LatencyResult),
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
    let cpus = peer::allowed_cpus();
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
    let rounds = driver.rounds();
    let blocks = blocks(&jobs);
    let steps: usize = blocks
        .iter()
        .map(|b| {
            b.len()
                * if b.len() > 1 || is_throughput(&b[0]) {
                    rounds
                } else {
                    1
                }
        })
        .sum();
    let bar = common::progress::steps(steps as u64);
    let mut report = Report::new(Machine::detect());
    report.config = Some(driver.config());
    for block in blocks {
        let rounds = if is_throughput(&block[0]) { rounds } else { 1 };
        let mut parts: Vec<Option<Vec<CaseResult>>> = vec![Some(Vec::new()); block.len()];
        for round in 0..rounds {
            for (job, part) in block.iter().zip(parts.iter_mut()) {
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
                match driver.run_job(job, &bar) {
                    Ok(Some(Row::Throughput(row))) => {
                        bar.println(format!(
                            "{label}: {} runs, median {}, {:.0} MB/s",
                            row.runs,
                            super::export::human_ns(row.median_ns),
                            row.gbps * 1e3
                        ));
                        if let Some(p) = part.as_mut() {
                            p.push(row);
                        }
                    }
                    Ok(Some(Row::Latency(row))) => {
                        bar.println(format!(
                            "{label}: {} round trips, median {}",
                            row.round_trips,
                            super::export::human_ns(row.median_ns)
                        ));
                        report.latency.push(row);
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
        report
            .results
            .extend(parts.into_iter().flatten().filter_map(merge));
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
    report.notes.extend(
        super::targets::evaluate(&report)
            .iter()
            .map(super::targets::Verdict::line),
    );
    let files = super::write_all(&report, &options.out)?;
    Ok(Outcome {
        report,
        files,
        failed: driver.failed,
    })
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
                for &transport in Transport::ALL {
                    if !o.transports.contains(&transport) {
                        continue;
                    }
                    let case = |mode| Case {
                        transport,
                        mode,
                        pin,
                        bytes,
                    };
                    match transport {
                        Transport::Memcpy => jobs.push(Job::Memcpy(case(Mode::Steady))),
                        Transport::Shm => {
                            jobs.push(Job::Peers(case(Mode::Steady)));
                            if o.cold {
                                jobs.push(Job::Peers(case(Mode::Cold)));
                            }
                        }
                        Transport::ShmPipelined | Transport::Unix | Transport::Tcp => {
                            jobs.push(Job::Peers(case(Mode::Steady)))
                        }
                        Transport::PythonShm | Transport::PythonArray if python_ok => {
                            jobs.push(Job::Python(case(Mode::Steady)))
                        }
                        Transport::PythonShm | Transport::PythonArray => {}
                        Transport::Iceoryx2 if o.iceoryx2_peer.is_some() => {
                            jobs.push(Job::Iceoryx2(case(Mode::Steady)))
                        }
                        Transport::Iceoryx2 => {}
                    }
                }
            }
        }
        if o.transports.contains(&Transport::Iceoryx2) && o.iceoryx2_peer.is_none() {
            self.notes.push(
                "iceoryx2 rows skipped: this p1p2-bench was built without the iceoryx2 \
                 feature (scripts/bench.sh --peers builds it)"
                    .into(),
            );
        }
        for &pin in &o.latency_pins {
            for transport in [Transport::Shm, Transport::Unix, Transport::Tcp] {
                jobs.push(Job::Latency {
                    transport,
                    pin,
                    variant: "blocking",
                });
                if transport == Transport::Shm && pin == Pin::Split && !o.spin.is_zero() {
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

    /// Whether the Python baseline can run; notes why not.
    fn python_ready(&mut self) -> bool {
        let o = self.options;
        let wanted = o.transports.contains(&Transport::PythonShm)
            || o.transports.contains(&Transport::PythonArray);
        if !wanted {
            return false;
        }
        let Some(script) = &o.python_script else {
            self.notes.push("python rows skipped (--no-python)".into());
            return false;
        };
        if !script.is_file() {
            self.notes.push(format!(
                "python rows skipped: {} not found",
                script.display()
            ));
            return false;
        }
        let ok = Command::new(&o.python)
            .args(["-c", "import multiprocessing.shared_memory"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            self.notes.push(format!(
                "python rows skipped: {} not found, or without multiprocessing.shared_memory",
                o.python
            ));
        }
        ok
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

    fn run_job(&mut self, job: &Job, bar: &ProgressBar) -> Result<Option<Row>> {
        signals::check()?;
        match job {
            Job::Memcpy(case) => {
                let budget = self.budget(case.bytes);
                let cpu = self.placement(case.pin).0;
                memcpy(*case, budget, cpu).map(|r| Some(Row::Throughput(r)))
            }
            Job::Peers(case) => self.peers(*case, None, bar),
            Job::Iceoryx2(case) => {
                let bin = self.options.iceoryx2_peer.clone();
                self.peers(*case, bin, bar)
            }
            Job::Python(case) => self.python(*case, bar),
            Job::Latency {
                transport,
                pin,
                variant,
            } => self.latency(*transport, *pin, variant, bar),
        }
    }

    fn spec(&mut self, case: Case, test: Test, budget: Budget, cpu: Option<usize>) -> Spec {
        let name = self.next_name();
        let addr = (case.transport == Transport::Tcp).then(free_loopback_addr);
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
            spin_us: self.spin_for(case.pin),
            timeout_ms: self.options.timeout.as_millis() as u64,
            progress: common::progress::enabled(),
        }
    }

    /// A throughput case with two peer processes: the peer binary, or the
    /// iceoryx2 peer binary, in both roles.
    fn peers(
        &mut self,
        case: Case,
        iceoryx2: Option<PathBuf>,
        bar: &ProgressBar,
    ) -> Result<Option<Row>> {
        let budget = self.budget(case.bytes);
        let (cpu_s, cpu_r) = self.placement(case.pin);
        let sender = self.spec(case, Test::Throughput, budget, cpu_s);
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
        Ok(Some(Row::Throughput(row)))
    }

    fn latency(
        &mut self,
        transport: Transport,
        pin: Pin,
        variant: &'static str,
        bar: &ProgressBar,
    ) -> Result<Option<Row>> {
        let rt = self.options.round_trips.max(1);
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
        let mut sender = self.spec(case, Test::Latency, budget, cpu_s);
        sender.progress = false;
        if variant != "spin" {
            sender.spin_us = 0;
        }
        let receiver = Spec {
            cpu: cpu_r,
            ..sender.clone()
        };
        let (s, _) = self.run_pair(&sender, &receiver, None, case.bytes, bar)?;
        let row = LatencyResult::from_samples(transport, pin, case.bytes, variant, s.samples_ns)
            .ok_or_else(|| Error::Usage("the sender measured no round trip".into()))?;
        Ok(Some(Row::Latency(row)))
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
            let receiver_proc = Proc::start("receiver", bin, &args(receiver, "receiver"), None)?;
            let sender_proc = Proc::start("sender", bin, &args(sender, "sender"), Some(tx));
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

    /// A Python baseline case: one `python3 scripts/python_baseline.py` run.
    fn python(&mut self, case: Case, bar: &ProgressBar) -> Result<Option<Row>> {
        let o = self.options;
        let script = o.python_script.clone().expect("checked in plan");
        let budget = self.budget(case.bytes);
        let (cpu_s, cpu_r) = self.placement(case.pin);
        let name = self.next_name();
        let mode = match case.transport {
            Transport::PythonArray => "array",
            _ => "shm",
        };
        let cpu = |c: Option<usize>| c.map_or("-1".to_string(), |c| c.to_string());
        let args: Vec<String> = vec![
            script.display().to_string(),
            "--mode".into(),
            mode.into(),
            "--bytes".into(),
            case.bytes.to_string(),
            "--warmup".into(),
            budget.warmup.to_string(),
            "--time-ms".into(),
            budget.time.as_millis().to_string(),
            "--min-runs".into(),
            budget.min_runs.to_string(),
            "--max-runs".into(),
            budget.max_runs.to_string(),
            "--hard-ms".into(),
            budget.hard.as_millis().to_string(),
            "--sender-cpu".into(),
            cpu(cpu_s),
            "--receiver-cpu".into(),
            cpu(cpu_r),
            "--name".into(),
            format!("p1p2.{name}"),
            "--timeout".into(),
            o.timeout.as_secs().max(1).to_string(),
        ];
        let (tx, rx) = mpsc::channel();
        let result = (|| {
            let proc = Proc::start("python", Path::new(&o.python), &args, Some(tx))?;
            let limit = self.limit(&budget) + budget.longest();
            let mut outputs = wait_all(vec![proc], limit, &rx, bar, case.bytes)?;
            outputs
                .pop()
                .expect("one output")
                .report::<PythonReport>()
                .map_err(Error::PeerGone)
        })();
        if result.is_err() {
            remove_leftovers(&name);
        }
        let py = result?;
        let mut row = CaseResult::from_samples(
            case,
            py.samples_ns,
            py.warmup,
            py.copies,
            py.syscalls.unwrap_or(0.0),
        )
        .ok_or_else(|| Error::Usage("the Python baseline measured no transfer".into()))?
        .with_cpu_ms(py.cpu_user_ms, py.cpu_sys_ms);
        self.python_version.get_or_insert(py.python);
        let mut notes = Vec::new();
        if py.capped {
            notes.push(format!(
                "capped by the time limit at {} runs (minimum {})",
                py.runs, budget.min_runs
            ));
        }
        if py.syscalls.is_none() {
            notes.push("no /proc/self/io here: syscalls not counted (0)".into());
        }
        if !notes.is_empty() {
            row = row.with_note(notes.join("; "));
        }
        if py.capped {
            self.notes.push(format!(
                "{case}: Python was capped by the time limit at {} runs",
                py.runs
            ));
        }
        Ok(Some(Row::Throughput(row)))
    }

    /// Removes files of this run's cases that failed; returns how many, if any.
    fn sweep(&self) -> Option<usize> {
        let n = remove_leftovers(&format!("bench-{}-", std::process::id()));
        (n > 0).then_some(n)
    }
}

/// Whether a job is a throughput case (run in rounds) rather than a
/// latency case.
fn is_throughput(job: &Job) -> bool {
    !matches!(job, Job::Latency { .. })
}

/// The jobs cut into blocks that run in rounds together: the throughput
/// cases of one placement and size; each latency case alone.
fn blocks(jobs: &[Job]) -> Vec<Vec<Job>> {
    let key = |job: &Job| match job {
        Job::Memcpy(c) | Job::Peers(c) | Job::Python(c) | Job::Iceoryx2(c) => {
            Some((c.pin, c.bytes))
        }
        Job::Latency { .. } => None,
    };
    let mut out: Vec<Vec<Job>> = Vec::new();
    for job in jobs {
        match out.last_mut() {
            Some(block) if key(job).is_some() && key(&block[0]) == key(job) => {
                block.push(job.clone())
            }
            _ => out.push(vec![job.clone()]),
        }
    }
    out
}

/// One case's rounds as one row: every sample, warm-ups and CPU time added
/// up, copies and system calls per transfer weighted by each round's runs,
/// the rounds' distinct notes. `None` without rounds.
fn merge(parts: Vec<CaseResult>) -> Option<CaseResult> {
    if parts.len() <= 1 {
        return parts.into_iter().next();
    }
    let runs: usize = parts.iter().map(|p| p.runs).sum();
    let weighted = |f: fn(&CaseResult) -> f64| {
        parts.iter().map(|p| f(p) * p.runs as f64).sum::<f64>() / runs.max(1) as f64
    };
    let samples: Vec<u64> = parts
        .iter()
        .flat_map(|p| p.samples_ns.iter().copied())
        .collect();
    let warmup = parts.iter().map(|p| p.warmup).sum();
    let mut row = CaseResult::from_samples(
        parts[0].case(),
        samples,
        warmup,
        weighted(|p| p.copies),
        weighted(|p| p.syscalls),
    )?;
    let user: Option<f64> = parts.iter().map(|p| p.cpu_user_ms).sum();
    let sys: Option<f64> = parts.iter().map(|p| p.cpu_sys_ms).sum();
    if let (Some(user), Some(sys)) = (user, sys) {
        row = row.with_cpu_ms(user, sys);
    }
    let mut notes: Vec<&str> = Vec::new();
    for note in parts.iter().filter_map(|p| p.note.as_deref()) {
        if !notes.contains(&note) {
            notes.push(note);
        }
    }
    if !notes.is_empty() {
        row = row.with_note(notes.join("; "));
    }
    Some(row)
}

/// Notes on how the rows were made, once per report.
fn method_notes(options: &Options, report: &Report, python: Option<&str>) -> Vec<String> {
    let has = |t: Transport| report.results.iter().any(|r| r.transport == t);
    let mut notes = Vec::new();
    if options.runs.is_none() && options.rounds > 1 && !report.results.is_empty() {
        notes.push(format!(
            "each throughput case ran in {} rounds, taking turns with the other cases of its \
             size, each round in fresh processes with its own warm-up; a row merges the \
             rounds' samples",
            options.rounds
        ));
    }
    if has(Transport::Memcpy) {
        notes.push(
            "memcpy: one copy between two hot, page-aligned buffers in one process, on the \
             sender's CPU; below 1 MiB each sample is the mean of 1 MiB / size copies"
                .to_string(),
        );
    }
    if has(Transport::ShmPipelined) {
        notes.push(format!(
            "shm-pipelined: {} slots; a sample is the interval between two acknowledgements",
            options.slots.max(2)
        ));
    }
    if options.pins.contains(&Pin::Split) || options.latency_pins.contains(&Pin::Split) {
        notes.push(if options.spin.is_zero() {
            "shared-memory waits sleep on the futex at once (--spin-us 0)".to_string()
        } else {
            format!(
                "with pin=split, shared-memory waits spin up to {} µs before sleeping on the futex",
                options.spin.as_micros()
            )
        });
    }
    if let Some(version) = python {
        notes.push(format!(
            "python rows: Python {version}; its receiver checks the stamp of every payload and \
             the checksum of the last"
        ));
    }
    notes
}

/// What `scripts/python_baseline.py` prints.
#[derive(Debug, Deserialize)]
struct PythonReport {
    warmup: usize,
    runs: usize,
    samples_ns: Vec<u64>,
    copies: f64,
    syscalls: Option<f64>,
    cpu_user_ms: f64,
    cpu_sys_ms: f64,
    capped: bool,
    python: String,
}

/// memcpy in this process, on the sender's CPU: the one-copy ceiling.
///
/// Below 1 MiB a sample is the mean of a batch of `1 MiB / size` copies, so
/// that reading the clock (tens of nanoseconds) does not count as copying.
fn memcpy(case: Case, budget: Budget, cpu: Option<usize>) -> Result<CaseResult> {
    let saved = peer::affinity()?;
    if let Some(cpu) = cpu {
        peer::pin_to(cpu)?;
    }
    let n = case.bytes as usize;
    // Page-aligned, like the sender's source and a segment's payload.
    let src = PageBuf::pattern(n);
    let mut dst = PageBuf::pattern(n);
    let batch = ((1usize << 20) / n).max(1);
    let copy = |dst: &mut PageBuf| {
        for _ in 0..batch {
            dst.as_mut_slice()
                .copy_from_slice(std::hint::black_box(src.as_slice()));
            std::hint::black_box(dst.as_mut_slice());
        }
    };
    for _ in 0..budget.warmup.max(1) {
        copy(&mut dst);
    }
    let meter = Meter::start();
    let usage = Usage::read_self();
    let started = Instant::now();
    let mut samples = Vec::with_capacity(budget.max_runs.min(1 << 20));
    while budget.more(samples.len(), started.elapsed()) {
        let t0 = Instant::now();
        copy(&mut dst);
        samples.push((t0.elapsed().as_nanos() / batch as u128) as u64);
    }
    let usage = Usage::read_self().since(&usage);
    let io = meter.finish().proc_io;
    peer::set_affinity(&saved)?;
    let syscalls = io.map_or(0.0, |io| {
        (io.syscr + io.syscw) as f64 / samples.len().max(1) as f64
    });
    let row = CaseResult::from_samples(case, samples, budget.warmup.max(1), 1.0, syscalls)
        .ok_or_else(|| Error::Usage("memcpy measured nothing".into()))?
        .with_cpu_ms(
            usage.user.as_secs_f64() * 1e3,
            usage.system.as_secs_f64() * 1e3,
        );
    Ok(row)
}

/// A free TCP port on the loopback address (the peer binds it at once).
fn free_loopback_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 47_801)))
}

/// A running child process whose stdout is collected and whose stderr is
/// scanned for progress lines.
struct Proc {
    who: &'static str,
    child: Child,
    stdout: Option<JoinHandle<Vec<u8>>>,
    stderr: Option<JoinHandle<String>>,
    status: Option<ExitStatus>,
}

/// A finished child process.
struct Output {
    who: &'static str,
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: String,
}

impl Output {
    /// Its JSON report, or a one-line reason it has none.
    fn report<T: for<'de> Deserialize<'de>>(&self) -> std::result::Result<T, String> {
        if !self.status.success() {
            let message = self.stderr.trim();
            return Err(format!(
                "{} {}: {}",
                self.who,
                describe(self.status),
                if message.is_empty() {
                    "no message"
                } else {
                    message
                }
            ));
        }
        let text = String::from_utf8_lossy(&self.stdout);
        let line = text.lines().last().unwrap_or("");
        serde_json::from_str(line).map_err(|e| {
            format!(
                "{} printed no report ({e}): {}",
                self.who,
                self.stderr.trim()
            )
        })
    }
}

fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        _ => "failed".into(),
    }
}

impl Proc {
    fn start(
        who: &'static str,
        bin: &Path,
        args: &[String],
        progress: Option<mpsc::Sender<(usize, u64)>>,
    ) -> Result<Proc> {
        let mut child = Command::new(bin)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::io(format!("start {}", bin.display()), e))?;
        let mut out = child.stdout.take().expect("piped");
        let err = child.stderr.take().expect("piped");
        let stdout = std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = out.read_to_end(&mut buf);
            buf
        });
        let stderr = std::thread::spawn(move || {
            let mut kept = String::new();
            for line in BufReader::new(err).lines().map_while(|l| l.ok()) {
                if let Some(rest) = line.strip_prefix("progress ") {
                    let mut parts = rest.split_whitespace().map(|p| p.parse::<u64>().ok());
                    if let (Some(Some(runs)), Some(Some(ns)), Some(tx)) =
                        (parts.next(), parts.next(), &progress)
                    {
                        let _ = tx.send((runs as usize, ns));
                    }
                    continue;
                }
                if !kept.is_empty() {
                    kept.push(' ');
                }
                kept.push_str(line.trim());
            }
            kept
        });
        Ok(Proc {
            who,
            child,
            stdout: Some(stdout),
            stderr: Some(stderr),
            status: None,
        })
    }

    fn poll(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    fn signal(&mut self, signal: rustix::process::Signal) {
        if self.status.is_some() {
            return;
        }
        if let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process(pid, signal);
        }
    }

    fn output(mut self) -> Output {
        let status = match self.status {
            Some(s) => s,
            None => self.child.wait().expect("wait for a child"),
        };
        Output {
            who: self.who,
            status,
            stdout: self
                .stdout
                .take()
                .and_then(|h| h.join().ok())
                .unwrap_or_default(),
            stderr: self
                .stderr
                .take()
                .and_then(|h| h.join().ok())
                .unwrap_or_default(),
        }
    }
}

/// Waits for every process, at most `limit`. Once one fails, the others get
/// a few seconds to notice, then are ended. A signal to this process ends
/// them all and returns [`Error::Interrupted`].
fn wait_all(
    mut procs: Vec<Proc>,
    limit: Duration,
    progress: &mpsc::Receiver<(usize, u64)>,
    bar: &ProgressBar,
    bytes: u64,
) -> Result<Vec<Output>> {
    let started = Instant::now();
    let mut failed_at: Option<Instant> = None;
    loop {
        show_progress(progress, bar, bytes, Duration::from_millis(10));
        let mut running = 0;
        for p in &mut procs {
            match p.poll() {
                Some(status) if !status.success() => {
                    failed_at.get_or_insert_with(Instant::now);
                }
                Some(_) => {}
                None => running += 1,
            }
        }
        if running == 0 {
            return Ok(procs.into_iter().map(Proc::output).collect());
        }
        if let Some(signal) = signals::received() {
            finish_all(procs, Duration::from_secs(2), progress, bar, bytes);
            return Err(Error::Interrupted(signal));
        }
        let timed_out = started.elapsed() >= limit;
        let peer_gone = failed_at.is_some_and(|t| t.elapsed() >= Duration::from_secs(3));
        if timed_out || peer_gone {
            let outputs = finish_all(procs, Duration::from_secs(2), progress, bar, bytes);
            if timed_out {
                return Err(Error::Timeout {
                    what: format!(
                        "the case did not finish ({})",
                        outputs
                            .iter()
                            .map(|o| format!("{} {}", o.who, describe(o.status)))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    waited: started.elapsed(),
                });
            }
            return Ok(outputs);
        }
    }
}

/// Ends the processes still running: SIGTERM (they clean up and exit), and
/// SIGKILL for those still there after `grace`.
fn finish_all(
    mut procs: Vec<Proc>,
    grace: Duration,
    progress: &mpsc::Receiver<(usize, u64)>,
    bar: &ProgressBar,
    bytes: u64,
) -> Vec<Output> {
    for p in &mut procs {
        p.signal(rustix::process::Signal::TERM);
    }
    let started = Instant::now();
    while procs.iter_mut().any(|p| p.poll().is_none()) && started.elapsed() < grace {
        show_progress(progress, bar, bytes, Duration::from_millis(10));
    }
    for p in &mut procs {
        p.signal(rustix::process::Signal::KILL);
    }
    procs.into_iter().map(Proc::output).collect()
}

/// Shows the sender's latest progress line, waiting at most `wait` for one.
fn show_progress(
    progress: &mpsc::Receiver<(usize, u64)>,
    bar: &ProgressBar,
    bytes: u64,
    wait: Duration,
) {
    let mut latest = progress.recv_timeout(wait).ok();
    while let Ok(p) = progress.try_recv() {
        latest = Some(p);
    }
    if let Some((runs, ns)) = latest {
        let label = bar.message();
        let base = label.split(" — ").next().unwrap_or("").to_string();
        let mbps = if ns > 0 {
            bytes as f64 * 1e3 / ns as f64
        } else {
            0.0
        };
        bar.set_message(format!("{base} — {runs} runs, {mbps:.0} MB/s"));
    }
}

/// Removes the files iceoryx2 made for case `name` in /dev/shm (the iceoryx2
/// peer gives them the prefix `p1p2_iox2.NAME.`), its persistent node
/// counter included. Only called once the case's processes have exited.
fn remove_iceoryx2_files(name: &str) {
    let prefix = format!("p1p2_iox2.{name}.");
    for entry in std::fs::read_dir(SHM_DIR).into_iter().flatten().flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Removes this project's files in /dev/shm and the socket directory whose
/// name contains `.{name}` (a case name, or a prefix of case names ending in
/// `-`); returns how many. Only called once the processes that made them
/// have exited.
fn remove_leftovers(name: &str) -> usize {
    let mut removed = 0;
    for dir in [PathBuf::from(SHM_DIR), socket_dir()] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let file = entry.file_name().to_string_lossy().into_owned();
            if !file.starts_with(common::name::FILE_PREFIX) {
                continue;
            }
            let ours = if name.ends_with('-') {
                file.contains(&format!(".{name}"))
            } else {
                file.ends_with(&format!(".{name}")) || file.contains(&format!(".{name}."))
            };
            if ours && std::fs::remove_file(dir.join(&file)).is_ok() {
                removed += 1;
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leftovers_are_matched_by_case_name_only() {
        let me = format!("bench-unit{}-7", std::process::id());
        let other = format!("bench-unit{}-77", std::process::id());
        let paths: Vec<PathBuf> = [
            format!("p1p2.{me}"),
            format!("p1p2.{me}.3"),
            format!("p1p2.{other}"),
        ]
        .iter()
        .map(|f| Path::new(SHM_DIR).join(f))
        .collect();
        for p in &paths {
            std::fs::write(p, b"x").unwrap();
        }
        assert_eq!(remove_leftovers(&me), 2);
        assert!(paths[2].exists());
        assert_eq!(remove_leftovers(&other), 1);
        assert!(paths.iter().all(|p| !p.exists()));
    }

    #[test]
    fn rounds_merge_into_one_row() {
        let case = Case {
            transport: Transport::Unix,
            mode: Mode::Steady,
            pin: Pin::Split,
            bytes: 4096,
        };
        let a = CaseResult::from_samples(case, vec![10, 20], 1, 2.0, 4.0)
            .unwrap()
            .with_cpu_ms(1.0, 2.0)
            .with_note("x");
        let b = CaseResult::from_samples(case, vec![30, 40, 50, 60], 1, 2.0, 7.0)
            .unwrap()
            .with_cpu_ms(3.0, 4.0)
            .with_note("x");
        let m = merge(vec![a.clone(), b]).unwrap();
        assert_eq!(m.samples_ns, [10, 20, 30, 40, 50, 60]);
        assert_eq!((m.runs, m.warmup), (6, 2));
        assert_eq!(m.median_ns, 35.0);
        assert_eq!(m.copies, 2.0);
        // (4 * 2 + 7 * 4) / 6 system calls per transfer.
        assert_eq!(m.syscalls, 6.0);
        assert_eq!((m.cpu_user_ms, m.cpu_sys_ms), (Some(4.0), Some(6.0)));
        assert_eq!(m.note.as_deref(), Some("x"));
        assert_eq!(merge(vec![a.clone()]), Some(a));
        assert_eq!(merge(Vec::new()), None);
    }

    #[test]
    fn blocks_group_the_throughput_cases_of_one_size() {
        let case = |transport, bytes| Case {
            transport,
            mode: Mode::Steady,
            pin: Pin::Split,
            bytes,
        };
        let jobs = vec![
            Job::Memcpy(case(Transport::Memcpy, 4096)),
            Job::Peers(case(Transport::Shm, 4096)),
            Job::Peers(case(Transport::Shm, 8192)),
            Job::Latency {
                transport: Transport::Shm,
                pin: Pin::Same,
                variant: "blocking",
            },
            Job::Latency {
                transport: Transport::Unix,
                pin: Pin::Same,
                variant: "blocking",
            },
        ];
        let sizes: Vec<usize> = blocks(&jobs).iter().map(Vec::len).collect();
        assert_eq!(sizes, [2, 1, 1, 1]);
    }

    #[test]
    fn memcpy_measures_the_budget_and_counts_one_copy() {
        let case = Case {
            transport: Transport::Memcpy,
            mode: Mode::Steady,
            pin: Pin::None,
            bytes: 4096,
        };
        let r = memcpy(case, Budget::fixed(5), None).unwrap();
        assert_eq!(r.runs, 5);
        assert_eq!(r.samples_ns.len(), 5);
        assert_eq!(r.copies, 1.0);
        assert!(r.gbps > 0.0);
    }
}
