//! Removing the segment, socket and iceoryx2 files that a failed case left behind.
//!
//! Removing what a failed case left behind: this project's segment and
//! socket files of the case, and the files iceoryx2 made for it.

use std::path::PathBuf;

use common::name::{socket_dir, FILE_PREFIX, SHM_DIR};

/// Removes the files iceoryx2 made for case `name` in /dev/shm (the iceoryx2
/// peer gives them the prefix `p1p2_iox2.NAME.`), its persistent node
/// counter included. Only called once the case's processes have exited.
pub(super) fn remove_iceoryx2_files(name: &str) {
    let prefix = format!("p1p2_iox2.{name}.");
    for entry in std::fs::read_dir(SHM_DIR).into_iter().flatten().flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Removes this project's files in /dev/shm and the socket directory whose
/// name contains `.{name}` (a case name, or a prefix of case names ending in
/// `-`); returns how many. Only called once the processes that made them
/// have exited.
pub(super) fn remove_leftovers(name: &str) -> usize {
    let mut removed = 0;
    for dir in [PathBuf::from(SHM_DIR), socket_dir()] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let file = entry.file_name().to_string_lossy().into_owned();
            if !file.starts_with(FILE_PREFIX) {
                continue;
            }
            let ours = if name.ends_with('-') {
                file.contains(&format!(".{name}"))
            } else {
                file.ends_with(&format!(".{name}")) || file.contains(&format!(".{name}."))
            };
            if ours && std::fs::remove_file(dir.join(&file)).is_ok() {
                removed += 1;
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn leftovers_are_matched_by_case_name_only() {
        let me = format!("bench-unit{}-7", std::process::id());
        let other = format!("bench-unit{}-77", std::process::id());
        let paths: Vec<PathBuf> = [
            format!("p1p2.{me}"),
            format!("p1p2.{me}.3"),
            format!("p1p2.{other}"),
        ]
        .iter()
        .map(|f| Path::new(SHM_DIR).join(f))
        .collect();
        for p in &paths {
            std::fs::write(p, b"x").unwrap();
        }
        assert_eq!(remove_leftovers(&me), 2);
        assert!(paths[2].exists());
        assert_eq!(remove_leftovers(&other), 1);
        assert!(paths.iter().all(|p| !p.exists()));
    }
}
