//! The multi-node cluster simulation: 1–7 Seedlog nodes ([`seedlog_core::cluster::Node`]: the
//! controller quorum voter, the active controller and the replicated broker behind one face),
//! each with its own faulty [`SimDisk`] and its own drifting, jumping clock, on a faulty network,
//! serving simulated Kafka clients that speak the real wire protocol.
//!
//! One event queue ordered by (time, sequence) drives everything; time jumps from event to
//! event. After every input a node's outputs are drained and its next deadline is scheduled on
//! its own clock. Peer messages cross the network as postcard frames (`seedlog_net::peer`), and
//! client requests and responses as Kafka frames built and parsed by `seedlog_net`'s codec
//! exactly as the tokio driver does, so every byte the real transports carry is exercised.
//!
//! A run has two phases (DESIGN §4). The **safety phase** injects the seed's faults: datagram
//! loss, duplication, reordering and clogging between nodes; partitions of five shapes;
//! client↔node isolation and stalled client connections; crashes (process or power loss),
//! restarts and pauses; disk faults (torn writes, fsync errors, ENOSPC, I/O errors, bit flips on
//! read, latency spikes) and — on the few nodes the replication factor can spare — bit rot at
//! rest and wiped disks; clock drift and forward jumps. Then the **liveness phase** stops every
//! fault, heals the network, restarts every node, and within a bound of simulated time every
//! partition must take an acks=all write, a reader must see every acknowledged record, every
//! consumer must catch up, and every replica must hold the same log.
//!
//! Checks run as events happen (see [`checks`]) and the client history goes through the jepsen
//! checkers at the end. A scenario ([`crate::scenario`]) replaces the swarm's random faults with
//! an explicit timeline.

pub mod checks;
mod client;
mod clock;
mod conn;
mod faults;
pub mod history;
mod host;
mod kafka;
pub mod network;
pub mod params;
mod workload;

use crate::disk::{DiskFaults, SimDisk};
use crate::log_sim::Violation;
use crate::scenario::TimedAction;
use crate::trace::TraceHash;
use bytes::Bytes;
use checks::Checks;
use client::Client;
use clock::NodeClock;
use conn::{Conn, StreamItem};
use history::Recorder;
use network::Network;
use params::ClusterSimParams;
use seedlog_core::cluster::Node;
use seedlog_core::io::DiskRequest;
use seedlog_core::raft::NodeId;
use seedlog_core::{Duration, Instant, Prng};
use seedlog_net::FrameDecoder;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

/// Give up on a seed after this many events (a liveness failure of the simulation itself).
pub const EVENTS_MAX: u64 = 4_000_000;
const EPOCH: u64 = 1_700_000_000_000_000_000;
/// How often the liveness phase checks whether the cluster converged.
const CHECK_INTERVAL: Duration = Duration::from_millis(50);

/// A client connection's id: unique across the run (the node sees it as its `ConnectionId`).
pub type ConnId = u64;

/// The outcome of one seed.
#[derive(Clone, Debug)]
pub struct ClusterSimReport {
    /// The seed.
    pub seed: u64,
    /// Nodes.
    pub nodes: u32,
    /// Events processed.
    pub events: u64,
    /// Simulated time at the end.
    pub simulated: Duration,
    /// Crashes (each followed by a restart).
    pub crashes: u32,
    /// Controlled shutdowns that completed (each followed by a restart).
    pub shutdowns: u32,
    /// Disks wiped.
    pub wipes: u32,
    /// Peer messages delivered.
    pub peer_messages: u64,
    /// Client requests sent.
    pub requests: u64,
    /// Records acknowledged to acks=all producers.
    pub acked: u64,
    /// Records polled by consumers.
    pub polled: u64,
    /// Simulated time the liveness phase took to converge.
    pub converged_after: Option<Duration>,
    /// Hash of the whole event trace.
    pub trace_hash: u64,
    /// Broken promises, first first.
    pub violations: Vec<Violation>,
    /// The client history.
    pub history: Option<seedlog_jepsen::History>,
}

