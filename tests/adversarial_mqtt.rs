//! Hostile MQTT clients (issue #12, item 7): broken framing, packets out of order, slow and
//! silent peers, oversize fields, and the authentication/authorization matrix — cross-device
//! topics, wrong, expired and foreign tokens, DPS tokens on the hub and hub tokens on DPS,
//! shared access policies used as device credentials, `skn` tricks, modules against devices.
//!
//! Every case checks the exact reply (CONNACK code, SUBACK 0x80, or the connection closed
//! with nothing sent), that a well-behaved device is still served afterwards, and that no log
//! line of the process says `panicked` (support/log_capture.rs). The protocol violations
//! already covered one by one in mqtt_wire.rs (reserved flags, packet id 0, NUL, QoS 2, a
//! payload just over 256 KB, the plain keep-alive timeout) are not repeated here.

use std::time::Duration;

use bytes::BytesMut;
use iotemu::C2dMessage;
use iotemu::Emulator;
use iotemu::ModuleSpec;
use iotemu::MqttLimits;
use iotemu::SymmetricKey;
use iotemu::WaitStored;
use iotemu::internals::mqtt::codec::{
    self, Connect, ConnectReturnCode, Packet, PubAck, Publish, QoS, SubscribeReasonCode,
};
use iotemu_e2e::log_capture;
use iotemu_e2e::*;
use rumqttc::mqttbytes::v4::{Login, Subscribe};
use serde_json::json;

const SCOPE: &str = "0ne00000A0A";
/// A second hub of the test fixture, with its own copy of `dev-a`.
const OTHER_HUB: &str = "127.0.0.2";

/// Device keys: every identity has its own, so a token signed for one proves nothing for
/// another.
const KEY_A: &str = "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=";
const KEY_A2: &str = "YWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWE=";
const KEY_B: &str = "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI=";
const KEY_GOOD: &str = "R0dHR0dHR0dHR0dHR0dHR0dHR0dHR0dHR0dHR0dHR0c=";

/// Well-known policy keys of the quickstart fixture (fixtures/quickstart.json).
const SERVICE_KEY: &str = "5rig9dR3TugO6rC8NB2RBSHNpI6/yXXMwj9dck7tfY0=";
const DEVICE_POLICY_KEY: &str = "DnLP7U4Hm89m+OXGdR0tm0GnouaNz5TY+ZvYqu4K+bE=";
const REGISTRY_READ_KEY: &str = "+LBbfU4e7af2Y2I1VL74SgieV6ZDOXMC7lJKLqDSiQw=";
const DPS_OWNER_KEY: &str = "9v222dNTjDaRlypsKaNmfRb+fM+lb6iI4vJsVu9VHBA=";

fn key(b64: &str) -> SymmetricKey {
    SymmetricKey::from_base64(b64).expect("test key")
}

/// The quickstart fixture plus a second hub; `limits` as given.
async fn start(limits: MqttLimits) -> Emulator {
    log_capture::install();
    let mut quickstart: serde_json::Value =
        serde_json::from_str(iotemu::internals::fixtures::QUICKSTART_JSON)
            .expect("quickstart JSON");
    let hubs = quickstart["hubs"].as_array_mut().expect("hubs");
    hubs.push(json!({ "hostName": OTHER_HUB }));
    let emulator = Emulator::builder()
        .fixture_json("quickstart and a second hub", &quickstart.to_string())
        .retry_after(0)
        .mqtt_limits(limits)
        .start()
        .await
        .expect("emulator starts");
    let hub = emulator.default_hub();
    hub.provision_device("dev-a", key(KEY_A), key(KEY_A2), None);
    hub.provision_device("dev-b", key(KEY_B), key(KEY_B), None);
    hub.provision_device("good", key(KEY_GOOD), key(KEY_GOOD), None);
    emulator
        .hub(OTHER_HUB)
        .expect("second hub")
        .provision_device("dev-a", key(KEY_A), key(KEY_A), None);
    emulator
}

async fn start_default() -> Emulator {
    start(MqttLimits::default()).await
}

/// Adds module `module_id` to `dev-a`; returns its generated primary key.
fn create_module(emulator: &Emulator, module_id: &str) -> String {
    let module = emulator
        .default_hub()
        .create_module(ModuleSpec::from_json("dev-a", module_id, b"{}").expect("module JSON"))
        .wait_stored()
        .expect("module created");
    module.sas_keys()[0].to_base64()
}

fn token(resource: &str, key_b64: &str, key_name: Option<&str>, expiry: u64) -> String {
    build_token(resource, &decode_key(key_b64), key_name, expiry)
}

fn in_10_min() -> u64 {
    seconds_from_now(600)
}

fn module_username(hub: &str, device_id: &str, module_id: &str) -> String {
    format!("{hub}/{device_id}/{module_id}/?api-version=2021-04-12")
}

/// A CONNECT as `client_id` with `username`/`password`, keep-alive 60 s, clean session.
fn connect_packet(client_id: &str, username: &str, password: &str) -> Connect {
    let mut connect = Connect::new(client_id);
    connect.keep_alive = 60;
    connect.clean_session = true;
    connect.login = Some(Login::new(username, password));
    connect
}

fn encode(packet: &Packet) -> Vec<u8> {
    let mut wire = BytesMut::new();
    codec::encode(packet, &mut wire).expect("encode");
    wire.to_vec()
}

fn publish(topic: &str, pkid: u16, payload: Vec<u8>) -> Packet {
    let mut publish = Publish::new(topic, QoS::AtLeastOnce, payload);
    publish.pkid = pkid;
    Packet::Publish(publish)
}

fn subscribe(pkid: u16, filters: &[&str]) -> Packet {
    let mut subscribe = Subscribe::new(filters[0], QoS::AtLeastOnce);
    for filter in &filters[1..] {
        subscribe.add((*filter).to_owned(), QoS::AtLeastOnce);
    }
    subscribe.pkid = pkid;
    Packet::Subscribe(subscribe)
}

/// A client connected (CONNACK 0) as hub device `device_id` of `localhost` with `key_b64`.
async fn connected(emulator: &Emulator, device_id: &str, key_b64: &str) -> RawClient {
    let mut client = RawClient::connect(emulator).await;
    let password = token(
        &format!("localhost/devices/{device_id}"),
        key_b64,
        None,
        in_10_min(),
    );
    let code = client
        .mqtt_connect(device_id, &hub_username("localhost", device_id), &password)
        .await;
    assert_eq!(code, ConnectReturnCode::Success, "{device_id} connects");
    client
}

