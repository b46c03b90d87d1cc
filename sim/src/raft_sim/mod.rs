//! The controller-quorum simulation: 1–7 Raft voters on a faulty simulated network, each with
//! its own faulty [`SimDisk`], drifting clock, crashes (process or power loss) and pauses,
//! driven by a client that proposes unique commands and issues lease reads.
//!
//! Checks, after every event (each a promise of DESIGN §6):
//! - at most one leader per term (invariant 3);
//! - no voter grants votes to two candidates in one term (seen on the wire);
//! - every voter applies one history: the entry applied at an index is the same on every voter
//!   and in every incarnation, and each voter applies indexes densely (state machine safety and
//!   log matching); a restored snapshot is a prefix of that history;
//! - an acknowledged proposal is the entry at its index in that history;
//! - a lease read returns an index at least as high as every proposal acknowledged before the
//!   read was issued (linearizable metadata reads).
//!
//! Then a liveness phase (invariant 9): faults stop, every voter restarts if down, the network
//! heals, and within [`LIVENESS_BOUND`] a leader must exist and every acknowledged proposal
//! must be applied on every voter.

mod network;
pub mod params;

use crate::disk::{DiskFaults, SimDisk};
use crate::log_sim::Violation;
use crate::trace::TraceHash;
use bytes::Bytes;
use params::RaftSimParams;
use seedlog_core::io::{DiskCompletion, DiskOp, DiskRequest};
use seedlog_core::raft::{
    Entry, Message, NodeId, Payload, ProposeError, RaftConfig, RaftInput, RaftNode, RaftOutput,
};
use seedlog_core::{Duration, Instant, Prng};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};

/// Give up on a seed after this many events.
const EVENTS_MAX: u64 = 5_000_000;
/// Simulated time the cluster has to converge once faults stop.
pub const LIVENESS_BOUND: Duration = Duration::from_secs(30);
const EPOCH: u64 = 1_700_000_000_000_000_000;

/// The outcome of one seed.
#[derive(Clone, Debug)]
pub struct RaftSimReport {
    /// The seed.
    pub seed: u64,
    /// Voters.
    pub voters: u32,
    /// Events processed.
    pub events: u64,
    /// Simulated time at the end.
    pub simulated: Duration,
    /// Crashes and restarts.
    pub restarts: u32,
    /// Leaders elected (distinct terms with a leader).
    pub leaders: u64,
    /// Proposals acknowledged.
    pub acked: u64,
    /// Lease reads answered.
    pub reads: u64,
    /// Snapshots restored by voters.
    pub snapshots_restored: u64,
    /// Hash of the whole event trace.
    pub trace_hash: u64,
    /// Broken promises, first first.
    pub violations: Vec<Violation>,
}

