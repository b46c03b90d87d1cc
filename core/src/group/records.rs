//! The records of `__consumer_offsets`, in Kafka's own key and value schemas.
//!
//! Every record is a key and a value (a null value is a tombstone: compaction keeps the latest
//! value per key and finally drops tombstones). The key starts with an `int16` naming the
//! record type (Kafka's `coordinator-key` api key), the value with an `int16` version. The
//! coordinator writes exactly the versions Kafka 4.x writes, so Kafka's tooling
//! (`kafka-dump-log --offsets-decoder`, the console consumer's formatters) can read them:
//!
//! | type | key | value written |
//! |---|---|---|
//! | 1 (0 read) | OffsetCommitKey: group, topic, partition | OffsetCommitValue v3, or v1 when an expire timestamp is set (OffsetCommit v2–4 `retention_time_ms`) |
//! | 2 | GroupMetadataKey: group | GroupMetadataValue v3 |
//! | 3 | ConsumerGroupMetadataKey: group | ConsumerGroupMetadataValue v0 (epoch) |
//! | 4 | ConsumerGroupPartitionMetadataKey: group | ConsumerGroupPartitionMetadataValue v0 (no racks) |
//! | 5 | ConsumerGroupMemberMetadataKey: group, member | ConsumerGroupMemberMetadataValue v0 |
//! | 6 | ConsumerGroupTargetAssignmentMetadataKey: group | ConsumerGroupTargetAssignmentMetadataValue v0 |
//! | 7 | ConsumerGroupTargetAssignmentMemberKey: group, member | ConsumerGroupTargetAssignmentMemberValue v0 |
//! | 8 | ConsumerGroupCurrentMemberAssignmentKey: group, member | ConsumerGroupCurrentMemberAssignmentValue v0 (the 4.0 layout with `State`) |
//!
//! Keys are non-flexible (`int16`-length strings). The KIP-848 values are flexible versions
//! (KIP-482): compact strings and arrays, and a tagged-field section after every struct; the
//! coordinator writes no tagged fields and skips any it reads (Kafka 4.1+ adds `MetadataHash`
//! and `AssignmentEpochs` as tags). Reading accepts every version Kafka ever wrote for these
//! types (OffsetCommitValue 0–4, GroupMetadataValue 0–4) and refuses, never panics on,
//! anything else: a record of a type this coordinator does not know (share and streams
//! groups) decodes to [`RecordError::UnknownType`] and loading skips it.

use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

/// A topic id's partitions, as KIP-848 records and responses carry them.
pub type Assignment = BTreeMap<Uuid, BTreeSet<i32>>;

/// One record of `__consumer_offsets` as bytes: what the coordinator appends and loads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffsetsRecord {
    /// The key.
    pub key: Bytes,
    /// The value; `None` is a tombstone.
    pub value: Option<Bytes>,
}

/// Why a record could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordError {
    /// A record type this coordinator does not keep (for example share or streams groups).
    UnknownType(i16),
    /// A value version this coordinator cannot read.
    UnknownVersion {
        /// The record type.
        record_type: i16,
        /// The value's version.
        version: i16,
    },
    /// The bytes do not follow the schema (truncated, bad length, invalid UTF-8).
    Malformed(&'static str),
}

/// A committed offset as stored (OffsetCommitValue).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffsetCommitValue {
    /// The committed offset.
    pub offset: i64,
    /// The leader epoch of the last consumed record, or -1.
    pub leader_epoch: i32,
    /// The client's metadata string.
    pub metadata: String,
    /// When the commit was accepted, in milliseconds.
    pub commit_timestamp_ms: i64,
    /// Set only by OffsetCommit v2–4 with a retention time: the offset expires then.
    pub expire_timestamp_ms: Option<i64>,
}

