//! CA certificates over the HTTPS service endpoint in the management API's shape
//! (`…/providers/Microsoft.Devices/{provisioningServices|IotHubs}/{name}/certificates…`), and
//! `iotemu certs verify --emulator`'s proof-of-possession round trip through the control
//! port: uploads, verification codes, proofs accepted and refused, Azure-shaped errors, and
//! state left as it was by every refusal.

use std::sync::{Arc, Mutex};

use iotemu::Emulator;
use iotemu::certs::{self, EmulatorTarget, GeneratedCert};
use iotemu::internals::auth::build_token;
use iotemu::internals::certs_cli::{CertsCommand, IssuerArgs, run};
use iotemu::{Commit, Op, Store, StoreError, StoreSnapshot};
use iotemu_e2e::*;
use serde_json::{Value, json};

const DPS_OWNER_KEY: &str = "9v222dNTjDaRlypsKaNmfRb+fM+lb6iI4vJsVu9VHBA=";
const HUB_OWNER_KEY: &str = "m3KXjFJcrlf/7AzVtsFylbokniqdr2n96hQepP6P/GU=";
/// The quickstart hub's `service` policy: ServiceConnect only, no registry rights.
const HUB_SERVICE_KEY: &str = "5rig9dR3TugO6rC8NB2RBSHNpI6/yXXMwj9dck7tfY0=";
const API: &str = "api-version=2022-02-05";
const DPS_CERTS: &str = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.Devices/provisioningServices/localhost/certificates";
const HUB_CERTS: &str = "/subscriptions/sub/resourceGroups/any/providers/Microsoft.Devices/IotHubs/localhost/certificates";

fn token(policy: &str, key: &str) -> String {
    build_token(
        "localhost",
        &decode_key(key),
        Some(policy),
        seconds_from_now(600),
    )
}

fn dps_owner() -> String {
    token("provisioningserviceowner", DPS_OWNER_KEY)
}

fn hub_owner() -> String {
    token("iothubowner", HUB_OWNER_KEY)
}

/// `method path?api-version` with `auth` (if any), extra headers and a JSON body.
async fn call(
    emulator: &Emulator,
    method: &str,
    path: &str,
    auth: Option<&str>,
    headers: &[(&str, &str)],
    body: &str,
) -> HttpsResponse {
    let mut all: Vec<(&str, &str)> = vec![("Content-Type", "application/json")];
    if let Some(auth) = auth {
        all.push(("Authorization", auth));
    }
    all.extend_from_slice(headers);
    let separator = if path.contains('?') { '&' } else { '?' };
    https_request(
        emulator,
        None,
        method,
        &format!("{path}{separator}{API}"),
        &all,
        body.as_bytes(),
    )
    .await
}

fn upload_body(cert: &GeneratedCert) -> String {
    json!({ "properties": { "certificate": cert.cert_pem } }).to_string()
}

fn verify_body(proof: &GeneratedCert) -> String {
    json!({ "certificate": proof.cert_pem }).to_string()
}

/// An error reply: its status and ARM `ErrorDetails` code.
fn error_of(reply: &HttpsResponse) -> (u16, String) {
    let body = reply.json();
    assert_eq!(
        body["code"].as_str().map(str::len),
        Some(6),
        "6-digit code in {body}"
    );
    assert!(body["message"].as_str().is_some(), "{body}");
    (
        reply.status,
        body["code"].as_str().unwrap_or_default().to_owned(),
    )
}

