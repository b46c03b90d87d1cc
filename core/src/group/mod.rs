//! The group coordinator as a sans-IO state machine: consumer groups, their rebalances and
//! their committed offsets, stored in the compacted internal topic `__consumer_offsets`.
//!
//! # Face
//!
//! [`GroupCoordinator`] has the shape of every state machine in core: [`GroupInput`]s in
//! through `handle(now, input)`, [`GroupOutput`]s out through `poll_output()`, and one deadline
//! from `poll_timeout()`. It owns no log: the broker that drives it
//!
//! - routes group requests to it ([`GroupRequestBody::from_request`]); FindCoordinator stays in
//!   the broker, which answers with the leader of partition [`offsets_partition_for`] of
//!   `__consumer_offsets` (Kafka's `abs(groupId.hashCode()) % offsets.topic.num.partitions`);
//! - tells it which offsets partitions this process leads ([`GroupInput::BecameLeader`],
//!   [`GroupInput::Resigned`]), reads a partition when asked ([`GroupOutput::Load`]) and hands
//!   the records back in log order ([`GroupInput::Loaded`]);
//! - appends what it asks ([`GroupOutput::Append`], in emission order) and reports each append
//!   once the ISR committed it, or why it failed ([`GroupInput::Appended`]);
//! - keeps it told about topics ([`GroupInput::Topics`]) for the KIP-848 assignors.
//!
//! # Coordinator moves
//!
//! The coordinator of a group is the leader of its offsets partition. While a partition loads
//! every request for its groups is answered COORDINATOR_LOAD_IN_PROGRESS; a partition this
//! process does not lead answers NOT_COORDINATOR. On [`GroupInput::Resigned`] the partition's
//! groups are dropped at once and everything pending for them (parked joins and syncs, answers
//! waiting for an append) is answered NOT_COORDINATOR, so the old coordinator stops before the
//! new one (which must first load) starts. Loading accepts any prefix of the log, compacted or
//! not: the latest value per key wins and a tombstone deletes; records it cannot read are
//! skipped with an event, never a panic.
//!
//! # Durability (acks=all)
//!
//! A request that changes state is answered only once the append carrying the change is
//! committed, and a request that changes nothing is answered only once every append issued
//! before it on its partition is resolved (Kafka's CoordinatorRuntime defers such "reads after
//! writes" the same way). On a failed append the client gets the error Kafka maps it to
//! (COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR, UNKNOWN_SERVER_ERROR) and the change is rolled
//! back as Kafka does: offsets are applied only when committed, so a failed commit leaves
//! nothing; a failed classic SyncGroup store resets the assignment and rebalances; a failed
//! static-member replacement restores the old member id; a failed KIP-848 write restores the
//! group as it was before (Kafka reverts its timeline) and voids later writes of the group; a
//! failed group deletion puts the group back.
//!
//! # Protocols
//!
//! Classic groups (`classic.rs`, `join.rs`, `membership.rs`): JoinGroup/SyncGroup/Heartbeat/LeaveGroup with
//! eager and cooperative rebalances (KIP-429: the coordinator passes each member's metadata,
//! owned partitions included, to the leader untouched), protocol selection by vote, static
//! membership (KIP-345), member id required on first join (KIP-394), session, rebalance and
//! initial-rebalance-delay timers, pending-sync expiry and `group.max.size`.
//! KIP-848 consumer groups (`heartbeat.rs`, `consumer.rs`, `assignor.rs`):
//! ConsumerGroupHeartbeat and ConsumerGroupDescribe with group, target and member epochs,
//! server-side `uniform` and `range` assignors and revocation before reassignment.
//! Offsets (`offsets.rs`): OffsetCommit, OffsetFetch (v8+ multi-group), OffsetDelete and
//! retention (KIP-211: offsets of a group expire only once it is empty). Administration
//! (`admin.rs`): ListGroups, DescribeGroups, DeleteGroups. Record formats: `records.rs`.
//!
//! Determinism: no clock, no IO, no hash-map iteration; member ids come from the seeded
//! [`Prng`]. Every collection that grows is bounded by a limit in `constants.rs`.

mod admin;
mod assignor;
mod classic;
pub mod config;
mod consumer;
mod consumer_protocol;
mod deadlines;
pub mod errors;
mod heartbeat;
mod join;
mod load;
mod membership;
mod offsets;
pub mod records;
mod responses;

#[cfg(test)]
mod tests;

pub use config::{GroupConfig, ServerAssignor};
pub use errors::{AppendError, GroupError};
pub use records::{Assignment, OffsetsRecord};

use crate::constants::*;
use crate::prng::Prng;
use crate::time::{Duration, Instant};
use crate::timer::{TimerKind, TimerTable};
use classic::ClassicGroup;
use consumer::{ConsumerGroup, TopicInfo};
use deadlines::{DeadlineKey, DeadlineKind, Deadlines};
use kafka_protocol::messages::*;
use records::{OffsetCommitValue, Record};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use uuid::Uuid;

/// Identifies a client request until it is answered; chosen by the driver.
pub type Token = u64;
/// Identifies an append to `__consumer_offsets`; increasing in emission (and so log) order.
pub type AppendId = u64;

