//! `results.md`: the report's tables, notes and warnings, for people.
//!
//! `results.md`: tables for people (throughput, one table per pinning, and
//! round-trip latency), then the notes, the spread warnings and the machine.
//! Numbers are written as [`crate::units`] describes.

use std::fmt::Write as _;

use super::order::{sorted_latency, sorted_results};
use super::ratios::{best_copy, ratios};
use super::{Exporter, RenderError};
use crate::case::{Channel, Mode, Pin};
use crate::report::{CaseResult, Report};
use crate::units::{count, human_bytes, human_ns, human_range, two_decimals};

/// The exporter of `results.md`.
pub struct Markdown;

impl Exporter for Markdown {
    fn file_name(&self) -> &'static str {
        "results.md"
    }

    fn render(&self, report: &Report) -> Result<String, RenderError> {
        Ok(to_markdown(report))
    }
}

/// The header line of the throughput table in `results.md`.
pub const MARKDOWN_HEADER: &str =
    "| transport | mode | wait | size | median | p10–p90 | GB/s | 95 % interval | sustained GB/s | × best copy | × unix | copies | syscalls |";

/// The header line of the latency table in `results.md`.
pub const MARKDOWN_LATENCY_HEADER: &str =
    "| transport | variant | pin | median | 95 % interval | p10–p90 | p99 | round trips |";

/// `results.md`: the throughput table under a "### pin = ..." heading (one
/// table per pinning when the non-memcpy rows were measured with more than
/// one; each table also shows the memcpy rows it is compared with), the
/// latency table, notes, spread warnings and the machine. Number formats are
/// listed in [`crate::units`].
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
        md.push_str("\n|:---|:---|:---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        for r in rows {
            let x = ratios(&report.results, r);
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                r.transport,
                r.mode,
                r.wait.map_or("–".to_owned(), |w| w.to_string()),
                human_bytes(r.bytes),
                human_ns(r.median_ns),
                human_range(r.p10_ns, r.p90_ns),
                two_decimals(r.gbps),
                r.ci95.map_or("–".into(), |c| format!(
                    "{}–{}",
                    two_decimals(c.lo),
                    two_decimals(c.hi)
                )),
                r.gbps_sustained.map_or("–".into(), two_decimals),
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

    best_copies(&mut md, report);

    if !report.latency.is_empty() {
        let mut sizes: Vec<u64> = report.latency.iter().map(|l| l.bytes).collect();
        sizes.sort_unstable();
        sizes.dedup();
        let sizes: Vec<String> = sizes.into_iter().map(human_bytes).collect();
        let _ = writeln!(md, "## Round-trip latency ({})\n", sizes.join(", "));
        md.push_str(MARKDOWN_LATENCY_HEADER);
        md.push_str("\n|:---|:---|:---|---:|---:|---:|---:|---:|\n");
        for l in sorted_latency(&report.latency) {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                l.transport,
                l.variant.replace('|', "\\|"),
                l.pin,
                human_ns(l.figure_ns()),
                l.ci95.map_or("–".into(), |c| human_range(c.lo, c.hi)),
                human_range(l.p10_ns, l.p90_ns),
                human_ns(l.p99_ns),
                l.round_trips
            );
        }
        md.push('\n');
    }

    super::frames::frames_markdown(&mut md, report);

    let case_notes = sorted_results(&report.results)
        .into_iter()
        .filter_map(|r| r.note.as_ref().map(|n| format!("{}: {n}", r.case())));
    targets(&mut md, report);
    let notes: Vec<String> = report
        .notes
        .iter()
        .filter(|n| !n.starts_with("target "))
        .cloned()
        .chain(case_notes)
        .collect();
    bullets(&mut md, "Notes", &notes);
    bullets(&mut md, "Warnings", &report.warnings());

    let _ = writeln!(md, "Machine: {}", report.machine.summary());
    md
}

