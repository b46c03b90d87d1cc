//! The simulated network: datagram links between nodes and stream connections between clients
//! and nodes, with every fault drawn from the seed.
//!
//! Two kinds of traffic cross it, with the guarantees their real transports give:
//! - **Peer messages** behave as datagrams: each may be lost, duplicated, or held back and so
//!   overtaken by later ones (reordering). The peer protocols retry on timers, so they must cope
//!   with all of it.
//! - **Client connections** behave as TCP: bytes of one connection arrive in order, once, or the
//!   connection breaks. A cut link *holds* a connection's bytes (TCP retransmits) and delivers
//!   them when the link heals, unless a side gave up first. A *stall* holds one message (and so
//!   everything behind it) for much longer than the latency, so a request can reach a broker
//!   long after the client timed out and moved on through another connection — the delayed
//!   message across connections of KAFKA-17754.
//!
//! Both share the per-link faults: a latency range, partitions (a set of cut directed links:
//! symmetric splits, one-way cuts, one node isolated, random links, a bridge), and a per-link
//! capacity in bytes per millisecond, whose queue delays everything behind a large message
//! (clogging).

use seedlog_core::{Duration, Instant, Prng};
use std::collections::{BTreeMap, BTreeSet};

/// A network address: node ids are small, client addresses start at [`CLIENT_BASE`].
pub type Addr = u32;

/// The first client address.
pub const CLIENT_BASE: Addr = 1_000;

/// Per-link fault rates of one seed.
#[derive(Clone, Debug, PartialEq)]
pub struct LinkFaults {
    /// One-way latency range in microseconds.
    pub latency_us: (u64, u64),
    /// Chance a datagram is dropped.
    pub drop: f64,
    /// Chance a datagram is delivered twice.
    pub duplicate: f64,
    /// Chance a message is held back by up to `delay_factor` times the latency maximum.
    pub delay: f64,
    /// How far a held-back message may fall behind, in multiples of the latency maximum.
    pub delay_factor: u64,
    /// Link capacity in bytes per millisecond (`None`: unlimited).
    pub capacity_bytes_per_ms: Option<u64>,
}

impl LinkFaults {
    /// Latency only.
    pub fn calm(latency_us: (u64, u64)) -> LinkFaults {
        LinkFaults {
            latency_us,
            drop: 0.0,
            duplicate: 0.0,
            delay: 0.0,
            delay_factor: 10,
            capacity_bytes_per_ms: None,
        }
    }
}

/// How a partition cut the network, for the trace and for humans.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartitionKind {
    /// Two random sides that cannot reach each other.
    Split,
    /// One node cut off both ways.
    Isolate,
    /// One node cut off one way (it hears but is not heard, or the reverse).
    OneWay,
    /// Random directed links cut.
    RandomLinks,
    /// Two sides joined only through one bridge node.
    Bridge,
}

impl PartitionKind {
    /// Every kind, in the order `Network::partition` draws them.
    pub const ALL: [PartitionKind; 5] = [
        PartitionKind::Split,
        PartitionKind::Isolate,
        PartitionKind::OneWay,
        PartitionKind::RandomLinks,
        PartitionKind::Bridge,
    ];
}

/// Links and their faults.
#[derive(Clone, Debug)]
pub struct Network {
    faults: LinkFaults,
    /// Latency range of links that touch a client (default: the node links' range).
    client_latency_us: (u64, u64),
    /// Directed links that deliver nothing.
    blocked: BTreeSet<(Addr, Addr)>,
    /// When each directed link finishes sending what it has queued (capacity model).
    busy_until: BTreeMap<(Addr, Addr), Instant>,
    /// Faults off (liveness phase): latency only.
    calm: bool,
    /// Datagram faults and clogging off for a while (cut links stay cut).
    quiet: bool,
}

impl Network {
    /// A network with `faults` and every link up.
    pub fn new(faults: LinkFaults) -> Network {
        Network {
            client_latency_us: faults.latency_us,
            faults,
            blocked: BTreeSet::new(),
            busy_until: BTreeMap::new(),
            calm: false,
            quiet: false,
        }
    }

    /// Sets the latency range of links that touch a client.
    pub fn set_client_latency(&mut self, latency_us: (u64, u64)) {
        self.client_latency_us = latency_us;
    }

