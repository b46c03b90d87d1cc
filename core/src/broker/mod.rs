//! The broker as a sans-IO state machine: Kafka requests in, Kafka responses, peer messages
//! and disk requests out.
//!
//! [`Broker`] owns one [`Log`] per partition (directory `<topic>-<partition>`) and the topic
//! registry ([`registry`]), and serves the client APIs. It never touches a socket or a file:
//! the driver decodes frames into typed `kafka-protocol` requests ([`BrokerInput::Request`]),
//! executes [`BrokerOutput::Disk`] requests in emission order and hands back their completions,
//! and encodes [`BrokerOutput::Response`] bodies.
//!
//! There is one broker mode. Every broker is part of a cluster, if only of one node (a
//! [`crate::cluster::Node`] is its own controller then): its topics and its role for each
//! partition come from the controller's metadata image, admin changes are forwarded to the
//! controller (`cluster.rs`), and data becomes committed only by replication
//! (`replica.rs`), whose in-sync replica set may hold just the leader. So the code a
//! single-node deployment runs is the code a cluster runs, and every test of it tests both.
//! Every partition carries its leader epoch, which Metadata, Produce, Fetch and ListOffsets
//! report and check (KIP-320 fencing of a stale or future `current_leader_epoch`).
//!
//! Lifecycle. A new broker first recovers: it reads both registry slots, opens every partition
//! log (each runs its own CRC-checked recovery through disk outputs) and resumes deleting the
//! files of topics deleted before a crash. Requests that arrive meanwhile are held, in order,
//! and replayed once every log has recovered and the metadata image shows this process
//! registered and unfenced (its image is current only from then on).
//! [`BrokerInput::Shutdown`] drains: in-flight work
//! finishes, every log is synced, and [`BrokerOutput::ShutdownComplete`] tells the driver it
//! may exit.
//!
//! Ordering. Kafka answers the requests of one connection in the order they arrived (clients
//! match responses by correlation id but librdkafka, for one, treats reordering as fatal).
//! Each connection has a queue of request tokens; a request that finishes early (a Metadata
//! behind a Produce waiting for its fsync) is held until everything before it was answered.
//!
//! Durability and visibility. With [`FlushPolicy::GroupCommit`] (the default) a replica counts
//! only what is durable on it (the log's group-commit sync rounds share one fsync across every
//! append that arrived meanwhile): acks=1 is answered once the leader's copy is durable, and
//! the high watermark (what consumers see, and what acks=all waits for) is the smallest durable
//! end over the ISR, so a consumer never reads a record that a crash could take back. With
//! [`FlushPolicy::None`] a replica counts what it has written, as Kafka does with its default
//! `log.flush.interval.messages`.

mod cluster;
pub mod config;
mod errors;
mod fetch;
mod metadata;
mod offsets;
mod produce;
pub mod registry;
mod replica;
mod topics;

#[cfg(test)]
mod tests;

pub use config::{ApiRange, BrokerConfig, FlushPolicy, TopicConfig};
pub use replica::{ReplicaView, ReplicationConfig};

use crate::cluster::metadata::MetadataImage;
use crate::cluster::peer::PeerMessage;
use crate::constants::*;
use crate::io::{DiskCompletion, DiskOp, DiskOutcome, DiskRequest, DiskRequestId};
use crate::log::{FaultReason, Log, LogConfig, LogInput, LogOutput, RecoveryReport, SyncPolicy};
use crate::raft::NodeId;
use crate::record_batch::BatchLimits;
use crate::time::{Duration, Instant};
use crate::timer::{TimerKind, TimerTable};
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
use registry::{Registry, TombstoneRecord, REGISTRY_DIR, REGISTRY_SLOTS};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use uuid::Uuid;

/// Identifies one client connection; chosen by the driver, unique while the connection lives.
pub type ConnectionId = u64;

/// What a response must echo: the API and version to encode it at, and the correlation id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestContext {
    /// The request's API.
    pub api_key: ApiKey,
    /// The request's version; the response uses the same one.
    pub api_version: i16,
    /// The request's correlation id.
    pub correlation_id: i32,
}

/// What the broker is told.
// A request is moved once from the driver into `handle`; boxing it would cost an allocation
// per request for no benefit.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum BrokerInput {
    /// A decoded client request.
    Request {
        /// The connection it arrived on.
        connection: ConnectionId,
        /// Its header.
        context: RequestContext,
        /// Its body.
        body: RequestKind,
    },
    /// The connection closed; its pending responses are dropped.
    ConnectionClosed {
        /// The connection.
        connection: ConnectionId,
    },
    /// A disk request finished.
    Disk(DiskCompletion),
    /// A deadline from [`Broker::poll_timeout`] passed.
    Timeout,
    /// A newer committed metadata image (cluster mode).
    Image(Box<MetadataImage>),
    /// The active controller as far as this node knows (cluster mode; shown in Metadata).
    Controller(Option<NodeId>),
    /// A replication or admin message from another node (cluster mode).
    Peer {
        /// The sender.
        from: NodeId,
        /// The message.
        message: PeerMessage,
    },
    /// Stop serving: finish in-flight work, sync every log, then report
    /// [`BrokerOutput::ShutdownComplete`].
    Shutdown,
}

/// Something that happened that an operator should see in the logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BrokerEvent {
    /// The registry was read (or found absent) and recovery of the partitions started.
    RegistryLoaded {
        /// Topics found.
        topics: u32,
        /// Partitions to recover.
        partitions: u32,
    },
    /// Both registry slots exist and neither is readable: the broker refuses to serve rather
    /// than forget its topics.
    RegistryUnreadable,
    /// A partition log finished recovery.
    PartitionRecovered {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// What recovery found.
        report: RecoveryReport,
    },
    /// Every partition recovered; the broker serves (in a cluster, once it is also admitted).
    Ready,
    /// In a cluster: the metadata image shows this process registered and unfenced, so the
    /// broker has caught up with the metadata log and answers clients from now on.
    Admitted,
    /// A partition log stopped serving after a storage fault.
    PartitionFaulted {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// Why.
        reason: FaultReason,
    },
    /// The registry could not be written; topic changes are refused from now on.
    RegistryFaulted,
    /// A connection was closed because it broke a rule (named here).
    ConnectionClosed {
        /// The connection.
        connection: ConnectionId,
        /// Why.
        reason: &'static str,
    },
}

