//! The queue workload's producers and consumers over librdkafka, through the `rdkafka` crate
//! (librdkafka built from its bundled source): `seedlog jepsen run --client rdkafka`, in builds
//! with the `rdkafka` feature. The workload, the values, the partition choices, the
//! reassignment schedule and the history they record are those of the `workload` module; only
//! the client differs. Setup and the final reads stay on Seedlog's own client.
//!
//! # What is driven
//!
//! - **Producers**: one `FutureProducer` per worker, sending one record per operation to the
//!   partition the workload chose, with `acks=all`, `enable.idempotence=false`,
//!   `message.send.max.retries=0` and `linger.ms=0`, so that an operation is one produce of one
//!   record as far as librdkafka allows. `request.timeout.ms` (the broker's wait for the ISR)
//!   and `socket.timeout.ms` (the client's wait for an answer) are the workload's request
//!   timeout; `message.timeout.ms`, which bounds the whole send including the wait for a
//!   leader, is twice that. A delivery report that has not arrived well after that is given up
//!   on. After an `info` outcome the worker retires its process and its producer (purging
//!   whatever that producer still holds) and carries on with a new process and a new producer.
//! - **Consumers**: one `BaseConsumer` per worker, on a blocking thread because its `poll`
//!   blocks. It never subscribes and never commits: it `assign`s partitions with explicit
//!   offsets (the positions the workload tracks, 0 for a newly assigned partition), with
//!   `enable.auto.commit=false` and `enable.auto.offset.store=false`. librdkafka's `assign`
//!   needs a `group.id`, and with one it looks for a group coordinator in the background, but
//!   only on brokers whose ApiVersions answer lists FindCoordinator; Seedlog's does not, so no
//!   FindCoordinator (and no other group request) is ever sent. `auto.offset.reset=error`:
//!   librdkafka never moves a position by itself; if it reports that it would have to, the
//!   consumer assigns the same partitions again at the positions it has recorded (an `assign`
//!   op). A poll op waits up to 100 ms for a first record and then takes what librdkafka has
//!   already fetched, up to 1000 records, recording them in the order returned; each
//!   partition's position moves past the records taken. A record behind its partition's
//!   position or of a partition not assigned (neither happens unless librdkafka hands out
//!   records fetched for an earlier assignment) is left out of the history and counted as an
//!   error.
//!
//! # Outcomes
//!
//! As for Seedlog's client, a send is `ok` when acknowledged, `fail` only when it certainly did
//! not happen, and `info` whenever it might have:
//!
//! | send result | outcome | why |
//! |---|---|---|
//! | delivery report without error | ok, with its offset | acknowledged at acks=all |
//! | `send_result` refused the record (`QueueFull`, `MessageSizeTooLarge`, `UnknownPartition`, `UnknownTopic`, ...) | fail | librdkafka rejected it before queueing it; no broker was sent anything |
//! | delivery report with any error, local (`MessageTimedOut`, `BrokerTransportFailure`, ...) or the broker's (`NotEnoughReplicas`, `RequestTimedOut`, `UnknownTopicOrPartition`, ...) | info | the error describes the last attempt only, see below |
//! | delivery future canceled (the producer went away) | info | the record may have been queued or in flight |
//! | no delivery report within the deadline | info | as for a timeout |
//!
//! `message.send.max.retries=0` stops only the resends librdkafka counts as retries. After an
//! error it takes for stale metadata (NOT_LEADER_OR_FOLLOWER, LEADER_NOT_AVAILABLE,
//! UNKNOWN_TOPIC_OR_PARTITION and a few more) and for requests it never finished writing, it
//! refreshes its metadata and sends the record again without counting a retry, until
//! `message.timeout.ms` passes. Seedlog answers NOT_LEADER_OR_FOLLOWER to acks=all produces it
//! had already appended when its leader steps down, and the next leader may still commit those.
//! So even an error the broker checks before appending, such as NOT_ENOUGH_REPLICAS, does not
//! prove that no earlier attempt was written; nor does a message timeout say whether the record
//! was ever sent (librdkafka knows its per-message persistence status, but the crate does not
//! expose it). Hence every error in a delivery report is `info`. The same silent resends can
//! append a value twice, at two offsets, the acknowledged one being the later: a duplicate,
//! which the checker allows for a producer that is not idempotent.
//!
//! Polls are `ok` when they returned records or no error, and `fail` when they returned only an
//! error. A poll changes no broker state and positions advance only past recorded records, so
//! polls are never `info`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig as RdkafkaConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::workload::{
    next_assignment, parse_value, pause, stopped, Assigned, Shared, WorkloadConfig, WorkloadStats,
    CONNECT_BACKOFF, ERROR_BACKOFF, FETCH_MAX_WAIT_MS, FETCH_PARTITION_BYTES_MAX, POLL_RECORDS_MAX,
    SALT_CONSUMER,
};
use crate::gen::Rng;
use crate::history::{OpKind, Outcome, Record};
use crate::util::mix64;

