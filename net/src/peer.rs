//! Framing for broker-to-broker messages: postcard payloads in the same length-prefixed frames
//! as the Kafka listener, and the hello that opens a peer connection.
//!
//! Peers run the same code at the same version, so the peer protocol needs no version
//! negotiation: a message type is any `serde` type, encoded with postcard (compact, no schema in
//! the bytes) and wrapped in a 4-byte length prefix. The decoder applies a size limit exactly
//! like the client listener does, so a confused or malicious peer cannot make us buffer more
//! than one bounded frame. Postcard bounds its own allocations by the input length, so decoding
//! a hostile frame costs at most the frame's size.

use crate::frame::{write_frame, FrameDecoder, FrameError, FrameOverflow};
use bytes::{BufMut, Bytes, BytesMut};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::marker::PhantomData;

/// The peer protocol's version. Both ends normally run the same build, but during a rolling
/// upgrade a node must refuse a peer whose frames it could misread.
pub const PEER_PROTOCOL_VERSION: u32 = 1;

/// The first frame on a peer connection: who dials whom, in which cluster. The receiver checks
/// every field, so a peer of another cluster or a port map pointing at the wrong node is
/// refused instead of believed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerHello {
    /// [`PEER_PROTOCOL_VERSION`] of the dialler.
    pub version: u32,
    /// The dialler's cluster id.
    pub cluster_id: String,
    /// The dialling node.
    pub from: u32,
    /// The node it meant to reach.
    pub to: u32,
}

/// One frame on a peer connection: a [`PeerHello`] first, then messages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerFrame<T> {
    /// Opens the connection.
    Hello(PeerHello),
    /// Everything after the hello.
    Message(T),
}

/// Why a peer frame could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerFrameError {
    /// The byte stream is broken (the peer's fault); close the connection.
    Frame(FrameError),
    /// A frame did not hold a valid message (the peer's fault); close the connection.
    Payload {
        /// postcard's explanation.
        detail: String,
    },
    /// A message could not be serialized, or is larger than the limit (our fault).
    Encode {
        /// The explanation.
        detail: String,
    },
}

impl fmt::Display for PeerFrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerFrameError::Frame(error) => write!(f, "peer frame: {error}"),
            PeerFrameError::Payload { detail } => write!(f, "peer payload: {detail}"),
            PeerFrameError::Encode { detail } => write!(f, "peer encode: {detail}"),
        }
    }
}

impl std::error::Error for PeerFrameError {}

impl From<FrameOverflow> for PeerFrameError {
    fn from(overflow: FrameOverflow) -> PeerFrameError {
        PeerFrameError::Encode {
            detail: format!("frame of {} bytes", overflow.size),
        }
    }
}

/// Encodes `message` as one length-prefixed postcard frame of at most `frame_bytes_max` bytes
/// (the limit the receiving [`PeerFrameDecoder`] applies).
pub fn encode_peer_frame<T: Serialize>(
    message: &T,
    frame_bytes_max: u32,
) -> Result<Bytes, PeerFrameError> {
    let mut out = BytesMut::new();
    write_frame(&mut out, |out| {
        let payload = postcard::to_allocvec(message).map_err(|error| PeerFrameError::Encode {
            detail: error.to_string(),
        })?;
        if payload.len() as u64 > u64::from(frame_bytes_max) {
            let detail = format!(
                "{} bytes exceeds the peer frame limit {frame_bytes_max}",
                payload.len()
            );
            return Err(PeerFrameError::Encode { detail });
        }
        out.put_slice(&payload);
        Ok(())
    })?;
    Ok(out.freeze())
}

/// Splits a peer byte stream into typed messages without doing IO.
#[derive(Debug)]
pub struct PeerFrameDecoder<T> {
    frames: FrameDecoder,
    message: PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned> PeerFrameDecoder<T> {
    /// A decoder accepting frames of at most `frame_bytes_max` bytes.
    pub fn new(frame_bytes_max: u32) -> PeerFrameDecoder<T> {
        PeerFrameDecoder {
            frames: FrameDecoder::new(frame_bytes_max),
            message: PhantomData,
        }
    }

    /// Appends bytes read from the socket.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.frames.feed(bytes);
    }

    /// The next complete message, `Ok(None)` if more bytes are needed, or why the stream broke.
    pub fn next_message(&mut self) -> Result<Option<T>, PeerFrameError> {
        let Some(frame) = self.frames.next_frame().map_err(PeerFrameError::Frame)? else {
            return Ok(None);
        };
        let message = postcard::from_bytes(&frame).map_err(|error| PeerFrameError::Payload {
            detail: error.to_string(),
        })?;
        Ok(Some(message))
    }
}
