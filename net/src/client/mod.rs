//! An async Kafka client for the CLI, the load generator and the Jepsen harness.
//!
//! The client is deliberately thin: every call is one request to one broker, with no hidden
//! retries. A Jepsen history must record exactly what was sent and what came back, and a
//! produce retried behind the caller's back could be applied twice. Callers retry themselves,
//! using [`ClientError::is_retriable`].
//!
//! - Bootstrap: [`Client::connect`] tries the `host:port` addresses in order until one answers
//!   ApiVersions, then loads cluster metadata.
//! - Routing: produce, fetch and list-offsets go to the partition leader named by the cached
//!   metadata. An error that means the metadata is stale (NOT_LEADER_OR_FOLLOWER, ...) drops
//!   the cache, so the next call refreshes it. Topic admin requests go to the controller.
//! - Connections: one pipelined connection per broker (`connection.rs`), reopened on the next
//!   call after it fails.
//! - Record batches are encoded and decoded by `seedlog_core::record_batch`, the same code the
//!   broker's log uses.

pub(crate) mod connection;
mod error;
pub(crate) mod requests;

pub use error::ClientError;
pub use requests::{
    Acks, FetchOptions, FetchedPartition, FetchedRecord, IsolationLevel, NewTopic, OffsetSpec,
    PartitionOffset, ProducedBatch, RawFetch, TopicConfigEntry, TopicOutcome,
};

use connection::{Connection, ConnectionConfig};
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
use seedlog_core::record_batch::{self, BatchSpec, NewRecord};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Client settings. The defaults follow the Java client's where one exists.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `client.id` sent in every request header.
    pub client_id: String,
    /// How long to wait for a response (`request.timeout.ms`, default 30 s).
    pub request_timeout: Duration,
    /// How long to wait for a TCP connection (default 10 s).
    pub connect_timeout: Duration,
    /// Largest response frame accepted, in bytes (default 100 MiB).
    pub response_bytes_max: u32,
    /// Requests in flight per connection (default 64).
    pub in_flight_max: u32,
}

impl Default for ClientConfig {
    fn default() -> ClientConfig {
        ClientConfig {
            client_id: "seedlog".to_owned(),
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            response_bytes_max: crate::frame::SOCKET_REQUEST_MAX_BYTES_DEFAULT,
            in_flight_max: 64,
        }
    }
}

/// A broker in the cluster metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    /// The broker's node id.
    pub node_id: i32,
    /// Its client listener host.
    pub host: String,
    /// Its client listener port.
    pub port: i32,
    /// Its rack, if configured.
    pub rack: Option<String>,
}

impl BrokerInfo {
    /// `host:port`.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// One partition in the cluster metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    /// The partition index.
    pub partition: i32,
    /// The leader's node id, or -1 while there is none.
    pub leader: i32,
    /// The leader epoch.
    pub leader_epoch: i32,
    /// All replicas.
    pub replicas: Vec<i32>,
    /// The in-sync replicas.
    pub isr: Vec<i32>,
    /// The partition-level error code (0 if none).
    pub error_code: i16,
}

/// One topic in the cluster metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    /// The topic name.
    pub name: String,
    /// The topic-level error code (0 if none; UNKNOWN_TOPIC_OR_PARTITION for a missing topic).
    pub error_code: i16,
    /// Partitions, by index.
    pub partitions: Vec<PartitionInfo>,
}

/// A snapshot of the cluster metadata.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClusterMetadata {
    /// The cluster id, if the broker reports one.
    pub cluster_id: Option<String>,
    /// The controller's node id, or -1.
    pub controller_id: i32,
    /// Live brokers, by node id.
    pub brokers: BTreeMap<i32, BrokerInfo>,
    /// Topics, by name.
    pub topics: BTreeMap<String, TopicInfo>,
}

impl ClusterMetadata {
    /// The partition's metadata, if the topic and partition are known.
    pub fn partition(&self, topic: &str, partition: i32) -> Option<&PartitionInfo> {
        self.topics
            .get(topic)?
            .partitions
            .iter()
            .find(|p| p.partition == partition)
    }
}

/// Client state shared by concurrent calls. Held only for map operations, never across awaits.
#[derive(Default)]
struct State {
    /// Open connections, by `host:port`.
    connections: BTreeMap<String, Arc<Connection>>,
    /// The last metadata seen; `None` forces a refresh.
    metadata: Option<ClusterMetadata>,
}

