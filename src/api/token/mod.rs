//! The token endpoints: the OAuth2 form endpoint (RFC 6749), its JSON twins
//! for SDK users, and logout.

use poem::Request;
use poem::http::StatusCode;
use poem::web::Data;
use poem_openapi::payload::{Form, Json};
use poem_openapi::{ApiResponse, OpenApi};
use secrecy::{ExposeSecret as _, SecretString};

use super::ApiTags;
use super::error_body::{NO_STORE, OAuthErrorCode};
use super::failure::{
    Answer, BUSY, Failure, Failures, INTERNAL, INVALID_CLIENT, NOT_JSON, TOO_LARGE,
    TOO_MANY_ATTEMPTS, UNAVAILABLE,
};
use super::oauth::{basic_client, client_info, oauth_errors};
use super::text::Text;
use crate::auth::clients::ClientCredentials;
use crate::auth::grant::GrantParams;
use crate::auth::mfa::Factor;
use crate::auth::sessions::{GrantError, IssuedTokens};
use crate::state::AppState;

mod bodies;

use bodies::{
    LoginMfaRequest, LoginRequest, LogoutRequest, RefreshRequest, TokenRequest, TokenResponse,
};

/// Tokens issued.
#[derive(ApiResponse)]
pub enum Issued {
    /// Tokens issued.
    #[oai(status = 200)]
    Ok(
        Json<TokenResponse>,
        #[oai(header = "Cache-Control")] String,
        #[oai(header = "Pragma")] String,
    ),
}

impl From<IssuedTokens> for Issued {
    fn from(tokens: IssuedTokens) -> Self {
        Self::Ok(Json(tokens.into()), NO_STORE.into(), "no-cache".into())
    }
}

/// How the OAuth2 token endpoint can fail.
pub enum TokenFailures {}

impl Failures for TokenFailures {
    const ANSWERS: &'static [Answer] = &[
        Answer::oauth(
            400,
            "The request is malformed (`invalid_request`), the credentials or the \
             refresh token are refused (`invalid_grant`), or the grant type or \
             scope is not supported (`unsupported_grant_type`, `invalid_scope`).",
        ),
        INVALID_CLIENT,
        MFA_REQUIRED,
        TOO_LARGE,
        TOO_MANY_ATTEMPTS,
        INTERNAL,
        BUSY,
    ];
}

/// The password was right; the account needs a second factor.
const MFA_REQUIRED: Answer = Answer::mfa_required(
    "The password is right and the account has a second factor (`mfa_required`): \
     finish with the `mfa_token` and a code (`grant_type=urn:gatehouse:grant-type:mfa-otp` \
     or `…:mfa-recovery-code`, or `POST /auth/login/mfa`).",
);

/// How the JSON grant endpoints can fail: as the token endpoint, without
/// `401 invalid_client`, since they take no client credentials.
pub enum GrantFailures {}

impl Failures for GrantFailures {
    const ANSWERS: &'static [Answer] = &[
        Answer::oauth(
            400,
            "The request is malformed (`invalid_request`), the credentials or the \
             refresh token are refused (`invalid_grant`), or the scope is not \
             supported (`invalid_scope`).",
        ),
        TOO_LARGE,
        TOO_MANY_ATTEMPTS,
        INTERNAL,
        BUSY,
    ];
}

/// How the JSON password grant can fail: as the other JSON grants, and
/// 403 `mfa_required` for an account with a second factor.
pub enum LoginFailures {}

impl Failures for LoginFailures {
    const ANSWERS: &'static [Answer] = &[
        Answer::oauth(
            400,
            "The request is malformed (`invalid_request`), the username or password is \
             refused (`invalid_grant`: one answer for both), or the scope is not supported \
             (`invalid_scope`).",
        ),
        MFA_REQUIRED,
        TOO_LARGE,
        TOO_MANY_ATTEMPTS,
        INTERNAL,
        BUSY,
    ];
}

/// How the second step of a login can fail: as the JSON grants, without
/// a second `mfa_required`.
pub enum MfaGrantFailures {}

impl Failures for MfaGrantFailures {
    const ANSWERS: &'static [Answer] = &[
        Answer::oauth(
            400,
            "The request is malformed (`invalid_request`), or the `mfa_token` or the code \
             is refused (`invalid_grant`): forged, expired, used, or wrong.",
        ),
        TOO_LARGE,
        TOO_MANY_ATTEMPTS,
        INTERNAL,
        BUSY,
    ];
}

