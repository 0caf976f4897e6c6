//! Accounts: registration and the caller's own profile.

use chrono::{DateTime, Utc};
use poem::Request;
use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Object, OpenApi};
use secrecy::SecretString;

use super::oauth::client_info;
use super::security::{Protected, invalid_token, protected_reply};
use super::text::{Email, NewPassword, Password, Text, Username};
use super::{ApiError, ApiTags, BearerAuth, Rejection, Scopes, ServerFailure, server_failure};
use crate::AppState;
use crate::auth::revocation::ChangePasswordError;
use crate::auth::scope;
use crate::auth::service::RegisterError;
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
            created_at: DateTime::from_timestamp(1_796_083_200, 0).unwrap_or_default(),
        }
    }
}

impl From<&Account> for User {
    fn from(account: &Account) -> Self {
        Self {
            id: account.id.clone(),
            username: account.username.clone(),
            email: account.email.clone(),
            created_at: DateTime::from_timestamp_millis(account.created_at).unwrap_or_default(),
        }
    }
}

/// The answer of registration.
#[derive(ApiResponse)]
#[oai(bad_request_handler = "register_bad_request")]
pub enum RegisterReply {
    /// The account was created.
    #[oai(status = 201)]
    Created(Json<User>),
    /// The body does not parse, or the username, password or email is refused
    /// (`invalid_request`, `invalid_username`, `invalid_password`, `invalid_email`).
    #[oai(status = 400)]
    BadRequest(Json<ApiError>),
    /// The username is taken (`username_taken`).
    #[oai(status = 409)]
    Conflict(Json<ApiError>),
    /// The body is not JSON.
    #[oai(status = 415)]
    UnsupportedMediaType(Json<ApiError>),
    /// The body is larger than the server accepts (`--max-body-bytes`).
    #[oai(status = 413)]
    PayloadTooLarge(Json<ApiError>),
    /// An unexpected server error.
    #[oai(status = 500)]
    InternalError(Json<ApiError>),
    /// The database is unavailable; retry later.
    #[oai(status = 503)]
    Unavailable(Json<ApiError>, #[oai(header = "Retry-After")] String),
}
server_failure!(RegisterReply);

fn register_bad_request(err: poem::Error) -> RegisterReply {
    match Rejection::from_error(&err) {
        Rejection::UnsupportedMediaType(body) => RegisterReply::UnsupportedMediaType(body),
        Rejection::Failed(status) => ServerFailure::failed(status),
        Rejection::BadRequest(body) | Rejection::Unauthorized(body, _) => {
            RegisterReply::BadRequest(body)
        }
    }
}

protected_reply!(
    /// The answer of `GET /users/me`.
    MeReply {
        /// The caller's account.
        #[oai(status = 200)]
        Ok(Json<User>),
    }
);

/// A password change.
#[derive(Object)]
pub struct ChangePasswordRequest {
    #[oai(write_only)]
    pub current_password: Text<Password>,
    /// Subject to the same policy as at registration.
    #[oai(write_only)]
    pub new_password: Text<NewPassword>,
}

protected_reply!(
    /// The answer of `PUT /users/me/password`.
    ChangePasswordReply with body {
        /// Changed; every other session of the user is revoked.
        #[oai(status = 204)]
        Changed,
    }
);

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
    async fn register(&self, state: Data<&AppState>, body: Json<RegisterRequest>) -> RegisterReply {
        let Json(request) = body;
        let password = SecretString::from(request.password.0);
        match state
            .auth
            .register(&request.username, password, request.email.as_deref())
            .await
        {
            Ok(user) => RegisterReply::Created(Json((&Account::from(user)).into())),
            Err(RegisterError::InvalidUsername(msg)) => {
                RegisterReply::BadRequest(ApiError::new("invalid_username", msg))
            }
            Err(RegisterError::InvalidEmail(msg)) => {
                RegisterReply::BadRequest(ApiError::new("invalid_email", msg))
            }
            Err(RegisterError::WeakPassword(why)) => {
                RegisterReply::BadRequest(ApiError::new("invalid_password", why.to_string()))
            }
            Err(RegisterError::UsernameTaken) => RegisterReply::Conflict(ApiError::new(
                "username_taken",
                "the username is already taken",
            )),
            Err(RegisterError::Internal(err)) => RegisterReply::from_error(err),
        }
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
    ) -> ChangePasswordReply {
        let claims = auth.0.claims;
        if let Err(forbidden) = ChangePasswordReply::require_scope(&claims, scope::PROFILE) {
            return forbidden;
        }
        let Json(request) = body;
        let current = SecretString::from(request.current_password.0);
        let new = SecretString::from(request.new_password.0);
        match state
            .auth
            .change_password(
                &claims.sub,
                &claims.sid,
                current,
                new,
                &client_info(req, None),
            )
            .await
        {
            Ok(()) => ChangePasswordReply::Changed,
            Err(ChangePasswordError::WrongPassword) => ChangePasswordReply::BadRequest(
                ApiError::new("invalid_current_password", "the current password is wrong"),
            ),
            Err(ChangePasswordError::WeakPassword(why)) => {
                ChangePasswordReply::BadRequest(ApiError::new("invalid_password", why.to_string()))
            }
            Err(ChangePasswordError::UnknownUser) => {
                let (body, challenge) = invalid_token();
                ChangePasswordReply::Unauthorized(body, challenge)
            }
            Err(ChangePasswordError::Internal(err)) => ChangePasswordReply::from_error(err),
        }
    }

    /// The caller's account
    ///
    /// Needs an access token with the `profile` scope.
    #[oai(path = "/users/me", method = "get", operation_id = "getMe")]
    async fn me(&self, #[oai(scope = "Scopes::Profile")] auth: BearerAuth) -> MeReply {
        let caller = auth.0;
        if let Err(forbidden) = MeReply::require_scope(&caller.claims, scope::PROFILE) {
            return forbidden;
        }
        // The session check read the account with the session.
        MeReply::Ok(Json(caller.account.as_ref().into()))
    }
}
