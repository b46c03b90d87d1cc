//! OffsetCommit, OffsetFetch, OffsetDelete and retention.

use super::classic::subscription;
use super::*;

const NONE: i16 = 0;

/// A Stable consumer-protocol group of one member subscribed to `topics`.
fn consumer_group(h: &mut Harness, group: &str, topics: &[&str]) -> (i32, String) {
    let spec = JoinSpec {
        protocols: vec![("range", subscription(topics, &[]))],
        ..JoinSpec::new(group, "")
    };
    let (member, token) = h.join_new(&spec);
    h.advance(3_000);
    let generation = h.join_answer(token).generation_id;
    let sync = h.sync(group, generation, &member, &[(&member, b"x")]);
    assert_eq!(h.sync_answer(sync).error_code, NONE);
    (generation, member)
}

// An offset commit is answered only once the ISR has it, and OffsetFetch shows it only then;
// with require_stable a commit in flight is UNSTABLE_OFFSET_COMMIT, so the client retries.
#[test]
fn commit_is_answered_and_visible_only_once_committed() {
    let mut h = Harness::new(config());
    h.auto_ack = false;
    let commit = h.commit(7, "g", -1, "", &[("t", 0, 42)]);
    assert!(!h.answered(commit));
    assert_eq!(record_kinds(&h.appends[0].2), vec![("OffsetCommit", true)]);
    assert_eq!(
        h.fetch("g", "t", 0, false),
        Ok((-1, -1, String::new(), NONE))
    );
    let unstable = GroupError::UnstableOffsetCommit.code();
    assert_eq!(h.fetch("g", "t", 0, true).map(|a| a.3), Ok(unstable));
    h.ack();
    assert_eq!(h.commit_codes(commit), vec![NONE]);
    assert_eq!(
        h.fetch("g", "t", 0, true),
        Ok((42, 3, "meta".to_owned(), NONE))
    );
}

// A failed append answers the error Kafka maps it to and leaves the previous offset.
#[test]
fn failed_commit_keeps_the_previous_offset() {
    let mut h = Harness::new(config());
    let commit = h.commit(7, "g", -1, "", &[("t", 0, 10)]);
    assert_eq!(h.commit_codes(commit), vec![NONE]);
    h.auto_ack = false;
    let commit = h.commit(7, "g", -1, "", &[("t", 0, 20)]);
    h.fail(AppendError::NotLeader);
    assert_eq!(
        h.commit_codes(commit),
        vec![GroupError::NotCoordinator.code()]
    );
    let commit = h.commit(7, "g", -1, "", &[("t", 0, 30)]);
    h.fail(AppendError::TooLarge);
    assert_eq!(
        h.commit_codes(commit),
        vec![GroupError::UnknownServerError.code()]
    );
    assert_eq!(h.fetch("g", "t", 0, false).map(|a| a.0), Ok(10));
}

// Two commits in flight for one partition: the one later in the log wins whatever order the
// acknowledgements report, as log replay would decide.
#[test]
fn the_later_write_wins_regardless_of_acknowledgement_order() {
    let mut h = Harness::new(config());
    h.auto_ack = false;
    let first = h.commit(7, "g", -1, "", &[("t", 0, 1)]);
    let second = h.commit(7, "g", -1, "", &[("t", 0, 2)]);
    let (id1, _, _) = h.appends.pop_front().unwrap();
    let (id2, _, _) = h.appends.pop_front().unwrap();
    h.input(GroupInput::Appended {
        append_id: id2,
        result: Ok(()),
    });
    h.input(GroupInput::Appended {
        append_id: id1,
        result: Ok(()),
    });
    assert_eq!(h.commit_codes(first), vec![NONE]);
    assert_eq!(h.commit_codes(second), vec![NONE]);
    assert_eq!(h.fetch("g", "t", 0, false).map(|a| a.0), Ok(2));
}

