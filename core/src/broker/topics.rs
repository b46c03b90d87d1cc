//! The broker's copy of the topics in the controller's image, and the removal of a deleted
//! topic's files.
//!
//! Topics are created and deleted only by the controller (CreateTopics and DeleteTopics are
//! forwarded to it, see `cluster.rs`); the broker mirrors its image. A topic of the image is
//! recorded in the broker's registry before its partition logs open, so a restart serves it
//! before the next image arrives.
//!
//! A topic the image no longer has is taken out of service at once (in-flight requests on it
//! fail with UNKNOWN_TOPIC_OR_PARTITION) and a tombstone is recorded in the registry. Only once
//! that is durable are the partition files deleted; when all are gone the tombstone goes too.
//! A crash in between resumes the deletion on restart, so a later topic of the same name never
//! inherits old data.
//!
//! The io contract has no "remove directory" operation, so the emptied `<topic>-<n>`
//! directories remain; recovery never looks at directories the registry does not name.

use super::config::TopicConfig;
use super::errors;
use super::registry::TombstoneRecord;
use super::{Broker, DiskRoute, Token, Tombstone, Topic};
use crate::io::{DiskError, DiskOp, DiskOutcome};
use crate::time::Instant;
use std::collections::BTreeMap;
use uuid::Uuid;

impl Broker {
    /// Records a topic of the image, with the id the controller gave it.
    pub(super) fn insert_topic_with_id(
        &mut self,
        name: &str,
        partitions: i32,
        overrides: BTreeMap<String, String>,
        config: TopicConfig,
        id: Uuid,
    ) {
        let topic = Topic {
            id,
            overrides,
            config,
            partition_count: partitions,
            partitions: Vec::new(),
            created_change: self.store.change + 1,
        };
        assert!(self.topics.insert(name.to_owned(), topic).is_none());
        let change = self.registry_changed();
        debug_assert_eq!(change, self.topics[name].created_change);
    }

    /// Takes a topic out of service and records its tombstone.
    pub(super) fn delete_topic(&mut self, now: Instant, name: &str) {
        let Some(topic) = self.topics.get(name) else {
            return;
        };
        let record = TombstoneRecord {
            name: name.to_owned(),
            id: topic.id,
            partitions: topic.partition_count,
        };
        let doomed: Vec<(i32, Vec<u64>, Vec<Token>)> = topic
            .partitions
            .iter()
            .enumerate()
            .map(|(i, p)| {
                (
                    i as i32,
                    p.ops.iter().copied().collect(),
                    p.fetch_waiters.iter().copied().collect(),
                )
            })
            .collect();
        for (partition, ops, _) in &doomed {
            for op in ops {
                self.fail_op(name, *partition, *op, errors::UNKNOWN_TOPIC_OR_PARTITION);
            }
        }
        self.topics.remove(name);
        self.log_deadlines.retain(|(_, t, _)| t != name);
        for (_, _, fetchers) in doomed {
            for token in fetchers {
                self.wake_fetch(now, token);
            }
        }
        self.tombstones.push(Tombstone {
            record,
            change: self.store.change + 1,
            removals_outstanding: None,
            failed: false,
        });
        self.registry_changed();
    }

    // ---- file removal of deleted topics ----

    pub(super) fn start_tombstone_removals(&mut self) {
        if !self.is_ready() {
            return;
        }
        let durable = self.store.durable_change;
        let ready: Vec<(String, i32)> = self
            .tombstones
            .iter_mut()
            .filter(|t| t.removals_outstanding.is_none() && t.change <= durable && !t.failed)
            .map(|t| {
                t.removals_outstanding = Some(t.record.partitions.max(0) as u32);
                (t.record.name.clone(), t.record.partitions)
            })
            .collect();
        for (name, partitions) in ready {
            for partition in 0..partitions.max(0) {
                let dir = format!("{name}-{partition}");
                let route = DiskRoute::TombstoneList {
                    topic: name.clone(),
                    partition,
                };
                self.emit_disk(DiskOp::List { dir }, route);
            }
            self.maybe_drop_tombstone(&name);
        }
    }

    pub(super) fn on_tombstone_listed(
        &mut self,
        topic: &str,
        partition: i32,
        result: Result<DiskOutcome, DiskError>,
    ) {
        let files: Vec<String> = match result {
            Ok(DiskOutcome::Listed(entries)) => entries.into_iter().map(|e| e.name).collect(),
            Err(DiskError::NotFound) => Vec::new(),
            _ => {
                self.tombstone_step(topic, 0, true);
                return;
            }
        };
        let count = files.len() as u32;
        for name in files {
            let file = format!("{topic}-{partition}/{name}");
            let route = DiskRoute::TombstoneDelete {
                topic: topic.to_owned(),
            };
            self.emit_disk(DiskOp::Delete { file }, route);
        }
        self.tombstone_step(topic, count, false);
    }

    pub(super) fn on_tombstone_deleted(
        &mut self,
        topic: &str,
        result: Result<DiskOutcome, DiskError>,
    ) {
        let failed = matches!(result, Err(e) if e != DiskError::NotFound);
        self.tombstone_step(topic, 0, failed);
    }

    /// One removal step finished, having started `added` more.
    fn tombstone_step(&mut self, topic: &str, added: u32, failed: bool) {
        if let Some(t) = self.tombstones.iter_mut().find(|t| t.record.name == topic) {
            if let Some(outstanding) = t.removals_outstanding.as_mut() {
                *outstanding = (*outstanding + added).saturating_sub(1);
            }
            t.failed |= failed;
        }
        self.maybe_drop_tombstone(topic);
    }

    fn maybe_drop_tombstone(&mut self, topic: &str) {
        let Some(index) = self.tombstones.iter().position(|t| t.record.name == topic) else {
            return;
        };
        let t = &self.tombstones[index];
        // A failed removal keeps the tombstone; the next start retries it.
        if t.removals_outstanding == Some(0) && !t.failed {
            self.tombstones.remove(index);
            self.registry_changed();
        }
    }
}
