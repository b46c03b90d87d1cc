//! A KIP-848 consumer group's state and the reconciliation of one member towards its target
//! (Kafka's `ConsumerGroup`, `ConsumerGroupMember` and `CurrentAssignmentBuilder`).
//!
//! Three epochs order everything. The *group epoch* is bumped whenever the membership or a
//! subscription changes; the *target assignment epoch* is the group epoch the target
//! assignment was computed for; each member's *member epoch* is the target epoch it has
//! reconciled to. A member moves to a new epoch only in steps that never let two members own
//! one partition: first it keeps `assigned ∩ target` and is asked to revoke the rest (state
//! UnrevokedPartitions, epoch unchanged); once its heartbeat no longer reports the revoked
//! partitions they are released; only then are they assigned to their new owner, which may
//! wait for them in UnreleasedPartitions. The coordinator tracks, per partition, the epoch of
//! the member that owns it (assigned or pending revocation): a partition with an owner is
//! never handed to another member.

use super::config::ServerAssignor;
use super::errors::GroupError;
use super::records::{
    Assignment, CurrentAssignmentValue, MemberMetadataValue, Record, TopicMetadataValue,
};
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

/// Member epoch of a member leaving the group (KIP-848).
pub const LEAVE_GROUP_MEMBER_EPOCH: i32 = -1;
/// Member epoch of a static member leaving temporarily (KIP-848).
pub const LEAVE_GROUP_STATIC_MEMBER_EPOCH: i32 = -2;

/// Kafka's `MemberState`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberState {
    /// Reconciled to its member epoch.
    Stable,
    /// Must revoke partitions before moving on.
    UnrevokedPartitions,
    /// At the target epoch, waiting for partitions other members still own.
    UnreleasedPartitions,
    /// A state written by a newer version.
    Unknown,
}

impl MemberState {
    /// The byte stored in ConsumerGroupCurrentMemberAssignmentValue.
    pub const fn value(self) -> i8 {
        match self {
            MemberState::Stable => 0,
            MemberState::UnrevokedPartitions => 1,
            MemberState::UnreleasedPartitions => 2,
            MemberState::Unknown => 127,
        }
    }

    /// The state a stored byte names.
    pub const fn from_value(value: i8) -> MemberState {
        match value {
            0 => MemberState::Stable,
            1 => MemberState::UnrevokedPartitions,
            2 => MemberState::UnreleasedPartitions,
            _ => MemberState::Unknown,
        }
    }
}

/// Kafka's `ConsumerGroupState`, as ListGroups and ConsumerGroupDescribe name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsumerGroupState {
    /// No members.
    Empty,
    /// The group epoch is ahead of the target assignment.
    Assigning,
    /// Some member has not reached the target.
    Reconciling,
    /// Every member is at the target epoch and stable.
    Stable,
}

impl ConsumerGroupState {
    /// The name Kafka reports.
    pub const fn name(self) -> &'static str {
        match self {
            ConsumerGroupState::Empty => "Empty",
            ConsumerGroupState::Assigning => "Assigning",
            ConsumerGroupState::Reconciling => "Reconciling",
            ConsumerGroupState::Stable => "Stable",
        }
    }
}

/// A topic a group subscribes to, as the assignors see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicInfo {
    /// Topic id.
    pub topic_id: Uuid,
    /// Partition count.
    pub partitions: i32,
}

/// A KIP-848 group member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerMember {
    /// `member_id`.
    pub member_id: String,
    /// `group.instance.id` of a static member.
    pub instance_id: Option<String>,
    /// `client.rack`.
    pub rack_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Subscribed topic names.
    pub subscribed_topic_names: BTreeSet<String>,
    /// `rebalance_timeout_ms` (-1 until the member sends one).
    pub rebalance_timeout_ms: i32,
    /// The server assignor the member asked for.
    pub server_assignor: Option<String>,
    /// The member epoch.
    pub member_epoch: i32,
    /// The member epoch before the last bump (a heartbeat with it is still accepted).
    pub previous_member_epoch: i32,
    /// Reconciliation state.
    pub state: MemberState,
    /// Partitions assigned to (owned by) the member.
    pub assigned: Assignment,
    /// Partitions the member must revoke; still owned until it does.
    pub pending_revocation: Assignment,
}

