//! A classic group's state: members, generation, protocol, and the transitions Kafka allows
//! (`ClassicGroup` / the old `GroupMetadata`).
//!
//! This file holds data and pure rules only: who leads, which protocol wins the vote, whether
//! a member may join, what the next generation looks like. The handlers in `join.rs` decide
//! when to call them and answer the parked requests.

use super::consumer_protocol::{subscribed_topics, CONSUMER_PROTOCOL_TYPE};
use super::errors::GroupError;
use super::records::{GroupMetadataValue, MemberMetadata};
use super::Token;
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet};

/// Kafka's classic group states, as ListGroups and DescribeGroups name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClassicState {
    /// No members (offsets may remain).
    Empty,
    /// Waiting for members to (re)join.
    PreparingRebalance,
    /// Waiting for the leader's assignment.
    CompletingRebalance,
    /// Every member has its assignment.
    Stable,
    /// Removed (deleted, expired or being converted).
    Dead,
}

impl ClassicState {
    /// The name Kafka reports.
    pub const fn name(self) -> &'static str {
        match self {
            ClassicState::Empty => "Empty",
            ClassicState::PreparingRebalance => "PreparingRebalance",
            ClassicState::CompletingRebalance => "CompletingRebalance",
            ClassicState::Stable => "Stable",
            ClassicState::Dead => "Dead",
        }
    }

    /// The states Kafka allows a group to enter this one from.
    fn valid_previous(self) -> &'static [ClassicState] {
        use ClassicState::*;
        match self {
            Empty => &[PreparingRebalance],
            PreparingRebalance => &[Stable, CompletingRebalance, Empty],
            CompletingRebalance => &[PreparingRebalance],
            Stable => &[CompletingRebalance],
            Dead => &[Stable, PreparingRebalance, CompletingRebalance, Empty, Dead],
        }
    }
}

/// A JoinGroup or SyncGroup parked until the rebalance answers it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parked {
    /// The request.
    pub token: Token,
    /// Its version, to shape the answer.
    pub api_version: i16,
}

/// One protocol a member supports: its name and the member's metadata for it.
pub type Protocol = (String, Bytes);

/// A classic group member.
#[derive(Clone, Debug)]
pub struct ClassicMember {
    /// `member_id`.
    pub member_id: String,
    /// `group.instance.id` of a static member (KIP-345).
    pub group_instance_id: Option<String>,
    /// Client id of the member's connection.
    pub client_id: String,
    /// Client host of the member's connection.
    pub client_host: String,
    /// `rebalance_timeout_ms`.
    pub rebalance_timeout_ms: i32,
    /// `session_timeout_ms`.
    pub session_timeout_ms: i32,
    /// `protocol_type`.
    pub protocol_type: String,
    /// Supported protocols, in the member's order of preference.
    pub protocols: Vec<Protocol>,
    /// The assignment of the current generation.
    pub assignment: Bytes,
    /// A JoinGroup waiting for the rebalance to complete.
    pub awaiting_join: Option<Parked>,
    /// A SyncGroup waiting for the leader's assignment.
    pub awaiting_sync: Option<Parked>,
    /// Joined in the running rebalance (expires by the new-member timeout, not the session).
    pub is_new: bool,
}

impl ClassicMember {
    /// The member's metadata for `protocol`.
    pub fn metadata(&self, protocol: &str) -> Option<&Bytes> {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, metadata)| metadata)
    }

    /// Same protocols, same metadata, same order (Kafka's `MemberMetadata.matches`).
    pub fn matches(&self, protocols: &[Protocol]) -> bool {
        self.protocols == protocols
    }

    /// The member's vote: its most preferred protocol among `candidates`.
    fn vote<'a>(&'a self, candidates: &BTreeSet<&str>) -> Option<&'a str> {
        self.protocols
            .iter()
            .map(|(name, _)| name.as_str())
            .find(|name| candidates.contains(name))
    }

    /// Bytes this member makes the group store.
    pub fn metadata_bytes(&self) -> usize {
        protocols_bytes(&self.protocols) + self.assignment.len()
    }
}

