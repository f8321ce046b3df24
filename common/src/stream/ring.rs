//! The ring segment: slots guarded by sequence locks, a reader table, and the two sides that use them.
//!
//! A ring is a segment of kind [`Kind::Stream`] with `K` slots (2 to
//! [`MAX_SLOTS`]). Frame `f` (numbered from 1) goes into slot `f % K`. Each
//! slot's control block holds the frame header, and its `seq` word is a
//! sequence lock: odd while the producer writes the slot, two more once the
//! frame is complete. A reader copies nothing: it checks the header, reads
//! the pixels in place (to verify their CRC-32, and to look at them), then
//! reads `seq` again. The same even value before and after means no write
//! overlapped the read; anything else means the frame was overwritten while
//! it was read, and it is counted as skipped, never delivered.
//!
//! The header page also holds a table of [`MAX_READERS`] readers. A reader
//! takes a free entry (compare-and-swap of its [`Ident`] word) and records
//! there the last frame it finished with. Under [`Policy::Every`] the producer
//! writes frame `f` only once every attached reader has finished frame
//! `f - K`, the slot's previous frame; a dead reader is dropped at the first
//! liveness check (a tenth of a second into the wait), and
//! one that makes no progress for [`EVICT_AFTER`] (stopped, or too slow) is
//! marked evicted and no longer waited for. Under [`Policy::Latest`] the
//! producer never waits.
//!
//! Liveness follows the hand-off's rules: the producer owns the segment and
//! its `flock` (a reader knows it died, however it died), readers are known
//! by pid and start time. Every wait has a deadline.

use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use super::format::{Frame, FrameHeader};
use super::{Policy, EVICT_AFTER, MAX_READERS, MAX_SLOTS, READERS_OFFSET, READER_SIZE};
use crate::error::{Error, Result, Role};
use crate::layout::{Geometry, Kind, Slot};
use crate::liveness::Ident;
use crate::name::Name;
use crate::segment::{Published, Segment};
use crate::wait::{self, Deadline, SLEEPER};

/// `status` while frames may still come.
const RUNNING: u64 = 0;
/// `status` once the producer has published its last frame.
const ENDED: u64 = 1;
/// `status` when the producer stopped on an error before its last frame.
const ABORTED: u64 = 2;

/// Bit of a reader entry's `flags`: the producer stopped waiting for it.
const EVICTED: u64 = 1;

/// Words of one reader entry.
const READER_WORDS: usize = READER_SIZE / 8;

