//! A simulated disk that executes a state machine's disk requests, with faults.
//!
//! Each file has a *volatile* image (what reads see: the page cache) and a *durable* image
//! (what survives power loss), plus the list of operations applied since its last successful
//! sync. A power loss rebuilds every file from its durable image plus a random prefix of those
//! unsynced operations, the last of which may be torn (only a prefix of its bytes lands). A
//! process crash keeps the page cache. Every fault is drawn from the seeded PRNG at the rate the
//! seed chose, and every corruption is recorded so the checker can tell a detected fault from a
//! silent bug.

use bytes::Bytes;
use seedlog_core::io::{DiskError, DiskOp, DiskOutcome, FileEntry};
use seedlog_core::{Instant, Prng};
use std::collections::BTreeMap;

/// Fault rates for one seed; zero switches a fault kind off.
#[derive(Clone, Debug)]
pub struct DiskFaults {
    /// Chance a power loss tears the first unsynced operation it keeps partway.
    pub torn_write: f64,
    /// Chance a read returns one flipped bit (the stored bytes stay intact).
    pub bit_flip_on_read: f64,
    /// Chance a sync fails (the data is not made durable).
    pub sync_error: f64,
    /// Chance a write fails with ENOSPC (nothing written).
    pub no_space: f64,
    /// Chance a write fails with EIO (nothing written).
    pub write_error: f64,
    /// Chance a read fails with EIO.
    pub read_error: f64,
    /// Operation latency range in microseconds.
    pub latency_us: (u64, u64),
    /// Chance an operation takes a latency spike (100x the maximum).
    pub latency_spike: f64,
}

impl DiskFaults {
    /// No faults and fixed latency.
    pub fn none() -> DiskFaults {
        DiskFaults {
            torn_write: 0.0,
            bit_flip_on_read: 0.0,
            sync_error: 0.0,
            no_space: 0.0,
            write_error: 0.0,
            read_error: 0.0,
            latency_us: (10, 10),
            latency_spike: 0.0,
        }
    }
}

#[derive(Clone, Debug)]
enum Unsynced {
    Write { position: u64, bytes: Bytes },
    Truncate { len: u64 },
}

#[derive(Clone, Debug, Default)]
struct SimFile {
    volatile: Vec<u8>,
    /// `None` until the file's first successful sync.
    durable: Option<Vec<u8>>,
    unsynced: Vec<Unsynced>,
}

/// What the checker needs to know about corruption the disk injected.
#[derive(Clone, Copy, Debug, Default)]
pub struct CorruptionRecord {
    /// When the last bit flip at rest hit this file.
    pub at_rest: Option<Instant>,
    /// When the last read of this file returned a flipped bit.
    pub on_read: Option<Instant>,
}

/// The simulated disk of one node.
#[derive(Debug, Default)]
pub struct SimDisk {
    files: BTreeMap<String, SimFile>,
    corruption: BTreeMap<String, CorruptionRecord>,
}

impl SimDisk {
    /// Executes one operation now, drawing faults from `prng`.
    pub fn execute(
        &mut self,
        now: Instant,
        op: &DiskOp,
        faults: &DiskFaults,
        prng: &mut Prng,
    ) -> Result<DiskOutcome, DiskError> {
        match op {
            DiskOp::List { dir } => Ok(DiskOutcome::Listed(self.list(dir))),
            DiskOp::Read {
                file,
                position,
                len,
            } => {
                if prng.chance(faults.read_error) {
                    return Err(DiskError::Io);
                }
                let data = &self.files.get(file).ok_or(DiskError::NotFound)?.volatile;
                let start = (*position as usize).min(data.len());
                let end = start.saturating_add(*len as usize).min(data.len());
                let mut bytes = data[start..end].to_vec();
                if !bytes.is_empty() && prng.chance(faults.bit_flip_on_read) {
                    flip_random_bit(&mut bytes, prng);
                    self.corruption.entry(file.clone()).or_default().on_read = Some(now);
                }
                Ok(DiskOutcome::Read(Bytes::from(bytes)))
            }
            DiskOp::Write {
                file,
                position,
                bytes,
            } => {
                if prng.chance(faults.no_space) {
                    return Err(DiskError::NoSpace);
                }
                if prng.chance(faults.write_error) {
                    return Err(DiskError::Io);
                }
                let f = self.files.entry(file.clone()).or_default();
                write_at(&mut f.volatile, *position, bytes);
                f.unsynced.push(Unsynced::Write {
                    position: *position,
                    bytes: bytes.clone(),
                });
                Ok(DiskOutcome::Done)
            }
            DiskOp::Sync { file } => {
                if prng.chance(faults.sync_error) {
                    return Err(DiskError::Io);
                }
                let f = self.files.get_mut(file).ok_or(DiskError::NotFound)?;
                f.durable = Some(f.volatile.clone());
                f.unsynced.clear();
                Ok(DiskOutcome::Done)
            }
            DiskOp::Truncate { file, len } => {
                let f = self.files.get_mut(file).ok_or(DiskError::NotFound)?;
                f.volatile.truncate(*len as usize);
                f.unsynced.push(Unsynced::Truncate { len: *len });
                Ok(DiskOutcome::Done)
            }
            DiskOp::Delete { file } => {
                self.files.remove(file);
                Ok(DiskOutcome::Done)
            }
        }
    }

    fn list(&self, dir: &str) -> Vec<FileEntry> {
        let prefix = format!("{dir}/");
        self.files
            .iter()
            .filter_map(|(path, f)| {
                let name = path.strip_prefix(&prefix)?;
                (!name.contains('/')).then(|| FileEntry {
                    name: name.to_string(),
                    len: f.volatile.len() as u64,
                })
            })
            .collect()
    }

