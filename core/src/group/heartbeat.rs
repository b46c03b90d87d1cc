//! KIP-848 consumer groups: ConsumerGroupHeartbeat, ConsumerGroupDescribe, member fencing,
//! session and rebalance timeouts, and rolling back a failed write.
//!
//! A heartbeat is handled like Kafka's `GroupMetadataManager.consumerGroupHeartbeat`, against
//! the group as it is, producing records:
//!
//! 1. the member is created or updated; a changed subscription (or a topic change seen since)
//!    recomputes the subscription metadata and bumps the group epoch;
//! 2. if the group epoch is ahead of the target assignment epoch, the assignor computes a new
//!    target and the members whose target changed get a record, then the new target epoch;
//! 3. the member is reconciled towards its target (`consumer::reconcile`): revoke, then
//!    assign only free partitions.
//!
//! The records are then replayed into the group through the same code that loads them, so
//! memory is a replay of the log, and the answer leaves once they are committed. A member
//! entering UnrevokedPartitions gets a rebalance timeout: if it has not moved past that epoch
//! when it fires, it is fenced. A member whose session lapses is fenced: its three member
//! records are tombstoned and the group epoch bumped, which rebalances the rest. Epoch -1
//! leaves the group; epoch -2 is a static member leaving for now, keeping its partitions until
//! it rejoins with epoch 0 under a new member id or its session lapses.
//!
//! A failed write restores the group as it was before it (Kafka reverts its timeline) and
//! voids the group's later writes; because those may still reach the log, the restored group
//! is then rewritten in full, with tombstones for members that exist only in the voided
//! writes, so the log's latest values are memory again.

use super::assignor::{assign, AssignmentSpec};
use super::classic::{ClassicGroup, ClassicState};
use super::config::{GroupConfig, ServerAssignor};
use super::consumer::{
    group_tombstones, is_subset, member_tombstones, reconcile, ConsumerGroup, ConsumerMember,
    MemberState, Owned, TopicInfo, LEAVE_GROUP_MEMBER_EPOCH, LEAVE_GROUP_STATIC_MEMBER_EPOCH,
};
use super::deadlines::{DeadlineKey, DeadlineKind};
use super::errors::GroupError;
use super::records::{Assignment, Record};
use super::responses::{consumer_heartbeat_error, s, with_error};
use super::{
    AppendAction, AppendId, GroupCoordinator, GroupEvent, GroupKind, GroupRequestContext, Reply,
    Token,
};
use crate::constants::*;
use crate::time::Instant;
use kafka_protocol::messages::consumer_group_describe_response as describe;
use kafka_protocol::messages::consumer_group_heartbeat_response as hb;
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, ConsumerGroupHeartbeatRequest,
    ConsumerGroupHeartbeatResponse, GroupId, ResponseKind, TopicName,
};
use std::collections::{BTreeMap, BTreeSet};

/// From this ConsumerGroupHeartbeat version the client generates its member id (KIP-1082).
const CLIENT_MEMBER_ID_VERSION: i16 = 1;

/// A refusal with Kafka's message.
type Refusal = (GroupError, Option<String>);

/// A heartbeat's records and answer, not yet applied.
struct Write {
    records: Vec<Record>,
    response: ConsumerGroupHeartbeatResponse,
    /// The subscription metadata was recomputed from the current topics.
    refreshed: bool,
}

impl Write {
    fn new(records: Vec<Record>, response: ConsumerGroupHeartbeatResponse) -> Write {
        Write {
            records,
            response,
            refreshed: false,
        }
    }
}

/// A heartbeat's outcome before it is applied.
struct Step {
    records: Vec<Record>,
    member: ConsumerMember,
    response: ConsumerGroupHeartbeatResponse,
    /// Some(Some(epoch)): arm the rebalance timeout for that epoch; Some(None): cancel it.
    rebalance_timer: Option<Option<i32>>,
    /// The subscription metadata was recomputed.
    refreshed: bool,
}

/// The request fields a heartbeat step reads.
struct Beat<'a> {
    member_id: String,
    member_epoch: i32,
    instance_id: Option<&'a str>,
    rack_id: Option<&'a str>,
    rebalance_timeout_ms: i32,
    subscribed: Option<BTreeSet<String>>,
    server_assignor: Option<&'a str>,
    owned: Owned,
    client_id: &'a str,
    client_host: &'a str,
}

impl GroupCoordinator {
    pub(super) fn on_consumer_group_heartbeat(
        &mut self,
        token: Token,
        context: &GroupRequestContext,
        request: ConsumerGroupHeartbeatRequest,
    ) {
        if let Err((error, message)) = validate(context.api_version, &request) {
            let body = consumer_heartbeat_error(error, message.as_deref());
            return self.rt.respond_now(token, body);
        }
        let group_id = request.group_id.as_str();
        let partition = match self.coordinator_for(group_id) {
            Ok(partition) => partition,
            Err(error) => {
                let body = consumer_heartbeat_error(error, None);
                return self.rt.respond_now(token, body);
            }
        };
        let epoch = request.member_epoch;
        let result =
            if epoch == LEAVE_GROUP_MEMBER_EPOCH || epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH {
                self.consumer_leave(group_id, &request)
            } else {
                self.consumer_heartbeat(group_id, partition, context, &request)
            };
        match result {
            Ok(write) => {
                let body = ResponseKind::ConsumerGroupHeartbeat(write.response);
                let reply = Some(Reply { token, body });
                self.commit_consumer_write(group_id, write.records, reply, write.refreshed);
            }
            Err((error, message)) => {
                let body = consumer_heartbeat_error(error, message.as_deref());
                self.rt.reply(partition, token, body);
            }
        }
    }

