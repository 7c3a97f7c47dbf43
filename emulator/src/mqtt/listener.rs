//! The MQTT listener: TLS (with a timeout) per connection, then one session task; at most
//! the listener's connection limit at once (see `net.rs`).

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use super::MqttContext;
use super::session::{PeerInfo, run_session};
use crate::net::{ConnectionLimit, ConnectionSlot, accept_tls, spawn_accept_loop};

/// Serves MQTT over TLS on `listener` until shutdown.
pub fn spawn(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    limit: ConnectionLimit,
    ctx: Arc<MqttContext>,
) -> JoinHandle<()> {
    let shutdown = ctx.shutdown.clone();
    spawn_accept_loop(
        listener,
        "MQTT",
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
    ctx: Arc<MqttContext>,
) {
    let mut shutdown = ctx.shutdown.clone();
    let handshake = accept_tls(&acceptor, tcp, remote, ctx.limits.handshake_timeout, "MQTT");
    // Shutdown does not wait for a handshake; the session itself says goodbye to a client.
    let tls = tokio::select! {
        tls = handshake => tls,
        _ = shutdown.recv() => None,
    };
    let Some(tls) = tls else {
        return;
    };
    let peer = PeerInfo {
        remote,
        certificates: tls
            .get_ref()
            .1
            .peer_certificates()
            .map(|chain| chain.to_vec())
            .unwrap_or_default(),
    };
    run_session(tls, peer, ctx).await;
}
