//! Acknowledged means stored (issue 12 item 1): with a store that fails on demand — refusing a
//! write when it is submitted, or accepting it and then failing to make it durable, as after
//! a failed fsync — no reply says success for a write that was not stored, and memory is
//! unchanged afterwards (a GET returns the old value). One test per kind of state.

use std::sync::{Arc, Mutex};

use iotemu::Emulator;
use iotemu::WaitStored;
use iotemu::certs;
use iotemu::{Commit, Op, Store, StoreError, StoreSnapshot};
use iotemu_device::{ProvisioningClient, Trust};
use iotemu_e2e::*;
use serde_json::{Value, json};

const SCOPE: &str = "0ne00000A0A";

/// How the test store answers the next writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Store,
    /// `submit` refuses (as for a value nested too deep, or a store that already failed).
    Refuse,
    /// `submit` accepts, the commit then fails (as after a failed fsync).
    FailCommit,
}

const FAILURES: [Mode; 2] = [Mode::Refuse, Mode::FailCommit];

/// A durable-looking store that keeps nothing and fails when told to.
struct FailingStore {
    mode: Mutex<Mode>,
    /// Every apply it accepted and made "durable".
    stored: Mutex<Vec<Vec<Op>>>,
}

impl FailingStore {
    fn new() -> Arc<FailingStore> {
        Arc::new(FailingStore {
            mode: Mutex::new(Mode::Store),
            stored: Mutex::new(Vec::new()),
        })
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }
}

impl Store for FailingStore {
    fn submit(&self, ops: &[Op]) -> Result<Commit, StoreError> {
        match *self.mode.lock().unwrap() {
            Mode::Store => {
                self.stored.lock().unwrap().push(ops.to_vec());
                Ok(Commit::durable_now())
            }
            Mode::Refuse => Err(StoreError::Rejected("refused by the test store".into())),
            Mode::FailCommit => Ok(Commit::failed(StoreError::Failed(
                "fsync failed (test store)".into(),
            ))),
        }
    }

    fn load(&self) -> Result<StoreSnapshot, StoreError> {
        Ok(StoreSnapshot::default())
    }

    fn is_durable(&self) -> bool {
        true
    }
}

async fn start(store: &Arc<FailingStore>) -> Emulator {
    Emulator::builder()
        .quickstart_fixture()
        .retry_after(0)
        .store(store.clone())
        .start()
        .await
        .expect("emulator starts")
}

/// The 500 a write the store did not keep is answered with.
fn assert_dps_storage_error(response: &HttpsResponse, what: &str) {
    assert_eq!(response.status, 500, "{what}: {:?}", response.json());
    assert_eq!(response.json()["errorCode"], 500000, "{what}");
}

