//! The built-in storage account that file uploads land in when a hub is not linked to a real
//! (or Azurite) account: a minimal Azure Blob service, just what the device SDKs' upload path
//! uses — Put Blob, Put Block, Put Block List, Get Blob — for block blobs in the containers
//! the hubs name (docs/file-upload.md). Requests are authorised by a service SAS for the
//! blob, signed with the account's well-known key, which the store checks ([`access`]); the
//! HTTPS transport (`http::blob`) maps [`StorageError`] to Azure Storage's XML errors.
//!
//! Writes follow the domain write path (`persistence`): validated, submitted to the store,
//! then published; the transport answers 201 only once the returned [`Pending`] is durable.
//! Uncommitted blocks are stored too (one entry each), and Put Block List commits the blob
//! and drops its blocks in one atomic apply.

pub(crate) mod access;
pub(crate) mod block_list;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use base64::Engine as _;

use bytes::Bytes;
use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use serde::{Deserialize, Serialize};

use crate::pending::{Pending, Settled};
use crate::persistence::{Persistence, Save, restore};
use crate::store::{StoreError, StoreSnapshot};
use block_list::BlockSource;

/// The built-in account's name: the `{account}` of its canonicalized SAS resource.
pub(crate) const BUILT_IN_ACCOUNT: &str = "iotemu";

/// The built-in account's key, well known like Azurite's (docs/file-upload.md): the hub signs
/// the SAS tokens it gives devices with it, and tests may sign their own.
pub(crate) const BUILT_IN_ACCOUNT_KEY: &str =
    "aW90ZW11LWJ1aWx0LWluLWJsb2Itc3RvcmUtd2VsbC1rbm93bi1rZXktMDAwMDAwMDAwMDAwMDAwMDAwMDAwMA==";

/// Largest blob (and largest Put Blob or Put Block body). Chosen: the built-in store keeps
/// blobs in memory; Azure's block blobs go to 190 TiB.
pub(crate) const MAX_BLOB_BYTES: usize = 64 * 1024 * 1024;

/// Everything the store holds, committed and uncommitted. Chosen, for the same reason.
pub(crate) const MAX_STORE_BYTES: u64 = 512 * 1024 * 1024;

/// Azure's limit on uncommitted blocks per blob.
const MAX_UNCOMMITTED_BLOCKS: usize = 100_000;

/// Azure's limit on a block id, before base64.
const MAX_BLOCK_ID_BYTES: usize = 64;

const BLOBS: &str = "storage/blobs";
const BLOCKS: &str = "storage/blocks";

/// A blob-service error: HTTP status and Azure Storage's error code (`x-ms-error-code`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StorageError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

impl StorageError {
    pub(crate) fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        StorageError {
            status,
            code,
            message: message.into(),
        }
    }

    fn blob_not_found() -> Self {
        StorageError::new(404, "BlobNotFound", "The specified blob does not exist.")
    }

    fn store(e: StoreError) -> Self {
        StorageError::new(
            500,
            "InternalError",
            format!("the blob was not stored: {e}"),
        )
    }
}

impl From<StoreError> for StorageError {
    fn from(e: StoreError) -> Self {
        StorageError::store(e)
    }
}

/// A committed block blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredBlob {
    pub container: String,
    pub name: String,
    #[serde(with = "crate::serde_b64")]
    pub content: Bytes,
    pub content_type: String,
    pub etag: String,
    pub created: SystemTime,
    pub last_modified: SystemTime,
    /// The committed blocks (id, length) in order; empty for a blob written by Put Blob.
    #[serde(default)]
    pub blocks: Vec<(String, u64)>,
}

/// One uncommitted block, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredBlock {
    container: String,
    name: String,
    id: String,
    #[serde(with = "crate::serde_b64")]
    content: Bytes,
}

/// A blob's identity: (container, blob name).
type BlobKey = (String, String);

