//! The authorization code flow with PKCE, as a browser and a third-party
//! app drive it: Gatehouse's login and consent pages, the redirect back,
//! and the code's one redemption; and the attacks on it.

use std::collections::HashMap;

use serde_json::json;

use crate::helpers::{PASSWORD, Reply, Store, TestApp};
use crate::on_both_stores;

on_both_stores!(
    a_public_app_gets_tokens_through_login_and_consent_with_pkce,
    a_signed_in_browser_with_consent_given_goes_straight_back,
    prompt_login_asks_for_the_password_again,
    a_code_is_redeemed_once_and_a_replay_revokes_what_the_first_got,
    two_instances_racing_to_redeem_one_code_give_exactly_one_token,
    a_code_is_bound_to_its_client_verifier_and_redirect_uri,
    a_code_expires_after_a_minute,
    pkce_is_required_and_only_s256,
    an_unknown_client_or_redirect_uri_gets_a_page_never_a_redirect,
    a_loopback_redirect_uri_may_use_any_port,
    a_form_posted_without_its_csrf_token_or_from_another_site_is_refused,
    the_login_page_answers_unknown_users_and_wrong_passwords_alike,
    oversized_or_unreadable_parameters_get_a_clear_page,
    denying_consent_sends_access_denied_with_the_state,
    the_pages_cannot_be_framed_and_run_no_script,
    a_first_party_app_is_not_asked_for_consent,
    swagger_ui_signs_in_with_the_built_in_client_and_pkce,
    a_code_replayed_after_its_minute_still_revokes_until_pruned,
    a_user_sees_and_withdraws_a_consent_which_ends_the_apps_sessions,
    the_sign_in_form_works_with_cors_on_for_the_api,
    a_password_change_or_a_disabled_account_ends_the_browser_session,
    auth_time_is_the_sign_in_on_the_page_through_every_refresh,
    an_account_with_a_second_factor_gives_a_code_after_the_password,
    a_recovery_code_works_on_the_page_and_enrolling_signs_browsers_out,
    a_late_or_worn_out_second_step_on_the_page_starts_over,
);

const APP: &str = "photo-app";
const CALLBACK: &str = "https://photos.example/callback";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const ISSUER: &str = "http://gatehouse.test";

/// A page: status, headers, HTML.
struct Page {
    status: u16,
    headers: poem::http::HeaderMap,
    html: String,
}

impl Page {
    fn location(&self) -> &str {
        self.headers
            .get("location")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_else(|| panic!("{}: no Location; {}", self.status, self.html))
    }

    /// The value of the form field `name` (a hidden input's).
    fn field(&self, name: &str) -> String {
        let pattern = format!(r#"name="{name}" value="([^"]*)""#);
        let found = regex::Regex::new(&pattern)
            .unwrap()
            .captures(&self.html)
            .unwrap_or_else(|| panic!("no field {name} in {}", self.html));
        found[1]
            .replace("&#x2f;", "/")
            .replace("&#47;", "/")
            .replace("&amp;", "&")
    }

    /// The query parameters of the redirect's Location.
    fn answer(&self) -> HashMap<String, String> {
        let location = self.location();
        let query = location
            .split_once('?')
            .map(|(_, query)| query)
            .unwrap_or("");
        serde_urlencoded::from_str(query).unwrap()
    }
}

/// A browser: a cookie jar over the app.
struct Browser<'a> {
    app: &'a TestApp,
    cookies: HashMap<String, String>,
}

impl<'a> Browser<'a> {
    fn new(app: &'a TestApp) -> Self {
        Self {
            app,
            cookies: HashMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn read(&mut self, response: poem::test::TestResponse) -> Page {
        let response = response.0;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        for set in headers.get_all("set-cookie") {
            let set = set.to_str().unwrap();
            let pair = set.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            self.cookies.insert(name.to_owned(), value.to_owned());
        }
        let html = response.into_body().into_string().await.unwrap();
        Page {
            status,
            headers,
            html,
        }
    }

    async fn open(&mut self, path_and_query: &str) -> Page {
        let request = self
            .app
            .client
            .get(path_and_query)
            .header("Cookie", self.cookie_header());
        let response = request.send().await;
        self.read(response).await
    }

    async fn post(&mut self, form: &[(&str, String)]) -> Page {
        self.post_with(form, &[]).await
    }

    /// [`Browser::post`] with extra request headers (`Origin`, …).
    async fn post_with(&mut self, form: &[(&str, String)], headers: &[(&str, &str)]) -> Page {
        let body = serde_urlencoded::to_string(form).unwrap();
        let mut request = self
            .app
            .client
            .post("/oauth/authorize")
            .header("Cookie", self.cookie_header());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request
            .content_type("application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await;
        self.read(response).await
    }

    /// Posts the form of `page` (its hidden fields) with `extra`.
    async fn submit(&mut self, page: &Page, extra: &[(&str, &str)]) -> Page {
        self.post(&form_of(page, extra)).await
    }
}

/// The form of `page` (its hidden fields), with `extra`.
fn form_of<'a>(page: &Page, extra: &[(&'a str, &str)]) -> Vec<(&'a str, String)> {
    let mut form: Vec<(&str, String)> = [
        "step",
        "csrf",
        "response_type",
        "client_id",
        "redirect_uri",
        "scope",
        "code_challenge",
        "code_challenge_method",
    ]
    .into_iter()
    .map(|name| (name, page.field(name)))
    .collect();
    if page.html.contains(r#"name="state""#) {
        form.push(("state", page.field("state")));
    }
    form.extend(
        extra
            .iter()
            .map(|(name, value)| (*name, (*value).to_owned())),
    );
    form
}