    /// Power loss: each file keeps its durable image plus a random prefix of its unsynced
    /// operations, the first one dropped possibly torn.
    pub fn power_loss(&mut self, faults: &DiskFaults, prng: &mut Prng) {
        let mut gone = Vec::new();
        for (path, f) in self.files.iter_mut() {
            let kept = prng.range_inclusive(0, f.unsynced.len() as u64) as usize;
            let mut image = f.durable.clone();
            for op in &f.unsynced[..kept] {
                apply(image.get_or_insert_with(Vec::new), op);
            }
            if let Some(Unsynced::Write { position, bytes }) = f.unsynced.get(kept) {
                if prng.chance(faults.torn_write) && bytes.len() > 1 {
                    let cut = prng.range_inclusive(1, bytes.len() as u64 - 1) as usize;
                    write_at(image.get_or_insert_with(Vec::new), *position, &bytes[..cut]);
                }
            }
            match image {
                Some(image) => {
                    f.volatile = image.clone();
                    f.durable = Some(image);
                }
                None => gone.push(path.clone()),
            }
            f.unsynced.clear();
        }
        for path in gone {
            self.files.remove(&path);
        }
    }

    /// Flips one bit at rest in a random non-empty file whose path passes `filter`. The page
    /// cache copy is flipped too, so the damage is visible before and after a restart.
    pub fn bit_rot(&mut self, now: Instant, prng: &mut Prng, filter: impl Fn(&str) -> bool) {
        let candidates: Vec<String> = self
            .files
            .iter()
            .filter(|(p, f)| filter(p) && f.durable.as_ref().is_some_and(|d| !d.is_empty()))
            .map(|(p, _)| p.clone())
            .collect();
        if candidates.is_empty() {
            return;
        }
        let path = &candidates[prng.below(candidates.len() as u64) as usize];
        let f = self.files.get_mut(path).expect("listed above");
        let durable = f.durable.as_mut().expect("non-empty durable image");
        let bit = prng.below(durable.len() as u64 * 8);
        durable[(bit / 8) as usize] ^= 1 << (bit % 8);
        if let Some(b) = f.volatile.get_mut((bit / 8) as usize) {
            *b ^= 1 << (bit % 8);
        }
        self.corruption.entry(path.clone()).or_default().at_rest = Some(now);
    }

    /// The corruption injected into `path`, if any.
    pub fn corruption(&self, path: &str) -> CorruptionRecord {
        self.corruption.get(path).copied().unwrap_or_default()
    }

    /// True if any file under `dir` took a bit flip at rest at or after `since`.
    pub fn rot_since(&self, dir: &str, since: Instant) -> bool {
        let prefix = format!("{dir}/");
        self.corruption
            .iter()
            .any(|(p, c)| p.starts_with(&prefix) && c.at_rest.is_some_and(|t| t >= since))
    }

    /// Paths of every file, for the trace.
    pub fn paths(&self) -> Vec<String> {
        self.files.keys().cloned().collect()
    }

    /// Volatile length of a file, if it exists.
    pub fn len(&self, path: &str) -> Option<u64> {
        self.files.get(path).map(|f| f.volatile.len() as u64)
    }
}

fn apply(image: &mut Vec<u8>, op: &Unsynced) {
    match op {
        Unsynced::Write { position, bytes } => write_at(image, *position, bytes),
        Unsynced::Truncate { len } => image.truncate(*len as usize),
    }
}

fn write_at(data: &mut Vec<u8>, position: u64, bytes: &[u8]) {
    let start = position as usize;
    let end = start + bytes.len();
    if data.len() < end {
        data.resize(end, 0);
    }
    data[start..end].copy_from_slice(bytes);
}

fn flip_random_bit(bytes: &mut [u8], prng: &mut Prng) {
    let bit = prng.below(bytes.len() as u64 * 8);
    bytes[(bit / 8) as usize] ^= 1 << (bit % 8);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(file: &str, position: u64, bytes: &'static [u8]) -> DiskOp {
        DiskOp::Write {
            file: file.into(),
            position,
            bytes: Bytes::from_static(bytes),
        }
    }

    // Power loss keeps exactly what was synced when no unsynced operation survives, and never
    // anything that was not written.
    #[test]
    fn power_loss_keeps_synced_data_and_a_prefix_of_the_rest() {
        let faults = DiskFaults {
            torn_write: 1.0,
            ..DiskFaults::none()
        };
        for seed in 0..200 {
            let mut prng = Prng::new(seed);
            let mut disk = SimDisk::default();
            let now = Instant::ZERO;
            disk.execute(now, &write("d/a", 0, b"hello"), &faults, &mut prng)
                .expect("write");
            disk.execute(
                now,
                &DiskOp::Sync { file: "d/a".into() },
                &faults,
                &mut prng,
            )
            .expect("sync");
            disk.execute(now, &write("d/a", 5, b" world"), &faults, &mut prng)
                .expect("write");
            disk.execute(now, &write("d/b", 0, b"never synced"), &faults, &mut prng)
                .expect("write");
            disk.power_loss(&faults, &mut prng);
            let read = DiskOp::Read {
                file: "d/a".into(),
                position: 0,
                len: 100,
            };
            let Ok(DiskOutcome::Read(a)) = disk.execute(now, &read, &faults, &mut prng) else {
                panic!("read");
            };
            assert!(a.starts_with(b"hello"));
            assert!(b"hello world".starts_with(&a), "{a:?}");
            if let Some(len) = disk.len("d/b") {
                assert!(len <= 12);
            }
        }
    }
}