/// The current CLOCK_MONOTONIC time in nanoseconds: the clock of frame timestamps.
pub fn monotonic_ns() -> u64 {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

/// The stream fields of a ring segment, over its header and header page.
struct Ring {
    segment: Segment,
    slots: u32,
    capacity: u64,
}

impl Ring {
    fn new(segment: Segment) -> Ring {
        let geometry = *segment.geometry();
        Ring {
            segment,
            slots: geometry.slot_count,
            capacity: geometry.capacity,
        }
    }

    /// Id of the newest complete frame (0 before the first).
    fn head(&self) -> &AtomicU64 {
        &self.segment.header().reserved[0]
    }

    /// The [`Policy`] code, written before the segment is published.
    fn policy_word(&self) -> &AtomicU64 {
        &self.segment.header().reserved[1]
    }

    /// [`RUNNING`] or [`ENDED`].
    fn status(&self) -> &AtomicU64 {
        &self.segment.header().reserved[2]
    }

    /// Futex word the producer changes at each frame and at the end.
    fn frames_pulse(&self) -> &AtomicU32 {
        &self.segment.header().reserved0
    }

    /// Futex word readers change when they finish a frame, attach or leave.
    fn readers_pulse(&self) -> &AtomicU32 {
        &self.segment.header().reserved1
    }

    fn slot(&self, id: u64) -> &Slot {
        self.segment.slot((id % u64::from(self.slots)) as usize)
    }

    /// Reader entry `i`: ident, cursor, flags, frames read.
    fn reader(&self, i: usize) -> &[AtomicU64] {
        self.segment
            .header_words(READERS_OFFSET + i * READER_SIZE, READER_WORDS)
    }

    fn name(&self) -> &Name {
        self.segment.name()
    }
}

/// Changes a pulse word (a counter in its low 31 bits) and wakes whoever
/// sleeps on it. Several readers may pulse at once: a compare-and-swap loop
/// gives each its own increment, so no waiter that read the old value can
/// miss the change.
fn pulse(word: &AtomicU32) {
    let mut old = word.load(Ordering::Relaxed);
    loop {
        let next = old.wrapping_add(1) & !SLEEPER;
        // Release: what this process wrote before (a cursor, a frame) is
        // visible to a waiter whose Acquire load sees `next`.
        match word.compare_exchange_weak(old, next, Ordering::Release, Ordering::Relaxed) {
            Ok(_) => break,
            Err(now) => old = now,
        }
    }
    if old & SLEEPER != 0 {
        wait::wake_all(word);
    }
}

/// The frame header fields of a slot (in its control block).
fn load_header(slot: &Slot) -> FrameHeader {
    let size = slot.reserved[2].load(Ordering::Relaxed);
    let layout = slot.reserved[3].load(Ordering::Relaxed);
    FrameHeader {
        frame_id: slot.reserved[0].load(Ordering::Relaxed),
        timestamp_ns: slot.reserved[1].load(Ordering::Relaxed),
        width: size as u32,
        height: (size >> 32) as u32,
        stride: layout as u32,
        format: (layout >> 32) as u32,
        len: slot.len.load(Ordering::Relaxed),
        crc32: slot.crc32.load(Ordering::Relaxed),
    }
}

fn store_header(slot: &Slot, h: &FrameHeader) {
    slot.reserved[0].store(h.frame_id, Ordering::Relaxed);
    slot.reserved[1].store(h.timestamp_ns, Ordering::Relaxed);
    slot.reserved[2].store(
        u64::from(h.width) | u64::from(h.height) << 32,
        Ordering::Relaxed,
    );
    slot.reserved[3].store(
        u64::from(h.stride) | u64::from(h.format) << 32,
        Ordering::Relaxed,
    );
    slot.len.store(h.len, Ordering::Relaxed);
    slot.crc32.store(h.crc32, Ordering::Relaxed);
}

/// The shape of the frames a producer publishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    /// Pixels per row.
    pub width: u32,
    /// Rows.
    pub height: u32,
    /// Bytes per row.
    pub stride: u32,
    /// The pixel format.
    pub format: super::PixelFormat,
}

impl Shape {
    /// Bytes of one frame.
    pub fn len(&self) -> u64 {
        u64::from(self.stride) * u64::from(self.height)
    }

    /// The header of frame `id` of this shape, published now: its
    /// timestamp is the present CLOCK_MONOTONIC time.
    pub fn published(&self, id: u64, crc32: u32) -> FrameHeader {
        FrameHeader {
            frame_id: id,
            timestamp_ns: monotonic_ns(),
            width: self.width,
            height: self.height,
            stride: self.stride,
            format: self.format as u32,
            len: self.len(),
            crc32,
        }
    }

    /// Whether a frame of this shape has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The producer's side of a ring.
pub struct Writer {
    ring: Ring,
    policy: Policy,
    next: u64,
    me: u64,
    /// Readers dropped because they held the stream up.
    evicted: u64,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("name", self.ring.name())
            .field("policy", &self.policy)
            .field("next", &self.next)
            .finish()
    }
}

impl Writer {
    /// Creates and publishes a ring of `slots` slots of `capacity` bytes
    /// under `name`.
    ///
    /// # Errors
    /// [`Error::Usage`] for a slot count outside 2..=[`MAX_SLOTS`]; as
    /// [`Segment::create`] and [`Segment::publish`] otherwise.
    pub fn create(
        name: &Name,
        capacity: u64,
        slots: u32,
        policy: Policy,
    ) -> Result<(Writer, Published)> {
        if !(2..=MAX_SLOTS).contains(&slots) {
            return Err(Error::Usage(format!(
                "--slots {slots}: a ring has 2 to {MAX_SLOTS} slots"
            )));
        }
        let segment = Segment::create(name, Geometry::new(Kind::Stream, capacity, slots))?;
        let ring = Ring::new(segment);
        ring.policy_word().store(policy as u64, Ordering::Relaxed);
        let published = ring.segment.publish()?;
        let me = Ident::me().to_word();
        Ok((
            Writer {
                ring,
                policy,
                next: 1,
                me,
                evicted: 0,
            },
            published,
        ))
    }

