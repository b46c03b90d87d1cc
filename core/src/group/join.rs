//! Classic groups: JoinGroup and the rebalance machinery (Kafka's `classicGroupJoin`,
//! `prepareRebalance`, `completeClassicGroupJoin`).
//!
//! A rebalance starts when a member joins, leaves, changes its protocols, or the leader
//! rejoins. The group moves to PreparingRebalance and waits for every member to rejoin, at
//! most the longest rebalance timeout (or, for a group that was Empty, the
//! `group.initial.rebalance.delay.ms` delay, extended while new members keep arriving, up to
//! the rebalance timeout). Members that did not rejoin are dropped (static members are kept),
//! the generation is bumped, the protocol chosen by vote, and every parked JoinGroup answered:
//! the leader gets all members' metadata (KIP-429 owned partitions included, untouched).
//!
//! KIP-394: a v4+ JoinGroup without a member id is answered MEMBER_ID_REQUIRED with a new id,
//! held as pending until the member rejoins with it (or its session timeout passes). KIP-345:
//! a static member (`group.instance.id`) that rejoins with a new id replaces its old id; the
//! old id's parked requests are answered FENCED_INSTANCE_ID. In a Stable group whose selected
//! protocol would not change, that costs no rebalance: the group is persisted and the member
//! gets the current generation (the leader, from v9, its members with `skip_assignment`).

use super::classic::{
    protocols_bytes, ClassicGroup, ClassicMember, ClassicState, Parked, Protocol,
};
use super::config::GroupConfig;
use super::deadlines::{DeadlineKey, DeadlineKind};
use super::errors::GroupError;
use super::records::Record;
use super::responses::{self, join_error, join_response, JoinAnswer};
use super::{
    AppendAction, AppendId, GroupCoordinator, GroupEvent, GroupKind, GroupRequestContext, Reply,
    Runtime, Token,
};
use crate::constants::*;
use bytes::Bytes;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, ResponseKind};
use std::collections::BTreeMap;

/// The member id of a member that has none yet.
pub const UNKNOWN_MEMBER_ID: &str = "";
/// First JoinGroup version that requires a known member id (KIP-394).
const JOIN_REQUIRES_MEMBER_ID_VERSION: i16 = 4;

/// What to restore if persisting a static member's new id fails.
#[derive(Debug)]
pub struct StaticRejoin {
    pub instance_id: String,
    pub old_member_id: String,
    pub new_member_id: String,
    pub old_protocols: Vec<Protocol>,
    pub old_rebalance_timeout_ms: i32,
    pub old_session_timeout_ms: i32,
    pub leader_before: String,
    pub parked: Parked,
}

/// A JoinGroup as the handlers use it.
pub struct Join {
    pub token: Token,
    pub version: i16,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<Protocol>,
}

impl Join {
    fn parked(&self) -> Parked {
        Parked {
            token: self.token,
            api_version: self.version,
        }
    }

    fn names(&self) -> Vec<&str> {
        self.protocols.iter().map(|(n, _)| n.as_str()).collect()
    }

    fn from_request(token: Token, context: &GroupRequestContext, r: &JoinGroupRequest) -> Join {
        let mut protocols: Vec<Protocol> = Vec::with_capacity(r.protocols.len());
        for p in &r.protocols {
            // Kafka keys the protocol collection by name: a repeated name counts once.
            if !protocols.iter().any(|(n, _)| n.as_str() == p.name.as_str()) {
                protocols.push((p.name.as_str().to_owned(), p.metadata.clone()));
            }
        }
        let version = context.api_version;
        Join {
            token,
            version,
            member_id: r.member_id.as_str().to_owned(),
            group_instance_id: r.group_instance_id.as_ref().map(|i| i.as_str().to_owned()),
            client_id: context.client_id.clone(),
            client_host: context.client_host.clone(),
            session_timeout_ms: r.session_timeout_ms,
            // Version 0 has no rebalance timeout: Kafka uses the session timeout.
            rebalance_timeout_ms: if version == 0 {
                r.session_timeout_ms
            } else {
                r.rebalance_timeout_ms
            },
            protocol_type: r.protocol_type.as_str().to_owned(),
            protocols,
        }
    }

