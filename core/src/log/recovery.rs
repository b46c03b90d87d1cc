//! Recovery: rebuild the log from its files before serving anything.
//!
//! Recovery lists the directory, reads both checkpoint slots, and scans every segment in
//! order, checking each batch's framing, CRC and that offsets continue densely across batches
//! and segments. The first failure is the cut: the segment is truncated there and every later
//! segment deleted. A cut at or above the checkpoint's recovery point removes only data that
//! was never synced (a torn or lost tail); a cut below it means synced data was damaged, and
//! the report says so instead of hiding it.
//!
//! The scan also rebuilds the leader epoch cache from each batch's partition leader epoch,
//! keeping it monotonic: a batch whose epoch is below the latest (or negative) adds nothing.
//! The field lies outside the CRC, so a damaged epoch shows at best as one that goes down, and
//! cutting there would not help: damage that raised the epoch of the last batch is invisible
//! until later appends carry the real, lower epoch, and a cut then would throw away intact
//! synced data long after the damage. A raised epoch stays in the cache instead, until a new
//! leader records its epoch (which replaces every entry at or above it) or a follower
//! truncates the batch away.
//!
//! A bit flipped on the way from the disk is another matter: it is not on the disk, so a second
//! read tells. The cache depends only on the batches that start an entry, the batch before
//! each (a lowered first batch of an epoch moves the entry one batch late, which would let a
//! follower keep a divergent batch), and the last batch (a lowered last batch drops an entry).
//! Once the scan ends, recovery reads the epoch of each of those batches again; if any reads
//! differently, the whole scan runs again, up to [`RECOVERY_REREADS_MAX`] times.

use super::checkpoint::{Checkpoint, CHECKPOINT_LEN, SLOTS};
use super::segment::Segment;
use super::{CutPlan, FaultReason, Log, LogOutput, Pending, State};
use crate::canary::Canary;
use crate::constants::{BATCH_BYTES_MAX_LIMIT, RECOVERY_READ_BYTES};
use crate::io::{DiskError, DiskOp, DiskOutcome};
use crate::record_batch::{self, BatchError, BatchHeader};
use crate::time::Instant;

/// Why recovery cut the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CutReason {
    /// The last batch of the last segment is incomplete (a torn write).
    TornTail,
    /// A batch failed its framing or CRC check.
    Corrupt(BatchError),
    /// A batch or segment does not start at the offset after its predecessor.
    OffsetGap {
        /// The offset that should have come next.
        expected: i64,
        /// The offset found.
        found: i64,
    },
}

/// Where and why recovery cut the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cut {
    /// The new log end offset.
    pub offset: i64,
    /// Base offset of the segment cut.
    pub segment: i64,
    /// File position of the cut in that segment.
    pub position: u64,
    /// Why.
    pub reason: CutReason,
}

/// What recovery found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The log start offset after recovery.
    pub log_start_offset: i64,
    /// The log end offset after recovery.
    pub log_end_offset: i64,
    /// The recovery point from the best checkpoint (0 if none).
    pub recovery_point: i64,
    /// Where recovery truncated, if it did.
    pub cut: Option<Cut>,
    /// Synced data that recovery could not keep: `[log_end_offset, recovery_point)`. A
    /// correct log only reports this when the storage damaged synced bytes.
    pub durable_data_lost: Option<(i64, i64)>,
    /// Checkpoint files existed but none was readable.
    pub checkpoint_lost: bool,
    /// At least one checkpoint slot was unreadable: either a checkpoint write was torn by a
    /// crash (harmless: it never became durable) or a durable one was damaged, in which case
    /// the recovery point above may be too low to notice lost data.
    pub checkpoint_damaged: bool,
}

/// What a recovery disk request is for.
#[derive(Clone, Copy, Debug)]
pub(super) enum Step {
    List,
    /// A read of checkpoint slot `slot`, attempt `attempt` (a slot that does not decode is
    /// read again: the damage may have happened on the way from the disk).
    CheckpointRead {
        slot: u8,
        attempt: u8,
    },
    SegmentRead,
    /// A second read of the epoch of `probes[index]`.
    EpochProbe {
        index: u32,
    },
}

/// A batch whose leader epoch shapes the epoch cache, as the scan read it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct EpochProbe {
    segment: i64,
    position: u64,
    epoch: i32,
}

