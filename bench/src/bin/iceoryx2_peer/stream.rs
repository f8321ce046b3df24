//! Frame streams over iceoryx2: `stream-pub` and `stream-sub`, the iceoryx2 counterparts of `producer --stream` and `consumer --stream`.
//!
//! The publisher makes the same frames as `producer --stream`
//! (`Source::pattern` at the given size): it loans a sample of one frame's
//! bytes from its publisher, fills it with `Source::fill` (one copy), stamps
//! the user header with the frame's number, its CRC-32 and the
//! CLOCK_MONOTONIC time at publish (taken after the fill, as the ring does),
//! and sends it. Each subscriber reads the frame in place, checks the CRC-32
//! of the received bytes against the header, and takes the publish-to-read
//! latency at that verified read, as `consumer --stream` does.
//!
//! Every subscriber gets every frame, like the ring's `every` policy: the
//! service has no safe overflow, and the publisher retries a full queue
//! (each subscriber queues `DEFAULT_SLOTS - 1` frames) until it has room,
//! for at most the timeout, then fails. The subscribers poll (spinning for a
//! while, then yielding the CPU). The last sample (number 0) ends the
//! stream and carries the count of frames published.
//!
//! Both sides take the flags the frame driver gives `producer --stream` and
//! `consumer --stream`, and print one JSON line with the fields it reads.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use common::copy::CopyMode;
use common::ledger::{Meter, Witness};
use common::stream::frames::Source;
use common::stream::ring::monotonic_ns;
use common::stream::run::{parse_size, Latency};
use common::stream::DEFAULT_SLOTS;
use common::{Error, Role};
use iceoryx2::port::BackpressureAction;
use iceoryx2::prelude::*;
use serde::Serialize;

use crate::ice;

/// The user header of a sample: the frame's number (0 ends the stream),
/// its publish time in CLOCK_MONOTONIC ns (at the end: frames published),
/// and its CRC-32.
type Header = [u64; 3];

/// The frame service: byte slices with a [`Header`].
type Frames =
    iceoryx2::service::port_factory::publish_subscribe::PortFactory<ipc::Service, [u8], Header>;

/// How long a subscriber spins before it yields the CPU between polls.
const SPIN: Duration = Duration::from_micros(50);

/// What `stream-pub` and `stream-sub` are asked to do.
#[derive(Clone, Debug)]
struct Options {
    name: String,
    size: Option<(u32, u32)>,
    fps: f64,
    seconds: f64,
    consumers: usize,
    timeout: Duration,
}

/// The usage line.
pub const USAGE: &str = "stream-pub|stream-sub --name NAME [--size WxH] [--fps N] \
    [--seconds S] [--consumers N] [--policy every] [--timeout SECS] \
    [--transport iceoryx2] [--addr A] [--stream] [--json] [--spin]";

/// Runs `stream-pub` or `stream-sub` (`args` after the mode); the exit code.
pub fn main(publish: bool, args: &[String]) -> ExitCode {
    let options = match parse(args) {
        Ok(o) => o,
        Err(why) => {
            eprintln!("p1p2-iceoryx2-peer: error: {why}; usage: p1p2-iceoryx2-peer {USAGE}");
            return ExitCode::from(2);
        }
    };
    let run = common::signals::install().and_then(|()| {
        if publish {
            publish_frames(&options).map(|r| serde_json::to_string(&r))
        } else {
            subscribe(&options).map(|r| serde_json::to_string(&r))
        }
    });
    match run {
        Ok(Ok(line)) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Ok(Err(e)) => {
            eprintln!("p1p2-iceoryx2-peer: error: {e}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("p1p2-iceoryx2-peer: error: {e}");
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(1))
        }
    }
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        name: String::new(),
        size: None,
        fps: 0.0,
        seconds: 1.0,
        consumers: 1,
        timeout: Duration::from_secs(10),
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        if matches!(flag.as_str(), "--stream" | "--json" | "--spin") {
            continue;
        }
        let value = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value"))?
            .as_str();
        let number = |what: &str| -> Result<f64, String> {
            value
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0)
                .ok_or_else(|| format!("{what} {value:?} is not a number"))
        };
        match flag.as_str() {
            "--name" => o.name = value.to_string(),
            "--size" => o.size = Some(parse_size(value)?),
            "--fps" => o.fps = number("--fps")?,
            "--seconds" => o.seconds = number("--seconds")?,
            "--timeout" => o.timeout = Duration::from_secs_f64(number("--timeout")?),
            "--consumers" => {
                o.consumers = value
                    .parse()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| format!("--consumers {value:?}: give 1 or more"))?
            }
            "--policy" if value == "every" => {}
            "--policy" => return Err("iceoryx2 streams take --policy every only".into()),
            "--transport" if value == "iceoryx2" => {}
            "--transport" => return Err("this peer streams over iceoryx2 only".into()),
            "--addr" => {}
            other => return Err(format!("unknown option {other}")),
        }
    }
    if o.name.is_empty() {
        return Err("give --name".into());
    }
    Ok(o)
}

