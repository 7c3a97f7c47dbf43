//! IoT Hub device HTTPS API, cloud-to-device messages (protocol.md §6):
//!
//! * `GET /devices/{id}/messages/deviceBound` → `200` with the next message, locked for a
//!   minute: its body as sent, its properties as `iothub-*` / `iothub-app-*` headers and the
//!   lock token in `ETag`; or `204` when nothing is pending;
//! * `DELETE /devices/{id}/messages/deviceBound/{lockToken}` completes the message,
//!   with `?reject` rejects it; `POST …/{lockToken}/abandon` hands it back. Each is `204`
//!   once the settlement is stored.
//!
//! The lock rules are the hub's (`hub::c2d_http`). A `hub.c2d` fault (docs/faults.md) drops the
//! connection of a receive, before or after its answer.

use http_body_util::Full;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, Response, StatusCode};

use super::hub_device::{APP_PREFIX, DeviceGroup};
use super::reply::{self, Reply};
use super::request::{Request, lock_token};
use crate::faults::FaultOperation;
use crate::hub::c2d::QueuedC2d;
use crate::hub::c2d_http::Settlement;
use crate::hub::error::HubError;
use crate::hub::{DeviceIdentity, Hub};

/// What a route does; the lock token borrowed from the path.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Operation<'p> {
    Receive,
    Settle(&'p str, Settlement),
}

/// The receive and settle routes.
pub(super) struct C2dReceive;

impl DeviceGroup for C2dReceive {
    type Operation<'p> = Operation<'p>;

    fn parse<'p>(req: &Request<'_>, fixed: &[&str], segments: &[&'p str]) -> Option<Operation<'p>> {
        let token = || lock_token(segments.get(4).copied().unwrap_or_default());
        match (&req.method, fixed) {
            (&Method::GET, ["devices", _, "messages", "devicebound"]) => Some(Operation::Receive),
            (&Method::DELETE, ["devices", _, "messages", "devicebound", _]) => {
                Some(Operation::Settle(token(), settlement_of_delete(req)))
            }
            (&Method::POST, ["devices", _, "messages", "devicebound", _, "abandon"]) => {
                Some(Operation::Settle(token(), Settlement::Abandon))
            }
            _ => None,
        }
    }

    /// A receive is a C2D delivery a `hub.c2d` drop acts on: before it nothing is taken (the
    /// connection closes unanswered), after it the message is locked, answered and the
    /// connection closes.
    fn fault_operation(operation: &Operation<'_>) -> Option<FaultOperation> {
        matches!(operation, Operation::Receive).then_some(FaultOperation::HubC2d)
    }

    /// A settlement's 204 goes out only once it is durable.
    async fn apply<'a>(
        hub: &'a Hub,
        identity: DeviceIdentity,
        _req: &'a Request<'a>,
        operation: Self::Operation<'a>,
    ) -> Result<Reply, HubError> {
        receive_or_settle(hub, identity.device_id(), operation).await
    }
}

/// `?reject` (with or without a value) turns a completion into a rejection.
fn settlement_of_delete(req: &Request<'_>) -> Settlement {
    if req.has_query_key("reject") {
        Settlement::Reject
    } else {
        Settlement::Complete
    }
}

/// The operation for `device_id` (the tests call it without a proven identity).
async fn receive_or_settle(
    hub: &Hub,
    device_id: &str,
    operation: Operation<'_>,
) -> Result<Reply, HubError> {
    match operation {
        Operation::Receive => Ok(receive(hub, device_id)),
        Operation::Settle(token, settlement) => {
            hub.c2d_settle(device_id, token, settlement, hub.clock().now())?
                .durable()
                .await?;
            Ok(reply::empty(204))
        }
    }
}

/// 200 with the next message, locked, or 204 when nothing is pending.
fn receive(hub: &Hub, device_id: &str) -> Reply {
    match hub.c2d_receive_locked(device_id, hub.clock().now()) {
        Some(queued) => c2d_reply(device_id, &queued),
        None => reply::empty(204),
    }
}

