//! What an operation answers when it does not succeed: one [`Failure`]
//! type. Each operation returns `Result<Success, Failure<Its>>`, where
//! `Its: Failures` lists the answers it can give; that list is what the
//! spec documents, so the descriptions shared by every operation (413, 500,
//! 503, 401, 403) are written once, below.

use std::marker::PhantomData;

use poem::http::{HeaderName, HeaderValue, StatusCode};
use poem::{IntoResponse, Response};
use poem_openapi::registry::{MetaHeader, MetaResponse, MetaResponses, Registry};
use poem_openapi::types::Type as _;
use poem_openapi::{ApiResponse, ResponseContent as _};

use super::error_body::{
    ApiError, INVALID_TOKEN, MfaRequired, NO_STORE, OAuthError, OAuthErrorCode,
};
use crate::error::Error;

/// One answer in an operation's list.
#[derive(Debug, Clone, Copy)]
pub struct Answer {
    status: u16,
    description: &'static str,
    /// The body's schema.
    shape: Shape,
    headers: &'static [Header],
}

/// The schema of an answer's body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Api,
    /// RFC 6749 §5.2 errors.
    OAuth,
    /// The password grant's 403 for an account with a second factor.
    MfaRequired,
}

/// A header an answer carries, as the spec describes it.
#[derive(Debug)]
pub struct Header {
    name: &'static str,
    description: &'static str,
}

pub const RETRY_AFTER: Header = Header {
    name: "Retry-After",
    description: "Seconds to wait before retrying.",
};
const CHALLENGE: Header = Header {
    name: "WWW-Authenticate",
    description: "The Bearer challenge (RFC 6750 §3).",
};
const BASIC_CHALLENGE: Header = Header {
    name: "WWW-Authenticate",
    description: "The Basic challenge (RFC 7617).",
};
const CACHE_CONTROL: Header = Header {
    name: "Cache-Control",
    description: "`no-store` (RFC 6749 §5.1).",
};

impl Answer {
    /// An `ApiError` answer.
    pub const fn new(status: u16, description: &'static str) -> Self {
        Self {
            status,
            description,
            shape: Shape::Api,
            headers: &[],
        }
    }

    /// An RFC 6749 `OAuthError` answer, with `Cache-Control: no-store`.
    pub const fn oauth(status: u16, description: &'static str) -> Self {
        Self {
            status,
            description,
            shape: Shape::OAuth,
            headers: &[CACHE_CONTROL],
        }
    }

    /// The 403 `mfa_required` of the password grant (`MfaRequired`), with
    /// `Cache-Control: no-store`.
    pub const fn mfa_required(description: &'static str) -> Self {
        Self {
            status: 403,
            description,
            shape: Shape::MfaRequired,
            headers: &[CACHE_CONTROL],
        }
    }

    pub const fn with(self, headers: &'static [Header]) -> Self {
        Self { headers, ..self }
    }
}

/// The body is larger than `--max-body-bytes` (answered by the middleware).
pub const TOO_LARGE: Answer = Answer::new(
    413,
    "The body is larger than the server accepts (`--max-body-bytes`).",
);
/// The body is not JSON (answered by the middleware).
pub const NOT_JSON: Answer = Answer::new(415, "The body is not JSON.");
/// A bug; the body says no more.
pub const INTERNAL: Answer = Answer::new(500, "An unexpected server error.");
/// The database does not answer.
pub const UNAVAILABLE: Answer = Answer::new(
    503,
    "The database is unavailable; retry after `Retry-After` seconds.",
)
.with(&[RETRY_AFTER]);
/// The same, for operations that hash a password: every core may be busy.
pub const BUSY: Answer = Answer::new(
    503,
    "The database is unavailable, or every core is busy hashing passwords; \
     retry after `Retry-After` seconds.",
)
.with(&[RETRY_AFTER]);
/// The security scheme refused the access token.
pub const UNAUTHORIZED: Answer = Answer::new(
    401,
    "The access token is missing, malformed, expired or revoked.",
)
.with(&[CHALLENGE]);
/// The token lacks the operation's scope.
pub const FORBIDDEN: Answer = Answer::new(
    403,
    "The access token lacks the scope this operation needs.",
)
.with(&[CHALLENGE]);
/// Too many failed logins.
pub const TOO_MANY_ATTEMPTS: Answer = Answer::new(
    429,
    "Too many failed password checks for this account or client address \
     (`too_many_attempts`); retry after `Retry-After` seconds.",
)
.with(&[RETRY_AFTER]);
/// A malformed `Authorization: Basic` header.
pub const INVALID_CLIENT: Answer = Answer::oauth(
    401,
    "The client did not authenticate (`invalid_client`): unknown or disabled, a wrong \
     or missing secret, a malformed `Authorization: Basic` header.",
)
.with(&[CACHE_CONTROL, BASIC_CHALLENGE]);

