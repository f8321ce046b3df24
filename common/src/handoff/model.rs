//! A model check of the shared-memory hand-off: every interleaving of producers and consumers, deaths and deadlines.
//!
//! The transport's two programs (`transport::shm`) are restated here step by
//! step, at the grain of their atomic actions: one compare-and-swap of the
//! state word (through the real [`Step::next`] table), one lock or unlock of
//! the robust mutex, one claim. A breadth-first search then visits every
//! state reachable when the actors' steps interleave in every order, when any
//! live actor dies before any of its steps (killed with SIGKILL: it holds on
//! to nothing but a lock, which the next locker gets with "owner died"), and
//! when any wait reaches its deadline. A second producer may arrive on the
//! same name, and a second consumer may arrive and attach to whichever
//! segment the name then holds.
//!
//! In every reachable state it asserts that:
//! - a final state of the word never changes (the table has no step out of
//!   one, and no other write exists);
//! - a live, unfinished actor can always make a step: it is never left
//!   waiting without a deadline;
//! - a consumer uses a payload only if the producer wrote it completely;
//!
//! and in every state where all actors have finished or died, that:
//! - a live producer reports the outcome that the word holds;
//! - the consumer that took the payload, if alive, reports the same;
//! - at most one consumer reports the payload delivered, and only the one
//!   that took it, with the word acknowledged.
//!
//! Finally it checks that from every reachable state some final state can be
//! reached (nothing can loop for ever).

use std::collections::{HashMap, VecDeque};

use super::{Outcome, State, Step};

/// What an actor says when it exits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Report {
    /// The hand-off's outcome, as the word holds it.
    Outcome(Outcome),
    /// An error that ends this actor's part before it took part in a
    /// hand-off (the name in use, the segment claimed, a timeout while
    /// waiting for it), or after another consumer's hand-off ended.
    Failed,
}

/// A producer's program counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum P {
    /// Not started yet.
    Start,
    /// Created its segment and holds its lock; not yet published.
    Created,
    /// Published under the name, lock held, payload not yet written.
    Published,
    /// Payload written completely, lock held.
    Written,
    /// The word is Ready; lock still held (`--hold`).
    Ready,
    /// Lock released; waiting for the word to leave Ready.
    WaitTaken,
    /// A consumer took it; waiting for the lock that consumer holds.
    WaitLock,
    /// Holds the lock after the consumer released it or died.
    Locked { recovered: bool },
    /// Finished.
    Done(Report),
}

/// A consumer's program counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum C {
    /// Not started yet.
    Start,
    /// Opened segment `seg` (its producer was alive then); not yet claimed.
    Opened,
    /// Claimed it; waiting for its lock.
    Claimed,
    /// Holds the lock (`recovered`: its previous holder had died).
    Locked { recovered: bool },
    /// Took the payload (the word is Taken) and is using it.
    Using,
    /// Decided whether the payload was good; about to record it.
    Verified { good: bool },
    /// Recorded its verdict (or lost the race to a withdrawal); about to
    /// unlock (and release its claim if its step lost).
    Resolved(Report),
    /// Finished.
    Done(Report),
}

/// One segment: the one producer `i` creates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Seg {
    word: State,
    /// Holder of the robust mutex, and whether that holder has died.
    lock: Option<u8>,
    holder_dead: bool,
    /// The consumer that claimed it.
    claim: Option<u8>,
    /// Whether the producer wrote the whole payload.
    complete: bool,
    /// The consumer that took the payload.
    taker: Option<u8>,
}

const NEW_SEG: Seg = Seg {
    word: State::Empty,
    lock: None,
    holder_dead: false,
    claim: None,
    complete: false,
    taker: None,
};

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct World {
    producers: Vec<(P, bool)>,
    /// Program counter, liveness, and the segment the consumer opened.
    consumers: Vec<(C, bool, u8)>,
    segs: Vec<Seg>,
    /// The segment the name holds, if any (producer `i` made segment `i`).
    name: Option<u8>,
    /// Consumers store Acked whatever the word holds, as the protocol did
    /// before every transition became a compare-and-swap: the model must
    /// catch the disagreement this causes.
    blind_ack: bool,
}

