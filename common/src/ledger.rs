//! The copy ledger: where the payload's bytes were copied, counted two ways.
//!
//! - **Counted by the program**: every place this process copies the payload
//!   (a `memcpy` into the segment, a `read`/`write` on a file or a socket),
//!   with the bytes and who does the copying: user space (our own `memcpy`)
//!   or the kernel (inside `read(2)`/`write(2)`).
//! - **Measured by the kernel**: the change of `/proc/self/io` over a phase.
//!   `rchar`/`wchar` are the bytes passed through the `read(2)`/`write(2)`
//!   family of system calls (read, pread, readv, write, pwrite, writev,
//!   sendfile...), whether or not a disk was involved; `syscr`/`syscw` count
//!   those calls. The kernel does *not* count `recv(2)`/`send(2)`, nor any
//!   access to mapped memory: a `memcpy` into a shared segment moves bytes
//!   without a system call. That is why the socket transports here use
//!   `read`/`write` on the socket's descriptor, as classic C programs do.
//! - **From `getrusage(2)`**: minor page faults (first touches of pages, such
//!   as a fresh segment's or a new heap buffer's) and voluntary / involuntary
//!   context switches over the same phase.
//!
//! On a system without `/proc/self/io` the kernel's figures are absent (`None`),
//! never reported as zero.

use std::time::{Duration, Instant};

use serde::Serialize;

/// Who performs a copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Copier {
    /// This process, with a `memcpy` or equivalent.
    User,
    /// The kernel, inside a system call.
    Kernel,
}

/// One copy of the payload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Copy {
    /// From where to where, and by what call, e.g. "heap -> socket (write)".
    pub what: String,
    /// Bytes copied.
    pub bytes: u64,
    /// Who copies.
    pub by: Copier,
}

/// The copies one process made of the payload during one phase.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Ledger {
    copies: Vec<Copy>,
}

impl Ledger {
    /// An empty ledger.
    pub fn new() -> Ledger {
        Ledger::default()
    }

    /// Records a copy.
    pub fn record(&mut self, what: impl Into<String>, bytes: u64, by: Copier) {
        self.copies.push(Copy {
            what: what.into(),
            bytes,
            by,
        });
    }

    /// The copies, in order.
    pub fn copies(&self) -> &[Copy] {
        &self.copies
    }

    /// Number of copies made by `by`.
    pub fn count(&self, by: Copier) -> usize {
        self.copies.iter().filter(|c| c.by == by).count()
    }
}

/// The counters of `/proc/self/io` that the kernel updates on `read`/`write`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ProcIo {
    /// Bytes returned by read-family system calls.
    pub rchar: u64,
    /// Bytes passed to write-family system calls.
    pub wchar: u64,
    /// Read-family system calls.
    pub syscr: u64,
    /// Write-family system calls.
    pub syscw: u64,
}

impl ProcIo {
    /// Parses the text of `/proc/PID/io`.
    pub fn parse(text: &str) -> Option<ProcIo> {
        let mut io = ProcIo::default();
        let mut seen = 0;
        for line in text.lines() {
            let (key, value) = line.split_once(':')?;
            let value: u64 = value.trim().parse().ok()?;
            let field = match key {
                "rchar" => &mut io.rchar,
                "wchar" => &mut io.wchar,
                "syscr" => &mut io.syscr,
                "syscw" => &mut io.syscw,
                _ => continue,
            };
            *field = value;
            seen += 1;
        }
        (seen == 4).then_some(io)
    }

    /// Reads this process's counters, or `None` where `/proc/self/io` is absent.
    pub fn read_self() -> Option<ProcIo> {
        ProcIo::parse(&std::fs::read_to_string("/proc/self/io").ok()?)
    }

    /// `self - earlier - overhead`, clamped at zero.
    pub fn since(&self, earlier: &ProcIo, overhead: &ProcIo) -> ProcIo {
        let d = |a: u64, b: u64, o: u64| a.saturating_sub(b).saturating_sub(o);
        ProcIo {
            rchar: d(self.rchar, earlier.rchar, overhead.rchar),
            wchar: d(self.wchar, earlier.wchar, overhead.wchar),
            syscr: d(self.syscr, earlier.syscr, overhead.syscr),
            syscw: d(self.syscw, earlier.syscw, overhead.syscw),
        }
    }

    /// Sum of two processes' or phases' counters.
    pub fn plus(&self, other: &ProcIo) -> ProcIo {
        ProcIo {
            rchar: self.rchar + other.rchar,
            wchar: self.wchar + other.wchar,
            syscr: self.syscr + other.syscr,
            syscw: self.syscw + other.syscw,
        }
    }

    /// What reading `/proc/self/io` itself adds to the counters: reading the
    /// file is a read(2) too. Measured once by reading it twice in a row.
    fn overhead() -> ProcIo {
        static OVERHEAD: std::sync::OnceLock<ProcIo> = std::sync::OnceLock::new();
        *OVERHEAD.get_or_init(|| {
            let mut best: Option<ProcIo> = None;
            for _ in 0..3 {
                if let (Some(a), Some(b)) = (ProcIo::read_self(), ProcIo::read_self()) {
                    let d = b.since(&a, &ProcIo::default());
                    best = Some(match best {
                        Some(x) if x.rchar <= d.rchar => x,
                        _ => d,
                    });
                }
            }
            best.unwrap_or_default()
        })
    }
}

/// Resource usage of this process (from `getrusage(RUSAGE_SELF)`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Minor page faults.
    pub minflt: u64,
    /// Voluntary context switches (the process blocked).
    pub nvcsw: u64,
    /// Involuntary context switches (the process was preempted).
    pub nivcsw: u64,
    /// User CPU time.
    pub user: Duration,
    /// System CPU time.
    pub system: Duration,
}

