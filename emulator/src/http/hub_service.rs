//! IoT Hub service REST API (protocol.md §9): what every service route shares. The routes
//! themselves live one API group per file — `hub_registry` (devices), `hub_modules`,
//! `hub_twins`, `hub_methods`, `hub_messaging` (C2D purge and feedback) and `hub_query` —
//! each a [`ServiceGroup`]: it parses its operation from method and path and applies it to
//! the hub. Admitting the request (route, hub, policy right) and answering are the same for
//! every group, so they are written here once ([`admit`], [`handle`]).
//!
//! The hub is the one named by the `Host` header; callers authenticate with a hub
//! shared-access-policy token whose policy grants the route's right: RegistryRead to read
//! devices, RegistryWrite to change them, ServiceConnect for twins and methods (Azure's
//! samples use the `service` policy for both). Errors are answered in the classic IoT Hub
//! shape ([`reply::hub_error`]).

use std::time::SystemTime;

use hyper::Method;

use super::HttpContext;
use super::reply::{self, Refusal, Reply};
use super::request::Request;
use crate::auth;
use crate::faults::FaultOperation;
use crate::hub::Hub;
use crate::hub::error::HubError;
use crate::pending::Pending;

/// The policy rights that admit a route, tried in order; any one suffices.
pub(super) type Rights = &'static [&'static str];

pub(super) const REGISTRY_READ: Rights = &["RegistryRead"];
pub(super) const REGISTRY_WRITE: Rights = &["RegistryWrite"];
pub(super) const SERVICE_CONNECT: Rights = &["ServiceConnect"];

/// One API group of the service API: the operation a request asks for, with the rights
/// that admit it, and what applying it to the hub answers.
pub(super) trait ServiceGroup {
    /// What a route of the group does, with ids borrowed from the path.
    type Operation<'p>;

    /// The route's rights and operation; `None` when no route of the group matches.
    /// `fixed` is the path lower-cased (to match), `segments` as sent (the ids).
    fn parse<'p>(
        method: &Method,
        fixed: &[&str],
        segments: &[&'p str],
    ) -> Option<(Rights, Self::Operation<'p>)>;

    /// Applies an admitted operation; a write answers only once it is stored. (Written
    /// with one lifetime and `Send` spelled out: with `async fn` rustc cannot prove the
    /// connection task `Send`, rust-lang/rust#100013.)
    fn apply<'a>(
        hub: &'a Hub,
        req: &'a Request<'a>,
        operation: Self::Operation<'a>,
    ) -> impl Future<Output = Result<Reply, HubError>> + Send + 'a;
}

/// The checks on the head (route, hub, policy token and right), before the body is read.
pub(super) fn admit<G: ServiceGroup>(
    ctx: &HttpContext,
    req: &Request<'_>,
    fixed: &[&str],
    segments: &[&str],
) -> Result<(), Refusal> {
    admitted(ctx, req, segments, G::parse(&req.method, fixed, segments)).map(drop)
}

/// Answers a request of group `G` once its body is read: the checks again, then the operation.
pub(super) async fn handle<G: ServiceGroup>(
    ctx: &HttpContext,
    req: &Request<'_>,
    fixed: &[&str],
    segments: &[&str],
) -> Reply {
    match admitted(ctx, req, segments, G::parse(&req.method, fixed, segments)) {
        Ok((hub, operation)) => {
            // An injected `hub.service` fault (docs/faults.md), addressed by the path; else,
            // for a twin read or update, the hub's twin throttles.
            let path = format!("/{}", segments.join("/"));
            let fault = hub.fault(FaultOperation::HubService, &path).or_else(|| {
                let (device_id, update) = twin_access(&req.method, segments)?;
                hub.service_twin_throttle(device_id, update)
            });
            let operation = async { answer(G::apply(hub, req, operation).await) };
            super::faults::around(ctx, super::faults::Service::Hub, fault, operation).await
        }
        Err(refusal) => *refusal,
    }
}

/// The device a twin request names and whether it updates the twin: a read is `GET
/// /twins/{id}[/modules/{mid}]`, an update `PATCH` or `PUT` of the same.
fn twin_access<'s>(method: &Method, segments: &[&'s str]) -> Option<(&'s str, bool)> {
    let device_id = match segments {
        ["twins", id] | ["twins", id, "modules", _] => *id,
        _ => return None,
    };
    match *method {
        Method::GET => Some((device_id, false)),
        Method::PATCH | Method::PUT => Some((device_id, true)),
        _ => None,
    }
}

/// The hub and the operation a request asks for, once its route is known (`route` is what
/// the group's parser found, `None` for no route) and the caller's policy token is proven to
/// grant one of the route's rights. The router makes these checks before the body is read;
/// the group's handler makes them again.
fn admitted<'c, Op>(
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
fn answer(result: Result<Reply, HubError>) -> Reply {
    result.unwrap_or_else(|e| reply::hub_error(&e))
}

/// A write's value once it is durable; a store failure becomes the 500001 answer.
pub(super) async fn stored<T>(write: Result<Pending<'_, T>, HubError>) -> Result<T, HubError> {
    Ok(write?.durable().await?)
}
