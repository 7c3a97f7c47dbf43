//! Tests of the file store through its public API and its files on disk: behaviour
//! (`file_store`), the recovery rules for damaged files (`damage`), random op sequences
//! against a model (`model`), `kill -9` of a writing process (`crash`) and the directory
//! lock across processes (`lock`).

mod crash;
mod damage;
mod file_store;
#[cfg(unix)]
mod lock;
mod model;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::{FileStore, FileStoreOptions, Op, Store};

/// Collections by name, as a plain map to compare against.
type Model = BTreeMap<String, BTreeMap<String, Value>>;

fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temporary directory")
}

fn open(dir: &Path) -> FileStore {
    FileStore::open(dir).expect("open the data directory")
}

fn open_compacting_after(dir: &Path, compact_after_log_bytes: u64) -> FileStore {
    FileStore::open_with(
        dir,
        FileStoreOptions {
            compact_after_log_bytes,
        },
    )
    .expect("open the data directory")
}

fn contents(store: &dyn Store) -> Model {
    store.load().expect("load").into_collections()
}

/// Applies `ops` to the model the way a store must.
fn apply_to_model(model: &mut Model, ops: &[Op]) {
    for op in ops {
        match op {
            Op::Put {
                collection,
                key,
                value,
            } => {
                model
                    .entry(collection.clone())
                    .or_default()
                    .insert(key.clone(), value.clone());
            }
            Op::Delete { collection, key } => {
                if let Some(entries) = model.get_mut(collection) {
                    entries.remove(key);
                    if entries.is_empty() {
                        model.remove(collection);
                    }
                }
            }
        }
    }
}

/// Runs `f` with tracing output captured; returns its result and the text logged.
fn capture_logs<T>(f: impl FnOnce() -> T) -> (T, String) {
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);
    impl Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let result = tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8_lossy(&captured.0.lock().expect("log buffer")).into_owned();
    (result, text)
}
