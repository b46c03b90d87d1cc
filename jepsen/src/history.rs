//! The history model: what clients did, when, and what they were told.
//!
//! A history is a list of operations. Each operation belongs to one logical process (a client
//! thread that runs one operation at a time), has an invocation time and, if the client heard
//! back, a completion time, and ends in one of three outcomes: `ok` (it happened), `fail` (it
//! definitely did not happen) or `info` (indeterminate: it may or may not have happened, for
//! example a produce request that timed out).
//!
//! Keys name partitions (for the Kafka operations and the log operations) or registers. They are
//! interned into dense [`KeyId`]s so the checkers work on integers; the history keeps the table
//! to print names back. Record values are `i64` and are expected to be unique per key, as in
//! Jepsen's Kafka workload: uniqueness is what lets a checker tell which send a polled record came
//! from.
//!
//! The simulator builds a history incrementally through [`History::invoke`] and
//! [`History::complete`]; parsers for files build it the same way, so every history passes the
//! same validation.

use std::collections::BTreeMap;
use std::fmt;

/// A partition or register name, interned to a dense index within one [`History`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId(pub u32);

/// The index of an operation within its [`History`] (its position in [`History::ops`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OpId(pub u32);

/// How an operation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    /// The operation took effect and its outputs are known.
    Ok,
    /// The operation definitely did not take effect.
    Fail,
    /// Indeterminate: the operation may or may not have taken effect (timeout, crash, never
    /// returned).
    Info,
}

/// One record of a partition as a consumer saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Record {
    /// The partition.
    pub key: KeyId,
    /// The record's offset in the partition.
    pub offset: i64,
    /// The record's value.
    pub value: i64,
}

/// One step of a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MicroOp {
    /// Produce `value` to partition `key`; `offset` is the offset the broker assigned, if known.
    Send {
        /// The partition.
        key: KeyId,
        /// The record value.
        value: i64,
        /// The assigned offset, if the client learned it.
        offset: Option<i64>,
    },
    /// One consumer poll and the records it returned, in the order returned.
    Poll {
        /// The records, grouped by partition in the order the client saw them.
        records: Vec<Record>,
    },
}

/// What an operation did. Invocations carry the inputs; completions carry inputs and outputs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpKind {
    /// A single produce: `value` to partition `key`, assigned `offset` if known.
    Send {
        /// The partition.
        key: KeyId,
        /// The record value.
        value: i64,
        /// The assigned offset, if the client learned it.
        offset: Option<i64>,
    },
    /// A consumer poll across the partitions the consumer is assigned.
    Poll {
        /// The records returned, in the order returned.
        records: Vec<Record>,
        /// True when the consumer's assignment changed during this poll (a rebalance), so its
        /// position may legitimately jump.
        rebalanced: bool,
    },
    /// A transaction: a list of sends and polls committed (ok) or aborted (fail) together.
    Txn {
        /// The micro-operations, in program order.
        mops: Vec<MicroOp>,
    },
    /// The consumer assigned itself these partitions (replacing its previous assignment).
    Assign {
        /// The partitions.
        keys: Vec<KeyId>,
    },
    /// The consumer subscribed to the topics of these partitions (the group decides which
    /// partitions it gets).
    Subscribe {
        /// The partitions whose topics are subscribed.
        keys: Vec<KeyId>,
    },
    /// The consumer committed these group offsets (`offset_commit`).
    OffsetCommit {
        /// Partition and the committed next offset.
        offsets: Vec<(KeyId, i64)>,
    },
    /// The process crashed: its client state (position, producer session) is gone.
    Crash,
    /// A log read: the values at offsets `from`, `from + 1`, ... up to the end of the log at
    /// that moment. `values` is `None` when the result is unknown.
    Read {
        /// The log.
        key: KeyId,
        /// The first offset requested.
        from: i64,
        /// The values returned, if known.
        values: Option<Vec<i64>>,
    },
    /// A register write.
    Write {
        /// The register.
        key: KeyId,
        /// The value written.
        value: i64,
    },
    /// A register read; `None` means the register was never written.
    RegisterRead {
        /// The register.
        key: KeyId,
        /// The value read.
        value: Option<i64>,
    },
}

