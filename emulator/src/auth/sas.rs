//! Shared access signature (SAS) tokens: parsing, signing and verification.
//!
//! The rules follow what the official SDKs really send (protocol.md §1): fields in any order,
//! `skn` optional, and the HMAC computed over the `sr` value *exactly as it appears in the
//! token* — SDKs disagree on its percent-encoding (`%2F`, `%2f`, or none at all), and each signs
//! what it sent. The resource itself is compared after percent-decoding, case-insensitively and
//! with segment-prefix semantics (a token for `hub/devices` covers `hub/devices/dev1`).
//! The same goes for `se`: the HMAC covers its digits as sent (`se=0123` signs `0123`).
//!
//! An expiry later than 9999-12-31T23:59:59Z is refused as malformed: that is the last second
//! Azure's .NET services can represent (`DateTimeOffset.FromUnixTimeSeconds` throws past it), and
//! it keeps every time computed from `se` far inside what `SystemTime` and `Instant` can hold.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use sha2::Sha256;

use super::group_hmac::DerivedSignatureCheck;
use crate::timefmt::unix_seconds;

type HmacSha256 = Hmac<Sha256>;

const PREFIX: &str = "SharedAccessSignature ";

/// Everything but RFC 3986 unreserved characters is escaped, as Python's `quote(safe="")` does.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The latest `se` accepted: 9999-12-31T23:59:59Z in Unix seconds.
pub(crate) const MAX_EXPIRY: u64 = 253_402_300_799;

/// Why a token was refused. The variants carry enough to log a useful reason; devices only
/// ever see "not authorized".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SasError {
    #[error("malformed SAS token: {0}")]
    Malformed(&'static str),
    #[error("SAS token expired at {expiry} (now {now})")]
    Expired { expiry: u64, now: u64 },
    #[error("SAS token resource '{actual}' does not cover '{expected}'")]
    WrongResource { actual: String, expected: String },
    #[error("SAS token key name '{0}' is not accepted here")]
    WrongKeyName(String),
    #[error("SAS token signature does not match any key")]
    BadSignature,
}

/// A parsed token. `resource_raw`, `signature_raw` and `expiry_raw` keep the bytes as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SasToken {
    pub resource_raw: String,
    pub signature_raw: String,
    /// `se` exactly as sent; the signature covers these digits, leading zeros included.
    pub expiry_raw: String,
    /// `se` as a number, at most [`MAX_EXPIRY`].
    pub expiry: u64,
    pub key_name: Option<String>,
}

impl SasToken {
    /// Parses `SharedAccessSignature sr=…&sig=…&se=…[&skn=…]` with the fields in any order.
    /// Unknown fields are ignored; duplicated or missing required fields are errors.
    pub fn parse(token: &str) -> Result<SasToken, SasError> {
        let body = token.strip_prefix(PREFIX).ok_or(SasError::Malformed(
            "missing 'SharedAccessSignature ' prefix",
        ))?;
        let (mut sr, mut sig, mut se, mut skn) = (None, None, None, None);
        for field in body.split('&') {
            let (key, value) = field
                .split_once('=')
                .ok_or(SasError::Malformed("field without '='"))?;
            let slot = match key {
                "sr" => &mut sr,
                "sig" => &mut sig,
                "se" => &mut se,
                "skn" => &mut skn,
                _ => continue,
            };
            if slot.replace(value).is_some() {
                return Err(SasError::Malformed("duplicated field"));
            }
        }
        let resource_raw = sr.ok_or(SasError::Malformed("missing sr"))?;
        let signature_raw = sig.ok_or(SasError::Malformed("missing sig"))?;
        let expiry_raw = se.ok_or(SasError::Malformed("missing se"))?;
        let expiry = parse_expiry(expiry_raw)?;
        if resource_raw.is_empty() || signature_raw.is_empty() {
            return Err(SasError::Malformed("empty sr or sig"));
        }
        let key_name = match skn {
            Some(v) => Some(decode(v)?),
            None => None,
        };
        Ok(SasToken {
            resource_raw: resource_raw.to_owned(),
            signature_raw: signature_raw.to_owned(),
            expiry_raw: expiry_raw.to_owned(),
            expiry,
            key_name,
        })
    }

