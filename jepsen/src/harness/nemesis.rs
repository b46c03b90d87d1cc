//! The nemesis: which faults a run injects, drawn from its seed.
//!
//! A run alternates quiet and faulty periods: after each quiet interval the schedule draws the
//! next fault from the enabled kinds, the harness applies it, and after the next interval heals
//! it. Every choice the schedule makes (kind, shape, target class, magnitudes) comes from the
//! seed, so the same seed and options give the same sequence of faults. Targets that depend on
//! the cluster's state (the current leader) are resolved when the fault starts, and the
//! resolved nodes are written to the run's nemesis log.

use super::netns::NetemSpec;
use crate::gen::Rng;
use std::fmt;

/// A kind of fault, as named on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum NemesisKind {
    /// `kill -9` nodes, restart them at the heal.
    Kill,
    /// SIGSTOP nodes, SIGCONT them at the heal.
    Pause,
    /// Drop node-to-node packets along a partition.
    Partition,
    /// netem delay, loss and duplication on node-to-node traffic.
    Netem,
    /// Restart a node with its clock shifted; the heal restarts it unshifted.
    Clock,
    /// Damage a closed segment of a stopped node, then restart it.
    Disk,
}

impl NemesisKind {
    /// Every kind, in command-line order.
    pub const ALL: [NemesisKind; 6] = [
        NemesisKind::Kill,
        NemesisKind::Pause,
        NemesisKind::Partition,
        NemesisKind::Netem,
        NemesisKind::Clock,
        NemesisKind::Disk,
    ];

    /// The command-line name.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            NemesisKind::Kill => "kill",
            NemesisKind::Pause => "pause",
            NemesisKind::Partition => "partition",
            NemesisKind::Netem => "netem",
            NemesisKind::Clock => "clock",
            NemesisKind::Disk => "disk",
        }
    }

    /// Parses a comma-separated list such as `kill,pause,partition` (`all` for every kind).
    pub fn parse_list(list: &str) -> Result<Vec<NemesisKind>, String> {
        let mut kinds = Vec::new();
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if name == "all" {
                kinds.extend(NemesisKind::ALL);
                continue;
            }
            let kind = NemesisKind::ALL
                .into_iter()
                .find(|k| k.name() == name)
                .ok_or_else(|| {
                    let known: Vec<&str> = NemesisKind::ALL.iter().map(|k| k.name()).collect();
                    format!("unknown nemesis {name:?}; known: {}, all", known.join(", "))
                })?;
            kinds.push(kind);
        }
        kinds.sort();
        kinds.dedup();
        Ok(kinds)
    }
}

/// Which nodes a process fault hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// One node drawn at random.
    One,
    /// The leader of the most partitions (a random node if none is known).
    Leader,
    /// A minority of the nodes (at least one).
    Minority,
    /// A majority of the nodes: the cluster loses its quorum.
    Majority,
    /// Every node.
    All,
}

/// How the nodes are cut apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// Two halves that cannot reach each other (the smaller one a minority).
    Halves,
    /// One node cut off from every other.
    IsolateOne,
    /// The leader cut off from every other node.
    IsolateLeader,
    /// Every node sees a majority, but no two see the same one (Jepsen's majorities ring; four
    /// or more nodes, else halves).
    MajorityRing,
    /// One node's packets to the others are dropped while theirs still reach it.
    OneWay,
}

/// How a closed segment is damaged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Damage {
    /// Some bytes in the middle of the file are flipped.
    FlipBytes,
    /// The file loses its second half.
    Truncate,
}

/// One fault as the schedule drew it.
#[derive(Clone, Debug, PartialEq)]
pub enum Plan {
    /// `kill -9` the target, restart at the heal.
    Kill(Target),
    /// SIGSTOP the target, SIGCONT at the heal.
    Pause(Target),
    /// Cut the network.
    Partition(Shape),
    /// Slow, lossy, duplicating links.
    Netem(NetemSpec),
    /// Restart one node with its clock shifted by this many milliseconds.
    Clock(i64),
    /// Stop one node, damage one of its closed segments, restart it.
    Disk(Damage),
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Plan::Kill(t) => write!(f, "kill {t:?}"),
            Plan::Pause(t) => write!(f, "pause {t:?}"),
            Plan::Partition(s) => write!(f, "partition {s:?}"),
            Plan::Netem(s) => write!(
                f,
                "netem delay {}ms±{}ms loss {}% duplicate {}%",
                s.delay_ms, s.jitter_ms, s.loss_percent, s.duplicate_percent
            ),
            Plan::Clock(ms) => write!(f, "clock {ms:+}ms"),
            Plan::Disk(d) => write!(f, "disk {d:?}"),
        }
    }
}

