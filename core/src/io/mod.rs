//! Disk as IO: the requests a state machine emits and the completions it receives.
//!
//! A state machine never touches a file. It emits a [`DiskRequest`] and later receives the
//! matching [`DiskCompletion`], so the driver decides how the operation runs (a blocking pool in
//! the tokio node) and the simulator decides how it fails (torn, lost, corrupted, delayed).
//!
//! Contract with every driver: requests of one state machine are applied in the order they were
//! emitted (completions may be reported later, but a read sees every earlier write, and a sync
//! covers every earlier write to that file). Data is durable only once a `Sync` of its file has
//! completed successfully; a crash may lose or tear anything written after the last sync.

use bytes::Bytes;

/// Identifies one outstanding disk request; unique per state machine instance.
pub type DiskRequestId = u64;

/// A file operation, with paths relative to the node's data directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DiskOp {
    /// Lists the regular files directly inside `dir` (a missing directory lists as empty).
    List {
        /// Directory, relative to the data directory.
        dir: String,
    },
    /// Reads up to `len` bytes at `position` (fewer at end of file).
    Read {
        /// File path.
        file: String,
        /// Byte position.
        position: u64,
        /// Bytes wanted.
        len: u32,
    },
    /// Writes `bytes` at `position`, creating the file (and its directory) if missing.
    Write {
        /// File path.
        file: String,
        /// Byte position.
        position: u64,
        /// Data.
        bytes: Bytes,
    },
    /// Makes every earlier write, truncation and the file's existence durable (fsync of the file
    /// and of its directory entry).
    Sync {
        /// File path.
        file: String,
    },
    /// Cuts the file to `len` bytes.
    Truncate {
        /// File path.
        file: String,
        /// New length.
        len: u64,
    },
    /// Removes the file (durably: the driver syncs the directory).
    Delete {
        /// File path.
        file: String,
    },
}

impl DiskOp {
    /// The file or directory the operation touches.
    pub fn path(&self) -> &str {
        match self {
            DiskOp::List { dir } => dir,
            DiskOp::Read { file, .. }
            | DiskOp::Write { file, .. }
            | DiskOp::Sync { file }
            | DiskOp::Truncate { file, .. }
            | DiskOp::Delete { file } => file,
        }
    }
}

/// A disk operation to execute, tagged so its completion can be matched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskRequest {
    /// Tag echoed in the completion.
    pub id: DiskRequestId,
    /// What to do.
    pub op: DiskOp,
}

/// One directory entry from a `List`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileEntry {
    /// File name (no directory part).
    pub name: String,
    /// Size in bytes.
    pub len: u64,
}

/// What a successful operation returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DiskOutcome {
    /// Entries of a `List`, sorted by name.
    Listed(Vec<FileEntry>),
    /// Bytes of a `Read`.
    Read(Bytes),
    /// A `Write`, `Sync`, `Truncate` or `Delete` finished.
    Done,
}

/// Why a disk operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiskError {
    /// A generic IO error (EIO).
    Io,
    /// The device is full (ENOSPC).
    NoSpace,
    /// The file does not exist.
    NotFound,
}

/// The completion of a [`DiskRequest`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskCompletion {
    /// The request's tag.
    pub id: DiskRequestId,
    /// The outcome.
    pub result: Result<DiskOutcome, DiskError>,
}

#[cfg(test)]
pub(crate) mod mem_disk;
