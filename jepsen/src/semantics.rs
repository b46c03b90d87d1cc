//! The written semantics (SEMANTICS.md) as code: for each anomaly class and workload, whether
//! Seedlog forbids it, and why.
//!
//! The verdict is computed only from this table, so the document and the checker cannot drift
//! apart silently: `SEMANTICS.md` is rendered from [`rule`] by a test that fails when the file
//! is out of date.

use crate::anomaly::{Anomaly, AnomalyClass, EdgeKind};

/// The guarantees the client configuration asked for, which decide what is an anomaly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Workload {
    /// Producers use transactions and consumers read with `isolation.level=read_committed`.
    pub transactions: bool,
    /// Consumers subscribe (group-managed assignment) rather than assign.
    pub subscribe: bool,
    /// Producers use `acks=all` (false: `acks=1`).
    pub acks_all: bool,
    /// Producers are idempotent (`enable.idempotence=true`).
    pub idempotent: bool,
    /// The run ended with final polls after faults healed, so every acknowledged value should
    /// have been polled.
    pub drained: bool,
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            transactions: false,
            subscribe: false,
            acks_all: true,
            idempotent: true,
            drained: false,
        }
    }
}

/// Whether an anomaly is allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rule {
    /// Seedlog guarantees this never happens: the history is invalid.
    Forbidden,
    /// Possible under this configuration by design: reported, not a failure.
    Allowed,
    /// The checker cannot tell whether it is allowed: the verdict is unknown.
    Undecided,
}

impl Rule {
    /// Lower-case name for reports.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Rule::Forbidden => "forbidden",
            Rule::Allowed => "allowed",
            Rule::Undecided => "undecided",
        }
    }
}

/// The rule for one detected anomaly under `workload`, with the reason.
#[must_use]
pub fn rule_for(anomaly: &Anomaly, workload: &Workload) -> (Rule, &'static str) {
    let has_ww = anomaly.edges.contains(&EdgeKind::Ww);
    rule(anomaly.class, has_ww, workload)
}

/// The rule for `class` under `workload`. `cycle_has_ww` matters only for cycle classes: whether
/// the cycle contains a write-write edge.
#[must_use]
pub fn rule(class: AnomalyClass, cycle_has_ww: bool, w: &Workload) -> (Rule, &'static str) {
    use AnomalyClass as C;
    use Rule::{Allowed, Forbidden, Undecided};
    match class {
        C::InconsistentOffsets | C::LostWrite if !w.acks_all => (Allowed,
            "with acks=1 the leader acknowledges before followers have the record; a failover truncates it and the offset is reused"),
        C::InconsistentOffsets => (Forbidden,
            "an acks=all record is on every ISR member before it is acknowledged or served, and committed data never changes (invariants 1, 2)"),
        C::LostWrite => (Forbidden,
            "an acks=all acknowledged record survives any failure the replication factor tolerates (invariant 1)"),
        C::Duplicate if !w.idempotent && !w.transactions => (Allowed,
            "a non-idempotent producer that retries after a lost response appends the record again"),
        C::Duplicate => (Forbidden,
            "the idempotent producer's sequence numbers let the leader drop retried batches (invariant 7)"),
        C::Unseen if w.drained && w.acks_all => (Forbidden,
            "after faults heal the final polls must reach every acknowledged record (invariant 9)"),
        C::Unseen => (Allowed,
            "without final polls after healing, consumers may simply not have caught up yet (or, with acks=1, the record was lost)"),
        C::PollSkip | C::NonmonotonicPoll => (Forbidden,
            "between assign/subscribe calls, rebalances and crashes a consumer's position advances one record at a time; the checker resets the position at each of those events"),
        C::IntPollSkip | C::IntNonmonotonicPoll => (Forbidden,
            "one poll returns consecutive records of a partition in offset order"),
        C::IntSendSkip => (Allowed,
            "other producers' records may land between two sends of one operation, transactional or not"),
        C::NonmonotonicSend if !w.acks_all => (Allowed,
            "with acks=1 an acknowledged send can be truncated and its offset reused by a later send"),
        C::NonmonotonicSend => (Forbidden,
            "a send that begins after an earlier send was acknowledged is appended after it"),
        C::IntNonmonotonicSend if w.idempotent && w.acks_all => (Forbidden,
            "an idempotent producer's batches to a partition are appended in sequence-number order"),
        C::IntNonmonotonicSend => (Allowed,
            "without idempotence (or with acks=1) retries of in-flight batches can reorder them"),
        C::G1a => (Forbidden,
            "read_committed never returns aborted data, and a failed send definitely did not happen (invariant 7)"),
        C::PrecommittedRead => (Forbidden,
            "read_committed consumers only see records below the last stable offset, never a still-open transaction's own sends"),
        C::G0 | C::G0Process | C::G0Realtime | C::G1c | C::G1cProcess | C::G1cRealtime
            if w.transactions && cycle_has_ww => (Allowed,
            "Kafka appends a transaction's records when they are sent, not at commit, so offset order (ww) need not agree with commit order"),
        C::G0 | C::G0Process | C::G0Realtime | C::G1c | C::G1cProcess | C::G1cRealtime => (Forbidden,
            "write-read, process and real-time edges all follow commit order, so a cycle of them (or any cycle without transactions) is impossible"),
        C::CycleUnclassified if w.transactions => (Undecided,
            "the cycle may be an allowed write-write cycle; the time limit ran out before it was classified"),
        C::CycleUnclassified => (Forbidden,
            "without transactions any dependency cycle contradicts per-partition linearizability"),
        C::NonLinearizable => (Forbidden,
            "per-partition produce/fetch histories and registers are linearizable (invariant 6)"),
    }
}