    /// The stream's policy.
    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// Frames published so far.
    pub fn published(&self) -> u64 {
        self.next - 1
    }

    /// Readers dropped so far because they held the stream up.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Attached readers that are alive and not evicted. A dead reader's
    /// entry is freed on the way.
    pub fn readers(&self) -> usize {
        self.reap_dead();
        (0..MAX_READERS)
            .filter(|&i| self.cursor_of(i).is_some())
            .count()
    }

    /// Reader `i`'s cursor, if the entry is taken and not evicted (alive or
    /// not: asking `/proc` costs microseconds, so liveness is checked only
    /// by [`Writer::reap_dead`], while waiting).
    fn cursor_of(&self, i: usize) -> Option<u64> {
        let entry = self.ring.reader(i);
        if entry[0].load(Ordering::Acquire) == 0 || entry[2].load(Ordering::Acquire) & EVICTED != 0
        {
            return None;
        }
        Some(entry[1].load(Ordering::Acquire))
    }

    /// Frees the entries of readers that died (killed, say) without leaving.
    fn reap_dead(&self) {
        for i in 0..MAX_READERS {
            let word = &self.ring.reader(i)[0];
            let ident = word.load(Ordering::Acquire);
            if ident != 0 && !Ident::from_word(ident).is_some_and(Ident::is_alive) {
                // Only if it is still that dead reader's entry.
                let _ = word.compare_exchange(ident, 0, Ordering::AcqRel, Ordering::Relaxed);
            }
        }
    }

    /// Waits until `count` live readers are attached.
    ///
    /// # Errors
    /// [`Error::Timeout`] at the deadline, [`Error::Interrupted`] on a signal.
    pub fn await_readers(&self, count: usize, deadline: &Deadline) -> Result<()> {
        let word = self.ring.readers_pulse();
        loop {
            // The word first, then the count: a reader that attaches after
            // the count changes the word, and the wait below sees it.
            let seen = word.load(Ordering::Acquire) & !SLEEPER;
            if self.readers() >= count {
                return Ok(());
            }
            let got = wait::spin_until(word, deadline, Duration::ZERO, |v| v != seen, || Ok(()))?;
            if got.is_none() {
                return Err(deadline.timeout(format!(
                    "{count} consumer(s) attached to stream {}, {} did",
                    self.ring.name(),
                    self.readers()
                )));
            }
        }
    }

    /// Under [`Policy::Every`], waits until every live reader has finished
    /// frame `id - K`; readers that hold it up for [`EVICT_AFTER`] are
    /// evicted.
    fn await_slot(&mut self, id: u64) -> Result<()> {
        let Some(needed) = id.checked_sub(u64::from(self.ring.slots)) else {
            return Ok(());
        };
        if self.policy != Policy::Every || needed == 0 {
            return Ok(());
        }
        let behind = |w: &Writer| {
            (0..MAX_READERS).any(|i| w.cursor_of(i).is_some_and(|cursor| cursor < needed))
        };
        let deadline = Deadline::after(EVICT_AFTER);
        let word = self.ring.readers_pulse();
        loop {
            // Acquire (in spin_until) pairs with the readers' Release pulse:
            // their cursors are read after it.
            let seen = word.load(Ordering::Acquire) & !SLEEPER;
            if !behind(self) {
                return Ok(());
            }
            // A reader that died is dropped at the first liveness check, a
            // whole slice into the wait.
            let woke = wait::spin_until(
                word,
                &deadline,
                Duration::from_micros(20),
                |v| v != seen || !behind(self),
                || {
                    self.reap_dead();
                    Ok(())
                },
            )?;
            if woke.is_none() {
                break;
            }
        }
        self.reap_dead();
        for i in 0..MAX_READERS {
            if self.cursor_of(i).is_some_and(|cursor| cursor < needed) {
                self.ring.reader(i)[2].fetch_or(EVICTED, Ordering::AcqRel);
                self.evicted += 1;
            }
        }
        Ok(())
    }

