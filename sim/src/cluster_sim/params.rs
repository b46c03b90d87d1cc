//! Everything one cluster seed decides, drawn up front and printable.
//!
//! Swarm testing: a seed draws its topology (nodes, controller voters, topics, replication
//! factors, `min.insync.replicas`), its workload, and the *rate* of every fault kind — about a
//! third of the kinds are left out entirely in any one seed, so some seeds hammer one fault and
//! others mix many.
//!
//! Faults that destroy synced data (a wiped disk, a bit flipped at rest) stay within what the
//! replication factor survives: only the nodes in [`ClusterSimParams::destructible`] suffer
//! them, and there are at most `min(rf − min.isr, min.isr − 1)` of those for the most fragile
//! topic. An acks=all record is on at least `min.isr` replicas when it is acknowledged, so one
//! of them survives; and at least `min.isr` replicas stay whole, so the partition can still
//! take writes. Counting every failed replica (DESIGN §6 item 1), not only destroyed ones, a
//! destructive fault also waits until every node runs and each partition of the victim has its
//! whole replica set in sync, and every other node fault waits until the victim is whole
//! again (`faults::DestroyedGuard`). The controller quorum's files (`raft/`) are never destroyed: Raft's safety rests
//! on its durable votes, and a voter that forgot them could vote twice in a term.

use crate::cluster_sim::network::LinkFaults;
use crate::disk::DiskFaults;
use crate::params::rate;
use seedlog_core::canary::Canaries;
use seedlog_core::raft::NodeId;
use seedlog_core::Prng;
use std::fmt;

/// A topic the workload creates and uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicSpec {
    /// Name.
    pub name: String,
    /// Partition count.
    pub partitions: u32,
    /// Replication factor.
    pub replication_factor: u32,
    /// `min.insync.replicas`.
    pub min_insync_replicas: u32,
}

impl TopicSpec {
    /// How many replicas may lose synced data while every acks=all record survives and the
    /// partition can still take writes.
    pub fn destroyable_replicas(&self) -> u32 {
        let rf = self.replication_factor;
        let min_isr = self.min_insync_replicas.min(rf);
        (rf - min_isr).min(min_isr.saturating_sub(1))
    }
}

/// The parameters of one cluster simulation.
#[derive(Clone, Debug)]
pub struct ClusterSimParams {
    /// The seed everything below was drawn from.
    pub seed: u64,
    /// Nodes, 1 to 7 (ids 1..=nodes); every node is a broker.
    pub nodes: u32,
    /// Controller quorum voters (1, 3 or 5 of the nodes).
    pub voters: Vec<NodeId>,
    /// Topics.
    pub topics: Vec<TopicSpec>,

    /// Producer clients.
    pub producers: u32,
    /// Consumer clients.
    pub consumers: u32,
    /// Mean gap between one client's operations, in microseconds.
    pub op_gap_us: u64,
    /// Share of produce requests sent with acks=all (the rest use acks=1).
    pub acks_all_share: f64,
    /// Records per produce request, at most.
    pub records_per_batch_max: u32,
    /// Consumers' `fetch.max.wait.ms`.
    pub fetch_wait_max_ms: u64,
    /// Clients' `request.timeout.ms`.
    pub request_timeout_ms: u64,
    /// How long a producer keeps retrying one send after definite refusals.
    pub delivery_timeout_ms: u64,

    /// Simulated milliseconds of the safety phase (faults on).
    pub safety_ms: u64,
    /// Simulated milliseconds the cluster has to converge once faults stop.
    pub liveness_bound_ms: u64,

    /// `broker.heartbeat.interval.ms`.
    pub heartbeat_ms: u64,
    /// `broker.session.timeout.ms`.
    pub session_timeout_ms: u64,
    /// `replica.lag.time.max.ms`.
    pub replica_lag_ms: u64,
    /// `replica.fetch.wait.max.ms`.
    pub replica_fetch_wait_ms: u64,
    /// `replica.fetch.backoff.ms`.
    pub replica_fetch_backoff_ms: u64,
    /// Minimum Raft election timeout in milliseconds (the maximum is twice it).
    pub election_timeout_min_ms: u64,
    /// Raft heartbeat interval in milliseconds.
    pub raft_heartbeat_ms: u64,

