//! The registration state machine, driven directly: register, poll, assignment outcomes,
//! authentication of registrations, custom allocation through a fake webhook.

use crate::pending::WaitStored;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;
use crate::auth::keys::SymmetricKey;
use crate::auth::{Credential, sas};
use crate::dps::DpsTiming;
use crate::dps::model::{
    AllocationPolicy, AttestationMechanism, EnrollmentGroup, IndividualEnrollment,
    ProvisioningStatus,
};
use crate::hub::{Hub, Hubs};

const KEY: &str =
    "sbDDeEzRuEuGKag+kQKV+T1QGakRtHpsERLP0yPjwR93TrpEgEh/Y07CXstfha6dhIPWvdD1nRxK5T0KGKA+nQ==";
const GROUP_KEY: &str =
    "/VX4hnlv5HUMoLa5FBff/tGKwZFUM0XlQMp/v7oWXGolrvmEuIrRnsx6k9Gi3drdCbAyfmt+aq8zsQJ6lg3D3g==";

fn attestation(key: &str) -> AttestationMechanism {
    AttestationMechanism::symmetric_key(Some(key), None)
}

fn dps(delay: Duration) -> Dps {
    let hubs = Arc::new(Hubs::new(vec![
        Hub::new("hub-a", vec![], 10),
        Hub::new("hub-b", vec![], 10),
    ]));
    let timing = DpsTiming {
        retry_after: 3,
        assignment_delay: delay,
    };
    let dps = Dps::new("0ne00000A0A", "localhost", vec![], hubs, timing);
    let mut enrollment = IndividualEnrollment::new("dev-1", attestation(KEY));
    enrollment.device_id = Some("device-one".into());
    enrollment.iot_hubs = Some(vec!["hub-b".into()]);
    dps.create_or_update_enrollment(enrollment).unwrap();
    dps.create_or_update_enrollment_group(EnrollmentGroup::new("group-1", attestation(GROUP_KEY)))
        .unwrap();
    dps
}

fn login(dps: &Dps, registration_id: &str, key: &SymmetricKey) -> RegistrationIdentity {
    let expiry = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let token = sas::build_token(
        &format!("0ne00000A0A/registrations/{registration_id}"),
        key.as_bytes(),
        None,
        expiry,
    );
    dps.authenticate_registration(
        "0ne00000A0A",
        registration_id,
        Credential::Sas(&token),
        SystemTime::now(),
    )
    .unwrap()
}

fn key(k: &str) -> SymmetricKey {
    SymmetricKey::from_base64(k).unwrap()
}

/// A webhook that answers at once with a fixed hub and records what it was sent.
struct FakeWebhook {
    hub: &'static str,
    sent: std::sync::Mutex<Vec<(String, Value)>>,
}

impl crate::dps::custom_allocation::AllocationWebhook for FakeWebhook {
    fn start(&self, url: String, body: Value) -> crate::dps::custom_allocation::DecisionSlot {
        if let Ok(mut sent) = self.sent.lock() {
            sent.push((url, body));
        }
        crate::dps::custom_allocation::decided(Ok(WebhookDecision {
            hub: self.hub.to_owned(),
            initial_twin: None,
            payload: Some(json!({"from": "fake"})),
        }))
    }
}