/// A client connected as module `dev-a/{module_id}` with `key_b64`.
async fn connected_module(emulator: &Emulator, module_id: &str, key_b64: &str) -> RawClient {
    let mut client = RawClient::connect(emulator).await;
    let password = token(
        &format!("localhost/devices/dev-a/modules/{module_id}"),
        key_b64,
        None,
        in_10_min(),
    );
    let code = client
        .mqtt_connect(
            &format!("dev-a/{module_id}"),
            &module_username("localhost", "dev-a", module_id),
            &password,
        )
        .await;
    assert_eq!(code, ConnectReturnCode::Success, "module {module_id}");
    client
}

/// The only reply to a violation: the connection closes with nothing sent. Five seconds is
/// well under the ten-second CONNECT timeout, so a close that only the timeout caused fails.
async fn assert_closed_silently(client: &mut RawClient, what: &str) {
    assert_eq!(
        client.recv(Duration::from_secs(5)).await,
        Err(RecvEnd::Closed),
        "{what}"
    );
}

async fn expect_packet(client: &mut RawClient, what: &str) -> Packet {
    match client.recv(Duration::from_secs(5)).await {
        Ok(packet) => packet,
        Err(end) => panic!("{what}: no packet ({end:?})"),
    }
}

/// A well-behaved device still gets a session, a subscription, a PUBACK for telemetry (and
/// the message is stored) and a PINGRESP; nothing in the process has panicked.
async fn assert_served_and_no_panic(emulator: &Emulator) {
    let mut client = connected(emulator, "good", KEY_GOOD).await;
    client.send(subscribe(1, &["$iothub/twin/res/#"])).await;
    match expect_packet(&mut client, "SUBACK").await {
        Packet::SubAck(ack) => assert_eq!(
            ack.return_codes,
            vec![SubscribeReasonCode::Success(QoS::AtLeastOnce)]
        ),
        other => panic!("expected SUBACK, got {other:?}"),
    }
    let before = emulator
        .default_hub()
        .telemetry()
        .messages(Some("good"))
        .len();
    client
        .send(publish("devices/good/messages/events/", 9, b"ok".to_vec()))
        .await;
    assert_eq!(
        expect_packet(&mut client, "PUBACK").await,
        Packet::PubAck(PubAck::new(9))
    );
    assert_eq!(
        emulator
            .default_hub()
            .telemetry()
            .messages(Some("good"))
            .len(),
        before + 1
    );
    client.send(Packet::PingReq).await;
    assert_eq!(
        expect_packet(&mut client, "PINGRESP").await,
        Packet::PingResp
    );
    log_capture::assert_no_panic();
}

fn stored(emulator: &Emulator, device_id: &str) -> usize {
    emulator
        .default_hub()
        .telemetry()
        .messages(Some(device_id))
        .len()
}

// ---------------------------------------------------------------------------------------
// Framing and packet order
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn broken_remaining_lengths_are_closed_without_a_reply() {
    let emulator = start(MqttLimits {
        connect_timeout: Duration::from_millis(500),
        ..MqttLimits::default()
    })
    .await;
    // Truncated: continuation bits promise more length bytes that never come. Only the
    // CONNECT timeout can end these (shortened to 500 ms here).
    for truncated in [&[0x10u8, 0x80][..], &[0x10, 0xff, 0xff, 0xff], &[0x10]] {
        let mut client = RawClient::connect(&emulator).await;
        client.send_bytes(truncated).await;
        assert_closed_silently(&mut client, &format!("truncated {truncated:02x?}")).await;
    }
    // Five length bytes: malformed at once (MQTT 3.1.1 §2.2.3 allows four).
    let mut client = RawClient::connect(&emulator).await;
    client
        .send_bytes(&[0x10, 0xff, 0xff, 0xff, 0xff, 0x01])
        .await;
    assert_closed_silently(&mut client, "five-byte remaining length before CONNECT").await;
    let mut client = connected(&emulator, "dev-a", KEY_A).await;
    client
        .send_bytes(&[0x30, 0x80, 0x80, 0x80, 0x80, 0x01])
        .await;
    assert_closed_silently(&mut client, "five-byte remaining length after CONNECT").await;
    assert_served_and_no_panic(&emulator).await;
}

#[tokio::test]
async fn a_remaining_length_over_the_limit_is_closed_before_the_body_arrives() {
    let emulator = start_default().await;
    // The largest length MQTT can express (256 MB) on a CONNECT, and 300 KiB on a PUBLISH:
    // refused from the header alone, nothing of the body ever sent.
    let mut client = RawClient::connect(&emulator).await;
    client.send_bytes(&[0x10, 0xff, 0xff, 0xff, 0x7f]).await;
    assert_closed_silently(&mut client, "CONNECT announcing 256 MB").await;

    let mut client = connected(&emulator, "dev-a", KEY_A).await;
    let length = 300 * 1024u32;
    client
        .send_bytes(&[
            0x32,
            (length & 0x7f) as u8 | 0x80,
            ((length >> 7) & 0x7f) as u8 | 0x80,
            (length >> 14) as u8,
        ])
        .await;
    assert_closed_silently(&mut client, "PUBLISH announcing 300 KiB").await;
    assert_eq!(stored(&emulator, "dev-a"), 0);
    assert_served_and_no_panic(&emulator).await;
}

#[tokio::test]
async fn packets_before_connect_are_closed_without_a_reply() {
    let emulator = start_default().await;
    let first_packets = [
        (
            "PUBLISH",
            publish("devices/dev-a/messages/events/", 1, b"x".to_vec()),
        ),
        ("SUBSCRIBE", subscribe(1, &["$iothub/twin/res/#"])),
        ("PINGREQ", Packet::PingReq),
        ("DISCONNECT", Packet::Disconnect),
    ];
    for (what, packet) in first_packets {
        let mut client = RawClient::connect(&emulator).await;
        client.send(packet).await;
        assert_closed_silently(&mut client, &format!("{what} before CONNECT")).await;
    }
    assert_eq!(stored(&emulator, "dev-a"), 0);
    assert_served_and_no_panic(&emulator).await;
}

