//! HTTPS on the REST port (issue #5): DPS device registration over HTTPS with the same
//! behaviour as MQTT, and the DPS service API with policy-token auth, ETags, paging and bulk.

use iotemu::Emulator;
use iotemu::certs;
use iotemu_e2e::*;
use serde_json::{Value, json};

const SCOPE: &str = "0ne00000A0A";
const OWNER_KEY: &str = "9v222dNTjDaRlypsKaNmfRb+fM+lb6iI4vJsVu9VHBA=";
const API: &str = "api-version=2021-10-01";

fn owner_token() -> String {
    build_token(
        "localhost",
        &b64(OWNER_KEY),
        Some("provisioningserviceowner"),
        seconds_from_now(600),
    )
}

fn b64(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}

async fn service(
    emulator: &Emulator,
    method: &str,
    path: &str,
    extra: &[(&str, &str)],
    body: Value,
) -> HttpsResponse {
    let token = owner_token();
    let mut headers = vec![
        ("Authorization", token.as_str()),
        ("Content-Type", "application/json"),
    ];
    headers.extend_from_slice(extra);
    let separator = if path.contains('?') { '&' } else { '?' };
    let body = if body.is_null() {
        Vec::new()
    } else {
        body.to_string().into_bytes()
    };
    https_request(
        emulator,
        None,
        method,
        &format!("{path}{separator}{API}"),
        &headers,
        &body,
    )
    .await
}

