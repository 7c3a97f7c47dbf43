//! IoT Hub service API, cloud-to-device messaging (protocol.md §9.5), ServiceConnect:
//!
//! * `DELETE /devices/{id}/commands` → `200 {"deviceId", "moduleId": null,
//!   "totalMessagesPurged"}` once the purge is stored;
//! * `GET /messages/serviceBound/feedback` → `200` with the unread delivery-feedback records
//!   as one batch (content type `application/vnd.microsoft.iothub.feedback.json`, lock token
//!   in `ETag`), or `204` when there are none;
//! * `DELETE /messages/serviceBound/feedback/{lockToken}` completes the batch,
//!   `POST /messages/serviceBound/feedback/{lockToken}/abandon` returns it; both `204`.
//!
//! Sending C2D messages is AMQP-only in IoT Hub (`amqp/`).

use std::time::SystemTime;

use hyper::Method;
use hyper::header::{CONTENT_TYPE, HeaderValue};

use super::HttpContext;
use super::hub_service::{self, Rights, SERVICE_CONNECT};
use super::reply::{self, Refusal, Reply};
use super::request::{Request, lock_token};
use crate::hub::Hub;
use crate::hub::error::HubError;

/// The content type of a feedback batch.
const FEEDBACK_CONTENT_TYPE: &str = "application/vnd.microsoft.iothub.feedback.json";

/// What a messaging route does; the device id or lock token borrowed from the path.
#[derive(Debug, PartialEq, Eq)]
enum Operation<'p> {
    Purge(&'p str),
    ReceiveFeedback,
    CompleteFeedback(&'p str),
    AbandonFeedback(&'p str),
}

fn parse<'p>(
    method: &Method,
    fixed: &[&str],
    segments: &[&'p str],
) -> Option<(Rights, Operation<'p>)> {
    let id = |i: usize| segments.get(i).copied().unwrap_or_default();
    let operation = match (method, fixed) {
        (&Method::DELETE, ["devices", _, "commands"]) => Operation::Purge(id(1)),
        (&Method::GET, ["messages", "servicebound", "feedback"]) => Operation::ReceiveFeedback,
        (&Method::DELETE, ["messages", "servicebound", "feedback", _]) => {
            Operation::CompleteFeedback(lock_token(id(3)))
        }
        (&Method::POST, ["messages", "servicebound", "feedback", _, "abandon"]) => {
            Operation::AbandonFeedback(lock_token(id(3)))
        }
        _ => return None,
    };
    Some((SERVICE_CONNECT, operation))
}

/// The checks on the head (route, hub, policy token and right), before the body is read.
pub(super) fn admit(
    ctx: &HttpContext,
    req: &Request<'_>,
    fixed: &[&str],
    segments: &[&str],
) -> Result<(), Refusal> {
    hub_service::admitted(ctx, req, segments, parse(&req.method, fixed, segments)).map(drop)
}

pub(super) async fn handle(
    ctx: &HttpContext,
    req: &Request<'_>,
    fixed: &[&str],
    segments: &[&str],
) -> Reply {
    match hub_service::admitted(ctx, req, segments, parse(&req.method, fixed, segments)) {
        Ok((hub, operation)) => hub_service::answer(apply(hub, operation).await),
        Err(refusal) => *refusal,
    }
}

async fn apply(hub: &Hub, operation: Operation<'_>) -> Result<Reply, HubError> {
    match operation {
        Operation::Purge(device_id) => {
            let purged = hub_service::stored(hub.purge_c2d(device_id)).await?;
            Ok(reply::json(
                200,
                &serde_json::json!({
                    "deviceId": device_id,
                    "moduleId": null,
                    "totalMessagesPurged": purged,
                }),
            ))
        }
        Operation::ReceiveFeedback => Ok(receive_feedback(hub)),
        Operation::CompleteFeedback(lock) => {
            hub.complete_feedback(lock, SystemTime::now())?;
            Ok(reply::empty(204))
        }
        Operation::AbandonFeedback(lock) => {
            hub.abandon_feedback(lock, SystemTime::now())?;
            Ok(reply::empty(204))
        }
    }
}

/// The unread feedback records as one batch (200, lock token in `ETag` as for device C2D
/// receives), or 204 when there are none.
fn receive_feedback(hub: &Hub) -> Reply {
    let Some(batch) = hub.receive_feedback(SystemTime::now()) else {
        return reply::empty(204);
    };
    let mut response = reply::json(200, &batch.body());
    for (name, value) in [
        ("etag", format!("\"{}\"", batch.lock_token)),
        ("iothub-messageid", batch.message_id.clone()),
        (
            "iothub-enqueuedtime",
            crate::timefmt::utc_timestamp(batch.enqueued),
        ),
        ("iothub-userid", hub.host_name().to_owned()),
    ] {
        response = reply::with_header(response, name, &value);
    }
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static(FEEDBACK_CONTENT_TYPE),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{body_json, hub};
    use super::*;
    use crate::hub::registry::DeviceSpec;

    #[test]
    fn routes_unquote_lock_tokens() {
        let route = |method: Method, fixed: &'static [&'static str]| parse(&method, fixed, fixed);
        assert_eq!(
            route(
                Method::DELETE,
                &["messages", "servicebound", "feedback", "\"t1\""]
            ),
            Some((SERVICE_CONNECT, Operation::CompleteFeedback("t1")))
        );
        assert_eq!(
            route(
                Method::POST,
                &["messages", "servicebound", "feedback", "t2", "abandon"]
            ),
            Some((SERVICE_CONNECT, Operation::AbandonFeedback("t2")))
        );
        assert_eq!(
            route(Method::DELETE, &["devices", "d", "commands"]),
            Some((SERVICE_CONNECT, Operation::Purge("d")))
        );
        assert_eq!(route(Method::GET, &["devices", "d", "commands"]), None);
    }

    #[tokio::test]
    async fn purge_counts_and_an_empty_feedback_queue_is_204() {
        let hub = hub();
        let unknown = apply(&hub, Operation::Purge("d")).await.unwrap_err();
        assert_eq!(unknown.code, 404001);
        let spec = DeviceSpec::from_json("d", b"{}").unwrap();
        hub_service::stored(hub.create_device(spec)).await.unwrap();
        let purged = body_json(apply(&hub, Operation::Purge("d")).await.unwrap()).await;
        assert_eq!(
            purged,
            serde_json::json!({"deviceId": "d", "moduleId": null, "totalMessagesPurged": 0})
        );
        let nothing = apply(&hub, Operation::ReceiveFeedback).await.unwrap();
        assert_eq!(nothing.status(), 204);
        let lost = apply(&hub, Operation::CompleteFeedback("nope"))
            .await
            .unwrap_err();
        assert_eq!(lost.status(), 412);
    }
}
