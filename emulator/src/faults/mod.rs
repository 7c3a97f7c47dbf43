//! Faults a test injects (issue #19, first slice): rules that make DPS refuse registration
//! requests with the Azure errors a real service sends under load or failure (429 with
//! `retry-after`, 500, 503, 401), so device retry and back-off logic can be tested on demand.
//!
//! * `rule.rs` — a rule: target, operation, refusal, budget; its JSON form and its checks;
//! * `glob.rs` — the `*` id patterns rules are addressed with;
//! * this file — [`Faults`], the registry the DPS domain consults, and [`FaultGuard`].
//!
//! The module imports no domain (the DPS domain maps a refusal to its `DpsError`), so it
//! stays below both domains in the module graph and hub operations can use it next.
//!
//! A fault only ever refuses: it is consulted before a request does anything, so a refused
//! request changes no stored state (iotemu never lies about storage).

mod glob;
mod rule;

pub use rule::{FaultError, FaultOperation, FaultRule, Refusal};

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

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
}

/// A request a rule hit: the rule's id (for the error message and the log) and its refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FaultHit {
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
            rule,
            hits: 0,
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

    /// The refusal for a request, if a rule hits it: the oldest matching rule with budget
    /// left, whose count is spent by one. Logged at INFO with the rule id.
    pub(crate) fn check(
        &self,
        operation: FaultOperation,
        id_scope: &str,
        registration_id: &str,
    ) -> Option<FaultHit> {
        if self.inner.installed.load(Ordering::Acquire) == 0 {
            return None;
        }
        let mut rules = self.lock();
        let entry = rules.iter_mut().find(|e| {
            e.remaining != Some(0) && e.rule.matches(operation, id_scope, registration_id)
        })?;
        entry.remaining = entry.remaining.map(|n| n.saturating_sub(1));
        entry.hits = entry.hits.saturating_add(1);
        let refusal = entry.rule.refusal();
        tracing::info!(
            fault = %entry.id,
            operation = operation.as_str(),
            %registration_id,
            status = refusal.status(),
            "fault hit: request refused"
        );
        Some(FaultHit {
            id: entry.id.clone(),
            refusal,
        })
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
        let hit = faults.check(FaultOperation::DpsRegister, "scope", "dev-1");
        assert_eq!(
            hit.map(|h| (h.refusal.status(), h.refusal.retry_after())),
            Some((429, Some(3)))
        );
        assert!(
            faults
                .check(FaultOperation::DpsPoll, "scope", "dev-1")
                .is_none()
        );
        assert!(
            faults
                .check(FaultOperation::DpsRegister, "scope", "other")
                .is_none()
        );
        assert!(
            faults
                .check(FaultOperation::DpsRegister, "scope", "dev-2")
                .is_some()
        );
        assert!(
            faults
                .check(FaultOperation::DpsRegister, "scope", "dev-1")
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
                    .check(FaultOperation::DpsRegister, "s", "dev-1")
                    .is_some()
            );
        }
        assert_eq!(guard.hits(), 5);
        drop(guard);
        assert!(faults.list().is_empty());
        assert!(
            faults
                .check(FaultOperation::DpsRegister, "s", "dev-1")
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
            f.check(FaultOperation::DpsPoll, "s", "x")
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
}
