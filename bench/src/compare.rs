//! The demo's comparison of transports: copy ledgers and kernel counters in one table.
//!
//! The demo's comparison: send the same image over every transport, then put
//! each run's copy ledger and the kernel's counters side by side in one table,
//! and read the table the way the classic explanation does.
//!
//! Each scenario runs the real binaries: the consumer first, then the producer,
//! both with `--json`. A row sums the two processes' transfer phases.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::siblings;
use common::story::thousands;
use common::transfer::ReadMode;
use common::transport::TransportKind;

/// One way of sending the image: a scenario of the demo.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// Row label.
    pub label: &'static str,
    /// Transport.
    pub transport: TransportKind,
    /// How the producer reads the file (shared memory only).
    pub read: ReadMode,
}

/// The demo's cases: shared memory with both read modes, the sockets, then
/// the sealed memfd.
pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            label: "shm",
            transport: TransportKind::Shm,
            read: ReadMode::Direct,
        },
        Scenario {
            label: "shm (heap read)",
            transport: TransportKind::Shm,
            read: ReadMode::Heap,
        },
        Scenario {
            label: "unix",
            transport: TransportKind::Unix,
            read: ReadMode::Heap,
        },
        Scenario {
            label: "tcp",
            transport: TransportKind::Tcp,
            read: ReadMode::Heap,
        },
        Scenario {
            label: "memfd",
            transport: TransportKind::Memfd,
            read: ReadMode::Direct,
        },
    ]
}

/// One row of the table: both processes' transfer phases added up.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Figures {
    /// The scenario's label.
    pub label: String,
    /// "shm", "unix", "tcp" or "memfd".
    pub transport: String,
    /// The producer's read mode.
    pub read_mode: String,
    /// Payload size.
    pub bytes: u64,
    /// Copies of the payload made by user code (memcpy), both processes.
    pub user_copies: u64,
    /// Copies made by the kernel inside read/write, both processes.
    pub kernel_copies: u64,
    /// What each copy was, producer's first.
    pub copies: Vec<String>,
    /// How many of the copies the consumer made.
    pub consumer_copies: u64,
    /// read + write system calls counted by the kernel (absent without /proc/self/io).
    pub syscalls: Option<u64>,
    /// Bytes through read/write counted by the kernel (rchar + wchar).
    pub rw_bytes: Option<u64>,
    /// Minor page faults, both processes.
    pub page_faults: u64,
    /// From the producer's first read of the file to the consumer's verified
    /// CRC-32 (the same span for every transport).
    pub transfer_ms: f64,
    /// The consumer's PNG decode.
    pub decode_ms: f64,
    /// Copies made before the transfer, reading the file into the producer's heap.
    pub file_read_copies: u64,
}

fn u(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or(0)
}

/// Builds a row from the two JSON reports of one run.
pub fn figures(scenario: &Scenario, producer: &Value, consumer: &Value) -> Figures {
    let mut copies = Vec::new();
    let (mut user, mut kernel) = (0, 0);
    let consumer_copies = consumer["copies"].as_array().map_or(0, |a| a.len() as u64);
    for side in [producer, consumer] {
        for copy in side["copies"].as_array().into_iter().flatten() {
            match copy["by"].as_str() {
                Some("user") => user += 1,
                _ => kernel += 1,
            }
            copies.push(format!(
                "{} ({})",
                copy["what"].as_str().unwrap_or("?"),
                copy["by"].as_str().unwrap_or("?")
            ));
        }
    }
    let io = |key: &str| -> Option<u64> {
        let p = producer["proc_io"].get(key)?.as_u64()?;
        let c = consumer["proc_io"].get(key)?.as_u64()?;
        Some(p + c)
    };
    let syscalls = io("syscr").zip(io("syscw")).map(|(r, w)| r + w);
    let rw_bytes = io("rchar").zip(io("wchar")).map(|(r, w)| r + w);
    let start = u(producer, "copy_start_unix_ns");
    let end = u(consumer, "verified_unix_ns");
    Figures {
        label: scenario.label.to_owned(),
        transport: scenario.transport.as_str().to_owned(),
        read_mode: producer["read_mode"].as_str().unwrap_or("").to_owned(),
        bytes: u(consumer, "bytes"),
        user_copies: user,
        kernel_copies: kernel,
        copies,
        consumer_copies,
        syscalls,
        rw_bytes,
        page_faults: u(producer, "minflt") + u(consumer, "minflt"),
        transfer_ms: end.saturating_sub(start) as f64 / 1e6
            + producer["read_file"]["phase_ms"].as_f64().unwrap_or(0.0),
        decode_ms: consumer["decode_ms"].as_f64().unwrap_or(0.0),
        file_read_copies: producer["read_file"]["copies"]
            .as_array()
            .map_or(0, |a| a.len() as u64),
    }
}

