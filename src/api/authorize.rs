//! `GET/POST /oauth/authorize`: the authorization endpoint's pages (RFC
//! 6749 §4.1, RFC 7636, RFC 9207). The login form and the consent form post
//! back here with the request's parameters; the decisions are
//! `auth/authorize.rs`'s.
//!
//! - The browser session is a cookie (`__Host-` prefixed and `Secure`
//!   behind https, `HttpOnly`, `SameSite=Lax`) naming a stored session.
//! - Every form carries a CSRF token that must equal the CSRF cookie's
//!   (double submit; the cookie is `SameSite=Strict` and host-only), and a
//!   cross-site `Origin` is refused outright.
//! - Pages are not framable, not cached, and run no script (see
//!   `pages.rs`).

use askama::Template as _;
use poem::http::{StatusCode, header};
use poem::web::Data;
use poem::{Request, Response, handler};
use secrecy::{ExposeSecret as _, SecretString};

use super::oauth::client_info;
use super::pages::{STYLE, outcome, page_posting_to, unavailable};
use crate::auth::accounts::LoginRefused;
use crate::auth::authorize::{AuthorizeParams, AuthorizeRequest, Refusal, with_query};
use crate::auth::grant::PASSWORD_ONLY;
use crate::auth::mfa::{Factor, FactorError, PasswordStep};
use crate::state::AppState;
use crate::store::BrowserSession;

#[derive(askama::Template)]
#[template(path = "pages/login.html", config = "src/askama.toml")]
struct LoginPage<'a> {
    product: &'a str,
    style: &'a str,
    request: &'a AuthorizeRequest,
    csrf: &'a str,
    username: &'a str,
    error: Option<String>,
}

#[derive(askama::Template)]
#[template(path = "pages/consent.html", config = "src/askama.toml")]
struct ConsentPage<'a> {
    product: &'a str,
    style: &'a str,
    request: &'a AuthorizeRequest,
    csrf: &'a str,
    username: &'a str,
    scopes: Vec<String>,
}

#[derive(askama::Template)]
#[template(path = "pages/second_factor.html", config = "src/askama.toml")]
struct SecondFactorPage<'a> {
    product: &'a str,
    style: &'a str,
    request: &'a AuthorizeRequest,
    csrf: &'a str,
    username: &'a str,
    mfa_token: &'a str,
    error: Option<String>,
}

/// A posted form: the request's parameters, the step, and its fields.
#[derive(Debug, Default, serde::Deserialize)]
struct PostedForm {
    #[serde(flatten)]
    params: AuthorizeParams,
    step: Option<String>,
    csrf: Option<String>,
    username: Option<String>,
    password: Option<String>,
    mfa_token: Option<String>,
    otp: Option<String>,
    decision: Option<String>,
}

/// The cookies' names: `__Host-` (which browsers take only from https,
/// `Secure`, host-only, path `/`) behind https.
struct Cookies {
    secure: bool,
}

impl Cookies {
    fn of(state: &AppState) -> Self {
        Self {
            secure: state.sessions.issuer().starts_with("https://"),
        }
    }

    fn session_name(&self) -> &'static str {
        if self.secure {
            "__Host-gatehouse-session"
        } else {
            "gatehouse-session"
        }
    }

    fn csrf_name(&self) -> &'static str {
        if self.secure {
            "__Host-gatehouse-csrf"
        } else {
            "gatehouse-csrf"
        }
    }

    fn set(&self, name: &str, value: &str, same_site: &str, max_age: u64) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!("{name}={value}; Path=/; HttpOnly; SameSite={same_site}; Max-Age={max_age}{secure}")
    }
}

/// The value of the cookie `name`, if the request sent it.
fn cookie<'r>(req: &'r Request, name: &str) -> Option<&'r str> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// The page's answer under construction: a response and the cookies to
/// set with it.
struct Answer {
    cookies: Vec<String>,
}