// OffsetFetch v8 answers several groups at once, each with its own error: a group this
// coordinator does not lead is NOT_COORDINATOR, an unknown group has no offsets.
#[test]
fn fetch_v8_answers_each_group() {
    let n = 2;
    let mut h = Harness::leading_none(GroupConfig {
        offsets_topic_num_partitions: n,
        ..config()
    });
    let on = |p: i32| {
        (0..)
            .map(|i| format!("grp{i}"))
            .find(|g| offsets_partition_for(g, n) == p)
            .unwrap()
    };
    let (a, b) = (on(0), on(1));
    let unknown = (0..)
        .map(|i| format!("x{i}"))
        .find(|g| offsets_partition_for(g, n) == 0)
        .unwrap();
    h.lead(0);
    let commit = h.commit(8, &a, -1, "", &[("t", 1, 7), ("u", 0, 3)]);
    assert_eq!(h.commit_codes(commit), vec![NONE, NONE]);
    let answers = h.fetch_v8(&[&a, &unknown, &b]);
    assert_eq!(
        answers[0],
        (NONE, vec![("t".into(), 1, 7), ("u".into(), 0, 3)])
    );
    assert_eq!(answers[1], (NONE, vec![]));
    assert_eq!(answers[2].0, GroupError::NotCoordinator.code());
}

// Metadata beyond offset.metadata.max.bytes is refused per partition; the rest commits.
#[test]
fn oversized_metadata_is_refused_per_partition() {
    let mut h = Harness::new(GroupConfig {
        offset_metadata_max_bytes: 3,
        ..config()
    });
    let mut request = OffsetCommitRequest::default()
        .with_group_id(gid("g"))
        .with_generation_id_or_member_epoch(-1);
    let partition = |i: i32, m: &str| {
        OffsetCommitRequestPartition::default()
            .with_partition_index(i)
            .with_committed_offset(5)
            .with_committed_metadata(Some(sb(m)))
    };
    request.topics = vec![OffsetCommitRequestTopic::default()
        .with_name(TopicName(sb("t")))
        .with_partitions(vec![partition(0, "four"), partition(1, "ok")])];
    let token = h.send(7, GroupRequestBody::OffsetCommit(request));
    assert_eq!(
        h.commit_codes(token),
        vec![GroupError::OffsetMetadataTooLarge.code(), NONE]
    );
    assert_eq!(h.fetch("g", "t", 1, false).map(|a| a.0), Ok(5));
    assert_eq!(h.fetch("g", "t", 0, false).map(|a| a.0), Ok(-1));
}

// Without a generation only an empty group takes commits; a generation for a group that does
// not exist is ILLEGAL_GENERATION before v9 and GROUP_ID_NOT_FOUND from v9.
#[test]
fn commit_validation_without_membership() {
    let mut h = Harness::new(config());
    h.stable_group("g", 1);
    let commit = h.commit(7, "g", -1, "", &[("t", 0, 1)]);
    assert_eq!(
        h.commit_codes(commit),
        vec![GroupError::UnknownMemberId.code()]
    );
    let commit = h.commit(7, "nothing", 3, "m", &[("t", 0, 1)]);
    assert_eq!(
        h.commit_codes(commit),
        vec![GroupError::IllegalGeneration.code()]
    );
    let commit = h.commit(9, "nothing", 3, "m", &[("t", 0, 1)]);
    assert_eq!(
        h.commit_codes(commit),
        vec![GroupError::GroupIdNotFound.code()]
    );
    let commit = h.commit(7, "", -1, "", &[("t", 0, 1)]);
    assert_eq!(
        h.commit_codes(commit),
        vec![GroupError::InvalidGroupId.code()]
    );
}