#[derive(Clone, Debug)]
enum Event {
    /// A peer message (postcard frame) arrives.
    Peer {
        from: NodeId,
        to: NodeId,
        frame: Bytes,
    },
    /// Bytes (or the close) of a client connection reach the node.
    ToNode {
        conn: ConnId,
        item: StreamItem,
    },
    /// Bytes (or the close) of a client connection reach the client.
    ToClient {
        conn: ConnId,
        item: StreamItem,
    },
    Disk {
        node: NodeId,
        incarnation: u64,
        request: DiskRequest,
    },
    /// Node `node`'s deadline: only the most recently armed timer (`armed`) acts; one
    /// superseded by an earlier or later deadline is dropped, so timers never multiply.
    Timer {
        node: NodeId,
        incarnation: u64,
        armed: u64,
    },
    ClientWake {
        client: usize,
        generation: u64,
    },
    Fault(faults::FaultKind),
    HealNodes,
    HealClient {
        client: usize,
        generation: u64,
    },
    Restart {
        node: NodeId,
        incarnation: u64,
    },
    /// A paused node's pause may be over.
    Resume {
        node: NodeId,
    },
    /// A controlled shutdown ran out of time: the process is killed.
    ShutdownDeadline {
        node: NodeId,
        incarnation: u64,
    },
    /// The scenario timeline's action at this index.
    Action(usize),
    Liveness,
    Check,
}

#[derive(Debug)]
struct Scheduled {
    at: Instant,
    sequence: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.sequence) == (other.at, other.sequence)
    }
}
impl Eq for Scheduled {}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.sequence).cmp(&(other.at, other.sequence))
    }
}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// One simulated node: the process (absent while down) and what outlives it.
struct SimNode {
    node: Option<Node>,
    disk: SimDisk,
    disk_free_at: Instant,
    /// Bumped on every start and crash, so events for an old process are dropped.
    incarnation: u64,
    timer_at: Option<Instant>,
    /// Counts armed timers; the event of the latest one carries this value.
    timer_armed: u64,
    clock: NodeClock,
    /// The node's world is stopped until then: its events wait in `deferred`.
    paused_until: Instant,
    /// Events for the paused node, in the order they fell due; they run, in that order, when
    /// the pause ends (and every event for the node waits behind them until then).
    deferred: Vec<Event>,
    /// Client connections this process accepted: the frame decoder of each.
    server_conns: BTreeMap<ConnId, FrameDecoder>,
    /// A restart is scheduled.
    restart_pending: bool,
    /// A controlled shutdown is under way; once it completes the process stops for this long.
    shutting_down: Option<Duration>,
    /// The node lost synced data (rot at rest or a wipe) since the run began.
    destroyed: bool,
    /// A bit rotted at rest since the disk was last wiped: the damage may still be there,
    /// unread.
    rotted: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Safety,
    Liveness,
    Done,
}

/// The independent random streams of a run, so a change in one component does not reshuffle
/// the draws of every other.
struct Streams {
    /// Fault schedule and victims.
    faults: Prng,
    /// Latency, loss, duplication, stalls.
    net: Prng,
    /// Disk faults and latency.
    disk: Prng,
    /// Client choices.
    clients: Prng,
    /// Seeds of node processes.
    nodes: Prng,
}

/// One seed's simulation.
pub struct ClusterSim {
    params: ClusterSimParams,
    now: Instant,
    sequence: u64,
    queue: BinaryHeap<Reverse<Scheduled>>,
    rng: Streams,
    nodes: Vec<SimNode>,
    net: Network,
    disk_faults: DiskFaults,
    conns: BTreeMap<ConnId, Conn>,
    next_conn: ConnId,
    clients: Vec<Client>,
    settings: client::ClientSettings,
    /// The last record value handed out (values are unique in the run).
    next_value: i64,
    /// The liveness phase's prober and final reader.
    prober: Option<usize>,
    final_reader: Option<usize>,
    recorder: Recorder,
    checks: Checks,
    phase: Phase,
    phase_started: Instant,
    timeline: Vec<TimedAction>,
    /// Nodes the scenario's actions bound to names.
    names: BTreeMap<String, NodeId>,
    /// A node lost synced data: no other node fault happens until it is whole again (see
    /// `faults::may_destroy`).
    destroyed_guard: Option<faults::DestroyedGuard>,
    trace: TraceHash,
    report: ClusterSimReport,
}

