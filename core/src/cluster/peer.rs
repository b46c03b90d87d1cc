//! Messages between nodes (DESIGN §5): plain serde data, framed with postcard by the transport,
//! identical in the simulator and on real sockets.
//!
//! Every field a peer controls is checked by the receiver before it is trusted: a malformed or
//! stale message is answered with an error or ignored, never a reason to panic.

use super::metadata::{Endpoint, MetadataImage};
use crate::raft::{self, NodeId};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A broker's periodic heartbeat to the active controller (KRaft BrokerHeartbeat, with the
/// registration folded in: a heartbeat from an unknown incarnation registers it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerHeartbeat {
    /// The sender's incarnation (new on every process start).
    pub incarnation: u64,
    /// Its client endpoint.
    pub endpoint: Endpoint,
    /// Offset of the metadata image the broker holds.
    pub metadata_offset: u64,
    /// The broker is shutting down and wants its leaderships moved away first.
    pub shutting_down: bool,
    /// The identity of its data directory, kept with its data (a wiped disk gets a new one).
    pub storage: u64,
}

/// The controller's answer to a [`BrokerHeartbeat`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerHeartbeatResponse {
    /// False if the receiver is not the active controller (then only `controller` is useful).
    pub active: bool,
    /// The active controller as far as the receiver knows.
    pub controller: Option<NodeId>,
    /// The committed image, when newer than the broker's `metadata_offset`.
    pub image: Option<Box<MetadataImage>>,
    /// Whether the broker's incarnation is registered and fenced.
    pub fenced: bool,
    /// A shutting-down broker leads nothing any more and may stop.
    pub shutdown_ready: bool,
}

/// A partition leader asks the controller to change the ISR (KIP-497 AlterPartition).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlterPartition {
    /// The leader's incarnation.
    pub incarnation: u64,
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// The leader epoch the leader holds.
    pub leader_epoch: i32,
    /// The partition epoch the proposal was computed from.
    pub partition_epoch: i32,
    /// The ISR wanted.
    pub isr: Vec<NodeId>,
    /// The incarnation each follower in `isr` last fetched with (KIP-903's broker epochs). A
    /// member joins only if that is still its broker's registered incarnation: a broker that
    /// restarted (and may have lost data) never rejoins on its previous process's progress.
    pub incarnations: Vec<(NodeId, u64)>,
}

/// A topic to create, forwarded by the broker a client asked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicSpec {
    /// Name.
    pub name: String,
    /// Partition count, or -1 for the default.
    pub partitions: i32,
    /// Replication factor, or -1 for the default.
    pub replication_factor: i16,
    /// Explicit assignment per partition (empty: the controller places replicas).
    pub assignments: Vec<Vec<NodeId>>,
    /// Config overrides.
    pub configs: BTreeMap<String, String>,
    /// Check only; create nothing.
    pub validate_only: bool,
}

/// The outcome for one topic of a create or delete.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicResult {
    /// Name.
    pub name: String,
    /// Kafka error code (0: success).
    pub error: i16,
    /// Human-readable detail.
    pub message: Option<String>,
    /// Topic id (zero if none).
    pub id: [u8; 16],
    /// Partition count created.
    pub partitions: i32,
    /// Replication factor created.
    pub replication_factor: i16,
}

/// A follower fetches from its partition leader (Kafka's replica fetch: pull-based, the
/// follower's log end offset travels in the request).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaFetch {
    /// The follower's incarnation.
    pub incarnation: u64,
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// The leader epoch the follower follows.
    pub leader_epoch: i32,
    /// The follower's log end offset; everything below it is durable on the follower.
    pub fetch_offset: i64,
    /// Epoch of the follower's last batch, for the divergence check (KIP-320/KIP-595); `None`
    /// for an empty log.
    pub last_fetched_epoch: Option<i32>,
    /// Byte budget for `records`.
    pub max_bytes: u32,
}

/// The leader's answer to a [`ReplicaFetch`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaFetchResponse {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// The request's leader epoch, echoed.
    pub leader_epoch: i32,
    /// The request's fetch offset, echoed.
    pub fetch_offset: i64,
    /// The request's last fetched epoch, echoed: with the leader epoch and the fetch offset it
    /// names the question answered, so a follower never applies the answer to an older
    /// request (a duplicate delivered late) to a log that has moved on since.
    pub last_fetched_epoch: Option<i32>,
    /// Kafka error code (0, NOT_LEADER_OR_FOLLOWER, FENCED_LEADER_EPOCH, UNKNOWN_LEADER_EPOCH,
    /// OFFSET_OUT_OF_RANGE, KAFKA_STORAGE_ERROR).
    pub error: i16,
    /// The leader's high watermark.
    pub high_watermark: i64,
    /// The leader's log start offset.
    pub log_start_offset: i64,
    /// Set when the follower's log diverges: `(epoch, end offset)` of the largest epoch the
    /// leader holds that is ≤ `last_fetched_epoch`. The follower truncates and fetches again.
    pub diverging: Option<(i32, i64)>,
    /// Whole batches from `fetch_offset`, exactly as stored.
    #[serde(with = "bytes_serde")]
    pub records: Bytes,
}

/// A message between nodes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerMessage {
    /// Controller quorum traffic.
    Raft(raft::Message),
    /// Broker → controller.
    Heartbeat(BrokerHeartbeat),
    /// Controller → broker.
    HeartbeatResponse(BrokerHeartbeatResponse),
    /// Partition leader → controller.
    AlterPartition(AlterPartition),
    /// Controller → partition leader: the change was refused with this Kafka error code (an
    /// accepted change shows up in the metadata image instead).
    AlterPartitionResponse {
        /// Topic.
        topic: String,
        /// Partition.
        partition: u32,
        /// Kafka error code.
        error: i16,
    },
    /// Broker → controller: a client's CreateTopics.
    CreateTopics {
        /// Echoed in the response.
        request: u64,
        /// The topics.
        topics: Vec<TopicSpec>,
    },
    /// Broker → controller: a client's DeleteTopics.
    DeleteTopics {
        /// Echoed in the response.
        request: u64,
        /// Topic names.
        names: Vec<String>,
    },
    /// Controller → broker: the outcome of a CreateTopics or DeleteTopics.
    TopicsResponse {
        /// The request's tag.
        request: u64,
        /// One result per topic, in request order.
        results: Vec<TopicResult>,
        /// The metadata offset at which the changes are applied (the broker answers its
        /// client once its own image reached it, so the client sees the topics at once).
        metadata_offset: u64,
    },
    /// Follower → leader.
    Fetch(ReplicaFetch),
    /// Leader → follower.
    FetchResponse(ReplicaFetchResponse),
}

/// Serializes `Bytes` as a byte string.
mod bytes_serde {
    use bytes::Bytes;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &Bytes, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(bytes)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        let v: Vec<u8> = Deserialize::deserialize(d)?;
        Ok(Bytes::from(v))
    }
}
