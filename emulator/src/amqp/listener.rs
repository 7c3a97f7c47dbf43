//! The AMQP/TLS listener (5671): TLS with the emulator's shared rustls configuration (with a
//! timeout), then one AMQP connection per socket; at most the listener's connection limit at
//! once (see `net.rs`).

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use super::AmqpContext;
use super::connection::serve;
use super::connection_auth::PeerInfo;
use crate::net::{ConnectionLimit, TlsSetup, spawn_tls_sessions};

/// Serves AMQP over TLS on `listener` until shutdown.
pub(crate) fn spawn(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    limit: ConnectionLimit,
    ctx: Arc<AmqpContext>,
) -> JoinHandle<()> {
    let tls = TlsSetup {
        acceptor,
        handshake_timeout: ctx.limits.handshake_timeout,
    };
    let shutdown = ctx.shutdown.clone();
    // Shutdown does not wait for a handshake; an open connection is closed with a reason.
    spawn_tls_sessions(
        listener,
        "AMQP",
        tls,
        limit,
        shutdown,
        ctx,
        |tls, peer, ctx| {
            let peer = PeerInfo {
                remote: peer.remote,
                certificates: peer.certificates,
                server_name: peer.server_name,
            };
            serve(tls, peer, ctx)
        },
    )
}
