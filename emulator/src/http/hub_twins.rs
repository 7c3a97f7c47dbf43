//! IoT Hub service API, device and module twins (protocol.md §9.2), all ServiceConnect:
//!
//! * `GET /twins/{id}` and `GET /twins/{id}/modules/{mid}` → `200 twin`;
//! * `PATCH` on the same paths with a twin JSON body merges tags and desired properties,
//!   `PUT` replaces them; either with an optional `If-Match`, answered `200 twin` once stored.

use hyper::Method;
use serde_json::Value;

use super::hub_service::{self, Rights, SERVICE_CONNECT, ServiceGroup};
use super::reply::{self, Reply};
use super::request::Request;
use crate::hub::error::HubError;
use crate::hub::twin::order::TwinJson;
use crate::hub::{Hub, IdentityRef};

/// What a twin route does, to whose twin.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Operation<'p> {
    Get(IdentityRef<'p>),
    /// `PATCH` merges (`replace: false`), `PUT` replaces.
    Update {
        who: IdentityRef<'p>,
        replace: bool,
    },
}

/// `/twins/{device}/modules/{module}…` names a module, `/twins/{device}…` the device.
pub(super) fn twin_owner<'p>(fixed: &[&str], segments: &[&'p str]) -> IdentityRef<'p> {
    let device = segments.get(1).copied().unwrap_or_default();
    match fixed.get(2) {
        Some(&"modules") => {
            IdentityRef::module(device, segments.get(3).copied().unwrap_or_default())
        }
        _ => IdentityRef::device(device),
    }
}

/// The twin routes.
pub(super) struct Twins;

impl ServiceGroup for Twins {
    type Operation<'p> = Operation<'p>;

    fn parse<'p>(
        method: &Method,
        fixed: &[&str],
        segments: &[&'p str],
    ) -> Option<(Rights, Operation<'p>)> {
        let who = twin_owner(fixed, segments);
        let operation = match (method, fixed) {
            (&Method::GET, ["twins", _] | ["twins", _, "modules", _]) => Operation::Get(who),
            (&Method::PATCH, ["twins", _] | ["twins", _, "modules", _]) => Operation::Update {
                who,
                replace: false,
            },
            (&Method::PUT, ["twins", _] | ["twins", _, "modules", _]) => {
                Operation::Update { who, replace: true }
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
            Operation::Get(who) => Ok(reply::json(200, &TwinJson(&hub.twin_view(who)?))),
            Operation::Update { who, replace } => {
                let body: Value = serde_json::from_slice(&req.body).map_err(|e| {
                    HubError::argument_invalid(format!("the twin is not valid JSON: {e}"))
                })?;
                let view =
                    hub_service::stored(hub.update_twin_of(who, &body, req.if_match(), replace))
                        .await?;
                Ok(reply::json(200, &TwinJson(&view)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{add_device, body_json, call, hub};
    use super::*;

    #[test]
    fn routes_name_the_device_or_the_module() {
        let route =
            |method: Method, fixed: &'static [&'static str]| Twins::parse(&method, fixed, fixed);
        assert_eq!(
            route(Method::GET, &["twins", "d"]),
            Some((SERVICE_CONNECT, Operation::Get(IdentityRef::device("d"))))
        );
        assert_eq!(
            route(Method::PUT, &["twins", "d", "modules", "m"]),
            Some((
                SERVICE_CONNECT,
                Operation::Update {
                    who: IdentityRef::module("d", "m"),
                    replace: true
                }
            ))
        );
        assert_eq!(route(Method::DELETE, &["twins", "d"]), None);
        assert_eq!(route(Method::GET, &["twins", "d", "methods"]), None);
    }

    #[tokio::test]
    async fn patch_merges_put_replaces_and_bad_json_is_400() {
        let hub = hub();
        add_device(&hub, "d").await;
        let patch = r#"{"tags": {"a": 1}, "properties": {"desired": {"x": 1}}}"#;
        call::<Twins>(&hub, Method::PATCH, "/twins/d", &[], patch)
            .await
            .unwrap();
        call::<Twins>(
            &hub,
            Method::PATCH,
            "/twins/d",
            &[],
            r#"{"tags": {"b": 2}}"#,
        )
        .await
        .unwrap();
        let twin = body_json(
            call::<Twins>(&hub, Method::GET, "/twins/d", &[], "")
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(twin["tags"], serde_json::json!({"a": 1, "b": 2}));
        assert_eq!(twin["properties"]["desired"]["x"], 1);
        let replaced = call::<Twins>(&hub, Method::PUT, "/twins/d", &[], r#"{"tags": {"c": 3}}"#)
            .await
            .unwrap();
        assert_eq!(
            body_json(replaced).await["tags"],
            serde_json::json!({"c": 3})
        );
        let bad = call::<Twins>(&hub, Method::PATCH, "/twins/d", &[], "{")
            .await
            .unwrap_err();
        assert!(bad.message.contains("not valid JSON"), "{}", bad.message);
        let unknown = call::<Twins>(&hub, Method::GET, "/twins/nobody", &[], "")
            .await
            .unwrap_err();
        assert_eq!(unknown.code, 404001);
    }

    #[tokio::test]
    async fn sections_end_with_per_property_metadata_then_the_version() {
        let hub = hub();
        add_device(&hub, "d").await;
        let patch = r#"{"properties": {"desired": {"b": 1, "a": {"x": 2}}}}"#;
        call::<Twins>(&hub, Method::PATCH, "/twins/d", &[], patch)
            .await
            .unwrap();
        let reply = call::<Twins>(&hub, Method::GET, "/twins/d", &[], "")
            .await
            .unwrap();
        let bytes = http_body_util::BodyExt::collect(reply.into_body())
            .await
            .unwrap()
            .to_bytes();
        let text = std::str::from_utf8(&bytes).unwrap();
        let desired_at = text.find(r#""desired":{"a":{"x":2},"b":1,"$metadata":{"#);
        assert!(desired_at.is_some(), "desired section out of order: {text}");
        assert!(
            text.contains(r#"},"$version":2},"reported":{"$metadata":{"$lastUpdated":"#),
            "{text}"
        );
        let twin: Value = serde_json::from_str(text).unwrap();
        let meta = &twin["properties"]["desired"]["$metadata"];
        assert_eq!(meta["$lastUpdatedVersion"], 2);
        assert_eq!(meta["a"]["$lastUpdatedVersion"], 2);
        assert_eq!(meta["a"]["x"]["$lastUpdatedVersion"], 2);
        assert!(meta["b"]["$lastUpdated"].is_string());
        assert_eq!(twin["modelId"], "");
    }
}
