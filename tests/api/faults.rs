//! The database failing under the refresh path, through a proxy: an
//! outage longer than the grace window, answers to COMMIT lost, connections
//! reset mid-statement. Every answer is a 200 or a JSON 503 with
//! `Retry-After` within `--db-timeout` + 1 s, and afterwards every client is
//! still signed in, no session revoked. MySQL only: SQLite is a file inside
//! the process, with no connection to lose (its restart is in `restart.rs`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use gatehouse::ids::TokenHash;
use serde_json::json;

use crate::helpers::{PASSWORD, Reply, TestApp, claims_of, mysql_server_addr};
use crate::proxy::{DbProxy, Fault};

pub const CLIENTS: usize = 16;
pub const DB_TIMEOUT: Duration = Duration::from_secs(1);
/// Longer than the default grace window (10 s).
pub const OUTAGE: Duration = Duration::from_secs(15);

/// The app behind a proxy, with `CLIENTS` users signed in: their refresh
/// tokens.
async fn signed_in_clients() -> (DbProxy, Arc<TestApp>, Vec<String>) {
    let proxy = DbProxy::start(mysql_server_addr()).await;
    let app = TestApp::spawn_through(&proxy, for_faults).await;
    let app = Arc::new(app);
    let tokens = sign_in_clients(one(&app)).await;
    (proxy, app, tokens)
}

/// The settings of the fault tests: a short database deadline, and a
/// connection for every client, so that each reaches its COMMIT.
pub fn for_faults(config: &mut gatehouse::config::Config) {
    config.database.db_timeout = DB_TIMEOUT;
    config.database.db_max_connections = 2 * CLIENTS as u32;
}

/// `CLIENTS` users signed in, client `i` through instance `i` modulo their
/// number: their refresh tokens.
pub async fn sign_in_clients(apps: &[Arc<TestApp>]) -> Vec<String> {
    let mut tokens = Vec::new();
    for client in 0..CLIENTS {
        let app = &apps[client % apps.len()];
        let login = app.user_with_tokens(&format!("client{client}")).await;
        tokens.push(login.str("refresh_token").to_owned());
    }
    tokens
}

/// The one instance of most tests, as the list the helpers take.
fn one(app: &Arc<TestApp>) -> &[Arc<TestApp>] {
    std::slice::from_ref(app)
}

/// One refresh: the successor on 200, `None` on a JSON 503 with
/// `Retry-After` in time; anything else fails the test.
pub async fn refresh_once(app: &TestApp, token: &str) -> Option<String> {
    let started = Instant::now();
    let reply = app.refresh(token).await;
    let took = started.elapsed();
    if reply.status == 200 {
        return Some(reply.str("refresh_token").to_owned());
    }
    reply.assert_error(503, "unavailable");
    assert!(reply.header("retry-after").is_some(), "{:?}", reply.headers);
    assert!(
        took < DB_TIMEOUT + Duration::from_secs(1),
        "answered in {took:?}"
    );
    None
}

/// Refreshes `token` until it is answered 200: the database is back and
/// the pool has reconnected (bounded).
pub async fn refresh_when_back(app: &TestApp, token: &str) -> String {
    for _ in 0..100 {
        if let Some(successor) = refresh_once(app, token).await {
            return successor;
        }
        // Waiting for the pool to reconnect, not for a window to pass.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the database never came back");
}

/// Every client's refresh is answered 503 in time.
pub async fn every_refresh_is_unavailable(apps: &[Arc<TestApp>], tokens: &[String]) {
    let during = for_every_client(apps, tokens, |app, token| async move {
        refresh_once(&app, &token).await
    })
    .await;
    assert!(during.iter().all(Option::is_none), "{during:?}");
}

/// Every client refreshes its token once the database is back: the
/// successors.
pub async fn refresh_everyone_when_back(apps: &[Arc<TestApp>], tokens: &[String]) -> Vec<String> {
    for_every_client(apps, tokens, |app, token| async move {
        refresh_when_back(&app, &token).await
    })
    .await
}

/// Runs `each(app, token)` for every client at once, client `i` on
/// instance `i` modulo their number.
async fn for_every_client<F, Fut, T>(apps: &[Arc<TestApp>], tokens: &[String], each: F) -> Vec<T>
where
    F: Fn(Arc<TestApp>, String) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let tasks: Vec<_> = tokens
        .iter()
        .enumerate()
        .map(|(client, token)| {
            let app = apps[client % apps.len()].clone();
            tokio::spawn(each(app, token.clone()))
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.expect("the client finished"));
    }
    results
}