/// The partition of `__consumer_offsets` that stores `group_id`, exactly as Kafka computes it:
/// `Utils.abs(groupId.hashCode()) % partitions`, with Java's UTF-16 string hash.
pub fn offsets_partition_for(group_id: &str, partitions: i32) -> i32 {
    assert!(
        partitions > 0,
        "offsets.topic.num.partitions must be positive"
    );
    let mut hash: i32 = 0;
    for unit in group_id.encode_utf16() {
        hash = hash.wrapping_mul(31).wrapping_add(i32::from(unit));
    }
    // Kafka's Utils.abs maps Integer.MIN_VALUE to 0 rather than overflowing.
    let abs = if hash == i32::MIN { 0 } else { hash.abs() };
    abs % partitions
}

/// The header fields of a group request the coordinator uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupRequestContext {
    /// The request's version; the response is shaped for it.
    pub api_version: i16,
    /// The client id from the request header.
    pub client_id: String,
    /// The client's address, as DescribeGroups reports it (Kafka: "/127.0.0.1").
    pub client_host: String,
}

/// The group APIs the coordinator serves. A closed enum, so a request the coordinator does not
/// serve cannot be routed to it.
#[allow(clippy::large_enum_variant)] // Moved once from the driver; boxing buys nothing.
#[derive(Clone, Debug)]
pub enum GroupRequestBody {
    /// JoinGroup.
    JoinGroup(JoinGroupRequest),
    /// SyncGroup.
    SyncGroup(SyncGroupRequest),
    /// Heartbeat.
    Heartbeat(HeartbeatRequest),
    /// LeaveGroup.
    LeaveGroup(LeaveGroupRequest),
    /// OffsetCommit.
    OffsetCommit(OffsetCommitRequest),
    /// OffsetFetch.
    OffsetFetch(OffsetFetchRequest),
    /// ListGroups.
    ListGroups(ListGroupsRequest),
    /// DescribeGroups.
    DescribeGroups(DescribeGroupsRequest),
    /// DeleteGroups.
    DeleteGroups(DeleteGroupsRequest),
    /// OffsetDelete.
    OffsetDelete(OffsetDeleteRequest),
    /// ConsumerGroupHeartbeat (KIP-848).
    ConsumerGroupHeartbeat(ConsumerGroupHeartbeatRequest),
    /// ConsumerGroupDescribe (KIP-848).
    ConsumerGroupDescribe(ConsumerGroupDescribeRequest),
}

impl GroupRequestBody {
    /// The group request inside `request`, or the request back if it is not one.
    // The request is handed back unboxed: the broker dispatches it on without a copy.
    #[allow(clippy::result_large_err)]
    pub fn from_request(request: RequestKind) -> Result<GroupRequestBody, RequestKind> {
        Ok(match request {
            RequestKind::JoinGroup(r) => GroupRequestBody::JoinGroup(r),
            RequestKind::SyncGroup(r) => GroupRequestBody::SyncGroup(r),
            RequestKind::Heartbeat(r) => GroupRequestBody::Heartbeat(r),
            RequestKind::LeaveGroup(r) => GroupRequestBody::LeaveGroup(r),
            RequestKind::OffsetCommit(r) => GroupRequestBody::OffsetCommit(r),
            RequestKind::OffsetFetch(r) => GroupRequestBody::OffsetFetch(r),
            RequestKind::ListGroups(r) => GroupRequestBody::ListGroups(r),
            RequestKind::DescribeGroups(r) => GroupRequestBody::DescribeGroups(r),
            RequestKind::DeleteGroups(r) => GroupRequestBody::DeleteGroups(r),
            RequestKind::OffsetDelete(r) => GroupRequestBody::OffsetDelete(r),
            RequestKind::ConsumerGroupHeartbeat(r) => GroupRequestBody::ConsumerGroupHeartbeat(r),
            RequestKind::ConsumerGroupDescribe(r) => GroupRequestBody::ConsumerGroupDescribe(r),
            other => return Err(other),
        })
    }

    /// The request's API.
    pub fn api_key(&self) -> ApiKey {
        match self {
            GroupRequestBody::JoinGroup(_) => ApiKey::JoinGroup,
            GroupRequestBody::SyncGroup(_) => ApiKey::SyncGroup,
            GroupRequestBody::Heartbeat(_) => ApiKey::Heartbeat,
            GroupRequestBody::LeaveGroup(_) => ApiKey::LeaveGroup,
            GroupRequestBody::OffsetCommit(_) => ApiKey::OffsetCommit,
            GroupRequestBody::OffsetFetch(_) => ApiKey::OffsetFetch,
            GroupRequestBody::ListGroups(_) => ApiKey::ListGroups,
            GroupRequestBody::DescribeGroups(_) => ApiKey::DescribeGroups,
            GroupRequestBody::DeleteGroups(_) => ApiKey::DeleteGroups,
            GroupRequestBody::OffsetDelete(_) => ApiKey::OffsetDelete,
            GroupRequestBody::ConsumerGroupHeartbeat(_) => ApiKey::ConsumerGroupHeartbeat,
            GroupRequestBody::ConsumerGroupDescribe(_) => ApiKey::ConsumerGroupDescribe,
        }
    }
}

