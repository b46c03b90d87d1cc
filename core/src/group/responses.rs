//! Building responses: the error shapes of every group API, and turning a computed answer into
//! an error one when its append fails or its coordinator resigns.
//!
//! Responses are shaped for the request's version as Kafka's response classes shape them
//! (for example JoinGroup below v7 has a non-nullable protocol name, so a missing one is "";
//! LeaveGroup below v3 has only a top-level error, the first member error). kafka-protocol
//! refuses to encode a field the version does not have, so the shaping is not cosmetic.

use super::errors::{GroupError, NONE};
use super::GroupRequestBody;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponseTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

/// A string for the wire.
pub fn s(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_owned())
}

/// The answer to a request the coordinator refuses as a whole.
pub fn error_response(body: &GroupRequestBody, version: i16, error: GroupError) -> ResponseKind {
    let code = error.code();
    match body {
        GroupRequestBody::JoinGroup(r) => join_error(version, r.member_id.as_str(), error),
        GroupRequestBody::SyncGroup(_) => sync_error(error),
        GroupRequestBody::Heartbeat(_) => {
            ResponseKind::Heartbeat(HeartbeatResponse::default().with_error_code(code))
        }
        GroupRequestBody::LeaveGroup(r) => leave_error(version, r, error),
        GroupRequestBody::OffsetCommit(r) => {
            ResponseKind::OffsetCommit(commit_response(r, |_, _| code))
        }
        GroupRequestBody::OffsetFetch(r) => offset_fetch_error(version, r, code),
        GroupRequestBody::ListGroups(_) => {
            ResponseKind::ListGroups(ListGroupsResponse::default().with_error_code(code))
        }
        GroupRequestBody::DescribeGroups(r) => {
            let groups = r
                .groups
                .iter()
                .map(|g| described_group_error(g.as_str(), code, None))
                .collect();
            ResponseKind::DescribeGroups(DescribeGroupsResponse::default().with_groups(groups))
        }
        GroupRequestBody::DeleteGroups(r) => {
            let results = r
                .groups_names
                .iter()
                .map(|g| {
                    DeletableGroupResult::default()
                        .with_group_id(g.clone())
                        .with_error_code(code)
                })
                .collect();
            ResponseKind::DeleteGroups(DeleteGroupsResponse::default().with_results(results))
        }
        GroupRequestBody::OffsetDelete(_) => {
            ResponseKind::OffsetDelete(OffsetDeleteResponse::default().with_error_code(code))
        }
        GroupRequestBody::ConsumerGroupHeartbeat(_) => consumer_heartbeat_error(error, None),
        GroupRequestBody::ConsumerGroupDescribe(r) => {
            use kafka_protocol::messages::consumer_group_describe_response::DescribedGroup;
            let groups = r
                .group_ids
                .iter()
                .map(|g| {
                    DescribedGroup::default()
                        .with_group_id(g.clone())
                        .with_error_code(code)
                })
                .collect();
            let response = ConsumerGroupDescribeResponse::default().with_groups(groups);
            ResponseKind::ConsumerGroupDescribe(response)
        }
    }
}

/// A JoinGroup error (Kafka: generation -1, no protocol, the member id echoed).
pub fn join_error(_version: i16, member_id: &str, error: GroupError) -> ResponseKind {
    let response = JoinGroupResponse::default()
        .with_error_code(error.code())
        .with_member_id(s(member_id))
        .with_generation_id(-1)
        .with_protocol_name(Some(StrBytes::default()));
    ResponseKind::JoinGroup(response)
}

/// What a successful JoinGroup answers.
pub struct JoinAnswer<'a> {
    pub member_id: &'a str,
    pub generation_id: i32,
    pub protocol_type: Option<&'a str>,
    pub protocol_name: Option<&'a str>,
    pub leader: &'a str,
    pub members: Vec<JoinGroupResponseMember>,
    pub skip_assignment: bool,
}

/// A successful JoinGroup, shaped for `version`.
pub fn join_response(version: i16, answer: JoinAnswer) -> ResponseKind {
    let protocol_name = match answer.protocol_name {
        Some(name) => Some(s(name)),
        // Below v7 the protocol name is not nullable: Kafka sends "".
        None if version < 7 => Some(StrBytes::default()),
        None => None,
    };
    let protocol_type = if version >= 7 {
        answer.protocol_type.map(s)
    } else {
        None
    };
    let response = JoinGroupResponse::default()
        .with_member_id(s(answer.member_id))
        .with_generation_id(answer.generation_id)
        .with_protocol_type(protocol_type)
        .with_protocol_name(protocol_name)
        .with_leader(s(answer.leader))
        .with_skip_assignment(version >= 9 && answer.skip_assignment)
        .with_members(answer.members);
    ResponseKind::JoinGroup(response)
}

/// A SyncGroup error.
pub fn sync_error(error: GroupError) -> ResponseKind {
    ResponseKind::SyncGroup(SyncGroupResponse::default().with_error_code(error.code()))
}

/// A successful SyncGroup, shaped for `version` (protocol fields are v5+).
pub fn sync_response(
    version: i16,
    protocol_type: Option<&str>,
    protocol_name: Option<&str>,
    assignment: bytes::Bytes,
) -> ResponseKind {
    let (protocol_type, protocol_name) = if version >= 5 {
        (protocol_type.map(s), protocol_name.map(s))
    } else {
        (None, None)
    };
    let response = SyncGroupResponse::default()
        .with_protocol_type(protocol_type)
        .with_protocol_name(protocol_name)
        .with_assignment(assignment);
    ResponseKind::SyncGroup(response)
}

