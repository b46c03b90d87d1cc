//! Offsets: OffsetCommit, OffsetFetch, OffsetDelete and retention.
//!
//! A commit is validated like Kafka's (`OffsetMetadataManager.validateOffsetCommit`): with a
//! negative generation and no member, a simple group (or an empty one) takes it; otherwise the
//! member must be in the group at its generation (classic: ILLEGAL_GENERATION,
//! REBALANCE_IN_PROGRESS while the group completes a rebalance; KIP-848: STALE_MEMBER_EPOCH,
//! and OffsetCommit v9+). An offset becomes visible to OffsetFetch only once the ISR committed
//! its record; the answer leaves then. Offsets are ordered by the append that wrote them, so a
//! late acknowledgement of an older write never hides a newer one, as in log order.
//!
//! `require_stable` OffsetFetch answers UNSTABLE_OFFSET_COMMIT for a partition with a write in
//! flight (Kafka's `hasPendingOffsetCommitsForTopicPartition`), and the client retries.
//!
//! Retention (KIP-211, Kafka 2.1+): every `offsets.retention.check.interval.ms`, an offset
//! expires `offsets.retention.ms` after the group became Empty (classic groups with a protocol
//! type), after its commit for simple groups and for topics a Stable consumer group or a
//! KIP-848 group no longer subscribes to, or at its explicit expire timestamp (OffsetCommit
//! v2–4 `retention_time_ms`). An empty group left without offsets is deleted.

use super::classic::{ClassicGroup, ClassicState};
use super::consumer::ConsumerGroup;
use super::errors::{GroupError, NONE};
use super::records::{OffsetCommitValue, Record};
use super::responses::{commit_response, s};
use super::{
    AppendAction, AppendId, GroupCoordinator, GroupEntry, GroupEvent, GroupKind, OffsetKey, Reply,
    Token,
};
use crate::constants::*;
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::*;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use std::collections::{BTreeMap, BTreeSet};

/// First OffsetCommit version a KIP-848 member must use.
const COMMIT_CONSUMER_PROTOCOL_VERSION: i16 = 9;
/// `retention_time_ms` meaning "the broker's retention".
const DEFAULT_RETENTION_TIME: i64 = -1;

impl GroupCoordinator {
    pub(super) fn on_offset_commit(
        &mut self,
        token: Token,
        version: i16,
        request: OffsetCommitRequest,
    ) {
        let group_id = request.group_id.as_str();
        let count: usize = request.topics.iter().map(|t| t.partitions.len()).sum();
        let partition = match self.coordinator_for(group_id) {
            Ok(_) if count > GROUP_REQUEST_PARTITIONS_MAX => Err(GroupError::InvalidRequest),
            other => other,
        };
        let partition = match partition {
            Ok(p) => p,
            Err(error) => {
                let body = commit_response(&request, |_, _| error.code());
                return self.rt.respond_now(token, ResponseKind::OffsetCommit(body));
            }
        };
        if let Err(error) = self.validate_commit(version, &request, partition) {
            let body = commit_response(&request, |_, _| error.code());
            return self
                .rt
                .reply(partition, token, ResponseKind::OffsetCommit(body));
        }
        self.store_offsets(token, version, &request, partition);
    }

    /// Kafka's commit validation; creates the simple group a manual commit implies.
    fn validate_commit(
        &mut self,
        version: i16,
        r: &OffsetCommitRequest,
        partition: i32,
    ) -> Result<(), GroupError> {
        let group_id = r.group_id.as_str();
        let generation = r.generation_id_or_member_epoch;
        let member_id = r.member_id.as_str();
        let instance = r.group_instance_id.as_ref().map(|i| i.as_str());
        let Some(entry) = self.groups.get_mut(group_id) else {
            if generation >= 0 {
                // v9+ says so; older clients expect ILLEGAL_GENERATION.
                return Err(if version >= COMMIT_CONSUMER_PROTOCOL_VERSION {
                    GroupError::GroupIdNotFound
                } else {
                    GroupError::IllegalGeneration
                });
            }
            let group = super::classic::ClassicGroup::new(self.rt.now_ms());
            let created = self.create_group(group_id, partition, GroupKind::Classic(group));
            return if created {
                Ok(())
            } else {
                Err(GroupError::CoordinatorNotAvailable)
            };
        };
        let session = match &entry.kind {
            GroupKind::Classic(g) => classic_commit_check(g, generation, member_id, instance)?,
            GroupKind::Consumer(g) => {
                consumer_commit_check(g, version, generation, member_id)?;
                None
            }
        };
        // A commit keeps a classic member's session alive while Stable or rebalancing.
        if let (Some(session), Some(mut classic)) = (session, self.classic(group_id)) {
            classic.reschedule_heartbeat(member_id, session);
        }
        Ok(())
    }

