//! Time, injected. Services read "now" from the [`Clock`] in the app state,
//! never from the wall directly, so tests step over a window of time
//! instead of sleeping through it.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// A duration in whole milliseconds (the unit of stored times), saturating.
pub fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// A point in time: milliseconds since the Unix epoch (UTC), the unit of
/// every stored time. Serde and sqlx see the integer.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
    sqlx::Type,
)]
#[serde(transparent)]
#[sqlx(transparent)]
pub struct UnixMillis(i64);

impl UnixMillis {
    /// The epoch itself.
    pub const EPOCH: Self = Self(0);
    /// Before any other time (what is active forever activated then).
    pub const MIN: Self = Self(i64::MIN);

    /// `millis` milliseconds since the epoch.
    pub const fn from_millis(millis: i64) -> Self {
        Self(millis)
    }

    /// Milliseconds since the epoch.
    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// Whole seconds since the epoch (JWT `iat`, `exp`, `nbf`).
    pub const fn as_secs(self) -> i64 {
        self.0.div_euclid(1000)
    }

    /// As a date and time (the epoch if out of chrono's range).
    pub fn to_datetime(self) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::from_timestamp_millis(self.0).unwrap_or_default()
    }

    /// How long after `earlier` this is; zero if it is not after it.
    pub fn since(self, earlier: Self) -> Duration {
        Duration::from_millis(u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0))
    }
}

impl std::ops::Add<Duration> for UnixMillis {
    type Output = Self;

    /// Saturating: past the end of time is the end of time.
    fn add(self, duration: Duration) -> Self {
        Self(self.0.saturating_add(millis(duration)))
    }
}

impl std::ops::Sub<Duration> for UnixMillis {
    type Output = Self;

    fn sub(self, duration: Duration) -> Self {
        Self(self.0.saturating_sub(millis(duration)))
    }
}

impl std::fmt::Display for UnixMillis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Where "now" comes from.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The present, as every stored time counts it.
    fn now(&self) -> UnixMillis;
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> UnixMillis {
        UnixMillis(chrono::Utc::now().timestamp_millis())
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
            .store(SystemClock.now().as_millis(), Ordering::Relaxed);
    }

    /// Moves the clock `by` ahead.
    pub fn advance(&self, by: Duration) {
        self.offset_millis.fetch_add(millis(by), Ordering::Relaxed);
    }
}

impl Clock for SteppedClock {
    fn now(&self) -> UnixMillis {
        let wall = match self.frozen_at.load(Ordering::Relaxed) {
            0 => SystemClock.now().as_millis(),
            frozen => frozen,
        };
        UnixMillis(wall.saturating_add(self.offset_millis.load(Ordering::Relaxed)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stepped_clock_moves_ahead_by_what_it_was_advanced() {
        let clock = SteppedClock::default();
        let before = SystemClock.now();
        clock.advance(Duration::from_secs(15));
        let after = clock.now();
        assert!(
            after >= before + Duration::from_secs(15),
            "{after} vs {before}"
        );
        assert!(
            after < before + Duration::from_secs(16),
            "{after} vs {before}"
        );
        assert_eq!(after.as_secs(), after.as_millis().div_euclid(1000));
    }

    #[test]
    fn times_add_and_subtract_durations_saturating_and_measure_what_lies_between() {
        let t = UnixMillis::from_millis(10_000);
        assert_eq!((t + Duration::from_secs(5)).as_millis(), 15_000);
        assert_eq!((t - Duration::from_secs(5)).as_millis(), 5_000);
        assert_eq!((t + Duration::MAX).as_millis(), i64::MAX);
        assert_eq!(
            t.since(UnixMillis::from_millis(4_000)),
            Duration::from_secs(6)
        );
        assert_eq!(UnixMillis::EPOCH.since(t), Duration::ZERO);
        assert_eq!(UnixMillis::from_millis(-1).as_secs(), -1);
    }

    #[test]
    fn a_frozen_clock_moves_only_when_advanced() {
        let clock = SteppedClock::default();
        clock.freeze();
        let before = clock.now();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(clock.now(), before);
        clock.advance(Duration::from_secs(2));
        assert_eq!(clock.now(), before + Duration::from_secs(2));
    }
}