// OffsetDelete refuses topics the group subscribes to and deletes the rest once committed.
#[test]
fn offset_delete_refuses_subscribed_topics() {
    let mut h = Harness::new(config());
    let (generation, member) = consumer_group(&mut h, "g", &["t1"]);
    let commit = h.commit(7, "g", generation, &member, &[("t1", 0, 5), ("t2", 0, 6)]);
    assert_eq!(h.commit_codes(commit), vec![NONE, NONE]);
    h.auto_ack = false;
    let topic = |name: &str| {
        kafka_protocol::messages::offset_delete_request::OffsetDeleteRequestTopic::default()
        .with_name(TopicName(sb(name)))
        .with_partitions(vec![kafka_protocol::messages::offset_delete_request::OffsetDeleteRequestPartition::default().with_partition_index(0)])
    };
    let request = OffsetDeleteRequest::default()
        .with_group_id(gid("g"))
        .with_topics(vec![topic("t1"), topic("t2")]);
    let token = h.send(0, GroupRequestBody::OffsetDelete(request));
    assert!(!h.answered(token));
    assert_eq!(record_kinds(&h.appends[0].2), vec![("OffsetCommit", false)]);
    h.ack();
    let ResponseKind::OffsetDelete(r) = h.take(token) else {
        panic!()
    };
    let codes: Vec<i16> = r
        .topics
        .iter()
        .map(|t| t.partitions[0].error_code)
        .collect();
    assert_eq!(
        (r.error_code, codes),
        (NONE, vec![GroupError::GroupSubscribedToTopic.code(), NONE])
    );
    assert_eq!(h.fetch("g", "t2", 0, false).map(|a| a.0), Ok(-1));
    assert_eq!(h.fetch("g", "t1", 0, false).map(|a| a.0), Ok(5));
}

// OffsetDelete on a live group of another protocol type is NON_EMPTY_GROUP; on an unknown
// group GROUP_ID_NOT_FOUND.
#[test]
fn offset_delete_refusals() {
    let mut h = Harness::new(config());
    let request = JoinSpec::new("connect", "")
        .request()
        .with_protocol_type(sb("connect"));
    h.send(3, GroupRequestBody::JoinGroup(request));
    h.advance(3_000);
    let delete = |g: &str| OffsetDeleteRequest::default().with_group_id(gid(g));
    for (group, error) in [
        ("connect", GroupError::NonEmptyGroup),
        ("unknown", GroupError::GroupIdNotFound),
    ] {
        let token = h.send(0, GroupRequestBody::OffsetDelete(delete(group)));
        let ResponseKind::OffsetDelete(r) = h.take(token) else {
            panic!()
        };
        assert_eq!(r.error_code, error.code(), "{group}");
    }
}

// KIP-211: a Stable consumer group keeps offsets of topics it subscribes to; they expire only
// once the group is empty, counted from when it became empty; then the empty group goes.
#[test]
fn offsets_expire_only_once_the_group_is_empty() {
    let hour = 3_600_000;
    let cfg = GroupConfig {
        offsets_retention: Duration::from_millis(hour),
        offsets_retention_check_interval: Duration::from_millis(60_000),
        ..config()
    };
    let mut h = Harness::new(cfg);
    let (generation, member) = consumer_group(&mut h, "g", &["t1"]);
    let commit = h.commit(7, "g", generation, &member, &[("t1", 0, 5), ("t9", 0, 6)]);
    h.commit_codes(commit);
    for _ in 0..24 {
        h.advance(5 * 60_000 / 60);
        h.heartbeat("g", generation, &member, None);
    }
    // Keep the member alive for two hours.
    for _ in 0..(2 * hour / 5_000) {
        h.advance(5_000);
        h.heartbeat("g", generation, &member, None);
    }
    assert_eq!(
        h.fetch("g", "t1", 0, false).map(|a| a.0),
        Ok(5),
        "subscribed: kept"
    );
    assert_eq!(
        h.fetch("g", "t9", 0, false).map(|a| a.0),
        Ok(-1),
        "not subscribed: expired"
    );
    h.leave(3, "g", &[(&member, None)]);
    assert_eq!(h.state("g"), "Empty");
    h.advance(hour - 120_000);
    assert_eq!(
        h.fetch("g", "t1", 0, false).map(|a| a.0),
        Ok(5),
        "not yet an hour empty"
    );
    h.advance(180_000);
    assert_eq!(h.fetch("g", "t1", 0, false).map(|a| a.0), Ok(-1));
    h.advance(60_000);
    assert!(h
        .events
        .contains(&GroupEvent::GroupDeleted { group: "g".into() }));
    assert!(h.c.group_summary("g").is_none());
}