/// The seeded sequence of faults.
#[derive(Clone, Debug)]
pub struct Schedule {
    rng: Rng,
    kinds: Vec<NemesisKind>,
}

impl Schedule {
    /// A schedule drawing from `kinds` (none: it never draws).
    #[must_use]
    pub fn new(seed: u64, kinds: &[NemesisKind]) -> Schedule {
        Schedule {
            rng: Rng::new(seed ^ 0x6e65_6d65_7369_7321),
            kinds: kinds.to_vec(),
        }
    }

    /// The next fault, or `None` when no kind is enabled.
    pub fn next_plan(&mut self) -> Option<Plan> {
        if self.kinds.is_empty() {
            return None;
        }
        let kind = self.kinds[self.rng.below(self.kinds.len() as u64) as usize];
        let targets = [
            Target::One,
            Target::Leader,
            Target::Minority,
            Target::Majority,
            Target::All,
        ];
        Some(match kind {
            NemesisKind::Kill => Plan::Kill(*self.pick(&targets)?),
            NemesisKind::Pause => Plan::Pause(*self.pick(&targets)?),
            NemesisKind::Partition => Plan::Partition(*self.pick(&[
                Shape::Halves,
                Shape::IsolateOne,
                Shape::IsolateLeader,
                Shape::MajorityRing,
                Shape::OneWay,
            ])?),
            NemesisKind::Netem => Plan::Netem(NetemSpec {
                delay_ms: 5 + self.rng.below(95) as u32,
                jitter_ms: self.rng.below(30) as u32,
                loss_percent: self.rng.below(20) as f64,
                duplicate_percent: self.rng.below(10) as f64,
            }),
            NemesisKind::Clock => {
                let ms = 1_000 + self.rng.below(119_000) as i64;
                Plan::Clock(if self.rng.chance(0.5) { ms } else { -ms })
            }
            NemesisKind::Disk => Plan::Disk(*self.pick(&[Damage::FlipBytes, Damage::Truncate])?),
        })
    }

    /// Nodes for `target` among `1..=nodes`, given the current leader if known.
    pub fn resolve(&mut self, target: Target, nodes: usize, leader: Option<usize>) -> Vec<usize> {
        let mut all: Vec<usize> = (1..=nodes).collect();
        self.shuffle(&mut all);
        let count = match target {
            Target::One | Target::Leader => 1,
            Target::Minority => ((nodes - 1) / 2).max(1),
            Target::Majority => nodes / 2 + 1,
            Target::All => nodes,
        };
        if target == Target::Leader {
            if let Some(l) = leader.filter(|l| (1..=nodes).contains(l)) {
                return vec![l];
            }
        }
        let mut chosen: Vec<usize> = all.into_iter().take(count).collect();
        chosen.sort_unstable();
        chosen
    }

    /// A random node of `1..=nodes`.
    pub fn one(&mut self, nodes: usize) -> usize {
        1 + self.rng.below(nodes as u64) as usize
    }

