//! KIP-848 consumer groups: ConsumerGroupHeartbeat and ConsumerGroupDescribe.

use super::*;
use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;

const NONE: i16 = 0;

/// A heartbeat as a test writes it.
#[derive(Clone)]
pub(crate) struct Beat<'a> {
    pub group: &'a str,
    pub member: &'a str,
    pub epoch: i32,
    pub instance: Option<&'a str>,
    pub topics: Option<&'a [&'a str]>,
    pub owned: Option<Assignment>,
    pub rebalance_ms: i32,
    pub assignor: Option<&'a str>,
}

impl<'a> Beat<'a> {
    /// A join (epoch 0) subscribing to `topics`.
    pub fn join(group: &'a str, member: &'a str, topics: &'a [&'a str]) -> Beat<'a> {
        Beat {
            group,
            member,
            epoch: 0,
            instance: None,
            topics: Some(topics),
            owned: Some(Assignment::new()),
            rebalance_ms: 30_000,
            assignor: None,
        }
    }

    /// A regular heartbeat at `epoch` reporting `owned`.
    pub fn at(group: &'a str, member: &'a str, epoch: i32, owned: Assignment) -> Beat<'a> {
        Beat {
            group,
            member,
            epoch,
            instance: None,
            topics: None,
            owned: Some(owned),
            rebalance_ms: -1,
            assignor: None,
        }
    }

    pub fn request(&self) -> ConsumerGroupHeartbeatRequest {
        let owned = self.owned.as_ref().map(|o| {
            o.iter()
                .map(|(t, ps)| {
                    TopicPartitions::default()
                        .with_topic_id(*t)
                        .with_partitions(ps.iter().copied().collect())
                })
                .collect()
        });
        ConsumerGroupHeartbeatRequest::default()
            .with_group_id(gid(self.group))
            .with_member_id(sb(self.member))
            .with_member_epoch(self.epoch)
            .with_instance_id(self.instance.map(sb))
            .with_rebalance_timeout_ms(self.rebalance_ms)
            .with_subscribed_topic_names(
                self.topics
                    .map(|ts| ts.iter().map(|t| TopicName(sb(t))).collect()),
            )
            .with_server_assignor(self.assignor.map(sb))
            .with_topic_partitions(owned)
    }
}

/// What a member learnt: (error, member id, epoch, assignment if sent).
pub(crate) type Answer = (i16, String, i32, Option<Assignment>);

pub(crate) fn answer_of(body: ResponseKind) -> Answer {
    let ResponseKind::ConsumerGroupHeartbeat(r) = body else {
        panic!("{body:?}")
    };
    let assignment = r.assignment.map(|a| {
        let mut out = Assignment::new();
        for tp in a.topic_partitions {
            out.entry(tp.topic_id).or_default().extend(tp.partitions);
        }
        out
    });
    let member = r
        .member_id
        .map(|m| m.as_str().to_owned())
        .unwrap_or_default();
    (r.error_code, member, r.member_epoch, assignment)
}

pub(crate) fn beat(h: &mut Harness, b: &Beat) -> Answer {
    let token = h.send(1, GroupRequestBody::ConsumerGroupHeartbeat(b.request()));
    answer_of(h.take(token))
}

/// Joins `member` and returns its epoch and assignment.
pub(crate) fn join_consumer(
    h: &mut Harness,
    group: &str,
    member: &str,
    topics: &[&str],
) -> (i32, Assignment) {
    let (error, _, epoch, assignment) = beat(h, &Beat::join(group, member, topics));
    assert_eq!(error, NONE, "{member} joins");
    (epoch, assignment.expect("a join gets its assignment"))
}

fn parts(topic: u8, ps: &[i32]) -> Assignment {
    Assignment::from([(topic_id(topic), ps.iter().copied().collect())])
}

fn count(a: &Assignment) -> usize {
    a.values().map(BTreeSet::len).sum()
}

/// No partition is owned by two members, counting unacknowledged revocations.
fn assert_disjoint(h: &Harness, group: &str) {
    let owned = h.c.consumer_ownership(group).unwrap_or_default();
    let mut seen = BTreeSet::new();
    for assignment in owned.values() {
        for (t, ps) in assignment {
            for p in ps {
                assert!(seen.insert((*t, *p)), "{t}-{p} owned twice: {owned:?}");
            }
        }
    }
}

