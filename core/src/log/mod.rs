//! The partition log as a sans-IO state machine.
//!
//! A log is a directory of segment files named by base offset, each a run of Kafka v2 record
//! batches stored exactly as they go on the wire, plus a two-slot checkpoint (see
//! [`checkpoint`]). Every file access is a [`DiskRequest`] output; the log advances only on the
//! matching completion, so the simulator can tear, lose, corrupt or delay any of them.
//!
//! Lifecycle:
//! - **Recovering**: a new log lists its directory, reads both checkpoint slots and scans every
//!   segment, verifying each batch's framing, CRC and offset continuity. It truncates at the
//!   first bad batch; if that cuts below the recovery point (data that was synced) it reports
//!   the loss. It then syncs what it kept, writes a fresh checkpoint and only then serves.
//! - **Ready**: appends assign offsets (rewriting the base offset and leader epoch, both outside
//!   the CRC) and write at the end of the active segment, rolling by size and age. Syncs are
//!   rounds: sync every dirty segment, then write and sync a checkpoint whose recovery point is
//!   the log end offset captured when the round began; only then is that offset *durable*.
//!   With [`SyncPolicy::GroupCommit`] a round starts whenever data is unsynced and none is
//!   running, so concurrent appends share one fsync.
//! - **Faulted**: any failed write, sync, truncate or delete means the on-disk state is unknown
//!   (after a failed fsync the page cache cannot be trusted), so the log refuses everything;
//!   the owner must recover it anew, as Kafka takes a failed log directory offline.

mod append;
pub mod checkpoint;
pub mod epoch_cache;
mod read;
mod recovery;
pub mod segment;

use crate::canary::Canaries;
use crate::constants::*;
use crate::io::{DiskCompletion, DiskError, DiskOp, DiskOutcome, DiskRequest, DiskRequestId};
use crate::record_batch::{BatchError, BatchLimits};
use crate::time::{Duration, Instant};
use crate::timer::{TimerKind, TimerTable};
use bytes::Bytes;
use checkpoint::Checkpoint;
use epoch_cache::EpochCache;
use segment::Segment;
use std::collections::{BTreeMap, VecDeque};

pub use read::ReadResult;
pub use recovery::RecoveryReport;

/// Identifies a client operation (an append or a read) so its result can be matched.
pub type RequestId = u64;

/// When the log syncs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncPolicy {
    /// Start a sync round whenever data is unsynced and no round runs (fsync before ack,
    /// shared by every append that arrived meanwhile).
    GroupCommit,
    /// Sync only on [`LogInput::Sync`].
    Explicit,
}

/// A log's configuration.
#[derive(Clone, Debug)]
pub struct LogConfig {
    /// Directory of the log, relative to the data directory (e.g. `orders-0`).
    pub dir: String,
    /// Largest batch accepted and most records in one.
    pub batch_limits: BatchLimits,
    /// Roll the active segment before it would exceed this size (`segment.bytes`).
    pub segment_bytes_max: u64,
    /// Roll the active segment once it is this old (`segment.ms`).
    pub segment_age_max: Duration,
    /// Bytes between sparse index entries (`index.interval.bytes`).
    pub index_interval_bytes: u64,
    /// Delete the oldest segments while the log is larger than this (`retention.bytes`).
    pub retention_bytes: Option<u64>,
    /// Delete segments whose newest timestamp is older than this (`retention.ms`).
    pub retention_time: Option<Duration>,
    /// How often retention is checked.
    pub retention_check_interval: Duration,
    /// When to sync.
    pub sync_policy: SyncPolicy,
    /// Planted bugs switched on (only with the `canary` feature).
    pub canaries: Canaries,
}

impl LogConfig {
    /// Kafka's defaults for a log in `dir`.
    pub fn new(dir: impl Into<String>) -> LogConfig {
        LogConfig {
            dir: dir.into(),
            batch_limits: BatchLimits {
                batch_bytes_max: BATCH_BYTES_MAX_DEFAULT,
                records_count_max: BATCH_RECORDS_MAX,
            },
            segment_bytes_max: SEGMENT_BYTES_MAX_DEFAULT,
            segment_age_max: Duration::from_millis(SEGMENT_AGE_MAX_MS_DEFAULT),
            index_interval_bytes: INDEX_INTERVAL_BYTES_DEFAULT,
            retention_bytes: None,
            retention_time: None,
            retention_check_interval: Duration::from_millis(RETENTION_CHECK_INTERVAL_MS_DEFAULT),
            sync_policy: SyncPolicy::GroupCommit,
            canaries: Canaries::NONE,
        }
    }
}

