//! Appends: a leader's, whose batch gets its offsets and leader epoch here, and a follower's,
//! whose batches arrive from the leader with both already assigned and are stored unchanged
//! (Kafka's `appendAsLeader` and `appendAsFollower`).
//!
//! Both write at the end of the active segment, roll it by size and age, record each batch's
//! leader epoch in the epoch cache, and become durable through the same sync rounds. A follower
//! append may carry many batches; every one is checked (framing, CRC, records, limits, offsets
//! that continue the log, leader epochs that never go down) before anything is written, so a
//! bad fetch leaves the log as it was.

use super::{AppendError, Log, LogOutput, Pending, RequestId, State};
use crate::constants::{LOG_APPENDS_IN_FLIGHT_MAX, LOG_SEGMENTS_MAX};
use crate::io::DiskOp;
use crate::record_batch::{self, BatchError, BatchHeader};
use crate::time::Instant;
use bytes::{Bytes, BytesMut};
use std::ops::Range;

/// Batches of a follower append that go to one segment.
#[derive(Clone, Debug)]
struct Placement {
    /// Roll to a new segment at the first batch's base offset before writing.
    roll: bool,
    /// Indexes of the batches.
    batches: Range<usize>,
}

impl Log {
    pub(super) fn fail_append(&mut self, request: RequestId, error: AppendError) {
        self.outbox
            .push_back(LogOutput::AppendFailed { request, error });
    }

    /// Why no append can start now, if none can. Overload is refused, not queued.
    fn append_refusal(&self) -> Option<AppendError> {
        match &self.state {
            State::Recovering(_) => Some(AppendError::NotReady),
            State::Faulted(_) => Some(AppendError::Storage),
            // Appends wait out a truncation so none lands in the region being cut.
            State::Ready if self.truncation_in_progress => Some(AppendError::NotReady),
            State::Ready if self.appends_in_flight >= LOG_APPENDS_IN_FLIGHT_MAX => {
                Some(AppendError::Overloaded)
            }
            State::Ready => None,
        }
    }

    pub(super) fn on_append(
        &mut self,
        now: Instant,
        request: RequestId,
        batch: Bytes,
        leader_epoch: i32,
    ) {
        assert!(leader_epoch >= 0, "a leader stamps a real epoch");
        if let Some(error) = self.append_refusal() {
            return self.fail_append(request, error);
        }
        let header = match record_batch::validate(&batch, &self.config.batch_limits) {
            Ok(header) => header,
            Err(e) => return self.fail_append(request, AppendError::InvalidBatch(e)),
        };
        let base_offset = self.log_end_offset();
        if base_offset
            .checked_add(i64::from(header.last_offset_delta) + 1)
            .is_none()
        {
            return self.fail_append(request, AppendError::LogFull);
        }
        if self.should_roll(now, header.size()) && !self.roll(now, base_offset) {
            return self.fail_append(request, AppendError::LogFull);
        }
        let mut bytes = BytesMut::from(&batch[..]);
        record_batch::set_base_offset(&mut bytes, base_offset);
        record_batch::set_partition_leader_epoch(&mut bytes, leader_epoch);
        let stored = BatchHeader::parse(&bytes).expect("validated above");
        let last_offset = stored.last_offset();
        self.epochs.assign(leader_epoch, base_offset);
        self.appends_in_flight += 1;
        let pending = Pending::AppendWrite {
            request,
            base_offset,
            last_offset,
        };
        self.write_at_end(bytes.freeze(), &[stored], pending);
        self.maybe_start_sync_round();
    }

    pub(super) fn on_append_replica(&mut self, now: Instant, request: RequestId, batches: Bytes) {
        if let Some(error) = self.append_refusal() {
            return self.fail_append(request, error);
        }
        let headers = match self.check_replica_batches(&batches) {
            Ok(headers) => headers,
            Err(error) => return self.fail_append(request, error),
        };
        let Some(placements) = self.place_replica_batches(now, &headers) else {
            return self.fail_append(request, AppendError::LogFull);
        };
        let first = headers.first().expect("at least one batch");
        let last = headers.last().expect("at least one batch");
        let (base_offset, last_offset) = (first.base_offset, last.last_offset());
        self.appends_in_flight += 1;
        let mut position = 0usize;
        for (i, placement) in placements.iter().enumerate() {
            let batch_headers = &headers[placement.batches.clone()];
            if placement.roll {
                let rolled = self.roll(now, batch_headers[0].base_offset);
                assert!(rolled, "segment room checked by the placement");
            }
            let len: u64 = batch_headers.iter().map(BatchHeader::size).sum();
            let bytes = batches.slice(position..position + len as usize);
            position += len as usize;
            for header in batch_headers {
                self.epochs
                    .assign(header.partition_leader_epoch, header.base_offset);
            }
            let pending = if i + 1 == placements.len() {
                Pending::AppendWrite {
                    request,
                    base_offset,
                    last_offset,
                }
            } else {
                Pending::AppendPart
            };
            self.write_at_end(bytes, batch_headers, pending);
        }
        assert_eq!(position, batches.len(), "every byte written once");
        assert_eq!(self.log_end_offset(), last_offset + 1);
        self.maybe_start_sync_round();
    }

