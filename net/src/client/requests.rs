//! Building requests and reading responses: pure functions, one pair per API, so they can be
//! tested without sockets.
//!
//! Each builder fills only the fields the negotiated version has (`kafka-protocol` refuses to
//! encode a non-default value in a field the version lacks), and each reader picks the one
//! topic/partition the client asked about out of the response, turning a non-zero error code
//! into [`ClientError::Kafka`].

use super::error::ClientError;
use super::{BrokerInfo, ClusterMetadata, PartitionInfo, TopicInfo};
use bytes::Bytes;
use kafka_protocol::error::ResponseError as KafkaCode;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::AbortedTransaction;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    BrokerId, CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse,
    FetchRequest, FetchResponse, ListOffsetsRequest, ListOffsetsResponse, MetadataRequest,
    MetadataResponse, ProduceRequest, ProduceResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use seedlog_core::record_batch::{decode_records, BatchError, BatchHeader, BatchIter, Header};
use std::collections::BTreeSet;
use std::time::Duration;

/// How many replicas must have a produced batch before the leader answers (`acks`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// `acks=0`: the broker does not answer at all.
    None,
    /// `acks=1`: the leader has appended the batch.
    Leader,
    /// `acks=all` (-1): every in-sync replica has the batch.
    All,
}

impl Acks {
    fn wire(self) -> i16 {
        match self {
            Acks::None => 0,
            Acks::Leader => 1,
            Acks::All => -1,
        }
    }
}

/// Which records a fetch may return (KIP-98).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IsolationLevel {
    /// Everything up to the high watermark.
    #[default]
    ReadUncommitted,
    /// Only up to the last stable offset, without records of aborted transactions.
    ReadCommitted,
}

impl IsolationLevel {
    fn wire(self) -> i8 {
        match self {
            IsolationLevel::ReadUncommitted => 0,
            IsolationLevel::ReadCommitted => 1,
        }
    }
}

/// Which offset ListOffsets should look up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    /// The log start offset (timestamp -2).
    Earliest,
    /// The log end offset, or the last stable offset under read_committed (timestamp -1).
    Latest,
    /// The first offset whose timestamp is at or after this many milliseconds since the epoch.
    Timestamp(i64),
}

/// A topic to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTopic {
    /// The topic name.
    pub name: String,
    /// Number of partitions, or -1 for the broker default.
    pub partitions: i32,
    /// Replication factor, or -1 for the broker default.
    pub replication_factor: i16,
    /// Topic configs (`cleanup.policy`, `min.insync.replicas`, ...).
    pub configs: Vec<(String, String)>,
}

/// The outcome for one topic of CreateTopics or DeleteTopics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicOutcome {
    /// The topic name.
    pub name: String,
    /// `Ok` or the broker's error for this topic.
    pub result: Result<(), ClientError>,
}

/// Where a produced batch landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducedBatch {
    /// Offset of the batch's first record, or -1 with `acks=0`.
    pub base_offset: i64,
    /// The append time if the topic uses log-append time, else -1.
    pub log_append_time_ms: i64,
    /// The partition's log start offset, or -1 if unknown.
    pub log_start_offset: i64,
}

impl ProducedBatch {
    pub(crate) fn unacknowledged() -> ProducedBatch {
        ProducedBatch {
            base_offset: -1,
            log_append_time_ms: -1,
            log_start_offset: -1,
        }
    }
}

/// Fetch limits and isolation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchOptions {
    /// Longest time the broker may wait for `min_bytes` (`fetch.max.wait.ms`).
    pub max_wait_ms: i32,
    /// Bytes the broker waits for before answering (`fetch.min.bytes`).
    pub min_bytes: i32,
    /// Byte limit for the whole response (`fetch.max.bytes`).
    pub max_bytes: i32,
    /// Byte limit for this partition (`max.partition.fetch.bytes`).
    pub partition_max_bytes: i32,
    /// Isolation level.
    pub isolation_level: IsolationLevel,
}

impl Default for FetchOptions {
    fn default() -> FetchOptions {
        FetchOptions {
            max_wait_ms: 500,
            min_bytes: 1,
            max_bytes: 50 * 1024 * 1024,
            partition_max_bytes: 1024 * 1024,
            isolation_level: IsolationLevel::ReadUncommitted,
        }
    }
}

