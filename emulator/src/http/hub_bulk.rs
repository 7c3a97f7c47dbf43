//! IoT Hub service API, bulk registry operations (protocol.md §9.1; azure-iot-hub's
//! `bulk_create_or_update_devices`, azure-iothub's `addDevices` / `updateDevices` /
//! `removeDevices`), RegistryWrite:
//!
//! `POST /devices` with a JSON array of at most 100 `ExportImportDevice`s (`id`,
//! `importMode`, `eTag`, `status`, `authentication`, `capabilities`, `twinETag`, `tags`,
//! `properties`). `importMode` is one of `create`, `update`, `updateIfMatchETag`, `delete`,
//! `deleteIfMatchETag`, `updateTwin`, `updateTwinIfMatchETag` (any case: Node writes
//! `Update`, Python `update`).
//!
//! The whole body is checked before anything changes (shape, modes, ETags the mode needs,
//! each device's JSON and twin): a bad body is one 400 and changes nothing. Then each device
//! is applied in order, each change stored before the next; one that fails (the id is taken,
//! not found, an ETag mismatch) is reported and the others still apply, as IoT Hub does:
//! `200 {"isSuccessful": true, "errors": [], "warnings": []}`, or `400` with
//! `isSuccessful: false` and one `{deviceId, errorCode, errorStatus, moduleId, operation}`
//! per failed device.

use hyper::Method;
use serde_json::{Map, Value, json};

use super::hub_service::{REGISTRY_WRITE, Rights, ServiceGroup};
use super::reply::{self, Reply};
use super::request::Request;
use crate::hub::Hub;
use crate::hub::error::HubError;
use crate::hub::registry::DeviceSpec;
use crate::hub::twin;

/// The most devices one request may carry, as IoT Hub allows.
const MAX_DEVICES: usize = 100;

/// What to do with one device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ImportMode {
    Create,
    Update,
    UpdateIfMatchETag,
    Delete,
    DeleteIfMatchETag,
    UpdateTwin,
    UpdateTwinIfMatchETag,
}

impl ImportMode {
    const ALL: [ImportMode; 7] = [
        ImportMode::Create,
        ImportMode::Update,
        ImportMode::UpdateIfMatchETag,
        ImportMode::Delete,
        ImportMode::DeleteIfMatchETag,
        ImportMode::UpdateTwin,
        ImportMode::UpdateTwinIfMatchETag,
    ];

    /// The name in the API's own spelling, as errors report the operation.
    fn name(self) -> &'static str {
        match self {
            ImportMode::Create => "create",
            ImportMode::Update => "update",
            ImportMode::UpdateIfMatchETag => "updateIfMatchETag",
            ImportMode::Delete => "delete",
            ImportMode::DeleteIfMatchETag => "deleteIfMatchETag",
            ImportMode::UpdateTwin => "updateTwin",
            ImportMode::UpdateTwinIfMatchETag => "updateTwinIfMatchETag",
        }
    }

    fn parse(text: &str) -> Option<ImportMode> {
        ImportMode::ALL
            .into_iter()
            .find(|mode| mode.name().eq_ignore_ascii_case(text))
    }
}

/// One device of the request, checked.
#[derive(Debug)]
struct BulkItem {
    id: String,
    mode: ImportMode,
    /// The device's `eTag` (IfMatchETag device modes) or `twinETag` (IfMatchETag twin mode).
    etag: Option<String>,
    /// The registry part, for create and update.
    device: Option<DeviceSpec>,
    /// `{"tags", "properties": {"desired"}}`, when the item carries twin data.
    twin: Option<Value>,
}

/// The one route.
pub(super) struct Bulk;

impl ServiceGroup for Bulk {
    type Operation<'p> = ();

    fn parse(method: &Method, fixed: &[&str], _: &[&str]) -> Option<(Rights, ())> {
        match (method, fixed) {
            (&Method::POST, ["devices"]) => Some((REGISTRY_WRITE, ())),
            _ => None,
        }
    }

    async fn apply<'a>(hub: &'a Hub, req: &'a Request<'a>, (): ()) -> Result<Reply, HubError> {
        let items = parse_items(&req.body)?;
        let mut errors = Vec::new();
        for item in items {
            if let Err(e) = apply_item(hub, &item).await {
                errors.push(json!({
                    "deviceId": item.id,
                    "errorCode": e.name,
                    "errorStatus": e.message,
                    "moduleId": null,
                    "operation": item.mode.name(),
                }));
            }
        }
        let successful = errors.is_empty();
        Ok(reply::json(
            if successful { 200 } else { 400 },
            &json!({ "isSuccessful": successful, "errors": errors, "warnings": [] }),
        ))
    }
}

