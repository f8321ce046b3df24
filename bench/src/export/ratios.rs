//! A throughput row's ratios to its two references, memcpy and the Unix socket.
//!
//! How a throughput row compares with its two references, as the tables
//! and `results.csv` show it:
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

use crate::case::Channel;
use crate::report::CaseResult;

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
        .filter(|r| r.transport == Channel::Memcpy && r.bytes == row.bytes)
        // max_by_key keeps the last of equals; reversing keeps the first.
        .rev()
        .max_by_key(|r| (r.pin == row.pin, r.mode == row.mode));
    let unix = results.iter().find(|r| {
        r.transport == Channel::Unix
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::case::{Mode, Pin};
    use crate::testdata::{row, KIB4};

    #[test]
    fn ratios_need_a_reference_with_throughput() {
        let mut results = vec![
            row(Channel::Memcpy, Mode::Steady, Pin::Split, KIB4, 8.0),
            row(Channel::Memcpy, Mode::Steady, Pin::Same, KIB4, 4.0),
            row(Channel::Shm, Mode::Steady, Pin::Same, KIB4, 2.0),
        ];
        // The memcpy row with the same pin is the reference.
        let x = ratios(&results, &results[2]);
        assert!((x.x_memcpy.unwrap() - 0.5).abs() < 1e-3);
        assert_eq!(x.x_unix, None);
        results[1].gbps = 0.0;
        assert_eq!(ratios(&results, &results[2]).x_memcpy, None);
    }
}
