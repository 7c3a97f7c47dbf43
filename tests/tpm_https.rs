//! DPS TPM attestation over HTTPS (issue #14), end to end in process: a software TPM
//! (`iotemu::internals::tpm::SoftwareTpm`) plays the device exactly as the SDKs drive a real one —
//! the unauthenticated register with its EK and SRK, the 401 challenge it activates and
//! imports, the SAS it signs, the polls, the hub key it imports from the assigned state, and
//! telemetry to the hub with a SAS signed by that key. Refusals carry Azure's codes.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use iotemu::Emulator;
use iotemu::internals::tpm::SoftwareTpm;
use iotemu_e2e::*;
use serde_json::{Value, json};

const SCOPE: &str = "0ne00000A0A";
const OWNER_KEY: &str = "9v222dNTjDaRlypsKaNmfRb+fM+lb6iI4vJsVu9VHBA=";
const DPS_API: &str = "api-version=2019-03-31";
const DEVICE_ID: &str = "tpm-device-1";

fn tpm() -> SoftwareTpm {
    SoftwareTpm::new(2048).expect("software TPM")
}

/// `{endorsementKey, storageRootKey}` as the SDKs send them.
fn tpm_keys(tpm: &SoftwareTpm) -> Value {
    json!({
        "endorsementKey": BASE64.encode(tpm.endorsement_key().unwrap()),
        "storageRootKey": BASE64.encode(tpm.storage_root_key().unwrap()),
    })
}

/// Enrolls `registration_id` for `ek` through the DPS service API.
async fn enroll(emulator: &Emulator, registration_id: &str, ek: &[u8], status: &str) {
    let owner = build_token(
        "localhost",
        &decode_key(OWNER_KEY),
        Some("provisioningserviceowner"),
        seconds_from_now(600),
    );
    let body = json!({
        "registrationId": registration_id,
        "deviceId": DEVICE_ID,
        "attestation": {"type": "tpm", "tpm": {"endorsementKey": BASE64.encode(ek)}},
        "provisioningStatus": status,
    });
    let created = https_request(
        emulator,
        None,
        "PUT",
        &format!("/enrollments/{registration_id}?api-version=2021-10-01"),
        &[
            ("Authorization", owner.as_str()),
            ("Content-Type", "application/json"),
        ],
        body.to_string().as_bytes(),
    )
    .await;
    assert_eq!(
        created.status,
        200,
        "{}",
        String::from_utf8_lossy(&created.body)
    );
}

async fn register(
    emulator: &Emulator,
    registration_id: &str,
    token: Option<&str>,
    body: &[u8],
) -> HttpsResponse {
    let mut headers = vec![("Content-Type", "application/json; charset=utf-8")];
    if let Some(token) = token {
        headers.push(("Authorization", token));
    }
    https_request(
        emulator,
        None,
        "PUT",
        &format!("/{SCOPE}/registrations/{registration_id}/register?{DPS_API}"),
        &headers,
        body,
    )
    .await
}

fn register_body(registration_id: &str, tpm: &SoftwareTpm) -> Vec<u8> {
    json!({"registrationId": registration_id, "tpm": tpm_keys(tpm)})
        .to_string()
        .into_bytes()
}

fn registration_token(tpm: &SoftwareTpm, registration_id: &str) -> String {
    tpm.sas_token(
        &format!("{SCOPE}/registrations/{registration_id}"),
        Some("registration"),
        seconds_from_now(3600),
    )
    .unwrap()
}

fn blob_of(value: &Value) -> Vec<u8> {
    BASE64
        .decode(value.as_str().expect("authenticationKey is a string"))
        .expect("authenticationKey is base64")
}