    /// A regular heartbeat: returns the records to write and the answer.
    fn consumer_heartbeat(
        &mut self,
        group_id: &str,
        partition: i32,
        context: &GroupRequestContext,
        request: &ConsumerGroupHeartbeatRequest,
    ) -> Result<Write, Refusal> {
        let create = request.member_epoch == 0;
        let mut prefix = self.prepare_consumer_group(group_id, partition, create)?;
        let member_id = match request.member_id.as_str() {
            "" => self.rt.random_member_id(),
            id => id.to_owned(),
        };
        let beat = Beat {
            member_id,
            member_epoch: request.member_epoch,
            instance_id: request.instance_id.as_ref().map(|i| i.as_str()),
            rack_id: request.rack_id.as_ref().map(|r| r.as_str()),
            rebalance_timeout_ms: request.rebalance_timeout_ms,
            subscribed: request
                .subscribed_topic_names
                .as_ref()
                .map(|names| names.iter().map(|n| n.as_str().to_owned()).collect()),
            server_assignor: request.server_assignor.as_ref().map(|a| a.as_str()),
            owned: request.topic_partitions.as_ref().map(|tps| {
                let mut owned = Assignment::new();
                for tp in tps {
                    owned
                        .entry(tp.topic_id)
                        .or_default()
                        .extend(tp.partitions.iter().copied());
                }
                owned
            }),
            client_id: &context.client_id,
            client_host: &context.client_host,
        };
        let empty = ConsumerGroup::default();
        let group = self
            .groups
            .get(group_id)
            .and_then(|e| e.consumer())
            .unwrap_or(&empty);
        let env = Env {
            config: &self.config,
            topics: &self.topics,
            group_id,
        };
        let step = match env.step(group, &beat) {
            Ok(step) => step,
            Err(refusal) => {
                self.drop_if_created(group_id);
                return Err(refusal);
            }
        };
        self.after_step(group_id, &step);
        prefix.extend(step.records);
        Ok(Write {
            records: prefix,
            response: step.response,
            refreshed: step.refreshed,
        })
    }

    /// Makes sure `group_id` is a consumer group (creating it, or replacing an empty classic
    /// group, on a join); returns the records that replacement needs.
    fn prepare_consumer_group(
        &mut self,
        group_id: &str,
        partition: i32,
        create: bool,
    ) -> Result<Vec<Record>, Refusal> {
        let not_found = |what: &str| {
            (
                GroupError::GroupIdNotFound,
                Some(format!("Group {group_id} {what}.")),
            )
        };
        match self.groups.get(group_id).map(|e| &e.kind) {
            Some(GroupKind::Consumer(_)) => Ok(Vec::new()),
            None if !create => Err(not_found("not found")),
            None => {
                let kind = GroupKind::Consumer(ConsumerGroup::default());
                if self.create_group(group_id, partition, kind) {
                    Ok(Vec::new())
                } else {
                    Err((GroupError::CoordinatorNotAvailable, None))
                }
            }
            Some(GroupKind::Classic(g)) if create && g.state == ClassicState::Empty => {
                let entry = self.groups.get_mut(group_id).expect("matched above");
                entry.kind = GroupKind::Consumer(ConsumerGroup::default());
                self.rt.deadlines.cancel_group(group_id);
                let group = group_id.to_owned();
                Ok(vec![Record::GroupMetadata { group, value: None }])
            }
            Some(GroupKind::Classic(_)) => Err(not_found("is not a consumer group")),
        }
    }

    /// Undoes a group creation (or classic replacement) whose first heartbeat was refused.
    fn drop_if_created(&mut self, group_id: &str) {
        let Some(entry) = self.groups.get_mut(group_id) else {
            return;
        };
        let fresh = entry
            .consumer()
            .is_some_and(|g| *g == ConsumerGroup::default());
        if fresh {
            if entry.offsets.is_empty() && entry.pending_offsets.is_empty() {
                self.groups.remove(group_id);
            } else {
                entry.kind = GroupKind::Classic(ClassicGroup::new(self.rt.now_ms()));
            }
        }
    }

    /// Timers a successful heartbeat sets.
    fn after_step(&mut self, group_id: &str, step: &Step) {
        let member = &step.member.member_id;
        let at = self.rt.now + self.config.consumer_session_timeout;
        let session = DeadlineKey::member(group_id, DeadlineKind::ConsumerSession, member);
        self.rt.set_deadline(session, at, 0);
        let rebalance = DeadlineKey::member(group_id, DeadlineKind::ConsumerRebalance, member);
        match step.rebalance_timer {
            Some(Some(epoch)) => {
                let at = self
                    .rt
                    .after_ms(i64::from(step.member.rebalance_timeout_ms));
                self.rt.set_deadline(rebalance, at, epoch);
            }
            Some(None) => self.rt.deadlines.cancel(&rebalance),
            None => {}
        }
    }