    /// The instant the token expires. Never overflows: `parse` bounds `expiry`.
    pub fn expires_at(&self) -> SystemTime {
        UNIX_EPOCH
            .checked_add(Duration::from_secs(self.expiry))
            .unwrap_or(UNIX_EPOCH)
    }

    /// The resource URI after percent-decoding.
    pub fn resource(&self) -> Result<String, SasError> {
        decode(&self.resource_raw)
    }

    /// Checks expiry and that the token's resource covers `expected_resource`.
    pub fn check_scope(&self, expected_resource: &str, now: SystemTime) -> Result<(), SasError> {
        let now = unix_seconds(now);
        if self.expiry <= now {
            return Err(SasError::Expired {
                expiry: self.expiry,
                now,
            });
        }
        let actual = self.resource()?;
        if resource_covers(&actual, expected_resource) {
            Ok(())
        } else {
            Err(SasError::WrongResource {
                actual,
                expected: expected_resource.to_owned(),
            })
        }
    }

    /// True when the signature was made with `key` (raw key bytes). Constant-time.
    pub fn signed_with(&self, key: &[u8]) -> bool {
        self.signature_check()
            .is_some_and(|check| check.signed_with(key))
    }

    /// The signature decoded once, for trying many candidate keys (a DPS registration through
    /// a symmetric-key group tries every group's derived keys); `None` when the signature is
    /// not percent-encoded base64, which no key can match.
    pub fn signature_check(&self) -> Option<SignatureCheck<'_>> {
        let text = decode(&self.signature_raw).ok()?;
        let signature = BASE64.decode(text.as_bytes()).ok()?;
        Some(SignatureCheck {
            token: self,
            signature,
        })
    }

    /// Full verification: scope and expiry first, then the signature against each key.
    pub fn verify(
        &self,
        expected_resource: &str,
        keys: &[&[u8]],
        now: SystemTime,
    ) -> Result<(), SasError> {
        self.check_scope(expected_resource, now)?;
        if keys.iter().any(|k| self.signed_with(k)) {
            Ok(())
        } else {
            Err(SasError::BadSignature)
        }
    }
}

/// HMAC-SHA256 of `message` with `key`, base64-encoded: the primitive behind both token
/// signatures and group-derived device keys.
pub fn hmac_base64(key: &[u8], message: &[u8]) -> String {
    BASE64.encode(hmac_sha256(key, message))
}

/// HMAC-SHA256 of `message` under `key`, as raw bytes.
pub(crate) fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// A token's signature, decoded: [`SasToken::signature_check`].
pub struct SignatureCheck<'t> {
    token: &'t SasToken,
    signature: Vec<u8>,
}

impl SignatureCheck<'_> {
    /// True when the signature was made with `key` (raw key bytes). Constant-time.
    pub fn signed_with(&self, key: &[u8]) -> bool {
        let Ok(mut mac) = HmacSha256::new_from_slice(key) else {
            return false;
        };
        mac.update(self.token.resource_raw.as_bytes());
        mac.update(b"\n");
        mac.update(self.token.expiry_raw.as_bytes());
        mac.verify_slice(&self.signature).is_ok()
    }

    /// Prepared for trying the device keys many groups derive for `registration_id`.
    pub(crate) fn for_group_members(&self, registration_id: &str) -> DerivedSignatureCheck {
        DerivedSignatureCheck::new(
            registration_id,
            &[
                self.token.resource_raw.as_bytes(),
                b"\n",
                self.token.expiry_raw.as_bytes(),
            ],
            &self.signature,
        )
    }
}

