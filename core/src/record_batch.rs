//! Kafka's v2 RecordBatch (magic 2), the unit the log stores and the wire carries.
//!
//! The log stores batches byte for byte as producers send them (after the leader assigns the base
//! offset and partition leader epoch, two fields outside the CRC), so a fetch serves stored bytes
//! unchanged. The layout, all integers big-endian:
//!
//! ```text
//! offset  size  field
//!      0     8  base_offset
//!      8     4  batch_length            bytes after this field
//!     12     4  partition_leader_epoch
//!     16     1  magic (= 2)
//!     17     4  crc                     CRC-32C of bytes 21..end
//!     21     2  attributes              compression:3 | timestamp_type:1 | transactional:1 | control:1
//!     23     4  last_offset_delta
//!     27     8  base_timestamp
//!     35     8  max_timestamp
//!     43     8  producer_id
//!     51     2  producer_epoch
//!     53     4  base_sequence
//!     57     4  records_count
//!     61     …  records (possibly compressed)
//! ```
//!
//! Each record is `length varint, attributes i8, timestamp_delta varlong, offset_delta varint,
//! key (varint length, -1 = null), value (likewise), header count varint, headers`, with
//! zig-zag varints as in protobuf.

use bytes::{BufMut, Bytes, BytesMut};
use core::fmt;

/// Size of the fixed batch header, up to and including `records_count`.
pub const BATCH_HEADER_LEN: usize = 61;
/// Bytes before `batch_length`'s coverage starts: `base_offset` and `batch_length` themselves.
pub const BATCH_LENGTH_PREFIX: usize = 12;
/// The only record format this broker stores.
pub const MAGIC_V2: i8 = 2;
/// `producer_id` of a batch from a non-idempotent producer.
pub const NO_PRODUCER_ID: i64 = -1;
/// `producer_epoch` of a batch from a non-idempotent producer.
pub const NO_PRODUCER_EPOCH: i16 = -1;
/// `base_sequence` of a batch from a non-idempotent producer.
pub const NO_SEQUENCE: i32 = -1;

const CRC_OFFSET: usize = 17;
const CRC_COVERAGE_START: usize = 21;
const ATTRIBUTES_OFFSET: usize = 21;
const LAST_OFFSET_DELTA_OFFSET: usize = 23;
const RECORDS_COUNT_OFFSET: usize = 57;

const COMPRESSION_MASK: i16 = 0x07;
const TIMESTAMP_TYPE_BIT: i16 = 0x08;
const TRANSACTIONAL_BIT: i16 = 0x10;
const CONTROL_BIT: i16 = 0x20;
const DELETE_HORIZON_BIT: i16 = 0x40;

/// Why a batch was refused. Each maps to one Kafka error code at the edge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BatchError {
    /// Fewer bytes than the header, or than `batch_length` promises (a torn batch).
    Truncated {
        /// Bytes the batch needs.
        needed: u64,
        /// Bytes available.
        available: u64,
    },
    /// `batch_length` is below the header size or otherwise impossible.
    InvalidLength(i32),
    /// A magic byte other than 2.
    UnsupportedMagic(i8),
    /// The stored CRC does not match the bytes (CORRUPT_MESSAGE).
    CrcMismatch {
        /// CRC in the header.
        stored: u32,
        /// CRC of the bytes.
        computed: u32,
    },
    /// The batch is larger than the topic's `max.message.bytes` (MESSAGE_TOO_LARGE).
    TooLarge {
        /// Batch size in bytes.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// Attributes name a compression codec that does not exist.
    UnknownCompression(u8),
    /// `records_count` is negative, zero, above the limit, or disagrees with the records.
    InvalidRecordCount(i32),
    /// `last_offset_delta` disagrees with the record count.
    InvalidLastOffsetDelta(i32),
    /// A record inside the batch does not parse or its offset delta is out of sequence
    /// (INVALID_RECORD).
    InvalidRecord(&'static str),
}

impl fmt::Display for BatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BatchError::Truncated { needed, available } => {
                write!(
                    f,
                    "batch truncated: needs {needed} bytes, {available} available"
                )
            }
            BatchError::InvalidLength(l) => write!(f, "invalid batch length {l}"),
            BatchError::UnsupportedMagic(m) => write!(f, "unsupported magic {m}"),
            BatchError::CrcMismatch { stored, computed } => {
                write!(
                    f,
                    "crc mismatch: stored {stored:#010x}, computed {computed:#010x}"
                )
            }
            BatchError::TooLarge { size, max } => write!(f, "batch of {size} bytes exceeds {max}"),
            BatchError::UnknownCompression(c) => write!(f, "unknown compression codec {c}"),
            BatchError::InvalidRecordCount(c) => write!(f, "invalid record count {c}"),
            BatchError::InvalidLastOffsetDelta(d) => write!(f, "invalid last offset delta {d}"),
            BatchError::InvalidRecord(why) => write!(f, "invalid record: {why}"),
        }
    }
}

