//! Unit and model tests that drive one log against a fault-free in-memory disk.

use super::*;
use crate::io::mem_disk::MemDisk;
use crate::record_batch;
use crate::record_batch::BatchHeader;
use crate::record_batch::{encode, BatchSpec, NewRecord};
use proptest::prelude::*;
use recovery::{Cut, CutReason};

struct Harness {
    log: Log,
    disk: MemDisk,
    now: Instant,
    events: Vec<LogOutput>,
    /// Bit flips on the way from the disk: the next read covering (file, position) returns
    /// the batch there with this leader epoch instead; the stored bytes stay intact.
    epoch_read_flips: Vec<(String, u64, i32)>,
}

impl Harness {
    fn open(config: LogConfig) -> Harness {
        let now = Instant(1_000_000_000);
        let mut h = Harness {
            log: Log::open(config, now),
            disk: MemDisk::default(),
            now,
            events: vec![],
            epoch_read_flips: vec![],
        };
        h.drain();
        assert!(h.log.is_ready());
        h
    }

    /// Applies (and uses up) the epoch read flips that fall inside a read of `file` at `at`.
    fn flip_epochs_read(&mut self, file: &str, at: u64, bytes: &Bytes) -> Bytes {
        let end = at + bytes.len() as u64;
        let range = record_batch::PARTITION_LEADER_EPOCH_RANGE;
        let hit = self
            .epoch_read_flips
            .iter()
            .position(|(f, p, _)| f == file && *p >= at && *p + range.end as u64 <= end);
        let Some(index) = hit else {
            return bytes.clone();
        };
        let (_, position, epoch) = self.epoch_read_flips.remove(index);
        let mut flipped = bytes.to_vec();
        let start = (position - at) as usize;
        flipped[start + range.start..start + range.end].copy_from_slice(&epoch.to_be_bytes());
        Bytes::from(flipped)
    }

    fn reopen(&mut self, config: LogConfig) {
        self.log = Log::open(config, self.now);
        self.events.clear();
        self.drain();
        assert!(self.log.is_ready());
    }

    fn input(&mut self, input: LogInput) {
        self.log.handle(self.now, input);
        self.drain();
    }

    /// Runs disk requests to completion, in order, collecting every other output. A log that
    /// keeps asking for disk work without an input from outside is stuck in a loop.
    fn drain(&mut self) {
        let mut completions = VecDeque::new();
        let mut requests = 0u32;
        loop {
            while let Some(output) = self.log.poll_output() {
                match output {
                    LogOutput::Disk(request) => {
                        requests += 1;
                        assert!(requests < 100_000, "the log loops on its disk requests");
                        let read_at = match &request.op {
                            DiskOp::Read { file, position, .. } => Some((file.clone(), *position)),
                            _ => None,
                        };
                        let mut result = self.disk.execute(request.op);
                        if let (Some((file, at)), Ok(DiskOutcome::Read(bytes))) =
                            (read_at, &mut result)
                        {
                            *bytes = self.flip_epochs_read(&file, at, bytes);
                        }
                        completions.push_back(DiskCompletion {
                            id: request.id,
                            result,
                        });
                    }
                    other => self.events.push(other),
                }
            }
            let Some(completion) = completions.pop_front() else {
                break;
            };
            self.log.handle(self.now, LogInput::Disk(completion));
        }
    }

    fn append(&mut self, request: RequestId, batch: Bytes) -> Result<(i64, i64), AppendError> {
        self.input(LogInput::Append {
            request,
            batch,
            leader_epoch: 3,
        });
        self.events
            .iter()
            .rev()
            .find_map(|e| match e {
                LogOutput::Appended {
                    request: r,
                    base_offset,
                    last_offset,
                } if *r == request => Some(Ok((*base_offset, *last_offset))),
                LogOutput::AppendFailed { request: r, error } if *r == request => {
                    Some(Err(error.clone()))
                }
                _ => None,
            })
            .expect("append answered")
    }

    fn read(&mut self, offset: i64, bytes_max: u32) -> Result<ReadResult, ReadError> {
        let request = 1_000_000 + offset as u64;
        self.input(LogInput::Read {
            request,
            offset,
            bytes_max,
            offset_max: i64::MAX,
        });
        self.events
            .iter()
            .rev()
            .find_map(|e| match e {
                LogOutput::ReadDone { request: r, result } if *r == request => Some(result.clone()),
                _ => None,
            })
            .expect("read answered")
    }
}