/// Actor ids: producers are 0..np, consumers 100 + j (only for lock and
/// claim ownership, which both kinds share).
const CONSUMER_ID: u8 = 100;

impl World {
    fn new(producers: usize, consumers: usize) -> World {
        World {
            producers: vec![(P::Start, true); producers],
            consumers: vec![(C::Start, true, 0); consumers],
            segs: vec![NEW_SEG; producers],
            name: None,
            blind_ack: false,
        }
    }

    fn alive(&self, id: u8) -> bool {
        if id >= CONSUMER_ID {
            self.consumers[(id - CONSUMER_ID) as usize].1
        } else {
            self.producers[id as usize].1
        }
    }

    /// Applies `step` to segment `s`'s word through the real table.
    fn apply(&mut self, s: usize, step: Step) -> Result<State, State> {
        let seg = &mut self.segs[s];
        let before = seg.word;
        match step.next(before) {
            Some(next) => {
                assert!(!before.is_final(), "{step:?} left final state {before:?}");
                seg.word = next;
                Ok(before)
            }
            None => Err(before),
        }
    }

    /// The robust mutex of segment `s` is free for `me`: unlocked, or held
    /// by a process that died (then `me` gets it with "owner died").
    fn take_lock(&mut self, s: usize, me: u8) -> Option<bool> {
        let seg = &mut self.segs[s];
        match seg.lock {
            None => {
                seg.lock = Some(me);
                Some(false)
            }
            Some(_) if seg.holder_dead => {
                seg.lock = Some(me);
                seg.holder_dead = false;
                Some(true)
            }
            Some(_) => None,
        }
    }

    fn unlock(&mut self, s: usize, me: u8) {
        let seg = &mut self.segs[s];
        assert_eq!(seg.lock, Some(me), "unlocked a lock it does not hold");
        seg.lock = None;
    }

    /// A consumer's normal exit before the outcome releases its claim (a
    /// compare-and-swap from its own identity to none).
    fn release_claim(&mut self, s: usize, me: u8) {
        if self.segs[s].claim == Some(me) {
            self.segs[s].claim = None;
        }
    }

    /// Every state one step away, with a label for error messages.
    fn successors(&self) -> Vec<(String, World)> {
        let mut out = Vec::new();
        for i in 0..self.producers.len() {
            let (pc, alive) = self.producers[i];
            if !alive || matches!(pc, P::Done(_)) {
                continue;
            }
            let mut dead = self.clone();
            dead.producers[i].1 = false;
            if dead.segs[i].lock == Some(i as u8) {
                dead.segs[i].holder_dead = true;
            }
            out.push((format!("producer {i} dies at {pc:?}"), dead));
            for (label, next) in self.producer_steps(i) {
                out.push((format!("producer {i}: {label}"), next));
            }
        }
        for j in 0..self.consumers.len() {
            let (pc, alive, seg) = self.consumers[j];
            if !alive || matches!(pc, C::Done(_)) {
                continue;
            }
            let mut dead = self.clone();
            dead.consumers[j].1 = false;
            let me = CONSUMER_ID + j as u8;
            if pc != C::Start && dead.segs[seg as usize].lock == Some(me) {
                dead.segs[seg as usize].holder_dead = true;
            }
            out.push((format!("consumer {j} dies at {pc:?}"), dead));
            for (label, next) in self.consumer_steps(j) {
                out.push((format!("consumer {j}: {label}"), next));
            }
        }
        out
    }

