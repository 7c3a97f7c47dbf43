//! Allocation policies, several linked hubs and reprovisioning (issue #5 items 4–6).
//! Registrations go through the same authentication and domain calls the transports use;
//! one test connects a real client to a second hub on its own loopback address.

use iotemu::WaitStored;
use std::time::SystemTime;

use iotemu::Emulator;
use iotemu::internals::auth::Credential;
use iotemu::{DeviceRegistrationState, IndividualEnrollment};
use iotemu_e2e::Webhook;
use iotemu_e2e::*;
use serde_json::{Value, json};

const SCOPE: &str = "0ne00000A0A";
const KEY: &str = QUICKSTART_KEY;

/// DPS in `location`, hubs `localhost` (weight 1) and `127.0.0.2` (weight 1000), and an
/// opted-out hub `127.0.0.3`.
fn fixture(extra_enrollments: Value) -> String {
    json!({
        "dps": { "idScope": SCOPE, "hostName": "localhost", "location": "westeurope" },
        "hubs": [
            { "hostName": "localhost", "allocationWeight": 1, "location": "eastus" },
            { "hostName": "127.0.0.2", "allocationWeight": 1000, "location": "westeurope" },
            { "hostName": "127.0.0.3", "applyAllocationPolicy": false }
        ],
        "enrollments": extra_enrollments,
        "enrollmentGroups": [{ "enrollmentGroupId": "fleet", "attestation": { "type": "symmetricKey",
            "symmetricKey": { "primaryKey": QUICKSTART_GROUP_KEY } } }]
    })
    .to_string()
}

fn enrollment(id: &str, more: Value) -> Value {
    let mut e = json!({ "registrationId": id, "attestation": { "type": "symmetricKey",
        "symmetricKey": { "primaryKey": KEY } } });
    e.as_object_mut()
        .unwrap()
        .extend(more.as_object().unwrap().clone());
    e
}

async fn emulator(enrollments: Value) -> Emulator {
    Emulator::builder()
        .fixture_json("allocation", &fixture(enrollments))
        .retry_after(0)
        .start()
        .await
        .expect("starts")
}