fn batch(records: usize, fill: u8, value_len: usize) -> Bytes {
    let recs: Vec<NewRecord> = (0..records)
        .map(|i| NewRecord {
            timestamp: 1_000 + i as i64,
            key: Some(Bytes::from(vec![fill; 3])),
            value: Some(Bytes::from(vec![fill; value_len])),
            headers: vec![],
        })
        .collect();
    encode(
        &BatchSpec {
            base_timestamp: 1_000,
            ..BatchSpec::default()
        },
        &recs,
    )
}

fn small_config() -> LogConfig {
    let mut config = LogConfig::new("t-0");
    config.segment_bytes_max = 4096;
    config.batch_limits.batch_bytes_max = 2048;
    config.index_interval_bytes = 256;
    config
}

// Appends get dense offsets, survive a clean restart, and read back byte for byte with the
// offsets and leader epoch the log assigned.
#[test]
fn append_assigns_dense_offsets_and_survives_restart() {
    let mut h = Harness::open(small_config());
    assert_eq!(h.append(1, batch(3, 1, 10)), Ok((0, 2)));
    assert_eq!(h.append(2, batch(2, 2, 10)), Ok((3, 4)));
    assert_eq!(h.log.durable_offset(), 5);
    h.disk.crash();
    h.reopen(small_config());
    assert_eq!(h.log.log_end_offset(), 5);
    let read = h.read(3, 1 << 20).expect("read");
    let header = record_batch::check_framing(&read.batches).expect("valid batch");
    assert_eq!((header.base_offset, header.partition_leader_epoch), (3, 3));
    assert_eq!(read.next_offset, 5);
}

// Segments roll by size, and reads work across the roll and from every offset.
#[test]
fn segments_roll_and_reads_find_every_offset() {
    let mut h = Harness::open(small_config());
    for i in 0..40 {
        h.append(i, batch(1 + (i as usize % 4), i as u8, 100))
            .expect("append");
    }
    assert!(
        h.log.segment_count() > 3,
        "rolled into {} segments",
        h.log.segment_count()
    );
    let end = h.log.log_end_offset();
    for offset in 0..end {
        let read = h.read(offset, 1).expect("read");
        let header = record_batch::check_framing(&read.batches).expect("one whole batch");
        assert!(header.base_offset <= offset && offset <= header.last_offset());
        assert_eq!(
            read.batches.len() as u64,
            header.size(),
            "budget 1 still returns one batch"
        );
    }
    assert_eq!(h.read(end, 100).expect("read at end").batches.len(), 0);
    assert!(matches!(
        h.read(end + 1, 100),
        Err(ReadError::OffsetOutOfRange { .. })
    ));
}

// Truncation removes a suffix durably, and new appends reuse the truncated offsets.
#[test]
fn truncate_then_append_reuses_offsets() {
    let mut h = Harness::open(small_config());
    for i in 0..20 {
        h.append(i, batch(2, i as u8, 100)).expect("append");
    }
    h.input(LogInput::TruncateTo { offset: 10 });
    assert!(h.events.contains(&LogOutput::Truncated { offset: 10 }));
    assert_eq!(h.log.log_end_offset(), 10);
    assert_eq!(h.append(100, batch(1, 9, 10)), Ok((10, 10)));
    h.disk.crash();
    h.reopen(small_config());
    assert_eq!(h.log.log_end_offset(), 11);
    let read = h.read(10, 1000).expect("read");
    let header = record_batch::check_framing(&read.batches).expect("batch");
    assert_eq!(header.records_count, 1);
}

// DeleteBefore advances the log start offset durably and deletes whole segments below it.
#[test]
fn delete_before_moves_log_start_and_drops_segments() {
    let mut h = Harness::open(small_config());
    for i in 0..40 {
        h.append(i, batch(1, i as u8, 200)).expect("append");
    }
    let segments = h.log.segment_count();
    h.input(LogInput::DeleteBefore { offset: 20 });
    assert_eq!(h.log.log_start_offset(), 20);
    assert!(h.log.segment_count() < segments);
    assert!(matches!(
        h.read(5, 100),
        Err(ReadError::OffsetOutOfRange { .. })
    ));
    h.disk.crash();
    h.reopen(small_config());
    assert_eq!(h.log.log_start_offset(), 20);
    assert!(h.read(20, 100).is_ok());
}