/// Bytes of a protocol list (names and metadata).
pub fn protocols_bytes(protocols: &[Protocol]) -> usize {
    protocols.iter().map(|(n, m)| n.len() + m.len()).sum()
}

/// A classic group.
#[derive(Clone, Debug)]
pub struct ClassicGroup {
    /// Current state.
    pub state: ClassicState,
    /// The state before it (an initial rebalance starts from Empty).
    pub previous_state: ClassicState,
    /// When the group entered its state, in milliseconds since the epoch of the driver's
    /// clock; offsets of an Empty group expire relative to it (KIP-211).
    pub state_timestamp_ms: Option<i64>,
    /// `protocol_type`, set by the first member.
    pub protocol_type: Option<String>,
    /// The protocol selected for the current generation.
    pub protocol_name: Option<String>,
    /// `generation_id`.
    pub generation_id: i32,
    /// The leader's member id.
    pub leader_id: Option<String>,
    /// Members by id.
    pub members: BTreeMap<String, ClassicMember>,
    /// `group.instance.id` → member id.
    pub static_members: BTreeMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, not yet joined (KIP-394).
    pub pending_members: BTreeSet<String>,
    /// Members of the new generation that have not sent SyncGroup yet.
    pub pending_sync: BTreeSet<String>,
    /// Members with a parked JoinGroup.
    pub awaiting_join_count: usize,
    /// A member joined during the initial rebalance delay, which extends it.
    pub new_member_added: bool,
    /// How many members support each protocol.
    pub supported_protocols: BTreeMap<String, usize>,
    /// Topics the members subscribe to (consumer protocol only), if known.
    pub subscribed_topics: Option<BTreeSet<String>>,
    /// The running initial-rebalance delay and the time left after it (`InitialDelayedJoin`).
    pub initial_delay: Option<(u64, u64)>,
}

impl ClassicGroup {
    /// A new empty group.
    pub fn new(now_ms: i64) -> ClassicGroup {
        ClassicGroup {
            state: ClassicState::Empty,
            previous_state: ClassicState::Empty,
            state_timestamp_ms: Some(now_ms),
            protocol_type: None,
            protocol_name: None,
            generation_id: 0,
            leader_id: None,
            members: BTreeMap::new(),
            static_members: BTreeMap::new(),
            pending_members: BTreeSet::new(),
            pending_sync: BTreeSet::new(),
            awaiting_join_count: 0,
            new_member_added: false,
            supported_protocols: BTreeMap::new(),
            subscribed_topics: Some(BTreeSet::new()),
            initial_delay: None,
        }
    }

    /// Moves to `state`; an illegal transition is a coordinator bug.
    pub fn transition(&mut self, state: ClassicState, now_ms: i64) {
        assert!(
            state.valid_previous().contains(&self.state),
            "classic group cannot go from {:?} to {state:?}",
            self.state
        );
        self.previous_state = self.state;
        self.state = state;
        self.state_timestamp_ms = Some(now_ms);
    }

    /// Whether a rebalance may start now.
    pub fn can_rebalance(&self) -> bool {
        matches!(
            self.state,
            ClassicState::Stable | ClassicState::CompletingRebalance | ClassicState::Empty
        )
    }

    /// Bytes of metadata and assignments the group holds.
    pub fn metadata_bytes(&self) -> usize {
        self.members
            .values()
            .map(ClassicMember::metadata_bytes)
            .sum()
    }

    /// The longest rebalance timeout of any member.
    pub fn rebalance_timeout_ms(&self) -> i32 {
        let max = self.members.values().map(|m| m.rebalance_timeout_ms).max();
        max.unwrap_or(0).max(0)
    }

    /// Whether `member_id` is the leader.
    pub fn is_leader(&self, member_id: &str) -> bool {
        self.leader_id.as_deref() == Some(member_id)
    }

