//! Tests of the test PKI: chains must pass rustls-webpki exactly as the emulator will judge
//! them, and the certificates must carry what DPS and IoT Hub look at (CN, CA flags, EKU).

use std::time::{SystemTime, UNIX_EPOCH};

use proptest::prelude::*;
use rustls_pki_types::{CertificateDer, UnixTime};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::*;

fn parse(der: &[u8]) -> X509Certificate<'_> {
    X509Certificate::from_der(der).expect("valid certificate").1
}

fn cn(der: &[u8]) -> String {
    common_name(&parse(der)).expect("has a CN")
}

/// Validates `leaf` + `intermediates` up to `anchor` as a client certificate, as the
/// emulator's X.509 authentication does.
fn verify_client(
    leaf: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    anchor: &CertificateDer<'_>,
) -> Result<(), webpki::Error> {
    let anchor = webpki::anchor_from_trusted_cert(anchor)?;
    let ee = webpki::EndEntityCert::try_from(leaf)?;
    ee.verify_for_usage(
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .all,
        &[anchor],
        intermediates,
        UnixTime::now(),
        webpki::KeyUsage::client_auth(),
        None,
        None,
    )
    .map(|_| ())
}

struct Pki {
    root: GeneratedCert,
    intermediate: GeneratedCert,
    device: GeneratedCert,
}

fn pki() -> Pki {
    let root = root_ca("Test Root", CA_DAYS).unwrap();
    let intermediate =
        issue_intermediate(&root.to_ca().unwrap(), "Test Intermediate", CA_DAYS, 0).unwrap();
    let device = issue_device(&intermediate.to_ca().unwrap(), "device-01", DEVICE_DAYS).unwrap();
    Pki {
        root,
        intermediate,
        device,
    }
}

#[test]
fn root_intermediate_device_chain_validates_with_webpki() {
    let pki = pki();
    verify_client(
        &pki.device.der,
        std::slice::from_ref(&pki.intermediate.der),
        &pki.root.der,
    )
    .expect("chain validates");
    // The device's own full chain is what it sends: leaf, intermediate, root.
    let chain = pki.device.full_chain_der();
    assert_eq!(chain.len(), 3);
    assert_eq!(chain[0], pki.device.der);
    assert_eq!(chain[1], pki.intermediate.der);
    assert_eq!(chain[2], pki.root.der);
    verify_client(&chain[0], &chain[1..], &pki.root.der).expect("full chain validates");
}

#[test]
fn device_without_its_intermediate_is_rejected() {
    let pki = pki();
    assert!(verify_client(&pki.device.der, &[], &pki.root.der).is_err());
}

#[test]
fn device_signed_by_root_validates() {
    let root = root_ca(DEFAULT_ROOT_NAME, CA_DAYS).unwrap();
    let device = issue_device(&root.to_ca().unwrap(), "direct-device", 1).unwrap();
    verify_client(&device.der, &[], &root.der).expect("validates");
    assert_eq!(device.full_chain_der().len(), 2);
}

#[test]
fn device_from_another_root_with_the_same_name_is_rejected() {
    let root = root_ca("Same Name", CA_DAYS).unwrap();
    let rogue = root_ca("Same Name", CA_DAYS).unwrap();
    let device = issue_device(&rogue.to_ca().unwrap(), "device-01", 1).unwrap();
    assert!(verify_client(&device.der, &[], &root.der).is_err());
}

#[test]
fn device_leaf_carries_what_dps_checks() {
    let pki = pki();
    let leaf = parse(&pki.device.der);
    assert_eq!(cn(&pki.device.der), "device-01");
    assert!(!leaf.is_ca());
    let eku = leaf.extended_key_usage().unwrap().expect("has EKU").value;
    assert!(eku.client_auth);
    let usage = leaf.key_usage().unwrap().expect("has key usage").value;
    assert!(usage.digital_signature());
    assert!(!usage.key_cert_sign());
    assert!(
        pki.device
            .key_pem
            .starts_with("-----BEGIN PRIVATE KEY-----")
    );
}

#[test]
fn ca_certificates_have_ca_constraints_and_key_usage() {
    let pki = pki();
    for (der, path_len) in [(&pki.root.der, None), (&pki.intermediate.der, Some(0))] {
        let cert = parse(der);
        let bc = cert.basic_constraints().unwrap().expect("has BC").value;
        assert!(bc.ca);
        assert_eq!(bc.path_len_constraint, path_len);
        let usage = cert.key_usage().unwrap().expect("has key usage").value;
        assert!(usage.key_cert_sign() && usage.crl_sign() && usage.digital_signature());
    }
    assert_eq!(cn(&pki.root.der), "Test Root");
    assert_eq!(cn(&pki.intermediate.der), "Test Intermediate");
}

#[test]
fn validity_starts_an_hour_back_and_lasts_the_given_days() {
    let cert = self_signed_device("dev", 10).unwrap();
    let parsed = parse(&cert.der);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let not_before = parsed.validity().not_before.timestamp();
    let not_after = parsed.validity().not_after.timestamp();
    assert!((now - 3600 - 60..=now - 3600 + 1).contains(&not_before));
    assert!((now + 10 * 86_400 - 60..=now + 10 * 86_400 + 1).contains(&not_after));
}

