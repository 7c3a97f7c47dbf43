//! IoT Hub service API, device registry (protocol.md §9.1):
//!
//! * `GET /devices?top=n` → `200 [device, …]` (RegistryRead);
//! * `GET /devices/{id}` → `200 device` (RegistryRead);
//! * `PUT /devices/{id}` with a device JSON body → `200 device`: without `If-Match` it
//!   creates, with one (an ETag or `*`) it updates (RegistryWrite);
//! * `DELETE /devices/{id}` (optional `If-Match`) → `204` once the deletion is stored
//!   (RegistryWrite).

use hyper::Method;
use serde_json::Value;

use super::hub_service::{self, REGISTRY_READ, REGISTRY_WRITE, Rights, ServiceGroup};
use super::reply::{self, Reply};
use super::request::Request;
use crate::hub::Hub;
use crate::hub::error::HubError;
use crate::hub::registry::DeviceSpec;

/// What a registry route does; the device id borrowed from the path.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Operation<'p> {
    List,
    Get(&'p str),
    Put(&'p str),
    Delete(&'p str),
}

/// The device registry routes.
pub(super) struct Registry;

impl ServiceGroup for Registry {
    type Operation<'p> = Operation<'p>;

    fn parse<'p>(
        method: &Method,
        fixed: &[&str],
        segments: &[&'p str],
    ) -> Option<(Rights, Operation<'p>)> {
        let id = segments.get(1).copied().unwrap_or_default();
        match (method, fixed) {
            (&Method::GET, ["devices"]) => Some((REGISTRY_READ, Operation::List)),
            (&Method::GET, ["devices", _]) => Some((REGISTRY_READ, Operation::Get(id))),
            (&Method::PUT, ["devices", _]) => Some((REGISTRY_WRITE, Operation::Put(id))),
            (&Method::DELETE, ["devices", _]) => Some((REGISTRY_WRITE, Operation::Delete(id))),
            _ => None,
        }
    }

    async fn apply<'a>(
        hub: &'a Hub,
        req: &'a Request<'a>,
        operation: Self::Operation<'a>,
    ) -> Result<Reply, HubError> {
        match operation {
            Operation::List => list(hub, req),
            Operation::Get(id) => Ok(reply::json(200, &hub.device_json(&hub.get_device(id)?))),
            Operation::Put(id) => put(hub, req, id).await,
            Operation::Delete(id) => {
                hub_service::stored(hub.delete_device(id, req.if_match())).await?;
                Ok(reply::empty(204))
            }
        }
    }
}

fn list(hub: &Hub, req: &Request<'_>) -> Result<Reply, HubError> {
    let top = match req.query_value("top") {
        None => None,
        Some(text) => Some(text.trim().parse::<usize>().map_err(|_| {
            HubError::argument_invalid(format!("top must be a non-negative number, not '{text}'"))
        })?),
    };
    let devices: Vec<Value> = hub
        .list_devices(top)
        .iter()
        .map(|d| hub.device_json(d))
        .collect();
    Ok(reply::json(200, &devices))
}

/// Without If-Match the caller creates; with it (an ETag or `*`) it updates (§9.1, §9.4).
async fn put(hub: &Hub, req: &Request<'_>, device_id: &str) -> Result<Reply, HubError> {
    let spec = DeviceSpec::from_json(device_id, &req.body)?;
    let device = match req.if_match() {
        None => hub_service::stored(hub.create_device(spec)).await?,
        Some(if_match) => hub_service::stored(hub.update_device(device_id, spec, if_match)).await?,
    };
    Ok(reply::json(200, &hub.device_json(&device)))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{body_json, call, hub};
    use super::*;

    #[test]
    fn routes_and_their_rights() {
        let route =
            |method: Method, fixed: &'static [&'static str]| Registry::parse(&method, fixed, fixed);
        assert_eq!(
            route(Method::GET, &["devices"]),
            Some((REGISTRY_READ, Operation::List))
        );
        assert_eq!(
            route(Method::PUT, &["devices", "d"]),
            Some((REGISTRY_WRITE, Operation::Put("d")))
        );
        assert_eq!(
            route(Method::DELETE, &["devices", "d"]),
            Some((REGISTRY_WRITE, Operation::Delete("d")))
        );
        assert_eq!(route(Method::POST, &["devices", "d"]), None);
        assert_eq!(route(Method::GET, &["devices", "d", "x"]), None);
    }

    #[tokio::test]
    async fn put_creates_then_updates_by_etag_and_delete_removes() {
        let hub = hub();
        let created = body_json(
            call::<Registry>(&hub, Method::PUT, "/devices/d1", &[], "{}")
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(created["deviceId"], "d1");
        let etag = created["etag"].as_str().unwrap().to_owned();
        let again = call::<Registry>(&hub, Method::PUT, "/devices/d1", &[], "{}")
            .await
            .unwrap_err();
        assert_eq!(again.code, 409001, "a second create is a conflict");
        let disabled = call::<Registry>(
            &hub,
            Method::PUT,
            "/devices/d1",
            &[("if-match", &etag)],
            r#"{"deviceId": "d1", "status": "disabled"}"#,
        )
        .await
        .unwrap();
        assert_eq!(body_json(disabled).await["status"], "disabled");
        let got = body_json(
            call::<Registry>(&hub, Method::GET, "/devices/d1", &[], "")
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(got["status"], "disabled");
        let deleted = call::<Registry>(&hub, Method::DELETE, "/devices/d1", &[], "")
            .await
            .unwrap();
        assert_eq!(deleted.status(), 204);
        let gone = call::<Registry>(&hub, Method::GET, "/devices/d1", &[], "")
            .await
            .unwrap_err();
        assert_eq!(gone.code, 404001);
    }

    #[tokio::test]
    async fn list_honours_top_and_refuses_a_bad_one() {
        let hub = hub();
        for id in ["b", "a", "c"] {
            call::<Registry>(&hub, Method::PUT, &format!("/devices/{id}"), &[], "{}")
                .await
                .unwrap();
        }
        let listed = body_json(
            call::<Registry>(&hub, Method::GET, "/devices?top=2", &[], "")
                .await
                .unwrap(),
        )
        .await;
        let ids: Vec<&str> = listed
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["deviceId"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["a", "b"]);
        let bad = call::<Registry>(&hub, Method::GET, "/devices?top=-1", &[], "")
            .await
            .unwrap_err();
        assert_eq!(bad.code, 400004);
        assert!(bad.message.contains("top must be"), "{}", bad.message);
    }
}
