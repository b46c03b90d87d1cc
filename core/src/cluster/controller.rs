//! The active controller: the state machine on the controller quorum's Raft leader that decides
//! every metadata change (KRaft's `QuorumController`, KIP-500 / KIP-631).
//!
//! Every voter applies the committed [`MetadataBatch`]es to its [`MetadataImage`]; only the
//! voter that leads the Raft quorum is *active* and proposes new batches. The rules it follows
//! mirror Kafka's `ClusterControlManager`, `BrokerHeartbeatManager` and
//! `ReplicationControlManager`:
//!
//! - **Activation.** A new Raft leader first proposes an empty batch and becomes active only
//!   once that batch is committed *and applied*: from then on its image holds everything
//!   committed before its term, and every later change is its own. It stops being active on
//!   any leadership change; requests it still held are answered NOT_CONTROLLER.
//! - **One proposal in flight.** Decisions are computed from the applied image. While a batch
//!   is in flight nothing else is proposed; work found meanwhile goes into the next batch once
//!   that one is applied or refused. A batch is built against a scratch copy of the image, so
//!   later records in the same batch see the earlier ones, and each record is checked to apply.
//!   Partition records carry the partition epoch they were computed from (KIP-497), so a record
//!   that a concurrent change made stale is skipped at apply time, never half-applied.
//! - **Brokers** (KIP-631). A heartbeat from an unknown id or a newer incarnation registers it
//!   (fenced). A fenced broker is unfenced once its metadata offset reached its registration and
//!   it is not shutting down. A broker silent for `session_timeout` is fenced; a new active
//!   controller starts every broker's session clock when it activates.
//! - **Partitions.** Level-triggered on every batch: a fenced, unregistered or shutting-down
//!   broker leaves every ISR unless it is the last member (Kafka keeps the last one, so an
//!   unclean election is never implied), and loses leadership. A partition without a usable
//!   leader elects the first replica, in assignment order, that is in the ISR and live; if none
//!   is, it stays offline unless the topic sets `unclean.leader.election.enable=true`, in which
//!   case the first live replica leads with itself as the whole ISR. A reassignment completes
//!   once every added replica is in the ISR. With `auto.leader.rebalance.enable`, an idle tick
//!   moves leadership back to the preferred replica when it is live and in the ISR.
//! - **AlterPartition** (KIP-497) is validated like Kafka's: broker epoch, leadership, leader
//!   epoch, partition epoch, and that every added ISR member is registered, unfenced and not
//!   shutting down (KIP-841). An accepted change reaches the leader through the image.
//! - **CreateTopics/DeleteTopics** are validated with Kafka's error codes; replicas are placed
//!   round-robin over the live brokers from a start drawn from the seeded PRNG (Kafka's
//!   rack-unaware assignment), and the answer leaves once the batch is applied, carrying its
//!   offset so the forwarding broker can wait until its own image reached it.
//!
//! Controller-side state that is not in the image (heartbeat times, queued requests) lives in
//! memory only; every bound is in `constants.rs`.

use super::metadata::{
    Endpoint, MetadataBatch, MetadataImage, MetadataRecord, PartitionChange, PartitionInfo,
    TopicInfo,
};
use super::peer::{
    AlterPartition, BrokerHeartbeat, BrokerHeartbeatResponse, PeerMessage, TopicResult, TopicSpec,
};
use crate::broker::config::TopicConfig;
use crate::broker::registry::topic_name_error;
use crate::canary::{Canaries, Canary};
use crate::constants::*;
use crate::prng::Prng;
use crate::raft::{NodeId, ProposeError};
use crate::time::{Duration, Instant};
use crate::timer::{TimerKind, TimerTable};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Kafka error codes the controller answers with.
pub mod errors {
    /// Success.
    pub const NONE: i16 = 0;
    /// The topic or partition does not exist.
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    /// The sender does not lead the partition.
    pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
    /// The controller is overloaded; retry.
    pub const REQUEST_TIMED_OUT: i16 = 7;
    /// Illegal topic name.
    pub const INVALID_TOPIC_EXCEPTION: i16 = 17;
    /// The topic exists.
    pub const TOPIC_ALREADY_EXISTS: i16 = 36;
    /// Bad partition count.
    pub const INVALID_PARTITIONS: i16 = 37;
    /// Bad replication factor.
    pub const INVALID_REPLICATION_FACTOR: i16 = 38;
    /// Bad manual replica assignment.
    pub const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
    /// Unknown or invalid topic config.
    pub const INVALID_CONFIG: i16 = 40;
    /// The receiver is not the active controller.
    pub const NOT_CONTROLLER: i16 = 41;
    /// Malformed request.
    pub const INVALID_REQUEST: i16 = 42;
    /// Refused by a cluster limit.
    pub const POLICY_VIOLATION: i16 = 44;
    /// The sender's leader epoch is not the current one.
    pub const FENCED_LEADER_EPOCH: i16 = 74;
    /// The sender's incarnation is not the registered one.
    pub const STALE_BROKER_EPOCH: i16 = 77;
    /// A replica added to the ISR is not registered, is fenced or is shutting down.
    pub const INELIGIBLE_REPLICA: i16 = 107;
    /// The sender's partition epoch is not the current one.
    pub const INVALID_UPDATE_VERSION: i16 = 108;
}

/// The active controller's settings.
#[derive(Clone, Debug)]
pub struct ControllerConfig {
    /// This voter.
    pub node_id: NodeId,
    /// `broker.session.timeout.ms`: a broker silent this long is fenced.
    pub session_timeout: Duration,
    /// How often the active controller re-checks sessions and leaders.
    pub tick_interval: Duration,
    /// `num.partitions`: partitions of a topic created with -1.
    pub default_partitions: i32,
    /// `default.replication.factor`: replication factor of a topic created with -1.
    pub default_replication_factor: i16,
    /// `min.insync.replicas` default, used to validate topic configs.
    pub default_min_insync_replicas: i32,
    /// `auto.leader.rebalance.enable`: move leadership back to preferred replicas.
    pub preferred_leader_election: bool,
    /// Most topics in the cluster (POLICY_VIOLATION beyond).
    pub topics_max: usize,
    /// Most partitions in the cluster (POLICY_VIOLATION beyond).
    pub partitions_max: usize,
    /// Planted bugs switched on (only with the `canary` feature).
    pub canaries: Canaries,
}

impl ControllerConfig {
    /// Kafka's defaults for voter `node_id`.
    pub fn new(node_id: NodeId) -> ControllerConfig {
        ControllerConfig {
            node_id,
            session_timeout: Duration::from_millis(CONTROLLER_SESSION_TIMEOUT_MS_DEFAULT),
            tick_interval: Duration::from_millis(CONTROLLER_TICK_INTERVAL_MS_DEFAULT),
            default_partitions: 1,
            default_replication_factor: 1,
            default_min_insync_replicas: 1,
            preferred_leader_election: true,
            topics_max: TOPICS_MAX,
            partitions_max: PARTITIONS_MAX,
            canaries: Canaries::NONE,
        }
    }
}

/// What the controller asks of its owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ControllerOutput {
    /// Propose this batch to Raft as one entry; `tag` is echoed in `on_proposal_result`.
    Propose {
        /// Identifies the proposal.
        tag: u64,
        /// The records.
        batch: MetadataBatch,
    },
    /// Send a peer message.
    Send {
        /// Destination.
        to: NodeId,
        /// The message.
        message: PeerMessage,
    },
}

/// The controller's timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControllerTimer {
    /// Re-check sessions, leaders and queued work; retry a refused proposal.
    Tick,
}

impl TimerKind for ControllerTimer {
    const COUNT: usize = 1;
    fn index(self) -> usize {
        self as usize
    }
    fn from_index(index: usize) -> Self {
        [ControllerTimer::Tick][index]
    }
}