#[tokio::test]
async fn a_dps_root_is_uploaded_and_verified_with_proof_of_possession() {
    let emulator = start_emulator(None).await;
    let auth = dps_owner();
    let root = certs::root_ca("Quickstart Root", 30).unwrap();
    let ca = root.to_ca().unwrap();

    let uploaded = call(
        &emulator,
        "PUT",
        &format!("{DPS_CERTS}/my-root"),
        Some(&auth),
        &[],
        &upload_body(&root),
    )
    .await;
    assert_eq!(uploaded.status, 200, "{:?}", uploaded.json());
    let body = uploaded.json();
    assert_eq!(body["name"], "my-root");
    assert_eq!(
        body["type"],
        "Microsoft.Devices/ProvisioningServices/Certificates"
    );
    assert!(
        body["id"]
            .as_str()
            .unwrap()
            .ends_with("/provisioningServices/localhost/certificates/my-root")
    );
    assert_eq!(body["properties"]["isVerified"], false);
    assert_eq!(body["properties"]["subject"], "CN=Quickstart Root");
    assert_eq!(body["properties"]["thumbprint"], root.thumbprints().0);
    assert!(
        body["properties"]["expiry"]
            .as_str()
            .unwrap()
            .ends_with(" GMT")
    );
    assert_eq!(uploaded.header("etag"), body["etag"].as_str());

    let listed = call(&emulator, "GET", DPS_CERTS, Some(&auth), &[], "").await;
    assert_eq!(listed.status, 200);
    assert_eq!(listed.json()["value"].as_array().map(Vec::len), Some(1));

    let generated = call(
        &emulator,
        "POST",
        &format!("{DPS_CERTS}/my-root/generateVerificationCode"),
        Some(&auth),
        &[("If-Match", body["etag"].as_str().unwrap())],
        "",
    )
    .await;
    assert_eq!(generated.status, 200, "{:?}", generated.json());
    let code = generated.json()["properties"]["verificationCode"]
        .as_str()
        .unwrap()
        .to_owned();
    let etag = generated.json()["etag"].as_str().unwrap().to_owned();

    // A proof signed by another CA's key, with the right CN: refused, nothing changes.
    let stranger = certs::root_ca("Someone Else", 30).unwrap().to_ca().unwrap();
    let forged = certs::verification_certificate(&stranger, &code).unwrap();
    let refused = call(
        &emulator,
        "POST",
        &format!("{DPS_CERTS}/my-root/verify"),
        Some(&auth),
        &[],
        &verify_body(&forged),
    )
    .await;
    assert_eq!(error_of(&refused), (400, "400053".to_owned()));
    // The right key, the wrong CN: refused too.
    let wrong_code = certs::verification_certificate(&ca, "0123456789ABCDEF").unwrap();
    let refused = call(
        &emulator,
        "POST",
        &format!("{DPS_CERTS}/my-root/verify"),
        Some(&auth),
        &[],
        &verify_body(&wrong_code),
    )
    .await;
    assert_eq!(error_of(&refused), (400, "400053".to_owned()));
    let unchanged = emulator.dps().certificates().get("my-root").unwrap();
    assert!(!unchanged.is_verified);
    assert_eq!(unchanged.etag, etag);
    assert_eq!(unchanged.verification_code.as_deref(), Some(code.as_str()));

    let proof = certs::verification_certificate(&ca, &code).unwrap();
    let verified = call(
        &emulator,
        "POST",
        &format!("{DPS_CERTS}/my-root/verify"),
        Some(&auth),
        &[("If-Match", &etag)],
        &verify_body(&proof),
    )
    .await;
    assert_eq!(verified.status, 200, "{:?}", verified.json());
    assert_eq!(verified.json()["properties"]["isVerified"], true);
    assert!(
        emulator
            .dps()
            .certificates()
            .get("my-root")
            .unwrap()
            .is_verified
    );

    let one = call(
        &emulator,
        "GET",
        &format!("{DPS_CERTS}/MY-ROOT"),
        Some(&auth),
        &[],
        "",
    )
    .await;
    assert_eq!(one.status, 200);
    assert_eq!(one.json()["properties"]["isVerified"], true);
}