/// The members a LeaveGroup names: `members` from v3, the single `member_id` before.
pub fn leave_members(version: i16, request: &LeaveGroupRequest) -> Vec<MemberIdentity> {
    if version >= 3 {
        request.members.clone()
    } else {
        vec![MemberIdentity::default().with_member_id(request.member_id.clone())]
    }
}

/// A LeaveGroup answer: below v3 only a top-level error, the first failing member's.
pub fn leave_response(version: i16, top: i16, members: Vec<MemberResponse>) -> ResponseKind {
    let response = if version >= 3 {
        LeaveGroupResponse::default()
            .with_error_code(top)
            .with_members(members)
    } else {
        let first = members.iter().map(|m| m.error_code).find(|c| *c != NONE);
        let code = if top != NONE {
            top
        } else {
            first.unwrap_or(NONE)
        };
        LeaveGroupResponse::default().with_error_code(code)
    };
    ResponseKind::LeaveGroup(response)
}

fn leave_error(version: i16, request: &LeaveGroupRequest, error: GroupError) -> ResponseKind {
    let _ = request;
    leave_response(version, error.code(), Vec::new())
}

/// An OffsetCommit answer with `code(topic, partition)` for every partition of the request.
pub fn commit_response(
    request: &OffsetCommitRequest,
    code: impl Fn(&str, i32) -> i16,
) -> OffsetCommitResponse {
    let topics = request
        .topics
        .iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code(topic.name.as_str(), p.partition_index))
                })
                .collect();
            OffsetCommitResponseTopic::default()
                .with_name(topic.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

fn offset_fetch_error(version: i16, request: &OffsetFetchRequest, code: i16) -> ResponseKind {
    let mut response = OffsetFetchResponse::default();
    if version >= 8 {
        response.groups = request
            .groups
            .iter()
            .map(|g| {
                OffsetFetchResponseGroup::default()
                    .with_group_id(g.group_id.clone())
                    .with_error_code(code)
            })
            .collect();
    } else if version >= 2 {
        response.error_code = code;
    } else {
        // Version 1 has no top-level error: every requested partition carries it.
        let topics = request.topics.as_deref().unwrap_or_default();
        response.topics = topics
            .iter()
            .map(|t| {
                let partitions = t
                    .partition_indexes
                    .iter()
                    .map(|p| {
                        OffsetFetchResponsePartition::default()
                            .with_partition_index(*p)
                            .with_committed_offset(-1)
                            .with_metadata(Some(StrBytes::default()))
                            .with_error_code(code)
                    })
                    .collect();
                OffsetFetchResponseTopic::default()
                    .with_name(t.name.clone())
                    .with_partitions(partitions)
            })
            .collect();
    }
    ResponseKind::OffsetFetch(response)
}

/// A DescribeGroups entry for a group that cannot be described.
pub fn described_group_error(group_id: &str, code: i16, message: Option<String>) -> DescribedGroup {
    DescribedGroup::default()
        .with_group_id(GroupId(s(group_id)))
        .with_error_code(code)
        .with_error_message(message.map(StrBytes::from_string))
}

/// A ConsumerGroupHeartbeat error.
pub fn consumer_heartbeat_error(error: GroupError, message: Option<&str>) -> ResponseKind {
    let response = ConsumerGroupHeartbeatResponse::default()
        .with_error_code(error.code())
        .with_error_message(message.map(s));
    ResponseKind::ConsumerGroupHeartbeat(response)
}

/// Turns a computed answer into the error `code` (its append failed or its partition moved).
pub fn with_error(body: &mut ResponseKind, code: i16) {
    match body {
        ResponseKind::JoinGroup(r) => {
            r.error_code = code;
            r.generation_id = -1;
            r.members.clear();
            r.skip_assignment = false;
            r.protocol_type = None;
            r.protocol_name = Some(StrBytes::default());
            r.leader = StrBytes::default();
        }
        ResponseKind::SyncGroup(r) => {
            r.error_code = code;
            r.assignment = bytes::Bytes::new();
            r.protocol_type = None;
            r.protocol_name = None;
        }
        ResponseKind::Heartbeat(r) => r.error_code = code,
        ResponseKind::LeaveGroup(r) => {
            r.error_code = code;
            for member in &mut r.members {
                member.error_code = code;
            }
        }
        ResponseKind::OffsetCommit(r) => {
            for partition in r.topics.iter_mut().flat_map(|t| t.partitions.iter_mut()) {
                partition.error_code = code;
            }
        }
        ResponseKind::OffsetDelete(r) => {
            r.error_code = code;
            r.topics.clear();
        }
        ResponseKind::DeleteGroups(r) => {
            for result in &mut r.results {
                result.error_code = code;
            }
        }
        ResponseKind::ConsumerGroupHeartbeat(r) => {
            r.error_code = code;
            r.error_message = None;
            r.assignment = None;
        }
        // Reads are answered at once and never turned into errors afterwards.
        _ => debug_assert!(false, "no error form for {body:?}"),
    }
}

/// Sets the error of group `index` of a gathered response.
pub fn set_group_error(body: &mut ResponseKind, index: usize, code: i16) {
    if let ResponseKind::DeleteGroups(r) = body {
        if let Some(result) = r.results.get_mut(index) {
            result.error_code = code;
        }
    }
}

/// A LeaveGroup member answer.
pub fn member_response(identity: &MemberIdentity, code: i16) -> MemberResponse {
    MemberResponse::default()
        .with_member_id(identity.member_id.clone())
        .with_group_instance_id(identity.group_instance_id.clone())
        .with_error_code(code)
}
