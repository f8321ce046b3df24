//! `results.csv`: one row per throughput case, for spreadsheets.
//!
//! `results.csv`: one row per throughput case, with a header row, for
//! spreadsheets.
//!
//! CSV holds plain numbers: nanoseconds, GB/s and ratios as Rust prints an
//! `f64` (the shortest text that reads back to the same value), no units, and
//! an empty field for a missing value. Fields that hold a comma, a quote or a
//! line break are quoted ([`csv_field`]).

use super::order::sorted_results;
use super::ratios::ratios;
use super::{Exporter, RenderError};
use crate::report::Report;

/// The exporter of `results.csv`.
pub struct Csv;

impl Exporter for Csv {
    fn file_name(&self) -> &'static str {
        "results.csv"
    }

    fn render(&self, report: &Report) -> Result<String, RenderError> {
        Ok(to_csv(report))
    }
}

/// The header row of `results.csv`.
pub const CSV_HEADER: &str = "transport,mode,pin,bytes,runs,median_ns,p10_ns,p90_ns,mean_ns,\
stddev_ns,min_ns,max_ns,gbps,x_memcpy,x_unix,copies,syscalls,cpu_user_ms,cpu_sys_ms,best_copy,copy,\
gbps_sustained,ci95_lo,ci95_hi,p99_ns,cpu_s_per_gb";

/// `results.csv`: a header row ([`CSV_HEADER`]), then one row per throughput
/// case in table order (see [`sorted_results`]), without the raw samples.
/// Missing values are empty fields. `x_memcpy` divides by the best copy of
/// the size, named in `best_copy` (`memcpy` or `memcpy-nt`); `copy` is the
/// copy an shm sender made (`std` or `nt`). `gbps` is the row's figure
/// (bytes / the median of the round medians), `ci95_lo` and `ci95_hi` its
/// 95 % interval, `gbps_sustained` bytes × runs / measured wall time.
pub fn to_csv(report: &Report) -> String {
    let mut out = String::new();
    out.push_str(CSV_HEADER);
    out.push('\n');
    for r in sorted_results(&report.results) {
        let x = ratios(&report.results, r);
        let fields = [
            csv_field(r.transport.as_str()),
            csv_field(r.mode.as_str()),
            csv_field(r.pin.as_str()),
            r.bytes.to_string(),
            r.runs.to_string(),
            r.median_ns.to_string(),
            r.p10_ns.to_string(),
            r.p90_ns.to_string(),
            r.mean_ns.to_string(),
            opt(r.stddev_ns),
            r.min_ns.to_string(),
            r.max_ns.to_string(),
            r.gbps.to_string(),
            opt(x.x_memcpy),
            opt(x.x_unix),
            r.copies.to_string(),
            r.syscalls.to_string(),
            opt(r.cpu_user_ms),
            opt(r.cpu_sys_ms),
            x.best_copy.map_or(String::new(), |t| csv_field(t.as_str())),
            r.copy.as_deref().map_or(String::new(), csv_field),
            opt(r.gbps_sustained),
            opt(r.ci95.map(|c| c.lo)),
            opt(r.ci95.map(|c| c.hi)),
            opt(r.p99_ns),
            opt(r.cpu_s_per_gb),
        ];
        out.push_str(&fields.join(","));
        out.push('\n');
    }
    out
}

/// A CSV field for an optional number: empty when absent.
pub(super) fn opt(v: Option<f64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// A CSV field, quoted (with inner quotes doubled) when it holds a comma, a
/// quote or a line break.
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata;

    #[test]
    fn csv_has_the_header_and_one_row_per_case() {
        let csv = to_csv(&testdata::report());
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(
            lines[0],
            "transport,mode,pin,bytes,runs,median_ns,p10_ns,p90_ns,mean_ns,stddev_ns,min_ns,\
             max_ns,gbps,x_memcpy,x_unix,copies,syscalls,cpu_user_ms,cpu_sys_ms,best_copy,copy,\
             gbps_sustained,ci95_lo,ci95_hi,p99_ns,cpu_s_per_gb"
        );
        assert_eq!(lines.len(), 1 + 8);
        let shm: Vec<&str> = lines
            .iter()
            .find(|l| l.starts_with("shm,steady,split,8388608,"))
            .unwrap()
            .split(',')
            .collect();
        assert_eq!(shm.len(), 26);
        assert_eq!(
            &shm[..6],
            ["shm", "steady", "split", "8388608", "3", "1398101"]
        );
        let x_memcpy: f64 = shm[13].parse().unwrap();
        let x_unix: f64 = shm[14].parse().unwrap();
        assert!((x_memcpy - 0.6).abs() < 1e-5 && (x_unix - 2.0).abs() < 1e-5);
        assert_eq!(&shm[17..21], ["12.5", "3.25", "memcpy", ""]);
        // memcpy has no unix reference, no CPU times and no shm copy.
        let memcpy = lines.iter().find(|l| l.starts_with("memcpy,")).unwrap();
        assert!(
            memcpy.ends_with(",8,1,,1,0,,,memcpy,,,,,536.5,"),
            "{memcpy}"
        );
        // Analysed: sustained GB/s, the interval, p99 at the end.
        let csv = to_csv(&testdata::analysed());
        let shm: Vec<&str> = csv
            .lines()
            .find(|l| l.starts_with("shm,steady,split,8388608,"))
            .unwrap()
            .split(',')
            .collect();
        let num = |i: usize| shm[i].parse::<f64>().unwrap();
        assert!((num(21) - 6.0).abs() < 1e-3, "{shm:?}");
        assert!(num(22) < 6.0 && num(23) > 6.0, "{shm:?}");
        assert!(num(24) > num(5));
        // 15.75 ms of CPU for 3 × 8 MiB.
        assert!(
            (num(25) - 0.01575 / (3.0 * 8388608.0 / 1e9)).abs() < 1e-9,
            "{shm:?}"
        );
    }
}
