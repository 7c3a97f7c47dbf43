//! Custom allocation (concepts-custom-allocation.md, protocol.md §8): DPS POSTs the
//! enrollment (keys removed), the device's runtime context and the eligible hubs to the
//! enrollment's webhook, and assigns the hub it answers, with its initial twin and payload.
//!
//! The call is made by an [`AllocationWebhook`] injected into DPS (by default
//! [`HttpWebhook`](super::HttpWebhook), in its own task), started by
//! `register`; polls answer `assigning` until the decision is in. Outcomes follow the
//! documented table: 200 with a hub → assigned; 200 without one → 400208; 401 → 400209; 429
//! and 5xx are retried a few times, then, like any other status or a network failure, →
//! 400207.

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

/// What the webhook decided.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookDecision {
    pub hub: String,
    pub initial_twin: Option<Value>,
    pub payload: Option<Value>,
}

/// A failed allocation: `registrationState.errorCode` and message.
pub(crate) type WebhookFailure = (u32, String);

/// Where the task leaves its result for the operation to pick up.
pub(crate) type DecisionSlot = Arc<Mutex<Option<Result<WebhookDecision, WebhookFailure>>>>;

pub(crate) const FAILED: u32 = 400207;
pub(crate) const NO_HUB: u32 = 400208;
pub(crate) const UNAUTHORIZED: u32 = 400209;

/// Makes webhook calls for DPS. The call runs in the background: DPS polls the slot, so a
/// slow webhook never holds a lock or a request.
pub trait AllocationWebhook: Send + Sync {
    /// Starts POSTing the `AllocationRequest` `body` to `url`; the returned slot is filled
    /// with the decision (or the failure's code and message) once there is one.
    fn start(&self, url: String, body: Value) -> DecisionSlot;
}

/// A slot that is already decided (a call that could not start, or a test's answer).
pub(crate) fn decided(outcome: Result<WebhookDecision, WebhookFailure>) -> DecisionSlot {
    Arc::new(Mutex::new(Some(outcome)))
}

/// The `AllocationRequest` body.
pub(crate) fn request_body(
    enrollment_field: &str,
    enrollment: Value,
    runtime_context: Value,
    linked_hubs: &[String],
) -> Value {
    json!({
        enrollment_field: enrollment,
        "deviceRuntimeContext": runtime_context,
        "linkedHubs": linked_hubs,
    })
}

/// `AllocationResponse`: `iotHubHostName` (any case, as the docs spell it both ways),
/// optional `initialTwin` and `payload`.
pub(super) fn parse_decision(body: &[u8]) -> Result<WebhookDecision, WebhookFailure> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        (
            FAILED,
            format!("Custom allocation failed: the webhook's answer is not JSON ({e})"),
        )
    })?;
    let field = |name: &str| {
        value.as_object().and_then(|o| {
            o.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        })
    };
    let hub = field("iotHubHostName")
        .and_then(|h| h.as_str().map(str::to_owned))
        .filter(|h| !h.is_empty())
        .ok_or_else(|| {
            (
                NO_HUB,
                "Custom allocation failed: the webhook named no IoT hub".into(),
            )
        })?;
    Ok(WebhookDecision {
        hub,
        initial_twin: field("initialTwin").filter(|t| !t.is_null()),
        payload: field("payload").filter(|p| !p.is_null()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_follow_the_documented_table() {
        let ok = parse_decision(br#"{"iotHubHostName":"hub-a","payload":{"x":1}}"#).unwrap();
        assert_eq!(ok.hub, "hub-a");
        assert_eq!(ok.payload, Some(json!({"x":1})));
        // The table's spelling works too.
        assert_eq!(
            parse_decision(br#"{"iotHubHostname":"hub-b"}"#)
                .unwrap()
                .hub,
            "hub-b"
        );
        assert_eq!(
            parse_decision(br#"{"iotHubHostName":""}"#).unwrap_err().0,
            NO_HUB
        );
        assert_eq!(parse_decision(br#"{}"#).unwrap_err().0, NO_HUB);
        assert_eq!(parse_decision(b"nope").unwrap_err().0, FAILED);
    }
}
