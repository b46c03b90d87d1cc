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
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    ApiVersionsResponse, BrokerId, DescribeClusterRequest, DescribeClusterResponse,
    DescribeConfigsRequest, DescribeConfigsResponse, MetadataRequest, MetadataResponse, TopicName,
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

    fn brokers(&self) -> (BrokerId, StrBytes, i32) {
        (
            BrokerId(self.config.node_id),
            s(self.config.advertised_host.clone()),
            self.config.advertised_port,
        )
    }

    pub(super) fn on_metadata(
        &mut self,
        now: Instant,
        request: MetadataRequest,
        version: i16,
    ) -> MetadataResponse {
        let allow_create = version < 4 || request.allow_auto_topic_creation;
        if self.replication().is_some() {
            let names = request.topics.map(|topics| {
                topics
                    .into_iter()
                    .take(REQUEST_TOPICS_MAX)
                    .filter_map(|t| t.name.map(|n| n.0.to_string()))
                    .collect()
            });
            return self.cluster_metadata(names, version);
        }
        let names: Vec<String> = match request.topics {
            // Before v1 an empty list meant "all"; we serve v1+, where null does.
            None => self.topics.keys().cloned().collect(),
            Some(topics) => topics
                .into_iter()
                .take(REQUEST_TOPICS_MAX)
                .filter_map(|t| t.name.map(|n| n.0.to_string()))
                .collect(),
        };
        let topics = names
            .into_iter()
            .map(|name| self.metadata_topic(now, name, allow_create, version))
            .collect();
        let (node_id, host, port) = self.brokers();
        let mut broker = MetadataResponseBroker::default()
            .with_node_id(node_id)
            .with_host(host)
            .with_port(port);
        if version >= 1 {
            broker = broker.with_rack(None);
        }
        let mut response = MetadataResponse::default()
            .with_brokers(vec![broker])
            .with_topics(topics);
        if version >= 1 {
            response = response.with_controller_id(node_id);
        }
        if version >= 2 {
            response = response.with_cluster_id(Some(s(self.config.cluster_id.clone())));
        }
        response
    }

    fn metadata_topic(
        &mut self,
        now: Instant,
        name: String,
        allow_create: bool,
        version: i16,
    ) -> MetadataResponseTopic {
        let topic_name = TopicName(s(name.clone()));
        let mut response = MetadataResponseTopic::default().with_name(Some(topic_name));
        if let Some(_error) = topic_name_error(&name) {
            return response.with_error_code(errors::INVALID_TOPIC_EXCEPTION);
        }
        let Some(topic) = self.topics.get(&name) else {
            if allow_create && self.config.auto_create_topics_enable {
                // The topic appears once its creation is durable; until then, retry.
                self.auto_create_topic(now, &name);
                return response.with_error_code(errors::LEADER_NOT_AVAILABLE);
            }
            return response.with_error_code(errors::UNKNOWN_TOPIC_OR_PARTITION);
        };
        if version >= 10 {
            response = response.with_topic_id(topic.id);
        }
        if !topic.is_durable(self.store.durable_change) || topic.partitions.is_empty() {
            return response.with_error_code(errors::LEADER_NOT_AVAILABLE);
        }
        let node = BrokerId(self.config.node_id);
        let partitions = topic
            .partitions
            .iter()
            .enumerate()
            .map(|(index, p)| {
                let serving = p.log.is_ready();
                let error = if serving {
                    errors::NONE
                } else if p.log.is_faulted() {
                    errors::KAFKA_STORAGE_ERROR
                } else {
                    errors::LEADER_NOT_AVAILABLE
                };
                let mut partition = MetadataResponsePartition::default()
                    .with_error_code(error)
                    .with_partition_index(index as i32)
                    .with_leader_id(if serving { node } else { BrokerId(-1) })
                    .with_replica_nodes(vec![node])
                    .with_isr_nodes(if serving { vec![node] } else { Vec::new() });
                if version >= 7 {
                    partition = partition.with_leader_epoch(p.leader_epoch);
                }
                if version >= 5 {
                    partition = partition.with_offline_replicas(if p.log.is_faulted() {
                        vec![node]
                    } else {
                        Vec::new()
                    });
                }
                partition
            })
            .collect();
        response.with_partitions(partitions)
    }

    pub(super) fn on_describe_cluster(
        &self,
        request: DescribeClusterRequest,
        version: i16,
    ) -> DescribeClusterResponse {
        let _ = (request, version);
        if self.replication().is_some() {
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
            return DescribeClusterResponse::default()
                .with_cluster_id(s(self.config.cluster_id.clone()))
                .with_controller_id(BrokerId(controller))
                .with_brokers(brokers);
        }
        let (node_id, host, port) = self.brokers();
        let broker = DescribeClusterBroker::default()
            .with_broker_id(node_id)
            .with_host(host)
            .with_port(port);
        DescribeClusterResponse::default()
            .with_cluster_id(s(self.config.cluster_id.clone()))
            .with_controller_id(node_id)
            .with_brokers(vec![broker])
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