    fn producer_steps(&self, i: usize) -> Vec<(&'static str, World)> {
        let me = i as u8;
        let mut out = Vec::new();
        let mut w = self.clone();
        let set = |w: &mut World, pc: P| w.producers[i].0 = pc;
        match self.producers[i].0 {
            P::Start => {
                // Create unnamed and lock: nobody sees it yet.
                w.take_lock(i, me).expect("a fresh lock is free");
                set(&mut w, P::Created);
                out.push(("create and lock", w));
            }
            P::Created => {
                // Publish: only if the name is free or its owner is dead.
                let taken = self
                    .name
                    .is_some_and(|s| self.producers[s as usize].1 && s as usize != i);
                if taken {
                    w.unlock(i, me);
                    set(&mut w, P::Done(Report::Failed));
                    out.push(("the name is in use: give up", w));
                } else {
                    w.name = Some(me);
                    set(&mut w, P::Published);
                    out.push(("publish", w));
                }
            }
            P::Published => {
                w.segs[i].complete = true;
                set(&mut w, P::Written);
                out.push(("write the payload", w));
            }
            P::Written => {
                w.apply(i, Step::Publish)
                    .expect("only the producer leaves Empty while it lives");
                set(&mut w, P::Ready);
                out.push(("Publish: Empty -> Ready", w));
            }
            P::Ready => {
                w.unlock(i, me);
                set(&mut w, P::WaitTaken);
                out.push(("unlock", w));
            }
            P::WaitTaken => {
                let word = self.segs[i].word;
                if word != State::Ready {
                    // The futex wait ends: the word moved.
                    if let Some(outcome) = word.outcome() {
                        set(&mut w, P::Done(Report::Outcome(outcome)));
                        out.push(("the word is final: report it", w));
                    } else {
                        assert_eq!(word, State::Taken, "the producer saw {word:?}");
                        set(&mut w, P::WaitLock);
                        out.push(("a consumer took it: wait for the lock", w));
                    }
                } else {
                    // The deadline passes, or the claimed consumer is found
                    // dead: withdraw, unless a consumer just took it.
                    let dead_claim = self.segs[i].claim.is_some_and(|c| !self.alive(c));
                    for label in ["deadline: Withdraw", "claimer dead: Withdraw"] {
                        if label.starts_with("claimer") && !dead_claim {
                            continue;
                        }
                        let mut w = self.clone();
                        if w.apply(i, Step::Withdraw).is_ok() {
                            set(&mut w, P::Done(Report::Outcome(Outcome::Withdrawn)));
                        }
                        out.push((label, w));
                    }
                }
            }
            P::WaitLock => {
                if let Some(recovered) = w.take_lock(i, me) {
                    set(&mut w, P::Locked { recovered });
                    out.push(("lock", w));
                }
                // Deadline while the consumer holds the lock: withdraw, or
                // report the outcome that won the race.
                let mut w = self.clone();
                let report = match w.apply(i, Step::Withdraw) {
                    Ok(_) => Report::Outcome(Outcome::Withdrawn),
                    Err(found) => Report::Outcome(found.outcome().expect("final")),
                };
                set(&mut w, P::Done(report));
                out.push(("deadline: Withdraw or report", w));
            }
            P::Locked { recovered } => {
                let word = self.segs[i].word;
                let report = match word.outcome() {
                    Some(outcome) => Report::Outcome(outcome),
                    None => {
                        // Taken with the lock free: only after its taker died.
                        assert!(recovered && word == State::Taken, "{word:?} clean");
                        w.apply(i, Step::Withdraw).expect("Taken");
                        Report::Outcome(Outcome::Withdrawn)
                    }
                };
                w.unlock(i, me);
                set(&mut w, P::Done(report));
                out.push(("read the outcome and unlock", w));
            }
            P::Done(_) => {}
        }
        out
    }

