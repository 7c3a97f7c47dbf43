//! The `iotemu-device` DPS client against injected faults (issue #19, docs/faults.md): it
//! waits the `retry-after` of a 429 and registers on the retry, polls again after a 503 on
//! the operation-status poll, and reports a 401 without retrying — the decision table of
//! client/src/dps/outcome.rs, driven by the real emulator's refusals.
//!
//! Only lower bounds on time are asserted (a sleep never ends early), so a slow machine
//! cannot make these tests fail.

use std::time::{Duration, Instant};

use iotemu::{Emulator, FaultOperation, FaultRule, Refusal};
use iotemu_device::{ProvisioningClient, ProvisioningError, RegistrationResult, Trust};
use iotemu_e2e::*;

async fn register(emulator: &Emulator) -> Result<RegistrationResult, ProvisioningError> {
    ProvisioningClient::builder("localhost", emulator.id_scope(), QUICKSTART_REGISTRATION_ID)
        .symmetric_key(QUICKSTART_KEY)
        .trust(Trust::CaPem(emulator.ca_pem().to_owned()))
        .port(emulator.mqtt_port())
        .build()
        .expect("a valid client")
        .register()
        .await
}

#[tokio::test]
async fn registration_waits_the_retry_after_of_a_429_then_registers() {
    let emulator = start_emulator(None).await;
    // Longer than the client's default wait (2 s), so registering no sooner shows the client
    // read the header.
    let retry_after = 3;
    let throttle = emulator
        .faults()
        .inject(
            FaultRule::new(
                FaultOperation::DpsRegister,
                Refusal::Throttled { retry_after },
            )
            .registration_id(QUICKSTART_REGISTRATION_ID)
            .count(1),
        )
        .expect("a valid rule");
    let started = Instant::now();
    let result = register(&emulator)
        .await
        .expect("registered after the retry");
    let took = started.elapsed();

    assert_eq!(result.status, "assigned");
    assert_eq!(throttle.hits(), 1, "the first register was refused");
    let record = emulator
        .dps()
        .registration(QUICKSTART_REGISTRATION_ID)
        .expect("the retried register was stored");
    assert_eq!(record.device_id, result.registration_state.device_id);
    assert!(
        took >= Duration::from_secs(u64::from(retry_after)),
        "registered {took:?} after the start, before the {retry_after} s retry-after"
    );
}

#[tokio::test]
async fn registration_polls_again_after_a_503_on_the_poll() {
    let emulator = start_emulator(None).await;
    let refusal = emulator
        .faults()
        .inject(
            FaultRule::new(
                FaultOperation::DpsPoll,
                Refusal::ServiceUnavailable {
                    retry_after: Some(0),
                },
            )
            .registration_id(QUICKSTART_REGISTRATION_ID)
            .count(1),
        )
        .expect("a valid rule");
    let result = register(&emulator)
        .await
        .expect("registered after the poll");
    assert_eq!(result.status, "assigned");
    assert_eq!(refusal.hits(), 1);
}

#[tokio::test]
async fn an_injected_401_is_reported_not_retried() {
    let emulator = start_emulator(None).await;
    let refusal = emulator
        .faults()
        .inject(
            FaultRule::new(FaultOperation::DpsRegister, Refusal::Unauthorized)
                .registration_id(QUICKSTART_REGISTRATION_ID),
        )
        .expect("a valid rule");
    match register(&emulator).await {
        Err(ProvisioningError::Service { status, body }) => {
            assert_eq!(status, 401);
            assert!(body.contains("401002"), "{body}");
        }
        other => panic!("expected the 401 as a service error, got {other:?}"),
    }
    assert_eq!(refusal.hits(), 1, "a 401 is not retried");
    assert!(
        emulator
            .dps()
            .registration(QUICKSTART_REGISTRATION_ID)
            .is_none()
    );
}
