//! The library behind `producer` (P1) and `consumer` (P2): an image handed between processes.
//!
//! The library behind `producer` (P1) and `consumer` (P2): hand an image from
//! one process to another through a shared-memory segment, or through a socket
//! for comparison.
//!
//! One module per concept:
//! - [`name`]: validated names and the paths of segment and socket files;
//! - [`layout`]: the byte layout of a segment and the checks a reader makes;
//! - [`segment`]: a segment's lifecycle, its slot locks, the consumer's claim,
//!   and segment files (stale or alive);
//! - [`wait`]: bounded, signal-aware waiting (futex slices, polling);
//! - [`liveness`]: whether a peer process is still alive;
//! - [`signals`]: SIGINT/SIGTERM turned into errors, so cleanup runs;
//! - [`inventory`]: listing this project's files, and removing the stale ones;
//! - [`shared`]: typed values and arrays in shared memory, with or without a
//!   lock (Python's `multiprocessing.Value` and `Array`);
//! - [`png`]: checking and decoding the image, with limits;
//! - [`copy`]: the payload copy into shared memory (standard or
//!   non-temporal stores, chosen by size);
//! - [`ledger`]: the copies of the payload, counted and witnessed by the kernel;
//! - [`transport`]: the ways a payload travels, behind one interface;
//! - [`transfer`]: one whole transfer as each binary runs it, and its report;
//! - [`stream`]: a ring of raw frames for any number of readers, and the
//!   same stream over sockets;
//! - [`story`], [`progress`], [`cli`]: what the binaries print;
//! - [`error`]: the error type.

#![deny(missing_docs)]

pub mod cli;
pub mod copy;
pub mod error;
pub mod failpoint;
pub mod handoff;
pub mod inventory;
pub mod layout;
pub mod ledger;
pub mod liveness;
pub mod name;
pub mod png;
pub mod progress;
pub mod segment;
pub mod shared;
pub mod signals;
pub mod story;
pub mod stream;
pub mod transfer;
pub mod transport;
pub mod wait;

pub use error::{Error, Result, Role};
pub use name::Name;
