//! The peer messages of the controller quorum and the log entries they carry.
//!
//! Messages are plain data that derive serde so the peer transport can frame them with postcard
//! (DESIGN §5). Every field a peer controls is checked by the receiver before it is trusted: a
//! malformed or stale message is ignored or answered, never a reason to panic.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// A voter's id, as in KRaft's `node.id`.
pub type NodeId = u32;

/// What one log entry carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Payload {
    /// The entry a new leader appends so that an entry of its own term commits (Raft §5.4.2,
    /// thesis §6.4: a leader may serve reads only after it committed one).
    Noop,
    /// An opaque state-machine command from a proposal.
    Command(#[serde(with = "bytes_serde")] Bytes),
}

/// One entry of the replicated log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Position in the log, from 1.
    pub index: u64,
    /// Term of the leader that created it.
    pub term: u64,
    /// What it carries.
    pub payload: Payload,
}

/// A message between voters (Raft figure 2, thesis §9.6 for pre-vote, KIP-595 for the
/// KRaft spellings).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// "Would you vote for me in `term`?" — sent without bumping the sender's term.
    PreVote {
        /// The term the sender would stand in (its current term + 1).
        term: u64,
        /// Index of the sender's last entry.
        last_log_index: u64,
        /// Term of the sender's last entry.
        last_log_term: u64,
    },
    /// Answer to a [`Message::PreVote`].
    PreVoteResponse {
        /// The term the pre-vote asked about, echoed so stale answers can be told apart.
        term: u64,
        /// The responder's current term.
        current_term: u64,
        /// True if the responder would vote.
        granted: bool,
    },
    /// A real vote request (RequestVote).
    Vote {
        /// The candidate's term.
        term: u64,
        /// Index of the candidate's last entry.
        last_log_index: u64,
        /// Term of the candidate's last entry.
        last_log_term: u64,
    },
    /// Answer to a [`Message::Vote`]; a grant is sent only once the vote is durable.
    VoteResponse {
        /// The responder's current term.
        term: u64,
        /// True if the vote was granted.
        granted: bool,
    },
    /// Log replication and heartbeat.
    AppendEntries {
        /// The leader's term.
        term: u64,
        /// Index of the entry just before `entries`.
        prev_log_index: u64,
        /// Term of that entry.
        prev_log_term: u64,
        /// Entries to append, consecutive from `prev_log_index + 1`.
        entries: Vec<Entry>,
        /// The leader's commit index.
        leader_commit: u64,
        /// The leader's clock when sent, echoed back to extend the leader's lease.
        sent_at: u64,
    },
    /// Answer to [`Message::AppendEntries`].
    AppendEntriesResponse {
        /// The responder's current term.
        term: u64,
        /// True if the entries matched (and `match_index` is durable on the responder).
        success: bool,
        /// On success the highest index known to match the leader and durable; on failure a
        /// hint: the responder's last log index.
        match_index: u64,
        /// Echo of the request's `sent_at`.
        sent_at: u64,
    },
    /// A whole state-machine snapshot for a follower that lags behind the leader's log start
    /// (Raft §7, KIP-630 FetchSnapshot, sent in one piece because snapshots are bounded).
    InstallSnapshot {
        /// The leader's term.
        term: u64,
        /// Last index the snapshot covers.
        last_index: u64,
        /// Term of that entry.
        last_term: u64,
        /// The state machine's bytes.
        #[serde(with = "bytes_serde")]
        data: Bytes,
        /// The leader's clock when sent.
        sent_at: u64,
    },
    /// Answer to [`Message::InstallSnapshot`], sent once the snapshot is durable.
    InstallSnapshotResponse {
        /// The responder's current term.
        term: u64,
        /// Highest index the responder now holds durably (0 if it rejected the snapshot).
        last_index: u64,
        /// Echo of the request's `sent_at`.
        sent_at: u64,
    },
}

impl Message {
    /// The term the message carries (for pre-votes: the term asked about).
    pub fn term(&self) -> u64 {
        match self {
            Message::PreVote { term, .. }
            | Message::PreVoteResponse { term, .. }
            | Message::Vote { term, .. }
            | Message::VoteResponse { term, .. }
            | Message::AppendEntries { term, .. }
            | Message::AppendEntriesResponse { term, .. }
            | Message::InstallSnapshot { term, .. }
            | Message::InstallSnapshotResponse { term, .. } => *term,
        }
    }
}

/// Serializes `Bytes` as a byte string (core's `bytes` dependency has no serde feature).
mod bytes_serde {
    use bytes::Bytes;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &Bytes, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(bytes)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        let v: Vec<u8> = Deserialize::deserialize(d)?;
        Ok(Bytes::from(v))
    }
}
