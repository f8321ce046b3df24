//! The units of work of a run: jobs, blocks of throughput cases, and merged rounds.
//!
//! The units of work of a run: the jobs, the blocks of throughput cases
//! that take turns in rounds, and how a case's rounds merge into one row.

use crate::case::{Case, Channel, Pin};
use crate::report::CaseResult;
use crate::units::human_bytes;

/// One unit of work.
#[derive(Clone, Debug)]
pub(super) enum Job {
    Memcpy(Case),
    Peers(Case),
    Python(Case),
    Iceoryx2(Case),
    Latency {
        transport: Channel,
        pin: Pin,
        variant: &'static str,
    },
}

impl Job {
    pub(super) fn label(&self, message_bytes: u64) -> String {
        match self {
            Job::Memcpy(c) | Job::Peers(c) | Job::Python(c) | Job::Iceoryx2(c) => c.to_string(),
            Job::Latency {
                transport,
                pin,
                variant,
            } => format!(
                "{transport} round trip {variant} pin={pin} {}",
                human_bytes(message_bytes)
            ),
        }
    }
}

/// Whether a job is a throughput case (run in rounds) rather than a
/// latency case.
pub(super) fn is_throughput(job: &Job) -> bool {
    !matches!(job, Job::Latency { .. })
}

/// The jobs cut into blocks that run in rounds together: the throughput
/// cases of one placement and size; each latency case alone.
pub(super) fn blocks(jobs: &[Job]) -> Vec<Vec<Job>> {
    let key = |job: &Job| match job {
        Job::Memcpy(c) | Job::Peers(c) | Job::Python(c) | Job::Iceoryx2(c) => {
            Some((c.pin, c.bytes))
        }
        Job::Latency { .. } => None,
    };
    let mut out: Vec<Vec<Job>> = Vec::new();
    for job in jobs {
        match out.last_mut() {
            Some(block) if key(job).is_some() && key(&block[0]) == key(job) => {
                block.push(job.clone())
            }
            _ => out.push(vec![job.clone()]),
        }
    }
    out
}

/// One case's rounds as one row: every sample, warm-ups and CPU time added
/// up, copies and system calls per transfer weighted by each round's runs,
/// the rounds' distinct notes. `None` without rounds.
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
        let m = merge(vec![a.clone(), b]).unwrap();
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
            Job::Peers(case(Channel::Shm, 4096)),
            Job::Peers(case(Channel::Shm, 8192)),
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
        assert_eq!(sizes, [2, 1, 1, 1]);
    }
}