/// Every client's token rotates, its access token works, and nothing was
/// taken for reuse.
pub async fn assert_everyone_signed_in(apps: &[Arc<TestApp>], tokens: &[String]) {
    let replies = for_every_client(apps, tokens, |app, token| async move {
        let reply = app.refresh(&token).await;
        reply.assert_status(200);
        app.me(reply.str("access_token")).await.assert_status(200);
    })
    .await;
    assert_eq!(replies.len(), tokens.len());
    let reuse = apps[0]
        .state
        .store
        .audit_events_named("refresh_reuse_detected")
        .await
        .unwrap();
    assert!(reuse.is_empty(), "sessions revoked as reuse: {reuse:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_longer_than_the_grace_window_logs_nobody_out() {
    let (proxy, app, tokens) = signed_in_clients().await;
    proxy.inject(Fault::BlackHole);
    every_refresh_is_unavailable(one(&app), &tokens).await;
    app.clock.advance(OUTAGE);
    proxy.heal();
    let tokens = refresh_everyone_when_back(one(&app), &tokens).await;
    assert_everyone_signed_in(one(&app), &tokens).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_whose_commit_answer_was_lost_is_handed_out_after_the_outage() {
    let (proxy, app, tokens) = signed_in_clients().await;
    proxy.inject(Fault::LoseCommitAnswers);
    every_refresh_is_unavailable(one(&app), &tokens).await;
    proxy.heal();
    // Each rotation committed although its client was answered 503.
    for token in &tokens {
        let stored = app
            .state
            .store
            .find_refresh_token(&TokenHash::of(token))
            .await
            .unwrap()
            .unwrap();
        assert!(stored.rotated_at.is_some(), "{stored:?}");
    }
    app.clock.advance(OUTAGE);
    let successors = refresh_everyone_when_back(one(&app), &tokens).await;
    assert_everyone_signed_in(one(&app), &successors).await;
    let retries = app.state.store.transactions_retried();
    assert_eq!(retries, 0, "a timed-out call is not retried in the request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_reset_mid_statement_and_mid_commit_log_nobody_out() {
    let (proxy, app, tokens) = signed_in_clients().await;
    let proxy = Arc::new(proxy);
    let resetting = {
        let proxy = proxy.clone();
        tokio::spawn(async move {
            for _ in 0..200 {
                // Pacing the resets while the refreshes run, not a window.
                tokio::time::sleep(Duration::from_millis(10)).await;
                proxy.reset();
            }
        })
    };
    let unavailable = for_every_client(one(&app), &tokens, |app, token| async move {
        let (mut token, mut unavailable) = (token, 0);
        for _ in 0..20 {
            match refresh_once(&app, &token).await {
                Some(successor) => token = successor,
                None => {
                    // Whether it committed or not, retry after the grace window.
                    unavailable += 1;
                    app.clock.advance(OUTAGE);
                }
            }
        }
        (token, unavailable)
    })
    .await;
    resetting.abort();
    proxy.heal();
    let failures: usize = unavailable.iter().map(|(_, count)| count).sum();
    assert!(failures > 0, "the resets never hit a request");
    let tokens: Vec<String> = unavailable.into_iter().map(|(token, _)| token).collect();
    let tokens = refresh_everyone_when_back(one(&app), &tokens).await;
    assert_everyone_signed_in(one(&app), &tokens).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_refuses_connections_is_503_in_time_and_recovers() {
    let (proxy, app, tokens) = signed_in_clients().await;
    proxy.inject(Fault::Refuse);
    proxy.reset();
    every_refresh_is_unavailable(one(&app), &tokens).await;
    proxy.heal();
    let tokens = refresh_everyone_when_back(one(&app), &tokens).await;
    assert_everyone_signed_in(one(&app), &tokens).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_database_hung_every_endpoint_answers_503_in_time() {
    let (proxy, app, tokens) = signed_in_clients().await;
    let login = app.login("client0", PASSWORD).await;
    login.assert_status(200);
    proxy.inject(Fault::BlackHole);
    proxy.reset();
    let access = login.str("access_token");
    let requests = [
        app.client.get("/health/ready"),
        app.client
            .post("/users")
            .body_json(&json!({"username": "newcomer", "password": PASSWORD})),
        app.client
            .post("/auth/login")
            .body_json(&json!({"username": "client1", "password": PASSWORD})),
        app.client
            .post("/auth/refresh")
            .body_json(&json!({"refresh_token": tokens[1]})),
        app.client
            .post("/auth/logout")
            .body_json(&json!({"refresh_token": tokens[2]})),
        app.client
            .get("/users/me/sessions")
            .header("Authorization", format!("Bearer {access}")),
        app.client
            .post("/oauth/revoke")
            .form(&[("token", tokens[3].as_str())]),
    ];
    // All at once: each waits out the database timeout on its own.
    let answers = futures::future::join_all(requests.into_iter().map(|request| async {
        let started = Instant::now();
        let reply = Reply::read(request.send().await).await;
        (reply, started.elapsed())
    }))
    .await;
    for (reply, took) in answers {
        reply.assert_error(503, "unavailable");
        assert!(reply.header("retry-after").is_some(), "{:?}", reply.headers);
        assert!(
            took < DB_TIMEOUT + Duration::from_secs(1),
            "answered in {took:?}"
        );
    }
    proxy.heal();
    refresh_when_back(&app, &tokens[0]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_the_database_aborts_is_tried_again_and_written_once() {
    let (proxy, app, tokens) = signed_in_clients().await;
    proxy.inject(Fault::AbortNextCommit);
    let reply = app.refresh(&tokens[0]).await;
    reply.assert_status(200);
    assert_eq!(app.state.store.transactions_retried(), 1);
    let session = claims_of(reply.str("access_token"))["sid"].clone();
    let refreshes = app
        .state
        .store
        .audit_events_named("refresh")
        .await
        .unwrap()
        .into_iter()
        .filter(|event| event.session_id.as_ref().map(|id| id.as_str()) == session.as_str())
        .count();
    assert_eq!(refreshes, 1, "the aborted attempt left nothing behind");
    app.refresh(reply.str("refresh_token"))
        .await
        .assert_status(200);
}

/// Issue 26: the second step of a login with the database hung is a 503 in
/// time that spends nothing (the same `mfa_token` and code work once it is
/// back), and a commit the database aborts is tried again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_second_step_of_a_login_survives_a_hung_database_and_an_aborted_commit() {
    let proxy = DbProxy::start(mysql_server_addr()).await;
    let app = TestApp::spawn_through(&proxy, for_faults).await;
    let alice = crate::mfa::enrolled(&app, "alice").await;
    let token = crate::mfa::mfa_token(&app, "alice").await;
    let otp = crate::mfa::code(&app, &alice.secret, 0);

    proxy.inject(Fault::BlackHole);
    proxy.reset();
    let started = Instant::now();
    let hung = crate::mfa::with_otp(&app, &token, &otp).await;
    hung.assert_error(503, "unavailable");
    assert!(hung.header("retry-after").is_some());
    assert!(started.elapsed() < DB_TIMEOUT + Duration::from_secs(1));
    proxy.heal();
    let mut back = crate::mfa::with_otp(&app, &token, &otp).await;
    for _ in 0..50 {
        if back.status != 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        back = crate::mfa::with_otp(&app, &token, &otp).await;
    }
    back.assert_status(200);

    app.clock.advance(Duration::from_secs(30));
    let token = crate::mfa::mfa_token(&app, "alice").await;
    let otp = crate::mfa::code(&app, &alice.secret, 0);
    let sessions = "SELECT CAST(COUNT(*) AS CHAR) FROM sessions WHERE revoked_at IS NULL";
    let before: i64 = app.query_strings(sessions).await[0].parse().unwrap();
    let retries = app.state.store.transactions_retried();
    // The first COMMIT is the one that spends the step and the code.
    proxy.inject(Fault::AbortNextCommit);
    crate::mfa::with_otp(&app, &token, &otp)
        .await
        .assert_status(200);
    let after: i64 = app.query_strings(sessions).await[0].parse().unwrap();
    assert_eq!(after, before + 1, "one session, however often it was tried");
    assert_eq!(app.state.store.transactions_retried(), retries + 1);
    let metrics = app.client.get("/metrics").send().await.0;
    let text = metrics.into_body().into_string().await.unwrap();
    assert!(
        text.contains(&format!(
            "gatehouse_db_transaction_retries_total {}\n",
            retries + 1
        )),
        "{text}"
    );
}
