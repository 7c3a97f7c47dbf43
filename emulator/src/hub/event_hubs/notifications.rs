//! The non-telemetry events IoT Hub emits and routes to its built-in endpoint when a route
//! asks for them (iot-hub-non-telemetry-event-schema.md): twin changes, identity lifecycle
//! and connection state. Each is a message with a JSON body and the documented properties:
//!
//! | where | key | value |
//! |---|---|---|
//! | system | `content-type`, `content-encoding` | `application/json`, `utf-8` |
//! | system | `correlation-id` | a fresh id per event |
//! | system | `user-id` | the hub's name |
//! | annotations | `iothub-message-source` | `twinChangeEvents`, `deviceLifecycleEvents`, `deviceConnectionStateEvents` |
//! | application | `hubName`, `deviceId`, (`moduleId`), `opType`, `iothub-message-schema`, `operationTimestamp` | |
//!
//! Bodies: a reported-properties update carries the patch (with `$metadata` and `$version`)
//! and the twin `version`; a service update carries the twin `version`, all tags and all
//! desired properties; a replace and the lifecycle events carry the whole twin; connection
//! state events carry a strictly increasing `sequenceNumber` string.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use serde_json::{Map, Value, json};

use crate::hub::IdentityRef;
use crate::hub::telemetry::{MessageSource, SystemProperties, TelemetryMessage};
use crate::hub::twin::Twin;
use crate::timefmt::utc_timestamp;

/// `opType` of a twin change event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TwinOperation {
    Update,
    Replace,
}

/// `opType` of a lifecycle event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lifecycle {
    Created,
    Deleted,
}

/// A notification about `who`, ready to route.
fn notification(
    hub_name: &str,
    who: IdentityRef<'_>,
    source: MessageSource,
    schema: &str,
    operation: &str,
    body: &Value,
) -> TelemetryMessage {
    let now = SystemTime::now();
    let mut properties = BTreeMap::from([
        ("hubName".to_owned(), hub_name.to_owned()),
        ("deviceId".to_owned(), who.device_id.to_owned()),
        ("opType".to_owned(), operation.to_owned()),
        ("iothub-message-schema".to_owned(), schema.to_owned()),
        ("operationTimestamp".to_owned(), utc_timestamp(now)),
    ]);
    if let Some(module_id) = who.module_id {
        properties.insert("moduleId".to_owned(), module_id.to_owned());
    }
    TelemetryMessage {
        sequence_number: 0,
        enqueued_time: now,
        hub: hub_name.into(),
        device_id: who.device_id.into(),
        module_id: who.module_id.map(Arc::from),
        body: Bytes::from(body.to_string()),
        system: SystemProperties {
            correlation_id: Some(uuid::Uuid::new_v4().simple().to_string()),
            user_id: Some(hub_name.to_owned()),
            content_type: Some("application/json".to_owned()),
            content_encoding: Some("utf-8".to_owned()),
            ..SystemProperties::default()
        }
        .into(),
        properties,
        source,
        auth: None,
    }
}

/// A twin change event (`twinChangeNotification`).
pub(crate) fn twin_change(
    hub_name: &str,
    who: IdentityRef<'_>,
    operation: TwinOperation,
    body: &Value,
) -> TelemetryMessage {
    let op = match operation {
        TwinOperation::Update => "updateTwin",
        TwinOperation::Replace => "replaceTwin",
    };
    notification(
        hub_name,
        who,
        MessageSource::TwinChangeEvents,
        "twinChangeNotification",
        op,
        body,
    )
}

/// A lifecycle event (`deviceLifecycleNotification`); `twin` is the identity's twin JSON.
pub(crate) fn lifecycle(
    hub_name: &str,
    who: IdentityRef<'_>,
    change: Lifecycle,
    twin: &Value,
) -> TelemetryMessage {
    let op = match change {
        Lifecycle::Created => "createDeviceIdentity",
        Lifecycle::Deleted => "deleteDeviceIdentity",
    };
    notification(
        hub_name,
        who,
        MessageSource::DeviceLifecycleEvents,
        "deviceLifecycleNotification",
        op,
        twin,
    )
}

/// A connection state event (`deviceConnectionStateNotification`).
pub(crate) fn connection_state(
    hub_name: &str,
    who: IdentityRef<'_>,
    connected: bool,
    sequence_number: &str,
) -> TelemetryMessage {
    let op = if connected {
        "deviceConnected"
    } else {
        "deviceDisconnected"
    };
    notification(
        hub_name,
        who,
        MessageSource::DeviceConnectionStateEvents,
        "deviceConnectionStateNotification",
        op,
        &json!({ "sequenceNumber": sequence_number }),
    )
}

