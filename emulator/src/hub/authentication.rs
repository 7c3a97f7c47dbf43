//! Device authentication (protocol.md §1, §6): which device or module of a hub a credential
//! proves. The credential checks themselves (SAS signatures, certificate chains) are building
//! blocks from [`crate::auth`]; the decision — does this device exist, is it enabled, which of
//! its keys, thumbprints or CAs count — is the hub's, and so is the [`DeviceIdentity`] it
//! returns. A transport's CONNECT calls [`Hubs::connect_device`], which looks the hub up once
//! and returns the identity together with the lease that makes it the identity's connection.

use std::sync::Arc;
use std::time::SystemTime;

use rustls_pki_types::CertificateDer;

use super::connections::ConnectionLease;
use super::device::{DeviceAuthentication, DeviceStatus};
use super::identity::DeviceIdentity;
use super::{Hub, Hubs};
use crate::auth::sas::{SasError, SasToken};
use crate::auth::{AuthError, Credential, x509};
use crate::faults::{FaultHit, FaultOperation};

/// A device (or module) proven to a hub and connected to it.
pub struct DeviceConnection {
    pub identity: DeviceIdentity,
    pub hub: Arc<Hub>,
    /// Makes this connection the identity's only one; held for the life of the connection.
    pub lease: ConnectionLease,
    /// An injected fault that lets the connection through but acts on its answer (a delayed
    /// CONNACK, or a drop right after it).
    pub fault: Option<FaultHit>,
}

/// Why a CONNECT was not attached: its credential or device was refused, or an injected
/// fault refuses, drops or stalls it (the transport carries that out).
#[derive(Debug)]
pub enum ConnectRefused {
    Auth(AuthError),
    Fault(FaultHit),
}

impl From<AuthError> for ConnectRefused {
    fn from(error: AuthError) -> ConnectRefused {
        ConnectRefused::Auth(error)
    }
}

impl Hubs {
    /// CONNECT of a device (or module) to the hub at `host`: authenticates it and attaches
    /// the connection, replacing any older connection of the same identity.
    pub fn connect_device(
        &self,
        host: &str,
        device_id: &str,
        module_id: Option<&str>,
        credential: Credential<'_>,
        now: SystemTime,
    ) -> Result<DeviceConnection, ConnectRefused> {
        let hub = self
            .get(host)
            .ok_or_else(|| AuthError::UnknownHub(host.to_owned()))?;
        let identity = hub.authenticate_device(device_id, module_id, credential, now)?;
        // After authentication (a bad credential is refused as ever) and before the attach,
        // so a connect the fault turns away does not replace the device's live connection.
        let fault = hub.fault(FaultOperation::HubConnect, device_id);
        if let Some(hit) = &fault
            && !hit.action.lets_request_through()
        {
            return Err(ConnectRefused::Fault(hit.clone()));
        }
        let lease = hub.connections().attach(&identity.connection_key());
        Ok(DeviceConnection {
            identity,
            hub: hub.clone(),
            lease,
            fault,
        })
    }
}

/// What a device or module must prove: its name for certificate CNs, its registered
/// credentials and the resource its SAS tokens must be scoped to.
struct Claimed {
    name: String,
    authentication: DeviceAuthentication,
    resource: String,
    device_enabled: bool,
}

impl Hub {
    /// Authenticates a device (or module) of this hub by the credential it presented.
    pub(crate) fn authenticate_device(
        &self,
        device_id: &str,
        module_id: Option<&str>,
        credential: Credential<'_>,
        now: SystemTime,
    ) -> Result<DeviceIdentity, AuthError> {
        let claimed = self.claimed(device_id, module_id)?;
        let expires_at = match credential {
            Credential::Sas(token) => self.verify_sas(&claimed, &SasToken::parse(token)?, now)?,
            Credential::ClientCertificates(chain) => {
                self.verify_certificate(&claimed, chain, now)?
            }
            Credential::None => return Err(AuthError::MissingCredential),
        };
        // Modules connect through their device, so a disabled device shuts them out too.
        if !claimed.device_enabled {
            return Err(AuthError::DeviceDisabled(device_id.to_owned()));
        }
        Ok(DeviceIdentity::verified(
            self.host_name(),
            device_id,
            module_id,
            expires_at,
        ))
    }

