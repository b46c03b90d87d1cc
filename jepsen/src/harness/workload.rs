//! The clients of `seedlog jepsen run`: Jepsen's Kafka "queue" workload over Seedlog's own
//! Kafka client ([`seedlog_net::Client`]), recording every operation into a [`History`].
//!
//! [`WorkloadConfig::client`] can instead put the producers and consumers on librdkafka
//! ([`ClientKind::Rdkafka`], in builds with the `rdkafka` feature; the `rdkafka_client` module
//! documents that client and how its outcomes are classified). Setup (creating the topic) and the
//! final reads use Seedlog's client whichever client the workers use: they only prepare and
//! drain the run, and the history records the final reads like any other process's polls.
//!
//! # The workload
//!
//! - **Producers** send unique `i64` values (one counter shared by the whole run), one record
//!   per produce request with acks=all, key and value both the value's decimal text. The
//!   partition is chosen per value by the seeded PRNG. A send that is retried after an error is
//!   a new send of a new value: every value is sent at most once, so a polled value names the
//!   one send it came from.
//! - **Consumers** use manual assignment (the broker has no consumer groups): each assigns
//!   itself a random non-empty subset of the partitions (an `assign` op), then polls. Every
//!   `reassign_interval` it draws a new subset, as Jepsen's workload does; partitions it keeps
//!   keep their positions, newly assigned ones start at offset 0 (`auto.offset.reset=earliest`).
//!   A poll fetches each assigned partition once from its position and records the records in
//!   the order returned; the position moves past exactly the records recorded.
//! - **Final reads** ([`final_reads`]), after every fault is healed, read each partition from
//!   offset 0 up to the high watermark ListOffsets reported when the read began, each partition
//!   by a fresh process. They make the run *drained*: an acknowledged value they do not see is
//!   an unseen (lost) write.
//!
//! Every producer and consumer is one logical process with at most one open operation. A
//! process whose operation ended indeterminate is retired, as in Jepsen: the worker drops its
//! client and carries on as a new process with a new client.
//!
//! # Outcomes
//!
//! An operation is `ok` when the broker confirmed it, `fail` only when it certainly did not
//! happen, and `info` whenever it might have. Marking a send `fail` that did happen would make
//! a correct broker look like it served an aborted write (G1a), so anything not proven unsent
//! is `info`.
//!
//! | send result | outcome | why |
//! |---|---|---|
//! | produce answered, no error | ok, with the base offset | the batch is below the high watermark |
//! | `Connect` error | fail | raised only while opening a TCP connection, before the produce is written |
//! | `Timeout` of Metadata or ApiVersions | fail | the routing or handshake request timed out; the produce was never written |
//! | client-side `LeaderNotAvailable`, `UnknownTopicOrPartition`, `UnsupportedVersion`, `InvalidArgument` | fail | the client refused before sending |
//! | UNKNOWN_TOPIC_OR_PARTITION (3), LEADER_NOT_AVAILABLE (5), NOT_ENOUGH_REPLICAS (19), and request-validation codes (2, 10, 17, 18, 21, 35, 42, 43, 76, 87, 29, 31, 100) | fail | the broker checks these before appending |
//! | NOT_LEADER_OR_FOLLOWER (6) | info | Seedlog also answers it to acks=all produces already appended when the leader steps down; the next leader may still commit the batch |
//! | REQUEST_TIMED_OUT (7), NOT_ENOUGH_REPLICAS_AFTER_APPEND (20), KAFKA_STORAGE_ERROR (56) | info | appended (or possibly appended) before the error |
//! | `Timeout` of the Produce request, `ConnectionClosed`, `BrokerMisbehaved` | info | the request may have reached the broker; `ConnectionClosed` does not say which request of the call failed |
//! | the call's overall deadline passing | info | as for a timeout |
//! | any other Kafka code | info | unknown, so not proven unsent |
//!
//! Polls are `ok` when at least one assigned partition was fetched (possibly with no records)
//! and `fail` when every fetch failed. A poll changes no broker state and the consumer's
//! positions only advance past records it recorded, so a failed poll is exactly a poll that
//! returned nothing: polls are never `info`.
//!
//! The client never retries by itself; after an error it drops its cached metadata or
//! connection as the error requires, and the workers back off briefly before the next
//! operation. Every network call is bounded by the client's request and connect timeouts and,
//! in addition, by an overall deadline per call, so a hung or partitioned broker produces info
//! operations rather than a hung run.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use seedlog_core::record_batch::NewRecord;
use seedlog_net::client::{
    Acks, FetchOptions, FetchedPartition, IsolationLevel, NewTopic, OffsetSpec,
};
use seedlog_net::{Client, ClientConfig, ClientError};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::gen::Rng;
use crate::history::{History, KeyId, OpId, OpKind, Outcome, Record};
use crate::util::mix64;

/// Pause after a failed operation before the process's next one.
pub(super) const ERROR_BACKOFF: Duration = Duration::from_millis(100);
/// Pause between attempts to open a client while no broker answers.
pub(super) const CONNECT_BACKOFF: Duration = Duration::from_millis(250);
/// Longest TCP connect wait per address.
const CONNECT_TIMEOUT_MAX: Duration = Duration::from_secs(2);
/// Records taken from one partition in one poll; the rest is fetched by the next poll.
pub(super) const POLL_RECORDS_MAX: usize = 1000;
/// How long the broker may hold an empty fetch (long poll), in milliseconds.
pub(super) const FETCH_MAX_WAIT_MS: i32 = 100;
/// Byte limit of one partition's data in a fetch response.
pub(super) const FETCH_PARTITION_BYTES_MAX: i32 = 64 * 1024;
/// CreateTopics `timeout_ms`: how long the controller may take to create the topic.
const CREATE_TOPIC_TIMEOUT_MS: i32 = 10_000;

/// Salts that keep the producers', consumers' and partition choices' PRNG streams apart.
pub(super) const SALT_CONSUMER: u64 = 0xc0a5_0000_0000_0000;
const SALT_PARTITION: u64 = 0x9a27_0000_0000_0000;

