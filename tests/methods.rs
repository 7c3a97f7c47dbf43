//! Direct methods over MQTT (issue #6 item 2): request on `$iothub/methods/POST/{name}/?$rid=`,
//! the device's status and payload back to the caller; 404103 offline/unsubscribed, 504101
//! on timeout.

use std::time::Duration;

use iotemu::SymmetricKey;
use iotemu::internals::mqtt::codec::{Packet, Publish, QoS};
use iotemu_e2e::*;
use serde_json::json;

/// A connected device, subscribed to method requests when `subscribe_methods`.
async fn device(
    emulator: &iotemu::Emulator,
    device_id: &str,
    subscribe_methods: bool,
) -> RawClient {
    let filters: &[&str] = if subscribe_methods {
        &["$iothub/methods/POST/#"]
    } else {
        &[]
    };
    connected_hub_device(emulator, device_id, None, filters).await
}

const SECOND: Duration = Duration::from_secs(1);

#[tokio::test]
async fn a_method_call_reaches_the_device_and_returns_its_answer() {
    let emulator = start_emulator(None).await;
    let mut client = device(&emulator, "m-1", true).await;
    let hub = emulator.default_hub().clone();
    let call = tokio::spawn(async move {
        hub.invoke_method(
            "m-1",
            "reboot",
            json!({ "delay": 1 }),
            5 * SECOND,
            Duration::ZERO,
        )
        .await
    });
    let request = match client.recv(Duration::from_secs(5)).await.unwrap() {
        Packet::Publish(p) => p,
        other => panic!("expected the method request, got {other:?}"),
    };
    assert!(
        request
            .topic
            .starts_with("$iothub/methods/POST/reboot/?$rid="),
        "{}",
        request.topic
    );
    assert_eq!(request.qos, QoS::AtMostOnce, "method requests are QoS 0");
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&request.payload).unwrap(),
        json!({ "delay": 1 })
    );
    let rid = request.topic.rsplit("$rid=").next().unwrap().to_owned();
    let mut answer = Publish::new(
        format!("$iothub/methods/res/201/?$rid={rid}"),
        QoS::AtLeastOnce,
        br#"{"ok":true}"#.to_vec(),
    );
    answer.pkid = 9;
    client.send(Packet::Publish(answer)).await;
    let response = call.await.unwrap().expect("answered");
    assert_eq!(response.status, 201);
    assert_eq!(response.payload, json!({ "ok": true }));
}

#[tokio::test]
async fn offline_unsubscribed_and_silent_devices_get_azure_errors() {
    let emulator = start_emulator(None).await;
    let hub = emulator.default_hub();
    let key = SymmetricKey::from_base64(QUICKSTART_KEY).unwrap();
    hub.provision_device("offline", key.clone(), key, None);
    let offline = hub
        .invoke_method("offline", "m", json!(null), SECOND, Duration::ZERO)
        .await
        .unwrap_err();
    assert_eq!(offline.code, 404103);
    assert_eq!(
        hub.invoke_method("nobody", "m", json!(null), SECOND, Duration::ZERO)
            .await
            .unwrap_err()
            .code,
        404001
    );

    let _unsubscribed = device(&emulator, "no-sub", false).await;
    let refused = hub
        .invoke_method("no-sub", "m", json!(null), 5 * SECOND, Duration::ZERO)
        .await
        .unwrap_err();
    assert_eq!(refused.code, 404103);

    let _silent = device(&emulator, "silent", true).await;
    let timed_out = hub
        .invoke_method(
            "silent",
            "m",
            json!(null),
            Duration::from_millis(300),
            Duration::ZERO,
        )
        .await
        .unwrap_err();
    assert_eq!(timed_out.code, 504101);

    let big = json!({ "blob": "x".repeat(130 * 1024) });
    assert_eq!(
        hub.invoke_method("silent", "m", big, SECOND, Duration::ZERO)
            .await
            .unwrap_err()
            .code,
        413001
    );
}

/// Injected method faults (docs/faults.md), on the hub's one invoke path: a refusal reaches
/// the caller as its Azure error without the device seeing the call; a drop closes the
/// device's connection instead of delivering (404103); a drop after the answer returns the
/// answer, then closes the connection.
#[tokio::test]
async fn injected_method_faults_refuse_the_caller_or_drop_the_device() {
    use iotemu::{FaultAction, FaultOperation, FaultRule, Refusal};
    let emulator = start_emulator(None).await;
    let mut client = device(&emulator, "m-fault", true).await;
    let hub = emulator.default_hub().clone();
    let rule = |action: FaultAction| {
        FaultRule::new(FaultOperation::HubMethod, action)
            .device_id("m-fault")
            .count(1)
    };
    let throttle = emulator
        .faults()
        .inject(rule(FaultAction::Refuse(Refusal::Throttled {
            retry_after: 1,
        })))
        .unwrap();
    let refused = hub
        .invoke_method("m-fault", "reboot", json!(null), 5 * SECOND, Duration::ZERO)
        .await
        .unwrap_err();
    assert_eq!((refused.code, refused.status()), (429001, 429));
    assert!(
        refused.message.contains(throttle.id()),
        "{}",
        refused.message
    );
    // The device saw nothing: the next packet it gets answers its own PINGREQ.
    client.send(Packet::PingReq).await;
    assert!(matches!(
        client.recv(Duration::from_secs(5)).await,
        Ok(Packet::PingResp)
    ));

    let _after = emulator
        .faults()
        .inject(rule(FaultAction::Drop { after_ack: true }))
        .unwrap();
    let caller = hub.clone();
    let call = tokio::spawn(async move {
        caller
            .invoke_method("m-fault", "reboot", json!(null), 5 * SECOND, Duration::ZERO)
            .await
    });
    let request = match client.recv(Duration::from_secs(5)).await.unwrap() {
        Packet::Publish(p) => p,
        other => panic!("expected the method request, got {other:?}"),
    };
    let rid = request.topic.rsplit("$rid=").next().unwrap().to_owned();
    let answer = Publish::new(
        format!("$iothub/methods/res/200/?$rid={rid}"),
        QoS::AtMostOnce,
        br#"{"done":1}"#.to_vec(),
    );
    client.send(Packet::Publish(answer)).await;
    let response = call.await.unwrap().expect("answered before the drop");
    assert_eq!(response.status, 200);
    client.expect_closed().await;

    let mut client = device(&emulator, "m-fault", true).await;
    let _before = emulator
        .faults()
        .inject(rule(FaultAction::Drop { after_ack: false }))
        .unwrap();
    let dropped = hub
        .invoke_method("m-fault", "reboot", json!(null), 5 * SECOND, Duration::ZERO)
        .await
        .unwrap_err();
    assert_eq!(dropped.code, 404103);
    client.expect_closed().await;
}
