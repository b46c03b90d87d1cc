//! Replication of a partition between brokers (DESIGN §3 "Replication"). Every broker is part
//! of a cluster (a single node is a cluster of one, whose partitions have one replica), so
//! this is the only path data takes to become committed.
//!
//! Kafka's pull model: followers send [`ReplicaFetch`] to the partition leader with their log end
//! offset; the leader answers with the batches after it, byte for byte as stored, and its high
//! watermark. Choices, and why:
//!
//! - **Durable progress only.** A follower sends its next fetch only once everything it has
//!   appended is durable, so the offset it reports is an offset it can never lose. The leader
//!   counts its own durable offset the same way. The high watermark is the minimum of those over
//!   the ISR, so an acknowledged acks=all record survives even if every replica loses power.
//! - **Maximal ISR** (Kafka's KIP-497 rule): while an ISR change is in flight to the controller
//!   the leader computes the high watermark over the union of the current and the proposed ISR,
//!   so neither a pending shrink nor a pending expansion can expose data one of them lacks.
//! - **Divergence in the fetch** (KIP-320/KIP-595 style): the fetch carries the epoch of the
//!   follower's last batch; the leader answers with the end offset of the largest epoch it holds
//!   that is not above it when the follower's log diverges, and the follower truncates to the
//!   smaller of that and its own end for the same epoch (KIP-279), then fetches again.
//! - **Epoch fencing**: a fetch for an older leader epoch is answered FENCED_LEADER_EPOCH, a
//!   newer one UNKNOWN_LEADER_EPOCH; a response for an epoch or offset the follower no longer
//!   waits for is dropped. Roles come only from the controller's metadata image.
//! - **ISR changes** go to the controller as AlterPartition with the partition epoch; the
//!   leader learns the outcome from the next image. A follower that has not been caught up for
//!   `replica.lag.time.max.ms` is dropped; one whose durable end reached the high watermark and
//!   the start of the leader's epoch is added back.
//! - A new leader serves consumers only once its high watermark reached the start of its epoch
//!   (everything from earlier epochs is committed), so the high watermark a consumer sees never
//!   goes back across a leader change.

use super::errors;
use super::{Broker, BrokerOutput, FlushPolicy, OpId, PeerTarget, Token};
use crate::canary::{Canaries, Canary};
use crate::cluster::metadata::{MetadataImage, PartitionInfo};
use crate::cluster::peer::{AlterPartition, PeerMessage, ReplicaFetch, ReplicaFetchResponse};
use crate::log::{AppendError, LogInput, ReadError, ReadResult};
use crate::raft::NodeId;
use crate::time::{Duration, Instant};
use bytes::Bytes;
use std::collections::BTreeMap;

/// Settings of a broker that replicates (part of a cluster).
#[derive(Clone, Debug)]
pub struct ReplicationConfig {
    /// This broker's node id.
    pub node_id: NodeId,
    /// This process's incarnation (a new value on every start).
    pub incarnation: u64,
    /// `replica.lag.time.max.ms`.
    pub replica_lag_time_max: Duration,
    /// `replica.fetch.wait.max.ms`.
    pub replica_fetch_wait_max: Duration,
    /// `replica.fetch.backoff.ms`.
    pub replica_fetch_backoff: Duration,
    /// `replica.fetch.max.bytes`.
    pub replica_fetch_max_bytes: u32,
    /// How often the broker re-checks follower fetches, ISR lag and parked replica fetches.
    pub tick_interval: Duration,
    /// Resend an unanswered AlterPartition after this long.
    pub alter_partition_retry: Duration,
    /// Planted bugs switched on (only with the `canary` feature).
    pub canaries: Canaries,
}

/// A partition's replication role on this broker.
#[derive(Debug, Default)]
pub(super) enum Role {
    /// Not a replica, no leader known, or the log is not open yet.
    #[default]
    Offline,
    /// This broker leads the partition.
    Leader(Box<LeaderState>),
    /// This broker follows `leader`.
    Follower(FollowerState),
}

/// A leader's view of its partition.
#[derive(Debug)]
pub(super) struct LeaderState {
    /// Log end offset when this broker became leader of the current epoch.
    pub(super) epoch_start: i64,
    pub(super) replicas: Vec<NodeId>,
    /// The ISR of the image.
    pub(super) isr: Vec<NodeId>,
    pub(super) partition_epoch: i32,
    followers: BTreeMap<NodeId, Progress>,
    /// Every member any ISR change sent for the current partition epoch named, and when the
    /// last was sent. Any of them may still be applied (a refusal from one voter does not stop
    /// a copy that reached the active controller), so all count for the high watermark until
    /// the image moves past this partition epoch.
    pending_isr: Option<(Vec<NodeId>, Instant)>,
    /// Follower fetches waiting for data: (follower, request, deadline).
    parked: Vec<(NodeId, ReplicaFetch, Instant)>,
}

