//! Device links over AMQP end to end, with `fe2o3-amqp` as the device (spec/amqp.md §5):
//! a CBS device token authorises the device's own links only; telemetry is accepted once
//! stored; C2D dispositions complete, reject or abandon; twin GET, reported PATCH and
//! desired patches; direct methods answered through the link pair.

use std::time::Duration;

use fe2o3_amqp::Session;
use fe2o3_amqp::link::{DetachError, Receiver, Sender};
use fe2o3_amqp::session::SessionHandle;
use fe2o3_amqp::types::definitions::SenderSettleMode;
use fe2o3_amqp::types::messaging::annotations::OwnedKey;
use fe2o3_amqp::types::messaging::{
    ApplicationProperties, Body, Data, Message, MessageAnnotations, MessageId, Outcome, Properties,
};
use fe2o3_amqp::types::primitives::{Binary, SimpleValue, Value};
use iotemu::C2dMessage;
use iotemu::SymmetricKey;
use iotemu::internals::amqp::symbol_of;
use iotemu_e2e::amqp::{CbsClient, Login, connect, device_session};
use iotemu_e2e::{
    QUICKSTART_DEVICE_ID, QUICKSTART_KEY, device_token, seconds_from_now, start_emulator,
};

const WAIT: Duration = Duration::from_secs(10);

async fn start() -> iotemu::Emulator {
    let emulator = start_emulator(None).await;
    let key = SymmetricKey::from_base64(QUICKSTART_KEY).unwrap();
    emulator
        .default_hub()
        .provision_device(QUICKSTART_DEVICE_ID, key.clone(), key, None);
    emulator
}

fn path(tail: &str) -> String {
    format!("/devices/{QUICKSTART_DEVICE_ID}/{tail}")
}

fn data(bytes: &[u8]) -> Body<Value> {
    Body::Data(vec![Data(Binary::from(bytes.to_vec()))].into())
}

fn body_of(message: &Message<Body<Value>>) -> Vec<u8> {
    match &message.body {
        Body::Data(batch) => batch.iter().flat_map(|d| d.0.to_vec()).collect(),
        other => panic!("a Data body expected, got {other:?}"),
    }
}

fn annotation(message: &Message<Body<Value>>, name: &str) -> Option<Value> {
    message
        .message_annotations
        .as_ref()?
        .0
        .iter()
        .find_map(|(k, v)| match k {
            OwnedKey::Symbol(s) if s.as_str() == name => Some(v.clone()),
            _ => None,
        })
}

async fn recv(receiver: &mut Receiver) -> fe2o3_amqp::link::delivery::Delivery<Body<Value>> {
    tokio::time::timeout(WAIT, receiver.recv::<Body<Value>>())
        .await
        .expect("a message in time")
        .expect("a message")
}

