//! IoT Hub domain: each linked hub's device registry, connections and telemetry, independent
//! of any transport. Transports hand in an authenticated [`DeviceIdentity`] and a message;
//! the hub applies the rules (device exists and is enabled, size limits) and stores it.
//!
//! This file holds [`Hub`] itself (its state and accessors); each operation group has its
//! own file: `authentication` (CONNECT: credential → identity + connection lease),
//! `registry` and `device_spec` (service registry API), `module` (module identities),
//! `provisioning` (DPS and library writes), `twin_store` (twin reads and writes),
//! `telemetry_intake` (device-to-cloud messages), `hubs` (finding a hub by name).

mod authentication;
pub(crate) mod c2d;
pub(crate) mod c2d_http;
pub(crate) mod configurations;
pub(crate) mod connections;
pub(crate) mod device;
mod device_spec;
mod durable;
pub(crate) mod error;
pub(crate) mod event_hubs;
pub(crate) mod feedback;
pub(crate) mod file_upload;
mod hubs;
mod identity;
pub(crate) mod jobs;
pub(crate) mod methods;
pub(crate) mod module;
mod provisioning;
pub(crate) mod push_queue;
pub mod query;
pub(crate) mod registry;
mod sessions;
pub(crate) mod telemetry;
mod telemetry_intake;
pub(crate) mod twin;
mod twin_store;

use std::sync::Arc;

use dashmap::DashMap;

use crate::auth::policy::SharedAccessPolicy;
use crate::certificates::CertificateStore;
use crate::persistence::Persistence;
pub(crate) use authentication::ConnectRefused;
pub use configurations::{Configuration, ConfigurationSpec};
use connections::Connections;
use device::Device;
use event_hubs::notifications::{self, Lifecycle};
use event_hubs::{EventHubs, EventHubsConfig};
pub(crate) use file_upload::UploadOutcome;
pub use file_upload::{FileNotification, FileUploadSettings, UploadStorage};
pub use hubs::{Advanced, Hubs};
pub use identity::{DeviceIdentity, IdentityRef};
pub use jobs::{DeviceJob, DeviceJobStatus, JobAction, JobSpec, JobStatus, ScheduledJob};
use telemetry::{MessageSource, TelemetryLog, TelemetryMessage};
pub(crate) use telemetry_intake::MAX_D2C_MESSAGE_BYTES;
use twin::Twin;

/// One IoT hub.
pub struct Hub {
    host_name: Arc<str>,
    /// The first label of the host name: `hubName` in events, `sas.root.{name}` in SASL.
    name: String,
    policies: Vec<SharedAccessPolicy>,
    /// The emulator's fault registry (`Hubs` hands every hub the shared one), for the
    /// transports that reach a hub without the `Hubs`.
    faults: crate::faults::Faults,
    /// The emulator's clock (`Hubs` hands every hub the shared one): C2D expiry and locks,
    /// method timeouts and token lifetimes age with it.
    clock: crate::clock::Clock,
    /// Looked up for every message a device sends, so hashed with foldhash (seeded per map)
    /// rather than SipHash: about a hundred and fifty instructions fewer per message
    /// (docs/benchmarks.md). Device ids come from the registry's writers, not from strangers.
    devices: DashMap<String, Device, foldhash::quality::RandomState>,
    /// Module identities by (device id, module id).
    modules: DashMap<(String, String), module::Module>,
    connections: Connections,
    telemetry: TelemetryLog,
    /// The built-in Event Hubs-compatible endpoint (telemetry plus routed notifications).
    event_hubs: Arc<EventHubs>,
    certificates: CertificateStore,
    allocation: HubAllocation,
    /// Cloud-to-device queues by device id.
    c2d: DashMap<String, std::collections::VecDeque<c2d::QueuedC2d>>,
    persistent_c2d: dashmap::DashSet<String>,
    /// The topic filters of persistent MQTT sessions, by connection key (`sessions.rs`).
    session_filters: DashMap<String, Vec<(String, u8)>>,
    /// C2D feedback records waiting for the service.
    feedback: feedback::FeedbackQueue,
    /// Where changes are made durable (nowhere unless `--data-dir`).
    persistence: Arc<Persistence>,
    /// Where file uploads go and how their notifications behave (`file_upload`).
    file_upload: file_upload::FileUploadSettings,
    /// Uploads between a device's two requests, by correlation id.
    file_uploads: DashMap<String, file_upload::ActiveUpload>,
    file_notifications: file_upload::NotificationQueue,
    /// The emulator's built-in blob store (`Hubs` hands every hub the shared one).
    storage: Arc<crate::storage::BlobStore>,
    /// Scheduled jobs (`jobs`).
    jobs: jobs::JobList,
    /// Automatic device configurations (`configurations`).
    configurations: configurations::ConfigurationList,
}