impl OpKind {
    /// A short name of the operation kind, as used in the file formats.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            OpKind::Send { .. } => "send",
            OpKind::Poll { .. } => "poll",
            OpKind::Txn { .. } => "txn",
            OpKind::Assign { .. } => "assign",
            OpKind::Subscribe { .. } => "subscribe",
            OpKind::OffsetCommit { .. } => "offset_commit",
            OpKind::Crash => "crash",
            OpKind::Read { .. } => "read",
            OpKind::Write { .. } => "write",
            OpKind::RegisterRead { .. } => "register_read",
        }
    }
}

/// One operation of a history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Op {
    /// Its index in the history.
    pub id: OpId,
    /// The logical process (client thread) that ran it.
    pub process: u64,
    /// Invocation time in nanoseconds.
    pub invoke_ns: u64,
    /// Completion time in nanoseconds; `None` if the client never heard back.
    pub complete_ns: Option<u64>,
    /// How it ended. An operation that never completed is `Info`.
    pub outcome: Outcome,
    /// What it did, with outputs filled in on completion.
    pub kind: OpKind,
}

impl Op {
    /// The completion time, or `u64::MAX` for an operation that never returned, which may take
    /// effect at any time after its invocation.
    #[must_use]
    pub fn complete_or_max(&self) -> u64 {
        self.complete_ns.unwrap_or(u64::MAX)
    }
}

/// Why an event could not be added to a history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HistoryError {
    /// A process invoked an operation while its previous one was still open.
    ProcessBusy {
        /// The process.
        process: u64,
        /// Its open operation.
        open: OpId,
    },
    /// A completion named an operation that does not exist.
    UnknownOp(OpId),
    /// A completion named an operation that already completed.
    AlreadyCompleted(OpId),
    /// A completion came before its invocation.
    CompletedBeforeInvoked(OpId),
    /// A completion's kind differs from its invocation's kind.
    KindMismatch(OpId),
    /// The history has more operations or keys than a `u32` index holds.
    TooLarge,
}

impl fmt::Display for HistoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HistoryError::ProcessBusy { process, open } => write!(
                f,
                "process {process} invoked an operation while op {} was still open",
                open.0
            ),
            HistoryError::UnknownOp(id) => write!(f, "completion of unknown op {}", id.0),
            HistoryError::AlreadyCompleted(id) => write!(f, "op {} completed twice", id.0),
            HistoryError::CompletedBeforeInvoked(id) => {
                write!(f, "op {} completed before it was invoked", id.0)
            }
            HistoryError::KindMismatch(id) => {
                write!(f, "op {} completed as a different kind of operation", id.0)
            }
            HistoryError::TooLarge => write!(f, "history exceeds 2^32 operations or keys"),
        }
    }
}

impl std::error::Error for HistoryError {}

/// A history of operations, built incrementally from invoke and complete events.
#[derive(Clone, Debug, Default)]
pub struct History {
    ops: Vec<Op>,
    key_names: Vec<String>,
    key_index: BTreeMap<String, KeyId>,
    open: BTreeMap<u64, OpId>,
}

impl History {
    /// An empty history.
    #[must_use]
    pub fn new() -> History {
        History::default()
    }

    /// Interns a key name, returning its id (the same id for the same name).
    ///
    /// # Errors
    /// `TooLarge` beyond 2^32 keys.
    pub fn key(&mut self, name: &str) -> Result<KeyId, HistoryError> {
        if let Some(id) = self.key_index.get(name) {
            return Ok(*id);
        }
        let id = KeyId(u32::try_from(self.key_names.len()).map_err(|_| HistoryError::TooLarge)?);
        self.key_names.push(name.to_string());
        self.key_index.insert(name.to_string(), id);
        Ok(id)
    }

    /// The name of an interned key.
    #[must_use]
    pub fn key_name(&self, key: KeyId) -> &str {
        self.key_names
            .get(key.0 as usize)
            .map_or("?", String::as_str)
    }

    /// Number of distinct keys.
    #[must_use]
    pub fn key_count(&self) -> usize {
        self.key_names.len()
    }

