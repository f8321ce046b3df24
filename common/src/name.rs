//! Names of segments and sockets, and where their files live.
//!
//! A name is 1 to 64 characters of `[A-Za-z0-9._-]`, so it can never be a path
//! (no `/`) and never `.` or `..`. Every file this project makes starts with
//! [`FILE_PREFIX`]: a published segment is `/dev/shm/p1p2.NAME`, a segment being
//! built is `/dev/shm/p1p2-tmp.PID.N.NAME`, and a Unix socket is
//! `$XDG_RUNTIME_DIR/p1p2.NAME.sock` (or the temporary directory when
//! `XDG_RUNTIME_DIR` is unset). The common prefix is what `producer --list`,
//! `producer --clean` and the leak checks look for.

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::error::{Error, Result};

/// Start of every file this project creates, in `/dev/shm` or the socket directory.
pub const FILE_PREFIX: &str = "p1p2";

/// Prefix of a published segment or socket file: `p1p2.NAME`.
pub const PUBLISHED_PREFIX: &str = "p1p2.";

/// Prefix of a segment still being initialised: `p1p2-tmp.PID.N.NAME`.
pub const TEMP_PREFIX: &str = "p1p2-tmp.";

/// Where POSIX shared memory lives on Linux.
pub const SHM_DIR: &str = "/dev/shm";

/// The longest name accepted.
pub const MAX_NAME_LEN: usize = 64;

/// A validated segment or socket name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Name(String);

impl Name {
    /// Checks `name` against the rules above.
    ///
    /// # Errors
    /// [`Error::InvalidName`] saying which rule was broken.
    pub fn new(name: &str) -> Result<Name> {
        let reason = if name.is_empty() {
            Some("it is empty")
        } else if name.len() > MAX_NAME_LEN {
            Some("it is longer than 64 characters")
        } else if name == "." || name == ".." {
            Some("it is a directory name")
        } else if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            Some("only letters, digits, '.', '_' and '-' are allowed")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(Error::InvalidName {
                name: name.to_owned(),
                reason,
            }),
            None => Ok(Name(name.to_owned())),
        }
    }

    /// The name as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// File name of the published segment inside [`SHM_DIR`]: `p1p2.NAME`.
    ///
    /// This is also the name Python's `SharedMemory(name=...)` takes.
    pub fn shm_file_name(&self) -> String {
        format!("{PUBLISHED_PREFIX}{}", self.0)
    }

    /// Full path of the published segment.
    pub fn shm_path(&self) -> PathBuf {
        PathBuf::from(SHM_DIR).join(self.shm_file_name())
    }

    /// A fresh, unique file name for a segment under construction.
    pub fn temp_file_name(&self) -> String {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        format!("{TEMP_PREFIX}{}.{n}.{}", std::process::id(), self.0)
    }

    /// Path of the Unix domain socket for this name.
    pub fn socket_path(&self) -> PathBuf {
        socket_dir().join(format!("{PUBLISHED_PREFIX}{}.sock", self.0))
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Directory of Unix sockets: `$XDG_RUNTIME_DIR` when set and absolute, else the
/// temporary directory.
pub fn socket_dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from) {
        Some(dir) if dir.is_absolute() => dir,
        _ => std::env::temp_dir(),
    }
}

/// A name of this process's own for unit test `tag`: "unit-TAG-PID".
#[cfg(test)]
pub(crate) fn for_unit_test(tag: &str) -> Name {
    Name::new(&format!("unit-{tag}-{}", std::process::id())).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_allowed_alphabet() {
        for ok in ["p1p2", "a", "A.b_c-9", &"x".repeat(64), "..."] {
            assert_eq!(Name::new(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn rejects_paths_and_odd_characters() {
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "/abs",
            "sp ace",
            "tab\t",
            "é",
            "nul\0",
            &"x".repeat(65),
        ] {
            assert!(
                matches!(Name::new(bad), Err(Error::InvalidName { .. })),
                "{bad:?} was accepted"
            );
        }
    }

    #[test]
    fn files_carry_the_project_prefix() {
        let name = Name::new("demo").unwrap();
        assert_eq!(name.shm_path(), PathBuf::from("/dev/shm/p1p2.demo"));
        assert!(name.temp_file_name().starts_with(TEMP_PREFIX));
        assert!(name.temp_file_name().ends_with(".demo"));
        assert_ne!(name.temp_file_name(), name.temp_file_name());
        let sock = name.socket_path();
        assert_eq!(sock.file_name().unwrap(), "p1p2.demo.sock");
    }
}
