//! Loading a partition of `__consumer_offsets`: replaying its records in log order.
//!
//! The latest value per key wins and a tombstone deletes, so any prefix of the log, compacted
//! or not, loads to the state the coordinator had when it wrote that prefix (the property tests
//! check this against the live state). Offsets apply to their group, creating a simple group if
//! none exists yet (Kafka does the same). A classic group is rebuilt from its latest
//! GroupMetadataValue: Stable with its members, or Empty. A KIP-848 group is rebuilt by the
//! same `ConsumerGroup::apply` the live path uses, leniently: a record that would give a
//! partition a second owner loses that partition and is reported. Records that do not decode,
//! belong to another partition, or would pass a limit are skipped and reported; loading never
//! panics on its input.
//!
//! Once loaded, members' sessions start from now (Kafka reschedules them on load), members
//! that were revoking get their rebalance timeout, and KIP-848 groups recompute their
//! subscription metadata on the next heartbeat.

use super::classic::ClassicGroup;
use super::consumer::{ConsumerGroup, MemberState};
use super::deadlines::{DeadlineKey, DeadlineKind};
use super::records::{OffsetsRecord, Record};
use super::{offsets_partition_for, CommittedOffset, GroupCoordinator, GroupEvent, GroupKind};
use crate::constants::*;

impl GroupCoordinator {
    pub(super) fn on_loaded(
        &mut self,
        partition: i32,
        leader_epoch: i32,
        records: Vec<OffsetsRecord>,
        complete: bool,
    ) {
        let loading = self
            .rt
            .partitions
            .get(&partition)
            .is_some_and(|p| !p.loaded && p.leader_epoch == leader_epoch);
        if !loading {
            return; // A load for an earlier leadership, or a repeat.
        }
        for record in &records {
            let outcome = match Record::decode(record) {
                Ok(record) => self.replay(partition, record),
                Err(error) => Err(format!("{error:?}")),
            };
            if let Err(reason) = outcome {
                self.rt
                    .partitions
                    .get_mut(&partition)
                    .expect("loading")
                    .skipped += 1;
                self.rt
                    .event(GroupEvent::RecordSkipped { partition, reason });
            }
        }
        if complete {
            self.finish_load(partition);
        }
    }

    /// Applies one loaded record.
    fn replay(&mut self, partition: i32, record: Record) -> Result<(), String> {
        let group_id = record.group().to_owned();
        let home = offsets_partition_for(&group_id, self.config.offsets_topic_num_partitions);
        if home != partition || group_id.is_empty() {
            return Err(format!("group {group_id:?} belongs to partition {home}"));
        }
        match record {
            Record::OffsetCommit {
                topic,
                partition: p,
                value,
                ..
            } => self.replay_offset(&group_id, partition, (topic, p), value),
            Record::GroupMetadata { value, .. } => match value {
                Some(value) => {
                    let group = ClassicGroup::from_record(&value);
                    self.put_kind(&group_id, partition, GroupKind::Classic(group))
                }
                None => {
                    self.drop_kind(&group_id);
                    Ok(())
                }
            },
            Record::ConsumerGroupMetadata { value: None, .. } => {
                if self
                    .groups
                    .get(&group_id)
                    .is_some_and(|e| e.consumer().is_some())
                {
                    self.drop_kind(&group_id);
                }
                Ok(())
            }
            other => self.replay_consumer(&group_id, partition, &other),
        }
    }

    fn replay_offset(
        &mut self,
        group_id: &str,
        partition: i32,
        key: (String, i32),
        value: Option<super::records::OffsetCommitValue>,
    ) -> Result<(), String> {
        let Some(value) = value else {
            if let Some(entry) = self.groups.get_mut(group_id) {
                entry.offsets.remove(&key);
            }
            return Ok(());
        };
        if !self.groups.contains_key(group_id) {
            let group = ClassicGroup::new(self.rt.now_ms());
            if !self.create_group(group_id, partition, GroupKind::Classic(group)) {
                return Err(format!("more than {GROUPS_MAX} groups"));
            }
        }
        let entry = self.groups.get_mut(group_id).expect("made above");
        if !entry.offsets.contains_key(&key) && entry.offsets.len() >= GROUP_OFFSETS_MAX {
            return Err(format!(
                "group {group_id} has more than {GROUP_OFFSETS_MAX} offsets"
            ));
        }
        entry.offsets.insert(
            key,
            CommittedOffset {
                value,
                append_id: 0,
            },
        );
        Ok(())
    }

