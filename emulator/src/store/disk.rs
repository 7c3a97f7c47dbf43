//! The data directory's files and the few file-system steps the store builds on: replacing a
//! file atomically and durably and starting an empty log. The lock that keeps a second
//! emulator out is in `lock`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::error::StoreError;
use super::frame::{self, FileHeader, FileKind};

/// The files of one data directory (docs/persistence.md).
#[derive(Debug, Clone)]
pub(super) struct Paths {
    pub dir: PathBuf,
    pub lock: PathBuf,
    pub snapshot: PathBuf,
    pub snapshot_tmp: PathBuf,
    pub log: PathBuf,
    pub log_tmp: PathBuf,
}

impl Paths {
    pub(super) fn new(dir: &Path) -> Paths {
        Paths {
            dir: dir.to_owned(),
            lock: dir.join("lock"),
            snapshot: dir.join("snapshot"),
            snapshot_tmp: dir.join("snapshot.tmp"),
            log: dir.join("wal"),
            log_tmp: dir.join("wal.tmp"),
        }
    }
}

/// Puts `bytes` at `target` so that after a crash `target` holds either its old contents or
/// all of `bytes`: write a temporary file, fsync it, rename it over `target`, fsync the
/// directory so the rename itself is durable.
pub(super) fn replace_file(
    tmp: &Path,
    target: &Path,
    dir: &Path,
    bytes: &[u8],
) -> Result<(), StoreError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(tmp)
        .map_err(|e| StoreError::io("create", tmp, e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| StoreError::io("write", tmp, e))?;
    drop(file);
    fs::rename(tmp, target).map_err(|e| StoreError::io("rename into place", tmp, e))?;
    sync_dir(dir)
}

pub(super) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io("fsync the directory", dir, e))
}

/// Replaces the log with an empty one that applies on top of snapshot `generation`; returns
/// it opened for appending, with its length.
pub(super) fn create_log(paths: &Paths, generation: u64) -> Result<(File, u64), StoreError> {
    let header = frame::encode_file_header(FileHeader {
        kind: FileKind::Log,
        generation,
    });
    replace_file(&paths.log_tmp, &paths.log, &paths.dir, &header)?;
    let log = open_log_for_append(paths)?;
    Ok((log, header.len() as u64))
}

pub(super) fn open_log_for_append(paths: &Paths) -> Result<File, StoreError> {
    OpenOptions::new()
        .append(true)
        .open(&paths.log)
        .map_err(|e| StoreError::io("open", &paths.log, e))
}

/// The whole file, or `None` when it does not exist.
pub(super) fn read_if_present(path: &Path) -> Result<Option<Vec<u8>>, StoreError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StoreError::io("read", path, e)),
    }
}

pub(super) fn remove_if_present(path: &Path) -> Result<(), StoreError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StoreError::io("remove", path, e)),
    }
}
