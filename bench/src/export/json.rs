//! `results.json`: the whole report with every raw sample, pretty-printed.
//!
//! `results.json`: the whole report, pretty-printed, with every raw sample,
//! so that it can be re-analysed or re-plotted without measuring again.

use super::{Exporter, RenderError};
use crate::report::Report;

/// The exporter of `results.json`.
pub struct Json;

impl Exporter for Json {
    fn file_name(&self) -> &'static str {
        "results.json"
    }

    fn render(&self, report: &Report) -> Result<String, RenderError> {
        Ok(to_json(report)?)
    }
}

/// The keys every row of `results` in `results.json` carries, which readers
/// of the file rely on (a row may carry more: `mean_ns`, `cpu_user_ms`, ...).
pub const RESULT_KEYS: [&str; 12] = [
    "transport",
    "mode",
    "pin",
    "bytes",
    "runs",
    "median_ns",
    "p10_ns",
    "p90_ns",
    "gbps",
    "copies",
    "syscalls",
    "samples_ns",
];

/// `results.json`: the whole report, pretty-printed, every raw sample kept.
pub fn to_json(report: &Report) -> serde_json::Result<String> {
    let mut text = serde_json::to_string_pretty(report)?;
    text.push('\n');
    Ok(text)
}

/// Reads a report back from the text of `results.json`.
pub fn from_json(text: &str) -> serde_json::Result<Report> {
    serde_json::from_str(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::{self, MIB8};

    #[test]
    fn json_round_trips_with_every_sample_and_the_agreed_keys() {
        let report = testdata::report();
        let text = to_json(&report).unwrap();
        assert_eq!(from_json(&text).unwrap(), report);

        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        for key in ["machine", "results", "latency", "notes"] {
            assert!(v.get(key).is_some(), "no top-level {key}");
        }
        for key in ["cpu_model", "cpus", "kernel", "git_rev", "rustc", "date"] {
            assert!(v["machine"].get(key).is_some(), "no machine.{key}");
        }
        let shm = v["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["transport"] == "shm" && r["mode"] == "steady" && r["bytes"] == MIB8)
            .unwrap();
        for key in RESULT_KEYS.into_iter().chain([
            "mean_ns",
            "stddev_ns",
            "min_ns",
            "max_ns",
            "warmup",
            "cpu_user_ms",
            "cpu_sys_ms",
        ]) {
            assert!(shm.get(key).is_some(), "no results[].{key}");
        }
        assert_eq!(shm["pin"], "split");
        assert_eq!(shm["samples_ns"].as_array().unwrap().len(), 3);
        assert_eq!(shm["cpu_user_ms"], 12.5);
        // Unknown CPU times and notes are left out rather than written as null.
        let unix = &v["results"][1];
        assert_eq!(unix["transport"], "unix");
        assert!(unix.get("cpu_user_ms").is_none() && unix.get("note").is_none());

        let lat = &v["latency"][0];
        for key in [
            "transport",
            "pin",
            "bytes",
            "variant",
            "round_trips",
            "median_ns",
            "p99_ns",
            "p10_ns",
            "p90_ns",
            "samples_ns",
        ] {
            assert!(lat.get(key).is_some(), "no latency[].{key}");
        }
        assert_eq!(lat["bytes"], 64);
        assert_eq!(lat["samples_ns"].as_array().unwrap().len(), 1000);
    }
}