/// One record returned by a fetch, with absolute offset and timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedRecord {
    /// The record's offset.
    pub offset: i64,
    /// Its timestamp (create time, or the batch's log-append time).
    pub timestamp: i64,
    /// Key, or null.
    pub key: Option<Bytes>,
    /// Value, or null.
    pub value: Option<Bytes>,
    /// Headers, in order.
    pub headers: Vec<Header>,
}

/// What a fetch returned for one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedPartition {
    /// The partition's high watermark.
    pub high_watermark: i64,
    /// The last stable offset, or -1 if unknown.
    pub last_stable_offset: i64,
    /// The log start offset, or -1 if unknown.
    pub log_start_offset: i64,
    /// Data records at or after the requested offset; control records and, under
    /// read_committed, records of aborted transactions are left out.
    pub records: Vec<FetchedRecord>,
    /// The offset to fetch next: one past the last complete batch returned (control batches
    /// included), or the requested offset if none was.
    pub next_offset: i64,
}

pub(crate) fn metadata_request(topics: Option<&[&str]>, version: i16) -> MetadataRequest {
    let topics = topics.map(|names| {
        names
            .iter()
            .map(|name| MetadataRequestTopic::default().with_name(Some(topic_name(name))))
            .collect()
    });
    let request = MetadataRequest::default().with_topics(topics);
    // Before v4 the field does not exist and the broker decides; from v4 we never auto-create.
    if version >= 4 {
        request.with_allow_auto_topic_creation(false)
    } else {
        request
    }
}

pub(crate) fn cluster_metadata(response: MetadataResponse) -> ClusterMetadata {
    let brokers = response.brokers.into_iter().map(|broker| {
        let info = BrokerInfo {
            node_id: broker.node_id.0,
            host: broker.host.to_string(),
            port: broker.port,
            rack: broker.rack.map(|rack| rack.to_string()),
        };
        (info.node_id, info)
    });
    let topics = response.topics.into_iter().filter_map(|topic| {
        let name = topic.name?.0.to_string();
        let partitions = topic
            .partitions
            .into_iter()
            .map(|p| PartitionInfo {
                partition: p.partition_index,
                leader: p.leader_id.0,
                leader_epoch: p.leader_epoch,
                replicas: p.replica_nodes.into_iter().map(|id| id.0).collect(),
                isr: p.isr_nodes.into_iter().map(|id| id.0).collect(),
                error_code: p.error_code,
            })
            .collect();
        Some((
            name.clone(),
            TopicInfo {
                name,
                error_code: topic.error_code,
                partitions,
            },
        ))
    });
    ClusterMetadata {
        cluster_id: response.cluster_id.map(|id| id.to_string()),
        controller_id: response.controller_id.0,
        brokers: brokers.collect(),
        topics: topics.collect(),
    }
}

pub(crate) fn create_topics_request(
    topics: &[NewTopic],
    timeout_ms: i32,
    _version: i16,
) -> CreateTopicsRequest {
    let topics = topics
        .iter()
        .map(|topic| {
            let configs = topic
                .configs
                .iter()
                .map(|(name, value)| {
                    CreatableTopicConfig::default()
                        .with_name(StrBytes::from_string(name.clone()))
                        .with_value(Some(StrBytes::from_string(value.clone())))
                })
                .collect();
            CreatableTopic::default()
                .with_name(topic_name(&topic.name))
                .with_num_partitions(topic.partitions)
                .with_replication_factor(topic.replication_factor)
                .with_configs(configs)
        })
        .collect();
    CreateTopicsRequest::default()
        .with_topics(topics)
        .with_timeout_ms(timeout_ms)
}

pub(crate) fn create_topics_outcomes(response: CreateTopicsResponse) -> Vec<TopicOutcome> {
    response
        .topics
        .into_iter()
        .map(|topic| TopicOutcome {
            name: topic.name.0.to_string(),
            result: ClientError::check(topic.error_code, topic.error_message.as_deref()),
        })
        .collect()
}

