//! The token endpoints: the OAuth2 form endpoint and its JSON twin.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;

use crate::helpers::{PASSWORD, Reply, Store, TestApp, claims_of};
use crate::on_both_stores;

on_both_stores!(
    login_by_form_issues_a_token_pair,
    login_by_json_issues_a_token_pair,
    swagger_ui_authorize_requests_are_accepted,
    a_login_that_names_no_client_gets_the_default_client_in_every_token_of_its_session,
    wrong_password_and_unknown_user_get_identical_answers,
    missing_fields_are_invalid_request,
    an_unsupported_grant_type_is_refused,
    an_unknown_scope_is_invalid_scope,
    a_malformed_basic_header_is_invalid_client,
);

#[track_caller]
fn assert_token_pair(reply: &Reply, app: &TestApp) {
    reply.assert_status(200);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert_eq!(reply.str("token_type"), "Bearer");
    assert_eq!(reply.body["expires_in"], 900);
    assert_eq!(reply.str("scope"), "profile");
    assert!(reply.body["refresh_token_expires_in"].as_i64().unwrap() > 13 * 24 * 3600);
    // At least 256 bits, base64url.
    let refresh = reply.str("refresh_token");
    assert!(
        refresh.len() >= 43
            && refresh
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );
    let jwt = reply.str("access_token");
    let header = jsonwebtoken::decode_header(jwt).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::EdDSA);
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    assert_eq!(
        header.kid.as_deref(),
        Some(app.state.signing.signing_key().kid())
    );
    let claims = claims_of(jwt);
    for claim in [
        "iss",
        "aud",
        "sub",
        "iat",
        "nbf",
        "exp",
        "jti",
        "sid",
        "scope",
        "client_id",
        "auth_time",
    ] {
        assert!(
            !claims[claim].is_null(),
            "claim `{claim}` missing from {claims}"
        );
    }
    assert_eq!(claims["iss"], "http://gatehouse.test");
    assert_eq!(claims["aud"], "gatehouse");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        900
    );
}

async fn login_by_form_issues_a_token_pair(store: Store) {
    let app = TestApp::spawn(store).await;
    app.register("alice", PASSWORD).await.assert_status(201);
    let reply = app.login("alice", PASSWORD).await;
    assert_token_pair(&reply, &app);
    app.me(reply.str("access_token")).await.assert_status(200);
}

async fn login_by_json_issues_a_token_pair(store: Store) {
    let app = TestApp::spawn(store).await;
    app.register("alice", PASSWORD).await.assert_status(201);
    let reply = app
        .post_json(
            "/auth/login",
            &json!({"username": "alice", "password": PASSWORD}),
        )
        .await;
    assert_token_pair(&reply, &app);
    // Two logins are two sessions.
    let again = app
        .post_json(
            "/auth/login",
            &json!({"username": "alice", "password": PASSWORD}),
        )
        .await;
    assert_ne!(
        claims_of(again.str("access_token"))["sid"],
        claims_of(reply.str("access_token"))["sid"]
    );
}

async fn swagger_ui_authorize_requests_are_accepted(store: Store) {
    let app = TestApp::spawn(store).await;
    app.register("alice", PASSWORD).await.assert_status(201);
    // A public client registered as `swagger`, which Swagger UI names.
    app.register_client("swagger", false, &["password"], &["profile"])
        .await;
    // Swagger UI sends an empty scope, and client credentials in the body...
    let in_body = app
        .post_form(
            "/oauth/token",
            &[
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", PASSWORD),
                ("scope", ""),
                ("client_id", "swagger"),
                ("client_secret", ""),
            ],
        )
        .await;
    assert_token_pair(&in_body, &app);
    assert_eq!(
        claims_of(in_body.str("access_token"))["client_id"],
        "swagger"
    );
    // ...or in a Basic header.
    let login = [
        ("grant_type", "password"),
        ("username", "alice"),
        ("password", PASSWORD),
        ("scope", "profile"),
    ];
    // (a public client: its secret field left blank).
    let basic = format!("Basic {}", STANDARD.encode("swagger:"));
    let in_header = app
        .post_form_with_authorization("/oauth/token", &basic, &login)
        .await;
    assert_token_pair(&in_header, &app);
    assert_eq!(
        claims_of(in_header.str("access_token"))["client_id"],
        "swagger"
    );
    // With its client fields left blank it sends `Basic Og==` (":"): no
    // client, so the default one.
    let blank = app
        .post_form_with_authorization("/oauth/token", "Basic Og==", &login)
        .await;
    assert_token_pair(&blank, &app);
    assert_eq!(
        claims_of(blank.str("access_token"))["client_id"],
        "gatehouse"
    );
    // And its refresh posts the refresh grant to the same URL.
    let refreshed = app
        .post_form(
            "/oauth/token",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", in_body.str("refresh_token")),
                ("scope", ""),
            ],
        )
        .await;
    assert_token_pair(&refreshed, &app);
}

