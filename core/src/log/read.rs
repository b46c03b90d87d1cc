//! Reads: whole batches from an offset, served from the stored bytes unchanged.
//!
//! The sparse offset index gives a file position at or before the wanted offset; the log reads
//! from there, checks every batch it passes (framing, CRC, dense offsets from the index entry)
//! and returns the contiguous run of whole batches that starts with the batch holding the
//! offset, within the byte budget (but always at least one batch, as Kafka does so a consumer
//! can make progress past a batch larger than its budget). A batch that fails its check is
//! reported, never served.

use super::{Log, LogOutput, Pending, ReadError, RequestId, State};
use crate::constants::LOG_READS_IN_FLIGHT_MAX;
use crate::io::{DiskError, DiskOp, DiskOutcome};
use crate::record_batch::{self, BatchError, BATCH_HEADER_LEN};
use bytes::Bytes;

/// Batches returned by a read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadResult {
    /// Whole batches laid end to end, exactly as stored (empty when nothing is available).
    pub batches: Bytes,
    /// Offset after the last batch returned (the offset to read next).
    pub next_offset: i64,
    /// Log start offset when the read was answered.
    pub log_start_offset: i64,
    /// Log end offset when the read was answered.
    pub log_end_offset: i64,
}

/// A read in flight.
#[derive(Clone, Debug)]
pub(super) struct ReadState {
    request: RequestId,
    offset: i64,
    bytes_max: u32,
    offset_max: i64,
    segment: i64,
    /// File position the outstanding disk read starts at.
    position: u64,
    /// Offset the batch at `position` must start with.
    position_offset: i64,
    /// Who asked.
    purpose: ReadPurpose,
    /// Re-reads after a failed check (truncations only).
    rereads: u32,
    /// Bytes the outstanding disk read asked for.
    asked: u64,
    /// The segment's size when that read was issued.
    issued_size: u64,
}

/// How often a truncation re-reads a batch that failed its check before giving up.
const LOCATE_REREADS_MAX: u32 = 2;

/// Why a read runs: for a client, or to find where a truncation must cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ReadPurpose {
    Client,
    /// Locate the batch holding the truncation offset; the cut goes at its start.
    Truncate,
    /// Find the first record at or after a timestamp inside the batch holding the offset.
    Timestamp(i64),
}

impl Log {
    pub(super) fn on_read(
        &mut self,
        request: RequestId,
        offset: i64,
        bytes_max: u32,
        offset_max: i64,
    ) {
        let refused = self.read_refusal();
        if let Some(error) = refused {
            return self.finish_read(request, Err(error), false);
        }
        let log_end_offset = self.log_end_offset();
        if offset < self.log_start_offset || offset > log_end_offset {
            let error = ReadError::OffsetOutOfRange {
                log_start_offset: self.log_start_offset,
                log_end_offset,
            };
            return self.finish_read(request, Err(error), false);
        }
        if offset == log_end_offset || offset >= offset_max {
            return self.finish_read(request, Ok(self.empty_read(offset)), false);
        }
        let (&segment, seg) = self
            .segments
            .range(..=offset)
            .next_back()
            .expect("offset in log");
        let (position_offset, position) = seg.lookup_offset(offset);
        self.reads_in_flight += 1;
        let purpose = ReadPurpose::Client;
        let state = ReadState {
            request,
            offset,
            bytes_max,
            offset_max,
            segment,
            position,
            position_offset,
            purpose,
            rereads: 0,
            asked: 0,
            issued_size: 0,
        };
        self.issue_read(state, 0);
    }

    /// Answers a timestamp lookup. The time index holds, per segment, each batch that raised
    /// the running maximum timestamp; the first such entry at or after the target is the first
    /// batch holding a record that recent, so one read of that batch finds the record.
    pub(super) fn on_offset_for_timestamp(&mut self, request: RequestId, timestamp: i64) {
        let refused = self.read_refusal();
        if let Some(error) = refused {
            let result = Err(error);
            return self
                .outbox
                .push_back(LogOutput::OffsetForTimestamp { request, result });
        }
        self.reads_in_flight += 1;
        self.continue_timestamp_lookup(request, timestamp, self.log_start_offset);
    }

