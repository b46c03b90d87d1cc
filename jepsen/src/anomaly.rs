//! Anomaly classes and the bounded collector the analyses report into.
//!
//! Every anomaly names its class, the partition it concerns (if one), the operations involved
//! and a one-sentence explanation. A long faulty run can produce millions of instances of one
//! class, so the collector keeps the first few of each class and counts the rest.

use std::collections::BTreeMap;

use crate::history::{KeyId, OpId};

/// The kinds of anomaly the checkers detect. Names follow Jepsen's Kafka workload and Elle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AnomalyClass {
    /// Two different values observed at the same offset of a partition.
    InconsistentOffsets,
    /// One value observed at two different offsets of a partition.
    Duplicate,
    /// An acknowledged send never read, although a later offset of its partition was read.
    LostWrite,
    /// An acknowledged send never read by any consumer (and no later offset read either).
    Unseen,
    /// A consumer's poll skipped over values since its previous poll of that partition.
    PollSkip,
    /// A consumer's poll went back to or before a value it already polled.
    NonmonotonicPoll,
    /// Within one operation, consecutive polled values of a partition skipped values.
    IntPollSkip,
    /// Within one operation, consecutive polled values of a partition went backwards.
    IntNonmonotonicPoll,
    /// Within one operation, consecutive sends to a partition were not adjacent in the log.
    IntSendSkip,
    /// A process's send landed before a send it made in an earlier operation.
    NonmonotonicSend,
    /// Within one operation, a later send landed before an earlier one.
    IntNonmonotonicSend,
    /// A read observed a value whose send or transaction failed (aborted read).
    G1a,
    /// A transaction read a value it wrote itself, before committing.
    PrecommittedRead,
    /// A cycle of write-write dependencies.
    G0,
    /// A cycle of write-write and process-order dependencies.
    G0Process,
    /// A cycle of write-write, process and real-time dependencies.
    G0Realtime,
    /// A cycle of write-read (and write-write) dependencies with at least one write-read edge.
    G1c,
    /// A G1c cycle that also needs process-order edges.
    G1cProcess,
    /// A G1c cycle that also needs real-time edges.
    G1cRealtime,
    /// A dependency cycle exists but the time limit ran out before it was classified.
    CycleUnclassified,
    /// A partition's (or register's) operations admit no linearization.
    NonLinearizable,
}

impl AnomalyClass {
    /// Every class, in report order.
    pub const ALL: [AnomalyClass; 21] = [
        AnomalyClass::InconsistentOffsets,
        AnomalyClass::Duplicate,
        AnomalyClass::LostWrite,
        AnomalyClass::Unseen,
        AnomalyClass::PollSkip,
        AnomalyClass::NonmonotonicPoll,
        AnomalyClass::IntPollSkip,
        AnomalyClass::IntNonmonotonicPoll,
        AnomalyClass::IntSendSkip,
        AnomalyClass::NonmonotonicSend,
        AnomalyClass::IntNonmonotonicSend,
        AnomalyClass::G1a,
        AnomalyClass::PrecommittedRead,
        AnomalyClass::G0,
        AnomalyClass::G0Process,
        AnomalyClass::G0Realtime,
        AnomalyClass::G1c,
        AnomalyClass::G1cProcess,
        AnomalyClass::G1cRealtime,
        AnomalyClass::CycleUnclassified,
        AnomalyClass::NonLinearizable,
    ];

    /// The class's name in reports (Jepsen's spelling).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            AnomalyClass::InconsistentOffsets => "inconsistent-offsets",
            AnomalyClass::Duplicate => "duplicate",
            AnomalyClass::LostWrite => "lost-write",
            AnomalyClass::Unseen => "unseen",
            AnomalyClass::PollSkip => "poll-skip",
            AnomalyClass::NonmonotonicPoll => "nonmonotonic-poll",
            AnomalyClass::IntPollSkip => "int-poll-skip",
            AnomalyClass::IntNonmonotonicPoll => "int-nonmonotonic-poll",
            AnomalyClass::IntSendSkip => "int-send-skip",
            AnomalyClass::NonmonotonicSend => "nonmonotonic-send",
            AnomalyClass::IntNonmonotonicSend => "int-nonmonotonic-send",
            AnomalyClass::G1a => "G1a",
            AnomalyClass::PrecommittedRead => "precommitted-read",
            AnomalyClass::G0 => "G0",
            AnomalyClass::G0Process => "G0-process",
            AnomalyClass::G0Realtime => "G0-realtime",
            AnomalyClass::G1c => "G1c",
            AnomalyClass::G1cProcess => "G1c-process",
            AnomalyClass::G1cRealtime => "G1c-realtime",
            AnomalyClass::CycleUnclassified => "cycle-unclassified",
            AnomalyClass::NonLinearizable => "nonlinearizable",
        }
    }

    /// Looks a class up by its report name.
    #[must_use]
    pub fn from_name(name: &str) -> Option<AnomalyClass> {
        AnomalyClass::ALL.into_iter().find(|c| c.name() == name)
    }
}