    /// Epoch -1 (leave) or -2 (static member leaving for now).
    fn consumer_leave(
        &mut self,
        group_id: &str,
        request: &ConsumerGroupHeartbeatRequest,
    ) -> Result<Write, Refusal> {
        let not_found = (
            GroupError::GroupIdNotFound,
            Some(format!("Group {group_id} not found.")),
        );
        let group = self
            .groups
            .get(group_id)
            .and_then(|e| e.consumer())
            .ok_or(not_found)?;
        let epoch = request.member_epoch;
        let member = match request.instance_id.as_ref().map(|i| i.as_str()) {
            None => group.members.get(request.member_id.as_str()),
            Some(instance) => {
                let member = group
                    .static_member(instance)
                    .ok_or((GroupError::UnknownMemberId, None))?;
                if member.member_id != request.member_id.as_str() {
                    return Err((GroupError::FencedInstanceId, None));
                }
                Some(member)
            }
        };
        let member = member.ok_or((GroupError::UnknownMemberId, None))?.clone();
        let response = ConsumerGroupHeartbeatResponse::default()
            .with_member_id(Some(s(&member.member_id)))
            .with_member_epoch(epoch);
        if epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH {
            let mut leaving = member.clone();
            leaving.member_epoch = LEAVE_GROUP_STATIC_MEMBER_EPOCH;
            leaving.pending_revocation = Assignment::new();
            let record = Record::ConsumerGroupCurrentMemberAssignment {
                group: group_id.to_owned(),
                member: member.member_id.clone(),
                value: Some(leaving.current_value()),
            };
            return Ok(Write::new(vec![record], response));
        }
        let records = self.fence_records(group_id, &member.member_id);
        Ok(Write::new(records, response))
    }

    /// The records that fence a member: its tombstones, new subscription metadata if it
    /// changes, and a group epoch bump. Cancels its timers.
    fn fence_records(&mut self, group_id: &str, member_id: &str) -> Vec<Record> {
        self.rt.deadlines.cancel_member(group_id, member_id);
        let group = self
            .groups
            .get(group_id)
            .and_then(|e| e.consumer())
            .expect("member found");
        let mut records: Vec<Record> = member_tombstones(group_id, member_id).into();
        let leaving = group.members.get(member_id);
        let counts = group.subscribed_topic_names(leaving, None);
        let metadata = subscription_metadata(&counts, &self.topics);
        if metadata != group.subscription_metadata {
            records.push(partition_metadata_record(group_id, &metadata));
        }
        records.push(Record::ConsumerGroupMetadata {
            group: group_id.to_owned(),
            value: Some(group.group_epoch.saturating_add(1)),
        });
        records
    }

    /// Replays `records` into the group and appends them; `reply` leaves once they are
    /// committed (at once behind earlier appends when there are none). `refreshed`: the write
    /// took the topic changes into account, so the group stops looking for them; the flag is
    /// cleared after the snapshot, so a rolled-back write leaves them still to be seen.
    fn commit_consumer_write(
        &mut self,
        group_id: &str,
        records: Vec<Record>,
        reply: Option<Reply>,
        refreshed: bool,
    ) {
        let entry = self.groups.get_mut(group_id).expect("the group exists");
        let (partition, incarnation) = (entry.partition, entry.incarnation);
        let before = (!records.is_empty()).then(|| Box::new(entry.kind.clone()));
        if let (true, GroupKind::Consumer(group)) = (refreshed, &mut entry.kind) {
            group.metadata_refresh = false;
        }
        let Some(before) = before else {
            if let Some(reply) = reply {
                self.rt.reply(partition, reply.token, reply.body);
            }
            return;
        };
        if !matches!(entry.kind, GroupKind::Consumer(_)) {
            entry.kind = GroupKind::Consumer(ConsumerGroup::default());
        }
        let GroupKind::Consumer(group) = &mut entry.kind else {
            unreachable!("made a consumer group above")
        };
        let mut members = BTreeSet::new();
        for record in &records {
            if let Record::GroupMetadata { .. } = record {
                continue; // The classic group this one replaced.
            }
            if let Some(member) = record_member(record) {
                members.insert(member.to_owned());
            }
            if let Err(reason) = group.apply(record, true) {
                unreachable!("a record the coordinator built does not apply: {reason}");
            }
        }
        if cfg!(debug_assertions) {
            group.check_ownership();
        }
        let action = AppendAction::Consumer {
            before: Some(before),
            members,
            reply,
        };
        self.rt
            .append((group_id, partition, incarnation), records, action);
    }

    /// A member's session lapsed: fence it.
    pub(super) fn on_consumer_session_timeout(&mut self, group_id: &str, member_id: &str) {
        self.fence_member(group_id, member_id, "session timed out");
    }

