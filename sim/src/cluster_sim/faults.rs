//! The fault schedule (swarm rates or a scenario's timeline) and the liveness phase.

use super::checks::read_log;
use super::client::{Consumer, Role};
use super::history::PartitionKey;
use super::*;
use crate::scenario::{Action, NodeSelector};
use std::collections::BTreeSet;

/// A node lost synced data, and until it is whole again every other node fault waits, so at
/// most one replica is ever failed while its data is missing (DESIGN §6 item 1: an acks=all
/// record survives while at most `rf − min.insync.replicas` replicas fail). A wiped node is
/// whole again once it is back in every ISR it belongs to with the data below each HW; rot
/// stays silent until read, so a rotted node stays failed for the rest of the safety phase.
#[derive(Clone, Copy, Debug)]
pub(super) struct DestroyedGuard {
    node: NodeId,
    until_liveness: bool,
}

/// A kind of fault the swarm injects at a rate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum FaultKind {
    Crash,
    Pause,
    Partition,
    ClientIsolate,
    Rot,
    Wipe,
    ClockJump,
}

impl ClusterSim {
    fn fault_rates(&self) -> [(u64, FaultKind); 7] {
        let p = &self.params;
        [
            (p.crash_every_ms, FaultKind::Crash),
            (p.pause_every_ms, FaultKind::Pause),
            (p.partition_every_ms, FaultKind::Partition),
            (p.client_isolate_every_ms, FaultKind::ClientIsolate),
            (p.rot_every_ms, FaultKind::Rot),
            (p.wipe_every_ms, FaultKind::Wipe),
            (p.clock_jump_every_ms, FaultKind::ClockJump),
        ]
    }

    /// Schedules the first fault of every kind the seed has.
    pub(super) fn schedule_faults(&mut self) {
        for (every, kind) in self.fault_rates() {
            self.schedule_fault(every, kind);
        }
    }

    fn schedule_fault(&mut self, every_ms: u64, kind: FaultKind) {
        if every_ms > 0 && self.phase == Phase::Safety {
            let gap = self.rng.faults.range_inclusive(1, 2 * every_ms);
            self.schedule(self.now + Duration::from_millis(gap), Event::Fault(kind));
        }
    }

    fn random_node(&mut self) -> NodeId {
        1 + self.rng.faults.below(u64::from(self.params.nodes)) as NodeId
    }

    pub(super) fn on_fault(&mut self, kind: FaultKind) {
        if self.phase != Phase::Safety {
            return;
        }
        let every = self
            .fault_rates()
            .into_iter()
            .find(|(_, k)| *k == kind)
            .map_or(0, |(e, _)| e);
        self.schedule_fault(every, kind);
        if kind != FaultKind::ClientIsolate && self.destroyed_node_failed() {
            return;
        }
        match kind {
            FaultKind::Crash => {
                let id = self.random_node();
                let power_loss = self.rng.faults.chance(self.params.power_loss);
                let down = self.rng.faults.range_inclusive(1, self.params.down_ms_max);
                let down = Duration::from_millis(down);
                if self.rng.faults.chance(self.params.graceful_share) {
                    self.shutdown(id, down);
                } else {
                    self.crash(id, power_loss, down);
                }
            }
            FaultKind::Pause => {
                let id = self.random_node();
                let length = self.rng.faults.range_inclusive(1, self.params.pause_ms_max);
                self.pause(id, length);
            }
            FaultKind::Partition => {
                let ids = self.params.node_ids();
                let kinds = self.params.partition_kinds;
                let cut = self.net.partition(&ids, kinds, &mut self.rng.faults);
                let length = self
                    .rng
                    .faults
                    .range_inclusive(1, self.params.partition_every_ms.max(1));
                self.trace.add(&[self.now.0, 42, cut as u64, length]);
                tracing::debug!(at = ?self.now, ?cut, length, "partition");
                self.schedule(self.now + Duration::from_millis(length), Event::HealNodes);
            }
            FaultKind::ClientIsolate => {
                let client = self.rng.faults.below(self.clients.len() as u64) as usize;
                let node = self.rng.faults.chance(0.5).then(|| self.random_node());
                self.isolate_client(client, node);
                let length = self
                    .rng
                    .faults
                    .range_inclusive(1, self.params.client_isolate_every_ms);
                let generation = 0;
                let at = self.now + Duration::from_millis(length);
                self.schedule(at, Event::HealClient { client, generation });
            }
            FaultKind::Rot => {
                let victims = self.params.destructible.clone();
                let id = victims[self.rng.faults.below(victims.len() as u64) as usize];
                if self.may_destroy(id) {
                    self.rot(id);
                    self.guard_destroyed(id, true);
                }
            }
            FaultKind::Wipe => {
                let victims = self.params.destructible.clone();
                let id = victims[self.rng.faults.below(victims.len() as u64) as usize];
                let down = self.rng.faults.range_inclusive(1, self.params.down_ms_max);
                if self.may_destroy(id) {
                    self.wipe(id, down);
                    self.guard_destroyed(id, false);
                }
            }
            FaultKind::ClockJump => {
                let id = self.random_node();
                let by = self
                    .rng
                    .faults
                    .range_inclusive(1, self.params.clock_jump_ms_max);
                self.clock_jump(id, by);
            }
        }
    }

