//! Token introspection (RFC 7662), for resource servers: confidential
//! clients ask whether a token is live now.

use poem::Request;
use poem::http::StatusCode;
use poem::web::Data;
use poem_openapi::payload::{Form, Json};
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Object, OpenApi};
use secrecy::SecretString;
use serde::Deserialize;

use super::ApiTags;
use super::error_body::{NO_STORE, OAuthErrorCode};
use super::failure::{Answer, Failure, Failures, INTERNAL, INVALID_CLIENT, TOO_LARGE, UNAVAILABLE};
use super::oauth::{basic_client, client_info, oauth_errors};
use super::text::{AnyToken, ClientId, ClientSecret, Text, TokenTypeHint};
use crate::auth::clients::{ClientCredentials, ClientError};
use crate::auth::sessions::{Introspection, TokenHint};
use crate::state::AppState;

/// An introspection request (RFC 7662 §2.1), from a confidential client
/// (its credentials in HTTP Basic, or here).
#[derive(Object, Deserialize)]
pub struct IntrospectRequest {
    /// An access token or a refresh token.
    pub token: Text<AnyToken>,
    /// `access_token` or `refresh_token`: which kind to look for first
    /// (any other value is ignored).
    pub token_type_hint: Option<Text<TokenTypeHint>>,
    /// With `client_secret_post`.
    pub client_id: Option<Text<ClientId>>,
    /// With `client_secret_post`.
    #[oai(write_only)]
    pub client_secret: Option<Text<ClientSecret>>,
}

/// What introspection says of a token (RFC 7662 §2.2). A token that is not
/// live now (unknown, expired, revoked, malformed) is exactly
/// `{"active": false}`.
#[derive(Debug, Object)]
#[oai(example)]
pub struct IntrospectionResponse {
    pub active: bool,
    /// Space-separated scopes.
    #[oai(skip_serializing_if_is_none)]
    pub scope: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub client_id: Option<String>,
    /// The user's id, or for a client's own token its client id.
    #[oai(skip_serializing_if_is_none)]
    pub sub: Option<String>,
    /// For a user's token.
    #[oai(skip_serializing_if_is_none)]
    pub username: Option<String>,
    /// `Bearer` (an access token) or `refresh_token`.
    #[oai(skip_serializing_if_is_none)]
    pub token_type: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub exp: Option<i64>,
    #[oai(skip_serializing_if_is_none)]
    pub iat: Option<i64>,
    #[oai(skip_serializing_if_is_none)]
    pub nbf: Option<i64>,
    #[oai(skip_serializing_if_is_none)]
    pub iss: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub aud: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub jti: Option<String>,
}

impl From<Introspection> for IntrospectionResponse {
    fn from(found: Introspection) -> Self {
        Self {
            active: found.active,
            scope: found.scope,
            client_id: found.client_id,
            sub: found.sub,
            username: found.username,
            token_type: found.token_type,
            exp: found.exp,
            iat: found.iat,
            nbf: found.nbf,
            iss: found.iss,
            aud: found.aud,
            jti: found.jti,
        }
    }
}

impl Example for IntrospectionResponse {
    fn example() -> Self {
        Self {
            active: true,
            scope: Some("profile".into()),
            client_id: Some("gatehouse".into()),
            sub: Some("0b6f1c52-8f0e-4d3b-9d55-5b1f5e0c2a7e".into()),
            username: Some("alice".into()),
            token_type: Some("Bearer".into()),
            exp: Some(1_796_084_100),
            iat: Some(1_796_083_200),
            nbf: Some(1_796_083_200),
            iss: Some("https://auth.example.org".into()),
            aud: Some("gatehouse".into()),
            jti: Some("5f0d2a4e-3c1b-4f6e-9a7d-2b8c0e1f3a5d".into()),
        }
    }
}

/// The answer of introspection.
#[derive(ApiResponse)]
pub enum Introspected {
    /// Whether the token is live, and what it is.
    #[oai(status = 200)]
    Ok(
        Json<IntrospectionResponse>,
        #[oai(header = "Cache-Control")] String,
    ),
}

/// How introspection can fail.
pub enum IntrospectFailures {}

impl Failures for IntrospectFailures {
    const ANSWERS: &'static [Answer] = &[
        Answer::oauth(400, "The request is malformed (`invalid_request`)."),
        INVALID_CLIENT,
        TOO_LARGE,
        Answer::new(
            429,
            "Too many failed client authentications (`too_many_attempts`); retry after \
             `Retry-After` seconds.",
        )
        .with(&[super::failure::RETRY_AFTER]),
        INTERNAL,
        UNAVAILABLE,
    ];
}

/// Token introspection.
#[derive(Default)]
pub struct IntrospectApi;

#[OpenApi(tag = "ApiTags::Tokens")]
impl IntrospectApi {
    /// Introspect a token (RFC 7662)
    ///
    /// For resource servers: a confidential client (`client_secret_basic` or
    /// `client_secret_post`) asks whether an access or refresh token is live
    /// now. The answer reads the database, so a revocation made through any
    /// instance shows at once; a token that is not live is exactly
    /// `{"active": false}`.
    #[oai(
        path = "/oauth/introspect",
        method = "post",
        operation_id = "introspectToken",
        transform = "oauth_errors"
    )]
    async fn introspect(
        &self,
        state: Data<&AppState>,
        req: &Request,
        body: Form<IntrospectRequest>,
    ) -> Result<Introspected, Failure<IntrospectFailures>> {
        let Form(form) = body;
        let credentials = match basic_client(req)? {
            Some((id, secret)) => ClientCredentials {
                id: Some(id),
                secret: Some(SecretString::from(secret)),
            },
            None => ClientCredentials {
                id: form.client_id.map(|id| id.0),
                secret: form
                    .client_secret
                    .filter(|secret| !secret.too_long())
                    .map(|secret| SecretString::from(secret.0)),
            },
        };
        let from = client_info(req, credentials.id.clone());
        let client = state
            .clients
            .authenticate(&credentials, &from)
            .await
            .map_err(client_refused)?;
        if !client.confidential {
            return Err(client_refused(ClientError::InvalidClient));
        }
        if form.token.is_empty() {
            return Err(Failure::invalid_request("`token` is required"));
        }
        let hint = match form.token_type_hint.as_deref() {
            Some("access_token") => Some(TokenHint::AccessToken),
            Some("refresh_token") => Some(TokenHint::RefreshToken),
            _ => None,
        };
        let found = state.sessions.introspect(&form.token, hint).await?;
        Ok(Introspected::Ok(Json(found.into()), NO_STORE.into()))
    }
}

/// A client that did not authenticate, as RFC 6749 §5.2 answers it, with
/// a Basic challenge.
pub(super) fn client_refused<F: Failures>(err: ClientError) -> Failure<F> {
    match err {
        ClientError::InvalidClient => {
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
        ClientError::Throttled(retry_after) => Failure::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            "too many failed client authentications; retry later",
        )
        .header(poem::http::header::RETRY_AFTER, retry_after.to_string()),
        ClientError::Internal(err) => err.into(),
    }
}
