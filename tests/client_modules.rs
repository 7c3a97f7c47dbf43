//! `iotemu-device`'s `ModuleClient` against the real emulator: a module identity connects as
//! `{device}/{module}` with its own key (over MQTT and over WebSocket), sends telemetry and
//! outputs, uses its module twin and direct methods, receives input messages, and comes back
//! after its device was disabled and enabled again.

use iotemu::WaitStored;
use std::time::Duration;

use iotemu::C2dMessage;
use iotemu::Emulator;
use iotemu::IdentityRef;
use iotemu_device::{
    ConnectionState, DisconnectReason, Message, MethodRequest, MethodResponse, ModuleClient,
    ReconnectPolicy, Transport, Trust,
};
use iotemu_e2e::*;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(10);

fn builder(
    emulator: &Emulator,
    device_id: &str,
    module_id: &str,
    key: &str,
) -> iotemu_device::ModuleClientBuilder {
    ModuleClient::builder("localhost", device_id, module_id)
        .symmetric_key(key)
        .trust(Trust::CaPem(emulator.ca_pem().to_owned()))
        .port(emulator.mqtt_port())
        .reconnect(
            ReconnectPolicy::default()
                .initial_delay(Duration::from_millis(50))
                .max_delay(Duration::from_millis(200)),
        )
}

#[tokio::test]
async fn a_module_sends_uses_its_twin_and_methods_and_receives_inputs() {
    let emulator = start_emulator(None).await;
    let key = create_sas_module(&emulator, "edge-dev", "filter");
    let module = builder(&emulator, "edge-dev", "filter", &key)
        .connect()
        .await
        .unwrap();
    let hub = emulator.default_hub();
    assert!(hub.connections().is_connected("edge-dev/filter"));

    module
        .send_telemetry(Message::new("raw").message_id("t-1"))
        .await
        .unwrap();
    module
        .send_output(
            "alerts",
            Message::new("too hot")
                .message_id("o-1")
                .property("level", "high"),
        )
        .await
        .unwrap();
    let stored = hub.telemetry().messages(Some("edge-dev"));
    let telemetry = stored
        .iter()
        .find(|m| m.message_id() == Some("t-1"))
        .unwrap();
    assert_eq!(telemetry.module_id.as_deref(), Some("filter"));
    assert_eq!(telemetry.system.output_name, None);
    let output = stored
        .iter()
        .find(|m| m.message_id() == Some("o-1"))
        .unwrap();
    assert_eq!(output.module_id.as_deref(), Some("filter"));
    assert_eq!(output.system.output_name.as_deref(), Some("alerts"));
    assert_eq!(
        output.properties.get("level").map(String::as_str),
        Some("high")
    );

    // The module twin, not the device's.
    let mut updates = within("desired_updates", module.desired_updates())
        .await
        .unwrap();
    let version = within(
        "update_reported",
        module.update_reported(json!({"rate": 5})),
    )
    .await
    .unwrap();
    let stored = hub.module_twin("edge-dev", "filter").unwrap();
    assert_eq!(stored.reported.get("rate"), Some(&json!(5)));
    assert!(
        hub.device_twin("edge-dev")
            .unwrap()
            .reported
            .get("rate")
            .is_none()
    );
    hub.update_twin_of(
        IdentityRef::module("edge-dev", "filter"),
        &json!({"properties": {"desired": {"threshold": 30}}}),
        None,
        false,
    )
    .wait_stored()
    .unwrap();
    let patch = within("desired patch", updates.next()).await.unwrap();
    assert_eq!(patch.patch["threshold"], 30);
    let twin = within("get_twin", module.get_twin()).await.unwrap();
    assert_eq!(twin.desired["threshold"], 30);
    assert_eq!(twin.reported_version(), Some(version));

    within(
        "on_method",
        module.on_method(|request: MethodRequest| async move {
            MethodResponse::new(200, json!({"module got": request.name}))
        }),
    )
    .await
    .unwrap();
    let answer = hub
        .invoke_method_on(
            IdentityRef::module("edge-dev", "filter"),
            "flush",
            Value::Null,
            WAIT,
            Duration::ZERO,
        )
        .await
        .unwrap();
    assert_eq!(
        (answer.status, answer.payload),
        (200, json!({"module got": "flush"}))
    );

    let mut inputs = within("input_messages", module.input_messages())
        .await
        .unwrap();
    let mut message = C2dMessage::new("21.5");
    message.properties.insert("unit".into(), "C".into());
    hub.send_module_input("edge-dev", "filter", "temperature", message)
        .await
        .unwrap();
    let input = within("input", inputs.next()).await.unwrap();
    assert_eq!(input.input_name.as_deref(), Some("temperature"));
    assert_eq!(&input.body[..], b"21.5");
    assert_eq!(input.property("unit"), Some("C"));
    assert!(input.message_id.is_some());
    within("complete", input.complete()).await.unwrap();
    module.disconnect().await.unwrap();
}

#[tokio::test]
async fn a_module_connects_over_websocket() {
    let emulator = start_emulator(None).await;
    let key = create_sas_module(&emulator, "ws-dev", "ws-mod");
    let module = builder(&emulator, "ws-dev", "ws-mod", &key)
        .transport(Transport::MqttWs)
        .port(emulator.https_port().expect("HTTPS is served"))
        .connect()
        .await
        .unwrap();
    module
        .send_output("out", Message::new("x").message_id("ws-out"))
        .await
        .unwrap();
    let stored = emulator.default_hub().telemetry().messages(Some("ws-dev"));
    assert_eq!(stored[0].system.output_name.as_deref(), Some("out"));
    module.disconnect().await.unwrap();
}

#[tokio::test]
async fn a_module_comes_back_after_its_device_is_enabled_again() {
    let emulator = start_emulator(None).await;
    let key = create_sas_module(&emulator, "parent-dev", "child");
    let module = builder(&emulator, "parent-dev", "child", &key)
        .connect()
        .await
        .unwrap();
    let set_status = |status: &'static str| {
        let emulator = &emulator;
        async move {
            let mut device = hub_rest(emulator, "GET", "/devices/parent-dev", &[], Value::Null)
                .await
                .json();
            device["status"] = json!(status);
            let updated = hub_rest(
                emulator,
                "PUT",
                "/devices/parent-dev",
                &[("If-Match", "\"*\"")],
                device,
            )
            .await;
            assert_eq!(updated.status, 200);
        }
    };
    set_status("disabled").await;
    let mut state = module.connection_state();
    within(
        "refused while the device is disabled",
        state.wait_for(|s| {
            matches!(
                s,
                ConnectionState::Reconnecting {
                    reason: DisconnectReason::Refused(3),
                    ..
                }
            )
        }),
    )
    .await
    .unwrap();
    set_status("enabled").await;
    within(
        "reconnected",
        state.wait_for(
            |s| matches!(s, ConnectionState::Connected { generation } if *generation >= 2),
        ),
    )
    .await
    .unwrap();
    within("telemetry", module.send_telemetry(Message::new("back")))
        .await
        .unwrap();
}