#[test]
fn custom_allocation_asks_the_injected_webhook() {
    let fake = Arc::new(FakeWebhook {
        hub: "HUB-A",
        sent: Default::default(),
    });
    let dps = dps(Duration::ZERO).with_webhook(fake.clone());
    let mut enrollment = dps.individual_enrollment("dev-1").unwrap();
    enrollment.iot_hubs = None;
    enrollment.allocation_policy = Some(AllocationPolicy::Custom);
    enrollment.custom_allocation_definition =
        Some(json!({"webhookUrl": "http://webhook.invalid/allocate", "apiVersion": "2021-10-01"}));
    dps.create_or_update_enrollment(enrollment).unwrap();

    let who = login(&dps, "dev-1", &key(KEY));
    let started = dps.register(&who, br#"{"payload":{"p":1}}"#).unwrap();
    let done = dps
        .operation_status(&who, &started.body.operation_id)
        .wait_stored()
        .unwrap();
    let state = done.body.registration_state.unwrap();
    assert_eq!(state.assigned_hub.as_deref(), Some("hub-a"));
    assert_eq!(state.payload, Some(json!({"from": "fake"})));
    let sent = fake.sent.lock().unwrap();
    let (url, body) = &sent[0];
    assert_eq!(url, "http://webhook.invalid/allocate");
    assert_eq!(body["deviceRuntimeContext"]["payload"], json!({"p": 1}));
    assert_eq!(
        body["individualEnrollment"]["attestation"],
        json!({"type": "symmetricKey"}),
        "keys never leave DPS"
    );
}

#[test]
fn register_then_poll_assigns_and_creates_the_device() {
    let dps = dps(Duration::ZERO);
    let who = login(&dps, "dev-1", &key(KEY));
    let started = dps
        .register(&who, br#"{"registrationId":"dev-1","payload":null}"#)
        .unwrap();
    assert_eq!((started.status, started.retry_after), (202, Some(3)));
    assert_eq!(started.body.status, RegistrationStatus::Assigning);

    let done = dps
        .operation_status(&who, &started.body.operation_id)
        .wait_stored()
        .unwrap();
    assert_eq!(done.status, 200);
    let state = done.body.registration_state.unwrap();
    assert_eq!(state.status, RegistrationStatus::Assigned);
    assert_eq!(state.substatus, Some(Substatus::InitialAssignment));
    assert_eq!(state.assigned_hub.as_deref(), Some("hub-b"));
    assert_eq!(state.device_id.as_deref(), Some("device-one"));
    assert!(state.payload.is_none());
    let device = dps
        .hubs()
        .get("hub-b")
        .unwrap()
        .device("device-one")
        .unwrap();
    assert_eq!(device.sas_keys()[0], &key(KEY));
    assert_eq!(dps.registration("DEV-1").unwrap(), state);
}

#[test]
fn polls_stay_assigning_during_the_delay_and_unknown_operations_are_404() {
    let dps = dps(Duration::from_secs(3600));
    let who = login(&dps, "dev-1", &key(KEY));
    let started = dps.register(&who, b" ").unwrap();
    let poll = dps
        .operation_status(&who, &started.body.operation_id)
        .wait_stored()
        .unwrap();
    assert_eq!(
        (poll.status, poll.body.status),
        (202, RegistrationStatus::Assigning)
    );
    assert_eq!(
        dps.registration("dev-1"),
        None,
        "nothing recorded while assigning"
    );
    assert_eq!(
        dps.operation_status(&who, "4.nope")
            .wait_stored()
            .unwrap_err()
            .status(),
        404
    );
    // Another device cannot poll this operation.
    let other = login(
        &dps,
        "member-7",
        &key(GROUP_KEY).derive_device_key("member-7"),
    );
    assert_eq!(
        dps.operation_status(&other, &started.body.operation_id)
            .wait_stored()
            .unwrap_err()
            .status(),
        404
    );
}

#[test]
fn group_member_gets_derived_keys_and_reregistration_keeps_the_hub() {
    let dps = dps(Duration::ZERO);
    let derived = key(GROUP_KEY).derive_device_key("member-7");
    let who = login(&dps, "member-7", &derived);
    assert_eq!(who.enrollment(), &EnrollmentRef::Group("group-1".into()));
    let first = dps.register(&who, b"{}").unwrap();
    let first = dps
        .operation_status(&who, &first.body.operation_id)
        .wait_stored()
        .unwrap()
        .body
        .registration_state
        .unwrap();
    let hub = first.assigned_hub.clone().unwrap();
    assert_eq!(first.device_id.as_deref(), Some("member-7"));
    assert_eq!(
        first.symmetric_key,
        Some(serde_json::json!({"enrollmentGroupId": "group-1"}))
    );
    let device = dps.hubs().get(&hub).unwrap().device("member-7").unwrap();
    assert_eq!(device.sas_keys()[0], &derived);

    let again = dps.register(&who, b"{}").unwrap();
    let again = dps
        .operation_status(&who, &again.body.operation_id)
        .wait_stored()
        .unwrap()
        .body
        .registration_state
        .unwrap();
    assert_eq!(again.assigned_hub, Some(hub));
    assert_eq!(again.created_date_time_utc, first.created_date_time_utc);
    assert_ne!(again.etag, first.etag);
}

#[test]
fn group_lookup_tries_the_previous_group_first_then_goes_by_id_primary_then_secondary() {
    let dps = dps(Duration::ZERO);
    let derived = key(GROUP_KEY).derive_device_key("member-9");
    let who = login(&dps, "member-9", &derived);
    let operation = dps.register(&who, b"{}").unwrap();
    dps.operation_status(&who, &operation.body.operation_id)
        .wait_stored()
        .unwrap();
    // A second group with the same key, earlier by id: a new device matches it, the device
    // registered through group-1 keeps matching group-1.
    dps.create_or_update_enrollment_group(EnrollmentGroup::new("a-twin", attestation(GROUP_KEY)))
        .unwrap();
    assert_eq!(
        login(&dps, "member-9", &derived).enrollment(),
        &EnrollmentRef::Group("group-1".into())
    );
    let newcomer = key(GROUP_KEY).derive_device_key("member-10");
    assert_eq!(
        login(&dps, "member-10", &newcomer).enrollment(),
        &EnrollmentRef::Group("a-twin".into())
    );
    // A device signing with the key derived from a group's secondary key is found too.
    const SECONDARY: &str =
        "r4NGzNJJt6hI3LLBYTcWDxjmP0rIgBfVqj405xXVObh/HtBkNW8DUZkFA0/jYBUu60rSLc+H4PQnrZYrl9ymcg==";
    dps.create_or_update_enrollment_group(EnrollmentGroup::new(
        "z-secondary",
        AttestationMechanism::symmetric_key(Some(KEY), Some(SECONDARY)),
    ))
    .unwrap();
    let by_secondary = key(SECONDARY).derive_device_key("member-11");
    assert_eq!(
        login(&dps, "member-11", &by_secondary).enrollment(),
        &EnrollmentRef::Group("z-secondary".into())
    );
}

#[test]
fn disabled_enrollment_yields_disabled_and_no_device() {
    let dps = dps(Duration::ZERO);
    let mut enrollment = dps.individual_enrollment("dev-1").unwrap();
    enrollment.provisioning_status = ProvisioningStatus::Disabled;
    dps.create_or_update_enrollment(enrollment).unwrap();
    let who = login(&dps, "dev-1", &key(KEY));
    let started = dps.register(&who, b"{}").unwrap();
    let done = dps
        .operation_status(&who, &started.body.operation_id)
        .wait_stored()
        .unwrap();
    assert_eq!(
        (done.status, done.body.status),
        (200, RegistrationStatus::Disabled)
    );
    assert!(
        dps.hubs()
            .get("hub-b")
            .unwrap()
            .device("device-one")
            .is_none()
    );
    assert_eq!(
        dps.registration("dev-1").unwrap().status,
        RegistrationStatus::Disabled
    );
}

#[test]
fn deleted_enrollment_fails_the_pending_operation() {
    let dps = dps(Duration::ZERO);
    let who = login(&dps, "dev-1", &key(KEY));
    let started = dps.register(&who, b"{}").unwrap();
    assert!(dps.delete_enrollment("dev-1"));
    let done = dps
        .operation_status(&who, &started.body.operation_id)
        .wait_stored()
        .unwrap();
    assert_eq!(done.body.status, RegistrationStatus::Failed);
    assert_eq!(
        done.body.registration_state.unwrap().error_code,
        Some(super::assignment::ENROLLMENT_GONE)
    );
}

#[test]
fn bad_bodies_are_400_and_store_nothing() {
    let dps = dps(Duration::ZERO);
    let who = login(&dps, "dev-1", &key(KEY));
    let deep_payload = format!(r#"{{"payload": {}1{}}}"#, "[".repeat(33), "]".repeat(33));
    for body in [
        &b"{not json"[..],
        br#"{"registrationId":"someone-else"}"#,
        br#"[1,2]"#,
        br#"{} {}"#,
        deep_payload.as_bytes(),
    ] {
        let e = dps.register(&who, body).unwrap_err();
        assert_eq!((e.status(), e.code()), (400, 400004));
    }
    assert!(dps.operations.is_empty());
}

#[test]
fn wrong_keys_and_foreign_scopes_do_not_authenticate() {
    let dps = dps(Duration::ZERO);
    let expiry = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let wrong = sas::build_token("0ne00000A0A/registrations/dev-1", &[9u8; 32], None, expiry);
    let r = dps.authenticate_registration(
        "0ne00000A0A",
        "dev-1",
        Credential::Sas(&wrong),
        SystemTime::now(),
    );
    assert!(matches!(
        r,
        Err(crate::auth::AuthError::Token(sas::SasError::BadSignature))
    ));
    // The group key itself is not a device credential.
    let group = sas::build_token(
        "0ne00000A0A/registrations/member-1",
        key(GROUP_KEY).as_bytes(),
        None,
        expiry,
    );
    assert!(
        dps.authenticate_registration(
            "0ne00000A0A",
            "member-1",
            Credential::Sas(&group),
            SystemTime::now()
        )
        .is_err()
    );
    let good = sas::build_token(
        "0ne00000A0A/registrations/dev-1",
        key(KEY).as_bytes(),
        Some("registration"),
        expiry,
    );
    assert!(matches!(
        dps.authenticate_registration(
            "0ne99999999",
            "dev-1",
            Credential::Sas(&good),
            SystemTime::now()
        ),
        Err(crate::auth::AuthError::UnknownIdScope(_))
    ));
    let other_skn = sas::build_token(
        "0ne00000A0A/registrations/dev-1",
        key(KEY).as_bytes(),
        Some("owner"),
        expiry,
    );
    assert!(
        dps.authenticate_registration(
            "0ne00000A0A",
            "dev-1",
            Credential::Sas(&other_skn),
            SystemTime::now()
        )
        .is_err()
    );
}
