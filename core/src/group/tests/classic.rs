//! Classic groups: JoinGroup, SyncGroup, Heartbeat, LeaveGroup, static membership, timers,
//! and coordinator moves.

use super::*;
use kafka_protocol::messages::consumer_protocol_subscription::TopicPartition;
use kafka_protocol::protocol::Encodable;

/// A consumer-protocol subscription (v1: with owned partitions, KIP-429).
pub(crate) fn subscription(topics: &[&str], owned: &[(&str, &[i32])]) -> Bytes {
    let owned = owned
        .iter()
        .map(|(t, ps)| {
            TopicPartition::default()
                .with_topic(TopicName(sb(t)))
                .with_partitions(ps.to_vec())
        })
        .collect();
    let value = ConsumerProtocolSubscription::default()
        .with_topics(topics.iter().map(|t| sb(t)).collect())
        .with_owned_partitions(owned);
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&1i16.to_be_bytes());
    value.encode(&mut buf, 1).expect("encodes");
    buf.freeze()
}

const NONE: i16 = 0;
const ILLEGAL_GENERATION: i16 = 22;
const UNKNOWN_MEMBER_ID: i16 = 25;
const REBALANCE_IN_PROGRESS: i16 = 27;
const FENCED_INSTANCE_ID: i16 = 82;

// KIP-394: a v4+ first join gets MEMBER_ID_REQUIRED and an id; the join with it waits out
// group.initial.rebalance.delay.ms; the leader's assignment is answered only once its
// GroupMetadata record is committed (acks=all).
#[test]
fn first_join_requires_member_id_and_assignment_waits_for_the_isr() {
    let mut h = Harness::new(config());
    h.auto_ack = false;
    let first = h.join(4, &JoinSpec::new("g", ""));
    let answer = h.join_answer(first);
    assert_eq!(answer.error_code, GroupError::MemberIdRequired.code());
    let member = answer.member_id.as_str().to_owned();
    assert!(
        member.starts_with("client-") && member.len() == "client-".len() + 36,
        "{member}"
    );
    let join = h.join(4, &JoinSpec::new("g", &member));
    assert!(!h.answered(join));
    assert_eq!(h.state("g"), "PreparingRebalance");
    h.advance(2_999);
    assert!(!h.answered(join));
    h.advance(1);
    let answer = h.join_answer(join);
    assert_eq!((answer.error_code, answer.generation_id), (NONE, 1));
    assert_eq!(answer.leader.as_str(), member);
    assert_eq!(
        answer.protocol_name.as_ref().map(|p| p.as_str()),
        Some("range")
    );
    assert_eq!(answer.members.len(), 1);
    assert_eq!(answer.members[0].metadata.as_ref(), b"m");
    assert_eq!(h.state("g"), "CompletingRebalance");
    let sync = h.sync("g", 1, &member, &[(&member, b"mine")]);
    assert!(!h.answered(sync), "answered before the ISR has the group");
    assert_eq!(record_kinds(&h.appends[0].2), vec![("GroupMetadata", true)]);
    h.ack();
    let answer = h.sync_answer(sync);
    assert_eq!(
        (answer.error_code, answer.assignment.as_ref()),
        (NONE, b"mine".as_slice())
    );
    assert_eq!(h.state("g"), "Stable");
}

// Before v4 a join without a member id is added at once (no MEMBER_ID_REQUIRED round trip).
#[test]
fn join_before_v4_adds_the_member_at_once() {
    let mut h = Harness::new(config());
    let join = h.join(3, &JoinSpec::new("g", ""));
    h.advance(3_000);
    let answer = h.join_answer(join);
    assert_eq!((answer.error_code, answer.generation_id), (NONE, 1));
    assert!(answer.member_id.as_str().starts_with("client-"));
}

// The initial delay is extended while new members keep arriving (Kafka's InitialDelayedJoin),
// so a group starting up rebalances once rather than once per member.
#[test]
fn initial_delay_extends_while_members_arrive() {
    let mut h = Harness::new(config());
    let (_, a) = h.join_new(&JoinSpec::new("g", ""));
    h.advance(2_000);
    let (_, b) = h.join_new(&JoinSpec::new("g", ""));
    h.advance(1_000);
    assert!(!h.answered(a) && !h.answered(b), "the delay was extended");
    h.advance(2_999);
    assert!(!h.answered(a));
    h.advance(1);
    assert_eq!(h.join_answer(a).generation_id, 1);
    assert_eq!(h.join_answer(b).generation_id, 1);
}