    /// Writes the next frame: `fill` gets the slot's bytes (exactly
    /// `shape.len()` of them), writes the pixels and returns their CRC-32.
    /// Returns the frame's id once it is published.
    ///
    /// # Errors
    /// [`Error::Usage`] if the shape does not fit a slot; a truncated
    /// segment; [`Error::Interrupted`] on a signal while waiting for readers.
    pub fn publish(&mut self, shape: Shape, fill: impl FnOnce(&mut [u8]) -> u32) -> Result<u64> {
        let len = shape.len();
        if len > self.ring.capacity || len == 0 {
            return Err(Error::Usage(format!(
                "a frame of {len} bytes does not fit a slot of {}",
                self.ring.capacity
            )));
        }
        let id = self.next;
        self.await_slot(id)?;
        let slot = self.ring.slot(id);
        let index = (id % u64::from(self.ring.slots)) as usize;
        let seq = slot.seq.load(Ordering::Relaxed);
        // The slot's sequence lock: odd from here until the frame is whole.
        slot.seq.store(seq | 1, Ordering::Relaxed);
        slot.holder.store(self.me, Ordering::Relaxed);
        // Release fence: a reader that sees any of the writes below also
        // sees the odd sequence number (its Acquire fence before re-reading
        // `seq` pairs with this one).
        fence(Ordering::Release);
        // SAFETY: the slot's payload is `capacity` bytes inside the mapping,
        // which lives as long as `self`; `len <= capacity` (checked above).
        // Only this process writes the slot (it owns the ring: one producer
        // per name, enforced by the name's flock). Readers may read these
        // bytes while they are written: that is the sequence lock's case,
        // and a reader discards whatever it read once it sees `seq` changed.
        let pixels = unsafe {
            std::slice::from_raw_parts_mut(self.ring.segment.payload_ptr(index), len as usize)
        };
        let crc32 = fill(pixels);
        crate::failpoint::hit("producer:mid-frame");
        self.ring.segment.check_intact()?;
        store_header(slot, &shape.published(id, crc32));
        slot.holder.store(0, Ordering::Relaxed);
        // Release: everything above (pixels and header) is visible to a
        // reader whose Acquire load sees the new, even sequence number, or
        // the new head.
        slot.seq.store((seq | 1) + 1, Ordering::Release);
        self.ring.head().store(id, Ordering::Release);
        pulse(self.ring.frames_pulse());
        self.next += 1;
        Ok(id)
    }

    /// Marks the stream ended, so readers finish what is left and stop.
    pub fn end(&self) {
        self.ring.status().store(ENDED, Ordering::Release);
        pulse(self.ring.frames_pulse());
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // A producer that stops on an error (or a signal) says so, so its
        // readers do not mistake it for a death.
        if self.ring.status().load(Ordering::Relaxed) == RUNNING {
            self.ring.status().store(ABORTED, Ordering::Release);
            pulse(self.ring.frames_pulse());
        }
    }
}

/// What a reader did with one frame.
#[derive(Debug)]
pub enum Read<T> {
    /// A whole frame, verified: its header, and what the caller made of its pixels.
    Frame(Frame, T),
    /// The stream has ended and every frame this reader can still get was read.
    Ended,
}

/// One attempt at reading a frame.
enum Attempt<T> {
    /// The frame, whole and verified.
    Got(Frame, T),
    /// Its slot is being written: the frame is being replaced.
    Busy,
    /// Its slot already holds a newer frame.
    Gone,
}

/// Counts a reader keeps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReaderStats {
    /// Frames read and verified.
    pub frames: u64,
    /// Frames published while attached that this reader did not get
    /// (overwritten before it read them, or while it was evicted).
    pub skipped: u64,
    /// Times the producer dropped this reader for holding the stream up.
    pub evicted: u64,
}

