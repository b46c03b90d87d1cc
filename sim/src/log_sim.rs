//! The single-node log simulation: one partition log on a faulty simulated disk, driven by a
//! random workload of appends, reads, syncs, truncations, log-start moves, crashes and bit rot,
//! checked against a model after every event.
//!
//! The workload also plays the follower side of replication: some appends are replica appends
//! (runs of batches whose offsets and leader epochs the sim assigned, stored as given), a new
//! leader now and then records a higher leader epoch, and the log is sometimes discarded and
//! restarted at another offset (truncate-fully).
//!
//! The model records every batch version ever written at each offset and the highest offset
//! the log claimed durable. The checks, each a sentence a user would care about:
//! - offsets the log assigns are dense and increasing;
//! - a read never returns a batch whose CRC fails, or bytes that were never written at that
//!   offset, and returns exactly the model's batch when no truncation raced it;
//! - after a restart every batch below the durable claim is there with identical bytes, unless
//!   the disk rotted synced data, in which case recovery must report the loss;
//! - recovery never reports a loss that no fault explains, and leaves a log that reads clean:
//!   a corruption error is only acceptable when the disk injected corruption since recovery;
//! - the leader epoch cache matches the epochs of the batches in the log: one entry where each
//!   epoch's first batch (or the log start) is, plus at most an epoch recorded at the log end
//!   by a leader that has not written yet.

use crate::disk::{DiskFaults, SimDisk};
use crate::params::LogSimParams;
use crate::trace::TraceHash;
use bytes::{Bytes, BytesMut};
use seedlog_core::io::{DiskCompletion, DiskOp, DiskRequest};
use seedlog_core::log::segment::Segment;
use seedlog_core::log::{
    AppendError, Log, LogConfig, LogInput, LogOutput, ReadError, ReadResult, RecoveryReport,
    RequestId,
};
use seedlog_core::record_batch::{self, BatchHeader, BatchSpec, NewRecord};
use seedlog_core::{Duration, Instant, Prng};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};

const DIR: &str = "topic-0";
/// Give up on a seed that has not finished after this many events (a liveness failure).
const EVENTS_MAX: u64 = 2_000_000;
/// Simulated time allowed for the final sync and recovery once faults stop.
const LIVENESS_BOUND: Duration = Duration::from_secs(60);
/// The leader epoch of the first leader; new leaders raise it.
const FIRST_LEADER_EPOCH: i32 = 7;

/// A broken promise found by the checker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Simulated time of the event that broke it.
    pub at: Instant,
    /// What broke.
    pub what: String,
}

/// The outcome of one seed.
#[derive(Clone, Debug)]
pub struct LogSimReport {
    /// The seed.
    pub seed: u64,
    /// Events processed.
    pub events: u64,
    /// Simulated time at the end.
    pub simulated: Duration,
    /// Crashes and restarts.
    pub restarts: u32,
    /// Batches acknowledged as written.
    pub appends_acked: u64,
    /// Reads answered.
    pub reads: u64,
    /// Hash of the whole event trace: the same seed and code give the same hash.
    pub trace_hash: u64,
    /// Broken promises, first first.
    pub violations: Vec<Violation>,
    /// The client history, on seeds that record one.
    pub history: Option<seedlog_jepsen::History>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Event {
    Disk {
        incarnation: u64,
        request: DiskRequest,
    },
    Workload,
    LogTimeout {
        incarnation: u64,
    },
    Restart,
}

#[derive(Debug, PartialEq, Eq)]
struct Scheduled {
    at: Instant,
    sequence: u64,
    event: Event,
}

impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.sequence).cmp(&(other.at, other.sequence))
    }
}

impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// What the model believes about the log.
#[derive(Clone, Debug, Default)]
struct Model {
    /// Every version of a batch ever written at a base offset.
    versions: BTreeMap<i64, Vec<Bytes>>,
    /// The log's content as far as the model knows it: base offset → stored bytes.
    current: BTreeMap<i64, Bytes>,
    end: i64,
    log_start: i64,
    /// Everything below this was claimed durable.
    durable: i64,
    /// The highest log end since the last restart.
    end_high: i64,
    /// The offset of the last truncate-fully issued, until the log reports it done.
    fully_pending: Option<i64>,
}

