//! Maps method + path to a handler. Fixed path segments match case-insensitively (the Node
//! service SDK writes `/enrollmentgroups/…` for one call); ids arrive percent-decoded. Every
//! DPS route requires `api-version`, and accepts any the SDKs send.

use std::net::SocketAddr;

use hyper::Method;
use hyper::body::Incoming;
use rustls_pki_types::CertificateDer;

use super::reply::{self, Reply};
use super::request::Request;
use super::{HttpContext, dps_device, dps_service, hub_device, hub_service, websocket};
use crate::dps::error::DpsError;

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
    let req = match Request::read(req, certificates).await {
        Ok(req) => req,
        Err(reason) => return reply::dps_error(&DpsError::bad_request(reason)),
    };
    let reply = route(ctx, &req).await;
    tracing::debug!(%remote, method = %req.method, path = %req.segments.join("/"), status = reply.status().as_u16(), "HTTPS request");
    reply
}

async fn route(ctx: &HttpContext, req: &Request<'_>) -> Reply {
    let segments: Vec<&str> = req.segments.iter().map(String::as_str).collect();
    let lower: Vec<String> = segments.iter().map(|s| s.to_ascii_lowercase()).collect();
    let fixed: Vec<&str> = lower.iter().map(String::as_str).collect();
    let is_dps_route = matches!(
        fixed.first(),
        Some(&"enrollments" | &"enrollmentgroups" | &"registrations")
    ) || fixed.get(1) == Some(&"registrations");
    if is_dps_route && req.query_value("api-version").is_none() {
        return reply::dps_error(&DpsError::bad_request(
            "The api-version query parameter is required (for example ?api-version=2021-10-01).",
        ));
    }
    let method = &req.method;
    match (method, fixed.as_slice()) {
        // DPS device API: /{idScope}/registrations/{registrationId}/…
        (&Method::PUT, [_, "registrations", _, "register"]) => {
            dps_device::register(ctx, req, segments[0], segments[2])
        }
        (&Method::GET, [_, "registrations", _, "operations", _]) => {
            dps_device::operation_status(ctx, req, segments[0], segments[2], segments[4])
        }
        (&Method::POST, [scope, "registrations", _]) if *scope != "registrations" => {
            dps_device::status_lookup(ctx, req, segments[0], segments[2])
        }
        // IoT Hub device API (before the service API, which also starts with `devices`).
        (_, ["devices", _, "messages", ..]) => hub_device::handle(ctx, req, &fixed, &segments),
        // IoT Hub service API.
        (_, ["twins" | "devices", ..] | ["messages", "servicebound", "feedback", ..]) => {
            hub_service::handle(ctx, req, &fixed, &segments).await
        }
        // DPS service API.
        (_, ["enrollments" | "enrollmentgroups" | "registrations", ..]) => {
            dps_service::handle(ctx, req, &fixed, &segments)
        }
        _ => reply::dps_error(&DpsError::new(
            404000,
            format!("No route for {method} /{}", segments.join("/")),
        )),
    }
}