/// Compression codec from the low three attribute bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// Records stored as they are.
    None = 0,
    /// gzip.
    Gzip = 1,
    /// snappy.
    Snappy = 2,
    /// lz4.
    Lz4 = 3,
    /// zstd.
    Zstd = 4,
}

impl Compression {
    fn from_bits(bits: u8) -> Result<Compression, BatchError> {
        Ok(match bits {
            0 => Compression::None,
            1 => Compression::Gzip,
            2 => Compression::Snappy,
            3 => Compression::Lz4,
            4 => Compression::Zstd,
            other => return Err(BatchError::UnknownCompression(other)),
        })
    }
}

/// The fixed header of a batch, parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record.
    pub base_offset: i64,
    /// Bytes after the `batch_length` field.
    pub batch_length: i32,
    /// Leader epoch of the leader that appended the batch.
    pub partition_leader_epoch: i32,
    /// Format version; always 2 once validated.
    pub magic: i8,
    /// CRC-32C of bytes 21..end.
    pub crc: u32,
    /// Compression, timestamp type, transactional and control bits.
    pub attributes: i16,
    /// Offset of the last record minus `base_offset`.
    pub last_offset_delta: i32,
    /// Timestamp of the first record.
    pub base_timestamp: i64,
    /// Largest timestamp in the batch.
    pub max_timestamp: i64,
    /// Idempotent producer id, or -1.
    pub producer_id: i64,
    /// Idempotent producer epoch, or -1.
    pub producer_epoch: i16,
    /// Sequence of the first record, or -1.
    pub base_sequence: i32,
    /// Number of records.
    pub records_count: i32,
}

impl BatchHeader {
    /// Parses the fixed header from the start of `bytes` (no CRC or length check).
    pub fn parse(bytes: &[u8]) -> Result<BatchHeader, BatchError> {
        if bytes.len() < BATCH_HEADER_LEN {
            return Err(BatchError::Truncated {
                needed: BATCH_HEADER_LEN as u64,
                available: bytes.len() as u64,
            });
        }
        Ok(BatchHeader {
            base_offset: read_i64(bytes, 0),
            batch_length: read_i32(bytes, 8),
            partition_leader_epoch: read_i32(bytes, 12),
            magic: bytes[16] as i8,
            crc: read_i32(bytes, CRC_OFFSET) as u32,
            attributes: read_i16(bytes, ATTRIBUTES_OFFSET),
            last_offset_delta: read_i32(bytes, LAST_OFFSET_DELTA_OFFSET),
            base_timestamp: read_i64(bytes, 27),
            max_timestamp: read_i64(bytes, 35),
            producer_id: read_i64(bytes, 43),
            producer_epoch: read_i16(bytes, 51),
            base_sequence: read_i32(bytes, 53),
            records_count: read_i32(bytes, RECORDS_COUNT_OFFSET),
        })
    }

    /// Total size of the batch in bytes, header included.
    pub fn size(&self) -> u64 {
        BATCH_LENGTH_PREFIX as u64 + self.batch_length.max(0) as u64
    }

