//! Gatehouse's own pages, the default targets of mailed links: a plain
//! HTML form each (no script, no third-party asset, not framable, no
//! referrer, not cached), working in any browser without JavaScript.
//! The token reaches the page in the link's query and goes back in the
//! form's body, so it never lands in another site's referrer or a log
//! line (requests are logged without their query).
//!
//! A link is never spent by opening it: mail scanners fetch links, so
//! spending takes the form's POST.

use askama::Template as _;
use poem::http::{StatusCode, header};
use poem::web::{Data, Form, Query};
use poem::{IntoResponse, Request, Response, handler};
use secrecy::SecretString;

use super::oauth::client_info;
use crate::auth::recovery::TokenError;
use crate::state::AppState;

/// The pages' one stylesheet, inline and allowed by its hash.
pub(super) const STYLE: &str = "\
*{box-sizing:border-box}\
body{margin:0;min-height:100vh;display:flex;align-items:center;justify-content:center;\
background:#f4f5f7;color:#1f2328;font:16px/1.5 -apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif}\
main{width:100%;max-width:26rem;margin:1.5rem;padding:2rem;background:#fff;border-radius:.5rem;\
box-shadow:0 1px 3px rgba(31,35,40,.12)}\
.product{margin:0 0 .25rem;font-size:.875rem;color:#57606a}\
h1{margin:0 0 1rem;font-size:1.375rem}\
label{display:block;margin:1rem 0 .25rem;font-weight:600}\
input{width:100%;padding:.625rem .75rem;font:inherit;border:1px solid #8c959f;border-radius:.375rem}\
input:focus{outline:2px solid #1f6feb;outline-offset:1px}\
button{margin-top:1.5rem;width:100%;padding:.75rem;font:inherit;font-weight:600;color:#fff;\
background:#1f6feb;border:0;border-radius:.375rem;cursor:pointer}\
button:hover{background:#1a5fd0}\
button.secondary{margin-top:.75rem;color:#1f2328;background:#fff;border:1px solid #8c959f}\
button.secondary:hover{background:#f4f5f7}\
ul{padding-left:1.25rem}\
.error{padding:.75rem;color:#82071e;background:#ffebe9;border:1px solid #ffcecb;border-radius:.375rem}\
.note{font-size:.875rem;color:#57606a}";

#[derive(askama::Template)]
#[template(path = "pages/reset_password.html", config = "src/askama.toml")]
struct ResetPage<'a> {
    product: &'a str,
    style: &'a str,
    token: &'a str,
    min_chars: usize,
    error: Option<String>,
}

#[derive(askama::Template)]
#[template(path = "pages/verify_email.html", config = "src/askama.toml")]
struct VerifyPage<'a> {
    product: &'a str,
    style: &'a str,
    token: &'a str,
}

#[derive(askama::Template)]
#[template(path = "pages/outcome.html", config = "src/askama.toml")]
struct OutcomePage<'a> {
    product: &'a str,
    style: &'a str,
    heading: &'a str,
    message: &'a str,
    next: Option<&'a str>,
    failed: bool,
}

/// The `?token=` of a link.
#[derive(Debug, serde::Deserialize)]
pub(super) struct LinkQuery {
    token: Option<String>,
}

/// The reset form, as posted.
#[derive(Debug, serde::Deserialize)]
pub(super) struct ResetForm {
    token: String,
    new_password: String,
    confirm_password: String,
}

/// The verification form, as posted.
#[derive(Debug, serde::Deserialize)]
pub(super) struct VerifyForm {
    token: String,
}

const EXPIRED: &str = "This link is invalid, was already used, or has expired.";

/// `GET /account/reset-password?token=…`
#[handler]
pub(super) fn reset_password_page(
    state: Data<&AppState>,
    Query(query): Query<LinkQuery>,
) -> Response {
    let product = &state.mailer.settings().sender.product;
    match query.token.filter(|token| !token.is_empty()) {
        Some(token) => page(
            StatusCode::OK,
            ResetPage {
                product,
                style: STYLE,
                token: &token,
                min_chars: state.accounts.min_password_chars(),
                error: None,
            }
            .render(),
        ),
        None => incomplete_link(product),
    }
}