/// A topic as the broker's metadata knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicMetadata {
    /// Name.
    pub name: String,
    /// Topic id.
    pub topic_id: Uuid,
    /// Partition count.
    pub partitions: i32,
}

/// What the coordinator is told.
#[allow(clippy::large_enum_variant)] // Moved once from the driver; boxing buys nothing.
#[derive(Clone, Debug)]
pub enum GroupInput {
    /// A group request.
    Request {
        /// Echoed in the response.
        token: Token,
        /// Header fields.
        context: GroupRequestContext,
        /// The request.
        body: GroupRequestBody,
    },
    /// This process now leads `partition` of `__consumer_offsets` at `leader_epoch`.
    BecameLeader {
        /// Offsets partition.
        partition: i32,
        /// Its leader epoch.
        leader_epoch: i32,
    },
    /// This process no longer leads `partition`.
    Resigned {
        /// Offsets partition.
        partition: i32,
    },
    /// Records of a partition being loaded, in log order (answers [`GroupOutput::Load`]).
    Loaded {
        /// Offsets partition.
        partition: i32,
        /// The leader epoch of the [`GroupOutput::Load`] this answers.
        leader_epoch: i32,
        /// The next records of the log.
        records: Vec<OffsetsRecord>,
        /// True with the last records: the coordinator serves from then on.
        complete: bool,
    },
    /// An append finished: committed by the ISR, or failed.
    Appended {
        /// The append.
        append_id: AppendId,
        /// The outcome.
        result: Result<(), AppendError>,
    },
    /// Every topic the cluster has (replaces what the coordinator knew).
    Topics(Vec<TopicMetadata>),
    /// The deadline from [`GroupCoordinator::poll_timeout`] passed.
    Timeout,
}

/// Something an operator should see in the logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupEvent {
    /// A partition finished loading; its groups are served.
    PartitionLoaded {
        /// Offsets partition.
        partition: i32,
        /// Groups it holds.
        groups: u32,
        /// Records that could not be read and were skipped.
        skipped: u32,
    },
    /// A partition's groups were dropped (resigned).
    PartitionUnloaded {
        /// Offsets partition.
        partition: i32,
        /// Groups dropped.
        groups: u32,
    },
    /// A loaded record could not be read or applied.
    RecordSkipped {
        /// Offsets partition.
        partition: i32,
        /// Why.
        reason: String,
    },
    /// A classic group completed a join phase.
    Rebalanced {
        /// Group id.
        group: String,
        /// The new generation.
        generation_id: i32,
        /// Members in it.
        members: u32,
    },
    /// A member was removed without leaving.
    MemberRemoved {
        /// Group id.
        group: String,
        /// Member id.
        member: String,
        /// Why.
        reason: &'static str,
    },
    /// A group was deleted (DeleteGroups or expiry).
    GroupDeleted {
        /// Group id.
        group: String,
    },
    /// Offsets expired.
    OffsetsExpired {
        /// Group id.
        group: String,
        /// How many.
        count: u32,
    },
    /// An append failed and its change was rolled back.
    AppendFailed {
        /// Group id.
        group: String,
        /// Why.
        error: AppendError,
    },
}

/// What the coordinator asks the driver to do.
#[derive(Clone, Debug)]
pub enum GroupOutput {
    /// Answer a request.
    Response {
        /// The request's token.
        token: Token,
        /// The response, shaped for the request's version.
        body: Box<ResponseKind>,
    },
    /// Append records to `partition` of `__consumer_offsets` as its leader at `leader_epoch`,
    /// in emission order, and report [`GroupInput::Appended`] once the ISR committed them.
    Append {
        /// Identifies the append.
        append_id: AppendId,
        /// Offsets partition.
        partition: i32,
        /// The leader epoch the coordinator leads it at.
        leader_epoch: i32,
        /// The records.
        records: Vec<OffsetsRecord>,
    },
    /// Read `partition` from its start to its end and hand the records back.
    Load {
        /// Offsets partition.
        partition: i32,
        /// Echo in [`GroupInput::Loaded`].
        leader_epoch: i32,
    },
    /// Log this.
    Event(GroupEvent),
}

/// The coordinator's timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum GroupTimer {
    /// The earliest group or member deadline.
    Deadline,
    /// `offsets.retention.check.interval.ms`.
    RetentionCheck,
}

impl TimerKind for GroupTimer {
    const COUNT: usize = 2;
    fn index(self) -> usize {
        self as usize
    }
    fn from_index(index: usize) -> GroupTimer {
        match index {
            0 => GroupTimer::Deadline,
            1 => GroupTimer::RetentionCheck,
            _ => unreachable!("timer index {index} out of range"),
        }
    }
}

/// A committed offset's key: topic and partition.
pub(crate) type OffsetKey = (String, i32);

/// A committed offset and the append that wrote it (0 when loaded), so a late acknowledgement
/// of an older write never overwrites a newer one.
#[derive(Clone, Debug)]
pub(crate) struct CommittedOffset {
    pub value: OffsetCommitValue,
    pub append_id: AppendId,
}

/// A group of either protocol.
#[derive(Clone, Debug)]
pub(crate) enum GroupKind {
    Classic(ClassicGroup),
    Consumer(ConsumerGroup),
}

