//! Log replication, commit, lease reads and snapshot transfer (Raft §5.3, §5.4, §7; thesis
//! §6.4; KIP-630).

use super::*;
use crate::canary::Canary;

impl RaftNode {
    pub(super) fn on_message(&mut self, now: Instant, from: NodeId, message: Message) {
        if from == self.config.node_id || !self.config.voters.contains(&from) {
            return;
        }
        match message {
            Message::PreVote { .. } => self.on_pre_vote(now, from, message),
            Message::PreVoteResponse { .. } => self.on_pre_vote_response(now, from, message),
            Message::Vote { .. } => self.on_vote(now, from, message),
            Message::VoteResponse { .. } => self.on_vote_response(now, from, message),
            Message::AppendEntries { .. } | Message::InstallSnapshot { .. } => {
                if self.accept_leader(now, from, message.term()) {
                    match message {
                        Message::AppendEntries { .. } => self.on_append_entries(from, message),
                        _ => self.on_install_snapshot(from, message),
                    }
                }
            }
            Message::AppendEntriesResponse { .. } | Message::InstallSnapshotResponse { .. } => {
                self.on_replication_response(now, from, message)
            }
        }
    }

    /// Checks the term of a leader's request; answers a stale one so the old leader learns the
    /// new term, and follows a current one.
    fn accept_leader(&mut self, now: Instant, from: NodeId, term: u64) -> bool {
        if term < self.term
            && !self.is_leader()
            && self
                .config
                .canaries
                .is_on(Canary::RaftAcceptsStaleLeaderEpoch)
        {
            self.last_leader_contact = Some(now);
            self.reset_election_timer(now);
            return true;
        }
        if term < self.term {
            let (term, match_index) = (self.term, self.last_index());
            let message = Message::AppendEntriesResponse {
                term,
                success: false,
                match_index,
                sent_at: 0,
            };
            self.send(from, message);
            return false;
        }
        if term == self.term && self.is_leader() {
            // Two leaders in one term cannot happen; a peer claiming it is broken: ignore it.
            return false;
        }
        if term > self.term || self.leader() != Some(from) {
            self.become_follower(now, term, Some(from));
        }
        self.last_leader_contact = Some(now);
        self.reset_election_timer(now);
        true
    }

    fn on_append_entries(&mut self, from: NodeId, message: Message) {
        let Message::AppendEntries {
            term,
            prev_log_index: mut prev,
            prev_log_term: mut prev_term,
            mut entries,
            leader_commit,
            sent_at,
        } = message
        else {
            return;
        };
        let consecutive = entries
            .iter()
            .enumerate()
            .all(|(i, e)| Some(e.index) == prev.checked_add(i as u64 + 1));
        // A real leader's entries never go back in term and never exceed its own term; a
        // message that says otherwise is malformed and would break the log's term order.
        let ordered = prev_term <= term
            && entries
                .iter()
                .try_fold(prev_term, |last, e| {
                    (last <= e.term && e.term <= term).then_some(e.term)
                })
                .is_some();
        if !consecutive || !ordered || entries.len() > RAFT_APPEND_ENTRIES_MAX {
            return;
        }
        if prev < self.log_base {
            // Everything up to our snapshot is committed and therefore matches.
            let skip = (self.log_base - prev).min(entries.len() as u64) as usize;
            entries.drain(..skip);
            (prev, prev_term) = (self.log_base, self.log_base_term);
            if entries.is_empty() {
                return self.reply_append(from, true, self.log_base, sent_at);
            }
        }
        match self.term_at(prev) {
            None => return self.reply_append(from, false, self.last_index(), sent_at),
            Some(term) if term != prev_term => {
                let hint = self.conflict_hint(prev, term);
                return self.reply_append(from, false, hint, sent_at);
            }
            Some(_) => {}
        }
        let Some(verified) = self.append_from_leader(prev, entries) else {
            return;
        };
        self.leader_verified = verified;
        self.commit_index = self.commit_index.max(leader_commit.min(verified));
        let durable = verified.min(self.writer.durable_index);
        self.reply_append(from, true, durable, sent_at);
    }

    /// The index before the first entry of `term` that ends at `index` (thesis §5.3's
    /// accelerated log backtracking), so a long divergent suffix costs one round trip per term.
    fn conflict_hint(&self, index: u64, term: u64) -> u64 {
        let mut hint = index.saturating_sub(1);
        while hint > self.log_base && self.term_at(hint) == Some(term) {
            hint -= 1;
        }
        hint
    }

    /// Appends a leader's entries after the matching `prev`; returns the highest index now
    /// known to match the leader, or `None` if the request would cut committed entries.
    fn append_from_leader(&mut self, prev: u64, entries: Vec<Entry>) -> Option<u64> {
        let mut verified = prev;
        for entry in entries {
            match self.term_at(entry.index) {
                Some(term) if term == entry.term => {}
                Some(_) if entry.index <= self.commit_index => return None,
                Some(_) => {
                    self.truncate_log_from(entry.index);
                    self.entries.push_back(entry.clone());
                }
                None if self.entries.len() >= RAFT_LOG_ENTRIES_MAX => break,
                None => self.entries.push_back(entry.clone()),
            }
            verified = entry.index;
        }
        Some(verified)
    }

