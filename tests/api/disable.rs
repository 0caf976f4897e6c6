//! Disabling an account: no more logins, every session gone at once.

use crate::helpers::{PASSWORD, Store, TestApp};
use crate::on_both_stores;

on_both_stores!(a_disabled_user_cannot_log_in_and_loses_every_session);

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
