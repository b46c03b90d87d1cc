//! Kafka queue analysis: the anomaly classes of Jepsen's Kafka workload, re-implemented from
//! their definitions.
//!
//! The analysis first builds a *version order* per partition: every (offset, value) pair that
//! is known to be in the log. Evidence comes from every poll (ok, fail and info alike, because a
//! consumer must only ever be shown committed data) and from the sends that must have committed
//! (ok sends and ok transactions that report an offset). Offsets need not be dense, since
//! transaction markers occupy offsets that no consumer sees, so the analysis works with a
//! value's *position* (its index among the known offsets) rather than the raw offset.
//!
//! Two values at one offset are inconsistent-offsets; one value at two offsets is a duplicate.
//! Everything else is a comparison of positions:
//! - lost-write: an acknowledged value never read although a consumer polled a later position
//!   (log reads, which may start at any offset, do not count as passing a position), or an
//!   acknowledged value whose offset a read invoked after the acknowledgement found holding
//!   another value: the log no longer has it, even if a consumer saw it before it went;
//! - unseen: an acknowledged value never polled at all (with a timeline of the count);
//! - poll-skip / nonmonotonic-poll: between two consecutive polls of a partition by one
//!   consumer, the position jumped forward by more than one or did not advance; consumer state
//!   resets on assign, subscribe, a reported rebalance, a crash, or an indeterminate operation;
//! - int-poll-skip / int-nonmonotonic-poll: the same within one operation;
//! - nonmonotonic-send / int-nonmonotonic-send / int-send-skip: the same for one process's
//!   sends, across operations or within one;
//! - G1a: a value read whose send (or transaction) failed; precommitted-read: a transaction
//!   read its own uncommitted send;
//! - realtime lag: how long a value had been acknowledged before a poll that should have been
//!   able to see it started without seeing it.
//!
//! All maps are lookup-only hash maps or B-trees, so the result is a pure function of the
//! history.

use std::collections::{BTreeMap, BTreeSet};

use crate::anomaly::{anomaly, Anomalies, AnomalyClass};
use crate::history::{History, KeyId, MicroOp, Op, OpId, OpKind, Outcome};
use crate::util::{downsample, FastMap};

/// Measurements the queue analysis produces besides anomalies.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueueReport {
    /// (time, number of acknowledged values not yet polled), at each change, downsampled.
    pub unseen_timeline: Vec<(u64, u64)>,
    /// Acknowledged values never polled by the end of the history.
    pub unseen_final: u64,
    /// (poll invocation time, realtime lag) samples, downsampled.
    pub lag_series: Vec<(u64, u64)>,
    /// Largest realtime lag seen by any poll.
    pub max_lag_ns: u64,
    /// Per-partition figures, by key.
    pub per_key: Vec<KeyQueueStats>,
}

/// Per-partition figures of the queue analysis.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyQueueStats {
    /// The partition.
    pub key: KeyId,
    /// Distinct offsets known to hold a value.
    pub known_offsets: u64,
    /// Acknowledged sends.
    pub sends_ok: u64,
    /// Acknowledged sends never polled.
    pub unseen: u64,
    /// Largest realtime lag of a poll of this partition.
    pub max_lag_ns: u64,
}

const SERIES_POINTS: usize = 600;

/// The per-partition version orders.
struct Orders {
    /// Sorted distinct known offsets per key.
    offsets: Vec<Vec<i64>>,
    /// (key, value) → position of the lowest offset holding it.
    value_pos: FastMap<(u32, i64), i64>,
    /// (key, offset) pairs that hold more than one value.
    conflicts: BTreeSet<(u32, i64)>,
    /// (key, value) pairs seen at more than one offset.
    duplicates: BTreeSet<(u32, i64)>,
}

impl Orders {
    fn pos_of_offset(&self, key: KeyId, offset: i64) -> Option<i64> {
        let offsets = self.offsets.get(key.0 as usize)?;
        offsets.binary_search(&offset).ok().map(|p| p as i64)
    }

    /// The position of a send: from its reported offset if any, else from where it was polled.
    fn pos_of_send(&self, key: KeyId, value: i64, offset: Option<i64>) -> Option<i64> {
        match offset {
            Some(o) => self.pos_of_offset(key, o),
            None => self.value_pos.get(&(key.0, value)).copied(),
        }
    }
}

