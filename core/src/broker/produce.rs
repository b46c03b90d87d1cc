//! Produce: validate, append to each partition's log, answer once the batches are durable.
//!
//! As in Kafka (`ProduceRequest.validateRecords`, KIP-98), every partition of a v3+ produce
//! carries exactly one magic-2 batch; the log validates it (CRC, sizes against the topic's
//! `max.message.bytes`, record framing) and assigns offsets by rewriting the base offset and
//! leader epoch, fields outside the CRC, so the stored bytes are the producer's bytes.
//!
//! When the answer goes out depends on `acks` and the flush policy:
//! - acks=0: no response; the request is done once the append was written. An error closes
//!   the connection, which is how Kafka tells an acks=0 producer that something failed.
//! - acks=1 and acks=all under group commit: once the log reports the batch durable; that is
//!   also when the high watermark passes it. A single node is the whole ISR, so acks=all needs
//!   nothing more, except that `min.insync.replicas` above 1 cannot be met
//!   (NOT_ENOUGH_REPLICAS, as Kafka answers when the ISR is too small).
//! - flush policy `none`: once written.

use super::errors::{self, append_error_code};
use super::{Broker, FlushPolicy, Op, OpId, Token, Work};
use crate::constants::REQUEST_PARTITIONS_MAX;
use crate::log::{AppendError, LogInput};
use crate::record_batch::BatchHeader;
use crate::time::Instant;
use bytes::Bytes;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, ResponseKind, TopicName};
use kafka_protocol::protocol::StrBytes;

/// A produce in progress.
#[derive(Debug)]
pub(super) struct ProduceState {
    acks: i16,
    version: i16,
    topics: Vec<ProduceTopic>,
    /// Parts not answered yet.
    outstanding: u32,
}

#[derive(Debug)]
struct ProduceTopic {
    name: TopicName,
    parts: Vec<ProducePart>,
}

#[derive(Debug)]
struct ProducePart {
    index: i32,
    error: i16,
    message: Option<String>,
    base_offset: i64,
    log_start_offset: i64,
    done: bool,
}

impl ProducePart {
    fn new(index: i32) -> ProducePart {
        ProducePart {
            index,
            error: errors::NONE,
            message: None,
            base_offset: -1,
            log_start_offset: -1,
            done: false,
        }
    }
}

impl Broker {
    pub(super) fn on_produce(
        &mut self,
        now: Instant,
        token: Token,
        request: ProduceRequest,
        version: i16,
    ) {
        let mut state = ProduceState {
            acks: request.acks,
            version,
            topics: Vec::with_capacity(request.topic_data.len()),
            outstanding: 0,
        };
        let part_count: usize = request
            .topic_data
            .iter()
            .map(|t| t.partition_data.len())
            .sum();
        let refusal = if !(-1..=1).contains(&request.acks) {
            Some(errors::INVALID_REQUIRED_ACKS)
        } else if request.transactional_id.is_some() || part_count > REQUEST_PARTITIONS_MAX {
            // Transactions are not implemented (InitProducerId is not advertised, so a real
            // client cannot get here); a request naming too many partitions is refused whole.
            Some(errors::INVALID_REQUEST)
        } else {
            None
        };
        let mut appends: Vec<(u32, u32, Bytes)> = Vec::new();
        for topic in request.topic_data {
            let ti = state.topics.len() as u32;
            let mut parts = Vec::with_capacity(topic.partition_data.len());
            for data in topic.partition_data {
                let mut part = ProducePart::new(data.index);
                let checked = match refusal {
                    Some(code) => Err(code),
                    None => {
                        self.check_produce_part(&topic.name, data.index, request.acks, data.records)
                    }
                };
                match checked {
                    Ok(batch) => appends.push((ti, parts.len() as u32, batch)),
                    Err(code) => {
                        part.error = code;
                        part.done = true;
                    }
                }
                parts.push(part);
            }
            state.topics.push(ProduceTopic {
                name: topic.name,
                parts,
            });
        }
        state.outstanding = appends.len() as u32;
        let names: Vec<String> = state.topics.iter().map(|t| t.name.0.to_string()).collect();
        let indexes: Vec<Vec<i32>> = state
            .topics
            .iter()
            .map(|t| t.parts.iter().map(|p| p.index).collect())
            .collect();
        self.set_work(token, Work::Produce(state));
        for (ti, pi, batch) in appends {
            let topic = &names[ti as usize];
            let partition = indexes[ti as usize][pi as usize];
            let op = self.new_op(
                topic,
                partition,
                Op::Append {
                    token,
                    topic: ti,
                    part: pi,
                },
            );
            let leader_epoch = self
                .partition(topic, partition)
                .map_or(0, |p| p.leader_epoch);
            let input = LogInput::Append {
                request: op,
                batch,
                leader_epoch,
            };
            self.drive_log(now, topic, partition, input);
        }
        self.maybe_finish_produce(token);
    }

