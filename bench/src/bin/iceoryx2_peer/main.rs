//! The `p1p2-iceoryx2-peer` binary: the iceoryx2 sender or receiver of `p1p2-bench`.
//!
//! `p1p2-iceoryx2-peer`: the sender or the receiver of the iceoryx2 row of
//! `p1p2-bench`, measured by the same driver with the same statistics.
//! Built only with the `iceoryx2` feature (`scripts/bench.sh --peers`).
//!
//! Publish-subscribe of a byte slice: the sender loans a slice of the
//! payload's length from its publisher, copies the payload into it (one
//! copy), and sends it; the receiver reads every byte of the sample in place
//! (stamp and checksum, as the other receivers do) and publishes the
//! sequence number on a second service as the acknowledgement. A sample is
//! the sender's time from the loan until it receives that acknowledgement.
//! Both sides poll, as iceoryx2's own benchmarks do: spinning for the spec's
//! spin time, then yielding the CPU (so that two processes on one CPU still
//! make progress). Every wait is bounded by the spec's timeout. iceoryx2's
//! files in /dev/shm carry the prefix `p1p2_iox2.NAME.`, so that the driver
//! removes them after the case (iceoryx2 keeps a small node counter there
//! for good otherwise).
//!
//! `p1p2-iceoryx2-peer stream-pub ...` and `stream-sub ...` stream frames
//! instead, for the frame rows (see `stream.rs`).

mod stream;

use std::process::ExitCode;
use std::time::Instant;

use bench::checksum::{read_stamp, Expected, PageBuf, STOP};
use bench::peer::{self, Measure, PeerReport, Spec, Tally};
use common::{Error, Role};
use iceoryx2::prelude::*;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("stream-pub") => {
            set_log_level(LogLevel::Error);
            return stream::main(true, &args[1..]);
        }
        Some("stream-sub") => {
            set_log_level(LogLevel::Error);
            return stream::main(false, &args[1..]);
        }
        _ => {}
    }
    let Some((role, spec)) = peer::parse_args(&args) else {
        eprintln!(
            "p1p2-iceoryx2-peer: error: usage: p1p2-iceoryx2-peer {}\n       p1p2-iceoryx2-peer {}",
            peer::USAGE,
            stream::USAGE
        );
        return ExitCode::from(2);
    };
    set_log_level(LogLevel::Error);
    peer::serve(role, spec, run)
}

/// An iceoryx2 failure, named by what was being done.
fn ice(what: &str) -> impl Fn(&dyn std::fmt::Debug) -> Error + '_ {
    move |e| Error::Io {
        what: format!("iceoryx2: {what}"),
        source: std::io::Error::other(format!("{e:?}")),
    }
}

/// The iceoryx2 node of case (or stream) `name`. Every file iceoryx2 makes
/// for it, its persistent node counter included, starts with the prefix
/// `p1p2_iox2.NAME.`, so the driver can remove them.
fn node(name: &str) -> Result<Node<ipc::Service>, Error> {
    let mut config = Config::default();
    config.global.prefix = FileName::new(format!("p1p2_iox2.{name}.").as_bytes())
        .map_err(|e| ice("name the files")(&e))?;
    NodeBuilder::new()
        .config(&config)
        // The peer's own handlers turn SIGINT and SIGTERM into errors.
        .signal_handling_mode(SignalHandlingMode::Disabled)
        .create::<ipc::Service>()
        .map_err(|e| ice("create a node")(&e))
}

