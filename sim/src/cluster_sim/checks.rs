//! The invariants of DESIGN §6, checked as the run goes.
//!
//! From the outside (the wire and the disks), as events happen:
//! - **1, 2** acknowledged and committed data never changes: every acks=all acknowledgement and
//!   every record a consumer reads (reads only go up to the high watermark, so they are
//!   committed) pins `(partition, offset) → value`; a second value at a pinned offset, a value
//!   read from a partition it was not sent to, or a value never sent, is a violation. At the
//!   end of the liveness phase every replica's log on disk must equal the committed log.
//! - **3** at most one leader per (partition, leader epoch) across every Metadata answer any
//!   client got; at most one controller leader per term (the nodes' `QuorumLeader` events);
//!   no controller voter grants two votes in one term (seen on the wire).
//! - **5** the high watermark a consumer sees never decreases within a leader epoch (in real
//!   time: a fetch that began after another completed must not see less) nor across epochs;
//!   `log start ≤ HW`, `LSO ≤ HW`; fetched offsets are dense from the fetch offset and below the
//!   HW; a fetch at or below a HW already seen is never OFFSET_OUT_OF_RANGE.
//!
//! From inside the nodes, through [`inspect`] (the inspection hooks of `Node`), after every
//! event that node handled — [`Checks::check_node_view`] is the function to extend:
//! - **3** one leader per (partition, epoch) among the replicas themselves; one active
//!   controller per term;
//! - **4** (StrongIsr) everything below the leader's HW is durable on every ISR member that
//!   follows the same epoch, with the same leader-epoch history (members that may lose data
//!   to a wiped disk or rot are left to the end checks);
//! - **5** `log start ≤ HW ≤ LEO`, and a leader's HW never decreases within its epoch.
//!
//! Liveness (**9**) is checked by the simulation's liveness phase; linearizability, lost and
//! duplicated writes and the other queue anomalies by the jepsen checkers at the end.

use super::history::PartitionKey;
use super::kafka::{self, FetchTarget, FetchedPartition, MetadataView, PartitionMeta};
use super::params::{ClusterSimParams, TopicSpec};
use crate::disk::{DiskFaults, SimDisk};
use seedlog_core::cluster::{Node, PeerMessage};
use seedlog_core::io::{DiskOp, DiskOutcome};
use seedlog_core::log::segment::Segment;
use seedlog_core::raft::{Message, NodeId};
use seedlog_core::record_batch::{self, BatchIter};
use seedlog_core::{Instant, Prng};
use std::collections::{BTreeMap, BTreeSet};

/// DESIGN §6 item 5: the HW a consumer can observe never decreases, also across a leader
/// change (a new leader must not expose a lower HW than the old one did).
const HW_MONOTONIC_ACROSS_EPOCHS: bool = true;

/// One partition replica as its node sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaView {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// This node leads the partition.
    pub is_leader: bool,
    /// The leader epoch this replica is in.
    pub leader_epoch: i32,
    /// Its high watermark.
    pub high_watermark: i64,
    /// Its log end offset.
    pub log_end_offset: i64,
    /// Its log start offset.
    pub log_start_offset: i64,
    /// Everything below this is durable on this replica.
    pub durable_offset: i64,
    /// The ISR as the leader maintains it (empty on a follower).
    pub isr: Vec<NodeId>,
    /// The leader-epoch cache: `(epoch, start offset)`, ascending.
    pub epochs: Vec<(i32, i64)>,
}

/// The controller as one node sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ControllerView {
    /// The quorum term.
    pub term: u64,
    /// This node is the active controller.
    pub active: bool,
}

/// What the checker can see inside one running node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeView {
    /// Every partition replica the node hosts.
    pub replicas: Vec<ReplicaView>,
    /// The controller quorum, if the node is a voter.
    pub controller: Option<ControllerView>,
}