/// A group the coordinator holds, with its offsets.
#[derive(Clone, Debug)]
pub(crate) struct GroupEntry {
    /// Its offsets partition.
    pub partition: i32,
    /// Distinguishes this group from an earlier one of the same id that was deleted, so a
    /// late acknowledgement never applies to the wrong one.
    pub incarnation: u64,
    pub kind: GroupKind,
    /// Committed offsets (only what the ISR acknowledged).
    pub offsets: BTreeMap<OffsetKey, CommittedOffset>,
    /// Offset writes (commits, tombstones) in flight, per partition.
    pub pending_offsets: BTreeMap<OffsetKey, u32>,
}

impl GroupEntry {
    fn new(partition: i32, incarnation: u64, kind: GroupKind) -> GroupEntry {
        GroupEntry {
            partition,
            incarnation,
            kind,
            offsets: BTreeMap::new(),
            pending_offsets: BTreeMap::new(),
        }
    }

    pub(crate) fn classic(&self) -> Option<&ClassicGroup> {
        match &self.kind {
            GroupKind::Classic(group) => Some(group),
            GroupKind::Consumer(_) => None,
        }
    }

    pub(crate) fn classic_mut(&mut self) -> Option<&mut ClassicGroup> {
        match &mut self.kind {
            GroupKind::Classic(group) => Some(group),
            GroupKind::Consumer(_) => None,
        }
    }

    pub(crate) fn consumer(&self) -> Option<&ConsumerGroup> {
        match &self.kind {
            GroupKind::Consumer(group) => Some(group),
            GroupKind::Classic(_) => None,
        }
    }

    /// Empty in the sense of Kafka's `Group.isEmpty` (no members; a simple group is empty).
    pub(crate) fn is_empty(&self) -> bool {
        match &self.kind {
            GroupKind::Classic(g) => g.state == classic::ClassicState::Empty,
            GroupKind::Consumer(g) => g.members.is_empty(),
        }
    }
}

/// A response kept until the appends before it resolve.
#[derive(Debug)]
pub(crate) struct Reply {
    pub token: Token,
    pub body: ResponseKind,
}

/// What an append carries for its outcome.
#[derive(Debug)]
pub(crate) enum AppendAction {
    /// Nothing waits on it (an empty group's store, a rewrite after a rollback).
    Background,
    /// Offsets applied when committed.
    OffsetCommit {
        entries: Vec<(OffsetKey, OffsetCommitValue)>,
        reply: Reply,
    },
    /// Offsets removed when committed (OffsetDelete, expiry).
    OffsetTombstones {
        keys: Vec<OffsetKey>,
        reply: Option<Reply>,
    },
    /// A classic leader's assignment for `generation_id`.
    ClassicSync {
        generation_id: i32,
        assignment: BTreeMap<String, bytes::Bytes>,
    },
    /// A known static member rejoined a Stable group under a new member id.
    StaticRejoin(Box<join::StaticRejoin>),
    /// A KIP-848 group change; `before` is the group as it was (None: it did not exist).
    Consumer {
        before: Option<Box<GroupKind>>,
        members: BTreeSet<String>,
        reply: Option<Reply>,
    },
    /// A group deleted; put back on failure.
    DeleteGroup {
        entry: Box<GroupEntry>,
        part: Option<(Token, usize)>,
    },
}

/// An append in flight.
#[derive(Debug)]
pub(crate) struct PendingAppend {
    pub partition: i32,
    pub group_id: String,
    pub incarnation: u64,
    pub action: AppendAction,
}

/// A partition this process leads.
#[derive(Debug)]
pub(crate) struct OffsetsPartition {
    pub leader_epoch: i32,
    pub loaded: bool,
    /// Records that could not be loaded.
    pub skipped: u32,
    /// Appends in flight.
    pub in_flight: BTreeSet<AppendId>,
    /// Answers waiting for every append up to their barrier to resolve.
    pub deferred: Vec<(AppendId, Reply)>,
}

/// A response assembled from several appends (DeleteGroups over several groups).
#[derive(Debug)]
pub(crate) struct Gather {
    pub body: ResponseKind,
    pub waiting: usize,
}

/// Everything but the groups: partitions, appends, answers, deadlines, outputs. Handlers
/// borrow it next to the one group they change (Kafka's CoordinatorRuntime plays this role).
#[derive(Debug)]
pub(crate) struct Runtime {
    pub prng: Prng,
    pub now: Instant,
    pub partitions: BTreeMap<i32, OffsetsPartition>,
    pub appends: BTreeMap<AppendId, PendingAppend>,
    pub next_append_id: AppendId,
    pub next_incarnation: u64,
    pub gathers: BTreeMap<Token, Gather>,
    pub deadlines: Deadlines,
    timers: TimerTable<GroupTimer>,
    /// Requests accepted and not yet answered.
    open: BTreeSet<Token>,
    outbox: VecDeque<GroupOutput>,
}

impl Runtime {
    /// Milliseconds on the driver's clock, as Kafka stores timestamps.
    pub fn now_ms(&self) -> i64 {
        self.now.as_millis() as i64
    }

