//! Delivering a device's cloud-to-device queue over one connection, whatever the transport
//! (the MQTT session, the AMQP device C2D link). The rules live here so every
//! transport shares them:
//!
//! - at most [`WINDOW`] messages are out for delivery at a time; each stays queued until the
//!   device settles it: complete (feedback `Success`), reject (feedback `Rejected`) or abandon
//!   (delivered again);
//! - a message sent where nothing will acknowledge it (MQTT QoS 0) is complete once sent;
//! - what is still out when the connection ends goes back to the queue and is delivered again
//!   (its delivery count tells the transport it is a redelivery);
//! - a persistent session (MQTT CleanSession 0) keeps the device's C2D subscription across
//!   connections; a clean one forgets it. Modules have no C2D queue;
//! - an injected `hub.c2d` fault (docs/faults.md) holds a delivery back, or has the transport
//!   drop the connection instead of sending (the message goes back to the queue) or right
//!   after sending (it stays out, so it is delivered again on the next connection).
//!
//! The transport decides *whether* the device is subscribed (its filters) and how it names a
//! delivery on the wire (packet ids, delivery tags); it keeps its own map from those names to
//! the message ids this type hands out.

use std::sync::Arc;
use std::time::Duration;

use super::QueuedC2d;
use crate::faults::{FaultAction, FaultHit, FaultOperation};
use crate::hub::error::HubError;
use crate::hub::{Hub, IdentityRef};

/// Messages out for delivery at once on one connection.
pub(crate) const WINDOW: usize = 16;

/// A message to send, from [`C2dDelivery::next_delivery`]: after `hold` if a fault delays
/// it, and then, if a fault says so, with the connection dropped before the device can settle
/// it (`drop_after`: the fault's id).
pub(crate) struct Outgoing {
    pub(crate) queued: QueuedC2d,
    pub(crate) hold: Option<Duration>,
    pub(crate) drop_after: Option<String>,
}

/// A fault drops the connection instead of sending: the message is back in the queue.
pub(crate) struct DropInstead {
    pub(crate) fault_id: String,
}

/// One connection's share of a device's C2D queue.
pub(crate) struct C2dDelivery {
    hub: Arc<Hub>,
    device_id: String,
    /// Whether this connection's subscription outlives it.
    persistent_session: bool,
    /// Ids of the messages sent and not settled yet (a list: a sender may reuse an id).
    in_flight: Vec<String>,
}

impl C2dDelivery {
    /// Starts delivery to `who` on a new connection; `None` for a module, which has no C2D
    /// queue. The flag says whether a persistent C2D subscription was restored: the
    /// connection then counts as subscribed (MQTT's session-present). A clean session
    /// forgets any earlier one.
    pub(crate) fn open(
        hub: Arc<Hub>,
        who: IdentityRef<'_>,
        persistent_session: bool,
    ) -> Option<(C2dDelivery, bool)> {
        if who.module_id.is_some() {
            return None;
        }
        let device_id = who.device_id.to_owned();
        let restored = if persistent_session {
            hub.has_persistent_c2d_subscription(&device_id)
        } else {
            hub.set_persistent_c2d_subscription(&device_id, false);
            false
        };
        let delivery = C2dDelivery {
            hub,
            device_id,
            persistent_session,
            in_flight: Vec::new(),
        };
        Some((delivery, restored))
    }

    pub(crate) fn device_id(&self) -> &str {
        &self.device_id
    }

    /// Records whether the device is now subscribed to its C2D messages; in a persistent
    /// session that outlives the connection.
    pub(crate) fn subscribed(&self, subscribed: bool) {
        if self.persistent_session {
            self.hub
                .set_persistent_c2d_subscription(&self.device_id, subscribed);
        }
    }

    /// The next message to send, if the window has room and one is deliverable; it is out for
    /// delivery until settled ([`C2dDelivery::complete`], [`C2dDelivery::sent_unacknowledged`],
    /// …) or the connection ends.
    pub(crate) fn next(&mut self) -> Option<QueuedC2d> {
        if self.in_flight.len() >= WINDOW {
            return None;
        }
        let queued = self.hub.c2d_take(&self.device_id)?;
        self.in_flight.push(queued.id.clone());
        Some(queued)
    }

