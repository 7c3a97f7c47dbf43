//! IoT Hub device registry over the service REST API (protocol.md §9.1, §9.2, §9.4): devices
//! created, read, updated with ETags and deleted over HTTPS, and the effect on the device's
//! MQTT connection — generated keys work, disabling or deleting drops it.

use std::time::Duration;

use iotemu::Emulator;
use iotemu::certs;
use iotemu::internals::mqtt::codec::{ConnectReturnCode, Packet};
use iotemu_e2e::*;
use serde_json::{Value, json};

const REGISTRY_READ_KEY: &str = "+LBbfU4e7af2Y2I1VL74SgieV6ZDOXMC7lJKLqDSiQw=";

fn sas_device(device_id: &str) -> Value {
    json!({
        "deviceId": device_id,
        "status": "enabled",
        "authentication": { "type": "sas", "symmetricKey": { "primaryKey": null, "secondaryKey": null } },
        "capabilities": { "iotEdge": false },
    })
}

/// Connects `device_id` over MQTT signing with `key`; returns the client and the CONNACK code.
async fn connect_sas(
    emulator: &Emulator,
    device_id: &str,
    key: &str,
) -> (RawClient, ConnectReturnCode) {
    let mut client = RawClient::connect(emulator).await;
    let sas = device_token("localhost", device_id, key, seconds_from_now(600));
    let code = client
        .mqtt_connect(device_id, &hub_username("localhost", device_id), &sas)
        .await;
    (client, code)
}

fn error_name(response: &HttpsResponse) -> Option<&str> {
    response.header("iothub-errorcode")
}

#[tokio::test]
async fn created_devices_get_generated_keys_that_connect() {
    let emulator = start_emulator(None).await;
    let created = hub_rest(
        &emulator,
        "PUT",
        "/devices/rest-dev-1",
        &[],
        sas_device("rest-dev-1"),
    )
    .await;
    assert_eq!(created.status, 200);
    let created = created.json();
    assert_eq!(created["deviceId"], "rest-dev-1");
    assert_eq!(created["status"], "enabled");
    assert_eq!(created["authentication"]["type"], "sas");
    let primary = created["authentication"]["symmetricKey"]["primaryKey"]
        .as_str()
        .unwrap()
        .to_owned();
    let secondary = created["authentication"]["symmetricKey"]["secondaryKey"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(primary, secondary);
    use base64::Engine as _;
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(&primary)
            .unwrap()
            .len(),
        32
    );

    let (mut client, code) = connect_sas(&emulator, "rest-dev-1", &primary).await;
    assert_eq!(code, ConnectReturnCode::Success);
    client.send(Packet::PingReq).await;
    assert_eq!(
        client.recv(Duration::from_secs(5)).await.unwrap(),
        Packet::PingResp
    );
    let (_second, code) = connect_sas(&emulator, "rest-dev-1", &secondary).await;
    assert_eq!(code, ConnectReturnCode::Success);

    let got = hub_rest(&emulator, "GET", "/devices/rest-dev-1", &[], Value::Null).await;
    assert_eq!(got.status, 200);
    let got = got.json();
    assert_eq!(got["etag"], created["etag"]);
    assert_eq!(got["connectionState"], "Connected");

    let again = hub_rest(
        &emulator,
        "PUT",
        "/devices/rest-dev-1",
        &[],
        sas_device("rest-dev-1"),
    )
    .await;
    assert_eq!(again.status, 409);
    assert_eq!(error_name(&again), Some("DeviceAlreadyExists"));
    assert!(
        again.json()["Message"]
            .as_str()
            .unwrap()
            .starts_with("ErrorCode:DeviceAlreadyExists;")
    );

    let listed = hub_rest(&emulator, "GET", "/devices?top=100", &[], Value::Null).await;
    assert_eq!(listed.status, 200);
    let listed = listed.json();
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["deviceId"].as_str())
        .collect();
    assert!(ids.contains(&"rest-dev-1"), "{ids:?}");
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ordered by id: {ids:?}"
    );
    let one = hub_rest(&emulator, "GET", "/devices?top=1", &[], Value::Null).await;
    assert_eq!(one.json().as_array().unwrap().len(), 1);

    let bad_id = hub_rest(
        &emulator,
        "PUT",
        "/devices/bad%20id",
        &[],
        sas_device("bad id"),
    )
    .await;
    assert_eq!(bad_id.status, 400);
    assert_eq!(error_name(&bad_id), Some("ArgumentInvalid"));
}