    fn oversized(&self) -> bool {
        let strings = [
            &self.member_id,
            &self.client_id,
            &self.client_host,
            &self.protocol_type,
        ];
        strings.iter().any(|s| s.len() > GROUP_STRING_BYTES_MAX)
            || self
                .group_instance_id
                .as_ref()
                .is_some_and(|i| i.is_empty() || i.len() > GROUP_STRING_BYTES_MAX)
            || self
                .protocols
                .iter()
                .any(|(n, _)| n.len() > GROUP_STRING_BYTES_MAX)
    }
}

/// A classic group borrowed with the runtime: the rebalance machinery works on this.
pub struct Classic<'a> {
    pub config: &'a GroupConfig,
    pub rt: &'a mut Runtime,
    pub group_id: &'a str,
    pub partition: i32,
    pub incarnation: u64,
    pub group: &'a mut ClassicGroup,
}

impl GroupCoordinator {
    /// The classic group `group_id` with the runtime, if it exists and is classic.
    pub(super) fn classic<'a>(&'a mut self, group_id: &'a str) -> Option<Classic<'a>> {
        let GroupCoordinator {
            config, groups, rt, ..
        } = self;
        let entry = groups.get_mut(group_id)?;
        let (partition, incarnation) = (entry.partition, entry.incarnation);
        let group = entry.classic_mut()?;
        Some(Classic {
            config,
            rt,
            group_id,
            partition,
            incarnation,
            group,
        })
    }

    pub(super) fn on_join_group(
        &mut self,
        token: Token,
        context: &GroupRequestContext,
        request: JoinGroupRequest,
    ) {
        let join = Join::from_request(token, context, &request);
        let group_id = request.group_id.as_str();
        let refused = self.join_refusal(group_id, &join);
        if let Some((partition, error)) = refused {
            let body = join_error(join.version, &join.member_id, error);
            return match partition {
                Some(partition) => self.rt.reply(partition, token, body),
                None => self.rt.respond_now(token, body),
            };
        }
        let mut handler = self.classic(group_id).expect("join_refusal made it exist");
        handler.join(join);
    }

    /// Validates a JoinGroup and makes sure its classic group exists; the refusal, with the
    /// partition to answer behind, otherwise.
    fn join_refusal(&mut self, group_id: &str, join: &Join) -> Option<(Option<i32>, GroupError)> {
        let partition = match self.coordinator_for(group_id) {
            Ok(partition) => partition,
            Err(error) => return Some((None, error)),
        };
        let min = self.config.group_min_session_timeout.as_millis() as i64;
        let max = self.config.group_max_session_timeout.as_millis() as i64;
        let session = i64::from(join.session_timeout_ms);
        if session < min || session > max {
            return Some((Some(partition), GroupError::InvalidSessionTimeout));
        }
        if join.oversized() {
            return Some((Some(partition), GroupError::InvalidRequest));
        }
        let unknown = join.member_id == UNKNOWN_MEMBER_ID;
        let error = match self.groups.get(group_id).map(|e| &e.kind) {
            None if !unknown => Some(GroupError::UnknownMemberId),
            None => {
                let group = ClassicGroup::new(self.rt.now_ms());
                let created = self.create_group(group_id, partition, GroupKind::Classic(group));
                (!created).then_some(GroupError::CoordinatorNotAvailable)
            }
            Some(GroupKind::Consumer(g)) if !g.members.is_empty() => {
                Some(GroupError::InconsistentGroupProtocol)
            }
            Some(GroupKind::Consumer(_)) => {
                self.replace_empty_consumer_group(group_id);
                None
            }
            Some(GroupKind::Classic(_)) => None,
        };
        error.map(|e| (Some(partition), e))
    }
}

