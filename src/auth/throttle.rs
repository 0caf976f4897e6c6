//! Throttling password guesses, per account and address, per account, and
//! per client address.
//!
//! - **Per account and address.** The first few failures are free; then
//!   each failure blocks that account *from that address* for a backoff
//!   that doubles up to a cap. An attacker at one address therefore cannot
//!   lock the owner out: the owner, elsewhere, logs in at once.
//! - **Per account, from everywhere.** Only the free failures of each
//!   address count here, so one address adds at most a few; past a larger
//!   allowance (guessing spread over many addresses) the account is backed
//!   off for everyone, which slows that guessing as much as the first.
//! - **Per client address.** Many failures (across any accounts) within a
//!   window block the address until the window ends, against credential
//!   stuffing.
//!
//! An attempt is counted *before* its password is checked, by a write the
//! database decides ([`Store::swap_throttle_row`]), and a success takes
//! its count back: so parallel guesses cannot all pass one check before
//! any of them is counted, on one instance or many. Attempts while blocked
//! are refused without checking the password and without counting, so an
//! attacker cannot push a block beyond the cap: a real user always gets a
//! turn again. Unknown usernames are throttled exactly like real ones, so
//! the answers reveal nothing about which accounts exist.

use std::net::IpAddr;
use std::time::Duration;

use crate::clock::UnixMillis;
use crate::ids::TokenHash;
use crate::store::{Store, ThrottleRow};

/// How failed logins are throttled.
#[derive(Debug, Clone, Copy)]
pub struct ThrottlePolicy {
    /// Consecutive failures an account may have from one address before
    /// backoff starts there.
    pub account_free_failures: u32,
    /// The first block; each further failure doubles it.
    pub account_backoff: Duration,
    /// The longest block of an account.
    pub account_backoff_cap: Duration,
    /// Failures an account's counters remember for.
    pub account_window: Duration,
    /// Failures an account may have from all addresses together (each
    /// address adding at most its free ones) before it is backed off for
    /// everyone.
    pub account_spread_free_failures: u32,
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
            account_spread_free_failures: 50,
            address_max_failures: 100,
            address_window: Duration::from_secs(10 * 60),
        }
    }
}

/// The throttle keys of one attempt to prove an account's password. Each
/// is of bounded length whatever the username: the account's part is a
/// hash of its case-insensitive key.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// The account from this address.
    pair: String,
    /// The account from everywhere.
    account: String,
    /// The address, if known.
    address: Option<String>,
}

impl Attempt {
    pub fn new(username: &str, address: Option<&str>) -> Self {
        // The account is its case-insensitive key: `Alice` and `alice` share a counter.
        let account = super::username::UsernameKey::of(username);
        let group = address.map(address_group);
        let pair = format!("{account}\0{}", group.as_deref().unwrap_or(""));
        Self {
            pair: format!("pair:{}", TokenHash::of(&pair)),
            account: format!("account:{}", TokenHash::of(account.as_str())),
            address: group.map(|group| format!("ip:{group}")),
        }
    }

    /// An attempt to prove the second factor of the account `user_id`:
    /// counters of their own for the account (from this address, and from
    /// everywhere), with the same limits as passwords; the address's
    /// counter is the one password guesses share.
    pub fn second_factor(user_id: &str, address: Option<&str>) -> Self {
        let group = address.map(address_group);
        let pair = format!("{user_id}\0{}", group.as_deref().unwrap_or(""));
        Self {
            pair: format!("mfa-pair:{}", TokenHash::of(&pair)),
            account: format!("mfa-account:{}", TokenHash::of(user_id)),
            address: group.map(|group| format!("ip:{group}")),
        }
    }

    fn keys(&self) -> Vec<&str> {
        [self.pair.as_str(), self.account.as_str()]
            .into_iter()
            .chain(self.address.as_deref())
            .collect()
    }
}