/// Recovery progress.
#[derive(Clone, Debug, Default)]
pub(super) struct Recovery {
    /// Segment files in offset order: (base offset, length).
    files: Vec<(i64, u64)>,
    /// Index in `files` of the segment being scanned.
    current: usize,
    /// File position of the first byte of `carry`.
    scan_position: u64,
    /// Bytes of an incomplete batch carried to the next read.
    carry: Vec<u8>,
    expected_next: Option<i64>,
    best_checkpoint: Option<Checkpoint>,
    checkpoint_files: u32,
    checkpoint_unreadable: u32,
    checkpoint_reads_outstanding: u32,
    scan_done: bool,
    cut: Option<Cut>,
    /// Re-reads of the current position after a failed check.
    rereads: u32,
    /// Segment files wholly below the log start, deleted once recovery finishes.
    below_log_start: Vec<i64>,
    /// The last batch the scan accepted.
    last_batch: Option<EpochProbe>,
    /// The batches whose epochs are read again once the scan ends.
    probes: Vec<EpochProbe>,
    /// Probe reads not answered yet; `None` before they are sent.
    probes_outstanding: Option<u32>,
    /// A probe read an epoch other than the scan's.
    probe_mismatch: bool,
    /// Scans run again after a probe mismatch.
    rescans: u32,
}

/// How often recovery re-reads a batch that failed its check before cutting there.
const RECOVERY_REREADS_MAX: u32 = 3;

impl Log {
    pub(super) fn start_recovery(&mut self) {
        self.state = State::Recovering(Box::default());
        let dir = self.config.dir.clone();
        self.emit_disk(DiskOp::List { dir }, Pending::Recovery(Step::List));
    }

    fn recovery(&mut self) -> &mut Recovery {
        match &mut self.state {
            State::Recovering(r) => r,
            _ => unreachable!("only called while recovering"),
        }
    }

    pub(super) fn on_recovery_completion(
        &mut self,
        now: Instant,
        step: Step,
        result: Result<DiskOutcome, DiskError>,
    ) {
        if !matches!(self.state, State::Recovering(_)) {
            return;
        }
        let outcome = match result {
            Ok(outcome) => outcome,
            Err(e) => return self.fault(FaultReason::Disk(e)),
        };
        match (step, outcome) {
            (Step::List, DiskOutcome::Listed(entries)) => self.on_recovery_list(now, entries),
            (Step::CheckpointRead { slot, attempt }, DiskOutcome::Read(bytes)) => {
                let decoded = Checkpoint::decode(&bytes);
                if decoded.is_none() && u32::from(attempt) < RECOVERY_REREADS_MAX {
                    return self.read_checkpoint_slot(slot, attempt + 1);
                }
                let recovery = self.recovery();
                recovery.checkpoint_reads_outstanding -= 1;
                match decoded {
                    Some(c)
                        if recovery
                            .best_checkpoint
                            .is_none_or(|b| c.sequence > b.sequence) =>
                    {
                        recovery.best_checkpoint = Some(c);
                    }
                    Some(_) => {}
                    None => recovery.checkpoint_unreadable += 1,
                }
                if recovery.checkpoint_reads_outstanding == 0 {
                    self.begin_scan(now);
                }
            }
            (Step::SegmentRead, DiskOutcome::Read(bytes)) => self.on_segment_chunk(now, &bytes),
            (Step::EpochProbe { index }, DiskOutcome::Read(bytes)) => {
                let read = record_batch::partition_leader_epoch(&bytes);
                let recovery = self.recovery();
                let expected = recovery.probes.get(index as usize).map(|p| p.epoch);
                if read.is_none() || read != expected {
                    recovery.probe_mismatch = true;
                }
                let outstanding = recovery
                    .probes_outstanding
                    .as_mut()
                    .expect("probes were sent");
                *outstanding -= 1;
                if *outstanding == 0 {
                    self.on_probes_done(now);
                }
            }
            _ => self.fault(FaultReason::UnexpectedCompletion),
        }
    }

