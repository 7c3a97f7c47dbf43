//! Routes the hub's publishes to whoever is waiting for them, by topic: twin responses to the
//! request with the same `$rid`, desired patches to the [`DesiredUpdates`](super::DesiredUpdates)
//! stream, method requests to the installed handler, C2D and module input messages to the
//! [`ReceivedMessages`](super::ReceivedMessages) stream.
//!
//! The [supervisor](super::supervisor) calls [`route`] for every publish of the current
//! connection. It never awaits the application: a method handler runs in its own task and a
//! full stream drops the message, because a stalled router would also stall the twin
//! responses every other caller is waiting for. A dropped C2D or input message was not
//! acknowledged, so the hub delivers it again on the next connection.
//!
//! The desired stream is ordered by `$version`: a patch at or below the last version handed
//! out is dropped, whether it comes from the hub or from the twin GET the supervisor makes
//! after a reconnect ([`Routes::offer_full_desired`]), so consumers never see a state go
//! backwards or twice.
//!
//! Connection loss fails the waiting twin requests (they retry on the next connection);
//! [`Routes::close`] — when the client stops — also ends the streams.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::error::DeviceError;
use super::method::{MethodHandler, MethodRequest, MethodResponse};
use super::received::{Inbox, RECEIVED_QUEUE, ReceivedMessage, ReceivedMessages};
use super::topic::{HubTopic, method_response_topic};
use super::twin::DesiredPatch;
use crate::mqtt::{IncomingPublish, WeakConnection};

/// A twin response as it arrived.
#[derive(Debug)]
pub(crate) struct TwinReply {
    pub status: u16,
    /// The topic's `$version` (the new reported version after a PATCH).
    pub version: Option<u64>,
    pub body: Bytes,
}

/// State shared between the client's methods and the supervisor's routing.
pub(crate) struct Routes {
    twin: Mutex<TwinWaiters>,
    desired: Mutex<DesiredSink>,
    method: Mutex<Option<Arc<MethodHandler>>>,
    received: Mutex<ReceivedSink>,
}

#[derive(Default)]
struct TwinWaiters {
    /// Set when the client has stopped; later requests fail at once instead of hanging.
    closed: bool,
    by_rid: HashMap<String, oneshot::Sender<TwinReply>>,
}

#[derive(Default)]
struct DesiredSink {
    sender: Option<mpsc::Sender<DesiredPatch>>,
    /// Highest version handed to the stream; nothing at or below it goes out again.
    delivered: Option<u64>,
    /// Highest desired version the application has seen in a twin GET of its own.
    fetched: Option<u64>,
}

struct ReceivedSink {
    sender: Option<mpsc::Sender<ReceivedMessage>>,
    /// The receiver made together with the client, so that messages delivered before the
    /// application asks for the stream wait in it; handed out by the first request.
    first: Option<mpsc::Receiver<ReceivedMessage>>,
}

impl Default for Routes {
    fn default() -> Self {
        let (sender, first) = mpsc::channel(RECEIVED_QUEUE);
        Self {
            twin: Mutex::default(),
            desired: Mutex::default(),
            method: Mutex::default(),
            received: Mutex::new(ReceivedSink {
                sender: Some(sender),
                first: Some(first),
            }),
        }
    }
}

impl std::fmt::Debug for Routes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Routes")
            .field("pending_twin_requests", &lock(&self.twin).by_rid.len())
            .field("desired", &lock(&self.desired).sender.is_some())
            .field("method_handler", &lock(&self.method).is_some())
            .finish()
    }
}

