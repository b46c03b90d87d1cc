//! Tests that drive the group coordinator as a broker would and assert its exact outputs.
//!
//! [`Harness`] plays the broker: it routes requests in, keeps each offsets partition's
//! committed log, acknowledges (or fails) appends in order, replays the log on a coordinator
//! move, and advances simulated time through the coordinator's deadlines. Every response is
//! encoded at its request's version, so a field a version does not have fails the test.

mod admin;
mod classic;
mod consumer;
mod offsets;
mod props;

use super::*;
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::protocol::StrBytes;

pub(crate) fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

pub(crate) fn gid(s: &str) -> GroupId {
    GroupId(sb(s))
}

/// A coordinator with one offsets partition unless a test needs more.
pub(crate) fn config() -> GroupConfig {
    GroupConfig {
        offsets_topic_num_partitions: 1,
        ..GroupConfig::default()
    }
}

/// Offsets as OffsetFetch answers them: (topic, partition, offset).
pub(crate) type Offsets = Vec<(String, i32, i64)>;

pub(crate) struct Harness {
    pub c: GroupCoordinator,
    pub now: Instant,
    next_token: Token,
    versions: BTreeMap<Token, (ApiKey, i16)>,
    pub answers: BTreeMap<Token, ResponseKind>,
    /// Appends emitted and not yet resolved, in emission order.
    pub appends: VecDeque<(AppendId, i32, Vec<OffsetsRecord>)>,
    /// Committed records per offsets partition.
    pub log: BTreeMap<i32, Vec<OffsetsRecord>>,
    pub loads: Vec<(i32, i32)>,
    pub events: Vec<GroupEvent>,
    /// Acknowledge every append as soon as it is emitted.
    pub auto_ack: bool,
    leader_epochs: BTreeMap<i32, i32>,
}

impl Harness {
    /// A coordinator that leads and has loaded every offsets partition.
    pub fn new(config: GroupConfig) -> Harness {
        let partitions = config.offsets_topic_num_partitions;
        let mut h = Harness::leading_none(config);
        for p in 0..partitions {
            h.lead(p);
        }
        h
    }

    pub fn leading_none(config: GroupConfig) -> Harness {
        let now = Instant(1_000_000_000_000);
        Harness {
            c: GroupCoordinator::new(config, 7, now),
            now,
            next_token: 1,
            versions: BTreeMap::new(),
            answers: BTreeMap::new(),
            appends: VecDeque::new(),
            log: BTreeMap::new(),
            loads: Vec::new(),
            events: Vec::new(),
            auto_ack: true,
            leader_epochs: BTreeMap::new(),
        }
    }

    pub fn input(&mut self, input: GroupInput) {
        self.c.handle(self.now, input);
        self.collect();
    }

    fn collect(&mut self) {
        let mut ack = false;
        while let Some(output) = self.c.poll_output() {
            match output {
                GroupOutput::Response { token, body } => {
                    let (api, version) = self.versions.remove(&token).expect("a request we sent");
                    let mut buf = BytesMut::new();
                    if let Err(e) = body.encode(&mut buf, version) {
                        panic!("{api:?} v{version} answer does not encode: {e}: {body:?}");
                    }
                    assert!(self.answers.insert(token, *body).is_none());
                }
                GroupOutput::Append {
                    append_id,
                    partition,
                    leader_epoch,
                    records,
                } => {
                    assert_eq!(Some(&leader_epoch), self.leader_epochs.get(&partition));
                    self.appends.push_back((append_id, partition, records));
                    ack = self.auto_ack;
                }
                GroupOutput::Load {
                    partition,
                    leader_epoch,
                } => self.loads.push((partition, leader_epoch)),
                GroupOutput::Event(event) => self.events.push(event),
            }
        }
        if ack {
            self.ack_all();
        }
    }

    /// Leads `partition` at the next epoch and loads its committed log.
    pub fn lead(&mut self, partition: i32) {
        let epoch = self.leader_epochs.get(&partition).map_or(0, |e| e + 1);
        self.leader_epochs.insert(partition, epoch);
        self.input(GroupInput::BecameLeader {
            partition,
            leader_epoch: epoch,
        });
        assert_eq!(self.loads.last(), Some(&(partition, epoch)));
        let records = self.log.get(&partition).cloned().unwrap_or_default();
        self.input(GroupInput::Loaded {
            partition,
            leader_epoch: epoch,
            records,
            complete: true,
        });
        assert!(self.c.is_serving(partition));
    }

    /// Leads `partition` but leaves it loading.
    pub fn lead_loading(&mut self, partition: i32) {
        let epoch = self.leader_epochs.get(&partition).map_or(0, |e| e + 1);
        self.leader_epochs.insert(partition, epoch);
        self.input(GroupInput::BecameLeader {
            partition,
            leader_epoch: epoch,
        });
    }

