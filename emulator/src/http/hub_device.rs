//! IoT Hub device HTTPS API (protocol.md §6): what every device route shares. The routes
//! live one API group per file — `hub_device_telemetry` (device-to-cloud messages) and
//! `hub_device_c2d` (cloud-to-device receive and settlement) — each a [`DeviceGroup`]: it
//! parses its operation from method and path and applies it to the hub for the proven
//! device. Admitting the request and answering are written here once ([`admit`], [`handle`]).
//!
//! Every route needs `api-version`; the hub is the one named by the `Host` header; the device
//! proves itself with a device SAS token or its TLS client certificate, for the device the
//! path names. This module and its groups only map headers and bodies; the hub applies the
//! rules (limits, locks). Injected faults (docs/faults.md) on a group's operations are
//! carried out in [`handle`] too.

use std::time::SystemTime;

use super::HttpContext;
use super::hub_service::no_route;
use super::reply::{self, Refusal, Reply};
use super::request::Request;
use crate::auth::AuthError;
use crate::faults::FaultOperation;
use crate::hub::error::HubError;
use crate::hub::{DeviceIdentity, Hub};

/// Prefix of application properties in headers (and in batch property maps).
pub(super) const APP_PREFIX: &str = "iothub-app-";

/// One API group of the device API: the operation a request asks for, and what applying it
/// for the proven device answers.
pub(super) trait DeviceGroup {
    /// What a route of the group does, with ids borrowed from the path.
    type Operation<'p>;

    /// The operation; `None` when no route of the group matches. `fixed` is the path
    /// lower-cased (to match), `segments` as sent (the ids).
    fn parse<'p>(
        req: &Request<'_>,
        fixed: &[&str],
        segments: &[&'p str],
    ) -> Option<Self::Operation<'p>>;

    /// Applies an admitted operation for `identity`, the device the path names. (Written
    /// with one lifetime and `Send` spelled out: with `async fn` rustc cannot prove the
    /// connection task `Send`, rust-lang/rust#100013.)
    fn apply<'a>(
        hub: &'a Hub,
        identity: DeviceIdentity,
        req: &'a Request<'a>,
        operation: Self::Operation<'a>,
    ) -> impl Future<Output = Result<Reply, HubError>> + Send + 'a;

    /// The fault operation (docs/faults.md) an operation of the group is, if faults apply to
    /// it over HTTPS.
    fn fault_operation(_operation: &Self::Operation<'_>) -> Option<FaultOperation> {
        None
    }
}

/// The checks on the head (route, api-version, credential), before the body is read.
pub(super) fn admit<G: DeviceGroup>(
    ctx: &HttpContext,
    req: &Request<'_>,
    fixed: &[&str],
    segments: &[&str],
) -> Result<(), Refusal> {
    admitted(ctx, req, segments, G::parse(req, fixed, segments)).map(drop)
}

/// Answers a request of group `G` once its body is read: the checks again, then the operation.
pub(super) async fn handle<G: DeviceGroup>(
    ctx: &HttpContext,
    req: &Request<'_>,
    fixed: &[&str],
    segments: &[&str],
) -> Reply {
    match admitted(ctx, req, segments, G::parse(req, fixed, segments)) {
        Ok(Admitted {
            hub,
            identity,
            operation,
        }) => {
            // An injected fault acts before the operation (refuse, drop, stall: nothing is
            // stored) or after it was stored and answered (delay, drop after the answer).
            let fault =
                G::fault_operation(&operation).and_then(|op| hub.fault(op, identity.device_id()));
            let operation = async {
                G::apply(hub, identity, req, operation)
                    .await
                    .unwrap_or_else(|e| reply::hub_error(&e))
            };
            super::faults::around(ctx, super::faults::Service::Hub, fault, operation).await
        }
        Err(refusal) => *refusal,
    }
}

/// What the checks on the head found: the hub, the proven device and the operation.
struct Admitted<'c, Op> {
    hub: &'c Hub,
    identity: DeviceIdentity,
    operation: Op,
}

/// The checks on the head, in this order: the route (`operation` is what the group's parser
/// found, `None` for no route), `api-version`, then the device's credential. The router makes
/// them before the body is read; the group's handler makes them again.
fn admitted<'c, Op>(
    ctx: &'c HttpContext,
    req: &Request<'_>,
    segments: &[&str],
    operation: Option<Op>,
) -> Result<Admitted<'c, Op>, Refusal> {
    let Some(operation) = operation else {
        return Err(Box::new(no_route(req, segments)));
    };
    if req.query_value("api-version").is_none() {
        return Err(Box::new(reply::hub_error(
            &HubError::invalid_protocol_version(),
        )));
    }
    let device_id = segments.get(1).copied().unwrap_or_default();
    // `/devices/{id}/modules/{moduleId}/…`: the module proves itself (file upload).
    let module_id = segments
        .get(2)
        .filter(|s| s.eq_ignore_ascii_case("modules"))
        .and(segments.get(3).copied());
    let (hub, identity) =
        authenticate(ctx, req, device_id, module_id).map_err(|e| Box::new(reply::hub_error(&e)))?;
    Ok(Admitted {
        hub,
        identity,
        operation,
    })
}

/// The hub named by `Host` (or the only one) and the device (or module) proven for the path's
/// ids. The SAS `sr` or certificate must match that identity, so a device cannot act for
/// another.
fn authenticate<'c>(
    ctx: &'c HttpContext,
    req: &Request<'_>,
    device_id: &str,
    module_id: Option<&str>,
) -> Result<(&'c Hub, DeviceIdentity), HubError> {
    let hub = ctx.hubs.for_host(req.host())?;
    match hub.authenticate_device(device_id, module_id, req.credential(), SystemTime::now()) {
        Ok(identity) => Ok((hub, identity)),
        Err(AuthError::DeviceDisabled(_)) => Err(HubError::device_disabled(device_id)),
        Err(e) => {
            tracing::warn!(reason = %e, device_id, "hub device HTTPS request refused");
            Err(HubError::unauthorized())
        }
    }
}
