//! A fault rule: which requests it hits (operation, DPS scope or hub, id glob), what it does
//! to them (refuse with an Azure error) and how many it hits (`count`, or until removed).
//! Rules come from the Rust API ([`FaultRule::new`]) or as JSON from the control port
//! ([`FaultRule::from_json`]); both are checked by [`FaultRule::validate`] before the
//! registry takes them, so a bad rule is a 400 and never half-installed.

use serde::Deserialize;
use serde_json::{Value, json};

/// The longest id pattern: registration and device ids are at most 128 characters.
const MAX_ID_PATTERN: usize = 128;
/// The longest DPS id scope or hub name a rule may name (both are far shorter in Azure).
const MAX_TARGET_NAME: usize = 256;
/// The largest `count`: a budget, not a counter a test could make wrap.
pub(crate) const MAX_COUNT: u32 = 1_000_000;
/// The largest `retry-after` (seconds): an hour, past any device SDK's back-off cap.
pub(crate) const MAX_RETRY_AFTER: u32 = 3600;

/// The request a rule is about. This slice covers DPS registration; hub operations come later
/// (issue #19).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultOperation {
    /// `PUT …/register` (HTTPS), `iotdps-register` (MQTT), the AMQP register request.
    DpsRegister,
    /// The operation-status poll on every transport.
    DpsPoll,
}

impl FaultOperation {
    /// The name used in JSON and the log.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultOperation::DpsRegister => "dps.register",
            FaultOperation::DpsPoll => "dps.poll",
        }
    }

    fn parse(name: &str) -> Option<FaultOperation> {
        match name {
            "dps.register" => Some(FaultOperation::DpsRegister),
            "dps.poll" => Some(FaultOperation::DpsPoll),
            _ => None,
        }
    }
}

/// How a request is refused. The domain that owns the operation turns it into its Azure error
/// (`DpsError::from_fault`), which every transport carries as it carries any other (MQTT topic
/// status and `retry-after`, HTTPS status and `Retry-After`, AMQP `iotdps-status`); this
/// module imports no domain, so the hub can use it too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 429, `errorCode` 429001, with `retry-after` seconds.
    Throttled { retry_after: u32 },
    /// 500, `errorCode` 500000.
    InternalError,
    /// 503, `errorCode` 503000, with `retry-after` when given.
    ServiceUnavailable { retry_after: Option<u32> },
    /// 401, `errorCode` 401002: as if the credential had been refused.
    Unauthorized,
}

impl Refusal {
    pub fn status(self) -> u16 {
        match self {
            Refusal::Throttled { .. } => 429,
            Refusal::InternalError => 500,
            Refusal::ServiceUnavailable { .. } => 503,
            Refusal::Unauthorized => 401,
        }
    }

    pub fn retry_after(self) -> Option<u32> {
        match self {
            Refusal::Throttled { retry_after } => Some(retry_after),
            Refusal::ServiceUnavailable { retry_after } => retry_after,
            Refusal::InternalError | Refusal::Unauthorized => None,
        }
    }

    fn to_json(self) -> Value {
        let mut refuse = json!({ "status": self.status() });
        if let Some(seconds) = self.retry_after() {
            refuse["retryAfter"] = json!(seconds);
        }
        json!({ "refuse": refuse })
    }
}

/// A rule that refuses the requests it matches, until its `count` is used or it is removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultRule {
    pub(super) operation: FaultOperation,
    pub(super) id_scope: Option<String>,
    pub(super) hub: Option<String>,
    pub(super) id_pattern: String,
    pub(super) refusal: Refusal,
    pub(super) count: Option<u32>,
}

/// A rule that cannot be installed; the control port answers it as a 400 (400004).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid fault rule: {0}")]
pub struct FaultError(pub(super) String);

impl FaultRule {
    /// A rule hitting every `operation` request (any scope, any id) until removed.
    pub fn new(operation: FaultOperation, refusal: Refusal) -> FaultRule {
        FaultRule {
            operation,
            id_scope: None,
            hub: None,
            id_pattern: "*".to_owned(),
            refusal,
            count: None,
        }
    }

    /// Only requests to this DPS id scope.
    pub fn id_scope(mut self, id_scope: &str) -> FaultRule {
        self.id_scope = Some(id_scope.to_owned());
        self
    }

    /// Only requests for a registration id matching `pattern` (`*` is any run; case ignored).
    pub fn registration_id(mut self, pattern: &str) -> FaultRule {
        self.id_pattern = pattern.to_owned();
        self
    }

