//! Module identities (issue #6 item 4, issue #4's module certificates): modules created over
//! the registry REST API connect with their own credentials as `{device}/{module}`, send
//! telemetry and outputs (`$.on`), get their own twin and methods, receive input messages,
//! and go away with their device.

use iotemu::WaitStored;
use std::time::Duration;

use iotemu::C2dMessage;
use iotemu::DeviceAuthentication;
use iotemu::Emulator;
use iotemu::IdentityRef;
use iotemu::ModuleSpec;
use iotemu::certs;
use iotemu::internals::mqtt::codec::{ConnectReturnCode, Packet, PubAck, Publish, QoS};
use iotemu_e2e::*;
use rumqttc::mqttbytes::v4::Subscribe;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(5);

/// A service REST call signed by the `iothubowner` policy, with `If-Match` when given.
async fn call(
    emulator: &Emulator,
    method: &str,
    path: &str,
    if_match: Option<&str>,
    body: Value,
) -> HttpsResponse {
    let headers: Vec<(&str, &str)> = if_match
        .map(|etag| ("If-Match", etag))
        .into_iter()
        .collect();
    hub_rest(emulator, method, path, &headers, body).await
}

fn module_username(device_id: &str, module_id: &str) -> String {
    format!(
        "localhost/{device_id}/{module_id}/?api-version=2021-04-12&DeviceClientType=iotemu-tests"
    )
}

fn module_token(device_id: &str, module_id: &str, key: &str) -> String {
    use base64::Engine as _;
    let key = base64::engine::general_purpose::STANDARD
        .decode(key)
        .unwrap();
    build_token(
        &format!("localhost/devices/{device_id}/modules/{module_id}"),
        &key,
        None,
        seconds_from_now(600),
    )
}

async fn connect_module(
    emulator: &Emulator,
    device_id: &str,
    module_id: &str,
    key: &str,
) -> (RawClient, ConnectReturnCode) {
    let mut client = RawClient::connect(emulator).await;
    let code = client
        .mqtt_connect(
            &format!("{device_id}/{module_id}"),
            &module_username(device_id, module_id),
            &module_token(device_id, module_id, key),
        )
        .await;
    (client, code)
}

async fn subscribe(client: &mut RawClient, filter: &str) -> Packet {
    let mut subscribe = Subscribe::new(filter, QoS::AtLeastOnce);
    subscribe.pkid = 1;
    client.send(Packet::Subscribe(subscribe)).await;
    client.recv(WAIT).await.unwrap()
}

/// The next PUBLISH from the hub, acknowledged if QoS 1.
async fn next_publish(client: &mut RawClient) -> Publish {
    loop {
        match client.recv(WAIT).await.expect("a publish") {
            Packet::Publish(p) => {
                if p.qos == QoS::AtLeastOnce {
                    client.send(Packet::PubAck(PubAck::new(p.pkid))).await;
                }
                return p;
            }
            _ => continue,
        }
    }
}

