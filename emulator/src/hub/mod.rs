//! IoT Hub domain: each linked hub's device registry, connections and telemetry, independent
//! of any transport. Transports hand in an authenticated [`DeviceIdentity`] and a message;
//! the hub applies the rules (device exists and is enabled, size limits) and stores it.

pub mod c2d;
pub mod c2d_http;
pub mod connections;
pub mod device;
mod durable;
pub mod error;
pub mod event_hubs;
pub mod feedback;
pub mod methods;
pub mod module;
pub mod query;
pub mod registry;
pub mod telemetry;
pub mod twin;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use serde_json::Value;

use crate::auth::DeviceIdentity;
use crate::auth::keys::SymmetricKey;
use crate::auth::policy::SharedAccessPolicy;
use crate::certificates::CertificateStore;
use crate::etag;
use crate::pending::Pending;
use crate::persistence::Persistence;
use connections::{Connections, Outbound};
use device::{Device, DeviceAuthentication, DeviceStatus};
use error::HubError;
use event_hubs::notifications::{self, Lifecycle, TwinOperation};
use event_hubs::{EventHubs, EventHubsConfig};
use telemetry::{IncomingMessage, MessageSource, SenderAuth, TelemetryLog, TelemetryMessage};
use twin::Twin;

/// IoT Hub's device-to-cloud limit: 256 KB including properties.
pub const MAX_D2C_MESSAGE_BYTES: usize = 256 * 1024;

