//! The grants that issue tokens, behind one dispatcher ([`Sessions::grant`]):
//! the password grant opens a session, the refresh grant rotates its
//! refresh token (RFC 6749 §4.3, §6). A new grant is a [`GrantType`], one
//! method here (or in the service that owns it), its store calls and its
//! tests.

use secrecy::{ExposeSecret, SecretString};

use super::Sessions;
use crate::audit::AuditKind;
use crate::auth::accounts::{BAD_CREDENTIALS, LoginRefused};
use crate::auth::client::{ClientInfo, MAX_REFRESH_TOKEN_BYTES};
use crate::auth::clients::{Client, ClientCredentials, ClientError};
use crate::auth::grant::{GrantParams, GrantType, PASSWORD_ONLY};
use crate::auth::jwt::Subject;
use crate::auth::mfa::{Factor, FactorError, PasswordStep};
use crate::auth::refresh::RefreshError;
use crate::auth::scope::{self, InvalidScope};
use crate::error::Error;
use crate::ids::{SessionId, TokenHash};
use crate::store::{NewSession, UserRecord};

/// Freshly issued tokens: an access token, and a refresh token unless the
/// grant was a client's for itself.
#[derive(Debug)]
pub struct IssuedTokens {
    pub access_token: String,
    pub expires_in: i64,
    pub refresh_token: Option<SecretString>,
    pub refresh_token_expires_in: Option<i64>,
    pub scope: String,
}