/// The built-in account's blobs and the containers the hubs upload into.
pub struct BlobStore {
    containers: dashmap::DashSet<String>,
    blobs: DashMap<BlobKey, StoredBlob>,
    /// Uncommitted blocks by blob, by block id.
    blocks: DashMap<BlobKey, BTreeMap<String, Bytes>>,
    /// Bytes held, committed and uncommitted: reserved before a write is published.
    held_bytes: AtomicU64,
    /// Makes each ETag different from the last, however close two writes come.
    etag_counter: AtomicU64,
    persistence: Arc<Persistence>,
    /// [`BUILT_IN_ACCOUNT_KEY`], decoded once.
    account_key: Vec<u8>,
    /// Upload bytes that may be in flight at once (`access`).
    upload_budget: tokio::sync::Semaphore,
}

impl Default for BlobStore {
    fn default() -> Self {
        BlobStore::new(Arc::default())
    }
}

/// What a write tells the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BlobWritten {
    pub etag: String,
    pub last_modified: SystemTime,
}

impl BlobStore {
    pub(crate) fn new(persistence: Arc<Persistence>) -> BlobStore {
        BlobStore {
            containers: dashmap::DashSet::new(),
            blobs: DashMap::new(),
            blocks: DashMap::new(),
            held_bytes: AtomicU64::new(0),
            etag_counter: AtomicU64::new(0),
            persistence,
            account_key: base64::engine::general_purpose::STANDARD
                .decode(BUILT_IN_ACCOUNT_KEY)
                .expect("the built-in account key is base64"),
            upload_budget: tokio::sync::Semaphore::new(access::UPLOAD_BUDGET_UNITS),
        }
    }

    /// Makes `container` exist (a hub linked to the built-in account names it).
    pub(crate) fn create_container(&self, container: &str) {
        self.containers.insert(container.to_owned());
    }

    /// Whether a request whose path starts with `container` is for this store.
    pub fn has_container(&self, container: &str) -> bool {
        self.containers.contains(container)
    }

    /// Every committed blob, without content, sorted by container and name.
    pub fn list(&self) -> Vec<StoredBlob> {
        let mut blobs: Vec<StoredBlob> = self
            .blobs
            .iter()
            .map(|entry| StoredBlob {
                content: Bytes::new(),
                ..entry.value().clone()
            })
            .collect();
        blobs.sort_by(|a, b| (&a.container, &a.name).cmp(&(&b.container, &b.name)));
        blobs
    }

    /// A committed blob with its content.
    pub fn get(&self, container: &str, name: &str) -> Option<StoredBlob> {
        self.blobs
            .get(&(container.to_owned(), name.to_owned()))
            .map(|blob| blob.clone())
    }

    /// Get Blob: the blob, or 404 BlobNotFound (a container that is not the store's is the
    /// router's business, not this one's).
    pub(crate) fn read(&self, container: &str, name: &str) -> Result<StoredBlob, StorageError> {
        self.get(container, name)
            .ok_or_else(StorageError::blob_not_found)
    }

