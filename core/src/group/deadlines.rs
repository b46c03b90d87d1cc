//! Per-group and per-member deadlines: rebalance and sync timeouts, sessions.
//!
//! The coordinator's [`TimerTable`](crate::timer::TimerTable) has one slot for "the earliest
//! group deadline"; this queue holds the deadlines themselves, at most one per
//! (group, kind, member), so rescheduling a session replaces it and the queue is bounded by the
//! groups and members the coordinator holds. A fired deadline carries a payload (the
//! generation or member epoch it was set for) that its handler checks, as Kafka's timer tasks
//! do, so a deadline that outlived its reason does nothing.

use crate::time::Instant;
use std::collections::{BTreeMap, BTreeSet};

/// What a deadline is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum DeadlineKind {
    /// Classic: the join phase ends (initial delay or rebalance timeout).
    ClassicJoin,
    /// Classic: members of the new generation must have sent SyncGroup.
    ClassicSync,
    /// Classic: a member's session (or a new/pending member's join) timeout.
    ClassicHeartbeat,
    /// KIP-848: a member's session timeout.
    ConsumerSession,
    /// KIP-848: a member must have revoked its partitions (payload: its member epoch).
    ConsumerRebalance,
}

/// Identifies a deadline; the member is empty for group-wide ones.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct DeadlineKey {
    /// Group id.
    pub group: String,
    /// Kind.
    pub kind: DeadlineKind,
    /// Member id, or "".
    pub member: String,
}

impl DeadlineKey {
    /// A group-wide deadline.
    pub fn group(group: &str, kind: DeadlineKind) -> DeadlineKey {
        DeadlineKey::member(group, kind, "")
    }

    /// A member's deadline.
    pub fn member(group: &str, kind: DeadlineKind, member: &str) -> DeadlineKey {
        DeadlineKey {
            group: group.to_owned(),
            kind,
            member: member.to_owned(),
        }
    }
}

/// The queue.
#[derive(Debug, Default)]
pub struct Deadlines {
    by_key: BTreeMap<DeadlineKey, (Instant, i32)>,
    queue: BTreeSet<(Instant, DeadlineKey)>,
}

impl Deadlines {
    /// Sets (or moves) a deadline.
    pub fn set(&mut self, key: DeadlineKey, at: Instant, payload: i32) {
        if let Some((old, _)) = self.by_key.insert(key.clone(), (at, payload)) {
            self.queue.remove(&(old, key.clone()));
        }
        self.queue.insert((at, key));
        debug_assert_eq!(self.queue.len(), self.by_key.len());
    }

    /// Whether a deadline is set.
    pub fn contains(&self, key: &DeadlineKey) -> bool {
        self.by_key.contains_key(key)
    }

    /// Cancels a deadline.
    pub fn cancel(&mut self, key: &DeadlineKey) {
        if let Some((at, _)) = self.by_key.remove(key) {
            self.queue.remove(&(at, key.clone()));
        }
    }

    /// Cancels every deadline of a member.
    pub fn cancel_member(&mut self, group: &str, member: &str) {
        let keys: Vec<DeadlineKey> = self
            .group_keys(group)
            .filter(|k| k.member == member)
            .collect();
        for key in keys {
            self.cancel(&key);
        }
    }

    /// Cancels every deadline of a group.
    pub fn cancel_group(&mut self, group: &str) {
        let keys: Vec<DeadlineKey> = self.group_keys(group).collect();
        for key in keys {
            self.cancel(&key);
        }
    }

    fn group_keys<'a>(&'a self, group: &'a str) -> impl Iterator<Item = DeadlineKey> + 'a {
        let start = DeadlineKey::group(group, DeadlineKind::ClassicJoin);
        self.by_key
            .range(start..)
            .take_while(move |(k, _)| k.group == group)
            .map(|(k, _)| k.clone())
    }

    /// Removes and returns the first deadline at or before `now`.
    pub fn pop_expired(&mut self, now: Instant) -> Option<(DeadlineKey, i32)> {
        let (at, key) = self.queue.first()?.clone();
        if at > now {
            return None;
        }
        self.queue.remove(&(at, key.clone()));
        let (_, payload) = self.by_key.remove(&key).expect("queue and map agree");
        Some((key, payload))
    }

    /// The earliest deadline.
    pub fn next(&self) -> Option<Instant> {
        self.queue.first().map(|(at, _)| *at)
    }

    /// How many deadlines are set.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Whether none is set.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Rescheduling must replace, not add: sessions are rescheduled on every heartbeat and the
    // queue must stay bounded by the members.
    #[test]
    fn reschedule_replaces_and_cancel_group_clears() {
        let mut d = Deadlines::default();
        let key = DeadlineKey::member("g", DeadlineKind::ClassicHeartbeat, "m");
        d.set(key.clone(), Instant(10), 0);
        d.set(key.clone(), Instant(20), 1);
        d.set(
            DeadlineKey::group("g", DeadlineKind::ClassicJoin),
            Instant(15),
            0,
        );
        d.set(
            DeadlineKey::group("h", DeadlineKind::ClassicJoin),
            Instant(5),
            0,
        );
        assert_eq!(d.len(), 3);
        assert_eq!(
            d.pop_expired(Instant(12)).map(|(k, _)| k.group),
            Some("h".into())
        );
        assert_eq!(d.pop_expired(Instant(12)), None);
        d.cancel_group("g");
        assert!(d.is_empty());
        assert_eq!(d.next(), None);
    }
}