/// The node and the data service of stream `name`: created by the
/// publisher with room for `consumers` subscribers, opened by them.
fn service(o: &Options, create: bool) -> Result<(Node<ipc::Service>, Frames), Error> {
    let node = super::node(&o.name)?;
    let name: ServiceName = format!("p1p2/{}/frames", o.name)
        .as_str()
        .try_into()
        .map_err(|e| ice("name a service")(&e))?;
    let service = if create {
        node.service_builder(&name)
            .publish_subscribe::<[u8]>()
            .user_header::<Header>()
            .max_publishers(1)
            .max_subscribers(o.consumers)
            .history_size(0)
            .subscriber_max_buffer_size(DEFAULT_SLOTS as usize - 1)
            .subscriber_max_borrowed_samples(1)
            .enable_safe_overflow(false)
            .create()
            .map_err(|e| ice("create the frame service")(&e))?
    } else {
        // The publisher creates it: wait for it.
        poll(o.timeout, "the frame service", || {
            Ok(node
                .service_builder(&name)
                .publish_subscribe::<[u8]>()
                .user_header::<Header>()
                .open()
                .ok())
        })?
    };
    Ok((node, service))
}

/// What `stream-pub` prints (the fields of `producer --stream --json` the
/// frame driver reads).
#[derive(Serialize)]
struct PublisherReport {
    role: &'static str,
    mode: &'static str,
    transport: &'static str,
    frames: u64,
    fps: f64,
    seconds: f64,
    width: u32,
    height: u32,
    frame_bytes: u64,
    consumers: usize,
    witness: Witness,
}

fn publish_frames(o: &Options) -> Result<PublisherReport, Error> {
    let (width, height) = o
        .size
        .ok_or_else(|| Error::Usage("stream-pub needs --size WxH".into()))?;
    let source = Source::pattern(width, height);
    let len = source.shape().len() as usize;
    let (_node, service) = service(o, true)?;
    let timeout = o.timeout;
    let publisher = service
        .publisher_builder()
        .initial_max_slice_len(len)
        .max_loaned_samples(1)
        .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
        // A full queue is retried (every subscriber gets every frame), for
        // at most the timeout, or until a signal.
        .set_backpressure_handler(move |info: &iceoryx2::port::BackpressureInfo| {
            if info.elapsed_time >= timeout || common::signals::check().is_err() {
                BackpressureAction::DiscardDataAndFail
            } else {
                BackpressureAction::Retry
            }
        })
        .create()
        .map_err(|e| ice("create the publisher")(&e))?;
    poll(o.timeout, "the subscribers", || {
        Ok((service.dynamic_config().number_of_subscribers() >= o.consumers).then_some(()))
    })?;
    let copy = CopyMode::Auto;
    let meter = Meter::start();
    let start = Instant::now();
    let period = (o.fps > 0.0).then(|| Duration::from_secs_f64(1.0 / o.fps));
    let mut published = 0u64;
    while start.elapsed().as_secs_f64() < o.seconds {
        if let Some(period) = period {
            let due = period.mul_f64(published as f64);
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                common::wait::sleep(wait)?;
            }
        } else {
            common::signals::check()?;
        }
        let id = published + 1;
        let mut sample = publisher
            .loan_slice_uninit(len)
            .map_err(|e| ice("loan a sample")(&e))?;
        let payload = sample.payload_mut();
        // SAFETY: `MaybeUninit<u8>` has the layout of `u8`, and the payload
        // lies in a shared-memory mapping, whose bytes (zeroed by the kernel
        // or left by an earlier frame) are all initialized; `fill` writes
        // every one of them before the sample is marked initialized.
        let bytes =
            unsafe { std::slice::from_raw_parts_mut(payload.as_mut_ptr().cast::<u8>(), len) };
        let crc = source.fill(id, bytes, copy);
        *sample.user_header_mut() = [id, monotonic_ns(), u64::from(crc)];
        // SAFETY: `fill` wrote all `len` bytes of the payload.
        let sample = unsafe { sample.assume_init() };
        if let Err(e) = sample.send() {
            // A signal makes the backpressure handler give up: say so.
            common::signals::check()?;
            return Err(ice("send a frame")(&e));
        }
        published = id;
    }
    let seconds = start.elapsed().as_secs_f64();
    let mut end = publisher
        .loan_slice_uninit(1)
        .map_err(|e| ice("loan a sample")(&e))?;
    *end.user_header_mut() = [0, published, 0];
    end.write_from_slice(&[0])
        .send()
        .map_err(|e| ice("end the stream")(&e))?;
    let witness = meter.finish();
    // The subscribers read to the end before the publisher goes.
    let gone = poll(o.timeout, "the subscribers to leave", || {
        Ok((service.dynamic_config().number_of_subscribers() == 0).then_some(()))
    });
    if let Err(e @ Error::Interrupted(_)) = gone {
        return Err(e);
    }
    Ok(PublisherReport {
        role: "producer",
        mode: "stream",
        transport: "iceoryx2",
        frames: published,
        fps: published as f64 / seconds.max(1e-9),
        seconds,
        width,
        height,
        frame_bytes: len as u64,
        consumers: o.consumers,
        witness,
    })
}

