//! Graceful shutdown: one signal every listener and session watches, and a count of the
//! sessions still running so the emulator can wait for them before it closes the store.
//!
//! The API, for anyone writing a listener or a long-lived task:
//!
//! * [`Shutdown`] — owned by the emulator. [`Shutdown::begin`] tells everyone to finish,
//!   [`Shutdown::drained`] waits (bounded) until every session has ended, and
//!   [`Shutdown::force`] drops the sessions that did not end in time.
//! * [`ShutdownSignal`] — cheap to clone, handed to listeners and sessions.
//!   `signal.recv().await` resolves once shutdown has begun (at once if it already has): an
//!   accept loop stops accepting, a session says goodbye (MQTT closes, HTTP finishes the
//!   request in flight) and returns.
//! * [`SessionGuard`] — from [`ShutdownSignal::session`]: the session counts as running for as
//!   long as the guard lives. [`SessionGuard::run`] runs the session's future and drops it if
//!   shutdown is forced, so a peer that ignores the goodbye cannot keep the emulator alive.
//!   Every connection accepted by `net::spawn_accept_loop` is already guarded; a task
//!   that outlives its connection's task (a WebSocket session after the HTTP upgrade) takes a
//!   guard of its own.
//!
//! The order, as in tokio's mini-redis: stop accepting → signal every session → wait for them
//! with a timeout → force the rest → flush and close the store.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

/// Where the emulator is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    Running,
    /// Sessions were asked to finish.
    Draining,
    /// The drain timed out: sessions still running are dropped.
    Forced,
}

/// Shared by the owner, every signal and every guard.
#[derive(Debug)]
struct State {
    phase: watch::Sender<Phase>,
    /// Sessions alive (guards not yet dropped).
    sessions: watch::Sender<usize>,
}

/// The emulator's side: starts the shutdown and waits for the sessions. Dropping it begins
/// the shutdown. See the module documentation.
#[derive(Debug)]
pub struct Shutdown {
    state: Arc<State>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown::new()
    }
}

impl Shutdown {
    pub fn new() -> Shutdown {
        Shutdown {
            state: Arc::new(State {
                phase: watch::channel(Phase::Running).0,
                sessions: watch::channel(0).0,
            }),
        }
    }

    /// A signal for a listener or session.
    pub fn signal(&self) -> ShutdownSignal {
        ShutdownSignal {
            phase: self.state.phase.subscribe(),
            state: self.state.clone(),
        }
    }

    /// Asks every listener to stop accepting and every session to finish. Idempotent.
    pub fn begin(&self) {
        self.state
            .phase
            .send_if_modified(|phase| raise(phase, Phase::Draining));
    }

    /// Drops every session still running (their futures, and so their sockets).
    pub fn force(&self) {
        self.state
            .phase
            .send_if_modified(|phase| raise(phase, Phase::Forced));
    }

    /// Sessions still running.
    pub fn sessions(&self) -> usize {
        *self.state.sessions.borrow()
    }

    /// Waits until no session is running, at most `timeout`; `false` when some still are.
    pub(crate) async fn drained(&self, timeout: Duration) -> bool {
        let mut sessions = self.state.sessions.subscribe();
        tokio::time::timeout(timeout, sessions.wait_for(|n| *n == 0))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

impl Drop for Shutdown {
    fn drop(&mut self) {
        self.begin();
    }
}

fn raise(phase: &mut Phase, to: Phase) -> bool {
    if *phase < to {
        *phase = to;
        true
    } else {
        false
    }
}

/// What a listener or session watches; see the module documentation.
#[derive(Debug, Clone)]
pub struct ShutdownSignal {
    phase: watch::Receiver<Phase>,
    state: Arc<State>,
}

impl ShutdownSignal {
    /// Whether shutdown has begun.
    pub(crate) fn is_shutdown(&self) -> bool {
        *self.phase.borrow() != Phase::Running
    }

    /// Resolves once shutdown has begun (at once if it already has).
    pub async fn recv(&mut self) {
        // Cannot fail: the sender lives in the shared state this signal holds. (Dropping the
        // owner begins the shutdown, so a lost owner also ends the wait.)
        let _ = self.phase.wait_for(|p| *p != Phase::Running).await;
    }

    /// Resolves once shutdown is forced: whatever is still running is to be dropped.
    async fn forced(&mut self) {
        let _ = self.phase.wait_for(|p| *p == Phase::Forced).await;
    }

    /// Counts a session as running until the guard is dropped.
    pub fn session(&self) -> SessionGuard {
        self.state
            .sessions
            .send_modify(|n| *n = n.saturating_add(1));
        SessionGuard {
            signal: self.clone(),
        }
    }
}

/// A running session, counted until dropped; see the module documentation.
#[derive(Debug)]
pub struct SessionGuard {
    signal: ShutdownSignal,
}

impl SessionGuard {
    /// Runs `session` to its end, or until shutdown is forced (then it is dropped and `None`
    /// returned). The session counts as running throughout.
    pub async fn run<F: Future>(self, session: F) -> Option<F::Output> {
        let mut signal = self.signal.clone();
        let output = tokio::select! {
            output = session => Some(output),
            _ = signal.forced() => None,
        };
        // `self` (the guard) is dropped only now, after the session's future.
        output
    }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.signal
            .state
            .sessions
            .send_modify(|n| *n = n.saturating_sub(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sessions_are_counted_until_their_guards_drop() {
        let shutdown = Shutdown::new();
        let signal = shutdown.signal();
        let guard = signal.session();
        assert_eq!(shutdown.sessions(), 1);
        assert!(!shutdown.drained(Duration::from_millis(10)).await);
        drop(guard);
        assert!(shutdown.drained(Duration::from_millis(10)).await);
    }

    #[tokio::test]
    async fn recv_resolves_after_begin_even_for_signals_made_later() {
        let shutdown = Shutdown::new();
        let mut early = shutdown.signal();
        assert!(!early.is_shutdown());
        shutdown.begin();
        early.recv().await;
        let mut late = shutdown.signal();
        assert!(late.is_shutdown());
        late.recv().await;
    }

    #[tokio::test]
    async fn force_drops_a_session_that_ignores_the_signal() {
        let shutdown = Shutdown::new();
        let guard = shutdown.signal().session();
        let task = tokio::spawn(guard.run(std::future::pending::<()>()));
        shutdown.begin();
        assert!(!shutdown.drained(Duration::from_millis(20)).await);
        shutdown.force();
        assert_eq!(task.await.ok(), Some(None));
        assert!(shutdown.drained(Duration::from_millis(10)).await);
    }

    #[tokio::test]
    async fn a_dropped_owner_reads_as_shutdown() {
        let shutdown = Shutdown::new();
        let mut signal = shutdown.signal();
        drop(shutdown);
        signal.recv().await;
    }
}
