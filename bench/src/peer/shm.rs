//! The shared-memory peers, on the product's own segments, locks and waits.
//!
//! The shared-memory peers (shm, shm cold, shm-pipelined, and the shm round
//! trip), on the product's segments: `common`'s segment, slot lock, state
//! word and futex waits, the same code a transfer uses. Their segments are
//! transfer segments (kind 1), with one slot, or several for the pipelined
//! mode and the round trip.

use std::sync::atomic::Ordering;
use std::time::Instant;

use super::report::PeerReport;
use super::sample::{Measure, Tally};
use super::spec::Spec;
use crate::case::Channel;
use crate::checksum::{read_stamp, stamp, Expected, PageBuf, STOP};
use common::copy::{copy_payload, Copied, CopyMode};
use common::error::{Error, Result, Role};
use common::layout::{state, Geometry, Kind};
use common::name::Name;
use common::segment::{Segment, SlotGuard};
use common::wait::{self, Deadline};

fn create_segment(name: &Name, bytes: u64, slots: u32) -> Result<Segment> {
    let segment = Segment::create(name, Geometry::new(Kind::Transfer, bytes, slots))?;
    segment.publish()?;
    let file_len = segment.geometry().file_len().unwrap_or(u64::MAX);
    segment.check_size(file_len)?;
    Ok(segment)
}

fn open_segment(spec: &Spec, name: &Name, slots: u32, min_capacity: u64) -> Result<Segment> {
    let deadline = Deadline::after(spec.timeout());
    let segment = Segment::wait_open(name, &deadline, |_| {})?
        .ok_or_else(|| deadline.timeout(format!("no sender published segment {name}")))?;
    let g = *segment.geometry();
    if g.kind != Kind::Transfer || g.slot_count != slots || g.capacity < min_capacity {
        return Err(Error::BadSegment {
            name: name.to_string(),
            reason: format!(
                "a {} segment with {} slot(s) of {} bytes, expected a transfer segment with \
                 {slots} slot(s) of at least {min_capacity}",
                g.kind.as_str(),
                g.slot_count,
                g.capacity
            ),
        });
    }
    segment.check_size(g.file_len().unwrap_or(u64::MAX))?;
    Ok(segment)
}

/// Takes a slot's lock: at once when it is free (always, in this protocol,
/// since each side releases before it announces), else waiting.
fn lock<'s>(segment: &'s Segment, slot: usize, spec: &Spec) -> Result<SlotGuard<'s>> {
    if let Some(guard) = segment.try_lock(slot)? {
        return Ok(guard);
    }
    let deadline = Deadline::after(spec.timeout());
    segment.lock(slot, &deadline, |_| {})?.ok_or_else(|| {
        deadline.timeout(format!(
            "the lock on slot {slot} of segment {} stayed held",
            segment.name()
        ))
    })
}

/// Waits until slot `slot`'s state satisfies `done`, spinning first when
/// the spec says so; a dead peer ends the wait.
fn wait_state(
    segment: &Segment,
    slot: usize,
    spec: &Spec,
    role: Role,
    what: &str,
    done: impl FnMut(u32) -> bool,
) -> Result<u32> {
    let deadline = Deadline::after(spec.timeout());
    let got = wait::spin_until(
        &segment.slot(slot).state,
        &deadline,
        spec.spin(),
        done,
        || peer_alive(segment, role),
    )?;
    got.ok_or_else(|| deadline.timeout(format!("{what} (segment {})", segment.name())))
}

/// Fails if the other side of the segment has died.
fn peer_alive(segment: &Segment, role: Role) -> Result<()> {
    match role {
        Role::Producer => match segment.dead_consumer() {
            Some(pid) => Err(Error::PeerDied {
                role: Role::Consumer,
                pid: Some(pid),
                when: format!("during the benchmark on segment {}", segment.name()),
            }),
            None => Ok(()),
        },
        Role::Consumer if !segment.owner_alive() => Err(Error::PeerDied {
            role: Role::Producer,
            pid: Some(segment.producer_pid()),
            when: format!("during the benchmark on segment {}", segment.name()),
        }),
        Role::Consumer => Ok(()),
    }
}

/// Sender: copies `src` (already stamped with `seq`) into the slot under
/// its lock, records length and sequence, releases, and announces READY.
fn write_slot(segment: &Segment, slot: usize, src: &[u8], seq: u64, spec: &Spec) -> Result<()> {
    let mut guard = lock(segment, slot, spec)?;
    copy_payload(
        &mut guard.payload_mut_prechecked()[..src.len()],
        src,
        spec.copy_mode(),
    );
    let control = guard.slot();
    control.len.store(src.len() as u64, Ordering::Relaxed);
    control.seq.store(seq, Ordering::Relaxed);
    // Release the lock before announcing, so the receiver never has to wait
    // for it; the Release store in `post` publishes the payload (a
    // non-temporal copy has ended with a store fence, so its weakly ordered
    // stores come before that store too).
    drop(guard);
    // A truncation during the copy sent part of it to private zero pages.
    segment.check_intact()?;
    wait::post(&segment.slot(slot).state, state::READY);
    Ok(())
}