impl Classic<'_> {
    fn now_ms(&self) -> i64 {
        self.rt.now_ms()
    }

    /// Answers behind the partition's pending appends.
    pub fn reply(&mut self, token: Token, body: ResponseKind) {
        self.rt.reply(self.partition, token, body);
    }

    fn join(&mut self, join: Join) {
        if !self.accept_joining_member(&join) {
            // Kafka removes the refused member id, if it was one.
            self.remove_and_answer(&join.member_id.clone(), GroupError::UnknownMemberId);
            let body = join_error(
                join.version,
                UNKNOWN_MEMBER_ID,
                GroupError::GroupMaxSizeReached,
            );
            return self.reply(join.token, body);
        }
        if join.member_id == UNKNOWN_MEMBER_ID {
            self.join_new_member(join);
        } else {
            self.join_existing_member(join);
        }
    }

    /// Kafka's `acceptJoiningMember`, plus the byte and pending-member bounds.
    fn accept_joining_member(&self, join: &Join) -> bool {
        let g = &*self.group;
        let max = self.config.group_max_size;
        let existing = g.members.get(&join.member_id);
        let by_count = match g.state {
            ClassicState::Empty | ClassicState::Dead => true,
            ClassicState::PreparingRebalance => {
                existing.is_some_and(|m| m.awaiting_join.is_some()) || g.awaiting_join_count < max
            }
            ClassicState::CompletingRebalance | ClassicState::Stable => {
                existing.is_some() || g.members.len() < max
            }
        };
        let old_bytes = existing.map_or(0, ClassicMember::metadata_bytes);
        let bytes = g.metadata_bytes() - old_bytes + protocols_bytes(&join.protocols);
        let pending_full = join.member_id == UNKNOWN_MEMBER_ID
            && g.pending_members.len() >= GROUP_PENDING_MEMBERS_MAX;
        by_count && bytes <= GROUP_METADATA_BYTES_MAX && !pending_full
    }

    fn join_new_member(&mut self, join: Join) {
        if self.group.state == ClassicState::Dead {
            let body = join_error(
                join.version,
                UNKNOWN_MEMBER_ID,
                GroupError::CoordinatorNotAvailable,
            );
            return self.reply(join.token, body);
        }
        if !self
            .group
            .supports_protocols(&join.protocol_type, &join.names())
        {
            let error = GroupError::InconsistentGroupProtocol;
            return self.reply(
                join.token,
                join_error(join.version, UNKNOWN_MEMBER_ID, error),
            );
        }
        let prefix = join.group_instance_id.as_deref().unwrap_or(&join.client_id);
        let uuid = self.rt.random_uuid();
        let new_id = format!("{prefix}-{uuid}");
        if let Some(instance) = join.group_instance_id.clone() {
            match self.group.static_members.get(&instance).cloned() {
                Some(old_id) => self.update_static_member(join, &instance, &old_id, &new_id),
                None => self.add_member_and_rebalance(join, new_id),
            }
        } else if join.version >= JOIN_REQUIRES_MEMBER_ID_VERSION {
            self.group.pending_members.insert(new_id.clone());
            let at = self.rt.after_ms(i64::from(join.session_timeout_ms));
            let key = DeadlineKey::member(self.group_id, DeadlineKind::ClassicHeartbeat, &new_id);
            self.rt.set_deadline(key, at, 0);
            let body = join_error(join.version, &new_id, GroupError::MemberIdRequired);
            self.reply(join.token, body);
        } else {
            self.add_member_and_rebalance(join, new_id);
        }
    }

    fn join_existing_member(&mut self, join: Join) {
        let member_id = join.member_id.clone();
        let error = if self.group.state == ClassicState::Dead {
            Some(GroupError::CoordinatorNotAvailable)
        } else if !self
            .group
            .supports_protocols(&join.protocol_type, &join.names())
        {
            Some(GroupError::InconsistentGroupProtocol)
        } else if self.group.pending_members.contains(&member_id) {
            // A pending id is never static; a request claiming both is malformed.
            if join.group_instance_id.is_some() {
                Some(GroupError::InvalidRequest)
            } else {
                return self.add_member_and_rebalance(join, member_id);
            }
        } else {
            let instance = join.group_instance_id.as_deref();
            self.group.validate_member(&member_id, instance).err()
        };
        if let Some(error) = error {
            return self.reply(join.token, join_error(join.version, &member_id, error));
        }
        let matches = self.group.members[&member_id].matches(&join.protocols);
        let is_leader = self.group.is_leader(&member_id);
        match self.group.state {
            ClassicState::PreparingRebalance => self.update_member_and_rebalance(join),
            ClassicState::CompletingRebalance if matches => {
                // The member lost its JoinGroup answer: give it the current generation again.
                let body = self.current_generation(join.version, &member_id, is_leader, false);
                self.reply(join.token, body);
            }
            ClassicState::Stable if !is_leader && matches => {
                let body = self.current_generation(join.version, &member_id, false, false);
                self.reply(join.token, body);
            }
            // The leader rejoining a Stable group forces a rebalance (it may have seen topic
            // metadata change); so does a member with new metadata.
            ClassicState::CompletingRebalance | ClassicState::Stable => {
                self.update_member_and_rebalance(join)
            }
            ClassicState::Empty | ClassicState::Dead => {
                let body = join_error(join.version, &member_id, GroupError::UnknownMemberId);
                self.reply(join.token, body);
            }
        }
    }

    /// The JoinGroup answer of the current generation; the leader's lists the members.
    fn current_generation(
        &self,
        version: i16,
        member_id: &str,
        with_members: bool,
        skip_assignment: bool,
    ) -> ResponseKind {
        let g = &*self.group;
        let members = if with_members {
            current_members(g)
        } else {
            Vec::new()
        };
        join_response(
            version,
            JoinAnswer {
                member_id,
                generation_id: g.generation_id,
                protocol_type: g.protocol_type.as_deref(),
                protocol_name: g.protocol_name.as_deref(),
                leader: g.leader_id.as_deref().unwrap_or_default(),
                members,
                skip_assignment,
            },
        )
    }

    fn add_member_and_rebalance(&mut self, join: Join, member_id: String) {
        let parked = join.parked();
        let member = ClassicMember {
            member_id: member_id.clone(),
            group_instance_id: join.group_instance_id,
            client_id: join.client_id,
            client_host: join.client_host,
            rebalance_timeout_ms: join.rebalance_timeout_ms,
            session_timeout_ms: join.session_timeout_ms,
            protocol_type: join.protocol_type,
            protocols: join.protocols,
            assignment: Bytes::new(),
            awaiting_join: None,
            awaiting_sync: None,
            is_new: true,
        };
        // A member arriving during the initial delay extends it.
        if self.group.state == ClassicState::PreparingRebalance
            && self.group.previous_state == ClassicState::Empty
        {
            self.group.new_member_added = true;
        }
        self.group.add(member, Some(parked));
        // New members cannot heartbeat: their JoinGroup expires after the new-member timeout.
        let timeout = self.config.group_new_member_join_timeout.as_millis() as i64;
        self.reschedule_heartbeat(&member_id, timeout);
        self.maybe_prepare_rebalance_or_complete_join();
    }

    fn update_member_and_rebalance(&mut self, join: Join) {
        let superseded = self.group.update_member(
            &join.member_id,
            join.protocols.clone(),
            join.rebalance_timeout_ms,
            join.session_timeout_ms,
            Some(join.parked()),
        );
        if let Some(old) = superseded {
            // Kafka drops a JoinGroup superseded by a newer one of the same member; its client
            // has given up on it. Every request gets an answer here: rejoin.
            let body = join_error(
                old.api_version,
                &join.member_id,
                GroupError::RebalanceInProgress,
            );
            self.reply(old.token, body);
        }
        self.maybe_prepare_rebalance_or_complete_join();
    }

    /// A known static member rejoined with no member id: it takes a new id (KIP-345).
    fn update_static_member(&mut self, join: Join, instance: &str, old_id: &str, new_id: &str) {
        let leader_before = self.group.leader_id.clone().unwrap_or_default();
        let Some(old) = self.group.replace_static_member(instance, old_id, new_id) else {
            return self.add_member_and_rebalance(join, new_id.to_owned());
        };
        self.answer_member_parked(&old, GroupError::FencedInstanceId);
        self.rt.deadlines.cancel_member(self.group_id, old_id);
        self.reschedule_heartbeat(new_id, i64::from(old.session_timeout_ms));
        let rejoin = StaticRejoin {
            instance_id: instance.to_owned(),
            old_member_id: old_id.to_owned(),
            new_member_id: new_id.to_owned(),
            old_protocols: old.protocols.clone(),
            old_rebalance_timeout_ms: old.rebalance_timeout_ms,
            old_session_timeout_ms: old.session_timeout_ms,
            leader_before,
            parked: join.parked(),
        };
        let parked = join.parked();
        let superseded = self.group.update_member(
            new_id,
            join.protocols,
            join.rebalance_timeout_ms,
            join.session_timeout_ms,
            Some(parked),
        );
        debug_assert!(
            superseded.is_none(),
            "a replaced member starts with nothing parked"
        );
        match self.group.state {
            ClassicState::Stable => {
                if self.group.protocol_name == self.group.select_protocol() {
                    self.persist_static_rejoin(rejoin);
                } else {
                    self.maybe_prepare_rebalance_or_complete_join();
                }
            }
            // The leader may already hold the old id's metadata: the assignment would miss the
            // new id. Rebalance.
            ClassicState::CompletingRebalance => self.prepare_rebalance(),
            _ => self.maybe_complete_join_phase(),
        }
    }

    /// Persists the group with the static member's new id; the JoinGroup is answered when the
    /// append resolves.
    fn persist_static_rejoin(&mut self, rejoin: StaticRejoin) {
        if self.rt.appends_full() {
            return self.revert_static_rejoin(&rejoin, GroupError::CoordinatorNotAvailable);
        }
        let assignment = self.group.assignments();
        let value = self.group.to_record(&assignment, self.now_ms());
        let record = Record::GroupMetadata {
            group: self.group_id.to_owned(),
            value: Some(value),
        };
        let action = AppendAction::StaticRejoin(Box::new(rejoin));
        let entry = (self.group_id, self.partition, self.incarnation);
        self.rt.append(entry, vec![record], action);
    }

    /// Undoes a static member's new id after its store failed (Kafka reverts the same way).
    pub fn revert_static_rejoin(&mut self, rejoin: &StaticRejoin, error: GroupError) {
        let parked = self.group.update_member(
            &rejoin.new_member_id,
            rejoin.old_protocols.clone(),
            rejoin.old_rebalance_timeout_ms,
            rejoin.old_session_timeout_ms,
            None,
        );
        self.group.replace_static_member(
            &rejoin.instance_id,
            &rejoin.new_member_id,
            &rejoin.old_member_id,
        );
        self.rt
            .deadlines
            .cancel_member(self.group_id, &rejoin.new_member_id);
        let session = i64::from(rejoin.old_session_timeout_ms);
        self.reschedule_heartbeat(&rejoin.old_member_id, session);
        if let Some(parked) = parked.filter(|p| *p == rejoin.parked) {
            let body = join_error(parked.api_version, UNKNOWN_MEMBER_ID, error);
            self.reply(parked.token, body);
        }
    }

    /// Answers the static member's JoinGroup once its new id is stored.
    pub fn complete_static_rejoin(&mut self, rejoin: &StaticRejoin, append_id: AppendId) {
        let id = &rejoin.new_member_id;
        let parked = self.group.members.get(id).and_then(|m| m.awaiting_join);
        if parked != Some(rejoin.parked) {
            return; // Answered meanwhile (superseded, left, or fenced).
        }
        self.group.take_join(id);
        let version = rejoin.parked.api_version;
        let is_leader = self.group.is_leader(id);
        // From v9 the leader learns the members but must not assign (KIP-814); before, it
        // gets no members and the leader id from before the rejoin.
        let body = if version >= 9 {
            self.current_generation(version, id, is_leader, is_leader)
        } else {
            let mut body = self.current_generation(version, id, false, false);
            if let ResponseKind::JoinGroup(r) = &mut body {
                r.leader = responses::s(&rejoin.leader_before);
            }
            body
        };
        let reply = Reply {
            token: rejoin.parked.token,
            body,
        };
        self.rt.defer(self.partition, append_id, reply);
    }

    // ---- the rebalance machinery ----

    pub fn maybe_prepare_rebalance_or_complete_join(&mut self) {
        if self.group.can_rebalance() {
            self.prepare_rebalance();
        } else {
            self.maybe_complete_join_phase();
        }
    }

    /// Starts a rebalance: members awaiting their assignment are told to rejoin.
    pub fn prepare_rebalance(&mut self) {
        if self.group.state == ClassicState::CompletingRebalance {
            self.reset_and_propagate(GroupError::RebalanceInProgress);
        }
        self.group.pending_sync.clear();
        let sync_key = DeadlineKey::group(self.group_id, DeadlineKind::ClassicSync);
        self.rt.deadlines.cancel(&sync_key);
        let initial = self.group.state == ClassicState::Empty;
        self.group
            .transition(ClassicState::PreparingRebalance, self.now_ms());
        let join_key = DeadlineKey::group(self.group_id, DeadlineKind::ClassicJoin);
        if initial {
            let delay = self.config.group_initial_rebalance_delay.as_millis();
            let rebalance = self.group.rebalance_timeout_ms() as u64;
            self.group.initial_delay = Some((delay, rebalance.saturating_sub(delay)));
            let at = self.rt.after_ms(delay as i64);
            self.rt.set_deadline(join_key, at, 0);
        } else if self.group.has_all_members_joined() {
            self.complete_join();
        } else {
            let at = self
                .rt
                .after_ms(i64::from(self.group.rebalance_timeout_ms()));
            self.rt.set_deadline(join_key, at, 0);
        }
    }

    /// Completes the join phase if every member rejoined (never during the initial delay).
    pub fn maybe_complete_join_phase(&mut self) {
        let g = &*self.group;
        if g.state == ClassicState::PreparingRebalance
            && g.previous_state != ClassicState::Empty
            && g.has_all_members_joined()
        {
            self.complete_join();
        }
    }

    /// The join-phase deadline: the initial delay (maybe extended) or the rebalance timeout.
    pub fn on_join_deadline(&mut self) {
        if self.group.state != ClassicState::PreparingRebalance {
            return;
        }
        match self.group.initial_delay {
            Some((delay, remaining)) if self.group.new_member_added && remaining != 0 => {
                self.group.new_member_added = false;
                let configured = self.config.group_initial_rebalance_delay.as_millis();
                let next = configured.min(remaining);
                self.group.initial_delay = Some((next, remaining.saturating_sub(delay)));
                let at = self.rt.after_ms(next as i64);
                let key = DeadlineKey::group(self.group_id, DeadlineKind::ClassicJoin);
                self.rt.set_deadline(key, at, 0);
            }
            _ => self.complete_join(),
        }
    }

    /// Ends the join phase: drops dynamic members that did not rejoin and starts the next
    /// generation, answering every parked JoinGroup.
    pub fn complete_join(&mut self) {
        let join_key = DeadlineKey::group(self.group_id, DeadlineKind::ClassicJoin);
        self.rt.deadlines.cancel(&join_key);
        let missing: Vec<String> = self
            .group
            .members
            .values()
            .filter(|m| m.awaiting_join.is_none() && m.group_instance_id.is_none())
            .map(|m| m.member_id.clone())
            .collect();
        for member_id in &missing {
            self.remove_and_answer(member_id, GroupError::UnknownMemberId);
            let reason = "did not rejoin in time";
            self.removed_event(member_id, reason);
        }
        if self.group.state == ClassicState::Dead {
            return;
        }
        if !self.group.maybe_elect_new_joined_leader() && !self.group.members.is_empty() {
            // Only static members remain and none rejoined: wait another rebalance timeout
            // for their sessions to expire or for them to come back.
            let at = self
                .rt
                .after_ms(i64::from(self.group.rebalance_timeout_ms()));
            self.rt.set_deadline(join_key, at, 0);
            return;
        }
        self.group.init_next_generation(self.now_ms());
        let (group, generation_id) = (self.group_id.to_owned(), self.group.generation_id);
        let members = self.group.members.len() as u32;
        let event = GroupEvent::Rebalanced {
            group,
            generation_id,
            members,
        };
        self.rt.event(event);
        if self.group.state == ClassicState::Empty {
            self.store_empty_group();
        } else {
            self.answer_joins();
        }
    }

    /// Answers every parked JoinGroup with the new generation and waits for SyncGroups.
    fn answer_joins(&mut self) {
        let ids: Vec<String> = self.group.members.keys().cloned().collect();
        for member_id in &ids {
            let is_leader = self.group.is_leader(member_id);
            if let Some(parked) = self.group.take_join(member_id) {
                let body = self.current_generation(parked.api_version, member_id, is_leader, false);
                self.reply(parked.token, body);
            }
            let session = i64::from(self.group.members[member_id].session_timeout_ms);
            self.reschedule_heartbeat(member_id, session);
            let member = self.group.members.get_mut(member_id).expect("listed above");
            member.is_new = false;
            self.group.pending_sync.insert(member_id.clone());
        }
        let key = DeadlineKey::group(self.group_id, DeadlineKind::ClassicSync);
        let at = self
            .rt
            .after_ms(i64::from(self.group.rebalance_timeout_ms()));
        self.rt.set_deadline(key, at, self.group.generation_id);
    }

    /// Writes the empty generation. Nothing waits on it: if it fails, the previous generation
    /// in the log has no live members either (Kafka only warns).
    fn store_empty_group(&mut self) {
        if self.rt.appends_full() {
            return;
        }
        let value = self.group.to_record(&BTreeMap::new(), self.now_ms());
        let record = Record::GroupMetadata {
            group: self.group_id.to_owned(),
            value: Some(value),
        };
        let entry = (self.group_id, self.partition, self.incarnation);
        self.rt
            .append(entry, vec![record], AppendAction::Background);
    }

    /// Clears every assignment and answers parked SyncGroups with `error`.
    pub fn reset_and_propagate(&mut self, error: GroupError) {
        assert_eq!(self.group.state, ClassicState::CompletingRebalance);
        for member in self.group.members.values_mut() {
            member.assignment = Bytes::new();
        }
        self.propagate_assignment(Some(error));
    }

    /// Answers every parked SyncGroup with the member's assignment, or `error`.
    pub fn propagate_assignment(&mut self, error: Option<GroupError>) {
        let ids: Vec<String> = self.group.members.keys().cloned().collect();
        for member_id in &ids {
            let member = self.group.members.get_mut(member_id).expect("listed above");
            let Some(parked) = member.awaiting_sync.take() else {
                continue;
            };
            let body = match error {
                Some(error) => responses::sync_error(error),
                None => responses::sync_response(
                    parked.api_version,
                    self.group.protocol_type.as_deref(),
                    self.group.protocol_name.as_deref(),
                    member.assignment.clone(),
                ),
            };
            let session = i64::from(member.session_timeout_ms);
            self.reply(parked.token, body);
            // The session restarts once the member has its answer (Kafka does the same, so a
            // session that expired while the member waited does not count).
            self.reschedule_heartbeat(member_id, session);
        }
    }

    pub fn reschedule_heartbeat(&mut self, member_id: &str, timeout_ms: i64) {
        let key = DeadlineKey::member(self.group_id, DeadlineKind::ClassicHeartbeat, member_id);
        let at = self.rt.after_ms(timeout_ms);
        self.rt.set_deadline(key, at, 0);
    }

    /// Answers a member's parked requests with `error`.
    pub fn answer_member_parked(&mut self, member: &ClassicMember, error: GroupError) {
        if let Some(parked) = member.awaiting_join {
            let body = join_error(parked.api_version, &member.member_id, error);
            self.reply(parked.token, body);
        }
        if let Some(parked) = member.awaiting_sync {
            self.reply(parked.token, responses::sync_error(error));
        }
    }

    /// Removes a member (or pending id) and its deadlines, answering what it had parked. A
    /// parked JoinGroup gets UNKNOWN_MEMBER_ID with no member id, so the client rejoins.
    pub fn remove_and_answer(&mut self, member_id: &str, error: GroupError) {
        self.rt.deadlines.cancel_member(self.group_id, member_id);
        if let Some(mut member) = self.group.remove(member_id) {
            if error == GroupError::UnknownMemberId {
                member.member_id = UNKNOWN_MEMBER_ID.to_owned();
            }
            self.answer_member_parked(&member, error);
        }
    }

    /// Kafka's `removeMemberAndUpdateClassicGroup`.
    pub fn remove_member_and_update(&mut self, member_id: &str) {
        self.remove_and_answer(member_id, GroupError::UnknownMemberId);
        match self.group.state {
            ClassicState::Stable | ClassicState::CompletingRebalance => {
                self.maybe_prepare_rebalance_or_complete_join()
            }
            ClassicState::PreparingRebalance if self.group.has_all_members_joined() => {
                self.complete_join()
            }
            _ => {}
        }
    }

    pub fn removed_event(&mut self, member: &str, reason: &'static str) {
        let event = GroupEvent::MemberRemoved {
            group: self.group_id.to_owned(),
            member: member.to_owned(),
            reason,
        };
        self.rt.event(event);
    }
}

/// The members as the leader's JoinGroup answer lists them: each with its metadata for the
/// selected protocol (for the consumer protocol, KIP-429's owned partitions are inside).
pub fn current_members(group: &ClassicGroup) -> Vec<JoinGroupResponseMember> {
    let Some(protocol) = group.protocol_name.as_deref() else {
        return Vec::new();
    };
    group
        .members
        .values()
        .map(|m| {
            JoinGroupResponseMember::default()
                .with_member_id(responses::s(&m.member_id))
                .with_group_instance_id(m.group_instance_id.as_deref().map(responses::s))
                .with_metadata(m.metadata(protocol).cloned().unwrap_or_default())
        })
        .collect()
}
