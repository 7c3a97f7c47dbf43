//! The emulator as a library: build, start on chosen (or ephemeral) ports, inspect, stop.
//!
//! ```no_run
//! # async fn demo() -> Result<(), iotemu::StartError> {
//! let emulator = iotemu::Emulator::builder().start().await?; // quickstart fixture, free ports
//! println!("MQTT on {}, id scope {}", emulator.mqtt_port(), emulator.id_scope());
//! # Ok(()) }
//! ```
//!
//! [`Emulator::shutdown`] stops it and waits: listeners stop accepting, every session is told
//! to finish (MQTT clients are disconnected, HTTP requests in flight complete), sessions that
//! have not finished after the shutdown timeout are dropped, and then the store is flushed and
//! closed (with a data directory, its lock is released when `shutdown` returns). Dropping the
//! handle does the same in a background task without blocking (nothing to wait for then).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::amqp::{self, AmqpContext, AmqpLimits};
use crate::auth::policy::SharedAccessPolicy;
use crate::control;
use crate::dps::model::AllocationPolicy;
use crate::dps::{Dps, DpsTiming};
use crate::fixtures::{FixtureError, FixtureSet, FixtureSource};
use crate::http::{self, HttpContext, HttpLimits};
use crate::hub::event_hubs::{self, EventHubsConfig};
use crate::hub::{Hub, HubAllocation, Hubs};
use crate::mqtt::{self, MqttContext, MqttLimits};
use crate::net::ConnectionLimit;
use crate::persistence::{self, Persistence, Save};
use crate::shutdown::Shutdown;
use crate::store::{FileStore, Store};
use crate::tls::{CaMaterial, EmulatorTls, TlsError};

/// Where the emulator keeps its own CA in the durable state.
const EMULATOR_COLLECTION: &str = "emulator";
const CA_KEY: &str = "ca";

/// Why the emulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("invalid fixture: {0}")]
    Fixture(#[from] FixtureError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("data directory: {0}")]
    Store(String),
    #[error("cannot listen on {addr} ({what}): {source}. {hint}")]
    Bind {
        addr: SocketAddr,
        what: &'static str,
        source: std::io::Error,
        hint: String,
    },
}

/// Whether and where to serve HTTPS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpsPort {
    Off,
    /// Startup fails when the port cannot be bound.
    Required(u16),
    /// Serve HTTPS when the port can be bound, otherwise warn and run without it (the
    /// binary's default 443, which needs root or CAP_NET_BIND_SERVICE).
    IfAvailable(u16),
}

/// Configures and starts an [`Emulator`].
#[derive(Debug, Clone)]
pub struct EmulatorBuilder {
    fixtures: Vec<FixtureSource>,
    bind: Vec<IpAddr>,
    /// Addresses bound when possible (IPv6 loopback on hosts without IPv6).
    bind_if_available: Vec<IpAddr>,
    mqtt_port: u16,
    amqp_port: u16,
    amqp_limits: AmqpLimits,
    https: HttpsPort,
    control_port: Option<u16>,
    control_bind: IpAddr,
    hostnames: Vec<String>,
    timing: DpsTiming,
    telemetry_retention: usize,
    partitions: u32,
    limits: MqttLimits,
    http_limits: HttpLimits,
    max_connections: MaxConnections,
    shutdown_timeout: Duration,
    data_dir: Option<PathBuf>,
    /// A store given by [`EmulatorBuilder::store`], used instead of memory or `data_dir`.
    store: Option<InjectedStore>,
}

/// A caller's [`Store`], e.g. a test double that fails on demand.
#[derive(Clone)]
struct InjectedStore(Arc<dyn Store>);

impl std::fmt::Debug for InjectedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InjectedStore")
    }
}

/// How many connections each listener kind accepts at once (over every bound address).
/// Separate limits keep one kind serving while another is flooded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxConnections {
    pub mqtt: usize,
    pub amqp: usize,
    pub https: usize,
    pub control: usize,
}