#[tokio::test]
async fn device_registers_over_https_with_sas() {
    let emulator = start_emulator(None).await;
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
    let base = format!("/{SCOPE}/registrations/{QUICKSTART_REGISTRATION_ID}");
    let body = format!(r#"{{"registrationId":"{QUICKSTART_REGISTRATION_ID}"}}"#);

    let started = https_request(
        &emulator,
        None,
        "PUT",
        &format!("{base}/register?api-version=2019-03-31"),
        &headers,
        body.as_bytes(),
    )
    .await;
    assert_eq!(started.status, 202, "{:?}", started.json());
    assert_eq!(started.header("retry-after"), Some("0"));
    let operation = started.json()["operationId"].as_str().unwrap().to_owned();
    assert_eq!(
        started.header("location"),
        Some(format!("{base}/operations/{operation}").as_str())
    );

    let done = https_request(
        &emulator,
        None,
        "GET",
        &format!("{base}/operations/{operation}?api-version=2019-03-31"),
        &headers,
        b"",
    )
    .await;
    assert_eq!(done.status, 200);
    let done = done.json();
    assert_eq!(done["status"], "assigned");
    assert_eq!(done["registrationState"]["deviceId"], QUICKSTART_DEVICE_ID);

    let lookup = https_request(
        &emulator,
        None,
        "POST",
        &format!("{base}?api-version=2021-06-01"),
        &headers,
        body.as_bytes(),
    )
    .await;
    assert_eq!(lookup.status, 200);
    assert_eq!(lookup.json()["assignedHub"], "localhost");

    // The same device over MQTT sees the same record: one domain behind both transports.
    assert_eq!(
        emulator
            .dps()
            .registration(QUICKSTART_REGISTRATION_ID)
            .unwrap()
            .device_id
            .as_deref(),
        Some(QUICKSTART_DEVICE_ID)
    );
}

#[tokio::test]
async fn https_errors_have_the_dps_shape() {
    let emulator = start_emulator(None).await;
    let base = format!("/{SCOPE}/registrations/{QUICKSTART_REGISTRATION_ID}/register");
    let wrong = dps_token(
        SCOPE,
        QUICKSTART_REGISTRATION_ID,
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        seconds_from_now(600),
    );
    let refused = https_request(
        &emulator,
        None,
        "PUT",
        &format!("{base}?{API}"),
        &[("Authorization", &wrong)],
        b"{}",
    )
    .await;
    assert_eq!(refused.status, 401);
    assert_eq!(refused.header("x-ms-error-code"), Some("401002"));
    assert_eq!(refused.json()["errorCode"], 401002);
    assert!(refused.json()["trackingId"].is_string());

    let good = dps_token(
        SCOPE,
        QUICKSTART_REGISTRATION_ID,
        QUICKSTART_KEY,
        seconds_from_now(600),
    );
    let no_version = https_request(
        &emulator,
        None,
        "PUT",
        &base,
        &[("Authorization", &good)],
        b"{}",
    )
    .await;
    assert_eq!(no_version.status, 400);
    assert!(
        no_version.json()["message"]
            .as_str()
            .unwrap()
            .contains("api-version")
    );

    let bad_json = https_request(
        &emulator,
        None,
        "PUT",
        &format!("{base}?{API}"),
        &[("Authorization", &good)],
        b"{oops",
    )
    .await;
    assert_eq!(bad_json.status, 400);
    assert!(
        emulator
            .dps()
            .registration(QUICKSTART_REGISTRATION_ID)
            .is_none()
    );

    let unknown = https_request(&emulator, None, "GET", "/nowhere?api-version=1", &[], b"").await;
    assert_eq!(unknown.status, 404);
}

#[tokio::test]
async fn x509_device_registers_over_https() {
    let device = certs::self_signed_device("https-x509-1", 30).unwrap();
    let fixture = json!({
        "enrollments": [{ "registrationId": "https-x509-1", "attestation": { "type": "x509",
            "x509": { "clientCertificates": { "primary": { "certificate": device.cert_pem } } } } }]
    })
    .to_string();
    let emulator = start_emulator(Some(&fixture)).await;
    let identity = || Some((device.full_chain_der().to_vec(), device.private_key_der()));
    let base = format!("/{SCOPE}/registrations/https-x509-1");
    let started = https_request(
        &emulator,
        identity(),
        "PUT",
        &format!("{base}/register?{API}"),
        &[],
        br#"{"registrationId":"https-x509-1"}"#,
    )
    .await;
    assert_eq!(started.status, 202, "{:?}", started.json());
    let operation = started.json()["operationId"].as_str().unwrap().to_owned();
    let done = https_request(
        &emulator,
        identity(),
        "GET",
        &format!("{base}/operations/{operation}?{API}"),
        &[],
        b"",
    )
    .await;
    assert_eq!(done.json()["status"], "assigned");
    // Without the certificate (and without a token) the same request is refused.
    let anonymous = https_request(
        &emulator,
        None,
        "PUT",
        &format!("{base}/register?{API}"),
        &[],
        b"{}",
    )
    .await;
    assert_eq!(anonymous.status, 401);
}

#[tokio::test]
async fn service_api_manages_enrollments_with_etags_and_generated_keys() {
    let emulator = start_emulator(None).await;
    let created = service(
        &emulator,
        "PUT",
        "/enrollments/svc-dev-1",
        &[],
        json!({
            "registrationId": "svc-dev-1", "deviceId": "svc-device-1",
            "attestation": { "type": "symmetricKey" }, "provisioningStatus": "enabled"
        }),
    )
    .await;
    assert_eq!(created.status, 200, "{:?}", created.json());
    let created = created.json();
    let etag = created["etag"].as_str().unwrap().to_owned();
    let key = created["attestation"]["symmetricKey"]["primaryKey"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(b64(&key).len(), 64, "generated keys are 64 random bytes");

    // Stale ETag → 412; the current one → 200 with a new ETag.
    let stale = service(&emulator, "PUT", "/enrollments/svc-dev-1", &[("If-Match", "\"nope\"")], json!({
        "registrationId": "svc-dev-1", "attestation": { "type": "symmetricKey", "symmetricKey": { "primaryKey": key } }
    })).await;
    assert_eq!(stale.status, 412);
    let updated = service(
        &emulator,
        "PUT",
        "/enrollments/svc-dev-1",
        &[("If-Match", etag.as_str())],
        json!({
            "registrationId": "svc-dev-1", "deviceId": "svc-device-1",
            "attestation": { "type": "symmetricKey", "symmetricKey": { "primaryKey": key } }
        }),
    )
    .await;
    assert_eq!(updated.status, 200, "{:?}", updated.json());
    assert_ne!(updated.json()["etag"], etag.as_str());

    // The attestation mechanism (case-insensitive path, as Node writes it) returns the keys.
    let attestation = service(
        &emulator,
        "POST",
        "/Enrollments/svc-dev-1/attestationmechanism",
        &[],
        Value::Null,
    )
    .await;
    assert_eq!(
        attestation.json()["symmetricKey"]["primaryKey"],
        key.as_str()
    );

    // The change applies to the next registration at once.
    let mut client = RawClient::connect(&emulator).await;
    let token = dps_token(SCOPE, "svc-dev-1", &key, seconds_from_now(600));
    client
        .mqtt_connect("svc-dev-1", &dps_username(SCOPE, "svc-dev-1"), &token)
        .await;
    assert_eq!(client.register("svc-dev-1").await["status"], "assigned");
    let state = service(
        &emulator,
        "GET",
        "/registrations/svc-dev-1",
        &[],
        Value::Null,
    )
    .await;
    assert_eq!(state.json()["deviceId"], "svc-device-1");
    assert_eq!(
        service(
            &emulator,
            "DELETE",
            "/registrations/svc-dev-1",
            &[],
            Value::Null
        )
        .await
        .status,
        204
    );
    assert_eq!(
        service(
            &emulator,
            "GET",
            "/registrations/svc-dev-1",
            &[],
            Value::Null
        )
        .await
        .status,
        404
    );

    assert_eq!(
        service(
            &emulator,
            "DELETE",
            "/enrollments/svc-dev-1",
            &[],
            Value::Null
        )
        .await
        .status,
        204
    );
    assert_eq!(
        service(&emulator, "GET", "/enrollments/svc-dev-1", &[], Value::Null)
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn service_queries_page_and_bulk_operations_report_per_item() {
    let emulator = start_emulator(None).await;
    let enrollments: Vec<Value> = (0..5)
        .map(|i| json!({ "registrationId": format!("bulk-{i}"), "attestation": { "type": "symmetricKey" } }))
        .collect();
    let bulk = service(
        &emulator,
        "POST",
        "/enrollments",
        &[],
        json!({ "mode": "create", "enrollments": enrollments }),
    )
    .await;
    assert_eq!(bulk.status, 200);
    assert_eq!(bulk.json()["isSuccessful"], true);
    let again = service(
        &emulator,
        "POST",
        "/enrollments",
        &[],
        json!({ "mode": "create", "enrollments": [enrollments[0]] }),
    )
    .await;
    assert_eq!(again.json()["isSuccessful"], false);
    assert_eq!(again.json()["errors"][0]["registrationId"], "bulk-0");

    let eleven: Vec<Value> = (0..11)
        .map(|i| json!({ "registrationId": format!("x-{i}"), "attestation": { "type": "symmetricKey" } }))
        .collect();
    let too_many = service(
        &emulator,
        "POST",
        "/enrollments",
        &[],
        json!({ "mode": "create", "enrollments": eleven }),
    )
    .await;
    assert_eq!(too_many.status, 400);

    // 6 enrollments (5 + the quickstart one), pages of 4.
    let first = service(
        &emulator,
        "POST",
        "/enrollments/query",
        &[("x-ms-max-item-count", "4")],
        json!({ "query": "*" }),
    )
    .await;
    assert_eq!(first.status, 200);
    assert_eq!(first.json().as_array().unwrap().len(), 4);
    assert_eq!(first.header("x-ms-item-type"), Some("Enrollment"));
    let token = first
        .header("x-ms-continuation")
        .expect("more pages")
        .to_owned();
    let second = service(
        &emulator,
        "POST",
        "/enrollments/query",
        &[
            ("x-ms-max-item-count", "4"),
            ("x-ms-continuation", token.as_str()),
        ],
        json!({ "query": "*" }),
    )
    .await;
    assert_eq!(second.json().as_array().unwrap().len(), 2);
    assert!(second.header("x-ms-continuation").is_none());

    let groups = service(
        &emulator,
        "POST",
        "/enrollmentGroups/query",
        &[],
        json!({ "query": "SELECT * FROM enrollmentGroups" }),
    )
    .await;
    assert_eq!(groups.json()[0]["enrollmentGroupId"], "quickstart-group");
}

#[tokio::test]
async fn service_tokens_need_the_right_policy_and_rights() {
    let fixture = json!({
        "dps": { "idScope": SCOPE, "hostName": "localhost", "sharedAccessPolicies": [
            { "keyName": "reader", "primaryKey": OWNER_KEY, "rights": "EnrollmentRead" } ] }
    })
    .to_string();
    let emulator = start_emulator_with_dps(&fixture).await;
    let reader = build_token(
        "localhost",
        &b64(OWNER_KEY),
        Some("reader"),
        seconds_from_now(600),
    );
    let read = https_request(
        &emulator,
        None,
        "GET",
        &format!("/enrollments/symm-key-python-device-008?{API}"),
        &[("Authorization", &reader)],
        b"",
    )
    .await;
    assert_eq!(read.status, 200, "{:?}", read.json());
    let write = https_request(
        &emulator,
        None,
        "DELETE",
        &format!("/enrollments/symm-key-python-device-008?{API}"),
        &[("Authorization", &reader)],
        b"",
    )
    .await;
    assert_eq!(write.status, 401);
    let forged = build_token(
        "localhost",
        &[7u8; 32],
        Some("reader"),
        seconds_from_now(600),
    );
    let forged = https_request(
        &emulator,
        None,
        "GET",
        &format!("/enrollments/symm-key-python-device-008?{API}"),
        &[("Authorization", &forged)],
        b"",
    )
    .await;
    assert_eq!(forged.status, 401);
    let anonymous = https_request(
        &emulator,
        None,
        "GET",
        &format!("/enrollments/symm-key-python-device-008?{API}"),
        &[],
        b"",
    )
    .await;
    assert_eq!(anonymous.status, 401);
    assert!(
        emulator
            .dps()
            .individual_enrollment("symm-key-python-device-008")
            .is_some()
    );
}

/// `se` past year 9999 (issue #12) on the DPS device and service APIs: 401 with the DPS error
/// shape, never a dropped connection; a good request is served afterwards.
#[tokio::test]
async fn absurd_sas_expiry_is_a_401_on_dps_https() {
    let emulator = start_emulator(None).await;
    let register = format!("/{SCOPE}/registrations/{QUICKSTART_REGISTRATION_ID}/register?{API}");
    for expiry in [1u64 << 63, u64::MAX, 253_402_300_800] {
        let token = dps_token(SCOPE, QUICKSTART_REGISTRATION_ID, QUICKSTART_KEY, expiry);
        let refused = https_request(
            &emulator,
            None,
            "PUT",
            &register,
            &[
                ("Authorization", &token),
                ("Content-Type", "application/json"),
            ],
            br#"{"registrationId":"symm-key-python-device-008"}"#,
        )
        .await;
        assert_eq!(refused.status, 401, "se={expiry}");
        assert_eq!(refused.header("x-ms-error-code"), Some("401002"));

        let token = build_token(
            "localhost",
            &b64(OWNER_KEY),
            Some("provisioningserviceowner"),
            expiry,
        );
        let refused = https_request(
            &emulator,
            None,
            "GET",
            &format!("/enrollments/{QUICKSTART_REGISTRATION_ID}?{API}"),
            &[("Authorization", &token)],
            b"",
        )
        .await;
        assert_eq!(refused.status, 401, "service se={expiry}");
    }
    let good = dps_token(
        SCOPE,
        QUICKSTART_REGISTRATION_ID,
        QUICKSTART_KEY,
        seconds_from_now(600),
    );
    let accepted = https_request(
        &emulator,
        None,
        "PUT",
        &register,
        &[
            ("Authorization", &good),
            ("Content-Type", "application/json"),
        ],
        br#"{"registrationId":"symm-key-python-device-008"}"#,
    )
    .await;
    assert_eq!(accepted.status, 202);
}

/// The swtpm EK and SRK of the TPM building blocks' test vectors.
const TPM_EK: &[u8] = include_bytes!("../emulator/src/auth/tpm/testdata/ek.pub");
const TPM_SRK: &[u8] = include_bytes!("../emulator/src/auth/tpm/testdata/srk.pub");

#[tokio::test]
async fn service_api_takes_tpm_individual_enrollments_and_refuses_tpm_groups() {
    use base64::Engine as _;
    let encode = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let emulator = start_emulator(None).await;
    let attestation = json!({ "type": "tpm",
        "tpm": { "endorsementKey": encode(TPM_EK), "storageRootKey": encode(TPM_SRK) } });
    let created = service(
        &emulator,
        "PUT",
        "/enrollments/tpm-dev-1",
        &[],
        json!({ "registrationId": "tpm-dev-1", "attestation": attestation }),
    )
    .await;
    assert_eq!(created.status, 200, "{:?}", created.json());
    assert_eq!(created.json()["attestation"], attestation);
    let read = service(&emulator, "GET", "/enrollments/tpm-dev-1", &[], Value::Null).await;
    assert_eq!(read.status, 200);
    assert_eq!(
        read.json()["attestation"],
        attestation,
        "the keys come back as given"
    );
    let found = emulator.dps().tpm_enrollment(SCOPE, "tpm-dev-1").unwrap();
    assert_eq!(found.keys.endorsement_key().tpm2b(), TPM_EK);

    // Not a TPM2B_PUBLIC, or an upper-case registration id: 400 with Azure's error shape.
    for (id, ek) in [
        ("tpm-dev-2", encode(b"not a public area")),
        ("Tpm-Dev-2", encode(TPM_EK)),
    ] {
        let refused = service(
            &emulator,
            "PUT",
            &format!("/enrollments/{id}"),
            &[],
            json!({ "registrationId": id,
                "attestation": { "type": "tpm", "tpm": { "endorsementKey": ek } } }),
        )
        .await;
        assert_eq!(refused.status, 400, "{id}");
        assert_eq!(refused.json()["errorCode"], 400004);
        assert!(refused.json()["trackingId"].is_string());
    }

    let group = service(
        &emulator,
        "PUT",
        "/enrollmentGroups/tpm-group",
        &[],
        json!({ "enrollmentGroupId": "tpm-group", "attestation": attestation }),
    )
    .await;
    assert_eq!(group.status, 400);
    assert_eq!(group.json()["errorCode"], 400004);
    assert!(
        group.json()["message"]
            .as_str()
            .unwrap()
            .contains("Enrollment groups do not support TPM attestation")
    );
}