    /// Put Blob: `content` becomes the whole blob, replacing any blob of that name (unless
    /// `overwrite` is false: `If-None-Match: *`, 409 BlobAlreadyExists) and dropping its
    /// uncommitted blocks (Azure does the same).
    pub(crate) fn put_blob(
        &self,
        container: &str,
        name: &str,
        content: Bytes,
        content_type: Option<&str>,
        overwrite: bool,
        now: SystemTime,
    ) -> Result<Pending<'_, BlobWritten>, StorageError> {
        self.check_container(container)?;
        check_size(content.len())?;
        let key = (container.to_owned(), name.to_owned());
        if !overwrite && self.blobs.contains_key(&key) {
            return Err(StorageError::new(
                409,
                "BlobAlreadyExists",
                "The specified blob already exists.",
            ));
        }
        self.commit(key, content, Vec::new(), content_type, now)
    }

    /// Put Block: keeps `content` under `block_id` until a block list commits it.
    pub(crate) fn put_block(
        &self,
        container: &str,
        name: &str,
        block_id: &str,
        content: Bytes,
    ) -> Result<Pending<'_, ()>, StorageError> {
        self.check_container(container)?;
        check_block_id(block_id)?;
        check_size(content.len())?;
        let key = (container.to_owned(), name.to_owned());
        let mut blocks = self.blocks.entry(key.clone()).or_default();
        if let Some(first) = blocks.keys().next()
            && first.len() != block_id.len()
        {
            return Err(StorageError::new(
                400,
                "InvalidBlobOrBlock",
                "The specified blob or block content is invalid: every block id of a blob must have the same length.",
            ));
        }
        let replaced = blocks.get(block_id).map_or(0, Bytes::len);
        if !blocks.contains_key(block_id) && blocks.len() >= MAX_UNCOMMITTED_BLOCKS {
            return Err(StorageError::new(
                409,
                "BlockCountExceedsLimit",
                format!("A blob may have at most {MAX_UNCOMMITTED_BLOCKS} uncommitted blocks."),
            ));
        }
        self.reserve(content.len() as u64, replaced as u64)?;
        let save = Save::of(
            BLOCKS,
            &block_store_key(container, name, block_id),
            Some(&StoredBlock {
                container: container.to_owned(),
                name: name.to_owned(),
                id: block_id.to_owned(),
                content: content.clone(),
            }),
        );
        let commit = match self.persistence.submit(vec![save]) {
            Ok(commit) => commit,
            Err(e) => {
                self.unreserve(content.len() as u64, replaced as u64);
                return Err(e.into());
            }
        };
        blocks.insert(block_id.to_owned(), content);
        // Blocks are not rolled back in memory if the fsync then fails: the client was told
        // nothing, and a block nobody commits is harmless.
        Ok(Pending::new((), commit))
    }

    /// Put Block List: the blob becomes the named blocks in order; its uncommitted blocks are
    /// dropped. 400 InvalidBlockList when a block is not found where the list says.
    pub(crate) fn put_block_list(
        &self,
        container: &str,
        name: &str,
        list: &[(BlockSource, String)],
        content_type: Option<&str>,
        now: SystemTime,
    ) -> Result<Pending<'_, BlobWritten>, StorageError> {
        self.check_container(container)?;
        let key = (container.to_owned(), name.to_owned());
        let committed = self.blobs.get(&key).map(|blob| blob.clone());
        let uncommitted = self.blocks.get(&key).map(|b| b.clone()).unwrap_or_default();
        let mut content = Vec::new();
        let mut blocks = Vec::with_capacity(list.len());
        for (source, id) in list {
            let from_uncommitted = || uncommitted.get(id).cloned();
            let from_committed = || {
                committed
                    .as_ref()
                    .and_then(|blob| committed_block(blob, id))
            };
            let block = match source {
                BlockSource::Uncommitted => from_uncommitted(),
                BlockSource::Committed => from_committed(),
                BlockSource::Latest => from_uncommitted().or_else(from_committed),
            }
            .ok_or_else(|| {
                StorageError::new(
                    400,
                    "InvalidBlockList",
                    "The specified block list is invalid.",
                )
            })?;
            check_size(content.len().saturating_add(block.len()))?;
            content.extend_from_slice(&block);
            blocks.push((id.clone(), block.len() as u64));
        }
        self.commit(key, Bytes::from(content), blocks, content_type, now)
    }

    /// Replaces the blob under `key` with `content` and drops its uncommitted blocks, in one
    /// apply; the bytes it frees count towards the room it needs.
    fn commit(
        &self,
        key: BlobKey,
        content: Bytes,
        blocks: Vec<(String, u64)>,
        content_type: Option<&str>,
        now: SystemTime,
    ) -> Result<Pending<'_, BlobWritten>, StorageError> {
        let entry = self.blobs.entry(key.clone());
        let previous = match &entry {
            Entry::Occupied(blob) => Some(blob.get().clone()),
            Entry::Vacant(_) => None,
        };
        let blocks_len: u64 = self
            .blocks
            .get(&key)
            .map_or(0, |blocks| blocks.values().map(|b| b.len() as u64).sum());
        let freed = previous.as_ref().map_or(0, |p| p.content.len() as u64) + blocks_len;
        let adding = content.len() as u64;
        self.reserve(adding, freed)?;
        let etag = format!(
            "\"0x{:X}{:04X}\"",
            crate::timefmt::unix_seconds(now),
            self.etag_counter.fetch_add(1, Ordering::Relaxed) & 0xFFFF
        );
        let blob = StoredBlob {
            container: key.0.clone(),
            name: key.1.clone(),
            content,
            content_type: content_type
                .filter(|t| !t.is_empty())
                .unwrap_or("application/octet-stream")
                .to_owned(),
            etag: etag.clone(),
            created: previous.as_ref().map_or(now, |p| p.created),
            last_modified: now,
            blocks,
        };
        let dropped_blocks = self.blocks.remove(&key).map(|(_, blocks)| blocks);
        let mut saves = vec![Save::of(
            BLOBS,
            &blob_store_key(&key.0, &key.1),
            Some(&blob),
        )];
        for id in dropped_blocks.iter().flat_map(BTreeMap::keys) {
            saves.push(Save::of::<StoredBlock>(
                BLOCKS,
                &block_store_key(&key.0, &key.1, id),
                None,
            ));
        }
        let commit = match self.persistence.submit(saves) {
            Ok(commit) => commit,
            Err(e) => {
                self.unreserve(adding, freed);
                if let Some(blocks) = dropped_blocks {
                    self.blocks.insert(key, blocks);
                }
                return Err(e.into());
            }
        };
        let written = BlobWritten {
            etag: etag.clone(),
            last_modified: now,
        };
        match entry {
            Entry::Occupied(mut slot) => {
                slot.insert(blob);
            }
            Entry::Vacant(slot) => {
                slot.insert(blob);
            }
        }
        // If the store then fails to make it durable, the previous blob comes back — unless
        // a later write replaced this one (its ETag is gone), which fails too and undoes
        // itself. The bytes are not re-counted: the store refuses every later write anyway.
        let undo = move |settled: Settled| {
            if settled != Settled::Failed {
                return;
            }
            if let Entry::Occupied(mut current) = self.blobs.entry(key)
                && current.get().etag == etag
            {
                match previous {
                    Some(previous) => {
                        current.insert(previous);
                    }
                    None => {
                        current.remove();
                    }
                }
            }
        };
        Ok(Pending::new(written, commit).on_settled(undo))
    }

    fn check_container(&self, container: &str) -> Result<(), StorageError> {
        if self.has_container(container) {
            Ok(())
        } else {
            Err(StorageError::new(
                404,
                "ContainerNotFound",
                "The specified container does not exist.",
            ))
        }
    }

    /// Counts `adding` bytes against [`MAX_STORE_BYTES`] (after giving back `replacing`),
    /// or refuses without counting anything.
    fn reserve(&self, adding: u64, replacing: u64) -> Result<(), StorageError> {
        self.held_bytes
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |held| {
                let after = held.saturating_sub(replacing).checked_add(adding)?;
                (after <= MAX_STORE_BYTES).then_some(after)
            })
            .map(drop)
            .map_err(|_| {
                StorageError::new(
                    409,
                    "InsufficientAccountCapacity",
                    format!(
                        "The built-in blob store holds at most {} MiB (iotemu's limit).",
                        MAX_STORE_BYTES >> 20
                    ),
                )
            })
    }

    /// Undoes a [`BlobStore::reserve`] whose write was then refused.
    fn unreserve(&self, adding: u64, replacing: u64) {
        let _ = self
            .held_bytes
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |held| {
                Some(held.saturating_sub(adding).saturating_add(replacing))
            });
    }

    /// Lays the stored blobs and blocks over the (empty) store at startup.
    pub(crate) fn restore(&self, snapshot: &mut StoreSnapshot) -> Result<(), String> {
        for (key, value) in snapshot.take(BLOBS) {
            if let Some(blob) = restore::<StoredBlob>(BLOBS, &key, value)? {
                self.held_bytes
                    .fetch_add(blob.content.len() as u64, Ordering::SeqCst);
                self.blobs
                    .insert((blob.container.clone(), blob.name.clone()), blob);
            }
        }
        for (key, value) in snapshot.take(BLOCKS) {
            if let Some(block) = restore::<StoredBlock>(BLOCKS, &key, value)? {
                self.held_bytes
                    .fetch_add(block.content.len() as u64, Ordering::SeqCst);
                self.blocks
                    .entry((block.container, block.name))
                    .or_default()
                    .insert(block.id, block.content);
            }
        }
        Ok(())
    }
}

