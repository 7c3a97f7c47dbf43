//! IoT Hub service API, Digital Twins (IoT Plug and Play; the `digitaltwins` operations of
//! the hub's data-plane API, as azure-iot-hub's `DigitalTwinClient` and azure-iothub's
//! `DigitalTwinClient` call them), all ServiceConnect:
//!
//! * `GET /digitaltwins/{id}` → `200` the digital twin, with the twin's `ETag`;
//! * `PATCH /digitaltwins/{id}` with a JSON Patch array (and an optional `If-Match`) → `202`
//!   with the new `ETag` and a `Location`, once the desired properties it amounts to are
//!   stored (and pushed to the connected device);
//! * `POST /digitaltwins/{id}/commands/{command}` and
//!   `POST /digitaltwins/{id}/components/{component}/commands/{command}` with the command's
//!   payload as the body, and `connectTimeoutInSeconds` / `responseTimeoutInSeconds` query
//!   parameters → the device's payload as the body, its status in `x-ms-command-statuscode`
//!   and a `x-ms-request-id`. A command is a direct method named `command` or
//!   `component*command` (the PnP convention); the hub's method errors apply (404103 not
//!   online, 504101 no answer in time).
//!
//! The mapping between twin and digital twin is the hub's ([`crate::hub::twin::digital`]).

use std::time::Duration;

use hyper::Method;
use serde_json::Value;

use super::hub_service::{self, Rights, SERVICE_CONNECT, ServiceGroup};
use super::reply::{self, Reply};
use super::request::Request;
use crate::hub::Hub;
use crate::hub::error::HubError;
use crate::hub::twin::digital::command_method_name;

/// Waits for the device's answer when the caller names no timeout (Azure's default).
const DEFAULT_RESPONSE_TIMEOUT_SECONDS: u64 = 30;
/// The bounds IoT Hub puts on a method's timeouts.
const MIN_RESPONSE_TIMEOUT_SECONDS: u64 = 5;
const MAX_TIMEOUT_SECONDS: u64 = 300;

/// What a Digital Twins route does.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Operation<'p> {
    Get(&'p str),
    Update(&'p str),
    Command {
        device_id: &'p str,
        component: Option<&'p str>,
        command: &'p str,
    },
}

/// The Digital Twins routes.
pub(super) struct DigitalTwins;

impl ServiceGroup for DigitalTwins {
    type Operation<'p> = Operation<'p>;

    fn parse<'p>(
        method: &Method,
        fixed: &[&str],
        segments: &[&'p str],
    ) -> Option<(Rights, Operation<'p>)> {
        let at = |i: usize| segments.get(i).copied().unwrap_or_default();
        let operation = match (method, fixed) {
            (&Method::GET, ["digitaltwins", _]) => Operation::Get(at(1)),
            (&Method::PATCH, ["digitaltwins", _]) => Operation::Update(at(1)),
            (&Method::POST, ["digitaltwins", _, "commands", _]) => Operation::Command {
                device_id: at(1),
                component: None,
                command: at(3),
            },
            (&Method::POST, ["digitaltwins", _, "components", _, "commands", _]) => {
                Operation::Command {
                    device_id: at(1),
                    component: Some(at(3)),
                    command: at(5),
                }
            }
            _ => return None,
        };
        Some((SERVICE_CONNECT, operation))
    }

    async fn apply<'a>(
        hub: &'a Hub,
        req: &'a Request<'a>,
        operation: Self::Operation<'a>,
    ) -> Result<Reply, HubError> {
        match operation {
            Operation::Get(device_id) => {
                let (twin, etag) = hub.digital_twin(device_id)?;
                Ok(reply::with_header(
                    reply::json(200, &twin),
                    "etag",
                    &quoted(&etag),
                ))
            }
            Operation::Update(device_id) => {
                let operations: Value = serde_json::from_slice(&req.body).map_err(|e| {
                    HubError::argument_invalid(format!("the patch is not valid JSON: {e}"))
                })?;
                let etag = hub_service::stored(hub.update_digital_twin(
                    device_id,
                    &operations,
                    req.if_match(),
                ))
                .await?;
                let reply = reply::with_header(reply::empty(202), "etag", &quoted(&etag));
                Ok(reply::with_header(
                    reply,
                    "location",
                    &format!("https://{}/digitaltwins/{device_id}", hub.host_name()),
                ))
            }
            Operation::Command {
                device_id,
                component,
                command,
            } => invoke(hub, req, device_id, component, command).await,
        }
    }
}

