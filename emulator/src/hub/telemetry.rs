//! Device-to-cloud telemetry as the hub stores it: a bounded, queryable log per hub plus a
//! broadcast feed for live observers (the Rust handle's stream, the control port).
//!
//! A message is appended *before* the transport acknowledges it (PUBACK), so whatever a
//! device was told is delivered can be read back here.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use serde_json::{Value, json};
use smallvec::SmallVec;
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
    /// None set: what most telemetry carries.
    const NONE: SystemProperties = SystemProperties {
        message_id: None,
        correlation_id: None,
        user_id: None,
        content_type: None,
        content_encoding: None,
        to: None,
        absolute_expiry_time: None,
        output_name: None,
        interface_id: None,
        creation_time: None,
        component: None,
    };

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

/// A message's system properties, read as [`SystemProperties`] (it derefs to them). Most
/// telemetry sets none, and then they take no room: the retained log holds tens of thousands
/// of messages, and each byte of a message is read again when it is evicted; and an incoming
/// message, moved from the transport's parser to the log, is a pointer instead of 264 bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredSystemProperties(Option<Box<SystemProperties>>);

impl From<SystemProperties> for StoredSystemProperties {
    fn from(properties: SystemProperties) -> StoredSystemProperties {
        let none_set = properties.entries().next().is_none();
        StoredSystemProperties((!none_set).then(|| Box::new(properties)))
    }
}

impl StoredSystemProperties {
    /// The properties to write into, made (empty) on the first write.
    pub fn make_mut(&mut self) -> &mut SystemProperties {
        self.0.get_or_insert_with(Box::default)
    }
}

impl Deref for StoredSystemProperties {
    type Target = SystemProperties;

    fn deref(&self) -> &SystemProperties {
        self.0.as_deref().unwrap_or(&SystemProperties::NONE)
    }
}

/// A message as a device sends it, before the hub accepts it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IncomingMessage {
    pub body: Bytes,
    pub system: StoredSystemProperties,
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
    /// `{"scope":"device","type":"sas","issuer":"iothub","acceptingIpFilterRule":null}`,
    /// one of a few constants.
    pub method: &'static str,
    /// `iothub-connection-auth-generation-id`: the identity's generation id, shared with
    /// its registry entry.
    pub generation_id: Arc<str>,
}

/// Who sent a message, as the log stores it with the message.
pub(crate) struct MessageSender {
    pub hub: Arc<str>,
    pub device_id: Arc<str>,
    pub module_id: Option<Arc<str>>,
    pub auth: Option<SenderAuth>,
}

/// A stored device-to-cloud message — device telemetry, or a notification the hub itself
/// emits (twin change, lifecycle, connection state) for its Event Hubs-compatible endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetryMessage {
    /// Position in the hub's telemetry log; 0 for notifications, which are not logged there.
    pub sequence_number: u64,
    pub enqueued_time: SystemTime,
    // The names are shared with the hub and the sender's identity rather than copied: every
    // retained message would otherwise own three small allocations, each freed (a cache miss)
    // when the message is evicted.
    pub hub: Arc<str>,
    pub device_id: Arc<str>,
    pub module_id: Option<Arc<str>>,
    pub body: Bytes,
    pub system: StoredSystemProperties,
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
            system: StoredSystemProperties::default(),
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

/// How many independently locked shards a hub's log has. Appends from different devices
/// mostly take different locks, so sessions on different cores do not queue on one mutex;
/// a device always lands in the same shard, which keeps its messages in order.
const SHARDS: usize = 32;

/// Bounded in-memory log; the oldest messages fall off once `capacity` is reached.
///
/// Sharded by device: each shard has its own short lock, and sequence numbers come from one
/// atomic counter taken under the shard's lock, so within a shard (and so for every device)
/// stored order is sequence order. The bound is global: a message is retained while it is
/// among the newest `capacity` sequence numbers given out.
pub struct TelemetryLog {
    capacity: usize,
    shards: Box<[Mutex<Shard>]>,
    /// The last sequence number given out.
    last_sequence: AtomicU64,
    live: broadcast::Sender<Arc<TelemetryMessage>>,
    /// Live subscribers ([`TelemetryLog::subscribe`], [`TelemetryLog::stream`]); with none,
    /// appends skip the broadcast channel, whose sender takes one lock per hub.
    live_subscribers: Arc<AtomicUsize>,
    /// Changes when a message is appended while someone waits ([`TelemetryLog::wait_for`]);
    /// appends with nobody subscribed send nothing.
    appended: watch::Sender<u64>,
}

