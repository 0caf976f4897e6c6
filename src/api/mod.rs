//! The HTTP API: one `#[OpenApi]` struct per feature, combined into one
//! OpenAPI service, plus Swagger UI, the spec endpoints and the middleware
//! that keeps every error a JSON body.

pub use spec::SWAGGER_RECEIVER_PATH;

mod account;
mod authorize;
mod client_address;
mod consents;
mod discovery;
mod error_body;
pub(crate) mod failure;
mod introspect;
mod meta;
mod mfa;
mod middleware;
mod oauth;
mod pages;
mod revoke;
pub(crate) mod security;
mod sessions;
mod spec;
mod text;
mod token;
mod users;

use poem::{Endpoint, EndpointExt, Response, Route};
use poem_openapi::{OpenApiService, Tags};

use account::AccountApi;
pub use client_address::Cidr;
pub(crate) use client_address::TrustedProxies;
use consents::ConsentsApi;
use discovery::DiscoveryApi;
use introspect::IntrospectApi;
use meta::MetaApi;
use mfa::MfaApi;
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
    /// Password reset and email verification.
    Recovery,
    /// A second factor: an authenticator app (TOTP) and recovery codes.
    SecondFactor,
    /// Your sessions and the apps you allowed: list, revoke one, log out
    /// everywhere, withdraw an app's access.
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
    IntrospectApi,
    UsersApi,
    AccountApi,
    MfaApi,
    SessionsApi,
    ConsentsApi,
    DiscoveryApi,
    MetaApi,
);

/// The OpenAPI service: every operation, as served and as committed.
pub(crate) fn openapi_service() -> OpenApiService<Apis, ()> {
    OpenApiService::new(Apis::default(), "Gatehouse", env!("CARGO_PKG_VERSION"))
        .description(
            "Password login (with an optional second factor) that issues short-lived JWT \
             access tokens and rotating refresh tokens. Use **Authorize** to try the protected \
             operations: the password flow, or the authorization code flow, whose sign-in page \
             also asks an account with a second factor for its code.",
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
    /// `/metrics` is served on a listener of its own (`--metrics-listen`),
    /// and is not found here.
    pub metrics_elsewhere: bool,
    /// Whose `X-Forwarded-For` names the client (see `--trusted-proxies`).
    pub trusted_proxies: TrustedProxies,
}

/// The metrics listener's one route (`--metrics-listen`).
pub(crate) fn metrics_routes(
    state: crate::state::AppState,
) -> poem::endpoint::BoxEndpoint<'static, Response> {
    Route::new()
        .at(
            "/metrics",
            poem::get(poem::endpoint::make(|req| async move {
                let state = req
                    .data::<crate::state::AppState>()
                    .expect("the state is attached");
                poem::IntoResponse::with_content_type(
                    meta::render_metrics(state),
                    "text/plain; version=0.0.4",
                )
            })),
        )
        .data(state)
        .map_to_response()
        .boxed()
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
    let mut routes = Route::new();
    if settings.metrics_elsewhere {
        routes = routes.at(
            "/metrics",
            poem::endpoint::make_sync(|_| -> poem::Result<()> {
                Err(poem::error::NotFoundError.into())
            }),
        );
    }
    // CORS is for the API's callers in other origins; Gatehouse's own pages
    // (their forms post from pages without a referrer: `Origin: null`) and
    // Swagger UI are not called cross-origin.
    let cors_on = !settings.cors_origins.is_empty();
    routes
        .nest(
            "/",
            poem::IntoEndpoint::into_endpoint(service).with_if(cors_on, cors),
        )
        .nest("/docs", docs)
        .at("/openapi.json", spec_json)
        .at("/openapi.yaml", spec_yaml)
        .at(
            "/oauth/authorize",
            poem::get(authorize::authorize_page).post(authorize::authorize_form),
        )
        .at(
            "/account/reset-password",
            poem::get(pages::reset_password_page).post(pages::reset_password),
        )
        .at(
            "/account/verify-email",
            poem::get(pages::verify_email_page).post(pages::verify_email),
        )
        .around(move |ep, req| middleware::limit_body(ep, req, max_body_bytes))
        .around(move |ep, req| middleware::limit_headers(ep, req, max_header_bytes))
        .around(move |ep, req| middleware::time_limit(ep, req, timeout))
        .around(middleware::errors_as_json)
        .with(poem::middleware::CatchPanic::new().with_handler(middleware::panic_answer))
        .data(settings.trusted_proxies.clone())
        .around(middleware::security_headers)
        .around(middleware::log_request)
        // Outermost: the id is on every answer and in the span of every
        // line logged while answering (`request_id=…`). A client's own
        // X-Request-Id is not taken: it would let a client forge log lines'
        // ids.
        .with(poem::middleware::RequestId::default())
}
