//! KIP-848 server-side assignors: `uniform` and `range`.
//!
//! Both are deterministic functions of the members (sorted by id), their subscriptions, the
//! subscribed topics' metadata and, for `uniform`, the current target assignment.
//!
//! - `uniform` has the goals of Kafka's `UniformAssignor`: every partition of a subscribed
//!   topic goes to a member subscribed to it, counts are as even as the subscriptions allow,
//!   and a partition stays with its current target owner unless balance requires a move. It
//!   keeps valid current targets, hands out the rest to the least-loaded eligible member, then
//!   moves partitions from the most to the least loaded eligible member while the difference
//!   is more than one. Its placement is not Kafka's partition for partition.
//! - `range` is Kafka's range layout: per topic, the members subscribed to it, sorted by
//!   member id, take contiguous ranges, the first `partitions % members` one more partition.
//!   Members with the same subscriptions therefore get the same partition numbers of every
//!   topic (co-partitioning). It does not keep current targets.

use super::config::ServerAssignor;
use super::consumer::TopicInfo;
use super::records::Assignment;
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

/// What an assignor works from.
pub struct AssignmentSpec<'a> {
    /// Member id → subscribed topic names.
    pub members: &'a BTreeMap<String, BTreeSet<String>>,
    /// Subscribed topics with their ids and partition counts.
    pub topics: &'a BTreeMap<String, TopicInfo>,
    /// The current target assignment.
    pub current: &'a BTreeMap<String, Assignment>,
}

/// The target assignment for every member of `spec` (members with nothing get an empty one).
pub fn assign(assignor: ServerAssignor, spec: &AssignmentSpec) -> BTreeMap<String, Assignment> {
    let assignment = match assignor {
        ServerAssignor::Uniform => uniform(spec),
        ServerAssignor::Range => range(spec),
    };
    debug_assert!(assignment.keys().eq(spec.members.keys()));
    assignment
}

type Partition = (Uuid, i32);

/// Topic id → topic name, for subscription checks.
fn names_by_id<'a>(spec: &AssignmentSpec<'a>) -> BTreeMap<Uuid, &'a str> {
    spec.topics
        .iter()
        .map(|(name, info)| (info.topic_id, name.as_str()))
        .collect()
}

fn eligible(
    spec: &AssignmentSpec,
    names: &BTreeMap<Uuid, &str>,
    member: &str,
    p: Partition,
) -> bool {
    let Some(name) = names.get(&p.0) else {
        return false;
    };
    let subscribed = spec.members.get(member).is_some_and(|s| s.contains(*name));
    let exists = spec
        .topics
        .get(*name)
        .is_some_and(|t| p.1 >= 0 && p.1 < t.partitions);
    subscribed && exists
}

fn all_partitions(spec: &AssignmentSpec) -> Vec<Partition> {
    let subscribed: BTreeSet<&String> = spec.members.values().flatten().collect();
    spec.topics
        .iter()
        .filter(|(name, _)| subscribed.contains(name))
        .flat_map(|(_, info)| (0..info.partitions.max(0)).map(move |p| (info.topic_id, p)))
        .collect()
}

fn uniform(spec: &AssignmentSpec) -> BTreeMap<String, Assignment> {
    let names = names_by_id(spec);
    let mut owned: BTreeMap<&str, BTreeSet<Partition>> = spec
        .members
        .keys()
        .map(|m| (m.as_str(), BTreeSet::new()))
        .collect();
    let mut taken: BTreeSet<Partition> = BTreeSet::new();
    for (member, assignment) in spec.current {
        let Some(set) = owned.get_mut(member.as_str()) else {
            continue;
        };
        for (topic, partitions) in assignment {
            for p in partitions {
                let key = (*topic, *p);
                if eligible(spec, &names, member, key) && taken.insert(key) {
                    set.insert(key);
                }
            }
        }
    }
    for key in all_partitions(spec) {
        if taken.contains(&key) {
            continue;
        }
        let least = owned
            .iter()
            .filter(|(m, _)| eligible(spec, &names, m, key))
            .min_by_key(|(m, set)| (set.len(), **m))
            .map(|(m, _)| *m);
        if let Some(member) = least {
            owned.get_mut(member).expect("member exists").insert(key);
            taken.insert(key);
        }
    }
    balance(spec, &names, &mut owned);
    owned
        .into_iter()
        .map(|(member, set)| (member.to_owned(), to_assignment(set)))
        .collect()
}

