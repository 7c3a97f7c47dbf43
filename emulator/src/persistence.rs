//! How the domains write their state through a [`Store`], and why no reply can claim a
//! change the store does not have.
//!
//! **The write path.** Every domain write follows the same four steps:
//!
//! 1. *validate* the request (shape, types, depth, size, preconditions) against the current
//!    value, building the new value as a copy — the map is not touched;
//! 2. *submit* the new value to the store ([`Persistence::submit`]) while still holding the
//!    entity's own lock (its DashMap entry guard). Submitting only encodes the value and
//!    queues it (no I/O), so the guard is held for microseconds, never across an fsync or an
//!    `.await`; holding it makes the log receive an entity's values in the order the map does;
//! 3. *publish* the copy into the map, only if the submit succeeded — a refused write (too
//!    large or deep for the store, a store that has already failed) returns an error and
//!    memory is exactly as it was;
//! 4. return a [`Pending`] (the value plus its commit). The transport awaits
//!    `Pending::durable()` (the store's group-commit fsync; no worker thread blocks) before it
//!    sends PUBACK, a 2xx, DPS `assigned` or an AMQP disposition, and answers a failure with
//!    the domain's 500 (hub 500001, DPS 500000).
//!
//! **When the fsync fails after the submit.** The store then refuses every later write, and
//! the change must not stay visible: the write's hook ([`undo_entry`]) puts the previous value
//! back — unless the entry no longer holds what this write stored (a later write replaced it;
//! that write fails too, since the store has stopped, and undoes itself). This is the one
//! place where memory is rolled back rather than never touched, because publishing only after
//! the fsync would let a second writer read the stale value and overwrite the first (lost
//! update) unless the entity stayed locked across the wait, which is what we must not do.
//!
//! **Exceptions, on purpose.** Library calls that return plain values
//! (`Dps::create_or_update_enrollment`, `Hub::provision_device`, `Hub::set_device_status`)
//! block their thread on [`Pending::wait`]; no transport calls them. C2D delivery bookkeeping
//! (a message taken for delivery, its delivery count, a QoS 0 completion) acknowledges
//! nothing to anyone, so it is submitted under the same rules but not waited for; a refused
//! submit means the message is not delivered.
//!
//! Tombstones rather than deletes: fixtures are loaded at every start and the stored state is
//! laid over them, so an entity deleted at run time must stay deleted even though a fixture
//! still names it.

use std::hash::{BuildHasher, Hash};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use serde::Serialize;
use serde_json::Value;

use crate::pending::{Pending, Settled};
use crate::store::{Commit, MemoryStore, Op, Store, StoreError, StoreSnapshot};

/// A collection of the durable state: `{owner}/{kind}`, e.g. `hub/localhost/devices`.
pub(crate) fn collection(owner: &str, kind: &str) -> String {
    format!("{owner}/{kind}")
}

pub struct Persistence {
    store: Arc<dyn Store>,
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
            active: AtomicBool::new(false),
        }
    }

    /// Starts saving changes (after startup has loaded fixtures and restored the state).
    pub(crate) fn activate(&self) {
        self.active.store(true, Ordering::SeqCst);
    }

    pub fn is_durable(&self) -> bool {
        self.store.is_durable()
    }

    /// Whether changes are being saved: a durable store, after startup. When not, writes
    /// skip encoding their values altogether.
    pub fn keeps(&self) -> bool {
        self.store.is_durable() && self.active.load(Ordering::SeqCst)
    }

    /// Queues these values as one atomic apply, without waiting for the disk; the returned
    /// commit is awaited (through a [`crate::pending::Pending`]) before anyone is told. An
    /// error means nothing was applied. Call it under the entity's own lock (see the module
    /// docs); it does no I/O.
    pub fn submit(&self, saves: Vec<Save>) -> Result<Commit, StoreError> {
        if !self.keeps() {
            return Ok(Commit::durable_now());
        }
        let ops: Vec<Op> = saves
            .into_iter()
            .map(|s| Ok(Op::put(s.collection, s.key, s.value?)))
            .collect::<Result<_, String>>()
            .map_err(StoreError::Rejected)?;
        if ops.is_empty() {
            return Ok(Commit::durable_now());
        }
        self.store.submit(&ops)
    }

    /// Submits the new value of one map entry (`None`: removed; `before` is what the map
    /// holds now). On success the caller publishes `after` into `map` — still under the
    /// entry's guard — and returns the [`Pending`], whose hook undoes the publication if the
    /// commit fails.
    pub(crate) fn submit_entry<'a, K, V, S>(
        &self,
        collection: &str,
        store_key: &str,
        map: &'a DashMap<K, V, S>,
        map_key: K,
        before: Option<V>,
        after: Option<&V>,
    ) -> Result<Pending<'a, ()>, StoreError>
    where
        K: Eq + Hash + Clone + Send + Sync + 'a,
        V: Serialize + Send + Sync + 'a,
        S: BuildHasher + Clone + Send + Sync + 'a,
    {
        if !self.keeps() {
            return Ok(Pending::ready(()));
        }
        let save = Save::of(collection, store_key, after);
        let written = match &save.value {
            Ok(Value::Null) => None,
            Ok(value) => Some(value.clone()),
            Err(e) => return Err(StoreError::Rejected(e.clone())),
        };
        let commit = self.submit(vec![save])?;
        Ok(Pending::new((), commit).on_settled(undo_entry(map, map_key, before, written)))
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

/// The hook that undoes a published map write whose commit failed: `before` goes back under
/// `key`, unless the entry no longer holds `written` (what the write stored; `None` when it
/// removed the entry), i.e. unless something changed it since. Nothing happens on success or
/// when the write was abandoned (the store may still make it durable).
pub(crate) fn undo_entry<'a, K, V, S>(
    map: &'a DashMap<K, V, S>,
    key: K,
    before: Option<V>,
    written: Option<Value>,
) -> impl FnOnce(Settled) + Send + 'a
where
    K: Eq + Hash + Clone + Send + Sync + 'a,
    V: Serialize + Send + Sync + 'a,
    S: BuildHasher + Clone + Send + Sync + 'a,
{
    move |settled| {
        if settled != Settled::Failed {
            return;
        }
        // Checked and restored under the entry's lock, so no write slips in between.
        match map.entry(key) {
            Entry::Occupied(mut current) => {
                let holds_written = written.as_ref().is_some_and(|written| {
                    serde_json::to_value(current.get()).ok().as_ref() == Some(written)
                });
                if holds_written {
                    match before {
                        Some(before) => {
                            current.insert(before);
                        }
                        None => {
                            current.remove();
                        }
                    }
                }
            }
            Entry::Vacant(slot) => {
                if written.is_none()
                    && let Some(before) = before
                {
                    slot.insert(before);
                }
            }
        }
    }
}

/// Reads a stored entity: `Ok(None)` for a tombstone, an error naming the entry when the JSON
/// does not fit (a corrupt or incompatible data directory is reported, never skipped).
pub(crate) fn restore<T: serde::de::DeserializeOwned>(
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
