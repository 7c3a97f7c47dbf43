//! The built-in blob store on the HTTPS port (`crate::storage`): a request whose first path
//! segment is one of the store's containers is a Blob service request,
//! `/{container}/{blob name…}` — the URL the device SDKs build from a file upload's
//! `hostName`, `containerName`, `blobName` and `sasToken`.
//!
//! | request                                   | operation            | SAS permission |
//! |-------------------------------------------|----------------------|----------------|
//! | `PUT` (`x-ms-blob-type: BlockBlob`)       | Put Blob → 201       | `c` (new) or `w` |
//! | `PUT ?comp=block&blockid={base64}`        | Put Block → 201      | `w`            |
//! | `PUT ?comp=blocklist` (XML block list)    | Put Block List → 201 | `w`            |
//! | `GET` (optional `x-ms-range` / `Range`)   | Get Blob → 200 / 206 | `r`            |
//! | `HEAD`                                    | Get Blob Properties  | `r`            |
//!
//! The only credential is a service SAS in the query, which the store checks
//! (`storage::access`) on the head, before the body is read — and an upload's body is read
//! only within the store's budget of bytes in flight (503 ServerBusy beyond). `If-None-Match: *` on Put Blob (the Python SDK's default,
//! `overwrite=False`) refuses to replace a blob: 409 BlobAlreadyExists. Headers the store
//! does not act on (`x-ms-encryption-algorithm`, which the Node SDK sends without a key,
//! `Content-MD5`) are ignored. Errors are Azure Storage's: the status, `x-ms-error-code` and an
//! XML `<Error><Code>…</Code><Message>…</Message></Error>` body.

use std::time::SystemTime;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Response, StatusCode};

use super::HttpContext;
use super::reply::Reply;
use super::request::{BodyError, Request};
use crate::query;
use crate::storage::access::BlobAccess;
use crate::storage::{BlobStore, MAX_BLOB_BYTES, StorageError, StoredBlob, block_list};
use crate::timefmt::http_date;

/// The service version the store answers as when the client names none.
const SERVICE_VERSION: &str = "2021-08-06";

/// Whether the request is for the built-in store: its first segment names a container there
/// and a blob name follows.
pub(super) fn is_blob_request(ctx: &HttpContext, segments: &[String]) -> bool {
    segments.len() >= 2 && ctx.hubs.storage().has_container(&segments[0])
}

/// What the request asks of the store.
enum Operation {
    PutBlob,
    PutBlock(String),
    PutBlockList,
    GetBlob,
    GetProperties,
}

/// Answers one Blob service request; `req` has its head only.
pub(super) async fn handle(ctx: &HttpContext, mut req: Request<'_>, body: Incoming) -> Reply {
    let store = ctx.hubs.storage();
    let container = req.segments[0].clone();
    let blob = req.segments[1..].join("/");
    let now = ctx.hubs.clock().now();
    let version = req
        .header("x-ms-version")
        .unwrap_or(SERVICE_VERSION)
        .to_owned();
    let client_request_id = req.header("x-ms-client-request-id").map(str::to_owned);
    let respond = |reply: Reply| finish(reply, &version, client_request_id.as_deref(), now);
    let operation = match operation(&req) {
        Ok(operation) => operation,
        Err(e) => return respond(error(&e)),
    };
    let access = match operation {
        Operation::GetBlob | Operation::GetProperties => BlobAccess::Read,
        Operation::PutBlob => BlobAccess::Put,
        Operation::PutBlock(_) | Operation::PutBlockList => BlobAccess::Write,
    };
    let query = (!req.query.is_empty()).then_some(req.query.as_str());
    if let Err(e) = store.authorize(query, &container, &blob, access, now) {
        return respond(error(&e));
    }
    // The body is held in memory while it arrives: only within the store's upload budget.
    let _budget = if access == BlobAccess::Read {
        None
    } else {
        let declared = req
            .header("content-length")
            .and_then(|v| v.trim().parse::<u64>().ok());
        match store.reserve_upload(declared) {
            Ok(permit) => Some(permit),
            Err(e) => return respond(super::reply::closing(error(&e))),
        }
    };
    if let Err(e) = req
        .read_body(body, MAX_BLOB_BYTES, ctx.limits.body_timeout)
        .await
    {
        return respond(super::reply::closing(error(&body_error(&e))));
    }
    let result = match operation {
        Operation::PutBlob => put_blob(store, &req, &container, &blob, now).await,
        Operation::PutBlock(id) => put_block(store, &req, &container, &blob, &id).await,
        Operation::PutBlockList => put_block_list(store, &req, &container, &blob, now).await,
        Operation::GetBlob => store
            .read(&container, &blob)
            .and_then(|b| get_blob(&req, &b, true)),
        Operation::GetProperties => store
            .read(&container, &blob)
            .and_then(|b| get_blob(&req, &b, false)),
    };
    tracing::debug!(method = %req.method, %container, %blob, ok = result.is_ok(), "blob request");
    respond(result.unwrap_or_else(|e| error(&e)))
}

