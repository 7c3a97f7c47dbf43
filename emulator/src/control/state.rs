//! What the control port reads of a running emulator: its DPS and hubs, its CA, and where
//! MQTT and AMQP listen. The emulator builds it once every listener is bound and shares it with
//! its handle; it lives here, beneath both, so the control port never imports the emulator.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::dps::Dps;
use crate::hub::Hubs;
use crate::tls::EmulatorTls;

/// Shared state the listeners and the handle see.
pub(crate) struct EmulatorState {
    pub(crate) dps: Arc<Dps>,
    pub(crate) hubs: Arc<Hubs>,
    pub(crate) tls: Arc<EmulatorTls>,
    pub(crate) mqtt_addrs: Vec<SocketAddr>,
    pub(crate) amqp_addrs: Vec<SocketAddr>,
    /// The token the control port requires, when it requires one.
    pub(crate) control_token: Option<String>,
}
