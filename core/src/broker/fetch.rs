//! Fetch: read stored batches below the high watermark, long-polling when there are none.
//!
//! Mirrors Kafka's `ReplicaManager.fetchMessages` and `DelayedFetch`:
//! - Each partition is read from `fetch_offset` up to the high watermark (consumers never see
//!   what a crash could take back), within `partition_max_bytes`. The stored bytes go into the
//!   response unchanged: the log returns whole batches as `Bytes` slices of what it read.
//! - An offset below the log start or above the log end is OFFSET_OUT_OF_RANGE; an offset
//!   between the high watermark and the log end returns no data (it is valid, just not yet
//!   visible).
//! - `max_bytes` bounds the whole response, except that the first partition with data is
//!   always included even if larger, so a consumer can pass a batch larger than its limits
//!   (KIP-74). Partitions that do not fit come back empty and are fetched again.
//! - If fewer than `min_bytes` are available and `max_wait_ms` allows, the fetch parks until a
//!   partition's high watermark moves (it then reads again), an error appears, or the wait ends.
//! - Fetch sessions (KIP-227) are declined: the response carries session id 0, which tells the
//!   client to keep sending full fetches; an incremental fetch for an unknown session gets
//!   FETCH_SESSION_ID_NOT_FOUND.

use super::errors::{self, read_error_code};
use super::{Broker, BrokerTimer, Op, OpId, Token, Work};
use crate::constants::{FETCH_WAITERS_MAX, FETCH_WAIT_MAX_MS, REQUEST_PARTITIONS_MAX};
use crate::log::{LogInput, ReadError, ReadResult};
use crate::time::{Duration, Instant};
use bytes::Bytes;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse, ResponseKind, TopicName};

/// A fetch in progress.
#[derive(Debug)]
pub(super) struct FetchState {
    version: i16,
    read_committed: bool,
    deadline: Instant,
    min_bytes: i64,
    max_bytes: i64,
    topics: Vec<FetchTopicState>,
    reads_outstanding: u32,
    parked: bool,
    error: i16,
}

#[derive(Debug)]
struct FetchTopicState {
    name: TopicName,
    parts: Vec<FetchPart>,
}

#[derive(Debug)]
struct FetchPart {
    partition: i32,
    fetch_offset: i64,
    max_bytes: u32,
    current_leader_epoch: i32,
    error: i16,
    high_watermark: i64,
    log_start_offset: i64,
    records: Bytes,
}

/// A log read a fetch is about to issue.
struct PlannedRead {
    topic_index: u32,
    part_index: u32,
    topic: String,
    partition: i32,
    offset: i64,
    bytes_max: u32,
    offset_max: i64,
}

/// A partition's fresh `(high_watermark, log_start_offset)`, or its error.
type PartUpdate = (u32, u32, Result<(i64, i64), i16>);

impl FetchState {
    fn total_bytes(&self) -> i64 {
        self.topics
            .iter()
            .flat_map(|t| &t.parts)
            .map(|p| p.records.len() as i64)
            .sum()
    }

    fn has_error(&self) -> bool {
        self.topics
            .iter()
            .flat_map(|t| &t.parts)
            .any(|p| p.error != errors::NONE)
    }

    /// The partitions a parked fetch listens on.
    fn park_keys(&self) -> Vec<(String, i32)> {
        self.topics
            .iter()
            .flat_map(|t| {
                t.parts
                    .iter()
                    .map(move |p| (t.name.0.to_string(), p.partition))
            })
            .collect()
    }
}

impl Broker {
    pub(super) fn on_fetch(
        &mut self,
        now: Instant,
        token: Token,
        request: FetchRequest,
        version: i16,
    ) {
        let wait_ms = request.max_wait_ms.clamp(0, FETCH_WAIT_MAX_MS);
        let mut state = FetchState {
            version,
            read_committed: request.isolation_level == 1,
            deadline: now + Duration::from_millis(wait_ms as u64),
            min_bytes: i64::from(request.min_bytes.max(0)),
            max_bytes: i64::from(request.max_bytes.max(0)),
            topics: Vec::new(),
            reads_outstanding: 0,
            parked: false,
            error: errors::NONE,
        };
        let part_count: usize = request.topics.iter().map(|t| t.partitions.len()).sum();
        if version >= 7 && request.session_epoch > 0 {
            state.error = errors::FETCH_SESSION_ID_NOT_FOUND;
        } else if part_count > REQUEST_PARTITIONS_MAX {
            state.error = errors::INVALID_REQUEST;
        } else {
            state.topics = request
                .topics
                .into_iter()
                .map(|topic| FetchTopicState {
                    name: topic.topic,
                    parts: topic
                        .partitions
                        .into_iter()
                        .map(|p| FetchPart {
                            partition: p.partition,
                            fetch_offset: p.fetch_offset,
                            max_bytes: p.partition_max_bytes.max(0) as u32,
                            current_leader_epoch: p.current_leader_epoch,
                            error: errors::NONE,
                            high_watermark: -1,
                            log_start_offset: -1,
                            records: Bytes::new(),
                        })
                        .collect(),
                })
                .collect();
        }
        self.set_work(token, Work::Fetch(state));
        self.issue_fetch_reads(now, token);
        self.maybe_answer_fetch(token);
    }

