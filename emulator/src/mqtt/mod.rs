//! MQTT 3.1.1 front (port 8883): our own server on tokio + tokio-rustls with rumqttc's v4
//! codec (mqtt-front.md §9). DPS and hub clients share the port and are told apart by the
//! CONNECT username. This layer only speaks the wire: trust is decided by [`crate::auth`],
//! rules by [`crate::dps`] and [`crate::hub`].

mod c2d;
pub mod codec;
mod connect;
mod dispatch;
mod dps;
mod faults;
pub(crate) mod listener;
mod methods;
mod module_io;
mod outbox;
pub(crate) mod properties;
pub(crate) mod routes;
pub(crate) mod session;
mod subscriptions;
mod telemetry;
#[cfg(test)]
mod test_support;
pub(crate) mod topic;
mod twin;
pub mod username;

use std::sync::Arc;
use std::time::Duration;

use crate::dps::Dps;
use crate::hub::Hubs;

/// Connection limits and timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MqttLimits {
    /// Largest packet accepted: a 256 KiB message plus room for topic and properties.
    pub max_packet_bytes: usize,
    /// TLS handshake must finish within this, so idle sockets cannot pile up.
    pub handshake_timeout: Duration,
    /// CONNECT must arrive within this after the handshake.
    pub connect_timeout: Duration,
    /// Azure's cap on the server-side keep-alive timeout (1.5 × client keep-alive).
    pub max_keep_alive_timeout: Duration,
}

impl Default for MqttLimits {
    fn default() -> Self {
        MqttLimits {
            max_packet_bytes: crate::hub::MAX_D2C_MESSAGE_BYTES + 16 * 1024,
            handshake_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            max_keep_alive_timeout: Duration::from_secs(1767),
        }
    }
}

/// What every MQTT session needs.
pub struct MqttContext {
    pub dps: Arc<Dps>,
    pub hubs: Arc<Hubs>,
    pub limits: MqttLimits,
    pub shutdown: crate::shutdown::ShutdownSignal,
}
