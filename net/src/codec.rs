//! The Kafka request/response codec on top of `kafka-protocol`.
//!
//! Broker side: [`decode_request`] turns one frame (from [`crate::FrameDecoder`]) into a
//! [`DecodedRequest`] holding `kafka-protocol`'s typed [`RequestKind`], and [`encode_response`]
//! turns a typed [`ResponseKind`] back into a length-prefixed frame. Client side:
//! [`encode_request`] and [`decode_response`] do the mirror image.
//!
//! Decoding follows Apache Kafka's `SocketServer` order. The API key, API version and
//! correlation id sit at fixed offsets in every request header version, so they are read first;
//! an API we do not implement, or a version outside [`crate::SUPPORTED_APIS`], is reported before
//! the rest of the header is parsed, because its header layout may be one we do not know. Then the
//! request header is parsed at the version the API key and version dictate (v1, or v2 with tagged
//! fields for flexible versions, KIP-482), the body is checked by the guard (`guard.rs`) so that
//! `kafka-protocol` never pre-allocates from a hostile count, and finally decoded.
//!
//! Leniency follows Kafka's own parser, which reads a request's known fields and ignores the
//! rest: bytes after the body's last known field, and tagged fields with tags the version does
//! not define, are skipped, never fatal. Real clients depend on it: librdkafka 2.15 and later
//! send an all-topics Metadata v12 request with three bytes after its tagged-field section.
//! [`DecodedRequest`] reports how much was skipped, so the driver can log and count it.
//!
//! Errors say who is at fault. [`RequestError`] is always the client's fault, and
//! [`RequestError::reply`] says what Kafka does about it: answer an ApiVersions request of an
//! unsupported version with a v0 response carrying UNSUPPORTED_VERSION (KIP-511, so the client
//! can retry with a version we know), and close the connection for everything else.
//! [`EncodeError`] is always our fault: a response that cannot be expressed at the negotiated
//! version is a broker bug.

use crate::apis::{api_versions_response, supported_api, UNSUPPORTED_VERSION};
use crate::frame::{write_frame, FrameOverflow};
use crate::guard::{check_request_body, GuardError};
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable};
use std::fmt;

/// Bytes of the fixed request header prefix: api key (2), api version (2), correlation id (4).
const REQUEST_HEADER_FIXED_BYTES: usize = 8;

/// Kafka's INVALID_REQUEST error code, reported for requests we cannot parse.
pub const INVALID_REQUEST: i16 = 42;

/// A request decoded into `kafka-protocol`'s typed form.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedRequest {
    /// The parsed request header (correlation id, client id, tagged fields).
    pub header: RequestHeader,
    /// The API, already checked against [`crate::SUPPORTED_APIS`].
    pub api_key: ApiKey,
    /// The API version, already checked against [`crate::SUPPORTED_APIS`].
    pub api_version: i16,
    /// The typed request body.
    pub body: RequestKind,
    /// Bytes after the body's known fields, ignored as Kafka ignores them.
    pub trailing_bytes: u32,
    /// Tagged fields in the body with tags its version does not define, ignored as Kafka
    /// ignores them.
    pub unknown_tagged_fields: u32,
}

impl DecodedRequest {
    /// Whether the request carried anything the broker skipped (trailing bytes or unknown
    /// tagged fields): worth a debug line and a count, never an error.
    pub fn had_ignored_content(&self) -> bool {
        self.trailing_bytes > 0 || self.unknown_tagged_fields > 0
    }

    /// What [`encode_response`] needs to answer this request.
    pub fn response_context(&self) -> ResponseContext {
        ResponseContext {
            api_key: self.api_key,
            api_version: self.api_version,
            correlation_id: self.header.correlation_id,
        }
    }
}

/// The part of a request a response must echo: which API and version to encode, and the
/// correlation id the client matches responses by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseContext {
    /// The API of the request being answered.
    pub api_key: ApiKey,
    /// The version of the request being answered; the response uses the same version.
    pub api_version: i16,
    /// The request's correlation id.
    pub correlation_id: i32,
}

/// What in a request could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// The frame is shorter than the fixed header prefix.
    HeaderTruncated,
    /// The request header does not parse at the version the API dictates.
    Header,
    /// The body ended inside a field.
    BodyTruncated,
    /// A string, bytes or array length was negative.
    NegativeLength,
    /// An array claimed more elements than the frame could hold.
    CountTooLarge {
        /// The claimed element count.
        count: u64,
        /// The bytes that remained when the count was read.
        remaining: u64,
    },
    /// A known tagged field's content did not match its declared size.
    TaggedFieldSize,
    /// `kafka-protocol` rejected the body (bad UTF-8, null where not allowed, ...).
    Body,
}