/// A classic group as stored (GroupMetadataValue).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupMetadataValue {
    /// `protocol_type`, "" for none.
    pub protocol_type: String,
    /// `generation_id`.
    pub generation: i32,
    /// The selected protocol, if any.
    pub protocol: Option<String>,
    /// The leader's member id, if any.
    pub leader: Option<String>,
    /// When the group entered its current state, in milliseconds, or -1.
    pub current_state_timestamp_ms: i64,
    /// The members.
    pub members: Vec<MemberMetadata>,
}

/// A classic member as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberMetadata {
    /// `member_id`.
    pub member_id: String,
    /// `group.instance.id`, for a static member.
    pub group_instance_id: Option<String>,
    /// The client id.
    pub client_id: String,
    /// The client host.
    pub client_host: String,
    /// `rebalance_timeout_ms`.
    pub rebalance_timeout_ms: i32,
    /// `session_timeout_ms`.
    pub session_timeout_ms: i32,
    /// The member's metadata for the selected protocol.
    pub subscription: Bytes,
    /// The member's assignment.
    pub assignment: Bytes,
}

/// A topic as a KIP-848 group's subscription metadata stores it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicMetadataValue {
    /// Topic id.
    pub topic_id: Uuid,
    /// Topic name.
    pub topic_name: String,
    /// Partition count.
    pub num_partitions: i32,
}

/// A KIP-848 member's subscription as stored (ConsumerGroupMemberMetadataValue).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberMetadataValue {
    /// `group.instance.id`.
    pub instance_id: Option<String>,
    /// `client.rack`.
    pub rack_id: Option<String>,
    /// The client id.
    pub client_id: String,
    /// The client host.
    pub client_host: String,
    /// Subscribed topic names, sorted.
    pub subscribed_topic_names: Vec<String>,
    /// A regex subscription.
    pub subscribed_topic_regex: Option<String>,
    /// `rebalance_timeout_ms`.
    pub rebalance_timeout_ms: i32,
    /// The server assignor the member asked for.
    pub server_assignor: Option<String>,
}

/// A KIP-848 member's current assignment as stored (ConsumerGroupCurrentMemberAssignmentValue).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CurrentAssignmentValue {
    /// The member epoch.
    pub member_epoch: i32,
    /// The epoch before the last bump.
    pub previous_member_epoch: i32,
    /// Kafka's `MemberState` byte: 0 stable, 1 unrevoked, 2 unreleased partitions.
    pub state: i8,
    /// Partitions assigned to the member.
    pub assigned: Assignment,
    /// Partitions the member must revoke.
    pub pending_revocation: Assignment,
}

/// A typed record of `__consumer_offsets`: a key and its value (`None` for a tombstone).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// A committed offset.
    OffsetCommit {
        /// Group id.
        group: String,
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// The offset.
        value: Option<OffsetCommitValue>,
    },
    /// A classic group.
    GroupMetadata {
        /// Group id.
        group: String,
        /// The group.
        value: Option<GroupMetadataValue>,
    },
    /// A KIP-848 group's epoch.
    ConsumerGroupMetadata {
        /// Group id.
        group: String,
        /// The group epoch.
        value: Option<i32>,
    },
    /// A KIP-848 group's subscription metadata.
    ConsumerGroupPartitionMetadata {
        /// Group id.
        group: String,
        /// Subscribed topics.
        value: Option<Vec<TopicMetadataValue>>,
    },
    /// A KIP-848 member's subscription.
    ConsumerGroupMemberMetadata {
        /// Group id.
        group: String,
        /// Member id.
        member: String,
        /// The subscription.
        value: Option<MemberMetadataValue>,
    },
    /// A KIP-848 group's target assignment epoch.
    ConsumerGroupTargetAssignmentMetadata {
        /// Group id.
        group: String,
        /// The assignment epoch.
        value: Option<i32>,
    },
    /// A KIP-848 member's target assignment.
    ConsumerGroupTargetAssignmentMember {
        /// Group id.
        group: String,
        /// Member id.
        member: String,
        /// The target partitions.
        value: Option<Assignment>,
    },
    /// A KIP-848 member's current assignment.
    ConsumerGroupCurrentMemberAssignment {
        /// Group id.
        group: String,
        /// Member id.
        member: String,
        /// The current assignment.
        value: Option<CurrentAssignmentValue>,
    },
}