/// The request body, every device checked; the first problem refuses the whole request.
fn parse_items(body: &[u8]) -> Result<Vec<BulkItem>, HubError> {
    let body: Value = serde_json::from_slice(body)
        .map_err(|e| HubError::argument_invalid(format!("the body is not valid JSON: {e}")))?;
    let list = body
        .as_array()
        .ok_or_else(|| HubError::argument_invalid("the body must be a JSON array of devices"))?;
    if list.is_empty() || list.len() > MAX_DEVICES {
        return Err(HubError::argument_invalid(format!(
            "a bulk operation takes 1 to {MAX_DEVICES} devices, not {}",
            list.len()
        )));
    }
    let mut items: Vec<BulkItem> = Vec::with_capacity(list.len());
    for (index, entry) in list.iter().enumerate() {
        let item = parse_item(entry)
            .map_err(|e| HubError::argument_invalid(format!("device {index}: {}", e.message)))?;
        if items.iter().any(|seen| seen.id == item.id) {
            return Err(HubError::argument_invalid(format!(
                "device '{}' appears more than once",
                item.id
            )));
        }
        items.push(item);
    }
    Ok(items)
}

fn parse_item(entry: &Value) -> Result<BulkItem, HubError> {
    let fields = entry
        .as_object()
        .ok_or_else(|| HubError::argument_invalid("not a JSON object"))?;
    let text = |key: &str| fields.get(key).and_then(Value::as_str);
    let id = text("id")
        .or_else(|| text("deviceId"))
        .ok_or_else(|| HubError::argument_invalid("no \"id\""))?
        .to_owned();
    if fields.get("moduleId").is_some_and(|m| !m.is_null()) {
        return Err(HubError::argument_invalid(
            "module identities cannot be imported in bulk here",
        ));
    }
    let mode_text = text("importMode").unwrap_or("create");
    let mode = ImportMode::parse(mode_text)
        .ok_or_else(|| HubError::argument_invalid(format!("unknown importMode '{mode_text}'")))?;
    let etag = match mode {
        ImportMode::UpdateIfMatchETag | ImportMode::DeleteIfMatchETag => Some(
            text("eTag")
                .ok_or_else(|| {
                    HubError::argument_invalid(format!("{} needs \"eTag\"", mode.name()))
                })?
                .to_owned(),
        ),
        ImportMode::UpdateTwinIfMatchETag => Some(
            text("twinETag")
                .ok_or_else(|| {
                    HubError::argument_invalid(format!("{} needs \"twinETag\"", mode.name()))
                })?
                .to_owned(),
        ),
        _ => None,
    };
    let device = match mode {
        ImportMode::Create | ImportMode::Update | ImportMode::UpdateIfMatchETag => {
            let mut registry = Map::new();
            registry.insert("deviceId".into(), json!(id));
            for key in ["status", "authentication", "capabilities"] {
                if let Some(value) = fields.get(key).filter(|v| !v.is_null()) {
                    registry.insert(key.into(), value.clone());
                }
            }
            let bytes = serde_json::to_vec(&registry).unwrap_or_default();
            Some(DeviceSpec::from_json(&id, &bytes)?)
        }
        _ => None,
    };
    let twin = match mode {
        ImportMode::Delete | ImportMode::DeleteIfMatchETag => None,
        _ => {
            let mut data = Map::new();
            if let Some(tags) = fields.get("tags").filter(|v| !v.is_null()) {
                data.insert("tags".into(), tags.clone());
            }
            if let Some(desired) = entry
                .pointer("/properties/desired")
                .filter(|v| !v.is_null())
            {
                data.insert("properties".into(), json!({ "desired": desired }));
            }
            let data = Value::Object(data);
            twin::validate_service_update(&data)?;
            (data.as_object().is_some_and(|d| !d.is_empty())).then_some(data)
        }
    };
    Ok(BulkItem {
        id,
        mode,
        etag,
        device,
        twin,
    })
}

