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

use hyper::Method;
use hyper::header::{CONTENT_TYPE, HeaderValue};

use super::hub_service::{self, Rights, SERVICE_CONNECT, ServiceGroup};
use super::reply::{self, Reply};
use super::request::{Request, lock_token};
use crate::hub::Hub;
use crate::hub::error::HubError;

/// The content type of a feedback batch.
const FEEDBACK_CONTENT_TYPE: &str = "application/vnd.microsoft.iothub.feedback.json";

/// What a messaging route does; the device id or lock token borrowed from the path.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Operation<'p> {
    Purge(&'p str),
    ReceiveFeedback,
    CompleteFeedback(&'p str),
    AbandonFeedback(&'p str),
}

/// The C2D purge and feedback routes.
pub(super) struct Messaging;

impl ServiceGroup for Messaging {
    type Operation<'p> = Operation<'p>;

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

    async fn apply<'a>(
        hub: &'a Hub,
        _req: &'a Request<'a>,
        operation: Self::Operation<'a>,
    ) -> Result<Reply, HubError> {
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
                hub.complete_feedback(lock, hub.clock().now())?;
                Ok(reply::empty(204))
            }
            Operation::AbandonFeedback(lock) => {
                hub.abandon_feedback(lock, hub.clock().now())?;
                Ok(reply::empty(204))
            }
        }
    }
}

/// The unread feedback records as one batch (200, lock token in `ETag` as for device C2D
/// receives), or 204 when there are none.
fn receive_feedback(hub: &Hub) -> Reply {
    let Some(batch) = hub.receive_feedback(hub.clock().now()) else {
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
    use super::super::test_support::{add_device, body_json, hub, request};
    use super::*;

    #[test]
    fn routes_unquote_lock_tokens() {
        let route = |method: Method, fixed: &'static [&'static str]| {
            Messaging::parse(&method, fixed, fixed)
        };
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
        let req = request(Method::DELETE, "/devices/d/commands", &[], "");
        let unknown = Messaging::apply(&hub, &req, Operation::Purge("d"))
            .await
            .unwrap_err();
        assert_eq!(unknown.code, 404001);
        add_device(&hub, "d").await;
        let purged = body_json(
            Messaging::apply(&hub, &req, Operation::Purge("d"))
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            purged,
            serde_json::json!({"deviceId": "d", "moduleId": null, "totalMessagesPurged": 0})
        );
        let nothing = Messaging::apply(&hub, &req, Operation::ReceiveFeedback)
            .await
            .unwrap();
        assert_eq!(nothing.status(), 204);
        let lost = Messaging::apply(&hub, &req, Operation::CompleteFeedback("nope"))
            .await
            .unwrap_err();
        assert_eq!(lost.status(), 412);
    }
}