    /// A member still revoking at `epoch` when its rebalance timeout fired: fence it.
    pub(super) fn on_consumer_rebalance_timeout(
        &mut self,
        group_id: &str,
        member_id: &str,
        epoch: i32,
    ) {
        let at_epoch = self
            .groups
            .get(group_id)
            .and_then(|e| e.consumer())
            .and_then(|g| g.members.get(member_id))
            .is_some_and(|m| m.member_epoch == epoch);
        if at_epoch {
            self.fence_member(
                group_id,
                member_id,
                "did not revoke within its rebalance timeout",
            );
        }
    }

    fn fence_member(&mut self, group_id: &str, member_id: &str, reason: &'static str) {
        let exists = self
            .groups
            .get(group_id)
            .and_then(|e| e.consumer())
            .is_some_and(|g| g.members.contains_key(member_id));
        if !exists {
            return;
        }
        if self.rt.appends.len() >= GROUP_APPENDS_IN_FLIGHT_MAX + GROUP_MEMBERS_MAX - 1 {
            // No room to write the fence now: try again shortly.
            let key = DeadlineKey::member(group_id, DeadlineKind::ConsumerSession, member_id);
            let at = self.rt.after_ms(1_000);
            return self.rt.set_deadline(key, at, 0);
        }
        let records = self.fence_records(group_id, member_id);
        let event = GroupEvent::MemberRemoved {
            group: group_id.to_owned(),
            member: member_id.to_owned(),
            reason,
        };
        self.rt.event(event);
        self.commit_consumer_write(group_id, records, None, false);
    }

    /// Topic metadata changed: groups subscribed to a changed topic recompute their
    /// subscription metadata on their next heartbeat.
    pub(super) fn request_metadata_refresh(&mut self, changed: &BTreeSet<String>) {
        for entry in self.groups.values_mut() {
            if let GroupKind::Consumer(group) = &mut entry.kind {
                let subscribed = group
                    .members
                    .values()
                    .any(|m| m.subscribed_topic_names.iter().any(|t| changed.contains(t)));
                group.metadata_refresh |= subscribed;
            }
        }
    }