// OffsetCommit v2-4 may set its own retention: the offset expires at that time (value v1).
#[test]
fn explicit_retention_expires_at_its_timestamp() {
    let cfg = GroupConfig {
        offsets_retention_check_interval: Duration::from_millis(60_000),
        ..config()
    };
    let mut h = Harness::new(cfg);
    let mut request = OffsetCommitRequest::default()
        .with_group_id(gid("g"))
        .with_generation_id_or_member_epoch(-1)
        .with_retention_time_ms(30_000);
    request.topics = vec![OffsetCommitRequestTopic::default()
        .with_name(TopicName(sb("t")))
        .with_partitions(vec![
            OffsetCommitRequestPartition::default().with_committed_offset(4)
        ])];
    let token = h.send(2, GroupRequestBody::OffsetCommit(request));
    assert_eq!(h.commit_codes(token), vec![NONE]);
    let Ok(Record::OffsetCommit { value: Some(v), .. }) = Record::decode(&h.log[&0][0]) else {
        panic!()
    };
    assert_eq!(
        v.expire_timestamp_ms,
        Some(h.now.as_millis() as i64 + 30_000)
    );
    assert_eq!(h.fetch("g", "t", 0, false).map(|a| a.0), Ok(4));
    h.advance(60_000);
    assert_eq!(h.fetch("g", "t", 0, false).map(|a| a.0), Ok(-1));
}

// Offsets survive a coordinator move: the new coordinator replays the committed log.
#[test]
fn offsets_survive_a_coordinator_move() {
    let mut h = Harness::new(config());
    let (generation, member) = consumer_group(&mut h, "g", &["t"]);
    for offset in [1, 5, 9] {
        let commit = h.commit(7, "g", generation, &member, &[("t", 0, offset)]);
        h.commit_codes(commit);
    }
    h.move_coordinator(0);
    assert_eq!(
        h.fetch("g", "t", 0, false),
        Ok((9, 3, "meta".to_owned(), NONE))
    );
    let commit = h.commit(7, "g", generation, &member, &[("t", 0, 10)]);
    assert_eq!(h.commit_codes(commit), vec![NONE]);
}

// Offsets per group are bounded: a commit of a new partition past GROUP_OFFSETS_MAX is refused
// with INVALID_COMMIT_OFFSET_SIZE, while partitions the group already has still commit.
#[test]
fn offsets_per_group_are_bounded() {
    let mut h = Harness::new(config());
    let batch = crate::constants::GROUP_REQUEST_PARTITIONS_MAX as i32;
    let max = crate::constants::GROUP_OFFSETS_MAX as i32;
    for start in (0..max).step_by(batch as usize) {
        let offsets: Vec<(&str, i32, i64)> = (start..start + batch).map(|p| ("t", p, 1)).collect();
        let commit = h.commit(7, "g", -1, "", &offsets);
        assert!(h.commit_codes(commit).iter().all(|c| *c == NONE));
    }
    let commit = h.commit(7, "g", -1, "", &[("t", max, 1), ("t", 0, 2)]);
    let codes = h.commit_codes(commit);
    assert_eq!(
        codes,
        vec![GroupError::InvalidCommitOffsetSize.code(), NONE]
    );
    assert_eq!(h.fetch("g", "t", 0, false).map(|a| a.0), Ok(2));
}
