//! Time control (issue #19; docs/faults.md, "Time control"): advancing the emulator's clock
//! expires C2D messages (with their feedback), times out a method call and ends an assignment
//! delay — in milliseconds — without cutting off connected clients; advancing it with
//! credentials also ends a session whose SAS token's remaining life ran out, while tokens a
//! client makes afterwards, from its own clock, are still accepted. Also the control-port
//! routes, which refuse bad steps and leave the clocks unchanged.

use std::time::Duration;

use iotemu::internals::mqtt::codec::{ConnectReturnCode, Packet, QoS};
use iotemu::{C2dMessage, Emulator, SymmetricKey, WaitStored};
use iotemu_e2e::*;
use rumqttc::mqttbytes::v4::Subscribe;
use serde_json::json;

const MINUTE: Duration = Duration::from_secs(60);

/// Connects `device_id` (provisioned with the quickstart key) with a token that expires at
/// `expiry` (seconds since the epoch, by the wall clock).
async fn connect(emulator: &Emulator, device_id: &str, expiry: u64) -> RawClient {
    let mut client = RawClient::connect(emulator).await;
    let token = device_token("localhost", device_id, QUICKSTART_KEY, expiry);
    let username = hub_username("localhost", device_id);
    assert_eq!(
        client.mqtt_connect(device_id, &username, &token).await,
        ConnectReturnCode::Success
    );
    client
}

fn tracked(id: &str) -> C2dMessage {
    let mut message = C2dMessage::new(id.to_owned());
    message.message_id = Some(id.into());
    message.ack = Some("full".into());
    message
}

#[tokio::test]
async fn c2d_messages_expire_by_the_advanced_clock_and_report_it() {
    let emulator = start_emulator(None).await;
    let hub = emulator.default_hub();
    let key = SymmetricKey::from_base64(QUICKSTART_KEY).unwrap();
    hub.provision_device("ttl", key.clone(), key, None);
    // Without an expiry: Azure's default time to live, one hour.
    hub.send_c2d("ttl", tracked("default-ttl"))
        .wait_stored()
        .unwrap();
    let mut later = tracked("two-hours");
    later.expiry = Some(emulator.clock().now() + 120 * MINUTE);
    hub.send_c2d("ttl", later).wait_stored().unwrap();

    let advanced = emulator.advance(59 * MINUTE).await.expect("a valid step");
    assert_eq!(advanced.offset, 59 * MINUTE);
    assert_eq!(advanced.expired_c2d, 0, "nothing is an hour old yet");
    assert!(hub.receive_feedback(emulator.clock().now()).is_none());

    let advanced = emulator.advance(2 * MINUTE).await.expect("a valid step");
    assert_eq!(advanced.expired_c2d, 1);
    let batch = hub
        .receive_feedback(emulator.clock().now())
        .expect("the expiry's feedback");
    let records = batch.body();
    assert_eq!(records.as_array().map(Vec::len), Some(1), "{records}");
    assert_eq!(records[0]["originalMessageId"], "default-ttl");
    assert_eq!(records[0]["statusCode"], "Expired");
    let queued: Vec<String> = hub.c2d_pending("ttl").into_iter().map(|m| m.id).collect();
    assert_eq!(queued, ["two-hours"]);

    // The device, connecting with a token its own (unmoved) clock made, gets the survivor.
    let mut device = connect(&emulator, "ttl", seconds_from_now(600)).await;
    let mut subscribe = Subscribe::new("devices/ttl/messages/devicebound/#", QoS::AtLeastOnce);
    subscribe.pkid = 1;
    device.send(Packet::Subscribe(subscribe)).await;
    assert!(matches!(
        device.recv(Duration::from_secs(5)).await,
        Ok(Packet::SubAck(_))
    ));
    match device.recv(Duration::from_secs(5)).await {
        Ok(Packet::Publish(p)) => assert_eq!(&p.payload[..], b"two-hours"),
        other => panic!("expected the C2D message, got {other:?}"),
    }

    emulator.advance(60 * MINUTE).await.expect("a valid step");
    let queued = hub.c2d_pending("ttl");
    assert_eq!(
        queued.len(),
        1,
        "a message in flight is not expired under the device"
    );
}

