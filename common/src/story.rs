//! The few lines each binary prints to tell what it is doing, with figures.
//!
//! Lines go to stdout, prefixed with the role (`P1` or `P2`), unless the
//! binary runs with `--json`, in which case only the final JSON object is
//! printed. While a wait is in progress a spinner on stderr says what is
//! awaited; story lines printed meanwhile are written around it.

use std::cell::RefCell;
use std::fmt::Display;

use indicatif::ProgressBar;

use crate::error::Role;
use crate::progress;

/// Prints the story of one process.
pub struct Story {
    role: Role,
    quiet: bool,
    spinner: RefCell<Option<ProgressBar>>,
}

impl Story {
    /// A story for `role`; `quiet` (for `--json`) prints nothing.
    pub fn new(role: Role, quiet: bool) -> Story {
        Story {
            role,
            quiet,
            spinner: RefCell::new(None),
        }
    }

    /// Prints one line of the story.
    pub fn say(&self, line: impl Display) {
        if self.quiet {
            return;
        }
        let tag = match self.role {
            Role::Producer => "P1 producer",
            Role::Consumer => "P2 consumer",
        };
        let print = || println!("{tag} | {line}");
        match &*self.spinner.borrow() {
            Some(bar) => bar.suspend(print),
            None => print(),
        }
    }

    /// Shows a spinner saying what is awaited until the returned guard drops.
    /// Off a terminal nothing is drawn, so no spinner (and no ticking thread)
    /// is made at all.
    pub fn waiting(&self, what: impl Into<String>) -> Waiting<'_> {
        if progress::enabled() {
            let bar = progress::spinner(format!("{}: {}", self.role, what.into()));
            *self.spinner.borrow_mut() = Some(bar);
        }
        Waiting { story: self }
    }
}

/// Ends a spinner started by [`Story::waiting`] when dropped.
pub struct Waiting<'a> {
    story: &'a Story,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if let Some(bar) = self.story.spinner.borrow_mut().take() {
            bar.finish_and_clear();
        }
    }
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Milliseconds with a sensible number of decimals.
pub fn ms(d: std::time::Duration) -> String {
    let ms = d.as_secs_f64() * 1e3;
    if ms >= 100.0 {
        format!("{ms:.0} ms")
    } else if ms >= 1.0 {
        format!("{ms:.2} ms")
    } else {
        format!("{ms:.3} ms")
    }
}

/// Throughput in GB/s (10^9 bytes per second).
pub fn gbps(bytes: u64, d: std::time::Duration) -> String {
    let secs = d.as_secs_f64();
    if secs <= 0.0 {
        return "-".into();
    }
    format!("{:.2} GB/s", bytes as f64 / secs / 1e9)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_figures() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(791_555), "791,555");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(ms(Duration::from_micros(1500)), "1.50 ms");
        assert_eq!(ms(Duration::from_micros(150)), "0.150 ms");
        assert_eq!(ms(Duration::from_millis(1500)), "1500 ms");
        assert_eq!(gbps(2_000_000_000, Duration::from_secs(1)), "2.00 GB/s");
    }
}
