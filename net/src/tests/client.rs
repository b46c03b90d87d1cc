use super::fixtures::{fetch_response_for, metadata_response_for};
use crate::apis::api_versions_response;
use crate::apis::UNSUPPORTED_VERSION;
use crate::client::connection::negotiate;
use crate::client::{
    Acks, Client, ClientConfig, ClientError, FetchOptions, IsolationLevel, OffsetSpec,
};
use crate::codec::{decode_request, encode_response, DecodedRequest, ErrorReply, ResponseContext};
use crate::frame::FrameDecoder;
use crate::SUPPORTED_APIS;
use bytes::Bytes;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{
    list_offsets_response, produce_response, ApiKey, ApiVersionsResponse, ListOffsetsResponse,
    ProduceResponse, RequestKind, ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use seedlog_core::record_batch::{self, NewRecord};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How the fake broker misbehaves, to test the client's error paths.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Normal,
    /// Answers ApiVersions above v2 with UNSUPPORTED_VERSION, like an old broker.
    OldApiVersions,
    /// Never answers ListOffsets.
    SilentListOffsets,
}

/// A one-partition broker, enough to drive the client: it keeps the produced batches in
/// memory and serves them back.
struct FakeBroker {
    port: u16,
    mode: Mode,
    log: tokio::sync::Mutex<Vec<Bytes>>,
    next_offset: AtomicI64,
}

async fn start(mode: Mode) -> Arc<FakeBroker> {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let broker = Arc::new(FakeBroker {
        port,
        mode,
        log: Default::default(),
        next_offset: AtomicI64::new(0),
    });
    let server = broker.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(server.clone().serve(socket));
        }
    });
    broker
}

impl FakeBroker {
    async fn serve(self: Arc<Self>, mut socket: TcpStream) {
        let mut frames = FrameDecoder::new(1 << 20);
        let mut buffer = vec![0u8; 4096];
        loop {
            let Ok(read) = socket.read(&mut buffer).await else {
                return;
            };
            if read == 0 {
                return;
            }
            frames.feed(&buffer[..read]);
            while let Ok(Some(frame)) = frames.next_frame() {
                let reply = match self.decode(frame) {
                    Ok(request) => self.answer(request).await,
                    Err(reply) if reply.is_empty() => return,
                    Err(reply) => Some(reply),
                };
                if let Some(reply) = reply {
                    if socket.write_all(&reply).await.is_err() {
                        return;
                    }
                }
            }
        }
    }

    /// Decodes like the real codec, except that an old broker refuses ApiVersions above v2,
    /// answering with v0, UNSUPPORTED_VERSION and its own (older) range, as Kafka 2.3 would.
    fn decode(&self, frame: Bytes) -> Result<DecodedRequest, Bytes> {
        let request = decode_request(frame).map_err(|error| match error.reply() {
            ErrorReply::Respond(frame) => frame,
            ErrorReply::Close => Bytes::new(),
        })?;
        if self.mode == Mode::OldApiVersions
            && request.api_key == ApiKey::ApiVersions
            && request.api_version > 2
        {
            let context = ResponseContext {
                api_version: 0,
                ..request.response_context()
            };
            let response = ResponseKind::ApiVersions(old_api_versions(UNSUPPORTED_VERSION));
            return Err(encode_response(&context, &response).expect("encodes"));
        }
        Ok(request)
    }

    async fn answer(&self, request: DecodedRequest) -> Option<Bytes> {
        let context = request.response_context();
        let response = match request.body {
            RequestKind::ApiVersions(_) if self.mode == Mode::OldApiVersions => {
                ResponseKind::ApiVersions(old_api_versions(0))
            }
            RequestKind::ApiVersions(_) => ResponseKind::ApiVersions(api_versions_response(0)),
            RequestKind::Metadata(_) => ResponseKind::Metadata(metadata_response_for(
                request.api_version,
                "127.0.0.1",
                i32::from(self.port),
                "orders",
                1,
            )),
            RequestKind::Produce(produce) => {
                let records = produce.topic_data[0].partition_data[0]
                    .records
                    .clone()
                    .expect("records");
                let base_offset = self.append(records).await;
                if produce.acks == 0 {
                    return None;
                }
                ResponseKind::Produce(produce_answer(base_offset))
            }
            RequestKind::Fetch(_) => {
                let log = self.log.lock().await.concat();
                ResponseKind::Fetch(fetch_response_for(
                    request.api_version,
                    "orders",
                    Bytes::from(log),
                ))
            }
            RequestKind::ListOffsets(_) if self.mode == Mode::SilentListOffsets => return None,
            RequestKind::ListOffsets(_) => ResponseKind::ListOffsets(list_offsets_answer(
                self.next_offset.load(Ordering::SeqCst),
            )),
            other => panic!("fake broker got {other:?}"),
        };
        Some(encode_response(&context, &response).expect("encodes"))
    }

