//! [`Node`]: one Seedlog process's state machine — the controller quorum voter (if this node is
//! a voter), the active controller (on the quorum leader) and the replicated broker — behind the
//! one `handle/poll` face of DESIGN §2.

use super::controller::{Controller, ControllerConfig, ControllerOutput};
use super::metadata::{Endpoint, MetadataBatch, MetadataImage};
use super::peer::{BrokerHeartbeat, BrokerHeartbeatResponse, PeerMessage};
use crate::broker::{
    Broker, BrokerConfig, BrokerEvent, BrokerInput, BrokerOutput, ConnectionId, PeerTarget,
    ReplicationConfig, RequestContext,
};
use crate::canary::Canaries;
use crate::constants::{
    ADMISSION_HEARTBEAT_INTERVAL_MS, HEARTBEATS_UNANSWERED_BEFORE_PROBE, LOCAL_MESSAGES_MAX,
    REPLICA_FETCH_MAX_BYTES_DEFAULT,
};
use crate::io::{DiskCompletion, DiskRequest, DiskRequestId};
use crate::prng::Prng;
use crate::raft::NodeId;
use crate::raft::{Payload, RaftConfig, RaftInput, RaftNode, RaftOutput};
use crate::time::{Duration, Instant};
use crate::timer::{TimerKind, TimerTable};
use bytes::Bytes;
use kafka_protocol::messages::{RequestKind, ResponseKind};
use std::collections::{BTreeMap, VecDeque};

/// A node's configuration.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// `node.id`.
    pub node_id: NodeId,
    /// `controller.quorum.voters`: the controller voters; this node runs one if it is listed.
    pub voters: Vec<NodeId>,
    /// The client endpoint advertised to clients (Metadata, DescribeCluster).
    pub endpoint: Endpoint,
    /// The broker's settings (limits, topic defaults, flush policy).
    pub broker: BrokerConfig,
    /// `broker.heartbeat.interval.ms`.
    pub heartbeat_interval: Duration,
    /// `broker.session.timeout.ms`: the controller fences a broker silent this long.
    pub session_timeout: Duration,
    /// `replica.lag.time.max.ms`: a follower not caught up for this long leaves the ISR.
    pub replica_lag_time_max: Duration,
    /// `replica.fetch.wait.max.ms`: how long a leader holds a follower fetch with no new data.
    pub replica_fetch_wait_max: Duration,
    /// `replica.fetch.backoff.ms`: pause after a failed replica fetch.
    pub replica_fetch_backoff: Duration,
    /// How often replication and the active controller re-check lag, sessions and leaders.
    pub replica_tick_interval: Duration,
    /// Raft election timeout range and heartbeat, in that order.
    pub raft_timing: (Duration, Duration, Duration),
    /// Planted bugs switched on (only with the `canary` feature).
    pub canaries: Canaries,
}

impl NodeConfig {
    /// Kafka's defaults for a single node that is its own controller.
    pub fn single(endpoint: Endpoint, broker: BrokerConfig) -> NodeConfig {
        NodeConfig::new(1, vec![1], endpoint, broker)
    }

    /// Kafka's defaults for node `node_id` among controller `voters`.
    pub fn new(
        node_id: NodeId,
        voters: Vec<NodeId>,
        endpoint: Endpoint,
        broker: BrokerConfig,
    ) -> NodeConfig {
        NodeConfig {
            node_id,
            voters,
            endpoint,
            broker,
            heartbeat_interval: Duration::from_millis(2_000),
            session_timeout: Duration::from_millis(9_000),
            replica_lag_time_max: Duration::from_millis(30_000),
            replica_fetch_wait_max: Duration::from_millis(500),
            replica_fetch_backoff: Duration::from_millis(1_000),
            replica_tick_interval: Duration::from_millis(100),
            raft_timing: (
                Duration::from_millis(1_000),
                Duration::from_millis(2_000),
                Duration::from_millis(500),
            ),
            canaries: Canaries::NONE,
        }
    }
}