// A first member gets every partition once its records are committed, in Kafka's record
// order: subscription, subscription metadata, group epoch, target, target epoch, current.
#[test]
fn first_member_gets_everything_after_the_isr() {
    let mut h = Harness::new(config());
    h.topics(&[("t", 1, 4)]);
    h.auto_ack = false;
    let token = h.send(
        1,
        GroupRequestBody::ConsumerGroupHeartbeat(Beat::join("g", "m1", &["t"]).request()),
    );
    assert!(!h.answered(token));
    let kinds: Vec<&str> = record_kinds(&h.appends[0].2)
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        kinds,
        vec![
            "MemberMetadata",
            "PartitionMetadata",
            "ConsumerGroupMetadata",
            "TargetAssignmentMember",
            "TargetAssignmentMetadata",
            "CurrentMemberAssignment"
        ]
    );
    h.ack();
    let ResponseKind::ConsumerGroupHeartbeat(r) = h.take(token) else {
        panic!()
    };
    assert_eq!(
        (r.error_code, r.member_epoch, r.heartbeat_interval_ms),
        (NONE, 1, 5_000)
    );
    let answer = answer_of(ResponseKind::ConsumerGroupHeartbeat(r));
    assert_eq!(answer.3, Some(parts(1, &[0, 1, 2, 3])));
    assert_eq!(h.state("g"), "Stable");
    h.auto_ack = true;
    // Version 0 lets the coordinator pick the member id: Kafka's 22-character Uuid string.
    let request = Beat::join("g", "", &["t"]).request();
    let token = h.send(0, GroupRequestBody::ConsumerGroupHeartbeat(request));
    let (error, member, _, _) = answer_of(h.take(token));
    assert_eq!((error, member.len()), (NONE, 22));
}

// Revocation before reassignment: a partition moves to a new member only after its previous
// owner reported it no longer owns it; at no step do two members own a partition.
#[test]
fn partitions_move_only_after_revocation() {
    let mut h = Harness::new(config());
    h.topics(&[("t", 1, 4)]);
    join_consumer(&mut h, "g", "m1", &["t"]);
    let (error, _, epoch2, assignment) = beat(&mut h, &Beat::join("g", "m2", &["t"]));
    assert_eq!(
        (error, epoch2, assignment),
        (NONE, 2, Some(Assignment::new())),
        "m2 waits for m1"
    );
    assert_eq!(h.state("g"), "Reconciling");
    assert_disjoint(&h, "g");
    let (_, _, epoch, kept) = beat(&mut h, &Beat::at("g", "m1", 1, parts(1, &[0, 1, 2, 3])));
    let kept = kept.expect("the shrunk assignment is sent");
    assert_eq!(
        (epoch, count(&kept)),
        (1, 2),
        "m1 stays in its epoch until it revoked"
    );
    assert_disjoint(&h, "g");
    let (_, _, _, nothing) = beat(&mut h, &Beat::at("g", "m2", 2, Assignment::new()));
    assert_eq!(nothing, None, "still unreleased");
    let (_, _, epoch, same) = beat(&mut h, &Beat::at("g", "m1", 1, kept.clone()));
    assert_eq!((epoch, same), (2, None));
    let (_, _, epoch, got) = beat(&mut h, &Beat::at("g", "m2", 2, Assignment::new()));
    let got = got.expect("released partitions are assigned");
    assert_eq!((epoch, count(&got)), (2, 2));
    assert!(kept[&topic_id(1)].is_disjoint(&got[&topic_id(1)]));
    assert_disjoint(&h, "g");
    assert_eq!(h.state("g"), "Stable");
}

