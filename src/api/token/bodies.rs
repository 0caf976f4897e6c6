//! The bodies of the token endpoints: their requests and RFC 6749's token
//! response.

use poem_openapi::Object;
use poem_openapi::types::Example;
use secrecy::ExposeSecret;
use serde::Deserialize;

use crate::api::text::{
    AuthorizationCode, ClientId, ClientSecret, CodeVerifier, GrantType, LoginName, MfaToken, Otp,
    Password, RecoveryCode, RedirectUri, RefreshToken, Scope, Text,
};
use crate::auth::sessions::IssuedTokens;

/// An OAuth2 token request (RFC 6749 §4.1.3 authorization code, §4.3.2
/// password, §4.4.2 client credentials, §6 refresh), and the second step
/// of a password grant that needs a second factor.
// No `Debug`: it holds a password.
#[derive(Object, Deserialize)]
pub struct TokenRequest {
    /// The grant: `authorization_code`, `password`, `refresh_token`,
    /// `client_credentials`, or a second-factor step
    /// (`urn:gatehouse:grant-type:mfa-otp`, `…:mfa-recovery-code`).
    pub grant_type: GrantType,
    /// For `grant_type=password`.
    pub username: Option<Text<LoginName>>,
    /// For `grant_type=password`.
    #[oai(write_only)]
    pub password: Option<Text<Password>>,
    /// For `grant_type=refresh_token`.
    pub refresh_token: Option<Text<RefreshToken>>,
    /// For `grant_type=authorization_code`: the code from the redirect.
    pub code: Option<Text<AuthorizationCode>>,
    /// For `grant_type=authorization_code`: the `redirect_uri` of the
    /// authorization request, repeated.
    pub redirect_uri: Option<Text<RedirectUri>>,
    /// For `grant_type=authorization_code`: the PKCE verifier (RFC 7636).
    pub code_verifier: Option<Text<CodeVerifier>>,
    /// For the second-factor grants: the `mfa_token` of the password
    /// grant's 403 `mfa_required`.
    pub mfa_token: Option<Text<MfaToken>>,
    /// For `grant_type=urn:gatehouse:grant-type:mfa-otp`: the six-digit
    /// code of the authenticator app.
    #[oai(write_only)]
    pub otp: Option<Text<Otp>>,
    /// For `grant_type=urn:gatehouse:grant-type:mfa-recovery-code`: one of
    /// the recovery codes.
    #[oai(write_only)]
    pub recovery_code: Option<Text<RecoveryCode>>,
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

/// The second step of a login that needs a second factor: the `mfa_token`
/// of its 403 `mfa_required`, and either `otp` or `recovery_code`.
#[derive(Object)]
#[oai(example)]
pub struct LoginMfaRequest {
    pub mfa_token: Text<MfaToken>,
    /// The six-digit code of the authenticator app.
    #[oai(nullable)]
    pub otp: Option<Text<Otp>>,
    /// One of the recovery codes (instead of `otp`).
    #[oai(nullable)]
    pub recovery_code: Option<Text<RecoveryCode>>,
}

impl Example for LoginMfaRequest {
    fn example() -> Self {
        Self {
            mfa_token: Text::new("q3YhV0t1c2xqY2Zl3jR2mZ8xk4bW7nP0aQs9uE6fG1H"),
            otp: Some(Text::new("123456")),
            recovery_code: None,
        }
    }
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
    /// Single-use: every refresh returns a new one. Absent for the
    /// `client_credentials` grant (RFC 6749 §4.4.3), which opens no session.
    #[oai(skip_serializing_if_is_none)]
    pub refresh_token: Option<String>,
    /// Seconds until the refresh token expires (absent with it).
    #[oai(skip_serializing_if_is_none)]
    pub refresh_token_expires_in: Option<i64>,
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
            refresh_token: Some("Y3eTi4h1jQm8jQ2f6V8z3e0r7Q0nZ2pBvS5kW9xL4aE".into()),
            refresh_token_expires_in: Some(1_209_600),
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
            refresh_token: tokens
                .refresh_token
                .map(|token| token.expose_secret().to_owned()),
            refresh_token_expires_in: tokens.refresh_token_expires_in,
            scope: tokens.scope,
        }
    }
}