    fn on_recovery_list(&mut self, now: Instant, entries: Vec<crate::io::FileEntry>) {
        let mut files: Vec<(i64, u64)> = entries
            .iter()
            .filter_map(|e| Segment::parse_file_name(&e.name).map(|base| (base, e.len)))
            .collect();
        files.sort_unstable();
        let slots: Vec<&str> = SLOTS
            .iter()
            .copied()
            .filter(|s| entries.iter().any(|e| e.name == *s))
            .collect();
        for (slot, name) in SLOTS.iter().enumerate() {
            if slots.contains(name) {
                self.read_checkpoint_slot(slot as u8, 0);
            }
        }
        let recovery = self.recovery();
        recovery.files = files;
        recovery.checkpoint_files = slots.len() as u32;
        recovery.checkpoint_reads_outstanding = slots.len() as u32;
        if slots.is_empty() {
            self.begin_scan(now);
        }
    }

    fn read_checkpoint_slot(&mut self, slot: u8, attempt: u8) {
        let file = self.path(SLOTS[usize::from(slot)]);
        let len = CHECKPOINT_LEN as u32;
        let op = DiskOp::Read {
            file,
            position: 0,
            len,
        };
        self.emit_disk(
            op,
            Pending::Recovery(Step::CheckpointRead { slot, attempt }),
        );
    }

    /// Once the checkpoint is known: skip segment files that lie wholly below the log start
    /// (deleted records whose file deletion a crash interrupted; a gap among them is no loss)
    /// and scan from the segment holding the log start.
    fn begin_scan(&mut self, now: Instant) {
        let recovery = self.recovery();
        let log_start = recovery.best_checkpoint.map_or(0, |c| c.log_start_offset);
        let first = recovery
            .files
            .iter()
            .rposition(|(base, _)| *base <= log_start)
            .unwrap_or(0);
        recovery.below_log_start = recovery
            .files
            .drain(..first)
            .map(|(base, _)| base)
            .collect();
        self.start_segment_scan(now);
    }

    /// Begins scanning `files[current]`, or ends the scan when none is left.
    fn start_segment_scan(&mut self, now: Instant) {
        let index_interval = self.config.index_interval_bytes;
        let recovery = self.recovery();
        let Some(&(base, _)) = recovery.files.get(recovery.current) else {
            recovery.scan_done = true;
            return self.maybe_finish_recovery(now);
        };
        if let Some(expected) = recovery.expected_next.filter(|e| *e != base) {
            let previous = recovery.files[recovery.current - 1].0;
            let cut_position = self.segments.get(&previous).map_or(0, |s| s.size);
            let reason = CutReason::OffsetGap {
                expected,
                found: base,
            };
            return self.cut_scan(now, previous, cut_position, reason);
        }
        recovery.expected_next = Some(base);
        recovery.scan_position = 0;
        recovery.carry.clear();
        self.segments
            .insert(base, Segment::new(base, now, index_interval));
        self.read_next_chunk(now, 0);
    }

    /// Reads the next chunk of the current segment, at least `needed` bytes past the carry.
    fn read_next_chunk(&mut self, now: Instant, needed: u64) {
        let recovery = self.recovery();
        let (base, len) = recovery.files[recovery.current];
        let position = recovery.scan_position + recovery.carry.len() as u64;
        if position >= len {
            recovery.current += 1;
            return self.start_segment_scan(now);
        }
        let want = needed.saturating_sub(recovery.carry.len() as u64);
        let chunk = want.max(u64::from(RECOVERY_READ_BYTES)).min(len - position) as u32;
        let file = self.segment_path(base);
        let op = DiskOp::Read {
            file,
            position,
            len: chunk,
        };
        self.emit_disk(op, Pending::Recovery(Step::SegmentRead));
    }

