//! Service API rules, individual enrollments: writes, preconditions, read-only fields,
//! attestation round trips. The helpers here are shared with [`super::tests_queries`].

use crate::pending::WaitStored;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::json;

use super::*;
use crate::auth::keys::SymmetricKey;
use crate::auth::{Credential, sas};
use crate::certs;
use crate::dps::DpsTiming;
use crate::dps::attestation::RegistrationIdentity;
use crate::dps::model::{
    AttestationType, ProvisioningStatus, RegistrationStatus, SymmetricKeyAttestation,
    X509Attestation, X509CertificateWithInfo, X509Certificates,
};
use crate::hub::{Hub, Hubs};

pub(super) const KEY: &str =
    "sbDDeEzRuEuGKag+kQKV+T1QGakRtHpsERLP0yPjwR93TrpEgEh/Y07CXstfha6dhIPWvdD1nRxK5T0KGKA+nQ==";
pub(super) const GROUP_KEY: &str =
    "/VX4hnlv5HUMoLa5FBff/tGKwZFUM0XlQMp/v7oWXGolrvmEuIrRnsx6k9Gi3drdCbAyfmt+aq8zsQJ6lg3D3g==";

pub(super) fn dps() -> Dps {
    let hubs = Arc::new(Hubs::new(vec![
        Hub::new("hub-a", vec![], 10),
        Hub::new("hub-b", vec![], 10),
    ]));
    let timing = DpsTiming {
        retry_after: 1,
        assignment_delay: Duration::ZERO,
    };
    Dps::new("0ne00000A0A", "localhost", vec![], hubs, timing)
}

pub(super) fn symmetric(primary: Option<&str>) -> AttestationMechanism {
    AttestationMechanism::symmetric_key(primary, None)
}

/// Enrollments as a client sends them: JSON, so the tests also cover the model's shape.
pub(super) fn enrollment(id: &str) -> IndividualEnrollment {
    serde_json::from_value(json!({
        "registrationId": id,
        "attestation": {"type": "symmetricKey", "symmetricKey": {"primaryKey": KEY}},
        "provisioningStatus": "enabled",
    }))
    .unwrap()
}

pub(super) fn group(id: &str) -> EnrollmentGroup {
    serde_json::from_value(json!({
        "enrollmentGroupId": id,
        "attestation": {"type": "symmetricKey", "symmetricKey": {"primaryKey": GROUP_KEY}},
    }))
    .unwrap()
}

pub(super) fn login(dps: &Dps, registration_id: &str, key: &str) -> RegistrationIdentity {
    let key = SymmetricKey::from_base64(key).unwrap();
    login_with(dps, registration_id, &key)
}