    /// A node may lose its data only while every node runs and every partition it hosts has
    /// its whole replica set in sync: then it is the only failed replica.
    fn may_destroy(&self, id: NodeId) -> bool {
        if self.destroyed_guard.is_some() || !self.checks.sees_inside() {
            return false;
        }
        let all_up = self.nodes.iter().all(|n| {
            n.node.is_some()
                && !n.restart_pending
                && n.shutting_down.is_none()
                && n.paused_until <= self.now
        });
        all_up
            && self.settings.partitions.iter().all(|p| {
                let Some(meta) = self.checks.latest_meta(p) else {
                    return false;
                };
                if !meta.replicas.contains(&(id as i32)) {
                    return true;
                }
                self.checks
                    .leader_view(p)
                    .is_some_and(|(_, l)| l.isr.len() == meta.replicas.len())
            })
    }

    /// Holds every other node fault (and the datagram and disk faults) while `id` is failed.
    fn guard_destroyed(&mut self, id: NodeId, until_liveness: bool) {
        self.destroyed_guard = Some(DestroyedGuard {
            node: id,
            until_liveness,
        });
        self.net.set_quiet(true);
        self.disk_faults = DiskFaults {
            latency_us: self.disk_faults.latency_us,
            ..DiskFaults::none()
        };
    }

    /// True while a node that lost data is still failed; lifts the guard once it is whole.
    fn destroyed_node_failed(&mut self) -> bool {
        let Some(guard) = self.destroyed_guard else {
            return false;
        };
        if guard.until_liveness || !self.whole_again(guard.node) {
            return true;
        }
        self.trace.add(&[self.now.0, 52, u64::from(guard.node)]);
        tracing::debug!(at = ?self.now, node = guard.node, "wiped node whole again: faults resume");
        self.destroyed_guard = None;
        self.net.set_quiet(false);
        self.disk_faults = self.params.disk.clone();
        false
    }

    /// Node `id` runs and is in the ISR of every partition it replicates, holding the data
    /// below each leader's HW durably.
    fn whole_again(&self, id: NodeId) -> bool {
        let node = &self.nodes[(id - 1) as usize];
        if node.node.is_none() || node.paused_until > self.now {
            return false;
        }
        self.settings.partitions.iter().all(|p| {
            let Some(meta) = self.checks.latest_meta(p) else {
                return false;
            };
            if !meta.replicas.contains(&(id as i32)) {
                return true;
            }
            let (Some((_, leader)), Some(mine)) =
                (self.checks.leader_view(p), self.checks.replica_view(id, p))
            else {
                return false;
            };
            leader.isr.len() == meta.replicas.len()
                && leader.isr.contains(&id)
                && mine.durable_offset >= leader.high_watermark
        })
    }

    fn pause(&mut self, id: NodeId, length_ms: u64) {
        self.trace.add(&[self.now.0, 41, u64::from(id), length_ms]);
        tracing::debug!(at = ?self.now, node = id, length_ms, "pause");
        let until = self.now + Duration::from_millis(length_ms);
        let node = self.node(id);
        if until > node.paused_until {
            node.paused_until = until;
            self.schedule(until, Event::Resume { node: id });
        }
    }

    fn rot(&mut self, id: NodeId) {
        self.trace.add(&[self.now.0, 43, u64::from(id)]);
        tracing::debug!(at = ?self.now, node = id, "bit rot at rest");
        let now = self.now;
        let node = &mut self.nodes[(id - 1) as usize];
        // Partition data only: the quorum's files are never destroyed (see the parameters),
        // and a broker whose topic registry rotted refuses to start, by design, rather than
        // forget its topics.
        node.disk.bit_rot(now, &mut self.rng.faults, |p| {
            !p.starts_with("raft/") && !p.starts_with("seedlog-meta/")
        });
        node.destroyed = true;
        node.rotted = true;
        self.checks.on_destroyed(id);
    }