// Member epochs fence: a larger epoch, an unknown member, and a smaller epoch that is not the
// previous one with owned partitions inside the assignment.
#[test]
fn member_epochs_are_fenced() {
    let mut h = Harness::new(config());
    h.topics(&[("t", 1, 2)]);
    join_consumer(&mut h, "g", "m1", &["t"]);
    let fenced = GroupError::FencedMemberEpoch.code();
    assert_eq!(
        beat(&mut h, &Beat::at("g", "m1", 5, Assignment::new())).0,
        fenced
    );
    assert_eq!(
        beat(&mut h, &Beat::at("g", "m9", 1, Assignment::new())).0,
        GroupError::UnknownMemberId.code()
    );
    // The topic grows: m1 moves to epoch 2 (previous 1).
    h.topics(&[("t", 1, 3)]);
    let (_, _, epoch, _) = beat(&mut h, &Beat::at("g", "m1", 1, parts(1, &[0, 1])));
    assert_eq!(epoch, 2);
    // The answer with epoch 2 may have been lost: epoch 1 with owned partitions inside the
    // assignment is still accepted; with a partition outside it, fenced.
    assert_eq!(
        beat(&mut h, &Beat::at("g", "m1", 1, parts(1, &[0, 1]))).0,
        NONE
    );
    assert_eq!(
        beat(&mut h, &Beat::at("g", "m1", 1, parts(1, &[7]))).0,
        fenced
    );
    assert_eq!(
        beat(&mut h, &Beat::at("unknown", "m1", 1, Assignment::new())).0,
        GroupError::GroupIdNotFound.code()
    );
}

// A member whose session lapses is fenced; the others rebalance over its partitions.
#[test]
fn session_timeout_fences_a_member() {
    let mut h = Harness::new(config());
    h.topics(&[("t", 1, 4)]);
    let (_, a1) = join_consumer(&mut h, "g", "m1", &["t"]);
    beat(&mut h, &Beat::join("g", "m2", &["t"]));
    let (_, _, _, kept) = beat(&mut h, &Beat::at("g", "m1", 1, a1));
    let kept = kept.unwrap();
    beat(&mut h, &Beat::at("g", "m1", 1, kept.clone()));
    beat(&mut h, &Beat::at("g", "m2", 2, Assignment::new()));
    // m2's last heartbeat was just now: its session lapses in 45 s while m1 keeps beating.
    for _ in 0..8 {
        h.advance(5_000);
        assert_eq!(beat(&mut h, &Beat::at("g", "m1", 2, kept.clone())).0, NONE);
    }
    h.advance(5_000);
    assert!(h.events.iter().any(|e| matches!(e, GroupEvent::MemberRemoved { member, reason: "session timed out", .. } if member == "m2")));
    let (_, _, epoch, all) = beat(&mut h, &Beat::at("g", "m1", 2, kept));
    assert_eq!((epoch, all.map(|a| count(&a))), (3, Some(4)));
    assert_eq!(
        beat(&mut h, &Beat::at("g", "m2", 2, Assignment::new())).0,
        GroupError::UnknownMemberId.code()
    );
}

// A member that does not revoke within its rebalance timeout is fenced, and its partitions go
// to the member waiting for them.
#[test]
fn rebalance_timeout_fences_a_member_that_does_not_revoke() {
    let mut h = Harness::new(config());
    h.topics(&[("t", 1, 4)]);
    let (_, all) = join_consumer(&mut h, "g", "m1", &["t"]);
    beat(&mut h, &Beat::join("g", "m2", &["t"]));
    beat(&mut h, &Beat::at("g", "m1", 1, all.clone()));
    // m1 entered revocation just now with a 30 s rebalance timeout; it keeps beating without
    // revoking.
    for _ in 0..5 {
        h.advance(5_000);
        beat(&mut h, &Beat::at("g", "m1", 1, all.clone()));
        beat(&mut h, &Beat::at("g", "m2", 2, Assignment::new()));
        assert_disjoint(&h, "g");
    }
    h.advance(5_000);
    assert!(h.events.iter().any(|e| matches!(e, GroupEvent::MemberRemoved { member, reason: "did not revoke within its rebalance timeout", .. } if member == "m1")));
    let (_, _, _, got) = beat(&mut h, &Beat::at("g", "m2", 2, Assignment::new()));
    assert_eq!(got.map(|a| count(&a)), Some(4));
}