/// A refused or failed grant, as RFC 6749 §5.2 answers it.
fn refused<F: Failures>(err: GrantError) -> Failure<F> {
    let bad_request =
        |code, description| Failure::oauth(StatusCode::BAD_REQUEST, code, description);
    match err {
        GrantError::InvalidRequest(msg) => bad_request(OAuthErrorCode::InvalidRequest, msg),
        GrantError::InvalidGrant(msg) => bad_request(OAuthErrorCode::InvalidGrant, msg.into()),
        GrantError::InvalidScope(err) => bad_request(OAuthErrorCode::InvalidScope, err.0),
        GrantError::UnsupportedGrantType(msg) => {
            bad_request(OAuthErrorCode::UnsupportedGrantType, msg)
        }
        GrantError::TooManyAttempts(retry_after) => Failure::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            "too many failed logins; retry later",
        )
        .header(poem::http::header::RETRY_AFTER, retry_after.to_string()),
        GrantError::InvalidClient => {
            let failure = Failure::oauth(
                StatusCode::UNAUTHORIZED,
                OAuthErrorCode::InvalidClient,
                "client authentication failed",
            );
            // RFC 6749 §5.2: required when Basic was tried, allowed always.
            failure.header(
                poem::http::header::WWW_AUTHENTICATE,
                r#"Basic realm="gatehouse""#,
            )
        }
        GrantError::UnauthorizedClient(msg) => bad_request(OAuthErrorCode::UnauthorizedClient, msg),
        GrantError::MfaRequired(token) => Failure::mfa_required(token.expose_secret().to_owned()),
        GrantError::Internal(err) => err.into(),
    }
}

/// The answer of logout.
#[derive(ApiResponse)]
pub enum LoggedOut {
    /// The session is revoked (or the token was unknown: logout is idempotent).
    #[oai(status = 204)]
    Done,
}

/// How logout can fail.
pub enum LogoutFailures {}

impl Failures for LogoutFailures {
    const ANSWERS: &'static [Answer] = &[
        Answer::new(400, "The body does not parse."),
        TOO_LARGE,
        NOT_JSON,
        INTERNAL,
        UNAVAILABLE,
    ];
}

/// Token issuance and revocation.
#[derive(Default)]
pub struct TokenApi;

