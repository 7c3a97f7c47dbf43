//! SASL `TPM` for DPS over AMQP (spec/amqp.md §6.3): the TPM attestation of
//! `azure-iot-provisioning-device-amqp` (and azure-iot-sdk-c), carried in SASL frames. The
//! attestation itself is the DPS domain's ([`Dps::tpm_challenge`], then
//! [`Dps::authenticate_registration`] with the token signed by the imported key), exactly as
//! over HTTPS; this file only moves its bytes:
//!
//! ```text
//! C→S sasl-init TPM   0x00 idScope 0x00 registrationId 0x00 EK(TPM2B_PUBLIC)
//! S→C challenge       0x00                                  (one byte: "send your SRK")
//! C→S response        0x00 SRK(TPM2B_PUBLIC)
//! S→C challenge       ctrl ‖ blob[0..470]      ctrl = 0x80 | 0x40 on the last | seq & 0x03
//! C→S response        0x00                                  (after every segment but the last)
//!   …                                                       (the authenticationKey blob, in order)
//! C→S response        0x00 ‖ "SharedAccessSignature sr=…&sig=…&se=…&skn=registration"
//! S→C outcome         ok
//! ```
//!
//! SASL frames may not exceed 512 bytes before `open`, hence the 470-byte segments. A frame
//! that does not have this shape ends the exchange with the SASL outcome `auth`. A device DPS
//! refuses — no TPM enrollment, another EK, a token not signed with the challenged key — gets
//! the outcome `ok` and its connection is closed right after `open` with
//! `amqp:unauthorized-access` and DPS's error JSON, as for `PLAIN` ([`super::dps_sasl`]);
//! a proven device becomes a registration grant of the connection.
//!
//! Only the unsegmented init (first byte `0x00`) is read: Node always sends it, and
//! azure-iot-sdk-c segments it only when scope, id and EK exceed 470 bytes, which an RSA-2048
//! EK does not.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::SystemTime;

use fe2o3_amqp::types::primitives::Binary;
use fe2o3_amqp::types::sasl::{SaslChallenge, SaslCode};

use super::connection_auth::{ConnectionAuth, Grant, GrantSource};
use super::dps_sasl::unauthorized_description;
use crate::auth::Credential;
use crate::dps::Dps;
use crate::dps::tpm_challenge::TpmDevice;

pub(crate) const TPM: &str = "TPM";

/// Largest blob chunk in one challenge: 512-byte SASL frames minus framing and control byte.
const SEGMENT_BYTES: usize = 470;
const CONTROL_SEGMENT: u8 = 0x80;
const CONTROL_LAST: u8 = 0x40;
const SEQUENCE_MASK: u8 = 0x03;
/// The one-byte challenge that asks for the SRK.
const ASK_FOR_SRK: u8 = 0x00;

/// What the server sends next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TpmStep {
    Challenge(Vec<u8>),
    Outcome(SaslCode),
}

impl TpmStep {
    pub(crate) fn challenge(bytes: Vec<u8>) -> SaslChallenge {
        SaslChallenge {
            challenge: Binary::from(bytes),
        }
    }
}

/// Where one connection's exchange stands.
#[derive(Debug, Clone)]
enum State {
    AwaitingSrk {
        endorsement_key: Vec<u8>,
    },
    /// Segments of the blob not sent yet (the first went out already).
    SendingBlob {
        rest: VecDeque<Vec<u8>>,
    },
    AwaitingToken,
    Finished,
}

/// One connection's `TPM` exchange.
#[derive(Clone)]
pub(crate) struct TpmExchange {
    dps: Arc<Dps>,
    auth: Arc<ConnectionAuth>,
    id_scope: String,
    registration_id: String,
    state: State,
}

