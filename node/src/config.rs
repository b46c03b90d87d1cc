//! The node's configuration: a TOML file with every key defaulted, plus `--set key=value`.
//!
//! Keys use Kafka's broker names (`log.dirs`, `num.partitions`, `auto.create.topics.enable`,
//! `controller.quorum.voters`, `replica.lag.time.max.ms`), so a Kafka operator can read a
//! Seedlog config. In TOML a dotted key such as `log.dirs = "/data"` is a nested table; both
//! that and the quoted form `"log.dirs" = ...` are accepted, as is `[log] dirs = ...`. Unknown
//! keys are an error, not silently ignored: a misspelt `log.flush.polcy` must not leave the
//! broker running with a policy nobody chose.
//!
//! # Clusters
//!
//! With `controller.quorum.voters` empty (the default) the node is a single broker that is its
//! own controller and opens no peer listener. A cluster lists its controller voters with their
//! peer addresses in Kafka's spelling, `controller.quorum.voters = "1@10.0.0.1:19092,2@..."`,
//! identically on every node. Nodes that are brokers but not voters are listed, again on every
//! node, in `cluster.nodes` (same `id@host:port` form), so that every node knows every other
//! node's peer address. A node binds its peer listener on its own entry's address unless
//! `peer.listener` names another one (e.g. `0.0.0.0:19092` behind an advertised name).
//!
//! Kafka clients never see peer addresses: they are told each broker's `advertised.listeners`
//! (or `listeners`), which the brokers register with the controller.

use anyhow::{anyhow, bail, Context, Result};
use seedlog_core::broker::{ApiRange, BrokerConfig, FlushPolicy, TopicConfig};
use seedlog_core::canary::{Canaries, Canary};
use seedlog_core::cluster::{Endpoint, NodeConfig};
use seedlog_core::constants::BATCH_BYTES_MAX_LIMIT;
use seedlog_core::raft::NodeId;
use seedlog_core::Duration;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

/// One configuration key: its name, default and what it does.
pub struct KeySpec {
    /// The key.
    pub name: &'static str,
    /// The default, as it would be written in the file.
    pub default: &'static str,
    /// What it does.
    pub doc: &'static str,
}

