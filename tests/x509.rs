//! X.509 attestation end to end over MQTT/TLS (issue #4): DPS individual enrollments matched
//! by certificate, enrollment groups validated against verified CAs using only the chain the
//! device sent, proof of possession, and hub selfSigned / certificateAuthority devices (a
//! group's device is selfSigned by the leaf it registered with, as Azure creates it).

use iotemu::Emulator;
use iotemu::WaitStored;
use iotemu::certs::{self, GeneratedCert};
use iotemu::internals::mqtt::codec::{ConnectReturnCode, Packet, PubAck, Publish, QoS};
use iotemu_e2e::*;
use serde_json::{Value, json};

const SCOPE: &str = "0ne00000A0A";
const DAYS: u32 = 30;

fn dps_fixture(certificates: Value, enrollments: Value, groups: Value) -> String {
    json!({
        "dps": { "idScope": SCOPE, "hostName": "localhost", "certificates": certificates },
        "enrollments": enrollments,
        "enrollmentGroups": groups,
    })
    .to_string()
}

async fn emulator_with(fixture: &str) -> Emulator {
    Emulator::builder()
        .fixture_json("x509 fixture", fixture)
        .retry_after(0)
        .start()
        .await
        .expect("emulator starts")
}

/// Connects presenting `cert`'s full chain and no password, as `client_id` with `username`.
async fn connect_with(
    emulator: &Emulator,
    cert: &GeneratedCert,
    client_id: &str,
    username: &str,
) -> (RawClient, ConnectReturnCode) {
    let mut client = RawClient::connect_with_certificate(
        emulator,
        cert.full_chain_der().to_vec(),
        cert.private_key_der(),
    )
    .await;
    let code = client.mqtt_connect(client_id, username, "").await;
    (client, code)
}

async fn dps_client(
    emulator: &Emulator,
    cert: &GeneratedCert,
    registration_id: &str,
) -> (RawClient, ConnectReturnCode) {
    connect_with(
        emulator,
        cert,
        registration_id,
        &dps_username(SCOPE, registration_id),
    )
    .await
}

async fn hub_client(
    emulator: &Emulator,
    cert: &GeneratedCert,
    device_id: &str,
) -> (RawClient, ConnectReturnCode) {
    connect_with(
        emulator,
        cert,
        device_id,
        &hub_username("localhost", device_id),
    )
    .await
}

