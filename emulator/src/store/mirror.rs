//! The file store's own copy of the current state, kept as JSON text: what a compaction
//! writes into the snapshot and what [`Store::load`](super::Store::load) returns. Text rather
//! than `serde_json::Value` because it is smaller and is only parsed again at startup.

use std::collections::BTreeMap;

use super::StoreSnapshot;
use super::error::StoreError;
use super::record::Change;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Mirror {
    /// Collections with at least one key; ordered, so snapshots are reproducible.
    collections: BTreeMap<String, BTreeMap<String, Box<str>>>,
    entries: usize,
}

impl Mirror {
    pub(super) fn apply(&mut self, change: Change) {
        match change.value {
            Some(value) => {
                let collection = self.collections.entry(change.collection).or_default();
                if collection.insert(change.key, value).is_none() {
                    self.entries += 1;
                }
            }
            None => {
                let Some(collection) = self.collections.get_mut(&change.collection) else {
                    return;
                };
                if collection.remove(&change.key).is_some() {
                    self.entries -= 1;
                    if collection.is_empty() {
                        self.collections.remove(&change.collection);
                    }
                }
            }
        }
    }

    /// Number of keys over all collections.
    pub(super) fn len(&self) -> usize {
        self.entries
    }

    /// Every (collection, key, value) in order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&str, &str, &str)> {
        self.collections.iter().flat_map(|(collection, entries)| {
            entries
                .iter()
                .map(move |(key, value)| (collection.as_str(), key.as_str(), &**value))
        })
    }

    pub(super) fn to_snapshot(&self) -> Result<StoreSnapshot, StoreError> {
        let mut snapshot = StoreSnapshot::default();
        for (name, entries) in &self.collections {
            let mut collection = BTreeMap::new();
            for (key, text) in entries {
                // Every text was produced by serde_json or validated by it on the way in.
                let value = serde_json::from_str(text).map_err(|e| {
                    StoreError::Rejected(format!("stored value of {name}/{key} is not JSON: {e}"))
                })?;
                collection.insert(key.clone(), value);
            }
            snapshot.collections.insert(name.clone(), collection);
        }
        Ok(snapshot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(collection: &str, key: &str, value: Option<&str>) -> Change {
        Change {
            collection: collection.into(),
            key: key.into(),
            value: value.map(Into::into),
        }
    }

    #[test]
    fn deleting_the_last_key_drops_the_collection() {
        let mut mirror = Mirror::default();
        mirror.apply(change("a", "1", Some("1")));
        mirror.apply(change("a", "1", Some("2")));
        mirror.apply(change("b", "1", Some("true")));
        mirror.apply(change("b", "missing", None));
        mirror.apply(change("nowhere", "missing", None));
        assert_eq!(mirror.len(), 2);
        mirror.apply(change("a", "1", None));
        assert_eq!(mirror.len(), 1);
        assert_eq!(mirror.iter().collect::<Vec<_>>(), [("b", "1", "true")]);
        let snapshot = mirror.to_snapshot().expect("snapshot");
        assert_eq!(snapshot.collection("a"), None);
        assert_eq!(
            snapshot.collection("b").and_then(|b| b.get("1")),
            Some(&serde_json::Value::Bool(true))
        );
    }
}
