//! The MQTT listener: TLS (with a timeout) per connection, then one session task; at most
//! the listener's connection limit at once (see `net.rs`).

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use super::MqttContext;
use super::session::{PeerInfo, run_session};
use crate::net::{ConnectionLimit, TlsSetup, spawn_tls_sessions};

/// Serves MQTT over TLS on `listener` until shutdown.
pub(crate) fn spawn(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    limit: ConnectionLimit,
    ctx: Arc<MqttContext>,
) -> JoinHandle<()> {
    let tls = TlsSetup {
        acceptor,
        handshake_timeout: ctx.limits.handshake_timeout,
    };
    let shutdown = ctx.shutdown.clone();
    // Shutdown does not wait for a handshake; the session itself says goodbye to a client.
    spawn_tls_sessions(
        listener,
        "MQTT",
        tls,
        limit,
        shutdown,
        ctx,
        |tls, peer, ctx| {
            let peer = PeerInfo {
                remote: peer.remote,
                certificates: peer.certificates,
            };
            run_session(tls, peer, ctx)
        },
    )
}
