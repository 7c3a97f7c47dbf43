//! A fault rule: which requests it hits (operation, DPS scope or hub, id glob), what it does
//! to them (refuse with an Azure error, delay the answer, drop the connection, stall) and
//! which of them it hits (`after` the first N, with a `probability`, at most `count`).
//! Rules come from the Rust API ([`FaultRule::new`]) or as JSON from the control port and
//! fixtures ([`FaultRule::from_json`]); both are checked by [`FaultRule::validate`] before the
//! registry takes them, so a bad rule is a 400 and never half-installed.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use super::rate::Rate;

/// The longest id pattern: registration and device ids are at most 128 characters.
const MAX_ID_PATTERN: usize = 128;
/// The longest service-route path pattern (`/devices/{id}/modules/{id}/…` with two 128-character ids).
const MAX_PATH_PATTERN: usize = 512;
/// The longest DPS id scope or hub name a rule may name (both are far shorter in Azure).
const MAX_TARGET_NAME: usize = 256;
/// The largest `count` and `after`: budgets, not counters a test could make wrap.
pub(crate) const MAX_COUNT: u32 = 1_000_000;
/// The largest `retry-after` (seconds): an hour, past any device SDK's back-off cap.
pub(crate) const MAX_RETRY_AFTER: u32 = 3600;
/// The longest delay (ms): ten minutes, past every SDK's operation timeout.
pub(crate) const MAX_DELAY_MS: u64 = 600_000;
/// Probabilities are kept in millionths, so rules compare exactly and render back unchanged.
const PER_MILLION: u32 = 1_000_000;
/// The latest start and the longest span of a rule's active window (seconds): a day.
pub(crate) const MAX_WINDOW_SECONDS: u32 = 86_400;

/// The request a rule is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultOperation {
    /// `PUT …/register` (HTTPS), `iotdps-register` (MQTT), the AMQP register request.
    DpsRegister,
    /// The operation-status poll on every transport.
    DpsPoll,
    /// A device's or module's MQTT CONNECT to a hub (TCP or WebSocket), after it authenticated.
    HubConnect,
    /// A device-to-cloud telemetry PUBLISH (MQTT).
    HubTelemetry,
    /// A twin GET request (`$iothub/twin/GET/` over MQTT, `operation` GET on the AMQP twin
    /// link).
    HubTwinGet,
    /// A reported-properties patch (`$iothub/twin/PATCH/properties/reported/` over MQTT,
    /// `operation` PATCH on the AMQP twin link).
    HubTwinPatch,
    /// A direct method a service (REST, portal, Rust API) invokes on a device or module, on
    /// every device transport.
    HubMethod,
    /// A request to the hub's service REST API (`/devices…`, `/twins…`, `/messages…`,
    /// `/jobs…`, …), addressed by its path.
    HubService,
    /// A request to the DPS service REST API (`/enrollments…`, `/enrollmentGroups…`,
    /// `/registrations…`), addressed by its path.
    DpsService,
    /// A cloud-to-device message about to be delivered to a device (MQTT, AMQP; over HTTPS the
    /// device's receive): `drop` before the message is sent or after it was sent and before
    /// the device settled it, or `delay` its sending; `refuse` applies to the HTTPS receive
    /// only (a request the device makes), and MQTT and AMQP deliveries pass such a rule by.
    HubC2d,
    /// A cloud-to-device message a service sends (AMQP `/messages/devicebound`, the portal,
    /// `POST /c2d`, the Rust API), addressed by the device it is for; refusals only, answered
    /// before anything is queued.
    HubC2dSend,
}

impl FaultOperation {
    const ALL: [FaultOperation; 11] = [
        FaultOperation::DpsRegister,
        FaultOperation::DpsPoll,
        FaultOperation::HubConnect,
        FaultOperation::HubTelemetry,
        FaultOperation::HubTwinGet,
        FaultOperation::HubTwinPatch,
        FaultOperation::HubMethod,
        FaultOperation::HubService,
        FaultOperation::DpsService,
        FaultOperation::HubC2d,
        FaultOperation::HubC2dSend,
    ];

