//! DPS registration links over AMQP (spec/amqp.md §6.1): a registration client attaches a
//! receiver (source) and a sender (target) on `{idScope}/registrations/{registrationId}` —
//! Node writes the bare path, azure-iot-sdk-c `amqps://{host}/{idScope}/registrations/…` —
//! sends its requests on the sender and reads the answers on the receiver
//! ([`super::dps_request`] has the message format).
//!
//! Who may attach: a connection that proved this registration, either in SASL — `PLAIN`
//! with a registration token ([`super::dps_sasl`]) or the `TPM` challenge
//! ([`super::dps_sasl_tpm`]) — or, with no SASL at all (Node's X.509
//! transport sends the plain AMQP header), with the TLS client certificate. A certificate
//! is judged before `open` wherever the connection can only be DPS's
//! ([`super::dps_x509_open`]: a refused one never gets this far); where it could be a hub
//! device's, it is judged here on the first attach by the same DPS attestation decision MQTT
//! and HTTPS use. Anything else is attached and at once detached with
//! `amqp:unauthorized-access` and DPS's error JSON (`401002`, `IotHubUnauthorizedAccess`);
//! the reason goes to the log only.
//!
//! Every request drives the DPS registration domain ([`Dps::register`],
//! [`Dps::operation_status`], [`Dps::registration`]) exactly as MQTT and HTTPS do. A
//! request is settled (`accepted`) only once its answer is decided — for a poll that
//! finishes the assignment, once the hub device and the registration record are durable —
//! and the answer then goes out on the paired receiver link (the request/response pairing
//! of [`super::request_response`], keyed by the registration's path). The request link is
//! detached with `amqp:unauthorized-access` when the credential that allowed it expires.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fe2o3_amqp::acceptor::{LinkEndpoint, ListenerSessionHandle};
use fe2o3_amqp::link::Receiver;
use fe2o3_amqp::types::messaging::Body;
use fe2o3_amqp::types::performatives::Attach;
use fe2o3_amqp::types::primitives::Value;

use super::address::Address;
use super::conditions::{self, ARGUMENT_ERROR, NOT_FOUND, UNAUTHORIZED};
use super::connection_auth::{Grant, GrantSource};
use super::dps_request::{DpsOperation, answer, correlation_of, rejection};
use super::dps_sasl::{registration_path, unauthorized_description};
use super::link::{self, Acceptor, LinkSlot, close_with_error};
use super::message::AnyMessage;
use super::request_response;
use super::session::SessionContext;
use crate::auth::{AuthError, Credential};
use crate::dps::Dps;
use crate::dps::attestation::RegistrationIdentity;
use crate::dps::error::DpsError;
use crate::dps::registration::RegistrationReply;

/// How long a credential without an end of its own is trusted before it is looked at again.
const NO_EXPIRY_RECHECK: Duration = Duration::from_secs(3600);

/// Answers an attach on a registration address: the request link or the answer link, once
/// the connection has proven the registration.
pub(crate) async fn on_attach(
    attach: Attach,
    address: &Address,
    session: &mut ListenerSessionHandle,
    ctx: &Arc<SessionContext>,
    acceptor: &Acceptor,
    slot: LinkSlot,
) {
    let Some((id_scope, registration_id)) = registration_path(&address.path) else {
        let error = conditions::error(NOT_FOUND, format!("no node at '{}'", address.raw));
        link::refuse(attach, session, acceptor, error).await;
        return;
    };
    let who = match authorise(ctx, id_scope, registration_id) {
        Ok(who) => who,
        Err(refusal) => {
            tracing::info!(
                registration = registration_id,
                reason = %refusal.reason,
                "AMQP DPS link refused"
            );
            link::refuse(attach, session, acceptor, refusal.error()).await;
            return;
        }
    };
    let node = address.path.to_ascii_lowercase();
    let id_scope = id_scope.to_owned();
    match link::accept(attach, session, acceptor).await {
        Some(LinkEndpoint::Receiver(receiver)) => {
            tracing::debug!(
                registration = who.registration_id(),
                "AMQP DPS request link attached"
            );
            tokio::spawn(serve_requests(
                receiver,
                node,
                id_scope,
                who,
                ctx.clone(),
                slot,
            ));
        }
        Some(LinkEndpoint::Sender(sender)) => {
            tracing::debug!(
                registration = who.registration_id(),
                "AMQP DPS answer link attached"
            );
            let session = ctx.clone();
            tokio::spawn(async move {
                request_response::serve_responses(sender, node, session).await;
                drop(slot);
            });
        }
        None => {}
    }
}

/// Why a registration link is refused: the condition, and the reason for the log.
struct LinkRefusal {
    condition: &'static str,
    reason: String,
}

impl LinkRefusal {
    /// The detach a device sees: DPS's error JSON for an authorization failure (the device
    /// learns only that, as on MQTT and HTTPS; the reason is logged), the problem otherwise.
    fn error(&self) -> fe2o3_amqp::types::definitions::Error {
        if self.condition == UNAUTHORIZED {
            conditions::error(UNAUTHORIZED, unauthorized_description())
        } else {
            conditions::error(self.condition, self.reason.clone())
        }
    }
}