    /// `now` plus `ms` (a client-supplied timeout, clamped to be non-negative).
    pub fn after_ms(&self, ms: i64) -> Instant {
        self.now + Duration::from_millis(ms.max(0) as u64)
    }

    pub fn event(&mut self, event: GroupEvent) {
        self.outbox.push_back(GroupOutput::Event(event));
    }

    /// Answers now. Every request is answered exactly once.
    pub fn respond_now(&mut self, token: Token, body: ResponseKind) {
        assert!(self.open.remove(&token), "request {token} answered twice");
        let body = Box::new(body);
        self.outbox.push_back(GroupOutput::Response { token, body });
    }

    /// Answers once every append issued so far on `partition` has resolved.
    pub fn reply(&mut self, partition: i32, token: Token, body: ResponseKind) {
        let barrier = self
            .partitions
            .get(&partition)
            .and_then(|p| p.in_flight.last().copied());
        match barrier {
            Some(barrier) => self.defer(partition, barrier, Reply { token, body }),
            None => self.respond_now(token, body),
        }
    }

    /// Answers once every append up to `barrier` on `partition` has resolved.
    pub fn defer(&mut self, partition: i32, barrier: AppendId, reply: Reply) {
        match self.partitions.get_mut(&partition) {
            Some(p) if p.in_flight.first().is_some_and(|first| *first <= barrier) => {
                p.deferred.push((barrier, reply));
            }
            _ => self.respond_now(reply.token, reply.body),
        }
    }

    fn release_deferred(&mut self, partition: i32) {
        let Some(p) = self.partitions.get_mut(&partition) else {
            return;
        };
        let first = p.in_flight.first().copied().unwrap_or(AppendId::MAX);
        let (ready, waiting): (Vec<_>, Vec<_>) = p
            .deferred
            .drain(..)
            .partition(|(barrier, _)| *barrier < first);
        p.deferred = waiting;
        for (_, reply) in ready {
            self.respond_now(reply.token, reply.body);
        }
    }

    /// Whether a client request may start another append.
    pub fn appends_full(&self) -> bool {
        self.appends.len() >= GROUP_APPENDS_IN_FLIGHT_MAX
    }

    /// Appends `records` to the group's partition; the action runs when it resolves.
    pub fn append(
        &mut self,
        entry: (&str, i32, u64),
        records: Vec<Record>,
        action: AppendAction,
    ) -> AppendId {
        let (group_id, partition, incarnation) = entry;
        assert!(!records.is_empty(), "an append carries records");
        assert!(self.appends.len() < GROUP_APPENDS_IN_FLIGHT_MAX + GROUP_MEMBERS_MAX);
        let p = self
            .partitions
            .get_mut(&partition)
            .expect("appends go to led partitions");
        assert!(p.loaded, "no append before the partition is loaded");
        let append_id = self.next_append_id;
        self.next_append_id += 1;
        p.in_flight.insert(append_id);
        let leader_epoch = p.leader_epoch;
        let records = records.iter().map(Record::encode).collect();
        self.outbox.push_back(GroupOutput::Append {
            append_id,
            partition,
            leader_epoch,
            records,
        });
        let pending = PendingAppend {
            partition,
            group_id: group_id.to_owned(),
            incarnation,
            action,
        };
        self.appends.insert(append_id, pending);
        append_id
    }

    /// A random version-4 UUID from the seeded generator.
    pub fn random_uuid(&mut self) -> Uuid {
        let mut bytes = [0u8; 16];
        self.prng.fill(&mut bytes);
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }

    /// A KIP-848 member id as Kafka's `Uuid.toString()` prints one: URL-safe base64 of 16
    /// random bytes, unpadded (22 characters).
    pub fn random_member_id(&mut self) -> String {
        base64_url(self.random_uuid().as_bytes())
    }

    pub fn incarnation(&mut self) -> u64 {
        self.next_incarnation += 1;
        self.next_incarnation
    }

    pub fn set_deadline(&mut self, key: DeadlineKey, at: Instant, payload: i32) {
        self.deadlines.set(key, at, payload);
    }

    fn arm_timer(&mut self) {
        match self.deadlines.next() {
            Some(at) => self.timers.set(GroupTimer::Deadline, at),
            None => self.timers.stop(GroupTimer::Deadline),
        }
    }
}

/// A group's protocol and state as seen from outside (for checks and tools).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupSummary {
    /// True for a KIP-848 consumer group.
    pub consumer_protocol: bool,
    /// Kafka's state name.
    pub state: &'static str,
    /// Classic: `generation_id`; KIP-848: the group epoch.
    pub epoch: i32,
    /// Member ids.
    pub members: Vec<String>,
}

/// The group coordinator. See the module documentation.
#[derive(Debug)]
pub struct GroupCoordinator {
    config: GroupConfig,
    groups: BTreeMap<String, GroupEntry>,
    /// Topic name → id and partitions.
    topics: BTreeMap<String, TopicInfo>,
    rt: Runtime,
}

