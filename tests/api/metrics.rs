//! Prometheus metrics.

use crate::helpers::{PASSWORD, Store, TestApp};
use crate::on_both_stores;

on_both_stores!(
    metrics_count_events_and_answers_in_prometheus_text,
    metrics_show_the_published_keys_and_how_old_the_signing_key_is,
    metrics_count_session_checks_answered_from_the_cache_and_the_database,
    metrics_count_access_tokens_verified_by_their_signature_once_and_then_from_the_cache,
    metrics_time_each_operation_and_show_the_database_pool,
);

pub(crate) async fn metrics(app: &TestApp) -> String {
    let response = app.client.get("/metrics").send().await;
    response.assert_status_is_ok();
    let content_type = response
        .0
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    response.0.into_body().into_string().await.unwrap()
}

fn value(text: &str, series: &str) -> u64 {
    let line = text
        .lines()
        .find(|line| line.starts_with(series))
        .unwrap_or_else(|| panic!("no {series} in {text}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

async fn metrics_count_events_and_answers_in_prometheus_text(store: Store) {
    let app = TestApp::spawn(store).await;
    let before = metrics(&app).await;
    app.register("alice", PASSWORD).await.assert_status(201);
    app.login("alice", "wrong password")
        .await
        .assert_error(400, "invalid_grant");
    let tokens = app.login("alice", PASSWORD).await;
    app.refresh(tokens.str("refresh_token"))
        .await
        .assert_status(200);
    let after = metrics(&app).await;
    for (series, delta) in [
        ("gatehouse_events_total{event=\"login_succeeded\"}", 1),
        ("gatehouse_events_total{event=\"login_failed\"}", 1),
        ("gatehouse_events_total{event=\"refresh\"}", 1),
        ("gatehouse_http_responses_total{class=\"4xx\"}", 1),
    ] {
        assert_eq!(
            value(&after, series) - value(&before, series),
            delta,
            "{series}"
        );
    }
    // The two /metrics reads and the register, login and refresh: 2xx.
    let ok = value(&after, "gatehouse_http_responses_total{class=\"2xx\"}")
        - value(&before, "gatehouse_http_responses_total{class=\"2xx\"}");
    assert_eq!(ok, 4);
    assert!(!after.contains("alice"), "no user data in metrics");
}

async fn metrics_show_the_published_keys_and_how_old_the_signing_key_is(store: Store) {
    let app = TestApp::spawn(store).await;
    let before = metrics(&app).await;
    assert_eq!(value(&before, "gatehouse_signing_keys_published"), 1);
    assert!(value(&before, "gatehouse_signing_key_age_seconds") < 3600);
    gatehouse::rotate_keys(
        &app.config.keys,
        &app.config.database,
        std::time::Duration::from_secs(3600),
    )
    .await
    .unwrap();
    app.state.signing.reload().await.unwrap();
    let after = metrics(&app).await;
    // The next key is published ahead; the current one still signs.
    assert_eq!(value(&after, "gatehouse_signing_keys_published"), 2);
    assert!(
        value(&after, "gatehouse_signing_key_age_seconds")
            >= value(&before, "gatehouse_signing_key_age_seconds")
    );
}

/// `/metrics` before and after a fresh user's three `GET /users/me` with one
/// access token.
async fn metrics_around_three_calls_of_me(store: Store) -> (String, String) {
    let app = TestApp::spawn(store).await;
    let tokens = app.user_with_tokens("alice").await;
    let before = metrics(&app).await;
    for _ in 0..3 {
        app.me(tokens.str("access_token")).await.assert_status(200);
    }
    (before, metrics(&app).await)
}

async fn metrics_count_session_checks_answered_from_the_cache_and_the_database(store: Store) {
    let (before, after) = metrics_around_three_calls_of_me(store).await;
    let delta = |series| value(&after, series) - value(&before, series);
    // The first check may ask the database; the next ones are hits.
    let (hits, misses) = (
        delta("gatehouse_session_cache_hits_total"),
        delta("gatehouse_session_cache_misses_total"),
    );
    assert_eq!(hits + misses, 3, "one check per request");
    assert!(hits >= 2, "{hits} hits, {misses} misses");
}

async fn metrics_count_access_tokens_verified_by_their_signature_once_and_then_from_the_cache(
    store: Store,
) {
    let (before, after) = metrics_around_three_calls_of_me(store).await;
    let delta = |series| value(&after, series) - value(&before, series);
    assert_eq!(delta("gatehouse_verified_token_cache_misses_total"), 1);
    assert_eq!(delta("gatehouse_verified_token_cache_hits_total"), 2);
}

async fn metrics_time_each_operation_and_show_the_database_pool(store: Store) {
    let (before, after) = metrics_around_three_calls_of_me(store).await;
    let count = "gatehouse_http_request_duration_seconds_count{operation=\"getMe\"}";
    assert!(!before.contains(count), "no getMe was answered yet");
    assert_eq!(value(&after, count), 3);
    let all = "gatehouse_http_request_duration_seconds_bucket{operation=\"getMe\",le=\"+Inf\"}";
    assert_eq!(value(&after, all), 3);
    // The first scrape is timed under its own operation.
    let scrapes = "gatehouse_http_request_duration_seconds_count{operation=\"metrics\"}";
    assert_eq!(value(&after, scrapes), 1);
    assert!(value(&after, "gatehouse_db_pool_max_connections") >= 1);
    assert!(
        value(&after, "gatehouse_db_pool_connections")
            >= value(&after, "gatehouse_db_pool_idle_connections")
    );
}
