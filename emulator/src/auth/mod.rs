//! Authentication: turns the credential a connection presents into a verified identity.
//!
//! Transports never decide trust. They parse their wire format (MQTT username, HTTP path),
//! then call [`authenticate_device`] (DPS registrations: `Dps::authenticate_registration` in
//! `dps::attestation`). The identities returned can only be built there, so an unverified
//! identity cannot reach the DPS or hub domain.

pub mod keys;
pub mod policy;
pub mod sas;
pub mod x509;

use std::time::SystemTime;

use rustls_pki_types::CertificateDer;

use crate::hub::Hubs;
use crate::hub::device::{DeviceAuthentication, DeviceStatus};
use keys::SymmetricKey;
use policy::SharedAccessPolicy;
use sas::{SasError, SasToken};

/// What a client presented.
#[derive(Debug, Clone, Copy)]
pub enum Credential<'a> {
    /// A SAS token (MQTT password, HTTP `Authorization`).
    Sas(&'a str),
    /// The DER chain the client sent during the TLS handshake, leaf first.
    ClientCertificates(&'a [rustls_pki_types::CertificateDer<'static>]),
    None,
}

/// A device (or module) proven to a hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceIdentity {
    hub: String,
    device_id: String,
    module_id: Option<String>,
    expires_at: Option<SystemTime>,
}

impl DeviceIdentity {
    pub fn hub(&self) -> &str {
        &self.hub
    }
    pub fn device_id(&self) -> &str {
        &self.device_id
    }
    pub fn module_id(&self) -> Option<&str> {
        self.module_id.as_deref()
    }
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.expires_at
    }
    /// `device` or `device/module`: the key for "one connection per identity".
    pub fn connection_key(&self) -> String {
        match &self.module_id {
            Some(m) => format!("{}/{m}", self.device_id),
            None => self.device_id.clone(),
        }
    }
}

