//! A TPM in software: the device side of DPS TPM attestation, for tests and for clients that
//! want to exercise the flow without a TPM (not a security boundary — its keys are in memory).
//!
//! It holds RSA storage keys in the EK and SRK roles and does what the SDKs make a real TPM do
//! with an `authenticationKey` blob (spec/tpm.md Q3): ActivateCredential (open the credential
//! with the EK, checking its HMAC against the SRK's name), Import (strip the outer wrapper with
//! the SRK's seed and the inner one with the activated key, checking both integrity values),
//! and then HMAC-SHA256 with the imported key — the only use the SDKs make of it.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use rsa::rand_core::CryptoRngCore;
use rsa::traits::PublicKeyParts;
use rsa::{Oaep, RsaPrivateKey};
use sha2::{Digest, Sha256};

use super::TpmError;
use super::alg::{self, attr};
use super::authentication_key::AuthenticationKeyParts;
use super::credential::integrity_hmac;
use super::kdf::{Label, kdfa_sha256};
use super::public::PublicArea;
use super::symmetric::cfb_decrypt;
use super::wire::{Reader, put_tpm2b};

/// The attributes of the SDKs' EK template (restricted decrypt storage key with a policy).
const EK_ATTRIBUTES: u32 = attr::FIXED_TPM
    | attr::FIXED_PARENT
    | attr::SENSITIVE_DATA_ORIGIN
    | attr::ADMIN_WITH_POLICY
    | attr::RESTRICTED
    | attr::DECRYPT;
/// The attributes of the SDKs' SRK template.
const SRK_ATTRIBUTES: u32 = attr::FIXED_TPM
    | attr::FIXED_PARENT
    | attr::SENSITIVE_DATA_ORIGIN
    | attr::USER_WITH_AUTH
    | attr::NO_DA
    | attr::RESTRICTED
    | attr::DECRYPT;
/// The TCG default EK policy (PolicySecret(TPM_RH_ENDORSEMENT)), as in the EK template.
const EK_POLICY: [u8; 32] = [
    0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xb3, 0xf8, 0x1a, 0x90, 0xcc, 0x8d, 0x46, 0xa5, 0xd7, 0x24,
    0xfd, 0x52, 0xd7, 0x6e, 0x06, 0x52, 0x0b, 0x64, 0xf2, 0xa1, 0xda, 0x1b, 0x33, 0x14, 0x69, 0xaa,
];
/// The AES key size both templates use (AES-128-CFB).
const STORAGE_SYMMETRIC_BYTES: u16 = 16;

/// One RSA storage key: its private half and its public area.
#[derive(Clone)]
struct StorageKey {
    private: RsaPrivateKey,
    public: PublicArea,
}

impl StorageKey {
    fn generate(
        bits: usize,
        attributes: u32,
        policy: &[u8],
        rng: &mut impl CryptoRngCore,
    ) -> Result<StorageKey, TpmError> {
        let private = RsaPrivateKey::new(rng, bits).map_err(|e| TpmError::RsaKey(e.to_string()))?;
        let key_bits =
            u16::try_from(bits).map_err(|_| TpmError::RsaKey("key size too large".to_owned()))?;
        let mut tpmt = Vec::new();
        tpmt.extend_from_slice(&alg::RSA.to_be_bytes());
        tpmt.extend_from_slice(&alg::SHA256.to_be_bytes());
        tpmt.extend_from_slice(&attributes.to_be_bytes());
        put_tpm2b(&mut tpmt, policy, "authPolicy")?;
        tpmt.extend_from_slice(&alg::AES.to_be_bytes());
        tpmt.extend_from_slice(&128u16.to_be_bytes());
        tpmt.extend_from_slice(&alg::CFB.to_be_bytes());
        tpmt.extend_from_slice(&alg::NULL.to_be_bytes());
        tpmt.extend_from_slice(&key_bits.to_be_bytes());
        // Exponent 0 is the default 65537, which `RsaPrivateKey::new` uses.
        tpmt.extend_from_slice(&0u32.to_be_bytes());
        put_tpm2b(&mut tpmt, &private.n().to_bytes_be(), "unique")?;
        Ok(StorageKey {
            private,
            public: PublicArea::from_tpmt(&tpmt)?,
        })
    }