/// A reader's side of a ring: attached to one entry of the reader table
/// for as long as it lives.
pub struct Reader {
    ring: Ring,
    policy: Policy,
    entry: usize,
    /// The last frame this reader finished with.
    cursor: u64,
    stats: ReaderStats,
    spin: Duration,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("name", self.ring.name())
            .field("entry", &self.entry)
            .field("cursor", &self.cursor)
            .finish()
    }
}

impl Reader {
    /// Attaches to the ring in `segment` (opened by name): takes a free
    /// entry in the reader table.
    ///
    /// # Errors
    /// [`Error::WrongKind`] if the segment is not a stream;
    /// [`Error::BadSegment`] for an unknown policy; [`Error::InUse`] if
    /// [`MAX_READERS`] live readers are attached.
    pub fn attach(segment: Segment, spin: Duration) -> Result<Reader> {
        let kind = segment.geometry().kind;
        if kind != Kind::Stream {
            return Err(Error::WrongKind {
                name: segment.name().to_string(),
                found: kind.with_article(),
                expected: Kind::Stream.with_article(),
            });
        }
        let ring = Ring::new(segment);
        let code = ring.policy_word().load(Ordering::Relaxed);
        let policy = Policy::from_u64(code).ok_or_else(|| Error::BadSegment {
            name: ring.name().to_string(),
            reason: format!("unknown stream policy {code}"),
        })?;
        let me = Ident::me().to_word();
        let entry = (0..MAX_READERS)
            .find(|&i| {
                let word = &ring.reader(i)[0];
                let old = word.load(Ordering::Acquire);
                !Ident::from_word(old).is_some_and(Ident::is_alive)
                    && word
                        .compare_exchange(old, me, Ordering::AcqRel, Ordering::Relaxed)
                        .is_ok()
            })
            .ok_or_else(|| Error::InUse {
                what: "the reader table (32 entries, all taken) of stream",
                name: ring.name().to_string(),
                pid: None,
            })?;
        let mut reader = Reader {
            ring,
            policy,
            entry,
            cursor: 0,
            stats: ReaderStats::default(),
            spin,
        };
        reader.join();
        pulse(reader.ring.readers_pulse());
        Ok(reader)
    }

    /// Starts (or restarts, after an eviction) from the stream's present:
    /// the newest frame under [`Policy::Latest`], the next one under
    /// [`Policy::Every`].
    fn join(&mut self) {
        let head = self.ring.head().load(Ordering::Acquire);
        self.cursor = match self.policy {
            Policy::Latest => head.saturating_sub(1),
            Policy::Every => head,
        };
        let entry = self.ring.reader(self.entry);
        entry[1].store(self.cursor, Ordering::Release);
        entry[2].store(0, Ordering::Release);
    }

    /// The stream's policy, as its producer set it.
    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// The counts so far.
    pub fn stats(&self) -> ReaderStats {
        self.stats
    }

    /// The producer's pid.
    pub fn producer_pid(&self) -> u32 {
        self.ring.segment.producer_pid()
    }

