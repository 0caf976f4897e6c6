//! Password reset: a request answered alike for every account, a link
//! mailed through a real SMTP server, and a token spent once.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::helpers::{PASSWORD, Reply, SmtpSink, Store, TestApp, claims_of};
use crate::on_both_stores;
use crate::rotation::audit_events;

const NEW_PASSWORD: &str = "a brand new passphrase";

on_both_stores!(
    a_mailed_link_sets_a_new_password_and_ends_every_session,
    a_reset_can_name_the_account_by_its_address,
    unknown_accounts_and_accounts_without_an_address_are_answered_alike,
    a_link_works_once,
    a_link_raced_on_two_instances_works_exactly_once,
    a_refused_password_leaves_the_link_usable,
    a_link_expires,
    a_password_change_retires_outstanding_links,
    a_completed_reset_retires_the_other_links,
    an_account_gets_a_few_mails_an_hour_and_more_requests_look_the_same,
    requests_from_one_address_are_throttled,
    a_reset_clears_the_login_throttle,
    no_token_is_stored_in_the_clear,
    a_request_must_name_exactly_one_of_username_and_email,
);

/// Registers `username` with `email` (if any) and [`PASSWORD`].
pub(crate) async fn register_with_email(app: &TestApp, username: &str, email: Option<&str>) {
    app.post_json(
        "/users",
        &json!({"username": username, "password": PASSWORD, "email": email}),
    )
    .await
    .assert_status(201);
}

pub(crate) async fn request_reset(app: &TestApp, body: serde_json::Value) -> Reply {
    app.post_json("/auth/password-reset", &body).await
}

pub(crate) async fn confirm(app: &TestApp, token: &str, password: &str) -> Reply {
    app.post_json(
        "/auth/password-reset/confirm",
        &json!({"token": token, "new_password": password}),
    )
    .await
}

/// The token of the one reset mail `sink` holds for `address`, after
/// delivering what is due.
async fn reset_token(app: &TestApp, sink: &SmtpSink, address: &str) -> String {
    app.deliver_mail().await;
    let mails = sink.mails_to(address);
    let resets: Vec<_> = mails
        .iter()
        .filter(|mail| mail.subject().starts_with("Reset"))
        .collect();
    resets.last().expect("a reset mail").token()
}

async fn a_mailed_link_sets_a_new_password_and_ends_every_session(store: Store) {
    let sink = SmtpSink::start().await;
    let app = TestApp::spawn_with_mail(store, &sink, |_| {}).await;
    register_with_email(&app, "alice", Some("alice@example.org")).await;
    let session = app.login("alice", PASSWORD).await;
    session.assert_status(200);

    let answer = request_reset(&app, json!({"username": "alice"})).await;
    answer.assert_status(202);
    assert_eq!(answer.body, serde_json::Value::Null, "an empty body");

    app.deliver_mail().await;
    let mails = sink.mails_to("alice@example.org");
    let reset = mails
        .iter()
        .find(|mail| mail.subject() == "Reset your Gatehouse password")
        .expect("the reset mail");
    assert!(reset.text().contains("\"alice\""), "{}", reset.text());
    assert!(reset.text().contains("30 minutes"), "{}", reset.text());
    assert!(
        reset
            .link()
            .starts_with("https://auth.gatehouse.test/account/reset-password?token="),
        "{}",
        reset.link()
    );
    assert!(
        reset.html().contains(&reset.link()),
        "the HTML part links too"
    );
    assert!(!reset.html().contains("<img"), "no tracking pixel");
    assert_eq!(reset.token().len(), 43, "256 bits, base64url");

    confirm(&app, &reset.token(), NEW_PASSWORD)
        .await
        .assert_status(204);

    app.assert_session_ended(&session).await;
    app.login("alice", PASSWORD)
        .await
        .assert_error(400, "invalid_grant");
    let tokens = app.login("alice", NEW_PASSWORD).await;
    tokens.assert_status(200);
    // The link proved the mailbox.
    let me = app.me(tokens.str("access_token")).await;
    assert_eq!(me.body["email_verified"], true, "{}", me.body);

    let user_id = claims_of(tokens.str("access_token"))["sub"]
        .as_str()
        .unwrap()
        .to_owned();
    for event in ["password_reset_requested", "password_reset"] {
        let events = audit_events(&app, event).await;
        assert_eq!(events.len(), 1, "{event}: {events:?}");
        assert_eq!(
            events[0].user_id.as_ref().map(|id| id.as_str()),
            Some(user_id.as_str())
        );
    }
}

