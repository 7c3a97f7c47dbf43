//! What the handler tests share: a request built as the router would hand it over (head
//! parsed, body read), a hub without policies, and a reply's body.

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::Method;
use serde_json::Value;

use super::hub_service::ServiceGroup;
use super::reply::Reply;
use super::request::Request;
use crate::hub::Hub;
use crate::hub::error::HubError;
use crate::hub::registry::DeviceSpec;

pub(super) const HOST: &str = "test-hub.azure-devices.net";

/// `method uri` with `headers` and `body`, as a handler receives it.
pub(super) fn request(
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

/// `method uri` with `headers` and `body`, parsed as group `G` parses it and applied to
/// `hub` (no admission: the test hub has no policies).
pub(super) async fn call<G: ServiceGroup>(
    hub: &Hub,
    method: Method,
    uri: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<Reply, HubError> {
    let req = request(method, uri, headers, body);
    let segments: Vec<&str> = req.segments.iter().map(String::as_str).collect();
    let lower: Vec<String> = segments.iter().map(|s| s.to_ascii_lowercase()).collect();
    let fixed: Vec<&str> = lower.iter().map(String::as_str).collect();
    let (_, operation) = G::parse(&req.method, &fixed, &segments).expect("a route of the group");
    G::apply(hub, &req, operation).await
}

pub(super) fn hub() -> Hub {
    Hub::new(HOST, Vec::new(), 100)
}

/// Registers device `id` (symmetric keys generated), once it is stored.
pub(super) async fn add_device(hub: &Hub, id: &str) {
    let spec = DeviceSpec::from_json(id, b"{}").expect("an empty device body is valid");
    let write = hub.create_device(spec).expect("a new device id");
    write.durable().await.expect("the memory store saves");
}

/// The reply's body as JSON (`Null` when empty).
pub(super) async fn body_json(reply: Reply) -> Value {
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