    /// Checks every partition that has no data yet and reads those with something visible.
    fn issue_fetch_reads(&mut self, now: Instant, token: Token) {
        let mut reads: Vec<PlannedRead> = Vec::new();
        let Some(inflight) = self.requests.get(&token) else {
            return;
        };
        let Work::Fetch(state) = &inflight.work else {
            return;
        };
        let budget = state.max_bytes.clamp(0, i64::from(u32::MAX)) as u32;
        let mut updates: Vec<PartUpdate> = Vec::new();
        for (ti, topic) in state.topics.iter().enumerate() {
            for (pi, part) in topic.parts.iter().enumerate() {
                if part.error != errors::NONE || !part.records.is_empty() {
                    continue;
                }
                let name = topic.name.0.as_str();
                let checked = self.check_fetch_part(
                    name,
                    part.partition,
                    part.fetch_offset,
                    part.current_leader_epoch,
                );
                if let Ok((high_watermark, _)) = checked {
                    if part.fetch_offset < high_watermark {
                        let bytes_max = part.max_bytes.min(budget).max(1);
                        reads.push(PlannedRead {
                            topic_index: ti as u32,
                            part_index: pi as u32,
                            topic: name.to_owned(),
                            partition: part.partition,
                            offset: part.fetch_offset,
                            bytes_max,
                            offset_max: high_watermark,
                        });
                    }
                }
                updates.push((ti as u32, pi as u32, checked));
            }
        }
        if let Some(Work::Fetch(state)) = self.requests.get_mut(&token).map(|r| &mut r.work) {
            for (ti, pi, checked) in updates {
                let part = &mut state.topics[ti as usize].parts[pi as usize];
                match checked {
                    Ok((high_watermark, log_start_offset)) => {
                        part.high_watermark = high_watermark;
                        part.log_start_offset = log_start_offset;
                    }
                    Err(code) => part.error = code,
                }
            }
            state.reads_outstanding += reads.len() as u32;
        }
        for read in reads {
            let op = Op::Read {
                token,
                topic: read.topic_index,
                part: read.part_index,
            };
            let op = self.new_op(&read.topic, read.partition, op);
            let input = LogInput::Read {
                request: op,
                offset: read.offset,
                bytes_max: read.bytes_max,
                offset_max: read.offset_max,
            };
            self.drive_log(now, &read.topic, read.partition, input);
        }
    }

    /// `(high_watermark, log_start_offset)` of a partition a consumer may read, or the error.
    fn check_fetch_part(
        &self,
        topic: &str,
        partition: i32,
        fetch_offset: i64,
        current_leader_epoch: i32,
    ) -> Result<(i64, i64), i16> {
        let p = self.serving_partition(topic, partition, current_leader_epoch)?;
        if fetch_offset < p.log.log_start_offset() || fetch_offset > p.log.log_end_offset() {
            return Err(errors::OFFSET_OUT_OF_RANGE);
        }
        Ok((p.high_watermark, p.log.log_start_offset()))
    }

    pub(super) fn on_read_done(
        &mut self,
        _now: Instant,
        topic: &str,
        partition: i32,
        op_id: OpId,
        result: Result<ReadResult, ReadError>,
    ) {
        let Some(Op::Read {
            token,
            topic: ti,
            part: pi,
        }) = self.take_op(topic, partition, op_id)
        else {
            return;
        };
        let Some(Work::Fetch(state)) = self.requests.get_mut(&token).map(|r| &mut r.work) else {
            return;
        };
        state.reads_outstanding -= 1;
        if let Some(part) = state
            .topics
            .get_mut(ti as usize)
            .and_then(|t| t.parts.get_mut(pi as usize))
        {
            match result {
                Ok(read) => {
                    part.records = read.batches;
                    part.log_start_offset = read.log_start_offset;
                }
                Err(error) => {
                    if let Some(code) = read_error_code(&error) {
                        part.error = code;
                    }
                }
            }
        }
        self.maybe_answer_fetch(token);
    }

    /// Answers the fetch if it has enough, has an error, or may not wait; else parks it.
    fn maybe_answer_fetch(&mut self, token: Token) {
        let Some(Work::Fetch(state)) = self.requests.get(&token).map(|r| &r.work) else {
            return;
        };
        if state.reads_outstanding > 0 {
            return;
        }
        let total = state.total_bytes();
        let answer = state.error != errors::NONE
            || total >= state.min_bytes
            || state.has_error()
            || state.topics.is_empty()
            || self.draining
            || self.fetch_deadlines.len() >= FETCH_WAITERS_MAX;
        let deadline = state.deadline;
        // A zero wait makes the deadline the arrival time: answer at once.
        if answer || deadline <= self.last_now {
            return self.answer_fetch(token);
        }
        let keys = state.park_keys();
        for (topic, partition) in keys {
            if let Some(p) = self.partition_mut(&topic, partition) {
                p.fetch_waiters.insert(token);
            }
        }
        if let Some(Work::Fetch(state)) = self.requests.get_mut(&token).map(|r| &mut r.work) {
            state.parked = true;
        }
        self.fetch_deadlines.insert((deadline, token));
        self.arm_fetch_timer();
    }

