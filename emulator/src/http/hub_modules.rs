//! IoT Hub service API, module identities (protocol.md §9.4):
//!
//! * `GET /devices/{id}/modules` → `200 [module, …]` (RegistryRead; 404 for an unknown device);
//! * `GET /devices/{id}/modules/{mid}` → `200 module` (RegistryRead);
//! * `PUT /devices/{id}/modules/{mid}` with a module JSON body → without `If-Match` it creates
//!   (`201`, as Azure answers), with one it updates (`200`) (RegistryWrite);
//! * `DELETE /devices/{id}/modules/{mid}` (optional `If-Match`) → `204` once stored
//!   (RegistryWrite).

use hyper::Method;
use serde_json::Value;

use super::hub_service::{self, REGISTRY_READ, REGISTRY_WRITE, Rights, ServiceGroup};
use super::reply::{self, Reply};
use super::request::Request;
use crate::hub::error::HubError;
use crate::hub::module::ModuleSpec;
use crate::hub::{Hub, IdentityRef};

/// What a module route does; ids borrowed from the path.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Operation<'p> {
    List(&'p str),
    Get(IdentityRef<'p>),
    Put(IdentityRef<'p>),
    Delete(IdentityRef<'p>),
}

/// The module identity routes.
pub(super) struct Modules;

impl ServiceGroup for Modules {
    type Operation<'p> = Operation<'p>;

    fn parse<'p>(
        method: &Method,
        fixed: &[&str],
        segments: &[&'p str],
    ) -> Option<(Rights, Operation<'p>)> {
        let device = segments.get(1).copied().unwrap_or_default();
        let module = IdentityRef::module(device, segments.get(3).copied().unwrap_or_default());
        match (method, fixed) {
            (&Method::GET, ["devices", _, "modules"]) => {
                Some((REGISTRY_READ, Operation::List(device)))
            }
            (&Method::GET, ["devices", _, "modules", _]) => {
                Some((REGISTRY_READ, Operation::Get(module)))
            }
            (&Method::PUT, ["devices", _, "modules", _]) => {
                Some((REGISTRY_WRITE, Operation::Put(module)))
            }
            (&Method::DELETE, ["devices", _, "modules", _]) => {
                Some((REGISTRY_WRITE, Operation::Delete(module)))
            }
            _ => None,
        }
    }

    async fn apply<'a>(
        hub: &'a Hub,
        req: &'a Request<'a>,
        operation: Self::Operation<'a>,
    ) -> Result<Reply, HubError> {
        match operation {
            Operation::List(device_id) => {
                hub.get_device(device_id)?;
                let modules: Vec<Value> = hub
                    .list_modules(device_id)
                    .iter()
                    .map(|m| hub.module_json(m))
                    .collect();
                Ok(reply::json(200, &modules))
            }
            Operation::Get(who) => {
                let module = hub.get_module(who.device_id, who.module_id.unwrap_or_default())?;
                Ok(reply::json(200, &hub.module_json(&module)))
            }
            Operation::Put(who) => put(hub, req, who).await,
            Operation::Delete(who) => {
                let module_id = who.module_id.unwrap_or_default();
                hub_service::stored(hub.delete_module(who.device_id, module_id, req.if_match()))
                    .await?;
                Ok(reply::empty(204))
            }
        }
    }
}

/// Without If-Match the caller creates the module (Azure answers 201), with it updates (200).
async fn put(hub: &Hub, req: &Request<'_>, who: IdentityRef<'_>) -> Result<Reply, HubError> {
    let module_id = who.module_id.unwrap_or_default();
    let spec = ModuleSpec::from_json(who.device_id, module_id, &req.body)?;
    let (status, module) = match req.if_match() {
        None => (201, hub_service::stored(hub.create_module(spec)).await?),
        Some(if_match) => (
            200,
            hub_service::stored(hub.update_module(spec, if_match)).await?,
        ),
    };
    Ok(reply::json(status, &hub.module_json(&module)))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{add_device, body_json, call, hub};
    use super::*;

    #[test]
    fn routes_and_their_rights() {
        let route =
            |method: Method, fixed: &'static [&'static str]| Modules::parse(&method, fixed, fixed);
        assert_eq!(
            route(Method::GET, &["devices", "d", "modules"]),
            Some((REGISTRY_READ, Operation::List("d")))
        );
        assert_eq!(
            route(Method::PUT, &["devices", "d", "modules", "m"]),
            Some((
                REGISTRY_WRITE,
                Operation::Put(IdentityRef::module("d", "m"))
            ))
        );
        assert_eq!(route(Method::POST, &["devices", "d", "modules", "m"]), None);
    }

    #[tokio::test]
    async fn put_creates_with_201_updates_with_200_and_delete_removes() {
        let hub = hub();
        let missing = call::<Modules>(&hub, Method::GET, "/devices/d/modules", &[], "")
            .await
            .unwrap_err();
        assert_eq!(missing.code, 404001, "modules of an unknown device");
        add_device(&hub, "d").await;
        let created = call::<Modules>(&hub, Method::PUT, "/devices/d/modules/m", &[], "{}")
            .await
            .unwrap();
        assert_eq!(created.status(), 201);
        let etag = body_json(created).await["etag"]
            .as_str()
            .unwrap()
            .to_owned();
        let updated = call::<Modules>(
            &hub,
            Method::PUT,
            "/devices/d/modules/m",
            &[("if-match", &etag)],
            "{}",
        )
        .await
        .unwrap();
        assert_eq!(updated.status(), 200);
        let listed = body_json(
            call::<Modules>(&hub, Method::GET, "/devices/d/modules", &[], "")
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(listed[0]["moduleId"], "m");
        let deleted = call::<Modules>(&hub, Method::DELETE, "/devices/d/modules/m", &[], "")
            .await
            .unwrap();
        assert_eq!(deleted.status(), 204);
        let gone = call::<Modules>(&hub, Method::GET, "/devices/d/modules/m", &[], "")
            .await
            .unwrap_err();
        assert_eq!(gone.status(), 404);
    }
}
