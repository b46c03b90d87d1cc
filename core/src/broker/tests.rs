//! Tests that drive the broker, as a node that is a cluster of one (the way `seedlog node` runs
//! with no arguments), against an in-memory disk, and assert on the exact responses it emits.

use super::*;
use crate::cluster::metadata::Endpoint;
use crate::cluster::{Node, NodeConfig, NodeInput, NodeOutput};
use crate::io::mem_disk::MemDisk;

use crate::record_batch::{encode, BatchSpec, NewRecord};
use bytes::Bytes;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use proptest::prelude::*;

/// One response as the driver would see it.
#[derive(Debug)]
struct Answer {
    connection: ConnectionId,
    context: RequestContext,
    body: Option<Box<ResponseKind>>,
}

struct Harness {
    node: Node,
    disk: MemDisk,
    now: Instant,
    /// Disk requests emitted and not yet executed, in emission order.
    queued: VecDeque<DiskRequest>,
    answers: Vec<Answer>,
    closed: Vec<ConnectionId>,
    next_correlation: i32,
    shutdown_complete: bool,
}

/// Kafka's INVALID_CONFIG, which the controller answers for a bad topic config.
const INVALID_CONFIG: i16 = 40;

/// Simulated time a call may take before the harness gives up on it.
const CALL_LIMIT: Duration = Duration::from_secs(30);

impl Harness {
    /// A node that is a cluster of one, as `seedlog node` runs with no arguments, recovered,
    /// elected its own controller and admitted as a broker.
    fn new(config: BrokerConfig) -> Harness {
        Harness::with_disk(config, MemDisk::default())
    }

    fn with_disk(config: BrokerConfig, disk: MemDisk) -> Harness {
        let mut h = Harness::start(config, disk);
        h.settle();
        h
    }

    /// A node that has emitted its first recovery requests and executed none.
    fn start(config: BrokerConfig, disk: MemDisk) -> Harness {
        let now = Instant(1_700_000_000_000_000_000);
        let node = Node::new(node_config(config), 7, now);
        let mut h = Harness {
            node,
            disk,
            now,
            queued: VecDeque::new(),
            answers: Vec::new(),
            closed: Vec::new(),
            next_correlation: 1000,
            shutdown_complete: false,
        };
        h.collect();
        h
    }

    /// Runs disk and timers until the broker serves clients.
    fn settle(&mut self) {
        let deadline = self.now + CALL_LIMIT;
        while !self.node.broker().is_serving() {
            assert!(self.now < deadline, "the node never started serving");
            self.run_disk();
            if !self.node.broker().is_serving() {
                self.tick();
            }
        }
        self.run_disk();
    }

    fn collect(&mut self) {
        while let Some(output) = self.node.poll_output() {
            match output {
                NodeOutput::Disk(request) => self.queued.push_back(request),
                NodeOutput::Response {
                    connection,
                    context,
                    body,
                } => self.answers.push(Answer {
                    connection,
                    context,
                    body,
                }),
                NodeOutput::CloseConnection { connection } => self.closed.push(connection),
                NodeOutput::ShutdownComplete => self.shutdown_complete = true,
                NodeOutput::Event(_) => {}
                NodeOutput::Send { to, .. } => panic!("a cluster of one sent to node {to}"),
            }
        }
    }

    fn input(&mut self, input: NodeInput) {
        self.node.handle(self.now, input);
        self.collect();
    }

    /// Executes one queued disk request (the oldest), if any.
    fn step_disk(&mut self) -> bool {
        let Some(request) = self.queued.pop_front() else {
            return false;
        };
        let result = self.disk.execute(request.op);
        self.input(NodeInput::Disk(DiskCompletion {
            id: request.id,
            result,
        }));
        true
    }

    fn run_disk(&mut self) {
        while self.step_disk() {}
    }

    /// Moves time to the node's next deadline and fires it.
    fn tick(&mut self) {
        let at = self.node.poll_timeout().expect("a node always has a timer");
        self.now = self.now.max(at);
        self.input(NodeInput::Timeout);
    }

