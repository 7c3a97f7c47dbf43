//! The quickstart flow end to end with the `iotemu-device` client: DPS registration with a
//! symmetric key (individual and group), assignment, hub connection and telemetry — and the
//! ways it must fail (issue #2, test list 10).

use std::time::Duration;

use futures_util::future::join_all;
use iotemu_device::{
    DeviceClient, DeviceError, Message, ProvisioningClient, ProvisioningError, Trust,
    derive_device_key,
};
use iotemu_e2e::*;

const SCOPE: &str = "0ne00000A0A";

/// A disabled individual enrollment next to the quickstart ones.
const EXTRA: &str = r#"{
  "enrollments": [
    { "registrationId": "disabled-device", "attestation": { "type": "symmetricKey",
      "symmetricKey": { "primaryKey": "sbDDeEzRuEuGKag+kQKV+T1QGakRtHpsERLP0yPjwR93TrpEgEh/Y07CXstfha6dhIPWvdD1nRxK5T0KGKA+nQ==" } },
      "provisioningStatus": "disabled" }
  ]
}"#;

fn provisioning(
    emulator: &iotemu::Emulator,
    registration_id: &str,
    key: &str,
) -> ProvisioningClient {
    ProvisioningClient::builder(emulator.dps_host(), emulator.id_scope(), registration_id)
        .symmetric_key(key)
        .trust(Trust::CaPem(emulator.ca_pem().to_owned()))
        .port(emulator.mqtt_port())
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client builds")
}

/// Connects to the default hub as `device_id` with `key`.
async fn connect_device(
    emulator: &iotemu::Emulator,
    device_id: &str,
    key: &str,
) -> Result<DeviceClient, DeviceError> {
    DeviceClient::builder("localhost", device_id)
        .symmetric_key(key)
        .trust(Trust::CaPem(emulator.ca_pem().to_owned()))
        .port(emulator.mqtt_port())
        .connect()
        .await
}

#[tokio::test]
async fn quickstart_individual_enrollment_registers_and_sends_ten_messages() {
    let emulator = start_emulator(None).await;
    let registration = provisioning(&emulator, QUICKSTART_REGISTRATION_ID, QUICKSTART_KEY)
        .register()
        .await
        .expect("registration succeeds");
    assert_eq!(registration.status, "assigned");
    let state = &registration.registration_state;
    assert_eq!(state.device_id.as_deref(), Some(QUICKSTART_DEVICE_ID));
    assert_eq!(state.assigned_hub.as_deref(), Some("localhost"));
    assert_eq!(state.substatus.as_deref(), Some("initialAssignment"));
    assert_eq!(state.payload, None);

    let mut live = emulator.default_hub().telemetry().subscribe();
    let device = DeviceClient::from_registration(&registration, QUICKSTART_KEY)
        .trust(Trust::CaPem(emulator.ca_pem().to_owned()))
        .port(emulator.mqtt_port())
        .connect()
        .await
        .expect("device connects");
    let ids: Vec<String> = (1..=10).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    let sends = ids.iter().enumerate().map(|(i, id)| {
        let message = Message::new(format!("test wind speed {}", i + 1))
            .message_id(id.clone())
            .property("tempAlert", if i % 2 == 0 { "true" } else { "false" });
        device.send_telemetry(message)
    });
    for result in join_all(sends).await {
        result.expect("PUBACK received");
    }

    // Every acknowledged message is in the log at once…
    let stored = emulator
        .default_hub()
        .telemetry()
        .messages(Some(QUICKSTART_DEVICE_ID));
    assert_eq!(stored.len(), 10);
    for (i, id) in ids.iter().enumerate() {
        let m = stored
            .iter()
            .find(|m| m.message_id() == Some(id.as_str()))
            .expect("message stored");
        assert_eq!(
            m.body_text(),
            Some(format!("test wind speed {}", i + 1).as_str())
        );
        let alert = if i % 2 == 0 { "true" } else { "false" };
        assert_eq!(
            m.properties.get("tempAlert").map(String::as_str),
            Some(alert)
        );
        assert_eq!(&*m.hub, "localhost");
    }
    // …and on the live feed.
    for _ in 0..10 {
        let m = tokio::time::timeout(Duration::from_secs(5), live.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(ids.iter().any(|id| m.message_id() == Some(id.as_str())));
    }
    device.disconnect().await.expect("clean disconnect");
}

#[tokio::test]
async fn group_enrollment_device_registers_with_a_derived_key() {
    let emulator = start_emulator(None).await;
    let registration_id = "group-member-001";
    let device_key = derive_device_key(QUICKSTART_GROUP_KEY, registration_id).unwrap();
    let registration = provisioning(&emulator, registration_id, &device_key)
        .register()
        .await
        .expect("group device registers");
    assert_eq!(
        registration.registration_state.device_id.as_deref(),
        Some(registration_id)
    );
    assert_eq!(
        registration.registration_state.assigned_hub.as_deref(),
        Some("localhost")
    );
    let record = emulator
        .dps()
        .registration(registration_id)
        .expect("registration recorded");
    assert_eq!(
        record.symmetric_key,
        Some(serde_json::json!({"enrollmentGroupId": "quickstart-group"}))
    );

    let device = DeviceClient::from_registration(&registration, &device_key)
        .trust(Trust::CaPem(emulator.ca_pem().to_owned()))
        .port(emulator.mqtt_port())
        .connect()
        .await
        .expect("device connects with the derived key");
    device
        .send_telemetry(
            Message::new("hello")
                .message_id("m-1")
                .content_type("text/plain"),
        )
        .await
        .unwrap();
    let got = emulator
        .default_hub()
        .telemetry()
        .wait_for(registration_id, 1, Duration::from_secs(5))
        .await
        .expect("message observed");
    assert_eq!(got[0].system.content_type.as_deref(), Some("text/plain"));

    // The group key itself is not a device credential.
    let err = provisioning(&emulator, "group-member-002", QUICKSTART_GROUP_KEY)
        .register()
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProvisioningError::ConnectionRefused(5)),
        "{err:?}"
    );
}