impl LeaderState {
    /// The ISR the high watermark honours: current ∪ proposed.
    pub(super) fn maximal_isr(&self) -> Vec<NodeId> {
        let mut isr = self.isr.clone();
        if let Some((pending, _)) = &self.pending_isr {
            for id in pending {
                if !isr.contains(id) {
                    isr.push(*id);
                }
            }
        }
        isr
    }
}

/// What the leader knows of one follower (Kafka's `Replica` state).
#[derive(Clone, Copy, Debug)]
struct Progress {
    /// The follower's durable log end offset, once it fetched in this epoch.
    leo: Option<i64>,
    /// The incarnation (process) of the follower that reported `leo`.
    incarnation: Option<u64>,
    last_caught_up: Instant,
    last_fetch_time: Instant,
    /// The leader's log end offset when it last answered this follower.
    last_fetch_leader_leo: i64,
}

/// A follower's fetch loop.
#[derive(Debug)]
pub(super) struct FollowerState {
    pub(super) leader: NodeId,
    phase: FollowPhase,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FollowPhase {
    /// May fetch at or after this instant (once the log is durable up to its end).
    Ready(Instant),
    /// A fetch from `offset`, whose last batch has `last_epoch`, is out.
    InFlight {
        offset: i64,
        last_epoch: Option<i32>,
        sent_at: Instant,
    },
    /// Appending the last response's batches.
    Appending,
    /// Truncating after a divergence.
    Truncating,
}

/// A replica-level log operation in flight.
#[derive(Debug)]
pub(super) enum ReplicaOp {
    /// Reading batches to answer a follower.
    Read { from: NodeId, request: ReplicaFetch },
    /// Appending batches fetched from the leader.
    Append { leader_epoch: i32 },
}

/// What a partition's image entry asks of this broker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wanted {
    Offline,
    Leader(i32),
    Follower(NodeId, i32),
}

fn wanted_role(me: NodeId, info: Option<&PartitionInfo>) -> Wanted {
    match info {
        Some(p) if p.replicas.contains(&me) => match p.leader {
            Some(leader) if leader == me => Wanted::Leader(p.leader_epoch),
            Some(leader) => Wanted::Follower(leader, p.leader_epoch),
            None => Wanted::Offline,
        },
        _ => Wanted::Offline,
    }
}

impl Broker {
    pub(super) fn replication(&self) -> &ReplicationConfig {
        &self.replication
    }

    fn me(&self) -> NodeId {
        self.replication.node_id
    }

    fn canary(&self, canary: Canary) -> bool {
        self.replication.canaries.is_on(canary)
    }

    fn send_peer(&mut self, to: PeerTarget, message: PeerMessage) {
        self.outbox.push_back(BrokerOutput::Send { to, message });
    }

    /// The offset below which this broker's own copy is safe: durable under group commit.
    pub(super) fn local_end(&self, topic: &str, partition: i32) -> Option<i64> {
        let p = self.partition(topic, partition)?;
        Some(match self.config.flush_policy {
            FlushPolicy::GroupCommit => p.log.durable_offset(),
            FlushPolicy::None => p.log.log_end_offset(),
        })
    }

    // ---- roles ----

    /// `(topic, partition)` of every open partition, to visit while changing them.
    fn open_partition_keys(&self) -> Vec<(String, i32)> {
        self.topics
            .iter()
            .flat_map(|(name, t)| (0..t.partitions.len() as i32).map(move |i| (name.clone(), i)))
            .collect()
    }

    /// Brings every open partition's role in line with the image.
    pub(super) fn refresh_roles(&mut self, now: Instant) {
        let keys = self.open_partition_keys();
        for (topic, partition) in keys {
            self.refresh_role(now, &topic, partition);
        }
    }

