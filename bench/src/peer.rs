//! The two processes of a benchmark case: `p1p2-bench-peer --role sender
//! --bench-peer SPEC` is the sender, `--role receiver` the receiver.
//! `p1p2-bench` starts both, each prints one JSON line ([`PeerReport`]) and
//! exits.
//!
//! # What each sample times
//! - **shm, steady** (one slot, reused): from the sender taking the slot's
//!   lock, through its `memcpy` of the payload into the slot, the release,
//!   the READY store, the receiver taking the lock and reading every byte in
//!   place (stamp and [`checksum`](super::checksum)), its release and ACKED
//!   store, until the sender sees ACKED.
//! - **shm, cold**: the same, but every transfer creates, publishes, maps,
//!   fills, hands off and removes a fresh segment; the receiver opens and
//!   maps it and unmaps it again. First-touch page faults are in the figure.
//! - **shm-pipelined** (two or more slots): the sender fills slot k while the
//!   receiver reads slot k-1. A sample is the interval between two successive
//!   acknowledgements as the sender observes them, which is when it waits for
//!   a slot to be free again: the steady-state period of the pipeline.
//! - **unix, tcp**: from the sender's first `write(2)` of the payload until it
//!   has read the receiver's 8-byte acknowledgement, written after the
//!   receiver `read(2)` every byte into its buffer and checked it.
//! - **latency**: one round trip of a small message and its reply.
//!
//! # Waiting
//! Every wait is bounded by the spec's `timeout_ms` and checks signals. The
//! shared-memory waits use [`wait::spin_until`]: a bounded spin of `spin_us`
//! (zero unless the peers are pinned to different CPUs), then the futex in
//! slices, checking the peer's liveness only once a wait has lasted a slice.
//! The hot loop allocates nothing, reads nothing in /proc and prints nothing
//! (progress lines, when asked for, are rate-limited and subtracted from the
//! counts).

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::checksum::{read_stamp, stamp, Expected, PageBuf, STOP};
use super::plan::Budget;
use super::{Mode, Transport};
use common::error::{Error, Result, Role};
use common::layout::{state, Geometry, Kind};
use common::ledger::{Meter, ProcIo, Usage};
use common::name::Name;
use common::segment::{Segment, SlotGuard};
use common::story::Story;
use common::transport::socket::{Conn, Endpoint, Listener};
use common::wait::{self, Deadline};

/// What a case measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Test {
    /// Payload transfers, timed one by one.
    Throughput,
    /// Round trips of a small message.
    Latency,
}

/// Everything a peer needs to know, given as JSON after `--bench-peer`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Spec {
    /// Throughput or latency.
    pub test: Test,
    /// shm, shm-pipelined, unix, tcp (or iceoryx2, for its own peer binary).
    pub transport: Transport,
    /// Steady (reused) or cold (fresh segment per transfer; shm only).
    pub mode: Mode,
    /// Payload or message size.
    pub bytes: u64,
    /// Slots of the segment (shm-pipelined: 2 or more).
    pub slots: u32,
    /// Warm-up and measured run counts (latency: `min_runs` round trips).
    pub budget: Budget,
    /// Segment or socket name, unique to the case.
    pub name: String,
    /// TCP address (tcp only).
    #[serde(default)]
    pub addr: Option<SocketAddr>,
    /// CPU to pin this peer to, if any.
    #[serde(default)]
    pub cpu: Option<usize>,
    /// Bounded spin before sleeping, in microseconds (0: never spin).
    #[serde(default)]
    pub spin_us: u64,
    /// Longest any single wait for the peer may last.
    pub timeout_ms: u64,
    /// Whether the sender reports progress on stderr.
    #[serde(default)]
    pub progress: bool,
}

impl Spec {
    /// The longest any single wait may last.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// The bounded spin before sleeping.
    pub fn spin(&self) -> Duration {
        Duration::from_micros(self.spin_us)
    }

    /// The payload size as a length.
    pub fn payload_len(&self) -> usize {
        self.bytes as usize
    }

