//! The MQTT 3.1.1 client connection used by both the DPS and the hub client.
//!
//! Built on the v4 packet codec of `rumqttc` (`Packet::read`/`write`) only; the connection
//! logic is ours so that we control CONNACK codes, `$`-topics and acknowledgement timing.
//!
//! * [`connection`] — the handle ([`Connection`]): CONNECT/CONNACK, then
//!   publish/subscribe/disconnect requests sent over a channel to the session task.
//! * [`session`] — the task that owns the byte stream: packet ids, PUBACK/SUBACK completion,
//!   keep-alive pings, acknowledging the server's QoS 1 publishes.
//! * [`packet_ids`] — packet identifier allocation.
//!
//! [`connect`] opens the byte stream for the chosen [`Transport`]: TLS to the MQTT port, or
//! TLS plus a WebSocket upgrade ([`crate::websocket`]); the session cannot tell them apart.

mod connection;
mod error;
mod packet_ids;
mod session;

use std::sync::Arc;
use std::time::Duration;

pub(crate) use connection::{ConnectOptions, Connection, IncomingPublish, WeakConnection};
pub(crate) use error::MqttError;

use crate::transport::Transport;

/// Largest packet we accept from the server. Hub C2D messages are at most 64 KiB and DPS
/// responses are small, so this is generous while still bounding memory per connection.
const MAX_INCOMING_PACKET: usize = 512 * 1024;

/// Largest packet we are willing to encode: 256 KiB of telemetry plus a long topic.
const MAX_OUTGOING_PACKET: usize = 512 * 1024;

/// Opens TCP + TLS to `host:port` (plus the WebSocket upgrade for [`Transport::MqttWs`])
/// and performs the MQTT CONNECT/CONNACK exchange, all within `timeout`. Returns the
/// connection and the stream of publishes the server sends us.
pub(crate) async fn connect(
    host: &str,
    port: u16,
    transport: Transport,
    tls: Arc<rustls::ClientConfig>,
    options: ConnectOptions,
    timeout: Duration,
) -> Result<(Connection, tokio::sync::mpsc::Receiver<IncomingPublish>), MqttError> {
    let attempt = async {
        let stream = crate::tls::connect(host, port, tls).await?;
        match transport {
            Transport::Mqtt => Connection::start(stream, options).await,
            Transport::MqttWs => {
                let stream = crate::websocket::upgrade(host, port, stream).await?;
                Connection::start(stream, options).await
            }
        }
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .map_err(|_| MqttError::Timeout)?
}

#[cfg(test)]
mod tests;