    /// Checks a follower append batch by batch: each whole and valid, the first at the log end
    /// offset, each next one right after its predecessor, leader epochs real and never going
    /// down. Returns the headers, or the first reason to refuse the lot.
    fn check_replica_batches(&self, batches: &[u8]) -> Result<Vec<BatchHeader>, AppendError> {
        let limits = &self.config.batch_limits;
        let mut headers = Vec::new();
        let mut expected = self.log_end_offset();
        let mut previous_epoch = 0;
        let mut rest = batches;
        loop {
            let header = BatchHeader::parse(rest).map_err(AppendError::InvalidBatch)?;
            let size = header.size();
            if size > rest.len() as u64 {
                return Err(AppendError::InvalidBatch(BatchError::Truncated {
                    needed: size,
                    available: rest.len() as u64,
                }));
            }
            let (batch, after) = rest.split_at(size as usize);
            let header =
                record_batch::validate(batch, limits).map_err(AppendError::InvalidBatch)?;
            if header.base_offset != expected {
                return Err(AppendError::OffsetMismatch {
                    expected,
                    found: header.base_offset,
                });
            }
            let epoch = header.partition_leader_epoch;
            if epoch < 0 {
                let why = "a replicated batch has no partition leader epoch";
                return Err(AppendError::InvalidBatch(BatchError::InvalidRecord(why)));
            }
            if epoch < previous_epoch {
                let why = "partition leader epochs go down within a replicated run";
                return Err(AppendError::InvalidBatch(BatchError::InvalidRecord(why)));
            }
            expected = expected
                .checked_add(i64::from(header.last_offset_delta) + 1)
                .ok_or(AppendError::LogFull)?;
            previous_epoch = epoch;
            headers.push(header);
            rest = after;
            if rest.is_empty() {
                return Ok(headers);
            }
        }
    }

    /// Splits a follower append into per-segment writes, rolling as a leader append would
    /// before each batch; `None` if the rolls would pass the segment limit.
    fn place_replica_batches(
        &self,
        now: Instant,
        headers: &[BatchHeader],
    ) -> Option<Vec<Placement>> {
        let active = self
            .segments
            .values()
            .next_back()
            .expect("a ready log has a segment");
        let mut size = active.size;
        let mut aged = now.saturating_since(active.created) >= self.config.segment_age_max;
        let mut placements: Vec<Placement> = Vec::new();
        for (i, header) in headers.iter().enumerate() {
            let roll = size > 0 && (aged || size + header.size() > self.config.segment_bytes_max);
            match placements.last_mut() {
                Some(last) if !roll => last.batches.end = i + 1,
                _ => placements.push(Placement {
                    roll,
                    batches: i..i + 1,
                }),
            }
            if roll {
                (size, aged) = (0, false);
            }
            size += header.size();
        }
        let rolls = placements.iter().filter(|p| p.roll).count();
        (self.segments.len() + rolls <= LOG_SEGMENTS_MAX).then_some(placements)
    }

    /// Counts `headers` into the active segment and writes `bytes`, those batches, at its end.
    fn write_at_end(&mut self, bytes: Bytes, headers: &[BatchHeader], pending: Pending) {
        let segment = self
            .segments
            .values_mut()
            .next_back()
            .expect("a ready log has a segment");
        let position = segment.size;
        for header in headers {
            segment.push_batch(header);
        }
        segment.dirty = true;
        assert_eq!(segment.size - position, bytes.len() as u64);
        let segment_base = segment.base_offset;
        let file = self.segment_path(segment_base);
        let op = DiskOp::Write {
            file,
            position,
            bytes,
        };
        self.emit_disk(op, pending);
    }

    fn should_roll(&self, now: Instant, batch_size: u64) -> bool {
        let active = self
            .segments
            .values()
            .next_back()
            .expect("a ready log has a segment");
        active.size > 0
            && (active.size + batch_size > self.config.segment_bytes_max
                || now.saturating_since(active.created) >= self.config.segment_age_max)
    }

    /// Starts a new active segment at `base_offset`; false if the segment limit is reached.
    pub(super) fn roll(&mut self, now: Instant, base_offset: i64) -> bool {
        if self.segments.len() >= LOG_SEGMENTS_MAX {
            return false;
        }
        let segment = super::Segment::new(base_offset, now, self.config.index_interval_bytes);
        assert!(self.segments.insert(base_offset, segment).is_none());
        true
    }
}
