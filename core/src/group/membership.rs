//! Classic groups: SyncGroup, Heartbeat, LeaveGroup, the classic timers, and what happens when
//! a classic group's append resolves.
//!
//! Generation fencing follows Kafka: a static member's id must be the one registered for its
//! instance (else FENCED_INSTANCE_ID), the member must exist (UNKNOWN_MEMBER_ID) and be in the
//! group's generation (ILLEGAL_GENERATION); a Heartbeat during a rebalance answers
//! REBALANCE_IN_PROGRESS so the member rejoins. The leader's SyncGroup persists the group with
//! its assignment; every member gets its assignment only once the ISR has that record. A
//! failed store clears the assignment, answers the error to everyone waiting and rebalances.
//!
//! While the partition loads, Kafka answers Heartbeat with no error (the group state is not
//! known yet) and SyncGroup with REBALANCE_IN_PROGRESS (the rebalance in flight is lost with
//! the old coordinator; older clients do not expect COORDINATOR_LOAD_IN_PROGRESS there).

use super::classic::{ClassicState, Parked};
use super::errors::{GroupError, NONE};
use super::join::{Classic, StaticRejoin, UNKNOWN_MEMBER_ID};
use super::records::Record;
use super::responses::{self, leave_members, leave_response, member_response, sync_error};
use super::{AppendAction, AppendId, GroupCoordinator, Token};
use crate::constants::*;
use bytes::Bytes;
use kafka_protocol::messages::{
    HeartbeatRequest, HeartbeatResponse, LeaveGroupRequest, ResponseKind, SyncGroupRequest,
};
use std::collections::BTreeMap;

impl GroupCoordinator {
    pub(super) fn on_sync_group(&mut self, token: Token, version: i16, request: SyncGroupRequest) {
        let group_id = request.group_id.as_str();
        let partition = match self.coordinator_for(group_id) {
            Ok(partition) => partition,
            Err(GroupError::CoordinatorLoadInProgress) => {
                let body = sync_error(GroupError::RebalanceInProgress);
                return self.rt.respond_now(token, body);
            }
            Err(error) => return self.rt.respond_now(token, sync_error(error)),
        };
        let Some(mut classic) = self.classic(group_id) else {
            let body = sync_error(GroupError::UnknownMemberId);
            return self.rt.reply(partition, token, body);
        };
        let parked = Parked {
            token,
            api_version: version,
        };
        match classic.validate_sync(&request) {
            Err(error) => classic.reply(token, sync_error(error)),
            Ok(()) => classic.sync(parked, &request),
        }
    }

    pub(super) fn on_heartbeat(&mut self, token: Token, version: i16, request: HeartbeatRequest) {
        let _ = version;
        let group_id = request.group_id.as_str();
        let answer =
            |code: i16| ResponseKind::Heartbeat(HeartbeatResponse::default().with_error_code(code));
        let partition = match self.coordinator_for(group_id) {
            Ok(partition) => partition,
            // The group is still loading: Kafka answers blindly.
            Err(GroupError::CoordinatorLoadInProgress) => {
                return self.rt.respond_now(token, answer(NONE))
            }
            Err(error) => return self.rt.respond_now(token, answer(error.code())),
        };
        let Some(mut classic) = self.classic(group_id) else {
            let body = answer(GroupError::UnknownMemberId.code());
            return self.rt.reply(partition, token, body);
        };
        let code = match classic.heartbeat(&request) {
            Ok(()) => NONE,
            Err(error) => error.code(),
        };
        classic.reply(token, answer(code));
    }

    pub(super) fn on_leave_group(
        &mut self,
        token: Token,
        version: i16,
        request: LeaveGroupRequest,
    ) {
        let group_id = request.group_id.as_str();
        let members = leave_members(version, &request);
        let partition = match self.coordinator_for(group_id) {
            Ok(_) if members.len() > GROUP_REQUEST_GROUPS_MAX => Err(GroupError::InvalidRequest),
            other => other,
        };
        let partition = match partition {
            Ok(partition) => partition,
            Err(error) => {
                let body = leave_response(version, error.code(), Vec::new());
                return self.rt.respond_now(token, body);
            }
        };
        let Some(mut classic) = self.classic(group_id) else {
            let code = GroupError::UnknownMemberId.code();
            let answers = members.iter().map(|m| member_response(m, code)).collect();
            return self
                .rt
                .reply(partition, token, leave_response(version, NONE, answers));
        };
        if classic.group.state == ClassicState::Dead {
            let code = GroupError::CoordinatorNotAvailable.code();
            return classic.reply(token, leave_response(version, code, Vec::new()));
        }
        let answers: Vec<_> = members
            .iter()
            .map(|m| {
                member_response(
                    m,
                    classic.leave_one(m.member_id.as_str(), m.group_instance_id.as_deref()),
                )
            })
            .collect();
        if answers.iter().any(|a| a.error_code == NONE) {
            match classic.group.state {
                ClassicState::Stable | ClassicState::CompletingRebalance => {
                    classic.maybe_prepare_rebalance_or_complete_join()
                }
                ClassicState::PreparingRebalance => classic.maybe_complete_join_phase(),
                _ => {}
            }
        }
        classic.reply(token, leave_response(version, NONE, answers));
    }

