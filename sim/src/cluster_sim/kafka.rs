//! The simulated clients' side of the Kafka protocol: typed requests built at the versions a
//! client chose, encoded to frames by `seedlog_net`'s codec, and responses decoded by the same
//! codec into the few facts the workload needs.
//!
//! Each client draws its API versions once (within what the broker advertises), so across
//! seeds every supported version of every API the workload uses crosses the wire. Builders set
//! only the fields their version has; readers pick out the partitions asked about.

use bytes::Bytes;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, BrokerId, CreateTopicsRequest, FetchRequest, ListOffsetsRequest,
    MetadataRequest, ProduceRequest, RequestHeader, RequestKind, ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use seedlog_core::record_batch::{self, BatchError, BatchIter, BatchSpec, NewRecord};
use seedlog_core::Prng;
use seedlog_net::kafka_protocol;

use super::history::PartitionKey;
use super::params::TopicSpec;

pub(super) const NONE: i16 = 0;
pub(super) const OFFSET_OUT_OF_RANGE: i16 = 1;
pub(super) const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
pub(super) const LEADER_NOT_AVAILABLE: i16 = 5;
pub(super) const NOT_LEADER_OR_FOLLOWER: i16 = 6;
pub(super) const REQUEST_TIMED_OUT: i16 = 7;
pub(super) const REPLICA_NOT_AVAILABLE: i16 = 9;
pub(super) const NOT_ENOUGH_REPLICAS: i16 = 19;
pub(super) const NOT_ENOUGH_REPLICAS_AFTER_APPEND: i16 = 20;
pub(super) const TOPIC_ALREADY_EXISTS: i16 = 36;
pub(super) const NOT_CONTROLLER: i16 = 41;
pub(super) const KAFKA_STORAGE_ERROR: i16 = 56;
pub(super) const FENCED_LEADER_EPOCH: i16 = 74;
pub(super) const UNKNOWN_LEADER_EPOCH: i16 = 75;
pub(super) const OFFSET_NOT_AVAILABLE: i16 = 78;

/// A Kafka error code's name, for messages.
pub(super) fn error_name(code: i16) -> String {
    kafka_protocol::error::ResponseError::try_from_code(code)
        .map_or_else(|| format!("error {code}"), |e| format!("{e:?}"))
}

/// True if the client should simply try again later (Kafka's retriable errors).
pub(super) fn is_retriable(code: i16) -> bool {
    kafka_protocol::error::ResponseError::try_from_code(code).is_some_and(|e| e.is_retriable())
}

/// What a produce error tells the producer about whether the batch was appended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ProduceFate {
    /// Refused before the append, and worth retrying (after a metadata refresh).
    RetryDefinite,
    /// May have been appended: the operation ends indeterminate.
    Ambiguous,
    /// Refused for good: the operation failed.
    Refused,
}

/// Classifies a produce error code. Kafka checks the leader, the topic and the ISR size
/// before appending; anything raised while waiting for replication (a lost leadership,
/// NOT_ENOUGH_REPLICAS_AFTER_APPEND, a timeout) or by storage may come after the append.
/// NOT_LEADER_OR_FOLLOWER is both (Kafka's DelayedProduce answers it for an appended batch
/// whose leader was deposed), so it counts as ambiguous.
pub(super) fn produce_fate(code: i16) -> ProduceFate {
    match code {
        UNKNOWN_TOPIC_OR_PARTITION | LEADER_NOT_AVAILABLE | NOT_ENOUGH_REPLICAS => {
            ProduceFate::RetryDefinite
        }
        NOT_LEADER_OR_FOLLOWER
        | REQUEST_TIMED_OUT
        | NOT_ENOUGH_REPLICAS_AFTER_APPEND
        | KAFKA_STORAGE_ERROR => ProduceFate::Ambiguous,
        code if is_retriable(code) => ProduceFate::Ambiguous,
        _ => ProduceFate::Refused,
    }
}

