//! Tests against blobs Debian's `swtpm` accepted (testdata/README.md), and the capture step
//! that wrote them (`testdata/make-vectors.sh` runs it; it is ignored otherwise).
//!
//! Every random value comes from [`ReplayRng`], so a blob is rebuilt byte for byte: if the code
//! still produces the committed bytes, the TPM would still import them, and the committed HMAC
//! the TPM computed with the imported key must verify with the key the server chose.

use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rsa::rand_core::{CryptoRng, RngCore, impls};
use sha2::{Digest, Sha256};

use super::authentication_key::{AuthenticationKeyParts, BlobSecrets, build_with_secrets};
use super::public::PublicArea;
use super::registration_id::registration_id_from_ek;
use super::*;
use crate::auth::sas::SasError;

/// Checks a DPS token signed with a TPM's imported `key` the way the registration path does
/// (key name, scope `{scope}/registrations/{id}`, expiry, then the HMAC); returns its expiry.
fn verify_token(
    token: &str,
    id_scope: &str,
    registration_id: &str,
    key: &[u8],
    now: std::time::SystemTime,
) -> Result<std::time::SystemTime, SasError> {
    let token = crate::auth::sas::SasToken::parse(token)?;
    if let Some(name) = &token.key_name
        && !name.eq_ignore_ascii_case("registration")
    {
        return Err(SasError::WrongKeyName(name.clone()));
    }
    token.check_scope(&format!("{id_scope}/registrations/{registration_id}"), now)?;
    if !token.signed_with(key) {
        return Err(SasError::BadSignature);
    }
    Ok(token.expires_at())
}

/// A deterministic byte stream: SHA-256(label || counter) blocks. Test-only; never a CSPRNG for
/// real blobs.
struct ReplayRng {
    label: Vec<u8>,
    counter: u64,
    pending: Vec<u8>,
}

impl ReplayRng {
    fn new(label: &str) -> Self {
        ReplayRng {
            label: label.as_bytes().to_vec(),
            counter: 0,
            pending: Vec::new(),
        }
    }
}

