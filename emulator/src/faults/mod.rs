//! Faults a test injects (issue #19): rules that make DPS refuse registration requests with
//! the Azure errors a real service sends under load or failure (429 with `retry-after`, 500,
//! 503, 401), make a hub refuse, delay, drop or stall a device's MQTT connect, telemetry
//! and twin requests, and do the same to requests to the hub's and DPS's service REST APIs,
//! so device retry, back-off and reconnect logic and backends' retry policies can be tested
//! on demand.
//!
//! * `rule.rs` — a rule: target, operation, refusal, budget; its JSON form and its checks;
//! * `rate.rs` — a rule's rate condition (a throttle) and the token buckets that count it;
//! * `azure.rs` — Azure's own throttles for a tier and unit count, as rate rules;
//! * `glob.rs` — the `*` id patterns rules are addressed with;
//! * this file — [`Faults`], the registry the DPS domain consults, and [`FaultGuard`].
//!
//! The module imports no domain (the DPS domain maps a refusal to its `DpsError`, the MQTT
//! transport a hub fault to its CONNACK, twin status or closed connection), so it stays below
//! both domains in the module graph. The hubs own the registry; DPS shares it.
//!
//! iotemu never lies about storage: a rule is consulted before a request does anything, so a
//! refused, stalled or dropped-before-ack request changes no stored state, and a request whose
//! answer is delayed or followed by a drop is stored before its acknowledgement goes out.

mod azure;
mod glob;
mod rate;
mod rule;

pub use azure::{AzureThrottles, Tier};
pub use rate::Rate;
pub use rule::{FaultAction, FaultError, FaultOperation, FaultRule, Refusal};

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// How many rules may be installed at once: tests install a handful; the bound keeps a
/// looping script from growing the list (and the per-request scan) without limit.
pub(crate) const MAX_RULES: usize = 256;

/// The fault registry: shared by the emulator handle, the control port and the DPS domain
/// (clones share one registry).
#[derive(Clone, Default)]
pub struct Faults {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    rules: Mutex<Vec<Entry>>,
    /// The number of rules, read without the lock so requests pay nothing while none is set.
    installed: AtomicUsize,
    next_id: AtomicU64,
}

struct Entry {
    id: String,
    rule: FaultRule,
    hits: u64,
    /// What is left of `count`; `None` when the rule lasts until removed.
    remaining: Option<u32>,
    /// Matching requests still to let through before the rule starts hitting (`after`).
    to_skip: u32,
    /// When the rule was installed: its active window is measured from here.
    installed_at: Instant,
    /// What a rate rule has counted.
    meter: rate::Meter,
}

/// A request a rule hit: the rule's id (for the error message and the log) and its action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultHit {
    pub id: String,
    pub action: FaultAction,
}

/// A DPS request a rule refused: DPS rules can only refuse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RefusalHit {
    pub(crate) id: String,
    pub(crate) refusal: Refusal,
}

/// A rule as listed: its id, the rule, how many requests it refused and what is left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultStatus {
    pub id: String,
    pub rule: FaultRule,
    pub hits: u64,
    pub remaining: Option<u32>,
}

impl FaultStatus {
    /// `GET /faults`' element: the rule's JSON plus `id`, `hits` and `remaining`.
    pub fn to_json(&self) -> Value {
        let mut out = self.rule.to_json();
        out["id"] = json!(self.id);
        out["hits"] = json!(self.hits);
        if let Some(remaining) = self.remaining {
            out["remaining"] = json!(remaining);
        }
        out
    }
}

impl Faults {
    /// Installs a checked rule; its id names it in the list, the log and removal.
    pub fn add(&self, rule: FaultRule) -> Result<String, FaultError> {
        rule.validate()?;
        let mut rules = self.lock();
        if rules.len() >= MAX_RULES {
            return Err(FaultError(format!(
                "at most {MAX_RULES} faults may be installed; remove some first"
            )));
        }
        // A u64 of ids is never used up; the counter only ever names rules.
        let n = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let id = format!("fault-{}", n.saturating_add(1));
        tracing::info!(fault = %id, rule = %rule.to_json(), "fault installed");
        rules.push(Entry {
            id: id.clone(),
            remaining: rule.count,
            to_skip: rule.after,
            installed_at: Instant::now(),
            rule,
            hits: 0,
            meter: rate::Meter::default(),
        });
        self.inner.installed.store(rules.len(), Ordering::Release);
        Ok(id)
    }

