//! The controller quorum: a sans-IO Raft voter over the metadata log (DESIGN §3 "Controller").
//!
//! Raft as in Ongaro & Ousterhout, "In Search of an Understandable Consensus Algorithm" (§5
//! election, replication and safety, §7 log compaction) and Ongaro's thesis, with the KRaft
//! choices of KIP-595 (pre-vote, check-quorum, leader stickiness) and KIP-630 (snapshots):
//!
//! - **Durable vote and term** (figure 2): `(term, voted_for)` lives in two CRC'd slot files
//!   (see [`storage`]). Every peer message this voter sends is held until the vote record that
//!   was current when it was produced is synced, so a vote grant or a candidacy never leaves
//!   before it would survive a power loss — a restarted voter can never vote twice in a term.
//! - **Pre-vote** (thesis §9.6): an election timeout first asks a majority "would you vote for
//!   me in term + 1?" without bumping anyone's term; only a yes from a majority starts a real
//!   election, so a partitioned voter cannot disrupt a healthy leader when it rejoins.
//! - **Leader stickiness** (thesis §4.2.3): a voter that heard from a leader less than the
//!   minimum election timeout ago refuses pre-votes and votes. The same rule backs the lease.
//! - **Check-quorum** (thesis §6.2): a leader that has not heard from a majority within the
//!   minimum election timeout steps down.
//! - **Replication** (§5.3): AppendEntries with the log-matching check, conflict truncation
//!   (never below the commit index), pipelined sends and retransmission from the match index on
//!   each heartbeat. A follower acknowledges only entries that are durable on it; the leader
//!   counts its own copy only after its own sync. An entry commits once a majority holds it
//!   durably and it is from the leader's term (§5.4.2); a new leader appends a no-op for that.
//! - **Lease reads** (thesis §6.4.1): the leader may answer a metadata read with its commit
//!   index without a round trip while its lease holds. The lease starts at the send time (on the
//!   leader's clock) of the latest heartbeat a majority acknowledged and lasts
//!   `election_timeout_min × (1 − clock_drift_max)`. Assumption: clocks advance at rates that
//!   differ by at most `clock_drift_max_ppm`, so the followers that acknowledged keep refusing
//!   votes (stickiness, measured on their clocks from when they received it) past the lease's
//!   end. A restarted voter refuses votes for one minimum timeout, because it forgot when it
//!   last heard from the leader.
//! - **Snapshots** (§7, KIP-630): the owner hands in state-machine snapshots as opaque bytes;
//!   once durable the log below them is dropped from memory. A follower whose next entry is
//!   below the leader's log start gets the snapshot whole (it is bounded in size).
//! - **Recovery** is part of the state machine: a new node lists `raft/`, reads every file,
//!   keeps the newest valid vote and snapshot and the longest valid log prefix, truncates a torn
//!   tail, syncs what it kept (a process crash leaves unsynced bytes in the page cache), and
//!   only then takes part.
//!
//! Not yet done: the log file is not rewritten after a snapshot (recovery skips the entries
//! below it, and the file restarts empty only when the whole log falls behind the snapshot), and
//! there is no membership change or leadership transfer.
//!
//! Any failed disk operation makes the node [`RaftOutput::Faulted`]: after a failed fsync the
//! page cache cannot be trusted, so the owner must restart it from disk.

mod election;
pub mod message;
mod recovery;
mod replication;
pub mod storage;
#[cfg(test)]
mod tests;
mod writer;

use crate::canary::Canaries;
use crate::constants::*;
use crate::io::{DiskCompletion, DiskError, DiskRequest, DiskRequestId};
use crate::prng::Prng;
use crate::time::{Duration, Instant};
use crate::timer::{TimerKind, TimerTable};
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

pub use message::{Entry, Message, NodeId, Payload};
pub use storage::Snapshot;

/// Identifies a proposal or read so its result can be matched.
pub type ProposalId = u64;