    fn refresh_role(&mut self, now: Instant, topic: &str, partition: i32) {
        let me = self.me();
        let info = self
            .image
            .as_ref()
            .and_then(|image| image.partition(topic, partition as u32))
            .cloned();
        let Some(p) = self.partition(topic, partition) else {
            return;
        };
        if !p.log.is_ready() || p.log.is_faulted() {
            return;
        }
        // Until the image shows this very process registered and unfenced, the partition roles
        // in it were assigned to an earlier incarnation (which may have had data this one lost,
        // or been a leader in an epoch this one never led): take none of them.
        let wanted = if self.image_lists_me() {
            wanted_role(me, info.as_ref())
        } else {
            Wanted::Offline
        };
        let current = match &p.role {
            Role::Offline => Wanted::Offline,
            Role::Leader(_) => Wanted::Leader(p.leader_epoch),
            Role::Follower(f) => Wanted::Follower(f.leader, p.leader_epoch),
        };
        if wanted == current {
            if let (Wanted::Leader(_), Some(info)) = (wanted, &info) {
                self.update_leader_isr(now, topic, partition, info);
            }
            return;
        }
        // Leaving a role: nothing waiting on it can be answered by this broker any more.
        self.abandon_role(now, topic, partition);
        let Some(p) = self.partition_mut(topic, partition) else {
            return;
        };
        match wanted {
            Wanted::Offline => p.role = Role::Offline,
            Wanted::Follower(leader, epoch) => {
                p.leader_epoch = epoch;
                let end = p.log.log_end_offset();
                p.log.forget_epochs_from(end);
                p.role = Role::Follower(FollowerState {
                    leader,
                    phase: FollowPhase::Ready(now),
                });
                self.maybe_fetch(now, topic, partition);
            }
            Wanted::Leader(epoch) => {
                let info = info.expect("a leader role comes from an image entry");
                p.leader_epoch = epoch;
                p.log.assign_epoch(epoch);
                let epoch_start = p.log.log_end_offset();
                let followers = info
                    .replicas
                    .iter()
                    .filter(|id| **id != me)
                    .map(|id| {
                        let progress = Progress {
                            leo: None,
                            incarnation: None,
                            last_caught_up: now,
                            last_fetch_time: now,
                            last_fetch_leader_leo: epoch_start,
                        };
                        (*id, progress)
                    })
                    .collect();
                p.role = Role::Leader(Box::new(LeaderState {
                    epoch_start,
                    replicas: info.replicas.clone(),
                    isr: info.isr.clone(),
                    partition_epoch: info.partition_epoch,
                    followers,
                    pending_isr: None,
                    parked: Vec::new(),
                }));
                self.recompute_high_watermark(now, topic, partition);
            }
        }
    }

    /// Fails what waits on this broker's role for the partition.
    fn abandon_role(&mut self, now: Instant, topic: &str, partition: i32) {
        let Some(p) = self.partition_mut(topic, partition) else {
            return;
        };
        let waiters: Vec<OpId> = p
            .durable_waiters
            .drain(..)
            .chain(p.local_waiters.drain(..))
            .map(|(_, op)| op)
            .collect();
        let parked = match &mut p.role {
            Role::Leader(leader) => std::mem::take(&mut leader.parked),
            _ => Vec::new(),
        };
        let fetchers: Vec<Token> = std::mem::take(&mut p.fetch_waiters).into_iter().collect();
        p.role = Role::Offline;
        // The batch may still be committed by the next leader: the client must treat this as
        // unknown, which NOT_LEADER_OR_FOLLOWER tells it (it refreshes metadata and retries).
        for op in waiters {
            self.fail_produce_op(topic, partition, op, errors::NOT_LEADER_OR_FOLLOWER);
        }
        for (from, request, _) in parked {
            self.answer_replica_fetch_error(from, &request, errors::NOT_LEADER_OR_FOLLOWER);
        }
        for token in fetchers {
            self.wake_fetch(now, token);
        }
    }

    fn update_leader_isr(
        &mut self,
        now: Instant,
        topic: &str,
        partition: i32,
        info: &PartitionInfo,
    ) {
        let me = self.me();
        let Some(p) = self.partition_mut(topic, partition) else {
            return;
        };
        let Role::Leader(leader) = &mut p.role else {
            return;
        };
        if leader.partition_epoch != info.partition_epoch {
            leader.partition_epoch = info.partition_epoch;
            leader.isr = info.isr.clone();
            leader.pending_isr = None;
            for id in &info.replicas {
                if !leader.followers.contains_key(id) && *id != me {
                    leader.followers.insert(
                        *id,
                        Progress {
                            leo: None,
                            incarnation: None,
                            last_caught_up: now,
                            last_fetch_time: now,
                            last_fetch_leader_leo: leader.epoch_start,
                        },
                    );
                }
            }
            leader.replicas = info.replicas.clone();
            self.recompute_high_watermark(now, topic, partition);
        }
    }

    // ---- leader side ----

    /// The high watermark the ISR allows; raises it and answers what waited for it.
    pub(super) fn recompute_high_watermark(&mut self, now: Instant, topic: &str, partition: i32) {
        let Some(local) = self.local_end(topic, partition) else {
            return;
        };
        let ack_early = self.canary(Canary::AckBeforeIsr);
        let hw_from_all = self.canary(Canary::HwFromAllReplicas);
        let min_isr = self
            .topics
            .get(topic)
            .map_or(1, |t| t.config.min_insync_replicas.max(1) as usize);
        let Some(p) = self.partition(topic, partition) else {
            return;
        };
        let Role::Leader(leader) = &p.role else {
            return;
        };
        // KIP-966: while the ISR is below `min.insync.replicas` the high watermark stays, so
        // every member that leaves the ISR meanwhile (an eligible leader replica) holds
        // everything committed and may be elected if the ISR dies.
        if !ack_early && leader.isr.len() < min_isr.min(leader.replicas.len()) {
            return;
        }
        let mut hw = local;
        if !ack_early {
            if hw_from_all {
                // Planted bug: the followers that reported, whether in the ISR or not.
                for progress in leader.followers.values() {
                    if let Some(leo) = progress.leo {
                        hw = hw.min(leo);
                    }
                }
            } else {
                for id in leader.maximal_isr() {
                    if let Some(progress) = leader.followers.get(&id) {
                        match progress.leo {
                            Some(leo) => hw = hw.min(leo),
                            None => return, // Not heard from in this epoch yet.
                        }
                    }
                }
            }
        }
        if hw > p.high_watermark {
            self.advance_high_watermark(now, topic, partition, hw);
        }
    }

