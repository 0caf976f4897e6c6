//! Revoking sessions: in the store, and at once in this instance's session
//! check (other instances see it within `--session-check-ttl`).

use std::sync::Arc;

use super::session_check::SessionCheck;
use crate::clock::Clock;
use crate::ids::{SessionId, UserId};
use crate::store::Store;

/// Ends sessions. Shared by [`super::Sessions`] (logout, revocation, reuse)
/// and [`super::Accounts`] (a password change, a disabled account).
#[derive(Debug, Clone)]
pub struct Revoker {
    store: Store,
    check: Arc<SessionCheck>,
    clock: Arc<dyn Clock>,
}

impl Revoker {
    pub fn new(store: Store, check: Arc<SessionCheck>, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            check,
            clock,
        }
    }

    /// The session check whose cache this revoker keeps up to date.
    pub fn check(&self) -> &SessionCheck {
        &self.check
    }

    /// Revokes one session.
    pub async fn session(&self, session_id: &SessionId) -> Result<(), sqlx::Error> {
        self.store
            .revoke_session(session_id, self.clock.now())
            .await?;
        self.check.revoked(session_id);
        Ok(())
    }

    /// Revokes `session_id` if it is one of `user_id`'s live sessions;
    /// whether it was.
    pub async fn own_session(
        &self,
        user_id: &UserId,
        session_id: &SessionId,
    ) -> Result<bool, sqlx::Error> {
        let revoked = self
            .store
            .revoke_user_session(user_id, session_id, self.clock.now())
            .await?;
        if revoked {
            self.check.revoked(session_id);
        }
        Ok(revoked)
    }

    /// Revokes every session of `user_id`; how many were live.
    pub async fn all_of(&self, user_id: &UserId) -> Result<usize, sqlx::Error> {
        let revoked = self
            .store
            .revoke_all_sessions(user_id, self.clock.now())
            .await?;
        revoked.iter().for_each(|id| self.check.revoked(id));
        Ok(revoked.len())
    }

    /// Revokes every session of `user_id` but `keep`; how many were live.
    pub async fn all_but(&self, user_id: &UserId, keep: &SessionId) -> Result<usize, sqlx::Error> {
        let revoked = self
            .store
            .revoke_other_sessions(user_id, keep, self.clock.now())
            .await?;
        revoked.iter().for_each(|id| self.check.revoked(id));
        Ok(revoked.len())
    }

    /// Marks a session the store has already revoked (reuse detection
    /// does that inside its transaction).
    pub fn revoked_in_store(&self, session_id: &SessionId) {
        self.check.revoked(session_id);
    }
}