/// Why a request frame could not be turned into a [`DecodedRequest`]. Always the client's fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestError {
    /// The API key is not one this broker implements (unknown to Kafka, or not in
    /// [`crate::SUPPORTED_APIS`]).
    UnknownApiKey {
        /// The API key as sent.
        api_key: i16,
        /// The request's correlation id.
        correlation_id: i32,
    },
    /// The API is implemented, but not at this version.
    UnsupportedVersion {
        /// The API.
        api_key: ApiKey,
        /// The version as sent.
        api_version: i16,
        /// The request's correlation id.
        correlation_id: i32,
    },
    /// The request could not be parsed.
    Malformed {
        /// The API, if it was read and supported.
        api_key: Option<ApiKey>,
        /// The correlation id, if the frame was long enough to hold one.
        correlation_id: Option<i32>,
        /// What failed to parse.
        reason: Malformed,
    },
}

/// What the broker should do about a [`RequestError`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorReply {
    /// Send this frame, then carry on serving the connection.
    Respond(Bytes),
    /// Close the connection, as Kafka does for requests it cannot interpret.
    Close,
}

impl RequestError {
    /// The Kafka error code that describes this error (UNSUPPORTED_VERSION or INVALID_REQUEST).
    pub fn error_code(&self) -> i16 {
        match self {
            RequestError::UnknownApiKey { .. } | RequestError::UnsupportedVersion { .. } => {
                UNSUPPORTED_VERSION
            }
            RequestError::Malformed { .. } => INVALID_REQUEST,
        }
    }

    /// The correlation id of the offending request, when the frame held one.
    pub fn correlation_id(&self) -> Option<i32> {
        match *self {
            RequestError::UnknownApiKey { correlation_id, .. }
            | RequestError::UnsupportedVersion { correlation_id, .. } => Some(correlation_id),
            RequestError::Malformed { correlation_id, .. } => correlation_id,
        }
    }

    /// What Kafka does: an ApiVersions request at an unsupported version gets a v0 response with
    /// UNSUPPORTED_VERSION and the full API table, so the client can retry at a version we
    /// serve; anything else closes the connection.
    pub fn reply(&self) -> ErrorReply {
        match *self {
            RequestError::UnsupportedVersion {
                api_key: ApiKey::ApiVersions,
                correlation_id,
                ..
            } => {
                let context = ResponseContext {
                    api_key: ApiKey::ApiVersions,
                    api_version: 0,
                    correlation_id,
                };
                let response =
                    ResponseKind::ApiVersions(api_versions_response(UNSUPPORTED_VERSION));
                match encode_response(&context, &response) {
                    Ok(frame) => ErrorReply::Respond(frame),
                    // The table always encodes at v0; a failure is a bug, and closing is safe.
                    Err(_) => ErrorReply::Close,
                }
            }
            _ => ErrorReply::Close,
        }
    }
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::UnknownApiKey { api_key, .. } => {
                write!(f, "unsupported API key {api_key}")
            }
            RequestError::UnsupportedVersion {
                api_key,
                api_version,
                ..
            } => {
                write!(f, "unsupported version {api_version} of {api_key:?}")
            }
            RequestError::Malformed {
                api_key, reason, ..
            } => {
                write!(f, "malformed request ({api_key:?}): {reason:?}")
            }
        }
    }
}

impl std::error::Error for RequestError {}

impl From<GuardError> for Malformed {
    fn from(error: GuardError) -> Malformed {
        match error {
            GuardError::Truncated => Malformed::BodyTruncated,
            GuardError::NegativeLength => Malformed::NegativeLength,
            GuardError::CountTooLarge { count, remaining } => {
                Malformed::CountTooLarge { count, remaining }
            }
            GuardError::TaggedFieldSize => Malformed::TaggedFieldSize,
            // Every supported API has a schema (checked by a test); treat a gap as unparseable.
            GuardError::NoSchema => Malformed::Body,
        }
    }
}

