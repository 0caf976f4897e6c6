//! The caller's sessions: list them, revoke one, revoke all.

use chrono::{DateTime, Utc};
use poem::Request;
use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

use super::oauth::client_info;
use super::security::{Protected, protected_reply};
use super::{ApiError, ApiTags, BearerAuth, Scopes, ServerFailure};
use crate::AppState;
use crate::auth::scope;
use crate::store::SessionRecord;

/// A session: one login and every refresh since.
#[derive(Debug, Object)]
pub struct Session {
    pub id: String,
    pub created_at: DateTime<Utc>,
    /// The last refresh (or the login).
    pub last_used_at: DateTime<Utc>,
    /// When the session ends however often it is refreshed.
    pub expires_at: DateTime<Utc>,
    #[oai(nullable)]
    pub client_id: Option<String>,
    #[oai(nullable)]
    pub user_agent: Option<String>,
    /// The client address at login.
    #[oai(nullable)]
    pub ip: Option<String>,
    /// Whether the access token of this request belongs to this session.
    pub current: bool,
}

fn time(millis: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(millis).unwrap_or_default()
}

impl Session {
    fn new(record: SessionRecord, current_sid: &str) -> Self {
        Self {
            current: record.id == current_sid,
            id: record.id,
            created_at: time(record.created_at),
            last_used_at: time(record.last_used_at),
            expires_at: time(record.expires_at),
            client_id: record.client_id,
            user_agent: record.user_agent,
            ip: record.ip,
        }
    }
}

protected_reply!(
    /// The answer of `GET /users/me/sessions`.
    SessionsReply {
        /// The caller's live sessions, newest first.
        #[oai(status = 200)]
        Ok(Json<Vec<Session>>),
    }
);

protected_reply!(
    /// The answer of `DELETE /users/me/sessions/{id}`.
    RevokeSessionReply {
        /// The session is revoked: its refresh token and access tokens stop working.
        #[oai(status = 204)]
        Revoked,
        /// The id is not a session id, which is a UUID (`invalid_request`).
        #[oai(status = 400)]
        BadRequest(Json<ApiError>),
        /// The caller has no live session with this id (`not_found`).
        #[oai(status = 404)]
        NotFound(Json<ApiError>),
    } overriding {
        fn malformed(body: Json<ApiError>) -> Self {
            Self::BadRequest(body)
        }
    }
);

protected_reply!(
    /// The answer of `POST /auth/logout-all`.
    LogoutAllReply {
        /// Every session of the caller is revoked, this one included.
        #[oai(status = 204)]
        Done,
    }
);

/// The caller's sessions.
#[derive(Default)]
pub struct SessionsApi;

#[OpenApi(tag = "ApiTags::Sessions")]
impl SessionsApi {
    /// List your sessions
    ///
    /// Every live session of the caller (logged in, not revoked, not
    /// expired), newest first; `current` marks the one making this request.
    #[oai(
        path = "/users/me/sessions",
        method = "get",
        operation_id = "listSessions"
    )]
    async fn list(
        &self,
        state: Data<&AppState>,
        #[oai(scope = "Scopes::Profile")] auth: BearerAuth,
    ) -> SessionsReply {
        let claims = auth.0.claims;
        if let Err(forbidden) = SessionsReply::require_scope(&claims, scope::PROFILE) {
            return forbidden;
        }
        match state.auth.sessions(&claims.sub).await {
            Ok(sessions) => SessionsReply::Ok(Json(
                sessions
                    .into_iter()
                    .map(|s| Session::new(s, &claims.sid))
                    .collect(),
            )),
            Err(err) => SessionsReply::from_error(err),
        }
    }

    /// Revoke one of your sessions
    ///
    /// Its refresh token stops working at once, and its access tokens within
    /// seconds. 404 for an id that is not one of the caller's live sessions.
    #[oai(
        path = "/users/me/sessions/:id",
        method = "delete",
        operation_id = "revokeSession"
    )]
    async fn revoke(
        &self,
        state: Data<&AppState>,
        req: &Request,
        #[oai(scope = "Scopes::Profile")] auth: BearerAuth,
        /// The session id, as listed by `GET /users/me/sessions`.
        id: Path<uuid::Uuid>,
    ) -> RevokeSessionReply {
        let claims = auth.0.claims;
        if let Err(forbidden) = RevokeSessionReply::require_scope(&claims, scope::PROFILE) {
            return forbidden;
        }
        match state
            .auth
            .revoke_own_session(&claims.sub, &id.0.to_string(), &client_info(req, None))
            .await
        {
            Ok(true) => RevokeSessionReply::Revoked,
            Ok(false) => {
                RevokeSessionReply::NotFound(ApiError::new("not_found", "no such session"))
            }
            Err(err) => RevokeSessionReply::from_error(err),
        }
    }

    /// Log out everywhere
    ///
    /// Revokes every session of the caller, including the current one.
    #[oai(path = "/auth/logout-all", method = "post", operation_id = "logoutAll")]
    async fn logout_all(
        &self,
        state: Data<&AppState>,
        req: &Request,
        #[oai(scope = "Scopes::Profile")] auth: BearerAuth,
    ) -> LogoutAllReply {
        let claims = auth.0.claims;
        if let Err(forbidden) = LogoutAllReply::require_scope(&claims, scope::PROFILE) {
            return forbidden;
        }
        match state
            .auth
            .logout_all(&claims.sub, &client_info(req, None))
            .await
        {
            Ok(()) => LogoutAllReply::Done,
            Err(err) => LogoutAllReply::from_error(err),
        }
    }
}
