//! `latency.csv`: one row per round-trip latency case.
//!
//! `latency.csv`: one row per round-trip latency case, with a header row, in
//! the number format of [`super::csv`]. The last three columns are the
//! case's figure (the median of its round medians) and its 95 % interval,
//! empty for a report not analysed.

use super::csv::{csv_field, opt};
use super::order::sorted_latency;
use super::{Exporter, RenderError};
use crate::report::Report;

/// The exporter of `latency.csv`.
pub struct LatencyCsv;

impl Exporter for LatencyCsv {
    fn file_name(&self) -> &'static str {
        "latency.csv"
    }

    fn render(&self, report: &Report) -> Result<String, RenderError> {
        Ok(to_latency_csv(report))
    }
}

/// The header row of `latency.csv`.
pub const LATENCY_CSV_HEADER: &str =
    "transport,variant,pin,bytes,round_trips,median_ns,p10_ns,p90_ns,p99_ns,\
round_median_ns,ci95_lo_ns,ci95_hi_ns";

/// `latency.csv`: a header row ([`LATENCY_CSV_HEADER`]), then one row per
/// latency case in table order, without the raw samples: the pooled
/// statistics, then `round_median_ns` with its interval `ci95_lo_ns`,
/// `ci95_hi_ns` (empty when absent).
pub fn to_latency_csv(report: &Report) -> String {
    let mut out = String::new();
    out.push_str(LATENCY_CSV_HEADER);
    out.push('\n');
    for l in sorted_latency(&report.latency) {
        let fields = [
            csv_field(l.transport.as_str()),
            csv_field(&l.variant),
            csv_field(l.pin.as_str()),
            l.bytes.to_string(),
            l.round_trips.to_string(),
            l.median_ns.to_string(),
            l.p10_ns.to_string(),
            l.p90_ns.to_string(),
            l.p99_ns.to_string(),
            opt(l.round_median_ns),
            opt(l.ci95.map(|c| c.lo)),
            opt(l.ci95.map(|c| c.hi)),
        ];
        out.push_str(&fields.join(","));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bootstrap::Interval;
    use crate::testdata;

    #[test]
    fn latency_csv_quotes_what_needs_quoting() {
        let mut report = testdata::report();
        report.latency[0].variant = "spin, then \"block\"".into();
        let csv = to_latency_csv(&report);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], LATENCY_CSV_HEADER);
        assert_eq!(lines.len(), 3);
        assert!(lines[1].starts_with("shm,spin,split,64,1000,249.5,"));
        assert!(lines[2].starts_with("unix,\"spin, then \"\"block\"\"\",split,64,1000,"));
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a\nb"), "\"a\nb\"");
    }

    #[test]
    fn latency_csv_ends_with_the_figure_and_its_interval() {
        let mut report = testdata::report();
        let shm = report
            .latency
            .iter_mut()
            .find(|l| l.transport == crate::case::Channel::Shm)
            .unwrap();
        shm.round_median_ns = Some(250.5);
        shm.ci95 = Some(Interval {
            lo: 240.25,
            hi: 262.0,
        });
        let csv = to_latency_csv(&report);
        let lines: Vec<&str> = csv.lines().collect();
        let header: Vec<&str> = lines[0].split(',').collect();
        assert_eq!(
            header[header.len() - 3..],
            ["round_median_ns", "ci95_lo_ns", "ci95_hi_ns"]
        );
        // Table order: shm before unix; the unix row is not analysed.
        let shm: Vec<&str> = lines[1].split(',').collect();
        let unix: Vec<&str> = lines[2].split(',').collect();
        assert_eq!(shm.len(), header.len());
        assert_eq!(unix.len(), header.len());
        assert_eq!(shm[..2], ["shm", "spin"]);
        assert_eq!(shm[shm.len() - 3..], ["250.5", "240.25", "262"]);
        assert_eq!(unix[unix.len() - 3..], ["", "", ""]);

        // An analysed report fills them for every row.
        let analysed = to_latency_csv(&testdata::analysed());
        for line in analysed.lines().skip(1) {
            let fields: Vec<&str> = line.split(',').collect();
            let n = fields.len();
            let (figure, lo, hi): (f64, f64, f64) = (
                fields[n - 3].parse().unwrap(),
                fields[n - 2].parse().unwrap(),
                fields[n - 1].parse().unwrap(),
            );
            assert!(lo <= figure && figure <= hi, "{line}");
        }
    }
}
