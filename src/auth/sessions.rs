//! Whether the session behind an access token is still live.
//!
//! Access tokens are stateless JWTs; revoking their session must still stop
//! them (ASVS 7.4.1). Protected operations therefore check the session, and
//! keep the answer briefly so the common path stays cheap: a live answer for
//! `ttl`, a dead one for good (revocation and expiry are final). Revocations
//! made through this instance update the cache at once; those made through
//! another instance are seen within `ttl`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::store::Store;

/// Entries kept before the cache is emptied and refilled.
const MAX_ENTRIES: usize = 100_000;

#[derive(Debug, Clone, Copy)]
enum State {
    LiveAt(Instant),
    Dead,
}

/// The cached session check.
#[derive(Debug)]
pub struct SessionCheck {
    ttl: Duration,
    cache: Mutex<HashMap<String, State>>,
}

impl SessionCheck {
    /// `ttl` zero checks the database on every request.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            cache: Mutex::new(HashMap::new()),
        }
    }

    // A poisoned lock is taken over: the map cannot be left half-updated by
    // the trivial operations done under it.

    /// Whether `session_id` is live at `now` (ms), from the cache or the store.
    pub async fn is_live(
        &self,
        store: &Store,
        session_id: &str,
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        match self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(session_id)
        {
            Some(State::Dead) => return Ok(false),
            Some(State::LiveAt(checked)) if checked.elapsed() < self.ttl => return Ok(true),
            _ => {}
        }
        let live = store.session_is_live(session_id, now).await?;
        let state = if live {
            State::LiveAt(Instant::now())
        } else {
            State::Dead
        };
        self.remember(session_id, state);
        Ok(live)
    }

    /// Sessions whose state is cached now.
    pub fn cached(&self) -> usize {
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    /// Records that this instance revoked `session_id`.
    pub fn revoked(&self, session_id: &str) {
        self.remember(session_id, State::Dead);
    }

    fn remember(&self, session_id: &str, state: State) {
        if self.ttl.is_zero() && matches!(state, State::LiveAt(_)) {
            return;
        }
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if cache.len() >= MAX_ENTRIES {
            cache.clear();
        }
        cache.insert(session_id.to_owned(), state);
    }
}
