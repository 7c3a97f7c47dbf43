//! IoT Hub service API, device and module twins (protocol.md §9.2), all ServiceConnect:
//!
//! * `GET /twins/{id}` and `GET /twins/{id}/modules/{mid}` → `200 twin`;
//! * `PATCH` on the same paths with a twin JSON body merges tags and desired properties,
//!   `PUT` replaces them; either with an optional `If-Match`, answered `200 twin` once stored.

use hyper::Method;
use serde_json::Value;

use super::HttpContext;
use super::hub_service::{self, Rights, SERVICE_CONNECT};
use super::reply::{self, Refusal, Reply};
use super::request::Request;
use crate::hub::error::HubError;
use crate::hub::{Hub, IdentityRef};

/// What a twin route does, to whose twin.
#[derive(Debug, PartialEq, Eq)]
enum Operation<'p> {
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

/// The checks on the head (route, hub, policy token and right), before the body is read.
pub(super) fn admit(
    ctx: &HttpContext,
    req: &Request<'_>,
    fixed: &[&str],
    segments: &[&str],
) -> Result<(), Refusal> {
    hub_service::admitted(ctx, req, segments, parse(&req.method, fixed, segments)).map(drop)
}

pub(super) async fn handle(
    ctx: &HttpContext,
    req: &Request<'_>,
    fixed: &[&str],
    segments: &[&str],
) -> Reply {
    match hub_service::admitted(ctx, req, segments, parse(&req.method, fixed, segments)) {
        Ok((hub, operation)) => hub_service::answer(apply(hub, req, operation).await),
        Err(refusal) => *refusal,
    }
}

async fn apply(hub: &Hub, req: &Request<'_>, operation: Operation<'_>) -> Result<Reply, HubError> {
    match operation {
        Operation::Get(who) => Ok(reply::json(200, &hub.twin_view(who)?)),
        Operation::Update { who, replace } => {
            let body: Value = serde_json::from_slice(&req.body).map_err(|e| {
                HubError::argument_invalid(format!("the twin is not valid JSON: {e}"))
            })?;
            let view = hub_service::stored(hub.update_twin_of(who, &body, req.if_match(), replace))
                .await?;
            Ok(reply::json(200, &view))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{body_json, hub, path, request};
    use super::*;
    use crate::hub::registry::DeviceSpec;

    async fn call(hub: &Hub, method: Method, uri: &str, body: &str) -> Result<Reply, HubError> {
        let req = request(method, uri, &[], body);
        let (segments, lower) = path(&req);
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        let fixed: Vec<&str> = lower.iter().map(String::as_str).collect();
        let (_, operation) = parse(&req.method, &fixed, &segments).expect("a twin route");
        apply(hub, &req, operation).await
    }

    #[test]
    fn routes_name_the_device_or_the_module() {
        let route = |method: Method, fixed: &'static [&'static str]| parse(&method, fixed, fixed);
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
        let spec = DeviceSpec::from_json("d", b"{}").unwrap();
        hub_service::stored(hub.create_device(spec)).await.unwrap();
        let patch = r#"{"tags": {"a": 1}, "properties": {"desired": {"x": 1}}}"#;
        call(&hub, Method::PATCH, "/twins/d", patch).await.unwrap();
        call(&hub, Method::PATCH, "/twins/d", r#"{"tags": {"b": 2}}"#)
            .await
            .unwrap();
        let twin = body_json(call(&hub, Method::GET, "/twins/d", "").await.unwrap()).await;
        assert_eq!(twin["tags"], serde_json::json!({"a": 1, "b": 2}));
        assert_eq!(twin["properties"]["desired"]["x"], 1);
        let replaced = call(&hub, Method::PUT, "/twins/d", r#"{"tags": {"c": 3}}"#)
            .await
            .unwrap();
        assert_eq!(
            body_json(replaced).await["tags"],
            serde_json::json!({"c": 3})
        );
        let bad = call(&hub, Method::PATCH, "/twins/d", "{")
            .await
            .unwrap_err();
        assert!(bad.message.contains("not valid JSON"), "{}", bad.message);
        let unknown = call(&hub, Method::GET, "/twins/nobody", "")
            .await
            .unwrap_err();
        assert_eq!(unknown.code, 404001);
    }
}
