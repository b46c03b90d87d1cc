//! ListOffsets: the earliest offset, the latest visible offset, or the first offset at or
//! after a timestamp (KIP-79), per partition.
//!
//! "Latest" is the high watermark for both isolation levels (the last stable offset equals it
//! while there are no transactions), as Kafka answers consumers: an offset beyond it would
//! point at records a consumer cannot read yet. A timestamp lookup runs in the log (time
//! index, then one batch read); a match at or above the high watermark is not visible yet and
//! is answered as "none" (offset -1), as Kafka does. The max-timestamp spec (-3, KIP-734) and
//! the tiered-storage specs are not implemented and answer UNSUPPORTED_VERSION.

use super::errors::{self, read_error_code};
use super::{Broker, Op, OpId, Token, Work};
use crate::constants::REQUEST_PARTITIONS_MAX;
use crate::log::{LogInput, ReadError};
use crate::time::Instant;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse, ResponseKind, TopicName};

/// Kafka's special timestamps.
const LATEST: i64 = -1;
const EARLIEST: i64 = -2;

/// A ListOffsets in progress.
#[derive(Debug)]
pub(super) struct ListOffsetsState {
    version: i16,
    topics: Vec<(TopicName, Vec<OffsetPart>)>,
    outstanding: u32,
}

#[derive(Debug)]
struct OffsetPart {
    partition: i32,
    error: i16,
    timestamp: i64,
    offset: i64,
    leader_epoch: i32,
}

impl Broker {
    pub(super) fn on_list_offsets(
        &mut self,
        now: Instant,
        token: Token,
        request: ListOffsetsRequest,
        version: i16,
    ) {
        let part_count: usize = request.topics.iter().map(|t| t.partitions.len()).sum();
        let mut lookups: Vec<(u32, u32, String, i32, i64)> = Vec::new();
        let mut topics = Vec::with_capacity(request.topics.len());
        for (ti, topic) in request.topics.into_iter().enumerate() {
            let mut parts = Vec::with_capacity(topic.partitions.len());
            for (pi, p) in topic.partitions.into_iter().enumerate() {
                let mut part = OffsetPart {
                    partition: p.partition_index,
                    error: errors::NONE,
                    timestamp: -1,
                    offset: -1,
                    leader_epoch: -1,
                };
                let name = topic.name.0.as_str();
                let checked = if part_count > REQUEST_PARTITIONS_MAX {
                    Err(errors::INVALID_REQUEST)
                } else {
                    self.check_offsets_part(name, p.partition_index, p.current_leader_epoch)
                };
                match checked {
                    Err(code) => part.error = code,
                    Ok((log_start, high_watermark, epoch)) => {
                        part.leader_epoch = epoch;
                        match p.timestamp {
                            EARLIEST => part.offset = log_start,
                            LATEST => part.offset = high_watermark,
                            t if t >= 0 => lookups.push((
                                ti as u32,
                                pi as u32,
                                name.to_owned(),
                                p.partition_index,
                                t,
                            )),
                            _ => part.error = errors::UNSUPPORTED_VERSION,
                        }
                    }
                }
                parts.push(part);
            }
            topics.push((topic.name, parts));
        }
        let state = ListOffsetsState {
            version,
            topics,
            outstanding: lookups.len() as u32,
        };
        self.set_work(token, Work::ListOffsets(state));
        for (ti, pi, topic, partition, timestamp) in lookups {
            let op = self.new_op(
                &topic,
                partition,
                Op::Lookup {
                    token,
                    topic: ti,
                    part: pi,
                },
            );
            let input = LogInput::OffsetForTimestamp {
                request: op,
                timestamp,
            };
            self.drive_log(now, &topic, partition, input);
        }
        self.maybe_finish_list_offsets(token);
    }

    /// `(log_start_offset, high_watermark, leader_epoch)` or the error to answer.
    fn check_offsets_part(
        &self,
        topic: &str,
        partition: i32,
        current_leader_epoch: i32,
    ) -> Result<(i64, i64, i32), i16> {
        let p = self.serving_partition(topic, partition, current_leader_epoch)?;
        Ok((p.log.log_start_offset(), p.high_watermark, p.leader_epoch))
    }

    pub(super) fn on_offset_for_timestamp(
        &mut self,
        topic: &str,
        partition: i32,
        op_id: OpId,
        result: Result<Option<(i64, i64)>, ReadError>,
    ) {
        let Some(Op::Lookup {
            token,
            topic: ti,
            part: pi,
        }) = self.take_op(topic, partition, op_id)
        else {
            return;
        };
        let high_watermark = self
            .partition(topic, partition)
            .map_or(-1, |p| p.high_watermark);
        let Some(Work::ListOffsets(state)) = self.requests.get_mut(&token).map(|r| &mut r.work)
        else {
            return;
        };
        state.outstanding -= 1;
        if let Some(part) = state
            .topics
            .get_mut(ti as usize)
            .and_then(|t| t.1.get_mut(pi as usize))
        {
            match result {
                Ok(Some((offset, timestamp))) if offset < high_watermark => {
                    part.offset = offset;
                    part.timestamp = timestamp;
                }
                Ok(_) => {}
                Err(error) => {
                    part.error = read_error_code(&error).unwrap_or(errors::REQUEST_TIMED_OUT);
                }
            }
        }
        self.maybe_finish_list_offsets(token);
    }

    /// Fails an op of a deleted partition, whatever request it belongs to.
    pub(super) fn fail_op(&mut self, topic: &str, partition: i32, op_id: OpId, code: i16) {
        let Some(op) = self.ops.get(&op_id).copied() else {
            return;
        };
        match op {
            Op::Append { .. } => self.fail_produce_op(topic, partition, op_id, code),
            Op::Read { .. } => {
                let error = ReadError::NotReady;
                let _ = code;
                self.on_read_done(self.last_now, topic, partition, op_id, Err(error));
            }
            Op::Lookup { .. } => {
                self.on_offset_for_timestamp(topic, partition, op_id, Err(ReadError::NotReady))
            }
        }
    }

    fn maybe_finish_list_offsets(&mut self, token: Token) {
        let Some(Work::ListOffsets(state)) = self.requests.get(&token).map(|r| &r.work) else {
            return;
        };
        if state.outstanding > 0 {
            return;
        }
        let version = state.version;
        let topics = state
            .topics
            .iter()
            .map(|(name, parts)| {
                let partitions = parts
                    .iter()
                    .map(|part| {
                        let mut response = ListOffsetsPartitionResponse::default()
                            .with_partition_index(part.partition)
                            .with_error_code(part.error)
                            .with_timestamp(part.timestamp)
                            .with_offset(part.offset);
                        if version >= 4 {
                            response = response.with_leader_epoch(part.leader_epoch);
                        }
                        response
                    })
                    .collect();
                ListOffsetsTopicResponse::default()
                    .with_name(name.clone())
                    .with_partitions(partitions)
            })
            .collect();
        let response = ListOffsetsResponse::default().with_topics(topics);
        self.finish(token, Some(ResponseKind::ListOffsets(response)));
    }
}