/// Calls `f(key, offset, value)` for every record an operation read.
pub(crate) fn for_each_read(op: &Op, mut f: impl FnMut(KeyId, i64, i64)) {
    match &op.kind {
        OpKind::Poll { records, .. } => records.iter().for_each(|r| f(r.key, r.offset, r.value)),
        OpKind::Txn { mops } => {
            for mop in mops {
                if let MicroOp::Poll { records } = mop {
                    records.iter().for_each(|r| f(r.key, r.offset, r.value));
                }
            }
        }
        OpKind::Read {
            key,
            from,
            values: Some(values),
        } => {
            for (i, v) in values.iter().enumerate() {
                f(*key, from.saturating_add(i as i64), *v);
            }
        }
        _ => {}
    }
}

/// Calls `f(key, value, offset)` for every send of an operation (single or in a transaction).
pub(crate) fn for_each_send(op: &Op, mut f: impl FnMut(KeyId, i64, Option<i64>)) {
    match &op.kind {
        OpKind::Send { key, value, offset } => f(*key, *value, *offset),
        OpKind::Txn { mops } => {
            for mop in mops {
                if let MicroOp::Send { key, value, offset } = mop {
                    f(*key, *value, *offset);
                }
            }
        }
        _ => {}
    }
}

/// Calls `f` for every (key, offset, value) that is evidence of the log's contents.
pub(crate) fn for_each_observation(op: &Op, mut f: impl FnMut(KeyId, i64, i64)) {
    for_each_read(op, &mut f);
    if op.outcome == Outcome::Ok {
        for_each_send(op, |k, v, o| {
            if let Some(o) = o {
                f(k, o, v);
            }
        });
    }
}

fn build_orders(history: &History) -> Orders {
    let mut offset_value: FastMap<(u32, i64), i64> = FastMap::default();
    let mut value_offset: FastMap<(u32, i64), i64> = FastMap::default();
    let mut conflicts = BTreeSet::new();
    let mut duplicates = BTreeSet::new();
    for op in history.ops() {
        for_each_observation(op, |k, o, v| {
            let known = *offset_value.entry((k.0, o)).or_insert(v);
            if known != v {
                conflicts.insert((k.0, o));
            }
            let first = value_offset.entry((k.0, v)).or_insert(o);
            if *first != o {
                duplicates.insert((k.0, v));
                *first = (*first).min(o);
            }
        });
    }
    let mut offsets = vec![Vec::new(); history.key_count()];
    for (k, o) in offset_value.keys() {
        offsets[*k as usize].push(*o);
    }
    drop(offset_value);
    offsets.iter_mut().for_each(|o| o.sort_unstable());
    let mut value_pos = value_offset;
    for ((k, _), pos) in &mut value_pos {
        let offsets = &offsets[*k as usize];
        *pos = offsets
            .binary_search(pos)
            .expect("every observed offset is in the order") as i64;
    }
    Orders {
        offsets,
        value_pos,
        conflicts,
        duplicates,
    }
}

/// Facts about sends and reads of each value.
struct ValueFacts {
    /// (key, value) → the first operation that sent it.
    writer: FastMap<(u32, i64), OpId>,
    /// (key, value) → earliest completion (or invocation, if none) of a read of it.
    first_read: FastMap<(u32, i64), u64>,
    /// Highest position read per key, -1 if none.
    max_read_pos: Vec<i64>,
}

fn build_facts(history: &History, orders: &Orders) -> ValueFacts {
    let mut writer: FastMap<(u32, i64), OpId> = FastMap::default();
    let mut first_read: FastMap<(u32, i64), u64> = FastMap::default();
    let mut max_read_pos = vec![-1i64; history.key_count()];
    for op in history.ops() {
        for_each_send(op, |k, v, _| {
            writer.entry((k.0, v)).or_insert(op.id);
        });
        let seen_at = op.complete_ns.unwrap_or(op.invoke_ns);
        // Consumers read a partition sequentially from their position, so a consumer that got
        // past a position must have been shown it; a log read may start anywhere and so says
        // nothing about the positions before it.
        let consumer = matches!(op.kind, OpKind::Poll { .. } | OpKind::Txn { .. });
        for_each_read(op, |k, o, v| {
            let t = first_read.entry((k.0, v)).or_insert(seen_at);
            *t = (*t).min(seen_at);
            if let (true, Some(p)) = (consumer, orders.pos_of_offset(k, o)) {
                let max = &mut max_read_pos[k.0 as usize];
                *max = (*max).max(p);
            }
        });
    }
    ValueFacts {
        writer,
        first_read,
        max_read_pos,
    }
}