    fn send(
        &mut self,
        connection: ConnectionId,
        api_key: ApiKey,
        api_version: i16,
        body: RequestKind,
    ) -> i32 {
        self.next_correlation += 1;
        let context = RequestContext {
            api_key,
            api_version,
            correlation_id: self.next_correlation,
        };
        self.input(NodeInput::Request {
            connection,
            context,
            body,
        });
        self.next_correlation
    }

    fn answered(&mut self, correlation: i32) -> Option<Answer> {
        let index = self
            .answers
            .iter()
            .position(|a| a.context.correlation_id == correlation)?;
        Some(self.answers.remove(index))
    }

    /// Sends a request, runs disk and timers until it is answered, and returns its response.
    fn call(&mut self, api_key: ApiKey, api_version: i16, body: RequestKind) -> ResponseKind {
        let correlation = self.send(1, api_key, api_version, body);
        let deadline = self.now + CALL_LIMIT;
        loop {
            self.run_disk();
            if let Some(answer) = self.answered(correlation) {
                self.run_disk();
                return *answer.body.expect("a response body");
            }
            assert!(self.now < deadline, "{api_key:?} was never answered");
            self.tick();
        }
    }

    fn create_topic(&mut self, name: &str, partitions: i32, configs: &[(&str, &str)]) -> i16 {
        let configs = configs
            .iter()
            .map(|(k, v)| {
                CreatableTopicConfig::default()
                    .with_name(StrBytes::from_string(k.to_string()))
                    .with_value(Some(StrBytes::from_string(v.to_string())))
            })
            .collect();
        let topic = CreatableTopic::default()
            .with_name(topic_name(name))
            .with_num_partitions(partitions)
            .with_replication_factor(1)
            .with_configs(configs);
        let request = CreateTopicsRequest::default().with_topics(vec![topic]);
        let ResponseKind::CreateTopics(response) =
            self.call(ApiKey::CreateTopics, 7, RequestKind::CreateTopics(request))
        else {
            panic!("wrong response")
        };
        let code = response.topics[0].error_code;
        if code == errors::NONE {
            self.wait_for_leaders(name);
        }
        code
    }

    /// Runs until every partition of `name` is led here and serving, as a client that retries
    /// NOT_LEADER_OR_FOLLOWER would.
    fn wait_for_leaders(&mut self, name: &str) {
        let deadline = self.now + CALL_LIMIT;
        loop {
            self.run_disk();
            let ready = self
                .node
                .broker()
                .topics
                .get(name)
                .is_some_and(|t| {
                    t.partitions.len() == t.partition_count as usize
                        && t.partitions.iter().all(|p| {
                            p.is_serving() && matches!(p.role, replica::Role::Leader(_))
                        })
                });
            if ready {
                return;
            }
            assert!(self.now < deadline, "{name} never got its leaders");
            self.tick();
        }
    }
}

/// A single node's settings with short timers, so the tests spend little simulated time on
/// elections and heartbeats.
fn node_config(broker: BrokerConfig) -> NodeConfig {
    let endpoint = Endpoint {
        host: "127.0.0.1".into(),
        port: 9092,
    };
    let mut config = NodeConfig::single(endpoint, broker);
    config.heartbeat_interval = Duration::from_millis(50);
    config.raft_timing = (
        Duration::from_millis(150),
        Duration::from_millis(300),
        Duration::from_millis(50),
    );
    config
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_owned()))
}

fn batch(values: &[&str]) -> Bytes {
    let records: Vec<NewRecord> = values
        .iter()
        .map(|v| NewRecord {
            timestamp: 1_000 + v.len() as i64,
            key: None,
            value: Some(Bytes::copy_from_slice(v.as_bytes())),
            headers: vec![],
        })
        .collect();
    encode(&BatchSpec::default(), &records)
}

