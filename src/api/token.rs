//! The token endpoints: the OAuth2 form endpoint (RFC 6749), its JSON twins
//! for SDK users, and logout.

use poem::Request;
use poem::web::Data;
use poem_openapi::payload::{Form, Json};
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Object, OpenApi};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::oauth::{
    MalformedBasic, NO_STORE, OAuthError, OAuthErrorCode, basic_client_id, client_info,
};
use super::text::{
    ClientId, ClientSecret, GrantType, LoginName, Password, RefreshToken, Scope, Text,
};
use super::{ApiError, ApiTags, Rejection, ServerFailure, server_failure};
use crate::AppState;
use crate::auth::service::{GrantError, IssuedTokens};

/// An OAuth2 token request (RFC 6749 §4.3.2 password grant, §6 refresh).
// No `Debug`: it holds a password.
#[derive(Object, Deserialize)]
pub struct TokenRequest {
    /// `password` or `refresh_token`.
    pub grant_type: GrantType,
    /// For `grant_type=password`.
    pub username: Option<Text<LoginName>>,
    /// For `grant_type=password`.
    #[oai(write_only)]
    pub password: Option<Text<Password>>,
    /// For `grant_type=refresh_token`.
    pub refresh_token: Option<Text<RefreshToken>>,
    /// Space-separated scopes; empty or absent means the default (`profile`).
    pub scope: Option<Text<Scope>>,
    /// The public client's id (optional; recorded on the session).
    pub client_id: Option<Text<ClientId>>,
    /// Accepted and ignored: clients are public in v1.
    #[oai(write_only)]
    #[allow(dead_code)] // declared so the spec shows what Swagger UI may send
    pub client_secret: Option<Text<ClientSecret>>,
}

/// Log in with a username and password.
#[derive(Object)]
#[oai(example)]
pub struct LoginRequest {
    pub username: Text<LoginName>,
    // Not `write_only`: poem-openapi leaves write-only fields out of the
    // example, which would then not be a valid request.
    pub password: Text<Password>,
    /// Space-separated scopes; empty, `null` or absent means the default
    /// (`profile`).
    #[oai(nullable)]
    pub scope: Option<Text<Scope>>,
}

/// Exchange a refresh token for a new token pair.
#[derive(Object)]
pub struct RefreshRequest {
    pub refresh_token: Text<RefreshToken>,
    /// Narrow the scope of the new access token; absent or `null` keeps it.
    #[oai(nullable)]
    pub scope: Option<Text<Scope>>,
}

/// End the session a refresh token belongs to.
#[derive(Object)]
pub struct LogoutRequest {
    pub refresh_token: Text<RefreshToken>,
}

/// A successful token response (RFC 6749 §5.1).
#[derive(Debug, Object)]
#[oai(example)]
pub struct TokenResponse {
    /// A JWT (`typ: at+jwt`) to send as `Authorization: Bearer …`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// Single-use: every refresh returns a new one.
    pub refresh_token: String,
    /// Seconds until the refresh token expires.
    pub refresh_token_expires_in: i64,
    /// Space-separated scopes of the access token.
    pub scope: String,
}

impl Example for LoginRequest {
    fn example() -> Self {
        Self {
            username: Text::new("alice"),
            password: Text::new("correct horse battery staple"),
            scope: Some(Text::new("profile")),
        }
    }
}

impl Example for TokenResponse {
    fn example() -> Self {
        Self {
            access_token: "eyJ0eXAiOiJhdCtqd3QiLCJhbGciOiJFZERTQSIsImtpZCI6Ii4uLiJ9.eyJzdWIiOiIuLi4ifQ.c2lnbmF0dXJl"
                .into(),
            token_type: "Bearer".into(),
            expires_in: 900,
            refresh_token: "Y3eTi4h1jQm8jQ2f6V8z3e0r7Q0nZ2pBvS5kW9xL4aE".into(),
            refresh_token_expires_in: 1_209_600,
            scope: "profile".into(),
        }
    }
}