/// What an address is throttled as: an IPv4 address itself, an IPv6
/// address by its /64 (one subscriber's prefix), anything else as given.
fn address_group(address: &str) -> String {
    match address.parse::<IpAddr>().map(|ip| ip.to_canonical()) {
        Ok(IpAddr::V4(ip)) => ip.to_string(),
        Ok(IpAddr::V6(ip)) => {
            let prefix = u128::from(ip) & !((1u128 << 64) - 1);
            format!("{}/64", std::net::Ipv6Addr::from(prefix))
        }
        Err(_) => address.chars().take(64).collect(),
    }
}

/// An attempt that was let through: its counts, taken back on success.
#[derive(Debug)]
pub struct Admitted {
    attempt: Attempt,
}

/// Claims of one counter that lose to other instances this often in a row
/// are answered as blocked for a second rather than spun on.
const MAX_SWAPS: usize = 16;

impl ThrottlePolicy {
    /// The longer of the two windows: counters older than it count nothing.
    pub fn longest_window(&self) -> std::time::Duration {
        self.account_window.max(self.address_window)
    }

    /// Counts `attempt` before its password is checked; `Err(seconds)` to
    /// wait if it is blocked at `now` (ms), in which case nothing is counted.
    pub async fn admit(
        &self,
        store: &Store,
        attempt: &Attempt,
        now: UnixMillis,
    ) -> Result<Result<Admitted, u64>, sqlx::Error> {
        let rows = store.throttle_rows(&attempt.keys()).await?;
        let blocked = rows
            .iter()
            .filter_map(|(_, row)| row.blocked_until)
            .filter(|until| *until > now)
            .max();
        if let Some(until) = blocked {
            return Ok(Err(seconds_until(until, now)));
        }
        let row_of = |key: &str| rows.iter().find(|(k, _)| k == key).map(|(_, row)| *row);
        let free = i64::from(self.account_free_failures);
        let pair = match self
            .claim(store, &attempt.pair, row_of(&attempt.pair), now, free)
            .await?
        {
            Ok(failures) => failures,
            Err(wait) => return Ok(Err(wait)),
        };
        // An address's guesses past its free ones count only against it.
        if pair <= free {
            let spread = i64::from(self.account_spread_free_failures);
            let claimed = self
                .claim(
                    store,
                    &attempt.account,
                    row_of(&attempt.account),
                    now,
                    spread,
                )
                .await?;
            if let Err(wait) = claimed {
                return Ok(Err(wait));
            }
        }
        Ok(Ok(Admitted {
            attempt: attempt.clone(),
        }))
    }

    /// Counts one attempt on `key` (last read as `row`), blocking it ahead
    /// of the check past `free` failures; the failures counted, or the
    /// seconds to wait if it turned out blocked.
    async fn claim(
        &self,
        store: &Store,
        key: &str,
        mut row: Option<ThrottleRow>,
        now: UnixMillis,
        free: i64,
    ) -> Result<Result<i64, u64>, sqlx::Error> {
        for _ in 0..MAX_SWAPS {
            if let Some(until) = row.and_then(|r| r.blocked_until).filter(|u| *u > now) {
                return Ok(Err(seconds_until(until, now)));
            }
            let next = self.counted(row.as_ref(), now, free);
            if store.swap_throttle_row(key, row.as_ref(), &next).await? {
                return Ok(Ok(next.failures));
            }
            row = store.throttle_rows(&[key]).await?.pop().map(|(_, row)| row);
        }
        Ok(Err(1))
    }

    /// `row` with one more attempt counted at `now`, blocked for the
    /// backoff that a failure of it earns.
    fn counted(&self, row: Option<&ThrottleRow>, now: UnixMillis, free: i64) -> ThrottleRow {
        let (failures, window_start) = match row {
            Some(row) if row.window_start >= now - self.account_window => {
                (row.failures + 1, row.window_start)
            }
            _ => (1, now),
        };
        ThrottleRow {
            failures,
            window_start,
            blocked_until: self.backoff(failures - free).map(|block| now + block),
        }
    }

    /// The attempt failed: it stays counted, and its address counts it.
    pub async fn failed(
        &self,
        store: &Store,
        admitted: Admitted,
        now: UnixMillis,
    ) -> Result<(), sqlx::Error> {
        if let Some(address) = &admitted.attempt.address {
            let window = self.address_window;
            let failures = store.record_failure(address, window, now).await?;
            if failures >= i64::from(self.address_max_failures) {
                store.block(address, now + window).await?;
            }
        }
        Ok(())
    }

