//! CA certificates uploaded to a DPS instance or a hub, and their proof of possession:
//! upload → get a verification code → upload a certificate whose subject CN is that code,
//! signed by the CA's key → verified. Only verified CAs authenticate devices.
//! (how-to-verify-certificates.md; protocol.md §4.)

use std::time::SystemTime;

use std::sync::Arc;

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use serde_json::{Value, json};

use crate::auth::x509::{self, CertificateInfo, X509Error};
use crate::etag;
use crate::pending::Pending;
use crate::persistence::Persistence;
use crate::timefmt::utc_timestamp;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(into = "StoredCaCertificate", try_from = "StoredCaCertificate")]
pub struct CaCertificate {
    pub name: String,
    pub der: Vec<u8>,
    pub info: CertificateInfo,
    pub is_verified: bool,
    pub verification_code: Option<String>,
    pub etag: String,
    pub created: SystemTime,
    pub updated: SystemTime,
}

/// A CA certificate as durable state keeps it: the parsed details are derived again on load.
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredCaCertificate {
    name: String,
    #[serde(with = "crate::serde_b64")]
    der: Vec<u8>,
    is_verified: bool,
    verification_code: Option<String>,
    etag: String,
    created: SystemTime,
    updated: SystemTime,
}

impl From<CaCertificate> for StoredCaCertificate {
    fn from(c: CaCertificate) -> Self {
        StoredCaCertificate {
            name: c.name,
            der: c.der,
            is_verified: c.is_verified,
            verification_code: c.verification_code,
            etag: c.etag,
            created: c.created,
            updated: c.updated,
        }
    }
}

impl TryFrom<StoredCaCertificate> for CaCertificate {
    type Error = X509Error;
    fn try_from(c: StoredCaCertificate) -> Result<Self, X509Error> {
        Ok(CaCertificate {
            info: x509::inspect(&c.der)?,
            name: c.name,
            der: c.der,
            is_verified: c.is_verified,
            verification_code: c.verification_code,
            etag: c.etag,
            created: c.created,
            updated: c.updated,
        })
    }
}

impl CaCertificate {
    /// Shaped like the management API's `CertificateResponse`.
    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "etag": self.etag,
            "properties": {
                "subject": self.info.subject,
                "expiry": utc_timestamp(self.info.not_after),
                "thumbprint": self.info.sha1_thumbprint,
                "sha256Thumbprint": self.info.sha256_thumbprint,
                "isVerified": self.is_verified,
                "created": utc_timestamp(self.created),
                "updated": utc_timestamp(self.updated),
            }
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    #[error("no certificate named '{0}'")]
    NotFound(String),
    #[error("{0}")]
    Invalid(#[from] X509Error),
    #[error("no verification code was generated for '{0}'")]
    NoVerificationCode(String),
    #[error(
        "the verification certificate's subject CN is '{actual}', not the verification code '{expected}'"
    )]
    WrongCode { expected: String, actual: String },
    #[error("the verification certificate is not signed by the key of '{0}'")]
    NotSignedByCa(String),
    #[error("the change could not be stored: {0}")]
    Storage(String),
}

impl From<crate::store::StoreError> for CertificateError {
    fn from(error: crate::store::StoreError) -> CertificateError {
        CertificateError::Storage(error.to_string())
    }
}

/// One instance's uploaded CA certificates, by case-insensitive name.
#[derive(Default)]
pub struct CertificateStore {
    entries: DashMap<String, CaCertificate>,
    /// Where changes are made durable, and under which collection.
    durable: Option<(Arc<Persistence>, String)>,
}

impl CertificateStore {
    /// Saves changes through `persistence` into `collection` from now on.
    pub fn attach(&mut self, persistence: Arc<Persistence>, collection: String) {
        self.durable = Some((persistence, collection));
    }