impl Answer {
    fn finish(self, response: Response) -> Response {
        let mut response = response;
        for cookie in self.cookies {
            if let Ok(value) = header::HeaderValue::from_str(&cookie) {
                response.headers_mut().append(header::SET_COOKIE, value);
            }
        }
        response
    }
}

/// `GET /oauth/authorize`
#[handler]
pub(super) async fn authorize_page(state: Data<&AppState>, req: &Request) -> Response {
    let product = product(&state);
    let params =
        match serde_urlencoded::from_str::<AuthorizeParams>(req.uri().query().unwrap_or("")) {
            Ok(params) => params,
            Err(_) => return bad_request(product, "This request's parameters cannot be read."),
        };
    let request = match state.sessions.check_authorize(&params).await {
        Ok(request) => request,
        Err(refusal) => return refused(product, refusal, state.sessions.issuer()),
    };
    let cookies = Cookies::of(&state);
    let mut answer = Answer {
        cookies: Vec::new(),
    };
    let csrf = csrf_token(req, &cookies, &mut answer);
    if !request.prompt_login {
        match signed_in(&state, req, &cookies).await {
            Ok(Some(session)) => {
                let response = continue_as(&state, &session, &request, &csrf).await;
                return answer.finish(response);
            }
            Ok(None) => {}
            Err(err) => return unavailable(product, &err),
        }
    }
    answer.finish(login_page(
        product,
        &request,
        &csrf,
        "",
        None,
        StatusCode::OK,
    ))
}

/// `POST /oauth/authorize` (the login and consent forms).
#[handler]
pub(super) async fn authorize_form(
    state: Data<&AppState>,
    req: &Request,
    body: String,
) -> Response {
    let product = product(&state);
    let Ok(form) = serde_urlencoded::from_str::<PostedForm>(&body) else {
        return bad_request(product, "This form's fields cannot be read.");
    };
    let request = match state.sessions.check_authorize(&form.params).await {
        Ok(request) => request,
        Err(refusal) => return refused(product, refusal, state.sessions.issuer()),
    };
    let cookies = Cookies::of(&state);
    if !same_origin(&state, req) || !csrf_matches(req, &cookies, form.csrf.as_deref()) {
        return outcome(
            StatusCode::FORBIDDEN,
            product,
            "This form has expired",
            "For your safety the form could not be sent from here. Go back to the application \
             and start signing in again.",
            None,
        );
    }
    let csrf = form.csrf.clone().unwrap_or_default();
    let posted = Posted {
        state: &state,
        req,
        cookies: &cookies,
        request: &request,
        csrf: &csrf,
    };
    match form.step.as_deref() {
        Some("login") => posted.password_step(form).await,
        Some("otp") => posted.code_step(form).await,
        Some("consent") => posted.consent_step(form).await,
        _ => bad_request(product, "This form's fields cannot be read."),
    }
}

/// A form posted back to the authorization endpoint, its request checked
/// and its CSRF token matched: what each step answers with.
struct Posted<'a> {
    state: &'a AppState,
    req: &'a Request,
    cookies: &'a Cookies,
    request: &'a AuthorizeRequest,
    csrf: &'a str,
}

