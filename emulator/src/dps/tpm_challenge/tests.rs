//! The TPM challenge as a domain operation: a software TPM plays the device (activate, import,
//! sign), and swtpm's real EK/SRK (auth/tpm/testdata) must be accepted as they are.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::json;

use super::*;
use crate::auth::Credential;
use crate::auth::sas::SasError;
use crate::auth::tpm::software::SoftwareTpm;
use crate::dps::DpsTiming;
use crate::dps::model::{
    AttestationMechanism, AttestationType, IndividualEnrollment, ProvisioningStatus,
    SymmetricKeyAttestation, TpmAttestation,
};
use crate::hub::{Hub, Hubs};

const SCOPE: &str = "0ne00000A0A";

fn testdata(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/auth/tpm/testdata")
        .join(name);
    std::fs::read(path).unwrap()
}

/// Fresh copies of three distinct RSA-2048 software TPMs (enrollments take RSA-2048 EKs only;
/// generating them once keeps the tests fast).
fn software_tpms() -> [SoftwareTpm; 3] {
    static TPMS: OnceLock<[SoftwareTpm; 3]> = OnceLock::new();
    TPMS.get_or_init(|| std::array::from_fn(|_| SoftwareTpm::new(2048).unwrap()))
        .clone()
}

fn software_tpm() -> SoftwareTpm {
    let [tpm, _, _] = software_tpms();
    tpm
}

fn enrollment(registration_id: &str, attestation: AttestationMechanism) -> IndividualEnrollment {
    IndividualEnrollment {
        registration_id: registration_id.into(),
        device_id: None,
        attestation,
        iot_hub_host_name: None,
        iot_hubs: None,
        initial_twin: None,
        provisioning_status: ProvisioningStatus::Enabled,
        etag: None,
        registration_state: None,
        created_date_time_utc: None,
        last_updated_date_time_utc: None,
        allocation_policy: None,
        reprovision_policy: None,
        custom_allocation_definition: None,
        extra: Default::default(),
    }
}

fn tpm_attestation(ek: &[u8]) -> AttestationMechanism {
    AttestationMechanism {
        kind: AttestationType::Tpm,
        symmetric_key: None,
        x509: None,
        tpm: Some(TpmAttestation {
            endorsement_key: Some(BASE64.encode(ek)),
            storage_root_key: None,
        }),
    }
}

/// A DPS with `tpm-dev` enrolled for `ek` and a symmetric-key enrollment `sym-dev`.
fn dps_with(ek: &[u8]) -> Dps {
    let hubs = Arc::new(Hubs::new(vec![Hub::new("hub-a", vec![], 10)]));
    let dps = Dps::new(SCOPE, "localhost", vec![], hubs, DpsTiming::default());
    dps.create_or_update_enrollment(enrollment("tpm-dev", tpm_attestation(ek)))
        .unwrap();
    let symmetric = AttestationMechanism {
        kind: AttestationType::SymmetricKey,
        symmetric_key: Some(SymmetricKeyAttestation {
            primary_key: Some(BASE64.encode([7u8; 32])),
            secondary_key: None,
        }),
        x509: None,
        tpm: None,
    };
    dps.create_or_update_enrollment(enrollment("sym-dev", symmetric))
        .unwrap();
    dps
}

fn device_of(tpm: &SoftwareTpm) -> TpmDevice {
    TpmDevice::from_tpm2b(
        &tpm.endorsement_key().unwrap(),
        &tpm.storage_root_key().unwrap(),
    )
    .unwrap()
}

/// The token the SDKs build: `sr` URL-encoded, signed inside the TPM, `skn=registration`.
fn tpm_token(tpm: &SoftwareTpm, registration_id: &str) -> String {
    let expiry = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    tpm.sas_token(
        &format!("{SCOPE}/registrations/{registration_id}"),
        Some("registration"),
        expiry,
    )
    .unwrap()
}

fn authenticate(
    dps: &Dps,
    registration_id: &str,
    token: &str,
) -> Result<Arc<TpmDevice>, AuthError> {
    dps.authenticate_registration(
        SCOPE,
        registration_id,
        Credential::Sas(token),
        SystemTime::now(),
    )
    .map(|who| Arc::clone(who.tpm().expect("a TPM identity")))
}

#[test]
fn a_device_that_imports_the_challenge_and_signs_with_it_is_authenticated() {
    let mut tpm = software_tpm();
    let dps = dps_with(&tpm.endorsement_key().unwrap());
    let challenge = dps
        .tpm_challenge(SCOPE, "tpm-dev", device_of(&tpm))
        .unwrap();
    assert_eq!(challenge.key_name, "registration");
    let body = challenge.to_json();
    assert!(
        body.get("status").is_none(),
        "the C SDK needs a body without status"
    );
    assert_eq!(
        BASE64
            .decode(body["authenticationKey"].as_str().unwrap())
            .unwrap(),
        challenge.authentication_key
    );

    tpm.import(&challenge.authentication_key).unwrap();
    let device = authenticate(&dps, "TPM-Dev", &tpm_token(&tpm, "TPM-Dev")).unwrap();
    assert_eq!(*device, device_of(&tpm));
}