    /// Faults of node-to-node links (and latency of every link).
    pub links: LinkFaults,
    /// Latency range of client-to-node links, in microseconds.
    pub client_latency_us: (u64, u64),
    /// Chance a message on a client connection stalls (and the connection behind it).
    pub stall: f64,
    /// Longest stall, in milliseconds.
    pub stall_ms_max: u64,
    /// Mean milliseconds between network partitions among nodes (0: none).
    pub partition_every_ms: u64,
    /// Partition kinds drawn from (a prefix of `PartitionKind::ALL`, 1 to 5).
    pub partition_kinds: u64,
    /// Mean milliseconds between client↔node isolations (0: none).
    pub client_isolate_every_ms: u64,

    /// Mean milliseconds between node crashes (0: none).
    pub crash_every_ms: u64,
    /// Chance a crash is a power loss (unsynced writes lost, possibly torn).
    pub power_loss: f64,
    /// Chance a crash is instead a controlled shutdown (leaderships moved away first; killed
    /// if it does not finish within `shutdown_timeout_ms`).
    pub graceful_share: f64,
    /// How long a controlled shutdown may take before the process is killed.
    pub shutdown_timeout_ms: u64,
    /// Longest time a crashed node stays down, in milliseconds.
    pub down_ms_max: u64,
    /// Mean milliseconds between pauses (0: none).
    pub pause_every_ms: u64,
    /// Longest pause, in milliseconds.
    pub pause_ms_max: u64,

    /// Disk fault rates (per operation).
    pub disk: DiskFaults,
    /// Nodes that may lose synced data (bit rot at rest, a wiped disk).
    pub destructible: Vec<NodeId>,
    /// Mean milliseconds between bit flips at rest on a destructible node (0: none).
    pub rot_every_ms: u64,
    /// Mean milliseconds between disk wipes of a destructible node (0: none).
    pub wipe_every_ms: u64,

    /// Spread of clock rates across nodes, in parts per million.
    pub drift_ppm: u32,
    /// Mean milliseconds between forward clock jumps (0: none).
    pub clock_jump_every_ms: u64,
    /// Largest clock jump, in milliseconds.
    pub clock_jump_ms_max: u64,

    /// Planted bugs.
    pub canaries: Canaries,
}

/// A mean interval in ms, or 0 (the fault kind is off) in about a third of seeds.
fn every(prng: &mut Prng, low: u64, high: u64) -> u64 {
    if prng.below(3) == 0 {
        0
    } else {
        prng.range_inclusive(low, high)
    }
}

fn pick<T: Copy>(prng: &mut Prng, items: &[T]) -> T {
    items[prng.below(items.len() as u64) as usize]
}

impl ClusterSimParams {
    /// Draws every parameter from `seed`.
    pub fn draw(seed: u64, canaries: Canaries) -> ClusterSimParams {
        ClusterSimParams::draw_sized(seed, canaries, None)
    }

