//! AMQP 1.0 front (port 5671, and over WebSocket on the HTTPS port): what the IoT Hub
//! *service* SDKs use to send cloud-to-device messages and read feedback, what Event
//! Hubs clients use to read telemetry from the built-in Event Hubs-compatible endpoint, what
//! devices and modules use for telemetry, C2D, twins, methods and module inputs, and what DPS
//! registration clients use to register (spec/amqp.md).
//!
//! # Why `fe2o3-amqp`
//!
//! Framing, the type system, sessions, links, flow control and multi-frame transfers come
//! from `fe2o3-amqp` 0.18 with its `acceptor` feature (spec/amqp.md §8): it builds on Rust
//! 1.95 with our rustls + ring stack, lets us implement SASL ourselves (a trait whose value is
//! cloned per connection), hands us every remote `attach` before we answer it, and can detach
//! links with any error condition and info map. Writing our own AMQP 1.0 engine would be
//! 3–5 kLOC of codec and flow-control code that the clients exercise hard (credit, large
//! multi-frame messages). Its own `rustls` feature stays **off** — it pulls rustls with
//! aws-lc — so TLS is terminated by the emulator's shared rustls configuration and the
//! decrypted stream is handed to the acceptor as a plain `Io`.
//!
//! What the crate lacks on the server side, and this module writes:
//!
//! * serving SASL and no-SASL clients on one port — [`header`] peeks the 8-byte protocol
//!   header and picks the acceptor (Node's IoT clients send no SASL, everything else does);
//! * SASL mechanisms with our own checks — [`sasl`] (`MSSBCBS`, `ANONYMOUS`, `PLAIN`, the
//!   DPS registration login of [`dps_sasl`] included, and DPS's `TPM` challenge exchange of
//!   [`dps_sasl_tpm`]);
//! * the `$cbs` node — [`cbs`], on the generic request/response node of
//!   [`request_response`], which the Event Hubs `$management` node reuses;
//! * the IoT Hub service nodes — [`c2d`] (`/messages/devicebound`) and [`feedback`]
//!   (`/messages/serviceBound/feedback` and `…/filenotifications`);
//! * the device links under `/devices/{id}/…` — [`device`] (authorisation and the hub
//!   connection they share), [`device_telemetry`], [`device_c2d`], [`device_twin`],
//!   [`device_methods`] and [`device_inputs`], over the same hub operations MQTT uses;
//! * DPS registration (`{idScope}/registrations/{registrationId}`) — [`dps_link`] with the
//!   messages of [`dps_request`], authenticated by SASL `PLAIN`, SASL `TPM` or the TLS
//!   client certificate;
//! * the WebSocket server (`AMQPWSB10`) — [`websocket`];
//! * every performative written with all its fields, for pyamqp — [`frames`];
//! * frames a client sends on a session it already ended dropped, not fatal — [`late_frames`].
//!
//! # Layout
//!
//! ```text
//! listener (TLS, 5671) ─┐
//! websocket (HTTPS 443) ┴→ connection: header sniff → SASL or not → open
//!        → one task per session (session.rs): attach → address.rs route → one task per link
//!              $cbs ............ request_response + cbs      (put-token → auth::ConnectionAuth)
//!              /messages/devicebound ............. c2d       (→ hub::send_c2d)
//!              /messages/serviceBound/feedback ... feedback  (← hub feedback batches)
//!              Event Hubs addresses, $management .. event_hubs::on_attach (the Event Hubs view)
//!              /devices/{id}[/modules/{mid}]/… ... device::on_attach → device_* (one file per API)
//!              {idScope}/registrations/{id} ...... dps_link  (→ dps::register / operation_status)
//! ```
//!
//! Trust is decided by [`crate::auth`] (SAS verification) and recorded per connection in
//! [`connection_auth::ConnectionAuth`]; rules belong to [`crate::hub`] and [`crate::dps`]. Nothing here
//! acknowledges a message before the hub has stored it.

pub(crate) mod address;
pub(crate) mod c2d;
pub(crate) mod cbs;
pub(crate) mod conditions;
pub(crate) mod connection;
pub(crate) mod connection_auth;
pub(crate) mod device;
pub(crate) mod device_c2d;
pub(crate) mod device_inputs;
pub(crate) mod device_methods;
pub(crate) mod device_telemetry;
pub(crate) mod device_twin;
pub(crate) mod dps_link;
pub(crate) mod dps_request;
pub(crate) mod dps_sasl;
pub(crate) mod dps_sasl_tpm;
pub(crate) mod event_hubs;
pub(crate) mod feedback;
pub(crate) mod frames;
pub(crate) mod header;
pub(crate) mod late_frames;
pub(crate) mod link;
pub(crate) mod listener;
pub(crate) mod message;
pub(crate) mod request_response;
pub(crate) mod sasl;
pub(crate) mod session;
pub(crate) mod unattached_frames;
pub(crate) mod websocket;

use std::sync::Arc;
use std::time::Duration;

use crate::dps::Dps;
use crate::hub::Hubs;

/// Connection limits and timeouts of the AMQP front.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AmqpLimits {
    /// TLS handshake must finish within this.
    pub handshake_timeout: Duration,
    /// Protocol header, SASL and `open` must finish within this after the handshake.
    pub open_timeout: Duration,
    /// Largest frame either side may send: the real hub's 65536 (spec/amqp.md §1.2).
    pub max_frame_size: u32,
    /// Advertised `idle-time-out` in milliseconds (the real hub's 240000).
    pub idle_timeout_ms: u32,
    /// Highest channel number, i.e. sessions per connection minus one.
    pub channel_max: u16,
    /// Links a connection may have attached at once.
    pub max_links_per_connection: usize,
    /// Largest message a link accepts (the real hub's 1 MiB on `$cbs`); C2D has its own
    /// 64 KB rule, answered with a rejection rather than a detach.
    pub max_message_size: u64,
}

impl Default for AmqpLimits {
    fn default() -> Self {
        AmqpLimits {
            handshake_timeout: Duration::from_secs(10),
            open_timeout: Duration::from_secs(10),
            max_frame_size: 65_536,
            idle_timeout_ms: 240_000,
            channel_max: 255,
            max_links_per_connection: 1_000,
            max_message_size: 1_048_576,
        }
    }
}

/// What every AMQP connection needs.
pub struct AmqpContext {
    pub hubs: Arc<Hubs>,
    /// DPS registration over AMQP (SASL `PLAIN` or the TLS client certificate, then the
    /// registration links of [`dps_link`]).
    pub dps: Arc<Dps>,
    pub limits: AmqpLimits,
    /// The AMQP/TLS port as bound (for redirects that must name it), 0 when not bound.
    pub port: u16,
    /// Closes every connection (`amqp:connection:forced`) when the emulator stops.
    pub shutdown: crate::shutdown::ShutdownSignal,
}