    /// Adds a member; the first one sets the protocol type and leads.
    pub fn add(&mut self, mut member: ClassicMember, join: Option<Parked>) {
        assert!(!self.members.contains_key(&member.member_id));
        if self.members.is_empty() {
            self.protocol_type = Some(member.protocol_type.clone());
        }
        self.count_protocols(&member.protocols, true);
        member.awaiting_join = join;
        if join.is_some() {
            self.awaiting_join_count += 1;
        }
        if let Some(instance) = &member.group_instance_id {
            self.static_members
                .insert(instance.clone(), member.member_id.clone());
        }
        self.pending_members.remove(&member.member_id);
        if self.leader_id.is_none() {
            self.leader_id = Some(member.member_id.clone());
        }
        self.members.insert(member.member_id.clone(), member);
        debug_assert!(self.awaiting_join_count <= self.members.len());
    }

    /// Removes a member (or a pending member id) and returns it, with any parked requests it
    /// still has for the caller to answer. A leader that leaves is replaced by the first member.
    pub fn remove(&mut self, member_id: &str) -> Option<ClassicMember> {
        let removed = self.members.remove(member_id);
        if let Some(member) = &removed {
            self.count_protocols(&member.protocols, false);
            if member.awaiting_join.is_some() {
                self.awaiting_join_count -= 1;
            }
            if let Some(instance) = &member.group_instance_id {
                self.static_members.remove(instance);
            }
        }
        if self.is_leader(member_id) {
            self.leader_id = self.members.keys().next().cloned();
        }
        self.pending_members.remove(member_id);
        self.pending_sync.remove(member_id);
        debug_assert!(self.awaiting_join_count <= self.members.len());
        removed
    }

    /// Updates a member's protocols and timeouts and parks its JoinGroup; returns a JoinGroup
    /// it had parked before, which this one supersedes.
    pub fn update_member(
        &mut self,
        member_id: &str,
        protocols: Vec<Protocol>,
        rebalance_timeout_ms: i32,
        session_timeout_ms: i32,
        join: Option<Parked>,
    ) -> Option<Parked> {
        let old = self.members.get(member_id).map(|m| m.protocols.clone())?;
        self.count_protocols(&old, false);
        self.count_protocols(&protocols, true);
        let member = self.members.get_mut(member_id).expect("checked above");
        member.protocols = protocols;
        member.rebalance_timeout_ms = rebalance_timeout_ms;
        member.session_timeout_ms = session_timeout_ms;
        let superseded = member.awaiting_join.take();
        member.awaiting_join = join;
        match (superseded.is_some(), join.is_some()) {
            (false, true) => self.awaiting_join_count += 1,
            (true, false) => self.awaiting_join_count -= 1,
            _ => {}
        }
        superseded
    }

    /// Takes a member's parked JoinGroup (to answer it).
    pub fn take_join(&mut self, member_id: &str) -> Option<Parked> {
        let parked = self.members.get_mut(member_id)?.awaiting_join.take();
        if parked.is_some() {
            self.awaiting_join_count -= 1;
        }
        parked
    }

    /// Replaces the static member `old_id` by a copy under `new_id` (KIP-345); returns the old
    /// member, whose parked requests the caller answers FENCED_INSTANCE_ID.
    pub fn replace_static_member(
        &mut self,
        instance_id: &str,
        old_id: &str,
        new_id: &str,
    ) -> Option<ClassicMember> {
        let mut old = self.members.remove(old_id)?;
        if old.awaiting_join.is_some() {
            self.awaiting_join_count -= 1;
        }
        let mut member = old.clone();
        member.member_id = new_id.to_owned();
        member.awaiting_join = None;
        member.awaiting_sync = None;
        member.is_new = false;
        self.members.insert(new_id.to_owned(), member);
        if self.is_leader(old_id) {
            self.leader_id = Some(new_id.to_owned());
        }
        self.static_members
            .insert(instance_id.to_owned(), new_id.to_owned());
        old.member_id = old_id.to_owned();
        Some(old)
    }