    /// Draws every parameter from `seed`, with the node count fixed when `nodes` is given (the
    /// rest of the topology follows from it).
    pub fn draw_sized(seed: u64, canaries: Canaries, nodes: Option<u32>) -> ClusterSimParams {
        let mut prng = Prng::new(seed ^ 0x5eed_c105_0000_0005);
        let drawn = prng.range_inclusive(1, 7) as u32;
        let nodes = nodes.unwrap_or(drawn).clamp(1, 7);
        let voters = draw_voters(&mut prng, nodes);
        let topics = draw_topics(&mut prng, nodes);
        let election_timeout_min_ms = prng.range_inclusive(300, 600);
        let latency_min = prng.range_inclusive(50, 2_000);
        let client_latency_min = prng.range_inclusive(50, 2_000);
        let disk_latency_min = prng.range_inclusive(5, 200);
        let mut params = ClusterSimParams {
            seed,
            nodes,
            voters,
            topics,
            producers: prng.range_inclusive(1, 4) as u32,
            consumers: prng.range_inclusive(0, 3) as u32,
            op_gap_us: prng.range_inclusive(1_000, 50_000),
            acks_all_share: if prng.chance(0.5) {
                1.0
            } else {
                prng.range_inclusive(50, 100) as f64 / 100.0
            },
            records_per_batch_max: prng.range_inclusive(1, 4) as u32,
            fetch_wait_max_ms: prng.range_inclusive(0, 200),
            request_timeout_ms: prng.range_inclusive(500, 3_000),
            delivery_timeout_ms: prng.range_inclusive(1_000, 10_000),
            safety_ms: prng.range_inclusive(2_000, 8_000),
            liveness_bound_ms: 60_000,
            heartbeat_ms: prng.range_inclusive(50, 100),
            session_timeout_ms: prng.range_inclusive(600, 1_500),
            replica_lag_ms: prng.range_inclusive(1_000, 2_000),
            replica_fetch_wait_ms: prng.range_inclusive(20, 200),
            replica_fetch_backoff_ms: prng.range_inclusive(20, 200),
            election_timeout_min_ms,
            raft_heartbeat_ms: election_timeout_min_ms / prng.range_inclusive(3, 6),
            links: LinkFaults {
                latency_us: (latency_min, latency_min + prng.range_inclusive(0, 5_000)),
                drop: rate(&mut prng, 0.1),
                duplicate: rate(&mut prng, 0.05),
                delay: rate(&mut prng, 0.05),
                delay_factor: 10,
                capacity_bytes_per_ms: (prng.below(3) == 0)
                    .then(|| prng.range_inclusive(50, 5_000)),
            },
            client_latency_us: (
                client_latency_min,
                client_latency_min + prng.range_inclusive(0, 5_000),
            ),
            stall: rate(&mut prng, 0.01),
            stall_ms_max: prng.range_inclusive(100, 5_000),
            partition_every_ms: every(&mut prng, 200, 3_000),
            partition_kinds: prng.range_inclusive(1, 5),
            client_isolate_every_ms: every(&mut prng, 500, 5_000),
            crash_every_ms: every(&mut prng, 500, 5_000),
            power_loss: prng.below(1001) as f64 / 1000.0,
            graceful_share: 0.0,
            shutdown_timeout_ms: 0,
            down_ms_max: prng.range_inclusive(10, 2_000),
            pause_every_ms: every(&mut prng, 500, 5_000),
            pause_ms_max: prng.range_inclusive(10, 2_000),
            disk: DiskFaults {
                torn_write: rate(&mut prng, 1.0),
                bit_flip_on_read: rate(&mut prng, 0.001),
                sync_error: rate(&mut prng, 0.002),
                no_space: rate(&mut prng, 0.001),
                write_error: rate(&mut prng, 0.001),
                read_error: rate(&mut prng, 0.001),
                latency_us: (
                    disk_latency_min,
                    disk_latency_min + prng.range_inclusive(0, 2_000),
                ),
                latency_spike: rate(&mut prng, 0.01),
            },
            destructible: Vec::new(),
            rot_every_ms: every(&mut prng, 500, 5_000),
            wipe_every_ms: every(&mut prng, 1_000, 8_000),
            drift_ppm: prng.below(40_001) as u32,
            clock_jump_every_ms: every(&mut prng, 500, 5_000),
            clock_jump_ms_max: prng.range_inclusive(1, 2_000),
            canaries,
        };
        params.destructible = draw_destructible(&mut prng, &params);
        // Drawn last, so adding it kept every earlier draw (and the corpus seeds) as it was.
        params.graceful_share = rate(&mut prng, 0.5);
        params.shutdown_timeout_ms = prng.range_inclusive(500, 5_000);
        if params.destructible.is_empty() {
            params.rot_every_ms = 0;
            params.wipe_every_ms = 0;
        }
        params
    }

