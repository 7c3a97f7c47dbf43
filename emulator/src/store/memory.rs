//! The store used without `--data-dir`: the domain services' own maps are the only state, so
//! there is nothing to keep. Applying costs nothing and a restart starts empty.

use super::{Commit, Op, Store, StoreError, StoreSnapshot};

#[derive(Debug, Default, Clone, Copy)]
pub struct MemoryStore;

impl Store for MemoryStore {
    fn submit(&self, _ops: &[Op]) -> Result<Commit, StoreError> {
        Ok(Commit::durable_now())
    }

    fn load(&self) -> Result<StoreSnapshot, StoreError> {
        Ok(StoreSnapshot::default())
    }

    fn is_durable(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn accepts_everything_and_remembers_nothing() {
        let store = MemoryStore;
        store
            .apply(&[Op::put("devices", "d1", json!({"a": 1}))])
            .expect("apply");
        store
            .submit(&[Op::delete("devices", "d2")])
            .expect("submit")
            .durable()
            .await
            .expect("durable");
        assert!(!store.is_durable());
        assert!(store.load().expect("load").is_empty());
    }
}