/// True if the error means the client's metadata (leaders, epochs, topics) is out of date.
pub(super) fn invalidates_metadata(code: i16) -> bool {
    matches!(
        code,
        NOT_LEADER_OR_FOLLOWER
            | LEADER_NOT_AVAILABLE
            | UNKNOWN_TOPIC_OR_PARTITION
            | FENCED_LEADER_EPOCH
            | UNKNOWN_LEADER_EPOCH
            | REPLICA_NOT_AVAILABLE
            | KAFKA_STORAGE_ERROR
            | NOT_CONTROLLER
            | OFFSET_NOT_AVAILABLE
    )
}

/// The API versions one client speaks.
#[derive(Clone, Copy, Debug)]
pub(super) struct Versions {
    pub api_versions: i16,
    pub metadata: i16,
    pub create_topics: i16,
    pub produce: i16,
    pub fetch: i16,
    pub list_offsets: i16,
}

impl Versions {
    /// Versions drawn within what both the broker advertises and the builders below handle.
    pub(super) fn draw(prng: &mut Prng) -> Versions {
        let mut pick = |api: ApiKey, low: i16, high: i16| {
            let supported = seedlog_net::supported_api(api).expect("the broker serves it");
            let low = low.max(supported.min_version);
            let high = high.min(supported.max_version);
            low + prng.below((high - low + 1) as u64) as i16
        };
        Versions {
            api_versions: pick(ApiKey::ApiVersions, 0, 3),
            metadata: pick(ApiKey::Metadata, 1, 12),
            create_topics: pick(ApiKey::CreateTopics, 2, 7),
            produce: pick(ApiKey::Produce, 3, 9),
            fetch: pick(ApiKey::Fetch, 4, 12),
            list_offsets: pick(ApiKey::ListOffsets, 1, 7),
        }
    }

    pub(super) fn of(&self, api: ApiKey) -> i16 {
        match api {
            ApiKey::ApiVersions => self.api_versions,
            ApiKey::Metadata => self.metadata,
            ApiKey::CreateTopics => self.create_topics,
            ApiKey::Produce => self.produce,
            ApiKey::Fetch => self.fetch,
            ApiKey::ListOffsets => self.list_offsets,
            other => unreachable!("the workload does not send {other:?}"),
        }
    }
}

/// Encodes `body` as a request frame with the client's header.
pub(super) fn encode(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    client_id: &str,
    body: &RequestKind,
) -> Result<Bytes, seedlog_net::EncodeError> {
    let header = RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_string(client_id.to_owned())));
    seedlog_net::encode_request(&header, body)
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_owned()))
}

pub(super) fn api_versions_request(version: i16) -> RequestKind {
    let request = ApiVersionsRequest::default();
    RequestKind::ApiVersions(if version >= 3 {
        request
            .with_client_software_name(StrBytes::from_static_str("seedlog-sim"))
            .with_client_software_version(StrBytes::from_static_str("1"))
    } else {
        request
    })
}

pub(super) fn metadata_request(version: i16) -> RequestKind {
    let request = MetadataRequest::default().with_topics(None);
    RequestKind::Metadata(if version >= 4 {
        request.with_allow_auto_topic_creation(false)
    } else {
        request
    })
}

/// One partition as a Metadata response described it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PartitionMeta {
    pub partition: PartitionKey,
    pub error: i16,
    pub leader: i32,
    /// -1 before Metadata v7.
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

/// The facts of a Metadata response.
#[derive(Clone, Debug, Default)]
pub(crate) struct MetadataView {
    pub partitions: Vec<PartitionMeta>,
}

pub(super) fn read_metadata(body: ResponseKind) -> Option<MetadataView> {
    let ResponseKind::Metadata(response) = body else {
        return None;
    };
    let mut partitions = Vec::new();
    for topic in response.topics {
        let Some(name) = topic.name else { continue };
        for p in topic.partitions {
            partitions.push(PartitionMeta {
                partition: (name.0.to_string(), p.partition_index.max(0) as u32),
                error: p.error_code,
                leader: p.leader_id.0,
                leader_epoch: p.leader_epoch,
                replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
                isr: p.isr_nodes.iter().map(|b| b.0).collect(),
            });
        }
    }
    Some(MetadataView { partitions })
}

