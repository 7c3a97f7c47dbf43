//! Shared access policies (`iothubowner`, `provisioningserviceowner`, …): a named key pair
//! with a set of rights, used by service tokens and policy-signed device tokens.

use super::keys::{KeyError, SymmetricKey};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedAccessPolicy {
    pub name: String,
    pub primary: SymmetricKey,
    pub secondary: Option<SymmetricKey>,
    pub rights: Vec<String>,
}

impl SharedAccessPolicy {
    /// A policy from its keys as written in fixtures and connection strings (base64).
    pub fn from_base64(
        name: &str,
        primary: &str,
        secondary: Option<&str>,
        rights: Vec<String>,
    ) -> Result<SharedAccessPolicy, KeyError> {
        Ok(SharedAccessPolicy {
            name: name.to_owned(),
            primary: SymmetricKey::from_base64(primary)?,
            secondary: secondary.map(SymmetricKey::from_base64).transpose()?,
            rights,
        })
    }

    /// Rights compare case-insensitively (`DeviceConnect`, `deviceconnect`).
    pub(crate) fn grants(&self, right: &str) -> bool {
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