impl Model {
    fn batch_end(bytes: &[u8]) -> i64 {
        BatchHeader::parse(bytes).map_or(0, |h| h.next_offset())
    }

    /// Cuts at the start of the batch holding `offset`, as the log does.
    fn truncate(&mut self, offset: i64) {
        let cut = self
            .current
            .range(..=offset)
            .next_back()
            .filter(|(_, b)| Self::batch_end(b) > offset)
            .map_or(offset, |(base, _)| *base);
        let cut = cut.min(self.end);
        self.log_start = self.log_start.min(cut);
        self.current.retain(|base, _| *base < cut);
        self.end = cut;
        self.durable = self.durable.min(cut);
    }

    /// Discards everything and continues empty at `offset`, as the log does.
    fn truncate_fully(&mut self, offset: i64) {
        self.current.clear();
        (self.log_start, self.end) = (offset, offset);
        self.durable = self.durable.min(offset);
        self.end_high = self.end_high.max(offset);
        self.fully_pending = Some(offset);
    }
}

/// The epoch cache entries, log start and log end the cache was last checked at.
type EpochsChecked = (Vec<(i32, i64)>, i64, i64);

/// A timestamp lookup in flight: the target, the model's answer when it could tell one (an
/// offset and timestamp, or none), and the truncation count when issued.
type PendingLookup = (i64, Option<Option<(i64, i64)>>, u64);

#[derive(Clone, Debug)]
struct PendingRead {
    offset: i64,
    issued: Instant,
    truncations: u64,
    verify: bool,
}

/// Recovery verification: read the whole log back before the workload resumes.
#[derive(Clone, Debug)]
struct Verify {
    log_start_before: i64,
    next: i64,
    end: i64,
    durable_before: i64,
    current_before: BTreeMap<i64, Bytes>,
    rebuilt: BTreeMap<i64, Bytes>,
    retries: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Workload,
    /// Faults off: sync everything, then restart and verify.
    FinalSync,
    FinalRestart,
    Done,
}

/// One seed's simulation.
pub struct LogSim {
    params: LogSimParams,
    prng: Prng,
    now: Instant,
    sequence: u64,
    queue: BinaryHeap<Reverse<Scheduled>>,
    disk: SimDisk,
    disk_free_at: Instant,
    faults: DiskFaults,
    log: Log,
    incarnation: u64,
    recovering: bool,
    recovery_started: Instant,
    last_recovery_done: Instant,
    verify: Option<Verify>,
    restart_scheduled: bool,
    model: Model,
    pending_appends: BTreeMap<RequestId, i64>,
    pending_reads: BTreeMap<RequestId, PendingRead>,
    /// Timestamp lookups in flight.
    pending_lookups: BTreeMap<RequestId, PendingLookup>,
    started: Instant,
    truncations: u64,
    next_request: RequestId,
    ops_issued: u32,
    phase: Phase,
    phase_started: Instant,
    timer_at: Option<Instant>,
    draining: bool,
    /// Recovery reported lost synced data and has not yet made its cut durable, so the next
    /// recovery may rightly report the same loss again.
    loss_report_pending: bool,
    deferred: VecDeque<LogInput>,
    /// The current leader epoch: leader appends carry it, replica runs start at it.
    leader_epoch: i32,
    /// The log state the epoch cache was last checked against.
    epochs_checked: Option<EpochsChecked>,
    trace: TraceHash,
    report: LogSimReport,
    recorder: Option<history::Recorder>,
}

