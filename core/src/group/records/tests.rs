//! The `__consumer_offsets` codec against bytes laid out by hand from Kafka's JSON schemas.

use super::*;
use proptest::prelude::*;

fn be16(v: i16) -> Vec<u8> {
    v.to_be_bytes().to_vec()
}
fn be32(v: i32) -> Vec<u8> {
    v.to_be_bytes().to_vec()
}
fn be64(v: i64) -> Vec<u8> {
    v.to_be_bytes().to_vec()
}
fn str16(s: &str) -> Vec<u8> {
    [be16(s.len() as i16), s.as_bytes().to_vec()].concat()
}
fn cstr(s: &str) -> Vec<u8> {
    [vec![s.len() as u8 + 1], s.as_bytes().to_vec()].concat()
}

const TOPIC: Uuid = Uuid::from_bytes([7; 16]);

// Kafka tooling reads OffsetCommitKey (type 1) and OffsetCommitValue v3 exactly like this;
// a byte out of place and `kafka-dump-log --offsets-decoder` shows garbage.
#[test]
fn offset_commit_is_kafkas_layout() {
    let record = Record::OffsetCommit {
        group: "g".into(),
        topic: "t".into(),
        partition: 3,
        value: Some(OffsetCommitValue {
            offset: 42,
            leader_epoch: 5,
            metadata: "m".into(),
            commit_timestamp_ms: 1000,
            expire_timestamp_ms: None,
        }),
    };
    let encoded = record.encode();
    let key = [be16(1), str16("g"), str16("t"), be32(3)].concat();
    let value = [be16(3), be64(42), be32(5), str16("m"), be64(1000)].concat();
    assert_eq!(encoded.key.as_ref(), key.as_slice());
    assert_eq!(encoded.value.as_deref(), Some(value.as_slice()));
    assert_eq!(Record::decode(&encoded), Ok(record));
}

// OffsetCommit v2-4 may set a retention time: Kafka writes value v1, the only version with an
// expire timestamp. The legacy key type 0 must read as the same key.
#[test]
fn expiring_offset_writes_v1_and_legacy_key_reads() {
    let value = OffsetCommitValue {
        offset: 1,
        leader_epoch: -1,
        metadata: String::new(),
        commit_timestamp_ms: 10,
        expire_timestamp_ms: Some(20),
    };
    let record = Record::OffsetCommit {
        group: "g".into(),
        topic: "t".into(),
        partition: 0,
        value: Some(value.clone()),
    };
    let encoded = record.encode();
    let expected = [be16(1), be64(1), str16(""), be64(10), be64(20)].concat();
    assert_eq!(encoded.value.as_deref(), Some(expected.as_slice()));
    let legacy_key = [be16(0), str16("g"), str16("t"), be32(0)].concat();
    let legacy = OffsetsRecord {
        key: Bytes::from(legacy_key),
        value: encoded.value.clone(),
    };
    assert_eq!(Record::decode(&legacy), Ok(record));
}

// Every OffsetCommitValue version Kafka ever wrote must load: v0/v2 (no epoch), v4 flexible
// with a tagged field this build does not know.
#[test]
fn offset_commit_values_of_every_version_read() {
    let key = Bytes::from([be16(1), str16("g"), str16("t"), be32(0)].concat());
    let read = |value: Vec<u8>| {
        let record = OffsetsRecord {
            key: key.clone(),
            value: Some(Bytes::from(value)),
        };
        match Record::decode(&record) {
            Ok(Record::OffsetCommit { value: Some(v), .. }) => v,
            other => panic!("{other:?}"),
        }
    };
    for version in [0, 2] {
        let v = read([be16(version), be64(9), str16("x"), be64(3)].concat());
        assert_eq!(
            (v.offset, v.leader_epoch, v.metadata.as_str()),
            (9, -1, "x")
        );
    }
    // v4: compact string, then a tag section with one unknown tag (tag 7, 2 bytes).
    let v4 = [
        be16(4),
        be64(9),
        be32(2),
        cstr("x"),
        be64(3),
        vec![1, 7, 2, 0xAB, 0xCD],
    ]
    .concat();
    let v = read(v4);
    assert_eq!((v.offset, v.leader_epoch, v.commit_timestamp_ms), (9, 2, 3));
    let v5 = OffsetsRecord {
        key: key.clone(),
        value: Some(Bytes::from([be16(5), be64(9)].concat())),
    };
    assert!(matches!(
        Record::decode(&v5),
        Err(RecordError::UnknownVersion { version: 5, .. })
    ));
}

