//! A rule's rate condition (`rate`): the rule hits only the requests beyond `limit` per
//! `seconds`, as Azure's throttles do — counted per hub or DPS, or with `each` per device,
//! registration id or path as well (DPS's "5 polls per 10 seconds per device").
//!
//! Each counted key has a token bucket holding one window's allowance and refilled
//! continuously: a burst of `limit` requests passes at once, then `limit / seconds` per
//! second. Azure applies its operation throttles "in minute ranges", which is this with a
//! 60-second window. A request over the rate learns how long until the bucket holds a token
//! again: the `retry-after` of a throttled answer.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The largest `limit`: more requests per window than a test could send.
pub(crate) const MAX_LIMIT: u32 = 1_000_000;
/// The longest window (seconds): a day.
pub(crate) const MAX_SECONDS: u32 = 86_400;
/// The most keys one rule counts at once. Past it, buckets that have refilled (the same as
/// none) are forgotten first, then all of them: a flood of new ids costs bounded memory and
/// at worst lets some requests through uncounted — never locks anyone out.
pub(crate) const MAX_TRACKED: usize = 100_000;

/// How many requests a rule lets through per window before it hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub(super) limit: u32,
    pub(super) seconds: u32,
    /// Counted per device, registration id or path, not only per hub or DPS.
    pub(super) each: bool,
}

impl Rate {
    /// `limit` requests per `seconds` (both at least 1), per hub or DPS.
    pub fn new(limit: u32, seconds: u32) -> Rate {
        Rate {
            limit,
            seconds,
            each: false,
        }
    }

    /// Counted separately for each device, registration id or path.
    pub fn each(mut self) -> Rate {
        self.each = true;
        self
    }

    pub(super) fn validate(self) -> Result<(), String> {
        if !(1..=MAX_LIMIT).contains(&self.limit) {
            return Err(format!("rate.limit must be 1..={MAX_LIMIT}"));
        }
        if !(1..=MAX_SECONDS).contains(&self.seconds) {
            return Err(format!("rate.seconds must be 1..={MAX_SECONDS}"));
        }
        Ok(())
    }

    fn per_second(self) -> f64 {
        f64::from(self.limit) / f64::from(self.seconds)
    }

    pub(super) fn to_json(self) -> Value {
        let mut rate = json!({ "limit": self.limit, "seconds": self.seconds });
        if self.each {
            rate["each"] = json!(true);
        }
        rate
    }
}

/// One key's allowance: tokens left as of `at`.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(rate: Rate, now: Instant) -> Bucket {
        Bucket {
            tokens: f64::from(rate.limit),
            at: now,
        }
    }

    fn refill(&mut self, rate: Rate, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate.per_second()).min(f64::from(rate.limit));
        self.at = now;
    }

    fn is_full(&self, rate: Rate) -> bool {
        self.tokens >= f64::from(rate.limit)
    }

    /// Takes a token, or says how long until there is one.
    fn take(&mut self, rate: Rate, now: Instant) -> Result<(), Duration> {
        self.refill(rate, now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        let wait = (1.0 - self.tokens) / rate.per_second();
        // Finite and positive: at most one window (a token refills within `seconds`).
        Err(Duration::try_from_secs_f64(wait)
            .unwrap_or(Duration::from_secs(u64::from(rate.seconds))))
    }
}

/// What one rule has counted.
#[derive(Debug, Default)]
pub(super) struct Meter {
    buckets: HashMap<String, Bucket>,
}

impl Meter {
    /// Counts a request to `target` (the hub or DPS) for `id`: `Err(wait)` when it is over
    /// the rate, with how long until one more would pass.
    pub(super) fn count(
        &mut self,
        rate: Rate,
        target: &str,
        id: &str,
        now: Instant,
    ) -> Result<(), Duration> {
        let key = if rate.each {
            // A newline separates them: neither a target name nor an id pattern holds one.
            format!("{target}\n{id}")
        } else {
            target.to_owned()
        };
        if !self.buckets.contains_key(&key) && self.buckets.len() >= MAX_TRACKED {
            self.buckets.retain(|_, bucket| {
                bucket.refill(rate, now);
                !bucket.is_full(rate)
            });
            if self.buckets.len() >= MAX_TRACKED {
                self.buckets.clear();
            }
        }
        self.buckets
            .entry(key)
            .or_insert_with(|| Bucket::full(rate, now))
            .take(rate, now)
    }

