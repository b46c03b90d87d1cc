use super::fixtures::{sample_request, sample_response};
use crate::apis::{api_versions_response, SUPPORTED_APIS, UNSUPPORTED_VERSION};
use crate::codec::{
    decode_request, decode_response, encode_request, encode_response, ErrorReply, Malformed,
    RequestError, ResponseContext,
};
use crate::frame::{FrameDecoder, SOCKET_REQUEST_MAX_BYTES_DEFAULT};
use crate::guard;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseKind};
use kafka_protocol::protocol::StrBytes;
use proptest::prelude::*;

fn header(api_key: ApiKey, version: i16, correlation_id: i32) -> RequestHeader {
    RequestHeader::default()
        .with_request_api_key(api_key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("rdkafka")))
}

/// Strips the length prefix from an encoded frame, checking it matches.
fn unframe(frame: &Bytes) -> Bytes {
    let mut decoder = FrameDecoder::new(SOCKET_REQUEST_MAX_BYTES_DEFAULT);
    decoder.feed(frame);
    let body = decoder
        .next_frame()
        .expect("valid frame")
        .expect("complete frame");
    assert_eq!(decoder.buffered_bytes(), 0);
    body
}

/// A raw request frame body: fixed header fields then `body` (header v1, null client id).
fn raw_request(api_key: i16, version: i16, correlation_id: i32, body: &[u8]) -> Bytes {
    let mut out = BytesMut::new();
    out.put_i16(api_key);
    out.put_i16(version);
    out.put_i32(correlation_id);
    out.put_i16(-1);
    out.put_slice(body);
    out.freeze()
}

/// Every API we advertise must decode at every advertised version, through the same path the
/// broker uses (guard included), and give back exactly what the client encoded.
#[test]
fn every_supported_request_round_trips_at_every_version() {
    for api in SUPPORTED_APIS {
        for version in api.min_version..=api.max_version {
            let request = sample_request(api.api_key, version);
            let sent = header(api.api_key, version, 7);
            let frame = encode_request(&sent, &request).expect("encodes");
            let decoded = decode_request(unframe(&frame))
                .unwrap_or_else(|error| panic!("{:?} v{version}: {error}", api.api_key));
            assert_eq!(decoded.body, request, "{:?} v{version}", api.api_key);
            assert_eq!(decoded.header, sent, "{:?} v{version}", api.api_key);
            assert_eq!(decoded.api_key, api.api_key);
            assert_eq!(decoded.api_version, version);
        }
    }
}

/// Every response the broker can send must reach the client intact at every advertised
/// version, with the header version Kafka prescribes.
#[test]
fn every_supported_response_round_trips_at_every_version() {
    for api in SUPPORTED_APIS {
        for version in api.min_version..=api.max_version {
            let response = sample_response(api.api_key, version);
            let context = ResponseContext {
                api_key: api.api_key,
                api_version: version,
                correlation_id: 99,
            };
            let frame = encode_response(&context, &response)
                .unwrap_or_else(|error| panic!("{:?} v{version}: {error}", api.api_key));
            let (header, decoded) =
                decode_response(unframe(&frame), api.api_key, version).expect("decodes");
            assert_eq!(header.correlation_id, 99);
            assert_eq!(decoded, response, "{:?} v{version}", api.api_key);
        }
    }
}

/// The table must stay inside what kafka-protocol can encode and what the guard has schemas
/// for; a version outside either would fail only when a client picked it.
#[test]
fn supported_apis_within_library_and_guard() {
    for api in SUPPORTED_APIS {
        let library = api.api_key.valid_versions();
        assert!(
            library.min <= api.min_version && api.max_version <= library.max,
            "{api:?}"
        );
        assert!(guard::has_schema(api.api_key), "{api:?}");
    }
    let keys: Vec<i16> = SUPPORTED_APIS
        .iter()
        .map(|api| api.api_key as i16)
        .collect();
    assert!(
        keys.windows(2).all(|pair| pair[0] < pair[1]),
        "sorted by key, no duplicates"
    );
}