/// The message's properties as the headers the SDKs read (Node `toMessage`).
fn c2d_headers(device_id: &str, queued: &QueuedC2d) -> Vec<(String, String)> {
    let message = &queued.message;
    let mut headers: Vec<(String, String)> = vec![
        ("iothub-messageid".into(), queued.id.clone()),
        (
            "iothub-to".into(),
            format!("/devices/{device_id}/messages/deviceBound"),
        ),
        (
            "iothub-deliverycount".into(),
            queued.delivery_count.to_string(),
        ),
        (
            "iothub-enqueuedtime".into(),
            crate::timefmt::utc_timestamp(queued.enqueued),
        ),
    ];
    if let Some(lock) = &queued.lock {
        headers.push(("etag".into(), format!("\"{}\"", lock.token)));
    }
    let optional = [
        ("iothub-correlationid", &message.correlation_id),
        ("iothub-userid", &message.user_id),
        ("iothub-contenttype", &message.content_type),
        ("iothub-contentencoding", &message.content_encoding),
        ("iothub-ack", &message.ack),
    ];
    for (name, value) in optional {
        if let Some(value) = value {
            headers.push((name.into(), value.clone()));
        }
    }
    if let Some(expiry) = message.expiry {
        headers.push((
            "iothub-expiry".into(),
            crate::timefmt::utc_timestamp(expiry),
        ));
    }
    for (name, value) in &message.properties {
        headers.push((format!("{APP_PREFIX}{name}"), value.clone()));
    }
    headers
}

/// The message body with its properties as headers.
fn c2d_reply(device_id: &str, queued: &QueuedC2d) -> Reply {
    let mut reply = Response::new(Full::new(queued.message.body.clone()));
    *reply.status_mut() = StatusCode::OK;
    for (name, value) in c2d_headers(device_id, queued) {
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value.as_bytes()),
        ) {
            (Ok(name), Ok(value)) => {
                reply.headers_mut().append(name, value);
            }
            // A property the service set that HTTP cannot carry is dropped, not fatal.
            _ => tracing::debug!(name, "C2D property not representable as an HTTP header"),
        }
    }
    reply
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{add_device, hub, request};
    use super::*;
    use crate::hub::c2d::C2dMessage;

    fn route(method: Method, uri: &str) -> Option<Operation<'static>> {
        let req = request(method, uri, &[], "");
        let lower: Vec<String> = req
            .segments
            .iter()
            .map(|s| s.to_ascii_lowercase())
            .collect();
        let fixed: Vec<&str> = lower.iter().map(String::as_str).collect();
        let segments = [
            "devices",
            "d",
            "messages",
            "deviceBound",
            "\"tok\"",
            "abandon",
        ];
        C2dReceive::parse(&req, &fixed, &segments[..fixed.len().min(segments.len())])
    }

    #[test]
    fn routes_settle_by_unquoted_token() {
        assert_eq!(
            route(Method::GET, "/devices/d/messages/deviceBound"),
            Some(Operation::Receive)
        );
        assert_eq!(
            route(Method::DELETE, "/devices/d/messages/deviceBound/tok"),
            Some(Operation::Settle("tok", Settlement::Complete))
        );
        assert_eq!(
            route(Method::DELETE, "/devices/d/messages/deviceBound/tok?reject"),
            Some(Operation::Settle("tok", Settlement::Reject))
        );
        assert_eq!(
            route(Method::POST, "/devices/d/messages/deviceBound/tok/abandon"),
            Some(Operation::Settle("tok", Settlement::Abandon))
        );
        assert_eq!(route(Method::PUT, "/devices/d/messages/deviceBound"), None);
    }

    #[tokio::test]
    async fn receive_locks_with_headers_and_complete_removes() {
        let hub = hub();
        add_device(&hub, "d").await;
        assert_eq!(
            receive_or_settle(&hub, "d", Operation::Receive)
                .await
                .unwrap()
                .status(),
            204
        );
        let mut message = C2dMessage::new("hello");
        message.message_id = Some("m1".into());
        message.ack = Some("full".into());
        message.properties.insert("colour".into(), "red".into());
        message.properties.insert("bad\nname".into(), "x".into());
        hub.send_c2d("d", message).unwrap().durable().await.unwrap();
        let received = receive_or_settle(&hub, "d", Operation::Receive)
            .await
            .unwrap();
        assert_eq!(received.status(), 200);
        let header = |name: &str| received.headers().get(name).and_then(|v| v.to_str().ok());
        assert_eq!(header("iothub-messageid"), Some("m1"));
        assert_eq!(header("iothub-ack"), Some("full"));
        assert_eq!(header("iothub-app-colour"), Some("red"));
        assert_eq!(header("iothub-deliverycount"), Some("1"));
        assert_eq!(header("iothub-to"), Some("/devices/d/messages/deviceBound"));
        let etag = header("etag").expect("a lock token").to_owned();
        let completed = receive_or_settle(
            &hub,
            "d",
            Operation::Settle(lock_token(&etag), Settlement::Complete),
        );
        assert_eq!(completed.await.unwrap().status(), 204);
        let again = receive_or_settle(
            &hub,
            "d",
            Operation::Settle(lock_token(&etag), Settlement::Complete),
        );
        assert_eq!(again.await.unwrap_err().code, 412002);
        assert_eq!(
            receive_or_settle(&hub, "d", Operation::Receive)
                .await
                .unwrap()
                .status(),
            204
        );
    }
}