// The protocol is the one most members prefer among those every member supports.
#[test]
fn protocol_is_chosen_by_vote_among_common_ones() {
    let mut h = Harness::new(config());
    let both = |first: &'static str, second: &'static str| {
        vec![
            (first, Bytes::from_static(b"1")),
            (second, Bytes::from_static(b"2")),
        ]
    };
    let mut tokens = Vec::new();
    for protocols in [
        both("range", "rr"),
        both("rr", "range"),
        both("range", "rr"),
    ] {
        let spec = JoinSpec {
            protocols,
            ..JoinSpec::new("g", "")
        };
        tokens.push(h.join_new(&spec).1);
    }
    h.advance(6_000); // The second member extends the initial delay.
    for token in tokens {
        assert_eq!(
            h.join_answer(token).protocol_name.unwrap().as_str(),
            "range"
        );
    }
    // A member supporting only "rr" leaves "rr" the only common protocol.
    let mut tokens = Vec::new();
    for protocols in [both("range", "rr"), vec![("rr", Bytes::from_static(b"3"))]] {
        let spec = JoinSpec {
            protocols,
            ..JoinSpec::new("h", "")
        };
        tokens.push(h.join_new(&spec).1);
    }
    h.advance(6_000); // The second member extends the initial delay.
    let answer = h.join_answer(tokens[0]);
    assert_eq!(answer.protocol_name.unwrap().as_str(), "rr");
    // The leader sees each member's metadata for the chosen protocol.
    let metadata: Vec<&[u8]> = answer.members.iter().map(|m| m.metadata.as_ref()).collect();
    assert!(metadata.contains(&b"2".as_slice()) && metadata.contains(&b"3".as_slice()));
}

// A member whose protocols or protocol type no member shares is refused, as is a first member
// with no protocol at all.
#[test]
fn inconsistent_protocols_are_refused() {
    let mut h = Harness::new(config());
    let (_, first) = h.join_new(&JoinSpec::new("g", ""));
    let other = JoinSpec {
        protocols: vec![("sticky", Bytes::new())],
        ..JoinSpec::new("g", "")
    };
    let token = h.join(5, &other);
    let answer = h.join_answer(token);
    assert_eq!(
        (answer.error_code, answer.member_id.as_str()),
        (GroupError::InconsistentGroupProtocol.code(), "")
    );
    let request = JoinSpec::new("g", "")
        .request()
        .with_protocol_type(sb("connect"));
    let token = h.send(5, GroupRequestBody::JoinGroup(request));
    assert_eq!(
        h.join_answer(token).error_code,
        GroupError::InconsistentGroupProtocol.code()
    );
    let empty = JoinSpec {
        protocols: vec![],
        ..JoinSpec::new("fresh", "")
    };
    let token = h.join(5, &empty);
    assert_eq!(
        h.join_answer(token).error_code,
        GroupError::InconsistentGroupProtocol.code()
    );
    assert!(!h.answered(first));
}

// Session timeouts outside group.{min,max}.session.timeout.ms are refused with the member id
// echoed; a member id for a group that does not exist is unknown.
#[test]
fn session_timeout_bounds_and_unknown_group() {
    let mut h = Harness::new(config());
    for session_ms in [5_999, 1_800_001] {
        let spec = JoinSpec {
            session_ms,
            ..JoinSpec::new("g", "m")
        };
        let token = h.join(5, &spec);
        let answer = h.join_answer(token);
        assert_eq!(
            (answer.error_code, answer.member_id.as_str()),
            (GroupError::InvalidSessionTimeout.code(), "m")
        );
    }
    let token = h.join(5, &JoinSpec::new("g", "m"));
    assert_eq!(h.join_answer(token).error_code, UNKNOWN_MEMBER_ID);
    let token = h.join(5, &JoinSpec::new("", ""));
    assert_eq!(
        h.join_answer(token).error_code,
        GroupError::InvalidGroupId.code()
    );
}

// group.max.size: a member beyond it is refused with GROUP_MAX_SIZE_REACHED and no member id.
#[test]
fn group_max_size_is_enforced() {
    let mut h = Harness::new(GroupConfig {
        group_max_size: 2,
        ..config()
    });
    h.stable_group("g", 2);
    let token = h.join(5, &JoinSpec::new("g", ""));
    let answer = h.join_answer(token);
    assert_eq!(
        (answer.error_code, answer.member_id.as_str()),
        (GroupError::GroupMaxSizeReached.code(), "")
    );
    assert_eq!(
        h.state("g"),
        "Stable",
        "a refused member does not rebalance the group"
    );
}