/// A bulk operation whose items were not stored: a 500 (the store failed after accepting
/// them), or a 200 that reports every item failed with 500000 (the store refused each one).
fn assert_bulk_not_stored(response: &HttpsResponse, items: usize, what: &str) {
    let body = response.json();
    if response.status == 500 {
        assert_eq!(body["errorCode"], 500000, "{what}");
        return;
    }
    assert_eq!(response.status, 200, "{what}: {body:?}");
    assert_eq!(body["isSuccessful"], false, "{what}");
    let errors = body["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), items, "{what}");
    assert!(errors.iter().all(|e| e["errorCode"] == 500000), "{what}");
}

#[tokio::test]
async fn enrollment_writes_that_are_not_stored_fail_and_change_nothing() {
    let store = FailingStore::new();
    let emulator = start(&store).await;
    let path = format!("/enrollments/{QUICKSTART_REGISTRATION_ID}");
    let before = dps_rest(&emulator, "GET", &path, Value::Null).await.json();
    let mut changed = before.clone();
    changed["provisioningStatus"] = json!("disabled");
    let fresh = json!({"registrationId": "fresh-1", "attestation": {"type": "symmetricKey"}});
    for mode in FAILURES {
        store.set(mode);
        let put = dps_rest(&emulator, "PUT", &path, changed.clone()).await;
        assert_dps_storage_error(&put, &format!("{mode:?} PUT"));
        let create = dps_rest(&emulator, "PUT", "/enrollments/fresh-1", fresh.clone()).await;
        assert_dps_storage_error(&create, &format!("{mode:?} create"));
        let delete = dps_rest(&emulator, "DELETE", &path, Value::Null).await;
        assert_dps_storage_error(&delete, &format!("{mode:?} DELETE"));
        let bulk = dps_rest(
            &emulator,
            "POST",
            "/enrollments",
            json!({"mode": "create", "enrollments": [fresh.clone()]}),
        )
        .await;
        assert_bulk_not_stored(&bulk, 1, &format!("{mode:?} bulk"));

        store.set(Mode::Store);
        let now = dps_rest(&emulator, "GET", &path, Value::Null).await;
        assert_eq!(now.json(), before, "{mode:?}: the enrollment is unchanged");
        let absent = dps_rest(&emulator, "GET", "/enrollments/fresh-1", Value::Null).await;
        assert_eq!(absent.status, 404, "{mode:?}: nothing was created");
    }
    // And once the store works again, so do writes.
    let put = dps_rest(&emulator, "PUT", &path, changed).await;
    assert_eq!(put.status, 200);
    assert_eq!(put.json()["provisioningStatus"], "disabled");
}

#[tokio::test]
async fn enrollment_group_writes_that_are_not_stored_fail_and_change_nothing() {
    let store = FailingStore::new();
    let emulator = start(&store).await;
    let path = "/enrollmentGroups/quickstart-group";
    let before = dps_rest(&emulator, "GET", path, Value::Null).await.json();
    let mut changed = before.clone();
    changed["provisioningStatus"] = json!("disabled");
    for mode in FAILURES {
        store.set(mode);
        let put = dps_rest(&emulator, "PUT", path, changed.clone()).await;
        assert_dps_storage_error(&put, &format!("{mode:?} PUT"));
        let delete = dps_rest(&emulator, "DELETE", path, Value::Null).await;
        assert_dps_storage_error(&delete, &format!("{mode:?} DELETE"));
        let bulk = dps_rest(
            &emulator,
            "POST",
            "/enrollmentGroups",
            json!({"mode": "delete", "enrollmentGroups": [before.clone()]}),
        )
        .await;
        assert_bulk_not_stored(&bulk, 1, &format!("{mode:?} bulk"));
        store.set(Mode::Store);
        let now = dps_rest(&emulator, "GET", path, Value::Null).await;
        assert_eq!(now.json(), before, "{mode:?}: the group is unchanged");
    }
    // The group still authenticates and provisions its devices.
    let member = "member-after-failures";
    let key = iotemu::SymmetricKey::from_base64(QUICKSTART_GROUP_KEY)
        .unwrap()
        .derive_device_key(member);
    let registered = register_over_https(&emulator, member, &key.to_base64()).await;
    assert_eq!(registered.1.json()["status"], "assigned");
}

/// Registers over HTTPS and polls once: (register reply, poll reply).
async fn register_over_https(
    emulator: &Emulator,
    registration_id: &str,
    key: &str,
) -> (HttpsResponse, HttpsResponse) {
    let token = dps_token(SCOPE, registration_id, key, seconds_from_now(600));
    let headers = [
        ("Authorization", token.as_str()),
        ("Content-Type", "application/json"),
    ];
    let base = format!("/{SCOPE}/registrations/{registration_id}");
    let body = format!(r#"{{"registrationId":"{registration_id}"}}"#);
    let started = https_request(
        emulator,
        None,
        "PUT",
        &format!("{base}/register?api-version=2019-03-31"),
        &headers,
        body.as_bytes(),
    )
    .await;
    let operation = started.json()["operationId"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let poll = poll_over_https(emulator, registration_id, key, &operation).await;
    (started, poll)
}

async fn poll_over_https(
    emulator: &Emulator,
    registration_id: &str,
    key: &str,
    operation: &str,
) -> HttpsResponse {
    let token = dps_token(SCOPE, registration_id, key, seconds_from_now(600));
    https_request(
        emulator,
        None,
        "GET",
        &format!(
            "/{SCOPE}/registrations/{registration_id}/operations/{operation}?api-version=2019-03-31"
        ),
        &[("Authorization", token.as_str())],
        b"",
    )
    .await
}

#[tokio::test]
async fn a_registration_is_assigned_only_once_the_device_and_the_record_are_stored() {
    let store = FailingStore::new();
    let emulator = start(&store).await;
    let hub = emulator.default_hub().clone();
    for mode in FAILURES {
        store.set(mode);
        let (started, poll) =
            register_over_https(&emulator, QUICKSTART_REGISTRATION_ID, QUICKSTART_KEY).await;
        assert_eq!(started.status, 202, "registering writes nothing yet");
        assert_dps_storage_error(&poll, &format!("{mode:?} poll"));
        assert_ne!(poll.json()["status"], "assigned");
        assert!(
            emulator
                .dps()
                .registration(QUICKSTART_REGISTRATION_ID)
                .is_none(),
            "{mode:?}: no registration record"
        );
        assert!(
            hub.device(QUICKSTART_DEVICE_ID).is_none(),
            "{mode:?}: no hub device"
        );

        // The same operation, polled again once the store works, is assigned.
        store.set(Mode::Store);
        let operation = started.json()["operationId"].as_str().unwrap().to_owned();
        let again = poll_over_https(
            &emulator,
            QUICKSTART_REGISTRATION_ID,
            QUICKSTART_KEY,
            &operation,
        )
        .await;
        assert_eq!(again.status, 200, "{:?}", again.json());
        assert_eq!(again.json()["status"], "assigned");
        assert!(hub.device(QUICKSTART_DEVICE_ID).is_some());
        // Start the next round from nothing.
        let deleted = dps_rest(
            &emulator,
            "DELETE",
            &format!("/registrations/{QUICKSTART_REGISTRATION_ID}"),
            Value::Null,
        )
        .await;
        assert_eq!(deleted.status, 204);
        hub.delete_device(QUICKSTART_DEVICE_ID, None)
            .wait_stored()
            .unwrap();

        // Over MQTT the client gets an error (or keeps retrying), never `assigned`.
        store.set(mode);
        let over_mqtt = tokio::time::timeout(
            std::time::Duration::from_secs(3),
            ProvisioningClient::builder("localhost", SCOPE, QUICKSTART_REGISTRATION_ID)
                .symmetric_key(QUICKSTART_KEY)
                .trust(Trust::CaPem(emulator.ca_pem().to_owned()))
                .port(emulator.mqtt_port())
                .build()
                .unwrap()
                .register(),
        )
        .await;
        assert!(!matches!(over_mqtt, Ok(Ok(_))), "{mode:?}: {over_mqtt:?}");
        assert!(hub.device(QUICKSTART_DEVICE_ID).is_none(), "{mode:?}");
        assert!(
            emulator
                .dps()
                .registration(QUICKSTART_REGISTRATION_ID)
                .is_none()
        );
        store.set(Mode::Store);
    }
}

#[tokio::test]
async fn deleting_a_registration_record_that_is_not_stored_fails_and_keeps_it() {
    let store = FailingStore::new();
    let emulator = start(&store).await;
    let (_, poll) =
        register_over_https(&emulator, QUICKSTART_REGISTRATION_ID, QUICKSTART_KEY).await;
    assert_eq!(poll.json()["status"], "assigned");
    let path = format!("/registrations/{QUICKSTART_REGISTRATION_ID}");
    let before = dps_rest(&emulator, "GET", &path, Value::Null).await.json();
    for mode in FAILURES {
        store.set(mode);
        let delete = dps_rest(&emulator, "DELETE", &path, Value::Null).await;
        assert_dps_storage_error(&delete, &format!("{mode:?} DELETE"));
        store.set(Mode::Store);
        let now = dps_rest(&emulator, "GET", &path, Value::Null).await;
        assert_eq!(now.json(), before, "{mode:?}");
    }
}

#[tokio::test]
async fn dps_ca_certificate_writes_that_are_not_stored_fail_and_change_nothing() {
    let store = FailingStore::new();
    let emulator = start(&store).await;
    let certificates = emulator.dps().certificates();
    let root = certs::root_ca("Failing Store Root", 30).unwrap();
    let other = certs::root_ca("Another Root", 30).unwrap();
    certificates
        .upload("root", &root.cert_pem, false)
        .wait_stored()
        .unwrap();
    let before = certificates.get("root").unwrap();
    for mode in FAILURES {
        store.set(mode);
        assert!(
            certificates
                .upload("root", &other.cert_pem, true)
                .wait_stored()
                .is_err()
        );
        assert!(
            certificates
                .upload("new", &other.cert_pem, true)
                .wait_stored()
                .is_err()
        );
        assert!(
            certificates
                .generate_verification_code("root")
                .wait_stored()
                .is_err()
        );
        assert!(certificates.delete("root").wait_stored().is_err());
        assert_eq!(certificates.get("root"), Some(before.clone()), "{mode:?}");
        assert_eq!(certificates.get("new"), None, "{mode:?}");
    }
    // Proof of possession: the verification itself is a write too.
    store.set(Mode::Store);
    let code = certificates
        .generate_verification_code("root")
        .wait_stored()
        .unwrap();
    let pending_code = certificates.get("root").unwrap();
    let proof = certs::verification_certificate(&root.to_ca().unwrap(), &code).unwrap();
    for mode in FAILURES {
        store.set(mode);
        assert!(
            certificates
                .verify("root", &proof.cert_pem)
                .wait_stored()
                .is_err()
        );
        assert_eq!(certificates.get("root"), Some(pending_code.clone()));
    }
    store.set(Mode::Store);
    assert!(
        certificates
            .verify("root", &proof.cert_pem)
            .wait_stored()
            .unwrap()
            .is_verified
    );
    assert!(!store.stored.lock().unwrap().is_empty());
}

/// The 500 (500001 ServerError) a hub write the store did not keep is answered with.
fn assert_hub_storage_error(response: &HttpsResponse, what: &str) {
    assert_eq!(response.status, 500, "{what}: {:?}", response.json());
    let message = response.json()["Message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        message.starts_with("ErrorCode:ServerError;"),
        "{what}: {message}"
    );
}

/// A hub with `dev-1` (SAS, quickstart key) and its module `mod-1`.
async fn start_hub(store: &Arc<FailingStore>) -> Emulator {
    let emulator = start(store).await;
    let created = hub_rest(
        &emulator,
        "PUT",
        "/devices/dev-1",
        &[],
        json!({"deviceId": "dev-1"}),
    )
    .await;
    assert_eq!(created.status, 200, "{:?}", created.json());
    let module = hub_rest(
        &emulator,
        "PUT",
        "/devices/dev-1/modules/mod-1",
        &[],
        json!({"deviceId": "dev-1", "moduleId": "mod-1"}),
    )
    .await;
    assert_eq!(module.status, 201, "{:?}", module.json());
    emulator
}

#[tokio::test]
async fn device_writes_that_are_not_stored_fail_and_change_nothing() {
    let store = FailingStore::new();
    let emulator = start_hub(&store).await;
    let before = hub_rest(&emulator, "GET", "/devices/dev-1", &[], Value::Null)
        .await
        .json();
    let mut disabled = before.clone();
    disabled["status"] = json!("disabled");
    for mode in FAILURES {
        store.set(mode);
        let create = hub_rest(
            &emulator,
            "PUT",
            "/devices/dev-2",
            &[],
            json!({"deviceId": "dev-2"}),
        )
        .await;
        assert_hub_storage_error(&create, &format!("{mode:?} create"));
        let update = hub_rest(
            &emulator,
            "PUT",
            "/devices/dev-1",
            &[("If-Match", "*")],
            disabled.clone(),
        )
        .await;
        assert_hub_storage_error(&update, &format!("{mode:?} update"));
        let delete = hub_rest(&emulator, "DELETE", "/devices/dev-1", &[], Value::Null).await;
        assert_hub_storage_error(&delete, &format!("{mode:?} delete"));

        store.set(Mode::Store);
        let now = hub_rest(&emulator, "GET", "/devices/dev-1", &[], Value::Null).await;
        assert_eq!(now.status, 200, "{mode:?}: the device is still there");
        assert_eq!(now.json(), before, "{mode:?}: the device is unchanged");
        let absent = hub_rest(&emulator, "GET", "/devices/dev-2", &[], Value::Null).await;
        assert_eq!(absent.status, 404, "{mode:?}: nothing was created");
        let module = hub_rest(
            &emulator,
            "GET",
            "/devices/dev-1/modules/mod-1",
            &[],
            Value::Null,
        )
        .await;
        assert_eq!(
            module.status, 200,
            "{mode:?}: the device's module is still there"
        );
    }
}

#[tokio::test]
async fn module_writes_that_are_not_stored_fail_and_change_nothing() {
    let store = FailingStore::new();
    let emulator = start_hub(&store).await;
    let path = "/devices/dev-1/modules/mod-1";
    let before = hub_rest(&emulator, "GET", path, &[], Value::Null)
        .await
        .json();
    let mut managed = before.clone();
    managed["managedBy"] = json!("someone");
    for mode in FAILURES {
        store.set(mode);
        let create = hub_rest(
            &emulator,
            "PUT",
            "/devices/dev-1/modules/mod-2",
            &[],
            json!({"deviceId": "dev-1", "moduleId": "mod-2"}),
        )
        .await;
        assert_hub_storage_error(&create, &format!("{mode:?} create"));
        let update = hub_rest(
            &emulator,
            "PUT",
            path,
            &[("If-Match", "*")],
            managed.clone(),
        )
        .await;
        assert_hub_storage_error(&update, &format!("{mode:?} update"));
        let delete = hub_rest(&emulator, "DELETE", path, &[], Value::Null).await;
        assert_hub_storage_error(&delete, &format!("{mode:?} delete"));
        store.set(Mode::Store);
        let now = hub_rest(&emulator, "GET", path, &[], Value::Null).await;
        assert_eq!(now.json(), before, "{mode:?}");
        let absent = hub_rest(
            &emulator,
            "GET",
            "/devices/dev-1/modules/mod-2",
            &[],
            Value::Null,
        )
        .await;
        assert_eq!(absent.status, 404, "{mode:?}");
    }
}

#[tokio::test]
async fn twin_writes_that_are_not_stored_fail_and_change_nothing() {
    let store = FailingStore::new();
    let emulator = start_hub(&store).await;
    for path in ["/twins/dev-1", "/twins/dev-1/modules/mod-1"] {
        let before = hub_rest(&emulator, "GET", path, &[], Value::Null)
            .await
            .json();
        let change = json!({"tags": {"site": "b"}, "properties": {"desired": {"rate": 7}}});
        for mode in FAILURES {
            store.set(mode);
            let patch = hub_rest(&emulator, "PATCH", path, &[], change.clone()).await;
            assert_hub_storage_error(&patch, &format!("{mode:?} PATCH {path}"));
            let put = hub_rest(&emulator, "PUT", path, &[], change.clone()).await;
            assert_hub_storage_error(&put, &format!("{mode:?} PUT {path}"));
            store.set(Mode::Store);
            let now = hub_rest(&emulator, "GET", path, &[], Value::Null)
                .await
                .json();
            assert_eq!(now["tags"], before["tags"], "{mode:?} {path}");
            assert_eq!(now["properties"], before["properties"], "{mode:?} {path}");
            assert_eq!(now["etag"], before["etag"], "{mode:?} {path}");
        }
    }
}

#[tokio::test]
async fn reported_properties_over_mqtt_that_are_not_stored_fail_and_change_nothing() {
    let store = FailingStore::new();
    let emulator = start(&store).await;
    let device = quickstart_device(&emulator, "twin-dev", None)
        .connect()
        .await
        .expect("device connects");
    let before = emulator.default_hub().device_twin("twin-dev").unwrap();
    for mode in FAILURES {
        store.set(mode);
        let reported = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            device.update_reported(json!({"firmware": "2.0"})),
        )
        .await
        .expect("an answer");
        assert!(reported.is_err(), "{mode:?}: {reported:?}");
        let now = emulator.default_hub().device_twin("twin-dev").unwrap();
        assert_eq!(now.reported, before.reported, "{mode:?}");
        assert_eq!(now.reported_version, before.reported_version, "{mode:?}");
    }
    store.set(Mode::Store);
    let version = device
        .update_reported(json!({"firmware": "2.0"}))
        .await
        .unwrap();
    assert!(version > before.reported_version);
}

#[tokio::test]
async fn hub_ca_certificate_writes_that_are_not_stored_fail_and_change_nothing() {
    let store = FailingStore::new();
    let emulator = start(&store).await;
    let certificates = emulator.default_hub().certificates();
    let root = certs::root_ca("Hub Failing Store Root", 30).unwrap();
    for mode in FAILURES {
        store.set(mode);
        assert!(
            certificates
                .upload("hub-root", &root.cert_pem, true)
                .wait_stored()
                .is_err()
        );
        assert_eq!(certificates.get("hub-root"), None, "{mode:?}");
    }
    store.set(Mode::Store);
    let uploaded = certificates
        .upload("hub-root", &root.cert_pem, true)
        .wait_stored()
        .unwrap();
    for mode in FAILURES {
        store.set(mode);
        assert!(certificates.delete("hub-root").wait_stored().is_err());
        assert_eq!(
            certificates.get("hub-root"),
            Some(uploaded.clone()),
            "{mode:?}"
        );
    }
}

async fn start_with_control(store: &Arc<FailingStore>) -> Emulator {
    let emulator = Emulator::builder()
        .quickstart_fixture()
        .control_port(0)
        .store(store.clone())
        .start()
        .await
        .expect("emulator starts");
    let key = iotemu::SymmetricKey::from_base64(QUICKSTART_KEY).unwrap();
    emulator
        .default_hub()
        .provision_device("c2d-dev", key.clone(), key, None);
    emulator
}

/// One request to the control port; the whole response as text.
async fn control(emulator: &Emulator, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(emulator.control_addr().unwrap())
        .await
        .unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut seen = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        tcp.read_to_end(&mut seen),
    )
    .await;
    String::from_utf8_lossy(&seen).into_owned()
}

async fn device_https(emulator: &Emulator, method: &str, path: &str) -> HttpsResponse {
    let sas = device_token(
        "localhost",
        "c2d-dev",
        QUICKSTART_KEY,
        seconds_from_now(600),
    );
    https_request(
        emulator,
        None,
        method,
        &format!("{path}?api-version=2021-04-12"),
        &[("Authorization", sas.as_str())],
        b"",
    )
    .await
}

#[tokio::test]
async fn c2d_sends_that_are_not_stored_fail_and_queue_nothing() {
    let store = FailingStore::new();
    let emulator = start_with_control(&store).await;
    let hub = emulator.default_hub();
    for mode in FAILURES {
        store.set(mode);
        // The control port's send, and the Rust handle's.
        let answer = control(
            &emulator,
            "POST /c2d?deviceId=c2d-dev&messageId=m-1 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 500"), "{mode:?}: {answer}");
        assert!(
            hub.send_c2d("c2d-dev", iotemu::C2dMessage::new("x"))
                .wait_stored()
                .is_err()
        );
        assert!(hub.c2d_pending("c2d-dev").is_empty(), "{mode:?}");
    }
    // Stored, then purged: a purge the store does not keep fails and keeps the queue.
    store.set(Mode::Store);
    let answer = control(
        &emulator,
        "POST /c2d?deviceId=c2d-dev&messageId=m-1 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    for mode in FAILURES {
        store.set(mode);
        let purge = hub_rest(
            &emulator,
            "DELETE",
            "/devices/c2d-dev/commands",
            &[],
            Value::Null,
        )
        .await;
        assert_hub_storage_error(&purge, &format!("{mode:?} purge"));
        assert_eq!(hub.c2d_pending("c2d-dev").len(), 1, "{mode:?}");
    }
}