    /// The registered device, or module: a module speaks with its own credentials and its
    /// CN (X.509) is `device/module`.
    fn claimed(&self, device_id: &str, module_id: Option<&str>) -> Result<Claimed, AuthError> {
        let device = self
            .device(device_id)
            .ok_or_else(|| AuthError::UnknownDevice(device_id.to_owned()))?;
        let device_enabled = device.status != DeviceStatus::Disabled;
        Ok(match module_id {
            None => Claimed {
                name: device_id.to_owned(),
                authentication: device.authentication,
                resource: format!("{}/devices/{device_id}", self.host_name()),
                device_enabled,
            },
            Some(module_id) => {
                let module = self
                    .module(device_id, module_id)
                    .ok_or_else(|| AuthError::UnknownDevice(format!("{device_id}/{module_id}")))?;
                Claimed {
                    name: module.key(),
                    authentication: module.authentication,
                    resource: format!(
                        "{}/devices/{device_id}/modules/{module_id}",
                        self.host_name()
                    ),
                    device_enabled,
                }
            }
        })
    }

    /// A SAS token signed with one of the identity's keys, or with a hub policy granting
    /// `DeviceConnect` (`skn` names it). Returns the token's expiry.
    fn verify_sas(
        &self,
        claimed: &Claimed,
        token: &SasToken,
        now: SystemTime,
    ) -> Result<SystemTime, AuthError> {
        let keys = claimed.authentication.sas_keys();
        if keys.is_empty() && token.key_name.is_none() {
            return Err(AuthError::WrongCredentialType { expected: "X.509" });
        }
        token.check_scope(&claimed.resource, now)?;
        let signed = match &token.key_name {
            Some(policy_name) => {
                let policy = self
                    .policy(policy_name)
                    .filter(|p| p.grants("DeviceConnect"))
                    .ok_or_else(|| {
                        AuthError::PolicyNotAllowed(policy_name.clone(), "DeviceConnect")
                    })?;
                policy.keys().iter().any(|k| token.signed_with(k))
            }
            None => keys.iter().any(|k| token.signed_with(k.as_bytes())),
        };
        if !signed {
            return Err(SasError::BadSignature.into());
        }
        Ok(token.expires_at())
    }

    /// Hub X.509: thumbprint for self-signed identities; chain to a verified hub CA (or the
    /// CA DPS provisioned the device through) with CN = the device id, or `device/module`,
    /// for CA-signed ones. Returns the certificate's expiry.
    fn verify_certificate(
        &self,
        claimed: &Claimed,
        chain: &[CertificateDer<'static>],
        now: SystemTime,
    ) -> Result<SystemTime, AuthError> {
        let leaf_der = chain.first().ok_or(AuthError::MissingCredential)?;
        let leaf = x509::inspect(leaf_der).map_err(|e| AuthError::Certificate(e.to_string()))?;
        if !leaf.is_valid_at(now) {
            return Err(AuthError::Certificate(
                "the certificate is expired or not yet valid".into(),
            ));
        }
        match &claimed.authentication {
            DeviceAuthentication::Sas { .. } => {
                Err(AuthError::WrongCredentialType { expected: "SAS" })
            }
            DeviceAuthentication::SelfSigned {
                primary_thumbprint,
                secondary_thumbprint,
            } => {
                let matches = [primary_thumbprint, secondary_thumbprint]
                    .into_iter()
                    .flatten()
                    .map(|t| x509::normalize_thumbprint(t))
                    .any(|t| t == leaf.sha1_thumbprint || t == leaf.sha256_thumbprint);
                if matches {
                    Ok(leaf.not_after)
                } else {
                    Err(AuthError::Certificate(
                        "thumbprint matches neither registered thumbprint".into(),
                    ))
                }
            }
            DeviceAuthentication::CertificateAuthority {
                provisioning_anchors,
            } => {
                let cn = leaf.subject_common_name.clone().unwrap_or_default();
                if cn != claimed.name {
                    return Err(AuthError::Certificate(format!(
                        "subject CN '{cn}' is not the identity '{}'",
                        claimed.name
                    )));
                }
                let mut anchors = self.certificates().verified_anchors();
                anchors.extend(provisioning_anchors.iter().cloned());
                x509::validate_chain(chain, &anchors, now)
                    .map_err(|e| AuthError::Certificate(e.to_string()))?;
                Ok(leaf.not_after)
            }
        }
    }
}
