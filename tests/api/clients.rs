//! Registered clients: client authentication at the token endpoint, the
//! client credentials grant, and introspection (RFC 7662) that sees a
//! revocation at once.

use base64::Engine as _;
use serde_json::json;

use crate::helpers::{PASSWORD, Reply, Store, TestApp, claims_of};
use crate::on_both_stores;

on_both_stores!(
    a_confidential_client_gets_a_token_for_itself_with_basic_or_post,
    a_client_token_names_the_client_and_opens_no_session,
    client_authentication_failures_are_invalid_client_alike,
    a_client_gets_only_its_own_scopes_and_grants,
    a_disabled_client_authenticates_no_more,
    failed_client_authentications_are_throttled,
    introspection_says_what_a_live_token_is,
    introspection_answers_exactly_inactive_for_anything_not_live,
    introspection_sees_a_revocation_through_another_instance_at_once,
    concurrent_introspections_each_get_their_own_sessions_answer,
    introspection_needs_a_confidential_client,
    a_confidential_client_revokes_only_its_own_tokens,
    a_client_refreshes_only_its_own_tokens,
);

fn basic(id: &str, secret: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
    format!("Basic {encoded}")
}

async fn client_credentials(app: &TestApp, id: &str, secret: &str, scope: Option<&str>) -> Reply {
    let mut form = vec![("grant_type", "client_credentials")];
    if let Some(scope) = scope {
        form.push(("scope", scope));
    }
    app.post_form_with_authorization("/oauth/token", &basic(id, secret), &form)
        .await
}

async fn introspect(app: &TestApp, id: &str, secret: &str, token: &str) -> Reply {
    app.post_form_with_authorization("/oauth/introspect", &basic(id, secret), &[("token", token)])
        .await
}

/// A resource server: a confidential client that may only introspect.
async fn resource_server(app: &TestApp) -> (String, String) {
    let secret = app
        .register_client("invoices-api", true, &["client_credentials"], &[])
        .await
        .unwrap();
    ("invoices-api".into(), secret)
}

async fn a_confidential_client_gets_a_token_for_itself_with_basic_or_post(store: Store) {
    let app =
        TestApp::spawn_with(store, |config| config.scopes = vec!["invoices:read".into()]).await;
    let secret = app
        .register_client("billing", true, &["client_credentials"], &["invoices:read"])
        .await
        .unwrap();

    let with_basic = client_credentials(&app, "billing", &secret, None).await;
    with_basic.assert_status(200);
    assert_eq!(with_basic.header("cache-control"), Some("no-store"));
    assert_eq!(with_basic.str("token_type"), "Bearer");
    assert_eq!(with_basic.str("scope"), "invoices:read");
    assert!(
        with_basic.body.get("refresh_token").is_none(),
        "{}",
        with_basic.body
    );

    let with_post = app
        .post_form(
            "/oauth/token",
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "billing"),
                ("client_secret", &secret),
            ],
        )
        .await;
    with_post.assert_status(200);
    // Written in a batch, within moments.
    let mut events = Vec::new();
    for _ in 0..100 {
        events = crate::rotation::audit_events(&app, "client_credentials_granted").await;
        if events.len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].detail.as_deref(), Some("billing"));
}

async fn a_client_token_names_the_client_and_opens_no_session(store: Store) {
    let app = TestApp::spawn(store).await;
    let secret = app
        .register_client("billing", true, &["client_credentials"], &["profile"])
        .await
        .unwrap();
    let granted = client_credentials(&app, "billing", &secret, Some("profile")).await;
    granted.assert_status(200);
    let token = granted.str("access_token");
    let claims = claims_of(token);
    assert_eq!(claims["sub"], "billing");
    assert_eq!(claims["client_id"], "billing");
    assert!(claims.get("sid").is_none(), "{claims}");
    // No account behind it: the account's operations refuse it.
    app.me(token).await.assert_error(401, "invalid_token");
}

async fn client_authentication_failures_are_invalid_client_alike(store: Store) {
    let app = TestApp::spawn(store).await;
    let secret = app
        .register_client("billing", true, &["client_credentials"], &[])
        .await
        .unwrap();
    for (id, presented) in [
        ("billing", "wrong"),
        ("billing", ""),
        ("nobody", secret.as_str()),
        ("nobody", "wrong"),
    ] {
        let refused = client_credentials(&app, id, presented, None).await;
        refused.assert_error(401, "invalid_client");
        assert_eq!(
            refused.header("www-authenticate"),
            Some(r#"Basic realm="gatehouse""#),
            "{id}"
        );
    }
    // In the body: the same answer.
    let refused = app
        .post_form(
            "/oauth/token",
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "billing"),
                ("client_secret", "wrong"),
            ],
        )
        .await;
    refused.assert_error(401, "invalid_client");
    assert_eq!(
        refused.header("www-authenticate"),
        Some(r#"Basic realm="gatehouse""#)
    );
    // An unregistered client id cannot log a user in either.
    app.register("alice", PASSWORD).await;
    app.post_form(
        "/oauth/token",
        &[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", PASSWORD),
            ("client_id", "never-registered"),
        ],
    )
    .await
    .assert_error(401, "invalid_client");
    // Nothing about the secret is kept in the audit trail.
    let rows = app.query_strings("SELECT event FROM audit_events").await;
    assert!(!rows.iter().any(|row| row.contains(&secret)));
}

