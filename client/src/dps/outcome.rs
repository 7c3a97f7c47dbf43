//! What to do with one DPS response: finish, poll, retry, or fail (spec/protocol.md §2.6).
//!
//! Kept free of I/O so the decision table can be tested directly:
//!
//! | status        | body `status` | next step                                             |
//! |---------------|---------------|-------------------------------------------------------|
//! | ≥ 429         | —             | retry the same request after `retry-after` (or 2 s)   |
//! | 300..429      | —             | [`ProvisioningError::Service`], not retried           |
//! | < 300         | `assigning`   | poll the operation after `retry-after` (or 2 s)       |
//! | < 300         | `assigned`    | done                                                  |
//! | < 300         | anything else | [`ProvisioningError::Registration`]                   |

use std::time::Duration;

use super::error::ProvisioningError;
use super::model::{OperationStatus, RegistrationResult};

/// Wait used when the response carries no (usable) `retry-after`; the SDKs' default.
pub(crate) const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(2);

/// The next step after a response.
#[derive(Debug, PartialEq)]
pub(crate) enum Step {
    Assigned(Box<RegistrationResult>),
    Poll {
        operation_id: String,
        after: Duration,
    },
    Retry {
        after: Duration,
    },
}

/// Interprets a response with topic status `status`, raw `retry-after` and JSON `body`.
pub(crate) fn interpret(
    status: u16,
    retry_after: Option<&str>,
    body: &[u8],
) -> Result<Step, ProvisioningError> {
    if status >= 429 {
        return Ok(Step::Retry {
            after: retry_delay(retry_after),
        });
    }
    if status >= 300 {
        return Err(ProvisioningError::Service {
            status,
            body: String::from_utf8_lossy(body).into_owned(),
        });
    }
    let operation: OperationStatus = serde_json::from_slice(body).map_err(|e| {
        ProvisioningError::Protocol(format!(
            "unreadable DPS response body (status {status}): {e}"
        ))
    })?;
    match operation.status.as_str() {
        "assigning" => {
            if operation.operation_id.is_empty() {
                return Err(ProvisioningError::Protocol(
                    "`assigning` response without operationId".into(),
                ));
            }
            Ok(Step::Poll {
                operation_id: operation.operation_id,
                after: retry_delay(retry_after),
            })
        }
        "assigned" => {
            let Some(registration_state) = operation.registration_state else {
                return Err(ProvisioningError::Protocol(
                    "`assigned` response without registrationState".into(),
                ));
            };
            Ok(Step::Assigned(Box::new(RegistrationResult {
                operation_id: operation.operation_id,
                status: operation.status,
                registration_state,
            })))
        }
        _ => {
            let state = operation.registration_state.unwrap_or_default();
            Err(ProvisioningError::Registration {
                status: operation.status,
                error_code: state.error_code,
                error_message: state.error_message,
            })
        }
    }
}

/// `retry-after` in whole seconds; absent or unparsable means the 2 s default, `0` means
/// right away.
pub(crate) fn retry_delay(value: Option<&str>) -> Duration {
    value
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(DEFAULT_RETRY_AFTER, Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ASSIGNING: &[u8] = br#"{"operationId":"4.abc.def","status":"assigning"}"#;

    #[test]
    fn retry_after_values() {
        assert_eq!(retry_delay(None), Duration::from_secs(2));
        assert_eq!(retry_delay(Some("0")), Duration::ZERO);
        assert_eq!(retry_delay(Some("3")), Duration::from_secs(3));
        assert_eq!(retry_delay(Some("soon")), Duration::from_secs(2));
        assert_eq!(retry_delay(Some("-1")), Duration::from_secs(2));
    }

    #[test]
    fn assigning_polls_after_retry_after() {
        assert_eq!(
            interpret(202, Some("3"), ASSIGNING).unwrap(),
            Step::Poll {
                operation_id: "4.abc.def".into(),
                after: Duration::from_secs(3)
            }
        );
        assert_eq!(
            interpret(200, None, ASSIGNING).unwrap(),
            Step::Poll {
                operation_id: "4.abc.def".into(),
                after: DEFAULT_RETRY_AFTER
            }
        );
        assert_eq!(
            interpret(202, Some("0"), ASSIGNING).unwrap(),
            Step::Poll {
                operation_id: "4.abc.def".into(),
                after: Duration::ZERO
            }
        );
    }

    #[test]
    fn assigned_is_done() {
        let body = br#"{"operationId":"op","status":"assigned","registrationState":{"registrationId":"r","deviceId":"d","assignedHub":"h","status":"assigned","substatus":"initialAssignment"}}"#;
        let Step::Assigned(result) = interpret(200, None, body).unwrap() else {
            panic!("not assigned");
        };
        assert_eq!(result.operation_id, "op");
        assert_eq!(result.registration_state.device_id.as_deref(), Some("d"));
        assert_eq!(result.registration_state.assigned_hub.as_deref(), Some("h"));
    }

    #[test]
    fn failed_and_disabled_are_registration_errors() {
        let body = br#"{"operationId":"op","status":"failed","registrationState":{"registrationId":"r","status":"failed","errorCode":400207,"errorMessage":"Custom allocation failed with status code: 400"}}"#;
        match interpret(200, None, body) {
            Err(ProvisioningError::Registration {
                status,
                error_code,
                error_message,
            }) => {
                assert_eq!(status, "failed");
                assert_eq!(error_code, Some(400207));
                assert_eq!(
                    error_message.as_deref(),
                    Some("Custom allocation failed with status code: 400")
                );
            }
            other => panic!("unexpected {other:?}"),
        }
        let body = br#"{"operationId":"op","status":"disabled"}"#;
        assert!(matches!(
            interpret(200, None, body),
            Err(ProvisioningError::Registration { status, error_code: None, .. }) if status == "disabled"
        ));
    }

    #[test]
    fn client_errors_are_not_retried() {
        let body = br#"{"errorCode":401002,"message":"Invalid certificate."}"#;
        match interpret(401, Some("5"), body) {
            Err(ProvisioningError::Service { status, body }) => {
                assert_eq!(status, 401);
                assert!(body.contains("401002"));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            interpret(428, None, b""),
            Err(ProvisioningError::Service { status: 428, .. })
        ));
    }

    #[test]
    fn throttling_and_server_errors_are_retried() {
        assert_eq!(
            interpret(429, Some("1"), b"").unwrap(),
            Step::Retry {
                after: Duration::from_secs(1)
            }
        );
        assert_eq!(
            interpret(503, None, b"{}").unwrap(),
            Step::Retry {
                after: DEFAULT_RETRY_AFTER
            }
        );
    }

    #[test]
    fn malformed_success_bodies_are_protocol_errors() {
        assert!(matches!(
            interpret(200, None, b"not json"),
            Err(ProvisioningError::Protocol(_))
        ));
        assert!(matches!(
            interpret(200, None, br#"{"operationId":"op","status":"assigned"}"#),
            Err(ProvisioningError::Protocol(_))
        ));
        assert!(matches!(
            interpret(202, None, br#"{"status":"assigning"}"#),
            Err(ProvisioningError::Protocol(_))
        ));
    }

    proptest! {
        #[test]
        fn retry_after_seconds_are_honoured(secs in 0u64..1_000_000) {
            prop_assert_eq!(retry_delay(Some(&secs.to_string())), Duration::from_secs(secs));
        }
    }
}