/// One shard's retained messages, in sequence order.
#[derive(Default)]
struct Shard {
    messages: VecDeque<Arc<TelemetryMessage>>,
}

/// Counts a live subscriber for as long as it exists.
struct SubscriberGuard(Arc<AtomicUsize>);

impl SubscriberGuard {
    fn new(count: &Arc<AtomicUsize>) -> SubscriberGuard {
        count.fetch_add(1, Ordering::SeqCst);
        SubscriberGuard(count.clone())
    }
}

impl Drop for SubscriberGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The live feed of one hub's telemetry, from [`TelemetryLog::subscribe`].
pub struct LiveTelemetry {
    receiver: broadcast::Receiver<Arc<TelemetryMessage>>,
    _counted: SubscriberGuard,
}

impl LiveTelemetry {
    /// The next message appended after subscribing; `Lagged` when more than 1024 were
    /// missed (they stay in the log).
    pub async fn recv(&mut self) -> Result<Arc<TelemetryMessage>, broadcast::error::RecvError> {
        self.receiver.recv().await
    }
}

impl TelemetryLog {
    pub fn new(capacity: usize) -> TelemetryLog {
        TelemetryLog {
            capacity: capacity.max(1),
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            last_sequence: AtomicU64::new(0),
            live: broadcast::channel(1024).0,
            live_subscribers: Arc::new(AtomicUsize::new(0)),
            appended: watch::channel(0).0,
        }
    }

    /// The shard a device's messages go to (FNV-1a: short ids, no allocation).
    fn shard(&self, device_id: &str) -> MutexGuard<'_, Shard> {
        let hash = device_id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        let count = self.shards.len().max(1);
        let index = usize::try_from(hash % count as u64).unwrap_or(0);
        self.shards[index].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores a message and returns it with its sequence number.
    pub fn append(
        &self,
        hub: &str,
        device_id: &str,
        module_id: Option<&str>,
        message: IncomingMessage,
    ) -> Arc<TelemetryMessage> {
        let sender = MessageSender {
            hub: hub.into(),
            device_id: device_id.into(),
            module_id: module_id.map(Arc::from),
            auth: None,
        };
        self.append_from(sender, message)
    }

    /// [`TelemetryLog::append`] with how the sender authenticated.
    pub(crate) fn append_from(
        &self,
        sender: MessageSender,
        message: IncomingMessage,
    ) -> Arc<TelemetryMessage> {
        // The body arrives as a slice of its connection's read buffer; a retained slice would
        // keep that whole buffer alive long after the connection is gone (the soak benchmark
        // measured it as steady RSS growth), so the log keeps a copy of just the body.
        let body = Bytes::copy_from_slice(&message.body);
        let mut stored = TelemetryMessage {
            sequence_number: 0,
            // Both set under the shard's lock below (one clock read per message).
            enqueued_time: SystemTime::UNIX_EPOCH,
            hub: sender.hub,
            device_id: sender.device_id,
            module_id: sender.module_id,
            body,
            system: message.system,
            properties: message.properties,
            source: MessageSource::Telemetry,
            auth: sender.auth,
        };
        // Usually one message falls off per append; this holds it without an allocation.
        let mut dropped = SmallVec::<[Arc<TelemetryMessage>; 2]>::new();
        let stored = {
            let mut shard = self.shard(&stored.device_id);
            // Taken under the shard's lock: the shard stays in sequence order.
            stored.sequence_number = self.last_sequence.fetch_add(1, Ordering::SeqCst) + 1;
            stored.enqueued_time = SystemTime::now();
            let stored = Arc::new(stored);
            let oldest_kept = self.oldest_kept(stored.sequence_number);
            while shard
                .messages
                .front()
                .is_some_and(|m| m.sequence_number < oldest_kept)
            {
                dropped.extend(shard.messages.pop_front());
            }
            shard.messages.push_back(stored.clone());
            // Notified while the shard is still locked: a reader that subscribed and then
            // looked at this shard either saw this message or is counted here (the lock
            // orders the two), and a device's messages reach the live feed in order.
            if self.appended.receiver_count() > 0 {
                self.appended.send_replace(stored.sequence_number);
            }
            if self.live_subscribers.load(Ordering::SeqCst) > 0 {
                // A subscriber may have just gone; the log keeps the message either way.
                let _ = self.live.send(stored.clone());
            }
            stored
        };
        // Freed after the lock is released.
        drop(dropped);
        stored
    }