    /// The error to give an acks=all produce whose batch the high watermark passed, if the ISR
    /// shrank below `min.insync.replicas` meanwhile.
    pub(super) fn after_append_error(&self, topic: &str, partition: i32) -> Option<i16> {
        let min_isr = self.topics.get(topic)?.config.min_insync_replicas;
        let p = self.partition(topic, partition)?;
        match &p.role {
            Role::Leader(leader) if (leader.isr.len() as i32) < min_isr => {
                Some(errors::NOT_ENOUGH_REPLICAS_AFTER_APPEND)
            }
            _ => None,
        }
    }

    /// A produce to this partition may proceed: this broker leads it and, for acks=all, the
    /// ISR is at least `min.insync.replicas`.
    pub(super) fn check_replicated_produce(
        &self,
        topic: &str,
        partition: i32,
        acks: i16,
    ) -> Result<(), i16> {
        let min_isr = self
            .topics
            .get(topic)
            .map_or(1, |t| t.config.min_insync_replicas);
        let p = self
            .partition(topic, partition)
            .ok_or(errors::NOT_LEADER_OR_FOLLOWER)?;
        let Role::Leader(leader) = &p.role else {
            return Err(errors::NOT_LEADER_OR_FOLLOWER);
        };
        if acks == -1 && (leader.isr.len() as i32) < min_isr {
            return Err(errors::NOT_ENOUGH_REPLICAS);
        }
        Ok(())
    }

    /// For consumers: this broker leads the partition and its high watermark has reached the
    /// start of its epoch.
    pub(super) fn check_replicated_read(&self, topic: &str, partition: i32) -> Result<(), i16> {
        let p = self
            .partition(topic, partition)
            .ok_or(errors::NOT_LEADER_OR_FOLLOWER)?;
        match &p.role {
            Role::Leader(leader) if p.high_watermark >= leader.epoch_start => Ok(()),
            _ => Err(errors::NOT_LEADER_OR_FOLLOWER),
        }
    }

    pub(super) fn on_replica_fetch(&mut self, now: Instant, from: NodeId, request: ReplicaFetch) {
        let topic = request.topic.clone();
        let Ok(partition) = i32::try_from(request.partition) else {
            return self.answer_replica_fetch_error(
                from,
                &request,
                errors::UNKNOWN_TOPIC_OR_PARTITION,
            );
        };
        let accept_stale = self.canary(Canary::AcceptStaleLeaderEpoch);
        let skip_divergence = self.canary(Canary::SkipFollowerTruncation);
        let checked = (|| {
            let p = self
                .partition(&topic, partition)
                .ok_or(errors::UNKNOWN_TOPIC_OR_PARTITION)?;
            if p.log.is_faulted() {
                return Err(errors::KAFKA_STORAGE_ERROR);
            }
            let Role::Leader(leader) = &p.role else {
                return Err(errors::NOT_LEADER_OR_FOLLOWER);
            };
            if request.leader_epoch < p.leader_epoch && !accept_stale {
                return Err(errors::FENCED_LEADER_EPOCH);
            }
            if request.leader_epoch > p.leader_epoch {
                return Err(errors::UNKNOWN_LEADER_EPOCH);
            }
            if !leader.followers.contains_key(&from) {
                return Err(errors::NOT_LEADER_OR_FOLLOWER);
            }
            Ok(())
        })();
        if let Err(code) = checked {
            return self.answer_replica_fetch_error(from, &request, code);
        }
        let p = self.partition(&topic, partition).expect("checked above");
        let (leo, log_start, hw) = (
            p.log.log_end_offset(),
            p.log.log_start_offset(),
            p.high_watermark,
        );
        // Divergence: the follower's last epoch ends earlier here, or is unknown here.
        if let Some(last_epoch) = request.last_fetched_epoch.filter(|_| !skip_divergence) {
            let (epoch, end) = p.log.end_offset_for_epoch(last_epoch);
            if epoch < last_epoch || end < request.fetch_offset {
                let response = self.replica_response(&request, errors::NONE, hw, log_start);
                let response = ReplicaFetchResponse {
                    diverging: Some((epoch, end)),
                    ..response
                };
                return self
                    .send_peer(PeerTarget::Node(from), PeerMessage::FetchResponse(response));
            }
        }
        if request.fetch_offset > leo {
            let response = self.replica_response(&request, errors::NONE, hw, log_start);
            let epoch = p.log.latest_epoch().unwrap_or(-1);
            let response = ReplicaFetchResponse {
                diverging: Some((epoch, leo)),
                ..response
            };
            return self.send_peer(PeerTarget::Node(from), PeerMessage::FetchResponse(response));
        }
        if request.fetch_offset < log_start {
            return self.answer_replica_fetch_error(from, &request, errors::OFFSET_OUT_OF_RANGE);
        }
        // Progress (Kafka's `Replica.updateFetchState`).
        if let Some(p) = self.partition_mut(&topic, partition) {
            if let Role::Leader(leader) = &mut p.role {
                if let Some(progress) = leader.followers.get_mut(&from) {
                    if request.fetch_offset >= leo {
                        progress.last_caught_up = now;
                    } else if request.fetch_offset >= progress.last_fetch_leader_leo {
                        progress.last_caught_up = progress.last_fetch_time;
                    }
                    progress.last_fetch_leader_leo = leo;
                    progress.last_fetch_time = now;
                    progress.leo = Some(request.fetch_offset);
                    progress.incarnation = Some(request.incarnation);
                }
                leader.parked.retain(|(f, _, _)| *f != from);
            }
        }
        self.recompute_high_watermark(now, &topic, partition);
        self.maybe_alter_isr(now, &topic, partition);
        if request.fetch_offset < leo {
            self.read_for_follower(now, from, request);
        } else {
            let wait = self.replication.replica_fetch_wait_max;
            if let Some(p) = self.partition_mut(&topic, partition) {
                if let Role::Leader(leader) = &mut p.role {
                    leader.parked.push((from, request, now + wait));
                }
            }
        }
    }