/// How DPS allocation treats a linked hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubAllocation {
    /// Weight for `hashed` allocation (1–1000).
    pub weight: u32,
    /// Whether allocation may pick it when an enrollment lists no hubs.
    pub apply_allocation_policy: bool,
    /// Location for emulated `geoLatency` allocation.
    pub location: Option<String>,
}

impl Default for HubAllocation {
    fn default() -> Self {
        HubAllocation {
            weight: 1,
            apply_allocation_policy: true,
            location: None,
        }
    }
}

impl Hub {
    pub fn new(host_name: &str, policies: Vec<SharedAccessPolicy>, retention: usize) -> Hub {
        let name = event_hubs::hub_name(host_name);
        let event_hubs = Arc::new(EventHubs::new(
            &name,
            EventHubsConfig::for_hub(host_name, retention),
        ));
        let hub = Hub {
            host_name: host_name.into(),
            name,
            policies,
            faults: crate::faults::Faults::default(),
            clock: crate::clock::Clock::default(),
            devices: DashMap::default(),
            modules: DashMap::new(),
            connections: Connections::default(),
            telemetry: TelemetryLog::new(retention),
            event_hubs,
            certificates: CertificateStore::default(),
            allocation: HubAllocation::default(),
            c2d: DashMap::new(),
            persistent_c2d: dashmap::DashSet::new(),
            session_filters: DashMap::new(),
            feedback: feedback::FeedbackQueue::default(),
            persistence: Arc::default(),
            file_upload: file_upload::FileUploadSettings::default(),
            file_uploads: DashMap::new(),
            file_notifications: file_upload::NotificationQueue::default(),
            storage: Arc::default(),
            jobs: jobs::JobList::default(),
            configurations: configurations::ConfigurationList::default(),
        };
        hub.observe_connections();
        hub
    }

    /// The emulator's clock, shared by every hub and the DPS (`crate::clock`).
    pub fn clock(&self) -> &crate::clock::Clock {
        &self.clock
    }

    /// The injected fault (`crate::faults`, the registry shared by every hub and DPS) that
    /// hits `operation` on this hub for `id` — a device id, or a service request's path —
    /// if any. A rule names the hub by its name or host name.
    pub(crate) fn fault(
        &self,
        operation: crate::faults::FaultOperation,
        id: &str,
    ) -> Option<crate::faults::FaultHit> {
        self.faults
            .check(operation, &[&self.name, &self.host_name], id)
    }

    /// [`Hub::fault`] over the rules that `apply` to the request only.
    pub(crate) fn fault_where(
        &self,
        operation: crate::faults::FaultOperation,
        id: &str,
        applies: impl Fn(&crate::faults::FaultRule) -> bool,
    ) -> Option<crate::faults::FaultHit> {
        self.faults
            .check_where(operation, &[&self.name, &self.host_name], id, applies)
    }

    /// The throttle a service's read of `device_id`'s twin (or, with `update`, its update)
    /// hits, if any. Azure's twin throttles are per hub, whoever reads or writes, so the
    /// service's request counts against the rate rules of the device-side operation
    /// (`hub.twin.get`, `hub.twin.patch`); their other rules stay the device's.
    pub(crate) fn service_twin_throttle(
        &self,
        device_id: &str,
        update: bool,
    ) -> Option<crate::faults::FaultHit> {
        use crate::faults::{FaultOperation, FaultRule};
        let operation = if update {
            FaultOperation::HubTwinPatch
        } else {
            FaultOperation::HubTwinGet
        };
        self.fault_where(operation, device_id, FaultRule::is_throttle)
    }

