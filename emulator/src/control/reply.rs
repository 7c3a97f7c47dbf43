//! The control port's replies: JSON bodies, 404s, and the hubs a `?hub=` parameter picks.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::header::CONTENT_TYPE;
use hyper::{Response, StatusCode};
use serde_json::{Value, json};

use super::state::EmulatorState;
use crate::hub::Hub;
use crate::query;

pub(super) type Reply = Response<BoxBody<Bytes, Infallible>>;

/// The hub named by `?hub=`, or every hub.
pub(super) fn hub_for<'s>(
    state: &'s EmulatorState,
    query: &str,
) -> Result<Vec<&'s Arc<Hub>>, String> {
    match query::value(query, "hub") {
        Some(name) => state
            .hubs
            .get(&name)
            .map(|h| vec![h])
            .ok_or_else(|| format!("no hub '{name}'")),
        None => Ok(state.hubs.all().iter().collect()),
    }
}

pub(super) fn not_found(message: &str) -> Reply {
    json_reply(StatusCode::NOT_FOUND, json!({ "message": message }))
}

pub(super) fn json_reply(status: StatusCode, body: Value) -> Reply {
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_string())).boxed())
        .unwrap_or_default()
}