    /// [`C2dDelivery::next`] with what an injected `hub.c2d` fault does to it.
    pub(crate) fn next_delivery(&mut self) -> Option<Result<Outgoing, DropInstead>> {
        let queued = self.next()?;
        let mut outgoing = Outgoing {
            queued,
            hold: None,
            drop_after: None,
        };
        // A refusal is for a device's HTTPS receive: a delivery passes such a rule by.
        let Some(FaultHit { id, action }) =
            self.hub
                .fault_where(FaultOperation::HubC2d, &self.device_id, |rule| {
                    !matches!(rule.action(), FaultAction::Refuse(_))
                })
        else {
            return Some(Ok(outgoing));
        };
        // `FaultRule::validate` keeps stalls off hub.c2d.
        match action {
            FaultAction::Drop { after_ack: false } => {
                self.abandon(&outgoing.queued.id);
                return Some(Err(DropInstead { fault_id: id }));
            }
            FaultAction::Drop { after_ack: true } => outgoing.drop_after = Some(id),
            FaultAction::Delay(delay) => outgoing.hold = Some(delay),
            FaultAction::Refuse(_) | FaultAction::Stall => {}
        }
        Some(Ok(outgoing))
    }

    /// `message_id` was sent where nothing acknowledges it (MQTT QoS 0): sent is done, so it
    /// is completed at once. Nobody is told, so that completion is not waited for (it is
    /// durable with the next fsync).
    pub(crate) fn sent_unacknowledged(&mut self, message_id: &str) {
        self.forget(message_id);
        match self.hub.c2d_complete(&self.device_id, message_id) {
            Ok(pending) => drop(pending.into_value_unawaited()),
            Err(e) => {
                tracing::error!(device_id = %self.device_id, error = %e, "a QoS 0 C2D completion could not be stored")
            }
        }
    }

    /// The device acknowledged `message_id`: it leaves the queue once that is stored. Nothing
    /// is acknowledged to the device, so a completion that cannot be stored is logged and the
    /// message stays queued, to be delivered again.
    pub(crate) async fn complete(&mut self, message_id: &str) {
        if let Some(index) = self.in_flight.iter().position(|id| id == message_id) {
            self.in_flight.remove(index);
        }
        let completed = match self.hub.c2d_complete(&self.device_id, message_id) {
            Ok(pending) => pending.durable().await.map_err(HubError::from),
            Err(e) => Err(e),
        };
        if let Err(e) = completed {
            tracing::error!(device_id = %self.device_id, message_id, error = %e, "a C2D completion could not be stored");
        }
    }

    /// The device refused `message_id` (AMQP `rejected`): it leaves the queue, feedback
    /// `Rejected`, once that is stored. Like [`C2dDelivery::complete`], a failure is logged and
    /// the message stays queued.
    pub(crate) async fn reject(&mut self, message_id: &str) {
        self.forget(message_id);
        let rejected = match self.hub.c2d_reject(&self.device_id, message_id) {
            Ok(pending) => pending.durable().await.map_err(HubError::from),
            Err(e) => Err(e),
        };
        if let Err(e) = rejected {
            tracing::error!(device_id = %self.device_id, message_id, error = %e, "a C2D rejection could not be stored");
        }
    }

    /// The device handed `message_id` back (AMQP `released` or `modified`): it is delivered
    /// again, its delivery count telling the redelivery, until [`super::MAX_DELIVERY_COUNT`]
    /// dead-letters it.
    pub(crate) fn abandon(&mut self, message_id: &str) {
        self.forget(message_id);
        self.hub.c2d_release(&self.device_id, message_id);
    }

    fn forget(&mut self, message_id: &str) {
        if let Some(index) = self.in_flight.iter().position(|id| id == message_id) {
            self.in_flight.remove(index);
        }
    }

    /// Messages sent and not settled yet.
    #[cfg(test)]
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.len()
    }
}