    /// Sets up the built-in Event Hubs-compatible endpoint (partitions, consumer groups,
    /// routes); before any traffic.
    pub(crate) fn with_event_hubs(mut self, config: EventHubsConfig) -> Hub {
        self.event_hubs = Arc::new(EventHubs::new(&self.name, config));
        self.observe_connections();
        self
    }

    /// Connection state events come from the connection table, whichever transport connects.
    fn observe_connections(&self) {
        let event_hubs = self.event_hubs.clone();
        self.connections
            .set_observer(Arc::new(move |key: &str, connected: bool| {
                event_hubs.connection_changed(key, connected)
            }));
    }

    /// The hub's name (the first label of its host name).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The built-in Event Hubs-compatible endpoint.
    pub fn event_hubs(&self) -> &Arc<EventHubs> {
        &self.event_hubs
    }

    /// The first policy that may read the built-in endpoint (`ServiceConnect`).
    pub(crate) fn event_hubs_policy(&self) -> Option<&SharedAccessPolicy> {
        self.policies
            .iter()
            .find(|p| p.grants(event_hubs::READ_RIGHT))
    }

    /// The Event Hubs-compatible connection string of the built-in endpoint, signed with the
    /// first `ServiceConnect` policy; `amqp_port` is added to the endpoint unless 5671.
    pub fn event_hubs_connection_string(&self, amqp_port: Option<u16>) -> Option<String> {
        self.event_hubs_policy().map(|p| {
            self.event_hubs
                .connection_string(&self.host_name, amqp_port, p)
        })
    }

    /// Routes a notification the hub emits, if a route sends its source to `events`.
    fn emit(&self, source: MessageSource, build: impl FnOnce(&str) -> TelemetryMessage) {
        if self.event_hubs.wants(source) {
            self.event_hubs.route(Arc::new(build(&self.name)));
        }
    }

    /// A lifecycle event for `who`, whose twin is `twin`.
    pub(crate) fn emit_lifecycle(&self, who: IdentityRef<'_>, change: Lifecycle, twin: &Twin) {
        self.emit(MessageSource::DeviceLifecycleEvents, |hub| {
            notifications::lifecycle(hub, who, change, &notifications::whole_twin_body(who, twin))
        });
    }

    /// Sets how DPS allocation treats this hub.
    pub(crate) fn with_allocation(mut self, allocation: HubAllocation) -> Hub {
        self.allocation = allocation;
        self
    }

    pub fn allocation(&self) -> &HubAllocation {
        &self.allocation
    }

    pub fn host_name(&self) -> &str {
        &self.host_name
    }

    pub fn policies(&self) -> &[SharedAccessPolicy] {
        &self.policies
    }

    pub fn policy(&self, name: &str) -> Option<&SharedAccessPolicy> {
        self.policies
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
    }

    pub fn device(&self, device_id: &str) -> Option<Device> {
        self.devices.get(device_id).map(|d| d.clone())
    }

    pub fn devices(&self) -> Vec<Device> {
        let mut all: Vec<Device> = self.devices.iter().map(|d| d.clone()).collect();
        all.sort_by(|a, b| a.device_id.cmp(&b.device_id));
        all
    }

    pub fn connections(&self) -> &Connections {
        &self.connections
    }

    pub fn telemetry(&self) -> &TelemetryLog {
        &self.telemetry
    }

    /// CA certificates uploaded to this hub.
    pub fn certificates(&self) -> &CertificateStore {
        &self.certificates
    }
}

fn new_generation_id() -> Arc<str> {
    // Azure's generation ids are 18-digit numbers.
    let n = uuid::Uuid::new_v4().as_u128() % 1_000_000_000_000_000_000;
    format!("{n:018}").into()
}
