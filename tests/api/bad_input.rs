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
    junk_in_every_declared_parameter_and_header_is_a_client_error,
);

/// Registers and logs in a fresh user: the service still works.
async fn assert_still_serving(app: &TestApp) {
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

/// What a hostile client puts where text is expected: non-ASCII, NUL,
/// zero-width, invalid UTF-8 (percent-encoded), overlong, traversal and
/// SQL, and a UUID with one letter wrong.
fn junk() -> Vec<String> {
    let mut junk: Vec<String> = [
        "é",
        "%C3%B5%C3%AD",
        "%E2%80%8B",
        "\u{200b}",
        "%00",
        "\0",
        "%FF%FE",
        "0f8fad5b-d9cb-469f-a165-70867728950é",
        "0F8FAD5B-D9CB-469F-A165-70867728950G",
        "..%2F..%2Fetc%2Fpasswd",
        "' OR 1=1 -- ",
        "😀",
    ]
    .map(str::to_owned)
    .into();
    junk.push("x".repeat(10_000));
    junk
}

/// `text` as one path segment: every byte outside the unreserved set is
/// percent-encoded, except a `%` that already starts an escape.
fn path_segment(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut segment = String::new();
    for (index, byte) in bytes.iter().enumerate() {
        let escape = *byte == b'%'
            && bytes
                .get(index + 1..index + 3)
                .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit));
        if byte.is_ascii_alphanumeric() || b"-._~".contains(byte) || escape {
            segment.push(char::from(*byte));
        } else {
            segment.push_str(&format!("%{byte:02X}"));
        }
    }
    segment
}

/// Every operation of the committed spec: (method, path template, whether
/// it needs a bearer token, its path parameters).
fn operations() -> Vec<(String, String, bool, Vec<String>)> {
    let spec: Value = serde_json::from_str(include_str!("../../openapi/openapi.json")).unwrap();
    let mut operations = Vec::new();
    for (path, methods) in spec["paths"].as_object().unwrap() {
        for (method, operation) in methods.as_object().unwrap() {
            let params = operation["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|param| param["in"] == "path")
                .map(|param| param["name"].as_str().unwrap().to_owned())
                .collect();
            let protected = operation["security"]
                .as_array()
                .is_some_and(|schemes| !schemes.is_empty());
            operations.push((method.to_uppercase(), path.clone(), protected, params));
        }
    }
    operations
}

async fn send(
    app: &TestApp,
    method: &str,
    uri: &str,
    headers: &[(&str, poem::http::HeaderValue)],
) -> poem::test::TestResponse {
    let method = poem::http::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = app.client.request(method, uri);
    for (name, value) in headers {
        request = request.header(*name, value.clone());
    }
    request.send().await
}

async fn junk_in_every_declared_parameter_and_header_is_a_client_error(store: Store) {
    let app = TestApp::spawn(store).await;
    let tokens = app.user_with_tokens("alice").await;
    let bearer =
        poem::http::HeaderValue::from_str(&format!("Bearer {}", tokens.str("access_token")))
            .unwrap();
    let operations = operations();
    assert!(
        operations
            .iter()
            .any(|(_, _, _, params)| !params.is_empty())
    );
    for (method, template, _, params) in &operations {
        for param in params {
            for junk in junk() {
                let uri = template.replace(&format!("{{{param}}}"), &path_segment(&junk));
                let reply = Reply::read(
                    send(&app, method, &uri, &[("authorization", bearer.clone())]).await,
                )
                .await;
                assert!(
                    reply.status.is_client_error(),
                    "{method} {uri}: {} {}",
                    reply.status,
                    reply.body
                );
                assert!(
                    reply.body["error"].is_string(),
                    "{method} {uri}: {}",
                    reply.body
                );
            }
        }
    }
    for (method, template, protected, _) in &operations {
        let uri = template.replace("{id}", &uuid::Uuid::new_v4().to_string());
        for junk in junk() {
            // Header values hold any byte but NUL, CR and LF.
            let Ok(value) = poem::http::HeaderValue::from_bytes(junk.as_bytes()) else {
                continue;
            };
            if *protected {
                let Ok(junk_bearer) =
                    poem::http::HeaderValue::from_bytes(format!("Bearer {junk}").as_bytes())
                else {
                    continue;
                };
                Reply::read(send(&app, method, &uri, &[("authorization", junk_bearer)]).await)
                    .await
                    .assert_error(401, "invalid_token");
            }
            for header in [
                "user-agent",
                "x-forwarded-for",
                "accept",
                "content-type",
                "origin",
            ] {
                let status = send(
                    &app,
                    method,
                    &uri,
                    &[("authorization", bearer.clone()), (header, value.clone())],
                )
                .await
                .0
                .status();
                assert!(
                    !status.is_server_error(),
                    "{method} {uri} with {header}: {junk:?}: {status}"
                );
            }
        }
    }
    // (POST /auth/logout-all above signed alice out everywhere.)
    assert_still_serving(&app).await;
}
