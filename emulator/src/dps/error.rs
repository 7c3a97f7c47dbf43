//! DPS errors: a 6-digit code whose first three digits are the status, and the
//! `ProvisioningServiceErrorDetails` body every transport sends (protocol.md §7.2, §10.1).
//!
//! A [`DpsError`] is built only through the named constructors below, one per code DPS
//! uses, so no other number can reach a client. Azure documents almost none of the DPS
//! service API's codes (protocol.md §10.1); these are our choices, used consistently:
//!
//! | code | constructor | when |
//! |---|---|---|
//! | 400000 | [`DpsError::unreadable_request`] | the request body could not be read |
//! | 400004 | [`DpsError::bad_request`] | invalid body, enrollment or id, unsupported query, bad continuation token, > 10 bulk items |
//! | 401002 | [`DpsError::unauthorized`] | authentication failed |
//! | 404000 | [`DpsError::no_route`] | no such route |
//! | 404201 | [`DpsError::not_found`] | no such enrollment, enrollment group or operation |
//! | 404202 | [`DpsError::registration_not_found`] | no such registration record |
//! | 405000 | [`DpsError::method_not_allowed`] | a service route without that method |
//! | 408000 | [`DpsError::request_timeout`] | the request body did not arrive in time |
//! | 409001 | [`DpsError::conflict`] | bulk `create` of an id that exists |
//! | 412001 | [`DpsError::precondition_failed`] | `If-Match` / `updateIfMatchETag` does not match |
//! | 413001 | [`DpsError::payload_too_large`] | the request body is over the limit |
//! | 429001 | [`DpsError::throttled`] | an injected fault (`faults`), with `retry-after` |
//! | 500000 | [`DpsError::internal`] | a change could not be stored; an injected fault |
//! | 503000 | [`DpsError::service_unavailable`] | an injected fault, `retry-after` optional |

use std::fmt;
use std::time::SystemTime;

use serde_json::{Value, json};

use crate::timefmt::utc_timestamp;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpsError {
    code: u32,
    message: String,
    /// Seconds the client should wait before retrying (429 and 503 only).
    retry_after: Option<u32>,
}

/// A change the store refused or could not make durable: nothing was acknowledged and memory
/// is as before (`persistence`).
impl From<crate::store::StoreError> for DpsError {
    fn from(error: crate::store::StoreError) -> DpsError {
        DpsError::internal(format!("The change could not be stored: {error}"))
    }
}