    fn segment_name(&self) -> Result<Name> {
        Name::new(&self.name)
    }
}

/// What one peer reports: one JSON line on stdout.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PeerReport {
    /// "sender" or "receiver".
    pub role: String,
    /// This process.
    pub pid: u32,
    /// The CPU it ran on at the end.
    pub cpu: usize,
    /// Warm-up transfers made before measuring.
    pub warmup: usize,
    /// Measured transfers or round trips.
    pub runs: usize,
    /// Time of every measured transfer (sender only; empty for the receiver).
    pub samples_ns: Vec<u64>,
    /// Copies of the payload this process made per measured transfer.
    pub copies: f64,
    /// Change of `/proc/self/io` over the measured runs (absent without it).
    pub proc_io: Option<ProcIo>,
    /// User CPU time over the measured runs.
    pub user_ms: f64,
    /// System CPU time over the measured runs.
    pub sys_ms: f64,
    /// Minor page faults over the measured runs.
    pub minflt: u64,
    /// Voluntary context switches (sleeps) over the measured runs.
    pub nvcsw: u64,
    /// Involuntary context switches over the measured runs.
    pub nivcsw: u64,
    /// Whether the hard time limit stopped the runs below the minimum count.
    pub capped: bool,
}

/// How a peer binary is called.
pub const USAGE: &str = "--role sender|receiver --bench-peer SPEC (p1p2-bench runs it)";

/// The role and the JSON spec from a peer binary's arguments (without the
/// program name): `--role sender|receiver --bench-peer SPEC`; `None` for
/// anything else.
pub fn parse_args(args: &[String]) -> Option<(Role, &str)> {
    match args {
        [r, role, b, spec] if r == "--role" && b == "--bench-peer" => match role.as_str() {
            "sender" => Some((Role::Producer, spec)),
            "receiver" => Some((Role::Consumer, spec)),
            _ => None,
        },
        _ => None,
    }
}

/// Runs a peer for `role` from the JSON `spec`, prints its report as one
/// JSON line, and returns the exit code (errors: one line on stderr).
pub fn main(role: Role, spec: &str) -> ExitCode {
    serve(role, spec, run)
}

/// What every peer binary does around its transport: parses the spec,
/// installs the signal handlers, asks to be ended with its driver, pins
/// itself, runs `body`, completes the report (role, pid, CPU) and prints it
/// as one JSON line. The iceoryx2 peer binary uses it with its own body.
pub fn serve(role: Role, spec: &str, body: fn(Role, &Spec) -> Result<PeerReport>) -> ExitCode {
    let result = serde_json::from_str::<Spec>(spec)
        .map_err(|e| Error::Usage(format!("--bench-peer: not a peer spec ({e})")))
        .and_then(|spec| {
            prepare(&spec)?;
            let mut report = body(role, &spec)?;
            report.role = match role {
                Role::Producer => "sender",
                Role::Consumer => "receiver",
            }
            .into();
            report.pid = std::process::id();
            report.cpu = rustix::thread::sched_getcpu();
            Ok(report)
        });
    common::cli::finish(role, true, result)
}

fn prepare(spec: &Spec) -> Result<()> {
    common::signals::install()?;
    // A peer outliving its driver would only wait for its timeout: end it.
    let _ = rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::TERM));
    if let Some(cpu) = spec.cpu {
        pin_to(cpu)?;
    }
    if spec.bytes < super::plan::MIN_SIZE {
        return Err(Error::Usage(format!(
            "--bench-peer: {} bytes is below the 8-byte minimum",
            spec.bytes
        )));
    }
    Ok(())
}

