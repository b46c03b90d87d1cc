//! On-disk formats of a controller voter, all under `raft/`:
//!
//! - `vote.0` / `vote.1`: the durable term and vote (Raft figure 2 "persistent state"), written
//!   alternately with a rising sequence number and a CRC-32C, like the log checkpoint, so a
//!   torn write leaves the previous record intact.
//! - `snapshot.0` / `snapshot.1`: the latest state-machine snapshot (KIP-630), two slots for the
//!   same reason.
//! - `log`: CRC-framed entries appended in index order. Recovery keeps the longest valid,
//!   index-contiguous prefix and truncates the rest (a torn tail was never synced, so never
//!   acknowledged).

use super::message::{Entry, NodeId, Payload};
use bytes::{BufMut, Bytes, BytesMut};

/// The vote slot files.
pub const VOTE_SLOTS: [&str; 2] = ["raft/vote.0", "raft/vote.1"];
/// The snapshot slot files.
pub const SNAPSHOT_SLOTS: [&str; 2] = ["raft/snapshot.0", "raft/snapshot.1"];
/// The entry log file.
pub const LOG_FILE: &str = "raft/log";
/// The directory listed on recovery.
pub const DIR: &str = "raft";

const VOTE_MAGIC: &[u8; 4] = b"SLRV";
const SNAPSHOT_MAGIC: &[u8; 4] = b"SLRS";
/// Encoded size of a vote record.
pub const VOTE_LEN: usize = 28;
const NO_VOTE: u32 = u32::MAX;
/// Bytes of an entry record's frame (length and CRC) before its body.
pub const ENTRY_FRAME_LEN: usize = 8;
const ENTRY_BODY_FIXED: usize = 17;

/// The durable term and vote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VoteRecord {
    /// Rises with every record written; the highest valid slot wins.
    pub sequence: u64,
    /// The current term.
    pub term: u64,
    /// Who this voter voted for in `term`.
    pub voted_for: Option<NodeId>,
}

impl VoteRecord {
    /// The slot file this record goes to.
    pub fn slot(&self) -> &'static str {
        VOTE_SLOTS[(self.sequence % 2) as usize]
    }

    /// Encodes with a trailing CRC-32C.
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(VOTE_LEN);
        out.put_slice(VOTE_MAGIC);
        out.put_u64(self.sequence);
        out.put_u64(self.term);
        out.put_u32(self.voted_for.unwrap_or(NO_VOTE));
        let crc = crc32c::crc32c(&out);
        out.put_u32(crc);
        debug_assert_eq!(out.len(), VOTE_LEN);
        out.freeze()
    }

    /// Decodes, or `None` if short, torn or corrupt.
    pub fn decode(bytes: &[u8]) -> Option<VoteRecord> {
        if bytes.len() < VOTE_LEN || &bytes[0..4] != VOTE_MAGIC {
            return None;
        }
        let crc = u32::from_be_bytes(bytes[24..28].try_into().ok()?);
        if crc != crc32c::crc32c(&bytes[..24]) {
            return None;
        }
        let voted_for = u32::from_be_bytes(bytes[20..24].try_into().ok()?);
        Some(VoteRecord {
            sequence: u64::from_be_bytes(bytes[4..12].try_into().ok()?),
            term: u64::from_be_bytes(bytes[12..20].try_into().ok()?),
            voted_for: (voted_for != NO_VOTE).then_some(voted_for),
        })
    }
}

/// A state-machine snapshot and the log position it covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// Rises with every snapshot written; the highest valid slot wins.
    pub sequence: u64,
    /// Last index covered.
    pub last_index: u64,
    /// Term of that entry.
    pub last_term: u64,
    /// The owner's opaque bytes.
    pub data: Bytes,
}

impl Snapshot {
    /// The slot file this snapshot goes to.
    pub fn slot(&self) -> &'static str {
        SNAPSHOT_SLOTS[(self.sequence % 2) as usize]
    }

    /// Encodes as magic, sequence, index, term, length, data, CRC-32C of all before it.
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(36 + self.data.len() + 4);
        out.put_slice(SNAPSHOT_MAGIC);
        out.put_u64(self.sequence);
        out.put_u64(self.last_index);
        out.put_u64(self.last_term);
        out.put_u32(u32::try_from(self.data.len()).expect("snapshot size is bounded"));
        out.put_slice(&self.data);
        let crc = crc32c::crc32c(&out);
        out.put_u32(crc);
        out.freeze()
    }

    /// Decodes (ignoring trailing bytes left by a longer earlier snapshot), or `None`.
    pub fn decode(bytes: &[u8]) -> Option<Snapshot> {
        if bytes.len() < 36 || &bytes[0..4] != SNAPSHOT_MAGIC {
            return None;
        }
        let len = u32::from_be_bytes(bytes[28..32].try_into().ok()?) as usize;
        let end = 32usize.checked_add(len)?;
        let crc_bytes = bytes.get(end..end.checked_add(4)?)?;
        if u32::from_be_bytes(crc_bytes.try_into().ok()?) != crc32c::crc32c(&bytes[..end]) {
            return None;
        }
        Some(Snapshot {
            sequence: u64::from_be_bytes(bytes[4..12].try_into().ok()?),
            last_index: u64::from_be_bytes(bytes[12..20].try_into().ok()?),
            last_term: u64::from_be_bytes(bytes[20..28].try_into().ok()?),
            data: Bytes::copy_from_slice(&bytes[32..end]),
        })
    }
}

