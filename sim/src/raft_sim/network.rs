//! The controller-quorum simulation's network: the cluster simulation's [`Network`] with only
//! the datagram faults (latency, drop, duplication, reordering) and the four partition kinds
//! the Raft seeds were drawn with, so their traces stay as they were.

use super::params::RaftSimParams;
use crate::cluster_sim::network::{LinkFaults, Network};

/// Partition kinds the Raft seeds draw from (split, isolate, one-way, random links).
pub(super) const PARTITION_KINDS: u64 = 4;

pub(super) fn new(params: &RaftSimParams) -> Network {
    Network::new(LinkFaults {
        latency_us: params.latency_us,
        drop: params.drop,
        duplicate: params.duplicate,
        delay: params.delay,
        delay_factor: 10,
        capacity_bytes_per_ms: None,
    })
}
