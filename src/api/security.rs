//! The OAuth2 password-flow security scheme and its access-token checker.

use poem::Request;
use poem::http::StatusCode;
use poem_openapi::auth::Bearer;
use poem_openapi::payload::Json;
use poem_openapi::{OAuthScopes, SecurityScheme};

use super::ApiError;
use crate::AppState;
use crate::auth::jwt::AccessClaims;
use crate::auth::revocation::{AuthenticateError, Caller};
use crate::auth::scope;

/// The scopes an access token can carry.
#[derive(Debug, Clone, Copy, OAuthScopes)]
pub enum Scopes {
    /// Read your own account and sessions.
    #[oai(rename = "profile")]
    Profile,
}

/// OAuth2 password flow: Swagger UI's **Authorize** posts the username and
/// password to `/oauth/token` and sends the access token as a Bearer token.
/// Access tokens are JWTs (RFC 9068, `typ: at+jwt`) signed and checked as
/// the JWT best current practices (RFC8725) ask: one pinned algorithm
/// (EdDSA, or HS256 by configuration), explicit `typ`, `iss`, `aud`, `exp`
/// and `nbf` checks, and keys named by `kid` from the JWKS.
#[derive(Debug, SecurityScheme)]
#[oai(
    rename = "OAuth2",
    ty = "oauth2",
    flows(password(
        token_url = "/oauth/token",
        refresh_url = "/oauth/token",
        scopes = "Scopes"
    )),
    checker = "check_access_token"
)]
pub struct BearerAuth(pub Caller);

/// The token was refused; the precise reason is logged, never sent.
#[derive(Debug, thiserror::Error)]
#[error("invalid access token")]
pub struct InvalidAccessToken;

impl poem::error::ResponseError for InvalidAccessToken {
    fn status(&self) -> poem::http::StatusCode {
        StatusCode::UNAUTHORIZED
    }
}

async fn check_access_token(req: &Request, bearer: Bearer) -> poem::Result<Caller> {
    let state = req
        .data::<AppState>()
        .expect("AppState is attached to every route");
    match state.auth.authenticate(&bearer.token).await {
        Ok(caller) => Ok(caller),
        Err(AuthenticateError::Internal(err)) => {
            let status = if err.retry_after().is_some() {
                tracing::warn!(error = %err, "session check: database unavailable");
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                tracing::error!(error = %err, "session check failed");
                StatusCode::INTERNAL_SERVER_ERROR
            };
            Err(poem::Error::from_status(status))
        }
        Err(reason) => {
            tracing::debug!(%reason, "access token refused");
            Err(InvalidAccessToken.into())
        }
    }
}

/// The 401 body and `WWW-Authenticate` value (RFC 6750 §3) for a missing,
/// malformed, expired or otherwise invalid access token.
pub fn invalid_token() -> (Json<ApiError>, String) {
    (
        ApiError::new("invalid_token", "a valid access token is required"),
        r#"Bearer realm="gatehouse", error="invalid_token", error_description="a valid access token is required""#
            .to_owned(),
    )
}

/// The 401 body and `WWW-Authenticate` value for a request that carries no
/// Bearer credentials (none, or another scheme): the challenge names no
/// error, as RFC 6750 §3.1 asks; the body keeps the one 401 code.
pub fn no_token() -> (Json<ApiError>, String) {
    (
        ApiError::new("invalid_token", "an access token is required"),
        r#"Bearer realm="gatehouse""#.to_owned(),
    )
}

