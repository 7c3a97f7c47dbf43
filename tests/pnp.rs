//! Issue #15 items 2–4 over the real transports: twin JSON in IoT Hub's key order, the
//! IoT Plug and Play model id and Digital Twins API, bulk registry operations and statistics.

use std::time::Duration;

use iotemu::internals::mqtt::codec::{ConnectReturnCode, Packet, PubAck, Publish, QoS};
use iotemu_e2e::*;
use rumqttc::mqttbytes::v4::Subscribe;
use serde_json::{Value, json};

const MODEL: &str = "dtmi:com:example:Thermostat;1";

/// Device `device_id` (quickstart key) connected over MQTT with `model-id` in its username,
/// subscribed to `filters`.
async fn pnp_device(emulator: &iotemu::Emulator, device_id: &str, filters: &[&str]) -> RawClient {
    let key = iotemu::SymmetricKey::from_base64(QUICKSTART_KEY).expect("the quickstart key");
    emulator
        .default_hub()
        .provision_device(device_id, key.clone(), key, None);
    let mut client = RawClient::connect(emulator).await;
    let token = device_token(
        "localhost",
        device_id,
        QUICKSTART_KEY,
        seconds_from_now(600),
    );
    let username = format!(
        "{}&model-id=dtmi%3Acom%3Aexample%3AThermostat%3B1",
        hub_username("localhost", device_id)
    );
    assert_eq!(
        client.mqtt_connect(device_id, &username, &token).await,
        ConnectReturnCode::Success
    );
    for (pkid, filter) in (1u16..).zip(filters) {
        let mut subscribe = Subscribe::new(*filter, QoS::AtLeastOnce);
        subscribe.pkid = pkid;
        client.send(Packet::Subscribe(subscribe)).await;
        assert!(matches!(
            client.recv(Duration::from_secs(5)).await,
            Ok(Packet::SubAck(_))
        ));
    }
    client
}

async fn next_publish(client: &mut RawClient) -> Publish {
    loop {
        match client
            .recv(Duration::from_secs(5))
            .await
            .expect("a publish")
        {
            Packet::Publish(p) => {
                if p.qos != QoS::AtMostOnce {
                    client.send(Packet::PubAck(PubAck::new(p.pkid))).await;
                }
                return p;
            }
            _ => continue,
        }
    }
}

