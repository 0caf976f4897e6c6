//! Hostile and broken input: always a 4xx JSON answer, never a 5xx, and the
//! service keeps working afterwards.

use serde_json::{Value, json};

use crate::helpers::{PASSWORD, Reply, Store, TestApp};
use crate::on_both_stores;

on_both_stores!(
    malformed_json_is_a_400_json_error,
    wrong_json_types_are_a_400_json_error,
    a_wrong_content_type_is_a_json_error,
    a_one_megabyte_password_is_refused,
    a_hundred_kilobyte_username_is_refused,
    nul_bytes_are_refused_or_harmless,
    non_ascii_and_control_characters_in_a_login_are_invalid_grant,
    sql_metacharacters_are_just_text,
    unknown_paths_and_methods_are_json_errors,
    oversized_headers_are_a_431_json_error,
);

/// Registers and logs in a fresh user: the service still works.
pub(crate) async fn assert_still_serving(app: &TestApp) {
    let name = format!("check{}", uuid::Uuid::new_v4().simple());
    let tokens = app.user_with_tokens(&name).await;
    app.me(tokens.str("access_token")).await.assert_status(200);
}

async fn post_raw(
    app: &TestApp,
    path: &str,
    content_type: &str,
    body: impl Into<Vec<u8>>,
) -> Reply {
    let body: Vec<u8> = body.into();
    Reply::read(
        app.client
            .post(path)
            .content_type(content_type)
            .body(body)
            .send()
            .await,
    )
    .await
}

#[track_caller]
fn assert_client_error(reply: &Reply) {
    assert!(
        reply.status.is_client_error(),
        "{}: {}",
        reply.status,
        reply.body
    );
    let code = reply.body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code in {}", reply.body));
    assert!(!code.is_empty());
}

async fn malformed_json_is_a_400_json_error(store: Store) {
    let app = TestApp::spawn(store).await;
    for path in ["/users", "/auth/login", "/auth/refresh", "/auth/logout"] {
        for body in [
            "{",
            "",
            "null",
            "[]",
            "{\"username\": \"a\",}",
            "\u{feff}{}",
            "{\"a\":1}garbage",
        ] {
            let reply = post_raw(&app, path, "application/json", body).await;
            reply.assert_status(400);
            assert_client_error(&reply);
        }
    }
    let token = post_raw(&app, "/auth/login", "application/json", "{").await;
    token.assert_error(400, "invalid_request");
    assert_eq!(token.header("cache-control"), Some("no-store"));
    post_raw(
        &app,
        "/oauth/token",
        "application/x-www-form-urlencoded",
        "%%%&&=",
    )
    .await
    .assert_error(400, "invalid_request");
    assert_still_serving(&app).await;
}

async fn wrong_json_types_are_a_400_json_error(store: Store) {
    let app = TestApp::spawn(store).await;
    let bodies: [(&str, Value); 6] = [
        ("/users", json!({"username": 5, "password": PASSWORD})),
        ("/users", json!({"username": "alice", "password": ["a"]})),
        (
            "/users",
            json!({"username": "alice", "password": PASSWORD, "email": false}),
        ),
        (
            "/auth/login",
            json!({"username": null, "password": PASSWORD}),
        ),
        ("/auth/refresh", json!({"refresh_token": {"nested": true}})),
        ("/auth/logout", json!({"refresh_token": 1.5})),
    ];
    for (path, body) in &bodies {
        let reply = app.post_json(path, body).await;
        reply.assert_status(400);
        assert_client_error(&reply);
    }
    assert_still_serving(&app).await;
}

async fn a_wrong_content_type_is_a_json_error(store: Store) {
    let app = TestApp::spawn(store).await;
    let body = json!({"username": "alice", "password": PASSWORD}).to_string();
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/xml",
    ] {
        post_raw(&app, "/users", content_type, body.clone())
            .await
            .assert_error(415, "unsupported_media_type");
    }
    // The token endpoints answer in RFC 6749's terms.
    post_raw(&app, "/auth/login", "text/plain", body.clone())
        .await
        .assert_error(400, "invalid_request");
    post_raw(&app, "/oauth/token", "application/json", body)
        .await
        .assert_error(400, "invalid_request");
    assert_still_serving(&app).await;
}

async fn a_one_megabyte_password_is_refused(store: Store) {
    let app = TestApp::spawn(store).await;
    let huge = "p".repeat(1024 * 1024);
    // Over the body limit: the declared 413, as JSON.
    app.register("alice", &huge)
        .await
        .assert_error(413, "payload_too_large");
    let login = app
        .post_json(
            "/auth/login",
            &json!({"username": "alice", "password": huge}),
        )
        .await;
    login.assert_error(413, "payload_too_large");
    app.login("alice", &huge)
        .await
        .assert_error(413, "payload_too_large");
    // Just over the policy's 1024 bytes, within the body limit: the policy says why.
    app.register("alice", &"pq".repeat(600))
        .await
        .assert_error(400, "invalid_password");
    assert_still_serving(&app).await;
}

