//! Module identities (iot-hub-devguide-module-twins.md; protocol.md §9.1, §9.2): independent
//! identities under a device, each with its own credentials, twin and connection
//! (`{deviceId}/{moduleId}`). A module lives and dies with its device.

use std::sync::Arc;
use std::time::SystemTime;

use dashmap::mapref::entry::Entry;
use serde::Deserialize;
use serde_json::Value;

use tokio::sync::oneshot;

use super::c2d::{C2dMessage, MAX_C2D_BYTES};
use super::connections::Outbound;
use super::device::DeviceAuthentication;
use super::device_spec::{
    AuthenticationBody, AuthenticationSpec, authentication_spec, validate_device_id,
};
use super::error::HubError;
use super::event_hubs::notifications::Lifecycle;
use super::twin::Twin;
use super::{Hub, IdentityRef, new_generation_id};
use crate::auth::keys::SymmetricKey;
use crate::etag;
use crate::pending::Pending;
use crate::timefmt::utc_timestamp;

/// A device may hold at most 50 modules (iot-hub-devguide-quotas-throttling.md: "Modules per
/// device: 50").
pub(crate) const MAX_MODULES_PER_DEVICE: usize = 50;

#[derive(Debug, Clone, PartialEq, serde::Serialize, Deserialize)]
pub struct Module {
    pub device_id: String,
    pub module_id: String,
    pub authentication: DeviceAuthentication,
    /// Free text naming the module's manager (IoT Edge uses `IotEdge`); stored as given.
    pub managed_by: Option<String>,
    pub generation_id: Arc<str>,
    pub etag: String,
    pub created: SystemTime,
    pub twin: Twin,
}

impl Module {
    /// `device/module`, the module's client id and connection key.
    pub fn key(&self) -> String {
        format!("{}/{}", self.device_id, self.module_id)
    }

    pub fn sas_keys(&self) -> Vec<&SymmetricKey> {
        self.authentication.sas_keys()
    }

    /// The module in the service API's JSON shape (keys included).
    pub fn to_json(&self, connected: bool) -> Value {
        serde_json::json!({
            "moduleId": self.module_id,
            "deviceId": self.device_id,
            "managedBy": self.managed_by,
            "generationId": self.generation_id,
            "etag": self.etag,
            "connectionState": if connected { "Connected" } else { "Disconnected" },
            "connectionStateUpdatedTime": utc_timestamp(self.created),
            "lastActivityTime": utc_timestamp(self.created),
            "cloudToDeviceMessageCount": 0,
            "authentication": self.authentication.to_json(),
        })
    }
}

/// A message for a module's input (what IoT Edge routes from another module's output). The
/// session answers whether the module was subscribed to its inputs and got it.
#[derive(Debug)]
pub struct ModuleInput {
    pub input: String,
    pub message_id: String,
    pub message: C2dMessage,
    pub delivered: oneshot::Sender<bool>,
}

/// What a caller asks the registry to store for a module.
#[derive(Debug, Clone, PartialEq)]
pub struct ModuleSpec {
    pub device_id: String,
    pub module_id: String,
    pub managed_by: Option<String>,
    pub authentication: AuthenticationSpec,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ModuleBody {
    device_id: Option<String>,
    module_id: Option<String>,
    managed_by: Option<String>,
    authentication: Option<AuthenticationBody>,
}

impl ModuleSpec {
    /// Reads the module JSON sent to `/devices/{device_id}/modules/{module_id}`; ids in the
    /// body, when present, must agree with the path.
    pub fn from_json(
        device_id: &str,
        module_id: &str,
        body: &[u8],
    ) -> Result<ModuleSpec, HubError> {
        let mut de = serde_json::Deserializer::from_slice(body);
        let body: ModuleBody = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            HubError::argument_invalid(format!("invalid module at '{}': {}", e.path(), e.inner()))
        })?;
        de.end().map_err(|e| {
            HubError::argument_invalid(format!("unexpected data after the module JSON: {e}"))
        })?;
        for (field, given, path) in [
            ("deviceId", &body.device_id, device_id),
            ("moduleId", &body.module_id, module_id),
        ] {
            if let Some(given) = given
                && given != path
            {
                return Err(HubError::argument_invalid(format!(
                    "the body's {field} '{given}' does not match the path's '{path}'"
                )));
            }
        }
        Ok(ModuleSpec {
            device_id: device_id.to_owned(),
            module_id: module_id.to_owned(),
            managed_by: body.managed_by,
            authentication: authentication_spec(body.authentication)?,
        })
    }
}

