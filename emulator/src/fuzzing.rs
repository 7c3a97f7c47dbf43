//! Entry points for the cargo-fuzz targets in `fuzz/` (docs/fuzzing.md) that reach code the
//! public API keeps private: the store's recovery from bytes, plain HTTP through the router,
//! and the `key=value&…` query parser. Everything else the targets drive (MQTT codec and
//! sessions, SAS, topics, property bags, twin queries, fixtures, X.509) is public already.
//! Hidden from the docs and not part of the stable API.

pub use crate::http::fuzzing::serve_plain as serve_plain_http;
pub use crate::store::fuzzing::{append_frame, file_header, recover_from_bytes};

/// `key=value&key` pairs as topics, usernames and URLs carry them (`crate::query`).
pub fn query_pairs(query: &str) -> Result<Vec<(String, Option<String>)>, std::str::Utf8Error> {
    crate::query::pairs(query)
}

/// One value of a query string, percent-decoded (`crate::query`).
pub fn query_value(query: &str, key: &str) -> Option<String> {
    crate::query::value(query, key)
}
