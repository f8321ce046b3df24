//! Making a sealed memfd, and checking one that a peer sent.
//!
//! # Which seals, and why `F_SEAL_WRITE`
//! The producer seals with `F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE |
//! F_SEAL_SEAL`. `F_SEAL_WRITE` can only be added while no writable shared
//! mapping of the memfd exists, so the producer fills it through a mapping,
//! unmaps it, and then seals. `F_SEAL_FUTURE_WRITE` would allow sealing with
//! the mapping still in place, but it only refuses *new* writes (`write(2)`,
//! new writable mappings): a writable mapping that exists when it is set
//! stays writable. The memory would then not be immutable, and a consumer
//! could not decode it in place without trusting the producer. With
//! `F_SEAL_WRITE` nothing can write it any more, through any descriptor or
//! mapping, in any process, for as long as the memory exists. The consumer
//! therefore requires `F_SEAL_WRITE` and does not accept
//! `F_SEAL_FUTURE_WRITE` in its place.
//!
//! `F_SEAL_SEAL` is added last so that nobody (the consumer included) can
//! change the set of seals afterwards; seals can never be removed anyway.
//!
//! # What the consumer checks
//! In order, each refusal one line naming what is wrong:
//! 1. `fstat`: a regular file (a socket, a pipe, a directory are refused);
//! 2. `/proc/self/fd/N` reads `/memfd:...` (where `/proc` is mounted): a
//!    disk file or a `/dev/shm` file is not a memfd;
//! 3. `F_GET_SEALS` works (`EINVAL`: a file that cannot be sealed);
//! 4. `F_SEAL_SHRINK`, `F_SEAL_GROW` and `F_SEAL_WRITE` are all set;
//! 5. its size is at least the length the offer claims.
//!
//! # Trying to change it anyway
//! [`try_to_change`] (`consumer --try-tamper`) makes the calls that would
//! shrink, grow, write or writably map a memfd that passed those checks, and
//! records the kernel's refusal of each: the seals shown at work, not only
//! read back.

use std::fs::File;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use memmap2::{Mmap, MmapOptions};
use rustix::fs::{FileType, MemfdFlags, SealFlags};
use rustix::io::Errno;
use serde::Serialize;

use crate::error::{Error, IoContext, Result, Role};
use crate::name::Name;
use crate::story::thousands;

/// The seals the consumer requires.
pub const REQUIRED: SealFlags = SealFlags::SHRINK
    .union(SealFlags::GROW)
    .union(SealFlags::WRITE);

/// The seals the producer applies: the required ones, and `F_SEAL_SEAL`.
pub const APPLIED: SealFlags = REQUIRED.union(SealFlags::SEAL);

/// Every seal with its name in JSON, in the order the kernel numbers them.
const NAMES: [(SealFlags, &str, &str); 6] = [
    (SealFlags::SEAL, "seal", "F_SEAL_SEAL"),
    (SealFlags::SHRINK, "shrink", "F_SEAL_SHRINK"),
    (SealFlags::GROW, "grow", "F_SEAL_GROW"),
    (SealFlags::WRITE, "write", "F_SEAL_WRITE"),
    (
        SealFlags::FUTURE_WRITE,
        "future-write",
        "F_SEAL_FUTURE_WRITE",
    ),
    (SealFlags::EXEC, "exec", "F_SEAL_EXEC"),
];

/// The names of the seals in `seals`, e.g. `["seal", "shrink", "grow",
/// "write"]`.
pub fn names(seals: SealFlags) -> Vec<&'static str> {
    NAMES
        .iter()
        .filter(|(flag, _, _)| seals.contains(*flag))
        .map(|(_, name, _)| *name)
        .collect()
}