/// The kind of a dependency edge in a cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EdgeKind {
    /// Write-write: the source's value precedes the target's in a partition's log.
    Ww,
    /// Write-read: the target read a value the source wrote.
    Wr,
    /// Process order: same process, the source completed before the target began.
    Process,
    /// Real time: the source completed before the target was invoked.
    Realtime,
}

impl EdgeKind {
    /// Short name for reports.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            EdgeKind::Ww => "ww",
            EdgeKind::Wr => "wr",
            EdgeKind::Process => "process",
            EdgeKind::Realtime => "realtime",
        }
    }
}

/// One detected anomaly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Anomaly {
    /// Its class.
    pub class: AnomalyClass,
    /// The partition or register concerned, if the anomaly is about one.
    pub key: Option<KeyId>,
    /// The operations involved, in a meaningful order (for cycles: the cycle's order).
    pub ops: Vec<OpId>,
    /// For cycles: the edge leaving each op of `ops` towards the next (and the last to the
    /// first). Empty for other classes.
    pub edges: Vec<EdgeKind>,
    /// A sentence saying what was observed.
    pub explanation: String,
}

/// A bounded collection of anomalies: the first `cap` of each class, and the count of all.
#[derive(Clone, Debug)]
pub struct Anomalies {
    cap: usize,
    list: Vec<Anomaly>,
    counts: BTreeMap<AnomalyClass, u64>,
}

impl Anomalies {
    /// A collector that keeps at most `cap` anomalies per class.
    #[must_use]
    pub fn new(cap: usize) -> Anomalies {
        Anomalies {
            cap,
            list: Vec::new(),
            counts: BTreeMap::new(),
        }
    }

    /// True if another anomaly of `class` would still be kept (so callers can skip building
    /// its explanation).
    #[must_use]
    pub fn wants(&self, class: AnomalyClass) -> bool {
        self.counts.get(&class).copied().unwrap_or(0) < self.cap as u64
    }

    /// Counts one anomaly of `class`, building and keeping it only while under the cap.
    pub fn report(&mut self, class: AnomalyClass, build: impl FnOnce() -> Anomaly) {
        let keep = self.wants(class);
        *self.counts.entry(class).or_insert(0) += 1;
        if keep {
            let anomaly = build();
            debug_assert_eq!(anomaly.class, class, "built anomaly must match its class");
            self.list.push(anomaly);
        }
    }

    /// Counts and keeps an already built anomaly.
    pub fn push(&mut self, anomaly: Anomaly) {
        let class = anomaly.class;
        self.report(class, || anomaly);
    }

    /// Merges another collector into this one.
    pub fn extend(&mut self, other: Anomalies) {
        for (class, count) in &other.counts {
            *self.counts.entry(*class).or_insert(0) += count;
        }
        for anomaly in other.list {
            if self
                .list
                .iter()
                .filter(|a| a.class == anomaly.class)
                .count()
                < self.cap
            {
                self.list.push(anomaly);
            }
        }
    }

    /// The kept anomalies.
    #[must_use]
    pub fn list(&self) -> &[Anomaly] {
        &self.list
    }

    /// Total count per class, including those not kept.
    #[must_use]
    pub fn counts(&self) -> &BTreeMap<AnomalyClass, u64> {
        &self.counts
    }

    /// Consumes the collector.
    #[must_use]
    pub fn into_parts(self) -> (Vec<Anomaly>, BTreeMap<AnomalyClass, u64>) {
        (self.list, self.counts)
    }
}

/// Shorthand to build a non-cycle anomaly.
#[must_use]
pub fn anomaly(
    class: AnomalyClass,
    key: Option<KeyId>,
    ops: Vec<OpId>,
    explanation: String,
) -> Anomaly {
    Anomaly {
        class,
        key,
        ops,
        edges: Vec::new(),
        explanation,
    }
}
