//! `/faults`: tests that do not link the Rust library inject DPS and hub faults here
//! (docs/faults.md). The portal's faults panel uses the same replies under `/api/faults`
//! (`api.rs`), behind the portal's own write header.
//!
//! | route | answer |
//! |---|---|
//! | `POST /faults` (JSON rule, `Content-Type: application/json`) | 201 the rule with its `id`, or 400 `{errorCode: 400004, message}` |
//! | `GET /faults` | 200 every rule with `hits` and `remaining` |
//! | `GET /faults/{id}` | 200 the rule, or 404 |
//! | `DELETE /faults/{id}` | 204, or 404 |
//!
//! Access is the control port's (`access.rs`): open on loopback without a token, the token
//! otherwise, as for `POST /c2d`. A POST must also declare a JSON body: a web page on another
//! origin cannot send `application/json` without a CORS preflight (never granted), so no site
//! a developer visits can make their local emulator refuse registrations.

use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::CONTENT_TYPE;
use hyper::{Method, Request, StatusCode};
use serde_json::{Value, json};

use super::HEADER_TIMEOUT;
use super::api::error_reply as error;
use super::reply::{Reply, json_reply};
use super::state::EmulatorState;
use crate::faults::{FaultRule, Faults};

/// A rule is a few hundred bytes; anything much larger is not one.
const MAX_BODY_BYTES: usize = 16 * 1024;

/// Serves `/faults` and `/faults/{id}`.
pub(super) async fn route(state: &EmulatorState, req: Request<Incoming>) -> Reply {
    let faults = state.dps.faults();
    let path = req.uri().path().trim_matches('/').to_owned();
    let id = path
        .strip_prefix("faults")
        .map(|rest| rest.trim_start_matches('/'));
    match (req.method().clone(), id) {
        (Method::GET, Some("")) => list_reply(faults),
        (Method::GET, Some(id)) => get_reply(faults, id),
        (Method::POST, Some("")) => add(state, req).await,
        (Method::DELETE, Some(id)) if !id.is_empty() => remove_reply(faults, id),
        _ => error(
            StatusCode::METHOD_NOT_ALLOWED,
            405000,
            "faults: GET /faults[/{id}], POST /faults, DELETE /faults/{id}",
        ),
    }
}

/// 200 with every rule, oldest first, with `hits` and `remaining`.
pub(super) fn list_reply(faults: &Faults) -> Reply {
    let list: Vec<Value> = faults.list().iter().map(|s| s.to_json()).collect();
    json_reply(StatusCode::OK, Value::Array(list))
}

/// 200 with one rule, or 404.
pub(super) fn get_reply(faults: &Faults, id: &str) -> Reply {
    match faults.get(id) {
        Some(status) => json_reply(StatusCode::OK, status.to_json()),
        None => no_fault(id),
    }
}

/// 201 with the installed rule, or 400 (400004) for a bad one, nothing installed.
pub(super) fn add_reply(faults: &Faults, body: &[u8]) -> Reply {
    let added = FaultRule::from_json(body).and_then(|rule| faults.add(rule));
    match added.map(|id| faults.get(&id)) {
        Ok(Some(status)) => json_reply(StatusCode::CREATED, status.to_json()),
        // Removed by another caller between add and read: it was installed, so say so.
        Ok(None) => json_reply(StatusCode::CREATED, json!({})),
        Err(e) => error(StatusCode::BAD_REQUEST, 400004, &e.to_string()),
    }
}

/// 204, or 404.
pub(super) fn remove_reply(faults: &Faults, id: &str) -> Reply {
    if faults.remove(id) {
        no_content()
    } else {
        no_fault(id)
    }
}

async fn add(state: &EmulatorState, req: Request<Incoming>) -> Reply {
    match json_body(req, "POST /faults").await {
        Ok(body) => add_reply(state.dps.faults(), &body),
        Err(reply) => reply,
    }
}

/// The body of a control-port POST that must declare JSON (see the top of this file: no web
/// page can send one without a preflight), read within [`HEADER_TIMEOUT`] and at most
/// [`MAX_BODY_BYTES`]; otherwise the error reply (415, 413 or 408). `route` names the route
/// in the 415's message.
pub(super) async fn json_body(req: Request<Incoming>, route: &str) -> Result<bytes::Bytes, Reply> {
    let declared_json = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/json"));
    if !declared_json {
        return Err(error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            415000,
            &format!("{route} takes Content-Type: application/json"),
        ));
    }
    let read = tokio::time::timeout(
        HEADER_TIMEOUT,
        Limited::new(req.into_body(), MAX_BODY_BYTES).collect(),
    );
    match read.await {
        Ok(Ok(body)) => Ok(body.to_bytes()),
        Ok(Err(e)) => Err(error(StatusCode::PAYLOAD_TOO_LARGE, 413000, &e.to_string())),
        Err(_) => Err(error(
            StatusCode::REQUEST_TIMEOUT,
            408000,
            "the body did not arrive within 30 s",
        )),
    }
}

fn no_content() -> Reply {
    hyper::Response::builder()
        .status(StatusCode::NO_CONTENT)
        .body(http_body_util::Full::new(bytes::Bytes::new()).boxed())
        .unwrap_or_default()
}

fn no_fault(id: &str) -> Reply {
    error(StatusCode::NOT_FOUND, 404000, &format!("no fault '{id}'"))
}