impl Default for MaxConnections {
    fn default() -> Self {
        MaxConnections {
            mqtt: 20_000,
            amqp: 1_000,
            https: 1_000,
            control: 100,
        }
    }
}

/// How long [`Emulator::shutdown`] waits for sessions to finish before dropping them: less
/// than the 10 s `docker stop` waits before SIGKILL, so the store is closed in time.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

impl Default for EmulatorBuilder {
    fn default() -> Self {
        EmulatorBuilder {
            fixtures: Vec::new(),
            bind: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
            bind_if_available: vec![IpAddr::V6(Ipv6Addr::LOCALHOST)],
            mqtt_port: 0,
            amqp_port: 0,
            amqp_limits: AmqpLimits::default(),
            https: HttpsPort::Required(0),
            control_port: None,
            control_bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            hostnames: Vec::new(),
            timing: DpsTiming::default(),
            telemetry_retention: 10_000,
            partitions: event_hubs::DEFAULT_PARTITION_COUNT,
            limits: MqttLimits::default(),
            http_limits: HttpLimits::default(),
            max_connections: MaxConnections::default(),
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            data_dir: None,
            store: None,
        }
    }
}

impl EmulatorBuilder {
    /// Keeps state in `dir` (created if missing): enrollments, registrations, devices,
    /// modules, twins, C2D queues, CA certificates and the emulator's own CA survive a
    /// restart. Without it everything lives in memory. See docs/persistence.md.
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// Keeps state in `store` instead (overrides [`EmulatorBuilder::data_dir`]): for tests
    /// that need a store which fails on demand, to prove nothing is acknowledged unless it
    /// was stored. Not a stable API.
    #[doc(hidden)]
    pub fn store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(InjectedStore(store));
        self
    }

    /// Adds a fixture file; without any, the built-in quickstart fixture is served.
    pub fn fixture_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.fixtures.push(FixtureSource::File(path.into()));
        self
    }

    /// Adds a fixture given as JSON text; `name` appears in error messages.
    pub fn fixture_json(mut self, name: &str, json: &str) -> Self {
        self.fixtures.push(FixtureSource::Inline {
            name: name.to_owned(),
            json: json.to_owned(),
        });
        self
    }

    /// Adds the built-in quickstart fixture explicitly (to combine it with others).
    pub fn quickstart_fixture(mut self) -> Self {
        self.fixtures.push(FixtureSource::quickstart());
        self
    }

    /// Listens on exactly these addresses (default: 127.0.0.1, and ::1 when available).
    pub fn bind(mut self, addrs: impl IntoIterator<Item = IpAddr>) -> Self {
        self.bind = addrs.into_iter().collect();
        self.bind_if_available.clear();
        self
    }

    /// MQTT/TLS port; 0 (the library default) picks a free one.
    pub fn mqtt_port(mut self, port: u16) -> Self {
        self.mqtt_port = port;
        self
    }

    /// AMQP/TLS port (the service SDKs' C2D and feedback, the Event Hubs-compatible
    /// endpoint); 0 (the library default) picks a free one.
    pub fn amqp_port(mut self, port: u16) -> Self {
        self.amqp_port = port;
        self
    }

    /// Timeouts and limits of the AMQP front.
    pub fn amqp_limits(mut self, limits: AmqpLimits) -> Self {
        self.amqp_limits = limits;
        self
    }

    /// HTTPS port for the REST APIs; 0 (the library default) picks a free one.
    pub fn https_port(mut self, port: u16) -> Self {
        self.https = HttpsPort::Required(port);
        self
    }

    /// HTTPS on `port` if it can be bound, otherwise none (with a warning).
    pub fn https_port_if_available(mut self, port: u16) -> Self {
        self.https = HttpsPort::IfAvailable(port);
        self
    }

    /// No HTTPS listener.
    pub fn without_https(mut self) -> Self {
        self.https = HttpsPort::Off;
        self
    }

    /// Serves the plain-HTTP control interface on 127.0.0.1 at `port` (0 = free port).
    pub fn control_port(mut self, port: u16) -> Self {
        self.control_port = Some(port);
        self
    }

    /// Address of the control interface (default 127.0.0.1). `0.0.0.0` makes it reachable
    /// from other machines — needed in a container whose control port is published.
    pub fn control_bind(mut self, addr: IpAddr) -> Self {
        self.control_bind = addr;
        self
    }

    /// Extra names for the server certificate (every fixture hostname is added anyway).
    pub fn hostname(mut self, name: impl Into<String>) -> Self {
        self.hostnames.push(name.into());
        self
    }

    /// `retry-after` seconds sent while a registration is assigning.
    pub fn retry_after(mut self, seconds: u32) -> Self {
        self.timing.retry_after = seconds;
        self
    }

    /// How long registrations stay `assigning` before a poll can complete them.
    pub fn assignment_delay(mut self, delay: Duration) -> Self {
        self.timing.assignment_delay = delay;
        self
    }

    /// How many telemetry messages each hub keeps for inspection.
    pub fn telemetry_retention(mut self, messages: usize) -> Self {
        self.telemetry_retention = messages;
        self
    }

    /// Partitions of each hub's Event Hubs-compatible endpoint unless its fixture sets
    /// `eventHubEndpoint.partitionCount` (default 4, as Azure; 2–128).
    pub fn partitions(mut self, count: u32) -> Self {
        self.partitions = count.clamp(
            *event_hubs::PARTITION_COUNTS.start(),
            *event_hubs::PARTITION_COUNTS.end(),
        );
        self
    }

    /// Timeouts and size limits of the MQTT front.
    pub fn mqtt_limits(mut self, limits: MqttLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Timeouts and body size limit of the HTTPS front.
    pub fn https_limits(mut self, limits: HttpLimits) -> Self {
        self.http_limits = limits;
        self
    }

    /// Connections accepted at once per listener kind; beyond that, new connections wait in
    /// the kernel's backlog until one closes.
    pub fn max_connections(mut self, limits: MaxConnections) -> Self {
        self.max_connections = limits;
        self
    }

    /// How long [`Emulator::shutdown`] lets sessions finish before dropping them.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// Loads fixtures, generates TLS material, binds every listener and starts serving.
    pub async fn start(self) -> Result<Emulator, StartError> {
        self.start_control_first().await?.finish().await
    }

    /// The first half of [`EmulatorBuilder::start`]: binds and serves the control port (when
    /// one is configured), whose `/health` answers 503 until [`Starting::finish`] has bound
    /// every other listener. A supervisor polling `/health` thus sees "starting", not a
    /// refused connection.
    pub async fn start_control_first(self) -> Result<Starting, StartError> {
        let shutdown = Shutdown::new();
        let readiness = control::Readiness::default();
        let control = match self.control_port {
            Some(port) => {
                let listener = bind_all(&[self.control_bind], &[], port, "control").await?;
                let listener = listener
                    .into_iter()
                    .next()
                    .ok_or_else(|| StartError::Bind {
                        addr: SocketAddr::new(self.control_bind, port),
                        what: "control",
                        source: std::io::Error::other("no listener"),
                        hint: String::new(),
                    })?;
                let addr = listener.local_addr().ok();
                let task = control::spawn(
                    listener,
                    readiness.clone(),
                    ConnectionLimit::new(self.max_connections.control),
                    shutdown.signal(),
                );
                Some((addr, task))
            }
            None => None,
        };
        Ok(Starting {
            builder: self,
            control,
            readiness,
            shutdown,
        })
    }
}