async fn a_client_gets_only_its_own_scopes_and_grants(store: Store) {
    let app = TestApp::spawn_with(store, |config| {
        config.scopes = vec!["invoices:read invoices:write".into()];
    })
    .await;
    let secret = app
        .register_client("billing", true, &["client_credentials"], &["invoices:read"])
        .await
        .unwrap();
    client_credentials(&app, "billing", &secret, Some("invoices:write"))
        .await
        .assert_error(400, "invalid_scope");
    client_credentials(&app, "billing", &secret, Some("admin"))
        .await
        .assert_error(400, "invalid_scope");
    app.register("alice", PASSWORD).await;
    app.post_form_with_authorization(
        "/oauth/token",
        &basic("billing", &secret),
        &[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", PASSWORD),
        ],
    )
    .await
    .assert_error(400, "unauthorized_client");
}

async fn a_disabled_client_authenticates_no_more(store: Store) {
    let app = TestApp::spawn(store).await;
    let secret = app
        .register_client("billing", true, &["client_credentials"], &[])
        .await
        .unwrap();
    let granted = client_credentials(&app, "billing", &secret, None).await;
    let token = granted.str("access_token").to_owned();
    let (rs, rs_secret) = resource_server(&app).await;
    assert_eq!(
        introspect(&app, &rs, &rs_secret, &token).await.body["active"],
        true
    );

    assert!(app.state.clients.disable("billing").await.unwrap());
    client_credentials(&app, "billing", &secret, None)
        .await
        .assert_error(401, "invalid_client");
    assert_eq!(
        introspect(&app, &rs, &rs_secret, &token).await.body,
        json!({"active": false}),
        "its tokens are no longer live"
    );
}

async fn failed_client_authentications_are_throttled(store: Store) {
    let app = TestApp::spawn(store).await;
    let secret = app
        .register_client("billing", true, &["client_credentials"], &[])
        .await
        .unwrap();
    let mut throttled = None;
    for _ in 0..10 {
        let reply = client_credentials(&app, "billing", "guess", None).await;
        if reply.status == 429 {
            throttled = Some(reply);
            break;
        }
        reply.assert_error(401, "invalid_client");
    }
    let throttled = throttled.expect("guessing is throttled");
    assert!(throttled.header("retry-after").is_some());
    // The real client, with its secret, is not locked out by them.
    client_credentials(&app, "billing", &secret, None)
        .await
        .assert_status(200);
}

async fn introspection_says_what_a_live_token_is(store: Store) {
    let app = TestApp::spawn(store).await;
    let (rs, rs_secret) = resource_server(&app).await;
    let tokens = app.user_with_tokens("alice").await;
    let access = tokens.str("access_token");
    let claims = claims_of(access);

    let found = introspect(&app, &rs, &rs_secret, access).await;
    found.assert_status(200);
    assert_eq!(found.header("cache-control"), Some("no-store"));
    let body = &found.body;
    assert_eq!(body["active"], true);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["username"], "alice");
    for field in [
        "sub",
        "scope",
        "client_id",
        "exp",
        "iat",
        "iss",
        "aud",
        "jti",
    ] {
        assert_eq!(body[field], claims[field], "{field}");
    }

    let refresh = introspect(&app, &rs, &rs_secret, tokens.str("refresh_token")).await;
    assert_eq!(refresh.body["active"], true, "{}", refresh.body);
    assert_eq!(refresh.body["token_type"], "refresh_token");
    assert_eq!(refresh.body["sub"], claims["sub"]);
    assert_eq!(refresh.body["username"], "alice");

    // A client's own token.
    let secret = app
        .register_client("billing", true, &["client_credentials"], &[])
        .await
        .unwrap();
    let own = client_credentials(&app, "billing", &secret, None).await;
    let found = introspect(&app, &rs, &rs_secret, own.str("access_token")).await;
    assert_eq!(found.body["active"], true);
    assert_eq!(found.body["sub"], "billing");
    assert!(found.body.get("username").is_none());
}

