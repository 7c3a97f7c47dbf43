//! Who may use the control port. On loopback (the default) anyone on the machine may, as
//! before; bound beyond loopback, the portal and every route but `GET /health` and
//! `GET /ca.pem` need the control token — given with `--control-token` / `IOTEMU_CONTROL_TOKEN`
//! or generated at start and printed in the banner.
//!
//! The token is accepted as `Authorization: Bearer <token>`, as a `?token=` query parameter
//! (so the printed portal link works when pasted into a browser) or as the `iotemu_token`
//! cookie the portal sets when it is opened with `?token=`.

use hyper::Method;
use hyper::header::{AUTHORIZATION, COOKIE, HeaderMap};

use crate::query;

/// The name of the cookie the portal keeps the token in.
pub(super) const COOKIE_NAME: &str = "iotemu_token";

/// The control port's access rule, decided once when it is bound.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ControlAccess {
    /// Bound to loopback without a token: every route is open to local callers.
    Open,
    /// Every route but health and the CA certificate needs this token.
    Token(String),
}

impl ControlAccess {
    /// The rule for a port bound to `loopback` or not, with the token the user gave: a
    /// given token is always required; beyond loopback one is generated when none was given.
    pub(crate) fn decide(loopback: bool, given: Option<String>) -> ControlAccess {
        match given.filter(|t| !t.is_empty()) {
            Some(token) => ControlAccess::Token(token),
            None if loopback => ControlAccess::Open,
            None => ControlAccess::Token(generate_token()),
        }
    }

    /// The token callers must present, if any.
    pub(crate) fn token(&self) -> Option<&str> {
        match self {
            ControlAccess::Open => None,
            ControlAccess::Token(token) => Some(token),
        }
    }

    /// Whether a request may proceed: open routes always, the rest with the token.
    pub(super) fn admits(
        &self,
        method: &Method,
        path: &str,
        query: &str,
        headers: &HeaderMap,
    ) -> bool {
        let Some(expected) = self.token() else {
            return true;
        };
        if is_open_route(method, path) {
            return true;
        }
        presented(query, headers)
            .is_some_and(|given| constant_time_eq(given.as_bytes(), expected.as_bytes()))
    }
}

/// Read-only routes that stay open beyond loopback: a health probe and the public CA.
fn is_open_route(method: &Method, path: &str) -> bool {
    (method == Method::GET || method == Method::HEAD)
        && matches!(path.trim_matches('/'), "health" | "ca.pem")
}

/// The token a request carries, from the header, the query or the portal's cookie.
fn presented(query: &str, headers: &HeaderMap) -> Option<String> {
    if let Some(bearer) = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        return Some(bearer.trim().to_owned());
    }
    if let Some(token) = query::value(query, "token") {
        return Some(token);
    }
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.to_owned())
}

/// Compares without stopping at the first difference, so timing tells nothing of the token.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// 64 hex digits: two v4 UUIDs (244 random bits from the OS generator).
fn generate_token() -> String {
    let bytes: Vec<u8> = (0..2)
        .flat_map(|_| uuid::Uuid::new_v4().into_bytes())
        .collect();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn headers(pairs: &[(hyper::header::HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(name.clone(), HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn loopback_without_a_token_is_open() {
        let access = ControlAccess::decide(true, None);
        assert_eq!(access, ControlAccess::Open);
        assert!(access.admits(&Method::DELETE, "/api/enrollments/x", "", &HeaderMap::new()));
    }

    #[test]
    fn beyond_loopback_a_token_is_generated_and_required() {
        let access = ControlAccess::decide(false, None);
        let token = access.token().expect("a generated token").to_owned();
        assert_eq!(token.len(), 64);
        assert_ne!(
            ControlAccess::decide(false, None).token(),
            Some(token.as_str())
        );
        let none = HeaderMap::new();
        assert!(!access.admits(&Method::GET, "/", "", &none));
        assert!(!access.admits(&Method::GET, "/enrollments", "", &none));
        assert!(!access.admits(&Method::POST, "/c2d", "deviceId=d", &none));
        assert!(!access.admits(&Method::GET, "/api/overview", "token=wrong", &none));
        assert!(access.admits(&Method::GET, "/health", "", &none));
        assert!(access.admits(&Method::GET, "/ca.pem", "", &none));
        assert!(!access.admits(&Method::POST, "/health", "", &none));
        let bearer = headers(&[(AUTHORIZATION, &format!("Bearer {token}"))]);
        assert!(access.admits(&Method::PUT, "/api/enrollments/x", "", &bearer));
        assert!(access.admits(&Method::GET, "/", &format!("token={token}"), &none));
        let cookie = headers(&[(COOKIE, &format!("a=b; {COOKIE_NAME}={token}"))]);
        assert!(access.admits(&Method::DELETE, "/api/devices/x", "", &cookie));
    }

    #[test]
    fn a_given_token_is_required_even_on_loopback() {
        let access = ControlAccess::decide(true, Some("s3cret".into()));
        assert!(!access.admits(&Method::GET, "/", "", &HeaderMap::new()));
        assert!(access.admits(&Method::GET, "/", "token=s3cret", &HeaderMap::new()));
        assert_eq!(
            ControlAccess::decide(true, Some(String::new())),
            ControlAccess::Open
        );
    }
}