pub(super) fn create_topics_request(topics: &[&TopicSpec], timeout_ms: i32) -> RequestKind {
    let topics = topics
        .iter()
        .map(|t| {
            let config = CreatableTopicConfig::default()
                .with_name(StrBytes::from_static_str("min.insync.replicas"))
                .with_value(Some(StrBytes::from_string(
                    t.min_insync_replicas.to_string(),
                )));
            CreatableTopic::default()
                .with_name(topic_name(&t.name))
                .with_num_partitions(t.partitions as i32)
                .with_replication_factor(t.replication_factor as i16)
                .with_configs(vec![config])
        })
        .collect();
    RequestKind::CreateTopics(
        CreateTopicsRequest::default()
            .with_topics(topics)
            .with_timeout_ms(timeout_ms),
    )
}

pub(super) fn read_create_topics(body: ResponseKind) -> Option<Vec<(String, i16)>> {
    let ResponseKind::CreateTopics(response) = body else {
        return None;
    };
    Some(
        response
            .topics
            .into_iter()
            .map(|t| (t.name.0.to_string(), t.error_code))
            .collect(),
    )
}

/// A batch of one record per value, each value in the record's value as 8 big-endian bytes.
pub(super) fn batch(values: &[i64], timestamp: i64) -> Bytes {
    let records: Vec<NewRecord> = values
        .iter()
        .map(|v| NewRecord {
            timestamp,
            key: None,
            value: Some(Bytes::copy_from_slice(&v.to_be_bytes())),
            headers: Vec::new(),
        })
        .collect();
    record_batch::encode(
        &BatchSpec {
            base_timestamp: timestamp,
            ..BatchSpec::default()
        },
        &records,
    )
}

pub(super) fn produce_request(
    partition: &PartitionKey,
    acks: i16,
    timeout_ms: i32,
    batch: Bytes,
) -> RequestKind {
    let data = PartitionProduceData::default()
        .with_index(partition.1 as i32)
        .with_records(Some(batch));
    let topic = TopicProduceData::default()
        .with_name(topic_name(&partition.0))
        .with_partition_data(vec![data]);
    RequestKind::Produce(
        ProduceRequest::default()
            .with_acks(acks)
            .with_timeout_ms(timeout_ms)
            .with_topic_data(vec![topic]),
    )
}

/// The partition's (error, base offset) in a Produce response.
pub(super) fn read_produce(body: ResponseKind, partition: &PartitionKey) -> Option<(i16, i64)> {
    let ResponseKind::Produce(response) = body else {
        return None;
    };
    response
        .responses
        .into_iter()
        .filter(|t| t.name.0.as_str() == partition.0)
        .flat_map(|t| t.partition_responses)
        .find(|p| p.index == partition.1 as i32)
        .map(|p| (p.error_code, p.base_offset))
}

/// One partition to fetch: where from, and the leader epoch the client believes in.
#[derive(Clone, Debug)]
pub(crate) struct FetchTarget {
    pub partition: PartitionKey,
    pub offset: i64,
    pub leader_epoch: i32,
}

pub(super) fn fetch_request(
    version: i16,
    max_wait_ms: i32,
    targets: &[FetchTarget],
) -> RequestKind {
    let mut topics: Vec<FetchTopic> = Vec::new();
    for t in targets {
        let mut partition = FetchPartition::default()
            .with_partition(t.partition.1 as i32)
            .with_fetch_offset(t.offset)
            .with_partition_max_bytes(64 * 1024);
        // KIP-320: from v9 the consumer names the leader epoch it fetches in, so a stale or
        // future leader answers FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH.
        if version >= 9 && t.leader_epoch >= 0 {
            partition = partition.with_current_leader_epoch(t.leader_epoch);
        }
        match topics
            .iter_mut()
            .find(|f| f.topic.0.as_str() == t.partition.0)
        {
            Some(topic) => topic.partitions.push(partition),
            None => topics.push(
                FetchTopic::default()
                    .with_topic(topic_name(&t.partition.0))
                    .with_partitions(vec![partition]),
            ),
        }
    }
    RequestKind::Fetch(
        FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(max_wait_ms)
            .with_min_bytes(1)
            .with_max_bytes(256 * 1024)
            .with_topics(topics),
    )
}

