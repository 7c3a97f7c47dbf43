//! SASL for the AMQP front (spec/amqp.md §1): the mechanisms the Azure clients pick, by name.
//!
//! * `MSSBCBS` (uamqp, i.e. Python `azure-iot-hub`) and `ANONYMOUS` (pyamqp, rhea,
//!   core-amqp) succeed at once: those clients authenticate afterwards with a CBS
//!   `put-token`, and no node serves anything before that (see [`super::connection_auth`]).
//! * `PLAIN` with user `{policy}@sas.root.{hubName}` and a SAS token as password (the IoT
//!   Hub connection-string samples) is verified here against the hub's policies and becomes
//!   a service grant of the connection; a bad one is a SASL `auth` outcome.
//! * `PLAIN` with user `{idScope}/registrations/{registrationId}` and a registration SAS
//!   token (DPS symmetric key, spec/amqp.md §6) goes to [`super::dps_sasl`], which asks the
//!   DPS attestation decision and records a registration grant; a refused one gets the `ok`
//!   outcome and the connection is closed with `amqp:unauthorized-access` right after
//!   `open`, as DPS does.
//! * `TPM`, DPS's challenge/response mechanism (spec/amqp.md §6.3), runs the exchange of
//!   [`super::dps_sasl_tpm`] over the following `sasl-response`s; its refusals come after
//!   `open` like `PLAIN`'s.
//!
//! Any other mechanism, or a response nothing asked for, is the `auth` outcome.
//!
//! `fe2o3-amqp` clones the acceptor value per connection, so each connection's clone carries
//! that connection's [`ConnectionAuth`] (and through it the TLS peer chain).

use std::sync::Arc;
use std::time::SystemTime;

use fe2o3_amqp::acceptor::SaslAcceptor;
use fe2o3_amqp::acceptor::sasl_acceptor::SaslServerFrame;
use fe2o3_amqp::types::primitives::{Array, Symbol};
use fe2o3_amqp::types::sasl::{SaslCode, SaslInit, SaslOutcome, SaslResponse};

use super::connection_auth::{ConnectionAuth, Grant, GrantSource};
use super::dps_sasl;
use super::dps_sasl_tpm::{TPM, TpmExchange, TpmStep};
use crate::auth::authenticate_service_token;
use crate::dps::Dps;
use crate::hub::{Hub, Hubs};

pub(crate) const MSSBCBS: &str = "MSSBCBS";
pub(crate) const ANONYMOUS: &str = "ANONYMOUS";
pub(crate) const PLAIN: &str = "PLAIN";

/// The user-name marker of a hub policy login: `{policy}@sas.root.{hubName}`.
const SAS_ROOT: &str = "@sas.root.";

/// The per-connection SASL server.
#[derive(Clone)]
pub(crate) struct IotSasl {
    hubs: Arc<Hubs>,
    dps: Arc<Dps>,
    auth: Arc<ConnectionAuth>,
    /// The `TPM` exchange under way, once a client chose that mechanism.
    tpm: Option<TpmExchange>,
}

impl std::fmt::Debug for IotSasl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IotSasl").finish_non_exhaustive()
    }
}

impl IotSasl {
    pub(crate) fn new(hubs: Arc<Hubs>, dps: Arc<Dps>, auth: Arc<ConnectionAuth>) -> IotSasl {
        IotSasl {
            hubs,
            dps,
            auth,
            tpm: None,
        }
    }

    fn outcome(code: SaslCode) -> SaslServerFrame {
        SaslServerFrame::Outcome(SaslOutcome {
            code,
            additional_data: None,
        })
    }

    fn frame(step: TpmStep) -> SaslServerFrame {
        match step {
            TpmStep::Challenge(bytes) => SaslServerFrame::Challenge(TpmStep::challenge(bytes)),
            TpmStep::Outcome(code) => Self::outcome(code),
        }
    }