/// The registration this connection proved for `registration_id` in `id_scope`: a grant
/// from SASL, or else the TLS client certificate judged now (and kept as a grant, so the
/// second link of the pair does not judge it again).
fn authorise(
    ctx: &SessionContext,
    id_scope: &str,
    registration_id: &str,
) -> Result<RegistrationIdentity, LinkRefusal> {
    let auth = &ctx.connection.auth;
    if let Some(who) = auth.registration(id_scope, registration_id, auth.now()) {
        return Ok(who);
    }
    let certificates = &auth.peer().certificates;
    if certificates.is_empty() {
        return Err(LinkRefusal {
            condition: UNAUTHORIZED,
            reason: "the connection proved no credential for this registration (SASL PLAIN or TPM, or a TLS client certificate)".into(),
        });
    }
    match ctx.connection.amqp.dps.authenticate_registration(
        id_scope,
        registration_id,
        Credential::ClientCertificates(certificates),
        // A presented credential is judged by the wall clock (`crate::clock`).
        SystemTime::now(),
    ) {
        Ok(who) => {
            auth.add(Grant::Registration {
                id_scope: id_scope.to_owned(),
                identity: who.clone(),
                source: GrantSource::ClientCertificate,
            });
            Ok(who)
        }
        Err(AuthError::InvalidRegistrationId(problem)) => Err(LinkRefusal {
            condition: ARGUMENT_ERROR,
            reason: problem,
        }),
        Err(e) => Err(LinkRefusal {
            condition: UNAUTHORIZED,
            reason: e.to_string(),
        }),
    }
}

/// Reads requests until the link, the connection or the credential ends.
async fn serve_requests(
    mut receiver: Receiver,
    node: String,
    id_scope: String,
    who: RegistrationIdentity,
    session: Arc<SessionContext>,
    slot: LinkSlot,
) {
    let link = receiver.name().to_owned();
    let auth = session.connection.auth.clone();
    let registration_id = who.registration_id().to_owned();
    let expired = auth.until_expired(move |auth, now| {
        auth.registration(&id_scope, &registration_id, now)
            .map(|w| w.expires_at().unwrap_or(now + NO_EXPIRY_RECHECK))
    });
    tokio::pin!(expired);
    let dps = session.connection.amqp.dps.clone();
    loop {
        tokio::select! {
            delivery = receiver.recv::<Body<Value>>() => {
                let delivery = match link::delivered(delivery, &link, "DPS request", "request") {
                    Ok(delivery) => delivery,
                    Err(ended) => {
                        ended.close(receiver).await;
                        break;
                    }
                };
                let (info, message) = delivery.into_parts();
                let correlation = correlation_of(&message);
                let settled = match handle(&dps, &who, &message).await {
                    Ok((status, retry_after, json)) => {
                        tracing::debug!(%link, registration = who.registration_id(), status, "DPS request answered over AMQP");
                        match receiver.accept(info).await {
                            Ok(_) => {
                                send_answer(&session, &node, answer(correlation, status, retry_after, json)).await;
                                Ok(())
                            }
                            Err(e) => Err(e),
                        }
                    }
                    Err(e) => {
                        tracing::info!(%link, registration = who.registration_id(), error = %e, "DPS request over AMQP rejected");
                        receiver.reject(info, rejection(&e)).await.map(drop)
                    }
                };
                if let Err(e) = settled {
                    tracing::debug!(%link, error = %e, "AMQP DPS disposition failed");
                    break;
                }
            }
            _ = &mut expired => {
                let error = conditions::error(UNAUTHORIZED, "the credential that authorised this registration has expired");
                close_with_error(LinkEndpoint::Receiver(receiver), error).await;
                break;
            }
        }
    }
    drop(slot);
}

/// The domain call a request names; the answer's status, `retry-after` and JSON body.
async fn handle(
    dps: &Dps,
    who: &RegistrationIdentity,
    message: &AnyMessage,
) -> Result<(u16, Option<u32>, Vec<u8>), DpsError> {
    let reply = match DpsOperation::parse(message)? {
        DpsOperation::Register { body } => dps.register(who, &body)?,
        DpsOperation::OperationStatus { operation_id } => {
            // The final answer only once the device and the record are durable.
            dps.operation_status(who, &operation_id)?
                .durable()
                .await
                .map_err(DpsError::from)?
        }
        DpsOperation::GetRegistration => {
            let state = dps.registration(who.registration_id()).ok_or_else(|| {
                DpsError::registration_not_found(format!(
                    "No registration found for '{}'",
                    who.registration_id()
                ))
            })?;
            return Ok((200, None, to_json(&state)?));
        }
    };
    let RegistrationReply {
        status,
        retry_after,
        body,
    } = reply;
    Ok((status, retry_after, to_json(&body)?))
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, DpsError> {
    serde_json::to_vec(value)
        .map_err(|e| DpsError::internal(format!("the answer could not be written: {e}")))
}

/// Queues `message` on the registration's answer link (waiting a little for a client that
/// attaches it after sending).
async fn send_answer(session: &SessionContext, node: &str, message: AnyMessage) {
    match session.replies.wait_for(node, None).await {
        Some(tx) => {
            if tx.send(message).await.is_err() {
                tracing::info!(node, "AMQP DPS answer link went away before the answer");
            }
        }
        None => tracing::info!(node, "AMQP DPS request has no answer link; answer dropped"),
    }
}
