//! Named scenarios: data files (TOML) that describe a cluster run — size, topics, workload, an
//! explicit fault timeline and/or swarm fault rates, how long the faults last, the seed, and
//! the expected outcome — replayed by `sim/tests/scenarios.rs` and `seedlog sim --scenario`.
//!
//! ```toml
//! description = "The partition leader is cut off while producers write with acks=all."
//! seed = 1
//! nodes = 3
//! voters = [1, 2, 3]          # default: 1, 3 or 5 nodes, as many as fit
//! safety_ms = 6000            # faults happen before this; then the liveness phase
//! expect = "pass"             # or "violation", with `expect_message` a substring of it
//!
//! [[topic]]
//! name = "orders"
//! partitions = 1
//! replication_factor = 3
//! min_insync_replicas = 2
//!
//! [workload]                  # every key optional
//! producers = 2
//! consumers = 1
//! acks_all_share = 1.0
//!
//! [[at]]
//! ms = 1500
//! do = "isolate"
//! node = "leader:orders-0"    # a node id, "leader:<topic>-<p>", "follower:<topic>-<p>",
//! name = "old"                #   "follower2:<topic>-<p>", "controller", or "$name" for a
//!                             #   node an earlier action bound with `name`
//!
//! [[at]]
//! ms = 4000
//! do = "heal"
//! ```
//!
//! Actions (`do`): `partition` (`sides`: lists of nodes; links between different sides are
//! cut, nodes on no side keep every link, and `"rest"` puts every unnamed node on a side),
//! `isolate` (`node`), `one-way` (`from` no longer reaches `to`), `bridge` (`node` bridges
//! `side` and the rest), `heal`, `crash` (`node`, `power_loss`), `shutdown` (`node`: a
//! controlled shutdown), `restart` (`node`), `pause` (`node`, `for_ms`), `wipe` (`node`: power
//! loss, disk wiped but the controller quorum's files, restart after `for_ms`), `rot` (`node`:
//! one bit flipped at rest), `clock-jump` (`node`, `by_ms`), `isolate-clients` (from `node`,
//! or from every node), `heal-clients`. A `[swarm]` table sets fault rates by the names of
//! [`ClusterSimParams`]' fields (`drop`, `duplicate`, `delay`, `stall`, `crash_every_ms`,
//! `partition_every_ms`, `pause_every_ms`, `client_isolate_every_ms`, `clock_jump_every_ms`,
//! `power_loss`, `graceful_share`, `torn_write`, `sync_error`).

use crate::cluster_sim::params::{ClusterSimParams, TopicSpec};
use seedlog_core::canary::{Canaries, Canary};
use seedlog_core::raft::NodeId;
use serde::Deserialize;
use std::collections::BTreeMap;

/// Which node an action applies to, resolved when it runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeSelector {
    /// A node id.
    Id(NodeId),
    /// The partition's leader as clients last saw it.
    Leader(String, u32),
    /// The first (`0`) or second (`1`) replica of the partition that is not its leader.
    Follower(String, u32, usize),
    /// The controller quorum leader of the highest term seen.
    Controller,
    /// A node an earlier action bound with `name`.
    Named(String),
    /// In a partition's sides: every node no other side names.
    Rest,
}