/// What the checker can see inside a running node, through `Node`'s inspection hooks (the
/// broker's replica views and the quorum voter's state). Offline replicas (a faulted log) are
/// left out: they hold no role to check.
pub fn inspect(node: &Node) -> Option<NodeView> {
    let replicas = node
        .broker()
        .replica_views()
        .into_iter()
        .filter(|v| v.leading.is_some())
        .map(|v| ReplicaView {
            topic: v.topic,
            partition: v.partition.max(0) as u32,
            is_leader: v.leading == Some(true),
            leader_epoch: v.leader_epoch,
            high_watermark: v.high_watermark,
            log_end_offset: v.log_end_offset,
            log_start_offset: v.log_start_offset,
            durable_offset: v.durable_offset,
            isr: v.isr,
            epochs: v.epochs,
        })
        .collect();
    let controller = node.quorum().map(|q| ControllerView {
        term: q.term(),
        active: node.controller().is_active(),
    });
    Some(NodeView {
        replicas,
        controller,
    })
}

/// The checker's state.
#[derive(Debug, Default)]
pub(crate) struct Checks {
    topics: Vec<TopicSpec>,
    violations: Vec<String>,
    /// Every value ever sent, and where to.
    sent: BTreeMap<i64, PartitionKey>,
    /// Committed data: partition → offset → value (from acks=all and from reads).
    committed: BTreeMap<PartitionKey, BTreeMap<i64, i64>>,
    /// One past the highest acknowledged acks=all offset of each partition.
    acked_end: BTreeMap<PartitionKey, i64>,
    /// Leaders named by Metadata answers: (partition, epoch) → node.
    metadata_leaders: BTreeMap<(PartitionKey, i32), NodeId>,
    /// The newest Metadata answer about each partition (highest epoch).
    latest_meta: BTreeMap<PartitionKey, PartitionMeta>,
    /// Controller quorum leaders by term.
    quorum_leaders: BTreeMap<u64, NodeId>,
    /// Votes granted: (voter, term) → candidate.
    votes: BTreeMap<(NodeId, u64), NodeId>,
    /// The highest HW consumers saw per (partition, leader epoch), and when the fetch that saw
    /// it completed.
    hw_by_epoch: BTreeMap<(PartitionKey, i32), (i64, Instant)>,
    /// The highest HW any consumer saw per partition.
    hw_seen: BTreeMap<PartitionKey, i64>,
    /// The last view of each running node, with its incarnation.
    views: BTreeMap<NodeId, (u64, NodeView)>,
    /// Leaders per (partition index, epoch), as the replicas claim.
    view_leaders: BTreeMap<(u64, i32), NodeId>,
    /// Active controllers per term, as the nodes claim.
    controller_terms: BTreeMap<u64, NodeId>,
    /// Nodes that lost synced data.
    destroyed: BTreeSet<NodeId>,
    /// Nodes that may lose synced data (a wiped or rotted replica may sit in the ISR until
    /// the controller learns of it; whether it can lose acknowledged data is what the end
    /// checks and the history decide).
    destructible: BTreeSet<NodeId>,
}

impl Checks {
    /// Checks for a run of `params`.
    pub fn new(params: &ClusterSimParams) -> Checks {
        Checks {
            topics: params.topics.clone(),
            destructible: params.destructible.iter().copied().collect(),
            ..Checks::default()
        }
    }

    /// The workload's topics.
    pub fn topics(&self) -> &[TopicSpec] {
        &self.topics
    }

    /// Reports a broken promise.
    pub fn violation(&mut self, what: String) {
        self.violations.push(what);
    }

    /// Violations found since the last call.
    pub fn take_violations(&mut self) -> Vec<String> {
        std::mem::take(&mut self.violations)
    }

    /// One past the highest acknowledged acks=all offset of `partition`.
    pub fn acked_end(&self, partition: &PartitionKey) -> i64 {
        self.acked_end.get(partition).copied().unwrap_or(0)
    }

    /// The committed log of `partition` as far as clients saw it.
    pub fn committed(&self, partition: &PartitionKey) -> Option<&BTreeMap<i64, i64>> {
        self.committed.get(partition)
    }

    /// The newest Metadata answer about `partition`.
    pub fn latest_meta(&self, partition: &PartitionKey) -> Option<&PartitionMeta> {
        self.latest_meta.get(partition)
    }

    /// The controller quorum leader of the highest term seen.
    pub fn quorum_leader(&self) -> Option<NodeId> {
        self.quorum_leaders.values().next_back().copied()
    }