/// Decodes one request frame (the bytes after the length prefix).
pub fn decode_request(frame: Bytes) -> Result<DecodedRequest, RequestError> {
    let Some(fixed) = frame.get(..REQUEST_HEADER_FIXED_BYTES) else {
        let reason = Malformed::HeaderTruncated;
        return Err(RequestError::Malformed {
            api_key: None,
            correlation_id: None,
            reason,
        });
    };
    let raw_api_key = i16::from_be_bytes([fixed[0], fixed[1]]);
    let api_version = i16::from_be_bytes([fixed[2], fixed[3]]);
    let correlation_id = i32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]);
    let unknown = RequestError::UnknownApiKey {
        api_key: raw_api_key,
        correlation_id,
    };
    let api_key = ApiKey::try_from(raw_api_key).map_err(|()| unknown)?;
    let supported = supported_api(api_key).ok_or(unknown)?;
    if !supported.contains(api_version) {
        return Err(RequestError::UnsupportedVersion {
            api_key,
            api_version,
            correlation_id,
        });
    }
    let malformed = |reason| RequestError::Malformed {
        api_key: Some(api_key),
        correlation_id: Some(correlation_id),
        reason,
    };
    let mut rest = frame;
    let header_version = api_key.request_header_version(api_version);
    let header = RequestHeader::decode(&mut rest, header_version).map_err(|error| {
        tracing::debug!(?api_key, api_version, %error, "request header does not parse");
        malformed(Malformed::Header)
    })?;
    let shape = check_request_body(api_key, api_version, &rest).map_err(|e| malformed(e.into()))?;
    // The parser only ever sees the bytes the guard has walked; what follows is ignored.
    let trailing_bytes = u32::try_from(rest.len() - shape.len).unwrap_or(u32::MAX);
    let mut body_bytes = rest.split_to(shape.len);
    let body = RequestKind::decode(api_key, &mut body_bytes, api_version).map_err(|error| {
        tracing::debug!(?api_key, api_version, %error, "request body does not parse");
        malformed(Malformed::Body)
    })?;
    if !body_bytes.is_empty() {
        // The guard and the parser disagree about where the body ends: a schema bug, which
        // must not be papered over by reading on from a different position.
        tracing::debug!(
            ?api_key,
            api_version,
            left = body_bytes.len(),
            "parser stopped early"
        );
        return Err(malformed(Malformed::Body));
    }
    Ok(DecodedRequest {
        header,
        api_key,
        api_version,
        body,
        trailing_bytes,
        unknown_tagged_fields: shape.unknown_tagged_fields,
    })
}

/// Why a message could not be encoded. Always the encoder's fault (ours, or the caller's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EncodeError {
    /// The typed message is for a different API than the one it answers or is sent as.
    ApiMismatch {
        /// The API the context or header names.
        expected: ApiKey,
    },
    /// The message is for an API this crate does not encode.
    UnsupportedApi,
    /// `kafka-protocol` cannot express the message at this version (a field set that the
    /// version does not have, a version it does not know).
    NotEncodable {
        /// The API.
        api_key: ApiKey,
        /// The version asked for.
        api_version: i16,
        /// `kafka-protocol`'s explanation.
        detail: String,
    },
    /// The encoded message does not fit a frame.
    Overflow(FrameOverflow),
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::ApiMismatch { expected } => {
                write!(f, "message is not a {expected:?} message")
            }
            EncodeError::UnsupportedApi => {
                write!(f, "message of an API this codec does not encode")
            }
            EncodeError::NotEncodable {
                api_key,
                api_version,
                detail,
            } => {
                write!(f, "{api_key:?} v{api_version} cannot be encoded: {detail}")
            }
            EncodeError::Overflow(overflow) => {
                write!(f, "frame of {} bytes is too large", overflow.size)
            }
        }
    }
}

impl std::error::Error for EncodeError {}

impl From<FrameOverflow> for EncodeError {
    fn from(overflow: FrameOverflow) -> EncodeError {
        EncodeError::Overflow(overflow)
    }
}

fn not_encodable(api_key: ApiKey, api_version: i16) -> impl FnOnce(anyhow::Error) -> EncodeError {
    move |error| EncodeError::NotEncodable {
        api_key,
        api_version,
        detail: format!("{error:#}"),
    }
}

/// The API a typed request belongs to, for the APIs this crate encodes.
pub fn request_api_key(request: &RequestKind) -> Option<ApiKey> {
    Some(match request {
        RequestKind::Produce(_) => ApiKey::Produce,
        RequestKind::Fetch(_) => ApiKey::Fetch,
        RequestKind::ListOffsets(_) => ApiKey::ListOffsets,
        RequestKind::Metadata(_) => ApiKey::Metadata,
        RequestKind::ApiVersions(_) => ApiKey::ApiVersions,
        RequestKind::CreateTopics(_) => ApiKey::CreateTopics,
        RequestKind::DeleteTopics(_) => ApiKey::DeleteTopics,
        RequestKind::DescribeConfigs(_) => ApiKey::DescribeConfigs,
        RequestKind::DescribeCluster(_) => ApiKey::DescribeCluster,
        _ => return None,
    })
}

/// The API a typed response belongs to, for the APIs this crate encodes.
pub fn response_api_key(response: &ResponseKind) -> Option<ApiKey> {
    Some(match response {
        ResponseKind::Produce(_) => ApiKey::Produce,
        ResponseKind::Fetch(_) => ApiKey::Fetch,
        ResponseKind::ListOffsets(_) => ApiKey::ListOffsets,
        ResponseKind::Metadata(_) => ApiKey::Metadata,
        ResponseKind::ApiVersions(_) => ApiKey::ApiVersions,
        ResponseKind::CreateTopics(_) => ApiKey::CreateTopics,
        ResponseKind::DeleteTopics(_) => ApiKey::DeleteTopics,
        ResponseKind::DescribeConfigs(_) => ApiKey::DescribeConfigs,
        ResponseKind::DescribeCluster(_) => ApiKey::DescribeCluster,
        _ => return None,
    })
}