/// Every key, with its default. `seedlog node --help` prints this table.
pub const KEYS: &[KeySpec] = &[
    KeySpec { name: "node.id", default: "1", doc: "This node's id: its broker id in Metadata responses and its id among the controller voters." },
    KeySpec { name: "listeners", default: "127.0.0.1:9092", doc: "host:port the Kafka listener binds." },
    KeySpec { name: "advertised.listeners", default: "", doc: "host:port clients are told to connect to (default: listeners; 127.0.0.1 if bound to 0.0.0.0)." },
    KeySpec { name: "log.dirs", default: "./seedlog-data", doc: "Data directory (one directory; created if missing)." },
    KeySpec { name: "cluster.id", default: "seedlog-cluster", doc: "Cluster id reported to clients; peers of another cluster are refused." },
    KeySpec { name: "controller.quorum.voters", default: "", doc: "The controller voters with their peer addresses, id@host:port,... (the same on every node). Empty: a single node that is its own controller." },
    KeySpec { name: "cluster.nodes", default: "", doc: "Nodes that are brokers but not voters, id@host:port,... with their peer addresses (the same on every node)." },
    KeySpec { name: "peer.listener", default: "", doc: "host:port the peer listener binds (default: this node's address in controller.quorum.voters or cluster.nodes)." },
    KeySpec { name: "peer.queued.max.messages", default: "1024", doc: "Messages queued for one peer while it is slow or unreachable; beyond this new ones are dropped (the protocols retry)." },
    KeySpec { name: "peer.reconnect.backoff.ms", default: "50", doc: "First pause before reconnecting to a peer; doubles per failure." },
    KeySpec { name: "peer.reconnect.backoff.max.ms", default: "1000", doc: "Longest pause between reconnection attempts." },
    KeySpec { name: "broker.heartbeat.interval.ms", default: "2000", doc: "How often a broker heartbeats the active controller." },
    KeySpec { name: "broker.session.timeout.ms", default: "9000", doc: "The controller fences a broker whose heartbeats stopped this long, moving its leaderships away." },
    KeySpec { name: "replica.lag.time.max.ms", default: "30000", doc: "A follower not caught up for this long leaves the ISR." },
    KeySpec { name: "replica.fetch.wait.max.ms", default: "500", doc: "How long a leader holds a follower's fetch when there is no new data." },
    KeySpec { name: "replica.fetch.backoff.ms", default: "1000", doc: "Pause after a failed replica fetch." },
    KeySpec { name: "controller.quorum.election.timeout.ms", default: "1000", doc: "Shortest controller election timeout; each is drawn between this and twice this." },
    KeySpec { name: "controller.quorum.heartbeat.interval.ms", default: "500", doc: "How often the controller quorum leader heartbeats its voters (below the election timeout)." },
    KeySpec { name: "auto.create.topics.enable", default: "false", doc: "Create unknown topics named in Metadata requests." },
    KeySpec { name: "num.partitions", default: "1", doc: "Partitions of a topic created without a count." },
    KeySpec { name: "default.replication.factor", default: "1", doc: "Replication factor of a topic created without one." },
    KeySpec { name: "log.flush.policy", default: "group-commit", doc: "group-commit: fsync before acknowledging acks=1/all and before consumers see data, one fsync shared by concurrent requests. none: acknowledge after the write; fsync only at shutdown." },
    KeySpec { name: "message.max.bytes", default: "1048588", doc: "Largest record batch a topic accepts (topic: max.message.bytes)." },
    KeySpec { name: "log.segment.bytes", default: "1073741824", doc: "Segment size before rolling (topic: segment.bytes)." },
    KeySpec { name: "log.roll.ms", default: "604800000", doc: "Segment age before rolling (topic: segment.ms)." },
    KeySpec { name: "log.retention.ms", default: "604800000", doc: "Delete segments older than this; -1 keeps them (topic: retention.ms)." },
    KeySpec { name: "log.retention.bytes", default: "-1", doc: "Delete old segments while a partition is larger; -1 for no limit (topic: retention.bytes)." },
    KeySpec { name: "log.retention.check.interval.ms", default: "300000", doc: "How often retention is applied." },
    KeySpec { name: "log.index.interval.bytes", default: "4096", doc: "Bytes between sparse index entries (topic: index.interval.bytes)." },
    KeySpec { name: "min.insync.replicas", default: "1", doc: "Replicas that must have an acks=all write (topic: min.insync.replicas)." },
    KeySpec { name: "canaries", default: "", doc: "Planted bugs to switch on, comma separated, to show that a test catches them; only a build with the `canary` feature has them." },
    KeySpec { name: "socket.request.max.bytes", default: "104857600", doc: "Largest request frame accepted, on the client and the peer listener; a larger one closes the connection." },
    KeySpec { name: "queued.max.requests.per.connection", default: "512", doc: "Requests of one connection in flight before the broker stops reading it (backpressure)." },
];

/// The validated configuration of one `seedlog node` process.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Address the Kafka listener binds.
    pub listen: SocketAddr,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Largest request frame (client and peer listeners).
    pub request_bytes_max: u32,
    /// Per-connection in-flight requests before reading pauses.
    pub connection_requests_max: u32,
    /// The broker state machine's configuration. Its advertised port may be 0 until the
    /// listener is bound (`listeners=127.0.0.1:0`).
    pub broker: BrokerConfig,
    /// This node's place in the cluster.
    pub cluster: ClusterConfig,
}

/// Who the node is among its peers, where they are, and the cluster timings.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// `node.id`.
    pub node_id: NodeId,
    /// The controller voters (`[node_id]` for a single node).
    pub voters: Vec<NodeId>,
    /// Where the peer listener binds; `None` for a single node, which has no peers.
    pub peer_listen: Option<SocketAddr>,
    /// Every other node's peer address (`host:port`), by id.
    pub peers: BTreeMap<NodeId, String>,
    /// `peer.queued.max.messages`.
    pub peer_queue_messages_max: u32,
    /// `peer.reconnect.backoff.ms`.
    pub peer_reconnect_backoff: std::time::Duration,
    /// `peer.reconnect.backoff.max.ms`.
    pub peer_reconnect_backoff_max: std::time::Duration,
    /// `broker.heartbeat.interval.ms`.
    pub heartbeat_interval_ms: u64,
    /// `broker.session.timeout.ms`.
    pub session_timeout_ms: u64,
    /// `replica.lag.time.max.ms`.
    pub replica_lag_time_max_ms: u64,
    /// `replica.fetch.wait.max.ms`.
    pub replica_fetch_wait_max_ms: u64,
    /// `replica.fetch.backoff.ms`.
    pub replica_fetch_backoff_ms: u64,
    /// `controller.quorum.election.timeout.ms`.
    pub election_timeout_ms: u64,
    /// `controller.quorum.heartbeat.interval.ms`.
    pub quorum_heartbeat_interval_ms: u64,
    /// `canaries`: planted bugs (none outside a `canary` build).
    pub canaries: Canaries,
}

