//! The AMQP front end to end, with `fe2o3-amqp` as the client: both protocol headers on one
//! port, SASL, CBS put-token answers, and C2D sends reaching the hub's device queue with
//! the conditions the service SDKs translate.

use std::time::Duration;

use fe2o3_amqp::Session;
use fe2o3_amqp::link::{DetachError, Receiver, Sender};
use fe2o3_amqp::types::definitions::Error;
use fe2o3_amqp::types::messaging::{
    ApplicationProperties, Body, Message, MessageId, Outcome, Properties,
};
use fe2o3_amqp::types::primitives::{SimpleValue, Timestamp, Uuid, Value};
use iotemu::SymmetricKey;
use iotemu::internals::amqp::symbol_of;
use iotemu::internals::hub::Settlement;
use iotemu_e2e::amqp::{
    CbsClient, Login, authorised_session, c2d_message, connect, connect_ws, owner_token,
    policy_token, raw_tls, read_until_closed, try_connect,
};
use iotemu_e2e::{
    HUB_OWNER_KEY, QUICKSTART_DEVICE_ID, QUICKSTART_KEY, build_token, device_token,
    seconds_from_now, start_emulator, wss_handshake,
};

/// The quickstart emulator with its device registered (as DPS would have done).
async fn start() -> iotemu::Emulator {
    let emulator = start_emulator(None).await;
    let key = SymmetricKey::from_base64(QUICKSTART_KEY).unwrap();
    emulator
        .default_hub()
        .provision_device(QUICKSTART_DEVICE_ID, key.clone(), key, None);
    emulator
}

const SERVICE_KEY: &str = "5rig9dR3TugO6rC8NB2RBSHNpI6/yXXMwj9dck7tfY0=";
const REGISTRY_READ_KEY: &str = "+LBbfU4e7af2Y2I1VL74SgieV6ZDOXMC7lJKLqDSiQw=";

/// The error a link was detached with by the emulator.
async fn detach_error(sender: &mut Sender) -> Error {
    match tokio::time::timeout(Duration::from_secs(10), sender.on_detach())
        .await
        .expect("detached in time")
    {
        DetachError::RemoteClosedWithError(e) | DetachError::RemoteDetachedWithError(e) => e,
        other => panic!("expected a detach with an error, got {other:?}"),
    }
}

fn rejected_condition(outcome: Outcome) -> String {
    match outcome {
        Outcome::Rejected(r) => symbol_of(&r.error.expect("rejection error").condition),
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[tokio::test]
async fn sasl_and_plain_clients_share_the_port_and_put_tokens() {
    let emulator = start().await;
    for login in [Login::NoSasl, Login::Anonymous] {
        let mut connection = connect(&emulator, login.clone()).await;
        let mut session = Session::begin(&mut connection).await.unwrap();
        let mut cbs = CbsClient::attach(&mut session).await;
        // Python's uamqp audience, Node's raw host, pyamqp's sb:// form.
        for audience in ["https://localhost", "localhost", "sb://localhost/"] {
            let reply = cbs
                .put_token(
                    audience,
                    &owner_token(audience),
                    MessageId::String("a".into()),
                )
                .await;
            assert_eq!(
                reply.status_code(),
                Some(200),
                "{login:?} {audience}: {reply:?}"
            );
        }
        connection.close().await.unwrap();
    }
}

#[tokio::test]
async fn put_token_answers_bad_expired_and_unknown_hub_tokens() {
    let emulator = start().await;
    let (mut connection, _session, mut cbs) = authorised_session(&emulator, Login::Anonymous).await;
    let forged = build_token(
        "localhost",
        b"not the key",
        Some("iothubowner"),
        seconds_from_now(600),
    );
    let expired = policy_token(
        "localhost",
        "iothubowner",
        HUB_OWNER_KEY,
        seconds_from_now(-60),
    );
    let other_hub = owner_token("elsewhere.example");
    for (token, status) in [
        (forged.as_str(), 401),
        (expired.as_str(), 401),
        ("not a token", 401),
        (other_hub.as_str(), 404),
    ] {
        let reply = cbs.put_token("localhost", token, MessageId::Ulong(9)).await;
        assert_eq!(reply.status_code(), Some(status), "{token}: {reply:?}");
        assert!(
            reply.description.as_deref().is_some_and(|d| !d.is_empty()),
            "{reply:?}"
        );
    }
    connection.close().await.unwrap();
}

/// rhea ends its session on channel 0 and then closes the connection: the emulator's
/// `close` (a connection frame, sent on channel 0) must still go out after its `end` there.
#[tokio::test]
async fn a_close_after_the_client_ended_session_zero_is_answered() {
    let emulator = start().await;
    let mut connection = connect(&emulator, Login::Anonymous).await;
    let mut session = Session::begin(&mut connection).await.unwrap();
    session.end().await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), connection.close())
        .await
        .expect("the emulator answered the close")
        .unwrap();
}

