//! The portal's JSON API under `/api/`: the same domain operations the DPS service API and
//! the IoT Hub service API call (`Dps::put_enrollment`, `Hub::create_device`,
//! `Hub::update_twin`, `Hub::invoke_method`, `Hub::send_c2d`, …), answered only once the
//! change is durable, with the domain's Azure error code and message on failure.
//!
//! | route | operation |
//! |---|---|
//! | `GET /api/overview` | DPS endpoint, ID scope, connection strings; each hub's |
//! | (the lists below) | paged: `x-ms-max-item-count`, `x-ms-continuation`, `?filter=` (`paging.rs`) |
//! | `GET,PUT,DELETE /api/enrollments[/{id}]` | individual enrollments (`If-Match` on PUT/DELETE) |
//! | `GET,PUT,DELETE /api/enrollmentGroups[/{id}]` | enrollment groups |
//! | `GET,DELETE /api/registrations[/{id}]` | registration records |
//! | `GET /api/hubs/{hub}/devices`, `PUT,DELETE /api/hubs/{hub}/devices/{id}` | device identities |
//! | `GET /api/hubs/{hub}/devices/{id}/modules`, `GET,PUT,DELETE …/modules/{mid}` | a device's module identities |
//! | `GET,PATCH /api/hubs/{hub}/devices/{id}[/modules/{mid}]/twin` | the device's or module's twin (`If-Match`) |
//! | `POST /api/hubs/{hub}/devices/{id}[/modules/{mid}]/methods` | a direct method call, the answer |
//! | `POST /api/hubs/{hub}/devices/{id}/messages` | a cloud-to-device message |
//! | `GET /api/hubs/{hub}/devices/{id}/messages` | the device's queued cloud-to-device messages |
//! | `GET /api/hubs/{hub}/feedback` | unread C2D feedback records, left unread (see `api_hub.rs`) |
//! | `/api/certificates…`, `/api/hubs/{hub}/certificates…` | CA certificates and their proof of possession (`api_certificates.rs`) |
//! | `GET,POST /api/faults`, `GET,DELETE /api/faults/{id}` | injected faults, as `/faults` answers them (`faults.rs`) |
//! | `GET /api/time`, `POST /api/time/advance` | the emulator's clock, as `/time` answers (`time.rs`) |
//!
//! Writes must carry `X-Iotemu-Portal: 1`: a header a web page on another origin cannot add
//! without a CORS preflight, which the control port never grants, so no other site can make
//! a visitor's browser change the emulator.

use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use serde_json::json;

use super::HEADER_TIMEOUT;
use super::api_certificates;
use super::api_dps;
use super::api_hub;
use super::reply::{Reply, json_reply};
use super::state::EmulatorState;
use crate::dps::error::DpsError;
use crate::hub::error::HubError;

/// The largest body a portal write may carry (an enrollment with certificates, a twin).
const MAX_BODY_BYTES: usize = 256 * 1024;

/// The header every portal write carries (see the module comment).
pub(super) const PORTAL_HEADER: &str = "x-iotemu-portal";

/// One admitted `/api/` request: its method, its path after `/api/` (percent-decoded
/// segments), its query string, its `If-Match`, its paging headers (`paging.rs`) and its body.
pub(super) struct ApiRequest {
    pub(super) method: Method,
    pub(super) segments: Vec<String>,
    pub(super) query: String,
    pub(super) if_match: Option<String>,
    pub(super) max_item_count: Option<String>,
    pub(super) continuation: Option<String>,
    pub(super) body: bytes::Bytes,
}

/// Serves `/api/…`.
pub(super) async fn route(state: &EmulatorState, req: Request<Incoming>) -> Reply {
    let method = req.method().clone();
    if method != Method::GET && !req.headers().contains_key(PORTAL_HEADER) {
        return error_reply(
            StatusCode::FORBIDDEN,
            403000,
            "portal writes carry the X-Iotemu-Portal header",
        );
    }
    let segments: Vec<String> = req
        .uri()
        .path()
        .trim_matches('/')
        .split('/')
        .skip(1)
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let if_match = header("if-match");
    let max_item_count = header("x-ms-max-item-count");
    let continuation = header("x-ms-continuation");
    let query = req.uri().query().unwrap_or_default().to_owned();
    let read = tokio::time::timeout(
        HEADER_TIMEOUT,
        Limited::new(req.into_body(), MAX_BODY_BYTES).collect(),
    );
    let body = match read.await {
        Ok(Ok(body)) => body.to_bytes(),
        Ok(Err(e)) => return error_reply(StatusCode::PAYLOAD_TOO_LARGE, 413000, &e.to_string()),
        Err(_) => {
            return error_reply(
                StatusCode::REQUEST_TIMEOUT,
                408000,
                "the body did not arrive within 30 s",
            );
        }
    };
    let req = ApiRequest {
        method,
        segments,
        query,
        if_match,
        max_item_count,
        continuation,
        body,
    };
    let path: Vec<&str> = req.segments.iter().map(String::as_str).collect();
    match path.as_slice() {
        ["overview"] => api_dps::overview(state, &req),
        ["enrollments" | "enrollmentGroups" | "registrations", ..] => {
            api_dps::route(state, &req, &path).await
        }
        ["certificates", rest @ ..] => {
            api_certificates::route(state.dps.certificates(), &req, rest).await
        }
        ["faults"] if req.method == Method::GET => super::faults::list_reply(state.dps.faults()),
        ["faults"] if req.method == Method::POST => {
            super::faults::add_reply(state.dps.faults(), &req.body)
        }
        ["faults", id] if req.method == Method::GET => {
            super::faults::get_reply(state.dps.faults(), id)
        }
        ["faults", id] if req.method == Method::DELETE => {
            super::faults::remove_reply(state.dps.faults(), id)
        }
        ["faults", ..] => method_not_allowed(),
        ["time"] if req.method == Method::GET => super::time::reading_reply(&state.hubs),
        ["time", "advance"] if req.method == Method::POST => {
            super::time::advance_reply(&state.hubs, &req.body).await
        }
        ["time", ..] => method_not_allowed(),
        ["blobs"] if req.method == Method::GET => super::blobs::list_reply(state.hubs.storage()),
        ["hubs", hub, "certificates", rest @ ..] => match state.hubs.get(hub) {
            Some(hub) => api_certificates::route(hub.certificates(), &req, rest).await,
            None => error_reply(StatusCode::NOT_FOUND, 404001, &format!("no hub '{hub}'")),
        },
        ["hubs", hub, rest @ ..] => match state.hubs.get(hub) {
            Some(hub) => api_hub::route(hub, &req, rest).await,
            None => error_reply(StatusCode::NOT_FOUND, 404001, &format!("no hub '{hub}'")),
        },
        _ => error_reply(StatusCode::NOT_FOUND, 404000, "no such portal API route"),
    }
}

/// A JSON error in the shape the Azure APIs use: `errorCode` and `message`.
pub(super) fn error_reply(status: StatusCode, code: u32, message: &str) -> Reply {
    json_reply(status, json!({ "errorCode": code, "message": message }))
}

pub(super) fn dps_error(error: &DpsError) -> Reply {
    let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_reply(status, error.to_json())
}

pub(super) fn hub_error(error: &HubError) -> Reply {
    let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    error_reply(status, error.code, &error.message)
}

pub(super) fn method_not_allowed() -> Reply {
    error_reply(
        StatusCode::METHOD_NOT_ALLOWED,
        405000,
        "this method is not served on this portal route",
    )
}
