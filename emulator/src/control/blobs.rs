//! `/blobs`: what devices uploaded to the built-in blob store (docs/file-upload.md), for
//! tests that do not link the Rust library and for the portal.
//!
//! | route | answer |
//! |---|---|
//! | `GET /blobs` | 200 `[{container, name, size, contentType, etag, created, lastModified}]`, sorted |
//! | `GET /blobs/{container}/{blob name…}` | 200 with the blob's bytes and content type, or 404 |
//!
//! Read-only: devices write through the Blob service on the HTTPS port, with their SAS.

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::{Method, Response, StatusCode};
use percent_encoding::percent_decode_str;
use serde_json::{Value, json};

use super::api::error_reply as error;
use super::reply::{Reply, json_reply};
use crate::storage::BlobStore;
use crate::timefmt::utc_timestamp;

/// Serves `GET /blobs` and `GET /blobs/{container}/{name}`; `path` is without its slashes.
pub(super) fn route(store: &BlobStore, method: &Method, path: &str) -> Reply {
    if method != Method::GET {
        return error(StatusCode::METHOD_NOT_ALLOWED, 405000, "blobs: GET only");
    }
    match path
        .strip_prefix("blobs")
        .map(|rest| rest.trim_start_matches('/'))
    {
        Some("") => list_reply(store),
        Some(rest) => {
            let decoded = percent_decode_str(rest).decode_utf8_lossy();
            match decoded.split_once('/') {
                Some((container, name)) => content_reply(store, container, name),
                None => error(
                    StatusCode::NOT_FOUND,
                    404000,
                    "GET /blobs/{container}/{blob name}",
                ),
            }
        }
        None => error(StatusCode::NOT_FOUND, 404000, "no such route"),
    }
}

/// 200 with every blob, without content.
pub(super) fn list_reply(store: &BlobStore) -> Reply {
    let blobs: Vec<Value> = store
        .list()
        .into_iter()
        .map(|blob| {
            json!({
                "container": blob.container,
                "name": blob.name,
                "size": store.get(&blob.container, &blob.name).map_or(0, |b| b.content.len()),
                "contentType": blob.content_type,
                "etag": blob.etag,
                "created": utc_timestamp(blob.created),
                "lastModified": utc_timestamp(blob.last_modified),
            })
        })
        .collect();
    json_reply(StatusCode::OK, Value::Array(blobs))
}

fn content_reply(store: &BlobStore, container: &str, name: &str) -> Reply {
    match store.get(container, name) {
        Some(blob) => Response::builder()
            .status(StatusCode::OK)
            .header("content-type", blob.content_type.as_str())
            .header("etag", blob.etag.as_str())
            .body(Full::new(Bytes::clone(&blob.content)).boxed())
            .unwrap_or_default(),
        None => error(
            StatusCode::NOT_FOUND,
            404000,
            &format!("no blob '{name}' in container '{container}'"),
        ),
    }
}