/// Encodes a response as one length-prefixed frame, with the response header version the API
/// and version dictate (always v0 for ApiVersions, so a client that does not yet know our
/// versions can read it).
pub fn encode_response(
    context: &ResponseContext,
    response: &ResponseKind,
) -> Result<Bytes, EncodeError> {
    let ResponseContext {
        api_key,
        api_version,
        correlation_id,
    } = *context;
    let kind = response_api_key(response).ok_or(EncodeError::UnsupportedApi)?;
    if kind != api_key {
        return Err(EncodeError::ApiMismatch { expected: api_key });
    }
    let header_version = api_key.response_header_version(api_version);
    debug_assert!(api_key != ApiKey::ApiVersions || header_version == 0);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let mut out = BytesMut::new();
    write_frame(&mut out, |out| {
        header
            .encode(out, header_version)
            .map_err(not_encodable(api_key, api_version))?;
        response
            .encode(out, api_version)
            .map_err(not_encodable(api_key, api_version))
    })?;
    Ok(out.freeze())
}

/// Encodes a request as one length-prefixed frame. The header names the API and version; the
/// request header version follows from them.
pub fn encode_request(header: &RequestHeader, request: &RequestKind) -> Result<Bytes, EncodeError> {
    let kind = request_api_key(request).ok_or(EncodeError::UnsupportedApi)?;
    let api_version = header.request_api_version;
    if kind as i16 != header.request_api_key {
        return Err(EncodeError::ApiMismatch { expected: kind });
    }
    let header_version = kind.request_header_version(api_version);
    let mut out = BytesMut::new();
    write_frame(&mut out, |out| {
        header
            .encode(out, header_version)
            .map_err(not_encodable(kind, api_version))?;
        request
            .encode(out, api_version)
            .map_err(not_encodable(kind, api_version))
    })?;
    Ok(out.freeze())
}

/// Why a response frame could not be decoded. Always the broker's fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseError {
    /// The frame is too short to hold a correlation id.
    Truncated,
    /// The response header does not parse.
    Header,
    /// The body does not parse at the version we asked for.
    Body,
    /// Bytes were left over after the body.
    TrailingBytes {
        /// How many bytes were left over.
        count: u64,
    },
}

impl fmt::Display for ResponseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed response: {self:?}")
    }
}

impl std::error::Error for ResponseError {}

/// The correlation id of a response frame: the first field of every response header version,
/// read before the client knows which request (and so which API) the frame answers.
pub fn response_correlation_id(frame: &[u8]) -> Result<i32, ResponseError> {
    let prefix = frame.get(..4).ok_or(ResponseError::Truncated)?;
    Ok(i32::from_be_bytes([
        prefix[0], prefix[1], prefix[2], prefix[3],
    ]))
}

/// The version a response body is encoded at: the request's, except that a broker answers an
/// ApiVersions request it cannot serve with a v0 body carrying UNSUPPORTED_VERSION (KIP-511).
/// The error code is the first body field in every version, so it can be read first.
fn body_version(api_key: ApiKey, api_version: i16, body: &[u8]) -> i16 {
    let error_code = body
        .get(..2)
        .map(|code| i16::from_be_bytes([code[0], code[1]]));
    if api_key == ApiKey::ApiVersions && error_code == Some(UNSUPPORTED_VERSION) {
        return 0;
    }
    api_version
}

/// Decodes a response frame for a request of `api_key` at `api_version`.
///
/// Unlike [`decode_request`] this does not run the allocation guard: the client trusts the
/// brokers it talks to not to send hostile array counts.
pub fn decode_response(
    frame: Bytes,
    api_key: ApiKey,
    api_version: i16,
) -> Result<(ResponseHeader, ResponseKind), ResponseError> {
    let mut rest = frame;
    let header_version = api_key.response_header_version(api_version);
    let header =
        ResponseHeader::decode(&mut rest, header_version).map_err(|_| ResponseError::Header)?;
    let api_version = body_version(api_key, api_version, &rest);
    let body = ResponseKind::decode(api_key, &mut rest, api_version).map_err(|error| {
        tracing::debug!(?api_key, api_version, %error, "response body does not parse");
        ResponseError::Body
    })?;
    if !rest.is_empty() {
        return Err(ResponseError::TrailingBytes {
            count: rest.len() as u64,
        });
    }
    Ok((header, body))
}