/// What the controller last heard from a broker (memory only).
#[derive(Clone, Debug)]
struct Contact {
    incarnation: u64,
    storage: u64,
    endpoint: Endpoint,
    metadata_offset: u64,
    shutting_down: bool,
    last: Instant,
}

/// A request waiting for the next batch.
#[derive(Clone, Debug)]
enum Request {
    CreateTopics {
        from: NodeId,
        request: u64,
        topics: Vec<TopicSpec>,
    },
    DeleteTopics {
        from: NodeId,
        request: u64,
        names: Vec<String>,
    },
    AlterPartition {
        from: NodeId,
        alter: AlterPartition,
    },
    Reassign {
        topic: String,
        partition: u32,
        target: Vec<NodeId>,
    },
}

/// A TopicsResponse to send once the batch it depends on is applied.
#[derive(Clone, Debug)]
struct Reply {
    to: NodeId,
    request: u64,
    results: Vec<TopicResult>,
}

/// The one proposal in flight.
#[derive(Clone, Debug)]
struct InFlight {
    tag: u64,
    /// The index it committed at, once known.
    committed: Option<u64>,
    /// The requests it carries, put back in the queue if it is refused.
    requests: Vec<Request>,
    /// Answers to send once it is applied.
    replies: Vec<Reply>,
}

/// State valid only while active.
#[derive(Clone, Debug)]
struct Active {
    activated_at: Instant,
    contacts: BTreeMap<NodeId, Contact>,
    queue: VecDeque<Request>,
    in_flight: Option<InFlight>,
}

impl Active {
    fn requests_held(&self) -> usize {
        self.queue.len() + self.in_flight.as_ref().map_or(0, |f| f.requests.len())
    }
}

/// The controller's role, carrying the data valid in it.
#[derive(Clone, Debug)]
enum Role {
    /// Not the Raft leader; `leader` is the hint given to brokers.
    Inactive { leader: Option<NodeId> },
    /// The Raft leader, waiting for its first batch to be applied: `(tag, committed index)`.
    Activating { barrier: Option<(u64, Option<u64>)> },
    /// The active controller.
    Active(Box<Active>),
}

/// The controller state machine (see the module docs).
pub struct Controller {
    config: ControllerConfig,
    prng: Prng,
    timers: TimerTable<ControllerTimer>,
    outbox: VecDeque<ControllerOutput>,
    image: MetadataImage,
    /// Per broker: the incarnation and the offset its registration was applied at.
    registered_at: BTreeMap<NodeId, (u64, u64)>,
    role: Role,
    next_tag: u64,
    /// The latest `now` handed in, for work triggered by `apply` (which carries no time).
    now: Instant,
}

impl Controller {
    /// An inactive controller with an empty image.
    pub fn new(config: ControllerConfig, seed: u64) -> Controller {
        assert!(config.tick_interval > Duration::ZERO);
        assert!(config.session_timeout > config.tick_interval);
        assert!(config.default_partitions >= 1 && config.default_replication_factor >= 1);
        Controller {
            config,
            prng: Prng::new(seed),
            timers: TimerTable::default(),
            outbox: VecDeque::new(),
            image: MetadataImage::default(),
            registered_at: BTreeMap::new(),
            role: Role::Inactive { leader: None },
            next_tag: 0,
            now: Instant::ZERO,
        }
    }

    /// The applied (committed) image.
    pub fn image(&self) -> &MetadataImage {
        &self.image
    }

    /// True once this voter leads the quorum and has applied everything before its term.
    pub fn is_active(&self) -> bool {
        matches!(self.role, Role::Active(_))
    }

    /// The active controller as far as this voter knows.
    pub fn controller_hint(&self) -> Option<NodeId> {
        match self.role {
            Role::Inactive { leader } => leader,
            Role::Activating { .. } | Role::Active(_) => Some(self.config.node_id),
        }
    }

    /// Applies a committed entry (in index order, on every voter).
    pub fn apply(&mut self, index: u64, batch: &MetadataBatch) {
        assert!(
            index > self.image.offset,
            "entries apply in order, once each"
        );
        for record in batch {
            let applied = self.image.apply(record);
            if let (
                true,
                MetadataRecord::RegisterBroker {
                    id, incarnation, ..
                },
            ) = (applied, record)
            {
                self.registered_at.insert(*id, (*incarnation, index));
            }
        }
        self.image.offset = index;
        self.after_apply();
        self.invariants();
    }

    /// Applies a committed Raft no-op.
    pub fn apply_noop(&mut self, index: u64) {
        assert!(
            index > self.image.offset,
            "entries apply in order, once each"
        );
        self.image.offset = index;
        self.after_apply();
        self.invariants();
    }

    /// Replaces the image with a Raft snapshot's.
    pub fn restore(&mut self, image: MetadataImage) {
        // Registration offsets are not in the image: take the snapshot's offset, which every
        // registration in it precedes, so a broker must catch up to it before it is unfenced.
        self.registered_at = image
            .brokers
            .iter()
            .map(|(&id, b)| (id, (b.incarnation, image.offset)))
            .collect();
        self.image = image;
        self.after_apply();
        self.invariants();
    }

    /// The Raft leader changed (call on every change of the Raft leader). Activation starts
    /// when the leader is this voter; any other value ends it.
    pub fn on_leadership(&mut self, now: Instant, leader: Option<NodeId>) {
        self.now = now;
        if leader == Some(self.config.node_id) {
            if let Role::Inactive { .. } = self.role {
                self.role = Role::Activating { barrier: None };
                self.timers
                    .set(ControllerTimer::Tick, now + self.config.tick_interval);
                self.propose_barrier();
            }
        } else {
            self.deactivate(leader);
        }
        self.invariants();
    }

    /// The outcome of a proposal this controller made.
    pub fn on_proposal_result(
        &mut self,
        now: Instant,
        tag: u64,
        result: Result<u64, ProposeError>,
    ) {
        self.now = now;
        match &mut self.role {
            Role::Activating {
                barrier: Some((barrier_tag, committed)),
            } if *barrier_tag == tag => match result {
                Ok(index) => *committed = Some(index),
                // Retried on the next tick, while this voter still leads.
                Err(_) => self.role = Role::Activating { barrier: None },
            },
            Role::Active(active) => match (&mut active.in_flight, result) {
                (Some(f), Ok(index)) if f.tag == tag => f.committed = Some(index),
                (Some(f), Err(error)) if f.tag == tag => self.on_proposal_refused(error),
                _ => {}
            },
            _ => {}
        }
        self.after_apply();
        self.invariants();
    }

    /// A message from a broker: Heartbeat, AlterPartition, CreateTopics or DeleteTopics.
    pub fn handle_peer(&mut self, now: Instant, from: NodeId, message: PeerMessage) {
        self.now = now;
        match message {
            PeerMessage::Heartbeat(heartbeat) => self.on_heartbeat(now, from, heartbeat),
            PeerMessage::AlterPartition(alter) => self.on_alter_partition(from, alter),
            PeerMessage::CreateTopics { request, topics } => {
                self.on_create_topics(from, request, topics)
            }
            PeerMessage::DeleteTopics { request, names } => {
                self.on_delete_topics(from, request, names)
            }
            _ => {}
        }
        self.invariants();
    }

    /// Starts moving a partition to `target` replicas (Kafka's AlterPartitionReassignments).
    /// The reassignment completes once every new replica is in the ISR.
    pub fn reassign(
        &mut self,
        topic: &str,
        partition: u32,
        target: Vec<NodeId>,
    ) -> Result<(), i16> {
        let Role::Active(active) = &mut self.role else {
            return Err(errors::NOT_CONTROLLER);
        };
        reassignment(&self.image, topic, partition, &target)?;
        if active.requests_held() >= CONTROLLER_REQUESTS_QUEUED_MAX {
            return Err(errors::REQUEST_TIMED_OUT);
        }
        active.queue.push_back(Request::Reassign {
            topic: topic.to_owned(),
            partition,
            target,
        });
        self.try_propose(false);
        self.invariants();
        Ok(())
    }

