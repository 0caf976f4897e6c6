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

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::ids::SessionId;
use crate::store::{Account, Store};

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Live when checked (Unix ms), owned by this account (which never
    /// changes, so `GET /users/me` answers from it).
    LiveAt(i64, Arc<Account>),
    Dead,
}

/// The cached session check.
pub struct SessionCheck {
    ttl: Duration,
    cache: quick_cache::sync::Cache<SessionId, State>,
    hits: AtomicU64,
    misses: AtomicU64,
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
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The account owning `session_id` if the session is live at `now` (ms)
    /// and the account enabled, from the cache or the store.
    pub async fn owner(
        &self,
        store: &Store,
        session_id: &SessionId,
        now: i64,
    ) -> Result<Option<Arc<Account>>, sqlx::Error> {
        match self.cache.get(session_id) {
            Some(State::Dead) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(None);
            }
            Some(State::LiveAt(checked, owner))
                if now.saturating_sub(checked) < crate::clock::millis(self.ttl) =>
            {
                self.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(Some(owner));
            }
            _ => {}
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let owner = store
            .live_session_owner(session_id, now)
            .await?
            .map(Arc::new);
        let state = match &owner {
            Some(owner) => State::LiveAt(now, owner.clone()),
            None => State::Dead,
        };
        self.remember(session_id, state);
        Ok(owner)
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

    /// Records that this instance revoked `session_id`.
    pub fn revoked(&self, session_id: &SessionId) {
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

    #[test]
    fn past_its_capacity_the_cache_evicts_some_entries_not_all() {
        let check = SessionCheck::new(Duration::from_secs(60), 1_000);
        let owner = Arc::new(Account {
            id: "u".into(),
            username: "alice".into(),
            email: None,
            created_at: 0,
        });
        for session in 0..5_000 {
            let id = SessionId::from(format!("s{session}").as_str());
            check.remember(&id, State::LiveAt(0, owner.clone()));
        }
        let cached = check.cached();
        assert!((500..=1_000).contains(&cached), "{cached} cached");
        // The newest are kept.
        assert!(check.cache.get(&SessionId::from("s4999")).is_some());
    }
}
