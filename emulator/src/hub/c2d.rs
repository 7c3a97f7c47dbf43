//! Cloud-to-device messages (iot-hub-devguide-messages-c2d.md; protocol.md §5.5): a queue
//! per device of at most 50 pending messages of at most 64 KB, delivered while the device is
//! subscribed, completed by its acknowledgement (PUBACK over MQTT). A message delivered but
//! not acknowledged when the connection ends goes back to the queue and is delivered again.
//! How one connection delivers the queue is [`delivery`].

pub(crate) mod delivery;

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use super::Hub;
use super::connections::Outbound;
use super::error::HubError;
use super::feedback::FeedbackStatus;
use crate::faults::{FaultAction, FaultHit, FaultOperation};
use crate::pending::{Pending, Settled};

pub(crate) const MAX_C2D_BYTES: usize = 64 * 1024;
pub(crate) const MAX_PENDING: usize = 50;
/// IoT Hub's default `maxDeliveryCount`: a message delivered this often without being
/// completed is dead-lettered (feedback `DeliveryCountExceeded`).
pub const MAX_DELIVERY_COUNT: u32 = 10;
/// IoT Hub's default `defaultTtlAsIso8601`: a message sent without an expiry expires an hour
/// after it was enqueued (iot-hub-devguide-messages-c2d.md, "Cloud-to-device configuration
/// options").
pub(crate) const DEFAULT_TTL: Duration = Duration::from_secs(3600);

/// A message the service sends (the Rust handle's and the control port's input).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct C2dMessage {
    pub message_id: Option<String>,
    pub correlation_id: Option<String>,
    pub user_id: Option<String>,
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    /// Absolute expiry; expired messages are dropped instead of delivered. Without one, the
    /// message expires [`DEFAULT_TTL`] after it was enqueued.
    pub expiry: Option<SystemTime>,
    /// `iothub-ack` (`none`, `positive`, `negative`, `full`).
    pub ack: Option<String>,
    pub properties: BTreeMap<String, String>,
    #[serde(with = "crate::serde_b64")]
    pub body: Bytes,
}

impl C2dMessage {
    pub fn new(body: impl Into<Bytes>) -> C2dMessage {
        C2dMessage {
            body: body.into(),
            ..Default::default()
        }
    }

    pub(super) fn size(&self) -> usize {
        self.body.len()
            + self
                .properties
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>()
    }
}

/// A queued message, with the id it was given and whether it is out for delivery.
/// Stored without its HTTPS lock: after a restart every message is deliverable again.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct QueuedC2d {
    pub id: String,
    pub message: C2dMessage,
    pub enqueued: SystemTime,
    pub in_flight: bool,
    pub delivery_count: u32,
    /// Set while an HTTPS receive holds the message (`in_flight` is then true as well).
    #[serde(skip)]
    pub lock: Option<super::c2d_http::C2dLock>,
}

impl QueuedC2d {
    /// When the message expires: its own expiry, or [`DEFAULT_TTL`] after it was enqueued.
    pub fn expires_at(&self) -> SystemTime {
        self.message.expiry.unwrap_or_else(|| {
            self.enqueued
                .checked_add(DEFAULT_TTL)
                .unwrap_or(self.enqueued)
        })
    }
}

