//! The hub's device registry as the service API manages it (protocol.md §9.1, §9.2, §9.4):
//! create, read, list, update and delete device identities, with ETags guarding writes.
//! Disabling or deleting a device also ends its live connection, because IoT Hub stops
//! serving an identity as soon as it is no longer allowed to connect.

use std::time::SystemTime;

use dashmap::mapref::entry::Entry;
use serde_json::Value;

use super::device::{Device, DeviceStatus};
pub use super::device_spec::{AuthenticationSpec, DeviceSpec};
pub(crate) use super::device_spec::{device_id_problem, validate_device_id};
use super::error::HubError;
use super::event_hubs::notifications::Lifecycle;
use super::twin::Twin;
use super::{Hub, IdentityRef, new_generation_id};
use crate::etag;
use crate::pending::Pending;

/// Azure caps `GET /devices?top=` at 1000 devices.
pub(crate) const MAX_LIST_DEVICES: usize = 1000;

impl Hub {
    /// `PUT /devices/{id}` without If-Match: a new device, 409001 if the id is taken.
    pub fn create_device(&self, spec: DeviceSpec) -> Result<Pending<'_, Device>, HubError> {
        validate_device_id(&spec.device_id)?;
        match self.devices.entry(spec.device_id.clone()) {
            Entry::Occupied(_) => Err(HubError::device_already_exists(&spec.device_id)),
            Entry::Vacant(vacant) => {
                let device = Device {
                    authentication: spec.authentication.resolve(None),
                    status: spec.status,
                    generation_id: new_generation_id(),
                    etag: etag::identity(),
                    created: SystemTime::now(),
                    twin: Twin::from_initial(None),
                    initial_twin: None,
                    device_id: spec.device_id,
                };
                let pending = self.submit_device(&device.device_id, None, Some(&device))?;
                vacant.insert(device.clone());
                let (id, twin) = (device.device_id.clone(), device.twin.clone());
                Ok(pending
                    .on_stored(move || {
                        self.emit_lifecycle(IdentityRef::device(&id), Lifecycle::Created, &twin)
                    })
                    .map(|()| device))
            }
        }
    }

    /// `PUT /devices/{id}` with If-Match: replaces status and credentials of an existing
    /// device (404001 if absent, 412001 on an ETag mismatch). The twin and generation id
    /// survive. Disabling drops the device's connection.
    pub fn update_device(
        &self,
        device_id: &str,
        spec: DeviceSpec,
        if_match: &str,
    ) -> Result<Pending<'_, Device>, HubError> {
        validate_device_id(device_id)?;
        if spec.device_id != device_id {
            return Err(HubError::argument_invalid(format!(
                "the device is '{}', not '{device_id}'",
                spec.device_id
            )));
        }
        let (updated, pending) = {
            let mut stored = self
                .devices
                .get_mut(device_id)
                .ok_or_else(|| HubError::device_not_found(device_id))?;
            if !etag::matches(if_match, Some(&stored.etag)) {
                return Err(HubError::device_etag_mismatch(device_id));
            }
            let mut device = stored.clone();
            device.authentication = spec.authentication.resolve(Some(&device.authentication));
            device.status = spec.status;
            device.etag = etag::identity();
            let pending = self.submit_device(device_id, Some(stored.clone()), Some(&device))?;
            *stored = device.clone();
            (device, pending)
        };
        if updated.status == DeviceStatus::Disabled {
            self.connections.disconnect(device_id);
            self.disconnect_modules_of(device_id);
        }
        Ok(pending.map(|()| updated))
    }

    /// `GET /devices/{id}`.
    pub fn get_device(&self, device_id: &str) -> Result<Device, HubError> {
        self.device(device_id)
            .ok_or_else(|| HubError::device_not_found(device_id))
    }

    /// `GET /devices?top=N`: up to `top` devices (at most 1000) ordered by id, so paging
    /// callers see a stable order.
    pub fn list_devices(&self, top: Option<usize>) -> Vec<Device> {
        let top = top.unwrap_or(MAX_LIST_DEVICES).min(MAX_LIST_DEVICES);
        let mut devices = self.devices();
        devices.truncate(top);
        devices
    }

    /// `DELETE /devices/{id}` (If-Match defaults to `*`): removes the device with its twin,
    /// its modules and its pending cloud-to-device messages, and drops its connections.
    pub fn delete_device(
        &self,
        device_id: &str,
        if_match: Option<&str>,
    ) -> Result<Pending<'_, ()>, HubError> {
        let if_match = if_match.unwrap_or("*");
        // Read before taking the device's entry: no other map is locked while it is held.
        let modules = self.list_modules(device_id);
        let c2d = self.c2d.get(device_id).map(|q| q.clone());
        let (pending, removed) = match self.devices.entry(device_id.to_owned()) {
            Entry::Vacant(_) => return Err(HubError::device_not_found(device_id)),
            Entry::Occupied(stored) => {
                if !etag::matches(if_match, Some(&stored.get().etag)) {
                    return Err(HubError::device_etag_mismatch(device_id));
                }
                let pending =
                    self.submit_device_removal(stored.get().clone(), modules.clone(), c2d)?;
                (pending, stored.remove())
            }
        };
        self.connections.disconnect(device_id);
        self.remove_modules_of(device_id);
        // A device deleted is gone with its pending cloud-to-device messages.
        self.c2d.remove(device_id);
        self.persistent_c2d.remove(device_id);
        self.forget_session(device_id);
        let device_id = device_id.to_owned();
        Ok(pending.on_stored(move || {
            // The device's modules go with it, each reported like a module deletion.
            for module in &modules {
                self.emit_lifecycle(
                    IdentityRef::module(&device_id, &module.module_id),
                    Lifecycle::Deleted,
                    &module.twin,
                );
            }
            self.emit_lifecycle(
                IdentityRef::device(&device_id),
                Lifecycle::Deleted,
                &removed.twin,
            );
        }))
    }

    /// A device in the service API's JSON shape, with its current connection state.
    pub(crate) fn device_json(&self, device: &Device) -> Value {
        device.to_json(self.connections.is_connected(&device.device_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pending::WaitStored;
    use std::time::Duration;

    fn hub() -> Hub {
        Hub::new("hub.example", Vec::new(), 10)
    }

    fn sas_spec(id: &str) -> DeviceSpec {
        DeviceSpec {
            device_id: id.to_owned(),
            status: DeviceStatus::Enabled,
            authentication: AuthenticationSpec::Sas {
                primary: None,
                secondary: None,
            },
        }
    }

    #[test]
    fn create_generates_distinct_32_byte_keys_and_refuses_a_second_create() {
        let hub = hub();
        let device = hub.create_device(sas_spec("dev-1")).wait_stored().unwrap();
        let keys = device.sas_keys();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0].as_bytes().len(), 32);
        assert_ne!(keys[0], keys[1]);
        let again = hub
            .create_device(sas_spec("dev-1"))
            .wait_stored()
            .unwrap_err();
        assert_eq!((again.code, again.name), (409001, "DeviceAlreadyExists"));
    }

    #[test]
    fn update_checks_the_etag_and_keeps_keys_left_out() {
        let hub = hub();
        let created = hub.create_device(sas_spec("dev-2")).wait_stored().unwrap();
        let mut disable = sas_spec("dev-2");
        disable.status = DeviceStatus::Disabled;
        let stale = hub
            .update_device("dev-2", disable.clone(), "\"stale\"")
            .wait_stored()
            .unwrap_err();
        assert_eq!(stale.code, 412001);
        let updated = hub
            .update_device("dev-2", disable.clone(), &format!("\"{}\"", created.etag))
            .wait_stored()
            .unwrap();
        assert_eq!(updated.status, DeviceStatus::Disabled);
        assert_ne!(updated.etag, created.etag);
        assert_eq!(updated.authentication, created.authentication);
        assert_eq!(updated.generation_id, created.generation_id);
        let missing = hub
            .update_device("nobody", sas_spec("nobody"), "*")
            .wait_stored();
        assert_eq!(missing.unwrap_err().code, 404001);
    }

    #[tokio::test]
    async fn disabling_and_deleting_drop_the_connection() {
        let hub = hub();
        let created = hub.create_device(sas_spec("dev-3")).wait_stored().unwrap();
        let lease = hub.connections().attach("dev-3");
        let mut disable = sas_spec("dev-3");
        disable.status = DeviceStatus::Disabled;
        hub.update_device("dev-3", disable, &created.etag)
            .wait_stored()
            .unwrap();
        tokio::time::timeout(Duration::from_secs(1), lease.kicked.notified())
            .await
            .expect("disabled device is kicked");
        assert!(!hub.connections().is_connected("dev-3"));

        let lease = hub.connections().attach("dev-3");
        assert_eq!(
            hub.delete_device("dev-3", Some("\"wrong\""))
                .wait_stored()
                .unwrap_err()
                .code,
            412001
        );
        hub.delete_device("dev-3", None).wait_stored().unwrap();
        tokio::time::timeout(Duration::from_secs(1), lease.kicked.notified())
            .await
            .expect("deleted device is kicked");
        assert_eq!(hub.get_device("dev-3").unwrap_err().code, 404001);
        assert_eq!(
            hub.delete_device("dev-3", None)
                .wait_stored()
                .unwrap_err()
                .code,
            404001
        );
    }

    #[test]
    fn list_is_ordered_and_capped() {
        let hub = hub();
        for id in ["c", "a", "b"] {
            hub.create_device(sas_spec(id)).wait_stored().unwrap();
        }
        let ids: Vec<String> = hub
            .list_devices(Some(2))
            .into_iter()
            .map(|d| d.device_id)
            .collect();
        assert_eq!(ids, ["a", "b"]);
        assert_eq!(hub.list_devices(None).len(), 3);
    }

    #[test]
    fn device_ids_follow_azure_rules() {
        for good in ["a", "dev-1.x_y:z=@$'(!)*?,%", &"x".repeat(128)] {
            assert!(validate_device_id(good).is_ok(), "{good}");
        }
        for bad in ["", "a/b", "a b", "é", "a#b", &"x".repeat(129)] {
            assert_eq!(validate_device_id(bad).unwrap_err().code, 400004, "{bad}");
        }
        assert_eq!(
            hub()
                .create_device(sas_spec("a b"))
                .wait_stored()
                .unwrap_err()
                .code,
            400004
        );
    }
}
