//! Compatibility with a real Kafka client: librdkafka (through the `rdkafka` crate, built from
//! its bundled source) against the real `seedlog node` binary on a loopback port.

mod common;

use common::Node;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::time::Duration;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn client_config(node: &Node) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &node.address)
        .set("log_level", "3")
        .set("broker.address.family", "v4");
    config
}

async fn create_topic(node: &Node, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    let admin: AdminClient<DefaultClientContext> =
        client_config(node).create().expect("admin client");
    let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    for (key, value) in configs {
        topic = topic.set(key, value);
    }
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = admin
        .create_topics([&topic], &options)
        .await
        .expect("CreateTopics answered");
    assert_eq!(results.len(), 1);
    results[0].as_ref().expect("topic created");
}

fn producer(node: &Node, extra: &[(&str, &str)]) -> FutureProducer {
    let mut config = client_config(node);
    config
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "20000")
        .set("enable.idempotence", "false");
    for (key, value) in extra {
        config.set(*key, *value);
    }
    config.create().expect("producer")
}

/// A consumer assigned to `topic`/`partition` from the beginning (no group: the group
/// coordinator is a later issue).
fn consumer(node: &Node, topic: &str, partition: i32) -> BaseConsumer {
    let consumer: BaseConsumer = client_config(node)
        .set("group.id", "seedlog-compat")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("fetch.wait.max.ms", "100")
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, partition, Offset::Beginning)
        .expect("assignment");
    consumer.assign(&assignment).expect("assign");
    consumer
}

/// One record as produced, to compare with what comes back.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Expected {
    key: Vec<u8>,
    value: Vec<u8>,
    headers: Vec<(String, Vec<u8>)>,
    timestamp: i64,
}

fn expected(i: usize) -> Expected {
    Expected {
        key: format!("key-{i}").into_bytes(),
        value: format!("value-{i}-{}", "x".repeat(i % 97)).into_bytes(),
        headers: vec![
            ("h1".to_owned(), format!("a{i}").into_bytes()),
            ("h2".to_owned(), vec![(i % 256) as u8]),
        ],
        timestamp: 1_700_000_000_000 + i as i64,
    }
}

/// Consumes until `count` records arrived (or the deadline), returning them by offset.
fn consume_all(
    consumer: &BaseConsumer,
    count: usize,
    deadline: Duration,
) -> BTreeMap<i64, Expected> {
    let start = std::time::Instant::now();
    let mut seen = BTreeMap::new();
    while seen.len() < count && start.elapsed() < deadline {
        let Some(result) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = result.expect("consumer error");
        let headers = message
            .headers()
            .map(|h| {
                h.iter()
                    .map(|Header { key, value }| {
                        (key.to_owned(), value.unwrap_or_default().to_vec())
                    })
                    .collect()
            })
            .unwrap_or_default();
        let record = Expected {
            key: message.key().unwrap_or_default().to_vec(),
            value: message.payload().unwrap_or_default().to_vec(),
            headers,
            timestamp: message.timestamp().to_millis().unwrap_or(-1),
        };
        seen.insert(message.offset(), record);
    }
    seen
}

/// The end-to-end check: librdkafka creates a topic, produces 10,000 keyed records
/// with headers and explicit timestamps at acks=all, and reads them back from the beginning
/// with every key, value, header, offset and timestamp intact. This is what "point any Kafka
/// client at it" means, exercised through the client most Kafka tools are built on.
#[test]
fn rdkafka_produces_and_consumes_10000_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start(dir.path(), &[]);
    let rt = runtime();
    const COUNT: usize = 10_000;
    rt.block_on(create_topic(&node, "compat", 1, &[]));
    let producer = producer(&node, &[]);
    let offsets: Vec<i64> = rt.block_on(async {
        let mut deliveries = Vec::with_capacity(COUNT);
        for i in 0..COUNT {
            let e = expected(i);
            let headers = e.headers.iter().fold(OwnedHeaders::new(), |h, (k, v)| {
                h.insert(Header {
                    key: k,
                    value: Some(v),
                })
            });
            let record = FutureRecord::to("compat")
                .partition(0)
                .key(&e.key)
                .payload(&e.value)
                .headers(headers)
                .timestamp(e.timestamp);
            let queued = producer
                .send_result(record)
                .map_err(|(e, _)| e)
                .expect("queued");
            deliveries.push(queued);
        }
        let mut offsets = Vec::with_capacity(COUNT);
        for delivery in deliveries {
            let delivery = delivery
                .await
                .expect("delivery reported")
                .map_err(|(e, _)| e)
                .expect("acknowledged");
            offsets.push(delivery.offset);
        }
        offsets
    });
    let mut sorted = offsets.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        (0..COUNT as i64).collect::<Vec<_>>(),
        "dense offsets 0..10000"
    );
    let consumer = consumer(&node, "compat", 0);
    let seen = consume_all(&consumer, COUNT, Duration::from_secs(60));
    assert_eq!(seen.len(), COUNT, "every record read back");
    for (i, offset) in offsets.iter().enumerate() {
        assert_eq!(
            seen.get(offset),
            Some(&expected(i)),
            "record {i} at offset {offset}"
        );
    }
}

