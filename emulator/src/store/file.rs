//! [`FileStore`]: the durable store behind `--data-dir`. A write-ahead log fsynced before an
//! apply is acknowledged, compacted into a snapshot once it grows; docs/persistence.md
//! describes the files, [`recovery`](super::recovery) the rules for reading them back.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};

use super::disk::Paths;
use super::error::StoreError;
use super::lock::DirLock;
use super::record;
use super::recovery;
use super::writer::{CLOSED, Shared, Writer};
use super::{Commit, Op, Store, StoreSnapshot};

/// Tuning for [`FileStore::open_with`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStoreOptions {
    /// Compact once the log holds more than this many bytes of records and more than the
    /// last snapshot's size.
    pub compact_after_log_bytes: u64,
}

impl Default for FileStoreOptions {
    fn default() -> Self {
        FileStoreOptions {
            compact_after_log_bytes: 8 << 20,
        }
    }
}

/// Counters for tests, benchmarks and diagnostics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileStoreStats {
    /// Keys over all collections, including applies not yet durable.
    pub entries: usize,
    /// The current snapshot's generation (0 before the first compaction).
    pub generation: u64,
    pub log_bytes: u64,
    pub snapshot_bytes: u64,
    /// Applies written to the log since open (not counting those a compaction absorbed).
    pub applies: u64,
    /// Log appends, each one write and one fdatasync, since open.
    pub log_syncs: u64,
    /// Compactions since open.
    pub compactions: u64,
}

/// A data directory opened for exclusive use; see the module documentation.
///
/// [`Store::close`] (or dropping it) writes out what is queued, stops the writer thread and
/// releases the lock.
pub struct FileStore {
    shared: Arc<Shared>,
    writer: Mutex<Option<JoinHandle<()>>>,
    paths: Paths,
    /// Exclusive use of the directory; released by close, after the writer has stopped.
    lock: Mutex<Option<DirLock>>,
}

impl FileStore {
    /// Opens (creating if needed) the data directory `dir` with default options.
    pub fn open(dir: impl AsRef<Path>) -> Result<FileStore, StoreError> {
        FileStore::open_with(dir, FileStoreOptions::default())
    }

    /// Opens `dir`: takes its lock, recovers its state (failing on damage other than a torn
    /// tail of the log) and starts the writer thread.
    pub fn open_with(
        dir: impl AsRef<Path>,
        options: FileStoreOptions,
    ) -> Result<FileStore, StoreError> {
        let paths = Paths::new(dir.as_ref());
        std::fs::create_dir_all(&paths.dir).map_err(|e| StoreError::io("create", &paths.dir, e))?;
        let lock = DirLock::acquire(&paths)?;
        let recovered = recovery::recover(&paths)?;
        let stats = FileStoreStats {
            generation: recovered.generation,
            log_bytes: recovered.log_len,
            snapshot_bytes: recovered.snapshot_len,
            ..FileStoreStats::default()
        };
        tracing::info!(
            dir = %paths.dir.display(),
            entries = recovered.mirror.len(),
            generation = recovered.generation,
            log_bytes = recovered.log_len,
            "opened the data directory"
        );
        let shared = Shared::new(recovered.mirror, stats);
        let writer = Writer {
            shared: shared.clone(),
            paths: paths.clone(),
            log: recovered.log,
            log_len: recovered.log_len,
            generation: recovered.generation,
            snapshot_len: recovered.snapshot_len,
            compact_after_log_bytes: options.compact_after_log_bytes,
        };
        let writer = thread::Builder::new()
            .name("iotemu-store".into())
            .spawn(move || writer.run())
            .map_err(|e| StoreError::io("start the writer thread for", &paths.dir, e))?;
        Ok(FileStore {
            shared,
            writer: Mutex::new(Some(writer)),
            paths,
            lock: Mutex::new(Some(lock)),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.paths.dir
    }

    /// Writes the current state as a snapshot and starts an empty log, now rather than when
    /// the log has grown; returns once done. Everything submitted before is durable after.
    pub fn compact(&self) -> Result<(), StoreError> {
        self.shared.compact()
    }

    pub fn stats(&self) -> FileStoreStats {
        self.shared.stats()
    }
}

impl Store for FileStore {
    fn submit(&self, ops: &[Op]) -> Result<Commit, StoreError> {
        if ops.is_empty() {
            return Ok(Commit::durable_now());
        }
        let tx = record::encode_tx(ops)?;
        let sequence = self.shared.submit(tx)?;
        Ok(Commit::pending(self.shared.clone(), sequence))
    }

    fn load(&self) -> Result<StoreSnapshot, StoreError> {
        self.shared.load()
    }

    fn is_durable(&self) -> bool {
        true
    }

    fn close(&self) -> Result<(), StoreError> {
        self.shared.shut_down();
        let writer = self
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(writer) = writer {
            // A panicked writer has already failed every waiter; nothing more to do here.
            let _ = writer.join();
            tracing::info!(dir = %self.paths.dir.display(), "closed the data directory");
        }
        // The writer is gone: nothing submitted from now on could become durable.
        self.shared.closed();
        drop(
            self.lock
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        self.shared.failure().map_or(Ok(()), |f| {
            if &*f == CLOSED {
                Ok(())
            } else {
                Err(StoreError::Failed(f))
            }
        })
    }
}

impl Drop for FileStore {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

impl std::fmt::Debug for FileStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileStore")
            .field("dir", &self.paths.dir)
            .finish_non_exhaustive()
    }
}