#[tokio::test]
async fn a_session_ends_when_the_clock_passes_its_tokens_expiry() {
    let emulator = start_emulator(None).await;
    let key = SymmetricKey::from_base64(QUICKSTART_KEY).unwrap();
    emulator
        .default_hub()
        .provision_device("short", key.clone(), key, None);
    let hour_token = seconds_from_now(3600);
    let mut device = connect(&emulator, "short", hour_token).await;

    // A plain advance leaves credentials alone: clients renew theirs by their own clocks.
    emulator.advance(120 * MINUTE).await.expect("a valid step");
    device.send(Packet::PingReq).await;
    assert!(
        matches!(
            device.recv(Duration::from_secs(5)).await,
            Ok(Packet::PingResp)
        ),
        "a plain advance ends no session"
    );

    emulator
        .advance_with_credentials(30 * MINUTE)
        .await
        .expect("a valid step");
    device.send(Packet::PingReq).await;
    assert!(
        matches!(
            device.recv(Duration::from_secs(5)).await,
            Ok(Packet::PingResp)
        ),
        "half the token's life is left"
    );

    let advanced = emulator
        .advance_with_credentials(31 * MINUTE)
        .await
        .expect("a valid step");
    assert_eq!(advanced.credential_offset, 61 * MINUTE);
    assert_eq!(advanced.offset, 181 * MINUTE);
    within("the session's end", device.expect_closed()).await;

    // A token the device makes now, from its own clock, is accepted: a credential is judged
    // by the wall clock when presented (docs/differences.md, "Time control").
    let mut again = connect(&emulator, "short", seconds_from_now(600)).await;
    again.send(Packet::PingReq).await;
    assert!(matches!(
        again.recv(Duration::from_secs(5)).await,
        Ok(Packet::PingResp)
    ));
}

#[tokio::test]
async fn a_method_call_times_out_when_the_clock_passes_its_response_timeout() {
    let emulator = start_emulator(None).await;
    let _silent =
        connected_hub_device(&emulator, "silent", None, &["$iothub/methods/POST/#"]).await;
    let hub = emulator.default_hub().clone();
    let call = tokio::spawn(async move {
        hub.invoke_method("silent", "reboot", json!(null), 5 * MINUTE, Duration::ZERO)
            .await
    });
    // The call reaches the device before the clock moves (it is never answered).
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!call.is_finished());
    emulator.advance(5 * MINUTE).await.expect("a valid step");
    let answered = within("the method call", call).await.expect("the task");
    assert_eq!(answered.unwrap_err().code, 504101);
}

#[tokio::test]
async fn an_assignment_delay_ends_when_the_clock_is_advanced() {
    let emulator = Emulator::builder()
        .quickstart_fixture()
        .retry_after(0)
        .assignment_delay(60 * MINUTE)
        .start()
        .await
        .expect("starts");
    let (mut client, operation) = dps_mqtt_registration_started(&emulator).await;
    let poll = dps_poll_topic(2, &operation);
    let (_, status) = request_response(&mut client, &poll, b"").await;
    assert_eq!(status["status"], "assigning");

    // Longer than the registration token's ten minutes: a plain advance keeps the session.
    emulator.advance(30 * MINUTE).await.expect("a valid step");
    let (_, status) = request_response(&mut client, &poll, b"").await;
    assert_eq!(status["status"], "assigning", "half the delay is left");

    emulator.advance(30 * MINUTE).await.expect("a valid step");
    let (topic, status) = request_response(&mut client, &poll, b"").await;
    assert_eq!(topic, "$dps/registrations/res/200/?$rid=2");
    assert_eq!(status["status"], "assigned", "{status}");
}

