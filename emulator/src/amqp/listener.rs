//! The AMQP/TLS listener (5671): TLS with the emulator's shared rustls configuration (with a
//! timeout), then one AMQP connection per socket.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use super::AmqpContext;
use super::connection::serve;
use super::connection_auth::PeerInfo;
use crate::net::{accept_tls, spawn_accept_loop};

/// Serves AMQP over TLS on `listener` until shutdown.
pub fn spawn(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    ctx: Arc<AmqpContext>,
) -> JoinHandle<()> {
    let shutdown = ctx.shutdown.clone();
    spawn_accept_loop(listener, shutdown, move |tcp, remote| {
        serve_connection(tcp, remote, acceptor.clone(), ctx.clone())
    })
}

async fn serve_connection(
    tcp: TcpStream,
    remote: SocketAddr,
    acceptor: TlsAcceptor,
    ctx: Arc<AmqpContext>,
) {
    let Some(tls) = accept_tls(&acceptor, tcp, remote, ctx.limits.handshake_timeout, "AMQP").await
    else {
        return;
    };
    let connection = tls.get_ref().1;
    let peer = PeerInfo {
        remote,
        certificates: connection
            .peer_certificates()
            .map(|chain| chain.to_vec())
            .unwrap_or_default(),
        server_name: connection.server_name().map(str::to_ascii_lowercase),
    };
    serve(tls, peer, ctx).await;
}
