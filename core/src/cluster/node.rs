//! [`Node`]: one Seedlog process's state machine — the controller quorum voter (if this node is
//! a voter), the active controller (on the quorum leader) and the replicated broker — behind the
//! one `handle/poll` face of DESIGN §2.

use super::metadata::Endpoint;
use super::peer::PeerMessage;
use crate::broker::{
    Broker, BrokerConfig, BrokerEvent, BrokerInput, BrokerOutput, ConnectionId, RequestContext,
};
use crate::canary::Canaries;
use crate::io::{DiskCompletion, DiskRequest};
use crate::raft::NodeId;
use crate::time::{Duration, Instant};
use kafka_protocol::messages::{RequestKind, ResponseKind};
use std::collections::VecDeque;

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

/// One Seedlog node. See the module documentation.
#[derive(Debug)]
pub struct Node {
    config: NodeConfig,
    broker: Broker,
    outbox: VecDeque<NodeOutput>,
}

impl Node {
    /// A node over the data directory the driver serves; starts by recovering from disk.
    pub fn new(config: NodeConfig, seed: u64, now: Instant) -> Node {
        let broker = Broker::new(config.broker.clone(), seed, now);
        let mut node = Node {
            config,
            broker,
            outbox: VecDeque::new(),
        };
        node.drain_broker();
        node
    }

    /// Feeds one input. The driver must have drained [`Node::poll_output`] first.
    pub fn handle(&mut self, now: Instant, input: NodeInput) {
        let broker_input = match input {
            NodeInput::Request {
                connection,
                context,
                body,
            } => BrokerInput::Request {
                connection,
                context,
                body,
            },
            NodeInput::ConnectionClosed { connection } => {
                BrokerInput::ConnectionClosed { connection }
            }
            NodeInput::Peer { .. } => return,
            NodeInput::Disk(completion) => BrokerInput::Disk(completion),
            NodeInput::Timeout => BrokerInput::Timeout,
            NodeInput::Shutdown => BrokerInput::Shutdown,
        };
        self.broker.handle(now, broker_input);
        self.drain_broker();
    }

    /// The next output, if any.
    pub fn poll_output(&mut self) -> Option<NodeOutput> {
        self.outbox.pop_front()
    }

    /// When to deliver [`NodeInput::Timeout`] next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.broker.poll_timeout()
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.config.node_id
    }

    fn drain_broker(&mut self) {
        while let Some(output) = self.broker.poll_output() {
            self.outbox.push_back(match output {
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
                BrokerOutput::Disk(request) => NodeOutput::Disk(request),
                BrokerOutput::Event(event) => NodeOutput::Event(NodeEvent::Broker(event)),
                BrokerOutput::ShutdownComplete => NodeOutput::ShutdownComplete,
            });
        }
    }
}
