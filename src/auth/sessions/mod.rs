//! Sessions: the grants that open and refresh them (`grants.rs`), the
//! check that an access token's session is live, listing them, and ending
//! them (`revoke.rs`).

mod authorization;
mod code;
mod grants;
mod introspect;
mod live_reads;
mod revoke;

use std::sync::Arc;

pub use grants::{GrantError, IssuedTokens};
pub use introspect::Introspection;
pub use live_reads::LiveSessionReads;
pub use revoke::{RevokeError, TokenHint};

use super::accounts::Accounts;
use super::audit::Audit;
use super::jwt::{AccessClaims, TokenError};
use super::refresh::RefreshRotation;
use super::revoker::Revoker;
use super::session_check::SessionCheck;
use super::signing::Signing;
use crate::clock::Clock;
use crate::error::Error;
use crate::ids::UserId;
use crate::store::{Account, SessionRecord, Store};

/// The bearer of a valid access token whose session is live.
#[derive(Debug, Clone)]
pub struct Caller {
    pub claims: AccessClaims,
    /// The session's account, as the session check read it.
    pub account: Arc<Account>,
}

/// Why an access token does not authenticate its bearer.
#[derive(Debug, thiserror::Error)]
pub enum AuthenticateError {
    /// The token itself is invalid (logged at debug level, never sent).
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("the token's session is revoked or expired")]
    SessionRevoked,
    #[error(transparent)]
    Internal(#[from] Error),
}

/// Opens, refreshes, checks, lists and ends sessions.
#[derive(Debug)]
pub struct Sessions {
    pub(crate) store: Store,
    /// Whose credentials the grants check.
    pub(crate) accounts: Arc<Accounts>,
    /// Which clients may ask, and for what.
    pub(crate) clients: Arc<crate::auth::Clients>,
    /// The refresh grant's transaction.
    pub(crate) rotation: RefreshRotation,
    pub(crate) signing: Arc<Signing>,
    pub(crate) revoker: Revoker,
    /// The `client_id` of sessions whose login named no client (RFC 9068
    /// §2.2 requires one in every access token).
    pub(crate) default_client_id: String,
    pub(crate) audit: Audit,
    pub(crate) clock: Arc<dyn Clock>,
    /// Introspection's reads of sessions, gathered into batches.
    pub(crate) live_reads: Arc<LiveSessionReads>,
    /// Second factors: the password grant asks for one where it is enabled.
    pub(crate) mfa: Arc<crate::auth::SecondFactor>,
}

impl Sessions {
    /// The issuer (`iss`) of the tokens and of authorization responses.
    pub fn issuer(&self) -> &str {
        self.signing.tokens().issuer()
    }

    /// The cached session check (its load is on `/metrics`).
    pub fn check(&self) -> &SessionCheck {
        self.revoker.check()
    }

    /// Verifies an access token and that its session is still live.
    pub async fn authenticate(&self, token: &str) -> Result<Caller, AuthenticateError> {
        let claims = self.signing.verify(token).await?;
        let owner = self
            .check()
            .owner(&self.store, &claims.sid, self.clock.now())
            .await
            .map_err(Error::from)?;
        match owner {
            // The token's subject is the session's owner unless the store
            // was tampered with; refuse rather than answer for another user.
            Some(account) if account.id == claims.sub => Ok(Caller { claims, account }),
            _ => Err(AuthenticateError::SessionRevoked),
        }
    }

    /// The live sessions of a user, newest first.
    pub async fn of_user(&self, user_id: &UserId) -> Result<Vec<SessionRecord>, Error> {
        Ok(self.store.list_sessions(user_id, self.clock.now()).await?)
    }

    /// Deletes what can no longer matter at `now` (ms): expired sessions,
    /// sessions revoked longer than `retention` ago, and throttle counters
    /// older than `counters_window`. Rotated tokens of live sessions stay:
    /// reuse detection needs them, and they go with their session.
    pub async fn prune(
        &self,
        now: crate::clock::UnixMillis,
        retention: std::time::Duration,
        counters_window: std::time::Duration,
    ) -> Result<(u64, u64), Error> {
        let pruned = self
            .store
            .prune(now, now - retention, now - counters_window)
            .await?;
        // Tokens rotated before successors were recorded replay with the
        // legacy secret; once none can (its windows have passed), it goes.
        let policy = self.rotation.policy();
        let replayable = policy.replay_window.max(policy.grace);
        let name = super::refresh::LEGACY_SUCCESSOR_SECRET_NAME;
        if self
            .store
            .prune_legacy_secret(name, now - replayable)
            .await?
        {
            tracing::info!("the legacy refresh-token secret is no longer needed: deleted");
        }
        Ok(pruned)
    }
}
