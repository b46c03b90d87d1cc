//! The simulated network between voters: per-message latency, drop, duplication, reordering
//! (a held-back message overtaken by later ones) and partitions, all drawn from the seed.

use super::params::RaftSimParams;
use seedlog_core::raft::NodeId;
use seedlog_core::{Duration, Instant, Prng};
use std::collections::BTreeSet;

/// Links and their faults.
#[derive(Clone, Debug)]
pub(super) struct Network {
    latency_us: (u64, u64),
    drop: f64,
    duplicate: f64,
    delay: f64,
    /// Directed links that deliver nothing.
    blocked: BTreeSet<(NodeId, NodeId)>,
    /// Faults off (liveness phase): latency only.
    calm: bool,
}

impl Network {
    pub(super) fn new(params: &RaftSimParams) -> Network {
        Network {
            latency_us: params.latency_us,
            drop: params.drop,
            duplicate: params.duplicate,
            delay: params.delay,
            blocked: BTreeSet::new(),
            calm: false,
        }
    }

    /// When each copy of a message sent now from `from` to `to` arrives (none if lost).
    pub(super) fn route(
        &self,
        from: NodeId,
        to: NodeId,
        now: Instant,
        prng: &mut Prng,
    ) -> Vec<Instant> {
        if self.blocked.contains(&(from, to)) {
            return Vec::new();
        }
        let faulty = !self.calm;
        if faulty && prng.chance(self.drop) {
            return Vec::new();
        }
        let copies = if faulty && prng.chance(self.duplicate) {
            2
        } else {
            1
        };
        (0..copies)
            .map(|_| {
                let (low, high) = self.latency_us;
                let mut latency = prng.range_inclusive(low, high);
                if faulty && prng.chance(self.delay) {
                    latency += prng.range_inclusive(0, 10 * high);
                }
                now + Duration::from_micros(latency)
            })
            .collect()
    }

    /// Cuts links: a symmetric random split, a one-way cut, or one voter isolated.
    pub(super) fn partition(&mut self, voters: u32, prng: &mut Prng) -> u64 {
        self.blocked.clear();
        let kind = prng.below(4);
        let ids: Vec<NodeId> = (1..=voters).collect();
        match kind {
            0 => {
                let side: BTreeSet<NodeId> =
                    ids.iter().copied().filter(|_| prng.chance(0.5)).collect();
                self.cut(&ids, |a, b| side.contains(&a) != side.contains(&b));
            }
            1 => {
                let victim = 1 + prng.below(u64::from(voters)) as NodeId;
                self.cut(&ids, |a, b| a == victim || b == victim);
            }
            2 => {
                let victim = 1 + prng.below(u64::from(voters)) as NodeId;
                let inbound = prng.chance(0.5);
                self.cut(&ids, |a, b| if inbound { b == victim } else { a == victim });
            }
            _ => {
                for a in &ids {
                    for b in &ids {
                        if a != b && prng.chance(0.3) {
                            self.blocked.insert((*a, *b));
                        }
                    }
                }
            }
        }
        kind
    }

    fn cut(&mut self, ids: &[NodeId], cut: impl Fn(NodeId, NodeId) -> bool) {
        for a in ids {
            for b in ids {
                if a != b && cut(*a, *b) {
                    self.blocked.insert((*a, *b));
                }
            }
        }
    }

    pub(super) fn heal(&mut self) {
        self.blocked.clear();
    }

    /// Faults stop for good.
    pub(super) fn calm(&mut self) {
        self.calm = true;
        self.blocked.clear();
    }
}