/// Creates an anonymous memfd of `len` bytes (close-on-exec, sealing
/// allowed), lets `fill` write the payload through a writable mapping,
/// unmaps it, and seals it with [`APPLIED`].
///
/// The memfd's name (`p1p2.NAME`) is only a label in `/proc/PID/fd`: it is
/// in no directory, so nothing can open it by name, and it disappears with
/// its last descriptor and mapping.
///
/// # Errors
/// A system error, or what `fill` returns; the memfd is then closed.
pub fn create(
    name: &Name,
    len: u64,
    fill: impl FnOnce(&mut [u8]) -> Result<()>,
) -> Result<OwnedFd> {
    if len == 0 {
        return Err(Error::Usage(
            "an empty payload cannot be passed as a memfd".into(),
        ));
    }
    let label = name.shm_file_name();
    let fd = rustix::fs::memfd_create(
        label.as_str(),
        MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
    )
    .context(|| format!("memfd_create {label}"))?;
    rustix::fs::ftruncate(&fd, len).context(|| format!("size the memfd to {len} bytes"))?;
    let file = File::from(fd);
    {
        // SAFETY: the memfd was created just now by this process and sized
        // to `len`; it has no name in any directory and its only descriptor
        // is ours (close-on-exec, not yet passed to anyone). So while this
        // mapping lives nobody but this thread writes or resizes it, and
        // the `&mut [u8]` over it is exclusive and fully backed. (A process
        // allowed to ptrace this one could reach it through /proc/PID/fd,
        // but such a process can change this process's memory anyway.)
        let mut map = unsafe { MmapOptions::new().len(len as usize).map_mut(&file) }
            .context(|| "map the memfd to fill it".into())?;
        fill(&mut map)?;
        // The writable mapping goes before sealing: F_SEAL_WRITE is refused
        // (EBUSY) while one exists.
    }
    rustix::fs::fcntl_add_seals(&file, APPLIED).context(|| "seal the memfd".into())?;
    Ok(OwnedFd::from(file))
}

/// A received memfd that passed every check, mapped read-only.
pub struct Checked {
    /// The read-only mapping of the first `len` bytes.
    pub map: Mmap,
    /// The seals it carries.
    pub seals: SealFlags,
}

fn refuse(reason: String) -> Error {
    Error::BadMessage {
        peer: Role::Producer,
        reason,
    }
}

/// Checks that `fd` is a memfd sealed with [`REQUIRED`] and holding at least
/// `len` bytes, then maps its first `len` bytes read-only.
///
/// # Errors
/// [`Error::BadMessage`] naming the first check that failed (see the module
/// docs), or a system error. `fd` is closed either way (the mapping keeps
/// the memory alive on success).
pub fn check(fd: OwnedFd, len: u64) -> Result<Checked> {
    let stat = rustix::fs::fstat(&fd).context(|| "fstat the received descriptor".into())?;
    match FileType::from_raw_mode(stat.st_mode) {
        FileType::RegularFile => {}
        FileType::Socket => {
            return Err(refuse(
                "the descriptor it sent is a socket, not a memfd".into(),
            ))
        }
        other => {
            return Err(refuse(format!(
                "the descriptor it sent is not a memfd but a {}",
                kind(other)
            )))
        }
    }
    // Where /proc is mounted, it names what the descriptor is: a memfd reads
    // `/memfd:LABEL (deleted)`, anything else its path.
    if let Ok(link) = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())) {
        if !link.as_os_str().as_encoded_bytes().starts_with(b"/memfd:") {
            return Err(refuse(format!(
                "the descriptor it sent is the file {}, not a memfd",
                link.display()
            )));
        }
    }
    let seals = match rustix::fs::fcntl_get_seals(&fd) {
        Ok(seals) => seals,
        Err(Errno::INVAL) => {
            return Err(refuse(
                "the descriptor it sent is a file that cannot be sealed, not a memfd".into(),
            ))
        }
        Err(e) => return Err(Error::io("F_GET_SEALS on the received memfd", e.into())),
    };
    let missing = REQUIRED.difference(seals);
    if !missing.is_empty() {
        let (words, flags): (Vec<&str>, Vec<&str>) = NAMES
            .iter()
            .filter(|(flag, _, _)| missing.contains(*flag))
            .map(|(_, word, flag)| (*word, *flag))
            .unzip();
        return Err(refuse(format!(
            "the memfd lacks the {} seal{} ({}), so it could still be {} while it is read",
            and_list(&words),
            if words.len() > 1 { "s" } else { "" },
            flags.join(", "),
            changes(missing)
        )));
    }
    let size = stat.st_size.max(0) as u64;
    if size < len {
        return Err(refuse(format!(
            "the memfd holds {} bytes, less than the {} its offer claims",
            thousands(size),
            thousands(len)
        )));
    }
    // SAFETY: the kernel has just confirmed that this memfd carries
    // F_SEAL_SHRINK, F_SEAL_GROW and F_SEAL_WRITE, and seals can never be
    // removed. They forbid every write (write(2), writable mappings, and none
    // can exist since F_SEAL_WRITE could only be set without one) and every
    // size change, for every process, for the life of the memory. Its size is
    // at least `len`. So the bytes behind this read-only mapping can neither
    // change nor vanish (no SIGBUS) while the `&[u8]` over them lives, and
    // this holds without trusting the producer in any way.
    let map = unsafe { MmapOptions::new().len(len as usize).map(&fd) }
        .context(|| "map the received memfd read-only".into())?;
    Ok(Checked { map, seals })
}

