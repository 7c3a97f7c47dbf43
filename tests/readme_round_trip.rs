//! The README's twin + direct method round trip, kept compiling and passing here.

use std::time::Duration;

use iotemu_device::{DeviceClient, MethodRequest, MethodResponse, Trust};
use serde_json::json;

#[tokio::test]
async fn twin_and_method_round_trip() {
    let emulator = iotemu::Emulator::builder().start().await.unwrap();
    let hub = emulator.default_hub();
    let key =
        "sbDDeEzRuEuGKag+kQKV+T1QGakRtHpsERLP0yPjwR93TrpEgEh/Y07CXstfha6dhIPWvdD1nRxK5T0KGKA+nQ==";
    let device_key = iotemu::SymmetricKey::from_base64(key).unwrap();
    hub.provision_device("thermostat", device_key.clone(), device_key, None);
    let device = DeviceClient::builder("localhost", "thermostat")
        .symmetric_key(key)
        .trust(Trust::CaPem(emulator.ca_pem().to_owned()))
        .port(emulator.mqtt_port())
        .connect()
        .await
        .unwrap();

    // Device side: listen for desired changes, answer "reboot", report a property.
    let mut desired = device.desired_updates().await.unwrap();
    device
        .on_method(|request: MethodRequest| async move {
            MethodResponse::new(
                200,
                json!({ "rebooted": true, "delay": request.payload["delay"] }),
            )
        })
        .await
        .unwrap();
    device
        .update_reported(json!({ "firmware": "1.2.0" }))
        .await
        .unwrap();

    // Service side (Rust handle; the same over REST: PATCH /twins/{id}, POST /twins/{id}/methods).
    hub.update_twin(
        "thermostat",
        &json!({ "properties": { "desired": { "interval": 10 } } }),
        None,
        false,
    )
    .unwrap()
    .durable()
    .await
    .unwrap();
    let patch = desired.next().await.unwrap();
    assert_eq!(
        (patch.version, patch.patch["interval"].clone()),
        (2, json!(10))
    );
    assert_eq!(
        hub.device_twin("thermostat").unwrap().reported["firmware"],
        "1.2.0"
    );

    let answer = hub
        .invoke_method(
            "thermostat",
            "reboot",
            json!({ "delay": 5 }),
            Duration::from_secs(10),
            Duration::ZERO,
        )
        .await
        .unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(answer.payload, json!({ "rebooted": true, "delay": 5 }));
}

#[test]
fn the_readme_shows_this_code() {
    let this = include_str!("readme_round_trip.rs");
    let start = this.find("#[tokio::test]").unwrap();
    let end = start + this[start..].find("\n}\n").unwrap() + 3;
    let readme = include_str!("../README.md");
    assert!(
        readme.contains(&this[start..end]),
        "README.md's round trip example differs from tests/readme_round_trip.rs"
    );
}