/// How long a poll op waits for its first record.
const POLL_WAIT: Duration = Duration::from_millis(FETCH_MAX_WAIT_MS as u64);
/// librdkafka's lower bound of `socket.connection.setup.timeout.ms`.
const CONNECTION_SETUP_MIN: Duration = Duration::from_secs(1);

/// How a send did not end in an acknowledgement.
#[derive(Debug)]
pub enum SendError {
    /// `send_result` refused the record: it was never queued.
    Refused(KafkaError),
    /// The delivery report carried this error.
    Delivery(KafkaError),
    /// The delivery future was canceled: the producer is gone.
    Canceled,
    /// No delivery report arrived within the deadline.
    Deadline,
}

impl SendError {
    /// A short, stable name for [`WorkloadStats::errors`].
    fn kind(&self) -> String {
        match self {
            SendError::Refused(e) => format!("refused: {}", error_kind(e)),
            SendError::Delivery(e) => format!("delivery: {}", error_kind(e)),
            SendError::Canceled => "delivery canceled".to_owned(),
            SendError::Deadline => "no delivery report in time".to_owned(),
        }
    }
}

/// The outcome to record for a send that failed with `error` (see the module documentation for
/// the table and the reasons).
#[must_use]
pub fn classify_send_error(error: &SendError) -> Outcome {
    match error {
        SendError::Refused(_) => Outcome::Fail,
        SendError::Delivery(_) | SendError::Canceled | SendError::Deadline => Outcome::Info,
    }
}

/// A short, stable name of a librdkafka error.
fn error_kind(error: &KafkaError) -> String {
    match error.rdkafka_error_code() {
        Some(code) => format!("{code:?}"),
        None => format!("{error:?}"),
    }
}

fn millis(duration: Duration) -> String {
    duration.as_millis().to_string()
}

/// Settings every librdkafka client of the workload gets.
fn base_config(config: &WorkloadConfig, client_id: &str) -> RdkafkaConfig {
    let mut rd = RdkafkaConfig::new();
    rd.set("bootstrap.servers", config.bootstrap.join(","))
        .set("client.id", client_id)
        .set("socket.timeout.ms", millis(config.request_timeout))
        .set(
            "socket.connection.setup.timeout.ms",
            millis(config.connect_timeout().max(CONNECTION_SETUP_MIN)),
        )
        .set("reconnect.backoff.ms", "100")
        .set("reconnect.backoff.max.ms", "1000");
    rd
}

/// The producer's configuration: one attempt per record, as far as librdkafka allows.
fn producer_config(config: &WorkloadConfig, client_id: &str) -> RdkafkaConfig {
    let mut rd = base_config(config, client_id);
    rd.set("acks", "all")
        .set("enable.idempotence", "false")
        .set("message.send.max.retries", "0")
        .set("linger.ms", "0")
        .set("request.timeout.ms", millis(config.request_timeout))
        .set("message.timeout.ms", millis(message_timeout(config)));
    rd
}

