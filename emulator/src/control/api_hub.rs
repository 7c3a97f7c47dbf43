//! The portal's hub routes: devices and their modules, their twins and direct methods, and
//! cloud-to-device messages, through the operations the IoT Hub service API uses
//! (`Hub::create_device`, `Hub::update_device`, `Hub::delete_device`, `Hub::create_module`,
//! `Hub::update_module`, `Hub::delete_module`, `Hub::update_twin_of`, `Hub::invoke_method_on`,
//! `Hub::send_c2d`): the same validation, ETags and durability.

use std::collections::BTreeMap;

use bytes::Bytes;
use hyper::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::api::{ApiRequest, error_reply, hub_error, method_not_allowed};
use super::paging::Paging;
use super::reply::{Reply, json_reply};
use crate::http::hub_methods::MethodInvocation;
use crate::hub::c2d::C2dMessage;
use crate::hub::error::HubError;
use crate::hub::module::ModuleSpec;
use crate::hub::registry::DeviceSpec;
use crate::hub::{Hub, IdentityRef};
use crate::timefmt::utc_timestamp;

/// `/api/hubs/{hub}/…` with `path` the part after the hub.
pub(super) async fn route(hub: &Hub, req: &ApiRequest, path: &[&str]) -> Reply {
    if let (&Method::GET, ["devices"]) = (&req.method, path) {
        return match Paging::of(req) {
            Ok(paging) => devices(hub, &paging),
            Err(refused) => refused.reply(),
        };
    }
    let result = match (&req.method, path) {
        (&Method::GET, ["devices", id]) => hub.get_device(id).map(|d| device_json(hub, &d)),
        (&Method::PUT, ["devices", id]) => put_device(hub, req, id).await,
        (&Method::DELETE, ["devices", id]) => {
            match hub.delete_device(id, req.if_match.as_deref()) {
                Ok(pending) => pending
                    .durable()
                    .await
                    .map(|()| json!({}))
                    .map_err(Into::into),
                Err(e) => Err(e),
            }
        }
        (&Method::GET, ["devices", id, "modules"]) => Ok(Value::Array(
            hub.list_modules(id)
                .iter()
                .map(|m| hub.module_json(m))
                .collect(),
        )),
        (&Method::GET, ["devices", id, "modules", module_id]) => {
            hub.get_module(id, module_id).map(|m| hub.module_json(&m))
        }
        (&Method::PUT, ["devices", id, "modules", module_id]) => {
            put_module(hub, req, id, module_id).await
        }
        (&Method::DELETE, ["devices", id, "modules", module_id]) => {
            match hub.delete_module(id, module_id, req.if_match.as_deref()) {
                Ok(pending) => pending
                    .durable()
                    .await
                    .map(|()| json!({}))
                    .map_err(Into::into),
                Err(e) => Err(e),
            }
        }
        (&Method::GET, ["devices", id, "twin"]) => hub.twin_view(IdentityRef::device(id)),
        (&Method::GET, ["devices", id, "modules", module_id, "twin"]) => {
            hub.twin_view(IdentityRef::module(id, module_id))
        }
        (&Method::PATCH, ["devices", id, "twin"]) => {
            patch_twin(hub, req, IdentityRef::device(id)).await
        }
        (&Method::PATCH, ["devices", id, "modules", module_id, "twin"]) => {
            patch_twin(hub, req, IdentityRef::module(id, module_id)).await
        }
        (&Method::POST, ["devices", id, "methods"]) => {
            invoke(hub, req, IdentityRef::device(id)).await
        }
        (&Method::POST, ["devices", id, "modules", module_id, "methods"]) => {
            invoke(hub, req, IdentityRef::module(id, module_id)).await
        }
        (&Method::POST, ["devices", id, "messages"]) => send(hub, req, id).await,
        (&Method::GET, ["devices", id, "messages"]) => Ok(queued(hub, id)),
        (&Method::GET, ["feedback"]) => Ok(unread_feedback(hub)),
        (_, ["devices", ..] | ["feedback"]) => return method_not_allowed(),
        _ => return error_reply(StatusCode::NOT_FOUND, 404000, "no such portal API route"),
    };
    match result {
        Ok(value) => json_reply(StatusCode::OK, value),
        Err(e) => hub_error(&e),
    }
}

/// One page of the devices (by device ID; `?filter=` looks in the ID), each with its
/// connection state and when it last sent telemetry (what the portal's device list shows as
/// last activity). Only the page's devices are looked up in the telemetry log.
fn devices(hub: &Hub, paging: &Paging) -> Reply {
    paging
        .page(
            hub.devices(),
            |d| &d.device_id,
            |d| vec![d.device_id.as_str()],
        )
        .map(|d| device_json(hub, &d))
        .reply()
}

fn device_json(hub: &Hub, device: &crate::hub::device::Device) -> Value {
    let mut json = hub.device_json(device);
    let last = hub
        .telemetry()
        .messages(Some(&device.device_id))
        .last()
        .map(|m| utc_timestamp(m.enqueued_time));
    if let Some(object) = json.as_object_mut() {
        object.insert("lastActivityTime".into(), json!(last));
        object.insert(
            "moduleCount".into(),
            json!(hub.list_modules(&device.device_id).len()),
        );
    }
    json
}

