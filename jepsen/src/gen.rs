//! Deterministic generators of valid histories, for property tests and benchmarks.
//!
//! Each generator first draws operation skeletons per client (clients run one operation at a
//! time, so a client's operations never overlap), each with an invocation time, a
//! linearization point inside its interval and a completion time. It then replays the
//! skeletons in linearization-point order against a true model (per-partition logs, consumer
//! positions) to fill in outputs. The result is linearizable and anomaly-free by construction;
//! tests then inject single anomalies into it.

use crate::history::{History, KeyId, OpKind, Outcome, Record};

/// A small seeded PRNG (splitmix64): deterministic, dependency-free, good enough for
/// workload generation.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    #[must_use]
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        crate::util::mix64(self.0)
    }

    /// Uniform in `0..n` (0 if `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

/// Shape of a generated history.
#[derive(Clone, Copy, Debug)]
pub struct GenConfig {
    /// Total operations.
    pub ops: usize,
    /// Concurrent clients.
    pub clients: usize,
    /// Partitions (logs).
    pub keys: usize,
    /// Fraction of operations that read (log reads, or consumer polls).
    pub read_fraction: f64,
    /// Fraction of sends that never return (indeterminate; half of them take effect).
    pub info_fraction: f64,
    /// Largest gap between operations and largest latency, in nanoseconds.
    pub latency_max_ns: u64,
}

impl Default for GenConfig {
    fn default() -> Self {
        GenConfig {
            ops: 100,
            clients: 5,
            keys: 1,
            read_fraction: 0.5,
            info_fraction: 0.0,
            latency_max_ns: 1_000,
        }
    }
}

/// An operation skeleton: timing, client and what it does, before outputs are known.
struct Skeleton {
    process: u64,
    invoke: u64,
    lin: u64,
    complete: Option<u64>,
    key: u32,
    read: bool,
    value: i64,
}

fn skeletons(rng: &mut Rng, cfg: &GenConfig) -> Vec<Skeleton> {
    let clients = cfg.clients.max(1);
    let mut free_at = vec![0u64; clients];
    let mut epoch = vec![0u64; clients];
    let mut out = Vec::with_capacity(cfg.ops);
    for i in 0..cfg.ops {
        let c = rng.below(clients as u64) as usize;
        let invoke = free_at[c] + 1 + rng.below(cfg.latency_max_ns);
        let lin = invoke + rng.below(cfg.latency_max_ns);
        let complete = lin + rng.below(cfg.latency_max_ns);
        let read = rng.chance(cfg.read_fraction);
        let lost = !read && rng.chance(cfg.info_fraction);
        out.push(Skeleton {
            process: c as u64 + epoch[c] * clients as u64,
            invoke,
            lin,
            complete: (!lost).then_some(complete),
            key: rng.below(cfg.keys.max(1) as u64) as u32,
            read,
            value: i as i64,
        });
        free_at[c] = complete;
        if lost {
            // The client never heard back; it carries on as a new process.
            epoch[c] += 1;
        }
    }
    out
}

fn lin_order(ops: &[Skeleton]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..ops.len()).collect();
    order.sort_by_key(|i| (ops[*i].lin, *i));
    order
}

fn interned_keys(h: &mut History, n: usize) -> Vec<KeyId> {
    (0..n.max(1))
        .map(|k| h.key(&format!("p{k}")).expect("a few keys fit in u32"))
        .collect()
}

