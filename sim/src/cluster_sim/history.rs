//! The client history of a cluster run, in the jepsen/ model (DESIGN §7).
//!
//! Each partition is a key named `<topic>-<partition>`. Every record a producer sends carries a
//! value unique in the run and is one `send` operation; a produce request of several records is
//! several operations, one per *slot* process of that producer, so each process stays
//! sequential. A consumer is one process: an `assign` of its partitions, then one `poll` per
//! Fetch, holding the records it returned in offset order.
//!
//! Outcomes follow what the client can know:
//! - an acks=all send is `ok` with its offset once the broker acknowledged it, and `fail` only
//!   when every attempt was refused before the append (see `kafka::ProduceFate`);
//! - an error the broker may return after appending ends the operation as `info`; a request
//!   with no answer (a timeout, a closed connection) may still reach the broker at any later
//!   time (a stalled connection), so its operation never completes: the process crashes and
//!   starts afresh. Either way the producer moves on to a new value rather than resend this
//!   one, so a duplicate is always a broker bug;
//! - an acks=1 send is `info` even when acknowledged, because acks=1 promises nothing once the
//!   leader fails;
//! - a poll with no answer is `fail` (it observed nothing).

use super::params::TopicSpec;
use seedlog_jepsen::{History, HistoryError, KeyId, OpId, OpKind, Outcome, Record};
use std::collections::BTreeMap;

/// Identifies a partition: topic name and index.
pub type PartitionKey = (String, u32);

/// The history's process id for producer `client`'s record slot `slot`.
pub fn producer_process(client: usize, slot: u32) -> u64 {
    (1 << 40) | (client as u64) << 8 | u64::from(slot)
}

/// The history's process id for consumer `client`.
pub fn consumer_process(client: usize) -> u64 {
    (2 << 40) | client as u64
}

/// Records operations as they happen.
#[derive(Debug, Default)]
pub struct Recorder {
    history: History,
    keys: BTreeMap<PartitionKey, KeyId>,
    failed: Option<String>,
}

impl Recorder {
    /// A history with one key per partition of `topics`.
    pub fn new(topics: &[TopicSpec]) -> Recorder {
        let mut recorder = Recorder::default();
        for topic in topics {
            for partition in 0..topic.partitions {
                let name = format!("{}-{partition}", topic.name);
                let key = recorder.history.key(&name);
                if let Some(key) = recorder.note(key) {
                    recorder.keys.insert((topic.name.clone(), partition), key);
                }
            }
        }
        recorder
    }

    fn note<T>(&mut self, result: Result<T, HistoryError>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(e) => {
                self.failed
                    .get_or_insert_with(|| format!("history recording failed: {e}"));
                None
            }
        }
    }

    fn key(&self, partition: &PartitionKey) -> KeyId {
        *self
            .keys
            .get(partition)
            .expect("the workload uses only the topics it created")
    }

    /// A send of `value` to `partition` began.
    pub fn invoke_send(
        &mut self,
        process: u64,
        now: u64,
        partition: &PartitionKey,
        value: i64,
    ) -> Option<OpId> {
        let key = self.key(partition);
        let kind = OpKind::Send {
            key,
            value,
            offset: None,
        };
        let invoked = self.history.invoke(process, now, kind);
        self.note(invoked)
    }

    /// A send ended: `offset` is set only for an acknowledged acks=all send.
    pub fn complete_send(&mut self, op: OpId, now: u64, outcome: Outcome, offset: Option<i64>) {
        let result = match (self.history.op(op).map(|o| o.kind.clone()), offset) {
            (Some(OpKind::Send { key, value, .. }), Some(offset)) => Some(OpKind::Send {
                key,
                value,
                offset: Some(offset),
            }),
            _ => None,
        };
        let completed = self.history.complete(op, now, outcome, result);
        self.note(completed);
    }

    /// The client gave up on `process`'s operation without an answer (a timeout, a closed
    /// connection): the request may still take effect at any later time, so the operation
    /// never completes and the process starts afresh.
    pub fn abandon(&mut self, process: u64, now: u64) {
        let crashed = self.history.crash(process, now);
        self.note(crashed);
    }

    /// The consumer assigned itself `partitions`.
    pub fn assign(&mut self, process: u64, now: u64, partitions: &[PartitionKey]) {
        let keys = partitions.iter().map(|p| self.key(p)).collect();
        let invoked = self.history.invoke(process, now, OpKind::Assign { keys });
        if let Some(op) = self.note(invoked) {
            let completed = self.history.complete(op, now, Outcome::Ok, None);
            self.note(completed);
        }
    }

    /// A poll (one Fetch) began.
    pub fn invoke_poll(&mut self, process: u64, now: u64) -> Option<OpId> {
        let kind = OpKind::Poll {
            records: Vec::new(),
            rebalanced: false,
        };
        let invoked = self.history.invoke(process, now, kind);
        self.note(invoked)
    }

    /// A poll returned `records` (partition, offset, value), or nothing when `None`.
    pub fn complete_poll(
        &mut self,
        op: OpId,
        now: u64,
        records: Option<&[(PartitionKey, i64, i64)]>,
    ) {
        let Some(records) = records else {
            let completed = self.history.complete(op, now, Outcome::Fail, None);
            self.note(completed);
            return;
        };
        let records = records
            .iter()
            .map(|(partition, offset, value)| Record {
                key: self.key(partition),
                offset: *offset,
                value: *value,
            })
            .collect();
        let kind = OpKind::Poll {
            records,
            rebalanced: false,
        };
        let completed = self.history.complete(op, now, Outcome::Ok, Some(kind));
        self.note(completed);
    }

    /// Operations so far.
    pub fn len(&self) -> usize {
        self.history.len()
    }

    /// True before the first operation.
    pub fn is_empty(&self) -> bool {
        self.history.is_empty()
    }

    /// The history, and the first recording error if any.
    pub fn finish(self) -> (History, Option<String>) {
        (self.history, self.failed)
    }
}