/// What the log is asked to do, or told has happened.
#[derive(Clone, Debug)]
pub enum LogInput {
    /// A disk request finished.
    Disk(DiskCompletion),
    /// Append one producer batch; the log assigns its offsets.
    Append {
        /// Echoed in the result.
        request: RequestId,
        /// Exactly one v2 batch.
        batch: Bytes,
        /// Stamped into the batch's partition leader epoch.
        leader_epoch: i32,
    },
    /// Append batches fetched from the partition leader, as a follower does: one or more
    /// whole v2 batches whose offsets and partition leader epochs the leader assigned. They are
    /// stored byte for byte; the first must start at the log end offset and each next one right
    /// after its predecessor. All are checked before any is written.
    AppendReplica {
        /// Echoed in the result.
        request: RequestId,
        /// Whole batches laid end to end, as a fetch response carries them.
        batches: Bytes,
    },
    /// Read whole batches from `offset`.
    Read {
        /// Echoed in the result.
        request: RequestId,
        /// First offset wanted.
        offset: i64,
        /// Byte budget; at least one batch is returned even if larger, as Kafka does.
        bytes_max: u32,
        /// Serve no batch that starts at or above this offset (the high watermark).
        offset_max: i64,
    },
    /// Find the first record whose timestamp is at or after `timestamp` (ListOffsets by time).
    OffsetForTimestamp {
        /// Echoed in the result.
        request: RequestId,
        /// Target timestamp in milliseconds.
        timestamp: i64,
    },
    /// Start a sync round (the only way to sync under [`SyncPolicy::Explicit`]).
    Sync,
    /// Remove every batch at or above `offset` (a follower diverged from its leader).
    TruncateTo {
        /// New log end offset; must be a batch boundary.
        offset: i64,
    },
    /// Discard every segment and continue empty at `offset`, which becomes the log start
    /// offset (Kafka's truncate-fully-and-start-at: a follower whose fetch offset fell below
    /// the leader's log start). Reported with [`LogOutput::Truncated`] once durable.
    TruncateFullyAndStartAt {
        /// The new log start and log end offset.
        offset: i64,
    },
    /// Advance the log start offset to `offset` and drop whole segments below it.
    DeleteBefore {
        /// New log start offset (at most the log end offset).
        offset: i64,
    },
    /// A deadline from [`Log::poll_timeout`] passed.
    Timeout,
}

/// Why an append was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AppendError {
    /// The batch is malformed (maps to CORRUPT_MESSAGE, INVALID_RECORD or MESSAGE_TOO_LARGE).
    InvalidBatch(BatchError),
    /// The log is still recovering.
    NotReady,
    /// The log's storage failed (KAFKA_STORAGE_ERROR).
    Storage,
    /// Too many appends are waiting for their writes; retry later.
    Overloaded,
    /// The offset would not fit in an i64 or the segment limit is reached.
    LogFull,
    /// A replica append does not continue the log: its first batch must start at the log end
    /// offset, and each later batch right after the one before.
    OffsetMismatch {
        /// The offset the batch had to start at.
        expected: i64,
        /// The batch's base offset.
        found: i64,
    },
}

/// Why a read failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadError {
    /// The offset is below the log start or above the log end (OFFSET_OUT_OF_RANGE).
    OffsetOutOfRange {
        /// Current log start offset.
        log_start_offset: i64,
        /// Current log end offset.
        log_end_offset: i64,
    },
    /// Stored bytes failed their check; the log reports rather than serves them.
    Corrupt {
        /// The offset being read.
        offset: i64,
        /// What failed.
        error: BatchError,
    },
    /// The log is still recovering.
    NotReady,
    /// The disk failed the read (KAFKA_STORAGE_ERROR).
    Storage,
    /// Too many reads in flight; retry later.
    Overloaded,
}

/// Why the log stopped serving.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultReason {
    /// A write, sync, truncate or delete failed.
    Disk(DiskError),
    /// A disk completion did not match what was asked (a driver bug).
    UnexpectedCompletion,
    /// Stored bytes at `offset` failed their check when read (reported by the log's owner,
    /// which takes the partition offline as Kafka takes a log directory offline).
    Corrupt {
        /// The offset being read.
        offset: i64,
    },
}