    /// How many keys are counted (for tests of the bound).
    #[cfg(test)]
    pub(super) fn tracked(&self) -> usize {
        self.buckets.len()
    }
}

/// A wait as a `retry-after`: whole seconds, rounded up, at least one.
pub(super) fn retry_after_seconds(wait: Duration, max: u32) -> u32 {
    let seconds = wait
        .as_secs()
        .saturating_add(u64::from(wait.subsec_nanos() > 0));
    u32::try_from(seconds).unwrap_or(max).clamp(1, max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_the_limit_passes_then_the_rate_refills() {
        let rate = Rate::new(5, 10);
        let mut meter = Meter::default();
        let start = Instant::now();
        for _ in 0..5 {
            assert_eq!(meter.count(rate, "dps", "dev", start), Ok(()));
        }
        // Half a token per second: the sixth waits two seconds.
        let wait = meter.count(rate, "dps", "dev", start).unwrap_err();
        assert_eq!(wait, Duration::from_secs(2));
        assert_eq!(retry_after_seconds(wait, 3600), 2);
        let later = start + Duration::from_secs(2);
        assert_eq!(meter.count(rate, "dps", "dev", later), Ok(()));
        assert!(meter.count(rate, "dps", "dev", later).is_err());
    }

    #[test]
    fn each_counts_ids_apart_and_the_shared_rate_does_not() {
        let now = Instant::now();
        let mut each = Meter::default();
        let mut shared = Meter::default();
        let (per_id, per_target) = (Rate::new(1, 60).each(), Rate::new(1, 60));
        assert_eq!(each.count(per_id, "dps", "a", now), Ok(()));
        assert_eq!(each.count(per_id, "dps", "b", now), Ok(()));
        assert!(each.count(per_id, "dps", "a", now).is_err());
        assert_eq!(shared.count(per_target, "dps", "a", now), Ok(()));
        assert!(shared.count(per_target, "dps", "b", now).is_err());
        // Another hub or DPS has its own allowance.
        assert_eq!(shared.count(per_target, "other", "b", now), Ok(()));
    }

    #[test]
    fn a_flood_of_new_ids_stays_bounded() {
        let rate = Rate::new(1, 86_400).each();
        let mut meter = Meter::default();
        let now = Instant::now();
        for n in 0..MAX_TRACKED + 10 {
            // Every id's first request passes; none of the buckets refills within the test.
            assert_eq!(meter.count(rate, "hub", &format!("d{n}"), now), Ok(()));
        }
        assert!(meter.tracked() <= MAX_TRACKED);
    }

    #[test]
    fn refilled_buckets_are_forgotten_first() {
        let rate = Rate::new(1, 1).each();
        let mut meter = Meter::default();
        let start = Instant::now();
        for n in 0..MAX_TRACKED {
            meter.count(rate, "hub", &format!("d{n}"), start).unwrap();
        }
        let later = start + Duration::from_secs(5);
        meter.count(rate, "hub", "newcomer", later).unwrap();
        assert_eq!(meter.tracked(), 1, "only the newcomer is still counted");
    }

    #[test]
    fn retry_after_rounds_up_within_bounds() {
        assert_eq!(retry_after_seconds(Duration::from_millis(1), 3600), 1);
        assert_eq!(retry_after_seconds(Duration::from_millis(1500), 3600), 2);
        assert_eq!(retry_after_seconds(Duration::ZERO, 3600), 1);
        assert_eq!(retry_after_seconds(Duration::from_secs(90_000), 3600), 3600);
    }
}
