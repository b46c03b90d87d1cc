//! One harness run: a cluster of real `seedlog node` processes in network namespaces, the queue
//! workload against it, the seeded nemesis, then healing, final reads, the check, and a results
//! folder.
//!
//! The phases:
//! 1. Preflight (root, `ip`, `tc`), the network ([`Network::create`]), one process per node.
//! 2. The topic is created; producers and consumers start, on the client `client` names
//!    (Seedlog's own, or librdkafka in builds with the `rdkafka` feature).
//! 3. For `time`, the nemesis alternates a quiet interval and a fault (healed after the next
//!    interval). A node that exits without being killed is recorded and stays down until the
//!    final heal: a crash the harness did not cause is a finding in itself.
//! 4. The workload stops, every fault is healed, every node runs again, and the cluster is
//!    given time to elect leaders and refill its ISRs.
//! 5. Final reads drain every partition; the history is checked as a drained run.
//! 6. The results folder gets `history.jsonl`, `verdict.json`, `nemesis.jsonl`, `run.json`,
//!    `report.html` and `nodes/node-<n>.log`.
//!
//! Whatever happens (error, Ctrl-C, panic), dropping the run kills its processes and removes
//! its namespaces.

use super::nemesis::{Damage, NemesisKind, Plan, Schedule};
use super::netns::{self, Network};
use super::workload::{self, ClientKind, Recorder, WorkloadConfig, WorkloadStats};
use crate::report::FaultSpan;
use crate::{check, CheckOptions, Validity, Workload};
use anyhow::{anyhow, bail, Context, Result};
use serde_json::json;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::process::Child;

/// The Kafka port every node listens on, inside its own namespace.
pub const KAFKA_PORT: u16 = 9092;
/// The peer (replication and controller) port.
pub const PEER_PORT: u16 = 19092;
/// The environment variable that shifts a node's clock (read by `seedlog node`).
pub const CLOCK_OFFSET_ENV: &str = "SEEDLOG_CLOCK_OFFSET_MS";
/// How long a node gets to open its Kafka port after it starts.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a node gets to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the healed cluster gets to elect leaders and refill its ISRs.
const RECOVERY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the final reads may take.
const FINAL_READS_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the checker may search before answering unknown.
const CHECK_TIME_LIMIT: Duration = Duration::from_secs(120);
/// Settings every node gets: fast failure detection so a one-minute run sees several
/// failovers, and small segments so segments roll and the disk nemesis has closed ones.
const NODE_DEFAULTS: &[&str] = &[
    "broker.heartbeat.interval.ms=500",
    "broker.session.timeout.ms=4000",
    "replica.lag.time.max.ms=8000",
    "replica.fetch.backoff.ms=200",
    "message.max.bytes=16384",
    "log.segment.bytes=16384",
];

/// What a run does.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Nodes (1..=5), every one a controller voter and a broker.
    pub nodes: usize,
    /// How long the workload runs under the nemesis.
    pub time: Duration,
    /// Mean quiet interval between faults, and how long each fault lasts.
    pub interval: Duration,
    /// The fault kinds to draw from (empty: no faults).
    pub nemeses: Vec<NemesisKind>,
    /// Seeds the nemesis schedule and the workload's choices.
    pub seed: u64,
    /// The `seedlog` binary the nodes run.
    pub binary: PathBuf,
    /// Where run folders are created.
    pub results: PathBuf,
    /// Extra `key=value` settings for every node (after the harness's own).
    pub node_settings: Vec<String>,
    /// Producer processes.
    pub producers: usize,
    /// Consumer processes.
    pub consumers: usize,
    /// Partitions of the test topic.
    pub partitions: u32,
    /// Keep the nodes' data directories even when the verdict is valid.
    pub keep_data: bool,
    /// The client the producers and consumers use; setup and final reads use Seedlog's.
    pub client: ClientKind,
}

impl Default for RunOptions {
    fn default() -> RunOptions {
        RunOptions {
            nodes: 3,
            time: Duration::from_secs(60),
            interval: Duration::from_secs(5),
            nemeses: vec![
                NemesisKind::Kill,
                NemesisKind::Pause,
                NemesisKind::Partition,
            ],
            seed: 0,
            binary: PathBuf::from("seedlog"),
            results: PathBuf::from("jepsen-results"),
            node_settings: Vec::new(),
            producers: 3,
            consumers: 2,
            partitions: 4,
            keep_data: false,
            client: ClientKind::Seedlog,
        }
    }
}

