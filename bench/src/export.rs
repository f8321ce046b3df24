//! Turning a [`Report`] into files: `results.json` (everything, with every raw
//! sample), `results.csv` and `latency.csv` (one row per case, for
//! spreadsheets), `results.md` (tables for people) and `throughput.svg` (see
//! [`super::plot`]).
//!
//! Each format is one function (`to_json`, `to_csv`, `to_latency_csv`,
//! `to_markdown`, [`super::plot::to_svg`]) and one [`Format`] value that
//! names its file; [`write_all`] writes them all.
//!
//! # Comparisons
//!
//! Tables and CSV compare every throughput row with two references, both
//! computed by [`ratios`]:
//!
//! - `x_memcpy` (`× memcpy`): this row's GB/s divided by the GB/s of the
//!   memcpy row of the same size. memcpy runs in one process, so pinning and
//!   mode barely matter to it: the memcpy row with the same pin is preferred,
//!   then the one with the same mode, but any memcpy row of the same size will
//!   do;
//! - `x_unix` (`× unix`): divided by the unix-socket row of the same size,
//!   mode and pin, and only that one.
//!
//! A ratio is missing (empty in CSV, "–" in Markdown) when there is no such
//! reference row or its throughput is 0.
//!
//! # Number formats
//!
//! CSV holds plain numbers: nanoseconds, GB/s and ratios as Rust prints an
//! `f64` (the shortest text that reads back to the same value), no units, and
//! an empty field for a missing value. Markdown is for reading:
//!
//! - sizes in binary units: "64 B", "4 KiB", "8 MiB", "1.5 KiB" ([`human_bytes`]);
//! - times with three significant digits in ns, µs, ms or s: "850 ns",
//!   "12.3 µs", "1.40 ms" ([`human_ns`]); a p10–p90 range shares its unit when
//!   it can: "1.35–1.52 ms";
//! - GB/s and ratios with two decimals ("6.00", "0.60×"), or two significant
//!   digits below 0.1 ("0.042×");
//! - copies and system calls per transfer as whole numbers when they are
//!   whole ("1", "2048"), otherwise with two decimals ("0.50").

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::{plot, CaseResult, LatencyResult, Pin, Report, Transport};
use common::error::{Error, IoContext, Result};

/// One output file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `results.json`: the whole [`Report`], pretty-printed, with every raw
    /// sample.
    Json,
    /// `results.csv`: one row per throughput case, with a header row.
    Csv,
    /// `latency.csv`: one row per latency case, with a header row.
    LatencyCsv,
    /// `results.md`: Markdown tables, notes, warnings and the machine.
    Markdown,
    /// `throughput.svg`: GB/s against payload size.
    Svg,
}

impl Format {
    /// Every format, in the order [`write_all`] writes them.
    pub const ALL: &'static [Format] = &[
        Format::Json,
        Format::Csv,
        Format::LatencyCsv,
        Format::Markdown,
        Format::Svg,
    ];

    /// The file this format is written to.
    pub fn file_name(self) -> &'static str {
        match self {
            Format::Json => "results.json",
            Format::Csv => "results.csv",
            Format::LatencyCsv => "latency.csv",
            Format::Markdown => "results.md",
            Format::Svg => "throughput.svg",
        }
    }

    /// The file's contents for `report`.
    pub fn render(self, report: &Report) -> std::result::Result<String, RenderError> {
        Ok(match self {
            Format::Json => to_json(report)?,
            Format::Csv => to_csv(report),
            Format::LatencyCsv => to_latency_csv(report),
            Format::Markdown => to_markdown(report),
            Format::Svg => plot::to_svg(report)?,
        })
    }
}

/// Why a report could not be turned into a file's contents.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// serde_json refused the report.
    #[error("cannot serialise to JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The plotting library failed.
    #[error("cannot draw the plot: {0}")]
    Plot(String),
}

/// Writes every [`Format`] of `report` into `dir`, creating it (and its
/// parents) when missing. Returns the paths written, in [`Format::ALL`] order.
///
/// # Errors
///
/// [`Error::Io`] when the directory cannot be created, [`Error::Output`]
/// naming the file that could not be rendered or written.
pub fn write_all(report: &Report, dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).context(|| format!("create directory {}", dir.display()))?;
    Format::ALL
        .iter()
        .map(|&format| write(report, dir, format))
        .collect()
}

