//! Wire-level behaviour of the MQTT front, observed with a raw MQTT client: CONNACK codes,
//! topic ACLs, response topic shapes, limits and timeouts (protocol.md §2, §5; issue #2).

use std::time::Duration;

use bytes::Bytes;
use iotemu::SymmetricKey;
use iotemu::internals::mqtt::codec::{
    ConnectReturnCode, Packet, PubAck, Publish, QoS, SubscribeReasonCode,
};
use iotemu_e2e::*;
use rumqttc::mqttbytes::v4::Subscribe;

const SCOPE: &str = "0ne00000A0A";

fn key(b64: &str) -> SymmetricKey {
    SymmetricKey::from_base64(b64).unwrap()
}

/// Puts `device_id` in the default hub with `QUICKSTART_KEY` as both keys.
fn provision(emulator: &iotemu::Emulator, device_id: &str) {
    emulator.default_hub().provision_device(
        device_id,
        key(QUICKSTART_KEY),
        key(QUICKSTART_KEY),
        None,
    );
}

fn assert_nothing_stored(emulator: &iotemu::Emulator, device_id: &str) {
    let stored = emulator.default_hub().telemetry().messages(Some(device_id));
    assert!(
        stored.is_empty(),
        "{device_id} has stored telemetry: {stored:?}"
    );
}

/// Provisions `device_id` and returns a client connected as it.
async fn connected_device(emulator: &iotemu::Emulator, device_id: &str) -> RawClient {
    provision(emulator, device_id);
    let mut client = RawClient::connect(emulator).await;
    let token = device_token(
        "localhost",
        device_id,
        QUICKSTART_KEY,
        seconds_from_now(600),
    );
    let code = client
        .mqtt_connect(device_id, &hub_username("localhost", device_id), &token)
        .await;
    assert_eq!(code, ConnectReturnCode::Success);
    client
}

fn publish(topic: &str, qos: QoS, pkid: u16, payload: Vec<u8>) -> Packet {
    let mut publish = Publish::new(topic, qos, payload);
    publish.pkid = pkid;
    Packet::Publish(publish)
}