async fn a_reset_can_name_the_account_by_its_address(store: Store) {
    let sink = SmtpSink::start().await;
    let app = TestApp::spawn_with_mail(store, &sink, |_| {}).await;
    register_with_email(&app, "alice", Some("alice@example.org")).await;

    request_reset(
        &app,
        json!({"email": "Alice@Example.org", "username": null}),
    )
    .await
    .assert_status(202);
    let token = reset_token(&app, &sink, "alice@example.org").await;
    confirm(&app, &token, NEW_PASSWORD).await.assert_status(204);
    app.login("alice", NEW_PASSWORD).await.assert_status(200);
}

async fn unknown_accounts_and_accounts_without_an_address_are_answered_alike(store: Store) {
    let sink = SmtpSink::start().await;
    let app = TestApp::spawn_with_mail(store, &sink, |_| {}).await;
    register_with_email(&app, "alice", Some("alice@example.org")).await;
    register_with_email(&app, "bob", None).await;
    app.deliver_mail().await;
    let before = sink.mails().len();

    let mut answers = Vec::new();
    for body in [
        json!({"username": "alice"}),
        json!({"username": "bob"}),
        json!({"username": "nobody"}),
        json!({"email": "alice@example.org"}),
        json!({"email": "nobody@example.org"}),
    ] {
        let answer = request_reset(&app, body).await;
        answers.push((answer.status, answer.body.clone()));
    }
    assert!(
        answers.windows(2).all(|pair| pair[0] == pair[1]),
        "{answers:?}"
    );
    assert_eq!(answers[0].0, 202);

    app.deliver_mail().await;
    let sent: Vec<_> = sink.mails()[before..]
        .iter()
        .flat_map(|mail| mail.to())
        .collect();
    assert_eq!(sent, ["alice@example.org", "alice@example.org"]);
}

async fn a_link_works_once(store: Store) {
    let sink = SmtpSink::start().await;
    let app = TestApp::spawn_with_mail(store, &sink, |_| {}).await;
    register_with_email(&app, "alice", Some("alice@example.org")).await;
    request_reset(&app, json!({"username": "alice"})).await;
    let token = reset_token(&app, &sink, "alice@example.org").await;

    confirm(&app, &token, NEW_PASSWORD).await.assert_status(204);
    confirm(&app, &token, "yet another passphrase")
        .await
        .assert_error(400, "invalid_token");
    app.login("alice", NEW_PASSWORD).await.assert_status(200);
    for junk in ["", "x", &"A".repeat(100), &format!("{token}x")] {
        confirm(&app, junk, NEW_PASSWORD).await.assert_status(400);
    }
}

