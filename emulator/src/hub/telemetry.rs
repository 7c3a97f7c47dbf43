//! Device-to-cloud telemetry as the hub stores it: a bounded, queryable log per hub plus a
//! broadcast feed for live observers (the Rust handle's stream, the control port).
//!
//! A message is appended *before* the transport acknowledges it (PUBACK), so whatever a
//! device was told is delivered can be read back here.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::{broadcast, watch};
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::{Stream, StreamExt};

use crate::timefmt::utc_timestamp;

/// System properties a device can set on a message (the `$.xx` keys of the MQTT property
/// bag, the `IoTHub-*` headers over HTTPS).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SystemProperties {
    pub message_id: Option<String>,
    pub correlation_id: Option<String>,
    pub user_id: Option<String>,
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub to: Option<String>,
    pub absolute_expiry_time: Option<String>,
    pub output_name: Option<String>,
    pub interface_id: Option<String>,
    pub creation_time: Option<String>,
    pub component: Option<String>,
}

impl SystemProperties {
    /// Names as Event Hubs consumers of IoT Hub's built-in endpoint see them.
    fn entries(&self) -> impl Iterator<Item = (&'static str, &String)> {
        [
            ("message-id", &self.message_id),
            ("correlation-id", &self.correlation_id),
            ("user-id", &self.user_id),
            ("content-type", &self.content_type),
            ("content-encoding", &self.content_encoding),
            ("to", &self.to),
            ("absolute-expiry-time", &self.absolute_expiry_time),
            ("iothub-outputname", &self.output_name),
            ("iothub-interface-id", &self.interface_id),
            ("iothub-creation-time-utc", &self.creation_time),
            ("dt-subject", &self.component),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.as_ref().map(|v| (name, v)))
    }

    /// Total bytes of property names and values, counted against the message size limit.
    pub fn size(&self) -> usize {
        self.entries().map(|(k, v)| k.len() + v.len()).sum()
    }
}

/// A message as a device sends it, before the hub accepts it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IncomingMessage {
    pub body: Bytes,
    pub system: SystemProperties,
    pub properties: BTreeMap<String, String>,
}

impl IncomingMessage {
    /// Body plus every property, the size IoT Hub's 256 KB limit applies to.
    pub fn size(&self) -> usize {
        message_size(&self.body, &self.system, &self.properties)
    }
}

/// Body plus every property (names and values), for incoming and stored messages alike.
fn message_size(
    body: &Bytes,
    system: &SystemProperties,
    properties: &BTreeMap<String, String>,
) -> usize {
    body.len()
        + system.size()
        + properties
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum::<usize>()
}

/// What produced a message on the hub's built-in endpoint: its `iothub-message-source`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageSource {
    /// Device-to-cloud telemetry sent by a device or module.
    Telemetry,
    /// A twin's tags, desired or reported properties changed.
    TwinChangeEvents,
    /// A device or module identity was created or deleted.
    DeviceLifecycleEvents,
    /// A device or module connected or disconnected.
    DeviceConnectionStateEvents,
}

impl MessageSource {
    /// The `iothub-message-source` annotation value.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageSource::Telemetry => "Telemetry",
            MessageSource::TwinChangeEvents => "twinChangeEvents",
            MessageSource::DeviceLifecycleEvents => "deviceLifecycleEvents",
            MessageSource::DeviceConnectionStateEvents => "deviceConnectionStateEvents",
        }
    }
}

/// How the sending device or module authenticated, as IoT Hub annotates its messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SenderAuth {
    /// `iothub-connection-auth-method`: JSON text such as
    /// `{"scope":"device","type":"sas","issuer":"iothub","acceptingIpFilterRule":null}`.
    pub method: String,
    /// `iothub-connection-auth-generation-id`: the identity's generation id.
    pub generation_id: String,
}

/// A stored device-to-cloud message — device telemetry, or a notification the hub itself
/// emits (twin change, lifecycle, connection state) for its Event Hubs-compatible endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetryMessage {
    /// Position in the hub's telemetry log; 0 for notifications, which are not logged there.
    pub sequence_number: u64,
    pub enqueued_time: SystemTime,
    pub hub: String,
    pub device_id: String,
    pub module_id: Option<String>,
    pub body: Bytes,
    pub system: SystemProperties,
    pub properties: BTreeMap<String, String>,
    pub source: MessageSource,
    /// Set for device telemetry; notifications come from the hub.
    pub auth: Option<SenderAuth>,
}

impl TelemetryMessage {
    /// Body plus every property: the bytes the message occupies.
    pub fn size(&self) -> usize {
        message_size(&self.body, &self.system, &self.properties)
    }

    /// A minimal telemetry message, for unit tests elsewhere in the crate.
    #[cfg(test)]
    pub(crate) fn for_tests(device_id: &str, body: &'static str) -> TelemetryMessage {
        TelemetryMessage {
            sequence_number: 0,
            enqueued_time: SystemTime::now(),
            hub: "hub".into(),
            device_id: device_id.into(),
            module_id: None,
            body: Bytes::from_static(body.as_bytes()),
            system: SystemProperties::default(),
            properties: BTreeMap::new(),
            source: MessageSource::Telemetry,
            auth: None,
        }
    }

    pub fn message_id(&self) -> Option<&str> {
        self.system.message_id.as_deref()
    }

    pub fn body_text(&self) -> Option<&str> {
        std::str::from_utf8(&self.body).ok()
    }

    /// The JSON shape served on the control port.
    pub fn to_json(&self) -> Value {
        let system: serde_json::Map<String, Value> = self
            .system
            .entries()
            .map(|(k, v)| (k.to_owned(), Value::String(v.clone())))
            .collect();
        json!({
            "sequenceNumber": self.sequence_number,
            "enqueuedTimeUtc": utc_timestamp(self.enqueued_time),
            "hub": self.hub,
            "deviceId": self.device_id,
            "moduleId": self.module_id,
            "systemProperties": system,
            "properties": self.properties,
            "body": self.body_text(),
            "bodyBase64": BASE64.encode(&self.body),
        })
    }
}