#[tokio::test]
async fn updates_need_the_current_etag_and_disabling_drops_the_device() {
    let emulator = start_emulator(None).await;
    let created = hub_rest(
        &emulator,
        "PUT",
        "/devices/rest-dev-2",
        &[],
        sas_device("rest-dev-2"),
    )
    .await
    .json();
    let etag = created["etag"].as_str().unwrap().to_owned();
    let key = created["authentication"]["symmetricKey"]["primaryKey"]
        .as_str()
        .unwrap()
        .to_owned();
    let (mut client, code) = connect_sas(&emulator, "rest-dev-2", &key).await;
    assert_eq!(code, ConnectReturnCode::Success);

    let mut disabled = created.clone();
    disabled["status"] = json!("disabled");
    let stale = hub_rest(
        &emulator,
        "PUT",
        "/devices/rest-dev-2",
        &[("If-Match", "\"AAAAAAAAAAE=\"")],
        disabled.clone(),
    )
    .await;
    assert_eq!(stale.status, 412);
    assert_eq!(error_name(&stale), Some("PreconditionFailed"));

    let quoted = format!("\"{etag}\"");
    let updated = hub_rest(
        &emulator,
        "PUT",
        "/devices/rest-dev-2",
        &[("If-Match", quoted.as_str())],
        disabled,
    )
    .await;
    assert_eq!(updated.status, 200);
    let updated = updated.json();
    assert_eq!(updated["status"], "disabled");
    assert_ne!(updated["etag"], created["etag"]);
    assert_eq!(updated["authentication"], created["authentication"]);
    client.expect_closed().await;

    let (_, code) = connect_sas(&emulator, "rest-dev-2", &key).await;
    assert_eq!(code, ConnectReturnCode::ServiceUnavailable);

    let mut enabled = updated.clone();
    enabled["status"] = json!("enabled");
    let reenabled = hub_rest(
        &emulator,
        "PUT",
        "/devices/rest-dev-2",
        &[("If-Match", "\"*\"")],
        enabled,
    )
    .await;
    assert_eq!(reenabled.status, 200);
    let (_, code) = connect_sas(&emulator, "rest-dev-2", &key).await;
    assert_eq!(code, ConnectReturnCode::Success);

    let absent = hub_rest(
        &emulator,
        "PUT",
        "/devices/nobody-here",
        &[("If-Match", "\"*\"")],
        sas_device("nobody-here"),
    )
    .await;
    assert_eq!(absent.status, 404);
    assert_eq!(error_name(&absent), Some("DeviceNotFound"));
}

#[tokio::test]
async fn deleting_drops_the_device_and_it_is_gone() {
    let emulator = start_emulator(None).await;
    let created = hub_rest(
        &emulator,
        "PUT",
        "/devices/rest-dev-3",
        &[],
        sas_device("rest-dev-3"),
    )
    .await
    .json();
    let key = created["authentication"]["symmetricKey"]["primaryKey"]
        .as_str()
        .unwrap()
        .to_owned();
    let (mut client, code) = connect_sas(&emulator, "rest-dev-3", &key).await;
    assert_eq!(code, ConnectReturnCode::Success);

    let stale = hub_rest(
        &emulator,
        "DELETE",
        "/devices/rest-dev-3",
        &[("If-Match", "\"stale\"")],
        Value::Null,
    )
    .await;
    assert_eq!(stale.status, 412);

    let deleted = hub_rest(
        &emulator,
        "DELETE",
        "/devices/rest-dev-3",
        &[("If-Match", "\"*\"")],
        Value::Null,
    )
    .await;
    assert_eq!(deleted.status, 204);
    client.expect_closed().await;

    let got = hub_rest(&emulator, "GET", "/devices/rest-dev-3", &[], Value::Null).await;
    assert_eq!(got.status, 404);
    assert_eq!(error_name(&got), Some("DeviceNotFound"));
    let again = hub_rest(&emulator, "DELETE", "/devices/rest-dev-3", &[], Value::Null).await;
    assert_eq!(again.status, 404);
    let (_, code) = connect_sas(&emulator, "rest-dev-3", &key).await;
    assert_eq!(code, ConnectReturnCode::NotAuthorized);
}