// Retention by size deletes the oldest segments on the retention timer.
#[test]
fn retention_by_size_runs_on_its_timer() {
    let mut config = small_config();
    config.retention_bytes = Some(8192);
    config.retention_check_interval = Duration::from_secs(1);
    let mut h = Harness::open(config);
    for i in 0..100 {
        h.append(i, batch(1, i as u8, 200)).expect("append");
    }
    assert!(h.log.size_bytes() > 8192);
    let deadline = h.log.poll_timeout().expect("retention timer armed");
    h.now = deadline;
    h.input(LogInput::Timeout);
    assert!(
        h.log.size_bytes() <= 8192 + 4096,
        "size {}",
        h.log.size_bytes()
    );
    assert!(h.log.log_start_offset() > 0);
}

// Each bad batch is refused with a typed error and nothing is written.
#[test]
fn bad_batches_are_refused_without_writing() {
    let mut h = Harness::open(small_config());
    let mut corrupt = batch(1, 1, 10).to_vec();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    assert!(matches!(
        h.append(1, Bytes::from(corrupt)),
        Err(AppendError::InvalidBatch(BatchError::CrcMismatch { .. }))
    ));
    assert!(matches!(
        h.append(2, batch(1, 1, 3000)),
        Err(AppendError::InvalidBatch(BatchError::TooLarge { .. }))
    ));
    assert!(matches!(
        h.append(3, Bytes::from_static(b"junk")),
        Err(AppendError::InvalidBatch(_))
    ));
    assert_eq!(h.log.log_end_offset(), 0);
}

// A torn tail (a write that was never synced and only partly reached the disk) is cut
// quietly; a corrupted synced batch is cut and reported as lost durable data.
#[test]
fn recovery_cuts_torn_tails_quietly_and_reports_synced_corruption() {
    let mut config = small_config();
    config.sync_policy = SyncPolicy::Explicit;
    let mut h = Harness::open(config.clone());
    h.append(1, batch(2, 1, 50)).expect("append");
    h.input(LogInput::Sync);
    assert_eq!(h.log.durable_offset(), 2);
    h.append(2, batch(2, 2, 50)).expect("append");
    let file = "t-0/00000000000000000000.log".to_string();
    let len = h.disk.volatile[&file].len();
    let torn = h.disk.volatile[&file][..len - 10].to_vec();
    h.disk.durable.insert(file.clone(), torn);
    h.disk.crash();
    h.reopen(config.clone());
    let report = recovered(&h.events);
    assert!(matches!(
        report.cut,
        Some(Cut {
            reason: CutReason::TornTail,
            offset: 2,
            ..
        })
    ));
    assert_eq!(report.durable_data_lost, None);
    assert_eq!(h.log.log_end_offset(), 2);
    h.input(LogInput::Sync);
    // Flip a byte inside the synced first batch.
    h.disk.durable.get_mut(&file).expect("file")[70] ^= 0x40;
    h.disk.crash();
    h.reopen(config);
    let report = recovered(&h.events);
    assert!(matches!(
        report.cut,
        Some(Cut {
            reason: CutReason::Corrupt(_),
            offset: 0,
            ..
        })
    ));
    assert_eq!(report.durable_data_lost, Some((0, 2)));
}

// Damage at rest found by a read, with the process running: a batch length claiming more bytes
// than the segment holds, and a file shorter than the segment's recorded size. The read fails
// as corrupt (it never loops re-reading the same bytes), and the log keeps serving the rest.
#[test]
fn reads_report_damage_that_rereading_cannot_cure() {
    let file = "t-0/00000000000000000000.log".to_string();
    // A length field raised past the end of the segment.
    let mut h = Harness::open(small_config());
    h.append(1, batch(2, 1, 50)).expect("append");
    h.append(2, batch(2, 2, 50)).expect("append");
    h.disk.volatile.get_mut(&file).expect("file")[8..12].copy_from_slice(&100_000i32.to_be_bytes());
    assert!(matches!(
        h.read(0, 1 << 20),
        Err(ReadError::Corrupt { offset: 0, .. })
    ));
    assert!(h.log.is_ready());
    // A file cut short under the log: the second batch's bytes are gone.
    let mut h = Harness::open(small_config());
    h.append(1, batch(2, 1, 50)).expect("append");
    let first = h.disk.volatile[&file].len();
    h.append(2, batch(2, 2, 50)).expect("append");
    h.disk
        .volatile
        .get_mut(&file)
        .expect("file")
        .truncate(first + 20);
    assert!(matches!(
        h.read(2, 1 << 20),
        Err(ReadError::Corrupt { offset: 2, .. })
    ));
    assert!(matches!(h.read(0, 10), Ok(read) if read.next_offset == 2));
}