/// The "Targets" section: one line per target (from the notes), then every
/// entry with its value, interval, goal and verdict.
fn targets(md: &mut String, report: &Report) {
    let lines: Vec<String> = report
        .notes
        .iter()
        .filter(|n| n.starts_with("target "))
        .cloned()
        .collect();
    if lines.is_empty() && report.targets.is_empty() {
        return;
    }
    md.push_str("## Targets\n\n");
    md.push_str(
        "Throughput targets use sustained GB/s; a verdict is *within noise* when the 95 % \
         interval straddles the goal.\n\n",
    );
    for line in &lines {
        let _ = writeln!(md, "- {line}");
    }
    if !lines.is_empty() {
        md.push('\n');
    }
    if report.targets.is_empty() {
        return;
    }
    md.push_str(
        "| target | value | 95 % interval | goal | verdict |\n|:---|---:|---:|---:|:---|\n",
    );
    for t in &report.targets {
        let v = |x: f64| {
            if t.is_ratio() {
                format!("{x:.3}×")
            } else {
                human_ns(x)
            }
        };
        let goal = if t.at_least {
            format!("≥ {}", v(t.goal))
        } else {
            format!("< {}", v(t.goal))
        };
        let _ = writeln!(
            md,
            "| {} | {} | {}–{} | {goal} | {} |",
            t.name.replace('|', "\\|"),
            v(t.value),
            v(t.ci95.lo),
            v(t.ci95.hi),
            t.verdict
        );
    }
    md.push('\n');
}

