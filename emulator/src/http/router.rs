//! Maps method + path to a handler. Fixed path segments match case-insensitively (the Node
//! service SDK writes `/enrollmentgroups/…` for one call); ids arrive percent-decoded. Every
//! DPS route requires `api-version`, and accepts any the SDKs send.
//!
//! A request goes: head parsed → the route's checks on the head (api-version,
//! authentication: each handler module's `admit`) → body read (size limit, timeout) → the
//! handler. So an unauthenticated client is answered 401 without its body being read, and a
//! body too large is answered 413 before it is read.

use std::net::SocketAddr;

use hyper::Method;
use hyper::body::Incoming;
use rustls_pki_types::CertificateDer;

use super::hub_bulk::Bulk;
use super::hub_configurations::Configurations;
use super::hub_device_c2d::C2dReceive;
use super::hub_device_files::Files;
use super::hub_device_telemetry::Telemetry;
use super::hub_digital_twins::DigitalTwins;
use super::hub_jobs::Jobs;
use super::hub_messaging::Messaging;
use super::hub_methods::Methods;
use super::hub_modules::Modules;
use super::hub_query::Query;
use super::hub_registry::Registry;
use super::hub_statistics::Statistics;
use super::hub_twins::Twins;
use super::reply::{self, Refusal, Reply};
use super::request::BodyError;
use super::request::Request;
use super::{
    HttpContext, arm_certificates, blob, dps_device, dps_service, hub_device, hub_service,
    websocket,
};
use crate::dps::error::DpsError;
use crate::hub::error::HubError;

pub(super) async fn handle(
    ctx: &HttpContext,
    req: hyper::Request<Incoming>,
    certificates: &[CertificateDer<'static>],
    remote: SocketAddr,
) -> Reply {
    // Checked on the raw request: an upgrade keeps the connection, so no body is read.
    if websocket::is_websocket_path(req.uri().path()) {
        return websocket::upgrade(ctx, req, certificates, remote);
    }
    let (parts, body) = req.into_parts();
    let mut req = match Request::head(parts, certificates) {
        Ok(req) => req,
        Err(reason) => return reply::dps_error(&DpsError::bad_request(reason)),
    };
    // The built-in blob store shares the port: its containers are never a hub or DPS path.
    if blob::is_blob_request(ctx, &req.segments) {
        return blob::handle(ctx, req, body).await;
    }
    // A copy, so the request can take its body while the route's ids are borrowed.
    let path = req.segments.clone();
    let segments: Vec<&str> = path.iter().map(String::as_str).collect();
    let lower: Vec<String> = segments.iter().map(|s| s.to_ascii_lowercase()).collect();
    let fixed: Vec<&str> = lower.iter().map(String::as_str).collect();
    let target = Target::of(&req.method, &fixed);
    // Everything that needs only the head — route, api-version, credential — is checked
    // before a byte of the body is read: a caller who cannot prove itself costs nothing.
    if let Err(refusal) = admit(ctx, &req, target, &fixed, &segments) {
        tracing::debug!(%remote, method = %req.method, path = %segments.join("/"), status = refusal.status().as_u16(), "HTTPS request refused before its body");
        return *refusal;
    }
    let limits = &ctx.limits;
    if let Err(e) = req
        .read_body(body, limits.max_body_bytes, limits.body_timeout)
        .await
    {
        tracing::info!(%remote, method = %req.method, path = %segments.join("/"), error = ?e, "HTTPS request body refused");
        return body_error(target, &e);
    }
    let reply = route(ctx, &req, target, &fixed, &segments).await;
    tracing::debug!(%remote, method = %req.method, path = %segments.join("/"), status = reply.status().as_u16(), "HTTPS request");
    reply
}

/// Which API group a request is for: decided once from method and path, for the checks on
/// the head and for dispatch alike. Within its group a handler finds the operation; a path
/// under an IoT Hub API that no group serves is answered 404 in the hub's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// DPS device API: /{idScope}/registrations/{registrationId}/…
    DpsRegister,
    DpsOperationStatus,
    DpsStatusLookup,
    /// IoT Hub device API: /devices/{id}/messages/events
    HubTelemetry,
    /// IoT Hub device API: /devices/{id}/messages/deviceBound…
    HubC2d,
    /// IoT Hub device API: /devices/{id}/files[/notifications]
    HubFiles,
    /// IoT Hub service API: /devices[/{id}]
    HubRegistry,
    /// IoT Hub service API: /devices/{id}/modules…
    HubModules,
    /// IoT Hub service API: /twins/{id}[/modules/{mid}]
    HubTwins,
    /// IoT Hub service API: /twins/{id}[/modules/{mid}]/methods
    HubMethods,
    /// IoT Hub service API: /devices/{id}/commands, /messages/serviceBound/feedback…
    HubMessaging,
    /// IoT Hub service API: POST /devices/query
    HubQuery,
    /// IoT Hub service API: POST /devices (bulk registry operations)
    HubBulk,
    /// IoT Hub service API: GET /statistics/devices, /statistics/service
    HubStatistics,
    /// IoT Hub service API: /jobs/v2/{id}[/cancel], /jobs/v2/query (and import/export's /jobs…)
    HubJobs,
    /// IoT Hub service API: /configurations…, /devices/{id}/applyConfigurationContent
    HubConfigurations,
    /// IoT Hub service API: /digitaltwins/{id}[/components/{c}]/commands/{command}…
    HubDigitalTwins,
    /// A path under an IoT Hub API that no route serves.
    HubNoRoute,
    /// DPS service API.
    DpsService,
    /// DPS and hub CA certificates in the management API's shape:
    /// /subscriptions/…/providers/Microsoft.Devices/{provisioningServices|IotHubs}/{name}/certificates…
    ArmCertificates,
    NoRoute,
}