fn operation(req: &Request<'_>) -> Result<Operation, StorageError> {
    let comp = query::value(&req.query, "comp");
    match (&req.method, comp.as_deref()) {
        (&Method::PUT, None) => {
            match req.header("x-ms-blob-type") {
                Some(t) if t.eq_ignore_ascii_case("BlockBlob") => Ok(Operation::PutBlob),
                Some(_) => Err(not_implemented("page and append blobs")),
                None => Err(StorageError::new(
                    400,
                    "MissingRequiredHeader",
                    "An HTTP header that's mandatory for this request is not specified: x-ms-blob-type.",
                )),
            }
        }
        (&Method::PUT, Some("block")) => query::value(&req.query, "blockid")
            .map(Operation::PutBlock)
            .ok_or_else(|| {
                StorageError::new(
                    400,
                    "MissingRequiredQueryParameter",
                    "A query parameter that's mandatory for this request is not specified: blockid.",
                )
            }),
        (&Method::PUT, Some("blocklist")) => Ok(Operation::PutBlockList),
        (&Method::GET, None) => Ok(Operation::GetBlob),
        (&Method::HEAD, None) => Ok(Operation::GetProperties),
        _ => Err(not_implemented("this operation")),
    }
}

fn not_implemented(what: &str) -> StorageError {
    StorageError::new(
        501,
        "NotImplemented",
        format!(
            "iotemu's built-in blob store does not serve {what}: only Put Blob, Put Block, Put Block List, Get Blob and Get Blob Properties of block blobs."
        ),
    )
}

async fn put_blob(
    store: &BlobStore,
    req: &Request<'_>,
    container: &str,
    blob: &str,
    now: SystemTime,
) -> Result<Reply, StorageError> {
    let content_type = req.header("x-ms-blob-content-type");
    let overwrite = req.header("if-none-match").map(str::trim) != Some("*");
    let written = store
        .put_blob(
            container,
            blob,
            req.body.clone(),
            content_type,
            overwrite,
            now,
        )?
        .durable()
        .await?;
    Ok(created(Some((&written.etag, written.last_modified))))
}

async fn put_block(
    store: &BlobStore,
    req: &Request<'_>,
    container: &str,
    blob: &str,
    block_id: &str,
) -> Result<Reply, StorageError> {
    store
        .put_block(container, blob, block_id, req.body.clone())?
        .durable()
        .await?;
    Ok(created(None))
}

async fn put_block_list(
    store: &BlobStore,
    req: &Request<'_>,
    container: &str,
    blob: &str,
    now: SystemTime,
) -> Result<Reply, StorageError> {
    let list = block_list::parse(&req.body).map_err(|why| {
        StorageError::new(
            400,
            "InvalidXmlDocument",
            format!("XML specified is not syntactically valid: {why}"),
        )
    })?;
    let content_type = req.header("x-ms-blob-content-type");
    let written = store
        .put_block_list(container, blob, &list, content_type, now)?
        .durable()
        .await?;
    Ok(created(Some((&written.etag, written.last_modified))))
}

/// 201 for a write, with the blob's new ETag and time when it has them.
fn created(blob: Option<(&str, SystemTime)>) -> Reply {
    let mut builder = Response::builder()
        .status(StatusCode::CREATED)
        .header("x-ms-request-server-encrypted", "true");
    if let Some((etag, modified)) = blob {
        builder = builder
            .header("etag", etag)
            .header("last-modified", http_date(modified));
    }
    builder.body(Full::new(Bytes::new())).unwrap_or_default()
}