    /// The name used in JSON and the log.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultOperation::DpsRegister => "dps.register",
            FaultOperation::DpsPoll => "dps.poll",
            FaultOperation::HubConnect => "hub.connect",
            FaultOperation::HubTelemetry => "hub.telemetry",
            FaultOperation::HubTwinGet => "hub.twin.get",
            FaultOperation::HubTwinPatch => "hub.twin.patch",
            FaultOperation::HubMethod => "hub.method",
            FaultOperation::HubService => "hub.service",
            FaultOperation::DpsService => "dps.service",
            FaultOperation::HubC2d => "hub.c2d",
            FaultOperation::HubC2dSend => "hub.c2d.send",
        }
    }

    fn parse(name: &str) -> Option<FaultOperation> {
        Self::ALL.into_iter().find(|op| op.as_str() == name)
    }

    /// DPS operations are addressed by id scope, hub operations by hub.
    pub fn is_dps(self) -> bool {
        matches!(
            self,
            FaultOperation::DpsRegister | FaultOperation::DpsPoll | FaultOperation::DpsService
        )
    }

    /// A service API's requests are addressed by their path, not by a device or registration.
    fn is_service(self) -> bool {
        matches!(
            self,
            FaultOperation::HubService | FaultOperation::DpsService
        )
    }

    /// The DPS device operations can only refuse: their transports carry a DPS error on
    /// every protocol, but delay, drop and stall are served by the hub and HTTPS paths. A C2D
    /// send is refused by the hub before it is queued, whichever way the service sent it.
    fn refuses_only(self) -> bool {
        matches!(
            self,
            FaultOperation::DpsRegister | FaultOperation::DpsPoll | FaultOperation::HubC2dSend
        )
    }

    fn id_field(self) -> &'static str {
        match self {
            _ if self.is_service() => "path",
            _ if self.is_dps() => "registrationId",
            _ => "deviceId",
        }
    }

    fn max_id_pattern(self) -> usize {
        if self.is_service() {
            MAX_PATH_PATTERN
        } else {
            MAX_ID_PATTERN
        }
    }

    fn target_field(self) -> &'static str {
        if self.is_dps() { "idScope" } else { "hub" }
    }
}

/// How a request is refused. The domain or transport that owns the operation turns it into
/// its Azure error: DPS's `DpsError::from_fault` (carried by every transport as any DPS
/// error), CONNACK 5 (401) or 3 (the others) for a hub CONNECT, the twin response status
/// for twin requests, and for telemetry over MQTT — which has no way to refuse one PUBLISH —
/// the connection closed without a PUBACK, as IoT Hub does with a message it refuses.
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

    /// The 6-digit Azure error code of the status.
    pub fn error_code(self) -> u32 {
        match self {
            Refusal::Throttled { .. } => 429001,
            Refusal::InternalError => 500000,
            Refusal::ServiceUnavailable { .. } => 503000,
            Refusal::Unauthorized => 401002,
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
        refuse
    }
}

/// What a rule does to a request it hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultAction {
    /// Answer with an Azure error; nothing is stored.
    Refuse(Refusal),
    /// Do the request, then hold its answer (CONNACK, PUBACK, twin response) this long; the
    /// connection reads nothing else meanwhile, as a slow service would behave.
    Delay(Duration),
    /// Close the connection: before the request is done (nothing stored, no answer), or
    /// after it was stored and answered (`after_ack`) — the device saw the acknowledgement,
    /// so the write is kept.
    Drop { after_ack: bool },
    /// Accept the request and never answer it; nothing is stored. The connection stays open.
    Stall,
}

impl From<Refusal> for FaultAction {
    fn from(refusal: Refusal) -> FaultAction {
        FaultAction::Refuse(refusal)
    }
}

