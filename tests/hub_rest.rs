//! IoT Hub service REST API (issue #6 items 1, 2, 7 in part): twins with ETags and direct
//! methods over HTTPS, policy-token auth, and Azure's classic error bodies.

use std::time::Duration;

use iotemu::internals::mqtt::codec::{Packet, Publish, QoS};
use iotemu_e2e::*;
use serde_json::{Value, json};

const SERVICE_KEY: &str = "5rig9dR3TugO6rC8NB2RBSHNpI6/yXXMwj9dck7tfY0=";
const DEVICE_POLICY_KEY: &str = "DnLP7U4Hm89m+OXGdR0tm0GnouaNz5TY+ZvYqu4K+bE=";

/// A service REST call signed with the `service` policy (ServiceConnect).
async fn call(
    emulator: &iotemu::Emulator,
    method: &str,
    path: &str,
    extra: &[(&str, &str)],
    body: Value,
) -> HttpsResponse {
    let service = ("service", SERVICE_KEY);
    hub_rest_as(emulator, service, method, path, extra, body).await
}

/// A device with the initial twin `{"tags": {"site": "a"}, desired {"interval": 5}}`,
/// connected over MQTT and subscribed to `filters`.
async fn connected(emulator: &iotemu::Emulator, device_id: &str, filters: &[&str]) -> RawClient {
    let initial =
        json!({ "tags": { "site": "a" }, "properties": { "desired": { "interval": 5 } } });
    connected_hub_device(emulator, device_id, Some(initial), filters).await
}

#[tokio::test]
async fn twins_read_and_update_with_etags_and_reach_the_device() {
    let emulator = start_emulator(None).await;
    let mut device = connected(
        &emulator,
        "rest-twin",
        &["$iothub/twin/PATCH/properties/desired/#"],
    )
    .await;
    let twin = call(&emulator, "GET", "/twins/rest-twin", &[], Value::Null).await;
    assert_eq!(twin.status, 200);
    let twin = twin.json();
    assert_eq!(twin["tags"], json!({ "site": "a" }));
    assert_eq!(twin["properties"]["desired"]["interval"], 5);
    assert_eq!(twin["connectionState"], "Connected");
    let etag = twin["etag"].as_str().unwrap().to_owned();

    let stale = call(
        &emulator,
        "PATCH",
        "/twins/rest-twin",
        &[("If-Match", "\"AAAA\"")],
        json!({ "properties": { "desired": { "interval": 1 } } }),
    )
    .await;
    assert_eq!(stale.status, 412);
    assert_eq!(stale.header("iothub-errorcode"), Some("PreconditionFailed"));
    assert!(
        stale.json()["Message"]
            .as_str()
            .unwrap()
            .starts_with("ErrorCode:PreconditionFailed;")
    );

    let quoted = format!("\"{etag}\"");
    let patched = call(
        &emulator,
        "PATCH",
        "/twins/rest-twin",
        &[("If-Match", quoted.as_str())],
        json!({ "properties": { "desired": { "interval": 10 } } }),
    )
    .await;
    assert_eq!(patched.status, 200);
    assert_eq!(patched.json()["properties"]["desired"]["$version"], 2);
    let pushed = match device.recv(Duration::from_secs(5)).await.unwrap() {
        Packet::Publish(p) => p,
        other => panic!("expected the desired patch, got {other:?}"),
    };
    assert_eq!(
        pushed.topic,
        "$iothub/twin/PATCH/properties/desired/?$version=2"
    );

    // PUT replaces: properties left out are removed.
    let replaced = call(
        &emulator,
        "PUT",
        "/twins/rest-twin",
        &[("If-Match", "*")],
        json!({ "tags": { "floor": 2 }, "properties": { "desired": { "mode": "eco" } } }),
    )
    .await;
    let replaced = replaced.json();
    assert_eq!(replaced["tags"], json!({ "floor": 2 }));
    assert!(replaced["properties"]["desired"].get("interval").is_none());
    assert_eq!(replaced["properties"]["desired"]["mode"], "eco");
}

#[tokio::test]
async fn methods_round_trip_over_https() {
    let emulator = start_emulator(None).await;
    let mut device = connected(&emulator, "rest-method", &["$iothub/methods/POST/#"]).await;
    let service = {
        let emulator_port = emulator.https_port();
        assert!(emulator_port.is_some());
        async {
            call(&emulator, "POST", "/twins/rest-method/methods", &[], json!({
                "methodName": "reboot", "payload": { "delay": 1 }, "responseTimeoutInSeconds": 10, "connectTimeoutInSeconds": 0
            }))
            .await
        }
    };
    let answer = async {
        let request = match device.recv(Duration::from_secs(5)).await.unwrap() {
            Packet::Publish(p) => p,
            other => panic!("expected the method request, got {other:?}"),
        };
        let rid = request.topic.rsplit("$rid=").next().unwrap().to_owned();
        let mut response = Publish::new(
            format!("$iothub/methods/res/200/?$rid={rid}"),
            QoS::AtMostOnce,
            br#"{"rebooting":true}"#.to_vec(),
        );
        response.pkid = 0;
        device.send(Packet::Publish(response)).await;
    };
    let (result, ()) = tokio::join!(service, answer);
    assert_eq!(result.status, 200);
    assert_eq!(
        result.json(),
        json!({ "status": 200, "payload": { "rebooting": true } })
    );

    let offline = call(
        &emulator,
        "POST",
        "/twins/nobody-here/methods",
        &[],
        json!({ "methodName": "x" }),
    )
    .await;
    assert_eq!(offline.status, 404);
    assert_eq!(offline.header("iothub-errorcode"), Some("DeviceNotFound"));
}

#[tokio::test]
async fn hub_service_calls_need_a_service_connect_policy() {
    let emulator = start_emulator(None).await;
    let _device = connected(&emulator, "rest-auth", &[]).await;
    let device_policy = hub_policy_token("device", DEVICE_POLICY_KEY);
    let refused = https_request(
        &emulator,
        None,
        "GET",
        "/twins/rest-auth?api-version=2021-04-12",
        &[("Authorization", &device_policy)],
        b"",
    )
    .await;
    assert_eq!(refused.status, 401);
    assert_eq!(
        refused.header("iothub-errorcode"),
        Some("IotHubUnauthorizedAccess")
    );
    let anonymous = https_request(
        &emulator,
        None,
        "GET",
        "/twins/rest-auth?api-version=2021-04-12",
        &[],
        b"",
    )
    .await;
    assert_eq!(anonymous.status, 401);
    let bad = call(
        &emulator,
        "PATCH",
        "/twins/rest-auth",
        &[],
        json!({ "properties": { "desired": { "a.b": 1 } } }),
    )
    .await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.header("iothub-errorcode"), Some("ArgumentInvalid"));
}