    /// Records the invocation of an operation by `process` at `time_ns`.
    ///
    /// # Errors
    /// `ProcessBusy` if the process still has an open operation (processes are sequential; call
    /// [`History::crash`] first if the client was lost).
    pub fn invoke(
        &mut self,
        process: u64,
        time_ns: u64,
        kind: OpKind,
    ) -> Result<OpId, HistoryError> {
        if let Some(open) = self.open.get(&process) {
            return Err(HistoryError::ProcessBusy {
                process,
                open: *open,
            });
        }
        let id = OpId(u32::try_from(self.ops.len()).map_err(|_| HistoryError::TooLarge)?);
        self.ops.push(Op {
            id,
            process,
            invoke_ns: time_ns,
            complete_ns: None,
            outcome: Outcome::Info,
            kind,
        });
        self.open.insert(process, id);
        Ok(id)
    }

    /// Records the completion of `id` at `time_ns`. `result` replaces the invoked kind (to fill
    /// in outputs such as offsets or polled records); `None` keeps the invoked kind.
    ///
    /// # Errors
    /// If the op is unknown, already completed, completes before its invocation, or `result` is
    /// a different kind of operation.
    pub fn complete(
        &mut self,
        id: OpId,
        time_ns: u64,
        outcome: Outcome,
        result: Option<OpKind>,
    ) -> Result<(), HistoryError> {
        let op = self
            .ops
            .get_mut(id.0 as usize)
            .ok_or(HistoryError::UnknownOp(id))?;
        if op.complete_ns.is_some() || self.open.get(&op.process) != Some(&id) {
            return Err(HistoryError::AlreadyCompleted(id));
        }
        if time_ns < op.invoke_ns {
            return Err(HistoryError::CompletedBeforeInvoked(id));
        }
        if let Some(kind) = result {
            if std::mem::discriminant(&kind) != std::mem::discriminant(&op.kind) {
                return Err(HistoryError::KindMismatch(id));
            }
            op.kind = kind;
        }
        op.complete_ns = Some(time_ns);
        op.outcome = outcome;
        self.open.remove(&op.process);
        Ok(())
    }

    /// Records that `process` crashed at `time_ns`: its open operation (if any) stays
    /// indeterminate and never returns, and a `Crash` marker resets its client state.
    ///
    /// # Errors
    /// `TooLarge` beyond 2^32 operations.
    pub fn crash(&mut self, process: u64, time_ns: u64) -> Result<OpId, HistoryError> {
        self.open.remove(&process);
        let id = self.invoke(process, time_ns, OpKind::Crash)?;
        self.complete(id, time_ns, Outcome::Ok, None)?;
        Ok(id)
    }

    /// Adds an already-complete operation (used by parsers of whole-operation formats).
    /// `complete_ns = None` means the operation never returned; its outcome is then `Info`.
    ///
    /// # Errors
    /// `CompletedBeforeInvoked` or `TooLarge`.
    pub fn push_complete(
        &mut self,
        process: u64,
        invoke_ns: u64,
        complete_ns: Option<u64>,
        outcome: Outcome,
        kind: OpKind,
    ) -> Result<OpId, HistoryError> {
        let id = OpId(u32::try_from(self.ops.len()).map_err(|_| HistoryError::TooLarge)?);
        if complete_ns.is_some_and(|c| c < invoke_ns) {
            return Err(HistoryError::CompletedBeforeInvoked(id));
        }
        let outcome = if complete_ns.is_none() {
            Outcome::Info
        } else {
            outcome
        };
        self.ops.push(Op {
            id,
            process,
            invoke_ns,
            complete_ns,
            outcome,
            kind,
        });
        Ok(id)
    }

    /// All operations, in the order they were invoked or pushed.
    #[must_use]
    pub fn ops(&self) -> &[Op] {
        &self.ops
    }

    /// One operation.
    #[must_use]
    pub fn op(&self, id: OpId) -> Option<&Op> {
        self.ops.get(id.0 as usize)
    }

    /// Number of operations.
    #[must_use]
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// True if the history has no operations.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Operation ids ordered by invocation time (ties by id), the order in which a process's
    /// operations happened.
    #[must_use]
    pub fn by_invoke_time(&self) -> Vec<OpId> {
        let mut ids: Vec<OpId> = self.ops.iter().map(|op| op.id).collect();
        if !self
            .ops
            .windows(2)
            .all(|w| w[0].invoke_ns <= w[1].invoke_ns)
        {
            ids.sort_by_key(|id| (self.ops[id.0 as usize].invoke_ns, *id));
        }
        ids
    }
}
