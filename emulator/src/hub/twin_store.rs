//! The twins a hub stores, read and changed in place: a device's twin lives in its registry
//! entry and a module's in its own, so each change is one identity write (see
//! `persistence`), published to the connected device and the routed twin-change events only
//! once the store accepted it. The JSON rules of a twin (patches, versions, views) are in
//! [`super::twin`].

use serde_json::Value;

use super::connections::Outbound;
use super::device::DeviceStatus;
use super::error::HubError;
use super::event_hubs::notifications::{self, TwinOperation};
use super::telemetry::MessageSource;
use super::twin::{self, Twin};
use super::{DeviceIdentity, Hub, IdentityRef};
use crate::etag;
use crate::pending::Pending;

impl Hub {
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
    pub(crate) fn twin_view(&self, who: IdentityRef<'_>) -> Result<Value, HubError> {
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
                drop(stored);
                // Tags or reported properties may move the device into or out of a target.
                self.configurations.twin_changed();
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

    /// Records the IoT Plug and Play model id a device or module announced (MQTT `model-id`,
    /// DPS `modelId`), to be acknowledged once durable. Announcing the stored one again
    /// writes nothing.
    pub fn record_model_id(
        &self,
        who: IdentityRef<'_>,
        model_id: &str,
    ) -> Result<Pending<'_, ()>, HubError> {
        let stored =
            self.with_twin_mut(who, |twin| Ok(twin.model_id.as_deref() == Some(model_id)))?;
        if stored {
            return Ok(Pending::ready(()));
        }
        Ok(self
            .write_twin(who, |twin| Ok(twin.set_model_id(model_id)), |_, _| {})?
            .map(|_| ()))
    }

    /// `GET /digitaltwins/{id}`: the device's twin as IoT Plug and Play shows it, and the
    /// twin's ETag.
    pub fn digital_twin(&self, device_id: &str) -> Result<(Value, String), HubError> {
        let twin = self.device_twin(device_id)?;
        Ok((twin::digital::view(device_id, &twin), twin.etag))
    }

    /// `PATCH /digitaltwins/{id}`: a JSON Patch applied as a desired-properties update
    /// (pushed to the connected device like any other); the new twin ETag once durable.
    pub fn update_digital_twin(
        &self,
        device_id: &str,
        operations: &Value,
        if_match: Option<&str>,
    ) -> Result<Pending<'_, String>, HubError> {
        let twin = self.device_twin(device_id)?;
        let desired = twin::digital::desired_patch(operations, &twin)?;
        let body = serde_json::json!({ "properties": { "desired": desired } });
        Ok(self
            .update_twin_of(IdentityRef::device(device_id), &body, if_match, false)?
            .map(|view| view["etag"].as_str().unwrap_or_default().to_owned()))
    }

    /// Every device twin as `GET /twins/{id}` shows it, in device id order: what twin queries
    /// (`POST /devices/query … FROM devices`) read.
    pub(crate) fn twin_documents(&self) -> Vec<Value> {
        self.devices()
            .iter()
            .filter_map(|device| self.twin_view(IdentityRef::device(&device.device_id)).ok())
            .collect()
    }

    /// Every module twin, ordered by device then module id (`FROM devices.modules`).
    pub(crate) fn module_twin_documents(&self) -> Vec<Value> {
        let mut keys: Vec<(String, String)> =
            self.modules.iter().map(|m| m.key().clone()).collect();
        keys.sort();
        keys.iter()
            .filter_map(|(d, m)| self.twin_view(IdentityRef::module(d, m)).ok())
            .collect()
    }

    /// A device's (or module's) reported-properties patch (the raw body it sent); returns the
    /// new reported `$version`, to be acknowledged once durable. Nothing changes on error.
    pub(crate) fn patch_reported(
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
}
