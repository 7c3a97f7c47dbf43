//! Who may do what to a blob of the built-in account, decided by the store so that every way
//! into it judges alike: a service SAS for the blob (`auth::blob_sas`, signed with the account's
//! key) whose permissions cover the operation — `r` to read, `c` to create a blob that is not
//! there yet, `w` to write. And how much upload may be in flight at once: request bodies are
//! held in memory while they arrive, so a shared budget refuses more (503 ServerBusy, which the
//! storage SDKs retry) rather than let many large uploads exhaust memory.

use std::time::SystemTime;

use super::{BUILT_IN_ACCOUNT, BlobStore, MAX_BLOB_BYTES, StorageError};
use crate::auth::blob_sas::{self, BlobSasError};

/// Upload bytes in flight at once, in [`BUDGET_UNIT`]s: 256 MiB. Chosen.
pub(super) const UPLOAD_BUDGET_UNITS: usize = 256;

/// One unit of the upload budget.
const BUDGET_UNIT: u64 = 1024 * 1024;

/// What a request does to a blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BlobAccess {
    /// Get Blob, Get Blob Properties.
    Read,
    /// Put Blob: `c` may make a new blob, `w` may also replace one.
    Put,
    /// Put Block, Put Block List.
    Write,
}

/// A share of the upload budget, given back when dropped.
pub(crate) type UploadPermit<'a> = tokio::sync::SemaphorePermit<'a>;

impl BlobStore {
    /// The built-in account's key, decoded: what its SAS tokens are signed with.
    pub(crate) fn account_key(&self) -> &[u8] {
        &self.account_key
    }

    /// Whether the SAS in `query` lets its holder do `access` to `container`/`blob` at `now`;
    /// the error is Azure Storage's 403.
    pub(crate) fn authorize(
        &self,
        query: Option<&str>,
        container: &str,
        blob: &str,
        access: BlobAccess,
        now: SystemTime,
    ) -> Result<(), StorageError> {
        let permissions =
            blob_sas::verify(query, BUILT_IN_ACCOUNT, &self.account_key, container, blob, now)
                .map_err(|e| {
                    let code = match e {
                        BlobSasError::Missing => "NoAuthenticationInformation",
                        _ => "AuthenticationFailed",
                    };
                    StorageError::new(
                        403,
                        code,
                        format!(
                            "Server failed to authenticate the request. Make sure the value of Authorization header is formed correctly including the signature.\nAuthenticationErrorDetail: {e}"
                        ),
                    )
                })?;
        let allowed = match access {
            BlobAccess::Read => permissions.read,
            BlobAccess::Put => {
                permissions.write || (permissions.create && self.get(container, blob).is_none())
            }
            BlobAccess::Write => permissions.write,
        };
        if allowed {
            Ok(())
        } else {
            Err(StorageError::new(
                403,
                "AuthorizationPermissionMismatch",
                "This request is not authorized to perform this operation using this permission.",
            ))
        }
    }

    /// A share of the upload budget for a body of `declared` bytes (the limit when not
    /// declared), or 503 ServerBusy when the budget is spent. Never waits.
    pub(crate) fn reserve_upload(
        &self,
        declared: Option<u64>,
    ) -> Result<UploadPermit<'_>, StorageError> {
        let bytes = declared
            .unwrap_or(MAX_BLOB_BYTES as u64)
            .min(MAX_BLOB_BYTES as u64);
        // At least one unit, so empty bodies count too; at most the limit's 64 units.
        let units = bytes.div_ceil(BUDGET_UNIT).max(1) as u32;
        self.upload_budget.try_acquire_many(units).map_err(|_| {
            StorageError::new(
                503,
                "ServerBusy",
                "The server is busy: too many uploads are in flight (iotemu's limit); retry.",
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::auth::blob_sas::BlobGrant;

    fn token(store: &BlobStore, blob: &str, permissions: &str) -> String {
        blob_sas::sign(
            &BlobGrant {
                account: BUILT_IN_ACCOUNT,
                container: "uploads",
                blob,
                permissions,
                expiry: SystemTime::now() + Duration::from_secs(60),
            },
            store.account_key(),
        )
    }

    #[test]
    fn permissions_decide_each_access() {
        let store = BlobStore::default();
        store.create_container("uploads");
        let now = SystemTime::now();
        let check = |t: &str, access| store.authorize(Some(t), "uploads", "b", access, now);
        let read = token(&store, "b", "r");
        assert!(check(&read, BlobAccess::Read).is_ok());
        let refused = check(&read, BlobAccess::Write).unwrap_err();
        assert_eq!(refused.code, "AuthorizationPermissionMismatch");
        let create = token(&store, "b", "c");
        assert!(check(&create, BlobAccess::Put).is_ok(), "a new blob");
        store
            .put_blob("uploads", "b", bytes::Bytes::new(), None, true, now)
            .unwrap()
            .wait()
            .unwrap();
        assert!(
            check(&create, BlobAccess::Put).is_err(),
            "create cannot replace"
        );
        assert!(check(&token(&store, "b", "rw"), BlobAccess::Put).is_ok());
        let missing = store.authorize(None, "uploads", "b", BlobAccess::Read, now);
        assert_eq!(missing.unwrap_err().code, "NoAuthenticationInformation");
        let other = check(&token(&store, "other", "rw"), BlobAccess::Read).unwrap_err();
        assert_eq!(other.code, "AuthenticationFailed");
    }

    #[test]
    fn the_upload_budget_refuses_rather_than_waits() {
        let store = BlobStore::default();
        let full: Vec<_> = (0..UPLOAD_BUDGET_UNITS / 64)
            .map(|_| store.reserve_upload(None).expect("64 MiB fits"))
            .collect();
        let busy = store.reserve_upload(Some(0)).unwrap_err();
        assert_eq!((busy.status, busy.code), (503, "ServerBusy"));
        drop(full);
        assert!(
            store.reserve_upload(Some(3 * 1024 * 1024)).is_ok(),
            "given back"
        );
    }
}
