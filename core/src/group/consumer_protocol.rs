//! What the coordinator reads out of the classic consumer protocol's embedded bytes.
//!
//! The classic protocol is opaque to the coordinator except in two places where Kafka reads
//! the `consumer` protocol's subscription (`ConsumerProtocolSubscription`, versions 0–3): the
//! topics a Stable group is subscribed to, which OffsetDelete refuses to delete
//! (GROUP_SUBSCRIBED_TO_TOPIC) and offset expiry keeps. Everything else (owned partitions of
//! KIP-429, user data) flows through untouched, as the leader computes the assignment.

use bytes::Bytes;
use kafka_protocol::messages::ConsumerProtocolSubscription;
use kafka_protocol::protocol::Decodable;
use std::collections::BTreeSet;

/// `protocol_type` of Kafka consumers.
pub const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

/// The highest ConsumerProtocolSubscription version this build knows.
const SUBSCRIPTION_VERSION_MAX: i16 = 3;

/// The topics a consumer protocol subscription names, or `None` if the bytes do not decode
/// (Kafka then treats the group's subscription as unknown).
pub fn subscribed_topics(metadata: &Bytes) -> Option<BTreeSet<String>> {
    let mut buf = metadata.clone();
    if buf.len() < 2 {
        return None;
    }
    let version = i16::from_be_bytes([buf[0], buf[1]]);
    if version < 0 {
        return None;
    }
    bytes::Buf::advance(&mut buf, 2);
    // A newer client's subscription is read as the newest version known, as Kafka's
    // ConsumerProtocol does: later versions only add fields at the end.
    let version = version.min(SUBSCRIPTION_VERSION_MAX);
    let subscription = ConsumerProtocolSubscription::decode(&mut buf, version).ok()?;
    Some(
        subscription
            .topics
            .iter()
            .map(|topic| topic.as_str().to_owned())
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::protocol::{Encodable, StrBytes};

    fn encode(version: i16, topics: &[&str]) -> Bytes {
        let subscription = ConsumerProtocolSubscription::default().with_topics(
            topics
                .iter()
                .map(|t| StrBytes::from_string((*t).to_owned()))
                .collect(),
        );
        let mut buf = bytes::BytesMut::new();
        buf.extend_from_slice(&version.to_be_bytes());
        subscription.encode(&mut buf, version).expect("encodes");
        buf.freeze()
    }

    // OffsetDelete and offset expiry depend on reading the subscribed topics of every version a
    // client may send; garbage must read as "unknown", never panic.
    #[test]
    fn reads_topics_of_every_version_and_refuses_garbage() {
        for version in 0..=3 {
            let topics = subscribed_topics(&encode(version, &["a", "b"])).expect("decodes");
            assert_eq!(topics, BTreeSet::from(["a".to_owned(), "b".to_owned()]));
        }
        assert_eq!(subscribed_topics(&Bytes::from_static(b"\x00")), None);
        assert_eq!(
            subscribed_topics(&Bytes::from_static(b"\x00\x01\xff")),
            None
        );
        assert_eq!(subscribed_topics(&Bytes::from_static(b"\xff\xff")), None);
    }
}
