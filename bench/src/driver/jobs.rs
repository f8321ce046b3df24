//! The units of work of a run: jobs, blocks of throughput cases, and merged rounds.
//!
//! The units of work of a run: the jobs, the blocks of throughput cases
//! that take turns in rounds, and how a case's rounds merge into one row.

use crate::case::{Case, Channel, Pin, Wait};
use crate::frames::{FrameCase, FrameSize};
use crate::report::{CaseResult, LatencyResult};
use crate::units::human_bytes;

/// One unit of work.
#[derive(Clone, Debug)]
pub(super) enum Job {
    Memcpy(Case),
    /// A case of two peer processes, in a waiting mode when `--wait` sets
    /// how it waits.
    Peers(Case, Option<Wait>),
    Python(Case),
    Iceoryx2(Case, Option<Wait>),
    Latency {
        transport: Channel,
        pin: Pin,
        variant: &'static str,
    },
    /// One copy of a frame in this process: the frame rows' ceiling.
    FrameCopy(Case, FrameSize),
    /// A frame stream: a producer and its consumers.
    Frames(FrameCase),
}

impl Job {
    pub(super) fn label(&self, message_bytes: u64) -> String {
        match self {
            Job::Peers(c, Some(w)) | Job::Iceoryx2(c, Some(w)) => format!("{c} wait={w}"),
            Job::Memcpy(c) | Job::Peers(c, None) | Job::Python(c) | Job::Iceoryx2(c, None) => {
                c.to_string()
            }
            Job::Latency {
                transport,
                pin,
                variant,
            } => format!(
                "{transport} round trip {variant} pin={pin} {}",
                human_bytes(message_bytes)
            ),
            Job::FrameCopy(c, size) => format!("frames {} ceiling: {}", size, c.transport),
            Job::Frames(f) => f.to_string(),
        }
    }
}

/// The jobs cut into blocks that run in rounds together, taking turns:
/// the throughput cases of one placement and size; the latency cases of
/// one placement; the frame rows of one frame size and their ceiling.
pub(super) fn blocks(jobs: &[Job]) -> Vec<Vec<Job>> {
    let key = |job: &Job| match job {
        Job::Memcpy(c) | Job::Peers(c, _) | Job::Python(c) | Job::Iceoryx2(c, _) => {
            (0, c.pin, Some(c.bytes))
        }
        Job::Latency { pin, .. } => (1, *pin, None),
        Job::FrameCopy(_, size) => (2, Pin::Split, Some(size.bytes())),
        Job::Frames(f) => (2, Pin::Split, Some(f.size.bytes())),
    };
    let mut out: Vec<Vec<Job>> = Vec::new();
    for job in jobs {
        match out.last_mut() {
            Some(block) if key(&block[0]) == key(job) => block.push(job.clone()),
            _ => out.push(vec![job.clone()]),
        }
    }
    out
}

/// A small seeded generator (SplitMix64) for the order of the cases: the
/// same seed gives the same order on every machine.
pub(super) struct Shuffle(u64);