    /// The batch to append to this partition, or the error to answer.
    fn check_produce_part(
        &self,
        topic: &TopicName,
        partition: i32,
        acks: i16,
        records: Option<Bytes>,
    ) -> Result<Bytes, i16> {
        let t = self
            .topics
            .get(topic.0.as_str())
            .ok_or(errors::UNKNOWN_TOPIC_OR_PARTITION)?;
        if partition < 0 || partition >= t.partition_count {
            return Err(errors::UNKNOWN_TOPIC_OR_PARTITION);
        }
        let p = self
            .partition(topic.0.as_str(), partition)
            .ok_or(errors::NOT_LEADER_OR_FOLLOWER)?;
        if p.log.is_faulted() {
            return Err(errors::KAFKA_STORAGE_ERROR);
        }
        if !p.is_serving() {
            return Err(errors::NOT_LEADER_OR_FOLLOWER);
        }
        self.check_replicated_produce(topic.0.as_str(), partition, acks)?;
        let batch = records.unwrap_or_default();
        if batch.is_empty() {
            return Err(errors::INVALID_RECORD);
        }
        if batch.len() as u64 > t.config.max_message_bytes {
            return Err(errors::MESSAGE_TOO_LARGE);
        }
        // Exactly one batch per partition (Kafka's rule for produce v3+): a header that parses
        // and ends before the bytes do means more than one.
        if let Ok(header) = BatchHeader::parse(&batch) {
            if header.batch_length >= 0 && header.size() < batch.len() as u64 {
                return Err(errors::INVALID_RECORD);
            }
        }
        Ok(batch)
    }

    pub(super) fn set_work(&mut self, token: Token, work: Work) {
        if let Some(inflight) = self.requests.get_mut(&token) {
            inflight.work = work;
        }
    }

    pub(super) fn on_appended(
        &mut self,
        topic: &str,
        partition: i32,
        op_id: OpId,
        base_offset: i64,
        last_offset: i64,
    ) {
        let Some(&Op::Append {
            token,
            topic: ti,
            part: pi,
        }) = self.ops.get(&op_id)
        else {
            return;
        };
        let log_start = self
            .partition(topic, partition)
            .map_or(-1, |p| p.log.log_start_offset());
        let acks = match self.produce_part(token, ti, pi) {
            Some((acks, part)) => {
                part.base_offset = base_offset;
                part.log_start_offset = log_start;
                acks
            }
            None => 0,
        };
        let next_offset = last_offset + 1;
        if self.config.flush_policy == FlushPolicy::None {
            self.advance_high_watermark(self.last_now, topic, partition, next_offset);
        }
        let visible = self
            .partition(topic, partition)
            .is_some_and(|p| p.high_watermark >= next_offset);
        if acks == 0 || visible {
            return self.complete_produce_op(topic, partition, op_id);
        }
        if acks == 1 {
            // acks=1: the leader's own copy is enough (here: durable).
            let local = self.local_end(topic, partition).unwrap_or(-1);
            if local >= next_offset {
                return self.complete_produce_op(topic, partition, op_id);
            }
            if let Some(p) = self.partition_mut(topic, partition) {
                p.local_waiters.push_back((next_offset, op_id));
            }
            return;
        }
        if let Some(p) = self.partition_mut(topic, partition) {
            debug_assert!(p
                .durable_waiters
                .back()
                .is_none_or(|(n, _)| *n <= next_offset));
            p.durable_waiters.push_back((next_offset, op_id));
        }
    }

