//! Serving a protocol over TLS: the handshake with the listener's timeout (abandoned on
//! shutdown), and what it tells about the client ([`TlsPeer`]), written once for MQTT, AMQP
//! and HTTPS.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt as _;
use rustls_pki_types::CertificateDer;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::accept::spawn_accept_loop;
use super::limit::{ConnectionLimit, ConnectionSlot};
use crate::shutdown::ShutdownSignal;

/// What the TLS handshake tells about the client.
#[derive(Debug, Clone)]
pub(crate) struct TlsPeer {
    pub(crate) remote: SocketAddr,
    /// The chain the client sent, leaf first (empty without one).
    pub(crate) certificates: Vec<CertificateDer<'static>>,
    /// The server name the client asked for (SNI), lower-case.
    pub(crate) server_name: Option<String>,
}

/// How a listener does TLS: the server configuration and how long a handshake may take.
#[derive(Clone)]
pub(crate) struct TlsSetup {
    pub(crate) acceptor: TlsAcceptor,
    pub(crate) handshake_timeout: Duration,
}

/// [`spawn_accept_loop`] with the TLS handshake done first: `serve` gets the TLS stream,
/// the peer, and the connection's slot (which it keeps while the connection is open).
/// Connections whose handshake fails, times out or is cut by shutdown are dropped (logged).
pub(crate) fn spawn_tls_accept_loop<F, Fut>(
    listener: TcpListener,
    kind: &'static str,
    tls: TlsSetup,
    limit: ConnectionLimit,
    shutdown: ShutdownSignal,
    serve: F,
) -> JoinHandle<()>
where
    F: Fn(TlsStream<TcpStream>, TlsPeer, ConnectionSlot) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let serve = Arc::new(serve);
    let signal = shutdown.clone();
    spawn_accept_loop(listener, kind, limit, signal, move |tcp, remote, slot| {
        let tls = tls.clone();
        let mut shutdown = shutdown.clone();
        // Made here, not inside the connection's future: what it takes (the TCP stream, the
        // TLS setup, the shutdown signal) would otherwise also be stored in that future for
        // the connection's whole life. Boxed, with the race against shutdown inside the box:
        // the handshake's state and the shutdown wait are freed when the session starts.
        let accepted = Box::pin(async move {
            // Shutdown does not wait for a handshake; open connections say goodbye themselves.
            tokio::select! {
                accepted = accept_tls(&tls, tcp, remote, kind) => accepted,
                _ = shutdown.recv() => None,
            }
        });
        let serve = serve.clone();
        async move {
            // The accepted stream is moved into the session before anything is awaited: a
            // local whose scope spans the session's await would be stored in this future
            // even after it was moved out (docs/benchmarks.md, per-session memory). Boxed for
            // the same reason: `session` and its awaited copy would each hold the whole
            // session's state (HTTPS: 3.8 KB twice).
            let session = accepted
                .await
                .map(|(stream, peer)| Box::pin(serve(stream, peer, slot)));
            if let Some(session) = session {
                session.await;
            }
        }
    })
}

/// [`spawn_tls_accept_loop`] for a protocol whose connections need only the listener's
/// context (MQTT, AMQP): `serve` gets the TLS stream, the peer and a clone of `ctx`, and the
/// connection's slot is held until the future it returns is done.
pub(crate) fn spawn_tls_sessions<C, F, Fut>(
    listener: TcpListener,
    kind: &'static str,
    tls: TlsSetup,
    limit: ConnectionLimit,
    shutdown: ShutdownSignal,
    ctx: Arc<C>,
    serve: F,
) -> JoinHandle<()>
where
    C: Send + Sync + 'static,
    F: Fn(TlsStream<TcpStream>, TlsPeer, Arc<C>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    spawn_tls_accept_loop(
        listener,
        kind,
        tls,
        limit,
        shutdown,
        // The slot is released when the session ends. `map` holds the session's future once
        // (an async block taking it would store it twice: captured and awaited); the accept
        // loop boxes the whole.
        move |tls, peer, slot| serve(tls, peer, ctx.clone()).map(move |()| drop(slot)),
    )
}

/// The TLS handshake and the peer it reveals, or `None` (logged) when it fails or takes
/// longer than the timeout.
async fn accept_tls(
    tls: &TlsSetup,
    tcp: TcpStream,
    remote: SocketAddr,
    listener: &'static str,
) -> Option<(TlsStream<TcpStream>, TlsPeer)> {
    match tokio::time::timeout(tls.handshake_timeout, tls.acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => {
            let connection = stream.get_ref().1;
            let peer = TlsPeer {
                remote,
                certificates: connection
                    .peer_certificates()
                    .map(|chain| chain.to_vec())
                    .unwrap_or_default(),
                server_name: connection.server_name().map(str::to_ascii_lowercase),
            };
            Some((stream, peer))
        }
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