#[tokio::test]
async fn garbage_right_after_connect_is_closed_after_the_connack() {
    let emulator = start_default().await;
    let password = token("localhost/devices/dev-a", KEY_A, None, in_10_min());
    let connect = encode(&Packet::Connect(connect_packet(
        "dev-a",
        &hub_username("localhost", "dev-a"),
        &password,
    )));
    for garbage in [
        // Packet type 0 (reserved), a PUBACK with reserved flags set, a CONNACK (only a
        // server sends one), five remaining-length bytes.
        &b"\x00\x00"[..],
        b"\x47\x02\x00\x01",
        // Not MQTT at all; its first byte reads as a PUBACK with bad flags and a 69-byte
        // frame that never comes.
        b"GET / HTTP/1.1\r\n\r\n",
        b"\x20\x02\x00\x00",
        // A PUBLISH asking for QoS 3, its frame never sent.
        b"\x36\x7f",
        b"\xff\xff\xff\xff\xff",
    ] {
        let mut wire = connect.clone();
        wire.extend_from_slice(garbage);
        let mut client = RawClient::connect(&emulator).await;
        client.send_bytes(&wire).await;
        match expect_packet(&mut client, "CONNACK").await {
            Packet::ConnAck(ack) => assert_eq!(ack.code, ConnectReturnCode::Success),
            other => panic!("expected CONNACK, got {other:?}"),
        }
        assert_closed_silently(
            &mut client,
            &format!("garbage {garbage:02x?} after CONNECT"),
        )
        .await;
    }
    assert_served_and_no_panic(&emulator).await;
}

#[tokio::test]
async fn packets_sent_with_the_connect_are_answered_without_waiting() {
    // MQTT 3.1.1 §3.1.4: a client may send packets right after CONNECT, before its CONNACK.
    let emulator = start_default().await;
    let password = token("localhost/devices/dev-a", KEY_A, None, in_10_min());
    let mut wire = encode(&Packet::Connect(connect_packet(
        "dev-a",
        &hub_username("localhost", "dev-a"),
        &password,
    )));
    wire.extend(encode(&subscribe(4, &["$iothub/twin/res/#"])));
    wire.extend(encode(&publish(
        "devices/dev-a/messages/events/",
        5,
        b"x".to_vec(),
    )));
    let mut client = RawClient::connect(&emulator).await;
    client.send_bytes(&wire).await;
    assert!(matches!(
        expect_packet(&mut client, "CONNACK").await,
        Packet::ConnAck(_)
    ));
    assert!(matches!(
        expect_packet(&mut client, "SUBACK").await,
        Packet::SubAck(ack) if ack.pkid == 4
    ));
    assert_eq!(
        expect_packet(&mut client, "PUBACK").await,
        Packet::PubAck(PubAck::new(5))
    );
    assert_served_and_no_panic(&emulator).await;
}

#[tokio::test]
async fn a_second_connect_closes_the_session() {
    let emulator = start_default().await;
    let mut client = connected(&emulator, "dev-a", KEY_A).await;
    let password = token("localhost/devices/dev-a", KEY_A, None, in_10_min());
    client
        .send(Packet::Connect(connect_packet(
            "dev-a",
            &hub_username("localhost", "dev-a"),
            &password,
        )))
        .await;
    // MQTT 3.1.1 §3.1.0-2: a second CONNECT is a protocol violation; no second CONNACK.
    assert_closed_silently(&mut client, "second CONNECT").await;
    let connections = emulator.default_hub().connections();
    for _ in 0..50 {
        if !connections.is_connected("dev-a") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!connections.is_connected("dev-a"));
    assert_served_and_no_panic(&emulator).await;
}

// ---------------------------------------------------------------------------------------
// Slow and silent peers
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_slow_or_missing_connect_is_closed_after_the_connect_timeout() {
    let emulator = start(MqttLimits {
        connect_timeout: Duration::from_millis(500),
        ..MqttLimits::default()
    })
    .await;
    // Silent after the TLS handshake.
    let mut silent = RawClient::connect(&emulator).await;
    assert_closed_silently(&mut silent, "no CONNECT at all").await;

    // A valid CONNECT one byte every 100 ms: never idle, never complete in time (it would
    // take tens of seconds).
    let password = token("localhost/devices/dev-a", KEY_A, None, in_10_min());
    let wire = encode(&Packet::Connect(connect_packet(
        "dev-a",
        &hub_username("localhost", "dev-a"),
        &password,
    )));
    assert!(wire.len() > 100);
    let mut client = RawClient::connect(&emulator).await;
    let mut closed = false;
    for byte in &wire {
        client.send_bytes(std::slice::from_ref(byte)).await;
        match client.recv(Duration::from_millis(100)).await {
            Err(RecvEnd::TimedOut) => continue,
            Err(RecvEnd::Closed) => {
                closed = true;
                break;
            }
            Ok(packet) => panic!("reply to an incomplete CONNECT: {packet:?}"),
        }
    }
    assert!(closed, "the dribbled CONNECT was let through");
    assert_served_and_no_panic(&emulator).await;
}

#[tokio::test]
async fn keep_alive_is_capped_by_the_server_and_pings_keep_a_session_open() {
    let emulator = start(MqttLimits {
        max_keep_alive_timeout: Duration::from_secs(1),
        ..MqttLimits::default()
    })
    .await;
    // Keep-alive 0 ("none") and the largest value are both held to the server's cap.
    for keep_alive in [0u16, u16::MAX] {
        let mut client = RawClient::connect(&emulator).await;
        let password = token("localhost/devices/dev-a", KEY_A, None, in_10_min());
        let mut connect = connect_packet("dev-a", &hub_username("localhost", "dev-a"), &password);
        connect.keep_alive = keep_alive;
        client.send(Packet::Connect(connect)).await;
        assert!(matches!(
            expect_packet(&mut client, "CONNACK").await,
            Packet::ConnAck(_)
        ));
        assert_eq!(
            client.recv(Duration::from_secs(5)).await,
            Err(RecvEnd::Closed),
            "keep-alive {keep_alive} not capped"
        );
    }
    // A client that pings every 400 ms outlives several 1 s caps.
    let mut client = connected(&emulator, "dev-a", KEY_A).await;
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        client.send(Packet::PingReq).await;
        assert_eq!(
            expect_packet(&mut client, "PINGRESP").await,
            Packet::PingResp
        );
    }
    log_capture::assert_no_panic();
}