#[tokio::test]
async fn telemetry_is_accepted_once_stored_and_only_for_the_proven_device() {
    let emulator = start().await;
    let (mut connection, mut session, _cbs) = device_session(&emulator).await;
    let mut sender = Sender::attach(&mut session, "events", path("messages/events"))
        .await
        .unwrap();
    let message = Message::builder()
        .properties(Properties {
            message_id: Some(MessageId::String("m-1".into())),
            content_type: Some("application/json".into()),
            ..Default::default()
        })
        .application_properties(
            ApplicationProperties::builder()
                .insert("color", SimpleValue::String("red".into()))
                .build(),
        )
        .body(data(br#"{"t":21}"#))
        .build();
    let outcome = sender.send(message).await.unwrap();
    assert!(outcome.is_accepted(), "{outcome:?}");
    let hub = emulator.default_hub();
    let stored = hub.telemetry().messages(Some(QUICKSTART_DEVICE_ID));
    let [stored] = &stored[..] else {
        panic!("one message expected, got {}", stored.len());
    };
    assert_eq!(stored.message_id(), Some("m-1"));
    assert_eq!(stored.body_text(), Some(r#"{"t":21}"#));
    assert_eq!(stored.to_json()["properties"]["color"], "red");
    assert!(hub.connections().is_connected(QUICKSTART_DEVICE_ID));

    // Another device's link is not this token's to open.
    let mut foreign = Sender::attach(&mut session, "foreign", "/devices/other/messages/events")
        .await
        .unwrap();
    let error = match tokio::time::timeout(WAIT, foreign.on_detach())
        .await
        .unwrap()
    {
        DetachError::RemoteClosedWithError(e) | DetachError::RemoteDetachedWithError(e) => e,
        other => panic!("a detach with an error expected, got {other:?}"),
    };
    assert_eq!(symbol_of(&error.condition), "amqp:unauthorized-access");

    // Too large for the hub: rejected with the condition Node maps to MessageTooLargeError.
    let too_large = Message::builder()
        .body(data(&vec![b'x'; 300 * 1024]))
        .build();
    match sender.send(too_large).await.unwrap() {
        Outcome::Rejected(r) => assert_eq!(
            symbol_of(&r.error.unwrap().condition),
            "amqp:link:message-size-exceeded"
        ),
        other => panic!("a rejection expected, got {other:?}"),
    }
    connection.close().await.unwrap();
    // The connection ended: the device is no longer connected.
    for _ in 0..100 {
        if !hub.connections().is_connected(QUICKSTART_DEVICE_ID) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("still connected after the AMQP connection closed");
}

#[tokio::test]
async fn without_a_token_device_links_are_unauthorised() {
    let emulator = start().await;
    let mut connection = connect(&emulator, Login::NoSasl).await;
    let mut session = Session::begin(&mut connection).await.unwrap();
    let mut sender = Sender::attach(&mut session, "events", path("messages/events"))
        .await
        .unwrap();
    let error = match tokio::time::timeout(WAIT, sender.on_detach())
        .await
        .unwrap()
    {
        DetachError::RemoteClosedWithError(e) | DetachError::RemoteDetachedWithError(e) => e,
        other => panic!("a detach with an error expected, got {other:?}"),
    };
    assert_eq!(symbol_of(&error.condition), "amqp:unauthorized-access");
    assert_hub_401002(&error);
    connection.close().await.unwrap();
}

/// The description IoT Hub gives a refused device link: its 401002 error JSON.
fn assert_hub_401002(error: &fe2o3_amqp::types::definitions::Error) {
    let json: serde_json::Value =
        serde_json::from_str(error.description.as_deref().unwrap_or_default())
            .expect("a JSON description");
    assert_eq!(json["errorCode"], 401002, "{json}");
    assert_eq!(json["message"], "Unauthorized");
}

#[tokio::test]
async fn c2d_dispositions_complete_reject_and_abandon() {
    let emulator = start().await;
    let hub = emulator.default_hub().clone();
    for id in ["complete-me", "reject-me", "abandon-me"] {
        let mut message = C2dMessage::new(format!("body of {id}"));
        message.message_id = Some(id.into());
        message.ack = Some("full".into());
        message.properties.insert("k".into(), "v/1".into());
        hub.send_c2d(QUICKSTART_DEVICE_ID, message)
            .unwrap()
            .durable()
            .await
            .unwrap();
    }
    let (mut connection, mut session, _cbs) = device_session(&emulator).await;
    let mut receiver = Receiver::attach(&mut session, "c2d", path("messages/devicebound"))
        .await
        .unwrap();
    let mut abandoned_once = false;
    let mut settled = Vec::new();
    while settled.len() < 3 {
        let delivery = recv(&mut receiver).await;
        let message = delivery.message();
        let id = match message
            .properties
            .as_ref()
            .and_then(|p| p.message_id.clone())
        {
            Some(MessageId::String(id)) => id,
            other => panic!("a string message id expected, got {other:?}"),
        };
        assert_eq!(body_of(message), format!("body of {id}").into_bytes());
        let app = message.application_properties.clone().unwrap();
        assert_eq!(app.0.get("k"), Some(&SimpleValue::String("v/1".into())));
        assert_eq!(
            app.0.get("iothub-ack"),
            Some(&SimpleValue::String("full".into()))
        );
        match id.as_str() {
            "complete-me" => {
                receiver.accept(&delivery).await.unwrap();
                settled.push(id);
            }
            "reject-me" => {
                receiver.reject(&delivery, None).await.unwrap();
                settled.push(id);
            }
            "abandon-me" if !abandoned_once => {
                abandoned_once = true;
                receiver.release(&delivery).await.unwrap();
            }
            _ => {
                receiver.accept(&delivery).await.unwrap();
                settled.push(id);
            }
        }
    }
    assert!(abandoned_once, "the abandoned message came back");
    for _ in 0..100 {
        if hub.c2d_pending(QUICKSTART_DEVICE_ID).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(hub.c2d_pending(QUICKSTART_DEVICE_ID).is_empty());
    // Feedback: two successes (one after an abandon) and one rejection.
    let batch = hub
        .receive_feedback(std::time::SystemTime::now())
        .expect("feedback");
    let body = batch.body().to_string();
    assert_eq!(
        body.matches(r#""statusCode":"Success""#).count(),
        2,
        "{body}"
    );
    assert_eq!(
        body.matches(r#""statusCode":"Rejected""#).count(),
        1,
        "{body}"
    );
    connection.close().await.unwrap();
}

/// A rule that hits the quickstart device's next `operation` once.
fn inject_once(
    emulator: &iotemu::Emulator,
    operation: iotemu::FaultOperation,
    action: impl Into<iotemu::FaultAction>,
) -> iotemu::FaultGuard {
    emulator
        .faults()
        .inject(
            iotemu::FaultRule::new(operation, action)
                .device_id(QUICKSTART_DEVICE_ID)
                .count(1),
        )
        .unwrap()
}

/// A twin request as Node sends it.
fn twin_request(
    operation: &str,
    resource: Option<&str>,
    id: &str,
    body: &[u8],
) -> Message<Body<Value>> {
    let mut annotations =
        MessageAnnotations::builder().insert("operation", Value::String(operation.into()));
    if let Some(resource) = resource {
        annotations = annotations.insert("resource", Value::String(resource.into()));
    }
    Message::builder()
        .properties(Properties {
            correlation_id: Some(MessageId::String(id.into())),
            ..Default::default()
        })
        .message_annotations(annotations.build())
        .body(data(body))
        .build()
}

/// The hub detaches a link with `amqp:connection:forced` (a fault dropped the identity).
async fn expect_forced_detach(detached: impl std::future::Future<Output = DetachError>) {
    let error = match tokio::time::timeout(WAIT, detached).await.unwrap() {
        DetachError::RemoteClosedWithError(e) | DetachError::RemoteDetachedWithError(e) => e,
        other => panic!("a detach with an error expected, got {other:?}"),
    };
    assert_eq!(symbol_of(&error.condition), "amqp:connection:forced");
}

/// The twin link pair as Node attaches it: requests pre-settled, responses on the receiver.
async fn twin_links(session: &mut SessionHandle<()>) -> (Sender, Receiver) {
    let requests = Sender::builder()
        .name("twin-sender")
        .target(path("twin"))
        .sender_settle_mode(SenderSettleMode::Settled)
        .attach(session)
        .await
        .unwrap();
    let responses = Receiver::attach(session, "twin-receiver", path("twin"))
        .await
        .unwrap();
    (requests, responses)
}

#[tokio::test]
async fn twin_get_reported_patch_and_desired_updates() {
    let emulator = start().await;
    let hub = emulator.default_hub().clone();
    let (mut connection, mut session, _cbs) = device_session(&emulator).await;
    let (mut requests, mut responses) = twin_links(&mut session).await;

    requests
        .send(twin_request("GET", None, "g1", b" "))
        .await
        .unwrap();
    let reply = recv(&mut responses).await;
    responses.accept(&reply).await.unwrap();
    let reply = reply.into_message();
    assert_eq!(annotation(&reply, "status"), Some(Value::Int(200)));
    assert_eq!(
        reply.properties.as_ref().unwrap().correlation_id,
        Some(MessageId::String("g1".into()))
    );
    let twin: serde_json::Value = serde_json::from_slice(&body_of(&reply)).unwrap();
    assert_eq!(twin["reported"]["$version"], 1, "{twin}");

    let patch = twin_request(
        "PATCH",
        Some("/properties/reported"),
        "p1",
        br#"{"fw":"1.2"}"#,
    );
    requests.send(patch).await.unwrap();
    let reply = recv(&mut responses).await;
    responses.accept(&reply).await.unwrap();
    let reply = reply.into_message();
    assert_eq!(annotation(&reply, "status"), Some(Value::Int(204)));
    assert_eq!(
        hub.device_twin(QUICKSTART_DEVICE_ID).unwrap().reported["fw"],
        "1.2"
    );

    let bad = twin_request("PATCH", Some("/properties/reported"), "p2", b"not json");
    requests.send(bad).await.unwrap();
    let reply = recv(&mut responses).await;
    responses.accept(&reply).await.unwrap();
    assert_eq!(annotation(reply.message(), "status"), Some(Value::Int(400)));

    let subscribe = twin_request(
        "PUT",
        Some("/notifications/twin/properties/desired"),
        "s1",
        b" ",
    );
    requests.send(subscribe).await.unwrap();
    let reply = recv(&mut responses).await;
    responses.accept(&reply).await.unwrap();
    assert_eq!(annotation(reply.message(), "status"), Some(Value::Int(200)));

    let desired = serde_json::json!({"properties": {"desired": {"interval": 5}}});
    hub.update_twin(QUICKSTART_DEVICE_ID, &desired, None, false)
        .unwrap()
        .durable()
        .await
        .unwrap();
    let pushed = recv(&mut responses).await;
    responses.accept(&pushed).await.unwrap();
    let pushed = pushed.into_message();
    assert!(
        pushed
            .properties
            .as_ref()
            .is_none_or(|p| p.correlation_id.is_none())
    );
    let patch: serde_json::Value = serde_json::from_slice(&body_of(&pushed)).unwrap();
    assert_eq!(patch["interval"], 5, "{patch}");
    assert_eq!(patch["$version"], 2, "{patch}");
    connection.close().await.unwrap();
}

#[tokio::test]
async fn a_direct_method_reaches_the_device_and_its_answer_the_caller() {
    let emulator = start().await;
    let hub = emulator.default_hub().clone();
    let (mut connection, mut session, _cbs) = device_session(&emulator).await;
    let mut requests = Receiver::attach(
        &mut session,
        "methods-receiver",
        path("methods/devicebound"),
    )
    .await
    .unwrap();
    let mut answers = Sender::attach(&mut session, "methods-sender", path("methods/devicebound"))
        .await
        .unwrap();
    let caller = tokio::spawn(async move {
        hub.invoke_method(
            QUICKSTART_DEVICE_ID,
            "reboot",
            serde_json::json!({"delay": 2}),
            WAIT,
            WAIT,
        )
        .await
    });
    let request = recv(&mut requests).await;
    requests.accept(&request).await.unwrap();
    let request = request.into_message();
    assert_eq!(
        request
            .application_properties
            .as_ref()
            .and_then(|p| p.0.get("IoThub-methodname").cloned()),
        Some(SimpleValue::String("reboot".into()))
    );
    assert_eq!(body_of(&request), br#"{"delay":2}"#);
    let id = request.properties.and_then(|p| p.correlation_id).unwrap();
    let answer = Message::builder()
        .properties(Properties {
            correlation_id: Some(id),
            ..Default::default()
        })
        .application_properties(
            ApplicationProperties::builder()
                .insert("IoThub-status", SimpleValue::Int(201))
                .build(),
        )
        .body(data(br#"{"done":true}"#))
        .build();
    answers.send(answer).await.unwrap();
    let response = caller.await.unwrap().unwrap();
    assert_eq!(response.status, 201);
    assert_eq!(response.payload, serde_json::json!({"done": true}));
    connection.close().await.unwrap();
}

#[tokio::test]
async fn an_x509_device_needs_no_token_only_its_certificate() {
    use iotemu::DeviceAuthentication;
    use iotemu::certs;
    let emulator = start().await;
    let cert = certs::self_signed_device("amqp-x509-dev", 30).unwrap();
    let (sha1, _) = cert.thumbprints();
    emulator
        .default_hub()
        .provision_device_with(
            "amqp-x509-dev",
            DeviceAuthentication::SelfSigned {
                primary_thumbprint: Some(sha1),
                secondary_thumbprint: None,
            },
            None,
        )
        .unwrap()
        .wait()
        .unwrap();
    let identity = (cert.full_chain_der().to_vec(), cert.private_key_der());
    let tls =
        iotemu_e2e::tls_connect(&emulator, emulator.amqp_port(), Some(identity), Vec::new()).await;
    let mut connection = fe2o3_amqp::Connection::builder()
        .container_id("x509-device")
        .hostname("localhost")
        .open_with_stream(tls)
        .await
        .unwrap();
    let mut session = Session::begin(&mut connection).await.unwrap();
    let mut sender = Sender::attach(
        &mut session,
        "events",
        "/devices/amqp-x509-dev/messages/events",
    )
    .await
    .unwrap();
    let message = Message::builder()
        .properties(Properties {
            message_id: Some(MessageId::String("x-1".into())),
            ..Default::default()
        })
        .body(data(b"by certificate"))
        .build();
    assert!(sender.send(message).await.unwrap().is_accepted());
    let stored = emulator
        .default_hub()
        .telemetry()
        .messages(Some("amqp-x509-dev"));
    assert_eq!(stored.len(), 1);
    // The certificate proves this device only.
    let mut other = Sender::attach(&mut session, "other", path("messages/events"))
        .await
        .unwrap();
    let error = match tokio::time::timeout(WAIT, other.on_detach()).await.unwrap() {
        DetachError::RemoteClosedWithError(e) | DetachError::RemoteDetachedWithError(e) => e,
        other => panic!("a detach with an error expected, got {other:?}"),
    };
    assert_eq!(symbol_of(&error.condition), "amqp:unauthorized-access");
    assert_hub_401002(&error);
    connection.close().await.unwrap();
}

/// The error a link was detached with by the emulator.
async fn detached_with(sender: &mut Sender) -> String {
    match tokio::time::timeout(WAIT, sender.on_detach())
        .await
        .unwrap()
    {
        DetachError::RemoteClosedWithError(e) | DetachError::RemoteDetachedWithError(e) => {
            symbol_of(&e.condition)
        }
        other => panic!("a detach with an error expected, got {other:?}"),
    }
}

#[tokio::test]
async fn a_newer_connection_of_the_device_detaches_the_older_ones_links() {
    let emulator = start().await;
    let (mut first, mut first_session, _cbs) = device_session(&emulator).await;
    let mut old = Sender::attach(&mut first_session, "events", path("messages/events"))
        .await
        .unwrap();
    let (mut second, mut second_session, _cbs2) = device_session(&emulator).await;
    let mut new = Sender::attach(&mut second_session, "events", path("messages/events"))
        .await
        .unwrap();
    assert_eq!(detached_with(&mut old).await, "amqp:link:detach-forced");
    let message = Message::builder().body(data(b"still here")).build();
    assert!(new.send(message).await.unwrap().is_accepted());
    first.close().await.unwrap();
    // The older connection's end does not disconnect the newer one.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        emulator
            .default_hub()
            .connections()
            .is_connected(QUICKSTART_DEVICE_ID)
    );
    second.close().await.unwrap();
}

#[tokio::test]
async fn device_links_are_detached_when_the_token_expires_unrenewed() {
    let emulator = start().await;
    let mut connection = connect(&emulator, Login::NoSasl).await;
    let mut session = Session::begin(&mut connection).await.unwrap();
    let mut cbs = CbsClient::attach(&mut session).await;
    let token = device_token(
        "localhost",
        QUICKSTART_DEVICE_ID,
        QUICKSTART_KEY,
        seconds_from_now(2),
    );
    let reply = cbs
        .put_token("localhost/devices/x", &token, MessageId::String("t".into()))
        .await;
    assert_eq!(reply.status_code(), Some(200), "{reply:?}");
    let mut sender = Sender::attach(&mut session, "events", path("messages/events"))
        .await
        .unwrap();
    assert_eq!(detached_with(&mut sender).await, "amqp:unauthorized-access");
    assert!(
        !emulator
            .default_hub()
            .connections()
            .is_connected(QUICKSTART_DEVICE_ID)
    );
    connection.close().await.unwrap();
}

/// Time control (docs/faults.md): a token put on `$cbs` keeps the life it had left when put;
/// a plain advance leaves it, an advance with credentials runs it out.
#[tokio::test]
async fn device_links_are_detached_when_the_clock_passes_the_tokens_expiry() {
    let emulator = start().await;
    // The token expires ten minutes from now by the wall clock (device_session).
    let (mut connection, mut session, _cbs) = device_session(&emulator).await;
    let mut sender = Sender::attach(&mut session, "events", path("messages/events"))
        .await
        .unwrap();
    emulator
        .advance(Duration::from_secs(60 * 60))
        .await
        .expect("a valid step");
    emulator
        .advance_with_credentials(Duration::from_secs(5 * 60))
        .await
        .expect("a valid step");
    let message = Message::builder().body(data(b"still valid")).build();
    assert!(sender.send(message).await.unwrap().is_accepted());
    emulator
        .advance_with_credentials(Duration::from_secs(5 * 60))
        .await
        .expect("a valid step");
    assert_eq!(detached_with(&mut sender).await, "amqp:unauthorized-access");
    connection.close().await.unwrap();
}

#[tokio::test]
async fn a_second_c2d_link_replaces_the_first() {
    let emulator = start().await;
    let (mut connection, mut session, _cbs) = device_session(&emulator).await;
    let mut first = Receiver::attach(&mut session, "c2d-1", path("messages/devicebound"))
        .await
        .unwrap();
    let _second = Receiver::attach(&mut session, "c2d-2", path("messages/devicebound"))
        .await
        .unwrap();
    // The client's receiver learns of the detach on its next receive.
    let error = tokio::time::timeout(WAIT, first.recv::<Body<Value>>())
        .await
        .unwrap()
        .expect_err("the first link is detached");
    assert!(
        format!("{error:?}").contains("InternalError"),
        "amqp:internal-error expected: {error:?}"
    );
    connection.close().await.unwrap();
}

#[tokio::test]
async fn malformed_device_requests_get_azure_shaped_answers() {
    let emulator = start().await;
    let (mut connection, mut session, _cbs) = device_session(&emulator).await;
    // An address under /devices/ that is no device node.
    let mut nowhere = Sender::attach(&mut session, "nowhere", path("nonsense/here"))
        .await
        .unwrap();
    assert_eq!(detached_with(&mut nowhere).await, "amqp:not-found");
    // The device cannot send on its C2D address.
    let mut wrong_way = Sender::attach(&mut session, "wrong-way", path("messages/devicebound"))
        .await
        .unwrap();
    assert_eq!(detached_with(&mut wrong_way).await, "amqp:not-allowed");
    // A twin request without annotations, and one with an unknown operation: 400 each.
    let mut requests = Sender::attach(&mut session, "twin-sender", path("twin"))
        .await
        .unwrap();
    let mut responses = Receiver::attach(&mut session, "twin-receiver", path("twin"))
        .await
        .unwrap();
    let bare = Message::builder().body(data(b"")).build();
    requests.send(bare).await.unwrap();
    let reply = recv(&mut responses).await;
    responses.accept(&reply).await.unwrap();
    assert_eq!(annotation(reply.message(), "status"), Some(Value::Int(400)));
    let odd = twin_request("POST", Some("/x"), "o1", b"{}");
    requests.send(odd).await.unwrap();
    let reply = recv(&mut responses).await;
    responses.accept(&reply).await.unwrap();
    assert_eq!(annotation(reply.message(), "status"), Some(Value::Int(400)));
    // A method response to nothing, and one without a correlation id, change nothing.
    let mut answers = Sender::attach(&mut session, "m", path("methods/devicebound"))
        .await
        .unwrap();
    for id in [Some(MessageId::String("99".into())), None] {
        let answer = Message::builder()
            .properties(Properties {
                correlation_id: id,
                ..Default::default()
            })
            .body(data(b"not json"))
            .build();
        assert!(answers.send(answer).await.unwrap().is_accepted());
    }
    // Telemetry with a structured body is rejected, and the link stays usable.
    let mut events = Sender::attach(&mut session, "events", path("messages/events"))
        .await
        .unwrap();
    let structured = Message::builder()
        .body(Body::Value(fe2o3_amqp::types::messaging::AmqpValue(
            Value::List(vec![Value::Int(1)]),
        )))
        .build();
    match events.send(structured).await.unwrap() {
        Outcome::Rejected(r) => assert_eq!(
            symbol_of(&r.error.unwrap().condition),
            "com.microsoft:argument-error"
        ),
        other => panic!("a rejection expected, got {other:?}"),
    }
    let fine = Message::builder().body(data(b"ok")).build();
    assert!(events.send(fine).await.unwrap().is_accepted());
    connection.close().await.unwrap();
}

#[tokio::test]
async fn a_module_sends_telemetry_and_receives_its_inputs() {
    let emulator = start().await;
    let hub = emulator.default_hub().clone();
    let body = format!(
        r#"{{"authentication":{{"type":"sas","symmetricKey":{{"primaryKey":"{QUICKSTART_KEY}","secondaryKey":"{QUICKSTART_KEY}"}}}}}}"#
    );
    let spec = iotemu::ModuleSpec::from_json(QUICKSTART_DEVICE_ID, "m1", body.as_bytes())
        .expect("module JSON");
    hub.create_module(spec).unwrap().durable().await.unwrap();
    let mut connection = connect(&emulator, Login::NoSasl).await;
    let mut session = Session::begin(&mut connection).await.unwrap();
    let mut cbs = CbsClient::attach(&mut session).await;
    let token = iotemu_e2e::build_token(
        &format!("localhost/devices/{QUICKSTART_DEVICE_ID}/modules/m1"),
        &iotemu_e2e::decode_key(QUICKSTART_KEY),
        None,
        seconds_from_now(600),
    );
    let reply = cbs
        .put_token("audience", &token, MessageId::String("t".into()))
        .await;
    assert_eq!(reply.status_code(), Some(200), "{reply:?}");
    let events = path("modules/m1/messages/events");
    let mut sender = Sender::attach(&mut session, "out", events.as_str())
        .await
        .unwrap();
    let output = Message::builder()
        .application_properties(
            ApplicationProperties::builder()
                .insert("iothub-outputname", SimpleValue::String("alerts".into()))
                .build(),
        )
        .body(data(b"from the module"))
        .build();
    assert!(sender.send(output).await.unwrap().is_accepted());
    let stored = hub.telemetry().messages(Some(QUICKSTART_DEVICE_ID));
    let json = stored.first().expect("stored").to_json();
    assert_eq!(json["moduleId"], "m1", "{json}");
    let mut inputs = Receiver::attach(&mut session, "in", events.as_str())
        .await
        .unwrap();
    // The device's own token does not open its module's links, nor the module's the device's.
    let mut device_link = Sender::attach(&mut session, "dev", path("messages/events"))
        .await
        .unwrap();
    assert_eq!(
        detached_with(&mut device_link).await,
        "amqp:unauthorized-access"
    );
    let mut message = C2dMessage::new("to the input");
    message.properties.insert("k".into(), "v".into());
    let id = hub
        .send_module_input(QUICKSTART_DEVICE_ID, "m1", "commands", message)
        .await
        .unwrap();
    let input = recv(&mut inputs).await;
    inputs.accept(&input).await.unwrap();
    assert_eq!(
        annotation(input.message(), "x-opt-input-name"),
        Some(Value::String("commands".into()))
    );
    assert_eq!(
        input
            .message()
            .properties
            .as_ref()
            .and_then(|p| p.message_id.clone()),
        Some(MessageId::String(id))
    );
    assert_eq!(body_of(input.message()), b"to the input");
    connection.close().await.unwrap();
}

#[tokio::test]
async fn a_renewed_token_keeps_the_device_links() {
    let emulator = start().await;
    let mut connection = connect(&emulator, Login::NoSasl).await;
    let mut session = Session::begin(&mut connection).await.unwrap();
    let mut cbs = CbsClient::attach(&mut session).await;
    let audience = format!("localhost%2Fdevices%2F{QUICKSTART_DEVICE_ID}");
    let short = device_token(
        "localhost",
        QUICKSTART_DEVICE_ID,
        QUICKSTART_KEY,
        seconds_from_now(2),
    );
    let reply = cbs
        .put_token(&audience, &short, MessageId::String("1".into()))
        .await;
    assert_eq!(reply.status_code(), Some(200), "{reply:?}");
    let mut sender = Sender::attach(&mut session, "events", path("messages/events"))
        .await
        .unwrap();
    // Node re-puts a fresh token on the same $cbs links before the old one runs out.
    let renewed = device_token(
        "localhost",
        QUICKSTART_DEVICE_ID,
        QUICKSTART_KEY,
        seconds_from_now(600),
    );
    let reply = cbs
        .put_token(&audience, &renewed, MessageId::String("2".into()))
        .await;
    assert_eq!(reply.status_code(), Some(200), "{reply:?}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let message = Message::builder().body(data(b"after renewal")).build();
    assert!(sender.send(message).await.unwrap().is_accepted());
    connection.close().await.unwrap();
}

/// Injected telemetry faults over AMQP (docs/faults.md): a 429 rejects the delivery with IoT
/// Hub's throttling condition and `retry-after`, storing nothing; a drop after the ack
/// accepts (and stores) the message, then detaches the device's links.
#[tokio::test]
async fn injected_telemetry_faults_reject_with_retry_after_or_detach_after_the_accept() {
    use iotemu::{FaultAction, FaultOperation, Refusal};
    let emulator = start().await;
    let (mut connection, mut session, _cbs) = device_session(&emulator).await;
    let mut sender = Sender::attach(&mut session, "events", path("messages/events"))
        .await
        .unwrap();
    let stored = || {
        emulator
            .default_hub()
            .telemetry()
            .messages(Some(QUICKSTART_DEVICE_ID))
            .len()
    };
    let throttle = inject_once(
        &emulator,
        FaultOperation::HubTelemetry,
        Refusal::Throttled { retry_after: 2 },
    );
    let refused = Message::builder().body(data(b"refused")).build();
    match sender.send(refused).await.unwrap() {
        Outcome::Rejected(r) => {
            let error = r.error.expect("an error");
            assert_eq!(
                symbol_of(&error.condition),
                "com.microsoft:device-container-throttled"
            );
            let info = error.info.expect("error info");
            assert_eq!(
                info.get(&fe2o3_amqp::types::primitives::Symbol::from("retry-after")),
                Some(&Value::String("2".into()))
            );
            assert!(
                error
                    .description
                    .unwrap_or_default()
                    .contains(throttle.id()),
                "the description names the rule"
            );
        }
        other => panic!("a rejection expected, got {other:?}"),
    }
    assert_eq!(stored(), 0, "a refused message is not stored");

    let _drop = inject_once(
        &emulator,
        FaultOperation::HubTelemetry,
        FaultAction::Drop { after_ack: true },
    );
    let kept = Message::builder().body(data(b"kept")).build();
    assert!(matches!(
        sender.send(kept).await.unwrap(),
        Outcome::Accepted(_)
    ));
    assert_eq!(stored(), 1, "accepted means stored");
    expect_forced_detach(sender.on_detach()).await;
    let _ = connection.close().await;
}

/// Injected twin faults over AMQP (docs/faults.md): a refused reported patch is answered with
/// the refusal's status and IoT Hub's error, storing nothing; a delayed GET is answered after
/// the delay; a patch dropped after its answer is stored, answered, then the device's links
/// are detached.
#[tokio::test]
async fn injected_twin_faults_answer_the_refusal_delay_the_answer_or_detach_after_it() {
    use iotemu::{FaultAction, FaultOperation, Refusal};
    let emulator = start().await;
    let hub = emulator.default_hub().clone();
    let (mut connection, mut session, _cbs) = device_session(&emulator).await;
    let (mut requests, mut responses) = twin_links(&mut session).await;
    let reported = |hub: &iotemu::Hub| hub.device_twin(QUICKSTART_DEVICE_ID).unwrap().reported;

    let throttle = inject_once(
        &emulator,
        FaultOperation::HubTwinPatch,
        Refusal::Throttled { retry_after: 3 },
    );
    let patch =
        |id: &str, body: &[u8]| twin_request("PATCH", Some("/properties/reported"), id, body);
    requests
        .send(patch("p1", br#"{"fw":"refused"}"#))
        .await
        .unwrap();
    let reply = recv(&mut responses).await;
    responses.accept(&reply).await.unwrap();
    let reply = reply.into_message();
    assert_eq!(annotation(&reply, "status"), Some(Value::Int(429)));
    let body = String::from_utf8_lossy(&body_of(&reply)).to_string();
    assert!(body.contains(throttle.id()), "{body}");
    assert!(
        reported(&hub).get("fw").is_none(),
        "a refused patch is not stored"
    );

    let _slow = inject_once(
        &emulator,
        FaultOperation::HubTwinGet,
        FaultAction::Delay(Duration::from_millis(400)),
    );
    let asked = std::time::Instant::now();
    requests
        .send(twin_request("GET", None, "g1", b" "))
        .await
        .unwrap();
    let reply = recv(&mut responses).await;
    responses.accept(&reply).await.unwrap();
    assert!(
        asked.elapsed() >= Duration::from_millis(400),
        "answered before the delay"
    );
    assert_eq!(annotation(reply.message(), "status"), Some(Value::Int(200)));

    let _drop = inject_once(
        &emulator,
        FaultOperation::HubTwinPatch,
        FaultAction::Drop { after_ack: true },
    );
    requests
        .send(patch("p2", br#"{"fw":"kept"}"#))
        .await
        .unwrap();
    let reply = recv(&mut responses).await;
    responses.accept(&reply).await.unwrap();
    assert_eq!(annotation(reply.message(), "status"), Some(Value::Int(204)));
    assert_eq!(reported(&hub)["fw"], "kept", "answered means stored");
    expect_forced_detach(requests.on_detach()).await;
    let _ = connection.close().await;
}

/// Injected C2D faults over AMQP (docs/faults.md): a drop before sending detaches the device's
/// links and keeps the message queued; a drop after sending detaches them before the device
/// settles, and the message is delivered again on the next link.
#[tokio::test]
async fn injected_c2d_drops_detach_and_keep_the_message_for_the_next_link() {
    use iotemu::{FaultAction, FaultOperation};
    let emulator = start().await;
    let hub = emulator.default_hub().clone();
    for after_ack in [false, true] {
        let body = format!("dropped after_ack={after_ack}");
        let _drop = inject_once(
            &emulator,
            FaultOperation::HubC2d,
            FaultAction::Drop { after_ack },
        );
        hub.send_c2d(QUICKSTART_DEVICE_ID, C2dMessage::new(body.clone()))
            .unwrap()
            .durable()
            .await
            .unwrap();
        let (mut connection, mut session, _cbs) = device_session(&emulator).await;
        let mut receiver = Receiver::attach(&mut session, "c2d", path("messages/devicebound"))
            .await
            .unwrap();
        if after_ack {
            // Sent, then the link is detached before the device settles it.
            let delivery = recv(&mut receiver).await;
            assert_eq!(body_of(delivery.message()), body.clone().into_bytes());
        }
        // The client's receiver learns of the detach on its next receive.
        let error = tokio::time::timeout(WAIT, receiver.recv::<Body<Value>>())
            .await
            .unwrap()
            .expect_err("the C2D link is detached");
        assert!(
            format!("{error:?}").contains("ConnectionForced"),
            "amqp:connection:forced expected: {error:?}"
        );
        assert_eq!(
            hub.c2d_pending(QUICKSTART_DEVICE_ID).len(),
            1,
            "still queued (after_ack={after_ack})"
        );
        let _ = connection.close().await;
        // The next link gets it, and completes it.
        let (mut connection, mut session, _cbs) = device_session(&emulator).await;
        let mut receiver = Receiver::attach(&mut session, "c2d", path("messages/devicebound"))
            .await
            .unwrap();
        let delivery = recv(&mut receiver).await;
        assert_eq!(body_of(delivery.message()), body.into_bytes());
        receiver.accept(&delivery).await.unwrap();
        let deadline = std::time::Instant::now() + WAIT;
        while !hub.c2d_pending(QUICKSTART_DEVICE_ID).is_empty() {
            assert!(std::time::Instant::now() < deadline, "completed");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let _ = connection.close().await;
    }
}

/// A delayed C2D delivery over AMQP (docs/faults.md): sent once the delay has passed.
#[tokio::test]
async fn an_injected_c2d_delay_holds_the_transfer() {
    use iotemu::{FaultAction, FaultOperation};
    let emulator = start().await;
    let delay = Duration::from_millis(400);
    let _slow = inject_once(&emulator, FaultOperation::HubC2d, FaultAction::Delay(delay));
    let (mut connection, mut session, _cbs) = device_session(&emulator).await;
    let mut receiver = Receiver::attach(&mut session, "c2d", path("messages/devicebound"))
        .await
        .unwrap();
    let queued = std::time::Instant::now();
    emulator
        .default_hub()
        .send_c2d(QUICKSTART_DEVICE_ID, C2dMessage::new("late".to_owned()))
        .unwrap()
        .durable()
        .await
        .unwrap();
    let delivery = recv(&mut receiver).await;
    assert!(queued.elapsed() >= delay, "sent before the delay");
    assert_eq!(body_of(delivery.message()), b"late".to_vec());
    receiver.accept(&delivery).await.unwrap();
    let _ = connection.close().await;
}
