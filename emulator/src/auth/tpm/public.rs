//! `TPM2B_PUBLIC` (Part 2 §12.2.5): the public area a device sends for its endorsement key
//! (EK) and storage root key (SRK), and the one the server writes for the identity key.
//!
//! Only the object types the DPS flow uses are understood: RSA (EK, SRK) and KEYEDHASH (the
//! HMAC identity key). Anything else — ECC EKs included — is a typed error. The exact bytes
//! are kept, because an object's name is the hash of them as the TPM marshalled them.

use rsa::{BigUint, RsaPublicKey};

use super::TpmError;
use super::alg;
use super::name::Name;
use super::wire::{Reader, put_tpm2b};

/// Largest RSA key accepted: the `rsa` crate's own limit, and more than any TPM makes.
const MAX_RSA_BITS: u16 = 4096;
/// Smallest RSA key accepted; TPMs make 2048-bit EKs and SRKs.
const MIN_RSA_BITS: u16 = 1024;

/// A parsed public area together with its marshalled `TPMT_PUBLIC` bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicArea {
    tpmt: Vec<u8>,
    pub name_alg: u16,
    /// `TPMA_OBJECT` bits ([`alg::attr`]).
    pub attributes: u32,
    pub auth_policy: Vec<u8>,
    pub parameters: Parameters,
}

/// The type-specific part of a public area.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parameters {
    Rsa(RsaParameters),
    KeyedHash(KeyedHashParameters),
}

/// `TPMS_RSA_PARMS` and the modulus (`unique`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RsaParameters {
    /// The symmetric algorithm of a storage key; `None` for `TPM_ALG_NULL`.
    pub symmetric: Option<SymmetricDefinition>,
    /// `(scheme, hash)`; hash is `TPM_ALG_NULL` for schemes without one.
    pub scheme: (u16, u16),
    pub key_bits: u16,
    /// The public exponent; 0 means the default 65537.
    pub exponent: u32,
    pub modulus: Vec<u8>,
}

/// `TPMT_SYM_DEF_OBJECT` when not NULL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SymmetricDefinition {
    pub algorithm: u16,
    pub key_bits: u16,
    pub mode: u16,
}

/// `TPMS_KEYEDHASH_PARMS` and `unique`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyedHashParameters {
    /// `(scheme, hash)`; hash is `TPM_ALG_NULL` for the NULL scheme.
    pub scheme: (u16, u16),
    /// For XOR schemes, the KDF; `TPM_ALG_NULL` otherwise.
    pub kdf: u16,
    pub unique: Vec<u8>,
}

impl PublicArea {
    /// Parses a `TPM2B_PUBLIC` (size, then `TPMT_PUBLIC`); nothing may follow it.
    pub fn from_tpm2b(bytes: &[u8]) -> Result<PublicArea, TpmError> {
        let mut r = Reader::new(bytes, "TPM2B_PUBLIC");
        let tpmt = r.tpm2b()?;
        r.finish()?;
        PublicArea::from_tpmt(tpmt)
    }

    /// Parses a bare `TPMT_PUBLIC`; nothing may follow it.
    pub fn from_tpmt(tpmt: &[u8]) -> Result<PublicArea, TpmError> {
        let mut r = Reader::new(tpmt, "TPMT_PUBLIC");
        let object_type = r.u16()?;
        let name_alg = r.u16()?;
        let attributes = r.u32()?;
        let auth_policy = r.tpm2b()?.to_vec();
        let parameters = match object_type {
            alg::RSA => Parameters::Rsa(read_rsa(&mut r)?),
            alg::KEYEDHASH => Parameters::KeyedHash(read_keyed_hash(&mut r)?),
            other => {
                return Err(TpmError::UnsupportedAlgorithm {
                    what: "public area type (RSA and KEYEDHASH are supported)",
                    alg: other,
                });
            }
        };
        r.finish()?;
        Ok(PublicArea {
            tpmt: tpmt.to_vec(),
            name_alg,
            attributes,
            auth_policy,
            parameters,
        })
    }

