//! Device twins over MQTT (issue #6 item 1): GET, reported patches, desired patches pushed
//! to the connected device, with `$rid` and `$version` where the SDKs read them.

use iotemu::WaitStored;
use std::time::Duration;

use iotemu::internals::mqtt::codec::{Packet, PubAck, Publish, QoS};
use iotemu_e2e::*;
use serde_json::{Value, json};

/// A device with the twin `initial`, connected and subscribed to twin responses and desired
/// property updates.
async fn twin_device(
    emulator: &iotemu::Emulator,
    device_id: &str,
    initial: Option<Value>,
) -> RawClient {
    let filters = [
        "$iothub/twin/res/#",
        "$iothub/twin/PATCH/properties/desired/#",
    ];
    connected_hub_device(emulator, device_id, initial, &filters).await
}

/// Publishes `topic` and returns the next server publish (acknowledging it).
async fn request(client: &mut RawClient, topic: &str, body: &[u8]) -> Publish {
    client
        .send(Packet::Publish(Publish::new(
            topic,
            QoS::AtMostOnce,
            body.to_vec(),
        )))
        .await;
    next_publish(client).await
}

async fn next_publish(client: &mut RawClient) -> Publish {
    loop {
        match client
            .recv(Duration::from_secs(5))
            .await
            .expect("a publish")
        {
            Packet::Publish(p) => {
                client.send(Packet::PubAck(PubAck::new(p.pkid))).await;
                return p;
            }
            _ => continue,
        }
    }
}

