//! The log fast path: when every append's offset is known, the offsets *are* the linearization
//! order, so no search is needed.
//!
//! Appends must take effect in offset order. A full read that returned values up to offset
//! `e - 1` must take effect when the log had exactly `e` records: after append `e - 1` and
//! before append `e`; an empty full read from `s` must take effect before append `s`; a partial
//! read (a poll) only needs its last record to exist. Each of these is a constraint "point of x
//! ≥ point of y" or "point of x ≥ invocation of x", plus "point of x ≤ completion of x". The
//! least solution is computed in one sweep in offset order, assigning every operation the
//! earliest point its predecessors allow; the history is linearizable exactly when every point
//! is within its operation's interval. Equal points are allowed (ties are broken by the order),
//! matching the search's rule that operations whose intervals touch are concurrent.
//!
//! On failure, each point remembers which constraint set it, so the chain of operations that
//! forced the late point is the witness: typically two or three operations.
//!
//! Offsets that no append reported and no read saw must have been taken by indeterminate
//! appends with unknown offsets (their values were never read, so they are interchangeable);
//! the earliest-invoked ones fill the earliest gaps, and the rest never happened.
//!
//! The fast path declines (and the caller falls back to the search) whenever its preconditions
//! do not hold: an acknowledged append with no known offset, a value appended twice, a value
//! seen at two offsets, more gaps than indeterminate appends, or a read value nobody appended.
//! Its verdict is exact whenever it gives one; the test suite cross-checks it against the
//! search on thousands of random histories.

use super::models::LogOp;
use super::{LinOp, Witness};
use crate::util::FastMap;

/// The fast path's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FastResult {
    /// Linearizable; the offsets gave the witness order.
    Ok,
    /// Not linearizable, with the chain of operations that forces the contradiction.
    Illegal(Witness),
    /// The preconditions do not hold; use the search.
    NotApplicable,
}

/// What set an operation's earliest point.
#[derive(Clone, Copy, Debug)]
enum Cause {
    Invoke,
    Append(usize),
    Read(usize),
}

/// The operations arranged by the constraint they obey.
struct Plan {
    /// Op index of the append at each offset 0..n.
    appends: Vec<usize>,
    /// `after[l]`: reads that need the log to hold at least `l` records.
    after: Vec<Vec<usize>>,
    /// `before[j]`: reads that must take effect before the append at offset `j`.
    before: Vec<Vec<usize>>,
}

/// Checks a log sub-history by its offsets; see the module docs.
#[must_use]
pub fn check_log_fast(ops: &[LinOp<LogOp>]) -> FastResult {
    match Plan::build(ops) {
        Some(plan) => plan.run(ops),
        None => FastResult::NotApplicable,
    }
}

/// value → offset, from appends that report an offset and from every read.
fn value_offsets(ops: &[LinOp<LogOp>]) -> Option<FastMap<i64, i64>> {
    let mut value_offset: FastMap<i64, i64> = FastMap::default();
    let mut offset_value: FastMap<i64, i64> = FastMap::default();
    let mut note = |v: i64, o: i64| -> bool {
        *value_offset.entry(v).or_insert(o) == o && *offset_value.entry(o).or_insert(v) == v
    };
    for op in ops {
        let consistent = match &op.op {
            LogOp::Append {
                value,
                offset: Some(o),
            } => note(*value, *o),
            LogOp::Append { offset: None, .. } => true,
            LogOp::Read { from, values, .. } => values
                .iter()
                .enumerate()
                .all(|(i, v)| note(*v, from.saturating_add(i as i64))),
        };
        if !consistent {
            return None;
        }
    }
    Some(value_offset)
}

