//! HTTPS front (port 443): hyper 1 over the shared rustls configuration, routed by path to
//! the DPS device and service APIs, the hub device and service APIs, and MQTT over
//! WebSocket. Like the MQTT front it only speaks the wire; trust is decided by
//! [`crate::auth`], rules by the domain.
//!
//! A client costs a bounded amount ([`HttpLimits`]): connections per listener are capped
//! (`net.rs`), a connection is closed when idle or when a request head is slow
//! (`connection`), and a request body is read only after the route's checks on the head —
//! authentication included — have passed, up to a size limit and within a timeout
//! (`router`).

mod arm_certificates;
mod blob;
mod connection;
mod dps_device;
mod dps_service;
mod dps_service_enrollments;
mod dps_service_registrations;
mod faults;
#[doc(hidden)]
pub(crate) mod fuzzing;
mod hub_bulk;
mod hub_configurations;
mod hub_device;
mod hub_device_c2d;
mod hub_device_files;
mod hub_device_telemetry;
mod hub_digital_twins;
mod hub_jobs;
mod hub_messaging;
pub(crate) mod hub_methods;
mod hub_modules;
mod hub_query;
mod hub_registry;
mod hub_service;
mod hub_statistics;
mod hub_twins;
mod limits;
mod reply;
mod request;
mod router;
#[cfg(test)]
mod test_support;
pub(crate) mod websocket;

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

pub use limits::HttpLimits;

use crate::dps::Dps;
use crate::hub::Hubs;
use crate::mqtt::MqttContext;
use crate::net::{ConnectionLimit, TlsSetup, spawn_tls_accept_loop};
use crate::shutdown::ShutdownSignal;

/// What every HTTPS request handler needs.
pub struct HttpContext {
    pub dps: Arc<Dps>,
    pub hubs: Arc<Hubs>,
    /// For MQTT over WebSocket: upgraded connections run the same sessions as port 8883.
    pub mqtt: Arc<MqttContext>,
    /// For AMQP over WebSocket: upgraded connections run the same connections as port 5671.
    pub amqp: Arc<crate::amqp::AmqpContext>,
    pub limits: HttpLimits,
    pub shutdown: ShutdownSignal,
}

/// Serves HTTPS on `listener` until shutdown, at most `limit` connections at once (shared
/// with the other HTTPS listeners given the same limit).
pub(crate) fn spawn(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    limit: ConnectionLimit,
    ctx: Arc<HttpContext>,
) -> JoinHandle<()> {
    let tls = TlsSetup {
        acceptor,
        handshake_timeout: ctx.limits.handshake_timeout,
    };
    let shutdown = ctx.shutdown.clone();
    spawn_tls_accept_loop(
        listener,
        "HTTPS",
        tls,
        limit,
        shutdown,
        move |tls, peer, slot| connection::serve(tls, peer, slot, ctx.clone()),
    )
}
