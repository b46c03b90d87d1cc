//! Limits and defaults. Every queue, batch and buffer that can grow has its bound here, and the
//! relations between bounds are checked at compile time.

/// Default `max.message.bytes`: the largest batch a topic accepts (Kafka's default, 1 MiB + 12).
pub const BATCH_BYTES_MAX_DEFAULT: u64 = 1_048_588;
/// Hard upper bound for any topic's `max.message.bytes`.
pub const BATCH_BYTES_MAX_LIMIT: u64 = 64 * 1024 * 1024;
/// Most records in one batch.
pub const BATCH_RECORDS_MAX: i32 = 1_000_000;
/// Default `segment.bytes` (Kafka's default, 1 GiB).
pub const SEGMENT_BYTES_MAX_DEFAULT: u64 = 1024 * 1024 * 1024;
/// Default `segment.ms` (7 days).
pub const SEGMENT_AGE_MAX_MS_DEFAULT: u64 = 7 * 24 * 3600 * 1000;
/// Default `index.interval.bytes`: bytes between sparse index entries.
pub const INDEX_INTERVAL_BYTES_DEFAULT: u64 = 4096;
/// Bytes read per request while recovering a segment.
pub const RECOVERY_READ_BYTES: u32 = 1024 * 1024;
/// Most reads a log serves at once; more are refused, not queued.
pub const LOG_READS_IN_FLIGHT_MAX: usize = 256;
/// Most appends a log holds waiting for their writes; more are refused, not queued.
pub const LOG_APPENDS_IN_FLIGHT_MAX: usize = 4096;
/// Most segments a log may hold.
pub const LOG_SEGMENTS_MAX: usize = 100_000;
/// Default interval between retention checks (`log.retention.check.interval.ms`).
pub const RETENTION_CHECK_INTERVAL_MS_DEFAULT: u64 = 300_000;

const _: () = assert!(BATCH_BYTES_MAX_DEFAULT <= BATCH_BYTES_MAX_LIMIT);
const _: () = assert!(BATCH_BYTES_MAX_LIMIT <= u32::MAX as u64);
const _: () = assert!(SEGMENT_BYTES_MAX_DEFAULT <= i32::MAX as u64 * 2);
const _: () =
    assert!(RECOVERY_READ_BYTES as u64 >= 2 * crate::record_batch::BATCH_HEADER_LEN as u64);
const _: () = assert!(INDEX_INTERVAL_BYTES_DEFAULT > 0);

// Broker limits (core/src/broker). A client that would push past one is answered with a Kafka
// error or disconnected; an internal queue that would overflow is a bug and asserts.

/// Most requests of one connection the broker holds at once (processing or waiting for an
/// earlier response so answers leave in request order). The driver stops reading a connection
/// before this; a connection that still overflows it is closed.
pub const CONNECTION_REQUESTS_IN_FLIGHT_MAX: usize = 1024;
/// Requests held while the broker recovers, across all connections.
pub const RECOVERY_HELD_REQUESTS_MAX: usize = 4096;
/// Fetch requests parked waiting for data (long poll). More are answered at once, empty.
pub const FETCH_WAITERS_MAX: usize = 16_384;
/// Most topics the broker holds.
pub const TOPICS_MAX: usize = 10_000;
/// Most partitions in one topic.
pub const TOPIC_PARTITIONS_MAX: i32 = 10_000;
/// Most partitions across all topics.
pub const PARTITIONS_MAX: usize = 100_000;
/// Most partitions one Produce, Fetch or ListOffsets request may name.
pub const REQUEST_PARTITIONS_MAX: usize = 10_000;
/// Most topics one CreateTopics/DeleteTopics/Metadata request may name.
pub const REQUEST_TOPICS_MAX: usize = 10_000;
/// Most topic configs one CreateTopics topic may set.
pub const TOPIC_CONFIGS_MAX: usize = 64;
/// Longest topic name (Kafka's limit).
pub const TOPIC_NAME_BYTES_MAX: usize = 249;
/// Longest topic config key or value persisted.
pub const TOPIC_CONFIG_BYTES_MAX: usize = 1024;
/// Largest topic metadata file the broker writes or reads back.
pub const METADATA_FILE_BYTES_MAX: u32 = 64 * 1024 * 1024;