/// Runs the queue analysis, reporting anomalies into `out`.
pub fn analyze(history: &History, out: &mut Anomalies) -> QueueReport {
    let orders = build_orders(history);
    let facts = build_facts(history, &orders);
    report_offset_conflicts(history, &orders, out);
    let acks = AckTimes::new(history, &orders);
    let mut lag = LagTracker::new(history.key_count());
    let mut consumers: BTreeMap<u64, ClientState> = BTreeMap::new();
    for id in history.by_invoke_time() {
        let op = &history.ops()[id.0 as usize];
        let state = consumers.entry(op.process).or_default();
        match &op.kind {
            OpKind::Assign { .. } | OpKind::Subscribe { .. } => state.poll_pos.clear(),
            OpKind::Poll {
                rebalanced: true, ..
            } => state.poll_pos.clear(),
            OpKind::Crash => *state = ClientState::default(),
            _ => {}
        }
        check_reads(history, op, &orders, &facts, state, out);
        check_sends(op, &orders, state, out);
        lag.observe(op, &orders, &acks);
        if op.outcome == Outcome::Info {
            // The process may have lost its client; its next operation starts afresh.
            *state = ClientState::default();
        }
    }
    let (unseen_final, unseen_timeline, mut per_key) =
        lost_and_unseen(history, &orders, &facts, out);
    for stats in &mut per_key {
        stats.max_lag_ns = lag.max_per_key[stats.key.0 as usize];
    }
    QueueReport {
        unseen_timeline,
        unseen_final,
        lag_series: downsample(&lag.series, SERIES_POINTS),
        max_lag_ns: lag.max,
        per_key,
    }
}

/// What the checker remembers about one process's consumer and producer.
#[derive(Default)]
struct ClientState {
    /// key → (last polled position, the op that polled it).
    poll_pos: FastMap<u32, (i64, OpId)>,
    /// key → (last sent position, the op that sent it).
    send_pos: FastMap<u32, (i64, OpId)>,
}

fn check_reads(
    history: &History,
    op: &Op,
    orders: &Orders,
    facts: &ValueFacts,
    state: &mut ClientState,
    out: &mut Anomalies,
) {
    // Position checks are about consumers; a log read may start at any offset.
    let consumer = matches!(op.kind, OpKind::Poll { .. } | OpKind::Txn { .. });
    let mut in_op: Vec<(u32, i64, i64)> = Vec::new();
    for_each_read(op, |k, o, v| {
        check_read_writer(history, op, k, v, facts, out);
        let Some(pos) = orders.pos_of_offset(k, o).filter(|_| consumer) else {
            return;
        };
        match in_op.iter_mut().find(|e| e.0 == k.0) {
            Some(entry) => {
                let (prev_pos, prev_off) = (entry.1, entry.2);
                if pos > prev_pos + 1 {
                    out.report(AnomalyClass::IntPollSkip, || {
                        anomaly(AnomalyClass::IntPollSkip, Some(k), vec![op.id], format!(
                            "op {} read offset {prev_off} then offset {o} of {}, skipping {} known value(s) between them",
                            op.id.0, history.key_name(k), pos - prev_pos - 1))
                    });
                } else if pos <= prev_pos {
                    out.report(AnomalyClass::IntNonmonotonicPoll, || {
                        anomaly(
                            AnomalyClass::IntNonmonotonicPoll,
                            Some(k),
                            vec![op.id],
                            format!(
                            "op {} read offset {prev_off} then offset {o} of {}, going backwards",
                            op.id.0, history.key_name(k)),
                        )
                    });
                }
                entry.1 = pos;
                entry.2 = o;
            }
            None => {
                check_poll_continuity(history, op, k, o, pos, orders, state, out);
                in_op.push((k.0, pos, o));
            }
        }
    });
    for (k, pos, _) in in_op {
        state.poll_pos.insert(k, (pos, op.id));
    }
}

