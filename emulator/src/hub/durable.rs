//! The hub's durable state (`--data-dir`): devices with their twins, modules, C2D queues,
//! file uploads in progress, scheduled jobs, configurations and CA certificates, saved after each change (see
//! `persistence`) and laid over the fixtures at startup. Telemetry, feedback, file-upload
//! notifications and connections are not kept.

use std::collections::VecDeque;
use std::sync::Arc;

use super::Hub;
use super::c2d::QueuedC2d;
use super::configurations::{Configuration, DeviceClaims};
use super::device::Device;
use super::error::HubError;
use super::feedback::FeedbackStatus;
use super::file_upload::ActiveUpload;
use super::jobs::ScheduledJob;
use super::module::Module;
use crate::certificates::CaCertificate;
use crate::pending::{Pending, Settled};
use crate::persistence::{Persistence, Save, collection, restore};
use crate::store::StoreSnapshot;

const DEVICES: &str = "devices";
const MODULES: &str = "modules";
const C2D: &str = "c2d";
const FILE_UPLOADS: &str = "file-uploads";
const JOBS: &str = "jobs";
const CONFIGURATIONS: &str = "configurations";
const CONFIGURATION_CLAIMS: &str = "configuration-claims";
pub(crate) const CERTIFICATES: &str = "certificates";

impl Hub {
    /// Saves this hub's changes through `persistence` from now on.
    pub(crate) fn with_persistence(mut self, persistence: Arc<Persistence>) -> Hub {
        self.certificates
            .attach(persistence.clone(), self.collection(CERTIFICATES));
        self.persistence = persistence;
        self
    }

    /// Submits a configuration's new state; the caller publishes it once this returns.
    pub(super) fn save_configuration(
        &self,
        configuration: &Configuration,
    ) -> Result<crate::store::Commit, HubError> {
        self.persistence
            .submit(vec![Save::of(
                &self.collection(CONFIGURATIONS),
                &configuration.id,
                Some(configuration),
            )])
            .map_err(HubError::from)
    }

    /// Submits a configuration's deletion.
    pub(super) fn forget_configuration(&self, id: &str) -> Result<crate::store::Commit, HubError> {
        self.persistence
            .submit(vec![Save::of::<Configuration>(
                &self.collection(CONFIGURATIONS),
                id,
                None,
            )])
            .map_err(HubError::from)
    }

    /// Submits what configurations wrote to a device's twin (`None`: nothing any more). Not
    /// waited for: the twin write it follows was.
    pub(super) fn save_configuration_claims(
        &self,
        device_id: &str,
        claims: Option<&DeviceClaims>,
    ) -> Result<crate::store::Commit, HubError> {
        self.persistence
            .submit(vec![Save::of(
                &self.collection(CONFIGURATION_CLAIMS),
                device_id,
                claims,
            )])
            .map_err(HubError::from)
    }

    /// Submits a job's new state; the caller publishes it once this returns.
    pub(super) fn save_job(&self, job: &ScheduledJob) -> Result<crate::store::Commit, HubError> {
        self.persistence
            .submit(vec![Save::of(&self.collection(JOBS), &job.id, Some(job))])
            .map_err(HubError::from)
    }

    /// Submits the removal of a job pushed out of the kept history.
    pub(super) fn forget_job(&self, id: &str) -> Result<crate::store::Commit, HubError> {
        self.persistence
            .submit(vec![Save::of::<ScheduledJob>(
                &self.collection(JOBS),
                id,
                None,
            )])
            .map_err(HubError::from)
    }

