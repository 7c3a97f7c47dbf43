//! DPS durable state (`--data-dir`): individual enrollments, enrollment groups, registration
//! records and CA certificates, saved after each change (see `persistence`) and laid over the
//! fixtures at startup. Operations in progress are not kept: a device polling an operation
//! from before a restart gets 404 and registers again, as SDKs do.

use std::sync::Arc;

use super::Dps;
use super::error::DpsError;
use super::model::{EnrollmentGroup, IndividualEnrollment};
use super::registration::RegistrationRecord;
use crate::certificates::CaCertificate;
use crate::persistence::{Persistence, Save, collection, restore};

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

    /// Makes the current state of an enrollment (`group` false) or group durable.
    pub(super) fn persist_enrollment(&self, id: &str, group: bool) -> Result<(), DpsError> {
        let key = id.to_ascii_lowercase();
        self.persistence
            .save(|| {
                vec![if group {
                    Save::of(
                        &dps_collection(GROUPS),
                        &key,
                        self.groups.get(&key).map(|g| g.clone()).as_ref(),
                    )
                } else {
                    Save::of(
                        &dps_collection(ENROLLMENTS),
                        &key,
                        self.enrollments.get(&key).map(|e| e.clone()).as_ref(),
                    )
                }]
            })
            .map_err(|e| DpsError::new(500000, format!("the change could not be stored: {e}")))
    }

    /// Makes a registration record durable; a failure is logged (the caller has no error
    /// path), and the device's next registration writes it again.
    pub(super) fn persist_registration(&self, key: &str) {
        self.persistence.save_or_log(|| {
            let record = self.registrations.get(key);
            vec![Save::of(
                &dps_collection(REGISTRATIONS),
                key,
                record.as_deref(),
            )]
        });
    }

    /// Lays the stored state over what the fixtures created.
    pub fn restore(&self, snapshot: &mut crate::store::StoreSnapshot) -> Result<(), String> {
        let name = dps_collection(ENROLLMENTS);
        for (key, value) in snapshot.take(&name) {
            match restore::<IndividualEnrollment>(&name, &key, value)? {
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
            if let Some(group) = restore::<EnrollmentGroup>(&name, &key, value)? {
                self.x509_groups.insert(&group);
                self.groups.insert(key, group);
            }
        }
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