/// One IoT hub.
pub struct Hub {
    host_name: String,
    /// The first label of the host name: `hubName` in events, `sas.root.{name}` in SASL.
    name: String,
    policies: Vec<SharedAccessPolicy>,
    devices: DashMap<String, Device>,
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
    /// C2D feedback records waiting for the service.
    feedback: feedback::FeedbackQueue,
    /// Where changes are made durable (nowhere unless `--data-dir`).
    persistence: Arc<Persistence>,
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
            host_name: host_name.to_owned(),
            name,
            policies,
            devices: DashMap::new(),
            modules: DashMap::new(),
            connections: Connections::default(),
            telemetry: TelemetryLog::new(retention),
            event_hubs,
            certificates: CertificateStore::default(),
            allocation: HubAllocation::default(),
            c2d: DashMap::new(),
            persistent_c2d: dashmap::DashSet::new(),
            feedback: feedback::FeedbackQueue::default(),
            persistence: Arc::default(),
        };
        hub.observe_connections();
        hub
    }

    /// Sets up the built-in Event Hubs-compatible endpoint (partitions, consumer groups,
    /// routes); before any traffic.
    pub fn with_event_hubs(mut self, config: EventHubsConfig) -> Hub {
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
    pub fn event_hubs_policy(&self) -> Option<&SharedAccessPolicy> {
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
    pub fn with_allocation(mut self, allocation: HubAllocation) -> Hub {
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

    /// Creates or updates a SAS device with these keys (see [`Hub::provision_device_with`]).
    /// A library call: it returns once the device is durable, blocking for about one fsync
    /// with `--data-dir`.
    ///
    /// # Panics
    ///
    /// When the store cannot keep the device (a full disk with `--data-dir`): this is a
    /// convenience for tests and embedding, where that is a failure of the test.
    pub fn provision_device(
        &self,
        device_id: &str,
        primary: SymmetricKey,
        secondary: SymmetricKey,
        initial_twin: Option<Value>,
    ) -> Device {
        let authentication = DeviceAuthentication::Sas { primary, secondary };
        match self
            .provision_device_with(device_id, authentication, initial_twin)
            .and_then(|pending| Ok(pending.wait()?))
        {
            Ok(device) => device,
            Err(e) => panic!("provisioning device '{device_id}' failed: {e}"),
        }
    }

    /// Creates or updates the identity DPS assigned here, with the enrollment's credentials.
    /// The initial twin applies only when the device is created, as in Azure.
    pub fn provision_device_with(
        &self,
        device_id: &str,
        authentication: DeviceAuthentication,
        initial_twin: Option<Value>,
    ) -> Result<Pending<'_, Device>, HubError> {
        match self.devices.entry(device_id.to_owned()) {
            Entry::Occupied(mut stored) => {
                if stored.get().authentication == authentication {
                    return Ok(Pending::ready(stored.get().clone()));
                }
                let mut device = stored.get().clone();
                device.authentication = authentication;
                device.etag = etag::identity();
                let pending =
                    self.submit_device(device_id, Some(stored.get().clone()), Some(&device))?;
                stored.insert(device.clone());
                Ok(pending.map(|()| device))
            }
            Entry::Vacant(slot) => {
                let device = Device {
                    device_id: device_id.to_owned(),
                    authentication,
                    status: DeviceStatus::Enabled,
                    generation_id: new_generation_id(),
                    etag: etag::identity(),
                    created: SystemTime::now(),
                    twin: Twin::from_initial(initial_twin.as_ref()),
                    initial_twin,
                };
                let pending = self.submit_device(device_id, None, Some(&device))?;
                slot.insert(device.clone());
                let (id, twin) = (device.device_id.clone(), device.twin.clone());
                Ok(pending
                    .on_stored(move || {
                        self.emit_lifecycle(IdentityRef::device(&id), Lifecycle::Created, &twin)
                    })
                    .map(|()| device))
            }
        }
    }

    /// Replaces a device's initial twin (reprovisioning with data reset); `false` when the
    /// device does not exist.
    pub fn reset_device_twin(
        &self,
        device_id: &str,
        initial_twin: Option<Value>,
    ) -> Result<Pending<'_, bool>, HubError> {
        let Some(mut stored) = self.devices.get_mut(device_id) else {
            return Ok(Pending::ready(false));
        };
        let mut device = stored.clone();
        device.twin = Twin::from_initial(initial_twin.as_ref());
        device.initial_twin = initial_twin;
        device.etag = etag::identity();
        let pending = self.submit_device(device_id, Some(stored.clone()), Some(&device))?;
        *stored = device;
        Ok(pending.map(|()| true))
    }

    /// The twin of `device_id`.
    pub fn device_twin(&self, device_id: &str) -> Result<Twin, HubError> {
        self.twin_of(IdentityRef::device(device_id))
    }

    /// The twin of a module.
    pub fn module_twin(&self, device_id: &str, module_id: &str) -> Result<Twin, HubError> {
        self.twin_of(IdentityRef::module(device_id, module_id))
    }

    /// The twin of a device or module.
    pub fn twin_of(&self, who: IdentityRef<'_>) -> Result<Twin, HubError> {
        self.with_twin_mut(who, |twin| Ok(twin.clone()))
    }

    /// The service API's twin JSON of a device or module.
    pub fn twin_view(&self, who: IdentityRef<'_>) -> Result<Value, HubError> {
        let twin = self.twin_of(who)?;
        Ok(self.service_view(who, &twin))
    }

    fn service_view(&self, who: IdentityRef<'_>, twin: &Twin) -> Value {
        let device = self.device(who.device_id);
        let status = match device.as_ref().map(|d| d.status) {
            Some(DeviceStatus::Disabled) => "disabled",
            _ => "enabled",
        };
        let authentication = match who.module_id {
            Some(m) => self
                .module(who.device_id, m)
                .map(|m| m.authentication.type_name()),
            None => device.as_ref().map(|d| d.authentication.type_name()),
        };
        let connected = self.connections.is_connected(&who.connection_key());
        let mut view = twin.service_view(who.device_id, status, connected);
        view["authenticationType"] = Value::from(authentication.unwrap_or("sas"));
        if let Some(module_id) = who.module_id {
            view["moduleId"] = Value::from(module_id);
        }
        view
    }

    /// Runs `change` on the stored twin of a device or module under its entry's lock.
    fn with_twin_mut<R>(
        &self,
        who: IdentityRef<'_>,
        change: impl FnOnce(&mut Twin) -> Result<R, HubError>,
    ) -> Result<R, HubError> {
        match who.module_id {
            None => {
                let mut device = self
                    .devices
                    .get_mut(who.device_id)
                    .ok_or_else(|| HubError::device_not_found(who.device_id))?;
                change(&mut device.twin)
            }
            Some(module_id) => {
                let mut module = self
                    .modules
                    .get_mut(&(who.device_id.to_owned(), module_id.to_owned()))
                    .ok_or_else(|| HubError::module_not_found(who.device_id, module_id))?;
                change(&mut module.twin)
            }
        }
    }

    /// Changes the twin of a device or module as one write (see `persistence`): `change`
    /// works on a copy; the identity with the new twin is submitted and published only if the
    /// store accepted it; `published` then runs under the entry's lock, so desired-property
    /// pushes leave in `$version` order.
    fn write_twin<R>(
        &self,
        who: IdentityRef<'_>,
        change: impl FnOnce(&mut Twin) -> Result<R, HubError>,
        published: impl FnOnce(&Twin, &mut R),
    ) -> Result<Pending<'_, (Twin, R)>, HubError> {
        match who.module_id {
            None => {
                let mut stored = self
                    .devices
                    .get_mut(who.device_id)
                    .ok_or_else(|| HubError::device_not_found(who.device_id))?;
                let mut device = stored.clone();
                let mut result = change(&mut device.twin)?;
                let twin = device.twin.clone();
                let pending =
                    self.submit_device(who.device_id, Some(stored.clone()), Some(&device))?;
                *stored = device;
                published(&stored.twin, &mut result);
                Ok(pending.map(|()| (twin, result)))
            }
            Some(module_id) => {
                let mut stored = self
                    .modules
                    .get_mut(&(who.device_id.to_owned(), module_id.to_owned()))
                    .ok_or_else(|| HubError::module_not_found(who.device_id, module_id))?;
                let mut module = stored.clone();
                let mut result = change(&mut module.twin)?;
                let twin = module.twin.clone();
                let pending = self.submit_module(
                    who.device_id,
                    module_id,
                    Some(stored.clone()),
                    Some(&module),
                )?;
                *stored = module;
                published(&stored.twin, &mut result);
                Ok(pending.map(|()| (twin, result)))
            }
        }
    }

    /// Every device twin as `GET /twins/{id}` shows it, in device id order: what twin queries
    /// (`POST /devices/query … FROM devices`) read.
    pub fn twin_documents(&self) -> Vec<Value> {
        self.devices()
            .iter()
            .filter_map(|device| self.twin_view(IdentityRef::device(&device.device_id)).ok())
            .collect()
    }

    /// Every module twin, ordered by device then module id (`FROM devices.modules`).
    pub fn module_twin_documents(&self) -> Vec<Value> {
        let mut keys: Vec<(String, String)> =
            self.modules.iter().map(|m| m.key().clone()).collect();
        keys.sort();
        keys.iter()
            .filter_map(|(d, m)| self.twin_view(IdentityRef::module(d, m)).ok())
            .collect()
    }

    /// A device's (or module's) reported-properties patch (the raw body it sent); returns the
    /// new reported `$version`, to be acknowledged once durable. Nothing changes on error.
    pub fn patch_reported(
        &self,
        identity: &DeviceIdentity,
        body: &[u8],
    ) -> Result<Pending<'_, u64>, HubError> {
        let patch: Value = serde_json::from_slice(body)
            .map_err(|e| HubError::argument_invalid(format!("the patch is not valid JSON: {e}")))?;
        let who = IdentityRef {
            device_id: identity.device_id(),
            module_id: identity.module_id(),
        };
        let wanted = self.event_hubs.wants(MessageSource::TwinChangeEvents);
        let mut event_body = None;
        let written = self.write_twin(
            who,
            |twin| {
                let version = twin.patch_reported(&patch)?;
                event_body = wanted.then(|| notifications::reported_update_body(&patch, twin));
                Ok(version)
            },
            |_, _| {},
        )?;
        let (device_id, module_id) = (who.device_id.to_owned(), who.module_id.map(str::to_owned));
        Ok(written
            .on_stored(move || {
                if let Some(body) = event_body {
                    let who = IdentityRef {
                        device_id: &device_id,
                        module_id: module_id.as_deref(),
                    };
                    self.emit(MessageSource::TwinChangeEvents, |hub| {
                        notifications::twin_change(hub, who, TwinOperation::Update, &body)
                    });
                }
            })
            .map(|(_, version)| version))
    }

    /// A service twin update of a device (see [`Hub::update_twin_of`]).
    pub fn update_twin(
        &self,
        device_id: &str,
        body: &Value,
        if_match: Option<&str>,
        replace: bool,
    ) -> Result<Pending<'_, Value>, HubError> {
        self.update_twin_of(IdentityRef::device(device_id), body, if_match, replace)
    }

    /// A service twin update (`{"tags": …, "properties": {"desired": …}}`) as a merge patch,
    /// or, with `replace`, the new tags and desired properties wholesale. `If-Match` is
    /// checked against the twin's ETag. A connected device or module receives the desired
    /// change; it is queued under the twin's lock so pushes leave in `$version` order.
    pub fn update_twin_of(
        &self,
        who: IdentityRef<'_>,
        body: &Value,
        if_match: Option<&str>,
        replace: bool,
    ) -> Result<Pending<'_, Value>, HubError> {
        twin::validate_service_update(body)?;
        let connection = who.connection_key();
        let change = |twin: &mut Twin| {
            if if_match.is_some_and(|expected| !etag::matches(expected, Some(&twin.etag))) {
                return Err(HubError::precondition_failed(&connection));
            }
            let tags = body.get("tags").cloned();
            let desired = body.pointer("/properties/desired").cloned();
            let patch = if replace {
                // Properties absent from the new twin are deleted, like a full replacement.
                let deleted = |old: &serde_json::Map<String, Value>, new: &Option<Value>| {
                    let mut patch = serde_json::Map::new();
                    for key in old.keys() {
                        if new.as_ref().and_then(|n| n.get(key)).is_none() {
                            patch.insert(key.clone(), Value::Null);
                        }
                    }
                    if let Some(Value::Object(new)) = new {
                        patch.extend(new.clone());
                    }
                    Value::Object(patch)
                };
                let tags_patch = deleted(&twin.tags, &tags);
                twin.patch_tags(&tags_patch)?;
                let desired_patch = deleted(&twin.desired, &desired);
                Some(twin.patch_desired(&desired_patch)?)
            } else {
                if let Some(tags) = &tags {
                    twin.patch_tags(tags)?;
                }
                match &desired {
                    Some(desired) => Some(twin.patch_desired(desired)?),
                    None => None,
                }
            };
            Ok(patch)
        };
        let wanted = self.event_hubs.wants(MessageSource::TwinChangeEvents);
        let mut event_body = None;
        let written = self.write_twin(who, change, |twin, sent: &mut Option<Value>| {
            if let Some(patch) = sent.take() {
                self.push_desired(&connection, twin, patch);
            }
            if wanted {
                event_body = Some(if replace {
                    (
                        TwinOperation::Replace,
                        notifications::whole_twin_body(who, twin),
                    )
                } else {
                    (
                        TwinOperation::Update,
                        notifications::service_update_body(twin),
                    )
                });
            }
        })?;
        let (device_id, module_id) = (who.device_id.to_owned(), who.module_id.map(str::to_owned));
        Ok(written
            .on_stored(move || {
                if let Some((operation, body)) = event_body {
                    let who = IdentityRef {
                        device_id: &device_id,
                        module_id: module_id.as_deref(),
                    };
                    self.emit(MessageSource::TwinChangeEvents, |hub| {
                        notifications::twin_change(hub, who, operation, &body)
                    });
                }
            })
            .map(|(twin, _)| self.service_view(who, &twin)))
    }

    /// Only sent while connected, as IoT Hub does; a reconnecting device GETs the twin.
    fn push_desired(&self, connection: &str, twin: &Twin, patch: Value) {
        let version = twin.desired_version;
        self.connections
            .send(connection, Outbound::DesiredPatch { version, patch });
    }

    /// Enables or disables a device; `false` when it does not exist or the change could not
    /// be stored (then nothing changed). A library call: it returns once the change is
    /// durable, blocking for about one fsync with `--data-dir`.
    pub fn set_device_status(&self, device_id: &str, status: DeviceStatus) -> bool {
        let pending = {
            let Some(mut stored) = self.devices.get_mut(device_id) else {
                return false;
            };
            let mut device = stored.clone();
            device.status = status;
            device.etag = etag::identity();
            let Ok(pending) = self.submit_device(device_id, Some(stored.clone()), Some(&device))
            else {
                return false;
            };
            *stored = device;
            pending
        };
        pending.wait().is_ok()
    }

    /// Accepts a batch of telemetry all or nothing: each message and the batch as a whole
    /// must fit the 256 KB limit before the first one is stored.
    pub fn accept_telemetry_batch(
        &self,
        identity: &DeviceIdentity,
        messages: Vec<IncomingMessage>,
    ) -> Result<(), HubError> {
        let total: usize = messages.iter().map(IncomingMessage::size).sum();
        if let Some(size) = messages
            .iter()
            .map(IncomingMessage::size)
            .find(|s| *s > MAX_D2C_MESSAGE_BYTES)
            .or((total > MAX_D2C_MESSAGE_BYTES).then_some(total))
        {
            return Err(HubError::message_too_large(size, MAX_D2C_MESSAGE_BYTES));
        }
        for message in messages {
            self.accept_telemetry(identity, message)?;
        }
        Ok(())
    }

    /// Accepts device-to-cloud telemetry: stored (and visible to observers) on success, so the
    /// transport may acknowledge it afterwards.
    pub fn accept_telemetry(
        &self,
        identity: &DeviceIdentity,
        message: IncomingMessage,
    ) -> Result<Arc<TelemetryMessage>, HubError> {
        let size = message.size();
        if size > MAX_D2C_MESSAGE_BYTES {
            return Err(HubError::message_too_large(size, MAX_D2C_MESSAGE_BYTES));
        }
        let device_id = identity.device_id();
        let mut auth = match self.devices.get(device_id) {
            None => return Err(HubError::device_not_found(device_id)),
            Some(d) if d.status == DeviceStatus::Disabled => {
                return Err(HubError::device_disabled(device_id));
            }
            Some(d) => sender_auth("device", &d.authentication, &d.generation_id),
        };
        if let Some(module_id) = identity.module_id() {
            let module = self
                .module(device_id, module_id)
                .ok_or_else(|| HubError::module_not_found(device_id, module_id))?;
            auth = sender_auth("module", &module.authentication, &module.generation_id);
        }
        let stored = self.telemetry.append_from(
            &self.host_name,
            device_id,
            identity.module_id(),
            Some(auth),
            message,
        );
        self.event_hubs.route(stored.clone());
        Ok(stored)
    }
}