/// What a run found.
#[derive(Debug)]
pub struct RunSummary {
    /// The run folder.
    pub dir: PathBuf,
    /// The checker's verdict.
    pub validity: Validity,
    /// The verdict's human summary.
    pub summary: String,
    /// Operations in the history.
    pub ops: usize,
    /// Faults injected.
    pub faults: usize,
    /// Node exits the harness did not cause (each one a finding).
    pub unexpected_exits: Vec<String>,
    /// Workload counts.
    pub stats: WorkloadStats,
}

impl RunSummary {
    /// The process exit code: 0 only for a valid verdict with no unexpected node exit.
    #[must_use]
    pub fn exit_code(&self) -> i32 {
        match self.validity {
            Validity::Valid if self.unexpected_exits.is_empty() => 0,
            Validity::Valid | Validity::Invalid => 1,
            Validity::Unknown => 2,
        }
    }
}

/// One node process and what the harness did to it.
struct NodeProc {
    id: usize,
    child: Option<Child>,
    paused: bool,
    clock_offset_ms: i64,
    data_dir: PathBuf,
    log_path: PathBuf,
}

/// The nodes of a run and the network they live in. Dropping it kills every process and
/// removes the namespaces.
struct Cluster {
    nodes: Vec<NodeProc>,
    binary: PathBuf,
    settings: Vec<Vec<String>>,
    // Declared last so it is dropped after the processes are killed.
    network: Network,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(child) = &mut node.child {
                let _ = child.start_kill();
            }
        }
        let _ = self.network.destroy();
    }
}

impl Cluster {
    fn kafka_addr(&self, node: usize) -> SocketAddr {
        SocketAddr::from((self.network.node_addr(node), KAFKA_PORT))
    }

    fn bootstrap(&self) -> Vec<String> {
        (1..=self.nodes.len())
            .map(|n| self.kafka_addr(n).to_string())
            .collect()
    }

    fn node(&mut self, id: usize) -> &mut NodeProc {
        &mut self.nodes[id - 1]
    }