#[tokio::test]
async fn correlation_ids_keep_the_request_id_type() {
    let emulator = start().await;
    let mut connection = connect(&emulator, Login::Anonymous).await;
    let mut session = Session::begin(&mut connection).await.unwrap();
    let mut cbs = CbsClient::attach(&mut session).await;
    let uuid = Uuid::from(*uuid::Uuid::new_v4().as_bytes());
    for id in [
        MessageId::Ulong(42),
        MessageId::Uuid(uuid),
        MessageId::String("node-style-id".into()),
    ] {
        let reply = cbs
            .put_token("localhost", &owner_token("localhost"), id.clone())
            .await;
        assert_eq!(reply.correlation_id, Some(id));
        assert!(
            matches!(reply.status, Some(SimpleValue::Int(200))),
            "status-code is an AMQP int: {reply:?}"
        );
    }
    connection.close().await.unwrap();
}

#[tokio::test]
async fn a_c2d_message_reaches_the_device_queue_with_its_properties() {
    let emulator = start().await;
    let (mut connection, mut session, _cbs) = authorised_session(&emulator, Login::NoSasl).await;
    let mut sender = Sender::attach(
        &mut session,
        "c2d",
        "amqps://localhost/messages/devicebound",
    )
    .await
    .unwrap();
    let id = uuid::Uuid::new_v4();
    let message = Message::builder()
        .properties(Properties {
            to: Some(format!(
                "/devices/{QUICKSTART_DEVICE_ID}/messages/devicebound"
            )),
            message_id: Some(MessageId::Uuid(Uuid::from(*id.as_bytes()))),
            correlation_id: Some(MessageId::String("corr-1".into())),
            content_type: Some("application/json".into()),
            content_encoding: Some("utf-8".into()),
            absolute_expiry_time: Some(Timestamp::from_milliseconds(
                (seconds_from_now(3600) * 1000) as i64,
            )),
            ..Default::default()
        })
        .application_properties(
            ApplicationProperties::builder()
                .insert("iothub-ack", SimpleValue::String("full".into()))
                .insert("room", SimpleValue::String("kitchen".into()))
                .build(),
        )
        .body(Body::<Value>::Data(
            vec![fe2o3_amqp::types::messaging::Data(
                b"{\"on\":true}".to_vec().into(),
            )]
            .into(),
        ))
        .build();
    let outcome = sender.send(message).await.unwrap();
    assert!(outcome.is_accepted(), "{outcome:?}");

    let queued = emulator.default_hub().c2d_pending(QUICKSTART_DEVICE_ID);
    assert_eq!(queued.len(), 1, "queued once accepted");
    let m = &queued[0].message;
    assert_eq!(m.message_id.as_deref(), Some(id.to_string().as_str()));
    assert_eq!(m.correlation_id.as_deref(), Some("corr-1"));
    assert_eq!(m.content_type.as_deref(), Some("application/json"));
    assert_eq!(m.content_encoding.as_deref(), Some("utf-8"));
    assert_eq!(m.ack.as_deref(), Some("full"));
    assert_eq!(
        m.properties.get("room").map(String::as_str),
        Some("kitchen")
    );
    assert!(m.expiry.is_some());
    assert_eq!(&m.body[..], b"{\"on\":true}");
    connection.close().await.unwrap();
}