/// `iothub-connection-auth-method` and `-auth-generation-id` of a device's or module's
/// messages. The `type` for X.509 identities is not observed in Azure's output; the names
/// here are the ones documented for the authentication types (docs/differences.md).
fn sender_auth(
    scope: &str,
    authentication: &DeviceAuthentication,
    generation_id: &str,
) -> SenderAuth {
    let kind = match authentication {
        DeviceAuthentication::Sas { .. } => "sas",
        DeviceAuthentication::SelfSigned { .. } => "x509Certificate",
        DeviceAuthentication::CertificateAuthority { .. } => "x509CA",
    };
    // Written by hand to keep Azure's key order (a serde_json map would sort the keys).
    SenderAuth {
        method: format!(
            r#"{{"scope":"{scope}","type":"{kind}","issuer":"iothub","acceptingIpFilterRule":null}}"#
        ),
        generation_id: generation_id.to_owned(),
    }
}

/// A device, or one of its modules: what a twin, a method call or a connection belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdentityRef<'a> {
    pub device_id: &'a str,
    pub module_id: Option<&'a str>,
}

impl<'a> IdentityRef<'a> {
    pub fn device(device_id: &'a str) -> IdentityRef<'a> {
        IdentityRef {
            device_id,
            module_id: None,
        }
    }

    pub fn module(device_id: &'a str, module_id: &'a str) -> IdentityRef<'a> {
        IdentityRef {
            device_id,
            module_id: Some(module_id),
        }
    }

