//! One segment of a partition log: a file of batches plus its sparse in-memory indexes.
//!
//! Kafka keeps an offset index (offset → file position) and a time index (timestamp → offset)
//! per segment, each sparse: one entry every `index.interval.bytes`. We keep both in memory and
//! rebuild them while recovery scans the segment, so they can never disagree with the data.

use crate::record_batch::BatchHeader;
use crate::time::Instant;

/// A segment's in-memory state.
#[derive(Clone, Debug)]
pub struct Segment {
    /// Offset of the first batch; also the file name.
    pub base_offset: i64,
    /// Offset after the last batch (== `base_offset` when empty).
    pub next_offset: i64,
    /// Bytes of batches in the file.
    pub size: u64,
    /// When the segment was created (for `segment.ms` rolling).
    pub created: Instant,
    /// Largest batch timestamp seen, or -1.
    pub max_timestamp: i64,
    /// Sparse (offset, position) entries, increasing in both.
    offset_index: Vec<(i64, u64)>,
    /// Sparse (timestamp, offset) entries, increasing in both.
    time_index: Vec<(i64, i64)>,
    bytes_since_index_entry: u64,
    index_interval_bytes: u64,
    /// True while writes to the file are not yet covered by a completed sync.
    pub dirty: bool,
}

impl Segment {
    /// An empty segment starting at `base_offset`.
    pub fn new(base_offset: i64, created: Instant, index_interval_bytes: u64) -> Segment {
        assert!(base_offset >= 0);
        assert!(index_interval_bytes > 0);
        Segment {
            base_offset,
            next_offset: base_offset,
            size: 0,
            created,
            max_timestamp: -1,
            offset_index: Vec::new(),
            time_index: Vec::new(),
            bytes_since_index_entry: 0,
            index_interval_bytes,
            dirty: false,
        }
    }

    /// The segment's file name inside the log directory.
    pub fn file_name(base_offset: i64) -> String {
        format!("{base_offset:020}.log")
    }

    /// Parses a segment file name back to its base offset.
    pub fn parse_file_name(name: &str) -> Option<i64> {
        let digits = name.strip_suffix(".log")?;
        if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    }

    /// Records a batch appended at the end of the file and updates both indexes.
    pub fn push_batch(&mut self, header: &BatchHeader) {
        assert_eq!(
            header.base_offset, self.next_offset,
            "batches in a segment are dense"
        );
        let position = self.size;
        if self.offset_index.is_empty() || self.bytes_since_index_entry >= self.index_interval_bytes
        {
            self.offset_index.push((header.base_offset, position));
            self.bytes_since_index_entry = 0;
        }
        if header.max_timestamp > self.max_timestamp {
            self.max_timestamp = header.max_timestamp;
            let last = self.time_index.last().map(|(t, _)| *t);
            if last.is_none_or(|t| header.max_timestamp > t) {
                self.time_index
                    .push((header.max_timestamp, header.base_offset));
            }
        }
        self.bytes_since_index_entry += header.size();
        self.size += header.size();
        self.next_offset = header.next_offset();
        debug_assert!(self
            .offset_index
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 < w[1].1));
    }

    /// The index entry to start a scan for `offset` from: the last entry at or below it.
    pub fn lookup_offset(&self, offset: i64) -> (i64, u64) {
        assert!(offset >= self.base_offset);
        let i = self.offset_index.partition_point(|(o, _)| *o <= offset);
        if i == 0 {
            (self.base_offset, 0)
        } else {
            self.offset_index[i - 1]
        }
    }

    /// The offset to start a timestamp search from: the first batch whose running maximum
    /// timestamp reaches `timestamp`, or `None` if no batch does.
    pub fn lookup_timestamp(&self, timestamp: i64) -> Option<i64> {
        let i = self.time_index.partition_point(|(t, _)| *t < timestamp);
        self.time_index.get(i).map(|(_, o)| *o)
    }

    /// Forgets everything at or after `offset`, which must be a batch boundary at `position`.
    pub fn truncate(&mut self, offset: i64, position: u64) {
        assert!(offset >= self.base_offset && offset <= self.next_offset);
        assert!(position <= self.size);
        self.offset_index.retain(|(o, _)| *o < offset);
        self.time_index.retain(|(_, o)| *o < offset);
        self.max_timestamp = self.time_index.last().map_or(-1, |(t, _)| *t);
        self.next_offset = offset;
        self.size = position;
        self.bytes_since_index_entry = self.index_interval_bytes;
    }

    /// Number of offset index entries (for tests and metrics).
    pub fn offset_index_len(&self) -> usize {
        self.offset_index.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record_batch::{encode, BatchSpec, NewRecord};

    fn header(base: i64, records: usize, timestamp: i64) -> BatchHeader {
        let recs: Vec<NewRecord> = (0..records)
            .map(|_| NewRecord {
                timestamp,
                key: None,
                value: None,
                headers: vec![],
            })
            .collect();
        let bytes = encode(
            &BatchSpec {
                base_offset: base,
                ..BatchSpec::default()
            },
            &recs,
        );
        BatchHeader::parse(&bytes).expect("header")
    }

    // The sparse index must be sparse (about one entry per interval) yet always find a start
    // position at or before the batch that holds an offset.
    #[test]
    fn sparse_index_finds_start_positions() {
        let mut seg = Segment::new(0, Instant::ZERO, 200);
        let mut positions = Vec::new();
        for i in 0..100 {
            positions.push((seg.next_offset, seg.size));
            seg.push_batch(&header(seg.next_offset, 1 + i % 3, i as i64));
        }
        assert!(seg.offset_index_len() < 100 && seg.offset_index_len() > 5);
        for (offset, position) in positions {
            let (o, p) = seg.lookup_offset(offset);
            assert!(o <= offset && p <= position);
        }
        assert_eq!(seg.lookup_timestamp(50), Some(positions_offset(&seg, 50)));
        assert_eq!(seg.lookup_timestamp(1000), None);
    }

    fn positions_offset(seg: &Segment, ts: i64) -> i64 {
        seg.time_index
            .iter()
            .find(|(t, _)| *t >= ts)
            .map(|(_, o)| *o)
            .expect("entry")
    }

    #[test]
    fn file_names_round_trip() {
        assert_eq!(Segment::parse_file_name(&Segment::file_name(42)), Some(42));
        assert_eq!(Segment::parse_file_name("42.log"), None);
        assert_eq!(Segment::parse_file_name("checkpoint.0"), None);
    }
}
