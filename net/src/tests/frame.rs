use crate::frame::{encode_frame, FrameDecoder, FrameError};
use proptest::prelude::*;

/// Feeds `stream` to a decoder in the chunks `splits` describes and collects every frame.
fn decode_in_chunks(
    stream: &[u8],
    splits: &[usize],
    frame_bytes_max: u32,
) -> Result<Vec<Vec<u8>>, FrameError> {
    let mut decoder = FrameDecoder::new(frame_bytes_max);
    let mut frames = Vec::new();
    let mut points: Vec<usize> = splits.iter().map(|s| s % (stream.len() + 1)).collect();
    points.push(0);
    points.push(stream.len());
    points.sort_unstable();
    for window in points.windows(2) {
        decoder.feed(&stream[window[0]..window[1]]);
        while let Some(frame) = decoder.next_frame()? {
            frames.push(frame.to_vec());
        }
    }
    Ok(frames)
}

proptest! {
    /// TCP delivers a stream in arbitrary pieces; the frames must not depend on where the
    /// reads happened to split it.
    #[test]
    fn frames_survive_arbitrary_splits(
        payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..8),
        splits in proptest::collection::vec(any::<usize>(), 0..20),
    ) {
        let mut stream = Vec::new();
        for payload in &payloads {
            stream.extend_from_slice(&encode_frame(payload).expect("small frame"));
        }
        let frames = decode_in_chunks(&stream, &splits, 1024).expect("valid stream");
        prop_assert_eq!(frames, payloads);
    }

    /// A peer can send anything: the decoder must never panic, only yield frames within the
    /// limit or a framing error.
    #[test]
    fn random_bytes_never_panic(
        stream in proptest::collection::vec(any::<u8>(), 0..600),
        splits in proptest::collection::vec(any::<usize>(), 0..10),
    ) {
        match decode_in_chunks(&stream, &splits, 256) {
            Ok(frames) => prop_assert!(frames.iter().all(|f| f.len() <= 256)),
            Err(FrameError::TooLarge { size, max }) => prop_assert!(size > max),
            Err(FrameError::NegativeLength { size }) => prop_assert!(size < 0),
        }
    }
}

/// An oversized frame must be refused from its 4-byte prefix alone, before any of its body is
/// buffered, so a hostile length costs no memory.
#[test]
fn oversized_frame_rejected_before_buffering() {
    let mut decoder = FrameDecoder::new(100);
    decoder.feed(&101i32.to_be_bytes());
    assert_eq!(
        decoder.next_frame(),
        Err(FrameError::TooLarge {
            size: 101,
            max: 100
        })
    );
    assert_eq!(decoder.buffered_bytes(), 0);
    decoder.feed(&[0u8; 4096]);
    assert_eq!(
        decoder.buffered_bytes(),
        0,
        "a failed decoder buffers nothing more"
    );
}

/// A frame exactly at the limit is legal; the limit is inclusive like Kafka's.
#[test]
fn frame_at_limit_accepted() {
    let mut decoder = FrameDecoder::new(5);
    decoder.feed(&encode_frame(b"12345").expect("small"));
    assert_eq!(
        decoder.next_frame().expect("valid").as_deref(),
        Some(&b"12345"[..])
    );
    assert_eq!(decoder.next_frame(), Ok(None));
}

/// A negative length can never be valid, and after any framing error the stream is out of
/// sync, so the decoder must keep failing rather than resynchronise on garbage.
#[test]
fn negative_length_poisons_decoder() {
    let mut decoder = FrameDecoder::new(100);
    decoder.feed(&(-2i32).to_be_bytes());
    assert_eq!(
        decoder.next_frame(),
        Err(FrameError::NegativeLength { size: -2 })
    );
    decoder.feed(&encode_frame(b"ok").expect("small"));
    assert_eq!(
        decoder.next_frame(),
        Err(FrameError::NegativeLength { size: -2 })
    );
}
