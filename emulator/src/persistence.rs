//! How the domains write their state through a [`Store`]: after a change, the changed
//! entity's current value (or a `null` tombstone once it is gone) is saved, and the caller
//! acknowledges nothing until that save is durable.
//!
//! Reading the value and submitting it happen under one lock, so the log receives the values
//! of an entity in the order they were read — a later save never carries an older value. The
//! wait for the disk happens outside that lock. Callers must not hold a map guard of their
//! own while saving (the read takes map locks).
//!
//! Tombstones rather than deletes: fixtures are loaded at every start and the stored state is
//! laid over them, so an entity deleted at run time must stay deleted even though a fixture
//! still names it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::Value;

use crate::store::{MemoryStore, Op, Store, StoreError, StoreSnapshot};

/// A collection of the durable state: `{owner}/{kind}`, e.g. `hub/localhost/devices`.
pub fn collection(owner: &str, kind: &str) -> String {
    format!("{owner}/{kind}")
}

pub struct Persistence {
    store: Arc<dyn Store>,
    order: Mutex<()>,
    /// Off while fixtures are loaded and the stored state restored: those are not changes.
    active: AtomicBool,
}

impl Default for Persistence {
    fn default() -> Self {
        Persistence::new(Arc::new(MemoryStore))
    }
}

impl std::fmt::Debug for Persistence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Persistence")
            .field("durable", &self.store.is_durable())
            .finish()
    }
}

/// One value to save: `null` is a tombstone. A value that would not serialize fails the save
/// (rather than being stored as a tombstone, which would delete the entity at restart).
pub struct Save {
    pub collection: String,
    pub key: String,
    pub value: Result<Value, String>,
}

impl Save {
    pub fn of<T: Serialize>(collection: &str, key: &str, value: Option<&T>) -> Save {
        Save {
            collection: collection.to_owned(),
            key: key.to_owned(),
            value: match value {
                None => Ok(Value::Null),
                Some(v) => serde_json::to_value(v)
                    .map_err(|e| format!("'{key}' in '{collection}' does not serialize: {e}")),
            },
        }
    }
}

impl Persistence {
    pub fn new(store: Arc<dyn Store>) -> Persistence {
        Persistence {
            store,
            order: Mutex::new(()),
            active: AtomicBool::new(false),
        }
    }

    /// Starts saving changes (after startup has loaded fixtures and restored the state).
    pub fn activate(&self) {
        self.active.store(true, Ordering::SeqCst);
    }

    pub fn is_durable(&self) -> bool {
        self.store.is_durable()
    }

    /// Reads the current values with `read` and makes them durable as one atomic apply.
    /// Blocks for the disk (about one fsync with `--data-dir`; nothing in memory).
    pub fn save(&self, read: impl FnOnce() -> Vec<Save>) -> Result<(), StoreError> {
        if !self.store.is_durable() || !self.active.load(Ordering::SeqCst) {
            return Ok(());
        }
        let commit = {
            let _order = self.order.lock().unwrap_or_else(|e| e.into_inner());
            let ops: Vec<Op> = read()
                .into_iter()
                .map(|s| Ok(Op::put(s.collection, s.key, s.value?)))
                .collect::<Result<_, String>>()
                .map_err(StoreError::Rejected)?;
            if ops.is_empty() {
                return Ok(());
            }
            self.store.submit(&ops)?
        };
        commit.wait()
    }

    /// [`Persistence::save`] for methods that cannot report a failure: it is logged.
    pub fn save_or_log(&self, read: impl FnOnce() -> Vec<Save>) {
        if let Err(e) = self.save(read) {
            tracing::error!(error = %e, "a change could not be made durable");
        }
    }

    /// Makes everything saved durable and releases the store (the data directory's lock);
    /// later saves fail. Blocks for the disk.
    pub fn close(&self) -> Result<(), StoreError> {
        self.store.close()
    }

    /// Everything stored, for the domains to lay over their fixtures at startup.
    pub fn load(&self) -> Result<StoreSnapshot, StoreError> {
        self.store.load()
    }
}

/// Reads a stored entity: `Ok(None)` for a tombstone, an error naming the entry when the JSON
/// does not fit (a corrupt or incompatible data directory is reported, never skipped).
pub fn restore<T: serde::de::DeserializeOwned>(
    collection: &str,
    key: &str,
    value: Value,
) -> Result<Option<T>, String> {
    if value.is_null() {
        return Ok(None);
    }
    serde_json::from_value(value)
        .map(Some)
        .map_err(|e| format!("stored entry '{key}' in '{collection}' is unreadable: {e}"))
}