impl ServerConfig {
    /// The state machine's configuration, advertising `broker`'s host and port to clients.
    pub fn node_config(&self) -> NodeConfig {
        let c = &self.cluster;
        let endpoint = Endpoint {
            host: self.broker.advertised_host.clone(),
            port: u16::try_from(self.broker.advertised_port).unwrap_or(0),
        };
        let mut node = NodeConfig::new(c.node_id, c.voters.clone(), endpoint, self.broker.clone());
        node.heartbeat_interval = Duration::from_millis(c.heartbeat_interval_ms);
        node.session_timeout = Duration::from_millis(c.session_timeout_ms);
        node.replica_lag_time_max = Duration::from_millis(c.replica_lag_time_max_ms);
        node.replica_fetch_wait_max = Duration::from_millis(c.replica_fetch_wait_max_ms);
        node.replica_fetch_backoff = Duration::from_millis(c.replica_fetch_backoff_ms);
        node.raft_timing = (
            Duration::from_millis(c.election_timeout_ms),
            Duration::from_millis(c.election_timeout_ms * 2),
            Duration::from_millis(c.quorum_heartbeat_interval_ms),
        );
        node.canaries = c.canaries;
        node
    }
}

/// Reads `path` (if given), applies `overrides` (`key=value`), and validates.
pub fn load(path: Option<&std::path::Path>, overrides: &[String]) -> Result<ServerConfig> {
    let mut values: BTreeMap<String, toml::Value> = BTreeMap::new();
    if let Some(path) = path {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        let table: toml::Table = text
            .parse()
            .with_context(|| format!("parsing config file {}", path.display()))?;
        flatten("", table, &mut values);
    }
    for item in overrides {
        let (key, raw) = item
            .split_once('=')
            .ok_or_else(|| anyhow!("--set takes key=value, got {item:?}"))?;
        values.insert(key.trim().to_owned(), parse_value(raw.trim()));
    }
    build(&values)
}

/// Joins nested tables into dotted keys.
fn flatten(prefix: &str, table: toml::Table, out: &mut BTreeMap<String, toml::Value>) {
    for (key, value) in table {
        let name = if prefix.is_empty() {
            key
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            toml::Value::Table(inner) => flatten(&name, inner, out),
            other => {
                out.insert(name, other);
            }
        }
    }
}

/// A `--set` value: a TOML scalar if it parses as one, else a bare string.
fn parse_value(raw: &str) -> toml::Value {
    format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_owned()))
}