    /// Offset of the last record.
    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    /// The offset after the last record.
    pub fn next_offset(&self) -> i64 {
        self.last_offset() + 1
    }

    /// The compression codec, if the bits name one.
    pub fn compression(&self) -> Result<Compression, BatchError> {
        Compression::from_bits((self.attributes & COMPRESSION_MASK) as u8)
    }

    /// True when timestamps were set by the broker (LogAppendTime).
    pub fn is_log_append_time(&self) -> bool {
        self.attributes & TIMESTAMP_TYPE_BIT != 0
    }

    /// True for batches written inside a transaction.
    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }

    /// True for control batches (transaction markers).
    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }

    /// True when the first timestamp is a compaction delete horizon.
    pub fn has_delete_horizon(&self) -> bool {
        self.attributes & DELETE_HORIZON_BIT != 0
    }
}

/// Limits a batch must respect to be accepted.
#[derive(Clone, Copy, Debug)]
pub struct BatchLimits {
    /// Largest batch in bytes (`max.message.bytes`).
    pub batch_bytes_max: u64,
    /// Most records in one batch.
    pub records_count_max: i32,
}

/// Computes the CRC-32C a batch should carry.
pub fn compute_crc(batch: &[u8]) -> u32 {
    debug_assert!(batch.len() >= BATCH_HEADER_LEN);
    crc32c::crc32c(&batch[CRC_COVERAGE_START..])
}

/// Checks length, magic and CRC of the batch at the start of `bytes`, returning its header.
/// This is what recovery and reads use: it proves the bytes are the ones that were written.
pub fn check_framing(bytes: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = BatchHeader::parse(bytes)?;
    if (header.batch_length as i64) < (BATCH_HEADER_LEN - BATCH_LENGTH_PREFIX) as i64 {
        return Err(BatchError::InvalidLength(header.batch_length));
    }
    let size = header.size();
    if (bytes.len() as u64) < size {
        return Err(BatchError::Truncated {
            needed: size,
            available: bytes.len() as u64,
        });
    }
    if header.magic != MAGIC_V2 {
        return Err(BatchError::UnsupportedMagic(header.magic));
    }
    let computed = compute_crc(&bytes[..size as usize]);
    if computed != header.crc {
        return Err(BatchError::CrcMismatch {
            stored: header.crc,
            computed,
        });
    }
    Ok(header)
}

/// Fully validates one batch that a producer sent: framing, CRC, size, counts, and for
/// uncompressed batches every record. `bytes` must hold exactly one batch.
pub fn validate(bytes: &[u8], limits: &BatchLimits) -> Result<BatchHeader, BatchError> {
    if bytes.len() as u64 > limits.batch_bytes_max {
        return Err(BatchError::TooLarge {
            size: bytes.len() as u64,
            max: limits.batch_bytes_max,
        });
    }
    let header = check_framing(bytes)?;
    if header.size() != bytes.len() as u64 {
        return Err(BatchError::InvalidLength(header.batch_length));
    }
    let compression = header.compression()?;
    if header.records_count <= 0 || header.records_count > limits.records_count_max {
        return Err(BatchError::InvalidRecordCount(header.records_count));
    }
    if header.last_offset_delta != header.records_count - 1 {
        return Err(BatchError::InvalidLastOffsetDelta(header.last_offset_delta));
    }
    if compression == Compression::None {
        check_records(bytes, &header)?;
    }
    Ok(header)
}

/// Rewrites the base offset of a batch in place. The field is outside the CRC, so the CRC stays
/// valid: this is how a leader assigns offsets without re-encoding.
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    assert!(batch.len() >= BATCH_HEADER_LEN);
    batch[0..8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Where the partition leader epoch lies in a batch, and its length.
pub const PARTITION_LEADER_EPOCH_RANGE: std::ops::Range<usize> = 12..16;

/// Rewrites the partition leader epoch in place (also outside the CRC).
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    assert!(batch.len() >= BATCH_HEADER_LEN);
    batch[PARTITION_LEADER_EPOCH_RANGE].copy_from_slice(&epoch.to_be_bytes());
}