const TYPE_OFFSET_COMMIT_LEGACY: i16 = 0;
const TYPE_OFFSET_COMMIT: i16 = 1;
const TYPE_GROUP_METADATA: i16 = 2;
const TYPE_CONSUMER_GROUP_METADATA: i16 = 3;
const TYPE_PARTITION_METADATA: i16 = 4;
const TYPE_MEMBER_METADATA: i16 = 5;
const TYPE_TARGET_ASSIGNMENT_METADATA: i16 = 6;
const TYPE_TARGET_ASSIGNMENT_MEMBER: i16 = 7;
const TYPE_CURRENT_MEMBER_ASSIGNMENT: i16 = 8;

/// GroupMetadataValue version Kafka writes (`GROUP_METADATA_VALUE_VERSION`).
const GROUP_METADATA_VALUE_VERSION: i16 = 3;

impl Record {
    /// The group the record belongs to.
    pub fn group(&self) -> &str {
        match self {
            Record::OffsetCommit { group, .. }
            | Record::GroupMetadata { group, .. }
            | Record::ConsumerGroupMetadata { group, .. }
            | Record::ConsumerGroupPartitionMetadata { group, .. }
            | Record::ConsumerGroupMemberMetadata { group, .. }
            | Record::ConsumerGroupTargetAssignmentMetadata { group, .. }
            | Record::ConsumerGroupTargetAssignmentMember { group, .. }
            | Record::ConsumerGroupCurrentMemberAssignment { group, .. } => group,
        }
    }

    /// The record as key and value bytes.
    pub fn encode(&self) -> OffsetsRecord {
        let key = Bytes::from(self.encode_key());
        let value = self.encode_value().map(Bytes::from);
        OffsetsRecord { key, value }
    }

    fn encode_key(&self) -> Vec<u8> {
        let mut w = Writer::default();
        match self {
            Record::OffsetCommit {
                group,
                topic,
                partition,
                ..
            } => {
                w.i16(TYPE_OFFSET_COMMIT);
                w.string(group);
                w.string(topic);
                w.i32(*partition);
            }
            Record::GroupMetadata { group, .. } => w.key(TYPE_GROUP_METADATA, group),
            Record::ConsumerGroupMetadata { group, .. } => {
                w.key(TYPE_CONSUMER_GROUP_METADATA, group)
            }
            Record::ConsumerGroupPartitionMetadata { group, .. } => {
                w.key(TYPE_PARTITION_METADATA, group)
            }
            Record::ConsumerGroupTargetAssignmentMetadata { group, .. } => {
                w.key(TYPE_TARGET_ASSIGNMENT_METADATA, group)
            }
            Record::ConsumerGroupMemberMetadata { group, member, .. } => {
                w.member_key(TYPE_MEMBER_METADATA, group, member)
            }
            Record::ConsumerGroupTargetAssignmentMember { group, member, .. } => {
                w.member_key(TYPE_TARGET_ASSIGNMENT_MEMBER, group, member)
            }
            Record::ConsumerGroupCurrentMemberAssignment { group, member, .. } => {
                w.member_key(TYPE_CURRENT_MEMBER_ASSIGNMENT, group, member)
            }
        }
        w.buf
    }

