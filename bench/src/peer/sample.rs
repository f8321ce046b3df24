//! The peers' bookkeeping: warm-up and measured transfers, samples and counters.
//!
//! The peers' bookkeeping: which transfers are warm-up and which are
//! measured, the samples, and the kernel's and getrusage's counters over the
//! measured ones.

use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::report::PeerReport;
use super::spec::Spec;
use crate::checksum::{stamp, PageBuf};
use crate::plan::Budget;
use common::error::Result;
use common::ledger::{Meter, ProcIo, Usage};

/// Non-blocking reads (`recv(MSG_DONTWAIT)`) this process made while
/// busy-polling a socket, answered or not: read-family system calls that
/// /proc/self/io does not count (it counts `read(2)`, not `recv(2)`), added
/// to its count over the window.
pub static POLLED_READS: AtomicU64 = AtomicU64::new(0);

/// The kernel's and getrusage's counters over the measured runs.
struct Window {
    meter: Meter,
    usage: Usage,
    polled: u64,
}

impl Window {
    fn start() -> Window {
        Window {
            meter: Meter::start(),
            usage: Usage::read_self(),
            polled: POLLED_READS.load(Ordering::Relaxed),
        }
    }

    /// Fills the counters of `report`; `extra_reads` / `extra_writes` are
    /// system calls this process made over the window that are not part of
    /// the transfers (a final end-of-stream read, progress lines).
    fn finish(self, report: &mut PeerReport, extra_reads: u64, extra_writes: (u64, u64)) {
        let witness = self.meter.finish();
        let usage = Usage::read_self().since(&self.usage);
        let polled = POLLED_READS.load(Ordering::Relaxed) - self.polled;
        report.proc_io = witness.proc_io.map(|io| ProcIo {
            syscr: (io.syscr + polled).saturating_sub(extra_reads),
            syscw: io.syscw.saturating_sub(extra_writes.0),
            wchar: io.wchar.saturating_sub(extra_writes.1),
            rchar: io.rchar,
        });
        report.user_ms = usage.user.as_secs_f64() * 1e3;
        report.sys_ms = usage.system.as_secs_f64() * 1e3;
        report.minflt = witness.minflt;
        report.nvcsw = witness.nvcsw;
        report.nivcsw = witness.nivcsw;
    }
}

/// Progress lines on stderr (`progress RUNS LAST_NS`), at most every 200 ms,
/// each one `write(2)`, counted so they can be subtracted.
struct Progress {
    enabled: bool,
    last: Instant,
    writes: u64,
    bytes: u64,
}

impl Progress {
    fn new(enabled: bool) -> Progress {
        Progress {
            enabled,
            last: Instant::now(),
            writes: 0,
            bytes: 0,
        }
    }

    fn tick(&mut self, now: Instant, runs: usize, last_ns: u64) {
        if !self.enabled || now.duration_since(self.last) < Duration::from_millis(200) {
            return;
        }
        self.last = now;
        let mut line = [0u8; 64];
        let mut cursor = std::io::Cursor::new(&mut line[..]);
        let _ = writeln!(cursor, "progress {runs} {last_ns}");
        let len = cursor.position() as usize;
        if std::io::stderr().write_all(&line[..len]).is_ok() {
            self.writes += 1;
            self.bytes += len as u64;
        }
    }
}

/// The sender's loop bookkeeping: warm-up, then measured runs within the
/// budget, with the measurement window around the measured ones.
///
/// Transfers are counted as they are started ([`Measure::more`]) and samples
/// as they are recorded ([`Measure::record`]); the first `budget.warmup`
/// samples are warm-up. A pipelined sender records a sample per
/// acknowledgement but starts one transfer more (`lead`), whose
/// acknowledgement only starts the clock.
pub struct Measure {
    budget: Budget,
    lead: usize,
    sent: usize,
    warmed: usize,
    samples: Vec<u64>,
    started: Option<Instant>,
    /// Start of the first measured sample and end of the last.
    span: Option<(Instant, Instant)>,
    window: Option<Window>,
    progress: Progress,
}

/// The clock of one sample in [`Measure::stamped`].
pub struct Lap {
    end: Option<Instant>,
}

impl Lap {
    /// Ends the sample here.
    pub fn stop(&mut self) {
        self.end = Some(Instant::now());
    }
}

impl Measure {
    /// Bookkeeping for `spec`'s budget; `lead` extra unmeasured transfers
    /// (1 for a pipelined sender, else 0).
    pub fn new(spec: &Spec, lead: usize) -> Measure {
        Measure {
            budget: spec.budget,
            lead,
            sent: 0,
            warmed: 0,
            samples: Vec::with_capacity(spec.budget.max_runs.min(1 << 20)),
            started: None,
            span: None,
            window: None,
            progress: Progress::new(spec.progress),
        }
    }