    /// `poll_timeout` passed.
    pub fn on_timeout(&mut self, now: Instant) {
        self.now = now;
        while let Some(timer) = self.timers.pop_expired(now) {
            match timer {
                ControllerTimer::Tick => self.on_tick_timeout(now),
            }
        }
        self.invariants();
    }

    /// The next output, if any.
    pub fn poll_output(&mut self) -> Option<ControllerOutput> {
        self.outbox.pop_front()
    }

    /// When `on_timeout` is due.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next_deadline()
    }

    fn on_tick_timeout(&mut self, now: Instant) {
        self.timers
            .set(ControllerTimer::Tick, now + self.config.tick_interval);
        match self.role {
            Role::Activating { barrier: None } => self.propose_barrier(),
            Role::Active(_) => self.try_propose(true),
            _ => {}
        }
    }

    fn propose_barrier(&mut self) {
        let tag = self.take_tag();
        self.role = Role::Activating {
            barrier: Some((tag, None)),
        };
        self.push(ControllerOutput::Propose {
            tag,
            batch: Vec::new(),
        });
    }

    fn take_tag(&mut self) -> u64 {
        self.next_tag += 1;
        self.next_tag
    }

    /// Work that waits for the image to reach an index: activation and the in-flight batch.
    fn after_apply(&mut self) {
        let offset = self.image.offset;
        match &self.role {
            Role::Activating {
                barrier: Some((_, Some(index))),
            } if *index <= offset => self.activate(),
            Role::Active(active) => {
                if let Some(InFlight {
                    committed: Some(index),
                    ..
                }) = active.in_flight
                {
                    if index <= offset {
                        self.complete_in_flight(index);
                    }
                }
            }
            _ => {}
        }
    }

    fn activate(&mut self) {
        self.role = Role::Active(Box::new(Active {
            activated_at: self.now,
            contacts: BTreeMap::new(),
            queue: VecDeque::new(),
            in_flight: None,
        }));
        self.try_propose(false);
    }

    fn deactivate(&mut self, leader: Option<NodeId>) {
        let old = std::mem::replace(&mut self.role, Role::Inactive { leader });
        self.timers.stop(ControllerTimer::Tick);
        if let Role::Active(active) = old {
            let active = *active;
            let in_flight = active.in_flight.map(|f| f.requests).unwrap_or_default();
            for request in in_flight.into_iter().chain(active.queue) {
                self.refuse(request, errors::NOT_CONTROLLER);
            }
        }
    }

    fn complete_in_flight(&mut self, index: u64) {
        let Role::Active(active) = &mut self.role else {
            unreachable!("only an active controller has a batch in flight");
        };
        let f = active.in_flight.take().expect("a batch is in flight");
        assert_eq!(f.committed, Some(index));
        for reply in f.replies {
            self.send_reply(reply, index);
        }
        self.try_propose(false);
    }

    /// A refused batch is dropped; its requests go back to the front of the queue, except after
    /// an indeterminate outcome (leadership lost), where they are answered NOT_CONTROLLER.
    fn on_proposal_refused(&mut self, error: ProposeError) {
        let Role::Active(active) = &mut self.role else {
            unreachable!("only an active controller has a batch in flight");
        };
        let f = active.in_flight.take().expect("a batch is in flight");
        if error == ProposeError::Indeterminate {
            for request in f.requests {
                self.refuse(request, errors::NOT_CONTROLLER);
            }
            return;
        }
        for request in f.requests.into_iter().rev() {
            active.queue.push_front(request);
        }
    }

    fn refuse(&mut self, request: Request, error: i16) {
        match request {
            Request::CreateTopics {
                from,
                request,
                topics,
            } => {
                let results = topics
                    .iter()
                    .map(|t| error_result(&t.name, error, None))
                    .collect();
                self.send_reply(
                    Reply {
                        to: from,
                        request,
                        results,
                    },
                    self.image.offset,
                );
            }
            Request::DeleteTopics {
                from,
                request,
                names,
            } => {
                let results = names.iter().map(|n| error_result(n, error, None)).collect();
                self.send_reply(
                    Reply {
                        to: from,
                        request,
                        results,
                    },
                    self.image.offset,
                );
            }
            Request::AlterPartition { from, alter } => self.send_alter_error(from, &alter, error),
            Request::Reassign { .. } => {}
        }
    }

    fn send_reply(&mut self, reply: Reply, metadata_offset: u64) {
        self.push(ControllerOutput::Send {
            to: reply.to,
            message: PeerMessage::TopicsResponse {
                request: reply.request,
                results: reply.results,
                metadata_offset,
            },
        });
    }

    fn send_alter_error(&mut self, to: NodeId, alter: &AlterPartition, error: i16) {
        self.push(ControllerOutput::Send {
            to,
            message: PeerMessage::AlterPartitionResponse {
                topic: alter.topic.clone(),
                partition: alter.partition,
                error,
            },
        });
    }

    fn push(&mut self, output: ControllerOutput) {
        assert!(self.outbox.len() < CONTROLLER_OUTBOX_MAX, "outbox overflow");
        self.outbox.push_back(output);
    }

    fn on_heartbeat(&mut self, now: Instant, from: NodeId, heartbeat: BrokerHeartbeat) {
        let Role::Active(active) = &mut self.role else {
            let response = heartbeat_response(false, self.controller_hint(), None, true, false);
            return self.push(ControllerOutput::Send {
                to: from,
                message: response_message(response),
            });
        };
        let tracked = match active.contacts.get(&from) {
            Some(contact) => heartbeat.incarnation >= contact.incarnation,
            None => active.contacts.len() < CONTROLLER_BROKERS_MAX,
        };
        if tracked {
            active.contacts.insert(
                from,
                Contact {
                    incarnation: heartbeat.incarnation,
                    storage: heartbeat.storage,
                    endpoint: heartbeat.endpoint.clone(),
                    metadata_offset: heartbeat.metadata_offset,
                    shutting_down: heartbeat.shutting_down,
                    last: now,
                },
            );
        }
        let registered = self
            .image
            .brokers
            .get(&from)
            .filter(|b| b.incarnation == heartbeat.incarnation)
            .map(|b| b.fenced);
        let fenced = registered.unwrap_or(true);
        let shutdown_ready = heartbeat.shutting_down && !leads_any(&self.image, from);
        let image =
            (heartbeat.metadata_offset < self.image.offset).then(|| Box::new(self.image.clone()));
        let controller = Some(self.config.node_id);
        let response = heartbeat_response(true, controller, image, fenced, shutdown_ready);
        self.push(ControllerOutput::Send {
            to: from,
            message: response_message(response),
        });
        if tracked && (registered.is_none() || fenced || heartbeat.shutting_down) {
            self.try_propose(false);
        }
    }

    fn on_alter_partition(&mut self, from: NodeId, alter: AlterPartition) {
        let Role::Active(active) = &mut self.role else {
            return self.send_alter_error(from, &alter, errors::NOT_CONTROLLER);
        };
        let shutting = shutting_down(&self.image, &active.contacts);
        match check_alter(&self.image, &self.config, &shutting, from, &alter) {
            Err(error) => self.send_alter_error(from, &alter, error),
            // Nothing to change: the leader learns the current ISR from the image.
            Ok(None) => {}
            Ok(Some(_)) => {
                // A newer request for the same partition replaces a queued one.
                let same = |r: &Request| {
                    matches!(r, Request::AlterPartition { alter: a, .. }
                        if a.topic == alter.topic && a.partition == alter.partition)
                };
                if let Some(slot) = active.queue.iter_mut().find(|r| same(r)) {
                    *slot = Request::AlterPartition { from, alter };
                } else if active.requests_held() < CONTROLLER_REQUESTS_QUEUED_MAX {
                    active
                        .queue
                        .push_back(Request::AlterPartition { from, alter });
                } else {
                    return self.send_alter_error(from, &alter, errors::REQUEST_TIMED_OUT);
                }
                self.try_propose(false);
            }
        }
    }

    fn on_create_topics(&mut self, from: NodeId, request: u64, topics: Vec<TopicSpec>) {
        let early = match &self.role {
            Role::Active(_) if topics.len() > REQUEST_TOPICS_MAX => Some(errors::INVALID_REQUEST),
            Role::Active(active) if active.requests_held() >= CONTROLLER_REQUESTS_QUEUED_MAX => {
                Some(errors::REQUEST_TIMED_OUT)
            }
            Role::Active(_) => None,
            _ => Some(errors::NOT_CONTROLLER),
        };
        if let Some(error) = early {
            return self.refuse(
                Request::CreateTopics {
                    from,
                    request,
                    topics,
                },
                error,
            );
        }
        // Answer at once when nothing would be created; otherwise wait for the next batch,
        // which validates again against the image it builds on.
        let eligible = self.eligible_brokers();
        let results: Vec<TopicResult> = (0..topics.len())
            .map(
                |i| match validate_topic(&self.image, &self.config, &eligible, &topics, i) {
                    Ok(plan) => plan_result(&topics[i], &plan, [0; 16]),
                    Err((error, message)) => error_result(&topics[i].name, error, Some(message)),
                },
            )
            .collect();
        let creates = results
            .iter()
            .zip(&topics)
            .any(|(r, t)| r.error == errors::NONE && !t.validate_only);
        if !creates {
            let reply = Reply {
                to: from,
                request,
                results,
            };
            return self.send_reply(reply, self.image.offset);
        }
        self.enqueue(Request::CreateTopics {
            from,
            request,
            topics,
        });
    }

    fn on_delete_topics(&mut self, from: NodeId, request: u64, names: Vec<String>) {
        let early = match &self.role {
            Role::Active(_) if names.len() > REQUEST_TOPICS_MAX => Some(errors::INVALID_REQUEST),
            Role::Active(active) if active.requests_held() >= CONTROLLER_REQUESTS_QUEUED_MAX => {
                Some(errors::REQUEST_TIMED_OUT)
            }
            Role::Active(_) => None,
            _ => Some(errors::NOT_CONTROLLER),
        };
        if let Some(error) = early {
            let request = Request::DeleteTopics {
                from,
                request,
                names,
            };
            return self.refuse(request, error);
        }
        if !names.iter().any(|n| self.image.topics.contains_key(n)) {
            let results = delete_results_unknown(&names);
            let reply = Reply {
                to: from,
                request,
                results,
            };
            return self.send_reply(reply, self.image.offset);
        }
        self.enqueue(Request::DeleteTopics {
            from,
            request,
            names,
        });
    }

    fn enqueue(&mut self, request: Request) {
        let Role::Active(active) = &mut self.role else {
            unreachable!("checked by the caller");
        };
        assert!(active.requests_held() < CONTROLLER_REQUESTS_QUEUED_MAX);
        active.queue.push_back(request);
        self.try_propose(false);
    }

    /// Registered, unfenced brokers not shutting down, by id.
    fn eligible_brokers(&self) -> Vec<NodeId> {
        let shutting = match &self.role {
            Role::Active(active) => shutting_down(&self.image, &active.contacts),
            _ => BTreeSet::new(),
        };
        eligible_brokers(&self.image, &shutting)
    }

    /// Builds and proposes the next batch, unless one is in flight or there is nothing to do.
    /// `tick`: also consider preferred-leader moves, which are not urgent.
    fn try_propose(&mut self, tick: bool) {
        let Role::Active(active) = &mut self.role else {
            return;
        };
        if active.in_flight.is_some() {
            return;
        }
        let shutting = shutting_down(&self.image, &active.contacts);
        let mut builder = Builder {
            config: &self.config,
            registered_at: &self.registered_at,
            prng: &mut self.prng,
            outbox: &mut self.outbox,
            batch: Batch::new(&self.image),
            shutting: &shutting,
            now: self.now,
        };
        builder.broker_work(active);
        let (requests, replies) = builder.requests(active);
        builder.partition_scan();
        if tick && builder.batch.records.is_empty() && self.config.preferred_leader_election {
            builder.preferred_leaders();
        }
        let records = builder.batch.records;
        if records.is_empty() {
            assert!(requests
                .iter()
                .all(|r| !matches!(r, Request::AlterPartition { .. })));
            for reply in replies {
                self.send_reply(reply, self.image.offset);
            }
            return;
        }
        self.next_tag += 1;
        let tag = self.next_tag;
        active.in_flight = Some(InFlight {
            tag,
            committed: None,
            requests,
            replies,
        });
        self.push(ControllerOutput::Propose {
            tag,
            batch: records,
        });
    }

    /// Cheap checks that hold after every step.
    fn invariants(&self) {
        assert!(self.outbox.len() <= CONTROLLER_OUTBOX_MAX);
        assert!(self.registered_at.len() <= self.image.brokers.len());
        match &self.role {
            Role::Inactive { .. } => assert!(self.timers.get(ControllerTimer::Tick).is_none()),
            Role::Activating { .. } => assert!(self.timers.get(ControllerTimer::Tick).is_some()),
            Role::Active(active) => {
                assert!(self.timers.get(ControllerTimer::Tick).is_some());
                assert!(active.contacts.len() <= CONTROLLER_BROKERS_MAX);
                assert!(active.requests_held() <= CONTROLLER_REQUESTS_QUEUED_MAX);
                if let Some(f) = &active.in_flight {
                    assert!(f.tag <= self.next_tag);
                }
            }
        }
    }
}