async fn a_link_raced_on_two_instances_works_exactly_once(store: Store) {
    let sink = SmtpSink::start().await;
    let app = Arc::new(TestApp::spawn_with_mail(store, &sink, |_| {}).await);
    let other = Arc::new(app.another_instance(|_| {}).await);
    register_with_email(&app, "alice", Some("alice@example.org")).await;
    request_reset(&app, json!({"username": "alice"})).await;
    let token = reset_token(&app, &sink, "alice@example.org").await;

    let tasks: Vec<_> = (0..8)
        .map(|n| {
            let instance = if n % 2 == 0 {
                app.clone()
            } else {
                other.clone()
            };
            let token = token.clone();
            tokio::spawn(async move {
                confirm(&instance, &token, &format!("racing passphrase number {n}"))
                    .await
                    .status
                    .as_u16()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    statuses.sort();
    assert_eq!(statuses, [204, 400, 400, 400, 400, 400, 400, 400]);
}

async fn a_refused_password_leaves_the_link_usable(store: Store) {
    let sink = SmtpSink::start().await;
    let app = TestApp::spawn_with_mail(store, &sink, |_| {}).await;
    register_with_email(&app, "alice", Some("alice@example.org")).await;
    request_reset(&app, json!({"username": "alice"})).await;
    let token = reset_token(&app, &sink, "alice@example.org").await;

    confirm(&app, &token, "short")
        .await
        .assert_error(400, "invalid_password");
    confirm(&app, &token, NEW_PASSWORD).await.assert_status(204);
}

async fn a_link_expires(store: Store) {
    let sink = SmtpSink::start().await;
    let app = TestApp::spawn_with_mail(store, &sink, |_| {}).await;
    register_with_email(&app, "alice", Some("alice@example.org")).await;
    request_reset(&app, json!({"username": "alice"})).await;
    let token = reset_token(&app, &sink, "alice@example.org").await;

    app.clock.advance(Duration::from_secs(30 * 60));
    confirm(&app, &token, NEW_PASSWORD)
        .await
        .assert_error(400, "invalid_token");
    app.login("alice", PASSWORD).await.assert_status(200);
}

async fn a_password_change_retires_outstanding_links(store: Store) {
    let sink = SmtpSink::start().await;
    let app = TestApp::spawn_with_mail(store, &sink, |_| {}).await;
    register_with_email(&app, "alice", Some("alice@example.org")).await;
    let tokens = app.login("alice", PASSWORD).await;
    request_reset(&app, json!({"username": "alice"})).await;
    let token = reset_token(&app, &sink, "alice@example.org").await;

    crate::password_change::change(
        &app,
        tokens.str("access_token"),
        &json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}),
    )
    .await
    .assert_status(204);
    confirm(&app, &token, "the attacker's passphrase")
        .await
        .assert_error(400, "invalid_token");
}

async fn a_completed_reset_retires_the_other_links(store: Store) {
    let sink = SmtpSink::start().await;
    let app = TestApp::spawn_with_mail(store, &sink, |_| {}).await;
    register_with_email(&app, "alice", Some("alice@example.org")).await;
    request_reset(&app, json!({"username": "alice"})).await;
    request_reset(&app, json!({"username": "alice"})).await;
    app.deliver_mail().await;
    let tokens: Vec<_> = sink
        .mails_to("alice@example.org")
        .iter()
        .filter(|mail| mail.subject().starts_with("Reset"))
        .map(|mail| mail.token())
        .collect();
    assert_eq!(tokens.len(), 2);
    assert_ne!(tokens[0], tokens[1]);

    confirm(&app, &tokens[1], NEW_PASSWORD)
        .await
        .assert_status(204);
    confirm(&app, &tokens[0], "the attacker's passphrase")
        .await
        .assert_error(400, "invalid_token");
}

async fn an_account_gets_a_few_mails_an_hour_and_more_requests_look_the_same(store: Store) {
    let sink = SmtpSink::start().await;
    let app = TestApp::spawn_with_mail(store, &sink, |config| {
        config.mail_per_account_hourly = 3;
    })
    .await;
    register_with_email(&app, "alice", None).await;
    app.post_json(
        "/users",
        &json!({"username": "carol", "password": PASSWORD, "email": "carol@example.org"}),
    )
    .await;
    app.deliver_mail().await;
    // The verification mail at registration counts.
    assert_eq!(sink.mails_to("carol@example.org").len(), 1);

    for _ in 0..5 {
        request_reset(&app, json!({"username": "carol"}))
            .await
            .assert_status(202);
    }
    app.deliver_mail().await;
    assert_eq!(sink.mails_to("carol@example.org").len(), 3);

    app.clock.advance(Duration::from_secs(3600));
    request_reset(&app, json!({"username": "carol"})).await;
    app.deliver_mail().await;
    assert_eq!(sink.mails_to("carol@example.org").len(), 4, "an hour later");
    let metrics = crate::metrics::metrics(&app).await;
    assert!(
        metrics.contains("gatehouse_mail_total{outcome=\"dropped\"} 3"),
        "{metrics}"
    );
}

async fn requests_from_one_address_are_throttled(store: Store) {
    let sink = SmtpSink::start().await;
    let app = TestApp::spawn_with_mail(store, &sink, |config| {
        config.address_max_failures = 3;
    })
    .await;
    let from = |peer: &'static str, n: usize| {
        let app = &app;
        async move {
            let body = json!({"username": format!("user{n}")});
            app.post_json_from(peer, "/auth/password-reset", &body)
                .await
        }
    };
    for n in 0..3 {
        from("203.0.113.7:4000", n).await.assert_status(202);
    }
    let refused = from("203.0.113.7:4001", 4).await;
    refused.assert_error(429, "too_many_requests");
    assert!(refused.header("retry-after").is_some());
    // Other addresses are not.
    from("198.51.100.9:4000", 5).await.assert_status(202);
    // Logins from the address are not blocked by it.
    app.register("dave", PASSWORD).await;
    app.login("dave", PASSWORD).await.assert_status(200);
}

async fn a_reset_clears_the_login_throttle(store: Store) {
    let sink = SmtpSink::start().await;
    let app = TestApp::spawn_with_mail(store, &sink, |_| {}).await;
    register_with_email(&app, "alice", Some("alice@example.org")).await;
    let mut blocked = false;
    for _ in 0..8 {
        if app.login("alice", "wrong password!").await.status == 429 {
            blocked = true;
        }
    }
    assert!(blocked, "the account is backed off");
    request_reset(&app, json!({"username": "alice"})).await;
    let token = reset_token(&app, &sink, "alice@example.org").await;
    confirm(&app, &token, NEW_PASSWORD).await.assert_status(204);
    app.login("alice", NEW_PASSWORD).await.assert_status(200);
}

async fn no_token_is_stored_in_the_clear(store: Store) {
    let mut sink = SmtpSink::start().await;
    let app = TestApp::spawn_with_mail(store, &sink, |_| {}).await;
    register_with_email(&app, "alice", Some("alice@example.org")).await;
    app.deliver_mail().await;
    // While the server is down, the mail waits with its link made.
    sink.stop();
    request_reset(&app, json!({"username": "alice"})).await;
    app.deliver_mail().await;
    let waiting = app.state.store.all_mails().await.unwrap();
    let sealed: Vec<_> = waiting
        .iter()
        .filter_map(|mail| mail.sealed_token.clone())
        .collect();
    assert_eq!(sealed.len(), 1, "{waiting:?}");

    sink.restart().await;
    app.clock.advance(Duration::from_secs(300));
    let token = reset_token(&app, &sink, "alice@example.org").await;
    let dump = format!(
        "{:?} {:?}",
        app.state.store.all_mails().await.unwrap(),
        app.state
            .store
            .audit_events_named("password_reset_requested")
            .await
            .unwrap()
    );
    assert!(!dump.contains(&token), "{dump}");
    assert!(!sealed[0].contains(&token));
    let rows = app
        .query_strings("SELECT token_hash FROM account_tokens")
        .await;
    assert!(!rows.iter().any(|row| row.contains(&token)), "{rows:?}");
    assert!(
        app.state
            .store
            .all_mails()
            .await
            .unwrap()
            .iter()
            .all(|mail| mail.sealed_token.is_none()),
        "a sent mail forgets its token"
    );
}

async fn a_request_must_name_exactly_one_of_username_and_email(store: Store) {
    let app = TestApp::spawn(store).await;
    for body in [
        json!({}),
        json!({"username": "alice", "email": "alice@example.org"}),
        json!({"username": 5}),
        json!({"email": "not an address"}),
        json!({"username": "a".repeat(65)}),
        json!({"email": format!("{}@example.org", "a".repeat(250))}),
    ] {
        let refused = request_reset(&app, body).await;
        refused.assert_status(400);
        // The API's error body, not the token endpoint's.
        assert!(refused.body["message"].is_string(), "{}", refused.body);
    }
    let long = "x".repeat(129);
    confirm(&app, &long, NEW_PASSWORD).await.assert_status(400);
    app.post_json("/auth/email/verify", &json!({"token": long}))
        .await
        .assert_status(400);
}
