//! The disk writer: one job at a time, in priority order (vote record, then snapshot, then log),
//! each a few requests ending in a sync. Running one job at a time keeps the on-disk order
//! obvious: a snapshot is durable before the log file is cut below it, and the vote record is
//! never behind a long log write.

use super::storage::{self, Snapshot, VoteRecord, LOG_FILE};
use super::*;
use crate::io::{DiskOp, DiskOutcome};
use bytes::BytesMut;

/// A job in flight.
#[derive(Clone, Debug)]
pub(super) enum Job {
    Vote {
        term: u64,
        voted_for: Option<NodeId>,
    },
    Snapshot(Snapshot),
    Log {
        epoch: u64,
        last_index: u64,
    },
}

/// What the writer knows about the files.
#[derive(Clone, Debug)]
pub(super) struct Writer {
    pub(super) next_id: DiskRequestId,
    job: Option<(Job, Vec<DiskRequestId>)>,
    /// The vote record last synced.
    pub(super) durable_vote: (u64, Option<NodeId>),
    pub(super) vote_sequence: u64,
    /// Every entry up to here is durable (in the log file or under the durable snapshot).
    pub(super) durable_index: u64,
    /// Bumped whenever the log is cut, so a write job that raced the cut does not claim
    /// durability for entries that are gone.
    epoch: u64,
    /// Index of the log file's first entry and each entry's byte position.
    pub(super) file_first_index: u64,
    pub(super) positions: VecDeque<u64>,
    pub(super) file_len: u64,
    pub(super) truncate_to: Option<u64>,
    /// A snapshot to persist (the owner's, or one a leader sent).
    staged: Option<Snapshot>,
    /// The durable snapshot.
    pub(super) snapshot: Option<Snapshot>,
    pub(super) snapshot_sequence: u64,
}

impl Default for Writer {
    fn default() -> Writer {
        Writer {
            next_id: 0,
            job: None,
            durable_vote: (0, None),
            vote_sequence: 0,
            durable_index: 0,
            epoch: 0,
            file_first_index: 1,
            positions: VecDeque::new(),
            file_len: 0,
            truncate_to: None,
            staged: None,
            snapshot: None,
            snapshot_sequence: 0,
        }
    }
}

impl Writer {
    /// The last entry written to the log file (synced or not).
    pub(super) fn written_index(&self) -> u64 {
        self.file_first_index + self.positions.len() as u64 - 1
    }

    /// Stages a snapshot to persist; a newer one replaces an older staged one.
    pub(super) fn stage_snapshot(&mut self, index: u64, term: u64, data: Bytes) {
        self.snapshot_sequence += 1;
        self.staged = Some(Snapshot {
            sequence: self.snapshot_sequence,
            last_index: index,
            last_term: term,
            data,
        });
    }

    /// The log is cut from `index` on: forget those entries' places in the file.
    pub(super) fn truncate_from(&mut self, index: u64) {
        self.epoch += 1;
        self.durable_index = self.durable_index.min(index - 1);
        if index > self.written_index() {
            return;
        }
        let keep = index.saturating_sub(self.file_first_index) as usize;
        let position = self.positions.get(keep).copied().unwrap_or(0);
        self.positions.truncate(keep);
        self.file_len = position;
        self.truncate_to = Some(self.truncate_to.map_or(position, |t| t.min(position)));
    }

    /// The whole log was replaced by a snapshot ending at `base`: the file restarts empty
    /// (cut only after the staged snapshot is durable, by job order).
    pub(super) fn discard_all(&mut self, base: u64) {
        self.epoch += 1;
        let snapshot_index = self.snapshot.as_ref().map_or(0, |s| s.last_index);
        self.durable_index = self.durable_index.min(snapshot_index);
        self.restart_file(base);
    }

    fn restart_file(&mut self, base: u64) {
        self.positions.clear();
        self.file_first_index = base + 1;
        self.file_len = 0;
        self.truncate_to = Some(0);
    }
}

impl RaftNode {
    /// Starts the next disk job if none runs.
    pub(super) fn writer_kick(&mut self) {
        if self.writer.job.is_some() {
            return;
        }
        if self.writer.durable_vote != (self.term, self.voted_for) {
            return self.start_vote_job();
        }
        if let Some(snapshot) = self.writer.staged.take() {
            return self.start_snapshot_job(snapshot);
        }
        if self.writer.written_index() < self.log_base {
            // Entries between the file's end and the compaction point were never written but
            // are covered by the durable snapshot: restart the file after it, or it would hold
            // a gap that recovery stops at.
            self.writer.restart_file(self.log_base);
        }
        let writer = &self.writer;
        if writer.truncate_to.is_some()
            || writer.written_index() < self.last_index()
            || writer.durable_index < writer.written_index()
        {
            self.start_log_job();
        }
    }