    pub fn resign(&mut self, partition: i32) {
        self.input(GroupInput::Resigned { partition });
        // The broker will never report these appends: their partition moved.
        self.appends.retain(|(_, p, _)| *p != partition);
    }

    /// The coordinator moves away and back: the new one loads the committed log.
    pub fn move_coordinator(&mut self, partition: i32) {
        self.resign(partition);
        self.lead(partition);
    }

    /// Commits the oldest append.
    pub fn ack(&mut self) -> bool {
        let Some((append_id, partition, records)) = self.appends.pop_front() else {
            return false;
        };
        self.log.entry(partition).or_default().extend(records);
        self.input(GroupInput::Appended {
            append_id,
            result: Ok(()),
        });
        true
    }

    pub fn ack_all(&mut self) {
        while self.ack() {}
    }

    /// Fails the oldest append.
    pub fn fail(&mut self, error: AppendError) {
        let (append_id, _, _) = self.appends.pop_front().expect("an append to fail");
        self.input(GroupInput::Appended {
            append_id,
            result: Err(error),
        });
    }

    /// Moves time forward, firing every deadline on the way at its own time.
    pub fn advance(&mut self, ms: u64) {
        let end = self.now + Duration::from_millis(ms);
        while let Some(at) = self.c.poll_timeout().filter(|at| *at <= end) {
            self.now = self.now.max(at);
            self.input(GroupInput::Timeout);
        }
        self.now = end;
    }

    pub fn send(&mut self, version: i16, body: GroupRequestBody) -> Token {
        let token = self.next_token;
        self.next_token += 1;
        self.versions.insert(token, (body.api_key(), version));
        let context = GroupRequestContext {
            api_version: version,
            client_id: "client".to_owned(),
            client_host: "/10.0.0.1".to_owned(),
        };
        self.input(GroupInput::Request {
            token,
            context,
            body,
        });
        token
    }

    pub fn answered(&self, token: Token) -> bool {
        self.answers.contains_key(&token)
    }

    pub fn take(&mut self, token: Token) -> ResponseKind {
        self.answers
            .remove(&token)
            .unwrap_or_else(|| panic!("request {token} not answered"))
    }

    pub fn topics(&mut self, topics: &[(&str, u8, i32)]) {
        let topics = topics
            .iter()
            .map(|(name, id, partitions)| TopicMetadata {
                name: (*name).to_owned(),
                topic_id: topic_id(*id),
                partitions: *partitions,
            })
            .collect();
        self.input(GroupInput::Topics(topics));
    }

    pub fn state(&self, group: &str) -> &'static str {
        self.c.group_summary(group).map_or("-", |s| s.state)
    }
}

pub(crate) fn topic_id(id: u8) -> Uuid {
    Uuid::from_bytes([id; 16])
}

// ---- classic request helpers ----

pub(crate) struct JoinSpec<'a> {
    pub group: &'a str,
    pub member: &'a str,
    pub instance: Option<&'a str>,
    pub protocols: Vec<(&'a str, Bytes)>,
    pub session_ms: i32,
    pub rebalance_ms: i32,
}

impl<'a> JoinSpec<'a> {
    pub fn new(group: &'a str, member: &'a str) -> JoinSpec<'a> {
        JoinSpec {
            group,
            member,
            instance: None,
            protocols: vec![("range", Bytes::from_static(b"m"))],
            session_ms: 10_000,
            rebalance_ms: 30_000,
        }
    }

    pub fn request(&self) -> JoinGroupRequest {
        let protocols = self
            .protocols
            .iter()
            .map(|(name, metadata)| {
                JoinGroupRequestProtocol::default()
                    .with_name(sb(name))
                    .with_metadata(metadata.clone())
            })
            .collect();
        JoinGroupRequest::default()
            .with_group_id(gid(self.group))
            .with_member_id(sb(self.member))
            .with_group_instance_id(self.instance.map(sb))
            .with_session_timeout_ms(self.session_ms)
            .with_rebalance_timeout_ms(self.rebalance_ms)
            .with_protocol_type(sb("consumer"))
            .with_protocols(protocols)
    }
}

impl Harness {
    pub fn join(&mut self, version: i16, spec: &JoinSpec) -> Token {
        self.send(version, GroupRequestBody::JoinGroup(spec.request()))
    }

    pub fn join_answer(&mut self, token: Token) -> JoinGroupResponse {
        match self.take(token) {
            ResponseKind::JoinGroup(r) => r,
            other => panic!("{other:?}"),
        }
    }