#[tokio::test]
async fn wrong_key_is_refused_promptly_by_dps_and_hub() {
    let emulator = start_emulator(None).await;
    let wrong = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    let started = std::time::Instant::now();
    let err = provisioning(&emulator, QUICKSTART_REGISTRATION_ID, wrong)
        .register()
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProvisioningError::ConnectionRefused(5)),
        "{err:?}"
    );
    assert!(
        emulator
            .dps()
            .registration(QUICKSTART_REGISTRATION_ID)
            .is_none()
    );

    // Register properly, then use a wrong key on the hub.
    provisioning(&emulator, QUICKSTART_REGISTRATION_ID, QUICKSTART_KEY)
        .register()
        .await
        .unwrap();
    let Err(err) = connect_device(&emulator, QUICKSTART_DEVICE_ID, wrong).await else {
        panic!("hub refuses the wrong key");
    };
    assert!(matches!(err, DeviceError::ConnectionRefused(5)), "{err:?}");
    // Unknown device on the hub.
    let Err(err) = connect_device(&emulator, "never-provisioned", QUICKSTART_KEY).await else {
        panic!("unknown device refused");
    };
    assert!(matches!(err, DeviceError::ConnectionRefused(5)), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "refusals are prompt"
    );
}

#[tokio::test]
async fn disabled_enrollment_reports_disabled() {
    let emulator = start_emulator(Some(EXTRA)).await;
    let err = provisioning(&emulator, "disabled-device", QUICKSTART_KEY)
        .register()
        .await
        .unwrap_err();
    match err {
        ProvisioningError::Registration { status, .. } => assert_eq!(status, "disabled"),
        other => panic!("expected a disabled registration, got {other:?}"),
    }
    let record = emulator.dps().registration("disabled-device").unwrap();
    assert_eq!(serde_json::to_value(record.status).unwrap(), "disabled");
    assert!(emulator.default_hub().device("disabled-device").is_none());
}

#[tokio::test]
async fn reregistration_returns_the_same_assignment() {
    let emulator = start_emulator(None).await;
    let client = provisioning(&emulator, QUICKSTART_REGISTRATION_ID, QUICKSTART_KEY);
    let first = client.register().await.unwrap();
    let second = client.register().await.unwrap();
    assert_eq!(
        first.registration_state.assigned_hub,
        second.registration_state.assigned_hub
    );
    assert_eq!(
        first.registration_state.device_id,
        second.registration_state.device_id
    );
    assert_eq!(
        first.registration_state.created_date_time_utc,
        second.registration_state.created_date_time_utc
    );
    assert_ne!(first.operation_id, second.operation_id);
    assert_eq!(emulator.default_hub().devices().len(), 1);
}

#[tokio::test]
async fn enrollments_added_at_runtime_apply_immediately() {
    let emulator = start_emulator(None).await;
    let enrollment: iotemu::IndividualEnrollment = serde_json::from_value(serde_json::json!({
        "registrationId": "added-later",
        "deviceId": "added-device",
        "attestation": { "type": "symmetricKey" }
    }))
    .unwrap();
    let stored = emulator
        .dps()
        .create_or_update_enrollment(enrollment)
        .unwrap();
    let key = stored
        .attestation
        .symmetric_key
        .unwrap()
        .primary_key
        .expect("key generated");
    let registration = provisioning(&emulator, "added-later", &key)
        .register()
        .await
        .unwrap();
    assert_eq!(
        registration.registration_state.device_id.as_deref(),
        Some("added-device")
    );
}

#[tokio::test]
async fn registration_waits_out_the_configured_assignment_delay() {
    let emulator = iotemu::Emulator::builder()
        .retry_after(0)
        .assignment_delay(Duration::from_millis(300))
        .start()
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let registration = ProvisioningClient::builder("localhost", SCOPE, QUICKSTART_REGISTRATION_ID)
        .symmetric_key(QUICKSTART_KEY)
        .trust(Trust::CaPem(emulator.ca_pem().to_owned()))
        .port(emulator.mqtt_port())
        .build()
        .unwrap()
        .register()
        .await
        .expect("completes after polling through the delay");
    assert_eq!(registration.status, "assigned");
    // Not assigned before the delay ran out: the device had to keep polling.
    assert!(started.elapsed() >= Duration::from_millis(300));
}