/// The value of `key` as a string (the file's, or the default).
fn get(values: &BTreeMap<String, toml::Value>, key: &str) -> String {
    match values.get(key) {
        Some(toml::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => KEYS
            .iter()
            .find(|k| k.name == key)
            .map(|k| k.default.to_owned())
            .unwrap_or_default(),
    }
}

fn num<T: std::str::FromStr>(values: &BTreeMap<String, toml::Value>, key: &str) -> Result<T> {
    let raw = get(values, key);
    raw.trim()
        .parse()
        .map_err(|_| anyhow!("{key} must be a number, not {raw:?}"))
}

/// A duration in milliseconds that must be positive.
fn millis(values: &BTreeMap<String, toml::Value>, key: &str) -> Result<u64> {
    let ms: u64 = num(values, key)?;
    if ms == 0 {
        bail!("{key} must be at least 1");
    }
    Ok(ms)
}

fn build(values: &BTreeMap<String, toml::Value>) -> Result<ServerConfig> {
    for key in values.keys() {
        if !KEYS.iter().any(|k| k.name == key) {
            bail!("unknown config key {key:?} (see `seedlog node --help`)");
        }
    }
    let listen: SocketAddr = get(values, "listeners")
        .parse()
        .map_err(|_| anyhow!("listeners must be host:port with an IP host, e.g. 127.0.0.1:9092"))?;
    let advertised = get(values, "advertised.listeners");
    let (host, port) = if advertised.is_empty() {
        let host = if listen.ip().is_unspecified() {
            "127.0.0.1".to_owned()
        } else {
            listen.ip().to_string()
        };
        (host, i32::from(listen.port()))
    } else {
        let (host, port) = advertised
            .rsplit_once(':')
            .ok_or_else(|| anyhow!("advertised.listeners must be host:port"))?;
        let port: u16 = port
            .parse()
            .map_err(|_| anyhow!("bad port in advertised.listeners"))?;
        (host.to_owned(), i32::from(port))
    };
    let flush_policy = FlushPolicy::parse(&get(values, "log.flush.policy"))
        .ok_or_else(|| anyhow!("log.flush.policy must be group-commit or none"))?;
    let topic_defaults = topic_defaults(values)?;
    let num_partitions: i32 = num(values, "num.partitions")?;
    if num_partitions < 1 {
        bail!("num.partitions must be at least 1");
    }
    let default_replication_factor: i16 = num(values, "default.replication.factor")?;
    if default_replication_factor < 1 {
        bail!("default.replication.factor must be at least 1");
    }
    let data_dir = PathBuf::from(get(values, "log.dirs"));
    let request_bytes_max: u32 = num(values, "socket.request.max.bytes")?;
    let connection_requests_max: u32 = num(values, "queued.max.requests.per.connection")?;
    let limit = seedlog_core::constants::CONNECTION_REQUESTS_IN_FLIGHT_MAX as u32;
    if connection_requests_max == 0 || connection_requests_max > limit {
        bail!("queued.max.requests.per.connection must be in 1..={limit}");
    }
    let cluster = cluster(values)?;
    let mut driver_settings = vec![
        ("listeners".into(), listen.to_string()),
        ("log.dirs".into(), data_dir.display().to_string()),
        (
            "socket.request.max.bytes".into(),
            request_bytes_max.to_string(),
        ),
        (
            "queued.max.requests.per.connection".into(),
            connection_requests_max.to_string(),
        ),
    ];
    for key in CLUSTER_KEYS {
        driver_settings.push(((*key).to_owned(), get(values, key)));
    }
    // Settings the driver does not expose keep the state machine's defaults (the update is
    // needless only while there are none).
    #[allow(clippy::needless_update)]
    let broker = BrokerConfig {
        node_id: i32::try_from(cluster.node_id).expect("node.id was checked to fit an i32"),
        advertised_host: host,
        advertised_port: port,
        cluster_id: get(values, "cluster.id"),
        auto_create_topics_enable: num(values, "auto.create.topics.enable")?,
        num_partitions,
        default_replication_factor,
        flush_policy,
        topic_defaults,
        retention_check_interval_ms: num(values, "log.retention.check.interval.ms")?,
        api_versions: seedlog_net::SUPPORTED_APIS
            .iter()
            .map(|api| ApiRange {
                api_key: api.api_key as i16,
                min_version: api.min_version,
                max_version: api.max_version,
            })
            .collect(),
        driver_settings,
        ..BrokerConfig::default()
    };
    Ok(ServerConfig {
        listen,
        data_dir,
        request_bytes_max,
        connection_requests_max,
        broker,
        cluster,
    })
}

/// The cluster keys DescribeConfigs shows beside the broker's own.
const CLUSTER_KEYS: &[&str] = &[
    "controller.quorum.voters",
    "cluster.nodes",
    "peer.listener",
    "broker.heartbeat.interval.ms",
    "broker.session.timeout.ms",
    "replica.lag.time.max.ms",
    "replica.fetch.wait.max.ms",
    "replica.fetch.backoff.ms",
    "controller.quorum.election.timeout.ms",
];

/// Parses `id@host:port,...`; ids must be distinct and fit Kafka's `int32` broker id.
pub fn parse_node_list(key: &str, raw: &str) -> Result<BTreeMap<NodeId, String>> {
    let mut nodes = BTreeMap::new();
    for item in raw.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (id, address) = item
            .split_once('@')
            .ok_or_else(|| anyhow!("{key}: {item:?} is not id@host:port"))?;
        let id: NodeId = id
            .trim()
            .parse()
            .map_err(|_| anyhow!("{key}: {id:?} is not a node id"))?;
        if i32::try_from(id).is_err() {
            bail!("{key}: node id {id} does not fit a Kafka broker id");
        }
        let (host, port) = address
            .rsplit_once(':')
            .ok_or_else(|| anyhow!("{key}: {address:?} is not host:port"))?;
        if host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
            bail!("{key}: {address:?} is not host:port with a non-zero port");
        }
        if nodes.insert(id, address.to_owned()).is_some() {
            bail!("{key}: node {id} is listed twice");
        }
    }
    Ok(nodes)
}

