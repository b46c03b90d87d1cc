//! Everything one controller-quorum seed decides, drawn up front and printable.

use crate::disk::DiskFaults;
use crate::params::rate;
use seedlog_core::canary::Canaries;
use seedlog_core::Prng;
use std::fmt;

/// The parameters of one controller-quorum simulation.
#[derive(Clone, Debug)]
pub struct RaftSimParams {
    /// The seed everything below was drawn from.
    pub seed: u64,
    /// Voters, 1 to 7.
    pub voters: u32,
    /// Simulated milliseconds of the safety phase (faults on).
    pub safety_ms: u64,
    /// Mean gap between client operations, in microseconds.
    pub client_gap_us: u64,
    /// Chance a client operation is a read rather than a proposal.
    pub read_share: f64,
    /// Minimum election timeout in milliseconds (the maximum is twice it).
    pub election_timeout_min_ms: u64,
    /// Heartbeat interval in milliseconds.
    pub heartbeat_ms: u64,
    /// Entries after the last snapshot before the voter asks for one.
    pub snapshot_wanted_entries: u64,
    /// One-way message latency range in microseconds.
    pub latency_us: (u64, u64),
    /// Chance a message is dropped.
    pub drop: f64,
    /// Chance a message is delivered twice.
    pub duplicate: f64,
    /// Chance a message is held back by up to ten times the latency (reordering).
    pub delay: f64,
    /// Mean milliseconds between partitions (0: none).
    pub partition_every_ms: u64,
    /// Mean milliseconds between crashes (0: none).
    pub crash_every_ms: u64,
    /// Chance a crash is a power loss (unsynced writes lost).
    pub power_loss: f64,
    /// Mean milliseconds between pauses (0: none).
    pub pause_every_ms: u64,
    /// Spread of clock rates across voters, in parts per million.
    pub drift_ppm: u32,
    /// Disk fault rates.
    pub disk: DiskFaults,
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

impl RaftSimParams {
    /// Draws every parameter from `seed`.
    pub fn draw(seed: u64, canaries: Canaries) -> RaftSimParams {
        let mut prng = Prng::new(seed ^ 0x5eed_0ae7_0000_0002);
        let latency_min = prng.range_inclusive(50, 2_000);
        let latency_max = latency_min + prng.range_inclusive(0, 20_000);
        let election_timeout_min_ms = prng.range_inclusive(100, 300);
        let disk_latency_min = prng.range_inclusive(5, 200);
        RaftSimParams {
            seed,
            voters: prng.range_inclusive(1, 7) as u32,
            safety_ms: prng.range_inclusive(5_000, 20_000),
            client_gap_us: prng.range_inclusive(500, 50_000),
            read_share: prng.below(50) as f64 / 100.0,
            election_timeout_min_ms,
            heartbeat_ms: election_timeout_min_ms / prng.range_inclusive(3, 6),
            snapshot_wanted_entries: prng.range_inclusive(5, 200),
            latency_us: (latency_min, latency_max),
            drop: rate(&mut prng, 0.2),
            duplicate: rate(&mut prng, 0.1),
            delay: rate(&mut prng, 0.1),
            partition_every_ms: every(&mut prng, 200, 3_000),
            crash_every_ms: every(&mut prng, 300, 5_000),
            power_loss: prng.below(1001) as f64 / 1000.0,
            pause_every_ms: every(&mut prng, 500, 5_000),
            drift_ppm: prng.below(40_001) as u32,
            disk: DiskFaults {
                torn_write: rate(&mut prng, 1.0),
                bit_flip_on_read: 0.0,
                sync_error: rate(&mut prng, 0.002),
                no_space: 0.0,
                write_error: rate(&mut prng, 0.002),
                read_error: 0.0,
                latency_us: (
                    disk_latency_min,
                    disk_latency_min + prng.range_inclusive(0, 2_000),
                ),
                latency_spike: rate(&mut prng, 0.01),
            },
            canaries,
        }
    }
}

impl fmt::Display for RaftSimParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "seed: {}", self.seed)?;
        writeln!(f, "voters: {}", self.voters)?;
        writeln!(f, "safety_ms: {}", self.safety_ms)?;
        writeln!(f, "client_gap_us: {}", self.client_gap_us)?;
        writeln!(f, "read_share: {:.2}", self.read_share)?;
        writeln!(
            f,
            "election_timeout_min_ms: {}",
            self.election_timeout_min_ms
        )?;
        writeln!(f, "heartbeat_ms: {}", self.heartbeat_ms)?;
        writeln!(
            f,
            "snapshot_wanted_entries: {}",
            self.snapshot_wanted_entries
        )?;
        writeln!(
            f,
            "latency_us: {}..={}",
            self.latency_us.0, self.latency_us.1
        )?;
        writeln!(f, "drop: {:.3}", self.drop)?;
        writeln!(f, "duplicate: {:.3}", self.duplicate)?;
        writeln!(f, "delay: {:.3}", self.delay)?;
        writeln!(f, "partition_every_ms: {}", self.partition_every_ms)?;
        writeln!(f, "crash_every_ms: {}", self.crash_every_ms)?;
        writeln!(f, "power_loss: {:.3}", self.power_loss)?;
        writeln!(f, "pause_every_ms: {}", self.pause_every_ms)?;
        writeln!(f, "drift_ppm: {}", self.drift_ppm)?;
        writeln!(f, "disk: {:?}", self.disk)?;
        write!(f, "canaries: {:?}", self.canaries)
    }
}