    pub(super) fn on_append_failed(
        &mut self,
        topic: &str,
        partition: i32,
        op_id: OpId,
        error: AppendError,
    ) {
        let message = match &error {
            AppendError::InvalidBatch(e) => Some(super::errors::batch_error_message(e)),
            _ => None,
        };
        let code = append_error_code(&error);
        if let Some(Op::Append {
            token,
            topic: ti,
            part: pi,
        }) = self.take_op(topic, partition, op_id)
        {
            self.produce_part_done(token, ti, pi, code, message);
        }
    }

    /// The append of `op_id` is durable (or needs no durability): its part is answered.
    pub(super) fn complete_produce_op(&mut self, topic: &str, partition: i32, op_id: OpId) {
        if let Some(Op::Append {
            token,
            topic: ti,
            part: pi,
        }) = self.take_op(topic, partition, op_id)
        {
            self.produce_part_done(token, ti, pi, errors::NONE, None);
        }
    }

    pub(super) fn fail_produce_op(&mut self, topic: &str, partition: i32, op_id: OpId, code: i16) {
        if let Some(Op::Append {
            token,
            topic: ti,
            part: pi,
        }) = self.take_op(topic, partition, op_id)
        {
            self.produce_part_done(token, ti, pi, code, None);
        }
    }

    fn produce_part(&mut self, token: Token, ti: u32, pi: u32) -> Option<(i16, &mut ProducePart)> {
        let Work::Produce(state) = &mut self.requests.get_mut(&token)?.work else {
            return None;
        };
        let acks = state.acks;
        let part = state
            .topics
            .get_mut(ti as usize)?
            .parts
            .get_mut(pi as usize)?;
        Some((acks, part))
    }

    fn produce_part_done(
        &mut self,
        token: Token,
        ti: u32,
        pi: u32,
        code: i16,
        message: Option<String>,
    ) {
        let Some(inflight) = self.requests.get_mut(&token) else {
            return;
        };
        let Work::Produce(state) = &mut inflight.work else {
            return;
        };
        let Some(part) = state
            .topics
            .get_mut(ti as usize)
            .and_then(|t| t.parts.get_mut(pi as usize))
        else {
            return;
        };
        if part.done {
            return;
        }
        part.done = true;
        if code != errors::NONE {
            part.error = code;
            part.base_offset = -1;
            part.message = message;
        }
        state.outstanding -= 1;
        self.maybe_finish_produce(token);
    }

    fn maybe_finish_produce(&mut self, token: Token) {
        let Some(inflight) = self.requests.get(&token) else {
            return;
        };
        let Work::Produce(state) = &inflight.work else {
            return;
        };
        if state.outstanding > 0 {
            return;
        }
        let connection = inflight.connection;
        if state.acks == 0 {
            let failed = state
                .topics
                .iter()
                .flat_map(|t| &t.parts)
                .any(|p| p.error != errors::NONE);
            self.finish(token, None);
            if failed {
                // Kafka's only way to tell an acks=0 producer: drop the connection.
                self.close_connection(connection, "acks=0 produce failed");
            }
            return;
        }
        let response = produce_response(state);
        self.finish(token, Some(ResponseKind::Produce(response)));
    }
}

fn produce_response(state: &ProduceState) -> ProduceResponse {
    let version = state.version;
    let responses = state
        .topics
        .iter()
        .map(|topic| {
            let partition_responses = topic
                .parts
                .iter()
                .map(|part| {
                    let mut response = PartitionProduceResponse::default()
                        .with_index(part.index)
                        .with_error_code(part.error)
                        .with_base_offset(part.base_offset)
                        .with_log_append_time_ms(-1);
                    if version >= 5 {
                        response = response.with_log_start_offset(part.log_start_offset);
                    }
                    if version >= 8 {
                        response = response
                            .with_error_message(part.message.clone().map(StrBytes::from_string));
                    }
                    response
                })
                .collect();
            TopicProduceResponse::default()
                .with_name(topic.name.clone())
                .with_partition_responses(partition_responses)
        })
        .collect();
    ProduceResponse::default().with_responses(responses)
}
