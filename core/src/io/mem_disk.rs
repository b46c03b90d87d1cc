//! A fault-free in-memory disk for unit tests: it executes [`DiskOp`]s in order, and only
//! data that was synced survives [`MemDisk::crash`]. The simulator's disk (with faults) lives
//! in seedlog-sim; this one keeps core's own tests free of that dependency.

use super::{DiskError, DiskOp, DiskOutcome, FileEntry};
use bytes::Bytes;
use std::collections::BTreeMap;

/// A fault-free disk where only synced data survives a crash.
#[derive(Default, Clone)]
pub(crate) struct MemDisk {
    /// What reads see (the page cache).
    pub(crate) volatile: BTreeMap<String, Vec<u8>>,
    /// What survives a crash.
    pub(crate) durable: BTreeMap<String, Vec<u8>>,
}

impl MemDisk {
    /// Executes one operation.
    pub(crate) fn execute(&mut self, op: DiskOp) -> Result<DiskOutcome, DiskError> {
        match op {
            DiskOp::List { dir } => {
                let prefix = format!("{dir}/");
                let entries = self
                    .volatile
                    .iter()
                    .filter_map(|(k, v)| {
                        let name = k.strip_prefix(&prefix)?;
                        (!name.contains('/')).then(|| FileEntry {
                            name: name.to_owned(),
                            len: v.len() as u64,
                        })
                    })
                    .collect();
                Ok(DiskOutcome::Listed(entries))
            }
            DiskOp::Read {
                file,
                position,
                len,
            } => {
                let data = self.volatile.get(&file).ok_or(DiskError::NotFound)?;
                let start = (position as usize).min(data.len());
                let end = (start + len as usize).min(data.len());
                Ok(DiskOutcome::Read(Bytes::copy_from_slice(&data[start..end])))
            }
            DiskOp::Write {
                file,
                position,
                bytes,
            } => {
                let data = self.volatile.entry(file).or_default();
                let end = position as usize + bytes.len();
                if data.len() < end {
                    data.resize(end, 0);
                }
                data[position as usize..end].copy_from_slice(&bytes);
                Ok(DiskOutcome::Done)
            }
            DiskOp::Sync { file } => {
                let data = self.volatile.get(&file).cloned().unwrap_or_default();
                self.durable.insert(file, data);
                Ok(DiskOutcome::Done)
            }
            DiskOp::Truncate { file, len } => {
                self.volatile
                    .entry(file)
                    .or_default()
                    .truncate(len as usize);
                Ok(DiskOutcome::Done)
            }
            DiskOp::Delete { file } => {
                self.volatile.remove(&file);
                self.durable.remove(&file);
                Ok(DiskOutcome::Done)
            }
        }
    }

    /// A crash: everything not synced is gone.
    pub(crate) fn crash(&mut self) {
        self.volatile = self.durable.clone();
    }
}
