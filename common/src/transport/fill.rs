//! The producer's one write of the payload into shared memory, for shm and memfd alike.

use std::os::unix::fs::FileExt;

use crate::copy::{self, Copied};
use crate::error::{Error, Result};
use crate::ledger::{Copier, Ledger};
use crate::transport::{Outgoing, Payload};

/// Where the producer writes the payload; names it in the ledger and the story.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Destination {
    /// The named shared-memory segment.
    Segment,
    /// The sealed memfd.
    Memfd,
}

impl Destination {
    /// The ledger's name for it.
    fn label(self) -> &'static str {
        match self {
            Destination::Segment => "segment",
            Destination::Memfd => "memfd",
        }
    }

    /// The story's words for how the payload got there: `None` for the
    /// kernel's read of the file, otherwise the copy that was made.
    fn how(self, copied: Option<Copied>) -> &'static str {
        match (self, copied) {
            (Destination::Segment, None) => {
                "from the file straight into shared memory (the kernel's copy)"
            }
            (Destination::Segment, Some(Copied::Standard)) => {
                "from the heap into shared memory (memcpy)"
            }
            (Destination::Segment, Some(Copied::NonTemporal)) => {
                "from the heap into shared memory (memcpy, non-temporal stores)"
            }
            (Destination::Memfd, None) => {
                "from the file straight into the memfd (the kernel's copy)"
            }
            (Destination::Memfd, Some(Copied::Standard)) => "from the heap into the memfd (memcpy)",
            (Destination::Memfd, Some(Copied::NonTemporal)) => {
                "from the heap into the memfd (memcpy with non-temporal stores)"
            }
        }
    }
}

/// Writes `out`'s `len`-byte payload into `memory` and records the copy in
/// `ledger`; returns the story's words for how it got there.
///
/// A file is read straight into `memory`: the kernel copies its page-cache
/// pages, one copy and no heap buffer in between. A heap buffer is copied
/// with the project's one payload copy (standard or non-temporal, as
/// `--copy` says); a non-temporal copy ends with a store fence, so the
/// caller's later Release stores (or unmapping) order every byte before them.
///
/// # Errors
/// The file could not be read in full (it changed meanwhile, or a read error).
pub(crate) fn fill(
    memory: &mut [u8],
    out: &Outgoing<'_>,
    len: u64,
    ledger: &mut Ledger,
    to: Destination,
) -> Result<&'static str> {
    let label = to.label();
    match &out.payload {
        Payload::File(image) => {
            image
                .file
                .read_exact_at(memory, 0)
                .map_err(|e| Error::BadImage {
                    path: image.path.clone(),
                    reason: format!("reading it failed ({e}); did it change meanwhile?"),
                })?;
            ledger.record(format!("file -> {label} (pread)"), len, Copier::Kernel);
            Ok(to.how(None))
        }
        Payload::Heap(bytes) => {
            let copied = copy::copy_payload(memory, bytes, out.copy);
            let how = copied.label();
            ledger.record(format!("heap -> {label} ({how})"), len, Copier::User);
            Ok(to.how(Some(copied)))
        }
    }
}