/// A batch under construction over a scratch copy of the image (cloned on the first record).
struct Batch<'a> {
    base: &'a MetadataImage,
    scratch: Option<MetadataImage>,
    records: MetadataBatch,
    bytes: usize,
}

impl<'a> Batch<'a> {
    fn new(base: &'a MetadataImage) -> Batch<'a> {
        Batch {
            base,
            scratch: None,
            records: Vec::new(),
            bytes: 0,
        }
    }

    /// The image as it will be after the records so far.
    fn view(&self) -> &MetadataImage {
        self.scratch.as_ref().unwrap_or(self.base)
    }

    fn room(&self, bytes: usize) -> bool {
        self.bytes + bytes <= CONTROLLER_BATCH_BYTES_MAX
    }

    /// Adds `record` if it fits; it must apply to the view it was computed from.
    fn try_push(&mut self, record: MetadataRecord) -> bool {
        let bytes = record_bytes_max(&record);
        if !self.room(bytes) {
            return false;
        }
        let base = self.base;
        let scratch = self.scratch.get_or_insert_with(|| base.clone());
        let applied = scratch.apply(&record);
        assert!(
            applied,
            "a record applies to the image it was computed from"
        );
        self.bytes += bytes;
        self.records.push(record);
        true
    }
}

/// Builds one batch: borrows what it needs from the controller (see `try_propose`).
struct Builder<'a> {
    config: &'a ControllerConfig,
    registered_at: &'a BTreeMap<NodeId, (u64, u64)>,
    prng: &'a mut Prng,
    outbox: &'a mut VecDeque<ControllerOutput>,
    batch: Batch<'a>,
    shutting: &'a BTreeSet<NodeId>,
    now: Instant,
}

