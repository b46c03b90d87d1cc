//! Durability across kill -9: every record the broker acknowledged (acks=all) is there, at the
//! offset it was acknowledged with, after the process is killed mid-stream and restarted.

mod common;

use common::Node;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use seedlog_net::client::{FetchOptions, IsolationLevel, OffsetSpec};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Records acknowledged before the kill, by offset.
type Acked = Arc<Mutex<BTreeMap<i64, Vec<u8>>>>;

/// The property the fsync-before-ack policy exists for: kill -9 the broker while a producer
/// streams acks=all writes, restart it on the same data directory, and every acknowledged
/// record must be readable at its acknowledged offset with its value. A broker that
/// acknowledged from the page cache would pass a graceful restart but not this.
#[test]
fn acknowledged_records_survive_kill_9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start(dir.path(), &[]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let acked: Acked = Arc::default();
    let killed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let address = node.address.clone();
    rt.block_on(async {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &address)
            .create()
            .expect("admin");
        let topic = NewTopic::new("crash", 1, TopicReplication::Fixed(1));
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        let created = admin
            .create_topics([&topic], &options)
            .await
            .expect("answered");
        created[0].as_ref().expect("created");
    });
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &address)
        .set("acks", "all")
        .set("linger.ms", "1")
        .set("batch.num.messages", "200")
        .set("message.timeout.ms", "3000")
        .set("enable.idempotence", "false")
        .set("log_level", "0")
        .create()
        .expect("producer");
    // Stream records from a task; record each acknowledgement as it arrives.
    let stream = {
        let acked = acked.clone();
        let producer = producer.clone();
        let killed = killed.clone();
        rt.spawn(async move {
            let mut pending = Vec::new();
            for i in 0..200_000u64 {
                if killed.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let value = format!("record-{i}").into_bytes();
                let record = FutureRecord::<[u8], [u8]>::to("crash")
                    .partition(0)
                    .payload(&value);
                let Ok(delivery) = producer.send_result(record) else {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                };
                let acked = acked.clone();
                pending.push(tokio::spawn(async move {
                    if let Ok(Ok(delivery)) = delivery.await {
                        acked.lock().expect("lock").insert(delivery.offset, value);
                    }
                }));
                if i % 500 == 0 {
                    tokio::task::yield_now().await;
                }
            }
            for task in pending {
                let _ = task.await;
            }
        })
    };
    let start = Instant::now();
    while acked.lock().expect("lock").len() < 20_000 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "producer made no progress"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    node.kill9();
    killed.store(true, std::sync::atomic::Ordering::Relaxed);
    // Acknowledgements that were in flight when the process died still count.
    rt.block_on(async {
        let _ = tokio::time::timeout(Duration::from_secs(30), stream).await;
    });
    drop(producer);
    let acked = acked.lock().expect("lock").clone();
    assert!(acked.len() >= 20_000);
    let node = Node::start(dir.path(), &[]);
    let stored = rt.block_on(read_all(&node.address));
    for (offset, value) in &acked {
        assert_eq!(
            stored.get(offset),
            Some(value),
            "acknowledged offset {offset} lost or changed"
        );
    }
    // Offsets stay dense after recovery: nothing was torn into a gap.
    let last = stored.keys().next_back().copied().unwrap_or(-1);
    assert_eq!(stored.len() as i64, last + 1);
}

/// Reads the whole partition with the project's own client.
async fn read_all(address: &str) -> BTreeMap<i64, Vec<u8>> {
    let client = seedlog_net::Client::connect(&[address], Default::default())
        .await
        .expect("connect");
    let end = client
        .list_offsets(
            "crash",
            0,
            OffsetSpec::Latest,
            IsolationLevel::ReadUncommitted,
        )
        .await
        .expect("latest offset")
        .offset;
    let mut out = BTreeMap::new();
    let mut offset = 0;
    let options = FetchOptions {
        max_wait_ms: 0,
        ..FetchOptions::default()
    };
    while offset < end {
        let fetched = client
            .fetch("crash", 0, offset, &options)
            .await
            .expect("fetch");
        for record in fetched.records {
            out.insert(
                record.offset,
                record.value.map(|v| v.to_vec()).unwrap_or_default(),
            );
        }
        assert!(fetched.next_offset > offset, "fetch made progress");
        offset = fetched.next_offset;
    }
    out
}
