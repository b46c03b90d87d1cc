//! Everything a seed decides, drawn up front so a run can print it before it starts.
//!
//! Swarm testing: each seed draws not only the workload and sizes but also which fault kinds
//! exist at all and at what rate, so some seeds hammer one fault while others mix many.

use crate::disk::DiskFaults;
use seedlog_core::canary::Canaries;
use seedlog_core::log::SyncPolicy;
use seedlog_core::Prng;
use std::fmt;

/// The parameters of one single-node log simulation.
#[derive(Clone, Debug)]
pub struct LogSimParams {
    /// The seed everything below was drawn from.
    pub seed: u64,
    /// Workload operations to issue before the final check.
    pub operations: u32,
    /// Mean gap between workload operations, in microseconds.
    pub op_gap_us: u64,
    /// Relative weights of append, read, sync, truncate, delete-before, timestamp lookup, new
    /// leader (a higher leader epoch recorded in the epoch cache), truncate-fully.
    pub weights: [u32; 8],
    /// Share of appends done as a follower would: batches with offsets and leader epochs
    /// already assigned, in runs of one to three, stored as given.
    pub replica_share: f64,
    /// Records per batch, at most.
    pub records_max: u32,
    /// Value size in bytes, at most.
    pub value_bytes_max: u32,
    /// Segment size limit.
    pub segment_bytes_max: u64,
    /// Bytes between index entries.
    pub index_interval_bytes: u64,
    /// When the log syncs.
    pub sync_policy: SyncPolicy,
    /// Chance per operation of a crash (process crash or power loss).
    pub crash: f64,
    /// Chance a crash is a power loss rather than a process crash.
    pub power_loss: f64,
    /// Chance per operation of a bit flip at rest.
    pub bit_rot: f64,
    /// Disk fault rates.
    pub disk: DiskFaults,
    /// Keep to what a Kafka client can observe (no truncation, no log-start moves, no rot at
    /// rest) and check the client history with the jepsen checkers.
    pub kafka_history: bool,
    /// Planted bugs.
    pub canaries: Canaries,
}

/// Swarm testing's rate of a fault kind: absent in about a third of seeds, otherwise drawn up to `max`.
pub(crate) fn rate(prng: &mut Prng, max: f64) -> f64 {
    if prng.below(3) == 0 {
        0.0
    } else {
        max * (prng.below(1001) as f64 / 1000.0)
    }
}

impl LogSimParams {
    /// Draws every parameter from `seed`.
    pub fn draw(seed: u64, canaries: Canaries) -> LogSimParams {
        let mut prng = Prng::new(seed ^ 0x5eed_1065_0000_0001);
        let latency_min = prng.range_inclusive(1, 100);
        let latency_max = latency_min + prng.range_inclusive(0, 2_000);
        LogSimParams {
            seed,
            operations: prng.range_inclusive(100, 400) as u32,
            op_gap_us: prng.range_inclusive(10, 2_000),
            weights: [
                prng.range_inclusive(10, 60) as u32,
                prng.range_inclusive(5, 40) as u32,
                prng.range_inclusive(0, 20) as u32,
                prng.range_inclusive(0, 4) as u32,
                prng.range_inclusive(0, 3) as u32,
                prng.range_inclusive(0, 10) as u32,
                0,
                0,
            ],
            replica_share: 0.0,
            records_max: prng.range_inclusive(1, 10) as u32,
            value_bytes_max: prng.range_inclusive(0, 400) as u32,
            segment_bytes_max: prng.range_inclusive(1 << 13, 1 << 16),
            index_interval_bytes: prng.range_inclusive(64, 4096),
            sync_policy: if prng.chance(0.5) {
                SyncPolicy::GroupCommit
            } else {
                SyncPolicy::Explicit
            },
            crash: rate(&mut prng, 0.05),
            power_loss: prng.below(1001) as f64 / 1000.0,
            bit_rot: rate(&mut prng, 0.01),
            disk: DiskFaults {
                torn_write: rate(&mut prng, 1.0),
                bit_flip_on_read: rate(&mut prng, 0.01),
                sync_error: rate(&mut prng, 0.01),
                no_space: rate(&mut prng, 0.01),
                write_error: rate(&mut prng, 0.005),
                read_error: rate(&mut prng, 0.01),
                latency_us: (latency_min, latency_max),
                latency_spike: rate(&mut prng, 0.01),
            },
            kafka_history: false,
            canaries,
        }
        .with_history_choice(&mut prng)
        .with_replication(&mut prng)
    }

    fn with_history_choice(mut self, prng: &mut Prng) -> LogSimParams {
        self.kafka_history = prng.chance(0.5);
        if self.kafka_history {
            self.weights[3] = 0;
            self.weights[4] = 0;
            self.bit_rot = 0.0;
        }
        self
    }

    /// The follower side of replication: replica appends, new leader epochs, truncate-fully.
    /// Drawn after everything else, so a seed with all of them off runs as it did before they
    /// existed.
    fn with_replication(mut self, prng: &mut Prng) -> LogSimParams {
        self.replica_share = rate(prng, 0.8);
        self.weights[6] = if prng.below(3) == 0 {
            0
        } else {
            prng.range_inclusive(1, 4) as u32
        };
        // Discarding the log is not something a Kafka client can observe as a queue.
        self.weights[7] = if self.kafka_history || prng.below(3) == 0 {
            0
        } else {
            prng.range_inclusive(1, 2) as u32
        };
        self
    }
}

impl fmt::Display for LogSimParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "seed: {}", self.seed)?;
        writeln!(f, "operations: {}", self.operations)?;
        writeln!(f, "op_gap_us: {}", self.op_gap_us)?;
        writeln!(
            f,
            "weights (append/read/sync/truncate/delete/timestamp/new-leader/truncate-fully): {:?}",
            self.weights
        )?;
        writeln!(f, "replica_share: {:.3}", self.replica_share)?;
        writeln!(f, "records_max: {}", self.records_max)?;
        writeln!(f, "value_bytes_max: {}", self.value_bytes_max)?;
        writeln!(f, "segment_bytes_max: {}", self.segment_bytes_max)?;
        writeln!(f, "index_interval_bytes: {}", self.index_interval_bytes)?;
        writeln!(f, "sync_policy: {:?}", self.sync_policy)?;
        writeln!(f, "crash: {:.4}", self.crash)?;
        writeln!(f, "power_loss: {:.3}", self.power_loss)?;
        writeln!(f, "bit_rot: {:.4}", self.bit_rot)?;
        let d = &self.disk;
        writeln!(f, "torn_write: {:.3}", d.torn_write)?;
        writeln!(f, "bit_flip_on_read: {:.4}", d.bit_flip_on_read)?;
        writeln!(f, "sync_error: {:.4}", d.sync_error)?;
        writeln!(f, "no_space: {:.4}", d.no_space)?;
        writeln!(f, "write_error: {:.4}", d.write_error)?;
        writeln!(f, "read_error: {:.4}", d.read_error)?;
        writeln!(f, "latency_us: {}..={}", d.latency_us.0, d.latency_us.1)?;
        writeln!(f, "latency_spike: {:.4}", d.latency_spike)?;
        writeln!(f, "kafka_history: {}", self.kafka_history)?;
        write!(f, "canaries: {:?}", self.canaries)
    }
}