/// Module ids follow the device id rules, except that `$` starts only system modules
/// (`$edgeAgent`, `$edgeHub`), which iotemu does not host.
pub(crate) fn validate_module_id(module_id: &str) -> Result<(), HubError> {
    validate_device_id(module_id)
        .map_err(|e| HubError::argument_invalid(e.message.replace("device id", "module id")))?;
    if module_id.starts_with('$') {
        return Err(HubError::argument_invalid(format!(
            "module id '{module_id}': ids starting with '$' are reserved for IoT Edge system modules"
        )));
    }
    Ok(())
}

fn module_key(device_id: &str, module_id: &str) -> (String, String) {
    (device_id.to_owned(), module_id.to_owned())
}

impl Hub {
    pub fn module(&self, device_id: &str, module_id: &str) -> Option<Module> {
        self.modules
            .get(&module_key(device_id, module_id))
            .map(|m| m.clone())
    }

    /// `PUT /devices/{d}/modules/{m}` without If-Match: 404001 without the device, 409301 if
    /// the module exists.
    pub fn create_module(&self, spec: ModuleSpec) -> Result<Pending<'_, Module>, HubError> {
        validate_module_id(&spec.module_id)?;
        if self.device(&spec.device_id).is_none() {
            return Err(HubError::device_not_found(&spec.device_id));
        }
        if self.list_modules(&spec.device_id).len() >= MAX_MODULES_PER_DEVICE {
            return Err(HubError::argument_invalid(format!(
                "device {} already has {MAX_MODULES_PER_DEVICE} modules, the most IoT Hub allows",
                spec.device_id
            )));
        }
        match self
            .modules
            .entry(module_key(&spec.device_id, &spec.module_id))
        {
            Entry::Occupied(_) => Err(HubError::module_already_exists(
                &spec.device_id,
                &spec.module_id,
            )),
            Entry::Vacant(vacant) => {
                let module = Module {
                    authentication: spec.authentication.resolve(None),
                    managed_by: spec.managed_by,
                    generation_id: new_generation_id(),
                    etag: etag::identity(),
                    created: SystemTime::now(),
                    twin: Twin::from_initial(None),
                    device_id: spec.device_id,
                    module_id: spec.module_id,
                };
                let pending =
                    self.submit_module(&module.device_id, &module.module_id, None, Some(&module))?;
                vacant.insert(module.clone());
                let (device_id, module_id, twin) = (
                    module.device_id.clone(),
                    module.module_id.clone(),
                    module.twin.clone(),
                );
                Ok(pending
                    .on_stored(move || {
                        self.emit_lifecycle(
                            IdentityRef::module(&device_id, &module_id),
                            Lifecycle::Created,
                            &twin,
                        )
                    })
                    .map(|()| module))
            }
        }
    }

    /// `PUT /devices/{d}/modules/{m}` with If-Match: new credentials and `managedBy`; the twin
    /// survives.
    pub fn update_module(
        &self,
        spec: ModuleSpec,
        if_match: &str,
    ) -> Result<Pending<'_, Module>, HubError> {
        let key = module_key(&spec.device_id, &spec.module_id);
        let mut stored = self
            .modules
            .get_mut(&key)
            .ok_or_else(|| HubError::module_not_found(&spec.device_id, &spec.module_id))?;
        if !etag::matches(if_match, Some(&stored.etag)) {
            return Err(HubError::module_etag_mismatch(
                &spec.device_id,
                &spec.module_id,
            ));
        }
        let mut module = stored.clone();
        module.authentication = spec.authentication.resolve(Some(&module.authentication));
        module.managed_by = spec.managed_by;
        module.etag = etag::identity();
        let pending = self.submit_module(
            &spec.device_id,
            &spec.module_id,
            Some(stored.clone()),
            Some(&module),
        )?;
        *stored = module.clone();
        Ok(pending.map(|()| module))
    }

    pub fn get_module(&self, device_id: &str, module_id: &str) -> Result<Module, HubError> {
        self.module(device_id, module_id)
            .ok_or_else(|| HubError::module_not_found(device_id, module_id))
    }

    /// A device's modules ordered by id (404001 handled by the caller).
    pub fn list_modules(&self, device_id: &str) -> Vec<Module> {
        let mut modules: Vec<Module> = self
            .modules
            .iter()
            .filter(|m| m.key().0 == device_id)
            .map(|m| m.clone())
            .collect();
        modules.sort_by(|a, b| a.module_id.cmp(&b.module_id));
        modules
    }

    /// `DELETE /devices/{d}/modules/{m}` (If-Match defaults to `*`): the module, its twin and
    /// its connection go.
    pub fn delete_module(
        &self,
        device_id: &str,
        module_id: &str,
        if_match: Option<&str>,
    ) -> Result<Pending<'_, ()>, HubError> {
        let key = module_key(device_id, module_id);
        let if_match = if_match.unwrap_or("*");
        let (pending, removed) = match self.modules.entry(key) {
            Entry::Vacant(_) => return Err(HubError::module_not_found(device_id, module_id)),
            Entry::Occupied(stored) => {
                if !etag::matches(if_match, Some(&stored.get().etag)) {
                    return Err(HubError::module_etag_mismatch(device_id, module_id));
                }
                let pending =
                    self.submit_module(device_id, module_id, Some(stored.get().clone()), None)?;
                (pending, stored.remove())
            }
        };
        self.connections()
            .disconnect(&format!("{device_id}/{module_id}"));
        self.forget_session(&format!("{device_id}/{module_id}"));
        let (device_id, module_id) = (device_id.to_owned(), module_id.to_owned());
        Ok(pending.on_stored(move || {
            self.emit_lifecycle(
                IdentityRef::module(&device_id, &module_id),
                Lifecycle::Deleted,
                &removed.twin,
            );
        }))
    }

    /// Removes every module of a deleted device and ends their connections; returns their
    /// ids.
    pub(super) fn remove_modules_of(&self, device_id: &str) -> Vec<String> {
        let modules = self.list_modules(device_id);
        for module in &modules {
            self.modules
                .remove(&module_key(device_id, &module.module_id));
            self.connections().disconnect(&module.key());
            self.forget_session(&module.key());
        }
        modules.into_iter().map(|m| m.module_id).collect()
    }

    /// Ends the modules' connections of a device that was disabled: they connect through it.
    pub(super) fn disconnect_modules_of(&self, device_id: &str) {
        for module in self.list_modules(device_id) {
            self.connections().disconnect(&module.key());
        }
    }

    /// A module in the service API's JSON shape, with its connection state.
    pub(crate) fn module_json(&self, module: &Module) -> Value {
        module.to_json(self.connections().is_connected(&module.key()))
    }

    /// Sends `message` to input `input` of a connected module (`devices/{d}/modules/{m}/inputs/
    /// {input}/…`); returns the message id. Inputs are not queued: without IoT Edge there is
    /// no store-and-forward for them, so an offline or unsubscribed module is 404103.
    pub async fn send_module_input(
        &self,
        device_id: &str,
        module_id: &str,
        input: &str,
        mut message: C2dMessage,
    ) -> Result<String, HubError> {
        self.get_module(device_id, module_id)?;
        if input.is_empty() || input.contains(['/', '#', '+', '?']) {
            return Err(HubError::argument_invalid(format!(
                "'{input}' is not a valid input name"
            )));
        }
        let size = message.size();
        if size > MAX_C2D_BYTES {
            return Err(HubError::message_too_large(size, MAX_C2D_BYTES));
        }
        let message_id = message
            .message_id
            .get_or_insert_with(|| uuid::Uuid::new_v4().to_string())
            .clone();
        let (delivered, answer) = oneshot::channel();
        let key = format!("{device_id}/{module_id}");
        let sent = self.connections().send(
            &key,
            Outbound::ModuleInput(Box::new(ModuleInput {
                input: input.to_owned(),
                message_id: message_id.clone(),
                message,
                delivered,
            })),
        );
        if sent && answer.await.unwrap_or(false) {
            Ok(message_id)
        } else {
            Err(HubError::module_input_not_deliverable(&key))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::device::DeviceStatus;
    use crate::hub::registry::DeviceSpec;
    use crate::pending::WaitStored;

    fn hub_with_device(id: &str) -> Hub {
        let hub = Hub::new("hub.example", Vec::new(), 10);
        hub.create_device(DeviceSpec {
            device_id: id.to_owned(),
            status: DeviceStatus::Enabled,
            authentication: AuthenticationSpec::Sas {
                primary: None,
                secondary: None,
            },
        })
        .wait_stored()
        .unwrap();
        hub
    }

    fn spec(device: &str, module: &str) -> ModuleSpec {
        ModuleSpec::from_json(device, module, b"{}").unwrap()
    }

    #[test]
    fn modules_need_their_device_and_unique_ids() {
        let hub = hub_with_device("dev");
        assert_eq!(
            hub.create_module(spec("nobody", "m"))
                .wait_stored()
                .unwrap_err()
                .code,
            404001
        );
        let created = hub.create_module(spec("dev", "m1")).wait_stored().unwrap();
        assert_eq!(created.sas_keys().len(), 2, "keys are generated");
        assert_eq!(
            hub.create_module(spec("dev", "m1"))
                .wait_stored()
                .unwrap_err()
                .code,
            409301
        );
        hub.create_module(spec("dev", "m0")).wait_stored().unwrap();
        let ids: Vec<String> = hub
            .list_modules("dev")
            .into_iter()
            .map(|m| m.module_id)
            .collect();
        assert_eq!(ids, ["m0", "m1"]);
        for bad in ["$edgeAgent", "a/b", ""] {
            assert_eq!(
                hub.create_module(spec("dev", bad))
                    .wait_stored()
                    .unwrap_err()
                    .code,
                400004,
                "{bad}"
            );
        }
    }

    #[test]
    fn updates_check_the_etag_and_keep_keys_and_twin() {
        let hub = hub_with_device("dev");
        let created = hub.create_module(spec("dev", "m")).wait_stored().unwrap();
        let managed = ModuleSpec::from_json("dev", "m", br#"{"managedBy":"me"}"#).unwrap();
        assert_eq!(
            hub.update_module(managed.clone(), "\"stale\"")
                .wait_stored()
                .unwrap_err()
                .code,
            412001
        );
        let updated = hub
            .update_module(managed, &format!("\"{}\"", created.etag))
            .wait_stored()
            .unwrap();
        assert_eq!(updated.managed_by.as_deref(), Some("me"));
        assert_eq!(updated.authentication, created.authentication);
        assert_eq!(updated.generation_id, created.generation_id);
        assert_eq!(
            hub.update_module(spec("dev", "other"), "*")
                .wait_stored()
                .unwrap_err()
                .code,
            404010
        );
    }

    #[test]
    fn deleting_the_device_deletes_its_modules() {
        let hub = hub_with_device("dev");
        hub.create_module(spec("dev", "m")).wait_stored().unwrap();
        assert_eq!(
            hub.delete_module("dev", "m", Some("\"nope\""))
                .wait_stored()
                .unwrap_err()
                .code,
            412001
        );
        hub.delete_device("dev", None).wait_stored().unwrap();
        assert_eq!(hub.get_module("dev", "m").unwrap_err().code, 404010);
        assert!(hub.list_modules("dev").is_empty());
    }

    #[test]
    fn body_ids_must_match_the_path() {
        for body in [
            &br#"{"moduleId":"other"}"#[..],
            br#"{"deviceId":"other"}"#,
            br#"{"authentication":{"type":"selfSigned"}}"#,
            b"[]",
        ] {
            assert_eq!(
                ModuleSpec::from_json("dev", "m", body).unwrap_err().code,
                400004,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