/// G1a and precommitted-read: who wrote the value this op read.
fn check_read_writer(
    history: &History,
    op: &Op,
    k: KeyId,
    v: i64,
    facts: &ValueFacts,
    out: &mut Anomalies,
) {
    let Some(writer) = facts.writer.get(&(k.0, v)).copied() else {
        return;
    };
    if writer == op.id {
        out.report(AnomalyClass::PrecommittedRead, || {
            anomaly(
                AnomalyClass::PrecommittedRead,
                Some(k),
                vec![op.id],
                format!(
                    "op {} read value {v} of {} which it wrote itself before committing",
                    op.id.0,
                    history.key_name(k)
                ),
            )
        });
    } else if history.ops()[writer.0 as usize].outcome == Outcome::Fail {
        out.report(AnomalyClass::G1a, || {
            anomaly(
                AnomalyClass::G1a,
                Some(k),
                vec![writer, op.id],
                format!(
                    "op {} read value {v} of {}, whose send in op {} failed (aborted read)",
                    op.id.0,
                    history.key_name(k),
                    writer.0
                ),
            )
        });
    }
}

/// poll-skip and nonmonotonic-poll: this op's first read of `k` against the consumer's last.
#[allow(clippy::too_many_arguments)]
fn check_poll_continuity(
    history: &History,
    op: &Op,
    k: KeyId,
    offset: i64,
    pos: i64,
    orders: &Orders,
    state: &ClientState,
    out: &mut Anomalies,
) {
    let Some((last, last_op)) = state.poll_pos.get(&k.0).copied() else {
        return;
    };
    let last_offset = orders.offsets[k.0 as usize][last as usize];
    if pos > last + 1 {
        out.report(AnomalyClass::PollSkip, || {
            let skipped = &orders.offsets[k.0 as usize][(last + 1) as usize..pos as usize];
            let sample: Vec<i64> = skipped.iter().take(5).copied().collect();
            anomaly(AnomalyClass::PollSkip, Some(k), vec![last_op, op.id], format!(
                "process {} polled offset {last_offset} of {} (op {}) and next offset {offset} (op {}), skipping {} value(s) at offsets {sample:?}{}",
                op.process, history.key_name(k), last_op.0, op.id.0, skipped.len(),
                if skipped.len() > sample.len() { "…" } else { "" }))
        });
    } else if pos <= last {
        out.report(AnomalyClass::NonmonotonicPoll, || {
            anomaly(AnomalyClass::NonmonotonicPoll, Some(k), vec![last_op, op.id], format!(
                "process {} polled offset {last_offset} of {} (op {}) and next offset {offset} (op {}), going backwards",
                op.process, history.key_name(k), last_op.0, op.id.0))
        });
    }
}

fn check_sends(op: &Op, orders: &Orders, state: &mut ClientState, out: &mut Anomalies) {
    if op.outcome == Outcome::Fail {
        return;
    }
    let mut in_op: Vec<(u32, i64)> = Vec::new();
    for_each_send(op, |k, v, o| {
        let Some(pos) = orders.pos_of_send(k, v, o) else {
            return;
        };
        match in_op.iter_mut().find(|e| e.0 == k.0) {
            Some(entry) => {
                let prev = entry.1;
                if pos > prev + 1 {
                    out.report(AnomalyClass::IntSendSkip, || {
                        anomaly(
                            AnomalyClass::IntSendSkip,
                            Some(k),
                            vec![op.id],
                            format!(
                                "op {} sent two values to key {} that landed {} position(s) apart",
                                op.id.0,
                                k.0,
                                pos - prev
                            ),
                        )
                    });
                } else if pos <= prev {
                    out.report(AnomalyClass::IntNonmonotonicSend, || {
                        anomaly(AnomalyClass::IntNonmonotonicSend, Some(k), vec![op.id], format!(
                            "op {} sent value {v} to key {} after an earlier send, but it landed before it",
                            op.id.0, k.0))
                    });
                }
                entry.1 = pos;
            }
            None => {
                if let Some((last, last_op)) = state.send_pos.get(&k.0).copied() {
                    if pos <= last {
                        out.report(AnomalyClass::NonmonotonicSend, || {
                            anomaly(AnomalyClass::NonmonotonicSend, Some(k), vec![last_op, op.id], format!(
                                "process {} sent value {v} to key {} in op {} after op {}, but it landed at or before op {}'s send",
                                op.process, k.0, op.id.0, last_op.0, last_op.0))
                        });
                    }
                }
                in_op.push((k.0, pos));
            }
        }
    });
    if op.outcome == Outcome::Ok {
        for (k, pos) in in_op {
            state.send_pos.insert(k, (pos, op.id));
        }
    }
}