impl Builder<'_> {
    /// Registrations, unfencing and session expiry.
    fn broker_work(&mut self, active: &Active) {
        for (&id, contact) in &active.contacts {
            let view = self.batch.view();
            let record = match view.brokers.get(&id) {
                None if view.brokers.len() >= CONTROLLER_BROKERS_MAX => None,
                Some(b) if b.incarnation >= contact.incarnation => {
                    let caught_up = self.registered_at.get(&id).is_some_and(|&(inc, offset)| {
                        inc == b.incarnation && contact.metadata_offset >= offset
                    });
                    let fresh =
                        self.now.saturating_since(contact.last) <= self.config.session_timeout;
                    let unfence = b.fenced
                        && b.incarnation == contact.incarnation
                        && caught_up
                        && fresh
                        && !contact.shutting_down;
                    unfence.then_some(MetadataRecord::SetFenced {
                        id,
                        incarnation: b.incarnation,
                        fenced: false,
                    })
                }
                // Unknown, or a new incarnation: the old process is gone.
                _ => Some(MetadataRecord::RegisterBroker {
                    id,
                    incarnation: contact.incarnation,
                    endpoint: contact.endpoint.clone(),
                    storage: contact.storage,
                }),
            };
            if let Some(record) = record {
                if !self.batch.try_push(record) {
                    return;
                }
            }
        }
        let expired: Vec<(NodeId, u64)> = self
            .batch
            .view()
            .brokers
            .iter()
            .filter(|(id, b)| {
                let last = active
                    .contacts
                    .get(id)
                    .filter(|c| c.incarnation == b.incarnation)
                    .map_or(active.activated_at, |c| c.last);
                !b.fenced && self.now.saturating_since(last) > self.config.session_timeout
            })
            .map(|(&id, b)| (id, b.incarnation))
            .collect();
        for (id, incarnation) in expired {
            let fenced = true;
            if !self.batch.try_push(MetadataRecord::SetFenced {
                id,
                incarnation,
                fenced,
            }) {
                return;
            }
        }
    }

    /// Queued requests in order, while they fit. Returns the requests taken into the batch and
    /// the answers to send once it is applied.
    fn requests(&mut self, active: &mut Active) -> (Vec<Request>, Vec<Reply>) {
        let mut taken = Vec::new();
        let mut replies = Vec::new();
        while let Some(request) = active.queue.front() {
            let need = request_bytes_max(self.batch.view(), self.config, request);
            if !self.batch.records.is_empty() && !self.batch.room(need) {
                break;
            }
            let request = active.queue.pop_front().expect("the queue has a front");
            match &request {
                Request::CreateTopics {
                    from,
                    request: tag,
                    topics,
                } => {
                    let results = self.create_topics(topics);
                    replies.push(Reply {
                        to: *from,
                        request: *tag,
                        results,
                    });
                }
                Request::DeleteTopics {
                    from,
                    request: tag,
                    names,
                } => {
                    let results = self.delete_topics(names);
                    replies.push(Reply {
                        to: *from,
                        request: *tag,
                        results,
                    });
                }
                Request::AlterPartition { from, alter } => {
                    if !self.alter_partition(*from, alter) {
                        continue;
                    }
                }
                Request::Reassign {
                    topic,
                    partition,
                    target,
                } => match reassignment(self.batch.view(), topic, *partition, target) {
                    Ok(change) => {
                        let pushed = self.batch.try_push(MetadataRecord::ChangePartition(change));
                        assert!(pushed, "room was checked");
                    }
                    Err(_) => continue,
                },
            }
            taken.push(request);
        }
        (taken, replies)
    }

    /// Adds an accepted ISR change, or answers the refusal. True if a record was added.
    fn alter_partition(&mut self, from: NodeId, alter: &AlterPartition) -> bool {
        match check_alter(self.batch.view(), self.config, self.shutting, from, alter) {
            Err(error) => {
                assert!(self.outbox.len() < CONTROLLER_OUTBOX_MAX, "outbox overflow");
                self.outbox.push_back(ControllerOutput::Send {
                    to: from,
                    message: PeerMessage::AlterPartitionResponse {
                        topic: alter.topic.clone(),
                        partition: alter.partition,
                        error,
                    },
                });
                false
            }
            Ok(None) => false,
            Ok(Some(change)) => {
                let pushed = self.batch.try_push(MetadataRecord::ChangePartition(change));
                assert!(pushed, "room was checked");
                true
            }
        }
    }

    fn create_topics(&mut self, topics: &[TopicSpec]) -> Vec<TopicResult> {
        let mut results = Vec::with_capacity(topics.len());
        for (i, spec) in topics.iter().enumerate() {
            let eligible = eligible_brokers(self.batch.view(), self.shutting);
            let plan = validate_topic(self.batch.view(), self.config, &eligible, topics, i);
            let result = match plan {
                Err((error, message)) => error_result(&spec.name, error, Some(message)),
                Ok(plan) if spec.validate_only => plan_result(spec, &plan, [0; 16]),
                Ok(plan) => self.create_topic(spec, &plan, &eligible),
            };
            results.push(result);
        }
        results
    }

    fn create_topic(&mut self, spec: &TopicSpec, plan: &Plan, eligible: &[NodeId]) -> TopicResult {
        let assignments = if spec.assignments.is_empty() {
            place_replicas(
                self.prng,
                eligible,
                plan.partitions,
                plan.replication_factor,
            )
        } else {
            spec.assignments.clone()
        };
        let id = new_topic_id(self.prng, self.batch.view());
        let record = MetadataRecord::CreateTopic {
            name: spec.name.clone(),
            id,
            configs: spec.configs.clone(),
            assignments,
        };
        if !self.batch.try_push(record) {
            let message = "the request does not fit in one metadata batch".to_owned();
            return error_result(&spec.name, errors::POLICY_VIOLATION, Some(message));
        }
        plan_result(spec, plan, id)
    }

    fn delete_topics(&mut self, names: &[String]) -> Vec<TopicResult> {
        let mut results = Vec::with_capacity(names.len());
        for name in names {
            if names.iter().filter(|n| *n == name).count() > 1 {
                let message = Some(format!("topic {name:?} is named more than once"));
                results.push(error_result(name, errors::INVALID_REQUEST, message));
                continue;
            }
            let Some(id) = self.batch.view().topics.get(name).map(|t| t.id) else {
                results.push(error_result(name, errors::UNKNOWN_TOPIC_OR_PARTITION, None));
                continue;
            };
            let record = MetadataRecord::DeleteTopic {
                name: name.clone(),
                id,
            };
            let result = if self.batch.try_push(record) {
                TopicResult {
                    id,
                    ..error_result(name, errors::NONE, None)
                }
            } else {
                let message = Some("the request does not fit in one metadata batch".to_owned());
                error_result(name, errors::POLICY_VIOLATION, message)
            };
            results.push(result);
        }
        results
    }

    /// ISR cleanup, leader election and reassignment completion for every partition.
    fn partition_scan(&mut self) {
        let view = self.batch.view();
        let shutting = self.shutting;
        let eligible = |id: NodeId| is_eligible(view, shutting, id);
        let outside_isr = self
            .config
            .canaries
            .is_on(Canary::ControllerElectsOutsideIsr);
        let mut changes = Vec::new();
        for (name, topic) in &view.topics {
            let unclean = topic.config::<bool>("unclean.leader.election.enable") == Some(true);
            let min_isr = min_isr_of(topic, self.config);
            for (index, p) in topic.partitions.iter().enumerate() {
                let index = u32::try_from(index).expect("partition counts fit in u32");
                let rules = ElectionRules {
                    unclean,
                    outside_isr,
                    min_isr,
                };
                if let Some(change) = partition_fix(name, index, p, &eligible, rules) {
                    changes.push(change);
                }
            }
        }
        for change in changes {
            if !self.batch.try_push(MetadataRecord::ChangePartition(change)) {
                return;
            }
        }
    }

    /// Moves leadership back to preferred replicas that are live and in the ISR.
    fn preferred_leaders(&mut self) {
        let view = self.batch.view();
        let mut changes = Vec::new();
        for (name, topic) in &view.topics {
            for (index, p) in topic.partitions.iter().enumerate() {
                let Some(&preferred) = p.replicas.first() else {
                    continue;
                };
                if p.leader == Some(preferred)
                    || !p.isr.contains(&preferred)
                    || !is_eligible(view, self.shutting, preferred)
                {
                    continue;
                }
                let mut change = unchanged(name, index, p);
                change.leader = Some(Some(preferred));
                changes.push(change);
            }
        }
        for change in changes {
            if !self.batch.try_push(MetadataRecord::ChangePartition(change)) {
                return;
            }
        }
    }
}

