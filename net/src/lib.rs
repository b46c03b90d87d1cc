//! Seedlog's network layer: Kafka wire framing and codec, peer framing, and a Kafka client.
//!
//! Everything that turns bytes into typed messages is sans-IO and lives here, so the tokio
//! driver in `seedlog-node`, the turmoil tests and the simulator all share one codec:
//!
//! - [`frame`]: 4-byte length-prefixed framing with a size limit (`socket.request.max.bytes`).
//! - [`codec`]: Kafka request header parsing, API key/version dispatch, typed request decoding
//!   and typed response encoding on `kafka-protocol`, with errors that say who is at fault.
//! - [`apis`]: the [`SUPPORTED_APIS`] table the broker advertises in ApiVersions.
//! - [`peer`]: postcard frames for broker-to-broker messages.
//! - [`client`]: an async Kafka client for the CLI, the load generator and the Jepsen harness.
//!
//! A broker driver reads bytes into a [`FrameDecoder`], passes each frame to [`decode_request`],
//! hands the [`DecodedRequest`] to the state machine, and writes the frame
//! [`encode_response`] builds from its typed answer. A [`RequestError`] says, through
//! [`RequestError::reply`], whether to answer or to close the connection.
#![warn(missing_docs)]

pub mod apis;
pub mod client;
pub mod codec;
pub mod frame;
mod guard;
pub mod peer;

pub use apis::{api_versions_response, supported_api, SupportedApi, SUPPORTED_APIS};
pub use client::{Client, ClientConfig, ClientError};
pub use codec::{
    decode_request, decode_response, encode_request, encode_response, DecodedRequest, EncodeError,
    ErrorReply, Malformed, RequestError, ResponseContext, ResponseError,
};
pub use frame::{FrameDecoder, FrameError, SOCKET_REQUEST_MAX_BYTES_DEFAULT};
pub use kafka_protocol;
pub use peer::{
    encode_peer_frame, PeerFrame, PeerFrameDecoder, PeerFrameError, PeerHello,
    PEER_PROTOCOL_VERSION,
};

#[cfg(test)]
mod tests;