/// Writes one format of `report` into the existing directory `dir`; returns
/// the path written.
///
/// # Errors
///
/// [`Error::Output`] naming the file that could not be rendered or written.
pub fn write(report: &Report, dir: &Path, format: Format) -> Result<PathBuf> {
    let path = dir.join(format.file_name());
    let failed = |reason: String| Error::Output {
        path: path.clone(),
        reason,
    };
    let text = format.render(report).map_err(|e| failed(e.to_string()))?;
    std::fs::write(&path, text).map_err(|e| failed(e.to_string()))?;
    Ok(path)
}

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

/// The header row of `results.csv`.
pub const CSV_HEADER: &str = "transport,mode,pin,bytes,runs,median_ns,p10_ns,p90_ns,mean_ns,\
stddev_ns,min_ns,max_ns,gbps,x_memcpy,x_unix,copies,syscalls,cpu_user_ms,cpu_sys_ms";

/// The header row of `latency.csv`.
pub const LATENCY_CSV_HEADER: &str =
    "transport,variant,pin,bytes,round_trips,median_ns,p10_ns,p90_ns,p99_ns";

/// `results.csv`: a header row ([`CSV_HEADER`]), then one row per throughput
/// case in table order (see [`sorted_results`]), without the raw samples.
/// Missing values are empty fields.
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
        ];
        out.push_str(&fields.join(","));
        out.push('\n');
    }
    out
}

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

/// The header line of the throughput table in `results.md`.
pub const MARKDOWN_HEADER: &str =
    "| transport | mode | size | median | p10–p90 | GB/s | × memcpy | × unix | copies | syscalls |";

/// The header line of the latency table in `results.md`.
pub const MARKDOWN_LATENCY_HEADER: &str =
    "| transport | variant | pin | median | p10–p90 | p99 | round trips |";

/// `results.md`: the throughput table under a "### pin = ..." heading (one
/// table per pinning when the non-memcpy rows were measured with more than
/// one; each table also shows the memcpy rows it is compared with), the
/// latency table, notes, spread warnings and the machine. Number formats are listed in the module
/// documentation.
pub fn to_markdown(report: &Report) -> String {
    let mut md = String::from("# Benchmark results\n\n");
    if let Some(c) = &report.config {
        let quick = if c.quick { " (quick set)" } else { "" };
        match (c.max_runs, c.budget_ms) {
            (Some(max), Some(ms)) => {
                let _ = writeln!(
                    md,
                    "Each case: up to {} warm-up run{}, then at least {} measured runs, more \
                     until {} had passed, at most {}{quick}.\n",
                    c.warmup,
                    if c.warmup == 1 { "" } else { "s" },
                    c.runs,
                    human_ns(ms as f64 * 1e6),
                    max,
                );
            }
            _ => {
                let _ = writeln!(
                    md,
                    "{} measured runs per case after {} warm-up run{}{quick}.\n",
                    c.runs,
                    c.warmup,
                    if c.warmup == 1 { "" } else { "s" },
                );
            }
        }
    }

    md.push_str("## Throughput\n\n");
    if report.results.is_empty() {
        md.push_str("No throughput results.\n\n");
    }
    for (pin, rows) in throughput_tables(&report.results) {
        if let Some(pin) = pin {
            let _ = writeln!(md, "### pin = {pin}\n");
        }
        md.push_str(MARKDOWN_HEADER);
        md.push_str("\n|:---|:---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        for r in rows {
            let x = ratios(&report.results, r);
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                r.transport,
                r.mode,
                human_bytes(r.bytes),
                human_ns(r.median_ns),
                human_range(r.p10_ns, r.p90_ns),
                two_decimals(r.gbps),
                x.x_memcpy
                    .map_or("–".into(), |v| format!("{}×", two_decimals(v))),
                x.x_unix
                    .map_or("–".into(), |v| format!("{}×", two_decimals(v))),
                count(r.copies),
                count(r.syscalls),
            );
        }
        md.push('\n');
    }

    if !report.latency.is_empty() {
        let mut sizes: Vec<u64> = report.latency.iter().map(|l| l.bytes).collect();
        sizes.sort_unstable();
        sizes.dedup();
        let sizes: Vec<String> = sizes.into_iter().map(human_bytes).collect();
        let _ = writeln!(md, "## Round-trip latency ({})\n", sizes.join(", "));
        md.push_str(MARKDOWN_LATENCY_HEADER);
        md.push_str("\n|:---|:---|:---|---:|---:|---:|---:|\n");
        for l in sorted_latency(&report.latency) {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} |",
                l.transport,
                l.variant.replace('|', "\\|"),
                l.pin,
                human_ns(l.median_ns),
                human_range(l.p10_ns, l.p90_ns),
                human_ns(l.p99_ns),
                l.round_trips
            );
        }
        md.push('\n');
    }

    let case_notes = sorted_results(&report.results)
        .into_iter()
        .filter_map(|r| r.note.as_ref().map(|n| format!("{}: {n}", r.case())));
    let notes: Vec<String> = report.notes.iter().cloned().chain(case_notes).collect();
    bullets(&mut md, "Notes", &notes);
    bullets(&mut md, "Warnings", &report.warnings());

    let _ = writeln!(md, "Machine: {}", report.machine.summary());
    md
}