// Followers' SyncGroups wait for the leader's; nobody gets an assignment until the record
// carrying all of them is committed. DescribeGroups then shows the Stable group.
#[test]
fn syncs_wait_for_the_leader_and_the_isr() {
    let mut h = Harness::new(config());
    h.auto_ack = false;
    let (a, ta) = h.join_new(&JoinSpec::new("g", ""));
    let (b, tb) = h.join_new(&JoinSpec::new("g", ""));
    h.advance(6_000); // The second member extends the initial delay.
    let leader = h.join_answer(ta).leader.as_str().to_owned();
    h.join_answer(tb);
    let follower = if leader == a { b.clone() } else { a.clone() };
    let fs = h.sync("g", 1, &follower, &[]);
    assert!(!h.answered(fs));
    let ls = h.sync("g", 1, &leader, &[(&leader, b"L"), (&follower, b"F")]);
    assert!(!h.answered(fs) && !h.answered(ls) && h.appends.len() == 1);
    h.ack();
    assert_eq!(h.sync_answer(fs).assignment.as_ref(), b"F");
    assert_eq!(h.sync_answer(ls).assignment.as_ref(), b"L");
    let request = DescribeGroupsRequest::default().with_groups(vec![gid("g")]);
    let token = h.send(5, GroupRequestBody::DescribeGroups(request));
    let ResponseKind::DescribeGroups(d) = h.take(token) else {
        panic!()
    };
    let g = &d.groups[0];
    assert_eq!(
        (
            g.group_state.as_str(),
            g.protocol_data.as_str(),
            g.members.len()
        ),
        ("Stable", "range", 2)
    );
    let described = g
        .members
        .iter()
        .find(|m| m.member_id.as_str() == follower)
        .unwrap();
    assert_eq!(
        (
            described.member_assignment.as_ref(),
            described.member_metadata.as_ref()
        ),
        (b"F".as_slice(), b"m".as_slice())
    );
}

// A failed store of the leader's assignment answers every waiting SyncGroup with the mapped
// error, clears the assignment and rebalances (Kafka's resetAndPropagateAssignmentError).
#[test]
fn failed_assignment_store_resets_and_rebalances() {
    let mut h = Harness::new(config());
    h.auto_ack = false;
    let (a, ta) = h.join_new(&JoinSpec::new("g", ""));
    let (b, tb) = h.join_new(&JoinSpec::new("g", ""));
    h.advance(6_000); // The second member extends the initial delay.
    let leader = h.join_answer(ta).leader.as_str().to_owned();
    h.join_answer(tb);
    let follower = if leader == a { b } else { a };
    let fs = h.sync("g", 1, &follower, &[]);
    let ls = h.sync("g", 1, &leader, &[(&leader, b"L")]);
    h.fail(AppendError::NotEnoughReplicas);
    let unavailable = GroupError::CoordinatorNotAvailable.code();
    assert_eq!(h.sync_answer(fs).error_code, unavailable);
    let answer = h.sync_answer(ls);
    assert_eq!(
        (answer.error_code, answer.assignment.len()),
        (unavailable, 0)
    );
    assert_eq!(h.state("g"), "PreparingRebalance");
    assert_eq!(h.heartbeat("g", 1, &leader, None), REBALANCE_IN_PROGRESS);
}

// Generation fencing: a stale generation, an unknown member, and a commit while the group
// completes a rebalance are refused with the codes clients act on.
#[test]
fn generation_fencing() {
    let mut h = Harness::new(config());
    let (generation, leader, members) = h.stable_group("g", 2);
    assert_eq!(
        h.heartbeat("g", generation - 1, &leader, None),
        ILLEGAL_GENERATION
    );
    assert_eq!(
        h.heartbeat("g", generation, "stranger", None),
        UNKNOWN_MEMBER_ID
    );
    let sync = h.sync("g", generation + 1, &leader, &[]);
    assert_eq!(h.sync_answer(sync).error_code, ILLEGAL_GENERATION);
    let commit = h.commit(7, "g", generation - 1, &leader, &[("t", 0, 5)]);
    assert_eq!(h.commit_codes(commit), vec![ILLEGAL_GENERATION]);
    let commit = h.commit(7, "g", generation, "stranger", &[("t", 0, 5)]);
    assert_eq!(h.commit_codes(commit), vec![UNKNOWN_MEMBER_ID]);
    // Everyone rejoins: the group waits in CompletingRebalance for the leader's assignment.
    let t1 = h.join(5, &JoinSpec::new("g", &members[0]));
    let t2 = h.join(5, &JoinSpec::new("g", &members[1]));
    let next = h.join_answer(t1).generation_id;
    h.join_answer(t2);
    assert_eq!(
        (next, h.state("g")),
        (generation + 1, "CompletingRebalance")
    );
    let commit = h.commit(7, "g", next, &leader, &[("t", 0, 5)]);
    assert_eq!(h.commit_codes(commit), vec![REBALANCE_IN_PROGRESS]);
    let commit = h.commit(7, "g", generation, &leader, &[("t", 0, 5)]);
    assert_eq!(h.commit_codes(commit), vec![ILLEGAL_GENERATION]);
}