/// A history shared by concurrent clients, with a monotonic clock: times are nanoseconds since
/// the recorder was created, read under the history's lock, so events are recorded in time
/// order and a completion never precedes its invocation.
#[derive(Clone)]
pub struct Recorder {
    history: Arc<Mutex<History>>,
    start: Instant,
    next_process: Arc<AtomicU64>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

impl Recorder {
    /// An empty history whose clock starts now.
    #[must_use]
    pub fn new() -> Recorder {
        Recorder {
            history: Arc::new(Mutex::new(History::new())),
            start: Instant::now(),
            next_process: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Nanoseconds since the recorder was created.
    #[must_use]
    pub fn now_ns(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// The id of a key (partition) name, e.g. `"jepsen-3"`; the same name gives the same id.
    ///
    /// # Panics
    /// Beyond 2^32 distinct keys.
    pub fn key(&self, name: &str) -> KeyId {
        self.lock()
            .key(name)
            .expect("a run names far fewer than 2^32 partitions")
    }

    /// A process id no operation has used yet.
    pub fn new_process(&self) -> u64 {
        self.next_process.fetch_add(1, Ordering::Relaxed)
    }

    /// Number of process ids handed out by [`Recorder::new_process`].
    #[must_use]
    pub fn processes(&self) -> u64 {
        self.next_process.load(Ordering::Relaxed)
    }

    /// Records that `process` invoked `op` now.
    ///
    /// # Panics
    /// If `process` still has an open operation (a process runs one operation at a time).
    pub fn invoke(&self, process: u64, op: OpKind) -> OpId {
        let mut history = self.lock();
        let now = self.now_ns();
        history
            .invoke(process, now, op)
            .unwrap_or_else(|e| panic!("recording an invocation: {e}"))
    }

    /// Records that operation `id` completed now with `outcome`; `op` replaces the invoked
    /// operation (to add outputs such as offsets or records), `None` keeps it.
    ///
    /// # Panics
    /// If `id` is not open or `op` is another kind of operation.
    pub fn complete(&self, id: OpId, outcome: Outcome, op: Option<OpKind>) {
        let mut history = self.lock();
        let now = self.now_ns();
        history
            .complete(id, now, outcome, op)
            .unwrap_or_else(|e| panic!("recording a completion: {e}"));
    }

    /// Records an operation that completes as soon as it is invoked (an assignment).
    pub fn instant(&self, process: u64, op: OpKind, outcome: Outcome) -> OpId {
        let id = self.invoke(process, op);
        self.complete(id, outcome, None);
        id
    }

    /// A copy of the history so far.
    #[must_use]
    pub fn snapshot(&self) -> History {
        self.lock().clone()
    }

    /// The history; copies it if other clones of the recorder are still alive.
    #[must_use]
    pub fn into_history(self) -> History {
        match Arc::try_unwrap(self.history) {
            Ok(mutex) => mutex.into_inner().unwrap_or_else(PoisonError::into_inner),
            Err(shared) => shared
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, History> {
        // Every critical section leaves the history consistent, so a poisoned lock is usable.
        self.history.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The Kafka client the producers and consumers use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClientKind {
    /// Seedlog's own client, [`seedlog_net::Client`].
    #[default]
    Seedlog,
    /// librdkafka through the `rdkafka` crate; only in builds with the `rdkafka` feature.
    Rdkafka,
}

impl ClientKind {
    /// Every client, in the order the command line lists them.
    pub const ALL: [ClientKind; 2] = [ClientKind::Seedlog, ClientKind::Rdkafka];

    /// The name `--client` takes.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            ClientKind::Seedlog => "seedlog",
            ClientKind::Rdkafka => "rdkafka",
        }
    }

    /// Whether this build can drive the client.
    #[must_use]
    pub fn available(self) -> bool {
        match self {
            ClientKind::Seedlog => true,
            ClientKind::Rdkafka => cfg!(feature = "rdkafka"),
        }
    }

    /// An error saying how to get the client if this build lacks it.
    pub fn ensure_available(self) -> Result<()> {
        if self.available() {
            return Ok(());
        }
        bail!(
            "the {} client is not in this build: build seedlog with `--features rdkafka` \
             (cargo build -p seedlog-node --features rdkafka)",
            self.name()
        )
    }
}

impl fmt::Display for ClientKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ClientKind {
    type Err = String;

    fn from_str(s: &str) -> Result<ClientKind, String> {
        ClientKind::ALL
            .into_iter()
            .find(|kind| kind.name() == s.trim())
            .ok_or_else(|| format!("unknown client `{s}`; expected seedlog or rdkafka"))
    }
}

/// What the workload does and against which cluster.
#[derive(Clone, Debug)]
pub struct WorkloadConfig {
    /// Kafka listener addresses, `host:port`.
    pub bootstrap: Vec<String>,
    /// The topic.
    pub topic: String,
    /// Partitions of the topic.
    pub partitions: u32,
    /// Replication factor of the topic.
    pub replication_factor: i16,
    /// The topic's `min.insync.replicas`.
    pub min_insync_replicas: i16,
    /// Producer workers.
    pub producers: usize,
    /// Consumer workers.
    pub consumers: usize,
    /// Pause between two sends of one producer.
    pub send_interval: Duration,
    /// How often a consumer assigns itself a new random subset of the partitions.
    pub reassign_interval: Duration,
    /// The client's request timeout; short, so faults produce info operations, not hangs.
    pub request_timeout: Duration,
    /// Seed of the partition choices and reassignment subsets.
    pub seed: u64,
    /// The client the producers and consumers use (setup and final reads always use Seedlog's).
    pub client: ClientKind,
}

impl WorkloadConfig {
    /// The defaults for a cluster reachable at `bootstrap` (one address per node): topic
    /// `jepsen` with 4 partitions, replication factor `min(3, nodes)`, `min.insync.replicas` 2
    /// when the factor is at least 3 (else 1), 3 producers sending every 10 ms, 2 consumers
    /// reassigning every 5 s, a 5 s request timeout, Seedlog's client.
    #[must_use]
    pub fn new(bootstrap: Vec<String>) -> WorkloadConfig {
        let replication_factor = i16::try_from(bootstrap.len().clamp(1, 3)).unwrap_or(3);
        WorkloadConfig {
            bootstrap,
            topic: "jepsen".to_owned(),
            partitions: 4,
            replication_factor,
            min_insync_replicas: if replication_factor >= 3 { 2 } else { 1 },
            producers: 3,
            consumers: 2,
            send_interval: Duration::from_millis(10),
            reassign_interval: Duration::from_secs(5),
            request_timeout: Duration::from_secs(5),
            seed: 0,
            client: ClientKind::Seedlog,
        }
    }

    /// The history key of a partition: `"<topic>-<partition>"`.
    #[must_use]
    pub fn key_name(&self, partition: u32) -> String {
        format!("{}-{partition}", self.topic)
    }

    /// The partition value `value` is sent to.
    #[must_use]
    pub fn partition_of(&self, value: i64) -> u32 {
        let mut rng = Rng::new(mix64(self.seed ^ SALT_PARTITION) ^ value as u64);
        rng.below(u64::from(self.partitions)) as u32
    }

    fn validate(&self) -> Result<()> {
        self.client.ensure_available()?;
        if self.bootstrap.is_empty() {
            bail!("workload: no bootstrap address");
        }
        if self.topic.is_empty() {
            bail!("workload: empty topic name");
        }
        if self.partitions == 0 || i32::try_from(self.partitions).is_err() {
            bail!("workload: {} partitions", self.partitions);
        }
        if self.replication_factor < 1 || self.min_insync_replicas < 1 {
            bail!(
                "workload: replication factor {} and min.insync.replicas {} must be positive",
                self.replication_factor,
                self.min_insync_replicas
            );
        }
        Ok(())
    }

    fn client_config(&self, client_id: String) -> ClientConfig {
        ClientConfig {
            client_id,
            request_timeout: self.request_timeout,
            connect_timeout: self.connect_timeout(),
            ..ClientConfig::default()
        }
    }

    pub(super) fn connect_timeout(&self) -> Duration {
        self.request_timeout.min(CONNECT_TIMEOUT_MAX)
    }

    /// The overall deadline of one produce, fetch or ListOffsets call: it may refresh metadata
    /// and open a connection before its own request.
    fn call_timeout(&self) -> Duration {
        self.request_timeout * 2 + self.connect_timeout() * 2
    }

    /// The overall deadline of opening a client: bootstrap addresses are tried in turn.
    fn open_timeout(&self) -> Duration {
        let addresses = u32::try_from(self.bootstrap.len()).unwrap_or(u32::MAX);
        self.connect_timeout() * addresses.saturating_add(1) + self.request_timeout * 2
    }

    pub(super) fn keys(&self, recorder: &Recorder) -> Vec<KeyId> {
        (0..self.partitions)
            .map(|p| recorder.key(&self.key_name(p)))
            .collect()
    }
}

/// Counts of what the workload did, for the run log.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct WorkloadStats {
    /// Sends acknowledged.
    pub sends_ok: u64,
    /// Sends that certainly did not happen.
    pub sends_fail: u64,
    /// Sends with an unknown outcome.
    pub sends_info: u64,
    /// Polls that fetched at least one partition.
    pub polls_ok: u64,
    /// Polls whose every fetch failed.
    pub polls_fail: u64,
    /// Assignments recorded.
    pub assigns: u64,
    /// Records returned by polls.
    pub records_polled: u64,
    /// Fetched records whose value is not a decimal integer (not written by this workload);
    /// they are left out of the history.
    pub foreign_records: u64,
    /// Logical processes used (a process is retired after an indeterminate send).
    pub processes: u64,
    /// Errors seen, by kind.
    pub errors: BTreeMap<String, u64>,
}

impl WorkloadStats {
    /// Adds `other`'s counts to these.
    pub fn merge(&mut self, other: &WorkloadStats) {
        self.sends_ok += other.sends_ok;
        self.sends_fail += other.sends_fail;
        self.sends_info += other.sends_info;
        self.polls_ok += other.polls_ok;
        self.polls_fail += other.polls_fail;
        self.assigns += other.assigns;
        self.records_polled += other.records_polled;
        self.foreign_records += other.foreign_records;
        self.processes += other.processes;
        for (kind, count) in &other.errors {
            *self.errors.entry(kind.clone()).or_default() += count;
        }
    }

    pub(super) fn error(&mut self, kind: String) {
        *self.errors.entry(kind).or_default() += 1;
    }

    /// Counts a poll that returned `records` and says how it ended: ok when it read from the
    /// broker, fail when every fetch failed (so it read nothing and moved no position).
    pub(super) fn count_poll(&mut self, read: bool, records: usize) -> Outcome {
        self.records_polled += records as u64;
        if read {
            self.polls_ok += 1;
            Outcome::Ok
        } else {
            self.polls_fail += 1;
            Outcome::Fail
        }
    }

    /// Counts a send that ended `outcome` and returns the pause before the producer's next
    /// send. After an info outcome the producer goes on as a new process, which is counted
    /// here; the caller takes the new process id and drops its client.
    pub(super) fn count_send(&mut self, outcome: Outcome, interval: Duration) -> Duration {
        match outcome {
            Outcome::Ok => {
                self.sends_ok += 1;
                interval
            }
            Outcome::Fail => {
                self.sends_fail += 1;
                interval.max(ERROR_BACKOFF)
            }
            Outcome::Info => {
                self.sends_info += 1;
                self.processes += 1;
                interval.max(ERROR_BACKOFF)
            }
        }
    }
}

/// The outcome to record for a send whose produce call failed with `error` (see the module
/// documentation for the table and the reasons).
#[must_use]
pub fn classify_send_error(error: &ClientError) -> Outcome {
    match error {
        ClientError::Kafka { code, .. } => match code {
            // Checked by the broker before it appends anything.
            2 | 3 | 5 | 10 | 17 | 18 | 19 | 21 | 29 | 31 | 35 | 42 | 43 | 76 | 87 | 100 => {
                Outcome::Fail
            }
            // 6 (also answered to appended acks=all waiters), 7, 20, 56 and anything unknown.
            _ => Outcome::Info,
        },
        ClientError::Connect { .. }
        | ClientError::UnknownTopicOrPartition { .. }
        | ClientError::LeaderNotAvailable { .. }
        | ClientError::UnsupportedVersion { .. }
        | ClientError::InvalidArgument { .. } => Outcome::Fail,
        ClientError::Timeout { api_key } => {
            if *api_key == seedlog_net::kafka_protocol::messages::ApiKey::Produce {
                Outcome::Info
            } else {
                Outcome::Fail
            }
        }
        ClientError::ConnectionClosed { .. } | ClientError::BrokerMisbehaved { .. } => {
            Outcome::Info
        }
    }
}

/// A short, stable name of an error for [`WorkloadStats::errors`].
fn error_kind(error: &ClientError) -> String {
    match error {
        ClientError::Kafka { code, .. } => match error.kafka_code() {
            Some(name) => format!("kafka {code} {name:?}"),
            None => format!("kafka {code}"),
        },
        ClientError::Connect { .. } => "connect failed".to_owned(),
        ClientError::ConnectionClosed { .. } => "connection closed".to_owned(),
        ClientError::Timeout { api_key } => format!("{api_key:?} timed out"),
        ClientError::UnsupportedVersion { api_key } => format!("{api_key:?} unsupported"),
        ClientError::BrokerMisbehaved { .. } => "broker misbehaved".to_owned(),
        ClientError::UnknownTopicOrPartition { .. } => "partition not in metadata".to_owned(),
        ClientError::LeaderNotAvailable { .. } => "no leader in metadata".to_owned(),
        ClientError::InvalidArgument { .. } => "invalid argument".to_owned(),
    }
}

/// Why a bounded call did not succeed.
enum CallError {
    Client(ClientError),
    Deadline,
}

impl CallError {
    fn kind(&self) -> String {
        match self {
            CallError::Client(e) => error_kind(e),
            CallError::Deadline => "call deadline passed".to_owned(),
        }
    }

    fn detail(&self) -> String {
        match self {
            CallError::Client(e) => e.to_string(),
            CallError::Deadline => "call deadline passed".to_owned(),
        }
    }
}

/// Runs `call` for at most `limit`.
async fn bounded<T>(
    limit: Duration,
    call: impl std::future::Future<Output = Result<T, ClientError>>,
) -> Result<T, CallError> {
    match tokio::time::timeout(limit, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(CallError::Client(e)),
        Err(_) => Err(CallError::Deadline),
    }
}

async fn open_client(config: &WorkloadConfig, client_id: String) -> Result<Client, CallError> {
    let client_config = config.client_config(client_id);
    bounded(
        config.open_timeout(),
        Client::connect(&config.bootstrap, client_config),
    )
    .await
}

/// True once the run should stop: `stop` became true or its sender is gone.
pub(super) fn stopped(stop: &watch::Receiver<bool>) -> bool {
    *stop.borrow() || stop.has_changed().is_err()
}

/// Sleeps for `pause` unless the run stops first; returns whether it stopped.
pub(super) async fn pause(pause: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    if stopped(stop) {
        return true;
    }
    let woken = tokio::select! {
        () = tokio::time::sleep(pause) => false,
        _ = stop.wait_for(|s| *s) => true,
    };
    woken || stopped(stop)
}

/// Opens a client if there is none, retrying until it works or the run stops.
async fn ensure_client(
    slot: &mut Option<Client>,
    config: &WorkloadConfig,
    client_id: &str,
    stop: &mut watch::Receiver<bool>,
    stats: &mut WorkloadStats,
) -> bool {
    while slot.is_none() {
        if stopped(stop) {
            return false;
        }
        match open_client(config, client_id.to_owned()).await {
            Ok(client) => *slot = Some(client),
            Err(e) => {
                stats.error(format!("open client: {}", e.kind()));
                if pause(CONNECT_BACKOFF, stop).await {
                    return false;
                }
            }
        }
    }
    true
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn record_of(value: i64) -> NewRecord {
    let text = Bytes::from(value.to_string());
    NewRecord {
        timestamp: now_ms(),
        key: Some(text.clone()),
        value: Some(text),
        headers: Vec::new(),
    }
}

/// State shared by the workers of one run.
pub(super) struct Shared {
    pub(super) config: WorkloadConfig,
    pub(super) recorder: Recorder,
    /// The history key of each partition, by partition number.
    pub(super) keys: Vec<KeyId>,
    /// The next value to send: one counter for every producer, so values are unique.
    pub(super) next_value: AtomicI64,
}

/// A send whose invocation is in the history: the fresh value and the partition it goes to.
pub(super) struct OpenSend {
    id: OpId,
    key: KeyId,
    pub(super) value: i64,
    pub(super) partition: u32,
}

impl Shared {
    /// Draws the next value and records that `process` invokes its send.
    pub(super) fn invoke_send(&self, process: u64) -> OpenSend {
        let value = self.next_value.fetch_add(1, Ordering::Relaxed);
        let partition = self.config.partition_of(value);
        let key = self.keys[partition as usize];
        let op = OpKind::Send {
            key,
            value,
            offset: None,
        };
        let id = self.recorder.invoke(process, op);
        OpenSend {
            id,
            key,
            value,
            partition,
        }
    }

    /// Records how `send` ended (with its offset, if the broker gave one) and counts it;
    /// returns the pause before the next send.
    pub(super) fn complete_send(
        &self,
        send: OpenSend,
        outcome: Outcome,
        offset: Option<i64>,
        stats: &mut WorkloadStats,
    ) -> Duration {
        let OpenSend { id, key, value, .. } = send;
        let offset = offset.filter(|o| *o >= 0);
        self.recorder
            .complete(id, outcome, Some(OpKind::Send { key, value, offset }));
        stats.count_send(outcome, self.config.send_interval)
    }
}

/// Creates the topic, retrying while the cluster elects a controller and registers brokers,
/// then waits until every partition has a leader that answers ListOffsets. Gives up with an
/// error naming the last problem once `deadline` has passed.
pub async fn setup(config: &WorkloadConfig, deadline: Duration) -> Result<()> {
    config.validate()?;
    let deadline = Instant::now() + deadline;
    let topic = NewTopic {
        name: config.topic.clone(),
        partitions: i32::try_from(config.partitions).context("partition count")?,
        replication_factor: config.replication_factor,
        configs: vec![(
            "min.insync.replicas".to_owned(),
            config.min_insync_replicas.to_string(),
        )],
    };
    let mut client: Option<Client> = None;
    let mut last = String::from("no attempt finished");
    let mut created = false;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            let phase = if created {
                "waiting for partition leaders"
            } else {
                "creating the topic"
            };
            bail!("setup of topic {}: {phase}: {last}", config.topic);
        }
        if client.is_none() {
            match open_client(config, "jepsen-setup".to_owned()).await {
                Ok(c) => client = Some(c),
                Err(e) => {
                    last = format!("cannot open a client: {}", e.detail());
                    tokio::time::sleep(CONNECT_BACKOFF.min(remaining)).await;
                    continue;
                }
            }
        }
        let c = client.as_ref().expect("opened above");
        let limit = config.call_timeout().min(remaining);
        let step = if created {
            partitions_ready(c, config, limit).await
        } else {
            create_topic(c, &topic, limit).await.map(|()| {
                created = true;
                false
            })
        };
        match step {
            Ok(true) => return Ok(()),
            Ok(false) => continue,
            Err(SetupError::Fatal(e)) => return Err(e),
            Err(SetupError::Retry(detail, reopen)) => {
                last = detail;
                if reopen {
                    client = None;
                }
            }
        }
        tokio::time::sleep(ERROR_BACKOFF * 2).await;
    }
}

enum SetupError {
    /// Worth retrying: the detail, and whether to open a new client first.
    Retry(String, bool),
    /// A configuration the cluster will never accept.
    Fatal(anyhow::Error),
}

impl SetupError {
    fn retry(what: &str, e: &CallError) -> SetupError {
        let reopen = matches!(
            e,
            CallError::Deadline
                | CallError::Client(
                    ClientError::ConnectionClosed { .. } | ClientError::Timeout { .. }
                )
        );
        SetupError::Retry(format!("{what}: {}", e.detail()), reopen)
    }
}

async fn create_topic(
    client: &Client,
    topic: &NewTopic,
    limit: Duration,
) -> Result<(), SetupError> {
    let outcomes = bounded(
        limit,
        client.create_topics(std::slice::from_ref(topic), CREATE_TOPIC_TIMEOUT_MS),
    )
    .await
    .map_err(|e| SetupError::retry("CreateTopics", &e))?;
    let Some(outcome) = outcomes.into_iter().find(|o| o.name == topic.name) else {
        return Err(SetupError::Retry(
            "CreateTopics answered without the topic".to_owned(),
            false,
        ));
    };
    match outcome.result {
        Ok(()) => Ok(()),
        // Created by an earlier attempt whose answer was lost, or by an earlier run step.
        Err(ClientError::Kafka { code: 36, .. }) => Ok(()),
        // Invalid topic, partitions or config: no retry will change the answer.
        Err(
            e @ ClientError::Kafka {
                code: 17 | 37 | 40 | 42,
                ..
            },
        ) => Err(SetupError::Fatal(anyhow!(
            "creating topic {}: {e}",
            topic.name
        ))),
        // Including INVALID_REPLICATION_FACTOR while brokers are still registering.
        Err(e) => Err(SetupError::retry("CreateTopics", &CallError::Client(e))),
    }
}

/// Whether every partition has a leader that answers ListOffsets.
async fn partitions_ready(
    client: &Client,
    config: &WorkloadConfig,
    limit: Duration,
) -> Result<bool, SetupError> {
    let metadata = bounded(
        limit,
        client.refresh_metadata(Some(&[config.topic.as_str()])),
    )
    .await
    .map_err(|e| SetupError::retry("Metadata", &e))?;
    let Some(info) = metadata.topics.get(&config.topic) else {
        return Err(SetupError::Retry(
            "the topic is not in the metadata yet".to_owned(),
            false,
        ));
    };
    for p in 0..config.partitions as i32 {
        let led = info
            .partitions
            .iter()
            .any(|q| q.partition == p && q.leader >= 0 && q.error_code == 0);
        if !led {
            return Err(SetupError::Retry(
                format!("partition {p} has no leader yet"),
                false,
            ));
        }
    }
    for p in 0..config.partitions as i32 {
        bounded(
            limit,
            client.list_offsets(
                &config.topic,
                p,
                OffsetSpec::Latest,
                IsolationLevel::ReadUncommitted,
            ),
        )
        .await
        .map_err(|e| SetupError::retry(&format!("ListOffsets of partition {p}"), &e))?;
    }
    Ok(true)
}

/// Runs the producers and consumers until `stop` becomes true (or its sender is dropped),
/// recording every operation, and returns what they did. Operations in flight when the run
/// stops are completed (each is bounded by the call deadline) before this returns.
pub async fn run(
    config: &WorkloadConfig,
    recorder: &Recorder,
    stop: watch::Receiver<bool>,
) -> Result<WorkloadStats> {
    config.validate()?;
    let shared = Arc::new(Shared {
        config: config.clone(),
        recorder: recorder.clone(),
        keys: config.keys(recorder),
        next_value: AtomicI64::new(0),
    });
    let mut workers = JoinSet::new();
    for index in 0..config.producers {
        match config.client {
            ClientKind::Seedlog => workers.spawn(producer(shared.clone(), index, stop.clone())),
            #[cfg(feature = "rdkafka")]
            ClientKind::Rdkafka => workers.spawn(super::rdkafka_client::producer(
                shared.clone(),
                index,
                stop.clone(),
            )),
            #[cfg(not(feature = "rdkafka"))]
            ClientKind::Rdkafka => unreachable!("validate refuses a client the build lacks"),
        };
    }
    for index in 0..config.consumers {
        match config.client {
            ClientKind::Seedlog => workers.spawn(consumer(shared.clone(), index, stop.clone())),
            #[cfg(feature = "rdkafka")]
            ClientKind::Rdkafka => workers.spawn(super::rdkafka_client::consumer(
                shared.clone(),
                index,
                stop.clone(),
            )),
            #[cfg(not(feature = "rdkafka"))]
            ClientKind::Rdkafka => unreachable!("validate refuses a client the build lacks"),
        };
    }
    let mut stats = WorkloadStats::default();
    let mut panicked = None;
    while let Some(joined) = workers.join_next().await {
        match joined {
            Ok(worker) => stats.merge(&worker),
            Err(e) => panicked = Some(e),
        }
    }
    if let Some(e) = panicked {
        bail!("a workload worker failed: {e}");
    }
    Ok(stats)
}

/// One producer: sends fresh values until the run stops.
async fn producer(
    shared: Arc<Shared>,
    index: usize,
    mut stop: watch::Receiver<bool>,
) -> WorkloadStats {
    let config = &shared.config;
    let recorder = &shared.recorder;
    let mut stats = WorkloadStats::default();
    let mut process = recorder.new_process();
    stats.processes += 1;
    let mut client: Option<Client> = None;
    let client_id = format!("jepsen-producer-{index}");
    loop {
        if !ensure_client(&mut client, config, &client_id, &mut stop, &mut stats).await {
            break;
        }
        let c = client.as_ref().expect("ensured above");
        let send = shared.invoke_send(process);
        let produced = bounded(
            config.call_timeout(),
            c.produce(
                &config.topic,
                send.partition as i32,
                &[record_of(send.value)],
                Acks::All,
            ),
        )
        .await;
        let (outcome, offset) = match produced {
            Ok(batch) => (Outcome::Ok, Some(batch.base_offset)),
            Err(e) => {
                stats.error(format!("send: {}", e.kind()));
                match &e {
                    CallError::Client(e) => (classify_send_error(e), None),
                    CallError::Deadline => (Outcome::Info, None),
                }
            }
        };
        let next_pause = shared.complete_send(send, outcome, offset, &mut stats);
        if outcome == Outcome::Info {
            // The process may have lost its client mid-operation: retire it.
            process = recorder.new_process();
            client = None;
        }
        if pause(next_pause, &mut stop).await {
            break;
        }
    }
    stats
}

/// Parses fetched records into history records, up to `limit` of them; returns them and the
/// offset to fetch next.
fn take_records(
    fetched: &FetchedPartition,
    key: KeyId,
    position: i64,
    limit: usize,
    stats: &mut WorkloadStats,
) -> (Vec<Record>, i64) {
    let mut out = Vec::new();
    let mut next = fetched.next_offset.max(position);
    for (i, r) in fetched.records.iter().enumerate() {
        if i == limit {
            next = r.offset;
            break;
        }
        match parse_value(r.value.as_deref()) {
            Some(value) => out.push(Record {
                key,
                offset: r.offset,
                value,
            }),
            None => stats.foreign_records += 1,
        }
        next = next.max(r.offset + 1);
    }
    (out, next)
}

/// The value a record written by this workload carries: its value's decimal text.
pub(super) fn parse_value(value: Option<&[u8]>) -> Option<i64> {
    value
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.parse::<i64>().ok())
}

fn fetch_options() -> FetchOptions {
    FetchOptions {
        max_wait_ms: FETCH_MAX_WAIT_MS,
        min_bytes: 1,
        max_bytes: FETCH_PARTITION_BYTES_MAX * 4,
        partition_max_bytes: FETCH_PARTITION_BYTES_MAX,
        isolation_level: IsolationLevel::ReadUncommitted,
    }
}

/// A partition a consumer is assigned, and its position: the next offset to fetch.
#[derive(Clone, Copy, Debug)]
pub(super) struct Assigned {
    pub(super) partition: u32,
    pub(super) key: KeyId,
    pub(super) position: i64,
}

/// How a poll went, beyond what it recorded.
struct Polled {
    /// A call hit its deadline: the connection may hold an abandoned request, so the client
    /// should be reopened.
    reopen: bool,
    /// The last error, if any fetch failed.
    last_error: Option<String>,
}

/// One poll op by `process`: fetches each assigned partition once from its position, records
/// what came back and advances the positions past the records recorded.
async fn poll(
    client: &Client,
    config: &WorkloadConfig,
    recorder: &Recorder,
    process: u64,
    assigned: &mut [Assigned],
    stats: &mut WorkloadStats,
) -> Polled {
    let id = recorder.invoke(
        process,
        OpKind::Poll {
            records: Vec::new(),
            rebalanced: false,
        },
    );
    let options = fetch_options();
    let mut records = Vec::new();
    let mut fetched_any = false;
    let mut polled = Polled {
        reopen: false,
        last_error: None,
    };
    for a in assigned.iter_mut() {
        let fetched = bounded(
            config.call_timeout(),
            client.fetch(&config.topic, a.partition as i32, a.position, &options),
        )
        .await;
        match fetched {
            Ok(fetched) => {
                fetched_any = true;
                let (got, next) =
                    take_records(&fetched, a.key, a.position, POLL_RECORDS_MAX, stats);
                records.extend(got);
                a.position = next;
            }
            Err(e) => {
                stats.error(format!("poll: {}", e.kind()));
                polled.reopen |= matches!(e, CallError::Deadline);
                polled.last_error = Some(format!(
                    "fetch of partition {}: {}",
                    a.partition,
                    e.detail()
                ));
            }
        }
    }
    let outcome = stats.count_poll(fetched_any, records.len());
    recorder.complete(
        id,
        outcome,
        Some(OpKind::Poll {
            records,
            rebalanced: false,
        }),
    );
    if !fetched_any {
        tokio::time::sleep(ERROR_BACKOFF).await;
    }
    polled
}

/// A random non-empty subset of `0..partitions`.
fn random_subset(rng: &mut Rng, partitions: u32) -> Vec<u32> {
    let mut chosen: Vec<u32> = (0..partitions).filter(|_| rng.chance(0.5)).collect();
    if chosen.is_empty() {
        chosen.push(rng.below(u64::from(partitions)) as u32);
    }
    chosen
}

/// A new random assignment: partitions in `kept` keep their positions, the others start at 0.
pub(super) fn next_assignment(rng: &mut Rng, shared: &Shared, kept: &[Assigned]) -> Vec<Assigned> {
    random_subset(rng, shared.config.partitions)
        .into_iter()
        .map(|partition| Assigned {
            partition,
            key: shared.keys[partition as usize],
            position: kept
                .iter()
                .find(|a| a.partition == partition)
                .map_or(0, |a| a.position),
        })
        .collect()
}

/// One consumer: assigns itself random partition subsets and polls until the run stops.
async fn consumer(
    shared: Arc<Shared>,
    index: usize,
    mut stop: watch::Receiver<bool>,
) -> WorkloadStats {
    let config = &shared.config;
    let recorder = &shared.recorder;
    let mut stats = WorkloadStats::default();
    let mut rng = Rng::new(mix64(config.seed ^ SALT_CONSUMER ^ index as u64));
    let process = recorder.new_process();
    stats.processes += 1;
    let mut client: Option<Client> = None;
    let client_id = format!("jepsen-consumer-{index}");
    let mut assigned: Vec<Assigned> = Vec::new();
    let mut next_reassign = Instant::now();
    loop {
        if !ensure_client(&mut client, config, &client_id, &mut stop, &mut stats).await {
            break;
        }
        if Instant::now() >= next_reassign {
            assigned = next_assignment(&mut rng, &shared, &assigned);
            let keys = assigned.iter().map(|a| a.key).collect();
            recorder.instant(process, OpKind::Assign { keys }, Outcome::Ok);
            stats.assigns += 1;
            next_reassign = Instant::now() + config.reassign_interval;
        }
        let c = client.as_ref().expect("ensured above");
        let polled = poll(c, config, recorder, process, &mut assigned, &mut stats).await;
        if polled.reopen {
            client = None;
        }
        if stopped(&stop) {
            break;
        }
    }
    stats
}

/// Reads every partition from offset 0 to the high watermark that ListOffsets reports when
/// the partition's read begins, as an assign op and poll ops of a fresh process per partition
/// (the partitions are read concurrently). Transient errors are retried until `deadline`;
/// call it after every fault is healed. An error names the partitions that were not read to
/// their high watermark in time, in which case the run is not drained.
pub async fn final_reads(
    config: &WorkloadConfig,
    recorder: &Recorder,
    deadline: Duration,
) -> Result<()> {
    config.validate()?;
    let deadline = Instant::now() + deadline;
    let keys = config.keys(recorder);
    let mut readers = JoinSet::new();
    for partition in 0..config.partitions {
        readers.spawn(final_read(
            config.clone(),
            recorder.clone(),
            partition,
            keys[partition as usize],
            deadline,
        ));
    }
    let mut failures = Vec::new();
    while let Some(joined) = readers.join_next().await {
        match joined {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failures.push(e),
            Err(e) => failures.push(format!("a final reader failed: {e}")),
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        failures.sort();
        bail!("final reads incomplete: {}", failures.join("; "))
    }
}

/// The final read of one partition.
async fn final_read(
    config: WorkloadConfig,
    recorder: Recorder,
    partition: u32,
    key: KeyId,
    deadline: Instant,
) -> Result<(), String> {
    let process = recorder.new_process();
    let client_id = format!("jepsen-final-{partition}");
    let mut client: Option<Client> = None;
    let mut last = String::from("no attempt finished");
    let mut high_watermark: Option<i64> = None;
    let mut position = 0i64;
    let mut stats = WorkloadStats::default();
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(match high_watermark {
                None => format!("partition {partition}: no high watermark ({last})"),
                Some(hw) => {
                    format!("partition {partition}: read to offset {position} of {hw} ({last})")
                }
            });
        }
        if client.is_none() {
            match open_client(&config, client_id.clone()).await {
                Ok(c) => client = Some(c),
                Err(e) => {
                    last = format!("cannot open a client: {}", e.detail());
                    tokio::time::sleep(CONNECT_BACKOFF.min(remaining)).await;
                    continue;
                }
            }
        }
        let c = client.as_ref().expect("opened above");
        let limit = config.call_timeout().min(remaining);
        let Some(hw) = high_watermark else {
            let listed = bounded(
                limit,
                c.list_offsets(
                    &config.topic,
                    partition as i32,
                    OffsetSpec::Latest,
                    IsolationLevel::ReadUncommitted,
                ),
            )
            .await;
            match listed {
                Ok(found) => {
                    high_watermark = Some(found.offset);
                    recorder.instant(process, OpKind::Assign { keys: vec![key] }, Outcome::Ok);
                }
                Err(e) => {
                    last = format!("ListOffsets: {}", e.detail());
                    if matches!(e, CallError::Deadline) {
                        client = None;
                    }
                    tokio::time::sleep(ERROR_BACKOFF.min(remaining)).await;
                }
            }
            continue;
        };
        if position >= hw {
            return Ok(());
        }
        let mut assigned = [Assigned {
            partition,
            key,
            position,
        }];
        let polled = poll(c, &config, &recorder, process, &mut assigned, &mut stats).await;
        position = assigned[0].position;
        if let Some(error) = polled.last_error {
            last = error;
        }
        if polled.reopen {
            client = None;
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::semantics::Workload;
    use crate::verdict::{check, summary, CheckOptions, Validity};
    use seedlog_net::kafka_protocol::messages::ApiKey;
    use std::path::PathBuf;
    use std::process::{Child, Command, Stdio};

    fn kafka(code: i16) -> ClientError {
        ClientError::Kafka {
            code,
            message: None,
        }
    }

    #[test]
    fn send_errors_are_fail_only_when_certainly_unsent() {
        for code in [3, 5, 19, 2, 10, 87] {
            assert_eq!(
                classify_send_error(&kafka(code)),
                Outcome::Fail,
                "code {code}"
            );
        }
        for code in [6, 7, 20, 56, 74, 9999] {
            assert_eq!(
                classify_send_error(&kafka(code)),
                Outcome::Info,
                "code {code}"
            );
        }
        let connect = ClientError::Connect {
            addresses: vec!["127.0.0.1:1".to_owned()],
            detail: "refused".to_owned(),
        };
        assert_eq!(classify_send_error(&connect), Outcome::Fail);
        let closed = ClientError::ConnectionClosed {
            detail: "reset".to_owned(),
        };
        assert_eq!(classify_send_error(&closed), Outcome::Info);
        let produce_timeout = ClientError::Timeout {
            api_key: ApiKey::Produce,
        };
        assert_eq!(classify_send_error(&produce_timeout), Outcome::Info);
        let metadata_timeout = ClientError::Timeout {
            api_key: ApiKey::Metadata,
        };
        assert_eq!(classify_send_error(&metadata_timeout), Outcome::Fail);
    }

    #[test]
    fn partition_choice_is_seeded_and_covers_every_partition() {
        let mut config = WorkloadConfig::new(vec!["127.0.0.1:9092".to_owned()]);
        config.seed = 42;
        let first: Vec<u32> = (0..100).map(|v| config.partition_of(v)).collect();
        let again: Vec<u32> = (0..100).map(|v| config.partition_of(v)).collect();
        assert_eq!(first, again);
        for p in 0..config.partitions {
            assert!(first.contains(&p), "partition {p} never chosen");
        }
    }

    #[test]
    fn defaults_follow_the_cluster_size() {
        let one = WorkloadConfig::new(vec!["a:1".to_owned()]);
        assert_eq!((one.replication_factor, one.min_insync_replicas), (1, 1));
        let five = WorkloadConfig::new((0..5).map(|i| format!("n{i}:9092")).collect());
        assert_eq!((five.replication_factor, five.min_insync_replicas), (3, 2));
    }

    #[test]
    fn recorder_times_are_monotonic() {
        let recorder = Recorder::new();
        let key = recorder.key("t-0");
        assert_eq!(recorder.key("t-0"), key);
        let p = recorder.new_process();
        let id = recorder.invoke(
            p,
            OpKind::Send {
                key,
                value: 1,
                offset: None,
            },
        );
        recorder.complete(
            id,
            Outcome::Ok,
            Some(OpKind::Send {
                key,
                value: 1,
                offset: Some(0),
            }),
        );
        let history = recorder.into_history();
        let op = &history.ops()[0];
        assert!(op.complete_ns.is_some_and(|c| c >= op.invoke_ns));
        assert_eq!(op.outcome, Outcome::Ok);
    }

    /// A `seedlog node` process with its data directory; killed and the directory removed on
    /// drop, so a failing test leaves nothing running.
    pub(crate) struct Broker {
        bin: PathBuf,
        child: Option<Child>,
        dir: PathBuf,
        address: String,
        rust_log: Option<String>,
    }

    impl Broker {
        pub(crate) fn start(bin: PathBuf) -> Broker {
            Broker::launch(bin, None)
        }

        /// A broker whose log follows the `RUST_LOG` filter `rust_log`.
        #[cfg(feature = "rdkafka")]
        pub(crate) fn start_logging(bin: PathBuf, rust_log: &str) -> Broker {
            Broker::launch(bin, Some(rust_log.to_owned()))
        }

        fn launch(bin: PathBuf, rust_log: Option<String>) -> Broker {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port();
            let dir = std::env::temp_dir().join(format!(
                "seedlog-workload-test-{}-{port}",
                std::process::id()
            ));
            std::fs::create_dir_all(&dir).expect("create the data directory");
            let mut broker = Broker {
                bin,
                child: None,
                dir,
                address: format!("127.0.0.1:{port}"),
                rust_log,
            };
            broker.spawn();
            broker
        }

        /// What the broker has logged so far.
        #[cfg(feature = "rdkafka")]
        pub(crate) fn log(&self) -> String {
            std::fs::read_to_string(self.dir.join("node.log")).unwrap_or_default()
        }

        fn spawn(&mut self) {
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.dir.join("node.log"))
                .expect("open the node log");
            let mut command = Command::new(&self.bin);
            if let Some(filter) = &self.rust_log {
                command.env("RUST_LOG", filter);
            }
            let child = command
                .arg("node")
                .arg("--set")
                .arg(format!("log.dirs={}", self.dir.join("data").display()))
                .arg("--set")
                .arg(format!("listeners={}", self.address))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start seedlog node");
            self.child = Some(child);
        }

        fn kill(&mut self) {
            if let Some(mut child) = self.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }

    impl Drop for Broker {
        fn drop(&mut self) {
            self.kill();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    pub(crate) fn seedlog_binary() -> Option<PathBuf> {
        if let Some(bin) = std::env::var_os("SEEDLOG_BIN") {
            return Some(PathBuf::from(bin));
        }
        let mut candidates = Vec::new();
        if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
            candidates.push(PathBuf::from(dir).join("debug/seedlog"));
        }
        candidates.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/debug/seedlog"));
        candidates.into_iter().find(|p| p.is_file())
    }

    pub(crate) fn test_config(broker: &Broker) -> WorkloadConfig {
        let mut config = WorkloadConfig::new(vec![broker.address.clone()]);
        config.partitions = 3;
        config.producers = 3;
        config.consumers = 2;
        config.send_interval = Duration::from_millis(5);
        config.reassign_interval = Duration::from_millis(400);
        config.request_timeout = Duration::from_secs(1);
        config.seed = 7;
        config
    }

    /// Checks the history as `seedlog jepsen run` does and returns the summary.
    /// Sets the topic up, runs the workload for `time`, drains it with the final reads, and
    /// returns the history with the run's counts.
    pub(crate) async fn run_and_drain(
        config: &WorkloadConfig,
        time: Duration,
    ) -> (History, WorkloadStats) {
        setup(config, Duration::from_secs(30)).await.expect("setup");
        let recorder = Recorder::new();
        let (stop_tx, stop_rx) = watch::channel(false);
        let stopper = tokio::spawn(async move {
            tokio::time::sleep(time).await;
            let _ = stop_tx.send(true);
        });
        let stats = run(config, &recorder, stop_rx).await.expect("run");
        stopper.await.expect("stopper");
        final_reads(config, &recorder, Duration::from_secs(30))
            .await
            .expect("final reads");
        (recorder.into_history(), stats)
    }

    pub(crate) fn assert_valid(history: &History, stats: &WorkloadStats) -> String {
        let options = CheckOptions {
            workload: Workload {
                subscribe: false,
                idempotent: false,
                acks_all: true,
                transactions: false,
                drained: true,
            },
            ..Default::default()
        };
        let verdict = check(history, &options);
        let report = summary(history, &verdict);
        println!(
            "{}\n{report}",
            serde_json::to_string(stats).expect("stats json")
        );
        assert_eq!(verdict.validity, Validity::Valid, "{report}");
        assert!(
            history.ops().iter().all(|op| op.complete_ns.is_some()),
            "an operation was left open"
        );
        let sends = history
            .ops()
            .iter()
            .filter(|op| matches!(op.kind, OpKind::Send { .. }))
            .count() as u64;
        assert_eq!(sends, stats.sends_ok + stats.sends_fail + stats.sends_info);
        report
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn queue_workload_against_a_real_broker_is_valid() {
        let Some(bin) = seedlog_binary() else {
            println!("skipped: seedlog binary not built (set SEEDLOG_BIN)");
            return;
        };
        let broker = Broker::start(bin);
        let config = test_config(&broker);
        let (history, stats) = run_and_drain(&config, Duration::from_secs(2)).await;
        assert_valid(&history, &stats);
        assert!(stats.sends_ok > 50, "too few sends: {stats:?}");
        assert!(stats.polls_ok > 10, "too few polls: {stats:?}");
        assert!(stats.records_polled > 0, "nothing polled: {stats:?}");
        // Without faults nearly every send is acknowledged; a partition's leader can still
        // answer NOT_LEADER_OR_FOLLOWER for a moment after the topic is created.
        assert!(
            (stats.sends_info + stats.sends_fail) * 20 <= stats.sends_ok,
            "too many unacknowledged sends without faults: {stats:?}"
        );
    }

    /// Kills the broker mid-run and restarts it: the workers must neither hang nor record a
    /// send as failed that the restarted broker still has, and the final reads must find every
    /// acknowledged value.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn queue_workload_survives_a_broker_restart() {
        let Some(bin) = seedlog_binary() else {
            println!("skipped: seedlog binary not built (set SEEDLOG_BIN)");
            return;
        };
        let mut broker = Broker::start(bin);
        let config = test_config(&broker);
        setup(&config, Duration::from_secs(30))
            .await
            .expect("setup");

        let recorder = Recorder::new();
        let (stop_tx, stop_rx) = watch::channel(false);
        let workload = {
            let (config, recorder) = (config.clone(), recorder.clone());
            tokio::spawn(async move { run(&config, &recorder, stop_rx).await })
        };
        tokio::time::sleep(Duration::from_millis(1000)).await;
        broker.kill();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        broker.spawn();
        tokio::time::sleep(Duration::from_millis(2500)).await;
        stop_tx.send(true).expect("the workload listens");
        let stats = tokio::time::timeout(config.call_timeout() * 3, workload)
            .await
            .expect("the workload stops promptly")
            .expect("the workload task")
            .expect("run");
        final_reads(&config, &recorder, Duration::from_secs(30))
            .await
            .expect("final reads");

        let history = recorder.into_history();
        assert_valid(&history, &stats);
        assert!(stats.sends_ok > 50, "too few sends: {stats:?}");
        assert!(
            stats.sends_fail + stats.sends_info > 0,
            "the restart went unnoticed: {stats:?}"
        );
        assert!(
            stats.polls_fail > 0,
            "the restart went unnoticed: {stats:?}"
        );
    }
}
