//! The log's checkpoint: the recovery point (every batch below it was synced) and the log start
//! offset, like Kafka's `recovery-point-offset-checkpoint` and `log-start-offset-checkpoint`.
//!
//! It is written after every completed data sync, alternating between two slot files with a
//! rising sequence number and a CRC, so a torn checkpoint write leaves the previous one intact.
//! Recovery uses it to tell a torn tail (never synced: truncate quietly) from corruption of
//! synced data (truncate and report).

/// Size of one encoded checkpoint.
pub const CHECKPOINT_LEN: usize = 36;
const MAGIC: &[u8; 4] = b"SLCK";
const VERSION: u32 = 1;

/// The two slot file names.
pub const SLOTS: [&str; 2] = ["checkpoint.0", "checkpoint.1"];

/// A decoded checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// Rises with every checkpoint written; the highest valid one wins.
    pub sequence: u64,
    /// Every batch below this offset was durable when the checkpoint was written.
    pub recovery_point: i64,
    /// The log start offset.
    pub log_start_offset: i64,
}

impl Checkpoint {
    /// The slot this checkpoint is written to.
    pub fn slot(&self) -> &'static str {
        SLOTS[(self.sequence % 2) as usize]
    }

    /// Encodes with a trailing CRC-32C.
    pub fn encode(&self) -> [u8; CHECKPOINT_LEN] {
        let mut out = [0u8; CHECKPOINT_LEN];
        out[0..4].copy_from_slice(MAGIC);
        out[4..8].copy_from_slice(&VERSION.to_be_bytes());
        out[8..16].copy_from_slice(&self.sequence.to_be_bytes());
        out[16..24].copy_from_slice(&self.recovery_point.to_be_bytes());
        out[24..32].copy_from_slice(&self.log_start_offset.to_be_bytes());
        let crc = crc32c::crc32c(&out[..32]);
        out[32..36].copy_from_slice(&crc.to_be_bytes());
        out
    }

    /// Decodes, or `None` if the bytes are short, torn or corrupt.
    pub fn decode(bytes: &[u8]) -> Option<Checkpoint> {
        if bytes.len() < CHECKPOINT_LEN || &bytes[0..4] != MAGIC {
            return None;
        }
        let word = |at: usize| -> [u8; 8] { bytes[at..at + 8].try_into().expect("8 bytes") };
        let crc = u32::from_be_bytes(bytes[32..36].try_into().expect("4 bytes"));
        if crc != crc32c::crc32c(&bytes[..32]) {
            return None;
        }
        if u32::from_be_bytes(bytes[4..8].try_into().expect("4 bytes")) != VERSION {
            return None;
        }
        let checkpoint = Checkpoint {
            sequence: u64::from_be_bytes(word(8)),
            recovery_point: i64::from_be_bytes(word(16)),
            log_start_offset: i64::from_be_bytes(word(24)),
        };
        if checkpoint.recovery_point < 0 || checkpoint.log_start_offset < 0 {
            return None;
        }
        Some(checkpoint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A checkpoint survives a round trip, and any damage to it is detected rather than trusted.
    #[test]
    fn round_trip_and_damage_detection() {
        let c = Checkpoint {
            sequence: 7,
            recovery_point: 100,
            log_start_offset: 3,
        };
        let bytes = c.encode();
        assert_eq!(Checkpoint::decode(&bytes), Some(c));
        assert_eq!(c.slot(), "checkpoint.1");
        for i in 0..CHECKPOINT_LEN {
            let mut bad = bytes;
            bad[i] ^= 0x10;
            assert_eq!(Checkpoint::decode(&bad), None, "flip at byte {i}");
        }
        assert_eq!(Checkpoint::decode(&bytes[..20]), None);
    }
}
