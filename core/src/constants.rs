//! Limits and defaults. Every queue, batch and buffer that can grow has its bound here, and the
//! relations between bounds are checked at compile time.

/// Default `max.message.bytes`: the largest batch a topic accepts (Kafka's default, 1 MiB + 12).
pub const BATCH_BYTES_MAX_DEFAULT: u64 = 1_048_588;
/// Hard upper bound for any topic's `max.message.bytes`.
pub const BATCH_BYTES_MAX_LIMIT: u64 = 64 * 1024 * 1024;
/// Most records in one batch.
pub const BATCH_RECORDS_MAX: i32 = 1_000_000;
/// Default `segment.bytes` (Kafka's default, 1 GiB).
pub const SEGMENT_BYTES_MAX_DEFAULT: u64 = 1024 * 1024 * 1024;
/// Default `segment.ms` (7 days).
pub const SEGMENT_AGE_MAX_MS_DEFAULT: u64 = 7 * 24 * 3600 * 1000;
/// Default `index.interval.bytes`: bytes between sparse index entries.
pub const INDEX_INTERVAL_BYTES_DEFAULT: u64 = 4096;
/// Bytes read per request while recovering a segment.
pub const RECOVERY_READ_BYTES: u32 = 1024 * 1024;
/// Most reads a log serves at once; more are refused, not queued.
pub const LOG_READS_IN_FLIGHT_MAX: usize = 256;
/// Most appends a log holds waiting for their writes; more are refused, not queued.
pub const LOG_APPENDS_IN_FLIGHT_MAX: usize = 4096;
/// Most segments a log may hold.
pub const LOG_SEGMENTS_MAX: usize = 100_000;
/// Default interval between retention checks (`log.retention.check.interval.ms`).
pub const RETENTION_CHECK_INTERVAL_MS_DEFAULT: u64 = 300_000;

const _: () = assert!(BATCH_BYTES_MAX_DEFAULT <= BATCH_BYTES_MAX_LIMIT);
const _: () = assert!(BATCH_BYTES_MAX_LIMIT <= u32::MAX as u64);
const _: () = assert!(SEGMENT_BYTES_MAX_DEFAULT <= i32::MAX as u64 * 2);
const _: () =
    assert!(RECOVERY_READ_BYTES as u64 >= 2 * crate::record_batch::BATCH_HEADER_LEN as u64);
const _: () = assert!(INDEX_INTERVAL_BYTES_DEFAULT > 0);
