//! DPS registration over AMQP end to end, with `fe2o3-amqp` as the client doing what
//! `azure-iot-provisioning-device-amqp` does on the wire (spec/amqp.md §6): SASL `PLAIN`
//! with a registration token (symmetric key, individual and group) or no SASL and a TLS
//! client certificate (X.509), a receiver and a sender on
//! `{idScope}/registrations/{registrationId}`, `iotdps-register` then
//! `iotdps-get-operationstatus` until `assigned`, over TLS and over WebSocket; and the
//! refusals — wrong key, another registration's links, bad requests, unknown operations —
//! with the SASL outcome or AMQP condition Azure's clients translate.

use std::time::Duration;

use fe2o3_amqp::connection::{ConnectionHandle, Error as ConnectionError};
use fe2o3_amqp::link::{DetachError, Receiver, Sender};
use fe2o3_amqp::sasl_profile::SaslProfile;
use fe2o3_amqp::session::SessionHandle;
use fe2o3_amqp::types::definitions::Error;
use fe2o3_amqp::types::messaging::{
    AmqpValue, ApplicationProperties, Body, Data, Message, MessageId, Outcome, Properties,
};
use fe2o3_amqp::types::primitives::{Binary, SimpleValue, Value};
use fe2o3_amqp::{Connection, Session};
use iotemu::Emulator;
use iotemu::amqp::conditions::symbol_of;
use iotemu::auth::keys::SymmetricKey;
use iotemu::certs::{self, GeneratedCert};
use iotemu_e2e::{
    QUICKSTART_DEVICE_ID, QUICKSTART_GROUP_KEY, QUICKSTART_KEY, QUICKSTART_REGISTRATION_ID,
    dps_token, seconds_from_now, start_emulator, tls_connect, wss_handshake,
};
use serde_json::{Value as Json, json};

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

async fn detach_condition(sender: &mut Sender) -> String {
    match tokio::time::timeout(Duration::from_secs(10), sender.on_detach())
        .await
        .expect("detached in time")
    {
        DetachError::RemoteClosedWithError(e) | DetachError::RemoteDetachedWithError(e) => {
            symbol_of(&e.condition)
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

    // Same CN, another key pair; and no certificate at all.
    let impostor = certs::self_signed_device("amqp-x509", 30).unwrap();
    for certificate in [Some(&impostor), None] {
        let mut connection = try_open(&emulator, None, certificate).await.unwrap();
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
    let stream = iotemu::amqp::websocket::WsByteStream::new(ws);
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