impl ConsumerMember {
    /// A member that just joined: epoch 0, nothing assigned.
    pub fn new(member_id: &str) -> ConsumerMember {
        ConsumerMember {
            member_id: member_id.to_owned(),
            instance_id: None,
            rack_id: None,
            client_id: String::new(),
            client_host: String::new(),
            subscribed_topic_names: BTreeSet::new(),
            rebalance_timeout_ms: -1,
            server_assignor: None,
            member_epoch: 0,
            previous_member_epoch: -1,
            state: MemberState::Stable,
            assigned: Assignment::new(),
            pending_revocation: Assignment::new(),
        }
    }

    /// Stable at `epoch`.
    pub fn is_reconciled_to(&self, epoch: i32) -> bool {
        self.state == MemberState::Stable && self.member_epoch == epoch
    }

    /// Every partition the member owns: assigned and pending revocation.
    pub fn owned(&self) -> impl Iterator<Item = (Uuid, i32)> + '_ {
        let flat = |a: &Assignment| {
            a.iter()
                .flat_map(|(t, ps)| ps.iter().map(move |p| (*t, *p)))
                .collect::<Vec<_>>()
        };
        flat(&self.assigned)
            .into_iter()
            .chain(flat(&self.pending_revocation))
    }

    /// The subscription part, as stored.
    pub fn metadata_value(&self) -> MemberMetadataValue {
        MemberMetadataValue {
            instance_id: self.instance_id.clone(),
            rack_id: self.rack_id.clone(),
            client_id: self.client_id.clone(),
            client_host: self.client_host.clone(),
            subscribed_topic_names: self.subscribed_topic_names.iter().cloned().collect(),
            subscribed_topic_regex: None,
            rebalance_timeout_ms: self.rebalance_timeout_ms,
            server_assignor: self.server_assignor.clone(),
        }
    }

    /// The assignment part, as stored.
    pub fn current_value(&self) -> CurrentAssignmentValue {
        CurrentAssignmentValue {
            member_epoch: self.member_epoch,
            previous_member_epoch: self.previous_member_epoch,
            state: self.state.value(),
            assigned: self.assigned.clone(),
            pending_revocation: self.pending_revocation.clone(),
        }
    }

    /// Applies a stored subscription.
    pub fn apply_metadata(&mut self, value: &MemberMetadataValue) {
        self.instance_id = value.instance_id.clone();
        self.rack_id = value.rack_id.clone();
        self.client_id = value.client_id.clone();
        self.client_host = value.client_host.clone();
        self.subscribed_topic_names = value.subscribed_topic_names.iter().cloned().collect();
        self.rebalance_timeout_ms = value.rebalance_timeout_ms;
        self.server_assignor = value.server_assignor.clone();
    }

    /// Applies a stored assignment.
    pub fn apply_current(&mut self, value: &CurrentAssignmentValue) {
        self.member_epoch = value.member_epoch;
        self.previous_member_epoch = value.previous_member_epoch;
        self.state = MemberState::from_value(value.state);
        self.assigned = value.assigned.clone();
        self.pending_revocation = value.pending_revocation.clone();
    }

    /// Whether the subscription differs in what the group persists about it.
    pub fn metadata_differs(&self, other: &ConsumerMember) -> bool {
        self.metadata_value() != other.metadata_value()
    }
}

/// A KIP-848 consumer group.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConsumerGroup {
    /// The group epoch.
    pub group_epoch: i32,
    /// Members by id.
    pub members: BTreeMap<String, ConsumerMember>,
    /// `group.instance.id` → member id.
    pub static_members: BTreeMap<String, String>,
    /// The subscribed topics' metadata the target assignment was computed from.
    pub subscription_metadata: BTreeMap<String, TopicInfo>,
    /// The target assignment epoch (-1 once tombstoned).
    pub assignment_epoch: i32,
    /// Target assignment per member.
    pub target: BTreeMap<String, Assignment>,
    /// Owner epoch of every owned partition.
    pub partition_epochs: BTreeMap<(Uuid, i32), i32>,
    /// Topic metadata changed: recompute the subscription metadata on the next heartbeat.
    pub metadata_refresh: bool,
}