impl Posted<'_> {
    fn product(&self) -> &str {
        product(self.state)
    }

    /// The sign-in form again, for `username`, saying `error`.
    fn login_again(&self, username: &str, error: String, status: StatusCode) -> Response {
        let product = self.product();
        login_page(
            product,
            self.request,
            self.csrf,
            username,
            Some(error),
            status,
        )
    }

    /// The username and password: signed in, or the second-factor form
    /// for an account that has one.
    async fn password_step(&self, form: PostedForm) -> Response {
        let username = form.username.unwrap_or_default();
        let password = SecretString::from(form.password.unwrap_or_default());
        if username.is_empty() || password.expose_secret().is_empty() {
            let error = "Enter your username and your password.".into();
            return self.login_again(&username, error, StatusCode::BAD_REQUEST);
        }
        let from = client_info(self.req, Some(self.request.client.id.clone()));
        let user = match self.state.accounts.log_in(&username, password, &from).await {
            Ok(user) => user,
            Err(LoginRefused::BadCredentials) => {
                let error = "The username or the password is wrong.".into();
                return self.login_again(&username, error, StatusCode::BAD_REQUEST);
            }
            Err(LoginRefused::Throttled(retry_after)) => {
                let error =
                    format!("Too many failed attempts. Try again in {retry_after} seconds.");
                return self.login_again(&username, error, StatusCode::TOO_MANY_REQUESTS);
            }
            Err(LoginRefused::Internal(err)) => return unavailable(self.product(), &err),
        };
        if user.mfa_enabled_at.is_some() {
            let step = PasswordStep {
                user: &user,
                client_id: &self.request.client.id,
                client_confidential: self.request.client.confidential,
                scope: &self.request.scope,
            };
            return match self.state.mfa.challenge(step).await {
                Ok(token) => self.second_factor_page(
                    &user.username,
                    token.expose_secret(),
                    None,
                    StatusCode::OK,
                ),
                Err(err) => unavailable(self.product(), &err),
            };
        }
        let session = BrowserSession {
            user_id: user.id,
            auth_time: self.state.clock.now(),
            user_epoch: user.session_epoch,
            amr: PASSWORD_ONLY.to_owned(),
        };
        self.sign_in(session).await
    }

    /// A code of the authenticator app, or a recovery code, with the
    /// password step's `mfa_token`.
    async fn code_step(&self, form: PostedForm) -> Response {
        let mfa_token = form.mfa_token.unwrap_or_default();
        let code = form.otp.unwrap_or_default();
        let from = client_info(self.req, Some(self.request.client.id.clone()));
        let passed = self
            .state
            .mfa
            .pass(
                &mfa_token,
                &self.request.client.id,
                Factor::typed(code.trim()),
                &from,
            )
            .await;
        let error = match passed {
            Ok(passed) => {
                let session = BrowserSession {
                    user_id: passed.user.id,
                    auth_time: self.state.clock.now(),
                    user_epoch: passed.challenge.user_epoch,
                    amr: passed.amr.to_owned(),
                };
                return self.sign_in(session).await;
            }
            Err(FactorError::BadToken) => {
                let error = "This sign-in took too long, or had too many wrong codes. \
                             Sign in again."
                    .into();
                return self.login_again("", error, StatusCode::BAD_REQUEST);
            }
            Err(FactorError::BadCode) => (
                "That code is wrong or was already used. Wait for the next code and try again."
                    .to_owned(),
                StatusCode::BAD_REQUEST,
            ),
            Err(FactorError::Throttled(retry_after)) => (
                format!("Too many wrong codes. Try again in {retry_after} seconds."),
                StatusCode::TOO_MANY_REQUESTS,
            ),
            Err(FactorError::Internal(err)) => return unavailable(self.product(), &err),
        };
        // Shown only: the name the password step was given for.
        let username = form.username.unwrap_or_default();
        self.second_factor_page(&username, &mfa_token, Some(error.0), error.1)
    }

    /// The second-factor form, answered with `status`, saying `error` if
    /// there is one.
    fn second_factor_page(
        &self,
        username: &str,
        mfa_token: &str,
        error: Option<String>,
        status: StatusCode,
    ) -> Response {
        let page = SecondFactorPage {
            product: self.product(),
            style: STYLE,
            request: self.request,
            csrf: self.csrf,
            username,
            mfa_token,
            error,
        };
        let origin = origin_of(&self.request.redirect_uri);
        page_posting_to(status, page.render(), origin)
    }

    /// Allow or deny, by a signed-in browser.
    async fn consent_step(&self, form: PostedForm) -> Response {
        let (state, request) = (self.state, self.request);
        let session = match signed_in(state, self.req, self.cookies).await {
            Ok(Some(session)) => session,
            Ok(None) => {
                return login_page(self.product(), request, self.csrf, "", None, StatusCode::OK);
            }
            Err(err) => return unavailable(self.product(), &err),
        };
        match form.decision.as_deref() {
            Some("allow") => {
                let from = client_info(self.req, Some(request.client.id.clone()));
                if let Err(err) = state
                    .sessions
                    .record_consent(&session.user_id, request, &from)
                    .await
                {
                    return unavailable(self.product(), &err);
                }
                send_code(state, &session, request).await
            }
            Some("deny") => back_to_client(
                &request.redirect_uri,
                "access_denied",
                "the user denied the request",
                request.state.as_deref(),
                state.sessions.issuer(),
            ),
            _ => bad_request(self.product(), "Choose Allow or Deny."),
        }
    }

    /// The user just signed in as `session` says: the browser session's
    /// cookie, then on as [`continue_as`].
    async fn sign_in(&self, session: BrowserSession) -> Response {
        let opened = self
            .state
            .sessions
            .open_browser_session(&session.user_id, session.user_epoch, &session.amr)
            .await;
        let cookie = match opened {
            Ok(cookie) => cookie,
            Err(err) => return unavailable(self.product(), &err),
        };
        let cookies = self.cookies;
        let answer = Answer {
            cookies: vec![cookies.set(
                cookies.session_name(),
                cookie.expose_secret(),
                "Lax",
                crate::auth::authorize::BROWSER_SESSION_TTL.as_secs(),
            )],
        };
        let response = continue_as(self.state, &session, self.request, self.csrf).await;
        answer.finish(response)
    }
}

