//! Azure's own throttles as rate rules (`--azure-throttles S1:2`): the limits an IoT hub of a
//! tier and unit count and a Device Provisioning Service enforce, with the 429 (`errorCode`
//! 429001) and `retry-after` they answer beyond them. Off by default — a local emulator that
//! refuses a test's burst surprises more than it helps — and installed as ordinary rules, so
//! `GET /faults` lists them with their hits and any one can be removed.
//!
//! The numbers and their sources are in docs/differences.md ("Throttles"): IoT Hub's from
//! "IoT Hub quotas and throttling" (per hub, by tier and units), DPS's from its limits
//! ("1,000 registrations/min/service, 5 polls per 10 s per device"). Operation throttles are
//! applied "in minute ranges", so each is a per-minute allowance refilled continuously.

use std::fmt;
use std::str::FromStr;

use super::rate::Rate;
use super::rule::{FaultOperation, FaultRule};

/// The most units a hub of one tier can have (Azure: 200 for S1 and S2, 10 for S3).
const MAX_UNITS: u32 = 200;

/// An IoT Hub tier. The basic tiers throttle as the standard tier of the same size (B1 as
/// S1, …), and the free tier as S1 with one unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    F1,
    B1,
    S1,
    B2,
    S2,
    B3,
    S3,
}

impl Tier {
    const ALL: [Tier; 7] = [
        Tier::F1,
        Tier::B1,
        Tier::S1,
        Tier::B2,
        Tier::S2,
        Tier::B3,
        Tier::S3,
    ];

    fn name(self) -> &'static str {
        match self {
            Tier::F1 => "F1",
            Tier::B1 => "B1",
            Tier::S1 => "S1",
            Tier::B2 => "B2",
            Tier::S2 => "S2",
            Tier::B3 => "B3",
            Tier::S3 => "S3",
        }
    }

    /// The column of Azure's throttle table: 1 (Free, B1, S1), 2 (B2, S2), 3 (B3, S3).
    fn size(self) -> u8 {
        match self {
            Tier::F1 | Tier::B1 | Tier::S1 => 1,
            Tier::B2 | Tier::S2 => 2,
            Tier::B3 | Tier::S3 => 3,
        }
    }
}

/// A hub tier and unit count: `S1`, `S2:4`, `s3:2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AzureThrottles {
    tier: Tier,
    units: u32,
}

impl AzureThrottles {
    /// `units` of `tier` (1..=200; the free tier has one).
    pub fn new(tier: Tier, units: u32) -> Result<AzureThrottles, String> {
        let max = if tier == Tier::F1 { 1 } else { MAX_UNITS };
        if !(1..=max).contains(&units) {
            return Err(format!("{} takes 1..={max} units", tier.name()));
        }
        Ok(AzureThrottles { tier, units })
    }

    /// The throttles as rules, the more specific service paths first (a request counts
    /// against the first throttle it matches only).
    pub fn rules(self) -> Vec<FaultRule> {
        let units = self.units;
        let size = self.tier.size();
        // Requests per second scaled to the per-minute window Azure applies them in.
        let per_second = |n: u32| Rate::new(n.saturating_mul(60), 60);
        let per_minute = |n: u32| Rate::new(n, 60);
        let by_size = |one: u32, two: u32, three: u32| match size {
            1 => one,
            2 => two,
            _ => three,
        };
        let connections_and_sends = by_size(
            100.max(units.saturating_mul(12)),
            units.saturating_mul(120),
            units.saturating_mul(6_000),
        );
        let twin_reads = by_size(
            100,
            100.max(units.saturating_mul(10)),
            units.saturating_mul(500),
        );
        let twin_updates = by_size(
            50,
            50.max(units.saturating_mul(5)),
            units.saturating_mul(250),
        );
        // Direct methods are metered in 4 KB steps: 160 KB/s/unit is 40 calls of up to 4 KB.
        let methods = units.saturating_mul(by_size(40, 120, 6_000));
        let queries = units.saturating_mul(by_size(20, 20, 1_000));
        let registry_and_jobs = units.saturating_mul(by_size(100, 100, 5_000));
        let configurations = units.saturating_mul(20);
        let c2d_sends = units.saturating_mul(by_size(100, 100, 5_000));
        // Over HTTPS only: MQTT and AMQP deliveries are not receive requests.
        let c2d_receives = units.saturating_mul(by_size(1_000, 1_000, 50_000));
        let service = |path: &str, rate: Rate| {
            FaultRule::throttle(FaultOperation::HubService, rate).path(path)
        };
        vec![
            FaultRule::throttle(
                FaultOperation::HubConnect,
                per_second(connections_and_sends),
            ),
            FaultRule::throttle(
                FaultOperation::HubTelemetry,
                per_second(connections_and_sends),
            ),
            FaultRule::throttle(FaultOperation::HubTwinGet, per_second(twin_reads)),
            FaultRule::throttle(FaultOperation::HubTwinPatch, per_second(twin_updates)),
            FaultRule::throttle(FaultOperation::HubMethod, per_second(methods)),
            FaultRule::throttle(FaultOperation::HubC2dSend, per_minute(c2d_sends)),
            FaultRule::throttle(FaultOperation::HubC2d, per_minute(c2d_receives)),
            service("/devices/query*", per_minute(queries)),
            service("/jobs*", per_minute(registry_and_jobs)),
            service("/configurations*", per_minute(configurations)),
            service("/devices*", per_minute(registry_and_jobs)),
            FaultRule::throttle(FaultOperation::DpsRegister, per_minute(1_000)),
            FaultRule::throttle(FaultOperation::DpsPoll, Rate::new(5, 10).each()),
            FaultRule::throttle(FaultOperation::DpsService, per_minute(1_000)),
        ]
    }
}