    fn truncate_log_from(&mut self, index: u64) {
        assert!(index > self.commit_index && index > self.log_base);
        let keep = (index - self.log_base - 1) as usize;
        self.entries.truncate(keep);
        self.writer.truncate_from(index);
    }

    fn reply_append(&mut self, to: NodeId, success: bool, match_index: u64, sent_at: u64) {
        let term = self.term;
        let message = Message::AppendEntriesResponse {
            term,
            success,
            match_index,
            sent_at,
        };
        self.send(to, message);
    }

    fn on_install_snapshot(&mut self, from: NodeId, message: Message) {
        let Message::InstallSnapshot {
            term,
            last_index,
            last_term,
            data,
            sent_at,
        } = message
        else {
            return;
        };
        if last_term > term {
            return; // Malformed: a snapshot cannot hold entries of a later term.
        }
        if last_index <= self.commit_index.max(self.log_base)
            || data.len() > RAFT_SNAPSHOT_BYTES_MAX
        {
            let last_index = self.commit_index.min(self.writer.durable_index);
            let message = Message::InstallSnapshotResponse {
                term: self.term,
                last_index,
                sent_at,
            };
            return self.send(from, message);
        }
        if self.term_at(last_index) == Some(last_term) {
            // Our log continues the snapshot: keep the suffix.
            let drop = (last_index - self.log_base) as usize;
            self.entries.drain(..drop);
        } else {
            self.entries.clear();
            self.writer.discard_all(last_index);
        }
        self.log_base = last_index;
        self.log_base_term = last_term;
        self.leader_verified = self.leader_verified.max(last_index);
        self.commit_index = last_index;
        if self.applied_index < last_index {
            self.applied_index = last_index;
            let data = data.clone();
            let (index, term) = (last_index, last_term);
            self.push(RaftOutput::RestoreSnapshot { index, term, data });
        }
        self.writer.stage_snapshot(last_index, last_term, data);
        self.snapshot_ack = Some((from, last_index, sent_at));
    }

    fn on_replication_response(&mut self, now: Instant, from: NodeId, message: Message) {
        let (term, success, match_index, sent_at) = match message {
            Message::AppendEntriesResponse {
                term,
                success,
                match_index,
                sent_at,
            } => (term, success, match_index, sent_at),
            Message::InstallSnapshotResponse {
                term,
                last_index,
                sent_at,
            } => (term, true, last_index, sent_at),
            _ => return,
        };
        if term > self.term {
            return self.become_follower(now, term, None);
        }
        let last_index = self.last_index();
        let Role::Leader(state) = &mut self.role else {
            return;
        };
        let Some(p) = state.progress.get_mut(&from) else {
            return;
        };
        if term < self.term || match_index > last_index {
            return;
        }
        p.last_heard = Some(now);
        if sent_at <= now.0 {
            p.acked_sent_at = p.acked_sent_at.max(Some(sent_at));
        }
        if success {
            p.match_index = p.match_index.max(match_index);
            p.next_index = p.next_index.max(p.match_index + 1);
            self.advance_commit();
        } else {
            p.next_index = (match_index + 1).max(p.match_index + 1);
            if p.last_sent_at == Some(sent_at) {
                self.send_append(now, from, false);
            }
        }
    }

    pub(super) fn on_heartbeat_timeout(&mut self, now: Instant) {
        if !self.is_leader() {
            return;
        }
        self.timers
            .set(RaftTimer::Heartbeat, now + self.config.heartbeat_interval);
        let peers: Vec<NodeId> = self.peers().collect();
        for peer in peers {
            self.send_append(now, peer, true);
        }
    }

    /// Sends `peer` the entries from its next index (or, with `retransmit`, from its match
    /// index: what was sent since may have been lost), or the snapshot if they are compacted.
    fn send_append(&mut self, now: Instant, peer: NodeId, retransmit: bool) {
        let (last_index, term, commit) = (self.last_index(), self.term, self.commit_index);
        let Role::Leader(state) = &self.role else {
            return;
        };
        let Some(p) = state.progress.get(&peer) else {
            return;
        };
        let from = if retransmit {
            p.match_index + 1
        } else {
            p.next_index
        };
        let prev = from - 1;
        let Some(prev_term) = self.term_at(prev) else {
            return self.send_snapshot(now, peer);
        };
        let to = last_index.min(prev + RAFT_APPEND_ENTRIES_MAX as u64);
        if !retransmit && to == prev {
            return;
        }
        let entries: Vec<Entry> = (from..=to).filter_map(|i| self.entry(i).cloned()).collect();
        if let Role::Leader(state) = &mut self.role {
            let p = state.progress.get_mut(&peer).expect("checked above");
            p.next_index = to + 1;
            p.last_sent_at = Some(now.0);
        }
        let message = Message::AppendEntries {
            term,
            prev_log_index: prev,
            prev_log_term: prev_term,
            entries,
            leader_commit: commit,
            sent_at: now.0,
        };
        self.send(peer, message);
    }