// ---------------------------------------------------------------------------------------
// Oversize everything
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn oversize_connect_fields_get_their_connack_codes() {
    let emulator = start_default().await;
    let long = "a".repeat(60_000);
    let good_password = token("localhost/devices/dev-a", KEY_A, None, in_10_min());
    let cases = [
        (
            "60 KB client id",
            long.clone(),
            hub_username("localhost", "dev-a"),
            good_password.clone(),
            ConnectReturnCode::BadUserNamePassword,
        ),
        (
            "60 KB device id in username and client id",
            long.clone(),
            hub_username("localhost", &long),
            token(
                &format!("localhost/devices/{long}"),
                KEY_A,
                None,
                in_10_min(),
            ),
            ConnectReturnCode::NotAuthorized,
        ),
        (
            "60 KB username",
            "dev-a".to_owned(),
            format!("localhost/dev-a/?api-version=2021-04-12&x={long}"),
            good_password.clone(),
            ConnectReturnCode::Success,
        ),
        (
            "60 KB password",
            "dev-a".to_owned(),
            hub_username("localhost", "dev-a"),
            long.clone(),
            ConnectReturnCode::NotAuthorized,
        ),
        (
            "60 KB signature",
            "dev-a".to_owned(),
            hub_username("localhost", "dev-a"),
            format!(
                "SharedAccessSignature sr=localhost%2Fdevices%2Fdev-a&sig={long}&se={}",
                in_10_min()
            ),
            ConnectReturnCode::NotAuthorized,
        ),
    ];
    for (what, client_id, username, password, expected) in cases {
        let mut client = RawClient::connect(&emulator).await;
        assert_eq!(
            client.mqtt_connect(&client_id, &username, &password).await,
            expected,
            "{what}"
        );
        if expected != ConnectReturnCode::Success {
            assert_closed_silently(&mut client, what).await;
        }
    }
    assert_served_and_no_panic(&emulator).await;
}

#[tokio::test]
async fn oversize_topics_and_property_bags_count_against_the_256_kb_limit() {
    let emulator = start_default().await;
    // A topic of almost 64 KiB (the most MQTT can carry): one long property, PUBACKed.
    let mut client = connected(&emulator, "dev-a", KEY_A).await;
    let value = "v".repeat(65_000);
    client
        .send(publish(
            &format!("devices/dev-a/messages/events/long={value}"),
            1,
            b"x".to_vec(),
        ))
        .await;
    assert_eq!(
        expect_packet(&mut client, "PUBACK").await,
        Packet::PubAck(PubAck::new(1))
    );
    let messages = emulator.default_hub().telemetry().messages(Some("dev-a"));
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].properties.get("long"), Some(&value));

    // Five thousand properties in one bag: stored, all of them.
    let bag: Vec<String> = (0..5_000).map(|i| format!("p{i}={i}")).collect();
    client
        .send(publish(
            &format!("devices/dev-a/messages/events/{}", bag.join("&")),
            2,
            b"x".to_vec(),
        ))
        .await;
    assert_eq!(
        expect_packet(&mut client, "PUBACK").await,
        Packet::PubAck(PubAck::new(2))
    );
    let messages = emulator.default_hub().telemetry().messages(Some("dev-a"));
    assert_eq!(messages[1].properties.len(), 5_000);

    // A 60 KB property plus a 200 KB body: each under 256 KB, together over. Closed, and
    // nothing stored.
    client
        .send(publish(
            &format!("devices/dev-a/messages/events/big={}", "b".repeat(60_000)),
            3,
            vec![b'x'; 200 * 1024],
        ))
        .await;
    assert_closed_silently(&mut client, "properties + body over 256 KB").await;
    assert_eq!(stored(&emulator, "dev-a"), 2);

    // A property bag that is not UTF-8 once decoded.
    let mut client = connected(&emulator, "dev-a", KEY_A).await;
    client
        .send(publish(
            "devices/dev-a/messages/events/bad=%ff%fe",
            4,
            b"x".to_vec(),
        ))
        .await;
    assert_closed_silently(&mut client, "non-UTF-8 property bag").await;
    assert_eq!(stored(&emulator, "dev-a"), 2);
    assert_served_and_no_panic(&emulator).await;
}

#[tokio::test]
async fn an_oversize_twin_patch_is_refused_and_a_large_dps_payload_accepted() {
    let emulator = start_default().await;
    let mut client = connected(&emulator, "dev-a", KEY_A).await;
    client.send(subscribe(1, &["$iothub/twin/res/#"])).await;
    assert!(matches!(
        expect_packet(&mut client, "SUBACK").await,
        Packet::SubAck(_)
    ));
    // Reported properties over the 32 KB twin section limit.
    // Ten values of 4,000 bytes (each within the 4 KB value limit), 40 KB in all.
    let blobs: serde_json::Map<String, serde_json::Value> = (0..10)
        .map(|i| (format!("blob{i}"), json!("r".repeat(4_000))))
        .collect();
    let patch = serde_json::Value::Object(blobs).to_string();
    client
        .send(publish(
            "$iothub/twin/PATCH/properties/reported/?$rid=7",
            2,
            patch.into_bytes(),
        ))
        .await;
    assert_eq!(
        expect_packet(&mut client, "PUBACK").await,
        Packet::PubAck(PubAck::new(2))
    );
    match expect_packet(&mut client, "twin response").await {
        Packet::Publish(p) => {
            // 400004 ArgumentInvalid, as for every other refused patch.
            assert_eq!(p.topic, "$iothub/twin/res/400/?$rid=7");
            let body: serde_json::Value = serde_json::from_slice(&p.payload).expect("JSON");
            assert_eq!(body["errorCode"], 400004, "{body}");
        }
        other => panic!("expected the twin response, got {other:?}"),
    }
    // The session goes on: a twin GET works and shows nothing of the refused patch.
    client
        .send(publish("$iothub/twin/GET/?$rid=8", 3, Vec::new()))
        .await;
    assert_eq!(
        expect_packet(&mut client, "PUBACK").await,
        Packet::PubAck(PubAck::new(3))
    );
    match expect_packet(&mut client, "twin").await {
        Packet::Publish(p) => {
            assert_eq!(p.topic, "$iothub/twin/res/200/?$rid=8");
            let twin: serde_json::Value = serde_json::from_slice(&p.payload).expect("JSON");
            assert!(twin["reported"].get("blob0").is_none(), "{twin}");
        }
        other => panic!("expected the twin, got {other:?}"),
    }

    // A DPS registration request with a 200 KB custom payload: accepted.
    let mut dps = RawClient::connect(&emulator).await;
    let password = dps_token(
        SCOPE,
        QUICKSTART_REGISTRATION_ID,
        QUICKSTART_KEY,
        in_10_min(),
    );
    let code = dps
        .mqtt_connect(
            QUICKSTART_REGISTRATION_ID,
            &dps_username(SCOPE, QUICKSTART_REGISTRATION_ID),
            &password,
        )
        .await;
    assert_eq!(code, ConnectReturnCode::Success);
    dps.send(subscribe(1, &["$dps/registrations/res/#"])).await;
    assert!(matches!(
        expect_packet(&mut dps, "SUBACK").await,
        Packet::SubAck(_)
    ));
    let body = json!({
        "registrationId": QUICKSTART_REGISTRATION_ID,
        "payload": { "blob": "d".repeat(200 * 1024) }
    })
    .to_string();
    dps.send(publish(
        "$dps/registrations/PUT/iotdps-register/?$rid=1",
        5,
        body.into_bytes(),
    ))
    .await;
    assert_eq!(
        expect_packet(&mut dps, "PUBACK").await,
        Packet::PubAck(PubAck::new(5))
    );
    match expect_packet(&mut dps, "DPS response").await {
        Packet::Publish(p) => {
            // DPS documents no limit of its own: the MQTT packet limit is the only one.
            assert_eq!(p.topic, "$dps/registrations/res/202/?$rid=1&retry-after=0");
            let body: serde_json::Value = serde_json::from_slice(&p.payload).expect("JSON");
            assert_eq!(body["status"], "assigning", "{body}");
        }
        other => panic!("expected the DPS response, got {other:?}"),
    }
    assert_served_and_no_panic(&emulator).await;
}