/// Renders the semantics table as Markdown: one section per workload, one row per class.
#[must_use]
pub fn render_markdown() -> String {
    let mut out = String::from(SEMANTICS_PREAMBLE);
    for (title, w) in documented_workloads() {
        out.push_str(&format!(
            "\n## {title}\n\n| anomaly | verdict | reason |\n|---|---|---|\n"
        ));
        for class in AnomalyClass::ALL {
            let cycle = matches!(
                class,
                AnomalyClass::G0
                    | AnomalyClass::G0Process
                    | AnomalyClass::G0Realtime
                    | AnomalyClass::G1c
                    | AnomalyClass::G1cProcess
                    | AnomalyClass::G1cRealtime
            );
            let variants: &[(bool, &str)] = if cycle && w.transactions {
                &[(true, " (with a ww edge)"), (false, " (no ww edge)")]
            } else {
                &[(false, "")]
            };
            for (ww, note) in variants {
                let (r, reason) = rule(class, *ww, &w);
                out.push_str(&format!(
                    "| {}{note} | {} | {reason} |\n",
                    class.name(),
                    r.name()
                ));
            }
        }
    }
    out
}

/// The workloads SEMANTICS.md documents.
#[must_use]
pub fn documented_workloads() -> Vec<(&'static str, Workload)> {
    let base = Workload::default();
    vec![
        ("assign, acks=all, idempotent, no transactions", base),
        (
            "subscribe, acks=all, idempotent, no transactions",
            Workload {
                subscribe: true,
                ..base
            },
        ),
        (
            "assign, acks=1, not idempotent, no transactions",
            Workload {
                acks_all: false,
                idempotent: false,
                ..base
            },
        ),
        (
            "transactions (read_committed), acks=all, assign or subscribe",
            Workload {
                transactions: true,
                ..base
            },
        ),
        (
            "any of the above, drained by final polls after healing",
            Workload {
                drained: true,
                ..base
            },
        ),
    ]
}

const SEMANTICS_PREAMBLE: &str = "# Seedlog consistency semantics

This file is generated from `jepsen/src/semantics.rs` (`seedlog_jepsen::semantics::render_markdown`);
a test fails when it is out of date. The checker's verdict uses exactly this table: a history is
**invalid** if it shows any *forbidden* anomaly, **unknown** if a check ran out of time or found
something *undecided*, and **valid** otherwise. *Allowed* anomalies are reported but do not fail a
run.

Anomaly definitions follow Jepsen's Kafka workload and Elle (see `src/queue.rs` and
`src/cycle.rs`). Consumer positions (poll-skip, nonmonotonic-poll) restart at every assign,
subscribe, reported rebalance (a poll with `rebalanced: true`), crash, and indeterminate
operation, so a subscribe workload must record rebalances for its polls. Linearizability is
checked per partition for non-transactional partitions with acks=all, and for every register.
Unseen values are an anomaly only for a drained run (`--drained`, `Workload::drained`).
";