#[tokio::test]
async fn dps_responses_put_rid_first_and_poll_completes() {
    let emulator = start_emulator(None).await;
    let mut client = RawClient::connect(&emulator).await;
    let token = dps_token(
        SCOPE,
        QUICKSTART_REGISTRATION_ID,
        QUICKSTART_KEY,
        seconds_from_now(600),
    );
    let code = client
        .mqtt_connect(
            QUICKSTART_REGISTRATION_ID,
            &dps_username(SCOPE, QUICKSTART_REGISTRATION_ID),
            &token,
        )
        .await;
    assert_eq!(code, ConnectReturnCode::Success);
    let mut subscribe = Subscribe::new("$dps/registrations/res/#", QoS::AtLeastOnce);
    subscribe.pkid = 1;
    client.send(Packet::Subscribe(subscribe)).await;
    match client.recv(Duration::from_secs(5)).await.unwrap() {
        Packet::SubAck(ack) => assert_eq!(
            ack.return_codes,
            vec![SubscribeReasonCode::Success(QoS::AtLeastOnce)]
        ),
        other => panic!("expected SUBACK, got {other:?}"),
    }

    let body = format!(r#"{{"payload": null, "registrationId": "{QUICKSTART_REGISTRATION_ID}"}}"#);
    client
        .send(publish(
            "$dps/registrations/PUT/iotdps-register/?$rid=rid%2F1",
            QoS::AtLeastOnce,
            7,
            body.into_bytes(),
        ))
        .await;
    assert_eq!(
        client.recv(Duration::from_secs(5)).await.unwrap(),
        Packet::PubAck(PubAck::new(7))
    );
    let response = match client.recv(Duration::from_secs(5)).await.unwrap() {
        Packet::Publish(p) => p,
        other => panic!("expected the register response, got {other:?}"),
    };
    assert_eq!(
        response.topic,
        "$dps/registrations/res/202/?$rid=rid%2F1&retry-after=0"
    );
    assert_eq!(
        response.qos,
        QoS::AtLeastOnce,
        "delivered at the subscription's QoS"
    );
    client
        .send(Packet::PubAck(PubAck::new(response.pkid)))
        .await;
    let started: serde_json::Value = serde_json::from_slice(&response.payload).unwrap();
    assert_eq!(started["status"], "assigning");
    let operation_id = started["operationId"].as_str().unwrap().to_owned();

    let poll = format!(
        "$dps/registrations/GET/iotdps-get-operationstatus/?$rid=2&operationId={operation_id}"
    );
    client
        .send(publish(&poll, QoS::AtMostOnce, 0, b" ".to_vec()))
        .await;
    let done = match client.recv(Duration::from_secs(5)).await.unwrap() {
        Packet::Publish(p) => p,
        other => panic!("expected the poll response, got {other:?}"),
    };
    assert_eq!(done.topic, "$dps/registrations/res/200/?$rid=2");
    let done: serde_json::Value = serde_json::from_slice(&done.payload).unwrap();
    assert_eq!(done["operationId"], operation_id.as_str());
    assert_eq!(done["status"], "assigned");
    let state = &done["registrationState"];
    for field in [
        "registrationId",
        "createdDateTimeUtc",
        "assignedHub",
        "deviceId",
        "status",
        "substatus",
        "lastUpdatedDateTimeUtc",
        "etag",
    ] {
        assert!(
            state.get(field).is_some(),
            "registrationState.{field} missing: {state}"
        );
    }
    assert_eq!(state["deviceId"], QUICKSTART_DEVICE_ID);
    assert_eq!(state["assignedHub"], "localhost");
}

#[tokio::test]
async fn bad_credentials_get_connack_5_and_mismatched_client_id_gets_4() {
    let emulator = start_emulator(None).await;
    let wrong_key = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    let cases = [
        // DPS: wrong key, expired token, unknown registration, wrong id scope.
        (
            QUICKSTART_REGISTRATION_ID,
            dps_username(SCOPE, QUICKSTART_REGISTRATION_ID),
            dps_token(
                SCOPE,
                QUICKSTART_REGISTRATION_ID,
                wrong_key,
                seconds_from_now(600),
            ),
            ConnectReturnCode::NotAuthorized,
        ),
        (
            QUICKSTART_REGISTRATION_ID,
            dps_username(SCOPE, QUICKSTART_REGISTRATION_ID),
            dps_token(
                SCOPE,
                QUICKSTART_REGISTRATION_ID,
                QUICKSTART_KEY,
                seconds_from_now(-5),
            ),
            ConnectReturnCode::NotAuthorized,
        ),
        (
            "no-such-device",
            dps_username(SCOPE, "no-such-device"),
            dps_token(
                SCOPE,
                "no-such-device",
                QUICKSTART_KEY,
                seconds_from_now(600),
            ),
            ConnectReturnCode::NotAuthorized,
        ),
        (
            QUICKSTART_REGISTRATION_ID,
            dps_username("0ne99999999", QUICKSTART_REGISTRATION_ID),
            dps_token(
                "0ne99999999",
                QUICKSTART_REGISTRATION_ID,
                QUICKSTART_KEY,
                seconds_from_now(600),
            ),
            ConnectReturnCode::NotAuthorized,
        ),
        // Hub: unknown device.
        (
            "ghost",
            hub_username("localhost", "ghost"),
            device_token("localhost", "ghost", QUICKSTART_KEY, seconds_from_now(600)),
            ConnectReturnCode::NotAuthorized,
        ),
        // Client id does not match the username.
        (
            "someone-else",
            dps_username(SCOPE, QUICKSTART_REGISTRATION_ID),
            dps_token(
                SCOPE,
                QUICKSTART_REGISTRATION_ID,
                QUICKSTART_KEY,
                seconds_from_now(600),
            ),
            ConnectReturnCode::BadUserNamePassword,
        ),
        // Garbage password.
        (
            QUICKSTART_REGISTRATION_ID,
            dps_username(SCOPE, QUICKSTART_REGISTRATION_ID),
            "not a token".to_owned(),
            ConnectReturnCode::NotAuthorized,
        ),
    ];
    for (client_id, username, password, expected) in cases {
        let mut client = RawClient::connect(&emulator).await;
        assert_eq!(
            client.mqtt_connect(client_id, &username, &password).await,
            expected,
            "{username}"
        );
        client.expect_closed().await;
    }

    // A hub device with a valid device but an expired token.
    provision(&emulator, "dev-exp");
    let mut client = RawClient::connect(&emulator).await;
    let expired = device_token("localhost", "dev-exp", QUICKSTART_KEY, seconds_from_now(-1));
    let code = client
        .mqtt_connect("dev-exp", &hub_username("localhost", "dev-exp"), &expired)
        .await;
    assert_eq!(code, ConnectReturnCode::NotAuthorized);
}

#[tokio::test]
async fn disabled_device_gets_connack_3() {
    let emulator = start_emulator(None).await;
    let hub = emulator.default_hub();
    hub.provision_device("dev-off", key(QUICKSTART_KEY), key(QUICKSTART_KEY), None);
    hub.set_device_status("dev-off", iotemu::DeviceStatus::Disabled);
    let mut client = RawClient::connect(&emulator).await;
    let token = device_token(
        "localhost",
        "dev-off",
        QUICKSTART_KEY,
        seconds_from_now(600),
    );
    let code = client
        .mqtt_connect("dev-off", &hub_username("localhost", "dev-off"), &token)
        .await;
    assert_eq!(code, ConnectReturnCode::ServiceUnavailable);
}

#[tokio::test]
async fn telemetry_is_stored_before_the_puback_with_decoded_properties() {
    let emulator = start_emulator(None).await;
    let mut client = connected_device(&emulator, "dev-t").await;
    let topic = "devices/dev-t/messages/events/%24.mid=m%201&%24.ct=application%2Fjson&%24.ce=utf-8&a%20b=c%26d";
    client
        .send(publish(topic, QoS::AtLeastOnce, 42, b"{\"t\":1}".to_vec()))
        .await;
    assert_eq!(
        client.recv(Duration::from_secs(5)).await.unwrap(),
        Packet::PubAck(PubAck::new(42))
    );
    // Already there the moment the PUBACK arrived: no waiting.
    let stored = emulator.default_hub().telemetry().messages(Some("dev-t"));
    assert_eq!(stored.len(), 1);
    let m = &stored[0];
    assert_eq!(m.message_id(), Some("m 1"));
    assert_eq!(m.system.content_type.as_deref(), Some("application/json"));
    assert_eq!(m.properties.get("a b").map(String::as_str), Some("c&d"));
    assert_eq!(m.body, Bytes::from_static(b"{\"t\":1}"));
}

#[tokio::test]
async fn publishing_to_another_devices_topic_disconnects() {
    let emulator = start_emulator(None).await;
    provision(&emulator, "victim");
    let mut client = connected_device(&emulator, "intruder").await;
    client
        .send(publish(
            "devices/victim/messages/events/",
            QoS::AtLeastOnce,
            1,
            b"spoof".to_vec(),
        ))
        .await;
    client.expect_closed().await;
    assert_nothing_stored(&emulator, "victim");
}

#[tokio::test]
async fn foreign_subscriptions_are_refused_with_0x80_and_the_session_survives() {
    let emulator = start_emulator(None).await;
    let mut client = connected_device(&emulator, "dev-s").await;
    let mut subscribe = Subscribe::new("devices/other/messages/devicebound/#", QoS::AtLeastOnce);
    subscribe.add("$iothub/twin/res/#".into(), QoS::ExactlyOnce);
    subscribe.add("#".into(), QoS::AtMostOnce);
    subscribe.pkid = 3;
    client.send(Packet::Subscribe(subscribe)).await;
    match client.recv(Duration::from_secs(5)).await.unwrap() {
        Packet::SubAck(ack) => assert_eq!(
            ack.return_codes,
            vec![
                SubscribeReasonCode::Failure,
                SubscribeReasonCode::Success(QoS::AtLeastOnce),
                SubscribeReasonCode::Failure
            ]
        ),
        other => panic!("expected SUBACK, got {other:?}"),
    }
    client.send(Packet::PingReq).await;
    assert_eq!(
        client.recv(Duration::from_secs(5)).await.unwrap(),
        Packet::PingResp
    );
}

#[tokio::test]
async fn qos2_publish_closes_the_connection() {
    let emulator = start_emulator(None).await;
    let mut client = connected_device(&emulator, "dev-q2").await;
    client
        .send(publish(
            "devices/dev-q2/messages/events/",
            QoS::ExactlyOnce,
            9,
            b"x".to_vec(),
        ))
        .await;
    client.expect_closed().await;
    assert_nothing_stored(&emulator, "dev-q2");
}

#[tokio::test]
async fn oversize_telemetry_is_refused_and_not_stored() {
    let emulator = start_emulator(None).await;
    // Just over IoT Hub's 256 KB limit: passes the codec, refused by the hub.
    let mut client = connected_device(&emulator, "dev-big").await;
    let body = vec![b'x'; 256 * 1024 + 1];
    client
        .send(publish(
            "devices/dev-big/messages/events/",
            QoS::AtLeastOnce,
            1,
            body,
        ))
        .await;
    client.expect_closed().await;
    // Far over: refused by the codec from the header alone.
    let mut client = connected_device(&emulator, "dev-big").await;
    client
        .send(publish(
            "devices/dev-big/messages/events/",
            QoS::AtLeastOnce,
            2,
            vec![b'y'; 1024 * 1024],
        ))
        .await;
    client.expect_closed().await;
    assert_nothing_stored(&emulator, "dev-big");
    // Exactly at the limit is fine.
    let mut client = connected_device(&emulator, "dev-big").await;
    client
        .send(publish(
            "devices/dev-big/messages/events/",
            QoS::AtLeastOnce,
            3,
            vec![b'z'; 256 * 1024],
        ))
        .await;
    assert_eq!(
        client.recv(Duration::from_secs(5)).await.unwrap(),
        Packet::PubAck(PubAck::new(3))
    );
}

#[tokio::test]
async fn a_second_connection_replaces_the_first() {
    let emulator = start_emulator(None).await;
    let mut first = connected_device(&emulator, "dev-dup").await;
    let mut second = connected_device(&emulator, "dev-dup").await;
    first.expect_closed().await;
    second.send(Packet::PingReq).await;
    assert_eq!(
        second.recv(Duration::from_secs(5)).await.unwrap(),
        Packet::PingResp
    );
    assert!(emulator.default_hub().connections().is_connected("dev-dup"));
}

#[tokio::test]
async fn malformed_packets_close_only_that_connection() {
    let emulator = start_emulator(None).await;
    let mut client = connected_device(&emulator, "dev-m").await;
    // A PUBLISH whose remaining length promises more than its topic length allows.
    client.send_bytes(&[0x32, 0x03, 0xff, 0xff, 0x00]).await;
    client.expect_closed().await;
    // Junk before CONNECT.
    let mut junk = RawClient::connect(&emulator).await;
    junk.send_bytes(b"GET / HTTP/1.1\r\n\r\n").await;
    junk.expect_closed().await;
    // The emulator keeps serving.
    let mut client = connected_device(&emulator, "dev-m").await;
    client.send(Packet::PingReq).await;
    assert_eq!(
        client.recv(Duration::from_secs(5)).await.unwrap(),
        Packet::PingResp
    );
}

#[tokio::test]
async fn an_idle_tcp_peer_does_not_block_other_handshakes() {
    let emulator = start_emulator(None).await;
    let _idle = tokio::net::TcpStream::connect(("127.0.0.1", emulator.mqtt_port()))
        .await
        .unwrap();
    let mut client =
        tokio::time::timeout(Duration::from_secs(5), connected_device(&emulator, "dev-i"))
            .await
            .expect("handshake not blocked by the idle peer");
    client.send(Packet::PingReq).await;
    assert_eq!(
        client.recv(Duration::from_secs(5)).await.unwrap(),
        Packet::PingResp
    );
}

#[tokio::test]
async fn silent_clients_are_dropped_after_one_and_a_half_keep_alives() {
    let emulator = start_emulator(None).await;
    provision(&emulator, "dev-ka");
    let mut client = RawClient::connect(&emulator).await;
    let mut connect = iotemu::internals::mqtt::codec::Connect::new("dev-ka");
    connect.keep_alive = 1;
    connect.login = Some(rumqttc::mqttbytes::v4::Login::new(
        hub_username("localhost", "dev-ka"),
        device_token("localhost", "dev-ka", QUICKSTART_KEY, seconds_from_now(600)),
    ));
    client.send(Packet::Connect(connect)).await;
    assert!(matches!(
        client.recv(Duration::from_secs(5)).await,
        Ok(Packet::ConnAck(_))
    ));
    // Stays open for the first second, closes by 1.5 s (allow scheduling slack).
    assert_eq!(
        client.recv(Duration::from_millis(900)).await,
        Err(RecvEnd::TimedOut)
    );
    assert_eq!(
        client.recv(Duration::from_secs(3)).await,
        Err(RecvEnd::Closed)
    );
}

#[tokio::test]
async fn connection_closes_when_its_sas_token_expires() {
    let emulator = start_emulator(None).await;
    provision(&emulator, "dev-ttl");
    let mut client = RawClient::connect(&emulator).await;
    let token = device_token("localhost", "dev-ttl", QUICKSTART_KEY, seconds_from_now(2));
    let code = client
        .mqtt_connect("dev-ttl", &hub_username("localhost", "dev-ttl"), &token)
        .await;
    assert_eq!(code, ConnectReturnCode::Success);
    assert_eq!(
        client.recv(Duration::from_secs(6)).await,
        Err(RecvEnd::Closed)
    );
}

/// `se` values past what the clock can hold (issue #12): the token is signed correctly with a
/// real key, so only the expiry can refuse it. CONNACK 5, no panic, and the port keeps serving.
#[tokio::test]
async fn absurd_sas_expiry_gets_connack_5_on_dps_and_hub() {
    let emulator = start_emulator(None).await;
    provision(&emulator, "dev-far");
    for expiry in [1u64 << 63, u64::MAX, 253_402_300_800] {
        let mut dps = RawClient::connect(&emulator).await;
        let token = dps_token(SCOPE, QUICKSTART_REGISTRATION_ID, QUICKSTART_KEY, expiry);
        let code = dps
            .mqtt_connect(
                QUICKSTART_REGISTRATION_ID,
                &dps_username(SCOPE, QUICKSTART_REGISTRATION_ID),
                &token,
            )
            .await;
        assert_eq!(code, ConnectReturnCode::NotAuthorized, "DPS se={expiry}");
        dps.expect_closed().await;

        let mut hub = RawClient::connect(&emulator).await;
        let token = device_token("localhost", "dev-far", QUICKSTART_KEY, expiry);
        let code = hub
            .mqtt_connect("dev-far", &hub_username("localhost", "dev-far"), &token)
            .await;
        assert_eq!(code, ConnectReturnCode::NotAuthorized, "hub se={expiry}");
        hub.expect_closed().await;
    }
    // The last representable second (9999-12-31T23:59:59Z) is a valid, very long-lived token.
    let mut hub = RawClient::connect(&emulator).await;
    let token = device_token("localhost", "dev-far", QUICKSTART_KEY, 253_402_300_799);
    let code = hub
        .mqtt_connect("dev-far", &hub_username("localhost", "dev-far"), &token)
        .await;
    assert_eq!(code, ConnectReturnCode::Success);
    hub.send(Packet::PingReq).await;
    assert_eq!(
        hub.recv(Duration::from_secs(5)).await.unwrap(),
        Packet::PingResp
    );
}

/// A CONNECT for `device_id` with a valid token, as raw bytes, and the index of its protocol
/// level byte (the connect flags follow it).
fn raw_connect(device_id: &str) -> (Vec<u8>, usize) {
    let mut connect = iotemu::internals::mqtt::codec::Connect::new(device_id);
    connect.login = Some(rumqttc::mqttbytes::v4::Login::new(
        hub_username("localhost", device_id),
        device_token(
            "localhost",
            device_id,
            QUICKSTART_KEY,
            seconds_from_now(600),
        ),
    ));
    let mut wire = bytes::BytesMut::new();
    iotemu::internals::mqtt::codec::encode(&Packet::Connect(connect), &mut wire).unwrap();
    let length_bytes = wire[1..].iter().position(|b| b & 0x80 == 0).unwrap() + 1;
    // Fixed header, then 0x00 0x04 "MQTT", then the level.
    let level = 1 + length_bytes + 6;
    (wire.to_vec(), level)
}

/// A client that behaves still gets a session and an answer after a violation.
async fn assert_still_served(emulator: &iotemu::Emulator, device_id: &str) {
    let mut client = connected_device(emulator, device_id).await;
    client.send(Packet::PingReq).await;
    assert_eq!(
        client.recv(Duration::from_secs(5)).await.unwrap(),
        Packet::PingResp
    );
}

/// The server's only possible reply to a protocol violation: closing, with nothing sent.
async fn assert_closed_silently(client: &mut RawClient, what: &str) {
    assert_eq!(
        client.recv(Duration::from_secs(5)).await,
        Err(RecvEnd::Closed),
        "{what}"
    );
}

#[tokio::test]
async fn connect_with_the_reserved_flag_set_is_closed_without_connack() {
    let emulator = start_emulator(None).await;
    provision(&emulator, "dev-rsv");
    let (mut wire, level) = raw_connect("dev-rsv");
    wire[level + 1] |= 0x01;
    let mut client = RawClient::connect(&emulator).await;
    client.send_bytes(&wire).await;
    assert_closed_silently(&mut client, "CONNECT reserved flag (§3.1.2-3)").await;
    assert!(!emulator.default_hub().connections().is_connected("dev-rsv"));
    assert_still_served(&emulator, "dev-rsv").await;
}

#[tokio::test]
async fn protocol_level_other_than_4_gets_connack_1_then_close() {
    let emulator = start_emulator(None).await;
    provision(&emulator, "dev-lvl");
    for bad_level in [3u8, 5, 0, 255] {
        let (mut wire, level) = raw_connect("dev-lvl");
        wire[level] = bad_level;
        let mut client = RawClient::connect(&emulator).await;
        client.send_bytes(&wire).await;
        match client.recv(Duration::from_secs(5)).await {
            Ok(Packet::ConnAck(ack)) => assert_eq!(
                ack.code,
                ConnectReturnCode::RefusedProtocolVersion,
                "level {bad_level}"
            ),
            other => panic!("level {bad_level}: expected CONNACK 1, got {other:?}"),
        }
        assert_eq!(
            client.recv(Duration::from_secs(5)).await,
            Err(RecvEnd::Closed)
        );
    }
    assert_still_served(&emulator, "dev-lvl").await;
}

#[tokio::test]
async fn subscribe_with_wrong_fixed_header_flags_is_closed() {
    let emulator = start_emulator(None).await;
    let mut client = connected_device(&emulator, "dev-sflags").await;
    let mut subscribe = Subscribe::new(
        "devices/dev-sflags/messages/devicebound/#",
        QoS::AtLeastOnce,
    );
    subscribe.pkid = 1;
    let mut wire = bytes::BytesMut::new();
    iotemu::internals::mqtt::codec::encode(&Packet::Subscribe(subscribe), &mut wire).unwrap();
    assert_eq!(wire[0], 0x82);
    wire[0] = 0x80;
    client.send_bytes(&wire).await;
    assert_closed_silently(&mut client, "SUBSCRIBE flags 0000 (§3.8.1-1)").await;
    assert_still_served(&emulator, "dev-sflags").await;
}

#[tokio::test]
async fn nul_in_a_topic_name_or_filter_is_closed_and_nothing_is_stored() {
    let emulator = start_emulator(None).await;
    let mut client = connected_device(&emulator, "dev-nul").await;
    client
        .send(publish(
            "devices/dev-nul/messages/events/a\0b",
            QoS::AtLeastOnce,
            7,
            b"x".to_vec(),
        ))
        .await;
    assert_closed_silently(&mut client, "NUL in a topic name (§1.5.3)").await;
    assert_nothing_stored(&emulator, "dev-nul");

    let mut client = connected_device(&emulator, "dev-nul").await;
    let subscribe = Subscribe::new("$iothub/twin/res/\0#", QoS::AtLeastOnce);
    client
        .send(Packet::Subscribe(Subscribe {
            pkid: 3,
            ..subscribe
        }))
        .await;
    assert_closed_silently(&mut client, "NUL in a topic filter (§1.5.3)").await;
    assert_still_served(&emulator, "dev-nul").await;
}

#[tokio::test]
async fn unsubscribe_without_topics_is_closed() {
    let emulator = start_emulator(None).await;
    let mut client = connected_device(&emulator, "dev-unsub").await;
    // UNSUBSCRIBE, flags 0010, remaining length 2: a packet identifier and no topic filter.
    client.send_bytes(&[0xa2, 0x02, 0x00, 0x01]).await;
    assert_closed_silently(&mut client, "empty UNSUBSCRIBE (§3.10.3-2)").await;
    assert_still_served(&emulator, "dev-unsub").await;
}

#[tokio::test]
async fn packet_identifier_0_is_closed() {
    let emulator = start_emulator(None).await;
    let topic = b"devices/dev-pk0/messages/events/";
    // PUBLISH QoS 1 (flags 0010) with packet identifier 0.
    let mut publish_pk0 = vec![
        0x32,
        (2 + topic.len() + 2 + 1) as u8,
        0x00,
        topic.len() as u8,
    ];
    publish_pk0.extend_from_slice(topic);
    publish_pk0.extend_from_slice(&[0x00, 0x00, b'x']);
    let filter = b"devices/dev-pk0/messages/devicebound/#";
    // SUBSCRIBE with packet identifier 0, one filter at QoS 1.
    let mut subscribe_pk0 = vec![0x82, (2 + 2 + filter.len() + 1) as u8, 0x00, 0x00, 0x00];
    subscribe_pk0.push(filter.len() as u8);
    subscribe_pk0.extend_from_slice(filter);
    subscribe_pk0.push(0x01);
    // UNSUBSCRIBE with packet identifier 0, one filter.
    let mut unsubscribe_pk0 = vec![0xa2, (2 + 2 + filter.len()) as u8, 0x00, 0x00, 0x00];
    unsubscribe_pk0.push(filter.len() as u8);
    unsubscribe_pk0.extend_from_slice(filter);
    for (what, wire) in [
        ("PUBLISH", publish_pk0),
        ("SUBSCRIBE", subscribe_pk0),
        ("UNSUBSCRIBE", unsubscribe_pk0),
    ] {
        let mut client = connected_device(&emulator, "dev-pk0").await;
        client.send_bytes(&wire).await;
        assert_closed_silently(&mut client, &format!("{what} with packet id 0 (§2.3.1-1)")).await;
    }
    assert_nothing_stored(&emulator, "dev-pk0");
    assert_still_served(&emulator, "dev-pk0").await;
}

/// MQTT 3.1.1 §3.1.4 lets a client send on right after CONNECT. Packets that arrive together
/// with the CONNECT are answered without waiting for more bytes (found by the mqtt_session
/// fuzz target: the session only decoded after its next read, so a client waiting for its
/// SUBACK waited until the keep-alive ran out).
#[tokio::test]
async fn packets_sent_together_with_connect_are_answered() {
    use bytes::BytesMut;
    use iotemu::internals::mqtt::codec::{self, Connect};
    use rumqttc::mqttbytes::v4::Login;

    let emulator = start_emulator(None).await;
    let device_id = "pipelined-device";
    provision(&emulator, device_id);
    let token = device_token(
        "localhost",
        device_id,
        QUICKSTART_KEY,
        seconds_from_now(600),
    );
    let mut connect = Connect::new(device_id);
    connect.keep_alive = 60;
    connect.login = Some(Login::new(hub_username("localhost", device_id), token));
    let mut subscribe = Subscribe::new("$iothub/twin/res/#", QoS::AtLeastOnce);
    subscribe.pkid = 1;
    let telemetry = publish(
        &format!("devices/{device_id}/messages/events/"),
        QoS::AtLeastOnce,
        2,
        b"sent before CONNACK".to_vec(),
    );
    let mut wire = BytesMut::new();
    for packet in [
        Packet::Connect(connect),
        Packet::Subscribe(subscribe),
        telemetry,
    ] {
        codec::encode(&packet, &mut wire).unwrap();
    }
    let mut client = RawClient::connect(&emulator).await;
    client.send_bytes(&wire).await;
    let mut answers = Vec::new();
    for _ in 0..3 {
        answers.push(client.recv(Duration::from_secs(5)).await.unwrap());
    }
    assert!(
        matches!(&answers[0], Packet::ConnAck(ack) if ack.code == ConnectReturnCode::Success),
        "{answers:?}"
    );
    assert!(
        matches!(&answers[1], Packet::SubAck(ack) if ack.pkid == 1 && ack.return_codes == [SubscribeReasonCode::Success(QoS::AtLeastOnce)]),
        "{answers:?}"
    );
    assert_eq!(answers[2], Packet::PubAck(PubAck::new(2)));
    assert_eq!(
        emulator
            .default_hub()
            .telemetry()
            .messages(Some(device_id))
            .len(),
        1
    );
}
