//! Sample requests and responses for every supported API, valid at a given version: each
//! fills the fields that version has with non-default values, so a round trip that drops or
//! misplaces a field shows up as a difference.

use bytes::Bytes;
use kafka_protocol::messages::create_topics_request::{
    CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    create_topics_response, delete_topics_response, fetch_response, list_offsets_response,
    metadata_response, produce_response, ApiKey, ApiVersionsRequest, BrokerId, CreateTopicsRequest,
    CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse, DescribeClusterRequest,
    DescribeClusterResponse, DescribeConfigsRequest, DescribeConfigsResponse, FetchRequest,
    FetchResponse, ListOffsetsRequest, ListOffsetsResponse, MetadataRequest, MetadataResponse,
    ProduceRequest, ProduceResponse, RequestKind, ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use seedlog_core::record_batch::{self, BatchSpec, NewRecord};

pub fn name(s: &'static str) -> TopicName {
    TopicName(StrBytes::from_static_str(s))
}

pub fn text(s: &'static str) -> StrBytes {
    StrBytes::from_static_str(s)
}

/// A valid v2 batch of two records.
pub fn batch() -> Bytes {
    let record = |value: &'static [u8]| NewRecord {
        timestamp: 1_700_000_000_000,
        key: Some(Bytes::from_static(b"k")),
        value: Some(Bytes::from_static(value)),
        headers: Vec::new(),
    };
    let spec = BatchSpec {
        base_timestamp: 1_700_000_000_000,
        ..BatchSpec::default()
    };
    record_batch::encode(&spec, &[record(b"a"), record(b"b")])
}

/// A request of `api_key` with every field `version` has set to something other than its default.
pub fn sample_request(api_key: ApiKey, version: i16) -> RequestKind {
    match api_key {
        ApiKey::ApiVersions => RequestKind::ApiVersions(api_versions_request(version)),
        ApiKey::Metadata => RequestKind::Metadata(metadata_request(version)),
        ApiKey::Produce => RequestKind::Produce(produce_request()),
        ApiKey::Fetch => RequestKind::Fetch(fetch_request(version)),
        ApiKey::ListOffsets => RequestKind::ListOffsets(list_offsets_request(version)),
        ApiKey::CreateTopics => RequestKind::CreateTopics(create_topics_request()),
        ApiKey::DeleteTopics => RequestKind::DeleteTopics(delete_topics_request(version)),
        ApiKey::DescribeConfigs => RequestKind::DescribeConfigs(describe_configs_request(version)),
        ApiKey::DescribeCluster => RequestKind::DescribeCluster(describe_cluster_request(version)),
        other => panic!("no sample for {other:?}"),
    }
}

fn api_versions_request(version: i16) -> ApiVersionsRequest {
    let request = ApiVersionsRequest::default();
    if version < 3 {
        return request;
    }
    request
        .with_client_software_name(text("kcat"))
        .with_client_software_version(text("1.7.1"))
}

fn metadata_request(version: i16) -> MetadataRequest {
    let topics = vec![
        MetadataRequestTopic::default().with_name(Some(name("orders"))),
        MetadataRequestTopic::default().with_name(Some(name("payments"))),
    ];
    let mut request = MetadataRequest::default().with_topics(Some(topics));
    if version >= 4 {
        request = request.with_allow_auto_topic_creation(false);
    }
    if version >= 8 {
        request = request.with_include_topic_authorized_operations(true);
    }
    request
}

fn produce_request() -> ProduceRequest {
    let partitions = vec![
        PartitionProduceData::default()
            .with_index(0)
            .with_records(Some(batch())),
        PartitionProduceData::default()
            .with_index(3)
            .with_records(Some(batch())),
    ];
    let topic = TopicProduceData::default()
        .with_name(name("orders"))
        .with_partition_data(partitions);
    ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(1500)
        .with_topic_data(vec![topic])
}

