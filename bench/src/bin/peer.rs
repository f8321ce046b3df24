//! The `p1p2-bench-peer` binary: the sender or the receiver of one benchmark case.
//!
//! `p1p2-bench-peer`: the sender or the receiver of one `p1p2-bench` case
//! over shared memory or a socket, as the JSON spec says. `p1p2-bench` starts
//! two of them per case; each prints one JSON line and exits.
//!
//! All the logic lives in `bench::peer`; this file only reads the arguments.

use std::process::ExitCode;

use bench::peer;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((role, spec)) = peer::parse_args(&args) else {
        eprintln!(
            "p1p2-bench-peer: error: usage: p1p2-bench-peer {}",
            peer::USAGE
        );
        return ExitCode::from(2);
    };
    peer::main(role, spec)
}