/// What a topic creation will be.
#[derive(Clone, Debug)]
struct Plan {
    partitions: i32,
    replication_factor: i16,
}

/// Validates topic `topics[i]` of a CreateTopics against `view` (Kafka's checks and codes).
fn validate_topic(
    view: &MetadataImage,
    config: &ControllerConfig,
    eligible: &[NodeId],
    topics: &[TopicSpec],
    i: usize,
) -> Result<Plan, (i16, String)> {
    let spec = &topics[i];
    let name = &spec.name;
    if topics.iter().filter(|t| t.name == *name).count() > 1 {
        let message = format!("topic {name:?} is named more than once");
        return Err((errors::INVALID_REQUEST, message));
    }
    if let Some(message) = topic_name_error(name) {
        return Err((errors::INVALID_TOPIC_EXCEPTION, message));
    }
    if view.topics.contains_key(name) {
        let message = format!("Topic '{name}' already exists.");
        return Err((errors::TOPIC_ALREADY_EXISTS, message));
    }
    let plan = if spec.assignments.is_empty() {
        placement_plan(config, eligible, spec)?
    } else {
        assignment_plan(eligible, spec)?
    };
    validate_configs(config, spec)?;
    if view.topics.len() >= config.topics_max {
        let message = format!("the cluster holds at most {} topics", config.topics_max);
        return Err((errors::POLICY_VIOLATION, message));
    }
    let partitions: usize = view.topics.values().map(|t| t.partitions.len()).sum();
    let new = usize::try_from(plan.partitions).expect("validated positive");
    if partitions + new > config.partitions_max {
        let message = format!(
            "the cluster holds at most {} partitions",
            config.partitions_max
        );
        return Err((errors::POLICY_VIOLATION, message));
    }
    if create_bytes_max(name, &spec.configs, new, plan.replication_factor)
        > CONTROLLER_BATCH_BYTES_MAX
    {
        let message = "partitions × replication factor too large for one record".to_owned();
        return Err((errors::POLICY_VIOLATION, message));
    }
    Ok(plan)
}

/// Partition count and replication factor for controller-placed replicas.
fn placement_plan(
    config: &ControllerConfig,
    eligible: &[NodeId],
    spec: &TopicSpec,
) -> Result<Plan, (i16, String)> {
    let partitions = match spec.partitions {
        -1 => config.default_partitions,
        n => n,
    };
    if !(1..=TOPIC_PARTITIONS_MAX).contains(&partitions) {
        let message = format!("partition count must be in 1..={TOPIC_PARTITIONS_MAX}");
        return Err((errors::INVALID_PARTITIONS, message));
    }
    let replication_factor = match spec.replication_factor {
        -1 => config.default_replication_factor,
        n => n,
    };
    if replication_factor < 1 {
        let message = "replication factor must be at least 1".to_owned();
        return Err((errors::INVALID_REPLICATION_FACTOR, message));
    }
    if usize::try_from(replication_factor).expect("positive") > eligible.len() {
        let message = format!(
            "Replication factor: {replication_factor} larger than available brokers: {}.",
            eligible.len()
        );
        return Err((errors::INVALID_REPLICATION_FACTOR, message));
    }
    Ok(Plan {
        partitions,
        replication_factor,
    })
}

/// Checks a manual replica assignment: every partition names distinct live brokers, and all
/// partitions have the same replication factor.
fn assignment_plan(eligible: &[NodeId], spec: &TopicSpec) -> Result<Plan, (i16, String)> {
    if spec.partitions != -1 || spec.replication_factor != -1 {
        let message = "with a manual assignment, partitions and replication factor must be -1";
        return Err((errors::INVALID_REQUEST, message.to_owned()));
    }
    if spec.assignments.len() > TOPIC_PARTITIONS_MAX as usize {
        let message = format!("partition count must be in 1..={TOPIC_PARTITIONS_MAX}");
        return Err((errors::INVALID_PARTITIONS, message));
    }
    let width = spec.assignments[0].len();
    for (p, replicas) in spec.assignments.iter().enumerate() {
        let distinct: BTreeSet<NodeId> = replicas.iter().copied().collect();
        let problem = if replicas.is_empty() || replicas.len() != width {
            Some("every partition needs the same, non-zero number of replicas")
        } else if distinct.len() != replicas.len() {
            Some("a partition names a broker twice")
        } else if !replicas.iter().all(|r| eligible.contains(r)) {
            Some("a partition names a broker that is not registered and live")
        } else {
            None
        };
        if let Some(problem) = problem {
            let message = format!("partition {p}: {problem}");
            return Err((errors::INVALID_REPLICA_ASSIGNMENT, message));
        }
    }
    Ok(Plan {
        partitions: i32::try_from(spec.assignments.len()).expect("bounded above"),
        replication_factor: i16::try_from(width).unwrap_or(i16::MAX),
    })
}

fn validate_configs(config: &ControllerConfig, spec: &TopicSpec) -> Result<(), (i16, String)> {
    if spec.configs.len() > TOPIC_CONFIGS_MAX {
        let message = format!("at most {TOPIC_CONFIGS_MAX} configs per topic");
        return Err((errors::INVALID_CONFIG, message));
    }
    let too_long = |s: &String| s.len() > TOPIC_CONFIG_BYTES_MAX;
    if spec.configs.iter().any(|(k, v)| too_long(k) || too_long(v)) {
        let message = "config name or value too long".to_owned();
        return Err((errors::INVALID_CONFIG, message));
    }
    let defaults = TopicConfig {
        min_insync_replicas: config.default_min_insync_replicas,
        ..TopicConfig::default()
    };
    TopicConfig::with_overrides(&defaults, &spec.configs)
        .map(|_| ())
        .map_err(|message| (errors::INVALID_CONFIG, message))
}

/// Kafka's rack-unaware replica assignment: the first replica of partition `i` is broker
/// `start + i` (round-robin, so leaders spread evenly), and followers follow at a shift that
/// grows every time the partitions wrap around the brokers, so follower sets spread too.
fn place_replicas(
    prng: &mut Prng,
    brokers: &[NodeId],
    partitions: i32,
    replication_factor: i16,
) -> Vec<Vec<NodeId>> {
    let n = brokers.len();
    let rf = usize::try_from(replication_factor).expect("validated positive");
    assert!(rf >= 1 && rf <= n, "validated against the live brokers");
    let start = prng.below(n as u64) as usize;
    let mut shift = prng.below(n as u64) as usize;
    let count = usize::try_from(partitions).expect("validated positive");
    let mut assignments = Vec::with_capacity(count);
    for i in 0..count {
        if i > 0 && i % n == 0 {
            shift += 1;
        }
        let first = (start + i) % n;
        let mut replicas = Vec::with_capacity(rf);
        replicas.push(brokers[first]);
        for j in 0..rf - 1 {
            // n > 1 here, since rf - 1 >= 1 and rf <= n.
            let offset = 1 + (shift + j) % (n - 1);
            replicas.push(brokers[(first + offset) % n]);
        }
        assignments.push(replicas);
    }
    assignments
}

/// A non-zero topic id not used by any topic in `view`.
fn new_topic_id(prng: &mut Prng, view: &MetadataImage) -> [u8; 16] {
    for _ in 0..8 {
        let mut id = [0u8; 16];
        prng.fill(&mut id);
        if id != [0; 16] && !view.topics.values().any(|t| t.id == id) {
            return id;
        }
    }
    unreachable!("eight 128-bit draws do not all collide");
}

