//! Follower appends, the leader epoch cache and truncate-fully, against the in-memory disk.

use super::*;
use crate::log::epoch_cache::tests::Reference;
use crate::record_batch::BatchIter;

impl Harness {
    fn answer(&self, request: RequestId) -> Result<(i64, i64), AppendError> {
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

    fn append_at(
        &mut self,
        request: RequestId,
        batch: Bytes,
        leader_epoch: i32,
    ) -> Result<(i64, i64), AppendError> {
        self.input(LogInput::Append {
            request,
            batch,
            leader_epoch,
        });
        self.answer(request)
    }

    fn replica(&mut self, request: RequestId, batches: Bytes) -> Result<(i64, i64), AppendError> {
        self.input(LogInput::AppendReplica { request, batches });
        self.answer(request)
    }

    /// Every stored byte from the log start to the log end.
    fn read_all(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut offset = self.log.log_start_offset();
        while offset < self.log.log_end_offset() {
            let read = self.read(offset, 1 << 20).expect("read in range");
            assert!(
                !read.batches.is_empty(),
                "a read below the log end finds data"
            );
            out.extend_from_slice(&read.batches);
            offset = read.next_offset;
        }
        out
    }

    /// Feeds `input` but runs only the first `budget` disk requests it leads to; the rest
    /// never happen (a crash comes next). True if all of them ran.
    fn input_with_disk_budget(&mut self, input: LogInput, budget: usize) -> bool {
        self.log.handle(self.now, input);
        self.drain_with_disk_budget(budget)
    }

    /// Drains outputs, running only the first `budget` disk requests; true if all ran.
    fn drain_with_disk_budget(&mut self, mut budget: usize) -> bool {
        let mut completions = VecDeque::new();
        loop {
            while let Some(output) = self.log.poll_output() {
                match output {
                    LogOutput::Disk(_) if budget == 0 => return false,
                    LogOutput::Disk(request) => {
                        budget -= 1;
                        let result = self.disk.execute(request.op);
                        completions.push_back(DiskCompletion {
                            id: request.id,
                            result,
                        });
                    }
                    other => self.events.push(other),
                }
            }
            let Some(completion) = completions.pop_front() else {
                return true;
            };
            self.log.handle(self.now, LogInput::Disk(completion));
        }
    }
}

/// A batch as a leader stores it: offsets from `base`, leader epoch `epoch`.
fn stored_batch(base: i64, epoch: i32, records: usize, fill: u8) -> Bytes {
    let mut bytes = batch(records, fill, 40).to_vec();
    record_batch::set_base_offset(&mut bytes, base);
    record_batch::set_partition_leader_epoch(&mut bytes, epoch);
    Bytes::from(bytes)
}

fn concat(batches: &[&Bytes]) -> Bytes {
    Bytes::from(
        batches
            .iter()
            .flat_map(|b| b.iter().copied())
            .collect::<Vec<u8>>(),
    )
}

// A follower that appends what it fetched from the leader, in runs of any length, ends up with
// the leader's log byte for byte and the same epoch cache, and keeps both across a restart:
// replicas must be identical for a fetch from either to serve the same bytes.
#[test]
fn replica_append_copies_the_leader_byte_for_byte() {
    let mut leader = Harness::open(small_config());
    let epochs = [1, 1, 2, 2, 2, 2, 5, 5, 7, 7];
    for i in 0..40u64 {
        let epoch = epochs[i as usize / 4];
        let b = batch(1 + i as usize % 3, i as u8, 150);
        leader.append_at(i, b, epoch).expect("leader append");
    }
    let bytes = leader.read_all();
    let batches: Vec<Bytes> = BatchIter::new(&bytes)
        .map(|b| Bytes::copy_from_slice(b.expect("valid").1))
        .collect();
    let mut follower = Harness::open(small_config());
    let mut next = 0;
    for (i, size) in [1usize, 3, 2, 7, 1, 11, 4, 100].iter().enumerate() {
        let run: Vec<&Bytes> = batches.iter().skip(next).take(*size).collect();
        if run.is_empty() {
            break;
        }
        next += run.len();
        let first = BatchHeader::parse(run[0]).expect("header");
        let last = BatchHeader::parse(run[run.len() - 1]).expect("header");
        let appended = follower.replica(i as u64, concat(&run));
        assert_eq!(appended, Ok((first.base_offset, last.last_offset())));
    }
    assert_eq!(follower.read_all(), bytes);
    assert!(follower.log.segment_count() > 2, "runs spanned segments");
    let epochs_seen: Vec<i32> = follower.log.epoch_entries().iter().map(|e| e.0).collect();
    assert_eq!(epochs_seen, [1, 2, 5, 7]);
    assert_eq!(follower.log.epoch_entries(), leader.log.epoch_entries());
    assert_eq!(follower.log.durable_offset(), follower.log.log_end_offset());
    follower.disk.crash();
    follower.reopen(small_config());
    assert_eq!(follower.read_all(), bytes);
    assert_eq!(follower.log.epoch_entries(), leader.log.epoch_entries());
}

// Every way a fetched run can be wrong is refused with its own error, and a refused run writes
// nothing, not even its good batches: a follower must never hold a partial or shifted copy.
#[test]
fn replica_append_refuses_bad_runs_whole() {
    let mut h = Harness::open(small_config());
    let a = stored_batch(0, 1, 2, 1);
    assert_eq!(h.replica(1, a.clone()), Ok((0, 1)));
    let before = h.read_all();
    let at = |base, epoch| stored_batch(base, epoch, 2, 9);
    let cases: Vec<(Bytes, AppendError)> = vec![
        (
            at(0, 1),
            AppendError::OffsetMismatch {
                expected: 2,
                found: 0,
            },
        ),
        (
            at(3, 1),
            AppendError::OffsetMismatch {
                expected: 2,
                found: 3,
            },
        ),
        (
            concat(&[&at(2, 1), &at(5, 1)]),
            AppendError::OffsetMismatch {
                expected: 4,
                found: 5,
            },
        ),
        (
            concat(&[&at(2, 2), &at(4, 1)]),
            AppendError::InvalidBatch(BatchError::InvalidRecord(
                "partition leader epochs go down within a replicated run",
            )),
        ),
        (
            at(2, -1),
            AppendError::InvalidBatch(BatchError::InvalidRecord(
                "a replicated batch has no partition leader epoch",
            )),
        ),
        (
            Bytes::new(),
            AppendError::InvalidBatch(BatchError::Truncated {
                needed: 61,
                available: 0,
            }),
        ),
    ];
    for (i, (run, error)) in cases.into_iter().enumerate() {
        assert_eq!(h.replica(10 + i as u64, run), Err(error), "case {i}");
    }
    // A good batch followed by a corrupt or torn one: nothing is written.
    let mut corrupt = at(4, 1).to_vec();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 1;
    let run = concat(&[&at(2, 1), &Bytes::from(corrupt)]);
    assert!(matches!(
        h.replica(20, run),
        Err(AppendError::InvalidBatch(BatchError::CrcMismatch { .. }))
    ));
    let torn = at(4, 1).slice(..70);
    let run = concat(&[&at(2, 1), &torn]);
    assert!(matches!(
        h.replica(21, run),
        Err(AppendError::InvalidBatch(BatchError::Truncated { .. }))
    ));
    let mut big_spec = batch(1, 0, 3000).to_vec();
    record_batch::set_base_offset(&mut big_spec, 2);
    record_batch::set_partition_leader_epoch(&mut big_spec, 1);
    assert!(matches!(
        h.replica(22, Bytes::from(big_spec)),
        Err(AppendError::InvalidBatch(BatchError::TooLarge { .. }))
    ));
    assert_eq!(h.log.log_end_offset(), 2);
    assert_eq!(h.read_all(), before);
    assert_eq!(h.log.epoch_entries(), &[(1, 0)]);
    assert_eq!(h.replica(23, stored_batch(2, 1, 1, 0)), Ok((2, 2)));
}

// OffsetForLeaderEpoch through the log, with the KIP-279 cases: an epoch this replica never saw
// ends where the next epoch it saw begins, the latest epoch ends at the log end.
#[test]
fn end_offset_for_epoch_answers_kip_279() {
    let mut h = Harness::open(small_config());
    assert_eq!(h.log.latest_epoch(), None);
    assert_eq!(h.log.end_offset_for_epoch(3), (3, 0));
    let mut request = 0;
    for (epoch, count) in [(0, 10), (2, 3), (4, 4)] {
        for _ in 0..count {
            request += 1;
            h.append_at(request, batch(1, 1, 10), epoch)
                .expect("append");
        }
    }
    assert_eq!(h.log.epoch_entries(), &[(0, 0), (2, 10), (4, 13)]);
    assert_eq!(h.log.latest_epoch(), Some(4));
    assert_eq!(h.log.end_offset_for_epoch(1), (0, 10));
    assert_eq!(h.log.end_offset_for_epoch(2), (2, 13));
    assert_eq!(h.log.end_offset_for_epoch(3), (2, 13));
    assert_eq!(h.log.end_offset_for_epoch(4), (4, 17));
    assert_eq!(h.log.end_offset_for_epoch(6), (4, 17));
    h.input(LogInput::DeleteBefore { offset: 11 });
    assert_eq!(h.log.epoch_entries(), &[(2, 11), (4, 13)]);
    assert_eq!(h.log.end_offset_for_epoch(1), (1, 11));
}

// A leader records its epoch before it writes; if it wrote nothing before the next leader took
// over, the follower's truncation (even one that cuts no batch) drops that entry, so the older
// epoch the new leader's batches carry continues where it left off (Kafka's truncateTo).
#[test]
fn an_unused_epoch_is_dropped_by_the_next_truncation() {
    let mut h = Harness::open(small_config());
    h.replica(1, stored_batch(0, 4, 10, 1)).expect("append");
    h.log.assign_epoch(5);
    assert_eq!(h.log.epoch_entries(), &[(4, 0), (5, 10)]);
    assert_eq!(h.log.end_offset_for_epoch(4), (4, 10));
    h.input(LogInput::TruncateTo { offset: 10 });
    assert_eq!(h.log.epoch_entries(), &[(4, 0)]);
    h.replica(2, stored_batch(10, 4, 2, 2)).expect("append");
    h.replica(3, stored_batch(12, 6, 2, 3)).expect("append");
    assert_eq!(h.log.epoch_entries(), &[(4, 0), (6, 12)]);
    // A real truncation drops the epochs that start in the cut region.
    h.input(LogInput::TruncateTo { offset: 11 });
    assert_eq!(h.log.log_end_offset(), 10);
    assert_eq!(h.log.epoch_entries(), &[(4, 0)]);
}

/// File name and position of every batch in the log's durable segment files.
fn durable_batches(h: &Harness) -> Vec<(String, usize, BatchHeader)> {
    let mut out = Vec::new();
    for (file, bytes) in &h.disk.durable {
        let mut iter = BatchIter::new(bytes);
        let mut position = 0;
        while let Some(Ok((header, _))) = iter.next() {
            out.push((file.clone(), position, header));
            position = iter.position();
        }
    }
    out.sort_by_key(|(_, _, h)| h.base_offset);
    out
}

fn set_durable_epoch(h: &mut Harness, file: &str, position: usize, epoch: i32) {
    let bytes = h.disk.durable.get_mut(file).expect("file");
    record_batch::set_partition_leader_epoch(&mut bytes[position..], epoch);
}

/// Twelve synced batches of two records, four in each of epochs 1, 2 and 3.
fn three_epoch_log(config: &LogConfig) -> Harness {
    let mut h = Harness::open(config.clone());
    for i in 0..12u64 {
        h.append_at(i, batch(2, i as u8, 100), 1 + i as i32 / 4)
            .expect("append");
    }
    h.input(LogInput::Sync);
    assert_eq!(h.log.epoch_entries(), &[(1, 0), (2, 8), (3, 16)]);
    h
}

// The partition leader epoch is outside the CRC, so damage to it cannot be told from a real
// epoch. Recovery neither cuts there (damage that raised the last batch's epoch would show only
// once later appends carry the real one, and a cut then would drop intact synced data) nor
// lets the cache go down: a lowered or negative epoch adds nothing, a raised one stays until a
// new leader's epoch replaces it.
#[test]
fn recovery_keeps_the_epoch_cache_monotonic_when_an_epoch_is_damaged() {
    let mut config = small_config();
    config.sync_policy = SyncPolicy::Explicit;
    let damaged = |epoch: i32, index: usize| {
        let mut h = three_epoch_log(&config);
        let (file, position, _) = durable_batches(&h)[index].clone();
        set_durable_epoch(&mut h, &file, position, epoch);
        h.disk.crash();
        h.reopen(config.clone());
        let report = recovered(&h.events);
        assert_eq!((report.cut, report.durable_data_lost), (None, None));
        assert_eq!(h.log.log_end_offset(), 24, "nothing is cut");
        h
    };
    // Raised: batch 5 (offset 10, epoch 2) reads as epoch 9.
    let mut h = damaged(9, 5);
    assert_eq!(h.log.epoch_entries(), &[(1, 0), (2, 8), (9, 10)]);
    h.log.assign_epoch(4);
    assert_eq!(h.log.epoch_entries(), &[(1, 0), (2, 8), (4, 24)]);
    // Lowered or negative: the cache is what the undamaged log gives.
    let h = damaged(1, 9);
    assert_eq!(h.log.epoch_entries(), &[(1, 0), (2, 8), (3, 16)]);
    let h = damaged(-7, 3);
    assert_eq!(h.log.epoch_entries(), &[(1, 0), (2, 8), (3, 16)]);
    // Raised on the last batch, where nothing shows it: appends at the real epoch follow, and
    // the next recovery keeps every one of them.
    let mut h = damaged(9, 11);
    assert_eq!(h.log.epoch_entries(), &[(1, 0), (2, 8), (3, 16), (9, 22)]);
    h.append_at(99, batch(2, 1, 100), 3).expect("append");
    assert_eq!(h.log.epoch_entries(), &[(1, 0), (2, 8), (3, 24)]);
    h.input(LogInput::Sync);
    h.disk.crash();
    h.reopen(config.clone());
    let report = recovered(&h.events);
    assert_eq!((report.cut, report.durable_data_lost), (None, None));
    assert_eq!(h.log.log_end_offset(), 26);
    assert_eq!(h.log.epoch_entries(), &[(1, 0), (2, 8), (3, 16), (9, 22)]);
}

// A bit flipped on the way from the disk is not on it: recovery reads the epoch of every
// batch that shaped the cache again, scans again when one reads differently, and ends with the
// cache the undamaged log gives. Without the second read, a raised epoch would stay, and a
// lowered first batch of an epoch would start that epoch one batch late, so a follower with a
// divergent batch there would keep it.
#[test]
fn recovery_reads_again_an_epoch_that_arrived_damaged() {
    let mut config = small_config();
    config.sync_policy = SyncPolicy::Explicit;
    let mut h = three_epoch_log(&config);
    let undamaged = [(1, 0), (2, 8), (3, 16)];
    let batches = durable_batches(&h);
    // (batch index, epoch it reads as): raised; lowered at the start of epoch 2; lowered at
    // the start of epoch 3; raised last batch; lowered first batch of the log.
    for (index, epoch) in [(5, 9), (4, 1), (8, 2), (11, 7), (0, 0)] {
        let (file, position, _) = batches[index].clone();
        h.epoch_read_flips = vec![(file, position as u64, epoch)];
        h.disk.crash();
        h.reopen(config.clone());
        assert!(
            h.epoch_read_flips.is_empty(),
            "the flip at batch {index} was read"
        );
        let report = recovered(&h.events);
        assert_eq!((report.cut, report.durable_data_lost), (None, None));
        assert_eq!(
            h.log.epoch_entries(),
            &undamaged,
            "batch {index} read as epoch {epoch}"
        );
    }
    // The last batch starts epoch 4; read as epoch 3 it would drop the entry.
    h.append_at(50, batch(2, 1, 100), 4).expect("append");
    h.input(LogInput::Sync);
    let (file, position, _) = durable_batches(&h)[12].clone();
    h.epoch_read_flips = vec![(file, position as u64, 3)];
    h.disk.crash();
    h.reopen(config.clone());
    assert!(h.epoch_read_flips.is_empty());
    assert_eq!(h.log.epoch_entries(), &[(1, 0), (2, 8), (3, 16), (4, 24)]);
}

impl Harness {
    /// Opens the log but runs only the first `budget` disk requests; true if recovery and
    /// everything after it ran.
    fn reopen_with_disk_budget(&mut self, config: LogConfig, budget: usize) -> bool {
        self.log = Log::open(config, self.now);
        self.events.clear();
        self.drain_with_disk_budget(budget)
    }
}

// A process crash keeps a checkpoint that only reached the page cache; recovery adopts it.
// If recovery then overwrote the other slot before making the adopted one durable, a power
// loss tearing that write would bring back an older checkpoint whose recovery point a
// truncation has since lowered, and recovery would report synced data lost that was removed
// on purpose. Every crash point of the recovery after such a process crash is tried here.
#[test]
fn a_torn_checkpoint_never_brings_back_a_recovery_point_truncated_away() {
    let mut config = small_config();
    config.sync_policy = SyncPolicy::Explicit;
    let slots = ["t-0/checkpoint.0", "t-0/checkpoint.1"];
    // What a power loss does to each slot's unsynced write: drops it or tears it.
    for fates in [[false, false], [false, true], [true, false], [true, true]] {
        for budget in 0.. {
            let mut h = Harness::open(config.clone());
            for i in 0..10u64 {
                h.append_at(i, batch(2, i as u8, 100), 1).expect("append");
            }
            h.input(LogInput::Sync);
            h.input(LogInput::TruncateTo { offset: 6 });
            h.append_at(20, batch(2, 1, 100), 1).expect("append");
            // The segment sync and the checkpoint write run; the checkpoint's sync does not.
            assert!(!h.input_with_disk_budget(LogInput::Sync, 2));
            let finished = h.reopen_with_disk_budget(config.clone(), budget);
            for (slot, torn) in slots.iter().zip(fates) {
                let volatile = h.disk.volatile.get(*slot).cloned().unwrap_or_default();
                let durable = h.disk.durable.entry(slot.to_string()).or_default();
                if torn && volatile != *durable && volatile.len() >= 20 {
                    durable.resize(volatile.len(), 0);
                    durable[..20].copy_from_slice(&volatile[..20]);
                }
            }
            h.disk.crash();
            h.reopen(config.clone());
            let report = recovered(&h.events);
            let at = format!("fates {fates:?}, budget {budget}: {report:?}");
            assert_eq!(report.durable_data_lost, None, "{at}");
            assert!(h.log.log_end_offset() >= 6, "{at}");
            if finished {
                break;
            }
        }
    }
}

// A follower that fell below the leader's log start discards everything and continues empty
// at the leader's log start; the epoch cache empties, and appends continue from there.
#[test]
fn truncate_fully_restarts_empty_at_the_offset() {
    let mut h = Harness::open(small_config());
    for i in 0..20u64 {
        h.append_at(i, batch(2, i as u8, 100), 3).expect("append");
    }
    h.log.assign_epoch(4);
    h.input(LogInput::TruncateFullyAndStartAt { offset: 100 });
    assert!(h.events.contains(&LogOutput::Truncated { offset: 100 }));
    assert!(h.events.contains(&LogOutput::Durable { offset: 100 }));
    assert_eq!(
        (h.log.log_start_offset(), h.log.log_end_offset()),
        (100, 100)
    );
    assert_eq!(h.log.segment_count(), 1);
    assert!(h.log.epoch_entries().is_empty());
    assert!(matches!(
        h.read(40, 100),
        Err(ReadError::OffsetOutOfRange { .. })
    ));
    assert_eq!(h.replica(50, stored_batch(100, 5, 2, 1)), Ok((100, 101)));
    h.disk.crash();
    h.reopen(small_config());
    assert_eq!(
        (h.log.log_start_offset(), h.log.log_end_offset()),
        (100, 102)
    );
    assert_eq!(h.log.epoch_entries(), &[(5, 100)]);
    let files = h
        .disk
        .durable
        .keys()
        .filter(|f| f.ends_with(".log"))
        .count();
    assert_eq!(files, 1, "the old segments are gone");
}

// A crash at any point of a full truncation recovers either the old log, whole, or a log that
// starts at the new offset, and never reports synced data lost: the checkpoint that moves the
// log start is durable before any file changes.
#[test]
fn truncate_fully_is_crash_safe_at_every_step() {
    let mut config = small_config();
    config.sync_policy = SyncPolicy::Explicit;
    for offset in [7, 16, 22, 40, 500] {
        for budget in 0.. {
            let mut h = Harness::open(config.clone());
            for i in 0..20u64 {
                h.append_at(i, batch(2, i as u8, 100), 3).expect("append");
            }
            h.input(LogInput::Sync);
            let old = h.read_all();
            let input = LogInput::TruncateFullyAndStartAt { offset };
            let finished = h.input_with_disk_budget(input, budget);
            h.disk.crash();
            h.reopen(config.clone());
            let report = recovered(&h.events);
            assert_eq!(
                report.durable_data_lost, None,
                "offset {offset}, budget {budget}"
            );
            let (start, end) = (h.log.log_start_offset(), h.log.log_end_offset());
            let whole_old = start == 0 && end == 40 && h.read_all() == old;
            let new_start = start == offset && (end == offset || (offset < 40 && end == 40));
            assert!(
                whole_old || new_start,
                "offset {offset}, budget {budget}: recovered [{start}, {end})"
            );
            if finished {
                assert_eq!((start, end), (offset, offset));
                break;
            }
        }
    }
}

#[derive(Clone, Debug)]
enum ReplicaOp {
    Append { records: usize },
    NewLeader { bump: i32 },
    Replica { runs: Vec<(usize, i32)> },
    Truncate { permille: u16 },
    DeleteBefore { permille: u16 },
    TruncateFully { ahead: i64 },
    Sync,
    Crash { sync_first: bool },
}

fn arb_replica_op() -> impl Strategy<Value = ReplicaOp> {
    prop_oneof![
        6 => (1usize..4).prop_map(|records| ReplicaOp::Append { records }),
        2 => (0i32..3).prop_map(|bump| ReplicaOp::NewLeader { bump }),
        5 => proptest::collection::vec((1usize..4, 0i32..2), 1..5)
            .prop_map(|runs| ReplicaOp::Replica { runs }),
        2 => (0u16..1001).prop_map(|permille| ReplicaOp::Truncate { permille }),
        1 => (0u16..1001).prop_map(|permille| ReplicaOp::DeleteBefore { permille }),
        1 => (-5i64..30).prop_map(|ahead| ReplicaOp::TruncateFully { ahead }),
        2 => Just(ReplicaOp::Sync),
        1 => any::<bool>().prop_map(|sync_first| ReplicaOp::Crash { sync_first }),
    ]
}

/// What the log should hold: its batches (base offset, epoch, bytes; including those below
/// the log start that a segment may still hold), the log start, and the epoch cache.
#[derive(Default)]
struct EpochModel {
    batches: Vec<(i64, i32, Bytes)>,
    start: i64,
    end: i64,
    epoch: i32,
    cache: Reference,
}

impl EpochModel {
    /// The cache recovery rebuilds from the batches.
    fn rebuilt(&self) -> Vec<(i32, i64)> {
        let mut cache = Reference::default();
        for (base, epoch, _) in &self.batches {
            cache.assign(*epoch, *base);
        }
        cache.truncate_from_start(self.start);
        cache.0
    }

