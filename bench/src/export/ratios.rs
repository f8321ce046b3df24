//! A throughput row's ratios to its two references, memcpy and the Unix socket.
//!
//! How a throughput row compares with its two references, as the tables
//! and `results.csv` show it:
//!
//! - `x_memcpy` (`× best copy`): this row's GB/s divided by the GB/s of the
//!   best copy of the same size: the faster of the `memcpy` and `memcpy-nt`
//!   rows ([`best_copy`]), named in `best_copy`. They run in one process, so
//!   pinning and mode barely matter to them: of each, the row with the same
//!   pin is preferred, then the one with the same mode, but any row of the
//!   same size will do;
//! - `x_unix` (`× unix`): divided by the unix-socket row of the same size,
//!   mode and pin, and only that one.
//!
//! A ratio is missing (empty in CSV, "–" in Markdown) when there is no such
//! reference row or its throughput is 0.

use crate::case::{Channel, Mode, Pin};
use crate::report::CaseResult;

/// How one throughput row compares with its references (see the module
/// documentation for which rows those are).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Ratios {
    /// This row's GB/s over the best copy's at the same size.
    pub x_memcpy: Option<f64>,
    /// Which copy that was: `memcpy` or `memcpy-nt`.
    pub best_copy: Option<Channel>,
    /// This row's GB/s over the unix socket's at the same size, mode, pin
    /// and waiting mode (a row without one, such as memcpy or memfd, over
    /// the unix row that spins where the processes are split).
    pub x_unix: Option<f64>,
}

/// The best single copy of `bytes` for a row of `pin` and `mode`: of the
/// `memcpy` and `memcpy-nt` rows of that size (each: the one with the same
/// pin, then the same mode, preferred), the one with more GB/s.
pub fn best_copy(results: &[CaseResult], bytes: u64, pin: Pin, mode: Mode) -> Option<&CaseResult> {
    [Channel::Memcpy, Channel::MemcpyNt]
        .into_iter()
        .filter_map(|t| {
            results
                .iter()
                .filter(|r| r.transport == t && r.bytes == bytes)
                // max_by_key keeps the last of equals; reversing keeps the first.
                .rev()
                .max_by_key(|r| (r.pin == pin, r.mode == mode))
        })
        .filter(|r| r.gbps > 0.0 && r.gbps.is_finite())
        // Ties go to memcpy, the first.
        .rev()
        .max_by(|a, b| a.gbps.total_cmp(&b.gbps))
}

/// The ratios of `row` to its references among `results`; shared by the CSV
/// and Markdown exports.
pub fn ratios(results: &[CaseResult], row: &CaseResult) -> Ratios {
    let memcpy = best_copy(results, row.bytes, row.pin, row.mode);
    let unix = results
        .iter()
        .filter(|r| {
            r.transport == Channel::Unix
                && r.bytes == row.bytes
                && r.mode == row.mode
                && r.pin == row.pin
        })
        // Like for like: the unix row in this row's waiting mode first.
        .max_by_key(|r| (r.wait == row.wait, r.wait != Some(crate::case::Wait::Block)));
    let over = |reference: Option<&CaseResult>| {
        let base = reference?.gbps;
        let ratio = row.gbps / base;
        (base > 0.0 && ratio.is_finite()).then_some(ratio)
    };
    Ratios {
        x_memcpy: over(memcpy),
        best_copy: memcpy.map(|r| r.transport),
        x_unix: over(unix),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
        assert_eq!(x.best_copy, Some(Channel::Memcpy));
        results[1].gbps = 0.0;
        assert_eq!(ratios(&results, &results[2]).x_memcpy, None);
    }

    #[test]
    fn the_reference_is_the_faster_of_memcpy_and_memcpy_nt() {
        let mut results = vec![
            row(Channel::Memcpy, Mode::Steady, Pin::Split, KIB4, 8.0),
            row(Channel::MemcpyNt, Mode::Steady, Pin::Split, KIB4, 10.0),
            row(Channel::Shm, Mode::Steady, Pin::Split, KIB4, 5.0),
        ];
        let x = ratios(&results, &results[2]);
        assert!((x.x_memcpy.unwrap() - 0.5).abs() < 1e-3, "{x:?}");
        assert_eq!(x.best_copy, Some(Channel::MemcpyNt));
        // memcpy itself, against the faster memcpy-nt.
        let x = ratios(&results, &results[0]);
        assert!((x.x_memcpy.unwrap() - 0.8).abs() < 1e-3, "{x:?}");
        results[1].gbps = 4.0;
        let x = ratios(&results, &results[2]);
        assert_eq!(x.best_copy, Some(Channel::Memcpy));
        assert!((x.x_memcpy.unwrap() - 0.625).abs() < 1e-3, "{x:?}");
        // memcpy-nt alone still is a reference.
        results.remove(0);
        assert_eq!(
            ratios(&results, &results[1]).best_copy,
            Some(Channel::MemcpyNt)
        );
    }
}
