//! Device-to-cloud telemetry (protocol.md §5.4): a device publishes to
//! `devices/{deviceId}/messages/events/{property bag}` (a module to
//! `devices/{deviceId}/modules/{moduleId}/messages/events/…`, its outputs carrying `$.on`),
//! the bag being `%24.mid=…&%24.ct=…&key=value` ([`super::properties`]). The PUBACK goes out
//! only once the hub accepted and stored the message; a message the hub refuses (too large,
//! device disabled) closes the connection, as IoT Hub does.

use bytes::Bytes;

use super::outbox::Outbox;
use super::properties::parse_property_bag;
use super::session::CloseReason;
use crate::hub::DeviceIdentity;
use crate::hub::Hub;
use crate::hub::telemetry::IncomingMessage;

/// One telemetry PUBLISH, its property bag already cut from the topic.
pub(super) fn publish(
    hub: &Hub,
    identity: &DeviceIdentity,
    property_bag: &str,
    retain: bool,
    body: Bytes,
    ack: Option<u16>,
    out: &mut Outbox,
) -> Result<(), CloseReason> {
    let (system, mut properties) = parse_property_bag(property_bag)?;
    if retain {
        // RETAIN is not kept; IoT Hub forwards it as a property instead.
        properties.insert("mqtt-retain".into(), "true".into());
    }
    let message = IncomingMessage {
        body,
        system,
        properties,
    };
    hub.accept_telemetry(identity, message)
        .map_err(|e| format!("telemetry refused: {e}"))?;
    out.ack(ack);
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::mqtt::codec::{Packet, QoS};
    use crate::mqtt::test_support::{DEVICE, World};

    #[tokio::test]
    async fn stored_with_its_properties_before_the_puback() {
        let world = World::start().await;
        let (mut device, _) = world.device(true).await;
        let topic = "devices/d1/messages/events/%24.mid=m-1&%24.ct=application%2Fjson&color=red";
        device
            .publish(topic, QoS::AtLeastOnce, 3, r#"{"t":21}"#)
            .await;
        assert!(matches!(device.recv().await, Some(Packet::PubAck(a)) if a.pkid == 3));
        let stored = world.hub().telemetry().messages(Some(DEVICE));
        let [message] = &stored[..] else {
            panic!("one message expected, got {}", stored.len());
        };
        assert_eq!(message.message_id(), Some("m-1"));
        assert_eq!(message.body_text(), Some(r#"{"t":21}"#));
        let json = message.to_json();
        assert_eq!(json["properties"]["color"], "red", "{json}");
        device.disconnect().await;
    }

    #[tokio::test]
    async fn a_refused_message_closes_the_connection_without_a_puback() {
        let world = World::start().await;
        let (mut device, _) = world.device(true).await;
        let too_large = vec![b'x'; crate::hub::MAX_D2C_MESSAGE_BYTES + 1];
        device
            .publish(
                "devices/d1/messages/events/",
                QoS::AtLeastOnce,
                4,
                too_large,
            )
            .await;
        assert!(device.recv().await.is_none(), "closed");
        assert!(world.hub().telemetry().messages(Some(DEVICE)).is_empty());
        device.disconnect().await;
    }
}