impl FaultAction {
    /// Whether the request goes ahead (and the fault acts on its answer).
    pub fn lets_request_through(self) -> bool {
        matches!(
            self,
            FaultAction::Delay(_) | FaultAction::Drop { after_ack: true }
        )
    }

    fn to_json(self) -> Value {
        match self {
            FaultAction::Refuse(refusal) => json!({ "refuse": refusal.to_json() }),
            FaultAction::Delay(delay) => {
                json!({ "delay": { "ms": u64::try_from(delay.as_millis()).unwrap_or(u64::MAX) } })
            }
            FaultAction::Drop { after_ack } => {
                let when = if after_ack { "afterAck" } else { "beforeAck" };
                json!({ "drop": { "when": when } })
            }
            FaultAction::Stall => json!({ "stall": {} }),
        }
    }
}

/// A rule: which requests it hits and what it does to them, until its `count` is used or it
/// is removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultRule {
    pub(super) operation: FaultOperation,
    /// The DPS id scope (DPS operations) or hub (hub operations: its name or host name).
    pub(super) target: Option<String>,
    /// A registration id (DPS) or device id (hub) pattern.
    pub(super) id_pattern: String,
    pub(super) action: FaultAction,
    pub(super) count: Option<u32>,
    /// Matching requests let through before the rule starts hitting ("after the third message").
    pub(super) after: u32,
    /// The chance, in millionths, that a matching request is hit; `None` is always.
    pub(super) per_million: Option<u32>,
    /// The rule hits only from this long after it was installed…
    pub(super) active_after: u32,
    /// …and for this long (seconds); `None` is until removed.
    pub(super) active_for: Option<u32>,
    /// Hit only the requests beyond this rate (a throttle); a 429 then carries how long
    /// until the rate lets the next request through.
    pub(super) rate: Option<Rate>,
}

/// A rule that cannot be installed; the control port answers it as a 400 (400004).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid fault rule: {0}")]
pub struct FaultError(pub(super) String);

impl FaultRule {
    /// A rule hitting every `operation` request (any scope or hub, any id) until removed.
    pub fn new(operation: FaultOperation, action: impl Into<FaultAction>) -> FaultRule {
        FaultRule {
            operation,
            target: None,
            id_pattern: "*".to_owned(),
            action: action.into(),
            count: None,
            after: 0,
            per_million: None,
            active_after: 0,
            active_for: None,
            rate: None,
        }
    }

    /// A throttle: `operation` requests beyond `rate` are refused with 429 (`errorCode`
    /// 429001) and a `retry-after` of the time until the rate lets the next one through.
    pub fn throttle(operation: FaultOperation, rate: Rate) -> FaultRule {
        FaultRule::new(operation, Refusal::Throttled { retry_after: 0 }).rate(rate)
    }

    /// Hit only the matching requests beyond `rate` (requests within it go through and count
    /// against it). A request counts against the first rate rule it matches only. A 429
    /// refusal then carries the time until the rate lets the next request through, in place
    /// of the refusal's own `retry_after`.
    pub fn rate(mut self, rate: Rate) -> FaultRule {
        self.rate = Some(rate);
        self
    }

    /// Only requests to this DPS id scope (DPS operations).
    pub fn id_scope(mut self, id_scope: &str) -> FaultRule {
        self.target = Some(id_scope.to_owned());
        self
    }

    /// Only requests to this hub, by name or host name (hub operations).
    pub fn hub(mut self, hub: &str) -> FaultRule {
        self.target = Some(hub.to_owned());
        self
    }

    /// Only requests for a registration id matching `pattern` (`*` is any run; case ignored).
    pub fn registration_id(mut self, pattern: &str) -> FaultRule {
        self.id_pattern = pattern.to_owned();
        self
    }

    /// Only requests of a device whose id matches `pattern` (`*` is any run; case ignored).
    pub fn device_id(self, pattern: &str) -> FaultRule {
        self.registration_id(pattern)
    }

