//! IoT Hub service REST API (protocol.md §9): what every service route shares. The routes
//! themselves live one API group per file — `hub_registry` (devices), `hub_modules`,
//! `hub_twins`, `hub_methods`, `hub_messaging` (C2D purge and feedback) and `hub_query` —
//! each parsing its operation from method and path and applying it to the hub.
//!
//! The hub is the one named by the `Host` header; callers authenticate with a hub
//! shared-access-policy token whose policy grants the route's right: RegistryRead to read
//! devices, RegistryWrite to change them, ServiceConnect for twins and methods (Azure's
//! samples use the `service` policy for both). Errors are answered in the classic IoT Hub
//! shape ([`reply::hub_error`]).

use std::time::SystemTime;

use super::HttpContext;
use super::reply::{self, Refusal, Reply};
use super::request::Request;
use crate::auth;
use crate::hub::Hub;
use crate::hub::error::HubError;
use crate::pending::Pending;

/// The policy rights that admit a route, tried in order; any one suffices.
pub(super) type Rights = &'static [&'static str];

pub(super) const REGISTRY_READ: Rights = &["RegistryRead"];
pub(super) const REGISTRY_WRITE: Rights = &["RegistryWrite"];
pub(super) const SERVICE_CONNECT: Rights = &["ServiceConnect"];

/// The hub and the operation a request asks for, once its route is known (`route` is what
/// the group's parser found, `None` for no route) and the caller's policy token is proven to
/// grant one of the route's rights. The router makes these checks before the body is read;
/// the group's handler makes them again.
pub(super) fn admitted<'c, Op>(
    ctx: &'c HttpContext,
    req: &Request<'_>,
    segments: &[&str],
    route: Option<(Rights, Op)>,
) -> Result<(&'c Hub, Op), Refusal> {
    let Some((rights, operation)) = route else {
        return Err(Box::new(no_route(req, segments)));
    };
    let hub = ctx
        .hubs
        .for_host(req.host())
        .map_err(|e| Box::new(reply::hub_error(&e)))?;
    authorize(hub, req, rights).map_err(|e| Box::new(reply::hub_error(&e)))?;
    Ok((hub, operation))
}

/// Whether the `Authorization` token is a policy token for `hub` granting one of `rights`.
fn authorize(hub: &Hub, req: &Request<'_>, rights: Rights) -> Result<(), HubError> {
    let mut refused = None;
    for right in rights {
        match auth::authenticate_service(
            hub.policies(),
            hub.host_name(),
            req.header("authorization"),
            right,
            SystemTime::now(),
        ) {
            Ok(_) => return Ok(()),
            Err(e) => refused = Some(e),
        }
    }
    if let Some(e) = refused {
        tracing::warn!(reason = %e, "hub service request refused");
    }
    Err(HubError::unauthorized())
}

/// 404 in the hub's shape for a path under an IoT Hub API that no route serves.
pub(super) fn no_route(req: &Request<'_>, segments: &[&str]) -> Reply {
    reply::hub_error(&HubError::not_found_route(&format!(
        "{} /{}",
        req.method,
        segments.join("/")
    )))
}

/// The reply to an applied operation: its own, or the error in the hub's shape.
pub(super) fn answer(result: Result<Reply, HubError>) -> Reply {
    result.unwrap_or_else(|e| reply::hub_error(&e))
}

/// A write's value once it is durable; a store failure becomes the 500001 answer.
pub(super) async fn stored<T>(write: Result<Pending<'_, T>, HubError>) -> Result<T, HubError> {
    Ok(write?.durable().await?)
}