/// A linearizable history of appends (sends with offsets) and full log reads.
#[must_use]
pub fn log_history(seed: u64, cfg: &GenConfig) -> History {
    let mut rng = Rng::new(seed);
    let ops = skeletons(&mut rng, cfg);
    let mut logs: Vec<Vec<i64>> = vec![Vec::new(); cfg.keys.max(1)];
    let mut kinds: Vec<Option<OpKind>> = vec![None; ops.len()];
    let mut h = History::new();
    let keys = interned_keys(&mut h, cfg.keys);
    for i in lin_order(&ops) {
        let s = &ops[i];
        let log = &mut logs[s.key as usize];
        let key = keys[s.key as usize];
        kinds[i] = if s.read {
            let from = log.len().saturating_sub(rng.below(4) as usize);
            Some(OpKind::Read {
                key,
                from: from as i64,
                values: Some(log[from..].to_vec()),
            })
        } else if s.complete.is_none() && rng.chance(0.5) {
            Some(OpKind::Send {
                key,
                value: s.value,
                offset: None,
            })
        } else {
            let offset = log.len() as i64;
            log.push(s.value);
            Some(OpKind::Send {
                key,
                value: s.value,
                offset: s.complete.map(|_| offset),
            })
        };
    }
    for (s, kind) in ops.iter().zip(kinds) {
        let kind = kind.expect("every skeleton was replayed");
        let outcome = if s.complete.is_some() {
            Outcome::Ok
        } else {
            Outcome::Info
        };
        h.push_complete(s.process, s.invoke, s.complete, outcome, kind)
            .expect("generated times are ordered");
    }
    h
}

/// Whether client `c` of `clients` consumes partition `k`: partitions are dealt round-robin,
/// and with fewer partitions than clients several clients read each partition.
fn owns(c: usize, k: usize, clients: usize, keys: usize) -> bool {
    k % clients.max(1) == c || (keys < clients && c % keys.max(1) == k)
}

/// A valid Kafka history: clients send to random partitions and poll the partitions they
/// assigned themselves at the start (reading from offset 0), receiving up to a few records per
/// partition per poll.
#[must_use]
pub fn kafka_history(seed: u64, cfg: &GenConfig) -> History {
    let mut rng = Rng::new(seed);
    let mut cfg = *cfg;
    cfg.info_fraction = 0.0;
    let ops = skeletons(&mut rng, &cfg);
    let nkeys = cfg.keys.max(1);
    let mut logs: Vec<Vec<i64>> = vec![Vec::new(); nkeys];
    let mut positions: Vec<Vec<usize>> = vec![vec![0; nkeys]; cfg.clients.max(1)];
    let mut kinds: Vec<Option<OpKind>> = vec![None; ops.len()];
    let mut h = History::new();
    let keys = interned_keys(&mut h, nkeys);
    for i in lin_order(&ops) {
        let s = &ops[i];
        kinds[i] = Some(if s.read {
            let pos = &mut positions[s.process as usize];
            let mut records = Vec::new();
            for (k, log) in logs
                .iter()
                .enumerate()
                .filter(|(k, _)| owns(s.process as usize, *k, cfg.clients, nkeys))
            {
                let end = log.len().min(pos[k] + 1 + rng.below(3) as usize);
                for (o, v) in log.iter().enumerate().take(end).skip(pos[k]) {
                    records.push(Record {
                        key: keys[k],
                        offset: o as i64,
                        value: *v,
                    });
                }
                pos[k] = pos[k].max(end);
            }
            OpKind::Poll {
                records,
                rebalanced: false,
            }
        } else {
            let log = &mut logs[s.key as usize];
            log.push(s.value);
            OpKind::Send {
                key: keys[s.key as usize],
                value: s.value,
                offset: Some(log.len() as i64 - 1),
            }
        });
    }
    for c in 0..cfg.clients.max(1) {
        let mine = (0..nkeys)
            .filter(|k| owns(c, *k, cfg.clients, nkeys))
            .map(|k| keys[k])
            .collect();
        h.push_complete(
            c as u64,
            0,
            Some(0),
            Outcome::Ok,
            OpKind::Assign { keys: mine },
        )
        .expect("time zero is ordered");
    }
    for (s, kind) in ops.iter().zip(kinds) {
        let kind = kind.expect("every skeleton was replayed");
        h.push_complete(s.process, s.invoke, s.complete, Outcome::Ok, kind)
            .expect("generated times are ordered");
    }
    h
}