/// Validates an AlterPartition against `view`: `Ok(None)` when it changes nothing.
fn check_alter(
    view: &MetadataImage,
    config: &ControllerConfig,
    shutting: &BTreeSet<NodeId>,
    from: NodeId,
    alter: &AlterPartition,
) -> Result<Option<PartitionChange>, i16> {
    if view
        .brokers
        .get(&from)
        .is_none_or(|b| b.incarnation != alter.incarnation)
    {
        return Err(errors::STALE_BROKER_EPOCH);
    }
    let topic = view
        .topics
        .get(&alter.topic)
        .ok_or(errors::UNKNOWN_TOPIC_OR_PARTITION)?;
    let p = view
        .partition(&alter.topic, alter.partition)
        .ok_or(errors::UNKNOWN_TOPIC_OR_PARTITION)?;
    if p.leader != Some(from) {
        return Err(errors::NOT_LEADER_OR_FOLLOWER);
    }
    if alter.leader_epoch != p.leader_epoch {
        return Err(errors::FENCED_LEADER_EPOCH);
    }
    if alter.partition_epoch != p.partition_epoch {
        return Err(errors::INVALID_UPDATE_VERSION);
    }
    let distinct: BTreeSet<NodeId> = alter.isr.iter().copied().collect();
    if alter.isr.is_empty()
        || distinct.len() != alter.isr.len()
        || !alter.isr.contains(&from)
        || !alter.isr.iter().all(|r| p.replicas.contains(r))
    {
        return Err(errors::INVALID_REQUEST);
    }
    let current_incarnation = |r: NodeId| {
        let fetched = alter.incarnations.iter().find(|(id, _)| *id == r);
        let registered = view.brokers.get(&r).map(|b| b.incarnation);
        fetched.is_some_and(|(_, incarnation)| Some(*incarnation) == registered)
    };
    let added_ineligible = alter.isr.iter().any(|&r| {
        !p.isr.contains(&r) && (!is_eligible(view, shutting, r) || !current_incarnation(r))
    });
    if added_ineligible {
        return Err(errors::INELIGIBLE_REPLICA);
    }
    if alter.isr == p.isr {
        return Ok(None);
    }
    let mut change = unchanged(&alter.topic, alter.partition as usize, p);
    let elr = next_elr(p, &alter.isr, &p.replicas, min_isr_of(topic, config));
    change.elr = (elr != p.elr).then_some(elr);
    change.isr = Some(alter.isr.clone());
    Ok(Some(change))
}

/// Validates a reassignment to `target` and computes its first step: the union replica set,
/// target first, with the additions and removals recorded.
fn reassignment(
    view: &MetadataImage,
    topic: &str,
    partition: u32,
    target: &[NodeId],
) -> Result<PartitionChange, i16> {
    let p = view
        .partition(topic, partition)
        .ok_or(errors::UNKNOWN_TOPIC_OR_PARTITION)?;
    let distinct: BTreeSet<NodeId> = target.iter().copied().collect();
    if target.is_empty()
        || distinct.len() != target.len()
        || target.len() > CONTROLLER_BROKERS_MAX
        || !target.iter().all(|r| view.brokers.contains_key(r))
    {
        return Err(errors::INVALID_REPLICA_ASSIGNMENT);
    }
    if !p.adding.is_empty() || !p.removing.is_empty() {
        return Err(errors::INVALID_REQUEST);
    }
    let adding: Vec<NodeId> = target
        .iter()
        .copied()
        .filter(|r| !p.replicas.contains(r))
        .collect();
    let removing: Vec<NodeId> = p
        .replicas
        .iter()
        .copied()
        .filter(|r| !target.contains(r))
        .collect();
    let mut change = unchanged(topic, partition as usize, p);
    let mut replicas = target.to_vec();
    replicas.extend(&removing);
    change.replicas = Some(replicas);
    change.reassignment = Some((adding, removing));
    Ok(change)
}

/// How a partition without a usable leader may elect one.
#[derive(Clone, Copy, Debug)]
struct ElectionRules {
    /// The topic allows an unclean election.
    unclean: bool,
    /// Canary: elect the first live replica even outside the ISR.
    outside_isr: bool,
    /// The topic's `min.insync.replicas`.
    min_isr: usize,
}

/// The change, if any, that brings one partition in line: a completed reassignment, ineligible
/// brokers out of the ISR (never the last member), and a usable leader.
fn partition_fix(
    topic: &str,
    index: u32,
    p: &PartitionInfo,
    eligible: &dyn Fn(NodeId) -> bool,
    rules: ElectionRules,
) -> Option<PartitionChange> {
    let mut replicas = p.replicas.clone();
    let mut isr = p.isr.clone();
    let mut reassignment = None;
    let reassigning = !p.adding.is_empty() || !p.removing.is_empty();
    if reassigning && p.adding.iter().all(|r| p.isr.contains(r)) {
        let target: Vec<NodeId> = replicas
            .iter()
            .copied()
            .filter(|r| !p.removing.contains(r))
            .collect();
        let target_isr: Vec<NodeId> = isr.iter().copied().filter(|r| target.contains(r)).collect();
        if !target.is_empty() && !target_isr.is_empty() {
            replicas = target;
            isr = target_isr;
            reassignment = Some((Vec::new(), Vec::new()));
        }
    }
    let live_isr: Vec<NodeId> = isr.iter().copied().filter(|&r| eligible(r)).collect();
    if !live_isr.is_empty() {
        isr = live_isr;
    }
    let mut elr = next_elr(p, &isr, &replicas, rules.min_isr);
    let leader_usable = p
        .leader
        .is_some_and(|l| eligible(l) && isr.contains(&l) && replicas.contains(&l));
    let leader = if leader_usable {
        p.leader
    } else {
        elect(&replicas, &mut isr, &mut elr, eligible, rules)
    };
    if replicas == p.replicas
        && isr == p.isr
        && elr == p.elr
        && leader == p.leader
        && reassignment.is_none()
    {
        return None;
    }
    let mut change = unchanged(topic, index as usize, p);
    change.leader = (leader != p.leader).then_some(leader);
    change.elr = (elr != p.elr).then_some(elr);
    change.isr = (isr != p.isr).then_some(isr);
    change.replicas = (replicas != p.replicas).then_some(replicas);
    change.reassignment = reassignment;
    Some(change)
}

/// The first replica in assignment order that is in the ISR and live; else the first live
/// eligible leader replica (KIP-966), which becomes the ISR; with an unclean election allowed,
/// else the first live replica, which becomes the whole ISR.
fn elect(
    replicas: &[NodeId],
    isr: &mut Vec<NodeId>,
    elr: &mut Vec<NodeId>,
    eligible: &dyn Fn(NodeId) -> bool,
    rules: ElectionRules,
) -> Option<NodeId> {
    let first_live = replicas.iter().copied().find(|&r| eligible(r));
    if rules.outside_isr && first_live.is_some() {
        return first_live;
    }
    if let Some(r) = replicas
        .iter()
        .copied()
        .find(|&r| isr.contains(&r) && eligible(r))
    {
        return Some(r);
    }
    if let Some(r) = replicas
        .iter()
        .copied()
        .find(|&r| elr.contains(&r) && eligible(r))
    {
        // The old ISR members stay out: still fenced, and the ISR stays below the minimum, so
        // they become eligible leader replicas in turn.
        let before = std::mem::replace(isr, vec![r]);
        elr.retain(|&e| e != r);
        for old in before {
            if !elr.contains(&old) && old != r {
                elr.push(old);
            }
        }
        elr.sort_by_key(|e| replicas.iter().position(|x| x == e));
        return Some(r);
    }
    if rules.unclean {
        if let Some(r) = first_live {
            *isr = vec![r];
            elr.clear();
            return Some(r);
        }
    }
    None
}