/// Moves one partition at a time from a member to an eligible one holding at least two
/// fewer, until no such move exists. Each move lowers the sum of squared counts, so this ends;
/// the round bound is a safety net.
fn balance(
    spec: &AssignmentSpec,
    names: &BTreeMap<Uuid, &str>,
    owned: &mut BTreeMap<&str, BTreeSet<Partition>>,
) {
    let rounds_max = owned.values().map(BTreeSet::len).sum::<usize>() * owned.len().max(1);
    for _ in 0..rounds_max {
        let Some((from, to, key)) = find_move(spec, names, owned) else {
            return;
        };
        owned.get_mut(from).expect("member exists").remove(&key);
        owned.get_mut(to).expect("member exists").insert(key);
    }
}

fn find_move<'a>(
    spec: &AssignmentSpec,
    names: &BTreeMap<Uuid, &str>,
    owned: &BTreeMap<&'a str, BTreeSet<Partition>>,
) -> Option<(&'a str, &'a str, Partition)> {
    let mut by_load: Vec<(&str, usize)> = owned.iter().map(|(m, s)| (*m, s.len())).collect();
    by_load.sort_by_key(|(m, n)| (std::cmp::Reverse(*n), *m));
    for (from, load) in &by_load {
        for key in owned[from].iter().rev() {
            let target = by_load
                .iter()
                .rev()
                .find(|(to, n)| n + 1 < *load && eligible(spec, names, to, *key));
            if let Some((to, _)) = target {
                return Some((from, to, *key));
            }
        }
    }
    None
}

fn range(spec: &AssignmentSpec) -> BTreeMap<String, Assignment> {
    let mut result: BTreeMap<String, Assignment> = spec
        .members
        .keys()
        .map(|m| (m.clone(), Assignment::new()))
        .collect();
    for (name, info) in spec.topics {
        let subscribers: Vec<&String> = spec
            .members
            .iter()
            .filter(|(_, topics)| topics.contains(name))
            .map(|(m, _)| m)
            .collect();
        if subscribers.is_empty() || info.partitions <= 0 {
            continue;
        }
        let count = subscribers.len() as i32;
        let (per, extra) = (info.partitions / count, info.partitions % count);
        let mut start = 0;
        for (i, member) in subscribers.into_iter().enumerate() {
            let len = per + i32::from((i as i32) < extra);
            if len > 0 {
                let set = (start..start + len).collect();
                result
                    .get_mut(member)
                    .expect("member exists")
                    .insert(info.topic_id, set);
            }
            start += len;
        }
        debug_assert_eq!(start, info.partitions);
    }
    result
}