impl LogSim {
    /// A simulation of `params`, not yet run.
    pub fn new(params: LogSimParams) -> LogSim {
        let now = Instant(1_700_000_000_000_000_000);
        let config = Self::log_config(&params);
        let seed = params.seed;
        let mut sim = LogSim {
            prng: Prng::new(seed),
            now,
            sequence: 0,
            queue: BinaryHeap::new(),
            disk: SimDisk::default(),
            disk_free_at: now,
            faults: params.disk.clone(),
            log: Log::open(config, now),
            incarnation: 0,
            recovering: true,
            recovery_started: now,
            last_recovery_done: now,
            verify: None,
            restart_scheduled: false,
            model: Model::default(),
            pending_appends: BTreeMap::new(),
            pending_reads: BTreeMap::new(),
            pending_lookups: BTreeMap::new(),
            started: now,
            truncations: 0,
            next_request: 1,
            ops_issued: 0,
            phase: Phase::Workload,
            phase_started: now,
            timer_at: None,
            draining: false,
            loss_report_pending: false,
            deferred: VecDeque::new(),
            leader_epoch: FIRST_LEADER_EPOCH,
            epochs_checked: None,
            trace: TraceHash::default(),
            report: LogSimReport {
                seed,
                events: 0,
                simulated: Duration::ZERO,
                restarts: 0,
                appends_acked: 0,
                reads: 0,
                trace_hash: 0,
                violations: Vec::new(),
                history: None,
            },
            recorder: params.kafka_history.then(|| history::Recorder::new(DIR)),
            params,
        };
        sim.drain_log();
        sim.schedule_workload();
        sim
    }

    fn log_config(params: &LogSimParams) -> LogConfig {
        let mut config = LogConfig::new(DIR);
        config.segment_bytes_max = params.segment_bytes_max;
        config.batch_limits.batch_bytes_max = 8192;
        config.index_interval_bytes = params.index_interval_bytes;
        config.sync_policy = params.sync_policy;
        config.canaries = params.canaries;
        config
    }

    /// Runs to the end and returns the report (stopping at the first violation).
    pub fn run(mut self) -> LogSimReport {
        let start = self.now;
        while let Some(Reverse(next)) = self.queue.pop() {
            assert!(next.at >= self.now, "time never goes backwards");
            self.now = next.at;
            self.report.events += 1;
            self.dispatch(next.event);
            self.check_epoch_cache();
            if !self.report.violations.is_empty() || self.phase == Phase::Done {
                break;
            }
            if self.report.events >= EVENTS_MAX {
                self.violate(format!("no progress after {EVENTS_MAX} events"));
                break;
            }
        }
        if self.phase != Phase::Done && self.report.violations.is_empty() {
            self.violate(format!("run stalled in phase {:?}", self.phase));
        }
        self.report.simulated = self.now.saturating_since(start);
        self.check_history();
        self.report.trace_hash = self.trace.finish();
        self.report
    }

    fn schedule(&mut self, at: Instant, event: Event) {
        self.sequence += 1;
        self.queue.push(Reverse(Scheduled {
            at,
            sequence: self.sequence,
            event,
        }));
    }

    fn violate(&mut self, what: String) {
        tracing::warn!(at = ?self.now, "VIOLATION: {what}");
        self.report
            .violations
            .push(Violation { at: self.now, what });
    }

    fn schedule_workload(&mut self) {
        let gap = self.prng.range_inclusive(1, 2 * self.params.op_gap_us);
        self.schedule(self.now + Duration::from_micros(gap), Event::Workload);
    }

    fn dispatch(&mut self, event: Event) {
        match event {
            Event::Disk {
                incarnation,
                request,
            } if incarnation == self.incarnation => self.on_disk(request),
            Event::Disk { .. } => {}
            Event::LogTimeout { incarnation } if incarnation == self.incarnation => {
                self.timer_at = None;
                if self.log.poll_timeout().is_some_and(|t| t <= self.now) {
                    self.trace.add(&[self.now.0, 3]);
                    self.log.handle(self.now, LogInput::Timeout);
                    self.drain_log();
                }
            }
            Event::LogTimeout { .. } => {}
            Event::Workload => self.on_workload(),
            Event::Restart => {
                self.restart_scheduled = false;
                let power_loss = self.prng.chance(self.params.power_loss);
                self.restart(power_loss);
            }
        }
    }

