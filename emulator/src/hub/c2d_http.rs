//! Cloud-to-device messages as the device HTTPS API settles them (protocol.md §6): a receive
//! locks the next message for one minute under a fresh lock token; the device then completes,
//! rejects or abandons it by that token. A lock that ran out is lost: the message becomes
//! deliverable again and the old token is refused with 412002 DeviceMessageLockLost.
//!
//! The lock lives on the queued message itself and sets `in_flight`, so MQTT delivery, which
//! only takes messages not in flight, never hands out a message an HTTPS client holds.

use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

use super::Hub;
use super::c2d::{QueuedC2d, dead_letter};
use super::connections::Outbound;
use super::error::HubError;
use super::feedback::FeedbackStatus;
use crate::pending::{Pending, Settled};

/// IoT Hub's C2D lock timeout (troubleshoot-error-codes.md, 412002).
pub(crate) const LOCK_DURATION: Duration = Duration::from_secs(60);

/// An HTTPS receive's hold on a queued message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct C2dLock {
    /// Sent to the device in the `ETag` header; names the message in later settle calls.
    pub token: String,
    pub expires: SystemTime,
}

/// What the device does with a message it received over HTTPS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    /// Processed: the message leaves the queue.
    Complete,
    /// Refused: the message leaves the queue without being processed.
    Reject,
    /// Handed back: the message is delivered again later.
    Abandon,
}

impl Hub {
    /// Locks and returns the next deliverable message for `device_id` (its delivery count
    /// raised, `lock` set); `None` when nothing is pending, or when the store refused the
    /// change (nothing changed then). Like [`Hub::c2d_take`], not waited for.
    pub fn c2d_receive_locked(&self, device_id: &str, now: SystemTime) -> Option<QueuedC2d> {
        if !self.c2d.contains_key(device_id) {
            return None;
        }
        let received = self.write_c2d(device_id, |queue, feedback| {
            release_expired_locks(queue, now);
            dead_letter(queue, feedback, now);
            Ok(queue.iter_mut().find(|m| !m.in_flight).map(|next| {
                next.in_flight = true;
                next.delivery_count += 1;
                next.lock = Some(C2dLock {
                    token: uuid::Uuid::new_v4().to_string(),
                    expires: now + LOCK_DURATION,
                });
                next.clone()
            }))
        });
        match received {
            Ok(pending) => pending.into_value_unawaited().flatten(),
            Err(e) => {
                tracing::error!(device_id, error = %e, "a C2D receive could not be recorded; nothing delivered");
                None
            }
        }
    }

    /// Settles the message locked under `lock_token`. An unknown token, one already settled
    /// and one whose lock expired all fail the same way, as in IoT Hub.
    pub fn c2d_settle(
        &self,
        device_id: &str,
        lock_token: &str,
        settlement: Settlement,
        now: SystemTime,
    ) -> Result<Pending<'_, ()>, HubError> {
        let lost = || HubError::device_message_lock_lost(device_id, lock_token);
        if !self.c2d.contains_key(device_id) {
            return Err(lost());
        }
        let written = self.write_c2d(device_id, |queue, feedback| {
            release_expired_locks(queue, now);
            let index = queue
                .iter()
                .position(|m| m.lock.as_ref().is_some_and(|l| l.token == lock_token))
                .ok_or_else(lost)?;
            match settlement {
                Settlement::Complete | Settlement::Reject => {
                    let status = if settlement == Settlement::Complete {
                        FeedbackStatus::Success
                    } else {
                        FeedbackStatus::Rejected
                    };
                    if let Some(settled) = queue.remove(index) {
                        feedback.push((settled, status));
                    }
                }
                Settlement::Abandon => {
                    if let Some(m) = queue.get_mut(index) {
                        m.lock = None;
                        m.in_flight = false;
                    }
                }
            }
            Ok(())
        })?;
        let device_id = device_id.to_owned();
        Ok(written.on_settled(move |settled| {
            // An MQTT subscriber of the same device may take an abandoned message now.
            if settled == Settled::Stored && settlement == Settlement::Abandon {
                self.connections().send(&device_id, Outbound::C2dAvailable);
            }
        }))
    }
}

/// Messages whose HTTPS lock ran out become deliverable again; their tokens stop working.
fn release_expired_locks(queue: &mut VecDeque<QueuedC2d>, now: SystemTime) {
    for m in queue.iter_mut() {
        if m.lock.as_ref().is_some_and(|l| l.expires <= now) {
            m.lock = None;
            m.in_flight = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::keys::SymmetricKey;
    use crate::hub::c2d::C2dMessage;
    use crate::pending::WaitStored;

    fn hub_with_device() -> Hub {
        let hub = Hub::new("h.example", Vec::new(), 10);
        let key =
            SymmetricKey::from_base64("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").unwrap();
        hub.provision_device("d", key.clone(), key, None);
        hub
    }

    #[test]
    fn lock_hides_the_message_until_it_expires_then_the_token_is_lost() {
        let hub = hub_with_device();
        hub.send_c2d("d", C2dMessage::new("a"))
            .wait_stored()
            .unwrap();
        let now = SystemTime::now();
        let first = hub.c2d_receive_locked("d", now).unwrap();
        assert_eq!(first.delivery_count, 1);
        assert!(hub.c2d_receive_locked("d", now).is_none());
        assert!(
            hub.c2d_take("d").is_none(),
            "MQTT must not take a locked message"
        );

        let later = now + LOCK_DURATION + Duration::from_secs(1);
        let again = hub.c2d_receive_locked("d", later).unwrap();
        assert_eq!(again.delivery_count, 2);
        let old = first.lock.unwrap().token;
        let err = hub
            .c2d_settle("d", &old, Settlement::Complete, later)
            .wait_stored()
            .unwrap_err();
        assert_eq!((err.code, err.name), (412002, "DeviceMessageLockLost"));
        let new = again.lock.unwrap().token;
        hub.c2d_settle("d", &new, Settlement::Complete, later)
            .wait_stored()
            .unwrap();
        assert!(hub.c2d_pending("d").is_empty());
        assert!(
            hub.c2d_settle("d", &new, Settlement::Complete, later)
                .wait_stored()
                .is_err()
        );
    }

    #[test]
    fn abandon_makes_the_message_deliverable_and_reject_removes_it() {
        let hub = hub_with_device();
        hub.send_c2d("d", C2dMessage::new("a"))
            .wait_stored()
            .unwrap();
        let now = SystemTime::now();
        let token = hub
            .c2d_receive_locked("d", now)
            .unwrap()
            .lock
            .unwrap()
            .token;
        hub.c2d_settle("d", &token, Settlement::Abandon, now)
            .wait_stored()
            .unwrap();
        let again = hub.c2d_receive_locked("d", now).unwrap();
        assert_eq!(again.delivery_count, 2);
        hub.c2d_settle("d", &again.lock.unwrap().token, Settlement::Reject, now)
            .wait_stored()
            .unwrap();
        assert!(hub.c2d_receive_locked("d", now).is_none());
    }
}