/// The consumer's configuration: manual assignment only, no commits, no automatic resets.
fn consumer_config(config: &WorkloadConfig, client_id: &str) -> RdkafkaConfig {
    let mut rd = base_config(config, client_id);
    // Required by librdkafka's assign(); the broker never hears of it (module documentation).
    rd.set("group.id", client_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "error")
        .set("enable.partition.eof", "false")
        .set("isolation.level", "read_uncommitted")
        .set("fetch.wait.max.ms", FETCH_MAX_WAIT_MS.to_string())
        .set("fetch.error.backoff.ms", millis(ERROR_BACKOFF))
        .set(
            "max.partition.fetch.bytes",
            FETCH_PARTITION_BYTES_MAX.to_string(),
        );
    rd
}

/// `message.timeout.ms`: the wait for a leader and the produce request together.
fn message_timeout(config: &WorkloadConfig) -> Duration {
    config.request_timeout * 2
}

/// How long a producer waits for a delivery report: librdkafka reports every record within
/// `message.timeout.ms`, except that a request in flight may take up to `socket.timeout.ms`.
fn delivery_deadline(config: &WorkloadConfig) -> Duration {
    message_timeout(config) + config.request_timeout + config.connect_timeout()
}

/// Drops a producer on a blocking thread: dropping purges it and waits for its threads.
fn retire(producer: FutureProducer) -> JoinHandle<()> {
    tokio::task::spawn_blocking(move || drop(producer))
}

/// One producer: sends fresh values until the run stops.
pub(super) async fn producer(
    shared: Arc<Shared>,
    index: usize,
    mut stop: watch::Receiver<bool>,
) -> WorkloadStats {
    let config = &shared.config;
    let recorder = &shared.recorder;
    let mut stats = WorkloadStats::default();
    let mut process = recorder.new_process();
    stats.processes += 1;
    let client_id = format!("jepsen-rdkafka-producer-{index}");
    let mut producer: Option<FutureProducer> = None;
    let mut retired = Vec::new();
    while !stopped(&stop) {
        let p = match producer {
            Some(ref p) => p,
            None => match producer_config(config, &client_id).create::<FutureProducer>() {
                Ok(p) => producer.insert(p),
                Err(e) => {
                    stats.error(format!("open producer: {}", error_kind(&e)));
                    if pause(CONNECT_BACKOFF, &mut stop).await {
                        break;
                    }
                    continue;
                }
            },
        };
        let send = shared.invoke_send(process);
        let text = send.value.to_string();
        let record = FutureRecord::to(&config.topic)
            .partition(send.partition as i32)
            .key(&text)
            .payload(&text);
        let sent = match p.send_result(record) {
            Err((e, _)) => Err(SendError::Refused(e)),
            Ok(delivery) => match tokio::time::timeout(delivery_deadline(config), delivery).await {
                Ok(Ok(Ok(delivered))) => Ok(delivered.offset),
                Ok(Ok(Err((e, _)))) => Err(SendError::Delivery(e)),
                Ok(Err(_)) => Err(SendError::Canceled),
                Err(_) => Err(SendError::Deadline),
            },
        };
        let (outcome, offset) = match &sent {
            Ok(offset) => (Outcome::Ok, Some(*offset)),
            Err(e) => {
                stats.error(format!("send: {}", e.kind()));
                (classify_send_error(e), None)
            }
        };
        let next_pause = shared.complete_send(send, outcome, offset, &mut stats);
        if outcome == Outcome::Info {
            process = recorder.new_process();
            retired.extend(producer.take().map(retire));
        }
        if pause(next_pause, &mut stop).await {
            break;
        }
    }
    retired.extend(producer.take().map(retire));
    for handle in retired {
        if handle.await.is_err() {
            stats.error("dropping a producer panicked".to_owned());
        }
    }
    stats
}

/// One consumer: assigns itself random partition subsets and polls until the run stops. Runs
/// on a blocking thread; a panic there is a panic of this task.
pub(super) async fn consumer(
    shared: Arc<Shared>,
    index: usize,
    stop: watch::Receiver<bool>,
) -> WorkloadStats {
    let worker = tokio::task::spawn_blocking(move || consume(&shared, index, &stop));
    match worker.await {
        Ok(stats) => stats,
        Err(e) => match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => panic!("the consumer thread did not finish: {e}"),
        },
    }
}