#[tokio::test]
async fn twin_sections_end_with_their_version_everywhere_and_the_model_id_is_kept() {
    let emulator = start_emulator(None).await;
    let filters = [
        "$iothub/twin/res/#",
        "$iothub/twin/PATCH/properties/desired/#",
    ];
    let mut device = pnp_device(&emulator, "pnp-1", &filters).await;

    let patch =
        json!({"properties": {"desired": {"targetTemperature": 21, "mode": {"eco": true}}}});
    let updated = hub_rest(
        &emulator,
        "PATCH",
        "/twins/pnp-1",
        &[("If-Match", "\"*\"")],
        patch,
    )
    .await;
    assert_eq!(updated.status, 200);
    let pushed = next_publish(&mut device).await;
    assert_eq!(
        pushed.topic,
        "$iothub/twin/PATCH/properties/desired/?$version=2"
    );
    assert_eq!(
        std::str::from_utf8(&pushed.payload).unwrap(),
        r#"{"mode":{"eco":true},"targetTemperature":21,"$version":2}"#
    );

    device
        .send(Packet::Publish(Publish::new(
            "$iothub/twin/GET/?$rid=1",
            QoS::AtMostOnce,
            b" ".to_vec(),
        )))
        .await;
    let got = next_publish(&mut device).await;
    assert_eq!(
        std::str::from_utf8(&got.payload).unwrap(),
        r#"{"desired":{"mode":{"eco":true},"targetTemperature":21,"$version":2},"reported":{"$version":1}}"#
    );

    let twin = hub_rest(&emulator, "GET", "/twins/pnp-1", &[], Value::Null).await;
    let text = String::from_utf8(twin.body.clone()).unwrap();
    let desired = text.find(
        r#""desired":{"mode":{"eco":true},"targetTemperature":21,"$metadata":{"$lastUpdated":"#,
    );
    assert!(desired.is_some(), "{text}");
    assert!(
        text.contains(
            r#""$lastUpdatedVersion":2}},"$version":2},"reported":{"$metadata":{"$lastUpdated":"#
        ),
        "{text}"
    );
    let twin = twin.json();
    assert_eq!(twin["modelId"], MODEL);
    let meta = &twin["properties"]["desired"]["$metadata"];
    assert_eq!(meta["mode"]["eco"]["$lastUpdatedVersion"], 2);
    assert!(meta["targetTemperature"]["$lastUpdated"].is_string());

    let queried = hub_rest(
        &emulator,
        "POST",
        "/devices/query",
        &[],
        json!({"query": "SELECT * FROM devices WHERE deviceId = 'pnp-1'"}),
    )
    .await;
    let text = String::from_utf8(queried.body).unwrap();
    assert!(text.contains(r#"},"$version":2},"reported":{"#), "{text}");
}

#[tokio::test]
async fn digital_twin_commands_and_patches_reach_the_device() {
    let emulator = start_emulator(None).await;
    let filters = [
        "$iothub/methods/POST/#",
        "$iothub/twin/PATCH/properties/desired/#",
    ];
    let mut device = pnp_device(&emulator, "pnp-2", &filters).await;

    let twin = hub_rest(&emulator, "GET", "/digitaltwins/pnp-2", &[], Value::Null).await;
    assert_eq!(twin.status, 200);
    assert!(twin.header("etag").is_some());
    assert_eq!(twin.json()["$metadata"]["$model"], MODEL);

    let emulator_ref = &emulator;
    let call = hub_rest(
        emulator_ref,
        "POST",
        "/digitaltwins/pnp-2/components/thermostat1/commands/getMaxMinReport?responseTimeoutInSeconds=10",
        &[],
        json!("2024-01-01T00:00:00Z"),
    );
    let answer = async {
        let request = next_publish(&mut device).await;
        assert!(
            request
                .topic
                .starts_with("$iothub/methods/POST/thermostat1*getMaxMinReport/?$rid="),
            "{}",
            request.topic
        );
        assert_eq!(&request.payload[..], br#""2024-01-01T00:00:00Z""#);
        let rid = request.topic.rsplit("$rid=").next().unwrap().to_owned();
        device
            .send(Packet::Publish(Publish::new(
                format!("$iothub/methods/res/201/?$rid={rid}"),
                QoS::AtMostOnce,
                br#"{"maxTemp":30}"#.to_vec(),
            )))
            .await;
    };
    let (response, ()) = tokio::join!(call, answer);
    assert_eq!(response.status, 200);
    assert_eq!(response.header("x-ms-command-statuscode"), Some("201"));
    assert!(response.header("x-ms-request-id").is_some());
    assert_eq!(response.json(), json!({"maxTemp": 30}));

    let patched = hub_rest(
        &emulator,
        "PATCH",
        "/digitaltwins/pnp-2",
        &[],
        json!([{"op": "add", "path": "/thermostat1/targetTemperature", "value": 42}]),
    )
    .await;
    assert_eq!(patched.status, 202, "{:?}", patched.json());
    let pushed = next_publish(&mut device).await;
    assert_eq!(
        std::str::from_utf8(&pushed.payload).unwrap(),
        r#"{"thermostat1":{"__t":"c","targetTemperature":42},"$version":2}"#
    );

    let offline = hub_rest(
        &emulator,
        "POST",
        "/digitaltwins/nobody/commands/reboot",
        &[],
        Value::Null,
    )
    .await;
    assert_eq!(offline.status, 404);
}

#[tokio::test]
async fn bulk_registry_and_statistics_over_https() {
    let emulator = start_emulator(None).await;
    let before = hub_rest(&emulator, "GET", "/statistics/devices", &[], Value::Null).await;
    assert_eq!(before.status, 200);
    let total = before.json()["totalDeviceCount"].as_u64().unwrap();

    let created = hub_rest(
        &emulator,
        "POST",
        "/devices",
        &[],
        json!([
            {"id": "bulk-a", "importMode": "create"},
            {"id": "bulk-b", "importMode": "create", "status": "disabled"},
        ]),
    )
    .await;
    assert_eq!(created.status, 200);
    assert_eq!(
        created.json(),
        json!({"isSuccessful": true, "errors": [], "warnings": []})
    );

    let again = hub_rest(
        &emulator,
        "POST",
        "/devices",
        &[],
        json!([{"id": "bulk-a", "importMode": "create"}, {"id": "bulk-b", "importMode": "Delete"}]),
    )
    .await;
    assert_eq!(again.status, 400);
    let body = again.json();
    assert_eq!(body["isSuccessful"], false);
    assert_eq!(body["errors"][0]["errorCode"], "DeviceAlreadyExists");
    assert_eq!(body["errors"].as_array().map(Vec::len), Some(1));

    let after = hub_rest(&emulator, "GET", "/statistics/devices", &[], Value::Null).await;
    assert_eq!(after.json()["totalDeviceCount"].as_u64(), Some(total + 1));
    let service = hub_rest(&emulator, "GET", "/statistics/service", &[], Value::Null).await;
    assert_eq!(service.json(), json!({"connectedDeviceCount": 0}));

    let too_many: Vec<Value> = (0..101).map(|i| json!({"id": format!("x{i}")})).collect();
    let refused = hub_rest(&emulator, "POST", "/devices", &[], json!(too_many)).await;
    assert_eq!(refused.status, 400);
    assert_eq!(refused.header("iothub-errorcode"), Some("ArgumentInvalid"));
}