    /// Recovers a seed encrypted to this key with `label` (`IDENTITY` / `DUPLICATE`).
    fn decrypt_seed(&self, marshalled: &[u8], label: &'static str) -> Result<Vec<u8>, TpmError> {
        let mut r = Reader::new(marshalled, "TPM2B_ENCRYPTED_SECRET");
        let encrypted = r.tpm2b()?;
        r.finish()?;
        self.private
            .decrypt(Oaep::new_with_label::<Sha256, _>(label), encrypted)
            .map_err(|_| refused("the secret does not decrypt with this key"))
    }
}

/// A software TPM with an EK, an SRK and, once a blob was imported, an identity key.
#[derive(Clone)]
pub struct SoftwareTpm {
    endorsement: StorageKey,
    storage_root: StorageKey,
    identity_key: Option<Vec<u8>>,
}

impl std::fmt::Debug for SoftwareTpm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoftwareTpm")
            .field("identity_key", &self.identity_key.as_ref().map(Vec::len))
            .finish_non_exhaustive()
    }
}

impl SoftwareTpm {
    /// Makes RSA-`bits` EK and SRK with the SDKs' templates (2048 like real TPMs; 1024 is
    /// faster and still accepted by DPS).
    pub fn generate(bits: usize, rng: &mut impl CryptoRngCore) -> Result<SoftwareTpm, TpmError> {
        Ok(SoftwareTpm {
            endorsement: StorageKey::generate(bits, EK_ATTRIBUTES, &EK_POLICY, rng)?,
            storage_root: StorageKey::generate(bits, SRK_ATTRIBUTES, &[], rng)?,
            identity_key: None,
        })
    }

    /// [`SoftwareTpm::generate`] with the operating system's randomness.
    pub fn new(bits: usize) -> Result<SoftwareTpm, TpmError> {
        SoftwareTpm::generate(bits, &mut rand_core::OsRng)
    }

    /// The EK's `TPM2B_PUBLIC`, as a device sends it.
    pub fn endorsement_key(&self) -> Result<Vec<u8>, TpmError> {
        self.endorsement.public.to_tpm2b()
    }

    /// The SRK's `TPM2B_PUBLIC`.
    pub fn storage_root_key(&self) -> Result<Vec<u8>, TpmError> {
        self.storage_root.public.to_tpm2b()
    }

    /// What the SDKs do with an `authenticationKey` blob: ActivateCredential, then Import of the
    /// identity key, which replaces the previous one (the SDKs evict it to the same handle).
    pub fn import(&mut self, blob: &[u8]) -> Result<(), TpmError> {
        let parts = AuthenticationKeyParts::parse(blob)?;
        let inner_key = self.activate_credential(&parts.id_object, &parts.encrypted_secret)?;
        let key = self.import_duplicate(&parts, &inner_key)?;
        self.identity_key = Some(key);
        Ok(())
    }

    /// HMAC-SHA256 with the imported identity key (what the SDKs sign SAS tokens with).
    pub fn hmac(&self, data: &[u8]) -> Result<[u8; 32], TpmError> {
        let key = self
            .identity_key
            .as_deref()
            .ok_or(refused("no identity key was imported"))?;
        let mut mac = Hmac::<Sha256>::new_from_slice(key)
            .map_err(|_| refused("the identity key is not an HMAC key"))?;
        mac.update(data);
        Ok(mac.finalize().into_bytes().into())
    }

    /// A SAS token for `resource_uri` signed inside this TPM, as the SDKs build it for DPS
    /// (`key_name` `registration`) and for the hub (no key name).
    pub fn sas_token(
        &self,
        resource_uri: &str,
        key_name: Option<&str>,
        expiry: u64,
    ) -> Result<String, TpmError> {
        let sr = utf8_percent_encode(resource_uri, NON_ALPHANUMERIC).to_string();
        let signature = BASE64.encode(self.hmac(format!("{sr}\n{expiry}").as_bytes())?);
        let sig = utf8_percent_encode(&signature, NON_ALPHANUMERIC);
        let mut token = format!("SharedAccessSignature sr={sr}&sig={sig}&se={expiry}");
        if let Some(name) = key_name {
            token.push_str("&skn=");
            token.push_str(&utf8_percent_encode(name, NON_ALPHANUMERIC).to_string());
        }
        Ok(token)
    }