    /// Builds the records of a validated commit and appends them; partitions refused one by
    /// one (metadata too large, too many offsets) get their code.
    fn store_offsets(
        &mut self,
        token: Token,
        version: i16,
        r: &OffsetCommitRequest,
        partition: i32,
    ) {
        let now_ms = self.rt.now_ms();
        let expire = (version <= 4 && r.retention_time_ms != DEFAULT_RETENTION_TIME)
            .then(|| now_ms.saturating_add(r.retention_time_ms));
        let metadata_max = self.config.offset_metadata_max_bytes as usize;
        let entry = self.groups.get(r.group_id.as_str()).expect("validated");
        let mut room =
            GROUP_OFFSETS_MAX.saturating_sub(entry.offsets.len() + entry.pending_offsets.len());
        let mut codes: BTreeMap<OffsetKey, i16> = BTreeMap::new();
        let mut entries: Vec<(OffsetKey, OffsetCommitValue)> = Vec::new();
        for topic in &r.topics {
            for p in &topic.partitions {
                let key = (topic.name.as_str().to_owned(), p.partition_index);
                let metadata = p
                    .committed_metadata
                    .as_ref()
                    .map(|m| m.as_str())
                    .unwrap_or("");
                let known =
                    entry.offsets.contains_key(&key) || entry.pending_offsets.contains_key(&key);
                let code = if metadata.len() > metadata_max {
                    GroupError::OffsetMetadataTooLarge.code()
                } else if !known && room == 0 {
                    GroupError::InvalidCommitOffsetSize.code()
                } else if key.0.len() > GROUP_STRING_BYTES_MAX {
                    GroupError::InvalidRequest.code()
                } else {
                    room -= usize::from(!known);
                    let value = OffsetCommitValue {
                        offset: p.committed_offset,
                        leader_epoch: p.committed_leader_epoch,
                        metadata: metadata.to_owned(),
                        commit_timestamp_ms: now_ms,
                        expire_timestamp_ms: expire,
                    };
                    entries.push((key.clone(), value));
                    NONE
                };
                codes.insert(key, code);
            }
        }
        let body = commit_response(r, |t, p| {
            codes.get(&(t.to_owned(), p)).copied().unwrap_or(NONE)
        });
        let body = ResponseKind::OffsetCommit(body);
        if entries.is_empty() {
            return self.rt.reply(partition, token, body);
        }
        if self.rt.appends_full() {
            let error = GroupError::CoordinatorNotAvailable.code();
            let body = commit_response(r, |_, _| error);
            return self
                .rt
                .reply(partition, token, ResponseKind::OffsetCommit(body));
        }
        self.append_offsets(r.group_id.as_str(), entries, Reply { token, body });
    }