impl GroupCoordinator {
    /// A coordinator that leads no partition yet.
    pub fn new(config: GroupConfig, seed: u64, now: Instant) -> GroupCoordinator {
        config.assert_valid();
        let mut timers = TimerTable::default();
        timers.set(
            GroupTimer::RetentionCheck,
            now + config.offsets_retention_check_interval,
        );
        GroupCoordinator {
            config,
            groups: BTreeMap::new(),
            topics: BTreeMap::new(),
            rt: Runtime {
                prng: Prng::new(seed),
                now,
                partitions: BTreeMap::new(),
                appends: BTreeMap::new(),
                next_append_id: 1,
                next_incarnation: 0,
                gathers: BTreeMap::new(),
                deadlines: Deadlines::default(),
                timers,
                open: BTreeSet::new(),
                outbox: VecDeque::new(),
            },
        }
    }

    /// Feeds one input. The driver must have drained [`GroupCoordinator::poll_output`] first.
    pub fn handle(&mut self, now: Instant, input: GroupInput) {
        assert!(
            self.rt.outbox.is_empty(),
            "the driver drains outputs before the next input"
        );
        self.rt.now = self.rt.now.max(now);
        match input {
            GroupInput::Request {
                token,
                context,
                body,
            } => self.on_request(token, context, body),
            GroupInput::BecameLeader {
                partition,
                leader_epoch,
            } => self.on_became_leader(partition, leader_epoch),
            GroupInput::Resigned { partition } => self.on_resigned(partition),
            GroupInput::Loaded {
                partition,
                leader_epoch,
                records,
                complete,
            } => self.on_loaded(partition, leader_epoch, records, complete),
            GroupInput::Appended { append_id, result } => self.on_appended(append_id, result),
            GroupInput::Topics(topics) => self.on_topics(topics),
            GroupInput::Timeout => self.on_timeout(),
        }
        self.rt.arm_timer();
        self.invariants();
    }

    /// The next output, if any.
    pub fn poll_output(&mut self) -> Option<GroupOutput> {
        self.rt.outbox.pop_front()
    }

