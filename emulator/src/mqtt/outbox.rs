//! What goes to the client: one write buffer (flushed once per read batch), the packet ids
//! of our QoS 1 publishes until their PUBACK, and publishing by subscription — a publish
//! goes out at the best QoS of the client's matching filters (at most 1), or not at all when
//! none matches, as a broker would.

use bytes::{Bytes, BytesMut};

use super::codec::{self, Packet, PubAck, Publish, QoS};
use super::subscriptions::Subscriptions;

/// Unacknowledged QoS 1 publishes remembered per connection (also keeps packet-id search short).
const MAX_AWAITING_ACK: usize = 256;

pub(super) struct Outbox {
    /// How the logs name the connection.
    pub client: String,
    pub subscriptions: Subscriptions,
    next_packet_id: u16,
    /// Packet ids of our QoS 1 publishes the client has not acknowledged yet.
    awaiting_ack: Vec<u16>,
    wbuf: BytesMut,
    /// Set when the connection must close once what is written here went out (an injected
    /// fault that drops the connection around a delivery the hub pushed).
    closing: Option<String>,
    /// How long to wait before writing what is pending (an injected fault that delays a
    /// delivery the hub pushed).
    hold: Option<std::time::Duration>,
}

impl Outbox {
    pub(super) fn new(client: String) -> Outbox {
        Outbox {
            client,
            subscriptions: Subscriptions::default(),
            next_packet_id: 0,
            awaiting_ack: Vec::new(),
            wbuf: BytesMut::new(),
            closing: None,
            hold: None,
        }
    }

    /// Waits `delay` before what is pending is written (the longest asked for wins).
    pub(super) fn hold_before_flush(&mut self, delay: std::time::Duration) {
        self.hold = Some(self.hold.map_or(delay, |held| held.max(delay)));
    }

    /// How long to wait before writing what is pending, if anything asked to.
    pub(super) fn take_hold(&mut self) -> Option<std::time::Duration> {
        self.hold.take()
    }

    /// Closes the connection, for `reason`, once what is pending was written.
    pub(super) fn close_after_flush(&mut self, reason: String) {
        self.closing.get_or_insert(reason);
    }

    /// Whether the connection is to close after the next write: nothing more is delivered.
    pub(super) fn is_closing(&self) -> bool {
        self.closing.is_some()
    }

    /// Why the connection must close now that what was pending is written, if it must.
    pub(super) fn take_closing(&mut self) -> Option<String> {
        self.closing.take()
    }

    /// Encodes `packet` behind what is already waiting to be written.
    pub(super) fn write(&mut self, packet: Packet) {
        if let Err(e) = codec::encode(&packet, &mut self.wbuf) {
            tracing::error!(error = %e, "could not encode an outgoing packet");
        }
    }

    /// PUBACKs a QoS 1 publish (`None` for QoS 0: nothing to acknowledge).
    pub(super) fn ack(&mut self, packet_id: Option<u16>) {
        if let Some(id) = packet_id {
            self.write(Packet::PubAck(PubAck::new(id)));
        }
    }

    /// Publishes to the client at the best QoS of its matching subscriptions (max 1); not at
    /// all if it has none, as a broker would.
    pub(super) fn deliver(&mut self, topic: String, payload: Bytes) {
        let Some(qos) = self.subscriptions.qos_for(&topic) else {
            tracing::debug!(client = %self.client, %topic, "no subscription matches; response dropped");
            return;
        };
        tracing::debug!(client = %self.client, %topic, qos = qos as u8, body = %String::from_utf8_lossy(&payload), "publish sent");
        let mut publish = Publish::from_bytes(topic, qos, payload);
        if qos == QoS::AtLeastOnce {
            if self.awaiting_ack.len() >= MAX_AWAITING_ACK {
                // A client that never acknowledges must not grow this without bound.
                self.awaiting_ack.remove(0);
            }
            publish.pkid = self.await_ack();
        }
        self.write(Packet::Publish(publish));
    }

    /// A packet id for a QoS 1 publish, remembered until [`Outbox::acknowledged`].
    pub(super) fn await_ack(&mut self) -> u16 {
        loop {
            self.next_packet_id = self.next_packet_id.wrapping_add(1).max(1);
            if !self.awaiting_ack.contains(&self.next_packet_id) {
                self.awaiting_ack.push(self.next_packet_id);
                return self.next_packet_id;
            }
        }
    }

    /// The client sent PUBACK for `packet_id`.
    pub(super) fn acknowledged(&mut self, packet_id: u16) {
        self.awaiting_ack.retain(|id| *id != packet_id);
    }

    /// The bytes waiting to be written.
    pub(super) fn pending(&self) -> &[u8] {
        &self.wbuf
    }

    /// Everything pending was written.
    pub(super) fn written(&mut self) {
        self.wbuf.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::codec::{Subscribe, SubscribeReasonCode};
    use crate::mqtt::routes::Principal;

    fn outbox_subscribed_to(filter: &str, qos: QoS) -> Outbox {
        let mut out = Outbox::new("test".into());
        let mut subscribe = Subscribe::new(filter, qos);
        subscribe.pkid = 1;
        let principal = Principal::Device {
            device_id: "d1",
            module_id: None,
        };
        let ack = out.subscriptions.subscribe(principal, subscribe, "test");
        assert!(matches!(
            ack.return_codes[..],
            [SubscribeReasonCode::Success(_)]
        ));
        out
    }

    fn packets(out: &mut Outbox) -> Vec<Packet> {
        let mut buf = BytesMut::from(out.pending());
        out.written();
        std::iter::from_fn(|| codec::decode(&mut buf, 1 << 20).unwrap()).collect()
    }

    #[test]
    fn publishes_only_what_a_subscription_matches_at_its_qos() {
        let mut out = outbox_subscribed_to("$iothub/twin/res/#", QoS::AtLeastOnce);
        out.deliver(
            "$iothub/twin/res/200/?$rid=1".into(),
            Bytes::from_static(b"{}"),
        );
        out.deliver("$iothub/methods/POST/m/?$rid=1".into(), Bytes::new());
        let sent = packets(&mut out);
        let [Packet::Publish(publish)] = &sent[..] else {
            panic!("one publish expected: {sent:?}");
        };
        assert_eq!(publish.topic, "$iothub/twin/res/200/?$rid=1");
        assert_eq!((publish.qos, publish.pkid), (QoS::AtLeastOnce, 1));
    }

    #[test]
    fn packet_ids_skip_those_still_unacknowledged() {
        let mut out = Outbox::new("test".into());
        let first = out.await_ack();
        out.next_packet_id = u16::MAX;
        assert_eq!(
            out.await_ack(),
            first + 1,
            "wraps past 0 and the id still in use"
        );
        out.acknowledged(first);
        out.next_packet_id = u16::MAX;
        assert_eq!(out.await_ack(), first, "free again once acknowledged");
    }

    #[test]
    fn qos_0_publishes_carry_no_packet_id() {
        let mut out = outbox_subscribed_to("$iothub/twin/res/#", QoS::AtMostOnce);
        out.deliver("$iothub/twin/res/200/?$rid=1".into(), Bytes::new());
        out.ack(Some(9));
        let sent = packets(&mut out);
        assert!(
            matches!(&sent[..], [Packet::Publish(p), Packet::PubAck(a)] if p.qos == QoS::AtMostOnce && a.pkid == 9)
        );
    }
}
