//! The local portal's static files, embedded in the binary: `GET /` (the page),
//! `/portal.js` and `/portal.css`. Plain HTML and one vanilla-JavaScript file, no build step
//! (docs/portal.md says why); everything the page shows comes from `/api/` and
//! `/telemetry/stream`, and it loads nothing from any other origin.
//!
//! Opened as `/?token=…` (the link the banner prints when the control port needs a token),
//! the page sets the token as a same-site, HTTP-only cookie and redirects to `/`, so the
//! token leaves the address bar and every later request of the page carries it.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, LOCATION, SET_COOKIE};
use hyper::{Response, StatusCode};

use super::access::COOKIE_NAME;
use super::reply::Reply;
use crate::query;

const INDEX_HTML: &str = include_str!("portal/index.html");
const PORTAL_JS: &str = include_str!("portal/portal.js");
const PORTAL_CSS: &str = include_str!("portal/portal.css");

/// Nothing but this origin: no fonts, scripts or images from anywhere else.
const POLICY: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'";

/// The asset for `path`, if it is one of the portal's.
pub(super) fn asset(path: &str, query: &str) -> Option<Reply> {
    let (body, kind) = match path {
        "" | "index.html" => {
            if let Some(token) = query::value(query, "token") {
                return Some(remember_token(&token));
            }
            (INDEX_HTML, "text/html; charset=utf-8")
        }
        "portal.js" => (PORTAL_JS, "text/javascript; charset=utf-8"),
        "portal.css" => (PORTAL_CSS, "text/css; charset=utf-8"),
        _ => return None,
    };
    Some(
        Response::builder()
            .header(CONTENT_TYPE, kind)
            .header(CONTENT_SECURITY_POLICY, POLICY)
            .header(CACHE_CONTROL, "no-cache")
            .body(Full::new(Bytes::from_static(body.as_bytes())).boxed())
            .unwrap_or_default(),
    )
}

/// `303 → /` with the token in a cookie the page's own requests carry.
fn remember_token(token: &str) -> Reply {
    // A token with characters a cookie cannot hold is not one the port accepts anyway.
    let safe: String = token
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "-_.~".contains(*c))
        .collect();
    Response::builder()
        .status(StatusCode::SEE_OTHER)
        .header(LOCATION, "/")
        .header(
            SET_COOKIE,
            format!("{COOKIE_NAME}={safe}; Path=/; HttpOnly; SameSite=Strict"),
        )
        .body(Full::new(Bytes::new()).boxed())
        .unwrap_or_default()
}