    /// Looks for the first batch at or after `from` that can hold a record at or after
    /// `timestamp`, and reads it. The index's running maximum may point below `from` (batches
    /// before the log start count in it); then the batch holding `from` is read instead and the
    /// search walks on from there.
    fn continue_timestamp_lookup(&mut self, request: RequestId, timestamp: i64, from: i64) {
        let found = self
            .segments
            .values()
            .filter(|s| s.next_offset > from)
            .find_map(|s| {
                s.lookup_timestamp(timestamp)
                    .map(|o| (s.base_offset, o.max(from)))
            });
        let Some((segment, offset)) = found else {
            self.reads_in_flight -= 1;
            let result = Ok(None);
            return self
                .outbox
                .push_back(LogOutput::OffsetForTimestamp { request, result });
        };
        let (position_offset, position) = self.segments[&segment].lookup_offset(offset);
        let state = ReadState {
            request,
            offset,
            bytes_max: 1,
            offset_max: i64::MAX,
            segment,
            position,
            position_offset,
            purpose: ReadPurpose::Timestamp(timestamp),
            rereads: 0,
            asked: 0,
            issued_size: 0,
        };
        self.issue_read(state, 0);
    }

    /// The batch holding the looked-up offset arrived: find the record, or walk on.
    fn finish_timestamp_lookup(&mut self, state: &ReadState, batch: &[u8], timestamp: i64) {
        let request = state.request;
        let header = record_batch::BatchHeader::parse(batch).expect("framing checked by caller");
        let found = match record_batch::decode_records(batch, &header) {
            Ok(records) => records
                .iter()
                .map(|r| {
                    let offset = header.base_offset + i64::from(r.offset_delta);
                    (offset, header.base_timestamp + r.timestamp_delta)
                })
                .find(|(offset, ts)| *ts >= timestamp && *offset >= state.offset),
            // Compressed records are not decoded here: the batch's first wanted offset and
            // maximum timestamp are the closest honest answer.
            Err(_) => (header.max_timestamp >= timestamp)
                .then_some((header.base_offset.max(state.offset), header.max_timestamp)),
        };
        match found {
            Some(found) => {
                self.reads_in_flight -= 1;
                let result = Ok(Some(found));
                self.outbox
                    .push_back(LogOutput::OffsetForTimestamp { request, result });
            }
            None => self.continue_timestamp_lookup(request, timestamp, header.next_offset()),
        }
    }

    /// Starts locating the batch that holds `offset` so a truncation can cut at its start.
    pub(super) fn locate_for_truncation(&mut self, offset: i64) {
        let (&segment, seg) = self
            .segments
            .range(..=offset)
            .next_back()
            .expect("offset in log");
        let (position_offset, position) = seg.lookup_offset(offset);
        self.reads_in_flight += 1;
        let state = ReadState {
            request: 0,
            offset,
            bytes_max: 1,
            offset_max: i64::MAX,
            segment,
            position,
            position_offset,
            purpose: ReadPurpose::Truncate,
            rereads: 0,
            asked: 0,
            issued_size: 0,
        };
        self.issue_read(state, 0);
    }

    /// Why a new read cannot start now, if it cannot: the log is not serving, or too many
    /// reads are in flight (refused, not queued).
    fn read_refusal(&self) -> Option<ReadError> {
        match &self.state {
            State::Recovering(_) => Some(ReadError::NotReady),
            State::Faulted(_) => Some(ReadError::Storage),
            State::Ready if self.reads_in_flight >= LOG_READS_IN_FLIGHT_MAX => {
                Some(ReadError::Overloaded)
            }
            State::Ready => None,
        }
    }

    fn empty_read(&self, offset: i64) -> ReadResult {
        ReadResult {
            batches: Bytes::new(),
            next_offset: offset,
            log_start_offset: self.log_start_offset,
            log_end_offset: self.log_end_offset(),
        }
    }