/// A voter's configuration.
#[derive(Clone, Debug)]
pub struct RaftConfig {
    /// This voter.
    pub node_id: NodeId,
    /// Every voter, this one included (KRaft `controller.quorum.voters`).
    pub voters: Vec<NodeId>,
    /// Shortest election timeout; also the stickiness window and the check-quorum period.
    pub election_timeout_min: Duration,
    /// Longest election timeout; each timeout is drawn uniformly in between.
    pub election_timeout_max: Duration,
    /// Interval between a leader's heartbeats.
    pub heartbeat_interval: Duration,
    /// Largest relative clock-rate difference between voters, in parts per million; shortens
    /// the leader lease.
    pub clock_drift_max_ppm: u32,
    /// Ask the owner for a snapshot once this many entries follow the last one.
    pub snapshot_wanted_entries: u64,
    /// Planted bugs switched on (only with the `canary` feature).
    pub canaries: Canaries,
}

impl RaftConfig {
    /// KRaft-like defaults for `node_id` among `voters`.
    pub fn new(node_id: NodeId, voters: Vec<NodeId>) -> RaftConfig {
        RaftConfig {
            node_id,
            voters,
            election_timeout_min: Duration::from_millis(RAFT_ELECTION_TIMEOUT_MIN_MS_DEFAULT),
            election_timeout_max: Duration::from_millis(RAFT_ELECTION_TIMEOUT_MAX_MS_DEFAULT),
            heartbeat_interval: Duration::from_millis(RAFT_HEARTBEAT_INTERVAL_MS_DEFAULT),
            clock_drift_max_ppm: RAFT_CLOCK_DRIFT_MAX_PPM_DEFAULT,
            snapshot_wanted_entries: RAFT_SNAPSHOT_WANTED_ENTRIES_DEFAULT,
            canaries: Canaries::NONE,
        }
    }
}

/// What a voter is told.
#[derive(Clone, Debug)]
pub enum RaftInput {
    /// A message from another voter.
    Message {
        /// The sender (the transport authenticates it).
        from: NodeId,
        /// The message.
        message: Message,
    },
    /// A client proposes a command for the metadata log.
    Propose {
        /// Echoed in the result.
        id: ProposalId,
        /// Opaque command bytes.
        command: Bytes,
    },
    /// A linearizable metadata read: answered with a read index under the leader lease.
    Read {
        /// Echoed in the result.
        id: ProposalId,
    },
    /// The owner's state machine snapshot, covering every entry up to `index` it applied.
    Snapshot {
        /// Last applied index the snapshot covers.
        index: u64,
        /// Opaque state-machine bytes.
        data: Bytes,
    },
    /// A disk request finished.
    Disk(DiskCompletion),
    /// `poll_timeout` passed.
    Timeout,
}

/// Why a proposal or read was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProposeError {
    /// This voter is not the leader; try the hinted one.
    NotLeader {
        /// The leader this voter believes in, if any.
        leader_hint: Option<NodeId>,
    },
    /// Too many proposals in flight, or the command is too large: retry later or smaller.
    Overloaded,
    /// Leadership was lost while the proposal was pending: it may or may not commit.
    Indeterminate,
    /// The leader has no valid lease or has not committed an entry of its term yet.
    NoLease,
}

/// What a voter asks of its owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RaftOutput {
    /// Send `message` to voter `to`.
    Send {
        /// Destination voter.
        to: NodeId,
        /// The message.
        message: Message,
    },
    /// Execute a disk request and hand back its completion.
    Disk(DiskRequest),
    /// Apply a committed entry to the state machine (in index order, each once per
    /// incarnation after the last restored snapshot).
    Apply(Entry),
    /// Replace the state machine with this snapshot (after recovery or an InstallSnapshot).
    RestoreSnapshot {
        /// Last index covered.
        index: u64,
        /// Term of that entry.
        term: u64,
        /// Opaque state-machine bytes.
        data: Bytes,
    },
    /// The log grew past its limit: hand in a [`RaftInput::Snapshot`] of the applied state.
    SnapshotWanted {
        /// The index applied so far.
        applied_index: u64,
    },
    /// This voter's view of the leadership changed.
    Leader {
        /// The term.
        term: u64,
        /// The leader of that term, if known.
        leader: Option<NodeId>,
    },
    /// A proposal committed at `index`, or was refused.
    ProposalResult {
        /// The proposal.
        id: ProposalId,
        /// Its committed index, or why not.
        result: Result<u64, ProposeError>,
    },
    /// A read may be served once the state machine has applied up to the returned index.
    ReadResult {
        /// The read.
        id: ProposalId,
        /// The read index, or why not.
        result: Result<u64, ProposeError>,
    },
    /// Recovery finished; the voter takes part from now on.
    Recovered,
    /// A disk operation failed; the node stopped and must be restarted from disk.
    Faulted(DiskError),
}