fn produce_request(topic: &str, partition: i32, acks: i16, records: Bytes) -> RequestKind {
    let data = PartitionProduceData::default()
        .with_index(partition)
        .with_records(Some(records));
    let topic = TopicProduceData::default()
        .with_name(topic_name(topic))
        .with_partition_data(vec![data]);
    RequestKind::Produce(
        ProduceRequest::default()
            .with_acks(acks)
            .with_timeout_ms(1000)
            .with_topic_data(vec![topic]),
    )
}

fn fetch_request(topic: &str, partition: i32, offset: i64, max_wait_ms: i32) -> RequestKind {
    let part = FetchPartition::default()
        .with_partition(partition)
        .with_fetch_offset(offset)
        .with_partition_max_bytes(1 << 20);
    let topic = FetchTopic::default()
        .with_topic(topic_name(topic))
        .with_partitions(vec![part]);
    RequestKind::Fetch(
        FetchRequest::default()
            .with_max_wait_ms(max_wait_ms)
            .with_min_bytes(1)
            .with_max_bytes(1 << 24)
            .with_session_epoch(-1)
            .with_topics(vec![topic]),
    )
}

fn produce_code(response: &ResponseKind) -> (i16, i64) {
    let ResponseKind::Produce(r) = response else {
        panic!("not produce")
    };
    let p = &r.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

fn fetch_part(response: &ResponseKind) -> &fetch_response::PartitionData {
    let ResponseKind::Fetch(r) = response else {
        panic!("not fetch")
    };
    &r.responses[0].partitions[0]
}

/// The basic life of a record: a created topic takes a produce at acks=all, which is answered
/// only after the batch is durable, with offset 0; a fetch returns the stored batch byte for
/// byte (offset assigned in place, CRC untouched) with the high watermark after it.
#[test]
fn produce_is_acknowledged_after_sync_and_fetched_unchanged() {
    let mut h = Harness::new(BrokerConfig::default());
    assert_eq!(h.create_topic("orders", 2, &[]), 0);
    let sent = batch(&["a", "bb"]);
    h.send(
        1,
        ApiKey::Produce,
        9,
        produce_request("orders", 1, -1, sent.clone()),
    );
    // Writes complete, but until the sync (and checkpoint) does, no answer.
    assert!(h.step_disk());
    assert!(h.answers.is_empty(), "no acks=all answer before the fsync");
    h.run_disk();
    let answer = h.answers.pop().expect("answered once durable");
    assert_eq!(produce_code(answer.body.as_ref().expect("body")), (0, 0));
    let response = h.call(ApiKey::Fetch, 11, fetch_request("orders", 1, 0, 0));
    let part = fetch_part(&response);
    assert_eq!(
        (part.error_code, part.high_watermark, part.log_start_offset),
        (0, 2, 0)
    );
    // The leader rewrites only the base offset (0 here) and the partition leader epoch, both
    // outside the CRC.
    let mut stored = sent.to_vec();
    crate::record_batch::set_partition_leader_epoch(&mut stored, 0);
    assert_eq!(
        part.records.as_deref(),
        Some(&stored[..]),
        "stored bytes are the producer's bytes"
    );
}

/// Kafka's per-partition errors: unknown topic, unknown partition, a corrupt CRC, and a batch
/// above the topic's max.message.bytes each get their own code, in the same response.
#[test]
fn produce_errors_are_per_partition() {
    let mut h = Harness::new(BrokerConfig::default());
    assert_eq!(
        h.create_topic("small", 1, &[("max.message.bytes", "200")]),
        0
    );
    let (code, _) = produce_code(&h.call(
        ApiKey::Produce,
        9,
        produce_request("nope", 0, 1, batch(&["x"])),
    ));
    assert_eq!(code, errors::UNKNOWN_TOPIC_OR_PARTITION);
    let (code, _) = produce_code(&h.call(
        ApiKey::Produce,
        9,
        produce_request("small", 5, 1, batch(&["x"])),
    ));
    assert_eq!(code, errors::UNKNOWN_TOPIC_OR_PARTITION);
    let mut corrupt = batch(&["x"]).to_vec();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 1;
    let (code, _) = produce_code(&h.call(
        ApiKey::Produce,
        9,
        produce_request("small", 0, 1, corrupt.into()),
    ));
    assert_eq!(code, errors::CORRUPT_MESSAGE);
    let big = "y".repeat(300);
    let (code, _) = produce_code(&h.call(
        ApiKey::Produce,
        9,
        produce_request("small", 0, 1, batch(&[&big])),
    ));
    assert_eq!(code, errors::MESSAGE_TOO_LARGE);
    let (code, _) = produce_code(&h.call(
        ApiKey::Produce,
        9,
        produce_request("small", 0, 7, batch(&["x"])),
    ));
    assert_eq!(code, errors::INVALID_REQUIRED_ACKS);
}

/// A fetch at the end of the log parks until a produce makes new data visible, then answers
/// with it; one past the log end is OFFSET_OUT_OF_RANGE. This is Kafka's DelayedFetch, which
/// consumers rely on to avoid busy polling.
#[test]
fn fetch_long_polls_and_checks_range() {
    let mut h = Harness::new(BrokerConfig::default());
    assert_eq!(h.create_topic("t", 1, &[]), 0);
    let parked = h.send(2, ApiKey::Fetch, 11, fetch_request("t", 0, 0, 5_000));
    h.run_disk();
    assert!(h.answers.is_empty(), "nothing to read: the fetch waits");
    h.send(
        1,
        ApiKey::Produce,
        9,
        produce_request("t", 0, 1, batch(&["hello"])),
    );
    h.run_disk();
    let fetched = h
        .answers
        .iter()
        .find(|a| a.context.correlation_id == parked)
        .expect("woken by the produce");
    let part = fetch_part(fetched.body.as_ref().expect("body"));
    assert_eq!(part.high_watermark, 1);
    assert!(!part.records.as_ref().expect("records").is_empty());
    let response = h.call(ApiKey::Fetch, 11, fetch_request("t", 0, 2, 0));
    assert_eq!(
        fetch_part(&response).error_code,
        errors::OFFSET_OUT_OF_RANGE
    );
    // A parked fetch with nothing arriving answers empty at its deadline.
    let waiting = h.send(3, ApiKey::Fetch, 11, fetch_request("t", 0, 1, 100));
    h.run_disk();
    assert!(h
        .answers
        .iter()
        .all(|a| a.context.correlation_id != waiting));
    h.now = h.now + Duration::from_millis(100);
    assert!(h.node.poll_timeout().is_some_and(|t| t <= h.now));
    h.input(NodeInput::Timeout);
    let expired = h
        .answers
        .iter()
        .find(|a| a.context.correlation_id == waiting)
        .expect("answered at deadline");
    assert!(fetch_part(expired.body.as_ref().expect("body"))
        .records
        .as_ref()
        .expect("records")
        .is_empty());
}

/// Topics and their data survive a crash: the registry is synced before CreateTopics answers
/// and acknowledged records before Produce answers, so a broker rebuilt from the durable disk
/// serves both; requests that arrive while it recovers are held and answered after.
#[test]
fn recovery_restores_topics_and_acknowledged_data() {
    let mut h = Harness::new(BrokerConfig::default());
    assert_eq!(h.create_topic("keep", 1, &[("retention.ms", "-1")]), 0);
    let (code, _) = produce_code(&h.call(
        ApiKey::Produce,
        9,
        produce_request("keep", 0, -1, batch(&["a", "b", "c"])),
    ));
    assert_eq!(code, 0);
    let mut disk = h.disk.clone();
    disk.crash();
    let mut restarted = Harness::start(BrokerConfig::default(), disk);
    restarted.now = h.now + Duration::from_secs(1);
    let context = RequestContext {
        api_key: ApiKey::Fetch,
        api_version: 11,
        correlation_id: 99,
    };
    restarted.input(NodeInput::Request {
        connection: 5,
        context,
        body: fetch_request("keep", 0, 0, 0),
    });
    assert!(restarted.answers.is_empty(), "held until recovered");
    restarted.settle();
    let answer = restarted.answered(99).expect("held request answered");
    let part = fetch_part(answer.body.as_ref().expect("body"));
    // Held until the node was admitted, by which time it leads the partition again; a
    // leader's high watermark starts at its log start and reaches the records once its own
    // copy counts for the (one-member) ISR, so the answer may still be empty. Retried, as a
    // consumer does, it serves all three records.
    assert_eq!(part.error_code, 0);
    let deadline = restarted.now + CALL_LIMIT;
    loop {
        let response = restarted.call(ApiKey::Fetch, 11, fetch_request("keep", 0, 0, 0));
        let part = fetch_part(&response);
        if part.error_code == 0 && part.high_watermark == 3 {
            break;
        }
        assert!(restarted.now < deadline, "{part:?}");
        restarted.tick();
    }
}

/// Deleting a topic answers once the tombstone is durable, removes its files, and lets the
/// name be created again empty: a recreated topic must never inherit old records.
#[test]
fn delete_removes_files_and_allows_recreation() {
    let mut h = Harness::new(BrokerConfig::default());
    assert_eq!(h.create_topic("gone", 1, &[]), 0);
    let (code, _) = produce_code(&h.call(
        ApiKey::Produce,
        9,
        produce_request("gone", 0, 1, batch(&["old"])),
    ));
    assert_eq!(code, 0);
    let request = DeleteTopicsRequest::default().with_topic_names(vec![topic_name("gone")]);
    let ResponseKind::DeleteTopics(response) =
        h.call(ApiKey::DeleteTopics, 4, RequestKind::DeleteTopics(request))
    else {
        panic!()
    };
    assert_eq!(response.responses[0].error_code, 0);
    assert!(
        h.disk.volatile.keys().all(|k| !k.starts_with("gone-0/")),
        "files removed: {:?}",
        h.disk.volatile.keys()
    );
    assert_eq!(h.create_topic("gone", 1, &[]), 0);
    let response = h.call(ApiKey::Fetch, 11, fetch_request("gone", 0, 0, 0));
    assert_eq!(
        fetch_part(&response).high_watermark,
        0,
        "recreated topic is empty"
    );
}

/// Every response the broker builds encodes at every version it advertises, including the
/// oldest ones old clients use: a field set at a version that lacks it would make the encoder
/// fail (or, for tagged fields, confuse librdkafka 2.0.2), so this walks them all.
#[test]
fn responses_encode_at_every_advertised_version() {
    let ranges: &[(ApiKey, i16, i16)] = &[
        (ApiKey::Produce, 3, 11),
        (ApiKey::Fetch, 4, 12),
        (ApiKey::ListOffsets, 1, 7),
        (ApiKey::Metadata, 1, 12),
        (ApiKey::ApiVersions, 0, 4),
        (ApiKey::CreateTopics, 2, 7),
        (ApiKey::DeleteTopics, 1, 6),
        (ApiKey::DescribeConfigs, 1, 4),
        (ApiKey::DescribeCluster, 0, 1),
    ];
    let mut h = Harness::new(BrokerConfig::default());
    let mut n = 0;
    for &(api, low, high) in ranges {
        for version in low..=high {
            n += 1;
            let name = format!("v{n}");
            let body = request_for(api, version, &name);
            if api != ApiKey::CreateTopics && api != ApiKey::DeleteTopics {
                assert_eq!(h.create_topic(&name, 1, &[]), 0);
                let (code, _) = produce_code(&h.call(
                    ApiKey::Produce,
                    9,
                    produce_request(&name, 0, 1, batch(&["x"])),
                ));
                assert_eq!(code, 0);
            }
            if api == ApiKey::DeleteTopics {
                assert_eq!(h.create_topic(&name, 1, &[]), 0);
            }
            let response = h.call(api, version, body);
            let mut buf = bytes::BytesMut::new();
            response
                .encode(&mut buf, version)
                .unwrap_or_else(|e| panic!("{api:?} v{version}: {e:#}"));
        }
    }
}

fn request_for(api: ApiKey, version: i16, name: &str) -> RequestKind {
    match api {
        ApiKey::Produce => produce_request(name, 0, 1, batch(&["y"])),
        ApiKey::Fetch => fetch_request(name, 0, 0, 0),
        ApiKey::ListOffsets => {
            let part = ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(if version % 2 == 0 { -1 } else { 0 });
            let topic = ListOffsetsTopic::default()
                .with_name(topic_name(name))
                .with_partitions(vec![part]);
            RequestKind::ListOffsets(ListOffsetsRequest::default().with_topics(vec![topic]))
        }
        ApiKey::Metadata => {
            RequestKind::Metadata(MetadataRequest::default().with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(topic_name(name))),
                MetadataRequestTopic::default().with_name(Some(topic_name("absent"))),
            ])))
        }
        ApiKey::ApiVersions => RequestKind::ApiVersions(ApiVersionsRequest::default()),
        ApiKey::CreateTopics => {
            RequestKind::CreateTopics(CreateTopicsRequest::default().with_topics(vec![
                CreatableTopic::default()
                    .with_name(topic_name(name))
                    .with_num_partitions(1)
                    .with_replication_factor(1),
                CreatableTopic::default()
                    .with_name(topic_name("bad/name"))
                    .with_num_partitions(1)
                    .with_replication_factor(1),
            ]))
        }
        ApiKey::DeleteTopics if version >= 6 => {
            RequestKind::DeleteTopics(DeleteTopicsRequest::default().with_topics(vec![
            delete_topics_request::DeleteTopicState::default().with_name(Some(topic_name(name))),
        ]))
        }
        ApiKey::DeleteTopics => RequestKind::DeleteTopics(
            DeleteTopicsRequest::default()
                .with_topic_names(vec![topic_name(name), topic_name("absent")]),
        ),
        ApiKey::DescribeConfigs => RequestKind::DescribeConfigs(
            DescribeConfigsRequest::default()
                .with_include_synonyms(true)
                .with_resources(vec![
                    describe_configs_request::DescribeConfigsResource::default()
                        .with_resource_type(2)
                        .with_resource_name(StrBytes::from_string(name.to_owned())),
                    describe_configs_request::DescribeConfigsResource::default()
                        .with_resource_type(4)
                        .with_resource_name(StrBytes::from_static_str("1")),
                ]),
        ),
        ApiKey::DescribeCluster => RequestKind::DescribeCluster(DescribeClusterRequest::default()),
        other => panic!("no request for {other:?}"),
    }
}

