//! Backing off accept errors that are about the process rather than one connection — out of
//! file descriptors (`EMFILE`, `ENFILE`), out of memory: 5 ms doubling to 1 s, not spun on,
//! and logged once per burst.

use std::io;
use std::time::Duration;

use tokio::time::Instant;

/// The first and longest pause after an accept error that is not about one connection.
const FIRST_BACKOFF: Duration = Duration::from_millis(5);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Errors about the connection being accepted (it was reset while queued), not about the
/// process: the next accept may well succeed at once.
pub(super) fn is_about_one_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

/// Exponential backoff over a burst of accept failures, logging its start and end once.
#[derive(Debug, Default)]
pub(super) struct Backoff {
    /// Failures in the current burst; 0 when accepting works.
    failures: u64,
    since: Option<Instant>,
    next: Duration,
}

impl Backoff {
    pub(super) fn failed(&mut self, kind: &'static str, e: &io::Error) -> Duration {
        if self.failures == 0 {
            tracing::warn!(
                listener = kind,
                error = %e,
                "accept failed; backing off until it works again (out of file descriptors? raise `ulimit -n` or lower the connection limits)"
            );
            self.since = Some(Instant::now());
            self.next = FIRST_BACKOFF;
        }
        self.failures = self.failures.saturating_add(1);
        let pause = self.next;
        self.next = (self.next * 2).min(MAX_BACKOFF);
        pause
    }

    pub(super) fn succeeded(&mut self, kind: &'static str) {
        if self.failures > 0 {
            let failed_for = self.since.map(|s| s.elapsed()).unwrap_or_default();
            tracing::info!(
                listener = kind,
                failures = self.failures,
                failed_for_ms = failed_for.as_millis() as u64,
                "accepting again after a burst of accept failures"
            );
            self.failures = 0;
            self.since = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_ceiling_and_resets_after_a_success() {
        let mut backoff = Backoff::default();
        let error = io::Error::other("Too many open files");
        let pauses: Vec<Duration> = (0..12).map(|_| backoff.failed("test", &error)).collect();
        assert_eq!(pauses[0], FIRST_BACKOFF);
        assert_eq!(pauses[1], FIRST_BACKOFF * 2);
        assert_eq!(pauses.last(), Some(&MAX_BACKOFF));
        assert!(pauses.windows(2).all(|w| w[0] <= w[1]));
        backoff.succeeded("test");
        assert_eq!(backoff.failed("test", &error), FIRST_BACKOFF);
    }

    #[test]
    fn reset_connections_are_not_backed_off_but_descriptor_exhaustion_is() {
        assert!(is_about_one_connection(&io::Error::from(
            io::ErrorKind::ConnectionAborted
        )));
        // EMFILE (24) and ENFILE (23) on Linux.
        assert!(!is_about_one_connection(&io::Error::from_raw_os_error(24)));
        assert!(!is_about_one_connection(&io::Error::from_raw_os_error(23)));
    }
}