// GroupMetadataValue v3 is what Kafka's coordinator writes for classic groups.
#[test]
fn group_metadata_is_kafkas_v3() {
    let value = GroupMetadataValue {
        protocol_type: "consumer".into(),
        generation: 4,
        protocol: Some("range".into()),
        leader: Some("m1".into()),
        current_state_timestamp_ms: 77,
        members: vec![MemberMetadata {
            member_id: "m1".into(),
            group_instance_id: None,
            client_id: "c".into(),
            client_host: "/h".into(),
            rebalance_timeout_ms: 300,
            session_timeout_ms: 100,
            subscription: Bytes::from_static(b"S"),
            assignment: Bytes::from_static(b"AA"),
        }],
    };
    let record = Record::GroupMetadata {
        group: "g".into(),
        value: Some(value),
    };
    let encoded = record.encode();
    let member = [
        str16("m1"),
        be16(-1),
        str16("c"),
        str16("/h"),
        be32(300),
        be32(100),
        be32(1),
        b"S".to_vec(),
        be32(2),
        b"AA".to_vec(),
    ]
    .concat();
    let expected = [
        be16(3),
        str16("consumer"),
        be32(4),
        str16("range"),
        str16("m1"),
        be64(77),
        be32(1),
        member,
    ]
    .concat();
    assert_eq!(
        encoded.key.as_ref(),
        [be16(2), str16("g")].concat().as_slice()
    );
    assert_eq!(encoded.value.as_deref(), Some(expected.as_slice()));
    assert_eq!(Record::decode(&encoded), Ok(record));
}

// A v0 GroupMetadataValue (no rebalance timeout, no state timestamp) still loads, taking the
// session timeout as the rebalance timeout as Kafka does.
#[test]
fn group_metadata_v0_reads() {
    let member = [
        str16("m"),
        str16("c"),
        str16("h"),
        be32(100),
        be32(0),
        be32(0),
    ]
    .concat();
    let value = [
        be16(0),
        str16(""),
        be32(1),
        be16(-1),
        be16(-1),
        be32(1),
        member,
    ]
    .concat();
    let record = OffsetsRecord {
        key: Bytes::from([be16(2), str16("g")].concat()),
        value: Some(Bytes::from(value)),
    };
    let Ok(Record::GroupMetadata { value: Some(v), .. }) = Record::decode(&record) else {
        panic!("decodes")
    };
    assert_eq!(v.members[0].rebalance_timeout_ms, 100);
    assert_eq!(v.current_state_timestamp_ms, -1);
}

// The KIP-848 records are flexible v0 with a tag section after each struct; Kafka 4.1 adds a
// MetadataHash tag to the group epoch record, which must be skipped, not refused.
#[test]
fn consumer_group_records_are_kafkas_layout() {
    let epoch = Record::ConsumerGroupMetadata {
        group: "g".into(),
        value: Some(9),
    }
    .encode();
    assert_eq!(
        epoch.key.as_ref(),
        [be16(3), str16("g")].concat().as_slice()
    );
    assert_eq!(
        epoch.value.as_deref(),
        Some([be16(0), be32(9), vec![0]].concat().as_slice())
    );
    let with_hash = [be16(0), be32(9), vec![1, 0, 8], be64(12345)].concat();
    let record = OffsetsRecord {
        key: epoch.key.clone(),
        value: Some(Bytes::from(with_hash)),
    };
    assert!(matches!(
        Record::decode(&record),
        Ok(Record::ConsumerGroupMetadata { value: Some(9), .. })
    ));

    let current = Record::ConsumerGroupCurrentMemberAssignment {
        group: "g".into(),
        member: "m".into(),
        value: Some(CurrentAssignmentValue {
            member_epoch: 3,
            previous_member_epoch: 2,
            state: 1,
            assigned: Assignment::from([(TOPIC, BTreeSet::from([0, 2]))]),
            pending_revocation: Assignment::new(),
        }),
    };
    let encoded = current.encode();
    let topic = [
        TOPIC.as_bytes().to_vec(),
        vec![3],
        be32(0),
        be32(2),
        vec![0],
    ]
    .concat();
    let expected = [
        be16(0),
        be32(3),
        be32(2),
        vec![1],
        vec![2],
        topic,
        vec![1],
        vec![0],
    ]
    .concat();
    assert_eq!(
        encoded.key.as_ref(),
        [be16(8), str16("g"), str16("m")].concat().as_slice()
    );
    assert_eq!(encoded.value.as_deref(), Some(expected.as_slice()));
    assert_eq!(Record::decode(&encoded), Ok(current));
}