    fn send_snapshot(&mut self, now: Instant, peer: NodeId) {
        let Some(snapshot) = self.writer.snapshot.clone() else {
            return;
        };
        if let Role::Leader(state) = &mut self.role {
            if let Some(p) = state.progress.get_mut(&peer) {
                p.next_index = snapshot.last_index + 1;
                p.last_sent_at = Some(now.0);
            }
        }
        let message = Message::InstallSnapshot {
            term: self.term,
            last_index: snapshot.last_index,
            last_term: snapshot.last_term,
            data: snapshot.data,
            sent_at: now.0,
        };
        self.send(peer, message);
    }

    /// Commits the highest index a majority holds durably, if it is from this term.
    pub(super) fn advance_commit(&mut self) {
        let Role::Leader(state) = &self.role else {
            return;
        };
        let own = self.writer.durable_index;
        let mut matches: Vec<u64> = state.progress.values().map(|p| p.match_index).collect();
        matches.push(own);
        matches.sort_unstable_by(|a, b| b.cmp(a));
        let mut candidate = matches[self.majority() - 1];
        if self
            .config
            .canaries
            .is_on(Canary::RaftCommitsWithoutMajority)
        {
            candidate = own;
        }
        if candidate <= self.commit_index || self.term_at(candidate) != Some(self.term) {
            return;
        }
        self.commit_index = candidate;
        let Role::Leader(state) = &mut self.role else {
            return;
        };
        let rest = state.proposals.split_off(&(candidate + 1));
        let done = std::mem::replace(&mut state.proposals, rest);
        for (index, id) in done {
            self.push(RaftOutput::ProposalResult {
                id,
                result: Ok(index),
            });
        }
    }

    /// The local log became durable further: a leader may commit, a follower acknowledges.
    pub(super) fn on_durable_advanced(&mut self) {
        if self.is_leader() {
            return self.advance_commit();
        }
        if let (Some(leader), true) = (self.leader(), self.leader_verified > 0) {
            let durable = self.leader_verified.min(self.writer.durable_index);
            // No request is echoed: 0 leaves the lease where the last echo put it.
            self.reply_append(leader, true, durable, 0);
        }
    }

    pub(super) fn append_local(&mut self, payload: Payload) -> u64 {
        let index = self.last_index() + 1;
        let term = self.term;
        self.entries.push_back(Entry {
            index,
            term,
            payload,
        });
        index
    }

    pub(super) fn on_propose(&mut self, now: Instant, id: ProposalId, command: Bytes) {
        let full = self.entries.len() >= RAFT_LOG_ENTRIES_MAX;
        let leader_hint = self.leader();
        let Role::Leader(state) = &self.role else {
            let result = Err(ProposeError::NotLeader { leader_hint });
            return self.push(RaftOutput::ProposalResult { id, result });
        };
        if full
            || state.proposals.len() >= RAFT_PROPOSALS_IN_FLIGHT_MAX
            || command.len() > RAFT_COMMAND_BYTES_MAX
        {
            let result = Err(ProposeError::Overloaded);
            return self.push(RaftOutput::ProposalResult { id, result });
        }
        let index = self.append_local(Payload::Command(command));
        if let Role::Leader(state) = &mut self.role {
            state.proposals.insert(index, id);
        }
        let peers: Vec<NodeId> = self.peers().collect();
        for peer in peers {
            self.send_append(now, peer, false);
        }
    }

    pub(super) fn on_read(&mut self, now: Instant, id: ProposalId) {
        let result = match &self.role {
            Role::Leader(state) if self.commit_index < state.noop_index => {
                Err(ProposeError::NoLease)
            }
            Role::Leader(state) if self.lease_holds(now, state) => Ok(self.commit_index),
            Role::Leader(_) => Err(ProposeError::NoLease),
            _ => Err(ProposeError::NotLeader {
                leader_hint: self.leader(),
            }),
        };
        self.push(RaftOutput::ReadResult { id, result });
    }

    /// The lease starts at the send time of the newest request a majority acknowledged and
    /// lasts the minimum election timeout shortened by the clock drift bound.
    fn lease_holds(&self, now: Instant, state: &LeaderState) -> bool {
        if self.config.canaries.is_on(Canary::RaftReadsWithoutLease) {
            return true;
        }
        let mut acked: Vec<u64> = state
            .progress
            .values()
            .filter_map(|p| p.acked_sent_at)
            .collect();
        acked.push(now.0);
        acked.sort_unstable_by(|a, b| b.cmp(a));
        let Some(start) = acked.get(self.majority() - 1) else {
            return false;
        };
        let window = self.config.election_timeout_min.as_nanos();
        let drift = u64::from(self.config.clock_drift_max_ppm);
        let lease = window / 1_000_000 * (1_000_000 - drift.min(1_000_000));
        now.0 < start.saturating_add(lease)
    }
}
