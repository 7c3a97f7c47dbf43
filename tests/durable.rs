//! Durable state (`--data-dir`, issue #7 item 1) through the library: what a first emulator
//! was told — registrations, devices, modules, twins, C2D messages, CA certificates, enrollment
//! changes and deletions — is there after a restart on the same directory, and the emulator CA
//! stays the same so clients keep trusting it.

use iotemu::WaitStored;
use std::path::PathBuf;

use iotemu::C2dMessage;
use iotemu::Emulator;
use iotemu::ModuleSpec;
use iotemu_device::{ProvisioningClient, Trust};
use iotemu_e2e::*;
use serde_json::json;

fn data_dir() -> PathBuf {
    std::env::temp_dir().join(format!("iotemu-durable-{}", uuid::Uuid::new_v4()))
}

#[tokio::test]
async fn state_survives_a_restart_on_the_same_data_directory() {
    let dir = data_dir();
    let first = start_on_data_dir(&dir).await;
    let ca = first.ca_pem().to_owned();

    // A DPS registration creates the hub device and the registration record.
    let registration = ProvisioningClient::builder(
        first.dps_host(),
        first.id_scope(),
        QUICKSTART_REGISTRATION_ID,
    )
    .symmetric_key(QUICKSTART_KEY)
    .trust(Trust::CaPem(ca.clone()))
    .port(first.mqtt_port())
    .build()
    .unwrap()
    .register()
    .await
    .unwrap();
    let hub = first.default_hub().clone();
    let device_id = registration
        .registration_state
        .device_id
        .clone()
        .expect("device id");
    let device = hub.device(&device_id).expect("assigned device");

    // Twin, module, C2D, CA certificate; an enrollment deleted (fixtures still name it).
    hub.update_twin(
        &device_id,
        &json!({"tags": {"site": "lab"}, "properties": {"desired": {"rate": 5}}}),
        None,
        false,
    )
    .wait_stored()
    .unwrap();
    let module = hub
        .create_module(ModuleSpec::from_json(&device_id, "filter", b"{}").unwrap())
        .wait_stored()
        .unwrap();
    hub.update_twin_of(
        iotemu::IdentityRef::module(&device_id, "filter"),
        &json!({"properties": {"desired": {"threshold": 30}}}),
        None,
        false,
    )
    .wait_stored()
    .unwrap();
    let mut message = C2dMessage::new("reboot");
    message.message_id = Some("c2d-1".into());
    hub.send_c2d(&device_id, message).wait_stored().unwrap();
    let root = iotemu::certs::root_ca("Durable Root", 30).unwrap();
    hub.certificates()
        .upload("durable-root", &root.cert_pem, true)
        .wait_stored()
        .unwrap();
    assert!(first.dps().delete_enrollment_group("quickstart-group"));
    let enrollments_before = first.dps().enrollments().len();
    // Everything holding the first emulator's state must go for its directory lock to go.
    drop(hub);
    first.shutdown().await;

    let second = start_on_data_dir(&dir).await;
    assert_eq!(second.ca_pem(), ca, "the emulator CA is kept");
    let hub = second.default_hub();
    let restored = hub.device(&device_id).expect("device kept");
    assert_eq!(restored.authentication, device.authentication, "keys kept");
    assert_eq!(restored.generation_id, device.generation_id);
    let twin = hub.device_twin(&device_id).unwrap();
    assert_eq!(twin.tags["site"], "lab");
    assert_eq!(twin.desired["rate"], 5);
    assert_eq!(twin.desired_version, 2);
    let restored_module = hub.module(&device_id, "filter").expect("module kept");
    assert_eq!(restored_module.authentication, module.authentication);
    assert_eq!(
        hub.module_twin(&device_id, "filter").unwrap().desired["threshold"],
        30
    );
    let pending = hub.c2d_pending(&device_id);
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].id, "c2d-1");
    assert!(hub.certificates().get("durable-root").unwrap().is_verified);
    let record = second
        .dps()
        .registration(QUICKSTART_REGISTRATION_ID)
        .expect("registration record kept");
    assert_eq!(record.device_id.as_deref(), Some(device_id.as_str()));
    assert!(
        second.dps().enrollment_group("quickstart-group").is_none(),
        "deletion kept"
    );
    assert_eq!(second.dps().enrollments().len(), enrollments_before);

    // The device re-registers to the same hub without a new device identity.
    let again = ProvisioningClient::builder(
        second.dps_host(),
        second.id_scope(),
        QUICKSTART_REGISTRATION_ID,
    )
    .symmetric_key(QUICKSTART_KEY)
    .trust(Trust::CaPem(ca.clone()))
    .port(second.mqtt_port())
    .build()
    .unwrap()
    .register()
    .await
    .unwrap();
    assert_eq!(
        again.registration_state.assigned_hub,
        registration.registration_state.assigned_hub
    );
    assert_eq!(
        second
            .default_hub()
            .device(&device_id)
            .unwrap()
            .generation_id,
        device.generation_id
    );
    second.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn two_emulators_cannot_share_a_data_directory() {
    let dir = data_dir();
    let first = start_on_data_dir(&dir).await;
    let second = Emulator::builder()
        .quickstart_fixture()
        .data_dir(&dir)
        .start()
        .await;
    let error = second.err().expect("the directory is taken").to_string();
    assert!(error.contains("data directory"), "{error}");
    first.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