    /// ActivateCredential(activate = SRK, key = EK): the credential (the inner key), if the
    /// blob was made for this EK and names this SRK.
    fn activate_credential(
        &self,
        id_object: &[u8],
        encrypted_secret: &[u8],
    ) -> Result<Vec<u8>, TpmError> {
        let seed = self
            .endorsement
            .decrypt_seed(encrypted_secret, "IDENTITY\0")?;
        let srk_name = self.storage_root.public.name()?;
        let mut r = Reader::new(id_object, "TPM2B_ID_OBJECT");
        let mut id = Reader::new(r.tpm2b()?, "TPMS_ID_OBJECT");
        r.finish()?;
        let hmac = id.tpm2b()?;
        let mut enc_identity = id.remaining().to_vec();
        if integrity_hmac(&seed, &enc_identity, &srk_name).as_slice() != hmac {
            return Err(refused("the credential's integrity HMAC does not match"));
        }
        let key = kdfa_sha256(
            &seed,
            Label::Storage,
            srk_name.as_bytes(),
            &[],
            STORAGE_SYMMETRIC_BYTES,
        );
        cfb_decrypt(&key, &mut enc_identity)?;
        let mut r = Reader::new(&enc_identity, "credential");
        let credential = r.tpm2b()?.to_vec();
        r.finish()?;
        Ok(credential)
    }

    /// Import under the SRK with the inner wrapper key: the identity key's bytes.
    fn import_duplicate(
        &self,
        parts: &AuthenticationKeyParts,
        inner_key: &[u8],
    ) -> Result<Vec<u8>, TpmError> {
        let public = PublicArea::from_tpm2b(&parts.public)?;
        if public.has(attr::FIXED_TPM) || public.has(attr::FIXED_PARENT) {
            return Err(refused("an imported key cannot be fixedTPM or fixedParent"));
        }
        let name = public.name()?;
        let seed = self
            .storage_root
            .decrypt_seed(&parts.encrypted_seed, "DUPLICATE\0")?;
        let mut r = Reader::new(&parts.private, "TPM2B_PRIVATE");
        let mut private = Reader::new(r.tpm2b()?, "duplicate");
        r.finish()?;
        let outer_hmac = private.tpm2b()?;
        let mut sensitive = private.remaining().to_vec();
        if integrity_hmac(&seed, &sensitive, &name).as_slice() != outer_hmac {
            return Err(refused("the duplicate's outer HMAC does not match"));
        }
        let key = kdfa_sha256(
            &seed,
            Label::Storage,
            name.as_bytes(),
            &[],
            STORAGE_SYMMETRIC_BYTES,
        );
        cfb_decrypt(&key, &mut sensitive)?;
        cfb_decrypt(inner_key, &mut sensitive)?;

        let mut r = Reader::new(&sensitive, "inner wrapper");
        let inner_integrity = r.tpm2b()?;
        let marshalled = r.remaining();
        let mut digest = Sha256::new();
        digest.update(marshalled);
        digest.update(name.as_bytes());
        if digest.finalize().as_slice() != inner_integrity {
            return Err(refused("the duplicate's inner integrity does not match"));
        }
        let mut r = Reader::new(marshalled, "TPM2B_SENSITIVE");
        let mut s = Reader::new(r.tpm2b()?, "TPMT_SENSITIVE");
        r.finish()?;
        if s.u16()? != alg::KEYEDHASH {
            return Err(refused("the imported object is not a KEYEDHASH key"));
        }
        let _auth_value = s.tpm2b()?;
        let _seed_value = s.tpm2b()?;
        let key = s.tpm2b()?.to_vec();
        s.finish()?;
        Ok(key)
    }
}

fn refused(reason: &'static str) -> TpmError {
    TpmError::Unsuitable {
        what: "software TPM",
        reason,
    }
}