#[test]
fn the_real_swtpm_keys_are_accepted_and_the_blob_splits_into_six_parts() {
    let ek = testdata("ek.pub");
    let device = TpmDevice::from_tpm2b(&ek, &testdata("srk.pub")).unwrap();
    let dps = dps_with(&ek);
    let challenge = dps.tpm_challenge(SCOPE, "tpm-dev", device).unwrap();
    let parts = crate::auth::tpm::authentication_key::AuthenticationKeyParts::parse(
        &challenge.authentication_key,
    )
    .unwrap();
    assert!(parts.enc_uri_data.is_empty());
}

#[test]
fn a_wrong_ek_an_unknown_id_and_a_non_tpm_enrollment_get_no_challenge() {
    let [enrolled, other, _] = software_tpms();
    let dps = dps_with(&enrolled.endorsement_key().unwrap());

    let wrong = dps
        .tpm_challenge(SCOPE, "tpm-dev", device_of(&other))
        .unwrap_err();
    assert!(matches!(wrong, AuthError::TpmRefused(_)), "{wrong:?}");
    assert_eq!(wrong.code(), 401002);
    let unknown = dps
        .tpm_challenge(SCOPE, "nobody", device_of(&enrolled))
        .unwrap_err();
    assert_eq!(unknown, AuthError::UnknownRegistration("nobody".into()));
    let symmetric = dps
        .tpm_challenge(SCOPE, "sym-dev", device_of(&enrolled))
        .unwrap_err();
    assert!(
        matches!(symmetric, AuthError::WrongCredentialType { .. }),
        "{symmetric:?}"
    );
    let scope = dps
        .tpm_challenge("0ne00000FFF", "tpm-dev", device_of(&enrolled))
        .unwrap_err();
    assert!(matches!(scope, AuthError::UnknownIdScope(_)));
    let invalid = dps
        .tpm_challenge(SCOPE, "bad id!", device_of(&enrolled))
        .unwrap_err();
    assert_eq!(invalid.code(), 400004);

    assert!(dps.is_tpm_registration(SCOPE, "TPM-DEV"));
    assert!(!dps.is_tpm_registration(SCOPE, "sym-dev"));
    assert!(!dps.is_tpm_registration(SCOPE, "nobody"));
    assert!(!dps.is_tpm_registration("0ne00000FFF", "tpm-dev"));
}

#[test]
fn a_device_that_cannot_open_the_challenge_cannot_sign_for_it() {
    let [enrolled, mut impostor, mut other] = software_tpms();
    let dps = dps_with(&enrolled.endorsement_key().unwrap());
    // The impostor sends the enrolled EK (public) with its own SRK: it gets a challenge it
    // cannot activate, since that needs the EK's private key.
    let stolen = TpmDevice::from_tpm2b(
        &enrolled.endorsement_key().unwrap(),
        &impostor.storage_root_key().unwrap(),
    )
    .unwrap();
    let challenge = dps.tpm_challenge(SCOPE, "tpm-dev", stolen).unwrap();
    assert!(impostor.import(&challenge.authentication_key).is_err());
    // Signing with anything else is refused.
    let blob = device_of(&other).wrap(&[9u8; 32]).unwrap();
    other.import(&blob).unwrap();
    let refused = authenticate(&dps, "tpm-dev", &tpm_token(&other, "tpm-dev")).unwrap_err();
    assert_eq!(refused, AuthError::Token(SasError::BadSignature));
}

#[test]
fn a_token_before_any_challenge_or_after_a_newer_one_is_refused() {
    let mut tpm = software_tpm();
    let dps = dps_with(&tpm.endorsement_key().unwrap());
    let first = dps
        .tpm_challenge(SCOPE, "tpm-dev", device_of(&tpm))
        .unwrap();
    tpm.import(&first.authentication_key).unwrap();
    let token = tpm_token(&tpm, "tpm-dev");

    let fresh = dps_with(&tpm.endorsement_key().unwrap());
    assert_eq!(
        authenticate(&fresh, "tpm-dev", &token).unwrap_err(),
        AuthError::TpmNotChallenged
    );

    dps.tpm_challenge(SCOPE, "tpm-dev", device_of(&tpm))
        .unwrap();
    assert_eq!(
        authenticate(&dps, "tpm-dev", &token).unwrap_err(),
        AuthError::Token(SasError::BadSignature)
    );
}

