//! The emulator's clock: the wall clock plus an offset a test moves forward
//! (`Emulator::advance`, `POST /time/advance`), so what takes an hour on a real hub — a C2D
//! message's time to live, a SAS token running out mid-session, a lock or method timeout, an
//! assignment delay — happens in milliseconds (docs/faults.md, "Time control").
//!
//! Advancing ages what the emulator holds: deadlines already set come closer by the step, and
//! time stamps and expiries set afterwards are in the moved clock. Credentials a client
//! presents are still judged by the wall clock, the client's own: a device or service SDK
//! computes a token's expiry from its clock, which did not move, and a hub whose clock ran
//! ahead would refuse every fresh token. A token's remaining life is taken when it is
//! presented and from then on ages with a second clock of this type, the credential clock
//! (`Hubs::credential_clock`), which an advance moves only when asked to: clients renew their
//! tokens by their own clocks, so an advance that aged every token would cut off every
//! client, the service under test included (docs/differences.md, "Time control").
//!
//! Keep-alive and idle timeouts stay in real time: they watch sockets, and advancing an hour
//! must not disconnect every client.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio::time::Instant;

/// The farthest the clock may be moved ahead in total: ten years, far beyond any Azure
/// timeout or expiry (C2D time to live is at most two days), and small enough that every
/// deadline and time stamp stays representable.
pub(crate) const MAX_OFFSET: Duration = Duration::from_secs(10 * 366 * 24 * 3600);

/// The emulator's clock, shared by every hub and the DPS; clones share the offset.
#[derive(Clone)]
pub struct Clock {
    inner: Arc<Inner>,
}

struct Inner {
    /// How far ahead of the wall clock, in nanoseconds (at most [`MAX_OFFSET`]).
    offset_nanos: AtomicU64,
    /// Sent the new offset on every advance, so timers waiting on this clock recompute.
    advanced: watch::Sender<Duration>,
}

impl Default for Clock {
    fn default() -> Self {
        Clock {
            inner: Arc::new(Inner {
                offset_nanos: AtomicU64::new(0),
                advanced: watch::Sender::new(Duration::ZERO),
            }),
        }
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clock")
            .field("offset", &self.offset())
            .finish()
    }
}

/// Why the clock was not moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClockError {
    /// The total offset would pass [`MAX_OFFSET`]; the clock is unchanged.
    TooFar { offset: Duration, step: Duration },
}

impl std::fmt::Display for ClockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClockError::TooFar { offset, step } => write!(
                f,
                "advancing {} s from an offset of {} s would pass the limit of {} s",
                step.as_secs(),
                offset.as_secs(),
                MAX_OFFSET.as_secs()
            ),
        }
    }
}

impl std::error::Error for ClockError {}

impl Clock {
    /// How far this clock runs ahead of the wall clock.
    pub fn offset(&self) -> Duration {
        Duration::from_nanos(self.inner.offset_nanos.load(Ordering::Acquire))
    }

    /// The emulator's time: the wall clock plus the offset.
    pub fn now(&self) -> SystemTime {
        let now = SystemTime::now();
        // The offset is bounded by MAX_OFFSET; a wall clock near the end of time keeps its
        // reading rather than panicking.
        now.checked_add(self.offset()).unwrap_or(now)
    }