    async fn append(&self, records: Bytes) -> i64 {
        let mut log = self.log.lock().await;
        let header = record_batch::check_framing(&records).expect("valid batch");
        let base_offset = self
            .next_offset
            .fetch_add(i64::from(header.records_count), Ordering::SeqCst);
        let mut batch = records.to_vec();
        record_batch::set_base_offset(&mut batch, base_offset);
        log.push(Bytes::from(batch));
        base_offset
    }
}

/// Our table, but with ApiVersions capped at v2.
fn old_api_versions(error_code: i16) -> ApiVersionsResponse {
    let mut response = api_versions_response(error_code);
    for api in &mut response.api_keys {
        if api.api_key == ApiKey::ApiVersions as i16 {
            api.max_version = 2;
        }
    }
    response
}

fn produce_answer(base_offset: i64) -> ProduceResponse {
    let partition = produce_response::PartitionProduceResponse::default()
        .with_index(0)
        .with_base_offset(base_offset);
    let topic = produce_response::TopicProduceResponse::default()
        .with_name(TopicName(StrBytes::from_static_str("orders")))
        .with_partition_responses(vec![partition]);
    ProduceResponse::default().with_responses(vec![topic])
}

fn list_offsets_answer(offset: i64) -> ListOffsetsResponse {
    let partition = list_offsets_response::ListOffsetsPartitionResponse::default()
        .with_partition_index(0)
        .with_offset(offset);
    let topic = list_offsets_response::ListOffsetsTopicResponse::default()
        .with_name(TopicName(StrBytes::from_static_str("orders")))
        .with_partitions(vec![partition]);
    ListOffsetsResponse::default().with_topics(vec![topic])
}

fn record(value: &'static str) -> NewRecord {
    NewRecord {
        timestamp: 1_000,
        key: None,
        value: Some(Bytes::from_static(value.as_bytes())),
        headers: Vec::new(),
    }
}

fn config() -> ClientConfig {
    ClientConfig {
        request_timeout: Duration::from_millis(500),
        ..ClientConfig::default()
    }
}

/// The whole client path against a broker speaking our codec: bootstrap, negotiation,
/// metadata, produce with each acks setting, fetch and list-offsets must agree on offsets.
#[tokio::test]
async fn produce_fetch_and_list_offsets_against_fake_broker() {
    let broker = start(Mode::Normal).await;
    let client = Client::connect(&[format!("127.0.0.1:{}", broker.port)], config())
        .await
        .expect("connects");
    let metadata = client.cached_metadata().await.expect("metadata");
    assert_eq!(metadata.partition("orders", 0).map(|p| p.leader), Some(1));

    let first = client
        .produce("orders", 0, &[record("a"), record("b")], Acks::All)
        .await
        .expect("produce");
    assert_eq!(first.base_offset, 0);
    let second = client
        .produce("orders", 0, &[record("c")], Acks::Leader)
        .await
        .expect("produce");
    assert_eq!(second.base_offset, 2);
    client
        .produce("orders", 0, &[record("d")], Acks::None)
        .await
        .expect("acks=0 produce");

    let latest = client
        .list_offsets(
            "orders",
            0,
            OffsetSpec::Latest,
            IsolationLevel::ReadUncommitted,
        )
        .await
        .expect("list");
    assert_eq!(
        latest.offset, 4,
        "the acks=0 batch was written before list-offsets on the same connection"
    );
    let fetched = client
        .fetch("orders", 0, 1, &FetchOptions::default())
        .await
        .expect("fetch");
    let values: Vec<_> = fetched
        .records
        .iter()
        .map(|r| (r.offset, r.value.clone()))
        .collect();
    let expected: Vec<_> = [(1, "b"), (2, "c"), (3, "d")]
        .into_iter()
        .map(|(o, v)| (o, Some(Bytes::from(v))))
        .collect();
    assert_eq!(
        values, expected,
        "records before the fetch offset are dropped"
    );
    assert_eq!(fetched.next_offset, 4);

    let missing = client.produce("nope", 0, &[record("x")], Acks::All).await;
    assert!(
        matches!(missing, Err(ClientError::UnknownTopicOrPartition { .. })),
        "{missing:?}"
    );
}

/// Pipelining: many concurrent requests on one connection must each get their own response,
/// matched by correlation id.
#[tokio::test]
async fn concurrent_requests_are_pipelined_and_matched() {
    let broker = start(Mode::Normal).await;
    let client = Client::connect(&[format!("127.0.0.1:{}", broker.port)], config())
        .await
        .expect("connects");
    let client = Arc::new(client);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..32 {
        let client = client.clone();
        tasks.spawn(async move { client.produce("orders", 0, &[record("v")], Acks::All).await });
    }
    let mut offsets = Vec::new();
    while let Some(result) = tasks.join_next().await {
        offsets.push(result.expect("task").expect("produce").base_offset);
    }
    offsets.sort_unstable();
    assert_eq!(offsets, (0..32).collect::<Vec<i64>>());
}

