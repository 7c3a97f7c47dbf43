//! DPS device registration over HTTPS (protocol.md §3): the same domain calls as over MQTT,
//! so both transports behave identically. HTTP is stateless, so every request authenticates.
//!
//! | route | body in | body out |
//! |---|---|---|
//! | `PUT /{idScope}/registrations/{registrationId}/register` | `DeviceRegistration` | 202 `RegistrationOperationStatus`, `retry-after`, `location` |
//! | `GET /{idScope}/registrations/{registrationId}/operations/{operationId}` | – | 202 while assigning, then 200 `RegistrationOperationStatus` |
//! | `POST /{idScope}/registrations/{registrationId}` | – | `DeviceRegistrationState` |
//!
//! Credentials: a SAS token in `Authorization` or the TLS client certificate; errors are
//! `ProvisioningServiceErrorDetails` with `x-ms-error-code`.
//!
//! TPM devices (protocol.md §3.3): a `register` for a TPM enrollment without a valid token but
//! with `tpm: {endorsementKey, storageRootKey}` in its body is answered 401 with the challenge
//! (`authenticationKey`, `keyName`, no `status`) from [`crate::dps::tpm_challenge`]; the device's
//! next requests carry a SAS token signed with the key it imported, verified like any other.

use std::time::SystemTime;

use hyper::Method;

use super::HttpContext;
use super::reply::{self, Refusal, Reply};
use super::request::Request;
use crate::auth::AuthError;
use crate::dps::attestation::RegistrationIdentity;
use crate::dps::error::DpsError;
use crate::dps::registration::RegistrationReply;
use crate::dps::tpm_challenge::TpmDevice;

/// The check on the head (the credential), run by the router before the body is read; the
/// route's handler makes it again.
pub(super) fn admit(
    ctx: &HttpContext,
    req: &Request<'_>,
    id_scope: &str,
    registration_id: &str,
) -> Result<(), Refusal> {
    match authenticate(ctx, req, id_scope, registration_id) {
        Ok(_) => Ok(()),
        // A TPM device's first register carries no token; its body (EK, SRK) decides.
        Err(e) if may_be_challenged(ctx, req, id_scope, registration_id, &e) => Ok(()),
        Err(e) => Err(Box::new(refused(&e))),
    }
}

/// Whether a refused request may still be answered with a TPM challenge: a `register` (PUT)
/// for a TPM enrollment.
fn may_be_challenged(
    ctx: &HttpContext,
    req: &Request<'_>,
    id_scope: &str,
    registration_id: &str,
    error: &AuthError,
) -> bool {
    req.method == Method::PUT
        && !matches!(error, AuthError::InvalidRegistrationId(_))
        && ctx.dps.is_tpm_registration(id_scope, registration_id)
}

/// The 401 TPM challenge for a register body that carries `tpm`, or `None` when the request
/// is not a TPM device's. A `tpm` object that cannot be read is a 400 (400004).
fn tpm_challenge(
    ctx: &HttpContext,
    req: &Request<'_>,
    id_scope: &str,
    registration_id: &str,
    error: &AuthError,
) -> Option<Reply> {
    if !may_be_challenged(ctx, req, id_scope, registration_id, error) {
        return None;
    }
    let body: serde_json::Value = serde_json::from_slice(&req.body).ok()?;
    let tpm = body.get("tpm")?;
    let device = match TpmDevice::from_registration_json(tpm) {
        Ok(device) => device,
        Err(e) => {
            tracing::warn!(%registration_id, reason = %e, "TPM register refused: unreadable tpm keys");
            return Some(reply::dps_error(&DpsError::bad_request(format!(
                "Invalid request body: tpm: {e}"
            ))));
        }
    };
    Some(
        match ctx.dps.tpm_challenge(id_scope, registration_id, device) {
            Ok(challenge) => reply::json(401, &challenge.to_json()),
            Err(e) => refused(&e),
        },
    )
}

/// `PUT /{idScope}/registrations/{registrationId}/register`
pub(super) fn register(
    ctx: &HttpContext,
    req: &Request<'_>,
    id_scope: &str,
    registration_id: &str,
) -> Reply {
    match authenticate(ctx, req, id_scope, registration_id) {
        Ok(who) => registration_reply(ctx.dps.register(&who, &req.body), id_scope, registration_id),
        Err(e) => {
            tpm_challenge(ctx, req, id_scope, registration_id, &e).unwrap_or_else(|| refused(&e))
        }
    }
}