// A partition leader epoch damaged at rest (the field lies outside the CRC) is served as the
// epoch cache records it, so followers, which refuse epochs that go down, can still replicate.
#[test]
fn reads_serve_the_epoch_the_cache_records() {
    let file = "t-0/00000000000000000000.log".to_string();
    let mut h = Harness::open(small_config());
    h.append(1, batch(2, 1, 50)).expect("append");
    h.append(2, batch(2, 2, 50)).expect("append");
    h.disk.volatile.get_mut(&file).expect("file")[12..16]
        .copy_from_slice(&(1i32 << 20).to_be_bytes());
    let read = h.read(0, 1 << 20).expect("read");
    let first = record_batch::check_framing(&read.batches).expect("valid batch");
    assert_eq!(first.partition_leader_epoch, 3);
    let second = &read.batches[first.size() as usize..];
    let second = record_batch::check_framing(second).expect("valid batch");
    assert_eq!((second.base_offset, second.partition_leader_epoch), (2, 3));
}

// ListOffsets by timestamp: the first record whose timestamp reaches the target, across
// batches and segments, or none when every record is older.
#[test]
fn offset_for_timestamp_finds_the_first_record_at_or_after() {
    let mut h = Harness::open(small_config());
    for i in 0..30i64 {
        let recs: Vec<NewRecord> = (0..3)
            .map(|r| NewRecord {
                timestamp: 10_000 + i * 10 + r,
                key: None,
                value: Some(Bytes::from(vec![0; 200])),
                headers: vec![],
            })
            .collect();
        let b = encode(
            &BatchSpec {
                base_timestamp: 10_000 + i * 10,
                ..BatchSpec::default()
            },
            &recs,
        );
        h.append(i as u64, b).expect("append");
    }
    assert!(h.log.segment_count() > 1);
    let lookup = |h: &mut Harness, timestamp: i64| {
        h.input(LogInput::OffsetForTimestamp {
            request: 77,
            timestamp,
        });
        h.events
            .iter()
            .rev()
            .find_map(|e| match e {
                LogOutput::OffsetForTimestamp {
                    request: 77,
                    result,
                } => Some(result.clone()),
                _ => None,
            })
            .expect("answered")
    };
    assert_eq!(lookup(&mut h, 0), Ok(Some((0, 10_000))));
    assert_eq!(lookup(&mut h, 10_052), Ok(Some((17, 10_052))));
    assert_eq!(lookup(&mut h, 10_055), Ok(Some((18, 10_060))));
    assert_eq!(lookup(&mut h, 10_292), Ok(Some((89, 10_292))));
    assert_eq!(lookup(&mut h, 10_293), Ok(None));
}

fn recovered(events: &[LogOutput]) -> RecoveryReport {
    events
        .iter()
        .find_map(|e| match e {
            LogOutput::Recovered(r) => Some(r.clone()),
            _ => None,
        })
        .expect("recovered")
}

