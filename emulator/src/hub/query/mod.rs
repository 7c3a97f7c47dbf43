//! The IoT Hub query language for twin queries (`POST /devices/query`;
//! iot-hub-devguide-query-language.md), as a pure function of twin JSON documents: no hub, no
//! HTTP. [`parse`] turns the text into a [`Query`]; [`Query::run`] filters, counts and pages
//! documents shaped like `GET /twins/{id}` answers.
//!
//! Three stages, one file each: [`lexer`] turns text into tokens, [`parser`] turns tokens into
//! a [`Query`] holding a condition tree, [`eval`] runs that tree over documents and pages the
//! result.
//!
//! The subset served:
//!
//! * `SELECT * FROM devices`, `SELECT * FROM devices.modules`, `SELECT * FROM devices.jobs`
//!   (each device's part in a scheduled job), each with `TOP n` and `WHERE`;
//! * `SELECT COUNT() [AS alias] FROM devices[.modules] [WHERE …]` → `[{"alias": n}]`;
//! * `SELECT deviceId[, moduleId, properties.reported.x …] FROM …`: those properties only
//!   (what configuration metrics ask for);
//! * conditions: `=`, `!=`, `<>`, `<`, `>`, `<=`, `>=`, `IN [..]`, `NIN [..]`, `AND`, `OR`,
//!   `NOT`, parentheses and `IS_DEFINED(path)`, over dotted paths (`tags.location.region`,
//!   `properties.reported.fw`, `configurations.[[my-config]].status`: `[[…]]` quotes a name) and constants (single- or double-quoted strings, decimal and
//!   `0x` numbers, `true`, `false`, `null`). Keywords are case-insensitive, property names not.
//!
//! Comparisons follow the SQL-like rules the documentation describes: only primitives compare,
//! and a comparison with a missing property or between different types is *undefined* —
//! neither true nor false, so `tags.x != 'a'` does not match twins without `tags.x`. A
//! document is returned only when the whole condition is `true`.
//! Anything else (projections, `GROUP BY`, arithmetic, other functions) is a [`QueryError`]
//! naming what is not supported, which the REST layer answers with 400.

mod eval;
mod lexer;
mod parser;

use std::fmt;

use serde_json::Value;

/// Longest query text accepted. IoT Hub rejects queries of about 8 KB; a bound also keeps
/// parsing cheap.
pub const MAX_QUERY_BYTES: usize = 8 * 1024;
/// Page size without `x-ms-max-item-count` (the SDK documentation's "pages of 100").
pub const DEFAULT_PAGE_SIZE: usize = 100;
/// Larger requested pages are lowered to this, IoT Hub's documented maximum page size.
pub const MAX_PAGE_SIZE: usize = 1000;

/// Why a query cannot be run; the message says where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct QueryError {
    pub message: String,
}

impl QueryError {
    fn new(message: impl Into<String>) -> QueryError {
        QueryError {
            message: message.into(),
        }
    }

    /// A syntax error at a byte offset of the query text.
    fn at(position: usize, message: impl fmt::Display) -> QueryError {
        QueryError::new(format!("Syntax error at position {position}: {message}"))
    }
}

/// The document collection a query reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Collection {
    /// Device twins (`FROM devices`).
    Devices,
    /// Module twins (`FROM devices.modules`).
    Modules,
    /// Devices' parts in scheduled jobs (`FROM devices.jobs`; `hub::jobs`).
    Jobs,
}

/// What a query returns for the documents it selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Projection {
    /// `SELECT *`: the documents themselves.
    All,
    /// `SELECT COUNT() AS alias`: one row `{alias: n}`.
    Count { alias: String },
    /// `SELECT deviceId, properties.reported.x`: per document, the listed properties that it
    /// has, each under its last name (`{"deviceId": …, "x": …}`).
    Fields(Vec<Vec<String>>),
}

/// A parsed query; [`Query::matches`] and [`Query::run`] (in [`eval`]) apply it.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub projection: Projection,
    pub collection: Collection,
    /// `SELECT TOP n`: at most this many documents over all pages.
    pub top: Option<usize>,
    filter: Option<parser::Expr>,
}

/// One page of results and what the response headers carry.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryPage {
    pub items: Vec<Value>,
    /// `x-ms-continuation` for the next page; `None` on the last one.
    pub continuation: Option<String>,
    /// `x-ms-item-type`: `twin` for twins, `deviceJob` for device jobs, `raw` for aggregates
    /// (the values the service SDKs know).
    pub item_type: &'static str,
}

/// Parses query text: bounded in length, then tokenized, then parsed.
pub fn parse(text: &str) -> Result<Query, QueryError> {
    if text.len() > MAX_QUERY_BYTES {
        return Err(QueryError::new(format!(
            "The query is {} bytes long; the limit is {MAX_QUERY_BYTES}",
            text.len()
        )));
    }
    let tokens = lexer::tokenize(text)?;
    parser::parse_tokens(tokens, text.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_length_limit_is_checked_before_any_token_is_read() {
        let huge = format!(
            "SELECT * FROM devices WHERE deviceId = '{}'",
            "x".repeat(9000)
        );
        assert!(parse(&huge).unwrap_err().message.contains("limit is 8192"));
        // An unterminated string of the same length is refused for its length, not its syntax.
        let unterminated = format!("'{}", "x".repeat(MAX_QUERY_BYTES));
        assert!(
            parse(&unterminated)
                .unwrap_err()
                .message
                .contains("limit is")
        );
    }

    #[test]
    fn projections_and_bracketed_names_read_twins_as_metrics_do() {
        use serde_json::json;
        let twins = vec![
            json!({"deviceId": "a", "configurations": {"my-config": {"status": "Applied"}}, "properties": {"reported": {"fw": "1.0"}}}),
            json!({"deviceId": "b", "configurations": {"my-config": {"status": "Targeted"}}}),
        ];
        let query = parse(
            "select devices.deviceId, properties.reported.fw from devices where configurations.[[my-config]].status = 'Applied'",
        )
        .unwrap();
        let page = query.run(twins, None, None).unwrap();
        assert_eq!(page.items, vec![json!({"deviceId": "a", "fw": "1.0"})]);
        assert_eq!(page.item_type, "raw");
        for bad in [
            "SELECT * FROM devices WHERE configurations.[[open",
            "SELECT * FROM devices WHERE configurations.[[]].status = 1",
            "SELECT deviceId, FROM devices",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_parsed_query_exposes_its_projection_collection_and_top() {
        let query = parse("SELECT TOP 5 COUNT() AS n FROM devices.modules").unwrap();
        assert_eq!(query.projection, Projection::Count { alias: "n".into() });
        assert_eq!(query.collection, Collection::Modules);
        assert_eq!(query.top, Some(5));
    }

    #[test]
    fn syntax_errors_name_their_position() {
        let error = QueryError::at(7, "unexpected");
        assert_eq!(error.to_string(), "Syntax error at position 7: unexpected");
    }
}
