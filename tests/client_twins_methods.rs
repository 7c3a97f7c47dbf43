//! The `iotemu-device` client's twin and direct-method API against the real emulator: twin
//! GET, reported patches, desired patches pushed while connected, and a method invocation
//! answered by the client's handler (spec/protocol.md §5.6, §5.7).

use iotemu::WaitStored;
use std::sync::Arc;
use std::time::Duration;

use iotemu_device::{
    DeviceClient, DeviceError, MethodRequest, MethodResponse, ProvisioningClient, Trust,
};
use iotemu_e2e::*;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(5);

/// Creates `device_id` on the default hub with the quickstart key and `initial` twin, and
/// connects the client to it.
async fn connect_device(
    emulator: &iotemu::Emulator,
    device_id: &str,
    initial: Option<Value>,
) -> DeviceClient {
    let device = quickstart_device(emulator, device_id, initial).connect();
    device.await.expect("device connects")
}

#[tokio::test]
async fn twin_get_and_reported_patches() {
    let emulator = start_emulator(None).await;
    let initial = json!({"tags": {"site": "a"}, "properties": {"desired": {"interval": 30}}});
    let device = connect_device(&emulator, "twin-dev", Some(initial)).await;

    let twin = within("get_twin", device.get_twin()).await.unwrap();
    assert_eq!(twin.desired["interval"], 30);
    assert_eq!(twin.desired_version(), Some(1));
    assert!(twin.reported_version().is_some());
    assert!(
        twin.desired.get("tags").is_none(),
        "only the properties section"
    );

    let v2 = within(
        "update_reported",
        device.update_reported(json!({"fw": "1.0"})),
    )
    .await
    .unwrap();
    assert_eq!(v2, 2);
    let v3 = within(
        "update_reported",
        device.update_reported(json!({"fw": "1.1", "battery": 80})),
    )
    .await
    .unwrap();
    assert_eq!(v3, 3);

    let stored = emulator.default_hub().device_twin("twin-dev").unwrap();
    assert_eq!(stored.reported.get("fw"), Some(&json!("1.1")));
    assert_eq!(stored.reported.get("battery"), Some(&json!(80)));
    assert_eq!(stored.reported_version, 3);

    // The device sees its own reports on the next GET.
    let twin = within("get_twin", device.get_twin()).await.unwrap();
    assert_eq!(twin.reported["fw"], "1.1");
    assert_eq!(twin.reported_version(), Some(3));

    // A patch that is not an object is the hub's to refuse, as a service error.
    match within("update_reported", device.update_reported(json!([1, 2]))).await {
        Err(DeviceError::Service { status, body }) => {
            assert_eq!(status, 400, "body: {body}");
        }
        other => panic!("expected a 400 service error, got {other:?}"),
    }
    device.disconnect().await.unwrap();
}

#[tokio::test]
async fn desired_patches_reach_the_connected_device() {
    let emulator = start_emulator(None).await;
    let device = connect_device(&emulator, "desired-dev", None).await;
    let mut updates = within("desired_updates", device.desired_updates())
        .await
        .unwrap();
    let hub = emulator.default_hub();
    hub.update_twin(
        "desired-dev",
        &json!({"properties": {"desired": {"x": 1}}}),
        None,
        false,
    )
    .wait_stored()
    .unwrap();
    let patch = within("first patch", updates.next()).await.unwrap();
    assert_eq!(patch.version, 2);
    assert_eq!(patch.patch["x"], 1);
    assert_eq!(patch.patch["$version"], 2);

    hub.update_twin(
        "desired-dev",
        &json!({"properties": {"desired": {"x": null, "y": "z"}}}),
        None,
        false,
    )
    .wait_stored()
    .unwrap();
    let patch = within("second patch", updates.next()).await.unwrap();
    assert_eq!(patch.version, 3);
    assert_eq!(patch.patch["x"], Value::Null);
    assert_eq!(patch.patch["y"], "z");

    // The stream ends with the connection.
    device.disconnect().await.unwrap();
    assert!(within("end of stream", updates.next()).await.is_none());
}

#[tokio::test]
async fn methods_are_answered_by_the_handler() {
    let emulator = start_emulator(None).await;
    let device = connect_device(&emulator, "method-dev", None).await;
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    within(
        "on_method",
        device.on_method(move |request: MethodRequest| {
            log.lock().unwrap().push(request.clone());
            async move {
                match request.name.as_str() {
                    "reboot" => MethodResponse::new(200, json!({"rebooting": request.payload})),
                    _ => MethodResponse::new(404, json!({"unknown": request.name})),
                }
            }
        }),
    )
    .await
    .unwrap();

    let hub = emulator.default_hub();
    let answer = hub
        .invoke_method(
            "method-dev",
            "reboot",
            json!({"delay": 1}),
            WAIT,
            Duration::ZERO,
        )
        .await
        .unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(answer.payload, json!({"rebooting": {"delay": 1}}));

    let answer = hub
        .invoke_method(
            "method-dev",
            "selfDestruct",
            Value::Null,
            WAIT,
            Duration::ZERO,
        )
        .await
        .unwrap();
    assert_eq!(answer.status, 404);
    assert_eq!(answer.payload, json!({"unknown": "selfDestruct"}));

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].payload, json!({"delay": 1}));
    assert_eq!(seen[1].payload, Value::Null);
    device.disconnect().await.unwrap();
}

#[tokio::test]
async fn quickstart_device_reads_its_twin_after_provisioning() {
    let emulator = start_emulator(None).await;
    let ca = Trust::CaPem(emulator.ca_pem().to_owned());
    let registration =
        ProvisioningClient::builder("localhost", emulator.id_scope(), QUICKSTART_REGISTRATION_ID)
            .symmetric_key(QUICKSTART_KEY)
            .trust(ca.clone())
            .port(emulator.mqtt_port())
            .build()
            .unwrap()
            .register()
            .await
            .unwrap();
    let device = DeviceClient::from_registration(&registration, QUICKSTART_KEY)
        .trust(ca)
        .port(emulator.mqtt_port())
        .connect()
        .await
        .unwrap();
    let twin = within("get_twin", device.get_twin()).await.unwrap();
    assert!(twin.desired_version().is_some());
    assert!(twin.reported_version().is_some());
    let version = within(
        "update_reported",
        device.update_reported(json!({"up": true})),
    )
    .await
    .unwrap();
    assert_eq!(Some(version), twin.reported_version().map(|v| v + 1));
    device.disconnect().await.unwrap();
}
