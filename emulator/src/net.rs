//! What every listener shares: the accept loop and a TLS handshake bounded by a timeout.
//!
//! [`spawn_accept_loop`] is the one accept loop of the emulator (MQTT, HTTPS, control, AMQP):
//!
//! * each connection gets its own task, so one slow or idle peer cannot block the others;
//! * at most [`ConnectionLimit`] connections per listener kind are open at once; beyond that
//!   the loop stops accepting and new connections wait in the kernel's backlog until one
//!   closes. Each kind has its own limit, so a flood of one (HTTPS) cannot take the file
//!   descriptors the others (MQTT, control) need;
//! * an accept error that is about the process rather than one connection — out of file
//!   descriptors (`EMFILE`, `ENFILE`), out of memory — is backed off (5 ms doubling to 1 s),
//!   not spun on, and logged once per burst;
//! * on shutdown it stops accepting (the listening socket is closed), and every connection
//!   task runs under a [`SessionGuard`], so the emulator can wait for it and drop it when it
//!   does not finish in time.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::shutdown::ShutdownSignal;

/// How many connections of one listener kind may be open at once; clones share the count
/// (one limit for every address a kind is bound on).
#[derive(Debug, Clone)]
pub struct ConnectionLimit {
    slots: Arc<Semaphore>,
    max: usize,
}

impl ConnectionLimit {
    pub fn new(max: usize) -> ConnectionLimit {
        // A limit of 0 would never accept anything; treat it as 1.
        let max = max.clamp(1, Semaphore::MAX_PERMITS);
        ConnectionLimit {
            slots: Arc::new(Semaphore::new(max)),
            max,
        }
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// Connections open now.
    pub fn in_use(&self) -> usize {
        self.max.saturating_sub(self.slots.available_permits())
    }
}

/// One connection's place under its [`ConnectionLimit`]: the slot is free again when this
/// is dropped. A task that outlives the connection's own (a WebSocket session after the HTTP
/// upgrade) keeps it alive.
#[derive(Debug)]
pub struct ConnectionSlot {
    _permit: OwnedSemaphorePermit,
}

/// The first and longest pause after an accept error that is not about one connection.
const FIRST_BACKOFF: Duration = Duration::from_millis(5);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Accepts on `listener` (named `kind` in logs) until shutdown, handing each connection to
/// `serve` in a task of its own that runs under a [`SessionGuard`](crate::shutdown::SessionGuard).
/// See the module documentation for the limit and the backoff.
pub fn spawn_accept_loop<F, Fut>(
    listener: TcpListener,
    kind: &'static str,
    limit: ConnectionLimit,
    mut shutdown: ShutdownSignal,
    serve: F,
) -> JoinHandle<()>
where
    F: Fn(TcpStream, SocketAddr, ConnectionSlot) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        let mut backoff = Backoff::default();
        let mut at_limit = false;
        loop {
            // A slot first: at the limit, connections wait in the backlog, not in our memory.
            let permit = match limit.slots.clone().try_acquire_owned() {
                Ok(permit) => permit,
                Err(_) => {
                    if !at_limit {
                        at_limit = true;
                        tracing::warn!(
                            listener = kind,
                            limit = limit.max,
                            "connection limit reached; new connections wait until one closes"
                        );
                    }
                    tokio::select! {
                        permit = limit.slots.clone().acquire_owned() => match permit {
                            Ok(permit) => permit,
                            Err(_) => break,
                        },
                        _ = shutdown.recv() => break,
                    }
                }
            };
            if at_limit && limit.slots.available_permits() > 0 {
                at_limit = false;
            }
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = shutdown.recv() => break,
            };
            match accepted {
                Ok((tcp, remote)) => {
                    backoff.succeeded(kind);
                    let _ = tcp.set_nodelay(true);
                    let slot = ConnectionSlot { _permit: permit };
                    let guard = shutdown.session();
                    tokio::spawn(guard.run(serve(tcp, remote, slot)));
                }
                Err(e) if is_about_one_connection(&e) => {
                    tracing::debug!(listener = kind, error = %e, "accept: connection lost before it was accepted");
                }
                Err(e) => {
                    let pause = backoff.failed(kind, &e);
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => {}
                        _ = shutdown.recv() => break,
                    }
                }
            }
        }
        tracing::debug!(listener = kind, "stopped accepting");
    })
}

