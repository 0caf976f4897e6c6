//! Ending sessions: logout, revoking one's own sessions, and RFC 7009
//! token revocation.

use super::Sessions;
use crate::audit::AuditKind;
use crate::auth::client::{ClientInfo, MAX_REFRESH_TOKEN_BYTES};
use crate::error::Error;
use crate::ids::{SessionId, TokenHash, UserId};

/// Why a revocation was refused, or that it failed.
#[derive(Debug, thiserror::Error)]
pub enum RevokeError {
    /// A confidential client presented a token issued to another client
    /// (RFC 7009 §2.1).
    #[error("the token was not issued to this client")]
    NotItsToken,
    #[error(transparent)]
    Internal(#[from] Error),
}

/// Which kind of token `POST /oauth/revoke` was given (RFC 7009 §2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenHint {
    AccessToken,
    RefreshToken,
}

impl Sessions {
    /// Revokes the session of a refresh token. Unknown tokens are ignored,
    /// so logout is idempotent and reveals nothing.
    pub async fn logout(&self, refresh_token: &str, client: &ClientInfo) -> Result<(), Error> {
        let revoked = match self.revoke_refresh_token(refresh_token, None).await {
            Ok(revoked) => revoked,
            Err(RevokeError::Internal(err)) => return Err(err),
            // No client is checked at logout.
            Err(RevokeError::NotItsToken) => None,
        };
        if let Some((user_id, session_id)) = revoked {
            tracing::info!(%session_id, "logout: session revoked");
            self.audit
                .record(AuditKind::Logout, Some(&user_id), Some(&session_id), client)
                .await;
        }
        Ok(())
    }

    /// Revokes one of the user's own live sessions; `false` if there is none
    /// with that id (including someone else's).
    pub async fn revoke_own(
        &self,
        user_id: &UserId,
        session_id: &SessionId,
        client: &ClientInfo,
    ) -> Result<bool, Error> {
        let revoked = self.revoker.own_session(user_id, session_id).await?;
        if revoked {
            tracing::info!(%user_id, %session_id, "session revoked by its owner");
            self.audit
                .record(
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
    pub async fn logout_all(&self, user_id: &UserId, client: &ClientInfo) -> Result<(), Error> {
        let revoked = self.revoker.all_of(user_id).await?;
        tracing::info!(%user_id, sessions = revoked, "logged out everywhere");
        self.audit
            .record(AuditKind::LogoutAll, Some(user_id), None, client)
            .await;
        Ok(())
    }

    /// RFC 7009: revokes the session of a refresh token, or of an access
    /// token. Unknown and invalid tokens are ignored (the answer is the same).
    /// The hint only decides which kind is tried first. A confidential
    /// client (`confidential`, authenticated) may revoke only tokens issued
    /// to it; others, holding the token, may revoke it.
    pub async fn revoke_token(
        &self,
        token: &str,
        hint: Option<TokenHint>,
        confidential: Option<&str>,
        client: &ClientInfo,
    ) -> Result<(), RevokeError> {
        let mut revoked = None;
        if hint == Some(TokenHint::AccessToken) {
            revoked = self.revoke_access_token(token, confidential).await?;
        }
        if revoked.is_none() {
            revoked = self.revoke_refresh_token(token, confidential).await?;
        }
        if revoked.is_none() && hint != Some(TokenHint::AccessToken) {
            revoked = self.revoke_access_token(token, confidential).await?;
        }
        if let Some((user_id, session_id)) = revoked {
            self.audit
                .record(
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
    async fn revoke_refresh_token(
        &self,
        token: &str,
        confidential: Option<&str>,
    ) -> Result<Option<(UserId, SessionId)>, RevokeError> {
        if token.is_empty() || token.len() > MAX_REFRESH_TOKEN_BYTES {
            return Ok(None);
        }
        let Some(record) = self
            .store
            .find_refresh_token(&TokenHash::of(token))
            .await
            .map_err(Error::from)?
        else {
            return Ok(None);
        };
        self.check_issued_to(record.client_id.as_deref(), confidential)?;
        self.revoker
            .session(&record.session_id)
            .await
            .map_err(Error::from)?;
        Ok(Some((record.user_id, record.session_id)))
    }

    async fn revoke_access_token(
        &self,
        token: &str,
        confidential: Option<&str>,
    ) -> Result<Option<(UserId, SessionId)>, RevokeError> {
        match self.signing.verify(token).await {
            Ok(claims) => {
                self.check_issued_to(claims.client_id.as_deref(), confidential)?;
                self.revoker
                    .session(&claims.sid)
                    .await
                    .map_err(Error::from)?;
                Ok(Some((claims.sub, claims.sid)))
            }
            Err(_) => Ok(None),
        }
    }

    /// A confidential client may touch only its own tokens.
    fn check_issued_to(
        &self,
        issued_to: Option<&str>,
        confidential: Option<&str>,
    ) -> Result<(), RevokeError> {
        let issued_to = issued_to.unwrap_or(&self.default_client_id);
        match confidential {
            Some(client) if client != issued_to => Err(RevokeError::NotItsToken),
            _ => Ok(()),
        }
    }
}
