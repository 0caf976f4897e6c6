//! Authenticating access tokens against their session, listing and revoking
//! sessions, and RFC 7009 token revocation.

use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};

use super::jwt::{AccessClaims, TokenError};
use super::password::{self, PolicyViolation};
use super::refresh;
use super::service::{AuthService, ClientInfo};
use crate::audit::AuditKind;
use crate::error::Error;
use crate::store::{Account, SessionRecord};

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

/// Why a password change was refused, or that it failed.
#[derive(Debug, thiserror::Error)]
pub enum ChangePasswordError {
    #[error("the current password is wrong")]
    WrongPassword,
    #[error("the account no longer exists")]
    UnknownUser,
    #[error(transparent)]
    WeakPassword(#[from] PolicyViolation),
    #[error(transparent)]
    Internal(#[from] Error),
}

/// Which kind of token `POST /oauth/revoke` was given (RFC 7009 §2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenHint {
    AccessToken,
    RefreshToken,
}

impl AuthService {
    /// Verifies an access token and that its session is still live.
    pub async fn authenticate(&self, token: &str) -> Result<Caller, AuthenticateError> {
        let claims = self.verify_access_token(token).await?;
        let owner = self
            .session_check
            .owner(&self.store, &claims.sid, self.clock.now_millis())
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
    pub async fn sessions(&self, user_id: &str) -> Result<Vec<SessionRecord>, Error> {
        Ok(self
            .store
            .list_sessions(user_id, self.clock.now_millis())
            .await?)
    }

    /// Revokes one of the user's own live sessions; `false` if there is none
    /// with that id (including someone else's).
    pub async fn revoke_own_session(
        &self,
        user_id: &str,
        session_id: &str,
        client: &ClientInfo,
    ) -> Result<bool, Error> {
        let now = self.clock.now_millis();
        let revoked = self
            .store
            .revoke_user_session(user_id, session_id, now)
            .await?;
        if revoked {
            self.session_check.revoked(session_id);
            tracing::info!(%user_id, %session_id, "session revoked by its owner");
            self.audit(
                AuditKind::SessionRevoked,
                Some(user_id),
                Some(session_id),
                client,
            )
            .await;
        }
        Ok(revoked)
    }

    /// Revokes every session of the user ("log out everywhere").
    pub async fn logout_all(&self, user_id: &str, client: &ClientInfo) -> Result<(), Error> {
        let revoked = self.revoke_all_of(user_id).await?;
        tracing::info!(%user_id, sessions = revoked, "logged out everywhere");
        self.audit(AuditKind::LogoutAll, Some(user_id), None, client)
            .await;
        Ok(())
    }

    async fn revoke_all_of(&self, user_id: &str) -> Result<usize, Error> {
        let revoked = self
            .store
            .revoke_all_sessions(user_id, self.clock.now_millis())
            .await?;
        for session_id in &revoked {
            self.session_check.revoked(session_id);
        }
        Ok(revoked.len())
    }

    /// Changes a user's password after checking the current one, then
    /// revokes every session of the user but `current_sid` (ASVS 6.2.3,
    /// 7.4.3): whoever else knew the old password is logged out.
    pub async fn change_password(
        &self,
        user_id: &str,
        current_sid: &str,
        current: SecretString,
        new: SecretString,
        client: &ClientInfo,
    ) -> Result<(), ChangePasswordError> {
        let Some(user) = self
            .store
            .find_user_by_id(user_id)
            .await
            .map_err(Error::from)?
        else {
            return Err(ChangePasswordError::UnknownUser);
        };
        let too_long = current.expose_secret().len() > password::MAX_PASSWORD_BYTES;
        let stored = Some(user.password_hash.clone());
        if too_long
            || !self
                .passwords
                .verify(current, stored)
                .await
                .map_err(Error::from)?
        {
            return Err(ChangePasswordError::WrongPassword);
        }
        password::check_policy(new.expose_secret(), &user.username, self.min_password_chars)?;
        let hash = self.passwords.hash(new).await.map_err(Error::from)?;
        self.store
            .update_password_hash(user_id, &hash)
            .await
            .map_err(Error::from)?;
        let revoked = self
            .store
            .revoke_other_sessions(user_id, current_sid, self.clock.now_millis())
            .await
            .map_err(Error::from)?;
        for session_id in &revoked {
            self.session_check.revoked(session_id);
        }
        tracing::info!(%user_id, other_sessions_revoked = revoked.len(), "password changed");
        self.audit(
            AuditKind::PasswordChanged,
            Some(user_id),
            Some(current_sid),
            client,
        )
        .await;
        Ok(())
    }

    /// Deletes what can no longer matter at `now` (ms): expired sessions,
    /// sessions revoked longer than `retention` ago, and stale throttle
    /// counters. Rotated tokens of live sessions stay: reuse detection
    /// needs them, and they go with their session.
    pub async fn prune(
        &self,
        now: i64,
        retention: std::time::Duration,
    ) -> Result<(u64, u64), Error> {
        let retention = super::refresh::millis(retention);
        let oldest_window = super::refresh::millis(
            self.throttle
                .account_window
                .max(self.throttle.address_window),
        );
        Ok(self
            .store
            .prune(now, now - retention, now - oldest_window)
            .await?)
    }

    /// Disables the account `username` and revokes all its sessions (ASVS
    /// 7.4.2), or re-enables it. `false` if there is no such user.
    pub async fn set_user_disabled(&self, username: &str, disabled: bool) -> Result<bool, Error> {
        let now = self.clock.now_millis();
        let Some(user_id) = self
            .store
            .set_user_disabled(
                &super::username::username_key(username),
                disabled.then_some(now),
            )
            .await?
        else {
            return Ok(false);
        };
        if disabled {
            self.revoke_all_of(&user_id).await?;
        }
        tracing::info!(%user_id, disabled, "account state changed");
        let event = if disabled {
            AuditKind::UserDisabled
        } else {
            AuditKind::UserEnabled
        };
        self.audit(event, Some(&user_id), None, &ClientInfo::default())
            .await;
        Ok(true)
    }

    /// RFC 7009: revokes the session of a refresh token, or of an access
    /// token. Unknown and invalid tokens are ignored (the answer is the same).
    /// The hint only decides which kind is tried first.
    pub async fn revoke_token(
        &self,
        token: &str,
        hint: Option<TokenHint>,
        client: &ClientInfo,
    ) -> Result<(), Error> {
        let mut revoked = None;
        if hint == Some(TokenHint::AccessToken) {
            revoked = self.revoke_access_token(token).await?;
        }
        if revoked.is_none() {
            revoked = self.revoke_refresh_token(token).await?;
        }
        if revoked.is_none() && hint != Some(TokenHint::AccessToken) {
            revoked = self.revoke_access_token(token).await?;
        }
        if let Some((user_id, session_id)) = revoked {
            self.audit(
                AuditKind::TokenRevoked,
                Some(&user_id),
                Some(&session_id),
                client,
            )
            .await;
        }
        Ok(())
    }

    /// Revokes the session of a refresh token: its user and session, or
    /// `None` if the token is unknown.
    pub(super) async fn revoke_refresh_token(
        &self,
        token: &str,
    ) -> Result<Option<(String, String)>, Error> {
        if token.is_empty() || token.len() > super::service::MAX_REFRESH_TOKEN_BYTES {
            return Ok(None);
        }
        let Some(record) = self.store.find_refresh_token(&refresh::hash(token)).await? else {
            return Ok(None);
        };
        self.revoke(&record.session_id).await?;
        Ok(Some((record.user_id, record.session_id)))
    }

    async fn revoke_access_token(&self, token: &str) -> Result<Option<(String, String)>, Error> {
        match self.verify_access_token(token).await {
            Ok(claims) => {
                self.revoke(&claims.sid).await?;
                Ok(Some((claims.sub, claims.sid)))
            }
            Err(_) => Ok(None),
        }
    }

    /// Revokes a session in the store and in this instance's cache.
    pub(super) async fn revoke(&self, session_id: &str) -> Result<(), Error> {
        self.store
            .revoke_session(session_id, self.clock.now_millis())
            .await?;
        self.session_check.revoked(session_id);
        Ok(())
    }
}
