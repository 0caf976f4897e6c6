//! The HTTP API: one `#[OpenApi]` struct per feature, combined into one
//! OpenAPI service, plus Swagger UI, the spec endpoints and the middleware
//! that keeps every error a JSON body.

mod client_address;
mod discovery;
mod error_body;
pub(crate) mod failure;
mod meta;
mod oauth;
mod revoke;
pub(crate) mod security;
mod sessions;
mod spec;
mod text;
mod token;
mod users;

use poem::http::StatusCode;
use poem::{Endpoint, EndpointExt, IntoResponse, Request, Response, Route};
use poem_openapi::{OpenApiService, Tags};

pub use client_address::Cidr;
pub(crate) use client_address::TrustedProxies;
use discovery::DiscoveryApi;
use error_body::ApiError;
use meta::MetaApi;
use revoke::RevokeApi;
use security::{BearerAuth, Scopes};
use sessions::SessionsApi;
use token::TokenApi;
use users::UsersApi;

/// The groups of operations in the spec.
#[derive(Tags)]
pub(crate) enum ApiTags {
    /// Log in, refresh and log out (OAuth2 token endpoint and JSON twins).
    Tokens,
    /// Accounts.
    Users,
    /// Your sessions: list, revoke one, log out everywhere.
    Sessions,
    /// Public keys and server metadata, for verifying tokens independently.
    Discovery,
    /// Liveness, readiness and metrics.
    Health,
}

/// A client-safe, bounded description of a parse error.
pub(crate) fn describe(err: &poem::Error) -> String {
    let mut text: String = err.to_string().chars().take(300).collect();
    if text.is_empty() {
        text = "malformed request".into();
    }
    text
}

/// Every operation group, in the order the spec lists them.
pub(crate) type Apis = (
    TokenApi,
    RevokeApi,
    UsersApi,
    SessionsApi,
    DiscoveryApi,
    MetaApi,
);

/// The OpenAPI service: every operation, as served and as committed.
pub(crate) fn openapi_service() -> OpenApiService<Apis, ()> {
    OpenApiService::new(Apis::default(), "Gatehouse", env!("CARGO_PKG_VERSION"))
        .description(
            "Password login that issues short-lived JWT access tokens and rotating refresh \
             tokens. Use **Authorize** (OAuth2 password flow) to try the protected operations.",
        )
        .license(poem_openapi::LicenseObject::new("MIT OR Apache-2.0"))
        .server(
            poem_openapi::ServerObject::new("/")
                .description("The server this document is served from"),
        )
}

/// The spec as JSON, exactly as `/openapi.json` serves it.
pub fn spec_json() -> String {
    spec::json(&openapi_service())
}

/// How the HTTP layer guards itself.
#[derive(Debug, Clone)]
pub(crate) struct HttpSettings {
    /// Larger bodies get 413.
    pub max_body_bytes: usize,
    /// Larger header sections (names and values) get 431.
    pub max_header_bytes: usize,
    /// A request still running after this gets 503.
    pub request_timeout: std::time::Duration,
    /// Origins allowed cross-origin requests; empty turns CORS off.
    pub cors_origins: Vec<String>,
}

/// Every route with its middleware: the operations, `/docs`, the spec.
pub(crate) fn routes(settings: &HttpSettings) -> impl Endpoint<Output = Response> + use<> {
    let service = openapi_service();
    let (docs, spec_json, spec_yaml) = spec::endpoints(&service);
    let max_body_bytes = settings.max_body_bytes;
    let max_header_bytes = settings.max_header_bytes;
    let timeout = settings.request_timeout;
    let cors = poem::middleware::Cors::new()
        .allow_origins(settings.cors_origins.iter().map(String::as_str))
        .allow_methods([
            poem::http::Method::GET,
            poem::http::Method::POST,
            poem::http::Method::PUT,
            poem::http::Method::DELETE,
        ])
        .allow_headers(["authorization", "content-type"])
        .max_age(600);
    Route::new()
        .nest("/", service)
        .nest("/docs", docs)
        .at("/openapi.json", spec_json)
        .at("/openapi.yaml", spec_yaml)
        .around(move |ep, req| limit_body(ep, req, max_body_bytes))
        .around(move |ep, req| limit_headers(ep, req, max_header_bytes))
        .around(move |ep, req| time_limit(ep, req, timeout))
        .around(errors_as_json)
        .with(poem::middleware::CatchPanic::new().with_handler(panic_answer))
        .with_if(!settings.cors_origins.is_empty(), cors)
        .around(security_headers)
        .around(log_request)
        // Outermost: the id is on every answer and in the span of every
        // line logged while answering (`request_id=…`). A client's own
        // X-Request-Id is not taken: it would let a client forge log lines'
        // ids.
        .with(poem::middleware::RequestId::default())
}