/// With the user signed in: the consent page if the client needs it, else
/// the code.
async fn continue_as(
    state: &AppState,
    session: &BrowserSession,
    request: &AuthorizeRequest,
    csrf: &str,
) -> Response {
    let product = product(state);
    match state
        .sessions
        .needs_consent(&session.user_id, request)
        .await
    {
        Ok(false) => send_code(state, session, request).await,
        Ok(true) => {
            let username = match state.store.find_user_by_id(&session.user_id).await {
                Ok(Some(user)) => user.username,
                Ok(None) => return login_page(product, request, csrf, "", None, StatusCode::OK),
                Err(err) => return unavailable(product, &err.into()),
            };
            page_posting_to(
                StatusCode::OK,
                ConsentPage {
                    product,
                    style: STYLE,
                    request,
                    csrf,
                    username: &username,
                    scopes: request
                        .scope
                        .split_whitespace()
                        .map(describe_scope)
                        .collect(),
                }
                .render(),
                origin_of(&request.redirect_uri),
            )
        }
        Err(err) => unavailable(product, &err),
    }
}

async fn send_code(
    state: &AppState,
    session: &BrowserSession,
    request: &AuthorizeRequest,
) -> Response {
    match state.sessions.issue_code(session, request).await {
        Ok(location) => redirect(&location),
        Err(err) => unavailable(product(state), &err),
    }
}

/// `scheme://host[:port]` of a registered redirect URI (which holds no
/// whitespace, quote or semicolon: it cannot break out of the policy).
fn origin_of(uri: &str) -> Option<&str> {
    let (_, rest) = uri.split_once("://")?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let origin = &uri[..uri.len() - rest.len() + end];
    origin
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b":/.-[]".contains(&b))
        .then_some(origin)
}

fn describe_scope(scope: &str) -> String {
    match scope {
        crate::auth::scope::PROFILE => "See your username and email address".into(),
        other => format!("Use the “{other}” permission"),
    }
}

fn login_page(
    product: &str,
    request: &AuthorizeRequest,
    csrf: &str,
    username: &str,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    page_posting_to(
        status,
        LoginPage {
            product,
            style: STYLE,
            request,
            csrf,
            username,
            error,
        }
        .render(),
        origin_of(&request.redirect_uri),
    )
}