fn report_offset_conflicts(history: &History, orders: &Orders, out: &mut Anomalies) {
    if orders.conflicts.is_empty() && orders.duplicates.is_empty() {
        return;
    }
    // Second pass, only over the flagged pairs, to name the operations involved.
    let mut at_offset: BTreeMap<(u32, i64), BTreeMap<i64, BTreeSet<OpId>>> = BTreeMap::new();
    let mut of_value: BTreeMap<(u32, i64), BTreeMap<i64, BTreeSet<OpId>>> = BTreeMap::new();
    for op in history.ops() {
        for_each_observation(op, |k, o, v| {
            if orders.conflicts.contains(&(k.0, o)) {
                at_offset
                    .entry((k.0, o))
                    .or_default()
                    .entry(v)
                    .or_default()
                    .insert(op.id);
            }
            if orders.duplicates.contains(&(k.0, v)) {
                of_value
                    .entry((k.0, v))
                    .or_default()
                    .entry(o)
                    .or_default()
                    .insert(op.id);
            }
        });
    }
    for ((k, o), values) in at_offset {
        let key = KeyId(k);
        let ops: BTreeSet<OpId> = values.values().flatten().copied().collect();
        let vals: Vec<i64> = values.keys().copied().collect();
        out.report(AnomalyClass::InconsistentOffsets, || {
            anomaly(
                AnomalyClass::InconsistentOffsets,
                Some(key),
                ops.into_iter().collect(),
                format!(
                    "offset {o} of {} was observed holding different values {vals:?}",
                    history.key_name(key)
                ),
            )
        });
    }
    for ((k, v), offsets) in of_value {
        let key = KeyId(k);
        let ops: BTreeSet<OpId> = offsets.values().flatten().copied().collect();
        let offs: Vec<i64> = offsets.keys().copied().collect();
        out.report(AnomalyClass::Duplicate, || {
            anomaly(
                AnomalyClass::Duplicate,
                Some(key),
                ops.into_iter().collect(),
                format!(
                    "value {v} of {} appears at offsets {offs:?}",
                    history.key_name(key)
                ),
            )
        });
    }
}

/// Per key and position: the earliest time a send of the value at that position or any later
/// position was acknowledged (suffix minimum), for realtime lag.
struct AckTimes {
    suffix_min: Vec<Vec<u64>>,
}

impl AckTimes {
    fn new(history: &History, orders: &Orders) -> AckTimes {
        let mut suffix_min: Vec<Vec<u64>> = orders
            .offsets
            .iter()
            .map(|o| vec![u64::MAX; o.len() + 1])
            .collect();
        for op in history.ops() {
            let (Outcome::Ok, Some(done)) = (op.outcome, op.complete_ns) else {
                continue;
            };
            for_each_send(op, |k, v, o| {
                if let Some(p) = orders.pos_of_send(k, v, o) {
                    let slot = &mut suffix_min[k.0 as usize][p as usize];
                    *slot = (*slot).min(done);
                }
            });
        }
        for times in &mut suffix_min {
            for i in (0..times.len().saturating_sub(1)).rev() {
                times[i] = times[i].min(times[i + 1]);
            }
        }
        AckTimes { suffix_min }
    }
}

struct LagTracker {
    series: Vec<(u64, u64)>,
    max: u64,
    max_per_key: Vec<u64>,
}

impl LagTracker {
    fn new(keys: usize) -> LagTracker {
        LagTracker {
            series: Vec::new(),
            max: 0,
            max_per_key: vec![0; keys],
        }
    }

    /// A poll that read up to position p of a key lags by how long the value after p had
    /// already been acknowledged when the poll began.
    fn observe(&mut self, op: &Op, orders: &Orders, acks: &AckTimes) {
        if op.outcome != Outcome::Ok || !matches!(op.kind, OpKind::Poll { .. } | OpKind::Txn { .. })
        {
            return;
        }
        let mut highest: Vec<(u32, i64)> = Vec::new();
        for_each_read(op, |k, o, _| {
            let Some(p) = orders.pos_of_offset(k, o) else {
                return;
            };
            match highest.iter_mut().find(|e| e.0 == k.0) {
                Some(e) => e.1 = e.1.max(p),
                None => highest.push((k.0, p)),
            }
        });
        let mut op_lag = None;
        for (k, p) in highest {
            let acked = acks.suffix_min[k as usize][(p + 1) as usize];
            let lag = op.invoke_ns.saturating_sub(acked);
            self.max_per_key[k as usize] = self.max_per_key[k as usize].max(lag);
            op_lag = Some(op_lag.unwrap_or(0).max(lag));
        }
        if let Some(lag) = op_lag {
            self.max = self.max.max(lag);
            self.series.push((op.invoke_ns, lag));
        }
    }
}

