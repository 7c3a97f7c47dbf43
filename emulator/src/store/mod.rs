//! Durable state: the layer under the domain services (DESIGN.md, layer 4).
//!
//! The domains keep their working state in their own maps; a [`Store`] is the copy of it
//! that survives a restart. It holds named collections, each a map from key to JSON value,
//! changed only by applying a list of [`Op`]s. One apply is atomic — after a crash either all
//! of its ops are there or none — and durable once it is acknowledged.
//!
//! * [`MemoryStore`], the default: keeps nothing (the domains' maps are the state), so
//!   applying is free and a restart starts empty.
//! * [`FileStore`], `--data-dir`: a write-ahead log fsynced before acknowledging, compacted
//!   into snapshots. docs/persistence.md describes the files and the recovery rules.
//!
//! At startup a domain rebuilds its maps from [`Store::load`].
//!
//! # Writing from async code
//!
//! A write is two steps, so that neither blocks a tokio worker on the disk:
//!
//! 1. [`Store::submit`] encodes the ops, fixes their place in the log and returns at once (it
//!    takes a mutex around a queue push; no I/O);
//! 2. the returned [`Commit`] is awaited with [`Commit::durable`] before the client is told
//!    (PUBACK, 200). The file store's writer thread fsyncs every queued apply together, so
//!    concurrent writers share one fsync (group commit).
//!
//! [`Store::apply`] does both in one blocking call (about one fsync, ~1 ms on an SSD) for
//! threads that may block: startup, tests, `spawn_blocking`.
//!
//! The log's order is the order of `submit` calls. A domain whose in-memory update and store
//! write must happen in the same order for the same entity (two writers updating one device)
//! submits while it still holds its own lock on that entity, and awaits the commit after
//! releasing the lock.

mod disk;
mod error;
#[cfg(test)]
pub(crate) mod failing;
mod file;
mod frame;
#[doc(hidden)]
pub(crate) mod fuzzing;
mod lock;
mod memory;
mod mirror;
mod record;
mod recovery;
mod writer;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

pub use error::StoreError;
pub use file::{FileStore, FileStoreOptions, FileStoreStats};
pub use memory::MemoryStore;

/// One change to a collection.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Sets `key` to `value`, replacing what was there.
    Put {
        collection: String,
        key: String,
        value: Value,
    },
    /// Removes `key`; removing a missing key does nothing.
    Delete { collection: String, key: String },
}

impl Op {
    pub fn put(collection: impl Into<String>, key: impl Into<String>, value: Value) -> Op {
        Op::Put {
            collection: collection.into(),
            key: key.into(),
            value,
        }
    }

    pub fn delete(collection: impl Into<String>, key: impl Into<String>) -> Op {
        Op::Delete {
            collection: collection.into(),
            key: key.into(),
        }
    }
}

/// One collection's contents.
pub(crate) type Collection = BTreeMap<String, Value>;

/// Every collection's current contents, as [`Store::load`] returns them. Collections with no
/// keys are absent.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct StoreSnapshot {
    collections: BTreeMap<String, Collection>,
}

impl StoreSnapshot {
    pub fn collection(&self, name: &str) -> Option<&Collection> {
        self.collections.get(name)
    }

    /// Moves one collection out (empty if there is none), for a domain rebuilding its maps.
    pub fn take(&mut self, name: &str) -> Collection {
        self.collections.remove(name).unwrap_or_default()
    }

    pub fn collection_names(&self) -> impl Iterator<Item = &str> {
        self.collections.keys().map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.collections.is_empty()
    }

    pub fn into_collections(self) -> BTreeMap<String, Collection> {
        self.collections
    }
}

/// The state behind the domain services; see the module documentation.
pub trait Store: Send + Sync {
    /// Queues `ops` as one atomic apply and returns without waiting for the disk. The apply
    /// is ordered after every earlier `submit`. An error means nothing was applied.
    fn submit(&self, ops: &[Op]) -> Result<Commit, StoreError>;

    /// [`submit`](Store::submit) and wait until the ops are durable. Blocks the calling
    /// thread for about one fsync with [`FileStore`]; from async code prefer `submit` +
    /// [`Commit::durable`].
    fn apply(&self, ops: &[Op]) -> Result<(), StoreError> {
        self.submit(ops)?.wait()
    }

    /// Every collection's current contents, including applies not yet durable.
    fn load(&self) -> Result<StoreSnapshot, StoreError>;

    /// Whether anything survives a restart; a domain may skip building ops when not.
    fn is_durable(&self) -> bool;

    /// Makes everything submitted so far durable, then releases the store (the data
    /// directory's lock with [`FileStore`]): another process may open it once this returns.
    /// Later writes fail. Blocks for the disk; idempotent.
    fn close(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// A submitted apply, to be waited for before its effect is acknowledged to anyone.
#[must_use = "an apply is not durable until its commit is waited for"]
pub struct Commit {
    state: CommitState,
}

enum CommitState {
    Durable,
    Pending(Arc<writer::Shared>, u64),
    Failed(StoreError),
}

impl Commit {
    /// A commit with nothing left to wait for.
    pub fn durable_now() -> Commit {
        Commit {
            state: CommitState::Durable,
        }
    }

    /// A commit that will report `error`: for stores (and test doubles) that learn only
    /// after accepting an apply that it cannot be made durable.
    pub fn failed(error: StoreError) -> Commit {
        Commit {
            state: CommitState::Failed(error),
        }
    }

    fn pending(shared: Arc<writer::Shared>, sequence: u64) -> Commit {
        Commit {
            state: CommitState::Pending(shared, sequence),
        }
    }

    /// Blocks until the apply is on disk; an error means it may not be (the store has
    /// stopped accepting writes).
    pub fn wait(self) -> Result<(), StoreError> {
        match self.state {
            CommitState::Durable => Ok(()),
            CommitState::Pending(shared, sequence) => shared.wait_durable(sequence),
            CommitState::Failed(e) => Err(e),
        }
    }

    /// Waits without blocking the thread until the apply is on disk.
    pub async fn durable(self) -> Result<(), StoreError> {
        match self.state {
            CommitState::Durable => Ok(()),
            CommitState::Pending(shared, sequence) => shared.durable(sequence).await,
            CommitState::Failed(e) => Err(e),
        }
    }
}

impl std::fmt::Debug for Commit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.state {
            CommitState::Durable => f.write_str("Commit(durable)"),
            CommitState::Pending(_, sequence) => write!(f, "Commit(pending #{sequence})"),
            CommitState::Failed(e) => write!(f, "Commit(failed: {e})"),
        }
    }
}