#[tokio::test]
async fn get_and_reported_patch_follow_the_documented_topics() {
    let emulator = start_emulator(None).await;
    let initial =
        json!({ "tags": { "site": "a" }, "properties": { "desired": { "interval": 5 } } });
    let mut client = twin_device(&emulator, "twin-1", Some(initial)).await;

    let got = request(&mut client, "$iothub/twin/GET/?$rid=1", b" ").await;
    assert_eq!(got.topic, "$iothub/twin/res/200/?$rid=1");
    let twin: Value = serde_json::from_slice(&got.payload).unwrap();
    assert_eq!(
        twin,
        json!({ "desired": { "interval": 5, "$version": 1 }, "reported": { "$version": 1 } })
    );

    let patched = request(
        &mut client,
        "$iothub/twin/PATCH/properties/reported/?$rid=2",
        br#"{"fw":"1.0","temp":{"unit":"C"}}"#,
    )
    .await;
    assert_eq!(patched.topic, "$iothub/twin/res/204/?$rid=2&$version=2");
    assert!(patched.payload.is_empty());
    let deleted = request(
        &mut client,
        "$iothub/twin/PATCH/properties/reported/?$rid=3",
        br#"{"fw":null}"#,
    )
    .await;
    assert_eq!(deleted.topic, "$iothub/twin/res/204/?$rid=3&$version=3");

    let got = request(&mut client, "$iothub/twin/GET/?$rid=4", b"").await;
    let twin: Value = serde_json::from_slice(&got.payload).unwrap();
    assert_eq!(
        twin["reported"],
        json!({ "temp": { "unit": "C" }, "$version": 3 })
    );

    // Bad patches get 400 with an errorCode body and change nothing.
    for (rid, body) in [
        ("5", &b"{not json"[..]),
        ("6", br#"{"a.b":1}"#),
        ("7", b"[1]"),
    ] {
        let refused = request(
            &mut client,
            &format!("$iothub/twin/PATCH/properties/reported/?$rid={rid}"),
            body,
        )
        .await;
        assert_eq!(refused.topic, format!("$iothub/twin/res/400/?$rid={rid}"));
        let error: Value = serde_json::from_slice(&refused.payload).unwrap();
        assert_eq!(error["errorCode"], 400004);
    }
    assert_eq!(
        emulator
            .default_hub()
            .device_twin("twin-1")
            .unwrap()
            .reported_version,
        3
    );
}

#[tokio::test]
async fn desired_changes_are_pushed_with_their_version() {
    let emulator = start_emulator(None).await;
    let mut client = twin_device(&emulator, "twin-2", None).await;
    let hub = emulator.default_hub();
    let view = hub
        .update_twin(
            "twin-2",
            &json!({ "tags": { "floor": 3 }, "properties": { "desired": { "mode": "eco" } } }),
            None,
            false,
        )
        .wait_stored()
        .unwrap();
    assert_eq!(view["properties"]["desired"]["$version"], 2);
    let pushed = next_publish(&mut client).await;
    assert_eq!(
        pushed.topic,
        "$iothub/twin/PATCH/properties/desired/?$version=2"
    );
    let patch: Value = serde_json::from_slice(&pushed.payload).unwrap();
    assert_eq!(patch, json!({ "mode": "eco", "$version": 2 }));

    // A stale If-Match is refused and nothing is pushed; the current ETag works.
    let etag = view["etag"].as_str().unwrap().to_owned();
    let stale = hub
        .update_twin(
            "twin-2",
            &json!({ "properties": { "desired": { "mode": "x" } } }),
            Some("\"stale\""),
            false,
        )
        .wait_stored();
    assert_eq!(stale.unwrap_err().code, 412001);
    hub.update_twin(
        "twin-2",
        &json!({ "properties": { "desired": { "mode": null } } }),
        Some(&format!("\"{etag}\"")),
        false,
    )
    .wait_stored()
    .unwrap();
    let pushed = next_publish(&mut client).await;
    assert_eq!(
        serde_json::from_slice::<Value>(&pushed.payload).unwrap(),
        json!({ "mode": null, "$version": 3 })
    );
    // Devices never see tags.
    let got = request(&mut client, "$iothub/twin/GET/?$rid=9", b" ").await;
    assert!(!String::from_utf8_lossy(&got.payload).contains("floor"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_desired_patches_all_land_and_reach_the_device_in_version_order() {
    let emulator = start_emulator(None).await;
    let mut client = twin_device(&emulator, "twin-race", None).await;
    let hub = emulator.default_hub().clone();
    const WRITERS: u64 = 24;
    let writers: Vec<_> = (0..WRITERS)
        .map(|i| {
            let hub = hub.clone();
            tokio::spawn(async move {
                let patch = json!({ "properties": { "desired": { format!("k{i}"): i } } });
                hub.update_twin("twin-race", &patch, Some("*"), false)
                    .wait_stored()
                    .unwrap()["properties"]["desired"]["$version"]
                    .as_u64()
                    .unwrap()
            })
        })
        .collect();
    let mut versions = Vec::new();
    for writer in writers {
        versions.push(writer.await.unwrap());
    }
    versions.sort();
    assert_eq!(
        versions,
        (2..2 + WRITERS).collect::<Vec<_>>(),
        "every patch got its own version"
    );
    let twin = hub.device_twin("twin-race").unwrap();
    assert_eq!(twin.desired.len() as u64, WRITERS, "no patch was lost");

    // The device sees every version once, in increasing order, each patch with its key.
    let mut seen = Vec::new();
    while seen.len() < WRITERS as usize {
        let push = next_publish(&mut client).await;
        let version: u64 = push
            .topic
            .rsplit("$version=")
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let body: Value = serde_json::from_slice(&push.payload).unwrap();
        assert_eq!(body["$version"], version);
        assert_eq!(
            body.as_object().unwrap().len(),
            2,
            "one key + $version: {body}"
        );
        seen.push(version);
    }
    assert_eq!(seen, (2..2 + WRITERS).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_reported_patches_from_the_device_and_service_updates_do_not_clobber() {
    let emulator = start_emulator(None).await;
    let mut client = twin_device(&emulator, "twin-mixed", None).await;
    let hub = emulator.default_hub().clone();
    let service = {
        let hub = hub.clone();
        tokio::spawn(async move {
            for i in 0..20 {
                let patch = json!({ "tags": { format!("t{i}"): i } });
                hub.update_twin("twin-mixed", &patch, Some("*"), false)
                    .wait_stored()
                    .unwrap();
            }
        })
    };
    for i in 0..20 {
        let response = request(
            &mut client,
            &format!("$iothub/twin/PATCH/properties/reported/?$rid={i}"),
            format!(r#"{{"r{i}": {i}}}"#).as_bytes(),
        )
        .await;
        assert_eq!(
            response.topic,
            format!("$iothub/twin/res/204/?$rid={i}&$version={}", i + 2)
        );
    }
    service.await.unwrap();
    let twin = hub.device_twin("twin-mixed").unwrap();
    assert_eq!(twin.reported.len(), 20);
    assert_eq!(twin.tags.len(), 20);
    assert_eq!(twin.reported_version, 21);
}
