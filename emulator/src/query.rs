//! `key=value&key` query strings as Azure puts them in MQTT topics, usernames and URLs.
//! Keys and values are percent-decoded (`%24.mid` → `$.mid`); `+` stays a plus, because
//! SDKs encode spaces as `%20`.
//!
//! Shared by every transport (MQTT topics and usernames, HTTP request URLs through
//! `http::request`, the control port), so it stays a leaf of its own; the IoT Hub *query
//! language* for twins is another thing, in `hub::query`.

use percent_encoding::percent_decode_str;

/// Decoded pairs in order; a key without `=` has no value. Fails on invalid UTF-8.
pub(crate) fn pairs(query: &str) -> Result<Vec<(String, Option<String>)>, std::str::Utf8Error> {
    query
        .split('&')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let (key, value) = match part.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (part, None),
            };
            let key = percent_decode_str(key).decode_utf8()?.into_owned();
            let value = value
                .map(|v| percent_decode_str(v).decode_utf8().map(|s| s.into_owned()))
                .transpose()?;
            Ok((key, value))
        })
        .collect()
}

/// The value of `key` exactly as sent (not decoded), for echoing back — `$rid` must return to
/// the device byte for byte.
pub(crate) fn raw_value<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query
        .split('&')
        .find_map(|part| match part.split_once('=') {
            Some((k, v))
                if k == key || percent_decode_str(k).decode_utf8().ok()?.as_ref() == key =>
            {
                Some(v)
            }
            _ => None,
        })
}

/// The decoded value of `key`.
pub(crate) fn value(query: &str, key: &str) -> Option<String> {
    let raw = raw_value(query, key)?;
    percent_decode_str(raw)
        .decode_utf8()
        .ok()
        .map(|s| s.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_keys_and_values_and_keeps_raw_for_echo() {
        let q = "%24.mid=mid%201%2Fx&a+b=c%26d&flag&%24rid=r%2F1";
        let p = pairs(q).unwrap();
        assert_eq!(p[0], ("$.mid".into(), Some("mid 1/x".into())));
        assert_eq!(p[1], ("a+b".into(), Some("c&d".into())));
        assert_eq!(p[2], ("flag".into(), None));
        assert_eq!(raw_value(q, "$rid"), Some("r%2F1"));
        assert_eq!(value(q, "$rid").as_deref(), Some("r/1"));
        assert_eq!(raw_value("$rid=7&retry-after=3", "retry-after"), Some("3"));
        assert!(pairs("%ff=1").is_err());
    }
}
