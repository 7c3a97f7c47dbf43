//! The lock that gives one [`FileStore`](super::FileStore) exclusive use of a data directory,
//! against other processes and against other stores in this process.
//!
//! Why not `flock` (`File::try_lock`): an `flock` belongs to the open file description, and
//! `fork` copies every descriptor into the child, `O_CLOEXEC` ones included, until the child
//! calls `exec`. So while any thread of the process spawns a child (a test harness re-running
//! itself, an SDK started as a subprocess), a store that is closed and reopened in that window
//! finds its *own* old lock still held by the half-started child and fails with
//! `Locked { holder: "pid <itself>" }`. That was the 1-in-15 failure of the store tests.
//!
//! POSIX record locks (`fcntl(F_SETLK)`) belong to the process instead and are never inherited
//! by a child, which removes the race; but they do not exclude a second lock taken by the same
//! process, and closing *any* descriptor of the file drops them. Hence the registry of
//! directories held by this process, consulted before the lock file is even opened (so no
//! descriptor of a held lock file is ever opened and closed beside the one holding it), and
//! released only after that descriptor is closed.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

use super::disk::Paths;
use super::error::StoreError;

/// Data directories (canonical paths) locked by stores of this process.
static HELD: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

/// Exclusive use of one data directory, for as long as it lives.
#[derive(Debug)]
pub(super) struct DirLock {
    /// The open lock file carrying the record lock; `None` only while dropping.
    file: Option<File>,
    dir: PathBuf,
}

impl DirLock {
    /// Takes the directory's lock. The holder's pid is written into the lock file so that the
    /// error a second emulator gets can name it.
    pub(super) fn acquire(paths: &Paths) -> Result<DirLock, StoreError> {
        let dir = std::fs::canonicalize(&paths.dir)
            .map_err(|e| StoreError::io("resolve", &paths.dir, e))?;
        let mut held = HELD.lock().unwrap_or_else(PoisonError::into_inner);
        if held.contains(&dir) {
            return Err(StoreError::Locked {
                dir: paths.dir.clone(),
                holder: format!("pid {}", std::process::id()),
            });
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&paths.lock)
            .map_err(|e| StoreError::io("open", &paths.lock, e))?;
        if let Err(e) = lock_exclusive(&file) {
            if e.kind() != std::io::ErrorKind::WouldBlock {
                return Err(StoreError::io("lock", &paths.lock, e));
            }
            let mut holder = String::new();
            // Best effort: the holder may not have written its pid yet.
            let _ = file.read_to_string(&mut holder);
            let holder = match holder.trim() {
                "" => "another process".to_owned(),
                pid => pid.to_owned(),
            };
            return Err(StoreError::Locked {
                dir: paths.dir.clone(),
                holder,
            });
        }
        file.set_len(0)
            .and_then(|()| write!(file, "pid {}", std::process::id()))
            .map_err(|e| StoreError::io("write", &paths.lock, e))?;
        held.insert(dir.clone());
        Ok(DirLock {
            file: Some(file),
            dir,
        })
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        // Close first (releasing the record lock), then let this process lock it again: the
        // other order would let a new store lock the file and then lose that lock to this
        // close.
        drop(self.file.take());
        HELD.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.dir);
    }
}

/// A whole-file write lock owned by this process, not inherited by its children.
#[cfg(unix)]
fn lock_exclusive(file: &File) -> std::io::Result<()> {
    use rustix::fs::{FlockOperation, fcntl_lock};
    fcntl_lock(file, FlockOperation::NonBlockingLockExclusive).map_err(|errno| {
        // POSIX allows either for "held by another process".
        if errno == rustix::io::Errno::AGAIN || errno == rustix::io::Errno::ACCESS {
            std::io::Error::from(std::io::ErrorKind::WouldBlock)
        } else {
            std::io::Error::from(errno)
        }
    })
}

/// Elsewhere `LockFileEx` on a handle that child processes do not inherit (Rust opens files
/// non-inheritable).
#[cfg(not(unix))]
fn lock_exclusive(file: &File) -> std::io::Result<()> {
    file.try_lock().map_err(|e| match e {
        std::fs::TryLockError::WouldBlock => std::io::Error::from(std::io::ErrorKind::WouldBlock),
        std::fs::TryLockError::Error(e) => e,
    })
}