// A new member makes the others' heartbeats answer REBALANCE_IN_PROGRESS; once all rejoin the
// join phase completes at once (not after the rebalance timeout).
#[test]
fn rebalance_completes_when_everyone_rejoined() {
    let mut h = Harness::new(config());
    let (generation, leader, members) = h.stable_group("g", 2);
    let (_, newcomer) = h.join_new(&JoinSpec::new("g", ""));
    assert_eq!(
        h.heartbeat("g", generation, &leader, None),
        REBALANCE_IN_PROGRESS
    );
    let t1 = h.join(5, &JoinSpec::new("g", &members[0]));
    assert!(!h.answered(newcomer));
    let t2 = h.join(5, &JoinSpec::new("g", &members[1]));
    for token in [newcomer, t1, t2] {
        assert_eq!(h.join_answer(token).generation_id, generation + 1);
    }
}

// A member that stops heartbeating is removed after its session timeout and the group
// rebalances without it.
#[test]
fn session_timeout_removes_a_silent_member() {
    let mut h = Harness::new(config());
    let (generation, leader, members) = h.stable_group("g", 2);
    let silent = members.iter().find(|m| **m != leader).unwrap().clone();
    h.advance(5_000);
    assert_eq!(h.heartbeat("g", generation, &leader, None), NONE);
    h.advance(5_000);
    assert!(h.events.contains(&GroupEvent::MemberRemoved {
        group: "g".into(),
        member: silent.clone(),
        reason: "session timed out",
    }));
    assert_eq!(
        h.heartbeat("g", generation, &leader, None),
        REBALANCE_IN_PROGRESS
    );
    let rejoin = h.join(5, &JoinSpec::new("g", &leader));
    let answer = h.join_answer(rejoin);
    assert_eq!(
        (answer.generation_id, answer.members.len()),
        (generation + 1, 1)
    );
    assert_eq!(
        h.heartbeat("g", generation, &silent, None),
        UNKNOWN_MEMBER_ID
    );
}

// LeaveGroup v3+ removes a batch with a code per member; before v3 there is one member and a
// top-level code. A static member can be removed by instance id alone (KIP-345).
#[test]
fn leave_group_batched_legacy_and_by_instance() {
    let mut h = Harness::new(config());
    let (_, _, members) = h.stable_group("g", 3);
    let answer = h.leave(3, "g", &[(&members[0], None), ("nope", None)]);
    let codes: Vec<i16> = answer.members.iter().map(|m| m.error_code).collect();
    assert_eq!(
        (answer.error_code, codes),
        (NONE, vec![NONE, UNKNOWN_MEMBER_ID])
    );
    assert_eq!(h.state("g"), "PreparingRebalance");
    let answer = h.leave(0, "g", &[("nope", None)]);
    assert_eq!(
        (answer.error_code, answer.members.len()),
        (UNKNOWN_MEMBER_ID, 0)
    );
    let static_spec = JoinSpec {
        instance: Some("i1"),
        ..JoinSpec::new("s", "")
    };
    let join = h.join(5, &static_spec);
    h.advance(3_000);
    h.join_answer(join);
    let answer = h.leave(4, "s", &[("", Some("i1")), ("", Some("i2"))]);
    let codes: Vec<i16> = answer.members.iter().map(|m| m.error_code).collect();
    assert_eq!(codes, vec![NONE, UNKNOWN_MEMBER_ID]);
    assert_eq!(h.c.group_summary("s").unwrap().members.len(), 0);
    let answer = h.leave(3, "unknown-group", &[("m", None)]);
    assert_eq!(answer.members[0].error_code, UNKNOWN_MEMBER_ID);
}

