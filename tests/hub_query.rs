//! Twin queries over the hub service REST API (`POST /devices/query`, protocol.md §9.1; issue
//! #6 item 7): the query language over HTTPS, paging with `x-ms-max-item-count` and
//! `x-ms-continuation`, COUNT, rights, and Azure's error shape for queries iotemu cannot run.

use iotemu::DeviceStatus;
use iotemu::Emulator;
use iotemu::SymmetricKey;
use iotemu_e2e::*;
use serde_json::{Value, json};

const SERVICE_KEY: &str = "5rig9dR3TugO6rC8NB2RBSHNpI6/yXXMwj9dck7tfY0=";
const REGISTRY_READ_KEY: &str = "+LBbfU4e7af2Y2I1VL74SgieV6ZDOXMC7lJKLqDSiQw=";
const DEVICE_POLICY_KEY: &str = "DnLP7U4Hm89m+OXGdR0tm0GnouaNz5TY+ZvYqu4K+bE=";

/// `POST /devices/query` as the service SDKs send it, signed with `policy`.
async fn query_as(
    emulator: &Emulator,
    (policy, key): (&str, &str),
    query: &str,
    paging: &[(&str, &str)],
) -> HttpsResponse {
    let auth = hub_policy_token(policy, key);
    let mut headers = vec![
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json; charset=utf-8"),
    ];
    headers.extend_from_slice(paging);
    https_request(
        emulator,
        None,
        "POST",
        "/devices/query?api-version=2021-04-12",
        &headers,
        json!({ "query": query }).to_string().as_bytes(),
    )
    .await
}

async fn query(emulator: &Emulator, text: &str, paging: &[(&str, &str)]) -> HttpsResponse {
    query_as(emulator, ("service", SERVICE_KEY), text, paging).await
}

/// Five devices: `site-0` … `site-4`, tagged with a region (US for even numbers), desired
/// `interval` = the number, and `site-3` disabled.
async fn fleet() -> Emulator {
    let emulator = start_emulator(None).await;
    let hub = emulator.default_hub();
    let key = SymmetricKey::from_base64(QUICKSTART_KEY).unwrap();
    for n in 0..5 {
        let region = if n % 2 == 0 { "US" } else { "EU" };
        let initial = json!({
            "tags": { "location": { "region": region } },
            "properties": { "desired": { "interval": n } },
        });
        hub.provision_device(
            &format!("site-{n}"),
            key.clone(),
            key.clone(),
            Some(initial),
        );
    }
    hub.set_device_status("site-3", DeviceStatus::Disabled);
    emulator
}

fn ids(items: &Value) -> Vec<String> {
    items
        .as_array()
        .expect("an array")
        .iter()
        .map(|t| t["deviceId"].as_str().unwrap_or("?").to_owned())
        .collect()
}

#[tokio::test]
async fn where_filters_twins_and_pages_follow_the_continuation() {
    let emulator = fleet().await;
    let text = "SELECT * FROM devices WHERE tags.location.region = 'US' AND properties.desired.interval >= 0";
    let first = query(&emulator, text, &[("x-ms-max-item-count", "2")]).await;
    assert_eq!(
        first.status,
        200,
        "{}",
        String::from_utf8_lossy(&first.body)
    );
    assert_eq!(first.header("x-ms-item-type"), Some("twin"));
    let first_items = first.json();
    assert_eq!(ids(&first_items), ["site-0", "site-2"]);
    // Each item is the twin as GET /twins/{id} shows it.
    assert_eq!(first_items[0]["tags"]["location"]["region"], "US");
    assert_eq!(first_items[1]["properties"]["desired"]["interval"], 2);
    let token = first
        .header("x-ms-continuation")
        .expect("a continuation token")
        .to_owned();
    let second = query(
        &emulator,
        text,
        &[("x-ms-max-item-count", "2"), ("x-ms-continuation", &token)],
    )
    .await;
    assert_eq!(second.status, 200);
    assert_eq!(ids(&second.json()), ["site-4"]);
    assert_eq!(second.header("x-ms-continuation"), None, "last page");

    let disabled = query(
        &emulator,
        "select * from devices where status <> 'enabled'",
        &[],
    )
    .await;
    assert_eq!(ids(&disabled.json()), ["site-3"]);
    let none = query(
        &emulator,
        "SELECT * FROM devices WHERE IS_DEFINED(properties.reported.fw)",
        &[],
    )
    .await;
    assert_eq!(none.json(), json!([]));
}

#[tokio::test]
async fn count_answers_one_raw_row() {
    let emulator = fleet().await;
    let response = query(
        &emulator,
        "SELECT COUNT() AS numberOfDevices FROM devices WHERE tags.location.region = 'EU'",
        &[],
    )
    .await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("x-ms-item-type"), Some("raw"));
    assert_eq!(response.json(), json!([{ "numberOfDevices": 2 }]));
    let modules = query(&emulator, "SELECT COUNT() AS n FROM devices.modules", &[]).await;
    assert_eq!(modules.json(), json!([{ "n": 0 }]));
}

#[tokio::test]
async fn queries_iotemu_cannot_run_are_400_argument_invalid() {
    let emulator = fleet().await;
    for (text, reason) in [
        ("SELECT 1 FROM devices", "SELECT *"),
        ("SELECT * FROM devices WHERE tags.x = ", "Syntax error"),
        (
            "SELECT * FROM devices.configurations",
            "devices.configurations",
        ),
    ] {
        let response = query(&emulator, text, &[]).await;
        assert_eq!(response.status, 400, "{text}");
        assert_eq!(response.header("iothub-errorcode"), Some("ArgumentInvalid"));
        let message = response.json()["Message"].as_str().unwrap_or("").to_owned();
        assert!(
            message.starts_with("ErrorCode:ArgumentInvalid;") && message.contains(reason),
            "{text}: {message}"
        );
    }
    let foreign_token = query(
        &emulator,
        "SELECT * FROM devices",
        &[("x-ms-continuation", "not-ours")],
    )
    .await;
    assert_eq!(foreign_token.status, 400);
    let not_json = https_request(
        &emulator,
        None,
        "POST",
        "/devices/query?api-version=2021-04-12",
        &[("Authorization", &hub_policy_token("service", SERVICE_KEY))],
        b"SELECT * FROM devices",
    )
    .await;
    assert_eq!(not_json.status, 400);
}

#[tokio::test]
async fn service_connect_or_registry_read_may_query() {
    let emulator = fleet().await;
    let text = "SELECT * FROM devices WHERE deviceId IN ['site-1', 'site-9']";
    let registry_read = query_as(&emulator, ("registryRead", REGISTRY_READ_KEY), text, &[]).await;
    assert_eq!(registry_read.status, 200);
    assert_eq!(ids(&registry_read.json()), ["site-1"]);
    let device_policy = query_as(&emulator, ("device", DEVICE_POLICY_KEY), text, &[]).await;
    assert_eq!(device_policy.status, 401);
    assert_eq!(
        device_policy.header("iothub-errorcode"),
        Some("IotHubUnauthorizedAccess")
    );
}
