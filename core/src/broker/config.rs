//! Broker and topic configuration: Kafka's names, Kafka's defaults, validated once.
//!
//! A topic config is a set of overrides on top of the broker's defaults (`log.segment.bytes`
//! is the default of `segment.bytes`, and so on), as in Kafka's `LogConfig`. Overrides are
//! validated when a topic is created (CreateTopics answers INVALID_CONFIG for a bad one) and
//! persisted as the strings the client sent, so DescribeConfigs shows exactly what was set and
//! where each value came from (KIP-226 config sources).
//!
//! Only keys the broker honours are accepted. A Kafka key the broker does not implement yet
//! (`cleanup.policy=compact`, `message.timestamp.type=LogAppendTime`, compression other than
//! `producer`) is refused with a message that says so, rather than accepted and ignored.

use crate::constants::{
    BATCH_BYTES_MAX_DEFAULT, BATCH_BYTES_MAX_LIMIT, INDEX_INTERVAL_BYTES_DEFAULT,
    RETENTION_CHECK_INTERVAL_MS_DEFAULT, SEGMENT_AGE_MAX_MS_DEFAULT, SEGMENT_BYTES_MAX_DEFAULT,
};
use crate::time::Duration;
use std::collections::BTreeMap;

/// When the broker makes appended data durable, and so when it acknowledges and exposes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlushPolicy {
    /// fsync before acknowledging acks=1/all and before consumers can read (the high watermark
    /// is the durable offset); one fsync covers every append that arrived meanwhile.
    GroupCommit,
    /// Never fsync while serving (only on shutdown). Acknowledge after the write reaches the
    /// page cache; the high watermark is the log end offset. A machine crash can lose
    /// acknowledged data, as with Kafka's default `log.flush.interval.messages`.
    None,
}

impl FlushPolicy {
    /// The configuration value naming this policy.
    pub fn name(self) -> &'static str {
        match self {
            FlushPolicy::GroupCommit => "group-commit",
            FlushPolicy::None => "none",
        }
    }

    /// Parses a `log.flush.policy` value.
    pub fn parse(value: &str) -> Option<FlushPolicy> {
        match value {
            "group-commit" => Some(FlushPolicy::GroupCommit),
            "none" => Some(FlushPolicy::None),
            _ => None,
        }
    }
}

/// One supported API and its version range, advertised in ApiVersions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApiRange {
    /// The API key.
    pub api_key: i16,
    /// Lowest version, inclusive.
    pub min_version: i16,
    /// Highest version, inclusive.
    pub max_version: i16,
}

/// The broker's configuration. Every field has Kafka's default (see [`BrokerConfig::default`]).
#[derive(Clone, Debug)]
pub struct BrokerConfig {
    /// `node.id`.
    pub node_id: i32,
    /// Host advertised in Metadata and DescribeCluster.
    pub advertised_host: String,
    /// Port advertised in Metadata and DescribeCluster.
    pub advertised_port: i32,
    /// Cluster id reported to clients.
    pub cluster_id: String,
    /// `auto.create.topics.enable`: create unknown topics named in Metadata requests.
    pub auto_create_topics_enable: bool,
    /// `num.partitions`: partitions of a topic created without a count.
    pub num_partitions: i32,
    /// `default.replication.factor`.
    pub default_replication_factor: i16,
    /// `log.flush.policy`.
    pub flush_policy: FlushPolicy,
    /// Defaults of every topic config (`log.segment.bytes`, `message.max.bytes`, ...).
    pub topic_defaults: TopicConfig,
    /// `log.retention.check.interval.ms`.
    pub retention_check_interval_ms: u64,
    /// The APIs advertised in ApiVersions (the codec's table; empty in unit tests).
    pub api_versions: Vec<ApiRange>,
    /// Driver settings shown by DescribeConfigs for the broker (`listeners`, `log.dirs`, ...).
    pub driver_settings: Vec<(String, String)>,
    /// How long a forwarded CreateTopics/DeleteTopics waits for the controller.
    pub admin_timeout: Duration,
}