    /// True once the nodes' inspection hooks answered.
    pub fn sees_inside(&self) -> bool {
        !self.views.is_empty()
    }

    /// Node `node`'s last view of its replica of `partition`.
    pub fn replica_view(&self, node: NodeId, partition: &PartitionKey) -> Option<&ReplicaView> {
        let (_, view) = self.views.get(&node)?;
        view.replicas
            .iter()
            .find(|r| r.partition == partition.1 && r.topic == partition.0)
    }

    /// The leader of `partition` in the highest leader epoch any running node claims.
    pub fn leader_view(&self, partition: &PartitionKey) -> Option<(NodeId, &ReplicaView)> {
        self.views
            .iter()
            .filter_map(|(node, (_, view))| {
                view.replicas
                    .iter()
                    .find(|r| r.is_leader && r.partition == partition.1 && r.topic == partition.0)
                    .map(|r| (*node, r))
            })
            .max_by_key(|(_, r)| r.leader_epoch)
    }

    /// A value was handed to a producer for `partition`.
    pub fn on_send(&mut self, value: i64, partition: &PartitionKey) {
        self.sent.insert(value, partition.clone());
    }

    /// Pins `value` at `offset` of `partition`: it was acknowledged there or read there.
    fn pin(&mut self, partition: &PartitionKey, offset: i64, value: i64, how: &str) {
        match self.sent.get(&value) {
            Some(p) if p == partition => {}
            Some(p) => self.violation(format!(
                "value {value} sent to {}-{} {how} {}-{} at offset {offset}",
                p.0, p.1, partition.0, partition.1
            )),
            None => self.violation(format!(
                "value {value} {how} {}-{} at offset {offset} was never sent",
                partition.0, partition.1
            )),
        }
        let log = self.committed.entry(partition.clone()).or_default();
        match log.insert(offset, value) {
            Some(old) if old != value => {
                let what = format!(
                    "offset {offset} of {}-{} held value {old} and then {value} ({how}): committed data changed",
                    partition.0, partition.1
                );
                self.violation(what);
            }
            _ => {}
        }
    }

    /// An acks=all produce was acknowledged: `value` is at `offset`.
    pub fn on_acked(
        &mut self,
        _now: Instant,
        node: NodeId,
        partition: &PartitionKey,
        offset: i64,
        value: i64,
    ) {
        self.pin(
            partition,
            offset,
            value,
            &format!("acknowledged by node {node} in"),
        );
        let end = self.acked_end.entry(partition.clone()).or_insert(0);
        *end = (*end).max(offset + 1);
    }

    /// A Metadata answer from `node`.
    pub fn on_metadata(&mut self, _now: Instant, node: NodeId, view: &MetadataView) {
        for p in &view.partitions {
            self.check_partition_meta(node, p);
            let newer = self
                .latest_meta
                .get(&p.partition)
                .is_none_or(|m| p.leader_epoch >= m.leader_epoch);
            if newer && p.error == kafka::NONE {
                self.latest_meta.insert(p.partition.clone(), p.clone());
            }
        }
    }

    fn check_partition_meta(&mut self, node: NodeId, p: &PartitionMeta) {
        let name = format!("{}-{}", p.partition.0, p.partition.1);
        if p.leader >= 1 && p.leader_epoch >= 0 {
            let leader = p.leader as NodeId;
            let key = (p.partition.clone(), p.leader_epoch);
            match self.metadata_leaders.insert(key, leader) {
                Some(other) if other != leader => self.violation(format!(
                    "two leaders of {name} in leader epoch {}: {other} and {leader} (Metadata from node {node})",
                    p.leader_epoch
                )),
                _ => {}
            }
        }
        if p.error != kafka::NONE || p.leader < 1 {
            return;
        }
        if !p.replicas.contains(&p.leader) || !p.isr.contains(&p.leader) {
            self.violation(format!(
                "node {node} names {} leader of {name} outside its replicas {:?} or ISR {:?}",
                p.leader, p.replicas, p.isr
            ));
        }
        if let Some(stray) = p.isr.iter().find(|r| !p.replicas.contains(r)) {
            self.violation(format!(
                "node {node} lists {stray} in the ISR of {name} but not among its replicas {:?}",
                p.replicas
            ));
        }
        let rf = self
            .topics
            .iter()
            .find(|t| t.name == p.partition.0)
            .map(|t| t.replication_factor as usize);
        if rf.is_some_and(|rf| rf != p.replicas.len()) {
            self.violation(format!(
                "node {node} lists replicas {:?} for {name}, whose replication factor is {rf:?}",
                p.replicas
            ));
        }
    }