    /// A classic JoinGroup found an empty consumer group: replace it (Kafka deletes an empty
    /// consumer group when a classic member joins).
    pub(super) fn replace_empty_consumer_group(&mut self, group_id: &str) {
        let now_ms = self.rt.now_ms();
        let entry = self
            .groups
            .get_mut(group_id)
            .expect("checked by the caller");
        entry.kind = GroupKind::Classic(ClassicGroup::new(now_ms));
        let key = (group_id, entry.partition, entry.incarnation);
        self.rt.deadlines.cancel_group(group_id);
        let records = group_tombstones(group_id).into();
        self.rt.append(key, records, AppendAction::Background);
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_consumer_appended(
        &mut self,
        append_id: AppendId,
        partition: i32,
        group_id: &str,
        incarnation: u64,
        before: Option<Box<GroupKind>>,
        members: BTreeSet<String>,
        reply: Option<Reply>,
        error: Option<GroupError>,
    ) {
        let Some(error) = error else {
            if let Some(reply) = reply {
                self.rt.defer(partition, append_id, reply);
            }
            return;
        };
        if let Some(mut reply) = reply {
            with_error(&mut reply.body, error.code());
            self.rt.respond_now(reply.token, reply.body);
        }
        let current = self
            .groups
            .get(group_id)
            .is_some_and(|e| e.incarnation == incarnation);
        let Some(before) = before.filter(|_| current) else {
            return;
        };
        let mut touched = members;
        let voided = self.void_later_writes(append_id, group_id, incarnation, error, &mut touched);
        let entry = self.groups.get_mut(group_id).expect("checked above");
        entry.kind = *before;
        // Topics may have changed while the write was pending, and the snapshot predates
        // that: look at them again on the next heartbeat (a no-op if nothing changed).
        if let GroupKind::Consumer(group) = &mut entry.kind {
            group.metadata_refresh = true;
        }
        self.restore_sessions(group_id);
        if voided {
            self.rewrite_group(group_id, &touched);
        }
    }

    /// Fails every later write of the group (their answers get `error`); true if any.
    fn void_later_writes(
        &mut self,
        append_id: AppendId,
        group_id: &str,
        incarnation: u64,
        error: GroupError,
        touched: &mut BTreeSet<String>,
    ) -> bool {
        let later: Vec<AppendId> = self
            .rt
            .appends
            .range(append_id + 1..)
            .filter(|(_, p)| p.group_id == group_id && p.incarnation == incarnation)
            .filter(|(_, p)| matches!(p.action, AppendAction::Consumer { .. }))
            .map(|(id, _)| *id)
            .collect();
        for id in &later {
            let pending = self.rt.appends.get_mut(id).expect("listed above");
            let action = std::mem::replace(&mut pending.action, AppendAction::Background);
            if let AppendAction::Consumer { members, reply, .. } = action {
                touched.extend(members);
                if let Some(mut reply) = reply {
                    with_error(&mut reply.body, error.code());
                    self.rt.respond_now(reply.token, reply.body);
                }
            }
        }
        !later.is_empty()
    }

    /// Restored members need a session clock.
    fn restore_sessions(&mut self, group_id: &str) {
        let Some(group) = self.groups.get(group_id).and_then(|e| e.consumer()) else {
            return;
        };
        let at: Instant = self.rt.now + self.config.consumer_session_timeout;
        let keys: Vec<DeadlineKey> = group
            .members
            .keys()
            .map(|m| DeadlineKey::member(group_id, DeadlineKind::ConsumerSession, m))
            .filter(|k| !self.rt.deadlines.contains(k))
            .collect();
        for key in keys {
            self.rt.set_deadline(key, at, 0);
        }
    }

    /// Writes the group's whole state (or its deletion) after a rollback that voided writes
    /// which may still reach the log.
    fn rewrite_group(&mut self, group_id: &str, touched: &BTreeSet<String>) {
        let entry = self.groups.get(group_id).expect("restored");
        let key = (group_id, entry.partition, entry.incarnation);
        let mut records: Vec<Record> = Vec::new();
        let present: BTreeSet<String> = match &entry.kind {
            GroupKind::Consumer(g) => g.members.keys().cloned().collect(),
            GroupKind::Classic(_) => BTreeSet::new(),
        };
        for member in touched.difference(&present) {
            records.extend(member_tombstones(group_id, member));
        }
        match &entry.kind {
            GroupKind::Consumer(g) => records.extend(g.snapshot_records(group_id)),
            GroupKind::Classic(_) => records.extend(group_tombstones(group_id)),
        }
        self.rt.append(key, records, AppendAction::Background);
    }

    pub(super) fn on_consumer_group_describe(
        &mut self,
        token: Token,
        version: i16,
        request: ConsumerGroupDescribeRequest,
    ) {
        let groups = request
            .group_ids
            .iter()
            .take(GROUP_REQUEST_GROUPS_MAX)
            .map(|id| self.describe_consumer_group(version, id.as_str()))
            .collect();
        let response = ConsumerGroupDescribeResponse::default().with_groups(groups);
        self.rt
            .respond_now(token, ResponseKind::ConsumerGroupDescribe(response));
    }

    fn describe_consumer_group(&self, version: i16, group_id: &str) -> describe::DescribedGroup {
        let error = |code: GroupError, message: Option<String>| {
            describe::DescribedGroup::default()
                .with_group_id(GroupId(s(group_id)))
                .with_error_code(code.code())
                .with_error_message(message.map(|m| s(&m)))
        };
        if let Err(e) = self.coordinator_for(group_id) {
            return error(e, None);
        }
        let group = match self.groups.get(group_id).map(|e| &e.kind) {
            None => {
                return error(
                    GroupError::GroupIdNotFound,
                    Some(format!("Group {group_id} not found.")),
                )
            }
            Some(GroupKind::Classic(_)) => {
                let message = format!("Group {group_id} is not a consumer group.");
                return error(GroupError::GroupIdNotFound, Some(message));
            }
            Some(GroupKind::Consumer(g)) => g,
        };
        let assignor = group.preferred_assignor(None, self.config.consumer_default_assignor);
        let members = group
            .members
            .values()
            .map(|m| self.describe_member(version, group, m))
            .collect();
        describe::DescribedGroup::default()
            .with_group_id(GroupId(s(group_id)))
            .with_group_state(s(group.state().name()))
            .with_group_epoch(group.group_epoch)
            .with_assignment_epoch(group.assignment_epoch)
            .with_assignor_name(s(assignor.name()))
            .with_members(members)
    }

    fn describe_member(
        &self,
        version: i16,
        group: &ConsumerGroup,
        m: &ConsumerMember,
    ) -> describe::Member {
        let target = group.target.get(&m.member_id).cloned().unwrap_or_default();
        describe::Member::default()
            .with_member_id(s(&m.member_id))
            .with_instance_id(m.instance_id.as_deref().map(s))
            .with_rack_id(m.rack_id.as_deref().map(s))
            .with_member_epoch(m.member_epoch)
            .with_client_id(s(&m.client_id))
            .with_client_host(s(&m.client_host))
            .with_subscribed_topic_names(
                m.subscribed_topic_names
                    .iter()
                    .map(|t| TopicName(s(t)))
                    .collect(),
            )
            .with_assignment(self.describe_assignment(&m.assigned))
            .with_target_assignment(self.describe_assignment(&target))
            // Member type (v1): 1 is a member of the consumer protocol.
            .with_member_type(if version >= 1 { 1 } else { -1 })
    }

    fn describe_assignment(&self, assignment: &Assignment) -> describe::Assignment {
        let topic_partitions = assignment
            .iter()
            .map(|(id, partitions)| {
                let name = self
                    .topics
                    .iter()
                    .find(|(_, info)| info.topic_id == *id)
                    .map(|(name, _)| name.as_str())
                    .unwrap_or_default();
                describe::TopicPartitions::default()
                    .with_topic_id(*id)
                    .with_topic_name(TopicName(s(name)))
                    .with_partitions(partitions.iter().copied().collect())
            })
            .collect();
        describe::Assignment::default().with_topic_partitions(topic_partitions)
    }
}

/// What a heartbeat step reads besides the group.
struct Env<'a> {
    config: &'a GroupConfig,
    topics: &'a BTreeMap<String, TopicInfo>,
    group_id: &'a str,
}

