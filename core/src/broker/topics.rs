//! CreateTopics and DeleteTopics, and the removal of a deleted topic's files.
//!
//! Creation follows Kafka's validation order and error codes (`ZkAdminManager.createTopics`,
//! `ReplicationControlManager.createTopic`): a legal name, not already present, a positive
//! partition count, a replication factor the cluster can satisfy (one broker, so 1), a manual
//! assignment only onto existing brokers, and every config override valid. A created topic is
//! recorded in the registry; the response goes out once that write is synced and every
//! partition log has recovered (an empty directory), so a client can produce right away.
//!
//! Deletion removes the topic from service at once (in-flight requests on it fail with
//! UNKNOWN_TOPIC_OR_PARTITION), records a tombstone in the registry, and answers once that is
//! durable. Only then are the partition files deleted; when all are gone the tombstone goes
//! too. A crash in between resumes the deletion on restart, so a later topic of the same name
//! never inherits old data. Until the tombstone is gone, creating the name again answers
//! TOPIC_ALREADY_EXISTS ("marked for deletion"), as ZooKeeper-era Kafka did.
//!
//! The io contract has no "remove directory" operation, so the emptied `<topic>-<n>`
//! directories remain; recovery never looks at directories the registry does not name.

use super::config::TopicConfig;
use super::errors;
use super::registry::{topic_name_error, TombstoneRecord};
use super::{Broker, DiskRoute, Token, Tombstone, Topic, Work};
use crate::constants::*;
use crate::io::{DiskError, DiskOp, DiskOutcome};
use crate::time::Instant;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse,
    ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

/// A CreateTopics in progress.
#[derive(Debug)]
pub(super) struct CreateState {
    version: i16,
    results: Vec<CreateResult>,
}

#[derive(Debug)]
struct CreateResult {
    name: TopicName,
    error: i16,
    message: Option<String>,
    /// Created by this request: wait until durable and recovered.
    waiting: bool,
}

/// A DeleteTopics in progress.
#[derive(Debug)]
pub(super) struct DeleteState {
    version: i16,
    results: Vec<DeletableTopicResult>,
    /// The registry change to wait for.
    change: u64,
}

type Refusal = (i16, String);

impl Broker {
    pub(super) fn on_create_topics(
        &mut self,
        now: Instant,
        token: Token,
        request: CreateTopicsRequest,
        version: i16,
    ) {
        let mut seen: BTreeMap<String, u32> = BTreeMap::new();
        for topic in &request.topics {
            *seen.entry(topic.name.0.to_string()).or_default() += 1;
        }
        let mut results = Vec::with_capacity(request.topics.len());
        for (i, topic) in request.topics.into_iter().enumerate() {
            let name = topic.name.0.to_string();
            let outcome = if i >= REQUEST_TOPICS_MAX {
                Err((
                    errors::INVALID_REQUEST,
                    "too many topics in one request".to_owned(),
                ))
            } else if seen.get(&name).copied().unwrap_or(0) > 1 {
                Err((
                    errors::INVALID_REQUEST,
                    format!("topic {name:?} is named more than once"),
                ))
            } else {
                self.create_topic(now, &name, &topic, request.validate_only)
            };
            let (error, message, waiting) = match outcome {
                Ok(()) => (errors::NONE, None, !request.validate_only),
                Err((code, message)) => (code, Some(message), false),
            };
            results.push(CreateResult {
                name: topic.name,
                error,
                message,
                waiting,
            });
        }
        self.set_work(token, Work::CreateTopics(CreateState { version, results }));
        self.admin_waiters.insert(token);
        self.check_admin_waiters();
    }

    /// Validates one topic and, unless `validate_only`, creates it.
    fn create_topic(
        &mut self,
        now: Instant,
        name: &str,
        topic: &CreatableTopic,
        validate_only: bool,
    ) -> Result<(), Refusal> {
        let partitions = self.validate_new_topic(name, topic)?;
        let overrides = config_overrides(topic)?;
        let config = TopicConfig::with_overrides(&self.config.topic_defaults, &overrides)
            .map_err(|m| (errors::INVALID_CONFIG, m))?;
        if validate_only {
            return Ok(());
        }
        self.insert_topic(now, name, partitions, overrides, config);
        Ok(())
    }

