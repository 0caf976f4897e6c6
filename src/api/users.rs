//! Accounts: registration and the caller's own profile.

use chrono::{DateTime, Utc};
use poem::Request;
use poem::http::StatusCode;
use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Object, OpenApi};
use secrecy::SecretString;

use super::failure::{
    Answer, BUSY, FORBIDDEN, Failure, Failures, INTERNAL, NOT_JSON, ProtectedFailures, TOO_LARGE,
    TOO_MANY_ATTEMPTS, UNAUTHORIZED,
};
use super::oauth::client_info;
use super::text::{Email, NewPassword, Password, Text, Username};
use super::{ApiTags, BearerAuth, Scopes};
use crate::auth::accounts::{ChangePasswordError, PasswordCheckError, RegisterError};
use crate::auth::scope;
use crate::state::AppState;
use crate::store::Account;

/// A new account.
#[derive(Object)]
#[oai(example)]
pub struct RegisterRequest {
    /// 1 to 64 ASCII letters, digits and `. _ - @ +`. Unique regardless of
    /// case; shown as registered.
    pub username: Text<Username>,
    /// At least 8 characters (configurable), at most 1024 bytes; used exactly
    /// as given, never trimmed or case-folded. (Not `write_only`, which would
    /// leave it out of the example.)
    pub password: Text<NewPassword>,
    /// Absent or `null`: no email.
    #[oai(nullable)]
    pub email: Option<Text<Email>>,
}

/// An account. Never includes the password or its hash.
#[derive(Debug, Object)]
#[oai(example)]
pub struct User {
    pub id: String,
    pub username: String,
    /// `null` when the user gave none.
    #[oai(nullable)]
    pub email: Option<String>,
    /// Whether the address was proven by a link mailed to it.
    pub email_verified: bool,
    /// Whether logins need a second factor (an authenticator app).
    pub mfa_enabled: bool,
    pub created_at: DateTime<Utc>,
}

impl Example for RegisterRequest {
    fn example() -> Self {
        Self {
            username: Text::new("alice"),
            password: Text::new("correct horse battery staple"),
            email: Some(Text::new("alice@example.org")),
        }
    }
}

impl Example for User {
    fn example() -> Self {
        Self {
            id: "0b6f1c52-8f0e-4d3b-9d55-5b1f5e0c2a7e".into(),
            username: "alice".into(),
            email: Some("alice@example.org".into()),
            email_verified: true,
            mfa_enabled: false,
            created_at: DateTime::from_timestamp(1_796_083_200, 0).unwrap_or_default(),
        }
    }
}

impl From<&Account> for User {
    fn from(account: &Account) -> Self {
        Self {
            id: account.id.to_string(),
            username: account.username.clone(),
            email: account.email.clone(),
            email_verified: account.email.is_some() && account.email_verified_at.is_some(),
            mfa_enabled: account.mfa_enabled_at.is_some(),
            created_at: account.created_at.to_datetime(),
        }
    }
}

/// The answer of registration.
#[derive(ApiResponse)]
pub enum Registered {
    /// The account was created.
    #[oai(status = 201)]
    Created(Json<User>),
}

/// How registration can fail.
pub enum RegisterFailures {}

impl Failures for RegisterFailures {
    const ANSWERS: &'static [Answer] = &[
        Answer::new(
            400,
            "The body does not parse, or the username, password or email is refused \
             (`invalid_request`, `invalid_username`, `invalid_password`, `invalid_email`).",
        ),
        Answer::new(409, "The username is taken (`username_taken`)."),
        TOO_LARGE,
        NOT_JSON,
        INTERNAL,
        BUSY,
    ];
}

impl From<RegisterError> for Failure<RegisterFailures> {
    fn from(err: RegisterError) -> Self {
        match err {
            RegisterError::InvalidUsername(msg) => Failure::bad_request("invalid_username", msg),
            RegisterError::InvalidEmail(msg) => Failure::bad_request("invalid_email", msg),
            RegisterError::WeakPassword(why) => {
                Failure::bad_request("invalid_password", why.to_string())
            }
            RegisterError::UsernameTaken => Failure::new(
                StatusCode::CONFLICT,
                "username_taken",
                "the username is already taken",
            ),
            RegisterError::Internal(err) => err.into(),
        }
    }
}

/// The answer of `GET /users/me`.
#[derive(ApiResponse)]
pub enum Me {
    /// The caller's account.
    #[oai(status = 200)]
    Ok(Json<User>),
}