#[derive(Clone, Debug)]
enum Op {
    Append {
        records: usize,
        len: usize,
    },
    Read {
        offset_permille: u16,
        bytes_max: u32,
    },
    Sync,
    Crash,
    Truncate {
        offset_permille: u16,
    },
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1usize..5, 0usize..400).prop_map(|(records, len)| Op::Append { records, len }),
        3 => (0u16..1001, 1u32..3000).prop_map(|(offset_permille, bytes_max)| Op::Read { offset_permille, bytes_max }),
        2 => Just(Op::Sync),
        1 => Just(Op::Crash),
        1 => (0u16..1001).prop_map(|offset_permille| Op::Truncate { offset_permille }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    // Model test: the log behaves like a plain vector of batches. Reads return exactly the
    // model's bytes from the batch holding the offset; a crash keeps exactly the synced prefix
    // (the disk here never corrupts, so nothing else may change).
    #[test]
    fn log_matches_a_vector_of_batches(ops in proptest::collection::vec(arb_op(), 1..60)) {
        let mut config = small_config();
        config.sync_policy = SyncPolicy::Explicit;
        let mut h = Harness::open(config.clone());
        let mut model: Vec<(i64, Vec<u8>)> = Vec::new(); // (base offset, stored bytes)
        let mut next_id = 0u64;
        for op in ops {
            next_id += 1;
            match op {
                Op::Append { records, len } => {
                    let b = batch(records, next_id as u8, len);
                    let end_before = h.log.log_end_offset();
                    let (base, _) = h.append(next_id, b.clone()).expect("append");
                    prop_assert_eq!(base, end_before);
                    let mut stored = b.to_vec();
                    record_batch::set_base_offset(&mut stored, base);
                    record_batch::set_partition_leader_epoch(&mut stored, 3);
                    if let Some((o, b)) = model.last() {
                        prop_assert_eq!(base, o + BatchHeader::parse(b).expect("h").records_count as i64);
                    }
                    model.push((base, stored));
                }
                Op::Read { offset_permille, bytes_max } => {
                    let (start, end) = (h.log.log_start_offset(), h.log.log_end_offset());
                    let offset = start + (end - start) * i64::from(offset_permille) / 1000;
                    let result = h.read(offset, bytes_max).expect("read in range");
                    let first = model.iter().position(|(o, b)| {
                        let h = BatchHeader::parse(b).expect("h");
                        *o <= offset && offset < o + h.records_count as i64
                    });
                    match first {
                        None => prop_assert!(result.batches.is_empty()),
                        Some(i) => prop_assert!(result.batches.starts_with(&model[i].1)),
                    }
                    let mut expected = Vec::new();
                    for (_, b) in model.iter().skip(first.unwrap_or(model.len())) {
                        if expected.len() >= result.batches.len() { break; }
                        expected.extend_from_slice(b);
                    }
                    prop_assert_eq!(&result.batches[..], &expected[..result.batches.len()]);
                }
                Op::Sync => {
                    h.input(LogInput::Sync);
                    prop_assert_eq!(h.log.durable_offset(), h.log.log_end_offset());
                }
                Op::Crash => {
                    // Everything durable survives; unsynced data may survive too (a later sync of
                    // the same file can carry it), but only as a prefix of what was written.
                    let durable = h.log.durable_offset();
                    let end = h.log.log_end_offset();
                    let start_before = h.log.log_start_offset();
                    h.disk.crash();
                    h.reopen(config.clone());
                    let recovered_end = h.log.log_end_offset();
                    prop_assert!(durable <= recovered_end && recovered_end <= end);
                    // Segments that never reached the disk can vanish below one that did (an
                    // empty segment made durable by a truncation's sync); the log then starts
                    // later rather than hand out their offsets again.
                    let recovered_start = h.log.log_start_offset();
                    prop_assert!(recovered_start <= start_before || durable <= recovered_start);
                    model.retain(|(o, b)| *o < recovered_end && *o + BatchHeader::parse(b).expect("h").records_count as i64 > recovered_start);
                    prop_assert_eq!(recovered(&h.events).durable_data_lost, None);
                }
                Op::Truncate { offset_permille } => {
                    // Any offset, not just batch starts: the cut lands at the start of the batch
                    // that holds it, as in Kafka.
                    let (start, end) = (h.log.log_start_offset(), h.log.log_end_offset());
                    let offset = start + (end - start) * i64::from(offset_permille) / 1000;
                    h.input(LogInput::TruncateTo { offset });
                    let batch_end = |(o, b): &(i64, Vec<u8>)| o + BatchHeader::parse(b).expect("h").records_count as i64;
                    let cut = model.iter().find(|e| batch_end(e) > offset).map_or(end, |(o, _)| *o).min(end);
                    model.retain(|e| batch_end(e) <= cut);
                    prop_assert_eq!(h.log.log_end_offset(), cut);
                }
            }
        }
    }
}

mod replication;