    fn replica_response(
        &self,
        request: &ReplicaFetch,
        error: i16,
        high_watermark: i64,
        log_start_offset: i64,
    ) -> ReplicaFetchResponse {
        ReplicaFetchResponse {
            topic: request.topic.clone(),
            partition: request.partition,
            leader_epoch: request.leader_epoch,
            fetch_offset: request.fetch_offset,
            last_fetched_epoch: request.last_fetched_epoch,
            error,
            high_watermark,
            log_start_offset,
            diverging: None,
            records: Bytes::new(),
        }
    }

    fn answer_replica_fetch_error(&mut self, from: NodeId, request: &ReplicaFetch, error: i16) {
        let (hw, log_start) = i32::try_from(request.partition)
            .ok()
            .and_then(|i| self.partition(&request.topic, i))
            .map_or((-1, -1), |p| (p.high_watermark, p.log.log_start_offset()));
        let response = self.replica_response(request, error, hw, log_start);
        self.send_peer(PeerTarget::Node(from), PeerMessage::FetchResponse(response));
    }

    fn read_for_follower(&mut self, now: Instant, from: NodeId, request: ReplicaFetch) {
        let Ok(partition) = i32::try_from(request.partition) else {
            return;
        };
        let topic = request.topic.clone();
        let Some(p) = self.partition(&topic, partition) else {
            return;
        };
        let offset_max = p.log.log_end_offset();
        let bytes_max = self
            .replication
            .replica_fetch_max_bytes
            .min(request.max_bytes.max(1));
        let op = self.next_op;
        self.next_op += 1;
        let input = LogInput::Read {
            request: op,
            offset: request.fetch_offset,
            bytes_max,
            offset_max,
        };
        self.replica_ops.insert(
            op,
            (topic.clone(), partition, ReplicaOp::Read { from, request }),
        );
        self.drive_log(now, &topic, partition, input);
    }

    /// A read for a follower finished.
    pub(super) fn on_replica_read_done(
        &mut self,
        topic: &str,
        partition: i32,
        from: NodeId,
        request: ReplicaFetch,
        result: Result<ReadResult, ReadError>,
    ) {
        let Some(p) = self.partition(topic, partition) else {
            return;
        };
        let (hw, log_start) = (p.high_watermark, p.log.log_start_offset());
        let response = match result {
            Ok(read) => ReplicaFetchResponse {
                records: read.batches,
                ..self.replica_response(&request, errors::NONE, hw, log_start)
            },
            Err(ReadError::OffsetOutOfRange { .. }) => {
                self.replica_response(&request, errors::OFFSET_OUT_OF_RANGE, hw, log_start)
            }
            Err(ReadError::Overloaded | ReadError::NotReady) => {
                self.replica_response(&request, errors::REQUEST_TIMED_OUT, hw, log_start)
            }
            Err(ReadError::Corrupt { .. } | ReadError::Storage) => {
                self.replica_response(&request, errors::KAFKA_STORAGE_ERROR, hw, log_start)
            }
        };
        self.send_peer(PeerTarget::Node(from), PeerMessage::FetchResponse(response));
    }