async fn a_hundred_kilobyte_username_is_refused(store: Store) {
    let app = TestApp::spawn(store).await;
    let huge = "u".repeat(100 * 1024);
    assert_client_error(&app.register(&huge, PASSWORD).await);
    assert_client_error(&app.login(&huge, PASSWORD).await);
    // Within the body limit, the username rule answers.
    app.register(&"u".repeat(10_000), PASSWORD)
        .await
        .assert_error(400, "invalid_username");
    app.post_json(
        "/auth/login",
        &json!({"username": "u".repeat(10_000), "password": PASSWORD}),
    )
    .await
    .assert_error(400, "invalid_grant");
    assert_still_serving(&app).await;
}

async fn nul_bytes_are_refused_or_harmless(store: Store) {
    let app = TestApp::spawn(store).await;
    app.register("ali\0ce", PASSWORD)
        .await
        .assert_error(400, "invalid_username");
    app.register("alice", "pass\0word123")
        .await
        .assert_error(400, "invalid_password");
    app.register("alice", PASSWORD).await.assert_status(201);
    app.login("alice\0", PASSWORD)
        .await
        .assert_error(400, "invalid_grant");
    app.login("alice", &format!("{PASSWORD}\0"))
        .await
        .assert_error(400, "invalid_grant");
    app.refresh("abc\0def")
        .await
        .assert_error(400, "invalid_grant");
    let email = json!({"username": "bob", "password": PASSWORD, "email": "b\0b@example.org"});
    app.post_json("/users", &email)
        .await
        .assert_error(400, "invalid_email");
    assert_still_serving(&app).await;
}

async fn non_ascii_and_control_characters_in_a_login_are_invalid_grant(store: Store) {
    let app = TestApp::spawn(store).await;
    app.register("alice", PASSWORD).await.assert_status(201);
    for name in [
        "ünïcødé",
        "\u{1}\u{15}",
        "𣗆⿱",
        "ali\u{301}ce",
        "\u{feff}alice",
        "ａ\u{0}",
    ] {
        app.login(name, PASSWORD)
            .await
            .assert_error(400, "invalid_grant");
        let json = json!({"username": name, "password": PASSWORD});
        app.post_json("/auth/login", &json)
            .await
            .assert_error(400, "invalid_grant");
    }
    assert_still_serving(&app).await;
}

async fn sql_metacharacters_are_just_text(store: Store) {
    let app = TestApp::spawn(store).await;
    app.register("alice", PASSWORD).await.assert_status(201);
    for name in [
        "' OR '1'='1",
        "alice' --",
        "alice\"; DROP TABLE users; --",
        "%",
        "*",
        "alice%",
    ] {
        app.login(name, PASSWORD)
            .await
            .assert_error(400, "invalid_grant");
        app.register(name, PASSWORD)
            .await
            .assert_error(400, "invalid_username");
    }
    app.refresh("' OR 1=1 --")
        .await
        .assert_error(400, "invalid_grant");
    // Metacharacters are fine inside a password, and stored exactly.
    let tricky = "pa'ss\"; DROP TABLE users; -- %_\\";
    app.register("bobby", tricky).await.assert_status(201);
    app.login("bobby", tricky).await.assert_status(200);
    app.login("alice", PASSWORD).await.assert_status(200);
    assert_still_serving(&app).await;
}

async fn unknown_paths_and_methods_are_json_errors(store: Store) {
    let app = TestApp::spawn(store).await;
    let missing = Reply::read(app.client.get("/no/such/path").send().await).await;
    missing.assert_error(404, "not_found");
    let wrong_method = Reply::read(app.client.delete("/oauth/token").send().await).await;
    wrong_method.assert_error(405, "method_not_allowed");
    assert_eq!(wrong_method.header("allow"), Some("POST"));
    let get_token = Reply::read(app.client.get("/auth/login").send().await).await;
    get_token.assert_error(405, "method_not_allowed");
    assert_eq!(get_token.header("allow"), Some("POST"));
    let put_me = Reply::read(app.client.put("/users/me").send().await).await;
    put_me.assert_error(405, "method_not_allowed");
    assert_eq!(put_me.header("allow"), Some("GET"));
}

async fn oversized_headers_are_a_431_json_error(store: Store) {
    let app = TestApp::spawn(store).await;
    let tokens = app.user_with_tokens("alice").await;
    let padding = "x".repeat(app.config.max_header_bytes);
    let request = app
        .client
        .get("/users/me")
        .header(
            "Authorization",
            format!("Bearer {}", tokens.str("access_token")),
        )
        .header("X-Padding", &padding);
    let reply = Reply::read(request.send().await).await;
    reply.assert_error(431, "headers_too_large");
    // Many small headers count too.
    let mut request = app.client.get("/health/live");
    for i in 0..64 {
        request = request.header(format!("x-filler-{i}"), "y".repeat(300));
    }
    Reply::read(request.send().await)
        .await
        .assert_error(431, "headers_too_large");
    // Within the limit, the same request works.
    app.me(tokens.str("access_token")).await.assert_status(200);
    assert_still_serving(&app).await;
}