impl RngCore for ReplayRng {
    fn next_u32(&mut self) -> u32 {
        impls::next_u32_via_fill(self)
    }
    fn next_u64(&mut self) -> u64 {
        impls::next_u64_via_fill(self)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for byte in dest {
            if self.pending.is_empty() {
                self.counter += 1;
                let mut h = Sha256::new();
                h.update(&self.label);
                h.update(self.counter.to_be_bytes());
                self.pending = h.finalize().to_vec();
            }
            *byte = self.pending.remove(0);
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rsa::rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoRng for ReplayRng {}

const ID_SCOPE: &str = "0ne00000A0A";
/// 2030-01-01T00:00:00Z: the `se` of the signed strings.
const EXPIRY: u64 = 1_893_456_000;

/// One captured case: the 401 challenge (32-byte key) and the assigned state's hub key (64).
struct Case {
    name: &'static str,
    key_len: usize,
}

const CASES: [Case; 2] = [
    Case {
        name: "challenge",
        key_len: 32,
    },
    Case {
        name: "hub-key",
        key_len: 64,
    },
];

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/auth/tpm/testdata")
}

fn read(dir: &Path, file: &str) -> Vec<u8> {
    std::fs::read(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// The key, blob and signed string of `case` for this EK/SRK, all from the replay stream.
fn rebuild(case: &Case, ek: &[u8], srk: &[u8]) -> (Vec<u8>, Vec<u8>, String) {
    let mut rng = ReplayRng::new(case.name);
    let mut key = vec![0u8; case.key_len];
    rng.fill_bytes(&mut key);
    let secrets = BlobSecrets::random(&mut rng);
    let ek = PublicArea::from_tpm2b(ek).unwrap();
    let srk = PublicArea::from_tpm2b(srk).unwrap();
    let blob = build_with_secrets(&ek, &srk, &key, &secrets, &mut rng).unwrap();
    (key, blob, string_to_sign(case, ek.to_tpm2b().unwrap()))
}

/// What the TPM HMACs: a SAS string-to-sign (`sr` as the Node SDK encodes it, `\n`, `se`).
fn string_to_sign(case: &Case, ek: Vec<u8>) -> String {
    let registration_id = registration_id_from_ek(&ek);
    let resource = match case.name {
        "challenge" => format!("{ID_SCOPE}%2Fregistrations%2F{registration_id}"),
        _ => format!("localhost%2Fdevices%2F{registration_id}"),
    };
    format!("{resource}\n{EXPIRY}")
}

/// Writes, for the EK/SRK in `$TPM_VECTORS_DIR`, each case's blob, its parts in the file
/// formats tpm2-tools reads, and the string to sign. Run by testdata/make-vectors.sh.
#[test]
#[ignore = "capture step of testdata/make-vectors.sh"]
fn capture() {
    let dir = PathBuf::from(std::env::var("TPM_VECTORS_DIR").expect("TPM_VECTORS_DIR"));
    let (ek, srk) = (read(&dir, "ek.pub"), read(&dir, "srk.pub"));
    for case in &CASES {
        let (key, blob, to_sign) = rebuild(case, &ek, &srk);
        let parts = AuthenticationKeyParts::parse(&blob).unwrap();
        // tpm2_makecredential's output format: magic, version, TPM2B_ID_OBJECT,
        // TPM2B_ENCRYPTED_SECRET.
        let mut credential = vec![0xba, 0xdc, 0xc0, 0xde, 0, 0, 0, 1];
        credential.extend_from_slice(&parts.id_object);
        credential.extend_from_slice(&parts.encrypted_secret);
        let write = |suffix: &str, bytes: &[u8]| {
            std::fs::write(dir.join(format!("{}.{suffix}", case.name)), bytes).unwrap()
        };
        write("blob", &blob);
        write("key", &key);
        write("credential", &credential);
        write("dup", &parts.private);
        write("seed", &parts.encrypted_seed);
        write("idkey.pub", &parts.public);
        write("tosign", to_sign.as_bytes());
    }
}

#[test]
fn blobs_swtpm_imported_are_rebuilt_byte_for_byte() {
    let dir = testdata();
    let (ek, srk) = (read(&dir, "ek.pub"), read(&dir, "srk.pub"));
    for case in &CASES {
        let (_, blob, _) = rebuild(case, &ek, &srk);
        assert_eq!(
            blob,
            read(&dir, &format!("{}.blob", case.name)),
            "{}",
            case.name
        );
    }
}

#[test]
fn the_signature_swtpm_made_with_the_imported_key_verifies() {
    let dir = testdata();
    let (ek, srk) = (read(&dir, "ek.pub"), read(&dir, "srk.pub"));
    let registration_id = registration_id_from_ek(&ek);
    let now = UNIX_EPOCH + Duration::from_secs(EXPIRY - 60);
    for case in &CASES {
        let (key, _, to_sign) = rebuild(case, &ek, &srk);
        let signature = read(&dir, &format!("{}.sig", case.name));
        let (resource, expiry) = to_sign.split_once('\n').unwrap();
        let sig = urlencode(&BASE64.encode(&signature));
        let token =
            format!("SharedAccessSignature sr={resource}&sig={sig}&se={expiry}&skn=registration");
        let result = verify_token(&token, ID_SCOPE, &registration_id, &key, now);
        if case.name == "challenge" {
            assert_eq!(
                result,
                Ok(UNIX_EPOCH + Duration::from_secs(EXPIRY)),
                "{}",
                case.name
            );
            let mut other_key = key.clone();
            other_key[0] ^= 1;
            assert_eq!(
                verify_token(&token, ID_SCOPE, &registration_id, &other_key, now),
                Err(SasError::BadSignature)
            );
        } else {
            // The hub key signs hub tokens: same HMAC, another resource.
            assert!(
                crate::auth::sas::SasToken::parse(&token)
                    .unwrap()
                    .signed_with(&key)
            );
        }
    }
}

#[test]
fn the_swtpm_ek_and_srk_parse_as_the_sdk_templates_describe() {
    let dir = testdata();
    let ek = PublicArea::from_tpm2b(&read(&dir, "ek.pub")).unwrap();
    let srk = PublicArea::from_tpm2b(&read(&dir, "srk.pub")).unwrap();
    for key in [&ek, &srk] {
        let rsa = key.rsa().unwrap();
        assert_eq!(rsa.key_bits, 2048);
        assert_eq!(rsa.modulus.len(), 256);
        assert_eq!(
            rsa.symmetric,
            Some(public::SymmetricDefinition {
                algorithm: alg::AES,
                key_bits: 128,
                mode: alg::CFB
            })
        );
        protector::Protector::new(key, "key").unwrap();
    }
    assert!(ek.has(alg::attr::ADMIN_WITH_POLICY | alg::attr::FIXED_TPM));
    assert_eq!(ek.auth_policy.len(), 32);
    // The parts of a blob re-marshal to the same bytes.
    let blob = read(&dir, "challenge.blob");
    let parts = AuthenticationKeyParts::parse(&blob).unwrap();
    assert_eq!(parts.to_bytes().unwrap(), blob);
    assert!(parts.enc_uri_data.is_empty());
    let idkey = PublicArea::from_tpm2b(&parts.public).unwrap();
    assert_eq!(idkey.attributes, identity_key::ATTRIBUTES);
}

#[test]
fn a_signing_key_or_ecc_key_is_no_protector() {
    let dir = testdata();
    let blob = read(&dir, "challenge.blob");
    let parts = AuthenticationKeyParts::parse(&blob).unwrap();
    let idkey = PublicArea::from_tpm2b(&parts.public).unwrap();
    assert!(matches!(
        protector::Protector::new(&idkey, "EK"),
        Err(TpmError::Unsuitable { what: "EK", .. })
    ));
    let ek = read(&dir, "ek.pub");
    let mut ecc = ek.clone();
    ecc[2..4].copy_from_slice(&alg::ECC.to_be_bytes());
    assert!(matches!(
        PublicArea::from_tpm2b(&ecc),
        Err(TpmError::UnsupportedAlgorithm { alg: alg::ECC, .. })
    ));
}

fn urlencode(s: &str) -> String {
    s.replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D")
}

/// Malformed input: every prefix, every single-byte change and arbitrary bytes end in an
/// error or a valid parse, never a panic; absurd sizes are refused.
mod garbage {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_truncation_of_a_public_area_or_blob_is_an_error() {
        let dir = testdata();
        for file in ["ek.pub", "srk.pub"] {
            let bytes = read(&dir, file);
            for len in 0..bytes.len() {
                assert!(
                    PublicArea::from_tpm2b(&bytes[..len]).is_err(),
                    "{file}[..{len}]"
                );
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(matches!(
                PublicArea::from_tpm2b(&longer),
                Err(TpmError::TrailingBytes { .. })
            ));
        }
        let blob = read(&dir, "challenge.blob");
        for len in 0..blob.len() {
            assert!(AuthenticationKeyParts::parse(&blob[..len]).is_err());
        }
    }

    #[test]
    fn absurd_sizes_are_refused() {
        let ek = read(&testdata(), "ek.pub");
        // keyBits: bytes 52..54 of the EK (after size, type, nameAlg, attributes, the 32-byte
        // policy, symmetric and scheme).
        assert_eq!(ek[52..54], 2048u16.to_be_bytes());
        for bits in [0u16, 8, 1000, 2056, 8192, u16::MAX] {
            let mut bad = ek.clone();
            bad[52..54].copy_from_slice(&bits.to_be_bytes());
            assert!(PublicArea::from_tpm2b(&bad).is_err(), "{bits}");
        }
        let area = PublicArea::from_tpm2b(&ek).unwrap();
        let srk = PublicArea::from_tpm2b(&read(&testdata(), "srk.pub")).unwrap();
        let mut rng = ReplayRng::new("sizes");
        for key in [vec![], vec![1; 65], vec![1; 10_000]] {
            assert!(matches!(
                build_authentication_key(&area, &srk, &key, &mut rng),
                Err(TpmError::TooLarge { .. })
            ));
        }
        // A 4096-bit modulus in a public area claiming 2048 bits.
        let mut wrong_modulus = ek[..58].to_vec();
        wrong_modulus.extend_from_slice(&512u16.to_be_bytes());
        wrong_modulus.extend_from_slice(&[0xff; 512]);
        let len = u16::try_from(wrong_modulus.len() - 2).unwrap();
        wrong_modulus[..2].copy_from_slice(&len.to_be_bytes());
        assert!(PublicArea::from_tpm2b(&wrong_modulus).is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = PublicArea::from_tpm2b(&bytes);
            let _ = PublicArea::from_tpmt(&bytes);
            let _ = AuthenticationKeyParts::parse(&bytes);
        }

        #[test]
        fn a_changed_byte_in_the_ek_never_panics_and_never_builds_a_blob_for_the_same_name(
            index in 0usize..316, value in any::<u8>()
        ) {
            let dir = testdata();
            let ek = read(&dir, "ek.pub");
            let srk = PublicArea::from_tpm2b(&read(&dir, "srk.pub")).unwrap();
            let original = PublicArea::from_tpm2b(&ek).unwrap();
            let mut changed = ek.clone();
            changed[index] = value;
            if let Ok(area) = PublicArea::from_tpm2b(&changed) {
                let mut rng = ReplayRng::new("changed");
                let _ = build_authentication_key(&area, &srk, &[7; 32], &mut rng);
                if changed != ek {
                    prop_assert_ne!(area.name().ok(), original.name().ok());
                }
            }
        }
    }
}