/// How one throughput row compares with its references (see the module
/// documentation for which rows those are).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Ratios {
    /// This row's GB/s over memcpy's at the same size.
    pub x_memcpy: Option<f64>,
    /// This row's GB/s over the unix socket's at the same size, mode and pin.
    pub x_unix: Option<f64>,
}

/// The ratios of `row` to its references among `results`; shared by the CSV
/// and Markdown exports.
pub fn ratios(results: &[CaseResult], row: &CaseResult) -> Ratios {
    let memcpy = results
        .iter()
        .filter(|r| r.transport == Transport::Memcpy && r.bytes == row.bytes)
        // max_by_key keeps the last of equals; reversing keeps the first.
        .rev()
        .max_by_key(|r| (r.pin == row.pin, r.mode == row.mode));
    let unix = results.iter().find(|r| {
        r.transport == Transport::Unix
            && r.bytes == row.bytes
            && r.mode == row.mode
            && r.pin == row.pin
    });
    let over = |reference: Option<&CaseResult>| {
        let base = reference?.gbps;
        let ratio = row.gbps / base;
        (base > 0.0 && ratio.is_finite()).then_some(ratio)
    };
    Ratios {
        x_memcpy: over(memcpy),
        x_unix: over(unix),
    }
}

/// Throughput rows in table order: by size, then transport (in the order of
/// [`Transport::ALL`]), then mode (steady before cold), then pin.
pub fn sorted_results(results: &[CaseResult]) -> Vec<&CaseResult> {
    let mut rows: Vec<&CaseResult> = results.iter().collect();
    rows.sort_by_key(|r| (r.bytes, r.transport, r.mode, r.pin));
    rows
}

/// Latency rows in table order: by transport, then variant, pin and size.
fn sorted_latency(latency: &[LatencyResult]) -> Vec<&LatencyResult> {
    let mut rows: Vec<&LatencyResult> = latency.iter().collect();
    rows.sort_by(|a, b| {
        a.transport
            .cmp(&b.transport)
            .then_with(|| a.variant.cmp(&b.variant))
            .then_with(|| a.pin.cmp(&b.pin))
            .then_with(|| a.bytes.cmp(&b.bytes))
    });
    rows
}

/// The throughput tables of `results.md` and the pinning each shows: one
/// table when the non-memcpy rows share one pinning (or there are only memcpy
/// rows: no pinning), otherwise one per pinning, each with the memcpy rows of
/// that pinning (or all memcpy rows when none has it).
fn throughput_tables(results: &[CaseResult]) -> Vec<(Option<Pin>, Vec<&CaseResult>)> {
    let mut pins: Vec<Pin> = results
        .iter()
        .filter(|r| r.transport != Transport::Memcpy)
        .map(|r| r.pin)
        .collect();
    pins.sort_unstable();
    pins.dedup();
    if pins.len() <= 1 {
        if results.is_empty() {
            return Vec::new();
        }
        return vec![(pins.first().copied(), sorted_results(results))];
    }
    pins.into_iter()
        .map(|pin| {
            let memcpy_has_pin = results
                .iter()
                .any(|r| r.transport == Transport::Memcpy && r.pin == pin);
            let mut chosen: Vec<&CaseResult> = results
                .iter()
                .filter(|r| {
                    if r.transport == Transport::Memcpy {
                        !memcpy_has_pin || r.pin == pin
                    } else {
                        r.pin == pin
                    }
                })
                .collect();
            chosen.sort_by_key(|r| (r.bytes, r.transport, r.mode, r.pin));
            (Some(pin), chosen)
        })
        .collect()
}