    /// Waits for the next frame this reader should read (the next one under
    /// [`Policy::Every`], the newest under [`Policy::Latest`]), verifies it
    /// in place and hands its pixels to `look`, whose result is kept only if
    /// no write overlapped the read. `look` must not keep the pixels: they
    /// may be overwritten as soon as it returns.
    ///
    /// # Errors
    /// [`Error::PeerDied`] if the producer dies (also mid-frame);
    /// [`Error::BadSegment`] for a header that lies, or a frame whose CRC-32
    /// differs although nothing overwrote it; [`Error::Timeout`] when no
    /// frame comes before the deadline; [`Error::Interrupted`] on a signal.
    pub fn next<T>(
        &mut self,
        deadline: &Deadline,
        mut look: impl FnMut(&Frame, &[u8]) -> T,
    ) -> Result<Read<T>> {
        loop {
            self.check_evicted();
            let head = self.ring.head().load(Ordering::Acquire);
            if head <= self.cursor {
                match self.ring.status().load(Ordering::Acquire) {
                    RUNNING => self.await_frame(deadline)?,
                    // Re-read the head: the end is stored after the last frame.
                    ENDED if self.ring.head().load(Ordering::Acquire) <= self.cursor => {
                        return Ok(Read::Ended)
                    }
                    ENDED => {}
                    _ => return Err(self.aborted()),
                }
                continue;
            }
            let target = match self.policy {
                Policy::Latest => head,
                Policy::Every => self.cursor + 1,
            };
            match self.try_read(target, &mut look)? {
                Attempt::Got(frame, seen) => {
                    self.stats.skipped += target - self.cursor - 1;
                    self.stats.frames += 1;
                    self.finish(target);
                    return Ok(Read::Frame(frame, seen));
                }
                // Under Latest a newer frame is there (the head moves
                // before a slot is rewritten): the loop takes it. If the head
                // has not moved, the header lies or the producer is stuck:
                // wait, with the deadline and the liveness checks.
                Attempt::Gone | Attempt::Busy if self.policy == Policy::Latest => {
                    if self.ring.head().load(Ordering::Acquire) == head {
                        self.await_short(deadline)?;
                    }
                }
                // Under Every, frame `target` was overwritten before this
                // reader got to it (it attached while the producer was
                // already past its check): count it and move on.
                Attempt::Gone => {
                    self.stats.skipped += 1;
                    self.finish_skipped(target);
                }
                Attempt::Busy => self.await_short(deadline)?,
            }
        }
    }

    /// One attempt at frame `target`.
    fn try_read<T>(
        &self,
        target: u64,
        look: &mut impl FnMut(&Frame, &[u8]) -> T,
    ) -> Result<Attempt<T>> {
        let slot = self.ring.slot(target);
        // Acquire: pairs with the producer's Release store of the even
        // sequence number; the header and pixels written before it are visible.
        let before = slot.seq.load(Ordering::Acquire);
        if before & 1 == 1 {
            return Ok(Attempt::Busy);
        }
        let changed = || {
            // Acquire fence: the reads before it happen before the re-read.
            fence(Ordering::Acquire);
            slot.seq.load(Ordering::Relaxed) != before
        };
        let header = load_header(slot);
        if header.frame_id != target {
            if changed() {
                return Ok(Attempt::Busy);
            }
            if header.frame_id > target {
                return Ok(Attempt::Gone);
            }
            return Err(self.bad(format!(
                "the head says frame {target} is published, but its slot holds frame {}",
                header.frame_id
            )));
        }
        let frame = match header.check(self.ring.capacity) {
            Ok(frame) => frame,
            Err(_) if changed() => return Ok(Attempt::Busy),
            Err(reason) => return Err(self.bad(format!("frame {target}'s header lies: {reason}"))),
        };
        let index = (target % u64::from(self.ring.slots)) as usize;
        // SAFETY: `frame.len <= capacity` (checked by `FrameHeader::check`),
        // so the bytes lie inside the slot, inside the mapping that lives as
        // long as `self`. They are plain bytes: any value is valid. The
        // producer may write them while they are read (a reader that fell
        // behind under Latest): that is the sequence lock's case. Whatever
        // was read is then thrown away, because `seq` is read again below
        // before anything computed from the bytes is used; like every
        // sequence lock over plain data (crossbeam's `AtomicCell` is one),
        // this relies on the bytes read in that case being discarded. A
        // truncated file reads as zero pages (the SIGBUS guard), reported by
        // `check_intact`.
        let pixels =
            unsafe { std::slice::from_raw_parts(self.ring.segment.payload_ptr(index), frame.len) };
        let crc = crc32fast::hash(pixels);
        let seen = look(&frame, pixels);
        if changed() {
            return Ok(Attempt::Busy);
        }
        self.ring.segment.check_intact()?;
        if crc != frame.crc32 {
            return Err(self.bad(format!(
                "frame {target} fails its CRC-32 (recorded {:08x}, pixels have {crc:08x}) \
                 although no write overlapped the read",
                frame.crc32
            )));
        }
        Ok(Attempt::Got(frame, seen))
    }

