//! DPS X.509 over AMQP judged before `open` is answered: a registration client that sends no
//! SASL (the plain AMQP header) and presents a TLS client certificate is proven, or refused,
//! from that certificate alone, the way DPS refuses it.
//!
//! What DPS does (docs/differences.md, "DPS over AMQP: refused credentials"): a no-SASL
//! connection whose certificate DPS does not accept gets its `open` answered and is then
//! closed with `amqp:unauthorized-access` and DPS's error JSON (`401002`,
//! `IotHubUnauthorizedAccess`) as the description, before any link — the service trace in
//! Azure/azure-iot-sdk-c#815 (`-> Header (AMQP 0.1.0.0)`, `<- [OPEN] {…open-error…}`,
//! `-> [BEGIN]`, `<- [CLOSE] {amqp:unauthorized-access, {"errorCode":401002,…}}`). That is
//! also the one refusal `azure-iot-provisioning-device-amqp` reports promptly: refusing both
//! registration links instead can leave its `register()` without a callback (the
//! azure-iot-amqp-base "disconnecting" race, issue #14).
//!
//! The registration id of an X.509 registration is the leaf's subject CN (the attestation
//! refuses any other), so the decision needs no link address: the same
//! [`crate::dps::Dps::authenticate_registration`] MQTT and HTTPS use, with the CN and DPS's
//! id scope. A certificate DPS accepts becomes the connection's registration grant (its links
//! then attach without being judged again); one DPS refuses is marked to be closed right
//! after `open` (the same close as a refused SASL login, [`super::dps_sasl`]), and since the
//! decision comes before the `open` is written, that `open` also carries the error in its
//! `com.microsoft:open-error` property, as the service's does
//! ([`super::conditions::open_error_properties`]).
//!
//! DPS and the hubs may share a host name (the default: `localhost`), and an X.509 *hub*
//! device sends exactly the same thing before `open`, while the hub refuses a bad device
//! certificate only at link attach. So the connection is judged as DPS's only when it can be
//! nobody else's:
//!
//! * the TLS server name names DPS and no hub: always judged;
//! * it names a hub and not DPS: never (the hub's links judge it, [`super::device`]);
//! * it names both, or nothing iotemu serves (no SNI, an IP address): refused only when DPS
//!   has an X.509 enrollment that claims the certificate's CN (or an X.509 group its chain)
//!   and no hub has a device of that id that accepts the certificate; otherwise the
//!   registration links judge it when they attach, as before ([`super::dps_link`]). (A
//!   self-signed hub device whose id is not its CN, presenting a certificate whose CN an X.509
//!   enrollment claims with another certificate, is therefore refused at `open`.)

use std::time::SystemTime;

use rustls_pki_types::CertificateDer;

use super::AmqpContext;
use super::connection_auth::{ConnectionAuth, Grant, GrantSource};
use super::dps_sasl::unauthorized_description;
use crate::auth::{AuthError, Credential, x509};

/// Whose connection the TLS server name says this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// DPS's host and no hub's.
    Dps,
    /// A hub's host and not DPS's.
    Hub,
    /// Shared by DPS and a hub, or naming neither.
    Either,
}

fn target(amqp: &AmqpContext, server_name: Option<&str>) -> Target {
    let Some(name) = server_name else {
        return Target::Either;
    };
    let dps = name.eq_ignore_ascii_case(amqp.dps.host_name());
    let hub = amqp.hubs.get(name).is_some();
    match (dps, hub) {
        (true, false) => Target::Dps,
        (false, true) => Target::Hub,
        _ => Target::Either,
    }
}

/// Judges a no-SASL connection's client certificate as a DPS registration before `open` is
/// answered (see the module comment): records the grant, marks the connection to be closed
/// right after `open`, or leaves the decision to the links.
pub(crate) fn judge_client_certificate(amqp: &AmqpContext, auth: &ConnectionAuth) {
    let peer = auth.peer();
    let remote = peer.remote;
    let chain = &peer.certificates;
    if chain.is_empty() {
        return;
    }
    let target = target(amqp, peer.server_name.as_deref());
    if target == Target::Hub {
        return;
    }
    let Some(registration_id) = leaf_common_name(chain) else {
        if target == Target::Dps {
            tracing::info!(%remote, "AMQP DPS X.509: the certificate has no subject CN to be a registration id; closed after open");
            auth.refuse_after_open(unauthorized_description());
        }
        return;
    };
    let now = SystemTime::now();
    let id_scope = amqp.dps.id_scope();
    match amqp.dps.authenticate_registration(
        id_scope,
        &registration_id,
        Credential::ClientCertificates(chain),
        now,
    ) {
        Ok(identity) => {
            tracing::debug!(%remote, registration = %registration_id, "AMQP DPS X.509: certificate accepted before open");
            auth.add(Grant::Registration {
                id_scope: id_scope.to_owned(),
                identity,
                source: GrantSource::ClientCertificate,
            });
        }
        Err(e) => {
            let refused = match target {
                Target::Dps => true,
                Target::Either => {
                    claimed_by_dps(&e) && !accepted_by_a_hub(amqp, &registration_id, chain, now)
                }
                Target::Hub => false,
            };
            if refused {
                tracing::info!(%remote, registration = %registration_id, error = %e, "AMQP DPS X.509: certificate refused; the connection is closed after open");
                auth.refuse_after_open(unauthorized_description());
            } else {
                tracing::debug!(%remote, registration = %registration_id, error = %e, "AMQP X.509: not a DPS registration DPS can refuse at open; left to the links");
            }
        }
    }
}