#[tokio::test]
async fn registry_read_can_read_but_not_write() {
    let emulator = start_emulator(None).await;
    let reader = ("registryRead", REGISTRY_READ_KEY);
    let refused = hub_rest_as(
        &emulator,
        reader,
        "PUT",
        "/devices/rest-dev-4",
        &[],
        sas_device("rest-dev-4"),
    )
    .await;
    assert_eq!(refused.status, 401);
    assert_eq!(error_name(&refused), Some("IotHubUnauthorizedAccess"));
    let refused = hub_rest_as(
        &emulator,
        reader,
        "DELETE",
        "/devices/python-device-008",
        &[],
        Value::Null,
    )
    .await;
    assert_eq!(refused.status, 401);

    assert_eq!(
        hub_rest(
            &emulator,
            "PUT",
            "/devices/rest-dev-4",
            &[],
            sas_device("rest-dev-4")
        )
        .await
        .status,
        200
    );
    let read = hub_rest_as(
        &emulator,
        reader,
        "GET",
        "/devices/rest-dev-4",
        &[],
        Value::Null,
    )
    .await;
    assert_eq!(read.status, 200);
    assert_eq!(read.json()["deviceId"], "rest-dev-4");
    let list = hub_rest_as(&emulator, reader, "GET", "/devices", &[], Value::Null).await;
    assert_eq!(list.status, 200);

    // Twins stay on ServiceConnect, which registryRead lacks.
    let twin = hub_rest_as(
        &emulator,
        reader,
        "GET",
        "/twins/rest-dev-4",
        &[],
        Value::Null,
    )
    .await;
    assert_eq!(twin.status, 401);
}

#[tokio::test]
async fn self_signed_devices_created_over_rest_connect_with_their_certificate() {
    let emulator = start_emulator(None).await;
    let cert = certs::self_signed_device("rest-x509-1", 30).unwrap();
    let other = certs::self_signed_device("rest-x509-1", 30).unwrap();
    let (sha1, _) = cert.thumbprints();
    let created = hub_rest(
        &emulator,
        "PUT",
        "/devices/rest-x509-1",
        &[],
        json!({
            "deviceId": "rest-x509-1",
            "status": "enabled",
            "authentication": { "type": "selfSigned",
                "x509Thumbprint": { "primaryThumbprint": sha1, "secondaryThumbprint": null } },
            "capabilities": { "iotEdge": false },
        }),
    )
    .await;
    assert_eq!(created.status, 200);
    assert_eq!(created.json()["authentication"]["type"], "selfSigned");

    let connect = |cert: &certs::GeneratedCert| {
        let chain = cert.full_chain_der().to_vec();
        let key = cert.private_key_der();
        let emulator = &emulator;
        async move {
            let mut client = RawClient::connect_with_certificate(emulator, chain, key).await;
            client
                .mqtt_connect("rest-x509-1", &hub_username("localhost", "rest-x509-1"), "")
                .await
        }
    };
    assert_eq!(connect(&cert).await, ConnectReturnCode::Success);
    assert_eq!(connect(&other).await, ConnectReturnCode::NotAuthorized);
}