#[tokio::test]
async fn c2d_failures_are_rejected_with_the_conditions_sdks_translate() {
    let emulator = start().await;
    let (mut connection, mut session, _cbs) = authorised_session(&emulator, Login::Anonymous).await;
    let mut sender = Sender::attach(&mut session, "c2d", "/messages/devicebound")
        .await
        .unwrap();

    let unknown = sender.send(c2d_message("nobody", b"x")).await.unwrap();
    assert_eq!(rejected_condition(unknown), "amqp:not-found");

    let too_big = sender
        .send(c2d_message(
            QUICKSTART_DEVICE_ID,
            &vec![b'x'; 64 * 1024 + 1],
        ))
        .await
        .unwrap();
    assert_eq!(
        rejected_condition(too_big),
        "amqp:link:message-size-exceeded"
    );

    let mut no_to = c2d_message(QUICKSTART_DEVICE_ID, b"x");
    no_to.properties = Some(Properties::default());
    let no_to = sender.send(no_to).await.unwrap();
    assert_eq!(rejected_condition(no_to), "com.microsoft:argument-error");

    let mut bad_to = c2d_message(QUICKSTART_DEVICE_ID, b"x");
    bad_to.properties = Some(Properties {
        to: Some("/devices/x/messages/events".into()),
        ..Default::default()
    });
    let bad_to = sender.send(bad_to).await.unwrap();
    assert_eq!(rejected_condition(bad_to), "com.microsoft:argument-error");

    for i in 0..50 {
        let ok = sender
            .send(c2d_message(
                QUICKSTART_DEVICE_ID,
                format!("m{i}").as_bytes(),
            ))
            .await
            .unwrap();
        assert!(ok.is_accepted(), "message {i}: {ok:?}");
    }
    let full = sender
        .send(c2d_message(QUICKSTART_DEVICE_ID, b"one too many"))
        .await
        .unwrap();
    assert_eq!(rejected_condition(full), "amqp:resource-limit-exceeded");
    assert_eq!(
        emulator
            .default_hub()
            .c2d_pending(QUICKSTART_DEVICE_ID)
            .len(),
        50
    );
    connection.close().await.unwrap();
}

/// A `hub.c2d.send` refusal (docs/faults.md; `--azure-throttles` installs one as a rate) is
/// IoT Hub's throttling condition with `retry-after` in the error's info, nothing queued.
#[tokio::test]
async fn a_throttled_c2d_send_is_rejected_with_the_throttling_condition_and_retry_after() {
    use iotemu::{FaultOperation, FaultRule, Refusal};
    let emulator = start().await;
    let _guard = emulator
        .faults()
        .inject(
            FaultRule::new(
                FaultOperation::HubC2dSend,
                Refusal::Throttled { retry_after: 3 },
            )
            .device_id(QUICKSTART_DEVICE_ID)
            .count(1),
        )
        .expect("a valid rule");
    let (mut connection, mut session, _cbs) = authorised_session(&emulator, Login::Anonymous).await;
    let mut sender = Sender::attach(&mut session, "c2d", "/messages/devicebound")
        .await
        .unwrap();
    let refused = sender
        .send(c2d_message(QUICKSTART_DEVICE_ID, b"x"))
        .await
        .unwrap();
    let Outcome::Rejected(rejected) = refused else {
        panic!("expected a rejection, got {refused:?}");
    };
    let error = rejected.error.expect("rejection error");
    assert_eq!(
        symbol_of(&error.condition),
        "com.microsoft:device-container-throttled"
    );
    let info = error.info.expect("the error's info");
    let retry_after = info
        .iter()
        .find(|(k, _)| k.as_str() == "retry-after")
        .map(|(_, v)| v.clone());
    assert_eq!(retry_after, Some(Value::String("3".into())));
    assert!(
        emulator
            .default_hub()
            .c2d_pending(QUICKSTART_DEVICE_ID)
            .is_empty()
    );
    // The rule's count is used: the next send is queued.
    let ok = sender
        .send(c2d_message(QUICKSTART_DEVICE_ID, b"y"))
        .await
        .unwrap();
    assert!(ok.is_accepted(), "{ok:?}");
    connection.close().await.unwrap();
}

#[tokio::test]
async fn service_links_need_a_token_with_service_connect() {
    let emulator = start().await;
    // No CBS at all.
    let mut connection = connect(&emulator, Login::NoSasl).await;
    let mut session = Session::begin(&mut connection).await.unwrap();
    let mut sender = Sender::attach(&mut session, "c2d", "/messages/devicebound")
        .await
        .unwrap();
    let error = detach_error(&mut sender).await;
    assert_eq!(symbol_of(&error.condition), "amqp:unauthorized-access");

    // A RegistryRead token puts fine, but cannot open the C2D link.
    let mut cbs = CbsClient::attach(&mut session).await;
    let token = policy_token(
        "localhost",
        "registryRead",
        REGISTRY_READ_KEY,
        seconds_from_now(600),
    );
    let reply = cbs
        .put_token("localhost", &token, MessageId::Ulong(1))
        .await;
    assert_eq!(reply.status_code(), Some(200));
    let mut sender = Sender::attach(&mut session, "c2d-2", "/messages/devicebound")
        .await
        .unwrap();
    let error = detach_error(&mut sender).await;
    assert_eq!(symbol_of(&error.condition), "amqp:unauthorized-access");
    assert!(
        error
            .description
            .as_deref()
            .unwrap_or_default()
            .contains("ServiceConnect"),
        "{error:?}"
    );

    // The `service` policy has ServiceConnect.
    let token = policy_token("localhost", "service", SERVICE_KEY, seconds_from_now(600));
    let reply = cbs
        .put_token("localhost", &token, MessageId::Ulong(2))
        .await;
    assert_eq!(reply.status_code(), Some(200));
    let mut sender = Sender::attach(&mut session, "c2d-3", "/messages/devicebound")
        .await
        .unwrap();
    let ok = sender
        .send(c2d_message(QUICKSTART_DEVICE_ID, b"hi"))
        .await
        .unwrap();
    assert!(ok.is_accepted(), "{ok:?}");
    connection.close().await.unwrap();
}