    /// The partition count the topic will have, or why it cannot be created.
    fn validate_new_topic(&self, name: &str, topic: &CreatableTopic) -> Result<i32, Refusal> {
        if let Some(message) = topic_name_error(name) {
            return Err((errors::INVALID_TOPIC_EXCEPTION, message));
        }
        if self.topics.contains_key(name) {
            return Err((
                errors::TOPIC_ALREADY_EXISTS,
                format!("Topic '{name}' already exists."),
            ));
        }
        if self.tombstones.iter().any(|t| t.record.name == name) {
            let message = format!("Topic '{name}' is marked for deletion.");
            return Err((errors::TOPIC_ALREADY_EXISTS, message));
        }
        if self.store.faulted {
            return Err((
                errors::KAFKA_STORAGE_ERROR,
                "the topic registry cannot be written".to_owned(),
            ));
        }
        let partitions = if topic.assignments.is_empty() {
            self.check_replication_factor(topic.replication_factor)?;
            match topic.num_partitions {
                -1 => self.config.num_partitions,
                n => n,
            }
        } else {
            self.check_assignments(topic)?
        };
        if partitions <= 0 || partitions > TOPIC_PARTITIONS_MAX {
            let message = format!(
                "number of partitions must be in 1..={TOPIC_PARTITIONS_MAX}, not {partitions}"
            );
            return Err((errors::INVALID_PARTITIONS, message));
        }
        let total: usize = self
            .topics
            .values()
            .map(|t| t.partition_count as usize)
            .sum();
        if self.topics.len() >= TOPICS_MAX || total + partitions as usize > PARTITIONS_MAX {
            let message = format!(
                "the broker holds at most {TOPICS_MAX} topics and {PARTITIONS_MAX} partitions"
            );
            return Err((errors::INVALID_PARTITIONS, message));
        }
        Ok(partitions)
    }

    fn check_replication_factor(&self, replication_factor: i16) -> Result<(), Refusal> {
        let factor = match replication_factor {
            -1 => self.config.default_replication_factor,
            f => f,
        };
        if factor == 1 {
            return Ok(());
        }
        let message = if factor <= 0 {
            format!("replication factor must be positive, not {factor}")
        } else {
            format!("Replication factor: {factor} larger than available brokers: 1.")
        };
        Err((errors::INVALID_REPLICATION_FACTOR, message))
    }

    /// A manual assignment must list partitions 0..n, each on exactly this broker.
    fn check_assignments(&self, topic: &CreatableTopic) -> Result<i32, Refusal> {
        if topic.num_partitions != -1 || topic.replication_factor != -1 {
            let message = "both a partition count or replication factor and an assignment were set";
            return Err((errors::INVALID_REQUEST, message.to_owned()));
        }
        let mut indexes = BTreeSet::new();
        for assignment in &topic.assignments {
            let on_us = assignment.broker_ids.len() == 1
                && assignment.broker_ids[0].0 == self.config.node_id;
            if !on_us || !indexes.insert(assignment.partition_index) {
                let message = format!(
                    "partition {} must be assigned to broker {} only",
                    assignment.partition_index, self.config.node_id
                );
                return Err((errors::INVALID_REPLICA_ASSIGNMENT, message));
            }
        }
        let count = indexes.len() as i32;
        if indexes.iter().copied().ne(0..count) {
            let message = "assigned partitions must be numbered 0, 1, 2, ...".to_owned();
            return Err((errors::INVALID_REPLICA_ASSIGNMENT, message));
        }
        Ok(count)
    }

    fn insert_topic(
        &mut self,
        now: Instant,
        name: &str,
        partitions: i32,
        overrides: BTreeMap<String, String>,
        config: TopicConfig,
    ) {
        let _ = now;
        let id = self.new_topic_id();
        self.insert_topic_with_id(name, partitions, overrides, config, id);
    }

    /// Records a topic (with the id the controller gave it, in a cluster).
    pub(super) fn insert_topic_with_id(
        &mut self,
        name: &str,
        partitions: i32,
        overrides: BTreeMap<String, String>,
        config: TopicConfig,
        id: Uuid,
    ) {
        let topic = Topic {
            id,
            overrides,
            config,
            partition_count: partitions,
            partitions: Vec::new(),
            created_change: self.store.change + 1,
        };
        assert!(self.topics.insert(name.to_owned(), topic).is_none());
        let change = self.registry_changed();
        debug_assert_eq!(change, self.topics[name].created_change);
    }

