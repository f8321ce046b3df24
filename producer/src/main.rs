//! The `producer` binary (P1): copies an image into a shared-memory segment for a consumer.
//!
//! `producer` (P1): takes exclusive access to a shared-memory segment, copies
//! an image into it, releases it, and waits for a consumer to acknowledge.
//!
//! All the logic lives in the `common` crate; this file only parses flags.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use common::copy::CopyMode;
use common::stream::{self, run};
use common::transfer::{self, ProducerOptions, ReadMode};
use common::transport::socket::DEFAULT_TCP_ADDR;
use common::transport::TransportKind;
use common::{cli, inventory, story::Story, Name, Role};

/// P1: copy an image into shared memory under exclusive access, then release
/// it for a consumer.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
struct Args {
    /// The PNG image to send.
    #[arg(default_value = "assets/image.png")]
    image: PathBuf,

    /// Segment name (1-64 characters of [A-Za-z0-9._-]); the segment is
    /// /dev/shm/p1p2.NAME.
    #[arg(long, default_value = "p1p2")]
    name: String,

    /// Seconds to wait for a consumer before giving up.
    #[arg(long, default_value = "30", value_name = "SECS", value_parser = cli::parse_secs)]
    timeout: Duration,

    /// Keep exclusive access this many milliseconds after copying, before
    /// releasing it (to watch the consumer wait).
    #[arg(long, default_value_t = 0, value_name = "MS")]
    hold: u64,

    /// How the payload travels: shared memory, a Unix socket, TCP, or a
    /// sealed memfd passed over a Unix socket.
    #[arg(long, default_value = "shm", value_name = "shm|unix|tcp|memfd")]
    transport: TransportKind,

    /// Address to listen on with --transport tcp.
    #[arg(long, default_value = DEFAULT_TCP_ADDR, value_name = "HOST:PORT")]
    addr: SocketAddr,

    /// How the file gets into shared memory: `direct` reads it straight into
    /// the segment or memfd (one kernel copy), `heap` reads it into a buffer
    /// and then copies that in (two copies). Sockets always read into a
    /// buffer.
    #[arg(long, default_value = "direct", value_name = "direct|heap")]
    read: ReadMode,

    /// How a heap buffer is copied into shared memory (with --read heap,
    /// and for every frame with --stream):
    /// `std` is memcpy, `nt` uses non-temporal stores (straight to memory,
    /// past the cache), `auto` uses them from 16 MiB on.
    #[arg(long, default_value = "auto", value_name = "std|nt|auto")]
    copy: CopyMode,

    /// Stream frames instead of handing over one image: the image is
    /// decoded once, and each frame is that image scrolled by the frame number, with
    /// the number drawn in. Readers (`consumer --stream`) attach at any time.
    #[arg(long)]
    stream: bool,

    /// With --stream: frames a second (0: as fast as possible).
    #[arg(long, default_value_t = 30.0, value_name = "N", requires = "stream")]
    fps: f64,

    /// With --stream: stop after N frames (default: after 10 seconds).
    #[arg(long, value_name = "N", requires = "stream")]
    frames: Option<u64>,

    /// With --stream: stop after SECS seconds.
    #[arg(long, value_name = "SECS", requires = "stream", value_parser = cli::parse_secs)]
    seconds: Option<Duration>,

    /// With --stream: slots in the ring (2 to 15).
    #[arg(long, default_value_t = stream::DEFAULT_SLOTS, value_name = "K", requires = "stream")]
    slots: u32,

    /// With --stream: wait until N consumers are attached before the first
    /// frame (0: start at once).
    #[arg(long, default_value_t = 0, value_name = "N", requires = "stream")]
    consumers: usize,

    /// With --stream: `latest` never waits (a slow consumer skips to the
    /// newest frame); `every` waits for every live consumer, and drops one
    /// that holds the stream up for a second.
    #[arg(
        long,
        default_value = "latest",
        value_name = "latest|every",
        requires = "stream"
    )]
    policy: stream::Policy,

    /// With --stream: generated Rgb8 frames of this size instead of the image.
    #[arg(long, value_name = "WxH", value_parser = run::parse_size, requires = "stream")]
    size: Option<(u32, u32)>,

    /// List this project's segments and sockets (name, size, owner pid,
    /// alive or dead), then exit.
    #[arg(long, conflicts_with = "clean")]
    list: bool,

    /// Remove the segments and sockets whose owner is dead, then exit.
    /// Live ones are never touched.
    #[arg(long)]
    clean: bool,

    /// Print one JSON object on stdout instead of the story.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.list || args.clean {
        return inventory(args.clean, args.json);
    }
    let story = Story::new(Role::Producer, args.json);
    if args.stream {
        let result = Name::new(&args.name).and_then(|name| {
            run::produce(
                &run::ProducerOptions {
                    input: match args.size {
                        Some((width, height)) => run::Input::Pattern { width, height },
                        None => run::Input::Png(args.image),
                    },
                    name,
                    transport: args.transport,
                    addr: args.addr,
                    fps: args.fps,
                    frames: args.frames,
                    seconds: args.seconds,
                    slots: args.slots,
                    consumers: args.consumers,
                    policy: args.policy,
                    timeout: args.timeout,
                    copy: args.copy,
                },
                &story,
            )
        });
        return cli::finish(Role::Producer, args.json, result);
    }
    let result = Name::new(&args.name).and_then(|name| {
        transfer::produce(
            &ProducerOptions {
                image: args.image,
                name,
                timeout: args.timeout,
                hold: Duration::from_millis(args.hold),
                transport: args.transport,
                addr: args.addr,
                read: args.read,
                copy: args.copy,
            },
            &story,
        )
    });
    cli::finish(Role::Producer, args.json, result)
}

/// `--list` and `--clean`.
fn inventory(clean: bool, json: bool) -> ExitCode {
    let result = if clean {
        inventory::clean()
    } else {
        inventory::list()
    };
    if let Ok(entries) = &result {
        if !json {
            if clean {
                for entry in entries {
                    match entry.pid {
                        None => println!("removed {} (no live owner)", entry.path.display()),
                        Some(pid) => println!(
                            "removed {} (its owner pid {pid} is dead)",
                            entry.path.display()
                        ),
                    }
                }
                println!("removed {} stale file(s)", entries.len());
            } else {
                print!("{}", inventory::render(entries));
            }
        }
    }
    cli::finish(Role::Producer, json, result)
}
