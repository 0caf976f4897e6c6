//! The grants: registration, the password grant, the refresh grant and
//! logout, on top of the store. HTTP handlers translate to and from these.

use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};

pub use super::client::ClientInfo;
pub use super::jwt::Grant;
use super::jwt::{AccessClaims, AccessTokens, TokenError};
use super::password::{self, Passwords, PolicyViolation};
use super::refresh;
use super::refresh_rotation::{RefreshError, RefreshRotation};
use super::scope::{self, InvalidScope};
use super::throttle::{Attempt, ThrottlePolicy};
use super::username::{MAX_USERNAME_CHARS, check_username, username_key};
use crate::audit::AuditKind;
use crate::clock::Clock;
use crate::error::Error;
use crate::store::{InsertUser, NewSession, Store, UserRecord};

/// Longest email address, in bytes (RFC 5321 path limit).
pub const MAX_EMAIL_BYTES: usize = 254;
/// Longest `client_id`, in characters.
pub const MAX_CLIENT_ID_CHARS: usize = 255;
/// Longest string that could be a refresh token we issued.
pub const MAX_REFRESH_TOKEN_BYTES: usize = 512;
/// Longest string that could be an access token we issued.
pub const MAX_ACCESS_TOKEN_BYTES: usize = 4096;

/// A freshly issued token pair.
#[derive(Debug)]
pub struct IssuedTokens {
    pub access_token: String,
    pub expires_in: i64,
    pub refresh_token: SecretString,
    pub refresh_token_expires_in: i64,
    pub scope: String,
}