    /// Only service requests whose path matches `pattern` (`hub.service`, `dps.service`; `*`
    /// is any run, `/` included; case ignored), e.g. `/devices/*`, `/twins/*/methods` or
    /// `/enrollmentGroups/*`.
    pub fn path(self, pattern: &str) -> FaultRule {
        self.registration_id(pattern)
    }

    /// Hit only the next `count` matching requests.
    pub fn count(mut self, count: u32) -> FaultRule {
        self.count = Some(count);
        self
    }

    /// Let the first `n` matching requests through, then hit.
    pub fn after(mut self, n: u32) -> FaultRule {
        self.after = n;
        self
    }

    /// Hit each matching request with this chance (0 < p ≤ 1), rounded to millionths.
    pub fn probability(mut self, p: f64) -> FaultRule {
        // Out-of-range values become 0 or past a million, which `validate` refuses.
        let scaled = (p * f64::from(PER_MILLION)).round();
        self.per_million = Some(if scaled.is_finite() && scaled >= 0.0 {
            // In range after the check above, saturating beyond u32 (refused by validate).
            scaled.min(f64::from(u32::MAX)) as u32
        } else {
            0
        });
        self
    }

    /// Hit only within a window of time measured from when the rule is installed: from
    /// `after_seconds` on, for `for_seconds` (`None`: until removed). Outside it matching
    /// requests go through untouched and use up nothing.
    pub fn active(mut self, after_seconds: u32, for_seconds: Option<u32>) -> FaultRule {
        self.active_after = after_seconds;
        self.active_for = for_seconds;
        self
    }

    /// Whether the rule's window is open `elapsed` after it was installed.
    pub(super) fn is_active(&self, elapsed: Duration) -> bool {
        let from = Duration::from_secs(u64::from(self.active_after));
        elapsed >= from
            && self
                .active_for
                .is_none_or(|span| elapsed < from + Duration::from_secs(u64::from(span)))
    }

    pub fn operation(&self) -> FaultOperation {
        self.operation
    }

    /// Whether the rule is a throttle (it has a `rate`).
    pub fn is_throttle(&self) -> bool {
        self.rate.is_some()
    }

    pub fn action(&self) -> FaultAction {
        self.action
    }

    /// Checks every bound and that the action makes sense for the operation; the registry
    /// installs only rules that pass.
    pub fn validate(&self) -> Result<(), FaultError> {
        check_name(
            self.operation.id_field(),
            &self.id_pattern,
            self.operation.max_id_pattern(),
        )?;
        if let Some(target) = &self.target {
            check_name(self.operation.target_field(), target, MAX_TARGET_NAME)?;
        }
        if let Some(count) = self.count
            && !(1..=MAX_COUNT).contains(&count)
        {
            return Err(FaultError(format!(
                "count must be 1..={MAX_COUNT} (omit it for a rule that lasts until removed)"
            )));
        }
        if self.after > MAX_COUNT {
            return Err(FaultError(format!("after must be 0..={MAX_COUNT}")));
        }
        if self.active_after > MAX_WINDOW_SECONDS {
            return Err(FaultError(format!(
                "activeAfterSeconds must be 0..={MAX_WINDOW_SECONDS}"
            )));
        }
        if let Some(span) = self.active_for
            && !(1..=MAX_WINDOW_SECONDS).contains(&span)
        {
            return Err(FaultError(format!(
                "activeForSeconds must be 1..={MAX_WINDOW_SECONDS}"
            )));
        }
        if let Some(p) = self.per_million
            && !(1..=PER_MILLION).contains(&p)
        {
            return Err(FaultError(
                "probability must be more than 0 and at most 1".to_owned(),
            ));
        }
        if let Some(rate) = self.rate {
            rate.validate().map_err(FaultError)?;
            if self.after > 0 || self.per_million.is_some() {
                return Err(FaultError(
                    "a rate rule hits the requests beyond its rate: it takes no after or probability"
                        .to_owned(),
                ));
            }
        }
        if self.operation == FaultOperation::HubC2d && self.action == FaultAction::Stall {
            return Err(FaultError(
                "hub.c2d faults drop or delay a delivery, or refuse a device's HTTPS receive (there is no request to stall)".to_owned(),
            ));
        }
        match self.action {
            FaultAction::Refuse(refusal) => {
                if let Some(seconds) = refusal.retry_after()
                    && seconds > MAX_RETRY_AFTER
                {
                    return Err(FaultError(format!(
                        "retryAfter must be 0..={MAX_RETRY_AFTER} seconds"
                    )));
                }
            }
            _ if self.operation.refuses_only() => {
                return Err(FaultError(format!(
                    "{} faults can only refuse (delay, drop and stall are served for the other hub operations and the service APIs)",
                    self.operation.as_str()
                )));
            }

            FaultAction::Delay(delay) => {
                if delay.is_zero() || delay > Duration::from_millis(MAX_DELAY_MS) {
                    return Err(FaultError(format!("delay.ms must be 1..={MAX_DELAY_MS}")));
                }
            }
            FaultAction::Drop { .. } | FaultAction::Stall => {}
        }
        Ok(())
    }