/// `GET /{idScope}/registrations/{registrationId}/operations/{operationId}`: the final
/// answer goes out only once the device and the registration record are durable.
pub(super) async fn operation_status(
    ctx: &HttpContext,
    req: &Request<'_>,
    id_scope: &str,
    registration_id: &str,
    operation_id: &str,
) -> Reply {
    match authenticate(ctx, req, id_scope, registration_id) {
        Ok(who) => {
            let result = match ctx.dps.operation_status(&who, operation_id) {
                Ok(pending) => pending.durable().await.map_err(DpsError::from),
                Err(e) => Err(e),
            };
            registration_reply(result, id_scope, registration_id)
        }
        Err(e) => refused(&e),
    }
}

/// `POST /{idScope}/registrations/{registrationId}`: the device's current registration.
pub(super) fn status_lookup(
    ctx: &HttpContext,
    req: &Request<'_>,
    id_scope: &str,
    registration_id: &str,
) -> Reply {
    match authenticate(ctx, req, id_scope, registration_id) {
        Ok(who) => match ctx.dps.registration(who.registration_id()) {
            Some(state) => reply::json(200, &state),
            None => reply::dps_error(&DpsError::registration_not_found(format!(
                "No registration found for '{registration_id}'"
            ))),
        },
        Err(e) => refused(&e),
    }
}

/// 400 for a registration id that cannot be valid (checked first), 401 for the rest.
fn refused(error: &AuthError) -> Reply {
    match error {
        AuthError::InvalidRegistrationId(problem) => {
            tracing::warn!(reason = %problem, "HTTPS registration refused");
            reply::dps_error(&DpsError::bad_request(problem.clone()))
        }
        other => reply::unauthorized(other),
    }
}

fn authenticate(
    ctx: &HttpContext,
    req: &Request<'_>,
    id_scope: &str,
    registration_id: &str,
) -> Result<RegistrationIdentity, AuthError> {
    ctx.dps.authenticate_registration(
        id_scope,
        registration_id,
        req.credential(),
        SystemTime::now(),
    )
}

/// 200/202 with the operation status; while assigning, `retry-after` and a `Location` naming
/// the operation to poll.
fn registration_reply(
    result: Result<RegistrationReply, DpsError>,
    id_scope: &str,
    registration_id: &str,
) -> Reply {
    match result {
        Ok(r) => {
            let mut reply = reply::json(r.status, &r.body);
            if let Some(seconds) = r.retry_after {
                reply = reply::with_header(reply, "retry-after", &seconds.to_string());
            }
            if r.status == 202 {
                let location = format!(
                    "/{id_scope}/registrations/{registration_id}/operations/{}",
                    r.body.operation_id
                );
                reply = reply::with_header(reply, "location", &location);
            }
            reply
        }
        Err(e) => reply::dps_error(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dps::model::{RegistrationOperationStatus, RegistrationStatus};

    fn reply_of(status: u16, retry_after: Option<u32>) -> Reply {
        let body = RegistrationOperationStatus {
            operation_id: "4.abc.def".into(),
            status: RegistrationStatus::Assigning,
            registration_state: None,
        };
        let r = RegistrationReply {
            status,
            retry_after,
            body,
        };
        registration_reply(Ok(r), "0ne00000A0A", "dev-1")
    }

    #[test]
    fn assigning_names_the_operation_to_poll_and_when() {
        let reply = reply_of(202, Some(3));
        assert_eq!(reply.status(), 202);
        assert_eq!(reply.headers()["retry-after"], "3");
        assert_eq!(
            reply.headers()["location"],
            "/0ne00000A0A/registrations/dev-1/operations/4.abc.def"
        );
        let done = reply_of(200, None);
        assert!(done.headers().get("location").is_none());
        assert!(done.headers().get("retry-after").is_none());
    }

    #[test]
    fn an_impossible_registration_id_is_400_and_other_failures_401() {
        let invalid = refused(&AuthError::InvalidRegistrationId("bad".into()));
        assert_eq!(invalid.status(), 400);
        assert_eq!(invalid.headers()["x-ms-error-code"], "400004");
        let unknown = refused(&AuthError::UnknownRegistration("dev-1".into()));
        assert_eq!(unknown.status(), 401);
        assert_eq!(unknown.headers()["x-ms-error-code"], "401002");
        let failed = registration_reply(
            Err(DpsError::not_found("Operation x not found")),
            "0ne00000A0A",
            "dev-1",
        );
        assert_eq!(failed.status(), 404);
    }
}