/// How often a broker reads its only registry slot again when it does not decode, before
/// taking it for a first write torn by a crash.
pub const REGISTRY_REREADS_MAX: u32 = 2;
/// Topic creations Metadata requests started (`auto.create.topics.enable`) and not yet seen in
/// the image; beyond this, a Metadata request for another unknown topic answers
/// LEADER_NOT_AVAILABLE without starting one, and the client retries.
pub const AUTO_CREATES_PENDING_MAX: usize = 1024;
/// Longest a fetch may wait for data (`max_wait_ms` is clamped to this).
pub const FETCH_WAIT_MAX_MS: i32 = 60_000;

const _: () = assert!(RECOVERY_HELD_REQUESTS_MAX >= CONNECTION_REQUESTS_IN_FLIGHT_MAX);
const _: () = assert!(TOPICS_MAX <= PARTITIONS_MAX);
const _: () = assert!(TOPIC_PARTITIONS_MAX as usize <= PARTITIONS_MAX);

// Controller quorum limits (core/src/raft). A peer or client that would push past one is
// refused (proposals: `Overloaded`) or its message ignored; internal queues assert.

/// Most voters in a controller quorum.
pub const RAFT_VOTERS_MAX: usize = 7;
/// Default minimum election timeout (KRaft `controller.quorum.election.timeout.ms` is 1 s).
pub const RAFT_ELECTION_TIMEOUT_MIN_MS_DEFAULT: u64 = 1_000;
/// Default maximum election timeout.
pub const RAFT_ELECTION_TIMEOUT_MAX_MS_DEFAULT: u64 = 2_000;
/// Default heartbeat interval.
pub const RAFT_HEARTBEAT_INTERVAL_MS_DEFAULT: u64 = 200;
/// Default bound on relative clock-rate difference between voters (5%), in ppm.
pub const RAFT_CLOCK_DRIFT_MAX_PPM_DEFAULT: u32 = 50_000;
/// Default entries after the last snapshot before one is asked for.
pub const RAFT_SNAPSHOT_WANTED_ENTRIES_DEFAULT: u64 = 10_000;
/// Most entries in one AppendEntries.
pub const RAFT_APPEND_ENTRIES_MAX: usize = 256;
/// Most entries in one log write.
pub const RAFT_WRITE_ENTRIES_MAX: usize = 1_024;
/// Most proposals a leader holds uncommitted.
pub const RAFT_PROPOSALS_IN_FLIGHT_MAX: usize = 4_096;
/// Largest command a proposal may carry.
pub const RAFT_COMMAND_BYTES_MAX: usize = 1024 * 1024;
/// Largest snapshot accepted from the owner or a leader.
pub const RAFT_SNAPSHOT_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Most entries held in memory; beyond it proposals are refused until a snapshot compacts.
pub const RAFT_LOG_ENTRIES_MAX: usize = 100_000;
/// Most entry records recovery reads from the log file.
pub const RAFT_LOG_FILE_ENTRIES_MAX: usize = 10_000_000;
/// Peer messages held waiting for the vote record to be durable.
pub const RAFT_HELD_MESSAGES_MAX: usize = 4_096;
/// Outputs a voter may queue in one step.
pub const RAFT_OUTBOX_MAX: usize = 1 << 20;