type UnseenSummary = (u64, Vec<(u64, u64)>, Vec<KeyQueueStats>);

/// (key, offset) → (invocation time, value, op) of every read of an offset that holds more
/// than one value, in history order.
type ConflictingReads = BTreeMap<(u32, i64), Vec<(u64, i64, OpId)>>;

fn conflicting_reads(history: &History, orders: &Orders) -> ConflictingReads {
    let mut reads = ConflictingReads::new();
    if orders.conflicts.is_empty() {
        return reads;
    }
    for op in history.ops() {
        for_each_read(op, |k, o, v| {
            if orders.conflicts.contains(&(k.0, o)) {
                reads
                    .entry((k.0, o))
                    .or_default()
                    .push((op.invoke_ns, v, op.id));
            }
        });
    }
    reads
}

fn lost_and_unseen(
    history: &History,
    orders: &Orders,
    facts: &ValueFacts,
    out: &mut Anomalies,
) -> UnseenSummary {
    let mut per_key: Vec<KeyQueueStats> = (0..history.key_count())
        .map(|k| KeyQueueStats {
            key: KeyId(k as u32),
            known_offsets: orders.offsets[k].len() as u64,
            ..Default::default()
        })
        .collect();
    let mut unseen_ops: Vec<Vec<OpId>> = vec![Vec::new(); history.key_count()];
    let mut events: Vec<(u64, i64)> = Vec::new();
    let conflicting = conflicting_reads(history, orders);
    for op in history.ops() {
        if op.outcome != Outcome::Ok {
            continue;
        }
        let acked = op.complete_or_max();
        for_each_send(op, |k, v, o| {
            per_key[k.0 as usize].sends_ok += 1;
            let offset = o.or_else(|| {
                let pos = orders.value_pos.get(&(k.0, v))?;
                orders.offsets[k.0 as usize].get(*pos as usize).copied()
            });
            let overwritten = offset.and_then(|o| {
                conflicting
                    .get(&(k.0, o))?
                    .iter()
                    .find(|(invoked, value, _)| *invoked > acked && *value != v)
            });
            if let Some((_, other, reader)) = overwritten {
                out.report(AnomalyClass::LostWrite, || {
                    anomaly(AnomalyClass::LostWrite, Some(k), vec![op.id, *reader], format!(
                        "value {v} of {} was acknowledged at offset {} by op {}, but op {}, invoked after that, read value {other} there",
                        history.key_name(k), offset.unwrap_or_default(), op.id.0, reader.0))
                });
                return;
            }
            if let Some(read_at) = facts.first_read.get(&(k.0, v)).copied() {
                if read_at > acked {
                    events.push((acked, 1));
                    events.push((read_at, -1));
                }
                return;
            }
            let pos = orders.pos_of_send(k, v, o);
            if pos.is_some_and(|p| p <= facts.max_read_pos[k.0 as usize]) {
                out.report(AnomalyClass::LostWrite, || {
                    anomaly(AnomalyClass::LostWrite, Some(k), vec![op.id], format!(
                        "value {v} of {} was acknowledged at offset {o:?} by op {} but never polled, though later offsets were",
                        history.key_name(k), op.id.0))
                });
            } else {
                events.push((acked, 1));
                per_key[k.0 as usize].unseen += 1;
                unseen_ops[k.0 as usize].push(op.id);
            }
        });
    }
    for (k, ops) in unseen_ops.into_iter().enumerate() {
        if ops.is_empty() {
            continue;
        }
        let key = KeyId(k as u32);
        let count = ops.len();
        out.report(AnomalyClass::Unseen, || {
            anomaly(
                AnomalyClass::Unseen,
                Some(key),
                ops.into_iter().take(10).collect(),
                format!(
                    "{count} acknowledged value(s) of {} were never polled",
                    history.key_name(key)
                ),
            )
        });
    }
    events.sort_unstable();
    let mut timeline = Vec::with_capacity(events.len());
    let mut count: i64 = 0;
    for (t, delta) in events {
        count += delta;
        match timeline.last_mut() {
            Some((last_t, c)) if *last_t == t => *c = count as u64,
            _ => timeline.push((t, count as u64)),
        }
    }
    let unseen_final = per_key.iter().map(|s| s.unseen).sum();
    (unseen_final, downsample(&timeline, SERIES_POINTS), per_key)
}