#[derive(Clone, Debug)]
enum Event {
    Deliver {
        from: NodeId,
        to: NodeId,
        message: Message,
    },
    Disk {
        node: NodeId,
        incarnation: u64,
        request: DiskRequest,
    },
    Timer {
        node: NodeId,
        incarnation: u64,
    },
    Client,
    Crash,
    Restart {
        node: NodeId,
    },
    Pause,
    Partition,
    Heal,
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

/// The state machine each voter applies: the identity (term, command id; 0 for a no-op) of
/// every entry, in index order.
type Applied = Vec<(u64, u64)>;

struct SimNode {
    raft: Option<RaftNode>,
    disk: SimDisk,
    disk_free_at: Instant,
    incarnation: u64,
    timer_at: Option<Instant>,
    /// Clock rate offset in ppm: local time runs at (1 + drift / 1e6) of simulated time.
    drift_ppm: i64,
    paused_until: Instant,
    applied: Applied,
    restart_pending: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Safety,
    Liveness,
    Done,
}

/// One seed's simulation.
pub struct RaftSim {
    params: RaftSimParams,
    prng: Prng,
    now: Instant,
    sequence: u64,
    queue: BinaryHeap<Reverse<Scheduled>>,
    nodes: Vec<SimNode>,
    faults: DiskFaults,
    net: crate::cluster_sim::network::Network,
    phase: Phase,
    phase_started: Instant,
    /// The one committed history: index → (term, command id).
    history: BTreeMap<u64, (u64, u64)>,
    leaders: BTreeMap<u64, NodeId>,
    votes: BTreeMap<(NodeId, u64), NodeId>,
    /// Acknowledged proposals: command id → index.
    acked: BTreeMap<u64, u64>,
    acked_index_max: u64,
    /// Proposals and reads in flight: id → (acked_index_max when issued, is a read).
    pending: BTreeMap<u64, (u64, bool)>,
    next_command: u64,
    leader_guess: NodeId,
    trace: TraceHash,
    report: RaftSimReport,
}

impl RaftSim {
    /// A simulation of `params`, not yet run.
    pub fn new(params: RaftSimParams) -> RaftSim {
        let mut prng = Prng::new(params.seed);
        let now = Instant(EPOCH);
        let spread = i64::from(params.drift_ppm);
        let nodes = (0..params.voters)
            .map(|_| SimNode {
                raft: None,
                disk: SimDisk::default(),
                disk_free_at: now,
                incarnation: 0,
                timer_at: None,
                drift_ppm: prng.range_inclusive(0, spread as u64) as i64 - spread / 2,
                paused_until: now,
                applied: Vec::new(),
                restart_pending: false,
            })
            .collect();
        let report = RaftSimReport {
            seed: params.seed,
            voters: params.voters,
            events: 0,
            simulated: Duration::ZERO,
            restarts: 0,
            leaders: 0,
            acked: 0,
            reads: 0,
            snapshots_restored: 0,
            trace_hash: 0,
            violations: Vec::new(),
        };
        let mut sim = RaftSim {
            faults: params.disk.clone(),
            net: network::new(&params),
            prng,
            now,
            sequence: 0,
            queue: BinaryHeap::new(),
            nodes,
            phase: Phase::Safety,
            phase_started: now,
            history: BTreeMap::new(),
            leaders: BTreeMap::new(),
            votes: BTreeMap::new(),
            acked: BTreeMap::new(),
            acked_index_max: 0,
            pending: BTreeMap::new(),
            next_command: 1,
            leader_guess: 1,
            trace: TraceHash::default(),
            report,
            params,
        };
        for node in 1..=sim.params.voters {
            sim.start_node(node);
        }
        sim.schedule_faults();
        let client_at = sim.now + Duration::from_millis(1);
        sim.schedule(client_at, Event::Client);
        let liveness_at = sim.now + Duration::from_millis(sim.params.safety_ms);
        sim.schedule(liveness_at, Event::Liveness);
        sim
    }

