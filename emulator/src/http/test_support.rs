//! What the handler tests share: a request built as the router would hand it over (head
//! parsed, body read), a hub without policies, and a reply's body.

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::Method;
use serde_json::Value;

use super::reply::Reply;
use super::request::Request;
use crate::hub::Hub;

pub const HOST: &str = "test-hub.azure-devices.net";

/// `method uri` with `headers` and `body`, as a handler receives it.
pub fn request(
    method: Method,
    uri: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Request<'static> {
    let mut builder = hyper::Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let (parts, ()) = builder.body(()).expect("a valid test request").into_parts();
    let mut req = Request::head(parts, &[]).expect("a UTF-8 test path");
    req.body = Bytes::from(body.to_owned());
    req
}

/// The path segments of `req` as the router passes them: as sent, and lower-cased.
pub fn path(req: &Request<'_>) -> (Vec<String>, Vec<String>) {
    let lower = req
        .segments
        .iter()
        .map(|s| s.to_ascii_lowercase())
        .collect();
    (req.segments.clone(), lower)
}

pub fn hub() -> Hub {
    Hub::new(HOST, Vec::new(), 100)
}

/// The reply's body as JSON (`Null` when empty).
pub async fn body_json(reply: Reply) -> Value {
    let bytes = reply
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).expect("a JSON reply")
    }
}