#[tokio::test]
async fn oversize_and_numerous_subscriptions_are_bounded() {
    let emulator = start_default().await;
    let mut client = connected(&emulator, "dev-a", KEY_A).await;
    // One filter of almost 64 KiB, narrower than an allowed one: granted.
    let long = format!("$iothub/methods/POST/{}/#", "m".repeat(65_000));
    client.send(subscribe(1, &[&long])).await;
    match expect_packet(&mut client, "SUBACK").await {
        Packet::SubAck(ack) => assert_eq!(
            ack.return_codes,
            vec![SubscribeReasonCode::Success(QoS::AtLeastOnce)]
        ),
        other => panic!("expected SUBACK, got {other:?}"),
    }
    // Thousands of distinct allowed filters, packet after packet: a session must not grow
    // without bound. Every filter gets an answer; past the cap (50 filters) the answer is 0x80.
    let filters: Vec<String> = (0..2_000)
        .map(|i| format!("$iothub/methods/POST/m{i}/#"))
        .collect();
    let refs: Vec<&str> = filters.iter().map(String::as_str).collect();
    let mut granted = 0;
    for (n, chunk) in refs.chunks(500).enumerate() {
        client.send(subscribe(10 + n as u16, chunk)).await;
        match expect_packet(&mut client, "SUBACK").await {
            Packet::SubAck(ack) => {
                assert_eq!(ack.return_codes.len(), chunk.len());
                granted += ack
                    .return_codes
                    .iter()
                    .filter(|c| matches!(c, SubscribeReasonCode::Success(_)))
                    .count();
            }
            other => panic!("expected SUBACK, got {other:?}"),
        }
    }
    assert_eq!(granted, 49, "the long filter and 49 more are held");
    // Already-held filters are still answered with success (a resubscribe, not a new one).
    client
        .send(subscribe(40, &["$iothub/methods/POST/m0/#"]))
        .await;
    match expect_packet(&mut client, "SUBACK").await {
        Packet::SubAck(ack) => assert_eq!(
            ack.return_codes,
            vec![SubscribeReasonCode::Success(QoS::AtLeastOnce)]
        ),
        other => panic!("expected SUBACK, got {other:?}"),
    }
    client.send(Packet::PingReq).await;
    assert_eq!(
        expect_packet(&mut client, "PINGRESP").await,
        Packet::PingResp
    );
    assert_served_and_no_panic(&emulator).await;
}

// ---------------------------------------------------------------------------------------
// Authentication matrix
// ---------------------------------------------------------------------------------------

/// One CONNECT attempt: who it claims to be and what it presents.
struct Attempt {
    what: &'static str,
    client_id: String,
    username: String,
    password: String,
    expected: ConnectReturnCode,
}

fn attempt(
    what: &'static str,
    client_id: &str,
    username: String,
    password: String,
    expected: ConnectReturnCode,
) -> Attempt {
    Attempt {
        what,
        client_id: client_id.to_owned(),
        username,
        password,
        expected,
    }
}

async fn run_matrix(emulator: &Emulator, attempts: Vec<Attempt>) {
    for a in attempts {
        let mut client = RawClient::connect(emulator).await;
        client
            .send(Packet::Connect(connect_packet(
                &a.client_id,
                &a.username,
                &a.password,
            )))
            .await;
        let code = match client.recv(Duration::from_secs(5)).await {
            Ok(Packet::ConnAck(ack)) => ack.code,
            other => panic!("{}: expected CONNACK, got {other:?}", a.what),
        };
        assert_eq!(code, a.expected, "{}", a.what);
        if code == ConnectReturnCode::Success {
            client.send(Packet::PingReq).await;
            assert_eq!(
                expect_packet(&mut client, a.what).await,
                Packet::PingResp,
                "{}",
                a.what
            );
        } else {
            assert_closed_silently(&mut client, a.what).await;
        }
    }
}

