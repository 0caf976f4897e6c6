//! Time, injected. Services read "now" from the [`Clock`] in the app state,
//! never from the wall directly, so tests step over a window of time
//! instead of sleeping through it.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// A duration in whole milliseconds (the unit of stored times), saturating.
pub fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// Where "now" comes from.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Milliseconds since the Unix epoch, the unit every stored time uses.
    fn now_millis(&self) -> i64;

    /// Whole seconds since the Unix epoch (JWT `iat`, `exp`, `nbf`).
    fn now_secs(&self) -> i64 {
        self.now_millis().div_euclid(1000)
    }
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_millis(&self) -> i64 {
        chrono::Utc::now().timestamp_millis()
    }
}

/// The wall clock moved ahead by an offset that only grows: time passes as
/// usual, and [`SteppedClock::advance`] jumps over a window at once; or,
/// once [`SteppedClock::freeze`]d, time moves only when advanced. For
/// tests; production uses [`SystemClock`].
#[derive(Debug, Default)]
pub struct SteppedClock {
    offset_millis: AtomicI64,
    /// The wall time it stopped at (ms); 0 while it runs.
    frozen_at: AtomicI64,
}

impl SteppedClock {
    /// Stops the wall's part of the clock: from now on only
    /// [`SteppedClock::advance`] moves it, so a test can compare times to
    /// the millisecond.
    pub fn freeze(&self) {
        self.frozen_at
            .store(SystemClock.now_millis(), Ordering::Relaxed);
    }

    /// Moves the clock `by` ahead.
    pub fn advance(&self, by: Duration) {
        self.offset_millis.fetch_add(millis(by), Ordering::Relaxed);
    }
}

impl Clock for SteppedClock {
    fn now_millis(&self) -> i64 {
        let wall = match self.frozen_at.load(Ordering::Relaxed) {
            0 => SystemClock.now_millis(),
            frozen => frozen,
        };
        wall.saturating_add(self.offset_millis.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stepped_clock_moves_ahead_by_what_it_was_advanced() {
        let clock = SteppedClock::default();
        let before = SystemClock.now_millis();
        clock.advance(Duration::from_secs(15));
        let after = clock.now_millis();
        assert!(after >= before + 15_000, "{after} vs {before}");
        assert!(after < before + 16_000, "{after} vs {before}");
        assert_eq!(Clock::now_secs(&clock), after.div_euclid(1000));
    }

    #[test]
    fn a_frozen_clock_moves_only_when_advanced() {
        let clock = SteppedClock::default();
        clock.freeze();
        let before = clock.now_millis();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(clock.now_millis(), before);
        clock.advance(Duration::from_secs(2));
        assert_eq!(clock.now_millis(), before + 2_000);
    }
}