/// What a node is told.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum NodeInput {
    /// A decoded client request.
    Request {
        /// The connection it arrived on.
        connection: ConnectionId,
        /// Its header.
        context: RequestContext,
        /// Its body.
        body: RequestKind,
    },
    /// A client connection closed.
    ConnectionClosed {
        /// The connection.
        connection: ConnectionId,
    },
    /// A message from another node (the transport authenticates `from`).
    Peer {
        /// The sender.
        from: NodeId,
        /// The message.
        message: PeerMessage,
    },
    /// A disk request finished.
    Disk(DiskCompletion),
    /// A deadline from [`Node::poll_timeout`] passed.
    Timeout,
    /// Stop: move leaderships away, finish in-flight work, sync, then report
    /// [`NodeOutput::ShutdownComplete`].
    Shutdown,
}

/// Something an operator should see in the logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeEvent {
    /// From the broker.
    Broker(BrokerEvent),
    /// The controller quorum's leadership changed as this node sees it.
    QuorumLeader {
        /// The term.
        term: u64,
        /// The leader, if known.
        leader: Option<NodeId>,
    },
    /// This node became (or stopped being) the active controller.
    ControllerActive(bool),
    /// The controller quorum voter's storage failed; the node must be restarted.
    QuorumFaulted,
}

/// What a node asks its driver to do.
#[derive(Clone, Debug)]
pub enum NodeOutput {
    /// Answer a client request (`None`: the protocol sends no response, e.g. acks=0).
    Response {
        /// The connection.
        connection: ConnectionId,
        /// The request's header.
        context: RequestContext,
        /// The response.
        body: Option<Box<ResponseKind>>,
    },
    /// Close a client connection.
    CloseConnection {
        /// The connection.
        connection: ConnectionId,
    },
    /// Send a message to another node (best effort: the protocols retry).
    Send {
        /// Destination.
        to: NodeId,
        /// The message.
        message: PeerMessage,
    },
    /// Execute this disk request and hand back its completion.
    Disk(DiskRequest),
    /// Log this.
    Event(NodeEvent),
    /// Shutdown finished.
    ShutdownComplete,
}

/// Which state machine a disk request belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DiskOwner {
    Quorum,
    Broker,
}

/// The node's own timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NodeTimer {
    /// Send the next broker heartbeat.
    Heartbeat,
}

impl TimerKind for NodeTimer {
    const COUNT: usize = 1;
    fn index(self) -> usize {
        0
    }
    fn from_index(_: usize) -> NodeTimer {
        NodeTimer::Heartbeat
    }
}

/// One Seedlog node. See the module documentation.
pub struct Node {
    config: NodeConfig,
    incarnation: u64,
    quorum: Option<RaftNode>,
    controller: Controller,
    broker: Broker,
    outbox: VecDeque<NodeOutput>,
    /// Messages this node sends to itself (a broker to its own active controller).
    local: VecDeque<(NodeId, PeerMessage)>,
    /// Outputs set aside to feed a part another input (see [`Node::feed_broker`]).
    broker_backlog: VecDeque<BrokerOutput>,
    quorum_backlog: VecDeque<RaftOutput>,
    disk_routes: BTreeMap<DiskRequestId, (DiskOwner, DiskRequestId)>,
    next_disk_id: DiskRequestId,
    timers: TimerTable<NodeTimer>,
    /// Where controller-bound messages go.
    controller_target: Option<NodeId>,
    /// Round-robin position over the voters while no controller is known.
    probe: usize,
    /// Heartbeats sent since the last answer from an active controller.
    unanswered: u32,
    /// Offset of the image the broker holds.
    image_offset: u64,
    /// The broker or the quorum voter lost its storage: stop heartbeating so the controller
    /// fences this node; the driver restarts it.
    faulted: bool,
    shutting_down: bool,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("node_id", &self.config.node_id)
            .field("incarnation", &self.incarnation)
            .field("controller_target", &self.controller_target)
            .field("image_offset", &self.image_offset)
            .finish_non_exhaustive()
    }
}