    fn consumer_steps(&self, j: usize) -> Vec<(&'static str, World)> {
        let me = CONSUMER_ID + j as u8;
        let (pc, _, seg) = self.consumers[j];
        let s = seg as usize;
        let mut out = Vec::new();
        let mut w = self.clone();
        let set = |w: &mut World, pc: C| w.consumers[j].0 = pc;
        match pc {
            C::Start => {
                // Open the name once a live producer published it.
                if let Some(k) = self.name.filter(|&k| self.producers[k as usize].1) {
                    w.consumers[j].2 = k;
                    set(&mut w, C::Opened);
                    out.push(("open", w));
                }
                let mut w = self.clone();
                set(&mut w, C::Done(Report::Failed));
                out.push(("deadline: nothing to open", w));
            }
            C::Opened => {
                let holder = self.segs[s].claim;
                if holder.is_none_or(|c| !self.alive(c)) {
                    w.segs[s].claim = Some(me);
                    set(&mut w, C::Claimed);
                    out.push(("claim", w));
                } else {
                    set(&mut w, C::Done(Report::Failed));
                    out.push(("claimed by another: give up", w));
                }
            }
            C::Claimed => {
                if let Some(recovered) = w.take_lock(s, me) {
                    set(&mut w, C::Locked { recovered });
                    out.push(("lock", w));
                }
                let mut w = self.clone();
                w.release_claim(s, me);
                set(&mut w, C::Done(Report::Failed));
                out.push(("deadline: give up and release the claim", w));
            }
            C::Locked { recovered } => {
                let word = self.segs[s].word;
                match word {
                    State::Empty => {
                        // The producer holds the lock until the word is
                        // Ready, so a lock over Empty was its: it died
                        // writing. Discard the half-written payload.
                        assert!(recovered, "a clean lock over an empty payload");
                        w.apply(s, Step::Withdraw).expect("Empty");
                        set(&mut w, C::Resolved(Report::Outcome(Outcome::Withdrawn)));
                        out.push(("producer died writing: Withdraw", w));
                    }
                    State::Ready => {
                        w.apply(s, Step::Take).expect("the word is Ready");
                        w.segs[s].taker = Some(me);
                        set(&mut w, C::Using);
                        out.push(("Take: Ready -> Taken", w));
                    }
                    State::Taken => {
                        // The previous taker died holding the lock; the
                        // payload was complete when it was taken: take over.
                        assert!(recovered, "a clean lock over a taken payload");
                        w.segs[s].taker = Some(me);
                        set(&mut w, C::Using);
                        out.push(("take over from a dead consumer", w));
                    }
                    State::Withdrawn => {
                        set(&mut w, C::Resolved(Report::Outcome(Outcome::Withdrawn)));
                        out.push(("withdrawn: refuse it", w));
                    }
                    State::Acked | State::Rejected => {
                        set(&mut w, C::Resolved(Report::Failed));
                        out.push(("already used by another consumer", w));
                    }
                }
            }
            C::Using => {
                assert!(
                    self.segs[s].complete,
                    "a consumer used an incomplete payload"
                );
                for good in [true, false] {
                    let mut w = self.clone();
                    set(&mut w, C::Verified { good });
                    out.push(("verify and decode", w));
                }
            }
            C::Verified { good } => {
                let step = if good { Step::Ack } else { Step::Reject };
                if self.blind_ack && good {
                    w.segs[s].word = State::Acked;
                }
                let report = match w.apply(s, step) {
                    Ok(_) => step.to().outcome().expect("final"),
                    Err(State::Acked) if self.blind_ack => Outcome::Delivered,
                    Err(found) => {
                        assert_eq!(found, State::Withdrawn, "only a withdrawal races");
                        Outcome::Withdrawn
                    }
                };
                set(&mut w, C::Resolved(Report::Outcome(report)));
                out.push(("Ack or Reject", w));
            }
            C::Resolved(report) => {
                w.unlock(s, me);
                // A consumer whose own Ack or Reject won keeps its claim
                // (the producer names it); one whose Ack lost releases it.
                let won = matches!(
                    report,
                    Report::Outcome(Outcome::Delivered | Outcome::Rejected)
                );
                if !won {
                    w.release_claim(s, me);
                }
                set(&mut w, C::Done(report));
                out.push(("unlock (releasing the claim unless its step won)", w));
            }
            C::Done(_) => {}
        }
        out
    }

    fn finished(&self) -> bool {
        self.producers
            .iter()
            .all(|&(pc, alive)| !alive || matches!(pc, P::Done(_)))
            && self
                .consumers
                .iter()
                .all(|&(pc, alive, _)| !alive || matches!(pc, C::Done(_)))
    }