/// Delivers a command as a direct method and answers with what the device said.
async fn invoke(
    hub: &Hub,
    req: &Request<'_>,
    device_id: &str,
    component: Option<&str>,
    command: &str,
) -> Result<Reply, HubError> {
    let payload: Value = if req.body.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        serde_json::from_slice(&req.body).map_err(|e| {
            HubError::argument_invalid(format!("the command payload is not valid JSON: {e}"))
        })?
    };
    let response_timeout = timeout(req, "responseTimeoutInSeconds")?
        .unwrap_or(DEFAULT_RESPONSE_TIMEOUT_SECONDS)
        .clamp(MIN_RESPONSE_TIMEOUT_SECONDS, MAX_TIMEOUT_SECONDS);
    let connect_timeout = timeout(req, "connectTimeoutInSeconds")?
        .unwrap_or(0)
        .min(MAX_TIMEOUT_SECONDS);
    let response = hub
        .invoke_method(
            device_id,
            &command_method_name(component, command),
            payload,
            Duration::from_secs(response_timeout),
            Duration::from_secs(connect_timeout),
        )
        .await?;
    let reply = reply::with_header(
        reply::json(200, &response.payload),
        "x-ms-command-statuscode",
        &response.status.to_string(),
    );
    Ok(reply::with_header(
        reply,
        "x-ms-request-id",
        &uuid::Uuid::new_v4().to_string(),
    ))
}

/// A timeout query parameter in whole seconds, if given.
fn timeout(req: &Request<'_>, name: &str) -> Result<Option<u64>, HubError> {
    req.query_value(name)
        .map(|value| {
            value.trim().parse::<u64>().map_err(|_| {
                HubError::argument_invalid(format!("{name} must be a whole number of seconds"))
            })
        })
        .transpose()
}