/// librdkafka 2.0.2 breaks on tagged fields in an ApiVersions v3 response, so the broker must
/// write none: every tagged-field count (per entry and at the end) must be zero.
#[test]
fn api_versions_v3_response_has_no_tagged_fields() {
    let context = ResponseContext {
        api_key: ApiKey::ApiVersions,
        api_version: 3,
        correlation_id: 5,
    };
    let response = ResponseKind::ApiVersions(api_versions_response(0));
    let body = unframe(&encode_response(&context, &response).expect("encodes"));
    // Response header v0 is only the correlation id: no tagged-field byte after it.
    assert_eq!(&body[..4], &5i32.to_be_bytes());
    assert_eq!(
        &body[4..6],
        &0i16.to_be_bytes(),
        "error code follows the correlation id directly"
    );
    let count = SUPPORTED_APIS.len();
    assert_eq!(usize::from(body[6]), count + 1, "compact array length");
    for (index, api) in SUPPORTED_APIS.iter().enumerate() {
        let entry = &body[7 + index * 7..7 + (index + 1) * 7];
        assert_eq!(&entry[..2], &(api.api_key as i16).to_be_bytes());
        assert_eq!(entry[6], 0, "no tagged fields in {api:?}");
    }
    let tail = &body[7 + count * 7..];
    assert_eq!(
        tail,
        &[0, 0, 0, 0, 0],
        "throttle_time_ms, then an empty tagged-field section"
    );
}

/// ApiVersions responses use header v0 at every version (KIP-511): a client reads them before
/// it knows whether we speak flexible headers.
#[test]
fn api_versions_response_header_is_always_v0() {
    for version in 0..=4 {
        assert_eq!(ApiKey::ApiVersions.response_header_version(version), 0);
    }
    // Other flexible responses do carry header v1.
    assert_eq!(ApiKey::Metadata.response_header_version(9), 1);
}

/// A client asking ApiVersions at a version we do not know must get a v0 answer with
/// UNSUPPORTED_VERSION and our table, so it can retry; Kafka does this, and librdkafka relies
/// on it.
#[test]
fn unsupported_api_versions_version_gets_v0_answer() {
    // A future ApiVersions v9 request whose header we cannot parse.
    let frame = raw_request(ApiKey::ApiVersions as i16, 9, 41, &[0xff, 0xff, 0xff]);
    let error = decode_request(frame).expect_err("v9 unsupported");
    assert_eq!(
        error,
        RequestError::UnsupportedVersion {
            api_key: ApiKey::ApiVersions,
            api_version: 9,
            correlation_id: 41
        }
    );
    assert_eq!(error.error_code(), UNSUPPORTED_VERSION);
    let ErrorReply::Respond(reply) = error.reply() else {
        panic!("must answer")
    };
    // The client decodes it as the version it asked for; the error code steers it to v0.
    let (header, response) =
        decode_response(unframe(&reply), ApiKey::ApiVersions, 4).expect("decodes");
    assert_eq!(header.correlation_id, 41);
    let ResponseKind::ApiVersions(response) = response else {
        panic!("ApiVersions")
    };
    assert_eq!(response.error_code, UNSUPPORTED_VERSION);
    assert_eq!(response.api_keys.len(), SUPPORTED_APIS.len());
}

/// Requests for APIs we do not implement, or versions outside our range, are the client's
/// fault; Kafka closes the connection, and the correlation id is kept for logging.
#[test]
fn unknown_api_and_unsupported_version_are_typed() {
    let error = decode_request(raw_request(1000, 0, 3, &[])).expect_err("unknown key");
    assert_eq!(
        error,
        RequestError::UnknownApiKey {
            api_key: 1000,
            correlation_id: 3
        }
    );
    assert_eq!(error.reply(), ErrorReply::Close);
    // FindCoordinator is a Kafka API, but not one we serve.
    let error = decode_request(raw_request(ApiKey::FindCoordinator as i16, 0, 4, &[]))
        .expect_err("not served");
    assert_eq!(
        error,
        RequestError::UnknownApiKey {
            api_key: ApiKey::FindCoordinator as i16,
            correlation_id: 4
        }
    );
    // Produce v2 predates record batch v2.
    let error =
        decode_request(raw_request(ApiKey::Produce as i16, 2, 5, &[])).expect_err("too old");
    assert_eq!(
        error,
        RequestError::UnsupportedVersion {
            api_key: ApiKey::Produce,
            api_version: 2,
            correlation_id: 5
        }
    );
    assert_eq!(error.reply(), ErrorReply::Close);
}

