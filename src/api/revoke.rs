//! Token revocation (RFC 7009).

use poem::Request;
use poem::web::Data;
use poem_openapi::payload::{Form, Json};
use poem_openapi::{ApiResponse, Object, OpenApi};
use serde::Deserialize;

use super::oauth::{NO_STORE, OAuthError, OAuthErrorCode, basic_client_id, client_info};
use super::text::{AnyToken, ClientId, Text, TokenTypeHint};
use super::{ApiError, ApiTags, ServerFailure, server_failure};
use crate::AppState;
use crate::auth::revocation::TokenHint;
use crate::auth::service::valid_client_id;

/// A token revocation request (RFC 7009 §2.1).
#[derive(Object, Deserialize)]
pub struct RevokeRequest {
    /// A refresh token or an access token; either ends its session.
    pub token: Text<AnyToken>,
    /// `refresh_token` or `access_token`: which kind to look for first.
    pub token_type_hint: Option<Text<TokenTypeHint>>,
    /// The public client's id (optional).
    pub client_id: Option<Text<ClientId>>,
}

/// The answer of token revocation.
#[derive(ApiResponse)]
#[oai(bad_request_handler = "revoke_bad_request")]
pub enum RevokeReply {
    /// The token's session is revoked, or the token was unknown or invalid
    /// (RFC 7009 §2.2: the answer is the same).
    #[oai(status = 200)]
    Revoked(#[oai(header = "Cache-Control")] String),
    /// The request is malformed (`invalid_request`).
    #[oai(status = 400)]
    BadRequest(Json<OAuthError>, #[oai(header = "Cache-Control")] String),
    /// A malformed `Authorization: Basic` header (`invalid_client`).
    #[oai(status = 401)]
    InvalidClient(
        Json<OAuthError>,
        #[oai(header = "Cache-Control")] String,
        #[oai(header = "WWW-Authenticate")] String,
    ),
    /// The body is larger than the server accepts (`--max-body-bytes`).
    #[oai(status = 413)]
    PayloadTooLarge(Json<ApiError>),
    /// An unexpected server error.
    #[oai(status = 500)]
    InternalError(Json<ApiError>),
    /// The database is unavailable; retry later.
    #[oai(status = 503)]
    Unavailable(Json<ApiError>, #[oai(header = "Retry-After")] String),
}
server_failure!(RevokeReply);

fn revoke_bad_request(err: poem::Error) -> RevokeReply {
    RevokeReply::invalid_request(super::describe(&err))
}

impl RevokeReply {
    fn invalid_request(description: impl Into<String>) -> Self {
        let body = OAuthError::new(OAuthErrorCode::InvalidRequest, description);
        Self::BadRequest(body, NO_STORE.into())
    }
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
    #[oai(path = "/oauth/revoke", method = "post", operation_id = "revokeToken")]
    async fn revoke(
        &self,
        state: Data<&AppState>,
        req: &Request,
        body: Form<RevokeRequest>,
    ) -> RevokeReply {
        if let Err(malformed) = basic_client_id(req) {
            let (body, cache, challenge) = malformed.into_parts();
            return RevokeReply::InvalidClient(body, cache, challenge);
        }
        let Form(form) = body;
        if form.token.is_empty() {
            return RevokeReply::invalid_request("`token` is required");
        }
        if form
            .client_id
            .as_deref()
            .is_some_and(|id| !valid_client_id(id))
        {
            return RevokeReply::invalid_request(
                "`client_id` must be at most 255 printable characters",
            );
        }
        // RFC 7009 §2.1: an unknown hint is ignored, the token still searched.
        let hint = match form.token_type_hint.as_deref() {
            Some("access_token") => Some(TokenHint::AccessToken),
            Some("refresh_token") => Some(TokenHint::RefreshToken),
            _ => None,
        };
        match state
            .auth
            .revoke_token(&form.token, hint, &client_info(req, None))
            .await
        {
            Ok(()) => RevokeReply::Revoked(NO_STORE.into()),
            Err(err) => RevokeReply::from_error(err),
        }
    }
}
