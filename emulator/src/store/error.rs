//! Why the store refused to open or to write. Messages name the file, the byte offset and
//! what to do, because they end up in front of a user whose emulator did not start. A domain
//! service that gets one on a request answers it as an internal error (IoT Hub's 500001).

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },

    #[error(
        "data directory {} is in use by another iotemu ({holder}); stop it or choose another --data-dir",
        dir.display()
    )]
    Locked { dir: PathBuf, holder: String },

    #[error(
        "{} is damaged at byte offset {offset}: {reason}. iotemu does not start on damaged state: \
         restore the data directory from a backup, or move it away to start empty",
        path.display()
    )]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },

    #[error(
        "{} was written in store format version {found}; this iotemu reads version {supported}",
        path.display()
    )]
    UnsupportedVersion {
        path: PathBuf,
        found: u32,
        supported: u32,
    },

    /// The ops themselves cannot be stored (too large, nested too deep); nothing was applied.
    #[error("write refused: {0}")]
    Rejected(String),

    /// An earlier write or fsync failed. After a failed fsync the file's contents are unknown,
    /// so the store accepts nothing more; restarting recovers from what is on disk.
    #[error("the data directory stopped accepting writes after an earlier failure: {0}")]
    Failed(Arc<str>),
}

impl StoreError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        StoreError::Io {
            action,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn corrupt(
        path: impl Into<PathBuf>,
        offset: usize,
        reason: impl Into<String>,
    ) -> Self {
        StoreError::Corrupt {
            path: path.into(),
            offset: offset as u64,
            reason: reason.into(),
        }
    }
}
