//! One round of a frame row: the real `producer --stream` and `consumer --stream` binaries, pinned, their JSON read back.
//!
//! The producer runs on the sender's CPU, every consumer on the receiver's
//! (pin=split), each pinned from its first instruction. The producer waits
//! for all its consumers before its first frame, publishes for a fixed time
//! and ends the stream; each consumer verifies the CRC-32 of every frame it
//! reads and reports its fps and publish-to-read latency. With a stopped
//! reader, the last consumer is stopped (SIGSTOP) once it is in the ring's
//! reader table, and continued (SIGCONT) once the producer has finished.
//!
//! The iceoryx2 rows run the same way with `p1p2-iceoryx2-peer stream-pub`
//! and `stream-sub` (built with the `iceoryx2` feature) in place of the
//! producer and consumers, given the same flags.
//!
//! Whatever happens, every process is ended and reaped before this returns
//! (the caller removes the stream's files when it fails).

use std::net::SocketAddr;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use rustix::process::Signal;
use serde::Deserialize;

use super::child::{finish_all, wait_all, Running};
use crate::case::Channel;
use crate::frames::{FrameCase, FrameLatency, FrameRound, Variant, PACE_FPS};
use common::error::{Error, Result};
use common::name::{FILE_PREFIX, SHM_DIR};
use common::signals;
use common::stream::{MAX_READERS, READERS_OFFSET, READER_SIZE};

/// The two stream binaries, found next to `p1p2-bench`.
#[derive(Clone, Debug)]
pub struct StreamBins {
    /// `producer`.
    pub producer: PathBuf,
    /// `consumer`.
    pub consumer: PathBuf,
}

/// The kernel's counters in a report (`witness.proc_io`).
#[derive(Clone, Copy, Debug, Default, Deserialize)]
struct Io {
    rchar: u64,
    wchar: u64,
}

#[derive(Clone, Copy, Debug, Default, Deserialize)]
struct Witness {
    #[serde(default)]
    proc_io: Option<Io>,
}

/// What is read back from `producer --stream --json`.
#[derive(Clone, Debug, Deserialize)]
struct ProducerJson {
    frames: u64,
    fps: f64,
    frame_bytes: u64,
    witness: Witness,
}

/// What is read back from `consumer --stream --json`.
#[derive(Clone, Debug, Deserialize)]
struct ConsumerJson {
    frames: u64,
    skipped: u64,
    fps: f64,
    latency_us: FrameLatency,
    witness: Witness,
}

/// One round's settings.
pub(super) struct RoundSpec<'a> {
    pub(super) bins: &'a StreamBins,
    /// `p1p2-iceoryx2-peer`, for the iceoryx2 rows.
    pub(super) iceoryx2: Option<&'a Path>,
    pub(super) case: FrameCase,
    pub(super) name: &'a str,
    pub(super) addr: SocketAddr,
    /// The producer's CPU and the consumers'.
    pub(super) cpus: (Option<usize>, Option<usize>),
    pub(super) seconds: f64,
    pub(super) timeout: Duration,
}