impl Drop for C2dDelivery {
    /// The connection ended: what it delivered and the device did not settle goes back to the
    /// queue for the next connection.
    fn drop(&mut self) {
        for message_id in &self.in_flight {
            self.hub.c2d_release(&self.device_id, message_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::c2d::C2dMessage;

    fn hub_with_messages(count: usize) -> Arc<Hub> {
        let key = crate::auth::keys::SymmetricKey::from_base64(
            "c2VydmljZSBrZXkgZm9yIHRlc3RzIG9ubHkgMTIzNA==",
        )
        .unwrap();
        let hub = Hub::new("hub.example", Vec::new(), 1);
        hub.provision_device("d1", key.clone(), key, None);
        for n in 0..count {
            let mut message = C2dMessage::new(format!("m{n}"));
            message.message_id = Some(format!("m{n}"));
            hub.send_c2d("d1", message).unwrap().wait().unwrap();
        }
        Arc::new(hub)
    }

    fn open(hub: &Arc<Hub>, persistent: bool) -> (C2dDelivery, bool) {
        C2dDelivery::open(hub.clone(), IdentityRef::device("d1"), persistent).unwrap()
    }

    #[test]
    fn at_most_a_window_is_out_until_acknowledged() {
        let hub = hub_with_messages(WINDOW + 2);
        let (mut delivery, _) = open(&hub, false);
        let sent: Vec<_> = std::iter::from_fn(|| delivery.next())
            .map(|m| m.id)
            .collect();
        assert_eq!(sent.len(), WINDOW);
        assert_eq!(delivery.in_flight(), WINDOW);
        assert_eq!(hub.c2d_pending("d1").len(), WINDOW + 2, "still queued");
    }

    #[tokio::test]
    async fn an_acknowledgement_completes_and_frees_a_place() {
        let hub = hub_with_messages(WINDOW + 1);
        let (mut delivery, _) = open(&hub, false);
        while delivery.next().is_some() {}
        delivery.complete("m0").await;
        assert_eq!(hub.c2d_pending("d1").len(), WINDOW);
        let next = delivery.next().unwrap();
        assert_eq!(next.id, format!("m{WINDOW}"));
    }

    #[test]
    fn sent_without_acknowledgement_is_complete_at_once() {
        let hub = hub_with_messages(WINDOW + 4);
        let (mut delivery, _) = open(&hub, false);
        let sent = std::iter::from_fn(|| {
            let queued = delivery.next()?;
            delivery.sent_unacknowledged(&queued.id);
            Some(queued)
        })
        .count();
        assert_eq!(sent, WINDOW + 4, "no window without acknowledgements");
        assert_eq!(delivery.in_flight(), 0);
        assert!(hub.c2d_pending("d1").is_empty());
    }

    #[test]
    fn what_is_not_acknowledged_is_delivered_again_on_the_next_connection() {
        let hub = hub_with_messages(1);
        let (mut first, _) = open(&hub, false);
        assert_eq!(first.next().unwrap().delivery_count, 1);
        drop(first);
        let (mut second, _) = open(&hub, false);
        let again = second.next().unwrap();
        assert_eq!((again.id.as_str(), again.delivery_count), ("m0", 2));
    }

    #[test]
    fn a_persistent_session_keeps_the_subscription_and_a_clean_one_forgets_it() {
        let hub = hub_with_messages(0);
        let (persistent, restored) = open(&hub, true);
        assert!(!restored, "nothing to restore yet");
        persistent.subscribed(true);
        drop(persistent);
        let (again, restored) = open(&hub, true);
        assert!(restored);
        drop(again);
        let (clean, restored) = open(&hub, false);
        assert!(!restored);
        clean.subscribed(true);
        drop(clean);
        assert!(
            !open(&hub, true).1,
            "a clean session forgot it and remembers nothing"
        );
    }

    #[test]
    fn modules_have_no_c2d_queue() {
        let hub = hub_with_messages(1);
        assert!(C2dDelivery::open(hub, IdentityRef::module("d1", "m1"), true).is_none());
    }
}