/// Producing to a topic that does not exist fails with UNKNOWN_TOPIC_OR_PARTITION (auto
/// creation is off by default), and a record larger than the topic's max.message.bytes fails
/// with MESSAGE_TOO_LARGE, while records around them still succeed: the errors a client sees
/// must be Kafka's, so its retry logic does the right thing.
#[test]
fn rdkafka_sees_kafka_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start(dir.path(), &[]);
    let rt = runtime();
    rt.block_on(create_topic(
        &node,
        "limits",
        1,
        &[("max.message.bytes", "100000")],
    ));
    let producer = producer(
        &node,
        &[
            ("message.max.bytes", "10000000"),
            ("topic.metadata.propagation.max.ms", "500"),
            ("message.timeout.ms", "5000"),
        ],
    );
    rt.block_on(async {
        let missing = producer
            .send(
                FutureRecord::<[u8], [u8]>::to("no-such-topic").payload(b"x"),
                Duration::from_secs(5),
            )
            .await;
        let (error, _) = missing.expect_err("unknown topic fails");
        assert!(
            matches!(
                error,
                KafkaError::MessageProduction(
                    RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic
                )
            ),
            "{error:?}"
        );
        let big = vec![7u8; 200_000];
        let oversized = producer
            .send(
                FutureRecord::<[u8], [u8]>::to("limits")
                    .partition(0)
                    .payload(&big),
                Duration::from_secs(5),
            )
            .await;
        let (error, _) = oversized.expect_err("oversized record fails");
        assert_eq!(
            error,
            KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge)
        );
        let fine = producer
            .send(
                FutureRecord::<[u8], [u8]>::to("limits")
                    .partition(0)
                    .payload(b"small"),
                Duration::from_secs(5),
            )
            .await;
        assert_eq!(
            fine.map_err(|(e, _)| e)
                .expect("small record accepted")
                .offset,
            0
        );
    });
}

// ListOffsets through librdkafka: `offsets_for_times` must name the first record whose
// timestamp reaches the target (Kafka's contract), and the watermarks must bound the log.
// Records carry explicit, increasing timestamps so the expected offsets are known exactly.
#[test]
fn rdkafka_finds_offsets_by_timestamp() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start(dir.path(), &[]);
    let rt = runtime();
    rt.block_on(create_topic(&node, "times", 1, &[]));
    let producer = producer(&node, &[("linger.ms", "0")]);
    let base: i64 = 1_700_000_000_000;
    rt.block_on(async {
        for i in 0..100i64 {
            let value = format!("v{i}");
            producer
                .send(
                    FutureRecord::<[u8], [u8]>::to("times")
                        .partition(0)
                        .payload(value.as_bytes())
                        .timestamp(base + i * 10),
                    Duration::from_secs(10),
                )
                .await
                .expect("acknowledged");
        }
    });
    let consumer = consumer(&node, "times", 0);
    let (low, high) = consumer
        .fetch_watermarks("times", 0, Duration::from_secs(10))
        .expect("watermarks");
    assert_eq!((low, high), (0, 100));
    for (target, expected) in [
        (base - 1, Offset::Offset(0)),
        (base, Offset::Offset(0)),
        (base + 1, Offset::Offset(1)),
        (base + 425, Offset::Offset(43)),
        (base + 990, Offset::Offset(99)),
        (base + 991, Offset::End),
    ] {
        let mut query = TopicPartitionList::new();
        query
            .add_partition_offset("times", 0, Offset::Offset(target))
            .expect("query");
        let answer = consumer
            .offsets_for_times(query, Duration::from_secs(10))
            .expect("ListOffsets answered");
        let offset = answer
            .find_partition("times", 0)
            .expect("partition in answer")
            .offset();
        assert_eq!(offset, expected, "timestamp {target}");
    }
}