/// The voter's timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RaftTimer {
    /// Follower or candidate: start a pre-vote.
    Election,
    /// Leader: send AppendEntries to every follower.
    Heartbeat,
    /// Leader: step down unless a majority was heard from recently.
    CheckQuorum,
}

impl TimerKind for RaftTimer {
    const COUNT: usize = 3;
    fn index(self) -> usize {
        self as usize
    }
    fn from_index(index: usize) -> Self {
        [
            RaftTimer::Election,
            RaftTimer::Heartbeat,
            RaftTimer::CheckQuorum,
        ][index]
    }
}

/// A leader's view of one follower.
#[derive(Clone, Debug)]
struct Progress {
    /// Next index to send (pipelined: advanced when sent).
    next_index: u64,
    /// Highest index known durable and matching on the follower.
    match_index: u64,
    /// Leader clock of the latest request the follower acknowledged this term.
    acked_sent_at: Option<u64>,
    /// Leader clock of the latest request sent to the follower. Only a refusal of that one
    /// is answered at once: refusals of earlier or duplicated requests wait for the
    /// heartbeat, so lost-and-duplicated messages never multiply into parallel exchanges.
    last_sent_at: Option<u64>,
    /// When the follower last answered (check-quorum).
    last_heard: Option<Instant>,
}

/// State valid only while leading.
#[derive(Clone, Debug)]
struct LeaderState {
    progress: BTreeMap<NodeId, Progress>,
    /// Pending proposals by the index they were appended at.
    proposals: BTreeMap<u64, ProposalId>,
    /// Index of this term's no-op: reads need it committed.
    noop_index: u64,
}

/// The voter's role, carrying the data valid in it.
#[derive(Clone, Debug)]
enum Role {
    Follower { leader: Option<NodeId> },
    PreCandidate { granted: BTreeSet<NodeId> },
    Candidate { granted: BTreeSet<NodeId> },
    Leader(Box<LeaderState>),
}

/// Where the node is in its life.
#[derive(Clone, Debug)]
enum Phase {
    Recovering(recovery::Recovery),
    Ready,
    Faulted,
}

/// A sans-IO Raft voter.
pub struct RaftNode {
    config: RaftConfig,
    prng: Prng,
    timers: TimerTable<RaftTimer>,
    outbox: VecDeque<RaftOutput>,
    phase: Phase,
    role: Role,
    term: u64,
    voted_for: Option<NodeId>,
    /// Entries after `log_base`, consecutive.
    entries: VecDeque<Entry>,
    /// Index just before `entries[0]` (the compaction point) and its term.
    log_base: u64,
    log_base_term: u64,
    commit_index: u64,
    applied_index: u64,
    /// Peer messages waiting for the vote record current when they were produced to be durable.
    held: VecDeque<(NodeId, Message)>,
    /// Highest index known to match the current leader's log (follower).
    leader_verified: u64,
    /// When this voter last heard from a leader of its term (stickiness).
    last_leader_contact: Option<Instant>,
    /// A snapshot install to acknowledge once durable: (leader, index, sent_at).
    snapshot_ack: Option<(NodeId, u64, u64)>,
    /// The applied index when a snapshot was last asked for: ask again only after as many
    /// entries again, so an owner that answers at once cannot loop with us.
    snapshot_asked_at: Option<u64>,
    writer: writer::Writer,
}