    /// New data on a led partition: serve the followers waiting for it.
    pub(super) fn wake_parked_replicas(&mut self, now: Instant, topic: &str, partition: i32) {
        let parked = match self.partition_mut(topic, partition).map(|p| &mut p.role) {
            Some(Role::Leader(leader)) if !leader.parked.is_empty() => {
                std::mem::take(&mut leader.parked)
            }
            _ => return,
        };
        for (from, request, _) in parked {
            self.read_for_follower(now, from, request);
        }
    }

    /// Proposes an ISR change if a follower lags or caught up.
    fn maybe_alter_isr(&mut self, now: Instant, topic: &str, partition: i32) {
        let config = self.replication.clone();
        // Brokers that may join the ISR, with the incarnation registered for each: progress a
        // follower's earlier process reported proves nothing about this one (KIP-903).
        let eligible: BTreeMap<NodeId, u64> = self
            .image
            .iter()
            .flat_map(|image| image.live_brokers())
            .map(|(id, b)| (id, b.incarnation))
            .collect();
        let Some(p) = self.partition(topic, partition) else {
            return;
        };
        let Role::Leader(leader) = &p.role else {
            return;
        };
        if let Some((_, sent)) = &leader.pending_isr {
            if now < *sent + config.alter_partition_retry {
                return;
            }
        }
        let mut proposed: Vec<NodeId> = Vec::new();
        if let Some((pending, _)) = &leader.pending_isr {
            proposed = pending.clone();
        }
        let hw = p.high_watermark;
        let mut isr: Vec<NodeId> = leader
            .isr
            .iter()
            .copied()
            .filter(|id| match leader.followers.get(id) {
                Some(progress) => now < progress.last_caught_up + config.replica_lag_time_max,
                None => true, // The leader itself.
            })
            .collect();
        for id in &leader.replicas {
            if isr.contains(id) {
                continue;
            }
            // Caught up by the same measure that keeps a member in: it reached the log end
            // within the lag time. (Reaching the high watermark is not enough: below
            // min.insync.replicas the high watermark waits, and a lagging follower would be
            // dropped and taken back in the same breath.)
            let caught_up = leader.followers.get(id).is_some_and(|progress| {
                progress.incarnation.is_some()
                    && progress.incarnation == eligible.get(id).copied()
                    && now < progress.last_caught_up + config.replica_lag_time_max
                    && progress
                        .leo
                        .is_some_and(|leo| leo >= hw && leo >= leader.epoch_start)
            });
            if caught_up {
                isr.push(*id);
            }
        }
        // Keep the replica order, as Kafka reports it.
        isr.sort_by_key(|id| leader.replicas.iter().position(|r| r == id));
        let mut current = leader.isr.clone();
        current.sort_by_key(|id| leader.replicas.iter().position(|r| r == id));
        if isr == current {
            return;
        }
        let incarnations = isr
            .iter()
            .filter_map(|id| {
                let progress = leader.followers.get(id)?;
                Some((*id, progress.incarnation?))
            })
            .collect();
        let message = AlterPartition {
            incarnation: config.incarnation,
            topic: topic.to_owned(),
            partition: partition as u32,
            leader_epoch: p.leader_epoch,
            partition_epoch: leader.partition_epoch,
            isr: isr.clone(),
            incarnations,
        };
        for id in &isr {
            if !proposed.contains(id) {
                proposed.push(*id);
            }
        }
        if let Some(p) = self.partition_mut(topic, partition) {
            if let Role::Leader(leader) = &mut p.role {
                leader.pending_isr = Some((proposed, now));
            }
        }
        self.send_peer(PeerTarget::Controller, PeerMessage::AlterPartition(message));
    }

    pub(super) fn on_alter_partition_refused(
        &mut self,
        now: Instant,
        topic: &str,
        partition: u32,
        error: i16,
    ) {
        let _ = error;
        let Ok(partition) = i32::try_from(partition) else {
            return;
        };
        // Refused here, but a copy sent earlier may still be applied: keep its members in the
        // maximal ISR and only allow a retry at once (as if it was sent long ago).
        let _ = now;
        if let Some(p) = self.partition_mut(topic, partition) {
            if let Role::Leader(leader) = &mut p.role {
                if let Some((_, sent)) = &mut leader.pending_isr {
                    *sent = Instant::ZERO;
                }
            }
        }
    }

    // ---- follower side ----