async fn introspection_answers_exactly_inactive_for_anything_not_live(store: Store) {
    let app = TestApp::spawn(store).await;
    let (rs, rs_secret) = resource_server(&app).await;
    let tokens = app.user_with_tokens("alice").await;
    let refreshed = app.refresh(tokens.str("refresh_token")).await;
    refreshed.assert_status(200);
    let expired = {
        app.clock.advance(std::time::Duration::from_secs(16 * 60));
        tokens.str("access_token").to_owned()
    };
    let long = "x".repeat(4000);
    for token in [
        tokens.str("refresh_token"), // rotated
        expired.as_str(),
        "junk",
        "a.b.c",
        "ünïcödé",
        long.as_str(),
    ] {
        let found = introspect(&app, &rs, &rs_secret, token).await;
        found.assert_status(200);
        assert_eq!(found.body, json!({"active": false}), "{token:.40}");
    }
    app.post_form_with_authorization("/oauth/introspect", &basic(&rs, &rs_secret), &[])
        .await
        .assert_error(400, "invalid_request");
}

async fn introspection_sees_a_revocation_through_another_instance_at_once(store: Store) {
    let app = TestApp::spawn(store).await;
    let other = app.another_instance(|_| {}).await;
    let (rs, rs_secret) = resource_server(&app).await;
    let tokens = app.user_with_tokens("alice").await;
    let access = tokens.str("access_token");
    // Both instances have seen the session live (their caches hold it).
    app.me(access).await.assert_status(200);
    assert_eq!(
        introspect(&app, &rs, &rs_secret, access).await.body["active"],
        true
    );

    other
        .post_json(
            "/auth/logout",
            &json!({"refresh_token": tokens.str("refresh_token")}),
        )
        .await
        .assert_status(204);
    assert_eq!(
        introspect(&app, &rs, &rs_secret, access).await.body,
        json!({"active": false})
    );
    assert_eq!(
        introspect(&app, &rs, &rs_secret, tokens.str("refresh_token"))
            .await
            .body,
        json!({"active": false})
    );
}

async fn concurrent_introspections_each_get_their_own_sessions_answer(store: Store) {
    let app = TestApp::spawn(store).await;
    let (rs, rs_secret) = resource_server(&app).await;
    // Twelve users; every other one logged out, one of them disabled.
    let mut expected = Vec::new();
    for n in 0..12 {
        let name = format!("user{n}");
        let tokens = app.user_with_tokens(&name).await;
        let live = n % 2 == 0 && n != 4;
        if n % 2 == 1 {
            app.post_json(
                "/auth/logout",
                &json!({"refresh_token": tokens.str("refresh_token")}),
            )
            .await
            .assert_status(204);
        }
        if n == 4 {
            assert!(app.set_disabled(&name, true).await);
        }
        expected.push((name, tokens.str("access_token").to_owned(), live));
    }
    // Many at once, each token several times, so that lookups share reads.
    let asked = expected.iter().cycle().take(expected.len() * 5);
    let answers = futures::future::join_all(
        asked.map(|(_, token, _)| introspect(&app, &rs, &rs_secret, token)),
    )
    .await;
    for ((name, _, live), answer) in expected.iter().cycle().zip(&answers) {
        answer.assert_status(200);
        if *live {
            assert_eq!(answer.body["active"], true, "{name}");
            assert_eq!(answer.body["username"], name.as_str());
        } else {
            assert_eq!(answer.body, json!({"active": false}), "{name}");
        }
    }
}

