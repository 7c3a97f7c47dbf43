//! Reconnect rules: the [`ReconnectPolicy`] (exponential backoff with jitter, capped), and
//! which failures are worth retrying at all.
//!
//! Retried: network and TLS transport errors, timeouts, the server closing the connection,
//! and CONNACK 3 ("server unavailable", which IoT Hub and iotemu send for a *disabled*
//! device — someone may enable it again, so the client keeps trying at the capped delay).
//! Not retried, because trying again cannot help: CONNACK 1, 2, 4 and 5 (protocol, client id,
//! bad credentials, not authorized — e.g. a wrong key or a deleted device), reserved codes,
//! and a server certificate the client does not trust.

use std::time::Duration;

use super::state::DisconnectReason;
use crate::mqtt::MqttError;
use crate::tls::TlsError;

/// When and how often a hub client reconnects after losing its connection.
///
/// Attempt *n* (1, 2, …) waits a random time between 50 % and 100 % of
/// `min(max_delay, initial_delay × 2^(n−1))` — jitter spreads a fleet that lost the hub at
/// the same moment. A SAS renewal's first attempt does not wait. After a successful
/// reconnect the count starts again at 1.
///
/// ```
/// use std::time::Duration;
/// use iotemu_device::ReconnectPolicy;
///
/// let patient = ReconnectPolicy::default()          // 1 s, doubling, capped at 60 s, forever
///     .initial_delay(Duration::from_millis(500))
///     .max_delay(Duration::from_secs(30))
///     .max_attempts(20);                            // then stop with the last error
/// let never = ReconnectPolicy::disabled();          // the first loss closes the client
/// # let _ = (patient, never);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconnectPolicy {
    enabled: bool,
    initial_delay: Duration,
    max_delay: Duration,
    max_attempts: Option<u32>,
}

impl Default for ReconnectPolicy {
    /// Reconnect forever, from 1 s doubling up to 60 s.
    fn default() -> Self {
        Self {
            enabled: true,
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
            max_attempts: None,
        }
    }
}

impl ReconnectPolicy {
    /// Never reconnect: a lost connection closes the client (SAS renewal still happens).
    pub fn disabled() -> Self {
        Self {
            enabled: false,
            ..Self::default()
        }
    }

    /// Backoff before the first attempt (default 1 s).
    pub fn initial_delay(mut self, delay: Duration) -> Self {
        self.initial_delay = delay;
        self
    }

    /// Cap on the backoff (default 60 s).
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// Give up after this many failed attempts in a row (default: never give up).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = Some(attempts);
        self
    }

    pub(crate) fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// True when `attempts` failed attempts in a row exhaust the policy.
    pub(crate) fn exhausted(&self, attempts: u32) -> bool {
        !self.enabled || self.max_attempts.is_some_and(|max| attempts >= max)
    }

    /// The wait before attempt `attempt` (1-based); `random` supplies the jitter.
    pub(crate) fn delay(&self, attempt: u32, random: u64) -> Duration {
        let doublings = attempt.saturating_sub(1).min(31);
        let base = self
            .initial_delay
            .saturating_mul(1u32 << doublings)
            .min(self.max_delay);
        let half = base / 2;
        let spread = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        half + Duration::from_nanos(random % spread.saturating_add(1))
    }
}

/// Randomness for the jitter, from the operating system via uuid's v4 generator.
pub(crate) fn jitter_seed() -> u64 {
    uuid::Uuid::new_v4().as_u64_pair().0
}

/// What a failed connection attempt means for the reconnect loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// Worth another attempt after the backoff.
    Retry(DisconnectReason),
    /// Stop: trying again cannot succeed.
    Fatal(DisconnectReason),
}