/// Sender: waits until the receiver acknowledged the payload in `slot`.
fn wait_ack(segment: &Segment, slot: usize, seq: u64, spec: &Spec) -> Result<()> {
    let got = wait_state(
        segment,
        slot,
        spec,
        Role::Producer,
        "the receiver did not acknowledge",
        |s| s == state::ACKED || s == state::REJECTED,
    )?;
    if got == state::REJECTED {
        return Err(Error::Rejected(format!(
            "the receiver found payload {seq} wrong; see its message"
        )));
    }
    Ok(())
}

/// Receiver: what was in a slot.
enum Got {
    Payload,
    Stop,
}

/// Receiver: waits for READY in `slot`, then under its lock reads every
/// byte in place and checks the stamp and the checksum; acknowledges (or
/// rejects) after releasing the lock.
fn read_slot(
    segment: &Segment,
    slot: usize,
    expected: &Expected,
    seq: u64,
    spec: &Spec,
) -> Result<Got> {
    wait_state(
        segment,
        slot,
        spec,
        Role::Consumer,
        "no payload arrived",
        |s| s == state::READY,
    )?;
    let guard = lock(segment, slot, spec)?;
    let len = guard.slot().len.load(Ordering::Relaxed);
    let verdict = guard.payload_prechecked(len).map(|bytes| {
        if read_stamp(bytes) == Some(STOP) {
            Ok(Got::Stop)
        } else {
            expected.verify(bytes, seq).map(|()| Got::Payload)
        }
    })?;
    drop(guard);
    let word = &segment.slot(slot).state;
    // One atomic load: a truncation during the read (caught by the
    // segment's SIGBUS guard) makes the verdict meaningless.
    if let Err(e) = segment.check_intact() {
        wait::post(word, state::REJECTED);
        return Err(e);
    }
    match verdict {
        Ok(got) => {
            wait::post(word, state::ACKED);
            Ok(got)
        }
        Err(reason) => {
            wait::post(word, state::REJECTED);
            Err(Error::BadSegment {
                name: segment.name().to_string(),
                reason,
            })
        }
    }
}

/// The copy the sender makes for `spec`'s payload, for its report.
fn copy_made(spec: &Spec) -> Option<String> {
    let made = match spec.copy_mode().choose(spec.payload_len()) {
        Copied::Standard => CopyMode::Std,
        Copied::NonTemporal => CopyMode::Nt,
    };
    Some(made.as_str().to_owned())
}

/// shm and shm-pipelined, sender. With one slot, a sample is one whole
/// hand-off; with more, the interval between acknowledgements.
pub(super) fn sender(spec: &Spec, pipelined: bool) -> Result<PeerReport> {
    let slots = if pipelined { spec.slots.max(2) } else { 1 };
    let segment = create_segment(&spec.segment_name()?, spec.bytes, slots)?;
    let mut src = PageBuf::pattern(spec.payload_len());
    let seq;
    let report = if pipelined {
        let depth = u64::from(slots);
        let mut m = Measure::new(spec, slots as usize);
        let segment = &segment;
        seq = m.pipelined(
            depth,
            |seq| {
                stamp(src.as_mut_slice(), seq);
                let slot = ((seq - 1) % depth) as usize;
                write_slot(segment, slot, src.as_slice(), seq, spec)
            },
            |seq| wait_ack(segment, ((seq - 1) % depth) as usize, seq, spec),
        )?;
        m.finish(1.0)
    } else {
        let mut m = Measure::new(spec, 0);
        seq = m.stamped(&mut src, |payload, seq, _| {
            write_slot(&segment, 0, payload, seq, spec)?;
            wait_ack(&segment, 0, seq, spec)
        })?;
        m.finish(1.0)
    };
    // The stop: a stamp alone, in the next slot (free: every payload was
    // acknowledged).
    let slot = (seq % u64::from(segment.geometry().slot_count)) as usize;
    write_slot(&segment, slot, &STOP.to_le_bytes(), STOP, spec)?;
    wait_ack(&segment, slot, STOP, spec)?;
    Ok(PeerReport {
        copy: copy_made(spec),
        ..report
    })
}

/// shm and shm-pipelined, receiver: reads the slots in turn, in place.
pub(super) fn receiver(spec: &Spec) -> Result<PeerReport> {
    let slots = match spec.transport.base() {
        Channel::ShmPipelined => spec.slots.max(2),
        _ => 1,
    };
    let segment = open_segment(spec, &spec.segment_name()?, slots, spec.bytes)?;
    let _claim = segment.claim()?;
    let expected = Expected::for_size(spec.payload_len());
    let mut tally = Tally::new(spec);
    loop {
        let seq = tally.next_seq();
        let slot = ((seq - 1) % u64::from(slots)) as usize;
        if let Got::Stop = read_slot(&segment, slot, &expected, seq, spec)? {
            break;
        }
    }
    // Read in place: no copy of the payload.
    Ok(tally.finish(0.0, 0))
}