    /// Submits an upload in progress (`None`: ended) and publishes it; see
    /// [`Persistence::submit_entry`].
    pub(super) fn save_file_upload(
        &self,
        correlation_id: &str,
        upload: Option<ActiveUpload>,
    ) -> Result<Pending<'_, ()>, HubError> {
        let name = self.collection(FILE_UPLOADS);
        let entry = self.file_uploads.entry(correlation_id.to_owned());
        let before = match &entry {
            dashmap::mapref::entry::Entry::Occupied(e) => Some(e.get().clone()),
            dashmap::mapref::entry::Entry::Vacant(_) => None,
        };
        let pending = self
            .persistence
            .submit_entry(
                &name,
                correlation_id,
                &self.file_uploads,
                correlation_id.to_owned(),
                before,
                upload.as_ref(),
            )
            .map_err(HubError::from)?;
        match (entry, upload) {
            (dashmap::mapref::entry::Entry::Occupied(mut e), Some(upload)) => {
                e.insert(upload);
            }
            (dashmap::mapref::entry::Entry::Occupied(e), None) => {
                e.remove();
            }
            (dashmap::mapref::entry::Entry::Vacant(e), Some(upload)) => {
                e.insert(upload);
            }
            (dashmap::mapref::entry::Entry::Vacant(_), None) => {}
        }
        Ok(pending)
    }

    fn collection(&self, kind: &str) -> String {
        collection(
            &format!("hub/{}", self.host_name.to_ascii_lowercase()),
            kind,
        )
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

    /// Submits the new state of a module with its twin (`None`: deleted).
    pub(super) fn submit_module(
        &self,
        device_id: &str,
        module_id: &str,
        before: Option<Module>,
        after: Option<&Module>,
    ) -> Result<Pending<'_, ()>, HubError> {
        Ok(self.persistence.submit_entry(
            &self.collection(MODULES),
            &format!("{device_id}/{module_id}"),
            &self.modules,
            (device_id.to_owned(), module_id.to_owned()),
            before,
            after,
        )?)
    }

    /// Submits a deleted device's tombstones — its record, its modules' and its C2D queue —
    /// as one apply. The caller removes them from the maps afterwards; a failed commit puts
    /// back what the hook is given.
    pub(super) fn submit_device_removal(
        &self,
        device: Device,
        modules: Vec<Module>,
        c2d: Option<VecDeque<QueuedC2d>>,
    ) -> Result<Pending<'_, ()>, HubError> {
        if !self.persistence.keeps() {
            return Ok(Pending::ready(()));
        }
        let device_id = device.device_id.clone();
        let mut saves = vec![
            Save::of::<Device>(&self.collection(DEVICES), &device_id, None),
            Save::of::<Vec<QueuedC2d>>(&self.collection(C2D), &device_id, None),
        ];
        saves.extend(modules.iter().map(|m| {
            Save::of::<Module>(
                &self.collection(MODULES),
                &format!("{device_id}/{}", m.module_id),
                None,
            )
        }));
        let commit = self.persistence.submit(saves)?;
        Ok(Pending::new((), commit).on_settled(move |settled| {
            // Put back only what is still gone: a device created again since stays.
            if settled != Settled::Failed || self.devices.contains_key(&device_id) {
                return;
            }
            self.devices.insert(device_id.clone(), device);
            for module in modules {
                self.modules
                    .insert((device_id.clone(), module.module_id.clone()), module);
            }
            if let Some(queue) = c2d {
                self.c2d.insert(device_id, queue);
            }
        }))
    }

    /// Changes a device's C2D queue as one write (see `persistence`): `change` works on a
    /// copy and may hand out feedback records; the new queue is submitted and published only
    /// if the store accepted it, and the feedback is recorded only then.
    pub(super) fn write_c2d<R>(
        &self,
        device_id: &str,
        change: impl FnOnce(
            &mut VecDeque<QueuedC2d>,
            &mut Vec<(QueuedC2d, FeedbackStatus)>,
        ) -> Result<R, HubError>,
    ) -> Result<Pending<'_, R>, HubError> {
        let mut feedback = Vec::new();
        let (result, pending) = {
            let mut stored = self.c2d.entry(device_id.to_owned()).or_default();
            let mut queue = stored.clone();
            let result = change(&mut queue, &mut feedback)?;
            let pending = if queue == *stored {
                Pending::ready(())
            } else {
                let pending = self.persistence.submit_entry(
                    &self.collection(C2D),
                    device_id,
                    &self.c2d,
                    device_id.to_owned(),
                    Some(stored.clone()),
                    Some(&queue),
                )?;
                *stored = queue;
                pending
            };
            (result, pending)
        };
        for (message, status) in &feedback {
            self.record_feedback(device_id, message, *status);
        }
        Ok(pending.map(|()| result))
    }

    /// Lays the stored state over what the fixtures created: stored entities replace
    /// fixture ones, tombstones remove them.
    pub(crate) fn restore(&self, snapshot: &mut StoreSnapshot) -> Result<(), String> {
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
        let name = self.collection(FILE_UPLOADS);
        for (key, value) in snapshot.take(&name) {
            match restore::<ActiveUpload>(&name, &key, value)? {
                Some(upload) => {
                    self.file_uploads.insert(key, upload);
                }
                None => {
                    self.file_uploads.remove(&key);
                }
            }
        }
        let name = self.collection(CONFIGURATIONS);
        for (key, value) in snapshot.take(&name) {
            match restore::<Configuration>(&name, &key, value)? {
                Some(configuration) => self.configurations.restore(configuration),
                None => self.configurations.forget(&key),
            }
        }
        let name = self.collection(CONFIGURATION_CLAIMS);
        for (key, value) in snapshot.take(&name) {
            let claims = restore::<DeviceClaims>(&name, &key, value)?;
            self.configurations.restore_claims(key, claims);
        }
        let name = self.collection(JOBS);
        for (key, value) in snapshot.take(&name) {
            match restore::<ScheduledJob>(&name, &key, value)? {
                Some(job) => self.jobs.restore(job, self.clock.now()),
                None => self.jobs.forget(&key),
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