/// The throughput tables of `results.md` and the pinning each shows: one
/// table when the rows other than the ceilings (memcpy, memcpy-nt) share one
/// pinning (or there are only ceilings: no pinning), otherwise one per
/// pinning, each with the ceiling rows of that pinning (or all of a ceiling's
/// rows when none has it).
fn throughput_tables(results: &[CaseResult]) -> Vec<(Option<Pin>, Vec<&CaseResult>)> {
    let mut pins: Vec<Pin> = results
        .iter()
        .filter(|r| !r.transport.is_ceiling())
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
            let has_pin = |t: Channel| results.iter().any(|r| r.transport == t && r.pin == pin);
            let mut chosen: Vec<&CaseResult> = results
                .iter()
                .filter(|r| {
                    if r.transport.is_ceiling() {
                        !has_pin(r.transport) || r.pin == pin
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

/// "### Best copy": at each size, memcpy's and memcpy-nt's GB/s and which
/// one the "× best copy" column divides by (for the plotted pinning, in
/// steady state); nothing when neither was measured.
fn best_copies(md: &mut String, report: &Report) {
    let mut sizes: Vec<u64> = report
        .results
        .iter()
        .filter(|r| r.transport.is_ceiling())
        .map(|r| r.bytes)
        .collect();
    sizes.sort_unstable();
    sizes.dedup();
    if sizes.is_empty() {
        return;
    }
    let pin = report.plotted_pin();
    md.push_str(
        "### Best copy

",
    );
    md.push_str("| size | memcpy GB/s | memcpy-nt GB/s | best copy |\n|---:|---:|---:|:---|\n");
    for bytes in sizes {
        let gbps = |t: Channel| {
            report
                .results
                .iter()
                .filter(|r| r.transport == t && r.bytes == bytes)
                .rev()
                .max_by_key(|r| (r.pin == pin, r.mode == Mode::Steady))
                .map_or("–".into(), |r| two_decimals(r.gbps))
        };
        let best = best_copy(&report.results, bytes, pin, Mode::Steady)
            .map_or("–", |r| r.transport.as_str());
        let _ = writeln!(
            md,
            "| {} | {} | {} | {best} |",
            human_bytes(bytes),
            gbps(Channel::Memcpy),
            gbps(Channel::MemcpyNt)
        );
    }
    md.push('\n');
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::{self, row, MIB8};

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
        assert!(lines.contains(&MARKDOWN_HEADER));
        assert!(lines.contains(
            &"| shm | steady | – | 8 MiB | 1.40 ms | 1.34–1.45 ms | 6.00 | – | – | 0.60× | 2.00× | 1 | 0 |"
        ));
        assert!(lines.contains(
            &"| memcpy | steady | – | 8 MiB | 839 µs | 805–872 µs | 10.00 | – | – | 1.00× | – | 1 | 0 |"
        ));
        // One pinning besides memcpy's: one table, headed by it.
        assert_eq!(md.matches("### pin = ").count(), 1);
        assert!(lines.contains(&"### pin = split"));
        // tcp at 4 KiB was not measured; shm cold has no cold unix to compare with.
        assert!(!md.contains("| tcp | steady | – | 4 KiB"));
        assert!(md.contains(
            "| shm | cold | – | 8 MiB | 5.59 ms | 5.37–5.82 ms | 1.50 | – | – | 0.15× | – |"
        ));
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
        assert!(lines.contains(&"| shm | spin | split | 250 ns | – | 210–289 ns | 298 ns | 1000 |"));
        assert!(lines.contains(&"- python3 not found: python rows skipped"));
        assert!(md.ends_with(
            "Machine: Test CPU @ 3.00GHz, 2 CPUs, kernel 6.1.0-test, git abc1234, \
             rustc 1.88.0, 2023-11-14T22:13:20Z\n"
        ));
    }

    #[test]
    fn markdown_compares_with_the_best_copy_and_names_it() {
        let mut report = testdata::report();
        let md = to_markdown(&report);
        assert!(md.contains("### Best copy"), "{md}");
        assert!(md.contains("| 8 MiB | 10.00 | – | memcpy |"), "{md}");
        report
            .results
            .push(row(Channel::MemcpyNt, Mode::Steady, Pin::None, MIB8, 12.0));
        let md = to_markdown(&report);
        assert!(md.contains("| 8 MiB | 10.00 | 12.00 | memcpy-nt |"), "{md}");
        assert!(md.contains("| 4 KiB | 8.00 | – | memcpy |"), "{md}");
        // shm's 6 GB/s over memcpy-nt's 12; memcpy's 10 over 12.
        assert!(md.contains(
            "| shm | steady | – | 8 MiB | 1.40 ms | 1.34–1.45 ms | 6.00 | – | – | 0.50× | 2.00× | 1 | 0 |"
        ));
        assert!(md.contains(
            "| memcpy | steady | – | 8 MiB | 839 µs | 805–872 µs | 10.00 | – | – | 0.83× |"
        ));
        let best = md.find("### Best copy").unwrap();
        assert!(md.find("| memcpy-nt | steady | – | 8 MiB |").unwrap() < best);

        report.results.retain(|r| !r.transport.is_ceiling());
        assert!(!to_markdown(&report).contains("### Best copy"));
    }

    #[test]
    fn markdown_splits_tables_by_pin_and_lists_notes_and_warnings() {
        let mut report = testdata::report();
        report.results.push(
            row(Channel::Shm, Mode::Steady, Pin::Same, MIB8, 4.0).with_note("pinned to CPU 0"),
        );
        let wide = CaseResult::from_samples(
            crate::Case {
                transport: Channel::Unix,
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
        assert_eq!(md.matches("| memcpy | steady | – | 8 MiB |").count(), 2);
        // unix at pin=same: median 2.4 ms, so 3.50 GB/s and shm is 1.14× it.
        assert!(md[same..split].contains(
            "| shm | steady | – | 8 MiB | 2.10 ms | 2.01–2.18 ms | 4.00 | – | – | 0.40× | 1.14× | 1 | 0 |"
        ));
        assert!(md[same..split]
            .contains("| unix | steady | – | 8 MiB | 2.40 ms | 800 µs–4.00 ms | 3.50 |"));
        assert!(md.contains("- shm steady pin=same 8 MiB: pinned to CPU 0"));
        assert!(md.contains("## Warnings"));
        assert!(md.contains("- unix steady pin=same 8 MiB: wide spread: p90 is 5.0x p10"));
    }

    #[test]
    fn markdown_shows_intervals_sustained_throughput_and_targets() {
        let md = to_markdown(&testdata::analysed());
        // shm 8 MiB: 6.00 GB/s, rounds ±5 %: the interval runs from the
        // slowest round's figure to the fastest's; sustained, the mean.
        assert!(
            md.contains(
                "| shm | steady | – | 8 MiB | 1.40 ms | 1.34–1.45 ms | 6.00 | 5.71–6.32 | 6.00 |"
            ),
            "{md}"
        );
        assert!(md.contains("## Targets"), "{md}");
        assert!(md.contains("| target | value | 95 % interval | goal | verdict |"));
        assert!(md.contains("| within noise |"), "{md}");
        assert!(
            md.contains("- target within noise: shm ≥ 0.6× best copy"),
            "{md}"
        );
        let notes = &md[md.find("## Notes").unwrap()..];
        assert!(!notes.contains("target "), "{notes}");
        // Latency: the figure with its interval.
        assert!(
            md.contains("| unix | blocking | split | 9.50 µs | "),
            "{md}"
        );
    }
}