    fn wipe(&mut self, id: NodeId, down_ms: u64) {
        self.trace.add(&[self.now.0, 44, u64::from(id)]);
        tracing::debug!(at = ?self.now, node = id, "wipe");
        if self.node(id).node.is_some() {
            self.crash(id, true, Duration::from_millis(down_ms));
        }
        self.wipe_disk(id);
        if !self.node(id).restart_pending {
            let incarnation = self.node(id).incarnation;
            self.node(id).restart_pending = true;
            let at = self.now + Duration::from_millis(down_ms);
            self.schedule(
                at,
                Event::Restart {
                    node: id,
                    incarnation,
                },
            );
        }
    }

    fn clock_jump(&mut self, id: NodeId, by_ms: u64) {
        self.trace.add(&[self.now.0, 45, u64::from(id), by_ms]);
        tracing::debug!(at = ?self.now, node = id, by_ms, "clock jump");
        let now = self.now;
        let node = self.node(id);
        node.clock.jump(now, Duration::from_millis(by_ms));
        node.timer_at = None;
        self.arm_timer(id);
    }

    /// Cuts `client` off from `node`, or from every node.
    fn isolate_client(&mut self, client: usize, node: Option<NodeId>) {
        let addr = self.clients[client].addr();
        let targets = node.map_or_else(|| self.params.node_ids(), |n| vec![n]);
        self.trace
            .add(&[self.now.0, 46, client as u64, u64::from(node.unwrap_or(0))]);
        for n in targets {
            self.net.block(addr, n);
            self.net.block(n, addr);
        }
    }

    pub(super) fn heal_nodes(&mut self) {
        self.trace.add(&[self.now.0, 47]);
        let ids = self.params.node_ids();
        self.net.heal_among(&ids);
        self.flush_held();
    }

    pub(super) fn heal_client(&mut self, client: usize, _generation: u64) {
        self.trace.add(&[self.now.0, 48, client as u64]);
        let addr = self.clients[client].addr();
        self.net.heal_addr(addr);
        self.flush_held();
    }

    /// Resolves a scenario's node selector now.
    fn resolve(&self, selector: &NodeSelector, names: &BTreeMap<String, NodeId>) -> NodeId {
        let meta = |t: &str, p: u32| self.checks.latest_meta(&(t.to_owned(), p)).cloned();
        let resolved = match selector {
            NodeSelector::Id(id) => Some(*id),
            NodeSelector::Leader(t, p) => meta(t, *p)
                .filter(|m| m.leader >= 1)
                .map(|m| m.leader as NodeId),
            NodeSelector::Follower(t, p, n) => meta(t, *p).and_then(|m| {
                m.replicas
                    .iter()
                    .copied()
                    .filter(|r| *r != m.leader && *r >= 1)
                    .nth(*n)
                    .map(|r| r as NodeId)
            }),
            NodeSelector::Rest => None,
            NodeSelector::Controller => self.checks.quorum_leader(),
            NodeSelector::Named(name) => names.get(name).copied(),
        };
        // An unknown leader (nobody asked yet) falls back to node 1, so a scenario still runs.
        resolved
            .filter(|id| (1..=self.params.nodes).contains(id))
            .unwrap_or(1)
    }

