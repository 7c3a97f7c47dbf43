//! Service callers: a shared-access-policy token proven for a hub or DPS instance, either as
//! an HTTP `Authorization` header checked for one right ([`authenticate_service`]) or as an
//! AMQP token whose audience may take several forms ([`authenticate_service_token`]). Pure
//! credential checks against a list of policies; which policies apply is the caller's choice.

use std::time::SystemTime;

use super::AuthError;
use super::keys::SymmetricKey;
use super::policy::SharedAccessPolicy;
use super::sas::{self, SasError, SasToken};

/// A service caller proven by a shared-access-policy token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServicePrincipal {
    policy: String,
}

impl ServicePrincipal {
    // Read by no caller since the visibility pass (it was `pub`): every caller only needs the
    // verdict. Kept as the principal's one accessor.
    #[allow(dead_code)]
    pub(crate) fn policy(&self) -> &str {
        &self.policy
    }
}

/// Authenticates a service API call: `Authorization: SharedAccessSignature sr=<host>&…&skn=<policy>`
/// signed with the policy's key, and the policy must grant `right`. The resource may carry a
/// port (`localhost:8443`), as SDKs sign the `HostName` they were given.
pub(crate) fn authenticate_service(
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
pub(crate) struct ServiceGrant {
    policy: String,
    rights: Vec<String>,
    resource: String,
    expires_at: SystemTime,
}

impl ServiceGrant {
    pub(crate) fn policy(&self) -> &str {
        &self.policy
    }

    /// Whether the policy grants `right` (case-insensitive).
    pub(crate) fn grants(&self, right: &str) -> bool {
        self.rights.iter().any(|r| r.eq_ignore_ascii_case(right))
    }

    /// The decoded resource without scheme or port, lower-case: `{host}` or `{host}/{path}`.
    pub(crate) fn resource(&self) -> &str {
        &self.resource
    }

    /// Whether the token's resource covers `{host}/{path}` (segment prefix).
    pub(crate) fn covers(&self, resource: &str) -> bool {
        sas::resource_covers(&self.resource, resource)
    }

    /// The same grant expiring `by` later (`crate::clock`: kept in the credential clock's frame).
    pub(crate) fn shifted(mut self, by: std::time::Duration) -> ServiceGrant {
        self.expires_at = self.expires_at.checked_add(by).unwrap_or(self.expires_at);
        self
    }

    pub(crate) fn expires_at(&self) -> SystemTime {
        self.expires_at
    }
}

/// Splits a token resource into its host (scheme, user info and port removed, lower-case)
/// and the rest of its path (no leading `/`).
pub(crate) fn split_resource(resource: &str) -> (String, String) {
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
pub(crate) fn authenticate_service_token(
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
mod tests {
    use super::*;
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