pub(super) fn login_with(
    dps: &Dps,
    registration_id: &str,
    key: &SymmetricKey,
) -> RegistrationIdentity {
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

/// Registers and polls once (no assignment delay), returning the final state.
pub(super) fn provision(dps: &Dps, who: &RegistrationIdentity) -> DeviceRegistrationState {
    let started = dps.register(who, b"{}").unwrap();
    dps.operation_status(who, &started.body.operation_id)
        .wait_stored()
        .unwrap()
        .body
        .registration_state
        .unwrap()
}

pub(super) fn code<T: std::fmt::Debug>(result: Result<T, DpsError>) -> u32 {
    result.unwrap_err().code()
}

#[test]
fn put_creates_with_quoted_etag_timestamps_and_generated_keys() {
    let dps = dps();
    let mut body = enrollment("dev-1");
    body.attestation = symmetric(None);
    let created = dps
        .put_enrollment("DEV-1", body, None)
        .wait_stored()
        .unwrap();

    let etag = created.etag.clone().unwrap();
    assert!(etag.starts_with('"') && etag.ends_with('"') && etag.len() == 38);
    assert!(created.created_date_time_utc.is_some());
    assert_eq!(
        created.created_date_time_utc,
        created.last_updated_date_time_utc
    );
    assert_eq!(created.registration_state, None);
    let keys = created.attestation.symmetric_key.clone().unwrap();
    for key in [keys.primary_key.unwrap(), keys.secondary_key.unwrap()] {
        assert_eq!(BASE64.decode(key).unwrap().len(), 64);
    }
    assert_eq!(dps.get_enrollment("Dev-1").unwrap(), created);
    // The JSON carries the etag with its quotes, as real DPS does.
    let json = serde_json::to_value(&created).unwrap();
    assert_eq!(json["etag"], json!(etag));
    assert!(json["createdDateTimeUtc"].is_string());
    assert!(json.get("registrationState").is_none());
}

#[test]
fn update_keeps_created_and_changes_etag_and_last_updated() {
    let dps = dps();
    let first = dps
        .put_enrollment("dev-1", enrollment("dev-1"), None)
        .wait_stored()
        .unwrap();
    std::thread::sleep(Duration::from_millis(2));
    let mut change = enrollment("dev-1");
    change.device_id = Some("renamed".into());
    let second = dps
        .put_enrollment("dev-1", change, first.etag.as_deref())
        .wait_stored()
        .unwrap();
    assert_eq!(second.created_date_time_utc, first.created_date_time_utc);
    assert_ne!(
        second.last_updated_date_time_utc,
        first.last_updated_date_time_utc
    );
    assert_ne!(second.etag, first.etag);
    assert_eq!(second.device_id.as_deref(), Some("renamed"));
    // The old etag no longer matches.
    let stale = dps
        .put_enrollment("dev-1", enrollment("dev-1"), first.etag.as_deref())
        .wait_stored();
    assert_eq!(code(stale), PRECONDITION_FAILED);
    assert_eq!(
        dps.get_enrollment("dev-1").unwrap().device_id.as_deref(),
        Some("renamed"),
        "a failed precondition changes nothing"
    );
}

#[test]
fn if_match_forms() {
    let dps = dps();
    let mut etag = dps
        .put_enrollment("dev-1", enrollment("dev-1"), None)
        .wait_stored()
        .unwrap()
        .etag
        .unwrap();
    // Each form of the current etag matches (every successful PUT makes a new one).
    let forms: [fn(&str) -> String; 5] = [
        |tag| tag.to_owned(),
        |tag| tag.trim_matches('"').to_owned(),
        |tag| format!("W/{tag}"),
        |tag| format!("  {tag} "),
        |_| "*".to_owned(),
    ];
    for form in forms {
        let put = dps
            .put_enrollment("dev-1", enrollment("dev-1"), Some(&form(&etag)))
            .wait_stored();
        etag = put.unwrap().etag.unwrap();
    }
    let wrong = dps
        .put_enrollment("dev-1", enrollment("dev-1"), Some("\"nope\""))
        .wait_stored();
    assert_eq!(code(wrong), PRECONDITION_FAILED);
    let listed = format!("\"nope\", {etag}");
    assert!(
        dps.put_enrollment("dev-1", enrollment("dev-1"), Some(&listed))
            .wait_stored()
            .is_ok()
    );

    // Absent entity: only `*` may create it.
    let absent = dps
        .put_enrollment("dev-2", enrollment("dev-2"), Some("\"abc\""))
        .wait_stored();
    assert_eq!(code(absent), PRECONDITION_FAILED);
    assert!(dps.individual_enrollment("dev-2").is_none());
    assert!(
        dps.put_enrollment("dev-2", enrollment("dev-2"), Some("*"))
            .wait_stored()
            .is_ok()
    );
}

#[test]
fn put_rejects_mismatched_ids_and_invalid_enrollments() {
    let dps = dps();
    let e = dps
        .put_enrollment("dev-2", enrollment("dev-1"), None)
        .wait_stored();
    assert_eq!(code(e), BAD_REQUEST);
    let mut bad_key = enrollment("dev-1");
    bad_key.attestation = symmetric(Some("not base64!"));
    let e = dps
        .put_enrollment("dev-1", bad_key, None)
        .wait_stored()
        .unwrap_err();
    assert_eq!((e.status(), e.code()), (400, BAD_REQUEST));
    assert!(e.message().contains("attestation.symmetricKey.primaryKey"));
    let mut bad_hub = enrollment("dev-1");
    bad_hub.iot_hubs = Some(vec!["elsewhere".into()]);
    assert_eq!(
        code(dps.put_enrollment("dev-1", bad_hub, None).wait_stored()),
        BAD_REQUEST
    );
    assert!(dps.enrollments().is_empty());
}

#[test]
fn read_only_fields_in_the_body_are_ignored() {
    let dps = dps();
    let body: IndividualEnrollment = serde_json::from_value(json!({
        "registrationId": "dev-1",
        "attestation": {"type": "symmetricKey", "symmetricKey": {"primaryKey": KEY}},
        "etag": "\"client-made\"",
        "createdDateTimeUtc": "2001-01-01T00:00:00Z",
        "lastUpdatedDateTimeUtc": 42,
        "registrationState": {"registrationId": "dev-1", "status": "assigned"},
        "capabilities": {"iotEdge": true},
    }))
    .unwrap();
    let stored = dps
        .put_enrollment("dev-1", body, None)
        .wait_stored()
        .unwrap();
    assert_ne!(stored.etag.as_deref(), Some("\"client-made\""));
    assert_ne!(
        stored.created_date_time_utc.as_deref(),
        Some("2001-01-01T00:00:00Z")
    );
    assert!(stored.last_updated_date_time_utc.is_some());
    assert_eq!(stored.registration_state, None);
    // Fields the emulator does not interpret survive.
    assert_eq!(stored.extra["capabilities"], json!({"iotEdge": true}));

    // A registrationState of an unknown shape does not make the body invalid.
    let odd: IndividualEnrollment = serde_json::from_value(json!({
        "registrationId": "dev-1",
        "attestation": {"type": "none"},
        "registrationState": {"status": "somethingNew"},
    }))
    .unwrap();
    assert_eq!(odd.registration_state, None);
}

#[test]
fn symmetric_key_attestation_mechanisms_round_trip() {
    let dps = dps();
    // Symmetric keys given by the client come back unchanged.
    let mut keyed = enrollment("dev-1");
    keyed.attestation.symmetric_key = Some(SymmetricKeyAttestation {
        primary_key: Some(KEY.into()),
        secondary_key: Some(GROUP_KEY.into()),
    });
    let sent = keyed.attestation.clone();
    dps.put_enrollment("dev-1", keyed, None)
        .wait_stored()
        .unwrap();
    assert_eq!(dps.get_enrollment("dev-1").unwrap().attestation, sent);
    assert_eq!(dps.enrollment_attestation("DEV-1").unwrap(), sent);
}

#[test]
fn x509_attestation_mechanisms_round_trip() {
    let dps = dps();
    // X.509: a device certificate on an individual enrollment, a CA on a group.
    let root = certs::root_ca("Round Trip Root", 30).unwrap();
    let device = certs::issue_device(&root.to_ca().unwrap(), "x509-dev", 30).unwrap();
    let with_cert = |pem: &str| {
        Some(X509Certificates {
            primary: Some(X509CertificateWithInfo {
                certificate: Some(pem.to_owned()),
                info: None,
            }),
            secondary: None,
        })
    };
    let x509 = |x509: X509Attestation| AttestationMechanism {
        kind: AttestationType::X509,
        symmetric_key: None,
        x509: Some(x509),
        tpm: None,
    };
    let individual = x509(X509Attestation {
        client_certificates: with_cert(&device.cert_pem),
        ..Default::default()
    });
    let mut x509_enrollment = enrollment("x509-dev");
    x509_enrollment.attestation = individual.clone();
    dps.put_enrollment("x509-dev", x509_enrollment, None)
        .wait_stored()
        .unwrap();
    assert_eq!(
        dps.get_enrollment("x509-dev").unwrap().attestation,
        individual
    );
    assert_eq!(dps.enrollment_attestation("x509-dev").unwrap(), individual);

    let signing = x509(X509Attestation {
        signing_certificates: with_cert(&root.cert_pem),
        ..Default::default()
    });
    let mut x509_group = group("x509-group");
    x509_group.attestation = signing.clone();
    dps.put_enrollment_group("x509-group", x509_group, None)
        .wait_stored()
        .unwrap();
    assert_eq!(
        dps.get_enrollment_group("x509-group").unwrap().attestation,
        signing
    );
    assert_eq!(
        dps.enrollment_group_attestation("X509-GROUP").unwrap(),
        signing
    );

    // The group is found from a device chain, and no longer once deleted.
    let chain: Vec<_> = device
        .full_chain_der()
        .iter()
        .map(|der| crate::auth::x509::inspect(der).unwrap())
        .collect();
    let found = dps.x509_groups_for_chain(&chain);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].enrollment_group_id, "x509-group");
    dps.delete_enrollment_group_checked("x509-group", None)
        .wait_stored()
        .unwrap();
    assert!(dps.x509_groups_for_chain(&chain).is_empty());
}

