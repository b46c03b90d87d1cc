//! Hostile and broken input: bad batches get Kafka errors, bad frames close only their own
//! connection, and the broker keeps serving everyone else.

mod common;

use bytes::{Bytes, BytesMut};
use common::Node;
use seedlog_core::record_batch::{self, BatchSpec, NewRecord};
use seedlog_net::client::{Acks, FetchOptions, NewTopic};
use seedlog_net::kafka_protocol::error::ResponseError;
use seedlog_net::kafka_protocol::messages::produce_request::{
    PartitionProduceData, TopicProduceData,
};
use seedlog_net::kafka_protocol::messages::{
    ApiKey, ProduceRequest, RequestHeader, RequestKind, ResponseKind, TopicName,
};
use seedlog_net::kafka_protocol::protocol::StrBytes;
use seedlog_net::{decode_response, encode_request, Client, FrameDecoder};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

const PRODUCE_VERSION: i16 = 9;

fn batch(values: &[&str]) -> Bytes {
    let records: Vec<NewRecord> = values
        .iter()
        .map(|v| NewRecord {
            timestamp: 1_700_000_000_000,
            key: None,
            value: Some(Bytes::copy_from_slice(v.as_bytes())),
            headers: Vec::new(),
        })
        .collect();
    record_batch::encode(&BatchSpec::default(), &records)
}

fn produce_frame(correlation_id: i32, topic: &str, records: Bytes) -> Bytes {
    let data = PartitionProduceData::default()
        .with_index(0)
        .with_records(Some(records));
    let topic = TopicProduceData::default()
        .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
        .with_partition_data(vec![data]);
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![topic]);
    let header = RequestHeader::default()
        .with_request_api_key(ApiKey::Produce as i16)
        .with_request_api_version(PRODUCE_VERSION)
        .with_correlation_id(correlation_id);
    encode_request(&header, &RequestKind::Produce(request)).expect("encodable")
}

/// NOT_LEADER_OR_FOLLOWER: the partition is not taking appends here yet. A new partition's
/// leader may need a moment after CreateTopics answered, and a Kafka client retries this error.
const NOT_LEADER_OR_FOLLOWER: i16 = 6;

/// How long a produce is retried while the partition answers NOT_LEADER_OR_FOLLOWER.
const LEADER_WAIT: Duration = Duration::from_secs(10);