#[tokio::test]
async fn sasl_plain_with_a_policy_token_authorises_the_connection() {
    let emulator = start().await;
    let password = owner_token("localhost/messages/events");
    let mut connection = connect(
        &emulator,
        Login::Plain("iothubowner@sas.root.localhost".into(), password),
    )
    .await;
    let mut session = Session::begin(&mut connection).await.unwrap();
    let mut sender = Sender::attach(&mut session, "c2d", "/messages/devicebound")
        .await
        .unwrap();
    let ok = sender
        .send(c2d_message(QUICKSTART_DEVICE_ID, b"hi"))
        .await
        .unwrap();
    assert!(ok.is_accepted(), "{ok:?}");
    connection.close().await.unwrap();

    let forged = build_token(
        "localhost",
        b"nope",
        Some("iothubowner"),
        seconds_from_now(600),
    );
    let refused = try_connect(
        &emulator,
        Login::Plain("iothubowner@sas.root.localhost".into(), forged),
    )
    .await;
    assert!(
        refused.is_err(),
        "a bad PLAIN password is a SASL auth failure"
    );
    // DPS refuses a registration login after `open` (tests/amqp_dps.rs has the details).
    let mut dps = try_connect(
        &emulator,
        Login::Plain(
            "0ne00000A0A/registrations/x".into(),
            "SharedAccessSignature sr=x&sig=y&se=1".into(),
        ),
    )
    .await
    .expect("DPS logins are judged after open");
    let closed = tokio::time::timeout(Duration::from_secs(10), dps.on_close())
        .await
        .expect("closed in time");
    assert!(
        matches!(&closed, Err(fe2o3_amqp::connection::Error::RemoteClosedWithError(e))
            if symbol_of(&e.condition) == "amqp:unauthorized-access"),
        "DPS PLAIN with a forged token is refused: {closed:?}"
    );
}

#[tokio::test]
async fn unknown_addresses_are_not_found() {
    let emulator = start().await;
    let (mut connection, mut session, _cbs) = authorised_session(&emulator, Login::Anonymous).await;
    let mut sender = Sender::attach(&mut session, "x", "/no/such/node/here/really")
        .await
        .unwrap();
    let error = detach_error(&mut sender).await;
    assert_eq!(symbol_of(&error.condition), "amqp:not-found");
    connection.close().await.unwrap();
}

#[tokio::test]
async fn amqp_over_websocket_echoes_the_subprotocol_and_sends_c2d() {
    let emulator = start().await;
    for (path, subprotocol, login) in [
        ("/$servicebus/websocket/", "AMQPWSB10", Login::Anonymous),
        ("/$iothub/websocket", "AMQPWSB10", Login::NoSasl),
        ("/$servicebus/websocket?x=1", "amqpwsb10", Login::Anonymous),
    ] {
        let mut connection = connect_ws(&emulator, path, subprotocol, login).await;
        let mut session = Session::begin(&mut connection).await.unwrap();
        let mut cbs = CbsClient::attach(&mut session).await;
        let reply = cbs
            .put_token("localhost", &owner_token("localhost"), MessageId::Ulong(1))
            .await;
        assert_eq!(reply.status_code(), Some(200), "{path}: {reply:?}");
        let mut sender = Sender::attach(&mut session, "c2d", "/messages/devicebound")
            .await
            .unwrap();
        let ok = sender
            .send(c2d_message(QUICKSTART_DEVICE_ID, path.as_bytes()))
            .await
            .unwrap();
        assert!(ok.is_accepted(), "{path}: {ok:?}");
        // The emulator drops the socket after answering `close`, so the client's own
        // WebSocket/TLS shutdown may find the pipe gone; the AMQP close itself happened.
        let _ = connection.close().await;
    }
    assert_eq!(
        emulator
            .default_hub()
            .c2d_pending(QUICKSTART_DEVICE_ID)
            .len(),
        3
    );
    // MQTT still gets MQTT on the IoT Hub path; the Service Bus path is AMQP only.
    assert!(
        wss_handshake(&emulator, None, "/$iothub/websocket", Some("mqtt"))
            .await
            .is_ok()
    );
    assert_eq!(
        wss_handshake(&emulator, None, "/$servicebus/websocket", Some("mqtt"))
            .await
            .err(),
        Some(400)
    );
}