    /// A quiet cluster: no faults at all, latency only. Scenarios start from this and add
    /// exactly the faults their timeline names.
    pub fn quiet(seed: u64, nodes: u32, voters: Vec<NodeId>, topics: Vec<TopicSpec>) -> Self {
        let mut params = ClusterSimParams::draw_sized(seed, Canaries::NONE, Some(nodes));
        params.voters = voters;
        params.topics = topics;
        params.links = LinkFaults::calm((200, 1_000));
        params.client_latency_us = (200, 1_000);
        params.stall = 0.0;
        params.partition_every_ms = 0;
        params.client_isolate_every_ms = 0;
        params.crash_every_ms = 0;
        params.pause_every_ms = 0;
        params.disk = DiskFaults::none();
        params.destructible = Vec::new();
        params.rot_every_ms = 0;
        params.wipe_every_ms = 0;
        params.drift_ppm = 0;
        params.clock_jump_every_ms = 0;
        params
    }

    /// Every node id.
    pub fn node_ids(&self) -> Vec<NodeId> {
        (1..=self.nodes).collect()
    }
}

/// 1, 3 or 5 voters (never more than the nodes), a random subset of the nodes.
fn draw_voters(prng: &mut Prng, nodes: u32) -> Vec<NodeId> {
    let choices: Vec<u32> = [1, 3, 5].into_iter().filter(|v| *v <= nodes).collect();
    let count = pick(prng, &choices);
    let mut ids: Vec<NodeId> = (1..=nodes).collect();
    let mut voters = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let i = prng.below(ids.len() as u64) as usize;
        voters.push(ids.remove(i));
    }
    voters.sort_unstable();
    voters
}

fn draw_topics(prng: &mut Prng, nodes: u32) -> Vec<TopicSpec> {
    let count = prng.range_inclusive(1, 3);
    (0..count)
        .map(|i| {
            let replication_factor = prng.range_inclusive(1, u64::from(nodes.min(5))) as u32;
            // Half the seeds use the common production setting min.isr = rf − 1 (at least 1).
            let min_insync_replicas = if prng.chance(0.5) {
                replication_factor.saturating_sub(1).max(1)
            } else {
                prng.range_inclusive(1, u64::from(replication_factor)) as u32
            };
            TopicSpec {
                name: format!("t{i}"),
                partitions: prng.range_inclusive(1, 3) as u32,
                replication_factor,
                min_insync_replicas,
            }
        })
        .collect()
}

fn draw_destructible(prng: &mut Prng, params: &ClusterSimParams) -> Vec<NodeId> {
    let allowed = params
        .topics
        .iter()
        .map(TopicSpec::destroyable_replicas)
        .min()
        .unwrap_or(0);
    let count = prng.range_inclusive(0, u64::from(allowed));
    let mut ids = params.node_ids();
    let mut chosen = Vec::new();
    for _ in 0..count {
        let i = prng.below(ids.len() as u64) as usize;
        chosen.push(ids.remove(i));
    }
    chosen.sort_unstable();
    chosen
}