async fn a_login_that_names_no_client_gets_the_default_client_in_every_token_of_its_session(
    store: Store,
) {
    let app = TestApp::spawn_with(store, |config| {
        config.default_client_id = "web-app".into();
    })
    .await;
    // Seconds are compared below: the wall must not tick between requests.
    app.clock.freeze();
    app.register("alice", PASSWORD).await.assert_status(201);
    let login = app
        .post_json(
            "/auth/login",
            &json!({"username": "alice", "password": PASSWORD}),
        )
        .await;
    assert_token_pair(&login, &app);
    let first = claims_of(login.str("access_token"));
    // RFC 9068 §2.2: `client_id` is required; §2.2.1: `auth_time` is when
    // the user authenticated, and how (RFC 8176).
    assert_eq!(first["client_id"], "web-app");
    assert_eq!(first["auth_time"], first["iat"]);
    assert_eq!(first["amr"], json!(["pwd"]));

    app.clock.advance(std::time::Duration::from_secs(120));
    let refreshed = app.refresh(login.str("refresh_token")).await;
    assert_token_pair(&refreshed, &app);
    let second = claims_of(refreshed.str("access_token"));
    assert_eq!(second["client_id"], "web-app");
    assert_eq!(
        second["iat"].as_i64().unwrap() - first["iat"].as_i64().unwrap(),
        120
    );
    // A refresh is no new authentication.
    assert_eq!(second["auth_time"], first["auth_time"]);

    let sessions = app
        .get_with_token("/users/me/sessions", refreshed.str("access_token"))
        .await;
    sessions.assert_status(200);
    assert_eq!(sessions.body[0]["client_id"], "web-app");
}

async fn wrong_password_and_unknown_user_get_identical_answers(store: Store) {
    let app = TestApp::spawn(store).await;
    app.register("alice", PASSWORD).await.assert_status(201);
    let wrong_password = app.login("alice", "not the password").await;
    let unknown_user = app.login("mallory", "not the password").await;
    wrong_password.assert_error(400, "invalid_grant");
    assert_eq!(wrong_password.status, unknown_user.status);
    assert_eq!(wrong_password.body, unknown_user.body);
    assert_eq!(wrong_password.header("cache-control"), Some("no-store"));
    assert_eq!(unknown_user.header("cache-control"), Some("no-store"));
    let json_wrong = app
        .post_json(
            "/auth/login",
            &json!({"username": "alice", "password": "nope nope"}),
        )
        .await;
    let json_unknown = app
        .post_json(
            "/auth/login",
            &json!({"username": "nobody", "password": "nope nope"}),
        )
        .await;
    assert_eq!(
        (json_wrong.status, &json_wrong.body),
        (json_unknown.status, &json_unknown.body)
    );
    assert_eq!(json_wrong.body, wrong_password.body);
}