/// Sends a C2D message with `iothub-ack: full` and id `id` over `sender`.
async fn send_with_full_ack(sender: &mut Sender, id: &str) {
    let mut message = c2d_message(QUICKSTART_DEVICE_ID, b"ack me");
    if let Some(p) = message.properties.as_mut() {
        p.message_id = Some(MessageId::String(id.into()));
    }
    message.application_properties = Some(
        ApplicationProperties::builder()
            .insert("iothub-ack", SimpleValue::String("full".into()))
            .build(),
    );
    let outcome = sender.send(message).await.unwrap();
    assert!(outcome.is_accepted(), "{outcome:?}");
}

/// The device settles its next C2D message as it would over HTTPS.
fn device_settles(emulator: &iotemu::Emulator, settlement: Settlement) {
    let hub = emulator.default_hub();
    let now = std::time::SystemTime::now();
    let locked = hub
        .c2d_receive_locked(QUICKSTART_DEVICE_ID, now)
        .expect("a message for the device");
    let token = locked.lock.expect("locked").token;
    hub.c2d_settle(QUICKSTART_DEVICE_ID, &token, settlement, now)
        .unwrap()
        .wait()
        .unwrap();
}

async fn next_feedback(
    receiver: &mut Receiver,
) -> fe2o3_amqp::link::delivery::Delivery<Body<Value>> {
    tokio::time::timeout(Duration::from_secs(10), receiver.recv::<Body<Value>>())
        .await
        .expect("feedback in time")
        .expect("feedback message")
}

fn feedback_records(
    delivery: &fe2o3_amqp::link::delivery::Delivery<Body<Value>>,
) -> serde_json::Value {
    let message = delivery.message();
    let properties = message.properties.as_ref().expect("properties");
    assert_eq!(
        properties
            .content_type
            .as_ref()
            .map(|c| c.to_string())
            .as_deref(),
        Some("application/vnd.microsoft.iothub.feedback.json")
    );
    assert_eq!(
        properties.user_id.as_ref().map(|u| u.to_vec()),
        Some(b"localhost".to_vec()),
        "user-id is the hub name"
    );
    let enqueued = message
        .message_annotations
        .as_ref()
        .and_then(|a| {
            a.0.get(&fe2o3_amqp::types::messaging::annotations::OwnedKey::from(
                "iothub-enqueuedtime",
            ))
        })
        .cloned();
    assert!(
        matches!(enqueued, Some(Value::Timestamp(_))),
        "iothub-enqueuedtime annotation: {enqueued:?}"
    );
    let Body::Data(batch) = &message.body else {
        panic!("feedback body must be Data, got {:?}", message.body);
    };
    let bytes: Vec<u8> = batch.iter().flat_map(|d| d.0.to_vec()).collect();
    serde_json::from_slice(&bytes).expect("JSON array")
}

#[tokio::test]
async fn feedback_arrives_after_the_device_settles_and_goes_once_accepted() {
    let emulator = start().await;
    let (mut connection, mut session, _cbs) = authorised_session(&emulator, Login::NoSasl).await;
    let mut sender = Sender::attach(&mut session, "c2d", "/messages/devicebound")
        .await
        .unwrap();
    let mut receiver =
        Receiver::attach(&mut session, "feedback", "/messages/serviceBound/feedback")
            .await
            .unwrap();

    send_with_full_ack(&mut sender, "done-1").await;
    device_settles(&emulator, Settlement::Complete);
    let delivery = next_feedback(&mut receiver).await;
    let records = feedback_records(&delivery);
    assert_eq!(records[0]["originalMessageId"], "done-1");
    assert_eq!(records[0]["statusCode"], "Success");
    assert_eq!(records[0]["deviceId"], QUICKSTART_DEVICE_ID);
    // Released: the batch comes back.
    receiver.release(&delivery).await.unwrap();
    let again = next_feedback(&mut receiver).await;
    assert_eq!(feedback_records(&again)[0]["originalMessageId"], "done-1");
    receiver.accept(&again).await.unwrap();

    send_with_full_ack(&mut sender, "refused-1").await;
    device_settles(&emulator, Settlement::Reject);
    let delivery = next_feedback(&mut receiver).await;
    let records = feedback_records(&delivery);
    assert_eq!(records[0]["originalMessageId"], "refused-1");
    assert_eq!(records[0]["statusCode"], "Rejected");
    receiver.accept(&delivery).await.unwrap();

    // Accepted batches are gone: nothing is left to read.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        emulator
            .default_hub()
            .receive_feedback(std::time::SystemTime::now())
            .is_none()
    );
    // File notifications attach and stay open.
    let _files = Receiver::attach(
        &mut session,
        "files",
        "/messages/serviceBound/filenotifications",
    )
    .await
    .unwrap();
    connection.close().await.unwrap();
}

