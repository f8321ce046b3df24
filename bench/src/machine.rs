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

#[cfg(test)]
mod tests {
    use super::*;

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