    /// Submits the new state of the certificate under `key` (`None`: deleted); the caller
    /// publishes it once this succeeded (see `persistence`).
    fn submit(
        &self,
        key: &str,
        before: Option<CaCertificate>,
        after: Option<&CaCertificate>,
    ) -> Result<Pending<'_, ()>, CertificateError> {
        let Some((persistence, collection)) = &self.durable else {
            return Ok(Pending::ready(()));
        };
        Ok(persistence.submit_entry(
            collection,
            key,
            &self.entries,
            key.to_owned(),
            before,
            after,
        )?)
    }

    /// Removes a certificate that durable state says was deleted.
    pub fn forget(&self, name: &str) {
        self.entries.remove(&name.to_ascii_lowercase());
    }

    /// Adds or replaces `name`. `is_verified` is the "verify on upload" option; a replaced
    /// certificate has to be verified again. Acknowledge it once the result is durable.
    pub fn upload(
        &self,
        name: &str,
        certificate: &str,
        is_verified: bool,
    ) -> Result<Pending<'_, CaCertificate>, CertificateError> {
        let der = x509::decode_certificate(certificate)?;
        let info = x509::inspect(&der)?;
        let now = SystemTime::now();
        let key = name.to_ascii_lowercase();
        let mut slot = self.entries.entry(key.clone());
        let before = match &mut slot {
            Entry::Occupied(stored) => Some(stored.get().clone()),
            Entry::Vacant(_) => None,
        };
        let created = before.as_ref().map(|c| c.created).unwrap_or(now);
        let entry = CaCertificate {
            name: name.to_owned(),
            der,
            info,
            is_verified,
            verification_code: None,
            etag: etag::certificate(),
            created,
            updated: now,
        };
        let pending = self.submit(&key, before, Some(&entry))?;
        slot.insert(entry.clone());
        Ok(pending.map(|()| entry))
    }

    /// Puts back a certificate from durable state, as it was.
    pub(crate) fn restore(&self, certificate: CaCertificate) {
        self.entries
            .insert(certificate.name.to_ascii_lowercase(), certificate);
    }

    pub fn get(&self, name: &str) -> Option<CaCertificate> {
        self.entries
            .get(&name.to_ascii_lowercase())
            .map(|c| c.clone())
    }

    pub fn list(&self) -> Vec<CaCertificate> {
        let mut all: Vec<_> = self.entries.iter().map(|c| c.clone()).collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// Deletes `name`; `false` when there was none.
    pub fn delete(&self, name: &str) -> Result<Pending<'_, bool>, CertificateError> {
        let key = name.to_ascii_lowercase();
        match self.entries.entry(key.clone()) {
            Entry::Vacant(_) => Ok(Pending::ready(false)),
            Entry::Occupied(stored) => {
                let pending = self.submit(&key, Some(stored.get().clone()), None)?;
                stored.remove();
                Ok(pending.map(|()| true))
            }
        }
    }

    /// A fresh code the owner must put in a verification certificate's subject CN.
    pub fn generate_verification_code(
        &self,
        name: &str,
    ) -> Result<Pending<'_, String>, CertificateError> {
        let key = name.to_ascii_lowercase();
        let mut stored = self
            .entries
            .get_mut(&key)
            .ok_or_else(|| CertificateError::NotFound(name.to_owned()))?;
        let code = uuid::Uuid::new_v4()
            .simple()
            .to_string()
            .to_ascii_uppercase();
        let mut entry = stored.clone();
        entry.verification_code = Some(code.clone());
        entry.etag = etag::certificate();
        let pending = self.submit(&key, Some(stored.clone()), Some(&entry))?;
        *stored = entry;
        Ok(pending.map(|()| code))
    }

    /// Marks `name` verified when `verification_certificate` carries the current code as its
    /// CN and is signed by the CA's key.
    pub fn verify(
        &self,
        name: &str,
        verification_certificate: &str,
    ) -> Result<Pending<'_, CaCertificate>, CertificateError> {
        let der = x509::decode_certificate(verification_certificate)?;
        let info = x509::inspect(&der)?;
        let key = name.to_ascii_lowercase();
        let mut stored = self
            .entries
            .get_mut(&key)
            .ok_or_else(|| CertificateError::NotFound(name.to_owned()))?;
        let mut entry = stored.clone();
        let expected = entry
            .verification_code
            .clone()
            .ok_or_else(|| CertificateError::NoVerificationCode(name.to_owned()))?;
        let actual = info.subject_common_name.unwrap_or_default();
        if !actual.eq_ignore_ascii_case(&expected) {
            return Err(CertificateError::WrongCode { expected, actual });
        }
        if !x509::signed_by(&der, &entry.der) {
            return Err(CertificateError::NotSignedByCa(name.to_owned()));
        }
        entry.is_verified = true;
        entry.verification_code = None;
        entry.etag = etag::certificate();
        entry.updated = SystemTime::now();
        let pending = self.submit(&key, Some(stored.clone()), Some(&entry))?;
        *stored = entry.clone();
        Ok(pending.map(|()| entry))
    }

    /// DER of every verified certificate: the anchors devices may chain up to.
    pub(crate) fn verified_anchors(&self) -> Vec<Vec<u8>> {
        self.entries
            .iter()
            .filter(|c| c.is_verified)
            .map(|c| c.der.clone())
            .collect()
    }

    /// True when a verified certificate has this SHA-256 thumbprint.
    pub(crate) fn is_verified_thumbprint(&self, sha256: &str) -> bool {
        self.entries
            .iter()
            .any(|c| c.is_verified && c.info.sha256_thumbprint == sha256)
    }

    /// Names of the certificates with this SHA-256 thumbprint or, when `subject` is given,
    /// this subject (for a root the device did not send).
    pub(crate) fn names_matching(
        &self,
        sha256: Option<&str>,
        subject: Option<&str>,
    ) -> Vec<String> {
        self.entries
            .iter()
            .filter(|c| {
                sha256.is_some_and(|t| c.info.sha256_thumbprint == t)
                    || subject.is_some_and(|s| c.info.subject == s)
            })
            .map(|c| c.name.clone())
            .collect()
    }
}