    /// Whether the rule is about this request. `targets` are the names the request's DPS
    /// (its id scope) or hub (its name and host name) answers to.
    pub(super) fn matches(&self, operation: FaultOperation, targets: &[&str], id: &str) -> bool {
        self.operation == operation
            && self
                .target
                .as_deref()
                .is_none_or(|t| targets.iter().any(|name| t.eq_ignore_ascii_case(name)))
            && super::glob::matches(&self.id_pattern, id)
    }

    /// The control port's and fixtures' form:
    /// `{"operation":"dps.register","idScope"?,"registrationId"?,"action":{"refuse":{"status":429,"retryAfter":5}},"count"?}`,
    /// `{"operation":"hub.telemetry","hub"?,"deviceId"?,"action":{"drop":{"when":"afterAck"}},"after"?,"probability"?}`.
    pub fn from_json(body: &[u8]) -> Result<FaultRule, FaultError> {
        let wire: RuleJson = serde_json::from_slice(body)
            .map_err(|e| FaultError(format!("unreadable rule: {e}")))?;
        FaultRule::from_wire(wire)
    }

    /// [`FaultRule::from_json`] for a rule already parsed as JSON (a fixture's element).
    pub fn from_value(value: Value) -> Result<FaultRule, FaultError> {
        let wire: RuleJson = serde_json::from_value(value)
            .map_err(|e| FaultError(format!("unreadable rule: {e}")))?;
        FaultRule::from_wire(wire)
    }

