//! The `p1p2-bench` binary: the one-command benchmark of every transport.
//!
//! `p1p2-bench`: the one-command benchmark. Measures shared memory against
//! Unix and TCP sockets, the one-copy ceiling (memcpy) and Python, with two
//! real processes per case (`p1p2-bench-peer`, found next to this program),
//! and writes results.json, results.csv, latency.csv, results.md,
//! throughput.svg, latency.svg, frames.csv and frames.svg (the frame
//! streams of `producer --stream` and `consumer --stream`, found next to
//! this program too). `scripts/bench.sh` builds everything in
//! release and runs it.
//!
//! All the logic lives in the `bench` library; this file only parses flags.

// The `///` comments on the flags are `--help` text for people, where row
// names such as `shm[nt]` are written as they are typed, not as links.
#![allow(rustdoc::broken_intra_doc_links)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use bench::driver::{self, Options};
use bench::peer::affinity::allowed_cpus;
use bench::plan::{self, parse_pins, parse_sizes, parse_transports};
use bench::siblings;
use bench::{Channel, Pin};
use clap::error::ErrorKind;
use clap::{Parser, Subcommand};
use common::copy::CopyMode;
use common::{cli, Error};

/// Benchmark: shared memory against sockets, memcpy and Python.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None, args_conflicts_with_subcommands = true)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,

    /// A shorter run: sizes up to 64 MiB, 0.3 s per case, 2,000 round
    /// trips, 1920x1080 frames only, 0.4 s per frame round.
    #[arg(long)]
    quick: bool,

    /// Directory for results.json, results.csv, latency.csv, results.md,
    /// throughput.svg, latency.svg, frames.csv and frames.svg.
    #[arg(long, default_value = "bench-results", value_name = "DIR")]
    out: PathBuf,

    /// Payload sizes, comma-separated [default: 4KiB,64KiB,1MiB,8MiB,64MiB,256MiB;
    /// with --quick up to 64MiB].
    #[arg(long, value_name = "LIST")]
    sizes: Option<String>,

    /// Throughput rows to measure, comma-separated, from memcpy, memcpy-nt,
    /// shm, shm[std], shm[nt], shm-pipelined, shm-pipelined[std],
    /// shm-pipelined[nt], memfd, unix, tcp, python-shm, python-array, iceoryx2
    /// [default: all that this build can run].
    #[arg(long, value_name = "LIST")]
    transports: Option<String>,

    /// Skip shm with a fresh segment per transfer (mode cold).
    #[arg(long)]
    no_cold: bool,

    /// Where the two processes run: same (one CPU), split (two CPUs), none
    /// (unpinned); a list measures each [default: split, or same on one CPU].
    #[arg(long, value_name = "LIST")]
    pin: Option<String>,

    /// Placements of the 64-byte round-trip cases [default: same,split].
    #[arg(long, value_name = "LIST")]
    latency_pin: Option<String>,

    /// Skip the round-trip cases.
    #[arg(long)]
    no_latency: bool,

    /// Exactly N measured runs per case (after one warm-up run) instead of
    /// a time budget.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    runs: Option<u64>,

    /// Multiply every case's time budget by FACTOR (e.g. 0.5 or 2).
    #[arg(long, default_value_t = 1.0, value_name = "FACTOR", value_parser = parse_factor)]
    budget_scale: f64,

    /// Run each throughput case in N rounds, taking turns with the other
    /// cases of its size, and merge its samples (drift then affects every
    /// row alike).
    #[arg(long, default_value_t = 3, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=100))]
    rounds: u64,

    /// Measured round trips per latency case [default: 10000; --quick: 2000].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    round_trips: Option<u64>,

    /// How the shm and shm-pipelined senders copy a payload into shared
    /// memory: std (memcpy), nt (non-temporal stores) or auto (nt from
    /// 16 MiB on). The [std] and [nt] rows force one.
    #[arg(long, default_value = "auto", value_name = "std|nt|auto")]
    copy: CopyMode,

    /// Sizes at which the shm[std], shm[nt], shm-pipelined[std] and
    /// shm-pipelined[nt] rows run, comma-separated (sizes of --sizes only).
    #[arg(long, default_value = "8MiB,64MiB", value_name = "LIST")]
    copy_sizes: String,

    /// Slots of the pipelined segment, and payloads outstanding in the
    /// unix-stream and tcp-stream rows.
    #[arg(long, default_value_t = 2, value_name = "N", value_parser = clap::value_parser!(u32).range(2..=31))]
    slots: u32,

    /// Spin this long before sleeping on the futex, when the processes run
    /// on different CPUs (0: never spin).
    #[arg(long, default_value_t = 1000, value_name = "MICROS")]
    spin_us: u64,

    /// How every process waits for the other: spin (busy-poll the state
    /// word or make non-blocking reads, up to --spin-us, on different CPUs
    /// only) or block (sleep at once). Default: spin, and both at
    /// --wait-sizes.
    #[arg(long, value_name = "block|spin")]
    wait: Option<bench::Wait>,

    /// Sizes at which both waiting modes run when --wait is not given.
    #[arg(long, default_value = "4KiB,1MiB,64MiB", value_name = "LIST")]
    wait_sizes: String,

    /// Seed of the shuffled case order (default: from the clock; recorded).
    #[arg(long, value_name = "N")]
    seed: Option<u64>,

    /// Seconds a process waits for its peer before the case fails.
    #[arg(long, default_value = "20", value_name = "SECS", value_parser = cli::parse_secs)]
    timeout: Duration,

    /// Skip the Python rows.
    #[arg(long)]
    no_python: bool,

    /// The Python interpreter.
    #[arg(long, default_value = "python3", value_name = "PATH")]
    python: String,

    /// The Python baseline script [default: scripts/python_baseline.py].
    #[arg(long, value_name = "PATH")]
    python_script: Option<PathBuf>,

    /// Frame sizes of the frame rows (producer --stream to consumer
    /// --stream), comma-separated WxH [default: 1920x1080,3840x2160; with
    /// --quick 1920x1080].
    #[arg(long, value_name = "LIST")]
    frame_sizes: Option<String>,

    /// Seconds of streaming per round of a frame row [default: 1; --quick: 0.4].
    #[arg(long, value_name = "SECS", value_parser = parse_seconds)]
    frame_seconds: Option<f64>,

    /// Skip the frame rows.
    #[arg(long)]
    no_frames: bool,
}

