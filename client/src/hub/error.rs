//! Errors of the hub device client.

use crate::mqtt::MqttError;
use crate::sas::SasError;
use crate::tls::TlsError;

/// Why connecting to the hub or sending failed.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// The hub refused the MQTT connection with this CONNACK return code (5 = not authorized:
    /// wrong key, expired token or unknown device; 3 = device disabled). From `connect()`, or
    /// from any operation once a reconnect was refused for good.
    #[error("IoT Hub refused the connection (CONNACK return code {0})")]
    ConnectionRefused(u8),
    /// The client has stopped (`disconnect()`, or a lost connection with reconnects disabled
    /// or exhausted), the operation saw too many connections lost under it, or a received
    /// message was completed after its connection was replaced.
    #[error("not connected")]
    Disconnected,
    /// Connecting took longer than the connect timeout, or the server stopped answering pings.
    #[error("timed out")]
    Timeout,
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The WebSocket upgrade to `/$iothub/websocket` failed (an HTTP status instead of 101,
    /// or no `mqtt` subprotocol in the answer).
    #[error("WebSocket: {0}")]
    WebSocket(String),
    #[error("invalid key: {0}")]
    InvalidKey(#[from] SasError),
    /// Body plus properties exceed 256 KiB; carries the message's size in bytes.
    #[error("message is {0} bytes, IoT Hub accepts at most 262144")]
    MessageTooLarge(usize),
    /// The hub answered a twin request with this non-2xx status (e.g. 400 bad patch, 429
    /// throttled, 5xx); `body` is its error JSON (`{"errorCode":…,"message":…}`) as text.
    #[error("IoT Hub answered {status}: {body}")]
    Service { status: u16, body: String },
    /// The builder was missing something or given an unusable value.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The TPM could not sign the SAS token.
    #[error("TPM: {0}")]
    Tpm(String),
}

impl From<MqttError> for DeviceError {
    fn from(error: MqttError) -> Self {
        match error {
            MqttError::ConnectionRefused(code) => Self::ConnectionRefused(code),
            MqttError::Disconnected => Self::Disconnected,
            MqttError::Timeout => Self::Timeout,
            MqttError::Tls(e) => Self::Tls(e),
            MqttError::Io(e) => Self::Io(e),
            MqttError::Protocol(message) => Self::Protocol(message),
            error @ (MqttError::WebSocketStatus(_) | MqttError::WebSocket(_)) => {
                Self::WebSocket(error.to_string())
            }
        }
    }
}
