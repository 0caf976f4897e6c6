//! Signing: the access tokens, their key ring, reloading it so rotations
//! reach this instance, and pruning retired keys.

use std::sync::Arc;

use super::jwt::{AccessClaims, AccessTokens, AnyClaims, Subject, TokenError};
use super::keys::{KeySource, RingError, TokenKey};
use crate::clock::Clock;
use crate::store::Store;

/// Issues and verifies access tokens with the current key ring.
#[derive(Debug)]
pub struct Signing {
    tokens: AccessTokens,
    /// Where `tokens` gets its keys, for reloads.
    keys: KeySource,
    store: Store,
    clock: Arc<dyn Clock>,
}

impl Signing {
    pub fn new(tokens: AccessTokens, keys: KeySource, store: Store, clock: Arc<dyn Clock>) -> Self {
        Self {
            tokens,
            keys,
            store,
            clock,
        }
    }

    /// The access tokens: issuer, lifetime, ring, verified-token cache.
    pub fn tokens(&self) -> &AccessTokens {
        &self.tokens
    }

    /// The key new tokens are signed with now.
    pub fn signing_key(&self) -> Arc<TokenKey> {
        self.tokens.ring().signing(self.clock.now()).clone()
    }

    /// Signs an access token for `subject`, issued at `now`.
    pub fn issue(
        &self,
        subject: &Subject<'_>,
        now: crate::clock::UnixMillis,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        self.tokens.issue(subject, now)
    }

    /// Signs an access token for the client `client_id` itself.
    pub fn issue_for_client(
        &self,
        client_id: &str,
        scope: &str,
        now: crate::clock::UnixMillis,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        self.tokens.issue_for_client(client_id, scope, now)
    }

    /// Verifies any access token now, a user's or a client's (for
    /// introspection), reloading the keys for an unknown `kid` as
    /// [`Signing::verify`] does.
    pub async fn verify_any(&self, token: &str) -> Result<AnyClaims, TokenError> {
        match self.tokens.verify_any(token, self.clock.now()) {
            Err(TokenError::UnknownKey(Some(_))) if self.reload_for_unknown_kid().await => {
                self.tokens.verify_any(token, self.clock.now())
            }
            verified => verified,
        }
    }

    /// Verifies an access token now. A token signed with a key this
    /// instance does not know yet (a rotation another instance has already
    /// picked up) triggers a rate-limited reload of the keys.
    pub async fn verify(&self, token: &str) -> Result<AccessClaims, TokenError> {
        match self.tokens.verify(token, self.clock.now()) {
            Err(TokenError::UnknownKey(Some(_))) if self.reload_for_unknown_kid().await => {
                self.tokens.verify(token, self.clock.now())
            }
            verified => verified,
        }
    }

    /// Re-reads the signing keys from the database. Returns whether the key
    /// new tokens are signed with changed. A failure keeps the keys in use.
    pub async fn reload(&self) -> Result<bool, RingError> {
        let KeySource::Database(keys) = &self.keys else {
            return Ok(false);
        };
        let ring = keys.reload(&self.store).await?;
        let now = self.clock.now();
        let before = self.tokens.ring().signing(now).kid().to_owned();
        let after = ring.signing(now).kid().to_owned();
        self.tokens.replace_ring(ring);
        if before != after {
            tracing::info!(kid = %after, previous = %before, "now signing with a new key");
        }
        Ok(before != after)
    }

    /// Reloads the keys for a token whose `kid` is unknown here, at most
    /// once a second. Returns whether it reloaded.
    async fn reload_for_unknown_kid(&self) -> bool {
        let KeySource::Database(keys) = &self.keys else {
            return false;
        };
        if !keys.may_reload_for_unknown_kid() {
            return false;
        }
        match self.reload().await {
            Ok(_) => true,
            Err(err) => {
                tracing::warn!(error = %err, "cannot reload the signing keys");
                false
            }
        }
    }

    /// Deletes keys retired before `now` (ms); they verify nothing any more.
    pub async fn prune(&self, now: crate::clock::UnixMillis) -> Result<u64, sqlx::Error> {
        match &self.keys {
            KeySource::Database(keys) => keys.prune(&self.store, now).await,
            KeySource::Fixed => Ok(0),
        }
    }
}
