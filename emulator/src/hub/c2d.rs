//! Cloud-to-device messages (iot-hub-devguide-messages-c2d.md; protocol.md §5.5): a queue
//! per device of at most 50 pending messages of at most 64 KB, delivered while the device is
//! subscribed, completed by its acknowledgement (PUBACK over MQTT). A message delivered but
//! not acknowledged when the connection ends goes back to the queue and is delivered again.

use std::collections::{BTreeMap, VecDeque};
use std::time::SystemTime;

use bytes::Bytes;

use super::Hub;
use super::connections::Outbound;
use super::error::HubError;
use super::feedback::FeedbackStatus;

pub const MAX_C2D_BYTES: usize = 64 * 1024;
pub const MAX_PENDING: usize = 50;
/// IoT Hub's default `maxDeliveryCount`: a message delivered this often without being
/// completed is dead-lettered (feedback `DeliveryCountExceeded`).
pub const MAX_DELIVERY_COUNT: u32 = 10;

/// A message the service sends (the Rust handle's and the control port's input).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct C2dMessage {
    pub message_id: Option<String>,
    pub correlation_id: Option<String>,
    pub user_id: Option<String>,
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    /// Absolute expiry; expired messages are dropped instead of delivered.
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

impl Hub {
    /// Queues `message` for `device_id` and tells its connection; returns the message id.
    pub fn send_c2d(&self, device_id: &str, mut message: C2dMessage) -> Result<String, HubError> {
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
        {
            let mut queue = self.c2d.entry(device_id.to_owned()).or_default();
            self.dead_letter(device_id, &mut queue);
            if queue.len() >= MAX_PENDING {
                return Err(HubError::queue_full(device_id));
            }
            queue.push_back(QueuedC2d {
                id: id.clone(),
                message,
                enqueued: SystemTime::now(),
                in_flight: false,
                delivery_count: 0,
                lock: None,
            });
        }
        if let Err(e) = self.persist_c2d(device_id) {
            // Not acknowledged, so not queued either: a failed save leaves the queue as it was.
            if let Some(mut queue) = self.c2d.get_mut(device_id)
                && let Some(index) = queue.iter().rposition(|m| m.id == id)
            {
                queue.remove(index);
            }
            return Err(e);
        }
        self.connections().send(device_id, Outbound::C2dAvailable);
        Ok(id)
    }

    /// The next message to deliver, marked in flight; expired ones are dropped on the way.
    pub fn c2d_take(&self, device_id: &str) -> Option<QueuedC2d> {
        let taken = {
            let mut queue = self.c2d.get_mut(device_id)?;
            self.dead_letter(device_id, &mut queue);
            queue.iter_mut().find(|m| !m.in_flight).map(|next| {
                next.in_flight = true;
                next.delivery_count += 1;
                next.clone()
            })
        };
        // The delivery count (and anything dead-lettered) survives a restart.
        self.persist_c2d_or_log(device_id);
        taken
    }

    /// The device acknowledged `message_id`: it leaves the queue (feedback `Success`).
    pub fn c2d_complete(&self, device_id: &str, message_id: &str) -> bool {
        {
            let Some(mut queue) = self.c2d.get_mut(device_id) else {
                return false;
            };
            let Some(index) = queue.iter().position(|m| m.id == message_id) else {
                return false;
            };
            if let Some(done) = queue.remove(index) {
                self.record_feedback(device_id, &done, FeedbackStatus::Success);
            }
        }
        self.persist_c2d_or_log(device_id);
        true
    }

    /// `DELETE /devices/{id}/commands`: drops every pending message (feedback `Purged`);
    /// returns how many.
    pub fn purge_c2d(&self, device_id: &str) -> Result<usize, HubError> {
        if self.device(device_id).is_none() {
            return Err(HubError::device_not_found(device_id));
        }
        let purged: Vec<QueuedC2d> = self
            .c2d
            .get_mut(device_id)
            .map(|mut queue| queue.drain(..).collect())
            .unwrap_or_default();
        self.persist_c2d(device_id)?;
        for message in &purged {
            self.record_feedback(device_id, message, FeedbackStatus::Purged);
        }
        Ok(purged.len())
    }

    /// Removes messages that reached a dead end before delivery — expired, or delivered
    /// [`MAX_DELIVERY_COUNT`] times — recording their feedback.
    pub(super) fn dead_letter(&self, device_id: &str, queue: &mut VecDeque<QueuedC2d>) {
        let now = SystemTime::now();
        let mut index = 0;
        while index < queue.len() {
            let m = &queue[index];
            let status = if m.in_flight {
                None
            } else if m.message.expiry.is_some_and(|at| at <= now) {
                Some(FeedbackStatus::Expired)
            } else if m.delivery_count >= MAX_DELIVERY_COUNT {
                Some(FeedbackStatus::DeliveryCountExceeded)
            } else {
                None
            };
            match status.and_then(|status| queue.remove(index).map(|m| (status, m))) {
                Some((status, removed)) => self.record_feedback(device_id, &removed, status),
                None => index += 1,
            }
        }
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