    fn on_segment_chunk(&mut self, now: Instant, data: &[u8]) {
        let canaries = self.config.canaries;
        let recovery = self.recovery();
        let (base, file_len) = recovery.files[recovery.current];
        let mut buffer = std::mem::take(&mut recovery.carry);
        buffer.extend_from_slice(data);
        let mut consumed = 0usize;
        while consumed < buffer.len() {
            let rest = &buffer[consumed..];
            let checked = if canaries.is_on(Canary::RecoverySkipsCrc) {
                check_framing_without_crc(rest)
            } else {
                record_batch::check_framing(rest)
            };
            let recovery = self.recovery();
            let expected = recovery
                .expected_next
                .expect("set when the segment scan began");
            let position = recovery.scan_position + consumed as u64;
            match checked {
                Ok(header) if header.base_offset == expected => {
                    recovery.expected_next = Some(header.next_offset());
                    recovery.rereads = 0;
                    consumed += header.size() as usize;
                    self.segments
                        .get_mut(&base)
                        .expect("inserted at scan start")
                        .push_batch(&header);
                    let epoch = header.partition_leader_epoch;
                    let batch = EpochProbe {
                        segment: base,
                        position,
                        epoch,
                    };
                    let starts_entry =
                        epoch >= 0 && self.epochs.latest_epoch().is_none_or(|l| epoch > l);
                    if starts_entry {
                        self.epochs.assign(epoch, header.base_offset);
                    }
                    let recovery = self.recovery();
                    if starts_entry {
                        if let Some(before) = recovery.last_batch {
                            if recovery.probes.last() != Some(&before) {
                                recovery.probes.push(before);
                            }
                        }
                        recovery.probes.push(batch);
                    }
                    recovery.last_batch = Some(batch);
                }
                // The base offset lies outside the CRC, so a bit flipped on the way from the
                // disk shows up as a gap: read again before cutting, as for a bad CRC.
                Ok(_) if self.recovery().rereads < RECOVERY_REREADS_MAX => {
                    return self.reread_at(now, position);
                }
                Ok(header) => {
                    let reason = CutReason::OffsetGap {
                        expected,
                        found: header.base_offset,
                    };
                    return self.cut_scan(now, base, position, reason);
                }
                // A batch that runs past the end of the file is what a torn last write leaves,
                // unless its length field was flipped on the way from the disk: read again
                // before cutting (a real torn tail costs a few small reads).
                Err(BatchError::Truncated { needed, .. })
                    if position + needed > file_len
                        && self.recovery().rereads < RECOVERY_REREADS_MAX
                        && !canaries.is_on(Canary::RecoveryKeepsTornTail) =>
                {
                    return self.reread_at(now, position);
                }
                Err(BatchError::Truncated { needed, .. }) if position + needed > file_len => {
                    if canaries.is_on(Canary::RecoveryKeepsTornTail) {
                        self.keep_torn_tail(base, rest);
                        break;
                    }
                    return self.cut_scan(now, base, position, CutReason::TornTail);
                }
                Err(BatchError::Truncated { needed, .. })
                    if needed <= BATCH_BYTES_MAX_LIMIT + 64 =>
                {
                    let recovery = self.recovery();
                    recovery.carry = rest.to_vec();
                    recovery.scan_position = position;
                    return self.read_next_chunk(now, needed);
                }
                // A bad batch may be a bit flipped on the way from the disk rather than on it:
                // read it again before cutting synced data.
                Err(_) if self.recovery().rereads < RECOVERY_REREADS_MAX => {
                    return self.reread_at(now, position);
                }
                Err(e) => return self.cut_scan(now, base, position, CutReason::Corrupt(e)),
            }
        }
        let recovery = self.recovery();
        recovery.scan_position += buffer.len() as u64;
        self.read_next_chunk(now, 0);
    }

    /// Reads the segment again from `position`, where a batch failed its checks.
    fn reread_at(&mut self, now: Instant, position: u64) {
        let recovery = self.recovery();
        recovery.rereads += 1;
        recovery.carry.clear();
        recovery.scan_position = position;
        self.read_next_chunk(now, 0)
    }

    /// The planted bug: count a torn batch as if it were whole.
    fn keep_torn_tail(&mut self, base: i64, rest: &[u8]) {
        let segment = self
            .segments
            .get_mut(&base)
            .expect("inserted at scan start");
        match BatchHeader::parse(rest) {
            Ok(header) if header.base_offset == segment.next_offset && header.batch_length > 0 => {
                segment.push_batch(&header);
                self.recovery().expected_next = Some(header.next_offset());
            }
            _ => {}
        }
    }

    /// Ends the scan at `position` of segment `base`; later segments are dropped.
    fn cut_scan(&mut self, now: Instant, base: i64, position: u64, reason: CutReason) {
        let offset = self.segments.get(&base).map_or(base, |s| s.next_offset);
        let recovery = self.recovery();
        recovery.cut = Some(Cut {
            offset,
            segment: base,
            position,
            reason,
        });
        recovery.scan_done = true;
        self.maybe_finish_recovery(now);
    }

    fn maybe_finish_recovery(&mut self, now: Instant) {
        let recovery = self.recovery();
        if !recovery.scan_done || recovery.checkpoint_reads_outstanding > 0 {
            return;
        }
        // Recovery ends once the probes are answered (`on_probes_done`).
        if recovery.probes_outstanding.is_none() {
            self.send_probes(now);
        }
    }