fn bullets(md: &mut String, title: &str, items: &[String]) {
    if items.is_empty() {
        return;
    }
    let _ = writeln!(md, "## {title}\n");
    for item in items {
        let _ = writeln!(md, "- {item}");
    }
    md.push('\n');
}

/// A byte count in binary units (B, KiB, MiB ... EiB): "64 B", "4 KiB", "8 MiB", and three
/// significant digits when not whole: "1.50 KiB", "7.63 MiB".
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut unit = 0;
    while unit + 1 < UNITS.len() && bytes >= 1u64 << (10 * (unit + 1)) {
        unit += 1;
    }
    let scale = 1u64 << (10 * unit);
    if bytes.is_multiple_of(scale) {
        format!("{} {}", bytes / scale, UNITS[unit])
    } else {
        format!(
            "{} {}",
            three_digits(bytes as f64 / scale as f64),
            UNITS[unit]
        )
    }
}

/// A time in nanoseconds with three significant digits in the largest unit
/// that keeps it at least 1: "850 ns", "12.3 µs", "1.40 ms", "2.00 s". "–"
/// for a value that is negative or not finite.
pub fn human_ns(ns: f64) -> String {
    match time_parts(ns) {
        Some((number, unit)) => format!("{number} {unit}"),
        None => "–".to_string(),
    }
}

/// A range of two times, sharing the unit when both use the same one:
/// "1.35–1.52 ms", otherwise "950 µs–1.02 ms".
fn human_range(lo: f64, hi: f64) -> String {
    match (time_parts(lo), time_parts(hi)) {
        (Some((a, ua)), Some((b, ub))) if ua == ub => format!("{a}–{b} {ub}"),
        _ => format!("{}–{}", human_ns(lo), human_ns(hi)),
    }
}

fn time_parts(ns: f64) -> Option<(String, &'static str)> {
    if !ns.is_finite() || ns < 0.0 {
        return None;
    }
    const UNITS: [(&str, f64); 4] = [("s", 1e9), ("ms", 1e6), ("µs", 1e3), ("ns", 1.0)];
    // The largest unit in which the value rounds to at least 1.00, so that
    // 999.7 ns reads "1.00 µs" rather than "1000 ns".
    let (unit, scale) = UNITS
        .iter()
        .copied()
        .find(|&(_, scale)| ns / scale >= 0.9995)
        .unwrap_or(("ns", 1.0));
    Some((three_digits(ns / scale), unit))
}