/// kafka-protocol pre-allocates arrays from the wire count; a tiny body claiming two billion
/// topics used to abort the whole process. The guard must turn it into a typed error.
#[test]
fn huge_array_count_is_rejected_not_allocated() {
    let frame = raw_request(ApiKey::Metadata as i16, 1, 8, &i32::MAX.to_be_bytes());
    let error = decode_request(frame).expect_err("count cannot fit");
    let RequestError::Malformed {
        reason,
        correlation_id,
        ..
    } = error
    else {
        panic!("{error:?}")
    };
    assert_eq!(correlation_id, Some(8));
    assert!(
        matches!(
            reason,
            Malformed::CountTooLarge {
                count: 2147483647,
                ..
            }
        ),
        "{reason:?}"
    );
    // The flexible (compact) form too.
    let mut flexible = BytesMut::new();
    flexible.put_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    let frame = encode_with_header(ApiKey::Metadata, 12, &flexible);
    assert!(matches!(
        decode_request(frame),
        Err(RequestError::Malformed {
            reason: Malformed::CountTooLarge { .. },
            ..
        })
    ));
}

/// Kafka's parser reads a request's known fields and ignores whatever follows, so a client
/// that appends bytes is served, not disconnected; the codec reports what it skipped.
#[test]
fn trailing_bytes_are_ignored_and_counted() {
    for (api_key, version) in [
        (ApiKey::Metadata, 9),
        (ApiKey::Metadata, 1),
        (ApiKey::Fetch, 11),
    ] {
        let request = sample_request(api_key, version);
        let frame = encode_request(&header(api_key, version, 1), &request).expect("encodes");
        let mut body = BytesMut::from(&unframe(&frame)[..]);
        body.put_slice(&[0, 1, 2]);
        let decoded = decode_request(body.freeze()).expect("trailing bytes are skipped");
        assert_eq!(decoded.body, request, "{api_key:?} v{version}");
        assert_eq!(decoded.trailing_bytes, 3);
        assert_eq!(decoded.unknown_tagged_fields, 0);
        assert!(decoded.had_ignored_content());
    }
}

/// The all-topics Metadata v12 request librdkafka 2.16 (confluent-kafka 2.16.1) sends, byte for
/// byte as captured on the wire: three bytes follow the body's tagged-field section. Every
/// librdkafka client since 2.15 sends it on its second metadata request, so refusing it broke
/// every producer and consumer built on current librdkafka.
#[test]
fn librdkafka_2_16_all_topics_metadata_v12_decodes() {
    let captured = "0003000c00000003000772646b61666b610000000000010000";
    let frame: Vec<u8> = (0..captured.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&captured[i..i + 2], 16).expect("hex"))
        .collect();
    let decoded = decode_request(Bytes::from(frame)).expect("decodes as Kafka does");
    assert_eq!(decoded.api_key, ApiKey::Metadata);
    assert_eq!(decoded.api_version, 12);
    assert_eq!(decoded.header.correlation_id, 3);
    assert_eq!(decoded.header.client_id.as_deref(), Some("rdkafka"));
    let RequestKind::Metadata(request) = decoded.body else {
        panic!("Metadata")
    };
    assert_eq!(request.topics, None, "null topics: every topic");
    assert!(!request.allow_auto_topic_creation);
    assert!(!request.include_topic_authorized_operations);
    assert_eq!(decoded.trailing_bytes, 3);
    // Its first metadata request (an empty topic list) carries nothing extra.
    let first = "0003000c00000002000772646b61666b610001000000";
    let frame: Vec<u8> = (0..first.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&first[i..i + 2], 16).expect("hex"))
        .collect();
    let decoded = decode_request(Bytes::from(frame)).expect("decodes");
    assert!(!decoded.had_ignored_content());
}

/// Tagged fields with tags a version does not define are skipped by their declared size, as
/// Kafka skips them (KIP-482), wherever a tagged-field section may appear.
#[test]
fn unknown_tagged_fields_are_ignored_and_counted() {
    let request = sample_request(ApiKey::Metadata, 12);
    let frame = encode_request(&header(ApiKey::Metadata, 12, 1), &request).expect("encodes");
    let body = unframe(&frame);
    // The body's own tagged-field section is its last byte (zero fields); replace it with two
    // unknown fields (tags 90 and 91, three and zero bytes).
    assert_eq!(body[body.len() - 1], 0);
    let mut edited = BytesMut::from(&body[..body.len() - 1]);
    edited.put_slice(&[2, 90, 3, 7, 7, 7, 91, 0]);
    let decoded = decode_request(edited.freeze()).expect("unknown tags are skipped");
    let RequestKind::Metadata(decoded_body) = decoded.body else {
        panic!("Metadata")
    };
    assert_eq!(decoded_body.topics, request_topics(&request));
    assert_eq!(decoded.unknown_tagged_fields, 2);
    assert_eq!(decoded.trailing_bytes, 0);
}

fn request_topics(
    request: &RequestKind,
) -> Option<Vec<kafka_protocol::messages::metadata_request::MetadataRequestTopic>> {
    match request {
        RequestKind::Metadata(m) => m.topics.clone(),
        _ => None,
    }
}