/// A poisoned lock only means some thread panicked mid-update of plain maps and options,
/// which leaves them consistent; carry on rather than spread the panic.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Routes {
    /// Registers interest in the response to `rid`. Must happen before the request is
    /// published, or a fast answer would find nobody waiting.
    pub(crate) fn expect_twin_reply(
        self: &Arc<Self>,
        rid: String,
    ) -> Result<TwinWaiter, DeviceError> {
        let (sender, receiver) = oneshot::channel();
        let mut twin = lock(&self.twin);
        if twin.closed {
            return Err(DeviceError::Disconnected);
        }
        twin.by_rid.insert(rid.clone(), sender);
        Ok(TwinWaiter {
            routes: self.clone(),
            rid,
            receiver,
        })
    }

    /// Sends future desired patches to a new receiver (ending the previous one's stream).
    pub(crate) fn set_desired(&self, sender: mpsc::Sender<DesiredPatch>) {
        lock(&self.desired).sender = Some(sender);
    }

    /// True while a desired stream is open, i.e. a reconnect should re-sync it.
    pub(crate) fn desired_active(&self) -> bool {
        lock(&self.desired)
            .sender
            .as_ref()
            .is_some_and(|sender| !sender.is_closed())
    }

    /// Remembers the desired version of a twin the application fetched itself, so that a
    /// re-sync after a reconnect does not hand it the same state again.
    pub(crate) fn note_fetched_desired(&self, version: Option<u64>) {
        let mut desired = lock(&self.desired);
        desired.fetched = desired.fetched.max(version);
    }

    /// Hands a patch from the hub to the stream unless it is not newer than the last one.
    fn offer_desired(&self, patch: DesiredPatch) {
        let mut desired = lock(&self.desired);
        if desired.delivered.is_some_and(|last| patch.version <= last) {
            tracing::debug!(version = patch.version, "desired patch not newer; dropped");
            return;
        }
        Self::send_desired(&mut desired, patch);
    }

    /// After a reconnect: hands the whole desired section fetched by GET to the stream if its
    /// version is above everything the application has seen (patches and its own GETs).
    /// Returns whether it did.
    pub(crate) fn offer_full_desired(&self, desired_section: Value) -> bool {
        let Some(version) = desired_section.get("$version").and_then(Value::as_u64) else {
            tracing::warn!("twin GET without desired $version; cannot re-sync");
            return false;
        };
        let mut desired = lock(&self.desired);
        if desired.delivered.max(desired.fetched) >= Some(version) {
            return false;
        }
        Self::send_desired(
            &mut desired,
            DesiredPatch {
                version,
                patch: desired_section,
                full_document: true,
            },
        )
    }

    fn send_desired(desired: &mut DesiredSink, patch: DesiredPatch) -> bool {
        let version = patch.version;
        let Some(sender) = &desired.sender else {
            tracing::debug!(version, "desired patch with nobody listening; dropped");
            return false;
        };
        match sender.try_send(patch) {
            Ok(()) => {
                desired.delivered = Some(version);
                true
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!(version, "desired updates are not being read; patch dropped");
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                tracing::debug!(version, "desired updates receiver dropped; patch dropped");
                false
            }
        }
    }

    /// Replaces the direct-method handler.
    pub(crate) fn set_method_handler(&self, handler: Arc<MethodHandler>) {
        *lock(&self.method) = Some(handler);
    }

    /// The stream of received messages: the first call gets everything delivered so far; a
    /// later call starts a new stream and ends the previous one (whose unread messages were
    /// never acknowledged, so the hub delivers them again on the next connection).
    pub(crate) fn received_stream(&self) -> Result<ReceivedMessages, DeviceError> {
        let mut received = lock(&self.received);
        if received.sender.is_none() {
            return Err(DeviceError::Disconnected);
        }
        let receiver = match received.first.take() {
            Some(first) => first,
            None => {
                let (sender, receiver) = mpsc::channel(RECEIVED_QUEUE);
                received.sender = Some(sender);
                receiver
            }
        };
        Ok(ReceivedMessages { receiver })
    }

    fn deliver_received(&self, message: ReceivedMessage) {
        let received = lock(&self.received);
        let Some(sender) = &received.sender else {
            return;
        };
        if let Err(error) = sender.try_send(message) {
            // Not acknowledged: the hub keeps it and delivers it again after a reconnect.
            tracing::warn!(%error, "received message not taken; left for redelivery");
        }
    }

    /// The connection is gone: its twin requests can never be answered (callers retry).
    pub(crate) fn connection_lost(&self) {
        lock(&self.twin).by_rid.clear();
    }

    /// The client has stopped: fail every waiter and end every stream.
    pub(crate) fn close(&self) {
        let mut twin = lock(&self.twin);
        twin.closed = true;
        // Dropping the senders wakes every waiter with "disconnected".
        twin.by_rid.clear();
        drop(twin);
        lock(&self.desired).sender = None;
        let mut received = lock(&self.received);
        received.sender = None;
        received.first = None;
    }
}