    /// When to deliver [`GroupInput::Timeout`] next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.rt.timers.next_deadline()
    }

    /// The configuration.
    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    /// Whether this process serves `partition` (leads it and loaded it).
    pub fn is_serving(&self, partition: i32) -> bool {
        self.rt.partitions.get(&partition).is_some_and(|p| p.loaded)
    }

    /// A group's protocol, state and members, if this coordinator holds it.
    pub fn group_summary(&self, group_id: &str) -> Option<GroupSummary> {
        let entry = self.groups.get(group_id)?;
        Some(match &entry.kind {
            GroupKind::Classic(g) => GroupSummary {
                consumer_protocol: false,
                state: g.state.name(),
                epoch: g.generation_id,
                members: g.members.keys().cloned().collect(),
            },
            GroupKind::Consumer(g) => GroupSummary {
                consumer_protocol: true,
                state: g.state().name(),
                epoch: g.group_epoch,
                members: g.members.keys().cloned().collect(),
            },
        })
    }

    /// KIP-848: every member's owned partitions (assigned and pending revocation).
    pub fn consumer_ownership(&self, group_id: &str) -> Option<BTreeMap<String, Assignment>> {
        let group = self.groups.get(group_id)?.consumer()?;
        let owned = group.members.values().map(|m| {
            let mut all = m.assigned.clone();
            for (topic, ps) in &m.pending_revocation {
                all.entry(*topic).or_default().extend(ps);
            }
            (m.member_id.clone(), all)
        });
        Some(owned.collect())
    }

    /// The committed offsets of a group (only what the ISR acknowledged).
    pub fn committed_offsets(&self, group_id: &str) -> Option<BTreeMap<(String, i32), i64>> {
        let entry = self.groups.get(group_id)?;
        let offsets = entry
            .offsets
            .iter()
            .map(|(k, v)| (k.clone(), v.value.offset));
        Some(offsets.collect())
    }

    fn invariants(&self) {
        assert!(self.groups.len() <= GROUPS_MAX);
        assert!(self.rt.open.len() <= GROUP_REQUESTS_IN_FLIGHT_MAX);
        assert!(self.rt.appends.len() <= GROUP_APPENDS_IN_FLIGHT_MAX + GROUP_MEMBERS_MAX);
        let in_flight: usize = self.rt.partitions.values().map(|p| p.in_flight.len()).sum();
        assert_eq!(
            in_flight,
            self.rt.appends.len(),
            "every append belongs to a partition"
        );
        // The per-group checks cost a walk over every group: debug builds and the simulator
        // profile run them, release builds do not.
        if !cfg!(debug_assertions) {
            return;
        }
        for entry in self.groups.values() {
            assert!(self.rt.partitions.contains_key(&entry.partition));
            if let GroupKind::Classic(g) = &entry.kind {
                let parked = g
                    .members
                    .values()
                    .filter(|m| m.awaiting_join.is_some())
                    .count();
                assert_eq!(parked, g.awaiting_join_count);
                assert!(g.members.is_empty() || g.leader_id.is_some());
                assert!(g.members.len() <= GROUP_MEMBERS_MAX);
            }
        }
    }

    // ---- requests ----

    fn on_request(&mut self, token: Token, context: GroupRequestContext, body: GroupRequestBody) {
        assert!(
            self.rt.open.insert(token),
            "token {token} reused while open"
        );
        if self.rt.open.len() > GROUP_REQUESTS_IN_FLIGHT_MAX {
            let error = GroupError::CoordinatorNotAvailable;
            let response = responses::error_response(&body, context.api_version, error);
            return self.rt.respond_now(token, response);
        }
        let version = context.api_version;
        match body {
            GroupRequestBody::JoinGroup(r) => self.on_join_group(token, &context, r),
            GroupRequestBody::SyncGroup(r) => self.on_sync_group(token, version, r),
            GroupRequestBody::Heartbeat(r) => self.on_heartbeat(token, version, r),
            GroupRequestBody::LeaveGroup(r) => self.on_leave_group(token, version, r),
            GroupRequestBody::OffsetCommit(r) => self.on_offset_commit(token, version, r),
            GroupRequestBody::OffsetFetch(r) => self.on_offset_fetch(token, version, r),
            GroupRequestBody::ListGroups(r) => self.on_list_groups(token, version, r),
            GroupRequestBody::DescribeGroups(r) => self.on_describe_groups(token, version, r),
            GroupRequestBody::DeleteGroups(r) => self.on_delete_groups(token, version, r),
            GroupRequestBody::OffsetDelete(r) => self.on_offset_delete(token, version, r),
            GroupRequestBody::ConsumerGroupHeartbeat(r) => {
                self.on_consumer_group_heartbeat(token, &context, r)
            }
            GroupRequestBody::ConsumerGroupDescribe(r) => {
                self.on_consumer_group_describe(token, version, r)
            }
        }
    }

    /// The offsets partition serving `group_id`, or why it cannot be served here.
    fn coordinator_for(&self, group_id: &str) -> Result<i32, GroupError> {
        if group_id.is_empty() || group_id.len() > GROUP_STRING_BYTES_MAX {
            return Err(GroupError::InvalidGroupId);
        }
        let partition = offsets_partition_for(group_id, self.config.offsets_topic_num_partitions);
        match self.rt.partitions.get(&partition) {
            None => Err(GroupError::NotCoordinator),
            Some(p) if !p.loaded => Err(GroupError::CoordinatorLoadInProgress),
            Some(_) => Ok(partition),
        }
    }

    /// Inserts a new group; false when the coordinator is full.
    fn create_group(&mut self, group_id: &str, partition: i32, kind: GroupKind) -> bool {
        if self.groups.len() >= GROUPS_MAX {
            return false;
        }
        let incarnation = self.rt.incarnation();
        let entry = GroupEntry::new(partition, incarnation, kind);
        assert!(self.groups.insert(group_id.to_owned(), entry).is_none());
        true
    }

    // ---- partitions ----

    fn on_became_leader(&mut self, partition: i32, leader_epoch: i32) {
        if !(0..self.config.offsets_topic_num_partitions).contains(&partition) {
            return; // Not a partition of this topic's layout: a driver bug; nothing to load.
        }
        if let Some(current) = self.rt.partitions.get(&partition) {
            if current.leader_epoch >= leader_epoch {
                return; // A repeat or an older election.
            }
            self.on_resigned(partition);
        }
        let state = OffsetsPartition {
            leader_epoch,
            loaded: false,
            skipped: 0,
            in_flight: BTreeSet::new(),
            deferred: Vec::new(),
        };
        self.rt.partitions.insert(partition, state);
        let load = GroupOutput::Load {
            partition,
            leader_epoch,
        };
        self.rt.outbox.push_back(load);
    }

    fn on_resigned(&mut self, partition: i32) {
        let Some(state) = self.rt.partitions.remove(&partition) else {
            return;
        };
        let code = GroupError::NotCoordinator.code();
        for (_, mut reply) in state.deferred {
            responses::with_error(&mut reply.body, code);
            self.rt.respond_now(reply.token, reply.body);
        }
        for append_id in state.in_flight {
            let pending = self.rt.appends.remove(&append_id).expect("in flight");
            self.abandon_append(pending);
        }
        let ids: Vec<String> = self
            .groups
            .iter()
            .filter(|(_, e)| e.partition == partition)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &ids {
            let entry = self.groups.remove(id).expect("listed above");
            self.rt.deadlines.cancel_group(id);
            self.answer_parked(entry, GroupError::NotCoordinator);
        }
        let groups = ids.len() as u32;
        self.rt
            .event(GroupEvent::PartitionUnloaded { partition, groups });
    }

    /// Answers a dropped append's waiting client NOT_COORDINATOR.
    fn abandon_append(&mut self, pending: PendingAppend) {
        let code = GroupError::NotCoordinator.code();
        let reply = match pending.action {
            AppendAction::OffsetCommit { reply, .. } => Some(reply),
            AppendAction::OffsetTombstones { reply, .. } => reply,
            AppendAction::Consumer { reply, .. } => reply,
            // Its JoinGroup is parked in the member, answered when the group is dropped.
            AppendAction::StaticRejoin(_) => None,
            AppendAction::DeleteGroup { part, .. } => {
                if let Some((token, index)) = part {
                    self.gather_part(token, index, code);
                }
                None
            }
            AppendAction::Background | AppendAction::ClassicSync { .. } => None,
        };
        if let Some(mut reply) = reply {
            responses::with_error(&mut reply.body, code);
            self.rt.respond_now(reply.token, reply.body);
        }
    }

    /// Answers every request parked in a group that is going away.
    fn answer_parked(&mut self, entry: GroupEntry, error: GroupError) {
        let GroupKind::Classic(group) = entry.kind else {
            return;
        };
        for member in group.members.values() {
            if let Some(parked) = member.awaiting_join {
                let body = responses::join_error(parked.api_version, &member.member_id, error);
                self.rt.respond_now(parked.token, body);
            }
            if let Some(parked) = member.awaiting_sync {
                let body = responses::sync_error(error);
                self.rt.respond_now(parked.token, body);
            }
        }
    }

    // ---- appends ----

    fn on_appended(&mut self, append_id: AppendId, result: Result<(), AppendError>) {
        let Some(pending) = self.rt.appends.remove(&append_id) else {
            return; // Its partition was resigned meanwhile, or a duplicate report.
        };
        let partition = pending.partition;
        let p = self.rt.partitions.get_mut(&partition).expect("in flight");
        assert!(p.in_flight.remove(&append_id));
        if let Err(error) = result {
            let group = pending.group_id.clone();
            self.rt.event(GroupEvent::AppendFailed { group, error });
        }
        let error = result.err().map(AppendError::group_error);
        let (group, incarnation) = (pending.group_id.as_str(), pending.incarnation);
        match pending.action {
            AppendAction::Background => {}
            AppendAction::OffsetCommit { entries, reply } => {
                let at = (append_id, partition);
                self.on_commit_appended(at.0, at.1, group, incarnation, entries, reply, error)
            }
            AppendAction::OffsetTombstones { keys, reply } => {
                let at = (append_id, partition);
                self.on_tombstones_appended(at.0, at.1, group, incarnation, keys, reply, error)
            }
            AppendAction::ClassicSync {
                generation_id,
                assignment,
            } => self.on_sync_appended(group, incarnation, generation_id, assignment, error),
            AppendAction::StaticRejoin(rejoin) => {
                self.on_static_rejoin_appended(append_id, group, incarnation, *rejoin, error)
            }
            AppendAction::Consumer {
                before,
                members,
                reply,
            } => {
                let at = (append_id, partition);
                self.on_consumer_appended(
                    at.0,
                    at.1,
                    group,
                    incarnation,
                    before,
                    members,
                    reply,
                    error,
                )
            }
            AppendAction::DeleteGroup { entry, part } => {
                self.on_delete_appended(group, *entry, part, error)
            }
        }
        self.rt.release_deferred(partition);
    }

    /// Records one group's outcome in a gathered response; answers once all are in.
    fn gather_part(&mut self, token: Token, index: usize, code: i16) {
        let Some(gather) = self.rt.gathers.get_mut(&token) else {
            return;
        };
        responses::set_group_error(&mut gather.body, index, code);
        gather.waiting -= 1;
        if gather.waiting == 0 {
            let gather = self.rt.gathers.remove(&token).expect("present");
            self.rt.respond_now(token, gather.body);
        }
    }

    // ---- topics and timers ----

    fn on_topics(&mut self, topics: Vec<TopicMetadata>) {
        let mut next = BTreeMap::new();
        for topic in topics.into_iter().take(GROUP_TOPICS_MAX) {
            let info = TopicInfo {
                topic_id: topic.topic_id,
                partitions: topic.partitions.max(0),
            };
            next.insert(topic.name, info);
        }
        let changed: BTreeSet<String> = self
            .topics
            .keys()
            .chain(next.keys())
            .filter(|name| self.topics.get(*name) != next.get(*name))
            .cloned()
            .collect();
        self.topics = next;
        self.request_metadata_refresh(&changed);
    }

    fn on_timeout(&mut self) {
        let now = self.rt.now;
        while let Some(timer) = self.rt.timers.pop_expired(now) {
            match timer {
                GroupTimer::RetentionCheck => {
                    let next = now + self.config.offsets_retention_check_interval;
                    self.rt.timers.set(GroupTimer::RetentionCheck, next);
                    self.on_retention_check_timeout();
                }
                // Re-armed from the deadline queue after this input.
                GroupTimer::Deadline => {}
            }
        }
        // Bounded by the deadlines set, which are bounded by groups and members.
        while let Some((key, payload)) = self.rt.deadlines.pop_expired(now) {
            match key.kind {
                DeadlineKind::ClassicJoin => self.on_classic_join_timeout(&key.group),
                DeadlineKind::ClassicSync => self.on_classic_sync_timeout(&key.group, payload),
                DeadlineKind::ClassicHeartbeat => {
                    self.on_classic_heartbeat_timeout(&key.group, &key.member)
                }
                DeadlineKind::ConsumerSession => {
                    self.on_consumer_session_timeout(&key.group, &key.member)
                }
                DeadlineKind::ConsumerRebalance => {
                    self.on_consumer_rebalance_timeout(&key.group, &key.member, payload)
                }
            }
        }
    }
}

/// URL-safe base64 without padding (RFC 4648 section 5), as Kafka prints topic and member ids.
fn base64_url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
        }
    }
    out
}
