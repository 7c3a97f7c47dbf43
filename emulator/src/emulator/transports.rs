//! Spawn the transports on the bound listeners: MQTT and AMQP over TLS, and HTTPS (REST and
//! the WebSocket tunnels, which reuse the MQTT and AMQP contexts). Each kind has one
//! connection limit shared by every address it is bound on.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use super::builder::EmulatorBuilder;
use super::domain::Domain;
use super::listeners::Listeners;
use crate::amqp::{self, AmqpContext};
use crate::http::{self, HttpContext};
use crate::mqtt::{self, MqttContext};
use crate::net::ConnectionLimit;
use crate::shutdown::Shutdown;
use crate::tls::EmulatorTls;

/// The running accept loops and where they listen.
pub(super) struct Transports {
    pub(super) tasks: Vec<JoinHandle<()>>,
    pub(super) mqtt_addrs: Vec<SocketAddr>,
    pub(super) amqp_addrs: Vec<SocketAddr>,
    pub(super) https_addrs: Vec<SocketAddr>,
}

pub(super) fn spawn(
    builder: &EmulatorBuilder,
    domain: &Domain,
    tls: &EmulatorTls,
    listeners: Listeners,
    shutdown: &Shutdown,
) -> Transports {
    let mqtt_addrs = addrs(&listeners.mqtt);
    let amqp_addrs = addrs(&listeners.amqp);
    let https_addrs = addrs(&listeners.https);
    let mqtt_ctx = Arc::new(MqttContext {
        dps: domain.dps.clone(),
        hubs: domain.hubs.clone(),
        limits: builder.limits,
        shutdown: shutdown.signal(),
    });
    let amqp_ctx = Arc::new(AmqpContext {
        hubs: domain.hubs.clone(),
        dps: domain.dps.clone(),
        limits: builder.amqp_limits,
        port: amqp_addrs.first().map(|a| a.port()).unwrap_or(0),
        shutdown: shutdown.signal(),
    });
    let http_ctx = Arc::new(HttpContext {
        dps: domain.dps.clone(),
        hubs: domain.hubs.clone(),
        mqtt: mqtt_ctx.clone(),
        amqp: amqp_ctx.clone(),
        limits: builder.http_limits,
        shutdown: shutdown.signal(),
    });

    let limits = builder.max_connections;
    let acceptor = TlsAcceptor::from(tls.server_config());
    let mqtt_limit = ConnectionLimit::new(limits.mqtt);
    let amqp_limit = ConnectionLimit::new(limits.amqp);
    let https_acceptor = TlsAcceptor::from(tls.https_config());
    let https_limit = ConnectionLimit::new(limits.https);
    let mut tasks = Vec::new();
    tasks.extend(
        listeners.mqtt.into_iter().map(|l| {
            mqtt::listener::spawn(l, acceptor.clone(), mqtt_limit.clone(), mqtt_ctx.clone())
        }),
    );
    tasks.extend(
        listeners.amqp.into_iter().map(|l| {
            amqp::listener::spawn(l, acceptor.clone(), amqp_limit.clone(), amqp_ctx.clone())
        }),
    );
    tasks.extend(listeners.https.into_iter().map(|l| {
        http::spawn(
            l,
            https_acceptor.clone(),
            https_limit.clone(),
            http_ctx.clone(),
        )
    }));
    // Each hub's scheduled jobs run from one task, stopped with the rest at shutdown…
    tasks.extend(
        domain
            .hubs
            .all()
            .iter()
            .map(|hub| tokio::spawn(hub.clone().run_jobs(shutdown.signal()))),
    );
    // And its automatic device configurations.
    tasks.extend(
        domain
            .hubs
            .all()
            .iter()
            .map(|hub| tokio::spawn(hub.clone().run_configurations(shutdown.signal()))),
    );
    Transports {
        tasks,
        mqtt_addrs,
        amqp_addrs,
        https_addrs,
    }
}

fn addrs(listeners: &[TcpListener]) -> Vec<SocketAddr> {
    listeners
        .iter()
        .filter_map(|l| l.local_addr().ok())
        .collect()
}
