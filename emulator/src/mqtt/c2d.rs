//! Cloud-to-device messages over MQTT (protocol.md §5.5). A device subscribes to
//! `devices/{deviceId}/messages/devicebound/#` (azure-sdk-for-c: `devices/+/messages/
//! devicebound/#`) and receives each message on
//! `devices/{deviceId}/messages/devicebound/{property bag}` with the body as payload, at the
//! subscription's QoS, DUP set on a redelivery. Its PUBACK completes the message; at QoS 0
//! sending completes it. The delivery rules (window, settlement, redelivery, persistent
//! subscription) are the hub's [`C2dDelivery`]; this file maps them onto packet ids and
//! topics.

use std::collections::HashMap;
use std::sync::Arc;

use super::codec::{Packet, Publish, QoS};
use super::outbox::Outbox;
use super::properties::encode_c2d_property_bag;
use crate::hub::c2d::delivery::{C2dDelivery, DropInstead, Outgoing};
use crate::hub::{Hub, IdentityRef};

/// C2D delivery on one device connection.
pub(super) struct C2d {
    delivery: C2dDelivery,
    /// Message ids out for delivery, by the packet id they were published under.
    by_packet: HashMap<u16, String>,
}

impl C2d {
    /// Starts delivery for a device (modules have none). With CleanSession 0 the device's C2D
    /// subscription outlives the connection: a remembered one is restored into `out`'s
    /// subscriptions. Returns whether it was (the CONNACK's session-present flag).
    pub(super) fn open(
        hub: Arc<Hub>,
        who: IdentityRef<'_>,
        clean_session: bool,
        out: &mut Outbox,
    ) -> (Option<C2d>, bool) {
        let Some((delivery, restored)) = C2dDelivery::open(hub, who, !clean_session) else {
            return (None, false);
        };
        if restored {
            out.subscriptions.restore(
                format!("devices/{}/messages/devicebound/#", delivery.device_id()),
                QoS::AtLeastOnce,
            );
        }
        let c2d = C2d {
            delivery,
            by_packet: HashMap::new(),
        };
        (Some(c2d), restored)
    }

    /// The QoS at which C2D messages reach this device, if it subscribed to them.
    fn qos(&self, out: &Outbox) -> Option<QoS> {
        let topic = format!(
            "devices/{}/messages/devicebound/",
            self.delivery.device_id()
        );
        out.subscriptions.qos_for(&topic)
    }

    /// The device's subscriptions changed: the hub remembers whether it wants C2D.
    pub(super) fn subscriptions_changed(&self, out: &Outbox) {
        self.delivery.subscribed(self.qos(out).is_some());
    }

    /// Publishes queued messages while the device is subscribed and the window has room.
    pub(super) fn pump(&mut self, out: &mut Outbox) {
        let Some(qos) = self.qos(out) else { return };
        if out.is_closing() {
            return;
        }
        while let Some(next) = self.delivery.next_delivery() {
            let Outgoing {
                queued,
                hold,
                drop_after,
            } = match next {
                Ok(outgoing) => outgoing,
                Err(DropInstead { fault_id }) => {
                    out.close_after_flush(format!(
                        "dropped by iotemu fault {fault_id} before delivering a C2D message"
                    ));
                    return;
                }
            };
            let device_id = self.delivery.device_id();
            let topic = format!(
                "devices/{device_id}/messages/devicebound/{}",
                encode_c2d_property_bag(device_id, &queued)
            );
            let mut publish = Publish::from_bytes(topic, qos, queued.message.body.clone());
            publish.dup = queued.delivery_count > 1;
            if qos == QoS::AtMostOnce {
                // Settled only once it is sent: a fault may have put it back unsent.
                self.delivery.sent_unacknowledged(&queued.id);
            } else {
                publish.pkid = out.await_ack();
                self.by_packet.insert(publish.pkid, queued.id);
            }
            out.write(Packet::Publish(publish));
            if let Some(delay) = hold {
                // The session writes nothing (this PUBLISH included) until the delay passed.
                out.hold_before_flush(delay);
            }
            if let Some(fault_id) = drop_after {
                out.close_after_flush(format!(
                    "dropped by iotemu fault {fault_id} after delivering a C2D message"
                ));
                return;
            }
        }
    }