#[tokio::test]
async fn modules_are_created_read_updated_and_deleted_over_rest() {
    let emulator = start_emulator(None).await;
    let missing = call(
        &emulator,
        "PUT",
        "/devices/nobody/modules/m1",
        None,
        json!({"moduleId": "m1"}),
    )
    .await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.header("iothub-errorcode"), Some("DeviceNotFound"));

    assert_eq!(
        call(
            &emulator,
            "PUT",
            "/devices/edge-1",
            None,
            json!({"deviceId": "edge-1"})
        )
        .await
        .status,
        200
    );
    let created = call(
        &emulator,
        "PUT",
        "/devices/edge-1/modules/m1",
        None,
        json!({"moduleId": "m1", "deviceId": "edge-1", "managedBy": "tests"}),
    )
    .await;
    assert_eq!(created.status, 201);
    let created = created.json();
    assert_eq!(created["moduleId"], "m1");
    assert_eq!(created["deviceId"], "edge-1");
    assert_eq!(created["managedBy"], "tests");
    assert_eq!(created["authentication"]["type"], "sas");
    assert!(created["authentication"]["symmetricKey"]["primaryKey"].is_string());

    let again = call(
        &emulator,
        "PUT",
        "/devices/edge-1/modules/m1",
        None,
        json!({}),
    )
    .await;
    assert_eq!(again.status, 409);
    assert_eq!(
        again.header("iothub-errorcode"),
        Some("ModuleAlreadyExistsOnDevice")
    );
    let stale = call(
        &emulator,
        "PUT",
        "/devices/edge-1/modules/m1",
        Some("\"stale\""),
        json!({}),
    )
    .await;
    assert_eq!(stale.status, 412);

    let etag = format!("\"{}\"", created["etag"].as_str().unwrap());
    let updated = call(
        &emulator,
        "PUT",
        "/devices/edge-1/modules/m1",
        Some(&etag),
        json!({"managedBy": "someone"}),
    )
    .await;
    assert_eq!(updated.status, 200);
    assert_eq!(updated.json()["managedBy"], "someone");
    assert_eq!(
        updated.json()["authentication"]["symmetricKey"]["primaryKey"],
        created["authentication"]["symmetricKey"]["primaryKey"],
        "keys survive an update that leaves them out"
    );

    call(
        &emulator,
        "PUT",
        "/devices/edge-1/modules/m0",
        None,
        json!({}),
    )
    .await;
    let list = call(
        &emulator,
        "GET",
        "/devices/edge-1/modules",
        None,
        Value::Null,
    )
    .await;
    assert_eq!(list.status, 200);
    let ids: Vec<Value> = list
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["moduleId"].clone())
        .collect();
    assert_eq!(ids, [json!("m0"), json!("m1")]);
    assert_eq!(
        call(
            &emulator,
            "GET",
            "/devices/nobody/modules",
            None,
            Value::Null
        )
        .await
        .status,
        404
    );

    let twin = call(
        &emulator,
        "GET",
        "/twins/edge-1/modules/m1",
        None,
        Value::Null,
    )
    .await;
    assert_eq!(twin.status, 200);
    assert_eq!(twin.json()["moduleId"], "m1");
    assert_eq!(twin.json()["deviceId"], "edge-1");

    assert_eq!(
        call(
            &emulator,
            "DELETE",
            "/devices/edge-1/modules/m1",
            None,
            Value::Null
        )
        .await
        .status,
        204
    );
    let gone = call(
        &emulator,
        "GET",
        "/devices/edge-1/modules/m1",
        None,
        Value::Null,
    )
    .await;
    assert_eq!(gone.status, 404);
    assert_eq!(gone.header("iothub-errorcode"), Some("ModuleNotFound"));

    // A module goes with its device.
    assert_eq!(
        call(&emulator, "DELETE", "/devices/edge-1", None, Value::Null)
            .await
            .status,
        204
    );
    assert!(emulator.default_hub().module("edge-1", "m0").is_none());
}

#[tokio::test]
async fn a_module_connects_with_its_own_key_and_sends_telemetry_and_outputs() {
    let emulator = start_emulator(None).await;
    let key = create_sas_module(&emulator, "dev-m", "filter");
    let device_key = emulator.default_hub().device("dev-m").unwrap().sas_keys()[0].to_base64();

    let (_, code) = connect_module(&emulator, "dev-m", "filter", &device_key).await;
    assert_eq!(
        code,
        ConnectReturnCode::NotAuthorized,
        "the device key is not the module's"
    );
    let (_, code) = connect_module(&emulator, "dev-m", "nobody", &key).await;
    assert_eq!(code, ConnectReturnCode::NotAuthorized, "unknown module");
    let mut wrong_id = RawClient::connect(&emulator).await;
    let code = wrong_id
        .mqtt_connect(
            "dev-m",
            &module_username("dev-m", "filter"),
            &module_token("dev-m", "filter", &key),
        )
        .await;
    assert_eq!(
        code,
        ConnectReturnCode::BadUserNamePassword,
        "client id must be device/module"
    );

    let (mut module, code) = connect_module(&emulator, "dev-m", "filter", &key).await;
    assert_eq!(code, ConnectReturnCode::Success);
    assert!(
        emulator
            .default_hub()
            .connections()
            .is_connected("dev-m/filter")
    );
    assert!(!emulator.default_hub().connections().is_connected("dev-m"));

    // As the Node SDK's sendOutputEvent sends it: a `/` after the property bag.
    let mut publish = Publish::new(
        "devices/dev-m/modules/filter/messages/events/%24.on=alerts&level=high/",
        QoS::AtLeastOnce,
        b"too hot".to_vec(),
    );
    publish.pkid = 7;
    module.send(Packet::Publish(publish)).await;
    assert_eq!(
        module.recv(WAIT).await.unwrap(),
        Packet::PubAck(PubAck::new(7))
    );
    let stored = emulator.default_hub().telemetry().messages(Some("dev-m"));
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].module_id.as_deref(), Some("filter"));
    assert_eq!(stored[0].system.output_name.as_deref(), Some("alerts"));
    assert_eq!(
        stored[0].properties.get("level").map(String::as_str),
        Some("high")
    );

    // A module may not speak for its device.
    module
        .send(Packet::Publish(Publish::new(
            "devices/dev-m/messages/events/",
            QoS::AtMostOnce,
            b"x".to_vec(),
        )))
        .await;
    module.expect_closed().await;
}