    pub(super) fn on_action(&mut self, index: usize) {
        if self.phase != Phase::Safety {
            return;
        }
        let step = self.timeline[index].clone();
        let names = std::mem::take(&mut self.names);
        let mut bound = None;
        self.trace.add(&[self.now.0, 49, index as u64]);
        let all = self.params.node_ids();
        match &step.action {
            Action::Partition(sides) => {
                let named = |s: &[NodeSelector]| -> BTreeSet<NodeId> {
                    s.iter()
                        .filter(|x| **x != NodeSelector::Rest)
                        .map(|x| self.resolve(x, &names))
                        .collect()
                };
                let mut resolved: Vec<BTreeSet<NodeId>> = sides.iter().map(|s| named(s)).collect();
                let listed: BTreeSet<NodeId> = resolved.iter().flatten().copied().collect();
                for (side, selectors) in resolved.iter_mut().zip(sides) {
                    if selectors.contains(&NodeSelector::Rest) {
                        side.extend(all.iter().filter(|id| !listed.contains(id)));
                    }
                }
                bound = resolved.first().and_then(|s| s.first().copied());
                let side_of = |id: NodeId| resolved.iter().position(|s| s.contains(&id));
                self.net.heal_among(&all);
                self.net.cut(
                    &all,
                    |a, b| matches!((side_of(a), side_of(b)), (Some(x), Some(y)) if x != y),
                );
            }
            Action::Isolate(s) => {
                let id = self.resolve(s, &names);
                bound = Some(id);
                self.net.isolate(&all, id);
            }
            Action::OneWay(from, to) => {
                let (from, to) = (self.resolve(from, &names), self.resolve(to, &names));
                bound = Some(from);
                self.net.block(from, to);
            }
            Action::Bridge(bridge, side) => {
                let bridge_id = self.resolve(bridge, &names);
                bound = Some(bridge_id);
                let side: BTreeSet<NodeId> = side.iter().map(|x| self.resolve(x, &names)).collect();
                self.net.heal_among(&all);
                self.net.bridge(&all, bridge_id, &side);
            }
            Action::Heal => {
                self.net.heal_among(&all);
                self.flush_held();
            }
            Action::Crash(s, power_loss) => {
                let id = self.resolve(s, &names);
                bound = Some(id);
                // Down until a `restart` (or the liveness phase) brings it back.
                let forever = Duration::from_secs(1 << 30);
                self.crash(id, *power_loss, forever);
            }
            Action::Shutdown(s) => {
                let id = self.resolve(s, &names);
                bound = Some(id);
                // Down until a `restart` (or the liveness phase) brings it back.
                self.shutdown(id, Duration::from_secs(1 << 30));
            }
            Action::Restart(s) => {
                let id = self.resolve(s, &names);
                bound = Some(id);
                if self.node(id).node.is_none() {
                    self.start_node(id);
                }
            }
            Action::Pause(s, ms) => {
                let id = self.resolve(s, &names);
                bound = Some(id);
                self.pause(id, *ms);
            }
            Action::Wipe(s, ms) => {
                let id = self.resolve(s, &names);
                bound = Some(id);
                self.wipe(id, *ms);
            }
            Action::Rot(s) => {
                let id = self.resolve(s, &names);
                bound = Some(id);
                self.rot(id);
            }
            Action::ClockJump(s, ms) => {
                let id = self.resolve(s, &names);
                bound = Some(id);
                self.clock_jump(id, *ms);
            }
            Action::IsolateClients(s) => {
                let target = s.as_ref().map(|x| self.resolve(x, &names));
                bound = target;
                for client in 0..self.clients.len() {
                    self.isolate_client(client, target);
                }
            }
            Action::HealClients => {
                for client in 0..self.clients.len() {
                    let addr = self.clients[client].addr();
                    self.net.heal_addr(addr);
                }
                self.flush_held();
            }
        }
        self.names = names;
        tracing::debug!(at = ?self.now, action = ?step.action, node = ?bound, "scenario action");
        if let (Some(name), Some(id)) = (step.name, bound) {
            self.names.insert(name, id);
        }
    }

    /// Faults stop: the network heals and calms, disks stop failing, every node runs again,
    /// producers stop, and a prober and a final reader join.
    pub(super) fn begin_liveness(&mut self) {
        if self.phase != Phase::Safety {
            return;
        }
        self.trace.add(&[self.now.0, 50]);
        tracing::debug!(at = ?self.now, "liveness phase: faults off");
        self.phase = Phase::Liveness;
        self.phase_started = self.now;
        self.net.calm();
        self.disk_faults = DiskFaults {
            latency_us: self.disk_faults.latency_us,
            ..DiskFaults::none()
        };
        self.flush_held();
        for id in self.params.node_ids() {
            self.node(id).paused_until = self.now;
            self.resume(id);
            if self.node(id).node.is_none() {
                self.start_node(id);
            }
        }
        let partitions = self.settings.partitions.clone();
        let prober = Role::Prober {
            remaining: partitions.iter().cloned().collect(),
        };
        self.prober = Some(self.add_client(prober));
        let reader = Role::Consumer(Consumer::new(partitions));
        self.final_reader = Some(self.add_client(reader));
        self.schedule(self.now + CHECK_INTERVAL, Event::Check);
    }

