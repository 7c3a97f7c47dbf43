//! The `iotemu-device` client keeping its connection against the real emulator (issue #6
//! item 9): a disabled device is retried until it is enabled again — with telemetry sent
//! meanwhile delivered and the desired state re-synced — a second connection with the same
//! identity is taken over again, and a deleted device stops the client (CONNACK 5).

use iotemu::WaitStored;
use std::time::Duration;

use iotemu::internals::mqtt::codec::ConnectReturnCode;
use iotemu_device::{
    ConnectionState, DeviceClient, DeviceError, DisconnectReason, Message, ReconnectPolicy,
};
use iotemu_e2e::*;
use serde_json::{Value, json};

fn fast() -> ReconnectPolicy {
    ReconnectPolicy::default()
        .initial_delay(Duration::from_millis(50))
        .max_delay(Duration::from_millis(200))
}

/// Creates `device_id` with the quickstart key and connects the client to it.
async fn connect(emulator: &iotemu::Emulator, device_id: &str) -> DeviceClient {
    let device = quickstart_device(emulator, device_id, None).reconnect(fast());
    device.connect().await.expect("device connects")
}

/// Sets the device's status over the registry REST API (which drops a connected device when
/// disabling it).
async fn set_status(emulator: &iotemu::Emulator, device_id: &str, status: &str) {
    let path = format!("/devices/{device_id}");
    let mut device = hub_rest(emulator, "GET", &path, &[], Value::Null)
        .await
        .json();
    device["status"] = json!(status);
    let updated = hub_rest(emulator, "PUT", &path, &[("If-Match", "\"*\"")], device).await;
    assert_eq!(updated.status, 200, "{:?}", updated.json());
}

async fn wait_for_state(
    client: &DeviceClient,
    what: &str,
    predicate: impl FnMut(&ConnectionState) -> bool,
) -> ConnectionState {
    let mut state = client.connection_state();
    within(what, state.wait_for(predicate))
        .await
        .expect("client state")
        .clone()
}

#[tokio::test]
async fn a_disabled_device_comes_back_when_enabled_with_its_telemetry_and_desired_state() {
    let emulator = start_emulator(None).await;
    let client = connect(&emulator, "flaky-dev").await;
    let mut updates = within("desired_updates", client.desired_updates())
        .await
        .unwrap();

    set_status(&emulator, "flaky-dev", "disabled").await;
    // The hub drops the connection and refuses the device (CONNACK 3) until it is enabled.
    wait_for_state(&client, "refused while disabled", |s| {
        matches!(
            s,
            ConnectionState::Reconnecting {
                reason: DisconnectReason::Refused(3),
                ..
            }
        )
    })
    .await;
    assert!(!client.is_connected());

    // Things that happen while the device is away.
    let hub = emulator.default_hub();
    hub.update_twin(
        "flaky-dev",
        &json!({"properties": {"desired": {"mode": "eco"}}}),
        None,
        false,
    )
    .wait_stored()
    .unwrap();
    let client = std::sync::Arc::new(client);
    let sender = client.clone();
    let pending = tokio::spawn(async move {
        sender
            .send_telemetry(Message::new("sent while disabled").message_id("queued-1"))
            .await
    });

    set_status(&emulator, "flaky-dev", "enabled").await;
    within("telemetry after re-enabling", pending)
        .await
        .unwrap()
        .unwrap();
    let stored = hub.telemetry().messages(Some("flaky-dev"));
    assert!(
        stored.iter().any(|m| m.message_id() == Some("queued-1")),
        "telemetry reached the hub"
    );
    assert!(matches!(
        *client.connection_state().borrow(),
        ConnectionState::Connected { generation } if generation >= 2
    ));

    // The desired change made while disconnected arrives as the whole desired section.
    let resync = within("desired re-sync", updates.next()).await.unwrap();
    assert!(resync.full_document);
    assert_eq!(resync.version, 2);
    assert_eq!(resync.patch["mode"], "eco");

    // And the stream carries on with ordinary patches.
    hub.update_twin(
        "flaky-dev",
        &json!({"properties": {"desired": {"mode": "turbo"}}}),
        None,
        false,
    )
    .wait_stored()
    .unwrap();
    let patch = within("next patch", updates.next()).await.unwrap();
    assert_eq!((patch.version, patch.full_document), (3, false));
    assert_eq!(patch.patch["mode"], "turbo");
}

#[tokio::test]
async fn a_second_connection_with_the_same_identity_is_taken_over_again() {
    let emulator = start_emulator(None).await;
    let client = connect(&emulator, "twice-dev").await;

    let mut intruder = RawClient::connect(&emulator).await;
    let token = device_token(
        "localhost",
        "twice-dev",
        QUICKSTART_KEY,
        seconds_from_now(600),
    );
    let code = intruder
        .mqtt_connect("twice-dev", &hub_username("localhost", "twice-dev"), &token)
        .await;
    assert_eq!(code, ConnectReturnCode::Success);

    // The hub drops the client for the newer connection; the client reconnects and the
    // hub drops the intruder in turn.
    wait_for_state(
        &client,
        "reconnected",
        |s| matches!(s, ConnectionState::Connected { generation } if *generation >= 2),
    )
    .await;
    intruder.expect_closed().await;
    within(
        "telemetry",
        client.send_telemetry(Message::new("still here")),
    )
    .await
    .unwrap();
    within("disconnect", client.disconnect()).await.unwrap();
}

#[tokio::test]
async fn a_deleted_device_stops_the_client_with_the_refusal() {
    let emulator = start_emulator(None).await;
    let client = connect(&emulator, "doomed-dev").await;
    let deleted = hub_rest(
        &emulator,
        "DELETE",
        "/devices/doomed-dev",
        &[("If-Match", "\"*\"")],
        Value::Null,
    )
    .await;
    assert_eq!(deleted.status, 204);
    within("client stops", client.closed()).await;
    assert_eq!(
        *client.connection_state().borrow(),
        ConnectionState::Closed {
            reason: DisconnectReason::Refused(5)
        }
    );
    assert!(matches!(
        client.send_telemetry(Message::new("x")).await,
        Err(DeviceError::ConnectionRefused(5))
    ));
}
