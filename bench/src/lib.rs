//! The benchmark behind `p1p2-bench` and the demo's comparison behind
//! `p1p2-compare`: the same transfer over shared memory, sockets, memcpy and
//! Python, measured with the product's own segment, lock and wait code
//! (`common`), and the files that report it.
//!
//! # The report
//! A benchmark is, for every case (transport × mode × pinning × payload size),
//! some unmeasured warm-up transfers followed by measured ones. Each measured
//! transfer contributes one sample in nanoseconds. [`CaseResult::from_samples`]
//! keeps every raw sample and computes the statistics from them, so that the
//! JSON file can be re-analysed or re-plotted later without measuring again.
//!
//! The JSON key names are a stable interface for other tools:
//!
//! ```text
//! {"machine": {...}, "config": {...},
//!  "results": [{"transport": "shm", "mode": "steady", "pin": "split",
//!               "bytes": 8388608, "runs": 50, "median_ns": ..., "p10_ns": ...,
//!               "p90_ns": ..., "gbps": ..., "copies": ..., "syscalls": ...,
//!               "samples_ns": [...], ...}, ...],
//!  "latency": [{"transport": ..., "pin": ..., "bytes": 64, "variant": ...,
//!               "median_ns": ..., "p99_ns": ..., ...}, ...],
//!  "notes": [...]}
//! ```
//!
//! Every floating-point value that the constructors compute is finite (a zero
//! median gives a throughput of 0, not infinity), because JSON has no NaN or
//! infinity and `serde_json` would write them as `null`.
//!
//! # Modules
//! - [`stats`] computes percentiles, mean, deviation and spread warnings;
//! - [`export`] writes `results.json`, `results.csv`, `latency.csv` and
//!   `results.md`;
//! - [`plot`] draws `throughput.svg`;
//! - [`plan`] parses sizes and decides how many runs a case gets;
//! - [`checksum`] is the payload's pattern, stamp and checksum;
//! - [`peer`] is the sender's and the receiver's side of a case, run by the
//!   `p1p2-bench-peer` binary;
//! - [`driver`] runs every case and writes the files;
//! - [`compare`] is the demo's side-by-side table of the transports;
//! - [`siblings`] finds the executables the drivers start.

pub mod checksum;
pub mod compare;
pub mod driver;
pub mod export;
pub mod peer;
pub mod plan;
pub mod plot;
pub mod siblings;
pub mod stats;
pub mod targets;
#[cfg(test)]
mod testdata;

use std::fmt;
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use common::error::Error;

pub use export::{write_all, Format, Ratios};

/// Defines a field-less enum that serialises as the given kebab-case words,
/// with `ALL` in its
/// sort order, `as_str`, `Display` and `FromStr`.
macro_rules! word_enum {
    (
        $(#[$meta:meta])*
        $name:ident, $what:literal {
            $($(#[$vmeta:meta])* $variant:ident => $text:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant,)+
        }

        impl $name {
            /// Every value, in the order tables and plots list them.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The name used in JSON, CSV, tables and on the command line.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = Error;

            fn from_str(s: &str) -> Result<Self, Error> {
                $name::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| {
                        let names: Vec<&str> = $name::ALL.iter().map(|v| v.as_str()).collect();
                        Error::Usage(format!(
                            "unknown {} {s:?} (expected one of {})",
                            $what,
                            names.join(", ")
                        ))
                    })
            }
        }
    };
}

word_enum! {
    /// How the payload travels in one benchmark case. The order of the
    /// variants is the order of rows in tables and of lines in the plot.
    Transport, "transport" {
        /// One `memcpy` inside a single process: the ceiling for any transport.
        Memcpy => "memcpy",
        /// A shared-memory segment, one transfer at a time.
        Shm => "shm",
        /// A shared-memory segment with the next copy overlapping the read.
        ShmPipelined => "shm-pipelined",
        /// A Unix-domain stream socket.
        Unix => "unix",
        /// A TCP connection over loopback.
        Tcp => "tcp",
        /// Python's `multiprocessing.shared_memory`.
        PythonShm => "python-shm",
        /// Python, the payload copied through a `multiprocessing` array.
        PythonArray => "python-array",
        /// The iceoryx2 zero-copy middleware.
        Iceoryx2 => "iceoryx2",
    }
}

word_enum! {
    /// Whether the transport's resources are reused between transfers.
    Mode, "mode" {
        /// One segment or connection, reused for every transfer.
        Steady => "steady",
        /// A fresh segment (or connection) for every transfer.
        Cold => "cold",
    }
}

word_enum! {
    /// Where the two processes run.
    Pin, "pin" {
        /// Both pinned to the same CPU.
        Same => "same",
        /// Pinned to two different CPUs.
        Split => "split",
        /// Not pinned; the scheduler decides.
        None => "none",
    }
}

/// What identifies one benchmark case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Case {
    /// How the payload travels.
    pub transport: Transport,
    /// Reused or fresh resources.
    pub mode: Mode,
    /// Where the processes run.
    pub pin: Pin,
    /// Payload size in bytes.
    pub bytes: u64,
}

impl fmt::Display for Case {
    /// E.g. `shm steady pin=split 8 MiB`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} pin={} {}",
            self.transport,
            self.mode,
            self.pin,
            export::human_bytes(self.bytes)
        )
    }
}