    /// The cluster converged once every node runs, every partition took an acks=all write,
    /// the final reader read every partition up to a HW that covers every acknowledged write,
    /// every consumer caught up to it, and every replica's log equals the committed log.
    pub(super) fn check_liveness(&mut self) {
        let elapsed = self.now.saturating_since(self.phase_started);
        match self.unconverged() {
            None => {
                self.trace.add(&[self.now.0, 51]);
                self.report.converged_after = Some(elapsed);
                self.phase = Phase::Done;
            }
            Some(why) if elapsed.as_millis() > self.params.liveness_bound_ms => {
                let bound = self.params.liveness_bound_ms;
                self.violate(format!("liveness: {why} after {bound} ms without faults"));
            }
            Some(_) => self.schedule(self.now + CHECK_INTERVAL, Event::Check),
        }
    }

    /// Why the cluster has not converged yet, if it has not.
    fn unconverged(&mut self) -> Option<String> {
        if let Some(id) = self
            .params
            .node_ids()
            .into_iter()
            .find(|id| self.node(*id).node.is_none())
        {
            return Some(format!("node {id} is not running"));
        }
        let prober = &self.clients[self.prober?];
        if let Role::Prober { remaining } = &prober.role {
            if let Some(p) = remaining.front() {
                return Some(format!("no acks=all write to {}-{} succeeded", p.0, p.1));
            }
        }
        let Role::Consumer(reader) = &self.clients[self.final_reader?].role else {
            return Some("no final reader".to_owned());
        };
        let mut targets: BTreeMap<PartitionKey, i64> = BTreeMap::new();
        for p in &self.settings.partitions {
            let acked = self.checks.acked_end(p);
            let Some(hw) = reader.high_watermarks.get(p).copied() else {
                return Some(format!("the final reader has not fetched {}-{}", p.0, p.1));
            };
            let position = reader.positions.get(p).copied().unwrap_or(0);
            if hw < acked {
                return Some(format!(
                    "{}-{}: HW {hw} below the acknowledged writes' end {acked}",
                    p.0, p.1
                ));
            }
            if position < hw {
                return Some(format!(
                    "the final reader is at {position} of {}-{}, HW {hw}",
                    p.0, p.1
                ));
            }
            targets.insert(p.clone(), hw);
        }
        for client in &self.clients {
            if let (Role::Consumer(c), false) =
                (&client.role, Some(client.index) == self.final_reader)
            {
                if !c.caught_up(&targets) {
                    return Some(format!("consumer {} has not caught up", client.index));
                }
            }
        }
        self.replicas_converged(&targets)
    }

    /// Every replica's log (on disk) is exactly the committed log up to the HW.
    fn replicas_converged(&mut self, targets: &BTreeMap<PartitionKey, i64>) -> Option<String> {
        for (p, hw) in targets {
            let replicas = match self.checks.latest_meta(p) {
                Some(meta) => meta.replicas.clone(),
                None => return Some(format!("no metadata for {}-{}", p.0, p.1)),
            };
            let committed = self.checks.committed(p).cloned().unwrap_or_default();
            let dir = format!("{}-{}", p.0, p.1);
            for r in replicas {
                if r < 1 || r as u32 > self.params.nodes {
                    return Some(format!("{}-{} names replica {r}", p.0, p.1));
                }
                if self.node(r as NodeId).rotted {
                    // Rot at rest stays silent until something reads those bytes again: the
                    // replica cannot know, so its disk is not held to the committed log.
                    continue;
                }
                let log = read_log(&mut self.node(r as NodeId).disk, &dir);
                let offsets: Vec<i64> = log.iter().map(|s| s.offset).collect();
                let dense = offsets.iter().enumerate().all(|(i, o)| *o == i as i64);
                if !dense || log.len() as i64 != *hw {
                    return Some(format!(
                        "replica {r} of {}-{} holds {} records (dense: {dense}), HW {hw}",
                        p.0,
                        p.1,
                        log.len()
                    ));
                }
                if let Some(bad) = log
                    .iter()
                    .find(|s| s.value.is_none() || committed.get(&s.offset) != s.value.as_ref())
                {
                    return Some(format!(
                        "replica {r} of {}-{} holds {:?} at offset {}, committed {:?}",
                        p.0,
                        p.1,
                        bad.value,
                        bad.offset,
                        committed.get(&bad.offset)
                    ));
                }
            }
        }
        None
    }
}
