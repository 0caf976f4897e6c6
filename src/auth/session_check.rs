//! Whether the session behind an access token is still live.
//!
//! Access tokens are stateless JWTs; revoking their session must still stop
//! them (ASVS 7.4.1). Protected operations therefore check the session, and
//! keep the answer briefly so the common path stays cheap: a live answer for
//! `ttl`, a dead one for good (revocation and expiry are final). Revocations
//! made through this instance update the cache at once; those made through
//! another instance are seen within `ttl`. The cache holds at most its
//! capacity of sessions and evicts the least useful ones past it (CLOCK-Pro
//! style, `quick_cache`), so a working set larger than it still mostly hits.
//! A live answer carries the session's account, read with it in one query.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::ids::SessionId;
use crate::store::{Account, Store};

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Live when checked, owned by this account as it was read in the
    /// given generation of account changes (`GET /users/me` answers from
    /// it while no account changed through this instance since).
    LiveAt(crate::clock::UnixMillis, Arc<Account>, u64),
    Dead,
}

/// Sessions are split into this many stripes, each counting the
/// revocations made through this instance in it.
const STRIPES: usize = 64;

/// The cached session check.
pub struct SessionCheck {
    ttl: Duration,
    cache: quick_cache::sync::Cache<SessionId, State>,
    /// Revocations per stripe: a database read is cached as live only if no
    /// revocation of its stripe came between its start and its caching, so
    /// a read that began before a revocation never writes "live" over it.
    revocations: [Mutex<u64>; STRIPES],
    stripe_hasher: std::collections::hash_map::RandomState,
    hits: AtomicU64,
    misses: AtomicU64,
    /// Bumped whenever an account changes through this instance (its
    /// address confirmed or changed): cached accounts read before are read
    /// again. Changes are rare; one counter for all keeps the check cheap.
    account_changes: AtomicU64,
}

/// A stripe's lock, whatever a panicking holder left (a counter).
fn lock(stripe: &Mutex<u64>) -> MutexGuard<'_, u64> {
    stripe
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl std::fmt::Debug for SessionCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionCheck")
            .field("ttl", &self.ttl)
            .field("cached", &self.cache.len())
            .finish()
    }
}

impl SessionCheck {
    /// Keeps at most `capacity` sessions; `ttl` zero checks the database on
    /// every request.
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            ttl,
            cache: quick_cache::sync::Cache::new(capacity.max(1)),
            revocations: std::array::from_fn(|_| Mutex::new(0)),
            stripe_hasher: Default::default(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            account_changes: AtomicU64::new(0),
        }
    }

    /// The account owning `session_id` if the session is live at `now` (ms)
    /// and the account enabled, from the cache or the store.
    pub async fn owner(
        &self,
        store: &Store,
        session_id: &SessionId,
        now: crate::clock::UnixMillis,
    ) -> Result<Option<Arc<Account>>, sqlx::Error> {
        match self.cache.get(session_id) {
            Some(State::Dead) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(None);
            }
            Some(State::LiveAt(checked, owner, generation))
                if now.since(checked) < self.ttl
                    && generation == self.account_changes.load(Ordering::Acquire) =>
            {
                self.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(Some(owner));
            }
            _ => {}
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        loop {
            let ticket = self.ticket(session_id);
            let generation = self.account_changes.load(Ordering::Acquire);
            let owner = store
                .live_session_owner(session_id, now)
                .await?
                .map(Arc::new);
            let state = match &owner {
                Some(owner) => State::LiveAt(now, owner.clone(), generation),
                None => State::Dead,
            };
            // A revocation came while reading: read again (it was committed
            // before it was counted, so the next read sees it).
            if self.remember_read(session_id, ticket, state) {
                return Ok(owner);
            }
        }
    }

    fn stripe(&self, session_id: &SessionId) -> &Mutex<u64> {
        use std::hash::BuildHasher as _;
        let hash = self.stripe_hasher.hash_one(session_id);
        &self.revocations[(hash % STRIPES as u64) as usize]
    }

    /// Taken before a database read of `session_id`.
    fn ticket(&self, session_id: &SessionId) -> u64 {
        *lock(self.stripe(session_id))
    }

    /// Caches what a read that took `ticket` found, unless a revocation
    /// in its stripe came since; whether it did.
    fn remember_read(&self, session_id: &SessionId, ticket: u64, state: State) -> bool {
        let revocations = lock(self.stripe(session_id));
        if *revocations != ticket {
            return false;
        }
        self.remember(session_id, state);
        true
    }

    /// Sessions whose state is cached now.
    pub fn cached(&self) -> usize {
        self.cache.len()
    }

    /// Checks answered from the cache and from the database.
    pub fn stats(&self) -> crate::metrics::CacheStats {
        crate::metrics::CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
        }
    }

    /// Records that an account changed through this instance: every
    /// cached account is read again on its next check.
    pub fn account_changed(&self) {
        self.account_changes.fetch_add(1, Ordering::AcqRel);
    }

    /// Records that this instance revoked `session_id` (after the store
    /// committed it).
    pub fn revoked(&self, session_id: &SessionId) {
        let mut revocations = lock(self.stripe(session_id));
        *revocations += 1;
        self.remember(session_id, State::Dead);
    }

    fn remember(&self, session_id: &SessionId, state: State) {
        if self.ttl.is_zero() && matches!(state, State::LiveAt(..)) {
            return;
        }
        self.cache.insert(session_id.clone(), state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> Arc<Account> {
        Arc::new(Account {
            id: "u".into(),
            username: "alice".into(),
            email: None,
            created_at: crate::clock::UnixMillis::EPOCH,
            email_verified_at: None,
            mfa_enabled_at: None,
        })
    }

    #[test]
    fn a_live_answer_read_before_a_revocation_is_not_cached_over_it() {
        let check = SessionCheck::new(Duration::from_secs(5), 100);
        let session = SessionId::from("s");
        // The read starts, the session is revoked, then the read (which saw
        // it live) comes back.
        let ticket = check.ticket(&session);
        check.revoked(&session);
        assert!(!check.remember_read(
            &session,
            ticket,
            State::LiveAt(crate::clock::UnixMillis::EPOCH, alice(), 0)
        ));
        assert_eq!(check.cache.get(&session), Some(State::Dead));
        // A read that starts after it is cached.
        let ticket = check.ticket(&session);
        assert!(check.remember_read(&session, ticket, State::Dead));
    }

    #[test]
    fn past_its_capacity_the_cache_evicts_some_entries_not_all() {
        let check = SessionCheck::new(Duration::from_secs(60), 1_000);
        let owner = alice();
        for session in 0..5_000 {
            let id = SessionId::from(format!("s{session}").as_str());
            check.remember(
                &id,
                State::LiveAt(crate::clock::UnixMillis::EPOCH, owner.clone(), 0),
            );
        }
        let cached = check.cached();
        assert!((500..=1_000).contains(&cached), "{cached} cached");
        // The newest are kept.
        assert!(check.cache.get(&SessionId::from("s4999")).is_some());
    }
}