/// Why authentication failed. Devices only learn "not authorized" (or "disabled"); the
/// reason is for the emulator's log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("unknown id scope '{0}'")]
    UnknownIdScope(String),
    #[error("no enrollment matches registration id '{0}'")]
    UnknownRegistration(String),
    #[error("unknown hub '{0}'")]
    UnknownHub(String),
    #[error("device '{0}' is not registered in the hub")]
    UnknownDevice(String),
    #[error("device '{0}' is disabled")]
    DeviceDisabled(String),
    #[error("policy '{0}' does not exist or does not grant {1}")]
    PolicyNotAllowed(String, &'static str),
    #[error("{0}")]
    Token(#[from] SasError),
    #[error("{0} attestation is not supported yet")]
    AttestationNotSupported(&'static str),
    #[error("no credential presented")]
    MissingCredential,
    #[error("certificate refused: {0}")]
    Certificate(String),
    #[error("the enrollment or device expects {expected} authentication")]
    WrongCredentialType { expected: &'static str },
    /// Not an authentication failure but a request no enrollment could ever match; checked
    /// before anything else so that no credential work is done for it.
    #[error("{0}")]
    InvalidRegistrationId(String),
}

impl AuthError {
    /// Azure's 6-digit code for the failure.
    pub fn code(&self) -> u32 {
        match self {
            AuthError::DeviceDisabled(_) => 403012,
            AuthError::InvalidRegistrationId(_) => 400004,
            _ => 401002,
        }
    }
}

/// Authenticates a device (or module) connecting to a hub.
pub fn authenticate_device(
    hubs: &Hubs,
    hub_host: &str,
    device_id: &str,
    module_id: Option<&str>,
    credential: Credential<'_>,
    now: SystemTime,
) -> Result<DeviceIdentity, AuthError> {
    let hub = hubs
        .get(hub_host)
        .ok_or_else(|| AuthError::UnknownHub(hub_host.to_owned()))?;
    let device = hub
        .device(device_id)
        .ok_or_else(|| AuthError::UnknownDevice(device_id.to_owned()))?;
    // A module speaks with its own credentials; its CN (X.509) is `device/module`.
    let (name, authentication, resource) = match module_id {
        None => (
            device_id.to_owned(),
            device.authentication.clone(),
            format!("{}/devices/{device_id}", hub.host_name()),
        ),
        Some(module_id) => {
            let module = hub
                .module(device_id, module_id)
                .ok_or_else(|| AuthError::UnknownDevice(format!("{device_id}/{module_id}")))?;
            (
                module.key(),
                module.authentication,
                format!(
                    "{}/devices/{device_id}/modules/{module_id}",
                    hub.host_name()
                ),
            )
        }
    };
    let identity = |expires_at| DeviceIdentity {
        hub: hub.host_name().to_owned(),
        device_id: device_id.to_owned(),
        module_id: module_id.map(str::to_owned),
        expires_at: Some(expires_at),
    };
    let token = match credential {
        Credential::Sas(token) => SasToken::parse(token)?,
        Credential::ClientCertificates(chain) => {
            let expires_at = identity_by_certificate(hub, &name, &authentication, chain, now)?;
            // Modules connect through their device, so a disabled device shuts them out too.
            if device.status == DeviceStatus::Disabled {
                return Err(AuthError::DeviceDisabled(device_id.to_owned()));
            }
            return Ok(identity(expires_at));
        }
        Credential::None => return Err(AuthError::MissingCredential),
    };
    let keys = authentication.sas_keys();
    if keys.is_empty() && token.key_name.is_none() {
        return Err(AuthError::WrongCredentialType { expected: "X.509" });
    }
    token.check_scope(&resource, now)?;
    match &token.key_name {
        Some(policy_name) => {
            let policy = hub
                .policy(policy_name)
                .filter(|p| p.grants("DeviceConnect"))
                .ok_or_else(|| AuthError::PolicyNotAllowed(policy_name.clone(), "DeviceConnect"))?;
            if !policy.keys().iter().any(|k| token.signed_with(k)) {
                return Err(SasError::BadSignature.into());
            }
        }
        None => verify_any(&token, keys.into_iter())?,
    }
    if device.status == DeviceStatus::Disabled {
        return Err(AuthError::DeviceDisabled(device_id.to_owned()));
    }
    Ok(identity(token.expires_at()))
}

/// Hub X.509: thumbprint for self-signed identities; chain to a verified hub CA (or the CA
/// DPS provisioned the device through) with CN = `name` (the device id, or `device/module`)
/// for CA-signed ones. Returns the certificate's expiry.
fn identity_by_certificate(
    hub: &crate::hub::Hub,
    name: &str,
    authentication: &DeviceAuthentication,
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
    match authentication {
        DeviceAuthentication::Sas { .. } => Err(AuthError::WrongCredentialType { expected: "SAS" }),
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
            if cn != name {
                return Err(AuthError::Certificate(format!(
                    "subject CN '{cn}' is not the identity '{name}'"
                )));
            }
            let mut anchors = hub.certificates().verified_anchors();
            anchors.extend(provisioning_anchors.iter().cloned());
            x509::validate_chain(chain, &anchors, now)
                .map_err(|e| AuthError::Certificate(e.to_string()))?;
            Ok(leaf.not_after)
        }
    }
}

fn verify_any<'k>(
    token: &SasToken,
    mut keys: impl Iterator<Item = &'k SymmetricKey>,
) -> Result<(), AuthError> {
    if keys.any(|k| token.signed_with(k.as_bytes())) {
        Ok(())
    } else {
        Err(SasError::BadSignature.into())
    }
}

/// A service caller proven by a shared-access-policy token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePrincipal {
    policy: String,
}

impl ServicePrincipal {
    pub fn policy(&self) -> &str {
        &self.policy
    }
}

