//! The OpenAPI spec: committed, served, and complete.

use serde_json::Value;

use crate::helpers::{Reply, Store, TestApp};

const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json");

fn committed() -> String {
    std::fs::read_to_string(COMMITTED).expect("openapi/openapi.json is committed")
}

#[test]
fn the_committed_spec_equals_the_generated_one() {
    let generated = gatehouse::api::spec_json();
    assert!(
        committed().trim_end() == generated.trim_end(),
        "openapi/openapi.json differs from the code; regenerate it with \
         `cargo run --quiet -- openapi > openapi/openapi.json` and commit it"
    );
}

#[test]
fn every_operation_has_an_operation_id_a_summary_and_declared_errors() {
    let spec: Value = serde_json::from_str(&gatehouse::api::spec_json()).unwrap();
    let mut ids = Vec::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let id = operation["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path}: no operationId"));
            ids.push(id.to_owned());
            assert!(
                operation["summary"].is_string(),
                "{method} {path}: no summary"
            );
            let responses = operation["responses"].as_object().unwrap();
            // Health, discovery and metrics never touch the database: no 500 or 503.
            if path.starts_with("/health") || path.starts_with("/.well-known") || path == "/metrics"
            {
                continue;
            }
            for status in ["500", "503"] {
                assert!(
                    responses.contains_key(status),
                    "{method} {path}: {status} is not declared"
                );
            }
            if operation.get("requestBody").is_some() {
                let declared = responses.contains_key("413");
                assert!(
                    declared,
                    "{method} {path}: 413 (body too large) is not declared"
                );
            }
            for (status, response) in responses {
                if status.starts_with('4') || status.starts_with('5') {
                    let schema =
                        &response["content"]["application/json; charset=utf-8"]["schema"]["$ref"];
                    let name = schema
                        .as_str()
                        .unwrap_or_else(|| panic!("{method} {path} {status}: no body"));
                    let mfa_step = status == "403" && name.ends_with("/MfaRequired");
                    assert!(
                        name.ends_with("/ApiError") || name.ends_with("/OAuthError") || mfa_step,
                        "{name}"
                    );
                }
            }
        }
    }
    let count = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), count, "operation ids are unique");
    for path in [
        "/oauth/token",
        "/auth/login",
        "/auth/refresh",
        "/auth/logout",
        "/users",
        "/users/me",
    ] {
        assert!(
            spec["paths"][path].is_object(),
            "{path} is missing from the spec"
        );
    }
}

#[test]
fn only_endpoints_that_read_client_credentials_declare_invalid_client() {
    let spec: Value = serde_json::from_str(&gatehouse::api::spec_json()).unwrap();
    let declares_401 = |path: &str| {
        spec["paths"][path]["post"]["responses"]
            .as_object()
            .unwrap()
            .contains_key("401")
    };
    assert!(declares_401("/oauth/token"));
    assert!(declares_401("/oauth/revoke"));
    assert!(!declares_401("/auth/login"));
    assert!(!declares_401("/auth/refresh"));
}

#[test]
fn the_security_scheme_is_the_oauth2_password_flow_against_the_token_endpoint() {
    let spec: Value = serde_json::from_str(&gatehouse::api::spec_json()).unwrap();
    let scheme = &spec["components"]["securitySchemes"]["OAuth2"];
    assert_eq!(scheme["type"], "oauth2");
    let flow = &scheme["flows"]["password"];
    assert_eq!(flow["tokenUrl"], "/oauth/token");
    assert_eq!(flow["refreshUrl"], "/oauth/token");
    assert!(flow["scopes"]["profile"].is_string());
    assert_eq!(
        spec["paths"]["/users/me"]["get"]["security"][0]["OAuth2"][0],
        "profile"
    );
}

#[tokio::test]
async fn the_served_spec_is_the_committed_one_and_the_docs_load() {
    let app = TestApp::spawn(Store::Sqlite).await;
    let served = app
        .client
        .get("/openapi.json")
        .send()
        .await
        .0
        .into_body()
        .into_string()
        .await
        .unwrap();
    assert_eq!(served.trim_end(), committed().trim_end());
    let yaml = app.client.get("/openapi.yaml").send().await;
    yaml.assert_status_is_ok();
    let docs = app.client.get("/docs").send().await;
    docs.assert_status_is_ok();
    let html = docs.0.into_body().into_string().await.unwrap();
    assert!(html.contains("swagger-ui"), "Swagger UI is served at /docs");
    Reply::read(app.client.get("/health/live").send().await)
        .await
        .assert_status(200);
    Reply::read(app.client.get("/health/ready").send().await)
        .await
        .assert_status(200);
}

#[tokio::test]
async fn every_answer_carries_the_security_headers_none_may_be_framed_and_only_the_docs_run_scripts()
 {
    let app = TestApp::spawn(Store::Sqlite).await;
    for path in [
        "/health/live",
        "/users/me",
        "/no/such/path",
        "/openapi.json",
        "/docs",
    ] {
        let response = app.client.get(path).send().await.0;
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        assert_eq!(
            header("x-content-type-options").as_deref(),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(
            header("referrer-policy").as_deref(),
            Some("no-referrer"),
            "{path}"
        );
        // Issue 20 item 9: Swagger UI acts with the visitor's credentials;
        // no page of ours may be framed.
        assert_eq!(header("x-frame-options").as_deref(), Some("DENY"), "{path}");
        let csp = header("content-security-policy");
        if path == "/docs" {
            assert_eq!(
                csp.as_deref(),
                Some("frame-ancestors 'none'"),
                "Swagger UI needs its inline scripts, and must not be framed"
            );
        } else {
            assert!(
                csp.as_deref()
                    .is_some_and(|p| p.starts_with("default-src 'none'")),
                "{path}: {csp:?}"
            );
        }
    }
}

async fn preflight(app: &TestApp, origin: &str) -> poem::test::TestResponse {
    app.client
        .options("/auth/login")
        .header("Origin", origin)
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "content-type")
        .send()
        .await
}

// CORS and timeouts are HTTP-layer behaviour, the same on any store.
#[tokio::test]
async fn cors_is_off_by_default_and_allows_only_the_configured_origins() {
    let allow_origin = |response: &poem::test::TestResponse| {
        response
            .0
            .headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let closed = TestApp::spawn(Store::Sqlite).await;
    assert_eq!(
        allow_origin(&preflight(&closed, "https://app.example").await),
        None
    );

    let open = TestApp::spawn_with(Store::Sqlite, |config| {
        config.cors_origins = vec!["https://app.example".into()];
    })
    .await;
    let allowed = preflight(&open, "https://app.example").await;
    assert_eq!(
        allow_origin(&allowed).as_deref(),
        Some("https://app.example")
    );
    assert_eq!(
        allow_origin(&preflight(&open, "https://evil.example").await),
        None
    );
}

#[tokio::test]
async fn a_request_past_the_timeout_gets_503_not_a_hang() {
    // An unknown user's login costs one configured hash: made slow here.
    let app = TestApp::spawn_with(Store::Sqlite, |config| {
        config.request_timeout = std::time::Duration::from_millis(50);
        config.passwords.argon2_memory_kib = 64 * 1024;
        config.passwords.argon2_iterations = 8;
    })
    .await;
    let reply = app.login("nobody", "whatever password").await;
    reply.assert_error(503, "unavailable");
    assert!(reply.header("retry-after").is_some());
    Reply::read(app.client.get("/health/live").send().await)
        .await
        .assert_status(200);
}
