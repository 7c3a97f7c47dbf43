//! Device-to-cloud telemetry entering a hub: the size limit, the sender's state (exists,
//! enabled), the `iothub-connection-auth-*` annotations, then the telemetry log and the
//! built-in endpoint's routes. A transport acknowledges only after [`Hub::accept_telemetry`]
//! returned.

use std::sync::Arc;

use super::device::{DeviceAuthentication, DeviceStatus};
use super::error::HubError;
use super::telemetry::{IncomingMessage, MessageSender, SenderAuth, TelemetryMessage};
use super::{DeviceIdentity, Hub};

/// IoT Hub's device-to-cloud limit: 256 KB including properties.
pub(crate) const MAX_D2C_MESSAGE_BYTES: usize = 256 * 1024;

impl Hub {
    /// Accepts a batch of telemetry all or nothing: each message and the batch as a whole
    /// must fit the 256 KB limit before the first one is stored.
    pub(crate) fn accept_telemetry_batch(
        &self,
        identity: &DeviceIdentity,
        messages: Vec<IncomingMessage>,
    ) -> Result<(), HubError> {
        let total: usize = messages.iter().map(IncomingMessage::size).sum();
        if let Some(size) = messages
            .iter()
            .map(IncomingMessage::size)
            .find(|s| *s > MAX_D2C_MESSAGE_BYTES)
            .or((total > MAX_D2C_MESSAGE_BYTES).then_some(total))
        {
            return Err(HubError::message_too_large(size, MAX_D2C_MESSAGE_BYTES));
        }
        for message in messages {
            self.accept_telemetry(identity, message)?;
        }
        Ok(())
    }

    /// Accepts device-to-cloud telemetry: stored (and visible to observers) on success, so the
    /// transport may acknowledge it afterwards.
    pub(crate) fn accept_telemetry(
        &self,
        identity: &DeviceIdentity,
        message: IncomingMessage,
    ) -> Result<Arc<TelemetryMessage>, HubError> {
        let size = message.size();
        if size > MAX_D2C_MESSAGE_BYTES {
            return Err(HubError::message_too_large(size, MAX_D2C_MESSAGE_BYTES));
        }
        let device_id = identity.device_id();
        let device_auth = match self.devices.get(device_id) {
            None => return Err(HubError::device_not_found(device_id)),
            Some(d) if d.status == DeviceStatus::Disabled => {
                return Err(HubError::device_disabled(device_id));
            }
            // A module's messages carry the module's authentication, not its device's.
            Some(_) if identity.module_id().is_some() => None,
            Some(d) => Some(sender_auth("device", &d.authentication, &d.generation_id)),
        };
        let auth = match (device_auth, identity.module_id()) {
            (Some(auth), _) => auth,
            (None, Some(module_id)) => {
                let module = self
                    .module(device_id, module_id)
                    .ok_or_else(|| HubError::module_not_found(device_id, module_id))?;
                sender_auth("module", &module.authentication, &module.generation_id)
            }
            (None, None) => return Err(HubError::device_not_found(device_id)),
        };
        let sender = MessageSender {
            hub: self.host_name.clone(),
            device_id: identity.shared_device_id().clone(),
            module_id: identity.shared_module_id().cloned(),
            auth: Some(auth),
        };
        let stored = self.telemetry.append_from(sender, message);
        self.event_hubs.route(stored.clone());
        Ok(stored)
    }
}

/// `iothub-connection-auth-method` and `-auth-generation-id` of a device's or module's
/// messages. The `type` for X.509 identities is not observed in Azure's output; the names
/// here are the ones documented for the authentication types (docs/differences.md).
fn sender_auth(
    scope: &str,
    authentication: &DeviceAuthentication,
    generation_id: &Arc<str>,
) -> SenderAuth {
    SenderAuth {
        method: auth_method(scope == "module", authentication),
        generation_id: generation_id.clone(),
    }
}

/// The `iothub-connection-auth-method` JSON text, written by hand to keep Azure's key order
/// (a serde_json map would sort the keys); one of six constants, so no message formats it.
fn auth_method(module: bool, authentication: &DeviceAuthentication) -> &'static str {
    macro_rules! method {
        ($scope:literal, $kind:literal) => {
            concat!(
                r#"{"scope":""#,
                $scope,
                r#"","type":""#,
                $kind,
                r#"","issuer":"iothub","acceptingIpFilterRule":null}"#
            )
        };
    }
    match (module, authentication) {
        (false, DeviceAuthentication::Sas { .. }) => method!("device", "sas"),
        (false, DeviceAuthentication::SelfSigned { .. }) => method!("device", "x509Certificate"),
        (false, DeviceAuthentication::CertificateAuthority { .. }) => method!("device", "x509CA"),
        (true, DeviceAuthentication::Sas { .. }) => method!("module", "sas"),
        (true, DeviceAuthentication::SelfSigned { .. }) => method!("module", "x509Certificate"),
        (true, DeviceAuthentication::CertificateAuthority { .. }) => method!("module", "x509CA"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_methods_are_azure_shaped_json_in_azure_key_order() {
        let key = crate::auth::keys::SymmetricKey::from_base64(
            "c2VydmljZSBrZXkgZm9yIHRlc3RzIG9ubHkgMTIzNA==",
        )
        .unwrap();
        let sas = DeviceAuthentication::Sas {
            primary: key.clone(),
            secondary: key,
        };
        assert_eq!(
            auth_method(false, &sas),
            r#"{"scope":"device","type":"sas","issuer":"iothub","acceptingIpFilterRule":null}"#
        );
        let module = auth_method(true, &sas);
        let parsed: serde_json::Value = serde_json::from_str(module).unwrap();
        assert_eq!(
            (parsed["scope"].as_str(), parsed["type"].as_str()),
            (Some("module"), Some("sas"))
        );
    }
}