/// An emulator half started by [`EmulatorBuilder::start_control_first`]: the control port
/// serves (503 on `/health`), nothing else is bound yet. Dropping it stops the control port.
pub struct Starting {
    builder: EmulatorBuilder,
    control: Option<(Option<SocketAddr>, JoinHandle<()>)>,
    readiness: control::Readiness,
    shutdown: Shutdown,
}

impl Starting {
    /// Where the control port listens, when one is configured.
    pub fn control_addr(&self) -> Option<SocketAddr> {
        self.control.as_ref().and_then(|(addr, _)| *addr)
    }

    /// Loads fixtures, generates TLS material, binds the MQTT and HTTPS listeners and starts
    /// serving; `/health` answers 200 from then on.
    pub async fn finish(self) -> Result<Emulator, StartError> {
        let Starting {
            builder,
            control,
            readiness,
            shutdown,
        } = self;
        let fixtures = FixtureSet::load(&builder.fixtures)?;
        let persistence = Arc::new(match (&builder.store, &builder.data_dir) {
            (Some(InjectedStore(store)), _) => Persistence::new(store.clone()),
            (None, None) => Persistence::default(),
            (None, Some(dir)) => {
                let store = FileStore::open(dir)
                    .map_err(|e| StartError::Store(format!("{}: {e}", dir.display())))?;
                Persistence::new(Arc::new(store))
            }
        });
        let policy = |p| {
            SharedAccessPolicy::from_fixture(p).map_err(|e| FixtureError {
                file: "fixture".into(),
                path: "sharedAccessPolicies".into(),
                reason: e.to_string(),
            })
        };
        let mut hubs = Vec::new();
        for section in &fixtures.hubs {
            let policies = section
                .shared_access_policies
                .iter()
                .map(policy)
                .collect::<Result<_, _>>()?;
            let allocation = HubAllocation {
                weight: section.allocation_weight,
                apply_allocation_policy: section.apply_allocation_policy,
                location: section.location.clone(),
            };
            hubs.push(
                Hub::new(&section.host_name, policies, builder.telemetry_retention)
                    .with_event_hubs(EventHubsConfig::from_fixture(
                        section,
                        builder.partitions,
                        builder.telemetry_retention,
                    ))
                    .with_allocation(allocation)
                    .with_persistence(persistence.clone()),
            );
        }
        let hubs = Arc::new(Hubs::new(hubs));
        let dps_policies = fixtures
            .dps
            .shared_access_policies
            .iter()
            .map(policy)
            .collect::<Result<_, _>>()?;
        let dps = Arc::new(
            Dps::new(
                &fixtures.dps.id_scope,
                &fixtures.dps.host_name,
                dps_policies,
                hubs.clone(),
                builder.timing,
            )
            .with_allocation(
                fixtures
                    .dps
                    .allocation_policy
                    .unwrap_or(AllocationPolicy::Hashed),
                fixtures.dps.location.clone(),
            )
            .with_persistence(persistence.clone()),
        );
        // Certificates first: enrollments may refer to them by name.
        for entry in &fixtures.dps.certificates {
            dps.certificates()
                .upload(&entry.name, &entry.certificate, entry.is_verified)
                .and_then(|pending| Ok(pending.wait()?))
                .map_err(|e| fixture_error(&format!("dps.certificates '{}': {e}", entry.name)))?;
        }
        for (section, hub) in fixtures.hubs.iter().zip(hubs.all()) {
            for entry in &section.certificates {
                hub.certificates()
                    .upload(&entry.name, &entry.certificate, entry.is_verified)
                    .and_then(|pending| Ok(pending.wait()?))
                    .map_err(|e| {
                        fixture_error(&format!("hub certificate '{}': {e}", entry.name))
                    })?;
            }
        }
        for enrollment in fixtures.enrollments.iter().cloned() {
            dps.create_or_update_enrollment(enrollment)
                .map_err(|e| fixture_error(e.message()))?;
        }
        for group in fixtures.enrollment_groups.iter().cloned() {
            dps.create_or_update_enrollment_group(group)
                .map_err(|e| fixture_error(e.message()))?;
        }

        let mut names = builder.hostnames.clone();
        names.push(fixtures.dps.host_name.clone());
        names.extend(fixtures.hubs.iter().map(|h| h.host_name.clone()));
        // The stored state goes over the fixtures; then changes start being saved.
        let mut snapshot = persistence
            .load()
            .map_err(|e| StartError::Store(e.to_string()))?;
        dps.restore(&mut snapshot).map_err(StartError::Store)?;
        for hub in hubs.all() {
            hub.restore(&mut snapshot).map_err(StartError::Store)?;
        }
        let stored_ca = snapshot
            .take(EMULATOR_COLLECTION)
            .remove(CA_KEY)
            .map(|value| persistence::restore::<CaMaterial>(EMULATOR_COLLECTION, CA_KEY, value))
            .transpose()
            .map_err(StartError::Store)?
            .flatten();
        for leftover in snapshot.collection_names() {
            tracing::warn!(
                collection = leftover,
                "stored state for a hub or instance the fixtures no longer define; kept on disk, not served"
            );
        }
        let tls = Arc::new(EmulatorTls::with_ca(&names, stored_ca.as_ref())?);
        persistence.activate();
        if stored_ca.is_none() {
            let ca = tls.ca_material().clone();
            // Awaited, not blocked on: startup runs on a tokio worker.
            persistence
                .submit(vec![Save::of(EMULATOR_COLLECTION, CA_KEY, Some(&ca))])
                .map_err(|e| StartError::Store(e.to_string()))?
                .durable()
                .await
                .map_err(|e| StartError::Store(e.to_string()))?;
        }

        // Hubs named by a loopback address (127.0.0.2 …) are reachable at that address, so
        // several hubs can be told apart by SDKs that hard-code the port.
        let mut bind_if_available = builder.bind_if_available.clone();
        for name in &names {
            if let Ok(ip) = name.parse::<IpAddr>()
                && ip.is_loopback()
                && !builder.bind.contains(&ip)
                && !bind_if_available.contains(&ip)
                && !builder.bind.iter().any(|b| b.is_unspecified())
            {
                bind_if_available.push(ip);
            }
        }
        let listeners =
            bind_all(&builder.bind, &bind_if_available, builder.mqtt_port, "MQTT").await?;
        let mqtt_addrs: Vec<SocketAddr> = listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect();
        let ctx = Arc::new(MqttContext {
            dps: dps.clone(),
            hubs: hubs.clone(),
            limits: builder.limits,
            shutdown: shutdown.signal(),
        });
        let acceptor = TlsAcceptor::from(tls.server_config());
        // One limit per kind, shared by every address the kind is bound on.
        let mqtt_limit = ConnectionLimit::new(builder.max_connections.mqtt);
        let mut tasks: Vec<JoinHandle<()>> = listeners
            .into_iter()
            .map(|l| mqtt::listener::spawn(l, acceptor.clone(), mqtt_limit.clone(), ctx.clone()))
            .collect();

        let amqp_listeners =
            bind_all(&builder.bind, &bind_if_available, builder.amqp_port, "AMQP").await?;
        let amqp_addrs: Vec<SocketAddr> = amqp_listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect();
        let amqp_ctx = Arc::new(AmqpContext {
            hubs: hubs.clone(),
            limits: builder.amqp_limits,
            port: amqp_addrs.first().map(|a| a.port()).unwrap_or(0),
            shutdown: shutdown.signal(),
        });
        let amqp_limit = ConnectionLimit::new(builder.max_connections.amqp);
        tasks.extend(amqp_listeners.into_iter().map(|l| {
            amqp::listener::spawn(l, acceptor.clone(), amqp_limit.clone(), amqp_ctx.clone())
        }));

        let https_listeners = match builder.https {
            HttpsPort::Off => Vec::new(),
            HttpsPort::Required(port) => {
                bind_all(&builder.bind, &bind_if_available, port, "HTTPS").await?
            }
            HttpsPort::IfAvailable(port) => {
                match bind_all(&builder.bind, &bind_if_available, port, "HTTPS").await {
                    Ok(listeners) => listeners,
                    Err(e) => {
                        tracing::warn!("HTTPS disabled: {e}");
                        Vec::new()
                    }
                }
            }
        };
        let https_addrs: Vec<SocketAddr> = https_listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect();
        let http_ctx = Arc::new(HttpContext {
            dps: dps.clone(),
            hubs: hubs.clone(),
            mqtt: ctx.clone(),
            amqp: amqp_ctx.clone(),
            limits: builder.http_limits,
            shutdown: shutdown.signal(),
        });
        let https_acceptor = TlsAcceptor::from(tls.https_config());
        let https_limit = ConnectionLimit::new(builder.max_connections.https);
        tasks.extend(https_listeners.into_iter().map(|l| {
            http::spawn(
                l,
                https_acceptor.clone(),
                https_limit.clone(),
                http_ctx.clone(),
            )
        }));

        let state = Arc::new(EmulatorState {
            dps,
            hubs,
            tls,
            mqtt_addrs: mqtt_addrs.clone(),
            amqp_addrs: amqp_addrs.clone(),
        });
        // Every listener is bound: the control port may now report healthy.
        readiness.set_ready(state.clone());
        let control_addr = control.and_then(|(addr, task)| {
            tasks.push(task);
            addr
        });
        Ok(Emulator {
            state,
            mqtt_addrs,
            amqp_addrs,
            https_addrs,
            control_addr,
            stopper: Some(Stopper {
                shutdown,
                tasks,
                persistence,
                timeout: builder.shutdown_timeout,
            }),
        })
    }
}

