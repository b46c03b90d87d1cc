//! ListGroups, DescribeGroups and DeleteGroups.
//!
//! ListGroups answers for every partition this process serves, with
//! COORDINATOR_LOAD_IN_PROGRESS if one is still loading (Kafka lists what it has and says so);
//! v4 filters by state and v5 by type, case-insensitively as Kafka 4.x does. DescribeGroups
//! shows members' metadata and assignments only for a Stable classic group; an unknown group
//! is Dead with no error before v6 and GROUP_ID_NOT_FOUND from v6 (KIP-1043). DeleteGroups
//! deletes only empty groups (NON_EMPTY_GROUP otherwise): the group and its offsets are
//! tombstoned, removed at once, and put back if the append fails; the answer waits for every
//! group's append.

use super::classic::ClassicState;
use super::consumer::{group_tombstones, member_tombstones};
use super::consumer_protocol::CONSUMER_PROTOCOL_TYPE;
use super::errors::{GroupError, NONE};
use super::records::Record;
use super::responses::{described_group_error, s};
use super::{AppendAction, Gather, GroupCoordinator, GroupEntry, GroupEvent, GroupKind, Token};
use crate::constants::*;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::*;
use std::collections::BTreeSet;

/// First DescribeGroups version that reports an unknown group as GROUP_ID_NOT_FOUND.
const DESCRIBE_NOT_FOUND_VERSION: i16 = 6;

impl GroupCoordinator {
    pub(super) fn on_list_groups(
        &mut self,
        token: Token,
        version: i16,
        request: ListGroupsRequest,
    ) {
        let lower = |v: &Vec<kafka_protocol::protocol::StrBytes>| -> BTreeSet<String> {
            v.iter().map(|s| s.as_str().to_lowercase()).collect()
        };
        let states = if version >= 4 {
            lower(&request.states_filter)
        } else {
            BTreeSet::new()
        };
        let types = if version >= 5 {
            lower(&request.types_filter)
        } else {
            BTreeSet::new()
        };
        let loading = self.rt.partitions.values().any(|p| !p.loaded);
        let mut groups = Vec::new();
        for (id, entry) in &self.groups {
            if !self.is_serving(entry.partition) {
                continue;
            }
            let (protocol_type, state, group_type) = match &entry.kind {
                GroupKind::Classic(g) if g.state == ClassicState::Dead => continue,
                GroupKind::Classic(g) => (
                    g.protocol_type.clone().unwrap_or_default(),
                    g.state.name(),
                    "classic",
                ),
                GroupKind::Consumer(g) => (
                    CONSUMER_PROTOCOL_TYPE.to_owned(),
                    g.state().name(),
                    "consumer",
                ),
            };
            let wanted = (states.is_empty() || states.contains(&state.to_lowercase()))
                && (types.is_empty() || types.contains(group_type));
            if !wanted {
                continue;
            }
            let mut listed = ListedGroup::default()
                .with_group_id(GroupId(s(id)))
                .with_protocol_type(s(&protocol_type));
            if version >= 4 {
                listed.group_state = s(state);
            }
            if version >= 5 {
                listed.group_type = s(group_type);
            }
            groups.push(listed);
        }
        let code = if loading {
            GroupError::CoordinatorLoadInProgress.code()
        } else {
            NONE
        };
        let response = ListGroupsResponse::default()
            .with_error_code(code)
            .with_groups(groups);
        self.rt
            .respond_now(token, ResponseKind::ListGroups(response));
    }

    pub(super) fn on_describe_groups(
        &mut self,
        token: Token,
        version: i16,
        request: DescribeGroupsRequest,
    ) {
        let groups = request
            .groups
            .iter()
            .take(GROUP_REQUEST_GROUPS_MAX)
            .map(|id| self.describe_group(version, id.as_str()))
            .collect();
        let response = DescribeGroupsResponse::default().with_groups(groups);
        self.rt
            .respond_now(token, ResponseKind::DescribeGroups(response));
    }

    fn describe_group(&self, version: i16, group_id: &str) -> DescribedGroup {
        if let Err(error) = self.coordinator_for(group_id) {
            return described_group_error(group_id, error.code(), None);
        }
        let not_found = |what: &str| {
            if version >= DESCRIBE_NOT_FOUND_VERSION {
                let message = Some(format!("Group {group_id} {what}."));
                described_group_error(group_id, GroupError::GroupIdNotFound.code(), message)
            } else {
                described_group_error(group_id, NONE, None)
                    .with_group_state(s(ClassicState::Dead.name()))
            }
        };
        let group = match self.groups.get(group_id).map(|e| &e.kind) {
            None => return not_found("not found"),
            Some(GroupKind::Consumer(_)) => return not_found("is not a classic group"),
            Some(GroupKind::Classic(g)) => g,
        };
        let stable = group.state == ClassicState::Stable;
        let protocol = group.protocol_name.clone().filter(|_| stable);
        let members = group
            .members
            .values()
            .map(|m| {
                let mut member = DescribedGroupMember::default()
                    .with_member_id(s(&m.member_id))
                    .with_client_id(s(&m.client_id))
                    .with_client_host(s(&m.client_host));
                if version >= 4 {
                    member.group_instance_id = m.group_instance_id.as_deref().map(s);
                }
                if let Some(protocol) = &protocol {
                    member.member_metadata = m.metadata(protocol).cloned().unwrap_or_default();
                    member.member_assignment = m.assignment.clone();
                }
                member
            })
            .collect();
        DescribedGroup::default()
            .with_group_id(GroupId(s(group_id)))
            .with_group_state(s(group.state.name()))
            .with_protocol_type(s(group.protocol_type.as_deref().unwrap_or_default()))
            .with_protocol_data(s(protocol.as_deref().unwrap_or_default()))
            .with_members(members)
    }