impl Default for BrokerConfig {
    fn default() -> BrokerConfig {
        BrokerConfig {
            node_id: 1,
            advertised_host: "127.0.0.1".to_owned(),
            advertised_port: 9092,
            cluster_id: "seedlog-cluster".to_owned(),
            auto_create_topics_enable: false,
            num_partitions: 1,
            default_replication_factor: 1,
            flush_policy: FlushPolicy::GroupCommit,
            topic_defaults: TopicConfig::default(),
            retention_check_interval_ms: RETENTION_CHECK_INTERVAL_MS_DEFAULT,
            api_versions: Vec::new(),
            driver_settings: Vec::new(),
            admin_timeout: Duration::from_millis(30_000),
        }
    }
}

impl BrokerConfig {
    /// The broker-level settings as DescribeConfigs shows them: `(name, value)`.
    pub fn describe(&self) -> Vec<(String, String)> {
        let d = &self.topic_defaults;
        let mut entries: Vec<(String, String)> = vec![
            ("node.id".into(), self.node_id.to_string()),
            ("broker.id".into(), self.node_id.to_string()),
            (
                "auto.create.topics.enable".into(),
                self.auto_create_topics_enable.to_string(),
            ),
            ("num.partitions".into(), self.num_partitions.to_string()),
            (
                "default.replication.factor".into(),
                self.default_replication_factor.to_string(),
            ),
            ("log.flush.policy".into(), self.flush_policy.name().into()),
            ("message.max.bytes".into(), d.max_message_bytes.to_string()),
            ("log.segment.bytes".into(), d.segment_bytes.to_string()),
            ("log.roll.ms".into(), d.segment_ms.to_string()),
            ("log.retention.ms".into(), d.retention_ms.to_string()),
            ("log.retention.bytes".into(), d.retention_bytes.to_string()),
            (
                "log.retention.check.interval.ms".into(),
                self.retention_check_interval_ms.to_string(),
            ),
            (
                "log.index.interval.bytes".into(),
                d.index_interval_bytes.to_string(),
            ),
            (
                "min.insync.replicas".into(),
                d.min_insync_replicas.to_string(),
            ),
        ];
        entries.extend(self.driver_settings.iter().cloned());
        entries.sort();
        entries
    }
}

/// A topic's effective configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicConfig {
    /// `max.message.bytes`: the largest batch accepted.
    pub max_message_bytes: u64,
    /// `segment.bytes`.
    pub segment_bytes: u64,
    /// `segment.ms`.
    pub segment_ms: u64,
    /// `retention.ms`, -1 for unlimited.
    pub retention_ms: i64,
    /// `retention.bytes`, -1 for unlimited.
    pub retention_bytes: i64,
    /// `index.interval.bytes`.
    pub index_interval_bytes: u64,
    /// `min.insync.replicas`.
    pub min_insync_replicas: i32,
    /// `unclean.leader.election.enable`.
    pub unclean_leader_election_enable: bool,
}

impl Default for TopicConfig {
    fn default() -> TopicConfig {
        TopicConfig {
            max_message_bytes: BATCH_BYTES_MAX_DEFAULT,
            segment_bytes: SEGMENT_BYTES_MAX_DEFAULT,
            segment_ms: SEGMENT_AGE_MAX_MS_DEFAULT,
            retention_ms: 7 * 24 * 3600 * 1000,
            retention_bytes: -1,
            index_interval_bytes: INDEX_INTERVAL_BYTES_DEFAULT,
            min_insync_replicas: 1,
            unclean_leader_election_enable: false,
        }
    }
}

/// Fixed-value topic configs: shown by DescribeConfigs, accepted only at this value.
const FIXED_TOPIC_CONFIGS: &[(&str, &str)] = &[
    ("cleanup.policy", "delete"),
    ("compression.type", "producer"),
    ("message.timestamp.type", "CreateTime"),
];

/// Every topic config key the broker knows, in the order DescribeConfigs lists them.
pub const TOPIC_CONFIG_KEYS: &[&str] = &[
    "cleanup.policy",
    "compression.type",
    "index.interval.bytes",
    "max.message.bytes",
    "message.timestamp.type",
    "min.insync.replicas",
    "retention.bytes",
    "retention.ms",
    "segment.bytes",
    "segment.ms",
    "unclean.leader.election.enable",
];

