//! The one way Gatehouse waits before trying again what the database
//! aborted or what another instance holds: a pause drawn at random below a
//! cap that doubles from a first pause to a longest one ("full jitter"),
//! so that racers that collided once spread out instead of colliding again.

use std::time::Duration;

/// Pauses between attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The cap of the first pause.
    pub first: Duration,
    /// The cap never grows past this.
    pub max: Duration,
}

impl Backoff {
    /// After a transaction the database aborted (a deadlock, a lock wait,
    /// a cluster's certification failure, SQLite busy).
    pub const TRANSACTION: Self = Self {
        first: Duration::from_millis(2),
        max: Duration::from_millis(100),
    };

    /// The pause before the `attempt`-th retry (from 1): at random, above
    /// zero and at most the cap, which doubles with each attempt.
    pub fn pause(&self, attempt: u32) -> Duration {
        draw_up_to(self.cap(attempt))
    }

    /// [`Backoff::pause`] drawn from the upper half of the cap ("equal
    /// jitter"): never near zero, for retries of an outside service (an SMTP
    /// server that deferred) that a near-zero draw would hammer in the same
    /// breath.
    pub fn pause_from_half(&self, attempt: u32) -> Duration {
        let cap = self.cap(attempt);
        cap / 2 + draw_up_to(cap - cap / 2)
    }

    /// The cap of the `attempt`-th pause: `first`, doubled per attempt, at
    /// most `max`.
    fn cap(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(16);
        self.first.saturating_mul(1 << doublings).min(self.max)
    }
}

/// A pause drawn at random, above zero and at most `cap`.
fn draw_up_to(cap: Duration) -> Duration {
    let cap_micros = u64::try_from(cap.as_micros()).unwrap_or(u64::MAX).max(1);
    let mut draw = [0u8; 8];
    // Without the OS generator nothing secure can be issued anyway.
    getrandom::fill(&mut draw).expect("the operating system's random number generator failed");
    Duration::from_micros(1 + u64::from_le_bytes(draw) % cap_micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_stay_below_a_cap_that_doubles_to_the_maximum() {
        let backoff = Backoff::TRANSACTION;
        for attempt in 1..40 {
            let cap = backoff
                .first
                .saturating_mul(1 << (attempt - 1).min(16))
                .min(backoff.max);
            let pause = backoff.pause(attempt);
            assert!(
                pause > Duration::ZERO && pause <= cap,
                "{attempt}: {pause:?}"
            );
        }
        let draws: std::collections::HashSet<_> = (0..32).map(|_| backoff.pause(10)).collect();
        assert!(draws.len() > 1, "the pauses are drawn at random");
    }

    #[test]
    fn pauses_from_half_stay_in_the_upper_half_of_the_cap() {
        let backoff = Backoff {
            first: Duration::from_secs(5),
            max: Duration::from_secs(300),
        };
        for attempt in 1..20 {
            let cap = backoff.cap(attempt);
            for _ in 0..50 {
                let pause = backoff.pause_from_half(attempt);
                assert!(
                    pause >= cap / 2 && pause <= cap,
                    "{attempt}: {pause:?} of {cap:?}"
                );
            }
        }
    }
}