pub(crate) fn delete_topics_request(
    names: &[&str],
    timeout_ms: i32,
    version: i16,
) -> DeleteTopicsRequest {
    let request = DeleteTopicsRequest::default().with_timeout_ms(timeout_ms);
    // v6 replaced the list of names with a list of (name, topic id) (KIP-516).
    if version >= 6 {
        let topics = names
            .iter()
            .map(|name| DeleteTopicState::default().with_name(Some(topic_name(name))))
            .collect();
        request.with_topics(topics)
    } else {
        request.with_topic_names(names.iter().map(|name| topic_name(name)).collect())
    }
}

pub(crate) fn delete_topics_outcomes(response: DeleteTopicsResponse) -> Vec<TopicOutcome> {
    response
        .responses
        .into_iter()
        .map(|topic| TopicOutcome {
            name: topic
                .name
                .map(|name| name.0.to_string())
                .unwrap_or_default(),
            result: ClientError::check(topic.error_code, topic.error_message.as_deref()),
        })
        .collect()
}

pub(crate) fn produce_request(
    topic: &str,
    partition: i32,
    batch: Bytes,
    acks: Acks,
    timeout: Duration,
) -> ProduceRequest {
    let partition_data = PartitionProduceData::default()
        .with_index(partition)
        .with_records(Some(batch));
    let topic_data = TopicProduceData::default()
        .with_name(topic_name(topic))
        .with_partition_data(vec![partition_data]);
    ProduceRequest::default()
        .with_acks(acks.wire())
        .with_timeout_ms(i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX))
        .with_topic_data(vec![topic_data])
}

pub(crate) fn produce_outcome(
    response: ProduceResponse,
    topic: &str,
    partition: i32,
) -> Result<ProducedBatch, ClientError> {
    let found = response
        .responses
        .into_iter()
        .filter(|t| t.name.0.as_str() == topic)
        .flat_map(|t| t.partition_responses)
        .find(|p| p.index == partition);
    let Some(p) = found else {
        return Err(ClientError::misbehaved(format!(
            "Produce response lacks {topic}-{partition}"
        )));
    };
    ClientError::check(p.error_code, p.error_message.as_deref())?;
    Ok(ProducedBatch {
        base_offset: p.base_offset,
        log_append_time_ms: p.log_append_time_ms,
        log_start_offset: p.log_start_offset,
    })
}

pub(crate) fn fetch_request(
    topic: &str,
    partition: i32,
    offset: i64,
    options: &FetchOptions,
    _version: i16,
) -> FetchRequest {
    let fetch_partition = FetchPartition::default()
        .with_partition(partition)
        .with_fetch_offset(offset)
        .with_partition_max_bytes(options.partition_max_bytes);
    let fetch_topic = FetchTopic::default()
        .with_topic(topic_name(topic))
        .with_partitions(vec![fetch_partition]);
    // Session id 0 with epoch -1 is a full, sessionless fetch (KIP-227).
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(options.max_wait_ms)
        .with_min_bytes(options.min_bytes)
        .with_max_bytes(options.max_bytes)
        .with_isolation_level(options.isolation_level.wire())
        .with_topics(vec![fetch_topic])
}

pub(crate) fn fetch_outcome(
    response: FetchResponse,
    topic: &str,
    partition: i32,
    offset: i64,
    isolation_level: IsolationLevel,
) -> Result<FetchedPartition, ClientError> {
    ClientError::check(response.error_code, None)?;
    let found = response
        .responses
        .into_iter()
        .filter(|t| t.topic.0.as_str() == topic)
        .flat_map(|t| t.partitions)
        .find(|p| p.partition_index == partition);
    let Some(p) = found else {
        return Err(ClientError::misbehaved(format!(
            "Fetch response lacks {topic}-{partition}"
        )));
    };
    ClientError::check(p.error_code, None)?;
    let aborted = match isolation_level {
        IsolationLevel::ReadCommitted => p.aborted_transactions.unwrap_or_default(),
        IsolationLevel::ReadUncommitted => Vec::new(),
    };
    let records = p.records.unwrap_or_default();
    let (records, next_offset) = read_batches(&records, offset, aborted)?;
    Ok(FetchedPartition {
        high_watermark: p.high_watermark,
        last_stable_offset: p.last_stable_offset,
        log_start_offset: p.log_start_offset,
        records,
        next_offset,
    })
}

