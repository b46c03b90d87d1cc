//! Real disk IO for the broker's [`DiskRequest`]s, off the async runtime.
//!
//! The io contract (`seedlog_core::io`) says a node's requests apply in emission order: a read
//! sees every earlier write and a sync covers every earlier write to its file. One IO thread
//! executes requests in order. Syncs are handed, in order, to a second thread once every
//! earlier request has been applied, so later writes (the next group-commit batch) proceed while
//! an fsync runs; that overlap is what makes group commit pay. The sync still covers every
//! write emitted before it, because those were applied before it was handed over.
//!
//! A sync is `fdatasync` of the file (which includes its size) plus `fsync` of any directory
//! whose entries changed since it was last synced (a new file, a new directory), so a file's
//! existence is durable with its data. Deletes sync their directory at once, as the contract
//! asks.

use seedlog_core::io::{DiskCompletion, DiskError, DiskOp, DiskOutcome, DiskRequest, FileEntry};
use std::collections::{BTreeSet, HashMap};
use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

/// Open files kept between requests; beyond this the cache is cleared (segments roll rarely).
const OPEN_FILES_MAX: usize = 1024;

/// Handle to the IO threads.
pub struct DiskIo {
    requests: mpsc::Sender<DiskRequest>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl DiskIo {
    /// Starts the IO and sync threads over `root`; every completion is passed to `sink`.
    pub fn start<S>(root: PathBuf, sink: S) -> std::io::Result<DiskIo>
    where
        S: Fn(DiskCompletion) + Send + Clone + 'static,
    {
        std::fs::create_dir_all(&root)?;
        let (requests, requests_rx) = mpsc::channel::<DiskRequest>();
        let (syncs, syncs_rx) = mpsc::channel::<SyncJob>();
        let dirty = Arc::new(Mutex::new(BTreeSet::new()));
        let io_sink = sink.clone();
        let mut executor = Executor {
            root: root.clone(),
            files: HashMap::new(),
            dirty: dirty.clone(),
        };
        let io = std::thread::Builder::new()
            .name("seedlog-io".into())
            .spawn(move || {
                for request in requests_rx {
                    if let Some(completion) = executor.execute(request, &syncs) {
                        io_sink(completion);
                    }
                }
            })?;
        let sync = std::thread::Builder::new()
            .name("seedlog-fsync".into())
            .spawn(move || {
                for job in syncs_rx {
                    let result = run_sync(&root, &job, &dirty);
                    sink(DiskCompletion { id: job.id, result });
                }
            })?;
        Ok(DiskIo {
            requests,
            threads: vec![io, sync],
        })
    }

    /// Queues a request; its completion goes to the sink.
    pub fn submit(&self, request: DiskRequest) {
        // The threads live until `shutdown`; a send can only fail after that.
        let _ = self.requests.send(request);
    }

    /// Stops the threads after the queued requests ran.
    pub fn shutdown(self) {
        drop(self.requests);
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}

struct SyncJob {
    id: u64,
    file: Arc<File>,
    path: String,
}

struct Executor {
    root: PathBuf,
    files: HashMap<String, Arc<File>>,
    /// Directories (relative paths, "" for the root) whose entries changed since their last
    /// fsync. Shared with the sync thread, which clears what it syncs.
    dirty: Arc<Mutex<BTreeSet<String>>>,
}

fn io_error(error: &std::io::Error) -> DiskError {
    match error.kind() {
        ErrorKind::NotFound => DiskError::NotFound,
        ErrorKind::StorageFull => DiskError::NoSpace,
        _ => DiskError::Io,
    }
}

fn parent_of(path: &str) -> String {
    Path::new(path)
        .parent()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default()
}

impl Executor {
    /// Runs one request; `None` when a sync was handed to the sync thread.
    fn execute(
        &mut self,
        request: DiskRequest,
        syncs: &mpsc::Sender<SyncJob>,
    ) -> Option<DiskCompletion> {
        let id = request.id;
        let result = match request.op {
            DiskOp::Sync { file } => match self.open(&file, false) {
                Ok(handle) => {
                    let _ = syncs.send(SyncJob {
                        id,
                        file: handle,
                        path: file,
                    });
                    return None;
                }
                Err(e) => Err(e),
            },
            DiskOp::List { dir } => self.list(&dir),
            DiskOp::Read {
                file,
                position,
                len,
            } => self.read(&file, position, len),
            DiskOp::Write {
                file,
                position,
                bytes,
            } => self
                .open(&file, true)
                .and_then(|f| f.write_all_at(&bytes, position).map_err(|e| io_error(&e)))
                .map(|_| DiskOutcome::Done),
            DiskOp::Truncate { file, len } => self
                .open(&file, false)
                .and_then(|f| f.set_len(len).map_err(|e| io_error(&e)))
                .map(|_| DiskOutcome::Done),
            DiskOp::Delete { file } => self.delete(&file),
        };
        Some(DiskCompletion { id, result })
    }

    fn mark_dirty(&self, dir: String) {
        self.dirty
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(dir);
    }

    fn open(&mut self, file: &str, create: bool) -> Result<Arc<File>, DiskError> {
        if let Some(handle) = self.files.get(file) {
            return Ok(handle.clone());
        }
        let path = self.root.join(file);
        let handle = match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(handle) => handle,
            Err(e) if e.kind() == ErrorKind::NotFound && create => self.create(file, &path)?,
            Err(e) => return Err(io_error(&e)),
        };
        if self.files.len() >= OPEN_FILES_MAX {
            self.files.clear();
        }
        let handle = Arc::new(handle);
        self.files.insert(file.to_owned(), handle.clone());
        Ok(handle)
    }

    fn create(&mut self, file: &str, path: &Path) -> Result<File, DiskError> {
        let dir = parent_of(file);
        if let Some(parent) = path.parent() {
            if !parent.exists() {
                std::fs::create_dir_all(parent).map_err(|e| io_error(&e))?;
                // The new directory's own entry lives in its parent.
                self.mark_dirty(parent_of(&dir));
            }
        }
        let handle = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| io_error(&e))?;
        self.mark_dirty(dir);
        Ok(handle)
    }

