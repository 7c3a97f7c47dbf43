//! Bad input is refused with Azure's codes before anything changes (issue #12 item 2): twin
//! bodies of the wrong type or past the documented limits, trailing data after a JSON body,
//! registration, enrollment and device ids the services do not allow — and DPS never creates
//! a device the hub's own API would refuse.

use iotemu::WaitStored;
use std::time::{Duration, SystemTime};

use iotemu::Emulator;
use iotemu::IndividualEnrollment;
use iotemu::SymmetricKey;
use iotemu::internals::mqtt::codec::{ConnectReturnCode, Packet};
use iotemu_e2e::*;
use serde_json::{Value, json};

const SCOPE: &str = "0ne00000A0A";
const DPS_OWNER_KEY: &str = "9v222dNTjDaRlypsKaNmfRb+fM+lb6iI4vJsVu9VHBA=";

/// A hub service call with a raw body (so that invalid JSON can be sent).
async fn hub_raw(emulator: &Emulator, method: &str, path: &str, body: &[u8]) -> HttpsResponse {
    use base64::Engine as _;
    let key = base64::engine::general_purpose::STANDARD
        .decode(HUB_OWNER_KEY)
        .unwrap();
    let auth = build_token(
        "localhost",
        &key,
        Some("iothubowner"),
        seconds_from_now(600),
    );
    https_request(
        emulator,
        None,
        method,
        &format!("{path}?api-version=2021-04-12"),
        &[
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/json"),
        ],
        body,
    )
    .await
}

/// A DPS service call with a raw body.
async fn dps_raw(emulator: &Emulator, method: &str, path: &str, body: &[u8]) -> HttpsResponse {
    use base64::Engine as _;
    let key = base64::engine::general_purpose::STANDARD
        .decode(DPS_OWNER_KEY)
        .unwrap();
    let auth = build_token(
        "localhost",
        &key,
        Some("provisioningserviceowner"),
        seconds_from_now(600),
    );
    https_request(
        emulator,
        None,
        method,
        &format!("{path}?api-version=2021-10-01"),
        &[
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/json"),
        ],
        body,
    )
    .await
}

fn assert_argument_invalid(response: &HttpsResponse, what: &str) {
    assert_eq!(response.status, 400, "{what}: {:?}", response.json());
    assert_eq!(
        response.header("iothub-errorcode"),
        Some("ArgumentInvalid"),
        "{what}"
    );
    assert!(
        response.json()["Message"]
            .as_str()
            .unwrap_or_default()
            .starts_with("ErrorCode:ArgumentInvalid;"),
        "{what}: {:?}",
        response.json()
    );
}

async fn twin_of(emulator: &Emulator, device_id: &str) -> Value {
    let got = hub_rest(
        emulator,
        "GET",
        &format!("/twins/{device_id}"),
        &[],
        Value::Null,
    )
    .await;
    assert_eq!(got.status, 200);
    got.json()
}

/// The parts of a twin a bad request could have changed.
fn contents(twin: &Value) -> Value {
    json!({
        "tags": twin["tags"],
        "desired": twin["properties"]["desired"],
        "etag": twin["etag"],
    })
}