fn cluster(values: &BTreeMap<String, toml::Value>) -> Result<ClusterConfig> {
    let node_id: NodeId = num(values, "node.id")?;
    if i32::try_from(node_id).is_err() {
        bail!("node.id must be in 0..={}", i32::MAX);
    }
    let voters = parse_node_list(
        "controller.quorum.voters",
        &get(values, "controller.quorum.voters"),
    )?;
    let others = parse_node_list("cluster.nodes", &get(values, "cluster.nodes"))?;
    if voters.is_empty() && !others.is_empty() {
        bail!("cluster.nodes needs controller.quorum.voters: a cluster needs a controller quorum");
    }
    let mut addresses = voters.clone();
    for (id, address) in others {
        if addresses.insert(id, address).is_some() {
            bail!("node {id} is in both controller.quorum.voters and cluster.nodes");
        }
    }
    let peer_listener = get(values, "peer.listener");
    let peer_listen = if voters.is_empty() {
        if !peer_listener.is_empty() {
            bail!("peer.listener needs controller.quorum.voters");
        }
        None
    } else {
        let own = addresses.remove(&node_id).ok_or_else(|| {
            anyhow!("node.id {node_id} is in neither controller.quorum.voters nor cluster.nodes, so no peer could reach it")
        })?;
        let bind = if peer_listener.is_empty() {
            own
        } else {
            peer_listener
        };
        let bind: SocketAddr = bind.parse().map_err(|_| {
            anyhow!(
                "the peer listener {bind:?} must be host:port with an IP host (set peer.listener)"
            )
        })?;
        Some(bind)
    };
    let election_timeout_ms = millis(values, "controller.quorum.election.timeout.ms")?;
    let quorum_heartbeat_interval_ms = millis(values, "controller.quorum.heartbeat.interval.ms")?;
    if quorum_heartbeat_interval_ms >= election_timeout_ms {
        bail!("controller.quorum.heartbeat.interval.ms must be below controller.quorum.election.timeout.ms");
    }
    let heartbeat_interval_ms = millis(values, "broker.heartbeat.interval.ms")?;
    let session_timeout_ms = millis(values, "broker.session.timeout.ms")?;
    if heartbeat_interval_ms >= session_timeout_ms {
        bail!("broker.heartbeat.interval.ms must be below broker.session.timeout.ms");
    }
    let backoff = millis(values, "peer.reconnect.backoff.ms")?;
    let backoff_max = millis(values, "peer.reconnect.backoff.max.ms")?;
    if backoff > backoff_max {
        bail!("peer.reconnect.backoff.ms must not exceed peer.reconnect.backoff.max.ms");
    }
    let peer_queue_messages_max: u32 = num(values, "peer.queued.max.messages")?;
    if peer_queue_messages_max == 0 {
        bail!("peer.queued.max.messages must be at least 1");
    }
    Ok(ClusterConfig {
        node_id,
        voters: if voters.is_empty() {
            vec![node_id]
        } else {
            voters.keys().copied().collect()
        },
        peer_listen,
        peers: addresses,
        peer_queue_messages_max,
        peer_reconnect_backoff: std::time::Duration::from_millis(backoff),
        peer_reconnect_backoff_max: std::time::Duration::from_millis(backoff_max),
        heartbeat_interval_ms,
        session_timeout_ms,
        replica_lag_time_max_ms: millis(values, "replica.lag.time.max.ms")?,
        replica_fetch_wait_max_ms: millis(values, "replica.fetch.wait.max.ms")?,
        replica_fetch_backoff_ms: millis(values, "replica.fetch.backoff.ms")?,
        election_timeout_ms,
        quorum_heartbeat_interval_ms,
        canaries: canaries(&get(values, "canaries"))?,
    })
}