/// The authorization request of `client` with the usual PKCE challenge.
fn authorize_path(client: &str, redirect_uri: &str, extra: &[(&str, &str)]) -> String {
    let mut params = vec![
        ("response_type", "code"),
        ("client_id", client),
        ("redirect_uri", redirect_uri),
        ("scope", "profile"),
        ("state", "xyz-42"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ];
    for (name, value) in extra {
        params.retain(|(existing, _)| existing != name);
        if !value.is_empty() {
            params.push((name, value));
        }
    }
    format!(
        "/oauth/authorize?{}",
        serde_urlencoded::to_string(&params).unwrap()
    )
}

async fn register_app(app: &TestApp, id: &str, first_party: bool, redirect_uris: &[&str]) {
    let new = gatehouse::auth::clients::NewClient {
        name: "Photo App".into(),
        client_id: Some(id.to_owned()),
        confidential: false,
        first_party,
        grant_types: vec!["authorization_code".into(), "refresh_token".into()],
        redirect_uris: redirect_uris.iter().map(|uri| (*uri).to_owned()).collect(),
        scopes: vec!["profile".into()],
    };
    app.state.clients.register(new).await.unwrap();
}

/// An app with a user `alice`; `photo-app` registered (not first-party).
async fn with_app(store: Store) -> TestApp {
    let app = TestApp::spawn(store).await;
    app.register("alice", PASSWORD).await.assert_status(201);
    register_app(&app, APP, false, &[CALLBACK]).await;
    app
}

/// Signs `alice` in through the pages and allows the app: the redirect.
async fn sign_in_and_allow(browser: &mut Browser<'_>) -> Page {
    let login = browser.open(&authorize_path(APP, CALLBACK, &[])).await;
    assert_eq!(login.status, 200, "{}", login.html);
    let consent = browser
        .submit(&login, &[("username", "alice"), ("password", PASSWORD)])
        .await;
    assert_eq!(consent.status, 200, "{}", consent.html);
    assert!(consent.html.contains("Photo App"), "{}", consent.html);
    browser.submit(&consent, &[("decision", "allow")]).await
}

async fn redeem(
    app: &TestApp,
    client: &str,
    code: &str,
    redirect_uri: &str,
    verifier: &str,
) -> Reply {
    app.post_form(
        "/oauth/token",
        &[
            ("grant_type", "authorization_code"),
            ("client_id", client),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", verifier),
        ],
    )
    .await
}

/// The app's refresh grant (a public client: its `client_id` in the body).
async fn refresh_as_app(app: &TestApp, refresh_token: &str) -> Reply {
    app.post_form(
        "/oauth/token",
        &[
            ("grant_type", "refresh_token"),
            ("client_id", APP),
            ("refresh_token", refresh_token),
        ],
    )
    .await
}

/// A fresh code for `alice` and the app (asking consent the first time).
async fn code_for(app: &TestApp) -> String {
    let mut browser = Browser::new(app);
    let login = browser.open(&authorize_path(APP, CALLBACK, &[])).await;
    let mut back = browser
        .submit(&login, &[("username", "alice"), ("password", PASSWORD)])
        .await;
    if back.status == 200 {
        back = browser.submit(&back, &[("decision", "allow")]).await;
    }
    back.answer()["code"].clone()
}

async fn a_public_app_gets_tokens_through_login_and_consent_with_pkce(store: Store) {
    let app = with_app(store).await;
    let mut browser = Browser::new(&app);
    let back = sign_in_and_allow(&mut browser).await;
    assert_eq!(back.status, 302);
    assert!(back.location().starts_with(&format!("{CALLBACK}?")));
    let answer = back.answer();
    assert_eq!(answer["state"], "xyz-42", "state is echoed");
    assert_eq!(answer["iss"], ISSUER, "RFC 9207");
    assert_eq!(answer["code"].len(), 43, "256 bits");

    let tokens = redeem(&app, APP, &answer["code"], CALLBACK, VERIFIER).await;
    tokens.assert_status(200);
    assert_eq!(tokens.body["token_type"], "Bearer");
    assert_eq!(tokens.body["scope"], "profile");
    let claims = crate::helpers::claims_of(tokens.str("access_token"));
    assert_eq!(claims["client_id"], APP);
    app.me(tokens.str("access_token")).await.assert_status(200);
    // The session rotates like any other.
    let refreshed = refresh_as_app(&app, tokens.str("refresh_token")).await;
    refreshed.assert_status(200);
    assert_ne!(refreshed.str("refresh_token"), tokens.str("refresh_token"));
}

async fn a_signed_in_browser_with_consent_given_goes_straight_back(store: Store) {
    let app = with_app(store).await;
    let mut browser = Browser::new(&app);
    sign_in_and_allow(&mut browser).await;
    let again = browser.open(&authorize_path(APP, CALLBACK, &[])).await;
    assert_eq!(again.status, 302, "{}", again.html);
    assert!(again.answer().contains_key("code"));
    // Another browser is asked to sign in.
    let other = Browser::new(&app)
        .open(&authorize_path(APP, CALLBACK, &[]))
        .await;
    assert_eq!(other.status, 200);
    assert!(other.html.contains(r#"name="password""#));
}

async fn prompt_login_asks_for_the_password_again(store: Store) {
    let app = with_app(store).await;
    let mut browser = Browser::new(&app);
    sign_in_and_allow(&mut browser).await;
    let page = browser
        .open(&authorize_path(APP, CALLBACK, &[("prompt", "login")]))
        .await;
    assert_eq!(page.status, 200);
    assert!(page.html.contains(r#"name="password""#));
    let back = browser
        .submit(&page, &[("username", "alice"), ("password", PASSWORD)])
        .await;
    assert_eq!(back.status, 302, "consent was remembered: {}", back.html);
}

async fn a_code_is_redeemed_once_and_a_replay_revokes_what_the_first_got(store: Store) {
    let app = with_app(store).await;
    let code = code_for(&app).await;
    let first = redeem(&app, APP, &code, CALLBACK, VERIFIER).await;
    first.assert_status(200);
    app.me(first.str("access_token")).await.assert_status(200);

    redeem(&app, APP, &code, CALLBACK, VERIFIER)
        .await
        .assert_error(400, "invalid_grant");
    app.me(first.str("access_token"))
        .await
        .assert_error(401, "invalid_token");
    refresh_as_app(&app, first.str("refresh_token"))
        .await
        .assert_error(400, "invalid_grant");
}

async fn two_instances_racing_to_redeem_one_code_give_exactly_one_token(store: Store) {
    let app = with_app(store).await;
    let other = app.another_instance(|_| {}).await;
    for _ in 0..3 {
        let code = code_for(&app).await;
        let (a, b) = tokio::join!(
            redeem(&app, APP, &code, CALLBACK, VERIFIER),
            redeem(&other, APP, &code, CALLBACK, VERIFIER)
        );
        let statuses = [a.status.as_u16(), b.status.as_u16()];
        assert_eq!(
            statuses.iter().filter(|status| **status == 200).count(),
            1,
            "{statuses:?}: {} / {}",
            a.body,
            b.body
        );
        assert!(statuses.contains(&400), "{statuses:?}");
        // And whatever the answer held no longer works: the code was
        // redeemed twice.
        let won = if a.status == 200 { &a } else { &b };
        app.me(won.str("access_token"))
            .await
            .assert_error(401, "invalid_token");
    }
}

async fn a_code_is_bound_to_its_client_verifier_and_redirect_uri(store: Store) {
    let app = with_app(store).await;
    register_app(&app, "other-app", false, &[CALLBACK]).await;
    let other_verifier = "x".repeat(43);
    for (client, redirect_uri, verifier) in [
        (APP, CALLBACK, other_verifier.as_str()),
        ("other-app", CALLBACK, VERIFIER),
        (APP, "https://photos.example/other", VERIFIER),
    ] {
        let code = code_for(&app).await;
        redeem(&app, client, &code, redirect_uri, verifier)
            .await
            .assert_error(400, "invalid_grant");
        // The code is burnt by the attempt.
        redeem(&app, APP, &code, CALLBACK, VERIFIER)
            .await
            .assert_error(400, "invalid_grant");
    }
    // A verifier that cannot be one.
    let code = code_for(&app).await;
    redeem(&app, APP, &code, CALLBACK, "short")
        .await
        .assert_error(400, "invalid_request");
}

async fn a_code_expires_after_a_minute(store: Store) {
    let app = with_app(store).await;
    let code = code_for(&app).await;
    app.clock.advance(std::time::Duration::from_secs(61));
    redeem(&app, APP, &code, CALLBACK, VERIFIER)
        .await
        .assert_error(400, "invalid_grant");
}

async fn pkce_is_required_and_only_s256(store: Store) {
    let app = with_app(store).await;
    for extra in [
        vec![("code_challenge", ""), ("code_challenge_method", "")],
        vec![("code_challenge_method", "plain")],
        vec![("code_challenge_method", "")],
        vec![("code_challenge", "too-short")],
    ] {
        let page = Browser::new(&app)
            .open(&authorize_path(APP, CALLBACK, &extra))
            .await;
        assert_eq!(page.status, 302, "{extra:?}: {}", page.html);
        let answer = page.answer();
        assert_eq!(answer["error"], "invalid_request", "{extra:?}");
        assert_eq!(answer["state"], "xyz-42");
        assert_eq!(answer["iss"], ISSUER);
        assert!(page.location().starts_with(CALLBACK));
    }
}

async fn an_unknown_client_or_redirect_uri_gets_a_page_never_a_redirect(store: Store) {
    let app = with_app(store).await;
    for (client, redirect_uri) in [
        ("nobody", CALLBACK),
        (APP, "https://evil.example/callback"),
        (APP, "https://photos.example/callback/../evil"),
        (APP, "https://photos.example/callback#fragment"),
        (APP, "https://photos.example.evil.example/callback"),
    ] {
        let page = Browser::new(&app)
            .open(&authorize_path(client, redirect_uri, &[]))
            .await;
        assert_eq!(page.status, 400, "{client} {redirect_uri}");
        assert!(page.headers.get("location").is_none(), "never a redirect");
        assert!(page.html.contains("<h1>"), "an HTML page: {}", page.html);
    }
    // A disabled app is unknown.
    app.state.clients.disable(APP).await.unwrap();
    let page = Browser::new(&app)
        .open(&authorize_path(APP, CALLBACK, &[]))
        .await;
    assert_eq!(page.status, 400);
}

async fn a_loopback_redirect_uri_may_use_any_port(store: Store) {
    let app = with_app(store).await;
    register_app(&app, "cli", false, &["http://127.0.0.1/callback"]).await;
    let page = Browser::new(&app)
        .open(&authorize_path(
            "cli",
            "http://127.0.0.1:53682/callback",
            &[],
        ))
        .await;
    assert_eq!(page.status, 200, "{}", page.html);
    let page = Browser::new(&app)
        .open(&authorize_path(
            "cli",
            "http://127.0.0.1:53682/elsewhere",
            &[],
        ))
        .await;
    assert_eq!(page.status, 400);
}

async fn a_form_posted_without_its_csrf_token_or_from_another_site_is_refused(store: Store) {
    let app = with_app(store).await;
    let mut browser = Browser::new(&app);
    let login = browser.open(&authorize_path(APP, CALLBACK, &[])).await;
    let mut form: Vec<(&str, String)> = vec![
        ("step", "login".into()),
        ("response_type", "code".into()),
        ("client_id", APP.into()),
        ("redirect_uri", CALLBACK.into()),
        ("code_challenge", CHALLENGE.into()),
        ("code_challenge_method", "S256".into()),
        ("username", "alice".into()),
        ("password", PASSWORD.into()),
    ];
    // No CSRF field (as a cross-site form would post it).
    let refused = browser.post(&form).await;
    assert_eq!(refused.status, 403, "{}", refused.html);
    // A field that is not the cookie's.
    form.push(("csrf", "A".repeat(43)));
    assert_eq!(browser.post(&form).await.status, 403);
    // The right field, but no cookie (another browser).
    form.pop();
    form.push(("csrf", login.field("csrf")));
    let mut stranger = Browser::new(&app);
    assert_eq!(stranger.post(&form).await.status, 403);
    // The right field and cookie, from another site's page.
    let cross_site = browser
        .post_with(&form, &[("Origin", "https://evil.example")])
        .await;
    assert_eq!(cross_site.status, 403);
    // Or that the browser says came from another site.
    let cross_site = browser
        .post_with(&form, &[("Sec-Fetch-Site", "cross-site")])
        .await;
    assert_eq!(cross_site.status, 403);
    // None of that signed the browser in.
    let again = browser.open(&authorize_path(APP, CALLBACK, &[])).await;
    assert_eq!(again.status, 200);
    assert!(again.html.contains(r#"name="password""#));
    // A page without a referrer sends `Origin: null`: the token decides.
    let no_referrer = browser
        .post_with(
            &form,
            &[("Origin", "null"), ("Sec-Fetch-Site", "same-origin")],
        )
        .await;
    assert_eq!(no_referrer.status, 200, "{}", no_referrer.html);
    assert!(no_referrer.html.contains(r#"value="allow""#), "signed in");
}

async fn the_login_page_answers_unknown_users_and_wrong_passwords_alike(store: Store) {
    let app = with_app(store).await;
    let mut answers = Vec::new();
    for username in ["alice", "nobody"] {
        let mut browser = Browser::new(&app);
        let login = browser.open(&authorize_path(APP, CALLBACK, &[])).await;
        let page = browser
            .submit(
                &login,
                &[("username", username), ("password", "wrong password 1")],
            )
            .await;
        assert_eq!(page.status, 400);
        assert!(page.html.contains("role=\"alert\""), "{}", page.html);
        let csrf = login.field("csrf");
        answers.push(page.html.replace(username, "NAME").replace(&csrf, "CSRF"));
    }
    assert_eq!(answers[0], answers[1]);
}

async fn oversized_or_unreadable_parameters_get_a_clear_page(store: Store) {
    let app = with_app(store).await;
    let long_state = "s".repeat(5000);
    for path in [
        authorize_path(APP, CALLBACK, &[("state", &long_state)]),
        authorize_path("ünïcödé", CALLBACK, &[]),
        "/oauth/authorize?client_id=%FF%FE".to_owned(),
        "/oauth/authorize?client_id=a&client_id=b".to_owned(),
        "/oauth/authorize".to_owned(),
    ] {
        let page = Browser::new(&app).open(&path).await;
        assert_eq!(page.status, 400, "{path}: {}", page.html);
        assert!(page.html.contains("<h1>"), "{path}");
        assert!(page.headers.get("location").is_none());
    }
    let mut browser = Browser::new(&app);
    let junk = browser
        .post(&[("step", "login".into()), ("client_id", "\u{0}".repeat(10))])
        .await;
    assert_eq!(junk.status, 400);
}

async fn denying_consent_sends_access_denied_with_the_state(store: Store) {
    let app = with_app(store).await;
    let mut browser = Browser::new(&app);
    let login = browser.open(&authorize_path(APP, CALLBACK, &[])).await;
    let consent = browser
        .submit(&login, &[("username", "alice"), ("password", PASSWORD)])
        .await;
    let back = browser.submit(&consent, &[("decision", "deny")]).await;
    assert_eq!(back.status, 302);
    let answer = back.answer();
    assert_eq!(answer["error"], "access_denied");
    assert_eq!(answer["state"], "xyz-42");
    assert!(!answer.contains_key("code"));
    // Nothing was remembered: the next request asks again.
    let again = browser.open(&authorize_path(APP, CALLBACK, &[])).await;
    assert_eq!(again.status, 200);
    assert!(again.html.contains(r#"value="allow""#));
}

async fn the_pages_cannot_be_framed_and_run_no_script(store: Store) {
    let app = with_app(store).await;
    let mut browser = Browser::new(&app);
    let login = browser.open(&authorize_path(APP, CALLBACK, &[])).await;
    let consent = browser
        .submit(&login, &[("username", "alice"), ("password", PASSWORD)])
        .await;
    for page in [&login, &consent] {
        let header = |name: &str| page.headers.get(name).unwrap().to_str().unwrap();
        assert_eq!(header("x-frame-options"), "DENY");
        assert_eq!(header("cache-control"), "no-store");
        let policy = header("content-security-policy");
        assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
        assert!(policy.contains("default-src 'none'"), "{policy}");
        // The form's answer is a redirect to the app, which browsers hold
        // to form-action too: that origin, and no other.
        assert!(
            policy.contains("form-action 'self' https://photos.example;"),
            "{policy}"
        );
        assert!(!page.html.contains("<script"));
    }
    let cookies = login
        .headers
        .get_all("set-cookie")
        .iter()
        .chain(consent.headers.get_all("set-cookie"))
        .map(|value| value.to_str().unwrap().to_owned())
        .collect::<Vec<_>>();
    assert!(!cookies.is_empty());
    for cookie in &cookies {
        assert!(cookie.contains("HttpOnly"), "{cookie}");
        assert!(cookie.contains("SameSite="), "{cookie}");
        assert!(cookie.contains("Path=/"), "{cookie}");
    }
    assert_eq!(
        json!(cookies.len()),
        json!(2),
        "a CSRF cookie and a session cookie"
    );
}

async fn a_first_party_app_is_not_asked_for_consent(store: Store) {
    let app = with_app(store).await;
    register_app(&app, "own-app", true, &["https://own.example/cb"]).await;
    let mut browser = Browser::new(&app);
    let login = browser
        .open(&authorize_path("own-app", "https://own.example/cb", &[]))
        .await;
    let back = browser
        .submit(&login, &[("username", "alice"), ("password", PASSWORD)])
        .await;
    assert_eq!(back.status, 302, "{}", back.html);
    assert!(back.answer().contains_key("code"));
}

async fn swagger_ui_signs_in_with_the_built_in_client_and_pkce(store: Store) {
    let app = with_app(store).await;
    let receiver = format!("{ISSUER}/docs/oauth-receiver.html");
    let mut browser = Browser::new(&app);
    let login = browser
        .open(&authorize_path("gatehouse", &receiver, &[]))
        .await;
    assert_eq!(login.status, 200, "{}", login.html);
    let back = browser
        .submit(&login, &[("username", "alice"), ("password", PASSWORD)])
        .await;
    assert_eq!(back.status, 302, "first-party: no consent; {}", back.html);
    assert!(back.location().starts_with(&format!("{receiver}?code=")));
    let tokens = redeem(
        &app,
        "gatehouse",
        &back.answer()["code"],
        &receiver,
        VERIFIER,
    )
    .await;
    tokens.assert_status(200);
    app.me(tokens.str("access_token")).await.assert_status(200);

    // The receiver page is served, and the UI turns PKCE on.
    let page = browser.open("/docs/oauth-receiver.html").await;
    assert_eq!(page.status, 200);
    assert!(page.html.contains("swaggerUIRedirectOauth2"));
    let docs = browser.open("/docs").await;
    assert!(
        docs.html
            .contains("usePkceWithAuthorizationCodeGrant: true")
    );
    let spec = browser.open("/openapi.json").await;
    let spec: serde_json::Value = serde_json::from_str(&spec.html).unwrap();
    let flows = &spec["components"]["securitySchemes"]["OAuth2"]["flows"];
    assert_eq!(
        flows["authorizationCode"]["authorizationUrl"],
        "/oauth/authorize"
    );
    assert_eq!(flows["password"]["tokenUrl"], "/oauth/token");
}

async fn a_code_replayed_after_its_minute_still_revokes_until_pruned(store: Store) {
    let app = with_app(store).await;
    let code = code_for(&app).await;
    let first = redeem(&app, APP, &code, CALLBACK, VERIFIER).await;
    first.assert_status(200);
    app.clock.advance(std::time::Duration::from_secs(120));
    redeem(&app, APP, &code, CALLBACK, VERIFIER)
        .await
        .assert_error(400, "invalid_grant");
    app.me(first.str("access_token"))
        .await
        .assert_error(401, "invalid_token");

    let count = || app.query_strings("SELECT token_hash FROM authorization_codes");
    assert_eq!(count().await.len(), 1);
    let now = app.state.clock.now();
    // Kept while revoked sessions are; gone after.
    app.state
        .store
        .prune(now, now - std::time::Duration::from_secs(100), now)
        .await
        .unwrap();
    assert_eq!(count().await.len(), 1);
    app.state.store.prune(now, now, now).await.unwrap();
    assert!(count().await.is_empty());
}

async fn a_user_sees_and_withdraws_a_consent_which_ends_the_apps_sessions(store: Store) {
    let app = with_app(store).await;
    let code = code_for(&app).await;
    let photos = redeem(&app, APP, &code, CALLBACK, VERIFIER).await;
    photos.assert_status(200);
    let own = app.login("alice", PASSWORD).await;
    own.assert_status(200);
    let own_token = own.str("access_token");

    let listed = app
        .json_with_token(
            poem::http::Method::GET,
            "/users/me/consents",
            own_token,
            &json!(null),
        )
        .await;
    listed.assert_status(200);
    assert_eq!(listed.body.as_array().unwrap().len(), 1);
    assert_eq!(listed.body[0]["client_id"], APP);
    assert_eq!(listed.body[0]["client_name"], "Photo App");
    assert_eq!(listed.body[0]["scope"], "profile");

    let path = format!("/users/me/consents/{APP}");
    app.json_with_token(poem::http::Method::DELETE, &path, own_token, &json!(null))
        .await
        .assert_status(204);
    // The app's session ended, everywhere; the user's own did not.
    app.me(photos.str("access_token"))
        .await
        .assert_error(401, "invalid_token");
    app.another_instance(|_| {})
        .await
        .me(photos.str("access_token"))
        .await
        .assert_error(401, "invalid_token");
    refresh_as_app(&app, photos.str("refresh_token"))
        .await
        .assert_error(400, "invalid_grant");
    app.me(own_token).await.assert_status(200);
    let listed = app
        .json_with_token(
            poem::http::Method::GET,
            "/users/me/consents",
            own_token,
            &json!(null),
        )
        .await;
    assert_eq!(listed.body, json!([]));
    app.json_with_token(poem::http::Method::DELETE, &path, own_token, &json!(null))
        .await
        .assert_error(404, "not_found");
    // The next sign-in asks again.
    let mut browser = Browser::new(&app);
    let login = browser.open(&authorize_path(APP, CALLBACK, &[])).await;
    let consent = browser
        .submit(&login, &[("username", "alice"), ("password", PASSWORD)])
        .await;
    assert_eq!(consent.status, 200);
    assert!(consent.html.contains(r#"value="allow""#));
}

async fn the_sign_in_form_works_with_cors_on_for_the_api(store: Store) {
    let app = TestApp::spawn_with(store, |config| {
        config.cors_origins = vec!["https://photos.example".into()];
    })
    .await;
    app.register("alice", PASSWORD).await.assert_status(201);
    register_app(&app, APP, false, &[CALLBACK]).await;
    let mut browser = Browser::new(&app);
    let login = browser.open(&authorize_path(APP, CALLBACK, &[])).await;
    // A page without a referrer posts with `Origin: null`, which no CORS
    // list names: the pages are not the API's cross-origin surface.
    let form = form_of(&login, &[("username", "alice"), ("password", PASSWORD)]);
    let consent = browser.post_with(&form, &[("Origin", "null")]).await;
    assert_eq!(consent.status, 200, "{}", consent.html);
    assert!(consent.html.contains(r#"value="allow""#));
}

async fn a_password_change_or_a_disabled_account_ends_the_browser_session(store: Store) {
    let app = with_app(store).await;
    let mut browser = Browser::new(&app);
    sign_in_and_allow(&mut browser).await;
    let signed_in = browser.open(&authorize_path(APP, CALLBACK, &[])).await;
    assert_eq!(signed_in.status, 302, "signed in: straight back");

    let own = app.login("alice", PASSWORD).await;
    app.json_with_token(
        poem::http::Method::PUT,
        "/users/me/password",
        own.str("access_token"),
        &json!({"current_password": PASSWORD, "new_password": "a different passphrase 9"}),
    )
    .await
    .assert_status(204);
    let asked = browser.open(&authorize_path(APP, CALLBACK, &[])).await;
    assert_eq!(asked.status, 200, "the password is asked again");
    assert!(asked.html.contains(r#"name="password""#));

    let back = browser
        .submit(
            &asked,
            &[
                ("username", "alice"),
                ("password", "a different passphrase 9"),
            ],
        )
        .await;
    assert_eq!(back.status, 302);
    assert!(app.set_disabled("alice", true).await);
    let refused = browser.open(&authorize_path(APP, CALLBACK, &[])).await;
    assert_eq!(
        refused.status, 200,
        "a disabled account's browser session is over"
    );
    assert!(refused.html.contains(r#"name="password""#));
}

async fn auth_time_is_the_sign_in_on_the_page_through_every_refresh(store: Store) {
    let app = with_app(store).await;
    let mut browser = Browser::new(&app);
    let signed_in_at = crate::helpers::claims_of(
        app.login("alice", PASSWORD).await.str("access_token"),
    )["auth_time"]
        .as_i64()
        .unwrap();
    sign_in_and_allow(&mut browser).await;
    // Ten minutes later the browser, still signed in, gets a code without
    // a password: the session it opens was authenticated back then.
    app.clock.advance(std::time::Duration::from_secs(600));
    let back = browser.open(&authorize_path(APP, CALLBACK, &[])).await;
    assert_eq!(back.status, 302);
    let tokens = redeem(&app, APP, &back.answer()["code"], CALLBACK, VERIFIER).await;
    tokens.assert_status(200);
    let auth_time = |reply: &Reply| {
        crate::helpers::claims_of(reply.str("access_token"))["auth_time"]
            .as_i64()
            .unwrap()
    };
    let first = auth_time(&tokens);
    assert!(
        first - signed_in_at < 60,
        "the sign-in's time, not the code's"
    );
    let refreshed = refresh_as_app(&app, tokens.str("refresh_token")).await;
    refreshed.assert_status(200);
    assert_eq!(auth_time(&refreshed), first, "kept by the refresh");
}

/// An app with `photo-app` registered and `alice` enrolled in TOTP.
async fn with_second_factor(store: Store) -> (TestApp, crate::mfa::Enrolled) {
    let app = TestApp::spawn(store).await;
    register_app(&app, APP, false, &[CALLBACK]).await;
    let alice = crate::mfa::enrolled(&app, "alice").await;
    (app, alice)
}

impl Browser<'_> {
    /// Opens the app's authorization request and gives `username`'s
    /// password: the page that follows.
    async fn sign_in_as(&mut self, username: &str) -> Page {
        let login = self.open(&authorize_path(APP, CALLBACK, &[])).await;
        self.submit(&login, &[("username", username), ("password", PASSWORD)])
            .await
    }
}

/// The second-factor form of `page` with `code` typed in.
fn with_code<'a>(page: &Page, code: &'a str) -> Vec<(&'a str, String)> {
    let mut form = form_of(page, &[("otp", code)]);
    form.push(("mfa_token", page.field("mfa_token")));
    form.push(("username", page.field("username")));
    form
}

async fn an_account_with_a_second_factor_gives_a_code_after_the_password(store: Store) {
    let (app, alice) = with_second_factor(store).await;
    let mut browser = Browser::new(&app);
    let second = browser.sign_in_as("alice").await;
    assert_eq!(second.status, 200, "{}", second.html);
    assert!(
        second.html.contains("Two-step verification"),
        "{}",
        second.html
    );
    assert!(second.html.contains(r#"autocomplete="one-time-code""#));
    assert_eq!(second.field("step"), "otp");
    assert!(
        !browser.cookies.keys().any(|name| name.contains("session")),
        "no browser session before the second factor"
    );

    // Posted from another site, or without the CSRF token: refused before
    // the code is looked at (the step keeps all its tries).
    let otp = crate::mfa::code(&app, &alice.secret, 0);
    let forged = browser
        .post_with(
            &with_code(&second, &otp),
            &[("Origin", "https://evil.example")],
        )
        .await;
    assert_eq!(forged.status, 403, "{}", forged.html);
    let mut tokenless = with_code(&second, &otp);
    tokenless.retain(|(name, _)| *name != "csrf");
    assert_eq!(browser.post(&tokenless).await.status, 403);

    let wrong_code = crate::mfa::wrong_code(&app, &alice.secret, 1);
    let wrong = browser.post(&with_code(&second, &wrong_code)).await;
    assert_eq!(wrong.status, 400, "{}", wrong.html);
    assert!(wrong.html.contains("That code is wrong"), "{}", wrong.html);
    assert_eq!(wrong.field("mfa_token"), second.field("mfa_token"));

    let otp = crate::mfa::code(&app, &alice.secret, 0);
    let consent = browser.post(&with_code(&wrong, &otp)).await;
    assert_eq!(consent.status, 200, "{}", consent.html);
    let back = browser.submit(&consent, &[("decision", "allow")]).await;
    let tokens = redeem(&app, APP, &back.answer()["code"], CALLBACK, VERIFIER).await;
    tokens.assert_status(200);
    let claims = crate::helpers::claims_of(tokens.str("access_token"));
    assert_eq!(claims["amr"], json!(["pwd", "otp", "mfa"]));

    // Signed in with both factors, the browser goes straight back next time.
    let again = browser.open(&authorize_path(APP, CALLBACK, &[])).await;
    assert_eq!(again.status, 302, "{}", again.html);
    let tokens = redeem(&app, APP, &again.answer()["code"], CALLBACK, VERIFIER).await;
    let claims = crate::helpers::claims_of(tokens.str("access_token"));
    assert_eq!(claims["amr"], json!(["pwd", "otp", "mfa"]));
}

async fn a_recovery_code_works_on_the_page_and_enrolling_signs_browsers_out(store: Store) {
    let app = TestApp::spawn(store).await;
    register_app(&app, APP, true, &[CALLBACK]).await;
    app.register("bob", PASSWORD).await.assert_status(201);
    // Bob's browser signs in with the password alone...
    let mut browser = Browser::new(&app);
    let back = browser.sign_in_as("bob").await;
    assert_eq!(back.status, 302, "{}", back.html);
    // ...then bob turns on a second factor: that browser must give it.
    let tokens = app.login("bob", PASSWORD).await;
    let access = tokens.str("access_token");
    let started = crate::mfa::start(&app, access, PASSWORD).await;
    let secret = started.str("secret").to_owned();
    app.clock.freeze();
    crate::mfa::confirm(&app, access, &crate::mfa::code(&app, &secret, 0))
        .await
        .assert_status(200);
    let login = browser.open(&authorize_path(APP, CALLBACK, &[])).await;
    assert_eq!(login.status, 200, "signed out: {}", login.html);
    assert!(login.html.contains(r#"name="password""#));

    let codes: Vec<_> = app
        .query_strings("SELECT code_hash FROM mfa_recovery_codes")
        .await;
    assert_eq!(codes.len(), 10);
    // A recovery code, typed with spaces, in the same field.
    let alice = crate::mfa::enrolled(&app, "alice").await;
    let mut browser = Browser::new(&app);
    let second = browser.sign_in_as("alice").await;
    let typed = format!(" {} ", alice.recovery_codes[0].replace('-', " "));
    let back = browser.post(&with_code(&second, &typed)).await;
    assert_eq!(back.status, 302, "{}", back.html);
    let tokens = redeem(&app, APP, &back.answer()["code"], CALLBACK, VERIFIER).await;
    let claims = crate::helpers::claims_of(tokens.str("access_token"));
    assert_eq!(claims["amr"], json!(["pwd", "mfa"]));
}

async fn a_late_or_worn_out_second_step_on_the_page_starts_over(store: Store) {
    let (app, alice) = with_second_factor(store).await;
    let mut browser = Browser::new(&app);
    let second = browser.sign_in_as("alice").await;
    app.clock.advance(std::time::Duration::from_secs(6 * 60));
    let otp = crate::mfa::code(&app, &alice.secret, 0);
    let late = browser.post(&with_code(&second, &otp)).await;
    assert_eq!(late.status, 400, "{}", late.html);
    assert!(late.html.contains("Sign in again"), "{}", late.html);
    assert!(late.html.contains(r#"name="password""#));

    // Five wrong codes wear a step out, even with the right one after.
    let second = browser
        .submit(&late, &[("username", "alice"), ("password", PASSWORD)])
        .await;
    let mut page = second;
    for seed in 0..5 {
        let wrong_code = crate::mfa::wrong_code(&app, &alice.secret, seed);
        page = browser.post(&with_code(&page, &wrong_code)).await;
        assert_eq!(page.status, 400, "{}", page.html);
    }
    let otp = crate::mfa::code(&app, &alice.secret, 0);
    let worn = browser.post(&with_code(&page, &otp)).await;
    assert!(worn.html.contains("Sign in again"), "{}", worn.html);
}
