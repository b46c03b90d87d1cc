//! Splitting a history into per-key sub-histories for the linearizability checkers
//! (P-compositionality), and choosing the fast path or the search for each.
//!
//! Sends are appends; a consumer poll's records are split per partition into runs of
//! consecutive offsets, each a partial read (a poll may return any prefix of what follows its
//! position); log reads are full reads unless the options say otherwise. Failed operations did
//! not happen and are dropped; reads with unknown results constrain nothing and are dropped.
//! Partitions touched by transactions are skipped: a transactional send is not an atomic append
//! visible at one instant, which the queue and cycle analyses cover instead.

use std::collections::{BTreeMap, BTreeSet};

use super::fast::{check_log_fast, FastResult};
use super::models::{LogOp, LogSpec, RegisterOp, RegisterSpec};
use super::{check_operations, LinOp, LinResult, SearchLimits};
use crate::history::{History, KeyId, MicroOp, Op, OpKind, Outcome, Record};

/// How a partition was checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// The log fast path (offsets as the witness order).
    FastPath,
    /// The Wing–Gong–Lowe search.
    Search,
}

/// The linearizability result of one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyResult {
    /// The partition or register.
    pub key: KeyId,
    /// "log" or "register".
    pub model: &'static str,
    /// Operations in its sub-history.
    pub ops: usize,
    /// Which checker decided.
    pub method: Method,
    /// The verdict.
    pub result: LinResult,
}

/// Options for the per-key linearizability check.
#[derive(Clone, Copy, Debug, Default)]
pub struct LinOptions {
    /// Log reads may return a prefix of the rest of the log instead of everything to its end.
    pub partial_reads: bool,
    /// Also check partitions written by transactions (normally skipped).
    pub include_txn_keys: bool,
    /// Search limits, shared by all keys.
    pub limits: SearchLimits,
}

#[derive(Default)]
struct Split {
    logs: BTreeMap<KeyId, Vec<LinOp<LogOp>>>,
    registers: BTreeMap<KeyId, Vec<LinOp<RegisterOp>>>,
    txn_keys: BTreeSet<KeyId>,
}

fn lin_op<O>(op: &Op, must_happen: bool, inner: O) -> LinOp<O> {
    LinOp {
        id: op.id,
        invoke: op.invoke_ns,
        complete: op.complete_ns,
        must_happen,
        op: inner,
    }
}

/// Runs of consecutive offsets of one partition within a poll, as partial reads.
fn poll_runs(records: &[Record]) -> Vec<(KeyId, i64, Vec<i64>)> {
    let mut runs: Vec<(KeyId, i64, Vec<i64>)> = Vec::new();
    for r in records {
        match runs.last_mut() {
            Some((k, from, values)) if *k == r.key && *from + values.len() as i64 == r.offset => {
                values.push(r.value);
            }
            _ => runs.push((r.key, r.offset, vec![r.value])),
        }
    }
    runs
}

fn split(history: &History, options: &LinOptions) -> Split {
    let mut s = Split::default();
    for op in history.ops() {
        if op.outcome == Outcome::Fail {
            continue;
        }
        let ok = op.outcome == Outcome::Ok;
        match &op.kind {
            OpKind::Send { key, value, offset } => {
                let append = LogOp::Append {
                    value: *value,
                    offset: *offset,
                };
                s.logs
                    .entry(*key)
                    .or_default()
                    .push(lin_op(op, ok || offset.is_some(), append));
            }
            OpKind::Poll { records, .. } => {
                for (key, from, values) in poll_runs(records) {
                    s.logs.entry(key).or_default().push(lin_op(
                        op,
                        true,
                        LogOp::read(from, values, true),
                    ));
                }
            }
            OpKind::Read {
                key,
                from,
                values: Some(values),
            } => {
                let read = LogOp::read(*from, values.clone(), options.partial_reads);
                s.logs.entry(*key).or_default().push(lin_op(op, true, read));
            }
            OpKind::Write { key, value } => {
                s.registers.entry(*key).or_default().push(lin_op(
                    op,
                    ok,
                    RegisterOp::Write(*value),
                ));
            }
            OpKind::RegisterRead { key, value } if ok => {
                s.registers.entry(*key).or_default().push(lin_op(
                    op,
                    true,
                    RegisterOp::Read(*value),
                ));
            }
            OpKind::Txn { mops } => {
                for mop in mops {
                    match mop {
                        MicroOp::Send { key, .. } => {
                            s.txn_keys.insert(*key);
                        }
                        MicroOp::Poll { records } => {
                            s.txn_keys.extend(records.iter().map(|r| r.key))
                        }
                    }
                }
            }
            _ => {}
        }
    }
    s
}

/// Checks every key's sub-history, in key order.
#[must_use]
pub fn check_keys(history: &History, options: &LinOptions) -> Vec<KeyResult> {
    let s = split(history, options);
    let mut results = Vec::new();
    for (key, ops) in &s.logs {
        if s.txn_keys.contains(key) && !options.include_txn_keys {
            continue;
        }
        let (method, result) = match check_log_fast(ops) {
            FastResult::Ok => (Method::FastPath, LinResult::Ok),
            FastResult::Illegal(w) => (Method::FastPath, LinResult::Illegal(w)),
            FastResult::NotApplicable => (
                Method::Search,
                check_operations(&mut LogSpec::new(), ops, &options.limits),
            ),
        };
        results.push(KeyResult {
            key: *key,
            model: "log",
            ops: ops.len(),
            method,
            result,
        });
    }
    for (key, ops) in &s.registers {
        let result = check_operations(&mut RegisterSpec::default(), ops, &options.limits);
        results.push(KeyResult {
            key: *key,
            model: "register",
            ops: ops.len(),
            method: Method::Search,
            result,
        });
    }
    results.sort_by_key(|r| r.key);
    results
}