    fn on_disk(&mut self, request: DiskRequest) {
        let result = self
            .disk
            .execute(self.now, &request.op, &self.faults, &mut self.prng);
        if result.is_err() && matches!(request.op, DiskOp::Sync { .. }) {
            // After a failed fsync the kernel may drop the dirty pages: what the page cache
            // showed is gone. A log that keeps trusting it would serve lost data.
            self.disk.power_loss(&DiskFaults::none(), &mut Prng::new(0));
        }
        self.trace_disk(&request, &result);
        let completion = DiskCompletion {
            id: request.id,
            result,
        };
        self.log.handle(self.now, LogInput::Disk(completion));
        self.drain_log();
    }

    fn trace_disk(
        &mut self,
        request: &DiskRequest,
        result: &Result<seedlog_core::io::DiskOutcome, seedlog_core::io::DiskError>,
    ) {
        let (kind, a, b) = match &request.op {
            DiskOp::List { .. } => (0, 0, 0),
            DiskOp::Read { position, len, .. } => (1, *position, u64::from(*len)),
            DiskOp::Write {
                position, bytes, ..
            } => (2, *position, bytes.len() as u64),
            DiskOp::Sync { .. } => (3, 0, 0),
            DiskOp::Truncate { len, .. } => (4, *len, 0),
            DiskOp::Delete { .. } => (5, 0, 0),
        };
        self.trace.add(&[
            self.now.0,
            1,
            request.id,
            kind,
            a,
            b,
            u64::from(result.is_ok()),
        ]);
        self.trace.add_str(request.op.path());
        tracing::debug!(at = ?self.now, id = request.id, op = ?OpSummary(&request.op), ok = result.is_ok(), "disk");
        let tracing = tracing::enabled!(tracing::Level::DEBUG);
        if let (true, DiskOp::Write { bytes, .. }) = (tracing, &request.op) {
            if let Some(checkpoint) = seedlog_core::log::checkpoint::Checkpoint::decode(bytes) {
                tracing::debug!(at = ?self.now, ?checkpoint, "checkpoint written");
            }
        }
    }

    /// Hands every log output to its handler until the log is quiet. Inputs that handlers want
    /// to feed wait in `deferred` until the outbox is empty, as the contract requires.
    fn drain_log(&mut self) {
        if self.draining {
            return;
        }
        self.draining = true;
        loop {
            while let Some(output) = self.log.poll_output() {
                match output {
                    LogOutput::Disk(request) => self.submit_disk(request),
                    other => self.on_log_output(other),
                }
            }
            let Some(input) = self.deferred.pop_front() else {
                break;
            };
            self.log.handle(self.now, input);
        }
        self.draining = false;
        let timeout = self.log.poll_timeout();
        if let Some(deadline) = timeout.filter(|_| timeout != self.timer_at) {
            self.timer_at = timeout;
            let at = deadline.max(self.now);
            self.schedule(
                at,
                Event::LogTimeout {
                    incarnation: self.incarnation,
                },
            );
        }
    }

    /// The device runs requests one at a time, in order, each after a random latency.
    fn submit_disk(&mut self, request: DiskRequest) {
        let (low, high) = self.faults.latency_us;
        let mut latency = self.prng.range_inclusive(low, high);
        if self.prng.chance(self.faults.latency_spike) {
            latency *= 100;
        }
        let at = self.now.max(self.disk_free_at) + Duration::from_micros(latency);
        self.disk_free_at = at;
        self.schedule(
            at,
            Event::Disk {
                incarnation: self.incarnation,
                request,
            },
        );
    }

