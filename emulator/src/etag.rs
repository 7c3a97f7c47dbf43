//! ETags of every entity: how each kind is made, and the one rule an `If-Match` value is
//! matched by.
//!
//! Each entity keeps the format it has always had on the wire (clients may store and compare
//! them):
//!
//! | entity | made by | format |
//! |---|---|---|
//! | hub device and module identities | [`identity`] | 32 lower-case hex digits |
//! | device and module twins | [`twin`] | base64 of 8 bytes, like Azure's `AAAAAAAAAAE=` |
//! | DPS enrollments and enrollment groups | [`enrollment`] | a quoted GUID, as real DPS sends (protocol.md §7.3) |
//! | DPS registration states | [`registration`] | base64 of a quoted GUID, as the real service sends devices |
//! | CA certificates (DPS and hub) | [`certificate`] | 32 lower-case hex digits |
//!
//! Reading the `If-Match` header is the transports' job; whether the entity exists is the
//! caller's (`*` on a missing entity creates it in DPS and is a 404 at the hub). Given the
//! header's value and the stored etag, [`matches`] decides.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use uuid::Uuid;

/// 128 bits that no other etag of this process has: a random value drawn once per process
/// plus a counter. An etag must change on every write and differ from every other; it need not
/// be unpredictable (every read returns it). One OS random draw per etag (a `getrandom` system
/// call each) cost about half a microsecond, 10 % of a start with 100,000 fixture enrollments.
/// Successive values differ in their low 62 bits (2^62 of them before any repeats), the bits
/// every format below keeps; across processes the random base keeps them apart.
fn unique() -> u128 {
    static BASE: OnceLock<u128> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let base = *BASE.get_or_init(|| Uuid::new_v4().as_u128());
    base.wrapping_add(u128::from(COUNTER.fetch_add(1, Ordering::Relaxed)))
}

/// A version-4 GUID made of [`unique`]'s bits: the version and variant bits it overwrites
/// (bits 76–79 and 62–63) are outside the low 62 that make it unique.
fn guid() -> Uuid {
    uuid::Builder::from_random_bytes(unique().to_be_bytes()).into_uuid()
}

/// A new etag for a hub device or module identity.
pub(crate) fn identity() -> String {
    guid().simple().to_string()
}

/// A new etag for a device or module twin: the low 64 bits, which are unique.
pub(crate) fn twin() -> String {
    let n = unique() as u64;
    BASE64.encode(n.to_be_bytes())
}

/// A new etag for a DPS enrollment or enrollment group.
pub(crate) fn enrollment() -> String {
    quoted_guid()
}

/// A new etag for a DPS registration state.
pub(crate) fn registration() -> String {
    BASE64.encode(quoted_guid())
}

/// A new etag for a CA certificate entry.
pub(crate) fn certificate() -> String {
    guid().simple().to_string()
}

/// `"xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx"`, quotes included.
fn quoted_guid() -> String {
    let mut buffer = Uuid::encode_buffer();
    let text = guid().hyphenated().encode_lower(&mut buffer);
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    quoted.push_str(text);
    quoted.push('"');
    quoted
}

/// Whether an `If-Match` value admits the stored etag `current` (`None`: the stored entity
/// has none). The rule, for every entity:
///
/// * the value is a comma-separated list (RFC 9110 §13.1.1); it matches when any member
///   does;
/// * members and the stored etag are compared bare: surrounding spaces, a weak `W/` prefix
///   and the quotes dropped, because clients send the etag with or without its quotes (and
///   proxies may weaken it);
/// * the value `*` (bare or quoted, as the .NET SDKs send it) matches anything;
/// * otherwise comparison is exact (case-sensitive), and an empty or missing stored etag
///   matches nothing.
pub(crate) fn matches(if_match: &str, current: Option<&str>) -> bool {
    if is_wildcard(if_match) {
        return true;
    }
    let Some(current) = current.map(bare).filter(|c| !c.is_empty()) else {
        return false;
    };
    if_match.split(',').any(|member| bare(member) == current)
}

/// Whether an `If-Match` value is the wildcard `*` (bare or quoted; RFC 9110 does not allow
/// it inside a list).
pub(crate) fn is_wildcard(if_match: &str) -> bool {
    bare(if_match) == "*"
}

fn bare(tag: &str) -> &str {
    let tag = tag.trim();
    tag.strip_prefix("W/").unwrap_or(tag).trim_matches('"')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_weakness_and_spaces_do_not_matter() {
        let tag = Some("\"abc\"");
        assert!(matches("\"abc\"", tag));
        assert!(matches("abc", tag));
        assert!(matches("W/\"abc\"", tag));
        assert!(matches(" abc ", Some("abc")));
        assert!(!matches("\"ab\"", tag));
        assert!(!matches("ABC", tag));
    }

    #[test]
    fn a_list_matches_when_one_member_does() {
        assert!(matches("x, \"abc\"", Some("\"abc\"")));
        assert!(matches("\"nope\", W/\"abc\"", Some("abc")));
        assert!(!matches("\"nope\", \"other\"", Some("abc")));
    }

    #[test]
    fn the_wildcard_bare_or_quoted_matches_anything() {
        for wildcard in ["*", " * ", "\"*\"", "W/\"*\""] {
            assert!(is_wildcard(wildcard), "{wildcard}");
            assert!(matches(wildcard, Some("abc")), "{wildcard}");
            assert!(matches(wildcard, None), "{wildcard}");
        }
        assert!(!is_wildcard("\"**\""));
    }

    #[test]
    fn nothing_matches_a_missing_or_empty_etag() {
        assert!(!matches("", Some("")));
        assert!(!matches("\"\"", Some("\"\"")));
        assert!(!matches("abc", None));
    }

    #[test]
    fn base64_etags_compare_as_they_are() {
        assert!(matches("ImFiYyI=", Some("ImFiYyI=")));
        assert!(matches("\"AAAAAAAAAAE=\"", Some("AAAAAAAAAAE=")));
    }

    #[test]
    fn each_entity_keeps_its_wire_format() {
        let hex = |s: &str| s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit());
        assert!(hex(&identity()));
        assert!(hex(&certificate()));
        assert_eq!(BASE64.decode(twin()).map(|b| b.len()).ok(), Some(8));
        let quoted = enrollment();
        assert!(quoted.starts_with('"') && quoted.ends_with('"') && quoted.len() == 38);
        let decoded = BASE64.decode(registration()).unwrap();
        assert_eq!(decoded.len(), 38);
        assert_eq!(decoded.first(), Some(&b'"'));
        assert_ne!(identity(), identity());
    }

    #[test]
    fn etags_are_version_4_guids_and_never_repeat() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            let tag = enrollment();
            let guid = Uuid::parse_str(tag.trim_matches('"')).unwrap();
            assert_eq!(guid.get_version_num(), 4);
            assert_eq!(guid.get_variant(), uuid::Variant::RFC4122);
            assert!(seen.insert(tag));
            assert!(seen.insert(identity()));
            assert!(seen.insert(twin()));
        }
    }
}