/// The partition leader epoch of the batch `bytes` begins with, if they reach that far.
pub fn partition_leader_epoch(bytes: &[u8]) -> Option<i32> {
    let field = bytes.get(PARTITION_LEADER_EPOCH_RANGE)?;
    Some(i32::from_be_bytes(field.try_into().expect("4 bytes")))
}

/// One record header (a key and an optional value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// Header key (Kafka requires a string; stored as bytes).
    pub key: Bytes,
    /// Header value, or null.
    pub value: Option<Bytes>,
}

/// One record, with offsets and timestamps as deltas from its batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Record attributes (unused by Kafka today; kept as sent).
    pub attributes: i8,
    /// Timestamp minus the batch's `base_timestamp`.
    pub timestamp_delta: i64,
    /// Offset minus the batch's `base_offset`.
    pub offset_delta: i32,
    /// Key, or null.
    pub key: Option<Bytes>,
    /// Value, or null (a tombstone under compaction).
    pub value: Option<Bytes>,
    /// Headers, in order.
    pub headers: Vec<Header>,
}

/// Decodes the records of an uncompressed batch whose framing is already checked.
pub fn decode_records(batch: &[u8], header: &BatchHeader) -> Result<Vec<Record>, BatchError> {
    let mut records = Vec::with_capacity(header.records_count.clamp(0, 4096) as usize);
    walk_records(batch, header, |slices, headers| {
        records.push(Record {
            attributes: slices.attributes,
            timestamp_delta: slices.timestamp_delta,
            offset_delta: slices.offset_delta,
            key: slices.key.map(Bytes::copy_from_slice),
            value: slices.value.map(Bytes::copy_from_slice),
            headers,
        });
    })?;
    Ok(records)
}

/// Checks every record of an uncompressed batch whose framing is already checked, without
/// copying anything: what an append needs before it stores the batch.
pub fn check_records(batch: &[u8], header: &BatchHeader) -> Result<(), BatchError> {
    walk_records(batch, header, |_, _| {})
}

/// Parses each record in order, checking offset deltas 0, 1, 2, … and that the records fill
/// the batch exactly; `visit` gets each record and its headers (allocated only when present).
fn walk_records<'a>(
    batch: &'a [u8],
    header: &BatchHeader,
    mut visit: impl FnMut(RecordSlices<'a>, Vec<Header>),
) -> Result<(), BatchError> {
    if header.compression()? != Compression::None {
        return Err(BatchError::InvalidRecord(
            "compressed records are not decoded here",
        ));
    }
    let end = header.size() as usize;
    let mut reader = Reader {
        bytes: &batch[BATCH_HEADER_LEN..end],
        pos: 0,
    };
    let count = header.records_count.max(0) as usize;
    for expected_delta in 0..count {
        let mut headers = Vec::new();
        let record = reader.record_slices(|key, value| {
            headers.push(Header {
                key: Bytes::copy_from_slice(key),
                value: value.map(Bytes::copy_from_slice),
            })
        })?;
        if record.offset_delta != expected_delta as i32 {
            return Err(BatchError::InvalidRecord(
                "offset deltas are not 0, 1, 2, ...",
            ));
        }
        visit(record, headers);
    }
    if reader.pos != reader.bytes.len() {
        return Err(BatchError::InvalidRecordCount(header.records_count));
    }
    Ok(())
}

/// Walks the batches laid end to end in `bytes` (a fetch response or a segment file).
/// Yields each batch's bytes after checking framing and CRC; stops at the first bad batch
/// and reports it, as a consumer or recovery must.
pub struct BatchIter<'a> {
    bytes: &'a [u8],
    pos: usize,
    failed: bool,
}

