//! Device twins over MQTT (protocol.md §5.6). The device subscribes to `$iothub/twin/res/#`
//! and publishes
//!
//! - `$iothub/twin/GET/?$rid={rid}` → `$iothub/twin/res/200/?$rid={rid}` with
//!   `{"desired":{…},"reported":{…}}`;
//! - `$iothub/twin/PATCH/properties/reported/?$rid={rid}` with a JSON merge patch →
//!   `$iothub/twin/res/204/?$rid={rid}&$version={v}` with an empty body, once stored;
//!
//! errors come back as `$iothub/twin/res/{status}/?$rid={rid}` with
//! `{"errorCode","message"}`. Desired-property changes are pushed, if the device subscribed
//! to `$iothub/twin/PATCH/properties/desired/#`, as
//! `$iothub/twin/PATCH/properties/desired/?$version={v}`. The rules are the hub's
//! ([`crate::hub::twin::requests`]); this file only speaks the topics.

use bytes::Bytes;
use serde_json::Value;

use super::outbox::Outbox;
use crate::hub::DeviceIdentity;
use crate::hub::Hub;
use crate::hub::error::HubError;
use crate::hub::twin::order;
use crate::hub::twin::requests::{TwinRequest, TwinResponse};

/// A GET or reported PATCH under `rid`.
pub(super) async fn request(
    hub: &Hub,
    identity: &DeviceIdentity,
    request: TwinRequest<'_>,
    rid: &str,
    ack: Option<u16>,
    out: &mut Outbox,
) {
    let result = hub.device_twin_request(identity, request).await;
    out.ack(ack);
    match result {
        Ok(response) => {
            let status = response.status();
            let (topic, body) = match response {
                TwinResponse::Twin(view) => (
                    format!("$iothub/twin/res/{status}/?$rid={rid}"),
                    Bytes::from(order::to_string(&view)),
                ),
                TwinResponse::ReportedUpdated { version } => (
                    format!("$iothub/twin/res/{status}/?$rid={rid}&$version={version}"),
                    Bytes::new(),
                ),
            };
            out.deliver(topic, body);
        }
        Err(e) => error(out, rid, &e),
    }
}

/// A desired-properties change the hub pushes to the connected device.
pub(super) fn push_desired(out: &mut Outbox, version: u64, patch: Value) {
    out.deliver(
        format!("$iothub/twin/PATCH/properties/desired/?$version={version}"),
        order::to_string(&patch).into(),
    );
}

/// Twin errors travel as the status in the topic and `{"errorCode","message"}` (Node only
/// looks at the body). Also the answer to a twin request an injected fault refuses.
pub(super) fn error(out: &mut Outbox, rid: &str, error: &HubError) {
    let body = serde_json::json!({ "errorCode": error.code, "message": error.message });
    out.deliver(
        format!("$iothub/twin/res/{}/?$rid={rid}", error.status()),
        body.to_string().into(),
    );
}

#[cfg(test)]
mod tests {
    use crate::mqtt::codec::QoS;
    use crate::mqtt::test_support::{DEVICE, World};

    #[tokio::test]
    async fn get_answers_200_with_the_device_view() {
        let world = World::start().await;
        let (mut device, _) = world.device(true).await;
        device
            .subscribe("$iothub/twin/res/#", QoS::AtMostOnce)
            .await;
        device
            .publish("$iothub/twin/GET/?$rid=7", QoS::AtMostOnce, 0, "")
            .await;
        let reply = device.recv_publish().await;
        assert_eq!(reply.topic, "$iothub/twin/res/200/?$rid=7");
        let view: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
        assert_eq!(view["reported"]["$version"], 1);
        assert!(view["desired"].is_object());
        device.disconnect().await;
    }

