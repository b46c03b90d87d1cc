//! The read-only APIs: ApiVersions, Metadata, DescribeCluster and DescribeConfigs.
//!
//! Metadata follows Kafka's `KafkaApis.handleTopicMetadataRequest`: a null topic list means
//! all topics; an unknown topic is UNKNOWN_TOPIC_OR_PARTITION unless both the request
//! (`allow_auto_topic_creation`, v4+; always true before) and the broker
//! (`auto.create.topics.enable`) allow creating it, in which case creation starts and the
//! topic is reported as LEADER_NOT_AVAILABLE until it exists, so the client retries. A topic
//! whose creation is not durable yet, or a partition whose log is still recovering, is also
//! LEADER_NOT_AVAILABLE.
//!
//! Every field is set only at the versions that have it, and tagged fields keep their
//! defaults so they are never written: older clients (librdkafka 2.0.2) reject tagged fields
//! they do not expect.

use super::config::{broker_synonym, TOPIC_CONFIG_KEYS};
use super::errors;
use super::registry::topic_name_error;
use super::Broker;
use crate::constants::REQUEST_TOPICS_MAX;
use crate::time::Instant;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{
    ApiVersionsResponse, BrokerId, DescribeClusterRequest, DescribeClusterResponse,
    DescribeConfigsRequest, DescribeConfigsResponse, MetadataRequest, MetadataResponse,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;

/// DescribeConfigs resource types.
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
/// DescribeConfigs config sources (KIP-226).
const SOURCE_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;

fn s(value: impl Into<String>) -> StrBytes {
    StrBytes::from_string(value.into())
}

impl Broker {
    pub(super) fn api_versions_response(&self, version: i16) -> ApiVersionsResponse {
        let _ = version;
        let api_keys = self
            .config
            .api_versions
            .iter()
            .map(|range| {
                ApiVersion::default()
                    .with_api_key(range.api_key)
                    .with_min_version(range.min_version)
                    .with_max_version(range.max_version)
            })
            .collect();
        ApiVersionsResponse::default().with_api_keys(api_keys)
    }

    pub(super) fn on_metadata(
        &mut self,
        now: Instant,
        request: MetadataRequest,
        version: i16,
    ) -> MetadataResponse {
        // Before v4 a request could not say, and Kafka created; from v4 the client says.
        let allow_create = version < 4 || request.allow_auto_topic_creation;
        let names: Option<Vec<String>> = match request.topics {
            // Before v1 an empty list meant "all topics"; from v1 null does.
            Some(topics) if version == 0 && topics.is_empty() => None,
            Some(topics) => Some(
                topics
                    .into_iter()
                    .take(REQUEST_TOPICS_MAX)
                    .filter_map(|t| t.name.map(|n| n.0.to_string()))
                    .collect(),
            ),
            None => None,
        };
        let mut response = self.cluster_metadata(names, version);
        for topic in &mut response.topics {
            if topic.error_code != errors::UNKNOWN_TOPIC_OR_PARTITION {
                continue;
            }
            let Some(name) = topic.name.as_ref().map(|n| n.0.to_string()) else {
                continue;
            };
            if topic_name_error(&name).is_some() {
                topic.error_code = errors::INVALID_TOPIC_EXCEPTION;
            } else if allow_create && self.config.auto_create_topics_enable {
                topic.error_code = self.auto_create_topic(now, &name);
            }
        }
        response
    }

    pub(super) fn on_describe_cluster(
        &self,
        request: DescribeClusterRequest,
        version: i16,
    ) -> DescribeClusterResponse {
        let _ = (request, version);
        let brokers = self
            .cluster_brokers()
            .into_iter()
            .map(|(id, host, port)| {
                DescribeClusterBroker::default()
                    .with_broker_id(BrokerId(id))
                    .with_host(s(host))
                    .with_port(port)
            })
            .collect();
        let controller = self.controller_hint.map_or(-1, |id| id as i32);
        DescribeClusterResponse::default()
            .with_cluster_id(s(self.config.cluster_id.clone()))
            .with_controller_id(BrokerId(controller))
            .with_brokers(brokers)
    }

    pub(super) fn on_describe_configs(
        &self,
        request: DescribeConfigsRequest,
        version: i16,
    ) -> DescribeConfigsResponse {
        let include_synonyms = request.include_synonyms;
        let results = request
            .resources
            .into_iter()
            .take(REQUEST_TOPICS_MAX)
            .map(|resource| {
                let keys: Option<Vec<String>> = resource
                    .configuration_keys
                    .map(|keys| keys.into_iter().map(|k| k.to_string()).collect());
                let name = resource.resource_name.to_string();
                let outcome = match resource.resource_type {
                    RESOURCE_TOPIC => {
                        self.describe_topic(&name, keys.as_deref(), include_synonyms, version)
                    }
                    RESOURCE_BROKER => self.describe_broker(&name, keys.as_deref(), version),
                    _ => Err((
                        errors::INVALID_REQUEST,
                        "unsupported resource type".to_owned(),
                    )),
                };
                let result = DescribeConfigsResult::default()
                    .with_resource_type(resource.resource_type)
                    .with_resource_name(resource.resource_name);
                match outcome {
                    Ok(configs) => result.with_configs(configs),
                    Err((code, message)) => result
                        .with_error_code(code)
                        .with_error_message(Some(s(message))),
                }
            })
            .collect();
        DescribeConfigsResponse::default().with_results(results)
    }

    fn describe_topic(
        &self,
        name: &str,
        keys: Option<&[String]>,
        include_synonyms: bool,
        version: i16,
    ) -> Result<Vec<DescribeConfigsResourceResult>, (i16, String)> {
        let topic = self.topics.get(name).ok_or((
            errors::UNKNOWN_TOPIC_OR_PARTITION,
            format!("topic {name:?} does not exist"),
        ))?;
        let broker_values: BTreeMap<String, String> = self.config.describe().into_iter().collect();
        let entries = TOPIC_CONFIG_KEYS
            .iter()
            .filter(|key| keys.is_none_or(|keys| keys.iter().any(|k| k == *key)))
            .map(|key| {
                let value = topic.config.value(key).unwrap_or_default();
                let overridden = topic.overrides.contains_key(*key);
                let source = if overridden {
                    SOURCE_TOPIC
                } else {
                    SOURCE_DEFAULT
                };
                let mut entry = config_entry(key, &value, false, source, version);
                if include_synonyms {
                    let mut synonyms = Vec::new();
                    if let Some(v) = topic.overrides.get(*key) {
                        synonyms.push(synonym(key, v, SOURCE_TOPIC));
                    }
                    if let Some(broker_key) = broker_synonym(key) {
                        if let Some(v) = broker_values.get(broker_key) {
                            synonyms.push(synonym(broker_key, v, SOURCE_DEFAULT));
                        }
                    }
                    entry = entry.with_synonyms(synonyms);
                }
                entry
            })
            .collect();
        Ok(entries)
    }

    fn describe_broker(
        &self,
        name: &str,
        keys: Option<&[String]>,
        version: i16,
    ) -> Result<Vec<DescribeConfigsResourceResult>, (i16, String)> {
        // An empty name is the cluster-wide default resource; otherwise it must be our id.
        if !name.is_empty() && name != self.config.node_id.to_string() {
            return Err((errors::INVALID_REQUEST, format!("unknown broker {name:?}")));
        }
        let entries = self
            .config
            .describe()
            .into_iter()
            .filter(|(key, _)| keys.is_none_or(|keys| keys.iter().any(|k| k == key)))
            // Broker settings come from the node's configuration file and cannot be altered
            // at run time, hence read-only and static.
            .map(|(key, value)| config_entry(&key, &value, true, SOURCE_STATIC_BROKER, version))
            .collect();
        Ok(entries)
    }
}

fn config_entry(
    name: &str,
    value: &str,
    read_only: bool,
    source: i8,
    version: i16,
) -> DescribeConfigsResourceResult {
    let _ = version;
    DescribeConfigsResourceResult::default()
        .with_name(s(name))
        .with_value(Some(s(value)))
        .with_read_only(read_only)
        .with_config_source(source)
}

fn synonym(name: &str, value: &str, source: i8) -> DescribeConfigsSynonym {
    DescribeConfigsSynonym::default()
        .with_name(s(name))
        .with_value(Some(s(value)))
        .with_source(source)
}