fn fixture_error(reason: &str) -> FixtureError {
    FixtureError {
        file: "fixture".into(),
        path: String::new(),
        reason: reason.to_owned(),
    }
}

/// Binds `port` on every required address (and the optional ones that work). With port 0
/// the first address picks the port and the rest reuse it, so one port number serves all.
async fn bind_all(
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

/// Shared state the listeners and the handle see.
pub(crate) struct EmulatorState {
    pub(crate) dps: Arc<Dps>,
    pub(crate) hubs: Arc<Hubs>,
    pub(crate) tls: Arc<EmulatorTls>,
    pub(crate) mqtt_addrs: Vec<SocketAddr>,
    pub(crate) amqp_addrs: Vec<SocketAddr>,
}

/// A running emulator. [`Emulator::shutdown`] stops it and waits; dropping it stops it in
/// the background.
pub struct Emulator {
    state: Arc<EmulatorState>,
    mqtt_addrs: Vec<SocketAddr>,
    amqp_addrs: Vec<SocketAddr>,
    https_addrs: Vec<SocketAddr>,
    control_addr: Option<SocketAddr>,
    /// `None` once shutdown has been started.
    stopper: Option<Stopper>,
}

/// What stopping needs, in the order it is used (mini-redis's server is the model).
struct Stopper {
    shutdown: Shutdown,
    /// The accept loops.
    tasks: Vec<JoinHandle<()>>,
    persistence: Arc<Persistence>,
    timeout: Duration,
}

impl Stopper {
    async fn stop(self) {
        // 1. Stop accepting: every accept loop ends and closes its listening socket.
        self.shutdown.begin();
        for task in self.tasks {
            let _ = task.await;
        }
        // 2–3. Sessions were told by the same signal; give them the timeout to finish.
        if !self.shutdown.drained(self.timeout).await {
            tracing::warn!(
                sessions = self.shutdown.sessions(),
                timeout_ms = self.timeout.as_millis() as u64,
                "sessions still running after the shutdown timeout; closing them"
            );
            self.shutdown.force();
            // Dropping a session's future is immediate; this only waits for the tasks to
            // be polled once more.
            self.shutdown.drained(Duration::from_secs(1)).await;
        }
        // 4. Flush and close the store, off the async workers (it may fsync).
        let persistence = self.persistence;
        let closed = tokio::task::spawn_blocking(move || persistence.close()).await;
        match closed {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "closing the data directory failed"),
            Err(e) => tracing::error!(error = %e, "closing the data directory failed"),
        }
        tracing::debug!("emulator stopped");
    }
}