    fn encode_value(&self) -> Option<Vec<u8>> {
        let mut w = Writer::default();
        match self {
            Record::OffsetCommit { value, .. } => encode_offset_commit(&mut w, value.as_ref()?),
            Record::GroupMetadata { value, .. } => encode_group_metadata(&mut w, value.as_ref()?),
            Record::ConsumerGroupMetadata { value, .. }
            | Record::ConsumerGroupTargetAssignmentMetadata { value, .. } => {
                w.i16(0);
                w.i32((*value)?);
                w.no_tags();
            }
            Record::ConsumerGroupPartitionMetadata { value, .. } => {
                encode_partition_metadata(&mut w, value.as_ref()?)
            }
            Record::ConsumerGroupMemberMetadata { value, .. } => {
                encode_member_metadata(&mut w, value.as_ref()?)
            }
            Record::ConsumerGroupTargetAssignmentMember { value, .. } => {
                w.i16(0);
                w.assignment(value.as_ref()?);
                w.no_tags();
            }
            Record::ConsumerGroupCurrentMemberAssignment { value, .. } => {
                encode_current_assignment(&mut w, value.as_ref()?)
            }
        }
        Some(w.buf)
    }

    /// Reads a record. Never panics: bytes that do not follow a known schema are an error.
    pub fn decode(record: &OffsetsRecord) -> Result<Record, RecordError> {
        let mut key = Reader::new(&record.key);
        let record_type = key.i16()?;
        let value = record.value.as_deref();
        let decoded = match record_type {
            TYPE_OFFSET_COMMIT_LEGACY | TYPE_OFFSET_COMMIT => Record::OffsetCommit {
                group: key.string()?,
                topic: key.string()?,
                partition: key.i32()?,
                value: value.map(decode_offset_commit).transpose()?,
            },
            TYPE_GROUP_METADATA => Record::GroupMetadata {
                group: key.string()?,
                value: value.map(decode_group_metadata).transpose()?,
            },
            TYPE_CONSUMER_GROUP_METADATA => Record::ConsumerGroupMetadata {
                group: key.string()?,
                value: value.map(|v| decode_epoch(v, record_type)).transpose()?,
            },
            TYPE_PARTITION_METADATA => Record::ConsumerGroupPartitionMetadata {
                group: key.string()?,
                value: value.map(decode_partition_metadata).transpose()?,
            },
            TYPE_TARGET_ASSIGNMENT_METADATA => Record::ConsumerGroupTargetAssignmentMetadata {
                group: key.string()?,
                value: value.map(|v| decode_epoch(v, record_type)).transpose()?,
            },
            TYPE_MEMBER_METADATA
            | TYPE_TARGET_ASSIGNMENT_MEMBER
            | TYPE_CURRENT_MEMBER_ASSIGNMENT => {
                let group = key.string()?;
                let member = key.string()?;
                decode_member_record(record_type, group, member, value)?
            }
            other => return Err(RecordError::UnknownType(other)),
        };
        key.finish()?;
        Ok(decoded)
    }
}

fn decode_member_record(
    record_type: i16,
    group: String,
    member: String,
    value: Option<&[u8]>,
) -> Result<Record, RecordError> {
    Ok(match record_type {
        TYPE_MEMBER_METADATA => Record::ConsumerGroupMemberMetadata {
            group,
            member,
            value: value.map(decode_member_metadata).transpose()?,
        },
        TYPE_TARGET_ASSIGNMENT_MEMBER => Record::ConsumerGroupTargetAssignmentMember {
            group,
            member,
            value: value.map(decode_target_member).transpose()?,
        },
        _ => Record::ConsumerGroupCurrentMemberAssignment {
            group,
            member,
            value: value.map(decode_current_assignment).transpose()?,
        },
    })
}

// ---- values ----

fn encode_offset_commit(w: &mut Writer, value: &OffsetCommitValue) {
    match value.expire_timestamp_ms {
        // Version 1 is the only one with an expire timestamp.
        Some(expire) => {
            w.i16(1);
            w.i64(value.offset);
            w.string(&value.metadata);
            w.i64(value.commit_timestamp_ms);
            w.i64(expire);
        }
        None => {
            w.i16(3);
            w.i64(value.offset);
            w.i32(value.leader_epoch);
            w.string(&value.metadata);
            w.i64(value.commit_timestamp_ms);
        }
    }
}