impl std::fmt::Debug for TpmExchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TpmExchange")
            .field("registration_id", &self.registration_id)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl TpmExchange {
    /// Reads the `sasl-init` payload; `Err` is the outcome to end with.
    pub(crate) fn start(
        dps: Arc<Dps>,
        auth: Arc<ConnectionAuth>,
        initial_response: Option<&[u8]>,
    ) -> Result<(TpmExchange, TpmStep), SaslCode> {
        let remote = auth.peer().remote;
        let Some((id_scope, registration_id, endorsement_key)) =
            initial_response.and_then(parse_init)
        else {
            tracing::info!(%remote, "AMQP SASL TPM init is not 0 idScope 0 registrationId 0 EK");
            return Err(SaslCode::Auth);
        };
        tracing::debug!(%remote, registration = %registration_id, "AMQP SASL TPM: init");
        let exchange = TpmExchange {
            dps,
            auth,
            id_scope,
            registration_id,
            state: State::AwaitingSrk { endorsement_key },
        };
        Ok((exchange, TpmStep::Challenge(vec![ASK_FOR_SRK])))
    }

    /// The answer to the client's next `sasl-response`.
    pub(crate) fn step(&mut self, response: &[u8]) -> TpmStep {
        let state = std::mem::replace(&mut self.state, State::Finished);
        match (state, response.split_first()) {
            (State::AwaitingSrk { endorsement_key }, Some((0, srk))) => {
                self.challenge(&endorsement_key, srk)
            }
            (State::SendingBlob { mut rest }, Some((0, []))) => match rest.pop_front() {
                Some(segment) => {
                    self.state = if rest.is_empty() {
                        State::AwaitingToken
                    } else {
                        State::SendingBlob { rest }
                    };
                    TpmStep::Challenge(segment)
                }
                None => self.malformed("no segment is left to send"),
            },
            (State::AwaitingToken, Some((0, token))) => self.verify(token),
            (state, _) => {
                let at = format!("{state:?}");
                self.malformed(&format!("unexpected response while {at}"))
            }
        }
    }

    /// The SRK arrived: challenge the device through the DPS domain.
    fn challenge(&mut self, endorsement_key: &[u8], storage_root_key: &[u8]) -> TpmStep {
        let device = match TpmDevice::from_tpm2b(endorsement_key, storage_root_key) {
            Ok(device) => device,
            Err(e) => return self.refuse(&format!("unusable EK or SRK: {e}")),
        };
        match self
            .dps
            .tpm_challenge(&self.id_scope, &self.registration_id, device)
        {
            Ok(challenge) => {
                let mut segments: VecDeque<Vec<u8>> = segments(&challenge.authentication_key);
                match segments.pop_front() {
                    Some(first) => {
                        self.state = if segments.is_empty() {
                            State::AwaitingToken
                        } else {
                            State::SendingBlob { rest: segments }
                        };
                        TpmStep::Challenge(first)
                    }
                    None => self.refuse("the challenge is empty"),
                }
            }
            Err(e) => self.refuse(&e.to_string()),
        }
    }

    /// The token signed with the imported key: the registration is proven or refused.
    fn verify(&mut self, token: &[u8]) -> TpmStep {
        let Ok(token) = std::str::from_utf8(token) else {
            return self.malformed("the token is not text");
        };
        match self.dps.authenticate_registration(
            &self.id_scope,
            &self.registration_id,
            Credential::Sas(token),
            SystemTime::now(),
        ) {
            Ok(identity) => {
                tracing::debug!(remote = %self.auth.peer().remote, registration = %self.registration_id, "AMQP SASL TPM: DPS registration accepted");
                self.auth.add(Grant::Registration {
                    id_scope: self.id_scope.clone(),
                    identity,
                    source: GrantSource::SaslTpm,
                });
                TpmStep::Outcome(SaslCode::Ok)
            }
            Err(e) => self.refuse(&e.to_string()),
        }
    }

    /// DPS refuses the device: `ok` now, closed with `amqp:unauthorized-access` after `open`.
    fn refuse(&mut self, reason: &str) -> TpmStep {
        tracing::info!(remote = %self.auth.peer().remote, registration = %self.registration_id, reason, "AMQP SASL TPM: DPS registration refused");
        self.state = State::Finished;
        self.auth.refuse_after_open(unauthorized_description());
        TpmStep::Outcome(SaslCode::Ok)
    }

    fn malformed(&mut self, reason: &str) -> TpmStep {
        tracing::info!(remote = %self.auth.peer().remote, registration = %self.registration_id, reason, "AMQP SASL TPM exchange broken off");
        self.state = State::Finished;
        TpmStep::Outcome(SaslCode::Auth)
    }
}

/// `0x00 idScope 0x00 registrationId 0x00 EK` → (scope, id, EK).
fn parse_init(bytes: &[u8]) -> Option<(String, String, Vec<u8>)> {
    let (&0, rest) = bytes.split_first()? else {
        return None;
    };
    let scope_end = rest.iter().position(|b| *b == 0)?;
    let (scope, rest) = rest.split_at(scope_end);
    let rest = rest.get(1..)?;
    let id_end = rest.iter().position(|b| *b == 0)?;
    let (id, rest) = rest.split_at(id_end);
    let endorsement_key = rest.get(1..)?;
    let scope = std::str::from_utf8(scope).ok()?;
    let id = std::str::from_utf8(id).ok()?;
    if scope.is_empty() || id.is_empty() || endorsement_key.is_empty() {
        return None;
    }
    Some((scope.to_owned(), id.to_owned(), endorsement_key.to_vec()))
}