/// Two static members in a Stable group; returns (generation, leader, members).
fn static_group(h: &mut Harness) -> (i32, String, Vec<String>) {
    let mut tokens = Vec::new();
    for instance in ["i1", "i2"] {
        let spec = JoinSpec {
            instance: Some(instance),
            ..JoinSpec::new("s", "")
        };
        tokens.push(h.join(5, &spec));
    }
    h.advance(6_000); // The second member extends the initial delay.
    let answers: Vec<JoinGroupResponse> = tokens.into_iter().map(|t| h.join_answer(t)).collect();
    let members: Vec<String> = answers
        .iter()
        .map(|a| a.member_id.as_str().to_owned())
        .collect();
    assert!(
        members[0].starts_with("i1-"),
        "a static member's id starts with its instance id"
    );
    let (generation, leader) = (
        answers[0].generation_id,
        answers[0].leader.as_str().to_owned(),
    );
    let s1 = h.sync(
        "s",
        generation,
        &members[0],
        &[(&members[0], b"A"), (&members[1], b"B")],
    );
    let s2 = h.sync(
        "s",
        generation,
        &members[1],
        &[(&members[0], b"A"), (&members[1], b"B")],
    );
    h.sync_answer(s1);
    h.sync_answer(s2);
    (generation, leader, members)
}

// KIP-345: a known static member rejoining with unchanged metadata takes a new member id with
// no rebalance, answered once the group is stored; its old id is fenced from then on.
#[test]
fn static_member_rejoins_without_rebalance() {
    let mut h = Harness::new(config());
    let (generation, leader, members) = static_group(&mut h);
    let follower = members.iter().position(|m| *m != leader).unwrap();
    let instance = ["i1", "i2"][follower];
    h.auto_ack = false;
    let spec = JoinSpec {
        instance: Some(instance),
        ..JoinSpec::new("s", "")
    };
    let rejoin = h.join(5, &spec);
    assert!(
        !h.answered(rejoin),
        "answered before the new member id is stored"
    );
    h.ack();
    let answer = h.join_answer(rejoin);
    assert_eq!(
        (answer.error_code, answer.generation_id),
        (NONE, generation)
    );
    assert_eq!(
        (answer.leader.as_str(), answer.members.len()),
        (leader.as_str(), 0)
    );
    let new_id = answer.member_id.as_str().to_owned();
    assert_ne!(new_id, members[follower]);
    assert_eq!(h.state("s"), "Stable");
    assert_eq!(
        h.heartbeat("s", generation, &members[follower], Some(instance)),
        FENCED_INSTANCE_ID
    );
    assert_eq!(h.heartbeat("s", generation, &new_id, Some(instance)), NONE);
    let sync = h.sync("s", generation, &new_id, &[]);
    let assignment = h.sync_answer(sync).assignment;
    assert_eq!(
        assignment.as_ref(),
        [b"A", b"B"][follower],
        "the assignment stays with the instance"
    );
    // From v9 the rejoining leader learns the members but is told not to assign (KIP-814).
    let leader_instance = ["i1", "i2"][1 - follower];
    let spec = JoinSpec {
        instance: Some(leader_instance),
        ..JoinSpec::new("s", "")
    };
    let rejoin = h.join(9, &spec);
    h.ack();
    let answer = h.join_answer(rejoin);
    assert_eq!(
        (
            answer.skip_assignment,
            answer.members.len(),
            answer.generation_id
        ),
        (true, 2, generation)
    );
}

// If storing the static member's new id fails, the old id is restored and the join answered
// with the mapped error (Kafka reverts the replacement the same way).
#[test]
fn static_rejoin_store_failure_restores_the_old_member() {
    let mut h = Harness::new(config());
    let (generation, _, members) = static_group(&mut h);
    h.auto_ack = false;
    let spec = JoinSpec {
        instance: Some("i1"),
        ..JoinSpec::new("s", "")
    };
    let rejoin = h.join(5, &spec);
    h.fail(AppendError::NotLeader);
    let answer = h.join_answer(rejoin);
    assert_eq!(
        (answer.error_code, answer.member_id.as_str()),
        (GroupError::NotCoordinator.code(), "")
    );
    assert_eq!(h.heartbeat("s", generation, &members[0], Some("i1")), NONE);
}