/// The browser session the request's cookie names, if live.
async fn signed_in(
    state: &AppState,
    req: &Request,
    cookies: &Cookies,
) -> Result<Option<BrowserSession>, crate::error::Error> {
    match cookie(req, cookies.session_name()) {
        Some(value) => state.sessions.browser_session(value).await,
        None => Ok(None),
    }
}

/// The CSRF cookie's value, set now if the browser has none.
fn csrf_token(req: &Request, cookies: &Cookies, answer: &mut Answer) -> String {
    if let Some(value) =
        cookie(req, cookies.csrf_name()).filter(|value| crate::auth::is_token_shaped(value))
    {
        return value.to_owned();
    }
    let value = crate::auth::random_token().expose_secret().to_owned();
    answer
        .cookies
        .push(cookies.set(cookies.csrf_name(), &value, "Strict", 12 * 3600));
    value
}

fn csrf_matches(req: &Request, cookies: &Cookies, posted: Option<&str>) -> bool {
    match (cookie(req, cookies.csrf_name()), posted) {
        (Some(cookie), Some(posted)) if crate::auth::is_token_shaped(cookie) => bool::from(
            subtle::ConstantTimeEq::ct_eq(cookie.as_bytes(), posted.as_bytes()),
        ),
        _ => false,
    }
}

/// A form post from another site is refused whatever it carries: the
/// browser's `Sec-Fetch-Site` must not say `cross-site`, and an `Origin`,
/// when it names one (pages without a referrer send `null`), must be this
/// service's. The CSRF token is the check that holds without either.
fn same_origin(state: &AppState, req: &Request) -> bool {
    let header = |name| {
        req.headers()
            .get(name)
            .and_then(|value: &header::HeaderValue| value.to_str().ok())
    };
    if header("sec-fetch-site") == Some("cross-site") {
        return false;
    }
    let Some(origin) = header(header::ORIGIN.as_str()).filter(|origin| *origin != "null") else {
        return true;
    };
    let issuer = state.sessions.issuer();
    let ours = issuer
        .split_once("://")
        .map(|(scheme, rest)| format!("{scheme}://{}", rest.split('/').next().unwrap_or("")));
    Some(origin) == ours.as_deref()
        || header(header::HOST.as_str()).is_some_and(|host| {
            origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"))
                == Some(host)
        })
}

fn refused(product: &str, refusal: Refusal, issuer: &str) -> Response {
    match refusal {
        Refusal::Page(message) => bad_request(product, message),
        Refusal::Redirect {
            redirect_uri,
            error,
            description,
            state,
        } => back_to_client(&redirect_uri, error, description, state.as_deref(), issuer),
    }
}

fn back_to_client(
    redirect_uri: &str,
    error: &str,
    description: &str,
    state: Option<&str>,
    issuer: &str,
) -> Response {
    redirect(&error_uri(redirect_uri, error, description, state, issuer))
}

fn error_uri(
    redirect_uri: &str,
    error: &str,
    description: &str,
    state: Option<&str>,
    issuer: &str,
) -> String {
    let mut params = vec![("error", error), ("error_description", description)];
    if let Some(state) = state {
        params.push(("state", state));
    }
    params.push(("iss", issuer));
    with_query(redirect_uri, &params)
}

fn redirect(location: &str) -> Response {
    Response::builder()
        .status(StatusCode::FOUND)
        .header(header::LOCATION, location)
        .header(header::CACHE_CONTROL, "no-store")
        .finish()
}

fn bad_request(product: &str, message: &str) -> Response {
    outcome(
        StatusCode::BAD_REQUEST,
        product,
        "This sign-in link does not work",
        message,
        Some(
            "Go back to the application and start again. If it keeps happening, tell the application's makers.",
        ),
    )
}

fn product(state: &AppState) -> &str {
    &state.mailer.settings().sender.product
}
