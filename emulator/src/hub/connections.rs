//! Which connection currently speaks for each device identity. IoT Hub allows one: a new
//! connection for the same identity drops the old one (400027
//! ConnectionForcefullyClosedOnNewConnection). Transports attach on CONNECT and detach on exit;
//! detaching is by connection id so a late-closing old connection never removes its successor.
//!
//! Every change of who is connected is reported to an observer (the hub's connection state
//! events): a connect, a disconnect, and a replaced connection as a disconnect then a connect.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use dashmap::DashMap;
use serde_json::Value;
use tokio::sync::Notify;

use super::methods::MethodCall;
use super::push_queue;

/// What the hub sends to a connected device outside request/response.
#[derive(Debug)]
pub enum Outbound {
    /// A desired-properties patch, `$version` included.
    DesiredPatch { version: u64, patch: Value },
    /// A direct method call; the session answers through its oneshot.
    Method(MethodCall),
    /// A cloud-to-device message was queued; the session pulls it when it can deliver.
    C2dAvailable,
    /// A message for one of a module's inputs.
    ModuleInput(Box<super::module::ModuleInput>),
}

/// Messages queued per connection before the hub reports it busy.
const OUTBOUND_QUEUE: usize = 128;

/// Told `(connection key, connected)` after each change.
pub(crate) type ConnectionObserver = Arc<dyn Fn(&str, bool) + Send + Sync>;

#[derive(Default)]
pub struct Connections {
    next_id: AtomicU64,
    active: DashMap<String, ActiveConnection>,
    observer: RwLock<Option<ConnectionObserver>>,
}

#[derive(Clone)]
struct ActiveConnection {
    id: u64,
    kicked: Arc<Notify>,
    outbound: push_queue::Sender<Outbound>,
}

/// Held by a transport for the life of a device connection.
pub struct ConnectionLease {
    pub id: u64,
    /// Notified when a newer connection for the same identity replaces this one.
    pub kicked: Arc<Notify>,
    /// What the hub pushes to this connection.
    pub outbound: push_queue::Receiver<Outbound>,
}

impl Connections {
    /// Reports every later change to `observer` (replacing any earlier one).
    pub(crate) fn set_observer(&self, observer: ConnectionObserver) {
        *self.observer.write().unwrap_or_else(|p| p.into_inner()) = Some(observer);
    }

    fn notify(&self, identity: &str, connected: bool) {
        let observer = self
            .observer
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(observer) = observer {
            observer(identity, connected);
        }
    }

    /// Registers a new connection for `identity`, kicking any previous one.
    pub fn attach(&self, identity: &str) -> ConnectionLease {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let kicked = Arc::new(Notify::new());
        let (sender, outbound) = push_queue::channel(OUTBOUND_QUEUE);
        let previous = self.active.insert(
            identity.to_owned(),
            ActiveConnection {
                id,
                kicked: kicked.clone(),
                outbound: sender,
            },
        );
        if let Some(previous) = previous {
            // notify_one stores a permit, so the old session sees it even if not yet waiting.
            previous.kicked.notify_one();
            self.notify(identity, false);
        }
        self.notify(identity, true);
        ConnectionLease {
            id,
            kicked,
            outbound,
        }
    }

    /// Queues `message` for `identity`'s connection; false when it is not connected or busy.
    pub fn send(&self, identity: &str, message: Outbound) -> bool {
        let sender = self.active.get(identity).map(|a| a.outbound.clone());
        sender.is_some_and(|s| s.try_send(message).is_ok())
    }

    pub fn detach(&self, identity: &str, id: u64) {
        if self
            .active
            .remove_if(identity, |_, active| active.id == id)
            .is_some()
        {
            self.notify(identity, false);
        }
    }

    pub fn is_connected(&self, identity: &str) -> bool {
        self.active.contains_key(identity)
    }

    /// Ends `identity`'s connection, if any, when the identity may no longer connect (disabled
    /// or deleted). It is removed here rather than at the session's detach so that the
    /// registry reports it disconnected at once; the session's later detach finds nothing.
    pub fn disconnect(&self, identity: &str) {
        if let Some((_, active)) = self.active.remove(identity) {
            // notify_one stores a permit, so the session sees it even if not yet waiting.
            active.kicked.notify_one();
            self.notify(identity, false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn newer_connection_kicks_older_and_survives_its_detach() {
        let connections = Connections::default();
        let first = connections.attach("dev");
        let second = connections.attach("dev");
        tokio::time::timeout(Duration::from_secs(1), first.kicked.notified())
            .await
            .expect("first connection is kicked");
        connections.detach("dev", first.id);
        assert!(connections.is_connected("dev"));
        connections.detach("dev", second.id);
        assert!(!connections.is_connected("dev"));
    }

    #[test]
    fn every_change_reaches_the_observer() {
        let connections = Connections::default();
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        connections.set_observer(Arc::new(move |key: &str, connected: bool| {
            log.lock().unwrap().push((key.to_owned(), connected));
        }));
        let first = connections.attach("dev");
        let second = connections.attach("dev");
        connections.detach("dev", first.id); // already replaced: no event
        connections.detach("dev", second.id);
        let module = connections.attach("dev/mod");
        connections.disconnect("dev/mod");
        connections.detach("dev/mod", module.id);
        let events = seen.lock().unwrap().clone();
        let expected = [
            ("dev", true),
            ("dev", false),
            ("dev", true),
            ("dev", false),
            ("dev/mod", true),
            ("dev/mod", false),
        ];
        assert_eq!(events, expected.map(|(k, c)| (k.to_owned(), c)).to_vec());
    }
}