fn fetch_request(version: i16) -> FetchRequest {
    let mut partition = FetchPartition::default()
        .with_partition(2)
        .with_fetch_offset(17)
        .with_partition_max_bytes(65536);
    if version >= 9 {
        partition = partition.with_current_leader_epoch(4);
    }
    if version >= 5 {
        partition = partition.with_log_start_offset(3);
    }
    if version >= 12 {
        partition = partition.with_last_fetched_epoch(3);
    }
    let topic = FetchTopic::default()
        .with_topic(name("orders"))
        .with_partitions(vec![partition]);
    let mut request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(500)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_isolation_level(1)
        .with_topics(vec![topic]);
    if version >= 7 {
        let forgotten = ForgottenTopic::default()
            .with_topic(name("old"))
            .with_partitions(vec![1, 2]);
        request = request
            .with_session_id(9)
            .with_session_epoch(2)
            .with_forgotten_topics_data(vec![forgotten]);
    }
    if version >= 11 {
        request = request.with_rack_id(text("rack-a"));
    }
    if version >= 12 {
        request = request.with_cluster_id(Some(text("cluster-1")));
    }
    request
}

fn list_offsets_request(version: i16) -> ListOffsetsRequest {
    let mut partition = ListOffsetsPartition::default()
        .with_partition_index(1)
        .with_timestamp(-2);
    if version >= 4 {
        partition = partition.with_current_leader_epoch(6);
    }
    let topic = ListOffsetsTopic::default()
        .with_name(name("orders"))
        .with_partitions(vec![partition]);
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![topic]);
    if version >= 2 {
        return request.with_isolation_level(1);
    }
    request
}

fn create_topics_request() -> CreateTopicsRequest {
    let config = CreatableTopicConfig::default()
        .with_name(text("cleanup.policy"))
        .with_value(Some(text("compact")));
    let assignment = CreatableReplicaAssignment::default()
        .with_partition_index(0)
        .with_broker_ids(vec![BrokerId(1), BrokerId(2)]);
    let topics = vec![
        CreatableTopic::default()
            .with_name(name("orders"))
            .with_num_partitions(3)
            .with_replication_factor(1)
            .with_configs(vec![config]),
        CreatableTopic::default()
            .with_name(name("placed"))
            .with_num_partitions(-1)
            .with_replication_factor(-1)
            .with_assignments(vec![assignment]),
    ];
    CreateTopicsRequest::default()
        .with_topics(topics)
        .with_timeout_ms(5000)
        .with_validate_only(true)
}

fn delete_topics_request(version: i16) -> DeleteTopicsRequest {
    let request = DeleteTopicsRequest::default().with_timeout_ms(2500);
    if version >= 6 {
        let topics = vec![DeleteTopicState::default().with_name(Some(name("orders")))];
        return request.with_topics(topics);
    }
    request.with_topic_names(vec![name("orders"), name("payments")])
}

fn describe_configs_request(version: i16) -> DescribeConfigsRequest {
    let resource = DescribeConfigsResource::default()
        .with_resource_type(2)
        .with_resource_name(text("orders"))
        .with_configuration_keys(Some(vec![text("retention.ms")]));
    let request = DescribeConfigsRequest::default()
        .with_resources(vec![resource])
        .with_include_synonyms(true);
    if version >= 3 {
        return request.with_include_documentation(true);
    }
    request
}

fn describe_cluster_request(version: i16) -> DescribeClusterRequest {
    let request =
        DescribeClusterRequest::default().with_include_cluster_authorized_operations(true);
    if version >= 1 {
        return request.with_endpoint_type(1);
    }
    request
}

/// A response of `api_key` with representative fields set for `version`.
pub fn sample_response(api_key: ApiKey, version: i16) -> ResponseKind {
    match api_key {
        ApiKey::ApiVersions => ResponseKind::ApiVersions(crate::api_versions_response(0)),
        ApiKey::Metadata => ResponseKind::Metadata(metadata_response(version)),
        ApiKey::Produce => ResponseKind::Produce(produce_response(version)),
        ApiKey::Fetch => ResponseKind::Fetch(fetch_response(version)),
        ApiKey::ListOffsets => ResponseKind::ListOffsets(list_offsets_response(version)),
        ApiKey::CreateTopics => ResponseKind::CreateTopics(create_topics_response()),
        ApiKey::DeleteTopics => ResponseKind::DeleteTopics(delete_topics_response()),
        ApiKey::DescribeConfigs => {
            ResponseKind::DescribeConfigs(DescribeConfigsResponse::default())
        }
        ApiKey::DescribeCluster => {
            ResponseKind::DescribeCluster(DescribeClusterResponse::default())
        }
        other => panic!("no sample for {other:?}"),
    }
}