impl Target {
    fn of(method: &Method, fixed: &[&str]) -> Target {
        match (method, fixed) {
            (&Method::PUT, [_, "registrations", _, "register"]) => Target::DpsRegister,
            (&Method::GET, [_, "registrations", _, "operations", _]) => Target::DpsOperationStatus,
            (&Method::POST, [scope, "registrations", _]) if *scope != "registrations" => {
                Target::DpsStatusLookup
            }
            // The device API before the service API, which also starts with `devices`.
            (_, ["devices", _, "messages", "events"]) => Target::HubTelemetry,
            (_, ["devices", _, "messages", "devicebound", ..]) => Target::HubC2d,
            (_, ["devices", _, "messages", ..]) => Target::HubNoRoute,
            (
                _,
                ["devices", _, "files"]
                | ["devices", _, "files", "notifications"]
                | ["devices", _, "files", "notifications", _]
                | ["devices", _, "modules", _, "files"]
                | ["devices", _, "modules", _, "files", "notifications"]
                | ["devices", _, "modules", _, "files", "notifications", _],
            ) => Target::HubFiles,
            // `devices/query` is a device id for every method but POST.
            (&Method::POST, ["devices", "query"]) => Target::HubQuery,
            (&Method::POST, ["devices"]) => Target::HubBulk,
            (_, ["devices"] | ["devices", _]) => Target::HubRegistry,
            (_, ["devices", _, "modules", ..]) => Target::HubModules,
            (_, ["devices", _, "commands"] | ["messages", "servicebound", "feedback", ..]) => {
                Target::HubMessaging
            }
            (_, ["twins", _, "methods"] | ["twins", _, "modules", _, "methods"]) => {
                Target::HubMethods
            }
            (_, ["twins", ..]) => Target::HubTwins,
            (_, ["digitaltwins", ..]) => Target::HubDigitalTwins,
            (_, ["statistics", ..]) => Target::HubStatistics,
            (_, ["jobs", ..]) => Target::HubJobs,
            (_, ["configurations", ..] | ["devices", _, "applyconfigurationcontent"]) => {
                Target::HubConfigurations
            }
            (_, ["devices", ..]) => Target::HubNoRoute,
            (_, ["enrollments" | "enrollmentgroups" | "registrations", ..]) => Target::DpsService,
            _ if arm_certificates::is_certificate_path(fixed) => Target::ArmCertificates,
            _ => Target::NoRoute,
        }
    }

    fn is_dps(self) -> bool {
        matches!(
            self,
            Target::DpsRegister
                | Target::DpsOperationStatus
                | Target::DpsStatusLookup
                | Target::DpsService
        )
    }
}