/// Sends one raw produce frame and returns the partition's error code, resending (as a client
/// would) while the answer is NOT_LEADER_OR_FOLLOWER, which means nothing was appended.
fn raw_produce(stream: &mut TcpStream, correlation_id: i32, records: Bytes) -> i16 {
    let deadline = std::time::Instant::now() + LEADER_WAIT;
    loop {
        let code = raw_produce_once(stream, correlation_id, records.clone());
        if code != NOT_LEADER_OR_FOLLOWER || std::time::Instant::now() > deadline {
            return code;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn raw_produce_once(stream: &mut TcpStream, correlation_id: i32, records: Bytes) -> i16 {
    stream
        .write_all(&produce_frame(correlation_id, "victim", records))
        .expect("write");
    let frame = read_frame(stream).expect("a response, not a closed connection");
    let (header, body) = decode_response(frame, ApiKey::Produce, PRODUCE_VERSION).expect("decodes");
    assert_eq!(header.correlation_id, correlation_id);
    let ResponseKind::Produce(response) = body else {
        panic!("not a produce response")
    };
    response.responses[0].partition_responses[0].error_code
}

/// Reads one response frame, or `None` once the broker closed the connection.
fn read_frame(stream: &mut TcpStream) -> Option<Bytes> {
    let mut decoder = FrameDecoder::new(64 * 1024 * 1024);
    let mut buffer = [0u8; 65536];
    loop {
        if let Some(frame) = decoder.next_frame().expect("well-framed response") {
            return Some(frame);
        }
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => return None,
            Ok(n) => decoder.feed(&buffer[..n]),
        }
    }
}

/// True if the broker closed the connection (read returns EOF or a reset) within a while.
fn closed_by_broker(stream: &mut TcpStream) -> bool {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut buffer = [0u8; 1024];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
}

/// A batch whose CRC does not match its bytes is CORRUPT_MESSAGE, a batch whose record count
/// lies is INVALID_RECORD, and two batches in one partition are INVALID_RECORD (Kafka's rule
/// for produce v3+); each is answered on the same connection, which keeps working, and
/// nothing of them is stored. LogValidator answers exactly these codes, and clients decide
/// whether to retry from them.
#[test]
fn bad_batches_get_kafka_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start(dir.path(), &[]);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let client = rt
        .block_on(Client::connect(
            &[node.address.as_str()],
            Default::default(),
        ))
        .expect("client");
    let topic = NewTopic {
        name: "victim".into(),
        partitions: 1,
        replication_factor: 1,
        configs: vec![],
    };
    let outcome = rt
        .block_on(client.create_topics(&[topic], 10_000))
        .expect("answered");
    outcome[0].result.clone().expect("created");

    let mut stream = TcpStream::connect(&node.address).expect("connect");
    let mut corrupt = BytesMut::from(&batch(&["a", "b"])[..]);
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    assert_eq!(
        raw_produce(&mut stream, 1, corrupt.freeze()),
        2,
        "CORRUPT_MESSAGE"
    );

    let mut lying = BytesMut::from(&batch(&["a", "b"])[..]);
    lying[57..61].copy_from_slice(&3i32.to_be_bytes()); // records_count 3, last_offset_delta 1
    let crc = record_batch::compute_crc(&lying);
    lying[17..21].copy_from_slice(&crc.to_be_bytes());
    assert_eq!(
        raw_produce(&mut stream, 2, lying.freeze()),
        87,
        "INVALID_RECORD"
    );

    let mut two = BytesMut::from(&batch(&["a"])[..]);
    two.extend_from_slice(&batch(&["b"]));
    assert_eq!(
        raw_produce(&mut stream, 3, two.freeze()),
        87,
        "INVALID_RECORD for two batches"
    );

    assert_eq!(
        raw_produce(&mut stream, 4, batch(&["good"])),
        0,
        "connection still serves"
    );
    let fetched = rt
        .block_on(client.fetch(
            "victim",
            0,
            0,
            &FetchOptions {
                max_wait_ms: 0,
                ..Default::default()
            },
        ))
        .expect("fetch");
    let values: Vec<_> = fetched.records.iter().map(|r| r.value.clone()).collect();
    assert_eq!(
        values,
        vec![Some(Bytes::from_static(b"good"))],
        "only the good batch is stored"
    );
}

/// Broken framing and unparseable requests close the offending connection and nothing else:
/// a negative length, a length beyond socket.request.max.bytes, an unknown API key, and a
/// truncated body each end their own connection, while a well-behaved client on another
/// connection produces and fetches throughout, and the process stays up.
#[test]
fn bad_frames_close_only_their_connection() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start(dir.path(), &["socket.request.max.bytes=1048576"]);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let client = rt
        .block_on(Client::connect(
            &[node.address.as_str()],
            Default::default(),
        ))
        .expect("client");
    let topic = NewTopic {
        name: "victim".into(),
        partitions: 1,
        replication_factor: 1,
        configs: vec![],
    };
    rt.block_on(client.create_topics(&[topic], 10_000))
        .expect("answered")[0]
        .result
        .clone()
        .expect("created");
    let good = |n: usize| {
        let record = NewRecord {
            timestamp: 0,
            key: None,
            value: Some(Bytes::from(format!("ok-{n}"))),
            headers: vec![],
        };
        let deadline = std::time::Instant::now() + LEADER_WAIT;
        loop {
            match rt.block_on(client.produce("victim", 0, std::slice::from_ref(&record), Acks::All))
            {
                Ok(produced) => return produced.base_offset,
                Err(error)
                    if error.kafka_code() == Some(ResponseError::NotLeaderOrFollower)
                        && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(error) => panic!("healthy client not served: {error}"),
            }
        }
    };
    assert_eq!(good(0), 0);

    let mut valid = produce_frame(9, "victim", batch(&["x"])).to_vec();
    let truncated = {
        let body_len = valid.len() - 4 - 10;
        valid.truncate(4 + body_len);
        valid[..4].copy_from_slice(&(body_len as i32).to_be_bytes());
        valid
    };
    let mut unknown_api = Vec::new();
    unknown_api.extend_from_slice(&10i32.to_be_bytes());
    unknown_api.extend_from_slice(&9999i16.to_be_bytes()); // api key
    unknown_api.extend_from_slice(&0i16.to_be_bytes()); // version
    unknown_api.extend_from_slice(&1i32.to_be_bytes()); // correlation id
    unknown_api.extend_from_slice(&[0, 0]);
    let attacks: Vec<(&str, Vec<u8>)> = vec![
        ("negative length", (-5i32).to_be_bytes().to_vec()),
        (
            "oversized frame",
            (512 * 1024 * 1024i32).to_be_bytes().to_vec(),
        ),
        ("unknown api key", unknown_api),
        ("truncated body", truncated),
        ("garbage", b"\x00\x00\x00\x08GARBAGE!".to_vec()),
    ];
    for (i, (what, bytes)) in attacks.into_iter().enumerate() {
        let mut stream = TcpStream::connect(&node.address).expect("connect");
        stream.write_all(&bytes).expect("write");
        assert!(
            closed_by_broker(&mut stream),
            "{what}: connection should be closed"
        );
        assert_eq!(
            good(i + 1),
            i as i64 + 1,
            "{what}: other clients unaffected"
        );
    }
}