impl Emulator {
    pub fn builder() -> EmulatorBuilder {
        EmulatorBuilder::default()
    }

    /// The MQTT/TLS port (the same on every bound address).
    pub fn mqtt_port(&self) -> u16 {
        self.mqtt_addrs.first().map(|a| a.port()).unwrap_or(0)
    }

    pub fn mqtt_addrs(&self) -> &[SocketAddr] {
        &self.mqtt_addrs
    }

    /// The AMQP/TLS port (the same on every bound address).
    pub fn amqp_port(&self) -> u16 {
        self.amqp_addrs.first().map(|a| a.port()).unwrap_or(0)
    }

    pub fn amqp_addrs(&self) -> &[SocketAddr] {
        &self.amqp_addrs
    }

    /// The HTTPS port, when HTTPS is served.
    pub fn https_port(&self) -> Option<u16> {
        self.https_addrs.first().map(|a| a.port())
    }

    pub fn https_addrs(&self) -> &[SocketAddr] {
        &self.https_addrs
    }

    pub fn control_addr(&self) -> Option<SocketAddr> {
        self.control_addr
    }

    /// PEM of the CA that signed the server certificate: what clients must trust.
    pub fn ca_pem(&self) -> &str {
        self.state.tls.ca_pem()
    }

    /// Names the server certificate is valid for.
    pub fn server_names(&self) -> &[String] {
        self.state.tls.server_names()
    }

