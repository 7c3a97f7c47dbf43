//! `iotemu certs` as a user runs it: the built binary in a scratch directory, building a
//! root → intermediate → device PKI plus a verification certificate, and failing cleanly
//! (message, non-zero exit, no panic) on bad input.

mod support;

use std::path::Path;
use std::process::{Command, Output};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, UnixTime};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use x509_parser::prelude::{FromDer, X509Certificate};

use support::Scratch;

/// Runs `iotemu certs <args>` in `dir`.
fn certs(dir: &Scratch, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_iotemu"))
        .arg("certs")
        .args(args)
        .current_dir(dir.root())
        .output()
        .expect("run iotemu")
}

fn succeed(dir: &Scratch, args: &[&str]) -> String {
    let out = certs(dir, args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "iotemu certs {args:?} failed: {}{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Runs a command that must fail and returns its stderr.
fn fail(dir: &Scratch, args: &[&str]) -> String {
    let out = certs(dir, args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "iotemu certs {args:?} succeeded");
    assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    assert!(!stderr.trim().is_empty(), "{args:?} failed silently");
    stderr
}

fn chain(path: &Path) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(path)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

#[cfg(unix)]
fn assert_owner_only(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{} has mode {mode:o}", path.display());
}

#[cfg(not(unix))]
fn assert_owner_only(_: &Path) {}

#[test]
fn certs_root_intermediate_device_and_verification() {
    let dir = Scratch::new("flow");

    let out = succeed(&dir, &["root", "--out-dir", "pki"]);
    assert!(
        out.contains("pki/root-ca.pem") && out.contains("pki/root-ca.key.pem"),
        "{out}"
    );
    assert!(out.contains("SHA-256 thumbprint: "), "{out}");

    let out = succeed(
        &dir,
        &[
            "intermediate",
            "--ca",
            "pki/root-ca.pem",
            "--ca-key",
            "pki/root-ca.key.pem",
            "--name",
            "test-intermediate",
            "--out-dir",
            "pki",
        ],
    );
    assert!(
        out.contains("pki/test-intermediate-full-chain.pem"),
        "{out}"
    );

    let out = succeed(
        &dir,
        &[
            "device",
            "--ca",
            "pki/test-intermediate-full-chain.pem",
            "--ca-key",
            "pki/test-intermediate.key.pem",
            "--registration-id",
            "device-01",
            "--out-dir",
            "devices",
        ],
    );
    assert!(out.contains("devices/device-01-full-chain.pem"), "{out}");
    let device_sha256 = out
        .lines()
        .find_map(|l| l.strip_prefix("SHA-256 thumbprint: "))
        .expect("device thumbprint printed")
        .to_owned();

    let out = succeed(
        &dir,
        &[
            "verification",
            "--ca",
            "pki/root-ca.pem",
            "--ca-key",
            "pki/root-ca.key.pem",
            "--code",
            "5E3A1F0B9C8D7E6F",
            "--out",
            "pki/verification.pem",
        ],
    );
    assert!(out.contains("pki/verification.pem"), "{out}");

    for name in [
        "pki/root-ca.pem",
        "pki/root-ca.key.pem",
        "pki/test-intermediate.pem",
        "pki/test-intermediate.key.pem",
        "pki/test-intermediate-full-chain.pem",
        "devices/device-01.pem",
        "devices/device-01.key.pem",
        "devices/device-01-full-chain.pem",
        "pki/verification.pem",
    ] {
        assert!(dir.path(name).is_file(), "{name} missing");
    }
    for key in [
        "pki/root-ca.key.pem",
        "pki/test-intermediate.key.pem",
        "devices/device-01.key.pem",
    ] {
        assert_owner_only(&dir.path(key));
        let text = std::fs::read_to_string(dir.path(key)).unwrap();
        assert!(text.starts_with("-----BEGIN PRIVATE KEY-----"), "{key}");
    }

    let root = chain(&dir.path("pki/root-ca.pem"));
    let intermediate_chain = chain(&dir.path("pki/test-intermediate-full-chain.pem"));
    let device_chain = chain(&dir.path("devices/device-01-full-chain.pem"));
    assert_eq!(root.len(), 1);
    assert_eq!(intermediate_chain.len(), 2);
    assert_eq!(device_chain.len(), 3);
    assert_eq!(intermediate_chain[1], root[0]);
    assert_eq!(
        device_chain[0],
        chain(&dir.path("devices/device-01.pem"))[0]
    );
    assert_eq!(device_chain[1..], intermediate_chain[..]);

    // The chain the device will present validates as the emulator will check it.
    let anchor = webpki::anchor_from_trusted_cert(&root[0]).unwrap();
    webpki::EndEntityCert::try_from(&device_chain[0])
        .unwrap()
        .verify_for_usage(
            rustls::crypto::ring::default_provider()
                .signature_verification_algorithms
                .all,
            &[anchor],
            &device_chain[1..],
            UnixTime::now(),
            webpki::KeyUsage::client_auth(),
            None,
            None,
        )
        .expect("device chain validates");
    let (_, leaf) = X509Certificate::from_der(&device_chain[0]).unwrap();
    let cn = leaf.subject().iter_common_name().next().unwrap();
    assert_eq!(cn.as_str().unwrap(), "device-01");

    // Proof of possession: CN is the code, signature by the root's key.
    let proof = chain(&dir.path("pki/verification.pem"));
    let (_, proof) = X509Certificate::from_der(&proof[0]).unwrap();
    let (_, root_cert) = X509Certificate::from_der(&root[0]).unwrap();
    let cn = proof.subject().iter_common_name().next().unwrap();
    assert_eq!(cn.as_str().unwrap(), "5E3A1F0B9C8D7E6F");
    proof
        .verify_signature(Some(root_cert.public_key()))
        .expect("signed by the root key");

    // `thumbprint` agrees with an independent hash of the DER, and with what `device` printed.
    let out = succeed(&dir, &["thumbprint", "devices/device-01.pem"]);
    let der = &device_chain[0];
    assert!(
        out.contains(&format!("SHA-1:   {}", hex(&Sha1::digest(der)))),
        "{out}"
    );
    assert!(
        out.contains(&format!("SHA-256: {}", hex(&Sha256::digest(der)))),
        "{out}"
    );
    assert_eq!(device_sha256, hex(&Sha256::digest(der)));
}

#[test]
fn certs_self_signed_device_prints_both_thumbprints() {
    let dir = Scratch::new("self-signed");
    let out = succeed(
        &dir,
        &[
            "self-signed",
            "--registration-id",
            "thumb-dev",
            "--days",
            "7",
        ],
    );
    let der = chain(&dir.path("thumb-dev.pem")).remove(0);
    assert!(out.contains(&hex(&Sha1::digest(&der))), "{out}");
    assert!(out.contains(&hex(&Sha256::digest(&der))), "{out}");
    assert_owner_only(&dir.path("thumb-dev.key.pem"));
}

#[test]
fn certs_bad_input_fails_with_a_message() {
    let dir = Scratch::new("bad");
    succeed(&dir, &["root", "--out-dir", "a", "--name", "Root A"]);
    succeed(&dir, &["root", "--out-dir", "b", "--name", "Root B"]);
    std::fs::write(dir.path("garbage.pem"), "this is not PEM").unwrap();

    let device = |ca: &str, key: &str, id: &str| {
        vec![
            "device".to_owned(),
            "--ca".into(),
            ca.into(),
            "--ca-key".into(),
            key.into(),
            "--registration-id".into(),
            id.into(),
        ]
    };
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            device("missing.pem", "a/root-ca.key.pem", "dev"),
            "missing.pem",
        ),
        (
            device("a/root-ca.pem", "b/root-ca.key.pem", "dev"),
            "does not belong",
        ),
        (
            device("a/root-ca.pem", "a/root-ca.key.pem", "bad id!"),
            "invalid registration id",
        ),
        (
            device("garbage.pem", "a/root-ca.key.pem", "dev"),
            "no certificate found",
        ),
        (
            device("a/root-ca.pem", "garbage.pem", "dev"),
            "no private key found",
        ),
        (
            vec!["root".into(), "--out-dir".into(), "a".into()],
            "already exists",
        ),
        (
            vec!["thumbprint".into(), "garbage.pem".into()],
            "no certificate found",
        ),
        (
            vec![
                "root".into(),
                "--out-dir".into(),
                "c".into(),
                "--days".into(),
                "0".into(),
            ],
            "days",
        ),
    ];
    for (args, expected) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let stderr = fail(&dir, &args);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    // Nothing was written by the failed device commands.
    assert!(!dir.path("dev.pem").exists());

    // --force replaces, and the new key is still owner-only.
    let before = std::fs::read(dir.path("a/root-ca.pem")).unwrap();
    succeed(&dir, &["root", "--out-dir", "a", "--force"]);
    assert_ne!(before, std::fs::read(dir.path("a/root-ca.pem")).unwrap());
    assert_owner_only(&dir.path("a/root-ca.key.pem"));
}

#[test]
fn certs_help_and_server_flags_coexist() {
    let out = Command::new(env!("CARGO_BIN_EXE_iotemu"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        help.contains("certs") && help.contains("--mqtt-port"),
        "{help}"
    );

    // Server settings from the environment do not get in the way of a subcommand.
    let dir = Scratch::new("env");
    let out = Command::new(env!("CARGO_BIN_EXE_iotemu"))
        .args(["certs", "self-signed", "--registration-id", "env-dev"])
        .env("IOTEMU_MQTT_PORT", "1")
        .current_dir(dir.root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