    fn cut(&mut self, offset: i64) -> i64 {
        let end_of = |b: &Bytes| BatchHeader::parse(b).expect("header").next_offset();
        let cut = self
            .batches
            .iter()
            .find(|(_, _, b)| end_of(b) > offset)
            .map_or(self.end, |(base, _, _)| *base)
            .min(self.end);
        self.batches.retain(|(_, _, b)| end_of(b) <= cut);
        self.start = self.start.min(cut);
        self.end = cut;
        cut
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    // Model test of the epoch cache through the log: after every operation the cache equals
    // the reference rules applied to the same events, and after every restart it equals the
    // cache rebuilt from the batches that survived (identical to the one before the crash,
    // but for an epoch recorded with no batch yet). Reads return the model's bytes.
    #[test]
    fn epoch_cache_follows_the_rules_and_survives_restarts(
        ops in proptest::collection::vec(arb_replica_op(), 1..50)
    ) {
        let mut config = small_config();
        config.sync_policy = SyncPolicy::Explicit;
        let mut h = Harness::open(config.clone());
        let mut m = EpochModel::default();
        let mut request = 0u64;
        for op in ops {
            request += 1;
            match op {
                ReplicaOp::Append { records } => {
                    let (base, _) = h.append_at(request, batch(records, request as u8, 40), m.epoch).expect("append");
                    prop_assert_eq!(base, m.end);
                    m.batches.push((base, m.epoch, stored_batch(base, m.epoch, records, request as u8)));
                    m.cache.assign(m.epoch, base);
                    m.end += records as i64;
                }
                ReplicaOp::NewLeader { bump } => {
                    m.epoch += bump;
                    h.log.assign_epoch(m.epoch);
                    m.cache.assign(m.epoch, m.end);
                }
                ReplicaOp::Replica { runs } => {
                    let mut run = Vec::new();
                    let first = m.end;
                    for (records, bump) in runs {
                        m.epoch += bump;
                        let b = stored_batch(m.end, m.epoch, records, request as u8);
                        m.batches.push((m.end, m.epoch, b.clone()));
                        m.cache.assign(m.epoch, m.end);
                        m.end += records as i64;
                        run.push(b);
                    }
                    let run: Vec<&Bytes> = run.iter().collect();
                    prop_assert_eq!(h.replica(request, concat(&run)), Ok((first, m.end - 1)));
                }
                ReplicaOp::Truncate { permille } => {
                    let offset = m.start + (m.end - m.start) * i64::from(permille) / 1000;
                    h.input(LogInput::TruncateTo { offset });
                    if offset >= m.end {
                        m.cache.truncate_from_end(m.end);
                    } else {
                        let cut = m.cut(offset);
                        m.cache.truncate_from_end(cut);
                    }
                }
                ReplicaOp::DeleteBefore { permille } => {
                    let offset = m.start + (m.end - m.start) * i64::from(permille) / 1000;
                    h.input(LogInput::DeleteBefore { offset });
                    if offset > m.start {
                        m.start = offset;
                        m.cache.truncate_from_start(offset);
                    }
                }
                ReplicaOp::TruncateFully { ahead } => {
                    let offset = (m.end + ahead).max(0);
                    h.input(LogInput::TruncateFullyAndStartAt { offset });
                    let truncated = LogOutput::Truncated { offset };
                    prop_assert!(h.events.contains(&truncated));
                    m.batches.clear();
                    (m.start, m.end) = (offset, offset);
                    m.cache.0.clear();
                }
                ReplicaOp::Sync => h.input(LogInput::Sync),
                ReplicaOp::Crash { sync_first } => {
                    if sync_first {
                        h.input(LogInput::Sync);
                    }
                    let before = h.log.epoch_entries().to_vec();
                    let durable = h.log.durable_offset();
                    h.disk.crash();
                    h.reopen(config.clone());
                    let (start, end) = (h.log.log_start_offset(), h.log.log_end_offset());
                    prop_assert!(durable <= end && end <= m.end);
                    prop_assert_eq!(recovered(&h.events).durable_data_lost, None);
                    // A restart at the log start (the data below it was lost) may end above
                    // every surviving batch.
                    m.cut(end);
                    (m.start, m.end) = (start, end);
                    let rebuilt = m.rebuilt();
                    let empty = start == end;
                    prop_assert!(h.log.epoch_entries() == rebuilt || (empty && h.log.epoch_entries().is_empty()),
                        "rebuilt {:?}, expected {:?}", h.log.epoch_entries(), rebuilt);
                    if sync_first && !empty {
                        let kept: Vec<(i32, i64)> = before.into_iter().filter(|(_, s)| *s < end).collect();
                        prop_assert_eq!(h.log.epoch_entries(), &kept[..]);
                    }
                    m.cache.0 = h.log.epoch_entries().to_vec();
                    let expected: Vec<u8> = m.batches.iter()
                        .filter(|(_, _, b)| BatchHeader::parse(b).expect("h").next_offset() > start)
                        .flat_map(|(_, _, b)| b.iter().copied())
                        .collect();
                    prop_assert_eq!(h.read_all(), expected);
                }
            }
            prop_assert_eq!(h.log.epoch_entries(), &m.cache.0[..]);
            prop_assert_eq!(h.log.log_end_offset(), m.end);
            prop_assert_eq!(h.log.log_start_offset(), m.start);
        }
    }
}