/// Builds a token the way the Python SDK does (`sr` and `sig` percent-encoded with upper-case
/// escapes). Useful for tests and for library users who script service calls.
pub fn build_token(resource_uri: &str, key: &[u8], key_name: Option<&str>, expiry: u64) -> String {
    let sr = utf8_percent_encode(resource_uri, COMPONENT).to_string();
    let sig = hmac_base64(key, format!("{sr}\n{expiry}").as_bytes());
    let sig = utf8_percent_encode(&sig, COMPONENT);
    let mut token = format!("{PREFIX}sr={sr}&sig={sig}&se={expiry}");
    if let Some(name) = key_name {
        token.push_str("&skn=");
        token.push_str(&utf8_percent_encode(name, COMPONENT).to_string());
    }
    token
}

/// `se` must be plain decimal digits (no sign, no spaces: `u64::from_str` alone would accept
/// `+5`) and no later than [`MAX_EXPIRY`].
fn parse_expiry(raw: &str) -> Result<u64, SasError> {
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SasError::Malformed("se is not an integer"));
    }
    match raw.parse::<u64>() {
        Ok(expiry) if expiry <= MAX_EXPIRY => Ok(expiry),
        _ => Err(SasError::Malformed("se is past 9999-12-31T23:59:59Z")),
    }
}

/// Segment-prefix, case-insensitive comparison of decoded resource URIs.
pub fn resource_covers(token_resource: &str, expected: &str) -> bool {
    let token = token_resource.trim_end_matches('/').to_ascii_lowercase();
    let expected = expected.trim_end_matches('/').to_ascii_lowercase();
    expected == token || expected.starts_with(&format!("{token}/"))
}