    /// A v5 JoinGroup through KIP-394: the member id is taken from MEMBER_ID_REQUIRED.
    pub fn join_new(&mut self, spec: &JoinSpec) -> (String, Token) {
        let first = self.join(5, spec);
        let answer = self.join_answer(first);
        assert_eq!(answer.error_code, GroupError::MemberIdRequired.code());
        let member = answer.member_id.as_str().to_owned();
        let spec = JoinSpec {
            member: &member,
            protocols: spec.protocols.clone(),
            ..*spec
        };
        let token = self.join(5, &spec);
        (member, token)
    }

    pub fn sync(
        &mut self,
        group: &str,
        generation: i32,
        member: &str,
        assignments: &[(&str, &[u8])],
    ) -> Token {
        let assignments = assignments
            .iter()
            .map(|(m, a)| {
                SyncGroupRequestAssignment::default()
                    .with_member_id(sb(m))
                    .with_assignment(Bytes::copy_from_slice(a))
            })
            .collect();
        let request = SyncGroupRequest::default()
            .with_group_id(gid(group))
            .with_generation_id(generation)
            .with_member_id(sb(member))
            .with_assignments(assignments);
        self.send(3, GroupRequestBody::SyncGroup(request))
    }

    pub fn sync_answer(&mut self, token: Token) -> SyncGroupResponse {
        match self.take(token) {
            ResponseKind::SyncGroup(r) => r,
            other => panic!("{other:?}"),
        }
    }

    pub fn send_heartbeat(
        &mut self,
        group: &str,
        generation: i32,
        member: &str,
        instance: Option<&str>,
    ) -> Token {
        let request = HeartbeatRequest::default()
            .with_group_id(gid(group))
            .with_generation_id(generation)
            .with_member_id(sb(member))
            .with_group_instance_id(instance.map(sb));
        self.send(4, GroupRequestBody::Heartbeat(request))
    }

    pub fn heartbeat_code(&mut self, token: Token) -> i16 {
        match self.take(token) {
            ResponseKind::Heartbeat(r) => r.error_code,
            other => panic!("{other:?}"),
        }
    }

    pub fn heartbeat(
        &mut self,
        group: &str,
        generation: i32,
        member: &str,
        instance: Option<&str>,
    ) -> i16 {
        let token = self.send_heartbeat(group, generation, member, instance);
        match self.take(token) {
            ResponseKind::Heartbeat(r) => r.error_code,
            other => panic!("{other:?}"),
        }
    }

    pub fn leave(
        &mut self,
        version: i16,
        group: &str,
        members: &[(&str, Option<&str>)],
    ) -> LeaveGroupResponse {
        let mut request = LeaveGroupRequest::default().with_group_id(gid(group));
        if version >= 3 {
            request.members = members
                .iter()
                .map(|(m, i)| {
                    MemberIdentity::default()
                        .with_member_id(sb(m))
                        .with_group_instance_id(i.map(sb))
                })
                .collect();
        } else {
            request.member_id = sb(members[0].0);
        }
        let token = self.send(version, GroupRequestBody::LeaveGroup(request));
        match self.take(token) {
            ResponseKind::LeaveGroup(r) => r,
            other => panic!("{other:?}"),
        }
    }

    /// Joins `count` dynamic members (v5) and completes the first rebalance with the leader
    /// assigning `a<i>` to each; returns (generation, leader, members in join order).
    pub fn stable_group(&mut self, group: &str, count: usize) -> (i32, String, Vec<String>) {
        let mut joins = Vec::new();
        for _ in 0..count {
            joins.push(self.join_new(&JoinSpec::new(group, "")));
        }
        // Each member arriving during the initial delay extends it.
        for _ in 0..=count {
            self.advance(3_000);
        }
        let mut leader = String::new();
        let mut generation = 0;
        for (member, token) in &joins {
            let answer = self.join_answer(*token);
            assert_eq!(answer.error_code, 0, "{member}");
            generation = answer.generation_id;
            leader = answer.leader.as_str().to_owned();
        }
        let members: Vec<String> = joins.into_iter().map(|(m, _)| m).collect();
        let assignments: Vec<(String, Vec<u8>)> = members
            .iter()
            .enumerate()
            .map(|(i, m)| (m.clone(), format!("a{i}").into_bytes()))
            .collect();
        let refs: Vec<(&str, &[u8])> = assignments
            .iter()
            .map(|(m, a)| (m.as_str(), a.as_slice()))
            .collect();
        let mut tokens = Vec::new();
        for m in &members {
            let sent: &[(&str, &[u8])] = if *m == leader { &refs } else { &[] };
            tokens.push(self.sync(group, generation, m, sent));
        }
        for token in tokens {
            assert_eq!(self.sync_answer(token).error_code, 0);
        }
        assert_eq!(self.state(group), "Stable");
        (generation, leader, members)
    }