    fn on_log_output(&mut self, output: LogOutput) {
        tracing::debug!(at = ?self.now, output = ?OutputSummary(&output), "log");
        match output {
            LogOutput::Disk(_) => unreachable!("routed by drain_log"),
            LogOutput::Recovered(report) => self.on_recovered(report),
            LogOutput::Appended {
                request,
                base_offset,
                last_offset,
            } => {
                if let Some(recorder) = self.recorder.as_mut() {
                    recorder.written(request, base_offset);
                }
                self.trace.add(&[
                    self.now.0,
                    10,
                    request,
                    base_offset as u64,
                    last_offset as u64,
                ]);
                self.report.appends_acked += 1;
                match self.pending_appends.remove(&request) {
                    Some(expected) if expected == base_offset => {}
                    other => self.violate(format!(
                        "append {request} got base offset {base_offset}, model expected {other:?}"
                    )),
                }
            }
            LogOutput::AppendFailed { request, error } => {
                self.trace.add(&[self.now.0, 11, request]);
                // A storage error can come after the write reached the page cache (the log
                // faulted on another request first): like Kafka's KAFKA_STORAGE_ERROR it is
                // indeterminate. Only refusals made before writing are definite failures.
                let definite = !matches!(error, AppendError::Storage);
                if let (Some(recorder), true) = (self.recorder.as_mut(), definite) {
                    recorder.fail_append(self.now.0, request);
                }
                self.pending_appends.remove(&request);
                match error {
                    AppendError::InvalidBatch(e) => {
                        self.violate(format!("valid batch refused: {e}"))
                    }
                    AppendError::OffsetMismatch { expected, found } => self.violate(format!(
                        "replica run at the model's log end {found} refused: the log expected {expected}"
                    )),
                    _ => {}
                }
            }
            LogOutput::ReadDone { request, result } => self.on_read_done(request, result),
            LogOutput::OffsetForTimestamp { request, result } => {
                self.on_timestamp_lookup_done(request, result)
            }
            LogOutput::Durable { offset } => {
                self.trace.add(&[self.now.0, 12, offset as u64]);
                // A truncation may still be locating its cut when a sync round ends, so a claim
                // can exceed the model's (already cut) end, but never the highest end written.
                if offset > self.model.end_high {
                    self.violate(format!(
                        "durable {offset} beyond any log end {}",
                        self.model.end_high
                    ));
                }
                // Until a truncate-fully is done, a claim may be about the log it discards.
                if self.model.fully_pending.is_none() {
                    self.model.durable = self.model.durable.max(offset.min(self.model.end));
                }
                if let Some(recorder) = self.recorder.as_mut() {
                    recorder.durable(self.now.0, offset);
                }
            }
            LogOutput::Truncated { offset } => {
                self.trace.add(&[self.now.0, 13, offset as u64]);
                self.loss_report_pending = false;
                if self.model.fully_pending == Some(offset) {
                    self.model.fully_pending = None;
                }
            }
            LogOutput::Faulted(reason) => {
                self.trace.add(&[self.now.0, 14]);
                // Damage already at rest may still fault the log later (a truncation that
                // cannot read past it hands it to recovery); anything else is a bug.
                let rot = self.disk.rot_since(DIR, self.last_recovery_done);
                if self.phase != Phase::Workload && !rot {
                    self.violate(format!("log faulted with faults off: {reason:?}"));
                }
                if !self.restart_scheduled {
                    self.restart_scheduled = true;
                    self.schedule(self.now + Duration::from_millis(1), Event::Restart);
                }
            }
        }
    }

    fn on_workload(&mut self) {
        match self.phase {
            Phase::Workload => {}
            Phase::FinalSync | Phase::FinalRestart => return self.on_final_tick(),
            Phase::Done => return,
        }
        if self.ops_issued >= self.params.operations {
            return self.begin_final_phase();
        }
        self.schedule_workload();
        if self.recovering || self.verify.is_some() || !self.log.is_ready() {
            return;
        }
        self.ops_issued += 1;
        if self.prng.chance(self.params.crash) {
            let power_loss = self.prng.chance(self.params.power_loss);
            return self.restart(power_loss);
        }
        if self.prng.chance(self.params.bit_rot) {
            self.trace.add(&[self.now.0, 20]);
            self.disk.bit_rot(self.now, &mut self.prng, |_| true);
        }
        let weights = self.params.weights;
        let total: u32 = weights.iter().sum::<u32>().max(1);
        let mut pick = self.prng.below(u64::from(total)) as u32;
        let mut choice = 0;
        while choice < weights.len() && pick >= weights[choice] {
            pick -= weights[choice];
            choice += 1;
        }
        match choice {
            0 => self.issue_append(),
            1 => self.issue_read(),
            2 => self.feed(LogInput::Sync),
            3 => self.issue_truncate(),
            4 => self.issue_delete_before(),
            5 => self.issue_timestamp_lookup(),
            6 => self.issue_new_leader(),
            _ => self.issue_truncate_fully(),
        }
    }