/// The name of the fresh segment for transfer `seq` in cold mode.
fn cold_name(spec: &Spec, seq: u64) -> Result<Name> {
    Name::new(&format!("{}.{seq}", spec.name))
}

/// shm cold, sender: a fresh segment for every transfer.
pub(super) fn cold_sender(spec: &Spec) -> Result<PeerReport> {
    let mut src = PageBuf::pattern(spec.payload_len());
    let mut m = Measure::new(spec, 0);
    let mut seq = 0u64;
    while m.more() {
        seq += 1;
        stamp(src.as_mut_slice(), seq);
        let name = cold_name(spec, seq)?;
        let t0 = Instant::now();
        {
            let segment = create_segment(&name, spec.bytes, 1)?;
            write_slot(&segment, 0, src.as_slice(), seq, spec)?;
            wait_ack(&segment, 0, seq, spec)?;
            // Dropping the segment unmaps and removes it: part of the sample.
        }
        m.record(t0, Instant::now());
    }
    let report = m.finish(1.0);
    let segment = create_segment(&cold_name(spec, seq + 1)?, 8, 1)?;
    write_slot(&segment, 0, &STOP.to_le_bytes(), STOP, spec)?;
    wait_ack(&segment, 0, STOP, spec)?;
    Ok(PeerReport {
        copy: copy_made(spec),
        ..report
    })
}

/// shm cold, receiver: opens, maps, reads and unmaps every fresh segment.
pub(super) fn cold_receiver(spec: &Spec) -> Result<PeerReport> {
    let expected = Expected::for_size(spec.payload_len());
    let mut tally = Tally::new(spec);
    loop {
        let seq = tally.next_seq();
        let segment = open_segment(spec, &cold_name(spec, seq)?, 1, 8)?;
        let _claim = segment.claim()?;
        if let Got::Stop = read_slot(&segment, 0, &expected, seq, spec)? {
            break;
        }
    }
    Ok(tally.finish(0.0, 0))
}

/// shm latency, sender: a message into slot 0, the reply from slot 1.
pub(super) fn ping(spec: &Spec) -> Result<PeerReport> {
    let segment = create_segment(&spec.segment_name()?, spec.bytes, 2)?;
    let mut src = PageBuf::pattern(spec.payload_len());
    let expected = Expected::of_pattern(&mut src.as_slice().to_vec());
    let mut m = Measure::new(spec, 0);
    m.stamped(&mut src, |payload, seq, lap| {
        write_slot(&segment, 0, payload, seq, spec)?;
        let got = wait_state(&segment, 1, spec, Role::Producer, "no reply arrived", |s| {
            s == state::READY || s == state::REJECTED
        })?;
        if got == state::REJECTED {
            return Err(Error::Rejected(format!(
                "the receiver found message {seq} wrong; see its message"
            )));
        }
        let guard = lock(&segment, 1, spec)?;
        let len = guard.slot().len.load(Ordering::Relaxed);
        let verdict = expected.verify(guard.payload_prechecked(len)?, seq);
        drop(guard);
        segment.check_intact()?;
        wait::post(&segment.slot(1).state, state::EMPTY);
        lap.stop();
        verdict.map_err(|reason| Error::BadSegment {
            name: spec.name.clone(),
            reason: format!("reply: {reason}"),
        })
    })?;
    let report = m.finish(1.0);
    write_slot(&segment, 0, &STOP.to_le_bytes(), STOP, spec)?;
    wait_ack(&segment, 0, STOP, spec)?;
    Ok(report)
}

/// shm latency, receiver: reads each message and writes a reply.
pub(super) fn pong(spec: &Spec) -> Result<PeerReport> {
    let segment = open_segment(spec, &spec.segment_name()?, 2, spec.bytes)?;
    let _claim = segment.claim()?;
    let mut reply = PageBuf::pattern(spec.payload_len());
    let expected = Expected::of_pattern(&mut reply.as_slice().to_vec());
    let mut tally = Tally::new(spec);
    loop {
        let seq = tally.next_seq();
        wait_state(
            &segment,
            0,
            spec,
            Role::Consumer,
            "no message arrived",
            |s| s == state::READY,
        )?;
        let guard = lock(&segment, 0, spec)?;
        let len = guard.slot().len.load(Ordering::Relaxed);
        let message = guard.payload_prechecked(len)?;
        let stop = read_stamp(message) == Some(STOP);
        let verdict = if stop {
            Ok(())
        } else {
            expected.verify(message, seq)
        };
        drop(guard);
        if let Err(e) = segment.check_intact() {
            wait::post(&segment.slot(1).state, state::REJECTED);
            return Err(e);
        }
        if stop {
            wait::post(&segment.slot(0).state, state::ACKED);
            break;
        }
        if let Err(reason) = verdict {
            wait::post(&segment.slot(1).state, state::REJECTED);
            return Err(Error::BadSegment {
                name: spec.name.clone(),
                reason,
            });
        }
        wait::post(&segment.slot(0).state, state::EMPTY);
        stamp(reply.as_mut_slice(), seq);
        write_slot(&segment, 1, reply.as_slice(), seq, spec)?;
    }
    Ok(tally.finish(1.0, 0))
}