/// The eligible leader replicas after the ISR of `p` becomes `isr` (KIP-966): none while the
/// ISR holds at least `min_isr` members (the high watermark moves with it); otherwise the
/// earlier ones plus every member that just left, all still replicas and not in the ISR.
fn next_elr(p: &PartitionInfo, isr: &[NodeId], replicas: &[NodeId], min_isr: usize) -> Vec<NodeId> {
    if isr.len() >= min_isr.min(replicas.len()) {
        return Vec::new();
    }
    let mut elr: Vec<NodeId> = p
        .elr
        .iter()
        .chain(&p.isr)
        .copied()
        .filter(|r| !isr.contains(r) && replicas.contains(r))
        .collect();
    elr.sort_by_key(|e| replicas.iter().position(|x| x == e));
    elr.dedup();
    elr
}

/// A topic's `min.insync.replicas`: its override, else the cluster default.
fn min_isr_of(topic: &TopicInfo, config: &ControllerConfig) -> usize {
    let min = topic
        .config::<i32>("min.insync.replicas")
        .unwrap_or(config.default_min_insync_replicas);
    usize::try_from(min).unwrap_or(1).max(1)
}

/// A change to `p` that changes nothing yet.
fn unchanged(topic: &str, index: usize, p: &PartitionInfo) -> PartitionChange {
    PartitionChange {
        topic: topic.to_owned(),
        partition: u32::try_from(index).expect("partition counts fit in u32"),
        expected_partition_epoch: p.partition_epoch,
        leader: None,
        isr: None,
        elr: None,
        replicas: None,
        reassignment: None,
    }
}

/// Brokers whose latest heartbeat (for their registered incarnation) asked to shut down.
fn shutting_down(image: &MetadataImage, contacts: &BTreeMap<NodeId, Contact>) -> BTreeSet<NodeId> {
    contacts
        .iter()
        .filter(|(id, c)| {
            c.shutting_down
                && image
                    .brokers
                    .get(id)
                    .is_some_and(|b| b.incarnation == c.incarnation)
        })
        .map(|(&id, _)| id)
        .collect()
}

/// Registered, unfenced and not shutting down: may lead and join ISRs.
fn is_eligible(view: &MetadataImage, shutting: &BTreeSet<NodeId>, id: NodeId) -> bool {
    view.brokers.get(&id).is_some_and(|b| !b.fenced) && !shutting.contains(&id)
}

fn eligible_brokers(view: &MetadataImage, shutting: &BTreeSet<NodeId>) -> Vec<NodeId> {
    view.live_brokers()
        .map(|(id, _)| id)
        .filter(|id| !shutting.contains(id))
        .collect()
}

fn leads_any(image: &MetadataImage, broker: NodeId) -> bool {
    image
        .topics
        .values()
        .flat_map(|t| &t.partitions)
        .any(|p| p.leader == Some(broker))
}

fn heartbeat_response(
    active: bool,
    controller: Option<NodeId>,
    image: Option<Box<MetadataImage>>,
    fenced: bool,
    shutdown_ready: bool,
) -> BrokerHeartbeatResponse {
    BrokerHeartbeatResponse {
        active,
        controller,
        image,
        fenced,
        shutdown_ready,
    }
}

fn response_message(response: BrokerHeartbeatResponse) -> PeerMessage {
    PeerMessage::HeartbeatResponse(response)
}

fn error_result(name: &str, error: i16, message: Option<String>) -> TopicResult {
    TopicResult {
        name: name.to_owned(),
        error,
        message,
        id: [0; 16],
        partitions: -1,
        replication_factor: -1,
    }
}

fn plan_result(spec: &TopicSpec, plan: &Plan, id: [u8; 16]) -> TopicResult {
    TopicResult {
        name: spec.name.clone(),
        error: errors::NONE,
        message: None,
        id,
        partitions: plan.partitions,
        replication_factor: plan.replication_factor,
    }
}

fn delete_results_unknown(names: &[String]) -> Vec<TopicResult> {
    names
        .iter()
        .map(|n| error_result(n, errors::UNKNOWN_TOPIC_OR_PARTITION, None))
        .collect()
}

/// Upper bound of a varint-encoded integer and of a length-prefixed list of node ids.
const VARINT_BYTES_MAX: usize = 10;
const RECORD_OVERHEAD_BYTES: usize = 64;

fn ids_bytes_max(count: usize) -> usize {
    VARINT_BYTES_MAX + count * 5
}

/// An upper bound on a record's postcard encoding (checked against postcard in the tests).
fn record_bytes_max(record: &MetadataRecord) -> usize {
    RECORD_OVERHEAD_BYTES
        + match record {
            MetadataRecord::RegisterBroker { endpoint, .. } => endpoint.host.len(),
            MetadataRecord::SetFenced { .. } => 0,
            MetadataRecord::CreateTopic {
                name,
                configs,
                assignments,
                ..
            } => {
                let rf = assignments.first().map_or(0, Vec::len);
                create_bytes_max(
                    name,
                    configs,
                    assignments.len(),
                    rf.try_into().unwrap_or(i16::MAX),
                )
            }
            MetadataRecord::DeleteTopic { name, .. } => name.len(),
            MetadataRecord::ChangePartition(c) => {
                let list =
                    |l: &Option<Vec<NodeId>>| l.as_ref().map_or(0, |l| ids_bytes_max(l.len()));
                let reassignment = c
                    .reassignment
                    .as_ref()
                    .map_or(0, |(a, r)| ids_bytes_max(a.len()) + ids_bytes_max(r.len()));
                c.topic.len() + list(&c.isr) + list(&c.elr) + list(&c.replicas) + reassignment
            }
        }
}

fn create_bytes_max(
    name: &str,
    configs: &BTreeMap<String, String>,
    partitions: usize,
    replication_factor: i16,
) -> usize {
    let rf = usize::try_from(replication_factor).unwrap_or(0);
    let configs: usize = configs
        .iter()
        .map(|(k, v)| k.len() + v.len() + 2 * VARINT_BYTES_MAX)
        .sum();
    RECORD_OVERHEAD_BYTES + name.len() + configs + partitions * ids_bytes_max(rf)
}

/// An upper bound on the bytes a request adds to a batch.
fn request_bytes_max(view: &MetadataImage, config: &ControllerConfig, request: &Request) -> usize {
    match request {
        Request::CreateTopics { topics, .. } => topics
            .iter()
            .map(|t| {
                let (partitions, rf) = if t.assignments.is_empty() {
                    let partitions = match t.partitions {
                        -1 => config.default_partitions,
                        n => n.clamp(0, TOPIC_PARTITIONS_MAX),
                    };
                    let rf = match t.replication_factor {
                        -1 => config.default_replication_factor,
                        n => n.clamp(0, i16::try_from(view.brokers.len()).unwrap_or(i16::MAX)),
                    };
                    (usize::try_from(partitions).unwrap_or(0), rf)
                } else {
                    let rf = t.assignments.iter().map(Vec::len).max().unwrap_or(0);
                    (t.assignments.len(), rf.try_into().unwrap_or(i16::MAX))
                };
                RECORD_OVERHEAD_BYTES + create_bytes_max(&t.name, &t.configs, partitions, rf)
            })
            .sum(),
        Request::DeleteTopics { names, .. } => {
            names.iter().map(|n| RECORD_OVERHEAD_BYTES + n.len()).sum()
        }
        Request::AlterPartition { alter, .. } => {
            RECORD_OVERHEAD_BYTES + alter.topic.len() + ids_bytes_max(alter.isr.len())
        }
        Request::Reassign {
            topic,
            partition,
            target,
        } => {
            let current = view
                .partition(topic, *partition)
                .map_or(0, |p| p.replicas.len());
            RECORD_OVERHEAD_BYTES + topic.len() + 3 * ids_bytes_max(target.len() + current)
        }
    }
}

#[cfg(test)]
#[path = "controller_tests.rs"]
mod tests;