/// A frame too short to carry the fixed header cannot be answered (no correlation id).
#[test]
fn short_header_is_malformed_without_correlation_id() {
    let error = decode_request(Bytes::from_static(&[0, 3, 0])).expect_err("short");
    assert_eq!(
        error,
        RequestError::Malformed {
            api_key: None,
            correlation_id: None,
            reason: Malformed::HeaderTruncated
        }
    );
    assert_eq!(error.reply(), ErrorReply::Close);
}

/// A response for the wrong API is a broker bug that must be caught before it reaches a client.
#[test]
fn response_for_wrong_api_is_refused() {
    let context = ResponseContext {
        api_key: ApiKey::Produce,
        api_version: 9,
        correlation_id: 1,
    };
    let response = sample_response(ApiKey::Metadata, 9);
    assert!(encode_response(&context, &response).is_err());
}

/// Encodes `body` after a real request header of the right version for `api_key` and `version`.
fn encode_with_header(api_key: ApiKey, version: i16, body: &[u8]) -> Bytes {
    use kafka_protocol::protocol::Encodable;
    let mut out = BytesMut::new();
    let header_version = api_key.request_header_version(version);
    header(api_key, version, 8)
        .encode(&mut out, header_version)
        .expect("header encodes");
    out.put_slice(body);
    out.freeze()
}

fn supported_api_and_version() -> impl Strategy<Value = (ApiKey, i16)> {
    (0..SUPPORTED_APIS.len()).prop_flat_map(|index| {
        let api = SUPPORTED_APIS[index];
        (Just(api.api_key), api.min_version..=api.max_version)
    })
}

proptest! {
    /// Bad input never panics the broker: random bodies behind a valid header decode or fail
    /// with a typed error, and never abort on a hostile allocation.
    #[test]
    fn random_bodies_never_panic(
        (api_key, version) in supported_api_and_version(),
        body in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let _ = decode_request(encode_with_header(api_key, version, &body));
    }

    /// Corrupting bytes of a valid request exercises deeper paths than random bodies: lengths
    /// and counts that are almost right. It must still never panic.
    #[test]
    fn corrupted_requests_never_panic(
        (api_key, version) in supported_api_and_version(),
        corruptions in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        cut in any::<usize>(),
    ) {
        let frame = encode_request(&header(api_key, version, 3), &sample_request(api_key, version)).expect("encodes");
        let mut body = unframe(&frame).to_vec();
        for (position, byte) in corruptions {
            let index = position % body.len();
            body[index] = byte;
        }
        body.truncate(cut % (body.len() + 1));
        let _ = decode_request(Bytes::from(body));
    }

    /// Whole random frames, header included, are what a port scanner sends.
    #[test]
    fn random_frames_never_panic(frame in proptest::collection::vec(any::<u8>(), 0..128)) {
        let _ = decode_request(Bytes::from(frame));
    }
}

/// Each guard schema must describe exactly what `kafka-protocol` parses, at every advertised
/// version: otherwise the guard would pass a body whose arrays it never bounded, refuse a valid
/// one, or cut it short at a different place than the parser. Random bodies drawn from the
/// schema (every array length 0–2, every known tagged field present or not, unknown tagged
/// fields too) must decode through the broker's path, consume every byte, and encode back to
/// exactly the bytes drawn.
#[test]
fn guard_schemas_match_the_parser_at_every_version() {
    let mut rng = guard::generate::Rng(0x5eed_1095);
    for api in SUPPORTED_APIS {
        for version in api.min_version..=api.max_version {
            let flexible = api.api_key.request_header_version(version) >= 2;
            for round in 0..200 {
                let unknown = if flexible { (round % 3) as u32 } else { 0 };
                let body = guard::generate::body(api.api_key, version, &mut rng, unknown);
                let frame = encode_with_header(api.api_key, version, &body);
                let what = format!("{:?} v{version} body {}", api.api_key, hex(&body));
                let decoded = decode_request(frame).unwrap_or_else(|e| panic!("{what}: {e}"));
                assert_eq!(decoded.trailing_bytes, 0, "{what}");
                assert_eq!(decoded.unknown_tagged_fields, unknown, "{what}");
                let mut again = BytesMut::new();
                decoded
                    .body
                    .encode(&mut again, version)
                    .unwrap_or_else(|e| panic!("{what}: re-encode: {e}"));
                assert_eq!(hex(&again), hex(&body), "{what}: re-encoded differently");
            }
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