    /// Sends the next fetch if the follower may: idle, its log durable up to its end.
    pub(super) fn maybe_fetch(&mut self, now: Instant, topic: &str, partition: i32) {
        let config = self.replication.clone();
        let Some(local) = self.local_end(topic, partition) else {
            return;
        };
        let Some(p) = self.partition_mut(topic, partition) else {
            return;
        };
        let Role::Follower(follower) = &mut p.role else {
            return;
        };
        let FollowPhase::Ready(at) = follower.phase else {
            return;
        };
        if at > now
            || !p.log.is_ready()
            || p.log.is_truncating()
            || p.log.is_faulted()
            || local < p.log.log_end_offset()
        {
            return;
        }
        let offset = p.log.log_end_offset();
        let last_epoch = p.log.latest_epoch();
        follower.phase = FollowPhase::InFlight {
            offset,
            last_epoch,
            sent_at: now,
        };
        let leader = follower.leader;
        let request = ReplicaFetch {
            incarnation: config.incarnation,
            topic: topic.to_owned(),
            partition: partition as u32,
            leader_epoch: p.leader_epoch,
            fetch_offset: offset,
            last_fetched_epoch: last_epoch,
            max_bytes: config.replica_fetch_max_bytes,
        };
        self.send_peer(PeerTarget::Node(leader), PeerMessage::Fetch(request));
    }

    pub(super) fn on_replica_fetch_response(
        &mut self,
        now: Instant,
        from: NodeId,
        response: ReplicaFetchResponse,
    ) {
        let config = self.replication.clone();
        let Ok(partition) = i32::try_from(response.partition) else {
            return;
        };
        let topic = response.topic.clone();
        let Some(p) = self.partition_mut(&topic, partition) else {
            return;
        };
        // Only the answer to the fetch now out counts: the same leader and epoch, and the
        // same offset and last epoch (a late duplicate of an earlier request may share the
        // offset but ask about a log this follower has since truncated and refilled).
        let expected = match &p.role {
            Role::Follower(f) => {
                f.leader == from
                    && p.leader_epoch == response.leader_epoch
                    && matches!(f.phase, FollowPhase::InFlight { offset, last_epoch, .. }
                        if offset == response.fetch_offset
                            && last_epoch == response.last_fetched_epoch)
            }
            _ => false,
        };
        if !expected || response.fetch_offset != p.log.log_end_offset() {
            return;
        }
        let leo = p.log.log_end_offset();
        let set_phase = |p: &mut super::Partition, phase: FollowPhase| {
            if let Role::Follower(f) = &mut p.role {
                f.phase = phase;
            }
        };
        match response.error {
            errors::NONE => {}
            errors::OFFSET_OUT_OF_RANGE if response.fetch_offset < response.log_start_offset => {
                set_phase(p, FollowPhase::Truncating);
                p.high_watermark = response.log_start_offset;
                let input = LogInput::TruncateFullyAndStartAt {
                    offset: response.log_start_offset,
                };
                return self.drive_log(now, &topic, partition, input);
            }
            _ => {
                set_phase(p, FollowPhase::Ready(now + config.replica_fetch_backoff));
                return;
            }
        }
        if let Some((epoch, end)) = response.diverging {
            let (_, own_end) = p.log.end_offset_for_epoch(epoch);
            let target = end.min(own_end).min(leo).max(p.log.log_start_offset());
            if target >= leo {
                // Nothing to cut: the divergence lies in epochs that hold no batch here.
                p.log.forget_epochs_from(leo);
                set_phase(p, FollowPhase::Ready(now + config.replica_fetch_backoff));
                return;
            }
            set_phase(p, FollowPhase::Truncating);
            p.high_watermark = p.high_watermark.min(target);
            return self.drive_log(
                now,
                &topic,
                partition,
                LogInput::TruncateTo { offset: target },
            );
        }
        let hw = response.high_watermark.min(leo);
        if hw > p.high_watermark {
            p.high_watermark = hw;
        }
        p.leader_hw = response.high_watermark;
        if response.records.is_empty() {
            set_phase(p, FollowPhase::Ready(now));
            return self.maybe_fetch(now, &topic, partition);
        }
        set_phase(p, FollowPhase::Appending);
        let op = self.next_op;
        self.next_op += 1;
        let leader_epoch = response.leader_epoch;
        self.replica_ops.insert(
            op,
            (topic.clone(), partition, ReplicaOp::Append { leader_epoch }),
        );
        let input = LogInput::AppendReplica {
            request: op,
            batches: response.records,
        };
        self.drive_log(now, &topic, partition, input);
    }

    /// A follower append finished (or failed).
    pub(super) fn on_replica_appended(
        &mut self,
        now: Instant,
        topic: &str,
        partition: i32,
        leader_epoch: i32,
        result: Result<(), AppendError>,
    ) {
        let backoff = self.replication.replica_fetch_backoff;
        let Some(p) = self.partition_mut(topic, partition) else {
            return;
        };
        if p.leader_epoch != leader_epoch {
            return;
        }
        let leo = p.log.log_end_offset();
        let hw = p.leader_hw.min(leo);
        if hw > p.high_watermark {
            p.high_watermark = hw;
        }
        if let Role::Follower(f) = &mut p.role {
            if f.phase == FollowPhase::Appending {
                f.phase = match result {
                    Ok(()) => FollowPhase::Ready(now),
                    Err(_) => FollowPhase::Ready(now + backoff),
                };
            }
        }
        self.maybe_fetch(now, topic, partition);
    }