/// What the log tells its owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogOutput {
    /// Execute this disk request and hand back its completion.
    Disk(DiskRequest),
    /// Recovery finished; the log now serves.
    Recovered(RecoveryReport),
    /// The batch is written (not yet durable) at these offsets.
    Appended {
        /// The append's id.
        request: RequestId,
        /// Offset of its first record.
        base_offset: i64,
        /// Offset of its last record.
        last_offset: i64,
    },
    /// The append was refused; nothing was written.
    AppendFailed {
        /// The append's id.
        request: RequestId,
        /// Why.
        error: AppendError,
    },
    /// A read finished.
    ReadDone {
        /// The read's id.
        request: RequestId,
        /// Batches or an error.
        result: Result<ReadResult, ReadError>,
    },
    /// A timestamp lookup finished: the offset and timestamp of the first record at or after
    /// the target, or `None` when no record is that recent.
    OffsetForTimestamp {
        /// The lookup's id.
        request: RequestId,
        /// The record found, or an error.
        result: Result<Option<(i64, i64)>, ReadError>,
    },
    /// Every batch below `offset` is durable.
    Durable {
        /// The new durable offset.
        offset: i64,
    },
    /// A truncation to `offset` is durable.
    Truncated {
        /// The log end offset after truncation.
        offset: i64,
    },
    /// The log refuses all work from now on.
    Faulted(FaultReason),
}

/// The log's timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogTimer {
    /// Time to apply retention.
    RetentionCheck,
}

impl TimerKind for LogTimer {
    const COUNT: usize = 1;
    fn index(self) -> usize {
        0
    }
    fn from_index(index: usize) -> LogTimer {
        assert_eq!(index, 0);
        LogTimer::RetentionCheck
    }
}

/// What a disk request in flight is for.
#[derive(Clone, Debug)]
enum Pending {
    Recovery(recovery::Step),
    AppendWrite {
        request: RequestId,
        base_offset: i64,
        last_offset: i64,
    },
    /// A write of a replica append that spans segments, other than its last one. Requests run
    /// in order, so the last write's completion answers for the whole append.
    AppendPart,
    SegmentSync,
    CheckpointWrite,
    CheckpointSync {
        round: bool,
        cut: Option<Box<CutPlan>>,
    },
    Read(read::ReadState),
    Truncate {
        offset: i64,
        final_step: bool,
    },
    Delete,
}

/// File changes of a truncation, made only once a checkpoint with the lowered recovery point
/// is durable, so no crash or failed write can leave a recovery point above the data.
#[derive(Clone, Debug)]
pub(super) struct CutPlan {
    /// New log end offset.
    pub(super) offset: i64,
    /// Segment to cut (after a restart at the log start: the new, empty one).
    pub(super) segment: i64,
    /// File position of the cut.
    pub(super) position: u64,
    /// Whether the file may not exist yet and must be created (by an empty write) first.
    pub(super) create_file: bool,
    /// Whether the file is longer than `position` and needs the truncate.
    pub(super) truncate_file: bool,
    /// Later segments to delete.
    pub(super) delete: Vec<i64>,
}

/// A truncation waiting for the one in progress to finish.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum QueuedTruncation {
    /// [`LogInput::TruncateTo`]; later ones merge into the lowest offset.
    To(i64),
    /// [`LogInput::TruncateFullyAndStartAt`]; it discards everything, so it supersedes any
    /// truncation queued before or after it.
    Fully {
        /// The new log start offset.
        offset: i64,
        /// When it was asked for (the new segment's age counts from then).
        requested: Instant,
    },
}

#[derive(Clone, Debug)]
enum State {
    Recovering(Box<recovery::Recovery>),
    Ready,
    Faulted(FaultReason),
}

#[derive(Clone, Copy, Debug)]
struct SyncRound {
    /// Recovery point the round will make durable.
    target: i64,
    /// Segment syncs still outstanding; the checkpoint goes out when this reaches zero.
    segment_syncs: u32,
}

/// A partition log. See the module documentation.
#[derive(Debug)]
pub struct Log {
    config: LogConfig,
    state: State,
    segments: BTreeMap<i64, Segment>,
    log_start_offset: i64,
    durable_offset: i64,
    /// Every batch below this is synced (its segment syncs completed), though the checkpoint
    /// saying so may still be in flight. Every checkpoint written carries it, so a checkpoint
    /// written for another reason never claims less than one written just before it.
    recovery_point: i64,
    checkpoint_sequence: u64,
    sync_round: Option<SyncRound>,
    sync_requested: bool,
    next_disk_id: DiskRequestId,
    pending: BTreeMap<DiskRequestId, Pending>,
    appends_in_flight: usize,
    reads_in_flight: usize,
    truncation_in_progress: bool,
    truncation_queued: Option<QueuedTruncation>,
    /// Where each leader epoch's batches start (see [`epoch_cache`]).
    epochs: EpochCache,
    /// An epoch a new leader recorded while the log was recovering, assigned at the recovered
    /// log end offset.
    epoch_to_assign: Option<i32>,
    timers: TimerTable<LogTimer>,
    outbox: VecDeque<LogOutput>,
}

