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
        system: system.into(),
        properties,
    };
    hub.accept_telemetry(identity, message)
        .map_err(|e| format!("telemetry refused: {e}"))?;
    out.ack(ack);
    Ok(())
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use crate::mqtt::codec::{Packet, Publish, QoS};
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
    async fn a_burst_is_acknowledged_and_stored_in_the_order_sent() {
        let world = World::start().await;
        let (mut device, _) = world.device(true).await;
        let burst = (1..=200u16)
            .map(|pkid| {
                let mut publish = Publish::from_bytes(
                    "devices/d1/messages/events/",
                    QoS::AtLeastOnce,
                    Bytes::from(format!("message {pkid}")),
                );
                publish.pkid = pkid;
                Packet::Publish(publish)
            })
            .collect();
        device.send_together(burst).await;
        for pkid in 1..=200u16 {
            match device.recv().await {
                Some(Packet::PubAck(ack)) => assert_eq!(ack.pkid, pkid, "PUBACKs in order"),
                other => panic!("PUBACK {pkid} expected, got {other:?}"),
            }
        }
        let stored: Vec<_> = world
            .hub()
            .telemetry()
            .messages(Some(DEVICE))
            .iter()
            .map(|m| m.body_text().unwrap_or_default().to_owned())
            .collect();
        let sent: Vec<_> = (1..=200).map(|i| format!("message {i}")).collect();
        assert_eq!(stored, sent, "stored once each, in the order sent");
        device.disconnect().await;
    }

    #[tokio::test]
    async fn a_large_message_arriving_in_pieces_is_stored_whole() {
        let world = World::start().await;
        let (mut device, _) = world.device(true).await;
        let body: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let mut publish = Publish::from_bytes(
            "devices/d1/messages/events/",
            QoS::AtLeastOnce,
            Bytes::from(body.clone()),
        );
        publish.pkid = 7;
        // Pieces smaller and larger than the session's first read, none aligned to it.
        device.send_in_pieces(Packet::Publish(publish), 700).await;
        assert!(matches!(device.recv().await, Some(Packet::PubAck(a)) if a.pkid == 7));
        let stored = world.hub().telemetry().messages(Some(DEVICE));
        let [message] = &stored[..] else {
            panic!("one message expected, got {}", stored.len());
        };
        assert_eq!(&message.body[..], &body[..]);
        // The session keeps serving after the large read.
        device.send(Packet::PingReq).await;
        assert!(matches!(device.recv().await, Some(Packet::PingResp)));
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
