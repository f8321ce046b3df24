//! Whether a peer process is still alive, known by its pid and its start time.
//!
//! Is a peer process still alive?
//!
//! A pid alone is not enough: pids are reused, and a killed child stays a zombie
//! (still answering `kill(pid, 0)`) until its parent reaps it. So a process is
//! identified by its pid *and* its start time (field 22 of `/proc/PID/stat`, in
//! clock ticks after boot), and a zombie counts as dead.

use std::sync::OnceLock;

use rustix::process::{test_kill_process, Pid};

/// The fields of `/proc/PID/stat` this module needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stat {
    state: char,
    start_time: u64,
}

/// Parses `/proc/PID/stat`. The command name (field 2) may hold spaces and
/// parentheses, so fields are counted from the last `)`.
fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    // After ")": field 3 is the state, field 22 the start time.
    let state = fields.next()?.chars().next()?;
    let start_time = fields.nth(22 - 4)?.parse().ok()?;
    Some(Stat { state, start_time })
}

fn stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// Start time of this process, to record next to its pid (0 if unknown).
///
/// Read from `/proc` once and then remembered, since every lock taken records
/// it; a process forked from this one (another pid) reads its own.
pub fn own_start_time() -> u64 {
    static OWN: OnceLock<(u32, u64)> = OnceLock::new();
    let read = |pid| stat(pid).map_or(0, |s| s.start_time);
    let pid = std::process::id();
    let &(cached_pid, start) = OWN.get_or_init(|| (pid, read(pid)));
    if cached_pid == pid {
        start
    } else {
        read(pid)
    }
}

/// Whether the process `pid` that started at `start_time` is still running.
///
/// `start_time` 0 means "not recorded" and skips that comparison. Pid 0 is never
/// alive (it is what an unset field holds).
pub fn is_alive(pid: u32, start_time: u64) -> bool {
    let Some(raw) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        return false;
    };
    match test_kill_process(raw) {
        // EPERM: it exists but belongs to someone else; still alive.
        Ok(()) | Err(rustix::io::Errno::PERM) => {}
        Err(_) => return false,
    }
    match stat(pid) {
        Some(s) => {
            !matches!(s.state, 'Z' | 'X' | 'x') && (start_time == 0 || s.start_time == start_time)
        }
        // It vanished just now, or there is no /proc to ask: then trust kill(2).
        None => !std::path::Path::new("/proc/self").exists(),
    }
}

/// A process's identity as one 64-bit word: its pid in the low 22 bits
/// (Linux never gives out pids above 2^22) and its start time, in clock
/// ticks after boot, in the 42 bits above (enough for more than a thousand
/// years of uptime at 100 ticks a second). 0 means "nobody".
///
/// Stored and loaded with one atomic operation, an identity cannot be torn:
/// no reader can pair one process's pid with another's start time, as it
/// could with two separate fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ident {
    /// The pid.
    pub pid: u32,
    /// Start time in clock ticks after boot (0 if unknown).
    pub start: u64,
}

/// Bits of an [`Ident`] word that hold the pid.
const PID_BITS: u32 = 22;

impl Ident {
    /// This process.
    pub fn me() -> Ident {
        Ident {
            pid: std::process::id(),
            start: own_start_time(),
        }
    }

    /// The identity packed into one word.
    pub fn to_word(self) -> u64 {
        u64::from(self.pid) & ((1 << PID_BITS) - 1) | self.start << PID_BITS
    }

    /// The identity in a word, `None` for 0 (nobody).
    pub fn from_word(word: u64) -> Option<Ident> {
        let pid = (word & ((1 << PID_BITS) - 1)) as u32;
        (pid != 0).then_some(Ident {
            pid,
            start: word >> PID_BITS,
        })
    }

    /// Whether this process is still running (see [`is_alive`]).
    pub fn is_alive(self) -> bool {
        is_alive(self.pid, self.start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_with_spaces_and_parentheses() {
        let line =
            "1234 (a) b (c)) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 200";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                state: 'S',
                start_time: 987654
            })
        );
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn identities_round_trip_through_one_word() {
        let me = Ident::me();
        assert_eq!(Ident::from_word(me.to_word()), Some(me));
        let big = Ident {
            pid: (1 << PID_BITS) - 1,
            start: (1 << (64 - PID_BITS)) - 1,
        };
        assert_eq!(Ident::from_word(big.to_word()), Some(big));
        assert_eq!(Ident::from_word(0), None);
        // The start time never spills into the pid.
        let word = Ident { pid: 7, start: 1 }.to_word();
        assert_eq!(word, 7 | 1 << PID_BITS);
        assert!(me.is_alive());
        assert!(!Ident {
            start: me.start + 1,
            ..me
        }
        .is_alive());
    }

    #[test]
    fn an_identity_written_while_read_is_never_torn() {
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        use std::sync::Arc;
        // Two identities written in turn; a reader must only ever see one
        // of them whole. With a pid and a start time in two fields it would
        // see mixtures.
        let a = Ident {
            pid: 1111,
            start: 5_000_000,
        };
        let b = Ident {
            pid: 2222,
            start: 9_000_000,
        };
        let word = Arc::new(AtomicU64::new(a.to_word()));
        let stop = Arc::new(AtomicBool::new(false));
        let (w, s) = (Arc::clone(&word), Arc::clone(&stop));
        let writer = std::thread::spawn(move || {
            let mut i = 0u64;
            while !s.load(Ordering::Relaxed) {
                let id = if i.is_multiple_of(2) { b } else { a };
                w.store(id.to_word(), Ordering::Relaxed);
                i += 1;
            }
        });
        for _ in 0..200_000 {
            let seen = Ident::from_word(word.load(Ordering::Relaxed));
            assert!(seen == Some(a) || seen == Some(b), "torn: {seen:?}");
        }
        stop.store(true, Ordering::Relaxed);
        writer.join().unwrap();
    }

    #[test]
    fn this_process_is_alive_and_a_wrong_start_time_is_not() {
        let me = std::process::id();
        let start = own_start_time();
        assert!(start > 0);
        assert!(is_alive(me, start));
        assert!(is_alive(me, 0));
        assert!(!is_alive(me, start + 1));
        assert!(!is_alive(0, 0));
    }

    #[test]
    fn a_reaped_child_is_dead_and_a_zombie_too() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        // Give it time to exit; until reaped it is a zombie, which counts as dead.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while is_alive(pid, 0) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(!is_alive(pid, 0), "zombie counted as alive");
        child.wait().unwrap();
        assert!(!is_alive(pid, 0));
    }
}