#[tokio::test]
async fn module_twins_and_methods_are_the_modules_own() {
    let emulator = start_emulator(None).await;
    let key = create_sas_module(&emulator, "dev-t", "m");
    let hub = emulator.default_hub().clone();
    let (mut module, code) = connect_module(&emulator, "dev-t", "m", &key).await;
    assert_eq!(code, ConnectReturnCode::Success);
    assert!(matches!(
        subscribe(&mut module, "$iothub/twin/res/#").await,
        Packet::SubAck(_)
    ));
    assert!(matches!(
        subscribe(&mut module, "$iothub/twin/PATCH/properties/desired/#").await,
        Packet::SubAck(_)
    ));
    assert!(matches!(
        subscribe(&mut module, "$iothub/methods/POST/#").await,
        Packet::SubAck(_)
    ));

    module
        .send(Packet::Publish(Publish::new(
            "$iothub/twin/PATCH/properties/reported/?$rid=1",
            QoS::AtMostOnce,
            br#"{"threshold": 30}"#.to_vec(),
        )))
        .await;
    let response = next_publish(&mut module).await;
    assert_eq!(response.topic, "$iothub/twin/res/204/?$rid=1&$version=2");
    assert_eq!(
        hub.module_twin("dev-t", "m").unwrap().reported["threshold"],
        30
    );
    assert!(
        hub.device_twin("dev-t").unwrap().reported.is_empty(),
        "the device twin is separate"
    );

    let patched = call(
        &emulator,
        "PATCH",
        "/twins/dev-t/modules/m",
        Some("*"),
        json!({"properties": {"desired": {"mode": "fast"}}}),
    )
    .await;
    assert_eq!(patched.status, 200);
    assert_eq!(patched.json()["moduleId"], "m");
    let desired = next_publish(&mut module).await;
    assert_eq!(
        desired.topic,
        "$iothub/twin/PATCH/properties/desired/?$version=2"
    );
    let body: Value = serde_json::from_slice(&desired.payload).unwrap();
    assert_eq!(body, json!({"mode": "fast", "$version": 2}));

    module
        .send(Packet::Publish(Publish::new(
            "$iothub/twin/GET/?$rid=2",
            QoS::AtMostOnce,
            b" ".to_vec(),
        )))
        .await;
    let got = next_publish(&mut module).await;
    assert_eq!(got.topic, "$iothub/twin/res/200/?$rid=2");
    let twin: Value = serde_json::from_slice(&got.payload).unwrap();
    assert_eq!(twin["desired"]["mode"], "fast");
    assert_eq!(twin["reported"]["threshold"], 30);

    let invoke = {
        let emulator_hub = hub.clone();
        tokio::spawn(async move {
            emulator_hub
                .invoke_method_on(
                    IdentityRef::module("dev-t", "m"),
                    "reset",
                    json!({"hard": true}),
                    WAIT,
                    Duration::ZERO,
                )
                .await
        })
    };
    let request = next_publish(&mut module).await;
    assert!(
        request
            .topic
            .starts_with("$iothub/methods/POST/reset/?$rid="),
        "{}",
        request.topic
    );
    let rid = request.topic.rsplit('=').next().unwrap().to_owned();
    module
        .send(Packet::Publish(Publish::new(
            format!("$iothub/methods/res/200/?$rid={rid}"),
            QoS::AtMostOnce,
            br#"{"ok":1}"#.to_vec(),
        )))
        .await;
    let answer = invoke.await.unwrap().unwrap();
    assert_eq!((answer.status, answer.payload), (200, json!({"ok": 1})));

    // The REST route reaches the module too; the device itself is offline.
    let offline = call(
        &emulator,
        "POST",
        "/twins/dev-t/methods",
        None,
        json!({"methodName": "reset", "responseTimeoutInSeconds": 5}),
    )
    .await;
    assert_eq!(offline.status, 404);
    let unknown = call(
        &emulator,
        "POST",
        "/twins/dev-t/modules/other/methods",
        None,
        json!({"methodName": "reset"}),
    )
    .await;
    assert_eq!(unknown.header("iothub-errorcode"), Some("ModuleNotFound"));
}