/// Registers through the domain exactly as a transport would and returns the final state.
fn register(emulator: &Emulator, registration_id: &str, key: &str) -> DeviceRegistrationState {
    let token = dps_token(SCOPE, registration_id, key, seconds_from_now(600));
    let dps = emulator.dps();
    let who = dps
        .authenticate_registration(
            SCOPE,
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

fn hub_of(state: &DeviceRegistrationState) -> &str {
    state.assigned_hub.as_deref().unwrap_or("-")
}

fn update(emulator: &Emulator, id: &str, more: Value) {
    let e: IndividualEnrollment = serde_json::from_value(enrollment(id, more)).unwrap();
    emulator.dps().create_or_update_enrollment(e).unwrap();
}

#[tokio::test]
async fn hashed_allocation_follows_weights_and_skips_opted_out_hubs() {
    let emulator = emulator(json!([])).await;
    let mut counts = std::collections::HashMap::new();
    for i in 0..60 {
        let id = format!("fleet-{i}");
        let key = iotemu_device::derive_device_key(QUICKSTART_GROUP_KEY, &id).unwrap();
        *counts
            .entry(hub_of(&register(&emulator, &id, &key)).to_owned())
            .or_insert(0) += 1;
    }
    assert!(
        counts.get("127.0.0.2").copied().unwrap_or(0) >= 55,
        "{counts:?}"
    );
    assert!(
        !counts.contains_key("127.0.0.3"),
        "opted-out hub chosen: {counts:?}"
    );
    // Deterministic: the same id always lands on the same hub.
    let key = iotemu_device::derive_device_key(QUICKSTART_GROUP_KEY, "fleet-7").unwrap();
    let again = register(&emulator, "fleet-7", &key);
    assert_eq!(
        hub_of(&again),
        hub_of(&register(&emulator, "fleet-7", &key))
    );
}

#[tokio::test]
async fn static_and_geolatency_policies() {
    let emulator = emulator(json!([
        enrollment(
            "static-1",
            json!({ "allocationPolicy": "static", "iotHubs": ["127.0.0.3"] })
        ),
        enrollment("geo-1", json!({ "allocationPolicy": "geoLatency" })),
    ]))
    .await;
    // Static may name a hub that opted out of allocation.
    assert_eq!(hub_of(&register(&emulator, "static-1", KEY)), "127.0.0.3");
    // Emulated geo-latency: the hub in the DPS instance's location.
    assert_eq!(hub_of(&register(&emulator, "geo-1", KEY)), "127.0.0.2");
}

#[tokio::test]
async fn invalid_allocation_settings_are_refused() {
    for (more, path) in [
        (
            json!({ "allocationPolicy": "static", "iotHubs": ["localhost", "127.0.0.2"] }),
            "iotHubs",
        ),
        (
            json!({ "allocationPolicy": "custom" }),
            "customAllocationDefinition.webhookUrl",
        ),
    ] {
        let err = Emulator::builder()
            .fixture_json("bad.json", &fixture(json!([enrollment("bad", more)])))
            .start()
            .await
            .err()
            .expect("refused");
        assert!(
            err.to_string().contains(&format!("enrollments[0].{path}")),
            "{err}"
        );
    }
    let bad_weight =
        fixture(json!([])).replace("\"allocationWeight\":1000", "\"allocationWeight\":5000");
    let err = Emulator::builder()
        .fixture_json("w.json", &bad_weight)
        .start()
        .await
        .err()
        .expect("refused");
    assert!(
        err.to_string().contains("hubs[1].allocationWeight"),
        "{err}"
    );
}

#[tokio::test]
async fn reprovisioning_migrates_resets_and_returns_to_the_initial_hub() {
    let twin = json!({ "tags": { "site": "a" }, "properties": { "desired": { "interval": 5 } } });
    let emulator = emulator(json!([enrollment(
        "roamer",
        json!({ "iotHubs": ["localhost"], "initialTwin": twin })
    )]))
    .await;
    let first = register(&emulator, "roamer", KEY);
    assert_eq!(
        (hub_of(&first), first.substatus),
        ("localhost", Some(iotemu::Substatus::InitialAssignment))
    );

    // Migrate (the default policy): the device and its data move to the new hub.
    update(
        &emulator,
        "roamer",
        json!({ "iotHubs": ["127.0.0.2"], "initialTwin": { "tags": { "site": "new" } } }),
    );
    let moved = register(&emulator, "roamer", KEY);
    assert_eq!(hub_of(&moved), "127.0.0.2");
    assert_eq!(
        serde_json::to_value(moved.substatus).unwrap(),
        "deviceDataMigrated"
    );
    let device = emulator.hub("127.0.0.2").unwrap().device("roamer").unwrap();
    assert_eq!(
        device.initial_twin,
        Some(twin.clone()),
        "migrated data, not the new initial twin"
    );

    // Back to the hub of the first assignment.
    update(&emulator, "roamer", json!({ "iotHubs": ["localhost"] }));
    let back = register(&emulator, "roamer", KEY);
    assert_eq!(
        serde_json::to_value(back.substatus).unwrap(),
        "reprovisionedToInitialAssignment"
    );
    assert_eq!(back.created_date_time_utc, first.created_date_time_utc);

    // Reset: data starts again from the enrollment's initial twin, even on the same hub.
    let fresh = json!({ "tags": { "site": "reset" } });
    update(
        &emulator,
        "roamer",
        json!({ "iotHubs": ["localhost"], "initialTwin": fresh,
        "reprovisionPolicy": { "updateHubAssignment": true, "migrateDeviceData": false } }),
    );
    let reset = register(&emulator, "roamer", KEY);
    assert_eq!(
        serde_json::to_value(reset.substatus).unwrap(),
        "deviceDataReset"
    );
    assert_eq!(
        emulator
            .hub("localhost")
            .unwrap()
            .device("roamer")
            .unwrap()
            .initial_twin,
        Some(fresh)
    );

    // updateHubAssignment=false: the hub never changes.
    update(
        &emulator,
        "roamer",
        json!({ "iotHubs": ["127.0.0.2"],
        "reprovisionPolicy": { "updateHubAssignment": false, "migrateDeviceData": true } }),
    );
    assert_eq!(hub_of(&register(&emulator, "roamer", KEY)), "localhost");

    // Deleting the registration state makes the next registration a first one again.
    emulator
        .dps()
        .delete_registration_state("roamer", None)
        .wait_stored()
        .unwrap();
    let again = register(&emulator, "roamer", KEY);
    assert_eq!(
        serde_json::to_value(again.substatus).unwrap(),
        "initialAssignment"
    );
    assert_ne!(again.created_date_time_utc, first.created_date_time_utc);
}

#[tokio::test]
async fn a_device_reaches_its_hub_on_a_second_loopback_address() {
    use iotemu_device::{DeviceClient, Message, ProvisioningClient, Trust};
    let emulator = emulator(json!([enrollment(
        "far-1",
        json!({ "allocationPolicy": "static", "iotHubs": ["127.0.0.2"] })
    )]))
    .await;
    let trust = Trust::CaPem(emulator.ca_pem().to_owned());
    let registration = ProvisioningClient::builder("localhost", SCOPE, "far-1")
        .symmetric_key(KEY)
        .trust(trust.clone())
        .port(emulator.mqtt_port())
        .build()
        .unwrap()
        .register()
        .await
        .unwrap();
    assert_eq!(
        registration.registration_state.assigned_hub.as_deref(),
        Some("127.0.0.2")
    );
    // The client dials 127.0.0.2 itself; the certificate carries that address.
    let device = DeviceClient::from_registration(&registration, KEY)
        .trust(trust)
        .port(emulator.mqtt_port())
        .connect()
        .await
        .expect("second hub reachable");
    device
        .send_telemetry(Message::new("far").message_id("f-1"))
        .await
        .unwrap();
    assert_eq!(
        emulator
            .hub("127.0.0.2")
            .unwrap()
            .telemetry()
            .messages(Some("far-1"))
            .len(),
        1
    );
    assert!(
        emulator
            .default_hub()
            .telemetry()
            .messages(Some("far-1"))
            .is_empty()
    );
}

/// Registers through the domain, polling until the (asynchronous) webhook has decided.
async fn register_async(
    emulator: &Emulator,
    registration_id: &str,
    key: &str,
    payload: Value,
) -> DeviceRegistrationState {
    let token = dps_token(SCOPE, registration_id, key, seconds_from_now(600));
    let dps = emulator.dps();
    let who = dps
        .authenticate_registration(
            SCOPE,
            registration_id,
            Credential::Sas(&token),
            SystemTime::now(),
        )
        .expect("authenticates");
    let body = json!({ "registrationId": registration_id, "payload": payload }).to_string();
    let started = dps.register(&who, body.as_bytes()).unwrap();
    for _ in 0..100 {
        let poll = dps
            .operation_status(&who, &started.body.operation_id)
            .wait_stored()
            .unwrap();
        if poll.status == 200 {
            return poll.body.registration_state.unwrap();
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("custom allocation never completed");
}

fn custom(id: &str, url: &str) -> Value {
    enrollment(
        id,
        json!({ "allocationPolicy": "custom", "iotHubs": ["localhost", "127.0.0.2"],
        "customAllocationDefinition": { "webhookUrl": url, "apiVersion": "2021-10-01" } }),
    )
}

#[tokio::test]
async fn custom_allocation_follows_the_webhook() {
    let hook = Webhook::start(vec![(
        200,
        json!({
            "iotHubHostName": "127.0.0.2",
            "initialTwin": { "tags": { "from": "webhook" } },
            "payload": { "config": "blue" }
        })
        .to_string(),
    )])
    .await;
    let emulator = emulator(json!([custom("custom-ok", &hook.url)])).await;
    let state = register_async(
        &emulator,
        "custom-ok",
        KEY,
        json!({ "modelId": "dtmi:x;1" }),
    )
    .await;
    assert_eq!(hub_of(&state), "127.0.0.2", "{state:?}");
    assert_eq!(state.payload, Some(json!({ "config": "blue" })));
    let device = emulator
        .hub("127.0.0.2")
        .unwrap()
        .device("custom-ok")
        .unwrap();
    assert_eq!(
        device.initial_twin,
        Some(json!({ "tags": { "from": "webhook" } }))
    );

    // The documented request: enrollment without keys, runtime context, eligible hubs.
    let request = hook.requests.lock().unwrap()[0].clone();
    assert_eq!(
        request["individualEnrollment"]["registrationId"],
        "custom-ok"
    );
    assert_eq!(
        request["individualEnrollment"]["attestation"],
        json!({ "type": "symmetricKey" })
    );
    assert_eq!(
        request["deviceRuntimeContext"]["registrationId"],
        "custom-ok"
    );
    assert_eq!(
        request["deviceRuntimeContext"]["payload"],
        json!({ "modelId": "dtmi:x;1" })
    );
    assert_eq!(request["linkedHubs"], json!(["localhost", "127.0.0.2"]));

    // Registering again tells the webhook where the device is now.
    register_async(&emulator, "custom-ok", KEY, Value::Null).await;
    let again = hook.requests.lock().unwrap()[1].clone();
    assert_eq!(
        again["deviceRuntimeContext"]["currentIotHubHostName"],
        "127.0.0.2"
    );
    assert_eq!(
        again["deviceRuntimeContext"]["currentDeviceId"],
        "custom-ok"
    );
}

#[tokio::test]
async fn custom_allocation_failures_use_the_documented_codes() {
    let no_hub = Webhook::start(vec![(200, json!({ "iotHubHostName": "" }).to_string())]).await;
    let unauthorized = Webhook::start(vec![(401, String::new())]).await;
    let bad_request = Webhook::start(vec![(400, "bad input".into())]).await;
    let flaky = Webhook::start(vec![
        (503, String::new()),
        (503, String::new()),
        (200, json!({ "iotHubHostName": "localhost" }).to_string()),
    ])
    .await;
    let down = Webhook::start(vec![(500, String::new())]).await;
    let stranger = Webhook::start(vec![(
        200,
        json!({ "iotHubHostName": "elsewhere.azure-devices.net" }).to_string(),
    )])
    .await;
    let emulator = emulator(json!([
        custom("c-no-hub", &no_hub.url),
        custom("c-401", &unauthorized.url),
        custom("c-400", &bad_request.url),
        custom("c-flaky", &flaky.url),
        custom("c-down", &down.url),
        custom("c-stranger", &stranger.url),
        custom("c-unreachable", "http://127.0.0.1:9/nothing"),
    ]))
    .await;
    for (id, code) in [
        ("c-no-hub", 400208),
        ("c-401", 400209),
        ("c-400", 400207),
        ("c-down", 400207),
        ("c-stranger", 400207),
        ("c-unreachable", 400207),
    ] {
        let state = register_async(&emulator, id, KEY, Value::Null).await;
        assert_eq!(
            serde_json::to_value(state.status).unwrap(),
            "failed",
            "{id}"
        );
        assert_eq!(
            state.error_code,
            Some(code),
            "{id}: {:?}",
            state.error_message
        );
        assert!(emulator.default_hub().device(id).is_none());
    }
    assert_eq!(
        down.requests.lock().unwrap().len(),
        3,
        "429/5xx are retried"
    );
    let state = register_async(&emulator, "c-flaky", KEY, Value::Null).await;
    assert_eq!(hub_of(&state), "localhost");
}