impl Node {
    /// A node over the data directory the driver serves; starts by recovering from disk.
    /// `now` must be later than the `now` of any earlier process on the same data (it seeds
    /// the incarnation, which must grow).
    pub fn new(config: NodeConfig, seed: u64, now: Instant) -> Node {
        let mut prng = Prng::new(seed);
        // The incarnation grows with the clock; the low bits tell apart two starts within the
        // same nanosecond-scaled millisecond.
        let incarnation =
            (now.saturating_since(Instant::ZERO).as_nanos() & !0xffff) | (prng.next_u64() & 0xffff);
        let mut broker_config = config.broker.clone();
        broker_config.node_id = config.node_id as i32;
        broker_config.advertised_host = config.endpoint.host.clone();
        broker_config.advertised_port = i32::from(config.endpoint.port);
        let replication = ReplicationConfig {
            node_id: config.node_id,
            incarnation,
            replica_lag_time_max: config.replica_lag_time_max,
            replica_fetch_wait_max: config.replica_fetch_wait_max,
            replica_fetch_backoff: config.replica_fetch_backoff,
            replica_fetch_max_bytes: REPLICA_FETCH_MAX_BYTES_DEFAULT,
            tick_interval: config.replica_tick_interval,
            alter_partition_retry: config.heartbeat_interval,
            canaries: config.canaries,
        };
        let broker = Broker::new(broker_config, replication, now);
        let quorum = config.voters.contains(&config.node_id).then(|| {
            let mut raft = RaftConfig::new(config.node_id, config.voters.clone());
            (
                raft.election_timeout_min,
                raft.election_timeout_max,
                raft.heartbeat_interval,
            ) = config.raft_timing;
            raft.canaries = config.canaries;
            RaftNode::new(raft, prng.next_u64(), now)
        });
        let mut controller_config = ControllerConfig::new(config.node_id);
        controller_config.session_timeout = config.session_timeout;
        controller_config.tick_interval = config.replica_tick_interval;
        controller_config.default_partitions = config.broker.num_partitions;
        controller_config.default_replication_factor = config.broker.default_replication_factor;
        controller_config.default_min_insync_replicas =
            config.broker.topic_defaults.min_insync_replicas;
        controller_config.canaries = config.canaries;
        let controller = Controller::new(controller_config, prng.next_u64());
        let mut node = Node {
            config,
            incarnation,
            quorum,
            controller,
            broker,
            outbox: VecDeque::new(),
            local: VecDeque::new(),
            broker_backlog: VecDeque::new(),
            quorum_backlog: VecDeque::new(),
            disk_routes: BTreeMap::new(),
            next_disk_id: 1,
            timers: TimerTable::default(),
            controller_target: None,
            probe: 0,
            unanswered: 0,
            image_offset: 0,
            faulted: false,
            shutting_down: false,
        };
        node.timers.set(NodeTimer::Heartbeat, now);
        node.drain(now);
        node
    }

    /// Feeds one input. The driver must have drained [`Node::poll_output`] first.
    pub fn handle(&mut self, now: Instant, input: NodeInput) {
        match input {
            NodeInput::Request {
                connection,
                context,
                body,
            } => self.feed_broker(
                now,
                BrokerInput::Request {
                    connection,
                    context,
                    body,
                },
            ),
            NodeInput::ConnectionClosed { connection } => {
                self.feed_broker(now, BrokerInput::ConnectionClosed { connection })
            }
            NodeInput::Peer { from, message } => self.on_peer(now, from, message),
            NodeInput::Disk(completion) => self.on_disk(now, completion),
            NodeInput::Timeout => self.on_timeout(now),
            NodeInput::Shutdown => self.on_shutdown(now),
        }
        self.drain(now);
    }

    /// The next output, if any.
    pub fn poll_output(&mut self) -> Option<NodeOutput> {
        self.outbox.pop_front()
    }