    /// A fetch that began at `invoked` got `part` back from `node`.
    pub fn on_fetch(
        &mut self,
        now: Instant,
        invoked: Instant,
        node: NodeId,
        target: &FetchTarget,
        part: &FetchedPartition,
    ) {
        let p = &part.partition;
        let name = format!("{}-{} from node {node}", p.0, p.1);
        if let Some(why) = &part.corrupt {
            self.violation(format!("fetch of {name} returned a corrupt batch: {why}"));
        }
        let seen = self.hw_seen.get(p).copied().unwrap_or(0);
        if part.error == kafka::OFFSET_OUT_OF_RANGE
            && target.leader_epoch >= 0
            && target.offset <= seen
        {
            self.violation(format!(
                "fetch of {name} at offset {} answered OFFSET_OUT_OF_RANGE in leader epoch {}, but the HW was already {seen}: committed data is gone",
                target.offset, target.leader_epoch
            ));
        }
        if part.error != kafka::NONE {
            return;
        }
        let hw = part.high_watermark;
        if part.log_start_offset > hw
            || (part.last_stable_offset >= 0 && part.last_stable_offset > hw)
        {
            self.violation(format!(
                "fetch of {name}: log start {} / LSO {} above the HW {hw}",
                part.log_start_offset, part.last_stable_offset
            ));
        }
        for (expected, (offset, value)) in (target.offset..).zip(&part.records) {
            if *offset != expected {
                self.violation(format!(
                    "fetch of {name} from offset {} returned offset {offset} where {expected} was due",
                    target.offset
                ));
                break;
            }
            if *offset >= hw {
                self.violation(format!(
                    "fetch of {name} returned offset {offset} at or above the HW {hw}"
                ));
                break;
            }
            match value {
                Some(value) => self.pin(p, *offset, *value, &format!("read from node {node} in")),
                None => self.violation(format!(
                    "fetch of {name} returned a record without a value at {offset}"
                )),
            }
        }
        self.check_hw(now, invoked, &name, target, hw);
        let max = self.hw_seen.entry(p.clone()).or_insert(0);
        *max = (*max).max(hw);
    }

    /// DESIGN §6 item 5, as consumers see it.
    fn check_hw(
        &mut self,
        now: Instant,
        invoked: Instant,
        name: &str,
        target: &FetchTarget,
        hw: i64,
    ) {
        let epoch = target.leader_epoch;
        if epoch < 0 {
            // An unfenced fetch (before v9) may reach a deposed leader; nothing to compare.
            return;
        }
        let p = &target.partition;
        let earlier = self
            .hw_by_epoch
            .range((p.clone(), i32::MIN)..=(p.clone(), epoch))
            .filter(|((_, e), (_, done))| {
                *done < invoked && (*e == epoch || HW_MONOTONIC_ACROSS_EPOCHS)
            })
            .map(|((_, e), (h, _))| (*h, *e))
            .max();
        if let Some((before, in_epoch)) = earlier.filter(|(h, _)| *h > hw) {
            self.violation(format!(
                "HW of {name} in leader epoch {epoch} is {hw}, below the {before} a fetch in epoch {in_epoch} saw before this one began"
            ));
        }
        let entry = self
            .hw_by_epoch
            .entry((p.clone(), epoch))
            .or_insert((hw, now));
        if hw >= entry.0 {
            *entry = (hw, now);
        }
    }

    /// ListOffsets(earliest) answered `offset`: no retention runs, so the log starts at 0.
    pub fn on_log_start(&mut self, node: NodeId, partition: &PartitionKey, offset: i64) {
        if offset != 0 {
            self.violation(format!(
                "node {node} says {}-{} starts at offset {offset}; nothing deleted any records",
                partition.0, partition.1
            ));
        }
    }