// A static member rejoining with protocols that change the group's choice rebalances.
#[test]
fn static_rejoin_that_changes_the_protocol_rebalances() {
    let mut h = Harness::new(config());
    let protocols = vec![
        ("range", Bytes::from_static(b"1")),
        ("rr", Bytes::from_static(b"2")),
    ];
    let spec = JoinSpec {
        instance: Some("i1"),
        protocols,
        ..JoinSpec::new("s", "")
    };
    let join = h.join(5, &spec);
    h.advance(3_000);
    let answer = h.join_answer(join);
    let member = answer.member_id.as_str().to_owned();
    let sync = h.sync("s", 1, &member, &[(&member, b"A")]);
    h.sync_answer(sync);
    let protocols = vec![
        ("rr", Bytes::from_static(b"2")),
        ("range", Bytes::from_static(b"1")),
    ];
    let spec = JoinSpec {
        instance: Some("i1"),
        protocols,
        ..JoinSpec::new("s", "")
    };
    // The only member rejoined, so the rebalance completes at once.
    let rejoin = h.join(5, &spec);
    let answer = h.join_answer(rejoin);
    assert_eq!(
        (answer.generation_id, answer.protocol_name.unwrap().as_str()),
        (2, "rr")
    );
    assert_eq!(h.state("s"), "CompletingRebalance");
}

// A request naming a static instance with another member's id is fenced everywhere.
#[test]
fn duplicate_static_instance_is_fenced() {
    let mut h = Harness::new(config());
    let (generation, _, _) = static_group(&mut h);
    assert_eq!(
        h.heartbeat("s", generation, "impostor", Some("i1")),
        FENCED_INSTANCE_ID
    );
    let spec = JoinSpec {
        instance: Some("i1"),
        ..JoinSpec::new("s", "impostor")
    };
    let join = h.join(5, &spec);
    assert_eq!(h.join_answer(join).error_code, FENCED_INSTANCE_ID);
    let mut request = SyncGroupRequest::default()
        .with_group_id(gid("s"))
        .with_generation_id(generation)
        .with_member_id(sb("impostor"));
    request.group_instance_id = Some(sb("i1"));
    let sync = h.send(3, GroupRequestBody::SyncGroup(request));
    assert_eq!(h.sync_answer(sync).error_code, FENCED_INSTANCE_ID);
    let commit = OffsetCommitRequest::default()
        .with_group_id(gid("s"))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(sb("impostor"))
        .with_group_instance_id(Some(sb("i1")));
    let token = h.send(7, GroupRequestBody::OffsetCommit(commit));
    h.take(token);
}

// Members of a new generation that never send SyncGroup are removed after the rebalance
// timeout even if they heartbeat (Kafka's pending-sync expiry).
#[test]
fn members_that_never_sync_are_removed() {
    let mut h = Harness::new(config());
    let (a, ta) = h.join_new(&JoinSpec::new("g", ""));
    let (b, tb) = h.join_new(&JoinSpec::new("g", ""));
    h.advance(6_000); // The second member extends the initial delay.
    let leader = h.join_answer(ta).leader.as_str().to_owned();
    h.join_answer(tb);
    let lazy = if leader == a { b } else { a };
    let sync = h.sync("g", 1, &leader, &[(&leader, b"L"), (&lazy, b"Z")]);
    assert_eq!(h.sync_answer(sync).error_code, NONE);
    for _ in 0..6 {
        h.advance(5_000);
        h.heartbeat("g", 1, &leader, None);
        h.heartbeat("g", 1, &lazy, None);
    }
    assert!(h.events.iter().any(|e| matches!(e, GroupEvent::MemberRemoved { member, reason: "did not send SyncGroup in time", .. } if *member == lazy)));
    assert_eq!(h.heartbeat("g", 1, &lazy, None), UNKNOWN_MEMBER_ID);
}

// KIP-429: owned partitions travel inside each member's subscription to the leader, byte for
// byte; the coordinator does not interpret them.
#[test]
fn cooperative_owned_partitions_reach_the_leader_untouched() {
    let mut h = Harness::new(config());
    let metadata = subscription(&["t"], &[("t", &[0, 2])]);
    let spec = JoinSpec {
        protocols: vec![("cooperative-sticky", metadata.clone())],
        ..JoinSpec::new("g", "")
    };
    let (_, token) = h.join_new(&spec);
    h.advance(3_000);
    assert_eq!(h.join_answer(token).members[0].metadata, metadata);
}