const _: () = assert!(RAFT_ELECTION_TIMEOUT_MIN_MS_DEFAULT <= RAFT_ELECTION_TIMEOUT_MAX_MS_DEFAULT);
const _: () = assert!(RAFT_HEARTBEAT_INTERVAL_MS_DEFAULT < RAFT_ELECTION_TIMEOUT_MIN_MS_DEFAULT);
const _: () = assert!(RAFT_SNAPSHOT_WANTED_ENTRIES_DEFAULT < RAFT_LOG_ENTRIES_MAX as u64);
const _: () = assert!(RAFT_PROPOSALS_IN_FLIGHT_MAX <= RAFT_LOG_ENTRIES_MAX);
const _: () = assert!(RAFT_CLOCK_DRIFT_MAX_PPM_DEFAULT < 1_000_000);
const _: () = assert!(RAFT_LOG_ENTRIES_MAX <= RAFT_LOG_FILE_ENTRIES_MAX);

// Active controller limits and defaults (core/src/cluster/controller). A broker that would push
// past one is answered with a Kafka error or its heartbeat is not tracked; internal queues assert.

/// Default `broker.session.timeout.ms`: a broker silent this long is fenced (Kafka's default).
pub const CONTROLLER_SESSION_TIMEOUT_MS_DEFAULT: u64 = 9_000;
/// Default interval at which the active controller re-checks sessions and leaders.
pub const CONTROLLER_TICK_INTERVAL_MS_DEFAULT: u64 = 100;
/// Most brokers the controller registers and tracks heartbeats for.
pub const CONTROLLER_BROKERS_MAX: usize = 1_024;
/// Most CreateTopics/DeleteTopics/AlterPartition/reassignment requests queued or in flight;
/// more are refused with REQUEST_TIMED_OUT (retriable), not queued.
pub const CONTROLLER_REQUESTS_QUEUED_MAX: usize = 1_024;
/// Upper bound on the encoded size of one proposed metadata batch.
pub const CONTROLLER_BATCH_BYTES_MAX: usize = RAFT_COMMAND_BYTES_MAX / 2;
/// Outputs the controller may queue before the driver drains them.
pub const CONTROLLER_OUTBOX_MAX: usize = 1 << 20;

const _: () = assert!(CONTROLLER_TICK_INTERVAL_MS_DEFAULT < CONTROLLER_SESSION_TIMEOUT_MS_DEFAULT);
const _: () = assert!(CONTROLLER_BATCH_BYTES_MAX < RAFT_COMMAND_BYTES_MAX);
const _: () = assert!(CONTROLLER_REQUESTS_QUEUED_MAX * 2 < CONTROLLER_OUTBOX_MAX);
const _: () = assert!(CONTROLLER_BROKERS_MAX <= u32::MAX as usize);

// ---- cluster node ----

/// `replica.fetch.max.bytes`: most bytes of batches in one answer to a follower.
pub const REPLICA_FETCH_MAX_BYTES_DEFAULT: u32 = 1024 * 1024;
/// Heartbeats a broker sends to one controller without an answer from an active one before
/// it tries the other voters.
pub const HEARTBEATS_UNANSWERED_BEFORE_PROBE: u32 = 3;
/// A broker the controller has not yet unfenced heartbeats this often (or at its configured
/// interval, if shorter): registration, catching up and unfencing each take a heartbeat, and
/// clients wait for the last of them.
pub const ADMISSION_HEARTBEAT_INTERVAL_MS: u64 = 100;
/// Most messages a node may queue to itself in one step (its broker to its own controller).
pub const LOCAL_MESSAGES_MAX: usize = 1024;

// Group coordinator limits and defaults (core/src/group). A client that would push past a limit
// is answered with the Kafka error code Kafka would give for the nearest condition; internal
// queues assert.