// Epoch -1 leaves. A static member leaving with -2 keeps its partitions until it rejoins under
// a new member id (and gets them back at once) or its session lapses; while it holds the
// instance id, another member claiming it is refused.
#[test]
fn leaving_and_static_members() {
    let mut h = Harness::new(config());
    h.topics(&[("t", 1, 2)]);
    join_consumer(&mut h, "g", "dyn", &["t"]);
    let (error, member, epoch, _) = beat(&mut h, &Beat::at("g", "dyn", -1, Assignment::new()));
    assert_eq!((error, member.as_str(), epoch), (NONE, "dyn", -1));
    assert!(h.c.group_summary("g").unwrap().members.is_empty());
    let join = Beat {
        instance: Some("i"),
        ..Beat::join("s", "s1", &["t"])
    };
    let (_, _, _, held) = beat(&mut h, &join);
    let held = held.unwrap();
    let leave = Beat {
        instance: Some("i"),
        ..Beat::at("s", "s1", -2, Assignment::new())
    };
    let (error, _, epoch, _) = beat(&mut h, &leave);
    assert_eq!((error, epoch), (NONE, -2));
    assert_eq!(
        h.c.consumer_ownership("s").unwrap()["s1"],
        held,
        "kept while away"
    );
    let back = Beat {
        instance: Some("i"),
        ..Beat::join("s", "s2", &["t"])
    };
    let (error, _, _, got) = beat(&mut h, &back);
    assert_eq!((error, got), (NONE, Some(held)));
    assert_eq!(
        h.c.group_summary("s").unwrap().members,
        vec!["s2".to_owned()]
    );
    let thief = Beat {
        instance: Some("i"),
        ..Beat::join("s", "s3", &["t"])
    };
    assert_eq!(
        beat(&mut h, &thief).0,
        GroupError::UnreleasedInstanceId.code()
    );
    let impostor = Beat {
        instance: Some("i"),
        ..Beat::at("s", "s3", 1, Assignment::new())
    };
    assert_eq!(
        beat(&mut h, &impostor).0,
        GroupError::FencedInstanceId.code()
    );
}

// Malformed heartbeats are refused with Kafka's INVALID_REQUEST messages; an unknown server
// assignor with UNSUPPORTED_ASSIGNOR.
#[test]
fn invalid_heartbeats_are_refused() {
    let mut h = Harness::new(config());
    let send = |h: &mut Harness, version: i16, r: ConsumerGroupHeartbeatRequest| {
        let token = h.send(version, GroupRequestBody::ConsumerGroupHeartbeat(r));
        let ResponseKind::ConsumerGroupHeartbeat(r) = h.take(token) else {
            panic!()
        };
        (
            r.error_code,
            r.error_message
                .map(|m| m.as_str().to_owned())
                .unwrap_or_default(),
        )
    };
    let invalid = GroupError::InvalidRequest.code();
    let ok = Beat::join("g", "m", &["t"]).request();
    let cases = [
        (1, ok.clone().with_member_id(sb("")), "MemberId can't be empty."),
        (1, ok.clone().with_group_id(gid("")), "GroupId can't be empty."),
        (1, ok.clone().with_instance_id(Some(sb(""))), "InstanceId can't be empty."),
        (1, ok.clone().with_rebalance_timeout_ms(-1), "RebalanceTimeoutMs must be provided in first request."),
        (1, ok.clone().with_topic_partitions(None), "TopicPartitions must be empty when (re-)joining."),
        (1, ok.clone().with_subscribed_topic_names(None), "Either SubscribedTopicNames or SubscribedTopicRegex must be non-null when (re-)joining."),
        (1, ok.clone().with_member_epoch(-2), "InstanceId can't be null."),
        (1, ok.clone().with_member_epoch(-3), "MemberEpoch is invalid."),
    ];
    for (version, request, message) in cases {
        assert_eq!(
            send(&mut h, version, request),
            (invalid, message.to_owned())
        );
    }
    let (code, _) = send(&mut h, 1, ok.with_server_assignor(Some(sb("sticky"))));
    assert_eq!(code, GroupError::UnsupportedAssignor.code());
}

// ConsumerGroupDescribe shows epochs, state, the assignor and each member's assignment and
// target with topic names; a classic group is not a consumer group.
#[test]
fn consumer_group_describe() {
    let mut h = Harness::new(config());
    h.topics(&[("t", 1, 2)]);
    let join = Beat {
        assignor: Some("range"),
        ..Beat::join("g", "m1", &["t"])
    };
    beat(&mut h, &join);
    h.stable_group("classic", 1);
    let request = ConsumerGroupDescribeRequest::default().with_group_ids(vec![
        gid("g"),
        gid("classic"),
        gid("none"),
    ]);
    let token = h.send(1, GroupRequestBody::ConsumerGroupDescribe(request));
    let ResponseKind::ConsumerGroupDescribe(r) = h.take(token) else {
        panic!()
    };
    let g = &r.groups[0];
    assert_eq!(
        (
            g.error_code,
            g.group_state.as_str(),
            g.group_epoch,
            g.assignment_epoch
        ),
        (NONE, "Stable", 1, 1)
    );
    assert_eq!(g.assignor_name.as_str(), "range");
    let m = &g.members[0];
    assert_eq!(
        (m.member_id.as_str(), m.member_epoch, m.member_type),
        ("m1", 1, 1)
    );
    assert_eq!(m.assignment.topic_partitions[0].topic_name.as_str(), "t");
    assert_eq!(m.assignment.topic_partitions[0].partitions, vec![0, 1]);
    assert_eq!(
        m.target_assignment.topic_partitions[0].partitions,
        vec![0, 1]
    );
    let not_found = GroupError::GroupIdNotFound.code();
    assert_eq!(r.groups[1].error_code, not_found);
    assert_eq!(
        r.groups[1].error_message.as_ref().unwrap().as_str(),
        "Group classic is not a consumer group."
    );
    assert_eq!(r.groups[2].error_code, not_found);
}