    /// Starts node `id` (which must not be running) and waits for its Kafka port.
    async fn start(&mut self, id: usize) -> Result<()> {
        let binary = self.binary.clone();
        let mut command = self.network.command_in(id, &binary);
        command.arg("node");
        for setting in &self.settings[id - 1] {
            command.arg("--set").arg(setting);
        }
        let node = &self.nodes[id - 1];
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log_path)
            .with_context(|| format!("opening {}", node.log_path.display()))?;
        command
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        if node.clock_offset_ms == 0 {
            command.env_remove(CLOCK_OFFSET_ENV);
        } else {
            command.env(CLOCK_OFFSET_ENV, node.clock_offset_ms.to_string());
        }
        if std::env::var_os("RUST_LOG").is_none() {
            command.env("RUST_LOG", "info");
        }
        let mut command = tokio::process::Command::from(command);
        command.kill_on_drop(true);
        let child = command
            .spawn()
            .with_context(|| format!("starting node {id} ({})", binary.display()))?;
        let node = self.node(id);
        node.child = Some(child);
        node.paused = false;
        self.wait_listening(id).await
    }

    async fn wait_listening(&mut self, id: usize) -> Result<()> {
        let addr = self.kafka_addr(id);
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        loop {
            let probe =
                tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(addr));
            if let Ok(Ok(_)) = probe.await {
                return Ok(());
            }
            if let Some(child) = &mut self.node(id).child {
                if let Some(status) = child.try_wait()? {
                    bail!(
                        "node {id} exited while starting ({status}); see {}",
                        self.node(id).log_path.display()
                    );
                }
            }
            if tokio::time::Instant::now() > deadline {
                bail!("node {id} did not open {addr} within {START_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `kill -9`, and waits until the process is gone.
    async fn kill(&mut self, id: usize) -> Result<()> {
        if let Some(mut child) = self.node(id).child.take() {
            child.start_kill().ok();
            child.wait().await.context("waiting for a killed node")?;
        }
        self.node(id).paused = false;
        Ok(())
    }

    /// SIGTERM, then `kill -9` if it has not exited within [`STOP_TIMEOUT`].
    async fn stop(&mut self, id: usize) -> Result<()> {
        self.signal(id, nix::sys::signal::Signal::SIGCONT);
        self.signal(id, nix::sys::signal::Signal::SIGTERM);
        if let Some(child) = &mut self.node(id).child {
            if tokio::time::timeout(STOP_TIMEOUT, child.wait())
                .await
                .is_ok()
            {
                self.node(id).child = None;
            }
        }
        self.kill(id).await
    }

    fn signal(&mut self, id: usize, signal: nix::sys::signal::Signal) {
        let Some(pid) = self.node(id).child.as_ref().and_then(Child::id) else {
            return;
        };
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal);
    }

    fn pause(&mut self, id: usize) {
        if self.node(id).child.is_some() {
            self.signal(id, nix::sys::signal::Signal::SIGSTOP);
            self.node(id).paused = true;
        }
    }

    fn resume(&mut self, id: usize) {
        if self.node(id).paused {
            self.signal(id, nix::sys::signal::Signal::SIGCONT);
            self.node(id).paused = false;
        }
    }

    /// Nodes that exited although the harness did not stop them, with their status.
    fn reap_exits(&mut self) -> Vec<(usize, String)> {
        let mut exits = Vec::new();
        for node in &mut self.nodes {
            let Some(child) = &mut node.child else {
                continue;
            };
            if let Ok(Some(status)) = child.try_wait() {
                exits.push((node.id, status.to_string()));
                node.child = None;
            }
        }
        exits
    }

    /// Heals everything: resumes paused nodes, starts stopped ones (with their clocks
    /// unshifted), clears the network.
    async fn heal_all(&mut self) -> Result<()> {
        self.network.heal()?;
        self.network.clear_netem()?;
        for id in 1..=self.nodes.len() {
            self.resume(id);
        }
        for id in 1..=self.nodes.len() {
            if self.node(id).clock_offset_ms != 0 {
                self.kill(id).await?;
                self.node(id).clock_offset_ms = 0;
            }
            if self.node(id).child.is_none() {
                self.start(id).await?;
            }
        }
        Ok(())
    }
}

/// The run's nemesis log: one JSON line per action, and the spans for the report.
struct NemesisLog {
    file: File,
    spans: Vec<FaultSpan>,
}

impl NemesisLog {
    fn event(&mut self, recorder: &Recorder, action: &str, detail: serde_json::Value) {
        let line = json!({ "time_ns": recorder.now_ns(), "action": action, "detail": detail });
        let _ = writeln!(self.file, "{line}");
        say(&format!("nemesis: {action} {detail}"));
    }

    fn begin(&mut self, recorder: &Recorder, label: String) -> usize {
        self.spans.push(FaultSpan {
            start_ns: recorder.now_ns(),
            end_ns: None,
            label,
        });
        self.spans.len() - 1
    }

    fn end(&mut self, recorder: &Recorder, span: usize) {
        if let Some(s) = self.spans.get_mut(span) {
            s.end_ns = Some(recorder.now_ns());
        }
    }
}

/// A progress line for the operator, on stderr.
fn say(text: &str) {
    eprintln!("[jepsen] {text}");
}

/// What must be undone when a fault heals.
enum Undo {
    Restart(Vec<usize>),
    Resume(Vec<usize>),
    Heal,
    ClearNetem,
    ClockBack(usize),
    Nothing,
}

/// Runs the whole thing; see the module documentation.
pub async fn run(options: RunOptions) -> Result<RunSummary> {
    options.client.ensure_available()?;
    let ready = if options.nemeses.contains(&NemesisKind::Netem) {
        netns::preflight()
    } else {
        netns::preflight_without_netem()
    };
    ready.map_err(|why| anyhow!("the harness cannot run here: {why}"))?;
    if !(1..=netns::NODES_MAX).contains(&options.nodes) {
        bail!("--nodes must be in 1..={}", netns::NODES_MAX);
    }
    let binary = fs::canonicalize(&options.binary)
        .with_context(|| format!("the seedlog binary {}", options.binary.display()))?;
    let dir = run_dir(&options);
    fs::create_dir_all(dir.join("nodes"))?;
    say(&format!("run folder {}", dir.display()));

    let network = Network::create(options.nodes)?;
    let voters: Vec<String> = (1..=options.nodes)
        .map(|n| format!("{n}@{}:{PEER_PORT}", network.node_addr(n)))
        .collect();
    let voters = voters.join(",");
    let settings: Vec<Vec<String>> = (1..=options.nodes)
        .map(|n| {
            let mut s = vec![
                format!("node.id={n}"),
                format!("listeners={}:{KAFKA_PORT}", network.node_addr(n)),
                format!(
                    "log.dirs={}",
                    dir.join("data").join(format!("node-{n}")).display()
                ),
                format!("controller.quorum.voters={voters}"),
                format!("default.replication.factor={}", options.nodes.min(3)),
            ];
            s.extend(NODE_DEFAULTS.iter().map(|x| (*x).to_owned()));
            s.extend(options.node_settings.iter().cloned());
            s
        })
        .collect();
    let nodes = (1..=options.nodes)
        .map(|id| NodeProc {
            id,
            child: None,
            paused: false,
            clock_offset_ms: 0,
            data_dir: dir.join("data").join(format!("node-{id}")),
            log_path: dir.join("nodes").join(format!("node-{id}.log")),
        })
        .collect();
    let mut cluster = Cluster {
        nodes,
        binary,
        settings,
        network,
    };
    for id in 1..=options.nodes {
        cluster.start(id).await?;
    }

    let rf = options.nodes.min(3) as i16;
    let config = WorkloadConfig {
        bootstrap: cluster.bootstrap(),
        topic: "jepsen".to_owned(),
        partitions: options.partitions,
        replication_factor: rf,
        min_insync_replicas: if rf >= 3 { 2 } else { 1 },
        producers: options.producers,
        consumers: options.consumers,
        send_interval: Duration::from_millis(10),
        reassign_interval: Duration::from_secs(5),
        request_timeout: Duration::from_secs(5),
        seed: options.seed,
        client: options.client,
    };
    workload::setup(&config, Duration::from_secs(60))
        .await
        .context("creating the test topic")?;

    let recorder = Recorder::new();
    let mut log = NemesisLog {
        file: File::create(dir.join("nemesis.jsonl"))?,
        spans: Vec::new(),
    };
    log.event(
        &recorder,
        "start",
        json!({ "nodes": options.nodes, "seed": options.seed, "client": options.client.name(),
                "nemeses": options.nemeses.iter().map(|k| k.name()).collect::<Vec<_>>() }),
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let clients = {
        let (config, recorder) = (config.clone(), recorder.clone());
        tokio::spawn(async move { workload::run(&config, &recorder, stop_rx).await })
    };

    let mut unexpected_exits = Vec::new();
    let nemesis = nemesis_loop(
        &options,
        &mut cluster,
        &config,
        &recorder,
        &mut log,
        &mut unexpected_exits,
    )
    .await;
    let _ = stop_tx.send(true);
    let stats = clients.await.context("the workload task")??;
    nemesis?;

    log.event(&recorder, "heal-all", json!({}));
    cluster.heal_all().await?;
    for (id, status) in cluster.reap_exits() {
        unexpected_exits.push(format!(
            "node {id} exited by itself after the heal: {status}"
        ));
    }
    wait_recovered(&config).await;
    log.event(&recorder, "final-reads", json!({}));
    workload::final_reads(&config, &recorder, FINAL_READS_TIMEOUT).await?;
    for (id, status) in cluster.reap_exits() {
        unexpected_exits.push(format!(
            "node {id} exited by itself during the final reads: {status}"
        ));
    }
    log.event(&recorder, "end", json!({}));

    for id in 1..=options.nodes {
        cluster.stop(id).await?;
    }
    let faults = log.spans.len();
    let spans = std::mem::take(&mut log.spans);
    drop(cluster);

    let history = recorder.into_history();
    let check_options = CheckOptions {
        workload: Workload {
            transactions: false,
            subscribe: false,
            acks_all: true,
            idempotent: false,
            drained: true,
        },
        time_limit: Some(CHECK_TIME_LIMIT),
        ..CheckOptions::default()
    };
    let verdict = check(&history, &check_options);
    let summary = crate::verdict::summary(&history, &verdict);
    fs::write(dir.join("history.jsonl"), crate::format::to_jsonl(&history))?;
    fs::write(
        dir.join("verdict.json"),
        serde_json::to_string_pretty(&crate::verdict::to_json(&history, &verdict))?,
    )?;
    fs::write(
        dir.join("report.html"),
        crate::report::html_with_faults(&history, &verdict, &spans),
    )?;
    let run = json!({
        "seed": options.seed,
        "nodes": options.nodes,
        "client": options.client.name(),
        "time_s": options.time.as_secs_f64(),
        "interval_s": options.interval.as_secs_f64(),
        "nemeses": options.nemeses.iter().map(|k| k.name()).collect::<Vec<_>>(),
        "node_settings": options.node_settings,
        "validity": verdict.validity.name(),
        "ops": history.len(),
        "faults": faults,
        "unexpected_exits": unexpected_exits,
        "workload": stats,
    });
    fs::write(dir.join("run.json"), serde_json::to_string_pretty(&run)?)?;
    if verdict.validity == Validity::Valid && unexpected_exits.is_empty() && !options.keep_data {
        let _ = fs::remove_dir_all(dir.join("data"));
    }
    Ok(RunSummary {
        dir,
        validity: verdict.validity,
        summary,
        ops: history.len(),
        faults,
        unexpected_exits,
        stats,
    })
}

/// A fresh folder under `options.results` named after the time and seed.
fn run_dir(options: &RunOptions) -> PathBuf {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut dir = options.results.join(format!("{secs}-seed{}", options.seed));
    let mut n = 1;
    while dir.exists() {
        n += 1;
        dir = options
            .results
            .join(format!("{secs}-seed{}-{n}", options.seed));
    }
    dir
}

/// Quiet interval, fault, interval, heal; until `options.time` has passed.
async fn nemesis_loop(
    options: &RunOptions,
    cluster: &mut Cluster,
    config: &WorkloadConfig,
    recorder: &Recorder,
    log: &mut NemesisLog,
    unexpected_exits: &mut Vec<String>,
) -> Result<()> {
    let mut schedule = Schedule::new(options.seed, &options.nemeses);
    let end = tokio::time::Instant::now() + options.time;
    let nodes = options.nodes;
    loop {
        if !sleep_watching(
            cluster,
            recorder,
            log,
            unexpected_exits,
            options.interval,
            end,
        )
        .await
        {
            return Ok(());
        }
        let Some(plan) = schedule.next_plan() else {
            continue;
        };
        let leader = leader_of_most(config).await;
        let span_label;
        let undo = match &plan {
            Plan::Kill(target) => {
                let targets = schedule.resolve(*target, nodes, leader);
                span_label = format!("kill -9 {targets:?}");
                for id in &targets {
                    cluster.kill(*id).await?;
                }
                Undo::Restart(targets)
            }
            Plan::Pause(target) => {
                let targets = schedule.resolve(*target, nodes, leader);
                span_label = format!("pause {targets:?}");
                for id in &targets {
                    cluster.pause(*id);
                }
                Undo::Resume(targets)
            }
            Plan::Partition(shape) => {
                let (pairs, what) = schedule.cut(*shape, nodes, leader);
                span_label = format!("partition {what}");
                cluster.network.partition(&pairs)?;
                Undo::Heal
            }
            Plan::Netem(spec) => {
                span_label = plan.to_string();
                cluster.network.set_netem(None, *spec)?;
                Undo::ClearNetem
            }
            Plan::Clock(ms) => {
                let id = schedule.one(nodes);
                span_label = format!("clock {ms:+} ms on {id}");
                cluster.kill(id).await?;
                cluster.node(id).clock_offset_ms = *ms;
                cluster.start(id).await?;
                Undo::ClockBack(id)
            }
            Plan::Disk(damage) => {
                let id = schedule.one(nodes);
                cluster.kill(id).await?;
                let what = damage_segment(&cluster.node(id).data_dir, *damage, &mut schedule)?;
                span_label = format!("disk {id}: {what}");
                cluster.start(id).await?;
                Undo::Nothing
            }
        };
        log.event(
            recorder,
            "fault",
            json!({ "plan": plan.to_string(), "applied": span_label }),
        );
        let span = log.begin(recorder, span_label);
        let more = sleep_watching(
            cluster,
            recorder,
            log,
            unexpected_exits,
            options.interval,
            end,
        )
        .await;
        match undo {
            Undo::Restart(ids) => {
                for id in ids {
                    if cluster.node(id).child.is_none() {
                        cluster.start(id).await?;
                    }
                }
            }
            Undo::Resume(ids) => ids.into_iter().for_each(|id| cluster.resume(id)),
            Undo::Heal => cluster.network.heal()?,
            Undo::ClearNetem => cluster.network.clear_netem()?,
            Undo::ClockBack(id) => {
                cluster.kill(id).await?;
                cluster.node(id).clock_offset_ms = 0;
                cluster.start(id).await?;
            }
            Undo::Nothing => {}
        }
        log.end(recorder, span);
        log.event(recorder, "heal", json!({}));
        if !more {
            return Ok(());
        }
    }
}

/// Sleeps `interval` (or until `end`), restarting nodes that exited by themselves and
/// recording each such exit. False once `end` has passed.
async fn sleep_watching(
    cluster: &mut Cluster,
    recorder: &Recorder,
    log: &mut NemesisLog,
    unexpected_exits: &mut Vec<String>,
    interval: Duration,
    end: tokio::time::Instant,
) -> bool {
    let until = (tokio::time::Instant::now() + interval).min(end);
    while tokio::time::Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(200)).await;
        for (id, status) in cluster.reap_exits() {
            let what = format!("node {id} exited by itself: {status}");
            log.event(
                recorder,
                "unexpected-exit",
                json!({ "node": id, "status": status }),
            );
            unexpected_exits.push(what);
        }
    }
    tokio::time::Instant::now() < end
}