/// Runs the producer's (sender's) or consumer's (receiver's) side of `spec`
/// over this crate's transports.
///
/// # Errors
/// A timeout, a dead peer, a payload that fails its checks, a signal, or a
/// system error.
pub fn run(role: Role, spec: &Spec) -> Result<PeerReport> {
    match (spec.test, spec.transport, role) {
        (Test::Throughput, Transport::Shm, Role::Producer) if spec.mode == Mode::Cold => {
            shm_cold_sender(spec)
        }
        (Test::Throughput, Transport::Shm, Role::Consumer) if spec.mode == Mode::Cold => {
            shm_cold_receiver(spec)
        }
        (Test::Throughput, Transport::Shm, Role::Producer) => shm_sender(spec, false),
        (Test::Throughput, Transport::ShmPipelined, Role::Producer) => shm_sender(spec, true),
        (Test::Throughput, Transport::Shm | Transport::ShmPipelined, Role::Consumer) => {
            shm_receiver(spec)
        }
        (Test::Throughput, Transport::Unix | Transport::Tcp, Role::Producer) => {
            socket_sender(spec, false)
        }
        (Test::Throughput, Transport::Unix | Transport::Tcp, Role::Consumer) => {
            socket_receiver(spec, false)
        }
        (Test::Latency, Transport::Shm, Role::Producer) => shm_ping(spec),
        (Test::Latency, Transport::Shm, Role::Consumer) => shm_pong(spec),
        (Test::Latency, Transport::Unix | Transport::Tcp, Role::Producer) => {
            socket_sender(spec, true)
        }
        (Test::Latency, Transport::Unix | Transport::Tcp, Role::Consumer) => {
            socket_receiver(spec, true)
        }
        (test, transport, _) => Err(Error::Usage(format!(
            "--bench-peer: no {test:?} peer for transport {transport} in mode {}",
            spec.mode
        ))),
    }
}

