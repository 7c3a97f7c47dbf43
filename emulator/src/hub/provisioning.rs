//! Identity writes that do not come through the service registry API: DPS creating (or
//! updating) the device it assigned to this hub and resetting its twin on reprovisioning, and
//! library users provisioning or disabling a device directly. Each returns, or waits for, the
//! store's commit, like every other write.

use std::time::SystemTime;

use dashmap::mapref::entry::Entry;
use serde_json::Value;

use super::device::{Device, DeviceAuthentication, DeviceStatus};
use super::error::HubError;
use super::event_hubs::notifications::Lifecycle;
use super::twin::Twin;
use super::{Hub, IdentityRef, new_generation_id};
use crate::auth::keys::SymmetricKey;
use crate::etag;
use crate::pending::Pending;

impl Hub {
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
}
