//! The group coordinator's configuration: Kafka's names, Kafka's defaults.

use crate::constants::*;
use crate::time::Duration;

/// A KIP-848 server-side assignor (`group.consumer.assignors`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ServerAssignor {
    /// `uniform`: balanced and sticky (Kafka's default).
    Uniform,
    /// `range`: contiguous ranges per topic, co-partitioned across topics.
    Range,
}

impl ServerAssignor {
    /// The name clients send in `server_assignor`.
    pub const fn name(self) -> &'static str {
        match self {
            ServerAssignor::Uniform => "uniform",
            ServerAssignor::Range => "range",
        }
    }

    /// The assignor with this name.
    pub fn parse(name: &str) -> Option<ServerAssignor> {
        match name {
            "uniform" => Some(ServerAssignor::Uniform),
            "range" => Some(ServerAssignor::Range),
            _ => None,
        }
    }
}

/// The coordinator's settings. Every field has Kafka's default (see [`GroupConfig::default`]),
/// except that the group size limits are capped by [`GROUP_MEMBERS_MAX`].
#[derive(Clone, Debug)]
pub struct GroupConfig {
    /// `offsets.topic.num.partitions`.
    pub offsets_topic_num_partitions: i32,
    /// `group.min.session.timeout.ms`.
    pub group_min_session_timeout: Duration,
    /// `group.max.session.timeout.ms`.
    pub group_max_session_timeout: Duration,
    /// `group.initial.rebalance.delay.ms`: how long the first rebalance of an empty group waits
    /// for more members.
    pub group_initial_rebalance_delay: Duration,
    /// `group.max.size` for classic groups.
    pub group_max_size: usize,
    /// How long a new classic member's JoinGroup may wait for the rebalance before the member
    /// is dropped (Kafka's `NewMemberJoinTimeoutMs`, 5 minutes).
    pub group_new_member_join_timeout: Duration,
    /// `offsets.retention.ms`.
    pub offsets_retention: Duration,
    /// `offsets.retention.check.interval.ms`.
    pub offsets_retention_check_interval: Duration,
    /// `offset.metadata.max.bytes`.
    pub offset_metadata_max_bytes: u32,
    /// `group.consumer.session.timeout.ms` (KIP-848 groups).
    pub consumer_session_timeout: Duration,
    /// `group.consumer.heartbeat.interval.ms` (KIP-848 groups).
    pub consumer_heartbeat_interval: Duration,
    /// `group.consumer.max.size`.
    pub consumer_max_size: usize,
    /// The first of `group.consumer.assignors`: used when no member names one.
    pub consumer_default_assignor: ServerAssignor,
}

impl Default for GroupConfig {
    fn default() -> GroupConfig {
        GroupConfig {
            offsets_topic_num_partitions: OFFSETS_TOPIC_PARTITIONS_DEFAULT,
            group_min_session_timeout: Duration::from_millis(6_000),
            group_max_session_timeout: Duration::from_millis(1_800_000),
            group_initial_rebalance_delay: Duration::from_millis(3_000),
            group_max_size: GROUP_MEMBERS_MAX,
            group_new_member_join_timeout: Duration::from_millis(300_000),
            offsets_retention: Duration::from_millis(7 * 24 * 3_600_000),
            offsets_retention_check_interval: Duration::from_millis(600_000),
            offset_metadata_max_bytes: OFFSET_METADATA_BYTES_DEFAULT,
            consumer_session_timeout: Duration::from_millis(45_000),
            consumer_heartbeat_interval: Duration::from_millis(5_000),
            consumer_max_size: GROUP_MEMBERS_MAX,
            consumer_default_assignor: ServerAssignor::Uniform,
        }
    }
}

impl GroupConfig {
    /// Panics on a configuration no coordinator can run with; the driver validates user input
    /// before building one.
    pub fn assert_valid(&self) {
        assert!(
            (1..=OFFSETS_TOPIC_PARTITIONS_MAX).contains(&self.offsets_topic_num_partitions),
            "offsets.topic.num.partitions out of range"
        );
        assert!(self.group_min_session_timeout <= self.group_max_session_timeout);
        assert!((1..=GROUP_MEMBERS_MAX).contains(&self.group_max_size));
        assert!((1..=GROUP_MEMBERS_MAX).contains(&self.consumer_max_size));
        assert!(self.offset_metadata_max_bytes <= OFFSET_METADATA_BYTES_LIMIT);
        assert!(self.offsets_retention_check_interval > Duration::ZERO);
        assert!(self.consumer_session_timeout > Duration::ZERO);
        assert!(self.consumer_heartbeat_interval.as_millis() <= i32::MAX as u64);
    }
}