    /// A PUBACK: completes the C2D message published under `packet_id`, if it was one, and
    /// sends more. Awaits the completion being stored; meanwhile the connection reads nothing.
    pub(super) async fn acknowledged(&mut self, packet_id: u16, out: &mut Outbox) {
        if let Some(message_id) = self.by_packet.remove(&packet_id) {
            self.delivery.complete(&message_id).await;
            self.pump(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::hub::c2d::C2dMessage;
    use crate::hub::c2d::delivery::WINDOW;
    use crate::mqtt::codec::{Packet, PubAck, QoS};
    use crate::mqtt::test_support::{DEVICE, World};

    const FILTER: &str = "devices/d1/messages/devicebound/#";

    async fn send(world: &World, body: &str) {
        let pending = world
            .hub()
            .send_c2d(DEVICE, C2dMessage::new(body.to_owned()));
        pending.unwrap().durable().await.unwrap();
    }

    #[tokio::test]
    async fn a_message_stays_queued_until_its_puback() {
        let world = World::start().await;
        let (mut device, _) = world.device(true).await;
        device.subscribe(FILTER, QoS::AtLeastOnce).await;
        send(&world, "hello").await;
        let publish = device.recv_publish().await;
        assert!(
            publish
                .topic
                .starts_with("devices/d1/messages/devicebound/%24.mid=")
        );
        assert_eq!((publish.qos, publish.dup), (QoS::AtLeastOnce, false));
        assert_eq!(&publish.payload[..], b"hello");
        assert_eq!(world.hub().c2d_pending(DEVICE).len(), 1);
        device.send(Packet::PubAck(PubAck::new(publish.pkid))).await;
        // A PINGRESP after the PUBACK proves the PUBACK was handled.
        device.send(Packet::PingReq).await;
        assert!(matches!(device.recv().await, Some(Packet::PingResp)));
        assert!(world.hub().c2d_pending(DEVICE).is_empty());
        device.disconnect().await;
    }

    #[tokio::test]
    async fn at_most_a_window_is_in_flight_and_each_puback_sends_the_next() {
        let world = World::start().await;
        for n in 0..=WINDOW {
            send(&world, &format!("m{n}")).await;
        }
        let (mut device, _) = world.device(true).await;
        device.subscribe(FILTER, QoS::AtLeastOnce).await;
        let mut first = None;
        for _ in 0..WINDOW {
            first.get_or_insert(device.recv_publish().await.pkid);
        }
        device.send(Packet::PingReq).await;
        assert!(
            matches!(device.recv().await, Some(Packet::PingResp)),
            "window full"
        );
        device
            .send(Packet::PubAck(PubAck::new(first.unwrap())))
            .await;
        let next = device.recv_publish().await;
        assert_eq!(&next.payload[..], format!("m{WINDOW}").as_bytes());
        device.disconnect().await;
    }

    #[tokio::test]
    async fn at_qos_0_sending_completes_the_message() {
        let world = World::start().await;
        let (mut device, _) = world.device(true).await;
        device.subscribe(FILTER, QoS::AtMostOnce).await;
        send(&world, "fire and forget").await;
        let publish = device.recv_publish().await;
        assert_eq!(publish.qos, QoS::AtMostOnce);
        assert!(world.hub().c2d_pending(DEVICE).is_empty());
        device.disconnect().await;
    }

    #[tokio::test]
    async fn unacknowledged_is_redelivered_with_dup_and_a_persistent_session_resumes() {
        let world = World::start().await;
        let (mut device, ack) = world.device(false).await;
        assert!(!ack.session_present);
        device.subscribe(FILTER, QoS::AtLeastOnce).await;
        send(&world, "again").await;
        assert!(!device.recv_publish().await.dup);
        device.disconnect().await;
        let (mut device, ack) = world.device(false).await;
        assert!(ack.session_present, "the C2D subscription was kept");
        let again = device.recv_publish().await;
        assert!(again.dup, "a redelivery");
        assert_eq!(&again.payload[..], b"again");
        device.disconnect().await;
        let (device, ack) = world.device(true).await;
        assert!(!ack.session_present, "a clean session forgets");
        device.disconnect().await;
    }
}