/// A Kafka client. Cheap to share behind an `Arc`; all methods take `&self`.
pub struct Client {
    bootstrap: Vec<String>,
    config: ClientConfig,
    state: Mutex<State>,
}

impl Client {
    /// Connects to the first reachable bootstrap address and loads the cluster metadata.
    pub async fn connect<S: AsRef<str>>(
        bootstrap: &[S],
        config: ClientConfig,
    ) -> Result<Client, ClientError> {
        let bootstrap: Vec<String> = bootstrap
            .iter()
            .map(|address| address.as_ref().to_owned())
            .collect();
        if bootstrap.is_empty() {
            return Err(ClientError::InvalidArgument {
                detail: "no bootstrap address".to_owned(),
            });
        }
        let client = Client {
            bootstrap,
            config,
            state: Mutex::new(State::default()),
        };
        client.refresh_metadata(None).await?;
        Ok(client)
    }

    /// The cached metadata, refreshed first if a previous error invalidated it.
    pub async fn cached_metadata(&self) -> Result<ClusterMetadata, ClientError> {
        if let Some(metadata) = self.lock().metadata.clone() {
            return Ok(metadata);
        }
        self.refresh_metadata(None).await
    }

    /// Asks a broker for metadata of `topics` (all topics for `None`) and caches the answer.
    /// Never creates topics (`allow_auto_topic_creation` is false where the version has it).
    pub async fn refresh_metadata(
        &self,
        topics: Option<&[&str]>,
    ) -> Result<ClusterMetadata, ClientError> {
        let connection = self.any_connection().await?;
        let version = connection.version(ApiKey::Metadata)?;
        let request = requests::metadata_request(topics, version);
        let response = connection
            .send(ApiKey::Metadata, RequestKind::Metadata(request))
            .await;
        let response = self.observe(&connection, response)?;
        let ResponseKind::Metadata(response) = response else {
            return Err(ClientError::misbehaved(
                "Metadata answered with another API",
            ));
        };
        let metadata = requests::cluster_metadata(response);
        let mut state = self.lock();
        // Partial refreshes must not hide topics the caller did not ask about.
        let mut merged = match (topics, state.metadata.take()) {
            (Some(_), Some(mut old)) => {
                old.topics.extend(metadata.topics.clone());
                old.brokers = metadata.brokers.clone();
                old.controller_id = metadata.controller_id;
                old
            }
            _ => metadata.clone(),
        };
        merged.cluster_id = metadata.cluster_id.clone();
        state.metadata = Some(merged);
        Ok(metadata)
    }

    /// Creates topics through the controller; returns one outcome per topic, in request order.
    pub async fn create_topics(
        &self,
        topics: &[NewTopic],
        timeout_ms: i32,
    ) -> Result<Vec<TopicOutcome>, ClientError> {
        let connection = self.controller_connection().await?;
        let version = connection.version(ApiKey::CreateTopics)?;
        let request = requests::create_topics_request(topics, timeout_ms, version);
        let response = connection
            .send(ApiKey::CreateTopics, RequestKind::CreateTopics(request))
            .await;
        let ResponseKind::CreateTopics(response) = self.observe(&connection, response)? else {
            return Err(ClientError::misbehaved(
                "CreateTopics answered with another API",
            ));
        };
        self.invalidate_metadata();
        Ok(requests::create_topics_outcomes(response))
    }

    /// Deletes topics by name through the controller; returns one outcome per topic.
    pub async fn delete_topics(
        &self,
        names: &[&str],
        timeout_ms: i32,
    ) -> Result<Vec<TopicOutcome>, ClientError> {
        let connection = self.controller_connection().await?;
        let version = connection.version(ApiKey::DeleteTopics)?;
        let request = requests::delete_topics_request(names, timeout_ms, version);
        let response = connection
            .send(ApiKey::DeleteTopics, RequestKind::DeleteTopics(request))
            .await;
        let ResponseKind::DeleteTopics(response) = self.observe(&connection, response)? else {
            return Err(ClientError::misbehaved(
                "DeleteTopics answered with another API",
            ));
        };
        self.invalidate_metadata();
        Ok(requests::delete_topics_outcomes(response))
    }

