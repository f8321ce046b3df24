//! Synthetic reports with round numbers, for the tests of the exports and the plot.
//!
//! Synthetic reports with round numbers, for the tests of the exports and the
//! plot.

use crate::case::{Case, Channel, Mode, Pin};
use crate::machine::Machine;
use crate::report::{CaseResult, LatencyResult, Report, Round};

/// 4 KiB.
pub const KIB4: u64 = 4096;
/// 8 MiB.
pub const MIB8: u64 = 8 << 20;

/// A row whose median throughput is `gbps` (to within rounding to whole
/// nanoseconds): three samples at the median and ±5 %, one per round (so its
/// figure, the median of the round medians, is the median too).
pub fn row(transport: Channel, mode: Mode, pin: Pin, bytes: u64, gbps: f64) -> CaseResult {
    let t = bytes as f64 / gbps;
    let samples = vec![(t * 1.05) as u64, t.round() as u64, (t * 0.95) as u64];
    let copies = match transport {
        Channel::Memcpy | Channel::MemcpyNt => 1.0,
        Channel::Shm | Channel::ShmStd | Channel::ShmNt | Channel::Memfd => 1.0,
        _ => 2.0,
    };
    let syscalls = match transport {
        Channel::Unix | Channel::Tcp => bytes as f64 / 65536.0,
        _ => 0.0,
    };
    let case = Case {
        transport,
        mode,
        pin,
        bytes,
    };
    let mut r = CaseResult::from_samples(case, samples.clone(), 1, copies, syscalls)
        .expect("three samples");
    r.rounds = samples
        .iter()
        .enumerate()
        .map(|(index, &t)| Round {
            index,
            samples_ns: vec![t],
            wall_ns: t,
            cpu_ms: None,
        })
        .collect();
    r
}

/// A fixed machine, so outputs do not depend on where the tests run.
pub fn machine() -> Machine {
    Machine {
        cpu_model: "Test CPU @ 3.00GHz".into(),
        cpus: 2,
        kernel: "6.1.0-test".into(),
        git_rev: Some("abc1234".into()),
        rustc: Some("rustc 1.88.0".into()),
        os: "linux".into(),
        arch: "x86_64".into(),
        unix_time: 1_700_000_000,
        date: "2023-11-14T22:13:20Z".into(),
    }
}

/// memcpy at 10 GB/s and shm at 6 GB/s for 8 MiB (so shm is 0.60× memcpy),
/// unix at 3 GB/s (shm is 2.00× unix), a cold shm row, tcp at 8 MiB only,
/// 4 KiB rows for memcpy, shm and unix, two latency rows and a note.
pub fn report() -> Report {
    use Channel::*;
    use Mode::{Cold, Steady};
    let mut report = Report::new(machine());
    report.results = vec![
        row(Tcp, Steady, Pin::Split, MIB8, 2.4),
        row(Unix, Steady, Pin::Split, MIB8, 3.0),
        row(Shm, Cold, Pin::Split, MIB8, 1.5),
        row(Shm, Steady, Pin::Split, MIB8, 6.0).with_cpu_ms(12.5, 3.25),
        row(Memcpy, Steady, Pin::None, MIB8, 10.0),
        row(Unix, Steady, Pin::Split, KIB4, 1.0),
        row(Shm, Steady, Pin::Split, KIB4, 2.0),
        row(Memcpy, Steady, Pin::None, KIB4, 8.0),
    ];
    report.latency = vec![
        LatencyResult::from_samples(
            Unix,
            Pin::Split,
            64,
            "blocking",
            (1..=1000).map(|x| 9_000 + x).collect(),
        )
        .expect("samples"),
        LatencyResult::from_samples(
            Shm,
            Pin::Split,
            64,
            "spin",
            (1..=1000).map(|x| 200 + x % 100).collect(),
        )
        .expect("samples"),
    ];
    report.notes = vec!["python3 not found: python rows skipped".into()];
    report
}

/// [`report`], analysed and its targets evaluated with seed 1.
pub fn analysed() -> Report {
    let mut report = report();
    crate::targets::analyse(&mut report, 1);
    report
}

/// Rounds, one per `(median, n)`, each of `n` samples spread evenly around
/// `median × unit` nanoseconds so that its median is exactly that (rounded to
/// whole nanoseconds); each round's wall time is the sum of its samples.
pub fn rounds_with_medians(rounds: &[(f64, usize)], unit: f64) -> Vec<Round> {
    rounds
        .iter()
        .enumerate()
        .map(|(index, &(median, n))| {
            let center = (median * unit).round() as i64;
            let step = (center / 100).max(1);
            let half = n as i64 / 2;
            let samples_ns: Vec<u64> = (-half..=half)
                .filter(|&j| n % 2 == 1 || j != 0)
                .map(|j| (center + j * step) as u64)
                .collect();
            assert_eq!(samples_ns.len(), n);
            Round {
                index,
                wall_ns: samples_ns.iter().sum(),
                samples_ns,
                cpu_ms: None,
            }
        })
        .collect()
}