/// One step of a fault timeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Cut every link between different sides.
    Partition(Vec<Vec<NodeSelector>>),
    /// Cut one node off, both ways.
    Isolate(NodeSelector),
    /// `from` no longer reaches `to`.
    OneWay(NodeSelector, NodeSelector),
    /// `side` and the rest reach each other only through the bridge node.
    Bridge(NodeSelector, Vec<NodeSelector>),
    /// Restore every node-to-node link.
    Heal,
    /// Crash a node (power loss: unsynced writes lost); it stays down until `Restart`.
    Crash(NodeSelector, bool),
    /// A controlled shutdown (leaderships moved away, logs synced; killed if it takes longer
    /// than the seed's timeout); the node stays down until `Restart`.
    Shutdown(NodeSelector),
    /// Start a crashed node again.
    Restart(NodeSelector),
    /// Stop a node's world for this many milliseconds.
    Pause(NodeSelector, u64),
    /// Power loss, the disk wiped (but the controller quorum's files), restart after this many
    /// milliseconds.
    Wipe(NodeSelector, u64),
    /// One bit flipped at rest in the node's data.
    Rot(NodeSelector),
    /// The node's clock jumps forward this many milliseconds.
    ClockJump(NodeSelector, u64),
    /// Cut clients off from one node, or from all.
    IsolateClients(Option<NodeSelector>),
    /// Restore every client link.
    HealClients,
}

/// An action, when it happens, and the name it binds its node to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimedAction {
    /// Milliseconds after the start.
    pub at_ms: u64,
    /// What happens.
    pub action: Action,
    /// Binds the action's (first) node to this name for later actions.
    pub name: Option<String>,
}

/// What a scenario expects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    /// No violation.
    Pass,
    /// A violation whose text contains this (empty: any).
    Violation(String),
}

