//! AMQP over WebSocket on the HTTPS port (spec/amqp.md §0.8, §8): subprotocol `AMQPWSB10`
//! on `/$iothub/websocket` (Node's IoT clients) and `/$servicebus/websocket[/]` (Event Hubs
//! clients, uamqp). `fe2o3-amqp-ws` is client-only and insists on subprotocol `amqp`, so the
//! server side is ours: [`crate::http`] answers the handshake (echoing the offered token),
//! and once hyper hands the connection over, its binary frames become a byte stream
//! ([`WsByteStream`]) for the same [`super::connection::serve`] as port 5671. No TLS inside:
//! TLS is the HTTPS listener's.

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use rustls_pki_types::CertificateDer;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use super::AmqpContext;
use super::connection::serve;
use super::connection_auth::PeerInfo;
use crate::net::ConnectionSlot;
/// Binary WebSocket frames as a byte stream (server or client side).
pub(crate) use crate::net::WsByteStream;
use crate::shutdown::SessionGuard;

/// The WebSocket subprotocol of AMQP (compared case-insensitively).
pub(crate) const SUBPROTOCOL: &str = "AMQPWSB10";

/// Runs an AMQP connection on the upgraded connection, in its own task. `host` is the
/// handshake's `Host` header (the hub the client dialled; any port is dropped).
#[allow(clippy::too_many_arguments)]
pub(crate) fn serve_upgraded(
    on_upgrade: OnUpgrade,
    amqp: Arc<AmqpContext>,
    certificates: Vec<CertificateDer<'static>>,
    host: Option<String>,
    path: String,
    remote: SocketAddr,
    slot: Option<Arc<ConnectionSlot>>,
    guard: SessionGuard,
) {
    // The connection outlives the HTTP connection's task: it keeps that connection's slot
    // under the HTTPS limit and counts as a session for the shutdown drain.
    tokio::spawn(guard.run(async move {
        let _slot = slot;
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(e) => {
                tracing::info!(%remote, error = %e, "WebSocket upgrade failed");
                return;
            }
        };
        let ws = WebSocketStream::from_raw_socket(
            TokioIo::new(upgraded),
            Role::Server,
            Some(ws_config(&amqp)),
        )
        .await;
        // conformance/ asserts on this line.
        tracing::debug!(%remote, %path, "AMQP over WebSocket: connection upgraded");
        let peer = PeerInfo {
            remote,
            certificates,
            server_name: host.map(|h| host_without_port(&h)),
        };
        serve(WsByteStream::new(ws), peer, amqp).await;
    }));
}

/// WebSocket messages may carry several AMQP frames; allow a few maximum-size frames per
/// message and refuse anything larger before it is buffered.
fn ws_config(amqp: &AmqpContext) -> WebSocketConfig {
    let max = (amqp.limits.max_frame_size as usize).saturating_mul(16);
    WebSocketConfig::default()
        .max_message_size(Some(max))
        .max_frame_size(Some(max))
}

fn host_without_port(host: &str) -> String {
    let host = host.trim();
    let bare = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        host.rsplit_once(':')
            .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
            .map_or(host, |(h, _)| h)
    };
    bare.to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_header_loses_its_port() {
        assert_eq!(host_without_port("LocalHost:443"), "localhost");
        assert_eq!(host_without_port("hub.example"), "hub.example");
        assert_eq!(host_without_port("[::1]:443"), "::1");
    }
}