fn decode_offset_commit(bytes: &[u8]) -> Result<OffsetCommitValue, RecordError> {
    let mut r = Reader::new(bytes);
    let version = r.i16()?;
    if !(0..=4).contains(&version) {
        let record_type = TYPE_OFFSET_COMMIT;
        return Err(RecordError::UnknownVersion {
            record_type,
            version,
        });
    }
    let flexible = version >= 4;
    let offset = r.i64()?;
    let leader_epoch = if version >= 3 { r.i32()? } else { -1 };
    let metadata = r.any_string(flexible)?;
    let commit_timestamp_ms = r.i64()?;
    let expire_timestamp_ms = if version == 1 { Some(r.i64()?) } else { None };
    if flexible {
        r.skip_tags()?;
    }
    r.finish()?;
    Ok(OffsetCommitValue {
        offset,
        leader_epoch,
        metadata,
        commit_timestamp_ms,
        expire_timestamp_ms,
    })
}

fn encode_group_metadata(w: &mut Writer, value: &GroupMetadataValue) {
    w.i16(GROUP_METADATA_VALUE_VERSION);
    w.string(&value.protocol_type);
    w.i32(value.generation);
    w.nullable_string(value.protocol.as_deref());
    w.nullable_string(value.leader.as_deref());
    w.i64(value.current_state_timestamp_ms);
    w.i32(value.members.len() as i32);
    for member in &value.members {
        w.string(&member.member_id);
        w.nullable_string(member.group_instance_id.as_deref());
        w.string(&member.client_id);
        w.string(&member.client_host);
        w.i32(member.rebalance_timeout_ms);
        w.i32(member.session_timeout_ms);
        w.bytes(&member.subscription);
        w.bytes(&member.assignment);
    }
}

fn decode_group_metadata(bytes: &[u8]) -> Result<GroupMetadataValue, RecordError> {
    let mut r = Reader::new(bytes);
    let version = r.i16()?;
    if !(0..=4).contains(&version) {
        let record_type = TYPE_GROUP_METADATA;
        return Err(RecordError::UnknownVersion {
            record_type,
            version,
        });
    }
    let flexible = version >= 4;
    let protocol_type = r.any_string(flexible)?;
    let generation = r.i32()?;
    let protocol = r.any_nullable_string(flexible)?;
    let leader = r.any_nullable_string(flexible)?;
    let current_state_timestamp_ms = if version >= 2 { r.i64()? } else { -1 };
    let count = r.any_array_len(flexible)?;
    let mut members = Vec::with_capacity(count);
    for _ in 0..count {
        members.push(decode_member(&mut r, version)?);
    }
    if flexible {
        r.skip_tags()?;
    }
    r.finish()?;
    Ok(GroupMetadataValue {
        protocol_type,
        generation,
        protocol,
        leader,
        current_state_timestamp_ms,
        members,
    })
}

fn decode_member(r: &mut Reader, version: i16) -> Result<MemberMetadata, RecordError> {
    let flexible = version >= 4;
    let member_id = r.any_string(flexible)?;
    let group_instance_id = if version >= 3 {
        r.any_nullable_string(flexible)?
    } else {
        None
    };
    let client_id = r.any_string(flexible)?;
    let client_host = r.any_string(flexible)?;
    let rebalance_timeout = if version >= 1 { Some(r.i32()?) } else { None };
    let session_timeout_ms = r.i32()?;
    let subscription = r.any_bytes(flexible)?;
    let assignment = r.any_bytes(flexible)?;
    if flexible {
        r.skip_tags()?;
    }
    Ok(MemberMetadata {
        member_id,
        group_instance_id,
        client_id,
        client_host,
        // Version 0 had no rebalance timeout: Kafka takes the session timeout.
        rebalance_timeout_ms: rebalance_timeout.unwrap_or(session_timeout_ms),
        session_timeout_ms,
        subscription,
        assignment,
    })
}

