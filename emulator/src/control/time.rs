//! `/time`: the emulator's clock for tests that do not link the Rust library
//! (docs/faults.md, "Time control"; `crate::clock`).
//!
//! | route | answer |
//! |---|---|
//! | `GET /time` | 200 `{now, offsetSeconds, credentialOffsetSeconds}` |
//! | `POST /time/advance` (`{"seconds": N}`, optionally `"credentials": true`; `Content-Type: application/json`) | 200 `{now, offsetSeconds, credentialOffsetSeconds, expiredC2d}`, or 400 `{errorCode: 400004, message}` with the clocks unchanged |
//!
//! Access is the control port's (`access.rs`); the POST must declare JSON, as `POST /faults`
//! must, so no web page can move a developer's clock. The portal's faults view uses the same
//! replies under `/api/time` (`api.rs`), behind the portal's own write header.

use std::time::Duration;

use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use serde_json::{Value, json};

use super::api::error_reply as error;
use super::faults::json_body;
use super::reply::{Reply, json_reply};
use super::state::EmulatorState;
use crate::hub::Hubs;
use crate::timefmt::utc_timestamp;

/// Serves `/time` and `/time/advance`.
pub(super) async fn route(state: &EmulatorState, req: Request<Incoming>) -> Reply {
    let path = req.uri().path().trim_matches('/').to_owned();
    match (req.method(), path.as_str()) {
        (&Method::GET, "time") => reading_reply(&state.hubs),
        (&Method::POST, "time/advance") => match json_body(req, "POST /time/advance").await {
            Ok(body) => advance_reply(&state.hubs, &body).await,
            Err(reply) => reply,
        },
        _ => error(
            StatusCode::METHOD_NOT_ALLOWED,
            405000,
            "time: GET /time, POST /time/advance",
        ),
    }
}

/// 200 with the clocks' reading.
pub(super) fn reading_reply(hubs: &Hubs) -> Reply {
    json_reply(StatusCode::OK, reading(hubs))
}

/// 200 with the clocks' reading after the advance `body` asks for and the number of C2D
/// messages it expired, or 400 (400004) for a bad body or a step too far, nothing moved.
pub(super) async fn advance_reply(hubs: &Hubs, body: &[u8]) -> Reply {
    let AdvanceRequest { step, credentials } = match AdvanceRequest::from_json(body) {
        Ok(request) => request,
        Err(message) => return error(StatusCode::BAD_REQUEST, 400004, &message),
    };
    match hubs.advance_clock(step, credentials).await {
        Ok(advanced) => {
            let mut answer = reading(hubs);
            answer["expiredC2d"] = json!(advanced.expired_c2d);
            json_reply(StatusCode::OK, answer)
        }
        Err(e) => error(StatusCode::BAD_REQUEST, 400004, &e.to_string()),
    }
}

/// `{now, offsetSeconds, credentialOffsetSeconds}`.
fn reading(hubs: &Hubs) -> Value {
    json!({
        "now": utc_timestamp(hubs.clock().now()),
        "offsetSeconds": hubs.clock().offset().as_secs_f64(),
        "credentialOffsetSeconds": hubs.credential_clock().offset().as_secs_f64(),
    })
}

/// The body of `POST /time/advance`.
#[derive(Debug, PartialEq)]
struct AdvanceRequest {
    step: Duration,
    /// Whether connected clients' credentials age too (`Hubs::credential_clock`).
    credentials: bool,
}

impl AdvanceRequest {
    /// `{"seconds": N}` with N a finite, non-negative number of seconds (fractions allowed),
    /// and optionally `"credentials": true|false`; nothing else in the object.
    fn from_json(body: &[u8]) -> Result<AdvanceRequest, String> {
        const SHAPE: &str =
            r#"the body is {"seconds": N[, "credentials": true]}, N a non-negative number"#;
        let value: Value =
            serde_json::from_slice(body).map_err(|e| format!("{SHAPE}: not JSON ({e})"))?;
        let object = value.as_object().ok_or_else(|| SHAPE.to_owned())?;
        if let Some(unknown) = object
            .keys()
            .find(|k| !matches!(k.as_str(), "seconds" | "credentials"))
        {
            return Err(format!("{SHAPE}: unknown field '{unknown}'"));
        }
        let seconds = object
            .get("seconds")
            .and_then(Value::as_f64)
            .ok_or_else(|| SHAPE.to_owned())?;
        let step = Duration::try_from_secs_f64(seconds)
            .map_err(|_| format!("{SHAPE}: {seconds} is not one"))?;
        let credentials = match object.get("credentials") {
            None => false,
            Some(Value::Bool(credentials)) => *credentials,
            Some(other) => return Err(format!("{SHAPE}: credentials is {other}, not a boolean")),
        };
        Ok(AdvanceRequest { step, credentials })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_is_a_non_negative_number_of_seconds_and_credentials_a_boolean() {
        let step = |body: &[u8]| AdvanceRequest::from_json(body).map(|r| r.step);
        assert_eq!(step(br#"{"seconds": 3600}"#), Ok(Duration::from_secs(3600)));
        assert_eq!(
            step(br#"{"seconds": 1.5}"#),
            Ok(Duration::from_millis(1500))
        );
        assert_eq!(step(br#"{"seconds": 0}"#), Ok(Duration::ZERO));
        assert_eq!(
            AdvanceRequest::from_json(br#"{"seconds": 60, "credentials": true}"#),
            Ok(AdvanceRequest {
                step: Duration::from_secs(60),
                credentials: true
            })
        );
        assert_eq!(
            AdvanceRequest::from_json(br#"{"seconds": 60}"#).map(|r| r.credentials),
            Ok(false)
        );
        for bad in [
            &br#"{"seconds": -1}"#[..],
            br#"{"seconds": "60"}"#,
            br#"{"seconds": 1e400}"#,
            br#"{"secs": 60}"#,
            br#"{"seconds": 60, "extra": 1}"#,
            br#"{"seconds": 60, "credentials": "yes"}"#,
            br#"[60]"#,
            b"not json",
            b"",
        ] {
            assert!(
                AdvanceRequest::from_json(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