/// A Metadata response naming one broker (`host:port`, node 1) leading `topic` partitions 0..n.
pub fn metadata_response_for(
    version: i16,
    host: &str,
    port: i32,
    topic: &str,
    partitions: i32,
) -> MetadataResponse {
    let broker = metadata_response::MetadataResponseBroker::default()
        .with_node_id(BrokerId(1))
        .with_host(StrBytes::from_string(host.to_owned()))
        .with_port(port);
    let partitions = (0..partitions)
        .map(|index| {
            let partition = metadata_response::MetadataResponsePartition::default()
                .with_partition_index(index)
                .with_leader_id(BrokerId(1))
                .with_replica_nodes(vec![BrokerId(1)])
                .with_isr_nodes(vec![BrokerId(1)]);
            if version >= 7 {
                return partition.with_leader_epoch(2);
            }
            partition
        })
        .collect();
    let topic = metadata_response::MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(topic.to_owned()))))
        .with_partitions(partitions);
    let response = MetadataResponse::default()
        .with_brokers(vec![broker])
        .with_controller_id(BrokerId(1))
        .with_topics(vec![topic]);
    if version >= 2 {
        return response.with_cluster_id(Some(text("cluster-1")));
    }
    response
}

fn metadata_response(version: i16) -> MetadataResponse {
    metadata_response_for(version, "127.0.0.1", 9092, "orders", 2)
}

fn produce_response(version: i16) -> ProduceResponse {
    let mut partition = produce_response::PartitionProduceResponse::default()
        .with_index(0)
        .with_base_offset(42);
    if version >= 5 {
        partition = partition.with_log_start_offset(7);
    }
    let topic = produce_response::TopicProduceResponse::default()
        .with_name(name("orders"))
        .with_partition_responses(vec![partition]);
    ProduceResponse::default().with_responses(vec![topic])
}

pub fn fetch_response_for(version: i16, topic: &str, records: Bytes) -> FetchResponse {
    let mut partition = fetch_response::PartitionData::default()
        .with_partition_index(0)
        .with_high_watermark(2)
        .with_last_stable_offset(2)
        .with_aborted_transactions(Some(Vec::new()))
        .with_records(Some(records));
    if version >= 5 {
        partition = partition.with_log_start_offset(0);
    }
    let topic = fetch_response::FetchableTopicResponse::default()
        .with_topic(TopicName(StrBytes::from_string(topic.to_owned())))
        .with_partitions(vec![partition]);
    FetchResponse::default().with_responses(vec![topic])
}

fn fetch_response(version: i16) -> FetchResponse {
    fetch_response_for(version, "orders", batch())
}

fn list_offsets_response(version: i16) -> ListOffsetsResponse {
    let mut partition = list_offsets_response::ListOffsetsPartitionResponse::default()
        .with_partition_index(1)
        .with_offset(5)
        .with_timestamp(-1);
    if version >= 4 {
        partition = partition.with_leader_epoch(3);
    }
    let topic = list_offsets_response::ListOffsetsTopicResponse::default()
        .with_name(name("orders"))
        .with_partitions(vec![partition]);
    ListOffsetsResponse::default().with_topics(vec![topic])
}

fn create_topics_response() -> CreateTopicsResponse {
    let topic = create_topics_response::CreatableTopicResult::default()
        .with_name(name("orders"))
        .with_error_code(36);
    CreateTopicsResponse::default().with_topics(vec![topic])
}

fn delete_topics_response() -> DeleteTopicsResponse {
    let topic =
        delete_topics_response::DeletableTopicResult::default().with_name(Some(name("orders")));
    DeleteTopicsResponse::default().with_responses(vec![topic])
}