    fn append_offsets(
        &mut self,
        group_id: &str,
        entries: Vec<(OffsetKey, OffsetCommitValue)>,
        reply: Reply,
    ) {
        let entry = self.groups.get_mut(group_id).expect("validated");
        let records = entries
            .iter()
            .map(|((topic, partition), value)| Record::OffsetCommit {
                group: group_id.to_owned(),
                topic: topic.clone(),
                partition: *partition,
                value: Some(value.clone()),
            })
            .collect();
        for (key, _) in &entries {
            *entry.pending_offsets.entry(key.clone()).or_default() += 1;
        }
        let key = (group_id, entry.partition, entry.incarnation);
        let action = AppendAction::OffsetCommit { entries, reply };
        self.rt.append(key, records, action);
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_commit_appended(
        &mut self,
        append_id: AppendId,
        partition: i32,
        group_id: &str,
        incarnation: u64,
        entries: Vec<(OffsetKey, OffsetCommitValue)>,
        mut reply: Reply,
        error: Option<GroupError>,
    ) {
        if let Some(entry) = self.entry_of(group_id, incarnation) {
            for (key, value) in entries {
                release_pending(entry, &key);
                let newer = entry
                    .offsets
                    .get(&key)
                    .is_none_or(|c| c.append_id < append_id);
                if error.is_none() && newer {
                    let committed = super::CommittedOffset { value, append_id };
                    entry.offsets.insert(key, committed);
                }
            }
        }
        if let Some(error) = error {
            super::responses::with_error(&mut reply.body, error.code());
        }
        self.rt.defer(partition, append_id, reply);
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_tombstones_appended(
        &mut self,
        append_id: AppendId,
        partition: i32,
        group_id: &str,
        incarnation: u64,
        keys: Vec<OffsetKey>,
        reply: Option<Reply>,
        error: Option<GroupError>,
    ) {
        if let Some(entry) = self.entry_of(group_id, incarnation) {
            for key in keys {
                release_pending(entry, &key);
                let older = entry
                    .offsets
                    .get(&key)
                    .is_some_and(|c| c.append_id < append_id);
                if error.is_none() && older {
                    entry.offsets.remove(&key);
                }
            }
        }
        if let Some(mut reply) = reply {
            if let Some(error) = error {
                super::responses::with_error(&mut reply.body, error.code());
            }
            self.rt.defer(partition, append_id, reply);
        }
    }

    fn entry_of(&mut self, group_id: &str, incarnation: u64) -> Option<&mut GroupEntry> {
        self.groups
            .get_mut(group_id)
            .filter(|e| e.incarnation == incarnation)
    }

    pub(super) fn on_offset_fetch(
        &mut self,
        token: Token,
        version: i16,
        request: OffsetFetchRequest,
    ) {
        let response = if version >= 8 {
            let groups = request
                .groups
                .iter()
                .take(GROUP_REQUEST_GROUPS_MAX)
                .map(|g| self.fetch_group_v8(version, g, request.require_stable))
                .collect();
            OffsetFetchResponse::default().with_groups(groups)
        } else {
            self.fetch_group_v1(version, &request)
        };
        self.rt
            .respond_now(token, ResponseKind::OffsetFetch(response));
    }

    fn fetch_group_v8(
        &self,
        version: i16,
        g: &offset_fetch_request::OffsetFetchRequestGroup,
        require_stable: bool,
    ) -> OffsetFetchResponseGroup {
        let requested = g.topics.as_ref().map(|topics| {
            topics
                .iter()
                .map(|t| (t.name.as_str().to_owned(), t.partition_indexes.clone()))
                .collect::<Vec<_>>()
        });
        let member = g.member_id.as_ref().map(|m| (m.as_str(), g.member_epoch));
        let answer = self.fetch(g.group_id.as_str(), requested, require_stable, member);
        let mut group = OffsetFetchResponseGroup::default().with_group_id(g.group_id.clone());
        match answer {
            Err(error) => group.error_code = error.code(),
            Ok(topics) => {
                group.topics = topics
                    .into_iter()
                    .map(|(name, partitions)| {
                        let partitions = partitions
                            .into_iter()
                            .map(|a| {
                                OffsetFetchResponsePartitions::default()
                                    .with_partition_index(a.partition)
                                    .with_committed_offset(a.offset)
                                    .with_committed_leader_epoch(a.leader_epoch)
                                    .with_metadata(Some(s(&a.metadata)))
                                    .with_error_code(a.error)
                            })
                            .collect();
                        OffsetFetchResponseTopics::default()
                            .with_name(TopicName(s(&name)))
                            .with_partitions(partitions)
                    })
                    .collect()
            }
        }
        let _ = version;
        group
    }

    fn fetch_group_v1(&self, version: i16, r: &OffsetFetchRequest) -> OffsetFetchResponse {
        let requested = r.topics.as_ref().map(|topics| {
            topics
                .iter()
                .map(|t| (t.name.as_str().to_owned(), t.partition_indexes.clone()))
                .collect::<Vec<_>>()
        });
        let require_stable = version >= 7 && r.require_stable;
        match self.fetch(r.group_id.as_str(), requested.clone(), require_stable, None) {
            Ok(topics) => OffsetFetchResponse::default().with_topics(v1_topics(version, topics)),
            // Version 1 has no top-level error: each partition carries it.
            Err(error) if version < 2 => {
                let topics = requested
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(name, ps)| {
                        (
                            name,
                            ps.into_iter().map(|p| Answer::error(p, error)).collect(),
                        )
                    })
                    .collect();
                OffsetFetchResponse::default().with_topics(v1_topics(version, topics))
            }
            Err(error) => OffsetFetchResponse::default().with_error_code(error.code()),
        }
    }

    /// The committed offsets of a group: the requested partitions, or all when `requested` is
    /// `None`. `member` (OffsetFetch v9) is checked against a KIP-848 group.
    fn fetch(
        &self,
        group_id: &str,
        requested: Option<Vec<(String, Vec<i32>)>>,
        require_stable: bool,
        member: Option<(&str, i32)>,
    ) -> Result<Vec<(String, Vec<Answer>)>, GroupError> {
        self.coordinator_for(group_id)?;
        let entry = self.groups.get(group_id);
        if let (Some(GroupKind::Consumer(g)), Some((member_id, epoch))) =
            (entry.map(|e| &e.kind), member)
        {
            let member = g
                .members
                .get(member_id)
                .ok_or(GroupError::UnknownMemberId)?;
            if epoch >= 0 && member.member_epoch != epoch {
                return Err(GroupError::StaleMemberEpoch);
            }
        }
        let dead = entry
            .and_then(|e| e.classic())
            .is_some_and(|g| g.state == ClassicState::Dead);
        let entry = entry.filter(|_| !dead);
        let answer = |topic: &str, p: i32| -> Answer {
            let key = (topic.to_owned(), p);
            let Some(entry) = entry else {
                return Answer::none(p);
            };
            if require_stable && entry.pending_offsets.contains_key(&key) {
                return Answer::error(p, GroupError::UnstableOffsetCommit);
            }
            match entry.offsets.get(&key) {
                Some(c) => Answer {
                    partition: p,
                    offset: c.value.offset,
                    leader_epoch: c.value.leader_epoch,
                    metadata: c.value.metadata.clone(),
                    error: NONE,
                },
                None => Answer::none(p),
            }
        };
        let requested = requested.unwrap_or_else(|| all_committed(entry));
        Ok(requested
            .into_iter()
            .map(|(topic, ps)| {
                let answers = ps.iter().map(|p| answer(&topic, *p)).collect();
                (topic, answers)
            })
            .collect())
    }

    pub(super) fn on_offset_delete(
        &mut self,
        token: Token,
        version: i16,
        request: OffsetDeleteRequest,
    ) {
        let _ = version;
        let group_id = request.group_id.as_str();
        let refuse = |error: GroupError| {
            ResponseKind::OffsetDelete(
                OffsetDeleteResponse::default().with_error_code(error.code()),
            )
        };
        let partition = match self.coordinator_for(group_id) {
            Ok(p) => p,
            Err(error) => return self.rt.respond_now(token, refuse(error)),
        };
        let plan = match self.groups.get(group_id) {
            None => Err(GroupError::GroupIdNotFound),
            Some(entry) => offset_delete_plan(entry, &request),
        };
        let (keys, topics) = match plan {
            Ok(plan) => plan,
            Err(error) => return self.rt.reply(partition, token, refuse(error)),
        };
        let body = ResponseKind::OffsetDelete(OffsetDeleteResponse::default().with_topics(topics));
        if keys.is_empty() {
            return self.rt.reply(partition, token, body);
        }
        if self.rt.appends_full() {
            return self.rt.reply(
                partition,
                token,
                refuse(GroupError::CoordinatorNotAvailable),
            );
        }
        self.append_tombstones(group_id, keys, Some(Reply { token, body }));
    }

    fn append_tombstones(&mut self, group_id: &str, keys: Vec<OffsetKey>, reply: Option<Reply>) {
        let entry = self.groups.get_mut(group_id).expect("present");
        let records = keys
            .iter()
            .map(|(topic, partition)| Record::OffsetCommit {
                group: group_id.to_owned(),
                topic: topic.clone(),
                partition: *partition,
                value: None,
            })
            .collect();
        for key in &keys {
            *entry.pending_offsets.entry(key.clone()).or_default() += 1;
        }
        let key = (group_id, entry.partition, entry.incarnation);
        self.rt
            .append(key, records, AppendAction::OffsetTombstones { keys, reply });
    }

    /// The retention check: expire offsets, delete empty groups left without any.
    pub(super) fn on_retention_check_timeout(&mut self) {
        let now_ms = self.rt.now_ms();
        let retention_ms = self.config.offsets_retention.as_millis() as i64;
        let ids: Vec<String> = self
            .groups
            .iter()
            .filter(|(_, e)| self.is_serving(e.partition))
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            if self.rt.appends_full() {
                return; // The next check continues.
            }
            let entry = &self.groups[&id];
            let (expired, all) = expired_offsets(entry, now_ms, retention_ms);
            if all && entry.is_empty() && entry.pending_offsets.is_empty() {
                self.delete_group(&id, None);
                continue;
            }
            if !expired.is_empty() {
                let count = expired.len() as u32;
                self.append_tombstones(&id, expired, None);
                self.rt
                    .event(GroupEvent::OffsetsExpired { group: id, count });
            }
        }
    }
}