async fn send_one(client: &mut RawClient, device_id: &str) {
    let mut publish = Publish::new(
        format!("devices/{device_id}/messages/events/"),
        QoS::AtLeastOnce,
        b"x509".to_vec(),
    );
    publish.pkid = 5;
    client.send(Packet::Publish(publish)).await;
    let ack = client
        .recv(std::time::Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(ack, Packet::PubAck(PubAck::new(5)));
}

#[tokio::test]
async fn individual_enrollment_matches_the_device_certificate_and_hub_knows_its_thumbprint() {
    let device = certs::self_signed_device("x509-dev-1", DAYS).unwrap();
    let impostor = certs::self_signed_device("x509-dev-1", DAYS).unwrap();
    let fixture = dps_fixture(
        json!([]),
        json!([{ "registrationId": "x509-dev-1", "attestation": { "type": "x509",
            "x509": { "clientCertificates": { "primary": { "certificate": device.cert_pem } } } } }]),
        json!([]),
    );
    let emulator = emulator_with(&fixture).await;

    let (mut client, code) = dps_client(&emulator, &device, "x509-dev-1").await;
    assert_eq!(code, ConnectReturnCode::Success);
    let result = client.register("x509-dev-1").await;
    assert_eq!(result["status"], "assigned", "{result}");
    let state = &result["registrationState"];
    assert_eq!(state["deviceId"], "x509-dev-1");
    let (sha1, _) = device.thumbprints();
    assert_eq!(
        state["x509"]["certificateInfo"]["sha1Thumbprint"],
        sha1.as_str()
    );

    let hub_device = emulator.default_hub().device("x509-dev-1").unwrap();
    assert_eq!(
        hub_device.to_json(false)["authentication"]["type"],
        "selfSigned"
    );
    let (mut hub, code) = hub_client(&emulator, &device, "x509-dev-1").await;
    assert_eq!(code, ConnectReturnCode::Success);
    send_one(&mut hub, "x509-dev-1").await;

    // Same CN, different key pair: refused at DPS and at the hub.
    let (_, code) = dps_client(&emulator, &impostor, "x509-dev-1").await;
    assert_eq!(code, ConnectReturnCode::NotAuthorized);
    let (_, code) = hub_client(&emulator, &impostor, "x509-dev-1").await;
    assert_eq!(code, ConnectReturnCode::NotAuthorized);
}

#[tokio::test]
async fn subject_cn_must_equal_the_registration_id() {
    let device = certs::self_signed_device("x509-dev-2", DAYS).unwrap();
    let fixture = dps_fixture(
        json!([]),
        json!([{ "registrationId": "someone-else", "attestation": { "type": "x509",
            "x509": { "clientCertificates": { "primary": { "certificate": device.cert_pem } } } } }]),
        json!([]),
    );
    let emulator = emulator_with(&fixture).await;
    let (_, code) = dps_client(&emulator, &device, "someone-else").await;
    assert_eq!(code, ConnectReturnCode::NotAuthorized);
}

#[tokio::test]
async fn group_on_an_intermediate_needs_the_chain_up_to_a_verified_root() {
    // root (verified) → int1 → int2 (the group's signing certificate) → device
    let root = certs::root_ca("x509 Test Root", DAYS).unwrap();
    let int1 =
        certs::issue_intermediate(&root.to_ca().unwrap(), "x509 Intermediate 1", DAYS, 1).unwrap();
    let int2 =
        certs::issue_intermediate(&int1.to_ca().unwrap(), "x509 Intermediate 2", DAYS, 0).unwrap();
    let device = certs::issue_device(&int2.to_ca().unwrap(), "line-a-007", DAYS).unwrap();
    let fixture = dps_fixture(
        json!([{ "name": "root", "certificate": root.cert_pem, "isVerified": true }]),
        json!([]),
        json!([{ "enrollmentGroupId": "line-a", "attestation": { "type": "x509",
            "x509": { "signingCertificates": { "primary": { "certificate": int2.cert_pem } } } } }]),
    );
    let emulator = emulator_with(&fixture).await;

    // Leaf + int2 only: int1 is missing, so nothing reaches the verified root.
    let mut partial = RawClient::connect_with_certificate(
        &emulator,
        device.full_chain_der()[..2].to_vec(),
        device.private_key_der(),
    )
    .await;
    let code = partial
        .mqtt_connect("line-a-007", &dps_username(SCOPE, "line-a-007"), "")
        .await;
    assert_eq!(code, ConnectReturnCode::NotAuthorized);

    // Leaf + int2 + int1 (+ root): accepted.
    let (mut client, code) = dps_client(&emulator, &device, "line-a-007").await;
    assert_eq!(code, ConnectReturnCode::Success);
    let result = client.register("line-a-007").await;
    assert_eq!(result["status"], "assigned", "{result}");
    let x509 = &result["registrationState"]["x509"];
    assert_eq!(x509["enrollmentGroupId"], "line-a");
    assert_eq!(
        x509["signingCertificateInfo"]["subjectName"]
            .as_str()
            .map(|s| s.contains("Intermediate 2")),
        Some(true)
    );

    // As Azure does, the hub knows it as selfSigned by the leaf's SHA-1 and SHA-256.
    let hub_device = emulator.default_hub().device("line-a-007").unwrap();
    let authentication = &hub_device.to_json(false)["authentication"];
    let (sha1, sha256) = device.thumbprints();
    assert_eq!(authentication["type"], "selfSigned");
    assert_eq!(
        authentication["x509Thumbprint"],
        json!({ "primaryThumbprint": sha1, "secondaryThumbprint": sha256 })
    );
    let (mut hub, code) = hub_client(&emulator, &device, "line-a-007").await;
    assert_eq!(code, ConnectReturnCode::Success);
    send_one(&mut hub, "line-a-007").await;
}

#[tokio::test]
async fn re_registering_a_group_device_with_a_new_leaf_moves_the_hub_to_it() {
    let root = certs::root_ca("x509 Renewal Root", DAYS).unwrap();
    let root_ca = root.to_ca().unwrap();
    let old_leaf = certs::issue_device(&root_ca, "renew-001", DAYS).unwrap();
    let new_leaf = certs::issue_device(&root_ca, "renew-001", DAYS).unwrap();
    let fixture = dps_fixture(
        json!([{ "name": "root", "certificate": root.cert_pem, "isVerified": true }]),
        json!([]),
        json!([{ "enrollmentGroupId": "renew", "attestation": { "type": "x509",
            "x509": { "caReferences": { "primary": "root" } } } }]),
    );
    let emulator = emulator_with(&fixture).await;
    let thumbprints = || {
        let device = emulator.default_hub().device("renew-001").unwrap();
        device.to_json(false)["authentication"]["x509Thumbprint"].clone()
    };

    for leaf in [&old_leaf, &new_leaf] {
        let (mut client, code) = dps_client(&emulator, leaf, "renew-001").await;
        assert_eq!(code, ConnectReturnCode::Success);
        let result = client.register("renew-001").await;
        assert_eq!(result["status"], "assigned", "{result}");
        let (sha1, sha256) = leaf.thumbprints();
        assert_eq!(
            thumbprints(),
            json!({ "primaryThumbprint": sha1, "secondaryThumbprint": sha256 })
        );
        let (mut hub, code) = hub_client(&emulator, leaf, "renew-001").await;
        assert_eq!(code, ConnectReturnCode::Success);
        send_one(&mut hub, "renew-001").await;
    }

    // The registry now names only the new leaf: the old one, though the same CA signed it,
    // no longer opens the hub.
    let (_, code) = hub_client(&emulator, &old_leaf, "renew-001").await;
    assert_eq!(code, ConnectReturnCode::NotAuthorized);
}

#[tokio::test]
async fn a_rogue_ca_with_the_same_names_is_refused() {
    let root = certs::root_ca("x509 Test Root", DAYS).unwrap();
    let int =
        certs::issue_intermediate(&root.to_ca().unwrap(), "x509 Intermediate", DAYS, 0).unwrap();
    let rogue_root = certs::root_ca("x509 Test Root", DAYS).unwrap();
    let rogue_int =
        certs::issue_intermediate(&rogue_root.to_ca().unwrap(), "x509 Intermediate", DAYS, 0)
            .unwrap();
    let rogue_device =
        certs::issue_device(&rogue_int.to_ca().unwrap(), "line-b-001", DAYS).unwrap();
    let fixture = dps_fixture(
        json!([{ "name": "root", "certificate": root.cert_pem, "isVerified": true }]),
        json!([]),
        json!([{ "enrollmentGroupId": "line-b", "attestation": { "type": "x509",
            "x509": { "signingCertificates": { "primary": { "certificate": int.cert_pem } } } } }]),
    );
    let emulator = emulator_with(&fixture).await;
    let (_, code) = dps_client(&emulator, &rogue_device, "line-b-001").await;
    assert_eq!(code, ConnectReturnCode::NotAuthorized);
    assert!(emulator.dps().registration("line-b-001").is_none());
}

#[tokio::test]
async fn ca_references_work_only_after_proof_of_possession() {
    let root = certs::root_ca("x509 PoP Root", DAYS).unwrap();
    let root_ca = root.to_ca().unwrap();
    let device = certs::issue_device(&root_ca, "pop-device-1", DAYS).unwrap();
    let fixture = dps_fixture(
        json!([{ "name": "pop-root", "certificate": root.cert_pem }]),
        json!([]),
        json!([{ "enrollmentGroupId": "pop-group", "attestation": { "type": "x509",
            "x509": { "caReferences": { "primary": "pop-root" } } } }]),
    );
    let emulator = emulator_with(&fixture).await;
    let store = emulator.dps().certificates();

    // Uploaded but unverified: authenticates nobody.
    let (_, code) = dps_client(&emulator, &device, "pop-device-1").await;
    assert_eq!(code, ConnectReturnCode::NotAuthorized);

    // A verification certificate for the wrong code, or signed by another key, is refused.
    let code = store
        .generate_verification_code("pop-root")
        .wait_stored()
        .unwrap();
    let wrong_code = certs::verification_certificate(&root_ca, "0123456789ABCDEF").unwrap();
    assert!(
        store
            .verify("pop-root", &wrong_code.cert_pem)
            .wait_stored()
            .is_err()
    );
    let other = certs::root_ca("Someone Else", DAYS).unwrap();
    let wrong_key = certs::verification_certificate(&other.to_ca().unwrap(), &code).unwrap();
    assert!(
        store
            .verify("pop-root", &wrong_key.cert_pem)
            .wait_stored()
            .is_err()
    );
    assert!(!store.get("pop-root").unwrap().is_verified);

    let proof = certs::verification_certificate(&root_ca, &code).unwrap();
    assert!(
        store
            .verify("pop-root", &proof.cert_pem)
            .wait_stored()
            .unwrap()
            .is_verified
    );
    let (mut client, code) = dps_client(&emulator, &device, "pop-device-1").await;
    assert_eq!(code, ConnectReturnCode::Success);
    let result = client.register("pop-device-1").await;
    assert_eq!(result["status"], "assigned", "{result}");
}

#[tokio::test]
async fn disabled_x509_group_reports_disabled() {
    let root = certs::root_ca("x509 Disabled Root", DAYS).unwrap();
    let device = certs::issue_device(&root.to_ca().unwrap(), "off-device-1", DAYS).unwrap();
    let fixture = dps_fixture(
        json!([{ "name": "root", "certificate": root.cert_pem, "isVerified": true }]),
        json!([]),
        json!([{ "enrollmentGroupId": "off-group", "provisioningStatus": "disabled", "attestation": { "type": "x509",
            "x509": { "caReferences": { "primary": "root" } } } }]),
    );
    let emulator = emulator_with(&fixture).await;
    let (mut client, code) = dps_client(&emulator, &device, "off-device-1").await;
    assert_eq!(code, ConnectReturnCode::Success);
    let result = client.register("off-device-1").await;
    assert_eq!(result["status"], "disabled", "{result}");
    assert!(emulator.default_hub().device("off-device-1").is_none());
}

#[tokio::test]
async fn hub_ca_devices_need_a_verified_hub_ca_and_their_own_cn() {
    let root = certs::root_ca("x509 Hub Root", DAYS).unwrap();
    let root_ca = root.to_ca().unwrap();
    let good = certs::issue_device(&root_ca, "ca-device-1", DAYS).unwrap();
    let other_cn = certs::issue_device(&root_ca, "ca-device-2", DAYS).unwrap();
    let emulator = Emulator::builder().start().await.unwrap();
    let hub = emulator.default_hub();
    hub.provision_device_with(
        "ca-device-1",
        iotemu::DeviceAuthentication::CertificateAuthority {
            provisioning_anchors: vec![],
        },
        None,
    )
    .wait_stored()
    .expect("provision");
    hub.certificates()
        .upload("hub-root", &root.cert_pem, false)
        .wait_stored()
        .unwrap();
    let (_, code) = hub_client(&emulator, &good, "ca-device-1").await;
    assert_eq!(
        code,
        ConnectReturnCode::NotAuthorized,
        "CA not verified yet"
    );

    hub.certificates()
        .upload("hub-root", &root.cert_pem, true)
        .wait_stored()
        .unwrap();
    let (mut client, code) = hub_client(&emulator, &good, "ca-device-1").await;
    assert_eq!(code, ConnectReturnCode::Success);
    send_one(&mut client, "ca-device-1").await;
    let (_, code) = hub_client(&emulator, &other_cn, "ca-device-1").await;
    assert_eq!(
        code,
        ConnectReturnCode::NotAuthorized,
        "CN must be the device id"
    );
}

#[tokio::test]
async fn invalid_x509_fixtures_name_the_path() {
    let fixture = dps_fixture(
        json!([]),
        json!([{ "registrationId": "bad", "attestation": { "type": "x509",
            "x509": { "clientCertificates": { "primary": { "certificate": "not a certificate" } } } } }]),
        json!([]),
    );
    let err = Emulator::builder()
        .fixture_json("bad.json", &fixture)
        .start()
        .await
        .err()
        .expect("refused");
    assert!(
        err.to_string()
            .contains("enrollments[0].attestation.x509.clientCertificates.primary.certificate"),
        "{err}"
    );
    let fixture = dps_fixture(
        json!([]),
        json!([]),
        json!([{ "enrollmentGroupId": "g", "attestation": { "type": "x509", "x509": { "caReferences": { "primary": "missing" } } } }]),
    );
    let err = Emulator::builder()
        .fixture_json("bad.json", &fixture)
        .start()
        .await
        .err()
        .expect("refused");
    assert!(
        err.to_string()
            .contains("enrollmentGroups[0].attestation.x509.caReferences.primary"),
        "{err}"
    );
}

#[tokio::test]
async fn iotemu_device_registers_and_sends_with_a_ca_signed_certificate() {
    use iotemu_device::{DeviceClient, Message, ProvisioningClient, Trust, X509Identity};
    let root = certs::root_ca("x509 Client Root", DAYS).unwrap();
    let int =
        certs::issue_intermediate(&root.to_ca().unwrap(), "x509 Client Intermediate", DAYS, 0)
            .unwrap();
    let device = certs::issue_device(&int.to_ca().unwrap(), "client-x509-1", DAYS).unwrap();
    let fixture = dps_fixture(
        json!([{ "name": "root", "certificate": root.cert_pem, "isVerified": true }]),
        json!([]),
        json!([{ "enrollmentGroupId": "client-group", "attestation": { "type": "x509",
            "x509": { "signingCertificates": { "primary": { "certificate": int.cert_pem } } } } }]),
    );
    let emulator = emulator_with(&fixture).await;
    let identity = X509Identity::from_pem(&device.full_chain_pem, &device.key_pem).unwrap();
    let trust = Trust::CaPem(emulator.ca_pem().to_owned());
    let registration = ProvisioningClient::builder("localhost", SCOPE, "client-x509-1")
        .x509(identity.clone())
        .trust(trust.clone())
        .port(emulator.mqtt_port())
        .build()
        .unwrap()
        .register()
        .await
        .expect("registers with its certificate");
    assert_eq!(
        registration.registration_state.device_id.as_deref(),
        Some("client-x509-1")
    );
    let client = DeviceClient::from_registration_x509(&registration, identity)
        .trust(trust)
        .port(emulator.mqtt_port())
        .connect()
        .await
        .expect("hub accepts the certificate");
    client
        .send_telemetry(Message::new("hello").message_id("x-1"))
        .await
        .unwrap();
    let stored = emulator
        .default_hub()
        .telemetry()
        .messages(Some("client-x509-1"));
    assert_eq!(stored[0].message_id(), Some("x-1"));
}