/// Bounded in-memory log; the oldest messages fall off once `capacity` is reached.
pub struct TelemetryLog {
    capacity: usize,
    entries: Mutex<Entries>,
    live: broadcast::Sender<Arc<TelemetryMessage>>,
    /// Changes when a message is appended while someone waits ([`TelemetryLog::wait_for`]);
    /// appends with nobody subscribed send nothing.
    appended: watch::Sender<u64>,
}

/// The retained messages and the last sequence number given out.
#[derive(Default)]
struct Entries {
    messages: VecDeque<Arc<TelemetryMessage>>,
    last_sequence: u64,
}

impl TelemetryLog {
    pub fn new(capacity: usize) -> TelemetryLog {
        TelemetryLog {
            capacity: capacity.max(1),
            entries: Mutex::new(Entries::default()),
            live: broadcast::channel(1024).0,
            appended: watch::channel(0).0,
        }
    }

    /// Stores a message and returns it with its sequence number.
    pub fn append(
        &self,
        hub: &str,
        device_id: &str,
        module_id: Option<&str>,
        message: IncomingMessage,
    ) -> Arc<TelemetryMessage> {
        self.append_from(hub, device_id, module_id, None, message)
    }

    /// [`TelemetryLog::append`] with how the sender authenticated.
    pub(crate) fn append_from(
        &self,
        hub: &str,
        device_id: &str,
        module_id: Option<&str>,
        auth: Option<SenderAuth>,
        message: IncomingMessage,
    ) -> Arc<TelemetryMessage> {
        // The body arrives as a slice of its connection's read buffer; a retained slice would
        // keep that whole buffer alive long after the connection is gone (the soak benchmark
        // measured it as steady RSS growth), so the log keeps a copy of just the body.
        let body = Bytes::copy_from_slice(&message.body);
        let (stored, dropped) = {
            let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            let sequence_number = entries.last_sequence + 1;
            let stored = Arc::new(TelemetryMessage {
                sequence_number,
                enqueued_time: SystemTime::now(),
                hub: hub.to_owned(),
                device_id: device_id.to_owned(),
                module_id: module_id.map(str::to_owned),
                body,
                system: message.system,
                properties: message.properties,
                source: MessageSource::Telemetry,
                auth,
            });
            // The oldest message is freed after the lock is released.
            let dropped = if entries.messages.len() == self.capacity {
                entries.messages.pop_front()
            } else {
                None
            };
            entries.messages.push_back(stored.clone());
            entries.last_sequence = sequence_number;
            (stored, dropped)
        };
        drop(dropped);
        // A waiter subscribes before it looks at the log, so one that looked before this
        // append is counted here; with none, nobody is woken.
        if self.appended.receiver_count() > 0 {
            self.appended.send_replace(stored.sequence_number);
        }
        // No live observers is normal; the log keeps the message either way.
        let _ = self.live.send(stored.clone());
        stored
    }

    /// Retained messages, oldest first, optionally for one device.
    pub fn messages(&self, device_id: Option<&str>) -> Vec<Arc<TelemetryMessage>> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .messages
            .iter()
            .filter(|m| device_id.is_none_or(|d| m.device_id == d))
            .cloned()
            .collect()
    }

    /// Live feed of messages appended from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<TelemetryMessage>> {
        self.live.subscribe()
    }

    /// The live feed as a `Stream`. A consumer that falls more than 1024 messages behind
    /// skips the ones it missed (they stay in the log).
    pub fn stream(&self) -> impl Stream<Item = Arc<TelemetryMessage>> + Send + 'static {
        BroadcastStream::new(self.live.subscribe()).filter_map(Result::ok)
    }

    /// Waits until at least `count` retained messages from `device_id` exist, or `timeout`.
    pub async fn wait_for(
        &self,
        device_id: &str,
        count: usize,
        timeout: Duration,
    ) -> Result<Vec<Arc<TelemetryMessage>>, Vec<Arc<TelemetryMessage>>> {
        // Subscribed before looking, so an append after the look wakes this waiter.
        let mut changes = self.appended.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let found = self.messages(Some(device_id));
            if found.len() >= count {
                return Ok(found);
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => continue,
                _ => return Err(self.messages(Some(device_id))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(body: &'static str) -> IncomingMessage {
        IncomingMessage {
            body: Bytes::from_static(body.as_bytes()),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn log_is_bounded_ordered_and_waitable() {
        let log = Arc::new(TelemetryLog::new(3));
        for i in 0..5 {
            log.append("hub", if i % 2 == 0 { "a" } else { "b" }, None, msg("x"));
        }
        let all = log.messages(None);
        assert_eq!(
            all.iter().map(|m| m.sequence_number).collect::<Vec<_>>(),
            vec![3, 4, 5]
        );
        assert_eq!(log.messages(Some("a")).len(), 2);

        let waiter = {
            let log = log.clone();
            tokio::spawn(async move { log.wait_for("c", 1, Duration::from_secs(5)).await })
        };
        tokio::task::yield_now().await;
        log.append("hub", "c", None, msg("late"));
        let got = waiter.await.unwrap().unwrap();
        assert_eq!(got[0].body_text(), Some("late"));

        let mut stream = Box::pin(log.stream());
        log.append("hub", "d", None, msg("streamed"));
        let next = tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(next.body_text(), Some("streamed"));
        assert!(
            log.wait_for("zzz", 1, Duration::from_millis(10))
                .await
                .is_err()
        );
    }
}