/// A request in the ordering model.
#[derive(Clone, Debug)]
enum Step {
    /// Send a request of this kind on a connection.
    Send { connection: u64, kind: u8 },
    /// Execute the oldest disk request.
    Disk,
    /// Advance time by this many milliseconds and fire due timers.
    Tick(u16),
    /// Close a connection.
    Close(u64),
}

fn step_strategy() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0u64..3, 0u8..6).prop_map(|(connection, kind)| Step::Send { connection, kind }),
        4 => Just(Step::Disk),
        1 => (0u16..300).prop_map(Step::Tick),
        1 => (0u64..3).prop_map(Step::Close),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Kafka's ordering rule, against a model: whatever mix of fast requests (Metadata),
    /// requests waiting for an fsync (Produce acks=1/all), requests with no response (acks=0),
    /// long-polling fetches and closes, each connection gets exactly one answer per request,
    /// in the order it sent them, and nothing for a connection after it closed. librdkafka
    /// treats an out-of-order response as a fatal protocol error.
    #[test]
    fn responses_follow_request_order_per_connection(steps in proptest::collection::vec(step_strategy(), 1..120)) {
        let mut h = Harness::new(BrokerConfig::default());
        prop_assert_eq!(h.create_topic("t", 2, &[]), 0);
        h.answers.clear();
        let mut sent: BTreeMap<u64, Vec<i32>> = BTreeMap::new();
        let mut closed_at: BTreeMap<u64, usize> = BTreeMap::new();
        for step in steps {
            match step {
                Step::Send { connection, kind } => {
                    let (api, version, body) = match kind {
                        0 => (ApiKey::Metadata, 9, RequestKind::Metadata(MetadataRequest::default())),
                        1 => (ApiKey::Produce, 9, produce_request("t", 0, 1, batch(&["a"]))),
                        2 => (ApiKey::Produce, 9, produce_request("t", 1, -1, batch(&["b", "c"]))),
                        3 => (ApiKey::Produce, 9, produce_request("t", 0, 0, batch(&["d"]))),
                        4 => (ApiKey::Fetch, 11, fetch_request("t", 0, 0, 200)),
                        _ => (ApiKey::Fetch, 11, fetch_request("t", 1, 1_000_000, 0)),
                    };
                    let correlation = h.send(connection, api, version, body);
                    closed_at.remove(&connection);
                    sent.entry(connection).or_default().push(correlation);
                }
                Step::Disk => { h.step_disk(); }
                Step::Tick(ms) => {
                    h.now = h.now + Duration::from_millis(u64::from(ms));
                    if h.node.poll_timeout().is_some_and(|t| t <= h.now) {
                        h.input(NodeInput::Timeout);
                    }
                }
                Step::Close(connection) => {
                    h.input(NodeInput::ConnectionClosed { connection });
                    closed_at.insert(connection, h.answers.len());
                    sent.remove(&connection);
                }
            }
        }
        h.run_disk();
        h.now = h.now + Duration::from_secs(10);
        h.input(NodeInput::Timeout);
        h.run_disk();
        // Answers per connection since its last close, in emission order.
        let mut got: BTreeMap<u64, Vec<i32>> = BTreeMap::new();
        for (i, answer) in h.answers.iter().enumerate() {
            let after_close = closed_at.get(&answer.connection).is_some_and(|at| i >= *at);
            prop_assert!(!after_close, "answer after close");
            got.entry(answer.connection).or_default().push(answer.context.correlation_id);
        }
        for (connection, expected) in &sent {
            let answers: Vec<i32> = got.get(connection).cloned().unwrap_or_default();
            let tail = &answers[answers.len().saturating_sub(expected.len())..];
            prop_assert_eq!(tail, &expected[..], "connection {}", connection);
        }
    }
}