impl<'a> BatchIter<'a> {
    /// Iterates the batches in `bytes`.
    pub fn new(bytes: &'a [u8]) -> BatchIter<'a> {
        BatchIter {
            bytes,
            pos: 0,
            failed: false,
        }
    }

    /// Byte position of the next batch (after the last one yielded).
    pub fn position(&self) -> usize {
        self.pos
    }
}

impl<'a> Iterator for BatchIter<'a> {
    type Item = Result<(BatchHeader, &'a [u8]), BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.bytes.len() {
            return None;
        }
        let rest = &self.bytes[self.pos..];
        match check_framing(rest) {
            Ok(header) => {
                let size = header.size() as usize;
                self.pos += size;
                Some(Ok((header, &rest[..size])))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// The fields of a batch a producer chooses.
#[derive(Clone, Debug)]
pub struct BatchSpec {
    /// Base offset to write (the leader overwrites it on append).
    pub base_offset: i64,
    /// Leader epoch to write (the leader overwrites it on append).
    pub partition_leader_epoch: i32,
    /// Timestamp of the first record; record timestamps are relative to it.
    pub base_timestamp: i64,
    /// Producer id, or -1.
    pub producer_id: i64,
    /// Producer epoch, or -1.
    pub producer_epoch: i16,
    /// First sequence, or -1.
    pub base_sequence: i32,
    /// Transactional bit.
    pub transactional: bool,
    /// Control-batch bit.
    pub control: bool,
}

impl Default for BatchSpec {
    fn default() -> BatchSpec {
        BatchSpec {
            base_offset: 0,
            partition_leader_epoch: -1,
            base_timestamp: 0,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            base_sequence: NO_SEQUENCE,
            transactional: false,
            control: false,
        }
    }
}

/// A record to encode, with an absolute timestamp.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewRecord {
    /// Create time in milliseconds.
    pub timestamp: i64,
    /// Key, or null.
    pub key: Option<Bytes>,
    /// Value, or null.
    pub value: Option<Bytes>,
    /// Headers.
    pub headers: Vec<Header>,
}

/// Encodes an uncompressed batch with a correct CRC. `records` must not be empty.
pub fn encode(spec: &BatchSpec, records: &[NewRecord]) -> Bytes {
    assert!(!records.is_empty(), "a batch holds at least one record");
    let max_timestamp = records
        .iter()
        .map(|r| r.timestamp)
        .max()
        .unwrap_or(spec.base_timestamp);
    let mut buf = BytesMut::with_capacity(BATCH_HEADER_LEN + records.len() * 32);
    buf.put_i64(spec.base_offset);
    buf.put_i32(0); // batch_length, patched below
    buf.put_i32(spec.partition_leader_epoch);
    buf.put_i8(MAGIC_V2);
    buf.put_u32(0); // crc, patched below
    let mut attributes = 0i16;
    if spec.transactional {
        attributes |= TRANSACTIONAL_BIT;
    }
    if spec.control {
        attributes |= CONTROL_BIT;
    }
    buf.put_i16(attributes);
    buf.put_i32(records.len() as i32 - 1);
    buf.put_i64(spec.base_timestamp);
    buf.put_i64(max_timestamp);
    buf.put_i64(spec.producer_id);
    buf.put_i16(spec.producer_epoch);
    buf.put_i32(spec.base_sequence);
    buf.put_i32(records.len() as i32);
    let mut body = Vec::new();
    for (delta, record) in records.iter().enumerate() {
        body.clear();
        encode_record_body(&mut body, spec.base_timestamp, delta as i32, record);
        put_varint(&mut buf, body.len() as i64);
        buf.put_slice(&body);
    }
    let batch_length = (buf.len() - BATCH_LENGTH_PREFIX) as i32;
    buf[8..12].copy_from_slice(&batch_length.to_be_bytes());
    let crc = compute_crc(&buf);
    buf[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    buf.freeze()
}

fn encode_record_body(out: &mut Vec<u8>, base_timestamp: i64, delta: i32, record: &NewRecord) {
    out.push(0); // attributes
    put_varint(out, record.timestamp.wrapping_sub(base_timestamp));
    put_varint(out, i64::from(delta));
    put_nullable_bytes(out, record.key.as_deref());
    put_nullable_bytes(out, record.value.as_deref());
    put_varint(out, record.headers.len() as i64);
    for header in &record.headers {
        put_nullable_bytes(out, Some(&header.key));
        put_nullable_bytes(out, header.value.as_deref());
    }
}

fn put_nullable_bytes(out: &mut impl BufMut, bytes: Option<&[u8]>) {
    match bytes {
        None => put_varint(out, -1),
        Some(b) => {
            put_varint(out, b.len() as i64);
            out.put_slice(b);
        }
    }
}

/// Writes a zig-zag varint (protobuf's sint64 encoding), as Kafka records do.
pub fn put_varint(out: &mut impl BufMut, value: i64) {
    let mut v = ((value << 1) ^ (value >> 63)) as u64;
    while v >= 0x80 {
        out.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    out.put_u8(v as u8);
}

/// A record's fields, borrowed from its batch.
struct RecordSlices<'a> {
    attributes: i8,
    timestamp_delta: i64,
    offset_delta: i32,
    key: Option<&'a [u8]>,
    value: Option<&'a [u8]>,
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<i64, BatchError> {
        let mut result = 0u64;
        for shift in (0..70).step_by(7) {
            let byte = *self
                .bytes
                .get(self.pos)
                .ok_or(BatchError::InvalidRecord("varint runs past the batch"))?;
            self.pos += 1;
            if shift == 63 && byte > 1 {
                return Err(BatchError::InvalidRecord("varint overflows 64 bits"));
            }
            result |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(((result >> 1) as i64) ^ -((result & 1) as i64));
            }
        }
        Err(BatchError::InvalidRecord("varint longer than 10 bytes"))
    }

    fn varint_i32(&mut self) -> Result<i32, BatchError> {
        i32::try_from(self.varint()?).map_err(|_| BatchError::InvalidRecord("varint exceeds i32"))
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], BatchError> {
        let end = self
            .pos
            .checked_add(len)
            .filter(|end| *end <= self.bytes.len())
            .ok_or(BatchError::InvalidRecord("field runs past the batch"))?;
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn nullable_slice(&mut self) -> Result<Option<&'a [u8]>, BatchError> {
        let len = self.varint_i32()?;
        if len == -1 {
            return Ok(None);
        }
        let len = usize::try_from(len).map_err(|_| BatchError::InvalidRecord("negative length"))?;
        Ok(Some(self.take(len)?))
    }

    /// Parses one record, borrowing its key and value from the batch and handing each
    /// header to `on_header`, so validation allocates nothing.
    fn record_slices(
        &mut self,
        mut on_header: impl FnMut(&'a [u8], Option<&'a [u8]>),
    ) -> Result<RecordSlices<'a>, BatchError> {
        let length = self.varint_i32()?;
        let length =
            usize::try_from(length).map_err(|_| BatchError::InvalidRecord("negative length"))?;
        let mut body = Reader {
            bytes: self.take(length)?,
            pos: 0,
        };
        let attributes = *body.take(1)?.first().expect("take(1) yields one byte") as i8;
        let timestamp_delta = body.varint()?;
        let offset_delta = body.varint_i32()?;
        let key = body.nullable_slice()?;
        let value = body.nullable_slice()?;
        let header_count = body.varint_i32()?;
        let header_count = usize::try_from(header_count)
            .map_err(|_| BatchError::InvalidRecord("negative header count"))?;
        for _ in 0..header_count {
            let key = body
                .nullable_slice()?
                .ok_or(BatchError::InvalidRecord("null header key"))?;
            on_header(key, body.nullable_slice()?);
        }
        if body.pos != length {
            return Err(BatchError::InvalidRecord(
                "record length disagrees with its fields",
            ));
        }
        Ok(RecordSlices {
            attributes,
            timestamp_delta,
            offset_delta,
            key,
            value,
        })
    }
}

fn read_i64(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().expect("8-byte slice"))
}

fn read_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().expect("4-byte slice"))
}

fn read_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes(b[at..at + 2].try_into().expect("2-byte slice"))
}

#[cfg(test)]
mod tests;
