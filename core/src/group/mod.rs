//! The group coordinator's building blocks: configuration, error codes, and the records of
//! `__consumer_offsets` in Kafka's own schemas (see `records`).

pub mod config;
pub mod errors;
pub mod records;

pub use config::{GroupConfig, ServerAssignor};
pub use errors::{AppendError, GroupError};
pub use records::{Assignment, OffsetsRecord};
