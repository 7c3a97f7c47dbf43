//! The handle of a running emulator: where it listens, its CA, its DPS and hubs, the
//! connection strings clients are given, and stopping it ([`Emulator::shutdown`], or drop).

use std::net::SocketAddr;
use std::sync::Arc;

use super::builder::EmulatorBuilder;
use super::stop::Stopper;
pub(crate) use crate::control::EmulatorState;
use crate::dps::Dps;
use crate::hub::{Hub, Hubs};

/// A running emulator. [`Emulator::shutdown`] stops it and waits; dropping it stops it in
/// the background.
pub struct Emulator {
    pub(super) state: Arc<EmulatorState>,
    pub(super) mqtt_addrs: Vec<SocketAddr>,
    pub(super) amqp_addrs: Vec<SocketAddr>,
    pub(super) https_addrs: Vec<SocketAddr>,
    pub(super) control_addr: Option<SocketAddr>,
    /// `None` once shutdown has been started.
    pub(super) stopper: Option<Stopper>,
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

    /// The token the control port requires (given, or generated because it is bound beyond
    /// loopback); `None` when it is open to local callers.
    pub fn control_token(&self) -> Option<&str> {
        self.state.control_token.as_deref()
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

    /// Faults to inject (docs/faults.md): `emulator.faults().inject(rule)` returns a guard
    /// that removes the rule when dropped.
    pub fn faults(&self) -> &crate::faults::Faults {
        self.state.dps.faults()
    }

    /// The emulator's clock (docs/faults.md, "Time control"): [`Emulator::advance`] moves it.
    pub fn clock(&self) -> &crate::clock::Clock {
        self.state.hubs.clock()
    }

    /// Moves the emulator's clock ahead by `step`: C2D expiries and locks, method timeouts and
    /// DPS assignment delays come closer by it, and C2D messages that expired hand out their
    /// feedback now. Connected clients keep their credentials' remaining life (they would
    /// have renewed their tokens meanwhile): [`Emulator::advance_with_credentials`] ages those
    /// too. Refused, with the clock unchanged, past ten years in total.
    pub async fn advance(
        &self,
        step: std::time::Duration,
    ) -> Result<crate::hub::Advanced, crate::clock::ClockError> {
        self.state.hubs.advance_clock(step, false).await
    }

    /// [`Emulator::advance`], and the SAS tokens (and client certificates) of connected
    /// devices, modules and services age by `step` as well: a session whose token's remaining
    /// life the step passes ends, as it would on a hub when a client does not renew in time.
    pub async fn advance_with_credentials(
        &self,
        step: std::time::Duration,
    ) -> Result<crate::hub::Advanced, crate::clock::ClockError> {
        self.state.hubs.advance_clock(step, true).await
    }

    pub fn hubs(&self) -> &Arc<Hubs> {
        &self.state.hubs
    }

    /// The built-in blob store that file uploads land in (docs/file-upload.md): `list()` the
    /// blobs, `get(container, name)` one with its content.
    pub fn blobs(&self) -> &crate::storage::BlobStore {
        self.state.hubs.storage()
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
