//! `latency.csv`: one row per round-trip latency case.
//!
//! `latency.csv`: one row per round-trip latency case, with a header row, in
//! the number format of [`super::csv`].

use super::csv::csv_field;
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
    "transport,variant,pin,bytes,round_trips,median_ns,p10_ns,p90_ns,p99_ns";

/// `latency.csv`: a header row ([`LATENCY_CSV_HEADER`]), then one row per
/// latency case in table order, without the raw samples.
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
        ];
        out.push_str(&fields.join(","));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
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
}