    /// Hit only the next `count` matching requests.
    pub fn count(mut self, count: u32) -> FaultRule {
        self.count = Some(count);
        self
    }

    pub fn operation(&self) -> FaultOperation {
        self.operation
    }

    pub fn refusal(&self) -> Refusal {
        self.refusal
    }

    /// Checks every bound; the registry installs only rules that pass.
    pub fn validate(&self) -> Result<(), FaultError> {
        check_name("registrationId", &self.id_pattern, MAX_ID_PATTERN)?;
        if let Some(scope) = &self.id_scope {
            check_name("idScope", scope, MAX_TARGET_NAME)?;
        }
        if self.hub.is_some() {
            return Err(FaultError(format!(
                "'hub' addresses hub operations; {} is addressed by 'idScope'",
                self.operation.as_str()
            )));
        }
        if let Some(count) = self.count
            && !(1..=MAX_COUNT).contains(&count)
        {
            return Err(FaultError(format!(
                "count must be 1..={MAX_COUNT} (omit it for a rule that lasts until removed)"
            )));
        }
        if let Some(seconds) = self.refusal.retry_after()
            && seconds > MAX_RETRY_AFTER
        {
            return Err(FaultError(format!(
                "retryAfter must be 0..={MAX_RETRY_AFTER} seconds"
            )));
        }
        Ok(())
    }

    /// Whether the rule is about this request.
    pub(super) fn matches(
        &self,
        operation: FaultOperation,
        id_scope: &str,
        registration_id: &str,
    ) -> bool {
        self.operation == operation
            && self
                .id_scope
                .as_deref()
                .is_none_or(|s| s.eq_ignore_ascii_case(id_scope))
            && super::glob::matches(&self.id_pattern, registration_id)
    }

    /// The control port's form:
    /// `{"operation":"dps.register","idScope"?,"registrationId"?,"action":{"refuse":{"status":429,"retryAfter":5}},"count"?}`.
    pub fn from_json(body: &[u8]) -> Result<FaultRule, FaultError> {
        let wire: RuleJson = serde_json::from_slice(body)
            .map_err(|e| FaultError(format!("unreadable rule: {e}")))?;
        let operation = FaultOperation::parse(&wire.operation).ok_or_else(|| {
            FaultError(format!(
                "unknown operation '{}' (served: dps.register, dps.poll)",
                wire.operation
            ))
        })?;
        let ActionJson::Refuse(refuse) = wire.action;
        let retry_after = refuse
            .retry_after
            .map(|s| {
                u32::try_from(s)
                    .ok()
                    .filter(|s| *s <= MAX_RETRY_AFTER)
                    .ok_or_else(|| {
                        FaultError(format!("retryAfter must be 0..={MAX_RETRY_AFTER} seconds"))
                    })
            })
            .transpose()?;
        let refusal = match (refuse.status, retry_after) {
            (429, Some(retry_after)) => Refusal::Throttled { retry_after },
            (429, None) => {
                return Err(FaultError(
                    "a 429 refusal needs retryAfter (seconds)".to_owned(),
                ));
            }
            (503, retry_after) => Refusal::ServiceUnavailable { retry_after },
            (500, None) => Refusal::InternalError,
            (401, None) => Refusal::Unauthorized,
            (500 | 401, Some(_)) => {
                return Err(FaultError(format!(
                    "retryAfter goes with 429 or 503, not {}",
                    refuse.status
                )));
            }
            (other, _) => {
                return Err(FaultError(format!(
                    "refuse.status {other} is not served (429, 500, 503, 401)"
                )));
            }
        };
        let count = wire
            .count
            .map(|c| {
                u32::try_from(c)
                    .ok()
                    .ok_or_else(|| FaultError(format!("count must be 1..={MAX_COUNT}")))
            })
            .transpose()?;
        let rule = FaultRule {
            operation,
            id_scope: wire.id_scope,
            hub: wire.hub,
            id_pattern: wire.registration_id.unwrap_or_else(|| "*".to_owned()),
            refusal,
            count,
        };
        rule.validate()?;
        Ok(rule)
    }

    pub fn to_json(&self) -> Value {
        let mut out = json!({
            "operation": self.operation.as_str(),
            "registrationId": self.id_pattern,
            "action": self.refusal.to_json(),
        });
        if let Some(scope) = &self.id_scope {
            out["idScope"] = json!(scope);
        }
        if let Some(count) = self.count {
            out["count"] = json!(count);
        }
        out
    }
}

