//! The `consumer` binary (P2): verifies and decodes the image straight from shared memory.
//!
//! `consumer` (P2): waits until the producer releases the segment, then
//! verifies and decodes the image straight from shared memory.
//!
//! All the logic lives in the `common` crate; this file only parses flags.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use common::png::Limits;
use common::stream::run;
use common::transfer::{self, ConsumerOptions};
use common::transport::socket::DEFAULT_TCP_ADDR;
use common::transport::TransportKind;
use common::{cli, story::Story, Name, Role};

/// P2: wait for the producer's segment and its lock, then decode the image in
/// place.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
struct Args {
    /// Segment name, as given to the producer.
    #[arg(long, default_value = "p1p2")]
    name: String,

    /// Seconds to wait for the producer (its segment and its lock).
    #[arg(long, default_value = "30", value_name = "SECS", value_parser = cli::parse_secs)]
    timeout: Duration,

    /// Write the decoded image to FILE (format from the extension: .png).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,

    /// Keep exclusive access this many milliseconds after verifying the
    /// payload, before acknowledging (to watch the producer wait).
    #[arg(long, default_value_t = 0, value_name = "MS")]
    hold: u64,

    /// With --transport memfd: before reading the received memory, try to
    /// shrink, grow, write and writably map it, and show the kernel's refusal
    /// of each (its seals at work).
    #[arg(long)]
    try_tamper: bool,

    /// Refuse images wider or taller than PX pixels.
    #[arg(long, default_value_t = Limits::default().max_width, value_name = "PX")]
    max_dim: u32,

    /// Let the decoder allocate at most MIB mebibytes (also the largest
    /// payload accepted from a socket).
    #[arg(long, default_value_t = Limits::default().max_alloc >> 20, value_name = "MIB")]
    max_alloc: u64,

    /// How the payload travels: shared memory, a Unix socket, TCP, or a
    /// sealed memfd passed over a Unix socket.
    #[arg(long, default_value = "shm", value_name = "shm|unix|tcp|memfd")]
    transport: TransportKind,

    /// Address of the producer with --transport tcp.
    #[arg(long, default_value = DEFAULT_TCP_ADDR, value_name = "HOST:PORT")]
    addr: SocketAddr,

    /// Read a stream of frames (`producer --stream`) in place, and report
    /// frames, skipped frames, fps and publish-to-read latency.
    #[arg(long)]
    stream: bool,

    /// With --stream: spin before sleeping while waiting for a frame (use
    /// only with the producer on another CPU).
    #[arg(long, requires = "stream")]
    spin: bool,

    /// With --stream: draw the newest frame in the terminal (off when
    /// stdout is not a terminal).
    #[arg(long, requires = "stream")]
    preview: bool,

    /// With --stream: stop after N frames (default: at the stream's end).
    #[arg(long, value_name = "N", requires = "stream")]
    frames: Option<u64>,

    /// With --stream: stop after SECS seconds.
    #[arg(long, value_name = "SECS", requires = "stream", value_parser = cli::parse_secs)]
    seconds: Option<Duration>,

    /// Print one JSON object on stdout instead of the story.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let story = Story::new(Role::Consumer, args.json);
    if args.stream {
        let result = Name::new(&args.name).and_then(|name| {
            run::consume(
                &run::ConsumerOptions {
                    name,
                    transport: args.transport,
                    addr: args.addr,
                    timeout: args.timeout,
                    spin: args.spin,
                    preview: args.preview,
                    frames: args.frames,
                    seconds: args.seconds,
                },
                &story,
            )
        });
        return cli::finish(Role::Consumer, args.json, result);
    }
    let result = Name::new(&args.name).and_then(|name| {
        transfer::consume(
            &ConsumerOptions {
                name,
                timeout: args.timeout,
                out: args.out,
                limits: Limits {
                    max_width: args.max_dim,
                    max_height: args.max_dim,
                    max_alloc: args.max_alloc.saturating_mul(1 << 20),
                },
                hold: Duration::from_millis(args.hold),
                transport: args.transport,
                addr: args.addr,
                try_tamper: args.try_tamper,
            },
            &story,
        )
    });
    cli::finish(Role::Consumer, args.json, result)
}