impl Plan {
    fn build(ops: &[LinOp<LogOp>]) -> Option<Plan> {
        let value_offset = value_offsets(ops)?;
        let mut at: FastMap<i64, usize> = FastMap::default();
        let mut appended: FastMap<i64, ()> = FastMap::default();
        let mut fillers: Vec<usize> = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            let LogOp::Append { value, offset } = &op.op else {
                continue;
            };
            if appended.insert(*value, ()).is_some() {
                return None;
            }
            match offset.or_else(|| value_offset.get(value).copied()) {
                Some(o) if at.insert(o, i).is_none() => {}
                Some(_) => return None,
                None if op.must_happen => return None,
                None => fillers.push(i),
            }
        }
        let n = at
            .keys()
            .map(|o| usize::try_from(*o).ok().map(|o| o + 1))
            .max()
            .unwrap_or(Some(0))?;
        if n > at.len() + fillers.len() {
            return None;
        }
        let mut appends = vec![usize::MAX; n];
        for (o, i) in &at {
            appends[usize::try_from(*o).ok()?] = *i;
        }
        // Offsets nobody reported or read were taken by indeterminate appends whose values were
        // never read. Those are interchangeable except for their invocation times (they never
        // return), so giving the earliest-invoked one to the earliest gap is optimal.
        fillers.sort_by_key(|i| (ops[*i].invoke, *i));
        let mut unused = fillers.into_iter();
        for slot in appends.iter_mut().filter(|s| **s == usize::MAX) {
            *slot = unused
                .next()
                .expect("checked: enough indeterminate appends to fill the gaps");
        }
        let mut plan = Plan {
            appends,
            after: vec![Vec::new(); n + 1],
            before: vec![Vec::new(); n],
        };
        for (i, op) in ops.iter().enumerate() {
            let LogOp::Read {
                from,
                values,
                partial,
                ..
            } = &op.op
            else {
                continue;
            };
            if values.iter().any(|v| !appended.contains_key(v)) {
                return None;
            }
            plan.place_read(i, *from, values.len(), *partial)?;
        }
        Some(plan)
    }

    fn place_read(&mut self, i: usize, from: i64, len: usize, partial: bool) -> Option<()> {
        let n = self.appends.len();
        let from = usize::try_from(from).ok()?;
        let end = from.checked_add(len)?;
        match (len, partial) {
            (0, true) => {}
            (0, false) => {
                self.after[0].push(i);
                if from < n {
                    self.before[from].push(i);
                }
            }
            (_, true) => self.after.get_mut(end)?.push(i),
            (_, false) => {
                self.after.get_mut(end)?.push(i);
                if end < n {
                    self.before[end].push(i);
                }
            }
        }
        Some(())
    }

    fn run(&self, ops: &[LinOp<LogOp>]) -> FastResult {
        let n = self.appends.len();
        let mut t_app: Vec<(u64, Cause)> = Vec::with_capacity(n);
        let mut t_read: FastMap<usize, (u64, Cause)> = FastMap::default();
        for j in 0..=n {
            for &r in &self.after[j] {
                let mut point = (ops[r].invoke, Cause::Invoke);
                if j > 0 && t_app[j - 1].0 > point.0 {
                    point = (t_app[j - 1].0, Cause::Append(j - 1));
                }
                t_read.insert(r, point);
                if point.0 > ops[r].complete.unwrap_or(u64::MAX) {
                    return FastResult::Illegal(self.witness(ops, Cause::Read(r), &t_app, &t_read));
                }
            }
            if j == n {
                break;
            }
            let a = self.appends[j];
            let mut point = (ops[a].invoke, Cause::Invoke);
            if j > 0 && t_app[j - 1].0 > point.0 {
                point = (t_app[j - 1].0, Cause::Append(j - 1));
            }
            for &r in &self.before[j] {
                let t = t_read
                    .get(&r)
                    .expect("reads before append j were placed at or before j")
                    .0;
                if t > point.0 {
                    point = (t, Cause::Read(r));
                }
            }
            t_app.push(point);
            if point.0 > ops[a].complete.unwrap_or(u64::MAX) {
                return FastResult::Illegal(self.witness(ops, Cause::Append(j), &t_app, &t_read));
            }
        }
        FastResult::Ok
    }

    /// Follows the causes back from the operation that could not fit in its interval.
    fn witness(
        &self,
        ops: &[LinOp<LogOp>],
        failed: Cause,
        t_app: &[(u64, Cause)],
        t_read: &FastMap<usize, (u64, Cause)>,
    ) -> Witness {
        let mut chain = Vec::new();
        let mut cause = failed;
        loop {
            let (index, next) = match cause {
                Cause::Invoke => break,
                Cause::Append(j) => (self.appends[j], t_app[j].1),
                Cause::Read(r) => (r, t_read.get(&r).map_or(Cause::Invoke, |p| p.1)),
            };
            chain.push(ops[index].id);
            cause = next;
        }
        let first = chain.first().map_or(0, |id| id.0);
        let last = chain.last().map_or(0, |id| id.0);
        chain.reverse();
        Witness {
            explanation: format!(
                "the offsets force op {last} to take effect no earlier than its invocation, and each following op of the chain {:?} to take effect after the previous one; op {first} would then take effect after it returned",
                chain.iter().map(|id| id.0).collect::<Vec<_>>()
            ),
            ops: chain,
        }
    }
}