    /// The directed pairs `(from, to)` whose packets `shape` drops, and a description.
    pub fn cut(
        &mut self,
        shape: Shape,
        nodes: usize,
        leader: Option<usize>,
    ) -> (Vec<(usize, usize)>, String) {
        let mut all: Vec<usize> = (1..=nodes).collect();
        self.shuffle(&mut all);
        let apart = |a: &[usize], b: &[usize]| -> Vec<(usize, usize)> {
            let mut pairs = Vec::new();
            for x in a {
                for y in b {
                    pairs.push((*x, *y));
                    pairs.push((*y, *x));
                }
            }
            pairs.sort_unstable();
            pairs
        };
        let groups = |a: &[usize], b: &[usize]| {
            let (mut a, mut b) = (a.to_vec(), b.to_vec());
            a.sort_unstable();
            b.sort_unstable();
            format!("{a:?} | {b:?}")
        };
        match shape {
            Shape::MajorityRing if nodes >= 4 => {
                // Ring neighbours stay connected; everyone else is cut off.
                let mut pairs = Vec::new();
                for (i, x) in all.iter().enumerate() {
                    for (j, y) in all.iter().enumerate() {
                        let d = i.abs_diff(j);
                        if i != j && d != 1 && d != nodes - 1 {
                            pairs.push((*x, *y));
                        }
                    }
                }
                pairs.sort_unstable();
                (pairs, format!("majority ring {all:?}"))
            }
            Shape::Halves | Shape::MajorityRing => {
                let (a, b) = all.split_at(nodes / 2);
                (apart(a, b), format!("halves {}", groups(a, b)))
            }
            Shape::IsolateOne | Shape::IsolateLeader => {
                let lone = match (shape, leader) {
                    (Shape::IsolateLeader, Some(l)) if (1..=nodes).contains(&l) => l,
                    _ => all[0],
                };
                let rest: Vec<usize> = (1..=nodes).filter(|n| *n != lone).collect();
                let what = if shape == Shape::IsolateLeader && leader == Some(lone) {
                    "isolate leader"
                } else {
                    "isolate"
                };
                (apart(&[lone], &rest), format!("{what} {lone}"))
            }
            Shape::OneWay => {
                let lone = all[0];
                let mut pairs: Vec<(usize, usize)> = (1..=nodes)
                    .filter(|n| *n != lone)
                    .map(|n| (lone, n))
                    .collect();
                pairs.sort_unstable();
                (
                    pairs,
                    format!("one-way: {lone}'s packets to the others dropped"),
                )
            }
        }
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        if items.is_empty() {
            return None;
        }
        items.get(self.rng.below(items.len() as u64) as usize)
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.rng.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_draws_the_same_faults() {
        let kinds = NemesisKind::ALL;
        let draw = |seed| {
            let mut s = Schedule::new(seed, &kinds);
            (0..50)
                .map(|_| {
                    let plan = s.next_plan().unwrap();
                    let cut = s.cut(Shape::Halves, 5, Some(2));
                    (plan.to_string(), cut)
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
    }

    #[test]
    fn only_enabled_kinds_are_drawn() {
        let mut s = Schedule::new(1, &[NemesisKind::Pause]);
        for _ in 0..100 {
            assert!(matches!(s.next_plan(), Some(Plan::Pause(_))));
        }
        assert_eq!(Schedule::new(1, &[]).next_plan(), None);
    }

    #[test]
    fn targets_have_the_sizes_they_promise() {
        let mut s = Schedule::new(3, &[]);
        for nodes in 1..=5 {
            assert_eq!(s.resolve(Target::All, nodes, None).len(), nodes);
            assert_eq!(
                s.resolve(Target::Majority, nodes, None).len(),
                nodes / 2 + 1
            );
            let minority = s.resolve(Target::Minority, nodes, None);
            // One node is the smallest target there is, so of one or two nodes it is the minority.
            assert!(!minority.is_empty() && (nodes <= 2 || minority.len() * 2 < nodes));
            assert_eq!(s.resolve(Target::Leader, nodes, Some(1)), vec![1]);
        }
    }

    #[test]
    fn partitions_cut_what_they_say() {
        let mut s = Schedule::new(5, &[]);
        // Halves: every pair across the cut, both ways; none inside a half.
        let (pairs, _) = s.cut(Shape::Halves, 5, None);
        assert_eq!(pairs.len(), 2 * 2 * 3);
        // Majority ring: each node still reaches exactly two others, so it sees a majority of
        // five (itself included), and the blocked relation is symmetric.
        let (pairs, _) = s.cut(Shape::MajorityRing, 5, None);
        for n in 1..=5 {
            let blocked = pairs.iter().filter(|(a, _)| *a == n).count();
            assert_eq!(blocked, 2, "{pairs:?}");
        }
        assert!(pairs.iter().all(|(a, b)| pairs.contains(&(*b, *a))));
        // One way: only the lone node's outgoing packets.
        let (pairs, _) = s.cut(Shape::OneWay, 3, None);
        assert_eq!(pairs.len(), 2);
        assert!(pairs.iter().all(|(a, _)| *a == pairs[0].0));
        // Isolating the leader cuts exactly the leader off.
        let (pairs, what) = s.cut(Shape::IsolateLeader, 3, Some(2));
        assert_eq!(pairs, vec![(1, 2), (2, 1), (2, 3), (3, 2)]);
        assert_eq!(what, "isolate leader 2");
    }

    #[test]
    fn kinds_parse_from_the_command_line() {
        assert_eq!(
            NemesisKind::parse_list("partition, kill,pause,kill").unwrap(),
            vec![
                NemesisKind::Kill,
                NemesisKind::Pause,
                NemesisKind::Partition
            ]
        );
        assert_eq!(NemesisKind::parse_list("all").unwrap().len(), 6);
        assert!(NemesisKind::parse_list("meteor").is_err());
    }
}
