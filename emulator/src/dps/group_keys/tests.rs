//! The keyed group lookup and its cache: a device is matched with the group whose current key
//! derives its credential, whatever the cache remembers from before a rotation, a deletion, a
//! re-creation or a disabling.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::auth::keys::SymmetricKey;
use crate::auth::sas::{self, SasError};
use crate::auth::{AuthError, Credential};
use crate::dps::attestation::RegistrationIdentity;
use crate::dps::model::{
    AttestationMechanism, EnrollmentGroup, ProvisioningStatus, RegistrationStatus,
};
use crate::dps::{Dps, DpsTiming, EnrollmentRef};
use crate::hub::{Hub, Hubs};
use crate::pending::WaitStored;

const OLD: &str =
    "/VX4hnlv5HUMoLa5FBff/tGKwZFUM0XlQMp/v7oWXGolrvmEuIrRnsx6k9Gi3drdCbAyfmt+aq8zsQJ6lg3D3g==";
const NEW: &str =
    "r4NGzNJJt6hI3LLBYTcWDxjmP0rIgBfVqj405xXVObh/HtBkNW8DUZkFA0/jYBUu60rSLc+H4PQnrZYrl9ymcg==";
const OTHER: &str =
    "sbDDeEzRuEuGKag+kQKV+T1QGakRtHpsERLP0yPjwR93TrpEgEh/Y07CXstfha6dhIPWvdD1nRxK5T0KGKA+nQ==";
const SPARE: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

fn dps() -> Dps {
    let hubs = Arc::new(Hubs::new(vec![Hub::new("hub-a", vec![], 10)]));
    let dps = Dps::new(
        "0ne00000A0A",
        "localhost",
        vec![],
        hubs,
        DpsTiming::default(),
    );
    put_group(&dps, "group-1", OLD, SPARE);
    dps
}

fn put_group(dps: &Dps, id: &str, primary: &str, secondary: &str) {
    dps.create_or_update_enrollment_group(EnrollmentGroup::new(
        id,
        AttestationMechanism::symmetric_key(Some(primary), Some(secondary)),
    ))
    .unwrap();
}

/// Authenticates `registration_id` with the device key derived from `group_key`.
fn login(
    dps: &Dps,
    registration_id: &str,
    group_key: &str,
) -> Result<RegistrationIdentity, AuthError> {
    let expiry = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let device_key = SymmetricKey::from_base64(group_key)
        .unwrap()
        .derive_device_key(registration_id);
    let token = sas::build_token(
        &format!("0ne00000A0A/registrations/{registration_id}"),
        device_key.as_bytes(),
        None,
        expiry,
    );
    dps.authenticate_registration(
        "0ne00000A0A",
        registration_id,
        Credential::Sas(&token),
        SystemTime::now(),
    )
}

fn group_of(who: &RegistrationIdentity) -> &EnrollmentRef {
    who.enrollment()
}

fn cached(dps: &Dps, registration_id: &str) -> Option<(u64, usize)> {
    dps.group_keys.verified.get(registration_id).map(|e| *e)
}

#[test]
fn a_verified_device_is_remembered_for_the_current_generation_only() {
    let dps = dps();
    put_group(&dps, "group-2", OTHER, SPARE);
    let who = login(&dps, "member-1", OTHER).unwrap();
    assert_eq!(group_of(&who), &EnrollmentRef::Group("group-2".into()));
    let (generation, at) = cached(&dps, "member-1").unwrap();
    assert_eq!(at, 1);
    // The same device again: still group-2, from the cache's entry.
    assert_eq!(
        group_of(&login(&dps, "member-1", OTHER).unwrap()),
        &EnrollmentRef::Group("group-2".into())
    );
    // A group created earlier by id shifts every position: the entry of the old generation
    // is dropped when the snapshot is rebuilt, and the device is found at its new position.
    put_group(&dps, "group-0", NEW, SPARE);
    assert_eq!(
        group_of(&login(&dps, "member-1", OTHER).unwrap()),
        &EnrollmentRef::Group("group-2".into())
    );
    let (newer, at) = cached(&dps, "member-1").unwrap();
    assert!(newer > generation);
    assert_eq!(at, 2);
}