/// Sorts a connection error into retry-or-stop (see the module docs for the rules).
pub(crate) fn classify(error: &MqttError) -> Failure {
    match error {
        MqttError::ConnectionRefused(3) => Failure::Retry(DisconnectReason::Refused(3)),
        MqttError::ConnectionRefused(code) => Failure::Fatal(DisconnectReason::Refused(*code)),
        MqttError::Tls(TlsError::Handshake(rustls::Error::InvalidCertificate(cause))) => {
            Failure::Fatal(DisconnectReason::Tls(format!("{cause:?}")))
        }
        MqttError::Tls(
            error @ (TlsError::InvalidServerName(_)
            | TlsError::Config(_)
            | TlsError::InvalidPem(_)
            | TlsError::NoCertificates),
        ) => Failure::Fatal(DisconnectReason::Tls(error.to_string())),
        // A proxy or server that refuses the upgrade outright will not change its mind.
        MqttError::WebSocketStatus(status)
            if (400..500).contains(status) && !matches!(status, 408 | 429) =>
        {
            Failure::Fatal(DisconnectReason::ConnectionLost(error.to_string()))
        }
        other => Failure::Retry(DisconnectReason::ConnectionLost(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn delays_double_up_to_the_cap_with_jitter_in_the_upper_half() {
        let policy = ReconnectPolicy::default()
            .initial_delay(Duration::from_millis(100))
            .max_delay(Duration::from_millis(1000));
        let bounds = |attempt| {
            (
                policy.delay(attempt, 0),
                policy.delay(attempt, u64::MAX - 1),
            )
        };
        assert_eq!(policy.delay(1, 0), Duration::from_millis(50));
        assert_eq!(bounds(2).0, Duration::from_millis(100));
        assert_eq!(bounds(4).0, Duration::from_millis(400));
        // 100 · 2^4 = 1600 > 1000: capped.
        assert_eq!(bounds(5).0, Duration::from_millis(500));
        assert!(bounds(5).1 <= Duration::from_millis(1000));
        assert_eq!(bounds(1000).0, Duration::from_millis(500));
    }

    #[test]
    fn attempts_are_limited_only_when_asked() {
        assert!(!ReconnectPolicy::default().exhausted(1_000_000));
        assert!(ReconnectPolicy::default().max_attempts(3).exhausted(3));
        assert!(!ReconnectPolicy::default().max_attempts(3).exhausted(2));
        assert!(ReconnectPolicy::disabled().exhausted(0));
    }

    #[test]
    fn refusals_other_than_disabled_are_fatal() {
        assert_eq!(
            classify(&MqttError::ConnectionRefused(3)),
            Failure::Retry(DisconnectReason::Refused(3))
        );
        for code in [1, 2, 4, 5, 0x86] {
            assert_eq!(
                classify(&MqttError::ConnectionRefused(code)),
                Failure::Fatal(DisconnectReason::Refused(code))
            );
        }
    }

    #[test]
    fn transport_trouble_is_retried_but_untrusted_servers_are_not() {
        for error in [
            MqttError::Disconnected,
            MqttError::Timeout,
            MqttError::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
            MqttError::WebSocketStatus(503),
            MqttError::WebSocketStatus(429),
        ] {
            assert!(matches!(classify(&error), Failure::Retry(_)), "{error}");
        }
        let untrusted = MqttError::Tls(TlsError::Handshake(rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer,
        )));
        assert!(matches!(
            classify(&untrusted),
            Failure::Fatal(DisconnectReason::Tls(_))
        ));
        assert!(matches!(
            classify(&MqttError::WebSocketStatus(404)),
            Failure::Fatal(_)
        ));
    }

    proptest! {
        #[test]
        fn delay_never_exceeds_the_cap_nor_panics(
            attempt in any::<u32>(),
            random in any::<u64>(),
            initial_ms in 0u64..100_000,
            max_ms in 0u64..1_000_000,
        ) {
            let policy = ReconnectPolicy::default()
                .initial_delay(Duration::from_millis(initial_ms))
                .max_delay(Duration::from_millis(max_ms));
            prop_assert!(policy.delay(attempt, random) <= Duration::from_millis(max_ms));
        }
    }
}