    pub(super) fn on_classic_join_timeout(&mut self, group_id: &str) {
        if let Some(mut classic) = self.classic(group_id) {
            classic.on_join_deadline();
        }
    }

    /// Members of the new generation that never sent SyncGroup are removed (Kafka's
    /// `expirePendingSync`), and the group rebalances without them.
    pub(super) fn on_classic_sync_timeout(&mut self, group_id: &str, generation_id: i32) {
        let Some(mut classic) = self.classic(group_id) else {
            return;
        };
        let g = &*classic.group;
        let syncing = matches!(
            g.state,
            ClassicState::CompletingRebalance | ClassicState::Stable
        );
        if g.generation_id != generation_id || !syncing || g.pending_sync.is_empty() {
            return;
        }
        let pending: Vec<String> = g.pending_sync.iter().cloned().collect();
        for member_id in &pending {
            classic.remove_and_answer(member_id, GroupError::UnknownMemberId);
            classic.removed_event(member_id, "did not send SyncGroup in time");
        }
        classic.prepare_rebalance();
    }

    /// A member's session (or a new or pending member's join timeout) expired.
    pub(super) fn on_classic_heartbeat_timeout(&mut self, group_id: &str, member_id: &str) {
        let Some(mut classic) = self.classic(group_id) else {
            return;
        };
        let g = &*classic.group;
        if g.state == ClassicState::Dead {
            return;
        }
        if g.pending_members.contains(member_id) {
            classic.group.remove(member_id);
            if classic.group.state == ClassicState::PreparingRebalance
                && classic.group.has_all_members_joined()
            {
                classic.complete_join();
            }
            return;
        }
        let Some(member) = g.members.get(member_id) else {
            return;
        };
        // A member waiting for the rebalance satisfies its heartbeats; a new one does not.
        let waiting = member.awaiting_join.is_some() || member.awaiting_sync.is_some();
        if member.is_new || !waiting {
            classic.removed_event(member_id, "session timed out");
            classic.remove_member_and_update(member_id);
        }
    }

    pub(super) fn on_sync_appended(
        &mut self,
        group_id: &str,
        incarnation: u64,
        generation_id: i32,
        assignment: BTreeMap<String, Bytes>,
        error: Option<GroupError>,
    ) {
        let Some(mut classic) = self.classic(group_id) else {
            return;
        };
        // Another member may have joined meanwhile: only the generation it was for settles.
        let g = &*classic.group;
        let current = classic.incarnation == incarnation
            && g.state == ClassicState::CompletingRebalance
            && g.generation_id == generation_id;
        if !current {
            return;
        }
        match error {
            Some(error) => {
                classic.reset_and_propagate(error);
                classic.maybe_prepare_rebalance_or_complete_join();
            }
            None => {
                for (member_id, member) in classic.group.members.iter_mut() {
                    member.assignment = assignment.get(member_id).cloned().unwrap_or_default();
                }
                classic.propagate_assignment(None);
                let now_ms = classic.rt.now_ms();
                classic.group.transition(ClassicState::Stable, now_ms);
            }
        }
    }

    pub(super) fn on_static_rejoin_appended(
        &mut self,
        append_id: AppendId,
        group_id: &str,
        incarnation: u64,
        rejoin: StaticRejoin,
        error: Option<GroupError>,
    ) {
        let Some(mut classic) = self.classic(group_id) else {
            return;
        };
        let still = classic.incarnation == incarnation
            && classic.group.members.contains_key(&rejoin.new_member_id);
        if !still {
            return; // The member left or was replaced meanwhile; nothing to restore.
        }
        match error {
            Some(error) => classic.revert_static_rejoin(&rejoin, error),
            None => classic.complete_static_rejoin(&rejoin, append_id),
        }
    }
}