/// `POST /account/reset-password` (the form above).
#[handler]
pub(super) async fn reset_password(
    state: Data<&AppState>,
    req: &Request,
    Form(form): Form<ResetForm>,
) -> Response {
    let product = &state.mailer.settings().sender.product;
    let form_again = |error: String| {
        page(
            StatusCode::BAD_REQUEST,
            ResetPage {
                product,
                style: STYLE,
                token: &form.token,
                min_chars: state.accounts.min_password_chars(),
                error: Some(error),
            }
            .render(),
        )
    };
    if form.new_password != form.confirm_password {
        return form_again("The two passwords differ. Type the same one twice.".into());
    }
    let password = SecretString::from(form.new_password.clone());
    match state
        .accounts
        .confirm_password_reset(&form.token, password, &client_info(req, None))
        .await
    {
        Ok(()) => outcome(
            StatusCode::OK,
            product,
            "Your password is changed",
            "You can sign in with your new password now. Every session of your account was \
             signed out, on every device.",
            None,
        ),
        Err(TokenError::WeakPassword(why)) => {
            form_again(format!("Choose another password: {why}."))
        }
        Err(TokenError::InvalidToken) => outcome(
            StatusCode::BAD_REQUEST,
            product,
            "This link does not work",
            EXPIRED,
            Some(
                "Ask for a new one from the sign-in page: a reset link works once, for a short while.",
            ),
        ),
        Err(TokenError::Internal(err)) => unavailable(product, &err),
    }
}

/// `GET /account/verify-email?token=…`
#[handler]
pub(super) fn verify_email_page(
    state: Data<&AppState>,
    Query(query): Query<LinkQuery>,
) -> Response {
    let product = &state.mailer.settings().sender.product;
    match query.token.filter(|token| !token.is_empty()) {
        Some(token) => page(
            StatusCode::OK,
            VerifyPage {
                product,
                style: STYLE,
                token: &token,
            }
            .render(),
        ),
        None => incomplete_link(product),
    }
}

/// `POST /account/verify-email` (the form above).
#[handler]
pub(super) async fn verify_email(
    state: Data<&AppState>,
    req: &Request,
    Form(form): Form<VerifyForm>,
) -> Response {
    let product = &state.mailer.settings().sender.product;
    match state
        .accounts
        .confirm_email(&form.token, &client_info(req, None))
        .await
    {
        Ok(()) => outcome(
            StatusCode::OK,
            product,
            "Your address is confirmed",
            "Thank you. Mail about your account, password resets included, goes to this \
             address.",
            None,
        ),
        Err(TokenError::InvalidToken | TokenError::WeakPassword(_)) => outcome(
            StatusCode::BAD_REQUEST,
            product,
            "This link does not work",
            EXPIRED,
            Some("If your address is not confirmed yet, ask for a new link from your account."),
        ),
        Err(TokenError::Internal(err)) => unavailable(product, &err),
    }
}

fn incomplete_link(product: &str) -> Response {
    outcome(
        StatusCode::BAD_REQUEST,
        product,
        "This link is incomplete",
        "The address lacks its token. Open the link from the mail again, or copy all of it \
         into the address bar.",
        None,
    )
}

pub(super) fn unavailable(product: &str, err: &crate::error::Error) -> Response {
    tracing::warn!(error = %err, "a page could not be answered");
    outcome(
        StatusCode::SERVICE_UNAVAILABLE,
        product,
        "Please try again",
        "The service could not finish this just now. Nothing was changed; try again in a \
         moment.",
        None,
    )
}

pub(super) fn outcome(
    status: StatusCode,
    product: &str,
    heading: &str,
    message: &str,
    next: Option<&str>,
) -> Response {
    let failed = !status.is_success();
    page(
        status,
        OutcomePage {
            product,
            style: STYLE,
            heading,
            message,
            next,
            failed,
        }
        .render(),
    )
}

/// An HTML answer with the pages' headers: only the inline stylesheet may
/// load, forms post to this origin only, and nothing is cached.
pub(super) fn page(status: StatusCode, html: askama::Result<String>) -> Response {
    page_posting_to(status, html, None)
}

/// [`page`] whose form may also lead to `origin`: the authorization pages'
/// forms are answered with a redirect to the client, which browsers hold
/// to `form-action` too.
pub(super) fn page_posting_to(
    status: StatusCode,
    html: askama::Result<String>,
    origin: Option<&str>,
) -> Response {
    let html = html.expect("a template of strings renders");
    let policy = match origin {
        Some(origin) => content_security_policy().replace(
            "form-action 'self'",
            &format!("form-action 'self' {origin}"),
        ),
        None => content_security_policy().to_owned(),
    };
    poem::web::Html(html)
        .with_status(status)
        .with_header(header::CACHE_CONTROL, "no-store")
        .with_header(header::CONTENT_SECURITY_POLICY, policy)
        .into_response()
}

fn content_security_policy() -> &'static str {
    static POLICY: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        use base64::Engine as _;
        use sha2::Digest as _;
        let hash = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(STYLE));
        format!(
            "default-src 'none'; style-src 'sha256-{hash}'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'"
        )
    });
    &POLICY
}
