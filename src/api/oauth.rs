//! What the OAuth2 endpoints share: RFC 6749 errors, `Cache-Control:
//! no-store`, and reading the client from the request.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use poem::http::StatusCode;
use poem::{Endpoint, EndpointExt as _, IntoResponse, Request};

use super::error_body::OAuthErrorCode;
use super::failure::{Answer, Failure, Failures};
use crate::auth::client::ClientInfo;

/// The client id and secret of an `Authorization: Basic` header (RFC 6749
/// §2.3.1: each form-urlencoded), if there is one. Empty credentials
/// (Swagger UI sends `Basic Og==`, i.e. `:`, when its client fields are
/// blank) are no client at all; credentials that do not decode to
/// `id:secret` are `invalid_client`.
pub fn basic_client(req: &Request) -> Result<Option<(String, String)>, MalformedBasic> {
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
        Some((id, secret)) => match (form_decode(id), form_decode(secret)) {
            (Some(id), Some(secret)) => Ok(Some((id, secret))),
            _ => Err(MalformedBasic),
        },
        None => Err(MalformedBasic),
    }
}

/// `text` decoded from `application/x-www-form-urlencoded` (`+` is a space,
/// `%XX` a byte); `None` if it is not valid UTF-8 once decoded.
fn form_decode(text: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(text.len());
    let mut input = text.bytes();
    while let Some(byte) = input.next() {
        match byte {
            b'+' => bytes.push(b' '),
            b'%' => {
                let hex = [input.next()?, input.next()?];
                let hex = std::str::from_utf8(&hex).ok()?;
                bytes.push(u8::from_str_radix(hex, 16).ok()?);
            }
            other => bytes.push(other),
        }
    }
    String::from_utf8(bytes).ok()
}

/// An `Authorization: Basic` header that does not decode to `id:secret`.
#[derive(Debug)]
pub struct MalformedBasic;

impl<F: Failures> From<MalformedBasic> for Failure<F> {
    /// `401 invalid_client` with a Basic challenge (RFC 6749 §5.2).
    fn from(_: MalformedBasic) -> Self {
        Failure::oauth(
            StatusCode::UNAUTHORIZED,
            OAuthErrorCode::InvalidClient,
            "malformed HTTP Basic client credentials",
        )
        .header(
            poem::http::header::WWW_AUTHENTICATE,
            r#"Basic realm="gatehouse""#,
        )
    }
}

/// The `transform` of the OAuth2 operations: a request they cannot parse
/// (a malformed body, another media type) gets RFC 6749's `400
/// invalid_request` with `Cache-Control: no-store`, not the `ApiError` the
/// other operations answer.
pub fn oauth_errors(ep: impl Endpoint + 'static) -> impl Endpoint {
    ep.around(|ep, req| async move {
        match ep.call(req).await {
            Err(err) if !err.is_from_response() && err.status().is_client_error() => {
                let failure = Failure::<InvalidRequest>::invalid_request(super::describe(&err));
                Ok(failure.into_response())
            }
            answer => answer.map(IntoResponse::into_response),
        }
    })
}

/// What [`oauth_errors`] answers.
enum InvalidRequest {}

impl Failures for InvalidRequest {
    const ANSWERS: &'static [Answer] = &[Answer::oauth(400, "The request is malformed.")];
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
            .data::<super::TrustedProxies>()
            .expect("the trusted proxies are attached to every route")
            .client_address(req)
            .map(|ip| ip.to_string()),
    }
}