    /// Installs a rule that is removed when the returned guard is dropped.
    pub fn inject(&self, rule: FaultRule) -> Result<FaultGuard, FaultError> {
        let id = self.add(rule)?;
        Ok(FaultGuard {
            faults: self.clone(),
            id,
        })
    }

    /// Removes a rule; whether it was installed.
    pub fn remove(&self, id: &str) -> bool {
        let mut rules = self.lock();
        let before = rules.len();
        rules.retain(|e| e.id != id);
        self.inner.installed.store(rules.len(), Ordering::Release);
        let removed = rules.len() != before;
        if removed {
            tracing::info!(fault = %id, "fault removed");
        }
        removed
    }

    /// Every installed rule, oldest first, with its hits (rules whose count is used stay
    /// listed, so a test can read how often they hit, until removed).
    pub fn list(&self) -> Vec<FaultStatus> {
        self.lock()
            .iter()
            .map(|e| FaultStatus {
                id: e.id.clone(),
                rule: e.rule.clone(),
                hits: e.hits,
                remaining: e.remaining,
            })
            .collect()
    }

    /// One installed rule.
    pub fn get(&self, id: &str) -> Option<FaultStatus> {
        self.list().into_iter().find(|s| s.id == id)
    }

    /// What a rule does to a request, if one hits it: the oldest matching rule with budget
    /// left whose `after` is passed and whose `probability` draw succeeds; its count is spent
    /// by one. `targets` are the names the request's DPS (id scope) or hub (name, host name)
    /// answers to. Logged at INFO with the rule id. Costs one atomic load while no rule is set.
    pub(crate) fn check(
        &self,
        operation: FaultOperation,
        targets: &[&str],
        id: &str,
    ) -> Option<FaultHit> {
        self.check_where(operation, targets, id, |_| true)
    }

    /// [`Faults::check`] over the rules that `apply` to this request only: the others pass it
    /// by, neither hitting nor counting it (a `hub.c2d` refusal is for the HTTPS receive, not
    /// for a delivery over MQTT; only the throttles of `hub.twin.get` count a service's twin
    /// read).
    pub(crate) fn check_where(
        &self,
        operation: FaultOperation,
        targets: &[&str],
        id: &str,
        applies: impl Fn(&FaultRule) -> bool,
    ) -> Option<FaultHit> {
        if self.inner.installed.load(Ordering::Acquire) == 0 {
            return None;
        }
        let mut rules = self.lock();
        let mut hitting = None;
        // Set once the request counted against a rate rule: it counts against that one only
        // (a query is a query, not also a registry read), and rules after it still apply.
        let mut counted = false;
        let mut over_rate = None;
        let now = Instant::now();
        for (index, e) in rules.iter_mut().enumerate() {
            if e.remaining == Some(0)
                || !e.rule.matches(operation, targets, id)
                || !applies(&e.rule)
                || !e
                    .rule
                    .is_active(now.saturating_duration_since(e.installed_at))
            {
                continue;
            }
            if let Some(rate) = e.rule.rate {
                if counted {
                    continue;
                }
                counted = true;
                let target = targets.first().copied().unwrap_or_default();
                match e.meter.count(rate, target, id, now) {
                    Ok(()) => continue,
                    Err(wait) => {
                        over_rate = Some(wait);
                        hitting = Some(index);
                        break;
                    }
                }
            }
            if e.to_skip > 0 {
                // Counted here, so "after 3" lets exactly three matching requests through.
                e.to_skip -= 1;
                continue;
            }
            if e.rule.per_million.is_none_or(|p| draw_per_million() < p) {
                hitting = Some(index);
                break;
            }
        }
        let entry = rules.get_mut(hitting?)?;
        entry.remaining = entry.remaining.map(|n| n.saturating_sub(1));
        entry.hits = entry.hits.saturating_add(1);
        let action = match (entry.rule.action(), over_rate) {
            // A throttle's 429 says when the rate lets the next request through.
            (FaultAction::Refuse(Refusal::Throttled { .. }), Some(wait)) => {
                FaultAction::Refuse(Refusal::Throttled {
                    retry_after: rate::retry_after_seconds(wait, rule::MAX_RETRY_AFTER),
                })
            }
            (action, _) => action,
        };
        tracing::info!(
            fault = %entry.id,
            operation = operation.as_str(),
            %id,
            action = %action_summary(action),
            "fault hit"
        );
        Some(FaultHit {
            id: entry.id.clone(),
            action,
        })
    }