#[tokio::test]
async fn a_tpm_device_registers_imports_its_hub_key_and_sends_telemetry() {
    let emulator = start_emulator(None).await;
    let mut device = tpm();
    let registration_id =
        iotemu::internals::tpm::registration_id_from_ek(&device.endorsement_key().unwrap());
    enroll(
        &emulator,
        &registration_id,
        &device.endorsement_key().unwrap(),
        "enabled",
    )
    .await;
    let body = register_body(&registration_id, &device);

    // 1. No token: the challenge, shaped for both SDKs (keyName, no status).
    let challenge = register(&emulator, &registration_id, None, &body).await;
    assert_eq!(challenge.status, 401);
    let challenge = challenge.json();
    assert_eq!(challenge["keyName"], "registration");
    assert!(challenge.get("status").is_none(), "{challenge}");
    assert!(challenge["message"].is_string());
    device
        .import(&blob_of(&challenge["authenticationKey"]))
        .unwrap();

    // 2. Signed with the imported key: 202, then the poll assigns.
    let token = registration_token(&device, &registration_id);
    let started = register(&emulator, &registration_id, Some(&token), &body).await;
    assert_eq!(started.status, 202, "{:?}", started.json());
    let operation = started.json()["operationId"].as_str().unwrap().to_owned();
    let done = https_request(
        &emulator,
        None,
        "GET",
        &format!("/{SCOPE}/registrations/{registration_id}/operations/{operation}?{DPS_API}"),
        &[("Authorization", token.as_str())],
        b"",
    )
    .await;
    assert_eq!(done.status, 200);
    let state = done.json()["registrationState"].clone();
    assert_eq!(state["status"], "assigned", "{state}");
    assert_eq!(state["deviceId"], DEVICE_ID);
    assert!(state.get("symmetricKey").is_none(), "{state}");

    // 3. The hub key arrives wrapped for the same TPM; the device signs hub tokens with it.
    device
        .import(&blob_of(&state["tpm"]["authenticationKey"]))
        .unwrap();
    let hub_token = device
        .sas_token(
            &format!("localhost/devices/{DEVICE_ID}"),
            None,
            seconds_from_now(600),
        )
        .unwrap();
    let sent = https_request(
        &emulator,
        None,
        "POST",
        &format!("/devices/{DEVICE_ID}/messages/events?api-version=2021-04-12"),
        &[
            ("Authorization", hub_token.as_str()),
            ("IoTHub-MessageId", "tpm-1"),
        ],
        b"hello from a TPM",
    )
    .await;
    assert_eq!(sent.status, 204, "{}", String::from_utf8_lossy(&sent.body));

    // The record agrees (the same domain answers MQTT, the service API and the control port).
    let record = emulator.dps().registration(&registration_id).unwrap();
    assert_eq!(record.device_id.as_deref(), Some(DEVICE_ID));
}

