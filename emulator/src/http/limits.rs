//! Timeouts and sizes of the HTTPS front, so that idle, slow or oversized clients cost a
//! bounded amount and cannot lock others out. docs/configuration.md lists the defaults and
//! the flags; docs/differences.md says which are Azure's and which are chosen.

use std::time::Duration;

/// HTTPS limits; [`Default`] gives the emulator's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// The TLS handshake must finish within this after the TCP accept.
    pub handshake_timeout: Duration,
    /// Once the first byte of a request has arrived, its whole head (request line and
    /// headers) must arrive within this, or the connection is closed (slowloris).
    pub header_timeout: Duration,
    /// A request body must arrive within this in all once the head is read; otherwise 408
    /// and the connection is closed.
    pub body_timeout: Duration,
    /// A connection with no request in progress is closed after this (before the first
    /// request, and between keep-alive requests).
    pub idle_timeout: Duration,
    /// Largest request body; a larger one is answered 413 (413001 MessageTooLarge) without
    /// being read. Room for the largest DPS bulk enrollment with certificates.
    pub max_body_bytes: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            handshake_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(60),
            // Azure's load balancers close idle connections after 4 minutes by default.
            idle_timeout: Duration::from_secs(240),
            max_body_bytes: 1024 * 1024,
        }
    }
}