    fn finish_read(
        &mut self,
        request: RequestId,
        result: Result<ReadResult, ReadError>,
        counted: bool,
    ) {
        if counted {
            assert!(self.reads_in_flight > 0);
            self.reads_in_flight -= 1;
        }
        self.outbox
            .push_back(LogOutput::ReadDone { request, result });
    }

    /// Ends a read: answers the client, or hands the located cut to the truncation.
    fn finish_state(
        &mut self,
        state: &ReadState,
        result: Result<ReadResult, ReadError>,
        cut: Option<(i64, u64)>,
    ) {
        match state.purpose {
            ReadPurpose::Client => self.finish_read(state.request, result, true),
            ReadPurpose::Timestamp(_) => {
                self.reads_in_flight -= 1;
                let result = result.map(|_| None);
                let request = state.request;
                self.outbox
                    .push_back(LogOutput::OffsetForTimestamp { request, result });
            }
            ReadPurpose::Truncate => {
                self.reads_in_flight -= 1;
                self.on_truncation_located(state.segment, cut, result.is_err());
            }
        }
    }

    /// How many bytes a read from `state.position` asks for: the byte budget plus one index
    /// interval, at least `needed`, at most what the segment holds.
    fn next_read_len(&self, state: &ReadState, needed: u64) -> u64 {
        let segment_size = self.segments.get(&state.segment).map_or(0, |s| s.size);
        let budget = u64::from(state.bytes_max).max(BATCH_HEADER_LEN as u64)
            + self.config.index_interval_bytes;
        budget
            .max(needed)
            .min(segment_size.saturating_sub(state.position))
            .min(u64::from(u32::MAX))
    }

    /// Reads from `state.position`, enough for the byte budget plus one index interval, and at
    /// least `needed` bytes (a batch whose header we have seen).
    fn issue_read(&mut self, mut state: ReadState, needed: u64) {
        let segment_size = self.segments.get(&state.segment).map_or(0, |s| s.size);
        if state.position >= segment_size {
            let result = Ok(self.empty_read(state.offset));
            return self.finish_state(&state, result, None);
        }
        let len = self.next_read_len(&state, needed);
        state.asked = len;
        state.issued_size = segment_size;
        let file = self.segment_path(state.segment);
        let op = DiskOp::Read {
            file,
            position: state.position,
            len: len as u32,
        };
        self.emit_disk(op, Pending::Read(state));
    }

    pub(super) fn on_read_completion(
        &mut self,
        state: ReadState,
        result: Result<DiskOutcome, DiskError>,
    ) {
        let data = match result {
            Ok(DiskOutcome::Read(data)) => data,
            Ok(_) | Err(_) => return self.finish_state(&state, Err(ReadError::Storage), None),
        };
        if !self.is_ready() {
            return self.finish_state(&state, Err(ReadError::Storage), None);
        }
        let mut expected = state.position_offset;
        let mut consumed = 0usize;
        let mut first: Option<usize> = None;
        // Served batches whose leader epoch differs from the epoch cache: (position in
        // `data`, the cache's epoch). See `stamp_epochs`.
        let mut restamp: Vec<(usize, i32)> = Vec::new();
        while consumed < data.len() {
            let rest = &data[consumed..];
            let header = match record_batch::check_framing(rest) {
                Ok(header) if header.base_offset == expected => header,
                Ok(_) => {
                    let error = BatchError::InvalidRecord("batch offset out of sequence");
                    return self.read_corrupt(state, expected, error);
                }
                Err(BatchError::Truncated { needed, .. }) => {
                    let window = (first, consumed, expected, needed);
                    return self.on_read_window_end(state, data, window, &restamp);
                }
                Err(error) => return self.read_corrupt(state, expected, error),
            };
            let size = header.size() as usize;
            if header.next_offset() <= state.offset {
                consumed += size;
                expected = header.next_offset();
                continue;
            }
            if state.purpose == ReadPurpose::Truncate {
                let cut = (header.base_offset, state.position + consumed as u64);
                return self.finish_state(&state, Ok(self.empty_read(state.offset)), Some(cut));
            }
            if let ReadPurpose::Timestamp(timestamp) = state.purpose {
                let batch = data.slice(consumed..consumed + size);
                return self.finish_timestamp_lookup(&state, &batch, timestamp);
            }
            let start = *first.get_or_insert(consumed);
            let over_budget =
                consumed > start && (consumed + size - start) as u64 > u64::from(state.bytes_max);
            if header.base_offset >= state.offset_max || over_budget {
                break;
            }
            let epoch = self.epochs.epoch_at(header.base_offset);
            if let Some(epoch) = epoch.filter(|e| *e != header.partition_leader_epoch) {
                restamp.push((consumed, epoch));
            }
            consumed += size;
            expected = header.next_offset();
        }
        self.on_read_window_end(state, data, (first, consumed, expected, 0), &restamp)
    }