fn decode_epoch(bytes: &[u8], record_type: i16) -> Result<i32, RecordError> {
    let mut r = Reader::new(bytes);
    r.version_zero(record_type)?;
    let epoch = r.i32()?;
    r.skip_tags()?;
    r.finish()?;
    Ok(epoch)
}

fn encode_partition_metadata(w: &mut Writer, topics: &[TopicMetadataValue]) {
    w.i16(0);
    w.compact_len(topics.len());
    for topic in topics {
        w.uuid(topic.topic_id);
        w.compact_string(&topic.topic_name);
        w.i32(topic.num_partitions);
        // PartitionMetadata (racks): Kafka stores an empty list when no rack is known.
        w.compact_len(0);
        w.no_tags();
    }
    w.no_tags();
}

fn decode_partition_metadata(bytes: &[u8]) -> Result<Vec<TopicMetadataValue>, RecordError> {
    let mut r = Reader::new(bytes);
    r.version_zero(TYPE_PARTITION_METADATA)?;
    let count = r.compact_array_len()?;
    let mut topics = Vec::with_capacity(count);
    for _ in 0..count {
        let topic_id = r.uuid()?;
        let topic_name = r.compact_string()?;
        let num_partitions = r.i32()?;
        let racks = r.compact_array_len()?;
        for _ in 0..racks {
            r.i32()?;
            let names = r.compact_array_len()?;
            for _ in 0..names {
                r.compact_string()?;
            }
            r.skip_tags()?;
        }
        r.skip_tags()?;
        topics.push(TopicMetadataValue {
            topic_id,
            topic_name,
            num_partitions,
        });
    }
    r.skip_tags()?;
    r.finish()?;
    Ok(topics)
}

fn encode_member_metadata(w: &mut Writer, value: &MemberMetadataValue) {
    w.i16(0);
    w.compact_nullable_string(value.instance_id.as_deref());
    w.compact_nullable_string(value.rack_id.as_deref());
    w.compact_string(&value.client_id);
    w.compact_string(&value.client_host);
    w.compact_len(value.subscribed_topic_names.len());
    for name in &value.subscribed_topic_names {
        w.compact_string(name);
    }
    w.compact_nullable_string(value.subscribed_topic_regex.as_deref());
    w.i32(value.rebalance_timeout_ms);
    w.compact_nullable_string(value.server_assignor.as_deref());
    w.no_tags();
}

fn decode_member_metadata(bytes: &[u8]) -> Result<MemberMetadataValue, RecordError> {
    let mut r = Reader::new(bytes);
    r.version_zero(TYPE_MEMBER_METADATA)?;
    let instance_id = r.compact_nullable_string()?;
    let rack_id = r.compact_nullable_string()?;
    let client_id = r.compact_string()?;
    let client_host = r.compact_string()?;
    let count = r.compact_array_len()?;
    let mut subscribed_topic_names = Vec::with_capacity(count);
    for _ in 0..count {
        subscribed_topic_names.push(r.compact_string()?);
    }
    let subscribed_topic_regex = r.compact_nullable_string()?;
    let rebalance_timeout_ms = r.i32()?;
    let server_assignor = r.compact_nullable_string()?;
    // Tag 0 (ClassicMemberMetadata) belongs to classic members of a consumer group, which this
    // coordinator does not keep.
    r.skip_tags()?;
    r.finish()?;
    Ok(MemberMetadataValue {
        instance_id,
        rack_id,
        client_id,
        client_host,
        subscribed_topic_names,
        subscribed_topic_regex,
        rebalance_timeout_ms,
        server_assignor,
    })
}

fn decode_target_member(bytes: &[u8]) -> Result<Assignment, RecordError> {
    let mut r = Reader::new(bytes);
    r.version_zero(TYPE_TARGET_ASSIGNMENT_MEMBER)?;
    let assignment = r.assignment()?;
    r.skip_tags()?;
    r.finish()?;
    Ok(assignment)
}

