//! The hand-off of one payload, as an explicit state machine on a slot's state word.
//!
//! Producer and consumer agree on what happened to a payload because every
//! change of the slot's `state` word is one [`Step`]: a compare-and-swap
//! from the states the step expects to the state it leads to. When two
//! processes race (the producer withdrawing at its deadline while the
//! consumer acknowledges), exactly one compare-and-swap wins, and the loser
//! reads the winner's state and reports it. A final state never changes
//! again, so the outcome both sides report is the word's final value.
//!
//! ```text
//!            Publish            Take              Ack
//!   Empty ───────────▶ Ready ─────────▶ Taken ─────────▶ Acked      (delivered)
//!     │                  │                │
//!     │                  │                └─────────────▶ Rejected   (bad payload,
//!     │                  │                    Reject                  or the consumer gave up)
//!     └──────────────────┴────────────────┴─────────────▶ Withdrawn  (not delivered)
//!                         Withdraw
//! ```
//!
//! | step | from | to | made by |
//! |---|---|---|---|
//! | [`Step::Publish`] | Empty | Ready | the producer, holding the lock, once the payload, its length, CRC-32 and sequence number are written |
//! | [`Step::Take`] | Ready | Taken | a consumer, holding the lock, before it reads the payload |
//! | [`Step::Ack`] | Taken | Acked | that consumer, holding the lock, once the payload is verified and decoded |
//! | [`Step::Reject`] | Taken | Rejected | that consumer, holding the lock, when the payload is bad or it gives up |
//! | [`Step::Withdraw`] | Empty, Ready, Taken | Withdrawn | the producer when it gives up (deadline, signal, error, a dead consumer); a consumer that finds the producer died while writing (Empty) |
//!
//! Who holds the lock matters for death, not for agreement: the lock is a
//! robust mutex, so the next process to take it learns that its holder died
//! and reads the state word to know what the dead process left. Empty means
//! the payload may be half written (it is discarded: Withdraw); Ready and
//! Taken mean it was complete (a consumer may use it); a final state is
//! reported as it is. `docs/segment-format.md` holds the same table, and
//! the `model` test module checks the protocol built on it against every
//! interleaving.

#[cfg(test)]
mod model;

use std::sync::atomic::{AtomicU32, Ordering};

use crate::layout::state;

/// The values of a slot's state word; `layout::state` holds their numbers,
/// the format's one definition of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum State {
    /// No payload yet, or one being written.
    Empty = state::EMPTY,
    /// A complete payload is offered.
    Ready = state::READY,
    /// The consumer verified and decoded it: delivered.
    Acked = state::ACKED,
    /// The consumer found it bad, or gave up after taking it.
    Rejected = state::REJECTED,
    /// The producer gave up before an acknowledgement, or died while
    /// writing it: not delivered.
    Withdrawn = state::WITHDRAWN,
    /// A consumer holds the lock and is reading it.
    Taken = state::TAKEN,
}

impl State {
    /// The state for a raw word, if it is one.
    pub fn from_u32(value: u32) -> Option<State> {
        Some(match value {
            state::EMPTY => State::Empty,
            state::READY => State::Ready,
            state::ACKED => State::Acked,
            state::REJECTED => State::Rejected,
            state::WITHDRAWN => State::Withdrawn,
            state::TAKEN => State::Taken,
            _ => return None,
        })
    }

    /// Whether no step leaves this state.
    pub fn is_final(self) -> bool {
        matches!(self, State::Acked | State::Rejected | State::Withdrawn)
    }

    /// The outcome a final state stands for.
    pub fn outcome(self) -> Option<Outcome> {
        match self {
            State::Acked => Some(Outcome::Delivered),
            State::Rejected => Some(Outcome::Rejected),
            State::Withdrawn => Some(Outcome::Withdrawn),
            _ => None,
        }
    }

    /// Its name in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Empty => "empty",
            State::Ready => "ready",
            State::Acked => "acknowledged",
            State::Rejected => "rejected",
            State::Withdrawn => "withdrawn",
            State::Taken => "taken",
        }
    }
}

/// How a hand-off ended, as both sides report it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The consumer verified and decoded the payload.
    Delivered,
    /// The consumer refused it or gave up after taking it.
    Rejected,
    /// The producer withdrew it, or it was never complete.
    Withdrawn,
}

/// One transition of the state word.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Step {
    /// Empty → Ready.
    Publish,
    /// Ready → Taken.
    Take,
    /// Taken → Acked.
    Ack,
    /// Taken → Rejected.
    Reject,
    /// Empty, Ready or Taken → Withdrawn.
    Withdraw,
}

