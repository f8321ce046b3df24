//! Turning a benchmark report into files, one exporter per format.
//!
//! Turning a [`Report`] into files, one [`Exporter`] per file:
//! `results.json` (everything, with every raw sample; [`json`]),
//! `results.csv` and `latency.csv` (one row per case, for spreadsheets;
//! [`csv`], [`latency_csv`]), `results.md` (tables for people; [`markdown`]),
//! `throughput.svg` and `latency.svg` (the plots; [`svg`], [`latency_svg`]),
//! `frames.csv` and `frames.svg` (the frame rows; [`frames`], [`frames_svg`]).
//! [`write_all`] writes them all.
//!
//! The tables share their order of rows ([`order`]) and their comparisons
//! with reference rows ([`ratios`]).

pub mod csv;
pub mod frames;
pub mod frames_svg;
pub mod json;
pub mod latency_csv;
pub mod latency_svg;
pub mod markdown;
pub mod order;
pub mod ratios;
pub mod svg;

use std::path::{Path, PathBuf};

use crate::report::Report;
use common::error::{Error, IoContext, Result};

pub use csv::CSV_HEADER;
pub use frames::{FRAMES_CSV_HEADER, FRAMES_MARKDOWN_HEADER};
pub use latency_csv::LATENCY_CSV_HEADER;
pub use markdown::{to_markdown, MARKDOWN_HEADER, MARKDOWN_LATENCY_HEADER};

/// One output file of a report.
pub trait Exporter {
    /// The name of the file this exporter writes, e.g. `results.json`.
    fn file_name(&self) -> &'static str;

    /// The file's contents for `report`.
    ///
    /// # Errors
    /// A [`RenderError`] when the report cannot be put into this format.
    fn render(&self, report: &Report) -> std::result::Result<String, RenderError>;
}

/// Every exporter, in the order [`write_all`] writes their files.
pub const ALL: &[&dyn Exporter] = &[
    &json::Json,
    &csv::Csv,
    &latency_csv::LatencyCsv,
    &markdown::Markdown,
    &svg::Svg,
    &latency_svg::LatencySvg,
    &frames::FramesCsv,
    &frames_svg::FramesSvg,
];

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

/// Writes the file of every exporter in [`ALL`] for `report` into `dir`,
/// creating it (and its parents) when missing. Returns the paths written, in
/// [`ALL`] order.
///
/// # Errors
///
/// [`Error::Io`] when the directory cannot be created, [`Error::Output`]
/// naming the file that could not be rendered or written.
pub fn write_all(report: &Report, dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).context(|| format!("create directory {}", dir.display()))?;
    ALL.iter()
        .map(|&exporter| write(report, dir, exporter))
        .collect()
}

/// Writes one exporter's file for `report` into the existing directory
/// `dir`; returns the path written.
///
/// # Errors
///
/// [`Error::Output`] naming the file that could not be rendered or written.
pub fn write(report: &Report, dir: &Path, exporter: &dyn Exporter) -> Result<PathBuf> {
    let path = dir.join(exporter.file_name());
    let failed = |reason: String| Error::Output {
        path: path.clone(),
        reason,
    };
    let text = exporter.render(report).map_err(|e| failed(e.to_string()))?;
    std::fs::write(&path, text).map_err(|e| failed(e.to_string()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::csv::to_csv;
    use super::json::{from_json, to_json};
    use super::latency_csv::to_latency_csv;
    use super::*;
    use crate::testdata;

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
                "throughput.svg",
                "latency.svg",
                "frames.csv",
                "frames.svg"
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
}