    /// The agreement properties of a finished world.
    fn check_outcomes(&self) -> Result<(), String> {
        for (i, &(pc, alive)) in self.producers.iter().enumerate() {
            let seg = &self.segs[i];
            let P::Done(report) = pc else { continue };
            if alive && report != Report::Failed {
                let word = seg.word.outcome();
                if Some(report) != word.map(Report::Outcome) {
                    return Err(format!(
                        "producer {i} reports {report:?}, the word is {word:?}"
                    ));
                }
            }
            if let Some(taker) = seg.taker {
                let (cpc, calive, _) = self.consumers[(taker - CONSUMER_ID) as usize];
                if let (true, true, C::Done(creport)) = (alive, calive, cpc) {
                    if creport != report && report != Report::Failed {
                        return Err(format!(
                            "producer {i} reports {report:?}, its consumer {creport:?}"
                        ));
                    }
                }
            }
        }
        for (j, &(pc, _, s)) in self.consumers.iter().enumerate() {
            if pc == C::Done(Report::Outcome(Outcome::Delivered)) {
                let seg = &self.segs[s as usize];
                if seg.taker != Some(CONSUMER_ID + j as u8) || seg.word != State::Acked {
                    return Err(format!("consumer {j} reports a delivery it did not make"));
                }
            }
        }
        Ok(())
    }
}

/// Explores every state reachable from `start`; returns the number of states.
fn explore(start: World) -> usize {
    let mut index: HashMap<World, u32> = HashMap::new();
    let mut states: Vec<World> = Vec::new();
    let mut preds: Vec<Vec<u32>> = Vec::new();
    let mut queue = VecDeque::new();
    index.insert(start.clone(), 0);
    states.push(start);
    preds.push(Vec::new());
    queue.push_back(0u32);
    let mut finals = Vec::new();
    while let Some(id) = queue.pop_front() {
        let world = states[id as usize].clone();
        let next = world.successors();
        if world.finished() {
            if let Err(e) = world.check_outcomes() {
                panic!("{e} in {world:#?}");
            }
            finals.push(id);
            continue;
        }
        assert!(!next.is_empty(), "nobody can move in {world:#?}");
        // A live, unfinished actor always has a step besides dying.
        for (i, &(pc, alive)) in world.producers.iter().enumerate() {
            if alive && !matches!(pc, P::Done(_)) {
                assert!(
                    !world.producer_steps(i).is_empty(),
                    "producer {i} stuck at {pc:?}"
                );
            }
        }
        for (j, &(pc, alive, _)) in world.consumers.iter().enumerate() {
            if alive && !matches!(pc, C::Done(_)) {
                assert!(
                    !world.consumer_steps(j).is_empty(),
                    "consumer {j} stuck at {pc:?}"
                );
            }
        }
        for (_label, succ) in next {
            let sid = match index.get(&succ) {
                Some(&sid) => sid,
                None => {
                    let sid = states.len() as u32;
                    index.insert(succ.clone(), sid);
                    states.push(succ);
                    preds.push(Vec::new());
                    queue.push_back(sid);
                    sid
                }
            };
            preds[sid as usize].push(id);
        }
    }
    // Every state reaches a finished one: walk back from the finished ones.
    let mut reaches = vec![false; states.len()];
    let mut stack = finals;
    for &f in &stack {
        reaches[f as usize] = true;
    }
    while let Some(id) = stack.pop() {
        for &p in &preds[id as usize] {
            if !reaches[p as usize] {
                reaches[p as usize] = true;
                stack.push(p);
            }
        }
    }
    if let Some(stuck) = reaches.iter().position(|&r| !r) {
        panic!("no way to finish from {:#?}", states[stuck]);
    }
    states.len()
}

#[test]
fn one_producer_one_consumer() {
    let n = explore(World::new(1, 1));
    println!("one producer, one consumer: {n} states");
    assert!(n > 50, "{n}");
}

#[test]
fn a_second_consumer_arrives() {
    let n = explore(World::new(1, 2));
    println!("one producer, two consumers: {n} states");
}

#[test]
fn a_second_producer_and_a_second_consumer_arrive() {
    let n = explore(World::new(2, 2));
    println!("two producers, two consumers: {n} states");
}

#[test]
#[should_panic(expected = "producer 0 reports Outcome(Withdrawn)")]
fn an_acknowledgement_stored_blindly_is_caught() {
    explore(World {
        blind_ack: true,
        ..World::new(1, 1)
    });
}