impl Step {
    /// The states this step may leave.
    pub fn from(self) -> &'static [State] {
        match self {
            Step::Publish => &[State::Empty],
            Step::Take => &[State::Ready],
            Step::Ack | Step::Reject => &[State::Taken],
            Step::Withdraw => &[State::Empty, State::Ready, State::Taken],
        }
    }

    /// The state it leads to.
    pub fn to(self) -> State {
        match self {
            Step::Publish => State::Ready,
            Step::Take => State::Taken,
            Step::Ack => State::Acked,
            Step::Reject => State::Rejected,
            Step::Withdraw => State::Withdrawn,
        }
    }

    /// What the step does to `current`: the new state, or `None` when the
    /// step does not apply there. The one definition both [`apply`] and the
    /// model use.
    pub fn next(self, current: State) -> Option<State> {
        self.from().contains(&current).then_some(self.to())
    }
}

/// What the word held when a step did not apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Found {
    /// A state the step does not leave (another process won a race).
    State(State),
    /// A value that is no state at all (a corrupt or hostile segment).
    Invalid(u32),
}

/// Applies `step` to `word` with one compare-and-swap from the state it
/// holds, if the step may leave that state. Returns the state it left, or
/// what it found instead. Wakes the word's futex sleepers on success.
///
/// Ordering: the successful exchange is AcqRel. Its Release half publishes
/// everything written before it (the payload, its length and CRC, for
/// Publish) to whoever reads the new state with Acquire; its Acquire half
/// makes the previous writer's data visible to this process (the payload,
/// for Take). A failed exchange reads the winner's state with Acquire, for
/// the same reason.
pub fn apply(word: &AtomicU32, step: Step) -> Result<State, Found> {
    let mut raw = word.load(Ordering::Acquire);
    loop {
        let Some(current) = State::from_u32(raw) else {
            return Err(Found::Invalid(raw));
        };
        let Some(next) = step.next(current) else {
            return Err(Found::State(current));
        };
        match word.compare_exchange(raw, next as u32, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => {
                wake(word);
                return Ok(current);
            }
            Err(now) => raw = now,
        }
    }
}

/// Reads the word with Acquire (pairs with the Release of [`apply`]).
pub fn load(word: &AtomicU32) -> Result<State, Found> {
    let raw = word.load(Ordering::Acquire);
    State::from_u32(raw).ok_or(Found::Invalid(raw))
}

fn wake(word: &AtomicU32) {
    // A failed wake (impossible for a valid address) would only delay
    // sleepers until their next slice.
    let _ = rustix::thread::futex::wake(word, rustix::thread::futex::Flags::empty(), u32::MAX);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_step_leaves_only_its_states() {
        let all = [
            State::Empty,
            State::Ready,
            State::Acked,
            State::Rejected,
            State::Withdrawn,
            State::Taken,
        ];
        for step in [
            Step::Publish,
            Step::Take,
            Step::Ack,
            Step::Reject,
            Step::Withdraw,
        ] {
            for from in all {
                let word = AtomicU32::new(from as u32);
                let got = apply(&word, step);
                if step.from().contains(&from) {
                    assert_eq!(got, Ok(from), "{step:?} from {from:?}");
                    assert_eq!(load(&word), Ok(step.to()));
                } else {
                    assert_eq!(got, Err(Found::State(from)), "{step:?} from {from:?}");
                    assert_eq!(load(&word), Ok(from), "a refused step changed the word");
                }
            }
        }
    }

    #[test]
    fn every_state_has_a_name_and_others_are_invalid() {
        assert_eq!(
            State::from_u32(state::READY).map(State::as_str),
            Some("ready")
        );
        assert_eq!(
            State::from_u32(state::WITHDRAWN).map(State::as_str),
            Some("withdrawn")
        );
        assert_eq!(State::from_u32(99), None);
    }

    #[test]
    fn final_states_are_final_and_raw_values_round_trip() {
        for raw in 0..8 {
            match State::from_u32(raw) {
                Some(state) => {
                    assert_eq!(state as u32, raw);
                    assert_eq!(state.is_final(), state.outcome().is_some());
                }
                None => {
                    let word = AtomicU32::new(raw);
                    assert_eq!(apply(&word, Step::Withdraw), Err(Found::Invalid(raw)));
                }
            }
        }
    }

    #[test]
    fn of_two_racing_steps_exactly_one_wins() {
        use std::sync::{Arc, Barrier};
        for _ in 0..200 {
            let word = Arc::new(AtomicU32::new(State::Taken as u32));
            let barrier = Arc::new(Barrier::new(2));
            let (w, b) = (Arc::clone(&word), Arc::clone(&barrier));
            let ack = std::thread::spawn(move || {
                b.wait();
                apply(&w, Step::Ack).is_ok()
            });
            barrier.wait();
            let withdrew = apply(&word, Step::Withdraw).is_ok();
            let acked = ack.join().unwrap();
            assert!(acked != withdrew, "acked {acked}, withdrew {withdrew}");
            let end = load(&word).unwrap();
            assert_eq!(
                end,
                if acked {
                    State::Acked
                } else {
                    State::Withdrawn
                }
            );
        }
    }
}
