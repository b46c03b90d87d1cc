//! The trace hash: a running FNV-1a over every event a run processes. Two runs of the same seed
//! on the same code must end with the same hash; a different hash means something outside the
//! seed (a clock, an unordered map, a thread) leaked into the run.

/// A running 64-bit FNV-1a hash.
#[derive(Clone, Debug)]
pub struct TraceHash(u64);

impl Default for TraceHash {
    fn default() -> Self {
        TraceHash(0xcbf2_9ce4_8422_2325)
    }
}

impl TraceHash {
    /// Mixes in a list of integers.
    pub fn add(&mut self, words: &[u64]) {
        for word in words {
            self.add_bytes(&word.to_le_bytes());
        }
    }

    /// Mixes in a string.
    pub fn add_str(&mut self, s: &str) {
        self.add_bytes(s.as_bytes());
        self.add_bytes(&[0xff]);
    }

    fn add_bytes(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    /// The hash so far.
    pub fn finish(&self) -> u64 {
        self.0
    }
}
