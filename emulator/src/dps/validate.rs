//! Validation of enrollments and enrollment groups, shared by fixture loading and every
//! other way enrollments enter DPS, so all of them accept and reject the same things.
//! Errors carry a JSON path relative to the enrollment object.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha2::{Digest, Sha512};

use super::model::{AttestationMechanism, AttestationType, EnrollmentGroup, IndividualEnrollment};
use crate::auth::keys::SymmetricKey;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub path: String,
    pub reason: String,
}

impl Invalid {
    fn new(path: impl Into<String>, reason: impl Into<String>) -> Invalid {
        Invalid {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.reason)
    }
}

/// How to fill symmetric keys an enrollment leaves out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissingKeys {
    /// Derived from the enrollment's id: the same fixture gives the same keys on every run.
    Deterministic,
    /// 64 random bytes, as the portal's "auto-generate keys" does.
    Random,
}

/// Checks an individual enrollment; `hub_exists` says whether a host name is a linked hub.
pub fn individual_enrollment(
    enrollment: &mut IndividualEnrollment,
    hub_exists: &dyn Fn(&str) -> bool,
    missing: MissingKeys,
) -> Result<(), Invalid> {
    registration_id("registrationId", &enrollment.registration_id)?;
    if let Some(id) = &enrollment.device_id {
        device_id("deviceId", id)?;
    }
    hub_refs(
        &enrollment.iot_hub_host_name,
        &enrollment.iot_hubs,
        hub_exists,
    )?;
    let seed = ("enrollment", enrollment.registration_id.as_str());
    attestation(&mut enrollment.attestation, seed, missing)
}

/// Checks an enrollment group, like [`individual_enrollment`].
pub fn enrollment_group(
    group: &mut EnrollmentGroup,
    hub_exists: &dyn Fn(&str) -> bool,
    missing: MissingKeys,
) -> Result<(), Invalid> {
    registration_id("enrollmentGroupId", &group.enrollment_group_id)?;
    hub_refs(&group.iot_hub_host_name, &group.iot_hubs, hub_exists)?;
    let seed = ("enrollmentGroup", group.enrollment_group_id.as_str());
    attestation(&mut group.attestation, seed, missing)
}

/// Registration and group ids: 1–128 characters of alphanumerics and `- . _ :`.
pub fn registration_id(path: &str, id: &str) -> Result<(), Invalid> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | ':'));
    if ok {
        Ok(())
    } else {
        Err(Invalid::new(
            path,
            format!("'{id}' is not a valid id (1-128 characters: letters, digits, - . _ :)"),
        ))
    }
}

/// IoT Hub device ids: 1–128 characters of alphanumerics and `- . % _ * ? ! ( ) , : = @ $ '`.
pub fn device_id(path: &str, id: &str) -> Result<(), Invalid> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-.%_*?!(),:=@$'".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Invalid::new(
            path,
            format!("'{id}' is not a valid IoT Hub device id"),
        ))
    }
}

/// A base64 symmetric key of 16–64 bytes.
pub fn symmetric_key(path: &str, key: &str) -> Result<SymmetricKey, Invalid> {
    SymmetricKey::from_base64(key)
        .map_err(|e| Invalid::new(path, format!("invalid symmetric key: {e}")))
}

fn hub_refs(
    single: &Option<String>,
    list: &Option<Vec<String>>,
    hub_exists: &dyn Fn(&str) -> bool,
) -> Result<(), Invalid> {
    let refs = single
        .iter()
        .map(|h| ("iotHubHostName".to_owned(), h))
        .chain(
            list.iter()
                .flatten()
                .enumerate()
                .map(|(i, h)| (format!("iotHubs[{i}]"), h)),
        );
    for (path, host) in refs {
        if !hub_exists(host) {
            return Err(Invalid::new(
                path,
                format!("hub '{host}' is not a linked hub"),
            ));
        }
    }
    Ok(())
}

fn attestation(
    attestation: &mut AttestationMechanism,
    (kind, id): (&str, &str),
    missing: MissingKeys,
) -> Result<(), Invalid> {
    if attestation.kind != AttestationType::SymmetricKey {
        return Ok(());
    }
    let keys = attestation
        .symmetric_key
        .get_or_insert_with(Default::default);
    for (slot, key) in [
        ("primaryKey", &mut keys.primary_key),
        ("secondaryKey", &mut keys.secondary_key),
    ] {
        match key {
            Some(k) => {
                symmetric_key(&format!("attestation.symmetricKey.{slot}"), k)?;
            }
            None => {
                *key = Some(match missing {
                    MissingKeys::Deterministic => deterministic_key(kind, id, slot),
                    MissingKeys::Random => random_key(),
                })
            }
        }
    }
    Ok(())
}

/// 64 bytes derived from the enrollment's identity: stable across runs, unique per slot.
pub fn deterministic_key(kind: &str, id: &str, slot: &str) -> String {
    let digest = Sha512::digest(format!("iotemu fixture key\n{kind}\n{id}\n{slot}").as_bytes());
    BASE64.encode(digest)
}

/// 64 random bytes from the OS generator (through uuid's v4, already a dependency).
pub fn random_key() -> String {
    let bytes: Vec<u8> = (0..4)
        .flat_map(|_| uuid::Uuid::new_v4().into_bytes())
        .collect();
    BASE64.encode(bytes)
}