/// The answers an operation can fail with, in the order of their status.
pub trait Failures: Send + Sync + 'static {
    const ANSWERS: &'static [Answer];
}

enum Body {
    Api(ApiError),
    OAuth(OAuthError),
    MfaRequired(MfaRequired),
}

/// An operation's answer when it does not succeed, from its list `F`.
pub struct Failure<F: Failures> {
    status: StatusCode,
    body: Body,
    headers: Vec<(HeaderName, String)>,
    list: PhantomData<fn() -> F>,
}

impl<F: Failures> std::fmt::Debug for Failure<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Failure")
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

impl<F: Failures> Failure<F> {
    fn answer(status: StatusCode, body: Body) -> Self {
        debug_assert!(
            F::ANSWERS.iter().any(|a| a.status == status.as_u16()),
            "{status} is not in the operation's list of answers"
        );
        Self {
            status,
            body,
            headers: Vec::new(),
            list: PhantomData,
        }
    }

    /// An `ApiError` answer with `status`, `error` code and `message`.
    pub fn new(status: StatusCode, error: &str, message: impl Into<String>) -> Self {
        Self::answer(status, Body::Api(ApiError::new(error, message).0))
    }

    /// An RFC 6749 error with `Cache-Control: no-store`.
    pub fn oauth(
        status: StatusCode,
        error: OAuthErrorCode,
        description: impl Into<String>,
    ) -> Self {
        Self::answer(status, Body::OAuth(OAuthError::new(error, description).0))
            .header(poem::http::header::CACHE_CONTROL, NO_STORE)
    }

    /// 403 `mfa_required`: the password was right; `mfa_token` continues.
    pub fn mfa_required(mfa_token: String) -> Self {
        Self::answer(
            StatusCode::FORBIDDEN,
            Body::MfaRequired(MfaRequired::new(mfa_token)),
        )
        .header(poem::http::header::CACHE_CONTROL, NO_STORE)
    }

    /// 400 `invalid_request` in RFC 6749's shape.
    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::oauth(
            StatusCode::BAD_REQUEST,
            OAuthErrorCode::InvalidRequest,
            description,
        )
    }

    /// 400 with an `ApiError` body.
    pub fn bad_request(error: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, error, message)
    }

    /// Adds a header.
    pub fn header(mut self, name: HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// 503 `unavailable`, to retry after `secs`.
    pub fn unavailable(message: &str, secs: u32) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
            .header(poem::http::header::RETRY_AFTER, secs.to_string())
    }

    /// The 401 for an access token that does not authenticate.
    pub fn invalid_token() -> Self {
        let (error, message, challenge) = INVALID_TOKEN;
        Self::new(StatusCode::UNAUTHORIZED, error, message)
            .header(poem::http::header::WWW_AUTHENTICATE, challenge)
    }
}

/// A failure that is not the client's: logged in full here, answered
/// opaquely (503 when retrying is worth it, 500 otherwise).
impl<F: Failures> From<Error> for Failure<F> {
    fn from(err: Error) -> Self {
        match err.retry_after() {
            Some(secs) => {
                tracing::warn!(error = %err, "temporarily unavailable");
                Self::unavailable(UNAVAILABLE_MESSAGE, secs)
            }
            None => {
                tracing::error!(error = %err, "internal error");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    INTERNAL_MESSAGE,
                )
            }
        }
    }
}

