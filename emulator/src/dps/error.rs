//! DPS errors: a 6-digit code whose first three digits are the status, and the
//! `ProvisioningServiceErrorDetails` body every transport sends (protocol.md §7.2, §10.1).

use std::fmt;
use std::time::SystemTime;

use serde_json::{Value, json};

use crate::timefmt::utc_timestamp;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpsError {
    pub code: u32,
    pub message: String,
    /// Seconds the client should wait before retrying (429 and 5xx).
    pub retry_after: Option<u32>,
}

/// A change the store refused or could not make durable: nothing was acknowledged and memory
/// is as before (`persistence`).
impl From<crate::store::StoreError> for DpsError {
    fn from(error: crate::store::StoreError) -> DpsError {
        DpsError::new(500000, format!("The change could not be stored: {error}"))
    }
}

impl DpsError {
    pub fn new(code: u32, message: impl Into<String>) -> DpsError {
        DpsError {
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn status(&self) -> u16 {
        (self.code / 1000) as u16
    }

    pub fn bad_request(message: impl Into<String>) -> DpsError {
        DpsError::new(400004, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> DpsError {
        DpsError::new(401002, message)
    }

    pub fn not_found(message: impl Into<String>) -> DpsError {
        DpsError::new(404201, message)
    }

    /// The `ProvisioningServiceErrorDetails` JSON body.
    pub fn to_json(&self) -> Value {
        json!({
            "errorCode": self.code,
            "trackingId": uuid::Uuid::new_v4().to_string(),
            "message": self.message,
            "timestampUtc": utc_timestamp(SystemTime::now()),
        })
    }
}

impl fmt::Display for DpsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.message)
    }
}

impl std::error::Error for DpsError {}

/// Codes placed in `registrationState.errorCode` when an assignment fails.
pub mod assignment {
    /// The enrollment that authenticated the device was deleted before assignment finished.
    pub const ENROLLMENT_GONE: u32 = 404201;
    /// No linked hub is eligible for the enrollment.
    pub const NO_HUB: u32 = 404203;
    /// The device id the assignment would create is one the hub refuses.
    pub const INVALID_DEVICE_ID: u32 = 400004;
}