/// The broker-level key whose value is a topic config's default (Kafka's synonym).
pub fn broker_synonym(key: &str) -> Option<&'static str> {
    Some(match key {
        "max.message.bytes" => "message.max.bytes",
        "segment.bytes" => "log.segment.bytes",
        "segment.ms" => "log.roll.ms",
        "retention.ms" => "log.retention.ms",
        "retention.bytes" => "log.retention.bytes",
        "index.interval.bytes" => "log.index.interval.bytes",
        "min.insync.replicas" => "min.insync.replicas",
        "unclean.leader.election.enable" => "unclean.leader.election.enable",
        _ => return None,
    })
}

impl TopicConfig {
    /// The defaults with `overrides` applied, or the first invalid override's explanation.
    pub fn with_overrides(
        defaults: &TopicConfig,
        overrides: &BTreeMap<String, String>,
    ) -> Result<TopicConfig, String> {
        let mut config = defaults.clone();
        for (key, value) in overrides {
            config.apply(key, value)?;
        }
        if config.segment_bytes < config.max_message_bytes {
            return Err(format!(
                "segment.bytes ({}) must be at least max.message.bytes ({})",
                config.segment_bytes, config.max_message_bytes
            ));
        }
        Ok(config)
    }

    /// Sets one key from its string value.
    pub fn apply(&mut self, key: &str, value: &str) -> Result<(), String> {
        if let Some((_, fixed)) = FIXED_TOPIC_CONFIGS.iter().find(|(k, _)| *k == key) {
            if value == *fixed {
                return Ok(());
            }
            return Err(format!("{key}={value} is not supported yet (only {fixed})"));
        }
        match key {
            "max.message.bytes" => {
                self.max_message_bytes = parse_range(key, value, 1, BATCH_BYTES_MAX_LIMIT)?
            }
            "segment.bytes" => self.segment_bytes = parse_range(key, value, 1024, i32::MAX as u64)?,
            "segment.ms" => self.segment_ms = parse_range(key, value, 1, i64::MAX as u64)?,
            "retention.ms" => self.retention_ms = parse_limit(key, value)?,
            "retention.bytes" => self.retention_bytes = parse_limit(key, value)?,
            "index.interval.bytes" => {
                self.index_interval_bytes = parse_range(key, value, 1, i32::MAX as u64)?
            }
            "min.insync.replicas" => {
                self.min_insync_replicas = parse_range(key, value, 1, i32::MAX as u64)? as i32
            }
            "unclean.leader.election.enable" => {
                self.unclean_leader_election_enable = match value {
                    "true" => true,
                    "false" => false,
                    _ => return Err(format!("{key} must be true or false, not {value:?}")),
                }
            }
            _ => return Err(format!("unknown topic config {key:?}")),
        }
        Ok(())
    }

    /// The effective value of `key` as a string, if the key is known.
    pub fn value(&self, key: &str) -> Option<String> {
        if let Some((_, fixed)) = FIXED_TOPIC_CONFIGS.iter().find(|(k, _)| *k == key) {
            return Some((*fixed).to_owned());
        }
        Some(match key {
            "max.message.bytes" => self.max_message_bytes.to_string(),
            "segment.bytes" => self.segment_bytes.to_string(),
            "segment.ms" => self.segment_ms.to_string(),
            "retention.ms" => self.retention_ms.to_string(),
            "retention.bytes" => self.retention_bytes.to_string(),
            "index.interval.bytes" => self.index_interval_bytes.to_string(),
            "min.insync.replicas" => self.min_insync_replicas.to_string(),
            "unclean.leader.election.enable" => self.unclean_leader_election_enable.to_string(),
            _ => return None,
        })
    }
}

fn parse_range(key: &str, value: &str, min: u64, max: u64) -> Result<u64, String> {
    match value.trim().parse::<u64>() {
        Ok(v) if (min..=max).contains(&v) => Ok(v),
        _ => Err(format!(
            "{key} must be an integer in {min}..={max}, not {value:?}"
        )),
    }
}

/// A retention limit: -1 (unlimited) or a non-negative number.
fn parse_limit(key: &str, value: &str) -> Result<i64, String> {
    match value.trim().parse::<i64>() {
        Ok(v) if v >= -1 => Ok(v),
        _ => Err(format!(
            "{key} must be -1 or a non-negative integer, not {value:?}"
        )),
    }
}
