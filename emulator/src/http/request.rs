//! A request as handlers see it: method, percent-decoded path segments, query, headers, the
//! body (read after the head has been checked, up to a size limit and within a timeout), and
//! the client's certificate chain.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::{Body as _, Incoming};
use hyper::{HeaderMap, Method};
use percent_encoding::percent_decode_str;
use rustls_pki_types::CertificateDer;

use crate::auth::Credential;
use crate::query;

pub(super) struct Request<'a> {
    pub method: Method,
    pub segments: Vec<String>,
    pub query: String,
    pub headers: HeaderMap,
    /// Empty until [`Request::read_body`]: the router reads it only after the route's
    /// checks on the head (authentication first) have passed.
    pub body: Bytes,
    pub certificates: &'a [CertificateDer<'static>],
}

/// Why a body was not read.
#[derive(Debug)]
pub(super) enum BodyError {
    /// Declared (`Content-Length`, then in `declared`) or found longer than the limit.
    TooLarge { limit: usize, declared: Option<u64> },
    /// Not complete within the body timeout.
    TimedOut { timeout: Duration },
    /// The connection failed or the framing was invalid.
    Unreadable(String),
}

impl<'a> Request<'a> {
    /// The request head; the body stays unread. `Err` carries a reason when the path is not
    /// valid UTF-8 once percent-decoded.
    pub(super) fn head(
        parts: hyper::http::request::Parts,
        certificates: &'a [CertificateDer<'static>],
    ) -> Result<Request<'a>, String> {
        let segments = parts
            .uri
            .path()
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| {
                percent_decode_str(s)
                    .decode_utf8()
                    .map(|d| d.into_owned())
                    .map_err(|_| "path is not valid UTF-8".to_owned())
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Request {
            segments,
            query: parts.uri.query().unwrap_or("").to_owned(),
            method: parts.method,
            headers: parts.headers,
            body: Bytes::new(),
            certificates,
        })
    }

    /// Reads the body: at most `limit` bytes (a larger `Content-Length` is refused before a
    /// byte is read) within `timeout` in all, so a slow sender cannot hold the connection.
    pub(super) async fn read_body(
        &mut self,
        body: Incoming,
        limit: usize,
        timeout: Duration,
    ) -> Result<(), BodyError> {
        let declared = body.size_hint().exact();
        if body.size_hint().lower() > limit as u64 {
            return Err(BodyError::TooLarge { limit, declared });
        }
        let collected = tokio::time::timeout(timeout, Limited::new(body, limit).collect())
            .await
            .map_err(|_| BodyError::TimedOut { timeout })?;
        self.body = collected
            .map_err(|e| {
                if e.downcast_ref::<LengthLimitError>().is_some() {
                    BodyError::TooLarge { limit, declared }
                } else {
                    BodyError::Unreadable(e.to_string())
                }
            })?
            .to_bytes();
        Ok(())
    }

    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub(super) fn query_value(&self, key: &str) -> Option<String> {
        query::value(&self.query, key)
    }

    /// A SAS token from `Authorization`, else the TLS client certificate, else nothing.
    pub(super) fn credential(&self) -> Credential<'_> {
        match self.header("authorization") {
            Some(token) => Credential::Sas(token),
            None if !self.certificates.is_empty() => {
                Credential::ClientCertificates(self.certificates)
            }
            None => Credential::None,
        }
    }

    /// `If-Match`, if any, as sent: the domain's etag rule decides what matches.
    pub(super) fn if_match(&self) -> Option<&str> {
        self.header("if-match")
    }

    /// The host the `Host` header names, without a `:port` (a non-numeric tail, as in a bare
    /// IPv6 address, is not a port); empty when there is no `Host`.
    pub(super) fn host(&self) -> &str {
        strip_port(self.header("host").unwrap_or(""))
    }

    /// Whether the query string has `key`, with or without a value (`?reject`).
    pub(super) fn has_query_key(&self, key: &str) -> bool {
        query::pairs(&self.query)
            .map(|pairs| pairs.iter().any(|(k, _)| k.eq_ignore_ascii_case(key)))
            .unwrap_or(false)
    }
}

/// A lock token from a path segment: clients send it back quoted as it came in the `ETag`,
/// or unquoted; both name the same lock.
pub(super) fn lock_token(segment: &str) -> &str {
    segment.trim_matches('"')
}

fn strip_port(host: &str) -> &str {
    host.rsplit_once(':')
        .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
        .map_or(host, |(h, _)| h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(uri: &str, headers: &[(&str, &str)]) -> Request<'static> {
        let mut builder = hyper::Request::builder().method(Method::POST).uri(uri);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let (parts, ()) = builder.body(()).unwrap().into_parts();
        Request::head(parts, &[]).unwrap()
    }

    #[test]
    fn the_head_is_split_into_decoded_segments_and_query() {
        let req = request("/devices/d%2F1//twins?api-version=2021&top=3", &[]);
        assert_eq!(req.segments, ["devices", "d/1", "twins"]);
        assert_eq!(req.query_value("top").as_deref(), Some("3"));
        assert!(req.body.is_empty(), "the body is read later");
        let parts = hyper::Request::builder()
            .uri("/devices/%ff")
            .body(())
            .unwrap()
            .into_parts()
            .0;
        assert!(Request::head(parts, &[]).is_err());
    }

    #[test]
    fn host_drops_a_numeric_port_only() {
        for (header, host) in [
            ("hub.azure-devices.net:443", "hub.azure-devices.net"),
            ("hub.azure-devices.net", "hub.azure-devices.net"),
            ("127.0.0.1:8443", "127.0.0.1"),
            ("[::1]:443", "[::1]"),
            ("[::1]", "[::1]"),
            ("name:port", "name:port"),
        ] {
            assert_eq!(request("/", &[("host", header)]).host(), host, "{header}");
        }
        assert_eq!(request("/", &[]).host(), "");
    }

    #[test]
    fn headers_credentials_and_flags() {
        let req = request(
            "/x?Reject&api-version=1",
            &[
                ("authorization", "SharedAccessSignature sr=a"),
                ("if-match", "\"e1\""),
            ],
        );
        assert_eq!(req.if_match(), Some("\"e1\""));
        assert!(matches!(
            req.credential(),
            Credential::Sas("SharedAccessSignature sr=a")
        ));
        assert!(req.has_query_key("reject"));
        assert!(!req.has_query_key("abandon"));
        assert!(matches!(request("/", &[]).credential(), Credential::None));
        assert_eq!(request("/", &[]).if_match(), None);
        assert_eq!(lock_token("\"abc\""), "abc");
        assert_eq!(lock_token("abc"), "abc");
    }
}
