//! The `p1p2-compare` binary: one image over every transport, its copies side by side.
//!
//! `p1p2-compare`: sends one image over every transport (shared memory with
//! both read modes, a Unix socket, TCP) with the real `producer` and
//! `consumer` binaries, and prints the copy ledger and the kernel's counters
//! side by side. `scripts/demo.sh` runs it after the P1 -> P2 story.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use bench::compare::{self, Figures};
use bench::siblings;
use clap::Parser;
use common::cli;

/// Compare shared memory with sockets: copies, syscalls, bytes the kernel saw.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
struct Args {
    /// The PNG to send.
    #[arg(default_value = "assets/image.png")]
    image: PathBuf,

    /// Seconds each process waits for its peer.
    #[arg(long, default_value = "30", value_name = "SECS", value_parser = cli::parse_secs)]
    timeout: Duration,

    /// Runs of each case; the table shows each figure's median.
    #[arg(long, default_value_t = 5)]
    runs: usize,

    /// Print the rows as one JSON array instead of the table.
    #[arg(long)]
    json: bool,
}

fn free_loopback_port() -> String {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_or_else(|_| "127.0.0.1:47800".into(), |a| a.to_string())
}

fn run(args: &Args) -> Result<Vec<Figures>, String> {
    let bin_dir = siblings::dir();
    let mut run = 0;
    let mut next = || {
        run += 1;
        (
            format!("compare-{}-{run}", std::process::id()),
            free_loopback_port(),
        )
    };
    compare::scenarios()
        .iter()
        .map(|scenario| {
            compare::measure(
                &bin_dir,
                scenario,
                &args.image,
                args.runs,
                &mut next,
                args.timeout,
            )
        })
        .collect()
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(rows) => {
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&rows).expect("rows serialise")
                );
            } else {
                print!("{}", compare::render(&rows));
            }
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("p1p2-compare: error: {message}");
            ExitCode::FAILURE
        }
    }
}