fn quoted(etag: &str) -> String {
    format!("\"{etag}\"")
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{add_device, body_json, call, hub};
    use super::*;

    #[test]
    fn routes_name_the_twin_the_component_and_the_command() {
        let route = |method: Method, fixed: &'static [&'static str]| {
            DigitalTwins::parse(&method, fixed, fixed).map(|(_, op)| op)
        };
        assert_eq!(
            route(Method::GET, &["digitaltwins", "d"]),
            Some(Operation::Get("d"))
        );
        assert_eq!(
            route(Method::PATCH, &["digitaltwins", "d"]),
            Some(Operation::Update("d"))
        );
        assert_eq!(
            route(Method::POST, &["digitaltwins", "d", "commands", "reboot"]),
            Some(Operation::Command {
                device_id: "d",
                component: None,
                command: "reboot"
            })
        );
        assert_eq!(
            route(
                Method::POST,
                &[
                    "digitaltwins",
                    "d",
                    "components",
                    "t1",
                    "commands",
                    "report"
                ]
            ),
            Some(Operation::Command {
                device_id: "d",
                component: Some("t1"),
                command: "report"
            })
        );
        assert_eq!(route(Method::DELETE, &["digitaltwins", "d"]), None);
        assert_eq!(
            route(Method::GET, &["digitaltwins", "d", "commands", "x"]),
            None
        );
    }

    #[test]
    fn modules_have_no_digital_twin_routes() {
        // The Digital Twins API (api-versions 2020-09-30 to 2021-04-12; the four operations
        // both service SDKs generate) is device-level only: module paths are no routes and
        // are answered 404 like any unknown path (docs/differences.md).
        let route = |method: Method, fixed: &'static [&'static str]| {
            DigitalTwins::parse(&method, fixed, fixed).map(|(_, op)| op)
        };
        for (method, fixed) in [
            (Method::GET, &["digitaltwins", "d", "modules", "m"][..]),
            (Method::PATCH, &["digitaltwins", "d", "modules", "m"][..]),
            (
                Method::POST,
                &["digitaltwins", "d", "modules", "m", "commands", "reboot"][..],
            ),
        ] {
            assert_eq!(route(method, fixed), None, "{fixed:?}");
        }
    }

    #[tokio::test]
    async fn a_patch_is_202_with_the_new_etag_and_shows_as_desired_values() {
        let hub = hub();
        add_device(&hub, "d").await;
        let patch = r#"[{"op": "add", "path": "/thermostat1/targetTemperature", "value": 21},
                        {"op": "add", "path": "/interval", "value": 5}]"#;
        let reply = call::<DigitalTwins>(&hub, Method::PATCH, "/digitaltwins/d", &[], patch)
            .await
            .unwrap();
        assert_eq!(reply.status(), 202);
        let etag = reply.headers()["etag"].to_str().unwrap().to_owned();
        assert_eq!(etag, format!("\"{}\"", hub.device_twin("d").unwrap().etag));
        let desired = hub.device_twin("d").unwrap().desired;
        assert_eq!(
            Value::Object(desired),
            serde_json::json!({"thermostat1": {"__t": "c", "targetTemperature": 21}, "interval": 5})
        );
        let got = call::<DigitalTwins>(&hub, Method::GET, "/digitaltwins/d", &[], "")
            .await
            .unwrap();
        assert_eq!(got.headers()["etag"].to_str().unwrap(), etag);
        let twin = body_json(got).await;
        assert_eq!(twin["$dtId"], "d");
        assert_eq!(twin["$metadata"]["interval"]["desiredValue"], 5);
        assert_eq!(
            twin["thermostat1"]["$metadata"]["targetTemperature"]["desiredVersion"],
            2
        );
    }

    #[tokio::test]
    async fn a_stale_etag_or_a_bad_patch_changes_nothing() {
        let hub = hub();
        add_device(&hub, "d").await;
        let before = hub.device_twin("d").unwrap();
        let stale = call::<DigitalTwins>(
            &hub,
            Method::PATCH,
            "/digitaltwins/d",
            &[("if-match", "\"nope\"")],
            r#"[{"op": "add", "path": "/a", "value": 1}]"#,
        )
        .await
        .unwrap_err();
        assert_eq!(stale.code, 412001);
        for bad in ["{", r#"{"op": "add"}"#, r#"[{"op": "copy", "path": "/a"}]"#] {
            let error = call::<DigitalTwins>(&hub, Method::PATCH, "/digitaltwins/d", &[], bad)
                .await
                .unwrap_err();
            assert_eq!(error.code, 400004, "{bad}");
        }
        assert_eq!(hub.device_twin("d").unwrap(), before);
        let missing = call::<DigitalTwins>(&hub, Method::GET, "/digitaltwins/nobody", &[], "")
            .await
            .unwrap_err();
        assert_eq!(missing.code, 404001);
    }

    #[tokio::test]
    async fn a_command_to_an_offline_device_is_404103_and_bad_timeouts_are_400() {
        let hub = hub();
        add_device(&hub, "d").await;
        let offline = call::<DigitalTwins>(
            &hub,
            Method::POST,
            "/digitaltwins/d/components/t1/commands/report?connectTimeoutInSeconds=0",
            &[],
            r#"{"since": "yesterday"}"#,
        )
        .await
        .unwrap_err();
        assert_eq!(offline.code, 404103);
        let bad = call::<DigitalTwins>(
            &hub,
            Method::POST,
            "/digitaltwins/d/commands/reboot?responseTimeoutInSeconds=soon",
            &[],
            "",
        )
        .await
        .unwrap_err();
        assert_eq!(bad.code, 400004);
    }
}