/// Sleeps for `pause` (on a blocking thread) unless the run has stopped; returns whether it
/// has.
fn sleep_unless_stopped(pause: Duration, stop: &watch::Receiver<bool>) -> bool {
    if !stopped(stop) {
        std::thread::sleep(pause);
    }
    stopped(stop)
}

fn consume(shared: &Shared, index: usize, stop: &watch::Receiver<bool>) -> WorkloadStats {
    let config = &shared.config;
    let recorder = &shared.recorder;
    let mut stats = WorkloadStats::default();
    let mut rng = Rng::new(mix64(config.seed ^ SALT_CONSUMER ^ index as u64));
    let process = recorder.new_process();
    stats.processes += 1;
    let client_id = format!("jepsen-rdkafka-consumer-{index}");
    let consumer: BaseConsumer = loop {
        match consumer_config(config, &client_id).create() {
            Ok(consumer) => break consumer,
            Err(e) => {
                stats.error(format!("open consumer: {}", error_kind(&e)));
                if sleep_unless_stopped(CONNECT_BACKOFF, stop) {
                    return stats;
                }
            }
        }
    };
    let mut assigned: Vec<Assigned> = Vec::new();
    let mut next_reassign = Instant::now();
    let mut assign_again = false;
    while !stopped(stop) {
        let draw = Instant::now() >= next_reassign;
        if draw || assign_again {
            let next = if draw {
                next_assignment(&mut rng, shared, &assigned)
            } else {
                assigned.clone()
            };
            if let Err(e) = assign(&consumer, config, &next) {
                stats.error(format!("assign: {}", error_kind(&e)));
                if sleep_unless_stopped(ERROR_BACKOFF, stop) {
                    break;
                }
                continue;
            }
            assigned = next;
            let keys = assigned.iter().map(|a| a.key).collect();
            recorder.instant(process, OpKind::Assign { keys }, Outcome::Ok);
            stats.assigns += 1;
            if draw {
                next_reassign = Instant::now() + config.reassign_interval;
            }
        }
        let polled = poll(&consumer, shared, process, &mut assigned, &mut stats);
        assign_again = polled.reset;
        if polled.failed && sleep_unless_stopped(ERROR_BACKOFF, stop) {
            break;
        }
    }
    stats
}

/// Replaces the consumer's assignment with `assigned`, each partition at its position.
fn assign(
    consumer: &BaseConsumer,
    config: &WorkloadConfig,
    assigned: &[Assigned],
) -> Result<(), KafkaError> {
    let mut list = TopicPartitionList::new();
    for a in assigned {
        list.add_partition_offset(
            &config.topic,
            a.partition as i32,
            Offset::Offset(a.position),
        )?;
    }
    consumer.assign(&list)
}

/// How a poll went, beyond what it recorded.
struct Polled {
    /// It returned nothing but an error.
    failed: bool,
    /// librdkafka stopped fetching a partition instead of resetting its position: assign again.
    reset: bool,
}

/// What became of one record a poll returned.
#[derive(Debug, PartialEq, Eq)]
enum Taken {
    /// Recorded; the partition's position moved past it.
    Record(Record),
    /// Not written by this workload; the position moved past it.
    Foreign,
    /// Below the partition's position: fetched for an earlier assignment.
    Behind,
    /// Of a partition not assigned.
    Unassigned,
}

/// Takes the record at `offset` of `partition`, advancing that partition's position.
fn take(assigned: &mut [Assigned], partition: i32, offset: i64, payload: Option<&[u8]>) -> Taken {
    let Some(a) = assigned
        .iter_mut()
        .find(|a| i64::from(a.partition) == i64::from(partition))
    else {
        return Taken::Unassigned;
    };
    if offset < a.position {
        return Taken::Behind;
    }
    a.position = offset + 1;
    match parse_value(payload) {
        Some(value) => Taken::Record(Record {
            key: a.key,
            offset,
            value,
        }),
        None => Taken::Foreign,
    }
}

