//! `iotemu fixtures export` end to end: one emulator serves the DPS service API over HTTPS, the
//! built binary exports it (paging past 100 enrollments), a second emulator loads the file and
//! holds the same enrollments with the same keys. Also: loading one fixture in two instances
//! gives the same derived keys, device ids and hub assignments.

mod support;

use iotemu::WaitStored;
use std::process::Output;
use std::time::SystemTime;

use iotemu::Emulator;
use iotemu::internals::auth::Credential;
use iotemu::internals::auth::build_token;
use iotemu::internals::fixtures_export::{self, ServiceConnection};
use iotemu::{DeviceRegistrationState, EnrollmentGroup, IndividualEnrollment};
use serde_json::{Value, json};

use support::Scratch;

const ID_SCOPE: &str = "0ne0000EXPT";
const DPS_POLICY: &str = "provisioningserviceowner";
const DPS_KEY: &str = "9v222dNTjDaRlypsKaNmfRb+fM+lb6iI4vJsVu9VHBA=";
const GROUP_KEY: &str =
    "/VX4hnlv5HUMoLa5FBff/tGKwZFUM0XlQMp/v7oWXGolrvmEuIrRnsx6k9Gi3drdCbAyfmt+aq8zsQJ6lg3D3g==";
const EXPLICIT_KEY: &str =
    "sbDDeEzRuEuGKag+kQKV+T1QGakRtHpsERLP0yPjwR93TrpEgEh/Y07CXstfha6dhIPWvdD1nRxK5T0KGKA+nQ==";

/// A TPM's endorsement and storage root keys (base64 `TPM2B_PUBLIC`, RSA-2048).
const TPM_EK: &str = "AToAAQALAAMAsgAgg3GXZ0SEs/gakMyNRqXXJP1S124GUgtk8qHaGzMUaaoABgCAAEMAEAgAAAAAAAEAxsj2gUScTk1UjuioeTlfGYZrrimExB+bScH75adUMRIi2UOMxG1kw4y+9RW/IVoMl4e620VxZad0ARX2gUqVjYO7KPVt3dyKhZS3dkcvfBisBhP1XH9B33VqHG9SHnbnQXdBUaCgKAfxome8UmBKfe+naTsE5fkvjb/do3/dD6l4sGBwFCnKRdln4XpM03zLpoHFao8zOwt8l/uP3qUIxmCYv9A7m69Ms+5/pCkTu/rK4mRDsfhZ0QLfbzVI6zQFOKF/rwsfBtFeWlWtcuJMKlXdD8TXWElTzgh7JS4qhFzreL0c1mI0GCj+Aws0usZh7dLIVPnlgZcBhgy1SSDQMQ==";
const TPM_SRK: &str = "ARoAAQALAAMEcgAAAAYAgABDABAIAAAAAAABAL1P5Zs0P8dEx7/LIoBuSsr/XnnZv8BUcbpxS8DQj+SjHwxTqI5KX1lN7KYohU0zG8AIefjXf0LiFVvZ99W6IPnowPRepktpXsQJ6AJpZNbQOAcpK4cyjja48WNV/OOQLd2VStDEvFhAd4dA2qPbjDDr6e76KMEjDefJmJdoTJ7lC8GwL28c6gQmM6m37dkK6KpIoTU2kTsiSwxPkPAtWc6bENa+LqIQbSebAEzz2PH/EXm44QasW9LLx3JoZR4CY3ZKz5NCPDacYTZ8n+bz4LY5p0j2telZY60wChEbBhbn/+KDbnhTKJHQNKEJzDUF+iC8MR/EyLRZ3JnYMeXOyvs=";