/// The test topic as the cluster describes it now, if a node answers within a few seconds.
async fn topic_metadata(config: &WorkloadConfig) -> Option<seedlog_net::client::TopicInfo> {
    let client_config = seedlog_net::ClientConfig {
        request_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(1),
        ..seedlog_net::ClientConfig::default()
    };
    let query = async {
        let client = seedlog_net::Client::connect(&config.bootstrap, client_config)
            .await
            .ok()?;
        let mut metadata = client
            .refresh_metadata(Some(&[config.topic.as_str()]))
            .await
            .ok()?;
        metadata.topics.remove(&config.topic)
    };
    tokio::time::timeout(Duration::from_secs(4), query)
        .await
        .ok()
        .flatten()
}

/// The node leading the most partitions of the test topic, if the metadata says.
async fn leader_of_most(config: &WorkloadConfig) -> Option<usize> {
    let topic = topic_metadata(config).await?;
    let mut counts = std::collections::BTreeMap::new();
    for p in &topic.partitions {
        if p.leader >= 1 {
            *counts.entry(p.leader).or_insert(0usize) += 1;
        }
    }
    let (leader, _) = counts.into_iter().max_by_key(|(id, n)| (*n, -id))?;
    usize::try_from(leader).ok()
}

/// Waits (up to [`RECOVERY_TIMEOUT`]) until every partition has a leader and every replica in
/// its ISR; past it the final reads go ahead and retry on their own.
async fn wait_recovered(config: &WorkloadConfig) {
    let deadline = tokio::time::Instant::now() + RECOVERY_TIMEOUT;
    while tokio::time::Instant::now() < deadline {
        let healthy = topic_metadata(config).await.is_some_and(|topic| {
            topic.partitions.len() == config.partitions as usize
                && topic
                    .partitions
                    .iter()
                    .all(|p| p.leader >= 1 && p.isr.len() >= config.replication_factor as usize)
        });
        if healthy {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    say("the cluster did not refill every ISR in time; reading anyway");
}

/// Damages one closed (not the newest) segment of a stopped node and says what it did, or
/// that there was none to damage yet.
fn damage_segment(data_dir: &Path, damage: Damage, schedule: &mut Schedule) -> Result<String> {
    let mut closed = Vec::new();
    for entry in fs::read_dir(data_dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        let mut segments: Vec<PathBuf> = fs::read_dir(&path)?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .collect();
        segments.sort();
        segments.pop();
        closed.extend(segments);
    }
    closed.sort();
    if closed.is_empty() {
        return Ok("no closed segment yet; nothing damaged".to_owned());
    }
    let file = &closed[schedule.one(closed.len()) - 1];
    let len = fs::metadata(file)?.len();
    let shown = file
        .strip_prefix(data_dir)
        .unwrap_or(file)
        .display()
        .to_string();
    match damage {
        Damage::Truncate => {
            let keep = len / 2;
            OpenOptions::new().write(true).open(file)?.set_len(keep)?;
            Ok(format!("{shown} truncated from {len} to {keep} bytes"))
        }
        Damage::FlipBytes => {
            let mut bytes = fs::read(file)?;
            let at = (len / 2) as usize;
            let end = (at + 16).min(bytes.len());
            for b in &mut bytes[at..end] {
                *b ^= 0xff;
            }
            fs::write(file, &bytes)?;
            Ok(format!("{shown}: bytes {at}..{end} flipped"))
        }
    }
}
