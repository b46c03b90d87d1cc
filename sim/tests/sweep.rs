//! Seed sweeps of the single-node log simulation, run by the normal test suite.

use seedlog_core::canary::Canaries;
use seedlog_sim::{repro_command, run_log_seed, run_log_seed_caught};

/// Seeds in the normal sweep.
const SWEEP_SEEDS: u64 = 2_000;

// The main safety sweep: 2,000 seeds, each with its own fault mix, must all uphold every check
// (no synced data lost without a report, no corrupt or unwritten bytes served, dense offsets,
// liveness once faults stop). A failure prints the one command that replays it.
#[test]
fn two_thousand_seeds_pass() {
    let mut failures = Vec::new();
    let mut events = 0;
    for seed in 0..SWEEP_SEEDS {
        match run_log_seed_caught(seed, Canaries::NONE) {
            Ok(report) => events += report.events,
            Err(what) => failures.push(format!(
                "seed {seed}: {what} — replay: {}",
                repro_command(seed, &[])
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
        events > SWEEP_SEEDS * 100,
        "the sweep did too little work: {events} events"
    );
}

// Determinism: the same seed run twice gives the same trace hash, so any failure replays.
#[test]
fn same_seed_same_trace_hash() {
    for seed in [0, 1, 7, 42, 1234, 99_999, u64::MAX] {
        let a = run_log_seed(seed, Canaries::NONE);
        let b = run_log_seed(seed, Canaries::NONE);
        assert_eq!(a.trace_hash, b.trace_hash, "seed {seed} diverged");
        assert_eq!(a.events, b.events);
    }
    assert_ne!(
        run_log_seed(1, Canaries::NONE).trace_hash,
        run_log_seed(2, Canaries::NONE).trace_hash
    );
}
