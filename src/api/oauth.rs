//! What the OAuth2 endpoints share: RFC 6749 errors, `Cache-Control:
//! no-store`, and reading the client from the request.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use poem::Request;
use poem_openapi::payload::Json;
use poem_openapi::{Enum, Object};

use crate::auth::service::ClientInfo;

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

/// The client id of an `Authorization: Basic` header (RFC 6749 §2.3.1), if
/// there is one. Empty credentials (Swagger UI sends `Basic Og==`, i.e. `:`,
/// when its client fields are blank) are no client at all; credentials that
/// do not decode to `id:secret` are `invalid_client`.
pub fn basic_client_id(req: &Request) -> Result<Option<String>, MalformedBasic> {
    let Some(value) = req.headers().get(poem::http::header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().unwrap_or_default();
    let Some((scheme, credentials)) = value.split_once(' ') else {
        return Ok(None);
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let decoded = STANDARD
        .decode(credentials.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok());
    match decoded.as_deref().and_then(|text| text.split_once(':')) {
        Some(("", _secret)) => Ok(None),
        Some((id, _secret)) => Ok(Some(id.to_owned())),
        None => Err(MalformedBasic),
    }
}

/// An `Authorization: Basic` header that does not decode to `id:secret`.
pub struct MalformedBasic;

impl MalformedBasic {
    /// The `invalid_client` body, `Cache-Control` and `WWW-Authenticate`.
    pub fn into_parts(self) -> (Json<OAuthError>, String, String) {
        (
            OAuthError::new(
                OAuthErrorCode::InvalidClient,
                "malformed HTTP Basic client credentials",
            ),
            NO_STORE.into(),
            r#"Basic realm="gatehouse""#.into(),
        )
    }
}

pub fn client_info(req: &Request, client_id: Option<String>) -> ClientInfo {
    ClientInfo {
        client_id,
        user_agent: req
            .headers()
            .get(poem::http::header::USER_AGENT)
            .and_then(|ua| ua.to_str().ok())
            .map(str::to_owned),
        ip: req
            .data::<crate::AppState>()
            .expect("AppState is attached to every route")
            .trusted_proxies
            .client_address(req)
            .map(|ip| ip.to_string()),
    }
}
