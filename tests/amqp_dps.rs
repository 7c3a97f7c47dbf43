//! DPS registration over AMQP end to end, with `fe2o3-amqp` as the client doing what
//! `azure-iot-provisioning-device-amqp` does on the wire (spec/amqp.md §6): SASL `PLAIN`
//! with a registration token (symmetric key, individual and group) or no SASL and a TLS
//! client certificate (X.509), a receiver and a sender on
//! `{idScope}/registrations/{registrationId}`, `iotdps-register` then
//! `iotdps-get-operationstatus` until `assigned`, over TLS and over WebSocket; TPM through
//! the SASL `TPM` challenge exchange with a software TPM; and the refusals — wrong key,
//! another registration's links, bad requests, unknown operations, a TPM that cannot answer
//! its challenge — with the SASL outcome or AMQP condition Azure's clients translate.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use fe2o3_amqp::connection::{ConnectionHandle, Error as ConnectionError};
use fe2o3_amqp::link::{DetachError, Receiver, Sender};
use fe2o3_amqp::sasl_profile::SaslProfile;
use fe2o3_amqp::session::SessionHandle;
use fe2o3_amqp::types::definitions::Error;
use fe2o3_amqp::types::messaging::{
    AmqpValue, ApplicationProperties, Body, Data, Message, MessageId, Outcome, Properties,
};
use fe2o3_amqp::types::primitives::Symbol;
use fe2o3_amqp::types::primitives::{Binary, SimpleValue, Value};
use fe2o3_amqp::types::sasl::{
    SaslChallenge, SaslCode, SaslInit, SaslMechanisms, SaslOutcome, SaslResponse,
};
use fe2o3_amqp::{Connection, Session};
use iotemu::Emulator;
use iotemu::SymmetricKey;
use iotemu::certs::{self, GeneratedCert};
use iotemu::internals::amqp::symbol_of;
use iotemu::internals::tpm::SoftwareTpm;
use iotemu_e2e::{
    QUICKSTART_DEVICE_ID, QUICKSTART_GROUP_KEY, QUICKSTART_KEY, QUICKSTART_REGISTRATION_ID,
    dps_token, seconds_from_now, start_emulator, tls_connect, wss_handshake,
};
use serde_json::{Value as Json, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const SCOPE: &str = "0ne00000A0A";

/// A disabled individual enrollment and an X.509 one next to the quickstart fixture.
fn extra_fixture(x509: &GeneratedCert) -> String {
    json!({
        "enrollments": [
            { "registrationId": "amqp-disabled", "attestation": { "type": "symmetricKey",
              "symmetricKey": { "primaryKey": QUICKSTART_KEY } },
              "provisioningStatus": "disabled" },
            { "registrationId": "amqp-x509", "attestation": { "type": "x509",
              "x509": { "clientCertificates": { "primary": { "certificate": x509.cert_pem } } } } }
        ]
    })
    .to_string()
}

async fn emulator_with_x509() -> (Emulator, GeneratedCert) {
    let device = certs::self_signed_device("amqp-x509", 30).unwrap();
    let emulator = start_emulator(Some(&extra_fixture(&device))).await;
    (emulator, device)
}

fn plain(registration_id: &str, key_b64: &str) -> SaslProfile {
    SaslProfile::Plain {
        username: format!("{SCOPE}/registrations/{registration_id}"),
        password: dps_token(SCOPE, registration_id, key_b64, seconds_from_now(600)),
    }
}

/// Opens a connection over TLS, with SASL `profile` or (None) the plain header, presenting
/// `certificate` when given.
async fn try_open(
    emulator: &Emulator,
    profile: Option<SaslProfile>,
    certificate: Option<&GeneratedCert>,
) -> Result<ConnectionHandle<()>, fe2o3_amqp::connection::OpenError> {
    let identity = certificate.map(|c| (c.full_chain_der().to_vec(), c.private_key_der()));
    let tls = tls_connect(emulator, emulator.amqp_port(), identity, Vec::new()).await;
    let mut builder = Connection::builder()
        .container_id("iotemu-dps-test")
        .hostname("localhost");
    if let Some(profile) = profile {
        builder = builder.sasl_profile(profile);
    }
    tokio::time::timeout(Duration::from_secs(10), builder.open_with_stream(tls))
        .await
        .expect("AMQP open in time")
}

/// The link pair of one registration, in the order Node attaches them.
struct Registration {
    receiver: Receiver,
    sender: Sender,
    next_id: u32,
}

impl Registration {
    async fn attach(session: &mut SessionHandle<()>, address: &str) -> Registration {
        let receiver = Receiver::attach(session, "dps-receiver", address)
            .await
            .expect("receiver attached");
        let sender = Sender::attach(session, "dps-sender", address)
            .await
            .expect("sender attached");
        Registration {
            receiver,
            sender,
            next_id: 0,
        }
    }

    /// Sends a request; returns its outcome and correlation id.
    async fn send(
        &mut self,
        properties: &[(&str, &str)],
        body: Body<Value>,
    ) -> (Outcome, MessageId) {
        self.next_id += 1;
        let correlation = MessageId::String(format!("corr-{}", self.next_id));
        let mut app = ApplicationProperties::builder();
        for (name, value) in properties {
            app = app.insert(*name, SimpleValue::String((*value).to_owned()));
        }
        let message = Message::builder()
            .properties(Properties {
                correlation_id: Some(correlation.clone()),
                ..Default::default()
            })
            .application_properties(app.build())
            .body(body)
            .build();
        let outcome = self.sender.send(message).await.expect("request sent");
        (outcome, correlation)
    }

    /// The next answer: its JSON body, `retry-after` and correlation id.
    async fn answer(&mut self) -> (Json, Option<String>, Option<MessageId>) {
        let delivery =
            tokio::time::timeout(Duration::from_secs(10), self.receiver.recv::<Body<Value>>())
                .await
                .expect("answered in time")
                .expect("answer");
        self.receiver.accept(&delivery).await.expect("accepted");
        let message = delivery.into_message();
        let json = match &message.body {
            Body::Data(batch) => {
                assert_eq!(batch.len(), 1, "one Data section");
                serde_json::from_slice(&batch.iter().next().unwrap().0).expect("JSON body")
            }
            other => panic!("answers are Data sections, got {other:?}"),
        };
        let retry_after = message
            .application_properties
            .as_ref()
            .and_then(|p| p.0.get("retry-after"))
            .map(|v| match v {
                SimpleValue::String(s) => s.clone(),
                other => format!("{other:?}"),
            });
        let correlation = message.properties.and_then(|p| p.correlation_id);
        (json, retry_after, correlation)
    }

    /// Registers and polls until DPS decides; returns the final operation status.
    async fn register(&mut self, registration_id: &str) -> Json {
        let body = json!({ "registrationId": registration_id }).to_string();
        let (outcome, correlation) = self
            .send(
                &[
                    ("iotdps-operation-type", "iotdps-register"),
                    ("iotdps-forceRegistration", "false"),
                ],
                data(body.as_bytes()),
            )
            .await;
        assert!(outcome.is_accepted(), "{outcome:?}");
        let (status, retry_after, answered) = self.answer().await;
        assert_eq!(answered, Some(correlation));
        assert_eq!(status["status"], "assigning", "{status}");
        assert_eq!(retry_after.as_deref(), Some("0"));
        let operation = status["operationId"].as_str().unwrap().to_owned();
        for _ in 0..50 {
            let (outcome, correlation) = self
                .send(
                    &[
                        ("iotdps-operation-type", "iotdps-get-operationstatus"),
                        ("iotdps-operation-id", &operation),
                    ],
                    Body::Value(AmqpValue(Value::String(String::new()))),
                )
                .await;
            assert!(outcome.is_accepted(), "{outcome:?}");
            let (status, _, answered) = self.answer().await;
            assert_eq!(answered, Some(correlation));
            if status["status"] != "assigning" {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("still assigning after 50 polls");
    }
}

fn data(bytes: &[u8]) -> Body<Value> {
    Body::Data(vec![Data(Binary::from(bytes.to_vec()))].into())
}

fn address(registration_id: &str) -> String {
    format!("{SCOPE}/registrations/{registration_id}")
}

fn rejected_condition(outcome: Outcome) -> String {
    match outcome {
        Outcome::Rejected(r) => symbol_of(&r.error.expect("rejection error").condition),
        other => panic!("expected a rejection, got {other:?}"),
    }
}

/// The condition `sender` was detached with; an authorization refusal must carry DPS's
/// error JSON (`401002`) and nothing more.
async fn detach_condition(sender: &mut Sender) -> String {
    match tokio::time::timeout(Duration::from_secs(10), sender.on_detach())
        .await
        .expect("detached in time")
    {
        DetachError::RemoteClosedWithError(e) | DetachError::RemoteDetachedWithError(e) => {
            let condition = symbol_of(&e.condition);
            if condition == "amqp:unauthorized-access" {
                let details: Json =
                    serde_json::from_str(e.description.as_deref().unwrap_or_default()).unwrap();
                assert_eq!(details["errorCode"], 401002, "{details}");
            }
            condition
        }
        other => panic!("expected a detach with an error, got {other:?}"),
    }
}

#[tokio::test]
async fn symmetric_key_individual_registration_over_sasl_plain() {
    let emulator = start_emulator(None).await;
    let mut connection = try_open(
        &emulator,
        Some(plain(QUICKSTART_REGISTRATION_ID, QUICKSTART_KEY)),
        None,
    )
    .await
    .expect("SASL PLAIN with the enrollment's key");
    let mut session = Session::begin(&mut connection).await.unwrap();
    let mut registration =
        Registration::attach(&mut session, &address(QUICKSTART_REGISTRATION_ID)).await;
    let status = registration.register(QUICKSTART_REGISTRATION_ID).await;
    assert_eq!(status["status"], "assigned", "{status}");
    let state = &status["registrationState"];
    assert_eq!(state["deviceId"], QUICKSTART_DEVICE_ID);
    assert_eq!(state["assignedHub"], "localhost");
    assert_eq!(state["substatus"], "initialAssignment");
    assert!(
        emulator
            .default_hub()
            .device(QUICKSTART_DEVICE_ID)
            .is_some()
    );

    // The record, by `iotdps-get-registration`.
    let (outcome, _) = registration
        .send(
            &[("iotdps-operation-type", "iotdps-get-registration")],
            Body::Empty,
        )
        .await;
    assert!(outcome.is_accepted(), "{outcome:?}");
    let (record, _, _) = registration.answer().await;
    assert_eq!(record["deviceId"], QUICKSTART_DEVICE_ID);
    assert_eq!(record["status"], "assigned");
    connection.close().await.unwrap();
}

#[tokio::test]
async fn group_enrollment_registration_uses_the_derived_key() {
    let emulator = start_emulator(None).await;
    let registration_id = "amqp-group-device-1";
    let key = SymmetricKey::from_base64(QUICKSTART_GROUP_KEY)
        .unwrap()
        .derive_device_key(registration_id)
        .to_base64();
    let mut connection = try_open(&emulator, Some(plain(registration_id, &key)), None)
        .await
        .expect("SASL PLAIN with the derived key");
    let mut session = Session::begin(&mut connection).await.unwrap();
    let mut registration = Registration::attach(&mut session, &address(registration_id)).await;
    let status = registration.register(registration_id).await;
    assert_eq!(status["status"], "assigned", "{status}");
    assert_eq!(status["registrationState"]["deviceId"], registration_id);
    connection.close().await.unwrap();
}

/// How a refused registration login ends: the connection is closed right after `open` with
/// `amqp:unauthorized-access` and DPS's error JSON; returns the close error.
async fn refused_after_open(emulator: &Emulator, profile: SaslProfile) -> Error {
    let mut connection = try_open(emulator, Some(profile), None)
        .await
        .expect("SASL succeeds and the connection opens");
    let closed = tokio::time::timeout(Duration::from_secs(10), connection.on_close())
        .await
        .expect("closed by the emulator in time");
    match closed {
        Err(ConnectionError::RemoteClosedWithError(e)) => e,
        other => panic!("expected a close with an error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_wrong_key_or_unknown_scope_is_closed_unauthorized_after_open() {
    let (emulator, _) = emulator_with_x509().await;
    let wrong = SymmetricKey::from_base64(QUICKSTART_GROUP_KEY)
        .unwrap()
        .to_base64();
    for profile in [
        plain(QUICKSTART_REGISTRATION_ID, &wrong),
        SaslProfile::Plain {
            username: format!("0ne0000FFFF/registrations/{QUICKSTART_REGISTRATION_ID}"),
            password: dps_token(
                "0ne0000FFFF",
                QUICKSTART_REGISTRATION_ID,
                QUICKSTART_KEY,
                seconds_from_now(600),
            ),
        },
        // The token's `sr` names another registration.
        SaslProfile::Plain {
            username: address(QUICKSTART_REGISTRATION_ID),
            password: dps_token(SCOPE, "someone-else", QUICKSTART_KEY, seconds_from_now(600)),
        },
        // An expired token.
        SaslProfile::Plain {
            username: address(QUICKSTART_REGISTRATION_ID),
            password: dps_token(
                SCOPE,
                QUICKSTART_REGISTRATION_ID,
                QUICKSTART_KEY,
                seconds_from_now(-60),
            ),
        },
        // An X.509 enrollment cannot log in with a key.
        plain("amqp-x509", QUICKSTART_KEY),
        // An id that can never be valid.
        plain("bad id!", QUICKSTART_KEY),
    ] {
        let error = refused_after_open(&emulator, profile.clone()).await;
        assert_eq!(
            symbol_of(&error.condition),
            "amqp:unauthorized-access",
            "{profile:?}"
        );
        let details: Json =
            serde_json::from_str(error.description.as_deref().unwrap_or_default()).unwrap();
        assert_eq!(details["errorCode"], 401002, "{profile:?}");
        assert_eq!(details["message"], "IotHubUnauthorizedAccess");
    }
    // A PLAIN response that is not `authzid NUL user NUL password` is a SASL failure.
    let garbled = try_open(
        &emulator,
        Some(SaslProfile::Plain {
            username: format!("{}\0extra", address(QUICKSTART_REGISTRATION_ID)),
            password: "x".into(),
        }),
        None,
    )
    .await;
    assert!(
        garbled.is_err(),
        "a garbled PLAIN response is refused in SASL"
    );
    // The port still serves.
    let ok = try_open(
        &emulator,
        Some(plain(QUICKSTART_REGISTRATION_ID, QUICKSTART_KEY)),
        None,
    )
    .await;
    assert!(ok.is_ok());
}

#[tokio::test]
async fn a_disabled_enrollment_is_answered_disabled() {
    let (emulator, _) = emulator_with_x509().await;
    let mut connection = try_open(
        &emulator,
        Some(plain("amqp-disabled", QUICKSTART_KEY)),
        None,
    )
    .await
    .expect("a disabled enrollment still authenticates");
    let mut session = Session::begin(&mut connection).await.unwrap();
    let mut registration = Registration::attach(&mut session, &address("amqp-disabled")).await;
    let status = registration.register("amqp-disabled").await;
    assert_eq!(status["status"], "disabled", "{status}");
    assert!(emulator.default_hub().device("amqp-disabled").is_none());
    connection.close().await.unwrap();
}

#[tokio::test]
async fn x509_registration_needs_no_sasl_and_refuses_an_impostor() {
    let (emulator, device) = emulator_with_x509().await;
    let mut connection = try_open(&emulator, None, Some(&device))
        .await
        .expect("plain header with a client certificate");
    let mut session = Session::begin(&mut connection).await.unwrap();
    let mut registration = Registration::attach(&mut session, &address("amqp-x509")).await;
    let status = registration.register("amqp-x509").await;
    assert_eq!(status["status"], "assigned", "{status}");
    let (sha1, _) = device.thumbprints();
    assert_eq!(
        status["registrationState"]["x509"]["certificateInfo"]["sha1Thumbprint"],
        sha1.as_str()
    );
    let hub_device = emulator.default_hub().device("amqp-x509").unwrap();
    assert_eq!(
        hub_device.to_json(false)["authentication"]["type"],
        "selfSigned"
    );
    connection.close().await.unwrap();

    // Same CN, another key pair: refused as DPS refuses it, before any link — the connection
    // is closed right after `open` with amqp:unauthorized-access and DPS's 401002 JSON — and
    // the registration record is untouched.
    let before = emulator.dps().registration("amqp-x509").unwrap();
    let impostor = certs::self_signed_device("amqp-x509", 30).unwrap();
    let mut connection = try_open(&emulator, None, Some(&impostor))
        .await
        .expect("open answered");
    let closed = tokio::time::timeout(Duration::from_secs(10), connection.on_close())
        .await
        .expect("closed by the emulator in time");
    let error = match closed {
        Err(ConnectionError::RemoteClosedWithError(e)) => e,
        other => panic!("expected a close with an error, got {other:?}"),
    };
    assert_eq!(symbol_of(&error.condition), "amqp:unauthorized-access");
    let details: Json =
        serde_json::from_str(error.description.as_deref().unwrap_or_default()).unwrap();
    assert_eq!(details["errorCode"], 401002);
    assert_eq!(details["message"], "IotHubUnauthorizedAccess");
    assert_eq!(emulator.dps().registration("amqp-x509").unwrap(), before);

    // No certificate at all proves nothing before a link names its registration: the
    // registration links are refused when they attach.
    let mut connection = try_open(&emulator, None, None).await.unwrap();
    let mut session = Session::begin(&mut connection).await.unwrap();
    let mut sender = Sender::attach(&mut session, "dps-sender", address("amqp-x509"))
        .await
        .expect("attach answered");
    assert_eq!(
        detach_condition(&mut sender).await,
        "amqp:unauthorized-access"
    );
    let _ = connection.close().await;
}

#[tokio::test]
async fn a_login_opens_only_its_own_registration_and_bad_requests_are_rejected() {
    let emulator = start_emulator(None).await;
    let mut connection = try_open(
        &emulator,
        Some(plain(QUICKSTART_REGISTRATION_ID, QUICKSTART_KEY)),
        None,
    )
    .await
    .unwrap();
    let mut session = Session::begin(&mut connection).await.unwrap();
    let mut other = Sender::attach(&mut session, "other", address("someone-else"))
        .await
        .expect("attach answered");
    assert_eq!(
        detach_condition(&mut other).await,
        "amqp:unauthorized-access"
    );

    let mut registration =
        Registration::attach(&mut session, &address(QUICKSTART_REGISTRATION_ID)).await;
    let (no_type, _) = registration.send(&[], data(b"{}")).await;
    assert_eq!(rejected_condition(no_type), "com.microsoft:argument-error");
    let (unknown_type, _) = registration
        .send(&[("iotdps-operation-type", "iotdps-explode")], data(b"{}"))
        .await;
    assert_eq!(
        rejected_condition(unknown_type),
        "com.microsoft:argument-error"
    );
    let (bad_json, _) = registration
        .send(
            &[("iotdps-operation-type", "iotdps-register")],
            data(b"{not json"),
        )
        .await;
    assert_eq!(rejected_condition(bad_json), "com.microsoft:argument-error");
    let (unknown_operation, _) = registration
        .send(
            &[
                ("iotdps-operation-type", "iotdps-get-operationstatus"),
                ("iotdps-operation-id", "no-such-operation"),
            ],
            Body::Empty,
        )
        .await;
    assert_eq!(rejected_condition(unknown_operation), "amqp:not-found");
    let (no_record, _) = registration
        .send(
            &[("iotdps-operation-type", "iotdps-get-registration")],
            Body::Empty,
        )
        .await;
    assert_eq!(rejected_condition(no_record), "amqp:not-found");

    // A registration login is no service credential: the hub's C2D node stays shut.
    let mut c2d = Sender::attach(&mut session, "c2d", "/messages/devicebound")
        .await
        .expect("attach answered");
    assert_eq!(
        match tokio::time::timeout(Duration::from_secs(10), c2d.on_detach())
            .await
            .expect("detached in time")
        {
            DetachError::RemoteClosedWithError(e) | DetachError::RemoteDetachedWithError(e) =>
                symbol_of(&e.condition),
            other => panic!("expected a detach with an error, got {other:?}"),
        },
        "amqp:unauthorized-access"
    );

    // After all that, the links still register.
    let status = registration.register(QUICKSTART_REGISTRATION_ID).await;
    assert_eq!(status["status"], "assigned", "{status}");
    connection.close().await.unwrap();
}

#[tokio::test]
async fn registration_over_websocket_with_sasl_plain() {
    let emulator = start_emulator(None).await;
    let ws = wss_handshake(&emulator, None, "/$iothub/websocket", Some("AMQPWSB10"))
        .await
        .expect("upgraded to WebSocket");
    let stream = iotemu::internals::amqp::WsByteStream::new(ws);
    let mut connection = Connection::builder()
        .container_id("iotemu-dps-ws")
        .hostname("localhost")
        .sasl_profile(plain(QUICKSTART_REGISTRATION_ID, QUICKSTART_KEY))
        .open_with_stream(stream)
        .await
        .expect("AMQP over WebSocket open");
    let mut session = Session::begin(&mut connection).await.unwrap();
    // azure-iot-sdk-c writes the address as a full URL.
    let mut registration = Registration::attach(
        &mut session,
        &format!("amqps://localhost/{}", address(QUICKSTART_REGISTRATION_ID)),
    )
    .await;
    let status = registration.register(QUICKSTART_REGISTRATION_ID).await;
    assert_eq!(status["status"], "assigned", "{status}");
    assert_eq!(
        status["registrationState"]["deviceId"],
        QUICKSTART_DEVICE_ID
    );
    // Over WebSocket the server may drop the socket right after its `close` (not asserted).
    let _ = connection.close().await;
}

// --- SASL TPM (spec/amqp.md §6.3) -----------------------------------------------------------

/// The SASL frames the server sends during a TPM exchange.
#[derive(Debug)]
enum SaslFrame {
    Challenge(Vec<u8>),
    Outcome(SaslCode),
}

/// Writes one SASL frame (type 1, channel 0) carrying `body`.
async fn write_sasl<S: AsyncWrite + Unpin>(stream: &mut S, body: Vec<u8>) {
    let size = u32::try_from(body.len() + 8).unwrap();
    let mut frame = size.to_be_bytes().to_vec();
    frame.extend_from_slice(&[2, 1, 0, 0]);
    frame.extend_from_slice(&body);
    stream.write_all(&frame).await.unwrap();
}

async fn read_frame_body<S: AsyncRead + Unpin>(stream: &mut S) -> Vec<u8> {
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).await.unwrap();
    let mut rest = vec![0u8; u32::from_be_bytes(size) as usize - 4];
    stream.read_exact(&mut rest).await.unwrap();
    assert!(rest.len() <= 508, "SASL frames stay within 512 bytes");
    rest.split_off(4)
}

async fn read_sasl<S: AsyncRead + Unpin>(stream: &mut S) -> SaslFrame {
    let body = tokio::time::timeout(Duration::from_secs(10), read_frame_body(stream))
        .await
        .expect("a SASL frame in time");
    if let Ok(challenge) = serde_amqp::from_slice::<SaslChallenge>(&body) {
        return SaslFrame::Challenge(challenge.challenge.to_vec());
    }
    let outcome: SaslOutcome = serde_amqp::from_slice(&body).expect("challenge or outcome");
    SaslFrame::Outcome(outcome.code)
}

async fn respond<S: AsyncWrite + Unpin>(stream: &mut S, bytes: Vec<u8>) {
    let response = SaslResponse {
        response: Binary::from(bytes),
    };
    write_sasl(stream, serde_amqp::to_vec(&response).unwrap()).await;
}

/// Runs the device side of SASL `TPM` over `stream` as the Node transport does (the header,
/// init with scope/id/EK, the SRK, `0x00` per segment, then `0x00` + the token `sign` makes
/// after importing the blob). Returns the outcome.
async fn tpm_sasl<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    registration_id: &str,
    tpm: &mut SoftwareTpm,
    sign: impl Fn(&SoftwareTpm) -> String,
) -> SaslCode {
    stream.write_all(b"AMQP\x03\x01\x00\x00").await.unwrap();
    let mut header = [0u8; 8];
    stream.read_exact(&mut header).await.unwrap();
    assert_eq!(&header, b"AMQP\x03\x01\x00\x00");
    let mechanisms: SaslMechanisms =
        serde_amqp::from_slice(&read_frame_body(stream).await).unwrap();
    assert!(
        mechanisms
            .sasl_server_mechanisms
            .0
            .iter()
            .any(|m| m.as_str() == "TPM"),
        "{mechanisms:?}"
    );
    let mut init = vec![0u8];
    init.extend_from_slice(SCOPE.as_bytes());
    init.push(0);
    init.extend_from_slice(registration_id.as_bytes());
    init.push(0);
    init.extend_from_slice(&tpm.endorsement_key().unwrap());
    let init = SaslInit {
        mechanism: Symbol::from("TPM"),
        initial_response: Some(Binary::from(init)),
        hostname: Some("localhost".into()),
    };
    write_sasl(stream, serde_amqp::to_vec(&init).unwrap()).await;
    let mut blob = Vec::new();
    let mut asked_for_srk = false;
    loop {
        match read_sasl(stream).await {
            SaslFrame::Outcome(code) => return code,
            SaslFrame::Challenge(challenge) if challenge.len() == 1 => {
                assert!(!asked_for_srk, "the SRK is asked for once");
                asked_for_srk = true;
                let mut srk = vec![0u8];
                srk.extend_from_slice(&tpm.storage_root_key().unwrap());
                respond(stream, srk).await;
            }
            SaslFrame::Challenge(segment) => {
                let control = segment[0];
                assert_eq!(control & 0x80, 0x80, "segments have the top bit");
                blob.extend_from_slice(&segment[1..]);
                if control & 0x40 == 0 {
                    respond(stream, vec![0]).await;
                } else {
                    tpm.import(&blob).expect("the blob imports into the TPM");
                    let mut answer = vec![0u8];
                    answer.extend_from_slice(sign(tpm).as_bytes());
                    respond(stream, answer).await;
                }
            }
        }
    }
}

fn tpm_token(tpm: &SoftwareTpm, registration_id: &str) -> String {
    tpm.sas_token(
        &address(registration_id),
        Some("registration"),
        seconds_from_now(600),
    )
    .unwrap()
}

/// A TPM individual enrollment for `ek` (and, disabled, for `disabled_ek`).
async fn emulator_with_tpm(ek: &[u8]) -> Emulator {
    let fixture = json!({
        "enrollments": [
            { "registrationId": "amqp-tpm-device", "deviceId": "amqp-tpm-hub-device",
              "attestation": { "type": "tpm", "tpm": { "endorsementKey": BASE64.encode(ek) } } }
        ]
    });
    start_emulator(Some(&fixture.to_string())).await
}

#[tokio::test]
async fn tpm_registration_over_the_sasl_challenge() {
    let mut device = SoftwareTpm::new(2048).unwrap();
    let emulator = emulator_with_tpm(&device.endorsement_key().unwrap()).await;
    let mut tls = tls_connect(&emulator, emulator.amqp_port(), None, Vec::new()).await;
    let outcome = tpm_sasl(&mut tls, "amqp-tpm-device", &mut device, |tpm| {
        tpm_token(tpm, "amqp-tpm-device")
    })
    .await;
    assert_eq!(outcome, SaslCode::Ok);

    // After SASL, the AMQP header and open as usual.
    let mut connection = Connection::builder()
        .container_id("iotemu-dps-tpm")
        .hostname("localhost")
        .open_with_stream(tls)
        .await
        .expect("open after SASL TPM");
    let mut session = Session::begin(&mut connection).await.unwrap();
    let mut registration = Registration::attach(&mut session, &address("amqp-tpm-device")).await;
    let body = json!({
        "registrationId": "amqp-tpm-device",
        "tpm": {
            "endorsementKey": BASE64.encode(device.endorsement_key().unwrap()),
            "storageRootKey": BASE64.encode(device.storage_root_key().unwrap()),
        }
    })
    .to_string();
    let (outcome, _) = registration
        .send(
            &[("iotdps-operation-type", "iotdps-register")],
            data(body.as_bytes()),
        )
        .await;
    assert!(outcome.is_accepted(), "{outcome:?}");
    let (started, _, _) = registration.answer().await;
    let operation = started["operationId"].as_str().unwrap().to_owned();
    let mut status = started;
    for _ in 0..50 {
        if status["status"] != "assigning" {
            break;
        }
        let (outcome, _) = registration
            .send(
                &[
                    ("iotdps-operation-type", "iotdps-get-operationstatus"),
                    ("iotdps-operation-id", &operation),
                ],
                Body::Empty,
            )
            .await;
        assert!(outcome.is_accepted(), "{outcome:?}");
        status = registration.answer().await.0;
    }
    assert_eq!(status["status"], "assigned", "{status}");
    let state = &status["registrationState"];
    assert_eq!(state["deviceId"], "amqp-tpm-hub-device");
    // The hub key comes wrapped for the same TPM.
    let hub_key = BASE64
        .decode(state["tpm"]["authenticationKey"].as_str().unwrap())
        .unwrap();
    device.import(&hub_key).expect("the hub key imports");
    assert!(
        emulator
            .default_hub()
            .device("amqp-tpm-hub-device")
            .is_some()
    );
    connection.close().await.unwrap();
}

#[tokio::test]
async fn tpm_refusals_close_after_open_and_garbage_fails_sasl() {
    let mut device = SoftwareTpm::new(2048).unwrap();
    let emulator = emulator_with_tpm(&device.endorsement_key().unwrap()).await;

    // Another EK, a token not signed with the challenged key, an unknown registration.
    let mut impostor = SoftwareTpm::new(2048).unwrap();
    let cases: Vec<(&str, &mut SoftwareTpm, bool)> = vec![
        ("amqp-tpm-device", &mut impostor, false),
        ("amqp-tpm-device", &mut device, true),
    ];
    for (registration_id, tpm, forge) in cases {
        let mut tls = tls_connect(&emulator, emulator.amqp_port(), None, Vec::new()).await;
        let outcome = tpm_sasl(&mut tls, registration_id, tpm, |tpm| {
            if forge {
                dps_token(
                    SCOPE,
                    registration_id,
                    QUICKSTART_KEY,
                    seconds_from_now(600),
                )
            } else {
                tpm_token(tpm, registration_id)
            }
        })
        .await;
        assert_eq!(outcome, SaslCode::Ok, "refusals come after open");
        let mut connection = Connection::builder()
            .container_id("iotemu-dps-tpm")
            .hostname("localhost")
            .open_with_stream(tls)
            .await
            .expect("open");
        let closed = tokio::time::timeout(Duration::from_secs(10), connection.on_close())
            .await
            .expect("closed in time");
        match closed {
            Err(ConnectionError::RemoteClosedWithError(e)) => {
                assert_eq!(symbol_of(&e.condition), "amqp:unauthorized-access");
                assert!(e.description.unwrap().contains("401002"));
            }
            other => panic!("expected an unauthorized close, got {other:?}"),
        }
    }
    assert!(
        emulator
            .default_hub()
            .device("amqp-tpm-hub-device")
            .is_none()
    );

    // A response nobody asked for, and an init that is not 0 scope 0 id 0 EK: SASL `auth`.
    let mut tls = tls_connect(&emulator, emulator.amqp_port(), None, Vec::new()).await;
    tls.write_all(b"AMQP\x03\x01\x00\x00").await.unwrap();
    let mut header = [0u8; 8];
    tls.read_exact(&mut header).await.unwrap();
    let _mechanisms = read_frame_body(&mut tls).await;
    let init = SaslInit {
        mechanism: Symbol::from("TPM"),
        initial_response: Some(Binary::from(b"\x01not-the-format".to_vec())),
        hostname: None,
    };
    write_sasl(&mut tls, serde_amqp::to_vec(&init).unwrap()).await;
    match read_sasl(&mut tls).await {
        SaslFrame::Outcome(code) => assert_eq!(code, SaslCode::Auth),
        other => panic!("expected the auth outcome, got {other:?}"),
    }
}

/// An injected DPS fault (docs/faults.md) reaches AMQP through the same domain operation: the
/// register is rejected as throttled with `retry-after` in the error info, then, the rule's
/// count used, the links register.
#[tokio::test]
async fn an_injected_throttle_rejects_the_register_with_retry_after() {
    use iotemu::{FaultOperation, FaultRule, Refusal};
    let emulator = start_emulator(None).await;
    let guard = emulator
        .faults()
        .inject(
            FaultRule::new(
                FaultOperation::DpsRegister,
                Refusal::Throttled { retry_after: 7 },
            )
            .count(1),
        )
        .expect("a valid rule");
    let mut connection = try_open(
        &emulator,
        Some(plain(QUICKSTART_REGISTRATION_ID, QUICKSTART_KEY)),
        None,
    )
    .await
    .unwrap();
    let mut session = Session::begin(&mut connection).await.unwrap();
    let mut registration =
        Registration::attach(&mut session, &address(QUICKSTART_REGISTRATION_ID)).await;
    let (outcome, _) = registration
        .send(&[("iotdps-operation-type", "iotdps-register")], data(b"{}"))
        .await;
    let Outcome::Rejected(rejected) = outcome else {
        panic!("expected a rejection, got {outcome:?}");
    };
    let error = rejected.error.expect("rejection error");
    assert_eq!(
        symbol_of(&error.condition),
        "com.microsoft:device-container-throttled"
    );
    let retry_after = error
        .info
        .as_ref()
        .and_then(|info| info.get(&Symbol::from("retry-after")))
        .cloned();
    assert_eq!(retry_after, Some(Value::String("7".into())));
    assert_eq!(guard.hits(), 1);
    let status = registration.register(QUICKSTART_REGISTRATION_ID).await;
    assert_eq!(status["status"], "assigned", "{status}");
    connection.close().await.unwrap();
}