impl ConsumerGroup {
    /// The group's state.
    pub fn state(&self) -> ConsumerGroupState {
        if self.members.is_empty() {
            ConsumerGroupState::Empty
        } else if self.group_epoch > self.assignment_epoch {
            ConsumerGroupState::Assigning
        } else if self
            .members
            .values()
            .all(|m| m.is_reconciled_to(self.assignment_epoch))
        {
            ConsumerGroupState::Stable
        } else {
            ConsumerGroupState::Reconciling
        }
    }

    /// The epoch of the member owning a partition, or -1 when it is free.
    pub fn current_partition_epoch(&self, topic_id: Uuid, partition: i32) -> i32 {
        self.partition_epochs
            .get(&(topic_id, partition))
            .copied()
            .unwrap_or(-1)
    }

    /// Inserts or replaces a member. Its owned partitions must be free or its own: handing a
    /// partition to two members is a coordinator bug.
    pub fn update_member(&mut self, member: ConsumerMember) {
        self.release_partitions(&member.member_id);
        for key in member.owned() {
            let previous = self.partition_epochs.insert(key, member.member_epoch);
            assert!(
                previous.is_none(),
                "partition {key:?} of member {} is still owned at epoch {previous:?}",
                member.member_id
            );
        }
        if let Some(instance) = &member.instance_id {
            self.static_members
                .insert(instance.clone(), member.member_id.clone());
        }
        self.members.insert(member.member_id.clone(), member);
    }

    /// Removes a member and frees its partitions.
    pub fn remove_member(&mut self, member_id: &str) -> Option<ConsumerMember> {
        self.release_partitions(member_id);
        let member = self.members.remove(member_id)?;
        if let Some(instance) = &member.instance_id {
            if self.static_members.get(instance).map(String::as_str) == Some(member_id) {
                self.static_members.remove(instance);
            }
        }
        Some(member)
    }

    fn release_partitions(&mut self, member_id: &str) {
        let Some(member) = self.members.get(member_id) else {
            return;
        };
        for key in member.owned() {
            self.partition_epochs.remove(&key);
        }
    }

    /// The member holding `instance_id`.
    pub fn static_member(&self, instance_id: &str) -> Option<&ConsumerMember> {
        self.members.get(self.static_members.get(instance_id)?)
    }

    /// How many members subscribe to each topic, with `old` replaced by `new`.
    pub fn subscribed_topic_names(
        &self,
        old: Option<&ConsumerMember>,
        new: Option<&ConsumerMember>,
    ) -> BTreeMap<String, usize> {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        let replaced = old.map(|m| m.member_id.as_str());
        for member in self.members.values() {
            if Some(member.member_id.as_str()) == replaced {
                continue;
            }
            for topic in &member.subscribed_topic_names {
                *counts.entry(topic.clone()).or_default() += 1;
            }
        }
        for topic in new.iter().flat_map(|m| m.subscribed_topic_names.iter()) {
            *counts.entry(topic.clone()).or_default() += 1;
        }
        counts
    }

    /// The assignor most members asked for (ties to the first by name), else the default.
    pub fn preferred_assignor(
        &self,
        updated: Option<&ConsumerMember>,
        default: ServerAssignor,
    ) -> ServerAssignor {
        let mut votes: BTreeMap<ServerAssignor, usize> = BTreeMap::new();
        let skip = updated.map(|m| m.member_id.as_str());
        let members = self
            .members
            .values()
            .filter(|m| Some(m.member_id.as_str()) != skip)
            .chain(updated);
        for member in members {
            let named = member
                .server_assignor
                .as_deref()
                .and_then(ServerAssignor::parse);
            if let Some(assignor) = named {
                *votes.entry(assignor).or_default() += 1;
            }
        }
        let best = votes.values().copied().max().unwrap_or(0);
        votes
            .into_iter()
            .find(|(_, count)| *count == best)
            .map(|(assignor, _)| assignor)
            .unwrap_or(default)
    }

