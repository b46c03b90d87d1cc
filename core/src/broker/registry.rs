//! The topic registry file: which topics exist, their ids, partition counts and config
//! overrides, and which deleted topics still have files to remove.
//!
//! Partition logs live in directories named `<topic>-<partition>`, and a directory listing
//! shows only files, so this file is the one source of truth for what the broker serves. It
//! is written whole into one of two slots, alternating, and synced before the change it records
//! is acknowledged; recovery reads both and keeps the valid one with the higher sequence, so a
//! write torn by a crash leaves the previous state intact (the same scheme as the log
//! checkpoint).
//!
//! Layout, big-endian:
//!
//! ```text
//! magic u32 "SLTR" | version u16 | sequence u64 | body_len u32 | crc u32 | body
//! body:   topic_count u32, topic*, tombstone_count u32, tombstone*
//! topic:  name str16, id [16], partitions i32, config_count u16, (key str16, value str16)*
//! tombstone: name str16, id [16], partitions i32
//! ```
//!
//! The CRC-32C covers the header fields before it and the body. Bytes after the body (left
//! from an earlier, longer write to the same slot) are ignored.

use crate::constants::{METADATA_FILE_BYTES_MAX, TOPIC_NAME_BYTES_MAX};
use std::collections::BTreeMap;
use uuid::Uuid;

/// Directory of the registry files, relative to the data directory. It cannot collide with a
/// partition directory: those always end in `-<number>`.
pub const REGISTRY_DIR: &str = "seedlog-meta";
/// The two slot file names.
pub const REGISTRY_SLOTS: [&str; 2] = ["topics.0", "topics.1"];

const MAGIC: u32 = 0x534c_5452;
/// Version 2 added the metadata offset, version 3 the storage id; older files still load.
const VERSION: u16 = 3;
const HEADER_LEN: usize = 4 + 2 + 8 + 4 + 4;
const CRC_AT: usize = 18;

/// One topic as persisted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicRecord {
    /// Topic name.
    pub name: String,
    /// Topic id (KIP-516).
    pub id: Uuid,
    /// Number of partitions.
    pub partitions: i32,
    /// Config overrides as the client sent them.
    pub overrides: BTreeMap<String, String>,
}

/// A deleted topic whose partition files may still exist.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TombstoneRecord {
    /// Topic name.
    pub name: String,
    /// Topic id.
    pub id: Uuid,
    /// Number of partitions (directories `<name>-0` .. `<name>-<n-1>`).
    pub partitions: i32,
}

/// The registry's content.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Registry {
    /// Write sequence; the slot with the higher one wins on recovery.
    pub sequence: u64,
    /// Live topics.
    pub topics: Vec<TopicRecord>,
    /// Deleted topics with files left to remove.
    pub tombstones: Vec<TombstoneRecord>,
    /// In a cluster: the offset of the metadata image the topics reflect. An image older than
    /// this (a voter replaying its log, a delayed heartbeat answer) must not remove topics
    /// this broker already knows to exist. 0 for a single broker.
    pub metadata_offset: u64,
    /// In a cluster: the identity of this data directory, chosen when it was first used (0:
    /// none yet). A disk wiped or replaced comes back without it and gets a new one.
    pub storage_id: u64,
}

/// The slot a registry of `sequence` is written to.
pub fn slot_of(sequence: u64) -> &'static str {
    REGISTRY_SLOTS[(sequence % 2) as usize]
}

/// Path of a slot file.
pub fn slot_path(slot: &str) -> String {
    format!("{REGISTRY_DIR}/{slot}")
}

impl Registry {
    /// Encodes the registry; `None` if it would exceed [`METADATA_FILE_BYTES_MAX`].
    pub fn encode(&self) -> Option<Vec<u8>> {
        let mut body = Vec::new();
        put_u32(&mut body, self.topics.len() as u32);
        for topic in &self.topics {
            put_str(&mut body, &topic.name)?;
            body.extend_from_slice(topic.id.as_bytes());
            body.extend_from_slice(&topic.partitions.to_be_bytes());
            body.extend_from_slice(&(topic.overrides.len() as u16).to_be_bytes());
            for (key, value) in &topic.overrides {
                put_str(&mut body, key)?;
                put_str(&mut body, value)?;
            }
        }
        put_u32(&mut body, self.tombstones.len() as u32);
        for tombstone in &self.tombstones {
            put_str(&mut body, &tombstone.name)?;
            body.extend_from_slice(tombstone.id.as_bytes());
            body.extend_from_slice(&tombstone.partitions.to_be_bytes());
        }
        body.extend_from_slice(&self.metadata_offset.to_be_bytes());
        body.extend_from_slice(&self.storage_id.to_be_bytes());
        if HEADER_LEN + body.len() > METADATA_FILE_BYTES_MAX as usize {
            return None;
        }
        let mut out = Vec::with_capacity(HEADER_LEN + body.len());
        put_u32(&mut out, MAGIC);
        out.extend_from_slice(&VERSION.to_be_bytes());
        out.extend_from_slice(&self.sequence.to_be_bytes());
        put_u32(&mut out, body.len() as u32);
        let crc = crc32c::crc32c_append(crc32c::crc32c(&out[..CRC_AT]), &body);
        put_u32(&mut out, crc);
        out.extend_from_slice(&body);
        debug_assert_eq!(Registry::decode(&out).as_ref(), Some(self));
        Some(out)
    }