    /// [`Faults::check`] for a DPS request: DPS rules only refuse (validated when added).
    pub(crate) fn check_refusal(
        &self,
        operation: FaultOperation,
        id_scope: &str,
        registration_id: &str,
    ) -> Option<RefusalHit> {
        let hit = self.check(operation, &[id_scope], registration_id)?;
        match hit.action {
            FaultAction::Refuse(refusal) => Some(RefusalHit {
                id: hit.id,
                refusal,
            }),
            // `FaultRule::validate` keeps these off DPS operations.
            FaultAction::Delay(_) | FaultAction::Drop { .. } | FaultAction::Stall => None,
        }
    }

    /// The list is never left half-changed, so a panic elsewhere while it was held does not
    /// make it unusable.
    fn lock(&self) -> MutexGuard<'_, Vec<Entry>> {
        self.inner
            .rules
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The longest a stalled request is held: as long as the longest delay a rule may ask for,
/// so a client that never gives up does not hold a task for ever.
pub(crate) const MAX_STALL: Duration = Duration::from_millis(rule::MAX_DELAY_MS);

/// Waits out a delay (or a stall's bound) for a transport carrying out a fault, cut short by
/// the emulator's shutdown so that no fault holds up the drain.
pub(crate) async fn hold(duration: Duration, shutdown: &crate::shutdown::ShutdownSignal) {
    let mut shutdown = shutdown.clone();
    tokio::select! {
        () = tokio::time::sleep(duration) => {}
        () = shutdown.recv() => {}
    }
}

/// A uniform draw in 0..1,000,000 from the OS (a probabilistic rule costs one `getrandom`
/// per matching request; tests do not send enough for it to matter).
fn draw_per_million() -> u32 {
    use rand_core::RngCore as _;
    rand_core::OsRng.next_u32() % 1_000_000
}

/// The log's words for an action: "refuse 429", "delay 1500 ms", "drop after ack", "stall".
fn action_summary(action: FaultAction) -> String {
    match action {
        FaultAction::Refuse(refusal) => format!("refuse {}", refusal.status()),
        FaultAction::Delay(delay) => format!("delay {} ms", delay.as_millis()),
        FaultAction::Drop { after_ack: true } => "drop after ack".to_owned(),
        FaultAction::Drop { after_ack: false } => "drop before ack".to_owned(),
        FaultAction::Stall => "stall".to_owned(),
    }
}

/// An injected rule; dropping the guard removes it.
#[must_use = "the fault is removed when the guard is dropped"]
pub struct FaultGuard {
    faults: Faults,
    id: String,
}

impl FaultGuard {
    pub fn id(&self) -> &str {
        &self.id
    }