/// 130 enrollments (more than one page of 100) in three shapes, four groups, two hubs.
fn source_fixture() -> String {
    let enrollments: Vec<Value> = (0..130)
        .map(|i| {
            let id = format!("device-{i:03}");
            match i % 3 {
                0 => json!({ "registrationId": id, "deviceId": format!("dev-{i}"),
                    "attestation": { "type": "symmetricKey",
                        "symmetricKey": { "primaryKey": EXPLICIT_KEY, "secondaryKey": GROUP_KEY } } }),
                1 => json!({ "registrationId": id, "attestation": { "type": "symmetricKey" },
                    "provisioningStatus": "disabled" }),
                _ => json!({ "registrationId": id, "attestation": { "type": "symmetricKey" },
                    "allocationPolicy": "static", "iotHubs": ["hub-b.example"],
                    "initialTwin": { "tags": { "n": i }, "properties": { "desired": { "interval": i } } },
                    "reprovisionPolicy": { "updateHubAssignment": false, "migrateDeviceData": true },
                    "capabilities": { "iotEdge": false } }),
            }
        })
        .chain([json!({ "registrationId": "tpm-device", "attestation": { "type": "tpm",
            "tpm": { "endorsementKey": TPM_EK, "storageRootKey": TPM_SRK } } })])
        .collect();
    json!({
        "dps": { "idScope": ID_SCOPE, "hostName": "localhost",
            "sharedAccessPolicies": [{ "keyName": DPS_POLICY, "primaryKey": DPS_KEY,
                "rights": "EnrollmentRead, EnrollmentWrite, RegistrationStatusRead, RegistrationStatusWrite" }] },
        "hubs": [ { "hostName": "localhost" }, { "hostName": "hub-b.example" } ],
        "enrollments": enrollments,
        "enrollmentGroups": [
            { "enrollmentGroupId": "group-explicit", "attestation": { "type": "symmetricKey",
                "symmetricKey": { "primaryKey": GROUP_KEY, "secondaryKey": EXPLICIT_KEY } } },
            { "enrollmentGroupId": "group-derived", "attestation": { "type": "symmetricKey" },
                "iotHubs": ["localhost", "hub-b.example"] },
            { "enrollmentGroupId": "group-static", "attestation": { "type": "symmetricKey" },
                "allocationPolicy": "static", "iotHubHostName": "hub-b.example" },
            { "enrollmentGroupId": "group-off", "attestation": { "type": "symmetricKey" },
                "provisioningStatus": "disabled" }
        ]
    })
    .to_string()
}

/// Enrollments without what differs between instances by design: ETags and timestamps.
fn comparable_enrollments(emulator: &Emulator) -> Vec<IndividualEnrollment> {
    emulator
        .dps()
        .enrollments()
        .into_iter()
        .map(|mut e| {
            e.etag = None;
            e.created_date_time_utc = None;
            e.last_updated_date_time_utc = None;
            e.registration_state = None;
            e
        })
        .collect()
}

fn comparable_groups(emulator: &Emulator) -> Vec<EnrollmentGroup> {
    emulator
        .dps()
        .enrollment_groups()
        .into_iter()
        .map(|mut g| {
            g.etag = None;
            g.created_date_time_utc = None;
            g.last_updated_date_time_utc = None;
            g
        })
        .collect()
}

/// The DPS service connection string with the HTTPS port the emulator picked.
fn connection_string(emulator: &Emulator) -> String {
    format!(
        "HostName=localhost:{};SharedAccessKeyName={DPS_POLICY};SharedAccessKey={DPS_KEY}",
        emulator.https_port().expect("HTTPS is served")
    )
}

async fn run_export(args: Vec<String>) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_iotemu"))
        .args(["fixtures", "export"])
        .args(args)
        .env_remove("IOTEMU_EXPORT_CONNECTION_STRING")
        .output()
        .await
        .expect("iotemu runs")
}

