//! Streams of raw frames: a ring of slots in shared memory that many readers attach to and leave at will.
//!
//! The one-image hand-off shows the idea; a stream shows where shared memory
//! wins by the most. The producer publishes a sequence of raw frames (no
//! PNG: pixels) into a ring of `K` slots; readers attach and leave at any
//! time and read each frame in place, without copying it.
//!
//! - [`format`](mod@format): the pixel formats and the frame header, with the checks a
//!   reader makes on it;
//! - [`ring`]: the ring segment, its slots' sequence locks and the reader table;
//! - [`frames`]: the frames the producer makes from one image;
//! - [`socket`]: the same stream over Unix or TCP sockets, one connection (and
//!   one more copy) per reader;
//! - [`run`]: a whole stream as each binary runs it, and the reports;
//! - [`preview`]: the newest frame drawn live in the terminal
//!   (`consumer --stream --preview`).
//!
//! `docs/segment-format.md` gives the ring's byte layout and protocol for
//! readers in other languages, and `docs/streaming.md` the measurements.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

pub mod format;
pub mod frames;
pub mod preview;
pub mod ring;
pub mod run;
pub mod socket;

pub use format::{Frame, FrameHeader, PixelFormat};
pub use ring::{Read, Reader, ReaderStats, Shape, Writer};

/// The most slots a ring has: their control blocks must end before the
/// reader table (`READERS_OFFSET`).
pub const MAX_SLOTS: u32 =
    ((READERS_OFFSET - crate::layout::SLOTS_OFFSET) / crate::layout::SLOT_SIZE) as u32;

/// Offset of the reader table in the header page.
pub const READERS_OFFSET: usize = 2048;

/// Bytes of one reader's entry in the table.
pub const READER_SIZE: usize = 64;

/// How many readers can be attached at once.
pub const MAX_READERS: usize = (crate::layout::HEADER_SIZE - READERS_OFFSET) / READER_SIZE;

/// The slots in a ring unless `--slots` says otherwise.
pub const DEFAULT_SLOTS: u32 = 3;

/// What the producer does about a reader that has not read a frame yet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[repr(u64)]
pub enum Policy {
    /// Never wait: a slow reader skips to the newest frame.
    #[default]
    Latest = 0,
    /// Wait until every attached, live reader has read a frame before its
    /// slot is written again; a reader that makes no progress for
    /// `EVICT_AFTER` is dropped.
    Every = 1,
}

impl Policy {
    /// The policy for a raw code, if known.
    pub fn from_u64(code: u64) -> Option<Policy> {
        match code {
            0 => Some(Policy::Latest),
            1 => Some(Policy::Every),
            _ => None,
        }
    }

    /// `latest` or `every`.
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Latest => "latest",
            Policy::Every => "every",
        }
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Policy {
    type Err = String;

    fn from_str(text: &str) -> Result<Policy, String> {
        match text {
            "latest" => Ok(Policy::Latest),
            "every" => Ok(Policy::Every),
            _ => Err(format!("unknown policy {text:?} (latest or every)")),
        }
    }
}

/// How long a reader may hold up the producer under [`Policy::Every`]
/// before it is dropped.
pub const EVICT_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_fits_its_header_page() {
        assert_eq!(MAX_SLOTS, 15);
        assert_eq!(MAX_READERS, 32);
        assert!(
            crate::layout::SLOTS_OFFSET + MAX_SLOTS as usize * crate::layout::SLOT_SIZE
                <= READERS_OFFSET
        );
    }

    #[test]
    fn policies_parse_and_print() {
        for p in [Policy::Latest, Policy::Every] {
            assert_eq!(p.as_str().parse::<Policy>(), Ok(p));
            assert_eq!(Policy::from_u64(p as u64), Some(p));
        }
        assert!("sometimes".parse::<Policy>().is_err());
        assert_eq!(Policy::from_u64(2), None);
    }
}
