//! Tests of a segment file truncated while the consumer decodes it in place.
//!
//! A segment file truncated by another process while the consumer decodes it
//! in place: the consumer ends with one line and exit 1, not a SIGBUS; the
//! payload is rejected; nothing is left behind. `docs/reliability.md`, case 6c.

mod util;

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::layout::HEADER_SIZE;
use flate2::write::ZlibEncoder;
use flate2::Compression;
use util::{assert_clean, unique, Proc, Run};

const LIMIT: Duration = Duration::from_secs(60);

/// Writes a valid `side` x `side` RGB PNG of zero pixels to `path`: a few
/// hundred KiB that inflate to `3 * side * side` bytes, so decoding it takes
/// a while and reads the payload bit by bit throughout. The IDAT is split
/// into 8 KiB chunks, so the decoder keeps coming back for more input.
fn write_slow_png(path: &Path, side: u32) {
    let mut zlib = ZlibEncoder::new(Vec::new(), Compression::best());
    // Filter byte 0 (none), then the row's samples.
    let row = vec![0u8; 1 + 3 * side as usize];
    for _ in 0..side {
        zlib.write_all(&row).unwrap();
    }
    let idat = zlib.finish().unwrap();
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&side.to_be_bytes());
    ihdr.extend_from_slice(&side.to_be_bytes());
    // 8 bits per sample, colour type 2 (RGB), deflate, no filter method, no interlace.
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    png.extend(util::png_chunk(b"IHDR", &ihdr));
    for piece in idat.chunks(8192) {
        png.extend(util::png_chunk(b"IDAT", piece));
    }
    png.extend(util::png_chunk(b"IEND", &[]));
    std::fs::write(path, png).unwrap();
}

/// A consumer whose stdout is read line by line while it runs.
struct Watched {
    child: Child,
    lines: mpsc::Receiver<String>,
    stdout: Vec<String>,
    stderr: JoinHandle<String>,
    started: Instant,
}

impl Watched {
    fn start(args: &[&str]) -> Watched {
        let mut child = Command::new(util::bin("consumer"))
            .args(args)
            .current_dir(util::root())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the consumer");
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut pipe = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        });
        Watched {
            child,
            lines,
            stdout: Vec::new(),
            stderr,
            started: Instant::now(),
        }
    }

    /// Waits (at most `limit`) for a line of stdout that contains `word`;
    /// false if the consumer closed its stdout (ended) first.
    fn wait_for_line(&mut self, word: &str, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = line.contains(word);
                    self.stdout.push(line);
                    if found {
                        return true;
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return false,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let _ = self.child.kill();
                    panic!(
                        "the consumer printed no {word:?} within {limit:?}; stdout so far:\n{}",
                        self.stdout.join("\n")
                    );
                }
            }
        }
    }

    /// Waits at most `limit` for the consumer to end; kills it and fails if
    /// it does not.
    fn wait(mut self, limit: Duration) -> Run {
        let deadline = Instant::now() + limit;
        let status: ExitStatus = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("the consumer did not finish within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        // Its stdout is closed now: the reader thread ends the channel.
        self.stdout.extend(self.lines.iter());
        Run {
            status,
            stdout: self.stdout.join("\n"),
            stderr: self.stderr.join().unwrap(),
            elapsed: self.started.elapsed(),
        }
    }
}

/// One attempt: the consumer decodes a `side` x `side` image, and the file
/// is truncated to one page (the header) as soon as it reports its CRC
/// check, that is while the decode runs. `None` if the decode finished
/// before the truncation reached it (the transfer then succeeded).
fn truncate_during_decode(side: u32) -> Option<(Run, Run)> {
    let name = unique("trunc-decode");
    let dir = util::temp_dir("trunc-decode");
    let png = dir.path().join("slow.png");
    write_slow_png(&png, side);
    let mut consumer = Watched::start(&["--name", &name, "--timeout", "30"]);
    let producer = Proc::start(
        "producer",
        &[png.to_str().unwrap(), "--name", &name, "--timeout", "30"],
    );
    if consumer.wait_for_line("crc32", LIMIT) {
        // The CRC is checked; the decode runs now, reading the payload in place.
        let shm = common::Name::new(&name).unwrap().shm_path();
        let file = File::options().write(true).open(&shm);
        if let Ok(file) = file {
            file.set_len(HEADER_SIZE as u64).unwrap();
        }
    }
    let c = consumer.wait(LIMIT);
    let p = producer.wait(LIMIT);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(
        c.status.signal(),
        None,
        "the consumer was killed by a signal ({:?}); stdout:\n{}\nstderr: {}",
        c.status,
        c.stdout,
        c.stderr
    );
    assert_clean(&name);
    let decoded = c.stdout.contains("decoded a ");
    if c.status.success() && p.status.success() && decoded {
        return None;
    }
    Some((c, p))
}

#[test]
fn a_segment_truncated_during_the_decode_is_rejected_with_one_line_not_a_sigbus() {
    // Bigger images decode longer, leaving the truncation more time to land.
    for side in [8000, 12000] {
        let Some((c, p)) = truncate_during_decode(side) else {
            eprintln!("a {side}x{side} decode finished before the truncation; trying a bigger one");
            continue;
        };
        c.fails_with(1, &["the file was truncated while it was mapped", "zeros"]);
        assert!(!c.stdout.contains("decoded a "), "{}", c.stdout);
        p.fails_with(1, &["the consumer rejected the payload"]);
        return;
    }
    panic!(
        "every decode finished before the truncation reached it, so the case was never \
         exercised; is the machine very fast or the consumer built in release mode?"
    );
}