impl Env<'_> {
    /// Kafka's `consumerGroupHeartbeat` against `group` as it is: the records it writes.
    fn step(&self, group: &ConsumerGroup, beat: &Beat) -> Result<Step, Refusal> {
        let max = self.config.consumer_max_size;
        if group.members.len() >= max && !group.members.contains_key(&beat.member_id) {
            let message =
                format!("The consumer group has reached its maximum capacity of {max} members.");
            return Err((GroupError::GroupMaxSizeReached, Some(message)));
        }
        let mut records = Vec::new();
        let member = self.member(group, beat, &mut records)?;
        let updated = self.updated(&member, beat);
        let mut bump = false;
        if updated.metadata_differs(&member) {
            records.push(Record::ConsumerGroupMemberMetadata {
                group: self.group_id.to_owned(),
                member: updated.member_id.clone(),
                value: Some(updated.metadata_value()),
            });
            bump = updated.subscribed_topic_names != member.subscribed_topic_names;
        }
        let mut group_epoch = group.group_epoch;
        let refreshed = bump || group.metadata_refresh;
        if refreshed {
            let counts = group.subscribed_topic_names(Some(&member), Some(&updated));
            let metadata = subscription_metadata(&counts, self.topics);
            if metadata != group.subscription_metadata {
                bump = true;
                records.push(partition_metadata_record(self.group_id, &metadata));
            }
            if bump {
                group_epoch = group_epoch.saturating_add(1);
                let value = Some(group_epoch);
                let group = self.group_id.to_owned();
                records.push(Record::ConsumerGroupMetadata { group, value });
            }
        }
        let (target_epoch, target) = if group_epoch > group.assignment_epoch {
            self.new_target(group, group_epoch, &updated, &mut records)
        } else {
            (group.assignment_epoch, current_target(group, &updated))
        };
        let mut rebalance_timer = None;
        let reconciled = if updated.is_reconciled_to(target_epoch) {
            updated
        } else {
            let next = reconcile(&updated, target_epoch, &target, &beat.owned, group)
                .map_err(|e| (e, Some("The member is in an unknown state.".to_owned())))?;
            if next != updated {
                records.push(Record::ConsumerGroupCurrentMemberAssignment {
                    group: self.group_id.to_owned(),
                    member: next.member_id.clone(),
                    value: Some(next.current_value()),
                });
                let revoking = next.state == MemberState::UnrevokedPartitions;
                rebalance_timer = Some(revoking.then_some(next.member_epoch));
            }
            next
        };
        let response = self.response(beat, &member, &reconciled);
        Ok(Step {
            records,
            member: reconciled,
            response,
            rebalance_timer,
            refreshed,
        })
    }

    /// The member the heartbeat is for: existing, new, or a static member's replacement.
    fn member(
        &self,
        group: &ConsumerGroup,
        beat: &Beat,
        records: &mut Vec<Record>,
    ) -> Result<ConsumerMember, Refusal> {
        let create = beat.member_epoch == 0;
        let Some(instance) = beat.instance_id else {
            let member = match group.members.get(&beat.member_id) {
                Some(m) => m.clone(),
                None if create => ConsumerMember::new(&beat.member_id),
                None => {
                    let message = format!(
                        "Member {} is not a member of group {}.",
                        beat.member_id, self.group_id
                    );
                    return Err((GroupError::UnknownMemberId, Some(message)));
                }
            };
            check_epoch(&member, beat)?;
            return Ok(member);
        };
        let existing = group.static_member(instance);
        match existing {
            None if create => Ok(group
                .members
                .get(&beat.member_id)
                .cloned()
                .unwrap_or_else(|| ConsumerMember::new(&beat.member_id))),
            None => Err((
                GroupError::UnknownMemberId,
                Some(format!("Instance id {instance} is unknown.")),
            )),
            Some(existing) if create => {
                if existing.member_epoch != LEAVE_GROUP_STATIC_MEMBER_EPOCH {
                    let message = format!(
                        "Static member {} with instance id {instance} cannot join the group because the instance id is owned by {} member.",
                        beat.member_id, existing.member_id
                    );
                    return Err((GroupError::UnreleasedInstanceId, Some(message)));
                }
                Ok(self.replace_static(group, existing, &beat.member_id, records))
            }
            Some(existing) if existing.member_id != beat.member_id => {
                Err((GroupError::FencedInstanceId, None))
            }
            Some(existing) => {
                check_epoch(existing, beat)?;
                Ok(existing.clone())
            }
        }
    }

    /// A static member rejoining after leaving with -2: a copy under its new id, at epoch 0,
    /// keeping the partitions and target of the old one (Kafka's `replaceMember`).
    fn replace_static(
        &self,
        group: &ConsumerGroup,
        old: &ConsumerMember,
        new_id: &str,
        records: &mut Vec<Record>,
    ) -> ConsumerMember {
        let mut member = old.clone();
        member.member_id = new_id.to_owned();
        member.member_epoch = 0;
        member.previous_member_epoch = 0;
        records.extend(member_tombstones(self.group_id, &old.member_id));
        let g = self.group_id.to_owned();
        records.push(Record::ConsumerGroupMemberMetadata {
            group: g.clone(),
            member: new_id.to_owned(),
            value: Some(member.metadata_value()),
        });
        records.push(Record::ConsumerGroupTargetAssignmentMember {
            group: g.clone(),
            member: new_id.to_owned(),
            value: Some(
                group
                    .target
                    .get(&old.member_id)
                    .cloned()
                    .unwrap_or_default(),
            ),
        });
        records.push(Record::ConsumerGroupCurrentMemberAssignment {
            group: g,
            member: new_id.to_owned(),
            value: Some(member.current_value()),
        });
        member
    }

    /// The member with what the heartbeat changes (absent fields keep their value).
    fn updated(&self, member: &ConsumerMember, beat: &Beat) -> ConsumerMember {
        let mut updated = member.clone();
        if let Some(instance) = beat.instance_id {
            updated.instance_id = Some(instance.to_owned());
        }
        if let Some(rack) = beat.rack_id {
            updated.rack_id = Some(rack.to_owned());
        }
        if beat.rebalance_timeout_ms != -1 {
            updated.rebalance_timeout_ms = beat.rebalance_timeout_ms;
        }
        if let Some(assignor) = beat.server_assignor {
            updated.server_assignor = Some(assignor.to_owned());
        }
        if let Some(subscribed) = &beat.subscribed {
            updated.subscribed_topic_names = subscribed.clone();
        }
        updated.client_id = beat.client_id.to_owned();
        updated.client_host = beat.client_host.to_owned();
        updated
    }

    /// Computes the target assignment for `epoch`: records for every member whose target
    /// changes, then the new target epoch. Returns the updated member's target.
    fn new_target(
        &self,
        group: &ConsumerGroup,
        epoch: i32,
        updated: &ConsumerMember,
        records: &mut Vec<Record>,
    ) -> (i32, Assignment) {
        let mut subscriptions: BTreeMap<String, BTreeSet<String>> = group
            .members
            .values()
            .map(|m| (m.member_id.clone(), m.subscribed_topic_names.clone()))
            .collect();
        // A static member replaced by this one leaves the assignment.
        if let Some(previous) = updated
            .instance_id
            .as_ref()
            .and_then(|i| group.static_members.get(i))
        {
            if *previous != updated.member_id {
                subscriptions.remove(previous);
            }
        }
        subscriptions.insert(
            updated.member_id.clone(),
            updated.subscribed_topic_names.clone(),
        );
        let mut current = group.target.clone();
        if !current.contains_key(&updated.member_id) {
            current.insert(updated.member_id.clone(), current_target(group, updated));
        }
        let counts = group.subscribed_topic_names(Some(updated), Some(updated));
        let topics = subscription_metadata(&counts, self.topics);
        let assignor =
            group.preferred_assignor(Some(updated), self.config.consumer_default_assignor);
        let spec = AssignmentSpec {
            members: &subscriptions,
            topics: &topics,
            current: &current,
        };
        let result = assign(assignor, &spec);
        for (member, assignment) in &result {
            if group.target.get(member) != Some(assignment) {
                records.push(Record::ConsumerGroupTargetAssignmentMember {
                    group: self.group_id.to_owned(),
                    member: member.clone(),
                    value: Some(assignment.clone()),
                });
            }
        }
        let group_id = self.group_id.to_owned();
        records.push(Record::ConsumerGroupTargetAssignmentMetadata {
            group: group_id,
            value: Some(epoch),
        });
        let mine = result.get(&updated.member_id).cloned().unwrap_or_default();
        (epoch, mine)
    }

    fn response(
        &self,
        beat: &Beat,
        before: &ConsumerMember,
        after: &ConsumerMember,
    ) -> ConsumerGroupHeartbeatResponse {
        let interval = self.config.consumer_heartbeat_interval.as_millis() as i32;
        let mut response = ConsumerGroupHeartbeatResponse::default()
            .with_member_id(Some(s(&after.member_id)))
            .with_member_epoch(after.member_epoch)
            .with_heartbeat_interval_ms(interval);
        // The assignment goes out on a full request (joining, or after an error) or when it
        // changed.
        let full = beat.member_epoch == 0
            || (beat.rebalance_timeout_ms != -1
                && beat.subscribed.is_some()
                && beat.owned.is_some());
        if full || before.assigned != after.assigned {
            let topic_partitions = after
                .assigned
                .iter()
                .map(|(id, ps)| {
                    hb::TopicPartitions::default()
                        .with_topic_id(*id)
                        .with_partitions(ps.iter().copied().collect())
                })
                .collect();
            response.assignment =
                Some(hb::Assignment::default().with_topic_partitions(topic_partitions));
        }
        response
    }
}

