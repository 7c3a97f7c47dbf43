//! IoT Hub device HTTPS API (protocol.md §6): telemetry (one message, or a batch as
//! `application/vnd.microsoft.iothub.json`) and cloud-to-device receive / complete / reject /
//! abandon by lock token. The hub is the one named by the `Host` header; the device proves
//! itself with a device SAS token or its TLS client certificate. This module only maps
//! headers and bodies; the hub applies the rules (limits, locks).

use std::collections::BTreeMap;
use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, Response, StatusCode};
use serde::Deserialize;
use serde_json::Value;

use super::HttpContext;
use super::reply::{self, Refusal, Reply};
use super::request::Request;
use crate::auth::AuthError;
use crate::hub::c2d::QueuedC2d;
use crate::hub::c2d_http::Settlement;
use crate::hub::error::HubError;
use crate::hub::telemetry::{IncomingMessage, SystemProperties};
use crate::hub::{DeviceIdentity, Hub};
use crate::query;

/// The content type that marks a telemetry body as a batch.
const BATCH_CONTENT_TYPE: &str = "application/vnd.microsoft.iothub.json";
/// Prefix of application properties in headers (and in batch property maps).
const APP_PREFIX: &str = "iothub-app-";

/// What a route does; the lock token borrowed from the path.
enum Operation<'p> {
    SendTelemetry,
    Receive,
    Settle(&'p str, Settlement),
}

/// The checks on the head (route, api-version, credential), run by the router before the
/// body is read; [`handle`] makes them again.
pub(super) fn admit(
    ctx: &HttpContext,
    req: &Request<'_>,
    fixed: &[&str],
    segments: &[&str],
) -> Result<(), Refusal> {
    admitted(ctx, req, fixed, segments).map(drop)
}

/// What the checks on the head found: the operation, the hub and the proven device.
struct Admitted<'c, 'p> {
    operation: Operation<'p>,
    hub: &'c Hub,
    identity: DeviceIdentity,
}

fn admitted<'c, 'p>(
    ctx: &'c HttpContext,
    req: &Request<'_>,
    fixed: &[&str],
    segments: &[&'p str],
) -> Result<Admitted<'c, 'p>, Refusal> {
    let operation = match (&req.method, fixed) {
        (&Method::POST, ["devices", _, "messages", "events"]) => Operation::SendTelemetry,
        (&Method::GET, ["devices", _, "messages", "devicebound"]) => Operation::Receive,
        (&Method::DELETE, ["devices", _, "messages", "devicebound", _]) => {
            Operation::Settle(segments[4], settlement_of_delete(req))
        }
        (&Method::POST, ["devices", _, "messages", "devicebound", _, "abandon"]) => {
            Operation::Settle(segments[4], Settlement::Abandon)
        }
        _ => {
            return Err(Box::new(reply::hub_error(&HubError::not_found_route(
                &format!("{} /{}", req.method, segments.join("/")),
            ))));
        }
    };
    if req.query_value("api-version").is_none() {
        return Err(Box::new(reply::hub_error(
            &HubError::invalid_protocol_version(),
        )));
    }
    let (hub, identity) =
        authenticate(ctx, req, segments[1]).map_err(|e| Box::new(reply::hub_error(&e)))?;
    Ok(Admitted {
        operation,
        hub,
        identity,
    })
}

/// Answers one device request; a settlement's 204 goes out only once it is durable.
pub(super) async fn handle(
    ctx: &HttpContext,
    req: &Request<'_>,
    fixed: &[&str],
    segments: &[&str],
) -> Reply {
    let Admitted {
        operation,
        hub,
        identity,
    } = match admitted(ctx, req, fixed, segments) {
        Ok(admitted) => admitted,
        Err(refusal) => return *refusal,
    };
    let device_id = segments[1];
    let result = match operation {
        Operation::SendTelemetry => send_telemetry(hub, req, &identity),
        Operation::Receive => Ok(receive(hub, device_id)),
        Operation::Settle(lock_token, settlement) => {
            // Clients quote the token as it came in the ETag; accept it either way.
            let token = lock_token.trim_matches('"');
            match hub.c2d_settle(device_id, token, settlement, SystemTime::now()) {
                Ok(pending) => pending
                    .durable()
                    .await
                    .map(|()| reply::empty(204))
                    .map_err(HubError::from),
                Err(e) => Err(e),
            }
        }
    };
    result.unwrap_or_else(|e| reply::hub_error(&e))
}

/// `?reject` (with or without a value) turns a completion into a rejection.
fn settlement_of_delete(req: &Request<'_>) -> Settlement {
    let reject = query::pairs(&req.query)
        .map(|pairs| pairs.iter().any(|(k, _)| k.eq_ignore_ascii_case("reject")))
        .unwrap_or(false);
    if reject {
        Settlement::Reject
    } else {
        Settlement::Complete
    }
}

/// The hub named by `Host` (or the only one) and the device proven for the path's id. The
/// SAS `sr` or certificate must match that device, so a device cannot act for another.
fn authenticate<'c>(
    ctx: &'c HttpContext,
    req: &Request<'_>,
    device_id: &str,
) -> Result<(&'c Hub, DeviceIdentity), HubError> {
    let hub = ctx.hubs.for_host(req.header("host").unwrap_or(""))?;
    match hub.authenticate_device(device_id, None, req.credential(), SystemTime::now()) {
        Ok(identity) => Ok((hub, identity)),
        Err(AuthError::DeviceDisabled(_)) => Err(HubError::device_disabled(device_id)),
        Err(e) => {
            tracing::warn!(reason = %e, device_id, "hub device HTTPS request refused");
            Err(HubError::unauthorized())
        }
    }
}

