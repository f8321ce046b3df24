//! What the two binaries share at their edge: durations, output and exit codes.
//!
//! What the two binaries share at their edge: parsing durations, and turning a
//! result into output and an exit code.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use serde::Serialize;

use crate::error::{Error, Role};

/// Parses a number of seconds (fractions allowed) for `--timeout`.
///
/// # Errors
/// A message for clap when the value is not a finite, non-negative number.
pub fn parse_secs(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    Duration::try_from_secs_f64(secs).map_err(|_| format!("{text:?} is not a usable duration"))
}

/// Prints the report as one JSON object (with `--json`), or an error as one
/// line on stderr, and returns the exit code.
pub fn finish<T: Serialize>(role: Role, json: bool, result: Result<T, Error>) -> ExitCode {
    match result {
        Ok(report) => {
            if json {
                let text = serde_json::to_string(&report).expect("reports serialise");
                let mut out = std::io::stdout().lock();
                // A closed stdout (e.g. piped into `head`) is not a failure of the transfer.
                let _ = writeln!(out, "{text}");
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("{role}: error: {error}");
            ExitCode::from(error.exit_code().clamp(1, 255) as u8)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_parse_with_fractions_and_reject_nonsense() {
        assert_eq!(parse_secs("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_secs("0.25"), Ok(Duration::from_millis(250)));
        assert!(parse_secs("-1").is_err());
        assert!(parse_secs("soon").is_err());
        assert!(parse_secs("inf").is_err());
    }
}
