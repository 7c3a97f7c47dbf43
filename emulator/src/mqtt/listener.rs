//! The MQTT listener: TLS (with a timeout) per connection, then one session task.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use super::MqttContext;
use super::session::{PeerInfo, run_session};
use crate::net::{accept_tls, spawn_accept_loop};

/// Serves MQTT over TLS on `listener` until shutdown.
pub fn spawn(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    ctx: Arc<MqttContext>,
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
    ctx: Arc<MqttContext>,
) {
    let Some(tls) = accept_tls(&acceptor, tcp, remote, ctx.limits.handshake_timeout, "MQTT").await
    else {
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