#[test]
fn the_assigned_state_carries_the_hub_key_for_the_same_tpm() {
    let mut tpm = software_tpm();
    let keys = new_hub_keys().unwrap();
    let state = assigned_state(&device_of(&tpm), &keys).unwrap();
    let blob = BASE64
        .decode(state["authenticationKey"].as_str().unwrap())
        .unwrap();
    tpm.import(&blob).unwrap();
    let DeviceAuthentication::Sas { primary, secondary } = keys else {
        panic!("SAS keys expected");
    };
    assert_ne!(primary, secondary);
    let string_to_sign = b"localhost%2Fdevices%2Ftpm-dev\n1893456000";
    assert_eq!(
        BASE64.encode(tpm.hmac(string_to_sign).unwrap()),
        crate::auth::sas::hmac_base64(primary.as_bytes(), string_to_sign)
    );
    let certificate = DeviceAuthentication::CertificateAuthority {
        provisioning_anchors: vec![],
    };
    assert!(assigned_state(&device_of(&tpm), &certificate).is_err());
}

#[test]
fn malformed_keys_and_registration_bodies_are_errors_never_panics() {
    let ek = testdata("ek.pub");
    let srk = testdata("srk.pub");
    for cut in 0..ek.len() {
        assert!(TpmDevice::from_tpm2b(ek.get(..cut).unwrap(), &srk).is_err());
    }
    for cut in 0..srk.len() {
        assert!(TpmDevice::from_tpm2b(&ek, srk.get(..cut).unwrap()).is_err());
    }
    let mut longer = ek.clone();
    longer.push(0);
    assert!(TpmDevice::from_tpm2b(&longer, &srk).is_err());
    // The identity key's own public area is no storage key.
    let keyed_hash = crate::auth::tpm::identity_key::IdentityKey::new(&[1; 32], &[2; 32])
        .unwrap()
        .public
        .to_tpm2b()
        .unwrap();
    assert!(TpmDevice::from_tpm2b(&keyed_hash, &srk).is_err());
    for body in [
        json!({}),
        json!({"endorsementKey": 1, "storageRootKey": "AA=="}),
        json!({"endorsementKey": "%%%", "storageRootKey": BASE64.encode(&srk)}),
        json!({"endorsementKey": BASE64.encode(&ek)}),
        json!("text"),
    ] {
        assert!(TpmDevice::from_registration_json(&body).is_err(), "{body}");
    }
    let ok = json!({"endorsementKey": BASE64.encode(&ek), "storageRootKey": BASE64.encode(&srk)});
    assert!(TpmDevice::from_registration_json(&ok).is_ok());
}

#[test]
fn an_expired_token_signed_with_the_right_key_is_refused() {
    let mut tpm = software_tpm();
    let dps = dps_with(&tpm.endorsement_key().unwrap());
    let challenge = dps
        .tpm_challenge(SCOPE, "tpm-dev", device_of(&tpm))
        .unwrap();
    tpm.import(&challenge.authentication_key).unwrap();
    let token = tpm_token(&tpm, "tpm-dev");
    let later = SystemTime::now() + Duration::from_secs(7200);
    let refused = dps
        .authenticate_registration(SCOPE, "tpm-dev", Credential::Sas(&token), later)
        .unwrap_err();
    assert!(matches!(refused, AuthError::Token(_)), "{refused:?}");
}

mod never_panics {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn arbitrary_keys_and_tpm_objects_are_errors_or_devices(
            ek in proptest::collection::vec(any::<u8>(), 0..400),
            srk in proptest::collection::vec(any::<u8>(), 0..400),
            text in ".{0,64}",
        ) {
            let _ = TpmDevice::from_tpm2b(&ek, &srk);
            let _ = TpmDevice::from_registration_json(&json!({
                "endorsementKey": BASE64.encode(&ek),
                "storageRootKey": text,
            }));
        }

        #[test]
        fn a_tampered_blob_is_refused_by_the_tpm_never_a_panic(
            index in 0usize..2048, value in 1u8..=255,
        ) {
            let mut tpm = software_tpm();
            let mut blob = device_of(&tpm).wrap(&[3u8; 32]).unwrap();
            let at = index % blob.len();
            blob[at] ^= value;
            // Every part is covered by an integrity check or changes a size: nothing opens.
            prop_assert!(tpm.import(&blob).is_err());
        }
    }
}

#[test]
fn a_key_challenged_for_an_ek_no_longer_enrolled_is_refused() {
    let [mut tpm, other, _] = software_tpms();
    let dps = dps_with(&tpm.endorsement_key().unwrap());
    let challenge = dps
        .tpm_challenge(SCOPE, "tpm-dev", device_of(&tpm))
        .unwrap();
    tpm.import(&challenge.authentication_key).unwrap();
    let token = tpm_token(&tpm, "tpm-dev");
    assert!(authenticate(&dps, "tpm-dev", &token).is_ok());
    // The enrollment now names another TPM: the key issued to the old one no longer counts.
    dps.create_or_update_enrollment(enrollment(
        "tpm-dev",
        tpm_attestation(&other.endorsement_key().unwrap()),
    ))
    .unwrap();
    let refused = authenticate(&dps, "tpm-dev", &token).unwrap_err();
    assert!(matches!(refused, AuthError::TpmRefused(_)), "{refused:?}");
}