#[tokio::test]
async fn links_are_detached_when_their_token_expires() {
    let emulator = start().await;
    let mut connection = connect(&emulator, Login::Anonymous).await;
    let mut session = Session::begin(&mut connection).await.unwrap();
    let mut cbs = CbsClient::attach(&mut session).await;
    let token = policy_token("localhost", "service", SERVICE_KEY, seconds_from_now(2));
    let reply = cbs
        .put_token("localhost", &token, MessageId::Ulong(1))
        .await;
    assert_eq!(reply.status_code(), Some(200));
    let mut sender = Sender::attach(&mut session, "c2d", "/messages/devicebound")
        .await
        .unwrap();
    let error = detach_error(&mut sender).await;
    assert_eq!(symbol_of(&error.condition), "amqp:unauthorized-access");

    // A renewed token keeps the link.
    let token = policy_token("localhost", "service", SERVICE_KEY, seconds_from_now(2));
    let reply = cbs
        .put_token("localhost", &token, MessageId::Ulong(2))
        .await;
    assert_eq!(reply.status_code(), Some(200));
    let mut sender = Sender::attach(&mut session, "c2d-2", "/messages/devicebound")
        .await
        .unwrap();
    let renewed = policy_token("localhost", "service", SERVICE_KEY, seconds_from_now(600));
    let reply = cbs
        .put_token("localhost", &renewed, MessageId::Ulong(3))
        .await;
    assert_eq!(reply.status_code(), Some(200));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let ok = sender
        .send(c2d_message(QUICKSTART_DEVICE_ID, b"still here"))
        .await
        .unwrap();
    assert!(ok.is_accepted(), "{ok:?}");
    connection.close().await.unwrap();
}

#[tokio::test]
async fn bad_headers_and_garbage_close_the_connection_and_the_port_keeps_serving() {
    use tokio::io::AsyncWriteExt as _;
    const SASL: &[u8] = b"AMQP\x03\x01\x00\x00";
    const PLAIN: &[u8] = b"AMQP\x00\x01\x00\x00";
    let emulator = start().await;
    let cases: Vec<(&str, Vec<u8>, &[u8])> = vec![
        ("HTTP", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), SASL),
        ("TLS header", b"AMQP\x02\x01\x00\x00".to_vec(), SASL),
        ("other version", b"AMQP\x00\x02\x00\x00".to_vec(), PLAIN),
        (
            "garbage after SASL header",
            [SASL, &[0xde; 64][..]].concat(),
            SASL,
        ),
        (
            "garbage after plain header",
            [PLAIN, &[0xde; 64][..]].concat(),
            PLAIN,
        ),
        (
            "a 4 GiB frame",
            [PLAIN, &[0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0][..]].concat(),
            PLAIN,
        ),
        ("truncated header", b"AMQ".to_vec(), b""),
    ];
    for (what, bytes, answer) in cases {
        let mut stream = raw_tls(&emulator).await;
        stream.write_all(&bytes).await.unwrap();
        if what == "truncated header" {
            stream.shutdown().await.unwrap();
        }
        let received = read_until_closed(&mut stream).await;
        assert!(received.starts_with(answer), "{what}: {received:02x?}");
    }
    // Still serving.
    let (mut connection, mut session, _cbs) = authorised_session(&emulator, Login::Anonymous).await;
    let mut sender = Sender::attach(&mut session, "c2d", "/messages/devicebound")
        .await
        .unwrap();
    let ok = sender
        .send(c2d_message(QUICKSTART_DEVICE_ID, b"after the garbage"))
        .await
        .unwrap();
    assert!(ok.is_accepted(), "{ok:?}");
    connection.close().await.unwrap();
}

