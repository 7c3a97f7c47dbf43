//! Percent-encoding shared by everything that puts text on the wire: SAS `sr`/`sig`, MQTT
//! usernames, DPS and hub topic queries and the telemetry property bag.
//!
//! One rule everywhere: keep only RFC 3986 *unreserved* characters (`A-Z a-z 0-9 - . _ ~`) and
//! percent-encode every other byte of the UTF-8 form with upper-case hex. That is what
//! Python's `quote(s, safe="")` produces, which is the encoding the real service sees most often
//! (spec/protocol.md §1.3, §5.4); it also turns `$` into `%24` and a space into `%20`, never `+`.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

/// Everything except the unreserved characters gets encoded.
const NOT_UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes `s`, keeping only unreserved characters.
pub(crate) fn encode(s: &str) -> String {
    utf8_percent_encode(s, NOT_UNRESERVED).to_string()
}

/// Decodes `%XX` escapes (and nothing else: `+` stays a `+`). Invalid UTF-8 after decoding is
/// replaced rather than rejected, because these values are only ever compared or shown.
pub(crate) fn decode(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// `k=v&k2=v2` → decoded pairs in order; a part without `=` is a key with an empty value.
/// Shared by the DPS and hub response topics, whose queries senders order differently.
pub(crate) fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|part| !part.is_empty())
        .map(|part| match part.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(part), String::new()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn keeps_unreserved_and_encodes_the_rest() {
        assert_eq!(encode("aZ09-._~"), "aZ09-._~");
        assert_eq!(encode("a/b c$+=&%"), "a%2Fb%20c%24%2B%3D%26%25");
        assert_eq!(encode("é"), "%C3%A9");
    }

    #[test]
    fn decode_leaves_plus_alone() {
        assert_eq!(decode("a+b%20c%2f"), "a+b c/");
    }

    proptest! {
        #[test]
        fn round_trips(s in any::<String>()) {
            prop_assert_eq!(decode(&encode(&s)), s);
        }

        #[test]
        fn output_is_only_unreserved_or_escapes(s in any::<String>()) {
            let e = encode(&s);
            prop_assert!(e.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b)));
        }
    }
}
