//! The operations [`DeviceClient`](crate::DeviceClient) and
//! [`ModuleClient`](crate::ModuleClient) share, run on whichever connection is current.
//!
//! The [supervisor](super::supervisor) publishes the current connection as a [`Link`]. An
//! operation waits while the client is reconnecting, and if its connection is lost before
//! the hub acknowledged it, runs again on the next one: telemetry is resent with the MQTT DUP
//! flag set (at-least-once: the hub may see it twice), a twin request is sent again with a
//! new `$rid`. After [`MAX_CONNECTIONS_PER_OPERATION`] lost connections it gives up with
//! [`DeviceError::Disconnected`] — a message that makes the hub drop the connection every
//! time must not loop forever. Once the client has stopped, operations fail at once.
//!
//! Subscriptions are remembered ([`Subscriptions`]) so the supervisor can restore them on
//! every new connection before operations may use it.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::{mpsc, watch};

use super::connector::Identity;
use super::error::DeviceError;
use super::message::{MAX_MESSAGE_SIZE, Message};
use super::method::MethodHandler;
use super::property_bag::telemetry_topic;
use super::received::{Inbox, ReceivedMessages};
use super::router::{Routes, TwinReply};
use super::state::DisconnectReason;
use super::topic::{
    DESIRED_FILTER, METHOD_FILTER, TWIN_RESPONSE_FILTER, reported_patch_topic, twin_get_topic,
};
use super::twin::{DESIRED_QUEUE, DesiredUpdates, Twin};
use crate::mqtt::{Connection, MqttError};

/// How many connections one operation may see lost under it before it gives up.
pub(crate) const MAX_CONNECTIONS_PER_OPERATION: usize = 4;

/// The current connection, as the supervisor publishes it.
#[derive(Debug, Clone)]
pub(crate) enum Link {
    Up {
        connection: Connection,
        /// Counts connections: 1 for the first, +1 per reconnect.
        generation: u64,
    },
    /// Between connections.
    Down,
    /// Stopped for good.
    Closed(DisconnectReason),
}

/// The topic filters the application asked for, and which of them the current connection has.
#[derive(Debug, Default)]
pub(crate) struct Subscriptions {
    wanted: Vec<String>,
    active_generation: u64,
    active: HashSet<String>,
}