/// Decodes the batches of a fetch response. A truncated last batch is normal (the broker cuts
/// the response at the byte limit) and ends the walk; any other batch error is the broker's.
///
/// Under read_committed, the broker lists the aborted transactions overlapping the response
/// and the client drops their records, as the Java consumer does: a producer's transactional
/// batches are skipped from its aborted transaction's first offset until its abort marker.
pub(crate) fn read_batches(
    bytes: &[u8],
    offset: i64,
    mut aborted: Vec<AbortedTransaction>,
) -> Result<(Vec<FetchedRecord>, i64), ClientError> {
    aborted.sort_by_key(|txn| std::cmp::Reverse(txn.first_offset));
    let mut aborting: BTreeSet<i64> = BTreeSet::new();
    let mut records = Vec::new();
    let mut next_offset = offset;
    for batch in BatchIter::new(bytes) {
        let (header, batch_bytes) = match batch {
            Ok(batch) => batch,
            Err(BatchError::Truncated { .. }) => break,
            Err(error) => return Err(error.into()),
        };
        while aborted
            .last()
            .is_some_and(|txn| txn.first_offset <= header.last_offset())
        {
            let txn = aborted.pop().expect("last() was Some");
            aborting.insert(txn.producer_id.0);
        }
        next_offset = next_offset.max(header.next_offset());
        if header.is_control() {
            aborting.remove(&header.producer_id);
            continue;
        }
        if header.is_transactional() && aborting.contains(&header.producer_id) {
            continue;
        }
        append_records(&mut records, batch_bytes, &header, offset)?;
    }
    Ok((records, next_offset))
}

fn append_records(
    out: &mut Vec<FetchedRecord>,
    batch: &[u8],
    header: &BatchHeader,
    offset: i64,
) -> Result<(), ClientError> {
    for record in decode_records(batch, header)? {
        let record_offset = header.base_offset + i64::from(record.offset_delta);
        // A fetch starts at the batch holding `offset`, which may begin earlier.
        if record_offset < offset {
            continue;
        }
        let timestamp = if header.is_log_append_time() {
            header.max_timestamp
        } else {
            header.base_timestamp.wrapping_add(record.timestamp_delta)
        };
        out.push(FetchedRecord {
            offset: record_offset,
            timestamp,
            key: record.key,
            value: record.value,
            headers: record.headers,
        });
    }
    Ok(())
}

pub(crate) fn list_offsets_request(
    topic: &str,
    partition: i32,
    spec: OffsetSpec,
    isolation_level: IsolationLevel,
    version: i16,
) -> Result<ListOffsetsRequest, ClientError> {
    let timestamp = match spec {
        OffsetSpec::Earliest => -2,
        OffsetSpec::Latest => -1,
        OffsetSpec::Timestamp(t) if t >= 0 => t,
        OffsetSpec::Timestamp(t) => {
            return Err(ClientError::InvalidArgument {
                detail: format!("negative timestamp {t}"),
            });
        }
    };
    let list_partition = ListOffsetsPartition::default()
        .with_partition_index(partition)
        .with_timestamp(timestamp);
    let list_topic = ListOffsetsTopic::default()
        .with_name(topic_name(topic))
        .with_partitions(vec![list_partition]);
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![list_topic]);
    // Isolation arrived in v2 (KIP-98); v1 always reads uncommitted.
    if version >= 2 {
        return Ok(request.with_isolation_level(isolation_level.wire()));
    }
    if isolation_level == IsolationLevel::ReadCommitted {
        return Err(ClientError::UnsupportedVersion {
            api_key: kafka_protocol::messages::ApiKey::ListOffsets,
        });
    }
    Ok(request)
}

/// The offset ListOffsets found, and the timestamp of that record (-1 when not by timestamp).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionOffset {
    /// The offset, or -1 if no record has a timestamp at or after the one asked for.
    pub offset: i64,
    /// The record's timestamp, or -1.
    pub timestamp: i64,
    /// The leader epoch of that offset, or -1.
    pub leader_epoch: i32,
}