/// Three significant digits for values from 1 up; below 1, two decimals.
fn three_digits(v: f64) -> String {
    if v == 0.0 {
        "0".to_string()
    } else if v >= 99.95 {
        format!("{v:.0}")
    } else if v >= 9.995 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Two decimals, or two significant digits below 0.1 so small values do not
/// read as zero: "6.00", "0.60", "0.042".
fn two_decimals(v: f64) -> String {
    if !v.is_finite() {
        return "–".to_string();
    }
    if v == 0.0 || v.abs() >= 0.1 {
        return format!("{v:.2}");
    }
    let decimals = (1.0 - v.abs().log10().floor()).clamp(2.0, 12.0) as usize;
    format!("{v:.decimals$}")
}

/// A per-transfer count: whole numbers without decimals, others with two.
fn count(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn opt(v: Option<f64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// A CSV field, quoted (with inner quotes doubled) when it holds a comma, a
/// quote or a line break.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::{self, row, KIB4, MIB8};
    use crate::{Mode, Report};

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
        for key in [
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
            "mean_ns",
            "stddev_ns",
            "min_ns",
            "max_ns",
            "warmup",
            "cpu_user_ms",
            "cpu_sys_ms",
        ] {
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

    #[test]
    fn csv_has_the_header_and_one_row_per_case() {
        let csv = to_csv(&testdata::report());
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(
            lines[0],
            "transport,mode,pin,bytes,runs,median_ns,p10_ns,p90_ns,mean_ns,stddev_ns,min_ns,\
             max_ns,gbps,x_memcpy,x_unix,copies,syscalls,cpu_user_ms,cpu_sys_ms"
        );
        assert_eq!(lines.len(), 1 + 8);
        let shm: Vec<&str> = lines
            .iter()
            .find(|l| l.starts_with("shm,steady,split,8388608,"))
            .unwrap()
            .split(',')
            .collect();
        assert_eq!(shm.len(), 19);
        assert_eq!(
            &shm[..6],
            ["shm", "steady", "split", "8388608", "3", "1398101"]
        );
        let x_memcpy: f64 = shm[13].parse().unwrap();
        let x_unix: f64 = shm[14].parse().unwrap();
        assert!((x_memcpy - 0.6).abs() < 1e-5 && (x_unix - 2.0).abs() < 1e-5);
        assert_eq!(&shm[17..], ["12.5", "3.25"]);
        // memcpy has no unix reference and no CPU times: empty fields.
        let memcpy = lines.iter().find(|l| l.starts_with("memcpy,")).unwrap();
        assert!(memcpy.ends_with(",8,1,,1,0,,"), "{memcpy}");
    }

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
    fn markdown_describes_a_fixed_count_or_a_time_budget() {
        let mut report = testdata::report();
        report.config = Some(crate::Config {
            runs: 3,
            warmup: 1,
            ..Default::default()
        });
        assert!(to_markdown(&report).contains("\n3 measured runs per case after 1 warm-up run.\n"));
        report.config = Some(crate::Config {
            runs: 10,
            warmup: 5,
            quick: true,
            max_runs: Some(10_000),
            budget_ms: Some(4_000),
            ..Default::default()
        });
        let md = to_markdown(&report);
        assert!(
            md.contains(
                "Each case: up to 5 warm-up runs, then at least 10 measured runs, more until \
                 4.00 s had passed, at most 10000 (quick set)."
            ),
            "{md}"
        );
    }

    #[test]
    fn markdown_tables_compare_with_memcpy_and_unix() {
        let md = to_markdown(&testdata::report());
        let lines: Vec<&str> = md.lines().collect();
        assert!(lines.contains(
            &"| transport | mode | size | median | p10–p90 | GB/s | × memcpy | × unix | copies | syscalls |"
        ));
        assert!(lines.contains(
            &"| shm | steady | 8 MiB | 1.40 ms | 1.34–1.45 ms | 6.00 | 0.60× | 2.00× | 1 | 0 |"
        ));
        assert!(lines.contains(
            &"| memcpy | steady | 8 MiB | 839 µs | 805–872 µs | 10.00 | 1.00× | – | 1 | 0 |"
        ));
        // One pinning besides memcpy's: one table, headed by it.
        assert_eq!(md.matches("### pin = ").count(), 1);
        assert!(lines.contains(&"### pin = split"));
        // tcp at 4 KiB was not measured; shm cold has no cold unix to compare with.
        assert!(!md.contains("| tcp | steady | 4 KiB"));
        assert!(md.contains("| shm | cold | 8 MiB | 5.59 ms | 5.37–5.82 ms | 1.50 | 0.15× | – |"));
        // Sorted by size, then transport order, then mode.
        let order: Vec<&str> = lines
            .iter()
            .filter(|l| l.contains(" | 8 MiB | "))
            .map(|l| l.split(" | ").take(2).collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>()
            .iter()
            .map(|s| match s.as_str() {
                "| memcpy steady" => "memcpy",
                "| shm steady" => "shm",
                "| shm cold" => "shm cold",
                "| unix steady" => "unix",
                "| tcp steady" => "tcp",
                _ => "?",
            })
            .collect();
        assert_eq!(order, ["memcpy", "shm", "shm cold", "unix", "tcp"]);
        let first_4k = lines.iter().position(|l| l.contains("| 4 KiB |")).unwrap();
        let first_8m = lines.iter().position(|l| l.contains("| 8 MiB |")).unwrap();
        assert!(first_4k < first_8m);

        assert!(lines.contains(&MARKDOWN_LATENCY_HEADER));
        assert!(lines.contains(&"| shm | spin | split | 250 ns | 210–289 ns | 298 ns | 1000 |"));
        assert!(lines.contains(&"- python3 not found: python rows skipped"));
        assert!(md.ends_with(
            "Machine: Test CPU @ 3.00GHz, 2 CPUs, kernel 6.1.0-test, git abc1234, \
             rustc 1.88.0, 2023-11-14T22:13:20Z\n"
        ));
    }

    #[test]
    fn markdown_splits_tables_by_pin_and_lists_notes_and_warnings() {
        let mut report = testdata::report();
        report.results.push(
            row(Transport::Shm, Mode::Steady, Pin::Same, MIB8, 4.0).with_note("pinned to CPU 0"),
        );
        let wide = CaseResult::from_samples(
            crate::Case {
                transport: Transport::Unix,
                mode: Mode::Steady,
                pin: Pin::Same,
                bytes: MIB8,
            },
            (1..=11).map(|x| x * 400_000).collect(),
            1,
            2.0,
            128.0,
        )
        .unwrap();
        report.results.push(wide);
        let md = to_markdown(&report);
        let same = md.find("### pin = same").unwrap();
        let split = md.find("### pin = split").unwrap();
        assert!(same < split);
        // Both tables show memcpy (measured unpinned) as their reference.
        assert_eq!(md.matches("| memcpy | steady | 8 MiB |").count(), 2);
        // unix at pin=same: median 2.4 ms, so 3.50 GB/s and shm is 1.14× it.
        assert!(md[same..split].contains(
            "| shm | steady | 8 MiB | 2.10 ms | 2.01–2.18 ms | 4.00 | 0.40× | 1.14× | 1 | 0 |"
        ));
        assert!(
            md[same..split].contains("| unix | steady | 8 MiB | 2.40 ms | 800 µs–4.00 ms | 3.50 |")
        );
        assert!(md.contains("- shm steady pin=same 8 MiB: pinned to CPU 0"));
        assert!(md.contains("## Warnings"));
        assert!(md.contains("- unix steady pin=same 8 MiB: wide spread: p90 is 5.0x p10"));
    }

    #[test]
    fn ratios_need_a_reference_with_throughput() {
        let mut results = vec![
            row(Transport::Memcpy, Mode::Steady, Pin::Split, KIB4, 8.0),
            row(Transport::Memcpy, Mode::Steady, Pin::Same, KIB4, 4.0),
            row(Transport::Shm, Mode::Steady, Pin::Same, KIB4, 2.0),
        ];
        // The memcpy row with the same pin is the reference.
        let x = ratios(&results, &results[2]);
        assert!((x.x_memcpy.unwrap() - 0.5).abs() < 1e-3);
        assert_eq!(x.x_unix, None);
        results[1].gbps = 0.0;
        assert_eq!(ratios(&results, &results[2]).x_memcpy, None);
    }

    #[test]
    fn empty_reports_export_without_panicking() {
        let report = Report::new(testdata::machine());
        assert_eq!(to_csv(&report), format!("{CSV_HEADER}\n"));
        assert_eq!(to_latency_csv(&report), format!("{LATENCY_CSV_HEADER}\n"));
        let md = to_markdown(&report);
        assert!(md.contains("No throughput results."));
        assert!(!md.contains("Round-trip latency"));
        assert_eq!(from_json(&to_json(&report).unwrap()).unwrap(), report);
    }

    #[test]
    fn write_all_creates_the_directory_and_every_file() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        let paths = write_all(&testdata::report(), &dir).unwrap();
        let names: Vec<&str> = paths
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "results.json",
                "results.csv",
                "latency.csv",
                "results.md",
                "throughput.svg"
            ]
        );
        for p in &paths {
            assert!(
                std::fs::metadata(p).unwrap().len() > 0,
                "{} is empty",
                p.display()
            );
        }

        let file = tmp.path().join("file");
        std::fs::write(&file, "").unwrap();
        let err = write_all(&testdata::report(), &file)
            .unwrap_err()
            .to_string();
        assert!(err.contains(&file.display().to_string()), "{err}");
    }

    #[test]
    fn human_units() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(64), "64 B");
        assert_eq!(human_bytes(4096), "4 KiB");
        assert_eq!(human_bytes(64 << 10), "64 KiB");
        assert_eq!(human_bytes(1 << 20), "1 MiB");
        assert_eq!(human_bytes(256 << 20), "256 MiB");
        assert_eq!(human_bytes(1536), "1.50 KiB");
        assert_eq!(human_bytes(u64::MAX), "16.0 EiB");
        assert_eq!(human_ns(0.0), "0 ns");
        assert_eq!(human_ns(850.0), "850 ns");
        assert_eq!(human_ns(999.7), "1.00 µs");
        assert_eq!(human_ns(12_345.0), "12.3 µs");
        assert_eq!(human_ns(1_398_101.0), "1.40 ms");
        assert_eq!(human_ns(2e9), "2.00 s");
        assert_eq!(human_ns(f64::NAN), "–");
        assert_eq!(human_range(950_000.0, 1_020_000.0), "950 µs–1.02 ms");
        assert_eq!(two_decimals(0.6), "0.60");
        assert_eq!(two_decimals(0.042), "0.042");
        assert_eq!(two_decimals(0.0031), "0.0031");
        assert_eq!(count(2048.0), "2048");
        assert_eq!(count(0.5), "0.50");
    }
}
