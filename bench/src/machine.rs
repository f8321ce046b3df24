//! The machine and build a benchmark ran on, detected without failing.

use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

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

/// The state of the machine over a run, beyond what [`Machine`] says:
/// steal time, transparent huge pages and whether the source tree had
/// uncommitted changes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HostState {
    /// Whether `git status --porcelain` listed changes (tracked files) in
    /// the working directory; `None` outside a repository or without git.
    #[serde(default)]
    pub git_dirty: Option<bool>,
    /// The selected mode of /sys/kernel/mm/transparent_hugepage/enabled,
    /// e.g. "madvise".
    #[serde(default)]
    pub thp_enabled: Option<String>,
    /// The selected mode of .../transparent_hugepage/shmem_enabled (the
    /// one shared memory gets), e.g. "never".
    #[serde(default)]
    pub thp_shmem_enabled: Option<String>,
    /// CPU time stolen by the hypervisor over the run, all CPUs, from the
    /// "cpu" line of /proc/stat at the start and at the end.
    #[serde(default)]
    pub steal: Option<Steal>,
    #[serde(skip)]
    start: Option<CpuTicks>,
}

/// Steal time over a run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Steal {
    /// Stolen time, in milliseconds (summed over CPUs).
    pub ms: f64,
    /// Stolen time as a percentage of all CPU time over the run.
    pub percent: f64,
}

/// The steal and total ticks of the "cpu" line of /proc/stat.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct CpuTicks {
    steal: u64,
    total: u64,
}

impl HostState {
    /// The state at the start of a run (steal time is known once
    /// [`HostState::until_now`] is called). Never fails.
    pub fn detect() -> HostState {
        HostState {
            git_dirty: git_dirty(),
            thp_enabled: thp("enabled"),
            thp_shmem_enabled: thp("shmem_enabled"),
            steal: None,
            start: read_ticks(),
        }
    }

    /// The state over the run so far: steal time since [`HostState::detect`].
    pub fn until_now(&self) -> HostState {
        let steal = self
            .start
            .zip(read_ticks())
            .map(|(a, b)| steal_between(a, b));
        HostState {
            steal,
            start: None,
            ..self.clone()
        }
    }
}

fn steal_between(a: CpuTicks, b: CpuTicks) -> Steal {
    let steal = b.steal.saturating_sub(a.steal);
    let total = b.total.saturating_sub(a.total);
    let hz = rustix::param::clock_ticks_per_second().max(1) as f64;
    Steal {
        ms: steal as f64 * 1e3 / hz,
        percent: if total == 0 {
            0.0
        } else {
            steal as f64 * 100.0 / total as f64
        },
    }
}

fn read_ticks() -> Option<CpuTicks> {
    ticks_from_stat(&std::fs::read_to_string("/proc/stat").ok()?)
}

/// The steal (8th field) and total ticks of the "cpu" line of /proc/stat's
/// text (guest time is already in user and nice, so it is not added).
fn ticks_from_stat(text: &str) -> Option<CpuTicks> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    Some(CpuTicks {
        steal: *fields.get(7)?,
        total: fields.iter().take(8).sum(),
    })
}

/// The bracketed (selected) word of a THP setting, e.g. "always [madvise]
/// never" gives "madvise".
fn selected(text: &str) -> Option<String> {
    let start = text.find('[')? + 1;
    let end = start + text[start..].find(']')?;
    Some(text[start..end].to_string())
}

fn thp(file: &str) -> Option<String> {
    let text =
        std::fs::read_to_string(format!("/sys/kernel/mm/transparent_hugepage/{file}")).ok()?;
    selected(&text)
}

/// Whether `git status --porcelain --untracked-files=no` lists anything.
fn git_dirty() -> Option<bool> {
    let out = Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status.success().then_some(!out.stdout.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steal_and_thp_are_read_from_their_files_text() {
        let stat = "cpu  100 0 50 800 10 0 5 35 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n";
        let t = ticks_from_stat(stat).unwrap();
        assert_eq!((t.steal, t.total), (35, 1000));
        let later = CpuTicks {
            steal: 45,
            total: 2000,
        };
        let s = steal_between(t, later);
        assert!((s.percent - 1.0).abs() < 1e-12, "{s:?}");
        assert!(s.ms > 0.0);
        assert_eq!(ticks_from_stat("intr 1 2\n"), None);
        assert_eq!(
            selected("always [madvise] never\n").as_deref(),
            Some("madvise")
        );
        assert_eq!(selected("always madvise never"), None);
        let host = HostState::detect().until_now();
        if std::path::Path::new("/proc/stat").exists() {
            assert!(host.steal.is_some());
        }
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
