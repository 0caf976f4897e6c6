//! The caller's sessions: list them, revoke one, revoke all.

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
use crate::ids::SessionId;
use crate::state::AppState;
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
    /// How the user signed in (RFC 8176 `amr` values): `pwd` for the
    /// password, with `mfa` (and `otp` for an authenticator app's code)
    /// after a second factor.
    pub amr: Vec<String>,
    /// Whether the access token of this request belongs to this session.
    pub current: bool,
}

impl Session {
    fn new(record: SessionRecord, current_sid: &SessionId) -> Self {
        Self {
            current: record.id == *current_sid,
            id: record.id.to_string(),
            created_at: record.created_at.to_datetime(),
            last_used_at: record.last_used_at.to_datetime(),
            expires_at: record.expires_at.to_datetime(),
            client_id: record.client_id,
            user_agent: record.user_agent,
            ip: record.ip,
            amr: record.amr.split_whitespace().map(str::to_owned).collect(),
        }
    }
}

/// The answer of `GET /users/me/sessions`.
#[derive(ApiResponse)]
pub enum SessionList {
    /// The caller's live sessions, newest first.
    #[oai(status = 200)]
    Ok(Json<Vec<Session>>),
}

/// The answer of `DELETE /users/me/sessions/{id}`.
#[derive(ApiResponse)]
pub enum SessionRevoked {
    /// The session is revoked: its refresh token and access tokens stop working.
    #[oai(status = 204)]
    Revoked,
}

/// How revoking one session can fail.
pub enum RevokeSessionFailures {}

impl Failures for RevokeSessionFailures {
    const ANSWERS: &'static [Answer] = &[
        Answer::new(
            400,
            "The id is not a session id, which is a UUID (`invalid_request`).",
        ),
        UNAUTHORIZED,
        FORBIDDEN,
        Answer::new(
            404,
            "The caller has no live session with this id (`not_found`).",
        ),
        INTERNAL,
        UNAVAILABLE,
    ];
}

/// The answer of `POST /auth/logout-all`.
#[derive(ApiResponse)]
pub enum LoggedOutEverywhere {
    /// Every session of the caller is revoked, this one included.
    #[oai(status = 204)]
    Done,
}

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
    ) -> Result<SessionList, Failure<ProtectedFailures>> {
        let claims = auth.with_scope(scope::PROFILE)?.claims;
        let sessions = state.sessions.of_user(&claims.sub).await?;
        Ok(SessionList::Ok(Json(
            sessions
                .into_iter()
                .map(|s| Session::new(s, &claims.sid))
                .collect(),
        )))
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
    ) -> Result<SessionRevoked, Failure<RevokeSessionFailures>> {
        let claims = auth.with_scope(scope::PROFILE)?.claims;
        let revoked = state
            .sessions
            .revoke_own(&claims.sub, &SessionId::from(id.0), &client_info(req, None))
            .await?;
        if !revoked {
            return Err(Failure::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such session",
            ));
        }
        Ok(SessionRevoked::Revoked)
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
    ) -> Result<LoggedOutEverywhere, Failure<ProtectedFailures>> {
        let claims = auth.with_scope(scope::PROFILE)?.claims;
        state
            .sessions
            .logout_all(&claims.sub, &client_info(req, None))
            .await?;
        Ok(LoggedOutEverywhere::Done)
    }
}