impl Shuffle {
    pub(super) fn new(seed: u64) -> Shuffle {
        Shuffle(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A random order of `0..n` (Fisher-Yates).
    pub(super) fn order(&mut self, n: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            order.swap(i, j);
        }
        order
    }
}

/// One case's rounds as one row: every sample, warm-ups and CPU time added
/// up, copies and system calls per transfer weighted by each round's runs,
/// the rounds' distinct notes, and every round kept as it was (`rounds`).
/// `None` without rounds.
pub(super) fn merge(parts: Vec<CaseResult>) -> Option<CaseResult> {
    if parts.len() <= 1 {
        return parts.into_iter().next();
    }
    let runs: usize = parts.iter().map(|p| p.runs).sum();
    let weighted = |f: fn(&CaseResult) -> f64| {
        parts.iter().map(|p| f(p) * p.runs as f64).sum::<f64>() / runs.max(1) as f64
    };
    let samples: Vec<u64> = parts
        .iter()
        .flat_map(|p| p.samples_ns.iter().copied())
        .collect();
    let warmup = parts.iter().map(|p| p.warmup).sum();
    let mut row = CaseResult::from_samples(
        parts[0].case(),
        samples,
        warmup,
        weighted(|p| p.copies),
        weighted(|p| p.syscalls),
    )?;
    let user: Option<f64> = parts.iter().map(|p| p.cpu_user_ms).sum();
    let sys: Option<f64> = parts.iter().map(|p| p.cpu_sys_ms).sum();
    if let (Some(user), Some(sys)) = (user, sys) {
        row = row.with_cpu_ms(user, sys);
    }
    let mut notes: Vec<&str> = Vec::new();
    for note in parts.iter().filter_map(|p| p.note.as_deref()) {
        if !notes.contains(&note) {
            notes.push(note);
        }
    }
    if !notes.is_empty() {
        row = row.with_note(notes.join("; "));
    }
    row.copy = parts[0].copy.clone();
    row.wait = parts[0].wait;
    row.socket_buffers = parts[0].socket_buffers;
    row.rounds = parts.into_iter().flat_map(|p| p.rounds).collect();
    Some(row)
}

/// One latency case's rounds as one row: every round trip, and every round
/// kept as it was. `None` without rounds.
pub(super) fn merge_latency(parts: Vec<LatencyResult>) -> Option<LatencyResult> {
    if parts.len() <= 1 {
        return parts.into_iter().next();
    }
    let first = &parts[0];
    let samples: Vec<u64> = parts
        .iter()
        .flat_map(|p| p.samples_ns.iter().copied())
        .collect();
    let mut row = LatencyResult::from_samples(
        first.transport,
        first.pin,
        first.bytes,
        first.variant.clone(),
        samples,
    )?;
    row.rounds = parts.into_iter().flat_map(|p| p.rounds).collect();
    Some(row)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::case::Mode;

    #[test]
    fn rounds_merge_into_one_row() {
        let case = Case {
            transport: Channel::Unix,
            mode: Mode::Steady,
            pin: Pin::Split,
            bytes: 4096,
        };
        let a = CaseResult::from_samples(case, vec![10, 20], 1, 2.0, 4.0)
            .unwrap()
            .with_cpu_ms(1.0, 2.0)
            .with_note("x");
        let b = CaseResult::from_samples(case, vec![30, 40, 50, 60], 1, 2.0, 7.0)
            .unwrap()
            .with_cpu_ms(3.0, 4.0)
            .with_note("x");
        let round = |index, samples: &[u64]| crate::report::Round {
            index,
            samples_ns: samples.to_vec(),
            wall_ns: samples.iter().sum(),
            cpu_ms: Some(1.0),
        };
        let mut a = a;
        a.rounds = vec![round(3, &[10, 20])];
        let mut b = b;
        b.rounds = vec![round(7, &[30, 40, 50, 60])];
        let m = merge(vec![a.clone(), b]).unwrap();
        let indexes: Vec<usize> = m.rounds.iter().map(|r| r.index).collect();
        assert_eq!(indexes, [3, 7], "each round kept, in order");
        assert_eq!(m.rounds[1].samples_ns, [30, 40, 50, 60]);
        assert_eq!(m.samples_ns, [10, 20, 30, 40, 50, 60]);
        assert_eq!((m.runs, m.warmup), (6, 2));
        assert_eq!(m.median_ns, 35.0);
        assert_eq!(m.copies, 2.0);
        // (4 * 2 + 7 * 4) / 6 system calls per transfer.
        assert_eq!(m.syscalls, 6.0);
        assert_eq!((m.cpu_user_ms, m.cpu_sys_ms), (Some(4.0), Some(6.0)));
        assert_eq!(m.note.as_deref(), Some("x"));
        assert_eq!(merge(vec![a.clone()]), Some(a));
        assert_eq!(merge(Vec::new()), None);
    }

    #[test]
    fn blocks_group_the_throughput_cases_of_one_size() {
        let case = |transport, bytes| Case {
            transport,
            mode: Mode::Steady,
            pin: Pin::Split,
            bytes,
        };
        let jobs = vec![
            Job::Memcpy(case(Channel::Memcpy, 4096)),
            Job::Peers(case(Channel::Shm, 4096), Some(Wait::Spin)),
            Job::Peers(case(Channel::Shm, 4096), Some(Wait::Block)),
            Job::Peers(case(Channel::Shm, 8192), None),
            Job::Latency {
                transport: Channel::Shm,
                pin: Pin::Same,
                variant: "blocking",
            },
            Job::Latency {
                transport: Channel::Unix,
                pin: Pin::Same,
                variant: "blocking",
            },
        ];
        let sizes: Vec<usize> = blocks(&jobs).iter().map(Vec::len).collect();
        assert_eq!(sizes, [3, 1, 2], "the latency cases of one pin take turns");
    }

    #[test]
    fn a_seed_gives_one_random_order() {
        let mut a = Shuffle::new(42);
        let mut b = Shuffle::new(42);
        let orders: Vec<Vec<usize>> = (0..20).map(|_| a.order(6)).collect();
        assert_eq!(orders, (0..20).map(|_| b.order(6)).collect::<Vec<_>>());
        for order in &orders {
            let mut sorted = order.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, [0, 1, 2, 3, 4, 5], "a permutation");
        }
        assert!(orders.iter().any(|o| o != &orders[0]), "the order changes");
        assert_ne!(Shuffle::new(1).order(6), Shuffle::new(2).order(6));
        assert!(Shuffle::new(7).order(0).is_empty());
    }

    #[test]
    fn latency_rounds_merge_into_one_row() {
        let part = |index, samples: Vec<u64>| {
            let mut r =
                LatencyResult::from_samples(Channel::Unix, Pin::Split, 64, "spin", samples.clone())
                    .unwrap();
            r.rounds = vec![crate::report::Round {
                index,
                samples_ns: samples,
                wall_ns: 0,
                cpu_ms: None,
            }];
            r
        };
        let m = merge_latency(vec![part(1, vec![5, 6]), part(4, vec![7])]).unwrap();
        assert_eq!(m.samples_ns, [5, 6, 7]);
        assert_eq!(m.round_trips, 3);
        assert_eq!(m.rounds.iter().map(|r| r.index).collect::<Vec<_>>(), [1, 4]);
        assert!(merge_latency(Vec::new()).is_none());
    }
}
