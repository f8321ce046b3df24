//! The benchmark behind `p1p2-bench` and the demo's comparison behind `p1p2-compare`.
//!
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
//!  "frames": [{"transport": "shm", "width": 1920, "height": 1080,
//!              "consumers": 3, "policy": "every", "fps": ...,
//!              "latency_us": {"p50": ..., "p99": ...}, "memcpy_fps": ...,
//!              "copies": ..., "copies_witnessed": ..., ...}, ...],
//!  "notes": [...]}
//! ```
//!
//! Every floating-point value that the constructors compute is finite (a zero
//! median gives a throughput of 0, not infinity), because JSON has no NaN or
//! infinity and `serde_json` would write them as `null`.
//!
//! # Modules
//! One concept each; none imports a module that imports it back.
//! - [`case`]: what identifies a case (transport, mode, pinning, size);
//! - [`machine`]: the machine and build a run measured;
//! - [`report`]: every case's samples and statistics, as in `results.json`;
//! - [`frames`]: frame streams (`producer --stream`, `consumer --stream`):
//!   frames a second, latency and the memcpy-bound ceiling;
//! - [`stats`]: percentiles, mean, deviation and spread warnings;
//! - [`bootstrap`]: rounds as the unit: the figure and 95 % intervals;
//! - [`baseline`]: `p1p2-bench compare`, two runs row by row;
//! - [`units`]: sizes, times and ratios as people read them;
//! - [`export`]: one [`export::Exporter`] per file: `results.json`,
//!   `results.csv`, `latency.csv`, `results.md`, `throughput.svg`,
//!   `latency.svg`, `frames.csv` and `frames.svg`;
//! - [`targets`]: the figures this project aims for, checked against a report;
//! - [`plan`]: payload sizes, the lists given to `p1p2-bench`, and how many
//!   runs a case gets;
//! - [`checksum`]: the payload's pattern, stamp and checksum;
//! - [`peer`]: the sender's and the receiver's side of a case, run by the
//!   `p1p2-bench-peer` binary;
//! - [`driver`]: runs every case and writes the files;
//! - [`compare`]: the demo's side-by-side table of the transports;
//! - [`siblings`]: finds the executables the drivers start.

#![deny(missing_docs)]

pub mod baseline;
pub mod bootstrap;
pub mod case;
pub mod checksum;
pub mod compare;
pub mod driver;
pub mod export;
pub mod frames;
pub mod machine;
pub mod peer;
pub mod plan;
pub mod report;
pub mod siblings;
pub mod stats;
pub mod targets;
#[cfg(test)]
mod testdata;
pub mod units;

pub use case::{Case, Channel, Mode, Pin, Wait};
pub use machine::Machine;
pub use report::{CaseResult, Config, LatencyResult, Report};
