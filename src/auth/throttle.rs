//! Throttling failed logins, per account and per client address.
//!
//! Per account: the first few failures are free; then each failure blocks
//! the account for a backoff that doubles up to a cap. Attempts while blocked
//! are refused without checking the password and without counting, so an
//! attacker cannot push a block beyond the cap: a real user always gets a
//! turn again. A successful login clears the account's failures.
//!
//! Per client address: many failures (across any accounts) within a window
//! block the address until the window ends, against credential stuffing.
//!
//! The counters live in the database, so every instance enforces the same
//! limits. Unknown usernames are throttled exactly like real ones, so the
//! answers reveal nothing about which accounts exist.

use std::time::Duration;

use super::username::MAX_USERNAME_CHARS;
use crate::clock::millis;
use crate::store::Store;

/// How failed logins are throttled.
#[derive(Debug, Clone, Copy)]
pub struct ThrottlePolicy {
    /// Consecutive failures an account may have before backoff starts.
    pub account_free_failures: u32,
    /// The first block; each further failure doubles it.
    pub account_backoff: Duration,
    /// The longest block of an account.
    pub account_backoff_cap: Duration,
    /// Failures an account's counter remembers for.
    pub account_window: Duration,
    /// Failures per client address within `address_window` before it is blocked.
    pub address_max_failures: u32,
    pub address_window: Duration,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        Self {
            account_free_failures: 5,
            account_backoff: Duration::from_secs(1),
            account_backoff_cap: Duration::from_secs(15 * 60),
            account_window: Duration::from_secs(24 * 3600),
            address_max_failures: 100,
            address_window: Duration::from_secs(10 * 60),
        }
    }
}

/// The throttle keys of one login attempt.
#[derive(Debug, Clone)]
pub struct Attempt {
    account: String,
    address: Option<String>,
}

impl Attempt {
    pub fn new(username: &str, address: Option<&str>) -> Self {
        // The account is its case-insensitive key: `Alice` and `alice` share a counter.
        let username: String = username.chars().take(MAX_USERNAME_CHARS).collect();
        let username = super::username::UsernameKey::of(&username);
        Self {
            account: format!("account:{username}"),
            address: address.map(|ip| format!("ip:{ip}")),
        }
    }

    fn keys(&self) -> Vec<&str> {
        std::iter::once(self.account.as_str())
            .chain(self.address.as_deref())
            .collect()
    }
}

impl ThrottlePolicy {
    /// The longer of the two windows: counters older than it count nothing.
    pub fn longest_window(&self) -> std::time::Duration {
        self.account_window.max(self.address_window)
    }

    /// `Some(seconds)` to wait if the attempt is blocked at `now` (ms).
    pub async fn retry_after(
        &self,
        store: &Store,
        attempt: &Attempt,
        now: i64,
    ) -> Result<Option<u64>, sqlx::Error> {
        let until = store.blocked_until(&attempt.keys()).await?;
        Ok(until
            .filter(|until| *until > now)
            .map(|until| ((until - now) as u64).div_ceil(1000)))
    }

    /// Counts a failed attempt and blocks what has failed too often.
    pub async fn failed(
        &self,
        store: &Store,
        attempt: &Attempt,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        let failures = store
            .record_failure(&attempt.account, millis(self.account_window), now)
            .await?;
        if let Some(block) = self.account_block(failures) {
            store
                .block(&attempt.account, now.saturating_add(millis(block)))
                .await?;
        }
        if let Some(address) = &attempt.address {
            let window = millis(self.address_window);
            let failures = store.record_failure(address, window, now).await?;
            if failures >= i64::from(self.address_max_failures) {
                store.block(address, now.saturating_add(window)).await?;
            }
        }
        Ok(())
    }

    /// A successful login clears the account's failures (not the address's).
    pub async fn succeeded(&self, store: &Store, attempt: &Attempt) -> Result<(), sqlx::Error> {
        store.clear_failures(&attempt.account).await
    }

    /// How long an account with `failures` is blocked after the latest one.
    fn account_block(&self, failures: i64) -> Option<Duration> {
        let over = failures - i64::from(self.account_free_failures);
        if over <= 0 {
            return None;
        }
        let doublings = u32::try_from(over - 1).unwrap_or(u32::MAX).min(30);
        Some(
            self.account_backoff
                .saturating_mul(1 << doublings)
                .min(self.account_backoff_cap),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_account_backoff_doubles_from_the_sixth_failure_up_to_the_cap() {
        let policy = ThrottlePolicy::default();
        let blocks: Vec<_> = (1..=16)
            .map(|failures| policy.account_block(failures))
            .collect();
        assert!(blocks[..5].iter().all(Option::is_none));
        assert_eq!(blocks[5], Some(Duration::from_secs(1)));
        assert_eq!(blocks[6], Some(Duration::from_secs(2)));
        assert_eq!(blocks[9], Some(Duration::from_secs(16)));
        assert_eq!(blocks[15], Some(Duration::from_secs(15 * 60)));
        assert_eq!(
            policy.account_block(10_000),
            Some(Duration::from_secs(15 * 60))
        );
    }
}