/// A panic in a handler is a bug: log it, answer an opaque JSON 500, and keep
/// the connection and the process serving.
fn panic_answer(_panic: Box<dyn std::any::Any + Send>) -> Response {
    tracing::error!("a request handler panicked");
    ApiError::new("internal_error", failure::INTERNAL_MESSAGE)
        .with_status(StatusCode::INTERNAL_SERVER_ERROR)
        .into_response()
}

/// Answers 503 for a request still running after `limit`, rather than
/// letting it hang (a stuck database connection, say).
async fn time_limit<E: Endpoint>(
    ep: E,
    req: Request,
    limit: std::time::Duration,
) -> poem::Result<Response> {
    match tokio::time::timeout(limit, ep.call(req)).await {
        Ok(result) => result.map(IntoResponse::into_response),
        Err(_) => {
            tracing::warn!(limit_ms = limit.as_millis() as u64, "request timed out");
            Err(poem::Error::from_status(StatusCode::SERVICE_UNAVAILABLE))
        }
    }
}

/// Refuses a request whose header names and values add up to more than
/// `max` bytes with 431 (RFC 6585), before anything reads them. (HTTP/1
/// header sections beyond hyper's own buffer, about 400 KiB, never get here.)
async fn limit_headers<E: Endpoint>(ep: E, req: Request, max: usize) -> poem::Result<Response> {
    let size: usize = req
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if size > max {
        return Err(poem::Error::from_string(
            format!("the request headers add up to {size} bytes; at most {max} are accepted"),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        ));
    }
    ep.call(req).await.map(IntoResponse::into_response)
}

/// Refuses bodies over the limit with 413: by `Content-Length` when the
/// client declares one, otherwise by reading at most one byte past the limit
/// (every operation buffers its small body anyway).
async fn limit_body<E: Endpoint>(ep: E, mut req: Request, max: usize) -> poem::Result<Response> {
    let too_large = || poem::Error::from_status(StatusCode::PAYLOAD_TOO_LARGE);
    let declared = req
        .headers()
        .get(poem::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(len) if len > max as u64 => return Err(too_large()),
        Some(_) => {}
        None => {
            let mut body = Vec::new();
            let mut reader =
                tokio::io::AsyncReadExt::take(req.take_body().into_async_read(), max as u64 + 1);
            tokio::io::AsyncReadExt::read_to_end(&mut reader, &mut body)
                .await
                .map_err(|err| {
                    poem::Error::from_string(err.to_string(), StatusCode::BAD_REQUEST)
                })?;
            if body.len() > max {
                return Err(too_large());
            }
            req.set_body(body);
        }
    }
    ep.call(req).await.map(IntoResponse::into_response)
}

/// Any error that reaches the top (unknown path, wrong method, a body over
/// the limit) becomes a JSON `ApiError` with the same status; a 405 also
/// says which methods the path allows (RFC 9110 §15.5.6).
async fn errors_as_json<E: Endpoint>(ep: E, req: Request) -> poem::Result<Response> {
    let path = req.uri().path().to_owned();
    let err = match ep.call(req).await {
        Ok(response) => return Ok(response.into_response()),
        Err(err) => err,
    };
    let operation = err.data::<poem_openapi::OperationId>().copied();
    let mut response = if err.is_from_response() {
        // An operation's own `Failure`, already answered in full.
        err.into_response()
    } else {
        poem_error(&err, &path)
    };
    if let Some(operation) = operation {
        response.set_data(operation);
    }
    Ok(response)
}