/// A target name or id pattern: not empty, bounded, printable ASCII without spaces (no id
/// Azure accepts has others, so anything else is a typo worth a 400).
fn check_name(field: &str, value: &str, max: usize) -> Result<(), FaultError> {
    if value.is_empty() || value.len() > max {
        return Err(FaultError(format!("{field} must be 1..={max} characters")));
    }
    if !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(FaultError(format!(
            "{field} may hold only printable ASCII without spaces"
        )));
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RuleJson {
    operation: String,
    id_scope: Option<String>,
    hub: Option<String>,
    registration_id: Option<String>,
    action: ActionJson,
    /// Wide, so an out-of-range number is our 400 message rather than serde's.
    count: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
enum ActionJson {
    Refuse(RefuseJson),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RefuseJson {
    status: u16,
    retry_after: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<FaultRule, FaultError> {
        FaultRule::from_json(json.as_bytes())
    }

    #[test]
    fn a_throttle_rule_reads_and_renders_back() {
        let json = r#"{"operation":"dps.register","idScope":"0ne1","registrationId":"dev-*",
            "action":{"refuse":{"status":429,"retryAfter":5}},"count":2}"#;
        let rule = parse(json).expect("valid");
        assert_eq!(
            rule,
            FaultRule::new(
                FaultOperation::DpsRegister,
                Refusal::Throttled { retry_after: 5 }
            )
            .id_scope("0ne1")
            .registration_id("dev-*")
            .count(2)
        );
        assert_eq!(parse(&rule.to_json().to_string()), Ok(rule));
    }

    #[test]
    fn bad_rules_are_refused_with_a_reason() {
        let cases = [
            (
                r#"{"operation":"hub.send","action":{"refuse":{"status":429,"retryAfter":1}}}"#,
                "unknown operation",
            ),
            (
                r#"{"operation":"dps.poll","action":{"refuse":{"status":429}}}"#,
                "needs retryAfter",
            ),
            (
                r#"{"operation":"dps.poll","action":{"refuse":{"status":429,"retryAfter":3601}}}"#,
                "retryAfter must be",
            ),
            (
                r#"{"operation":"dps.poll","action":{"refuse":{"status":429,"retryAfter":99999999999}}}"#,
                "retryAfter must be",
            ),
            (
                r#"{"operation":"dps.poll","action":{"refuse":{"status":418}}}"#,
                "not served",
            ),
            (
                r#"{"operation":"dps.poll","action":{"refuse":{"status":500,"retryAfter":1}}}"#,
                "goes with 429 or 503",
            ),
            (
                r#"{"operation":"dps.poll","action":{"refuse":{"status":500}},"count":0}"#,
                "count must be",
            ),
            (
                r#"{"operation":"dps.poll","action":{"refuse":{"status":500}},"count":1000001}"#,
                "count must be",
            ),
            (
                r#"{"operation":"dps.poll","action":{"refuse":{"status":500}},"count":99999999999}"#,
                "count must be",
            ),
            (
                r#"{"operation":"dps.poll","action":{"refuse":{"status":500}},"registrationId":""}"#,
                "registrationId must be",
            ),
            (
                r#"{"operation":"dps.poll","action":{"refuse":{"status":500}},"registrationId":"a b"}"#,
                "printable ASCII",
            ),
            (
                r#"{"operation":"dps.poll","action":{"refuse":{"status":500}},"hub":"h"}"#,
                "'hub' addresses",
            ),
            (
                r#"{"operation":"dps.poll","action":{"delay":{}}}"#,
                "unreadable",
            ),
            (
                r#"{"operation":"dps.poll","action":{"refuse":{"status":500}},"extra":1}"#,
                "unreadable",
            ),
        ];
        for (json, reason) in cases {
            let error = parse(json).expect_err(json);
            assert!(error.to_string().contains(reason), "{json}: {error}");
        }
        let long = format!(
            r#"{{"operation":"dps.poll","action":{{"refuse":{{"status":401}}}},"registrationId":"{}"}}"#,
            "a".repeat(129)
        );
        assert!(parse(&long).is_err());
    }

    #[test]
    fn a_rule_matches_its_operation_scope_and_id_pattern() {
        let rule = FaultRule::new(FaultOperation::DpsPoll, Refusal::InternalError)
            .id_scope("0ne1")
            .registration_id("dev-*");
        assert!(rule.matches(FaultOperation::DpsPoll, "0NE1", "Dev-7"));
        assert!(!rule.matches(FaultOperation::DpsRegister, "0ne1", "dev-7"));
        assert!(!rule.matches(FaultOperation::DpsPoll, "0ne2", "dev-7"));
        assert!(!rule.matches(FaultOperation::DpsPoll, "0ne1", "other"));
    }
}
