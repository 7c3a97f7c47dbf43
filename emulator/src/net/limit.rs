//! How many connections of one listener kind may be open at once, over every address the
//! kind is bound on, and the slot each open connection holds.
//!
//! The limit is exact per kind: a listener takes a slot only once it has accepted a
//! connection, never while it waits for one, so with 127.0.0.1 and ::1 both bound a limit of
//! N still lets N clients of one address in. A listener that accepts while another address
//! takes the last slot holds that one connection (and stops accepting) until a slot is free.

use std::sync::Arc;

use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore};

/// How many connections of one listener kind may be open at once; clones share the count
/// (one limit for every address a kind is bound on).
#[derive(Debug, Clone)]
pub(crate) struct ConnectionLimit {
    slots: Arc<Semaphore>,
    max: usize,
}

impl ConnectionLimit {
    pub(crate) fn new(max: usize) -> ConnectionLimit {
        // A limit of 0 would never accept anything; treat it as 1.
        let max = max.clamp(1, Semaphore::MAX_PERMITS);
        ConnectionLimit {
            slots: Arc::new(Semaphore::new(max)),
            max,
        }
    }

    pub(crate) fn max(&self) -> usize {
        self.max
    }

    /// Connections open now.
    #[cfg(test)]
    pub(crate) fn in_use(&self) -> usize {
        self.max.saturating_sub(self.slots.available_permits())
    }

    /// Whether a connection could be given a slot now.
    pub(super) fn has_free_slot(&self) -> bool {
        self.slots.available_permits() > 0
    }

    /// Resolves once a slot is free, without taking it.
    pub(super) async fn free_slot(&self) -> Result<(), AcquireError> {
        self.slots.acquire().await.map(drop)
    }

    /// A slot now, if one is free.
    pub(super) fn try_take(&self) -> Option<ConnectionSlot> {
        let permit = self.slots.clone().try_acquire_owned().ok()?;
        Some(ConnectionSlot { _permit: permit })
    }

    /// A slot, once one is free.
    pub(super) async fn take(&self) -> Result<ConnectionSlot, AcquireError> {
        let permit = self.slots.clone().acquire_owned().await?;
        Ok(ConnectionSlot { _permit: permit })
    }
}

/// One connection's place under its [`ConnectionLimit`]: the slot is free again when this
/// is dropped. A task that outlives the connection's own (a WebSocket session after the HTTP
/// upgrade) keeps it alive.
#[derive(Debug)]
pub(crate) struct ConnectionSlot {
    _permit: OwnedSemaphorePermit,
}
