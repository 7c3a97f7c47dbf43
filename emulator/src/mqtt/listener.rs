//! The accept loop: never waits on a handshake itself, so one slow or idle peer cannot block
//! the others. Each connection gets its own task with handshake and CONNECT timeouts.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use super::MqttContext;
use super::session::{PeerInfo, run_session};

/// Serves MQTT over TLS on `listener` until shutdown.
pub fn spawn(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    ctx: Arc<MqttContext>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut shutdown = ctx.shutdown.clone();
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = shutdown.changed() => break,
            };
            let (tcp, remote) = match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let ctx = ctx.clone();
            tokio::spawn(async move { serve_connection(tcp, remote, acceptor, ctx).await });
        }
    })
}

async fn serve_connection(
    tcp: tokio::net::TcpStream,
    remote: SocketAddr,
    acceptor: TlsAcceptor,
    ctx: Arc<MqttContext>,
) {
    let handshake = tokio::time::timeout(ctx.limits.handshake_timeout, acceptor.accept(tcp)).await;
    let tls = match handshake {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::info!(%remote, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::info!(%remote, "TLS handshake timed out");
            return;
        }
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
