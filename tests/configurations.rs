//! Automatic device configurations over the service REST API (docs/configurations.md): content
//! written into the twins a target condition selects, priorities, re-targeting when tags
//! change, removal on delete, system and custom metrics, `configurations.[[id]].status` in
//! queries, ETags, and the refusals.

use std::time::Duration;

use iotemu_e2e::*;
use serde_json::{Value, json};

/// `f` once it returns `Some`, polling (a guard against a hang, not a timing assertion).
async fn eventually<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    within(what, async {
        loop {
            if let Some(value) = f().await {
                return value;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

fn desired(emulator: &iotemu::Emulator, device: &str) -> Value {
    Value::Object(
        emulator
            .default_hub()
            .device_twin(device)
            .unwrap()
            .desired
            .clone(),
    )
}

async fn set_tags(emulator: &iotemu::Emulator, device: &str, tags: Value) {
    let patched = hub_rest(
        emulator,
        "PATCH",
        &format!("/twins/{device}"),
        &[],
        json!({ "tags": tags }),
    )
    .await;
    assert_eq!(
        patched.status,
        200,
        "{}",
        String::from_utf8_lossy(&patched.body)
    );
}

async fn put(emulator: &iotemu::Emulator, body: Value, if_match: Option<&str>) -> HttpsResponse {
    let id = body["id"].as_str().unwrap().to_owned();
    let headers: Vec<(&str, &str)> = if_match.map(|m| vec![("If-Match", m)]).unwrap_or_default();
    hub_rest(
        emulator,
        "PUT",
        &format!("/configurations/{id}"),
        &headers,
        body,
    )
    .await
}

#[tokio::test]
async fn configurations_apply_by_target_and_priority_and_let_go_when_deleted() {
    let emulator = start_emulator(None).await;
    for (id, env) in [("chiller-1", "prod"), ("chiller-2", "test")] {
        let _ = quickstart_device(&emulator, id, None);
        set_tags(&emulator, id, json!({ "environment": env })).await;
    }
    let created = put(
        &emulator,
        json!({
            "id": "chiller-settings",
            "content": {"deviceContent": {"properties.desired.chiller-water": {"temperature": 66, "pressure": 28}}},
            "targetCondition": "tags.environment='prod'",
            "priority": 20,
            "labels": {"team": "hvac"},
            "metrics": {"queries": {"pending": "SELECT deviceId FROM devices WHERE properties.reported.chillerWaterSettings.status='pending'"}},
        }),
        None,
    )
    .await;
    assert_eq!(
        created.status,
        200,
        "{}",
        String::from_utf8_lossy(&created.body)
    );
    let created = created.json();
    assert_eq!(created["etag"], "MQ==");
    assert_eq!(
        created["systemMetrics"]["queries"]["targetedCount"],
        "select deviceId from devices where tags.environment='prod'"
    );

    // The prod device gets the content; the test device does not.
    eventually("chiller-1 configured", async || {
        (desired(&emulator, "chiller-1")["chiller-water"]["temperature"] == 66).then_some(())
    })
    .await;
    assert!(
        desired(&emulator, "chiller-2")
            .get("chiller-water")
            .is_none()
    );
    let read = hub_rest(
        &emulator,
        "GET",
        "/configurations/chiller-settings",
        &[],
        Value::Null,
    )
    .await
    .json();
    assert_eq!(
        read["systemMetrics"]["results"],
        json!({"appliedCount": 1, "targetedCount": 1})
    );
    assert_eq!(read["metrics"]["results"], json!({"pending": 0}));
    let applied = hub_rest(
        &emulator,
        "POST",
        "/devices/query",
        &[],
        json!({"query": "SELECT deviceId FROM devices WHERE configurations.[[chiller-settings]].status = 'Applied'"}),
    )
    .await;
    assert_eq!(applied.json(), json!([{"deviceId": "chiller-1"}]));

    // A tag change moves the second device into the target.
    set_tags(&emulator, "chiller-2", json!({ "environment": "prod" })).await;
    eventually("chiller-2 configured", async || {
        (desired(&emulator, "chiller-2")["chiller-water"]["pressure"] == 28).then_some(())
    })
    .await;

    // A higher priority for the same path wins everywhere it targets.
    let urgent = put(
        &emulator,
        json!({"id": "urgent", "content": {"deviceContent": {"properties.desired.chiller-water.temperature": 50}},
               "targetCondition": "*", "priority": 30}),
        None,
    )
    .await;
    assert_eq!(urgent.status, 200);
    eventually("urgent applied", async || {
        let (one, two) = (
            desired(&emulator, "chiller-1"),
            desired(&emulator, "chiller-2"),
        );
        (one["chiller-water"]["temperature"] == 50 && two["chiller-water"]["temperature"] == 50)
            .then_some(())
    })
    .await;
    let read = hub_rest(
        &emulator,
        "GET",
        "/configurations/chiller-settings",
        &[],
        Value::Null,
    )
    .await
    .json();
    assert_eq!(
        read["systemMetrics"]["results"]["appliedCount"], 0,
        "the lower priority holds no path now"
    );

    // Deleted: its values go and the next configuration's come back.
    let deleted = hub_rest(
        &emulator,
        "DELETE",
        "/configurations/urgent",
        &[],
        Value::Null,
    )
    .await;
    assert_eq!(deleted.status, 204);
    eventually("chiller-settings back", async || {
        (desired(&emulator, "chiller-1")["chiller-water"]
            == json!({"temperature": 66, "pressure": 28}))
        .then_some(())
    })
    .await;

    // Leaving the target removes what the configuration wrote.
    set_tags(&emulator, "chiller-1", json!({ "environment": "test" })).await;
    eventually("chiller-1 released", async || {
        desired(&emulator, "chiller-1")
            .get("chiller-water")
            .is_none()
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn updates_need_the_etag_and_keep_the_content() {
    let emulator = start_emulator(None).await;
    let body = json!({"id": "c1", "content": {"deviceContent": {"properties.desired.x": 1}}, "targetCondition": "", "priority": 1});
    assert_eq!(put(&emulator, body.clone(), None).await.status, 200);

    let mut update = body.clone();
    update["priority"] = json!(5);
    update["labels"] = json!({"stage": "two"});
    assert_eq!(
        put(&emulator, update.clone(), Some("\"bm8=\""))
            .await
            .status,
        412
    );
    let updated = put(&emulator, update.clone(), Some("\"MQ==\"")).await;
    assert_eq!(
        updated.status,
        200,
        "{}",
        String::from_utf8_lossy(&updated.body)
    );
    let updated = updated.json();
    assert_eq!(
        (updated["priority"].clone(), updated["etag"].clone()),
        (json!(5), json!("Mg=="))
    );
    assert_eq!(updated["systemMetrics"]["queries"]["targetedCount"], "");
    let mut forced = update.clone();
    forced["priority"] = json!(6);
    assert_eq!(put(&emulator, forced, Some("*")).await.status, 200);

    let mut changed = update;
    changed["content"] = json!({"deviceContent": {"properties.desired.x": 2}});
    assert_eq!(
        put(&emulator, changed, None).await.status,
        400,
        "content is fixed"
    );

    for bad in [
        json!({"id": "Upper", "content": {}}),
        json!({"id": "c2", "content": {"deviceContent": {"properties.reported.x": 1}}}),
        json!({"id": "c3", "targetCondition": "tags.x ="}),
        json!({"id": "c4", "priority": "high"}),
        json!({"id": "c5", "content": {"modulesContent": {"$edgeAgent": {}}}}),
    ] {
        let refused = put(&emulator, bad.clone(), None).await;
        assert!(
            matches!(refused.status, 400 | 501),
            "{bad}: {}",
            refused.status
        );
    }
    let listed = hub_rest(&emulator, "GET", "/configurations?top=10", &[], Value::Null)
        .await
        .json();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(
        hub_rest(&emulator, "GET", "/configurations/nope", &[], Value::Null)
            .await
            .status,
        404
    );
    assert_eq!(
        hub_rest(
            &emulator,
            "DELETE",
            "/configurations/c1",
            &[("If-Match", "\"MQ==\"")],
            Value::Null
        )
        .await
        .status,
        412
    );
    assert_eq!(
        hub_rest(&emulator, "DELETE", "/configurations/c1", &[], Value::Null)
            .await
            .status,
        204
    );

    let tested = hub_rest(
        &emulator,
        "POST",
        "/configurations/testQueries",
        &[],
        json!({"targetCondition": "tags.a = ", "customMetricQueries": {"ok": "SELECT deviceId FROM devices", "bad": "SELECT"}}),
    )
    .await
    .json();
    assert!(
        tested["targetConditionError"]
            .as_str()
            .unwrap()
            .contains("Syntax error")
    );
    assert_eq!(tested["customMetricQueryErrors"]["ok"], "");
    assert_ne!(tested["customMetricQueryErrors"]["bad"], "");
}

#[tokio::test]
async fn configuration_content_goes_onto_edge_module_twins() {
    let emulator = start_emulator(None).await;
    let _ = quickstart_device(&emulator, "edge-1", None);
    // iotemu has no IoT Edge runtime modules ($edgeAgent, $edgeHub): a custom module stands in.
    let module = hub_rest(
        &emulator,
        "PUT",
        "/devices/edge-1/modules/sensor",
        &[],
        json!({"deviceId": "edge-1", "moduleId": "sensor"}),
    )
    .await;
    assert_eq!(
        module.status,
        201,
        "{}",
        String::from_utf8_lossy(&module.body)
    );
    let content = json!({"modulesContent": {"sensor": {"properties.desired": {"schemaVersion": "1.1", "runtime": {"type": "docker"}}}}});
    let applied = hub_rest(
        &emulator,
        "POST",
        "/devices/edge-1/applyConfigurationContent",
        &[],
        content.clone(),
    )
    .await;
    assert_eq!(
        applied.status,
        204,
        "{}",
        String::from_utf8_lossy(&applied.body)
    );
    let twin = hub_rest(
        &emulator,
        "GET",
        "/twins/edge-1/modules/sensor",
        &[],
        Value::Null,
    )
    .await
    .json();
    assert_eq!(twin["properties"]["desired"]["runtime"]["type"], "docker");
    let missing = json!({"modulesContent": {"$edgeHub": {"properties.desired": {}}}});
    assert_eq!(
        hub_rest(
            &emulator,
            "POST",
            "/devices/edge-1/applyConfigurationContent",
            &[],
            missing
        )
        .await
        .status,
        404
    );
}

#[tokio::test]
async fn what_a_configuration_wrote_is_remembered_across_a_restart() {
    let dir = std::env::temp_dir().join(format!("iotemu-configurations-{}", uuid::Uuid::new_v4()));
    let emulator = start_on_data_dir(&dir).await;
    let _ = quickstart_device(&emulator, "kept", None);
    let created = put(
        &emulator,
        json!({"id": "kept-config", "content": {"deviceContent": {"properties.desired.mode": "eco"}}, "targetCondition": "*"}),
        None,
    )
    .await;
    assert_eq!(created.status, 200);
    eventually("configured", async || {
        (desired(&emulator, "kept")["mode"] == "eco").then_some(())
    })
    .await;
    emulator.shutdown().await;

    let emulator = start_on_data_dir(&dir).await;
    assert_eq!(
        hub_rest(
            &emulator,
            "GET",
            "/configurations/kept-config",
            &[],
            Value::Null
        )
        .await
        .json()["etag"],
        "MQ=="
    );
    // Deleted after the restart, it still takes back what it wrote before.
    let deleted = hub_rest(
        &emulator,
        "DELETE",
        "/configurations/kept-config",
        &[],
        Value::Null,
    )
    .await;
    assert_eq!(deleted.status, 204);
    eventually("released", async || {
        desired(&emulator, "kept")
            .get("mode")
            .is_none()
            .then_some(())
    })
    .await;
    emulator.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