/// Authenticates a service API call: `Authorization: SharedAccessSignature sr=<host>&…&skn=<policy>`
/// signed with the policy's key, and the policy must grant `right`. The resource may carry a
/// port (`localhost:8443`), as SDKs sign the `HostName` they were given.
pub fn authenticate_service(
    policies: &[SharedAccessPolicy],
    host: &str,
    authorization: Option<&str>,
    right: &'static str,
    now: SystemTime,
) -> Result<ServicePrincipal, AuthError> {
    let token = SasToken::parse(authorization.ok_or(AuthError::MissingCredential)?)?;
    let name = token
        .key_name
        .clone()
        .ok_or_else(|| AuthError::PolicyNotAllowed(String::new(), right))?;
    let resource = token.resource()?;
    let resource_host = resource.trim_end_matches('/');
    let resource_host = resource_host
        .rsplit_once(':')
        .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
        .map_or(resource_host, |(h, _)| h);
    token.check_scope(host, now).or_else(|e| {
        if resource_host.eq_ignore_ascii_case(host) {
            token.check_scope(&resource, now)
        } else {
            Err(e)
        }
    })?;
    let policy = policies
        .iter()
        .find(|p| p.name.eq_ignore_ascii_case(&name))
        .ok_or_else(|| AuthError::PolicyNotAllowed(name.clone(), right))?;
    if !policy.keys().iter().any(|k| token.signed_with(k)) {
        return Err(SasError::BadSignature.into());
    }
    if !policy.grants(right) {
        return Err(AuthError::PolicyNotAllowed(name, right));
    }
    Ok(ServicePrincipal {
        policy: policy.name.clone(),
    })
}

/// A service token proven against a hub's shared access policy whatever form its audience
/// takes — AMQP clients sign `{host}`, `https://{host}`, `sb://{host}/{entity}/…` or
/// `{host}/messages/events` (spec/amqp.md §2, §4.2). Which rights a use needs is the caller's
/// question ([`ServiceGrant::grants`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceGrant {
    policy: String,
    rights: Vec<String>,
    resource: String,
    expires_at: SystemTime,
}

impl ServiceGrant {
    pub fn policy(&self) -> &str {
        &self.policy
    }

    /// Whether the policy grants `right` (case-insensitive).
    pub fn grants(&self, right: &str) -> bool {
        self.rights.iter().any(|r| r.eq_ignore_ascii_case(right))
    }

    /// The decoded resource without scheme or port, lower-case: `{host}` or `{host}/{path}`.
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// Whether the token's resource covers `{host}/{path}` (segment prefix).
    pub fn covers(&self, resource: &str) -> bool {
        sas::resource_covers(&self.resource, resource)
    }

    pub fn expires_at(&self) -> SystemTime {
        self.expires_at
    }
}

/// Splits a token resource into its host (scheme, user info and port removed, lower-case)
/// and the rest of its path (no leading `/`).
pub fn split_resource(resource: &str) -> (String, String) {
    let without_scheme = resource
        .split_once("://")
        .map_or(resource, |(_, rest)| rest);
    let (authority, path) = without_scheme
        .split_once('/')
        .unwrap_or((without_scheme, ""));
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match authority.rsplit_once(':') {
        Some((h, port)) if !port.is_empty() && port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => authority,
    };
    (
        host.to_ascii_lowercase(),
        path.trim_matches('/').to_ascii_lowercase(),
    )
}

/// Verifies a shared-access-policy token for hub `host`: the resource names the hub (in
/// any of the forms above), it has not expired, `skn` names a policy and the signature
/// matches one of its keys.
pub fn authenticate_service_token(
    policies: &[SharedAccessPolicy],
    host: &str,
    token: &str,
    now: SystemTime,
) -> Result<ServiceGrant, AuthError> {
    let token = SasToken::parse(token)?;
    let name = token
        .key_name
        .clone()
        .ok_or_else(|| AuthError::PolicyNotAllowed(String::new(), "a shared access policy"))?;
    let (resource_host, path) = split_resource(&token.resource()?);
    if !resource_host.eq_ignore_ascii_case(host) {
        return Err(SasError::WrongResource {
            actual: token.resource()?,
            expected: host.to_owned(),
        }
        .into());
    }
    let resource = if path.is_empty() {
        resource_host
    } else {
        format!("{resource_host}/{path}")
    };
    // Expiry only: the resource was matched above, in its scheme-less form.
    token.check_scope(&token.resource()?, now)?;
    let policy = policies
        .iter()
        .find(|p| p.name.eq_ignore_ascii_case(&name))
        .ok_or_else(|| AuthError::PolicyNotAllowed(name.clone(), "a shared access policy"))?;
    // IoT Hub SDKs sign with the key's bytes (base64-decoded); Event Hubs and Service Bus
    // clients (core-amqp, pyamqp) sign with the key's base64 text as UTF-8. Both prove the
    // same secret, and the Event Hubs-compatible connection string carries the hub's key.
    let key_texts: Vec<String> = std::iter::once(&policy.primary)
        .chain(policy.secondary.iter())
        .map(SymmetricKey::to_base64)
        .collect();
    if !policy.keys().iter().any(|k| token.signed_with(k))
        && !key_texts.iter().any(|k| token.signed_with(k.as_bytes()))
    {
        return Err(SasError::BadSignature.into());
    }
    Ok(ServiceGrant {
        policy: policy.name.clone(),
        rights: policy.rights.clone(),
        resource,
        expires_at: token.expires_at(),
    })
}