    fn feed(&mut self, input: LogInput) {
        self.deferred.push_back(input);
        self.drain_log();
    }

    /// A batch of random records whose keys are the history values of `request` from record
    /// `first` on.
    fn random_batch(&mut self, request: RequestId, first: usize) -> Bytes {
        let count = self
            .prng
            .range_inclusive(1, u64::from(self.params.records_max)) as usize;
        let base_timestamp = self.now.as_millis() as i64;
        let records: Vec<NewRecord> = (0..count)
            .map(|i| {
                let len = self.prng.below(u64::from(self.params.value_bytes_max) + 1) as usize;
                let mut value = vec![0u8; len];
                self.prng.fill(&mut value);
                NewRecord {
                    timestamp: base_timestamp + i as i64,
                    key: Some(Bytes::copy_from_slice(
                        &history::record_value(request, first + i).to_be_bytes(),
                    )),
                    value: Some(Bytes::from(value)),
                    headers: vec![],
                }
            })
            .collect();
        record_batch::encode(
            &BatchSpec {
                base_timestamp,
                ..BatchSpec::default()
            },
            &records,
        )
    }

    fn issue_append(&mut self) {
        let share = self.params.replica_share;
        if share > 0.0 && self.prng.chance(share) {
            return self.issue_replica_append();
        }
        let request = self.next_request;
        self.next_request += 1;
        let batch = self.random_batch(request, 0);
        let mut stored = BytesMut::from(&batch[..]);
        record_batch::set_base_offset(&mut stored, self.model.end);
        record_batch::set_partition_leader_epoch(&mut stored, self.leader_epoch);
        let input = LogInput::Append {
            request,
            batch,
            leader_epoch: self.leader_epoch,
        };
        self.submit_append(request, input, vec![stored.freeze()], 30);
    }

    /// A follower's append: one to three batches at the model's log end, with the offsets and
    /// leader epochs a leader would have given them (the epoch may rise between batches, as at
    /// a leader change).
    fn issue_replica_append(&mut self) {
        let request = self.next_request;
        self.next_request += 1;
        let runs = self.prng.range_inclusive(1, 3);
        let mut stored = Vec::new();
        let (mut base, mut records) = (self.model.end, 0);
        for _ in 0..runs {
            if !stored.is_empty() && self.prng.chance(0.2) {
                self.leader_epoch += 1;
            }
            let batch = self.random_batch(request, records);
            let mut bytes = BytesMut::from(&batch[..]);
            record_batch::set_base_offset(&mut bytes, base);
            record_batch::set_partition_leader_epoch(&mut bytes, self.leader_epoch);
            let header = BatchHeader::parse(&bytes).expect("a batch just encoded");
            (base, records) = (
                header.next_offset(),
                records + header.records_count as usize,
            );
            stored.push(bytes.freeze());
        }
        let batches = Bytes::from(stored.concat());
        let input = LogInput::AppendReplica { request, batches };
        self.submit_append(request, input, stored, 35);
    }