/// The blob as challenge payloads: control byte + up to [`SEGMENT_BYTES`] each.
fn segments(blob: &[u8]) -> VecDeque<Vec<u8>> {
    let count = blob.chunks(SEGMENT_BYTES).count();
    blob.chunks(SEGMENT_BYTES)
        .enumerate()
        .map(|(index, chunk)| {
            let last = index + 1 == count;
            // Only the low two bits carry the sequence number (azure-iot-sdk-c's SEQUENCE_BYTE).
            let sequence = u8::try_from(index % 4).unwrap_or(0) & SEQUENCE_MASK;
            let control = CONTROL_SEGMENT | if last { CONTROL_LAST } else { 0 } | sequence;
            let mut segment = Vec::with_capacity(chunk.len() + 1);
            segment.push(control);
            segment.extend_from_slice(chunk);
            segment
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::amqp::connection_auth::PeerInfo;
    use crate::dps::DpsTiming;
    use crate::hub::{Hub, Hubs};

    /// A DPS with no enrollment in front of `hubs`, and a fresh connection's auth state.
    fn dps_and_auth(hubs: Vec<Hub>) -> (Arc<Dps>, Arc<ConnectionAuth>) {
        let dps = Arc::new(Dps::new(
            "0ne00000A0A",
            "localhost",
            vec![],
            Arc::new(Hubs::new(hubs)),
            DpsTiming::default(),
        ));
        let auth = Arc::new(ConnectionAuth::new(
            PeerInfo {
                remote: ([127, 0, 0, 1], 40000).into(),
                certificates: Vec::new(),
                server_name: None,
            },
            crate::clock::Clock::default(),
        ));
        (dps, auth)
    }

    /// An exchange for a DPS with no enrollment at all, past a well-formed init.
    fn exchange() -> (TpmExchange, Arc<ConnectionAuth>) {
        let (dps, auth) = dps_and_auth(vec![Hub::new("hub-a", vec![], 10)]);
        let init = b"\x000ne00000A0A\x00tpm-dev\x00ek-bytes";
        let (exchange, first) = TpmExchange::start(dps, auth.clone(), Some(init)).unwrap();
        assert_eq!(first, TpmStep::Challenge(vec![ASK_FOR_SRK]));
        (exchange, auth)
    }

    #[test]
    fn responses_out_of_shape_end_the_exchange_with_auth() {
        for response in [&b""[..], b"\x01srk"] {
            let (mut exchange, auth) = exchange();
            assert_eq!(exchange.step(response), TpmStep::Outcome(SaslCode::Auth));
            // Nothing more is accepted once it ended.
            assert_eq!(exchange.step(b"\x00"), TpmStep::Outcome(SaslCode::Auth));
            assert_eq!(auth.open_refusal(), None);
            assert!(!auth.has_any_grant());
        }
    }

    #[test]
    fn an_unusable_srk_or_no_enrollment_is_refused_after_open() {
        let (mut exchange, auth) = exchange();
        assert_eq!(
            exchange.step(b"\x00not-a-tpm2b-public"),
            TpmStep::Outcome(SaslCode::Ok)
        );
        assert!(auth.open_refusal().unwrap().contains("401002"));
        assert!(!auth.has_any_grant());
        assert_eq!(exchange.step(b"\x00"), TpmStep::Outcome(SaslCode::Auth));
    }

    #[test]
    fn an_init_out_of_shape_is_auth_at_once() {
        let (dps, auth) = dps_and_auth(vec![]);
        for init in [None, Some(&b"PLAIN\x00user\x00pass"[..])] {
            assert!(matches!(
                TpmExchange::start(dps.clone(), auth.clone(), init),
                Err(SaslCode::Auth)
            ));
        }
    }

    proptest::proptest! {
        /// Whatever a client sends — any init, then any responses — the exchange answers
        /// without panicking, and ends (an outcome) at the latest after the SRK step.
        #[test]
        fn arbitrary_frames_never_panic(
            init in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
            responses in proptest::collection::vec(
                proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64), 0..4),
        ) {
            let _ = parse_init(&init);
            let (mut exchange, _) = exchange();
            let mut ended = false;
            for response in &responses {
                if let TpmStep::Outcome(_) = exchange.step(response) {
                    ended = true;
                }
            }
            proptest::prop_assert!(responses.is_empty() || ended);
        }
    }

    #[test]
    fn the_init_payload_splits_into_scope_id_and_an_ek_that_may_hold_zeros() {
        let mut init = b"\x000ne00000A0A\x00my-tpm\x00".to_vec();
        init.extend_from_slice(&[0x01, 0x00, 0x02]);
        assert_eq!(
            parse_init(&init),
            Some((
                "0ne00000A0A".into(),
                "my-tpm".into(),
                vec![0x01, 0x00, 0x02]
            ))
        );
        for bad in [
            &b""[..],
            b"\x01scope\x00id\x00ek",
            b"\x00scope\x00id\x00",
            b"\x00scope\x00id",
            b"\x00\x00id\x00ek",
            b"\x00scope\x00\x00ek",
            b"\x00\xff\xfe\x00id\x00ek",
        ] {
            assert_eq!(parse_init(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn blobs_are_cut_into_numbered_segments_with_the_last_marked() {
        let blob: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
        let parts = segments(&blob);
        assert_eq!(parts.len(), 3);
        let controls: Vec<u8> = parts.iter().map(|p| p[0]).collect();
        assert_eq!(controls, vec![0x80, 0x81, 0xC2]);
        assert!(parts.iter().all(|p| p.len() <= SEGMENT_BYTES + 1));
        let joined: Vec<u8> = parts.iter().flat_map(|p| p[1..].to_vec()).collect();
        assert_eq!(joined, blob);

        let small = segments(&[7, 8, 9]);
        assert_eq!(small, VecDeque::from(vec![vec![0xC0, 7, 8, 9]]));
        // The Node client reads a one-byte challenge as "send the SRK": a segment never is.
        assert!(segments(&[1]).iter().all(|s| s.len() > 1));
    }
}