    /// Starts creating a topic a Metadata request named (`auto.create.topics.enable`).
    pub(super) fn auto_create_topic(&mut self, now: Instant, name: &str) {
        let topic = CreatableTopic::default()
            .with_num_partitions(-1)
            .with_replication_factor(-1);
        // A refusal (a pending deletion, a full broker) leaves the topic unknown; the client
        // keeps seeing LEADER_NOT_AVAILABLE or UNKNOWN_TOPIC_OR_PARTITION and retries.
        let _ = self.create_topic(now, name, &topic, false);
    }

    pub(super) fn on_delete_topics(
        &mut self,
        now: Instant,
        token: Token,
        request: DeleteTopicsRequest,
        version: i16,
    ) {
        // v6 names topics by name or id (KIP-516); earlier versions by name only.
        let wanted: Vec<(Option<String>, Uuid)> = if version >= 6 {
            request
                .topics
                .into_iter()
                .map(|t| (t.name.map(|n| n.0.to_string()), t.topic_id))
                .collect()
        } else {
            request
                .topic_names
                .into_iter()
                .map(|n| (Some(n.0.to_string()), Uuid::nil()))
                .collect()
        };
        let mut results = Vec::with_capacity(wanted.len());
        for (i, (name, id)) in wanted.into_iter().enumerate() {
            let resolved = if i >= REQUEST_TOPICS_MAX {
                Err((
                    errors::INVALID_REQUEST,
                    "too many topics in one request".to_owned(),
                ))
            } else {
                self.resolve_deletion(name.as_deref(), id)
            };
            let mut result = DeletableTopicResult::default();
            match resolved {
                Ok((name, id)) => {
                    self.delete_topic(now, &name);
                    result = result.with_name(Some(TopicName(StrBytes::from_string(name))));
                    if version >= 6 {
                        result = result.with_topic_id(id);
                    }
                }
                Err((code, message)) => {
                    result = result
                        .with_name(name.map(|n| TopicName(StrBytes::from_string(n))))
                        .with_error_code(code);
                    if version >= 5 {
                        result = result.with_error_message(Some(StrBytes::from_string(message)));
                    }
                    if version >= 6 {
                        result = result.with_topic_id(id);
                    }
                }
            }
            results.push(result);
        }
        let change = self.store.change;
        self.set_work(
            token,
            Work::DeleteTopics(DeleteState {
                version,
                results,
                change,
            }),
        );
        self.admin_waiters.insert(token);
        self.check_admin_waiters();
    }

    fn resolve_deletion(&self, name: Option<&str>, id: Uuid) -> Result<(String, Uuid), Refusal> {
        if self.store.faulted {
            return Err((
                errors::KAFKA_STORAGE_ERROR,
                "the topic registry cannot be written".to_owned(),
            ));
        }
        match name {
            Some(name) => match self.topics.get(name) {
                Some(topic) => Ok((name.to_owned(), topic.id)),
                None => Err((
                    errors::UNKNOWN_TOPIC_OR_PARTITION,
                    format!("topic {name:?} does not exist"),
                )),
            },
            None => self
                .topics
                .iter()
                .find(|(_, t)| t.id == id && !id.is_nil())
                .map(|(name, t)| (name.clone(), t.id))
                .ok_or((errors::UNKNOWN_TOPIC_ID, format!("no topic has id {id}"))),
        }
    }