    /// Records that frame `id` is done, and tells a producer that waits for it.
    fn finish(&mut self, id: u64) {
        self.ring.reader(self.entry)[3].store(self.stats.frames, Ordering::Relaxed);
        self.finish_skipped(id);
    }

    /// Moves the cursor to frame `id`, read or not.
    fn finish_skipped(&mut self, id: u64) {
        self.cursor = id;
        self.ring.reader(self.entry)[1].store(id, Ordering::Release);
        if self.policy == Policy::Every {
            pulse(self.ring.readers_pulse());
        }
    }

    /// If the producer evicted this reader, counts it and rejoins: the
    /// frames published meanwhile count as skipped.
    fn check_evicted(&mut self) {
        if self.ring.reader(self.entry)[2].load(Ordering::Acquire) & EVICTED == 0 {
            return;
        }
        let before = self.cursor;
        self.join();
        self.stats.evicted += 1;
        self.stats.skipped += self.cursor.saturating_sub(before);
        pulse(self.ring.readers_pulse());
    }

    /// Sleeps until the producer publishes a frame or ends the stream.
    fn await_frame(&self, deadline: &Deadline) -> Result<()> {
        let word = self.ring.frames_pulse();
        let seen = word.load(Ordering::Acquire) & !SLEEPER;
        let cursor = self.cursor;
        let got = wait::spin_until(
            word,
            deadline,
            self.spin,
            |v| {
                v != seen
                    || self.ring.head().load(Ordering::Acquire) > cursor
                    || self.ring.status().load(Ordering::Acquire) == ENDED
            },
            || self.producer_alive(),
        )?;
        match got {
            Some(_) => Ok(()),
            None => Err(deadline.timeout(format!(
                "no frame from the producer of stream {}",
                self.ring.name()
            ))),
        }
    }

    /// A short pause while a slot is being rewritten, still checking the
    /// producer's liveness and the deadline.
    fn await_short(&self, deadline: &Deadline) -> Result<()> {
        if deadline.remaining().is_none() {
            return Err(deadline.timeout(format!("a whole frame of stream {}", self.ring.name())));
        }
        self.producer_alive()?;
        std::thread::sleep(Duration::from_micros(50));
        Ok(())
    }

    /// The error for a stream its producer stopped on an error.
    fn aborted(&self) -> Error {
        Error::PeerGone(format!(
            "the producer (pid {}) stopped stream {} after frame {} without ending it (see its error)",
            self.producer_pid(),
            self.ring.name(),
            self.ring.head().load(Ordering::Acquire)
        ))
    }

    /// Fails if the producer died, or stopped the stream on an error.
    fn producer_alive(&self) -> Result<()> {
        match self.ring.status().load(Ordering::Acquire) {
            RUNNING => {}
            ENDED => return Ok(()),
            _ => return Err(self.aborted()),
        }
        if self.ring.segment.owner_alive() {
            return Ok(());
        }
        let head = self.ring.head().load(Ordering::Acquire);
        let writing = (0..self.ring.slots)
            .map(|i| self.ring.segment.slot(i as usize))
            .any(|slot| slot.seq.load(Ordering::Acquire) & 1 == 1);
        Err(Error::PeerDied {
            role: Role::Producer,
            pid: Some(self.producer_pid()),
            when: if writing {
                format!(
                    "in the middle of writing frame {} (stream {})",
                    head + 1,
                    self.ring.name()
                )
            } else {
                format!(
                    "after frame {head}, without ending stream {}",
                    self.ring.name()
                )
            },
        })
    }

    fn bad(&self, reason: String) -> Error {
        Error::BadSegment {
            name: self.ring.name().to_string(),
            reason,
        }
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        let me = Ident::me().to_word();
        let entry = self.ring.reader(self.entry);
        if entry[0]
            .compare_exchange(me, 0, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            pulse(self.ring.readers_pulse());
        }
    }
}

/// How long a reader spins before it sleeps: 50 ms with `spin`, else none.
/// Spin only when the producer runs on another CPU.
pub fn spin_for(spin: bool) -> Duration {
    if spin {
        Duration::from_millis(50)
    } else {
        Duration::ZERO
    }
}