#[tokio::test]
async fn hub_device_credentials_matrix() {
    use ConnectReturnCode::{BadUserNamePassword as Code4, NotAuthorized as Code5, Success};
    let emulator = start_default().await;
    let user_a = || hub_username("localhost", "dev-a");
    let sr_a = "localhost/devices/dev-a";
    let now_plus = in_10_min();
    let attempts = vec![
        attempt(
            "own primary key",
            "dev-a",
            user_a(),
            token(sr_a, KEY_A, None, now_plus),
            Success,
        ),
        attempt(
            "own secondary key",
            "dev-a",
            user_a(),
            token(sr_a, KEY_A2, None, now_plus),
            Success,
        ),
        attempt(
            "hub-wide sr signed with own key",
            "dev-a",
            user_a(),
            token("localhost", KEY_A, None, now_plus),
            Success,
        ),
        attempt(
            "wrong key",
            "dev-a",
            user_a(),
            token(sr_a, KEY_B, None, now_plus),
            Code5,
        ),
        attempt(
            "expired a second ago",
            "dev-a",
            user_a(),
            token(sr_a, KEY_A, None, seconds_from_now(-1)),
            Code5,
        ),
        attempt(
            "expiry 0",
            "dev-a",
            user_a(),
            token(sr_a, KEY_A, None, 0),
            Code5,
        ),
        attempt(
            "another device's own token",
            "dev-a",
            user_a(),
            token("localhost/devices/dev-b", KEY_B, None, now_plus),
            Code5,
        ),
        attempt(
            "another device's sr signed with own key",
            "dev-a",
            user_a(),
            token("localhost/devices/dev-b", KEY_A, None, now_plus),
            Code5,
        ),
        attempt(
            "sr naming a longer device id",
            "dev-a",
            user_a(),
            token("localhost/devices/dev-ab", KEY_A, None, now_plus),
            Code5,
        ),
        attempt(
            "token for the same device on another hub",
            "dev-a",
            user_a(),
            token(&format!("{OTHER_HUB}/devices/dev-a"), KEY_A, None, now_plus),
            Code5,
        ),
        attempt(
            "this hub's token at the other hub (its dev-a has another key)",
            "dev-a",
            hub_username(OTHER_HUB, "dev-a"),
            token(sr_a, KEY_A2, None, now_plus),
            Code5,
        ),
        attempt(
            "unknown hub",
            "dev-a",
            hub_username("nohub.example", "dev-a"),
            token("nohub.example/devices/dev-a", KEY_A, None, now_plus),
            Code5,
        ),
        attempt(
            "unknown device",
            "ghost",
            hub_username("localhost", "ghost"),
            token("localhost/devices/ghost", KEY_A, None, now_plus),
            Code5,
        ),
        attempt(
            "client id of another device",
            "dev-b",
            user_a(),
            token(sr_a, KEY_A, None, now_plus),
            Code4,
        ),
        attempt(
            "username without a device",
            "dev-a",
            "localhost/?api-version=2021-04-12".into(),
            token(sr_a, KEY_A, None, now_plus),
            Code4,
        ),
        attempt(
            "username with too many segments",
            "dev-a",
            "localhost/dev-a/m/x/?api-version=1".into(),
            token(sr_a, KEY_A, None, now_plus),
            Code4,
        ),
        attempt(
            "no SharedAccessSignature prefix",
            "dev-a",
            user_a(),
            token(sr_a, KEY_A, None, now_plus).replace("SharedAccessSignature ", ""),
            Code5,
        ),
        attempt("empty password", "dev-a", user_a(), String::new(), Code5),
        // DPS credentials on the hub.
        attempt(
            "DPS registration token (Python shape)",
            "dev-a",
            user_a(),
            dps_token(SCOPE, "dev-a", KEY_A, now_plus),
            Code5,
        ),
        attempt(
            "DPS registration token (skn=registration)",
            "dev-a",
            user_a(),
            token(
                &format!("{SCOPE}/registrations/dev-a"),
                KEY_A,
                Some("registration"),
                now_plus,
            ),
            Code5,
        ),
        attempt(
            "DPS service policy token",
            "dev-a",
            user_a(),
            token(
                "localhost",
                DPS_OWNER_KEY,
                Some("provisioningserviceowner"),
                now_plus,
            ),
            Code5,
        ),
    ];
    run_matrix(&emulator, attempts).await;
    // The capture sees the emulator's log: every refusal above was logged with its reason.
    assert!(
        !log_capture::lines_containing("connection refused").is_empty(),
        "no refusal in the captured log"
    );
    assert_served_and_no_panic(&emulator).await;
}

#[tokio::test]
async fn shared_access_policies_and_skn_tricks_on_the_hub() {
    use ConnectReturnCode::{NotAuthorized as Code5, Success};
    let emulator = start_default().await;
    let user_a = || hub_username("localhost", "dev-a");
    let sr_a = "localhost/devices/dev-a";
    let t = in_10_min();
    let attempts = vec![
        // A policy with DeviceConnect may connect on behalf of any device (Azure's protocol
        // gateway scenario): iothubowner and `device` grant it, scoped to the hub or the device.
        attempt(
            "iothubowner, sr = hub",
            "dev-a",
            user_a(),
            token("localhost", HUB_OWNER_KEY, Some("iothubowner"), t),
            Success,
        ),
        attempt(
            "device policy, sr = the device",
            "dev-a",
            user_a(),
            token(sr_a, DEVICE_POLICY_KEY, Some("device"), t),
            Success,
        ),
        attempt(
            "device policy scoped to another device",
            "dev-a",
            user_a(),
            token(
                "localhost/devices/dev-b",
                DEVICE_POLICY_KEY,
                Some("device"),
                t,
            ),
            Code5,
        ),
        attempt(
            "iothubowner scoped to another hub",
            "dev-a",
            user_a(),
            token(OTHER_HUB, HUB_OWNER_KEY, Some("iothubowner"), t),
            Code5,
        ),
        attempt(
            "expired iothubowner",
            "dev-a",
            user_a(),
            token(
                "localhost",
                HUB_OWNER_KEY,
                Some("iothubowner"),
                seconds_from_now(-1),
            ),
            Code5,
        ),
        // Policies without DeviceConnect.
        attempt(
            "service policy (ServiceConnect only)",
            "dev-a",
            user_a(),
            token("localhost", SERVICE_KEY, Some("service"), t),
            Code5,
        ),
        attempt(
            "registryRead policy",
            "dev-a",
            user_a(),
            token("localhost", REGISTRY_READ_KEY, Some("registryRead"), t),
            Code5,
        ),
        // skn naming a policy, signed with something else.
        attempt(
            "skn=iothubowner signed with the device key",
            "dev-a",
            user_a(),
            token(sr_a, KEY_A, Some("iothubowner"), t),
            Code5,
        ),
        attempt(
            "skn=device signed with the device key",
            "dev-a",
            user_a(),
            token(sr_a, KEY_A, Some("device"), t),
            Code5,
        ),
        attempt(
            "skn=service signed with the iothubowner key",
            "dev-a",
            user_a(),
            token("localhost", HUB_OWNER_KEY, Some("service"), t),
            Code5,
        ),
        attempt(
            "skn of an unknown policy",
            "dev-a",
            user_a(),
            token(sr_a, KEY_A, Some("nosuchpolicy"), t),
            Code5,
        ),
        attempt(
            "empty skn",
            "dev-a",
            user_a(),
            token(sr_a, KEY_A, Some(""), t),
            Code5,
        ),
        attempt(
            "skn=registration (DPS's key name) on the hub",
            "dev-a",
            user_a(),
            token(sr_a, KEY_A, Some("registration"), t),
            Code5,
        ),
        attempt(
            "skn twice",
            "dev-a",
            user_a(),
            format!(
                "{}&skn=iothubowner",
                token("localhost", HUB_OWNER_KEY, Some("iothubowner"), t)
            ),
            Code5,
        ),
        attempt(
            "skn with a broken escape",
            "dev-a",
            user_a(),
            format!("{}&skn=%ZZ", token(sr_a, KEY_A, None, t)),
            Code5,
        ),
        attempt(
            "sr twice",
            "dev-a",
            user_a(),
            format!("{}&sr=localhost", token(sr_a, KEY_A, None, t)),
            Code5,
        ),
    ];
    run_matrix(&emulator, attempts).await;
    assert_served_and_no_panic(&emulator).await;
}