/// The machine and build a benchmark ran on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// The CPU's "model name" from /proc/cpuinfo, or "unknown".
    pub cpu_model: String,
    /// CPUs this process may use.
    pub cpus: usize,
    /// The kernel release, e.g. "6.8.0-45-generic", or "unknown".
    pub kernel: String,
    /// `git rev-parse --short HEAD` in the working directory, when that is a
    /// git repository and git is installed.
    pub git_rev: Option<String>,
    /// The compiler that built this program, e.g. "rustc 1.88.0 (...)".
    #[serde(default)]
    pub rustc: Option<String>,
    /// Operating system, as Rust names it ("linux").
    #[serde(default)]
    pub os: String,
    /// CPU architecture, as Rust names it ("x86_64").
    #[serde(default)]
    pub arch: String,
    /// When the run started, seconds since 1970-01-01 UTC.
    #[serde(default)]
    pub unix_time: u64,
    /// When the run started, RFC 3339 in UTC, e.g. "2024-05-01T12:00:00Z".
    #[serde(default)]
    pub date: String,
}

impl Machine {
    /// Describes this machine. Never fails: what cannot be found is reported
    /// as "unknown" (or `None`), never as an error or a panic.
    pub fn detect() -> Machine {
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|text| cpu_model_from_cpuinfo(&text))
            .unwrap_or_else(|| "unknown".to_string());
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .or_else(|| {
                rustix::system::uname()
                    .release()
                    .to_str()
                    .ok()
                    .map(String::from)
            })
            .unwrap_or_else(|| "unknown".to_string());
        let unix_time = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Machine {
            cpu_model,
            cpus,
            kernel,
            git_rev: git_rev(),
            rustc: option_env!("P1P2_RUSTC_VERSION").map(String::from),
            os: std::env::consts::OS.to_string(),
            arch: std::env::consts::ARCH.to_string(),
            unix_time,
            date: rfc3339_utc(unix_time),
        }
    }

    /// One line for the end of a report: CPU model, CPUs, kernel, git
    /// revision, compiler and date.
    pub fn summary(&self) -> String {
        let mut line = format!(
            "{}, {} CPU{}, kernel {}, git {}",
            self.cpu_model,
            self.cpus,
            if self.cpus == 1 { "" } else { "s" },
            self.kernel,
            self.git_rev.as_deref().unwrap_or("unknown"),
        );
        if let Some(rustc) = &self.rustc {
            line.push_str(", ");
            line.push_str(rustc);
        }
        if !self.date.is_empty() {
            line.push_str(", ");
            line.push_str(&self.date);
        }
        line
    }
}

/// The first "model name" in the text of /proc/cpuinfo (x86), falling back to
/// "Model" or "Hardware" (some ARM kernels); `None` when there is none.
pub fn cpu_model_from_cpuinfo(text: &str) -> Option<String> {
    ["model name", "Model", "Hardware"].iter().find_map(|key| {
        text.lines().find_map(|line| {
            let (k, v) = line.split_once(':')?;
            let v = v.trim();
            (k.trim() == *key && !v.is_empty()).then(|| v.to_string())
        })
    })
}

/// `git rev-parse --short HEAD` in the working directory; `None` when git is
/// missing, fails, or this is not a repository.
fn git_rev() -> Option<String> {
    let out = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let rev = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !rev.is_empty()).then_some(rev)
}

/// Seconds since the Unix epoch as an RFC 3339 UTC timestamp, e.g.
/// `2023-11-14T22:13:20Z` (proleptic Gregorian calendar).
pub fn rfc3339_utc(unix_time: u64) -> String {
    let days = unix_time / 86_400;
    let secs = unix_time % 86_400;
    // Civil date from days since 1970-01-01, counting in 400-year eras that
    // start on March 1st so that the leap day falls at the end of a year.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

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
}