impl ClusterSim {
    /// A swarm simulation of `params`, not yet run.
    pub fn new(params: ClusterSimParams) -> ClusterSim {
        ClusterSim::with_timeline(params, Vec::new())
    }

    /// A simulation of `params` whose faults are the swarm's rates plus `timeline`.
    pub fn with_timeline(params: ClusterSimParams, timeline: Vec<TimedAction>) -> ClusterSim {
        let mut root = Prng::new(params.seed);
        let rng = Streams {
            faults: root.fork(),
            net: root.fork(),
            disk: root.fork(),
            clients: root.fork(),
            nodes: root.fork(),
        };
        let now = Instant(EPOCH);
        let nodes = Self::new_nodes(&params, now, &mut root);
        let report = ClusterSimReport {
            seed: params.seed,
            nodes: params.nodes,
            events: 0,
            simulated: Duration::ZERO,
            crashes: 0,
            shutdowns: 0,
            wipes: 0,
            peer_messages: 0,
            requests: 0,
            acked: 0,
            polled: 0,
            converged_after: None,
            trace_hash: 0,
            violations: Vec::new(),
            history: None,
        };
        let mut sim = ClusterSim {
            net: {
                let mut net = Network::new(params.links.clone());
                net.set_client_latency(params.client_latency_us);
                net
            },
            disk_faults: params.disk.clone(),
            rng,
            now,
            sequence: 0,
            queue: BinaryHeap::new(),
            nodes,
            conns: BTreeMap::new(),
            next_conn: 1,
            clients: Vec::new(),
            settings: workload::settings(&params),
            next_value: 0,
            prober: None,
            final_reader: None,
            recorder: Recorder::new(&params.topics),
            checks: Checks::new(&params),
            phase: Phase::Safety,
            phase_started: now,
            timeline,
            names: BTreeMap::new(),
            destroyed_guard: None,
            trace: TraceHash::default(),
            report,
            params,
        };
        for id in sim.params.node_ids() {
            sim.start_node(id);
        }
        sim.start_clients();
        sim.schedule_faults();
        for index in 0..sim.timeline.len() {
            let at = sim.now + Duration::from_millis(sim.timeline[index].at_ms);
            sim.schedule(at, Event::Action(index));
        }
        let liveness_at = sim.now + Duration::from_millis(sim.params.safety_ms);
        sim.schedule(liveness_at, Event::Liveness);
        sim
    }

    fn new_nodes(params: &ClusterSimParams, now: Instant, prng: &mut Prng) -> Vec<SimNode> {
        let spread = i64::from(params.drift_ppm);
        params
            .node_ids()
            .into_iter()
            .map(|_| {
                let drift = prng.range_inclusive(0, spread as u64) as i64 - spread / 2;
                let offset = Duration::from_micros(prng.below(1_000_000));
                SimNode {
                    node: None,
                    disk: SimDisk::default(),
                    disk_free_at: now,
                    incarnation: 0,
                    timer_at: None,
                    timer_armed: 0,
                    clock: NodeClock::new(now, offset, drift),
                    paused_until: now,
                    deferred: Vec::new(),
                    server_conns: BTreeMap::new(),
                    restart_pending: false,
                    shutting_down: None,
                    destroyed: false,
                    rotted: false,
                }
            })
            .collect()
    }

    /// Runs to the end and returns the report (stopping at the first violation).
    pub fn run(mut self) -> ClusterSimReport {
        let start = self.now;
        while let Some(Reverse(next)) = self.queue.pop() {
            debug_assert!(next.at >= self.now, "time never goes backwards");
            self.now = next.at;
            self.report.events += 1;
            self.dispatch(next.event);
            self.collect_violations();
            if !self.report.violations.is_empty() || self.phase == Phase::Done {
                break;
            }
            if self.report.events >= EVENTS_MAX {
                self.violate(format!("no progress after {EVENTS_MAX} events"));
                break;
            }
        }
        if self.phase != Phase::Done && self.report.violations.is_empty() {
            self.violate(format!("run stalled in phase {:?}", self.phase));
        }
        self.report.simulated = self.now.saturating_since(start);
        self.finish_history();
        self.report.trace_hash = self.trace.finish();
        self.report
    }

