//! The Kafka APIs and versions this broker implements, as advertised in ApiVersions (KIP-35).
//!
//! A client picks, for every API, the highest version that both it and the broker support, so
//! the table must list exactly what the broker can serve: advertising a version we cannot honour
//! turns into a client-visible protocol error much later. Every range here lies within what
//! `kafka-protocol` 0.18 can decode and encode, and the request guard in the guard (`guard.rs`) covers
//! each version (a test checks both).
//!
//! Why these ranges:
//! - ApiVersions 0–4: v0 is the fallback every client understands; v3 is what librdkafka sends
//!   first (header v2, client software name); v4 only changes feature semantics we never emit.
//! - Metadata 1–12: v0 means "all topics" for an empty list, which we do not special-case;
//!   v13 (top-level error code, KIP-1102) is newer than the clients we target.
//! - Produce 3–11 and Fetch 4–12: the lowest versions that carry v2 record batches (KIP-98),
//!   up to the last versions that name topics by name; Fetch 13+ and Produce 13 name topics by
//!   id (KIP-516), which the broker does not track yet. Produce 12 signals transaction
//!   protocol v2 (KIP-890 part 2), which we do not implement.
//! - ListOffsets 1–7: v7 adds the max-timestamp spec (KIP-734); v8+ add tiered-storage specs.
//! - CreateTopics 2–7, DeleteTopics 1–6, DescribeConfigs 1–4: the whole range Kafka 4 accepts.
//! - DescribeCluster 0–1: v2 adds fenced-broker listing, which needs controller support.
//!
//! librdkafka 2.0.2 (Debian bookworm's kcat) and current librdkafka both negotiate within these
//! ranges: they need Produce ≥ 3 and Fetch ≥ 4 for message format v2.

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse};

/// One row of the ApiVersions table: an API and the inclusive version range we serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SupportedApi {
    /// The API.
    pub api_key: ApiKey,
    /// Lowest version served, inclusive.
    pub min_version: i16,
    /// Highest version served, inclusive.
    pub max_version: i16,
}

impl SupportedApi {
    /// Whether `version` lies in this API's range.
    pub fn contains(&self, version: i16) -> bool {
        self.min_version <= version && version <= self.max_version
    }
}

const fn api(api_key: ApiKey, min_version: i16, max_version: i16) -> SupportedApi {
    assert!(min_version <= max_version);
    SupportedApi {
        api_key,
        min_version,
        max_version,
    }
}

/// The APIs the broker implements and advertises, in API-key order.
pub const SUPPORTED_APIS: &[SupportedApi] = &[
    api(ApiKey::Produce, 3, 11),
    api(ApiKey::Fetch, 4, 12),
    api(ApiKey::ListOffsets, 1, 7),
    api(ApiKey::Metadata, 1, 12),
    api(ApiKey::ApiVersions, 0, 4),
    api(ApiKey::CreateTopics, 2, 7),
    api(ApiKey::DeleteTopics, 1, 6),
    api(ApiKey::DescribeConfigs, 1, 4),
    api(ApiKey::DescribeCluster, 0, 1),
];

/// The error code Kafka uses for a request version the broker does not support.
pub const UNSUPPORTED_VERSION: i16 = 35;

/// The row of [`SUPPORTED_APIS`] for `api_key`, or `None` if the broker does not implement it.
pub fn supported_api(api_key: ApiKey) -> Option<SupportedApi> {
    SUPPORTED_APIS
        .iter()
        .copied()
        .find(|row| row.api_key == api_key)
}

/// The ApiVersions response advertising [`SUPPORTED_APIS`] with the given top-level error code
/// (0, or [`UNSUPPORTED_VERSION`] when answering an ApiVersions version we do not serve).
///
/// The feature fields keep their defaults, and `kafka-protocol` (like Apache Kafka) never writes
/// a tagged field that holds its default, so the v3+ tagged-field section stays empty. Older
/// clients such as librdkafka 2.0.2 fail on tagged fields they do not expect there.
pub fn api_versions_response(error_code: i16) -> ApiVersionsResponse {
    let api_keys = SUPPORTED_APIS
        .iter()
        .map(|row| {
            ApiVersion::default()
                .with_api_key(row.api_key as i16)
                .with_min_version(row.min_version)
                .with_max_version(row.max_version)
        })
        .collect();
    ApiVersionsResponse::default()
        .with_error_code(error_code)
        .with_api_keys(api_keys)
}
