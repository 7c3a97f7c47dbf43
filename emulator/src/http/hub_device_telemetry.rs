//! IoT Hub device HTTPS API, device-to-cloud messages (protocol.md §6):
//!
//! * `POST /devices/{id}/messages/events` → `204` once accepted. One message: the body as
//!   sent, system properties from `iothub-*` headers (`iothub-messageid`,
//!   `iothub-correlationid`, `iothub-contenttype`, …) and application properties from
//!   `iothub-app-*` headers.
//! * The same route with content type `application/vnd.microsoft.iothub.json` is a batch: a
//!   JSON array of `{"body", "base64Encoded", "properties"}`, bodies base64 unless
//!   `"base64Encoded": false`.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use hyper::Method;
use serde::Deserialize;
use serde_json::Value;

use super::hub_device::{APP_PREFIX, DeviceGroup};
use super::reply::{self, Reply};
use super::request::Request;
use crate::faults::FaultOperation;
use crate::hub::DeviceIdentity;
use crate::hub::Hub;
use crate::hub::error::HubError;
use crate::hub::telemetry::{IncomingMessage, SystemProperties};

/// The content type that marks a telemetry body as a batch.
const BATCH_CONTENT_TYPE: &str = "application/vnd.microsoft.iothub.json";

/// The one route.
pub(super) struct Telemetry;

impl DeviceGroup for Telemetry {
    type Operation<'p> = ();

    fn parse(req: &Request<'_>, fixed: &[&str], _segments: &[&str]) -> Option<()> {
        match (&req.method, fixed) {
            (&Method::POST, ["devices", _, "messages", "events"]) => Some(()),
            _ => None,
        }
    }

    async fn apply<'a>(
        hub: &'a Hub,
        identity: DeviceIdentity,
        req: &'a Request<'a>,
        (): Self::Operation<'a>,
    ) -> Result<Reply, HubError> {
        send(hub, req, &identity)
    }

    fn fault_operation((): &()) -> Option<FaultOperation> {
        Some(FaultOperation::HubTelemetry)
    }
}

fn send(hub: &Hub, req: &Request<'_>, identity: &DeviceIdentity) -> Result<Reply, HubError> {
    if is_batch(req) {
        hub.accept_telemetry_batch(identity, batch_messages(&req.body)?)?;
    } else {
        hub.accept_telemetry(identity, message_from_headers(req)?)?;
    }
    Ok(reply::empty(204))
}

fn is_batch(req: &Request<'_>) -> bool {
    req.header("content-type").is_some_and(|ct| {
        ct.split(';')
            .next()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case(BATCH_CONTENT_TYPE))
    })
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
    // The field is picked before the properties are written, so a header that is none of
    // them leaves a message without system properties holding none (`make_mut` allocates).
    type Field = fn(&mut SystemProperties) -> &mut Option<String>;
    let field: Field = match lower.as_str() {
        "iothub-messageid" => |s| &mut s.message_id,
        "iothub-correlationid" => |s| &mut s.correlation_id,
        "iothub-userid" => |s| &mut s.user_id,
        "iothub-contenttype" => |s| &mut s.content_type,
        "iothub-contentencoding" => |s| &mut s.content_encoding,
        "iothub-to" => |s| &mut s.to,
        "iothub-expiry" => |s| &mut s.absolute_expiry_time,
        "iothub-interface-id" => |s| &mut s.interface_id,
        "iothub-creation-time-utc" => |s| &mut s.creation_time,
        _ => return false,
    };
    *field(message.system.make_mut()) = Some(value.to_owned());
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
        .map(|(i, entry)| batch_message(i, entry))
        .collect()
}

/// The `i`th message of a batch.
fn batch_message(i: usize, entry: BatchEntry) -> Result<IncomingMessage, HubError> {
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
}

#[cfg(test)]
mod tests {
    use super::super::test_support::request;
    use super::*;

    #[test]
    fn only_post_events_is_telemetry() {
        let route = |method: Method| {
            let req = request(method, "/devices/d/messages/events", &[], "");
            Telemetry::parse(&req, &["devices", "d", "messages", "events"], &[])
        };
        assert_eq!(route(Method::POST), Some(()));
        assert_eq!(route(Method::GET), None);
    }

    #[test]
    fn headers_become_system_and_application_properties() {
        let req = request(
            Method::POST,
            "/devices/d/messages/events",
            &[
                ("IoTHub-MessageId", "m1"),
                ("iothub-contenttype", "application/json"),
                ("iothub-app-Temperature", "21"),
                ("x-other", "ignored"),
            ],
            "{\"t\":21}",
        );
        let message = message_from_headers(&req).unwrap();
        assert_eq!(message.system.message_id.as_deref(), Some("m1"));
        assert_eq!(
            message.system.content_type.as_deref(),
            Some("application/json")
        );
        assert_eq!(
            message.properties.into_iter().collect::<Vec<_>>(),
            [("temperature".to_owned(), "21".to_owned())],
            "headers arrive lower-cased"
        );
        assert_eq!(&message.body[..], b"{\"t\":21}");
        assert!(!is_batch(&req));
        let batch = request(
            Method::POST,
            "/",
            &[(
                "content-type",
                "Application/vnd.microsoft.iothub.json; charset=utf-8",
            )],
            "[]",
        );
        assert!(is_batch(&batch));
    }

    #[test]
    fn batches_decode_bodies_and_keep_every_property() {
        let body = br#"[
            {"body": "aGk=", "properties": {"iothub-app-Kind": "a", "plain": 1, "iothub-messageid": "m"}},
            {"body": "text", "base64Encoded": false, "properties": {"n": null}}
        ]"#;
        let messages = batch_messages(body).unwrap();
        assert_eq!(&messages[0].body[..], b"hi");
        assert_eq!(
            messages[0].properties.get("Kind").map(String::as_str),
            Some("a")
        );
        assert_eq!(
            messages[0].properties.get("plain").map(String::as_str),
            Some("1")
        );
        assert_eq!(messages[0].system.message_id.as_deref(), Some("m"));
        assert_eq!(&messages[1].body[..], b"text");
        assert_eq!(
            messages[1].properties.get("n").map(String::as_str),
            Some("")
        );
        for (bad, expected) in [
            (&b"{}"[..], "a batch must be a JSON array"),
            (
                br#"[{"body": "not base64!"}]"#,
                "batch message 0: body is not base64",
            ),
        ] {
            let error = batch_messages(bad).unwrap_err();
            assert_eq!(error.code, 400004);
            assert!(error.message.contains(expected), "{}", error.message);
        }
    }
}