fn encode_current_assignment(w: &mut Writer, value: &CurrentAssignmentValue) {
    w.i16(0);
    w.i32(value.member_epoch);
    w.i32(value.previous_member_epoch);
    w.buf.push(value.state as u8);
    w.assignment(&value.assigned);
    w.assignment(&value.pending_revocation);
    w.no_tags();
}

fn decode_current_assignment(bytes: &[u8]) -> Result<CurrentAssignmentValue, RecordError> {
    let mut r = Reader::new(bytes);
    r.version_zero(TYPE_CURRENT_MEMBER_ASSIGNMENT)?;
    let member_epoch = r.i32()?;
    let previous_member_epoch = r.i32()?;
    let state = r.i8()?;
    let assigned = r.assignment()?;
    let pending_revocation = r.assignment()?;
    r.skip_tags()?;
    r.finish()?;
    Ok(CurrentAssignmentValue {
        member_epoch,
        previous_member_epoch,
        state,
        assigned,
        pending_revocation,
    })
}

// ---- primitives ----

/// Kafka's primitive encodings, appended to a buffer.
#[derive(Default)]
struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    fn i16(&mut self, v: i16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    fn i32(&mut self, v: i32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    fn uvarint(&mut self, mut v: u32) {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }
    /// An `int16`-length string. Callers bound lengths by `GROUP_STRING_BYTES_MAX`.
    fn string(&mut self, s: &str) {
        debug_assert!(s.len() <= i16::MAX as usize);
        self.i16(s.len() as i16);
        self.buf.extend_from_slice(s.as_bytes());
    }
    fn nullable_string(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.string(s),
            None => self.i16(-1),
        }
    }
    fn bytes(&mut self, b: &[u8]) {
        self.i32(b.len() as i32);
        self.buf.extend_from_slice(b);
    }
    fn compact_len(&mut self, len: usize) {
        self.uvarint(len as u32 + 1);
    }
    fn compact_string(&mut self, s: &str) {
        self.compact_len(s.len());
        self.buf.extend_from_slice(s.as_bytes());
    }
    fn compact_nullable_string(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.compact_string(s),
            None => self.uvarint(0),
        }
    }
    fn uuid(&mut self, id: Uuid) {
        self.buf.extend_from_slice(id.as_bytes());
    }
    fn no_tags(&mut self) {
        self.uvarint(0);
    }
    /// A `[]TopicPartitions` of KIP-848 records: topic id and partitions, each with a tag
    /// section.
    fn assignment(&mut self, assignment: &Assignment) {
        self.compact_len(assignment.len());
        for (topic_id, partitions) in assignment {
            self.uuid(*topic_id);
            self.compact_len(partitions.len());
            for partition in partitions {
                self.i32(*partition);
            }
            self.no_tags();
        }
    }
    fn key(&mut self, record_type: i16, group: &str) {
        self.i16(record_type);
        self.string(group);
    }
    fn member_key(&mut self, record_type: i16, group: &str, member: &str) {
        self.key(record_type, group);
        self.string(member);
    }
}

/// Kafka's primitive encodings, read with bounds checks. Every length is checked against the
/// bytes left before anything is allocated, so a corrupt length cannot exhaust memory.
struct Reader<'a> {
    buf: &'a [u8],
}

