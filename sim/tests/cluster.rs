//! Seed sweeps of the multi-node cluster simulation, run by the normal test suite.

use seedlog_core::canary::Canaries;
use seedlog_sim::{
    cluster_repro_command, run_cluster_seed, run_cluster_seed_caught, ClusterSimParams,
};

/// Seeds in the multi-node sweep (every fault kind, 1–7 nodes).
const SWEEP_SEEDS: u64 = 1_000;
/// Seeds in the single-node sweep.
const SINGLE_NODE_SEEDS: u64 = 300;

/// Runs `seeds` with `nodes` (or drawn), answering the failures and the work done.
fn sweep(seeds: std::ops::Range<u64>, nodes: Option<u32>) -> (Vec<String>, u64, u64, u64) {
    let mut failures = Vec::new();
    let (mut events, mut acked, mut polled) = (0, 0, 0);
    for seed in seeds {
        match run_cluster_seed_caught(seed, Canaries::NONE, nodes) {
            Ok(report) => {
                events += report.events;
                acked += report.acked;
                polled += report.polled;
            }
            Err(what) => failures.push(format!(
                "seed {seed}: {what}\n  replay: {}\n{}",
                cluster_repro_command(seed, &[], nodes),
                ClusterSimParams::draw_sized(seed, Canaries::NONE, nodes)
            )),
        }
    }
    (failures, events, acked, polled)
}

// The main safety and liveness sweep: every seed draws its own cluster (1–7 nodes, 1/3/5
// controller voters, topics with replication factors up to 5 and their min.insync.replicas)
// and fault mix (loss, duplication, reordering, clogging and five kinds of partitions between
// nodes; client isolation and stalled connections; crashes, power loss, pauses; torn writes,
// fsync and I/O errors, ENOSPC, bit flips; bit rot and wiped disks within what the replication
// factor survives; clock drift and jumps), and must keep every invariant, converge once
// faults stop, and produce a client history the jepsen checkers accept. A failure prints its
// parameters and the one command that replays it.
#[test]
fn cluster_seeds_pass() {
    let (failures, events, acked, polled) = sweep(0..SWEEP_SEEDS, None);
    assert!(
        failures.is_empty(),
        "{} failing seeds:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        acked > SWEEP_SEEDS * 20 && polled > SWEEP_SEEDS * 20,
        "the sweep did too little work: {events} events, {acked} acked, {polled} polled"
    );
}

// The same checks on one node, its own controller and only broker: crashes with power loss,
// pauses, disk faults, clock jumps and client isolation must never lose an acknowledged
// record, serve an uncommitted one, or break a client's view of the log.
#[test]
fn single_node_seeds_pass() {
    let (failures, events, acked, polled) = sweep(0..SINGLE_NODE_SEEDS, Some(1));
    assert!(
        failures.is_empty(),
        "{} failing seeds:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        acked > SINGLE_NODE_SEEDS * 20 && polled > SINGLE_NODE_SEEDS * 20,
        "the sweep did too little work: {events} events, {acked} acked, {polled} polled"
    );
}

// Determinism: the same seed run twice gives the same trace hash, so any failure replays —
// whether or not the seed passes.
#[test]
fn cluster_same_seed_same_trace_hash() {
    for seed in [0, 1, 7, 42, 1234, u64::MAX] {
        let a = run_cluster_seed(seed, Canaries::NONE, None);
        let b = run_cluster_seed(seed, Canaries::NONE, None);
        assert_eq!(a.trace_hash, b.trace_hash, "seed {seed} diverged");
        assert_eq!(a.events, b.events);
    }
    assert_ne!(
        run_cluster_seed(1, Canaries::NONE, Some(1)).trace_hash,
        run_cluster_seed(2, Canaries::NONE, Some(1)).trace_hash
    );
}

// Not a correctness test: prints the simulator's speed on the multi-node swarm. Run with
// `cargo test --profile sim -p seedlog-sim --test cluster -- --ignored --nocapture cluster_speed`
// (CLUSTER_SEEDS and CLUSTER_NODES choose the sweep).
#[test]
#[ignore]
fn cluster_speed() {
    let seeds: u64 = std::env::var("CLUSTER_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let nodes: Option<u32> = std::env::var("CLUSTER_NODES")
        .ok()
        .and_then(|s| s.parse().ok());
    let wall = std::time::Instant::now();
    let (mut events, mut simulated, mut failed) = (0u64, 0u64, 0u64);
    for seed in 0..seeds {
        let report = run_cluster_seed(seed, Canaries::NONE, nodes);
        events += report.events;
        simulated += report.simulated.as_nanos();
        failed += u64::from(!report.violations.is_empty());
    }
    let wall = wall.elapsed().as_secs_f64();
    println!(
        "{seeds} seeds ({failed} failed): {events} events in {wall:.2} s wall = {:.0} events/s; simulated/wall = {:.0}x; {:.1} seeds/s",
        events as f64 / wall,
        simulated as f64 / 1e9 / wall,
        seeds as f64 / wall
    );
}