    /// How many requests the rule has refused so far.
    pub fn hits(&self) -> u64 {
        self.faults.get(&self.id).map(|s| s.hits).unwrap_or(0)
    }
}

impl Drop for FaultGuard {
    fn drop(&mut self) {
        self.faults.remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle(count: Option<u32>) -> FaultRule {
        let rule = FaultRule::new(
            FaultOperation::DpsRegister,
            Refusal::Throttled { retry_after: 3 },
        )
        .registration_id("dev-*");
        match count {
            Some(n) => rule.count(n),
            None => rule,
        }
    }

    #[test]
    fn a_counted_rule_hits_its_count_then_lets_requests_through() {
        let faults = Faults::default();
        let id = faults.add(throttle(Some(2))).expect("valid");
        let hit = faults.check_refusal(FaultOperation::DpsRegister, "scope", "dev-1");
        assert_eq!(
            hit.map(|h| (h.refusal.status(), h.refusal.retry_after())),
            Some((429, Some(3)))
        );
        assert!(
            faults
                .check(FaultOperation::DpsPoll, &["scope"], "dev-1")
                .is_none()
        );
        assert!(
            faults
                .check(FaultOperation::DpsRegister, &["scope"], "other")
                .is_none()
        );
        assert!(
            faults
                .check(FaultOperation::DpsRegister, &["scope"], "dev-2")
                .is_some()
        );
        assert!(
            faults
                .check(FaultOperation::DpsRegister, &["scope"], "dev-1")
                .is_none()
        );
        let status = faults.get(&id).expect("still listed");
        assert_eq!((status.hits, status.remaining), (2, Some(0)));
        assert_eq!(status.to_json()["hits"], 2);
    }

    #[test]
    fn an_uncounted_rule_lasts_until_removed_and_the_guard_removes_it() {
        let faults = Faults::default();
        let guard = faults.inject(throttle(None)).expect("valid");
        for _ in 0..5 {
            assert!(
                faults
                    .check(FaultOperation::DpsRegister, &["s"], "dev-1")
                    .is_some()
            );
        }
        assert_eq!(guard.hits(), 5);
        drop(guard);
        assert!(faults.list().is_empty());
        assert!(
            faults
                .check(FaultOperation::DpsRegister, &["s"], "dev-1")
                .is_none()
        );
    }

    #[test]
    fn the_oldest_matching_rule_answers_and_removal_is_by_id() {
        let faults = Faults::default();
        let first = faults
            .add(FaultRule::new(FaultOperation::DpsPoll, Refusal::InternalError).count(1))
            .expect("valid");
        let second = faults
            .add(FaultRule::new(
                FaultOperation::DpsPoll,
                Refusal::Unauthorized,
            ))
            .expect("valid");
        assert_ne!(first, second);
        let status = |f: &Faults| {
            f.check_refusal(FaultOperation::DpsPoll, "s", "x")
                .map(|h| h.refusal.status())
        };
        assert_eq!(status(&faults), Some(500));
        assert_eq!(status(&faults), Some(401));
        assert!(faults.remove(&second));
        assert!(!faults.remove(&second));
        assert_eq!(status(&faults), None);
    }

    #[test]
    fn invalid_rules_and_too_many_rules_change_nothing() {
        let faults = Faults::default();
        assert!(faults.add(throttle(Some(0))).is_err());
        assert!(faults.list().is_empty());
        for _ in 0..MAX_RULES {
            faults.add(throttle(None)).expect("room");
        }
        let error = faults.add(throttle(None)).expect_err("full");
        assert!(error.to_string().contains("at most"), "{error}");
        assert_eq!(faults.list().len(), MAX_RULES);
    }

    #[test]
    fn after_lets_the_first_requests_through_then_the_count_hits() {
        let faults = Faults::default();
        let rule = FaultRule::new(
            FaultOperation::HubTelemetry,
            FaultAction::Drop { after_ack: true },
        )
        .device_id("d")
        .after(3)
        .count(1);
        let id = faults.add(rule).expect("valid");
        let hits: Vec<bool> = (0..6)
            .map(|_| {
                faults
                    .check(FaultOperation::HubTelemetry, &["hub"], "d")
                    .is_some()
            })
            .collect();
        assert_eq!(hits, [false, false, false, true, false, false]);
        // Other devices' requests neither hit nor use up `after`.
        let status = faults.get(&id).expect("listed");
        assert_eq!((status.hits, status.remaining), (1, Some(0)));
    }

    #[test]
    fn a_rule_outside_its_window_lets_requests_through_and_spends_nothing() {
        let faults = Faults::default();
        let later = faults
            .add(
                FaultRule::new(FaultOperation::HubTelemetry, FaultAction::Stall)
                    .active(3600, None)
                    .after(1)
                    .count(1),
            )
            .expect("valid");
        let now = faults
            .add(
                FaultRule::new(FaultOperation::HubTwinGet, FaultAction::Stall)
                    .active(0, Some(3600)),
            )
            .expect("valid");
        for _ in 0..3 {
            assert!(
                faults
                    .check(FaultOperation::HubTelemetry, &["h"], "d")
                    .is_none()
            );
        }
        let status = faults.get(&later).expect("listed");
        assert_eq!((status.hits, status.remaining), (0, Some(1)));
        assert_eq!(status.to_json()["activeAfterSeconds"], 3600);
        assert!(
            faults
                .check(FaultOperation::HubTwinGet, &["h"], "d")
                .is_some()
        );
        assert_eq!(faults.get(&now).map(|s| s.hits), Some(1));
    }

    #[test]
    fn a_probability_hits_about_that_share_of_requests() {
        let faults = Faults::default();
        faults
            .add(FaultRule::new(FaultOperation::HubTwinGet, FaultAction::Stall).probability(0.5))
            .expect("valid");
        let hits = (0..2000)
            .filter(|_| {
                faults
                    .check(FaultOperation::HubTwinGet, &["h"], "d")
                    .is_some()
            })
            .count();
        // Binomial(2000, 0.5): 1000 ± 50 is five standard deviations (≈ 1 in 1.7 million).
        assert!((900..=1100).contains(&hits), "{hits} of 2000");
    }

    #[test]
    fn a_rate_rule_hits_only_beyond_its_rate_with_the_wait_as_retry_after() {
        let faults = Faults::default();
        faults
            .add(FaultRule::throttle(
                FaultOperation::DpsPoll,
                Rate::new(2, 10).each(),
            ))
            .unwrap();
        let poll = |id: &str| faults.check_refusal(FaultOperation::DpsPoll, "scope", id);
        assert!(poll("dev-1").is_none());
        assert!(poll("dev-1").is_none());
        let refused = poll("dev-1").expect("the third poll within 10 s is over the rate");
        assert_eq!(refused.refusal.status(), 429);
        // One poll per 5 s refills: the wait is about 5 s, rounded up.
        assert_eq!(refused.refusal.retry_after(), Some(5));
        assert!(
            poll("dev-2").is_none(),
            "another device has its own allowance"
        );
        let listed = &faults.list()[0];
        assert_eq!(listed.hits, 1);
        assert_eq!(
            listed.to_json()["rate"],
            json!({"limit": 2, "seconds": 10, "each": true})
        );
        assert!(
            listed.to_json()["action"]["refuse"]
                .get("retryAfter")
                .is_none(),
            "the retry-after is computed per refusal"
        );
    }

    #[test]
    fn a_request_counts_against_the_first_rate_it_matches_and_later_faults_still_apply() {
        let faults = Faults::default();
        let query = FaultRule::throttle(FaultOperation::HubService, Rate::new(1, 60))
            .path("/devices/query*");
        let registry =
            FaultRule::throttle(FaultOperation::HubService, Rate::new(1, 60)).path("/devices*");
        let outage = FaultRule::new(
            FaultOperation::HubService,
            Refusal::ServiceUnavailable { retry_after: None },
        )
        .path("/devices/d2")
        .count(1);
        for rule in [query, registry, outage] {
            faults.add(rule).unwrap();
        }
        let service = |path: &str| {
            faults
                .check(FaultOperation::HubService, &["hub"], path)
                .map(|hit| hit.action)
        };
        assert_eq!(service("/devices/query"), None);
        // The query did not use the registry's allowance.
        assert_eq!(service("/devices/d1"), None);
        assert_eq!(
            service("/devices/d1"),
            Some(FaultAction::Refuse(Refusal::Throttled { retry_after: 60 }))
        );
        // Over the registry's rate already, so the throttle answers first…
        assert!(matches!(
            service("/devices/d2"),
            Some(FaultAction::Refuse(Refusal::Throttled { .. }))
        ));
        // …and a hub's allowance is its own: the other hub's request reaches the outage rule.
        assert_eq!(
            faults
                .check(FaultOperation::HubService, &["other-hub"], "/devices/d2")
                .map(|hit| hit.action),
            Some(FaultAction::Refuse(Refusal::ServiceUnavailable {
                retry_after: None
            }))
        );
    }

    #[test]
    fn rate_rules_from_json_are_checked() {
        let rule = FaultRule::from_json(
            br#"{"operation":"dps.poll","action":{"refuse":{"status":429}},"rate":{"limit":5,"seconds":10,"each":true}}"#,
        )
        .unwrap();
        assert_eq!(
            rule,
            FaultRule::throttle(FaultOperation::DpsPoll, Rate::new(5, 10).each())
        );
        assert_eq!(FaultRule::from_value(rule.to_json()).unwrap(), rule);
        // docs/faults.md's own throttle, as its curl example sends it.
        let documented = FaultRule::from_json(
            br#"{"operation":"hub.telemetry","action":{"refuse":{"status":429}},"rate":{"limit":2,"seconds":1,"each":true}}"#,
        )
        .unwrap();
        assert_eq!(
            documented,
            FaultRule::throttle(FaultOperation::HubTelemetry, Rate::new(2, 1).each())
        );
        for bad in [
            r#"{"operation":"dps.poll","action":{"refuse":{"status":429,"retryAfter":3}},"rate":{"limit":5,"seconds":10}}"#,
            r#"{"operation":"dps.poll","action":{"refuse":{"status":429}},"rate":{"limit":0,"seconds":10}}"#,
            r#"{"operation":"dps.poll","action":{"refuse":{"status":429}},"rate":{"limit":5,"seconds":0}}"#,
            r#"{"operation":"dps.poll","action":{"refuse":{"status":429}},"rate":{"limit":99999999999,"seconds":10}}"#,
            r#"{"operation":"dps.poll","action":{"refuse":{"status":429}},"rate":{"limit":5,"seconds":10},"after":2}"#,
            r#"{"operation":"dps.poll","action":{"refuse":{"status":429}},"rate":{"limit":5}}"#,
            r#"{"operation":"dps.poll","action":{"refuse":{"status":429}}}"#,
        ] {
            assert!(FaultRule::from_json(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
