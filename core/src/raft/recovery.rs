//! Recovery: list `raft/`, read every file whole, keep the newest valid vote and snapshot and
//! the longest valid log prefix that connects to the snapshot, cut a torn tail, and sync every
//! file kept (after a process crash the page cache may still hold writes that were never
//! synced; trusting them without a sync could acknowledge entries a power loss then drops).

use super::storage::{self, Snapshot, VoteRecord, LOG_FILE, SNAPSHOT_SLOTS, VOTE_SLOTS};
use super::*;
use crate::io::{DiskOp, DiskOutcome};

/// Recovery progress.
#[derive(Clone, Debug, Default)]
pub(super) struct Recovery {
    /// Requests not yet completed, and the file each read is for.
    outstanding: BTreeMap<DiskRequestId, Option<String>>,
    /// Whole file contents read so far.
    files: BTreeMap<String, Bytes>,
    /// True once the reads are done and only syncs remain.
    syncing: bool,
    /// Re-reads issued per file whose bytes did not check out whole.
    rereads: BTreeMap<String, u32>,
}

/// How often recovery reads a file again when its bytes fail their checks. A bit flipped on
/// the way from the disk is gone on the next read; believing it would cut entries this voter
/// acknowledged as durable (or fall back to an older vote), which Raft's safety rests on.
const RECOVERY_REREADS_MAX: u32 = 2;

impl RaftNode {
    pub(super) fn start_recovery(&mut self) {
        let id = self.disk(DiskOp::List {
            dir: storage::DIR.to_string(),
        });
        self.recovery_mut().outstanding.insert(id, None);
    }

    /// Reads file `path` (of `len` bytes) whole, as part of recovery.
    fn read_whole(&mut self, path: String, len: u64) {
        let op = DiskOp::Read {
            file: path.clone(),
            position: 0,
            len: u32::try_from(len).unwrap_or(u32::MAX),
        };
        let id = self.disk(op);
        self.recovery_mut().outstanding.insert(id, Some(path));
    }

    fn recovery_mut(&mut self) -> &mut Recovery {
        match &mut self.phase {
            Phase::Recovering(r) => r,
            _ => unreachable!("only called while recovering"),
        }
    }

    pub(super) fn on_recovery_disk(&mut self, now: Instant, completion: DiskCompletion) {
        let Some(file) = self.recovery_mut().outstanding.remove(&completion.id) else {
            return;
        };
        match (completion.result, file) {
            (Err(error), _) => return self.fault(error),
            (Ok(DiskOutcome::Listed(entries)), None) => {
                for entry in entries {
                    let path = format!("{}/{}", storage::DIR, entry.name);
                    let wanted = VOTE_SLOTS.contains(&path.as_str())
                        || SNAPSHOT_SLOTS.contains(&path.as_str())
                        || path == LOG_FILE;
                    if wanted {
                        self.read_whole(path, entry.len);
                    }
                }
            }
            (Ok(DiskOutcome::Read(bytes)), Some(path)) => {
                let recovery = self.recovery_mut();
                let rereads = recovery.rereads.get(&path).copied().unwrap_or(0);
                let better = recovery
                    .files
                    .get(&path)
                    .is_none_or(|kept| file_quality(&path, &bytes) > file_quality(&path, kept));
                if better {
                    recovery.files.insert(path.clone(), bytes.clone());
                }
                if !file_checks_out(&path, &bytes) && rereads < RECOVERY_REREADS_MAX {
                    recovery.rereads.insert(path.clone(), rereads + 1);
                    self.read_whole(path, bytes.len() as u64);
                }
            }
            (Ok(_), _) => {}
        }
        if !self.recovery_mut().outstanding.is_empty() {
            return;
        }
        if self.recovery_mut().syncing {
            return self.finish_recovery(now);
        }
        let files = std::mem::take(&mut self.recovery_mut().files);
        self.restore_files(&files);
        self.recovery_mut().syncing = true;
        self.sync_kept_files(&files);
        if self.recovery_mut().outstanding.is_empty() {
            self.finish_recovery(now);
        }
    }