#[tokio::test]
async fn an_exported_fixture_loads_to_the_same_enrollments_and_keys() {
    let source = Emulator::builder()
        .fixture_json("source", &source_fixture())
        .start()
        .await
        .expect("source starts");
    // Created at run time: its keys are random, so only the export can carry them over.
    let runtime: IndividualEnrollment = serde_json::from_value(json!({
        "registrationId": "added-at-run-time", "attestation": { "type": "symmetricKey" } }))
    .unwrap();
    source.dps().create_or_update_enrollment(runtime).unwrap();

    let scratch = Scratch::new("roundtrip");
    std::fs::write(scratch.path("ca.pem"), source.ca_pem()).unwrap();
    let out = scratch.path("exported.json");
    let output = run_export(vec![
        "--connection-string".into(),
        connection_string(&source),
        "--ca-file".into(),
        scratch.path("ca.pem").display().to_string(),
        "--id-scope".into(),
        ID_SCOPE.into(),
        "--out".into(),
        out.display().to_string(),
    ])
    .await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "export failed: {stderr}");
    assert!(
        stderr.contains("exported 132 enrollment(s) and 4 enrollment group(s)"),
        "{stderr}"
    );
    assert!(!stderr.contains("warning"), "{stderr}");

    let exported: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert!(
        exported["enrollments"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e.get("etag").is_none() && e.get("createdDateTimeUtc").is_none()),
        "read-only fields are dropped"
    );
    let copy = Emulator::builder()
        .fixture_file(&out)
        .start()
        .await
        .expect("the exported fixture loads");
    assert_eq!(copy.id_scope(), ID_SCOPE);
    let hubs: Vec<&str> = copy.hubs().all().iter().map(|h| h.host_name()).collect();
    assert_eq!(hubs, ["hub-b.example", "localhost"]);
    let original = comparable_enrollments(&source);
    assert_eq!(original.len(), 132);
    assert_eq!(comparable_enrollments(&copy), original);
    let tpm = exported["enrollments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["registrationId"] == "tpm-device")
        .unwrap();
    assert_eq!(
        tpm["attestation"],
        json!({ "type": "tpm", "tpm": { "endorsementKey": TPM_EK, "storageRootKey": TPM_SRK } }),
        "TPM keys are exported as given"
    );
    assert_eq!(comparable_groups(&copy), comparable_groups(&source));
}

#[tokio::test]
async fn export_failures_exit_1_with_the_reason() {
    let source = Emulator::builder().start().await.unwrap();
    let scratch = Scratch::new("failures");
    std::fs::write(scratch.path("ca.pem"), source.ca_pem()).unwrap();
    let ca = scratch.path("ca.pem").display().to_string();
    let wrong_key = connection_string(&source).replace(DPS_KEY, EXPLICIT_KEY);
    for (args, expected) in [
        (
            vec!["--connection-string", "HostName=localhost"],
            "SharedAccessKeyName is missing",
        ),
        (
            vec!["--connection-string", &wrong_key, "--ca-file", &ca],
            "answered 401",
        ),
        (
            vec!["--connection-string", &connection_string(&source)],
            "TLS handshake failed",
        ),
        (
            vec![
                "--connection-string",
                &connection_string(&source),
                "--ca-file",
                "/nonexistent/ca.pem",
            ],
            "cannot read /nonexistent/ca.pem",
        ),
    ] {
        let output = run_export(args.iter().map(|a| a.to_string()).collect()).await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(output.stdout.is_empty(), "nothing written on failure");
    }
}

#[tokio::test]
async fn the_library_export_pages_through_the_service_api() {
    let source = Emulator::builder()
        .fixture_json("source", &source_fixture())
        .start()
        .await
        .unwrap();
    let connection = ServiceConnection::parse(&connection_string(&source)).unwrap();
    let roots = fixtures_export::trust(Some(source.ca_pem())).unwrap();
    let export = fixtures_export::export(&connection, roots, None)
        .await
        .unwrap();
    assert_eq!(export.fixture.enrollments.len(), 131);
    assert_eq!(export.fixture.enrollment_groups.len(), 4);
    assert!(export.warnings.is_empty(), "{:?}", export.warnings);
    // Without --id-scope the quickstart's is used; the DPS host is the connection string's.
    let dps = export.fixture.dps.as_ref().unwrap();
    assert_eq!(
        (dps.id_scope.as_str(), dps.host_name.as_str()),
        ("0ne00000A0A", "localhost")
    );
    let loaded = export.check().expect("loads as is");
    assert_eq!(loaded.enrollment_count(), 131);
}

