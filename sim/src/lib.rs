//! Seedlog's deterministic simulator.
//!
//! One `u64` seed drives everything: the parameters of the run (workload mix, sizes, which
//! fault kinds exist and how often), every fault, every latency and every workload choice. Time
//! jumps from event to event (a queue ordered by time, then insertion sequence), so a run of
//! minutes of simulated time takes milliseconds, and the same seed on the same code replays
//! the same run bit for bit — checked by the trace hash every run ends with.
#![warn(missing_docs)]

pub mod cluster_sim;
pub mod disk;
pub mod log_sim;
pub mod params;
pub mod raft_sim;
pub mod scenario;
pub mod trace;

pub use cluster_sim::params::ClusterSimParams;
pub use cluster_sim::{ClusterSim, ClusterSimReport};
pub use log_sim::{LogSim, LogSimReport, Violation};
pub use params::LogSimParams;
pub use raft_sim::{params::RaftSimParams, RaftSim, RaftSimReport};
use seedlog_core::canary::Canaries;

/// Runs one seed of the single-node log simulation.
pub fn run_log_seed(seed: u64, canaries: Canaries) -> LogSimReport {
    LogSim::new(LogSimParams::draw(seed, canaries)).run()
}

/// Runs one seed and turns a panic (a failed assertion inside a state machine) into a
/// violation, so a sweep reports every failing seed with its replay line.
pub fn run_log_seed_caught(seed: u64, canaries: Canaries) -> Result<LogSimReport, String> {
    caught(
        || run_log_seed(seed, canaries),
        |r: &LogSimReport| first(&r.violations),
    )
}

/// Runs one seed of the controller-quorum (Raft) simulation.
pub fn run_raft_seed(seed: u64, canaries: Canaries) -> RaftSimReport {
    RaftSim::new(RaftSimParams::draw(seed, canaries)).run()
}

/// Runs one controller-quorum seed and turns a panic into a violation, like
/// [`run_log_seed_caught`].
pub fn run_raft_seed_caught(seed: u64, canaries: Canaries) -> Result<RaftSimReport, String> {
    caught(
        || run_raft_seed(seed, canaries),
        |r: &RaftSimReport| first(&r.violations),
    )
}

/// Runs one seed of the multi-node cluster simulation (`nodes` fixes the cluster size; the
/// rest is drawn from the seed).
pub fn run_cluster_seed(seed: u64, canaries: Canaries, nodes: Option<u32>) -> ClusterSimReport {
    ClusterSim::new(ClusterSimParams::draw_sized(seed, canaries, nodes)).run()
}

/// Runs one cluster seed and turns a panic into a violation, like [`run_log_seed_caught`].
pub fn run_cluster_seed_caught(
    seed: u64,
    canaries: Canaries,
    nodes: Option<u32>,
) -> Result<ClusterSimReport, String> {
    caught(
        || run_cluster_seed(seed, canaries, nodes),
        |r: &ClusterSimReport| first(&r.violations),
    )
}

fn first(violations: &[Violation]) -> Option<String> {
    violations.first().map(|v| v.what.clone())
}

/// Runs `run`, answering its report, its first violation, or the panic that stopped it.
fn caught<R>(
    run: impl FnOnce() -> R + std::panic::UnwindSafe,
    violation: impl Fn(&R) -> Option<String>,
) -> Result<R, String> {
    match std::panic::catch_unwind(run) {
        Ok(report) => match violation(&report) {
            None => Ok(report),
            Some(what) => Err(what),
        },
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".to_string());
            Err(format!("panic: {message}"))
        }
    }
}

/// The one command line that replays cluster seed `seed`.
pub fn cluster_repro_command(seed: u64, canaries: &[&str], nodes: Option<u32>) -> String {
    let mut line = "cargo run --profile sim -p seedlog-node".to_string();
    if !canaries.is_empty() {
        line.push_str(" --features canary");
    }
    line.push_str(&format!(" -- sim --cluster --seed {seed}"));
    if let Some(nodes) = nodes {
        line.push_str(&format!(" --nodes {nodes}"));
    }
    for canary in canaries {
        line.push_str(" --canary ");
        line.push_str(canary);
    }
    line
}

/// The one command line that replays `seed`.
pub fn repro_command(seed: u64, canaries: &[&str]) -> String {
    let mut line = format!("cargo run --profile sim -p seedlog-node -- sim --seed {seed}");
    for canary in canaries {
        line.push_str(" --canary ");
        line.push_str(canary);
    }
    line
}
