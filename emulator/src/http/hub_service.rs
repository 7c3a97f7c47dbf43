//! IoT Hub service REST API (protocol.md §9): device twins and direct methods for now.
//! The hub is the one named by the `Host` header; callers authenticate with a hub
//! shared-access-policy token granting ServiceConnect (Azure's samples use the `service`
//! policy for both).

use std::time::{Duration, SystemTime};

use hyper::Method;
use serde::Deserialize;
use serde_json::Value;

use super::HttpContext;
use super::reply::{self, Reply};
use super::request::Request;
use crate::auth;
use crate::hub::Hub;
use crate::hub::error::HubError;

pub(super) async fn handle(
    ctx: &HttpContext,
    req: &Request<'_>,
    fixed: &[&str],
    segments: &[&str],
) -> Reply {
    let host = req.header("host").unwrap_or("");
    let host = host
        .rsplit_once(':')
        .filter(|(_, p)| p.chars().all(|c| c.is_ascii_digit()))
        .map_or(host, |(h, _)| h);
    let Some(hub) = ctx
        .hubs
        .get(host)
        .or_else(|| (ctx.hubs.all().len() == 1).then(|| &ctx.hubs.all()[0]))
    else {
        return reply::hub_error(&HubError::hub_not_found(host));
    };
    if let Err(e) = auth::authenticate_service(
        hub.policies(),
        hub.host_name(),
        req.header("authorization"),
        "ServiceConnect",
        SystemTime::now(),
    ) {
        tracing::warn!(reason = %e, "hub service request refused");
        return reply::hub_error(&HubError::unauthorized());
    }
    let result = match (&req.method, fixed) {
        (&Method::GET, ["twins", _]) => twin_view(hub, segments[1]),
        (&Method::PATCH, ["twins", _]) => update_twin(hub, req, segments[1], false),
        (&Method::PUT, ["twins", _]) => update_twin(hub, req, segments[1], true),
        (&Method::POST, ["twins", _, "methods"]) => invoke_method(hub, req, segments[1]).await,
        _ => Err(HubError::not_found_route(&format!(
            "{} /{}",
            req.method,
            segments.join("/")
        ))),
    };
    result.unwrap_or_else(|e| reply::hub_error(&e))
}

fn twin_view(hub: &Hub, device_id: &str) -> Result<Reply, HubError> {
    let device = hub
        .device(device_id)
        .ok_or_else(|| HubError::device_not_found(device_id))?;
    let status = serde_json::to_value(device.status).unwrap_or_default();
    let view = device.twin.service_view(
        device_id,
        status.as_str().unwrap_or("enabled"),
        hub.connections().is_connected(device_id),
    );
    Ok(reply::json(200, &view))
}

fn update_twin(
    hub: &Hub,
    req: &Request<'_>,
    device_id: &str,
    replace: bool,
) -> Result<Reply, HubError> {
    let body: Value = serde_json::from_slice(&req.body)
        .map_err(|e| HubError::argument_invalid(format!("the twin is not valid JSON: {e}")))?;
    let view = hub.update_twin(device_id, &body, req.if_match(), replace)?;
    Ok(reply::json(200, &view))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MethodInvocation {
    method_name: String,
    #[serde(default)]
    payload: Value,
    response_timeout_in_seconds: Option<u64>,
    connect_timeout_in_seconds: Option<u64>,
}

/// `{"status": <device's status>, "payload": <device's JSON>}`.
async fn invoke_method(hub: &Hub, req: &Request<'_>, device_id: &str) -> Result<Reply, HubError> {
    let call: MethodInvocation = serde_json::from_slice(&req.body)
        .map_err(|e| HubError::argument_invalid(format!("invalid method invocation: {e}")))?;
    let response = hub
        .invoke_method(
            device_id,
            &call.method_name,
            call.payload,
            Duration::from_secs(call.response_timeout_in_seconds.unwrap_or(30).clamp(5, 300)),
            Duration::from_secs(call.connect_timeout_in_seconds.unwrap_or(0).min(300)),
        )
        .await?;
    Ok(reply::json(
        200,
        &serde_json::json!({ "status": response.status, "payload": response.payload }),
    ))
}