impl Classic<'_> {
    fn validate_sync(&self, request: &SyncGroupRequest) -> Result<(), GroupError> {
        let g = &*self.group;
        if g.state == ClassicState::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        let instance = request.group_instance_id.as_ref().map(|i| i.as_str());
        g.validate_member(request.member_id.as_str(), instance)?;
        if request.generation_id != g.generation_id {
            return Err(GroupError::IllegalGeneration);
        }
        let inconsistent = |asked: Option<&str>, group: Option<&str>| matches!((asked, group), (Some(a), Some(g)) if a != g);
        let asked_type = request.protocol_type.as_ref().map(|p| p.as_str());
        let asked_name = request.protocol_name.as_ref().map(|p| p.as_str());
        if inconsistent(asked_type, g.protocol_type.as_deref())
            || inconsistent(asked_name, g.protocol_name.as_deref())
        {
            return Err(GroupError::InconsistentGroupProtocol);
        }
        Ok(())
    }

    fn sync(&mut self, parked: Parked, request: &SyncGroupRequest) {
        let member_id = request.member_id.as_str().to_owned();
        match self.group.state {
            ClassicState::Empty | ClassicState::Dead => {
                self.reply(parked.token, sync_error(GroupError::UnknownMemberId))
            }
            ClassicState::PreparingRebalance => {
                self.reply(parked.token, sync_error(GroupError::RebalanceInProgress))
            }
            ClassicState::Stable => {
                self.group.pending_sync.remove(&member_id);
                let member = &self.group.members[&member_id];
                let (assignment, session) = (member.assignment.clone(), member.session_timeout_ms);
                let body = responses::sync_response(
                    parked.api_version,
                    self.group.protocol_type.as_deref(),
                    self.group.protocol_name.as_deref(),
                    assignment,
                );
                self.reply(parked.token, body);
                self.reschedule_heartbeat(&member_id, i64::from(session));
            }
            ClassicState::CompletingRebalance => self.sync_completing(parked, &member_id, request),
        }
    }

    /// A SyncGroup during CompletingRebalance parks until the leader's assignment is stored.
    fn sync_completing(&mut self, parked: Parked, member_id: &str, request: &SyncGroupRequest) {
        let member = self.group.members.get_mut(member_id).expect("validated");
        if let Some(old) = member.awaiting_sync.replace(parked) {
            // A repeated SyncGroup supersedes the first (Kafka drops it): it gets a rejoin.
            self.reply(old.token, sync_error(GroupError::RebalanceInProgress));
        }
        self.group.pending_sync.remove(member_id);
        if !self.group.is_leader(member_id) {
            return;
        }
        let mut assignment: BTreeMap<String, Bytes> = request
            .assignments
            .iter()
            .filter(|a| self.group.members.contains_key(a.member_id.as_str()))
            .map(|a| (a.member_id.as_str().to_owned(), a.assignment.clone()))
            .collect();
        for id in self.group.members.keys() {
            assignment.entry(id.clone()).or_default();
        }
        let assignment_bytes: usize = assignment.values().map(Bytes::len).sum();
        let metadata_bytes: usize = self
            .group
            .members
            .values()
            .map(|m| m.metadata_bytes() - m.assignment.len())
            .sum();
        let error = if assignment_bytes + metadata_bytes > GROUP_METADATA_BYTES_MAX {
            // Kafka would fail the append as too large: the same answer, without the append.
            Some(GroupError::UnknownServerError)
        } else if self.rt.appends_full() {
            Some(GroupError::CoordinatorNotAvailable)
        } else {
            None
        };
        if let Some(error) = error {
            self.reset_and_propagate(error);
            return self.maybe_prepare_rebalance_or_complete_join();
        }
        let value = self.group.to_record(&assignment, self.rt.now_ms());
        let record = Record::GroupMetadata {
            group: self.group_id.to_owned(),
            value: Some(value),
        };
        let generation_id = self.group.generation_id;
        let action = AppendAction::ClassicSync {
            generation_id,
            assignment,
        };
        let entry = (self.group_id, self.partition, self.incarnation);
        self.rt.append(entry, vec![record], action);
    }

    fn heartbeat(&mut self, request: &HeartbeatRequest) -> Result<(), GroupError> {
        let g = &*self.group;
        if g.state == ClassicState::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        let member_id = request.member_id.as_str();
        let instance = request.group_instance_id.as_ref().map(|i| i.as_str());
        g.validate_member(member_id, instance)?;
        if request.generation_id != g.generation_id {
            return Err(GroupError::IllegalGeneration);
        }
        let session = i64::from(g.members[member_id].session_timeout_ms);
        match g.state {
            ClassicState::Empty | ClassicState::Dead => Err(GroupError::UnknownMemberId),
            ClassicState::PreparingRebalance => {
                self.reschedule_heartbeat(member_id, session);
                Err(GroupError::RebalanceInProgress)
            }
            ClassicState::CompletingRebalance | ClassicState::Stable => {
                self.reschedule_heartbeat(member_id, session);
                Ok(())
            }
        }
    }

    /// One member of a LeaveGroup; its error code. An empty member id with an instance id is
    /// the admin removal of a static member (KIP-345).
    fn leave_one(&mut self, member_id: &str, instance: Option<&str>) -> i16 {
        if member_id == UNKNOWN_MEMBER_ID {
            let current = instance
                .and_then(|i| self.group.static_members.get(i))
                .cloned();
            return match current {
                Some(current) => {
                    self.remove_and_answer(&current, GroupError::UnknownMemberId);
                    NONE
                }
                None => GroupError::UnknownMemberId.code(),
            };
        }
        if self.group.pending_members.contains(member_id) {
            self.remove_and_answer(member_id, GroupError::UnknownMemberId);
            return NONE;
        }
        match self.group.validate_member(member_id, instance) {
            Ok(()) => {
                self.remove_and_answer(member_id, GroupError::UnknownMemberId);
                NONE
            }
            Err(error) => error.code(),
        }
    }
}
