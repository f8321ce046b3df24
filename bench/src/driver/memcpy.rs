//! The one-copy ceilings: memcpy and its non-temporal twin, between page-aligned buffers in one process.
//!
//! The one-copy ceilings: memcpy, and the same copy with non-temporal stores
//! (memcpy-nt), between two page-aligned buffers in this process, on the
//! sender's CPU.

use std::time::Instant;

use crate::case::{Case, Channel};
use crate::checksum::PageBuf;
use crate::peer::affinity;
use crate::plan::Budget;
use crate::report::CaseResult;
use common::copy::{copy_payload, CopyMode};
use common::error::{Error, Result};
use common::ledger::{Meter, Usage};

/// memcpy (or memcpy-nt) in this process, on the sender's CPU: the one-copy
/// ceilings.
///
/// Below 1 MiB a sample is the mean of a batch of `1 MiB / size` copies, so
/// that reading the clock (tens of nanoseconds) does not count as copying.
pub fn measure(case: Case, budget: Budget, cpu: Option<usize>) -> Result<CaseResult> {
    let saved = affinity::affinity()?;
    if let Some(cpu) = cpu {
        affinity::pin_to(cpu)?;
    }
    let n = case.bytes as usize;
    // Page-aligned, like the sender's source and a segment's payload.
    let src = PageBuf::pattern(n);
    let mut dst = PageBuf::pattern(n);
    let batch = ((1usize << 20) / n).max(1);
    // memcpy: glibc's; memcpy-nt: non-temporal stores, the copy the shm
    // senders make with `--copy nt`.
    let how = match case.transport {
        Channel::MemcpyNt => CopyMode::Nt,
        _ => CopyMode::Std,
    };
    let copy = |dst: &mut PageBuf| {
        for _ in 0..batch {
            copy_payload(
                dst.as_mut_slice(),
                std::hint::black_box(src.as_slice()),
                how,
            );
            std::hint::black_box(dst.as_mut_slice());
        }
    };
    for _ in 0..budget.warmup.max(1) {
        copy(&mut dst);
    }
    let meter = Meter::start();
    let usage = Usage::read_self();
    let started = Instant::now();
    let mut samples = Vec::with_capacity(budget.max_runs.min(1 << 20));
    while budget.more(samples.len(), started.elapsed()) {
        let t0 = Instant::now();
        copy(&mut dst);
        samples.push((t0.elapsed().as_nanos() / batch as u128) as u64);
    }
    let usage = Usage::read_self().since(&usage);
    let io = meter.finish().proc_io;
    affinity::set_affinity(&saved)?;
    let syscalls = io.map_or(0.0, |io| {
        (io.syscr + io.syscw) as f64 / samples.len().max(1) as f64
    });
    let row = CaseResult::from_samples(case, samples, budget.warmup.max(1), 1.0, syscalls)
        .ok_or_else(|| Error::Usage("memcpy measured nothing".into()))?
        .with_cpu_ms(
            usage.user.as_secs_f64() * 1e3,
            usage.system.as_secs_f64() * 1e3,
        );
    Ok(row)
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::case::{Mode, Pin};

    #[test]
    fn memcpy_measures_the_budget_and_counts_one_copy() {
        let case = Case {
            transport: Channel::Memcpy,
            mode: Mode::Steady,
            pin: Pin::None,
            bytes: 4096,
        };
        let r = measure(case, Budget::fixed(5), None).unwrap();
        assert_eq!(r.runs, 5);
        assert_eq!(r.samples_ns.len(), 5);
        assert_eq!(r.copies, 1.0);
        assert!(r.gbps > 0.0);
    }

    #[test]
    fn memcpy_nt_is_measured_too() {
        let case = Case {
            transport: Channel::MemcpyNt,
            mode: Mode::Steady,
            pin: Pin::None,
            bytes: 1 << 20,
        };
        let r = measure(case, Budget::fixed(3), None).unwrap();
        assert_eq!((r.runs, r.transport), (3, Channel::MemcpyNt));
        assert!(r.gbps > 0.0);
    }
}
