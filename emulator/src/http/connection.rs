//! One HTTPS connection: the TLS handshake, hyper's HTTP/1.1 over it, and the timeouts hyper
//! does not give us separately — a request head must arrive within the header timeout of its
//! first byte (slowloris), and a connection with no request in progress is closed after the
//! idle timeout (before the first request and between keep-alive requests). The body timeout
//! is the router's, where the body is read. On shutdown the request in flight finishes and
//! the connection closes.
//!
//! ```text
//!   Idle ──first byte read──▶ Head ──head parsed, handler runs──▶ Busy ──reply──▶ Idle
//!   (idle timeout)            (header timeout)                   (body timeout in the router)
//! ```

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_rustls::server::TlsStream;

use super::{HttpContext, router};
use crate::net::{ConnectionSlot, TlsPeer, forward_async_write};

/// Where one connection is, as far as the timeouts go.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// No request in progress since this instant.
    Idle(Instant),
    /// A request head started arriving at this instant.
    Head(Instant),
    /// A handler is running (it bounds the body read itself).
    Busy,
}

/// The phase, shared by the stream (which sees bytes arrive), the service (which sees
/// requests start and end) and the watchdog (which enforces the deadlines).
struct Activity {
    phase: Mutex<Phase>,
    changed: Notify,
}

impl Activity {
    fn new() -> Arc<Activity> {
        Arc::new(Activity {
            phase: Mutex::new(Phase::Idle(Instant::now())),
            changed: Notify::new(),
        })
    }

    fn set(&self, update: impl FnOnce(Phase) -> Phase) {
        let mut phase = self.phase.lock().unwrap_or_else(PoisonError::into_inner);
        *phase = update(*phase);
        drop(phase);
        self.changed.notify_one();
    }

    fn get(&self) -> Phase {
        *self.phase.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn bytes_arrived(&self) {
        if matches!(self.get(), Phase::Idle(_)) {
            self.set(|phase| match phase {
                Phase::Idle(_) => Phase::Head(Instant::now()),
                other => other,
            });
        }
    }

    /// Resolves with the reason once a deadline passes.
    async fn expired(&self, ctx: &HttpContext) -> &'static str {
        loop {
            // Registered before the phase is read: a change in between is not missed.
            let changed = self.changed.notified();
            let deadline = match self.get() {
                Phase::Idle(since) => Some((since + ctx.limits.idle_timeout, "idle timeout")),
                Phase::Head(since) => Some((
                    since + ctx.limits.header_timeout,
                    "request head not complete within the header timeout",
                )),
                Phase::Busy => None,
            };
            match deadline {
                Some((at, reason)) => tokio::select! {
                    _ = tokio::time::sleep_until(at) => return reason,
                    _ = changed => {}
                },
                None => changed.await,
            }
        }
    }
}

/// The service's one error: an injected fault closes the connection without an answer.
#[derive(Debug)]
struct AbortedByFault;

impl std::fmt::Display for AbortedByFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("closed without an answer by an iotemu fault")
    }
}

impl std::error::Error for AbortedByFault {}

/// Serves one accepted TCP connection until the client closes, a timeout closes it, or
/// shutdown (which lets the request in flight finish).
pub(super) async fn serve(
    tls: TlsStream<TcpStream>,
    peer: TlsPeer,
    slot: ConnectionSlot,
    ctx: Arc<HttpContext>,
) {
    let remote = peer.remote;
    // The client's chain, captured once per connection for X.509 requests.
    let certificates = Arc::new(peer.certificates);
    let activity = Activity::new();
    // An upgraded connection (WebSocket) outlives this task: its session keeps the slot.
    let slot = Arc::new(slot);
    let service = {
        let ctx = ctx.clone();
        let activity = activity.clone();
        service_fn(move |mut req| {
            let ctx = ctx.clone();
            let certificates = certificates.clone();
            let activity = activity.clone();
            req.extensions_mut().insert(slot.clone());
            async move {
                activity.set(|_| Phase::Busy);
                let reply = router::handle(&ctx, req, &certificates, remote).await;
                activity.set(|_| Phase::Idle(Instant::now()));
                // An error from the service makes hyper close the connection unanswered.
                if reply
                    .extensions()
                    .get::<super::reply::AbortConnection>()
                    .is_some()
                {
                    return Err(AbortedByFault);
                }
                Ok(reply)
            }
        })
    };
    let stream = Watched {
        inner: tls,
        activity: activity.clone(),
    };
    let connection = http1::Builder::new()
        // Our watchdog bounds the head; hyper's own timer stays off.
        .header_read_timeout(None)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(connection);
    let mut shutdown = ctx.shutdown.clone();
    let mut draining = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%remote, error = %e, "HTTPS connection ended with an error");
                }
                return;
            }
            reason = activity.expired(&ctx) => {
                tracing::debug!(%remote, reason, "HTTPS connection closed");
                return;
            }
            _ = shutdown.recv(), if !draining => {
                // Finishes the request in flight (if any), then closes.
                draining = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

/// The TLS stream, telling [`Activity`] when request bytes arrive.
struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.bytes_arrived();
        }
        polled
    }
}

forward_async_write!(Watched, inner);