    fn warmup(&self) -> usize {
        self.budget.warmup.max(1)
    }

    /// Whether to start another transfer; opens the window before the first
    /// measured one.
    pub fn more(&mut self) -> bool {
        let unmeasured = self.warmup() + self.lead;
        if self.sent >= unmeasured {
            let started = *self.started.get_or_insert_with(|| {
                self.window = Some(Window::start());
                Instant::now()
            });
            if !self.budget.more(self.sent - unmeasured, started.elapsed()) {
                return false;
            }
        }
        self.sent += 1;
        true
    }

    /// Records one sample that started at `t0` and ended at `t1`.
    pub fn record(&mut self, t0: Instant, t1: Instant) {
        let ns = t1.duration_since(t0).as_nanos().min(u128::from(u64::MAX)) as u64;
        if self.warmed < self.warmup() {
            self.warmed += 1;
        } else {
            self.samples.push(ns);
            let first = self.span.map_or(t0, |(first, _)| first);
            self.span = Some((first, t1));
        }
        self.progress.tick(t1, self.samples.len(), ns);
    }

    /// The sender's loop of one transfer at a time until the budget is
    /// spent: each stamps `src` with its sequence number (1, 2, ...) and is
    /// timed from just before `transfer(payload, seq, lap)` to its
    /// `lap.stop()`, or to its end if it does not call it (what comes after
    /// the stop, such as checking a reply, is not part of the sample).
    /// Returns the last sequence number.
    ///
    /// # Errors
    /// The first error of `transfer`.
    pub fn stamped(
        &mut self,
        src: &mut PageBuf,
        mut transfer: impl FnMut(&[u8], u64, &mut Lap) -> Result<()>,
    ) -> Result<u64> {
        let mut seq = 0u64;
        while self.more() {
            seq += 1;
            stamp(src.as_mut_slice(), seq);
            let mut lap = Lap { end: None };
            let t0 = Instant::now();
            transfer(src.as_slice(), seq, &mut lap)?;
            self.record(t0, lap.end.unwrap_or_else(Instant::now));
        }
        Ok(seq)
    }

    /// Closes the window; `copies` is this process's copies per transfer.
    pub fn finish(mut self, copies: f64) -> PeerReport {
        let mut report = PeerReport {
            warmup: self.warmed,
            runs: self.samples.len(),
            copies,
            capped: self.budget.capped(self.samples.len()),
            ..PeerReport::default()
        };
        let window = self.window.take().unwrap_or_else(Window::start);
        window.finish(&mut report, 0, (self.progress.writes, self.progress.bytes));
        report.samples_ns = self.samples;
        report.wall_ns = self.span.map_or(0, |(first, last)| {
            last.duration_since(first)
                .as_nanos()
                .min(u128::from(u64::MAX)) as u64
        });
        report
    }

    /// The pipelined sender's loop, shared by shm-pipelined and the
    /// streamed sockets: `send(seq)` starts transfer `seq` (1, 2, ...) and
    /// `acked(seq)` waits for its acknowledgement; at most `depth`
    /// transfers are outstanding when a send returns. The sample of
    /// transfer N is the interval between the acknowledgements of N - 1 and
    /// N as this process observes them: the steady-state period of the
    /// pipeline. Returns the last sequence number.
    ///
    /// Drained samples are excluded: the acknowledgements of the last
    /// `depth - 1` transfers come after the sender has stopped sending, so
    /// their intervals time the receiver alone (no copy into the pipeline
    /// overlaps them). They are not recorded; the budget counts `depth`
    /// unmeasured transfers (one whose acknowledgement starts the clock,
    /// `depth - 1` drained), so the measured count is unchanged. Build the
    /// [`Measure`] with `lead` = `depth`.
    ///
    /// # Errors
    /// The first error of `send` or `acked`.
    pub fn pipelined(
        &mut self,
        depth: u64,
        mut send: impl FnMut(u64) -> Result<()>,
        mut acked: impl FnMut(u64) -> Result<()>,
    ) -> Result<u64> {
        let depth = depth.max(1);
        let mut seq = 0u64;
        let mut done = 0u64;
        let mut last = Instant::now();
        let mut observe = |m: &mut Measure, done: &mut u64, sent: u64| -> Result<()> {
            let next = *done + 1;
            acked(next)?;
            let now = Instant::now();
            // Transfer next + depth - 1 was sent while next was in flight,
            // unless the loop had ended: then this interval is a drain.
            if next > 1 && next + depth - 1 <= sent {
                m.record(last, now);
            }
            last = now;
            *done = next;
            Ok(())
        };
        while self.more() {
            seq += 1;
            if seq > depth {
                // The acknowledgement of transfer seq - depth frees its place.
                observe(self, &mut done, u64::MAX)?;
            }
            send(seq)?;
        }
        while done < seq {
            observe(self, &mut done, seq)?;
        }
        Ok(seq)
    }
}