    /// The fault rates.
    pub fn faults(&self) -> &LinkFaults {
        &self.faults
    }

    /// True if `from` cannot reach `to`.
    pub fn is_blocked(&self, from: Addr, to: Addr) -> bool {
        self.blocked.contains(&(from, to))
    }

    /// Transmission delay of `bytes` on the link under the capacity model, queueing behind
    /// what the link is already sending. Zero (and no state) without a capacity.
    fn transmit(&mut self, from: Addr, to: Addr, now: Instant, bytes: u64) -> Instant {
        let Some(capacity) = self
            .faults
            .capacity_bytes_per_ms
            .filter(|_| !self.calm && !self.quiet)
        else {
            return now;
        };
        let capacity = capacity.max(1);
        let start = self
            .busy_until
            .get(&(from, to))
            .copied()
            .unwrap_or(now)
            .max(now);
        let sent = start + Duration::from_nanos(bytes.saturating_mul(1_000_000) / capacity);
        self.busy_until.insert((from, to), sent);
        sent
    }

    /// When each copy of a datagram of `bytes` sent now from `from` to `to` arrives (none if
    /// lost). Without a capacity the draws are exactly those of the controller-quorum
    /// simulation's network, so its seeds replay unchanged.
    pub fn route(
        &mut self,
        from: Addr,
        to: Addr,
        now: Instant,
        bytes: u64,
        prng: &mut Prng,
    ) -> Vec<Instant> {
        if self.blocked.contains(&(from, to)) {
            return Vec::new();
        }
        let faulty = !self.calm && !self.quiet;
        if faulty && prng.chance(self.faults.drop) {
            return Vec::new();
        }
        let copies = if faulty && prng.chance(self.faults.duplicate) {
            2
        } else {
            1
        };
        let sent = self.transmit(from, to, now, bytes);
        let range = self.faults.latency_us;
        (0..copies)
            .map(|_| sent + self.latency(range, faulty, prng))
            .collect()
    }

    fn latency(&self, (low, high): (u64, u64), faulty: bool, prng: &mut Prng) -> Duration {
        let mut latency = prng.range_inclusive(low, high);
        if faulty && prng.chance(self.faults.delay) {
            latency += prng.range_inclusive(0, self.faults.delay_factor * high);
        }
        Duration::from_micros(latency)
    }

    /// When a stream message of `bytes` sent now arrives, before FIFO ordering is applied by
    /// the connection; `None` while the link is cut (the connection holds it).
    pub fn route_stream(
        &mut self,
        from: Addr,
        to: Addr,
        now: Instant,
        bytes: u64,
        prng: &mut Prng,
    ) -> Option<Instant> {
        if self.blocked.contains(&(from, to)) {
            return None;
        }
        let faulty = !self.calm && !self.quiet;
        let sent = self.transmit(from, to, now, bytes);
        let range = if from >= CLIENT_BASE || to >= CLIENT_BASE {
            self.client_latency_us
        } else {
            self.faults.latency_us
        };
        Some(sent + self.latency(range, faulty, prng))
    }

    /// Cuts links among `ids`: a random kind among the first `kinds` of
    /// [`PartitionKind::ALL`]. Replaces any earlier cut between these addresses.
    pub fn partition(&mut self, ids: &[Addr], kinds: u64, prng: &mut Prng) -> PartitionKind {
        self.heal_among(ids);
        let kind = PartitionKind::ALL[prng.below(kinds.clamp(1, 5)) as usize];
        let n = ids.len() as u64;
        match kind {
            PartitionKind::Split => {
                let side: BTreeSet<Addr> =
                    ids.iter().copied().filter(|_| prng.chance(0.5)).collect();
                self.cut(ids, |a, b| side.contains(&a) != side.contains(&b));
            }
            PartitionKind::Isolate => {
                let victim = ids[prng.below(n) as usize];
                self.isolate(ids, victim);
            }
            PartitionKind::OneWay => {
                let victim = ids[prng.below(n) as usize];
                let inbound = prng.chance(0.5);
                self.one_way(ids, victim, inbound);
            }
            PartitionKind::RandomLinks => {
                for a in ids {
                    for b in ids {
                        if a != b && prng.chance(0.3) {
                            self.blocked.insert((*a, *b));
                        }
                    }
                }
            }
            PartitionKind::Bridge => {
                let bridge = ids[prng.below(n) as usize];
                let side: BTreeSet<Addr> =
                    ids.iter().copied().filter(|_| prng.chance(0.5)).collect();
                self.bridge(ids, bridge, &side);
            }
        }
        kind
    }