fn decode(raw: &str) -> Result<String, SasError> {
    percent_decode_str(raw)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| SasError::Malformed("percent-decoded value is not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::{Duration, UNIX_EPOCH};

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn accepts_fields_in_any_order_and_optional_skn() {
        let good = build_token("0ne00000A0A/registrations/dev-1", KEY, None, 2_000);
        let t = SasToken::parse(&good).unwrap();
        assert!(t.key_name.is_none());
        t.verify("0ne00000A0A/registrations/dev-1", &[KEY], at(1_000))
            .unwrap();
        // Node's order: sr, sig, skn, se.
        let body = good.strip_prefix(PREFIX).unwrap();
        let mut parts: Vec<&str> = body.split('&').collect();
        parts.reverse();
        let reordered = format!("{PREFIX}{}&skn=registration", parts.join("&"));
        let t = SasToken::parse(&reordered).unwrap();
        assert_eq!(t.key_name.as_deref(), Some("registration"));
        t.verify("0ne00000A0A/registrations/dev-1", &[KEY], at(1_000))
            .unwrap();
    }

    #[test]
    fn signs_the_raw_sr_whatever_its_encoding() {
        // Node's DPS client does not encode sr at all; the C SDK uses lower-case escapes.
        for sr in [
            "0ne00000A0A/registrations/dev-1",
            "0ne00000A0A%2fregistrations%2fdev-1",
        ] {
            let sig = hmac_base64(KEY, format!("{sr}\n2000").as_bytes());
            let token = format!(
                "{PREFIX}sr={sr}&sig={}&se=2000",
                utf8_percent_encode(&sig, COMPONENT)
            );
            SasToken::parse(&token)
                .unwrap()
                .verify("0NE00000a0a/registrations/DEV-1", &[KEY], at(1_000))
                .unwrap();
        }
    }

    #[test]
    fn signature_with_raw_slash_and_plus_is_accepted() {
        // Python service SDKs leave '/' raw in sig; a raw '+' must not become a space.
        let sig = hmac_base64(KEY, b"localhost\n2000");
        let token = format!("{PREFIX}sr=localhost&sig={sig}&se=2000&skn=iothubowner");
        SasToken::parse(&token)
            .unwrap()
            .verify("localhost", &[KEY], at(1_000))
            .unwrap();
    }

    #[test]
    fn refuses_expired_wrong_key_and_wrong_resource() {
        let token = SasToken::parse(&build_token("hub/devices/d1", KEY, None, 2_000)).unwrap();
        assert!(matches!(
            token.verify("hub/devices/d1", &[KEY], at(2_000)),
            Err(SasError::Expired { .. })
        ));
        assert_eq!(
            token.verify("hub/devices/d1", &[b"other key"], at(1_000)),
            Err(SasError::BadSignature)
        );
        assert!(matches!(
            token.verify("hub/devices/d10", &[KEY], at(1_000)),
            Err(SasError::WrongResource { .. })
        ));
    }

    #[test]
    fn resource_prefix_is_by_segment() {
        assert!(resource_covers("hub/devices", "hub/devices/d1"));
        assert!(resource_covers("HUB/Devices/", "hub/devices/d1"));
        assert!(!resource_covers("hub/dev", "hub/devices/d1"));
        assert!(!resource_covers("hub/devices/d1/x", "hub/devices/d1"));
    }

    #[test]
    fn malformed_tokens_are_errors_not_panics() {
        for bad in [
            "",
            "SharedAccessSignature",
            "SharedAccessSignature sr=a&sig=b",
            "SharedAccessSignature sr=a&sig=b&se=x",
            "SharedAccessSignature sr=a&sr=a&sig=b&se=1",
            "SharedAccessSignature sr&sig=b&se=1",
            "Bearer abc",
        ] {
            assert!(SasToken::parse(bad).is_err(), "{bad}");
        }
    }

    /// A token signed by hand over exactly `sr` and `se` as they will be sent.
    fn signed(sr: &str, se: &str, key: &[u8]) -> String {
        let sig = hmac_base64(key, format!("{sr}\n{se}").as_bytes());
        format!(
            "{PREFIX}sr={sr}&sig={}&se={se}",
            utf8_percent_encode(&sig, COMPONENT)
        )
    }

    #[test]
    fn signs_se_exactly_as_sent() {
        let with_zero = SasToken::parse(&signed("hub/devices/d1", "02000", KEY)).unwrap();
        assert_eq!(with_zero.expiry, 2_000);
        with_zero
            .verify("hub/devices/d1", &[KEY], at(1_000))
            .unwrap();
        // Signed over "2000" but sent as "02000": a different string, so a bad signature.
        let sig = hmac_base64(KEY, b"hub/devices/d1\n2000");
        let reprinted = format!(
            "{PREFIX}sr=hub/devices/d1&sig={}&se=02000",
            utf8_percent_encode(&sig, COMPONENT)
        );
        assert_eq!(
            SasToken::parse(&reprinted)
                .unwrap()
                .verify("hub/devices/d1", &[KEY], at(1_000)),
            Err(SasError::BadSignature)
        );
    }

    #[test]
    fn expiry_past_year_9999_is_malformed_not_a_panic() {
        let last = SasToken::parse(&signed("hub", &MAX_EXPIRY.to_string(), KEY)).unwrap();
        last.verify("hub", &[KEY], SystemTime::now()).unwrap();
        assert_eq!(
            last.expires_at(),
            UNIX_EPOCH + Duration::from_secs(MAX_EXPIRY)
        );
        for se in [
            (MAX_EXPIRY + 1).to_string(),
            (1u64 << 63).to_string(),
            u64::MAX.to_string(),
            "99999999999999999999999999".to_owned(),
        ] {
            assert!(
                matches!(
                    SasToken::parse(&signed("hub", &se, KEY)),
                    Err(SasError::Malformed(_))
                ),
                "{se}"
            );
        }
    }

    #[test]
    fn se_must_be_plain_digits() {
        for se in ["+2000", "-1", " 2000", "2000 ", "2e3", "0x7d0", ""] {
            assert!(SasToken::parse(&signed("hub", se, KEY)).is_err(), "{se:?}");
        }
    }

    /// The ways producers spell `sr` (protocol.md §1.3).
    fn encode_sr(resource: &str, style: u8) -> String {
        let upper = utf8_percent_encode(resource, COMPONENT).to_string();
        match style % 3 {
            0 => resource.to_owned(),
            1 => upper,
            _ => {
                // Lower-case escapes, as the C SDK writes them.
                let mut out = String::new();
                let mut chars = upper.chars();
                while let Some(c) = chars.next() {
                    out.push(c);
                    if c == '%' {
                        for _ in 0..2 {
                            if let Some(h) = chars.next() {
                                out.push(h.to_ascii_lowercase());
                            }
                        }
                    }
                }
                out
            }
        }
    }

    proptest! {
        #[test]
        fn any_se_sr_order_and_encoding_round_trips_or_is_refused(
            resource in "[a-zA-Z0-9./:_ -]{1,40}",
            key in proptest::collection::vec(any::<u8>(), 16..64),
            se in prop_oneof![
                any::<u64>().prop_map(|n| n.to_string()),
                (0usize..4, 0u64..=MAX_EXPIRY).prop_map(|(zeros, n)| format!("{}{n}", "0".repeat(zeros))),
                "[0-9+ -]{0,25}",
            ],
            style in any::<u8>(),
            order in Just(["sr", "sig", "se", "skn"]).prop_shuffle(),
            skn in proptest::option::of("[a-z]{1,12}"),
            now in any::<u64>(),
        ) {
            let sr = encode_sr(&resource, style);
            let sig = hmac_base64(&key, format!("{sr}\n{se}").as_bytes());
            let sig = utf8_percent_encode(&sig, COMPONENT).to_string();
            let fields: Vec<String> = order
                .iter()
                .filter_map(|name| match *name {
                    "sr" => Some(format!("sr={sr}")),
                    "sig" => Some(format!("sig={sig}")),
                    "se" => Some(format!("se={se}")),
                    _ => skn.as_ref().map(|n| format!("skn={n}")),
                })
                .collect();
            let token = format!("{PREFIX}{}", fields.join("&"));
            let now = UNIX_EPOCH.checked_add(Duration::from_secs(now)).unwrap_or(UNIX_EPOCH);
            let valid_se = !se.is_empty()
                && se.bytes().all(|b| b.is_ascii_digit())
                && se.parse::<u64>().is_ok_and(|n| n <= MAX_EXPIRY);
            match SasToken::parse(&token) {
                Ok(parsed) => {
                    prop_assert!(valid_se, "accepted se {se:?}");
                    prop_assert_eq!(&parsed.expiry_raw, &se);
                    prop_assert!(parsed.signed_with(&key));
                    let _ = parsed.expires_at();
                    let result = parsed.verify(&resource, &[&key], now);
                    if parsed.expires_at() > now {
                        prop_assert!(result.is_ok(), "{result:?}");
                    } else {
                        let is_expired = matches!(result, Err(SasError::Expired { .. }));
                        prop_assert!(is_expired);
                    }
                }
                Err(e) => {
                    prop_assert!(!valid_se, "refused {token:?}: {e}");
                }
            }
        }

        #[test]
        fn sign_then_verify_round_trips(
            resource in "[a-zA-Z0-9./:_ -]{1,60}",
            key in proptest::collection::vec(any::<u8>(), 16..64),
            expiry in 1_000u64..u32::MAX as u64,
            skn in proptest::option::of("[a-z]{1,12}"),
        ) {
            let token = build_token(&resource, &key, skn.as_deref(), expiry);
            let parsed = SasToken::parse(&token).unwrap();
            prop_assert_eq!(parsed.key_name.clone(), skn);
            prop_assert_eq!(parsed.resource().unwrap(), resource.clone());
            prop_assert!(SasToken::parse(&token).unwrap().verify(&resource, &[&key], at(999)).is_ok());
            let mut other = key.clone();
            other[0] ^= 1;
            prop_assert_eq!(
                SasToken::parse(&token).unwrap().verify(&resource, &[&other], at(999)),
                Err(SasError::BadSignature)
            );
        }

        #[test]
        fn parser_never_panics(input in ".{0,200}") {
            let _ = SasToken::parse(&input);
            let _ = SasToken::parse(&format!("{PREFIX}{input}"));
        }
    }
}
