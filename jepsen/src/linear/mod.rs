//! Linearizability checking: the Wing–Gong search with Lowe's memoization, over any sequential
//! specification, plus a search-free fast path for logs.
//!
//! The search walks a doubly linked list of call and return entries sorted by time (calls
//! before returns at equal times, so operations whose intervals touch are concurrent). At a
//! call entry it tries to linearize that operation next: apply it to the model and, if the
//! model accepts and the resulting configuration was never seen before, lift the operation's
//! two entries out of the list and restart from the head. At a return entry the operation
//! returned without having been linearized, so the search backtracks: it pops the last
//! linearized operation, undoes it on the model and tries the next candidate. The stack is an
//! explicit `Vec`; there is no recursion.
//!
//! The memo (Lowe's cache) records configurations already explored: the set of linearized
//! operations plus the model state. Porcupine stores the set as a bitset and the state itself,
//! so each entry costs O(n) and a hot partition exhausts memory. Here an entry is a 128-bit
//! fingerprint: an incremental XOR of a random 64-bit tag per linearized operation (updated in
//! O(1) when an operation is linearized or undone) and the model's 64-bit state hash (which the
//! models also maintain incrementally). A collision could only make the search skip a
//! configuration; with 128 bits its probability is negligible (below 2^-64 for any history
//! that fits in memory).
//!
//! Operations that never returned (`info`) may take effect at any time after invocation. Their
//! return entries sort after every real return. If such an operation's effect is unknown (a
//! send that timed out), it may also never have happened, so once only those remain the history
//! is linearizable: applying them at the very end is always possible, and equivalent to
//! dropping them. Operations whose output is known (an offset was reported) must happen.
//!
//! P-compositionality: the caller splits the history by key (partition or register) and checks
//! each sub-history on its own, because linearizability is local.

pub mod fast;
pub mod models;
pub mod partition;

use std::time::Instant;

use crate::history::OpId;
use crate::util::{mix64, FastSet};

/// A sequential specification the search can apply and undo operations on.
///
/// `apply` must leave the state unchanged when it returns `None`; `state_hash` must be equal
/// for equal states (it is part of the memo fingerprint), and should be cheap (maintain it
/// incrementally).
pub trait SequentialSpec {
    /// An operation with its inputs and observed outputs.
    type Op;
    /// What `undo` needs to reverse one `apply`.
    type Undo;
    /// Applies `op` if the model in its current state could have produced the observed output.
    fn apply(&mut self, op: &Self::Op) -> Option<Self::Undo>;
    /// Reverses the most recent successful `apply`.
    fn undo(&mut self, undo: Self::Undo);
    /// A hash of the current state.
    fn state_hash(&self) -> u64;
    /// A short human-readable description of the current state, for witnesses.
    fn describe(&self) -> String;
}

/// One operation handed to the search.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinOp<O> {
    /// The history operation it came from.
    pub id: OpId,
    /// Invocation time.
    pub invoke: u64,
    /// Completion time; `None` if it never returned.
    pub complete: Option<u64>,
    /// False for an indeterminate operation with an unknown effect, which may never have
    /// happened.
    pub must_happen: bool,
    /// The operation for the model.
    pub op: O,
}

/// Why a sub-history cannot be linearized.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Witness {
    /// The operations of the window that cannot be linearized.
    pub ops: Vec<OpId>,
    /// What goes wrong, in a sentence.
    pub explanation: String,
}

/// The result of a linearizability check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinResult {
    /// A linearization exists.
    Ok,
    /// No linearization exists.
    Illegal(Witness),
    /// The search hit its limit first.
    Unknown(String),
}

/// Bounds on the search, so a pathological history yields `Unknown` instead of hanging.
#[derive(Clone, Copy, Debug, Default)]
pub struct SearchLimits {
    /// Give up after this instant.
    pub deadline: Option<Instant>,
    /// Give up after this many search steps (deterministic, unlike the deadline).
    pub max_steps: Option<u64>,
}

const HEAD: usize = 0;

/// The entry list: index 0 is the head sentinel, the last index the tail sentinel, and each
/// operation has a call entry and a return entry in between.
struct Entries {
    next: Vec<usize>,
    prev: Vec<usize>,
    /// Operation index of each entry (unused for the sentinels).
    op: Vec<u32>,
    /// True for call entries.
    is_call: Vec<bool>,
    /// For a call entry, its return entry.
    ret_of: Vec<usize>,
    tail: usize,
}

impl Entries {
    fn new<O>(ops: &[LinOp<O>]) -> Entries {
        // Sort key: time, then calls before returns, then returns that must happen before
        // optional ones (all at u64::MAX), then operation index for determinism.
        let mut events: Vec<(u64, u8, u32)> = Vec::with_capacity(ops.len() * 2);
        for (i, op) in ops.iter().enumerate() {
            events.push((op.invoke, 0, i as u32));
            let ret = op.complete.unwrap_or(u64::MAX);
            events.push((ret, if op.must_happen { 1 } else { 2 }, i as u32));
        }
        events.sort_unstable();
        let n = events.len() + 2;
        let tail = n - 1;
        let mut e = Entries {
            next: (1..=n).collect(),
            prev: (0..n).map(|i| i.saturating_sub(1)).collect(),
            op: vec![0; n],
            is_call: vec![false; n],
            ret_of: vec![0; n],
            tail,
        };
        let mut call_entry = vec![0usize; ops.len()];
        for (slot, (_, kind, i)) in events.iter().enumerate() {
            let entry = slot + 1;
            e.op[entry] = *i;
            e.is_call[entry] = *kind == 0;
            if *kind == 0 {
                call_entry[*i as usize] = entry;
            } else {
                e.ret_of[call_entry[*i as usize]] = entry;
            }
        }
        e
    }