#[test]
fn serial_numbers_are_random_and_distinct() {
    let root = root_ca("Root", 1).unwrap();
    let ca = root.to_ca().unwrap();
    let serials: std::collections::HashSet<Vec<u8>> = (0..8)
        .map(|_| {
            let cert = issue_device(&ca, "same-device", 1).unwrap();
            parse(&cert.der).raw_serial().to_vec()
        })
        .collect();
    assert_eq!(serials.len(), 8);
}

#[test]
fn verification_certificate_is_signed_by_the_ca_key_and_names_the_code() {
    let root = root_ca("Root", CA_DAYS).unwrap();
    let other = root_ca("Root", CA_DAYS).unwrap();
    let code = "3A0B9D0E5C2F4E8B9A1D7C6E5F4A3B2C";
    let proof = verification_certificate(&root.to_ca().unwrap(), code).unwrap();
    assert_eq!(cn(&proof.der), code);
    let root_cert = parse(&root.der);
    let other_cert = parse(&other.der);
    let proof_cert = parse(&proof.der);
    proof_cert
        .verify_signature(Some(root_cert.public_key()))
        .expect("signed by the CA's key");
    assert!(
        proof_cert
            .verify_signature(Some(other_cert.public_key()))
            .is_err()
    );
    // The emulator's own proof-of-possession check agrees.
    assert!(crate::auth::x509::signed_by(&proof.der, &root.der));
}

#[test]
fn thumbprints_are_upper_case_sha1_and_sha256_of_the_der() {
    // FIPS 180 test vectors for "abc", so the format is checked against an outside source.
    assert_eq!(
        thumbprints(b"abc"),
        (
            "A9993E364706816ABA3E25717850C26C9CD0D89D".to_string(),
            "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD".to_string()
        )
    );
    let cert = self_signed_device("thumb-device", 1).unwrap();
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02X}")).collect::<String>();
    assert_eq!(
        cert.thumbprints(),
        (
            hex(&Sha1::digest(&cert.der)),
            hex(&Sha256::digest(&cert.der))
        )
    );
}

#[test]
fn self_signed_device_is_a_leaf_with_the_registration_id() {
    let cert = self_signed_device("selfie-7", DEVICE_DAYS).unwrap();
    assert_eq!(cn(&cert.der), "selfie-7");
    let parsed = parse(&cert.der);
    assert!(!parsed.is_ca());
    assert_eq!(parsed.subject(), parsed.issuer());
    assert_eq!(cert.full_chain_pem, cert.cert_pem);
    // A leaf cannot be used to sign.
    assert!(matches!(cert.to_ca(), Err(CertError::BadInput { .. })));
}

#[test]
fn a_ca_loaded_from_a_full_chain_file_appends_that_chain() {
    let pki = pki();
    // As read back from `Test Intermediate-full-chain.pem` + `.key.pem`.
    let ca = Ca::from_pem(&pki.intermediate.full_chain_pem, &pki.intermediate.key_pem).unwrap();
    assert_eq!(ca.chain_der().len(), 2);
    let device = issue_device(&ca, "from-files", 1).unwrap();
    assert_eq!(
        device.full_chain_pem,
        format!(
            "{}{}{}",
            device.cert_pem, pki.intermediate.cert_pem, pki.root.cert_pem
        )
    );
}

#[test]
fn path_length_limits_are_enforced_before_signing() {
    let root = root_ca("Root", CA_DAYS).unwrap();
    let level1 = issue_intermediate(&root.to_ca().unwrap(), "Level 1", CA_DAYS, 1).unwrap();
    let level2 = issue_intermediate(&level1.to_ca().unwrap(), "Level 2", CA_DAYS, 0).unwrap();
    let device = issue_device(&level2.to_ca().unwrap(), "deep-device", 1).unwrap();
    let chain = device.full_chain_der();
    verify_client(&chain[0], &chain[1..], &root.der).expect("three-level chain validates");

    let err = issue_intermediate(&level2.to_ca().unwrap(), "Level 3", CA_DAYS, 0).unwrap_err();
    assert!(err.to_string().contains("path length 0"), "{err}");
    let err = issue_intermediate(&level1.to_ca().unwrap(), "Level 2b", CA_DAYS, 1).unwrap_err();
    assert!(matches!(err, CertError::InvalidArgument { .. }), "{err}");
}

#[test]
fn a_key_that_is_not_the_cas_is_refused() {
    let root = root_ca("Root", CA_DAYS).unwrap();
    let other = root_ca("Other", CA_DAYS).unwrap();
    let err = Ca::from_pem(&root.cert_pem, &other.key_pem).unwrap_err();
    assert!(matches!(err, CertError::KeyMismatch { .. }), "{err}");
    assert!(err.to_string().contains("does not belong"), "{err}");
}

