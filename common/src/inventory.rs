//! This project's files on the machine, listed and cleaned.
//!
//! This project's files on the machine: `producer --list` and
//! `producer --clean`.
//!
//! Files are recognised by their prefix (`p1p2.` or `p1p2-tmp.`) in `/dev/shm`
//! (segments) and in the socket directory (Unix sockets, ending in `.sock`).
//!
//! - A segment is **alive** while its creator holds the `flock` it took when
//!   it created the file (the kernel drops it when the process dies, however
//!   it dies).
//! - A socket is **alive** while a process listens on it: a connection is
//!   accepted, and `SO_PEERCRED` names the listener. A producer ignores such a
//!   probe (it did not say hello) and goes on listening.
//! - Anything that is not ours to judge (a symlink, a directory, another
//!   user's file) is listed with the reason and never removed.
//!
//! [`clean`] removes only dead entries: a segment only while holding its
//! `flock` and only if the path still names the file it locked, a socket only
//! while holding the socket directory's `flock` (the lock producers take to
//! publish), so a live producer's file is never removed. Segments are
//! published already locked (see `segment::lifecycle`), so a live segment is
//! never seen unlocked; `p1p2-tmp.*` files are leftovers of the fallback for
//! systems without `O_TMPFILE`, removed like any dead segment.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{IoContext, Result};
use crate::layout::{RawHeader, SLOTS_OFFSET};
use crate::name::{socket_dir, FILE_PREFIX, PUBLISHED_PREFIX, SHM_DIR};
use crate::segment::{open_existing, owner_alive, recorded_pid, remove_if_stale, Stale};
use crate::story::thousands;
use crate::transport::socket;

/// One of this project's files.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Entry {
    /// Full path.
    pub path: PathBuf,
    /// The name it serves (`None` for a file still under construction).
    pub name: Option<String>,
    /// "transfer", "value", "array" (segments) or "socket".
    pub kind: Option<&'static str>,
    /// Size in bytes (0 for sockets).
    pub size: u64,
    /// The owner's pid: from the segment header, or the socket's listener.
    /// `--json` writes 0 when it is unknown.
    #[serde(serialize_with = "pid_or_zero")]
    pub pid: Option<u32>,
    /// Whether its owner is alive.
    pub alive: bool,
    /// Why it is listed but not ours to touch, or what is wrong with it.
    pub problem: Option<String>,
    /// Whether it may never be removed (not ours to judge).
    pub untouchable: bool,
}

/// A pid as the JSON listing has always written it: 0 for "unknown".
fn pid_or_zero<S: serde::Serializer>(pid: &Option<u32>, out: S) -> Result<S::Ok, S::Error> {
    out.serialize_u32(pid.unwrap_or(0))
}

/// The name part of a published file name (`p1p2.NAME` or `p1p2.NAME.sock`).
fn name_of(file_name: &str) -> Option<String> {
    let rest = file_name.strip_prefix(PUBLISHED_PREFIX)?;
    Some(rest.strip_suffix(".sock").unwrap_or(rest).to_owned())
}

fn ours(dir: &Path) -> Vec<(String, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<(String, PathBuf)> = entries
        .flatten()
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .filter(|(file, _)| file.starts_with(FILE_PREFIX))
        .collect();
    found.sort();
    found
}

fn segment_entry(file_name: &str, path: PathBuf) -> Entry {
    let mut entry = Entry {
        path,
        name: name_of(file_name),
        kind: None,
        size: 0,
        pid: None,
        alive: false,
        problem: None,
        untouchable: false,
    };
    match open_existing(&entry.path, false) {
        Ok(file) => {
            entry.size = file.metadata().map_or(0, |m| m.len());
            entry.alive = owner_alive(&file);
            entry.pid = recorded_pid(&file);
            let mut bytes = [0u8; SLOTS_OFFSET];
            let header = file
                .read_exact_at(&mut bytes, 0)
                .ok()
                .and_then(|()| RawHeader::from_bytes(&bytes));
            match header.map(|h| h.check(entry.size)) {
                Some(Ok(g)) => entry.kind = Some(g.kind.as_str()),
                Some(Err(reason)) => entry.problem = Some(reason),
                None => entry.problem = Some("shorter than a header".into()),
            }
        }
        Err(e) => {
            entry.untouchable = true;
            entry.problem = Some(e.to_string());
        }
    }
    entry
}