    fn lift(&mut self, call: usize) {
        let ret = self.ret_of[call];
        for entry in [call, ret] {
            let (p, n) = (self.prev[entry], self.next[entry]);
            self.next[p] = n;
            self.prev[n] = p;
        }
    }

    fn unlift(&mut self, call: usize) {
        let ret = self.ret_of[call];
        for entry in [ret, call] {
            let (p, n) = (self.prev[entry], self.next[entry]);
            self.next[p] = entry;
            self.prev[n] = entry;
        }
    }
}

/// The deepest point the search reached before having to backtrack, kept as the witness.
struct Frontier {
    depth: usize,
    stuck: u32,
    pending: Vec<u32>,
    state: String,
}

/// Checks whether `ops` can be linearized against `spec` (which must start in its initial
/// state; it is returned to that state on `Ok`/`Illegal`).
pub fn check_operations<S: SequentialSpec>(
    spec: &mut S,
    ops: &[LinOp<S::Op>],
    limits: &SearchLimits,
) -> LinResult {
    let mut entries = Entries::new(ops);
    let tags: Vec<u64> = (0..ops.len() as u64)
        .map(|i| mix64(i ^ 0xa5a5_5a5a))
        .collect();
    let mut cache: FastSet<u128> = FastSet::default();
    let mut stack: Vec<(usize, S::Undo)> = Vec::new();
    let mut set_hash = 0u64;
    let mut frontier: Option<Frontier> = None;
    let mut entry = entries.next[HEAD];
    let mut steps: u64 = 0;
    loop {
        if entry == entries.tail {
            unwind(spec, &mut stack);
            return LinResult::Ok;
        }
        steps += 1;
        if let Some(reason) = limit_hit(limits, steps) {
            unwind(spec, &mut stack);
            return LinResult::Unknown(reason);
        }
        let i = entries.op[entry] as usize;
        if entries.is_call[entry] {
            if let Some(undo) = spec.apply(&ops[i].op) {
                let next_set = set_hash ^ tags[i];
                let key = (u128::from(next_set) << 64) | u128::from(spec.state_hash());
                if cache.insert(key) {
                    stack.push((entry, undo));
                    set_hash = next_set;
                    entries.lift(entry);
                    entry = entries.next[HEAD];
                    continue;
                }
                spec.undo(undo);
            }
            entry = entries.next[entry];
            continue;
        }
        if !ops[i].must_happen {
            // Every operation that must happen is linearized; the rest may be dropped.
            unwind(spec, &mut stack);
            return LinResult::Ok;
        }
        if frontier.as_ref().is_none_or(|f| stack.len() > f.depth) {
            frontier = Some(capture_frontier(spec, &entries, entry, stack.len()));
        }
        let Some((call, undo)) = stack.pop() else {
            return LinResult::Illegal(witness(ops, frontier));
        };
        spec.undo(undo);
        set_hash ^= tags[entries.op[call] as usize];
        entries.unlift(call);
        entry = entries.next[call];
    }
}

fn unwind<S: SequentialSpec>(spec: &mut S, stack: &mut Vec<(usize, S::Undo)>) {
    while let Some((_, undo)) = stack.pop() {
        spec.undo(undo);
    }
}

fn limit_hit(limits: &SearchLimits, steps: u64) -> Option<String> {
    if limits.max_steps.is_some_and(|max| steps > max) {
        return Some(format!("search gave up after {steps} steps"));
    }
    if steps & 4095 == 0 && limits.deadline.is_some_and(|d| Instant::now() >= d) {
        return Some(format!("search timed out after {steps} steps"));
    }
    None
}

/// The operations still pending (listed before the stuck return) at the deepest failure.
fn capture_frontier<S: SequentialSpec>(
    spec: &S,
    entries: &Entries,
    stuck_entry: usize,
    depth: usize,
) -> Frontier {
    const PENDING_MAX: usize = 32;
    let mut pending = Vec::new();
    let mut e = entries.next[HEAD];
    while e != stuck_entry && pending.len() < PENDING_MAX {
        if entries.is_call[e] {
            pending.push(entries.op[e]);
        }
        e = entries.next[e];
    }
    Frontier {
        depth,
        stuck: entries.op[stuck_entry],
        pending,
        state: spec.describe(),
    }
}

fn witness<O>(ops: &[LinOp<O>], frontier: Option<Frontier>) -> Witness {
    let Some(f) = frontier else {
        return Witness {
            ops: Vec::new(),
            explanation: "no operation can be linearized".into(),
        };
    };
    let stuck = ops[f.stuck as usize].id;
    let mut ids: Vec<OpId> = vec![stuck];
    ids.extend(
        f.pending
            .iter()
            .map(|i| ops[*i as usize].id)
            .filter(|id| *id != stuck),
    );
    Witness {
        explanation: format!(
            "after linearizing at most {} operation(s) (state: {}), op {} returned but neither it nor any of the {} concurrent pending operation(s) could take effect next",
            f.depth,
            f.state,
            stuck.0,
            ids.len() - 1
        ),
        ops: ids,
    }
}