    /// Feeds an append whose batches the log will store as `stored` and, unless it is refused
    /// at once, adds them to the model at its log end.
    fn submit_append(
        &mut self,
        request: RequestId,
        input: LogInput,
        stored: Vec<Bytes>,
        kind: u64,
    ) {
        let headers: Vec<BatchHeader> = stored
            .iter()
            .map(|b| BatchHeader::parse(b).expect("a batch just encoded"))
            .collect();
        let count: usize = headers.iter().map(|h| h.records_count as usize).sum();
        let bytes: usize = stored.iter().map(Bytes::len).sum();
        if let Some(recorder) = self.recorder.as_mut() {
            recorder.invoke_append(self.now.0, request, count);
        }
        let base = self.model.end;
        self.pending_appends.insert(request, base);
        self.trace.add(&[self.now.0, kind, request, bytes as u64]);
        tracing::debug!(at = ?self.now, request, bytes, batches = stored.len(), expected_base = base, "append");
        self.log.handle(self.now, input);
        // A refusal is synchronous; without one the log stored the batches at `base`.
        let outputs: Vec<LogOutput> = std::iter::from_fn(|| self.log.poll_output()).collect();
        let refused = outputs
            .iter()
            .any(|o| matches!(o, LogOutput::AppendFailed { request: r, .. } if *r == request));
        if !refused {
            for (header, bytes) in headers.iter().zip(stored) {
                assert_eq!(
                    header.base_offset, self.model.end,
                    "batches continue the model"
                );
                self.model.end = header.next_offset();
                self.model
                    .versions
                    .entry(header.base_offset)
                    .or_default()
                    .push(bytes.clone());
                self.model.current.insert(header.base_offset, bytes);
            }
            self.model.end_high = self.model.end_high.max(self.model.end);
        }
        for output in outputs {
            match output {
                LogOutput::Disk(request) => self.submit_disk(request),
                other => self.on_log_output(other),
            }
        }
        self.drain_log();
    }

    /// A new leader takes over with the next leader epoch and records it at the log end.
    fn issue_new_leader(&mut self) {
        self.leader_epoch += 1;
        self.trace.add(&[self.now.0, 36, self.leader_epoch as u64]);
        tracing::debug!(at = ?self.now, epoch = self.leader_epoch, "new leader");
        self.log.assign_epoch(self.leader_epoch);
    }

    /// The follower fell behind the leader's log start (or the leader restarted empty): the log
    /// is discarded and continues at an offset near its range.
    fn issue_truncate_fully(&mut self) {
        let span = (self.model.end - self.model.log_start).max(0) as u64;
        let offset = self.model.log_start + self.prng.below(span + 64) as i64;
        self.truncations += 1;
        self.trace.add(&[self.now.0, 37, offset as u64]);
        tracing::debug!(at = ?self.now, offset, "truncate-fully");
        self.model.truncate_fully(offset);
        self.feed(LogInput::TruncateFullyAndStartAt { offset });
    }

    fn issue_read(&mut self) {
        let span = (self.model.end - self.model.log_start).max(0) as u64;
        let offset = self.model.log_start + self.prng.below(span + 1) as i64;
        let bytes_max = self
            .prng
            .range_inclusive(1, 3 * self.params.segment_bytes_max) as u32;
        self.start_read(offset, bytes_max, false);
    }

    fn start_read(&mut self, offset: i64, bytes_max: u32, verify: bool) {
        let request = self.next_request;
        self.next_request += 1;
        // A read issued while the log still applies a truncation may see the old batches.
        let truncations = if self.log.is_truncating() {
            u64::MAX
        } else {
            self.truncations
        };
        let pending = PendingRead {
            offset,
            issued: self.now,
            truncations,
            verify,
        };
        self.pending_reads.insert(request, pending);
        self.trace
            .add(&[self.now.0, 31, request, offset as u64, u64::from(bytes_max)]);
        tracing::debug!(at = ?self.now, request, offset, bytes_max, verify, "read");
        // A client-facing read serves only durable offsets, as a broker serves up to its high
        // watermark; verification reads everything recovery kept.
        let offset_max = match (&mut self.recorder, verify) {
            (Some(recorder), false) => {
                recorder.invoke_read(self.now.0, request, offset);
                self.log.durable_offset()
            }
            _ => i64::MAX,
        };
        self.feed(LogInput::Read {
            request,
            offset,
            bytes_max,
            offset_max,
        });
    }

    /// Checks the recorded client history with the jepsen checkers.
    fn check_history(&mut self) {
        let Some(recorder) = self.recorder.take() else {
            return;
        };
        let (history, failed) = recorder.finish();
        if let Some(what) = failed {
            self.violate(what);
        }
        if self.report.violations.is_empty() {
            let options = seedlog_jepsen::CheckOptions {
                partial_reads: true,
                max_search_steps: Some(20_000_000),
                ..seedlog_jepsen::CheckOptions::default()
            };
            let verdict = seedlog_jepsen::check(&history, &options);
            if verdict.validity != seedlog_jepsen::Validity::Valid {
                let summary = seedlog_jepsen::verdict::summary(&history, &verdict);
                self.violate(format!("client history check: {summary}"));
            }
        }
        self.report.history = Some(history);
    }