/// Errors about the connection being accepted (it was reset while queued), not about the
/// process: the next accept may well succeed at once.
fn is_about_one_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

/// Exponential backoff over a burst of accept failures, logging its start and end once.
#[derive(Debug, Default)]
struct Backoff {
    /// Failures in the current burst; 0 when accepting works.
    failures: u64,
    since: Option<Instant>,
    next: Duration,
}

impl Backoff {
    fn failed(&mut self, kind: &'static str, e: &io::Error) -> Duration {
        if self.failures == 0 {
            tracing::warn!(
                listener = kind,
                error = %e,
                "accept failed; backing off until it works again (out of file descriptors? raise `ulimit -n` or lower the connection limits)"
            );
            self.since = Some(Instant::now());
            self.next = FIRST_BACKOFF;
        }
        self.failures = self.failures.saturating_add(1);
        let pause = self.next;
        self.next = (self.next * 2).min(MAX_BACKOFF);
        pause
    }

    fn succeeded(&mut self, kind: &'static str) {
        if self.failures > 0 {
            let failed_for = self.since.map(|s| s.elapsed()).unwrap_or_default();
            tracing::info!(
                listener = kind,
                failures = self.failures,
                failed_for_ms = failed_for.as_millis() as u64,
                "accepting again after a burst of accept failures"
            );
            self.failures = 0;
            self.since = None;
        }
    }
}

/// The TLS handshake, or `None` (logged) when it fails or takes longer than `timeout`.
pub(crate) async fn accept_tls(
    acceptor: &TlsAcceptor,
    tcp: TcpStream,
    remote: SocketAddr,
    timeout: Duration,
    listener: &'static str,
) -> Option<TlsStream<TcpStream>> {
    match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => Some(tls),
        Ok(Err(e)) => {
            tracing::info!(%remote, error = %e, listener, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::info!(%remote, listener, "TLS handshake timed out");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_ceiling_and_resets_after_a_success() {
        let mut backoff = Backoff::default();
        let error = io::Error::other("Too many open files");
        let pauses: Vec<Duration> = (0..12).map(|_| backoff.failed("test", &error)).collect();
        assert_eq!(pauses[0], FIRST_BACKOFF);
        assert_eq!(pauses[1], FIRST_BACKOFF * 2);
        assert_eq!(pauses.last(), Some(&MAX_BACKOFF));
        assert!(pauses.windows(2).all(|w| w[0] <= w[1]));
        backoff.succeeded("test");
        assert_eq!(backoff.failed("test", &error), FIRST_BACKOFF);
    }

    #[test]
    fn reset_connections_are_not_backed_off_but_descriptor_exhaustion_is() {
        assert!(is_about_one_connection(&io::Error::from(
            io::ErrorKind::ConnectionAborted
        )));
        // EMFILE (24) and ENFILE (23) on Linux.
        assert!(!is_about_one_connection(&io::Error::from_raw_os_error(24)));
        assert!(!is_about_one_connection(&io::Error::from_raw_os_error(23)));
    }

    #[tokio::test]
    async fn connections_beyond_the_limit_wait_until_one_closes() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let limit = ConnectionLimit::new(1);
        let shutdown = crate::shutdown::Shutdown::new();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let task = spawn_accept_loop(listener, "test", limit.clone(), shutdown.signal(), {
            move |tcp, _, slot| {
                let tx = tx.clone();
                async move {
                    // Holds the slot until the peer closes.
                    let _slot = slot;
                    let _ = tx.send(());
                    let mut tcp = tcp;
                    let _ = tokio::io::AsyncReadExt::read(&mut tcp, &mut [0u8; 1]).await;
                }
            }
        });
        let first = TcpStream::connect(addr).await.unwrap();
        rx.recv().await.unwrap();
        let _second = TcpStream::connect(addr).await.unwrap();
        // The second sits in the backlog: not served while the first holds the only slot.
        assert!(
            tokio::time::timeout(Duration::from_millis(200), rx.recv())
                .await
                .is_err()
        );
        assert_eq!(limit.in_use(), 1);
        drop(first);
        rx.recv().await.unwrap();
        shutdown.begin();
        task.await.unwrap();
    }
}