/// Kafka's `throwIfConsumerGroupMemberEpochIsInvalid`: a larger epoch is fenced; a smaller one
/// only if it is not the previous epoch with owned partitions within the assignment (the
/// answer that bumped the epoch may have been lost).
fn check_epoch(member: &ConsumerMember, beat: &Beat) -> Result<(), Refusal> {
    let fenced = |which: &str| {
        let message = format!(
            "The consumer group member has a {which} member epoch ({}) than the one known by the group coordinator ({}). The member must abandon all its partitions and rejoin.",
            beat.member_epoch, member.member_epoch
        );
        Err((GroupError::FencedMemberEpoch, Some(message)))
    };
    if beat.member_epoch > member.member_epoch {
        return fenced("greater");
    }
    if beat.member_epoch < member.member_epoch
        && (beat.member_epoch != member.previous_member_epoch
            || !is_subset(&beat.owned, &member.assigned))
    {
        return fenced("smaller");
    }
    Ok(())
}

/// The member's current target: its own, or (for a static replacement) the old id's.
fn current_target(group: &ConsumerGroup, member: &ConsumerMember) -> Assignment {
    if let Some(target) = group.target.get(&member.member_id) {
        return target.clone();
    }
    member
        .instance_id
        .as_ref()
        .and_then(|i| group.static_members.get(i))
        .and_then(|old| group.target.get(old))
        .cloned()
        .unwrap_or_default()
}