/// What the broker asks the driver to do.
#[derive(Clone, Debug)]
pub enum BrokerOutput {
    /// Answer a request. `body` is `None` for a request that gets no response (Produce with
    /// acks=0): the driver then only notes the request as done. Responses of one connection
    /// are emitted in request order.
    Response {
        /// The connection.
        connection: ConnectionId,
        /// The request's header.
        context: RequestContext,
        /// The response, or `None` if the protocol sends none.
        body: Option<Box<ResponseKind>>,
    },
    /// Close the connection (after a request that Kafka answers by disconnecting).
    CloseConnection {
        /// The connection.
        connection: ConnectionId,
    },
    /// Execute this disk request and hand back its completion.
    Disk(DiskRequest),
    /// Send a message to another node (cluster mode; best effort, the protocols retry).
    Send {
        /// Where to.
        to: PeerTarget,
        /// The message.
        message: PeerMessage,
    },
    /// Log this.
    Event(BrokerEvent),
    /// Shutdown finished: nothing is in flight and every log is synced.
    ShutdownComplete,
}

/// Where a peer message goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerTarget {
    /// The active controller, wherever it is.
    Controller,
    /// One node.
    Node(NodeId),
}

/// The broker's timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BrokerTimer {
    /// The earliest parked fetch's `max_wait_ms` ran out.
    FetchWait,
    /// A partition log asked to be woken (retention).
    LogTimeout,
    /// Cluster mode: follower fetch retries, ISR checks, forwarded admin deadlines.
    ReplicaTick,
}

impl TimerKind for BrokerTimer {
    const COUNT: usize = 3;
    fn index(self) -> usize {
        self as usize
    }
    fn from_index(index: usize) -> BrokerTimer {
        match index {
            0 => BrokerTimer::FetchWait,
            1 => BrokerTimer::LogTimeout,
            2 => BrokerTimer::ReplicaTick,
            _ => unreachable!("timer index {index} out of range"),
        }
    }
}

/// A request the broker is working on or holding for ordering.
type Token = u64;
/// A log-level request (append, read, timestamp lookup) made on behalf of a client request.
type OpId = u64;

/// One partition: its log and the replication-shaped state around it.
#[derive(Debug)]
struct Partition {
    /// Distinguishes this log from an earlier one of a deleted topic with the same name, so a
    /// late disk completion for the old log is never fed to the new one.
    serial: u64,
    log: Log,
    /// The leader epoch this broker leads or follows (0 for a single broker).
    leader_epoch: i32,
    /// Cluster mode: this broker's replication role for the partition.
    role: replica::Role,
    /// Follower: the leader's high watermark from the last fetch response.
    leader_hw: i64,
    /// acks=1 produce parts waiting for the local durable offset to pass `next_offset`.
    local_waiters: VecDeque<(i64, OpId)>,
    /// What consumers may read: the durable offset under group commit, else the log end.
    high_watermark: i64,
    /// Produce parts waiting for the high watermark to pass `next_offset`, in offset order.
    durable_waiters: VecDeque<(i64, OpId)>,
    /// Parked fetches interested in this partition.
    fetch_waiters: BTreeSet<Token>,
    /// Ops in flight against this log (to fail them if the topic is deleted).
    ops: BTreeSet<OpId>,
    /// The log's own deadline as entered in `Broker::log_deadlines`.
    deadline: Option<Instant>,
}

impl Partition {
    /// Recovered (including any cut recovery made) and taking appends, or failed for good.
    fn is_settled(&self) -> bool {
        self.log.is_faulted() || self.is_serving()
    }

    /// Takes appends: recovered, not faulted, not in the middle of a truncation.
    fn is_serving(&self) -> bool {
        self.log.is_ready() && !self.log.is_truncating()
    }
}

/// A topic and its partitions.
#[derive(Debug)]
struct Topic {
    id: Uuid,
    overrides: BTreeMap<String, String>,
    config: TopicConfig,
    partition_count: i32,
    /// Opened once the registry write that created the topic is durable.
    partitions: Vec<Partition>,
    /// The registry change that created the topic.
    created_change: u64,
}

impl Topic {
    fn is_durable(&self, durable_change: u64) -> bool {
        self.created_change <= durable_change
    }
}

/// A deleted topic whose files are being removed.
#[derive(Debug)]
struct Tombstone {
    record: TombstoneRecord,
    /// The registry change that recorded the deletion; files go only after it is durable.
    change: u64,
    /// Disk requests (lists and deletes) still outstanding, once removal started.
    removals_outstanding: Option<u32>,
    failed: bool,
}

/// Registry persistence: one write+sync at a time; changes made meanwhile go in the next.
#[derive(Debug, Default)]
struct RegistryStore {
    /// Sequence of the last write started.
    sequence: u64,
    /// Incremented by every change to topics or tombstones.
    change: u64,
    /// Every change up to this is durable.
    durable_change: u64,
    /// The change count covered by the write in flight.
    writing: Option<u64>,
    faulted: bool,
}

/// Where a disk completion goes.
#[derive(Debug)]
enum DiskRoute {
    Log {
        topic: String,
        partition: i32,
        serial: u64,
        log_id: DiskRequestId,
    },
    RegistryList,
    RegistryRead,
    RegistryWrite,
    RegistrySync,
    TombstoneList {
        topic: String,
        partition: i32,
    },
    TombstoneDelete {
        topic: String,
    },
}

/// A log-level request made for a client request.
#[derive(Clone, Copy, Debug)]
enum Op {
    /// A batch append for part (`topic`, `part`) of a produce.
    Append { token: Token, topic: u32, part: u32 },
    /// A read for part (`topic`, `part`) of a fetch.
    Read { token: Token, topic: u32, part: u32 },
    /// A timestamp lookup for part (`topic`, `part`) of a ListOffsets.
    Lookup { token: Token, topic: u32, part: u32 },
}

/// The work a request still needs, or its finished response.
#[derive(Debug)]
enum Work {
    Produce(produce::ProduceState),
    Fetch(fetch::FetchState),
    ListOffsets(offsets::ListOffsetsState),
    Forwarded(cluster::ForwardState),
    Done(Option<Box<ResponseKind>>),
}

#[derive(Debug)]
struct InFlight {
    connection: ConnectionId,
    context: RequestContext,
    work: Work,
}