#[tokio::test]
async fn hub_certificates_need_registry_rights_and_a_current_etag() {
    let emulator = start_emulator(None).await;
    let hub = emulator.default_hub().clone();
    let root = certs::root_ca("Hub Root", 30).unwrap();

    // ServiceConnect alone may not upload, nor read; no token at all neither.
    let service = token("service", HUB_SERVICE_KEY);
    for auth in [Some(service.as_str()), None] {
        let refused = call(
            &emulator,
            "PUT",
            &format!("{HUB_CERTS}/root"),
            auth,
            &[],
            &upload_body(&root),
        )
        .await;
        assert_eq!(error_of(&refused), (401, "401002".to_owned()));
        let refused = call(&emulator, "GET", HUB_CERTS, auth, &[], "").await;
        assert_eq!(error_of(&refused), (401, "401002".to_owned()));
    }
    // The DPS owner's token is not the hub's.
    let refused = call(&emulator, "GET", HUB_CERTS, Some(&dps_owner()), &[], "").await;
    assert_eq!(error_of(&refused), (401, "401002".to_owned()));
    assert!(hub.certificates().list().is_empty());

    let auth = hub_owner();
    let uploaded = call(
        &emulator,
        "PUT",
        &format!("{HUB_CERTS}/root"),
        Some(&auth),
        &[],
        &upload_body(&root),
    )
    .await;
    assert_eq!(uploaded.status, 200, "{:?}", uploaded.json());
    assert_eq!(
        uploaded.json()["type"],
        "Microsoft.Devices/IotHubs/Certificates"
    );
    let read_only = token(
        "registryRead",
        "+LBbfU4e7af2Y2I1VL74SgieV6ZDOXMC7lJKLqDSiQw=",
    );
    let listed = call(&emulator, "GET", HUB_CERTS, Some(&read_only), &[], "").await;
    assert_eq!(listed.status, 200);
    let refused = call(
        &emulator,
        "DELETE",
        &format!("{HUB_CERTS}/root"),
        Some(&read_only),
        &[],
        "",
    )
    .await;
    assert_eq!(error_of(&refused), (401, "401002".to_owned()));

    // A stale If-Match changes nothing.
    let before = hub.certificates().get("root").unwrap();
    let stale = call(
        &emulator,
        "POST",
        &format!("{HUB_CERTS}/root/generateVerificationCode"),
        Some(&auth),
        &[("If-Match", "0123456789abcdef0123456789abcdef")],
        "",
    )
    .await;
    assert_eq!(error_of(&stale), (412, "412002".to_owned()));
    let refused = call(
        &emulator,
        "DELETE",
        &format!("{HUB_CERTS}/root"),
        Some(&auth),
        &[("If-Match", "\"stale\"")],
        "",
    )
    .await;
    assert_eq!(error_of(&refused), (412, "412002".to_owned()));
    assert_eq!(hub.certificates().get("root").unwrap(), before);

    // Verified on upload (the portal's "set certificate status to verified").
    let other = certs::root_ca("Hub Root 2", 30).unwrap();
    let body =
        json!({ "properties": { "certificate": other.cert_pem, "isVerified": true } }).to_string();
    let uploaded = call(
        &emulator,
        "PUT",
        &format!("{HUB_CERTS}/pre-verified"),
        Some(&auth),
        &[],
        &body,
    )
    .await;
    assert_eq!(uploaded.json()["properties"]["isVerified"], true);

    let deleted = call(
        &emulator,
        "DELETE",
        &format!("{HUB_CERTS}/root"),
        Some(&auth),
        &[("If-Match", &before.etag)],
        "",
    )
    .await;
    assert_eq!(deleted.status, 200);
    let again = call(
        &emulator,
        "DELETE",
        &format!("{HUB_CERTS}/root"),
        Some(&auth),
        &[],
        "",
    )
    .await;
    assert_eq!(again.status, 204);
    assert!(hub.certificates().get("root").is_none());
}

#[tokio::test]
async fn bad_requests_get_azure_shaped_errors_and_change_nothing() {
    let emulator = start_emulator(None).await;
    let auth = dps_owner();
    let root = certs::root_ca("Root", 30).unwrap();
    let path = format!("{DPS_CERTS}/root");

    for body in [
        "not json",
        "{}",
        r#"{"properties":{"certificate":"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"}}"#,
        r#"{"properties":{"certificate":"bm90IGEgY2VydGlmaWNhdGU="}}"#,
        r#"{"properties":{"certificate":12}}"#,
    ] {
        let refused = call(&emulator, "PUT", &path, Some(&auth), &[], body).await;
        assert_eq!(error_of(&refused), (400, "400004".to_owned()), "{body}");
    }
    assert!(emulator.dps().certificates().list().is_empty());

    // Unknown certificate, unknown instance, no api-version, unsupported method.
    let missing = call(
        &emulator,
        "GET",
        &format!("{DPS_CERTS}/nope"),
        Some(&auth),
        &[],
        "",
    )
    .await;
    assert_eq!(error_of(&missing), (404, "404000".to_owned()));
    let missing = call(
        &emulator,
        "POST",
        &format!("{DPS_CERTS}/nope/generateVerificationCode"),
        Some(&auth),
        &[],
        "",
    )
    .await;
    assert_eq!(error_of(&missing), (404, "404000".to_owned()));
    let other_dps = DPS_CERTS.replace("/localhost/", "/my-dps/");
    let missing = call(&emulator, "GET", &other_dps, Some(&auth), &[], "").await;
    assert_eq!(error_of(&missing), (404, "404000".to_owned()));
    let no_version = https_request(
        &emulator,
        None,
        "GET",
        DPS_CERTS,
        &[("Authorization", &auth)],
        b"",
    )
    .await;
    assert_eq!(error_of(&no_version), (400, "400004".to_owned()));
    let patch = call(&emulator, "PATCH", &path, Some(&auth), &[], "{}").await;
    assert_eq!(error_of(&patch), (405, "405000".to_owned()));

    // Verify before a code was generated, and with a body that is not a certificate.
    let uploaded = call(
        &emulator,
        "PUT",
        &path,
        Some(&auth),
        &[],
        &upload_body(&root),
    )
    .await;
    assert_eq!(uploaded.status, 200);
    let proof =
        certs::verification_certificate(&root.to_ca().unwrap(), "ABCDEF0123456789").unwrap();
    let early = call(
        &emulator,
        "POST",
        &format!("{path}/verify"),
        Some(&auth),
        &[],
        &verify_body(&proof),
    )
    .await;
    assert_eq!(error_of(&early), (400, "400053".to_owned()));
    for body in ["[]", r#"{"certificate":"junk"}"#, "{}"] {
        let refused = call(
            &emulator,
            "POST",
            &format!("{path}/verify"),
            Some(&auth),
            &[],
            body,
        )
        .await;
        assert_eq!(error_of(&refused), (400, "400004".to_owned()), "{body}");
    }
    let stored = emulator.dps().certificates().get("root").unwrap();
    assert!(!stored.is_verified);
    assert_eq!(stored.etag, uploaded.json()["etag"].as_str().unwrap());
}