async fn missing_fields_are_invalid_request(store: Store) {
    let app = TestApp::spawn(store).await;
    let cases: &[&[(&str, &str)]] = &[
        &[],
        &[("username", "alice"), ("password", PASSWORD)],
        &[("grant_type", ""), ("username", "alice")],
        &[("grant_type", "password"), ("password", PASSWORD)],
        &[("grant_type", "password"), ("username", "alice")],
        &[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", ""),
        ],
        &[("grant_type", "refresh_token")],
        &[("grant_type", "password"), ("grant_type", "refresh_token")],
    ];
    for form in cases {
        let reply = app.post_form("/oauth/token", form).await;
        reply.assert_error(400, "invalid_request");
        assert_eq!(reply.header("cache-control"), Some("no-store"), "{form:?}");
    }
    // The ignored `client_secret` is still bounded as the spec says, even
    // with good credentials.
    app.register("alice", PASSWORD).await.assert_status(201);
    let long_secret = "s".repeat(1025);
    let login = [
        ("grant_type", "password"),
        ("username", "alice"),
        ("password", PASSWORD),
    ];
    let mut with_secret = login.to_vec();
    with_secret.push(("client_secret", &long_secret));
    app.post_form("/oauth/token", &with_secret)
        .await
        .assert_error(400, "invalid_request");
    // A secret that names no client authenticates none.
    with_secret.pop();
    with_secret.push(("client_secret", &long_secret[..1024]));
    app.post_form("/oauth/token", &with_secret)
        .await
        .assert_error(401, "invalid_client");
    for body in [
        json!({}),
        json!({"username": "alice"}),
        json!({"password": PASSWORD}),
    ] {
        app.post_json("/auth/login", &body)
            .await
            .assert_error(400, "invalid_request");
    }
    app.post_json("/auth/refresh", &json!({}))
        .await
        .assert_error(400, "invalid_request");
    app.post_json("/auth/refresh", &json!({"refresh_token": ""}))
        .await
        .assert_error(400, "invalid_request");
}

async fn an_unsupported_grant_type_is_refused(store: Store) {
    let app = TestApp::spawn(store).await;
    for grant in ["implicit", "PASSWORD", "client_credentials "] {
        let reply = app
            .post_form("/oauth/token", &[("grant_type", grant)])
            .await;
        reply.assert_error(400, "unsupported_grant_type");
    }
    // A grant Gatehouse serves, but not to the built-in public client.
    app.post_form("/oauth/token", &[("grant_type", "client_credentials")])
        .await
        .assert_error(400, "unauthorized_client");
}

async fn an_unknown_scope_is_invalid_scope(store: Store) {
    let app = TestApp::spawn(store).await;
    let tokens = app.user_with_tokens("alice").await;
    let form = [
        ("grant_type", "password"),
        ("username", "alice"),
        ("password", PASSWORD),
        ("scope", "admin"),
    ];
    app.post_form("/oauth/token", &form)
        .await
        .assert_error(400, "invalid_scope");
    let json = json!({"username": "alice", "password": PASSWORD, "scope": "profile admin"});
    app.post_json("/auth/login", &json)
        .await
        .assert_error(400, "invalid_scope");
    // A refresh may not widen the scope, and a refused scope does not use up the token.
    let widen = json!({"refresh_token": tokens.str("refresh_token"), "scope": "profile admin"});
    app.post_json("/auth/refresh", &widen)
        .await
        .assert_error(400, "invalid_scope");
    app.refresh(tokens.str("refresh_token"))
        .await
        .assert_status(200);
}

async fn a_malformed_basic_header_is_invalid_client(store: Store) {
    let app = TestApp::spawn(store).await;
    app.register("alice", PASSWORD).await.assert_status(201);
    // "!!!" is not base64; "bm8tY29sb24=" is "no-colon".
    for header in ["Basic !!!", "Basic bm8tY29sb24=", "basic"] {
        let form = [
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", PASSWORD),
        ];
        let reply = app
            .post_form_with_authorization("/oauth/token", header, &form)
            .await;
        if header == "basic" {
            // A scheme without credentials is no client authentication at all.
            reply.assert_status(200);
            continue;
        }
        reply.assert_error(401, "invalid_client");
        assert!(
            reply
                .header("www-authenticate")
                .unwrap()
                .starts_with("Basic")
        );
    }
}