#[tokio::test]
async fn shutdown_closes_connections_with_a_reason() {
    let emulator = start().await;
    let mut connection = connect(&emulator, Login::Anonymous).await;
    let shutdown = tokio::spawn(emulator.shutdown());
    let closed = tokio::time::timeout(Duration::from_secs(10), connection.on_close())
        .await
        .expect("closed in time");
    match closed {
        Err(fe2o3_amqp::connection::Error::RemoteClosedWithError(e)) => {
            assert_eq!(symbol_of(&e.condition), "amqp:connection:forced");
            assert!(e.description.is_some());
        }
        other => panic!("expected a close with an error, got {other:?}"),
    }
    tokio::time::timeout(Duration::from_secs(10), shutdown)
        .await
        .expect("shutdown finishes")
        .unwrap();
}

#[tokio::test]
async fn a_peek_lock_sender_gets_settled_dispositions() {
    // uamqp's SendClient asks for rcv-settle-mode second and waits for a *settled* outcome.
    use fe2o3_amqp::types::definitions::ReceiverSettleMode;
    let emulator = start().await;
    let (mut connection, mut session, _cbs) = authorised_session(&emulator, Login::Anonymous).await;
    let mut sender = Sender::builder()
        .name("sender-link-uamqp-style")
        .target("amqps://localhost/messages/devicebound")
        .receiver_settle_mode(ReceiverSettleMode::Second)
        .attach(&mut session)
        .await
        .unwrap();
    let outcome = tokio::time::timeout(
        Duration::from_secs(10),
        sender.send(c2d_message(QUICKSTART_DEVICE_ID, b"peek-lock")),
    )
    .await
    .expect("settled in time")
    .unwrap();
    assert!(outcome.is_accepted(), "{outcome:?}");
    connection.close().await.unwrap();
}

#[tokio::test]
async fn event_hubs_style_tokens_signed_with_the_key_text_put_fine() {
    // core-amqp: sr = encodeURIComponent(audience), HMAC keyed with the key's base64 text.
    let emulator = start().await;
    let mut connection = connect(&emulator, Login::Anonymous).await;
    let mut session = Session::begin(&mut connection).await.unwrap();
    let mut cbs = CbsClient::attach(&mut session).await;
    let audience = "sb://localhost/localhost/$management";
    let token = build_token(
        audience,
        HUB_OWNER_KEY.as_bytes(),
        Some("iothubowner"),
        seconds_from_now(600),
    );
    let reply = cbs
        .put_token(audience, &token, MessageId::String("eh".into()))
        .await;
    assert_eq!(reply.status_code(), Some(200), "{reply:?}");
    connection.close().await.unwrap();
}

#[tokio::test]
async fn session_churn_leaves_the_connection_usable() {
    let emulator = start().await;
    let (mut connection, _session, _cbs) = authorised_session(&emulator, Login::Anonymous).await;
    for round in 0..10 {
        let mut session = Session::begin(&mut connection).await.unwrap();
        let mut sender = Sender::attach(
            &mut session,
            format!("c2d-{round}"),
            "/messages/devicebound",
        )
        .await
        .unwrap();
        let mut pending = Vec::new();
        for i in 0..5 {
            pending.push(
                sender
                    .send_batchable(c2d_message("nobody", format!("{i}").as_bytes()))
                    .await
                    .unwrap(),
            );
        }
        let feedback = Receiver::attach(
            &mut session,
            format!("fb-{round}"),
            "/messages/serviceBound/feedback",
        )
        .await
        .unwrap();
        if round % 2 == 0 {
            drop(sender);
            drop(feedback);
        }
        session.end().await.unwrap();
        drop(pending);
    }
    let mut session = Session::begin(&mut connection).await.unwrap();
    let mut cbs = CbsClient::attach(&mut session).await;
    let reply = cbs
        .put_token("localhost", &owner_token("localhost"), MessageId::Ulong(5))
        .await;
    assert_eq!(reply.status_code(), Some(200));
    connection.close().await.unwrap();
}