/// Startup progress.
#[derive(Debug)]
enum Phase {
    /// Listing and reading the registry slots.
    LoadingRegistry {
        reads_outstanding: u32,
        best: Option<Registry>,
        /// The slot files found.
        slots: Vec<&'static str>,
        /// A read failed outright (not a decode failure): start-up fails, to be retried.
        read_failed: bool,
        /// Re-reads of a lone slot that did not decode (a flip in transit reads clean next).
        rereads: u32,
    },
    /// Partition logs recovering.
    RecoveringLogs,
    /// Serving.
    Ready,
    /// Refusing to serve (registry unreadable).
    Failed,
}

/// The broker state machine. See the module documentation.
#[derive(Debug)]
pub struct Broker {
    config: BrokerConfig,
    /// This broker's place in the cluster (a single node is a cluster of one).
    replication: ReplicationConfig,
    phase: Phase,
    draining: bool,
    shutdown_reported: bool,
    /// The `now` of the input being handled.
    last_now: Instant,
    topics: BTreeMap<String, Topic>,
    tombstones: Vec<Tombstone>,
    store: RegistryStore,
    connections: BTreeMap<ConnectionId, VecDeque<Token>>,
    requests: BTreeMap<Token, InFlight>,
    next_token: Token,
    ops: BTreeMap<OpId, Op>,
    next_op: OpId,
    disk_routes: BTreeMap<DiskRequestId, DiskRoute>,
    next_disk_id: DiskRequestId,
    next_serial: u64,
    /// Parked fetches by deadline.
    fetch_deadlines: BTreeSet<(Instant, Token)>,
    /// Partition logs' own deadlines.
    log_deadlines: BTreeSet<(Instant, String, i32)>,
    /// Requests that arrived while recovering or (in a cluster) before admission, in arrival
    /// order.
    held: VecDeque<(ConnectionId, RequestContext, RequestKind)>,
    /// In a cluster: an image has shown this process registered and unfenced. Until then its
    /// image may be empty or stale (it lists no broker, or topics long gone), so client
    /// requests wait rather than be answered from it, as a Kafka broker opens its listeners
    /// only once unfenced. Always true for a single broker.
    admitted: bool,
    timers: TimerTable<BrokerTimer>,
    outbox: VecDeque<BrokerOutput>,
    /// Reused buffer for draining a log's outputs.
    log_outputs: Vec<LogOutput>,
    /// Cluster mode: the newest committed metadata image.
    image: Option<MetadataImage>,
    /// Cluster mode: the active controller, if known.
    controller_hint: Option<NodeId>,
    /// Cluster mode: the image offset the registry's topics reflect; older images are ignored.
    image_floor: u64,
    /// In a cluster: the identity of this data directory, kept in the registry (0 until the
    /// registry is loaded). A wiped disk gets a new one, which tells the controller that
    /// this broker's replicas hold nothing any more.
    storage_id: u64,
    /// Cluster mode: log operations made for replication, with their partition.
    replica_ops: BTreeMap<OpId, (String, i32, replica::ReplicaOp)>,
    /// Cluster mode: CreateTopics/DeleteTopics waiting for the controller.
    forwards: BTreeSet<Token>,
    /// Topics a Metadata request asked to create (`auto.create.topics.enable`), with when the
    /// creation was sent to the controller and its refusal, if the controller refused.
    auto_creates: BTreeMap<String, cluster::AutoCreate>,
}

impl Broker {
    /// A broker over the data directory the driver serves; starts by recovering from disk.
    /// Only a [`crate::cluster::Node`] makes one: every broker is part of a cluster, if only of
    /// one node, and takes its topics from the controller.
    pub(crate) fn new(
        config: BrokerConfig,
        replication: ReplicationConfig,
        now: Instant,
    ) -> Broker {
        assert!(config.num_partitions > 0);
        let tick = replication.tick_interval;
        let mut broker = Broker {
            config,
            replication,
            phase: Phase::LoadingRegistry {
                reads_outstanding: 0,
                best: None,
                slots: Vec::new(),
                read_failed: false,
                rereads: 0,
            },
            draining: false,
            shutdown_reported: false,
            last_now: now,
            topics: BTreeMap::new(),
            tombstones: Vec::new(),
            store: RegistryStore::default(),
            connections: BTreeMap::new(),
            requests: BTreeMap::new(),
            next_token: 1,
            ops: BTreeMap::new(),
            next_op: 1,
            disk_routes: BTreeMap::new(),
            next_disk_id: 1,
            next_serial: 1,
            fetch_deadlines: BTreeSet::new(),
            log_deadlines: BTreeSet::new(),
            held: VecDeque::new(),
            admitted: false,
            timers: TimerTable::default(),
            outbox: VecDeque::new(),
            log_outputs: Vec::new(),
            image: None,
            controller_hint: None,
            image_floor: 0,
            storage_id: 0,
            replica_ops: BTreeMap::new(),
            forwards: BTreeSet::new(),
            auto_creates: BTreeMap::new(),
        };
        broker.timers.set(BrokerTimer::ReplicaTick, now + tick);
        let dir = REGISTRY_DIR.to_owned();
        broker.emit_disk(DiskOp::List { dir }, DiskRoute::RegistryList);
        broker
    }

    /// Feeds one input. The driver must have drained [`Broker::poll_output`] first.
    pub fn handle(&mut self, now: Instant, input: BrokerInput) {
        assert!(
            self.outbox.is_empty(),
            "the driver drains outputs before the next input"
        );
        self.last_now = self.last_now.max(now);
        match input {
            BrokerInput::Request {
                connection,
                context,
                body,
            } => self.on_request(now, connection, context, body),
            BrokerInput::ConnectionClosed { connection } => self.on_connection_closed(connection),
            BrokerInput::Disk(completion) => self.on_disk_completion(now, completion),
            BrokerInput::Timeout => self.on_timeout(now),
            BrokerInput::Image(image) => self.on_image(now, *image),
            BrokerInput::Controller(controller) => self.controller_hint = controller,
            BrokerInput::Peer { from, message } => self.on_peer(now, from, message),
            BrokerInput::Shutdown => self.on_shutdown(now),
        }
        self.maybe_finish_shutdown();
        self.invariants();
    }

    /// The next output, if any.
    pub fn poll_output(&mut self) -> Option<BrokerOutput> {
        self.outbox.pop_front()
    }

