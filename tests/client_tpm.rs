//! iotemu-device's TPM flow (issue #14): `TpmProvisioning` registers a TPM device over HTTPS
//! and `DeviceClient::from_tpm_registration` connects with SAS tokens the TPM signs. The TPM is
//! iotemu's software TPM behind the client's `Tpm` trait, so every byte DPS sends goes through
//! the same ActivateCredential/Import a real TPM does.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use iotemu::Emulator;
use iotemu::internals::tpm::SoftwareTpm;
use iotemu_device::{
    DeviceClient, Message, ProvisioningError, Tpm, TpmError, TpmProvisioning, Trust,
    tpm_registration_id,
};
use iotemu_e2e::*;
use serde_json::json;

const SCOPE: &str = "0ne00000A0A";
const OWNER_KEY: &str = "9v222dNTjDaRlypsKaNmfRb+fM+lb6iI4vJsVu9VHBA=";

/// The software TPM as the client sees a TPM.
struct Software(Mutex<SoftwareTpm>);

impl Software {
    fn new() -> Arc<Software> {
        Arc::new(Software(Mutex::new(SoftwareTpm::new(2048).unwrap())))
    }
}

fn failed(error: impl std::fmt::Display) -> TpmError {
    TpmError(error.to_string())
}

impl Tpm for Software {
    fn endorsement_key(&self) -> Result<Vec<u8>, TpmError> {
        self.0
            .lock()
            .map_err(failed)?
            .endorsement_key()
            .map_err(failed)
    }
    fn storage_root_key(&self) -> Result<Vec<u8>, TpmError> {
        self.0
            .lock()
            .map_err(failed)?
            .storage_root_key()
            .map_err(failed)
    }
    fn import_identity_key(&self, authentication_key: &[u8]) -> Result<(), TpmError> {
        self.0
            .lock()
            .map_err(failed)?
            .import(authentication_key)
            .map_err(failed)
    }
    fn sign_with_identity(&self, data: &[u8]) -> Result<Vec<u8>, TpmError> {
        Ok(self
            .0
            .lock()
            .map_err(failed)?
            .hmac(data)
            .map_err(failed)?
            .to_vec())
    }
}

async fn enroll(emulator: &Emulator, registration_id: &str, ek: &[u8]) {
    let owner = build_token(
        "localhost",
        &decode_key(OWNER_KEY),
        Some("provisioningserviceowner"),
        seconds_from_now(600),
    );
    let body = json!({
        "registrationId": registration_id,
        "deviceId": "client-tpm-device",
        "attestation": {"type": "tpm", "tpm": {"endorsementKey": BASE64.encode(ek)}},
    });
    let created = https_request(
        emulator,
        None,
        "PUT",
        &format!("/enrollments/{registration_id}?api-version=2021-10-01"),
        &[
            ("Authorization", owner.as_str()),
            ("Content-Type", "application/json"),
        ],
        body.to_string().as_bytes(),
    )
    .await;
    assert_eq!(
        created.status,
        200,
        "{}",
        String::from_utf8_lossy(&created.body)
    );
}

fn provisioning(emulator: &Emulator, tpm: Arc<Software>) -> TpmProvisioning {
    TpmProvisioning::new("localhost", SCOPE, tpm)
        .trust(Trust::CaPem(emulator.ca_pem().to_owned()))
        .port(emulator.https_port().expect("HTTPS is served"))
        .timeout(Duration::from_secs(20))
}

#[tokio::test]
async fn a_tpm_device_registers_over_https_and_connects_with_tpm_signed_tokens() {
    let emulator = start_emulator(None).await;
    let tpm = Software::new();
    let registration_id = tpm_registration_id(&tpm.endorsement_key().unwrap());
    assert_eq!(
        registration_id,
        iotemu::internals::tpm::registration_id_from_ek(&tpm.endorsement_key().unwrap())
    );
    enroll(&emulator, &registration_id, &tpm.endorsement_key().unwrap()).await;

    let registration = provisioning(&emulator, tpm.clone())
        .register()
        .await
        .unwrap();
    assert_eq!(registration.status, "assigned");
    let state = &registration.registration_state;
    assert_eq!(state.device_id.as_deref(), Some("client-tpm-device"));
    assert_eq!(state.assigned_hub.as_deref(), Some("localhost"));

    let device = DeviceClient::from_tpm_registration(&registration, tpm.clone())
        .trust(Trust::CaPem(emulator.ca_pem().to_owned()))
        .port(emulator.mqtt_port())
        .connect()
        .await
        .expect("the hub accepts the TPM-signed token");
    device
        .send_telemetry(Message::new("from a TPM").message_id("tpm-1"))
        .await
        .unwrap();
    let got = emulator
        .default_hub()
        .telemetry()
        .wait_for("client-tpm-device", 1, Duration::from_secs(5))
        .await
        .expect("message observed");
    assert_eq!(got[0].system.message_id.as_deref(), Some("tpm-1"));
    device.disconnect().await.unwrap();

    // A TPM with another EK is refused with DPS's 401, no challenge.
    let stranger = Software::new();
    let own_id = tpm_registration_id(&stranger.endorsement_key().unwrap());
    enroll(&emulator, &own_id, &tpm.endorsement_key().unwrap()).await;
    let err = provisioning(&emulator, stranger)
        .register()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ProvisioningError::Service { status: 401, body } if body.contains("401002")),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_tpm_with_another_credential_is_a_configuration_error() {
    let emulator = start_emulator(None).await;
    let err = DeviceClient::builder("localhost", "dev")
        .tpm(Software::new())
        .symmetric_key(QUICKSTART_KEY)
        .trust(Trust::CaPem(emulator.ca_pem().to_owned()))
        .port(emulator.mqtt_port())
        .connect()
        .await
        .unwrap_err();
    assert!(
        matches!(err, iotemu_device::DeviceError::Config(_)),
        "{err:?}"
    );
}