    /// When to deliver [`NodeInput::Timeout`] next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.timers.next_deadline(),
            self.broker.poll_timeout(),
            self.controller.poll_timeout(),
            self.quorum.as_ref().and_then(|q| q.poll_timeout()),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.config.node_id
    }

    /// This process's incarnation.
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// The broker (for inspection by tests and the simulator's invariant checks).
    pub fn broker(&self) -> &Broker {
        &self.broker
    }

    /// The controller state machine (its image is the committed metadata on a voter).
    pub fn controller(&self) -> &Controller {
        &self.controller
    }

    /// The controller quorum voter, if this node is one.
    pub fn quorum(&self) -> Option<&RaftNode> {
        self.quorum.as_ref()
    }

    /// True once the broker recovered its logs.
    pub fn is_ready(&self) -> bool {
        self.broker.is_ready()
    }

    // ---- inputs ----

    fn on_peer(&mut self, now: Instant, from: NodeId, message: PeerMessage) {
        match message {
            PeerMessage::Raft(message) => {
                if self.config.voters.contains(&from) {
                    self.feed_quorum(now, RaftInput::Message { from, message });
                }
            }
            PeerMessage::Heartbeat(_)
            | PeerMessage::AlterPartition(_)
            | PeerMessage::CreateTopics { .. }
            | PeerMessage::DeleteTopics { .. } => {
                if self.quorum.is_some() {
                    self.controller.handle_peer(now, from, message);
                } else if let PeerMessage::Heartbeat(_) = message {
                    // Not a controller: point the broker at the one we would use.
                    let response = BrokerHeartbeatResponse {
                        active: false,
                        controller: None,
                        image: None,
                        fenced: true,
                        shutdown_ready: false,
                    };
                    self.send(from, PeerMessage::HeartbeatResponse(response));
                }
            }
            PeerMessage::HeartbeatResponse(response) => {
                self.on_heartbeat_response(now, from, response)
            }
            PeerMessage::Fetch(_)
            | PeerMessage::FetchResponse(_)
            | PeerMessage::AlterPartitionResponse { .. }
            | PeerMessage::TopicsResponse { .. } => {
                self.feed_broker(now, BrokerInput::Peer { from, message })
            }
        }
    }

    fn on_heartbeat_response(
        &mut self,
        now: Instant,
        from: NodeId,
        response: BrokerHeartbeatResponse,
    ) {
        if response.active {
            self.unanswered = 0;
            self.set_controller_target(now, Some(from));
        } else if let Some(hint) = response.controller {
            self.set_controller_target(now, Some(hint));
        } else if self.controller_target == Some(from) {
            self.set_controller_target(now, None);
        }
        if let Some(image) = response.image {
            self.give_image(now, *image);
        }
        if response.shutdown_ready && self.shutting_down {
            self.feed_broker(now, BrokerInput::Shutdown);
        }
    }

    fn set_controller_target(&mut self, now: Instant, target: Option<NodeId>) {
        if self.controller_target != target {
            self.controller_target = target;
            self.feed_broker(now, BrokerInput::Controller(target));
        }
    }

    fn give_image(&mut self, now: Instant, image: MetadataImage) {
        if image.offset > self.image_offset {
            self.image_offset = image.offset;
            self.feed_broker(now, BrokerInput::Image(Box::new(image)));
        }
    }

    fn on_disk(&mut self, now: Instant, completion: DiskCompletion) {
        let Some((owner, inner)) = self.disk_routes.remove(&completion.id) else {
            return;
        };
        let completion = DiskCompletion {
            id: inner,
            result: completion.result,
        };
        match owner {
            DiskOwner::Quorum => self.feed_quorum(now, RaftInput::Disk(completion)),
            DiskOwner::Broker => self.feed_broker(now, BrokerInput::Disk(completion)),
        }
    }

    fn on_timeout(&mut self, now: Instant) {
        if self.broker.poll_timeout().is_some_and(|at| at <= now) {
            self.feed_broker(now, BrokerInput::Timeout);
        }
        if self.controller.poll_timeout().is_some_and(|at| at <= now) {
            self.controller.on_timeout(now);
        }
        if self
            .quorum
            .as_ref()
            .and_then(|q| q.poll_timeout())
            .is_some_and(|at| at <= now)
        {
            self.feed_quorum(now, RaftInput::Timeout);
        }
        while let Some(timer) = self.timers.pop_expired(now) {
            match timer {
                NodeTimer::Heartbeat => self.send_heartbeat(now),
            }
        }
    }

    fn send_heartbeat(&mut self, now: Instant) {
        let interval = if self.broker.is_serving() {
            self.config.heartbeat_interval
        } else {
            let admission = Duration::from_millis(ADMISSION_HEARTBEAT_INTERVAL_MS);
            self.config.heartbeat_interval.min(admission)
        };
        self.timers.set(NodeTimer::Heartbeat, now + interval);
        if self.faulted || !self.broker.is_ready() {
            return;
        }
        // Silence from the controller we use: try the others in turn.
        self.unanswered += 1;
        if self.unanswered > HEARTBEATS_UNANSWERED_BEFORE_PROBE {
            self.unanswered = 0;
            self.set_controller_target(now, None);
        }
        let heartbeat = BrokerHeartbeat {
            incarnation: self.incarnation,
            endpoint: self.config.endpoint.clone(),
            metadata_offset: self.image_offset,
            shutting_down: self.shutting_down,
            storage: self.broker.storage_id(),
        };
        let to = self.controller_destination();
        self.route(to, PeerMessage::Heartbeat(heartbeat));
    }

    fn on_shutdown(&mut self, now: Instant) {
        if self.shutting_down {
            return;
        }
        self.shutting_down = true;
        // Controlled shutdown: ask the controller to move leaderships away, and stop once it
        // says so or after a bounded wait (the controller may be unreachable).
        self.send_heartbeat(now);
        self.feed_broker(now, BrokerInput::Shutdown);
    }

    /// Feeds the broker, first setting aside what it has not had drained (it takes one input
    /// at a time with an empty outbox).
    fn feed_broker(&mut self, now: Instant, input: BrokerInput) {
        while let Some(output) = self.broker.poll_output() {
            self.broker_backlog.push_back(output);
        }
        self.broker.handle(now, input);
    }

    /// Feeds the quorum voter, if this node is one (same rule as [`Node::feed_broker`]).
    fn feed_quorum(&mut self, now: Instant, input: RaftInput) {
        let Some(quorum) = &mut self.quorum else {
            return;
        };
        while let Some(output) = quorum.poll_output() {
            self.quorum_backlog.push_back(output);
        }
        quorum.handle(now, input);
    }

    // ---- outputs ----

    fn controller_destination(&mut self) -> NodeId {
        if let Some(target) = self.controller_target {
            return target;
        }
        if let Some(leader) = self.controller.controller_hint() {
            return leader;
        }
        let voters = &self.config.voters;
        self.probe = (self.probe + 1) % voters.len();
        voters[self.probe]
    }

    fn send(&mut self, to: NodeId, message: PeerMessage) {
        self.outbox.push_back(NodeOutput::Send { to, message });
    }

    /// Sends `message`, delivering it locally when it is addressed to this node.
    fn route(&mut self, to: NodeId, message: PeerMessage) {
        if to == self.config.node_id {
            if self.local.len() < LOCAL_MESSAGES_MAX {
                self.local.push_back((to, message));
            }
        } else {
            self.send(to, message);
        }
    }

    fn emit_disk(&mut self, owner: DiskOwner, request: DiskRequest) {
        let id = self.next_disk_id;
        self.next_disk_id += 1;
        self.disk_routes.insert(id, (owner, request.id));
        self.outbox
            .push_back(NodeOutput::Disk(DiskRequest { id, op: request.op }));
    }

    /// Moves outputs between the parts until all are quiet.
    fn drain(&mut self, now: Instant) {
        loop {
            let mut progressed = false;
            while let Some(output) = self.quorum_backlog.pop_front() {
                progressed = true;
                self.on_quorum_output(now, output);
            }
            while let Some(output) = self.quorum.as_mut().and_then(|q| q.poll_output()) {
                progressed = true;
                self.on_quorum_output(now, output);
            }
            while let Some(output) = self.controller.poll_output() {
                progressed = true;
                match output {
                    ControllerOutput::Propose { tag, batch } => {
                        let command = Bytes::from(
                            postcard::to_allocvec(&batch).expect("metadata records serialize"),
                        );
                        self.feed_quorum(now, RaftInput::Propose { id: tag, command });
                    }
                    ControllerOutput::Send { to, message } => self.route(to, message),
                }
            }
            if self.quorum.is_some() && self.controller.image().offset > self.image_offset {
                progressed = true;
                let image = self.controller.image().clone();
                self.give_image(now, image);
            }
            while let Some(output) = self.broker_backlog.pop_front() {
                progressed = true;
                self.on_broker_output(now, output);
            }
            while let Some(output) = self.broker.poll_output() {
                progressed = true;
                self.on_broker_output(now, output);
            }
            while let Some((from, message)) = self.local.pop_front() {
                progressed = true;
                self.on_peer(now, from, message);
            }
            if !progressed {
                break;
            }
        }
    }

    fn on_quorum_output(&mut self, now: Instant, output: RaftOutput) {
        match output {
            RaftOutput::Send { to, message } => self.send(to, PeerMessage::Raft(message)),
            RaftOutput::Disk(request) => self.emit_disk(DiskOwner::Quorum, request),
            RaftOutput::Apply(entry) => match entry.payload {
                Payload::Noop => self.controller.apply_noop(entry.index),
                Payload::Command(bytes) => match postcard::from_bytes::<MetadataBatch>(&bytes) {
                    Ok(batch) => self.controller.apply(entry.index, &batch),
                    // Written by a node of this version, so unreadable means a bug; applying
                    // nothing keeps every voter identical.
                    Err(_) => self.controller.apply_noop(entry.index),
                },
            },
            RaftOutput::RestoreSnapshot { index, data, .. } => {
                if let Ok(mut image) = postcard::from_bytes::<MetadataImage>(&data) {
                    image.offset = index;
                    self.controller.restore(image);
                }
            }
            RaftOutput::SnapshotWanted { applied_index } => {
                let image = self.controller.image();
                if image.offset == applied_index {
                    let data = Bytes::from(
                        postcard::to_allocvec(image).expect("the metadata image serializes"),
                    );
                    let input = RaftInput::Snapshot {
                        index: applied_index,
                        data,
                    };
                    self.feed_quorum(now, input);
                }
            }
            RaftOutput::Leader { term, leader } => {
                self.controller.on_leadership(now, leader);
                if leader.is_some() {
                    self.set_controller_target(now, leader);
                }
                self.outbox
                    .push_back(NodeOutput::Event(NodeEvent::QuorumLeader { term, leader }));
            }
            RaftOutput::ProposalResult { id, result } => {
                self.controller.on_proposal_result(now, id, result)
            }
            RaftOutput::ReadResult { .. } | RaftOutput::Recovered => {}
            RaftOutput::Faulted(_) => {
                self.faulted = true;
                self.outbox
                    .push_back(NodeOutput::Event(NodeEvent::QuorumFaulted));
            }
        }
    }

    fn on_broker_output(&mut self, now: Instant, output: BrokerOutput) {
        let _ = now;
        let output = match output {
            BrokerOutput::Response {
                connection,
                context,
                body,
            } => NodeOutput::Response {
                connection,
                context,
                body,
            },
            BrokerOutput::CloseConnection { connection } => {
                NodeOutput::CloseConnection { connection }
            }
            BrokerOutput::Disk(request) => return self.emit_disk(DiskOwner::Broker, request),
            BrokerOutput::Send { to, message } => {
                let to = match to {
                    PeerTarget::Controller => self.controller_destination(),
                    PeerTarget::Node(id) => id,
                };
                return self.route(to, message);
            }
            BrokerOutput::Event(event) => {
                if let BrokerEvent::PartitionFaulted { .. } = event {
                    self.faulted = true;
                }
                NodeOutput::Event(NodeEvent::Broker(event))
            }
            BrokerOutput::ShutdownComplete => NodeOutput::ShutdownComplete,
        };
        self.outbox.push_back(output);
    }
}