    /// `device` or `device/module`, as connections are keyed.
    pub fn connection_key(&self) -> String {
        match self.module_id {
            Some(m) => format!("{}/{m}", self.device_id),
            None => self.device_id.to_owned(),
        }
    }
}

/// Every hub the emulator serves, by case-insensitive host name.
pub struct Hubs {
    ordered: Vec<Arc<Hub>>,
    by_host: HashMap<String, Arc<Hub>>,
}

impl Hubs {
    pub fn new(hubs: Vec<Hub>) -> Hubs {
        let ordered: Vec<Arc<Hub>> = hubs.into_iter().map(Arc::new).collect();
        let by_host = ordered
            .iter()
            .map(|h| (h.host_name.to_ascii_lowercase(), h.clone()))
            .collect();
        Hubs { ordered, by_host }
    }

    pub fn get(&self, host_name: &str) -> Option<&Arc<Hub>> {
        self.by_host.get(&host_name.to_ascii_lowercase())
    }

    /// The hub an HTTP `Host` header names (any port ignored), or the only hub when there is
    /// just one, so clients that send an IP or another name still reach it.
    pub fn for_host(&self, host_header: &str) -> Result<&Arc<Hub>, HubError> {
        let host = host_header
            .rsplit_once(':')
            .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
            .map_or(host_header, |(h, _)| h);
        self.get(host)
            .or_else(|| (self.ordered.len() == 1).then(|| &self.ordered[0]))
            .ok_or_else(|| HubError::hub_not_found(host))
    }

    pub fn all(&self) -> &[Arc<Hub>] {
        &self.ordered
    }

    /// The hub whose Event Hubs-compatible endpoint is named `entity` (case-insensitive),
    /// preferring the one at host `hint` should names repeat.
    pub fn by_event_hub(&self, entity: &str, hint: Option<&str>) -> Option<&Arc<Hub>> {
        let mut matching = self
            .ordered
            .iter()
            .filter(|h| h.event_hubs().path().eq_ignore_ascii_case(entity));
        let first = matching.next()?;
        let preferred = hint.and_then(|host| {
            std::iter::once(first)
                .chain(matching)
                .find(|h| h.host_name().eq_ignore_ascii_case(host))
        });
        Some(preferred.unwrap_or(first))
    }
}

fn new_generation_id() -> String {
    // Azure's generation ids are 18-digit numbers.
    let n = uuid::Uuid::new_v4().as_u128() % 1_000_000_000_000_000_000;
    format!("{n:018}")
}