#[test]
fn missing_enrollments_are_404_and_delete_checks_the_etag() {
    let dps = dps();
    assert_eq!(code(dps.get_enrollment("nobody")), ENROLLMENT_NOT_FOUND);
    assert_eq!(
        code(dps.enrollment_attestation("nobody")),
        ENROLLMENT_NOT_FOUND
    );
    assert_eq!(
        code(dps.delete_enrollment_checked("nobody", None).wait_stored()),
        ENROLLMENT_NOT_FOUND
    );
    assert_eq!(
        code(
            dps.delete_enrollment_checked("nobody", Some("*"))
                .wait_stored()
        ),
        ENROLLMENT_NOT_FOUND
    );
    assert_eq!(dps.get_enrollment("nobody").unwrap_err().status(), 404);

    let etag = dps
        .put_enrollment("dev-1", enrollment("dev-1"), None)
        .wait_stored()
        .unwrap()
        .etag
        .unwrap();
    assert_eq!(
        code(
            dps.delete_enrollment_checked("dev-1", Some("\"other\""))
                .wait_stored()
        ),
        PRECONDITION_FAILED
    );
    assert!(dps.get_enrollment("dev-1").is_ok());
    dps.delete_enrollment_checked("DEV-1", Some(&etag))
        .wait_stored()
        .unwrap();
    assert_eq!(code(dps.get_enrollment("dev-1")), ENROLLMENT_NOT_FOUND);

    dps.put_enrollment("dev-1", enrollment("dev-1"), None)
        .wait_stored()
        .unwrap();
    dps.delete_enrollment_checked("dev-1", Some("*"))
        .wait_stored()
        .unwrap();
    dps.put_enrollment("dev-1", enrollment("dev-1"), None)
        .wait_stored()
        .unwrap();
    dps.delete_enrollment_checked("dev-1", None)
        .wait_stored()
        .unwrap();
    assert!(dps.enrollments().is_empty());
}