    /// Encodes `records` as one v2 batch (no producer id, create-time timestamps) and produces
    /// it to the partition leader.
    pub async fn produce(
        &self,
        topic: &str,
        partition: i32,
        records: &[NewRecord],
        acks: Acks,
    ) -> Result<ProducedBatch, ClientError> {
        let Some(first) = records.first() else {
            return Err(ClientError::InvalidArgument {
                detail: "a batch needs at least one record".to_owned(),
            });
        };
        let spec = BatchSpec {
            base_timestamp: first.timestamp,
            ..BatchSpec::default()
        };
        self.produce_batch(topic, partition, record_batch::encode(&spec, records), acks)
            .await
    }

    /// Produces one already-encoded v2 batch to the partition leader. With [`Acks::None`] the
    /// broker sends no response, so the outcome only says the bytes were written.
    pub async fn produce_batch(
        &self,
        topic: &str,
        partition: i32,
        batch: bytes::Bytes,
        acks: Acks,
    ) -> Result<ProducedBatch, ClientError> {
        let connection = self.leader_connection(topic, partition).await?;
        let request =
            requests::produce_request(topic, partition, batch, acks, self.config.request_timeout);
        if acks == Acks::None {
            let sent = connection
                .send_without_response(ApiKey::Produce, RequestKind::Produce(request))
                .await;
            self.observe(&connection, sent)?;
            return Ok(ProducedBatch::unacknowledged());
        }
        let response = connection
            .send(ApiKey::Produce, RequestKind::Produce(request))
            .await;
        let ResponseKind::Produce(response) = self.observe(&connection, response)? else {
            return Err(ClientError::misbehaved("Produce answered with another API"));
        };
        let outcome = requests::produce_outcome(response, topic, partition);
        self.observe_outcome(outcome)
    }

    /// Fetches from one partition's leader starting at `offset`.
    pub async fn fetch(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        options: &FetchOptions,
    ) -> Result<FetchedPartition, ClientError> {
        let connection = self.leader_connection(topic, partition).await?;
        let version = connection.version(ApiKey::Fetch)?;
        let request = requests::fetch_request(topic, partition, offset, options, version);
        let response = connection
            .send(ApiKey::Fetch, RequestKind::Fetch(request))
            .await;
        let ResponseKind::Fetch(response) = self.observe(&connection, response)? else {
            return Err(ClientError::misbehaved("Fetch answered with another API"));
        };
        let outcome =
            requests::fetch_outcome(response, topic, partition, offset, options.isolation_level);
        self.observe_outcome(outcome)
    }

    /// Fetches like [`Client::fetch`] but returns the batches as the broker sent them, without
    /// decoding records: for load generators and tools that count or copy bytes.
    pub async fn fetch_raw(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        options: &FetchOptions,
    ) -> Result<RawFetch, ClientError> {
        let connection = self.leader_connection(topic, partition).await?;
        let version = connection.version(ApiKey::Fetch)?;
        let request = requests::fetch_request(topic, partition, offset, options, version);
        let response = connection
            .send(ApiKey::Fetch, RequestKind::Fetch(request))
            .await;
        let ResponseKind::Fetch(response) = self.observe(&connection, response)? else {
            return Err(ClientError::misbehaved("Fetch answered with another API"));
        };
        let outcome = requests::fetch_raw_outcome(response, topic, partition, offset);
        self.observe_outcome(outcome)
    }

    /// Looks up an offset of one partition on its leader (ListOffsets).
    pub async fn list_offsets(
        &self,
        topic: &str,
        partition: i32,
        spec: OffsetSpec,
        isolation_level: IsolationLevel,
    ) -> Result<PartitionOffset, ClientError> {
        let connection = self.leader_connection(topic, partition).await?;
        let version = connection.version(ApiKey::ListOffsets)?;
        let request =
            requests::list_offsets_request(topic, partition, spec, isolation_level, version)?;
        let response = connection
            .send(ApiKey::ListOffsets, RequestKind::ListOffsets(request))
            .await;
        let ResponseKind::ListOffsets(response) = self.observe(&connection, response)? else {
            return Err(ClientError::misbehaved(
                "ListOffsets answered with another API",
            ));
        };
        let outcome = requests::list_offsets_outcome(response, topic, partition);
        self.observe_outcome(outcome)
    }

