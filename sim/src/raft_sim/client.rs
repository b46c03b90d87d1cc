//! The client workload, the fault schedule and the liveness phase.

use super::*;

impl RaftSim {
    pub(super) fn on_client(&mut self) {
        if self.phase != Phase::Safety {
            return;
        }
        let gap = self.prng.range_inclusive(1, 2 * self.params.client_gap_us);
        self.schedule(self.now + Duration::from_micros(gap), Event::Client);
        // Mostly ask the voter believed to lead; sometimes anyone (exercises NotLeader).
        let target = if self.prng.chance(0.8) {
            self.leader_guess
        } else {
            1 + self.prng.below(u64::from(self.params.voters)) as NodeId
        };
        let now = self.now;
        if self.node(target).raft.is_none() || self.node(target).paused_until > now {
            return;
        }
        let id = self.next_command;
        self.next_command += 1;
        let read = self.prng.chance(self.params.read_share);
        self.pending.insert(id, (self.acked_index_max, read));
        self.trace.add(&[self.now.0, 30, u64::from(target), id]);
        let input = if read {
            RaftInput::Read { id }
        } else {
            let command = Bytes::copy_from_slice(&id.to_be_bytes());
            RaftInput::Propose { id, command }
        };
        self.feed(target, input);
    }

    pub(super) fn on_proposal_result(&mut self, id: u64, result: Result<u64, ProposeError>) {
        self.pending.remove(&id);
        let Ok(index) = result else {
            if let Err(ProposeError::NotLeader {
                leader_hint: Some(hint),
            }) = result
            {
                self.leader_guess = hint;
            }
            return;
        };
        self.trace.add(&[self.now.0, 31, id, index]);
        self.report.acked += 1;
        self.acked.insert(id, index);
        self.acked_index_max = self.acked_index_max.max(index);
        if let Some(known) = self.history.get(&index) {
            if known.1 != id {
                let known = *known;
                self.violate(format!(
                    "proposal {id} acknowledged at index {index}, history has {known:?}"
                ));
            }
        }
    }

    pub(super) fn on_read_result(&mut self, id: u64, result: Result<u64, ProposeError>) {
        let Some((floor, _)) = self.pending.remove(&id) else {
            return;
        };
        if let Ok(index) = result {
            self.report.reads += 1;
            self.trace.add(&[self.now.0, 32, id, index]);
            if index < floor {
                self.violate(format!(
                    "read {id} got index {index} below {floor}, acknowledged before it began"
                ));
            }
        }
    }

    pub(super) fn schedule_faults(&mut self) {
        let p = &self.params;
        let kinds = [
            (p.crash_every_ms, Event::Crash),
            (p.pause_every_ms, Event::Pause),
            (p.partition_every_ms, Event::Partition),
        ];
        for (every, event) in kinds {
            if every > 0 {
                let gap = self.prng.range_inclusive(1, 2 * every);
                self.schedule(self.now + Duration::from_millis(gap), event);
            }
        }
    }

    fn reschedule(&mut self, every_ms: u64, event: Event) {
        if self.phase == Phase::Safety && every_ms > 0 {
            let gap = self.prng.range_inclusive(1, 2 * every_ms);
            self.schedule(self.now + Duration::from_millis(gap), event);
        }
    }

    pub(super) fn on_crash(&mut self) {
        if self.phase != Phase::Safety {
            return;
        }
        self.reschedule(self.params.crash_every_ms, Event::Crash);
        let id = 1 + self.prng.below(u64::from(self.params.voters)) as NodeId;
        let power_loss = self.prng.chance(self.params.power_loss);
        self.crash(id, power_loss);
    }

    /// Stops voter `id` (losing unsynced writes on a power loss) and schedules its restart.
    pub(super) fn crash(&mut self, id: NodeId, power_loss: bool) {
        if self.node(id).raft.is_none() {
            return;
        }
        self.trace
            .add(&[self.now.0, 40, u64::from(id), u64::from(power_loss)]);
        let faults = self.faults.clone();
        let node = &mut self.nodes[(id - 1) as usize];
        if power_loss {
            node.disk.power_loss(&faults, &mut self.prng);
        }
        node.raft = None;
        node.incarnation += 1;
        node.disk_free_at = self.now;
        let delay = self
            .prng
            .range_inclusive(1, 3 * self.params.election_timeout_min_ms);
        self.schedule(
            self.now + Duration::from_millis(delay),
            Event::Restart { node: id },
        );
    }

    pub(super) fn on_pause(&mut self) {
        if self.phase != Phase::Safety {
            return;
        }
        self.reschedule(self.params.pause_every_ms, Event::Pause);
        let id = 1 + self.prng.below(u64::from(self.params.voters)) as NodeId;
        let length = self
            .prng
            .range_inclusive(1, 3 * self.params.election_timeout_min_ms);
        self.trace.add(&[self.now.0, 41, u64::from(id), length]);
        let until = self.now + Duration::from_millis(length);
        self.node(id).paused_until = until;
    }

    pub(super) fn on_partition(&mut self) {
        if self.phase != Phase::Safety {
            return;
        }
        self.reschedule(self.params.partition_every_ms, Event::Partition);
        let ids: Vec<NodeId> = (1..=self.params.voters).collect();
        let kind = self
            .net
            .partition(&ids, network::PARTITION_KINDS, &mut self.prng) as u64;
        let length = self
            .prng
            .range_inclusive(1, self.params.partition_every_ms.max(1));
        self.trace.add(&[self.now.0, 42, kind, length]);
        self.schedule(self.now + Duration::from_millis(length), Event::Heal);
    }

    /// Faults stop: the network heals and calms, disks stop failing, every voter comes back.
    pub(super) fn begin_liveness(&mut self) {
        self.trace.add(&[self.now.0, 50]);
        self.phase = Phase::Liveness;
        self.phase_started = self.now;
        self.net.calm();
        self.faults = DiskFaults {
            latency_us: self.faults.latency_us,
            ..DiskFaults::none()
        };
        for id in 1..=self.params.voters {
            self.node(id).paused_until = self.now;
            if self.node(id).raft.is_none() {
                self.report.restarts += 1;
                self.start_node(id);
            }
        }
        self.schedule(self.now + Duration::from_millis(10), Event::Check);
    }

    /// The cluster converged once a leader exists and every voter applied every
    /// acknowledged proposal.
    pub(super) fn check_liveness(&mut self) {
        let leader = self
            .nodes
            .iter()
            .any(|n| n.raft.as_ref().is_some_and(|r| r.is_leader()));
        let all_applied = self.acked.iter().all(|(id, index)| {
            self.nodes.iter().all(|n| {
                n.applied
                    .get((*index - 1) as usize)
                    .is_some_and(|(_, applied)| applied == id)
            })
        });
        if leader && all_applied {
            self.phase = Phase::Done;
            return;
        }
        if self.now.saturating_since(self.phase_started) > LIVENESS_BOUND {
            let stuck = if leader {
                "acknowledged proposals not applied everywhere"
            } else {
                "no leader"
            };
            return self.violate(format!(
                "liveness: {stuck} after {LIVENESS_BOUND:?} without faults"
            ));
        }
        self.schedule(self.now + Duration::from_millis(10), Event::Check);
    }
}