    /// The lowest sequence number still retained once `last` has been given out.
    fn oldest_kept(&self, last: u64) -> u64 {
        last.saturating_add(1).saturating_sub(self.capacity as u64)
    }

    /// Retained messages in sequence order, optionally for one device.
    pub fn messages(&self, device_id: Option<&str>) -> Vec<Arc<TelemetryMessage>> {
        let mut found: Vec<Arc<TelemetryMessage>> = match device_id {
            Some(device_id) => self
                .shard(device_id)
                .messages
                .iter()
                .filter(|m| *m.device_id == *device_id)
                .cloned()
                .collect(),
            None => self
                .shards
                .iter()
                .flat_map(|shard| {
                    let shard = shard.lock().unwrap_or_else(|p| p.into_inner());
                    shard.messages.iter().cloned().collect::<Vec<_>>()
                })
                .collect(),
        };
        // A shard nobody appended to lately still holds messages that fell off the log.
        let oldest_kept = self.oldest_kept(self.last_sequence.load(Ordering::SeqCst));
        found.retain(|m| m.sequence_number >= oldest_kept);
        if device_id.is_none() {
            found.sort_unstable_by_key(|m| m.sequence_number);
        }
        found
    }

    /// Live feed of messages appended from now on.
    pub fn subscribe(&self) -> LiveTelemetry {
        let counted = SubscriberGuard::new(&self.live_subscribers);
        LiveTelemetry {
            receiver: self.live.subscribe(),
            _counted: counted,
        }
    }

    /// The live feed as a `Stream`. A consumer that falls more than 1024 messages behind
    /// skips the ones it missed (they stay in the log). Messages of one device come in
    /// sequence order; across devices the order is the order they were stored in.
    pub fn stream(&self) -> impl Stream<Item = Arc<TelemetryMessage>> + Send + 'static {
        let counted = SubscriberGuard::new(&self.live_subscribers);
        BroadcastStream::new(self.live.subscribe())
            .filter_map(Result::ok)
            .map(move |m| {
                // Owned by the stream: the subscriber is counted until the stream is dropped.
                let _counted = &counted;
                m
            })
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