/// What else `p1p2-bench` does besides measuring.
#[derive(Subcommand, Debug)]
enum Command {
    /// Compare two runs: for every row both have, B/A with a 95 % interval
    /// (bootstrap over both files' rounds) and "faster", "slower" or "same
    /// within noise".
    Compare {
        /// The first run's results.json (the baseline).
        a: PathBuf,
        /// The second run's results.json.
        b: PathBuf,
    },
}

/// Runs `p1p2-bench compare A B`.
fn compare(a: &PathBuf, b: &PathBuf) -> ExitCode {
    let read = |p: &PathBuf| {
        std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
    };
    let result = read(a).and_then(|ta| {
        let tb = read(b)?;
        bench::baseline::compare(&ta, &tb, bench::bootstrap::DEFAULT_SEED)
    });
    match result {
        Ok(changes) if changes.is_empty() => {
            eprintln!("p1p2-bench: error: the two files have no row in common");
            ExitCode::FAILURE
        }
        Ok(changes) => {
            println!("B = {}, A = {}", b.display(), a.display());
            for c in &changes {
                println!("{}", c.line());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("p1p2-bench: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 && s <= 600.0 => Ok(s),
        _ => Err(format!(
            "{text:?} is not a number of seconds between 0 and 600"
        )),
    }
}

fn parse_factor(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(f) if f.is_finite() && f > 0.0 && f <= 100.0 => Ok(f),
        _ => Err(format!("{text:?} is not a factor between 0 and 100")),
    }
}

/// The iceoryx2 peer binary, when this build has the feature.
fn iceoryx2_peer() -> Option<PathBuf> {
    cfg!(feature = "iceoryx2").then(|| siblings::dir().join("p1p2-iceoryx2-peer"))
}

fn options(args: Args, peer: PathBuf) -> Result<Options, Error> {
    let cpus = allowed_cpus().len();
    let default_pin = if cpus >= 2 { "split" } else { "same" };
    let sizes = match &args.sizes {
        Some(list) => parse_sizes(list)?,
        None if args.quick => plan::QUICK_SIZES.to_vec(),
        None => plan::FULL_SIZES.to_vec(),
    };
    let transports = match &args.transports {
        Some(list) => parse_transports(list)?,
        None => Channel::ALL
            .iter()
            .copied()
            .filter(|&t| t != Channel::Iceoryx2 || iceoryx2_peer().is_some())
            .collect(),
    };
    let pins = parse_pins(args.pin.as_deref().unwrap_or(default_pin))?;
    let latency_pins = if args.no_latency {
        Vec::new()
    } else {
        let default = if cpus >= 2 { "same,split" } else { "same" };
        parse_pins(args.latency_pin.as_deref().unwrap_or(default))?
    };
    let python_script = (!args.no_python).then(|| {
        args.python_script.clone().unwrap_or_else(|| {
            let here = PathBuf::from("scripts/python_baseline.py");
            if here.is_file() {
                here
            } else {
                PathBuf::from(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/../scripts/python_baseline.py"
                ))
            }
        })
    });
    let frame_sizes = if args.no_frames {
        Vec::new()
    } else {
        match &args.frame_sizes {
            Some(list) => bench::frames::parse_frame_sizes(list)?,
            None if args.quick => bench::frames::QUICK_FRAME_SIZES.to_vec(),
            None => bench::frames::FULL_FRAME_SIZES.to_vec(),
        }
    };
    let stream_bins = siblings::find("producer")
        .and_then(|producer| {
            siblings::find("consumer").map(|consumer| driver::StreamBins { producer, consumer })
        })
        .map_err(|e| e.to_string());
    let round_trips = args
        .round_trips
        .map_or(if args.quick { 2_000 } else { 10_000 }, |n| n as usize);
    Ok(Options {
        out: args.out,
        quick: args.quick,
        sizes,
        transports,
        cold: !args.no_cold,
        pins,
        latency_pins,
        runs: args.runs.map(|n| n as usize),
        budget_scale: args.budget_scale,
        rounds: args.rounds as usize,
        round_trips,
        message_bytes: 64,
        slots: args.slots,
        copy: args.copy,
        copy_sizes: parse_sizes(&args.copy_sizes).map_err(|e| match e {
            Error::Usage(m) => Error::Usage(m.replacen("--sizes", "--copy-sizes", 1)),
            other => other,
        })?,
        spin: Duration::from_micros(args.spin_us),
        wait: args.wait,
        wait_sizes: parse_sizes(&args.wait_sizes).map_err(|e| match e {
            Error::Usage(m) => Error::Usage(m.replacen("--sizes", "--wait-sizes", 1)),
            other => other,
        })?,
        seed: args.seed.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
        }),
        command_line: std::env::args().collect(),
        timeout: args.timeout,
        peer,
        python_script,
        python: args.python,
        iceoryx2_peer: iceoryx2_peer(),
        frame_sizes,
        frame_seconds: args
            .frame_seconds
            .unwrap_or(if args.quick { 0.4 } else { 1.0 }),
        stream_bins,
    })
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            e.exit()
        }
        Err(e) => {
            // One line, as for every other error.
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or("bad arguments");
            let first = first.strip_prefix("error: ").unwrap_or(first);
            eprintln!("p1p2-bench: error: {first} (see --help)");
            return ExitCode::from(2);
        }
    };
    if let Some(Command::Compare { a, b }) = &args.command {
        return compare(a, b);
    }
    let peer = match siblings::find("p1p2-bench-peer") {
        Ok(peer) => peer,
        Err(e) => {
            eprintln!("p1p2-bench: error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = options(args, peer).and_then(|o| driver::run(&o).map(|out| (o, out)));
    match result {
        Ok((options, outcome)) => {
            // The tables and notes of results.md; its spread warnings are
            // counted rather than repeated.
            let md = bench::export::to_markdown(&outcome.report);
            let head = md.split("## Warnings").next().unwrap_or(&md);
            print!("{}", head.split("Machine: ").next().unwrap_or(head));
            let warnings = outcome.report.warnings().len();
            if warnings > 0 {
                println!(
                    "{warnings} spread warning(s) are listed in {}.",
                    options.out.join("results.md").display()
                );
            }
            println!("Machine: {}", outcome.report.machine.summary());
            let files: Vec<String> = outcome
                .files
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            println!("Wrote {}.", files.join(", "));
            if options.pins.contains(&Pin::None) {
                println!("Unpinned results are bimodal on two CPUs; see the notes.");
            }
            if outcome.failed > 0 {
                eprintln!(
                    "p1p2-bench: error: {} case(s) failed; see the notes in {}",
                    outcome.failed,
                    options.out.join("results.md").display()
                );
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("p1p2-bench: error: {e}");
            ExitCode::from(e.exit_code().clamp(1, 255) as u8)
        }
    }
}
