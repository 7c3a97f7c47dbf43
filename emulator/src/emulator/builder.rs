//! [`EmulatorBuilder`]: what an emulator is configured with (fixtures, addresses, ports,
//! limits, timings, where state is kept) before it starts. Starting it is `start.rs`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::amqp::AmqpLimits;
use crate::dps::DpsTiming;
use crate::fixtures::FixtureSource;
use crate::http::HttpLimits;
use crate::hub::event_hubs;
use crate::mqtt::MqttLimits;
use crate::store::Store;

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
    pub(super) fixtures: Vec<FixtureSource>,
    pub(super) bind: Vec<IpAddr>,
    /// Addresses bound when possible (IPv6 loopback on hosts without IPv6).
    pub(super) bind_if_available: Vec<IpAddr>,
    pub(super) mqtt_port: u16,
    pub(super) amqp_port: u16,
    pub(super) amqp_limits: AmqpLimits,
    pub(super) https: HttpsPort,
    pub(super) control_port: Option<u16>,
    pub(super) control_bind: IpAddr,
    pub(super) control_token: Option<String>,
    pub(super) hostnames: Vec<String>,
    pub(super) timing: DpsTiming,
    pub(super) telemetry_retention: usize,
    /// Azure's throttles for a hub tier, installed as rate rules at start; off by default.
    pub(super) azure_throttles: Option<crate::faults::AzureThrottles>,
    pub(super) partitions: u32,
    pub(super) limits: MqttLimits,
    pub(super) http_limits: HttpLimits,
    pub(super) max_connections: MaxConnections,
    pub(super) shutdown_timeout: Duration,
    pub(super) data_dir: Option<PathBuf>,
    /// A store given by [`EmulatorBuilder::store`], used instead of memory or `data_dir`.
    pub(super) store: Option<InjectedStore>,
}

/// A caller's [`Store`], e.g. a test double that fails on demand.
#[derive(Clone)]
pub(super) struct InjectedStore(pub(super) Arc<dyn Store>);

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
            control_token: None,
            hostnames: Vec::new(),
            timing: DpsTiming::default(),
            telemetry_retention: 10_000,
            azure_throttles: None,
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

    /// The token the control port requires for the portal and every route but `/health` and
    /// `/ca.pem`. Without one, a control port bound beyond loopback generates one (see
    /// [`Emulator::control_token`](crate::Emulator::control_token)); on loopback it stays open.
    pub fn control_token(mut self, token: Option<String>) -> Self {
        self.control_token = token;
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

    /// Refuse what an IoT hub of this tier and unit count, and DPS, would refuse for going
    /// over their throttles (429 with `retry-after`; docs/faults.md, "Azure's throttles").
    /// The throttles are installed as fault rules: `faults().list()` shows them.
    pub fn azure_throttles(mut self, throttles: crate::faults::AzureThrottles) -> Self {
        self.azure_throttles = Some(throttles);
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
}