/// Encodes one entry record: body length, CRC-32C of the body, then index, term, kind, command.
pub fn encode_entry(entry: &Entry, out: &mut BytesMut) {
    let command: &[u8] = match &entry.payload {
        Payload::Noop => &[],
        Payload::Command(c) => c,
    };
    let mut body = BytesMut::with_capacity(ENTRY_BODY_FIXED + command.len());
    body.put_u64(entry.index);
    body.put_u64(entry.term);
    body.put_u8(u8::from(matches!(entry.payload, Payload::Command(_))));
    body.put_slice(command);
    out.put_u32(u32::try_from(body.len()).expect("entry size is bounded"));
    out.put_u32(crc32c::crc32c(&body));
    out.put_slice(&body);
}

/// Decodes the entry record at the start of `bytes`: the entry and the record's length, or
/// `None` if the record is short, torn or corrupt.
pub fn decode_entry(bytes: &[u8]) -> Option<(Entry, usize)> {
    let len = u32::from_be_bytes(bytes.get(0..4)?.try_into().ok()?) as usize;
    let crc = u32::from_be_bytes(bytes.get(4..8)?.try_into().ok()?);
    let body = bytes.get(ENTRY_FRAME_LEN..ENTRY_FRAME_LEN.checked_add(len)?)?;
    if len < ENTRY_BODY_FIXED || crc32c::crc32c(body) != crc {
        return None;
    }
    let payload = match body[16] {
        0 if len == ENTRY_BODY_FIXED => Payload::Noop,
        1 => Payload::Command(Bytes::copy_from_slice(&body[ENTRY_BODY_FIXED..])),
        _ => return None,
    };
    let entry = Entry {
        index: u64::from_be_bytes(body[0..8].try_into().ok()?),
        term: u64::from_be_bytes(body[8..16].try_into().ok()?),
        payload,
    };
    Some((entry, ENTRY_FRAME_LEN + len))
}

/// What recovery found in the log file: the valid contiguous entries with their byte positions,
/// and where the valid prefix ends.
#[derive(Debug, Default)]
pub struct ScannedLog {
    /// Valid entries, index-contiguous.
    pub entries: Vec<(Entry, u64)>,
    /// Byte length of the valid prefix.
    pub valid_len: u64,
}

/// Scans a log file's bytes, stopping at the first invalid or non-contiguous record.
pub fn scan_log(bytes: &[u8], records_max: usize) -> ScannedLog {
    let mut scanned = ScannedLog::default();
    let mut position = 0usize;
    // Bounded by the file's length: every record is at least ENTRY_FRAME_LEN bytes.
    while scanned.entries.len() < records_max {
        let Some((entry, len)) = decode_entry(&bytes[position..]) else {
            break;
        };
        let contiguous = scanned
            .entries
            .last()
            .is_none_or(|(last, _)| last.index + 1 == entry.index && last.term <= entry.term);
        if !contiguous || entry.index == 0 {
            break;
        }
        scanned.entries.push((entry, position as u64));
        position += len;
    }
    scanned.valid_len = position as u64;
    scanned
}

#[cfg(test)]
mod tests {
    use super::*;

    // Every persisted record survives a round trip and any single flipped bit is detected,
    // because recovery must never trust a damaged vote, snapshot or entry.
    #[test]
    fn records_round_trip_and_detect_damage() {
        let vote = VoteRecord {
            sequence: 3,
            term: 9,
            voted_for: Some(2),
        };
        let bytes = vote.encode();
        assert_eq!(VoteRecord::decode(&bytes), Some(vote));
        for bit in 0..VOTE_LEN * 8 {
            let mut bad = bytes.to_vec();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(VoteRecord::decode(&bad), None, "bit {bit}");
        }
        let snapshot = Snapshot {
            sequence: 1,
            last_index: 40,
            last_term: 3,
            data: Bytes::from_static(b"state"),
        };
        let mut bytes = snapshot.encode().to_vec();
        assert_eq!(Snapshot::decode(&bytes).as_ref(), Some(&snapshot));
        bytes.extend_from_slice(b"trailing garbage");
        assert_eq!(Snapshot::decode(&bytes).as_ref(), Some(&snapshot));
        bytes[33] ^= 1;
        assert_eq!(Snapshot::decode(&bytes), None);
    }

    // A torn last entry and a non-contiguous entry both end the valid prefix.
    #[test]
    fn scan_stops_at_torn_or_gapped_entries() {
        let mut out = BytesMut::new();
        for index in 1..=3 {
            let entry = Entry {
                index,
                term: 1,
                payload: Payload::Command(Bytes::from_static(b"abc")),
            };
            encode_entry(&entry, &mut out);
        }
        let whole = out.len();
        let scanned = scan_log(&out, 100);
        assert_eq!(scanned.entries.len(), 3);
        assert_eq!(scanned.valid_len, whole as u64);
        let torn = scan_log(&out[..whole - 1], 100);
        assert_eq!(torn.entries.len(), 2);
        encode_entry(
            &Entry {
                index: 9,
                term: 1,
                payload: Payload::Noop,
            },
            &mut out,
        );
        assert_eq!(scan_log(&out, 100).valid_len, whole as u64);
    }
}