/// How the caller's own operations without a body can fail.
pub enum ProtectedFailures {}

impl Failures for ProtectedFailures {
    const ANSWERS: &'static [Answer] = &[UNAUTHORIZED, FORBIDDEN, INTERNAL, UNAVAILABLE];
}

/// The message of every 500.
pub const INTERNAL_MESSAGE: &str = "internal server error";
/// The message of a 503 the database or the hashing queue caused.
pub const UNAVAILABLE_MESSAGE: &str = "the service is temporarily unavailable";

impl<F: Failures> IntoResponse for Failure<F> {
    fn into_response(self) -> Response {
        let mut response = match self.body {
            Body::Api(body) => poem_openapi::payload::Json(body).into_response(),
            Body::OAuth(body) => poem_openapi::payload::Json(body).into_response(),
            Body::MfaRequired(body) => poem_openapi::payload::Json(body).into_response(),
        };
        response.set_status(self.status);
        for (name, value) in self.headers {
            if let Ok(value) = HeaderValue::from_str(&value) {
                response.headers_mut().insert(name, value);
            }
        }
        response
    }
}

impl<F: Failures> From<Failure<F>> for poem::Error {
    fn from(failure: Failure<F>) -> Self {
        poem::Error::from_response(failure.into_response())
    }
}

impl<F: Failures> ApiResponse for Failure<F> {
    fn meta() -> MetaResponses {
        let responses = F::ANSWERS.iter().map(|answer| MetaResponse {
            description: answer.description,
            status: Some(answer.status),
            status_range: None,
            content: match answer.shape {
                Shape::Api => poem_openapi::payload::Json::<ApiError>::media_types(),
                Shape::OAuth => poem_openapi::payload::Json::<OAuthError>::media_types(),
                Shape::MfaRequired => poem_openapi::payload::Json::<MfaRequired>::media_types(),
            },
            headers: answer
                .headers
                .iter()
                .map(|header| MetaHeader {
                    name: header.name.to_owned(),
                    description: Some(header.description.to_owned()),
                    required: true,
                    deprecated: false,
                    schema: String::schema_ref(),
                })
                .collect(),
        });
        MetaResponses {
            responses: responses.collect(),
        }
    }

    fn register(registry: &mut Registry) {
        <poem_openapi::payload::Json<ApiError> as ApiResponse>::register(registry);
        <poem_openapi::payload::Json<OAuthError> as ApiResponse>::register(registry);
        if F::ANSWERS
            .iter()
            .any(|answer| answer.shape == Shape::MfaRequired)
        {
            <poem_openapi::payload::Json<MfaRequired> as ApiResponse>::register(registry);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_documents_exactly_the_list_with_its_headers() {
        let meta = Failure::<ProtectedFailures>::meta();
        let statuses: Vec<_> = meta.responses.iter().map(|r| r.status).collect();
        assert_eq!(statuses, [Some(401), Some(403), Some(500), Some(503)]);
        let challenge = &meta.responses[0].headers;
        assert_eq!(challenge.len(), 1);
        assert_eq!(challenge[0].name, "WWW-Authenticate");
        assert_eq!(meta.responses[3].headers[0].name, "Retry-After");
    }

    #[test]
    fn an_unexpected_failure_is_an_opaque_500_and_an_outage_a_503_with_retry_after() {
        let bug: Failure<ProtectedFailures> = Error::Contended.into();
        let response = bug.into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()["retry-after"], "1");
        let bug: Failure<ProtectedFailures> = Error::Database(sqlx::Error::RowNotFound).into();
        assert_eq!(
            bug.into_response().status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }

    #[test]
    #[should_panic(expected = "is not in the operation's list")]
    fn a_status_outside_the_operations_list_is_caught_in_tests() {
        let _ = Failure::<ProtectedFailures>::new(StatusCode::CONFLICT, "taken", "taken");
    }
}