    #[tokio::test]
    async fn a_reported_patch_is_acknowledged_then_answered_204_with_its_version() {
        let world = World::start().await;
        let (mut device, _) = world.device(true).await;
        device
            .subscribe("$iothub/twin/res/#", QoS::AtMostOnce)
            .await;
        let topic = "$iothub/twin/PATCH/properties/reported/?$rid=8";
        device
            .publish(topic, QoS::AtLeastOnce, 5, r#"{"fw":"1.2"}"#)
            .await;
        match device.recv().await {
            Some(crate::mqtt::codec::Packet::PubAck(ack)) => assert_eq!(ack.pkid, 5),
            other => panic!("PUBACK expected first, got {other:?}"),
        }
        let reply = device.recv_publish().await;
        assert_eq!(reply.topic, "$iothub/twin/res/204/?$rid=8&$version=2");
        assert!(reply.payload.is_empty());
        let twin = world.hub().device_twin(DEVICE).unwrap();
        assert_eq!(twin.reported["fw"], "1.2");
        device.disconnect().await;
    }

    #[tokio::test]
    async fn a_bad_patch_is_answered_with_the_status_and_an_error_body() {
        let world = World::start().await;
        let (mut device, _) = world.device(true).await;
        device
            .subscribe("$iothub/twin/res/#", QoS::AtMostOnce)
            .await;
        let topic = "$iothub/twin/PATCH/properties/reported/?$rid=9";
        device.publish(topic, QoS::AtMostOnce, 0, "not json").await;
        let reply = device.recv_publish().await;
        assert_eq!(reply.topic, "$iothub/twin/res/400/?$rid=9");
        let body: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
        assert_eq!(body["errorCode"], 400004);
        assert_eq!(world.hub().device_twin(DEVICE).unwrap().reported_version, 1);
        device.disconnect().await;
    }

    #[tokio::test]
    async fn a_persistent_session_keeps_its_twin_subscriptions_and_a_clean_one_forgets_them() {
        let world = World::start().await;
        let (mut device, ack) = world.device(false).await;
        assert!(!ack.session_present);
        device
            .subscribe("$iothub/twin/res/#", QoS::AtMostOnce)
            .await;
        device
            .subscribe("$iothub/twin/PATCH/properties/desired/#", QoS::AtLeastOnce)
            .await;
        device.disconnect().await;

        // The Python and Node SDKs reconnect with CleanSession 0 and do not subscribe again.
        let (mut device, ack) = world.device(false).await;
        assert!(ack.session_present, "the twin subscriptions were kept");
        device
            .publish("$iothub/twin/GET/?$rid=8", QoS::AtMostOnce, 0, "")
            .await;
        assert_eq!(
            device.recv_publish().await.topic,
            "$iothub/twin/res/200/?$rid=8"
        );
        let patch = serde_json::json!({"properties": {"desired": {"mode": "eco"}}});
        let pending = world
            .hub()
            .update_twin(DEVICE, &patch, None, false)
            .unwrap();
        pending.durable().await.unwrap();
        let pushed = device.recv_publish().await;
        assert_eq!(
            pushed.topic,
            "$iothub/twin/PATCH/properties/desired/?$version=2"
        );
        assert_eq!(pushed.qos, QoS::AtLeastOnce, "granted QoS kept");
        device.disconnect().await;

        let (device, ack) = world.device(true).await;
        assert!(!ack.session_present, "a clean session forgets");
        device.disconnect().await;
        let (device, ack) = world.device(false).await;
        assert!(!ack.session_present, "and nothing comes back after it");
        device.disconnect().await;
    }

    #[tokio::test]
    async fn desired_changes_reach_only_a_subscribed_device() {
        let world = World::start().await;
        let (mut device, _) = world.device(true).await;
        device
            .subscribe("$iothub/twin/res/#", QoS::AtMostOnce)
            .await;
        let mut out = crate::mqtt::outbox::Outbox::new("t".into());
        super::push_desired(&mut out, 3, serde_json::json!({"a": 1}));
        assert!(out.pending().is_empty(), "not subscribed: nothing sent");
        device
            .subscribe("$iothub/twin/PATCH/properties/desired/#", QoS::AtMostOnce)
            .await;
        let patch = serde_json::json!({"properties": {"desired": {"interval": 5}}});
        let pending = world
            .hub()
            .update_twin(DEVICE, &patch, None, false)
            .unwrap();
        pending.durable().await.unwrap();
        let pushed = device.recv_publish().await;
        assert_eq!(
            pushed.topic,
            "$iothub/twin/PATCH/properties/desired/?$version=2"
        );
        let body: serde_json::Value = serde_json::from_slice(&pushed.payload).unwrap();
        assert_eq!(body["interval"], 5);
        // `$version` last, as IoT Hub writes it (the embedded C SDK stops reading there).
        assert_eq!(&pushed.payload[..], br#"{"interval":5,"$version":2}"#);
        device.disconnect().await;
    }

    #[tokio::test]
    async fn get_writes_each_sections_version_after_its_properties() {
        let world = World::start().await;
        let (mut device, _) = world.device(true).await;
        let patch = serde_json::json!({"properties": {"desired": {"b": 1, "a": {"x": true}}}});
        let pending = world
            .hub()
            .update_twin(DEVICE, &patch, None, false)
            .unwrap();
        pending.durable().await.unwrap();
        device
            .subscribe("$iothub/twin/res/#", QoS::AtMostOnce)
            .await;
        device
            .publish("$iothub/twin/GET/?$rid=1", QoS::AtMostOnce, 0, "")
            .await;
        let reply = device.recv_publish().await;
        assert_eq!(
            std::str::from_utf8(&reply.payload).unwrap(),
            r#"{"desired":{"a":{"x":true},"b":1,"$version":2},"reported":{"$version":1}}"#
        );
        device.disconnect().await;
    }
}