fn metadata(
    h: &mut Harness,
    topic: &str,
    allow_auto_create: bool,
) -> metadata_response::MetadataResponseTopic {
    let request = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(topic_name(topic)))
        ]))
        .with_allow_auto_topic_creation(allow_auto_create);
    let ResponseKind::Metadata(response) =
        h.call(ApiKey::Metadata, 12, RequestKind::Metadata(request))
    else {
        panic!("not metadata")
    };
    response.topics.into_iter().next().expect("one topic")
}

/// Auto-creation is off by default (UNKNOWN_TOPIC_OR_PARTITION); with
/// `auto.create.topics.enable` the first Metadata request starts creating the topic and says
/// LEADER_NOT_AVAILABLE (retry), and a request that disallows it (consumers do, v4+) never
/// creates. This is Kafka's behaviour, which producers' retry loops expect.
#[test]
fn auto_create_is_opt_in_and_honoured() {
    let mut h = Harness::new(BrokerConfig::default());
    assert_eq!(
        metadata(&mut h, "auto", true).error_code,
        errors::UNKNOWN_TOPIC_OR_PARTITION
    );
    let config = BrokerConfig {
        auto_create_topics_enable: true,
        num_partitions: 3,
        ..BrokerConfig::default()
    };
    let mut h = Harness::new(config);
    assert_eq!(
        metadata(&mut h, "denied", false).error_code,
        errors::UNKNOWN_TOPIC_OR_PARTITION
    );
    let request = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(topic_name("auto")))
        ]))
        .with_allow_auto_topic_creation(true);
    let correlation = h.send(1, ApiKey::Metadata, 12, RequestKind::Metadata(request));
    let first = h
        .answers
        .iter()
        .find(|a| a.context.correlation_id == correlation)
        .expect("answered at once");
    let ResponseKind::Metadata(response) = first.body.as_deref().expect("body") else {
        panic!()
    };
    assert_eq!(response.topics[0].error_code, errors::LEADER_NOT_AVAILABLE);
    h.run_disk();
    let topic = metadata(&mut h, "auto", true);
    assert_eq!((topic.error_code, topic.partitions.len()), (0, 3));
    assert_eq!(topic.partitions[2].leader_id, BrokerId(1));
}

