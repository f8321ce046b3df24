//! The processes of a case: started, waited for within a limit, and ended.
//!
//! The processes of a case: started with their output collected and their
//! progress lines forwarded, waited for within a limit, and ended (SIGTERM,
//! then SIGKILL) when they outlive it, when one of them fails, or on a
//! signal to the driver.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use serde::Deserialize;

use common::error::{Error, Result};
use common::signals;

/// A running child process whose stdout is collected and whose stderr is
/// scanned for progress lines.
pub(super) struct Running {
    who: &'static str,
    child: Child,
    stdout: Option<JoinHandle<Vec<u8>>>,
    stderr: Option<JoinHandle<String>>,
    status: Option<ExitStatus>,
}

/// A finished child process.
pub(super) struct Output {
    who: &'static str,
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: String,
}

impl Output {
    /// Its JSON report, or a one-line reason it has none.
    pub(super) fn report<T: for<'de> Deserialize<'de>>(&self) -> std::result::Result<T, String> {
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

impl Running {
    pub(super) fn start(
        who: &'static str,
        bin: &Path,
        args: &[String],
        progress: Option<mpsc::Sender<(usize, u64)>>,
    ) -> Result<Running> {
        Running::spawn(who, Command::new(bin), bin, args, progress)
    }

    /// Starts `bin` pinned to `cpu` (when given) from its first instruction:
    /// the affinity is set in the child between fork and exec.
    pub(super) fn start_pinned(
        who: &'static str,
        bin: &Path,
        args: &[String],
        cpu: Option<usize>,
    ) -> Result<Running> {
        let mut command = Command::new(bin);
        if let Some(cpu) = cpu {
            use std::os::unix::process::CommandExt;
            let mut set = rustix::thread::CpuSet::new();
            if cpu >= rustix::thread::CpuSet::MAX_CPU {
                return Err(Error::Usage(format!("CPU {cpu} does not exist")));
            }
            set.set(cpu);
            // SAFETY: the closure runs in the child between fork and exec,
            // where only async-signal-safe calls are allowed: it makes one
            // system call (sched_setaffinity) on a set built before the
            // fork, and allocates nothing.
            unsafe {
                command.pre_exec(move || {
                    rustix::thread::sched_setaffinity(None, &set).map_err(std::io::Error::from)
                });
            }
        }
        Running::spawn(who, command, bin, args, None)
    }

    fn spawn(
        who: &'static str,
        mut command: Command,
        bin: &Path,
        args: &[String],
        progress: Option<mpsc::Sender<(usize, u64)>>,
    ) -> Result<Running> {
        let mut child = command
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
        Ok(Running {
            who,
            child,
            stdout: Some(stdout),
            stderr: Some(stderr),
            status: None,
        })
    }

    /// The process id.
    pub(super) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its exit status once it has exited (reaping it), else `None`.
    pub(super) fn poll(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    /// Sends `signal`, unless it has exited.
    pub(super) fn signal(&mut self, signal: rustix::process::Signal) {
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
pub(super) fn wait_all(
    mut procs: Vec<Running>,
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
            return Ok(procs.into_iter().map(Running::output).collect());
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
pub(super) fn finish_all(
    mut procs: Vec<Running>,
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
    procs.into_iter().map(Running::output).collect()
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
