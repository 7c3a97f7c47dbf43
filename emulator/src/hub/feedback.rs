//! Cloud-to-device feedback (iot-hub-devguide-messages-c2d.md "Message feedback"): when a
//! C2D message asked for acknowledgement (`iothub-ack` positive, negative or full) and reaches
//! a final state, the hub records its outcome. The service reads the records in batches from
//! `/messages/serviceBound/feedback`, each batch locked for a minute under a token, then
//! completes (deletes) or abandons (returns) it — the same lifecycle as a C2D message.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use super::Hub;
use super::c2d::QueuedC2d;
use super::error::HubError;
use crate::timefmt::utc_timestamp;

/// How long a received feedback batch stays locked, as for C2D messages.
pub(crate) const FEEDBACK_LOCK: Duration = Duration::from_secs(60);

/// The most records kept unread; older ones are dropped first, as expired feedback would be.
const MAX_PENDING_RECORDS: usize = 10_000;

/// A C2D message's final state (the `statusCode` of a record).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedbackStatus {
    Success = 0,
    Expired = 1,
    DeliveryCountExceeded = 2,
    Rejected = 3,
    Purged = 4,
}

impl FeedbackStatus {
    fn description(self) -> &'static str {
        match self {
            FeedbackStatus::Success => "Success",
            FeedbackStatus::Expired => "Message Expired",
            FeedbackStatus::DeliveryCountExceeded => "Message Delivery Count Exceeded",
            FeedbackStatus::Rejected => "Message Rejected",
            FeedbackStatus::Purged => "Message Purged",
        }
    }

    /// The `statusCode` of a record: the name (the service writes the enum by name; the
    /// .NET SDK's `FeedbackStatusCode` is a string enum and the Java SDK parses names).
    pub fn name(self) -> &'static str {
        match self {
            FeedbackStatus::Success => "Success",
            FeedbackStatus::Expired => "Expired",
            FeedbackStatus::DeliveryCountExceeded => "DeliveryCountExceeded",
            FeedbackStatus::Rejected => "Rejected",
            FeedbackStatus::Purged => "Purged",
        }
    }

    /// Whether a message with `iothub-ack` = `ack` asked for this outcome to be reported.
    fn requested_by(self, ack: Option<&str>) -> bool {
        match ack.map(str::to_ascii_lowercase).as_deref() {
            Some("full") => true,
            Some("positive") => self == FeedbackStatus::Success,
            Some("negative") => self != FeedbackStatus::Success,
            _ => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedbackRecord {
    pub original_message_id: String,
    pub device_id: String,
    pub device_generation_id: String,
    pub status: FeedbackStatus,
    pub enqueued: SystemTime,
}

impl FeedbackRecord {
    /// The record as the service sends it (iot-hub-devguide-messages-c2d.md "Message
    /// feedback", and a real hub's AMQP feedback body quoted in Azure/azure-content#4864):
    /// camelCase keys, `statusCode` by name.
    pub fn to_json(&self) -> Value {
        json!({
            "originalMessageId": self.original_message_id,
            "enqueuedTimeUtc": utc_timestamp(self.enqueued),
            "statusCode": self.status.name(),
            "description": self.status.description(),
            "deviceId": self.device_id,
            "deviceGenerationId": self.device_generation_id,
        })
    }
}

/// A batch of records handed to a service receiver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedbackBatch {
    pub lock_token: String,
    pub message_id: String,
    pub enqueued: SystemTime,
    pub records: Vec<FeedbackRecord>,
}

impl FeedbackBatch {
    pub fn body(&self) -> Value {
        Value::Array(self.records.iter().map(FeedbackRecord::to_json).collect())
    }
}

#[derive(Default)]
pub(crate) struct FeedbackQueue {
    state: Mutex<FeedbackState>,
    /// Woken when records become readable, so AMQP feedback links need not poll.
    readable: tokio::sync::Notify,
}

#[derive(Default)]
struct FeedbackState {
    pending: VecDeque<FeedbackRecord>,
    /// Batches out for reading, by lock token, with when their lock ends.
    locked: BTreeMap<String, (FeedbackBatch, SystemTime)>,
}

impl FeedbackState {
    /// Batches whose lock ran out go back to the front of the queue.
    fn release_expired(&mut self, now: SystemTime) {
        let expired: Vec<String> = self
            .locked
            .iter()
            .filter(|(_, (_, until))| *until <= now)
            .map(|(token, _)| token.clone())
            .collect();
        for token in expired {
            if let Some((batch, _)) = self.locked.remove(&token) {
                for record in batch.records.into_iter().rev() {
                    self.pending.push_front(record);
                }
            }
        }
    }

    /// Removes the batch locked under `lock_token` (after releasing expired locks): 412 when
    /// the lock is unknown or ran out.
    fn take_locked(
        &mut self,
        lock_token: &str,
        now: SystemTime,
    ) -> Result<FeedbackBatch, HubError> {
        self.release_expired(now);
        self.locked
            .remove(lock_token)
            .map(|(batch, _)| batch)
            .ok_or_else(|| HubError::feedback_lock_lost(lock_token))
    }
}

impl FeedbackQueue {
    fn lock(&self) -> std::sync::MutexGuard<'_, FeedbackState> {
        // A panic elsewhere while holding the lock leaves plain data behind; keep serving it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, record: FeedbackRecord) {
        let mut state = self.lock();
        if state.pending.len() >= MAX_PENDING_RECORDS {
            state.pending.pop_front();
        }
        state.pending.push_back(record);
        drop(state);
        self.readable.notify_waiters();
    }
}