fn run(role: Role, spec: &Spec) -> Result<PeerReport, Error> {
    let node = node(&spec.name)?;
    let name = |what: &str| -> Result<ServiceName, Error> {
        format!("p1p2/{}/{what}", spec.name)
            .as_str()
            .try_into()
            .map_err(|e| ice("name a service")(&e))
    };
    let data = node
        .service_builder(&name("data")?)
        .publish_subscribe::<[u8]>()
        .max_publishers(1)
        .max_subscribers(1)
        .history_size(0)
        .subscriber_max_buffer_size(1)
        .open_or_create()
        .map_err(|e| ice("open the data service")(&e))?;
    let acks = node
        .service_builder(&name("ack")?)
        .publish_subscribe::<u64>()
        .max_publishers(1)
        .max_subscribers(1)
        .history_size(0)
        .subscriber_max_buffer_size(1)
        .open_or_create()
        .map_err(|e| ice("open the acknowledgement service")(&e))?;
    match role {
        Role::Producer => {
            let publisher = data
                .publisher_builder()
                .initial_max_slice_len(spec.payload_len())
                .max_loaned_samples(1)
                .create()
                .map_err(|e| ice("create the publisher")(&e))?;
            let subscriber = acks
                .subscriber_builder()
                .create()
                .map_err(|e| ice("create the acknowledgement subscriber")(&e))?;
            // Nothing sent before the receiver's ports exist would arrive.
            poll(spec, "the receiver's ports", || {
                let ready = data.dynamic_config().number_of_subscribers() >= 1
                    && acks.dynamic_config().number_of_publishers() >= 1;
                Ok(ready.then_some(()))
            })?;
            let send = |bytes: &[u8]| -> Result<(), Error> {
                let sample = publisher
                    .loan_slice_uninit(bytes.len())
                    .map_err(|e| ice("loan a sample")(&e))?;
                sample
                    .write_from_slice(bytes)
                    .send()
                    .map_err(|e| ice("send")(&e))?;
                Ok(())
            };
            let ack = |seq: u64| -> Result<(), Error> {
                let got = poll(spec, "the acknowledgement", || {
                    let sample = subscriber.receive().map_err(|e| ice("receive")(&e))?;
                    Ok(sample.map(|s| *s.payload()))
                })?;
                if got != seq {
                    return Err(Error::BadMessage {
                        peer: Role::Consumer,
                        reason: format!("acknowledged payload {got}, expected {seq}"),
                    });
                }
                Ok(())
            };
            // The source starts at the same offset within a page as the
            // loaned payloads, as every copy in this benchmark does (see
            // `PageBuf`).
            let skew = {
                let mut sample = publisher
                    .loan_slice_uninit(spec.payload_len())
                    .map_err(|e| ice("loan a sample")(&e))?;
                sample.payload_mut().as_ptr() as usize % 4096
            };
            let mut src = PageBuf::pattern_at(spec.payload_len(), skew);
            let mut m = Measure::new(spec, 0);
            m.stamped(&mut src, |payload, seq, _| {
                send(payload)?;
                ack(seq)
            })?;
            let report = m.finish(1.0);
            send(&STOP.to_le_bytes())?;
            ack(STOP)?;
            Ok(report)
        }
        Role::Consumer => {
            let subscriber = data
                .subscriber_builder()
                .create()
                .map_err(|e| ice("create the subscriber")(&e))?;
            let publisher = acks
                .publisher_builder()
                .create()
                .map_err(|e| ice("create the acknowledgement publisher")(&e))?;
            let expected = Expected::for_size(spec.payload_len());
            let mut tally = Tally::new(spec);
            loop {
                let seq = tally.next_seq();
                let sample = poll(spec, "a payload", || {
                    subscriber.receive().map_err(|e| ice("receive")(&e))
                })?;
                let bytes = sample.payload();
                let stop = read_stamp(bytes) == Some(STOP);
                if !stop {
                    expected
                        .verify(bytes, seq)
                        .map_err(|reason| Error::BadMessage {
                            peer: Role::Producer,
                            reason,
                        })?;
                }
                drop(sample);
                publisher
                    .send_copy(if stop { STOP } else { seq })
                    .map_err(|e| ice("acknowledge")(&e))?;
                if stop {
                    break;
                }
            }
            // Read in place: no copy of the payload.
            Ok(tally.finish(0.0, 0))
        }
    }
}

/// Calls `f` until it yields a value: spinning for the spec's spin time,
/// then yielding the CPU between calls; gives up at the spec's timeout and
/// on a signal.
fn poll<T>(
    spec: &Spec,
    what: &str,
    f: impl FnMut() -> Result<Option<T>, Error>,
) -> Result<T, Error> {
    poll_for(spec.spin(), spec.timeout(), what, f)
}

/// Calls `f` until it yields a value: spinning for `spin`, then yielding
/// the CPU between calls; gives up at `timeout` and on a signal (both
/// checked every 256 calls).
fn poll_for<T>(
    spin: std::time::Duration,
    timeout: std::time::Duration,
    what: &str,
    mut f: impl FnMut() -> Result<Option<T>, Error>,
) -> Result<T, Error> {
    let started = Instant::now();
    let mut calls = 0u32;
    loop {
        if let Some(value) = f()? {
            return Ok(value);
        }
        calls = calls.wrapping_add(1);
        let waited = started.elapsed();
        if calls.is_multiple_of(256) {
            common::signals::check()?;
            if waited >= timeout {
                return Err(Error::Timeout {
                    what: format!("waiting for {what} over iceoryx2"),
                    waited,
                });
            }
        }
        if waited < spin {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
}