    fn arm_fetch_timer(&mut self) {
        match self.fetch_deadlines.first() {
            Some((at, _)) => self.timers.set(BrokerTimer::FetchWait, *at),
            None => self.timers.stop(BrokerTimer::FetchWait),
        }
    }

    /// Removes a parked fetch from every partition's waiters and from the deadline set.
    pub(super) fn unpark_fetch(&mut self, token: Token, state: &FetchState) {
        if !state.parked {
            return;
        }
        self.fetch_deadlines.remove(&(state.deadline, token));
        for (topic, partition) in state.park_keys() {
            if let Some(p) = self.partition_mut(&topic, partition) {
                p.fetch_waiters.remove(&token);
            }
        }
        self.arm_fetch_timer();
    }

    /// Takes a parked fetch out of waiting; false if it was not parked.
    fn take_parked(&mut self, token: Token) -> bool {
        let Some(inflight) = self.requests.get_mut(&token) else {
            return false;
        };
        let Work::Fetch(state) = &mut inflight.work else {
            return false;
        };
        if !state.parked {
            return false;
        }
        let work = std::mem::replace(&mut inflight.work, Work::Done(None));
        if let Work::Fetch(state) = &work {
            self.unpark_fetch(token, state);
        }
        if let Some(inflight) = self.requests.get_mut(&token) {
            inflight.work = work;
            if let Work::Fetch(state) = &mut inflight.work {
                state.parked = false;
            }
        }
        true
    }

    /// A partition this fetch waits on has new visible data: read again.
    pub(super) fn wake_fetch(&mut self, now: Instant, token: Token) {
        if !self.take_parked(token) {
            return;
        }
        self.issue_fetch_reads(now, token);
        self.maybe_answer_fetch(token);
    }

    /// Answers a parked fetch now with whatever it has.
    pub(super) fn expire_fetch(&mut self, token: Token) {
        if self.take_parked(token) {
            self.answer_fetch(token);
        }
    }

    pub(super) fn on_fetch_wait_timeout(&mut self, now: Instant) {
        let due: Vec<Token> = self
            .fetch_deadlines
            .iter()
            .take_while(|(at, _)| *at <= now)
            .map(|(_, token)| *token)
            .collect();
        for token in due {
            self.expire_fetch(token);
        }
        self.arm_fetch_timer();
    }

    fn answer_fetch(&mut self, token: Token) {
        let Some(Work::Fetch(state)) = self.requests.get(&token).map(|r| &r.work) else {
            return;
        };
        let response = fetch_response(state);
        self.finish(token, Some(ResponseKind::Fetch(response)));
    }
}

/// KIP-320: a client that names a leader epoch must name ours.
pub(super) fn check_leader_epoch(requested: i32, current: i32) -> Result<(), i16> {
    if requested < 0 || requested == current {
        Ok(())
    } else if requested > current {
        Err(errors::UNKNOWN_LEADER_EPOCH)
    } else {
        Err(errors::FENCED_LEADER_EPOCH)
    }
}

fn fetch_response(state: &FetchState) -> FetchResponse {
    let version = state.version;
    let mut budget = state.max_bytes;
    let mut included_any = false;
    let responses = state
        .topics
        .iter()
        .map(|topic| {
            let partitions = topic
                .parts
                .iter()
                .map(|part| {
                    let mut records = part.records.clone();
                    let size = records.len() as i64;
                    if size > 0 {
                        // KIP-74: the first partition with data always goes out whole.
                        if included_any && size > budget {
                            records = Bytes::new();
                        } else {
                            budget -= size;
                            included_any = true;
                        }
                    }
                    partition_data(version, state.read_committed, part, records)
                })
                .collect();
            FetchableTopicResponse::default()
                .with_topic(topic.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    let mut response = FetchResponse::default().with_responses(responses);
    if version >= 7 {
        response = response.with_error_code(state.error);
    }
    response
}

fn partition_data(
    version: i16,
    read_committed: bool,
    part: &FetchPart,
    records: Bytes,
) -> PartitionData {
    let failed = part.error != errors::NONE;
    let high_watermark = if failed { -1 } else { part.high_watermark };
    let mut data = PartitionData::default()
        .with_partition_index(part.partition)
        .with_error_code(part.error)
        .with_high_watermark(high_watermark)
        // No transactions yet: the last stable offset is the high watermark.
        .with_last_stable_offset(high_watermark)
        .with_aborted_transactions(read_committed.then(Vec::new))
        .with_records(Some(records));
    if version >= 5 {
        data = data.with_log_start_offset(if failed { -1 } else { part.log_start_offset });
    }
    data
}
