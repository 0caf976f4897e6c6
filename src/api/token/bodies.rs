//! The bodies of the token endpoints: their requests and RFC 6749's token
//! response.

use poem_openapi::Object;
use poem_openapi::types::Example;
use secrecy::ExposeSecret;
use serde::Deserialize;

use crate::api::text::{
    AuthorizationCode, ClientId, ClientSecret, CodeVerifier, GrantType, LoginName, Password,
    RedirectUri, RefreshToken, Scope, Text,
};
use crate::auth::sessions::IssuedTokens;

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
    /// For `grant_type=authorization_code`: the code from the redirect.
    pub code: Option<Text<AuthorizationCode>>,
    /// For `grant_type=authorization_code`: the `redirect_uri` of the
    /// authorization request, repeated.
    pub redirect_uri: Option<Text<RedirectUri>>,
    /// For `grant_type=authorization_code`: the PKCE verifier (RFC 7636).
    pub code_verifier: Option<Text<CodeVerifier>>,
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