/// Kafka's `ClassicGroup.validateOffsetCommit`; the member's session timeout when the commit
/// should keep its session alive.
fn classic_commit_check(
    g: &ClassicGroup,
    generation: i32,
    member_id: &str,
    instance: Option<&str>,
) -> Result<Option<i64>, GroupError> {
    if g.state == ClassicState::Dead {
        return Err(GroupError::CoordinatorNotAvailable);
    }
    if generation < 0 && g.state == ClassicState::Empty {
        return Ok(None); // The admin client, or a consumer without group management.
    }
    if generation >= 0 || !member_id.is_empty() || instance.is_some() {
        g.validate_member(member_id, instance)?;
        if generation != g.generation_id {
            return Err(GroupError::IllegalGeneration);
        }
    } else if g.state != ClassicState::Empty {
        return Err(GroupError::UnknownMemberId);
    }
    if g.state == ClassicState::CompletingRebalance {
        return Err(GroupError::RebalanceInProgress);
    }
    let keeps_session = matches!(
        g.state,
        ClassicState::Stable | ClassicState::PreparingRebalance
    );
    let session = g
        .members
        .get(member_id)
        .map(|m| i64::from(m.session_timeout_ms));
    Ok(session.filter(|_| keeps_session))
}

/// Kafka's `ConsumerGroup.validateOffsetCommit`: members commit with their member epoch, on
/// OffsetCommit v9+.
fn consumer_commit_check(
    g: &ConsumerGroup,
    version: i16,
    generation: i32,
    member_id: &str,
) -> Result<(), GroupError> {
    if generation < 0 && g.members.is_empty() {
        return Ok(());
    }
    let member = g
        .members
        .get(member_id)
        .ok_or(GroupError::UnknownMemberId)?;
    if version < COMMIT_CONSUMER_PROTOCOL_VERSION {
        return Err(GroupError::UnsupportedVersion);
    }
    if generation != member.member_epoch {
        return Err(GroupError::StaleMemberEpoch);
    }
    Ok(())
}