/// The pending answer to one twin request; dropping it (a cancelled caller) forgets the rid.
pub(crate) struct TwinWaiter {
    routes: Arc<Routes>,
    rid: String,
    receiver: oneshot::Receiver<TwinReply>,
}

impl TwinWaiter {
    /// The reply; `Err` when the connection was lost or the client stopped first.
    pub(crate) async fn reply(mut self) -> Result<TwinReply, DeviceError> {
        (&mut self.receiver)
            .await
            .map_err(|_| DeviceError::Disconnected)
    }
}

impl Drop for TwinWaiter {
    fn drop(&mut self) {
        lock(&self.routes.twin).by_rid.remove(&self.rid);
    }
}

/// Dispatches one publish of the connection `connection`; `inbox` says where this identity's
/// C2D or input messages arrive.
pub(crate) fn route(
    routes: &Routes,
    inbox: &Inbox,
    publish: IncomingPublish,
    connection: &WeakConnection,
) {
    if let Some(message) = inbox.parse(&publish, connection) {
        routes.deliver_received(message);
        return;
    }
    let Some(topic) = HubTopic::parse(&publish.topic) else {
        tracing::debug!(topic = %publish.topic, "dropping unexpected publish");
        return;
    };
    match topic {
        HubTopic::TwinResponse {
            status,
            rid,
            version,
        } => {
            let waiter = lock(&routes.twin).by_rid.remove(&rid);
            match waiter {
                Some(waiter) => {
                    let _ = waiter.send(TwinReply {
                        status,
                        version,
                        body: publish.payload,
                    });
                }
                None => tracing::debug!(%rid, status, "twin response for no pending request"),
            }
        }
        HubTopic::DesiredPatch { version } => deliver_desired(routes, version, &publish.payload),
        HubTopic::MethodRequest { name, rid } => {
            let handler = lock(&routes.method).clone();
            match handler {
                Some(handler) => {
                    tokio::spawn(answer_method(
                        handler,
                        name,
                        rid,
                        publish.payload,
                        connection.clone(),
                    ));
                }
                // Only possible if the hub sends requests we never subscribed to.
                None => tracing::warn!(%name, "method request without a handler; ignored"),
            }
        }
    }
}

fn deliver_desired(routes: &Routes, topic_version: Option<u64>, body: &[u8]) {
    let patch: Value = match serde_json::from_slice(body) {
        Ok(patch) => patch,
        Err(error) => {
            tracing::warn!(%error, "desired patch is not JSON; dropped");
            return;
        }
    };
    // The spec has `$version` in both places; prefer the topic, fall back to the body.
    let Some(version) = topic_version.or_else(|| patch.get("$version").and_then(Value::as_u64))
    else {
        tracing::warn!("desired patch without $version; dropped");
        return;
    };
    routes.offer_desired(DesiredPatch {
        version,
        patch,
        full_document: false,
    });
}

/// Runs the handler and publishes its answer on `$iothub/methods/res/{status}/?$rid={rid}`
/// over the connection the request came on (a `$rid` means nothing on another one).
async fn answer_method(
    handler: Arc<MethodHandler>,
    name: String,
    rid: String,
    body: Bytes,
    connection: WeakConnection,
) {
    let response = match parse_method_payload(&body) {
        Ok(payload) => handler(MethodRequest { name, payload }).await,
        // The hub only forwards JSON, so this is a broken sender; say so instead of guessing.
        Err(error) => MethodResponse::new(
            400,
            serde_json::json!({ "message": format!("request payload is not JSON: {error}") }),
        ),
    };
    // Serialising a `Value` cannot fail (its keys are strings); keep a valid body regardless.
    let payload = serde_json::to_vec(&response.payload).unwrap_or_else(|_| b"null".to_vec());
    // The client may have been dropped, or the connection replaced, while the handler ran.
    let Some(connection) = connection.upgrade() else {
        return;
    };
    let topic = method_response_topic(response.status, &rid);
    if let Err(error) = connection.publish(topic, Bytes::from(payload)).await {
        tracing::warn!(%error, %rid, "could not send the method response");
    }
}

