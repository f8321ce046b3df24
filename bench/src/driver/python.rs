//! The Python baseline rows, one run of `scripts/python_baseline.py` per case.
//!
//! The Python baseline rows: one run of `scripts/python_baseline.py` per
//! case, whose main process sends and whose `multiprocessing` child
//! receives, read back from the one JSON line it prints.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use indicatif::ProgressBar;
use serde::Deserialize;

use super::child::{wait_all, Running};
use crate::case::{Case, Channel};
use crate::plan::Budget;
use crate::report::CaseResult;
use common::error::{Error, Result};

/// Whether the baseline can run with the interpreter `python` and `script`
/// (`None`: not asked for); `Err` holds the note that says why not.
pub(super) fn check(python: &str, script: Option<&Path>) -> std::result::Result<(), String> {
    let Some(script) = script else {
        return Err("python rows skipped (--no-python)".into());
    };
    if !script.is_file() {
        return Err(format!(
            "python rows skipped: {} not found",
            script.display()
        ));
    }
    let ok = Command::new(python)
        .args(["-c", "import multiprocessing.shared_memory"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        return Err(format!(
            "python rows skipped: {python} not found, or without multiprocessing.shared_memory"
        ));
    }
    Ok(())
}

/// How the baseline is run.
pub(super) struct Baseline<'a> {
    /// The interpreter.
    pub(super) python: &'a str,
    /// `scripts/python_baseline.py`.
    pub(super) script: &'a Path,
    /// Longest the script's processes wait for each other.
    pub(super) timeout: Duration,
}

/// What one run of the baseline gave.
pub(super) struct BaselineRun {
    /// The case's row.
    pub(super) row: CaseResult,
    /// The interpreter's version, e.g. "3.11.2".
    pub(super) python: String,
    /// Measured runs.
    pub(super) runs: usize,
    /// Whether the hard time limit stopped it below its minimum count.
    pub(super) capped: bool,
}

impl Baseline<'_> {
    /// Runs `case` once with `budget`, the sender and receiver pinned to
    /// `cpus`, the segment named after `name`, ending the script after
    /// `limit`.
    ///
    /// # Errors
    /// The script failed, printed no report, measured nothing, outlived
    /// `limit`, or a signal arrived.
    pub(super) fn run(
        &self,
        case: Case,
        budget: Budget,
        (cpu_s, cpu_r): (Option<usize>, Option<usize>),
        name: &str,
        limit: Duration,
        bar: &ProgressBar,
    ) -> Result<BaselineRun> {
        let script = self.script;
        let mode = match case.transport {
            Channel::PythonArray => "array",
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
            self.timeout.as_secs().max(1).to_string(),
        ];
        let (tx, rx) = mpsc::channel();
        let proc = Running::start("python", Path::new(self.python), &args, Some(tx))?;
        let py = wait_all(vec![proc], limit, &rx, bar, case.bytes)?
            .pop()
            .expect("one output")
            .report::<PythonReport>()
            .map_err(Error::PeerGone)?;
        let mut row = CaseResult::from_samples(
            case,
            py.samples_ns,
            py.warmup,
            py.copies,
            py.syscalls.unwrap_or(0.0),
        )
        .ok_or_else(|| Error::Usage("the Python baseline measured no transfer".into()))?
        .with_cpu_ms(py.cpu_user_ms, py.cpu_sys_ms);
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
        Ok(BaselineRun {
            row,
            python: py.python,
            runs: py.runs,
            capped: py.capped,
        })
    }
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