/// Throughput of one case: every raw sample and the statistics made from them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CaseResult {
    /// How the payload travels.
    pub transport: Transport,
    /// Reused or fresh resources.
    pub mode: Mode,
    /// Where the processes ran.
    pub pin: Pin,
    /// Payload size in bytes.
    pub bytes: u64,
    /// Measured transfers (the number of samples).
    pub runs: usize,
    /// Unmeasured warm-up transfers before them.
    pub warmup: usize,
    /// Median time per transfer.
    pub median_ns: f64,
    /// 10th percentile.
    pub p10_ns: f64,
    /// 90th percentile.
    pub p90_ns: f64,
    /// Arithmetic mean.
    pub mean_ns: f64,
    /// Sample standard deviation; `null` with fewer than two runs.
    pub stddev_ns: Option<f64>,
    /// Fastest transfer.
    pub min_ns: u64,
    /// Slowest transfer.
    pub max_ns: u64,
    /// Throughput at the median: bytes / median seconds / 10^9 (0 when the
    /// median is 0).
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
    /// Anything a reader should know about this case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Every measured transfer time, in the order measured.
    pub samples_ns: Vec<u64>,
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
            note: None,
            samples_ns,
        })
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
    pub transport: Transport,
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
}

impl LatencyResult {
    /// Computes the statistics of `samples_ns`, one time per round trip, in
    /// nanoseconds. Returns `None` when there are no samples.
    pub fn from_samples(
        transport: Transport,
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
        })
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
    /// Things the reader should know, e.g. "python3 not found: python rows
    /// skipped".
    #[serde(default)]
    pub notes: Vec<String>,
}

impl Report {
    /// An empty report for `machine`.
    pub fn new(machine: Machine) -> Report {
        Report {
            machine,
            config: None,
            results: Vec::new(),
            latency: Vec::new(),
            notes: Vec::new(),
        }
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
}

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
    fn names_are_kebab_case_and_round_trip() {
        let names: Vec<&str> = Transport::ALL.iter().map(|t| t.as_str()).collect();
        assert_eq!(
            names,
            [
                "memcpy",
                "shm",
                "shm-pipelined",
                "unix",
                "tcp",
                "python-shm",
                "python-array",
                "iceoryx2"
            ]
        );
        for t in Transport::ALL {
            let json = serde_json::to_string(t).unwrap();
            assert_eq!(json, format!("\"{}\"", t.as_str()));
            assert_eq!(serde_json::from_str::<Transport>(&json).unwrap(), *t);
            assert_eq!(t.as_str().parse::<Transport>().unwrap(), *t);
        }
        assert_eq!(serde_json::to_string(&Pin::None).unwrap(), "\"none\"");
        assert_eq!(serde_json::to_string(&Mode::Cold).unwrap(), "\"cold\"");
        let err = "udp".parse::<Transport>().unwrap_err().to_string();
        assert!(err.contains("unknown transport \"udp\"") && err.contains("iceoryx2"));
    }

    #[test]
    fn from_samples_computes_statistics_and_throughput() {
        let case = Case {
            transport: Transport::Shm,
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
            transport: Transport::Memcpy,
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
        assert!(
            LatencyResult::from_samples(Transport::Shm, Pin::Same, 64, "spin", vec![]).is_none()
        );
    }

    #[test]
    fn cpu_model_is_found_in_cpuinfo() {
        let x86 = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\n";
        assert_eq!(
            cpu_model_from_cpuinfo(x86).as_deref(),
            Some("Intel(R) Xeon(R) CPU @ 2.20GHz")
        );
        let arm =
            "processor\t: 0\nBogoMIPS\t: 108.00\n\nModel\t\t: Raspberry Pi 4 Model B Rev 1.4\n";
        assert_eq!(
            cpu_model_from_cpuinfo(arm).as_deref(),
            Some("Raspberry Pi 4 Model B Rev 1.4")
        );
        assert_eq!(cpu_model_from_cpuinfo(""), None);
    }

    #[test]
    fn dates_are_rfc3339_utc() {
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_utc(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339_utc(4_107_542_399), "2100-02-28T23:59:59Z");
    }

    #[test]
    fn machine_detection_does_not_panic() {
        let m = Machine::detect();
        assert!(m.cpus >= 1);
        assert!(!m.cpu_model.is_empty() && !m.kernel.is_empty());
        assert!(m.date.ends_with('Z'));
        assert!(m.summary().contains("CPU"));
    }
}