pub(crate) fn list_offsets_outcome(
    response: ListOffsetsResponse,
    topic: &str,
    partition: i32,
) -> Result<PartitionOffset, ClientError> {
    let found = response
        .topics
        .into_iter()
        .filter(|t| t.name.0.as_str() == topic)
        .flat_map(|t| t.partitions)
        .find(|p| p.partition_index == partition);
    let Some(p) = found else {
        return Err(ClientError::misbehaved(format!(
            "ListOffsets response lacks {topic}-{partition}"
        )));
    };
    ClientError::check(p.error_code, None)?;
    Ok(PartitionOffset {
        offset: p.offset,
        timestamp: p.timestamp,
        leader_epoch: p.leader_epoch,
    })
}

/// Whether an error means the cached metadata (leaders, topics) is out of date.
pub(crate) fn invalidates_metadata(error: &ClientError) -> bool {
    matches!(
        error.kafka_code(),
        Some(
            KafkaCode::NotLeaderOrFollower
                | KafkaCode::LeaderNotAvailable
                | KafkaCode::UnknownTopicOrPartition
                | KafkaCode::FencedLeaderEpoch
                | KafkaCode::UnknownLeaderEpoch
                | KafkaCode::NotController
        )
    )
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_owned()))
}

/// One config of a topic as DescribeConfigs reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicConfigEntry {
    /// The key.
    pub name: String,
    /// The value, if not sensitive.
    pub value: Option<String>,
    /// Kafka's config source code (1 topic override, 4 static broker, 5 default).
    pub source: i8,
}

pub(crate) fn describe_topic_configs_request(
    topic: &str,
    version: i16,
) -> kafka_protocol::messages::DescribeConfigsRequest {
    use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
    let resource = DescribeConfigsResource::default()
        .with_resource_type(2)
        .with_resource_name(StrBytes::from_string(topic.to_owned()))
        // Null (not empty) asks for every key.
        .with_configuration_keys(None);
    let _ = version;
    kafka_protocol::messages::DescribeConfigsRequest::default().with_resources(vec![resource])
}

pub(crate) fn describe_configs_outcome(
    response: kafka_protocol::messages::DescribeConfigsResponse,
) -> Result<Vec<TopicConfigEntry>, ClientError> {
    let Some(result) = response.results.into_iter().next() else {
        return Err(ClientError::misbehaved(
            "DescribeConfigs response lacks the topic",
        ));
    };
    ClientError::check(result.error_code, result.error_message.as_deref())?;
    Ok(result
        .configs
        .into_iter()
        .map(|c| TopicConfigEntry {
            name: c.name.to_string(),
            value: c.value.map(|v| v.to_string()),
            source: c.config_source,
        })
        .collect())
}

/// A fetch's batches, undecoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFetch {
    /// The partition's high watermark.
    pub high_watermark: i64,
    /// Whole batches as stored (a trailing partial batch is cut off).
    pub records: Bytes,
    /// One past the last whole batch, or the requested offset if none.
    pub next_offset: i64,
}

pub(crate) fn fetch_raw_outcome(
    response: FetchResponse,
    topic: &str,
    partition: i32,
    offset: i64,
) -> Result<RawFetch, ClientError> {
    ClientError::check(response.error_code, None)?;
    let found = response
        .responses
        .into_iter()
        .filter(|t| t.topic.0.as_str() == topic)
        .flat_map(|t| t.partitions)
        .find(|p| p.partition_index == partition);
    let Some(p) = found else {
        return Err(ClientError::misbehaved(format!(
            "Fetch response lacks {topic}-{partition}"
        )));
    };
    ClientError::check(p.error_code, None)?;
    let records = p.records.unwrap_or_default();
    // Walk batch headers only (no CRC, no records): enough to know where to continue.
    let mut position = 0usize;
    let mut next_offset = offset;
    while let Ok(header) = BatchHeader::parse(&records[position..]) {
        let size = header.size() as usize;
        if header.batch_length < 0 || position + size > records.len() {
            break;
        }
        position += size;
        next_offset = next_offset.max(header.next_offset());
    }
    Ok(RawFetch {
        high_watermark: p.high_watermark,
        records: records.slice(..position),
        next_offset,
    })
}
