//! Shared access policies (`iothubowner`, `provisioningserviceowner`, …): a named key pair
//! with a set of rights, used by service tokens and policy-signed device tokens.

use super::keys::{KeyError, SymmetricKey};
use crate::fixtures::AccessPolicy;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedAccessPolicy {
    pub name: String,
    pub primary: SymmetricKey,
    pub secondary: Option<SymmetricKey>,
    pub rights: Vec<String>,
}

impl SharedAccessPolicy {
    pub fn from_fixture(policy: &AccessPolicy) -> Result<SharedAccessPolicy, KeyError> {
        Ok(SharedAccessPolicy {
            name: policy.key_name.clone(),
            primary: SymmetricKey::from_base64(&policy.primary_key)?,
            secondary: policy
                .secondary_key
                .as_deref()
                .map(SymmetricKey::from_base64)
                .transpose()?,
            rights: policy.rights.names(),
        })
    }

    /// Rights compare case-insensitively (`DeviceConnect`, `deviceconnect`).
    pub fn grants(&self, right: &str) -> bool {
        self.rights.iter().any(|r| r.eq_ignore_ascii_case(right))
    }

    pub fn keys(&self) -> Vec<&[u8]> {
        std::iter::once(&self.primary)
            .chain(self.secondary.iter())
            .map(SymmetricKey::as_bytes)
            .collect()
    }

    /// `HostName=…;SharedAccessKeyName=…;SharedAccessKey=…` — exactly three parts, no
    /// trailing `;`, because the 2018 DPS service client rejects anything else.
    pub fn connection_string(&self, host: &str) -> String {
        format!(
            "HostName={host};SharedAccessKeyName={};SharedAccessKey={}",
            self.name,
            self.primary.to_base64()
        )
    }
}
