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

pub struct Request<'a> {
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
pub enum BodyError {
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
    pub fn head(
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
    pub async fn read_body(
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

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn query_value(&self, key: &str) -> Option<String> {
        query::value(&self.query, key)
    }

    /// A SAS token from `Authorization`, else the TLS client certificate, else nothing.
    pub fn credential(&self) -> Credential<'_> {
        match self.header("authorization") {
            Some(token) => Credential::Sas(token),
            None if !self.certificates.is_empty() => {
                Credential::ClientCertificates(self.certificates)
            }
            None => Credential::None,
        }
    }

    /// `If-Match`, if any.
    pub fn if_match(&self) -> Option<&str> {
        self.header("if-match")
    }
}