    /// The read window `(first collected, consumed, next expected offset, bytes needed)`
    /// ended: answer with what was collected, or read on.
    fn on_read_window_end(
        &mut self,
        mut state: ReadState,
        data: Bytes,
        (first, consumed, expected, needed): (Option<usize>, usize, i64, u64),
        restamp: &[(usize, i32)],
    ) {
        match first {
            Some(start) if consumed == start => {
                let result = Ok(self.empty_read(state.offset));
                self.finish_state(&state, result, None)
            }
            Some(start) => {
                let result = ReadResult {
                    batches: stamp_epochs(data.slice(start..consumed), start, restamp),
                    next_offset: expected,
                    log_start_offset: self.log_start_offset,
                    log_end_offset: self.log_end_offset(),
                };
                self.finish_state(&state, Ok(result), None)
            }
            None => {
                // Nothing whole yet: the wanted batch starts beyond this window, or is larger
                // than it. Continue from the first unconsumed batch, unless reading on could
                // bring nothing new: a file shorter than the segment's recorded size, or a
                // header claiming more bytes than the segment holds, is damage, and reading it
                // again would loop forever. (A segment truncated or deleted meanwhile is no
                // damage: the next read sees its new size.)
                let got = data.len() as u64;
                let stuck = got < state.asked || self.next_read_len(&state, needed) <= got;
                let size = self.segments.get(&state.segment).map(|s| s.size);
                if consumed == 0 && stuck && size.is_some_and(|s| s >= state.issued_size) {
                    let error = BatchError::Truncated {
                        needed: needed.max(data.len() as u64 + 1),
                        available: data.len() as u64,
                    };
                    return self.read_corrupt(state, expected, error);
                }
                state.position += consumed as u64;
                state.position_offset = expected;
                self.issue_read(state, needed)
            }
        }
    }

    fn read_corrupt(&mut self, mut state: ReadState, offset: i64, error: BatchError) {
        // For a truncation the bad bytes may have been flipped in transit: read again. Damage
        // that stays is not this truncation's to cut quietly; failing hands it to recovery,
        // which reports it.
        if state.purpose == ReadPurpose::Truncate && state.rereads < LOCATE_REREADS_MAX {
            state.rereads += 1;
            return self.issue_read(state, 0);
        }
        self.finish_state(&state, Err(ReadError::Corrupt { offset, error }), None)
    }
}

/// `batches` (which start at `start` in the read) with the epochs `restamp` lists rewritten:
/// each batch's partition leader epoch as the epoch cache records it. The field lies outside
/// the CRC, so bit rot there goes unnoticed; served as found, a raised epoch followed by lower
/// ones is refused by every follower forever. The cache, built from appends and recovery, is
/// what this replica answers OffsetForLeaderEpoch with, so the batches it serves say the same.
fn stamp_epochs(batches: Bytes, start: usize, restamp: &[(usize, i32)]) -> Bytes {
    if restamp.is_empty() {
        return batches;
    }
    let mut bytes = batches.to_vec();
    for &(position, epoch) in restamp {
        record_batch::set_partition_leader_epoch(&mut bytes[position - start..], epoch);
    }
    Bytes::from(bytes)
}
