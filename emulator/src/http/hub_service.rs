//! IoT Hub service REST API (protocol.md §9): the device and module registry, device and
//! module twins, direct methods, C2D queue purge and C2D feedback. The hub is the one named by the `Host` header; callers authenticate with a hub
//! shared-access-policy token whose policy grants the route's right: RegistryRead to read
//! devices, RegistryWrite to change them, ServiceConnect for twins and methods (Azure's
//! samples use the `service` policy for both).

use std::time::{Duration, SystemTime};

use hyper::Method;
use serde::Deserialize;
use serde_json::Value;

use super::HttpContext;
use super::reply::{self, Refusal, Reply};
use super::request::Request;
use crate::auth;
use crate::hub::error::HubError;
use crate::hub::module::ModuleSpec;
use crate::hub::query::{self as twin_query, Collection};
use crate::hub::registry::DeviceSpec;
use crate::hub::{Hub, IdentityRef};
use crate::pending::Pending;

/// What a route does; ids borrowed from the path.
enum Operation<'p> {
    GetDevice(&'p str),
    PutDevice(&'p str),
    DeleteDevice(&'p str),
    ListDevices,
    ListModules(&'p str),
    GetModule(IdentityRef<'p>),
    PutModule(IdentityRef<'p>),
    DeleteModule(IdentityRef<'p>),
    GetTwin(IdentityRef<'p>),
    UpdateTwin { who: IdentityRef<'p>, replace: bool },
    InvokeMethod(IdentityRef<'p>),
    PurgeC2d(&'p str),
    ReceiveFeedback,
    CompleteFeedback(&'p str),
    AbandonFeedback(&'p str),
    QueryTwins,
}

/// The checks on the head (route, hub, policy token and right), run by the router before
/// the body is read; [`handle`] makes them again.
pub(super) fn admit(
    ctx: &HttpContext,
    req: &Request<'_>,
    fixed: &[&str],
    segments: &[&str],
) -> Result<(), Refusal> {
    admitted(ctx, req, fixed, segments).map(drop)
}

/// The operation a request asks for and the hub it is for, once the caller's policy token
/// is proven to grant it.
fn admitted<'c, 'p>(
    ctx: &'c HttpContext,
    req: &Request<'_>,
    fixed: &[&str],
    segments: &[&'p str],
) -> Result<(&'c Hub, Operation<'p>), Refusal> {
    use Operation::*;
    // `/…/{device}/modules/{module}…` names a module, `/…/{device}…` the device.
    let module = IdentityRef::module(
        segments.get(1).copied().unwrap_or_default(),
        segments.get(3).copied().unwrap_or_default(),
    );
    let twin_owner = match fixed.get(2) {
        Some(&"modules") => module,
        _ => IdentityRef::device(segments.get(1).copied().unwrap_or_default()),
    };
    let (right, operation) = match (&req.method, fixed) {
        (&Method::POST, ["devices", "query"]) => ("ServiceConnect", QueryTwins),
        (&Method::GET, ["devices"]) => ("RegistryRead", ListDevices),
        (&Method::GET, ["devices", _]) => ("RegistryRead", GetDevice(segments[1])),
        (&Method::PUT, ["devices", _]) => ("RegistryWrite", PutDevice(segments[1])),
        (&Method::DELETE, ["devices", _]) => ("RegistryWrite", DeleteDevice(segments[1])),
        (&Method::DELETE, ["devices", _, "commands"]) => ("ServiceConnect", PurgeC2d(segments[1])),
        (&Method::GET, ["messages", "servicebound", "feedback"]) => {
            ("ServiceConnect", ReceiveFeedback)
        }
        (&Method::DELETE, ["messages", "servicebound", "feedback", _]) => (
            "ServiceConnect",
            CompleteFeedback(segments[3].trim_matches('"')),
        ),
        (&Method::POST, ["messages", "servicebound", "feedback", _, "abandon"]) => (
            "ServiceConnect",
            AbandonFeedback(segments[3].trim_matches('"')),
        ),
        (&Method::GET, ["devices", _, "modules"]) => ("RegistryRead", ListModules(segments[1])),
        (&Method::GET, ["devices", _, "modules", _]) => ("RegistryRead", GetModule(module)),
        (&Method::PUT, ["devices", _, "modules", _]) => ("RegistryWrite", PutModule(module)),
        (&Method::DELETE, ["devices", _, "modules", _]) => ("RegistryWrite", DeleteModule(module)),
        (&Method::GET, ["twins", _] | ["twins", _, "modules", _]) => {
            ("ServiceConnect", GetTwin(twin_owner))
        }
        (&Method::PATCH, ["twins", _] | ["twins", _, "modules", _]) => (
            "ServiceConnect",
            UpdateTwin {
                who: twin_owner,
                replace: false,
            },
        ),
        (&Method::PUT, ["twins", _] | ["twins", _, "modules", _]) => (
            "ServiceConnect",
            UpdateTwin {
                who: twin_owner,
                replace: true,
            },
        ),
        (&Method::POST, ["twins", _, "methods"] | ["twins", _, "modules", _, "methods"]) => {
            ("ServiceConnect", InvokeMethod(twin_owner))
        }
        _ => {
            return Err(Box::new(reply::hub_error(&HubError::not_found_route(
                &format!("{} /{}", req.method, segments.join("/")),
            ))));
        }
    };
    let hub = ctx
        .hubs
        .for_host(req.header("host").unwrap_or(""))
        .map_err(|e| Box::new(reply::hub_error(&e)))?;
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
        return Err(Box::new(reply::hub_error(&HubError::unauthorized())));
    }
    Ok((hub, operation))
}

pub(super) async fn handle(
    ctx: &HttpContext,
    req: &Request<'_>,
    fixed: &[&str],
    segments: &[&str],
) -> Reply {
    use Operation::*;
    let (hub, operation) = match admitted(ctx, req, fixed, segments) {
        Ok(admitted) => admitted,
        Err(refusal) => return *refusal,
    };
    let result = match operation {
        ListDevices => list_devices(hub, req),
        GetDevice(id) => hub
            .get_device(id)
            .map(|d| reply::json(200, &hub.device_json(&d))),
        PutDevice(id) => put_device(hub, req, id).await,
        DeleteDevice(id) => stored(hub.delete_device(id, req.if_match()))
            .await
            .map(|()| reply::empty(204)),
        ListModules(device_id) => hub.get_device(device_id).map(|_| {
            let modules: Vec<Value> = hub
                .list_modules(device_id)
                .iter()
                .map(|m| hub.module_json(m))
                .collect();
            reply::json(200, &modules)
        }),
        GetModule(who) => hub
            .get_module(who.device_id, who.module_id.unwrap_or_default())
            .map(|m| reply::json(200, &hub.module_json(&m))),
        PutModule(who) => put_module(hub, req, who).await,
        DeleteModule(who) => stored(hub.delete_module(
            who.device_id,
            who.module_id.unwrap_or_default(),
            req.if_match(),
        ))
        .await
        .map(|()| reply::empty(204)),
        GetTwin(who) => hub.twin_view(who).map(|view| reply::json(200, &view)),
        UpdateTwin { who, replace } => update_twin(hub, req, who, replace).await,
        InvokeMethod(who) => invoke_method(hub, req, who).await,
        PurgeC2d(device_id) => stored(hub.purge_c2d(device_id)).await.map(|purged| {
            reply::json(
                200,
                &serde_json::json!({
                    "deviceId": device_id,
                    "moduleId": null,
                    "totalMessagesPurged": purged,
                }),
            )
        }),
        ReceiveFeedback => Ok(receive_feedback(hub)),
        CompleteFeedback(lock) => hub
            .complete_feedback(lock, SystemTime::now())
            .map(|()| reply::empty(204)),
        AbandonFeedback(lock) => hub
            .abandon_feedback(lock, SystemTime::now())
            .map(|()| reply::empty(204)),
        QueryTwins => query_twins(hub, req),
    };
    result.unwrap_or_else(|e| reply::hub_error(&e))
}

/// A write's value once it is durable; a store failure becomes the 500001 answer.
async fn stored<T>(write: Result<Pending<'_, T>, HubError>) -> Result<T, HubError> {
    Ok(write?.durable().await?)
}

/// Without If-Match the caller creates; with it (an ETag or `*`) it updates (§9.1, §9.4).
async fn put_device(hub: &Hub, req: &Request<'_>, device_id: &str) -> Result<Reply, HubError> {
    let spec = DeviceSpec::from_json(device_id, &req.body)?;
    let device = match req.if_match() {
        None => stored(hub.create_device(spec)).await?,
        Some(if_match) => stored(hub.update_device(device_id, spec, if_match)).await?,
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

/// The unread feedback records as one batch (200, lock token in `ETag` as for device C2D
/// receives), or 204 when there are none.
fn receive_feedback(hub: &Hub) -> Reply {
    let Some(batch) = hub.receive_feedback(SystemTime::now()) else {
        return reply::empty(204);
    };
    let mut response = reply::json(200, &batch.body());
    for (name, value) in [
        ("etag", format!("\"{}\"", batch.lock_token)),
        ("iothub-messageid", batch.message_id.clone()),
        (
            "iothub-enqueuedtime",
            crate::timefmt::utc_timestamp(batch.enqueued),
        ),
        ("iothub-userid", hub.host_name().to_owned()),
    ] {
        response = reply::with_header(response, name, &value);
    }
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/vnd.microsoft.iothub.feedback.json"),
    );
    response
}

/// Without If-Match the caller creates the module (Azure answers 201), with it updates (200).
async fn put_module(hub: &Hub, req: &Request<'_>, who: IdentityRef<'_>) -> Result<Reply, HubError> {
    let module_id = who.module_id.unwrap_or_default();
    let spec = ModuleSpec::from_json(who.device_id, module_id, &req.body)?;
    let (status, module) = match req.if_match() {
        None => (201, stored(hub.create_module(spec)).await?),
        Some(if_match) => (200, stored(hub.update_module(spec, if_match)).await?),
    };
    Ok(reply::json(status, &hub.module_json(&module)))
}

async fn update_twin(
    hub: &Hub,
    req: &Request<'_>,
    who: IdentityRef<'_>,
    replace: bool,
) -> Result<Reply, HubError> {
    let body: Value = serde_json::from_slice(&req.body)
        .map_err(|e| HubError::argument_invalid(format!("the twin is not valid JSON: {e}")))?;
    let view = stored(hub.update_twin_of(who, &body, req.if_match(), replace)).await?;
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
async fn invoke_method(
    hub: &Hub,
    req: &Request<'_>,
    who: IdentityRef<'_>,
) -> Result<Reply, HubError> {
    let call: MethodInvocation = serde_json::from_slice(&req.body)
        .map_err(|e| HubError::argument_invalid(format!("invalid method invocation: {e}")))?;
    let response = hub
        .invoke_method_on(
            who,
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
        Collection::Modules => hub.module_twin_documents(),
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
