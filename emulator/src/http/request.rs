//! A request as handlers see it: method, percent-decoded path segments, query, headers, the
//! body read up to a size limit, and the client's certificate chain.

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::{HeaderMap, Method};
use percent_encoding::percent_decode_str;
use rustls_pki_types::CertificateDer;

use crate::auth::Credential;
use crate::query;

/// Largest request body accepted (enrollment JSON with certificates, bulk of 10).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

pub struct Request<'a> {
    pub method: Method,
    pub segments: Vec<String>,
    pub query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub certificates: &'a [CertificateDer<'static>],
}

impl<'a> Request<'a> {
    /// Reads `req`; `Err` carries a reason when the body is too large or unreadable.
    pub async fn read(
        req: hyper::Request<Incoming>,
        certificates: &'a [CertificateDer<'static>],
    ) -> Result<Request<'a>, String> {
        let (parts, body) = req.into_parts();
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
        let body = Limited::new(body, MAX_BODY_BYTES)
            .collect()
            .await
            .map_err(|e| format!("request body unreadable or over {MAX_BODY_BYTES} bytes: {e}"))?
            .to_bytes();
        Ok(Request {
            method: parts.method,
            segments,
            query: parts.uri.query().unwrap_or("").to_owned(),
            headers: parts.headers,
            body,
            certificates,
        })
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
