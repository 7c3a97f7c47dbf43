//! A device's (or module's) requests about its own twin, the same over every device
//! transport (MQTT `$iothub/twin/…` today, an AMQP twin link later; protocol.md §5.6):
//!
//! - GET answers 200 with the device view (`desired` and `reported`, each with `$version`);
//! - a reported-properties PATCH answers 204 with the new reported `$version`, and only once
//!   the change is durable;
//! - desired-property changes reach a connected device as
//!   [`Outbound::DesiredPatch`](crate::hub::connections::Outbound) (see `Hub::update_twin_of`),
//!   never as an answer to a request.
//!
//! Errors are [`HubError`]s; each transport writes them in its own shape.

use serde_json::Value;

use crate::hub::DeviceIdentity;
use crate::hub::error::HubError;
use crate::hub::{Hub, IdentityRef};

/// What the device asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TwinRequest<'a> {
    /// Its whole twin.
    Get,
    /// A merge patch of its reported properties: the raw body it sent.
    PatchReported(&'a [u8]),
}

/// The answer to a [`TwinRequest`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TwinResponse {
    /// The device's view of its twin.
    Twin(Value),
    /// The reported properties changed and are stored; their new `$version`.
    ReportedUpdated { version: u64 },
}

impl TwinResponse {
    /// The status IoT Hub answers with: 200 for the twin, 204 (no body) for a patch.
    pub(crate) fn status(&self) -> u16 {
        match self {
            TwinResponse::Twin(_) => 200,
            TwinResponse::ReportedUpdated { .. } => 204,
        }
    }
}

impl Hub {
    /// Handles a twin request from the connected `identity`. A patch is answered only after
    /// it is durable; nothing changes when it fails.
    pub(crate) async fn device_twin_request(
        &self,
        identity: &DeviceIdentity,
        request: TwinRequest<'_>,
    ) -> Result<TwinResponse, HubError> {
        match request {
            TwinRequest::Get => {
                let who = IdentityRef {
                    device_id: identity.device_id(),
                    module_id: identity.module_id(),
                };
                let twin = self.twin_of(who)?;
                Ok(TwinResponse::Twin(twin.device_view()))
            }
            TwinRequest::PatchReported(body) => {
                let pending = self.patch_reported(identity, body)?;
                let version = pending.durable().await?;
                Ok(TwinResponse::ReportedUpdated { version })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::SystemTime;

    use super::*;
    use crate::auth::Credential;
    use crate::auth::keys::SymmetricKey;
    use crate::auth::sas::build_token;
    use crate::hub::Hubs;

    const HOST: &str = "hub.example";

    fn connected_device() -> (Arc<Hub>, DeviceIdentity) {
        let key = SymmetricKey::from_base64("c2VydmljZSBrZXkgZm9yIHRlc3RzIG9ubHkgMTIzNA==")
            .expect("test key");
        let hub = Hub::new(HOST, Vec::new(), 1);
        hub.provision_device("d1", key.clone(), key.clone(), None);
        let hubs = Hubs::new(vec![hub]);
        let token = build_token(
            &format!("{HOST}/devices/d1"),
            key.as_bytes(),
            None,
            4_000_000_000,
        );
        let hub = hubs.get(HOST).cloned().expect("the hub");
        let identity = hub
            .authenticate_device("d1", None, Credential::Sas(&token), SystemTime::now())
            .expect("authenticates");
        (hub, identity)
    }

    #[tokio::test]
    async fn a_patch_is_answered_204_with_the_version_a_get_then_shows() {
        let (hub, identity) = connected_device();
        let patch = hub
            .device_twin_request(&identity, TwinRequest::PatchReported(br#"{"fw":"2"}"#))
            .await
            .expect("stored");
        assert_eq!(patch, TwinResponse::ReportedUpdated { version: 2 });
        assert_eq!(patch.status(), 204);
        let get = hub
            .device_twin_request(&identity, TwinRequest::Get)
            .await
            .expect("the twin");
        assert_eq!(get.status(), 200);
        let TwinResponse::Twin(view) = get else {
            panic!("a twin expected, got {get:?}");
        };
        assert_eq!(view["reported"]["fw"], "2");
        assert_eq!(view["reported"]["$version"], 2);
    }

    #[tokio::test]
    async fn a_patch_that_is_not_json_changes_nothing() {
        let (hub, identity) = connected_device();
        let error = hub
            .device_twin_request(&identity, TwinRequest::PatchReported(b"{"))
            .await
            .unwrap_err();
        assert_eq!(error.status(), 400);
        assert_eq!(hub.device_twin("d1").unwrap().reported_version, 1);
    }
}