/// The checks on the head, in the order the handlers make them; `Err` is the reply.
fn admit(
    ctx: &HttpContext,
    req: &Request<'_>,
    target: Target,
    fixed: &[&str],
    segments: &[&str],
) -> Result<(), Refusal> {
    if target.is_dps() && req.query_value("api-version").is_none() {
        return Err(Box::new(reply::dps_error(&DpsError::bad_request(
            "The api-version query parameter is required (for example ?api-version=2021-10-01).",
        ))));
    }
    match target {
        Target::DpsRegister | Target::DpsOperationStatus | Target::DpsStatusLookup => {
            dps_device::admit(ctx, req, segments[0], segments[2])
        }
        Target::HubTelemetry => hub_device::admit::<Telemetry>(ctx, req, fixed, segments),
        Target::HubC2d => hub_device::admit::<C2dReceive>(ctx, req, fixed, segments),
        Target::HubFiles => hub_device::admit::<Files>(ctx, req, fixed, segments),
        Target::HubRegistry => hub_service::admit::<Registry>(ctx, req, fixed, segments),
        Target::HubModules => hub_service::admit::<Modules>(ctx, req, fixed, segments),
        Target::HubTwins => hub_service::admit::<Twins>(ctx, req, fixed, segments),
        Target::HubMethods => hub_service::admit::<Methods>(ctx, req, fixed, segments),
        Target::HubMessaging => hub_service::admit::<Messaging>(ctx, req, fixed, segments),
        Target::HubQuery => hub_service::admit::<Query>(ctx, req, fixed, segments),
        Target::HubDigitalTwins => hub_service::admit::<DigitalTwins>(ctx, req, fixed, segments),
        Target::HubBulk => hub_service::admit::<Bulk>(ctx, req, fixed, segments),
        Target::HubStatistics => hub_service::admit::<Statistics>(ctx, req, fixed, segments),
        Target::HubJobs => hub_service::admit::<Jobs>(ctx, req, fixed, segments),
        Target::HubConfigurations => {
            hub_service::admit::<Configurations>(ctx, req, fixed, segments)
        }
        Target::HubNoRoute => Err(Box::new(hub_service::no_route(req, segments))),
        Target::DpsService => dps_service::admit(ctx, req, fixed, segments),
        Target::ArmCertificates => arm_certificates::admit(ctx, req, fixed, segments),
        Target::NoRoute => Err(Box::new(no_route(req, segments))),
    }
}

/// A body that was not read, in the shape of the API it was for: 413 (413001
/// MessageTooLarge), 408 (408000, chosen: Azure's code is not known) or 400.
fn body_error(target: Target, error: &BodyError) -> Reply {
    let (code, name, message) = match error {
        BodyError::TooLarge {
            limit,
            declared: Some(size),
        } => (
            413001,
            "MessageTooLarge",
            format!("Request body size {size} bytes exceeds the limit of {limit} bytes"),
        ),
        BodyError::TooLarge {
            limit,
            declared: None,
        } => (
            413001,
            "MessageTooLarge",
            format!("Request body exceeds the limit of {limit} bytes"),
        ),
        BodyError::TimedOut { timeout } => (
            408000,
            "RequestTimeout",
            format!(
                "The request body did not arrive within {} seconds.",
                timeout.as_secs()
            ),
        ),
        BodyError::Unreadable(reason) => (
            400000,
            "ArgumentInvalid",
            format!("The request body could not be read: {reason}"),
        ),
    };
    // Nothing more is read from a connection whose body was refused: it is closed.
    let reply = if target.is_dps() {
        reply::dps_error(&match code {
            413001 => DpsError::payload_too_large(message),
            408000 => DpsError::request_timeout(message),
            _ => DpsError::unreadable_request(message),
        })
    } else {
        reply::hub_error(&HubError {
            code,
            name,
            message,
            retry_after: None,
        })
    };
    reply::with_header(reply, "connection", "close")
}

fn no_route(req: &Request<'_>, segments: &[&str]) -> Reply {
    reply::dps_error(&DpsError::no_route(format!(
        "No route for {} /{}",
        req.method,
        segments.join("/")
    )))
}