    fn from_wire(wire: RuleJson) -> Result<FaultRule, FaultError> {
        let served = FaultOperation::ALL.map(FaultOperation::as_str).join(", ");
        let operation = FaultOperation::parse(&wire.operation).ok_or_else(|| {
            FaultError(format!(
                "unknown operation '{}' (served: {served})",
                wire.operation
            ))
        })?;
        let (target, target_misplaced) = if operation.is_dps() {
            (wire.id_scope, wire.hub.is_some())
        } else {
            (wire.hub, wire.id_scope.is_some())
        };
        let (id_pattern, id_misplaced) = match operation {
            _ if operation.is_service() => (
                wire.path,
                wire.device_id.is_some() || wire.registration_id.is_some(),
            ),
            _ if operation.is_dps() => (
                wire.registration_id,
                wire.device_id.is_some() || wire.path.is_some(),
            ),
            _ => (
                wire.device_id,
                wire.registration_id.is_some() || wire.path.is_some(),
            ),
        };
        if target_misplaced || id_misplaced {
            return Err(FaultError(format!(
                "{} is addressed by '{}' and '{}'",
                operation.as_str(),
                operation.target_field(),
                operation.id_field()
            )));
        }
        let rate = wire.rate.map(|r| {
            let limit = u32::try_from(r.limit).unwrap_or(u32::MAX);
            let seconds = u32::try_from(r.seconds).unwrap_or(u32::MAX);
            let rate = Rate::new(limit, seconds);
            if r.each { rate.each() } else { rate }
        });
        let action = match wire.action {
            ActionJson::Refuse(refuse) if rate.is_some() && refuse.status == 429 => {
                if refuse.retry_after.is_some() {
                    return Err(FaultError(
                        "a rate rule's 429 carries the time until its rate lets the next request through: omit retryAfter".to_owned(),
                    ));
                }
                FaultAction::Refuse(Refusal::Throttled { retry_after: 0 })
            }
            ActionJson::Refuse(refuse) => FaultAction::Refuse(refusal(refuse)?),
            ActionJson::Delay(delay) => {
                if !(1..=MAX_DELAY_MS).contains(&delay.ms) {
                    return Err(FaultError(format!("delay.ms must be 1..={MAX_DELAY_MS}")));
                }
                FaultAction::Delay(Duration::from_millis(delay.ms))
            }
            ActionJson::Drop(drop) => FaultAction::Drop {
                after_ack: drop.when == DropWhen::AfterAck,
            },
            ActionJson::Stall(StallJson {}) => FaultAction::Stall,
        };
        let bounded = |field: &str, n: Option<u64>| {
            n.map(|n| {
                u32::try_from(n)
                    .ok()
                    .filter(|n| *n <= MAX_COUNT)
                    .ok_or_else(|| FaultError(format!("{field} must be at most {MAX_COUNT}")))
            })
            .transpose()
        };
        let count = bounded("count", wire.count)?;
        let after = bounded("after", wire.after)?.unwrap_or(0);
        let seconds = |field: &str, n: Option<u64>| {
            n.map(|n| {
                u32::try_from(n)
                    .ok()
                    .filter(|n| *n <= MAX_WINDOW_SECONDS)
                    .ok_or_else(|| {
                        FaultError(format!("{field} must be at most {MAX_WINDOW_SECONDS}"))
                    })
            })
            .transpose()
        };
        let active_after = seconds("activeAfterSeconds", wire.active_after_seconds)?.unwrap_or(0);
        let active_for = seconds("activeForSeconds", wire.active_for_seconds)?;
        let mut rule = FaultRule {
            operation,
            target,
            id_pattern: id_pattern.unwrap_or_else(|| "*".to_owned()),
            action,
            count,
            after,
            per_million: None,
            active_after,
            active_for,
            rate,
        };
        if let Some(p) = wire.probability {
            if !(p > 0.0 && p <= 1.0) {
                return Err(FaultError(
                    "probability must be more than 0 and at most 1".to_owned(),
                ));
            }
            rule = rule.probability(p);
        }
        rule.validate()?;
        Ok(rule)
    }

    pub fn to_json(&self) -> Value {
        let mut out = json!({
            "operation": self.operation.as_str(),
            "action": self.action.to_json(),
        });
        if let Some(rate) = self.rate {
            out["rate"] = rate.to_json();
            if let FaultAction::Refuse(Refusal::Throttled { .. }) = self.action {
                // Computed per refusal, not a setting of the rule.
                if let Some(refuse) = out["action"]["refuse"].as_object_mut() {
                    refuse.remove("retryAfter");
                }
            }
        }
        out[self.operation.id_field()] = json!(self.id_pattern);
        if let Some(target) = &self.target {
            out[self.operation.target_field()] = json!(target);
        }
        if let Some(count) = self.count {
            out["count"] = json!(count);
        }
        if self.after > 0 {
            out["after"] = json!(self.after);
        }
        if let Some(p) = self.per_million {
            out["probability"] = json!(f64::from(p) / f64::from(PER_MILLION));
        }
        if self.active_after > 0 {
            out["activeAfterSeconds"] = json!(self.active_after);
        }
        if let Some(span) = self.active_for {
            out["activeForSeconds"] = json!(span);
        }
        out
    }
}