#[tokio::test]
async fn dps_credentials_matrix() {
    use ConnectReturnCode::{NotAuthorized as Code5, Success};
    let emulator = start_default().await;
    let reg = QUICKSTART_REGISTRATION_ID;
    let user = || dps_username(SCOPE, reg);
    let sr = format!("{SCOPE}/registrations/{reg}");
    let t = in_10_min();
    let attempts = vec![
        attempt(
            "enrollment key",
            reg,
            user(),
            token(&sr, QUICKSTART_KEY, None, t),
            Success,
        ),
        attempt(
            "enrollment key, skn=registration",
            reg,
            user(),
            token(&sr, QUICKSTART_KEY, Some("registration"), t),
            Success,
        ),
        attempt(
            "hub device token of the same device and key",
            reg,
            user(),
            token(
                &format!("localhost/devices/{QUICKSTART_DEVICE_ID}"),
                QUICKSTART_KEY,
                None,
                t,
            ),
            Code5,
        ),
        attempt(
            "hub-wide sr signed with the enrollment key",
            reg,
            user(),
            token("localhost", QUICKSTART_KEY, None, t),
            Code5,
        ),
        attempt(
            "another registration's sr",
            reg,
            user(),
            token(
                &format!("{SCOPE}/registrations/other"),
                QUICKSTART_KEY,
                None,
                t,
            ),
            Code5,
        ),
        attempt(
            "the group key instead of the derived key",
            reg,
            user(),
            token(&sr, QUICKSTART_GROUP_KEY, None, t),
            Code5,
        ),
        attempt(
            "expired",
            reg,
            user(),
            token(&sr, QUICKSTART_KEY, None, seconds_from_now(-1)),
            Code5,
        ),
        attempt(
            "provisioningserviceowner policy",
            reg,
            user(),
            token(SCOPE, DPS_OWNER_KEY, Some("provisioningserviceowner"), t),
            Code5,
        ),
        attempt(
            "provisioningserviceowner policy, registration sr",
            reg,
            user(),
            token(&sr, DPS_OWNER_KEY, Some("provisioningserviceowner"), t),
            Code5,
        ),
        attempt(
            "iothubowner policy",
            reg,
            user(),
            token("localhost", HUB_OWNER_KEY, Some("iothubowner"), t),
            Code5,
        ),
        attempt(
            "skn=iothubowner with the enrollment key",
            reg,
            user(),
            token(&sr, QUICKSTART_KEY, Some("iothubowner"), t),
            Code5,
        ),
        attempt(
            "a hub device (dev-a) registering with its hub key",
            "dev-a",
            dps_username(SCOPE, "dev-a"),
            token(&format!("{SCOPE}/registrations/dev-a"), KEY_A, None, t),
            Code5,
        ),
    ];
    run_matrix(&emulator, attempts).await;
    assert_served_and_no_panic(&emulator).await;
}

#[tokio::test]
async fn modules_and_devices_cannot_stand_in_for_each_other() {
    use ConnectReturnCode::{BadUserNamePassword as Code4, NotAuthorized as Code5, Success};
    let emulator = start_default().await;
    let key_m1 = create_module(&emulator, "mod-1");
    let key_m2 = create_module(&emulator, "mod-2");
    let user_m1 = || module_username("localhost", "dev-a", "mod-1");
    let sr_m1 = "localhost/devices/dev-a/modules/mod-1";
    let t = in_10_min();
    let attempts = vec![
        attempt(
            "module with its own key",
            "dev-a/mod-1",
            user_m1(),
            token(sr_m1, &key_m1, None, t),
            Success,
        ),
        attempt(
            "module with its device's key and sr",
            "dev-a/mod-1",
            user_m1(),
            token("localhost/devices/dev-a", KEY_A, None, t),
            Code5,
        ),
        attempt(
            "module sr signed with the device key",
            "dev-a/mod-1",
            user_m1(),
            token(sr_m1, KEY_A, None, t),
            Code5,
        ),
        attempt(
            "module with a sibling module's token",
            "dev-a/mod-1",
            user_m1(),
            token("localhost/devices/dev-a/modules/mod-2", &key_m2, None, t),
            Code5,
        ),
        attempt(
            "module sr signed with a sibling's key",
            "dev-a/mod-1",
            user_m1(),
            token(sr_m1, &key_m2, None, t),
            Code5,
        ),
        attempt(
            "device with its module's token",
            "dev-a",
            hub_username("localhost", "dev-a"),
            token(sr_m1, &key_m1, None, t),
            Code5,
        ),
        attempt(
            "module client id with the device username",
            "dev-a/mod-1",
            hub_username("localhost", "dev-a"),
            token(sr_m1, &key_m1, None, t),
            Code4,
        ),
        attempt(
            "device client id with the module username",
            "dev-a",
            user_m1(),
            token(sr_m1, &key_m1, None, t),
            Code4,
        ),
        attempt(
            "the module under another device",
            "dev-b/mod-1",
            module_username("localhost", "dev-b", "mod-1"),
            token("localhost/devices/dev-b/modules/mod-1", &key_m1, None, t),
            Code5,
        ),
        attempt(
            "unknown module",
            "dev-a/mod-9",
            module_username("localhost", "dev-a", "mod-9"),
            token("localhost/devices/dev-a/modules/mod-9", &key_m1, None, t),
            Code5,
        ),
        attempt(
            "module through the device policy",
            "dev-a/mod-1",
            user_m1(),
            token(sr_m1, DEVICE_POLICY_KEY, Some("device"), t),
            Success,
        ),
    ];
    run_matrix(&emulator, attempts).await;
    assert_served_and_no_panic(&emulator).await;
}

