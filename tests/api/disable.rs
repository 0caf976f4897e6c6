//! Disabling an account: no more logins, every session gone at once.

use crate::helpers::{PASSWORD, Store, TestApp};
use crate::on_both_stores;

on_both_stores!(
    a_disabled_user_cannot_log_in_and_loses_every_session,
    a_login_that_checked_the_password_before_a_disable_opens_no_session,
    a_login_that_checked_the_password_before_a_password_change_opens_no_session,
    a_session_of_a_disabled_account_refreshes_nothing_even_if_it_was_not_revoked,
);

/// Issue 20, item 5: the login has checked the password (and read the
/// account) when the account is disabled; then it stores its session.
async fn a_login_that_checked_the_password_before_a_disable_opens_no_session(store: Store) {
    let app = TestApp::spawn(store).await;
    app.register("alice", PASSWORD).await.assert_status(201);
    let client = Default::default();
    let accounts = &app.state.accounts;
    let checked = accounts
        .log_in("alice", PASSWORD.to_owned().into(), &client)
        .await
        .unwrap();
    assert!(app.set_disabled("alice", true).await);
    let opened = app
        .state
        .sessions
        .open_session(&checked, "profile".into(), "test", &client)
        .await;
    let refused = opened.expect_err("a session was opened for a disabled account");
    assert_eq!(refused.to_string(), "invalid username or password");
    let sessions = app.state.sessions.of_user(&checked.id).await.unwrap();
    assert!(sessions.is_empty());
}

async fn a_login_that_checked_the_password_before_a_password_change_opens_no_session(store: Store) {
    let app = TestApp::spawn(store).await;
    let owner = app.user_with_tokens("alice").await;
    let client = Default::default();
    let checked = app
        .state
        .accounts
        .log_in("alice", PASSWORD.to_owned().into(), &client)
        .await
        .unwrap();
    let change = serde_json::json!({
        "current_password": PASSWORD,
        "new_password": "a brand new passphrase",
    });
    crate::password_change::change(&app, owner.str("access_token"), &change)
        .await
        .assert_status(204);
    let opened = app
        .state
        .sessions
        .open_session(&checked, "profile".into(), "test", &client)
        .await;
    assert!(opened.is_err(), "a session survived the password change");
    // Only the session that changed the password is left.
    let sessions = app.state.sessions.of_user(&checked.id).await.unwrap();
    assert_eq!(sessions.len(), 1);
}

/// A session that slipped past a disable (as one racing it could before
/// the session epoch) is refused at its next refresh.
async fn a_session_of_a_disabled_account_refreshes_nothing_even_if_it_was_not_revoked(
    store: Store,
) {
    let app = TestApp::spawn(store).await;
    let tokens = app.user_with_tokens("alice").await;
    // The store's own update, without the service's revocation.
    app.state
        .store
        .set_user_disabled(
            &gatehouse::ids::UsernameKey::of("alice"),
            Some(app.state.clock.now()),
        )
        .await
        .unwrap();
    app.refresh(tokens.str("refresh_token"))
        .await
        .assert_error(400, "invalid_grant");
}

async fn a_disabled_user_cannot_log_in_and_loses_every_session(store: Store) {
    let app = TestApp::spawn(store).await;
    let first = app.user_with_tokens("alice").await;
    let second = app.login("alice", PASSWORD).await;
    let bob = app.user_with_tokens("bob").await;

    assert!(app.set_disabled("alice", true).await);

    // Refused exactly like a wrong password: nothing tells the account apart.
    let refused = app.login("alice", PASSWORD).await;
    refused.assert_error(400, "invalid_grant");
    assert_eq!(
        refused.body,
        app.login("alice", "wrong password").await.body
    );
    for tokens in [&first, &second] {
        app.assert_session_ended(tokens).await;
    }
    app.me(bob.str("access_token")).await.assert_status(200);

    // Enabled again: new logins work, old sessions stay revoked.
    assert!(app.set_disabled("alice", false).await);
    app.login("alice", PASSWORD).await.assert_status(200);
    app.refresh(first.str("refresh_token"))
        .await
        .assert_error(400, "invalid_grant");
    assert!(!app.set_disabled("nobody", true).await);
}