async fn route(
    ctx: &HttpContext,
    req: &Request<'_>,
    target: Target,
    fixed: &[&str],
    segments: &[&str],
) -> Reply {
    match target {
        Target::DpsRegister => dps_device::register(ctx, req, segments[0], segments[2]),
        Target::DpsOperationStatus => {
            dps_device::operation_status(ctx, req, segments[0], segments[2], segments[4]).await
        }
        Target::DpsStatusLookup => dps_device::status_lookup(ctx, req, segments[0], segments[2]),
        Target::HubTelemetry => hub_device::handle::<Telemetry>(ctx, req, fixed, segments).await,
        Target::HubC2d => hub_device::handle::<C2dReceive>(ctx, req, fixed, segments).await,
        Target::HubFiles => hub_device::handle::<Files>(ctx, req, fixed, segments).await,
        Target::HubRegistry => hub_service::handle::<Registry>(ctx, req, fixed, segments).await,
        Target::HubModules => hub_service::handle::<Modules>(ctx, req, fixed, segments).await,
        Target::HubTwins => hub_service::handle::<Twins>(ctx, req, fixed, segments).await,
        Target::HubMethods => hub_service::handle::<Methods>(ctx, req, fixed, segments).await,
        Target::HubMessaging => hub_service::handle::<Messaging>(ctx, req, fixed, segments).await,
        Target::HubQuery => hub_service::handle::<Query>(ctx, req, fixed, segments).await,
        Target::HubDigitalTwins => {
            hub_service::handle::<DigitalTwins>(ctx, req, fixed, segments).await
        }
        Target::HubBulk => hub_service::handle::<Bulk>(ctx, req, fixed, segments).await,
        Target::HubStatistics => hub_service::handle::<Statistics>(ctx, req, fixed, segments).await,
        Target::HubJobs => hub_service::handle::<Jobs>(ctx, req, fixed, segments).await,
        Target::HubConfigurations => {
            hub_service::handle::<Configurations>(ctx, req, fixed, segments).await
        }
        Target::HubNoRoute => hub_service::no_route(req, segments),
        Target::DpsService => dps_service::handle(ctx, req, fixed, segments).await,
        Target::ArmCertificates => arm_certificates::handle(ctx, req, fixed, segments).await,
        Target::NoRoute => no_route(req, segments),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_path_goes_to_its_api_group() {
        use Target::*;
        for (method, path, target) in [
            (Method::PUT, "scope/registrations/r/register", DpsRegister),
            (
                Method::GET,
                "scope/registrations/r/operations/o",
                DpsOperationStatus,
            ),
            (Method::POST, "scope/registrations/r", DpsStatusLookup),
            (Method::POST, "devices/d/messages/events", HubTelemetry),
            (Method::GET, "devices/d/messages/events", HubTelemetry),
            (Method::GET, "devices/d/messages/devicebound", HubC2d),
            (
                Method::POST,
                "devices/d/messages/devicebound/t/abandon",
                HubC2d,
            ),
            (Method::GET, "devices/d/messages/other", HubNoRoute),
            (Method::GET, "devices/d/messages/events/x", HubNoRoute),
            (Method::POST, "devices/query", HubQuery),
            (Method::GET, "devices/query", HubRegistry),
            (Method::GET, "devices", HubRegistry),
            (Method::POST, "devices", HubBulk),
            (Method::GET, "statistics/devices", HubStatistics),
            (Method::PATCH, "devices/d", HubRegistry),
            (Method::GET, "devices/d/modules", HubModules),
            (Method::DELETE, "devices/d/modules/m", HubModules),
            (Method::DELETE, "devices/d/commands", HubMessaging),
            (Method::GET, "messages/servicebound/feedback", HubMessaging),
            (Method::GET, "messages/servicebound", NoRoute),
            (Method::POST, "twins/d/methods", HubMethods),
            (Method::POST, "twins/d/modules/m/methods", HubMethods),
            (Method::GET, "twins/d", HubTwins),
            (Method::GET, "twins/d/methods/x", HubTwins),
            (Method::GET, "digitaltwins/d", HubDigitalTwins),
            (
                Method::POST,
                "digitaltwins/d/components/c/commands/x",
                HubDigitalTwins,
            ),
            (Method::GET, "devices/d/commands/x", HubNoRoute),
            (Method::GET, "enrollmentgroups/g", DpsService),
            (Method::GET, "registrations/r", DpsService),
            (Method::GET, "nothing/here", NoRoute),
        ] {
            let fixed: Vec<&str> = path.split('/').collect();
            assert_eq!(Target::of(&method, &fixed), target, "{method} {path}");
        }
    }
}