    /// A peer message leaves `from` (the wire checks).
    pub fn on_peer_send(&mut self, from: NodeId, to: NodeId, message: &PeerMessage) {
        if let PeerMessage::Raft(Message::VoteResponse {
            term,
            granted: true,
        }) = message
        {
            match self.votes.insert((from, *term), to) {
                Some(earlier) if earlier != to => self.violation(format!(
                    "voter {from} voted for {earlier} and {to} in term {term}"
                )),
                _ => {}
            }
        }
    }

    /// Node `node` reported the quorum leader of `term`.
    pub fn on_quorum_leader(&mut self, node: NodeId, term: u64, leader: Option<NodeId>) {
        if leader != Some(node) {
            return;
        }
        match self.quorum_leaders.insert(term, node) {
            Some(other) if other != node => self.violation(format!(
                "two controller quorum leaders in term {term}: {other} and {node}"
            )),
            _ => {}
        }
    }

    /// Node `id`'s process stopped.
    pub fn on_node_down(&mut self, id: NodeId) {
        self.views.remove(&id);
    }

    /// Node `id` lost synced data.
    pub fn on_destroyed(&mut self, id: NodeId) {
        self.destroyed.insert(id);
    }

    /// Node `id` (this incarnation) handled an event: inspect it and check what it shows.
    pub fn after_node_event(&mut self, now: Instant, id: NodeId, incarnation: u64, node: &Node) {
        let Some(view) = inspect(node) else {
            return;
        };
        let before = self
            .views
            .remove(&id)
            .filter(|(i, _)| *i == incarnation)
            .map(|(_, v)| v);
        self.check_node_view(now, id, before.as_ref(), &view);
        self.views.insert(id, (incarnation, view));
    }

    /// A partition's index among the workload's partitions, for compact keys.
    fn partition_index(&self, topic: &str, partition: u32) -> u64 {
        let mut index = 0;
        for t in &self.topics {
            if t.name == topic {
                return index + u64::from(partition);
            }
            index += u64::from(t.partitions);
        }
        u64::MAX
    }

    /// The per-event invariants over one node's fresh view (`before`: its previous view in
    /// the same incarnation) and the other nodes' last views.
    pub fn check_node_view(
        &mut self,
        _now: Instant,
        id: NodeId,
        before: Option<&NodeView>,
        view: &NodeView,
    ) {
        for r in &view.replicas {
            if !(r.log_start_offset <= r.high_watermark && r.high_watermark <= r.log_end_offset) {
                self.violation(format!(
                    "{}-{} on node {id}: log start {} ≤ HW {} ≤ LEO {} does not hold",
                    r.topic, r.partition, r.log_start_offset, r.high_watermark, r.log_end_offset
                ));
            }
            if r.durable_offset > r.log_end_offset {
                self.violation(format!(
                    "{}-{} on node {id}: durable offset {} beyond the LEO {}",
                    r.topic, r.partition, r.durable_offset, r.log_end_offset
                ));
            }
            if !r.is_leader {
                continue;
            }
            let key = (self.partition_index(&r.topic, r.partition), r.leader_epoch);
            match self.view_leaders.insert(key, id) {
                Some(other) if other != id => self.violation(format!(
                    "two leaders of {}-{} in leader epoch {}: nodes {other} and {id}",
                    r.topic, r.partition, r.leader_epoch
                )),
                _ => {}
            }
            let earlier = before.and_then(|b| {
                b.replicas.iter().find(|o| {
                    o.partition == r.partition
                        && o.is_leader
                        && o.leader_epoch == r.leader_epoch
                        && o.topic == r.topic
                })
            });
            if let Some(o) = earlier.filter(|o| o.high_watermark > r.high_watermark) {
                self.violation(format!(
                    "{}-{} on node {id}: leader HW went from {} down to {} in epoch {}",
                    r.topic, r.partition, o.high_watermark, r.high_watermark, r.leader_epoch
                ));
            }
        }
        if let Some(c) = view.controller.filter(|c| c.active) {
            match self.controller_terms.insert(c.term, id) {
                Some(other) if other != id => self.violation(format!(
                    "two active controllers in term {}: nodes {other} and {id}",
                    c.term
                )),
                _ => {}
            }
        }
        self.check_strong_isr(id, view);
    }