/// One attempt to change a sealed memfd, and what the kernel answered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Attempt {
    /// What was tried: `shrink`, `grow`, `write` or `map-writable`.
    pub what: &'static str,
    /// The call, e.g. `ftruncate(fd, 395777)`.
    pub call: String,
    /// Whether the kernel refused it.
    pub refused: bool,
    /// The error's symbolic name, e.g. `EPERM` (absent if it was allowed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errno: Option<String>,
    /// The kernel's refusal as text, e.g. `Operation not permitted` (absent
    /// if it was allowed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Attempt {
    fn new(what: &'static str, call: String, result: std::result::Result<(), Errno>) -> Attempt {
        let error = result.err();
        Attempt {
            what,
            call,
            refused: error.is_some(),
            errno: error.map(errno_name),
            error: error.map(|e| {
                let text = std::io::Error::from(e).to_string();
                // "Operation not permitted (os error 1)": the number is in `errno`.
                match text.rfind(" (os error ") {
                    Some(at) => text[..at].to_owned(),
                    None => text,
                }
            }),
        }
    }
}

/// Tries to shrink `fd` to half of `len`, to grow it by a page, to write
/// `first_byte` (the byte already at offset 0, so that a write let through
/// would change nothing) with `pwrite`, and to map it writable and shared,
/// and returns what the kernel answered to each. On a memfd carrying
/// [`REQUIRED`] every attempt is refused (`EPERM`).
///
/// If an attempt is allowed (a memfd without the seals), the memory really
/// changes size; a writable mapping, if made, is unmapped at once untouched.
pub fn try_to_change(fd: BorrowedFd<'_>, len: u64, first_byte: u8) -> Vec<Attempt> {
    let size = rustix::fs::fstat(fd).map_or(len, |st| st.st_size.max(0) as u64);
    let shrink = len / 2;
    let grow = size + 4096;
    let map_writable = || -> std::result::Result<(), Errno> {
        // SAFETY: with a null address hint the kernel places a new mapping
        // where nothing is mapped, so no memory of this process changes. A
        // mapping it makes is unmapped below without ever being accessed.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len as usize,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            let raw = std::io::Error::last_os_error().raw_os_error();
            return Err(Errno::from_raw_os_error(raw.unwrap_or(libc::EIO)));
        }
        // SAFETY: `addr` and `len` are the mapping just made above, which no
        // reference points into.
        unsafe { libc::munmap(addr, len as usize) };
        Ok(())
    };
    vec![
        Attempt::new(
            "shrink",
            format!("ftruncate(fd, {shrink})"),
            rustix::fs::ftruncate(fd, shrink),
        ),
        Attempt::new(
            "grow",
            format!("ftruncate(fd, {grow})"),
            rustix::fs::ftruncate(fd, grow),
        ),
        Attempt::new(
            "write",
            "pwrite(fd, 1 byte, offset 0)".into(),
            rustix::io::pwrite(fd, &[first_byte], 0).map(drop),
        ),
        Attempt::new(
            "map-writable",
            format!("mmap({len} bytes, PROT_READ | PROT_WRITE, MAP_SHARED)"),
            map_writable(),
        ),
    ]
}

/// The symbolic name of the errors these calls give, else `errno N`.
fn errno_name(errno: Errno) -> String {
    match errno {
        Errno::PERM => "EPERM".into(),
        Errno::ACCESS => "EACCES".into(),
        Errno::BUSY => "EBUSY".into(),
        Errno::INVAL => "EINVAL".into(),
        Errno::FBIG => "EFBIG".into(),
        other => format!("errno {}", other.raw_os_error()),
    }
}

