//! The one error type of the MQTT layer; the DPS and hub clients convert it into their public
//! error types, so every transport failure is described in exactly one place.

use crate::tls::TlsError;

/// Failure of the shared MQTT connection.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MqttError {
    /// CONNACK carried this non-zero return code (5 = not authorized).
    #[error("connection refused by the server (CONNACK return code {0})")]
    ConnectionRefused(u8),
    /// The connection is closed, or closed before the operation completed.
    #[error("connection closed")]
    Disconnected,
    /// No answer in time (CONNACK, or PINGRESP within the keep-alive).
    #[error("timed out")]
    Timeout,
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The server broke the protocol, or we were asked to send something MQTT cannot carry.
    #[error("MQTT protocol error: {0}")]
    Protocol(String),
    /// The server answered the WebSocket upgrade with this HTTP status instead of 101.
    #[error("the server answered HTTP {0} instead of upgrading to WebSocket")]
    WebSocketStatus(u16),
    /// The WebSocket upgrade failed otherwise (e.g. no `mqtt` subprotocol in the answer).
    #[error("WebSocket handshake failed: {0}")]
    WebSocket(String),
}