/// One device's change, stored before the next one starts.
async fn apply_item(hub: &Hub, item: &BulkItem) -> Result<(), HubError> {
    let id = item.id.as_str();
    let etag = item.etag.as_deref();
    match item.mode {
        ImportMode::Create | ImportMode::Update | ImportMode::UpdateIfMatchETag => {
            let Some(spec) = item.device.clone() else {
                return Err(HubError::argument_invalid("no device data"));
            };
            if item.mode == ImportMode::Create {
                hub.create_device(spec)?.durable().await?;
            } else {
                hub.update_device(id, spec, etag.unwrap_or("*"))?
                    .durable()
                    .await?;
            }
            if let Some(data) = &item.twin {
                hub.update_twin(id, data, None, false)?.durable().await?;
            }
        }
        ImportMode::Delete | ImportMode::DeleteIfMatchETag => {
            hub.delete_device(id, Some(etag.unwrap_or("*")))?
                .durable()
                .await?;
        }
        ImportMode::UpdateTwin | ImportMode::UpdateTwinIfMatchETag => {
            let data = item.twin.clone().unwrap_or_else(|| json!({}));
            hub.update_twin(id, &data, etag, false)?.durable().await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{add_device, body_json, call, hub};
    use super::*;

    async fn bulk(hub: &Hub, body: Value) -> Result<(u16, Value), HubError> {
        let reply = call::<Bulk>(hub, Method::POST, "/devices", &[], &body.to_string()).await?;
        let status = reply.status().as_u16();
        Ok((status, body_json(reply).await))
    }

    #[tokio::test]
    async fn create_update_and_delete_in_one_request() {
        let hub = hub();
        add_device(&hub, "old").await;
        add_device(&hub, "kept").await;
        let etag = hub.get_device("kept").unwrap().etag;
        let (status, body) = bulk(
            &hub,
            json!([
                {"id": "new", "importMode": "create", "tags": {"site": "a"}},
                {"id": "kept", "importMode": "UpdateIfMatchETag", "eTag": etag, "status": "disabled"},
                {"id": "old", "importMode": "Delete"},
            ]),
        )
        .await
        .unwrap();
        assert_eq!(status, 200);
        assert_eq!(
            body,
            json!({"isSuccessful": true, "errors": [], "warnings": []})
        );
        assert_eq!(hub.device_twin("new").unwrap().tags["site"], "a");
        assert_eq!(
            hub.get_device("kept").unwrap().status,
            crate::hub::device::DeviceStatus::Disabled
        );
        assert_eq!(hub.get_device("old").unwrap_err().code, 404001);
    }

    #[tokio::test]
    async fn failed_devices_are_reported_and_the_others_still_apply() {
        let hub = hub();
        add_device(&hub, "taken").await;
        add_device(&hub, "other").await;
        let (status, body) = bulk(
            &hub,
            json!([
                {"id": "taken", "importMode": "create"},
                {"id": "fresh", "importMode": "create"},
                {"id": "ghost", "importMode": "delete"},
                {"id": "other", "importMode": "deleteIfMatchETag", "eTag": "stale"},
            ]),
        )
        .await
        .expect("a bulk result");
        assert_eq!(status, 400);
        assert_eq!(body["isSuccessful"], false);
        let errors = body["errors"].as_array().unwrap();
        assert_eq!(errors.len(), 3, "{body}");
        assert_eq!(errors[0]["deviceId"], "taken");
        assert_eq!(errors[0]["errorCode"], "DeviceAlreadyExists");
        assert_eq!(errors[0]["operation"], "create");
        assert_eq!(errors[1]["deviceId"], "ghost");
        assert_eq!(errors[1]["errorCode"], "DeviceNotFound");
        assert_eq!(errors[2]["errorCode"], "PreconditionFailed");
        assert_eq!(errors[2]["operation"], "deleteIfMatchETag");
        assert!(hub.get_device("fresh").is_ok());
        assert!(hub.get_device("other").is_ok());
    }

    #[tokio::test]
    async fn a_bad_body_is_one_400_and_changes_nothing() {
        let hub = hub();
        let too_many: Vec<Value> = (0..101)
            .map(|i| json!({"id": format!("d{i}"), "importMode": "create"}))
            .collect();
        for bad in [
            json!({"id": "a"}),
            json!([]),
            json!(too_many),
            json!([{"id": "a", "importMode": "create"}, {"importMode": "create"}]),
            json!([{"id": "a", "importMode": "create"}, {"id": "b", "importMode": "explode"}]),
            json!([{"id": "a", "importMode": "create"}, {"id": "a", "importMode": "delete"}]),
            json!([{"id": "a", "importMode": "create"}, {"id": "b", "importMode": "updateIfMatchETag"}]),
            json!([{"id": "a", "importMode": "create"}, {"id": "b", "importMode": "create", "status": "sleepy"}]),
            json!([{"id": "a", "importMode": "create"}, {"id": "b", "importMode": "create", "tags": {"a.b": 1}}]),
            json!([{"id": "a", "importMode": "create", "moduleId": "m"}]),
        ] {
            let error = bulk(&hub, bad.clone()).await.unwrap_err();
            assert_eq!(error.code, 400004, "{bad}");
        }
        assert!(hub.list_devices(None).is_empty());
    }

    #[test]
    fn import_modes_parse_in_any_case() {
        assert_eq!(ImportMode::parse("Update"), Some(ImportMode::Update));
        assert_eq!(
            ImportMode::parse("UPDATETWINIFMATCHETAG"),
            Some(ImportMode::UpdateTwinIfMatchETag)
        );
        assert_eq!(ImportMode::parse("merge"), None);
    }
}