fn send_telemetry(
    hub: &Hub,
    req: &Request<'_>,
    identity: &DeviceIdentity,
) -> Result<Reply, HubError> {
    let is_batch = req.header("content-type").is_some_and(|ct| {
        ct.split(';')
            .next()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case(BATCH_CONTENT_TYPE))
    });
    if !is_batch {
        hub.accept_telemetry(identity, message_from_headers(req)?)?;
        return Ok(reply::empty(204));
    }
    hub.accept_telemetry_batch(identity, batch_messages(&req.body)?)?;
    Ok(reply::empty(204))
}

/// One message: the body as sent, properties from `IoTHub-*` / `iothub-app-*` headers.
fn message_from_headers(req: &Request<'_>) -> Result<IncomingMessage, HubError> {
    let mut message = IncomingMessage {
        body: req.body.clone(),
        ..Default::default()
    };
    for (name, value) in &req.headers {
        // Header values may carry UTF-8 (obs-text); anything else is refused, not mangled.
        let value = std::str::from_utf8(value.as_bytes())
            .map_err(|_| HubError::argument_invalid(format!("header {name} is not valid UTF-8")))?;
        // hyper lower-cases header names, which makes the match case-insensitive.
        set_property(&mut message, name.as_str(), value);
    }
    Ok(message)
}

/// Files a property under its system field or as an application property. Used for headers
/// and batch property maps alike; names that are neither are ignored for headers (they are
/// ordinary HTTP headers) but kept for batches, where every key is the device's.
fn set_property(message: &mut IncomingMessage, name: &str, value: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    if let Some(app) = lower.strip_prefix(APP_PREFIX) {
        // Keep the caller's spelling where it survived (batch keys); headers arrive lowered.
        let app = &name[name.len() - app.len()..];
        message.properties.insert(app.to_owned(), value.to_owned());
        return true;
    }
    let system: &mut SystemProperties = &mut message.system;
    let slot = match lower.as_str() {
        "iothub-messageid" => &mut system.message_id,
        "iothub-correlationid" => &mut system.correlation_id,
        "iothub-userid" => &mut system.user_id,
        "iothub-contenttype" => &mut system.content_type,
        "iothub-contentencoding" => &mut system.content_encoding,
        "iothub-to" => &mut system.to,
        "iothub-expiry" => &mut system.absolute_expiry_time,
        "iothub-interface-id" => &mut system.interface_id,
        "iothub-creation-time-utc" => &mut system.creation_time,
        _ => return false,
    };
    *slot = Some(value.to_owned());
    true
}

/// One element of a batch body.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BatchEntry {
    body: String,
    /// Absent means base64: azure-iot-sdk-c (`make1EventJSONitem`) and the Node SDK
    /// (`sendEventBatch`) send binary bodies as `{"body": "<base64>"}` without the flag, and
    /// the C SDK marks text bodies with `"base64Encoded": false`.
    #[serde(default = "base64_by_default")]
    base64_encoded: bool,
    #[serde(default)]
    properties: BTreeMap<String, Value>,
}

fn base64_by_default() -> bool {
    true
}

fn batch_messages(body: &[u8]) -> Result<Vec<IncomingMessage>, HubError> {
    let entries: Vec<BatchEntry> = serde_json::from_slice(body).map_err(|e| {
        HubError::argument_invalid(format!(
            "a batch must be a JSON array of {{\"body\", \"base64Encoded\", \"properties\"}}: {e}"
        ))
    })?;
    entries
        .into_iter()
        .enumerate()
        .map(|(i, entry)| {
            let body = if entry.base64_encoded {
                BASE64.decode(entry.body.as_bytes()).map_err(|e| {
                    HubError::argument_invalid(format!(
                        "batch message {i}: body is not base64 (a text body needs \"base64Encoded\": false): {e}"
                    ))
                })?
            } else {
                entry.body.into_bytes()
            };
            let mut message = IncomingMessage {
                body: Bytes::from(body),
                ..Default::default()
            };
            for (key, value) in entry.properties {
                let value = match value {
                    Value::String(s) => s,
                    Value::Null => String::new(),
                    other => other.to_string(),
                };
                if !set_property(&mut message, &key, &value) {
                    // Unprefixed keys in a batch are the device's own properties.
                    message.properties.insert(key, value);
                }
            }
            Ok(message)
        })
        .collect()
}

/// 200 with the next message, locked, or 204 when nothing is pending.
fn receive(hub: &Hub, device_id: &str) -> Reply {
    match hub.c2d_receive_locked(device_id, SystemTime::now()) {
        Some(queued) => c2d_reply(device_id, &queued),
        None => reply::empty(204),
    }
}

/// The message body with its properties as the headers the SDKs read (Node `toMessage`).
fn c2d_reply(device_id: &str, queued: &QueuedC2d) -> Reply {
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
    let mut reply = Response::new(Full::new(message.body.clone()));
    *reply.status_mut() = StatusCode::OK;
    for (name, value) in headers {
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
