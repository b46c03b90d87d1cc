//! Kafka error codes the group coordinator answers with, and the mapping from failed appends.
//!
//! Codes are the protocol's (`org.apache.kafka.common.protocol.Errors`). Which one a client
//! sees decides what it does next (rejoin, rediscover the coordinator, retry, give up), so each
//! refusal names the code Kafka's group coordinator gives in the same situation.

/// Success on the wire.
pub const NONE: i16 = 0;

/// Why the coordinator refused a group request. Each variant is one Kafka error code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum GroupError {
    /// An append failed in a way the client cannot act on (too large).
    UnknownServerError,
    /// The offset metadata string is longer than `offset.metadata.max.bytes`.
    OffsetMetadataTooLarge,
    /// The coordinator is loading the group's offsets partition.
    CoordinatorLoadInProgress,
    /// The coordinator cannot serve now (append failed for lack of replicas, overload, a
    /// group being deleted); the client retries.
    CoordinatorNotAvailable,
    /// This process does not lead the group's offsets partition.
    NotCoordinator,
    /// The request's generation is not the group's.
    IllegalGeneration,
    /// The member's protocol type or protocols do not match the group's.
    InconsistentGroupProtocol,
    /// The group id is empty or too long.
    InvalidGroupId,
    /// The member is not in the group.
    UnknownMemberId,
    /// The session timeout is outside `group.{min,max}.session.timeout.ms`.
    InvalidSessionTimeout,
    /// The group is rebalancing: rejoin.
    RebalanceInProgress,
    /// The group holds as many committed offsets as the coordinator keeps per group.
    InvalidCommitOffsetSize,
    /// The request version cannot be used for this group.
    UnsupportedVersion,
    /// The request is malformed.
    InvalidRequest,
    /// The group still has members.
    NonEmptyGroup,
    /// The group does not exist (or is not of the requested type).
    GroupIdNotFound,
    /// First join without a member id (KIP-394): rejoin with the id in the response.
    MemberIdRequired,
    /// The group is full.
    GroupMaxSizeReached,
    /// Another member holds this `group.instance.id` (KIP-345).
    FencedInstanceId,
    /// OffsetDelete of a topic the group is subscribed to.
    GroupSubscribedToTopic,
    /// An offset commit for the partition is pending (`require_stable`).
    UnstableOffsetCommit,
    /// KIP-848: the member epoch is not one the coordinator accepts; rejoin with epoch 0.
    FencedMemberEpoch,
    /// KIP-848: the instance id is still held by a member that did not leave.
    UnreleasedInstanceId,
    /// KIP-848: the requested server assignor does not exist.
    UnsupportedAssignor,
    /// KIP-848: an offset commit or fetch with an old member epoch.
    StaleMemberEpoch,
}

impl GroupError {
    /// The Kafka error code.
    pub const fn code(self) -> i16 {
        match self {
            GroupError::UnknownServerError => -1,
            GroupError::OffsetMetadataTooLarge => 12,
            GroupError::CoordinatorLoadInProgress => 14,
            GroupError::CoordinatorNotAvailable => 15,
            GroupError::NotCoordinator => 16,
            GroupError::IllegalGeneration => 22,
            GroupError::InconsistentGroupProtocol => 23,
            GroupError::InvalidGroupId => 24,
            GroupError::UnknownMemberId => 25,
            GroupError::InvalidSessionTimeout => 26,
            GroupError::RebalanceInProgress => 27,
            GroupError::InvalidCommitOffsetSize => 28,
            GroupError::UnsupportedVersion => 35,
            GroupError::InvalidRequest => 42,
            GroupError::NonEmptyGroup => 68,
            GroupError::GroupIdNotFound => 69,
            GroupError::MemberIdRequired => 79,
            GroupError::GroupMaxSizeReached => 81,
            GroupError::FencedInstanceId => 82,
            GroupError::GroupSubscribedToTopic => 86,
            GroupError::UnstableOffsetCommit => 88,
            GroupError::FencedMemberEpoch => 110,
            GroupError::UnreleasedInstanceId => 111,
            GroupError::UnsupportedAssignor => 112,
            GroupError::StaleMemberEpoch => 113,
        }
    }
}

/// The code of an outcome: [`NONE`] for success.
pub fn code_of(outcome: Result<(), GroupError>) -> i16 {
    match outcome {
        Ok(()) => NONE,
        Err(error) => error.code(),
    }
}

/// Why an append to `__consumer_offsets` failed, as the broker reports it. Each variant names
/// the partition-level error Kafka's append path would return.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppendError {
    /// NOT_LEADER_OR_FOLLOWER: this process lost leadership before the ISR had the records.
    NotLeader,
    /// NOT_ENOUGH_REPLICAS(_AFTER_APPEND): the ISR is below `min.insync.replicas`.
    NotEnoughReplicas,
    /// REQUEST_TIMED_OUT: the ISR did not acknowledge in time.
    TimedOut,
    /// KAFKA_STORAGE_ERROR: the partition's log failed.
    Storage,
    /// MESSAGE_TOO_LARGE / RECORD_LIST_TOO_LARGE: the batch exceeds the topic's limit.
    TooLarge,
}

impl AppendError {
    /// The error the client sees, as Kafka's group coordinator maps append errors
    /// (`GroupMetadataManager.appendGroupMetadataErrorToResponseError` and the service's
    /// `handleOperationException`).
    pub const fn group_error(self) -> GroupError {
        match self {
            AppendError::NotEnoughReplicas | AppendError::TimedOut => {
                GroupError::CoordinatorNotAvailable
            }
            AppendError::NotLeader | AppendError::Storage => GroupError::NotCoordinator,
            AppendError::TooLarge => GroupError::UnknownServerError,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The codes are the wire contract: a typo here makes clients take the wrong recovery path.
    #[test]
    fn codes_match_kafka() {
        let expected = [
            (GroupError::UnknownServerError, -1),
            (GroupError::CoordinatorLoadInProgress, 14),
            (GroupError::NotCoordinator, 16),
            (GroupError::IllegalGeneration, 22),
            (GroupError::UnknownMemberId, 25),
            (GroupError::RebalanceInProgress, 27),
            (GroupError::NonEmptyGroup, 68),
            (GroupError::GroupIdNotFound, 69),
            (GroupError::MemberIdRequired, 79),
            (GroupError::GroupMaxSizeReached, 81),
            (GroupError::FencedInstanceId, 82),
            (GroupError::GroupSubscribedToTopic, 86),
            (GroupError::FencedMemberEpoch, 110),
            (GroupError::StaleMemberEpoch, 113),
        ];
        for (error, code) in expected {
            assert_eq!(error.code(), code, "{error:?}");
        }
        assert_eq!(code_of(Ok(())), NONE);
        assert_eq!(
            AppendError::NotEnoughReplicas.group_error(),
            GroupError::CoordinatorNotAvailable
        );
        assert_eq!(
            AppendError::NotLeader.group_error(),
            GroupError::NotCoordinator
        );
    }
}