// Offset commits of KIP-848 members carry the member epoch (OffsetCommit v9+): a stale epoch is
// STALE_MEMBER_EPOCH, an older version UNSUPPORTED_VERSION.
#[test]
fn offset_commits_check_the_member_epoch() {
    let mut h = Harness::new(config());
    h.topics(&[("t", 1, 1)]);
    join_consumer(&mut h, "g", "m1", &["t"]);
    let ok = h.commit(9, "g", 1, "m1", &[("t", 0, 5)]);
    assert_eq!(h.commit_codes(ok), vec![NONE]);
    let stale = h.commit(9, "g", 0, "m1", &[("t", 0, 6)]);
    assert_eq!(
        h.commit_codes(stale),
        vec![GroupError::StaleMemberEpoch.code()]
    );
    let old = h.commit(8, "g", 1, "m1", &[("t", 0, 6)]);
    assert_eq!(
        h.commit_codes(old),
        vec![GroupError::UnsupportedVersion.code()]
    );
    let unknown = h.commit(9, "g", 1, "m9", &[("t", 0, 6)]);
    assert_eq!(
        h.commit_codes(unknown),
        vec![GroupError::UnknownMemberId.code()]
    );
    assert_eq!(h.fetch("g", "t", 0, false).map(|a| a.0), Ok(5));
}

// A failed write restores the group as it was and fails the group's later writes; those may
// still reach the log, so the group is rewritten, and a coordinator move then loads exactly
// the restored state.
#[test]
fn failed_write_rolls_back_and_the_log_agrees() {
    let mut h = Harness::new(config());
    h.topics(&[("t", 1, 4)]);
    let (_, all) = join_consumer(&mut h, "g", "m1", &["t"]);
    let before = h.c.consumer_ownership("g").unwrap();
    h.auto_ack = false;
    let t2 = h.send(
        1,
        GroupRequestBody::ConsumerGroupHeartbeat(Beat::join("g", "m2", &["t"]).request()),
    );
    let t1 = h.send(
        1,
        GroupRequestBody::ConsumerGroupHeartbeat(Beat::at("g", "m1", 1, all).request()),
    );
    assert_eq!(h.appends.len(), 2, "m2's join and m1's revocation");
    h.fail(AppendError::NotEnoughReplicas);
    let unavailable = GroupError::CoordinatorNotAvailable.code();
    assert_eq!(answer_of(h.take(t2)).0, unavailable);
    assert_eq!(answer_of(h.take(t1)).0, unavailable);
    assert_eq!(h.c.consumer_ownership("g").unwrap(), before);
    assert_eq!(h.appends.len(), 2, "the voided write and the rewrite");
    h.ack_all();
    h.move_coordinator(0);
    assert_eq!(h.c.consumer_ownership("g").unwrap(), before);
    assert_eq!(
        h.c.group_summary("g").unwrap().members,
        vec!["m1".to_owned()]
    );
    // A failed first write of a new group leaves no group.
    let t = h.send(
        1,
        GroupRequestBody::ConsumerGroupHeartbeat(Beat::join("new", "x", &["t"]).request()),
    );
    h.fail(AppendError::NotLeader);
    assert_eq!(answer_of(h.take(t)).0, GroupError::NotCoordinator.code());
    assert!(h
        .c
        .group_summary("new")
        .is_none_or(|s| s.members.is_empty()));
}