#[test]
fn library_create_or_update_also_sets_etag_and_timestamps() {
    let dps = dps();
    let first = dps
        .create_or_update_enrollment(enrollment("dev-1"))
        .unwrap();
    assert!(first.etag.is_some() && first.created_date_time_utc.is_some());
    let second = dps
        .create_or_update_enrollment(enrollment("dev-1"))
        .unwrap();
    assert_ne!(second.etag, first.etag);
    assert_eq!(second.created_date_time_utc, first.created_date_time_utc);
    let g = dps.create_or_update_enrollment_group(group("g")).unwrap();
    assert!(g.etag.is_some() && g.last_updated_date_time_utc.is_some());
}

#[test]
fn changes_apply_to_the_next_registration() {
    let dps = dps();
    let mut e = enrollment("dev-1");
    e.device_id = Some("first-device".into());
    e.iot_hubs = Some(vec!["hub-a".into()]);
    dps.put_enrollment("dev-1", e, None).wait_stored().unwrap();
    let who = login(&dps, "dev-1", KEY);
    let state = provision(&dps, &who);
    assert_eq!(state.status, RegistrationStatus::Assigned);
    assert_eq!(state.assigned_hub.as_deref(), Some("hub-a"));
    assert_eq!(state.device_id.as_deref(), Some("first-device"));

    // GET shows the registration, in the service API's shape.
    let read = dps.get_enrollment("dev-1").unwrap();
    let shown = read.registration_state.clone().unwrap();
    assert_eq!(shown.assigned_hub.as_deref(), Some("hub-a"));
    assert_eq!(shown.symmetric_key, None);
    assert_eq!(shown.etag, state.etag);
    // PUT of what GET returned works (registrationState is ignored) and applies at once.
    let mut change = read;
    change.provisioning_status = ProvisioningStatus::Disabled;
    let etag = change.etag.clone();
    let updated = dps
        .put_enrollment("dev-1", change, etag.as_deref())
        .wait_stored()
        .unwrap();
    assert!(updated.registration_state.is_some());
    assert_eq!(provision(&dps, &who).status, RegistrationStatus::Disabled);

    // New keys: the old one no longer authenticates, the new one does.
    let mut rekeyed = enrollment("dev-1");
    rekeyed.attestation = symmetric(Some(GROUP_KEY));
    dps.put_enrollment("dev-1", rekeyed, None)
        .wait_stored()
        .unwrap();
    let token = sas::build_token(
        "0ne00000A0A/registrations/dev-1",
        SymmetricKey::from_base64(KEY).unwrap().as_bytes(),
        None,
        u64::MAX / 2,
    );
    assert!(
        dps.authenticate_registration(
            "0ne00000A0A",
            "dev-1",
            Credential::Sas(&token),
            SystemTime::now()
        )
        .is_err()
    );
    let who = login(&dps, "dev-1", GROUP_KEY);
    assert_eq!(provision(&dps, &who).status, RegistrationStatus::Assigned);
}
