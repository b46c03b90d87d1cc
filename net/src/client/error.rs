//! The client's closed error enum.

use crate::codec::{EncodeError, ResponseError};
use crate::frame::FrameError;
use kafka_protocol::error::ResponseError as KafkaCode;
use kafka_protocol::messages::ApiKey;
use seedlog_core::record_batch::BatchError;
use std::fmt;

/// Why a client call failed, grouped by who is at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientError {
    /// The broker answered with a Kafka error code. The code is kept as sent, so callers can
    /// match on it (see [`ClientError::kafka_code`]) and the Jepsen history can record it.
    Kafka {
        /// The Kafka error code (never 0).
        code: i16,
        /// The broker's error message, if it sent one.
        message: Option<String>,
    },
    /// No broker could be reached during bootstrap or reconnection.
    Connect {
        /// The addresses tried.
        addresses: Vec<String>,
        /// The last IO error seen.
        detail: String,
    },
    /// The connection failed or closed while the request was outstanding. The request may or
    /// may not have been applied by the broker.
    ConnectionClosed {
        /// What ended the connection.
        detail: String,
    },
    /// No response arrived within the request timeout. As in the Java client, the connection is
    /// closed; the request may or may not have been applied.
    Timeout {
        /// The API of the request that timed out.
        api_key: ApiKey,
    },
    /// The broker supports no version of this API that the client can speak.
    UnsupportedVersion {
        /// The API.
        api_key: ApiKey,
    },
    /// The broker's bytes could not be parsed (the broker's fault).
    BrokerMisbehaved {
        /// What was wrong.
        detail: String,
    },
    /// The requested topic or partition is not in the cluster metadata.
    UnknownTopicOrPartition {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
    },
    /// The partition has no leader right now (an election is in progress).
    LeaderNotAvailable {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
    },
    /// The caller asked for something the client cannot express (the caller's fault).
    InvalidArgument {
        /// What was wrong.
        detail: String,
    },
}

impl ClientError {
    /// The error code if this is a Kafka error, as `kafka-protocol`'s typed code.
    pub fn kafka_code(&self) -> Option<KafkaCode> {
        match self {
            ClientError::Kafka { code, .. } => KafkaCode::try_from_code(*code),
            _ => None,
        }
    }

    /// Whether retrying the same call may succeed: retriable Kafka errors, timeouts, closed
    /// connections and leaderless partitions. Retrying a produce after a timeout or a closed
    /// connection may duplicate it.
    pub fn is_retriable(&self) -> bool {
        match self {
            ClientError::Kafka { code, .. } => {
                KafkaCode::try_from_code(*code).is_some_and(|c| c.is_retriable())
            }
            ClientError::Connect { .. }
            | ClientError::ConnectionClosed { .. }
            | ClientError::Timeout { .. }
            | ClientError::LeaderNotAvailable { .. } => true,
            _ => false,
        }
    }

    /// The error for a non-zero Kafka error code, or `Ok` for 0.
    pub(crate) fn check(code: i16, message: Option<&str>) -> Result<(), ClientError> {
        if code == 0 {
            return Ok(());
        }
        Err(ClientError::Kafka {
            code,
            message: message.map(str::to_owned),
        })
    }

    pub(crate) fn misbehaved(detail: impl Into<String>) -> ClientError {
        ClientError::BrokerMisbehaved {
            detail: detail.into(),
        }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Kafka { code, message } => {
                let name = KafkaCode::try_from_code(*code)
                    .map(|c| c.to_string())
                    .unwrap_or_default();
                write!(f, "kafka error {code} {name}")?;
                match message {
                    Some(message) => write!(f, ": {message}"),
                    None => Ok(()),
                }
            }
            ClientError::Connect { addresses, detail } => {
                write!(f, "cannot connect to {addresses:?}: {detail}")
            }
            ClientError::ConnectionClosed { detail } => write!(f, "connection closed: {detail}"),
            ClientError::Timeout { api_key } => write!(f, "{api_key:?} request timed out"),
            ClientError::UnsupportedVersion { api_key } => {
                write!(
                    f,
                    "broker supports no version of {api_key:?} this client speaks"
                )
            }
            ClientError::BrokerMisbehaved { detail } => write!(f, "broker misbehaved: {detail}"),
            ClientError::UnknownTopicOrPartition { topic, partition } => {
                write!(f, "unknown topic or partition {topic}-{partition}")
            }
            ClientError::LeaderNotAvailable { topic, partition } => {
                write!(f, "no leader for {topic}-{partition}")
            }
            ClientError::InvalidArgument { detail } => write!(f, "invalid argument: {detail}"),
        }
    }
}

impl std::error::Error for ClientError {}

impl From<EncodeError> for ClientError {
    fn from(error: EncodeError) -> ClientError {
        ClientError::InvalidArgument {
            detail: error.to_string(),
        }
    }
}

impl From<ResponseError> for ClientError {
    fn from(error: ResponseError) -> ClientError {
        ClientError::misbehaved(error.to_string())
    }
}

impl From<FrameError> for ClientError {
    fn from(error: FrameError) -> ClientError {
        ClientError::misbehaved(error.to_string())
    }
}

impl From<BatchError> for ClientError {
    fn from(error: BatchError) -> ClientError {
        ClientError::misbehaved(format!("record batch: {error}"))
    }
}