/// The CPUs this process may run on, in increasing order.
pub fn allowed_cpus() -> Vec<usize> {
    match rustix::thread::sched_getaffinity(None) {
        Ok(set) => (0..rustix::thread::CpuSet::MAX_CPU)
            .filter(|&cpu| set.is_set(cpu))
            .collect(),
        Err(_) => (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect(),
    }
}

/// Pins the calling thread (and the threads it starts later) to `cpu`.
///
/// # Errors
/// [`Error::Usage`] when the CPU does not exist or is not allowed.
pub fn pin_to(cpu: usize) -> Result<()> {
    let mut set = rustix::thread::CpuSet::new();
    if cpu >= rustix::thread::CpuSet::MAX_CPU {
        return Err(Error::Usage(format!("CPU {cpu} does not exist")));
    }
    set.set(cpu);
    rustix::thread::sched_setaffinity(None, &set)
        .map_err(|e| Error::Usage(format!("cannot pin to CPU {cpu}: {e}")))
}

/// Restores an affinity saved with [`affinity`].
///
/// # Errors
/// The system's error.
pub fn set_affinity(set: &rustix::thread::CpuSet) -> Result<()> {
    rustix::thread::sched_setaffinity(None, set).map_err(Error::from)
}

/// The calling thread's affinity, to restore after pinning.
///
/// # Errors
/// The system's error.
pub fn affinity() -> Result<rustix::thread::CpuSet> {
    rustix::thread::sched_getaffinity(None).map_err(Error::from)
}

/// The kernel's and getrusage's counters over the measured runs.
struct Window {
    meter: Meter,
    usage: Usage,
}

impl Window {
    fn start() -> Window {
        Window {
            meter: Meter::start(),
            usage: Usage::read_self(),
        }
    }

    /// Fills the counters of `report`; `extra_reads` / `extra_writes` are
    /// system calls this process made over the window that are not part of
    /// the transfers (a final end-of-stream read, progress lines).
    fn finish(self, report: &mut PeerReport, extra_reads: u64, extra_writes: (u64, u64)) {
        let witness = self.meter.finish();
        let usage = Usage::read_self().since(&self.usage);
        report.proc_io = witness.proc_io.map(|io| ProcIo {
            syscr: io.syscr.saturating_sub(extra_reads),
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
    window: Option<Window>,
    progress: Progress,
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
        }
        self.progress.tick(t1, self.samples.len(), ns);
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
        report
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

// ---------------------------------------------------------------------------
// Shared memory
// ---------------------------------------------------------------------------

fn create_segment(name: &Name, bytes: u64, slots: u32) -> Result<Segment> {
    let segment = Segment::create(name, Geometry::new(Kind::Bench, bytes, slots))?;
    segment.publish()?;
    let file_len = segment.geometry().file_len().unwrap_or(u64::MAX);
    segment.check_size(file_len)?;
    Ok(segment)
}

fn open_segment(spec: &Spec, name: &Name, slots: u32, min_capacity: u64) -> Result<Segment> {
    let deadline = Deadline::after(spec.timeout());
    let segment = Segment::wait_open(name, &deadline, |_| {})?
        .ok_or_else(|| deadline.timeout(format!("no sender published segment {name}")))?;
    let g = *segment.geometry();
    if g.kind != Kind::Bench || g.slot_count != slots || g.capacity < min_capacity {
        return Err(Error::BadSegment {
            name: name.to_string(),
            reason: format!(
                "a {} segment with {} slot(s) of {} bytes, expected a bench segment with \
                 {slots} slot(s) of at least {min_capacity}",
                g.kind.as_str(),
                g.slot_count,
                g.capacity
            ),
        });
    }
    segment.check_size(g.file_len().unwrap_or(u64::MAX))?;
    segment.claim()?;
    Ok(segment)
}

/// Takes a slot's lock: at once when it is free (always, in this protocol,
/// since each side releases before it announces), else waiting.
fn lock<'s>(segment: &'s Segment, slot: usize, spec: &Spec) -> Result<SlotGuard<'s>> {
    if let Some(guard) = segment.try_lock(slot)? {
        return Ok(guard);
    }
    let deadline = Deadline::after(spec.timeout());
    segment.lock(slot, &deadline, |_| {})?.ok_or_else(|| {
        deadline.timeout(format!(
            "the lock on slot {slot} of segment {} stayed held",
            segment.name()
        ))
    })
}

/// Waits until slot `slot`'s state satisfies `done`, spinning first when
/// the spec says so; a dead peer ends the wait.
fn wait_state(
    segment: &Segment,
    slot: usize,
    spec: &Spec,
    role: Role,
    what: &str,
    done: impl FnMut(u32) -> bool,
) -> Result<u32> {
    let deadline = Deadline::after(spec.timeout());
    let got = wait::spin_until(
        &segment.slot(slot).state,
        &deadline,
        spec.spin(),
        done,
        || peer_alive(segment, role),
    )?;
    got.ok_or_else(|| deadline.timeout(format!("{what} (segment {})", segment.name())))
}

/// Fails if the other side of the segment has died.
fn peer_alive(segment: &Segment, role: Role) -> Result<()> {
    match role {
        Role::Producer => match segment.dead_consumer() {
            Some(pid) => Err(Error::PeerDied {
                role: Role::Consumer,
                pid,
                when: format!("during the benchmark on segment {}", segment.name()),
            }),
            None => Ok(()),
        },
        Role::Consumer if !segment.owner_alive() => Err(Error::PeerDied {
            role: Role::Producer,
            pid: segment.producer_pid(),
            when: format!("during the benchmark on segment {}", segment.name()),
        }),
        Role::Consumer => Ok(()),
    }
}

/// Sender: copies `src` (already stamped with `seq`) into the slot under
/// its lock, records length and sequence, releases, and announces READY.
fn write_slot(segment: &Segment, slot: usize, src: &[u8], seq: u64, spec: &Spec) -> Result<()> {
    let mut guard = lock(segment, slot, spec)?;
    guard.payload_mut_prechecked()[..src.len()].copy_from_slice(src);
    let control = guard.slot();
    control.len.store(src.len() as u64, Ordering::Relaxed);
    control.seq.store(seq, Ordering::Relaxed);
    // Release the lock before announcing, so the receiver never has to wait
    // for it; the Release store in `post` publishes the payload.
    drop(guard);
    wait::post(&segment.slot(slot).state, state::READY);
    Ok(())
}

/// Sender: waits until the receiver acknowledged the payload in `slot`.
fn wait_ack(segment: &Segment, slot: usize, seq: u64, spec: &Spec) -> Result<()> {
    let got = wait_state(
        segment,
        slot,
        spec,
        Role::Producer,
        "the receiver did not acknowledge",
        |s| s == state::ACKED || s == state::REJECTED,
    )?;
    if got == state::REJECTED {
        return Err(Error::Rejected(format!(
            "the receiver found payload {seq} wrong; see its message"
        )));
    }
    Ok(())
}

/// Receiver: what was in a slot.
enum Got {
    Payload,
    Stop,
}

/// Receiver: waits for READY in `slot`, then under its lock reads every
/// byte in place and checks the stamp and the checksum; acknowledges (or
/// rejects) after releasing the lock.
fn read_slot(
    segment: &Segment,
    slot: usize,
    expected: &Expected,
    seq: u64,
    spec: &Spec,
) -> Result<Got> {
    wait_state(
        segment,
        slot,
        spec,
        Role::Consumer,
        "no payload arrived",
        |s| s == state::READY,
    )?;
    let guard = lock(segment, slot, spec)?;
    let len = guard.slot().len.load(Ordering::Relaxed);
    let verdict = guard.payload_prechecked(len).map(|bytes| {
        if read_stamp(bytes) == Some(STOP) {
            Ok(Got::Stop)
        } else {
            expected.verify(bytes, seq).map(|()| Got::Payload)
        }
    })?;
    drop(guard);
    let word = &segment.slot(slot).state;
    match verdict {
        Ok(got) => {
            wait::post(word, state::ACKED);
            Ok(got)
        }
        Err(reason) => {
            wait::post(word, state::REJECTED);
            Err(Error::BadSegment {
                name: segment.name().to_string(),
                reason,
            })
        }
    }
}

/// A page-aligned heap buffer holding the pattern (see [`PageBuf`]).
fn pattern(bytes: usize) -> PageBuf {
    PageBuf::pattern(bytes)
}

/// shm and shm-pipelined, sender. With one slot, a sample is one whole
/// hand-off; with more, the interval between acknowledgements.
fn shm_sender(spec: &Spec, pipelined: bool) -> Result<PeerReport> {
    let slots = if pipelined { spec.slots.max(2) } else { 1 };
    let segment = create_segment(&spec.segment_name()?, spec.bytes, slots)?;
    let mut src = pattern(spec.payload_len());
    let mut seq = 0u64;
    let report = if pipelined {
        let mut m = Measure::new(spec, 1);
        let slots = u64::from(slots);
        let mut acked = 0u64;
        let mut last = Instant::now();
        while m.more() {
            seq += 1;
            if seq > slots {
                // The slot last held transfer seq - slots, whose
                // acknowledgement is the next to observe.
                observe_ack(&segment, &mut m, &mut acked, &mut last, slots, spec)?;
            }
            stamp(src.as_mut_slice(), seq);
            write_slot(
                &segment,
                ((seq - 1) % slots) as usize,
                src.as_slice(),
                seq,
                spec,
            )?;
        }
        while acked < seq {
            observe_ack(&segment, &mut m, &mut acked, &mut last, slots, spec)?;
        }
        m.finish(1.0)
    } else {
        let mut m = Measure::new(spec, 0);
        while m.more() {
            seq += 1;
            stamp(src.as_mut_slice(), seq);
            let t0 = Instant::now();
            write_slot(&segment, 0, src.as_slice(), seq, spec)?;
            wait_ack(&segment, 0, seq, spec)?;
            m.record(t0, Instant::now());
        }
        m.finish(1.0)
    };
    // The stop: a stamp alone, in the next slot (free: every payload was
    // acknowledged).
    let slot = (seq % u64::from(segment.geometry().slot_count)) as usize;
    write_slot(&segment, slot, &STOP.to_le_bytes(), STOP, spec)?;
    wait_ack(&segment, slot, STOP, spec)?;
    Ok(report)
}

/// Pipelined sender: waits for the acknowledgement of transfer `acked + 1`
/// and records the interval since the previous one (the first only starts
/// the clock).
fn observe_ack(
    segment: &Segment,
    m: &mut Measure,
    acked: &mut u64,
    last: &mut Instant,
    slots: u64,
    spec: &Spec,
) -> Result<()> {
    let next = *acked + 1;
    wait_ack(segment, ((next - 1) % slots) as usize, next, spec)?;
    let now = Instant::now();
    if next > 1 {
        m.record(*last, now);
    }
    *last = now;
    *acked = next;
    Ok(())
}

/// shm and shm-pipelined, receiver: reads the slots in turn, in place.
fn shm_receiver(spec: &Spec) -> Result<PeerReport> {
    let slots = match spec.transport {
        Transport::ShmPipelined => spec.slots.max(2),
        _ => 1,
    };
    let segment = open_segment(spec, &spec.segment_name()?, slots, spec.bytes)?;
    let expected = Expected::for_size(spec.payload_len());
    let mut tally = Tally::new(spec);
    loop {
        let seq = tally.next_seq();
        let slot = ((seq - 1) % u64::from(slots)) as usize;
        if let Got::Stop = read_slot(&segment, slot, &expected, seq, spec)? {
            break;
        }
    }
    // Read in place: no copy of the payload.
    Ok(tally.finish(0.0, 0))
}

/// The name of the fresh segment for transfer `seq` in cold mode.
fn cold_name(spec: &Spec, seq: u64) -> Result<Name> {
    Name::new(&format!("{}.{seq}", spec.name))
}

/// shm cold, sender: a fresh segment for every transfer.
fn shm_cold_sender(spec: &Spec) -> Result<PeerReport> {
    let mut src = pattern(spec.payload_len());
    let mut m = Measure::new(spec, 0);
    let mut seq = 0u64;
    while m.more() {
        seq += 1;
        stamp(src.as_mut_slice(), seq);
        let name = cold_name(spec, seq)?;
        let t0 = Instant::now();
        {
            let segment = create_segment(&name, spec.bytes, 1)?;
            write_slot(&segment, 0, src.as_slice(), seq, spec)?;
            wait_ack(&segment, 0, seq, spec)?;
            // Dropping the segment unmaps and removes it: part of the sample.
        }
        m.record(t0, Instant::now());
    }
    let report = m.finish(1.0);
    let segment = create_segment(&cold_name(spec, seq + 1)?, 8, 1)?;
    write_slot(&segment, 0, &STOP.to_le_bytes(), STOP, spec)?;
    wait_ack(&segment, 0, STOP, spec)?;
    Ok(report)
}

/// shm cold, receiver: opens, maps, reads and unmaps every fresh segment.
fn shm_cold_receiver(spec: &Spec) -> Result<PeerReport> {
    let expected = Expected::for_size(spec.payload_len());
    let mut tally = Tally::new(spec);
    loop {
        let seq = tally.next_seq();
        let segment = open_segment(spec, &cold_name(spec, seq)?, 1, 8)?;
        if let Got::Stop = read_slot(&segment, 0, &expected, seq, spec)? {
            break;
        }
    }
    Ok(tally.finish(0.0, 0))
}

/// shm latency, sender: a message into slot 0, the reply from slot 1.
fn shm_ping(spec: &Spec) -> Result<PeerReport> {
    let segment = create_segment(&spec.segment_name()?, spec.bytes, 2)?;
    let mut src = pattern(spec.payload_len());
    let expected = Expected::of_pattern(&mut src.as_slice().to_vec());
    let mut m = Measure::new(spec, 0);
    let mut seq = 0u64;
    while m.more() {
        seq += 1;
        stamp(src.as_mut_slice(), seq);
        let t0 = Instant::now();
        write_slot(&segment, 0, src.as_slice(), seq, spec)?;
        let got = wait_state(&segment, 1, spec, Role::Producer, "no reply arrived", |s| {
            s == state::READY || s == state::REJECTED
        })?;
        if got == state::REJECTED {
            return Err(Error::Rejected(format!(
                "the receiver found message {seq} wrong; see its message"
            )));
        }
        let guard = lock(&segment, 1, spec)?;
        let len = guard.slot().len.load(Ordering::Relaxed);
        let verdict = expected.verify(guard.payload_prechecked(len)?, seq);
        drop(guard);
        wait::post(&segment.slot(1).state, state::EMPTY);
        m.record(t0, Instant::now());
        verdict.map_err(|reason| Error::BadSegment {
            name: spec.name.clone(),
            reason: format!("reply: {reason}"),
        })?;
    }
    let report = m.finish(1.0);
    write_slot(&segment, 0, &STOP.to_le_bytes(), STOP, spec)?;
    wait_ack(&segment, 0, STOP, spec)?;
    Ok(report)
}

/// shm latency, receiver: reads each message and writes a reply.
fn shm_pong(spec: &Spec) -> Result<PeerReport> {
    let segment = open_segment(spec, &spec.segment_name()?, 2, spec.bytes)?;
    let mut reply = pattern(spec.payload_len());
    let expected = Expected::of_pattern(&mut reply.as_slice().to_vec());
    let mut tally = Tally::new(spec);
    loop {
        let seq = tally.next_seq();
        wait_state(
            &segment,
            0,
            spec,
            Role::Consumer,
            "no message arrived",
            |s| s == state::READY,
        )?;
        let guard = lock(&segment, 0, spec)?;
        let len = guard.slot().len.load(Ordering::Relaxed);
        let message = guard.payload_prechecked(len)?;
        let stop = read_stamp(message) == Some(STOP);
        let verdict = if stop {
            Ok(())
        } else {
            expected.verify(message, seq)
        };
        drop(guard);
        if stop {
            wait::post(&segment.slot(0).state, state::ACKED);
            break;
        }
        if let Err(reason) = verdict {
            wait::post(&segment.slot(1).state, state::REJECTED);
            return Err(Error::BadSegment {
                name: spec.name.clone(),
                reason,
            });
        }
        wait::post(&segment.slot(0).state, state::EMPTY);
        stamp(reply.as_mut_slice(), seq);
        write_slot(&segment, 1, reply.as_slice(), seq, spec)?;
    }
    Ok(tally.finish(1.0, 0))
}

// ---------------------------------------------------------------------------
// Sockets
// ---------------------------------------------------------------------------

fn endpoint(spec: &Spec) -> Result<(Endpoint, Name)> {
    let name = spec.segment_name()?;
    let endpoint = match spec.transport {
        Transport::Tcp => Endpoint::Tcp(
            spec.addr
                .ok_or_else(|| Error::Usage("--bench-peer: a tcp case needs an address".into()))?,
        ),
        _ => Endpoint::Unix(name.socket_path()),
    };
    Ok((endpoint, name))
}

/// Sender side of a socket case: listens, accepts the receiver (which says
/// hello), and removes the socket file at once.
fn accept(spec: &Spec) -> Result<Conn> {
    let (endpoint, name) = endpoint(spec)?;
    let listener = Listener::bind(&endpoint, &name)?;
    let deadline = Deadline::after(spec.timeout());
    let (conn, _pid) = listener
        .accept(&deadline, &Story::new(Role::Producer, true))?
        .ok_or_else(|| deadline.timeout(format!("no receiver connected to {endpoint}")))?;
    Ok(conn)
}

fn connect(spec: &Spec) -> Result<Conn> {
    let (endpoint, _) = endpoint(spec)?;
    let deadline = Deadline::after(spec.timeout());
    let mut conn = Conn::connect(&endpoint, &deadline)?
        .ok_or_else(|| deadline.timeout(format!("no sender listened on {endpoint}")))?;
    conn.hello(spec.timeout())?;
    Ok(conn)
}

/// unix and tcp, sender: `write` the payload, then `read` the answer: an
/// 8-byte acknowledgement (throughput), or the whole message sent back
/// (latency). Closing the connection is the stop.
fn socket_sender(spec: &Spec, echo: bool) -> Result<PeerReport> {
    let mut conn = accept(spec)?;
    let mut src = pattern(spec.payload_len());
    let mut reply = pattern(if echo { spec.payload_len() } else { 8 });
    let expected = echo.then(|| Expected::of_pattern(reply.as_mut_slice()));
    let mut m = Measure::new(spec, 0);
    let mut seq = 0u64;
    let stall = spec.timeout();
    while m.more() {
        seq += 1;
        stamp(src.as_mut_slice(), seq);
        let t0 = Instant::now();
        conn.write_all(src.as_slice(), stall, Role::Consumer, None)?;
        conn.read_exact(reply.as_mut_slice(), stall, Role::Consumer, None)?;
        m.record(t0, Instant::now());
        match &expected {
            Some(expected) => {
                expected
                    .verify(reply.as_slice(), seq)
                    .map_err(|reason| Error::BadMessage {
                        peer: Role::Consumer,
                        reason: format!("reply: {reason}"),
                    })?
            }
            None => check_ack(reply.as_slice().try_into().expect("8 bytes"), seq)?,
        }
    }
    Ok(m.finish(1.0))
}

fn check_ack(ack: &[u8; 8], seq: u64) -> Result<()> {
    let got = u64::from_le_bytes(*ack);
    if got != seq {
        return Err(Error::BadMessage {
            peer: Role::Consumer,
            reason: format!("acknowledged payload {got}, expected {seq}"),
        });
    }
    Ok(())
}

/// unix and tcp, receiver: `read` every byte into a buffer, check it, and
/// answer: with the 8-byte sequence number as an acknowledgement (throughput),
/// or with the whole message (latency). The sender closing the connection
/// ends the case.
fn socket_receiver(spec: &Spec, echo: bool) -> Result<PeerReport> {
    let mut conn = connect(spec)?;
    let mut buf = pattern(spec.payload_len());
    let expected = Expected::of_pattern(buf.as_mut_slice());
    let mut tally = Tally::new(spec);
    let stall = spec.timeout();
    loop {
        let seq = tally.next_seq();
        if !conn.read_exact_or_eof(buf.as_mut_slice(), stall, Role::Producer)? {
            break;
        }
        expected
            .verify(buf.as_slice(), seq)
            .map_err(|reason| Error::BadMessage {
                peer: Role::Producer,
                reason,
            })?;
        let answer = if echo {
            buf.as_slice()
        } else {
            &seq.to_le_bytes()[..]
        };
        conn.write_all(answer, stall, Role::Producer, None)?;
    }
    // The read that found the end of the stream is not a transfer.
    Ok(tally.finish(1.0, 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> Spec {
        Spec {
            test: Test::Throughput,
            transport: Transport::Shm,
            mode: Mode::Steady,
            bytes: 4096,
            slots: 1,
            budget: Budget::fixed(3),
            name: "bench-unit".into(),
            addr: None,
            cpu: None,
            spin_us: 0,
            timeout_ms: 5000,
            progress: false,
        }
    }

    #[test]
    fn specs_round_trip_through_json() {
        let s = spec();
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.contains("\"transport\":\"shm\""), "{json}");
        assert_eq!(serde_json::from_str::<Spec>(&json).unwrap(), s);
    }

    #[test]
    fn the_sender_warms_up_then_measures_the_budget() {
        let mut m = Measure::new(&spec(), 0);
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
    }

    #[test]
    fn the_receiver_counts_what_came_before_the_stop() {
        let mut t = Tally::new(&spec());
        // Warm-up 1, measured 2 and 3, then the stop arrives as number 4.
        for want in 1..=4 {
            assert_eq!(t.next_seq(), want);
        }
        let r = t.finish(0.0, 0);
        assert_eq!((r.warmup, r.runs), (1, 2));
    }

    #[test]
    fn allowed_cpus_include_the_current_one() {
        let cpus = allowed_cpus();
        assert!(!cpus.is_empty());
        assert!(cpus.contains(&rustix::thread::sched_getcpu()));
        assert!(pin_to(rustix::thread::CpuSet::MAX_CPU).is_err());
    }
}
