//! The one source of randomness in core: a seeded ChaCha stream owned by each state machine.

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

/// A seeded pseudo-random generator. Nothing in core draws randomness from anywhere else, so a
/// run replays exactly from its seed.
#[derive(Clone, Debug)]
pub struct Prng {
    rng: ChaCha8Rng,
}

impl Prng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Prng {
        Prng {
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// A uniformly random `u64`.
    pub fn next_u64(&mut self) -> u64 {
        self.rng.next_u64()
    }

    /// A uniform value in `0..bound` (`bound > 0`), by Lemire's multiply-shift with rejection.
    pub fn below(&mut self, bound: u64) -> u64 {
        assert!(bound > 0, "below(0) has no answer");
        let threshold = bound.wrapping_neg() % bound;
        loop {
            let product = u128::from(self.next_u64()) * u128::from(bound);
            if (product as u64) >= threshold {
                return (product >> 64) as u64;
            }
        }
    }

    /// A uniform value in `low..=high`.
    pub fn range_inclusive(&mut self, low: u64, high: u64) -> u64 {
        assert!(low <= high);
        if high - low == u64::MAX {
            return self.next_u64();
        }
        low + self.below(high - low + 1)
    }

    /// True with probability `p` (clamped to `[0, 1]`).
    pub fn chance(&mut self, p: f64) -> bool {
        if p <= 0.0 {
            return false;
        }
        // 53 random bits give a uniform float in [0, 1).
        let unit = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        unit < p
    }

    /// Fills `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        self.rng.fill_bytes(buf);
    }

    /// A new generator whose stream is independent of this one's continuation.
    pub fn fork(&mut self) -> Prng {
        Prng::new(self.next_u64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The same seed must give the same stream: this is what makes a simulator run replayable.
    #[test]
    fn same_seed_same_stream() {
        let mut a = Prng::new(42);
        let mut b = Prng::new(42);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        assert_ne!(Prng::new(1).next_u64(), Prng::new(2).next_u64());
    }

    // `below` must stay in range for awkward bounds (1, non-powers of two, u64::MAX).
    #[test]
    fn below_stays_in_range() {
        let mut p = Prng::new(7);
        for bound in [1u64, 3, 10, 1 << 40, u64::MAX] {
            for _ in 0..200 {
                assert!(p.below(bound) < bound);
            }
        }
        assert_eq!(p.range_inclusive(5, 5), 5);
    }
}