// The member subscription record: nullable compact strings are 0 for null.
#[test]
fn member_metadata_is_kafkas_layout() {
    let record = Record::ConsumerGroupMemberMetadata {
        group: "g".into(),
        member: "m".into(),
        value: Some(MemberMetadataValue {
            instance_id: None,
            rack_id: Some("r".into()),
            client_id: "c".into(),
            client_host: "h".into(),
            subscribed_topic_names: vec!["a".into(), "b".into()],
            subscribed_topic_regex: None,
            rebalance_timeout_ms: 500,
            server_assignor: Some("uniform".into()),
        }),
    };
    let encoded = record.encode();
    let expected = [
        be16(0),
        vec![0],
        cstr("r"),
        cstr("c"),
        cstr("h"),
        vec![3],
        cstr("a"),
        cstr("b"),
        vec![0],
        be32(500),
        cstr("uniform"),
        vec![0],
    ]
    .concat();
    assert_eq!(
        encoded.key.as_ref(),
        [be16(5), str16("g"), str16("m")].concat().as_slice()
    );
    assert_eq!(encoded.value.as_deref(), Some(expected.as_slice()));
    assert_eq!(Record::decode(&encoded), Ok(record));
}

// Share- and streams-group records (types 9+) are not ours: loading must skip them.
#[test]
fn unknown_types_and_garbage_are_errors() {
    let share = OffsetsRecord {
        key: Bytes::from([be16(10), str16("g")].concat()),
        value: None,
    };
    assert_eq!(Record::decode(&share), Err(RecordError::UnknownType(10)));
    let truncated = OffsetsRecord {
        key: Bytes::from_static(&[0, 1, 0, 5, b'g']),
        value: None,
    };
    assert!(matches!(
        Record::decode(&truncated),
        Err(RecordError::Malformed(_))
    ));
    // A compact array that claims more elements than bytes left is refused before allocating.
    let huge = OffsetsRecord {
        key: Bytes::from([be16(7), str16("g"), str16("m")].concat()),
        value: Some(Bytes::from(
            [be16(0), vec![0xff, 0xff, 0xff, 0xff, 0x0f]].concat(),
        )),
    };
    assert!(matches!(
        Record::decode(&huge),
        Err(RecordError::Malformed(_))
    ));
}

fn name() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9._é-]{0,12}"
}

fn assignment() -> impl Strategy<Value = Assignment> {
    proptest::collection::btree_map(
        any::<[u8; 16]>().prop_map(Uuid::from_bytes),
        proptest::collection::btree_set(0i32..100, 1..4),
        0..3,
    )
}