async fn introspection_needs_a_confidential_client(store: Store) {
    let app = TestApp::spawn(store).await;
    let tokens = app.user_with_tokens("alice").await;
    let access = tokens.str("access_token");
    app.register_client("spa", false, &["refresh_token"], &["profile"])
        .await;
    let anonymous = app
        .post_form("/oauth/introspect", &[("token", access)])
        .await;
    anonymous.assert_error(401, "invalid_client");
    let public = app
        .post_form(
            "/oauth/introspect",
            &[("token", access), ("client_id", "spa")],
        )
        .await;
    public.assert_error(401, "invalid_client");
    let (rs, _) = resource_server(&app).await;
    let wrong = introspect(&app, &rs, "wrong", access).await;
    wrong.assert_error(401, "invalid_client");
    assert_eq!(
        wrong.header("www-authenticate"),
        Some(r#"Basic realm="gatehouse""#)
    );
}

async fn a_confidential_client_revokes_only_its_own_tokens(store: Store) {
    let app = TestApp::spawn(store).await;
    let secret = app
        .register_client("portal", true, &["password", "refresh_token"], &["profile"])
        .await
        .unwrap();
    let other = app
        .register_client("other", true, &["client_credentials"], &[])
        .await
        .unwrap();
    app.register("alice", PASSWORD).await;
    let tokens = app
        .post_form_with_authorization(
            "/oauth/token",
            &basic("portal", &secret),
            &[
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", PASSWORD),
            ],
        )
        .await;
    tokens.assert_status(200);
    assert_eq!(claims_of(tokens.str("access_token"))["client_id"], "portal");
    let refresh = tokens.str("refresh_token");

    app.post_form_with_authorization(
        "/oauth/revoke",
        &basic("other", &other),
        &[("token", refresh)],
    )
    .await
    .assert_error(400, "unauthorized_client");
    app.post_form_with_authorization(
        "/oauth/revoke",
        &basic("portal", "wrong"),
        &[("token", refresh)],
    )
    .await
    .assert_error(401, "invalid_client");
    let rotated = app
        .post_form_with_authorization(
            "/oauth/token",
            &basic("portal", &secret),
            &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
        )
        .await;
    rotated.assert_status(200);
    app.post_form_with_authorization(
        "/oauth/revoke",
        &basic("portal", &secret),
        &[("token", rotated.str("refresh_token"))],
    )
    .await
    .assert_status(200);
    app.assert_session_ended(&rotated).await;

    let fresh = app.login("alice", PASSWORD).await; // the built-in client's
    app.post_form_with_authorization(
        "/oauth/revoke",
        &basic("portal", &secret),
        &[("token", fresh.str("refresh_token"))],
    )
    .await
    .assert_error(400, "unauthorized_client");
    app.post_form(
        "/oauth/revoke",
        &[
            ("token", fresh.str("refresh_token")),
            ("token_type_hint", &"x".repeat(65)),
        ],
    )
    .await
    .assert_error(400, "invalid_request");
}

async fn a_client_refreshes_only_its_own_tokens(store: Store) {
    let app = TestApp::spawn(store).await;
    let portal = app
        .register_client("portal", true, &["password", "refresh_token"], &["profile"])
        .await
        .unwrap();
    app.register_client("spa", false, &["refresh_token"], &["profile"])
        .await;
    let users = app.user_with_tokens("alice").await; // the built-in client's
    let refresh = [
        ("grant_type", "refresh_token"),
        ("refresh_token", users.str("refresh_token")),
    ];
    // Another registered client presents it: refused like an unknown token,
    // and nothing rotates.
    app.post_form_with_authorization("/oauth/token", &basic("portal", &portal), &refresh)
        .await
        .assert_error(400, "invalid_grant");
    let mut as_spa = refresh.to_vec();
    as_spa.push(("client_id", "spa"));
    app.post_form("/oauth/token", &as_spa)
        .await
        .assert_error(400, "invalid_grant");
    app.refresh(users.str("refresh_token"))
        .await
        .assert_status(200);

    // Its own: fine; and a confidential client's session refreshes only
    // for it, authenticated (RFC 6749 §6).
    let tokens = app
        .post_form_with_authorization(
            "/oauth/token",
            &basic("portal", &portal),
            &[
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", PASSWORD),
            ],
        )
        .await;
    let own = tokens.str("refresh_token");
    app.refresh(own).await.assert_error(400, "invalid_grant");
    app.post_form(
        "/oauth/token",
        &[("grant_type", "refresh_token"), ("refresh_token", own)],
    )
    .await
    .assert_error(400, "invalid_grant");
    app.post_form_with_authorization(
        "/oauth/token",
        &basic("portal", &portal),
        &[("grant_type", "refresh_token"), ("refresh_token", own)],
    )
    .await
    .assert_status(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_database_down_introspection_is_503_never_a_guess() {
    let proxy = crate::proxy::DbProxy::start(crate::helpers::mysql_server_addr()).await;
    let app = TestApp::spawn_through(&proxy, crate::faults::for_faults).await;
    let (rs, rs_secret) = resource_server(&app).await;
    let tokens = app.user_with_tokens("alice").await;
    let access = tokens.str("access_token");
    // Live, and the resource server authenticated (and remembered).
    assert_eq!(
        introspect(&app, &rs, &rs_secret, access).await.body["active"],
        true
    );
    app.me(access).await.assert_status(200);

    // Connections that broke while idle (a database restart) cost nothing
    // more than a new one: the next introspection still answers.
    proxy.reset();
    assert_eq!(
        introspect(&app, &rs, &rs_secret, access).await.body["active"],
        true
    );

    for fault in [crate::proxy::Fault::Refuse, crate::proxy::Fault::BlackHole] {
        proxy.inject(fault);
        proxy.reset();
        let started = std::time::Instant::now();
        let answer = introspect(&app, &rs, &rs_secret, access).await;
        answer.assert_error(503, "unavailable");
        assert!(answer.header("retry-after").is_some());
        // What cannot be a token of ours needs no database to be inactive.
        let junk = introspect(&app, &rs, &rs_secret, "junk").await;
        assert_eq!(junk.body, json!({"active": false}), "{fault:?}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{fault:?}"
        );
        proxy.heal();
    }
    assert_eq!(
        introspect(&app, &rs, &rs_secret, access).await.body["active"],
        true
    );
}