#[tokio::test]
async fn c2d_settlements_over_https_that_are_not_stored_fail_and_keep_the_message() {
    let store = FailingStore::new();
    let emulator = start_with_control(&store).await;
    let hub = emulator.default_hub();
    hub.send_c2d("c2d-dev", iotemu::C2dMessage::new("x"))
        .wait_stored()
        .unwrap();
    let received = device_https(&emulator, "GET", "/devices/c2d-dev/messages/devicebound").await;
    assert_eq!(received.status, 200);
    let token = received
        .header("etag")
        .unwrap()
        .trim_matches('"')
        .to_owned();
    let path = format!("/devices/c2d-dev/messages/devicebound/{token}");
    for mode in FAILURES {
        store.set(mode);
        let complete = device_https(&emulator, "DELETE", &path).await;
        assert_hub_storage_error(&complete, &format!("{mode:?} complete"));
        let abandon = device_https(&emulator, "POST", &format!("{path}/abandon")).await;
        assert_hub_storage_error(&abandon, &format!("{mode:?} abandon"));
        let pending = hub.c2d_pending("c2d-dev");
        assert_eq!(pending.len(), 1, "{mode:?}");
        assert!(
            pending[0].lock.is_some(),
            "{mode:?}: still locked by the receive"
        );
    }
    store.set(Mode::Store);
    let complete = device_https(&emulator, "DELETE", &path).await;
    assert_eq!(complete.status, 204);
    assert!(hub.c2d_pending("c2d-dev").is_empty());
}