/// The metadata of the subscribed topics that exist.
fn subscription_metadata(
    counts: &BTreeMap<String, usize>,
    topics: &BTreeMap<String, TopicInfo>,
) -> BTreeMap<String, TopicInfo> {
    counts
        .keys()
        .filter_map(|name| topics.get(name).map(|info| (name.clone(), info.clone())))
        .collect()
}

fn partition_metadata_record(group_id: &str, metadata: &BTreeMap<String, TopicInfo>) -> Record {
    let group = ConsumerGroup {
        subscription_metadata: metadata.clone(),
        ..ConsumerGroup::default()
    };
    Record::ConsumerGroupPartitionMetadata {
        group: group_id.to_owned(),
        value: Some(group.subscription_value()),
    }
}

fn record_member(record: &Record) -> Option<&str> {
    match record {
        Record::ConsumerGroupMemberMetadata { member, .. }
        | Record::ConsumerGroupTargetAssignmentMember { member, .. }
        | Record::ConsumerGroupCurrentMemberAssignment { member, .. } => Some(member),
        _ => None,
    }
}

/// Kafka's `throwIfConsumerGroupHeartbeatRequestIsInvalid`, plus this coordinator's limits.
fn validate(version: i16, r: &ConsumerGroupHeartbeatRequest) -> Result<(), Refusal> {
    let invalid = |m: &str| Err((GroupError::InvalidRequest, Some(m.to_owned())));
    let epoch = r.member_epoch;
    if (version >= CLIENT_MEMBER_ID_VERSION || epoch > 0 || epoch == LEAVE_GROUP_MEMBER_EPOCH)
        && r.member_id.is_empty()
    {
        return invalid("MemberId can't be empty.");
    }
    if r.group_id.is_empty() {
        return invalid("GroupId can't be empty.");
    }
    if r.instance_id.as_ref().is_some_and(|i| i.is_empty()) {
        return invalid("InstanceId can't be empty.");
    }
    if r.rack_id.as_ref().is_some_and(|i| i.is_empty()) {
        return invalid("RackId can't be empty.");
    }
    if epoch == 0 {
        if r.rebalance_timeout_ms == -1 {
            return invalid("RebalanceTimeoutMs must be provided in first request.");
        }
        if r.topic_partitions
            .as_ref()
            .is_none_or(|tps| !tps.is_empty())
        {
            return invalid("TopicPartitions must be empty when (re-)joining.");
        }
        if r.subscribed_topic_names.is_none() && r.subscribed_topic_regex.is_none() {
            return invalid("Either SubscribedTopicNames or SubscribedTopicRegex must be non-null when (re-)joining.");
        }
    } else if epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH && r.instance_id.is_none() {
        return invalid("InstanceId can't be null.");
    } else if epoch < LEAVE_GROUP_STATIC_MEMBER_EPOCH {
        return invalid("MemberEpoch is invalid.");
    }
    if let Some(assignor) = &r.server_assignor {
        if ServerAssignor::parse(assignor.as_str()).is_none() {
            let message = format!(
                "ServerAssignor {} is not supported. Supported assignors: uniform, range.",
                assignor.as_str()
            );
            return Err((GroupError::UnsupportedAssignor, Some(message)));
        }
    }
    validate_limits(r)
}

/// Regex subscriptions are not served; strings and lists are bounded.
fn validate_limits(r: &ConsumerGroupHeartbeatRequest) -> Result<(), Refusal> {
    let invalid = |m: &str| Err((GroupError::InvalidRequest, Some(m.to_owned())));
    if r.subscribed_topic_regex.is_some() {
        return invalid("SubscribedTopicRegex is not supported by this coordinator.");
    }
    let strings = [
        Some(r.group_id.as_str()),
        Some(r.member_id.as_str()),
        r.instance_id.as_ref().map(|i| i.as_str()),
        r.rack_id.as_ref().map(|i| i.as_str()),
    ];
    if strings
        .iter()
        .flatten()
        .any(|s| s.len() > GROUP_STRING_BYTES_MAX)
    {
        return invalid("An id is longer than the coordinator keeps.");
    }
    let topics = r.subscribed_topic_names.as_ref().map_or(0, Vec::len);
    let owned: usize = r
        .topic_partitions
        .iter()
        .flatten()
        .map(|tp| tp.partitions.len())
        .sum();
    if topics > GROUP_TOPICS_MAX || owned > GROUP_REQUEST_PARTITIONS_MAX {
        return invalid("Too many topics or partitions in one heartbeat.");
    }
    Ok(())
}