/// A broker that does not know our ApiVersions version answers v0 + UNSUPPORTED_VERSION; the
/// client must retry at a version the broker lists rather than fail.
#[tokio::test]
async fn api_versions_falls_back_when_broker_is_older() {
    let broker = start(Mode::OldApiVersions).await;
    let theirs = vec![ApiVersion::default()
        .with_api_key(ApiKey::ApiVersions as i16)
        .with_max_version(2)];
    let versions = negotiate(SUPPORTED_APIS, &theirs);
    assert_eq!(versions.get(&(ApiKey::ApiVersions as i16)), Some(&2));
    assert_eq!(
        versions.get(&(ApiKey::Produce as i16)),
        None,
        "an API the broker lacks is not negotiated"
    );
    let client = Client::connect(&[format!("127.0.0.1:{}", broker.port)], config())
        .await
        .expect("falls back");
    let produced = client
        .produce("orders", 0, &[record("x")], Acks::All)
        .await
        .expect("works after fallback");
    assert_eq!(produced.base_offset, 0);
}

/// A request without an answer must fail with Timeout within the configured time, and the
/// next call must work on a fresh connection.
#[tokio::test]
async fn request_timeout_closes_connection_and_client_recovers() {
    let broker = start(Mode::SilentListOffsets).await;
    let client = Client::connect(&[format!("127.0.0.1:{}", broker.port)], config())
        .await
        .expect("connects");
    let listed = client
        .list_offsets(
            "orders",
            0,
            OffsetSpec::Earliest,
            IsolationLevel::ReadUncommitted,
        )
        .await;
    assert!(
        matches!(
            listed,
            Err(ClientError::Timeout {
                api_key: ApiKey::ListOffsets
            })
        ),
        "{listed:?}"
    );
    let produced = client
        .produce("orders", 0, &[record("after")], Acks::All)
        .await
        .expect("reconnects");
    assert_eq!(produced.base_offset, 0);
}

/// Bootstrap must report every address it tried when none answers.
#[tokio::test]
async fn bootstrap_fails_with_connect_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("addr").to_string();
    drop(listener);
    let result = Client::connect(std::slice::from_ref(&address), config()).await;
    assert!(
        matches!(&result, Err(ClientError::Connect { addresses, .. }) if addresses.contains(&address)),
        "{:?}",
        result.err()
    );
}

/// Encodes one batch at `base_offset` with `count` records valued by their offset.
fn batch_at(
    base_offset: i64,
    count: i64,
    producer_id: i64,
    transactional: bool,
    control: bool,
) -> Vec<u8> {
    let spec = record_batch::BatchSpec {
        base_offset,
        producer_id,
        producer_epoch: if producer_id < 0 { -1 } else { 0 },
        base_sequence: if producer_id < 0 { -1 } else { 0 },
        transactional,
        control,
        ..record_batch::BatchSpec::default()
    };
    let records: Vec<NewRecord> = (base_offset..base_offset + count)
        .map(|offset| NewRecord {
            timestamp: 0,
            key: None,
            value: Some(Bytes::from(offset.to_string())),
            headers: Vec::new(),
        })
        .collect();
    record_batch::encode(&spec, &records).to_vec()
}

/// read_committed consumers must not see records of aborted transactions (KIP-98), and the
/// client, not the broker, filters them using the aborted-transaction list, as Kafka's
/// consumer does. Control batches are never shown, and a batch cut off by the byte limit ends
/// the walk without an error.
#[test]
fn read_committed_drops_aborted_transactions() {
    use crate::client::requests::read_batches;
    use kafka_protocol::messages::fetch_response::AbortedTransaction;
    use kafka_protocol::messages::ProducerId;
    let mut log = Vec::new();
    log.extend(batch_at(0, 2, 7, true, false)); // producer 7's transaction, later aborted
    log.extend(batch_at(2, 1, 7, true, true)); // its abort marker
    log.extend(batch_at(3, 1, -1, false, false)); // plain record
    log.extend(batch_at(4, 1, 8, true, false)); // producer 8's committed transaction
    let partial = batch_at(5, 1, -1, false, false);
    log.extend(&partial[..partial.len() / 2]);
    let aborted = vec![AbortedTransaction::default()
        .with_producer_id(ProducerId(7))
        .with_first_offset(0)];
    let offsets = |records: Vec<crate::client::FetchedRecord>| {
        records.iter().map(|r| r.offset).collect::<Vec<_>>()
    };

    let (committed, next_offset) = read_batches(&log, 0, aborted).expect("valid");
    assert_eq!(offsets(committed), vec![3, 4]);
    assert_eq!(
        next_offset, 5,
        "the partial batch is fetched again next time"
    );
    let (uncommitted, _) = read_batches(&log, 1, Vec::new()).expect("valid");
    assert_eq!(
        offsets(uncommitted),
        vec![1, 3, 4],
        "read_uncommitted sees aborted data, not control batches"
    );
}
