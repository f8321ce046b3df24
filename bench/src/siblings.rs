//! The executables the drivers start, found next to the running one.
//!
//! The executables the drivers start, found next to the running one: cargo
//! puts every binary of the workspace into the same `target/<profile>/`.

use std::path::{Path, PathBuf};

/// An executable that is not where it should be.
#[derive(Debug, thiserror::Error)]
#[error(
    "{name} not found in {} (build the binaries with `cargo build --release`)",
    dir.display()
)]
pub struct Missing {
    /// The executable's name.
    pub name: String,
    /// Where it was looked for.
    pub dir: PathBuf,
}

/// The directory holding the running executable (`.` if it cannot be told).
pub fn dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The executable `name` in `dir`.
///
/// # Errors
/// [`Missing`] when there is no such file.
pub fn find_in(dir: &Path, name: &str) -> Result<PathBuf, Missing> {
    let path = dir.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(Missing {
            name: name.to_string(),
            dir: dir.to_path_buf(),
        })
    }
}

/// The executable `name` next to the running one.
///
/// # Errors
/// [`Missing`] when there is no such file.
pub fn find(name: &str) -> Result<PathBuf, Missing> {
    find_in(&dir(), name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_binary_is_named_with_how_to_build_it() {
        let tmp = tempfile::tempdir().unwrap();
        let err = find_in(tmp.path(), "producer").unwrap_err().to_string();
        assert!(err.starts_with("producer not found in "), "{err}");
        assert!(err.contains("cargo build --release"), "{err}");
        assert_eq!(err.lines().count(), 1);
        std::fs::write(tmp.path().join("producer"), b"").unwrap();
        assert_eq!(
            find_in(tmp.path(), "producer").unwrap(),
            tmp.path().join("producer")
        );
    }
}