impl fmt::Display for ClusterSimParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "seed: {}", self.seed)?;
        writeln!(f, "nodes: {}  voters: {:?}", self.nodes, self.voters)?;
        for t in &self.topics {
            writeln!(
                f,
                "topic {}: partitions {} replication.factor {} min.insync.replicas {}",
                t.name, t.partitions, t.replication_factor, t.min_insync_replicas
            )?;
        }
        writeln!(
            f,
            "producers: {}  consumers: {}  op_gap_us: {}  acks_all_share: {:.2}  records_per_batch_max: {}",
            self.producers,
            self.consumers,
            self.op_gap_us,
            self.acks_all_share,
            self.records_per_batch_max
        )?;
        writeln!(
            f,
            "fetch_wait_max_ms: {}  request_timeout_ms: {}  delivery_timeout_ms: {}",
            self.fetch_wait_max_ms, self.request_timeout_ms, self.delivery_timeout_ms
        )?;
        writeln!(
            f,
            "safety_ms: {}  liveness_bound_ms: {}",
            self.safety_ms, self.liveness_bound_ms
        )?;
        writeln!(
            f,
            "heartbeat_ms: {}  session_timeout_ms: {}  replica_lag_ms: {}  replica_fetch_wait_ms: {}  replica_fetch_backoff_ms: {}",
            self.heartbeat_ms,
            self.session_timeout_ms,
            self.replica_lag_ms,
            self.replica_fetch_wait_ms,
            self.replica_fetch_backoff_ms
        )?;
        writeln!(
            f,
            "election_timeout_min_ms: {}  raft_heartbeat_ms: {}",
            self.election_timeout_min_ms, self.raft_heartbeat_ms
        )?;
        let l = &self.links;
        writeln!(
            f,
            "links: latency_us {}..={}  drop {:.3}  duplicate {:.3}  delay {:.3}  capacity_bytes_per_ms {:?}",
            l.latency_us.0, l.latency_us.1, l.drop, l.duplicate, l.delay, l.capacity_bytes_per_ms
        )?;
        writeln!(
            f,
            "client_latency_us: {}..={}  stall: {:.4}  stall_ms_max: {}",
            self.client_latency_us.0, self.client_latency_us.1, self.stall, self.stall_ms_max
        )?;
        writeln!(
            f,
            "partition_every_ms: {}  partition_kinds: {}  client_isolate_every_ms: {}",
            self.partition_every_ms, self.partition_kinds, self.client_isolate_every_ms
        )?;
        writeln!(
            f,
            "crash_every_ms: {}  power_loss: {:.3}  graceful_share: {:.3}  shutdown_timeout_ms: {}  down_ms_max: {}  pause_every_ms: {}  pause_ms_max: {}",
            self.crash_every_ms,
            self.power_loss,
            self.graceful_share,
            self.shutdown_timeout_ms,
            self.down_ms_max,
            self.pause_every_ms,
            self.pause_ms_max
        )?;
        let d = &self.disk;
        writeln!(
            f,
            "disk: torn_write {:.3}  bit_flip_on_read {:.4}  sync_error {:.4}  no_space {:.4}  write_error {:.4}  read_error {:.4}  latency_us {}..={}  latency_spike {:.4}",
            d.torn_write,
            d.bit_flip_on_read,
            d.sync_error,
            d.no_space,
            d.write_error,
            d.read_error,
            d.latency_us.0,
            d.latency_us.1,
            d.latency_spike
        )?;
        writeln!(
            f,
            "destructible: {:?}  rot_every_ms: {}  wipe_every_ms: {}",
            self.destructible, self.rot_every_ms, self.wipe_every_ms
        )?;
        writeln!(
            f,
            "drift_ppm: {}  clock_jump_every_ms: {}  clock_jump_ms_max: {}",
            self.drift_ppm, self.clock_jump_every_ms, self.clock_jump_ms_max
        )?;
        write!(f, "canaries: {:?}", self.canaries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The destructive-fault budget never exceeds what the most fragile topic survives, voters
    // are 1, 3 or 5 of the nodes, and replication factors fit the cluster.
    #[test]
    fn drawn_topologies_are_survivable() {
        for seed in 0..2_000 {
            let p = ClusterSimParams::draw(seed, Canaries::NONE);
            assert!((1..=7).contains(&p.nodes));
            assert!([1, 3, 5].contains(&(p.voters.len() as u32)));
            assert!(p.voters.iter().all(|v| (1..=p.nodes).contains(v)));
            for t in &p.topics {
                assert!(t.replication_factor >= 1 && t.replication_factor <= p.nodes.min(5));
                assert!(t.min_insync_replicas >= 1);
                assert!(p.destructible.len() as u32 <= t.destroyable_replicas());
            }
        }
    }
}