impl RaftNode {
    /// A voter that starts by recovering its durable state from disk.
    pub fn new(config: RaftConfig, seed: u64, now: Instant) -> RaftNode {
        assert!(
            config.voters.contains(&config.node_id),
            "a voter is among the voters"
        );
        assert!(config.voters.len() <= RAFT_VOTERS_MAX);
        assert!(config.election_timeout_min <= config.election_timeout_max);
        assert!(config.heartbeat_interval < config.election_timeout_min);
        let mut node = RaftNode {
            config,
            prng: Prng::new(seed),
            timers: TimerTable::default(),
            outbox: VecDeque::new(),
            phase: Phase::Recovering(recovery::Recovery::default()),
            role: Role::Follower { leader: None },
            term: 0,
            voted_for: None,
            entries: VecDeque::new(),
            log_base: 0,
            log_base_term: 0,
            commit_index: 0,
            applied_index: 0,
            held: VecDeque::new(),
            leader_verified: 0,
            last_leader_contact: Some(now),
            snapshot_ack: None,
            snapshot_asked_at: None,
            writer: writer::Writer::default(),
        };
        node.start_recovery();
        node
    }

    /// Takes one input. The owner must have drained every output first.
    pub fn handle(&mut self, now: Instant, input: RaftInput) {
        assert!(self.outbox.is_empty(), "the driver drains outputs first");
        match (&self.phase, input) {
            (_, RaftInput::Disk(completion)) => self.on_disk(now, completion),
            (Phase::Faulted, _) => {}
            (Phase::Recovering(_), RaftInput::Propose { id, .. }) => self.refuse(id, false),
            (Phase::Recovering(_), RaftInput::Read { id }) => self.refuse(id, true),
            (Phase::Recovering(_), _) => {}
            (Phase::Ready, RaftInput::Message { from, message }) => {
                self.on_message(now, from, message)
            }
            (Phase::Ready, RaftInput::Propose { id, command }) => self.on_propose(now, id, command),
            (Phase::Ready, RaftInput::Read { id }) => self.on_read(now, id),
            (Phase::Ready, RaftInput::Snapshot { index, data }) => self.on_snapshot(index, data),
            (Phase::Ready, RaftInput::Timeout) => self.on_timeout(now),
        }
        self.after_step();
        self.invariants();
    }

    /// The next output, if any.
    pub fn poll_output(&mut self) -> Option<RaftOutput> {
        self.outbox.pop_front()
    }