fn record() -> impl Strategy<Value = Record> {
    let offset = (
        name(),
        name(),
        any::<i32>(),
        proptest::option::of((
            any::<i64>(),
            any::<i32>(),
            name(),
            any::<i64>(),
            proptest::option::of(any::<i64>()),
        )),
    )
        .prop_map(|(group, topic, partition, value)| Record::OffsetCommit {
            group,
            topic,
            partition,
            value: value.map(
                |(offset, leader_epoch, metadata, ts, expire)| OffsetCommitValue {
                    offset,
                    // Value v1 has no leader epoch: a round trip through it reads -1.
                    leader_epoch: if expire.is_some() { -1 } else { leader_epoch },
                    metadata,
                    commit_timestamp_ms: ts,
                    expire_timestamp_ms: expire,
                },
            ),
        });
    let member = (
        name(),
        proptest::option::of(name()),
        name(),
        name(),
        any::<i32>(),
        any::<i32>(),
        any::<Vec<u8>>(),
        any::<Vec<u8>>(),
    )
        .prop_map(
            |(member_id, group_instance_id, client_id, client_host, r, s, sub, asg)| {
                MemberMetadata {
                    member_id,
                    group_instance_id,
                    client_id,
                    client_host,
                    rebalance_timeout_ms: r,
                    session_timeout_ms: s,
                    subscription: Bytes::from(sub),
                    assignment: Bytes::from(asg),
                }
            },
        );
    let group = (
        name(),
        proptest::option::of((
            name(),
            any::<i32>(),
            proptest::option::of(name()),
            proptest::option::of(name()),
            any::<i64>(),
            proptest::collection::vec(member, 0..3),
        )),
    )
        .prop_map(|(group, v)| Record::GroupMetadata {
            group,
            value: v.map(
                |(protocol_type, generation, protocol, leader, ts, members)| GroupMetadataValue {
                    protocol_type,
                    generation,
                    protocol,
                    leader,
                    current_state_timestamp_ms: ts,
                    members,
                },
            ),
        });
    let current = (
        name(),
        name(),
        proptest::option::of((
            any::<i32>(),
            any::<i32>(),
            0i8..3,
            assignment(),
            assignment(),
        )),
    )
        .prop_map(
            |(group, member, v)| Record::ConsumerGroupCurrentMemberAssignment {
                group,
                member,
                value: v.map(
                    |(member_epoch, previous_member_epoch, state, assigned, pending_revocation)| {
                        CurrentAssignmentValue {
                            member_epoch,
                            previous_member_epoch,
                            state,
                            assigned,
                            pending_revocation,
                        }
                    },
                ),
            },
        );
    let target =
        (name(), name(), proptest::option::of(assignment())).prop_map(|(group, member, value)| {
            Record::ConsumerGroupTargetAssignmentMember {
                group,
                member,
                value,
            }
        });
    let epochs = (name(), proptest::option::of(any::<i32>()), any::<bool>()).prop_map(
        |(group, value, target)| {
            if target {
                Record::ConsumerGroupTargetAssignmentMetadata { group, value }
            } else {
                Record::ConsumerGroupMetadata { group, value }
            }
        },
    );
    let subscription = (
        name(),
        name(),
        proptest::option::of((
            proptest::option::of(name()),
            proptest::option::of(name()),
            name(),
            name(),
            proptest::collection::vec(name(), 0..3),
            any::<i32>(),
            proptest::option::of(name()),
        )),
    )
        .prop_map(|(group, member, v)| Record::ConsumerGroupMemberMetadata {
            group,
            member,
            value: v.map(
                |(instance_id, rack_id, client_id, client_host, names, r, assignor)| {
                    MemberMetadataValue {
                        instance_id,
                        rack_id,
                        client_id,
                        client_host,
                        subscribed_topic_names: names,
                        subscribed_topic_regex: None,
                        rebalance_timeout_ms: r,
                        server_assignor: assignor,
                    }
                },
            ),
        });
    let topics = (
        name(),
        proptest::option::of(proptest::collection::vec(
            (any::<[u8; 16]>(), name(), any::<i32>()),
            0..3,
        )),
    )
        .prop_map(|(group, v)| Record::ConsumerGroupPartitionMetadata {
            group,
            value: v.map(|ts| {
                ts.into_iter()
                    .map(|(id, topic_name, n)| TopicMetadataValue {
                        topic_id: Uuid::from_bytes(id),
                        topic_name,
                        num_partitions: n,
                    })
                    .collect()
            }),
        });
    prop_oneof![offset, group, current, target, epochs, subscription, topics]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    // Whatever the coordinator writes it must read back identically, or a coordinator move
    // silently changes groups and offsets.
    #[test]
    fn every_record_round_trips(record in record()) {
        prop_assert_eq!(Record::decode(&record.encode()), Ok(record));
    }

    // A log is input the coordinator did not choose: any bytes, and any cut of a valid
    // record, must decode to a value or an error, never a panic or a huge allocation.
    #[test]
    fn arbitrary_and_truncated_bytes_never_panic(
        record in record(),
        key in proptest::collection::vec(any::<u8>(), 0..40),
        value in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..80)),
        cut in any::<prop::sample::Index>(),
    ) {
        let _ = Record::decode(&OffsetsRecord { key: Bytes::from(key), value: value.map(Bytes::from) });
        let encoded = record.encode();
        if let Some(v) = &encoded.value {
            let at = cut.index(v.len().max(1));
            let cut_record = OffsetsRecord { key: encoded.key.clone(), value: Some(v.slice(..at.min(v.len()))) };
            if at < v.len() {
                prop_assert!(Record::decode(&cut_record).is_err());
            }
        }
    }
}