    /// StrongIsr: below a leader's HW, every ISR member in the same epoch holds the data
    /// durably and agrees on the epoch history. `fresh` is node `id`'s view, not yet stored.
    fn check_strong_isr(&mut self, id: NodeId, fresh: &NodeView) {
        let view_of = |node: NodeId| -> Option<&NodeView> {
            if node == id {
                Some(fresh)
            } else {
                self.views.get(&node).map(|(_, v)| v)
            }
        };
        let mut found = Vec::new();
        let nodes = std::iter::once(id).chain(self.views.keys().copied().filter(|n| *n != id));
        for leader in nodes {
            let Some(leader_view) = view_of(leader) else {
                continue;
            };
            for l in leader_view.replicas.iter().filter(|r| r.is_leader) {
                let members = l.isr.iter().copied();
                for member in members.filter(|m| *m != leader && !self.destructible.contains(m)) {
                    let Some(m) = view_of(member).and_then(|v| {
                        v.replicas.iter().find(|r| {
                            r.partition == l.partition
                                && r.leader_epoch == l.leader_epoch
                                && r.topic == l.topic
                        })
                    }) else {
                        continue;
                    };
                    if m.durable_offset < l.high_watermark {
                        found.push(format!(
                            "StrongIsr: {}-{} leader {leader} has HW {} but ISR member {member} holds only {} durably (epoch {})",
                            l.topic, l.partition, l.high_watermark, m.durable_offset, l.leader_epoch
                        ));
                    }
                    let below = |epochs: &[(i32, i64)]| {
                        epochs
                            .iter()
                            .take_while(|(_, start)| *start < l.high_watermark)
                            .count()
                    };
                    let (ml, ll) = (below(&m.epochs), below(&l.epochs));
                    if ml != ll || m.epochs[..ml] != l.epochs[..ll] {
                        found.push(format!(
                            "StrongIsr: {}-{} leader {leader} and ISR member {member} disagree on leader epochs below the HW {}: {:?} vs {:?}",
                            l.topic, l.partition, l.high_watermark, l.epochs, m.epochs
                        ));
                    }
                }
            }
        }
        for what in found {
            self.violation(what);
        }
    }
}

/// One record as a replica's log files hold it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoredRecord {
    /// Offset.
    pub offset: i64,
    /// The record's value, if it is one of the workload's.
    pub value: Option<i64>,
    /// The batch's partition leader epoch.
    pub leader_epoch: i32,
}

/// Reads a partition's log from a node's disk (what the page cache shows), segment by
/// segment, up to the first batch that does not parse.
pub fn read_log(disk: &mut SimDisk, dir: &str) -> Vec<StoredRecord> {
    let prefix = format!("{dir}/");
    let mut segments: Vec<(i64, String)> = disk
        .paths()
        .into_iter()
        .filter_map(|p| {
            let base = Segment::parse_file_name(p.strip_prefix(&prefix)?)?;
            Some((base, p))
        })
        .collect();
    segments.sort();
    let mut records = Vec::new();
    let mut prng = Prng::new(0);
    for (_, file) in segments {
        let Some(len) = disk.len(&file) else { continue };
        let op = DiskOp::Read {
            file,
            position: 0,
            len: len.min(u64::from(u32::MAX)) as u32,
        };
        // A read with no faults draws nothing and changes nothing on the disk.
        let Ok(DiskOutcome::Read(bytes)) =
            disk.execute(Instant::ZERO, &op, &DiskFaults::none(), &mut prng)
        else {
            continue;
        };
        for batch in BatchIter::new(&bytes) {
            let Ok((header, batch_bytes)) = batch else {
                break;
            };
            let Ok(decoded) = record_batch::decode_records(batch_bytes, &header) else {
                break;
            };
            for record in decoded {
                records.push(StoredRecord {
                    offset: header.base_offset + i64::from(record.offset_delta),
                    value: record
                        .value
                        .as_deref()
                        .and_then(|v| v.try_into().ok())
                        .map(i64::from_be_bytes),
                    leader_epoch: header.partition_leader_epoch,
                });
            }
        }
    }
    records
}
