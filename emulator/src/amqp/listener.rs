//! The AMQP/TLS listener (5671): TLS with the emulator's shared rustls configuration (with a
//! timeout), then one AMQP connection per socket; at most the listener's connection limit at
//! once (see `net.rs`).

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use super::AmqpContext;
use super::connection::serve;
use super::connection_auth::PeerInfo;
use crate::net::{ConnectionLimit, ConnectionSlot, accept_tls, spawn_accept_loop};

/// Serves AMQP over TLS on `listener` until shutdown.
pub fn spawn(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    limit: ConnectionLimit,
    ctx: Arc<AmqpContext>,
) -> JoinHandle<()> {
    let shutdown = ctx.shutdown.clone();
    spawn_accept_loop(
        listener,
        "AMQP",
        limit,
        shutdown,
        move |tcp, remote, slot| serve_connection(tcp, remote, slot, acceptor.clone(), ctx.clone()),
    )
}

async fn serve_connection(
    tcp: TcpStream,
    remote: SocketAddr,
    _slot: ConnectionSlot,
    acceptor: TlsAcceptor,
    ctx: Arc<AmqpContext>,
) {
    let mut shutdown = ctx.shutdown.clone();
    let handshake = accept_tls(&acceptor, tcp, remote, ctx.limits.handshake_timeout, "AMQP");
    // Shutdown does not wait for a handshake; an open connection is closed with a reason.
    let tls = tokio::select! {
        tls = handshake => tls,
        _ = shutdown.recv() => None,
    };
    let Some(tls) = tls else {
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