/// Runs one round and returns what it measured (`index` 0: the caller
/// numbers it).
pub(super) fn run_round(spec: &RoundSpec, bar: &ProgressBar) -> Result<FrameRound> {
    let case = &spec.case;
    let transport = case.transport.as_str();
    let addr = spec.addr.to_string();
    let timeout = format!("{}", spec.timeout.as_secs_f64());
    let fps = match case.variant {
        Variant::Paced => PACE_FPS,
        _ => 0.0,
    };
    // The iceoryx2 peer takes the same flags after its mode.
    let (producer_bin, consumer_bin, modes) = match (case.transport, spec.iceoryx2) {
        (Channel::Iceoryx2, Some(peer)) => (peer, peer, Some(("stream-pub", "stream-sub"))),
        (Channel::Iceoryx2, None) => {
            return Err(Error::Usage(
                "iceoryx2 frame rows need p1p2-iceoryx2-peer (the iceoryx2 feature)".into(),
            ))
        }
        _ => (
            spec.bins.producer.as_path(),
            spec.bins.consumer.as_path(),
            None,
        ),
    };
    // The flags both sides take, then each side's own.
    let both = [
        "--stream",
        "--name",
        spec.name,
        "--transport",
        transport,
        "--addr",
        &addr,
        "--timeout",
        &timeout,
        "--json",
    ];
    let args = |mode: Option<&str>, own: &[&str]| -> Vec<String> {
        mode.into_iter()
            .chain(both)
            .chain(own.iter().copied())
            .map(str::to_string)
            .collect()
    };
    let producer_args = args(
        modes.map(|m| m.0),
        &[
            "--size",
            &case.size.arg(),
            "--fps",
            &fps.to_string(),
            "--seconds",
            &spec.seconds.to_string(),
            "--consumers",
            &case.consumers.to_string(),
            "--policy",
            case.policy,
        ],
    );
    let mut consumer_args = args(modes.map(|m| m.1), &[]);
    if case.spin {
        consumer_args.push("--spin".into());
    }

    let limit = spec.timeout * 2 + Duration::from_secs_f64(spec.seconds) + Duration::from_secs(10);
    let started = Instant::now();
    let mut procs: Vec<Running> = Vec::with_capacity(case.consumers + 1);
    let stopped = (case.variant == Variant::Stopped).then_some(case.consumers);
    let (_tx, rx) = mpsc::channel();
    let setup = (|| -> Result<()> {
        procs.push(Running::start_pinned(
            "producer",
            producer_bin,
            &producer_args,
            spec.cpus.0,
        )?);
        for _ in 0..case.consumers {
            procs.push(Running::start_pinned(
                "consumer",
                consumer_bin,
                &consumer_args,
                spec.cpus.1,
            )?);
        }
        if let Some(i) = stopped {
            let pid = procs[i].pid();
            await_reader(spec.name, pid, &mut procs, started, limit)?;
            procs[i].signal(Signal::STOP);
        }
        // The producer's end, then the readers' (a stopped one continued).
        while procs[0].poll().is_none() && started.elapsed() < limit {
            signals::check()?;
            if procs[1..]
                .iter_mut()
                .enumerate()
                .any(|(k, p)| Some(k + 1) != stopped && p.poll().is_some_and(|s| !s.success()))
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    })();
    if let Some(i) = stopped {
        if let Some(p) = procs.get_mut(i) {
            p.signal(Signal::CONT);
        }
    }
    if let Err(e) = setup {
        finish_all(procs, Duration::from_secs(2), &rx, bar, 0);
        return Err(e);
    }
    let left = limit.saturating_sub(started.elapsed());
    let outputs = wait_all(procs, left, &rx, bar, 0)?;
    let mut outputs = outputs.into_iter();
    let producer: ProducerJson = outputs
        .next()
        .expect("a producer")
        .report()
        .map_err(Error::PeerGone)?;
    let mut readers = Vec::new();
    let mut io = producer.witness.proc_io;
    for (k, out) in outputs.enumerate() {
        match out.report::<ConsumerJson>() {
            Ok(c) => {
                io = io.zip(c.witness.proc_io).map(|(a, b)| Io {
                    rchar: a.rchar + b.rchar,
                    wchar: a.wchar + b.wchar,
                });
                if Some(k + 1) != stopped {
                    readers.push(c);
                }
            }
            // A stopped reader that gave up is no failure of the stream.
            Err(_) if Some(k + 1) == stopped => io = None,
            Err(e) => return Err(Error::PeerGone(e)),
        }
    }
    if readers.iter().any(|c| c.frames == 0) || producer.frames == 0 {
        return Err(Error::PeerGone("a consumer read no frame".into()));
    }
    let reader_fps: Vec<f64> = readers.iter().map(|c| c.fps).collect();
    let slowest = reader_fps.iter().copied().fold(f64::INFINITY, f64::min);
    let moved = producer.frames as f64 * producer.frame_bytes as f64;
    Ok(FrameRound {
        index: 0,
        fps: if case.policy == "every" {
            slowest
        } else {
            producer.fps
        },
        producer_fps: producer.fps,
        reader_fps,
        frames: producer.frames,
        skipped: readers.iter().map(|c| c.skipped).sum(),
        latency_us: FrameLatency {
            p50: readers.iter().map(|c| c.latency_us.p50).fold(0.0, f64::max),
            p99: readers.iter().map(|c| c.latency_us.p99).fold(0.0, f64::max),
        },
        kernel_copies: io
            .filter(|_| moved > 0.0)
            .map(|io| (io.rchar + io.wchar) as f64 / moved),
    })
}

/// Waits until the process `pid` is in the reader table of ring `name`
/// (its entry's first word holds its pid in the low 22 bits), or fails at
/// the limit, or when a process has exited.
fn await_reader(
    name: &str,
    pid: u32,
    procs: &mut [Running],
    started: Instant,
    limit: Duration,
) -> Result<()> {
    let path = Path::new(SHM_DIR).join(format!("{FILE_PREFIX}.{name}"));
    let mut table = vec![0u8; MAX_READERS * READER_SIZE];
    loop {
        signals::check()?;
        if let Ok(file) = std::fs::File::open(&path) {
            if file
                .read_exact_at(&mut table, READERS_OFFSET as u64)
                .is_ok()
                && table.chunks_exact(READER_SIZE).any(|entry| {
                    let word = u64::from_le_bytes(entry[..8].try_into().expect("8 bytes"));
                    word & ((1 << 22) - 1) == u64::from(pid)
                })
            {
                return Ok(());
            }
        }
        if let Some(p) = procs.iter_mut().find_map(|p| p.poll().map(|_| p.pid())) {
            return Err(Error::PeerGone(format!(
                "pid {p} exited before the reader to stop attached"
            )));
        }
        if started.elapsed() >= limit {
            return Err(Error::Timeout {
                what: format!("consumer pid {pid} to attach to stream {name}"),
                waited: started.elapsed(),
            });
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The channels a frame row can take.
pub(super) fn transports() -> [Channel; 3] {
    [Channel::Shm, Channel::Unix, Channel::Tcp]
}