fn socket_entry(file_name: &str, path: PathBuf) -> Entry {
    let (alive, pid, problem) = match socket::probe(&path) {
        Ok(socket::Probe::Listening { pid }) => (true, pid, None),
        Ok(socket::Probe::Stale) => (false, None, None),
        Err(e) => (false, None, Some(e.to_string())),
    };
    Entry {
        name: name_of(file_name),
        kind: Some("socket"),
        size: 0,
        pid,
        alive,
        untouchable: problem.is_some(),
        problem,
        path,
    }
}

/// Lists this project's segments and sockets.
///
/// # Errors
/// If `/dev/shm` cannot be read.
pub fn list() -> Result<Vec<Entry>> {
    std::fs::read_dir(SHM_DIR).context(|| format!("read {SHM_DIR}"))?;
    let mut out: Vec<Entry> = ours(Path::new(SHM_DIR))
        .into_iter()
        .map(|(file, path)| segment_entry(&file, path))
        .collect();
    out.extend(
        ours(&socket_dir())
            .into_iter()
            .filter(|(file, _)| socket::is_socket_file(file))
            .map(|(file, path)| socket_entry(&file, path)),
    );
    Ok(out)
}

/// Removes the dead entries; returns what was removed.
///
/// # Errors
/// If `/dev/shm` cannot be read.
pub fn clean() -> Result<Vec<Entry>> {
    let mut removed = Vec::new();
    for entry in list()? {
        if entry.alive || entry.untouchable {
            continue;
        }
        let gone = if entry.kind == Some("socket") {
            socket::remove_stale(&entry.path).unwrap_or(false)
        } else {
            remove_dead_segment(&entry.path)
        };
        if gone {
            removed.push(entry);
        }
    }
    Ok(removed)
}

/// Removes a segment file whose creator is dead, with the removal producers
/// and consumers use: holding the file's flock, and only if the path still
/// names the file it locked (a new producer may have replaced it since the
/// listing).
fn remove_dead_segment(path: &Path) -> bool {
    matches!(remove_if_stale(path), Ok(Stale::Removed { .. }))
}

/// The listing as a table, or a line saying there is nothing.
pub fn render(entries: &[Entry]) -> String {
    if entries.is_empty() {
        return format!(
            "no p1p2 segments in {SHM_DIR} or sockets in {}\n",
            socket_dir().display()
        );
    }
    let rows: Vec<[String; 6]> = entries
        .iter()
        .map(|e| {
            [
                e.path.display().to_string(),
                e.kind.unwrap_or("?").to_owned(),
                thousands(e.size),
                e.pid.map_or_else(|| "-".into(), |pid| pid.to_string()),
                match (&e.problem, e.alive) {
                    (Some(p), _) if e.untouchable => format!("not ours: {p}"),
                    (_, true) => "alive".into(),
                    (Some(p), false) => format!("dead ({p})"),
                    (None, false) => "dead (stale)".into(),
                },
                e.name.clone().unwrap_or_else(|| "(being built)".into()),
            ]
        })
        .collect();
    let header = ["FILE", "KIND", "SIZE", "PID", "STATE", "NAME"];
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].len())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[&str]| {
        let parts: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        format!("{}\n", parts.join("  ").trim_end())
    };
    let mut out = line(&header);
    for r in &rows {
        out.push_str(&line(&r.iter().map(String::as_str).collect::<Vec<_>>()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_file_names() {
        assert_eq!(name_of("p1p2.demo"), Some("demo".into()));
        assert_eq!(name_of("p1p2.demo.sock"), Some("demo".into()));
        assert_eq!(name_of("p1p2-tmp.1.0.demo"), None);
    }

    #[test]
    fn an_empty_listing_says_so() {
        assert!(render(&[]).starts_with("no p1p2 segments"));
    }

    #[test]
    fn an_unknown_pid_is_a_dash_in_the_table_and_0_in_json() {
        let entry = |pid| Entry {
            path: PathBuf::from("/dev/shm/p1p2.x"),
            name: Some("x".into()),
            kind: Some("transfer"),
            size: 4096,
            pid,
            alive: false,
            problem: None,
            untouchable: false,
        };
        assert_eq!(serde_json::to_value(entry(None)).unwrap()["pid"], 0);
        assert_eq!(serde_json::to_value(entry(Some(42))).unwrap()["pid"], 42);
        let table = render(&[entry(None), entry(Some(42))]);
        let pids: Vec<&str> = table
            .lines()
            .skip(1)
            .map(|line| line.split_whitespace().nth(3).unwrap())
            .collect();
        assert_eq!(pids, ["-", "42"]);
    }
}