    fn list(&self, dir: &str) -> Result<DiskOutcome, DiskError> {
        let entries = match std::fs::read_dir(self.root.join(dir)) {
            Ok(entries) => entries,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Ok(DiskOutcome::Listed(Vec::new()))
            }
            Err(e) => return Err(io_error(&e)),
        };
        let mut files = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| io_error(&e))?;
            let meta = entry.metadata().map_err(|e| io_error(&e))?;
            if meta.is_file() {
                files.push(FileEntry {
                    name: entry.file_name().to_string_lossy().into_owned(),
                    len: meta.len(),
                });
            }
        }
        files.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(DiskOutcome::Listed(files))
    }

    fn read(&mut self, file: &str, position: u64, len: u32) -> Result<DiskOutcome, DiskError> {
        let handle = self.open(file, false)?;
        let size = handle.metadata().map_err(|e| io_error(&e))?.len();
        let wanted = u64::from(len).min(size.saturating_sub(position)) as usize;
        let mut buffer = vec![0u8; wanted];
        let mut filled = 0;
        while filled < wanted {
            match handle.read_at(&mut buffer[filled..], position + filled as u64) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_error(&e)),
            }
        }
        buffer.truncate(filled);
        Ok(DiskOutcome::Read(buffer.into()))
    }

    fn delete(&mut self, file: &str) -> Result<DiskOutcome, DiskError> {
        self.files.remove(file);
        std::fs::remove_file(self.root.join(file)).map_err(|e| io_error(&e))?;
        let dir = self.root.join(parent_of(file));
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_error(&e))?;
        Ok(DiskOutcome::Done)
    }
}

/// fdatasync the file, then fsync every changed directory on its path up to the root.
fn run_sync(
    root: &Path,
    job: &SyncJob,
    dirty: &Mutex<BTreeSet<String>>,
) -> Result<DiskOutcome, DiskError> {
    job.file.sync_data().map_err(|e| io_error(&e))?;
    let mut dir = parent_of(&job.path);
    loop {
        let was_dirty = dirty.lock().unwrap_or_else(|e| e.into_inner()).remove(&dir);
        if was_dirty {
            let synced = File::open(root.join(&dir)).and_then(|d| d.sync_all());
            if let Err(e) = synced {
                dirty.lock().unwrap_or_else(|e| e.into_inner()).insert(dir);
                return Err(io_error(&e));
            }
        }
        if dir.is_empty() {
            return Ok(DiskOutcome::Done);
        }
        dir = parent_of(&dir);
    }
}
