//! The order of rows in every table and CSV file.
//!
//! The order of rows in every table and CSV file: throughput rows by size,
//! then transport (in the order of [`Channel::ALL`](crate::case::Channel::ALL)),
//! mode and pinning; latency rows by transport, variant, pinning and size.

use crate::report::{CaseResult, LatencyResult};

/// Throughput rows in table order: by size, then transport (in the order of
/// [`Channel::ALL`](crate::case::Channel::ALL)), then mode (steady before cold), then pin.
pub fn sorted_results(results: &[CaseResult]) -> Vec<&CaseResult> {
    let mut rows: Vec<&CaseResult> = results.iter().collect();
    rows.sort_by_key(|r| (r.bytes, r.transport, r.mode, r.pin));
    rows
}

/// Latency rows in table order: by transport, then variant, pin and size.
pub fn sorted_latency(latency: &[LatencyResult]) -> Vec<&LatencyResult> {
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