    pub(super) fn on_delete_groups(
        &mut self,
        token: Token,
        version: i16,
        request: DeleteGroupsRequest,
    ) {
        let _ = version;
        let results = request
            .groups_names
            .iter()
            .map(|g| DeletableGroupResult::default().with_group_id(g.clone()))
            .collect();
        let body =
            ResponseKind::DeleteGroups(DeleteGroupsResponse::default().with_results(results));
        self.rt.gathers.insert(token, Gather { body, waiting: 1 });
        for (index, group) in request.groups_names.iter().enumerate() {
            let group_id = group.as_str();
            let code = match self.deletable(group_id, index) {
                Ok(()) => {
                    self.rt
                        .gathers
                        .get_mut(&token)
                        .expect("inserted above")
                        .waiting += 1;
                    self.delete_group(group_id, Some((token, index)));
                    continue;
                }
                Err(error) => error.code(),
            };
            super::responses::set_group_error(
                &mut self
                    .rt
                    .gathers
                    .get_mut(&token)
                    .expect("inserted above")
                    .body,
                index,
                code,
            );
        }
        // The placeholder part: answers now if no group had to be written.
        self.gather_part(token, usize::MAX, NONE);
    }

    fn deletable(&self, group_id: &str, index: usize) -> Result<(), GroupError> {
        if index >= GROUP_REQUEST_GROUPS_MAX {
            return Err(GroupError::InvalidRequest);
        }
        self.coordinator_for(group_id)?;
        let entry = self
            .groups
            .get(group_id)
            .ok_or(GroupError::GroupIdNotFound)?;
        match &entry.kind {
            GroupKind::Classic(g) if g.state == ClassicState::Dead => {
                Err(GroupError::GroupIdNotFound)
            }
            GroupKind::Classic(g) if g.state != ClassicState::Empty => {
                Err(GroupError::NonEmptyGroup)
            }
            GroupKind::Consumer(g) if !g.members.is_empty() => Err(GroupError::NonEmptyGroup),
            _ if self.rt.appends_full() => Err(GroupError::CoordinatorNotAvailable),
            _ => Ok(()),
        }
    }

    /// Removes an empty group now and appends its tombstones (offsets first, as Kafka writes
    /// them); `part` is the DeleteGroups answer waiting for it.
    pub(super) fn delete_group(&mut self, group_id: &str, part: Option<(Token, usize)>) {
        let entry = self.groups.remove(group_id).expect("checked by the caller");
        self.rt.deadlines.cancel_group(group_id);
        let keys: BTreeSet<&(String, i32)> = entry
            .offsets
            .keys()
            .chain(entry.pending_offsets.keys())
            .collect();
        let mut records: Vec<Record> = keys
            .into_iter()
            .map(|(topic, partition)| Record::OffsetCommit {
                group: group_id.to_owned(),
                topic: topic.clone(),
                partition: *partition,
                value: None,
            })
            .collect();
        match &entry.kind {
            GroupKind::Classic(_) => records.push(Record::GroupMetadata {
                group: group_id.to_owned(),
                value: None,
            }),
            GroupKind::Consumer(g) => {
                for member in g.target.keys() {
                    records.extend(member_tombstones(group_id, member));
                }
                records.extend(group_tombstones(group_id));
            }
        }
        let key = (group_id, entry.partition, entry.incarnation);
        let action = AppendAction::DeleteGroup {
            entry: Box::new(entry.clone()),
            part,
        };
        self.rt.append(key, records, action);
    }

    pub(super) fn on_delete_appended(
        &mut self,
        group_id: &str,
        entry: GroupEntry,
        part: Option<(Token, usize)>,
        error: Option<GroupError>,
    ) {
        match error {
            None => {
                let group = group_id.to_owned();
                self.rt.event(GroupEvent::GroupDeleted { group });
            }
            // Put the group back as Kafka's timeline would, unless a new one took its id.
            Some(_) => {
                if !self.groups.contains_key(group_id)
                    && self.rt.partitions.contains_key(&entry.partition)
                {
                    let mut entry = entry;
                    // Writes counted as pending then have resolved since.
                    entry.pending_offsets.clear();
                    self.groups.insert(group_id.to_owned(), entry);
                }
            }
        }
        if let Some((token, index)) = part {
            self.gather_part(token, index, error.map_or(NONE, GroupError::code));
        }
    }
}
