use crate::frame::FrameError;
use crate::peer::{encode_peer_frame, PeerFrameDecoder, PeerFrameError};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum PeerMessage {
    Fetch {
        replica_id: i32,
        fetch_offset: i64,
        topics: Vec<String>,
    },
    Heartbeat(u64),
    Data(Vec<u8>),
}

fn message() -> impl Strategy<Value = PeerMessage> {
    prop_oneof![
        (
            any::<i32>(),
            any::<i64>(),
            proptest::collection::vec(".{0,8}", 0..4)
        )
            .prop_map(|(replica_id, fetch_offset, topics)| PeerMessage::Fetch {
                replica_id,
                fetch_offset,
                topics
            }),
        any::<u64>().prop_map(PeerMessage::Heartbeat),
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(PeerMessage::Data),
    ]
}

proptest! {
    /// Replication relies on peers reading back exactly the messages sent, whatever way the
    /// stream is cut by the network.
    #[test]
    fn peer_frames_round_trip(messages in proptest::collection::vec(message(), 0..6), split in any::<usize>()) {
        let mut stream = Vec::new();
        for message in &messages {
            stream.extend_from_slice(&encode_peer_frame(message, 1 << 16).expect("encodes"));
        }
        let split = split % (stream.len() + 1);
        let mut decoder = PeerFrameDecoder::<PeerMessage>::new(1 << 16);
        let mut decoded = Vec::new();
        for chunk in [&stream[..split], &stream[split..]] {
            decoder.feed(chunk);
            while let Some(message) = decoder.next_message().expect("valid stream") {
                decoded.push(message);
            }
        }
        prop_assert_eq!(decoded, messages);
    }

    /// A confused peer's bytes must produce an error, never a panic.
    #[test]
    fn peer_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut decoder = PeerFrameDecoder::<PeerMessage>::new(128);
        decoder.feed(&bytes);
        for _ in 0..bytes.len() {
            match decoder.next_message() {
                Ok(Some(_)) => continue,
                Ok(None) | Err(_) => break,
            }
        }
    }
}

/// Both ends enforce the limit: the sender refuses to build an oversized frame, and the
/// receiver refuses one from its prefix.
#[test]
fn peer_frame_limit_enforced_on_both_sides() {
    let big = PeerMessage::Data(vec![7; 100]);
    assert!(matches!(
        encode_peer_frame(&big, 50),
        Err(PeerFrameError::Encode { .. })
    ));
    let frame = encode_peer_frame(&big, 1000).expect("within limit");
    let mut decoder = PeerFrameDecoder::<PeerMessage>::new(50);
    decoder.feed(&frame[..4]);
    assert!(matches!(
        decoder.next_message(),
        Err(PeerFrameError::Frame(FrameError::TooLarge { .. }))
    ));
}
