//! Small shared helpers: a fast non-cryptographic hasher for lookup-only hash maps, and the
//! splitmix64 mixer used for the incremental hashes of the linearizability memo.
//!
//! Hash maps in this crate are only ever looked up, never iterated where the order would reach
//! the output, so a check stays a pure function of its history.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// A multiply-rotate hasher in the style of rustc's FxHash: much faster than SipHash for the
/// small integer keys the checkers use, and deterministic.
#[derive(Clone, Copy, Default)]
pub struct FastHasher {
    hash: u64,
}

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl Hasher for FastHasher {
    fn finish(&self) -> u64 {
        self.hash
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.hash = (self.hash.rotate_left(5) ^ value).wrapping_mul(SEED);
    }

    fn write_u32(&mut self, value: u32) {
        self.write_u64(u64::from(value));
    }

    fn write_i64(&mut self, value: i64) {
        self.write_u64(value as u64);
    }

    fn write_usize(&mut self, value: usize) {
        self.write_u64(value as u64);
    }
}

/// A hash map keyed with [`FastHasher`]; lookup only, never iterated into output.
pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;
/// A hash set keyed with [`FastHasher`]; membership only.
pub type FastSet<K> = HashSet<K, BuildHasherDefault<FastHasher>>;

/// splitmix64: a bijective 64-bit mixer with good avalanche, so independent inputs give
/// independent-looking hashes (used to give each operation a random 64-bit tag).
#[must_use]
pub fn mix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Keeps at most `max` evenly spaced points of a series, always including the last one, so
/// plots of long runs stay small.
#[must_use]
pub fn downsample<T: Copy>(points: &[T], max: usize) -> Vec<T> {
    if points.len() <= max || max < 2 {
        return points.to_vec();
    }
    let step = points.len().div_ceil(max - 1);
    let mut out: Vec<T> = points.iter().step_by(step).copied().collect();
    if let Some(last) = points.last() {
        out.push(*last);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // The mixer must be a bijection on small inputs (distinct op tags), or the memo's
    // incremental set hash would collide systematically.
    #[test]
    fn mix64_distinct_on_small_inputs() {
        let tags: FastSet<u64> = (0..10_000u64).map(mix64).collect();
        assert_eq!(tags.len(), 10_000);
    }

    // Downsampling must bound the size and keep the final point, which the unseen plot needs.
    #[test]
    fn downsample_bounds_and_keeps_last() {
        let points: Vec<u32> = (0..1000).collect();
        let out = downsample(&points, 10);
        assert!(out.len() <= 11);
        assert_eq!(out.last(), Some(&999));
        assert_eq!(downsample(&points[..5], 10), vec![0, 1, 2, 3, 4]);
    }
}
