//! The `iotemu-device` client over MQTT-over-WebSocket (`Transport::MqttWs`) against the real
//! emulator's HTTPS port: DPS registration, then telemetry, twin, a direct method and a C2D
//! message on the hub — the same session as over 8883, inside `wss://…/$iothub/websocket`.

use std::time::Duration;

use iotemu::C2dMessage;
use iotemu_device::{
    DeviceClient, MethodRequest, MethodResponse, ProvisioningClient, ProvisioningError, Transport,
    Trust,
};
use iotemu_e2e::*;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn provisioning_and_the_hub_over_websocket() {
    let emulator = start_emulator(None).await;
    let ca = Trust::CaPem(emulator.ca_pem().to_owned());
    let https_port = emulator.https_port().expect("HTTPS is served");
    let registration =
        ProvisioningClient::builder("localhost", emulator.id_scope(), QUICKSTART_REGISTRATION_ID)
            .symmetric_key(QUICKSTART_KEY)
            .trust(ca.clone())
            .transport(Transport::MqttWs)
            .port(https_port)
            .build()
            .unwrap()
            .register()
            .await
            .unwrap();
    assert_eq!(registration.status, "assigned");
    assert_eq!(
        registration.registration_state.device_id.as_deref(),
        Some(QUICKSTART_DEVICE_ID)
    );

    let device = DeviceClient::from_registration(&registration, QUICKSTART_KEY)
        .trust(ca)
        .transport(Transport::MqttWs)
        .port(https_port)
        .connect()
        .await
        .unwrap();

    device
        .send_telemetry(iotemu_device::Message::new("over websocket").message_id("ws-1"))
        .await
        .unwrap();
    let hub = emulator.default_hub();
    assert!(
        hub.telemetry()
            .messages(Some(QUICKSTART_DEVICE_ID))
            .iter()
            .any(|m| m.message_id() == Some("ws-1"))
    );

    let version = within(
        "update_reported",
        device.update_reported(json!({"ws": true})),
    )
    .await
    .unwrap();
    let twin = within("get_twin", device.get_twin()).await.unwrap();
    assert_eq!(twin.reported["ws"], true);
    assert_eq!(twin.reported_version(), Some(version));

    within(
        "on_method",
        device.on_method(|request: MethodRequest| async move {
            MethodResponse::new(200, json!({"echo": request.payload}))
        }),
    )
    .await
    .unwrap();
    let answer = hub
        .invoke_method(QUICKSTART_DEVICE_ID, "echo", json!(7), WAIT, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!((answer.status, answer.payload), (200, json!({"echo": 7})));

    let mut messages = within("c2d_messages", device.c2d_messages()).await.unwrap();
    hub.send_c2d(QUICKSTART_DEVICE_ID, C2dMessage::new("via wss"))
        .unwrap()
        .durable()
        .await
        .unwrap();
    let message = within("c2d", messages.next()).await.unwrap();
    assert_eq!(&message.body[..], b"via wss");
    within("complete", message.complete()).await.unwrap();
    device.disconnect().await.unwrap();
}

#[tokio::test]
async fn websocket_on_the_mqtt_port_fails_clearly() {
    let emulator = start_emulator(None).await;
    // The MQTT listener does not speak HTTP, so the upgrade cannot succeed.
    let result =
        ProvisioningClient::builder("localhost", emulator.id_scope(), QUICKSTART_REGISTRATION_ID)
            .symmetric_key(QUICKSTART_KEY)
            .trust(Trust::CaPem(emulator.ca_pem().to_owned()))
            .transport(Transport::MqttWs)
            .port(emulator.mqtt_port())
            .timeout(WAIT)
            .build()
            .unwrap()
            .register()
            .await;
    assert!(
        matches!(
            result,
            Err(ProvisioningError::WebSocket(_) | ProvisioningError::Io(_))
        ),
        "{result:?}"
    );
}
