//! The OAuth2 password-flow security scheme and its access-token checker.

use poem::Request;
use poem_openapi::auth::Bearer;
use poem_openapi::payload::Json;
use poem_openapi::{OAuthScopes, SecurityScheme};

use super::ApiError;
use crate::AppState;
use crate::auth::jwt::AccessClaims;

/// The scopes an access token can carry.
#[derive(Debug, Clone, Copy, OAuthScopes)]
pub enum Scopes {
    /// Read your own account and sessions.
    #[oai(rename = "profile")]
    Profile,
}

/// OAuth2 password flow: Swagger UI's **Authorize** posts the username and
/// password to `/oauth/token` and sends the access token as a Bearer token.
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
pub struct BearerAuth(pub AccessClaims);

/// The token was refused; the precise reason is logged, never sent.
#[derive(Debug, thiserror::Error)]
#[error("invalid access token")]
pub struct InvalidAccessToken;

impl poem::error::ResponseError for InvalidAccessToken {
    fn status(&self) -> poem::http::StatusCode {
        poem::http::StatusCode::UNAUTHORIZED
    }
}

async fn check_access_token(req: &Request, bearer: Bearer) -> poem::Result<AccessClaims> {
    let state = req
        .data::<AppState>()
        .expect("AppState is attached to every route");
    state
        .auth
        .verify_access_token(&bearer.token)
        .map_err(|reason| {
            tracing::debug!(%reason, "access token refused");
            InvalidAccessToken.into()
        })
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