/// "shrink, grow and write".
fn and_list(words: &[&str]) -> String {
    match words {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// What the missing seals would still allow.
fn changes(missing: SealFlags) -> &'static str {
    if missing.contains(SealFlags::WRITE) {
        "rewritten"
    } else if missing.contains(SealFlags::SHRINK) {
        "truncated"
    } else {
        "resized"
    }
}

fn kind(file_type: FileType) -> &'static str {
    match file_type {
        FileType::Directory => "directory",
        FileType::Fifo => "pipe",
        FileType::CharacterDevice => "character device",
        FileType::BlockDevice => "block device",
        FileType::Symlink => "symbolic link",
        _ => "file of an unknown type",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::os::unix::fs::FileExt;

    #[test]
    fn a_created_memfd_is_sealed_read_only_and_passes_the_check() {
        let name = Name::new("unit-seal").unwrap();
        let fd = create(&name, 10, |mem| {
            mem.copy_from_slice(b"0123456789");
            Ok(())
        })
        .unwrap();
        let seals = rustix::fs::fcntl_get_seals(&fd).unwrap();
        assert_eq!(seals, APPLIED);
        assert_eq!(names(seals), ["seal", "shrink", "grow", "write"]);
        let file = File::from(fd.try_clone().unwrap());
        assert!(
            file.write_at(b"x", 0).is_err(),
            "a sealed memfd took a write"
        );
        assert!(file.set_len(5).is_err(), "a sealed memfd shrank");
        assert!(file.set_len(50).is_err(), "a sealed memfd grew");
        let checked = check(fd, 10).unwrap();
        assert_eq!(&checked.map[..], b"0123456789");
    }

    #[test]
    fn every_change_to_a_sealed_memfd_is_refused_and_an_unsealed_one_takes_them() {
        let name = Name::new("unit-tamper").unwrap();
        let sealed = create(&name, 8192, |mem| {
            mem.fill(7);
            Ok(())
        })
        .unwrap();
        let attempts = try_to_change(sealed.as_fd(), 8192, 7);
        let what: Vec<_> = attempts.iter().map(|a| a.what).collect();
        assert_eq!(what, ["shrink", "grow", "write", "map-writable"]);
        for a in &attempts {
            assert!(a.refused, "{a:?}");
            assert_eq!(a.errno.as_deref(), Some("EPERM"), "{a:?}");
            assert_eq!(a.error.as_deref(), Some("Operation not permitted"), "{a:?}");
        }
        assert_eq!(attempts[0].call, "ftruncate(fd, 4096)");
        assert_eq!(rustix::fs::fstat(&sealed).unwrap().st_size, 8192);

        let open = rustix::fs::memfd_create("p1p2.unit", MemfdFlags::CLOEXEC).unwrap();
        rustix::fs::ftruncate(&open, 8192).unwrap();
        let attempts = try_to_change(open.as_fd(), 8192, 0);
        assert!(attempts.iter().all(|a| !a.refused), "{attempts:?}");
        assert!(attempts
            .iter()
            .all(|a| a.errno.is_none() && a.error.is_none()));
        // Shrunk to 4096, then grown to 8192 + 4096 from the size it had first.
        assert_eq!(rustix::fs::fstat(&open).unwrap().st_size, 8192 + 4096);
    }

    #[test]
    fn missing_seals_are_named_in_one_line() {
        let name = Name::new("unit-unsealed").unwrap();
        let raw = |seals: SealFlags| {
            let fd = rustix::fs::memfd_create(
                "p1p2.unit",
                MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
            )
            .unwrap();
            rustix::fs::ftruncate(&fd, 8).unwrap();
            rustix::fs::fcntl_add_seals(&fd, seals).unwrap();
            fd
        };
        let err = |fd| check(fd, 8).err().unwrap().to_string();
        let none = err(raw(SealFlags::empty()));
        assert!(
            none.contains("lacks the shrink, grow and write seals"),
            "{none}"
        );
        let no_write = err(raw(SealFlags::SHRINK | SealFlags::GROW));
        assert!(
            no_write.contains("lacks the write seal (F_SEAL_WRITE)"),
            "{no_write}"
        );
        let future = err(raw(SealFlags::SHRINK
            | SealFlags::GROW
            | SealFlags::FUTURE_WRITE));
        assert!(future.contains("lacks the write seal"), "{future}");
        let short = create(&name, 4, |m| {
            m.fill(1);
            Ok(())
        })
        .unwrap();
        let e = check(short, 8).err().unwrap().to_string();
        assert!(e.contains("holds 4 bytes, less than the 8"), "{e}");
        for e in [none, no_write, future] {
            assert_eq!(e.lines().count(), 1);
        }
    }
}