    /// Decodes a slot file; `None` if it is torn, damaged or of an unknown format.
    pub fn decode(bytes: &[u8]) -> Option<Registry> {
        let mut r = Reader { bytes, pos: 0 };
        if r.u32()? != MAGIC {
            return None;
        }
        let version = r.u16()?;
        if !(1..=VERSION).contains(&version) {
            return None;
        }
        let sequence = r.u64()?;
        let body_len = r.u32()? as usize;
        let crc = r.u32()?;
        let body = bytes.get(HEADER_LEN..HEADER_LEN.checked_add(body_len)?)?;
        if crc32c::crc32c_append(crc32c::crc32c(&bytes[..CRC_AT]), body) != crc {
            return None;
        }
        let mut r = Reader {
            bytes: body,
            pos: 0,
        };
        let mut registry = Registry {
            sequence,
            ..Registry::default()
        };
        for _ in 0..r.u32()? {
            registry.topics.push(r.topic()?);
        }
        for _ in 0..r.u32()? {
            let name = r.str()?;
            let id = r.uuid()?;
            let partitions = r.i32()?;
            registry.tombstones.push(TombstoneRecord {
                name,
                id,
                partitions,
            });
        }
        if version >= 2 {
            registry.metadata_offset = r.u64()?;
        }
        if version >= 3 {
            registry.storage_id = r.u64()?;
        }
        (r.pos == body.len()).then_some(registry)
    }
}

/// Whether `name` is a legal Kafka topic name: 1..=249 of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn topic_name_error(name: &str) -> Option<String> {
    if name.is_empty() || name == "." || name == ".." {
        return Some(format!("topic name {name:?} is illegal"));
    }
    if name.len() > TOPIC_NAME_BYTES_MAX {
        return Some(format!(
            "topic name is longer than {TOPIC_NAME_BYTES_MAX} characters"
        ));
    }
    let legal = |c: char| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-';
    if !name.chars().all(legal) {
        return Some(format!(
            "topic name {name:?} contains characters other than ASCII alphanumerics, '.', '_' and '-'"
        ));
    }
    None
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) -> Option<()> {
    let len = u16::try_from(s.len()).ok()?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(s.as_bytes());
    Some(())
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let out = self.bytes.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(out)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }
    fn uuid(&mut self) -> Option<Uuid> {
        Some(Uuid::from_bytes(self.take(16)?.try_into().ok()?))
    }
    fn str(&mut self) -> Option<String> {
        let len = self.u16()? as usize;
        String::from_utf8(self.take(len)?.to_vec()).ok()
    }
    fn topic(&mut self) -> Option<TopicRecord> {
        let name = self.str()?;
        let id = self.uuid()?;
        let partitions = self.i32()?;
        let mut overrides = BTreeMap::new();
        for _ in 0..self.u16()? {
            let key = self.str()?;
            let value = self.str()?;
            overrides.insert(key, value);
        }
        Some(TopicRecord {
            name,
            id,
            partitions,
            overrides,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A registry survives encode/decode, and any single flipped byte is detected, because
    /// recovery must never serve a topic list the disk damaged.
    #[test]
    fn round_trip_and_damage_detection() {
        let registry = Registry {
            sequence: 7,
            topics: vec![TopicRecord {
                name: "orders".into(),
                id: Uuid::from_u128(42),
                partitions: 3,
                overrides: [("retention.ms".to_owned(), "1000".to_owned())].into(),
            }],
            tombstones: vec![TombstoneRecord {
                name: "old".into(),
                id: Uuid::from_u128(9),
                partitions: 1,
            }],
            metadata_offset: 77,
            storage_id: 0x5eed,
        };
        let bytes = registry.encode().expect("small registry encodes");
        assert_eq!(Registry::decode(&bytes), Some(registry.clone()));
        let mut longer = bytes.clone();
        longer.extend_from_slice(b"stale tail of an older, longer write");
        assert_eq!(Registry::decode(&longer), Some(registry));
        for i in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[i] ^= 0x40;
            assert_eq!(Registry::decode(&damaged), None, "flip at byte {i}");
        }
        assert_eq!(Registry::decode(&bytes[..bytes.len() - 1]), None);
    }

    /// Topic names follow Kafka's rules, so a name that is legal here is legal everywhere.
    #[test]
    fn topic_names() {
        assert!(topic_name_error("orders.v1_x-2").is_none());
        for bad in ["", ".", "..", "a/b", "a b", "ä", &"x".repeat(250)] {
            assert!(topic_name_error(bad).is_some(), "{bad:?}");
        }
    }
}