/// The `canaries` list; a build without the `canary` feature refuses any.
fn canaries(list: &str) -> Result<Canaries> {
    let mut canaries = Canaries::NONE;
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let canary = Canary::from_name(name).ok_or_else(|| {
            let known: Vec<&str> = Canary::ALL.iter().map(|c| c.name()).collect();
            anyhow!("unknown canary {name:?}; known: {}", known.join(", "))
        })?;
        if !cfg!(feature = "canary") {
            bail!(
                "canaries needs a build with the `canary` feature (cargo build --features canary)"
            );
        }
        canaries = canaries.with(canary);
    }
    Ok(canaries)
}

/// Keys `seedlog dev` sets per node, so `--set` may not override them for all nodes at once.
pub const DEV_PER_NODE_KEYS: &[&str] = &[
    "node.id",
    "listeners",
    "advertised.listeners",
    "log.dirs",
    "controller.quorum.voters",
    "cluster.nodes",
    "peer.listener",
];

/// The configurations of `seedlog dev`: `nodes` combined controller-and-broker nodes on
/// 127.0.0.1, node `n` (from 1) with the Kafka port `port + n - 1`, the peer port
/// `peer_port + n - 1` and its data under `dir/node-<n>`; every node is a controller voter.
/// Topics default to replication factor `min(3, nodes)`, since the point is to try
/// replication, and brokers heartbeat every 500 ms. `overrides` apply to every node.
pub fn dev(
    nodes: u16,
    dir: &std::path::Path,
    port: u16,
    peer_port: u16,
    overrides: &[String],
) -> Result<Vec<ServerConfig>> {
    if !(1..=7).contains(&nodes) {
        bail!("--nodes must be in 1..=7");
    }
    let last = |base: u16, what: &str| {
        base.checked_add(nodes - 1)
            .filter(|_| base != 0)
            .ok_or_else(|| anyhow!("{what} {base} leaves no room for {nodes} nodes"))
    };
    let (last_port, last_peer) = (last(port, "--port")?, last(peer_port, "--peer-port")?);
    if port <= last_peer && peer_port <= last_port {
        bail!(
            "the Kafka ports {port}..={last_port} overlap the peer ports {peer_port}..={last_peer}"
        );
    }
    for item in overrides {
        let key = item
            .split_once('=')
            .map_or(item.as_str(), |(k, _)| k)
            .trim();
        if DEV_PER_NODE_KEYS.contains(&key) {
            bail!("seedlog dev sets {key} per node; it cannot be overridden for all of them");
        }
    }
    let voters: Vec<String> = (1..=nodes)
        .map(|n| format!("{n}@127.0.0.1:{}", peer_port + n - 1))
        .collect();
    let voters = voters.join(",");
    (1..=nodes)
        .map(|n| {
            let mut sets = vec![
                format!("node.id={n}"),
                format!("listeners=127.0.0.1:{}", port + n - 1),
                format!("log.dirs={}", dir.join(format!("node-{n}")).display()),
                format!("controller.quorum.voters={voters}"),
                format!("default.replication.factor={}", nodes.min(3)),
                // Metadata reaches the brokers with the heartbeat answers: a quarter of Kafka's
                // interval lets a new topic show up everywhere within half a second.
                "broker.heartbeat.interval.ms=500".to_owned(),
            ];
            sets.extend(overrides.iter().cloned());
            load(None, &sets).with_context(|| format!("node {n}"))
        })
        .collect()
}

/// Topic defaults from the broker-level keys, validated as a topic config would be.
fn topic_defaults(values: &BTreeMap<String, toml::Value>) -> Result<TopicConfig> {
    let pairs = [
        ("max.message.bytes", "message.max.bytes"),
        ("segment.bytes", "log.segment.bytes"),
        ("segment.ms", "log.roll.ms"),
        ("retention.ms", "log.retention.ms"),
        ("retention.bytes", "log.retention.bytes"),
        ("index.interval.bytes", "log.index.interval.bytes"),
        ("min.insync.replicas", "min.insync.replicas"),
    ];
    let overrides: BTreeMap<String, String> = pairs
        .iter()
        .map(|(topic_key, broker_key)| ((*topic_key).to_owned(), get(values, broker_key)))
        .collect();
    let config = TopicConfig::with_overrides(&TopicConfig::default(), &overrides)
        .map_err(|e| anyhow!("invalid broker default: {e}"))?;
    debug_assert!(config.max_message_bytes <= BATCH_BYTES_MAX_LIMIT);
    Ok(config)
}

