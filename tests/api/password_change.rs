//! Changing the password: it needs the current one, and logs out everyone else.

use serde_json::{Value, json};

use crate::helpers::{PASSWORD, Reply, Store, TestApp};
use crate::on_both_stores;

const NEW_PASSWORD: &str = "a brand new passphrase";

on_both_stores!(
    changing_the_password_revokes_every_other_session_and_keeps_this_one,
    a_wrong_current_password_changes_nothing,
    a_weak_new_password_is_refused_with_the_reason,
    a_password_change_needs_a_token_and_a_well_formed_body,
    wrong_current_passwords_are_throttled_and_audited_like_logins,
);

pub(crate) async fn change(app: &TestApp, token: &str, body: &Value) -> Reply {
    let request = app
        .client
        .put("/users/me/password")
        .header("Authorization", format!("Bearer {token}"));
    Reply::read(request.body_json(body).send().await).await
}

async fn changing_the_password_revokes_every_other_session_and_keeps_this_one(store: Store) {
    let app = TestApp::spawn(store).await;
    let here = app.user_with_tokens("alice").await;
    let elsewhere = app.login("alice", PASSWORD).await;
    let bob = app.user_with_tokens("bob").await;

    let body = json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD});
    change(&app, here.str("access_token"), &body)
        .await
        .assert_status(204);

    app.refresh(elsewhere.str("refresh_token"))
        .await
        .assert_error(400, "invalid_grant");
    app.me(elsewhere.str("access_token"))
        .await
        .assert_error(401, "invalid_token");
    app.me(here.str("access_token")).await.assert_status(200);
    app.refresh(here.str("refresh_token"))
        .await
        .assert_status(200);
    app.me(bob.str("access_token")).await.assert_status(200);
    app.login("alice", PASSWORD)
        .await
        .assert_error(400, "invalid_grant");
    app.login("alice", NEW_PASSWORD).await.assert_status(200);
}

async fn a_wrong_current_password_changes_nothing(store: Store) {
    let app = TestApp::spawn(store).await;
    let here = app.user_with_tokens("alice").await;
    let elsewhere = app.login("alice", PASSWORD).await;
    let body = json!({"current_password": "not my password", "new_password": NEW_PASSWORD});
    change(&app, here.str("access_token"), &body)
        .await
        .assert_error(400, "invalid_current_password");
    app.me(elsewhere.str("access_token"))
        .await
        .assert_status(200);
    app.login("alice", PASSWORD).await.assert_status(200);
    app.login("alice", NEW_PASSWORD)
        .await
        .assert_error(400, "invalid_grant");
}

async fn a_weak_new_password_is_refused_with_the_reason(store: Store) {
    let app = TestApp::spawn(store).await;
    let here = app.user_with_tokens("alice").await;
    for weak in [
        "short",
        "alice",
        "aaaaaaaaaaaa",
        "tab\tinside1",
        "iloveyou123",
        "alice12345",
    ] {
        let body = json!({"current_password": PASSWORD, "new_password": weak});
        change(&app, here.str("access_token"), &body)
            .await
            .assert_error(400, "invalid_password");
    }
    app.login("alice", PASSWORD).await.assert_status(200);
}

async fn a_password_change_needs_a_token_and_a_well_formed_body(store: Store) {
    let app = TestApp::spawn(store).await;
    let here = app.user_with_tokens("alice").await;
    let token = here.str("access_token");
    let body = json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD});
    change(&app, "garbage", &body)
        .await
        .assert_error(401, "invalid_token");
    change(&app, token, &json!({"current_password": PASSWORD}))
        .await
        .assert_error(400, "invalid_request");
    change(
        &app,
        token,
        &json!({"current_password": 5, "new_password": NEW_PASSWORD}),
    )
    .await
    .assert_error(400, "invalid_request");
    let text = app
        .client
        .put("/users/me/password")
        .header("Authorization", format!("Bearer {token}"))
        .content_type("text/plain")
        .body(body.to_string())
        .send()
        .await;
    Reply::read(text)
        .await
        .assert_error(415, "unsupported_media_type");
    app.login("alice", PASSWORD).await.assert_status(200);
}

/// Issue 20, item 4: a stolen access token must not turn this into a
/// password oracle at the full hashing rate.
async fn wrong_current_passwords_are_throttled_and_audited_like_logins(store: Store) {
    let app = TestApp::spawn_with(store, |config| config.login_free_failures = 3).await;
    let tokens = app.user_with_tokens("alice").await;
    let token = tokens.str("access_token");
    let guess = json!({"current_password": "wrong password", "new_password": NEW_PASSWORD});
    for _ in 0..4 {
        change(&app, token, &guess)
            .await
            .assert_error(400, "invalid_current_password");
    }
    let right = json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD});
    let throttled = change(&app, token, &right).await;
    throttled.assert_error(429, "too_many_attempts");
    assert_eq!(throttled.header("retry-after"), Some("1"));
    // The same counters as logins: the account is blocked there too.
    app.login("alice", PASSWORD)
        .await
        .assert_error(429, "too_many_attempts");
    let failures = crate::rotation::audit_events(&app, "password_change_failed").await;
    assert_eq!(failures.len(), 4);
    assert!(failures.iter().all(|event| event.session_id.is_some()));
    app.clock.advance(std::time::Duration::from_secs(1));
    change(&app, token, &right).await.assert_status(204);
}
