//! Junk in every parameter and header the spec declares, on every
//! operation: always a client error, never a 5xx, and the service keeps
//! working.

use serde_json::Value;

use crate::bad_input::assert_still_serving;
use crate::helpers::{Reply, Store, TestApp};
use crate::on_both_stores;

on_both_stores!(junk_in_every_declared_parameter_and_header_is_a_client_error);

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