// A new member's JoinGroup times out after five minutes of a rebalance that does not end
// (another member with a long rebalance timeout keeps heartbeating without rejoining).
#[test]
fn new_member_join_times_out() {
    let mut h = Harness::new(config());
    let slow = JoinSpec {
        rebalance_ms: 600_000,
        ..JoinSpec::new("g", "")
    };
    let (member, token) = h.join_new(&slow);
    h.advance(3_000);
    let generation = h.join_answer(token).generation_id;
    let sync = h.sync("g", generation, &member, &[(&member, b"x")]);
    h.sync_answer(sync);
    let (_, newcomer) = h.join_new(&JoinSpec::new("g", ""));
    for _ in 0..60 {
        h.advance(5_000);
        assert_eq!(
            h.heartbeat("g", generation, &member, None),
            REBALANCE_IN_PROGRESS
        );
    }
    let answer = h.join_answer(newcomer);
    assert_eq!(
        (answer.error_code, answer.member_id.as_str()),
        (UNKNOWN_MEMBER_ID, "")
    );
}

// While a partition loads, requests get COORDINATOR_LOAD_IN_PROGRESS (Heartbeat: no error,
// SyncGroup: REBALANCE_IN_PROGRESS, as Kafka answers them); a partition not led here answers
// NOT_COORDINATOR.
#[test]
fn loading_and_not_coordinator() {
    let mut h = Harness::leading_none(config());
    let token = h.join(5, &JoinSpec::new("g", ""));
    assert_eq!(
        h.join_answer(token).error_code,
        GroupError::NotCoordinator.code()
    );
    h.lead_loading(0);
    let token = h.join(5, &JoinSpec::new("g", ""));
    assert_eq!(
        h.join_answer(token).error_code,
        GroupError::CoordinatorLoadInProgress.code()
    );
    assert_eq!(h.heartbeat("g", 1, "m", None), NONE);
    let sync = h.sync("g", 1, "m", &[]);
    assert_eq!(h.sync_answer(sync).error_code, REBALANCE_IN_PROGRESS);
    let commit = h.commit(7, "g", -1, "", &[("t", 0, 1)]);
    assert_eq!(
        h.commit_codes(commit),
        vec![GroupError::CoordinatorLoadInProgress.code()]
    );
}

// Resigning stops the coordinator at once: parked joins and answers waiting for appends get
// NOT_COORDINATOR, and a late append report is ignored.
#[test]
fn resign_fails_everything_pending() {
    let mut h = Harness::new(config());
    let (_, join) = h.join_new(&JoinSpec::new("g", ""));
    h.auto_ack = false;
    let commit = h.commit(7, "simple", -1, "", &[("t", 0, 9)]);
    let (append_id, _, _) = h.appends[0].clone();
    h.resign(0);
    assert_eq!(
        h.join_answer(join).error_code,
        GroupError::NotCoordinator.code()
    );
    assert_eq!(
        h.commit_codes(commit),
        vec![GroupError::NotCoordinator.code()]
    );
    h.input(GroupInput::Appended {
        append_id,
        result: Ok(()),
    });
    assert!(h.answers.is_empty());
    assert!(h.c.group_summary("g").is_none());
    assert_eq!(
        h.fetch("simple", "t", 0, false),
        Err(GroupError::NotCoordinator.code())
    );
}

// A coordinator move replays the committed log: the group comes back Stable at its generation
// with its members and assignments, and members carry on without rejoining.
#[test]
fn coordinator_move_restores_stable_group() {
    let mut h = Harness::new(config());
    let (generation, leader, members) = h.stable_group("g", 2);
    h.move_coordinator(0);
    let summary = h.c.group_summary("g").unwrap();
    assert_eq!((summary.state, summary.epoch), ("Stable", generation));
    assert_eq!(summary.members.len(), 2);
    for m in &members {
        assert_eq!(h.heartbeat("g", generation, m, None), NONE);
    }
    let sync = h.sync("g", generation, &leader, &[]);
    let index = members.iter().position(|m| *m == leader).unwrap();
    assert_eq!(
        h.sync_answer(sync).assignment.as_ref(),
        format!("a{index}").as_bytes()
    );
}

// Kafka's partitionFor: abs(Java String.hashCode) % partitions, with Utils.abs mapping
// Integer.MIN_VALUE to 0 and UTF-16 code units for characters outside the BMP.
#[test]
fn offsets_partition_for_matches_java() {
    assert_eq!(offsets_partition_for("", 50), 0);
    assert_eq!(offsets_partition_for("abc", 50), 96_354 % 50);
    assert_eq!(offsets_partition_for("hello", 50), 99_162_322 % 50);
    // "polygenelubricants".hashCode() == Integer.MIN_VALUE.
    assert_eq!(offsets_partition_for("polygenelubricants", 50), 0);
    // "😀" is the surrogate pair D83D DE00: 0xD83D * 31 + 0xDE00.
    assert_eq!(offsets_partition_for("😀", 1_000), 1_772_899 % 1_000);
    // A negative hash takes its absolute value: "my-group".hashCode() == -1906497762.
    assert_eq!(offsets_partition_for("my-group", 50), 1_906_497_762 % 50);
}