/// The 403 body and `WWW-Authenticate` value for a token without `scope`.
pub fn insufficient_scope(scope: &str) -> (Json<ApiError>, String) {
    (
        ApiError::new(
            "insufficient_scope",
            format!("this operation needs the `{scope}` scope"),
        ),
        format!(r#"Bearer realm="gatehouse", error="insufficient_scope", scope="{scope}""#),
    )
}

/// The answers every protected operation shares: 401, 403, 500, 503.
pub trait Protected: super::ServerFailure {
    fn unauthorized(body: Json<ApiError>, challenge: String) -> Self;
    fn forbidden(body: Json<ApiError>, challenge: String) -> Self;

    /// Answers a request that failed before its handler ran: only the
    /// security scheme can fail for operations without a body.
    fn rejected(err: poem::Error) -> Self {
        match super::Rejection::from_error(&err) {
            super::Rejection::Failed(status) => Self::failed(status),
            super::Rejection::BadRequest(body) => Self::malformed(body),
            super::Rejection::UnsupportedMediaType(body) => Self::unsupported(body),
            super::Rejection::Unauthorized(body, challenge) => Self::unauthorized(body, challenge),
        }
    }

    /// A body that does not parse; without a body, only the security scheme
    /// can fail, so the default is 401.
    fn malformed(_body: Json<ApiError>) -> Self {
        let (body, challenge) = invalid_token();
        Self::unauthorized(body, challenge)
    }

    /// A body in a media type the operation does not take (see `malformed`).
    fn unsupported(body: Json<ApiError>) -> Self {
        Self::malformed(body)
    }

    /// `Err` with 403 unless the token carries `scope` (RFC 6750 §3.1).
    fn require_scope(claims: &AccessClaims, required: &str) -> Result<(), Self> {
        if scope::contains(&claims.scope, required) {
            return Ok(());
        }
        let (body, challenge) = insufficient_scope(required);
        Err(Self::forbidden(body, challenge))
    }
}

/// The `bad_request_handler` of every protected operation's reply.
pub fn rejected<T: Protected>(err: poem::Error) -> T {
    T::rejected(err)
}

/// Declares the response enum of a protected operation: the given success
/// (and other) variants, plus 401, 403, 500 and 503 with their handlers.
macro_rules! protected_reply {
    // An operation with a JSON body also answers 400, 413 and 415.
    ($(#[$meta:meta])* $name:ident with body { $($variants:tt)* }) => {
        $crate::api::security::protected_reply!($(#[$meta])* $name {
            $($variants)*
            /// The body does not parse or is refused (see `error`).
            #[oai(status = 400)]
            BadRequest(poem_openapi::payload::Json<$crate::api::ApiError>),
            /// The body is larger than the server accepts (`--max-body-bytes`).
            #[oai(status = 413)]
            PayloadTooLarge(poem_openapi::payload::Json<$crate::api::ApiError>),
            /// The body is not JSON.
            #[oai(status = 415)]
            UnsupportedMediaType(poem_openapi::payload::Json<$crate::api::ApiError>),
        } overriding {
            fn malformed(body: poem_openapi::payload::Json<$crate::api::ApiError>) -> Self {
                Self::BadRequest(body)
            }
            fn unsupported(body: poem_openapi::payload::Json<$crate::api::ApiError>) -> Self {
                Self::UnsupportedMediaType(body)
            }
        });
    };
    ($(#[$meta:meta])* $name:ident { $($variants:tt)* }) => {
        $crate::api::security::protected_reply!($(#[$meta])* $name { $($variants)* } overriding {});
    };
    ($(#[$meta:meta])* $name:ident { $($variants:tt)* } overriding { $($overrides:tt)* }) => {
        $(#[$meta])*
        #[derive(poem_openapi::ApiResponse)]
        #[oai(bad_request_handler = "crate::api::security::rejected")]
        pub enum $name {
            $($variants)*
            /// The access token is missing, malformed, expired or revoked.
            #[oai(status = 401)]
            Unauthorized(
                poem_openapi::payload::Json<$crate::api::ApiError>,
                #[oai(header = "WWW-Authenticate")] String,
            ),
            /// The access token lacks the scope this operation needs.
            #[oai(status = 403)]
            Forbidden(
                poem_openapi::payload::Json<$crate::api::ApiError>,
                #[oai(header = "WWW-Authenticate")] String,
            ),
            /// An unexpected server error.
            #[oai(status = 500)]
            InternalError(poem_openapi::payload::Json<$crate::api::ApiError>),
            /// The database is unavailable; retry later.
            #[oai(status = 503)]
            Unavailable(
                poem_openapi::payload::Json<$crate::api::ApiError>,
                #[oai(header = "Retry-After")] String,
            ),
        }
        $crate::api::server_failure!($name);

        impl $crate::api::security::Protected for $name {
            fn unauthorized(body: poem_openapi::payload::Json<$crate::api::ApiError>, challenge: String) -> Self {
                Self::Unauthorized(body, challenge)
            }
            fn forbidden(body: poem_openapi::payload::Json<$crate::api::ApiError>, challenge: String) -> Self {
                Self::Forbidden(body, challenge)
            }
            $($overrides)*
        }
    };
}
pub(crate) use protected_reply;