    /// Takes a topic out of service and records its tombstone.
    pub(super) fn delete_topic(&mut self, now: Instant, name: &str) {
        let Some(topic) = self.topics.get(name) else {
            return;
        };
        let record = TombstoneRecord {
            name: name.to_owned(),
            id: topic.id,
            partitions: topic.partition_count,
        };
        let doomed: Vec<(i32, Vec<u64>, Vec<Token>)> = topic
            .partitions
            .iter()
            .enumerate()
            .map(|(i, p)| {
                (
                    i as i32,
                    p.ops.iter().copied().collect(),
                    p.fetch_waiters.iter().copied().collect(),
                )
            })
            .collect();
        for (partition, ops, _) in &doomed {
            for op in ops {
                self.fail_op(name, *partition, *op, errors::UNKNOWN_TOPIC_OR_PARTITION);
            }
        }
        self.topics.remove(name);
        self.log_deadlines.retain(|(_, t, _)| t != name);
        for (_, _, fetchers) in doomed {
            for token in fetchers {
                self.wake_fetch(now, token);
            }
        }
        self.tombstones.push(Tombstone {
            record,
            change: self.store.change + 1,
            removals_outstanding: None,
            failed: false,
        });
        self.registry_changed();
    }

    /// Answers CreateTopics and DeleteTopics requests whose changes are done.
    pub(super) fn check_admin_waiters(&mut self) {
        let tokens: Vec<Token> = self.admin_waiters.iter().copied().collect();
        for token in tokens {
            let response = match self.requests.get(&token).map(|r| &r.work) {
                Some(Work::CreateTopics(state)) => self.create_response(state),
                Some(Work::DeleteTopics(state)) => self.delete_response(state),
                _ => {
                    self.admin_waiters.remove(&token);
                    continue;
                }
            };
            if let Some(response) = response {
                self.admin_waiters.remove(&token);
                self.finish(token, Some(response));
            }
        }
    }

    /// The response, once every topic this request created is durable and recovered.
    fn create_response(&self, state: &CreateState) -> Option<ResponseKind> {
        let settled = |name: &str| match self.topics.get(name) {
            Some(t) => {
                t.is_durable(self.store.durable_change)
                    && t.partitions.len() == t.partition_count as usize
                    && t.partitions.iter().all(|p| p.is_settled())
            }
            None => true, // Deleted meanwhile: nothing more to wait for.
        };
        let pending = state
            .results
            .iter()
            .any(|r| r.waiting && !settled(r.name.0.as_str()));
        if pending && !self.store.faulted {
            return None;
        }
        let version = state.version;
        let topics = state
            .results
            .iter()
            .map(|r| self.create_result(r, version))
            .collect();
        Some(ResponseKind::CreateTopics(
            CreateTopicsResponse::default().with_topics(topics),
        ))
    }

    fn create_result(&self, r: &CreateResult, version: i16) -> CreatableTopicResult {
        let name = r.name.0.as_str();
        let topic = self.topics.get(name).filter(|_| r.waiting);
        let (error, message) = match (topic, r.waiting) {
            (None, true) if self.store.faulted => (
                errors::KAFKA_STORAGE_ERROR,
                Some("the topic registry cannot be written".to_owned()),
            ),
            (None, true) => (
                errors::UNKNOWN_TOPIC_OR_PARTITION,
                Some("deleted while being created".to_owned()),
            ),
            _ => (r.error, r.message.clone()),
        };
        let mut result = CreatableTopicResult::default()
            .with_name(r.name.clone())
            .with_error_code(error)
            .with_error_message(message.map(StrBytes::from_string));
        if version >= 7 {
            result = result.with_topic_id(topic.map_or(Uuid::nil(), |t| t.id));
        }
        if version >= 5 {
            result = match topic.filter(|_| error == errors::NONE) {
                Some(t) => result
                    .with_num_partitions(t.partition_count)
                    .with_replication_factor(1)
                    .with_configs(Some(created_configs(t))),
                None => result.with_num_partitions(-1).with_replication_factor(-1),
            };
        }
        result
    }

    fn delete_response(&self, state: &DeleteState) -> Option<ResponseKind> {
        if self.store.durable_change < state.change && !self.store.faulted {
            return None;
        }
        let mut results = state.results.clone();
        if self.store.faulted && self.store.durable_change < state.change {
            for result in results.iter_mut().filter(|r| r.error_code == errors::NONE) {
                result.error_code = errors::KAFKA_STORAGE_ERROR;
            }
        }
        let _ = state.version;
        Some(ResponseKind::DeleteTopics(
            DeleteTopicsResponse::default().with_responses(results),
        ))
    }

    // ---- file removal of deleted topics ----