impl Log {
    /// Opens the log in `config.dir`: starts recovery, which runs through disk outputs.
    ///
    /// `now` keeps the constructor shape every state machine shares; the log has no timer to
    /// arm before recovery ends, which takes its time from the completions it handles.
    pub fn open(config: LogConfig, _now: Instant) -> Log {
        assert!(config.segment_bytes_max >= config.batch_limits.batch_bytes_max);
        assert!(config.batch_limits.batch_bytes_max <= BATCH_BYTES_MAX_LIMIT);
        let mut log = Log {
            config,
            state: State::Ready,
            segments: BTreeMap::new(),
            log_start_offset: 0,
            durable_offset: 0,
            recovery_point: 0,
            checkpoint_sequence: 0,
            sync_round: None,
            sync_requested: false,
            next_disk_id: 1,
            pending: BTreeMap::new(),
            appends_in_flight: 0,
            reads_in_flight: 0,
            truncation_in_progress: false,
            truncation_queued: None,
            epochs: EpochCache::default(),
            epoch_to_assign: None,
            timers: TimerTable::default(),
            outbox: VecDeque::new(),
        };
        log.start_recovery();
        log
    }

    /// Feeds one input. The owner must have drained [`Log::poll_output`] first.
    pub fn handle(&mut self, now: Instant, input: LogInput) {
        assert!(
            self.outbox.is_empty(),
            "the driver drains outputs before the next input"
        );
        match input {
            LogInput::Disk(completion) => self.on_disk_completion(now, completion),
            LogInput::Append {
                request,
                batch,
                leader_epoch,
            } => self.on_append(now, request, batch, leader_epoch),
            LogInput::AppendReplica { request, batches } => {
                self.on_append_replica(now, request, batches)
            }
            LogInput::Read {
                request,
                offset,
                bytes_max,
                offset_max,
            } => self.on_read(request, offset, bytes_max, offset_max),
            LogInput::OffsetForTimestamp { request, timestamp } => {
                self.on_offset_for_timestamp(request, timestamp)
            }
            LogInput::Sync => {
                self.sync_requested = true;
                self.maybe_start_sync_round();
            }
            LogInput::TruncateTo { offset } => self.on_truncate_to(offset),
            LogInput::TruncateFullyAndStartAt { offset } => self.on_truncate_fully(now, offset),
            LogInput::DeleteBefore { offset } => self.on_delete_before(offset),
            LogInput::Timeout => self.on_timeout(now),
        }
        self.invariants();
    }

    /// The next output, if any.
    pub fn poll_output(&mut self) -> Option<LogOutput> {
        self.outbox.pop_front()
    }

