//! IoT Hub service REST API (protocol.md §9): the device registry, device twins and direct
//! methods. The hub is the one named by the `Host` header; callers authenticate with a hub
//! shared-access-policy token whose policy grants the route's right: RegistryRead to read
//! devices, RegistryWrite to change them, ServiceConnect for twins and methods (Azure's
//! samples use the `service` policy for both).

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
use crate::hub::query::{self as twin_query, Collection};
use crate::hub::registry::DeviceSpec;

/// What a route does; ids borrowed from the path.
enum Operation<'p> {
    GetDevice(&'p str),
    PutDevice(&'p str),
    DeleteDevice(&'p str),
    ListDevices,
    GetTwin(&'p str),
    UpdateTwin { device_id: &'p str, replace: bool },
    InvokeMethod(&'p str),
    QueryTwins,
}

pub(super) async fn handle(
    ctx: &HttpContext,
    req: &Request<'_>,
    fixed: &[&str],
    segments: &[&str],
) -> Reply {
    use Operation::*;
    let (right, operation) = match (&req.method, fixed) {
        (&Method::POST, ["devices", "query"]) => ("ServiceConnect", QueryTwins),
        (&Method::GET, ["devices"]) => ("RegistryRead", ListDevices),
        (&Method::GET, ["devices", _]) => ("RegistryRead", GetDevice(segments[1])),
        (&Method::PUT, ["devices", _]) => ("RegistryWrite", PutDevice(segments[1])),
        (&Method::DELETE, ["devices", _]) => ("RegistryWrite", DeleteDevice(segments[1])),
        (&Method::GET, ["twins", _]) => ("ServiceConnect", GetTwin(segments[1])),
        (&Method::PATCH, ["twins", _]) => (
            "ServiceConnect",
            UpdateTwin {
                device_id: segments[1],
                replace: false,
            },
        ),
        (&Method::PUT, ["twins", _]) => (
            "ServiceConnect",
            UpdateTwin {
                device_id: segments[1],
                replace: true,
            },
        ),
        (&Method::POST, ["twins", _, "methods"]) => ("ServiceConnect", InvokeMethod(segments[1])),
        _ => {
            return reply::hub_error(&HubError::not_found_route(&format!(
                "{} /{}",
                req.method,
                segments.join("/")
            )));
        }
    };
    let hub = match ctx.hubs.for_host(req.header("host").unwrap_or("")) {
        Ok(hub) => hub,
        Err(e) => return reply::hub_error(&e),
    };
    let authenticate = |right| {
        auth::authenticate_service(
            hub.policies(),
            hub.host_name(),
            req.header("authorization"),
            right,
            SystemTime::now(),
        )
    };
    // Twin queries are a ServiceConnect operation in Azure's permission table; a RegistryRead
    // policy is let through too, as registry reads show the same devices.
    let authorized = authenticate(right).or_else(|e| match operation {
        QueryTwins => authenticate("RegistryRead"),
        _ => Err(e),
    });
    if let Err(e) = authorized {
        tracing::warn!(reason = %e, "hub service request refused");
        return reply::hub_error(&HubError::unauthorized());
    }
    let result = match operation {
        ListDevices => list_devices(hub, req),
        GetDevice(id) => hub
            .get_device(id)
            .map(|d| reply::json(200, &hub.device_json(&d))),
        PutDevice(id) => put_device(hub, req, id),
        DeleteDevice(id) => hub
            .delete_device(id, req.if_match())
            .map(|()| reply::empty(204)),
        GetTwin(id) => twin_view(hub, id),
        UpdateTwin { device_id, replace } => update_twin(hub, req, device_id, replace),
        InvokeMethod(id) => invoke_method(hub, req, id).await,
        QueryTwins => query_twins(hub, req),
    };
    result.unwrap_or_else(|e| reply::hub_error(&e))
}

/// Without If-Match the caller creates; with it (an ETag or `*`) it updates (§9.1, §9.4).
fn put_device(hub: &Hub, req: &Request<'_>, device_id: &str) -> Result<Reply, HubError> {
    let spec = DeviceSpec::from_json(device_id, &req.body)?;
    let device = match req.if_match() {
        None => hub.create_device(spec)?,
        Some(if_match) => hub.update_device(device_id, spec, if_match)?,
    };
    Ok(reply::json(200, &hub.device_json(&device)))
}

fn list_devices(hub: &Hub, req: &Request<'_>) -> Result<Reply, HubError> {
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

#[derive(Deserialize)]
struct QuerySpecification {
    query: String,
}

/// `POST /devices/query` (protocol.md §9.1): the hub query language (`hub::query`) over the
/// twins, paged by `x-ms-max-item-count` / `x-ms-continuation`; a query iotemu cannot run is
/// 400 ArgumentInvalid with the parser's message.
fn query_twins(hub: &Hub, req: &Request<'_>) -> Result<Reply, HubError> {
    let spec: QuerySpecification = serde_json::from_slice(&req.body).map_err(|e| {
        HubError::argument_invalid(format!("the body must be {{\"query\": \"…\"}}: {e}"))
    })?;
    let query =
        twin_query::parse(&spec.query).map_err(|e| HubError::argument_invalid(e.message))?;
    let documents = match query.collection {
        Collection::Devices => hub.twin_documents(),
        // No module identities exist yet, so there are no module twins to read.
        Collection::Modules => Vec::new(),
    };
    let max_item_count = req
        .header("x-ms-max-item-count")
        .and_then(|v| v.trim().parse().ok());
    let page = query
        .run(documents, max_item_count, req.header("x-ms-continuation"))
        .map_err(|e| HubError::argument_invalid(e.message))?;
    let mut reply = reply::with_header(
        reply::json(200, &page.items),
        "x-ms-item-type",
        page.item_type,
    );
    if let Some(token) = &page.continuation {
        reply = reply::with_header(reply, "x-ms-continuation", token);
    }
    Ok(reply)
}