    /// Reads again the epoch of every batch that shaped the cache, and of the last batch.
    fn send_probes(&mut self, now: Instant) {
        let recovery = self.recovery();
        if let Some(last) = recovery.last_batch {
            if recovery.probes.last() != Some(&last) {
                recovery.probes.push(last);
            }
        }
        let probes = recovery.probes.clone();
        recovery.probes_outstanding = Some(probes.len() as u32);
        if probes.is_empty() {
            return self.on_probes_done(now);
        }
        let len = record_batch::PARTITION_LEADER_EPOCH_RANGE.end as u32;
        for (index, probe) in probes.iter().enumerate() {
            let op = DiskOp::Read {
                file: self.segment_path(probe.segment),
                position: probe.position,
                len,
            };
            let step = Step::EpochProbe {
                index: index as u32,
            };
            self.emit_disk(op, Pending::Recovery(step));
        }
    }

    /// Every probe answered: scan again if one disagreed, else finish.
    fn on_probes_done(&mut self, now: Instant) {
        let recovery = self.recovery();
        if recovery.probe_mismatch && recovery.rescans < RECOVERY_REREADS_MAX {
            return self.rescan(now);
        }
        self.finish_scan(now);
    }

    /// Forgets what the scan found and scans every segment again.
    fn rescan(&mut self, now: Instant) {
        let recovery = self.recovery();
        let fresh = Recovery {
            files: std::mem::take(&mut recovery.files),
            best_checkpoint: recovery.best_checkpoint,
            checkpoint_files: recovery.checkpoint_files,
            checkpoint_unreadable: recovery.checkpoint_unreadable,
            below_log_start: std::mem::take(&mut recovery.below_log_start),
            rescans: recovery.rescans + 1,
            ..Recovery::default()
        };
        *recovery = fresh;
        self.segments.clear();
        self.epochs.clear();
        self.start_segment_scan(now);
    }

    fn finish_scan(&mut self, now: Instant) {
        let State::Recovering(recovery) = std::mem::replace(&mut self.state, State::Ready) else {
            unreachable!("checked above");
        };
        self.finish_recovery(now, *recovery);
    }

    /// Applies the cut on disk, adopts the checkpoint, and starts serving.
    fn finish_recovery(&mut self, now: Instant, recovery: Recovery) {
        let checkpoint = recovery.best_checkpoint;
        let recovery_point = checkpoint.map_or(0, |c| c.recovery_point);
        self.checkpoint_sequence = checkpoint.map_or(0, |c| c.sequence);
        self.log_start_offset = checkpoint.map_or(0, |c| c.log_start_offset);
        for base in &recovery.below_log_start {
            let file = self.segment_path(*base);
            self.emit_disk(DiskOp::Delete { file }, Pending::Delete);
        }
        let mut plan = self.plan_recovery_cut(&recovery);
        let mut log_end_offset = self.log_end_offset();
        self.epochs.truncate_from_end(log_end_offset);
        let surviving_end = log_end_offset.max(self.log_start_offset);
        if self.segments.is_empty() || log_end_offset < self.log_start_offset {
            plan = self.restart_at_log_start(now, &recovery);
            log_end_offset = self.log_start_offset;
            // The batches up to the log start are gone, and with them which epoch wrote last.
            self.epochs.clear();
        }
        if self.log_start_offset < self.segments.keys().next().copied().unwrap_or(0) {
            self.log_start_offset = *self.segments.keys().next().expect("not empty");
        }
        self.epochs.truncate_from_start(self.log_start_offset);
        if let Some(epoch) = self.epoch_to_assign.take() {
            self.epochs.assign(epoch, log_end_offset);
        }
        self.durable_offset = recovery_point.clamp(self.log_start_offset, log_end_offset);
        self.recovery_point = self.durable_offset;
        for segment in self.segments.values_mut() {
            segment.dirty = segment.next_offset > self.durable_offset && segment.size > 0;
        }
        // After a process crash the page cache may hold a truncation of the active segment that
        // never reached the disk; its data is below the recovery point, so only a sync of the
        // file makes the shorter length durable. Without it a later power loss brings the
        // truncated batches back.
        let active = self.segments.keys().next_back().copied();
        if let Some(active) = active.filter(|b| recovery.files.iter().any(|(f, _)| f == b)) {
            self.segments.get_mut(&active).expect("listed above").dirty = true;
        }
        // Offsets below the log start were deleted on purpose; only the rest counts as lost.
        let lost = (surviving_end < recovery_point).then_some((surviving_end, recovery_point));
        let report = RecoveryReport {
            log_start_offset: self.log_start_offset,
            log_end_offset,
            recovery_point,
            cut: recovery.cut,
            durable_data_lost: lost,
            checkpoint_lost: recovery.checkpoint_files > 0 && checkpoint.is_none(),
            checkpoint_damaged: recovery.checkpoint_unreadable > 0,
        };
        if let Some(plan) = plan {
            // Lower the recovery point durably before cutting, as any truncation does.
            self.truncation_in_progress = true;
            self.write_checkpoint(false, Some(plan));
        }
        self.outbox.push_back(LogOutput::Recovered(report));
        // Whatever survived may sit only in the page cache of a crashed process: sync it and
        // write a checkpoint before claiming it durable.
        self.sync_requested = true;
        self.maybe_start_sync_round();
        self.arm_retention(now);
    }