/// `offsets.topic.num.partitions` default: partitions of `__consumer_offsets`.
pub const OFFSETS_TOPIC_PARTITIONS_DEFAULT: i32 = 50;
/// Most partitions `__consumer_offsets` may have.
pub const OFFSETS_TOPIC_PARTITIONS_MAX: i32 = 1_000;
/// Most groups one coordinator holds across its partitions; a request that would create one
/// more is answered COORDINATOR_NOT_AVAILABLE (retriable: empty groups expire).
pub const GROUPS_MAX: usize = 100_000;
/// Hard upper bound on `group.max.size` and `group.consumer.max.size` (Kafka's default is
/// unbounded); a member beyond it is refused with GROUP_MAX_SIZE_REACHED.
pub const GROUP_MEMBERS_MAX: usize = 4_096;
/// Classic members given an id with MEMBER_ID_REQUIRED and not yet joined with it, per group;
/// more are refused with GROUP_MAX_SIZE_REACHED.
pub const GROUP_PENDING_MEMBERS_MAX: usize = GROUP_MEMBERS_MAX;
/// Most committed offsets (topic partitions) one group holds; a commit of a new partition
/// beyond it is refused with INVALID_COMMIT_OFFSET_SIZE.
pub const GROUP_OFFSETS_MAX: usize = 100_000;
/// Most bytes of protocol metadata and assignments one classic group holds (about the size of
/// its GroupMetadataValue record); a join that would pass it is refused with
/// GROUP_MAX_SIZE_REACHED, an assignment that would pass it fails like a too-large append.
pub const GROUP_METADATA_BYTES_MAX: usize = 1024 * 1024;
/// Longest group id, member id, instance id, client id, rack id or protocol name the
/// coordinator keeps; longer ones are refused (INVALID_GROUP_ID for the group id, else
/// INVALID_REQUEST).
pub const GROUP_STRING_BYTES_MAX: usize = 4_096;
/// Default `offset.metadata.max.bytes` (Kafka's default).
pub const OFFSET_METADATA_BYTES_DEFAULT: u32 = 4_096;
/// Hard upper bound on `offset.metadata.max.bytes`.
pub const OFFSET_METADATA_BYTES_LIMIT: u32 = 64 * 1024;
/// Most partitions one OffsetCommit, OffsetFetch or OffsetDelete request may name.
pub const GROUP_REQUEST_PARTITIONS_MAX: usize = 10_000;
/// Most groups one DescribeGroups, DeleteGroups, OffsetFetch or ConsumerGroupDescribe request
/// may name, and most members one LeaveGroup may name.
pub const GROUP_REQUEST_GROUPS_MAX: usize = 10_000;
/// Client requests the coordinator holds at once (parked joins and syncs, answers waiting for
/// their append); more are answered COORDINATOR_NOT_AVAILABLE at once.
pub const GROUP_REQUESTS_IN_FLIGHT_MAX: usize = 16_384;
/// Appends to `__consumer_offsets` in flight; a client request needing one more is answered
/// COORDINATOR_NOT_AVAILABLE, background work (expiry) waits for the next check.
pub const GROUP_APPENDS_IN_FLIGHT_MAX: usize = 16_384;
/// Most topics the coordinator keeps metadata for (for the server-side assignors).
pub const GROUP_TOPICS_MAX: usize = TOPICS_MAX;

const _: () = assert!(OFFSETS_TOPIC_PARTITIONS_DEFAULT <= OFFSETS_TOPIC_PARTITIONS_MAX);
const _: () = assert!(GROUP_PENDING_MEMBERS_MAX <= GROUP_MEMBERS_MAX);
const _: () = assert!(OFFSET_METADATA_BYTES_DEFAULT <= OFFSET_METADATA_BYTES_LIMIT);
const _: () = assert!((OFFSET_METADATA_BYTES_LIMIT as usize) < GROUP_METADATA_BYTES_MAX);
// Every member of a full group may park one JoinGroup and one SyncGroup at once.
const _: () = assert!(2 * GROUP_MEMBERS_MAX <= GROUP_REQUESTS_IN_FLIGHT_MAX);
const _: () = assert!(GROUP_REQUESTS_IN_FLIGHT_MAX <= GROUP_APPENDS_IN_FLIGHT_MAX);
const _: () = assert!(GROUP_STRING_BYTES_MAX <= i16::MAX as usize);