    /// The subscription metadata as stored.
    pub fn subscription_value(&self) -> Vec<TopicMetadataValue> {
        self.subscription_metadata
            .iter()
            .map(|(name, info)| TopicMetadataValue {
                topic_id: info.topic_id,
                topic_name: name.clone(),
                num_partitions: info.partitions,
            })
            .collect()
    }

    /// Checks the ownership map against the members: every owned partition has exactly one
    /// owner, recorded at that owner's epoch. Cost is linear in the owned partitions.
    pub fn check_ownership(&self) {
        let mut seen: BTreeMap<(Uuid, i32), &str> = BTreeMap::new();
        for member in self.members.values() {
            for key in member.owned() {
                let other = seen.insert(key, &member.member_id);
                assert!(
                    other.is_none(),
                    "partition {key:?} owned by {} and {}",
                    member.member_id,
                    other.unwrap_or_default()
                );
                assert_eq!(self.partition_epochs.get(&key), Some(&member.member_epoch));
            }
        }
        assert_eq!(seen.len(), self.partition_epochs.len());
    }
}

/// The partitions a heartbeat reports as owned, or `None` when it did not say.
pub type Owned = Option<Assignment>;

/// Moves `member` towards `target` at `target_epoch` (Kafka's `CurrentAssignmentBuilder`):
/// revoke first, then assign only partitions no one else owns.
pub fn reconcile(
    member: &ConsumerMember,
    target_epoch: i32,
    target: &Assignment,
    owned: &Owned,
    group: &ConsumerGroup,
) -> Result<ConsumerMember, GroupError> {
    match member.state {
        MemberState::Stable if member.member_epoch == target_epoch => Ok(member.clone()),
        MemberState::Stable | MemberState::UnreleasedPartitions => Ok(next_assignment(
            member,
            member.member_epoch,
            target_epoch,
            target,
            group,
        )),
        MemberState::UnrevokedPartitions => {
            if owns_any(owned, &member.pending_revocation) {
                return Ok(member.clone());
            }
            Ok(next_assignment(
                member,
                member.member_epoch,
                target_epoch,
                target,
                group,
            ))
        }
        MemberState::Unknown => {
            // Kafka fences a member in a state it does not know unless it owns nothing.
            if owned
                .as_ref()
                .is_none_or(|o| o.values().any(|ps| !ps.is_empty()))
            {
                return Err(GroupError::FencedMemberEpoch);
            }
            Ok(next_assignment(
                member,
                target_epoch,
                target_epoch,
                target,
                group,
            ))
        }
    }
}

/// Whether the heartbeat still reports any of `revoking` as owned (no report: yes).
fn owns_any(owned: &Owned, revoking: &Assignment) -> bool {
    let Some(owned) = owned else {
        return true;
    };
    revoking.iter().any(|(topic, partitions)| {
        owned
            .get(topic)
            .is_some_and(|o| partitions.iter().any(|p| o.contains(p)))
    })
}