impl Hub {
    /// Queues `message` for `device_id`; returns the message id, to be acknowledged to the
    /// sender once durable. The device's connection is told only then.
    pub fn send_c2d(
        &self,
        device_id: &str,
        mut message: C2dMessage,
    ) -> Result<Pending<'_, String>, HubError> {
        // An injected fault or Azure's C2D throttle (`hub.c2d.send`) refuses before anything.
        if let Some(FaultHit {
            id,
            action: FaultAction::Refuse(refusal),
        }) = self.fault(FaultOperation::HubC2dSend, device_id)
        {
            return Err(HubError::from_fault(refusal, &id));
        }
        if self.device(device_id).is_none() {
            return Err(HubError::device_not_found(device_id));
        }
        let size = message.size();
        if size > MAX_C2D_BYTES {
            return Err(HubError::message_too_large(size, MAX_C2D_BYTES));
        }
        let id = message
            .message_id
            .get_or_insert_with(|| uuid::Uuid::new_v4().to_string())
            .clone();
        let queued = QueuedC2d {
            id: id.clone(),
            message,
            enqueued: self.clock.now(),
            in_flight: false,
            delivery_count: 0,
            lock: None,
        };
        let now = self.clock.now();
        let written = self.write_c2d(device_id, |queue, feedback| {
            dead_letter(queue, feedback, now);
            if queue.len() >= MAX_PENDING {
                return Err(HubError::queue_full(device_id));
            }
            queue.push_back(queued);
            Ok(())
        })?;
        let device_id = device_id.to_owned();
        Ok(written
            .on_settled(move |settled| {
                if settled == Settled::Stored {
                    self.connections().send(&device_id, Outbound::C2dAvailable);
                }
            })
            .map(|()| id))
    }

    /// The next message to deliver, marked in flight with its delivery count raised;
    /// expired ones are dropped on the way. `None` when nothing is deliverable, or when the
    /// store refused the change (then nothing changed and nothing is delivered). Delivering
    /// acknowledges nothing to anyone, so the count is not waited for: it is durable with the
    /// next fsync.
    pub fn c2d_take(&self, device_id: &str) -> Option<QueuedC2d> {
        if !self.c2d.contains_key(device_id) {
            return None;
        }
        let now = self.clock.now();
        let taken = self.write_c2d(device_id, |queue, feedback| {
            dead_letter(queue, feedback, now);
            Ok(queue.iter_mut().find(|m| !m.in_flight).map(|next| {
                next.in_flight = true;
                next.delivery_count += 1;
                next.clone()
            }))
        });
        match taken {
            // Dropped unawaited on purpose: see above.
            Ok(pending) => pending.into_value_unawaited().flatten(),
            Err(e) => {
                tracing::error!(device_id, error = %e, "a C2D delivery could not be recorded; not delivered");
                None
            }
        }
    }

    /// Removes every queued message that has expired by the emulator's clock (not one in
    /// flight), handing out its `Expired` feedback; returns how many. `Emulator::advance`
    /// calls it so a test that moved the clock sees the feedback without a device first
    /// asking for its messages. Resolves once the removals are durable.
    pub async fn expire_c2d(&self) -> Result<usize, HubError> {
        let now = self.clock.now();
        let device_ids: Vec<String> = self.c2d.iter().map(|e| e.key().clone()).collect();
        let mut expired = 0;
        for device_id in device_ids {
            let removed = self.write_c2d(&device_id, |queue, feedback| {
                let before = queue.len();
                dead_letter(queue, feedback, now);
                Ok(before.saturating_sub(queue.len()))
            })?;
            expired += removed.durable().await?;
        }
        Ok(expired)
    }

    /// The device acknowledged `message_id`: it leaves the queue (feedback `Success`);
    /// `false` when it was not queued.
    pub(crate) fn c2d_complete(
        &self,
        device_id: &str,
        message_id: &str,
    ) -> Result<Pending<'_, bool>, HubError> {
        self.c2d_remove(device_id, message_id, FeedbackStatus::Success)
    }

    /// The device refused `message_id` (an AMQP `rejected` disposition): it leaves the queue
    /// without being processed (feedback `Rejected`); `false` when it was not queued.
    pub fn c2d_reject(
        &self,
        device_id: &str,
        message_id: &str,
    ) -> Result<Pending<'_, bool>, HubError> {
        self.c2d_remove(device_id, message_id, FeedbackStatus::Rejected)
    }

    fn c2d_remove(
        &self,
        device_id: &str,
        message_id: &str,
        status: FeedbackStatus,
    ) -> Result<Pending<'_, bool>, HubError> {
        if !self.c2d.contains_key(device_id) {
            return Ok(Pending::ready(false));
        }
        self.write_c2d(device_id, |queue, feedback| {
            let Some(index) = queue.iter().position(|m| m.id == message_id) else {
                return Ok(false);
            };
            if let Some(done) = queue.remove(index) {
                feedback.push((done, status));
            }
            Ok(true)
        })
    }

    /// `DELETE /devices/{id}/commands`: drops every pending message (feedback `Purged`);
    /// returns how many.
    pub fn purge_c2d(&self, device_id: &str) -> Result<Pending<'_, usize>, HubError> {
        if self.device(device_id).is_none() {
            return Err(HubError::device_not_found(device_id));
        }
        if !self.c2d.contains_key(device_id) {
            return Ok(Pending::ready(0));
        }
        self.write_c2d(device_id, |queue, feedback| {
            let purged = queue.len();
            feedback.extend(queue.drain(..).map(|m| (m, FeedbackStatus::Purged)));
            Ok(purged)
        })
    }

    /// Delivery did not complete (the connection ended): deliver again later.
    pub fn c2d_release(&self, device_id: &str, message_id: &str) {
        if let Some(mut queue) = self.c2d.get_mut(device_id)
            && let Some(m) = queue.iter_mut().find(|m| m.id == message_id)
        {
            m.in_flight = false;
        }
    }

    /// Messages waiting for (or out for) delivery to `device_id`.
    pub fn c2d_pending(&self, device_id: &str) -> Vec<QueuedC2d> {
        self.c2d
            .get(device_id)
            .map(|q| q.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Remembers whether a CleanSession=0 device subscribed to its C2D topic, so the
    /// subscription survives reconnects as an MQTT persistent session does.
    pub fn set_persistent_c2d_subscription(&self, device_id: &str, subscribed: bool) {
        if subscribed {
            self.persistent_c2d.insert(device_id.to_owned());
        } else {
            self.persistent_c2d.remove(device_id);
        }
    }

    pub fn has_persistent_c2d_subscription(&self, device_id: &str) -> bool {
        self.persistent_c2d.contains(device_id)
    }
}

/// Removes messages that reached a dead end before delivery by `now` (the emulator's clock) —
/// expired, or delivered [`MAX_DELIVERY_COUNT`] times — handing out their feedback.
pub(super) fn dead_letter(
    queue: &mut VecDeque<QueuedC2d>,
    feedback: &mut Vec<(QueuedC2d, FeedbackStatus)>,
    now: SystemTime,
) {
    let mut index = 0;
    while index < queue.len() {
        let m = &queue[index];
        let status = if m.in_flight {
            None
        } else if m.expires_at() <= now {
            Some(FeedbackStatus::Expired)
        } else if m.delivery_count >= MAX_DELIVERY_COUNT {
            Some(FeedbackStatus::DeliveryCountExceeded)
        } else {
            None
        };
        match status.and_then(|status| queue.remove(index).map(|m| (status, m))) {
            Some((status, removed)) => feedback.push((removed, status)),
            None => index += 1,
        }
    }
}
