//! Seed sweeps of the controller-quorum (Raft) simulation, run by the normal test suite.

use seedlog_core::canary::Canaries;
use seedlog_sim::{run_raft_seed, run_raft_seed_caught, RaftSimParams};

/// Seeds in the normal sweep.
const SWEEP_SEEDS: u64 = 600;

// The safety and liveness sweep: every seed draws its own cluster size (1–7 voters) and fault
// mix (drops, duplicates, reordering, partitions, crashes with power loss, pauses, clock drift,
// disk faults) and must keep one leader per term, one vote per term per voter, one applied
// history, every acknowledged proposal in it, linearizable lease reads, and converge once
// faults stop. A failure prints its parameters so the seed can be replayed.
#[test]
fn raft_seeds_pass() {
    let mut failures = Vec::new();
    let (mut events, mut acked, mut leaders) = (0, 0, 0);
    for seed in 0..SWEEP_SEEDS {
        match run_raft_seed_caught(seed, Canaries::NONE) {
            Ok(report) => {
                events += report.events;
                acked += report.acked;
                leaders += report.leaders;
            }
            Err(what) => failures.push(format!(
                "seed {seed}: {what}\n{}",
                RaftSimParams::draw(seed, Canaries::NONE)
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{} failing seeds:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        acked > SWEEP_SEEDS * 10 && leaders >= SWEEP_SEEDS,
        "the sweep did too little work: {events} events, {acked} acked, {leaders} leaders"
    );
}

// Determinism: the same seed run twice gives the same trace hash, so any failure replays.
#[test]
fn raft_same_seed_same_trace_hash() {
    for seed in [0, 1, 7, 42, 1234, u64::MAX] {
        let a = run_raft_seed(seed, Canaries::NONE);
        let b = run_raft_seed(seed, Canaries::NONE);
        assert_eq!(a.trace_hash, b.trace_hash, "seed {seed} diverged");
        assert_eq!(a.events, b.events);
    }
    assert_ne!(
        run_raft_seed(1, Canaries::NONE).trace_hash,
        run_raft_seed(2, Canaries::NONE).trace_hash
    );
}

// Not a correctness test: prints the simulator's speed (events per wall second and simulated
// time per wall time) over a sweep. Run with
// `cargo test --profile sim -p seedlog-sim --test raft -- --ignored --nocapture raft_speed`.
#[test]
#[ignore]
fn raft_speed() {
    let seeds: u64 = std::env::var("RAFT_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let wall = std::time::Instant::now();
    let (mut events, mut simulated) = (0u64, 0u64);
    let (mut restarts, mut restored, mut reads, mut acked) = (0u64, 0u64, 0u64, 0u64);
    for seed in 0..seeds {
        let started = std::time::Instant::now();
        let report = run_raft_seed(seed, Canaries::NONE);
        if std::env::var("RAFT_VERBOSE").is_ok() {
            println!(
                "seed {seed}: voters {} events {} simulated {:?} acked {} leaders {} wall {:?} {:?}",
                report.voters,
                report.events,
                report.simulated,
                report.acked,
                report.leaders,
                started.elapsed(),
                report.violations.first()
            );
        }
        events += report.events;
        simulated += report.simulated.as_nanos();
        restarts += u64::from(report.restarts);
        restored += report.snapshots_restored;
        reads += report.reads;
        acked += report.acked;
    }
    let wall = wall.elapsed().as_secs_f64();
    println!(
        "{seeds} seeds: {events} events in {wall:.2} s wall = {:.0} events/s; simulated/wall = {:.0}x",
        events as f64 / wall,
        simulated as f64 / 1e9 / wall
    );
    println!(
        "restarts {restarts}, snapshots restored {restored}, lease reads {reads}, acked {acked}"
    );
}