    /// When to deliver [`BrokerInput::Timeout`] next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next_deadline()
    }

    /// True once recovery finished.
    pub fn is_ready(&self) -> bool {
        matches!(self.phase, Phase::Ready)
    }

    /// Whether client requests are answered now: recovered and, in a cluster, admitted.
    pub fn is_serving(&self) -> bool {
        self.is_ready() && self.admitted
    }

    /// The broker's configuration.
    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    /// High watermark of a partition, if it exists and is open.
    pub fn high_watermark(&self, topic: &str, partition: i32) -> Option<i64> {
        Some(self.partition(topic, partition)?.high_watermark)
    }

    fn invariants(&self) {
        for topic in self.topics.values() {
            for p in &topic.partitions {
                if p.log.is_ready() {
                    assert!(p.high_watermark <= p.log.log_end_offset(), "HW above LEO");
                    assert!(
                        p.high_watermark >= p.log.log_start_offset()
                            || p.log.log_end_offset() < p.log.log_start_offset()
                    );
                }
            }
        }
        assert!(self.fetch_deadlines.len() <= FETCH_WAITERS_MAX);
        assert!(self.held.len() <= RECOVERY_HELD_REQUESTS_MAX);
        assert!(self.store.durable_change <= self.store.change);
        debug_assert!(self
            .connections
            .values()
            .all(|q| q.len() <= CONNECTION_REQUESTS_IN_FLIGHT_MAX));
    }

    // ---- requests and ordering ----

    fn on_request(
        &mut self,
        now: Instant,
        connection: ConnectionId,
        context: RequestContext,
        body: RequestKind,
    ) {
        if !self.is_serving() {
            return self.hold(connection, context, body);
        }
        let queue = self.connections.entry(connection).or_default();
        if queue.len() >= CONNECTION_REQUESTS_IN_FLIGHT_MAX {
            return self.close_connection(connection, "too many requests in flight");
        }
        let token = self.next_token;
        self.next_token += 1;
        queue.push_back(token);
        let work = Work::Done(None);
        let inflight = InFlight {
            connection,
            context,
            work,
        };
        assert!(self.requests.insert(token, inflight).is_none());
        self.dispatch(now, token, context, body);
    }

    fn dispatch(&mut self, now: Instant, token: Token, context: RequestContext, body: RequestKind) {
        let version = context.api_version;
        match body {
            RequestKind::ApiVersions(_) => {
                let response = self.api_versions_response(version);
                self.finish(token, Some(ResponseKind::ApiVersions(response)));
            }
            RequestKind::Metadata(request) => {
                let response = self.on_metadata(now, request, version);
                self.finish(token, Some(ResponseKind::Metadata(response)));
            }
            RequestKind::DescribeCluster(request) => {
                let response = self.on_describe_cluster(request, version);
                self.finish(token, Some(ResponseKind::DescribeCluster(response)));
            }
            RequestKind::DescribeConfigs(request) => {
                let response = self.on_describe_configs(request, version);
                self.finish(token, Some(ResponseKind::DescribeConfigs(response)));
            }
            RequestKind::CreateTopics(request) => {
                self.forward_create_topics(now, token, request, version)
            }
            RequestKind::DeleteTopics(request) => {
                self.forward_delete_topics(now, token, request, version)
            }
            RequestKind::Produce(request) => self.on_produce(now, token, request, version),
            RequestKind::Fetch(request) => self.on_fetch(now, token, request, version),
            RequestKind::ListOffsets(request) => self.on_list_offsets(now, token, request, version),
            _ => {
                // The codec only decodes the APIs we advertise; anything else is a driver bug
                // or a client the codec let through. Kafka disconnects on unknown APIs.
                let connection = self.requests.get(&token).map(|r| r.connection);
                if let Some(connection) = connection {
                    self.close_connection(
                        connection,
                        "request for an API the broker does not serve",
                    );
                }
            }
        }
    }

    fn hold(&mut self, connection: ConnectionId, context: RequestContext, body: RequestKind) {
        if matches!(self.phase, Phase::Failed) || self.held.len() >= RECOVERY_HELD_REQUESTS_MAX {
            return self.close_connection(connection, "broker is not serving");
        }
        self.held.push_back((connection, context, body));
    }

    /// Records the response of `token` and emits every response of its connection that is now
    /// next in line.
    fn finish(&mut self, token: Token, body: Option<ResponseKind>) {
        let Some(inflight) = self.requests.get_mut(&token) else {
            return; // The connection closed meanwhile.
        };
        inflight.work = Work::Done(body.map(Box::new));
        let connection = inflight.connection;
        self.flush_connection(connection);
    }

    fn flush_connection(&mut self, connection: ConnectionId) {
        let Some(queue) = self.connections.get_mut(&connection) else {
            return;
        };
        while let Some(&head) = queue.front() {
            let done = matches!(
                self.requests.get(&head),
                Some(InFlight {
                    work: Work::Done(_),
                    ..
                })
            );
            if !done {
                break;
            }
            queue.pop_front();
            let inflight = self.requests.remove(&head).expect("checked above");
            let Work::Done(body) = inflight.work else {
                unreachable!("checked above")
            };
            self.outbox.push_back(BrokerOutput::Response {
                connection,
                context: inflight.context,
                body,
            });
        }
    }

    fn close_connection(&mut self, connection: ConnectionId, reason: &'static str) {
        self.outbox
            .push_back(BrokerOutput::Event(BrokerEvent::ConnectionClosed {
                connection,
                reason,
            }));
        self.outbox
            .push_back(BrokerOutput::CloseConnection { connection });
        self.on_connection_closed(connection);
    }

    fn on_connection_closed(&mut self, connection: ConnectionId) {
        self.held.retain(|(c, _, _)| *c != connection);
        let Some(queue) = self.connections.remove(&connection) else {
            return;
        };
        for token in queue {
            if let Some(inflight) = self.requests.remove(&token) {
                if let Work::Fetch(state) = &inflight.work {
                    self.unpark_fetch(token, state);
                }
                self.forwards.remove(&token);
            }
        }
    }

    // ---- disk ----

    fn emit_disk(&mut self, op: DiskOp, route: DiskRoute) -> DiskRequestId {
        let id = self.next_disk_id;
        self.next_disk_id += 1;
        assert!(self.disk_routes.insert(id, route).is_none());
        self.outbox
            .push_back(BrokerOutput::Disk(DiskRequest { id, op }));
        id
    }

    fn on_disk_completion(&mut self, now: Instant, completion: DiskCompletion) {
        let Some(route) = self.disk_routes.remove(&completion.id) else {
            return; // Not ours: a driver bug; nothing sensible to feed it to.
        };
        match route {
            DiskRoute::Log {
                topic,
                partition,
                serial,
                log_id,
            } => {
                let alive = self
                    .partition(&topic, partition)
                    .is_some_and(|p| p.serial == serial);
                if alive {
                    let completion = DiskCompletion {
                        id: log_id,
                        result: completion.result,
                    };
                    self.drive_log(now, &topic, partition, LogInput::Disk(completion));
                }
            }
            DiskRoute::RegistryList => self.on_registry_listed(now, completion.result),
            DiskRoute::RegistryRead => self.on_registry_read(now, completion.result),
            DiskRoute::RegistryWrite => {
                if completion.result.is_err() {
                    self.on_registry_fault();
                }
            }
            DiskRoute::RegistrySync => self.on_registry_synced(now, completion.result),
            DiskRoute::TombstoneList { topic, partition } => {
                self.on_tombstone_listed(&topic, partition, completion.result)
            }
            DiskRoute::TombstoneDelete { topic } => {
                self.on_tombstone_deleted(&topic, completion.result)
            }
        }
    }

    // ---- partition logs ----

    /// A partition a client may read from now, or the Kafka error that says why not: unknown,
    /// not served here yet (recovering), storage failed, or a stale/future leader epoch.
    fn serving_partition(
        &self,
        topic: &str,
        partition: i32,
        current_leader_epoch: i32,
    ) -> Result<&Partition, i16> {
        let t = self
            .topics
            .get(topic)
            .ok_or(errors::UNKNOWN_TOPIC_OR_PARTITION)?;
        if partition < 0 || partition >= t.partition_count {
            return Err(errors::UNKNOWN_TOPIC_OR_PARTITION);
        }
        let p = self
            .partition(topic, partition)
            .ok_or(errors::NOT_LEADER_OR_FOLLOWER)?;
        if p.log.is_faulted() {
            return Err(errors::KAFKA_STORAGE_ERROR);
        }
        if !p.log.is_ready() {
            return Err(errors::NOT_LEADER_OR_FOLLOWER);
        }
        fetch::check_leader_epoch(current_leader_epoch, p.leader_epoch)?;
        self.check_replicated_read(topic, partition)?;
        Ok(p)
    }

    fn partition(&self, topic: &str, partition: i32) -> Option<&Partition> {
        self.topics
            .get(topic)?
            .partitions
            .get(usize::try_from(partition).ok()?)
    }

    fn partition_mut(&mut self, topic: &str, partition: i32) -> Option<&mut Partition> {
        self.topics
            .get_mut(topic)?
            .partitions
            .get_mut(usize::try_from(partition).ok()?)
    }

    fn log_config(&self, topic: &str, partition: i32, config: &TopicConfig) -> LogConfig {
        let mut log = LogConfig::new(format!("{topic}-{partition}"));
        log.batch_limits = BatchLimits {
            batch_bytes_max: config.max_message_bytes,
            records_count_max: crate::constants::BATCH_RECORDS_MAX,
        };
        log.segment_bytes_max = config.segment_bytes;
        log.segment_age_max = Duration::from_millis(config.segment_ms);
        log.index_interval_bytes = config.index_interval_bytes;
        log.retention_bytes = u64::try_from(config.retention_bytes).ok();
        log.retention_time = u64::try_from(config.retention_ms)
            .ok()
            .map(Duration::from_millis);
        log.retention_check_interval =
            Duration::from_millis(self.config.retention_check_interval_ms);
        log.sync_policy = match self.config.flush_policy {
            FlushPolicy::GroupCommit => SyncPolicy::GroupCommit,
            FlushPolicy::None => SyncPolicy::Explicit,
        };
        log
    }

    /// Opens (recovers) every partition of a topic whose creation is durable.
    fn open_partitions(&mut self, now: Instant, name: &str) {
        let Some(topic) = self.topics.get(name) else {
            return;
        };
        if !topic.partitions.is_empty() {
            return;
        }
        let count = topic.partition_count;
        let config = topic.config.clone();
        for index in 0..count {
            let log = Log::open(self.log_config(name, index, &config), now);
            let serial = self.next_serial;
            self.next_serial += 1;
            let partition = Partition {
                serial,
                log,
                leader_epoch: 0,
                role: replica::Role::Offline,
                leader_hw: 0,
                local_waiters: VecDeque::new(),
                high_watermark: 0,
                durable_waiters: VecDeque::new(),
                fetch_waiters: BTreeSet::new(),
                ops: BTreeSet::new(),
                deadline: None,
            };
            self.topics
                .get_mut(name)
                .expect("looked up above")
                .partitions
                .push(partition);
            self.drain_log(now, name, index);
        }
    }

    /// Feeds one input to a partition log and processes what it says.
    fn drive_log(&mut self, now: Instant, topic: &str, partition: i32, input: LogInput) {
        let Some(p) = self.partition_mut(topic, partition) else {
            return;
        };
        p.log.handle(now, input);
        self.drain_log(now, topic, partition);
    }

    fn drain_log(&mut self, now: Instant, topic: &str, partition: i32) {
        let mut outputs = std::mem::take(&mut self.log_outputs);
        let Some(p) = self.partition_mut(topic, partition) else {
            return;
        };
        let serial = p.serial;
        while let Some(output) = p.log.poll_output() {
            outputs.push(output);
        }
        let deadline = p.log.poll_timeout();
        for output in outputs.drain(..) {
            self.on_log_output(now, topic, partition, serial, output);
        }
        self.log_outputs = outputs;
        self.update_log_deadline(topic, partition, deadline);
    }

    fn update_log_deadline(&mut self, topic: &str, partition: i32, deadline: Option<Instant>) {
        let current = self.partition(topic, partition).and_then(|p| p.deadline);
        if current == deadline {
            return; // The common case: nothing to move, nothing to allocate.
        }
        if let Some(at) = current {
            self.log_deadlines
                .remove(&(at, topic.to_owned(), partition));
        }
        if let Some(at) = deadline {
            self.log_deadlines.insert((at, topic.to_owned(), partition));
        }
        if let Some(p) = self.partition_mut(topic, partition) {
            p.deadline = deadline;
        }
        match self.log_deadlines.first() {
            Some((at, _, _)) => self.timers.set(BrokerTimer::LogTimeout, *at),
            None => self.timers.stop(BrokerTimer::LogTimeout),
        }
    }

    fn on_log_output(
        &mut self,
        now: Instant,
        topic: &str,
        partition: i32,
        serial: u64,
        output: LogOutput,
    ) {
        if let LogOutput::ReadDone {
            result: Err(crate::log::ReadError::Corrupt { offset, .. }),
            ..
        } = &output
        {
            // Damaged synced data: the replica goes offline (its node is restarted and
            // recovery cuts the damage) rather than serve or stall on it.
            self.outbox
                .push_back(BrokerOutput::Event(BrokerEvent::PartitionFaulted {
                    topic: topic.to_owned(),
                    partition,
                    reason: FaultReason::Corrupt { offset: *offset },
                }));
        }
        match output {
            LogOutput::Disk(request) => {
                let route = DiskRoute::Log {
                    topic: topic.to_owned(),
                    partition,
                    serial,
                    log_id: request.id,
                };
                self.emit_disk(request.op, route);
            }
            LogOutput::Recovered(report) => {
                self.on_partition_recovered(now, topic, partition, report)
            }
            LogOutput::Appended { request, .. } | LogOutput::AppendFailed { request, .. }
                if self.replica_ops.contains_key(&request) =>
            {
                let (_, _, op) = self.replica_ops.remove(&request).expect("checked");
                if let replica::ReplicaOp::Append { leader_epoch } = op {
                    let result = match output {
                        LogOutput::AppendFailed { error, .. } => Err(error),
                        _ => Ok(()),
                    };
                    self.on_replica_appended(now, topic, partition, leader_epoch, result);
                }
            }
            LogOutput::ReadDone { request, result } if self.replica_ops.contains_key(&request) => {
                let (_, _, op) = self.replica_ops.remove(&request).expect("checked");
                if let replica::ReplicaOp::Read { from, request } = op {
                    self.on_replica_read_done(topic, partition, from, request, result);
                }
            }
            LogOutput::Appended {
                request,
                base_offset,
                last_offset,
            } => {
                self.on_appended(topic, partition, request, base_offset, last_offset);
                self.wake_parked_replicas(now, topic, partition);
            }
            LogOutput::AppendFailed { request, error } => {
                self.on_append_failed(topic, partition, request, error)
            }
            LogOutput::ReadDone { request, result } => {
                self.on_read_done(now, topic, partition, request, result)
            }
            LogOutput::OffsetForTimestamp { request, result } => {
                self.on_offset_for_timestamp(topic, partition, request, result)
            }
            LogOutput::Durable { offset } => {
                self.advance_local_waiters(topic, partition, offset);
                self.recompute_high_watermark(now, topic, partition);
                self.maybe_fetch(now, topic, partition);
            }
            // The cut recovery planned (or a follower asked for) is done.
            LogOutput::Truncated { .. } => {
                self.on_replica_truncated(now, topic, partition);
                self.on_partition_settled(now);
            }
            LogOutput::Faulted(reason) => self.on_partition_faulted(topic, partition, reason),
        }
    }

    fn on_partition_recovered(
        &mut self,
        now: Instant,
        topic: &str,
        partition: i32,
        report: RecoveryReport,
    ) {
        if let Some(p) = self.partition_mut(topic, partition) {
            // A replica learns what is committed from its leader (or, leading, from its
            // followers); what it holds is not committed just because it is durable here.
            p.high_watermark = p.log.log_start_offset();
        }
        self.outbox
            .push_back(BrokerOutput::Event(BrokerEvent::PartitionRecovered {
                topic: topic.to_owned(),
                partition,
                report,
            }));
        self.on_partition_settled(now);
    }

    fn on_partition_faulted(&mut self, topic: &str, partition: i32, reason: FaultReason) {
        self.outbox
            .push_back(BrokerOutput::Event(BrokerEvent::PartitionFaulted {
                topic: topic.to_owned(),
                partition,
                reason,
            }));
        // Appends waiting for a sync that will never come are answered now.
        let waiters: Vec<OpId> = match self.partition_mut(topic, partition) {
            Some(p) => p.durable_waiters.drain(..).map(|(_, op)| op).collect(),
            None => return,
        };
        for op in waiters {
            self.fail_produce_op(topic, partition, op, errors::KAFKA_STORAGE_ERROR);
        }
        // A log that faulted during recovery counts as settled: the broker serves the rest.
        let now = self.last_now;
        self.on_partition_settled(now);
    }

    /// A partition finished recovering (or faulted): maybe the broker or a topic is ready.
    fn on_partition_settled(&mut self, now: Instant) {
        if matches!(self.phase, Phase::RecoveringLogs) && self.all_partitions_settled() {
            self.phase = Phase::Ready;
            self.outbox
                .push_back(BrokerOutput::Event(BrokerEvent::Ready));
            self.start_tombstone_removals();
            self.sync_topics_with_image(now);
            self.replay_held(now);
        }
        self.refresh_roles(now);
    }

    fn all_partitions_settled(&self) -> bool {
        self.topics
            .values()
            .flat_map(|t| &t.partitions)
            .all(|p| p.is_settled())
    }

    fn replay_held(&mut self, now: Instant) {
        if !self.is_serving() {
            return;
        }
        while let Some((connection, context, body)) = self.held.pop_front() {
            self.on_request(now, connection, context, body);
        }
    }

    /// Raises a partition's high watermark and wakes what waited for it.
    fn advance_high_watermark(&mut self, now: Instant, topic: &str, partition: i32, offset: i64) {
        let Some(p) = self.partition_mut(topic, partition) else {
            return;
        };
        if offset <= p.high_watermark {
            return;
        }
        p.high_watermark = offset;
        let mut ready = Vec::new();
        while p
            .durable_waiters
            .front()
            .is_some_and(|(next, _)| *next <= offset)
        {
            ready.push(p.durable_waiters.pop_front().expect("front checked").1);
        }
        let fetchers: Vec<Token> = std::mem::take(&mut p.fetch_waiters).into_iter().collect();
        let after_append = self.after_append_error(topic, partition);
        for op in ready {
            match after_append {
                Some(code) => self.fail_produce_op(topic, partition, op, code),
                None => self.complete_produce_op(topic, partition, op),
            }
        }
        for token in fetchers {
            self.wake_fetch(now, token);
        }
    }

    /// acks=1 parts whose batch the local durable offset passed are answered.
    fn advance_local_waiters(&mut self, topic: &str, partition: i32, offset: i64) {
        let Some(p) = self.partition_mut(topic, partition) else {
            return;
        };
        let mut ready = Vec::new();
        while p
            .local_waiters
            .front()
            .is_some_and(|(next, _)| *next <= offset)
        {
            ready.push(p.local_waiters.pop_front().expect("front checked").1);
        }
        for op in ready {
            self.complete_produce_op(topic, partition, op);
        }
    }

    fn on_peer(&mut self, now: Instant, from: NodeId, message: PeerMessage) {
        if !self.is_ready() {
            return; // Peers retry; a recovering broker answers nothing.
        }
        match message {
            PeerMessage::Fetch(request) => self.on_replica_fetch(now, from, request),
            PeerMessage::FetchResponse(response) => {
                self.on_replica_fetch_response(now, from, response)
            }
            PeerMessage::AlterPartitionResponse {
                topic,
                partition,
                error,
            } => self.on_alter_partition_refused(now, &topic, partition, error),
            PeerMessage::TopicsResponse {
                request,
                results,
                metadata_offset,
            } => self.on_topics_response(now, request, results, metadata_offset),
            _ => {}
        }
    }

    fn new_op(&mut self, topic: &str, partition: i32, op: Op) -> OpId {
        let id = self.next_op;
        self.next_op += 1;
        self.ops.insert(id, op);
        if let Some(p) = self.partition_mut(topic, partition) {
            p.ops.insert(id);
        }
        id
    }

    fn take_op(&mut self, topic: &str, partition: i32, id: OpId) -> Option<Op> {
        if let Some(p) = self.partition_mut(topic, partition) {
            p.ops.remove(&id);
        }
        self.ops.remove(&id)
    }

    // ---- timers ----

    fn on_timeout(&mut self, now: Instant) {
        while let Some(timer) = self.timers.pop_expired(now) {
            match timer {
                BrokerTimer::FetchWait => self.on_fetch_wait_timeout(now),
                BrokerTimer::LogTimeout => self.on_log_timeout(now),
                BrokerTimer::ReplicaTick => {
                    let interval = self.replication.tick_interval;
                    self.timers.set(BrokerTimer::ReplicaTick, now + interval);
                    if self.is_ready() {
                        self.sync_topics_with_image(now);
                        self.on_replica_tick(now);
                    }
                    self.resend_forwards();
                    self.check_forwards(now);
                }
            }
        }
    }

    fn on_log_timeout(&mut self, now: Instant) {
        let due: Vec<(String, i32)> = self
            .log_deadlines
            .iter()
            .take_while(|(at, _, _)| *at <= now)
            .map(|(_, t, i)| (t.clone(), *i))
            .collect();
        for (topic, partition) in due {
            self.drive_log(now, &topic, partition, LogInput::Timeout);
        }
        if let Some((at, _, _)) = self.log_deadlines.first() {
            self.timers.set(BrokerTimer::LogTimeout, *at);
        }
    }

    // ---- shutdown ----

    fn on_shutdown(&mut self, now: Instant) {
        if self.draining {
            return;
        }
        self.draining = true;
        // Parked fetches answer now with what they have.
        let parked: Vec<Token> = self.fetch_deadlines.iter().map(|(_, t)| *t).collect();
        for token in parked {
            self.expire_fetch(token);
        }
        let held: Vec<ConnectionId> = self.held.iter().map(|(c, _, _)| *c).collect();
        for connection in held {
            self.close_connection(connection, "broker is shutting down");
        }
        let partitions: Vec<(String, i32)> = self
            .topics
            .iter()
            .flat_map(|(name, t)| (0..t.partitions.len() as i32).map(move |i| (name.clone(), i)))
            .collect();
        for (topic, partition) in partitions {
            let ready = self
                .partition(&topic, partition)
                .is_some_and(|p| p.log.is_ready());
            if ready {
                self.drive_log(now, &topic, partition, LogInput::Sync);
            }
        }
    }

    fn maybe_finish_shutdown(&mut self) {
        if !self.draining || self.shutdown_reported {
            return;
        }
        let idle = self.requests.is_empty()
            && self.disk_routes.is_empty()
            && self.store.writing.is_none()
            && self
                .topics
                .values()
                .flat_map(|t| &t.partitions)
                .all(|p| !p.log.is_ready() || p.log.durable_offset() >= p.log.log_end_offset());
        if idle {
            self.shutdown_reported = true;
            self.outbox.push_back(BrokerOutput::ShutdownComplete);
        }
    }

    // ---- registry ----

    fn on_registry_listed(
        &mut self,
        now: Instant,
        result: Result<DiskOutcome, crate::io::DiskError>,
    ) {
        let entries = match result {
            Ok(DiskOutcome::Listed(entries)) => entries,
            _ => return self.fail_startup(),
        };
        let slots: Vec<&str> = REGISTRY_SLOTS
            .iter()
            .copied()
            .filter(|s| entries.iter().any(|e| e.name == *s))
            .collect();
        self.phase = Phase::LoadingRegistry {
            reads_outstanding: slots.len() as u32,
            best: None,
            slots: slots.clone(),
            read_failed: false,
            rereads: 0,
        };
        for slot in slots {
            let op = DiskOp::Read {
                file: registry::slot_path(slot),
                position: 0,
                len: METADATA_FILE_BYTES_MAX,
            };
            self.emit_disk(op, DiskRoute::RegistryRead);
        }
        self.maybe_finish_registry_load(now);
    }

    fn on_registry_read(
        &mut self,
        now: Instant,
        result: Result<DiskOutcome, crate::io::DiskError>,
    ) {
        let Phase::LoadingRegistry {
            reads_outstanding,
            best,
            read_failed,
            ..
        } = &mut self.phase
        else {
            return;
        };
        *reads_outstanding -= 1;
        match result {
            Ok(DiskOutcome::Read(bytes)) => {
                if let Some(registry) = Registry::decode(&bytes) {
                    if best.as_ref().is_none_or(|b| registry.sequence > b.sequence) {
                        *best = Some(registry);
                    }
                }
            }
            _ => *read_failed = true,
        }
        self.maybe_finish_registry_load(now);
    }

    fn maybe_finish_registry_load(&mut self, now: Instant) {
        let Phase::LoadingRegistry {
            reads_outstanding,
            best,
            slots,
            read_failed,
            rereads,
        } = &mut self.phase
        else {
            return;
        };
        if *reads_outstanding > 0 {
            return;
        }
        let found = slots.len();
        let lone = slots.first().copied().filter(|_| found == 1);
        let best = match best.take() {
            Some(registry) => Some(registry),
            None if *read_failed => return self.fail_startup(),
            None if lone.is_some() && *rereads < REGISTRY_REREADS_MAX => {
                // A lone slot that does not decode is read again: a flip in transit reads
                // clean the next time.
                *rereads += 1;
                *reads_outstanding = 1;
                let op = DiskOp::Read {
                    file: registry::slot_path(lone.unwrap_or(REGISTRY_SLOTS[0])),
                    position: 0,
                    len: METADATA_FILE_BYTES_MAX,
                };
                self.emit_disk(op, DiskRoute::RegistryRead);
                return;
            }
            None => None,
        };
        let registry = match best {
            Some(registry) => registry,
            None if found == 0 => Registry::default(),
            // One slot, read whole and not decoding on any of its reads: most likely the very
            // first write, torn by a crash before its sync (so nothing it held was
            // acknowledged). In a cluster the topics come back from the metadata image, and a
            // fresh storage id makes the controller treat this broker's replicas as empty,
            // which is the safe reading even if the slot was damaged after its sync.
            None if found == 1 => Registry::default(),
            None => return self.fail_startup(),
        };
        self.phase = Phase::RecoveringLogs;
        self.load_registry(now, registry);
    }

    fn fail_startup(&mut self) {
        self.phase = Phase::Failed;
        self.outbox
            .push_back(BrokerOutput::Event(BrokerEvent::RegistryUnreadable));
        let held: Vec<ConnectionId> = self.held.iter().map(|(c, _, _)| *c).collect();
        for connection in held {
            self.close_connection(connection, "broker is not serving");
        }
    }

    fn load_registry(&mut self, now: Instant, registry: Registry) {
        self.store.sequence = registry.sequence;
        self.image_floor = registry.metadata_offset;
        self.storage_id = registry.storage_id;
        let new_storage = self.storage_id == 0;
        if new_storage {
            // A directory without one (new, wiped, or written before identities existed) gets
            // one now, made durable with the registry.
            self.storage_id = self.replication.incarnation.max(1);
        }
        let mut partitions = 0u32;
        for record in &registry.topics {
            let config =
                TopicConfig::with_overrides(&self.config.topic_defaults, &record.overrides)
                    // Overrides were validated when the topic was created; if the broker defaults
                    // changed since so that they no longer combine, keep the defaults.
                    .unwrap_or_else(|_| self.config.topic_defaults.clone());
            partitions += record.partitions.max(0) as u32;
            let topic = Topic {
                id: record.id,
                overrides: record.overrides.clone(),
                config,
                partition_count: record.partitions.max(0),
                partitions: Vec::new(),
                created_change: 0,
            };
            self.topics.insert(record.name.clone(), topic);
        }
        for record in registry.tombstones {
            self.tombstones.push(Tombstone {
                record,
                change: 0,
                removals_outstanding: None,
                failed: false,
            });
        }
        self.outbox
            .push_back(BrokerOutput::Event(BrokerEvent::RegistryLoaded {
                topics: registry.topics.len() as u32,
                partitions,
            }));
        if new_storage {
            self.registry_changed();
        }
        let names: Vec<String> = self.topics.keys().cloned().collect();
        for name in names {
            self.open_partitions(now, &name);
        }
        self.on_partition_settled(now);
    }

    /// The identity of this broker's data directory (see [`Registry::storage_id`]).
    pub fn storage_id(&self) -> u64 {
        self.storage_id
    }

    /// Records a change to topics or tombstones and starts a registry write if none runs.
    /// Returns the change number to wait for.
    fn registry_changed(&mut self) -> u64 {
        self.store.change += 1;
        self.maybe_write_registry();
        self.store.change
    }

    fn maybe_write_registry(&mut self) {
        if self.store.writing.is_some()
            || self.store.faulted
            || self.store.durable_change == self.store.change
        {
            return;
        }
        let registry = self.registry_snapshot();
        let Some(bytes) = registry.encode() else {
            // Topic creation checks the size first; reaching here is a bug, but refusing is
            // safer than writing a file recovery could not read back.
            return self.on_registry_fault();
        };
        self.store.sequence = registry.sequence;
        self.store.writing = Some(self.store.change);
        let file = registry::slot_path(registry::slot_of(registry.sequence));
        let write = DiskOp::Write {
            file: file.clone(),
            position: 0,
            bytes: bytes.into(),
        };
        self.emit_disk(write, DiskRoute::RegistryWrite);
        self.emit_disk(DiskOp::Sync { file }, DiskRoute::RegistrySync);
    }

    fn registry_snapshot(&self) -> Registry {
        Registry {
            storage_id: self.storage_id,
            metadata_offset: self
                .image_floor
                .max(self.image.as_ref().map_or(0, |i| i.offset)),
            sequence: self.store.sequence + 1,
            topics: self
                .topics
                .iter()
                .map(|(name, t)| registry::TopicRecord {
                    name: name.clone(),
                    id: t.id,
                    partitions: t.partition_count,
                    overrides: t.overrides.clone(),
                })
                .collect(),
            tombstones: self.tombstones.iter().map(|t| t.record.clone()).collect(),
        }
    }

    fn on_registry_synced(
        &mut self,
        now: Instant,
        result: Result<DiskOutcome, crate::io::DiskError>,
    ) {
        let Some(covered) = self.store.writing.take() else {
            return;
        };
        if result.is_err() || self.store.faulted {
            return self.on_registry_fault();
        }
        self.store.durable_change = covered;
        let durable: Vec<String> = self
            .topics
            .iter()
            .filter(|(_, t)| t.partitions.is_empty() && t.is_durable(covered))
            .map(|(name, _)| name.clone())
            .collect();
        for name in durable {
            self.open_partitions(now, &name);
        }
        self.start_tombstone_removals();
        self.maybe_write_registry();
    }

    fn on_registry_fault(&mut self) {
        if self.store.faulted {
            return;
        }
        self.store.faulted = true;
        self.store.writing = None;
        self.outbox
            .push_back(BrokerOutput::Event(BrokerEvent::RegistryFaulted));
    }
}