/// What `stream-sub` prints (the fields of `consumer --stream --json` the
/// frame driver reads).
#[derive(Serialize)]
struct SubscriberReport {
    role: &'static str,
    mode: &'static str,
    transport: &'static str,
    frames: u64,
    skipped: u64,
    fps: f64,
    seconds: f64,
    latency_us: Latency,
    copies: u32,
    wait: &'static str,
    witness: Witness,
}

fn subscribe(o: &Options) -> Result<SubscriberReport, Error> {
    let (_node, service) = service(o, false)?;
    let subscriber = service
        .subscriber_builder()
        .create()
        .map_err(|e| ice("create the subscriber")(&e))?;
    let mut latencies: Vec<u64> = Vec::new();
    let (mut first_at, mut last_at) = (None, Instant::now());
    let (mut last_id, mut skipped) = (0u64, 0u64);
    let meter = Meter::start();
    loop {
        let sample = poll(o.timeout, "a frame", || {
            subscriber.receive().map_err(|e| ice("receive")(&e))
        })?;
        let [id, stamp, crc] = *sample.user_header();
        if id == 0 {
            // The end: frames published after the last one read were missed.
            skipped += stamp.saturating_sub(last_id);
            break;
        }
        let got = crc32fast::hash(sample.payload());
        if u64::from(got) != crc {
            return Err(Error::BadMessage {
                peer: Role::Producer,
                reason: format!(
                    "frame {id} fails its CRC-32 (recorded {crc:08x}, pixels have {got:08x})"
                ),
            });
        }
        latencies.push(monotonic_ns().saturating_sub(stamp));
        drop(sample);
        last_at = Instant::now();
        first_at.get_or_insert(last_at);
        skipped += id.saturating_sub(last_id + 1);
        last_id = id;
    }
    let witness = meter.finish();
    drop(subscriber);
    let frames = latencies.len() as u64;
    let seconds = first_at.map_or(0.0, |t| last_at.duration_since(t).as_secs_f64());
    let fps = if frames > 1 && seconds > 0.0 {
        (frames - 1) as f64 / seconds
    } else {
        0.0
    };
    Ok(SubscriberReport {
        role: "consumer",
        mode: "stream",
        transport: "iceoryx2",
        frames,
        skipped,
        fps,
        seconds,
        latency_us: Latency::of(&mut latencies),
        copies: 0,
        wait: "spin",
        witness,
    })
}

/// [`super::poll_for`] with this module's spin time.
fn poll<T>(
    timeout: Duration,
    what: &str,
    f: impl FnMut() -> Result<Option<T>, Error>,
) -> Result<T, Error> {
    super::poll_for(SPIN, timeout, what, f)
}
