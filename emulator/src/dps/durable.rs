//! DPS durable state (`--data-dir`): individual enrollments, enrollment groups, registration
//! records and CA certificates, submitted with each change (see `persistence`) and laid over the
//! fixtures at startup. Operations in progress are not kept: a device polling an operation
//! from before a restart gets 404 and registers again, as SDKs do.

use std::sync::Arc;

use super::Dps;
use super::enrollment::{Group, Individual};
use super::error::DpsError;
use super::registration::RegistrationRecord;
use crate::certificates::CaCertificate;
use crate::pending::{Pending, Settled};
use crate::persistence::{Persistence, collection, restore};

const ENROLLMENTS: &str = "enrollments";
const GROUPS: &str = "enrollmentGroups";
const REGISTRATIONS: &str = "registrations";
const CERTIFICATES: &str = "certificates";

fn dps_collection(kind: &str) -> String {
    collection("dps", kind)
}

impl Dps {
    /// Saves this instance's changes through `persistence` from now on.
    pub fn with_persistence(mut self, persistence: Arc<Persistence>) -> Dps {
        self.certificates
            .attach(persistence.clone(), dps_collection(CERTIFICATES));
        self.persistence = persistence;
        self
    }

    /// Submits the new state of an individual enrollment (`None`: deleted); see
    /// [`Persistence::submit_entry`] for the caller's part. Nothing is copied or encoded
    /// while changes are not kept (in memory, or while the fixtures are seeded).
    pub(super) fn submit_enrollment(
        &self,
        key: &str,
        before: Option<&Individual>,
        after: Option<&Individual>,
    ) -> Result<Pending<'_, ()>, DpsError> {
        if !self.persistence.keeps() {
            return Ok(Pending::ready(()));
        }
        Ok(self.persistence.submit_entry(
            &dps_collection(ENROLLMENTS),
            key,
            &self.enrollments,
            key.to_owned(),
            before.cloned(),
            after,
        )?)
    }

    /// Submits the new state of an enrollment group; a failed commit also puts the X.509
    /// group index back.
    pub(super) fn submit_group(
        &self,
        key: &str,
        before: Option<&Group>,
        after: Option<&Group>,
    ) -> Result<Pending<'_, ()>, DpsError> {
        if !self.persistence.keeps() {
            return Ok(Pending::ready(()));
        }
        let before = before.cloned();
        let pending = self.persistence.submit_entry(
            &dps_collection(GROUPS),
            key,
            &self.groups,
            key.to_owned(),
            before.clone(),
            after,
        )?;
        let after = after.cloned();
        let key = key.to_owned();
        // Runs after the map was restored (hooks run in reverse on failure).
        Ok(pending.on_settled(move |settled| {
            if settled != Settled::Failed {
                return;
            }
            // The map was put back: the keyed groups are rebuilt from it.
            self.group_keys.invalidate();
            let restored = match (self.groups.get(&key), &before) {
                (Some(current), Some(before)) => current.core.etag == before.core.etag,
                (None, None) => true,
                _ => false,
            };
            if restored {
                if let Some(after) = &after {
                    self.x509_groups.remove(after);
                }
                if let Some(before) = &before {
                    self.x509_groups.insert(before);
                }
            }
        }))
    }

    /// Submits a registration record (`None`: deleted).
    pub(super) fn submit_registration(
        &self,
        key: &str,
        before: Option<&RegistrationRecord>,
        after: Option<&RegistrationRecord>,
    ) -> Result<Pending<'_, ()>, DpsError> {
        if !self.persistence.keeps() {
            return Ok(Pending::ready(()));
        }
        Ok(self.persistence.submit_entry(
            &dps_collection(REGISTRATIONS),
            key,
            &self.registrations,
            key.to_owned(),
            before.cloned(),
            after,
        )?)
    }

    /// Lays the stored state over what the fixtures created.
    pub fn restore(&self, snapshot: &mut crate::store::StoreSnapshot) -> Result<(), String> {
        let name = dps_collection(ENROLLMENTS);
        for (key, value) in snapshot.take(&name) {
            match restore::<Individual>(&name, &key, value)? {
                Some(enrollment) => {
                    self.enrollments.insert(key, enrollment);
                }
                None => {
                    self.enrollments.remove(&key);
                }
            }
        }
        let name = dps_collection(GROUPS);
        for (key, value) in snapshot.take(&name) {
            if let Some((_, previous)) = self.groups.remove(&key) {
                self.x509_groups.remove(&previous);
            }
            if let Some(group) = restore::<Group>(&name, &key, value)? {
                self.x509_groups.insert(&group);
                self.groups.insert(key, group);
            }
        }
        self.group_keys.invalidate();
        let name = dps_collection(REGISTRATIONS);
        for (key, value) in snapshot.take(&name) {
            match restore::<RegistrationRecord>(&name, &key, value)? {
                Some(record) => {
                    self.registrations.insert(key, record);
                }
                None => {
                    self.registrations.remove(&key);
                }
            }
        }
        let name = dps_collection(CERTIFICATES);
        for (key, value) in snapshot.take(&name) {
            match restore::<CaCertificate>(&name, &key, value)? {
                Some(certificate) => self.certificates.restore(certificate),
                None => self.certificates.forget(&key),
            }
        }
        Ok(())
    }
}