    /// Moves the clock ahead by `step` and wakes every timer that waits on it. Returns the new
    /// offset; a step past [`MAX_OFFSET`] leaves the clock unchanged.
    pub fn advance(&self, step: Duration) -> Result<Duration, ClockError> {
        let mut offset = 0;
        let moved =
            self.inner
                .offset_nanos
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |current| {
                    offset = current;
                    let next = Duration::from_nanos(current)
                        .checked_add(step)
                        .filter(|next| *next <= MAX_OFFSET)?;
                    u64::try_from(next.as_nanos()).ok()
                });
        match moved {
            Ok(previous) => {
                let offset = Duration::from_nanos(previous).saturating_add(step);
                self.inner.advanced.send_replace(offset);
                Ok(offset)
            }
            Err(_) => Err(ClockError::TooFar {
                offset: Duration::from_nanos(offset),
                step,
            }),
        }
    }

    /// A receiver that sees every advance, for a loop that keeps its own timer (the MQTT
    /// session's). It starts with the current offset marked seen.
    pub(crate) fn subscribe(&self) -> watch::Receiver<Duration> {
        self.inner.advanced.subscribe()
    }

    /// A monotonic reading of this clock: `tokio::time::Instant::now()` plus the offset. Only
    /// for deadlines kept in this frame and compared with it again ([`Clock::real_instant`]).
    pub(crate) fn instant_now(&self) -> Instant {
        let now = Instant::now();
        now.checked_add(self.offset()).unwrap_or(now)
    }

    /// The real instant at which this clock reaches `deadline` (a reading of
    /// [`Clock::instant_now`] plus some time), as things stand now: an advance brings it
    /// closer.
    pub(crate) fn real_instant(&self, deadline: Instant) -> Instant {
        deadline
            .checked_sub(self.offset())
            .unwrap_or_else(Instant::now)
    }

    /// Waits until this clock has run `duration` (in real time or by advances). Cancel-safe.
    pub async fn sleep(&self, duration: Duration) {
        match self.instant_now().checked_add(duration) {
            Some(deadline) => self.sleep_until(deadline).await,
            // Beyond the clock: never.
            None => std::future::pending().await,
        }
    }

    /// Waits until [`Clock::instant_now`] reaches `deadline`. Cancel-safe.
    pub(crate) async fn sleep_until(&self, deadline: Instant) {
        let mut advanced = self.subscribe();
        loop {
            // Read after subscribing: an advance in between marks the receiver changed.
            let real = self.real_instant(deadline);
            if real <= Instant::now() {
                return;
            }
            tokio::select! {
                () = tokio::time::sleep_until(real) => {}
                // Cannot fail: `self` holds the sender.
                _ = advanced.changed() => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_runs_ahead_by_the_advanced_offset() {
        let clock = Clock::default();
        assert_eq!(clock.offset(), Duration::ZERO);
        assert_eq!(
            clock.advance(Duration::from_secs(3600)),
            Ok(Duration::from_secs(3600))
        );
        assert_eq!(
            clock.advance(Duration::from_secs(60)),
            Ok(Duration::from_secs(3660))
        );
        let ahead = clock
            .now()
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        assert!(ahead > Duration::from_secs(3650), "{ahead:?}");
        assert!(ahead <= Duration::from_secs(3660), "{ahead:?}");
        // Clones share the offset.
        assert_eq!(clock.clone().offset(), Duration::from_secs(3660));
    }

    #[test]
    fn a_step_past_the_limit_leaves_the_clock_unchanged() {
        let clock = Clock::default();
        clock.advance(Duration::from_secs(10)).unwrap();
        let err = clock.advance(MAX_OFFSET).unwrap_err();
        assert_eq!(
            err,
            ClockError::TooFar {
                offset: Duration::from_secs(10),
                step: MAX_OFFSET
            }
        );
        assert_eq!(clock.offset(), Duration::from_secs(10));
        assert!(clock.advance(Duration::MAX).is_err());
        assert_eq!(clock.offset(), Duration::from_secs(10));
        assert_eq!(
            clock.advance(MAX_OFFSET - Duration::from_secs(10)),
            Ok(MAX_OFFSET)
        );
    }

    #[tokio::test]
    async fn a_sleep_ends_when_the_clock_is_advanced_past_it() {
        let clock = Clock::default();
        let sleeper = tokio::spawn({
            let clock = clock.clone();
            async move { clock.sleep(Duration::from_secs(3600)).await }
        });
        tokio::task::yield_now().await;
        clock.advance(Duration::from_secs(1800)).unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!sleeper.is_finished(), "half the time has not ended it");
        clock.advance(Duration::from_secs(1800)).unwrap();
        tokio::time::timeout(Duration::from_secs(5), sleeper)
            .await
            .expect("the second advance ends the sleep")
            .unwrap();
    }

    #[tokio::test]
    async fn real_time_still_ends_a_sleep() {
        let clock = Clock::default();
        clock.advance(Duration::from_secs(5)).unwrap();
        tokio::time::timeout(
            Duration::from_secs(5),
            clock.sleep(Duration::from_millis(30)),
        )
        .await
        .expect("a short sleep ends by itself");
    }
}