/// State and operations shared by the client handle and the supervisor task.
#[derive(Debug)]
pub(crate) struct Operations {
    pub(crate) identity: Identity,
    pub(crate) inbox: Inbox,
    pub(crate) routes: Arc<Routes>,
    link: watch::Receiver<Link>,
    subscriptions: Mutex<Subscriptions>,
    /// One SUBSCRIBE at a time, so concurrent first uses of a feature subscribe once.
    subscribing: tokio::sync::Mutex<()>,
    /// Twin request ids; a counter is enough because they only need to be unique per
    /// connection.
    next_rid: AtomicU64,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Operations {
    pub(crate) fn new(identity: Identity, link: watch::Receiver<Link>) -> Self {
        Self {
            inbox: identity.inbox(),
            identity,
            routes: Arc::new(Routes::default()),
            link,
            subscriptions: Mutex::default(),
            subscribing: tokio::sync::Mutex::new(()),
            next_rid: AtomicU64::new(1),
        }
    }

    /// The live connection and its generation, waiting while the client reconnects; the
    /// stop reason's error once it has stopped.
    pub(crate) async fn connection(&self) -> Result<(Connection, u64), DeviceError> {
        let mut link = self.link.clone();
        loop {
            match &*link.borrow_and_update() {
                Link::Up {
                    connection,
                    generation,
                } if connection.is_connected() => return Ok((connection.clone(), *generation)),
                Link::Closed(reason) => return Err(reason.to_error()),
                // Down, or Up but already dead and not yet replaced: wait for the next value.
                _ => {}
            }
            if link.changed().await.is_err() {
                return Err(DeviceError::Disconnected);
            }
        }
    }

    pub(crate) fn is_connected(&self) -> bool {
        matches!(&*self.link.borrow(), Link::Up { connection, .. } if connection.is_connected())
    }

    /// Telemetry from this identity (`…/messages/events/{bag}`), resent after a lost
    /// connection until the hub acknowledges it.
    pub(crate) async fn send_telemetry(&self, message: Message) -> Result<(), DeviceError> {
        let size = message.size();
        if size > MAX_MESSAGE_SIZE {
            return Err(DeviceError::MessageTooLarge(size));
        }
        let topic = telemetry_topic(&self.identity.topic_base(), &message);
        let body = Bytes::from(message.body);
        let mut resend = false;
        for _ in 0..MAX_CONNECTIONS_PER_OPERATION {
            let (connection, _) = self.connection().await?;
            match connection
                .publish_with_dup(topic.clone(), body.clone(), resend)
                .await
            {
                Ok(()) => return Ok(()),
                Err(MqttError::Disconnected) => resend = true,
                Err(error) => return Err(error.into()),
            }
        }
        Err(self.gave_up())
    }

    pub(crate) async fn get_twin(&self) -> Result<Twin, DeviceError> {
        let twin = self.fetch_twin(MAX_CONNECTIONS_PER_OPERATION).await?;
        self.routes.note_fetched_desired(twin.desired_version());
        Ok(twin)
    }

    async fn fetch_twin(&self, attempts: usize) -> Result<Twin, DeviceError> {
        // The docs call for an empty body; the hub ignores it anyway.
        let reply = self
            .twin_request(twin_get_topic, Bytes::new(), attempts)
            .await?;
        serde_json::from_slice(&reply.body)
            .map_err(|e| DeviceError::Protocol(format!("twin GET response is not a twin: {e}")))
    }

    pub(crate) async fn update_reported(&self, patch: Value) -> Result<u64, DeviceError> {
        let body = serde_json::to_vec(&patch)
            .map_err(|e| DeviceError::Config(format!("reported patch is not serialisable: {e}")))?;
        let reply = self
            .twin_request(
                reported_patch_topic,
                Bytes::from(body),
                MAX_CONNECTIONS_PER_OPERATION,
            )
            .await?;
        reply
            .version
            .ok_or_else(|| DeviceError::Protocol("reported patch response without $version".into()))
    }

    pub(crate) async fn desired_updates(&self) -> Result<DesiredUpdates, DeviceError> {
        let (sender, receiver) = mpsc::channel(DESIRED_QUEUE);
        // Install the receiver before subscribing, so no patch sent right after the SUBACK
        // finds nobody listening.
        self.routes.set_desired(sender);
        self.ensure_subscribed(DESIRED_FILTER).await?;
        Ok(DesiredUpdates { receiver })
    }

    pub(crate) async fn on_method(&self, handler: Arc<MethodHandler>) -> Result<(), DeviceError> {
        // As with desired updates: ready before the hub can send the first request.
        self.routes.set_method_handler(handler);
        self.ensure_subscribed(METHOD_FILTER).await?;
        Ok(())
    }

    /// C2D messages (device) or input messages (module).
    pub(crate) async fn received_messages(&self) -> Result<ReceivedMessages, DeviceError> {
        let stream = self.routes.received_stream()?;
        self.ensure_subscribed(&self.inbox.filter()).await?;
        Ok(stream)
    }

    /// After a reconnect: fetch the twin and hand its desired section to the stream if it
    /// moved on while the client was away. One try; the next reconnect tries again.
    pub(crate) async fn resync_desired(&self) {
        if !self.routes.desired_active() {
            return;
        }
        match self.fetch_twin(1).await {
            Ok(twin) => {
                if self.routes.offer_full_desired(twin.desired) {
                    tracing::debug!("desired properties changed while disconnected; delivered");
                }
            }
            Err(error) => tracing::debug!(%error, "desired re-sync after reconnect failed"),
        }
    }

    /// One twin request/response exchange, matched by `$rid`; non-2xx becomes
    /// [`DeviceError::Service`].
    async fn twin_request(
        &self,
        topic: fn(&str) -> String,
        body: Bytes,
        attempts: usize,
    ) -> Result<TwinReply, DeviceError> {
        for _ in 0..attempts {
            let connection = self.ensure_subscribed(TWIN_RESPONSE_FILTER).await?;
            let rid = self.next_rid.fetch_add(1, Ordering::Relaxed).to_string();
            let waiter = self.routes.expect_twin_reply(rid.clone())?;
            match connection.publish(topic(&rid), body.clone()).await {
                Ok(()) => {}
                Err(MqttError::Disconnected) => continue,
                Err(error) => return Err(error.into()),
            }
            // An error means the connection was lost (or the client stopped) first.
            let Ok(reply) = waiter.reply().await else {
                continue;
            };
            if !(200..300).contains(&reply.status) {
                return Err(DeviceError::Service {
                    status: reply.status,
                    body: String::from_utf8_lossy(&reply.body).into_owned(),
                });
            }
            return Ok(reply);
        }
        Err(self.gave_up())
    }

    /// A live connection that has `filter` subscribed, subscribing first if needed. The
    /// filter is remembered and restored on every later connection; a refused SUBSCRIBE
    /// forgets it again.
    pub(crate) async fn ensure_subscribed(&self, filter: &str) -> Result<Connection, DeviceError> {
        {
            let mut subscriptions = lock(&self.subscriptions);
            if !subscriptions.wanted.iter().any(|f| f == filter) {
                subscriptions.wanted.push(filter.to_owned());
            }
        }
        for _ in 0..MAX_CONNECTIONS_PER_OPERATION {
            let (connection, generation) = self.connection().await?;
            if self.is_active(filter, generation) {
                return Ok(connection);
            }
            let _one_at_a_time = self.subscribing.lock().await;
            if self.is_active(filter, generation) {
                return Ok(connection);
            }
            match connection.subscribe(filter.to_owned()).await {
                Ok(_) => {
                    let mut subscriptions = lock(&self.subscriptions);
                    if subscriptions.active_generation != generation {
                        subscriptions.active_generation = generation;
                        subscriptions.active.clear();
                    }
                    subscriptions.active.insert(filter.to_owned());
                    return Ok(connection);
                }
                Err(MqttError::Disconnected) => {}
                Err(error) => {
                    lock(&self.subscriptions).wanted.retain(|f| f != filter);
                    return Err(error.into());
                }
            }
        }
        Err(self.gave_up())
    }

    /// The error of an operation that ran out of connections: why the client stopped, if it
    /// did, otherwise plain `Disconnected`.
    fn gave_up(&self) -> DeviceError {
        match &*self.link.borrow() {
            Link::Closed(reason) => reason.to_error(),
            _ => DeviceError::Disconnected,
        }
    }

    fn is_active(&self, filter: &str, generation: u64) -> bool {
        let subscriptions = lock(&self.subscriptions);
        subscriptions.active_generation == generation && subscriptions.active.contains(filter)
    }

    /// What a new connection must subscribe to before it is handed out.
    pub(crate) fn wanted_subscriptions(&self) -> Vec<String> {
        lock(&self.subscriptions).wanted.clone()
    }

    /// Records that connection `generation` has `filters` subscribed.
    pub(crate) fn set_active_subscriptions(&self, generation: u64, filters: Vec<String>) {
        let mut subscriptions = lock(&self.subscriptions);
        subscriptions.active_generation = generation;
        subscriptions.active = filters.into_iter().collect();
    }
}