#[tokio::test]
async fn twin_bodies_of_the_wrong_type_are_400_and_change_nothing() {
    let emulator = start_emulator(None).await;
    let created = hub_rest(&emulator, "PUT", "/devices/tw-1", &[], json!({})).await;
    assert_eq!(created.status, 200);
    let seeded = hub_rest(
        &emulator,
        "PATCH",
        "/twins/tw-1",
        &[],
        json!({"tags": {"site": "a"}, "properties": {"desired": {"interval": 5}}}),
    )
    .await;
    assert_eq!(seeded.status, 200);
    let before = contents(&twin_of(&emulator, "tw-1").await);

    let deep = (0..11).fold(json!(1), |v, _| json!({ "k": v }));
    let big_tags: serde_json::Map<String, Value> = (0..3)
        .map(|i| (format!("t{i}"), json!("x".repeat(4000))))
        .collect();
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        ("null", b"null".to_vec()),
        ("array", b"[]".to_vec()),
        ("string", br#""x""#.to_vec()),
        ("number", b"42".to_vec()),
        ("two documents", b"{} {}".to_vec()),
        ("not JSON", b"{".to_vec()),
        ("tags array", br#"{"tags": []}"#.to_vec()),
        ("tags null", br#"{"tags": null}"#.to_vec()),
        ("properties string", br#"{"properties": "x"}"#.to_vec()),
        (
            "desired number",
            br#"{"properties": {"desired": 5}}"#.to_vec(),
        ),
        ("dotted key", br#"{"tags": {"a.b": 1}}"#.to_vec()),
        (
            "dollar key",
            br#"{"properties": {"desired": {"$x": 1}}}"#.to_vec(),
        ),
        ("space key", br#"{"tags": {"a b": 1}}"#.to_vec()),
        (
            "too deep",
            json!({"properties": {"desired": deep}})
                .to_string()
                .into_bytes(),
        ),
        (
            "tags over 8 KB",
            json!({ "tags": big_tags }).to_string().into_bytes(),
        ),
        (
            "integer past 2^52",
            br#"{"tags": {"n": 4503599627370497}}"#.to_vec(),
        ),
    ];
    for method in ["PUT", "PATCH"] {
        for (what, body) in &bodies {
            let refused = hub_raw(&emulator, method, "/twins/tw-1", body).await;
            assert_argument_invalid(&refused, &format!("{method} {what}"));
            assert_eq!(
                contents(&twin_of(&emulator, "tw-1").await),
                before,
                "{method} {what} changed the twin"
            );
        }
    }
    // The same rules hold for module twins.
    let module = hub_rest(&emulator, "PUT", "/devices/tw-1/modules/m1", &[], json!({})).await;
    assert_eq!(module.status, 201);
    for (what, body) in &bodies[..5] {
        let refused = hub_raw(&emulator, "PUT", "/twins/tw-1/modules/m1", body).await;
        assert_argument_invalid(&refused, &format!("module {what}"));
    }
    // And a good update still goes through.
    let good = hub_rest(
        &emulator,
        "PATCH",
        "/twins/tw-1",
        &[],
        json!({"properties": {"desired": {"interval": 6}}}),
    )
    .await;
    assert_eq!(good.status, 200);
    assert_eq!(good.json()["properties"]["desired"]["interval"], 6);
}

#[tokio::test]
async fn trailing_data_after_a_json_body_is_refused() {
    let emulator = start_emulator(None).await;
    let refused = hub_raw(&emulator, "PUT", "/devices/trail-1", b"{} {}").await;
    assert_argument_invalid(&refused, "device");
    assert!(emulator.default_hub().device("trail-1").is_none());

    let created = hub_rest(&emulator, "PUT", "/devices/trail-1", &[], json!({})).await;
    assert_eq!(created.status, 200);
    let refused = hub_raw(&emulator, "PUT", "/devices/trail-1/modules/m", b"{}x").await;
    assert_argument_invalid(&refused, "module");

    let enrollment = json!({
        "registrationId": "trail-enrollment",
        "attestation": {"type": "symmetricKey"},
    })
    .to_string();
    let refused = dps_raw(
        &emulator,
        "PUT",
        "/enrollments/trail-enrollment",
        format!("{enrollment} {{}}").as_bytes(),
    )
    .await;
    assert_eq!(refused.status, 400, "{:?}", refused.json());
    assert_eq!(refused.json()["errorCode"], 400004);
    assert!(
        emulator
            .dps()
            .individual_enrollment("trail-enrollment")
            .is_none()
    );
    let accepted = dps_raw(
        &emulator,
        "PUT",
        "/enrollments/trail-enrollment",
        enrollment.as_bytes(),
    )
    .await;
    assert_eq!(accepted.status, 200, "{:?}", accepted.json());
}

#[tokio::test]
async fn device_ids_the_hub_refuses_are_refused_everywhere() {
    let emulator = start_emulator(None).await;
    let hub = emulator.default_hub();
    let long = "d".repeat(129);
    for bad in [".", "..", "a b", "dev/x", "dév", long.as_str(), ""] {
        let spec = iotemu::DeviceSpec::from_json(bad, b"{}");
        let result = spec.and_then(|spec| hub.create_device(spec).wait_stored());
        assert_eq!(result.unwrap_err().code, 400004, "{bad:?}");
    }
    for good in ["a", "A-1.b_c*?!(),:=@$'%", &"d".repeat(128)] {
        let spec = iotemu::DeviceSpec::from_json(good, b"{}").unwrap();
        hub.create_device(spec).wait_stored().unwrap();
    }
    // An enrollment naming a device id the hub refuses is refused itself.
    for bad_device in ["..", "a b", long.as_str()] {
        let enrollment: IndividualEnrollment = serde_json::from_value(json!({
            "registrationId": "names-a-bad-device",
            "deviceId": bad_device,
            "attestation": {"type": "symmetricKey"},
        }))
        .unwrap();
        assert!(
            emulator
                .dps()
                .create_or_update_enrollment(enrollment)
                .is_err(),
            "{bad_device:?}"
        );
    }
}

#[tokio::test]
async fn enrollment_ids_dot_and_dotdot_and_bad_initial_twins_are_refused() {
    let emulator = start_emulator(None).await;
    for bad in [".", "..", "dev.", "a b", "$edgeAgent", &"r".repeat(129)] {
        let enrollment: IndividualEnrollment = serde_json::from_value(json!({
            "registrationId": bad,
            "attestation": {"type": "symmetricKey"},
        }))
        .unwrap();
        assert!(
            emulator
                .dps()
                .create_or_update_enrollment(enrollment)
                .is_err(),
            "{bad:?}"
        );
    }
    let refused = dps_raw(
        &emulator,
        "PUT",
        "/enrollmentGroups/group.",
        json!({"enrollmentGroupId": "group.", "attestation": {"type": "symmetricKey"}})
            .to_string()
            .as_bytes(),
    )
    .await;
    assert_eq!(refused.status, 400, "{:?}", refused.json());
    assert_eq!(refused.json()["errorCode"], 400004);

    for twin in [
        json!([]),
        json!({"tags": "x"}),
        json!({"properties": {"desired": {"a.b": 1}}}),
        json!({"tags": (0..11).fold(json!(1), |v, _| json!({ "k": v }))}),
    ] {
        let refused = dps_raw(
            &emulator,
            "PUT",
            "/enrollments/bad-twin",
            json!({
                "registrationId": "bad-twin",
                "attestation": {"type": "symmetricKey"},
                "initialTwin": twin,
            })
            .to_string()
            .as_bytes(),
        )
        .await;
        assert_eq!(refused.status, 400, "{twin}: {:?}", refused.json());
    }
    // Free-form members cannot nest past what the store keeps.
    let deep = (0..40).fold(json!(1), |v, _| json!([v]));
    let refused = dps_raw(
        &emulator,
        "PUT",
        "/enrollments/deep-extra",
        json!({
            "registrationId": "deep-extra",
            "attestation": {"type": "symmetricKey"},
            "optionalDeviceInformation": deep,
        })
        .to_string()
        .as_bytes(),
    )
    .await;
    assert_eq!(refused.status, 400, "{:?}", refused.json());
    assert!(emulator.dps().individual_enrollment("deep-extra").is_none());
}

/// With the public quickstart group key anyone can sign for any registration id: the id
/// itself must be checked, first, and no hub device may appear.
#[tokio::test]
async fn invalid_registration_ids_are_refused_before_anything_else() {
    let emulator = start_emulator(None).await;
    let group_key = SymmetricKey::from_base64(QUICKSTART_GROUP_KEY).unwrap();
    let long = "r".repeat(129);
    let devices_before = emulator.default_hub().list_devices(None).len();
    for bad in ["a b", "..", "dev.", "$edgeAgent", "dev!", long.as_str()] {
        let key = group_key.derive_device_key(bad).to_base64();
        let token = dps_token(SCOPE, bad, &key, seconds_from_now(600));

        // Domain: not an authentication question at all.
        let refused = emulator
            .dps()
            .authenticate_registration(
                SCOPE,
                bad,
                iotemu::internals::auth::Credential::Sas(&token),
                SystemTime::now(),
            )
            .unwrap_err();
        assert_eq!(refused.code(), 400004, "{bad:?}");

        // MQTT: the client id is the registration id, so CONNACK 2 (identifier rejected).
        let mut client = RawClient::connect(&emulator).await;
        let code = client
            .mqtt_connect(bad, &dps_username(SCOPE, bad), &token)
            .await;
        assert_eq!(code, ConnectReturnCode::BadClientId, "{bad:?}");
        client.expect_closed().await;

        // HTTPS: 400 with DPS's error shape.
        let path_id = bad.replace(' ', "%20").replace('/', "%2F");
        let refused = https_request(
            &emulator,
            None,
            "PUT",
            &format!("/{SCOPE}/registrations/{path_id}/register?api-version=2021-06-01"),
            &[
                ("Authorization", token.as_str()),
                ("Content-Type", "application/json"),
            ],
            b"{}",
        )
        .await;
        assert_eq!(refused.status, 400, "{bad:?}: {:?}", refused.json());
        assert_eq!(refused.header("x-ms-error-code"), Some("400004"));
    }
    // NUL cannot even get that far: it is an MQTT protocol violation.
    let mut client = RawClient::connect(&emulator).await;
    client
        .send_bytes(&{
            let mut connect = iotemu::internals::mqtt::codec::Connect::new("dev\0x");
            connect.login = Some(rumqttc::mqttbytes::v4::Login::new(
                dps_username(SCOPE, "dev\0x"),
                "x",
            ));
            let mut wire = bytes::BytesMut::new();
            iotemu::internals::mqtt::codec::encode(&Packet::Connect(connect), &mut wire).unwrap();
            wire.to_vec()
        })
        .await;
    assert_eq!(
        client.recv(Duration::from_secs(5)).await,
        Err(RecvEnd::Closed)
    );
    assert_eq!(
        emulator.default_hub().list_devices(None).len(),
        devices_before,
        "no device was created"
    );
    // A valid id from the same group still provisions.
    let good = "group-member-1";
    let key = group_key.derive_device_key(good).to_base64();
    let mut client = RawClient::connect(&emulator).await;
    let token = dps_token(SCOPE, good, &key, seconds_from_now(600));
    let code = client
        .mqtt_connect(good, &dps_username(SCOPE, good), &token)
        .await;
    assert_eq!(code, ConnectReturnCode::Success);
    let state = client.register(good).await;
    assert_eq!(state["status"], "assigned", "{state}");
    assert!(emulator.default_hub().device(good).is_some());
}