/// The receiver's bookkeeping: which transfers are warm-up, and the window
/// around the measured ones.
pub struct Tally {
    warmup: usize,
    seq: u64,
    window: Option<Window>,
}

impl Tally {
    /// Bookkeeping for `spec`'s warm-up count.
    pub fn new(spec: &Spec) -> Tally {
        Tally {
            warmup: spec.budget.warmup.max(1),
            seq: 0,
            window: None,
        }
    }

    /// The sequence number of the next transfer; opens the window before
    /// the first measured one.
    pub fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        if self.seq == self.warmup as u64 + 1 {
            self.window = Some(Window::start());
        }
        self.seq
    }

    /// Closes the window after the stop; `copies` per measured transfer,
    /// `extra_reads` read calls that were not transfers (an end-of-stream read).
    pub fn finish(mut self, copies: f64, extra_reads: u64) -> PeerReport {
        let done = self.seq.saturating_sub(1) as usize;
        let mut report = PeerReport {
            warmup: done.min(self.warmup),
            runs: done.saturating_sub(self.warmup),
            copies,
            ..PeerReport::default()
        };
        let window = self.window.take().unwrap_or_else(Window::start);
        window.finish(&mut report, extra_reads, (0, 0));
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checksum::read_stamp;

    #[test]
    fn stamped_transfers_are_numbered_and_timed_up_to_the_stop() {
        let mut m = Measure::new(&Spec::example(), 0);
        let mut src = PageBuf::pattern(64);
        let mut seen = Vec::new();
        let last = m
            .stamped(&mut src, |payload, seq, lap| {
                assert_eq!(read_stamp(payload), Some(seq), "the payload's stamp");
                seen.push(seq);
                lap.stop();
                // After the stop: not part of the sample.
                std::thread::sleep(Duration::from_millis(50));
                Ok(())
            })
            .unwrap();
        assert_eq!(seen, [1, 2, 3, 4], "1 warm-up + 3 measured");
        assert_eq!(last, 4);
        let r = m.finish(1.0);
        assert_eq!(r.samples_ns.len(), 3);
        assert!(
            r.samples_ns.iter().all(|&ns| ns < 25_000_000),
            "the sleep after the stop was timed: {:?}",
            r.samples_ns
        );

        let mut m = Measure::new(&Spec::example(), 0);
        let err = m
            .stamped(&mut src, |_, seq, _| {
                if seq == 2 {
                    Err(common::Error::Usage("stop".into()))
                } else {
                    Ok(())
                }
            })
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            common::Error::Usage("stop".into()).to_string()
        );
    }

    #[test]
    fn pipelined_samples_exclude_the_drain_and_keep_the_count() {
        for depth in [1u64, 2, 3] {
            let mut m = Measure::new(&Spec::example(), depth as usize);
            let sent = std::cell::Cell::new(0u64);
            let mut acks = Vec::new();
            let last = m
                .pipelined(
                    depth,
                    |seq| {
                        assert_eq!(seq, sent.get() + 1);
                        sent.set(seq);
                        Ok(())
                    },
                    |seq| {
                        assert!(sent.get() - seq < depth || seq == sent.get());
                        acks.push(seq);
                        Ok(())
                    },
                )
                .unwrap();
            // 1 warm-up + 3 measured + depth unmeasured (start, drain).
            assert_eq!(last, 4 + depth, "depth {depth}");
            assert_eq!(acks, (1..=last).collect::<Vec<_>>());
            let r = m.finish(1.0);
            assert_eq!((r.warmup, r.runs), (1, 3), "depth {depth}");
            assert!(r.wall_ns >= r.samples_ns.iter().sum::<u64>());
        }
    }

    #[test]
    fn the_sender_warms_up_then_measures_the_budget() {
        let mut m = Measure::new(&Spec::example(), 0);
        let mut transfers = 0;
        while m.more() {
            let t = Instant::now();
            m.record(t, t + Duration::from_nanos(100));
            transfers += 1;
        }
        assert_eq!(transfers, 4, "1 warm-up + 3 measured");
        let r = m.finish(1.0);
        assert_eq!((r.warmup, r.runs), (1, 3));
        assert_eq!(r.samples_ns, [100, 100, 100]);
        assert!(!r.capped);
        assert!(
            r.wall_ns >= 100,
            "from the first sample's start to the last's end"
        );
    }

    #[test]
    fn the_receiver_counts_what_came_before_the_stop() {
        let mut t = Tally::new(&Spec::example());
        // Warm-up 1, measured 2 and 3, then the stop arrives as number 4.
        for want in 1..=4 {
            assert_eq!(t.next_seq(), want);
        }
        let r = t.finish(0.0, 0);
        assert_eq!((r.warmup, r.runs), (1, 2));
    }
}