    fn issue_truncate(&mut self) {
        if self.model.end <= self.model.log_start {
            return;
        }
        let span = (self.model.end - self.model.log_start) as u64;
        let offset = self.model.log_start + self.prng.below(span) as i64;
        self.truncations += 1;
        self.trace.add(&[self.now.0, 32, offset as u64]);
        tracing::debug!(at = ?self.now, offset, "truncate");
        self.model.truncate(offset);
        self.feed(LogInput::TruncateTo { offset });
    }

    fn issue_timestamp_lookup(&mut self) {
        let request = self.next_request;
        self.next_request += 1;
        // Batch timestamps are the simulated wall clock, so aim around the run so far.
        let span = self.now.saturating_since(self.started).as_millis() + 2;
        let timestamp = self.started.as_millis() as i64 + self.prng.below(span) as i64 - 1;
        // The log answers from its state when asked, so the model's answer is fixed now too;
        // it is only known when the model holds every batch and no truncation is pending.
        let expected = (!self.log.is_truncating() && !self.model_has_gaps())
            .then(|| self.model_first_at_or_after(timestamp));
        self.pending_lookups
            .insert(request, (timestamp, expected, self.truncations));
        self.trace.add(&[self.now.0, 34, request, timestamp as u64]);
        tracing::debug!(at = ?self.now, request, timestamp, "offset-for-timestamp");
        self.feed(LogInput::OffsetForTimestamp { request, timestamp });
    }

    fn issue_delete_before(&mut self) {
        let span = (self.model.end - self.model.log_start).max(0) as u64;
        let offset = self.model.log_start + self.prng.below(span + 1) as i64;
        // Moving the log start races reads and lookups the way a truncation does.
        self.truncations += 1;
        self.trace.add(&[self.now.0, 33, offset as u64]);
        tracing::debug!(at = ?self.now, offset, "delete-before");
        self.model.log_start = self.model.log_start.max(offset.min(self.model.end));
        self.feed(LogInput::DeleteBefore { offset });
    }
}

mod checks;
pub mod history;
mod restart;

/// Compact rendering of a disk op for the trace.
struct OpSummary<'a>(&'a DiskOp);

impl std::fmt::Debug for OpSummary<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            DiskOp::List { dir } => write!(f, "list {dir}"),
            DiskOp::Read {
                file,
                position,
                len,
            } => write!(f, "read {file} @{position} +{len}"),
            DiskOp::Write {
                file,
                position,
                bytes,
            } => {
                write!(f, "write {file} @{position} +{}", bytes.len())
            }
            DiskOp::Sync { file } => write!(f, "sync {file}"),
            DiskOp::Truncate { file, len } => write!(f, "truncate {file} to {len}"),
            DiskOp::Delete { file } => write!(f, "delete {file}"),
        }
    }
}

/// Compact rendering of a log output for the trace.
struct OutputSummary<'a>(&'a LogOutput);

impl std::fmt::Debug for OutputSummary<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            LogOutput::ReadDone {
                request,
                result: Ok(r),
            } => write!(
                f,
                "read {request} ok: {} bytes, next {}",
                r.batches.len(),
                r.next_offset
            ),
            LogOutput::ReadDone {
                request,
                result: Err(e),
            } => write!(f, "read {request} err: {e:?}"),
            other => write!(f, "{other:?}"),
        }
    }
}

/// The segment file that holds `offset`, among the files on `disk`.
fn segment_file_for(disk: &SimDisk, offset: i64) -> Option<String> {
    let prefix = format!("{DIR}/");
    disk.paths()
        .into_iter()
        .filter_map(|p| {
            let base = Segment::parse_file_name(p.strip_prefix(&prefix)?)?;
            (base <= offset).then_some((base, p))
        })
        .max()
        .map(|(_, p)| p)
}