/// An empty body means "no payload" (the Python SDK reads it as `null`).
fn parse_method_payload(body: &[u8]) -> Result<Value, serde_json::Error> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn desired_publish(version: u64) -> IncomingPublish {
        IncomingPublish {
            topic: format!("$iothub/twin/PATCH/properties/desired/?$version={version}"),
            payload: Bytes::from(json!({"v": version, "$version": version}).to_string()),
            dup: false,
            pending_ack: None,
        }
    }

    #[tokio::test]
    async fn desired_stream_never_goes_backwards_or_repeats() {
        let routes = Routes::default();
        let (sender, mut receiver) = mpsc::channel(16);
        routes.set_desired(sender);
        let inbox = Inbox::device("d");
        let weak = WeakConnection::detached();
        for version in [2, 3, 3, 1, 5] {
            route(&routes, &inbox, desired_publish(version), &weak);
        }
        // A re-sync at or below what was delivered is not handed out...
        assert!(!routes.offer_full_desired(json!({"v": 5, "$version": 5})));
        // ...one above it is, flagged as a whole document.
        assert!(routes.offer_full_desired(json!({"v": 7, "$version": 7})));
        route(&routes, &inbox, desired_publish(6), &weak);
        route(&routes, &inbox, desired_publish(8), &weak);
        let mut seen = Vec::new();
        while let Ok(patch) = receiver.try_recv() {
            seen.push((patch.version, patch.full_document));
        }
        assert_eq!(
            seen,
            [(2, false), (3, false), (5, false), (7, true), (8, false)]
        );
    }

    #[test]
    fn resync_respects_the_applications_own_twin_get() {
        let routes = Routes::default();
        let (sender, mut receiver) = mpsc::channel(16);
        routes.set_desired(sender);
        routes.note_fetched_desired(Some(4));
        assert!(!routes.offer_full_desired(json!({"$version": 4})));
        assert!(receiver.try_recv().is_err());
        assert!(routes.offer_full_desired(json!({"x": 1, "$version": 5})));
        let patch = receiver.try_recv().unwrap();
        assert_eq!(patch.version, 5);
        assert_eq!(patch.patch["x"], 1);
        assert!(patch.full_document);
        // Without a version nothing can be compared, so nothing is delivered.
        assert!(!routes.offer_full_desired(json!({"x": 2})));
    }

    #[tokio::test]
    async fn early_messages_wait_for_the_first_stream_and_close_ends_it() {
        let routes = Routes::default();
        let inbox = Inbox::device("d");
        let weak = WeakConnection::detached();
        let publish = |mid: &str| IncomingPublish {
            topic: format!("devices/d/messages/devicebound/%24.mid={mid}"),
            payload: Bytes::new(),
            dup: false,
            pending_ack: None,
        };
        route(&routes, &inbox, publish("early"), &weak);
        let mut first = routes.received_stream().unwrap();
        assert_eq!(
            first.next().await.unwrap().message_id.as_deref(),
            Some("early")
        );
        // A second request takes over; the first stream ends.
        let mut second = routes.received_stream().unwrap();
        assert!(first.next().await.is_none());
        route(&routes, &inbox, publish("late"), &weak);
        assert_eq!(
            second.next().await.unwrap().message_id.as_deref(),
            Some("late")
        );
        routes.close();
        assert!(second.next().await.is_none());
        assert!(matches!(
            routes.received_stream(),
            Err(DeviceError::Disconnected)
        ));
    }
}
