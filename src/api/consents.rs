//! The apps the caller allowed (consents given on Gatehouse's consent
//! page): list them, withdraw one.

use chrono::{DateTime, Utc};
use poem::Request;
use poem::http::StatusCode;
use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::failure::{
    Answer, FORBIDDEN, Failure, Failures, INTERNAL, ProtectedFailures, UNAUTHORIZED, UNAVAILABLE,
};
use super::oauth::client_info;
use super::{ApiTags, BearerAuth, Scopes};
use crate::auth::scope;
use crate::state::AppState;

/// An app the caller allowed, and what it may do.
#[derive(Debug, Object)]
pub struct Consent {
    pub client_id: String,
    /// The app's name, as its consent page showed it.
    #[oai(nullable)]
    pub client_name: Option<String>,
    /// The scopes allowed, space-separated.
    pub scope: String,
    pub granted_at: DateTime<Utc>,
}

/// The answer of `GET /users/me/consents`.
#[derive(ApiResponse)]
pub enum ConsentList {
    /// The apps the caller allowed, by client id.
    #[oai(status = 200)]
    Ok(Json<Vec<Consent>>),
}

/// The answer of `DELETE /users/me/consents/{client_id}`.
#[derive(ApiResponse)]
pub enum ConsentWithdrawn {
    /// Withdrawn: the app's sessions of the caller are revoked, and its
    /// next sign-in asks again.
    #[oai(status = 204)]
    Withdrawn,
}

/// How withdrawing a consent can fail.
pub enum WithdrawConsentFailures {}

impl Failures for WithdrawConsentFailures {
    const ANSWERS: &'static [Answer] = &[
        Answer::new(400, "The client id is malformed (`invalid_request`)."),
        UNAUTHORIZED,
        FORBIDDEN,
        Answer::new(404, "The caller gave this app no consent (`not_found`)."),
        INTERNAL,
        UNAVAILABLE,
    ];
}

/// The caller's consents.
#[derive(Default)]
pub struct ConsentsApi;

#[OpenApi(tag = "ApiTags::Sessions")]
impl ConsentsApi {
    /// List the apps you allowed
    ///
    /// Every app (not first-party) the caller allowed on the consent page,
    /// with the scopes allowed.
    #[oai(
        path = "/users/me/consents",
        method = "get",
        operation_id = "listConsents"
    )]
    async fn list(
        &self,
        state: Data<&AppState>,
        #[oai(scope = "Scopes::Profile")] auth: BearerAuth,
    ) -> Result<ConsentList, Failure<ProtectedFailures>> {
        let claims = auth.with_scope(scope::PROFILE)?.claims;
        let consents = state.sessions.consents_of(&claims.sub).await?;
        Ok(ConsentList::Ok(Json(
            consents
                .into_iter()
                .map(|consent| Consent {
                    client_id: consent.client_id,
                    client_name: consent.client_name,
                    scope: consent.scope,
                    granted_at: consent.granted_at.to_datetime(),
                })
                .collect(),
        )))
    }

    /// Withdraw an app's access
    ///
    /// Forgets the consent and revokes every session the app holds for the
    /// caller: its refresh tokens stop working at once, its access tokens
    /// within seconds. Its next sign-in asks for consent again.
    #[oai(
        path = "/users/me/consents/:client_id",
        method = "delete",
        operation_id = "withdrawConsent"
    )]
    async fn withdraw(
        &self,
        state: Data<&AppState>,
        req: &Request,
        #[oai(scope = "Scopes::Profile")] auth: BearerAuth,
        /// The app's client id, as listed by `GET /users/me/consents`.
        #[oai(validator(max_length = 255))]
        client_id: Path<String>,
    ) -> Result<ConsentWithdrawn, Failure<WithdrawConsentFailures>> {
        let claims = auth.with_scope(scope::PROFILE)?.claims;
        let withdrawn = state
            .sessions
            .withdraw_consent(&claims.sub, &client_id.0, &client_info(req, None))
            .await?;
        if !withdrawn {
            return Err(Failure::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "no consent to this app",
            ));
        }
        Ok(ConsentWithdrawn::Withdrawn)
    }
}