    /// Rebuilds the in-memory state from the files' bytes.
    fn restore_files(&mut self, files: &BTreeMap<String, Bytes>) {
        let newest_vote = VOTE_SLOTS
            .iter()
            .filter_map(|slot| VoteRecord::decode(files.get(*slot)?))
            .max_by_key(|v| v.sequence);
        if let Some(vote) = newest_vote {
            self.term = vote.term;
            self.voted_for = vote.voted_for;
            self.writer.vote_sequence = vote.sequence;
        }
        self.writer.durable_vote = (self.term, self.voted_for);
        let newest_snapshot = SNAPSHOT_SLOTS
            .iter()
            .filter_map(|slot| Snapshot::decode(files.get(*slot)?))
            .max_by_key(|s| s.sequence);
        if let Some(snapshot) = newest_snapshot {
            self.log_base = snapshot.last_index;
            self.log_base_term = snapshot.last_term;
            self.commit_index = snapshot.last_index;
            self.applied_index = snapshot.last_index;
            self.writer.snapshot_sequence = snapshot.sequence;
            self.push(RaftOutput::RestoreSnapshot {
                index: snapshot.last_index,
                term: snapshot.last_term,
                data: snapshot.data.clone(),
            });
            self.writer.snapshot = Some(snapshot);
        }
        let log = files.get(LOG_FILE).cloned().unwrap_or_default();
        self.restore_log(&log);
    }

    fn restore_log(&mut self, bytes: &[u8]) {
        let scanned = storage::scan_log(bytes, RAFT_LOG_FILE_ENTRIES_MAX);
        let base = self.log_base;
        let connects = match scanned.entries.first() {
            None => false,
            Some((first, _)) => {
                let at_base = scanned.entries.iter().find(|(e, _)| e.index == base);
                first.index <= base + 1
                    && at_base.is_none_or(|(e, _)| e.term == self.log_base_term)
                    && scanned.entries.last().is_some_and(|(e, _)| e.index >= base)
            }
        };
        if !connects {
            // Nothing usable: the file restarts after the snapshot.
            self.writer.file_first_index = base + 1;
            self.writer.truncate_to = (!bytes.is_empty()).then_some(0);
            self.writer.durable_index = base;
            return;
        }
        self.writer.file_first_index = scanned.entries[0].0.index;
        self.writer.file_len = scanned.valid_len;
        if scanned.valid_len < bytes.len() as u64 {
            self.writer.truncate_to = Some(scanned.valid_len);
        }
        for (entry, position) in scanned.entries {
            self.writer.positions.push_back(position);
            if entry.index > base {
                self.term = self.term.max(entry.term);
                self.entries.push_back(entry);
            }
        }
        self.writer.durable_index = self.last_index();
    }

    fn sync_kept_files(&mut self, files: &BTreeMap<String, Bytes>) {
        if let Some(len) = self.writer.truncate_to.take() {
            let id = self.disk(DiskOp::Truncate {
                file: LOG_FILE.to_string(),
                len,
            });
            self.recovery_mut().outstanding.insert(id, None);
        }
        for file in files.keys() {
            let id = self.disk(DiskOp::Sync { file: file.clone() });
            self.recovery_mut().outstanding.insert(id, None);
        }
    }

    fn finish_recovery(&mut self, now: Instant) {
        self.phase = Phase::Ready;
        self.role = Role::Follower { leader: None };
        // This voter forgot when it last heard from a leader: assume just now, so it cannot
        // break a lease it helped grant before the crash.
        self.last_leader_contact = Some(now);
        self.reset_election_timer(now);
        self.push(RaftOutput::Recovered);
    }
}

/// Whether a file's bytes pass every check: an empty file or a decodable vote or snapshot
/// slot, or a log whose every byte belongs to a valid entry.
fn file_checks_out(path: &str, bytes: &Bytes) -> bool {
    bytes.is_empty() || file_quality(path, bytes) == u64::MAX
}

/// Ranks reads of the same file: `u64::MAX` for bytes that check out whole, else (for the
/// log) the length of the valid prefix.
fn file_quality(path: &str, bytes: &Bytes) -> u64 {
    let whole = if VOTE_SLOTS.contains(&path) {
        VoteRecord::decode(bytes).is_some()
    } else if SNAPSHOT_SLOTS.contains(&path) {
        Snapshot::decode(bytes).is_some()
    } else {
        let valid = storage::scan_log(bytes, RAFT_LOG_FILE_ENTRIES_MAX).valid_len;
        if valid < bytes.len() as u64 {
            return valid;
        }
        true
    };
    if whole {
        u64::MAX
    } else {
        0
    }
}