/// The median of several runs of one scenario, field by field.
///
/// # Panics
/// If `runs` is empty.
pub fn median(runs: &[Figures]) -> Figures {
    fn mid<T: Copy + PartialOrd>(mut v: Vec<T>) -> T {
        v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
        v[v.len() / 2]
    }
    let first = runs.first().expect("at least one run");
    let opt_mid = |f: fn(&Figures) -> Option<u64>| {
        let v: Option<Vec<u64>> = runs.iter().map(f).collect();
        v.map(mid)
    };
    Figures {
        user_copies: mid(runs.iter().map(|r| r.user_copies).collect()),
        kernel_copies: mid(runs.iter().map(|r| r.kernel_copies).collect()),
        syscalls: opt_mid(|r| r.syscalls),
        rw_bytes: opt_mid(|r| r.rw_bytes),
        page_faults: mid(runs.iter().map(|r| r.page_faults).collect()),
        transfer_ms: mid(runs.iter().map(|r| r.transfer_ms).collect()),
        decode_ms: mid(runs.iter().map(|r| r.decode_ms).collect()),
        file_read_copies: mid(runs.iter().map(|r| r.file_read_copies).collect()),
        consumer_copies: mid(runs.iter().map(|r| r.consumer_copies).collect()),
        ..first.clone()
    }
}

fn mb(bytes: u64) -> String {
    format!("{:.2} MB", bytes as f64 / 1e6)
}

fn opt(v: Option<u64>, f: impl Fn(u64) -> String) -> String {
    v.map_or_else(|| "n/a".to_owned(), f)
}

/// The table and, under it, what it says.
pub fn render(rows: &[Figures]) -> String {
    let header = [
        "transport",
        "payload copies (user / kernel)",
        "read+write syscalls",
        "bytes through read/write",
        "page faults",
        "transfer time",
        "decode time",
    ];
    let cells: Vec<[String; 7]> = rows
        .iter()
        .map(|r| {
            [
                r.label.clone(),
                format!("{} / {}", r.user_copies, r.kernel_copies),
                opt(r.syscalls, |n| n.to_string()),
                opt(r.rw_bytes, mb),
                r.page_faults.to_string(),
                format!("{:.2} ms", r.transfer_ms),
                format!("{:.2} ms", r.decode_ms),
            ]
        })
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            cells
                .iter()
                .map(|c| c[i].chars().count())
                .chain([header[i].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cols: Vec<&str>| -> String {
        let parts: Vec<String> = cols
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (c, w))| {
                if i == 0 {
                    format!("{c:<w$}")
                } else {
                    format!("{c:>w$}")
                }
            })
            .collect();
        format!("| {} |\n", parts.join(" | "))
    };
    let mut out = line(header.to_vec());
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    out.push_str(&line(rule.iter().map(String::as_str).collect()));
    for c in &cells {
        out.push_str(&line(c.iter().map(String::as_str).collect()));
    }
    out.push('\n');
    for sentence in explain(rows) {
        out.push_str(&sentence);
        out.push('\n');
    }
    out
}

