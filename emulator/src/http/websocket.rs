//! MQTT and AMQP over WebSocket on the HTTPS port: `GET /$iothub/websocket` with
//! subprotocol `mqtt` (protocol.md §2.1, §5.1, §11), which the Python SDK uses with
//! `websockets=True` and Node with its `MqttWs` transports, for DPS and hub alike; and
//! subprotocol `AMQPWSB10` there or on `/$servicebus/websocket` (spec/amqp.md §0.8), which
//! goes to [`crate::amqp::websocket`]. The offered subprotocol decides, and is echoed exactly
//! as the client wrote it (Node's `ws` compares the echo exactly).
//!
//! ```text
//! HTTPS request → path /$iothub/websocket (any query) → Upgrade: websocket, version 13,
//!   key, `mqtt` offered? → 101 + Sec-WebSocket-Accept + Sec-WebSocket-Protocol: mqtt
//!   → (hyper hands over the connection) → WebSocket framing → the same MQTT session as 8883
//! ```
//!
//! The session is [`run_session`] unchanged: [`WsByteStream`] turns WebSocket messages back
//! into a byte stream, because MQTT framing is independent of WebSocket framing — a packet
//! may span frames and a frame may carry several packets. The TLS client chain captured by
//! the HTTPS connection is passed on, so X.509 devices authenticate as on 8883.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{
    CONNECTION, HeaderName, HeaderValue, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY,
    SEC_WEBSOCKET_PROTOCOL, SEC_WEBSOCKET_VERSION, UPGRADE,
};
use hyper::{Method, Response, StatusCode};
use hyper_util::rt::TokioIo;
use percent_encoding::percent_decode_str;
use rustls_pki_types::CertificateDer;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use super::HttpContext;
use super::reply::Reply;
use crate::mqtt::MqttContext;
use crate::mqtt::session::{PeerInfo, run_session};
use crate::net::ConnectionSlot;

/// The path Azure serves MQTT and AMQP over WebSocket on.
const PATH: &str = "/$iothub/websocket";
/// The path the Event Hubs clients and uamqp use for AMQP (uamqp with a trailing `/`).
const SERVICEBUS_PATH: &str = "/$servicebus/websocket";

/// The subprotocol the device SDKs offer for MQTT.
const SUBPROTOCOL: &str = "mqtt";

/// Whether `path` (without the query, which is ignored: azure-sdk-for-c appends
/// `?iothub-no-client-cert=true`) is a WebSocket endpoint. `$` may arrive as `%24`; one
/// trailing `/` is allowed.
pub(super) fn is_websocket_path(path: &str) -> bool {
    which_path(path).is_some()
}

/// `Some(true)` for `/$iothub/websocket`, `Some(false)` for `/$servicebus/websocket`.
fn which_path(path: &str) -> Option<bool> {
    let decoded = percent_decode_str(path).decode_utf8().ok()?;
    let trimmed = decoded.strip_suffix('/').unwrap_or(&decoded);
    if trimmed.eq_ignore_ascii_case(PATH) {
        Some(true)
    } else if trimmed.eq_ignore_ascii_case(SERVICEBUS_PATH) {
        Some(false)
    } else {
        None
    }
}

/// The subprotocols a handshake offers, as written, in the client's order.
fn offered_subprotocols(req: &hyper::Request<Incoming>) -> Vec<String> {
    req.headers()
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .collect()
}

/// Which protocol runs over the WebSocket, with the offered token to echo.
enum Chosen {
    Mqtt(String),
    Amqp(String),
}

fn choose(req: &hyper::Request<Incoming>) -> Result<Chosen, &'static str> {
    let iothub_path = which_path(req.uri().path()).unwrap_or(false);
    for offered in offered_subprotocols(req) {
        if offered.eq_ignore_ascii_case(crate::amqp::websocket::SUBPROTOCOL) {
            return Ok(Chosen::Amqp(offered));
        }
        if iothub_path && offered.eq_ignore_ascii_case(SUBPROTOCOL) {
            return Ok(Chosen::Mqtt(offered));
        }
    }
    Err(if iothub_path {
        "Sec-WebSocket-Protocol must offer mqtt or AMQPWSB10"
    } else {
        "Sec-WebSocket-Protocol must offer AMQPWSB10"
    })
}

