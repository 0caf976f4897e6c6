//! Token revocation (RFC 7009).

use poem::Request;
use poem::web::Data;
use poem_openapi::payload::Form;
use poem_openapi::{ApiResponse, Object, OpenApi};
use serde::Deserialize;

use super::ApiTags;
use super::error_body::NO_STORE;
use super::error_body::OAuthErrorCode;
use super::failure::{Answer, Failure, Failures, INTERNAL, INVALID_CLIENT, TOO_LARGE, UNAVAILABLE};
use super::introspect::client_refused;
use super::oauth::{basic_client, client_info, oauth_errors};
use super::text::{AnyToken, ClientId, ClientSecret, Text, TokenTypeHint};
use crate::auth::client::valid_client_id;
use crate::auth::clients::ClientCredentials;
use crate::auth::sessions::{RevokeError, TokenHint};
use crate::state::AppState;
use poem::http::StatusCode;
use secrecy::SecretString;

/// A token revocation request (RFC 7009 §2.1).
#[derive(Object, Deserialize)]
pub struct RevokeRequest {
    /// A refresh token or an access token; either ends its session.
    pub token: Text<AnyToken>,
    /// `refresh_token` or `access_token`: which kind to look for first.
    pub token_type_hint: Option<Text<TokenTypeHint>>,
    /// The client's id (`client_secret_post`, or a public client's id alone).
    pub client_id: Option<Text<ClientId>>,
    /// With `client_secret_post`.
    #[oai(write_only)]
    pub client_secret: Option<Text<ClientSecret>>,
}

/// The answer of token revocation.
#[derive(ApiResponse)]
pub enum Revoked {
    /// The token's session is revoked, or the token was unknown or invalid
    /// (RFC 7009 §2.2: the answer is the same).
    #[oai(status = 200)]
    Ok(#[oai(header = "Cache-Control")] String),
}

/// How token revocation can fail.
pub enum RevokeFailures {}

impl Failures for RevokeFailures {
    const ANSWERS: &'static [Answer] = &[
        Answer::oauth(
            400,
            "The request is malformed (`invalid_request`), or a confidential client \
             presented a token issued to another client (`unauthorized_client`).",
        ),
        INVALID_CLIENT,
        TOO_LARGE,
        INTERNAL,
        UNAVAILABLE,
    ];
}

/// Token revocation.
#[derive(Default)]
pub struct RevokeApi;

#[OpenApi(tag = "ApiTags::Tokens")]
impl RevokeApi {
    /// Revoke a token (RFC 7009)
    ///
    /// Ends the session of a refresh token (its whole family) or of an access
    /// token. Unknown, expired and already revoked tokens get the same 200,
    /// so the answer reveals nothing.
    #[oai(
        path = "/oauth/revoke",
        method = "post",
        operation_id = "revokeToken",
        transform = "oauth_errors"
    )]
    async fn revoke(
        &self,
        state: Data<&AppState>,
        req: &Request,
        body: Form<RevokeRequest>,
    ) -> Result<Revoked, Failure<RevokeFailures>> {
        let basic = basic_client(req)?;
        let Form(form) = body;
        if form.token.is_empty() {
            return Err(Failure::invalid_request("`token` is required"));
        }
        if form.token_type_hint.as_ref().is_some_and(Text::too_long)
            || form.client_secret.as_ref().is_some_and(Text::too_long)
        {
            return Err(Failure::invalid_request(
                "`token_type_hint` or `client_secret` is too long",
            ));
        }
        if form
            .client_id
            .as_deref()
            .is_some_and(|id| !valid_client_id(id))
        {
            return Err(Failure::invalid_request(
                "`client_id` must be at most 255 printable characters",
            ));
        }
        // RFC 7009 §2.1: an unknown hint is ignored, the token still searched.
        let hint = match form.token_type_hint.as_deref() {
            Some("access_token") => Some(TokenHint::AccessToken),
            Some("refresh_token") => Some(TokenHint::RefreshToken),
            _ => None,
        };
        // A client that authenticates (a confidential one) may revoke only
        // its own tokens; one that sends a secret must get it right.
        let credentials = match basic {
            Some((id, secret)) => Some(ClientCredentials {
                id: Some(id),
                secret: Some(secret)
                    .filter(|s| !s.is_empty())
                    .map(SecretString::from),
            }),
            None => form
                .client_secret
                .as_ref()
                .filter(|secret| !secret.is_empty())
                .map(|secret| ClientCredentials {
                    id: form.client_id.as_ref().map(|id| id.0.clone()),
                    secret: Some(SecretString::from(secret.0.clone())),
                }),
        };
        let from = client_info(req, None);
        let confidential = match &credentials {
            Some(credentials) => {
                let client = state
                    .clients
                    .authenticate(credentials, &from)
                    .await
                    .map_err(client_refused)?;
                client.confidential.then_some(client.id)
            }
            None => None,
        };
        match state
            .sessions
            .revoke_token(&form.token, hint, confidential.as_deref(), &from)
            .await
        {
            Ok(()) => Ok(Revoked::Ok(NO_STORE.into())),
            Err(RevokeError::NotItsToken) => Err(Failure::oauth(
                StatusCode::BAD_REQUEST,
                OAuthErrorCode::UnauthorizedClient,
                "the token was not issued to this client",
            )),
            Err(RevokeError::Internal(err)) => Err(err.into()),
        }
    }
}