    /// Runs to the end and returns the report (stopping at the first violation).
    pub fn run(mut self) -> RaftSimReport {
        let start = self.now;
        while let Some(Reverse(next)) = self.queue.pop() {
            debug_assert!(next.at >= self.now, "time never goes backwards");
            self.now = next.at;
            self.report.events += 1;
            self.dispatch(next.event);
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
        self.report.leaders = self.leaders.len() as u64;
        self.report.trace_hash = self.trace.finish();
        self.report
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

    fn node(&mut self, id: NodeId) -> &mut SimNode {
        &mut self.nodes[(id - 1) as usize]
    }

    /// The voter's own clock now.
    fn local_now(&self, id: NodeId) -> Instant {
        let drift = self.nodes[(id - 1) as usize].drift_ppm;
        let elapsed = self.now.0 - EPOCH;
        let skew = i128::from(elapsed) * i128::from(drift) / 1_000_000;
        Instant((i128::from(elapsed) + skew) as u64 + EPOCH)
    }

    /// The simulated time at which the voter's clock reads `local` (rounded up).
    fn sim_time_of(&self, id: NodeId, local: Instant) -> Instant {
        let drift = self.nodes[(id - 1) as usize].drift_ppm;
        let elapsed = i128::from(local.0.saturating_sub(EPOCH));
        let rate = 1_000_000 + i128::from(drift);
        let sim = (elapsed * 1_000_000 + rate - 1) / rate;
        Instant(sim as u64 + EPOCH).max(self.now)
    }

    fn config(&self, id: NodeId) -> RaftConfig {
        let p = &self.params;
        let mut config = RaftConfig::new(id, (1..=p.voters).collect());
        config.election_timeout_min = Duration::from_millis(p.election_timeout_min_ms);
        config.election_timeout_max = Duration::from_millis(2 * p.election_timeout_min_ms);
        config.heartbeat_interval = Duration::from_millis(p.heartbeat_ms.max(1));
        config.snapshot_wanted_entries = p.snapshot_wanted_entries;
        config.canaries = p.canaries;
        config
    }

    fn start_node(&mut self, id: NodeId) {
        let config = self.config(id);
        let seed = self.prng.next_u64();
        let local = self.local_now(id);
        let node = self.node(id);
        node.incarnation += 1;
        node.timer_at = None;
        node.applied.clear();
        node.restart_pending = false;
        node.raft = Some(RaftNode::new(config, seed, local));
        self.trace.add(&[self.now.0, 10, u64::from(id)]);
        self.drain(id, VecDeque::new());
    }

    fn dispatch(&mut self, event: Event) {
        match event {
            Event::Deliver { from, to, message } => self.on_deliver(from, to, message),
            Event::Disk {
                node,
                incarnation,
                request,
            } => self.on_disk(node, incarnation, request),
            Event::Timer { node, incarnation } => self.on_timer(node, incarnation),
            Event::Client => self.on_client(),
            Event::Crash => self.on_crash(),
            Event::Restart { node } => {
                if self.node(node).raft.is_none() {
                    self.report.restarts += 1;
                    self.start_node(node);
                }
            }
            Event::Pause => self.on_pause(),
            Event::Partition => self.on_partition(),
            Event::Heal => {
                self.trace.add(&[self.now.0, 20]);
                self.net.heal();
            }
            Event::Liveness => self.begin_liveness(),
            Event::Check => self.check_liveness(),
        }
    }

    /// Defers an event for a paused voter to the end of its pause. Returns true if deferred.
    fn defer_if_paused(&mut self, id: NodeId, event: &Event) -> bool {
        let until = self.node(id).paused_until;
        if until > self.now {
            self.schedule(until, event.clone());
            return true;
        }
        false
    }

    fn on_deliver(&mut self, from: NodeId, to: NodeId, message: Message) {
        let event = Event::Deliver { from, to, message };
        if self.defer_if_paused(to, &event) {
            return;
        }
        let Event::Deliver { message, .. } = event else {
            unreachable!()
        };
        if self.node(to).raft.is_none() {
            return;
        }
        self.trace.add(&[
            self.now.0,
            1,
            u64::from(from),
            u64::from(to),
            message.term(),
        ]);
        self.feed(to, RaftInput::Message { from, message });
    }

    fn on_disk(&mut self, id: NodeId, incarnation: u64, request: DiskRequest) {
        if self.node(id).incarnation != incarnation || self.node(id).raft.is_none() {
            return;
        }
        let now = self.now;
        let faults = self.faults.clone();
        let node = &mut self.nodes[(id - 1) as usize];
        let result = node.disk.execute(now, &request.op, &faults, &mut self.prng);
        if result.is_err() && matches!(request.op, DiskOp::Sync { .. }) {
            // After a failed fsync the kernel may drop dirty pages: what the page cache showed
            // is gone.
            node.disk.power_loss(&DiskFaults::none(), &mut Prng::new(0));
        }
        self.trace.add(&[
            now.0,
            2,
            u64::from(id),
            request.id,
            u64::from(result.is_ok()),
        ]);
        let completion = DiskCompletion {
            id: request.id,
            result,
        };
        self.feed(id, RaftInput::Disk(completion));
    }

    fn on_timer(&mut self, id: NodeId, incarnation: u64) {
        let event = Event::Timer {
            node: id,
            incarnation,
        };
        if self.node(id).incarnation != incarnation || self.defer_if_paused(id, &event) {
            return;
        }
        let local = self.local_now(id);
        let node = self.node(id);
        node.timer_at = None;
        let due = node
            .raft
            .as_ref()
            .and_then(|r| r.poll_timeout())
            .is_some_and(|t| t <= local);
        if due {
            self.trace.add(&[self.now.0, 3, u64::from(id)]);
            self.feed(id, RaftInput::Timeout);
        } else {
            self.drain(id, VecDeque::new());
        }
    }

    fn feed(&mut self, id: NodeId, input: RaftInput) {
        self.drain(id, VecDeque::from([input]));
    }

    /// Feeds `inputs` to the voter one at a time, handling every output in between.
    fn drain(&mut self, id: NodeId, mut inputs: VecDeque<RaftInput>) {
        let local = self.local_now(id);
        loop {
            let Some(raft) = self.node(id).raft.as_mut() else {
                return;
            };
            let mut outputs = Vec::new();
            while let Some(output) = raft.poll_output() {
                outputs.push(output);
            }
            for output in outputs {
                self.on_output(id, output, &mut inputs);
            }
            let Some(input) = inputs.pop_front() else {
                break;
            };
            let Some(raft) = self.node(id).raft.as_mut() else {
                return;
            };
            raft.handle(local, input);
        }
        self.arm_timer(id);
    }

    fn arm_timer(&mut self, id: NodeId) {
        let Some(deadline) = self.node(id).raft.as_ref().and_then(|r| r.poll_timeout()) else {
            return;
        };
        let at = self.sim_time_of(id, deadline);
        if self
            .node(id)
            .timer_at
            .is_some_and(|t| t <= at && t >= self.now)
        {
            return;
        }
        let incarnation = self.node(id).incarnation;
        self.node(id).timer_at = Some(at);
        let at = if at <= self.now {
            self.now + Duration::from_nanos(1)
        } else {
            at
        };
        self.schedule(
            at,
            Event::Timer {
                node: id,
                incarnation,
            },
        );
    }

    fn on_output(&mut self, id: NodeId, output: RaftOutput, inputs: &mut VecDeque<RaftInput>) {
        match output {
            RaftOutput::Send { to, message } => self.on_send(id, to, message),
            RaftOutput::Disk(request) => self.submit_disk(id, request),
            RaftOutput::Apply(entry) => self.on_apply(id, entry),
            RaftOutput::RestoreSnapshot { index, data, .. } => self.on_restore(id, index, &data),
            RaftOutput::SnapshotWanted { .. } => {
                let applied = &self.node(id).applied;
                let index = applied.len() as u64;
                let data = encode_applied(applied);
                inputs.push_back(RaftInput::Snapshot { index, data });
            }
            RaftOutput::Leader { term, leader } => self.on_leader(id, term, leader),
            RaftOutput::ProposalResult { id: p, result } => self.on_proposal_result(p, result),
            RaftOutput::ReadResult { id: r, result } => self.on_read_result(r, result),
            RaftOutput::Recovered => self.trace.add(&[self.now.0, 11, u64::from(id)]),
            RaftOutput::Faulted(_) => self.crash(id, false),
        }
    }

    fn submit_disk(&mut self, id: NodeId, request: DiskRequest) {
        let (low, high) = self.faults.latency_us;
        let mut latency = self.prng.range_inclusive(low, high);
        if self.prng.chance(self.faults.latency_spike) {
            latency *= 100;
        }
        let now = self.now;
        let node = self.node(id);
        let at = now.max(node.disk_free_at) + Duration::from_micros(latency);
        node.disk_free_at = at;
        let incarnation = node.incarnation;
        self.schedule(
            at,
            Event::Disk {
                node: id,
                incarnation,
                request,
            },
        );
    }

    fn on_send(&mut self, from: NodeId, to: NodeId, message: Message) {
        if let Message::VoteResponse {
            term,
            granted: true,
        } = message
        {
            match self.votes.insert((from, term), to) {
                Some(earlier) if earlier != to => self.violate(format!(
                    "voter {from} voted for {earlier} and {to} in term {term}"
                )),
                _ => {}
            }
        }
        // Raft messages are small: the capacity model is off for this simulation.
        let deliveries = self.net.route(from, to, self.now, 0, &mut self.prng);
        for at in deliveries {
            let message = message.clone();
            self.schedule(at, Event::Deliver { from, to, message });
        }
    }

    fn on_leader(&mut self, id: NodeId, term: u64, leader: Option<NodeId>) {
        self.trace.add(&[self.now.0, 12, u64::from(id), term]);
        if let Some(leader) = leader {
            self.leader_guess = leader;
        }
        if leader != Some(id) {
            return;
        }
        match self.leaders.insert(term, id) {
            Some(other) if other != id => {
                self.violate(format!("two leaders in term {term}: {other} and {id}"))
            }
            _ => {}
        }
    }

    fn on_apply(&mut self, id: NodeId, entry: Entry) {
        let identity = (entry.term, command_id(&entry.payload));
        let expected = self.node(id).applied.len() as u64 + 1;
        if entry.index != expected {
            return self.violate(format!(
                "voter {id} applied index {} after {}",
                entry.index,
                expected - 1
            ));
        }
        self.node(id).applied.push(identity);
        self.check_history(id, entry.index, identity);
    }

    fn check_history(&mut self, id: NodeId, index: u64, identity: (u64, u64)) {
        match self.history.get(&index) {
            Some(known) if *known != identity => {
                return self.violate(format!(
                    "voter {id} applied {identity:?} at index {index}, history has {known:?}"
                ))
            }
            Some(_) => {}
            None => {
                self.history.insert(index, identity);
            }
        }
        let acked_elsewhere = self
            .acked
            .range(identity.1..=identity.1)
            .any(|(_, at)| *at != index)
            && identity.1 != 0;
        if acked_elsewhere {
            self.violate(format!(
                "command {} acknowledged at another index than {index}",
                identity.1
            ));
        }
    }

    fn on_restore(&mut self, id: NodeId, index: u64, data: &[u8]) {
        self.report.snapshots_restored += 1;
        let Some(applied) = decode_applied(data) else {
            return self.violate(format!("voter {id} restored an undecodable snapshot"));
        };
        if applied.len() as u64 != index {
            return self.violate(format!("voter {id} snapshot length differs from its index"));
        }
        for (i, identity) in applied.iter().enumerate() {
            self.check_history(id, i as u64 + 1, *identity);
        }
        self.node(id).applied = applied;
    }
}

/// The command id carried by an entry (0 for a no-op or a foreign command).
fn command_id(payload: &Payload) -> u64 {
    match payload {
        Payload::Noop => 0,
        Payload::Command(bytes) => bytes
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u64::from_be_bytes),
    }
}

fn encode_applied(applied: &Applied) -> Bytes {
    let mut out = Vec::with_capacity(applied.len() * 16);
    for (term, id) in applied {
        out.extend_from_slice(&term.to_be_bytes());
        out.extend_from_slice(&id.to_be_bytes());
    }
    Bytes::from(out)
}

fn decode_applied(data: &[u8]) -> Option<Applied> {
    if !data.len().is_multiple_of(16) {
        return None;
    }
    let word = |c: &[u8]| u64::from_be_bytes(c.try_into().expect("8 bytes"));
    Some(
        data.chunks_exact(16)
            .map(|c| (word(&c[..8]), word(&c[8..])))
            .collect(),
    )
}

mod client;