#[tokio::test]
async fn device_tokens_put_fine_and_bad_ones_are_401() {
    let emulator = start().await;
    let mut connection = connect(&emulator, Login::NoSasl).await;
    let mut session = Session::begin(&mut connection).await.unwrap();
    let mut cbs = CbsClient::attach(&mut session).await;
    // Node's device client: audience = sr as written, URL-encoded.
    let good = device_token(
        "localhost",
        QUICKSTART_DEVICE_ID,
        QUICKSTART_KEY,
        seconds_from_now(600),
    );
    let audience = format!("localhost%2Fdevices%2F{QUICKSTART_DEVICE_ID}");
    let reply = cbs
        .put_token(&audience, &good, MessageId::String("d1".into()))
        .await;
    assert_eq!(reply.status_code(), Some(200), "{reply:?}");
    let wrong_key = device_token(
        "localhost",
        QUICKSTART_DEVICE_ID,
        "c2VydmljZSBrZXkgZm9yIHRlc3RzIG9ubHkgMTIzNA==",
        seconds_from_now(600),
    );
    let reply = cbs
        .put_token(&audience, &wrong_key, MessageId::String("d2".into()))
        .await;
    assert_eq!(reply.status_code(), Some(401), "{reply:?}");
    let unknown = device_token("localhost", "nobody", QUICKSTART_KEY, seconds_from_now(600));
    let reply = cbs
        .put_token(
            "localhost/devices/nobody",
            &unknown,
            MessageId::String("d3".into()),
        )
        .await;
    assert_eq!(reply.status_code(), Some(401), "{reply:?}");
    // A device token opens no service link.
    let mut sender = Sender::attach(&mut session, "c2d", "/messages/devicebound")
        .await
        .unwrap();
    let error = detach_error(&mut sender).await;
    assert_eq!(symbol_of(&error.condition), "amqp:unauthorized-access");
    connection.close().await.unwrap();
}

/// The performatives in `bytes` (after the 8-byte header), decoded as `Close` where they are.
fn closes_in(bytes: &[u8]) -> Vec<fe2o3_amqp::types::performatives::Close> {
    let mut closes = Vec::new();
    let mut rest = bytes.get(8..).unwrap_or_default();
    while rest.len() >= 8 {
        let size = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
        let doff = rest[4] as usize * 4;
        let Some(frame) = rest.get(..size) else { break };
        if frame.get(doff..doff + 3) == Some(&[0x00, 0x53, 0x18][..]) {
            closes.push(serde_amqp::from_slice(&frame[doff..]).expect("a close"));
        }
        rest = &rest[size..];
    }
    closes
}

#[tokio::test]
async fn a_malformed_frame_after_open_closes_with_a_framing_error() {
    use tokio::io::AsyncWriteExt as _;
    let emulator = start().await;
    let mut stream = raw_tls(&emulator).await;
    let open = fe2o3_amqp::types::performatives::Open {
        container_id: "raw".into(),
        hostname: Some("localhost".into()),
        max_frame_size: 65_536.into(),
        channel_max: 255.into(),
        idle_time_out: None,
        outgoing_locales: None,
        incoming_locales: None,
        offered_capabilities: None,
        desired_capabilities: None,
        properties: None,
    };
    let body = serde_amqp::to_vec(&open).unwrap();
    let mut wire = b"AMQP\x00\x01\x00\x00".to_vec();
    wire.extend_from_slice(&((8 + body.len()) as u32).to_be_bytes());
    wire.extend_from_slice(&[2, 0, 0, 0]);
    wire.extend_from_slice(&body);
    // A frame claiming 4 bytes: less than its own header.
    wire.extend_from_slice(&[0, 0, 0, 4, 2, 0, 0, 0]);
    stream.write_all(&wire).await.unwrap();
    let received = read_until_closed(&mut stream).await;
    let closes = closes_in(&received);
    let error = closes
        .first()
        .and_then(|c| c.error.clone())
        .unwrap_or_else(|| panic!("a close with an error: {received:02x?}"));
    assert_eq!(symbol_of(&error.condition), "amqp:connection:framing-error");
    assert!(
        error
            .description
            .unwrap_or_default()
            .contains("frame size 4")
    );
}

#[tokio::test]
async fn the_amqp_connection_limit_holds_new_connections_until_one_closes() {
    // One address keeps the test about this limit only; that the limit is exact over several
    // addresses is tested in net/accept.rs.
    let emulator = iotemu::Emulator::builder()
        .quickstart_fixture()
        .bind([std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)])
        .max_connections(iotemu::MaxConnections {
            amqp: 2,
            ..Default::default()
        })
        .start()
        .await
        .unwrap();
    let mut first = connect(&emulator, Login::Anonymous).await;
    let _second = connect(&emulator, Login::NoSasl).await;
    // Full: a third client's TLS handshake is not even started.
    let blocked = tokio::time::timeout(Duration::from_millis(300), raw_tls(&emulator)).await;
    assert!(blocked.is_err(), "AMQP accepted beyond its limit");
    first.close().await.unwrap();
    let (mut third, _session, _cbs) = authorised_session(&emulator, Login::Anonymous).await;
    third.close().await.unwrap();
}