/// 413 RequestBodyTooLarge above [`MAX_BLOB_BYTES`].
fn check_size(len: usize) -> Result<(), StorageError> {
    if len > MAX_BLOB_BYTES {
        return Err(StorageError::new(
            413,
            "RequestBodyTooLarge",
            format!(
                "The request body is too large and exceeds the maximum permissible limit of {} MiB (iotemu's limit).",
                MAX_BLOB_BYTES >> 20
            ),
        ));
    }
    Ok(())
}

/// A block id is base64 of at most [`MAX_BLOCK_ID_BYTES`] bytes.
fn check_block_id(id: &str) -> Result<(), StorageError> {
    let decoded = base64::engine::general_purpose::STANDARD.decode(id);
    match decoded {
        Ok(raw) if !raw.is_empty() && raw.len() <= MAX_BLOCK_ID_BYTES => Ok(()),
        _ => Err(StorageError::new(
            400,
            "InvalidQueryParameterValue",
            "Value for one of the query parameters specified in the request URI is invalid: blockid must be base64 of at most 64 bytes.",
        )),
    }
}

/// The content of the committed block `id` of `blob`, if it has one.
fn committed_block(blob: &StoredBlob, id: &str) -> Option<Bytes> {
    let mut offset = 0usize;
    for (block_id, len) in &blob.blocks {
        let len = usize::try_from(*len).ok()?;
        let end = offset.checked_add(len)?;
        if block_id == id {
            return (end <= blob.content.len()).then(|| blob.content.slice(offset..end));
        }
        offset = end;
    }
    None
}

