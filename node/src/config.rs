//! The node's configuration: a TOML file with every key defaulted, plus `--set key=value`.
//!
//! Keys use Kafka's broker names (`log.dirs`, `num.partitions`, `auto.create.topics.enable`),
//! so a Kafka operator can read a Seedlog config. In TOML a dotted key such as
//! `log.dirs = "/data"` is a nested table; both that and the quoted form `"log.dirs" = ...`
//! are accepted, as is `[log] dirs = ...`. Unknown keys are an error, not silently ignored: a
//! misspelt `log.flush.polcy` must not leave the broker running with a policy nobody chose.

use anyhow::{anyhow, bail, Context, Result};
use seedlog_core::broker::{ApiRange, BrokerConfig, FlushPolicy, TopicConfig};
use seedlog_core::constants::BATCH_BYTES_MAX_LIMIT;
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
    KeySpec { name: "node.id", default: "1", doc: "This broker's id in Metadata responses." },
    KeySpec { name: "listeners", default: "127.0.0.1:9092", doc: "host:port the Kafka listener binds." },
    KeySpec { name: "advertised.listeners", default: "", doc: "host:port clients are told to connect to (default: listeners; 127.0.0.1 if bound to 0.0.0.0)." },
    KeySpec { name: "log.dirs", default: "./seedlog-data", doc: "Data directory (one directory; created if missing)." },
    KeySpec { name: "cluster.id", default: "seedlog-cluster", doc: "Cluster id reported to clients." },
    KeySpec { name: "auto.create.topics.enable", default: "false", doc: "Create unknown topics named in Metadata requests." },
    KeySpec { name: "num.partitions", default: "1", doc: "Partitions of a topic created without a count." },
    KeySpec { name: "default.replication.factor", default: "1", doc: "Replication factor of a topic created without one (only 1 until replication lands)." },
    KeySpec { name: "log.flush.policy", default: "group-commit", doc: "group-commit: fsync before acknowledging acks=1/all and before consumers see data, one fsync shared by concurrent requests. none: acknowledge after the write; fsync only at shutdown." },
    KeySpec { name: "message.max.bytes", default: "1048588", doc: "Largest record batch a topic accepts (topic: max.message.bytes)." },
    KeySpec { name: "log.segment.bytes", default: "1073741824", doc: "Segment size before rolling (topic: segment.bytes)." },
    KeySpec { name: "log.roll.ms", default: "604800000", doc: "Segment age before rolling (topic: segment.ms)." },
    KeySpec { name: "log.retention.ms", default: "604800000", doc: "Delete segments older than this; -1 keeps them (topic: retention.ms)." },
    KeySpec { name: "log.retention.bytes", default: "-1", doc: "Delete old segments while a partition is larger; -1 for no limit (topic: retention.bytes)." },
    KeySpec { name: "log.retention.check.interval.ms", default: "300000", doc: "How often retention is applied." },
    KeySpec { name: "log.index.interval.bytes", default: "4096", doc: "Bytes between sparse index entries (topic: index.interval.bytes)." },
    KeySpec { name: "min.insync.replicas", default: "1", doc: "Replicas that must have an acks=all write (topic: min.insync.replicas)." },
    KeySpec { name: "socket.request.max.bytes", default: "104857600", doc: "Largest request frame accepted; a larger one closes the connection." },
    KeySpec { name: "queued.max.requests.per.connection", default: "512", doc: "Requests of one connection in flight before the broker stops reading it (backpressure)." },
];

/// The validated node configuration.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Address to bind.
    pub listen: SocketAddr,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Largest request frame.
    pub request_bytes_max: u32,
    /// Per-connection in-flight requests before reading pauses.
    pub connection_requests_max: u32,
    /// The broker state machine's configuration.
    pub broker: BrokerConfig,
}

/// Reads `path` (if given), applies `overrides` (`key=value`), and validates.
pub fn load(path: Option<&std::path::Path>, overrides: &[String]) -> Result<NodeConfig> {
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

fn build(values: &BTreeMap<String, toml::Value>) -> Result<NodeConfig> {
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
        (
            host.to_owned(),
            port.parse()
                .map_err(|_| anyhow!("bad port in advertised.listeners"))?,
        )
    };
    let flush_policy = FlushPolicy::parse(&get(values, "log.flush.policy"))
        .ok_or_else(|| anyhow!("log.flush.policy must be group-commit or none"))?;
    let topic_defaults = topic_defaults(values)?;
    let num_partitions: i32 = num(values, "num.partitions")?;
    if num_partitions < 1 {
        bail!("num.partitions must be at least 1");
    }
    let data_dir = PathBuf::from(get(values, "log.dirs"));
    let request_bytes_max: u32 = num(values, "socket.request.max.bytes")?;
    let connection_requests_max: u32 = num(values, "queued.max.requests.per.connection")?;
    let limit = seedlog_core::constants::CONNECTION_REQUESTS_IN_FLIGHT_MAX as u32;
    if connection_requests_max == 0 || connection_requests_max > limit {
        bail!("queued.max.requests.per.connection must be in 1..={limit}");
    }
    let broker = BrokerConfig {
        node_id: num(values, "node.id")?,
        advertised_host: host,
        advertised_port: port,
        cluster_id: get(values, "cluster.id"),
        auto_create_topics_enable: num(values, "auto.create.topics.enable")?,
        num_partitions,
        default_replication_factor: num(values, "default.replication.factor")?,
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
        driver_settings: vec![
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
        ],
    };
    Ok(NodeConfig {
        listen,
        data_dir,
        request_bytes_max,
        connection_requests_max,
        broker,
    })
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
}