/// A poem error (no route, a body over the limit, a parse error, a
/// timeout) as an `ApiError` answer, with the headers its status needs.
fn poem_error(err: &poem::Error, path: &str) -> Response {
    let mut response = json_error(err);
    if response.status() == StatusCode::SERVICE_UNAVAILABLE {
        let retry = poem::http::HeaderValue::from(crate::error::DATABASE_RETRY_SECS);
        response
            .headers_mut()
            .insert(poem::http::header::RETRY_AFTER, retry);
    }
    if response.status() == StatusCode::METHOD_NOT_ALLOWED
        && let Some(allow) = allowed_methods(path)
    {
        response
            .headers_mut()
            .insert(poem::http::header::ALLOW, allow);
    }
    response
}

fn json_error(err: &poem::Error) -> Response {
    let status = err.status();
    if status == StatusCode::UNAUTHORIZED {
        return unauthorized(err);
    }
    let code = match status {
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "headers_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        s if s.is_client_error() => "invalid_request",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        _ => "internal_error",
    };
    let message = if status.is_server_error() {
        tracing::error!(error = %err, "unhandled error");
        "internal server error".to_owned()
    } else {
        describe(err)
    };
    ApiError::new(code, message)
        .with_status(status)
        .into_response()
}

/// The security scheme's 401 (RFC 6750 §3): no Bearer credentials at all,
/// or a token that does not authenticate.
fn unauthorized(err: &poem::Error) -> Response {
    let (error, message, challenge) = if err.is::<poem_openapi::error::AuthorizationError>() {
        error_body::NO_TOKEN
    } else {
        error_body::INVALID_TOKEN
    };
    ApiError::new(error, message)
        .with_status(StatusCode::UNAUTHORIZED)
        .with_header(poem::http::header::WWW_AUTHENTICATE, challenge)
        .into_response()
}

/// The methods the spec allows on `path`, as an `Allow` value.
fn allowed_methods(path: &str) -> Option<poem::http::HeaderValue> {
    static ROUTES: std::sync::OnceLock<Vec<(String, String)>> = std::sync::OnceLock::new();
    let routes = ROUTES.get_or_init(|| {
        let spec: serde_json::Value = serde_json::from_str(&spec_json()).unwrap_or_default();
        let paths = spec["paths"].as_object().cloned().unwrap_or_default();
        paths
            .iter()
            .map(|(template, item)| {
                let methods = item.as_object().into_iter().flat_map(|ops| ops.keys());
                let methods: Vec<String> = methods.map(|m| m.to_ascii_uppercase()).collect();
                (template.clone(), methods.join(", "))
            })
            .collect()
    });
    let matches = |template: &str| {
        let (mut wanted, mut given) = (template.split('/'), path.split('/'));
        loop {
            match (wanted.next(), given.next()) {
                (None, None) => return true,
                (Some(w), Some(g)) if w == g || (w.starts_with('{') && !g.is_empty()) => {}
                _ => return false,
            }
        }
    };
    let (_, methods) = routes.iter().find(|(template, _)| matches(template))?;
    poem::http::HeaderValue::from_str(methods).ok()
}

/// Headers every answer carries: no MIME sniffing, no referrer, and outside
/// Swagger UI (which runs inline scripts) a CSP that allows nothing, since
/// the API serves only data.
async fn security_headers<E: Endpoint>(ep: E, req: Request) -> poem::Result<Response> {
    use poem::http::HeaderValue;
    use poem::http::header::{CONTENT_SECURITY_POLICY, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS};
    let docs = req.uri().path() == "/docs" || req.uri().path().starts_with("/docs/");
    let mut response = ep.call(req).await?.into_response();
    let headers = response.headers_mut();
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    if !docs {
        let policy = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'";
        headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(policy));
    }
    Ok(response)
}

/// One line per request: method, path (never the query), status, time.
async fn log_request<E: Endpoint>(ep: E, req: Request) -> poem::Result<Response> {
    let state = req.data::<crate::AppState>().cloned();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let started = std::time::Instant::now();
    let response = ep.call(req).await?.into_response();
    let elapsed = started.elapsed();
    let operation = response
        .data::<poem_openapi::OperationId>()
        .map_or(crate::metrics::NO_OPERATION, |id| id.0);
    if let Some(state) = state {
        state
            .metrics
            .answered(operation, response.status().as_u16(), elapsed);
    }
    tracing::info!(
        %method,
        path = %path,
        operation,
        status = response.status().as_u16(),
        elapsed_ms = elapsed.as_millis() as u64,
        "request"
    );
    Ok(response)
}