/// Registers through the domain exactly as a transport would; the final state.
fn register(emulator: &Emulator, registration_id: &str, key: &str) -> DeviceRegistrationState {
    use base64::Engine as _;
    let key = base64::engine::general_purpose::STANDARD
        .decode(key)
        .unwrap();
    let expiry = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let token = build_token(
        &format!("{ID_SCOPE}/registrations/{registration_id}"),
        &key,
        None,
        expiry,
    );
    let dps = emulator.dps();
    let who = dps
        .authenticate_registration(
            ID_SCOPE,
            registration_id,
            Credential::Sas(&token),
            SystemTime::now(),
        )
        .expect("authenticates");
    let started = dps.register(&who, b"{}").unwrap();
    dps.operation_status(&who, &started.body.operation_id)
        .wait_stored()
        .unwrap()
        .body
        .registration_state
        .unwrap()
}

#[tokio::test]
async fn one_fixture_gives_the_same_keys_ids_and_hubs_in_every_instance() {
    // Keys left out everywhere, hashed allocation over three hubs.
    let fixture = json!({
        "dps": { "idScope": ID_SCOPE, "hostName": "localhost" },
        "hubs": [ { "hostName": "localhost" }, { "hostName": "hub-b.example", "allocationWeight": 3 },
                  { "hostName": "hub-c.example", "allocationWeight": 2 } ],
        "enrollments": (0..12).map(|i| json!({ "registrationId": format!("solo-{i}"),
            "attestation": { "type": "symmetricKey" } })).collect::<Vec<_>>(),
        "enrollmentGroups": [ { "enrollmentGroupId": "fleet", "attestation": { "type": "symmetricKey" } } ]
    })
    .to_string();
    let first = Emulator::builder()
        .fixture_json("f", &fixture)
        .retry_after(0)
        .start()
        .await
        .unwrap();
    let second = Emulator::builder()
        .fixture_json("f", &fixture)
        .retry_after(0)
        .start()
        .await
        .unwrap();
    assert_eq!(
        comparable_enrollments(&first),
        comparable_enrollments(&second)
    );
    assert_eq!(comparable_groups(&first), comparable_groups(&second));

    let first_outcome = register_everyone(&first);
    assert_eq!(
        register_everyone(&second),
        first_outcome,
        "the same devices on the same hubs"
    );
    let hubs: std::collections::BTreeSet<_> = first_outcome.iter().map(|(_, _, hub)| hub).collect();
    assert!(
        hubs.len() > 1,
        "the devices spread over several hubs, so equal assignments mean something: {hubs:?}"
    );
}

/// Registers `solo-0…11` with their enrollment keys and `fleet-device-0…11` with keys derived
/// from the group key; each registration's id, device id and hub.
fn register_everyone(emulator: &Emulator) -> Vec<(String, String, String)> {
    let enrollments = emulator.dps().enrollments();
    let primary_key = |attestation: &iotemu::AttestationMechanism| {
        attestation
            .symmetric_key
            .as_ref()
            .and_then(|k| k.primary_key.clone())
            .expect("keys are filled in")
    };
    let group_key = iotemu::SymmetricKey::from_base64(&primary_key(
        &emulator.dps().enrollment_groups()[0].attestation,
    ))
    .unwrap();
    let solo = enrollments
        .iter()
        .map(|e| (e.registration_id.clone(), primary_key(&e.attestation)));
    let fleet = (0..12).map(|i| {
        let id = format!("fleet-device-{i}");
        let key = group_key.derive_device_key(&id).to_base64();
        (id, key)
    });
    solo.chain(fleet)
        .map(|(id, key)| {
            let state = register(emulator, &id, &key);
            let device = state.device_id.expect("assigned a device id");
            let hub = state.assigned_hub.expect("assigned a hub");
            (id, device, hub)
        })
        .collect()
}