/// What an OffsetDelete removes, and its answer per partition (Kafka's
/// `OffsetMetadataManager.deleteOffsets`): a live classic group of another protocol type is
/// NON_EMPTY_GROUP, a topic the group subscribes to GROUP_SUBSCRIBED_TO_TOPIC.
fn offset_delete_plan(
    entry: &GroupEntry,
    request: &OffsetDeleteRequest,
) -> Result<(Vec<OffsetKey>, Vec<OffsetDeleteResponseTopic>), GroupError> {
    let subscribed = |topic: &str| match &entry.kind {
        GroupKind::Classic(g) => g.is_subscribed_to(topic),
        GroupKind::Consumer(g) => g
            .members
            .values()
            .any(|m| m.subscribed_topic_names.contains(topic)),
    };
    if let GroupKind::Classic(g) = &entry.kind {
        if g.state == ClassicState::Dead {
            return Err(GroupError::GroupIdNotFound);
        }
        if g.state != ClassicState::Empty && !g.uses_consumer_protocol() {
            return Err(GroupError::NonEmptyGroup);
        }
    }
    let mut keys = Vec::new();
    let mut topics = Vec::new();
    for topic in request.topics.iter().take(GROUP_REQUEST_PARTITIONS_MAX) {
        let name = topic.name.as_str();
        let code = if subscribed(name) {
            GroupError::GroupSubscribedToTopic.code()
        } else {
            NONE
        };
        let partitions = topic
            .partitions
            .iter()
            .map(|p| {
                let key = (name.to_owned(), p.partition_index);
                if code == NONE && entry.offsets.contains_key(&key) {
                    keys.push(key);
                }
                OffsetDeleteResponsePartition::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(code)
            })
            .collect();
        topics.push(
            OffsetDeleteResponseTopic::default()
                .with_name(topic.name.clone())
                .with_partitions(partitions),
        );
    }
    Ok((keys, topics))
}

