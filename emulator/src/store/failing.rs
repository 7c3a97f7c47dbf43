//! A store whose every save fails, as a full or broken disk would: for the unit tests that
//! check a refused write is reported and leaves state unchanged.

use super::{Commit, Op, Store, StoreError, StoreSnapshot};

/// Refuses every submit with "disk full"; loads as empty; claims durability so callers wait
/// for the (failing) commit instead of skipping it.
pub(crate) struct FailingStore;

impl Store for FailingStore {
    fn submit(&self, _ops: &[Op]) -> Result<Commit, StoreError> {
        Err(StoreError::Rejected("disk full".into()))
    }
    fn load(&self) -> Result<StoreSnapshot, StoreError> {
        Ok(StoreSnapshot::default())
    }
    fn is_durable(&self) -> bool {
        true
    }
}