// Loading never panics on what it reads: undecodable records and records of another
// partition's groups are skipped and reported.
#[test]
fn loading_skips_what_it_cannot_read() {
    let mut h = Harness::leading_none(GroupConfig {
        offsets_topic_num_partitions: 3,
        ..config()
    });
    let ours = (0..)
        .map(|i| format!("g{i}"))
        .find(|g| offsets_partition_for(g, 3) == 0)
        .unwrap();
    let theirs = (0..)
        .map(|i| format!("g{i}"))
        .find(|g| offsets_partition_for(g, 3) == 1)
        .unwrap();
    let offset = |group: &str| Record::OffsetCommit {
        group: group.into(),
        topic: "t".into(),
        partition: 0,
        value: Some(records::OffsetCommitValue {
            offset: 5,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp_ms: 0,
            expire_timestamp_ms: None,
        }),
    };
    let garbage = OffsetsRecord {
        key: Bytes::from_static(b"\x00"),
        value: None,
    };
    h.log.insert(
        0,
        vec![garbage, offset(&theirs).encode(), offset(&ours).encode()],
    );
    h.lead(0);
    assert!(h.events.contains(&GroupEvent::PartitionLoaded {
        partition: 0,
        groups: 1,
        skipped: 2
    }));
    assert_eq!(h.c.committed_offsets(&ours).unwrap().len(), 1);
}

// Requests held at once are bounded: past GROUP_REQUESTS_IN_FLIGHT_MAX a request is answered
// COORDINATOR_NOT_AVAILABLE at once instead of being queued (here the held requests are
// commits waiting for the ISR; parked joins count the same way).
#[test]
fn requests_in_flight_are_bounded() {
    let mut h = Harness::new(config());
    h.auto_ack = false;
    let held: Vec<Token> = (0..crate::constants::GROUP_REQUESTS_IN_FLIGHT_MAX as i32)
        .map(|p| h.commit(7, "g", -1, "", &[("t", p, 1)]))
        .collect();
    assert!(held.iter().all(|t| !h.answered(*t)));
    assert_eq!(
        h.heartbeat("other", 1, "m", None),
        GroupError::CoordinatorNotAvailable.code()
    );
    h.ack_all();
    assert!(held.iter().all(|t| h.answered(*t)));
    assert_eq!(h.heartbeat("other", 1, "m", None), UNKNOWN_MEMBER_ID);
}

// Loading may come in chunks; requests wait (COORDINATOR_LOAD_IN_PROGRESS) until the last one.
// A Loaded for an earlier leadership is ignored, and so is a repeated BecameLeader.
#[test]
fn chunked_and_stale_loads() {
    let mut h = Harness::new(config());
    for offset in [1, 2] {
        let commit = h.commit(7, "g", -1, "", &[("t", 0, offset)]);
        h.commit_codes(commit);
    }
    let log = h.log[&0].clone();
    h.resign(0);
    h.input(GroupInput::BecameLeader {
        partition: 0,
        leader_epoch: 5,
    });
    let stale = GroupInput::Loaded {
        partition: 0,
        leader_epoch: 4,
        records: Vec::new(),
        complete: true,
    };
    h.input(stale);
    assert_eq!(
        h.fetch("g", "t", 0, false),
        Err(GroupError::CoordinatorLoadInProgress.code())
    );
    let first = GroupInput::Loaded {
        partition: 0,
        leader_epoch: 5,
        records: log[..1].to_vec(),
        complete: false,
    };
    h.input(first);
    assert_eq!(
        h.fetch("g", "t", 0, false),
        Err(GroupError::CoordinatorLoadInProgress.code())
    );
    let rest = GroupInput::Loaded {
        partition: 0,
        leader_epoch: 5,
        records: log[1..].to_vec(),
        complete: true,
    };
    h.input(rest);
    assert_eq!(h.fetch("g", "t", 0, false).map(|a| a.0), Ok(2));
    let loads = h.loads.len();
    h.input(GroupInput::BecameLeader {
        partition: 0,
        leader_epoch: 5,
    });
    assert_eq!(h.loads.len(), loads, "a repeat does not reload");
    assert!(h.c.is_serving(0));
}