const JSON: &str = "Content-Type: application/json";

#[tokio::test]
async fn the_control_port_reads_and_advances_the_clock_and_refuses_bad_steps() {
    let emulator = Emulator::builder()
        .quickstart_fixture()
        .control_port(0)
        .start()
        .await
        .expect("starts");
    let (status, reading) = control_call(&emulator, "GET", "/time", &[], "").await;
    assert_eq!(status, 200, "{reading}");
    assert_eq!(reading["offsetSeconds"], 0.0);
    assert_eq!(reading["credentialOffsetSeconds"], 0.0);
    assert!(
        reading["now"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{reading}"
    );

    let (status, advanced) = control_call(
        &emulator,
        "POST",
        "/time/advance",
        &[JSON],
        r#"{"seconds": 90.5}"#,
    )
    .await;
    assert_eq!(status, 200, "{advanced}");
    assert_eq!(advanced["offsetSeconds"], 90.5);
    assert_eq!(advanced["credentialOffsetSeconds"], 0.0);
    assert_eq!(advanced["expiredC2d"], 0);
    let (status, advanced) = control_call(
        &emulator,
        "POST",
        "/time/advance",
        &[JSON],
        r#"{"seconds": 10, "credentials": true}"#,
    )
    .await;
    assert_eq!(status, 200, "{advanced}");
    assert_eq!(advanced["offsetSeconds"], 100.5);
    assert_eq!(advanced["credentialOffsetSeconds"], 10.0);

    for bad in [
        r#"{"seconds": -1}"#,
        r#"{"seconds": "60"}"#,
        r#"{"minutes": 1}"#,
        r#"{"seconds": 1, "credentials": 1}"#,
        r#"{"seconds": 1e12}"#,
        "not json",
    ] {
        let (status, error) = control_call(&emulator, "POST", "/time/advance", &[JSON], bad).await;
        assert_eq!(status, 400, "{bad}: {error}");
        assert_eq!(error["errorCode"], 400004, "{bad}: {error}");
    }
    let (status, _) = control_call(
        &emulator,
        "POST",
        "/time/advance",
        &["Content-Type: text/plain"],
        r#"{"seconds": 60}"#,
    )
    .await;
    assert_eq!(status, 415);
    let (status, _) = control_call(&emulator, "DELETE", "/time", &[], "").await;
    assert_eq!(status, 405);

    assert_eq!(
        emulator.clock().offset(),
        Duration::from_millis(100_500),
        "refusals moved nothing"
    );
    let (_, reading) = control_call(&emulator, "GET", "/time", &[], "").await;
    assert_eq!(reading["offsetSeconds"], 100.5);
    assert_eq!(reading["credentialOffsetSeconds"], 10.0);

    // The portal's API answers the same, and its writes need the portal's header.
    let step = r#"{"seconds": 0.5}"#;
    let (status, _) = control_call(&emulator, "POST", "/api/time/advance", &[JSON], step).await;
    assert_eq!(status, 403);
    let portal = "X-Iotemu-Portal: 1";
    let (status, advanced) = control_call(
        &emulator,
        "POST",
        "/api/time/advance",
        &[JSON, portal],
        step,
    )
    .await;
    assert_eq!(status, 200, "{advanced}");
    assert_eq!(advanced["offsetSeconds"], 101.0);
    let (status, reading) = control_call(&emulator, "GET", "/api/time", &[], "").await;
    assert_eq!((status, &reading["offsetSeconds"]), (200, &json!(101.0)));
}

#[tokio::test]
async fn a_step_past_ten_years_is_refused_and_moves_nothing() {
    let emulator = start_emulator(None).await;
    emulator.advance(MINUTE).await.expect("a valid step");
    let refused = emulator
        .advance(Duration::from_secs(11 * 365 * 24 * 3600))
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("limit"), "{refused}");
    assert_eq!(emulator.clock().offset(), MINUTE);
}