impl DpsError {
    fn new(code: u32, message: impl Into<String>) -> DpsError {
        DpsError {
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn unreadable_request(message: impl Into<String>) -> DpsError {
        DpsError::new(400000, message)
    }

    pub fn bad_request(message: impl Into<String>) -> DpsError {
        DpsError::new(400004, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> DpsError {
        DpsError::new(401002, message)
    }

    pub fn no_route(message: impl Into<String>) -> DpsError {
        DpsError::new(404000, message)
    }

    /// An enrollment, enrollment group or registration operation.
    pub fn not_found(message: impl Into<String>) -> DpsError {
        DpsError::new(404201, message)
    }

    pub fn registration_not_found(message: impl Into<String>) -> DpsError {
        DpsError::new(404202, message)
    }

    pub fn method_not_allowed(message: impl Into<String>) -> DpsError {
        DpsError::new(405000, message)
    }

    pub fn request_timeout(message: impl Into<String>) -> DpsError {
        DpsError::new(408000, message)
    }

    pub fn conflict(message: impl Into<String>) -> DpsError {
        DpsError::new(409001, message)
    }

    pub fn precondition_failed(message: impl Into<String>) -> DpsError {
        DpsError::new(412001, message)
    }

    pub fn payload_too_large(message: impl Into<String>) -> DpsError {
        DpsError::new(413001, message)
    }

    pub fn internal(message: impl Into<String>) -> DpsError {
        DpsError::new(500000, message)
    }

    /// 429: the client must wait `retry_after` seconds (Azure's throttling answer; the code
    /// is IoT Hub's ThrottlingException, DPS documents none — docs/differences.md).
    pub fn throttled(message: impl Into<String>, retry_after: u32) -> DpsError {
        DpsError {
            retry_after: Some(retry_after),
            ..DpsError::new(429001, message)
        }
    }

    /// 503, with a `retry-after` when one is given.
    pub fn service_unavailable(message: impl Into<String>, retry_after: Option<u32>) -> DpsError {
        DpsError {
            retry_after,
            ..DpsError::new(503000, message)
        }
    }

    /// The error an injected fault answers with; the message names the rule, so a test's log
    /// shows why its request was refused.
    pub(crate) fn from_fault(hit: &crate::faults::RefusalHit) -> DpsError {
        use crate::faults::Refusal;
        let id = &hit.id;
        match hit.refusal {
            Refusal::Throttled { retry_after } => DpsError::throttled(
                format!("Operations are being throttled (iotemu fault {id})"),
                retry_after,
            ),
            Refusal::InternalError => {
                DpsError::internal(format!("Internal server error (iotemu fault {id})"))
            }
            Refusal::ServiceUnavailable { retry_after } => DpsError::service_unavailable(
                format!("Service unavailable (iotemu fault {id})"),
                retry_after,
            ),
            Refusal::Unauthorized => {
                DpsError::unauthorized(format!("Unauthorized (iotemu fault {id})"))
            }
        }
    }

    /// The 6-digit code (`x-ms-error-code`, `errorCode`).
    pub fn code(&self) -> u32 {
        self.code
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// Seconds the client should wait before retrying: only throttling and unavailability
    /// (injected faults) ask for it; every transport carries it.
    pub fn retry_after(&self) -> Option<u32> {
        self.retry_after
    }

    pub fn status(&self) -> u16 {
        u16::try_from(self.code / 1000).unwrap_or(500)
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

/// Codes placed in `registrationState.errorCode` when an assignment fails (a registration
/// outcome, not a [`DpsError`]).
pub(crate) mod assignment {
    /// The enrollment that authenticated the device was deleted before assignment finished.
    pub(crate) const ENROLLMENT_GONE: u32 = 404201;
    /// No linked hub is eligible for the enrollment.
    pub(crate) const NO_HUB: u32 = 404203;
    /// The device id the assignment would create is one the hub refuses.
    pub(crate) const INVALID_DEVICE_ID: u32 = 400004;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_is_the_code_s_first_three_digits_and_the_body_has_azure_s_shape() {
        let e = DpsError::precondition_failed("stale");
        assert_eq!((e.status(), e.code(), e.message()), (412, 412001, "stale"));
        let body = e.to_json();
        assert_eq!(body["errorCode"], 412001);
        assert_eq!(body["message"], "stale");
        assert!(body["trackingId"].is_string() && body["timestampUtc"].is_string());
        assert_eq!(DpsError::internal("x").status(), 500);
        assert_eq!(e.to_string(), "412001 stale");
    }

    #[test]
    fn each_fault_refusal_is_its_azure_error() {
        use crate::faults::{Refusal, RefusalHit};
        let of = |refusal| {
            DpsError::from_fault(&RefusalHit {
                id: "fault-1".into(),
                refusal,
            })
        };
        let e = of(Refusal::Throttled { retry_after: 7 });
        assert_eq!(
            (e.status(), e.code(), e.retry_after()),
            (429, 429001, Some(7))
        );
        assert!(e.message().contains("fault-1"));
        let e = of(Refusal::ServiceUnavailable { retry_after: None });
        assert_eq!((e.status(), e.code(), e.retry_after()), (503, 503000, None));
        let e = of(Refusal::ServiceUnavailable {
            retry_after: Some(2),
        });
        assert_eq!(e.retry_after(), Some(2));
        assert_eq!(
            (
                of(Refusal::InternalError).status(),
                of(Refusal::InternalError).code()
            ),
            (500, 500000)
        );
        assert_eq!(of(Refusal::Unauthorized).code(), 401002);
    }
}
