//! Errors of the provisioning client.

use crate::mqtt::MqttError;
use crate::sas::SasError;
use crate::tls::TlsError;

/// Why a registration did not produce an assigned hub.
#[derive(Debug, thiserror::Error)]
pub enum ProvisioningError {
    /// DPS refused the MQTT connection with this CONNACK return code (5 = not authorized,
    /// e.g. a wrong key or an unknown registration).
    #[error("DPS refused the connection (CONNACK return code {0})")]
    ConnectionRefused(u8),
    /// The registration reached a terminal status other than `assigned` (`failed`,
    /// `disabled`, …); the code and message come from `registrationState`.
    #[error(
        "registration ended with status {status:?} (error code {error_code:?}: {error_message:?})"
    )]
    Registration {
        status: String,
        error_code: Option<i64>,
        error_message: Option<String>,
    },
    /// DPS answered with a status in 300..429, which is not retried; `body` is the raw JSON
    /// error (`{"errorCode":…,"message":…}`).
    #[error("DPS returned status {status}: {body}")]
    Service { status: u16, body: String },
    /// The overall timeout elapsed (connecting, waiting for answers, or retrying).
    #[error("provisioning timed out")]
    Timeout,
    /// The connection closed before the registration finished.
    #[error("connection closed before the registration finished")]
    Disconnected,
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// DPS sent something we cannot interpret, or MQTT-level misbehaviour.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The WebSocket upgrade to `/$iothub/websocket` failed (an HTTP status instead of 101,
    /// or no `mqtt` subprotocol in the answer).
    #[error("WebSocket: {0}")]
    WebSocket(String),
    #[error("invalid key: {0}")]
    InvalidKey(#[from] SasError),
    /// The builder was missing something or given an unusable value.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A TPM operation failed (reading its keys, importing a blob DPS sent, signing).
    #[error("TPM: {0}")]
    Tpm(String),
}

impl From<MqttError> for ProvisioningError {
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
