//! Who a hub operation is about: [`DeviceIdentity`], a device or module proven to a hub (only
//! [`super::authentication`] builds one, so an unverified caller cannot reach the hub), and
//! [`IdentityRef`], the borrowed device-or-module name that twins, methods and connections
//! are keyed by.

use std::sync::Arc;
use std::time::SystemTime;

/// A device (or module) proven to a hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceIdentity {
    hub: String,
    // Shared, not copied, into every message the identity sends (each stored message names
    // its sender; a copy per message was an allocation and a cold free per eviction).
    device_id: Arc<str>,
    module_id: Option<Arc<str>>,
    expires_at: Option<SystemTime>,
}

impl DeviceIdentity {
    /// Private to the hub domain: only device authentication proves an identity.
    pub(super) fn verified(
        hub: &str,
        device_id: &str,
        module_id: Option<&str>,
        expires_at: SystemTime,
    ) -> DeviceIdentity {
        DeviceIdentity {
            hub: hub.to_owned(),
            device_id: device_id.into(),
            module_id: module_id.map(Arc::from),
            expires_at: Some(expires_at),
        }
    }

    pub fn hub(&self) -> &str {
        &self.hub
    }
    pub fn device_id(&self) -> &str {
        &self.device_id
    }
    pub fn module_id(&self) -> Option<&str> {
        self.module_id.as_deref()
    }
    /// The device id as stored messages hold it (a reference count, not a copy).
    pub(crate) fn shared_device_id(&self) -> &Arc<str> {
        &self.device_id
    }
    pub(crate) fn shared_module_id(&self) -> Option<&Arc<str>> {
        self.module_id.as_ref()
    }
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.expires_at
    }
    /// The same identity with its credential expiring `by` later (`crate::clock`: kept in the
    /// credential clock's frame).
    pub(crate) fn shifted(mut self, by: std::time::Duration) -> DeviceIdentity {
        self.expires_at = self.expires_at.map(|at| at.checked_add(by).unwrap_or(at));
        self
    }
    /// `device` or `device/module`: the key for "one connection per identity".
    pub fn connection_key(&self) -> String {
        self.identity_ref().connection_key()
    }
    /// The same identity, borrowed, as twins and methods are keyed.
    pub fn identity_ref(&self) -> IdentityRef<'_> {
        IdentityRef {
            device_id: &self.device_id,
            module_id: self.module_id.as_deref(),
        }
    }
}

/// A device, or one of its modules: what a twin, a method call or a connection belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdentityRef<'a> {
    pub device_id: &'a str,
    pub module_id: Option<&'a str>,
}

impl<'a> IdentityRef<'a> {
    pub fn device(device_id: &'a str) -> IdentityRef<'a> {
        IdentityRef {
            device_id,
            module_id: None,
        }
    }

    pub fn module(device_id: &'a str, module_id: &'a str) -> IdentityRef<'a> {
        IdentityRef {
            device_id,
            module_id: Some(module_id),
        }
    }

    /// `device` or `device/module`, as connections are keyed.
    pub fn connection_key(&self) -> String {
        match self.module_id {
            Some(m) => format!("{}/{m}", self.device_id),
            None => self.device_id.to_owned(),
        }
    }
}