fn to_assignment(set: BTreeSet<Partition>) -> Assignment {
    let mut assignment = Assignment::new();
    for (topic, partition) in set {
        assignment.entry(topic).or_default().insert(partition);
    }
    assignment
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn topic(id: u8, partitions: i32) -> TopicInfo {
        TopicInfo {
            topic_id: Uuid::from_bytes([id; 16]),
            partitions,
        }
    }

    fn spec_parts(subs: &[(&str, &[&str])]) -> BTreeMap<String, BTreeSet<String>> {
        subs.iter()
            .map(|(m, ts)| (m.to_string(), ts.iter().map(|t| t.to_string()).collect()))
            .collect()
    }

    // Range must give contiguous ranges by sorted member id, the first members one extra, as
    // Kafka's RangeAssignor does; co-partitioned topics line up.
    #[test]
    fn range_layout_matches_kafka() {
        let members = spec_parts(&[("b", &["t", "u"]), ("a", &["t", "u"])]);
        let topics = BTreeMap::from([("t".to_owned(), topic(1, 5)), ("u".to_owned(), topic(2, 5))]);
        let current = BTreeMap::new();
        let spec = AssignmentSpec {
            members: &members,
            topics: &topics,
            current: &current,
        };
        let result = assign(ServerAssignor::Range, &spec);
        let t = Uuid::from_bytes([1; 16]);
        let u = Uuid::from_bytes([2; 16]);
        assert_eq!(result["a"][&t], BTreeSet::from([0, 1, 2]));
        assert_eq!(result["b"][&t], BTreeSet::from([3, 4]));
        assert_eq!(result["a"][&u], result["a"][&t]);
    }

    // Uniform must keep a partition with its owner when the owner stays eligible and balance
    // allows it: a member joining takes only what it needs.
    #[test]
    fn uniform_is_sticky() {
        let t = Uuid::from_bytes([1; 16]);
        let members = spec_parts(&[("a", &["t"]), ("b", &["t"])]);
        let topics = BTreeMap::from([("t".to_owned(), topic(1, 4))]);
        let current = BTreeMap::from([(
            "a".to_owned(),
            Assignment::from([(t, BTreeSet::from([0, 1, 2, 3]))]),
        )]);
        let spec = AssignmentSpec {
            members: &members,
            topics: &topics,
            current: &current,
        };
        let result = assign(ServerAssignor::Uniform, &spec);
        assert_eq!(result["a"][&t].len(), 2);
        assert_eq!(result["b"][&t].len(), 2);
        assert!(result["a"][&t].is_subset(&BTreeSet::from([0, 1, 2, 3])));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        // Both assignors must assign every subscribed partition exactly once, only to a member
        // subscribed to its topic; uniform must also balance each homogeneous group to within
        // one. This is the assignors' half of "no partition has two owners".
        #[test]
        fn assignments_are_complete_and_exclusive(
            subs in proptest::collection::btree_map(
                "[a-e]", proptest::collection::btree_set("[xyz]", 0..3), 1..5),
            sizes in proptest::collection::vec(0i32..7, 3),
            current_seed in proptest::collection::vec((0usize..5, 0u8..3, 0i32..8), 0..12),
            uniform in any::<bool>(),
        ) {
            let topics: BTreeMap<String, TopicInfo> = ["x", "y", "z"].iter().enumerate()
                .map(|(i, n)| (n.to_string(), topic(i as u8 + 1, sizes[i]))).collect();
            let ids: Vec<String> = subs.keys().cloned().collect();
            let mut current: BTreeMap<String, Assignment> = BTreeMap::new();
            for (m, t, p) in current_seed {
                let member = ids[m % ids.len()].clone();
                current.entry(member).or_default()
                    .entry(Uuid::from_bytes([t + 1; 16])).or_default().insert(p);
            }
            let spec = AssignmentSpec { members: &subs, topics: &topics, current: &current };
            let assignor = if uniform { ServerAssignor::Uniform } else { ServerAssignor::Range };
            let result = assign(assignor, &spec);
            let mut seen = BTreeSet::new();
            for (member, assignment) in &result {
                for (t, ps) in assignment {
                    let name = topics.iter().find(|(_, i)| i.topic_id == *t).map(|(n, _)| n).unwrap();
                    prop_assert!(subs[member].contains(name));
                    for p in ps {
                        prop_assert!(*p < topics[name].partitions);
                        prop_assert!(seen.insert((*t, *p)), "assigned twice");
                    }
                }
            }
            prop_assert_eq!(seen.len(), all_partitions(&spec).len());
            let homogeneous = subs.values().all(|s| s == subs.values().next().unwrap());
            if uniform && homogeneous {
                let counts: Vec<usize> = result.values()
                    .map(|a| a.values().map(BTreeSet::len).sum()).collect();
                prop_assert!(counts.iter().max().unwrap() - counts.iter().min().unwrap() <= 1);
            }
        }
    }
}