    pub(super) fn start_tombstone_removals(&mut self) {
        if !self.is_ready() {
            return;
        }
        let durable = self.store.durable_change;
        let ready: Vec<(String, i32)> = self
            .tombstones
            .iter_mut()
            .filter(|t| t.removals_outstanding.is_none() && t.change <= durable && !t.failed)
            .map(|t| {
                t.removals_outstanding = Some(t.record.partitions.max(0) as u32);
                (t.record.name.clone(), t.record.partitions)
            })
            .collect();
        for (name, partitions) in ready {
            for partition in 0..partitions.max(0) {
                let dir = format!("{name}-{partition}");
                let route = DiskRoute::TombstoneList {
                    topic: name.clone(),
                    partition,
                };
                self.emit_disk(DiskOp::List { dir }, route);
            }
            self.maybe_drop_tombstone(&name);
        }
    }

    pub(super) fn on_tombstone_listed(
        &mut self,
        topic: &str,
        partition: i32,
        result: Result<DiskOutcome, DiskError>,
    ) {
        let files: Vec<String> = match result {
            Ok(DiskOutcome::Listed(entries)) => entries.into_iter().map(|e| e.name).collect(),
            Err(DiskError::NotFound) => Vec::new(),
            _ => {
                self.tombstone_step(topic, 0, true);
                return;
            }
        };
        let count = files.len() as u32;
        for name in files {
            let file = format!("{topic}-{partition}/{name}");
            let route = DiskRoute::TombstoneDelete {
                topic: topic.to_owned(),
            };
            self.emit_disk(DiskOp::Delete { file }, route);
        }
        self.tombstone_step(topic, count, false);
    }

    pub(super) fn on_tombstone_deleted(
        &mut self,
        topic: &str,
        result: Result<DiskOutcome, DiskError>,
    ) {
        let failed = matches!(result, Err(e) if e != DiskError::NotFound);
        self.tombstone_step(topic, 0, failed);
    }

    /// One removal step finished, having started `added` more.
    fn tombstone_step(&mut self, topic: &str, added: u32, failed: bool) {
        if let Some(t) = self.tombstones.iter_mut().find(|t| t.record.name == topic) {
            if let Some(outstanding) = t.removals_outstanding.as_mut() {
                *outstanding = (*outstanding + added).saturating_sub(1);
            }
            t.failed |= failed;
        }
        self.maybe_drop_tombstone(topic);
    }

    fn maybe_drop_tombstone(&mut self, topic: &str) {
        let Some(index) = self.tombstones.iter().position(|t| t.record.name == topic) else {
            return;
        };
        let t = &self.tombstones[index];
        // A failed removal keeps the tombstone; the next start retries it.
        if t.removals_outstanding == Some(0) && !t.failed {
            self.tombstones.remove(index);
            self.registry_changed();
        }
    }
}

/// The validated overrides of a new topic.
fn config_overrides(topic: &CreatableTopic) -> Result<BTreeMap<String, String>, Refusal> {
    if topic.configs.len() > TOPIC_CONFIGS_MAX {
        return Err((
            errors::INVALID_CONFIG,
            format!("at most {TOPIC_CONFIGS_MAX} configs per topic"),
        ));
    }
    let mut overrides = BTreeMap::new();
    for config in &topic.configs {
        // A null value means "the default", as in Kafka.
        let Some(value) = &config.value else {
            continue;
        };
        if config.name.len() > TOPIC_CONFIG_BYTES_MAX || value.len() > TOPIC_CONFIG_BYTES_MAX {
            return Err((
                errors::INVALID_CONFIG,
                "config name or value too long".to_owned(),
            ));
        }
        overrides.insert(config.name.to_string(), value.to_string());
    }
    Ok(overrides)
}

/// The configs a CreateTopics v5+ response lists for a created topic.
fn created_configs(topic: &Topic) -> Vec<CreatableTopicConfigs> {
    super::config::TOPIC_CONFIG_KEYS
        .iter()
        .map(|key| {
            let source = if topic.overrides.contains_key(*key) {
                1
            } else {
                5
            };
            CreatableTopicConfigs::default()
                .with_name(StrBytes::from_static_str(key))
                .with_value(topic.config.value(key).map(StrBytes::from_string))
                .with_config_source(source)
        })
        .collect()
}