/// What a Fetch response said about one partition.
#[derive(Clone, Debug)]
pub(crate) struct FetchedPartition {
    pub partition: PartitionKey,
    pub error: i16,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    /// (offset, value) of every record at or after the fetch offset, in order.
    pub records: Vec<(i64, Option<i64>)>,
    /// A batch that failed its checks (anything but a truncated last batch).
    pub corrupt: Option<String>,
}

pub(super) fn read_fetch(
    body: ResponseKind,
    targets: &[FetchTarget],
) -> Option<(i16, Vec<FetchedPartition>)> {
    let ResponseKind::Fetch(response) = body else {
        return None;
    };
    let mut out = Vec::new();
    for topic in response.responses {
        for p in topic.partitions {
            let partition = (topic.topic.0.to_string(), p.partition_index.max(0) as u32);
            let from = targets
                .iter()
                .find(|t| t.partition == partition)
                .map_or(0, |t| t.offset);
            let (records, corrupt) = read_records(p.records.as_deref().unwrap_or(&[]), from);
            out.push(FetchedPartition {
                partition,
                error: p.error_code,
                high_watermark: p.high_watermark,
                last_stable_offset: p.last_stable_offset,
                log_start_offset: p.log_start_offset,
                records,
                corrupt,
            });
        }
    }
    Some((response.error_code, out))
}

/// Decodes batches; a truncated last batch ends the walk (the broker cuts at the byte limit).
fn read_records(bytes: &[u8], from: i64) -> (Vec<(i64, Option<i64>)>, Option<String>) {
    let mut records = Vec::new();
    for batch in BatchIter::new(bytes) {
        let (header, batch_bytes) = match batch {
            Ok(batch) => batch,
            Err(BatchError::Truncated { .. }) => break,
            Err(error) => return (records, Some(format!("{error:?}"))),
        };
        let decoded = match record_batch::decode_records(batch_bytes, &header) {
            Ok(decoded) => decoded,
            Err(error) => return (records, Some(format!("{error:?}"))),
        };
        for record in decoded {
            let offset = header.base_offset + i64::from(record.offset_delta);
            if offset < from {
                continue;
            }
            let value = record
                .value
                .as_deref()
                .and_then(|v| v.try_into().ok())
                .map(i64::from_be_bytes);
            records.push((offset, value));
        }
    }
    (records, None)
}

pub(super) fn list_offsets_request(
    version: i16,
    partition: &PartitionKey,
    leader_epoch: i32,
    timestamp: i64,
) -> RequestKind {
    let mut p = ListOffsetsPartition::default()
        .with_partition_index(partition.1 as i32)
        .with_timestamp(timestamp);
    if version >= 4 && leader_epoch >= 0 {
        p = p.with_current_leader_epoch(leader_epoch);
    }
    let topic = ListOffsetsTopic::default()
        .with_name(topic_name(&partition.0))
        .with_partitions(vec![p]);
    RequestKind::ListOffsets(
        ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![topic]),
    )
}

/// The partition's (error, offset) in a ListOffsets response.
pub(super) fn read_list_offsets(
    body: ResponseKind,
    partition: &PartitionKey,
) -> Option<(i16, i64)> {
    let ResponseKind::ListOffsets(response) = body else {
        return None;
    };
    response
        .topics
        .into_iter()
        .filter(|t| t.name.0.as_str() == partition.0)
        .flat_map(|t| t.partitions)
        .find(|p| p.partition_index == partition.1 as i32)
        .map(|p| (p.error_code, p.offset))
}

pub(super) fn api_of(body: &RequestKind) -> ApiKey {
    seedlog_net::codec::request_api_key(body).expect("the workload sends only encodable APIs")
}