impl FromStr for AzureThrottles {
    type Err = String;

    fn from_str(text: &str) -> Result<AzureThrottles, String> {
        let (tier, units) = match text.split_once(':') {
            Some((tier, units)) => (
                tier,
                units
                    .parse::<u32>()
                    .map_err(|_| format!("units must be a number, not '{units}'"))?,
            ),
            None => (text, 1),
        };
        let known = Tier::ALL.map(Tier::name).join(", ");
        let tier = Tier::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(tier))
            .ok_or_else(|| format!("unknown tier '{tier}' (one of {known}, then :units)"))?;
        AzureThrottles::new(tier, units)
    }
}

impl fmt::Display for AzureThrottles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.tier.name(), self.units)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn rate_of(rules: &[FaultRule], operation: FaultOperation) -> Value {
        let rule = rules.iter().find(|r| r.operation() == operation).unwrap();
        rule.to_json()["rate"].clone()
    }

    #[test]
    fn tiers_and_units_parse_and_bad_ones_are_refused() {
        assert_eq!(
            "S1".parse::<AzureThrottles>().unwrap(),
            AzureThrottles::new(Tier::S1, 1).unwrap()
        );
        assert_eq!(
            "s2:4".parse::<AzureThrottles>().unwrap().to_string(),
            "S2:4"
        );
        for bad in ["S4", "S1:0", "S1:201", "F1:2", "S1:x", ""] {
            assert!(bad.parse::<AzureThrottles>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_numbers_follow_azures_table() {
        let s1 = AzureThrottles::new(Tier::S1, 1).unwrap().rules();
        // S1: the higher of 100/s and 12/s/unit.
        assert_eq!(
            rate_of(&s1, FaultOperation::HubTelemetry),
            json!({"limit": 6_000, "seconds": 60})
        );
        let s1_nine = AzureThrottles::new(Tier::S1, 9).unwrap().rules();
        assert_eq!(
            rate_of(&s1_nine, FaultOperation::HubConnect),
            json!({"limit": 108 * 60, "seconds": 60})
        );
        let s3 = AzureThrottles::new(Tier::S3, 2).unwrap().rules();
        assert_eq!(
            rate_of(&s3, FaultOperation::HubTwinPatch),
            json!({"limit": 500 * 60, "seconds": 60})
        );
        assert_eq!(
            rate_of(&s1, FaultOperation::DpsPoll),
            json!({"limit": 5, "seconds": 10, "each": true})
        );
        // C2D: 100 sends/min/unit and 1,000 HTTPS receives/min/unit (S1, S2), 5,000 and
        // 50,000 (S3).
        assert_eq!(
            rate_of(&s1_nine, FaultOperation::HubC2dSend),
            json!({"limit": 900, "seconds": 60})
        );
        assert_eq!(
            rate_of(&s3, FaultOperation::HubC2d),
            json!({"limit": 100_000, "seconds": 60})
        );
        for rule in s1.iter().chain(&s1_nine).chain(&s3) {
            rule.validate().unwrap();
        }
    }

    #[test]
    fn queries_are_matched_before_the_registry() {
        let rules = AzureThrottles::new(Tier::S1, 1).unwrap().rules();
        let paths: Vec<_> = rules
            .iter()
            .filter(|r| r.operation() == FaultOperation::HubService)
            .map(|r| r.to_json()["path"].as_str().unwrap().to_owned())
            .collect();
        let query = paths.iter().position(|p| p == "/devices/query*").unwrap();
        let registry = paths.iter().position(|p| p == "/devices*").unwrap();
        assert!(query < registry, "{paths:?}");
    }
}
