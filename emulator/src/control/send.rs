//! `POST /c2d` and `POST /input`: a test sends a cloud-to-device message, or a message to a
//! module's input, with the body as the message and its properties in the query.

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde_json::json;

use super::HEADER_TIMEOUT;
use super::reply::{Reply, hub_for, json_reply, not_found};
use super::state::EmulatorState;
use crate::hub::c2d::C2dMessage;
use crate::hub::error::HubError;
use crate::query;

/// `POST /c2d?deviceId=…[&hub=…][&messageId=…][&correlationId=…][&contentType=…]
/// [&contentEncoding=…][&ack=…][&expirySeconds=…][&prop.<name>=<value>…]` with the body as the
/// message: queues a cloud-to-device message (the service SDKs send C2D over AMQP, which
/// iotemu does not serve yet). 201 `{"messageId"}`, or the hub's error.
pub(super) async fn post(state: &EmulatorState, req: Request<Incoming>) -> Reply {
    use http_body_util::{BodyExt, Limited};
    let path = req.uri().path().trim_matches('/').to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    if path != "c2d" && path != "input" {
        return json_reply(
            StatusCode::METHOD_NOT_ALLOWED,
            json!({"message": "POST is only for /c2d and /input"}),
        );
    }
    let Some(device_id) = query::value(&query, "deviceId") else {
        return json_reply(
            StatusCode::BAD_REQUEST,
            json!({"message": "deviceId is required"}),
        );
    };
    let hubs = match hub_for(state, &query) {
        Ok(hubs) => hubs,
        Err(message) => return not_found(&message),
    };
    let Some(hub) = hubs.into_iter().find(|h| h.device(&device_id).is_some()) else {
        return not_found(&format!("no device '{device_id}'"));
    };
    let read = tokio::time::timeout(
        HEADER_TIMEOUT,
        Limited::new(req.into_body(), 128 * 1024).collect(),
    );
    let body = match read.await {
        Ok(Ok(body)) => body.to_bytes(),
        Ok(Err(e)) => {
            return json_reply(StatusCode::BAD_REQUEST, json!({"message": e.to_string()}));
        }
        Err(_) => {
            return json_reply(
                StatusCode::REQUEST_TIMEOUT,
                json!({"message": "the body did not arrive within 30 s"}),
            );
        }
    };
    let message = message_from_query(&query, body, hub.clock().now());
    let sent = if path == "c2d" {
        // 201 only once the message is durable; a store failure is a 500.
        match hub.send_c2d(&device_id, message) {
            Ok(pending) => pending.durable().await.map_err(HubError::from),
            Err(e) => Err(e),
        }
    } else {
        let (Some(module_id), Some(input)) = (
            query::value(&query, "moduleId"),
            query::value(&query, "input"),
        ) else {
            return json_reply(
                StatusCode::BAD_REQUEST,
                json!({"message": "moduleId and input are required"}),
            );
        };
        hub.send_module_input(&device_id, &module_id, &input, message)
            .await
    };
    match sent {
        Ok(message_id) => json_reply(StatusCode::CREATED, json!({ "messageId": message_id })),
        Err(e) => {
            let mut reply = json_reply(
                StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST),
                json!({ "errorCode": e.code, "message": e.message }),
            );
            // A throttled send (`hub.c2d.send`) says when to try again.
            if let Some(seconds) = e.retry_after {
                reply
                    .headers_mut()
                    .insert(hyper::header::RETRY_AFTER, seconds.into());
            }
            reply
        }
    }
}

/// A message whose system properties come from the query (`messageId`, `correlationId`,
/// `contentType`, `contentEncoding`, `ack`, `expirySeconds`) and application properties from
/// `prop.{name}` parameters. `expirySeconds` counts from `now`, the emulator's clock.
fn message_from_query(query: &str, body: Bytes, now: std::time::SystemTime) -> C2dMessage {
    let mut message = C2dMessage::new(body);
    message.message_id = query::value(query, "messageId");
    message.correlation_id = query::value(query, "correlationId");
    message.content_type = query::value(query, "contentType");
    message.content_encoding = query::value(query, "contentEncoding");
    message.ack = query::value(query, "ack");
    message.expiry = query::value(query, "expirySeconds")
        .and_then(|s| s.parse::<u64>().ok())
        // An expiry the clock cannot represent is as good as none.
        .and_then(|s| now.checked_add(std::time::Duration::from_secs(s)));
    for (key, value) in query::pairs(query).unwrap_or_default() {
        if let Some(name) = key.strip_prefix("prop.") {
            message
                .properties
                .insert(name.to_owned(), value.unwrap_or_default());
        }
    }
    message
}