    fn start_vote_job(&mut self) {
        self.writer.vote_sequence += 1;
        let record = VoteRecord {
            sequence: self.writer.vote_sequence,
            term: self.term,
            voted_for: self.voted_for,
        };
        let file = record.slot().to_string();
        let write = self.disk(DiskOp::Write {
            file: file.clone(),
            position: 0,
            bytes: record.encode(),
        });
        let sync = self.disk(DiskOp::Sync { file });
        let job = Job::Vote {
            term: self.term,
            voted_for: self.voted_for,
        };
        self.writer.job = Some((job, vec![write, sync]));
    }

    fn start_snapshot_job(&mut self, snapshot: Snapshot) {
        let file = snapshot.slot().to_string();
        let write = self.disk(DiskOp::Write {
            file: file.clone(),
            position: 0,
            bytes: snapshot.encode(),
        });
        let sync = self.disk(DiskOp::Sync { file });
        self.writer.job = Some((Job::Snapshot(snapshot), vec![write, sync]));
    }

    fn start_log_job(&mut self) {
        let mut ids = Vec::new();
        if let Some(len) = self.writer.truncate_to.take() {
            let file = LOG_FILE.to_string();
            ids.push(self.disk(DiskOp::Truncate { file, len }));
        }
        let mut bytes = BytesMut::new();
        let first = self.writer.written_index() + 1;
        let last = self
            .last_index()
            .min(first + RAFT_WRITE_ENTRIES_MAX as u64 - 1);
        for index in first..=last {
            let entry = self.entry(index).expect("unwritten entries are in memory");
            let position = self.writer.file_len + bytes.len() as u64;
            storage::encode_entry(entry, &mut bytes);
            self.writer.positions.push_back(position);
        }
        if !bytes.is_empty() {
            let position = self.writer.file_len;
            self.writer.file_len += bytes.len() as u64;
            let file = LOG_FILE.to_string();
            let bytes = bytes.freeze();
            ids.push(self.disk(DiskOp::Write {
                file,
                position,
                bytes,
            }));
        }
        ids.push(self.disk(DiskOp::Sync {
            file: LOG_FILE.to_string(),
        }));
        let job = Job::Log {
            epoch: self.writer.epoch,
            last_index: self.writer.written_index(),
        };
        self.writer.job = Some((job, ids));
    }

    /// Emits one disk request and returns its id.
    pub(super) fn disk(&mut self, op: DiskOp) -> DiskRequestId {
        let id = self.next_disk_id();
        self.push(RaftOutput::Disk(DiskRequest { id, op }));
        id
    }

    pub(super) fn on_disk(&mut self, now: Instant, completion: DiskCompletion) {
        match self.phase {
            Phase::Recovering(_) => return self.on_recovery_disk(now, completion),
            Phase::Faulted => return,
            Phase::Ready => {}
        }
        let Some((_, ids)) = self.writer.job.as_mut() else {
            return;
        };
        let Some(at) = ids.iter().position(|id| *id == completion.id) else {
            return;
        };
        if let Err(error) = completion.result {
            return self.fault(error);
        }
        debug_assert!(matches!(completion.result, Ok(DiskOutcome::Done)));
        ids.remove(at);
        if !ids.is_empty() {
            return;
        }
        let (job, _) = self.writer.job.take().expect("checked above");
        self.on_job_done(job);
    }

    fn on_job_done(&mut self, job: Job) {
        match job {
            Job::Vote { term, voted_for } => self.writer.durable_vote = (term, voted_for),
            Job::Snapshot(snapshot) => self.on_snapshot_durable(snapshot),
            Job::Log { epoch, last_index } => {
                if epoch == self.writer.epoch {
                    self.writer.durable_index = self.writer.durable_index.max(last_index);
                }
                self.on_durable_advanced();
            }
        }
    }

    fn on_snapshot_durable(&mut self, snapshot: Snapshot) {
        self.writer.durable_index = self.writer.durable_index.max(snapshot.last_index);
        // The log below the snapshot is no longer needed: drop it from memory (the file keeps
        // it until the file restarts; recovery skips it).
        while self
            .entries
            .front()
            .is_some_and(|e| e.index <= snapshot.last_index)
        {
            self.entries.pop_front();
        }
        if snapshot.last_index > self.log_base {
            self.log_base = snapshot.last_index;
            self.log_base_term = snapshot.last_term;
        }
        if let Some((leader, index, sent_at)) = self.snapshot_ack.take() {
            let term = self.term;
            let last_index = index.min(self.writer.durable_index);
            let message = Message::InstallSnapshotResponse {
                term,
                last_index,
                sent_at,
            };
            self.send(leader, message);
        }
        self.writer.snapshot = Some(snapshot);
    }
}