/// Get Blob (`with_body`) or Get Blob Properties: the whole blob, or the range asked for.
fn get_blob(req: &Request<'_>, blob: &StoredBlob, with_body: bool) -> Result<Reply, StorageError> {
    let size = blob.content.len() as u64;
    let range = req
        .header("x-ms-range")
        .or_else(|| req.header("range"))
        .filter(|_| with_body);
    let (status, content, content_range) = match range {
        None => (StatusCode::OK, blob.content.clone(), None),
        Some(range) => {
            let (start, end) = parse_range(range, size)?;
            let slice = blob.content.slice(start as usize..=end as usize);
            (
                StatusCode::PARTIAL_CONTENT,
                slice,
                Some(format!("bytes {start}-{end}/{size}")),
            )
        }
    };
    let mut builder = Response::builder()
        .status(status)
        .header("content-type", &blob.content_type)
        .header("etag", &blob.etag)
        .header("last-modified", http_date(blob.last_modified))
        .header("x-ms-creation-time", http_date(blob.created))
        .header("accept-ranges", "bytes")
        .header("x-ms-blob-type", "BlockBlob")
        .header("x-ms-lease-state", "available")
        .header("x-ms-lease-status", "unlocked")
        .header("x-ms-server-encrypted", "true");
    if let Some(content_range) = content_range {
        builder = builder.header("content-range", content_range);
    }
    let body = if with_body {
        content
    } else {
        builder = builder.header("content-length", size.to_string());
        Bytes::new()
    };
    Ok(builder.body(Full::new(body)).unwrap_or_default())
}

/// `bytes=start-end` or `bytes=start-` within a blob of `size` bytes: the inclusive range,
/// clamped to the blob; 416 InvalidRange when it starts at or after the end.
fn parse_range(range: &str, size: u64) -> Result<(u64, u64), StorageError> {
    let invalid = || {
        StorageError::new(
            416,
            "InvalidRange",
            "The range specified is invalid for the current size of the resource.",
        )
    };
    let spec = range.trim().strip_prefix("bytes=").ok_or_else(invalid)?;
    let (start, end) = spec.split_once('-').ok_or_else(invalid)?;
    let start: u64 = start.trim().parse().map_err(|_| invalid())?;
    let last = size.checked_sub(1).ok_or_else(invalid)?;
    let end: u64 = match end.trim() {
        "" => last,
        end => end.parse().map_err(|_| invalid())?,
    };
    if start > last || end < start {
        return Err(invalid());
    }
    Ok((start, end.min(last)))
}

fn body_error(e: &BodyError) -> StorageError {
    match e {
        BodyError::TooLarge { .. } => StorageError::new(
            413,
            "RequestBodyTooLarge",
            format!(
                "The request body is too large and exceeds the maximum permissible limit of {} MiB (iotemu's limit).",
                MAX_BLOB_BYTES >> 20
            ),
        ),
        BodyError::TimedOut { .. } => StorageError::new(
            408,
            "OperationTimedOut",
            "The operation could not be completed within the permitted time.",
        ),
        BodyError::Unreadable(reason) => StorageError::new(
            400,
            "InvalidInput",
            format!("One of the request inputs is not valid: {reason}"),
        ),
    }
}

/// Azure Storage's error shape.
fn error(e: &StorageError) -> Reply {
    let body = format!(
        "\u{feff}<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>{}</Code><Message>{}</Message></Error>",
        e.code,
        xml_escape(&e.message)
    );
    Response::builder()
        .status(StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", "application/xml")
        .header("x-ms-error-code", e.code)
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_default()
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The headers every Blob service response carries.
fn finish(
    mut reply: Reply,
    version: &str,
    client_request_id: Option<&str>,
    now: SystemTime,
) -> Reply {
    let headers = reply.headers_mut();
    let mut set = |name: &'static str, value: &str| {
        if let Ok(value) = hyper::header::HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    };
    set("x-ms-request-id", &uuid::Uuid::new_v4().to_string());
    set("x-ms-version", version);
    set("date", &http_date(now));
    if let Some(id) = client_request_id {
        set("x-ms-client-request-id", id);
    }
    reply
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_clamp_to_the_blob() {
        assert_eq!(parse_range("bytes=0-33554431", 10).unwrap(), (0, 9));
        assert_eq!(parse_range("bytes=2-", 10).unwrap(), (2, 9));
        assert_eq!(parse_range("bytes=3-3", 10).unwrap(), (3, 3));
        for bad in [
            "bytes=10-",
            "bytes=0-",
            "bytes=5-2",
            "items=0-1",
            "bytes=a-b",
            "bytes=-5",
        ] {
            let size = if bad == "bytes=0-" { 0 } else { 10 };
            assert_eq!(parse_range(bad, size).unwrap_err().status, 416, "{bad}");
        }
    }
}
