//! Kafka error codes the broker answers with, and the mapping from the log's typed errors.
//!
//! Codes are the protocol's (`org.apache.kafka.common.protocol.Errors`). Which one a client
//! sees decides what it does next (retry, refresh metadata, fail the record), so the mapping
//! follows what Apache Kafka answers in the same situation; LogValidator for batch errors.

use crate::log::{AppendError, ReadError};
use crate::record_batch::BatchError;

pub(super) const NONE: i16 = 0;
pub(super) const OFFSET_OUT_OF_RANGE: i16 = 1;
pub(super) const CORRUPT_MESSAGE: i16 = 2;
pub(super) const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
pub(super) const LEADER_NOT_AVAILABLE: i16 = 5;
pub(super) const NOT_LEADER_OR_FOLLOWER: i16 = 6;
pub(super) const REQUEST_TIMED_OUT: i16 = 7;
pub(super) const MESSAGE_TOO_LARGE: i16 = 10;
pub(super) const INVALID_TOPIC_EXCEPTION: i16 = 17;
pub(super) const NOT_ENOUGH_REPLICAS: i16 = 19;
pub(super) const NOT_ENOUGH_REPLICAS_AFTER_APPEND: i16 = 20;
pub(super) const INVALID_REQUIRED_ACKS: i16 = 21;
pub(super) const UNSUPPORTED_VERSION: i16 = 35;
pub(super) const TOPIC_ALREADY_EXISTS: i16 = 36;
pub(super) const NOT_CONTROLLER: i16 = 41;
pub(super) const INVALID_REQUEST: i16 = 42;
pub(super) const UNSUPPORTED_FOR_MESSAGE_FORMAT: i16 = 43;
pub(super) const KAFKA_STORAGE_ERROR: i16 = 56;
pub(super) const FETCH_SESSION_ID_NOT_FOUND: i16 = 70;
pub(super) const FENCED_LEADER_EPOCH: i16 = 74;
pub(super) const UNKNOWN_LEADER_EPOCH: i16 = 75;
pub(super) const UNSUPPORTED_COMPRESSION_TYPE: i16 = 76;
pub(super) const INVALID_RECORD: i16 = 87;

/// The code for a batch a producer sent that the log refused, as Kafka's LogValidator maps it.
pub(super) fn batch_error_code(error: &BatchError) -> i16 {
    match error {
        BatchError::CrcMismatch { .. }
        | BatchError::Truncated { .. }
        | BatchError::InvalidLength(_) => CORRUPT_MESSAGE,
        BatchError::TooLarge { .. } => MESSAGE_TOO_LARGE,
        BatchError::UnsupportedMagic(_) => UNSUPPORTED_FOR_MESSAGE_FORMAT,
        BatchError::UnknownCompression(_) => UNSUPPORTED_COMPRESSION_TYPE,
        BatchError::InvalidRecordCount(_)
        | BatchError::InvalidLastOffsetDelta(_)
        | BatchError::InvalidRecord(_) => INVALID_RECORD,
    }
}

/// The code for a refused append.
pub(super) fn append_error_code(error: &AppendError) -> i16 {
    match error {
        AppendError::InvalidBatch(e) => batch_error_code(e),
        // Retriable: the log is recovering or truncating and will serve shortly.
        AppendError::NotReady => NOT_LEADER_OR_FOLLOWER,
        AppendError::Storage | AppendError::LogFull => KAFKA_STORAGE_ERROR,
        // Retriable, so the producer backs off and tries again.
        AppendError::Overloaded => REQUEST_TIMED_OUT,
        // Only follower appends can mismatch; the follower fetches again.
        AppendError::OffsetMismatch { .. } => NOT_LEADER_OR_FOLLOWER,
    }
}

/// The code for a failed read, or `None` for one that should just return no data.
pub(super) fn read_error_code(error: &ReadError) -> Option<i16> {
    match error {
        ReadError::OffsetOutOfRange { .. } => Some(OFFSET_OUT_OF_RANGE),
        ReadError::Corrupt { .. } | ReadError::Storage => Some(KAFKA_STORAGE_ERROR),
        ReadError::NotReady => Some(NOT_LEADER_OR_FOLLOWER),
        // Too many reads in flight on this log: an empty answer makes the consumer fetch again.
        ReadError::Overloaded => None,
    }
}

/// A human explanation of a batch error, for the produce response's `error_message` (v8+).
pub(super) fn batch_error_message(error: &BatchError) -> String {
    error.to_string()
}
