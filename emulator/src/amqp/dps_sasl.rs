//! SASL `PLAIN` for DPS over AMQP (spec/amqp.md §1 table, §6; protocol.md §1.3): the
//! symmetric-key registration login of `azure-iot-provisioning-device-amqp` and
//! azure-iot-sdk-c,
//!
//! ```text
//! sasl-init mechanism=PLAIN  initial-response = [authzid] NUL authcid NUL passwd
//!   authcid = {idScope}/registrations/{registrationId}
//!   passwd  = SharedAccessSignature sr={idScope}%2fregistrations%2f{registrationId}&sig=…&se=…&skn=registration
//! ```
//!
//! The token is judged by the same DPS attestation decision as MQTT and HTTPS
//! ([`Dps::authenticate_registration`]); a proven device becomes a
//! [`Grant::Registration`] of the connection, which lets it open the DPS links of that one
//! registration ([`super::dps_link`]).
//!
//! A refused login — unknown scope, no enrollment, wrong key, expired token, a registration
//! id that cannot be valid — is refused the way DPS refuses it: not in SASL but right after
//! `open`, by closing the connection with `amqp:unauthorized-access` and DPS's error JSON as
//! the description (`{"errorCode":401002,…,"message":"IotHubUnauthorizedAccess",…}`, as in
//! the service traces of Azure/azure-iot-sdk-c#815 and the .NET SDK's "AmqpObject.Open …
//! 401002" reports). The SASL outcome is `ok` so that the client reads that close:
//! `azure-iot-amqp-base` 2.5 loses a SASL `auth` outcome (its connect callback gets no
//! error and the registration then fails with an empty `NotConnectedError`), while the close
//! reaches the caller as the error. Only a `PLAIN` response that is not
//! `authzid NUL authcid NUL passwd` gets the SASL `auth` outcome ([`super::sasl`]).

use std::time::SystemTime;

use fe2o3_amqp::types::sasl::SaslCode;

use super::connection_auth::{ConnectionAuth, Grant, GrantSource};
use crate::auth::Credential;
use crate::dps::Dps;
use crate::dps::error::DpsError;

/// DPS's message for a refused device credential.
const UNAUTHORIZED_MESSAGE: &str = "IotHubUnauthorizedAccess";

/// The middle segment of a DPS registration login and link address.
const REGISTRATIONS: &str = "registrations";

/// `{idScope}/registrations/{registrationId}` split into its scope and registration id (case
/// kept; the registration id becomes the device id of a group enrollment). `None` for
/// anything else, so a hub policy login (`{policy}@sas.root.{hub}`) is never mistaken for it.
pub(crate) fn registration_path(path: &str) -> Option<(&str, &str)> {
    let mut segments = path.trim_start_matches('/').split('/');
    match (
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
    ) {
        (Some(scope), Some(middle), Some(id), None)
            if !scope.is_empty()
                && !id.is_empty()
                && middle.eq_ignore_ascii_case(REGISTRATIONS) =>
        {
            Some((scope, id))
        }
        _ => None,
    }
}

/// Verifies a DPS `PLAIN` login (`user` is already known to be a registration path):
/// records the grant, or marks the connection to be closed right after `open`. The SASL
/// outcome is `ok` either way (see the module comment).
pub(crate) fn authenticate_plain(
    dps: &Dps,
    auth: &ConnectionAuth,
    user: &str,
    password: &str,
) -> SaslCode {
    let remote = auth.peer().remote;
    let Some((id_scope, registration_id)) = registration_path(user) else {
        tracing::info!(%remote, user, "AMQP SASL PLAIN user is not {{idScope}}/registrations/{{registrationId}}");
        auth.refuse_after_open(unauthorized_description());
        return SaslCode::Ok;
    };
    match dps.authenticate_registration(
        id_scope,
        registration_id,
        Credential::Sas(password),
        SystemTime::now(),
    ) {
        Ok(identity) => {
            tracing::debug!(%remote, registration = registration_id, "AMQP SASL PLAIN: DPS registration accepted");
            auth.add(Grant::Registration {
                id_scope: id_scope.to_owned(),
                identity,
                source: GrantSource::SaslPlain,
            });
            SaslCode::Ok
        }
        Err(e) => {
            tracing::info!(%remote, registration = registration_id, error = %e, "AMQP SASL PLAIN: DPS registration refused");
            auth.refuse_after_open(unauthorized_description());
            SaslCode::Ok
        }
    }
}

/// The close description of a refused registration login: DPS's error JSON.
pub(crate) fn unauthorized_description() -> String {
    DpsError::unauthorized(UNAUTHORIZED_MESSAGE)
        .to_json()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_description_is_dps_s_error_json() {
        let json: serde_json::Value = serde_json::from_str(&unauthorized_description()).unwrap();
        assert_eq!(json["errorCode"], 401002);
        assert_eq!(json["message"], UNAUTHORIZED_MESSAGE);
        assert!(json["trackingId"].is_string() && json["timestampUtc"].is_string());
    }

    #[test]
    fn registration_paths_keep_their_case_and_nothing_else_matches() {
        assert_eq!(
            registration_path("0ne00000A0A/registrations/My-Device"),
            Some(("0ne00000A0A", "My-Device"))
        );
        assert_eq!(
            registration_path("/0ne00000A0A/Registrations/d1"),
            Some(("0ne00000A0A", "d1"))
        );
        for other in [
            "iothubowner@sas.root.localhost",
            "0ne00000A0A/registrations/",
            "/registrations/d1",
            "0ne00000A0A/registrations/d1/extra",
            "0ne00000A0A/devices/d1",
            "",
        ] {
            assert_eq!(registration_path(other), None, "{other}");
        }
    }
}