/// Why a grant was refused (RFC 6749 §5.2), or that it failed.
#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    #[error("{0}")]
    InvalidRequest(String),
    /// The request names a grant type Gatehouse does not serve.
    #[error("{0}")]
    UnsupportedGrantType(String),
    #[error("{0}")]
    InvalidGrant(&'static str),
    #[error(transparent)]
    InvalidScope(#[from] InvalidScope),
    /// Too many failed logins: retry after this many seconds.
    #[error("too many failed logins; retry in {0} s")]
    TooManyAttempts(u64),
    /// The client did not authenticate (RFC 6749 §5.2 `invalid_client`).
    #[error("client authentication failed")]
    InvalidClient,
    /// The client may not use this grant type (`unauthorized_client`).
    #[error("{0}")]
    UnauthorizedClient(String),
    /// The password was right and the account needs a second factor: the
    /// `mfa_token` that continues the login.
    #[error("a second factor is required")]
    MfaRequired(SecretString),
    #[error(transparent)]
    Internal(#[from] Error),
}

impl From<LoginRefused> for GrantError {
    fn from(refused: LoginRefused) -> Self {
        match refused {
            LoginRefused::BadCredentials => Self::InvalidGrant(BAD_CREDENTIALS),
            LoginRefused::Throttled(retry_after) => Self::TooManyAttempts(retry_after),
            LoginRefused::Internal(err) => Self::Internal(err),
        }
    }
}

impl From<FactorError> for GrantError {
    fn from(err: FactorError) -> Self {
        match err {
            FactorError::BadToken => Self::InvalidGrant(crate::auth::mfa::BAD_MFA_TOKEN),
            FactorError::BadCode => Self::InvalidGrant(crate::auth::mfa::BAD_CODE),
            FactorError::Throttled(retry_after) => Self::TooManyAttempts(retry_after),
            FactorError::Internal(err) => Self::Internal(err),
        }
    }
}

impl From<ClientError> for GrantError {
    fn from(err: ClientError) -> Self {
        match err {
            ClientError::InvalidClient => Self::InvalidClient,
            ClientError::Throttled(retry_after) => Self::TooManyAttempts(retry_after),
            ClientError::Internal(err) => Self::Internal(err),
        }
    }
}

impl From<sqlx::Error> for GrantError {
    fn from(err: sqlx::Error) -> Self {
        Self::Internal(err.into())
    }
}

/// How a new session is opened: its id (named before it exists by a code's
/// redemption), when and how its user authenticated (RFC 8176 `amr`), and
/// the account's epoch then.
#[derive(Debug, Clone)]
pub(super) struct Opening {
    pub session_id: SessionId,
    pub authenticated_at: crate::clock::UnixMillis,
    pub user_epoch: i64,
    pub amr: String,
}

const BAD_REFRESH_TOKEN: &str = "the refresh token is invalid, expired or revoked";

impl Sessions {
    /// The token endpoint's one entry: the grant `grant_type` names, with
    /// the fields of `params` it takes.
    pub async fn grant(
        &self,
        grant_type: &str,
        params: GrantParams,
        credentials: &ClientCredentials,
        client: ClientInfo,
    ) -> Result<IssuedTokens, GrantError> {
        let grant_type = match GrantType::parse(grant_type) {
            Some(grant_type) => grant_type,
            None if grant_type.is_empty() => {
                return Err(GrantError::InvalidRequest(
                    "`grant_type` is required".into(),
                ));
            }
            None => {
                let names = GrantType::NAMES.map(|name| format!("`{name}`"));
                return Err(GrantError::UnsupportedGrantType(format!(
                    "supported grant types are {}",
                    names.join(", ")
                )));
            }
        };
        let authenticated = self.clients.authenticate(credentials, &client).await?;
        if !authenticated.may_use(grant_type.registered_as()) {
            return Err(GrantError::UnauthorizedClient(format!(
                "the client may not use the `{}` grant",
                grant_type.as_str()
            )));
        }
        let scope = params.scope.as_deref();
        match grant_type {
            GrantType::Password => {
                let username = params.username.unwrap_or_default();
                let password = params.password.unwrap_or_default();
                self.password_grant_for(&authenticated, &username, password, scope, client)
                    .await
            }
            GrantType::RefreshToken => {
                let token = params.refresh_token.unwrap_or_default();
                let builtin = self.clients.is_builtin(&authenticated);
                let issued_to = (!builtin).then_some(authenticated.id.as_str());
                self.refresh_grant_for(issued_to, &token, scope, &client)
                    .await
            }
            GrantType::ClientCredentials => {
                self.client_credentials_grant(&authenticated, scope, &client)
                    .await
            }
            GrantType::AuthorizationCode => {
                self.authorization_code_grant(&authenticated, params, &client)
                    .await
            }
            GrantType::MfaOtp => {
                let otp = params.otp.unwrap_or_default();
                if otp.is_empty() {
                    return Err(GrantError::InvalidRequest("`otp` is required".into()));
                }
                let mfa_token = params.mfa_token.unwrap_or_default();
                self.second_factor_grant_for(&authenticated, &mfa_token, Factor::Otp(&otp), &client)
                    .await
            }
            GrantType::MfaRecoveryCode => {
                let code = params.recovery_code.unwrap_or_default();
                if code.is_empty() {
                    return Err(GrantError::InvalidRequest(
                        "`recovery_code` is required".into(),
                    ));
                }
                let mfa_token = params.mfa_token.unwrap_or_default();
                let factor = Factor::RecoveryCode(&code);
                self.second_factor_grant_for(&authenticated, &mfa_token, factor, &client)
                    .await
            }
        }
    }

    /// The second step of the built-in client's password grant
    /// (`POST /auth/login/mfa`).
    pub async fn second_factor_grant(
        &self,
        mfa_token: &str,
        factor: Factor<'_>,
        client: &ClientInfo,
    ) -> Result<IssuedTokens, GrantError> {
        let builtin = self.clients.builtin();
        self.second_factor_grant_for(&builtin, mfa_token, factor, client)
            .await
    }

    /// The second step of a password grant (`mfa_token` from its 403
    /// `mfa_required`), with a TOTP code or a recovery code: the session
    /// the password step would have opened, signed in with a second factor.
    pub async fn second_factor_grant_for(
        &self,
        authenticated: &Client,
        mfa_token: &str,
        factor: Factor<'_>,
        client: &ClientInfo,
    ) -> Result<IssuedTokens, GrantError> {
        if mfa_token.is_empty() {
            return Err(GrantError::InvalidRequest("`mfa_token` is required".into()));
        }
        let passed = self
            .mfa
            .pass(mfa_token, &authenticated.id, factor, client)
            .await?;
        let challenge = passed.challenge;
        let opening = Opening {
            session_id: SessionId::generate(),
            authenticated_at: self.clock.now(),
            user_epoch: challenge.user_epoch,
            amr: passed.amr.to_owned(),
        };
        self.open_session_with(
            &passed.user,
            challenge.scope,
            &challenge.client_id,
            challenge.client_confidential,
            client,
            opening,
        )
        .await
    }

    /// The client credentials grant (RFC 6749 §4.4): a confidential client's
    /// access token for itself (RFC 9068, `sub` = `client_id`), with the
    /// scopes it asks for among those it was registered with (all of them
    /// when it asks for none), and no refresh token (§4.4.3).
    pub async fn client_credentials_grant(
        &self,
        client: &Client,
        requested_scope: Option<&str>,
        from: &ClientInfo,
    ) -> Result<IssuedTokens, GrantError> {
        let default = client
            .scopes
            .iter()
            .filter(|scope| *scope != scope::PROFILE)
            .cloned()
            .collect::<Vec<_>>()
            .join(" ");
        let scope = scope::for_grant(requested_scope, &client.scopes, &default)?;
        let now = self.clock.now();
        let access_token = self
            .signing
            .issue_for_client(&client.id, &scope, now)
            .map_err(Error::from)?;
        let mut event = from.audit_event(AuditKind::ClientCredentialsGranted, None, None, now);
        event.detail = Some(client.id.clone());
        // At a machine's rate: written in batches, off the request path.
        self.audit
            .record_batched(AuditKind::ClientCredentialsGranted, event)
            .await;
        Ok(IssuedTokens {
            access_token,
            expires_in: i64::try_from(self.signing.tokens().ttl().as_secs()).unwrap_or(i64::MAX),
            refresh_token: None,
            refresh_token_expires_in: None,
            scope,
        })
    }

    /// The resource-owner password grant (RFC 6749 §4.3) of the built-in
    /// client (`POST /auth/login`).
    pub async fn password_grant(
        &self,
        username: &str,
        password: SecretString,
        requested_scope: Option<&str>,
        client: ClientInfo,
    ) -> Result<IssuedTokens, GrantError> {
        let builtin = self.clients.builtin();
        self.password_grant_for(&builtin, username, password, requested_scope, client)
            .await
    }

    /// The resource-owner password grant (RFC 6749 §4.3): a new session of
    /// `authenticated` for the account behind the username and password.
    pub async fn password_grant_for(
        &self,
        authenticated: &Client,
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
        let scope = scope::for_grant(requested_scope, &authenticated.scopes, scope::DEFAULT)?;
        let user = self.accounts.log_in(username, password, &client).await?;
        if user.mfa_enabled_at.is_some() {
            let mfa_token = self
                .mfa
                .challenge(PasswordStep {
                    user: &user,
                    client_id: &authenticated.id,
                    client_confidential: authenticated.confidential,
                    scope: &scope,
                })
                .await?;
            tracing::info!(user_id = %user.id, "password accepted; a second factor is required");
            return Err(GrantError::MfaRequired(mfa_token));
        }
        self.open_session_as(
            &user,
            scope,
            &authenticated.id,
            authenticated.confidential,
            &client,
        )
        .await
    }

    /// Opens a session for `user`, whose credentials were just checked (as
    /// read then): refused like a wrong password if, by the time the
    /// session is stored, the account was disabled or its password changed.
    pub async fn open_session(
        &self,
        user: &UserRecord,
        scope: String,
        client_id: &str,
        client: &ClientInfo,
    ) -> Result<IssuedTokens, GrantError> {
        self.open_session_as(user, scope, client_id, false, client)
            .await
    }

    /// [`Sessions::open_session`] for the client `client_id`, which alone
    /// may refresh it if it is `confidential`.
    async fn open_session_as(
        &self,
        user: &UserRecord,
        scope: String,
        client_id: &str,
        confidential: bool,
        client: &ClientInfo,
    ) -> Result<IssuedTokens, GrantError> {
        let now = self.clock.now();
        let opening = Opening {
            session_id: SessionId::generate(),
            authenticated_at: now,
            user_epoch: user.session_epoch,
            amr: PASSWORD_ONLY.to_owned(),
        };
        self.open_session_with(user, scope, client_id, confidential, client, opening)
            .await
    }

    /// [`Sessions::open_session_as`] with the session's id, when the user
    /// authenticated and the account's epoch then given.
    pub(super) async fn open_session_with(
        &self,
        user: &UserRecord,
        scope: String,
        client_id: &str,
        confidential: bool,
        client: &ClientInfo,
        opening: Opening,
    ) -> Result<IssuedTokens, GrantError> {
        let now = self.clock.now();
        let amr = opening.amr.as_str();
        let session_id = opening.session_id;
        let refresh_token = crate::auth::random_token();
        let expires_at = now + self.rotation.policy().ttl;
        let user_agent = client.stored_user_agent();
        let opened = self
            .store
            .insert_session(&NewSession {
                id: &session_id,
                user_id: &user.id,
                client_id: Some(client_id),
                scope: &scope,
                user_agent: user_agent.as_deref(),
                ip: client.ip.as_deref(),
                created_at: now,
                expires_at,
                first_token_hash: &TokenHash::of(refresh_token.expose_secret()),
                user_epoch: opening.user_epoch,
                amr,
                auth_time: opening.authenticated_at,
                client_confidential: confidential,
            })
            .await?;
        if !opened {
            tracing::info!(user_id = %user.id, "login refused: the account changed while it ran");
            return Err(GrantError::InvalidGrant(BAD_CREDENTIALS));
        }
        tracing::info!(user_id = %user.id, session_id = %session_id, "login succeeded");
        self.audit
            .record(
                AuditKind::LoginSucceeded,
                Some(&user.id),
                Some(&session_id),
                client,
            )
            .await;
        self.issue(
            Subject {
                user_id: &user.id,
                session_id: &session_id,
                scope,
                client_id,
                authenticated_at: opening.authenticated_at,
                amr,
            },
            refresh_token,
            expires_at,
            now,
        )
    }

    /// The refresh grant (RFC 6749 §6) of the built-in client
    /// (`POST /auth/refresh`).
    pub async fn refresh_grant(
        &self,
        refresh_token: &str,
        requested_scope: Option<&str>,
        client: &ClientInfo,
    ) -> Result<IssuedTokens, GrantError> {
        self.refresh_grant_for(None, refresh_token, requested_scope, client)
            .await
    }

    /// The refresh grant (RFC 6749 §6) with rotation and reuse detection;
    /// a registered client (`issued_to`) refreshes only its own tokens.
    pub async fn refresh_grant_for(
        &self,
        issued_to: Option<&str>,
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
            .refresh(refresh_token, requested_scope, issued_to, client)
            .await
        {
            Ok(refreshed) => refreshed,
            Err(RefreshError::Reused { session_id, .. }) => {
                self.revoker.revoked_in_store(&session_id);
                return Err(GrantError::InvalidGrant(BAD_REFRESH_TOKEN));
            }
            Err(RefreshError::Invalid) => return Err(GrantError::InvalidGrant(BAD_REFRESH_TOKEN)),
            Err(RefreshError::Scope(err)) => return Err(err.into()),
            Err(RefreshError::Internal(err)) => return Err(err.into()),
        };
        let token = &refreshed.token;
        self.issue(
            Subject {
                user_id: &token.user_id,
                session_id: &token.session_id,
                scope: refreshed.scope,
                // Sessions from before `--default-client-id` have none.
                client_id: token
                    .client_id
                    .as_deref()
                    .unwrap_or(&self.default_client_id),
                authenticated_at: token.session_auth_time,
                amr: &token.amr,
            },
            refreshed.successor,
            token.session_expires_at,
            refreshed.now,
        )
    }

    fn issue(
        &self,
        subject: Subject<'_>,
        refresh_token: SecretString,
        session_expires_at: crate::clock::UnixMillis,
        now: crate::clock::UnixMillis,
    ) -> Result<IssuedTokens, GrantError> {
        let access_token = self.signing.issue(&subject, now).map_err(Error::from)?;
        let ttl = self.signing.tokens().ttl();
        Ok(IssuedTokens {
            access_token,
            expires_in: i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX),
            refresh_token: Some(refresh_token),
            refresh_token_expires_in: Some(
                self.rotation.policy().expires_in(session_expires_at, now),
            ),
            scope: subject.scope,
        })
    }
}
