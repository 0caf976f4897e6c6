//! Losing the database, draining on SIGTERM, picking up a key rotation.

use std::time::{Duration, Instant};

use super::*;
use crate::helpers::{Store, TestApp};
use crate::on_both_stores;

on_both_stores!(a_lost_database_is_503_json_and_ready_says_so);

async fn a_lost_database_is_503_json_and_ready_says_so(store: Store) {
    let app = TestApp::spawn(store).await;
    let tokens = app.user_with_tokens("alice").await;
    app.state.store.close().await;
    let ready = Reply::read(app.client.get("/health/ready").send().await).await;
    ready.assert_error(503, "unavailable");
    Reply::read(app.client.get("/health/live").send().await)
        .await
        .assert_status(200);
    app.login("alice", PASSWORD)
        .await
        .assert_error(503, "unavailable");
    app.refresh(tokens.str("refresh_token"))
        .await
        .assert_error(503, "unavailable");
    app.me(tokens.str("access_token"))
        .await
        .assert_error(503, "unavailable");
    app.register("bob", PASSWORD)
        .await
        .assert_error(503, "unavailable");
    assert!(
        !ready.body.to_string().to_lowercase().contains("pool"),
        "no internals leak: {}",
        ready.body
    );
}

#[test]
fn sigterm_finishes_in_flight_requests_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    // Expensive hashing (about a second) keeps a login in flight while the signal arrives.
    let server = Server::start(
        dir.path(),
        &["--argon2-memory-kib", "262144", "--argon2-iterations", "4"],
    );
    let addr = server.addr;
    let in_flight = std::thread::spawn(move || {
        http(
            addr,
            "POST",
            "/oauth/token",
            "application/x-www-form-urlencoded",
            "grant_type=password&username=nobody&password=whatever1",
        )
    });
    // Lets the request reach the other process before the signal does.
    std::thread::sleep(Duration::from_millis(300));
    server.signal("TERM");
    let response = in_flight.join().unwrap();
    assert!(
        response.starts_with("HTTP/1.1 400"),
        "the in-flight request completes: {response}"
    );
    assert!(response.contains("invalid_grant"), "{response}");
    let status = server.wait();
    assert_eq!(status.code(), Some(0));
}

#[test]
fn keys_rotate_reaches_a_running_server_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--key-reload-interval", "1s"]);
    let jwks_kids = || {
        let response = server.request("GET", "/.well-known/jwks.json", "text/plain", "");
        let body = response
            .split("\r\n\r\n")
            .nth(1)
            .unwrap_or_default()
            .to_owned();
        let jwks: serde_json::Value = serde_json::from_str(&body).expect("JWKS JSON");
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|key| key["kid"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let first = jwks_kids();
    assert_eq!(first.len(), 1);

    let output = gatehouse(&["keys", "rotate"], dir.path()).output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let new_kid = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    assert_ne!(new_kid, first[0]);
    let listed = gatehouse(&["keys", "list"], dir.path()).output().unwrap();
    let listed = String::from_utf8(listed.stdout).unwrap();
    assert!(
        listed.contains(&first[0]) && listed.contains(&new_kid),
        "{listed}"
    );

    // The server picks the new key up on its next reload, and keeps the old one.
    let deadline = Instant::now() + Duration::from_secs(30);
    while jwks_kids() != [first[0].clone(), new_kid.clone()] {
        assert!(
            Instant::now() < deadline,
            "the rotation never reached the server"
        );
        // Waiting for the other process's periodic reload.
        std::thread::sleep(Duration::from_millis(100));
    }
    server.stop();

    // A fixed key file is the operator's to replace, not ours to rotate.
    let refused = gatehouse(
        &["keys", "rotate", "--signing-key-file", "x.pem"],
        dir.path(),
    )
    .output()
    .unwrap();
    assert_fails_with_one_line(&refused, "--signing-key-file");
}

#[test]
fn with_metrics_listen_metrics_are_served_there_and_not_on_the_api_listener() {
    let dir = tempfile::tempdir().unwrap();
    let metrics_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let server = Server::start(dir.path(), &["--metrics-listen", &metrics_addr.to_string()]);
    let on_api = server.request("GET", "/metrics", "text/plain", "");
    assert!(on_api.starts_with("HTTP/1.1 404"), "{on_api}");
    assert!(on_api.contains("\"not_found\""), "a JSON error: {on_api}");
    let metrics = http(metrics_addr, "GET", "/metrics", "text/plain", "");
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    assert!(
        metrics.contains("content-type: text/plain; version=0.0.4"),
        "{metrics}"
    );
    assert!(
        metrics.contains("gatehouse_http_request_duration_seconds"),
        "{metrics}"
    );
    // Nothing else is served there.
    let docs = http(metrics_addr, "GET", "/docs", "text/plain", "");
    assert!(docs.starts_with("HTTP/1.1 404"), "{docs}");
    server.assert_live();
}