#[tokio::test]
async fn an_mqtt_c2d_completion_that_is_not_stored_leaves_the_message_queued() {
    let store = FailingStore::new();
    let emulator = start_with_control(&store).await;
    let hub = emulator.default_hub();
    let device = iotemu_device::DeviceClient::builder("localhost", "c2d-dev")
        .symmetric_key(QUICKSTART_KEY)
        .trust(Trust::CaPem(emulator.ca_pem().to_owned()))
        .port(emulator.mqtt_port())
        .connect()
        .await
        .expect("device connects");
    let mut messages = device.c2d_messages().await.unwrap();
    hub.send_c2d("c2d-dev", iotemu::C2dMessage::new("x"))
        .wait_stored()
        .unwrap();
    let message = tokio::time::timeout(std::time::Duration::from_secs(5), messages.next())
        .await
        .expect("delivered")
        .unwrap();
    store.set(Mode::FailCommit);
    message.complete().await.unwrap();
    // The PUBACK is processed in order with this ping-like round trip.
    let _ = device.get_twin().await;
    assert_eq!(
        hub.c2d_pending("c2d-dev").len(),
        1,
        "the completion was not stored"
    );
}

#[tokio::test]
async fn an_amqp_c2d_send_that_is_not_stored_is_rejected_and_queues_nothing() {
    use fe2o3_amqp::link::Sender;
    use fe2o3_amqp::types::messaging::Outcome;
    use iotemu_e2e::amqp::{Login, authorised_session, c2d_message};

    let store = FailingStore::new();
    let emulator = start_with_control(&store).await;
    let (mut connection, mut session, _cbs) = authorised_session(&emulator, Login::Anonymous).await;
    let mut sender = Sender::attach(&mut session, "c2d", "/messages/devicebound")
        .await
        .unwrap();
    for mode in FAILURES {
        store.set(mode);
        let outcome = sender.send(c2d_message("c2d-dev", b"x")).await.unwrap();
        match outcome {
            Outcome::Rejected(rejected) => assert_eq!(
                iotemu::internals::amqp::symbol_of(&rejected.error.expect("error").condition),
                "amqp:internal-error",
                "{mode:?}"
            ),
            other => panic!("{mode:?}: expected a rejection, got {other:?}"),
        }
        assert!(
            emulator.default_hub().c2d_pending("c2d-dev").is_empty(),
            "{mode:?}"
        );
    }
    store.set(Mode::Store);
    let outcome = sender.send(c2d_message("c2d-dev", b"x")).await.unwrap();
    assert!(matches!(outcome, Outcome::Accepted(_)), "{outcome:?}");
    assert_eq!(emulator.default_hub().c2d_pending("c2d-dev").len(), 1);
    sender.close().await.unwrap();
    session.end().await.unwrap();
    connection.close().await.unwrap();
}