/// Without If-Match the portal creates the device; with it (enable/disable) it updates.
async fn put_device(hub: &Hub, req: &ApiRequest, device_id: &str) -> Result<Value, HubError> {
    let spec = DeviceSpec::from_json(device_id, &req.body)?;
    let device = match req.if_match.as_deref() {
        None => hub.create_device(spec)?.durable().await?,
        Some(if_match) => {
            hub.update_device(device_id, spec, if_match)?
                .durable()
                .await?
        }
    };
    Ok(device_json(hub, &device))
}

/// Without If-Match the portal creates the module (SAS, keys generated unless given); with
/// it, it updates.
async fn put_module(
    hub: &Hub,
    req: &ApiRequest,
    device_id: &str,
    module_id: &str,
) -> Result<Value, HubError> {
    let spec = ModuleSpec::from_json(device_id, module_id, &req.body)?;
    let module = match req.if_match.as_deref() {
        None => hub.create_module(spec)?.durable().await?,
        Some(if_match) => hub.update_module(spec, if_match)?.durable().await?,
    };
    Ok(hub.module_json(&module))
}

/// A merge patch of the tags and desired properties of a device's or a module's twin,
/// checked against the twin's ETag.
async fn patch_twin(hub: &Hub, req: &ApiRequest, who: IdentityRef<'_>) -> Result<Value, HubError> {
    let patch: Value = serde_json::from_slice(&req.body)
        .map_err(|e| HubError::argument_invalid(format!("the twin patch is not JSON: {e}")))?;
    let updated = hub
        .update_twin_of(who, &patch, req.if_match.as_deref(), false)?
        .durable()
        .await?;
    Ok(updated)
}

/// `{"status", "payload"}`: the answer of the device or module. The body and its timeout
/// bounds are the service API's own (`MethodInvocation`: 5–300 s for the answer, default
/// 30; at most 300 s to connect, default 0).
async fn invoke(hub: &Hub, req: &ApiRequest, who: IdentityRef<'_>) -> Result<Value, HubError> {
    let call = MethodInvocation::from_body(&req.body)?;
    let (response_timeout, connect_timeout) = (call.response_timeout(), call.connect_timeout());
    let answer = hub
        .invoke_method_on(
            who,
            &call.method_name,
            call.payload,
            response_timeout,
            connect_timeout,
        )
        .await?;
    Ok(json!({ "status": answer.status, "payload": answer.payload }))
}

/// The portal's "Message to device" form.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageForm {
    #[serde(default)]
    body: String,
    message_id: Option<String>,
    correlation_id: Option<String>,
    content_type: Option<String>,
    content_encoding: Option<String>,
    ack: Option<String>,
    #[serde(default)]
    properties: BTreeMap<String, String>,
}

/// `{"messageId"}` once the message is queued durably.
async fn send(hub: &Hub, req: &ApiRequest, device_id: &str) -> Result<Value, HubError> {
    let form: MessageForm = serde_json::from_slice(&req.body)
        .map_err(|e| HubError::argument_invalid(format!("invalid message: {e}")))?;
    let non_empty = |v: Option<String>| v.filter(|s| !s.is_empty());
    let message = C2dMessage {
        message_id: non_empty(form.message_id),
        correlation_id: non_empty(form.correlation_id),
        content_type: non_empty(form.content_type),
        content_encoding: non_empty(form.content_encoding),
        ack: non_empty(form.ack),
        properties: form.properties,
        ..C2dMessage::new(Bytes::from(form.body))
    };
    let id = hub.send_c2d(device_id, message)?.durable().await?;
    Ok(json!({ "messageId": id }))
}

/// The cloud-to-device messages waiting for (or out to) the device.
fn queued(hub: &Hub, device_id: &str) -> Value {
    Value::Array(
        hub.c2d_pending(device_id)
            .iter()
            .map(|q| {
                json!({
                    "messageId": q.id,
                    "body": String::from_utf8_lossy(&q.message.body),
                    "properties": q.message.properties,
                    "ack": q.message.ack,
                    "enqueuedTimeUtc": utc_timestamp(q.enqueued),
                    "inFlight": q.in_flight,
                    "deliveryCount": q.delivery_count,
                })
            })
            .collect(),
    )
}

/// The feedback records no service receiver has taken yet, left for it: the batch is taken
/// and handed straight back (`Hub::abandon_feedback`), so a backend's feedback receiver still
/// gets every record. Records out to a receiver at this moment are not shown.
fn unread_feedback(hub: &Hub) -> Value {
    let now = std::time::SystemTime::now();
    let Some(batch) = hub.receive_feedback(now) else {
        return json!([]);
    };
    let records = batch.body();
    if let Err(e) = hub.abandon_feedback(&batch.lock_token, now) {
        tracing::warn!(error = %e, "the portal could not hand a feedback batch back");
    }
    records
}