    /// The attempt succeeded: the account's counters are cleared (not the
    /// address's).
    pub async fn succeeded(&self, store: &Store, admitted: Admitted) -> Result<(), sqlx::Error> {
        let attempt = &admitted.attempt;
        store
            .clear_failures(&[attempt.pair.as_str(), attempt.account.as_str()])
            .await
    }

    /// Counts one request for mail (a password reset) from `address`, on a
    /// counter of its own with the per-address limits: past them within
    /// the window, `Err(seconds)` until it ends.
    pub async fn admit_mail_request(
        &self,
        store: &Store,
        address: Option<&str>,
        now: UnixMillis,
    ) -> Result<Result<(), u64>, sqlx::Error> {
        let Some(address) = address else {
            return Ok(Ok(()));
        };
        let key = format!("mail:{}", address_group(address));
        let rows = store.throttle_rows(&[key.as_str()]).await?;
        let blocked = rows
            .iter()
            .filter_map(|(_, row)| row.blocked_until)
            .find(|until| *until > now);
        if let Some(until) = blocked {
            return Ok(Err(seconds_until(until, now)));
        }
        let window = self.address_window;
        let requests = store.record_failure(&key, window, now).await?;
        if requests >= i64::from(self.address_max_failures) {
            store.block(&key, now + window).await?;
        }
        Ok(Ok(()))
    }

    /// Clears the account's failed-login counters, everywhere and from
    /// `address` (a password reset proved the owner).
    pub async fn forgive(
        &self,
        store: &Store,
        username: &str,
        address: Option<&str>,
    ) -> Result<(), sqlx::Error> {
        let attempt = Attempt::new(username, address);
        store
            .clear_failures(&[attempt.pair.as_str(), attempt.account.as_str()])
            .await
    }

    /// The block earned by the `over`-th failure past the free ones.
    fn backoff(&self, over: i64) -> Option<Duration> {
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

/// Whole seconds from `now` to `until`, at least one (`Retry-After`).
fn seconds_until(until: UnixMillis, now: UnixMillis) -> u64 {
    let millis = u64::try_from(until.since(now).as_millis()).unwrap_or(u64::MAX);
    millis.div_ceil(1000).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_from_the_first_failure_past_the_free_ones_up_to_the_cap() {
        let policy = ThrottlePolicy::default();
        let free = 5;
        let blocks: Vec<_> = (1..=16)
            .map(|failures| policy.backoff(failures - free))
            .collect();
        assert!(blocks[..5].iter().all(Option::is_none));
        assert_eq!(blocks[5], Some(Duration::from_secs(1)));
        assert_eq!(blocks[6], Some(Duration::from_secs(2)));
        assert_eq!(blocks[9], Some(Duration::from_secs(16)));
        assert_eq!(blocks[15], Some(Duration::from_secs(15 * 60)));
        assert_eq!(policy.backoff(10_000), Some(Duration::from_secs(15 * 60)));
    }

    #[test]
    fn ipv6_addresses_are_grouped_by_their_64_bit_prefix() {
        assert_eq!(address_group("203.0.113.7"), "203.0.113.7");
        assert_eq!(address_group("::ffff:203.0.113.7"), "203.0.113.7");
        assert_eq!(
            address_group("2001:db8:1:2:aaaa::1"),
            address_group("2001:db8:1:2:bbbb:cccc:dddd:eeee")
        );
        assert_eq!(address_group("2001:db8:1:2::5"), "2001:db8:1:2::/64");
        assert_ne!(
            address_group("2001:db8:1:2::1"),
            address_group("2001:db8:1:3::1")
        );
    }

    #[test]
    fn every_key_is_short_whatever_the_username() {
        // NFKC makes `ﬀ` two characters and `⒇` four.
        for name in ["ﬀ".repeat(64), "⒇".repeat(64), "a".repeat(10_000)] {
            let attempt = Attempt::new(&name, Some("2001:db8::1"));
            assert!(attempt.keys().iter().all(|key| key.len() <= 128));
        }
    }
}