/// Plain sentences that read the table, built from its figures.
pub fn explain(rows: &[Figures]) -> Vec<String> {
    let mut said = Vec::new();
    let find = |label: &str| rows.iter().find(|r| r.label == label);
    let socket = || {
        rows.iter()
            .find(|r| r.transport == "unix" || r.transport == "tcp")
    };
    if let Some(r) = socket() {
        let between = r.user_copies + r.kernel_copies;
        said.push(format!(
            "Over a socket ({}), the {}-byte image was copied {between} times between the \
             processes: by write() from P1 into the kernel, and by read() from the kernel into P2. \
             The kernel counted {} through read/write, {} the payload.",
            r.label,
            thousands(r.bytes),
            opt(r.rw_bytes, mb),
            opt(r.rw_bytes, |b| format!(
                "{:.1}x",
                b as f64 / r.bytes.max(1) as f64
            )),
        ));
        if r.file_read_copies > 0 {
            said.push(format!(
                "Before that, P1 had read the file into its heap ({} more kernel copy, reported \
                 apart as read_file).",
                r.file_read_copies
            ));
        }
    }
    if let Some(r) = find("shm") {
        said.push(format!(
            "Over shared memory, P1 read the file straight into the segment: {} copy in all, \
             made by the kernel, which counted {} ({} the payload; that is the file read, \
             nothing passed between the processes). P2 checked and decoded the image in place, \
             with {} copies of its own.",
            r.user_copies + r.kernel_copies,
            opt(r.rw_bytes, mb),
            opt(r.rw_bytes, |b| format!(
                "{:.1}x",
                b as f64 / r.bytes.max(1) as f64
            )),
            0,
        ));
    }
    if let Some(r) = find("shm (heap read)") {
        said.push(format!(
            "Reading the file into a heap buffer first (--read heap), P1 makes {} memcpy into \
             the segment, which the kernel does not see: {} through read/write in the transfer.",
            r.user_copies,
            opt(r.rw_bytes, mb),
        ));
    }
    if let Some(r) = find("memfd") {
        said.push(format!(
            "The sealed memfd is read in place too: P1 read the file into an anonymous memfd \
             ({} copy), sealed it and passed the descriptor itself over the Unix socket; P2 \
             mapped it read-only with {} copies of its own. Only the hello and the answers went \
             through read/write ({} in all, the file read included), and nothing had a name in \
             /dev/shm.",
            r.user_copies + r.kernel_copies,
            r.consumer_copies,
            opt(r.rw_bytes, mb),
        ));
    }
    if let (Some(s), Some(r)) = (find("shm"), socket()) {
        let mut sentence = format!(
            "So: {} copies over a socket against {} over shared memory.",
            r.user_copies + r.kernel_copies + r.file_read_copies,
            s.user_copies + s.kernel_copies + s.file_read_copies,
        );
        if s.transfer_ms > r.transfer_ms {
            sentence.push_str(&format!(
                " Yet this one-shot transfer took {:.2} ms over shared memory against {:.2} ms \
                 over {}: a fresh segment costs page faults ({} here) and a wake-up of the \
                 waiting consumer, which for {} outweigh the copies saved. Shared memory wins \
                 when a segment is reused for many transfers (see scripts/bench.sh).",
                s.transfer_ms,
                r.transfer_ms,
                r.label,
                s.page_faults,
                mb(s.bytes),
            ));
        } else {
            sentence.push_str(&format!(
                " The transfer took {:.2} ms over shared memory against {:.2} ms over {}.",
                s.transfer_ms, r.transfer_ms, r.label
            ));
        }
        if s.decode_ms > s.transfer_ms {
            sentence.push_str(&format!(
                " Decoding the PNG took longer still ({:.2} ms): for a compressed image the \
                 decode, not the transfer, sets the pace.",
                s.decode_ms
            ));
        }
        said.push(sentence);
    }
    said
}