    /// The parameters of this run.
    pub fn params(&self) -> &ClusterSimParams {
        &self.params
    }

    fn schedule(&mut self, at: Instant, event: Event) {
        self.sequence += 1;
        let sequence = self.sequence;
        self.queue.push(Reverse(Scheduled {
            at,
            sequence,
            event,
        }));
    }

    fn violate(&mut self, what: String) {
        tracing::warn!(at = ?self.now, "VIOLATION: {what}");
        let at = self.now;
        self.report.violations.push(Violation { at, what });
    }

    /// Moves violations found by the checks and the clients into the report.
    fn collect_violations(&mut self) {
        for what in self.checks.take_violations() {
            self.violate(what);
        }
    }

    fn node(&mut self, id: NodeId) -> &mut SimNode {
        &mut self.nodes[(id - 1) as usize]
    }

    /// The node an event is addressed to, if it is a node's input.
    fn target(&self, event: &Event) -> Option<NodeId> {
        match event {
            Event::Peer { to, .. } => Some(*to),
            Event::ToNode { conn, .. } => self.conns.get(conn).map(|c| c.node),
            Event::Disk { node, .. } | Event::Timer { node, .. } => Some(*node),
            _ => None,
        }
    }

    fn dispatch(&mut self, event: Event) {
        if let Some(id) = self.target(&event) {
            let now = self.now;
            let node = self.node(id);
            if node.paused_until > now || !node.deferred.is_empty() {
                node.deferred.push(event);
                return;
            }
        }
        self.handle_event(event);
    }

    /// Ends node `id`'s pause if it is over: what waited runs now, in order.
    fn resume(&mut self, id: NodeId) {
        let now = self.now;
        if self.node(id).paused_until > now {
            return;
        }
        let deferred = std::mem::take(&mut self.node(id).deferred);
        for event in deferred {
            self.handle_event(event);
        }
    }

    fn handle_event(&mut self, event: Event) {
        match event {
            Event::Peer { from, to, frame } => self.on_peer(from, to, frame),
            Event::ToNode { conn, item } => self.on_to_node(conn, item),
            Event::ToClient { conn, item } => self.on_to_client(conn, item),
            Event::Disk {
                node,
                incarnation,
                request,
            } => self.on_disk(node, incarnation, request),
            Event::Timer {
                node,
                incarnation,
                armed,
            } => self.on_timer(node, incarnation, armed),
            Event::ClientWake { client, generation } => self.on_client_wake(client, generation),
            Event::Fault(kind) => self.on_fault(kind),
            Event::HealNodes => self.heal_nodes(),
            Event::HealClient { client, generation } => self.heal_client(client, generation),
            Event::Restart { node, incarnation } => self.on_restart(node, incarnation),
            Event::Resume { node } => self.resume(node),
            Event::ShutdownDeadline { node, incarnation } => {
                self.on_shutdown_deadline(node, incarnation)
            }
            Event::Action(index) => self.on_action(index),
            Event::Liveness => self.begin_liveness(),
            Event::Check => self.check_liveness(),
        }
    }

    /// Runs the jepsen checkers over the history, once the run ended without another
    /// violation.
    fn finish_history(&mut self) {
        let drained = self.phase == Phase::Done;
        let (history, failed) = std::mem::take(&mut self.recorder).finish();
        if let Some(what) = failed {
            self.violate(what);
        }
        if self.report.violations.is_empty() {
            let options = seedlog_jepsen::CheckOptions {
                workload: seedlog_jepsen::Workload {
                    transactions: false,
                    subscribe: false,
                    acks_all: true,
                    idempotent: true,
                    drained,
                },
                partial_reads: true,
                max_search_steps: Some(20_000_000),
                ..seedlog_jepsen::CheckOptions::default()
            };
            let verdict = seedlog_jepsen::check(&history, &options);
            if verdict.validity != seedlog_jepsen::Validity::Valid {
                let summary = seedlog_jepsen::verdict::summary(&history, &verdict);
                self.violate(format!("client history check: {summary}"));
            }
        }
        self.report.history = Some(history);
    }
}
