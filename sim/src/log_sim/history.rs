//! The client history of a log simulation, in the jepsen/ model, checked at the end of the run.
//!
//! On seeds that keep to what a Kafka client can observe (no truncation, no log-start moves, no
//! rot at rest), every record appended is a `send` of a unique value and every read a log
//! `read` from an offset. A send is acknowledged only once its batch is durable, as a broker
//! with fsync-before-ack does, and reads only see durable offsets, as a broker serving up to its
//! high watermark does. The jepsen checkers must then find the history linearizable with no
//! lost or duplicated writes.

use bytes::Bytes;
use seedlog_core::log::RequestId;
use seedlog_core::record_batch::{self, BatchHeader, BatchIter};
use seedlog_jepsen::{History, KeyId, OpId, OpKind, Outcome};
use std::collections::BTreeMap;

/// Records operations as they happen.
#[derive(Debug)]
pub struct Recorder {
    history: History,
    key: KeyId,
    /// Sends in flight, by append request: (op, value) per record.
    sends: BTreeMap<RequestId, Vec<(OpId, i64)>>,
    /// Sends written at known offsets but not yet durable: base offset → (request, count).
    written: BTreeMap<i64, RequestId>,
    reads: BTreeMap<RequestId, (OpId, i64)>,
    failed: Option<String>,
}

/// The value carried in a record's key: unique per record in a run.
pub fn record_value(request: RequestId, index: usize) -> i64 {
    (request as i64) << 8 | index as i64
}

impl Recorder {
    /// An empty history for the partition `name`.
    pub fn new(name: &str) -> Recorder {
        let mut history = History::new();
        let key = history.key(name).expect("a fresh history takes a key");
        Recorder {
            history,
            key,
            sends: BTreeMap::new(),
            written: BTreeMap::new(),
            reads: BTreeMap::new(),
            failed: None,
        }
    }

    fn note<T>(&mut self, result: Result<T, seedlog_jepsen::HistoryError>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(e) => {
                self.failed
                    .get_or_insert_with(|| format!("history recording failed: {e:?}"));
                None
            }
        }
    }

    /// An append of `count` records was sent.
    pub fn invoke_append(&mut self, now: u64, request: RequestId, count: usize) {
        let mut ops = Vec::with_capacity(count);
        for index in 0..count {
            let value = record_value(request, index);
            let kind = OpKind::Send {
                key: self.key,
                value,
                offset: None,
            };
            let process = value as u64;
            let invoked = self.history.invoke(process, now, kind);
            if let Some(op) = self.note(invoked) {
                ops.push((op, value));
            }
        }
        self.sends.insert(request, ops);
    }

    /// The append was refused: nothing was written.
    pub fn fail_append(&mut self, now: u64, request: RequestId) {
        for (op, _) in self.sends.remove(&request).unwrap_or_default() {
            let result = self.history.complete(op, now, Outcome::Fail, None);
            self.note(result);
        }
    }

    /// The append was written at `base_offset` (not yet durable).
    pub fn written(&mut self, request: RequestId, base_offset: i64) {
        self.written.insert(base_offset, request);
    }

    /// Everything below `offset` is durable: its sends are acknowledged.
    pub fn durable(&mut self, now: u64, offset: i64) {
        let done: Vec<i64> = self
            .written
            .range(..offset)
            .map(|(base, _)| *base)
            .collect();
        for base in done {
            let request = self.written.remove(&base).expect("listed above");
            for (index, (op, value)) in self
                .sends
                .remove(&request)
                .unwrap_or_default()
                .into_iter()
                .enumerate()
            {
                let kind = OpKind::Send {
                    key: self.key,
                    value,
                    offset: Some(base + index as i64),
                };
                let result = self.history.complete(op, now, Outcome::Ok, Some(kind));
                self.note(result);
            }
        }
    }

    /// A crash: unacknowledged sends stay open forever (indeterminate), reads too.
    pub fn crash(&mut self) {
        self.sends.clear();
        self.written.clear();
        self.reads.clear();
    }

    /// A read from `offset` was issued.
    pub fn invoke_read(&mut self, now: u64, request: RequestId, offset: i64) {
        let kind = OpKind::Read {
            key: self.key,
            from: offset,
            values: None,
        };
        let process = (1u64 << 62) | request;
        let invoked = self.history.invoke(process, now, kind);
        if let Some(op) = self.note(invoked) {
            self.reads.insert(request, (op, offset));
        }
    }

    /// A read answered with `batches` (or failed when `None`).
    pub fn complete_read(&mut self, now: u64, request: RequestId, batches: Option<&Bytes>) {
        let Some((op, from)) = self.reads.remove(&request) else {
            return;
        };
        let Some(batches) = batches else {
            let result = self.history.complete(op, now, Outcome::Fail, None);
            self.note(result);
            return;
        };
        let values = read_values(batches, from);
        let kind = OpKind::Read {
            key: self.key,
            from,
            values: Some(values),
        };
        let result = self.history.complete(op, now, Outcome::Ok, Some(kind));
        self.note(result);
    }

    /// The history, and the first recording error if any.
    pub fn finish(self) -> (History, Option<String>) {
        (self.history, self.failed)
    }
}

/// Values of the records at `from` and after, in offset order.
fn read_values(batches: &Bytes, from: i64) -> Vec<i64> {
    let mut values = Vec::new();
    for (header, bytes) in BatchIter::new(batches).map_while(Result::ok) {
        let header: BatchHeader = header;
        let Ok(records) = record_batch::decode_records(bytes, &header) else {
            break;
        };
        for record in records {
            let offset = header.base_offset + i64::from(record.offset_delta);
            let value = record
                .key
                .as_deref()
                .and_then(|k| k.try_into().ok())
                .map(i64::from_be_bytes);
            if let (true, Some(value)) = (offset >= from, value) {
                values.push(value);
            }
        }
    }
    values
}
