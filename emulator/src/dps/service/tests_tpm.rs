//! TPM individual enrollments through the service API's rules: PUT → GET returns the keys as
//! given, groups refuse TPM, TPM registration ids are lower-case, and the lookup the TPM
//! registration flow starts from.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::json;

use super::tests::{dps, group};
use super::*;
use crate::auth::AuthError;
use crate::pending::WaitStored;

const EK: &[u8] = include_bytes!("../../auth/tpm/testdata/ek.pub");
const SRK: &[u8] = include_bytes!("../../auth/tpm/testdata/srk.pub");

/// As a client sends it: JSON, so the tests also cover the model's shape.
fn tpm_enrollment(id: &str, srk: bool) -> IndividualEnrollment {
    let mut tpm = json!({"endorsementKey": BASE64.encode(EK)});
    if srk {
        tpm["storageRootKey"] = json!(BASE64.encode(SRK));
    }
    serde_json::from_value(json!({
        "registrationId": id,
        "deviceId": "tpm-device",
        "attestation": {"type": "tpm", "tpm": tpm},
    }))
    .unwrap()
}

#[test]
fn the_rust_api_constructors_make_what_the_json_says() {
    let ek = BASE64.encode(EK);
    let srk = BASE64.encode(SRK);
    let mut built = IndividualEnrollment::tpm("tpm-1", &ek, Some(&srk));
    built.device_id = Some("tpm-device".into());
    assert_eq!(built, tpm_enrollment("tpm-1", true));
    let dps = dps();
    let stored = dps.create_or_update_enrollment(built).unwrap();
    assert_eq!(
        stored.attestation,
        tpm_enrollment("tpm-1", true).attestation
    );

    let symmetric = IndividualEnrollment::symmetric_key("symm-1", None, None);
    let stored = dps.create_or_update_enrollment(symmetric).unwrap();
    let keys = stored.attestation.symmetric_key.unwrap();
    assert!(keys.primary_key.is_some() && keys.secondary_key.is_some());
}

#[test]
fn tpm_enrollments_round_trip_through_put_get_query_and_delete() {
    let dps = dps();
    for srk in [false, true] {
        let sent = tpm_enrollment("tpm-1", srk);
        let stored = dps
            .put_enrollment("tpm-1", sent.clone(), None)
            .wait_stored()
            .unwrap();
        assert_eq!(stored.attestation, sent.attestation);
        let read = dps.get_enrollment("tpm-1").unwrap();
        assert_eq!(
            serde_json::to_value(&read.attestation).unwrap(),
            serde_json::to_value(&sent.attestation).unwrap()
        );
        assert_eq!(
            dps.enrollment_attestation("tpm-1").unwrap(),
            sent.attestation
        );
        let page = dps.query_enrollments("*", None, None).unwrap();
        assert_eq!(page.items.len(), 1);
        assert_eq!(page.items[0].attestation, sent.attestation);
    }
    dps.delete_enrollment_checked("tpm-1", None)
        .wait_stored()
        .unwrap();
    assert!(dps.get_enrollment("tpm-1").is_err());
}

#[test]
fn malformed_endorsement_keys_are_400_with_a_6_digit_code() {
    let dps = dps();
    for ek in ["not base64!", "AAAA", &BASE64.encode(&EK[..EK.len() - 2])] {
        let mut bad = tpm_enrollment("tpm-1", false);
        bad.attestation.tpm = Some(crate::dps::model::TpmAttestation {
            endorsement_key: Some(ek.to_owned()),
            storage_root_key: None,
        });
        let error = dps.put_enrollment("tpm-1", bad, None).err().unwrap();
        assert_eq!((error.status(), error.code()), (400, 400004), "{ek}");
        assert!(error.message().contains("attestation.tpm.endorsementKey"));
    }
}

#[test]
fn tpm_registration_ids_are_lower_case_alphanumerics_and_hyphens() {
    let dps = dps();
    for id in ["Tpm-1", "tpm.1", "tpm_1", "tpm:1"] {
        let error = dps
            .put_enrollment(id, tpm_enrollment(id, false), None)
            .err()
            .unwrap();
        assert_eq!(error.code(), 400004, "{id}");
        assert!(error.message().contains("TPM"), "{}", error.message());
    }
    let longest = "a".repeat(128);
    assert!(
        dps.put_enrollment(&longest, tpm_enrollment(&longest, false), None)
            .is_ok()
    );
}

#[test]
fn enrollment_groups_refuse_tpm_attestation() {
    let dps = dps();
    let mut tpm_group = group("g-1");
    tpm_group.attestation = tpm_enrollment("x", false).attestation;
    let error = dps
        .put_enrollment_group("g-1", tpm_group, None)
        .err()
        .unwrap();
    assert_eq!((error.status(), error.code()), (400, 400004));
    assert!(
        error
            .message()
            .contains("Enrollment groups do not support TPM attestation"),
        "{}",
        error.message()
    );
}

#[test]
fn the_tpm_lookup_gives_the_parsed_keys_and_says_why_there_are_none() {
    let dps = dps();
    dps.create_or_update_enrollment(tpm_enrollment("tpm-1", true))
        .unwrap();
    let mut disabled = tpm_enrollment("tpm-2", false);
    disabled.provisioning_status = crate::dps::model::ProvisioningStatus::Disabled;
    dps.create_or_update_enrollment(disabled).unwrap();
    dps.create_or_update_enrollment(super::tests::enrollment("symm-1"))
        .unwrap();

    let found = dps.tpm_enrollment("0ne00000a0a", "TPM-1").unwrap();
    assert_eq!(found.registration_id, "tpm-1");
    assert_eq!(found.device_id.as_deref(), Some("tpm-device"));
    assert!(found.enabled);
    assert_eq!(found.keys.endorsement_key().tpm2b(), EK);
    assert_eq!(found.keys.storage_root_key().map(|k| k.tpm2b()), Some(SRK));
    assert!(found.keys.is_endorsement_key(&BASE64.encode(EK)));

    let off = dps.tpm_enrollment("0ne00000A0A", "tpm-2").unwrap();
    assert!(!off.enabled);
    assert_eq!(off.keys.storage_root_key(), None);

    assert!(matches!(
        dps.tpm_enrollment("0ne00000XXX", "tpm-1"),
        Err(AuthError::UnknownIdScope(_))
    ));
    assert!(matches!(
        dps.tpm_enrollment("0ne00000A0A", "nobody"),
        Err(AuthError::UnknownRegistration(_))
    ));
    assert!(matches!(
        dps.tpm_enrollment("0ne00000A0A", "symm-1"),
        Err(AuthError::WrongCredentialType { .. })
    ));
    assert!(matches!(
        dps.tpm_enrollment("0ne00000A0A", "bad id!"),
        Err(AuthError::InvalidRegistrationId(_))
    ));
}
