//! Bind every listener: the MQTT, AMQP and HTTPS ports on each bound address (and on the
//! loopback addresses hubs are named by), with a hint in the error when a port cannot be
//! had. Nothing is served yet (`transports.rs`).

use std::net::{IpAddr, SocketAddr};

use tokio::net::TcpListener;

use super::StartError;
use super::builder::{EmulatorBuilder, HttpsPort};

/// The bound, not yet serving, sockets of each transport.
pub(super) struct Listeners {
    pub(super) mqtt: Vec<TcpListener>,
    pub(super) amqp: Vec<TcpListener>,
    /// Empty when HTTPS is off, or optional and its port could not be bound.
    pub(super) https: Vec<TcpListener>,
}

impl Listeners {
    /// Binds MQTT, AMQP and HTTPS, in that order, on the builder's addresses; `names` are the
    /// server certificate's names (see [`loopback_names`]).
    pub(super) async fn bind(
        builder: &EmulatorBuilder,
        names: &[String],
    ) -> Result<Listeners, StartError> {
        let required = &builder.bind;
        let optional = &optional_addresses(builder, names);
        let mqtt = bind_all(required, optional, builder.mqtt_port, "MQTT").await?;
        let amqp = bind_all(required, optional, builder.amqp_port, "AMQP").await?;
        let https = match builder.https {
            HttpsPort::Off => Vec::new(),
            HttpsPort::Required(port) => bind_all(required, optional, port, "HTTPS").await?,
            HttpsPort::IfAvailable(port) => {
                match bind_all(required, optional, port, "HTTPS").await {
                    Ok(listeners) => listeners,
                    Err(e) => {
                        tracing::warn!("HTTPS disabled: {e}");
                        Vec::new()
                    }
                }
            }
        };
        Ok(Listeners { mqtt, amqp, https })
    }
}

/// The addresses bound when possible: the builder's (IPv6 loopback on hosts without IPv6)
/// and [`loopback_names`].
fn optional_addresses(builder: &EmulatorBuilder, names: &[String]) -> Vec<IpAddr> {
    let mut bind_if_available = builder.bind_if_available.clone();
    for ip in loopback_names(names) {
        if !builder.bind.contains(&ip)
            && !bind_if_available.contains(&ip)
            && !builder.bind.iter().any(|b| b.is_unspecified())
        {
            bind_if_available.push(ip);
        }
    }
    bind_if_available
}

/// Hubs named by a loopback address (127.0.0.2 …) are reachable at that address, so
/// several hubs can be told apart by SDKs that hard-code the port.
fn loopback_names(names: &[String]) -> impl Iterator<Item = IpAddr> + '_ {
    names
        .iter()
        .filter_map(|name| name.parse::<IpAddr>().ok())
        .filter(|ip| ip.is_loopback())
}

/// Binds `port` on every required address (and the optional ones that work). With port 0
/// the first address picks the port and the rest reuse it, so one port number serves all.
pub(super) async fn bind_all(
    required: &[IpAddr],
    optional: &[IpAddr],
    port: u16,
    what: &'static str,
) -> Result<Vec<TcpListener>, StartError> {
    let mut listeners: Vec<TcpListener> = Vec::new();
    let mut chosen = port;
    for (ip, is_required) in required
        .iter()
        .map(|ip| (ip, true))
        .chain(optional.iter().map(|ip| (ip, false)))
    {
        let addr = SocketAddr::new(*ip, chosen);
        match TcpListener::bind(addr).await {
            Ok(listener) => {
                if chosen == 0 {
                    chosen = listener.local_addr().map(|a| a.port()).unwrap_or(0);
                }
                listeners.push(listener);
            }
            Err(e) if !is_required => {
                tracing::debug!(%addr, error = %e, "optional address not bound");
            }
            Err(source) => {
                let hint = match source.kind() {
                    std::io::ErrorKind::AddrInUse => format!(
                        "Another process is using port {}: stop it, or choose another port for {what} (0 picks a free one).",
                        addr.port()
                    ),
                    std::io::ErrorKind::PermissionDenied => format!(
                        "Ports below 1024 need root or CAP_NET_BIND_SERVICE; choose another port for {what}."
                    ),
                    std::io::ErrorKind::AddrNotAvailable => {
                        "That address is not configured on this machine; check --bind.".to_owned()
                    }
                    _ => String::new(),
                };
                return Err(StartError::Bind {
                    addr,
                    what,
                    source,
                    hint,
                });
            }
        }
    }
    Ok(listeners)
}