// ---------------------------------------------------------------------------------------
// Authorization: topics of other identities
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn publishing_on_another_identitys_topics_closes_the_connection() {
    let emulator = start_default().await;
    let key_m1 = create_module(&emulator, "mod-1");
    create_module(&emulator, "mod-2");
    let device_topics = [
        "devices/dev-b/messages/events/",
        "devices/dev-ab/messages/events/",
        "devices/dev-a/messages/eventsX",
        "devices/dev-a/../dev-b/messages/events/",
        "devices/dev-a/modules/mod-1/messages/events/",
        "devices/dev-b/messages/devicebound/",
        "$dps/registrations/PUT/iotdps-register/?$rid=1",
        "$iothub/twin/PATCH/properties/desired/?$rid=1",
        "$iothub/methods/POST/reboot/?$rid=1",
    ];
    for topic in device_topics {
        let mut client = connected(&emulator, "dev-a", KEY_A).await;
        client.send(publish(topic, 1, b"spoof".to_vec())).await;
        assert_closed_silently(&mut client, &format!("device publishing to {topic}")).await;
    }
    let module_topics = [
        "devices/dev-a/messages/events/",
        "devices/dev-a/modules/mod-2/messages/events/",
        "devices/dev-b/modules/mod-1/messages/events/",
    ];
    for topic in module_topics {
        let mut client = connected_module(&emulator, "mod-1", &key_m1).await;
        client.send(publish(topic, 1, b"spoof".to_vec())).await;
        assert_closed_silently(&mut client, &format!("module publishing to {topic}")).await;
    }
    // A DPS client may not send telemetry, twin or method traffic.
    for topic in [
        "devices/python-device-008/messages/events/",
        "$iothub/twin/GET/?$rid=1",
    ] {
        let mut client = RawClient::connect(&emulator).await;
        let password = dps_token(
            SCOPE,
            QUICKSTART_REGISTRATION_ID,
            QUICKSTART_KEY,
            in_10_min(),
        );
        let code = client
            .mqtt_connect(
                QUICKSTART_REGISTRATION_ID,
                &dps_username(SCOPE, QUICKSTART_REGISTRATION_ID),
                &password,
            )
            .await;
        assert_eq!(code, ConnectReturnCode::Success);
        client.send(publish(topic, 1, b"spoof".to_vec())).await;
        assert_closed_silently(&mut client, &format!("DPS client publishing to {topic}")).await;
    }
    for device_id in ["dev-a", "dev-b", "python-device-008"] {
        assert_eq!(stored(&emulator, device_id), 0, "{device_id}");
    }
    assert_served_and_no_panic(&emulator).await;
}

#[tokio::test]
async fn subscribing_to_another_identitys_topics_gets_0x80_and_the_session_survives() {
    use SubscribeReasonCode::{Failure, Success};
    let emulator = start_default().await;
    let key_m1 = create_module(&emulator, "mod-1");
    let granted = Success(QoS::AtLeastOnce);

    let mut device = connected(&emulator, "dev-a", KEY_A).await;
    let filters = [
        ("devices/dev-a/messages/devicebound/#", granted),
        ("devices/dev-b/messages/devicebound/#", Failure),
        ("devices/dev-a/modules/mod-1/inputs/#", Failure),
        ("devices/+/modules/+/inputs/#", Failure),
        ("devices/#", Failure),
        ("+/+/+/+", Failure),
        ("$iothub/+/res/#", Failure),
        ("$iothub/twin/res/+", Failure),
        ("$dps/registrations/res/#", Failure),
        ("$iothub/methods/POST/#", granted),
    ];
    let (names, codes): (Vec<&str>, Vec<SubscribeReasonCode>) = filters.into_iter().unzip();
    device.send(subscribe(3, &names)).await;
    match expect_packet(&mut device, "SUBACK").await {
        Packet::SubAck(ack) => assert_eq!(ack.return_codes, codes),
        other => panic!("expected SUBACK, got {other:?}"),
    }
    device.send(Packet::PingReq).await;
    assert_eq!(
        expect_packet(&mut device, "PINGRESP").await,
        Packet::PingResp
    );

    let mut module = connected_module(&emulator, "mod-1", &key_m1).await;
    let filters = [
        ("devices/dev-a/modules/mod-1/inputs/#", granted),
        ("devices/dev-a/messages/devicebound/#", Failure),
        ("devices/+/messages/devicebound/#", Failure),
        ("devices/dev-a/modules/mod-2/inputs/#", Failure),
        ("devices/dev-b/modules/mod-1/inputs/#", Failure),
    ];
    let (names, codes): (Vec<&str>, Vec<SubscribeReasonCode>) = filters.into_iter().unzip();
    module.send(subscribe(4, &names)).await;
    match expect_packet(&mut module, "SUBACK").await {
        Packet::SubAck(ack) => assert_eq!(ack.return_codes, codes),
        other => panic!("expected SUBACK, got {other:?}"),
    }
    module.send(Packet::PingReq).await;
    assert_eq!(
        expect_packet(&mut module, "PINGRESP").await,
        Packet::PingResp
    );

    let mut dps = RawClient::connect(&emulator).await;
    let password = dps_token(
        SCOPE,
        QUICKSTART_REGISTRATION_ID,
        QUICKSTART_KEY,
        in_10_min(),
    );
    let code = dps
        .mqtt_connect(
            QUICKSTART_REGISTRATION_ID,
            &dps_username(SCOPE, QUICKSTART_REGISTRATION_ID),
            &password,
        )
        .await;
    assert_eq!(code, ConnectReturnCode::Success);
    let filters = [
        ("$dps/registrations/res/#", granted),
        ("$iothub/twin/res/#", Failure),
        ("devices/python-device-008/messages/devicebound/#", Failure),
        ("$dps/#", Failure),
    ];
    let (names, codes): (Vec<&str>, Vec<SubscribeReasonCode>) = filters.into_iter().unzip();
    dps.send(subscribe(5, &names)).await;
    match expect_packet(&mut dps, "SUBACK").await {
        Packet::SubAck(ack) => assert_eq!(ack.return_codes, codes),
        other => panic!("expected SUBACK, got {other:?}"),
    }
    dps.send(Packet::PingReq).await;
    assert_eq!(expect_packet(&mut dps, "PINGRESP").await, Packet::PingResp);
    assert_served_and_no_panic(&emulator).await;
}

#[tokio::test]
async fn cloud_to_device_messages_reach_only_their_device_even_through_a_wildcard() {
    let emulator = start_default().await;
    let mut intruder = connected(&emulator, "dev-a", KEY_A).await;
    intruder
        .send(subscribe(1, &["devices/+/messages/devicebound/#"]))
        .await;
    assert!(matches!(
        expect_packet(&mut intruder, "SUBACK").await,
        Packet::SubAck(_)
    ));
    let mut victim = connected(&emulator, "dev-b", KEY_B).await;
    victim
        .send(subscribe(1, &["devices/dev-b/messages/devicebound/#"]))
        .await;
    assert!(matches!(
        expect_packet(&mut victim, "SUBACK").await,
        Packet::SubAck(_)
    ));
    emulator
        .default_hub()
        .send_c2d("dev-b", C2dMessage::new("for dev-b only"))
        .expect("accepted")
        .durable()
        .await
        .expect("queued");
    match expect_packet(&mut victim, "C2D").await {
        Packet::Publish(p) => {
            assert!(
                p.topic.starts_with("devices/dev-b/messages/devicebound/"),
                "{}",
                p.topic
            );
            victim.send(Packet::PubAck(PubAck::new(p.pkid))).await;
        }
        other => panic!("expected the C2D message, got {other:?}"),
    }
    assert_eq!(
        intruder.recv(Duration::from_millis(500)).await,
        Err(RecvEnd::TimedOut),
        "dev-a received dev-b's message"
    );
    assert_served_and_no_panic(&emulator).await;
}