/// One poll op by `process`: waits up to [`POLL_WAIT`] for a record, then takes what is already
/// fetched, recording the records in the order returned.
fn poll(
    consumer: &BaseConsumer,
    shared: &Shared,
    process: u64,
    assigned: &mut [Assigned],
    stats: &mut WorkloadStats,
) -> Polled {
    let recorder = &shared.recorder;
    let id = recorder.invoke(
        process,
        OpKind::Poll {
            records: Vec::new(),
            rebalanced: false,
        },
    );
    let mut records = Vec::new();
    let mut error = None;
    let mut wait = POLL_WAIT;
    while records.len() < POLL_RECORDS_MAX {
        match consumer.poll(wait) {
            None => break,
            Some(Ok(message)) => {
                wait = Duration::ZERO;
                match take(
                    assigned,
                    message.partition(),
                    message.offset(),
                    message.payload(),
                ) {
                    Taken::Record(record) => records.push(record),
                    Taken::Foreign => stats.foreign_records += 1,
                    Taken::Behind => stats.error("poll: record behind the position".to_owned()),
                    Taken::Unassigned => {
                        stats.error("poll: record of an unassigned partition".to_owned());
                    }
                }
            }
            Some(Err(e)) => {
                stats.error(format!("poll: {}", error_kind(&e)));
                error = Some(e);
                break;
            }
        }
    }
    let read = !records.is_empty() || error.is_none();
    let outcome = stats.count_poll(read, records.len());
    recorder.complete(
        id,
        outcome,
        Some(OpKind::Poll {
            records,
            rebalanced: false,
        }),
    );
    let reset = error
        .as_ref()
        .and_then(KafkaError::rdkafka_error_code)
        .is_some_and(|code| code == RDKafkaErrorCode::AutoOffsetReset);
    Polled {
        failed: !read,
        reset,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::workload::tests::{
        assert_valid, run_and_drain, seedlog_binary, test_config, Broker,
    };
    use crate::harness::workload::ClientKind;
    use crate::history::KeyId;

    fn produce_error(code: RDKafkaErrorCode) -> KafkaError {
        KafkaError::MessageProduction(code)
    }

    #[test]
    fn only_refused_sends_fail() {
        for code in [
            RDKafkaErrorCode::QueueFull,
            RDKafkaErrorCode::MessageSizeTooLarge,
            RDKafkaErrorCode::UnknownPartition,
            RDKafkaErrorCode::UnknownTopic,
        ] {
            let refused = SendError::Refused(produce_error(code));
            assert_eq!(classify_send_error(&refused), Outcome::Fail, "{code:?}");
        }
        // Broker codes that Seedlog's own client may classify as fail are info here: librdkafka
        // may have resent the record after an earlier attempt that was appended.
        for code in [
            RDKafkaErrorCode::MessageTimedOut,
            RDKafkaErrorCode::BrokerTransportFailure,
            RDKafkaErrorCode::OperationTimedOut,
            RDKafkaErrorCode::PurgeQueue,
            RDKafkaErrorCode::PurgeInflight,
            RDKafkaErrorCode::UnknownTopic,
            RDKafkaErrorCode::UnknownTopicOrPartition,
            RDKafkaErrorCode::NotLeaderForPartition,
            RDKafkaErrorCode::RequestTimedOut,
            RDKafkaErrorCode::NotEnoughReplicas,
            RDKafkaErrorCode::NotEnoughReplicasAfterAppend,
            RDKafkaErrorCode::MessageSizeTooLarge,
        ] {
            let reported = SendError::Delivery(produce_error(code));
            assert_eq!(classify_send_error(&reported), Outcome::Info, "{code:?}");
        }
        assert_eq!(classify_send_error(&SendError::Canceled), Outcome::Info);
        assert_eq!(classify_send_error(&SendError::Deadline), Outcome::Info);
        assert_eq!(
            SendError::Delivery(produce_error(RDKafkaErrorCode::MessageTimedOut)).kind(),
            "delivery: MessageTimedOut"
        );
    }

    /// librdkafka accepts every setting (a misspelt name fails `create`), and the consumer can
    /// be assigned explicit offsets with no broker reachable.
    #[test]
    fn librdkafka_accepts_the_configurations() {
        let mut config = WorkloadConfig::new(vec!["127.0.0.1:1".to_owned()]);
        config.client = ClientKind::Rdkafka;
        let producer_settings = producer_config(&config, "p");
        for (key, value) in [
            ("acks", "all"),
            ("enable.idempotence", "false"),
            ("message.send.max.retries", "0"),
            ("linger.ms", "0"),
            ("request.timeout.ms", "5000"),
            ("message.timeout.ms", "10000"),
        ] {
            assert_eq!(producer_settings.get(key), Some(value), "{key}");
        }
        let producer: FutureProducer = producer_settings.create().expect("producer");
        drop(producer);
        let consumer: BaseConsumer = consumer_config(&config, "c").create().expect("consumer");
        let assigned = [Assigned {
            partition: 2,
            key: KeyId(0),
            position: 17,
        }];
        assign(&consumer, &config, &assigned).expect("assign");
        let list = consumer.assignment().expect("assignment");
        let elements = list.elements();
        assert_eq!(elements.len(), 1);
        assert_eq!(elements[0].partition(), 2);
        assert_eq!(elements[0].offset(), Offset::Offset(17));
    }

    #[test]
    fn records_advance_positions_and_stale_ones_are_left_out() {
        let mut assigned = [
            Assigned {
                partition: 0,
                key: KeyId(0),
                position: 5,
            },
            Assigned {
                partition: 3,
                key: KeyId(3),
                position: 0,
            },
        ];
        assert_eq!(
            take(&mut assigned, 0, 5, Some(b"42")),
            Taken::Record(Record {
                key: KeyId(0),
                offset: 5,
                value: 42
            })
        );
        assert_eq!(assigned[0].position, 6);
        assert_eq!(take(&mut assigned, 0, 5, Some(b"42")), Taken::Behind);
        assert_eq!(take(&mut assigned, 1, 0, Some(b"1")), Taken::Unassigned);
        assert_eq!(take(&mut assigned, 3, 0, Some(b"x")), Taken::Foreign);
        assert_eq!(assigned[1].position, 1);
        assert_eq!(
            take(&mut assigned, 3, 4, Some(b"7")),
            Taken::Record(Record {
                key: KeyId(3),
                offset: 4,
                value: 7
            })
        );
        assert_eq!(assigned[1].position, 5);
    }

    /// The workload over librdkafka against one real broker: valid, busy, and no request the
    /// broker does not implement (FindCoordinator above all) ever reaches it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn rdkafka_queue_workload_against_a_real_broker_is_valid() {
        let Some(bin) = seedlog_binary() else {
            println!("skipped: seedlog binary not built (set SEEDLOG_BIN)");
            return;
        };
        let broker = Broker::start_logging(bin, "info,seedlog::server::conn=debug");
        let mut config = test_config(&broker);
        config.client = ClientKind::Rdkafka;
        let (history, stats) = run_and_drain(&config, Duration::from_secs(3)).await;
        assert_valid(&history, &stats);
        assert!(stats.sends_ok > 50, "too few sends: {stats:?}");
        assert!(
            stats.records_polled > 50,
            "too few records polled: {stats:?}"
        );
        assert!(stats.assigns >= 2, "no reassignment: {stats:?}");
        assert_eq!(stats.foreign_records, 0, "{stats:?}");
        let log = broker.log();
        assert!(
            log.contains("connection reader done"),
            "the broker log lacks connection-level debug lines"
        );
        let refused: Vec<&str> = log.lines().filter(|l| l.contains("bad request")).collect();
        assert!(
            refused.is_empty(),
            "the broker refused requests (FindCoordinator is API key 10):\n{}",
            refused.join("\n")
        );
    }
}