    /// The configuration of a topic (DescribeConfigs): `(name, value, source)` per key, where
    /// `source` is Kafka's config source code (1 topic override, 4/5 broker or default).
    pub async fn describe_topic_configs(
        &self,
        topic: &str,
    ) -> Result<Vec<TopicConfigEntry>, ClientError> {
        let connection = self.any_connection().await?;
        let version = connection.version(ApiKey::DescribeConfigs)?;
        let request = requests::describe_topic_configs_request(topic, version);
        let response = connection
            .send(
                ApiKey::DescribeConfigs,
                RequestKind::DescribeConfigs(request),
            )
            .await;
        let ResponseKind::DescribeConfigs(response) = self.observe(&connection, response)? else {
            return Err(ClientError::misbehaved(
                "DescribeConfigs answered with another API",
            ));
        };
        requests::describe_configs_outcome(response)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Every critical section leaves the maps consistent, so a poisoned lock is still usable.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn invalidate_metadata(&self) {
        self.lock().metadata = None;
    }

    /// Drops a connection that failed, so the next call reconnects.
    fn observe<T>(
        &self,
        connection: &Connection,
        result: Result<T, ClientError>,
    ) -> Result<T, ClientError> {
        if result.is_err() && connection.is_closed() {
            let mut state = self.lock();
            state.connections.remove(connection.address());
            state.metadata = None;
        }
        result
    }

    /// Drops the metadata cache on errors that mean it is stale.
    fn observe_outcome<T>(&self, result: Result<T, ClientError>) -> Result<T, ClientError> {
        if let Err(error) = &result {
            if requests::invalidates_metadata(error) {
                self.invalidate_metadata();
            }
        }
        result
    }

    async fn connection_to(&self, address: &str) -> Result<Arc<Connection>, ClientError> {
        if let Some(connection) = self.lock().connections.get(address) {
            if !connection.is_closed() {
                return Ok(connection.clone());
            }
        }
        let config = ConnectionConfig {
            client_id: self.config.client_id.clone(),
            request_timeout: self.config.request_timeout,
            connect_timeout: self.config.connect_timeout,
            response_bytes_max: self.config.response_bytes_max,
            in_flight_max: self.config.in_flight_max,
        };
        let connection = Arc::new(Connection::connect(address, config).await?);
        self.lock()
            .connections
            .insert(address.to_owned(), connection.clone());
        Ok(connection)
    }

    /// A connection to any broker: an open one, else the known brokers, else the bootstrap list.
    async fn any_connection(&self) -> Result<Arc<Connection>, ClientError> {
        let (open, mut candidates) = {
            let state = self.lock();
            let open = state.connections.values().find(|c| !c.is_closed()).cloned();
            let known: Vec<String> = state
                .metadata
                .iter()
                .flat_map(|m| m.brokers.values().map(BrokerInfo::address))
                .collect();
            (open, known)
        };
        if let Some(connection) = open {
            return Ok(connection);
        }
        candidates.extend(self.bootstrap.iter().cloned());
        let mut last_detail = String::new();
        for address in &candidates {
            match self.connection_to(address).await {
                Ok(connection) => return Ok(connection),
                Err(error) => last_detail = error.to_string(),
            }
        }
        Err(ClientError::Connect {
            addresses: candidates,
            detail: last_detail,
        })
    }

    async fn broker_connection(&self, node_id: i32) -> Result<Arc<Connection>, ClientError> {
        let metadata = self.cached_metadata().await?;
        let Some(broker) = metadata.brokers.get(&node_id) else {
            self.invalidate_metadata();
            return Err(ClientError::misbehaved(format!(
                "metadata names unknown broker {node_id}"
            )));
        };
        self.connection_to(&broker.address()).await
    }

    async fn controller_connection(&self) -> Result<Arc<Connection>, ClientError> {
        let metadata = self.cached_metadata().await?;
        if metadata.brokers.contains_key(&metadata.controller_id) {
            return self.broker_connection(metadata.controller_id).await;
        }
        // Since KIP-590 any broker forwards admin requests to the controller.
        self.any_connection().await
    }

    async fn leader_connection(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<Arc<Connection>, ClientError> {
        let mut metadata = self.cached_metadata().await?;
        if metadata.partition(topic, partition).is_none() {
            metadata = self.refresh_metadata(Some(&[topic])).await?;
        }
        let Some(info) = metadata.partition(topic, partition) else {
            return Err(ClientError::UnknownTopicOrPartition {
                topic: topic.to_owned(),
                partition,
            });
        };
        if info.leader < 0 {
            self.invalidate_metadata();
            return Err(ClientError::LeaderNotAvailable {
                topic: topic.to_owned(),
                partition,
            });
        }
        self.broker_connection(info.leader).await
    }
}
