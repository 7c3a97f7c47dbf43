//! IoT Hub device HTTPS API (protocol.md §6): what every device route shares. The routes
//! live one API group per file — `hub_device_telemetry` (device-to-cloud messages) and
//! `hub_device_c2d` (cloud-to-device receive and settlement) — each parsing its operation from
//! method and path and applying it to the hub.
//!
//! Every route needs `api-version`; the hub is the one named by the `Host` header; the device
//! proves itself with a device SAS token or its TLS client certificate, for the device the
//! path names. This module and its groups only map headers and bodies; the hub applies the
//! rules (limits, locks).

use std::time::SystemTime;

use super::HttpContext;
use super::hub_service::no_route;
use super::reply::{self, Refusal};
use super::request::Request;
use crate::auth::AuthError;
use crate::hub::error::HubError;
use crate::hub::{DeviceIdentity, Hub};

/// Prefix of application properties in headers (and in batch property maps).
pub(super) const APP_PREFIX: &str = "iothub-app-";

/// What the checks on the head found: the hub, the proven device and the operation.
pub(super) struct Admitted<'c, Op> {
    pub hub: &'c Hub,
    pub identity: DeviceIdentity,
    pub operation: Op,
}

/// The checks on the head, in this order: the route (`operation` is what the group's parser
/// found, `None` for no route), `api-version`, then the device's credential. The router makes
/// them before the body is read; the group's handler makes them again.
pub(super) fn admitted<'c, Op>(
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
    let (hub, identity) =
        authenticate(ctx, req, device_id).map_err(|e| Box::new(reply::hub_error(&e)))?;
    Ok(Admitted {
        hub,
        identity,
        operation,
    })
}

/// The hub named by `Host` (or the only one) and the device proven for the path's id. The
/// SAS `sr` or certificate must match that device, so a device cannot act for another.
fn authenticate<'c>(
    ctx: &'c HttpContext,
    req: &Request<'_>,
    device_id: &str,
) -> Result<(&'c Hub, DeviceIdentity), HubError> {
    let hub = ctx.hubs.for_host(req.host())?;
    match hub.authenticate_device(device_id, None, req.credential(), SystemTime::now()) {
        Ok(identity) => Ok((hub, identity)),
        Err(AuthError::DeviceDisabled(_)) => Err(HubError::device_disabled(device_id)),
        Err(e) => {
            tracing::warn!(reason = %e, device_id, "hub device HTTPS request refused");
            Err(HubError::unauthorized())
        }
    }
}