#[test]
fn unusable_pem_is_reported_not_panicked_on() {
    let root = root_ca("Root", CA_DAYS).unwrap();
    let cases = [
        ("", root.key_pem.as_str(), "no certificate found"),
        (
            "not pem at all",
            root.key_pem.as_str(),
            "no certificate found",
        ),
        (
            "-----BEGIN CERTIFICATE-----\n@@@@\n-----END CERTIFICATE-----\n",
            root.key_pem.as_str(),
            "bad PEM",
        ),
        (
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            root.key_pem.as_str(),
            "not a valid X.509 certificate",
        ),
        (root.cert_pem.as_str(), "", "no private key found"),
        (
            root.cert_pem.as_str(),
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
            "password-protected",
        ),
        (
            root.cert_pem.as_str(),
            "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n",
            "not PKCS#8",
        ),
        (
            root.cert_pem.as_str(),
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            "unusable private key",
        ),
    ];
    for (cert, key, expected) in cases {
        let err = Ca::from_pem(cert, key).unwrap_err().to_string();
        assert!(err.contains(expected), "{cert:?}/{key:?}: {err}");
    }
}

#[test]
fn days_out_of_range_are_refused() {
    for days in [0, MAX_DAYS + 1, u32::MAX] {
        let err = root_ca("Root", days).unwrap_err();
        assert!(matches!(err, CertError::InvalidArgument { .. }), "{err}");
    }
    root_ca("Root", MAX_DAYS).expect("the maximum itself is fine");
}

#[test]
fn names_and_codes_must_fit_a_common_name() {
    assert!(root_ca("", 1).is_err());
    assert!(root_ca(&"x".repeat(65), 1).is_err());
    assert!(root_ca("bad\nname", 1).is_err());
    let ca = root_ca("Root", 1).unwrap().to_ca().unwrap();
    assert!(verification_certificate(&ca, " ").is_err());
    assert!(verification_certificate(&ca, &"A".repeat(65)).is_err());
}

#[test]
fn registration_ids_follow_dps_rules() {
    for ok in ["device-01", "a", "A.b_c:d-", "x".repeat(64).as_str()] {
        validate_registration_id(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    for bad in [
        "",
        "has space",
        "slash/id",
        "ends.",
        "ends_",
        "ends:",
        "ünïcode",
        "x".repeat(65).as_str(),
    ] {
        assert!(validate_registration_id(bad).is_err(), "{bad:?} accepted");
    }
}

#[test]
fn debug_output_never_shows_private_keys() {
    let pki = pki();
    let text = format!("{:?} {:?}", pki.device, pki.root.to_ca().unwrap());
    assert!(!text.contains("PRIVATE KEY"), "{text}");
}

#[test]
fn generated_keys_work_in_a_rustls_client_config() {
    let pki = pki();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.root.der.clone()).unwrap();
    rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_client_auth_cert(
        pki.device.full_chain_der().to_vec(),
        pki.device.private_key_der(),
    )
    .expect("key matches the leaf");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever the id, validation answers without panicking, and what it accepts matches the
    /// documented character rules.
    #[test]
    fn registration_id_validation_matches_the_rules(id in "\\PC{0,70}") {
        let allowed = |c: char| c.is_ascii_alphanumeric() || "-._:".contains(c);
        let expected = !id.is_empty()
            && id.len() <= 64
            && id.chars().all(allowed)
            && id.chars().last().is_some_and(|c| c.is_ascii_alphanumeric() || c == '-');
        prop_assert_eq!(validate_registration_id(&id).is_ok(), expected);
    }
}

proptest! {
    // Each case generates a key: fewer cases.
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn accepted_ids_become_the_leaf_cn(id in "[a-z0-9][a-z0-9._:-]{0,20}[a-z0-9-]") {
        prop_assume!(validate_registration_id(&id).is_ok());
        let cert = self_signed_device(&id, 1).unwrap();
        prop_assert_eq!(cn(&cert.der), id);
    }
}

#[test]
fn server_certificates_verify_for_their_names_only() {
    let root = root_ca("Test Root", CA_DAYS).unwrap();
    let names = vec!["127.0.0.1".to_owned(), "localhost".to_owned()];
    let server = issue_server(&root.to_ca().unwrap(), &names, DEVICE_DAYS).unwrap();
    let anchor = webpki::anchor_from_trusted_cert(&root.der).unwrap();
    let leaf = webpki::EndEntityCert::try_from(&server.der).unwrap();
    leaf.verify_for_usage(
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .all,
        &[anchor],
        &[],
        UnixTime::now(),
        webpki::KeyUsage::server_auth(),
        None,
        None,
    )
    .expect("a server certificate chains to its root");
    for name in ["127.0.0.1", "localhost"] {
        let name = rustls_pki_types::ServerName::try_from(name).unwrap();
        leaf.verify_is_valid_for_subject_name(&name)
            .expect("valid for its names");
    }
    let other = rustls_pki_types::ServerName::try_from("example.com").unwrap();
    assert!(leaf.verify_is_valid_for_subject_name(&other).is_err());
    assert!(issue_server(&root.to_ca().unwrap(), &[], DEVICE_DAYS).is_err());
    assert!(issue_server(&root.to_ca().unwrap(), &["not a name".into()], DEVICE_DAYS).is_err());
}