/// Runs one scenario `runs` times and returns the median row.
///
/// # Errors
/// As [`run_scenario`].
pub fn measure(
    bin_dir: &Path,
    scenario: &Scenario,
    image: &Path,
    runs: usize,
    mut name_and_addr: impl FnMut() -> (String, String),
    timeout: Duration,
) -> Result<Figures, String> {
    let mut rows = Vec::new();
    for _ in 0..runs.max(1) {
        let (name, addr) = name_and_addr();
        let (producer, consumer) = run_scenario(bin_dir, scenario, image, &name, &addr, timeout)?;
        rows.push(figures(scenario, &producer, &consumer));
    }
    Ok(median(&rows))
}

/// Runs one scenario with the binaries in `bin_dir`: the consumer first, then
/// the producer. Returns their JSON reports.
///
/// # Errors
/// A message when either process fails or prints no JSON.
pub fn run_scenario(
    bin_dir: &Path,
    scenario: &Scenario,
    image: &Path,
    name: &str,
    addr: &str,
    timeout: Duration,
) -> Result<(Value, Value), String> {
    let secs = format!("{}", timeout.as_secs_f64());
    let common = [
        "--name",
        name,
        "--timeout",
        &secs,
        "--transport",
        scenario.transport.as_str(),
        "--addr",
        addr,
        "--json",
    ];
    let consumer_bin = siblings::find_in(bin_dir, "consumer").map_err(|e| e.to_string())?;
    let producer_bin = siblings::find_in(bin_dir, "producer").map_err(|e| e.to_string())?;
    let consumer = Command::new(&consumer_bin)
        .args(common)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("start {}: {e}", consumer_bin.display()))?;
    // Let the consumer start waiting, so both runs take the same path.
    std::thread::sleep(Duration::from_millis(100));
    let producer = Command::new(&producer_bin)
        .arg(image)
        .args(common)
        .args(["--read", scenario.read.as_str()])
        .output()
        .map_err(|e| format!("start {}: {e}", producer_bin.display()))?;
    let consumer = consumer
        .wait_with_output()
        .map_err(|e| format!("wait for the consumer: {e}"))?;
    let parse = |who: &str, out: &std::process::Output| -> Result<Value, String> {
        if !out.status.success() {
            return Err(format!(
                "{who} failed over {}: {}",
                scenario.label,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        serde_json::from_slice(&out.stdout).map_err(|e| format!("{who} printed no JSON: {e}"))
    };
    Ok((parse("producer", &producer)?, parse("consumer", &consumer)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_row_adds_up_both_processes() {
        let producer = json!({
            "read_mode": "heap", "copy_start_unix_ns": 1_000_000u64, "minflt": 3,
            "copies": [{"what": "heap -> socket (write)", "bytes": 10, "by": "kernel"}],
            "proc_io": {"rchar": 0, "wchar": 10, "syscr": 0, "syscw": 2},
            "read_file": {"copies": [{"what": "file -> heap (pread)", "bytes": 10, "by": "kernel"}]}
        });
        let consumer = json!({
            "bytes": 10, "verified_unix_ns": 3_500_000u64, "decode_ms": 1.5, "minflt": 4,
            "copies": [{"what": "socket -> heap (read)", "bytes": 10, "by": "kernel"}],
            "proc_io": {"rchar": 10, "wchar": 0, "syscr": 1, "syscw": 0}
        });
        let scenario = &scenarios()[2];
        let r = figures(scenario, &producer, &consumer);
        assert_eq!((r.user_copies, r.kernel_copies), (0, 2));
        assert_eq!(r.syscalls, Some(3));
        assert_eq!(r.rw_bytes, Some(20));
        assert_eq!(r.page_faults, 7);
        assert!((r.transfer_ms - 2.5).abs() < 1e-9);
        assert_eq!(r.file_read_copies, 1);
        let text = render(&[r]);
        assert!(text.contains("| unix "), "{text}");
        assert!(text.contains("0 / 2"), "{text}");
        assert!(text.contains("copied 2 times"), "{text}");
    }

    #[test]
    fn missing_kernel_counters_show_as_not_available() {
        let r = figures(
            &scenarios()[0],
            &json!({"copies": []}),
            &json!({"copies": []}),
        );
        assert_eq!(r.syscalls, None);
        assert!(render(&[r]).contains("n/a"));
    }
}
