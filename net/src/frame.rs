//! Length-prefixed framing shared by the Kafka listener and the peer listener.
//!
//! Kafka frames every request and response with a 4-byte big-endian signed length followed by
//! that many bytes (see "Protocol Primitive Types" and "Common Request and Response Structure"
//! in the Kafka protocol guide). The peer protocol reuses the same framing so that one decoder,
//! with one size limit, guards every socket the node listens on.
//!
//! [`FrameDecoder`] is sans-IO: the driver feeds it whatever bytes the socket produced and pulls
//! complete frames out. It rejects a frame as soon as its length prefix is known to exceed the
//! limit, so a peer announcing a 2 GiB frame costs us four bytes of buffer, not 2 GiB. Kafka's
//! broker does the same with `socket.request.max.bytes` (default 100 MiB). After an error the
//! decoder stays failed: the stream has lost frame sync and the only safe action is to close the
//! connection.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use std::fmt;

/// Size of the length prefix in front of every frame.
pub const FRAME_PREFIX_BYTES: usize = 4;

/// Kafka's default `socket.request.max.bytes`: the largest request frame a broker accepts.
pub const SOCKET_REQUEST_MAX_BYTES_DEFAULT: u32 = 100 * 1024 * 1024;

/// Why a byte stream cannot be split into frames. Always the sender's fault; the connection
/// must be closed because frame boundaries can no longer be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// The length prefix announced a frame larger than the configured limit.
    TooLarge {
        /// The announced frame size in bytes (excluding the prefix).
        size: u32,
        /// The configured limit in bytes.
        max: u32,
    },
    /// The length prefix was negative.
    NegativeLength {
        /// The announced (negative) size.
        size: i32,
    },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::TooLarge { size, max } => {
                write!(f, "frame of {size} bytes exceeds the limit of {max} bytes")
            }
            FrameError::NegativeLength { size } => write!(f, "negative frame length {size}"),
        }
    }
}

impl std::error::Error for FrameError {}

/// Splits a byte stream into length-prefixed frames without doing IO.
#[derive(Debug)]
pub struct FrameDecoder {
    /// Bytes received and not yet returned as frames.
    buffer: BytesMut,
    /// Largest accepted frame body, in bytes.
    frame_bytes_max: u32,
    /// Set once the stream is known to be broken; every later call returns it.
    failed: Option<FrameError>,
}

impl FrameDecoder {
    /// A decoder accepting frames of at most `frame_bytes_max` bytes (excluding the prefix).
    pub fn new(frame_bytes_max: u32) -> FrameDecoder {
        FrameDecoder {
            buffer: BytesMut::new(),
            frame_bytes_max,
            failed: None,
        }
    }

    /// The configured frame size limit in bytes.
    pub fn frame_bytes_max(&self) -> u32 {
        self.frame_bytes_max
    }

    /// Bytes buffered but not yet returned as a frame.
    pub fn buffered_bytes(&self) -> usize {
        self.buffer.len()
    }

    /// Appends bytes read from the socket. Call [`FrameDecoder::next_frame`] until it returns
    /// `Ok(None)` before reading more, so that at most one partial frame is ever buffered.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.failed.is_none() {
            self.buffer.extend_from_slice(bytes);
        }
    }

    /// Returns the next complete frame body (without its prefix), `Ok(None)` if more bytes are
    /// needed, or the error that broke the stream.
    pub fn next_frame(&mut self) -> Result<Option<Bytes>, FrameError> {
        if let Some(error) = self.failed {
            return Err(error);
        }
        let Some(prefix) = self.buffer.get(..FRAME_PREFIX_BYTES) else {
            return Ok(None);
        };
        let size = i32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
        let size = match self.check_size(size) {
            Ok(size) => size,
            Err(error) => {
                self.failed = Some(error);
                // Drop what we buffered: nothing in it will ever be used.
                self.buffer = BytesMut::new();
                return Err(error);
            }
        };
        let frame_end = FRAME_PREFIX_BYTES + size as usize;
        if self.buffer.len() < frame_end {
            // No reservation of the announced size: a peer that sends a 4-byte prefix claiming
            // the maximum and then stalls costs only what it actually sent, even across many
            // connections. The buffer grows with the bytes that arrive.
            return Ok(None);
        }
        self.buffer.advance(FRAME_PREFIX_BYTES);
        let frame = self.buffer.split_to(size as usize).freeze();
        debug_assert_eq!(frame.len(), size as usize);
        Ok(Some(frame))
    }

    fn check_size(&self, size: i32) -> Result<u32, FrameError> {
        let size = u32::try_from(size).map_err(|_| FrameError::NegativeLength { size })?;
        if size > self.frame_bytes_max {
            return Err(FrameError::TooLarge {
                size,
                max: self.frame_bytes_max,
            });
        }
        Ok(size)
    }
}

/// A frame that does not fit the 4-byte signed length prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameOverflow {
    /// The body size that did not fit, in bytes.
    pub size: u64,
}

/// Builds one frame: writes a placeholder prefix, lets `body` append the payload, then patches
/// the prefix with the payload length.
pub(crate) fn write_frame<E: From<FrameOverflow>>(
    out: &mut BytesMut,
    body: impl FnOnce(&mut BytesMut) -> Result<(), E>,
) -> Result<(), E> {
    let start = out.len();
    out.put_i32(0);
    body(out)?;
    let size = out.len() - start - FRAME_PREFIX_BYTES;
    let Ok(size_i32) = i32::try_from(size) else {
        out.truncate(start);
        return Err(FrameOverflow { size: size as u64 }.into());
    };
    out[start..start + FRAME_PREFIX_BYTES].copy_from_slice(&size_i32.to_be_bytes());
    Ok(())
}

/// Prefixes `payload` with its length. Fails only for payloads of 2 GiB or more.
pub fn encode_frame(payload: &[u8]) -> Result<Bytes, FrameOverflow> {
    let size = i32::try_from(payload.len()).map_err(|_| FrameOverflow {
        size: payload.len() as u64,
    })?;
    let mut out = BytesMut::with_capacity(FRAME_PREFIX_BYTES + payload.len());
    out.put_i32(size);
    out.put_slice(payload);
    Ok(out.freeze())
}