/// Why a grant was refused (RFC 6749 §5.2), or that it failed.
#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    InvalidGrant(&'static str),
    #[error(transparent)]
    InvalidScope(#[from] InvalidScope),
    /// Too many failed logins: retry after this many seconds.
    #[error("too many failed logins; retry in {0} s")]
    TooManyAttempts(u64),
    #[error(transparent)]
    Internal(#[from] Error),
}

impl From<sqlx::Error> for GrantError {
    fn from(err: sqlx::Error) -> Self {
        Self::Internal(err.into())
    }
}

/// Why a registration was refused, or that it failed.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error("{0}")]
    InvalidUsername(String),
    #[error("{0}")]
    InvalidEmail(String),
    #[error(transparent)]
    WeakPassword(#[from] PolicyViolation),
    #[error("the username is already taken")]
    UsernameTaken,
    #[error(transparent)]
    Internal(#[from] Error),
}

/// The outcome of checking a username and password.
enum Credentials {
    Valid(UserRecord),
    Refused { user_id: Option<String> },
}

/// The one message for an unknown user and a wrong password alike.
pub const BAD_CREDENTIALS: &str = "invalid username or password";
const BAD_REFRESH_TOKEN: &str = "the refresh token is invalid, expired or revoked";

/// Everything the grants need.
#[derive(Debug)]
pub struct AuthService {
    pub store: Store,
    pub passwords: Passwords,
    pub access: AccessTokens,
    /// Where `access` gets its keys, for reloads.
    pub keys: super::keys::KeySource,
    /// The refresh grant's transaction.
    pub rotation: RefreshRotation,
    pub min_password_chars: usize,
    /// The `client_id` of sessions whose login named no client (RFC 9068
    /// §2.2 requires one in every access token).
    pub default_client_id: String,
    pub session_check: super::sessions::SessionCheck,
    pub throttle: ThrottlePolicy,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Where "now" comes from.
    pub clock: Arc<dyn Clock>,
}

impl AuthService {
    /// Creates an account.
    pub async fn register(
        &self,
        username: &str,
        password: SecretString,
        email: Option<&str>,
    ) -> Result<UserRecord, RegisterError> {
        check_username(username).map_err(RegisterError::InvalidUsername)?;
        if let Some(email) = email {
            check_email(email).map_err(RegisterError::InvalidEmail)?;
        }
        password::check_policy(password.expose_secret(), username, self.min_password_chars)?;
        let user = UserRecord {
            id: uuid::Uuid::new_v4().to_string(),
            username: username.to_owned(),
            email: email.map(str::to_owned),
            password_hash: self.passwords.hash(password).await.map_err(Error::from)?,
            created_at: self.clock.now_millis(),
            disabled_at: None,
        };
        let key = username_key(&user.username);
        match self
            .store
            .insert_user(&user, &key)
            .await
            .map_err(Error::from)?
        {
            InsertUser::Inserted => Ok(user),
            InsertUser::UsernameTaken => Err(RegisterError::UsernameTaken),
        }
    }

    /// The resource-owner password grant (RFC 6749 §4.3): a new session.
    pub async fn password_grant(
        &self,
        username: &str,
        password: SecretString,
        requested_scope: Option<&str>,
        client: ClientInfo,
    ) -> Result<IssuedTokens, GrantError> {
        if username.is_empty() {
            return Err(GrantError::InvalidRequest("`username` is required".into()));
        }
        if password.expose_secret().is_empty() {
            return Err(GrantError::InvalidRequest("`password` is required".into()));
        }
        let client_id =
            check_client_id(client.client_id.as_deref())?.unwrap_or(&self.default_client_id);
        let scope = scope::for_new_session(requested_scope)?;
        let attempt = Attempt::new(username, client.ip.as_deref());
        let now = self.clock.now_millis();
        if let Some(retry_after) = self
            .throttle
            .retry_after(&self.store, &attempt, now)
            .await?
        {
            self.audit(AuditKind::LoginThrottled, None, None, &client)
                .await;
            return Err(GrantError::TooManyAttempts(retry_after));
        }
        let user = match self.check_credentials(username, password).await? {
            Credentials::Valid(user) => {
                self.throttle.succeeded(&self.store, &attempt).await?;
                user
            }
            Credentials::Refused { user_id } => {
                self.throttle.failed(&self.store, &attempt, now).await?;
                self.audit(AuditKind::LoginFailed, user_id.as_deref(), None, &client)
                    .await;
                return Err(GrantError::InvalidGrant(BAD_CREDENTIALS));
            }
        };

        let now = self.clock.now_millis();
        let session_id = uuid::Uuid::new_v4().to_string();
        let refresh_token = super::random_token();
        let expires_at = now.saturating_add(refresh::millis(self.rotation.policy().ttl));
        let user_agent = client.stored_user_agent();
        self.store
            .insert_session(&NewSession {
                id: &session_id,
                user_id: &user.id,
                client_id: Some(client_id),
                scope: &scope,
                user_agent: user_agent.as_deref(),
                ip: client.ip.as_deref(),
                created_at: now,
                expires_at,
                first_token_hash: &refresh::hash(refresh_token.expose_secret()),
            })
            .await?;
        tracing::info!(user_id = %user.id, session_id = %session_id, "login succeeded");
        self.audit(
            AuditKind::LoginSucceeded,
            Some(&user.id),
            Some(&session_id),
            &client,
        )
        .await;
        self.issue(
            Grant {
                user_id: &user.id,
                session_id: &session_id,
                scope,
                client_id,
                authenticated_at: now,
            },
            refresh_token,
            expires_at,
            now,
        )
    }

    /// The user whose password this is, if the account may log in. Every
    /// refusal looks the same to the client, whatever the reason; the
    /// refused account's id (if it exists) is kept for the audit trail.
    async fn check_credentials(
        &self,
        username: &str,
        password: SecretString,
    ) -> Result<Credentials, GrantError> {
        // Input no account can have is refused without a lookup or a hash:
        // that reveals nothing about which accounts exist.
        if username.chars().count() > MAX_USERNAME_CHARS
            || password.expose_secret().len() > password::MAX_PASSWORD_BYTES
        {
            return Ok(Credentials::Refused { user_id: None });
        }
        // Registered names are ASCII, so no account has a non-ASCII key.
        let key = username_key(username);
        if !key.is_ascii() {
            return Ok(Credentials::Refused { user_id: None });
        }
        let user = self.store.find_user_by_key(&key).await?;
        let stored_hash = user.as_ref().map(|u| u.password_hash.clone());
        let password_for_upgrade = password.clone();
        if !self
            .passwords
            .verify(password, stored_hash)
            .await
            .map_err(Error::from)?
        {
            return Ok(Credentials::Refused {
                user_id: user.map(|u| u.id),
            });
        }
        let user = user.expect("a verified password belongs to a stored user");
        // Checked after the hash, so a disabled account answers like any other
        // refusal, in the same time.
        if user.disabled_at.is_some() {
            tracing::info!(user_id = %user.id, "login refused: the account is disabled");
            return Ok(Credentials::Refused {
                user_id: Some(user.id),
            });
        }
        if self.passwords.needs_rehash(&user.password_hash) {
            self.upgrade_hash(&user.id, password_for_upgrade).await;
        }
        Ok(Credentials::Valid(user))
    }

    /// Re-hashes a user's password with the configured parameters. Best
    /// effort: the login that triggered it succeeds whatever happens here.
    async fn upgrade_hash(&self, user_id: &str, password: SecretString) {
        let upgraded = match self.passwords.hash(password).await {
            Ok(hash) => self
                .store
                .update_password_hash(user_id, &hash)
                .await
                .map_err(Error::from),
            Err(err) => Err(err.into()),
        };
        match upgraded {
            Ok(()) => {
                tracing::info!(%user_id, "password hash upgraded to the configured parameters")
            }
            Err(err) => tracing::warn!(%user_id, error = %err, "password hash upgrade failed"),
        }
    }

    /// The refresh grant (RFC 6749 §6) with rotation and reuse detection.
    pub async fn refresh_grant(
        &self,
        refresh_token: &str,
        requested_scope: Option<&str>,
        client: &ClientInfo,
    ) -> Result<IssuedTokens, GrantError> {
        if refresh_token.is_empty() {
            return Err(GrantError::InvalidRequest(
                "`refresh_token` is required".into(),
            ));
        }
        if refresh_token.len() > MAX_REFRESH_TOKEN_BYTES {
            return Err(GrantError::InvalidGrant(BAD_REFRESH_TOKEN));
        }
        let refreshed = match self
            .rotation
            .refresh(refresh_token, requested_scope, client)
            .await
        {
            Ok(refreshed) => refreshed,
            Err(RefreshError::Reused { session_id, .. }) => {
                self.session_check.revoked(&session_id);
                return Err(GrantError::InvalidGrant(BAD_REFRESH_TOKEN));
            }
            Err(RefreshError::Invalid) => return Err(GrantError::InvalidGrant(BAD_REFRESH_TOKEN)),
            Err(RefreshError::Scope(err)) => return Err(err.into()),
            Err(RefreshError::Internal(err)) => return Err(err.into()),
        };
        let token = &refreshed.token;
        self.issue(
            Grant {
                user_id: &token.user_id,
                session_id: &token.session_id,
                scope: refreshed.scope,
                // Sessions from before `--default-client-id` have none.
                client_id: token
                    .client_id
                    .as_deref()
                    .unwrap_or(&self.default_client_id),
                authenticated_at: token.session_created_at,
            },
            refreshed.successor,
            token.session_expires_at,
            refreshed.now,
        )
    }

    /// Revokes the session of a refresh token. Unknown tokens are ignored,
    /// so logout is idempotent and reveals nothing.
    pub async fn logout(&self, refresh_token: &str, client: &ClientInfo) -> Result<(), Error> {
        if let Some((user_id, session_id)) = self.revoke_refresh_token(refresh_token).await? {
            tracing::info!(%session_id, "logout: session revoked");
            self.audit(AuditKind::Logout, Some(&user_id), Some(&session_id), client)
                .await;
        }
        Ok(())
    }

    /// Verifies an access token now. A token signed with a key this
    /// instance does not know yet (a rotation another instance has already
    /// picked up) triggers a rate-limited reload of the keys.
    pub async fn verify_access_token(&self, token: &str) -> Result<AccessClaims, TokenError> {
        match self.access.verify(token, self.clock.now_secs()) {
            Err(TokenError::UnknownKey(Some(_))) if self.reload_keys_for_unknown_kid().await => {
                self.access.verify(token, self.clock.now_secs())
            }
            verified => verified,
        }
    }

    fn issue(
        &self,
        grant: Grant<'_>,
        refresh_token: SecretString,
        session_expires_at: i64,
        now: i64,
    ) -> Result<IssuedTokens, GrantError> {
        let access_token = self.access.issue(&grant, now).map_err(Error::from)?;
        let scope = grant.scope;
        Ok(IssuedTokens {
            access_token,
            expires_in: i64::try_from(self.access.ttl().as_secs()).unwrap_or(i64::MAX),
            refresh_token,
            refresh_token_expires_in: self.rotation.policy().expires_in(session_expires_at, now),
            scope,
        })
    }
}

/// An email address: one `@` between non-empty parts, no white space or
/// control characters, at most 254 bytes.
pub fn check_email(email: &str) -> Result<(), String> {
    let well_formed = email.len() <= MAX_EMAIL_BYTES
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && !domain.is_empty() && !domain.contains('@')
        });
    if well_formed {
        Ok(())
    } else {
        Err("email must be a valid address of at most 254 bytes".into())
    }
}

/// Whether a `client_id` is acceptable: at most 255 printable characters.
pub fn valid_client_id(client_id: &str) -> bool {
    client_id.chars().count() <= MAX_CLIENT_ID_CHARS && !client_id.chars().any(char::is_control)
}

fn check_client_id(client_id: Option<&str>) -> Result<Option<&str>, GrantError> {
    match client_id.filter(|id| !id.is_empty()) {
        Some(id) if !valid_client_id(id) => Err(GrantError::InvalidRequest(format!(
            "`client_id` must be at most {MAX_CLIENT_ID_CHARS} printable characters"
        ))),
        other => Ok(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_need_one_at_sign_and_no_spaces() {
        assert!(check_email("a@example.org").is_ok());
        assert!(check_email("a@b@c").is_err());
        assert!(check_email("@example.org").is_err());
        assert!(check_email("a @example.org").is_err());
        assert!(check_email(&format!("{}@x.org", "a".repeat(250))).is_err());
    }
}
