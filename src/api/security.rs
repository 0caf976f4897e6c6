//! The OAuth2 password-flow security scheme and its access-token checker.

use poem::Request;
use poem::http::StatusCode;
use poem_openapi::auth::Bearer;
use poem_openapi::{OAuthScopes, SecurityScheme};

use super::failure::{Failure, Failures};
use crate::auth::scope;
use crate::auth::sessions::{AuthenticateError, Caller};
use crate::state::AppState;

/// The scopes an access token can carry.
#[derive(Debug, Clone, Copy, OAuthScopes)]
pub enum Scopes {
    /// Read your own account and sessions.
    #[oai(rename = "profile")]
    Profile,
}

/// OAuth2, two flows: Swagger UI's **Authorize** either sends you to
/// Gatehouse's sign-in page (authorization code with PKCE; `client_id`
/// `gatehouse`, no secret) or posts the username and password to
/// `/oauth/token` (password, first-party only); either way it sends the
/// access token as a Bearer token. For an account with a second factor, use
/// the authorization code flow: its sign-in page asks for the code after
/// the password, while the password flow stops at 403 `mfa_required`.
/// Access tokens are JWTs (RFC 9068, `typ: at+jwt`) signed and checked as
/// the JWT best current practices (RFC8725) ask: one pinned algorithm
/// (EdDSA, or HS256 by configuration), explicit `typ`, `iss`, `aud`, `exp`
/// and `nbf` checks, and keys named by `kid` from the JWKS.
#[derive(Debug, SecurityScheme)]
#[oai(
    rename = "OAuth2",
    ty = "oauth2",
    flows(
        authorization_code(
            authorization_url = "/oauth/authorize",
            token_url = "/oauth/token",
            refresh_url = "/oauth/token",
            scopes = "Scopes"
        ),
        password(
            token_url = "/oauth/token",
            refresh_url = "/oauth/token",
            scopes = "Scopes"
        )
    ),
    checker = "check_access_token"
)]
pub struct BearerAuth(pub Caller);

impl BearerAuth {
    /// The caller, if the token carries `scope`; 403 otherwise (RFC 6750
    /// §3.1). (The scheme's `scope` attribute only documents it.)
    pub fn with_scope<F: Failures>(self, required: &str) -> Result<Caller, Failure<F>> {
        if scope::contains(&self.0.claims.scope, required) {
            return Ok(self.0);
        }
        Err(Failure::new(
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            format!("this operation needs the `{required}` scope"),
        )
        .header(
            poem::http::header::WWW_AUTHENTICATE,
            format!(r#"Bearer realm="gatehouse", error="insufficient_scope", scope="{required}""#),
        ))
    }
}

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
    match state.sessions.authenticate(&bearer.token).await {
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