impl From<IssuedTokens> for TokenResponse {
    fn from(tokens: IssuedTokens) -> Self {
        Self {
            access_token: tokens.access_token,
            token_type: "Bearer".into(),
            expires_in: tokens.expires_in,
            refresh_token: tokens.refresh_token.expose_secret().to_owned(),
            refresh_token_expires_in: tokens.refresh_token_expires_in,
            scope: tokens.scope,
        }
    }
}

/// The answer of a token endpoint.
#[derive(ApiResponse)]
#[oai(bad_request_handler = "token_bad_request")]
pub enum TokenReply {
    /// Tokens issued.
    #[oai(status = 200)]
    Ok(
        Json<TokenResponse>,
        #[oai(header = "Cache-Control")] String,
        #[oai(header = "Pragma")] String,
    ),
    /// The request is malformed (`invalid_request`), the credentials or the
    /// refresh token are refused (`invalid_grant`), or the grant type or
    /// scope is not supported (`unsupported_grant_type`, `invalid_scope`).
    #[oai(status = 400)]
    BadRequest(Json<OAuthError>, #[oai(header = "Cache-Control")] String),
    /// A malformed `Authorization: Basic` header (`invalid_client`).
    #[oai(status = 401)]
    InvalidClient(
        Json<OAuthError>,
        #[oai(header = "Cache-Control")] String,
        #[oai(header = "WWW-Authenticate")] String,
    ),
    /// The body is larger than the server accepts (`--max-body-bytes`).
    #[oai(status = 413)]
    PayloadTooLarge(Json<ApiError>),
    /// Too many failed logins for this account or client address
    /// (`too_many_attempts`); retry after `Retry-After` seconds.
    #[oai(status = 429)]
    TooManyRequests(Json<ApiError>, #[oai(header = "Retry-After")] String),
    /// An unexpected server error.
    #[oai(status = 500)]
    InternalError(Json<ApiError>),
    /// The database is unavailable; retry later.
    #[oai(status = 503)]
    Unavailable(Json<ApiError>, #[oai(header = "Retry-After")] String),
}
server_failure!(TokenReply);

impl TokenReply {
    fn error(error: OAuthErrorCode, description: impl Into<String>) -> Self {
        Self::BadRequest(OAuthError::new(error, description), NO_STORE.into())
    }
}

fn token_bad_request(err: poem::Error) -> TokenReply {
    TokenReply::error(OAuthErrorCode::InvalidRequest, super::describe(&err))
}

impl From<Result<IssuedTokens, GrantError>> for TokenReply {
    fn from(result: Result<IssuedTokens, GrantError>) -> Self {
        match result {
            Ok(tokens) => Self::Ok(Json(tokens.into()), NO_STORE.into(), "no-cache".into()),
            Err(GrantError::InvalidRequest(msg)) => {
                Self::error(OAuthErrorCode::InvalidRequest, msg)
            }
            Err(GrantError::InvalidGrant(msg)) => Self::error(OAuthErrorCode::InvalidGrant, msg),
            Err(GrantError::InvalidScope(err)) => Self::error(OAuthErrorCode::InvalidScope, err.0),
            Err(GrantError::TooManyAttempts(retry_after)) => Self::TooManyRequests(
                ApiError::new("too_many_attempts", "too many failed logins; retry later"),
                retry_after.to_string(),
            ),
            Err(GrantError::Internal(err)) => Self::from_error(err),
        }
    }
}

/// The answer of the JSON grant endpoints: as [`TokenReply`], without the
/// `401 invalid_client`, since they take no client credentials.
#[derive(ApiResponse)]
#[oai(bad_request_handler = "grant_bad_request")]
pub enum GrantReply {
    /// Tokens issued.
    #[oai(status = 200)]
    Ok(
        Json<TokenResponse>,
        #[oai(header = "Cache-Control")] String,
        #[oai(header = "Pragma")] String,
    ),
    /// The request is malformed (`invalid_request`), the credentials or the
    /// refresh token are refused (`invalid_grant`), or the scope is not
    /// supported (`invalid_scope`).
    #[oai(status = 400)]
    BadRequest(Json<OAuthError>, #[oai(header = "Cache-Control")] String),
    /// The body is larger than the server accepts (`--max-body-bytes`).
    #[oai(status = 413)]
    PayloadTooLarge(Json<ApiError>),
    /// Too many failed logins for this account or client address
    /// (`too_many_attempts`); retry after `Retry-After` seconds.
    #[oai(status = 429)]
    TooManyRequests(Json<ApiError>, #[oai(header = "Retry-After")] String),
    /// An unexpected server error.
    #[oai(status = 500)]
    InternalError(Json<ApiError>),
    /// The database is unavailable; retry later.
    #[oai(status = 503)]
    Unavailable(Json<ApiError>, #[oai(header = "Retry-After")] String),
}
server_failure!(GrantReply);

fn grant_bad_request(err: poem::Error) -> GrantReply {
    token_bad_request(err).into()
}

impl From<Result<IssuedTokens, GrantError>> for GrantReply {
    fn from(result: Result<IssuedTokens, GrantError>) -> Self {
        TokenReply::from(result).into()
    }
}

impl From<TokenReply> for GrantReply {
    /// The same answer. Only the form endpoint reads client credentials, so
    /// a grant never produces `invalid_client`; if it ever did, that would
    /// be a bug, answered as one.
    fn from(reply: TokenReply) -> Self {
        match reply {
            TokenReply::Ok(body, cache, pragma) => Self::Ok(body, cache, pragma),
            TokenReply::BadRequest(body, cache) => Self::BadRequest(body, cache),
            TokenReply::PayloadTooLarge(body) => Self::PayloadTooLarge(body),
            TokenReply::TooManyRequests(body, retry) => Self::TooManyRequests(body, retry),
            TokenReply::Unavailable(body, retry) => Self::Unavailable(body, retry),
            TokenReply::InternalError(body) => Self::InternalError(body),
            TokenReply::InvalidClient(..) => {
                tracing::error!("a JSON grant answered invalid_client");
                Self::failed(poem::http::StatusCode::INTERNAL_SERVER_ERROR)
            }
        }
    }
}

/// The answer of logout.
#[derive(ApiResponse)]
#[oai(bad_request_handler = "logout_bad_request")]
pub enum LogoutReply {
    /// The session is revoked (or the token was unknown: logout is idempotent).
    #[oai(status = 204)]
    Done,
    /// The body does not parse.
    #[oai(status = 400)]
    BadRequest(Json<ApiError>),
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
server_failure!(LogoutReply);

fn logout_bad_request(err: poem::Error) -> LogoutReply {
    match Rejection::from_error(&err) {
        Rejection::UnsupportedMediaType(body) => LogoutReply::UnsupportedMediaType(body),
        Rejection::Failed(status) => ServerFailure::failed(status),
        Rejection::BadRequest(body) | Rejection::Unauthorized(body, _) => {
            LogoutReply::BadRequest(body)
        }
    }
}

/// Token issuance and revocation.
#[derive(Default)]
pub struct TokenApi;

#[OpenApi(tag = "ApiTags::Tokens")]
impl TokenApi {
    /// OAuth2 token endpoint (password and refresh_token grants)
    ///
    /// RFC 6749 §4.3 and §6, form-encoded. This is the `tokenUrl` and
    /// `refreshUrl` of the OAuth2 security scheme, so Swagger UI's Authorize
    /// button logs in here. A `client_id` in the body or HTTP Basic client
    /// credentials are accepted (clients are public).
    #[oai(path = "/oauth/token", method = "post", operation_id = "issueToken")]
    async fn token(
        &self,
        state: Data<&AppState>,
        req: &Request,
        body: Form<TokenRequest>,
    ) -> TokenReply {
        let Form(form) = body;
        let client_id = match basic_client_id(req) {
            Ok(None) => form.client_id.map(|id| id.0).filter(|id| !id.is_empty()),
            Ok(Some(basic))
                if form
                    .client_id
                    .as_deref()
                    .is_none_or(|id| id.is_empty() || id == basic) =>
            {
                Some(basic)
            }
            Ok(Some(_)) => {
                return TokenReply::error(
                    OAuthErrorCode::InvalidRequest,
                    "`client_id` differs from the client in the Authorization header",
                );
            }
            Err(malformed) => return malformed.into(),
        };
        if form.client_secret.as_ref().is_some_and(Text::too_long) {
            return TokenReply::error(
                OAuthErrorCode::InvalidRequest,
                "`client_secret` is longer than 1024 characters",
            );
        }
        match form.grant_type.0.as_str() {
            "password" => {
                let username = form.username.map(|name| name.0).unwrap_or_default();
                let password = SecretString::from(form.password.map(|p| p.0).unwrap_or_default());
                let client = client_info(req, client_id);
                state
                    .auth
                    .password_grant(&username, password, form.scope.as_deref(), client)
                    .await
                    .into()
            }
            "refresh_token" => {
                let token = form.refresh_token.map(|token| token.0).unwrap_or_default();
                state
                    .auth
                    .refresh_grant(&token, form.scope.as_deref(), &client_info(req, None))
                    .await
                    .into()
            }
            "" => TokenReply::error(OAuthErrorCode::InvalidRequest, "`grant_type` is required"),
            _ => TokenReply::error(
                OAuthErrorCode::UnsupportedGrantType,
                "supported grant types are `password` and `refresh_token`",
            ),
        }
    }

    /// Log in with a username and password (JSON)
    ///
    /// The password grant as JSON, for SDKs. Unknown users and wrong
    /// passwords get the same `invalid_grant` answer.
    #[oai(path = "/auth/login", method = "post", operation_id = "login")]
    async fn login(
        &self,
        state: Data<&AppState>,
        req: &Request,
        body: Json<LoginRequest>,
    ) -> GrantReply {
        let Json(login) = body;
        let password = SecretString::from(login.password.0);
        let client = client_info(req, None);
        state
            .auth
            .password_grant(&login.username, password, login.scope.as_deref(), client)
            .await
            .into()
    }

    /// Refresh a token pair (JSON)
    ///
    /// The refresh grant as JSON, for SDKs. Every refresh rotates the refresh
    /// token. Presenting a rotated token again within the grace window returns
    /// the same successor; after it, the whole session is revoked.
    #[oai(path = "/auth/refresh", method = "post", operation_id = "refresh")]
    async fn refresh(
        &self,
        state: Data<&AppState>,
        req: &Request,
        body: Json<RefreshRequest>,
    ) -> GrantReply {
        let Json(refresh) = body;
        let client = client_info(req, None);
        state
            .auth
            .refresh_grant(&refresh.refresh_token, refresh.scope.as_deref(), &client)
            .await
            .into()
    }

    /// Log out
    ///
    /// Revokes the session (the whole refresh-token family) of the given
    /// refresh token. Idempotent: an unknown or already revoked token also
    /// gets 204.
    #[oai(path = "/auth/logout", method = "post", operation_id = "logout")]
    async fn logout(
        &self,
        state: Data<&AppState>,
        req: &Request,
        body: Json<LogoutRequest>,
    ) -> LogoutReply {
        if body.refresh_token.is_empty() {
            return LogoutReply::BadRequest(ApiError::new(
                "invalid_request",
                "`refresh_token` is required",
            ));
        }
        match state
            .auth
            .logout(&body.0.refresh_token, &client_info(req, None))
            .await
        {
            Ok(()) => LogoutReply::Done,
            Err(err) => LogoutReply::from_error(err),
        }
    }
}

impl From<MalformedBasic> for TokenReply {
    fn from(malformed: MalformedBasic) -> Self {
        let (body, cache, challenge) = malformed.into_parts();
        Self::InvalidClient(body, cache, challenge)
    }
}