    fn count_protocols(&mut self, protocols: &[Protocol], add: bool) {
        for (name, _) in protocols {
            let count = self.supported_protocols.entry(name.clone()).or_insert(0);
            if add {
                *count += 1;
            } else {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    self.supported_protocols.remove(name);
                }
            }
        }
    }

    /// Whether a member with this protocol type and protocol names may join: the first member
    /// needs a type and at least one protocol, later ones the group's type and a protocol
    /// every member supports.
    pub fn supports_protocols(&self, protocol_type: &str, names: &[&str]) -> bool {
        if self.members.is_empty() {
            return !protocol_type.is_empty() && !names.is_empty();
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && names.iter().any(|name| {
                self.supported_protocols.get(*name).copied().unwrap_or(0) == self.members.len()
            })
    }

    /// The protocol of the next generation: among the protocols every member supports, each
    /// member votes for its most preferred; most votes wins (ties go to the smallest name, where
    /// Kafka's choice depends on hash order).
    pub fn select_protocol(&self) -> Option<String> {
        let all = self.members.len();
        let candidates: BTreeSet<&str> = self
            .supported_protocols
            .iter()
            .filter(|(_, count)| **count == all)
            .map(|(name, _)| name.as_str())
            .collect();
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for member in self.members.values() {
            if let Some(vote) = member.vote(&candidates) {
                *votes.entry(vote).or_default() += 1;
            }
        }
        let best = votes.values().copied().max()?;
        votes
            .into_iter()
            .find(|(_, count)| *count == best)
            .map(|(name, _)| name.to_owned())
    }

    /// Every member has a parked JoinGroup and no member id is pending.
    pub fn has_all_members_joined(&self) -> bool {
        self.members.len() == self.awaiting_join_count && self.pending_members.is_empty()
    }

    /// Keeps the leader if it rejoined, else elects the first member that did; false if none.
    pub fn maybe_elect_new_joined_leader(&mut self) -> bool {
        let Some(leader) = &self.leader_id else {
            return false;
        };
        if self
            .members
            .get(leader)
            .is_some_and(|m| m.awaiting_join.is_some())
        {
            return true;
        }
        let joined = self
            .members
            .values()
            .find(|m| m.awaiting_join.is_some())
            .map(|m| m.member_id.clone());
        match joined {
            Some(id) => {
                self.leader_id = Some(id);
                true
            }
            None => false,
        }
    }

    /// Starts the next generation: CompletingRebalance with a selected protocol, or Empty.
    pub fn init_next_generation(&mut self, now_ms: i64) {
        assert_eq!(self.state, ClassicState::PreparingRebalance);
        self.generation_id = self.generation_id.saturating_add(1);
        if self.members.is_empty() {
            self.protocol_name = None;
            self.transition(ClassicState::Empty, now_ms);
        } else {
            self.protocol_name = self.select_protocol();
            self.transition(ClassicState::CompletingRebalance, now_ms);
        }
        self.subscribed_topics = self.compute_subscribed_topics();
        self.pending_sync.clear();
        self.initial_delay = None;
    }

    /// The union of the members' consumer-protocol subscriptions; `None` when unknown (another
    /// protocol type, or a subscription that does not decode).
    pub fn compute_subscribed_topics(&self) -> Option<BTreeSet<String>> {
        if self.members.is_empty() {
            return Some(BTreeSet::new());
        }
        if self.protocol_type.as_deref() != Some(CONSUMER_PROTOCOL_TYPE) {
            return None;
        }
        let protocol = self.protocol_name.as_deref()?;
        let mut topics = BTreeSet::new();
        for member in self.members.values() {
            topics.extend(subscribed_topics(member.metadata(protocol)?)?);
        }
        Some(topics)
    }

    /// Whether a non-empty group uses the `consumer` protocol type.
    pub fn uses_consumer_protocol(&self) -> bool {
        self.protocol_type.as_deref() == Some(CONSUMER_PROTOCOL_TYPE) && !self.members.is_empty()
    }

    /// Whether the group's members subscribe to `topic`.
    pub fn is_subscribed_to(&self, topic: &str) -> bool {
        self.subscribed_topics
            .as_ref()
            .is_some_and(|topics| topics.contains(topic))
    }

    /// Kafka's `validateMember`: the static member's id must be the one registered for its
    /// instance id, and the member must exist.
    pub fn validate_member(
        &self,
        member_id: &str,
        group_instance_id: Option<&str>,
    ) -> Result<(), GroupError> {
        if let Some(instance) = group_instance_id {
            match self.static_members.get(instance) {
                None => return Err(GroupError::UnknownMemberId),
                Some(existing) if existing != member_id => {
                    return Err(GroupError::FencedInstanceId)
                }
                Some(_) => {}
            }
        }
        if !self.members.contains_key(member_id) {
            return Err(GroupError::UnknownMemberId);
        }
        Ok(())
    }

    /// The group as its GroupMetadataValue, with `assignment` for every member (Kafka writes
    /// only the selected protocol's metadata as the subscription).
    pub fn to_record(
        &self,
        assignment: &BTreeMap<String, Bytes>,
        now_ms: i64,
    ) -> GroupMetadataValue {
        let protocol = self.protocol_name.clone();
        let members = self
            .members
            .values()
            .map(|m| MemberMetadata {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                rebalance_timeout_ms: m.rebalance_timeout_ms,
                session_timeout_ms: m.session_timeout_ms,
                subscription: protocol
                    .as_deref()
                    .and_then(|p| m.metadata(p).cloned())
                    .unwrap_or_default(),
                assignment: assignment.get(&m.member_id).cloned().unwrap_or_default(),
            })
            .collect();
        GroupMetadataValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation_id,
            protocol,
            leader: self.leader_id.clone(),
            current_state_timestamp_ms: self.state_timestamp_ms.unwrap_or(now_ms),
            members,
        }
    }

    /// The members' current assignments.
    pub fn assignments(&self) -> BTreeMap<String, Bytes> {
        self.members
            .values()
            .map(|m| (m.member_id.clone(), m.assignment.clone()))
            .collect()
    }

    /// A group rebuilt from its record (Kafka's `ClassicGroup.fromRecord`): Stable with its
    /// members, or Empty.
    pub fn from_record(value: &GroupMetadataValue) -> ClassicGroup {
        let mut group = ClassicGroup::new(0);
        group.state_timestamp_ms =
            (value.current_state_timestamp_ms >= 0).then_some(value.current_state_timestamp_ms);
        group.protocol_type =
            (!value.protocol_type.is_empty()).then(|| value.protocol_type.clone());
        group.protocol_name = value.protocol.clone();
        group.generation_id = value.generation;
        for m in &value.members {
            let protocols = match &value.protocol {
                Some(name) => vec![(name.clone(), m.subscription.clone())],
                None => Vec::new(),
            };
            let member = ClassicMember {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                rebalance_timeout_ms: m.rebalance_timeout_ms,
                session_timeout_ms: m.session_timeout_ms,
                protocol_type: value.protocol_type.clone(),
                protocols,
                assignment: m.assignment.clone(),
                awaiting_join: None,
                awaiting_sync: None,
                is_new: false,
            };
            group.add(member, None);
        }
        // `add` made the first member leader; the record names the real one.
        group.leader_id = value
            .leader
            .clone()
            .filter(|l| group.members.contains_key(l));
        if group.leader_id.is_none() {
            group.leader_id = group.members.keys().next().cloned();
        }
        if !group.members.is_empty() {
            group.state = ClassicState::Stable;
            group.previous_state = ClassicState::CompletingRebalance;
        }
        group.subscribed_topics = group.compute_subscribed_topics();
        group
    }
}
