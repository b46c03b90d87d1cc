//! ListGroups, DescribeGroups, DeleteGroups.

use super::consumer::join_consumer;
use super::*;

const NONE: i16 = 0;

fn list(
    h: &mut Harness,
    version: i16,
    states: &[&str],
    types: &[&str],
) -> (i16, Vec<(String, String, String)>) {
    let request = ListGroupsRequest::default()
        .with_states_filter(states.iter().map(|s| sb(s)).collect())
        .with_types_filter(types.iter().map(|s| sb(s)).collect());
    let token = h.send(version, GroupRequestBody::ListGroups(request));
    let ResponseKind::ListGroups(r) = h.take(token) else {
        panic!()
    };
    let groups = r
        .groups
        .iter()
        .map(|g| {
            (
                g.group_id.as_str().to_owned(),
                g.group_state.as_str().to_owned(),
                g.protocol_type.as_str().to_owned(),
            )
        })
        .collect();
    (r.error_code, groups)
}

// ListGroups reports every group with Kafka's state names; v4 filters by state and v5 by type,
// case-insensitively; a partition still loading makes the answer COORDINATOR_LOAD_IN_PROGRESS.
#[test]
fn list_groups_states_types_and_loading() {
    let mut h = Harness::leading_none(GroupConfig {
        offsets_topic_num_partitions: 2,
        ..config()
    });
    let on = |p: i32, prefix: &str| {
        (0..)
            .map(|i| format!("{prefix}{i}"))
            .find(|g| offsets_partition_for(g, 2) == p)
            .unwrap()
    };
    let (stable, simple, modern) = (on(0, "s"), on(0, "e"), on(0, "k"));
    h.lead(0);
    h.stable_group(&stable, 1);
    let commit = h.commit(7, &simple, -1, "", &[("t", 0, 1)]);
    h.commit_codes(commit);
    h.topics(&[("t", 1, 2)]);
    join_consumer(&mut h, &modern, "m1", &["t"]);
    let (code, all) = list(&mut h, 5, &[], &[]);
    assert_eq!(code, NONE);
    assert_eq!(
        all,
        vec![
            (simple.clone(), "Empty".into(), "".into()),
            (modern.clone(), "Stable".into(), "consumer".into()),
            (stable.clone(), "Stable".into(), "consumer".into()),
        ]
    );
    let (_, only) = list(&mut h, 4, &["STABLE"], &[]);
    assert_eq!(only.len(), 2);
    let (_, only) = list(&mut h, 5, &[], &["Consumer"]);
    assert_eq!(only, vec![(modern, "Stable".into(), "consumer".into())]);
    let (_, v3) = list(&mut h, 3, &["Stable"], &[]);
    assert!(
        v3.len() == 3 && v3.iter().all(|(_, state, _)| state.is_empty()),
        "no states before v4"
    );
    h.lead_loading(1);
    assert_eq!(
        list(&mut h, 4, &[], &[]).0,
        GroupError::CoordinatorLoadInProgress.code()
    );
}

// DescribeGroups: an unknown group is Dead with no error before v6 and GROUP_ID_NOT_FOUND from
// v6 (KIP-1043); a KIP-848 group is not a classic group; a group not led here is
// NOT_COORDINATOR.
#[test]
fn describe_groups_unknown_and_other_protocol() {
    let mut h = Harness::new(config());
    h.topics(&[("t", 1, 1)]);
    join_consumer(&mut h, "modern", "m1", &["t"]);
    let describe = |h: &mut Harness, version: i16, group: &str| {
        let request = DescribeGroupsRequest::default().with_groups(vec![gid(group)]);
        let token = h.send(version, GroupRequestBody::DescribeGroups(request));
        let ResponseKind::DescribeGroups(r) = h.take(token) else {
            panic!()
        };
        let g = r.groups[0].clone();
        (
            g.error_code,
            g.group_state.as_str().to_owned(),
            g.error_message.map(|m| m.as_str().to_owned()),
        )
    };
    assert_eq!(describe(&mut h, 5, "none"), (NONE, "Dead".into(), None));
    let not_found = GroupError::GroupIdNotFound.code();
    assert_eq!(
        describe(&mut h, 6, "none"),
        (not_found, "".into(), Some("Group none not found.".into()))
    );
    assert_eq!(describe(&mut h, 6, "modern").0, not_found);
    h.resign(0);
    assert_eq!(
        describe(&mut h, 5, "none").0,
        GroupError::NotCoordinator.code()
    );
}

// DeleteGroups deletes only empty groups, answers once the tombstones are committed, and puts
// the group back if they are not.
#[test]
fn delete_groups_only_empty_and_after_the_isr() {
    let mut h = Harness::new(config());
    h.stable_group("busy", 1);
    for group in ["idle", "again"] {
        let commit = h.commit(7, group, -1, "", &[("t", 0, 1)]);
        h.commit_codes(commit);
    }
    h.auto_ack = false;
    let request = DeleteGroupsRequest::default().with_groups_names(vec![
        gid("busy"),
        gid("ghost"),
        gid("idle"),
    ]);
    let token = h.send(2, GroupRequestBody::DeleteGroups(request));
    assert!(!h.answered(token));
    assert_eq!(
        record_kinds(&h.appends[0].2),
        vec![("OffsetCommit", false), ("GroupMetadata", false)]
    );
    h.ack();
    let ResponseKind::DeleteGroups(r) = h.take(token) else {
        panic!()
    };
    let codes: Vec<i16> = r.results.iter().map(|g| g.error_code).collect();
    let expected = vec![
        GroupError::NonEmptyGroup.code(),
        GroupError::GroupIdNotFound.code(),
        NONE,
    ];
    assert_eq!(codes, expected);
    assert!(h.c.group_summary("idle").is_none());
    let request = DeleteGroupsRequest::default().with_groups_names(vec![gid("again")]);
    let token = h.send(2, GroupRequestBody::DeleteGroups(request));
    h.fail(AppendError::NotEnoughReplicas);
    let ResponseKind::DeleteGroups(r) = h.take(token) else {
        panic!()
    };
    assert_eq!(
        r.results[0].error_code,
        GroupError::CoordinatorNotAvailable.code()
    );
    assert_eq!(
        h.fetch("again", "t", 0, false).map(|a| a.0),
        Ok(1),
        "restored with its offsets"
    );
    h.move_coordinator(0);
    assert!(
        h.c.group_summary("idle").is_none(),
        "the deletion is in the log"
    );
    assert!(h.c.group_summary("again").is_some());
}