/// DescribeConfigs shows every topic config with its effective value and where it came from
/// (an override is TOPIC_CONFIG, the rest DEFAULT_CONFIG), and CreateTopics refuses an invalid
/// or unknown config with INVALID_CONFIG rather than ignoring it.
#[test]
fn configs_are_validated_and_described() {
    let mut h = Harness::new(BrokerConfig::default());
    assert_eq!(
        h.create_topic("bad", 1, &[("retention.ms", "soon")]),
        INVALID_CONFIG
    );
    assert_eq!(
        h.create_topic("bad", 1, &[("no.such.key", "1")]),
        INVALID_CONFIG
    );
    assert_eq!(
        h.create_topic("bad", 1, &[("cleanup.policy", "compact")]),
        INVALID_CONFIG
    );
    assert_eq!(h.create_topic("good", 1, &[("retention.ms", "1000")]), 0);
    assert_eq!(h.create_topic("good", 1, &[]), errors::TOPIC_ALREADY_EXISTS);
    let resource = describe_configs_request::DescribeConfigsResource::default()
        .with_resource_type(2)
        .with_resource_name(StrBytes::from_static_str("good"))
        .with_configuration_keys(None);
    let request = DescribeConfigsRequest::default().with_resources(vec![resource]);
    let ResponseKind::DescribeConfigs(response) = h.call(
        ApiKey::DescribeConfigs,
        4,
        RequestKind::DescribeConfigs(request),
    ) else {
        panic!()
    };
    let configs = &response.results[0].configs;
    let find = |name: &str| {
        configs
            .iter()
            .find(|c| c.name.as_str() == name)
            .expect(name)
    };
    assert_eq!(
        (
            find("retention.ms").value.as_deref(),
            find("retention.ms").config_source
        ),
        (Some("1000"), 1)
    );
    assert_eq!(
        (
            find("segment.bytes").value.as_deref(),
            find("segment.bytes").config_source
        ),
        (Some("1073741824"), 5)
    );
}

/// Shutdown drains: in-flight work finishes, every log is synced (even under flush policy
/// `none`, which otherwise never syncs), and only then does the broker say it is done.
#[test]
fn shutdown_syncs_before_completing() {
    let config = BrokerConfig {
        flush_policy: FlushPolicy::None,
        ..BrokerConfig::default()
    };
    let mut h = Harness::new(config);
    assert_eq!(h.create_topic("t", 1, &[]), 0);
    let (code, _) = produce_code(&h.call(
        ApiKey::Produce,
        9,
        produce_request("t", 0, 1, batch(&["a"])),
    ));
    assert_eq!(code, 0);
    assert!(
        h.disk
            .durable
            .get("t-0/00000000000000000000.log")
            .is_none_or(|d| d.is_empty()),
        "policy none did not sync"
    );
    h.input(NodeInput::Shutdown);
    h.run_disk();
    let complete = h.shutdown_complete;
    assert!(complete);
    assert!(
        h.disk
            .durable
            .get("t-0/00000000000000000000.log")
            .is_some_and(|d| !d.is_empty()),
        "synced at shutdown"
    );
}