type Read<T> = Result<T, RecordError>;

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf }
    }
    fn take(&mut self, n: usize) -> Read<&'a [u8]> {
        if n > self.buf.len() {
            return Err(RecordError::Malformed("truncated"));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Read<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
    fn i8(&mut self) -> Read<i8> {
        Ok(i8::from_be_bytes(self.array()?))
    }
    fn i16(&mut self) -> Read<i16> {
        Ok(i16::from_be_bytes(self.array()?))
    }
    fn i32(&mut self) -> Read<i32> {
        Ok(i32::from_be_bytes(self.array()?))
    }
    fn i64(&mut self) -> Read<i64> {
        Ok(i64::from_be_bytes(self.array()?))
    }
    fn uvarint(&mut self) -> Read<u32> {
        let mut value: u32 = 0;
        for i in 0..5 {
            let byte = self.i8()? as u8;
            value |= u32::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(RecordError::Malformed("varint longer than 5 bytes"))
    }
    fn utf8(&mut self, len: usize) -> Read<String> {
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| RecordError::Malformed("invalid UTF-8"))
    }
    fn nullable_string(&mut self) -> Read<Option<String>> {
        match self.i16()? {
            -1 => Ok(None),
            len if len < 0 => Err(RecordError::Malformed("negative string length")),
            len => Ok(Some(self.utf8(len as usize)?)),
        }
    }
    fn string(&mut self) -> Read<String> {
        self.nullable_string()?
            .ok_or(RecordError::Malformed("null string"))
    }
    fn compact_nullable_string(&mut self) -> Read<Option<String>> {
        match self.uvarint()? {
            0 => Ok(None),
            n => Ok(Some(self.utf8(n as usize - 1)?)),
        }
    }
    fn compact_string(&mut self) -> Read<String> {
        self.compact_nullable_string()?
            .ok_or(RecordError::Malformed("null string"))
    }
    fn any_string(&mut self, flexible: bool) -> Read<String> {
        if flexible {
            self.compact_string()
        } else {
            self.string()
        }
    }
    fn any_nullable_string(&mut self, flexible: bool) -> Read<Option<String>> {
        if flexible {
            self.compact_nullable_string()
        } else {
            self.nullable_string()
        }
    }
    fn any_bytes(&mut self, flexible: bool) -> Read<Bytes> {
        let len = if flexible {
            match self.uvarint()? {
                0 => return Err(RecordError::Malformed("null bytes")),
                n => n as usize - 1,
            }
        } else {
            let len = self.i32()?;
            usize::try_from(len).map_err(|_| RecordError::Malformed("negative bytes length"))?
        };
        Ok(Bytes::copy_from_slice(self.take(len)?))
    }
    /// An array length, checked against the bytes left (every element takes at least one).
    fn bounded(&self, len: usize) -> Read<usize> {
        if len > self.buf.len() {
            return Err(RecordError::Malformed("array longer than its record"));
        }
        Ok(len)
    }
    fn compact_array_len(&mut self) -> Read<usize> {
        match self.uvarint()? {
            0 => Err(RecordError::Malformed("null array")),
            n => self.bounded(n as usize - 1),
        }
    }
    fn any_array_len(&mut self, flexible: bool) -> Read<usize> {
        if flexible {
            return self.compact_array_len();
        }
        let len = self.i32()?;
        let len = usize::try_from(len).map_err(|_| RecordError::Malformed("negative length"))?;
        self.bounded(len)
    }
    fn uuid(&mut self) -> Read<Uuid> {
        Ok(Uuid::from_bytes(self.array()?))
    }
    fn skip_tags(&mut self) -> Read<()> {
        let count = self.uvarint()?;
        for _ in 0..self.bounded(count as usize)? {
            self.uvarint()?;
            let size = self.uvarint()? as usize;
            self.take(size)?;
        }
        Ok(())
    }
    fn assignment(&mut self) -> Read<Assignment> {
        let topics = self.compact_array_len()?;
        let mut assignment = Assignment::new();
        for _ in 0..topics {
            let topic_id = self.uuid()?;
            let count = self.compact_array_len()?;
            let partitions = assignment.entry(topic_id).or_default();
            for _ in 0..count {
                partitions.insert(self.i32()?);
            }
            // Tag 0 (AssignmentEpochs, Kafka 4.2+) is not kept.
            self.skip_tags()?;
        }
        Ok(assignment)
    }
    fn version_zero(&mut self, record_type: i16) -> Read<()> {
        match self.i16()? {
            0 => Ok(()),
            version => Err(RecordError::UnknownVersion {
                record_type,
                version,
            }),
        }
    }
    fn finish(&self) -> Read<()> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(RecordError::Malformed("trailing bytes"))
        }
    }
}

#[cfg(test)]
mod tests;