impl Hub {
    /// Records the final state of `message` for `device_id` if its `iothub-ack` asked for it.
    pub(super) fn record_feedback(
        &self,
        device_id: &str,
        message: &QueuedC2d,
        status: FeedbackStatus,
    ) {
        if !status.requested_by(message.message.ack.as_deref()) {
            return;
        }
        let device_generation_id = self
            .device(device_id)
            .map(|d| d.generation_id)
            .unwrap_or_default();
        self.feedback.push(FeedbackRecord {
            original_message_id: message.id.clone(),
            device_id: device_id.to_owned(),
            device_generation_id: device_generation_id.to_string(),
            status,
            enqueued: self.clock.now(),
        });
    }

    /// Takes every unread record as one batch, locked for [`FEEDBACK_LOCK`]; `None` when
    /// there is nothing to read.
    pub fn receive_feedback(&self, now: SystemTime) -> Option<FeedbackBatch> {
        let mut state = self.feedback.lock();
        state.release_expired(now);
        if state.pending.is_empty() {
            return None;
        }
        let batch = FeedbackBatch {
            lock_token: uuid::Uuid::new_v4().to_string(),
            message_id: uuid::Uuid::new_v4().to_string(),
            enqueued: now,
            records: state.pending.drain(..).collect(),
        };
        state.locked.insert(
            batch.lock_token.clone(),
            (batch.clone(), now + FEEDBACK_LOCK),
        );
        Some(batch)
    }

    /// Deletes a received batch (`DELETE /messages/serviceBound/feedback/{lockToken}`).
    pub(crate) fn complete_feedback(
        &self,
        lock_token: &str,
        now: SystemTime,
    ) -> Result<(), HubError> {
        self.feedback.lock().take_locked(lock_token, now).map(drop)
    }

    /// Returns a received batch for reading again (`POST …/{lockToken}/abandon`).
    pub(crate) fn abandon_feedback(
        &self,
        lock_token: &str,
        now: SystemTime,
    ) -> Result<(), HubError> {
        let mut state = self.feedback.lock();
        let batch = state.take_locked(lock_token, now)?;
        for record in batch.records.into_iter().rev() {
            state.pending.push_front(record);
        }
        drop(state);
        self.feedback.readable.notify_waiters();
        Ok(())
    }

    /// Woken (`notify_waiters`) whenever feedback records are added or returned. Create and
    /// `enable` the `notified()` future before calling [`Hub::receive_feedback`], so a record
    /// added in between is not missed; locks that run out are not signalled.
    pub(crate) fn feedback_readable(&self) -> &tokio::sync::Notify {
        &self.feedback.readable
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str) -> FeedbackRecord {
        FeedbackRecord {
            original_message_id: id.into(),
            device_id: "d".into(),
            device_generation_id: "g".into(),
            status: FeedbackStatus::Success,
            enqueued: SystemTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn ack_modes_pick_the_outcomes_reported() {
        use FeedbackStatus::*;
        for (ack, reported) in [
            (
                Some("full"),
                vec![Success, Expired, DeliveryCountExceeded, Rejected, Purged],
            ),
            (Some("positive"), vec![Success]),
            (
                Some("negative"),
                vec![Expired, DeliveryCountExceeded, Rejected, Purged],
            ),
            (Some("none"), vec![]),
            (None, vec![]),
        ] {
            let got: Vec<FeedbackStatus> =
                [Success, Expired, DeliveryCountExceeded, Rejected, Purged]
                    .into_iter()
                    .filter(|s| s.requested_by(ack))
                    .collect();
            assert_eq!(got, reported, "{ack:?}");
        }
    }

    #[test]
    fn batches_lock_complete_abandon_and_expire() {
        let hub = Hub::new("h", Vec::new(), 1);
        let now = SystemTime::now();
        assert!(hub.receive_feedback(now).is_none());
        hub.feedback.push(record("a"));
        hub.feedback.push(record("b"));
        let first = hub.receive_feedback(now).unwrap();
        assert_eq!(first.records.len(), 2);
        assert_eq!(first.body()[0]["originalMessageId"], "a");
        assert_eq!(first.body()[0]["statusCode"], "Success");
        assert!(hub.receive_feedback(now).is_none(), "locked");

        hub.abandon_feedback(&first.lock_token, now).unwrap();
        assert_eq!(
            hub.complete_feedback(&first.lock_token, now)
                .unwrap_err()
                .code,
            412002
        );
        let second = hub.receive_feedback(now).unwrap();
        assert_eq!(
            second.records, first.records,
            "abandoned records come back in order"
        );

        let later = now + FEEDBACK_LOCK + Duration::from_secs(1);
        let third = hub.receive_feedback(later).unwrap();
        assert_eq!(third.records.len(), 2, "an expired lock returns the batch");
        assert!(hub.complete_feedback(&second.lock_token, later).is_err());
        hub.complete_feedback(&third.lock_token, later).unwrap();
        assert!(hub.receive_feedback(later).is_none());
    }
}