/// Answers the upgrade request and, once hyper hands the connection over, runs an MQTT
/// session or an AMQP connection on it in its own task. Anything that is not a WebSocket
/// handshake offering `mqtt` (on `/$iothub/websocket`) or `AMQPWSB10` gets a 400 and the
/// connection stays HTTP.
pub(super) fn upgrade(
    ctx: &HttpContext,
    mut req: hyper::Request<Incoming>,
    certificates: &[CertificateDer<'static>],
    remote: SocketAddr,
) -> Reply {
    let checked = check_handshake(&req).and_then(|key| choose(&req).map(|chosen| (key, chosen)));
    let (accept_key, chosen) = match checked {
        Ok(checked) => checked,
        Err(reason) => {
            tracing::info!(%remote, %reason, "WebSocket upgrade refused");
            return bad_request(reason);
        }
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    // The session outlives the HTTP connection's task: it keeps the connection's slot under
    // the HTTPS connection limit and counts as a session for the shutdown drain.
    let slot = req.extensions().get::<Arc<ConnectionSlot>>().cloned();
    let guard = ctx.shutdown.session();
    let subprotocol = match chosen {
        Chosen::Amqp(offered) => {
            let host = req
                .headers()
                .get(hyper::header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned);
            crate::amqp::websocket::serve_upgraded(
                on_upgrade,
                ctx.amqp.clone(),
                certificates.to_vec(),
                host,
                req.uri().path().to_owned(),
                remote,
                slot,
                guard,
            );
            return switching_protocols(&accept_key, &offered);
        }
        Chosen::Mqtt(offered) => offered,
    };
    let peer = PeerInfo {
        remote,
        certificates: certificates.to_vec(),
    };
    let mqtt = ctx.mqtt.clone();
    tokio::spawn(guard.run(async move {
        let _slot = slot;
        match on_upgrade.await {
            Ok(upgraded) => {
                let config = ws_config(&mqtt);
                let ws = WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    Role::Server,
                    Some(config),
                )
                .await;
                // conformance/ pairs this line with the session's `client connected` by remote.
                tracing::debug!(%remote, "MQTT over WebSocket: connection upgraded");
                run_session(WsByteStream::new(ws), peer, mqtt).await;
            }
            Err(e) => tracing::info!(%remote, error = %e, "WebSocket upgrade failed"),
        }
    }));
    switching_protocols(&accept_key, &subprotocol)
}

/// The 101 answer, echoing `subprotocol` as offered.
fn switching_protocols(accept_key: &str, subprotocol: &str) -> Reply {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(value) = HeaderValue::from_str(subprotocol) {
        headers.insert(SEC_WEBSOCKET_PROTOCOL, value);
    }
    if let Ok(value) = HeaderValue::from_str(accept_key) {
        headers.insert(SEC_WEBSOCKET_ACCEPT, value);
    }
    response
}

/// Validates the RFC 6455 handshake and returns the `Sec-WebSocket-Accept` value.
fn check_handshake(req: &hyper::Request<Incoming>) -> Result<String, &'static str> {
    if req.method() != Method::GET {
        return Err("the WebSocket endpoint only accepts GET");
    }
    let headers = req.headers();
    // `Connection: Upgrade` is not insisted on: hyper upgrades on `Upgrade` alone, and a
    // client that forgets it gains nothing from a refusal.
    let has_token = |name: HeaderName, token: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    if !has_token(UPGRADE, "websocket") {
        return Err("expected Upgrade: websocket");
    }
    if !has_token(SEC_WEBSOCKET_VERSION, "13") {
        return Err("expected Sec-WebSocket-Version: 13");
    }
    let key = headers
        .get(SEC_WEBSOCKET_KEY)
        .ok_or("missing Sec-WebSocket-Key")?;
    Ok(derive_accept_key(key.as_bytes()))
}

fn bad_request(reason: &str) -> Reply {
    let mut response = Response::new(Full::new(Bytes::from(reason.to_owned())));
    *response.status_mut() = StatusCode::BAD_REQUEST;
    response
}

/// Frame limits: the largest MQTT packet the session accepts, with room for a client that
/// packs that packet and a few small ones into one message; anything larger is refused by
/// tungstenite before it is buffered.
fn ws_config(mqtt: &MqttContext) -> WebSocketConfig {
    let max = mqtt.limits.max_packet_bytes.saturating_mul(2);
    WebSocketConfig::default()
        .max_message_size(Some(max))
        .max_frame_size(Some(max))
}

pub(crate) use crate::net::WsByteStream;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_path_matches_with_or_without_encoding_and_nothing_else() {
        assert!(is_websocket_path("/$iothub/websocket"));
        assert!(is_websocket_path("/%24iothub/websocket"));
        assert!(is_websocket_path("/$IotHub/WebSocket"));
        assert!(!is_websocket_path("/$iothub/websocket/x"));
        assert!(is_websocket_path("/$iothub/websocket/"));
        assert!(is_websocket_path("/$servicebus/websocket/"));
        assert!(is_websocket_path("/%24servicebus/websocket"));
        assert!(!is_websocket_path("/$servicebus/websocket/x"));
        assert!(!is_websocket_path("/iothub/websocket"));
        assert!(!is_websocket_path("/"));
    }
}