    /// `PLAIN`: `[authzid] NUL authcid NUL passwd`.
    fn plain(&self, init: &SaslInit) -> SaslCode {
        let remote = self.auth.peer().remote;
        let Some(response) = init.initial_response.as_ref() else {
            tracing::info!(%remote, "AMQP SASL PLAIN without credentials");
            return SaslCode::Auth;
        };
        let mut parts = response.split(|b| *b == 0);
        let (Some(_authzid), Some(user), Some(password), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            tracing::info!(%remote, "AMQP SASL PLAIN response is not authzid\\0user\\0password");
            return SaslCode::Auth;
        };
        let (Ok(user), Ok(password)) = (std::str::from_utf8(user), std::str::from_utf8(password))
        else {
            return SaslCode::Auth;
        };
        if dps_sasl::registration_path(user).is_some() {
            return dps_sasl::authenticate_plain(&self.dps, &self.auth, user, password);
        }
        let Some((policy, hub_name)) = user.split_once(SAS_ROOT) else {
            tracing::info!(%remote, user, "AMQP SASL PLAIN user is neither {{policy}}@sas.root.{{hub}} nor {{idScope}}/registrations/{{registrationId}}");
            return SaslCode::Auth;
        };
        let hint = init
            .hostname
            .as_deref()
            .or(self.auth.peer().server_name.as_deref());
        let Some(hub) = hub_by_name(&self.hubs, hub_name, hint) else {
            tracing::info!(%remote, hub = hub_name, "AMQP SASL PLAIN names no hub of this emulator");
            return SaslCode::Auth;
        };
        match authenticate_service_token(
            hub.policies(),
            hub.host_name(),
            password,
            SystemTime::now(),
        ) {
            Ok(grant) if grant.policy().eq_ignore_ascii_case(policy) => {
                tracing::debug!(%remote, hub = hub.host_name(), policy, "AMQP SASL PLAIN accepted");
                self.auth.add(Grant::Service {
                    hub: hub.host_name().to_owned(),
                    grant,
                    source: GrantSource::SaslPlain,
                });
                SaslCode::Ok
            }
            Ok(grant) => {
                tracing::info!(%remote, user_policy = policy, token_policy = grant.policy(), "AMQP SASL PLAIN user and token name different policies");
                SaslCode::Auth
            }
            Err(e) => {
                tracing::info!(%remote, error = %e, "AMQP SASL PLAIN refused");
                SaslCode::Auth
            }
        }
    }
}

/// The hub a `{hubName}` refers to: the one whose host is `hub_name` or starts with
/// `hub_name.`; with several, the one named by `hint` (SASL hostname or TLS SNI).
pub(crate) fn hub_by_name<'h>(
    hubs: &'h Hubs,
    hub_name: &str,
    hint: Option<&str>,
) -> Option<&'h Arc<Hub>> {
    let matches: Vec<&Arc<Hub>> = hubs
        .all()
        .iter()
        .filter(|h| {
            let host = h.host_name();
            host.eq_ignore_ascii_case(hub_name)
                || host
                    .split('.')
                    .next()
                    .is_some_and(|label| label.eq_ignore_ascii_case(hub_name))
        })
        .collect();
    hint.and_then(|hint| {
        matches
            .iter()
            .find(|h| h.host_name().eq_ignore_ascii_case(hint))
            .copied()
    })
    .or_else(|| matches.first().copied())
}

impl SaslAcceptor for IotSasl {
    fn mechanisms(&self) -> Array<Symbol> {
        Array::from(vec![
            Symbol::from(MSSBCBS),
            Symbol::from(ANONYMOUS),
            Symbol::from(PLAIN),
            Symbol::from(TPM),
        ])
    }

    fn on_init(&mut self, init: SaslInit) -> SaslServerFrame {
        let mechanism = init.mechanism.as_str();
        if mechanism.eq_ignore_ascii_case(MSSBCBS) || mechanism.eq_ignore_ascii_case(ANONYMOUS) {
            return Self::outcome(SaslCode::Ok);
        }
        if mechanism.eq_ignore_ascii_case(PLAIN) {
            return Self::outcome(self.plain(&init));
        }
        if mechanism.eq_ignore_ascii_case(TPM) {
            let started = TpmExchange::start(
                self.dps.clone(),
                self.auth.clone(),
                init.initial_response.as_deref().map(|b| &b[..]),
            );
            return match started {
                Ok((exchange, step)) => {
                    self.tpm = Some(exchange);
                    Self::frame(step)
                }
                Err(code) => Self::outcome(code),
            };
        }
        tracing::info!(remote = %self.auth.peer().remote, mechanism, "AMQP SASL mechanism not offered");
        Self::outcome(SaslCode::Auth)
    }

    fn on_response(&mut self, response: SaslResponse) -> SaslServerFrame {
        // Only `TPM` sends challenges, so only its exchange expects responses.
        match self.tpm.as_mut() {
            Some(exchange) => Self::frame(exchange.step(&response.response)),
            None => Self::outcome(SaslCode::Auth),
        }
    }
}