fn next_assignment(
    member: &ConsumerMember,
    member_epoch: i32,
    target_epoch: i32,
    target: &Assignment,
    group: &ConsumerGroup,
) -> ConsumerMember {
    let mut assigned = Assignment::new();
    let mut revoking = Assignment::new();
    let mut assigning = Assignment::new();
    let mut unreleased = false;
    let topics: BTreeSet<Uuid> = target
        .keys()
        .chain(member.assigned.keys())
        .copied()
        .collect();
    let empty = BTreeSet::new();
    for topic in topics {
        let goal = target.get(&topic).unwrap_or(&empty);
        let current = member.assigned.get(&topic).unwrap_or(&empty);
        let kept: BTreeSet<i32> = current.intersection(goal).copied().collect();
        let revoked: BTreeSet<i32> = current.difference(&kept).copied().collect();
        let mut new: BTreeSet<i32> = goal.difference(&kept).copied().collect();
        let before = new.len();
        new.retain(|p| group.current_partition_epoch(topic, *p) == -1);
        unreleased |= new.len() != before;
        insert_nonempty(&mut assigned, topic, kept);
        insert_nonempty(&mut revoking, topic, revoked);
        insert_nonempty(&mut assigning, topic, new);
    }
    let mut next = member.clone();
    if !revoking.is_empty() {
        next.state = MemberState::UnrevokedPartitions;
        bump_epoch(&mut next, member_epoch);
        next.assigned = assigned;
        next.pending_revocation = revoking;
        return next;
    }
    for (topic, partitions) in assigning {
        assigned.entry(topic).or_default().extend(partitions);
    }
    next.state = if unreleased {
        MemberState::UnreleasedPartitions
    } else {
        MemberState::Stable
    };
    bump_epoch(&mut next, target_epoch);
    next.assigned = assigned;
    next.pending_revocation = Assignment::new();
    next
}

/// Kafka's `updateMemberEpoch`: the epoch before this step becomes the previous epoch, even
/// when the step keeps the epoch (a revocation step).
fn bump_epoch(member: &mut ConsumerMember, epoch: i32) {
    member.previous_member_epoch = member.member_epoch;
    member.member_epoch = epoch;
}

fn insert_nonempty(assignment: &mut Assignment, topic: Uuid, partitions: BTreeSet<i32>) {
    if !partitions.is_empty() {
        assignment.insert(topic, partitions);
    }
}

/// Whether `owned` names only partitions of `assigned` (Kafka's `isSubset`; no report: no).
pub fn is_subset(owned: &Owned, assigned: &Assignment) -> bool {
    let Some(owned) = owned else {
        return false;
    };
    owned.iter().all(|(topic, partitions)| {
        partitions.is_empty()
            || assigned
                .get(topic)
                .is_some_and(|a| partitions.iter().all(|p| a.contains(p)))
    })
}

impl ConsumerGroup {
    /// Applies one KIP-848 record of this group, as loading does and as the live path does
    /// after building its records (so memory is always a replay of the log). `strict` asserts
    /// that no partition gets two owners (a coordinator bug); loading is lenient instead and
    /// drops a conflicting partition from the later member, reporting it. The group-epoch
    /// tombstone (group deletion) is the caller's to handle.
    pub fn apply(&mut self, record: &Record, strict: bool) -> Result<(), String> {
        match record {
            Record::ConsumerGroupMetadata { value, .. } => {
                if let Some(epoch) = value {
                    self.group_epoch = *epoch;
                }
            }
            Record::ConsumerGroupPartitionMetadata { value, .. } => {
                self.subscription_metadata = value
                    .iter()
                    .flatten()
                    .map(|t| {
                        let info = TopicInfo {
                            topic_id: t.topic_id,
                            partitions: t.num_partitions,
                        };
                        (t.topic_name.clone(), info)
                    })
                    .collect();
            }
            Record::ConsumerGroupTargetAssignmentMetadata { value, .. } => {
                self.assignment_epoch = value.unwrap_or(-1);
            }
            Record::ConsumerGroupTargetAssignmentMember { member, value, .. } => match value {
                Some(assignment) => {
                    self.target.insert(member.clone(), assignment.clone());
                }
                None => {
                    self.target.remove(member);
                }
            },
            Record::ConsumerGroupMemberMetadata { member, value, .. } => match value {
                Some(value) => {
                    let mut m = self.member_or_new(member);
                    m.apply_metadata(value);
                    self.update_member(m);
                }
                None => {
                    self.remove_member(member);
                }
            },
            Record::ConsumerGroupCurrentMemberAssignment { member, value, .. } => {
                let mut m = self.member_or_new(member);
                match value {
                    Some(value) => m.apply_current(value),
                    // Kafka's replay of this tombstone leaves the member at the leave epoch
                    // with nothing assigned; its metadata tombstone follows.
                    None => {
                        m.member_epoch = LEAVE_GROUP_MEMBER_EPOCH;
                        m.previous_member_epoch = LEAVE_GROUP_MEMBER_EPOCH;
                        m.state = MemberState::Stable;
                        m.assigned.clear();
                        m.pending_revocation.clear();
                    }
                }
                if strict {
                    self.update_member(m);
                } else {
                    return self.update_member_lenient(m);
                }
            }
            Record::OffsetCommit { .. } | Record::GroupMetadata { .. } => {
                return Err("not a consumer group record".to_owned());
            }
        }
        Ok(())
    }