/// One partition of an OffsetFetch answer.
struct Answer {
    partition: i32,
    offset: i64,
    leader_epoch: i32,
    metadata: String,
    error: i16,
}

impl Answer {
    fn none(partition: i32) -> Answer {
        Answer {
            partition,
            offset: -1,
            leader_epoch: -1,
            metadata: String::new(),
            error: NONE,
        }
    }

    fn error(partition: i32, error: GroupError) -> Answer {
        Answer {
            error: error.code(),
            ..Answer::none(partition)
        }
    }
}

fn v1_topics(version: i16, topics: Vec<(String, Vec<Answer>)>) -> Vec<OffsetFetchResponseTopic> {
    topics
        .into_iter()
        .map(|(name, answers)| {
            let partitions = answers
                .into_iter()
                .map(|a| {
                    // The leader epoch exists from v5.
                    let epoch = if version >= 5 { a.leader_epoch } else { -1 };
                    OffsetFetchResponsePartition::default()
                        .with_partition_index(a.partition)
                        .with_committed_offset(a.offset)
                        .with_committed_leader_epoch(epoch)
                        .with_metadata(Some(StrBytes::from_string(a.metadata)))
                        .with_error_code(a.error)
                })
                .collect();
            OffsetFetchResponseTopic::default()
                .with_name(TopicName(s(&name)))
                .with_partitions(partitions)
        })
        .collect()
}

fn all_committed(entry: Option<&GroupEntry>) -> Vec<(String, Vec<i32>)> {
    let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for (topic, partition) in entry.iter().flat_map(|e| e.offsets.keys()) {
        by_topic.entry(topic.clone()).or_default().push(*partition);
    }
    by_topic.into_iter().collect()
}

fn release_pending(entry: &mut GroupEntry, key: &OffsetKey) {
    if let Some(count) = entry.pending_offsets.get_mut(key) {
        *count -= 1;
        if *count == 0 {
            entry.pending_offsets.remove(key);
        }
    }
}

/// The offsets of `entry` that expired, and whether every offset did (Kafka's
/// `offsetExpirationCondition` and `cleanupExpiredOffsets`).
fn expired_offsets(entry: &GroupEntry, now_ms: i64, retention_ms: i64) -> (Vec<OffsetKey>, bool) {
    // The base timestamp of an offset, or None when the group's offsets do not expire now.
    let (base_state, subscribed): (Option<Option<i64>>, BTreeSet<String>) = match &entry.kind {
        GroupKind::Classic(g) => match (&g.protocol_type, g.state) {
            (Some(_), ClassicState::Empty) => (Some(g.state_timestamp_ms), BTreeSet::new()),
            (Some(_), ClassicState::Stable)
                if g.uses_consumer_protocol() && g.subscribed_topics.is_some() =>
            {
                (Some(None), g.subscribed_topics.clone().unwrap_or_default())
            }
            (None, _) => (Some(None), BTreeSet::new()),
            _ => (None, BTreeSet::new()),
        },
        GroupKind::Consumer(g) => {
            let topics = g
                .members
                .values()
                .flat_map(|m| m.subscribed_topic_names.iter().cloned())
                .collect();
            (Some(None), topics)
        }
    };
    let Some(state_base) = base_state else {
        return (Vec::new(), entry.offsets.is_empty());
    };
    let mut expired = Vec::new();
    let mut all = true;
    for (key, committed) in &entry.offsets {
        let v = &committed.value;
        let base = state_base.unwrap_or(v.commit_timestamp_ms);
        let is_expired = !subscribed.contains(&key.0)
            && !entry.pending_offsets.contains_key(key)
            && match v.expire_timestamp_ms {
                Some(expire) => now_ms >= expire,
                None => now_ms.saturating_sub(base) >= retention_ms,
            };
        if is_expired {
            expired.push(key.clone());
        } else {
            all = false;
        }
    }
    (expired, all)
}