#[OpenApi(tag = "ApiTags::Tokens")]
impl TokenApi {
    /// OAuth2 token endpoint
    ///
    /// RFC 6749 §4.1.3 (authorization code, with PKCE), §4.3 (password),
    /// §4.4 (client credentials) and §6 (refresh), form-encoded. For an
    /// account with a second factor, the password grant answers 403
    /// `mfa_required` with an `mfa_token`; finish with
    /// `grant_type=urn:gatehouse:grant-type:mfa-otp` (`mfa_token`, `otp`) or
    /// `urn:gatehouse:grant-type:mfa-recovery-code` (`mfa_token`,
    /// `recovery_code`). This is the `tokenUrl` and
    /// `refreshUrl` of the OAuth2 security scheme, so Swagger UI's Authorize
    /// button logs in here. A `client_id` in the body or HTTP Basic client
    /// credentials are accepted (clients are public).
    #[oai(
        path = "/oauth/token",
        method = "post",
        operation_id = "issueToken",
        transform = "oauth_errors"
    )]
    async fn token(
        &self,
        state: Data<&AppState>,
        req: &Request,
        body: Form<TokenRequest>,
    ) -> Result<Issued, Failure<TokenFailures>> {
        let Form(form) = body;
        if form.client_secret.as_ref().is_some_and(Text::too_long) {
            return Err(Failure::invalid_request(
                "`client_secret` is longer than 1024 characters",
            ));
        }
        let body_secret = form
            .client_secret
            .map(|secret| secret.0)
            .filter(|secret| !secret.is_empty());
        let credentials = match basic_client(req)? {
            None => ClientCredentials {
                id: form.client_id.map(|id| id.0).filter(|id| !id.is_empty()),
                secret: body_secret.map(SecretString::from),
            },
            Some((id, secret))
                if form
                    .client_id
                    .as_deref()
                    .is_none_or(|body_id| body_id.is_empty() || body_id == id) =>
            {
                // RFC 6749 §2.3: one authentication method per request.
                if body_secret.is_some() {
                    return Err(Failure::invalid_request(
                        "client credentials both in the Authorization header and in the body",
                    ));
                }
                ClientCredentials {
                    id: Some(id),
                    secret: Some(secret)
                        .filter(|s| !s.is_empty())
                        .map(SecretString::from),
                }
            }
            Some(_) => {
                return Err(Failure::invalid_request(
                    "`client_id` differs from the client in the Authorization header",
                ));
            }
        };
        let params = GrantParams {
            username: form.username.map(|name| name.0),
            password: form.password.map(|password| SecretString::from(password.0)),
            refresh_token: form.refresh_token.map(|token| token.0),
            scope: form.scope.map(|scope| scope.0),
            code: form.code.map(|code| code.0),
            redirect_uri: form.redirect_uri.map(|uri| uri.0),
            code_verifier: form.code_verifier.map(|verifier| verifier.0),
            mfa_token: form.mfa_token.map(|token| token.0),
            otp: form.otp.map(|otp| otp.0),
            recovery_code: form.recovery_code.map(|code| code.0),
        };
        let client = client_info(req, credentials.id.clone());
        let issued = state
            .sessions
            .grant(&form.grant_type, params, &credentials, client)
            .await;
        Ok(issued.map_err(refused)?.into())
    }

    /// Log in with a username and password (JSON)
    ///
    /// The password grant as JSON, for SDKs. Unknown users and wrong
    /// passwords get the same `invalid_grant` answer. For an account with a
    /// second factor, the right password is answered 403 `mfa_required`
    /// with an `mfa_token` for `loginMfa`.
    #[oai(
        path = "/auth/login",
        method = "post",
        operation_id = "login",
        transform = "oauth_errors"
    )]
    async fn login(
        &self,
        state: Data<&AppState>,
        req: &Request,
        body: Json<LoginRequest>,
    ) -> Result<Issued, Failure<LoginFailures>> {
        let Json(login) = body;
        let password = SecretString::from(login.password.0);
        let client = client_info(req, None);
        let scope = login.scope.as_deref();
        let issued = state
            .sessions
            .password_grant(&login.username, password, scope, client)
            .await;
        Ok(issued.map_err(refused)?.into())
    }

    /// Finish a login with a second factor (JSON)
    ///
    /// The second step of `login` for an account with a second factor: the
    /// `mfa_token` of its 403 `mfa_required` with either `otp` (the
    /// authenticator app's code) or `recovery_code`. A forged, expired or
    /// used `mfa_token`, and a wrong or already used code, are 400
    /// `invalid_grant`; a token takes a few wrong codes at most.
    #[oai(
        path = "/auth/login/mfa",
        method = "post",
        operation_id = "loginMfa",
        transform = "oauth_errors"
    )]
    async fn login_mfa(
        &self,
        state: Data<&AppState>,
        req: &Request,
        body: Json<LoginMfaRequest>,
    ) -> Result<Issued, Failure<MfaGrantFailures>> {
        let Json(request) = body;
        let factor = match (&request.otp, &request.recovery_code) {
            (Some(otp), None) => Factor::Otp(otp),
            (None, Some(code)) => Factor::RecoveryCode(code),
            _ => {
                return Err(Failure::invalid_request(
                    "give exactly one of `otp` and `recovery_code`",
                ));
            }
        };
        let client = client_info(req, None);
        let issued = state
            .sessions
            .second_factor_grant(&request.mfa_token, factor, &client)
            .await;
        Ok(issued.map_err(refused)?.into())
    }

    /// Refresh a token pair (JSON)
    ///
    /// The refresh grant as JSON, for SDKs. Every refresh rotates the refresh
    /// token. Presenting a rotated token again within the grace window returns
    /// the same successor; after it, a new one if the first was never used
    /// (which supersedes it), otherwise the whole session is revoked.
    #[oai(
        path = "/auth/refresh",
        method = "post",
        operation_id = "refresh",
        transform = "oauth_errors"
    )]
    async fn refresh(
        &self,
        state: Data<&AppState>,
        req: &Request,
        body: Json<RefreshRequest>,
    ) -> Result<Issued, Failure<GrantFailures>> {
        let Json(refresh) = body;
        let client = client_info(req, None);
        let issued = state
            .sessions
            .refresh_grant(&refresh.refresh_token, refresh.scope.as_deref(), &client)
            .await;
        Ok(issued.map_err(refused)?.into())
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
    ) -> Result<LoggedOut, Failure<LogoutFailures>> {
        if body.refresh_token.is_empty() {
            return Err(Failure::bad_request(
                "invalid_request",
                "`refresh_token` is required",
            ));
        }
        state
            .sessions
            .logout(&body.0.refresh_token, &client_info(req, None))
            .await?;
        Ok(LoggedOut::Done)
    }
}