/// The refusal a JSON `refuse` names, with its bounds checked.
fn refusal(refuse: RefuseJson) -> Result<Refusal, FaultError> {
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
    match (refuse.status, retry_after) {
        (429, Some(retry_after)) => Ok(Refusal::Throttled { retry_after }),
        (429, None) => Err(FaultError(
            "a 429 refusal needs retryAfter (seconds)".to_owned(),
        )),
        (503, retry_after) => Ok(Refusal::ServiceUnavailable { retry_after }),
        (500, None) => Ok(Refusal::InternalError),
        (401, None) => Ok(Refusal::Unauthorized),
        (500 | 401, Some(_)) => Err(FaultError(format!(
            "retryAfter goes with 429 or 503, not {}",
            refuse.status
        ))),
        (other, _) => Err(FaultError(format!(
            "refuse.status {other} is not served (429, 500, 503, 401)"
        ))),
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
    device_id: Option<String>,
    path: Option<String>,
    action: ActionJson,
    /// Wide, so an out-of-range number is our 400 message rather than serde's.
    count: Option<u64>,
    after: Option<u64>,
    probability: Option<f64>,
    active_after_seconds: Option<u64>,
    active_for_seconds: Option<u64>,
    rate: Option<RateJson>,
}

/// `{"limit": 5, "seconds": 10, "each": true}`; wide, so an out-of-range number is our 400
/// message rather than serde's.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RateJson {
    limit: u64,
    seconds: u64,
    #[serde(default)]
    each: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
enum ActionJson {
    Refuse(RefuseJson),
    Delay(DelayJson),
    Drop(DropJson),
    Stall(StallJson),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RefuseJson {
    status: u16,
    retry_after: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DelayJson {
    ms: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DropJson {
    when: DropWhen,
}

#[derive(Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
enum DropWhen {
    BeforeAck,
    AfterAck,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StallJson {}

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
                "is addressed by 'idScope' and 'registrationId'",
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
        assert!(rule.matches(FaultOperation::DpsPoll, &["0NE1"], "Dev-7"));
        assert!(!rule.matches(FaultOperation::DpsRegister, &["0ne1"], "dev-7"));
        assert!(!rule.matches(FaultOperation::DpsPoll, &["0ne2"], "dev-7"));
        assert!(!rule.matches(FaultOperation::DpsPoll, &["0ne1"], "other"));
    }

    #[test]
    fn hub_rules_read_every_action_and_render_back() {
        let rules = [
            r#"{"operation":"hub.telemetry","hub":"my-hub","deviceId":"dev-*","action":{"drop":{"when":"afterAck"}},"after":3,"count":1}"#,
            r#"{"operation":"hub.telemetry","deviceId":"*","action":{"drop":{"when":"beforeAck"}},"probability":0.25}"#,
            r#"{"operation":"hub.connect","deviceId":"d","action":{"refuse":{"status":503,"retryAfter":2}}}"#,
            r#"{"operation":"hub.twin.get","deviceId":"d","action":{"delay":{"ms":1500}}}"#,
            r#"{"operation":"hub.connect","deviceId":"d","action":{"stall":{}},"activeAfterSeconds":5,"activeForSeconds":30}"#,
            r#"{"operation":"hub.service","path":"/devices/*","action":{"refuse":{"status":429,"retryAfter":1}}}"#,
            r#"{"operation":"hub.twin.patch","deviceId":"d","action":{"stall":{}}}"#,
            r#"{"operation":"dps.service","idScope":"0ne1","path":"/enrollments/*","action":{"delay":{"ms":200}},"count":2}"#,
            r#"{"operation":"hub.c2d","deviceId":"d","action":{"drop":{"when":"afterAck"}},"count":1}"#,
        ];
        for json in rules {
            let rule = parse(json).expect(json);
            let back: Value = serde_json::from_str(json).expect("json");
            assert_eq!(rule.to_json(), back, "{json}");
            assert_eq!(parse(&rule.to_json().to_string()).as_ref(), Ok(&rule));
        }
        let rule = parse(rules[0]).expect("valid");
        assert_eq!(rule.action(), FaultAction::Drop { after_ack: true });
        assert!(rule.matches(
            FaultOperation::HubTelemetry,
            &["my-hub", "my-hub.azure-devices.net"],
            "DEV-1"
        ));
        assert!(rule.matches(FaultOperation::HubTelemetry, &["x", "MY-HUB"], "dev-1"));
        assert!(!rule.matches(FaultOperation::HubTelemetry, &["other"], "dev-1"));
    }

    #[test]
    fn hub_and_dps_rules_are_addressed_and_acted_on_as_their_operation_allows() {
        let cases = [
            (
                r#"{"operation":"hub.telemetry","registrationId":"d","action":{"stall":{}}}"#,
                "addressed by 'hub' and 'deviceId'",
            ),
            (
                r#"{"operation":"hub.connect","idScope":"s","action":{"stall":{}}}"#,
                "addressed by 'hub' and 'deviceId'",
            ),
            (
                r#"{"operation":"hub.service","deviceId":"d","action":{"stall":{}}}"#,
                "addressed by 'hub' and 'path'",
            ),
            (
                r#"{"operation":"dps.register","action":{"stall":{}}}"#,
                "can only refuse",
            ),
            (
                r#"{"operation":"hub.c2d","action":{"stall":{}}}"#,
                "no request to stall",
            ),
            (
                r#"{"operation":"hub.c2d.send","deviceId":"d","action":{"delay":{"ms":5}}}"#,
                "hub.c2d.send faults can only refuse",
            ),
            (
                r#"{"operation":"dps.service","registrationId":"r","action":{"stall":{}}}"#,
                "addressed by 'idScope' and 'path'",
            ),
            (
                r#"{"operation":"dps.service","hub":"h","path":"/x","action":{"stall":{}}}"#,
                "addressed by 'idScope' and 'path'",
            ),
            (
                r#"{"operation":"hub.twin.get","action":{"delay":{"ms":0}}}"#,
                "delay.ms must be",
            ),
            (
                r#"{"operation":"hub.twin.get","action":{"delay":{"ms":600001}}}"#,
                "delay.ms must be",
            ),
            (
                r#"{"operation":"hub.twin.get","action":{"drop":{"when":"later"}}}"#,
                "unreadable",
            ),
            (
                r#"{"operation":"hub.twin.get","action":{"stall":{}},"probability":0}"#,
                "probability must be",
            ),
            (
                r#"{"operation":"hub.twin.get","action":{"stall":{}},"probability":1.5}"#,
                "probability must be",
            ),
            (
                r#"{"operation":"hub.twin.get","action":{"stall":{}},"after":1000001}"#,
                "after must be",
            ),
            (
                r#"{"operation":"hub.twin.get","action":{"stall":{}},"activeForSeconds":0}"#,
                "activeForSeconds must be",
            ),
            (
                r#"{"operation":"hub.twin.get","action":{"stall":{}},"activeAfterSeconds":86401}"#,
                "activeAfterSeconds must be",
            ),
        ];
        for (json, reason) in cases {
            let error = parse(json).expect_err(json);
            assert!(error.to_string().contains(reason), "{json}: {error}");
        }
        let window =
            FaultRule::new(FaultOperation::HubTelemetry, FaultAction::Stall).active(10, Some(5));
        let at = |secs: u64| window.is_active(Duration::from_secs(secs));
        assert_eq!(
            (at(0), at(9), at(10), at(14), at(15)),
            (false, false, true, true, false)
        );
        assert!(
            FaultRule::new(FaultOperation::HubTelemetry, FaultAction::Stall)
                .is_active(Duration::ZERO)
        );
        let built =
            FaultRule::new(FaultOperation::HubTelemetry, FaultAction::Stall).probability(f64::NAN);
        assert!(built.validate().is_err(), "NaN is no probability");
    }
}
