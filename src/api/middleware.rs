//! The middleware around every route: limits on headers, bodies and time,
//! errors as JSON, security headers, and the request log line with its
//! metrics.

use poem::http::StatusCode;
use poem::{Endpoint, IntoResponse, Request, Response};

use super::error_body::{self, ApiError};
use super::{describe, failure, spec_json};

/// A panic in a handler is a bug: log it, answer an opaque JSON 500, and keep
/// the connection and the process serving.
pub(super) fn panic_answer(_panic: Box<dyn std::any::Any + Send>) -> Response {
    tracing::error!("a request handler panicked");
    ApiError::new("internal_error", failure::INTERNAL_MESSAGE)
        .with_status(StatusCode::INTERNAL_SERVER_ERROR)
        .into_response()
}

/// Answers 503 for a request still running after `limit`, rather than
/// letting it hang (a stuck database connection, say).
pub(super) async fn time_limit<E: Endpoint>(
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
pub(super) async fn limit_headers<E: Endpoint>(
    ep: E,
    req: Request,
    max: usize,
) -> poem::Result<Response> {
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
pub(super) async fn limit_body<E: Endpoint>(
    ep: E,
    mut req: Request,
    max: usize,
) -> poem::Result<Response> {
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
pub(super) async fn errors_as_json<E: Endpoint>(ep: E, req: Request) -> poem::Result<Response> {
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
pub(super) async fn security_headers<E: Endpoint>(ep: E, req: Request) -> poem::Result<Response> {
    use poem::http::HeaderValue;
    use poem::http::header::{
        CONTENT_SECURITY_POLICY, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
    };
    let docs = req.uri().path() == "/docs" || req.uri().path().starts_with("/docs/");
    let mut response = ep.call(req).await?.into_response();
    let headers = response.headers_mut();
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    // No page of ours may be framed (clickjacking): Swagger UI's "Try it
    // out" and "Authorize" act with the visitor's credentials.
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    let policy = if docs {
        // Swagger UI's own scripts and styles run; only framing is refused.
        "frame-ancestors 'none'"
    } else {
        "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"
    };
    // Gatehouse's own pages set a policy that lets their stylesheet in.
    if !headers.contains_key(CONTENT_SECURITY_POLICY) {
        headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(policy));
    }
    Ok(response)
}

/// One line per request: method, path (never the query), status, time.
pub(super) async fn log_request<E: Endpoint>(ep: E, req: Request) -> poem::Result<Response> {
    // Only the metrics outlive the request here: one `Arc`, not the state.
    let metrics = req
        .data::<crate::state::AppState>()
        .map(|state| state.metrics.clone());
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let started = std::time::Instant::now();
    let response = ep.call(req).await?.into_response();
    let elapsed = started.elapsed();
    let operation = response
        .data::<poem_openapi::OperationId>()
        .map_or(crate::metrics::NO_OPERATION, |id| id.0);
    if let Some(metrics) = metrics {
        metrics.answered(operation, response.status().as_u16(), elapsed);
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
