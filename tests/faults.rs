//! Injected DPS faults (issue #19, first slice; docs/faults.md): a rule refuses registration
//! with 429 + `retry-after` over MQTT and HTTPS until its count is used, stores nothing while
//! it refuses, goes away with its guard, and can be managed over the control port or
//! installed at start by a fixture's `faults` section.

use std::time::Duration;

use iotemu::internals::mqtt::codec::{ConnectReturnCode, Packet, Publish, QoS};
use iotemu::{Emulator, FaultAction, FaultOperation, FaultRule, Refusal};
use iotemu_e2e::*;
use rumqttc::mqttbytes::v4::{PubAck, Subscribe};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SCOPE: &str = "0ne00000A0A";

fn throttle_register(count: u32) -> FaultRule {
    FaultRule::new(
        FaultOperation::DpsRegister,
        Refusal::Throttled { retry_after: 7 },
    )
    .registration_id("symm-key-*")
    .count(count)
}

#[tokio::test]
async fn mqtt_register_is_throttled_with_retry_after_until_the_count_is_used() {
    let emulator = start_emulator(None).await;
    let guard = emulator
        .faults()
        .inject(throttle_register(2))
        .expect("a valid rule");
    let mut client = dps_mqtt_registration(&emulator).await;
    let register = "$dps/registrations/PUT/iotdps-register/?$rid=1";
    let body = format!(r#"{{"registrationId":"{QUICKSTART_REGISTRATION_ID}"}}"#);
    for _ in 0..2 {
        let (topic, error) = request_response(&mut client, register, body.as_bytes()).await;
        assert_eq!(topic, "$dps/registrations/res/429/?$rid=1&retry-after=7");
        assert_eq!(error["errorCode"], 429001);
        assert!(
            error["message"]
                .as_str()
                .is_some_and(|m| m.contains(guard.id())),
            "{error}"
        );
    }
    // Refused requests stored nothing.
    assert!(
        emulator
            .dps()
            .registration(QUICKSTART_REGISTRATION_ID)
            .is_none()
    );
    assert_eq!(guard.hits(), 2);

    let (topic, started) = request_response(&mut client, register, body.as_bytes()).await;
    assert_eq!(topic, "$dps/registrations/res/202/?$rid=1&retry-after=0");
    let operation = started["operationId"]
        .as_str()
        .expect("operationId")
        .to_owned();
    let poll = format!(
        "$dps/registrations/GET/iotdps-get-operationstatus/?$rid=2&operationId={operation}"
    );
    let (topic, done) = request_response(&mut client, &poll, b"").await;
    assert_eq!(topic, "$dps/registrations/res/200/?$rid=2");
    assert_eq!(done["status"], "assigned");
    assert_eq!(guard.hits(), 2, "a used-up rule hits no more");
}

#[tokio::test]
async fn mqtt_poll_can_be_refused_without_losing_the_operation() {
    let emulator = start_emulator(None).await;
    let (mut client, operation) = dps_mqtt_registration_started(&emulator).await;
    let poll = dps_poll_topic(2, &operation);
    let guard = emulator
        .faults()
        .inject(
            FaultRule::new(
                FaultOperation::DpsPoll,
                Refusal::ServiceUnavailable { retry_after: None },
            )
            .id_scope(SCOPE)
            .count(1),
        )
        .expect("a valid rule");
    let (topic, error) = request_response(&mut client, &poll, b"").await;
    assert_eq!(topic, "$dps/registrations/res/503/?$rid=2");
    assert_eq!(error["errorCode"], 503000);
    let (topic, done) = request_response(&mut client, &poll, b"").await;
    assert_eq!(topic, "$dps/registrations/res/200/?$rid=2");
    assert_eq!(done["status"], "assigned");
    drop(guard);
}

#[tokio::test]
async fn https_register_is_throttled_with_a_retry_after_header_then_succeeds() {
    log_capture::install();
    let emulator = start_emulator(None).await;
    let guard = emulator
        .faults()
        .inject(throttle_register(1))
        .expect("a valid rule");
    let token = dps_token(
        SCOPE,
        QUICKSTART_REGISTRATION_ID,
        QUICKSTART_KEY,
        seconds_from_now(600),
    );
    let headers = [
        ("Authorization", token.as_str()),
        ("Content-Type", "application/json; charset=utf-8"),
    ];
    let path = format!(
        "/{SCOPE}/registrations/{QUICKSTART_REGISTRATION_ID}/register?api-version=2019-03-31"
    );
    let body = format!(r#"{{"registrationId":"{QUICKSTART_REGISTRATION_ID}"}}"#);
    let refused = https_request(&emulator, None, "PUT", &path, &headers, body.as_bytes()).await;
    assert_eq!(refused.status, 429);
    assert_eq!(refused.header("retry-after"), Some("7"));
    assert_eq!(refused.header("x-ms-error-code"), Some("429001"));
    assert_eq!(refused.json()["errorCode"], 429001);
    assert!(
        emulator
            .dps()
            .registration(QUICKSTART_REGISTRATION_ID)
            .is_none()
    );

    let started = https_request(&emulator, None, "PUT", &path, &headers, body.as_bytes()).await;
    assert_eq!(started.status, 202, "{:?}", started.json());
    assert_eq!(guard.hits(), 1);
    // Each hit is logged at INFO with the rule's id (other tests' emulators log theirs too;
    // ids are per emulator, so this only shows the shape of the line).
    let logged = log_capture::lines_containing("fault hit");
    assert!(
        logged
            .iter()
            .any(|l| l.contains("INFO") && l.contains(&format!("fault={}", guard.id()))),
        "{logged:?}"
    );
}

#[tokio::test]
async fn dropping_the_guard_removes_the_rule() {
    let emulator = start_emulator(None).await;
    let guard = emulator
        .faults()
        .inject(FaultRule::new(
            FaultOperation::DpsRegister,
            Refusal::Unauthorized,
        ))
        .expect("a valid rule");
    assert_eq!(emulator.faults().list().len(), 1);
    let mut client = dps_mqtt_registration(&emulator).await;
    let register = "$dps/registrations/PUT/iotdps-register/?$rid=9";
    let (topic, _) = request_response(&mut client, register, b"").await;
    assert_eq!(topic, "$dps/registrations/res/401/?$rid=9");
    drop(guard);
    assert!(emulator.faults().list().is_empty());
    let (topic, _) = request_response(&mut client, register, b"").await;
    assert!(topic.starts_with("$dps/registrations/res/202/"), "{topic}");
}

const JSON: &str = "Content-Type: application/json";

#[tokio::test]
async fn control_routes_add_list_with_counts_and_delete_faults() {
    let emulator = Emulator::builder()
        .quickstart_fixture()
        .retry_after(0)
        .control_port(0)
        .start()
        .await
        .expect("starts");
    let rule = r#"{"operation":"dps.register","registrationId":"symm-key-*",
        "action":{"refuse":{"status":429,"retryAfter":2}},"count":1}"#;
    let (status, added) = control_call(&emulator, "POST", "/faults", &[JSON], rule).await;
    assert_eq!(status, 201, "{added}");
    let id = added["id"].as_str().expect("id").to_owned();
    assert_eq!(
        (added["hits"].as_u64(), added["remaining"].as_u64()),
        (Some(0), Some(1))
    );

    let mut client = dps_mqtt_registration(&emulator).await;
    let (topic, _) = request_response(
        &mut client,
        "$dps/registrations/PUT/iotdps-register/?$rid=1",
        b"",
    )
    .await;
    assert_eq!(topic, "$dps/registrations/res/429/?$rid=1&retry-after=2");

    let (status, list) = control_call(&emulator, "GET", "/faults", &[], "").await;
    assert_eq!(status, 200);
    assert_eq!(list[0]["id"], id.as_str());
    assert_eq!(
        (list[0]["hits"].as_u64(), list[0]["remaining"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(list[0]["action"]["refuse"]["retryAfter"], 2);

    let (status, _) = control_call(&emulator, "DELETE", &format!("/faults/{id}"), &[], "").await;
    assert_eq!(status, 204);
    let (status, _) = control_call(&emulator, "DELETE", &format!("/faults/{id}"), &[], "").await;
    assert_eq!(status, 404);
    assert!(emulator.faults().list().is_empty());
}

#[tokio::test]
async fn control_routes_refuse_bad_rules_and_undeclared_bodies() {
    let emulator = Emulator::builder()
        .quickstart_fixture()
        .control_port(0)
        .start()
        .await
        .expect("starts");
    let bad =
        r#"{"operation":"dps.register","action":{"refuse":{"status":429,"retryAfter":99999}}}"#;
    let (status, error) = control_call(&emulator, "POST", "/faults", &[JSON], bad).await;
    assert_eq!(status, 400);
    assert_eq!(error["errorCode"], 400004);
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("retryAfter")),
        "{error}"
    );
    let ok = r#"{"operation":"dps.poll","action":{"refuse":{"status":500}}}"#;
    let (status, _) = control_call(
        &emulator,
        "POST",
        "/faults",
        &["Content-Type: text/plain"],
        ok,
    )
    .await;
    assert_eq!(status, 415);
    assert!(emulator.faults().list().is_empty(), "nothing was installed");
}

#[tokio::test]
async fn control_routes_need_the_token_when_the_port_has_one() {
    let emulator = Emulator::builder()
        .quickstart_fixture()
        .control_port(0)
        .control_token(Some("s3cret".into()))
        .start()
        .await
        .expect("starts");
    let ok = r#"{"operation":"dps.poll","action":{"refuse":{"status":500}}}"#;
    let (status, _) = control_call(&emulator, "POST", "/faults", &[JSON], ok).await;
    assert_eq!(status, 401);
    let (status, _) = control_call(&emulator, "GET", "/faults", &[], "").await;
    assert_eq!(status, 401);
    assert!(emulator.faults().list().is_empty());
    let bearer = "Authorization: Bearer s3cret";
    let (status, _) = control_call(&emulator, "POST", "/faults", &[JSON, bearer], ok).await;
    assert_eq!(status, 201);
}

#[tokio::test]
async fn control_routes_beyond_loopback_need_the_generated_token() {
    let emulator = Emulator::builder()
        .quickstart_fixture()
        .control_port(0)
        .control_bind(std::net::Ipv4Addr::UNSPECIFIED.into())
        .start()
        .await
        .expect("starts");
    let token = emulator
        .control_token()
        .expect("a generated token")
        .to_owned();
    let ok = r#"{"operation":"dps.register","action":{"refuse":{"status":401}}}"#;
    let (status, _) = control_call(&emulator, "POST", "/faults", &[JSON], ok).await;
    assert_eq!(status, 401);
    let (status, _) = control_call(&emulator, "DELETE", "/faults/fault-1", &[], "").await;
    assert_eq!(status, 401);
    let bearer = format!("Authorization: Bearer {token}");
    let (status, added) = control_call(&emulator, "POST", "/faults", &[JSON, &bearer], ok).await;
    assert_eq!(status, 201);
    let id = added["id"].as_str().expect("id");
    let (status, _) = control_call(
        &emulator,
        "DELETE",
        &format!("/faults/{id}"),
        &[&bearer],
        "",
    )
    .await;
    assert_eq!(status, 204);
}

// ---- Hub faults over MQTT: connect, telemetry, twin ------------------------------------------

const HUB_DEVICE: &str = "fault-device";

/// A CONNECT of `HUB_DEVICE` (provisioned by `connected_hub_device`) on a fresh connection,
/// without waiting for the answer.
async fn send_hub_connect(emulator: &Emulator) -> RawClient {
    use iotemu::internals::mqtt::codec::Connect;
    use rumqttc::mqttbytes::v4::Login;
    let mut client = RawClient::connect(emulator).await;
    let token = device_token(
        "localhost",
        HUB_DEVICE,
        QUICKSTART_KEY,
        seconds_from_now(600),
    );
    let mut connect = Connect::new(HUB_DEVICE);
    connect.keep_alive = 60;
    connect.login = Some(Login::new(hub_username("localhost", HUB_DEVICE), token));
    client.send(Packet::Connect(connect)).await;
    client
}

async fn connack(client: &mut RawClient) -> ConnectReturnCode {
    match client.recv(Duration::from_secs(5)).await {
        Ok(Packet::ConnAck(ack)) => ack.code,
        other => panic!("expected CONNACK, got {other:?}"),
    }
}

/// Sends a QoS 1 telemetry PUBLISH with packet id `pkid`.
async fn send_telemetry(client: &mut RawClient, pkid: u16, body: &str) {
    let mut publish = Publish::new(
        format!("devices/{HUB_DEVICE}/messages/events/"),
        QoS::AtLeastOnce,
        body.as_bytes().to_vec(),
    );
    publish.pkid = pkid;
    client.send(Packet::Publish(publish)).await;
}

fn stored_bodies(emulator: &Emulator) -> Vec<String> {
    emulator
        .default_hub()
        .telemetry()
        .messages(Some(HUB_DEVICE))
        .iter()
        .map(|m| m.body_text().unwrap_or_default().to_owned())
        .collect()
}

fn hub_rule(operation: FaultOperation, action: impl Into<FaultAction>) -> FaultRule {
    FaultRule::new(operation, action).device_id(HUB_DEVICE)
}

#[tokio::test]
async fn hub_connect_refusals_are_connack_3_or_5_and_leave_the_live_connection_alone() {
    let emulator = start_emulator(None).await;
    let mut live = connected_hub_device(&emulator, HUB_DEVICE, None, &[]).await;
    let throttled = emulator
        .faults()
        .inject(
            hub_rule(
                FaultOperation::HubConnect,
                Refusal::Throttled { retry_after: 1 },
            )
            .hub("LOCALHOST")
            .count(1),
        )
        .expect("valid");
    let mut refused = send_hub_connect(&emulator).await;
    assert_eq!(
        connack(&mut refused).await,
        ConnectReturnCode::ServiceUnavailable
    );
    refused.expect_closed().await;
    assert_eq!(throttled.hits(), 1);
    let _unauthorized = emulator
        .faults()
        .inject(hub_rule(FaultOperation::HubConnect, Refusal::Unauthorized).count(1))
        .expect("valid");
    let mut refused = send_hub_connect(&emulator).await;
    assert_eq!(
        connack(&mut refused).await,
        ConnectReturnCode::NotAuthorized
    );
    // A refused connect did not replace the device's live connection.
    live.send(Packet::PingReq).await;
    assert!(matches!(
        live.recv(Duration::from_secs(5)).await,
        Ok(Packet::PingResp)
    ));
    // Both rules are used up: the next connect is accepted (and replaces the live one).
    let mut accepted = send_hub_connect(&emulator).await;
    assert_eq!(connack(&mut accepted).await, ConnectReturnCode::Success);
    live.expect_closed().await;
}

#[tokio::test]
async fn hub_connect_can_be_dropped_before_or_after_its_connack_or_stalled() {
    let emulator = start_emulator(None).await;
    drop(connected_hub_device(&emulator, HUB_DEVICE, None, &[]).await);
    let before = emulator
        .faults()
        .inject(
            hub_rule(
                FaultOperation::HubConnect,
                FaultAction::Drop { after_ack: false },
            )
            .count(1),
        )
        .expect("valid");
    let mut client = send_hub_connect(&emulator).await;
    client.expect_closed().await;
    assert_eq!(before.hits(), 1);

    let _after = emulator
        .faults()
        .inject(
            hub_rule(
                FaultOperation::HubConnect,
                FaultAction::Drop { after_ack: true },
            )
            .count(1),
        )
        .expect("valid");
    let mut client = send_hub_connect(&emulator).await;
    assert_eq!(connack(&mut client).await, ConnectReturnCode::Success);
    client.expect_closed().await;

    let stall = emulator
        .faults()
        .inject(hub_rule(FaultOperation::HubConnect, FaultAction::Stall).count(1))
        .expect("valid");
    let mut client = send_hub_connect(&emulator).await;
    assert!(
        matches!(
            client.recv(Duration::from_millis(500)).await,
            Err(RecvEnd::TimedOut)
        ),
        "a stalled CONNECT gets no answer and the connection stays open"
    );
    assert_eq!(stall.hits(), 1);
    // Once the stall is used up, the device gets in.
    let mut client = send_hub_connect(&emulator).await;
    assert_eq!(connack(&mut client).await, ConnectReturnCode::Success);
}

#[tokio::test]
async fn a_telemetry_drop_after_the_ack_keeps_the_message_the_device_saw_acknowledged() {
    let emulator = start_emulator(None).await;
    let mut device = connected_hub_device(&emulator, HUB_DEVICE, None, &[]).await;
    // "Drop the connection after the third message."
    let rule = emulator
        .faults()
        .inject(
            hub_rule(
                FaultOperation::HubTelemetry,
                FaultAction::Drop { after_ack: true },
            )
            .after(2)
            .count(1),
        )
        .expect("valid");
    for pkid in 1..=3u16 {
        send_telemetry(&mut device, pkid, &format!("m{pkid}")).await;
        match device.recv(Duration::from_secs(5)).await {
            Ok(Packet::PubAck(ack)) => assert_eq!(ack.pkid, pkid),
            other => panic!("PUBACK {pkid} expected, got {other:?}"),
        }
    }
    device.expect_closed().await;
    assert_eq!(stored_bodies(&emulator), ["m1", "m2", "m3"]);
    assert_eq!(rule.hits(), 1);
}

#[tokio::test]
async fn a_telemetry_drop_before_the_ack_or_a_refusal_stores_nothing_and_closes() {
    let emulator = start_emulator(None).await;
    for action in [
        FaultAction::Drop { after_ack: false },
        FaultAction::Refuse(Refusal::Throttled { retry_after: 1 }),
    ] {
        let mut device = connected_hub_device(&emulator, HUB_DEVICE, None, &[]).await;
        let _rule = emulator
            .faults()
            .inject(hub_rule(FaultOperation::HubTelemetry, action).count(1))
            .expect("valid");
        send_telemetry(&mut device, 1, "lost").await;
        match device.recv(Duration::from_secs(5)).await {
            Err(RecvEnd::Closed) => {}
            other => panic!("{action:?}: closed without a PUBACK expected, got {other:?}"),
        }
        assert!(stored_bodies(&emulator).is_empty(), "{action:?}");
    }
}

#[tokio::test]
async fn a_stalled_telemetry_message_is_neither_stored_nor_acknowledged_and_the_session_goes_on() {
    let emulator = start_emulator(None).await;
    let mut device = connected_hub_device(&emulator, HUB_DEVICE, None, &[]).await;
    let _rule = emulator
        .faults()
        .inject(hub_rule(FaultOperation::HubTelemetry, FaultAction::Stall).count(1))
        .expect("valid");
    send_telemetry(&mut device, 1, "stalled").await;
    device.send(Packet::PingReq).await;
    // The PINGRESP comes first and alone: the stalled PUBLISH gets no PUBACK.
    assert!(matches!(
        device.recv(Duration::from_secs(5)).await,
        Ok(Packet::PingResp)
    ));
    send_telemetry(&mut device, 2, "next").await;
    assert!(matches!(
        device.recv(Duration::from_secs(5)).await,
        Ok(Packet::PubAck(ack)) if ack.pkid == 2
    ));
    assert_eq!(stored_bodies(&emulator), ["next"]);
}

#[tokio::test]
async fn twin_requests_can_be_refused_with_their_status_or_answered_late() {
    let emulator = start_emulator(None).await;
    let mut device =
        connected_hub_device(&emulator, HUB_DEVICE, None, &["$iothub/twin/res/#"]).await;
    let _throttle = emulator
        .faults()
        .inject(
            hub_rule(
                FaultOperation::HubTwinPatch,
                Refusal::Throttled { retry_after: 1 },
            )
            .count(1),
        )
        .expect("valid");
    let patch = "$iothub/twin/PATCH/properties/reported/?$rid=1";
    let (topic, error) = request_response(&mut device, patch, br#"{"fw":"1.0"}"#).await;
    assert_eq!(topic, "$iothub/twin/res/429/?$rid=1");
    assert_eq!(error["errorCode"], 429001);
    let twin = emulator
        .default_hub()
        .device_twin(HUB_DEVICE)
        .expect("the device's twin");
    assert!(
        twin.reported.is_empty(),
        "nothing stored: {:?}",
        twin.reported
    );
    assert_eq!(
        twin.reported_version, 1,
        "the refused patch made no version"
    );

    let delay = Duration::from_millis(300);
    let _slow = emulator
        .faults()
        .inject(hub_rule(FaultOperation::HubTwinGet, FaultAction::Delay(delay)).count(1))
        .expect("valid");
    let asked = std::time::Instant::now();
    let (topic, _) = request_response(&mut device, "$iothub/twin/GET/?$rid=2", b"").await;
    assert_eq!(topic, "$iothub/twin/res/200/?$rid=2");
    // A lower bound only: the answer was held at least as long as the rule asked.
    assert!(
        asked.elapsed() >= delay,
        "answered after {:?}",
        asked.elapsed()
    );
}

/// A fixture's `faults` section: the control port's rule JSON, installed before any listener
/// is bound.
const FIXTURE_WITH_A_THROTTLE: &str = r#"{"faults":[
    {"operation":"dps.register","registrationId":"symm-key-*",
     "action":{"refuse":{"status":429,"retryAfter":3}},"count":1}
]}"#;

#[tokio::test]
async fn a_fixture_fault_throttles_the_first_mqtt_register_then_lets_it_through() {
    let emulator = Emulator::builder()
        .quickstart_fixture()
        .fixture_json("faults.json", FIXTURE_WITH_A_THROTTLE)
        .retry_after(0)
        .control_port(0)
        .start()
        .await
        .expect("starts");
    let installed = emulator.faults().list();
    assert_eq!(installed.len(), 1);
    assert_eq!((installed[0].hits, installed[0].remaining), (0, Some(1)));

    let mut client = dps_mqtt_registration(&emulator).await;
    let register = "$dps/registrations/PUT/iotdps-register/?$rid=1";
    let body = format!(r#"{{"registrationId":"{QUICKSTART_REGISTRATION_ID}"}}"#);
    let (topic, error) = request_response(&mut client, register, body.as_bytes()).await;
    assert_eq!(topic, "$dps/registrations/res/429/?$rid=1&retry-after=3");
    assert_eq!(error["errorCode"], 429001);
    let (topic, _) = request_response(&mut client, register, body.as_bytes()).await;
    assert!(topic.starts_with("$dps/registrations/res/202/"), "{topic}");

    // The control port lists the fixture's rule like any other, with its hit.
    let (status, list) = control_call(&emulator, "GET", "/faults", &[], "").await;
    assert_eq!(status, 200);
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    assert_eq!(list[0]["id"], installed[0].id.as_str());
    assert_eq!(
        (list[0]["hits"].as_u64(), list[0]["remaining"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(list[0]["action"]["refuse"]["retryAfter"], 3);
}

#[tokio::test]
async fn a_bad_fixture_fault_stops_the_start_naming_the_element() {
    let fixture = r#"{"faults":[
        {"operation":"dps.poll","action":{"refuse":{"status":503}}},
        {"operation":"dps.register","action":{"refuse":{"status":429}}}
    ]}"#;
    let result = Emulator::builder()
        .quickstart_fixture()
        .fixture_json("faults.json", fixture)
        .start()
        .await;
    let Err(error) = result else {
        panic!("an emulator started with a 429 rule without retryAfter");
    };
    let message = error.to_string();
    assert!(
        message
            .contains("faults.json: faults[1]: invalid fault rule: a 429 refusal needs retryAfter"),
        "{message}"
    );
}

// ---- Hub telemetry faults over HTTPS ---------------------------------------------------------

const HTTPS_DEVICE: &str = "fault-https-device";

/// Registers `HTTPS_DEVICE` with the quickstart key.
fn provision_https_device(emulator: &Emulator) {
    let key = iotemu::SymmetricKey::from_base64(QUICKSTART_KEY).expect("key");
    emulator
        .default_hub()
        .provision_device(HTTPS_DEVICE, key.clone(), key, None);
}

/// A rule on `operation` for `HTTPS_DEVICE` only.
fn https_rule(operation: FaultOperation, action: impl Into<FaultAction>) -> FaultRule {
    FaultRule::new(operation, action).device_id(HTTPS_DEVICE)
}

/// An answer that never came: the connection was closed first.
fn assert_unanswered(answer: &[u8]) {
    assert!(
        answer.is_empty(),
        "no answer: {}",
        String::from_utf8_lossy(answer)
    );
}

/// `POST /devices/{id}/messages/events` as `HTTPS_DEVICE` (provisioned here) with `body`.
async fn https_telemetry(emulator: &Emulator, body: &str) -> HttpsResponse {
    provision_https_device(emulator);
    let sas = device_token(
        "localhost",
        HTTPS_DEVICE,
        QUICKSTART_KEY,
        seconds_from_now(600),
    );
    https_request(
        emulator,
        None,
        "POST",
        &format!("/devices/{HTTPS_DEVICE}/messages/events?api-version=2021-04-12"),
        &[("Authorization", sas.as_str())],
        body.as_bytes(),
    )
    .await
}

/// `method /devices/HTTPS_DEVICE/{path}` with `body` on a connection of its own, as the device;
/// everything the emulator sent until it closed the connection (nothing when it dropped it).
async fn raw_https_device_request(
    emulator: &Emulator,
    method: &str,
    path: &str,
    body: &str,
) -> Vec<u8> {
    let port = emulator.https_port().expect("HTTPS is served");
    let mut stream = tls_connect(emulator, port, None, vec![b"http/1.1".to_vec()]).await;
    let sas = device_token(
        "localhost",
        HTTPS_DEVICE,
        QUICKSTART_KEY,
        seconds_from_now(600),
    );
    let request = format!(
        "{method} /devices/{HTTPS_DEVICE}/{path}?api-version=2021-04-12 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nAuthorization: {sas}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    stream.flush().await.expect("flush");
    let mut answer = Vec::new();
    let _ = within("the close", stream.read_to_end(&mut answer)).await;
    answer
}

fn https_stored(emulator: &Emulator) -> Vec<String> {
    emulator
        .default_hub()
        .telemetry()
        .messages(Some(HTTPS_DEVICE))
        .iter()
        .map(|m| m.body_text().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn https_telemetry_can_be_refused_with_retry_after_or_answered_late() {
    let emulator = start_emulator(None).await;
    let throttle = emulator
        .faults()
        .inject(
            https_rule(
                FaultOperation::HubTelemetry,
                Refusal::Throttled { retry_after: 3 },
            )
            .count(1),
        )
        .expect("valid");
    let refused = https_telemetry(&emulator, "refused").await;
    assert_eq!(refused.status, 429);
    assert_eq!(refused.header("retry-after"), Some("3"));
    let body = String::from_utf8_lossy(&refused.body).to_string();
    assert!(
        body.contains("ThrottlingException") && body.contains(throttle.id()),
        "{body}"
    );
    assert!(
        https_stored(&emulator).is_empty(),
        "a refused message is not stored"
    );

    let delay = Duration::from_millis(300);
    let _slow = emulator
        .faults()
        .inject(https_rule(FaultOperation::HubTelemetry, FaultAction::Delay(delay)).count(1))
        .expect("valid");
    let asked = std::time::Instant::now();
    assert_eq!(https_telemetry(&emulator, "late").await.status, 204);
    // A lower bound only: the answer was held at least as long as the rule asked.
    assert!(
        asked.elapsed() >= delay,
        "answered after {:?}",
        asked.elapsed()
    );
    assert_eq!(https_stored(&emulator), ["late"]);
}

#[tokio::test]
async fn https_telemetry_dropped_before_the_answer_is_closed_unanswered_and_not_stored() {
    let emulator = start_emulator(None).await;
    provision_https_device(&emulator);
    let _drop = emulator
        .faults()
        .inject(
            https_rule(
                FaultOperation::HubTelemetry,
                FaultAction::Drop { after_ack: false },
            )
            .count(1),
        )
        .expect("valid");
    let answer = raw_https_device_request(&emulator, "POST", "messages/events", "dropped").await;
    assert_unanswered(&answer);
    assert!(https_stored(&emulator).is_empty());
    // The rule is used up: the next send is stored.
    assert_eq!(https_telemetry(&emulator, "next").await.status, 204);
    assert_eq!(https_stored(&emulator), ["next"]);
}

// ---- Hub service REST faults ------------------------------------------------------------------

#[tokio::test]
async fn service_requests_can_be_throttled_by_path_and_stored_nothing_while_refused() {
    let emulator = start_emulator(None).await;
    let throttle = emulator
        .faults()
        .inject(
            FaultRule::new(
                FaultOperation::HubService,
                Refusal::Throttled { retry_after: 2 },
            )
            .path("/devices/backend-*")
            .count(1),
        )
        .expect("valid");
    let create = serde_json::json!({"deviceId": "backend-1"});
    let path = "/devices/backend-1?api-version=2021-04-12";
    let refused = hub_rest(&emulator, "PUT", path, &[], create.clone()).await;
    assert_eq!(refused.status, 429);
    assert_eq!(refused.header("retry-after"), Some("2"));
    let body = String::from_utf8_lossy(&refused.body).to_string();
    assert!(
        body.contains("ThrottlingException") && body.contains(throttle.id()),
        "{body}"
    );
    assert!(
        emulator.default_hub().device("backend-1").is_none(),
        "a refused request stores nothing"
    );
    // Another path is not hit, and once the count is used the same request goes through.
    let other = hub_rest(
        &emulator,
        "GET",
        "/statistics/devices?api-version=2021-04-12",
        &[],
        serde_json::Value::Null,
    )
    .await;
    assert_eq!(other.status, 200);
    let created = hub_rest(&emulator, "PUT", path, &[], create).await;
    assert_eq!(
        created.status,
        200,
        "{}",
        String::from_utf8_lossy(&created.body)
    );
    assert!(emulator.default_hub().device("backend-1").is_some());
    assert_eq!(throttle.hits(), 1);
}

// ---- DPS service REST faults ------------------------------------------------------------------

/// An individual enrollment with a symmetric key, as the DPS service SDKs create one.
fn symmetric_enrollment(registration_id: &str) -> serde_json::Value {
    serde_json::json!({
        "registrationId": registration_id,
        "attestation": {"type": "symmetricKey"},
    })
}

#[tokio::test]
async fn dps_service_requests_are_refused_in_dps_error_shape_by_path_and_store_nothing() {
    let emulator = start_emulator(None).await;
    let throttle = emulator
        .faults()
        .inject(
            FaultRule::new(
                FaultOperation::DpsService,
                Refusal::Throttled { retry_after: 3 },
            )
            .id_scope(SCOPE)
            .path("/enrollments/backend-*")
            .count(1),
        )
        .expect("valid");
    let path = "/enrollments/backend-1";
    let refused = dps_rest(&emulator, "PUT", path, symmetric_enrollment("backend-1")).await;
    assert_eq!(refused.status, 429);
    assert_eq!(refused.header("retry-after"), Some("3"));
    assert_eq!(refused.header("x-ms-error-code"), Some("429001"));
    let body: serde_json::Value = serde_json::from_slice(&refused.body).expect("JSON error");
    assert_eq!(body["errorCode"], 429001, "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains(throttle.id())),
        "{body}"
    );
    assert!(
        emulator.dps().individual("backend-1").is_none(),
        "a refused request stores nothing"
    );
    // Another path is not hit; once the count is used the same request goes through.
    let group = dps_rest(
        &emulator,
        "GET",
        "/enrollmentGroups/quickstart-group",
        serde_json::Value::Null,
    )
    .await;
    assert_eq!(group.status, 200);
    let created = dps_rest(&emulator, "PUT", path, symmetric_enrollment("backend-1")).await;
    assert_eq!(
        created.status,
        200,
        "{}",
        String::from_utf8_lossy(&created.body)
    );
    assert!(emulator.dps().individual("backend-1").is_some());
    assert_eq!(throttle.hits(), 1);
}

#[tokio::test]
async fn a_delayed_dps_service_answer_comes_after_the_write_was_stored() {
    let emulator = start_emulator(None).await;
    let _slow = emulator
        .faults()
        .inject(
            FaultRule::new(
                FaultOperation::DpsService,
                FaultAction::Delay(Duration::from_millis(600)),
            )
            .path("/enrollments/*"),
        )
        .expect("valid");
    // A rule for another DPS is not this one's.
    let _elsewhere = emulator
        .faults()
        .inject(
            FaultRule::new(FaultOperation::DpsService, Refusal::InternalError)
                .id_scope("0ne-other"),
        )
        .expect("valid");
    let put = async {
        let answer = dps_rest(
            &emulator,
            "PUT",
            "/enrollments/slow-1",
            symmetric_enrollment("slow-1"),
        )
        .await;
        (answer, std::time::Instant::now())
    };
    // The write is stored before its answer goes out: it shows while the answer is held.
    let stored = async {
        let watch = async {
            while emulator.dps().individual("slow-1").is_none() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            std::time::Instant::now()
        };
        tokio::time::timeout(Duration::from_secs(5), watch)
            .await
            .expect("stored while the answer is delayed")
    };
    let ((answered, answered_at), stored_at) = tokio::join!(put, stored);
    assert!(stored_at < answered_at, "stored before the answer went out");
    assert_eq!(answered.status, 200);
}

// ---- C2D delivery faults -----------------------------------------------------------------------

const C2D_FILTER: &str = "devices/fault-device/messages/devicebound/#";

/// Queues one C2D message for the fault device (durable before it returns).
async fn queue_c2d(emulator: &Emulator, body: &str) {
    emulator
        .default_hub()
        .send_c2d(HUB_DEVICE, iotemu::C2dMessage::new(body.to_owned()))
        .expect("queued")
        .durable()
        .await
        .expect("stored");
}

/// A one-shot `hub.c2d` drop (before or after the delivery) on the fault device, and the
/// device connected and subscribed to its C2D messages.
async fn subscribed_under_c2d_drop(
    emulator: &Emulator,
    after_ack: bool,
) -> (iotemu::FaultGuard, RawClient) {
    let rule = emulator
        .faults()
        .inject(hub_rule(FaultOperation::HubC2d, FaultAction::Drop { after_ack }).count(1))
        .expect("valid");
    let device = connected_hub_device(emulator, HUB_DEVICE, None, &[C2D_FILTER]).await;
    (rule, device)
}

async fn next_c2d(device: &mut RawClient) -> Publish {
    match device.recv(Duration::from_secs(5)).await {
        Ok(Packet::Publish(publish)) => publish,
        other => panic!("a C2D PUBLISH expected, got {other:?}"),
    }
}

#[tokio::test]
async fn a_c2d_drop_before_delivery_keeps_the_message_queued_for_the_next_connection() {
    let emulator = start_emulator(None).await;
    let (rule, mut device) = subscribed_under_c2d_drop(&emulator, false).await;
    queue_c2d(&emulator, "first").await;
    // Closed instead of delivering: no PUBLISH comes before the close.
    match device.recv(Duration::from_secs(5)).await {
        Ok(Packet::Publish(publish)) => panic!("delivered despite the fault: {publish:?}"),
        Ok(other) => panic!("the connection should close, got {other:?}"),
        Err(RecvEnd::TimedOut) => panic!("the connection should close"),
        Err(RecvEnd::Closed) => {}
    }
    assert_eq!(rule.hits(), 1);
    assert_eq!(
        emulator.default_hub().c2d_pending(HUB_DEVICE).len(),
        1,
        "still queued"
    );
    let mut device = connected_hub_device(&emulator, HUB_DEVICE, None, &[C2D_FILTER]).await;
    let publish = next_c2d(&mut device).await;
    assert_eq!(&publish.payload[..], b"first");
}

#[tokio::test]
async fn a_c2d_drop_after_delivery_redelivers_the_unacknowledged_message() {
    let emulator = start_emulator(None).await;
    let (rule, mut device) = subscribed_under_c2d_drop(&emulator, true).await;
    queue_c2d(&emulator, "twice").await;
    // The device sees the message, then the connection closes before its PUBACK is read.
    let first = next_c2d(&mut device).await;
    assert_eq!((&first.payload[..], first.dup), (&b"twice"[..], false));
    device.expect_closed().await;
    assert_eq!(rule.hits(), 1);
    let mut device = connected_hub_device(&emulator, HUB_DEVICE, None, &[C2D_FILTER]).await;
    let again = next_c2d(&mut device).await;
    assert_eq!((&again.payload[..], again.dup), (&b"twice"[..], true));
    device.send(Packet::PubAck(PubAck::new(again.pkid))).await;
    device.send(Packet::PingReq).await;
    assert!(matches!(
        device.recv(Duration::from_secs(5)).await,
        Ok(Packet::PingResp)
    ));
    assert!(emulator.default_hub().c2d_pending(HUB_DEVICE).is_empty());
}

#[tokio::test]
async fn a_c2d_drop_before_delivery_at_qos_0_does_not_complete_the_message() {
    let emulator = start_emulator(None).await;
    let (rule, mut device) = subscribed_under_c2d_drop(&emulator, false).await;
    // Down to QoS 0: a message sent at QoS 0 is complete once sent, so a drop before sending
    // must not settle it.
    let mut subscribe = Subscribe::new(C2D_FILTER, QoS::AtMostOnce);
    subscribe.pkid = 9;
    device.send(Packet::Subscribe(subscribe)).await;
    assert!(matches!(
        device.recv(Duration::from_secs(5)).await,
        Ok(Packet::SubAck(_))
    ));
    queue_c2d(&emulator, "kept").await;
    device.expect_closed().await;
    assert_eq!(rule.hits(), 1);
    assert_eq!(
        emulator.default_hub().c2d_pending(HUB_DEVICE).len(),
        1,
        "still queued, not completed"
    );
}

/// Provisions `HTTPS_DEVICE` and queues a durable C2D message with `body` for it.
async fn queue_https_c2d(emulator: &Emulator, body: &str) {
    provision_https_device(emulator);
    emulator
        .default_hub()
        .send_c2d(HTTPS_DEVICE, iotemu::C2dMessage::new(body.to_owned()))
        .expect("queued")
        .durable()
        .await
        .expect("stored");
}

/// `HTTPS_DEVICE`'s C2D receive, answered (status line, headers and body) as text.
async fn https_receive(emulator: &Emulator) -> String {
    let answer = raw_https_device_request(emulator, "GET", "messages/deviceBound", "").await;
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn an_https_c2d_receive_dropped_before_its_answer_takes_nothing() {
    let emulator = start_emulator(None).await;
    queue_https_c2d(&emulator, "polled").await;
    let rule = emulator
        .faults()
        .inject(
            https_rule(
                FaultOperation::HubC2d,
                FaultAction::Drop { after_ack: false },
            )
            .count(1),
        )
        .expect("valid");
    let answer = raw_https_device_request(&emulator, "GET", "messages/deviceBound", "").await;
    assert_unanswered(&answer);
    assert_eq!(rule.hits(), 1);
    // Nothing was taken or locked: the next receive gets the message.
    let answer = https_receive(&emulator).await;
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.ends_with("polled"),
        "{answer}"
    );
}

#[tokio::test]
async fn an_https_c2d_receive_can_be_refused_and_an_mqtt_delivery_passes_the_refusal_by() {
    let emulator = start_emulator(None).await;
    queue_https_c2d(&emulator, "waiting").await;
    let refusal = emulator
        .faults()
        .inject(
            FaultRule::new(
                FaultOperation::HubC2d,
                Refusal::Throttled { retry_after: 4 },
            )
            .count(2),
        )
        .expect("a refusal is valid on hub.c2d");
    // Over MQTT the hub delivers: a refusal is for a request, so the delivery passes it by
    // and uses none of its count.
    let mut device = connected_hub_device(&emulator, HUB_DEVICE, None, &[C2D_FILTER]).await;
    queue_c2d(&emulator, "pushed").await;
    assert_eq!(&next_c2d(&mut device).await.payload[..], b"pushed");
    assert_eq!(refusal.hits(), 0);

    // The HTTPS receive is a request: refused with the hub's error and retry-after, taking
    // nothing.
    let answer = https_receive(&emulator).await;
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("retry-after: 4"),
        "{answer}"
    );
    assert!(answer.contains("ThrottlingException"), "{answer}");
    assert_eq!(refusal.hits(), 1);
    assert_eq!(
        emulator.default_hub().c2d_pending(HTTPS_DEVICE).len(),
        1,
        "still queued"
    );
    drop(refusal);
    let answer = https_receive(&emulator).await;
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.ends_with("waiting"),
        "{answer}"
    );
}

#[tokio::test]
async fn a_delayed_c2d_delivery_arrives_after_the_delay_over_mqtt_and_https() {
    let emulator = start_emulator(None).await;
    let delay = Duration::from_millis(400);
    let rule = emulator
        .faults()
        .inject(hub_rule(FaultOperation::HubC2d, FaultAction::Delay(delay)).count(1))
        .expect("valid");
    let mut device = connected_hub_device(&emulator, HUB_DEVICE, None, &[C2D_FILTER]).await;
    let queued = std::time::Instant::now();
    queue_c2d(&emulator, "late").await;
    let publish = next_c2d(&mut device).await;
    assert!(queued.elapsed() >= delay, "delivered before the delay");
    assert_eq!(&publish.payload[..], b"late");
    assert_eq!(rule.hits(), 1);

    // Over HTTPS the device's receive is answered late, with the message.
    queue_https_c2d(&emulator, "polled late").await;
    let _slow = emulator
        .faults()
        .inject(https_rule(FaultOperation::HubC2d, FaultAction::Delay(delay)).count(1))
        .expect("valid");
    let asked = std::time::Instant::now();
    let answer = raw_https_device_request(&emulator, "GET", "messages/deviceBound", "").await;
    assert!(asked.elapsed() >= delay, "answered before the delay");
    let answer = String::from_utf8_lossy(&answer).to_string();
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.ends_with("polled late"),
        "{answer}"
    );
}

#[tokio::test]
async fn azure_throttles_refuse_the_sixth_poll_within_ten_seconds_with_the_wait() {
    let emulator = Emulator::builder()
        .quickstart_fixture()
        .retry_after(0)
        .azure_throttles("S1".parse().expect("a tier"))
        .start()
        .await
        .expect("emulator starts");
    let poll_throttle = emulator
        .faults()
        .list()
        .into_iter()
        .find(|s| s.rule.operation() == FaultOperation::DpsPoll)
        .expect("the throttles are listed as rules");
    assert_eq!(
        poll_throttle.to_json()["rate"],
        serde_json::json!({"limit": 5, "seconds": 10, "each": true})
    );
    let (mut client, operation) = dps_mqtt_registration_started(&emulator).await;
    let poll = |rid: u32| dps_poll_topic(rid, &operation);
    for rid in 2..=6 {
        let (topic, done) = request_response(&mut client, &poll(rid), b"").await;
        assert_eq!(topic, format!("$dps/registrations/res/200/?$rid={rid}"));
        assert_eq!(done["status"], "assigned");
    }
    // DPS allows 5 polls per 10 s per device: the sixth waits for half a poll-second's
    // refill, about 2 s, which the retry-after says.
    let (topic, error) = request_response(&mut client, &poll(7), b"").await;
    assert_eq!(topic, "$dps/registrations/res/429/?$rid=7&retry-after=2");
    assert_eq!(error["errorCode"], 429001);
}

#[tokio::test]
async fn azure_throttles_refuse_the_hubs_101st_c2d_send_in_a_minute() {
    use iotemu::{C2dMessage, SymmetricKey, WaitStored};
    let emulator = Emulator::builder()
        .quickstart_fixture()
        .control_port(0)
        .azure_throttles("S1".parse().expect("a tier"))
        .start()
        .await
        .expect("emulator starts");
    let hub = emulator.default_hub();
    let key = SymmetricKey::from_base64(QUICKSTART_KEY).unwrap();
    // Three devices: a device's queue holds 50 messages, the hub's throttle counts them all.
    for device in ["c2d-0", "c2d-1", "c2d-2"] {
        hub.provision_device(device, key.clone(), key.clone(), None);
    }
    for n in 0..100 {
        let device = format!("c2d-{}", n % 3);
        hub.send_c2d(&device, C2dMessage::new("x"))
            .wait_stored()
            .unwrap_or_else(|e| panic!("send {n}: {e}"));
    }
    // S1, one unit: 100 sends a minute; the 101st waits for a refill, about 0.6 s.
    let refused = hub
        .send_c2d("c2d-0", C2dMessage::new("one too many"))
        .wait_stored()
        .unwrap_err();
    assert_eq!((refused.code, refused.retry_after), (429001, Some(1)));
    let (status, error) = control_call(&emulator, "POST", "/c2d?deviceId=c2d-1", &[], "x").await;
    assert_eq!(status, 429, "{error}");
    assert_eq!(error["errorCode"], 429001);
    let queued: usize = ["c2d-0", "c2d-1", "c2d-2"]
        .iter()
        .map(|d| hub.c2d_pending(d).len())
        .sum();
    assert_eq!(queued, 100, "nothing refused was queued");
}

/// Azure's twin throttles are per hub, whoever reads or writes: a service's `GET /twins/{id}`
/// counts against a `hub.twin.get` throttle, while a `hub.twin.get` refusal stays the
/// device's (docs/faults.md).
#[tokio::test]
async fn a_services_twin_reads_count_against_the_twin_read_throttle_only() {
    use iotemu::{Rate, SymmetricKey};
    let emulator = start_emulator(None).await;
    let key = SymmetricKey::from_base64(QUICKSTART_KEY).unwrap();
    emulator
        .default_hub()
        .provision_device("tw-1", key.clone(), key, None);
    let refusal = emulator
        .faults()
        .inject(
            FaultRule::new(FaultOperation::HubTwinGet, Refusal::InternalError).device_id("tw-1"),
        )
        .expect("a valid rule");
    let read = || {
        hub_rest(
            &emulator,
            "GET",
            "/twins/tw-1",
            &[],
            serde_json::Value::Null,
        )
    };
    assert_eq!(
        read().await.status,
        200,
        "a refusal is the device's, not the service's"
    );
    drop(refusal);
    let throttle = emulator
        .faults()
        .inject(FaultRule::throttle(
            FaultOperation::HubTwinGet,
            Rate::new(2, 60),
        ))
        .expect("a valid rule");
    assert_eq!(read().await.status, 200);
    assert_eq!(read().await.status, 200);
    let over = read().await;
    assert_eq!(over.status, 429, "{}", String::from_utf8_lossy(&over.body));
    assert!(over.header("retry-after").is_some(), "{:?}", over.headers);
    // A twin update counts against the update throttle, not the read one.
    let patch = hub_rest(
        &emulator,
        "PATCH",
        "/twins/tw-1",
        &[],
        serde_json::json!({"properties": {"desired": {"x": 1}}}),
    )
    .await;
    assert_eq!(
        patch.status,
        200,
        "{}",
        String::from_utf8_lossy(&patch.body)
    );
    assert_eq!(throttle.hits(), 1);
}