    /// When to deliver the next [`RaftInput::Timeout`].
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.phase {
            Phase::Ready => self.timers.next_deadline(),
            _ => None,
        }
    }

    /// The current term.
    pub fn term(&self) -> u64 {
        self.term
    }

    /// True while this voter leads.
    pub fn is_leader(&self) -> bool {
        matches!(self.role, Role::Leader(_))
    }

    /// The leader this voter believes in.
    pub fn leader(&self) -> Option<NodeId> {
        match &self.role {
            Role::Leader(_) => Some(self.config.node_id),
            Role::Follower { leader } => *leader,
            _ => None,
        }
    }

    /// True once recovery finished and no disk fault stopped the node.
    pub fn is_ready(&self) -> bool {
        matches!(self.phase, Phase::Ready)
    }

    /// The commit index.
    pub fn commit_index(&self) -> u64 {
        self.commit_index
    }

    /// The highest index handed out for applying.
    pub fn applied_index(&self) -> u64 {
        self.applied_index
    }

    /// The index of the last entry.
    pub fn last_index(&self) -> u64 {
        self.log_base + self.entries.len() as u64
    }

    /// The index up to which the log is durable on this voter.
    pub fn durable_index(&self) -> u64 {
        self.writer.durable_index
    }

    fn majority(&self) -> usize {
        self.config.voters.len() / 2 + 1
    }

    fn peers(&self) -> impl Iterator<Item = NodeId> + '_ {
        let me = self.config.node_id;
        self.config.voters.iter().copied().filter(move |v| *v != me)
    }

    fn last_term(&self) -> u64 {
        self.entries.back().map_or(self.log_base_term, |e| e.term)
    }

    /// The term of the entry at `index`, if this voter still knows it.
    fn term_at(&self, index: u64) -> Option<u64> {
        if index == self.log_base {
            return Some(self.log_base_term);
        }
        let offset = index.checked_sub(self.log_base + 1)?;
        self.entries
            .get(usize::try_from(offset).ok()?)
            .map(|e| e.term)
    }

    fn entry(&self, index: u64) -> Option<&Entry> {
        let offset = index.checked_sub(self.log_base + 1)?;
        self.entries.get(usize::try_from(offset).ok()?)
    }

    fn push(&mut self, output: RaftOutput) {
        assert!(self.outbox.len() < RAFT_OUTBOX_MAX, "outbox overflow");
        self.outbox.push_back(output);
    }

    /// Queues a peer message; it leaves once the current vote record is durable.
    fn send(&mut self, to: NodeId, message: Message) {
        assert!(to != self.config.node_id);
        if self.held.len() >= RAFT_HELD_MESSAGES_MAX {
            // Messages are best effort (the network drops them anyway); retransmission by
            // heartbeats and timeouts recovers, so shed the oldest rather than grow.
            self.held.pop_front();
        }
        self.held.push_back((to, message));
    }

    fn refuse(&mut self, id: ProposalId, read: bool) {
        let result = Err(ProposeError::NotLeader { leader_hint: None });
        self.push(if read {
            RaftOutput::ReadResult { id, result }
        } else {
            RaftOutput::ProposalResult { id, result }
        });
    }

    fn on_timeout(&mut self, now: Instant) {
        while let Some(timer) = self.timers.pop_expired(now) {
            match timer {
                RaftTimer::Election => self.on_election_timeout(now),
                RaftTimer::Heartbeat => self.on_heartbeat_timeout(now),
                RaftTimer::CheckQuorum => self.on_check_quorum_timeout(now),
            }
        }
    }

    /// Work every step ends with: start disk writes, release durable messages, apply.
    fn after_step(&mut self) {
        if !matches!(self.phase, Phase::Ready) {
            return;
        }
        self.writer_kick();
        self.release_held();
        self.apply_committed();
        self.maybe_want_snapshot();
    }

    fn release_held(&mut self) {
        if self.writer.durable_vote != (self.term, self.voted_for) {
            return;
        }
        while let Some((to, message)) = self.held.pop_front() {
            self.push(RaftOutput::Send { to, message });
        }
    }

    fn apply_committed(&mut self) {
        let end = self.commit_index.min(self.last_index());
        while self.applied_index < end {
            let entry = self
                .entry(self.applied_index + 1)
                .expect("entries above the applied index are kept")
                .clone();
            self.applied_index += 1;
            self.push(RaftOutput::Apply(entry));
        }
    }

    fn maybe_want_snapshot(&mut self) {
        let entries = self.entries.len() as u64;
        let threshold = self.config.snapshot_wanted_entries;
        let asked_recently = self
            .snapshot_asked_at
            .is_some_and(|at| self.applied_index < at.saturating_add(threshold));
        if !asked_recently && entries > threshold && self.applied_index > self.log_base {
            let applied_index = self.applied_index;
            self.snapshot_asked_at = Some(applied_index);
            self.push(RaftOutput::SnapshotWanted { applied_index });
        }
    }

    /// Accepts the owner's snapshot of the applied state and persists it.
    fn on_snapshot(&mut self, index: u64, data: Bytes) {
        let Some(term) = self.term_at(index) else {
            return;
        };
        if index <= self.log_base
            || index > self.applied_index
            || data.len() > RAFT_SNAPSHOT_BYTES_MAX
        {
            return;
        }
        self.writer.stage_snapshot(index, term, data);
    }

    /// Cheap checks that hold after every step.
    fn invariants(&self) {
        assert!(self.applied_index <= self.commit_index.max(self.log_base));
        assert!(self.log_base <= self.last_index());
        assert!(self.writer.durable_vote.0 <= self.term);
        if let Some(first) = self.entries.front() {
            assert_eq!(first.index, self.log_base + 1);
            assert!(first.term >= self.log_base_term);
        }
        if let Role::Leader(state) = &self.role {
            assert_eq!(self.voted_for, Some(self.config.node_id));
            assert!(state.proposals.len() <= RAFT_PROPOSALS_IN_FLIGHT_MAX);
        }
        assert!(self.held.len() <= RAFT_HELD_MESSAGES_MAX);
    }

    fn next_disk_id(&mut self) -> DiskRequestId {
        self.writer.next_id += 1;
        self.writer.next_id
    }

    fn fault(&mut self, error: DiskError) {
        self.phase = Phase::Faulted;
        self.held.clear();
        self.timers = TimerTable::default();
        self.push(RaftOutput::Faulted(error));
    }
}