    fn member_or_new(&self, member_id: &str) -> ConsumerMember {
        self.members
            .get(member_id)
            .cloned()
            .unwrap_or_else(|| ConsumerMember::new(member_id))
    }

    /// `update_member` for loaded records: a partition another member already owns is
    /// dropped from this one instead of asserting.
    fn update_member_lenient(&mut self, mut member: ConsumerMember) -> Result<(), String> {
        self.release_partitions(&member.member_id);
        let taken: Vec<(Uuid, i32)> = member
            .owned()
            .filter(|key| self.partition_epochs.contains_key(key))
            .collect();
        for (topic, partition) in &taken {
            for set in [&mut member.assigned, &mut member.pending_revocation] {
                if let Some(ps) = set.get_mut(topic) {
                    ps.remove(partition);
                    if ps.is_empty() {
                        set.remove(topic);
                    }
                }
            }
        }
        let member_id = member.member_id.clone();
        self.update_member(member);
        if taken.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "member {member_id} claimed partitions owned by another: {taken:?}"
            ))
        }
    }

    /// Every record that rebuilds this group from nothing, in an order loading accepts: after
    /// a rolled-back write the coordinator rewrites its group with these so the log's latest
    /// values are memory again.
    pub fn snapshot_records(&self, group: &str) -> Vec<Record> {
        let g = group.to_owned();
        let mut records = vec![
            Record::ConsumerGroupMetadata {
                group: g.clone(),
                value: Some(self.group_epoch),
            },
            Record::ConsumerGroupPartitionMetadata {
                group: g.clone(),
                value: Some(self.subscription_value()),
            },
        ];
        for member in self.members.values() {
            records.push(Record::ConsumerGroupMemberMetadata {
                group: g.clone(),
                member: member.member_id.clone(),
                value: Some(member.metadata_value()),
            });
        }
        for (member, assignment) in &self.target {
            records.push(Record::ConsumerGroupTargetAssignmentMember {
                group: g.clone(),
                member: member.clone(),
                value: Some(assignment.clone()),
            });
        }
        records.push(Record::ConsumerGroupTargetAssignmentMetadata {
            group: g.clone(),
            value: Some(self.assignment_epoch),
        });
        for member in self.members.values() {
            records.push(Record::ConsumerGroupCurrentMemberAssignment {
                group: g.clone(),
                member: member.member_id.clone(),
                value: Some(member.current_value()),
            });
        }
        records
    }
}

/// The three tombstones that remove a member, in Kafka's order (current assignment, target
/// assignment, subscription): replaying them in this order never sees a member without its
/// subscription.
pub fn member_tombstones(group: &str, member: &str) -> [Record; 3] {
    let (group, member) = (group.to_owned(), member.to_owned());
    [
        Record::ConsumerGroupCurrentMemberAssignment {
            group: group.clone(),
            member: member.clone(),
            value: None,
        },
        Record::ConsumerGroupTargetAssignmentMember {
            group: group.clone(),
            member: member.clone(),
            value: None,
        },
        Record::ConsumerGroupMemberMetadata {
            group,
            member,
            value: None,
        },
    ]
}

/// The tombstones that delete an empty consumer group, in Kafka's order.
pub fn group_tombstones(group: &str) -> [Record; 3] {
    let group = group.to_owned();
    [
        Record::ConsumerGroupTargetAssignmentMetadata {
            group: group.clone(),
            value: None,
        },
        Record::ConsumerGroupPartitionMetadata {
            group: group.clone(),
            value: None,
        },
        Record::ConsumerGroupMetadata { group, value: None },
    ]
}
