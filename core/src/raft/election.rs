//! Elections: pre-vote, vote, leader stickiness and check-quorum (Raft §5.2, thesis §4.2.3,
//! §6.2 and §9.6, KIP-595).

use super::*;
use crate::canary::Canary;

impl RaftNode {
    pub(super) fn reset_election_timer(&mut self, now: Instant) {
        let low = self.config.election_timeout_min.as_nanos();
        let high = self.config.election_timeout_max.as_nanos();
        let timeout = Duration::from_nanos(self.prng.range_inclusive(low, high));
        self.timers.set(RaftTimer::Election, now + timeout);
    }

    /// True while this voter heard from a leader less than the minimum timeout ago, or leads.
    fn leader_recently(&self, now: Instant) -> bool {
        let window = self.config.election_timeout_min;
        self.is_leader() || self.last_leader_contact.is_some_and(|t| now < t + window)
    }

    /// True if a log ending at (`index`, `term`) is at least as up to date as ours (§5.4.1).
    fn log_up_to_date(&self, index: u64, term: u64) -> bool {
        (term, index) >= (self.last_term(), self.last_index())
    }

    pub(super) fn on_election_timeout(&mut self, now: Instant) {
        self.reset_election_timer(now);
        if self.is_leader() {
            return;
        }
        let me = self.config.node_id;
        self.role = Role::PreCandidate {
            granted: BTreeSet::from([me]),
        };
        let message = Message::PreVote {
            term: self.term + 1,
            last_log_index: self.last_index(),
            last_log_term: self.last_term(),
        };
        let peers: Vec<NodeId> = self.peers().collect();
        for peer in peers {
            self.send(peer, message.clone());
        }
        self.check_pre_vote_won(now);
    }

    fn check_pre_vote_won(&mut self, now: Instant) {
        if let Role::PreCandidate { granted } = &self.role {
            if granted.len() >= self.majority() {
                self.start_election(now);
            }
        }
    }

    fn start_election(&mut self, now: Instant) {
        let me = self.config.node_id;
        self.term += 1;
        self.voted_for = Some(me);
        self.leader_verified = 0;
        self.role = Role::Candidate {
            granted: BTreeSet::from([me]),
        };
        self.push(RaftOutput::Leader {
            term: self.term,
            leader: None,
        });
        let message = Message::Vote {
            term: self.term,
            last_log_index: self.last_index(),
            last_log_term: self.last_term(),
        };
        let peers: Vec<NodeId> = self.peers().collect();
        for peer in peers {
            self.send(peer, message.clone());
        }
        if self.majority() == 1 {
            self.become_leader(now);
        }
    }

    pub(super) fn on_pre_vote(&mut self, now: Instant, from: NodeId, message: Message) {
        let Message::PreVote {
            term,
            last_log_index,
            last_log_term,
        } = message
        else {
            return;
        };
        let granted = term > self.term
            && !self.leader_recently(now)
            && self.log_up_to_date(last_log_index, last_log_term);
        let current_term = self.term;
        self.send(
            from,
            Message::PreVoteResponse {
                term,
                current_term,
                granted,
            },
        );
    }

    pub(super) fn on_pre_vote_response(&mut self, now: Instant, from: NodeId, message: Message) {
        let Message::PreVoteResponse {
            term,
            current_term,
            granted,
        } = message
        else {
            return;
        };
        if current_term > self.term && !granted {
            // A voter ahead of us: adopt its term, or we could never win it a vote.
            return self.become_follower(now, current_term, None);
        }
        if term != self.term + 1 || !granted {
            return;
        }
        if let Role::PreCandidate { granted } = &mut self.role {
            granted.insert(from);
        }
        self.check_pre_vote_won(now);
    }

    pub(super) fn on_vote(&mut self, now: Instant, from: NodeId, message: Message) {
        let Message::Vote {
            term,
            last_log_index,
            last_log_term,
        } = message
        else {
            return;
        };
        // Stickiness: a voter that hears from a live leader neither bumps its term nor votes,
        // which is also what keeps the leader's lease safe.
        if term > self.term && self.leader_recently(now) {
            return;
        }
        if term > self.term {
            self.become_follower(now, term, None);
        }
        let free = self.voted_for.is_none_or(|v| v == from)
            || self.config.canaries.is_on(Canary::RaftVotesTwiceInATerm);
        let granted =
            term == self.term && free && self.log_up_to_date(last_log_index, last_log_term);
        if granted {
            self.voted_for = Some(from);
            self.reset_election_timer(now);
        }
        let term = self.term;
        self.send(from, Message::VoteResponse { term, granted });
    }

    pub(super) fn on_vote_response(&mut self, now: Instant, from: NodeId, message: Message) {
        let Message::VoteResponse { term, granted } = message else {
            return;
        };
        if term > self.term {
            return self.become_follower(now, term, None);
        }
        if term != self.term || !granted {
            return;
        }
        let majority = self.majority();
        if let Role::Candidate { granted } = &mut self.role {
            granted.insert(from);
            if granted.len() >= majority {
                self.become_leader(now);
            }
        }
    }

    /// Follows `leader` (if known) in `term`, stepping down from any other role.
    pub(super) fn become_follower(&mut self, now: Instant, term: u64, leader: Option<NodeId>) {
        assert!(term >= self.term);
        let changed = term > self.term || self.leader() != leader || self.is_leader();
        if term > self.term {
            self.term = term;
            self.voted_for = None;
            self.leader_verified = 0;
        }
        if let Role::Leader(state) = std::mem::replace(&mut self.role, Role::Follower { leader }) {
            for (_, id) in state.proposals {
                let result = Err(ProposeError::Indeterminate);
                self.push(RaftOutput::ProposalResult { id, result });
            }
            self.timers.stop(RaftTimer::Heartbeat);
            self.timers.stop(RaftTimer::CheckQuorum);
        }
        self.reset_election_timer(now);
        if changed {
            self.push(RaftOutput::Leader { term, leader });
        }
    }

    fn become_leader(&mut self, now: Instant) {
        assert_eq!(self.voted_for, Some(self.config.node_id));
        let next_index = self.last_index() + 1;
        let progress = self
            .peers()
            .map(|peer| {
                let p = Progress {
                    next_index,
                    match_index: 0,
                    acked_sent_at: None,
                    last_sent_at: None,
                    last_heard: Some(now),
                };
                (peer, p)
            })
            .collect();
        self.role = Role::Leader(Box::new(LeaderState {
            progress,
            proposals: BTreeMap::new(),
            noop_index: next_index,
        }));
        self.timers.stop(RaftTimer::Election);
        self.timers.set(
            RaftTimer::CheckQuorum,
            now + self.config.election_timeout_min,
        );
        self.push(RaftOutput::Leader {
            term: self.term,
            leader: Some(self.config.node_id),
        });
        self.append_local(Payload::Noop);
        self.on_heartbeat_timeout(now);
    }

    pub(super) fn on_check_quorum_timeout(&mut self, now: Instant) {
        let window = self.config.election_timeout_min;
        let Role::Leader(state) = &self.role else {
            return;
        };
        let heard = state
            .progress
            .values()
            .filter(|p| p.last_heard.is_some_and(|t| now < t + window))
            .count();
        if heard + 1 >= self.majority() {
            self.timers.set(RaftTimer::CheckQuorum, now + window);
        } else {
            let term = self.term;
            self.become_follower(now, term, None);
        }
    }
}
