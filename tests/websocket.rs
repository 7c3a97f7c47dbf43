//! MQTT over WebSocket on the HTTPS port (`/$iothub/websocket`, subprotocol `mqtt`): the same
//! DPS and hub sessions as on 8883, whatever the WebSocket framing, with the TLS client
//! certificate still reaching X.509 authentication.

use std::time::Duration;

use iotemu::certs;
use iotemu::internals::mqtt::codec::{
    self, ConnectReturnCode, Packet, PubAck, Publish, QoS, Subscribe,
};
use iotemu_e2e::*;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

const SCOPE: &str = "0ne00000A0A";
const WAIT: Duration = Duration::from_secs(5);

fn quickstart_dps_token() -> String {
    dps_token(
        SCOPE,
        QUICKSTART_REGISTRATION_ID,
        QUICKSTART_KEY,
        seconds_from_now(600),
    )
}

fn quickstart_device_token() -> String {
    device_token(
        "localhost",
        QUICKSTART_DEVICE_ID,
        QUICKSTART_KEY,
        seconds_from_now(600),
    )
}

/// Registers the quickstart device over WSS so the hub knows it.
async fn register_quickstart(emulator: &iotemu::Emulator) -> serde_json::Value {
    let mut client = WsClient::connect(emulator).await;
    let code = client
        .mqtt_connect(
            QUICKSTART_REGISTRATION_ID,
            &dps_username(SCOPE, QUICKSTART_REGISTRATION_ID),
            &quickstart_dps_token(),
        )
        .await;
    assert_eq!(code, ConnectReturnCode::Success);
    client.register(QUICKSTART_REGISTRATION_ID).await
}

fn telemetry(device_id: &str, pkid: u16, body: &str) -> Publish {
    let mut publish = Publish::new(
        format!("devices/{device_id}/messages/events/"),
        QoS::AtLeastOnce,
        body.as_bytes().to_vec(),
    );
    publish.pkid = pkid;
    publish
}

fn wire(packet: &Packet) -> Vec<u8> {
    let mut buf = bytes::BytesMut::new();
    codec::encode(packet, &mut buf).unwrap();
    buf.to_vec()
}

#[tokio::test]
async fn dps_registration_over_websocket() {
    let emulator = start_emulator(None).await;
    let result = register_quickstart(&emulator).await;
    assert_eq!(result["status"], "assigned", "{result}");
    assert_eq!(result["registrationState"]["assignedHub"], "localhost");
    assert_eq!(
        result["registrationState"]["deviceId"],
        QUICKSTART_DEVICE_ID
    );
}

#[tokio::test]
async fn hub_telemetry_over_websocket_is_acknowledged_and_stored() {
    let emulator = start_emulator(None).await;
    register_quickstart(&emulator).await;
    // azure-sdk-for-c's path, query included.
    let mut hub = WsClient::connect_as(
        &emulator,
        None,
        "/$iothub/websocket?iothub-no-client-cert=true",
    )
    .await;
    let code = hub
        .mqtt_connect(
            QUICKSTART_DEVICE_ID,
            &hub_username("localhost", QUICKSTART_DEVICE_ID),
            &quickstart_device_token(),
        )
        .await;
    assert_eq!(code, ConnectReturnCode::Success);
    hub.send(Packet::Publish(telemetry(
        QUICKSTART_DEVICE_ID,
        7,
        "over wss",
    )))
    .await;
    assert_eq!(hub.recv(WAIT).await, Ok(Packet::PubAck(PubAck::new(7))));
    let stored = emulator
        .default_hub()
        .telemetry()
        .messages(Some(QUICKSTART_DEVICE_ID));
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].body_text(), Some("over wss"));
}

#[tokio::test]
async fn wrong_key_is_refused_with_connack_5() {
    let emulator = start_emulator(None).await;
    let mut client = WsClient::connect(&emulator).await;
    let wrong = dps_token(
        SCOPE,
        QUICKSTART_REGISTRATION_ID,
        QUICKSTART_GROUP_KEY,
        seconds_from_now(600),
    );
    let code = client
        .mqtt_connect(
            QUICKSTART_REGISTRATION_ID,
            &dps_username(SCOPE, QUICKSTART_REGISTRATION_ID),
            &wrong,
        )
        .await;
    assert_eq!(code, ConnectReturnCode::NotAuthorized);
    assert_eq!(client.recv(WAIT).await, Err(RecvEnd::Closed));
}