#[cfg(test)]
mod service_token_tests {
    use super::*;
    use crate::auth::keys::SymmetricKey;
    use std::time::{Duration, UNIX_EPOCH};

    fn policy(rights: &[&str]) -> SharedAccessPolicy {
        SharedAccessPolicy {
            name: "service".into(),
            primary: SymmetricKey::from_base64("c2VydmljZSBrZXkgZm9yIHRlc3RzIG9ubHkgMTIzNA==")
                .unwrap(),
            secondary: None,
            rights: rights.iter().map(|r| r.to_string()).collect(),
        }
    }

    #[test]
    fn every_audience_form_names_the_hub() {
        let p = policy(&["ServiceConnect"]);
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        for (resource, expected) in [
            ("myhub.example", "myhub.example"),
            ("https://MyHub.example", "myhub.example"),
            ("myhub.example:5671", "myhub.example"),
            (
                "myhub.example/messages/events",
                "myhub.example/messages/events",
            ),
            (
                "sb://myhub.example/myhub/consumergroups/$default",
                "myhub.example/myhub/consumergroups/$default",
            ),
        ] {
            let token = sas::build_token(resource, p.primary.as_bytes(), Some("service"), 2_000);
            let grant =
                authenticate_service_token(std::slice::from_ref(&p), "myhub.example", &token, now)
                    .unwrap();
            assert_eq!(grant.resource(), expected, "{resource}");
            assert!(grant.grants("serviceconnect"));
            assert!(!grant.grants("RegistryRead"));
            assert!(grant.covers(expected));
        }
    }

    #[test]
    fn event_hubs_clients_signing_with_the_key_text_are_accepted() {
        // core-amqp: sr = encodeURIComponent(audience), HMAC keyed with the key's base64 text.
        let p = policy(&["ServiceConnect"]);
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        let text = p.primary.to_base64();
        let token = sas::build_token(
            "sb://myhub.example/myhub/$management",
            text.as_bytes(),
            Some("service"),
            2_000,
        );
        let grant =
            authenticate_service_token(std::slice::from_ref(&p), "myhub.example", &token, now)
                .unwrap();
        assert_eq!(grant.resource(), "myhub.example/myhub/$management");
    }

    #[test]
    fn wrong_hub_expired_unknown_policy_and_bad_signature_are_refused() {
        let p = policy(&["ServiceConnect"]);
        let policies = std::slice::from_ref(&p);
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        let key = p.primary.as_bytes();
        let other = sas::build_token("otherhub.example", key, Some("service"), 2_000);
        assert!(authenticate_service_token(policies, "myhub.example", &other, now).is_err());
        let expired = sas::build_token("myhub.example", key, Some("service"), 900);
        assert!(matches!(
            authenticate_service_token(policies, "myhub.example", &expired, now),
            Err(AuthError::Token(SasError::Expired { .. }))
        ));
        let unknown = sas::build_token("myhub.example", key, Some("nobody"), 2_000);
        assert!(matches!(
            authenticate_service_token(policies, "myhub.example", &unknown, now),
            Err(AuthError::PolicyNotAllowed(..))
        ));
        let forged = sas::build_token("myhub.example", b"not the key", Some("service"), 2_000);
        assert_eq!(
            authenticate_service_token(policies, "myhub.example", &forged, now),
            Err(AuthError::Token(SasError::BadSignature))
        );
        let no_skn = sas::build_token("myhub.example", key, None, 2_000);
        assert!(authenticate_service_token(policies, "myhub.example", &no_skn, now).is_err());
    }
}