/// The leaf certificate's subject CN, if it has one.
fn leaf_common_name(chain: &[CertificateDer<'static>]) -> Option<String> {
    let leaf = x509::inspect(chain.first()?).ok()?;
    leaf.subject_common_name.filter(|cn| !cn.is_empty())
}

/// Whether DPS's refusal means an X.509 enrollment claims this registration (an individual
/// X.509 enrollment for the id, or an X.509 group for the chain, that the certificate
/// failed), as opposed to DPS knowing nothing of it, or only a symmetric-key or TPM
/// enrollment of that name — then the connection may well be a hub device's.
fn claimed_by_dps(refusal: &AuthError) -> bool {
    !matches!(
        refusal,
        AuthError::UnknownRegistration(_)
            | AuthError::InvalidRegistrationId(_)
            | AuthError::UnknownIdScope(_)
            | AuthError::WrongCredentialType { .. }
            | AuthError::AttestationNotSupported(_)
    )
}

/// Whether some hub has a device `device_id` that this certificate authenticates.
fn accepted_by_a_hub(
    amqp: &AmqpContext,
    device_id: &str,
    chain: &[CertificateDer<'static>],
    now: SystemTime,
) -> bool {
    amqp.hubs.all().iter().any(|hub| {
        hub.authenticate_device(device_id, None, Credential::ClientCertificates(chain), now)
            .is_ok()
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::amqp::AmqpLimits;
    use crate::amqp::connection_auth::PeerInfo;
    use crate::dps::{Dps, DpsTiming};
    use crate::hub::{Hub, Hubs};

    /// An AMQP context whose DPS (no enrollment) is at `dps_host` and whose hub is at
    /// `hub_host`.
    fn context(dps_host: &str, hub_host: &str) -> AmqpContext {
        let hubs = Arc::new(Hubs::new(vec![Hub::new(hub_host, vec![], 10)]));
        let dps = Arc::new(Dps::new(
            "0ne00000A0A",
            dps_host,
            vec![],
            hubs.clone(),
            DpsTiming::default(),
        ));
        AmqpContext {
            hubs,
            dps,
            limits: AmqpLimits::default(),
            port: 0,
            shutdown: crate::shutdown::Shutdown::new().signal(),
        }
    }

    fn auth(
        server_name: Option<&str>,
        certificates: Vec<CertificateDer<'static>>,
    ) -> ConnectionAuth {
        ConnectionAuth::new(
            PeerInfo {
                remote: ([127, 0, 0, 1], 40000).into(),
                certificates,
                server_name: server_name.map(str::to_owned),
            },
            crate::clock::Clock::default(),
        )
    }

    fn device_chain(registration_id: &str) -> Vec<CertificateDer<'static>> {
        crate::certs::self_signed_device(registration_id, 30)
            .unwrap()
            .full_chain_der()
            .to_vec()
    }

    #[test]
    fn the_server_name_says_whose_connection_it_is() {
        let split = context("dps.example", "hub.example");
        assert_eq!(target(&split, Some("DPS.example")), Target::Dps);
        assert_eq!(target(&split, Some("hub.example")), Target::Hub);
        assert_eq!(target(&split, Some("127.0.0.1")), Target::Either);
        assert_eq!(target(&split, None), Target::Either);
        let shared = context("localhost", "localhost");
        assert_eq!(target(&shared, Some("localhost")), Target::Either);
    }

    #[test]
    fn on_a_dps_only_host_an_unknown_certificate_is_closed_after_open() {
        let amqp = context("dps.example", "hub.example");
        let auth = auth(Some("dps.example"), device_chain("nobody-enrolled"));
        judge_client_certificate(&amqp, &auth);
        let description = auth.open_refusal().expect("refused at open");
        let json: serde_json::Value = serde_json::from_str(&description).unwrap();
        assert_eq!(json["errorCode"], 401002);
        assert_eq!(json["message"], "IotHubUnauthorizedAccess");
        assert!(!auth.has_any_grant());
        // Nothing was registered.
        assert!(amqp.dps.registration("nobody-enrolled").is_none());
    }

    #[test]
    fn hub_connections_and_unclaimed_certificates_are_left_to_the_links() {
        for (dps_host, hub_host, sni) in [
            ("dps.example", "hub.example", Some("hub.example")),
            ("localhost", "localhost", Some("localhost")),
            ("localhost", "localhost", None),
        ] {
            let amqp = context(dps_host, hub_host);
            let auth = auth(sni, device_chain("a-hub-device"));
            judge_client_certificate(&amqp, &auth);
            assert_eq!(auth.open_refusal(), None, "{sni:?}");
            assert!(!auth.has_any_grant());
        }
        // No certificate: nothing to judge before open.
        let amqp = context("dps.example", "hub.example");
        let auth = auth(Some("dps.example"), Vec::new());
        judge_client_certificate(&amqp, &auth);
        assert_eq!(auth.open_refusal(), None);
    }

    #[test]
    fn only_a_refusal_naming_an_enrollment_claims_the_certificate() {
        assert!(!claimed_by_dps(&AuthError::UnknownRegistration("d".into())));
        assert!(!claimed_by_dps(&AuthError::InvalidRegistrationId(
            "bad".into()
        )));
        assert!(!claimed_by_dps(&AuthError::UnknownIdScope("s".into())));
        assert!(!claimed_by_dps(&AuthError::WrongCredentialType {
            expected: "symmetric key"
        }));
        assert!(claimed_by_dps(&AuthError::Certificate("thumbprint".into())));
    }
}
