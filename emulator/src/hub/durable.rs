//! The hub's durable state (`--data-dir`): devices with their twins, modules, C2D queues and
//! CA certificates, saved after each change (see `persistence`) and laid over the fixtures at
//! startup. Telemetry, feedback and connections are not kept.

use std::collections::VecDeque;
use std::sync::Arc;

use super::Hub;
use super::c2d::QueuedC2d;
use super::device::Device;
use super::error::HubError;
use super::module::Module;
use crate::certificates::CaCertificate;
use crate::pending::Pending;
use crate::persistence::{Persistence, Save, collection, restore};
use crate::store::{StoreError, StoreSnapshot};

const DEVICES: &str = "devices";
const MODULES: &str = "modules";
const C2D: &str = "c2d";
pub(crate) const CERTIFICATES: &str = "certificates";

impl Hub {
    /// Saves this hub's changes through `persistence` from now on.
    pub fn with_persistence(mut self, persistence: Arc<Persistence>) -> Hub {
        self.certificates
            .attach(persistence.clone(), self.collection(CERTIFICATES));
        self.persistence = persistence;
        self
    }

    fn collection(&self, kind: &str) -> String {
        collection(
            &format!("hub/{}", self.host_name.to_ascii_lowercase()),
            kind,
        )
    }

    fn device_save(&self, device_id: &str) -> Save {
        Save::of(
            &self.collection(DEVICES),
            device_id,
            self.device(device_id).as_ref(),
        )
    }

    fn module_save(&self, device_id: &str, module_id: &str) -> Save {
        Save::of(
            &self.collection(MODULES),
            &format!("{device_id}/{module_id}"),
            self.module(device_id, module_id).as_ref(),
        )
    }

    fn c2d_save(&self, device_id: &str) -> Save {
        let queue: Option<Vec<QueuedC2d>> =
            self.c2d.get(device_id).map(|q| q.iter().cloned().collect());
        Save::of(&self.collection(C2D), device_id, queue.as_ref())
    }

    /// Submits the new state of a device with its twin (`None`: deleted); see
    /// [`Persistence::submit_entry`] for the caller's part.
    pub(super) fn submit_device(
        &self,
        device_id: &str,
        before: Option<Device>,
        after: Option<&Device>,
    ) -> Result<Pending<'_, ()>, HubError> {
        Ok(self.persistence.submit_entry(
            &self.collection(DEVICES),
            device_id,
            &self.devices,
            device_id.to_owned(),
            before,
            after,
        )?)
    }

    /// Makes a device (or module) and its twin durable; for fallible operations.
    pub(super) fn persist_identity(
        &self,
        device_id: &str,
        module_id: Option<&str>,
    ) -> Result<(), HubError> {
        self.persistence
            .save_now(match module_id {
                None => vec![self.device_save(device_id)],
                Some(m) => vec![self.module_save(device_id, m)],
            })
            .map_err(storage_error)
    }

    /// [`Hub::persist_identity`] for operations that cannot fail: a failure is logged.
    pub(super) fn persist_device_or_log(&self, device_id: &str) {
        if let Err(e) = self.persistence.save_now(vec![self.device_save(device_id)]) {
            tracing::error!(error = %e, "a change could not be made durable");
        }
    }

    /// A deleted device: its record, its modules' and its C2D queue, at once.
    pub(super) fn persist_device_removal(
        &self,
        device_id: &str,
        module_ids: &[String],
    ) -> Result<(), HubError> {
        self.persistence
            .save_now({
                let mut saves = vec![self.device_save(device_id), self.c2d_save(device_id)];
                saves.extend(module_ids.iter().map(|m| self.module_save(device_id, m)));
                saves
            })
            .map_err(storage_error)
    }

    pub(super) fn persist_c2d(&self, device_id: &str) -> Result<(), HubError> {
        self.persistence
            .save_now(vec![self.c2d_save(device_id)])
            .map_err(storage_error)
    }

    pub(super) fn persist_c2d_or_log(&self, device_id: &str) {
        if let Err(e) = self.persistence.save_now(vec![self.c2d_save(device_id)]) {
            tracing::error!(error = %e, "a change could not be made durable");
        }
    }

    /// Lays the stored state over what the fixtures created: stored entities replace
    /// fixture ones, tombstones remove them.
    pub fn restore(&self, snapshot: &mut StoreSnapshot) -> Result<(), String> {
        let name = self.collection(DEVICES);
        for (key, value) in snapshot.take(&name) {
            match restore::<Device>(&name, &key, value)? {
                Some(device) => {
                    self.devices.insert(key, device);
                }
                None => {
                    self.devices.remove(&key);
                }
            }
        }
        let name = self.collection(MODULES);
        for (key, value) in snapshot.take(&name) {
            let Some((device_id, module_id)) = key.split_once('/') else {
                return Err(format!(
                    "stored module key '{key}' in '{name}' is not device/module"
                ));
            };
            let map_key = (device_id.to_owned(), module_id.to_owned());
            match restore::<Module>(&name, &key, value)? {
                Some(module) => {
                    self.modules.insert(map_key, module);
                }
                None => {
                    self.modules.remove(&map_key);
                }
            }
        }
        let name = self.collection(C2D);
        for (key, value) in snapshot.take(&name) {
            match restore::<Vec<QueuedC2d>>(&name, &key, value)? {
                Some(messages) => {
                    // Deliveries in progress when the emulator stopped are deliverable again.
                    let queue: VecDeque<QueuedC2d> = messages
                        .into_iter()
                        .map(|mut m| {
                            m.in_flight = false;
                            m
                        })
                        .collect();
                    self.c2d.insert(key, queue);
                }
                None => {
                    self.c2d.remove(&key);
                }
            }
        }
        let name = self.collection(CERTIFICATES);
        for (key, value) in snapshot.take(&name) {
            match restore::<CaCertificate>(&name, &key, value)? {
                Some(certificate) => self.certificates.restore(certificate),
                None => {
                    self.certificates.forget(&key);
                }
            }
        }
        Ok(())
    }
}

fn storage_error(error: StoreError) -> HubError {
    HubError::storage(&error.to_string())
}