    pub fn id_scope(&self) -> &str {
        self.state.dps.id_scope()
    }

    /// The DPS global device endpoint host devices dial.
    pub fn dps_host(&self) -> &str {
        self.state.dps.host_name()
    }

    pub fn dps(&self) -> &Arc<Dps> {
        &self.state.dps
    }

    pub fn hubs(&self) -> &Arc<Hubs> {
        &self.state.hubs
    }

    /// A hub by host name.
    pub fn hub(&self, host_name: &str) -> Option<&Arc<Hub>> {
        self.state.hubs.get(host_name)
    }

    /// The first hub of the fixtures (`localhost` for the quickstart).
    pub fn default_hub(&self) -> &Arc<Hub> {
        // Fixture loading guarantees at least one hub.
        &self.state.hubs.all()[0]
    }

    /// `HostName=…;SharedAccessKeyName=…;SharedAccessKey=…` for the DPS service API (first
    /// policy of the fixture, `provisioningserviceowner` in the quickstart).
    pub fn dps_service_connection_string(&self) -> Option<String> {
        let dps = &self.state.dps;
        dps.policies()
            .first()
            .map(|p| p.connection_string(dps.host_name()))
    }

    /// Service connection string of the default hub (its first policy, `iothubowner`).
    pub fn hub_connection_string(&self) -> Option<String> {
        let hub = self.default_hub();
        hub.policies()
            .first()
            .map(|p| p.connection_string(hub.host_name()))
    }