/// The `--help` text listing every key.
pub fn help_text() -> String {
    let mut out = String::from(
        "Configuration keys (TOML file via --config, or --set key=value; Kafka's names):\n\n",
    );
    for key in KEYS {
        // Written as it would appear in the TOML file: strings quoted.
        let bare = key.default.parse::<i64>().is_ok() || matches!(key.default, "true" | "false");
        let default = if bare {
            key.default.to_owned()
        } else {
            format!("{:?}", key.default)
        };
        out.push_str(&format!(
            "  {} = {}\n      {}\n",
            key.name, default, key.doc
        ));
    }
    out.push_str("\nWith no arguments: one node on 127.0.0.1:9092, data under ./seedlog-data.\n");
    out.push_str(
        "A cluster: the same controller.quorum.voters (and cluster.nodes) on every node, e.g.\n  \
         seedlog node --set node.id=2 --set listeners=127.0.0.1:9093 --set log.dirs=./data-2 \\\n    \
         --set controller.quorum.voters=1@127.0.0.1:19092,2@127.0.0.1:19093,3@127.0.0.1:19094\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every key has a default that validates, so `seedlog node` with no config starts.
    #[test]
    fn defaults_are_valid() {
        let config = load(None, &[]).expect("defaults validate");
        assert_eq!(config.listen.to_string(), "127.0.0.1:9092");
        assert_eq!(config.data_dir, PathBuf::from("./seedlog-data"));
        assert_eq!(config.broker.flush_policy, FlushPolicy::GroupCommit);
        assert!(!config.broker.auto_create_topics_enable);
    }

    /// Nested tables, quoted dotted keys and --set all reach the same key, and a misspelt key
    /// is refused, because a silently ignored setting is worse than a failed start.
    #[test]
    fn file_forms_overrides_and_unknown_keys() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("node.toml");
        std::fs::write(
            &path,
            "\"node.id\" = 7\n[log]\ndirs = \"/tmp/x\"\nflush.policy = \"none\"\n",
        )
        .expect("write");
        let config = load(
            Some(&path),
            &[
                "auto.create.topics.enable=true".into(),
                "num.partitions=3".into(),
            ],
        )
        .expect("valid");
        assert_eq!(config.broker.node_id, 7);
        assert_eq!(config.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(config.broker.flush_policy, FlushPolicy::None);
        assert!(config.broker.auto_create_topics_enable);
        assert_eq!(config.broker.num_partitions, 3);
        assert!(load(None, &["log.flush.polcy=none".into()]).is_err());
        assert!(load(None, &["log.flush.policy=sometimes".into()]).is_err());
    }

    /// The documented defaults are the state machine's own, so `--help` tells the truth about
    /// a node started without those keys.
    #[test]
    fn timing_defaults_match_the_state_machine() {
        let config = load(None, &[]).expect("defaults validate");
        let ours = config.node_config();
        let theirs = NodeConfig::new(1, vec![1], ours.endpoint.clone(), config.broker.clone());
        assert_eq!(ours.heartbeat_interval, theirs.heartbeat_interval);
        assert_eq!(ours.session_timeout, theirs.session_timeout);
        assert_eq!(ours.replica_lag_time_max, theirs.replica_lag_time_max);
        assert_eq!(ours.replica_fetch_wait_max, theirs.replica_fetch_wait_max);
        assert_eq!(ours.replica_fetch_backoff, theirs.replica_fetch_backoff);
        assert_eq!(ours.raft_timing, theirs.raft_timing);
        assert_eq!(ours.voters, vec![1]);
        assert!(config.cluster.peer_listen.is_none());
    }

    /// A voter binds its own entry of the voter list and knows every other node, voter or
    /// not, by id; a non-voter binds its `cluster.nodes` entry.
    #[test]
    fn cluster_membership_and_peer_addresses() {
        let voters =
            "controller.quorum.voters=1@127.0.0.1:19092, 2@127.0.0.1:19093,3@localhost:19094";
        let config = load(
            None,
            &[
                "node.id=2".into(),
                voters.into(),
                "cluster.nodes=4@127.0.0.1:19095".into(),
            ],
        )
        .expect("valid");
        assert_eq!(config.cluster.voters, vec![1, 2, 3]);
        assert_eq!(
            config.cluster.peer_listen,
            Some("127.0.0.1:19093".parse().expect("addr"))
        );
        let peers: Vec<(NodeId, &str)> = config
            .cluster
            .peers
            .iter()
            .map(|(id, a)| (*id, a.as_str()))
            .collect();
        assert_eq!(
            peers,
            vec![
                (1, "127.0.0.1:19092"),
                (3, "localhost:19094"),
                (4, "127.0.0.1:19095")
            ]
        );
        assert_eq!(config.node_config().node_id, 2);
        let broker = load(
            None,
            &[
                "node.id=4".into(),
                voters.into(),
                "cluster.nodes=4@127.0.0.1:19095".into(),
            ],
        )
        .expect("valid");
        assert_eq!(
            broker.cluster.peer_listen,
            Some("127.0.0.1:19095".parse().expect("addr"))
        );
        assert_eq!(broker.cluster.peers.len(), 3);
    }

    /// Cluster settings that could not work are refused at start, with the key named.
    #[test]
    fn bad_cluster_settings_are_refused() {
        let voters = "controller.quorum.voters=1@127.0.0.1:19092,2@127.0.0.1:19093";
        let refused = |sets: &[&str]| {
            let sets: Vec<String> = sets.iter().map(|s| (*s).to_owned()).collect();
            load(None, &sets).expect_err(&format!("{sets:?} must be refused"))
        };
        refused(&["node.id=5", voters]);
        refused(&["controller.quorum.voters=1@127.0.0.1:19092,1@127.0.0.1:19093"]);
        refused(&["controller.quorum.voters=1@127.0.0.1"]);
        refused(&["controller.quorum.voters=1-127.0.0.1:19092"]);
        refused(&["cluster.nodes=2@127.0.0.1:19093"]);
        refused(&[voters, "cluster.nodes=2@127.0.0.1:19094"]);
        refused(&[voters, "controller.quorum.heartbeat.interval.ms=1000"]);
        refused(&[voters, "broker.session.timeout.ms=100"]);
        refused(&["controller.quorum.voters=1@localhost:19092"]);
        let named = refused(&["node.id=5", voters]).to_string();
        assert!(named.contains("node.id 5"), "{named}");
    }

    /// `seedlog dev` gives each node its own ports and data directory and the same voter
    /// list, with peer addresses that match the listeners the nodes bind.
    #[test]
    fn dev_cluster_layout() {
        let dir = std::path::Path::new("/tmp/dev");
        let nodes = dev(3, dir, 9092, 19092, &["log.flush.policy=none".into()]).expect("valid");
        assert_eq!(nodes.len(), 3);
        for (i, node) in nodes.iter().enumerate() {
            let n = i as u16 + 1;
            assert_eq!(node.cluster.node_id, u32::from(n));
            assert_eq!(node.listen.port(), 9091 + n);
            assert_eq!(
                node.cluster.peer_listen.expect("clustered").port(),
                19091 + n
            );
            assert_eq!(node.data_dir, dir.join(format!("node-{n}")));
            assert_eq!(node.cluster.voters, vec![1, 2, 3]);
            assert_eq!(node.cluster.peers.len(), 2);
            assert_eq!(node.broker.default_replication_factor, 3);
            assert_eq!(node.broker.flush_policy, FlushPolicy::None);
            assert_eq!(node.cluster.heartbeat_interval_ms, 500);
        }
        assert_eq!(nodes[0].cluster.peers[&2], "127.0.0.1:19093");
        assert!(dev(3, dir, 9092, 9093, &[]).is_err(), "overlapping ports");
        assert!(dev(3, dir, 9092, 19092, &["listeners=127.0.0.1:1".into()]).is_err());
        assert!(dev(0, dir, 9092, 19092, &[]).is_err());
    }
}