/// A parsed scenario.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// The file's name, without extension.
    pub name: String,
    /// What it shows.
    pub description: String,
    /// The run's parameters.
    pub params: ClusterSimParams,
    /// The fault timeline.
    pub timeline: Vec<TimedAction>,
    /// The expected outcome.
    pub expect: Expect,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    description: String,
    seed: u64,
    nodes: u32,
    voters: Option<Vec<NodeId>>,
    safety_ms: u64,
    expect: String,
    expect_message: Option<String>,
    #[serde(default)]
    canaries: Vec<String>,
    topic: Vec<TopicFile>,
    #[serde(default)]
    workload: BTreeMap<String, toml::Value>,
    #[serde(default)]
    swarm: BTreeMap<String, toml::Value>,
    #[serde(default)]
    at: Vec<ActionFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TopicFile {
    name: String,
    partitions: u32,
    replication_factor: u32,
    min_insync_replicas: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionFile {
    ms: u64,
    #[serde(rename = "do")]
    action: String,
    node: Option<String>,
    name: Option<String>,
    from: Option<String>,
    to: Option<String>,
    sides: Option<Vec<Vec<String>>>,
    side: Option<Vec<String>>,
    power_loss: Option<bool>,
    for_ms: Option<u64>,
    by_ms: Option<u64>,
}

fn selector(text: &str) -> Result<NodeSelector, String> {
    let partition = |rest: &str| -> Result<(String, u32), String> {
        let (topic, index) = rest
            .rsplit_once('-')
            .ok_or_else(|| format!("{rest:?} is not <topic>-<partition>"))?;
        let index = index
            .parse()
            .map_err(|_| format!("bad partition in {rest:?}"))?;
        Ok((topic.to_owned(), index))
    };
    if let Some(rest) = text.strip_prefix("leader:") {
        let (t, p) = partition(rest)?;
        return Ok(NodeSelector::Leader(t, p));
    }
    if let Some(rest) = text.strip_prefix("follower:") {
        let (t, p) = partition(rest)?;
        return Ok(NodeSelector::Follower(t, p, 0));
    }
    if let Some(rest) = text.strip_prefix("follower2:") {
        let (t, p) = partition(rest)?;
        return Ok(NodeSelector::Follower(t, p, 1));
    }
    if text == "rest" {
        return Ok(NodeSelector::Rest);
    }
    if let Some(name) = text.strip_prefix('$') {
        return Ok(NodeSelector::Named(name.to_owned()));
    }
    if text == "controller" {
        return Ok(NodeSelector::Controller);
    }
    text.parse()
        .map(NodeSelector::Id)
        .map_err(|_| format!("unknown node {text:?}"))
}

impl ActionFile {
    fn node(&self) -> Result<NodeSelector, String> {
        selector(self.node.as_deref().ok_or("the action needs `node`")?)
    }

    fn parse(&self) -> Result<Action, String> {
        let list = |names: &[String]| {
            names
                .iter()
                .map(|n| selector(n))
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(match self.action.as_str() {
            "partition" => {
                let sides = self.sides.as_ref().ok_or("partition needs `sides`")?;
                Action::Partition(sides.iter().map(|s| list(s)).collect::<Result<_, _>>()?)
            }
            "isolate" => Action::Isolate(self.node()?),
            "one-way" => Action::OneWay(
                selector(self.from.as_deref().ok_or("one-way needs `from`")?)?,
                selector(self.to.as_deref().ok_or("one-way needs `to`")?)?,
            ),
            "bridge" => Action::Bridge(
                self.node()?,
                list(self.side.as_deref().ok_or("bridge needs `side`")?)?,
            ),
            "heal" => Action::Heal,
            "crash" => Action::Crash(self.node()?, self.power_loss.unwrap_or(false)),
            "shutdown" => Action::Shutdown(self.node()?),
            "restart" => Action::Restart(self.node()?),
            "pause" => Action::Pause(self.node()?, self.for_ms.ok_or("pause needs `for_ms`")?),
            "wipe" => Action::Wipe(self.node()?, self.for_ms.unwrap_or(100)),
            "rot" => Action::Rot(self.node()?),
            "clock-jump" => {
                Action::ClockJump(self.node()?, self.by_ms.ok_or("clock-jump needs `by_ms`")?)
            }
            "isolate-clients" => {
                Action::IsolateClients(self.node.as_deref().map(selector).transpose()?)
            }
            "heal-clients" => Action::HealClients,
            other => return Err(format!("unknown action {other:?}")),
        })
    }
}

fn number(value: &toml::Value) -> Option<f64> {
    value
        .as_float()
        .or_else(|| value.as_integer().map(|i| i as f64))
}

/// Sets the named field of `params` from a scenario's `[workload]` or `[swarm]` table.
fn set(params: &mut ClusterSimParams, key: &str, value: &toml::Value) -> Result<(), String> {
    let x = number(value).ok_or_else(|| format!("{key} must be a number"))?;
    let n = x as u64;
    match key {
        "producers" => params.producers = n as u32,
        "consumers" => params.consumers = n as u32,
        "op_gap_us" => params.op_gap_us = n.max(1),
        "acks_all_share" => params.acks_all_share = x,
        "records_per_batch_max" => params.records_per_batch_max = (n as u32).max(1),
        "request_timeout_ms" => params.request_timeout_ms = n.max(1),
        "fetch_wait_max_ms" => params.fetch_wait_max_ms = n,
        "drop" => params.links.drop = x,
        "duplicate" => params.links.duplicate = x,
        "delay" => params.links.delay = x,
        "stall" => params.stall = x,
        "crash_every_ms" => params.crash_every_ms = n,
        "partition_every_ms" => params.partition_every_ms = n,
        "pause_every_ms" => params.pause_every_ms = n,
        "client_isolate_every_ms" => params.client_isolate_every_ms = n,
        "clock_jump_every_ms" => params.clock_jump_every_ms = n,
        "power_loss" => params.power_loss = x,
        "graceful_share" => params.graceful_share = x,
        "torn_write" => params.disk.torn_write = x,
        "sync_error" => params.disk.sync_error = x,
        _ => return Err(format!("unknown setting {key:?}")),
    }
    Ok(())
}

impl Scenario {
    /// Parses a scenario file named `name`.
    pub fn parse(name: &str, text: &str) -> Result<Scenario, String> {
        let file: File = toml::from_str(text).map_err(|e| format!("{name}: {e}"))?;
        let at = |e: String| format!("{name}: {e}");
        let nodes = file.nodes.clamp(1, 7);
        let voters = file.voters.clone().unwrap_or_else(|| {
            let count = [5, 3, 1].into_iter().find(|v| *v <= nodes).unwrap_or(1);
            (1..=count).collect()
        });
        let topics = file
            .topic
            .iter()
            .map(|t| TopicSpec {
                name: t.name.clone(),
                partitions: t.partitions,
                replication_factor: t.replication_factor,
                min_insync_replicas: t.min_insync_replicas,
            })
            .collect();
        let mut params = ClusterSimParams::quiet(file.seed, nodes, voters, topics);
        params.safety_ms = file.safety_ms;
        params.shutdown_timeout_ms = 5_000;
        for (key, value) in file.workload.iter().chain(file.swarm.iter()) {
            set(&mut params, key, value).map_err(at)?;
        }
        let mut canaries = Canaries::NONE;
        for c in &file.canaries {
            let canary = Canary::from_name(c).ok_or_else(|| at(format!("unknown canary {c:?}")))?;
            canaries = canaries.with(canary);
        }
        params.canaries = canaries;
        let timeline = file
            .at
            .iter()
            .map(|a| {
                Ok(TimedAction {
                    at_ms: a.ms,
                    action: a.parse()?,
                    name: a.name.clone(),
                })
            })
            .collect::<Result<Vec<_>, String>>()
            .map_err(at)?;
        let expect = match file.expect.as_str() {
            "pass" => Expect::Pass,
            "violation" => Expect::Violation(file.expect_message.unwrap_or_default()),
            other => {
                return Err(at(format!(
                    "expect must be pass or violation, not {other:?}"
                )))
            }
        };
        Ok(Scenario {
            name: name.to_owned(),
            description: file.description,
            params,
            timeline,
            expect,
        })
    }

    /// Runs the scenario and checks its outcome against the expectation.
    pub fn run(&self) -> Result<crate::ClusterSimReport, String> {
        let sim = crate::ClusterSim::with_timeline(self.params.clone(), self.timeline.clone());
        let report = sim.run();
        let first = report.violations.first().map(|v| v.what.clone());
        match (&self.expect, first) {
            (Expect::Pass, None) => Ok(report),
            (Expect::Pass, Some(what)) => {
                Err(format!("{}: expected to pass, but: {what}", self.name))
            }
            (Expect::Violation(text), Some(what)) if what.contains(text.as_str()) => Ok(report),
            (Expect::Violation(text), other) => Err(format!(
                "{}: expected a violation containing {text:?}, got {other:?}",
                self.name
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Every selector form and action parses; a typo is an error, not a silent default.
    #[test]
    fn scenario_files_parse_strictly() {
        let text = r#"
            description = "d"
            seed = 3
            nodes = 3
            safety_ms = 1000
            expect = "violation"
            expect_message = "lost"
            [[topic]]
            name = "t"
            partitions = 2
            replication_factor = 3
            min_insync_replicas = 2
            [workload]
            producers = 3
            [[at]]
            ms = 10
            do = "crash"
            node = "leader:t-1"
            name = "old"
            power_loss = true
            [[at]]
            ms = 20
            do = "restart"
            node = "$old"
            [[at]]
            ms = 30
            do = "partition"
            sides = [["1"], ["2", "controller"]]
        "#;
        let s = Scenario::parse("x", text).expect("parses");
        assert_eq!(s.params.voters, vec![1, 2, 3]);
        assert_eq!(s.params.producers, 3);
        assert_eq!(s.expect, Expect::Violation("lost".into()));
        assert_eq!(
            s.timeline[0].action,
            Action::Crash(NodeSelector::Leader("t".into(), 1), true)
        );
        assert_eq!(
            s.timeline[1].action,
            Action::Restart(NodeSelector::Named("old".into()))
        );
        assert!(Scenario::parse("x", &text.replace("power_loss", "powerloss")).is_err());
        assert!(Scenario::parse("x", &text.replace("\"crash\"", "\"smash\"")).is_err());
    }
}