#[tokio::test]
async fn input_messages_reach_a_subscribed_module() {
    let emulator = start_emulator(None).await;
    let key = create_sas_module(&emulator, "dev-i", "sink");
    let hub = emulator.default_hub().clone();
    let offline = hub
        .send_module_input("dev-i", "sink", "in1", C2dMessage::new("x"))
        .await;
    assert_eq!(offline.unwrap_err().code, 404103);

    let (mut module, _) = connect_module(&emulator, "dev-i", "sink", &key).await;
    let unsubscribed = hub
        .send_module_input("dev-i", "sink", "in1", C2dMessage::new("x"))
        .await;
    assert_eq!(
        unsubscribed.unwrap_err().code,
        404103,
        "not subscribed to inputs"
    );
    assert!(matches!(
        subscribe(&mut module, "devices/dev-i/modules/sink/inputs/#").await,
        Packet::SubAck(_)
    ));

    let mut message = C2dMessage::new(&b"{\"t\":21}"[..]);
    message.message_id = Some("in-1".into());
    message.content_type = Some("application/json".into());
    message.properties.insert("source".into(), "a/b c".into());
    let sender = {
        let hub = hub.clone();
        tokio::spawn(async move {
            hub.send_module_input("dev-i", "sink", "telemetryIn", message)
                .await
        })
    };
    let input = next_publish(&mut module).await;
    assert_eq!(sender.await.unwrap().unwrap(), "in-1");
    let parts: Vec<&str> = input.topic.split('/').collect();
    // The SDKs read the input name from segment 5 and the properties from segment 6.
    assert_eq!(
        parts[..6],
        [
            "devices",
            "dev-i",
            "modules",
            "sink",
            "inputs",
            "telemetryIn"
        ]
    );
    assert_eq!(
        parts.len(),
        7,
        "values with '/' are encoded: {}",
        input.topic
    );
    assert!(parts[6].contains("%24.mid=in-1"), "{}", input.topic);
    assert!(parts[6].contains("source=a%2Fb%20c"), "{}", input.topic);
    assert_eq!(&input.payload[..], b"{\"t\":21}");

    for bad in ["", "a/b", "#"] {
        let refused = hub
            .send_module_input("dev-i", "sink", bad, C2dMessage::new("x"))
            .await;
        assert_eq!(refused.unwrap_err().code, 400004, "{bad:?}");
    }
}

#[tokio::test]
async fn disabling_the_device_drops_and_refuses_its_modules() {
    let emulator = start_emulator(None).await;
    let key = create_sas_module(&emulator, "dev-d", "m");
    let (mut module, code) = connect_module(&emulator, "dev-d", "m", &key).await;
    assert_eq!(code, ConnectReturnCode::Success);
    let device = call(&emulator, "GET", "/devices/dev-d", None, Value::Null)
        .await
        .json();
    let mut disabled = device.clone();
    disabled["status"] = json!("disabled");
    let etag = format!("\"{}\"", device["etag"].as_str().unwrap());
    assert_eq!(
        call(&emulator, "PUT", "/devices/dev-d", Some(&etag), disabled)
            .await
            .status,
        200
    );
    module.expect_closed().await;
    let (_, code) = connect_module(&emulator, "dev-d", "m", &key).await;
    assert_eq!(
        code,
        ConnectReturnCode::ServiceUnavailable,
        "CONNACK 3 while the device is disabled"
    );
}

#[tokio::test]
async fn ca_signed_modules_need_the_device_slash_module_common_name() {
    const DAYS: u32 = 30;
    let root = certs::root_ca("Module Root", DAYS).unwrap();
    let root_ca = root.to_ca().unwrap();
    let good = certs::issue_module(&root_ca, "dev-x", "camod", DAYS).unwrap();
    let device_cert = certs::issue_device(&root_ca, "dev-x", DAYS).unwrap();
    let emulator = Emulator::builder().start().await.unwrap();
    let hub = emulator.default_hub();
    hub.certificates()
        .upload("module-root", &root.cert_pem, true)
        .wait_stored()
        .unwrap();
    hub.provision_device_with(
        "dev-x",
        DeviceAuthentication::CertificateAuthority {
            provisioning_anchors: vec![],
        },
        None,
    )
    .wait_stored()
    .expect("provision");
    let module = ModuleSpec::from_json(
        "dev-x",
        "camod",
        br#"{"authentication":{"type":"certificateAuthority"}}"#,
    )
    .unwrap();
    hub.create_module(module).wait_stored().unwrap();

    let connect = |cert: &certs::GeneratedCert| {
        let (chain, key) = (cert.full_chain_der().to_vec(), cert.private_key_der());
        let emulator = &emulator;
        async move {
            let mut client = RawClient::connect_with_certificate(emulator, chain, key).await;
            client
                .mqtt_connect("dev-x/camod", &module_username("dev-x", "camod"), "")
                .await
        }
    };
    assert_eq!(connect(&good).await, ConnectReturnCode::Success);
    assert_eq!(
        connect(&device_cert).await,
        ConnectReturnCode::NotAuthorized,
        "the device's own certificate (CN = device id) is not the module's"
    );
}