/// The body of a reported-properties update: the device's patch with metadata for each of its
/// keys, the reported `$version`, and the twin `version`.
pub(crate) fn reported_update_body(patch: &Value, twin: &Twin) -> Value {
    let updated = utc_timestamp(twin.reported_updated);
    let mut reported = patch.as_object().cloned().unwrap_or_default();
    let mut metadata = Map::new();
    metadata.insert("$lastUpdated".into(), json!(updated));
    for key in reported.keys() {
        metadata.insert(key.clone(), json!({ "$lastUpdated": updated }));
    }
    reported.insert("$metadata".into(), Value::Object(metadata));
    reported.insert("$version".into(), json!(twin.reported_version));
    json!({ "version": twin.version, "properties": { "reported": reported } })
}

/// The body of a service update: the twin `version`, all tags and all desired properties.
pub(crate) fn service_update_body(twin: &Twin) -> Value {
    let updated = utc_timestamp(twin.desired_updated);
    let mut desired = twin.desired.clone();
    let mut metadata = Map::new();
    metadata.insert("$lastUpdated".into(), json!(updated));
    metadata.insert("$lastUpdatedVersion".into(), json!(twin.desired_version));
    for key in twin.desired.keys() {
        metadata.insert(
            key.clone(),
            json!({ "$lastUpdated": updated, "$lastUpdatedVersion": twin.desired_version }),
        );
    }
    desired.insert("$metadata".into(), Value::Object(metadata));
    desired.insert("$version".into(), json!(twin.desired_version));
    json!({ "version": twin.version, "tags": twin.tags, "properties": { "desired": desired } })
}

/// The whole twin, as replace and lifecycle events carry it.
pub(crate) fn whole_twin_body(who: IdentityRef<'_>, twin: &Twin) -> Value {
    let mut body = twin.service_view(who.device_id, "enabled", false);
    if let Value::Object(fields) = &mut body {
        // Registry state is not part of the twin document these events carry.
        for key in [
            "status",
            "connectionState",
            "authenticationType",
            "deviceEtag",
        ] {
            fields.remove(key);
        }
        if let Some(module_id) = who.module_id {
            fields.insert("moduleId".into(), json!(module_id));
        }
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_carry_the_documented_properties() {
        let who = IdentityRef::module("dev", "mod");
        let event = twin_change("myhub", who, TwinOperation::Update, &json!({"version": 2}));
        assert_eq!(event.source, MessageSource::TwinChangeEvents);
        assert_eq!(event.properties["hubName"], "myhub");
        assert_eq!(event.properties["deviceId"], "dev");
        assert_eq!(event.properties["moduleId"], "mod");
        assert_eq!(event.properties["opType"], "updateTwin");
        assert_eq!(
            event.properties["iothub-message-schema"],
            "twinChangeNotification"
        );
        assert!(event.properties["operationTimestamp"].ends_with('Z'));
        assert_eq!(event.system.user_id.as_deref(), Some("myhub"));
        assert_eq!(
            event.system.content_type.as_deref(),
            Some("application/json")
        );
        assert_eq!(event.system.content_encoding.as_deref(), Some("utf-8"));
        assert!(event.system.correlation_id.is_some());
        assert_eq!(event.module_id.as_deref(), Some("mod"));
        assert_eq!(event.body_text(), Some(r#"{"version":2}"#));

        let connected = connection_state("myhub", IdentityRef::device("dev"), true, "01");
        assert_eq!(connected.properties["opType"], "deviceConnected");
        assert!(!connected.properties.contains_key("moduleId"));
        assert_eq!(connected.body_text(), Some(r#"{"sequenceNumber":"01"}"#));
        let deleted = lifecycle(
            "myhub",
            IdentityRef::device("d"),
            Lifecycle::Deleted,
            &json!({}),
        );
        assert_eq!(deleted.properties["opType"], "deleteDeviceIdentity");
        assert_eq!(deleted.source.as_str(), "deviceLifecycleEvents");
    }

    #[test]
    fn bodies_follow_the_twin() {
        let mut twin = Twin::from_initial(Some(&json!({"tags": {"t": 1}})));
        let patch = json!({"color": "blue"});
        twin.patch_reported(&patch).unwrap();
        let body = reported_update_body(&patch, &twin);
        assert_eq!(body["version"], json!(twin.version));
        assert_eq!(body["properties"]["reported"]["color"], "blue");
        assert_eq!(body["properties"]["reported"]["$version"], json!(2));
        assert!(body["properties"]["reported"]["$metadata"]["color"]["$lastUpdated"].is_string());
        assert!(body.get("tags").is_none());

        twin.patch_desired(&json!({"rate": 5})).unwrap();
        let body = service_update_body(&twin);
        assert_eq!(body["tags"]["t"], 1);
        assert_eq!(body["properties"]["desired"]["rate"], 5);
        assert_eq!(body["properties"]["desired"]["$version"], json!(2));
        assert!(body["properties"].get("reported").is_none());

        let whole = whole_twin_body(IdentityRef::module("d", "m"), &twin);
        assert_eq!(whole["deviceId"], "d");
        assert_eq!(whole["moduleId"], "m");
        assert_eq!(whole["properties"]["reported"]["color"], "blue");
        assert!(whole.get("connectionState").is_none());
    }
}
