//! Responses: JSON bodies, and DPS errors in their wire shape — the status from the 6-digit
//! code, `x-ms-error-code`, and a `ProvisioningServiceErrorDetails` body — in one place.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::CONTENT_TYPE;
use hyper::{Response, StatusCode};
use serde::Serialize;

use crate::auth::AuthError;
use crate::dps::error::DpsError;

pub(super) type Reply = Response<Full<Bytes>>;

/// A reply that ends a request early (a check on the head failed), boxed because it travels
/// in `Err`.
pub(super) type Refusal = Box<Reply>;

pub(super) fn json<T: Serialize>(status: u16, body: &T) -> Reply {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::OK))
        .header(CONTENT_TYPE, "application/json; charset=utf-8")
        .body(Full::new(Bytes::from(bytes)))
        .unwrap_or_default()
}

/// Marks a reply the connection must not send: it is closed instead (an injected drop or
/// stall, docs/faults.md). `connection.rs` acts on it.
#[derive(Clone, Copy)]
pub(super) struct AbortConnection;

/// No answer: the connection is closed without one.
pub(super) fn abort() -> Reply {
    let mut reply = empty(500);
    reply.extensions_mut().insert(AbortConnection);
    reply
}

/// `reply`, after which the connection is closed (`Connection: close`).
pub(super) fn closing(mut reply: Reply) -> Reply {
    reply.headers_mut().insert(
        hyper::header::CONNECTION,
        hyper::header::HeaderValue::from_static("close"),
    );
    reply
}

pub(super) fn empty(status: u16) -> Reply {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::NO_CONTENT))
        .body(Full::new(Bytes::new()))
        .unwrap_or_default()
}

/// Adds a header to a reply.
pub(super) fn with_header(mut reply: Reply, name: &'static str, value: &str) -> Reply {
    if let Ok(value) = hyper::header::HeaderValue::from_str(value) {
        reply.headers_mut().insert(name, value);
    }
    reply
}

pub(super) fn dps_error(error: &DpsError) -> Reply {
    let mut reply = json(error.status(), &error.to_json());
    reply = with_header(reply, "x-ms-error-code", &error.code().to_string());
    if let Some(seconds) = error.retry_after() {
        reply = with_header(reply, "retry-after", &seconds.to_string());
    }
    reply
}

/// An IoT Hub error in the classic shape every SDK parses (protocol.md §9.6):
/// `{"Message":"ErrorCode:<Name>;<text>","ExceptionMessage":"Tracking ID:…"}` plus
/// `iothub-errorcode: <Name>`.
pub(super) fn hub_error(error: &crate::hub::error::HubError) -> Reply {
    let body = serde_json::json!({
        "Message": format!("ErrorCode:{};{}", error.name, error.message),
        "ExceptionMessage": format!(
            "Tracking ID:{}-G:0-TimeStamp:{}",
            uuid::Uuid::new_v4().simple(),
            crate::timefmt::utc_timestamp(std::time::SystemTime::now())
        ),
    });
    with_header(json(error.status(), &body), "iothub-errorcode", error.name)
}

/// An authentication failure as DPS reports it (401, 401002); the reason stays in the log.
pub(super) fn unauthorized(error: &AuthError) -> Reply {
    tracing::warn!(reason = %error, "HTTPS request refused");
    dps_error(&DpsError::unauthorized("Unauthorized"))
}