    /// Applies the cut in memory and plans the file changes: truncate the cut segment, delete
    /// every segment file after it.
    fn plan_recovery_cut(&mut self, recovery: &Recovery) -> Option<CutPlan> {
        let cut = recovery.cut.as_ref()?;
        let file_len = recovery
            .files
            .iter()
            .find(|(b, _)| *b == cut.segment)
            .map_or(0, |f| f.1);
        if let Some(segment) = self.segments.get_mut(&cut.segment) {
            segment.truncate(cut.offset, cut.position);
            segment.dirty = true;
        }
        let delete: Vec<i64> = recovery
            .files
            .iter()
            .map(|(b, _)| *b)
            .filter(|b| *b > cut.segment)
            .collect();
        for base in &delete {
            self.segments.remove(base);
        }
        Some(CutPlan {
            offset: cut.offset,
            segment: cut.segment,
            position: cut.position,
            create_file: false,
            truncate_file: cut.position < file_len,
            delete,
        })
    }

    /// The surviving data ends below the log start offset (an unsynced tail was lost after
    /// records were deleted, or damage cut below it): the log continues empty from the log
    /// start offset, so no offset is ever handed out twice. The empty segment file at the log
    /// start is made durable before the checkpoint is written and the old files are deleted:
    /// it anchors the log, so a crash halfway through cannot bring the old segments back.
    fn restart_at_log_start(&mut self, now: Instant, recovery: &Recovery) -> Option<CutPlan> {
        self.segments.clear();
        let start = self.log_start_offset;
        let segment = Segment::new(start, now, self.config.index_interval_bytes);
        self.segments.insert(start, segment);
        let file = self.segment_path(start);
        let anchor = if recovery.files.iter().any(|(b, _)| *b == start) {
            DiskOp::Truncate {
                file: file.clone(),
                len: 0,
            }
        } else {
            DiskOp::Write {
                file: file.clone(),
                position: 0,
                bytes: bytes::Bytes::new(),
            }
        };
        let pending = Pending::Truncate {
            offset: start,
            final_step: false,
        };
        self.emit_disk(anchor, pending.clone());
        self.emit_disk(DiskOp::Sync { file }, pending);
        let delete: Vec<i64> = recovery
            .files
            .iter()
            .map(|(b, _)| *b)
            .filter(|b| *b != start)
            .collect();
        Some(CutPlan {
            offset: start,
            segment: start,
            position: 0,
            create_file: false,
            truncate_file: false,
            delete,
        })
    }
}

/// Framing check minus the CRC: what recovery does with the `recovery-skips-crc` canary on.
fn check_framing_without_crc(bytes: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = BatchHeader::parse(bytes)?;
    if header.batch_length
        < (record_batch::BATCH_HEADER_LEN - record_batch::BATCH_LENGTH_PREFIX) as i32
    {
        return Err(BatchError::InvalidLength(header.batch_length));
    }
    if (bytes.len() as u64) < header.size() {
        return Err(BatchError::Truncated {
            needed: header.size(),
            available: bytes.len() as u64,
        });
    }
    if header.magic != record_batch::MAGIC_V2 {
        return Err(BatchError::UnsupportedMagic(header.magic));
    }
    Ok(header)
}