    /// Builds a KEYEDHASH public area (the identity key's) and marshals it.
    pub fn keyed_hash(
        name_alg: u16,
        attributes: u32,
        params: KeyedHashParameters,
    ) -> Result<PublicArea, TpmError> {
        let mut tpmt = Vec::new();
        tpmt.extend_from_slice(&alg::KEYEDHASH.to_be_bytes());
        tpmt.extend_from_slice(&name_alg.to_be_bytes());
        tpmt.extend_from_slice(&attributes.to_be_bytes());
        put_tpm2b(&mut tpmt, &[], "authPolicy")?;
        tpmt.extend_from_slice(&params.scheme.0.to_be_bytes());
        match params.scheme.0 {
            alg::HMAC => tpmt.extend_from_slice(&params.scheme.1.to_be_bytes()),
            alg::XOR => {
                tpmt.extend_from_slice(&params.scheme.1.to_be_bytes());
                tpmt.extend_from_slice(&params.kdf.to_be_bytes());
            }
            _ => {}
        }
        put_tpm2b(&mut tpmt, &params.unique, "keyed hash unique")?;
        // Parsing what was written checks it is a structure a TPM would read back.
        PublicArea::from_tpmt(&tpmt)
    }

    /// The marshalled `TPMT_PUBLIC` (the `TPM2B_PUBLIC` without its size).
    pub fn tpmt_bytes(&self) -> &[u8] {
        &self.tpmt
    }

    /// The marshalled `TPM2B_PUBLIC`.
    pub fn to_tpm2b(&self) -> Result<Vec<u8>, TpmError> {
        super::wire::tpm2b(&self.tpmt, "TPM2B_PUBLIC")
    }

    /// The object's name: `nameAlg || H(TPMT_PUBLIC)`.
    pub fn name(&self) -> Result<Name, TpmError> {
        Name::of(self)
    }

    pub fn has(&self, attribute: u32) -> bool {
        self.attributes & attribute == attribute
    }

    pub fn rsa(&self) -> Option<&RsaParameters> {
        match &self.parameters {
            Parameters::Rsa(p) => Some(p),
            Parameters::KeyedHash(_) => None,
        }
    }

    /// The RSA public key, checked by the `rsa` crate (size, exponent).
    pub fn rsa_public_key(&self) -> Result<RsaPublicKey, TpmError> {
        let p = self.rsa().ok_or(TpmError::Unsuitable {
            what: "public area",
            reason: "not an RSA key",
        })?;
        let exponent = if p.exponent == 0 { 65_537 } else { p.exponent };
        RsaPublicKey::new(BigUint::from_bytes_be(&p.modulus), BigUint::from(exponent))
            .map_err(|e| TpmError::RsaKey(e.to_string()))
    }
}

fn read_rsa(r: &mut Reader<'_>) -> Result<RsaParameters, TpmError> {
    let symmetric = match r.u16()? {
        alg::NULL => None,
        algorithm => Some(SymmetricDefinition {
            algorithm,
            key_bits: r.u16()?,
            mode: r.u16()?,
        }),
    };
    let scheme_alg = r.u16()?;
    let scheme = match scheme_alg {
        alg::NULL | alg::RSAES => (scheme_alg, alg::NULL),
        alg::RSASSA | alg::RSAPSS | alg::OAEP => (scheme_alg, r.u16()?),
        other => {
            return Err(TpmError::UnsupportedAlgorithm {
                what: "RSA scheme",
                alg: other,
            });
        }
    };
    let key_bits = r.u16()?;
    if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&key_bits) || key_bits % 8 != 0 {
        return Err(TpmError::Unsuitable {
            what: "RSA keyBits",
            reason: "not a multiple of 8 between 1024 and 4096",
        });
    }
    let exponent = r.u32()?;
    let modulus = r.tpm2b()?.to_vec();
    if modulus.len() != usize::from(key_bits / 8) {
        return Err(TpmError::Unsuitable {
            what: "RSA unique",
            reason: "the modulus length does not match keyBits",
        });
    }
    Ok(RsaParameters {
        symmetric,
        scheme,
        key_bits,
        exponent,
        modulus,
    })
}

fn read_keyed_hash(r: &mut Reader<'_>) -> Result<KeyedHashParameters, TpmError> {
    let scheme_alg = r.u16()?;
    let (scheme, kdf) = match scheme_alg {
        alg::NULL => ((alg::NULL, alg::NULL), alg::NULL),
        alg::HMAC => ((alg::HMAC, r.u16()?), alg::NULL),
        alg::XOR => {
            let hash = r.u16()?;
            ((alg::XOR, hash), r.u16()?)
        }
        other => {
            return Err(TpmError::UnsupportedAlgorithm {
                what: "keyed hash scheme",
                alg: other,
            });
        }
    };
    let unique = r.tpm2b()?.to_vec();
    Ok(KeyedHashParameters {
        scheme,
        kdf,
        unique,
    })
}
