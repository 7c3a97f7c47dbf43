//! HTTPS front (port 443): hyper 1 over the shared rustls configuration, routed by path to
//! the DPS device API, the DPS service API, (later) the hub APIs, and MQTT over WebSocket.
//! Like the MQTT front it only speaks the wire; trust is decided by [`crate::auth`], rules by
//! the domain.

mod dps_device;
mod dps_service;
mod hub_device;
mod hub_service;
mod reply;
mod request;
mod router;
pub(crate) mod websocket;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::dps::Dps;
use crate::hub::Hubs;
use crate::mqtt::MqttContext;
use crate::net::{accept_tls, spawn_accept_loop};

/// What every HTTPS request handler needs.
pub struct HttpContext {
    pub dps: Arc<Dps>,
    pub hubs: Arc<Hubs>,
    /// For MQTT over WebSocket: upgraded connections run the same sessions as port 8883.
    pub mqtt: Arc<MqttContext>,
    /// For AMQP over WebSocket: upgraded connections run the same connections as port 5671.
    pub amqp: Arc<crate::amqp::AmqpContext>,
    pub handshake_timeout: Duration,
    pub shutdown: watch::Receiver<bool>,
}

/// Serves HTTPS on `listener` until shutdown.
pub fn spawn(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    ctx: Arc<HttpContext>,
) -> JoinHandle<()> {
    let shutdown = ctx.shutdown.clone();
    spawn_accept_loop(listener, shutdown, move |tcp, remote| {
        serve_connection(tcp, remote, acceptor.clone(), ctx.clone())
    })
}

async fn serve_connection(
    tcp: tokio::net::TcpStream,
    remote: SocketAddr,
    acceptor: TlsAcceptor,
    ctx: Arc<HttpContext>,
) {
    let Some(tls) = accept_tls(&acceptor, tcp, remote, ctx.handshake_timeout, "HTTPS").await else {
        return;
    };
    // The client's chain, captured once per connection for X.509 requests.
    let certificates = Arc::new(
        tls.get_ref()
            .1
            .peer_certificates()
            .map(|chain| chain.to_vec())
            .unwrap_or_default(),
    );
    let mut shutdown = ctx.shutdown.clone();
    let service = service_fn(move |req| {
        let ctx = ctx.clone();
        let certificates = certificates.clone();
        async move { Ok::<_, Infallible>(router::handle(&ctx, req, &certificates, remote).await) }
    });
    let connection = http1::Builder::new()
        .serve_connection(TokioIo::new(tls), service)
        .with_upgrades();
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(%remote, error = %e, "HTTPS connection ended with an error");
            }
        }
        _ = shutdown.changed() => connection.as_mut().graceful_shutdown(),
    }
}