#[tokio::test]
async fn upgrade_without_the_mqtt_subprotocol_is_400() {
    let emulator = start_emulator(None).await;
    let path = "/$iothub/websocket";
    assert_eq!(
        wss_handshake(&emulator, None, path, None).await.err(),
        Some(400)
    );
    assert_eq!(
        wss_handshake(&emulator, None, path, Some("amqp, mqttv3.1"))
            .await
            .err(),
        Some(400)
    );
    // Offered among others, `mqtt` is chosen.
    assert!(
        wss_handshake(&emulator, None, path, Some("wamp, mqtt"))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn packets_may_span_frames_and_frames_may_carry_several_packets() {
    let emulator = start_emulator(None).await;
    register_quickstart(&emulator).await;
    let mut hub = WsClient::connect(&emulator).await;

    // CONNECT cut in three frames, one of them empty.
    let mut connect = codec::Connect::new(QUICKSTART_DEVICE_ID);
    connect.keep_alive = 60;
    connect.login = Some(rumqttc::mqttbytes::v4::Login::new(
        hub_username("localhost", QUICKSTART_DEVICE_ID),
        quickstart_device_token(),
    ));
    let connect = wire(&Packet::Connect(connect));
    hub.send_frames(&[&connect[..3], &[], &connect[3..]]).await;
    match hub.recv(WAIT).await {
        Ok(Packet::ConnAck(ack)) => assert_eq!(ack.code, ConnectReturnCode::Success),
        other => panic!("expected CONNACK, got {other:?}"),
    }

    // A PUBLISH split across two frames, the second also carrying a whole SUBSCRIBE and the
    // start of another PUBLISH.
    let first = wire(&Packet::Publish(telemetry(QUICKSTART_DEVICE_ID, 1, "one")));
    let mut subscribe = Subscribe::new("$iothub/twin/res/#", QoS::AtLeastOnce);
    subscribe.pkid = 2;
    let subscribe = wire(&Packet::Subscribe(subscribe));
    let third = wire(&Packet::Publish(telemetry(
        QUICKSTART_DEVICE_ID,
        3,
        "three",
    )));
    let mut middle = first[5..].to_vec();
    middle.extend_from_slice(&subscribe);
    middle.extend_from_slice(&third[..4]);
    hub.send_frames(&[&first[..5], &middle, &third[4..]]).await;

    let mut answers = Vec::new();
    for _ in 0..3 {
        answers.push(hub.recv(WAIT).await.expect("answer"));
    }
    assert_eq!(answers[0], Packet::PubAck(PubAck::new(1)));
    assert!(
        matches!(&answers[1], Packet::SubAck(ack) if ack.pkid == 2),
        "{answers:?}"
    );
    assert_eq!(answers[2], Packet::PubAck(PubAck::new(3)));
    let bodies: Vec<String> = emulator
        .default_hub()
        .telemetry()
        .messages(Some(QUICKSTART_DEVICE_ID))
        .iter()
        .filter_map(|m| m.body_text().map(str::to_owned))
        .collect();
    assert_eq!(bodies, ["one", "three"]);
}

#[tokio::test]
async fn pings_are_answered_and_text_frames_close_the_session() {
    let emulator = start_emulator(None).await;
    let mut client = WsClient::connect(&emulator).await;
    let code = client
        .mqtt_connect(
            QUICKSTART_REGISTRATION_ID,
            &dps_username(SCOPE, QUICKSTART_REGISTRATION_ID),
            &quickstart_dps_token(),
        )
        .await;
    assert_eq!(code, ConnectReturnCode::Success);
    client
        .send_message(Message::Ping(bytes::Bytes::from_static(b"hi")))
        .await;
    assert_eq!(
        client.recv_control(WAIT).await,
        Ok(Message::Pong(bytes::Bytes::from_static(b"hi")))
    );
    client.send_message(Message::text("not mqtt")).await;
    assert_eq!(client.recv(WAIT).await, Err(RecvEnd::Closed));
}

#[tokio::test]
async fn x509_client_certificate_reaches_the_session_over_websocket() {
    let device = certs::self_signed_device("wss-x509-dev", 30).unwrap();
    let fixture = json!({
        "dps": { "idScope": SCOPE, "hostName": "localhost" },
        "enrollments": [{ "registrationId": "wss-x509-dev", "attestation": { "type": "x509",
            "x509": { "clientCertificates": { "primary": { "certificate": device.cert_pem } } } } }],
    })
    .to_string();
    let emulator = iotemu::Emulator::builder()
        .fixture_json("wss x509 fixture", &fixture)
        .retry_after(0)
        .start()
        .await
        .unwrap();
    let identity = || Some((device.full_chain_der().to_vec(), device.private_key_der()));

    let mut dps = WsClient::connect_as(&emulator, identity(), "/$iothub/websocket").await;
    let code = dps
        .mqtt_connect("wss-x509-dev", &dps_username(SCOPE, "wss-x509-dev"), "")
        .await;
    assert_eq!(code, ConnectReturnCode::Success);
    let result = dps.register("wss-x509-dev").await;
    assert_eq!(result["status"], "assigned", "{result}");

    let mut hub = WsClient::connect_as(&emulator, identity(), "/$iothub/websocket").await;
    let code = hub
        .mqtt_connect(
            "wss-x509-dev",
            &hub_username("localhost", "wss-x509-dev"),
            "",
        )
        .await;
    assert_eq!(code, ConnectReturnCode::Success);
    hub.send(Packet::Publish(telemetry("wss-x509-dev", 9, "cert")))
        .await;
    assert_eq!(hub.recv(WAIT).await, Ok(Packet::PubAck(PubAck::new(9))));

    // Without the certificate there is no credential at all.
    let mut anonymous = WsClient::connect(&emulator).await;
    let code = anonymous
        .mqtt_connect(
            "wss-x509-dev",
            &hub_username("localhost", "wss-x509-dev"),
            "",
        )
        .await;
    assert_eq!(code, ConnectReturnCode::NotAuthorized);
}