    /// Cuts every link between `ids` for which `cut(a, b)` holds.
    pub fn cut(&mut self, ids: &[Addr], cut: impl Fn(Addr, Addr) -> bool) {
        for a in ids {
            for b in ids {
                if a != b && cut(*a, *b) {
                    self.blocked.insert((*a, *b));
                }
            }
        }
    }

    /// Cuts `victim` off from the rest of `ids`, both ways.
    pub fn isolate(&mut self, ids: &[Addr], victim: Addr) {
        self.cut(ids, |a, b| a == victim || b == victim);
    }

    /// Cuts `victim` off one way: it no longer hears the others (`inbound`) or is no longer
    /// heard by them.
    pub fn one_way(&mut self, ids: &[Addr], victim: Addr, inbound: bool) {
        self.cut(ids, |a, b| if inbound { b == victim } else { a == victim });
    }

    /// Splits `ids` into `side` and the rest, except that `bridge` reaches both.
    pub fn bridge(&mut self, ids: &[Addr], bridge: Addr, side: &BTreeSet<Addr>) {
        self.cut(ids, |a, b| {
            a != bridge && b != bridge && side.contains(&a) != side.contains(&b)
        });
    }

    /// Cuts the directed link `from → to`.
    pub fn block(&mut self, from: Addr, to: Addr) {
        self.blocked.insert((from, to));
    }

    /// Restores every link between addresses of `ids`.
    pub fn heal_among(&mut self, ids: &[Addr]) {
        let set: BTreeSet<Addr> = ids.iter().copied().collect();
        self.blocked
            .retain(|(a, b)| !(set.contains(a) && set.contains(b)));
    }

    /// Restores every link that touches `addr`.
    pub fn heal_addr(&mut self, addr: Addr) {
        self.blocked.retain(|(a, b)| *a != addr && *b != addr);
    }

    /// Restores every link.
    pub fn heal(&mut self) {
        self.blocked.clear();
    }

    /// Faults stop for good: every link heals and only latency remains.
    pub fn calm(&mut self) {
        self.calm = true;
        self.blocked.clear();
        self.busy_until.clear();
    }

    /// Switches the datagram faults and clogging off (`true`) or back on.
    pub fn set_quiet(&mut self, quiet: bool) {
        self.quiet = quiet;
    }

    /// True once faults stopped.
    pub fn is_calm(&self) -> bool {
        self.calm
    }

    /// The cut links, for the trace.
    pub fn blocked_links(&self) -> usize {
        self.blocked.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Without a capacity a datagram's fate depends only on the draws, and a cut link never
    // delivers; with one, a large message delays the one behind it on the same link.
    #[test]
    fn capacity_queues_messages_on_one_link() {
        let mut faults = LinkFaults::calm((100, 100));
        faults.capacity_bytes_per_ms = Some(1_000);
        let mut net = Network::new(faults);
        let mut prng = Prng::new(1);
        let now = Instant(1_000_000_000);
        let first = net.route(1, 2, now, 10_000, &mut prng);
        let second = net.route(1, 2, now, 1, &mut prng);
        assert_eq!(
            first,
            vec![now + Duration::from_millis(10) + Duration::from_micros(100)]
        );
        assert!(second[0] > first[0]);
        let other = net.route(2, 1, now, 1, &mut prng);
        assert!(other[0] < first[0], "the reverse link has its own queue");
        net.block(1, 2);
        assert!(net.route(1, 2, now, 1, &mut prng).is_empty());
        assert_eq!(net.route_stream(1, 2, now, 1, &mut prng), None);
    }

    // A bridge node reaches both sides; the sides do not reach each other.
    #[test]
    fn bridge_keeps_the_bridge_connected() {
        let mut net = Network::new(LinkFaults::calm((1, 1)));
        let side: BTreeSet<Addr> = [1, 2].into_iter().collect();
        net.bridge(&[1, 2, 3, 4, 5], 3, &side);
        assert!(net.is_blocked(1, 4) && net.is_blocked(5, 2));
        assert!(!net.is_blocked(1, 3) && !net.is_blocked(3, 5) && !net.is_blocked(1, 2));
    }
}
