//! The bodies of error answers: `ApiError` everywhere but the OAuth2
//! endpoints, RFC 6749's `OAuthError` there, and the RFC 6750 401s.

use poem_openapi::payload::Json;
use poem_openapi::{Enum, Object};

/// The error body of every operation except the OAuth2 token endpoints.
#[derive(Debug, Clone, Object)]
pub struct ApiError {
    /// A stable, machine-readable code, e.g. `invalid_request`,
    /// `invalid_token`, `insufficient_scope`, `username_taken`, `not_found`,
    /// `unsupported_media_type`, `payload_too_large`, `unavailable`.
    pub error: String,
    /// A human-readable explanation.
    pub message: String,
}

impl ApiError {
    pub fn new(error: &str, message: impl Into<String>) -> Json<Self> {
        Json(Self {
            error: error.to_owned(),
            message: message.into(),
        })
    }
}

/// `Cache-Control` of every token endpoint answer (RFC 6749 §5.1).
pub const NO_STORE: &str = "no-store";

/// RFC 6749 §5.2 error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum OAuthErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    InvalidScope,
}

/// An error of the token endpoints (RFC 6749 §5.2).
#[derive(Debug, Clone, Object)]
pub struct OAuthError {
    pub error: OAuthErrorCode,
    /// A human-readable explanation.
    pub error_description: String,
}

impl OAuthError {
    /// The body of an RFC 6749 error answer.
    pub fn new(error: OAuthErrorCode, description: impl Into<String>) -> Json<Self> {
        Json(Self {
            error,
            error_description: description.into(),
        })
    }
}

/// The password was right and the account needs a second factor (the
/// convention Auth0 uses): finish with `grant_type=urn:gatehouse:grant-type:mfa-otp`
/// (or `…:mfa-recovery-code`) and this `mfa_token`, or `POST /auth/login/mfa`.
#[derive(Debug, Clone, Object)]
#[oai(example)]
pub struct MfaRequired {
    /// Always `mfa_required`.
    pub error: String,
    /// A human-readable explanation.
    pub error_description: String,
    /// Continues this login: single-use, valid for 5 minutes, and for a few
    /// wrong codes at most.
    pub mfa_token: String,
}

impl MfaRequired {
    pub fn new(mfa_token: String) -> Self {
        Self {
            error: "mfa_required".into(),
            error_description: "the account needs a second factor: send a code with this mfa_token"
                .into(),
            mfa_token,
        }
    }
}

impl poem_openapi::types::Example for MfaRequired {
    fn example() -> Self {
        Self::new("q3YhV0t1c2xqY2Zl3jR2mZ8xk4bW7nP0aQs9uE6fG1H".into())
    }
}

/// The 401 code, message and `WWW-Authenticate` value (RFC 6750 §3) for a
/// malformed, expired or otherwise invalid access token.
pub const INVALID_TOKEN: (&str, &str, &str) = (
    "invalid_token",
    "a valid access token is required",
    r#"Bearer realm="gatehouse", error="invalid_token", error_description="a valid access token is required""#,
);

/// The same for a request that carries no Bearer credentials (none, or
/// another scheme): the challenge names no error, as RFC 6750 §3.1 asks;
/// the body keeps the one 401 code.
pub const NO_TOKEN: (&str, &str, &str) = (
    "invalid_token",
    "an access token is required",
    r#"Bearer realm="gatehouse""#,
);