    /// A truncation finished: a follower fetches again.
    pub(super) fn on_replica_truncated(&mut self, now: Instant, topic: &str, partition: i32) {
        let Some(p) = self.partition_mut(topic, partition) else {
            return;
        };
        let leo = p.log.log_end_offset();
        p.high_watermark = p.high_watermark.min(leo).max(p.log.log_start_offset());
        match &mut p.role {
            Role::Follower(f) if f.phase == FollowPhase::Truncating => {
                f.phase = FollowPhase::Ready(now);
            }
            // A truncation this replica started as a follower (its old leader's divergence)
            // ended after it became leader: its epoch starts at the new log end, or its high
            // watermark could never reach the epoch start.
            Role::Leader(leader) if leader.epoch_start > leo => {
                leader.epoch_start = leo;
                let epoch = p.leader_epoch;
                p.log.assign_epoch(epoch);
            }
            _ => {}
        }
        self.maybe_fetch(now, topic, partition);
    }

    /// The periodic check: resend lost follower fetches, expire parked ones, adjust the ISR.
    pub(super) fn on_replica_tick(&mut self, now: Instant) {
        let config = self.replication.clone();
        let keys = self.open_partition_keys();
        let resend_after = config.replica_fetch_wait_max
            + config.replica_fetch_wait_max
            + config.replica_fetch_backoff;
        for (topic, partition) in keys {
            let Some(p) = self.partition_mut(&topic, partition) else {
                continue;
            };
            match &mut p.role {
                Role::Follower(f) => {
                    if let FollowPhase::InFlight { sent_at, .. } = f.phase {
                        if now >= sent_at + resend_after {
                            f.phase = FollowPhase::Ready(now);
                        }
                    }
                    self.maybe_fetch(now, &topic, partition);
                }
                Role::Leader(leader) => {
                    let (expired, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut leader.parked)
                        .into_iter()
                        .partition(|(_, _, deadline)| *deadline <= now);
                    leader.parked = kept;
                    let (hw, log_start) = (p.high_watermark, p.log.log_start_offset());
                    for (from, request, _) in expired {
                        let response = self.replica_response(&request, errors::NONE, hw, log_start);
                        self.send_peer(
                            PeerTarget::Node(from),
                            PeerMessage::FetchResponse(response),
                        );
                    }
                    self.maybe_alter_isr(now, &topic, partition);
                    self.recompute_high_watermark(now, &topic, partition);
                }
                Role::Offline => {}
            }
        }
    }
}

/// A replica's state as the simulator's invariant checks see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaView {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// `Some(true)` leading, `Some(false)` following, `None` offline.
    pub leading: Option<bool>,
    /// The leader this replica follows (itself when leading).
    pub leader: Option<NodeId>,
    /// The leader epoch it leads or follows.
    pub leader_epoch: i32,
    /// Its high watermark.
    pub high_watermark: i64,
    /// Log start offset.
    pub log_start_offset: i64,
    /// Log end offset.
    pub log_end_offset: i64,
    /// Durable offset.
    pub durable_offset: i64,
    /// Leading: the ISR of the image and the maximal ISR the high watermark honours.
    pub isr: Vec<NodeId>,
    /// Leading: the union of the ISR and a pending ISR change.
    pub maximal_isr: Vec<NodeId>,
    /// Leading: where its epoch started.
    pub epoch_start: i64,
    /// The leader epoch cache.
    pub epochs: Vec<(i32, i64)>,
}

impl Broker {
    /// Every open, recovered partition's replica state.
    pub fn replica_views(&self) -> Vec<ReplicaView> {
        let me = self.me();
        let mut views = Vec::new();
        for (name, topic) in &self.topics {
            for (index, p) in topic.partitions.iter().enumerate() {
                if !p.log.is_ready() {
                    continue;
                }
                let (leading, leader, isr, maximal_isr, epoch_start) = match &p.role {
                    Role::Offline => (None, None, Vec::new(), Vec::new(), -1),
                    Role::Leader(l) => (
                        Some(true),
                        Some(me),
                        l.isr.clone(),
                        l.maximal_isr(),
                        l.epoch_start,
                    ),
                    Role::Follower(f) => (Some(false), Some(f.leader), Vec::new(), Vec::new(), -1),
                };
                views.push(ReplicaView {
                    topic: name.clone(),
                    partition: index as i32,
                    leading,
                    leader,
                    leader_epoch: p.leader_epoch,
                    high_watermark: p.high_watermark,
                    log_start_offset: p.log.log_start_offset(),
                    log_end_offset: p.log.log_end_offset(),
                    durable_offset: p.log.durable_offset(),
                    isr,
                    maximal_isr,
                    epoch_start,
                    epochs: p.log.epoch_entries().to_vec(),
                });
            }
        }
        views
    }

    /// The metadata image this broker holds (cluster mode).
    pub fn image(&self) -> Option<&MetadataImage> {
        self.image.as_ref()
    }
}
