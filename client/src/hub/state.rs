//! The connection state a hub client reports ([`ConnectionState`]) and why a connection ended
//! ([`DisconnectReason`]), published through a `tokio::sync::watch` channel by
//! [`DeviceClient::connection_state`](crate::DeviceClient::connection_state).

use super::error::DeviceError;

/// Where a [`DeviceClient`](crate::DeviceClient) or [`ModuleClient`](crate::ModuleClient)
/// stands. The watch channel holds the latest value only: a reader that looks rarely may
/// skip intermediate states, which is why `Connected` counts connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionState {
    /// Connected, subscriptions restored. `generation` counts the connections this client has
    /// made: 1 for the first, +1 for every reconnect or SAS renewal.
    Connected { generation: u64 },
    /// Not connected, and connecting again: `attempt` (1, 2, …) is under way or waiting out
    /// its backoff; `reason` says why the previous connection or attempt ended. Operations
    /// started now wait for the connection.
    Reconnecting {
        attempt: u32,
        reason: DisconnectReason,
    },
    /// Stopped for good; every operation fails. `reason` says why.
    Closed { reason: DisconnectReason },
}

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DisconnectReason {
    /// The application called `disconnect()` or dropped the client.
    ClientClosed,
    /// The SAS token was about to expire; the client reconnects with a fresh one.
    TokenRenewal,
    /// The connection broke or an attempt failed: network error, keep-alive timeout, or the
    /// hub closed it (another connection with the same identity, the device disabled or
    /// deleted, token expiry). The text is the cause as the client saw it.
    ConnectionLost(String),
    /// The hub refused the connection with this CONNACK return code (3: the device is
    /// disabled, retried; 1, 2, 4, 5 and reserved codes: not retried).
    Refused(u8),
    /// The server's TLS certificate was not accepted (not retried).
    Tls(String),
}

impl std::fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ClientClosed => write!(f, "closed by the application"),
            Self::TokenRenewal => write!(f, "renewing the SAS token"),
            Self::ConnectionLost(cause) => write!(f, "connection lost: {cause}"),
            Self::Refused(code) => write!(f, "refused by the hub (CONNACK return code {code})"),
            Self::Tls(cause) => write!(f, "TLS failed: {cause}"),
        }
    }
}

impl DisconnectReason {
    /// The error an operation reports once the client has stopped for this reason.
    pub(crate) fn to_error(&self) -> DeviceError {
        match self {
            Self::Refused(code) => DeviceError::ConnectionRefused(*code),
            _ => DeviceError::Disconnected,
        }
    }
}