    // ---- offsets ----

    pub fn commit(
        &mut self,
        version: i16,
        group: &str,
        generation: i32,
        member: &str,
        offsets: &[(&str, i32, i64)],
    ) -> Token {
        let mut topics: Vec<OffsetCommitRequestTopic> = Vec::new();
        for (topic, partition, offset) in offsets {
            let p = OffsetCommitRequestPartition::default()
                .with_partition_index(*partition)
                .with_committed_offset(*offset)
                .with_committed_leader_epoch(if version >= 6 { 3 } else { -1 })
                .with_committed_metadata(Some(sb("meta")));
            match topics.iter_mut().find(|t| t.name.as_str() == *topic) {
                Some(t) => t.partitions.push(p),
                None => topics.push(
                    OffsetCommitRequestTopic::default()
                        .with_name(TopicName(sb(topic)))
                        .with_partitions(vec![p]),
                ),
            }
        }
        let request = OffsetCommitRequest::default()
            .with_group_id(gid(group))
            .with_generation_id_or_member_epoch(generation)
            .with_member_id(sb(member))
            .with_topics(topics);
        self.send(version, GroupRequestBody::OffsetCommit(request))
    }

    pub fn commit_codes(&mut self, token: Token) -> Vec<i16> {
        match self.take(token) {
            ResponseKind::OffsetCommit(r) => r
                .topics
                .iter()
                .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
                .collect(),
            other => panic!("{other:?}"),
        }
    }

    /// OffsetFetch v7 of one partition: (offset, leader epoch, metadata, partition error),
    /// or the top-level error.
    pub fn fetch(
        &mut self,
        group: &str,
        topic: &str,
        partition: i32,
        require_stable: bool,
    ) -> Result<(i64, i32, String, i16), i16> {
        let request = OffsetFetchRequest::default()
            .with_group_id(gid(group))
            .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                .with_name(TopicName(sb(topic)))
                .with_partition_indexes(vec![partition])]))
            .with_require_stable(require_stable);
        let token = self.send(7, GroupRequestBody::OffsetFetch(request));
        let ResponseKind::OffsetFetch(r) = self.take(token) else {
            panic!("not an OffsetFetch answer")
        };
        if r.error_code != 0 {
            return Err(r.error_code);
        }
        let p = &r.topics[0].partitions[0];
        let metadata = p
            .metadata
            .as_ref()
            .map(|m| m.as_str().to_owned())
            .unwrap_or_default();
        Ok((
            p.committed_offset,
            p.committed_leader_epoch,
            metadata,
            p.error_code,
        ))
    }

    /// OffsetFetch v8 for several groups, all offsets of each: group → (error, offsets).
    pub fn fetch_v8(&mut self, groups: &[&str]) -> Vec<(i16, Offsets)> {
        let groups = groups
            .iter()
            .map(|g| {
                OffsetFetchRequestGroup::default()
                    .with_group_id(gid(g))
                    .with_topics(None)
            })
            .collect();
        let request = OffsetFetchRequest::default().with_groups(groups);
        let token = self.send(8, GroupRequestBody::OffsetFetch(request));
        let ResponseKind::OffsetFetch(r) = self.take(token) else {
            panic!("not an OffsetFetch answer")
        };
        r.groups
            .iter()
            .map(|g| {
                let offsets = g
                    .topics
                    .iter()
                    .flat_map(|t| {
                        t.partitions.iter().map(move |p| {
                            (
                                t.name.as_str().to_owned(),
                                p.partition_index,
                                p.committed_offset,
                            )
                        })
                    })
                    .collect();
                (g.error_code, offsets)
            })
            .collect()
    }
}

/// The record types of an append, for asserting what was written.
pub(crate) fn record_kinds(records: &[OffsetsRecord]) -> Vec<(&'static str, bool)> {
    records
        .iter()
        .map(|r| {
            let kind = match Record::decode(r).expect("the coordinator writes what it reads") {
                Record::OffsetCommit { .. } => "OffsetCommit",
                Record::GroupMetadata { .. } => "GroupMetadata",
                Record::ConsumerGroupMetadata { .. } => "ConsumerGroupMetadata",
                Record::ConsumerGroupPartitionMetadata { .. } => "PartitionMetadata",
                Record::ConsumerGroupMemberMetadata { .. } => "MemberMetadata",
                Record::ConsumerGroupTargetAssignmentMetadata { .. } => "TargetAssignmentMetadata",
                Record::ConsumerGroupTargetAssignmentMember { .. } => "TargetAssignmentMember",
                Record::ConsumerGroupCurrentMemberAssignment { .. } => "CurrentMemberAssignment",
            };
            (kind, r.value.is_some())
        })
        .collect()
}
