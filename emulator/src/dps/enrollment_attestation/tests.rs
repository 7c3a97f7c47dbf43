//! The attestation mechanism's parse / render round trip and what it refuses.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use proptest::prelude::*;
use serde_json::json;

use super::*;

/// The swtpm EK and SRK the TPM building blocks are tested with (auth/tpm/testdata).
pub(crate) const EK: &[u8] = include_bytes!("../../auth/tpm/testdata/ek.pub");
pub(crate) const SRK: &[u8] = include_bytes!("../../auth/tpm/testdata/srk.pub");

fn wire(value: serde_json::Value) -> AttestationMechanism {
    serde_json::from_value(value).unwrap()
}

fn parse(value: serde_json::Value) -> Result<Attestation, Invalid> {
    Attestation::try_from(&wire(value))
}

#[test]
fn tpm_keys_are_parsed_and_rendered_as_given() {
    let ek = BASE64.encode(EK);
    let srk = BASE64.encode(SRK);
    for value in [
        json!({"type": "tpm", "tpm": {"endorsementKey": ek}}),
        json!({"type": "tpm", "tpm": {"endorsementKey": ek, "storageRootKey": srk}}),
    ] {
        let parsed = parse(value.clone()).unwrap();
        let keys = parsed.tpm().unwrap();
        assert_eq!(keys.endorsement_key().tpm2b(), EK);
        assert_eq!(keys.endorsement_key().as_given(), ek);
        assert!(keys.endorsement_key().public().rsa().is_some());
        assert!(keys.is_endorsement_key(&ek));
        assert!(!keys.is_endorsement_key(&srk));
        assert_eq!(serde_json::to_value(parsed.to_wire()).unwrap(), value);
    }
}

#[test]
fn the_ek_registration_id_is_the_sdks_base32() {
    let parsed =
        parse(json!({"type": "tpm", "tpm": {"endorsementKey": BASE64.encode(EK)}})).unwrap();
    let id = parsed
        .tpm()
        .unwrap()
        .endorsement_key()
        .derived_registration_id();
    assert_eq!(id, registration_id_from_ek(EK));
    assert!(super::super::validate::tpm_registration_id_problem(&id).is_none());
}

#[test]
fn malformed_tpm_keys_are_refused_with_their_path() {
    let cut = BASE64.encode(EK.get(..EK.len() - 1).unwrap());
    let cases = [
        (json!({"type": "tpm"}), "attestation.tpm"),
        (
            json!({"type": "tpm", "tpm": {}}),
            "attestation.tpm.endorsementKey",
        ),
        (
            json!({"type": "tpm", "tpm": {"endorsementKey": "not base64!"}}),
            "attestation.tpm.endorsementKey",
        ),
        (
            json!({"type": "tpm", "tpm": {"endorsementKey": cut}}),
            "attestation.tpm.endorsementKey",
        ),
        (
            json!({"type": "tpm", "tpm": {"endorsementKey": BASE64.encode(EK),
            "storageRootKey": "AAAA"}}),
            "attestation.tpm.storageRootKey",
        ),
    ];
    for (value, path) in cases {
        let invalid = parse(value.clone()).unwrap_err();
        assert_eq!(invalid.path, path, "{value}");
    }
}

#[test]
fn an_ek_that_is_not_an_rsa_2048_storage_key_is_refused() {
    // The same EK with `sign` set instead of `decrypt`: RSA-2048, but not a storage key.
    let mut signing = EK.to_vec();
    // TPM2B size (2), type (2), nameAlg (2), then the 4 attribute bytes.
    let attributes = signing.get_mut(6..10).unwrap();
    let bits = u32::from_be_bytes(attributes.try_into().unwrap());
    let bits = (bits & !crate::auth::tpm::alg::attr::DECRYPT) | crate::auth::tpm::alg::attr::SIGN;
    attributes.copy_from_slice(&bits.to_be_bytes());
    let invalid = parse(json!({"type": "tpm", "tpm": {"endorsementKey": BASE64.encode(&signing)}}))
        .unwrap_err();
    assert_eq!(invalid.path, "attestation.tpm.endorsementKey");
    assert!(invalid.reason.contains("storage key"), "{}", invalid.reason);
}

#[test]
fn symmetric_keys_keep_their_text_and_missing_ones_are_generated() {
    let given = " c2VjcmV0LWtleS0xMjM0NTY3ODkw ";
    let parsed =
        parse(json!({"type": "symmetricKey", "symmetricKey": {"primaryKey": given}})).unwrap();
    let keys = parsed.symmetric_keys().unwrap();
    assert_eq!(keys.primary.as_given(), given);
    assert_eq!(keys.primary.key().as_bytes(), b"secret-key-1234567890");
    assert_eq!(keys.secondary.key().as_bytes().len(), 64);
    let rendered = parsed.to_wire();
    assert_eq!(
        rendered.symmetric_key.unwrap().primary_key.as_deref(),
        Some(given)
    );
}

#[test]
fn data_of_another_kind_is_dropped() {
    let parsed = parse(json!({"type": "none",
        "symmetricKey": {"primaryKey": BASE64.encode([7u8; 32])}}))
    .unwrap();
    assert_eq!(parsed, Attestation::None);
    assert_eq!(
        serde_json::to_value(parsed.to_wire()).unwrap(),
        json!({"type": "none"})
    );
}

proptest! {
    /// Arbitrary bytes or text as an EK never panic: they parse or are refused at the path.
    #[test]
    fn arbitrary_endorsement_keys_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600),
                                              text in ".{0,64}") {
        for given in [BASE64.encode(&bytes), text] {
            let value = json!({"type": "tpm", "tpm": {"endorsementKey": given}});
            if let Err(invalid) = parse(value) {
                prop_assert_eq!(invalid.path, "attestation.tpm.endorsementKey");
            }
        }
    }

    /// Flipping any byte of a valid EK never panics either.
    #[test]
    fn corrupted_endorsement_keys_never_panic(index in 0..EK.len(), value in any::<u8>()) {
        let mut ek = EK.to_vec();
        if let Some(byte) = ek.get_mut(index) {
            *byte = value;
        }
        let _ = parse(json!({"type": "tpm", "tpm": {"endorsementKey": BASE64.encode(&ek)}}));
    }
}