    /// When to deliver [`LogInput::Timeout`] next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next_deadline()
    }

    /// Offset the next append will get.
    pub fn log_end_offset(&self) -> i64 {
        self.segments
            .values()
            .next_back()
            .map_or(self.log_start_offset, |s| s.next_offset)
    }

    /// Every batch below this offset is durable.
    pub fn durable_offset(&self) -> i64 {
        self.durable_offset
    }

    /// The first offset still in the log.
    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }

    /// True once recovery finished and while no fault occurred.
    pub fn is_ready(&self) -> bool {
        matches!(self.state, State::Ready)
    }

    /// True after a storage fault.
    pub fn is_faulted(&self) -> bool {
        matches!(self.state, State::Faulted(_))
    }

    /// True while a truncation is locating its cut or waiting behind another.
    pub fn is_truncating(&self) -> bool {
        self.truncation_in_progress || self.truncation_queued.is_some()
    }

    /// Why the log faulted, if it did.
    pub fn fault_reason(&self) -> Option<FaultReason> {
        match self.state {
            State::Faulted(reason) => Some(reason),
            _ => None,
        }
    }

    /// Number of segments.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Total bytes of batches across segments.
    pub fn size_bytes(&self) -> u64 {
        self.segments.values().map(|s| s.size).sum()
    }

    /// A new leader records `epoch` as starting at the log end offset, before it appends (Kafka
    /// assigns the leader epoch on becoming leader). An epoch not above the latest removes the
    /// entries it contradicts. While the log recovers the assignment waits for the recovered
    /// log end offset; a faulted log ignores it (its owner recovers it anew).
    pub fn assign_epoch(&mut self, epoch: i32) {
        assert!(epoch >= 0, "leader epochs are non-negative");
        match self.state {
            State::Ready => {
                let log_end_offset = self.log_end_offset();
                self.epochs.assign(epoch, log_end_offset);
                self.invariants();
            }
            State::Recovering(_) => self.epoch_to_assign = Some(epoch),
            State::Faulted(_) => {}
        }
    }

    /// Forgets the epochs that start at or after `offset`. A follower calls it with its log end
    /// offset: an epoch it assigned when it last led, with no batch written in it, would make
    /// it report a last epoch its log does not hold.
    pub fn forget_epochs_from(&mut self, offset: i64) {
        if let State::Ready = self.state {
            self.epochs.truncate_from_end(offset);
        }
    }

    /// The newest leader epoch in the epoch cache.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.epochs.latest_epoch()
    }

    /// OffsetForLeaderEpoch: the largest epoch at or below `epoch` and the offset where it
    /// ends, which is the start of the next epoch, or the log end offset for the latest.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        self.epochs.end_offset_for(epoch, self.log_end_offset())
    }

    /// The epoch cache's `(epoch, start_offset)` entries, oldest first.
    pub fn epoch_entries(&self) -> &[(i32, i64)] {
        self.epochs.entries()
    }

    fn invariants(&self) {
        if !self.is_ready() {
            return;
        }
        let log_end_offset = self.log_end_offset();
        assert!(
            self.log_start_offset <= log_end_offset,
            "log start above log end"
        );
        assert!(
            self.durable_offset <= log_end_offset,
            "durable offset above log end"
        );
        assert!(self.appends_in_flight <= LOG_APPENDS_IN_FLIGHT_MAX);
        assert!(self.reads_in_flight <= LOG_READS_IN_FLIGHT_MAX);
        let entries = self.epochs.entries();
        assert!(
            entries.last().is_none_or(|(_, s)| *s <= log_end_offset)
                && entries
                    .first()
                    .is_none_or(|(_, s)| *s >= self.log_start_offset),
            "epoch entries {entries:?} outside [{}, {log_end_offset}]",
            self.log_start_offset
        );
        debug_assert!(self
            .segments
            .values()
            .zip(self.segments.values().skip(1))
            .all(|(a, b)| a.next_offset == b.base_offset));
    }

    fn path(&self, name: &str) -> String {
        format!("{}/{}", self.config.dir, name)
    }

    fn segment_path(&self, base_offset: i64) -> String {
        self.path(&Segment::file_name(base_offset))
    }

    fn emit_disk(&mut self, op: DiskOp, pending: Pending) -> DiskRequestId {
        let id = self.next_disk_id;
        self.next_disk_id += 1;
        self.pending.insert(id, pending);
        self.outbox
            .push_back(LogOutput::Disk(DiskRequest { id, op }));
        id
    }

    fn fault(&mut self, reason: FaultReason) {
        if self.is_faulted() {
            return;
        }
        self.state = State::Faulted(reason);
        self.sync_round = None;
        self.timers.stop(LogTimer::RetentionCheck);
        self.outbox.push_back(LogOutput::Faulted(reason));
    }

    fn on_disk_completion(&mut self, now: Instant, completion: DiskCompletion) {
        let Some(pending) = self.pending.remove(&completion.id) else {
            return self.fault(FaultReason::UnexpectedCompletion);
        };
        match pending {
            Pending::Recovery(step) => self.on_recovery_completion(now, step, completion.result),
            Pending::Read(state) => self.on_read_completion(state, completion.result),
            Pending::AppendWrite {
                request,
                base_offset,
                last_offset,
            } => {
                self.appends_in_flight -= 1;
                match completion.result {
                    Ok(_) if !self.is_faulted() => self.outbox.push_back(LogOutput::Appended {
                        request,
                        base_offset,
                        last_offset,
                    }),
                    Ok(_) => self.fail_append(request, AppendError::Storage),
                    Err(e) => {
                        self.fault(FaultReason::Disk(e));
                        self.fail_append(request, AppendError::Storage);
                    }
                }
            }
            other => self.on_maintenance_completion(other, completion.result),
        }
    }

    fn on_maintenance_completion(
        &mut self,
        pending: Pending,
        result: Result<DiskOutcome, DiskError>,
    ) {
        if let Err(e) = result {
            return self.fault(FaultReason::Disk(e));
        }
        if self.is_faulted() {
            return;
        }
        match pending {
            Pending::SegmentSync => self.on_segment_synced(),
            Pending::CheckpointSync { round: true, .. } => self.on_round_complete(),
            Pending::CheckpointSync {
                round: false,
                cut: Some(plan),
            } => self.apply_cut_plan(*plan),
            Pending::Truncate {
                offset,
                final_step: true,
            } => self.outbox.push_back(LogOutput::Truncated { offset }),
            Pending::CheckpointWrite
            | Pending::CheckpointSync {
                round: false,
                cut: None,
            }
            | Pending::Truncate {
                final_step: false, ..
            }
            | Pending::Delete => {}
            Pending::AppendPart => {}
            Pending::Recovery(_) | Pending::Read(_) | Pending::AppendWrite { .. } => {
                unreachable!("handled by on_disk_completion")
            }
        }
    }

    fn maybe_start_sync_round(&mut self) {
        if !self.is_ready() || self.sync_round.is_some() {
            return;
        }
        let wanted = self.sync_requested || self.config.sync_policy == SyncPolicy::GroupCommit;
        let target = self.log_end_offset();
        if !wanted || (target == self.durable_offset && !self.sync_requested) {
            return;
        }
        self.sync_requested = false;
        let dirty: Vec<i64> = self
            .segments
            .values()
            .filter(|s| s.dirty)
            .map(|s| s.base_offset)
            .collect();
        self.sync_round = Some(SyncRound {
            target,
            segment_syncs: dirty.len() as u32,
        });
        for base in dirty {
            self.segments.get_mut(&base).expect("listed above").dirty = false;
            let file = self.segment_path(base);
            self.emit_disk(DiskOp::Sync { file }, Pending::SegmentSync);
        }
        if self.sync_round.is_some_and(|r| r.segment_syncs == 0) {
            self.write_round_checkpoint();
        }
    }

    fn on_segment_synced(&mut self) {
        let Some(round) = self.sync_round.as_mut() else {
            return;
        };
        assert!(round.segment_syncs > 0);
        round.segment_syncs -= 1;
        if round.segment_syncs == 0 {
            self.write_round_checkpoint();
        }
    }

    fn write_round_checkpoint(&mut self) {
        let round = self.sync_round.expect("a round is running");
        self.recovery_point = self.recovery_point.max(round.target);
        self.write_checkpoint(true, None);
    }

    /// Writes and syncs the next checkpoint slot; once it is durable, applies `cut`.
    ///
    /// A checkpoint for a cut lowers the recovery point, and it goes to both slots before the
    /// files change: otherwise the other slot keeps the higher recovery point, and once a
    /// later write of this slot fails or is torn (requests queued behind a failed one still
    /// run), recovery falls back to it and reports as lost the data the cut removed.
    fn write_checkpoint(&mut self, round: bool, cut: Option<CutPlan>) {
        if cut.is_some() {
            self.emit_checkpoint(Pending::CheckpointSync {
                round: false,
                cut: None,
            });
        }
        let cut = cut.map(Box::new);
        self.emit_checkpoint(Pending::CheckpointSync { round, cut });
    }

    /// Writes the current state to the next checkpoint slot and syncs it.
    fn emit_checkpoint(&mut self, synced: Pending) {
        assert!(matches!(synced, Pending::CheckpointSync { .. }));
        self.checkpoint_sequence += 1;
        let checkpoint = Checkpoint {
            sequence: self.checkpoint_sequence,
            recovery_point: self.recovery_point,
            log_start_offset: self.log_start_offset,
        };
        let file = self.path(checkpoint.slot());
        let bytes = Bytes::copy_from_slice(&checkpoint.encode());
        self.emit_disk(
            DiskOp::Write {
                file: file.clone(),
                position: 0,
                bytes,
            },
            Pending::CheckpointWrite,
        );
        self.emit_disk(DiskOp::Sync { file }, synced);
    }

    fn on_round_complete(&mut self) {
        let round = self.sync_round.take().expect("a round is running");
        let target = round.target.min(self.log_end_offset());
        if target > self.durable_offset {
            self.durable_offset = target;
            self.outbox.push_back(LogOutput::Durable { offset: target });
        }
        self.maybe_start_sync_round();
    }

    fn on_truncate_to(&mut self, offset: i64) {
        if !self.is_ready() {
            return;
        }
        let log_end_offset = self.log_end_offset();
        if offset >= log_end_offset {
            // No batch to cut, but an epoch recorded at the log end by a leader that wrote
            // nothing contradicts the leader now followed; Kafka drops it here too.
            self.epochs.truncate_from_end(log_end_offset);
            return;
        }
        if self.truncation_in_progress {
            self.truncation_queued = Some(match self.truncation_queued {
                Some(QueuedTruncation::To(queued)) => QueuedTruncation::To(queued.min(offset)),
                Some(fully @ QueuedTruncation::Fully { .. }) => fully,
                None => QueuedTruncation::To(offset),
            });
            return;
        }
        let offset = offset.max(self.log_start_offset);
        self.truncation_in_progress = true;
        if let Some(position) = self.indexed_position(offset) {
            return self.truncate_at(offset, position);
        }
        // The sparse index does not know where this batch starts: read from the nearest entry.
        self.locate_for_truncation(offset);
    }

    /// The position of `offset` if it starts a segment or has its own index entry.
    fn indexed_position(&self, offset: i64) -> Option<u64> {
        let segment = self.segments.range(..=offset).next_back()?.1;
        let (indexed, position) = segment.lookup_offset(offset);
        (indexed == offset).then_some(position)
    }

    pub(super) fn on_truncation_located(
        &mut self,
        segment: i64,
        cut: Option<(i64, u64)>,
        failed: bool,
    ) {
        if !self.is_ready() {
            return;
        }
        if failed && cut.is_none() {
            // The disk would not say where the batch starts. Dropping the truncation would
            // leave divergent data in place, so stop and let the owner recover the log.
            return self.fault(FaultReason::Disk(DiskError::Io));
        }
        let holder = |offset: i64| self.segments.range(..=offset).next_back().map(|(b, _)| *b);
        match cut {
            Some((offset, position)) if holder(offset) == Some(segment) => {
                self.truncate_at(offset, position)
            }
            _ => {
                // Nothing at or after the offset any more: an earlier truncation already cut it.
                self.truncation_in_progress = false;
                self.run_queued_truncation();
            }
        }
    }

    fn run_queued_truncation(&mut self) {
        match self.truncation_queued.take() {
            Some(QueuedTruncation::To(offset)) => self.on_truncate_to(offset),
            Some(QueuedTruncation::Fully { offset, requested }) => {
                self.on_truncate_fully(requested, offset)
            }
            None => {}
        }
    }

    /// Discards every segment and continues empty at `offset`. Memory changes now; a
    /// checkpoint with log start and recovery point `offset` becomes durable before any file
    /// changes, so a crash in between recovers either the old log (before the checkpoint) or
    /// one that starts at `offset`, where batches left at or above it were never claimed
    /// durable. Then the segment file at `offset` is created empty (it anchors the log, as in
    /// recovery's restart at the log start) and every other one deleted.
    fn on_truncate_fully(&mut self, now: Instant, offset: i64) {
        if !self.is_ready() || offset < 0 {
            return;
        }
        if self.truncation_in_progress {
            let requested = now;
            self.truncation_queued = Some(QueuedTruncation::Fully { offset, requested });
            return;
        }
        self.truncation_in_progress = true;
        let delete: Vec<i64> = self
            .segments
            .keys()
            .copied()
            .filter(|b| *b != offset)
            .collect();
        self.segments.clear();
        let segment = Segment::new(offset, now, self.config.index_interval_bytes);
        self.segments.insert(offset, segment);
        self.log_start_offset = offset;
        self.recovery_point = offset;
        self.durable_offset = self.durable_offset.min(offset);
        if let Some(round) = self.sync_round.as_mut() {
            round.target = round.target.min(offset);
        }
        self.epochs.clear();
        let plan = CutPlan {
            offset,
            segment: offset,
            position: 0,
            create_file: true,
            truncate_file: true,
            delete,
        };
        self.write_checkpoint(false, Some(plan));
        // An empty log at `offset` is durable once that checkpoint is: say so through a round.
        self.maybe_start_sync_round();
    }

    /// Cuts the log at `offset`, the start of a batch at `position` in its segment. Memory
    /// changes now; the files change once the lowered checkpoint is durable, and appends wait
    /// (refused as not ready) until then so none lands in the doomed region.
    fn truncate_at(&mut self, offset: i64, position: u64) {
        // The batch holding the log start offset may begin below it; cutting that batch empties
        // the log, which then starts at the cut (Kafka's truncate-fully-and-start-at).
        self.log_start_offset = self.log_start_offset.min(offset);
        self.durable_offset = self.durable_offset.min(offset);
        self.recovery_point = self.recovery_point.min(offset);
        if let Some(round) = self.sync_round.as_mut() {
            round.target = round.target.min(offset);
        }
        self.epochs.truncate_from_end(offset);
        let delete: Vec<i64> = self.segments.range(offset + 1..).map(|(b, _)| *b).collect();
        for base in &delete {
            self.segments.remove(base);
        }
        let (&segment, seg) = self
            .segments
            .range_mut(..=offset)
            .next_back()
            .expect("in range");
        seg.truncate(offset, position);
        let plan = CutPlan {
            offset,
            segment,
            position,
            create_file: false,
            truncate_file: true,
            delete,
        };
        self.write_checkpoint(false, Some(plan));
    }

    /// The lowered checkpoint is durable: now cut the files.
    fn apply_cut_plan(&mut self, plan: CutPlan) {
        let offset = plan.offset;
        let file = self.segment_path(plan.segment);
        let step = Pending::Truncate {
            offset,
            final_step: false,
        };
        if plan.create_file {
            // The empty segment at the new start anchors the log before any older file goes:
            // a crash halfway through recovers an empty log there, whatever files remain.
            let create = DiskOp::Write {
                file: file.clone(),
                position: 0,
                bytes: Bytes::new(),
            };
            self.emit_disk(create, step.clone());
            let len = plan.position;
            let truncate = DiskOp::Truncate {
                file: file.clone(),
                len,
            };
            self.emit_disk(truncate, step.clone());
            self.emit_disk(DiskOp::Sync { file: file.clone() }, step.clone());
        }
        for base in &plan.delete {
            let file = self.segment_path(*base);
            self.emit_disk(DiskOp::Delete { file }, Pending::Delete);
        }
        if plan.truncate_file && !plan.create_file {
            let len = plan.position;
            let truncate = DiskOp::Truncate {
                file: file.clone(),
                len,
            };
            self.emit_disk(truncate, step);
        }
        // Requests run in order, so this sync completes after every deletion above.
        self.emit_disk(
            DiskOp::Sync { file },
            Pending::Truncate {
                offset,
                final_step: true,
            },
        );
        self.truncation_in_progress = false;
        self.run_queued_truncation();
    }

    fn on_delete_before(&mut self, offset: i64) {
        if !self.is_ready() || offset <= self.log_start_offset {
            return;
        }
        self.log_start_offset = offset.min(self.log_end_offset());
        self.epochs.truncate_from_start(self.log_start_offset);
        self.write_checkpoint(false, None);
        self.delete_segments_below_log_start();
    }

    /// Deletes whole segments that end at or below the log start offset, never the active one.
    fn delete_segments_below_log_start(&mut self) {
        let active = *self
            .segments
            .keys()
            .next_back()
            .expect("a ready log has a segment");
        let doomed: Vec<i64> = self
            .segments
            .values()
            .filter(|s| s.base_offset != active && s.next_offset <= self.log_start_offset)
            .map(|s| s.base_offset)
            .collect();
        for base in doomed {
            self.segments.remove(&base);
            let file = self.segment_path(base);
            self.emit_disk(DiskOp::Delete { file }, Pending::Delete);
        }
    }

    fn on_timeout(&mut self, now: Instant) {
        while let Some(timer) = self.timers.pop_expired(now) {
            match timer {
                LogTimer::RetentionCheck => self.on_retention_check_timeout(now),
            }
        }
    }

    fn on_retention_check_timeout(&mut self, now: Instant) {
        self.timers.set(
            LogTimer::RetentionCheck,
            now + self.config.retention_check_interval,
        );
        if !self.is_ready() {
            return;
        }
        let now_ms = now.as_millis() as i64;
        let mut new_start = self.log_start_offset;
        let mut remaining = self.size_bytes();
        let active = *self
            .segments
            .keys()
            .next_back()
            .expect("a ready log has a segment");
        for segment in self.segments.values().filter(|s| s.base_offset != active) {
            let over_size = self
                .config
                .retention_bytes
                .is_some_and(|max| remaining > max);
            let expired = self.config.retention_time.is_some_and(|age| {
                segment.max_timestamp >= 0
                    && segment.max_timestamp.saturating_add(age.as_millis() as i64) < now_ms
            });
            if !over_size && !expired {
                break;
            }
            remaining -= segment.size;
            new_start = segment.next_offset;
        }
        if new_start > self.log_start_offset {
            self.on_delete_before(new_start);
        }
    }

    fn arm_retention(&mut self, now: Instant) {
        if self.config.retention_bytes.is_some() || self.config.retention_time.is_some() {
            self.timers.set(
                LogTimer::RetentionCheck,
                now + self.config.retention_check_interval,
            );
        }
    }
}

#[cfg(test)]
mod tests;