// New partitions of a subscribed topic bump the group epoch on the next heartbeat.
#[test]
fn topic_growth_bumps_the_group_epoch() {
    let mut h = Harness::new(config());
    h.topics(&[("t", 1, 2)]);
    let (epoch, owned) = join_consumer(&mut h, "g", "m1", &["t"]);
    h.topics(&[("t", 1, 4), ("u", 2, 1)]);
    let (_, _, next, got) = beat(&mut h, &Beat::at("g", "m1", epoch, owned));
    assert_eq!((next, got.map(|a| count(&a))), (epoch + 1, Some(4)));
}

// The range assignor gives contiguous ranges by member id, once members ask for it.
#[test]
fn range_assignor_on_request() {
    let mut h = Harness::new(config());
    h.topics(&[("t", 1, 5)]);
    let join = |m| Beat {
        assignor: Some("range"),
        ..Beat::join("g", m, &["t"])
    };
    let (_, all) = {
        let (_, _, e, a) = beat(&mut h, &join("a"));
        (e, a.unwrap())
    };
    beat(&mut h, &join("b"));
    let (_, _, _, kept) = beat(&mut h, &Beat::at("g", "a", 1, all));
    assert_eq!(kept, Some(parts(1, &[0, 1, 2])));
    beat(&mut h, &Beat::at("g", "a", 1, parts(1, &[0, 1, 2])));
    let (_, _, _, got) = beat(&mut h, &Beat::at("g", "b", 2, Assignment::new()));
    assert_eq!(got, Some(parts(1, &[3, 4])));
}

// A coordinator move reloads a reconciled group exactly; members carry on at their epochs.
#[test]
fn coordinator_move_reloads_the_group() {
    let mut h = Harness::new(config());
    h.topics(&[("t", 1, 4)]);
    let (_, all) = join_consumer(&mut h, "g", "m1", &["t"]);
    beat(&mut h, &Beat::join("g", "m2", &["t"]));
    let (_, _, _, kept) = beat(&mut h, &Beat::at("g", "m1", 1, all));
    let kept = kept.unwrap();
    let ownership = h.c.consumer_ownership("g").unwrap();
    let summary = h.c.group_summary("g").unwrap();
    h.move_coordinator(0);
    assert_eq!(h.c.consumer_ownership("g").unwrap(), ownership);
    assert_eq!(h.c.group_summary("g").unwrap(), summary);
    let (error, _, epoch, _) = beat(&mut h, &Beat::at("g", "m1", 1, kept));
    assert_eq!((error, epoch), (NONE, 2));
}

// A group id has one protocol while it has members: a classic JoinGroup to a live consumer
// group is INCONSISTENT_GROUP_PROTOCOL, a consumer heartbeat to a live classic group
// GROUP_ID_NOT_FOUND. An empty group of the other kind is replaced, offsets kept.
#[test]
fn protocols_do_not_mix_but_empty_groups_convert() {
    let mut h = Harness::new(config());
    h.topics(&[("t", 1, 1)]);
    join_consumer(&mut h, "modern", "m1", &["t"]);
    let token = h.join(5, &JoinSpec::new("modern", ""));
    assert_eq!(
        h.join_answer(token).error_code,
        GroupError::InconsistentGroupProtocol.code()
    );
    h.stable_group("classic", 1);
    assert_eq!(
        beat(&mut h, &Beat::join("classic", "x", &["t"])).0,
        GroupError::GroupIdNotFound.code()
    );
    let commit = h.commit(7, "simple", -1, "", &[("t", 0, 3)]);
    h.commit_codes(commit);
    join_consumer(&mut h, "simple", "m1", &["t"]);
    assert!(h.c.group_summary("simple").unwrap().consumer_protocol);
    assert_eq!(h.fetch("simple", "t", 0, false).map(|a| a.0), Ok(3));
    h.move_coordinator(0);
    assert!(h.c.group_summary("simple").unwrap().consumer_protocol);
}

// group.consumer.max.size: a member beyond it is refused.
#[test]
fn consumer_group_max_size() {
    let mut h = Harness::new(GroupConfig {
        consumer_max_size: 1,
        ..config()
    });
    h.topics(&[("t", 1, 1)]);
    join_consumer(&mut h, "g", "m1", &["t"]);
    assert_eq!(
        beat(&mut h, &Beat::join("g", "m2", &["t"])).0,
        GroupError::GroupMaxSizeReached.code()
    );
}