/// A password change.
#[derive(Object)]
pub struct ChangePasswordRequest {
    #[oai(write_only)]
    pub current_password: Text<Password>,
    /// Subject to the same policy as at registration.
    #[oai(write_only)]
    pub new_password: Text<NewPassword>,
}

/// The answer of `PUT /users/me/password`.
#[derive(ApiResponse)]
pub enum PasswordChanged {
    /// Changed; every other session of the user is revoked.
    #[oai(status = 204)]
    Changed,
}

/// How a password change can fail.
pub enum ChangePasswordFailures {}

impl Failures for ChangePasswordFailures {
    const ANSWERS: &'static [Answer] = &[
        Answer::new(
            400,
            "The body does not parse, the current password is wrong \
             (`invalid_current_password`) or the new one is refused (`invalid_password`).",
        ),
        UNAUTHORIZED,
        FORBIDDEN,
        TOO_LARGE,
        NOT_JSON,
        TOO_MANY_ATTEMPTS,
        INTERNAL,
        BUSY,
    ];
}

impl From<ChangePasswordError> for Failure<ChangePasswordFailures> {
    fn from(err: ChangePasswordError) -> Self {
        match err {
            ChangePasswordError::CurrentPassword(err) => err.into(),
            ChangePasswordError::WeakPassword(why) => {
                Failure::bad_request("invalid_password", why.to_string())
            }
            ChangePasswordError::Internal(err) => err.into(),
        }
    }
}

/// The current password refused, as every operation that asks for it
/// answers: 400 `invalid_current_password`, 429 `too_many_attempts` (the
/// login throttle's counters), or 401 when the account is gone.
impl<F: Failures> From<PasswordCheckError> for Failure<F> {
    fn from(err: PasswordCheckError) -> Self {
        match err {
            PasswordCheckError::WrongPassword => {
                Failure::bad_request("invalid_current_password", "the current password is wrong")
            }
            PasswordCheckError::Throttled(retry_after) => Failure::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_attempts",
                "too many failed attempts for this account; retry later",
            )
            .header(poem::http::header::RETRY_AFTER, retry_after.to_string()),
            PasswordCheckError::UnknownUser => Failure::invalid_token(),
            PasswordCheckError::Internal(err) => err.into(),
        }
    }
}

/// Accounts.
#[derive(Default)]
pub struct UsersApi;

#[OpenApi(tag = "ApiTags::Users")]
impl UsersApi {
    /// Register an account
    ///
    /// Creates a user. The username must be unused (409 otherwise) and the
    /// password must satisfy the policy (400 `invalid_password` says why).
    #[oai(path = "/users", method = "post", operation_id = "register")]
    async fn register(
        &self,
        state: Data<&AppState>,
        body: Json<RegisterRequest>,
    ) -> Result<Registered, Failure<RegisterFailures>> {
        let Json(request) = body;
        let password = SecretString::from(request.password.0);
        let user = state
            .accounts
            .register(&request.username, password, request.email.as_deref())
            .await?;
        Ok(Registered::Created(Json((&Account::from(user)).into())))
    }

    /// Change your password
    ///
    /// Needs the current password. The new one must satisfy the policy
    /// (400 `invalid_password` says why; a wrong current password is 400
    /// `invalid_current_password`). Every other session of the user is
    /// revoked; the one making the request stays logged in.
    #[oai(
        path = "/users/me/password",
        method = "put",
        operation_id = "changePassword"
    )]
    async fn change_password(
        &self,
        state: Data<&AppState>,
        req: &Request,
        #[oai(scope = "Scopes::Profile")] auth: BearerAuth,
        body: Json<ChangePasswordRequest>,
    ) -> Result<PasswordChanged, Failure<ChangePasswordFailures>> {
        let claims = auth.with_scope(scope::PROFILE)?.claims;
        let Json(request) = body;
        let current = SecretString::from(request.current_password.0);
        let new = SecretString::from(request.new_password.0);
        state
            .accounts
            .change_password(
                &claims.sub,
                &claims.sid,
                current,
                new,
                &client_info(req, None),
            )
            .await?;
        Ok(PasswordChanged::Changed)
    }

    /// The caller's account
    ///
    /// Needs an access token with the `profile` scope.
    #[oai(path = "/users/me", method = "get", operation_id = "getMe")]
    async fn me(
        &self,
        #[oai(scope = "Scopes::Profile")] auth: BearerAuth,
    ) -> Result<Me, Failure<ProtectedFailures>> {
        let caller = auth.with_scope(scope::PROFILE)?;
        // The session check read the account with the session.
        Ok(Me::Ok(Json(caller.account.as_ref().into())))
    }
}