/// A directory of its own under the system's temp dir, removed when dropped.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let path =
            std::env::temp_dir().join(format!("iotemu-ca-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn verify_command(dir: &TempDir, url: &str, name: &str, hub: Option<&str>) -> CertsCommand {
    CertsCommand::Verify {
        issuer: IssuerArgs {
            ca: dir.0.join("root-ca.pem"),
            ca_key: dir.0.join("root-ca.key.pem"),
        },
        emulator: url.to_owned(),
        name: name.to_owned(),
        hub: hub.map(str::to_owned),
        control_token: None,
    }
}

#[tokio::test]
async fn certs_verify_does_the_whole_round_trip_through_the_control_port() {
    let emulator = Emulator::builder().control_port(0).start().await.unwrap();
    let url = format!("http://{}", emulator.control_addr().unwrap());
    let dir = TempDir::new();
    let root = certs::root_ca("CLI Root", 30).unwrap();
    std::fs::write(dir.0.join("root-ca.pem"), &root.cert_pem).unwrap();
    std::fs::write(dir.0.join("root-ca.key.pem"), &root.key_pem).unwrap();

    let report = run(&verify_command(&dir, &url, "cli-root", None))
        .await
        .unwrap();
    assert!(
        report.contains("uploaded 'CLI Root' to DPS as 'cli-root'"),
        "{report}"
    );
    assert!(report.contains("verified 'cli-root' in DPS"), "{report}");
    let stored = emulator.dps().certificates().get("cli-root").unwrap();
    assert!(stored.is_verified);
    assert_eq!(stored.info.sha256_thumbprint, root.thumbprints().1);

    // Run again: nothing to do.
    let report = run(&verify_command(&dir, &url, "cli-root", None))
        .await
        .unwrap();
    assert!(report.contains("was already verified"), "{report}");

    // The hub's certificates, by its host name.
    let report = run(&verify_command(&dir, &url, "cli-root", Some("localhost")))
        .await
        .unwrap();
    assert!(
        report.contains("verified 'cli-root' in hub localhost"),
        "{report}"
    );
    assert!(
        emulator
            .default_hub()
            .certificates()
            .get("cli-root")
            .unwrap()
            .is_verified
    );

    // Another CA under a taken name is refused, and the stored one stays.
    let other = certs::root_ca("Other Root", 30).unwrap();
    let target = EmulatorTarget {
        url: url.clone(),
        token: None,
        hub: None,
    };
    let refused = certs::verify_with_emulator(&target, "cli-root", &other.to_ca().unwrap()).await;
    let message = refused.unwrap_err().to_string();
    assert!(
        message.contains("a different certificate is uploaded as 'cli-root'"),
        "{message}"
    );
    assert_eq!(
        emulator.dps().certificates().get("cli-root").unwrap(),
        stored
    );

    // An uploaded but unverified CA is verified without a second upload.
    emulator
        .dps()
        .certificates()
        .upload("pending", &other.cert_pem, false)
        .unwrap()
        .durable()
        .await
        .unwrap();
    let outcome = certs::verify_with_emulator(&target, "pending", &other.to_ca().unwrap())
        .await
        .unwrap();
    assert!(!outcome.uploaded);
    assert!(outcome.verification_code.is_some());
    assert!(
        emulator
            .dps()
            .certificates()
            .get("pending")
            .unwrap()
            .is_verified
    );
}

#[tokio::test]
async fn certs_verify_says_what_is_wrong() {
    let emulator = Emulator::builder().control_port(0).start().await.unwrap();
    let url = format!("http://{}", emulator.control_addr().unwrap());
    let ca = certs::root_ca("Root", 30).unwrap().to_ca().unwrap();
    let at = |url: &str, hub: Option<&str>| EmulatorTarget {
        url: url.to_owned(),
        token: None,
        hub: hub.map(str::to_owned),
    };
    for (target, expected) in [
        (at("https://127.0.0.1:9180", None), "plain-HTTP URL"),
        (at("http://127.0.0.1:9180/api", None), "nothing after it"),
        (at(&url, Some("no-such-hub")), "404"),
    ] {
        let message = certs::verify_with_emulator(&target, "root", &ca)
            .await
            .unwrap_err()
            .to_string();
        assert!(message.contains(expected), "{message}");
    }
    // Nothing listens on port 1.
    let message = certs::verify_with_emulator(&at("http://127.0.0.1:1", None), "root", &ca)
        .await
        .unwrap_err()
        .to_string();
    assert!(message.contains("cannot connect"), "{message}");
    assert!(emulator.dps().certificates().list().is_empty());
}

#[test]
fn the_error_helper_reads_codes() {
    let reply = HttpsResponse {
        status: 400,
        headers: Vec::new(),
        body: br#"{"code":"400053","httpStatusCode":"BadRequest","message":"m"}"#.to_vec(),
    };
    assert_eq!(error_of(&reply), (400, "400053".to_owned()));
    let _: Value = reply.json();
}

/// A durable-looking store that keeps nothing and, once told to, accepts writes and then fails
/// to make them durable (as after a failed fsync).
#[derive(Default)]
struct FlakyStore {
    failing: Mutex<bool>,
}

impl Store for FlakyStore {
    fn submit(&self, _ops: &[Op]) -> Result<Commit, StoreError> {
        if *self.failing.lock().unwrap() {
            Ok(Commit::failed(StoreError::Failed(
                "fsync failed (test store)".into(),
            )))
        } else {
            Ok(Commit::durable_now())
        }
    }

    fn load(&self) -> Result<StoreSnapshot, StoreError> {
        Ok(StoreSnapshot::default())
    }

    fn is_durable(&self) -> bool {
        true
    }
}

#[tokio::test]
async fn certificate_writes_that_are_not_stored_are_500_and_change_nothing() {
    let store = Arc::new(FlakyStore::default());
    let emulator = Emulator::builder()
        .quickstart_fixture()
        .store(store.clone())
        .start()
        .await
        .unwrap();
    let auth = dps_owner();
    let root = certs::root_ca("Root", 30).unwrap();
    let path = format!("{DPS_CERTS}/root");
    let uploaded = call(
        &emulator,
        "PUT",
        &path,
        Some(&auth),
        &[],
        &upload_body(&root),
    )
    .await;
    assert_eq!(uploaded.status, 200);
    let generated = call(
        &emulator,
        "POST",
        &format!("{path}/generateVerificationCode"),
        Some(&auth),
        &[],
        "",
    )
    .await;
    let code = generated.json()["properties"]["verificationCode"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = emulator.dps().certificates().get("root").unwrap();

    *store.failing.lock().unwrap() = true;
    let proof = certs::verification_certificate(&root.to_ca().unwrap(), &code).unwrap();
    let other = certs::root_ca("Other", 30).unwrap();
    for (method, target, body) in [
        ("POST", format!("{path}/verify"), verify_body(&proof)),
        (
            "POST",
            format!("{path}/generateVerificationCode"),
            String::new(),
        ),
        ("PUT", path.clone(), upload_body(&other)),
        ("DELETE", path.clone(), String::new()),
    ] {
        let refused = call(&emulator, method, &target, Some(&auth), &[], &body).await;
        assert_eq!(
            error_of(&refused),
            (500, "500000".to_owned()),
            "{method} {target}"
        );
        assert_eq!(
            emulator.dps().certificates().get("root"),
            Some(before.clone()),
            "{method} {target}"
        );
    }
}