    /// The default hub's Event Hubs-compatible connection string
    /// (`Endpoint=sb://…/;SharedAccessKeyName=…;SharedAccessKey=…;EntityPath=…`), what
    /// `azure-eventhub` / `@azure/event-hubs` consumers are given. The endpoint names the
    /// AMQP port when it is not 5671 (Node honours it; Python always dials 5671).
    pub fn event_hubs_connection_string(&self) -> Option<String> {
        self.default_hub()
            .event_hubs_connection_string(Some(self.amqp_port()))
    }

    /// Stops the emulator and waits until it has stopped: listeners closed, every session
    /// ended (those still running after the shutdown timeout are dropped), the store flushed
    /// and closed — with a data directory, another emulator can open it once this returns.
    pub async fn shutdown(mut self) {
        if let Some(stopper) = self.stopper.take() {
            stopper.stop().await;
        }
    }
}

impl Drop for Emulator {
    /// Starts the same shutdown as [`Emulator::shutdown`] without waiting for it: inside a
    /// tokio runtime it runs as a task (if the runtime ends first, the store is still closed
    /// when its last user goes); outside one, sessions are signalled and the store closed
    /// here.
    fn drop(&mut self) {
        let Some(stopper) = self.stopper.take() else {
            return;
        };
        stopper.shutdown.begin();
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(stopper.stop());
            }
            Err(_) => {
                if let Err(e) = stopper.persistence.close() {
                    tracing::error!(error = %e, "closing the data directory failed");
                }
            }
        }
    }
}