    #[test]
    fn a_retained_message_is_small_and_its_empty_system_properties_take_no_room() {
        // Tens of thousands are retained and each is read again when evicted
        // (docs/benchmarks.md, fourth run): 472 bytes before the names were shared.
        let size = std::mem::size_of::<TelemetryMessage>();
        assert!(size <= 176, "{size} bytes");
        assert_eq!(
            StoredSystemProperties::from(SystemProperties::default()),
            StoredSystemProperties::default()
        );
        let set = StoredSystemProperties::from(SystemProperties {
            content_type: Some("application/json".into()),
            ..SystemProperties::default()
        });
        assert_eq!(set.content_type.as_deref(), Some("application/json"));
        assert_eq!(StoredSystemProperties::default().message_id, None);
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

    #[test]
    fn concurrent_appends_keep_each_device_in_order_and_every_message_once() {
        const DEVICES: usize = 64;
        const PER_DEVICE: usize = 200;
        let log = Arc::new(TelemetryLog::new(DEVICES * PER_DEVICE));
        let mut live = log.subscribe();
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let log = log.clone();
                std::thread::spawn(move || {
                    for i in 0..PER_DEVICE {
                        for d in (t..DEVICES).step_by(8) {
                            let body = Bytes::from(format!("{i}"));
                            let message = IncomingMessage {
                                body,
                                ..Default::default()
                            };
                            log.append("hub", &format!("dev{d}"), None, message);
                        }
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let all = log.messages(None);
        assert_eq!(all.len(), DEVICES * PER_DEVICE);
        let numbers: Vec<u64> = all.iter().map(|m| m.sequence_number).collect();
        let expected: Vec<u64> = (1..=(DEVICES * PER_DEVICE) as u64).collect();
        assert_eq!(numbers, expected, "every message once, in sequence order");
        for d in 0..DEVICES {
            let device = format!("dev{d}");
            let bodies: Vec<String> = log
                .messages(Some(&device))
                .iter()
                .map(|m| m.body_text().unwrap().to_owned())
                .collect();
            let sent: Vec<String> = (0..PER_DEVICE).map(|i| i.to_string()).collect();
            assert_eq!(bodies, sent, "{device} in the order it sent");
        }
        // The live feed (1024 deep) got the newest messages, each device's in order.
        let mut last_seen: BTreeMap<String, u64> = BTreeMap::new();
        let mut received = 0;
        loop {
            match live.receiver.try_recv() {
                Ok(m) => {
                    let previous = last_seen.insert(m.device_id.to_string(), m.sequence_number);
                    assert!(previous.is_none_or(|p| p < m.sequence_number));
                    received += 1;
                }
                Err(broadcast::error::TryRecvError::Lagged(_)) => continue,
                Err(_) => break,
            }
        }
        assert_eq!(received, 1024);
    }

    #[test]
    fn the_bound_is_global_even_for_a_shard_nobody_appends_to() {
        let log = TelemetryLog::new(10);
        log.append("hub", "quiet", None, msg("old"));
        for _ in 0..10 {
            log.append("hub", "busy", None, msg("x"));
        }
        assert!(log.messages(Some("quiet")).is_empty());
        let all = log.messages(None);
        assert_eq!(all.len(), 10);
        assert!(all.iter().all(|m| &*m.device_id == "busy"));
    }

    #[tokio::test]
    async fn live_subscribers_are_counted_while_they_exist() {
        let log = TelemetryLog::new(10);
        log.append("hub", "a", None, msg("unseen"));
        let stream = log.stream();
        let mut live = log.subscribe();
        assert_eq!(log.live_subscribers.load(Ordering::SeqCst), 2);
        log.append("hub", "a", None, msg("seen"));
        assert_eq!(live.recv().await.unwrap().body_text(), Some("seen"));
        drop(stream);
        drop(live);
        assert_eq!(log.live_subscribers.load(Ordering::SeqCst), 0);
    }

    /// What `GET /telemetry/stream?replay=true` does: subscribe, read the log while appends
    /// go on, then take the live feed, skipping per device what the read already had.
    #[test]
    fn a_reader_that_replays_then_follows_sees_every_message_once() {
        const DEVICES: usize = 16;
        const PER_DEVICE: usize = 50;
        let log = Arc::new(TelemetryLog::new(10_000));
        let mut live = log.subscribe();
        let writers: Vec<_> = (0..4)
            .map(|t| {
                let log = log.clone();
                std::thread::spawn(move || {
                    for i in 0..PER_DEVICE {
                        for d in (t..DEVICES).step_by(4) {
                            log.append("hub", &format!("dev{d}"), None, msg("x"));
                            if i % 10 == 0 {
                                std::thread::yield_now();
                            }
                        }
                    }
                })
            })
            .collect();
        let replayed = log.messages(None);
        for writer in writers {
            writer.join().unwrap();
        }
        let mut seen: BTreeMap<String, u64> = BTreeMap::new();
        let mut delivered = Vec::new();
        for m in &replayed {
            seen.insert(m.device_id.to_string(), m.sequence_number);
            delivered.push(m.sequence_number);
        }
        while let Ok(m) = live.receiver.try_recv() {
            if seen
                .get(&*m.device_id)
                .is_none_or(|last| m.sequence_number > *last)
            {
                delivered.push(m.sequence_number);
            }
        }
        delivered.sort_unstable();
        let expected: Vec<u64> = (1..=(DEVICES * PER_DEVICE) as u64).collect();
        assert_eq!(delivered, expected);
    }
}