impl Usage {
    /// Reads this process's usage.
    pub fn read_self() -> Usage {
        let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
        // SAFETY: getrusage writes a `struct rusage` to the pointer, which
        // points to a zeroed, properly sized and aligned one; RUSAGE_SELF is
        // always valid, so the call cannot fail.
        let ru = unsafe {
            libc::getrusage(libc::RUSAGE_SELF, ru.as_mut_ptr());
            ru.assume_init()
        };
        let time = |tv: libc::timeval| {
            Duration::from_secs(tv.tv_sec.max(0) as u64)
                + Duration::from_micros(tv.tv_usec.max(0) as u64)
        };
        Usage {
            minflt: ru.ru_minflt.max(0) as u64,
            nvcsw: ru.ru_nvcsw.max(0) as u64,
            nivcsw: ru.ru_nivcsw.max(0) as u64,
            user: time(ru.ru_utime),
            system: time(ru.ru_stime),
        }
    }

    /// `self - earlier`, clamped at zero.
    pub fn since(&self, earlier: &Usage) -> Usage {
        Usage {
            minflt: self.minflt.saturating_sub(earlier.minflt),
            nvcsw: self.nvcsw.saturating_sub(earlier.nvcsw),
            nivcsw: self.nivcsw.saturating_sub(earlier.nivcsw),
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
        }
    }
}

/// The kernel's and getrusage's view of one phase, as the reports show it.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Witness {
    /// Change of `/proc/self/io` (absent where the file does not exist).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proc_io: Option<ProcIo>,
    /// Minor page faults.
    pub minflt: u64,
    /// Voluntary context switches.
    pub nvcsw: u64,
    /// Involuntary context switches.
    pub nivcsw: u64,
    /// Milliseconds of wall time.
    pub phase_ms: f64,
}

/// Measures one phase: create it at the start, [`Meter::finish`] at the end.
#[derive(Clone, Copy, Debug)]
pub struct Meter {
    io: Option<ProcIo>,
    usage: Usage,
    started: Instant,
}

impl Meter {
    /// Starts measuring.
    pub fn start() -> Meter {
        // Compute the overhead outside any phase.
        let _ = ProcIo::overhead();
        Meter {
            io: ProcIo::read_self(),
            usage: Usage::read_self(),
            started: Instant::now(),
        }
    }

    /// Ends the phase and returns what changed during it.
    pub fn finish(&self) -> Witness {
        let ms = (self.started.elapsed().as_secs_f64() * 1e6).round() / 1e3;
        let usage = Usage::read_self().since(&self.usage);
        let io = match (self.io, ProcIo::read_self()) {
            (Some(before), Some(after)) => Some(after.since(&before, &ProcIo::overhead())),
            _ => None,
        };
        Witness {
            proc_io: io,
            minflt: usage.minflt,
            nvcsw: usage.nvcsw,
            nivcsw: usage.nivcsw,
            phase_ms: ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn parses_proc_io() {
        let text = "rchar: 10\nwchar: 20\nsyscr: 3\nsyscw: 4\nread_bytes: 0\n\
                    write_bytes: 0\ncancelled_write_bytes: 0\n";
        assert_eq!(
            ProcIo::parse(text),
            Some(ProcIo {
                rchar: 10,
                wchar: 20,
                syscr: 3,
                syscw: 4
            })
        );
        assert_eq!(ProcIo::parse("rchar: 1\n"), None);
    }

    #[test]
    fn the_kernel_counts_read_and_write_and_the_meter_sees_only_them() {
        if ProcIo::read_self().is_none() {
            return; // no /proc/self/io here: nothing to witness
        }
        let path = std::env::temp_dir().join(format!("p1p2-ledger-{}", std::process::id()));
        let data = vec![7u8; 100_000];
        // The counters are the whole process's, and other tests run in
        // threads of this process at the same time, adding their own reads
        // and writes: one of a few attempts must see exactly this one's.
        let mut seen = Vec::new();
        for _attempt in 0..5 {
            let meter = Meter::start();
            std::fs::File::create(&path)
                .unwrap()
                .write_all(&data)
                .unwrap();
            let mut back = Vec::new();
            std::fs::File::open(&path)
                .unwrap()
                .read_to_end(&mut back)
                .unwrap();
            let io = meter.finish().proc_io.unwrap();
            seen.push(io);
            if (100_000..101_000).contains(&io.wchar) && (100_000..101_000).contains(&io.rchar) {
                break;
            }
        }
        std::fs::remove_file(&path).unwrap();
        let io = *seen.last().unwrap();
        assert!(io.wchar >= 100_000 && io.wchar < 101_000, "{seen:?}");
        assert!(io.rchar >= 100_000 && io.rchar < 101_000, "{seen:?}");
        assert!(io.syscw >= 1 && io.syscr >= 1);

        // A memcpy is invisible to the kernel's counters.
        let meter = Meter::start();
        let mut dst = vec![0u8; 100_000];
        dst.copy_from_slice(&data);
        std::hint::black_box(&dst);
        let io = meter.finish().proc_io.unwrap();
        assert!(io.rchar < 1000 && io.wchar < 1000, "{io:?}");
    }

    #[test]
    fn ledger_counts_by_copier() {
        let mut l = Ledger::new();
        l.record("file -> heap (read)", 5, Copier::Kernel);
        l.record("heap -> segment (memcpy)", 5, Copier::User);
        assert_eq!((l.count(Copier::User), l.count(Copier::Kernel)), (1, 1));
        assert_eq!(
            serde_json::to_string(&l).unwrap(),
            r#"[{"what":"file -> heap (read)","bytes":5,"by":"kernel"},{"what":"heap -> segment (memcpy)","bytes":5,"by":"user"}]"#
        );
    }
}
