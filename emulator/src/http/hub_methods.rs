//! IoT Hub service API, direct methods (protocol.md §9.3), ServiceConnect:
//!
//! * `POST /twins/{id}/methods` and `POST /twins/{id}/modules/{mid}/methods` with
//!   `{"methodName", "payload", "responseTimeoutInSeconds", "connectTimeoutInSeconds"}` →
//!   `200 {"status": <device's status>, "payload": <device's JSON>}` once the device answers;
//!   the hub's errors (device not online 404103, timeout 504101) otherwise.

use std::time::Duration;

use hyper::Method;
use serde::Deserialize;
use serde_json::Value;

use super::hub_service::{Rights, SERVICE_CONNECT, ServiceGroup};
use super::hub_twins::twin_owner;
use super::reply::{self, Reply};
use super::request::Request;
use crate::hub::error::HubError;
use crate::hub::{Hub, IdentityRef};

/// Waits for the device's answer when the caller names none (Azure's default).
const DEFAULT_RESPONSE_TIMEOUT_SECONDS: u64 = 30;

/// The one route: invoke a method on `who`.
pub(super) struct Methods;

impl ServiceGroup for Methods {
    type Operation<'p> = IdentityRef<'p>;

    fn parse<'p>(
        method: &Method,
        fixed: &[&str],
        segments: &[&'p str],
    ) -> Option<(Rights, IdentityRef<'p>)> {
        match (method, fixed) {
            (&Method::POST, ["twins", _, "methods"] | ["twins", _, "modules", _, "methods"]) => {
                Some((SERVICE_CONNECT, twin_owner(fixed, segments)))
            }
            _ => None,
        }
    }

    /// `{"status": <device's status>, "payload": <device's JSON>}`.
    async fn apply<'a>(
        hub: &'a Hub,
        req: &'a Request<'a>,
        who: Self::Operation<'a>,
    ) -> Result<Reply, HubError> {
        let call = MethodInvocation::from_body(&req.body)?;
        let (response_timeout, connect_timeout) = (call.response_timeout(), call.connect_timeout());
        let response = hub
            .invoke_method_on(
                who,
                &call.method_name,
                call.payload,
                response_timeout,
                connect_timeout,
            )
            .await?;
        Ok(reply::json(
            200,
            &serde_json::json!({ "status": response.status, "payload": response.payload }),
        ))
    }
}

/// The request body, and its timeout rules: the one definition of them, which the portal's
/// "Direct method" form (`control/api_hub.rs`) parses too.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MethodInvocation {
    pub(crate) method_name: String,
    #[serde(default)]
    pub(crate) payload: Value,
    response_timeout_in_seconds: Option<u64>,
    connect_timeout_in_seconds: Option<u64>,
}

impl MethodInvocation {
    pub(crate) fn from_body(body: &[u8]) -> Result<MethodInvocation, HubError> {
        serde_json::from_slice(body)
            .map_err(|e| HubError::argument_invalid(format!("invalid method invocation: {e}")))
    }

    /// How long to wait for the answer: 5 to 300 seconds, as IoT Hub bounds it.
    pub(crate) fn response_timeout(&self) -> Duration {
        let seconds = self
            .response_timeout_in_seconds
            .unwrap_or(DEFAULT_RESPONSE_TIMEOUT_SECONDS);
        Duration::from_secs(seconds.clamp(5, 300))
    }

    /// How long to wait for the device to connect: at most 300 seconds, none by default.
    pub(crate) fn connect_timeout(&self) -> Duration {
        Duration::from_secs(self.connect_timeout_in_seconds.unwrap_or(0).min(300))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{add_device, hub, request};
    use super::*;

    #[test]
    fn routes_name_the_device_or_the_module() {
        let route =
            |method: Method, fixed: &'static [&'static str]| Methods::parse(&method, fixed, fixed);
        assert_eq!(
            route(Method::POST, &["twins", "d", "methods"]),
            Some((SERVICE_CONNECT, IdentityRef::device("d")))
        );
        assert_eq!(
            route(Method::POST, &["twins", "d", "modules", "m", "methods"]),
            Some((SERVICE_CONNECT, IdentityRef::module("d", "m")))
        );
        assert_eq!(route(Method::GET, &["twins", "d", "methods"]), None);
    }

    #[test]
    fn timeouts_are_bounded_as_iot_hub_bounds_them() {
        let call = |body: &str| MethodInvocation::from_body(body.as_bytes()).unwrap();
        let defaults = call(r#"{"methodName": "m"}"#);
        assert_eq!(defaults.response_timeout(), Duration::from_secs(30));
        assert_eq!(defaults.connect_timeout(), Duration::ZERO);
        assert_eq!(defaults.payload, Value::Null);
        let low = call(r#"{"methodName": "m", "responseTimeoutInSeconds": 1}"#);
        assert_eq!(low.response_timeout(), Duration::from_secs(5));
        let high = call(
            r#"{"methodName": "m", "responseTimeoutInSeconds": 9999, "connectTimeoutInSeconds": 9999}"#,
        );
        assert_eq!(high.response_timeout(), Duration::from_secs(300));
        assert_eq!(high.connect_timeout(), Duration::from_secs(300));
        let error = MethodInvocation::from_body(b"{}").unwrap_err();
        assert_eq!(error.code, 400004);
        assert!(error.message.contains("methodName"), "{}", error.message);
    }

    #[tokio::test]
    async fn an_offline_device_is_answered_with_the_hub_error() {
        let hub = hub();
        let req = request(
            Method::POST,
            "/twins/d/methods",
            &[],
            r#"{"methodName": "m"}"#,
        );
        let unknown = Methods::apply(&hub, &req, IdentityRef::device("d"))
            .await
            .unwrap_err();
        assert_eq!(unknown.code, 404001);
        add_device(&hub, "d").await;
        let offline = Methods::apply(&hub, &req, IdentityRef::device("d"))
            .await
            .unwrap_err();
        assert_eq!(offline.code, 404103);
    }
}