#[test]
fn a_rotated_group_key_never_authenticates_with_the_old_key() {
    let dps = dps();
    login(&dps, "member-1", OLD).unwrap();
    assert!(cached(&dps, "member-1").is_some());
    put_group(&dps, "group-1", NEW, SPARE);
    assert_eq!(
        login(&dps, "member-1", OLD).unwrap_err(),
        AuthError::Token(SasError::BadSignature)
    );
    assert_eq!(
        group_of(&login(&dps, "member-1", NEW).unwrap()),
        &EnrollmentRef::Group("group-1".into())
    );
    // The old key moved to the secondary slot still verifies: the current keys decide.
    put_group(&dps, "group-1", SPARE, OLD);
    assert_eq!(
        group_of(&login(&dps, "member-1", OLD).unwrap()),
        &EnrollmentRef::Group("group-1".into())
    );
}

#[test]
fn a_deleted_or_recreated_group_never_authenticates_with_what_it_was() {
    let dps = dps();
    put_group(&dps, "group-2", OTHER, SPARE);
    login(&dps, "member-1", OLD).unwrap();
    assert!(dps.delete_enrollment_group("group-1"));
    assert_eq!(
        login(&dps, "member-1", OLD).unwrap_err(),
        AuthError::Token(SasError::BadSignature)
    );
    // Re-created under the same id with another key.
    put_group(&dps, "group-1", NEW, SPARE);
    assert_eq!(
        login(&dps, "member-1", OLD).unwrap_err(),
        AuthError::Token(SasError::BadSignature)
    );
    // No symmetric-key group left: the registration id is unknown.
    assert!(dps.delete_enrollment_group("group-1"));
    assert!(dps.delete_enrollment_group("group-2"));
    assert_eq!(
        login(&dps, "member-1", OLD).unwrap_err(),
        AuthError::UnknownRegistration("member-1".into())
    );
}

#[test]
fn a_disabled_group_disables_a_remembered_device() {
    let dps = dps();
    let who = login(&dps, "member-1", OLD).unwrap();
    let started = dps.register(&who, b"{}").unwrap();
    let done = dps
        .operation_status(&who, &started.body.operation_id)
        .wait_stored()
        .unwrap();
    assert_eq!(done.body.status, RegistrationStatus::Assigned);

    let mut group = dps.enrollment_group("group-1").unwrap();
    group.provisioning_status = ProvisioningStatus::Disabled;
    dps.create_or_update_enrollment_group(group).unwrap();
    // Authentication still names the group (as before the cache); the registration reads the
    // group's current status and refuses.
    let who = login(&dps, "member-1", OLD).unwrap();
    let started = dps.register(&who, b"{}").unwrap();
    let done = dps
        .operation_status(&who, &started.body.operation_id)
        .wait_stored()
        .unwrap();
    assert_eq!(done.body.status, RegistrationStatus::Disabled);
}

#[test]
fn primaries_are_tried_before_secondaries_and_a_bad_signature_matches_nothing() {
    let dps = dps();
    // Earlier by id, with group-1's primary as its secondary: the primary match wins.
    put_group(&dps, "a-group", NEW, OLD);
    assert_eq!(
        group_of(&login(&dps, "member-1", OLD).unwrap()),
        &EnrollmentRef::Group("group-1".into())
    );
    assert_eq!(
        group_of(&login(&dps, "member-2", NEW).unwrap()),
        &EnrollmentRef::Group("a-group".into())
    );
    assert_eq!(
        group_of(&login(&dps, "member-3", SPARE).unwrap()),
        &EnrollmentRef::Group("group-1".into())
    );
    let token = "SharedAccessSignature sr=0ne00000A0A%2Fregistrations%2Fm&sig=%%%&se=99999999999";
    assert_eq!(
        dps.authenticate_registration(
            "0ne00000A0A",
            "m",
            Credential::Sas(token),
            SystemTime::now(),
        )
        .unwrap_err(),
        AuthError::Token(SasError::BadSignature)
    );
}