    /// Sets a group's protocol state, creating the group if needed.
    fn put_kind(&mut self, group_id: &str, partition: i32, kind: GroupKind) -> Result<(), String> {
        if let Some(entry) = self.groups.get_mut(group_id) {
            entry.kind = kind;
            return Ok(());
        }
        if self.create_group(group_id, partition, kind) {
            Ok(())
        } else {
            Err(format!("more than {GROUPS_MAX} groups"))
        }
    }

    /// A group's metadata was deleted: the group goes, unless offsets keep it as a simple group
    /// (Kafka keeps offsets apart from group metadata).
    fn drop_kind(&mut self, group_id: &str) {
        let now_ms = self.rt.now_ms();
        let Some(entry) = self.groups.get_mut(group_id) else {
            return;
        };
        if entry.offsets.is_empty() {
            self.groups.remove(group_id);
        } else {
            entry.kind = GroupKind::Classic(ClassicGroup::new(now_ms));
        }
    }

    fn replay_consumer(
        &mut self,
        group_id: &str,
        partition: i32,
        record: &Record,
    ) -> Result<(), String> {
        let is_tombstone = match record {
            Record::ConsumerGroupMemberMetadata { value, .. } => value.is_none(),
            Record::ConsumerGroupTargetAssignmentMember { value, .. } => value.is_none(),
            Record::ConsumerGroupCurrentMemberAssignment { value, .. } => value.is_none(),
            Record::ConsumerGroupPartitionMetadata { value, .. } => value.is_none(),
            Record::ConsumerGroupTargetAssignmentMetadata { value, .. } => value.is_none(),
            _ => false,
        };
        let replaceable = match self.groups.get(group_id).map(|e| &e.kind) {
            None => !is_tombstone,
            Some(GroupKind::Consumer(_)) => false,
            Some(GroupKind::Classic(g)) => g.members.is_empty() && !is_tombstone,
        };
        if replaceable {
            self.put_kind(
                group_id,
                partition,
                GroupKind::Consumer(ConsumerGroup::default()),
            )?;
        }
        match self.groups.get_mut(group_id).map(|e| &mut e.kind) {
            Some(GroupKind::Consumer(group)) => group.apply(record, false),
            // A tombstone for a group already gone (compaction kept it, or it was deleted).
            None if is_tombstone => Ok(()),
            _ => Err(format!(
                "consumer group record for classic group {group_id}"
            )),
        }
    }

    /// The partition is loaded: start members' clocks and serve.
    fn finish_load(&mut self, partition: i32) {
        let session = self.config.consumer_session_timeout;
        let now = self.rt.now;
        let mut deadlines = Vec::new();
        let mut groups = 0u32;
        for (id, entry) in self
            .groups
            .iter_mut()
            .filter(|(_, e)| e.partition == partition)
        {
            groups += 1;
            match &mut entry.kind {
                GroupKind::Classic(g) => {
                    for m in g.members.values() {
                        let key =
                            DeadlineKey::member(id, DeadlineKind::ClassicHeartbeat, &m.member_id);
                        let at = now
                            + crate::time::Duration::from_millis(m.session_timeout_ms.max(0) as u64);
                        deadlines.push((key, at, 0));
                    }
                }
                GroupKind::Consumer(g) => {
                    g.metadata_refresh = true;
                    for m in g.members.values() {
                        let key =
                            DeadlineKey::member(id, DeadlineKind::ConsumerSession, &m.member_id);
                        deadlines.push((key, now + session, 0));
                        if m.state == MemberState::UnrevokedPartitions {
                            let key = DeadlineKey::member(
                                id,
                                DeadlineKind::ConsumerRebalance,
                                &m.member_id,
                            );
                            let at = now
                                + crate::time::Duration::from_millis(
                                    m.rebalance_timeout_ms.max(0) as u64
                                );
                            deadlines.push((key, at, m.member_epoch));
                        }
                    }
                }
            }
        }
        for (key, at, payload) in deadlines {
            self.rt.set_deadline(key, at, payload);
        }
        let state = self.rt.partitions.get_mut(&partition).expect("loading");
        state.loaded = true;
        let skipped = state.skipped;
        self.rt.event(GroupEvent::PartitionLoaded {
            partition,
            groups,
            skipped,
        });
    }
}