#[tokio::test]
async fn refusals_have_azure_codes_and_never_challenge_a_stranger() {
    let emulator = start_emulator(None).await;
    let enrolled = tpm();
    let stranger = tpm();
    enroll(
        &emulator,
        "tpm-reg",
        &enrolled.endorsement_key().unwrap(),
        "enabled",
    )
    .await;

    // An EK other than the enrolled one: a plain 401, no challenge.
    let wrong = register(
        &emulator,
        "tpm-reg",
        None,
        &register_body("tpm-reg", &stranger),
    )
    .await;
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.header("x-ms-error-code"), Some("401002"));
    assert!(wrong.json().get("authenticationKey").is_none());

    // Keys that cannot be read are a bad request.
    for tpm_value in [
        json!({"endorsementKey": "%%%", "storageRootKey": "AA=="}),
        json!({"endorsementKey": BASE64.encode([0u8, 9, 1]), "storageRootKey": "AA=="}),
        json!({"endorsementKey": 7}),
        json!("not an object"),
    ] {
        let body = json!({"registrationId": "tpm-reg", "tpm": tpm_value}).to_string();
        let refused = register(&emulator, "tpm-reg", None, body.as_bytes()).await;
        assert_eq!(refused.status, 400, "{tpm_value}");
        assert_eq!(refused.header("x-ms-error-code"), Some("400004"));
    }

    // A body that is not JSON, or has no `tpm`, gets no challenge.
    for body in [&b"{not json"[..], br#"{"registrationId":"tpm-reg"}"#] {
        let refused = register(&emulator, "tpm-reg", None, body).await;
        assert_eq!(refused.status, 401);
        assert_eq!(refused.header("x-ms-error-code"), Some("401002"));
    }

    // A symmetric-key enrollment is never challenged, whatever the body says.
    let quickstart = register(
        &emulator,
        QUICKSTART_REGISTRATION_ID,
        None,
        &register_body(QUICKSTART_REGISTRATION_ID, &enrolled),
    )
    .await;
    assert_eq!(quickstart.status, 401);
    assert!(quickstart.json().get("authenticationKey").is_none());

    // A device that cannot activate the challenge signs with something else: refused (with a
    // fresh challenge, since its request still carries its keys), and polls need a token.
    let mut impostor = tpm();
    let blob = https_challenge_for(&emulator, &impostor).await;
    assert!(
        impostor.import(&blob).is_err(),
        "the blob opens only in the enrolled TPM"
    );
    let mut other = tpm();
    let own_blob = iotemu::internals::dps::TpmDevice::from_tpm2b(
        &other.endorsement_key().unwrap(),
        &other.storage_root_key().unwrap(),
    )
    .unwrap()
    .wrap(&[5u8; 32])
    .unwrap();
    other.import(&own_blob).unwrap();
    let token = registration_token(&other, "tpm-reg");
    let body = json!({"registrationId": "tpm-reg", "tpm": {
        "endorsementKey": BASE64.encode(enrolled.endorsement_key().unwrap()),
        "storageRootKey": BASE64.encode(impostor.storage_root_key().unwrap()),
    }})
    .to_string();
    let refused = register(&emulator, "tpm-reg", Some(&token), body.as_bytes()).await;
    assert_eq!(refused.status, 401);
    let poll = https_request(
        &emulator,
        None,
        "GET",
        &format!("/{SCOPE}/registrations/tpm-reg/operations/4.x.y?{DPS_API}"),
        &[],
        b"",
    )
    .await;
    assert_eq!(poll.status, 401);
    assert_eq!(poll.header("x-ms-error-code"), Some("401002"));
    assert!(emulator.dps().registration("tpm-reg").is_none());
}

/// The challenge for someone who sends the enrolled EK (public) with their own SRK.
async fn https_challenge_for(emulator: &Emulator, impostor: &SoftwareTpm) -> Vec<u8> {
    let enrolled_ek = emulator
        .dps()
        .individual_enrollment("tpm-reg")
        .and_then(|e| e.attestation.tpm)
        .and_then(|t| t.endorsement_key)
        .expect("the enrolled EK");
    let body = json!({"registrationId": "tpm-reg", "tpm": {
        "endorsementKey": enrolled_ek,
        "storageRootKey": BASE64.encode(impostor.storage_root_key().unwrap()),
    }})
    .to_string();
    let challenge = register(emulator, "tpm-reg", None, body.as_bytes()).await;
    assert_eq!(challenge.status, 401);
    blob_of(&challenge.json()["authenticationKey"])
}

#[tokio::test]
async fn a_disabled_tpm_enrollment_is_reported_disabled_after_the_challenge() {
    let emulator = start_emulator(None).await;
    let mut device = tpm();
    enroll(
        &emulator,
        "tpm-off",
        &device.endorsement_key().unwrap(),
        "disabled",
    )
    .await;
    let body = register_body("tpm-off", &device);
    let challenge = register(&emulator, "tpm-off", None, &body).await;
    assert_eq!(challenge.status, 401);
    device
        .import(&blob_of(&challenge.json()["authenticationKey"]))
        .unwrap();
    let token = registration_token(&device, "tpm-off");
    let started = register(&emulator, "tpm-off", Some(&token), &body).await;
    assert_eq!(started.status, 202);
    let operation = started.json()["operationId"].as_str().unwrap().to_owned();
    let done = https_request(
        &emulator,
        None,
        "GET",
        &format!("/{SCOPE}/registrations/tpm-off/operations/{operation}?{DPS_API}"),
        &[("Authorization", token.as_str())],
        b"",
    )
    .await;
    assert_eq!(done.status, 200);
    let done = done.json();
    assert_eq!(done["status"], "disabled");
    assert!(done["registrationState"].get("tpm").is_none(), "{done}");
}