/// A blob's key in the store: container names hold no `/`, so this is unambiguous.
fn blob_store_key(container: &str, name: &str) -> String {
    format!("{container}/{name}")
}

/// An uncommitted block's key: block ids (base64) hold no `#`, so the last one separates.
fn block_store_key(container: &str, name: &str, block_id: &str) -> String {
    format!("{container}/{name}#{block_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> BlobStore {
        let store = BlobStore::default();
        store.create_container("uploads");
        store
    }

    fn b64(raw: &[u8]) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(raw)
    }

    #[test]
    fn put_blob_then_read_it_back() {
        let store = store();
        let now = SystemTime::now();
        let written = store
            .put_blob(
                "uploads",
                "dev/a.txt",
                Bytes::from_static(b"hello"),
                Some("text/plain"),
                false,
                now,
            )
            .unwrap()
            .wait()
            .unwrap();
        let blob = store.read("uploads", "dev/a.txt").unwrap();
        assert_eq!(&blob.content[..], b"hello");
        assert_eq!(blob.content_type, "text/plain");
        assert_eq!(blob.etag, written.etag);
        assert_eq!(
            store.read("uploads", "dev/b.txt").unwrap_err().code,
            "BlobNotFound"
        );
        assert_eq!(
            store
                .put_blob("other", "x", Bytes::new(), None, true, now)
                .unwrap_err()
                .code,
            "ContainerNotFound"
        );
        let exists = store
            .put_blob("uploads", "dev/a.txt", Bytes::new(), None, false, now)
            .unwrap_err();
        assert_eq!((exists.status, exists.code), (409, "BlobAlreadyExists"));
        let again = store
            .put_blob("uploads", "dev/a.txt", Bytes::new(), None, true, now)
            .unwrap()
            .wait()
            .unwrap();
        assert_ne!(again.etag, written.etag, "every write has a new ETag");
        assert_eq!(store.list().len(), 1);
        assert!(
            store.list()[0].content.is_empty(),
            "listing leaves content out"
        );
        assert_eq!(store.held_bytes.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn block_lists_commit_blocks_in_order() {
        let store = store();
        let now = SystemTime::now();
        let (one, two) = (b64(b"block-1"), b64(b"block-2"));
        store
            .put_block("uploads", "f", &one, Bytes::from_static(b"hello "))
            .unwrap()
            .wait()
            .unwrap();
        store
            .put_block("uploads", "f", &two, Bytes::from_static(b"world"))
            .unwrap()
            .wait()
            .unwrap();
        assert!(store.read("uploads", "f").is_err(), "not committed yet");
        let list = vec![
            (BlockSource::Latest, two.clone()),
            (BlockSource::Uncommitted, one.clone()),
        ];
        store
            .put_block_list("uploads", "f", &list, None, now)
            .unwrap()
            .wait()
            .unwrap();
        assert_eq!(
            &store.read("uploads", "f").unwrap().content[..],
            b"worldhello "
        );
        assert!(
            store.blocks.get(&("uploads".into(), "f".into())).is_none(),
            "blocks dropped"
        );

        // Committed blocks can be listed again; a missing one refuses the list.
        let relist = vec![(BlockSource::Committed, one.clone())];
        store
            .put_block_list("uploads", "f", &relist, None, now)
            .unwrap()
            .wait()
            .unwrap();
        assert_eq!(&store.read("uploads", "f").unwrap().content[..], b"hello ");
        let missing = vec![(BlockSource::Uncommitted, one)];
        let refused = store
            .put_block_list("uploads", "f", &missing, None, now)
            .unwrap_err();
        assert_eq!(refused.code, "InvalidBlockList");
        assert_eq!(
            &store.read("uploads", "f").unwrap().content[..],
            b"hello ",
            "unchanged"
        );
        assert_eq!(store.held_bytes.load(Ordering::SeqCst), 6);
    }

    #[test]
    fn bad_block_ids_and_sizes_are_refused() {
        let store = store();
        for bad in ["", "not base64!", &b64(&[0; 65])] {
            let e = store
                .put_block("uploads", "f", bad, Bytes::new())
                .unwrap_err();
            assert_eq!(e.status, 400, "{bad}");
        }
        store
            .put_block("uploads", "f", &b64(b"aa"), Bytes::new())
            .unwrap()
            .wait()
            .unwrap();
        let e = store
            .put_block("uploads", "f", &b64(b"bbbb"), Bytes::new())
            .unwrap_err();
        assert_eq!(
            e.code, "InvalidBlobOrBlock",
            "ids of one blob share a length"
        );
        let huge = Bytes::from(vec![0; MAX_BLOB_BYTES + 1]);
        let e = store
            .put_blob("uploads", "big", huge, None, true, SystemTime::now())
            .unwrap_err();
        assert_eq!((e.status, e.code), (413, "RequestBodyTooLarge"));
        assert!(store.read("uploads", "big").is_err());
    }

    #[test]
    fn the_store_is_capped_as_a_whole() {
        let store = store();
        let now = SystemTime::now();
        let chunk = Bytes::from(vec![7; MAX_BLOB_BYTES]);
        let fits = (MAX_STORE_BYTES / MAX_BLOB_BYTES as u64) as usize;
        for n in 0..fits {
            store
                .put_blob("uploads", &format!("b{n}"), chunk.clone(), None, true, now)
                .unwrap()
                .wait()
                .unwrap();
        }
        let e = store
            .put_blob("uploads", "one-more", chunk.clone(), None, true, now)
            .unwrap_err();
        assert_eq!(e.status, 409);
        // Replacing a blob frees its old bytes.
        store
            .put_blob("uploads", "b0", chunk, None, true, now)
            .unwrap()
            .wait()
            .unwrap();
        assert_eq!(store.held_bytes.load(Ordering::SeqCst), MAX_STORE_BYTES);
    }
}
