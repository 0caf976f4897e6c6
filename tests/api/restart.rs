//! What survives a restart.

use crate::helpers::{PASSWORD, Store, TestApp};
use crate::on_both_stores;

on_both_stores!(a_restart_keeps_users_sessions_and_the_signing_key);

async fn a_restart_keeps_users_sessions_and_the_signing_key(store: Store) {
    let app = TestApp::spawn(store).await;
    let login = app.user_with_tokens("alice").await;
    let kid = app.state.auth.access.signing_key().kid().to_owned();

    let app = app.restart().await;

    assert_eq!(app.state.auth.access.signing_key().kid(), kid);
    // The access token issued before the restart still verifies.
    app.me(login.str("access_token")).await.assert_status(200);
    // The session survives, and so does the successor secret: a rotated
    // token replayed after a restart still gets the same successor.
    let first = app.refresh(login.str("refresh_token")).await;
    first.assert_status(200);
    let app = app.restart().await;
    let replay = app.refresh(login.str("refresh_token")).await;
    replay.assert_status(200);
    assert_eq!(replay.str("refresh_token"), first.str("refresh_token"));
    app.login("alice", PASSWORD).await.assert_status(200);
    app.register("alice", PASSWORD)
        .await
        .assert_error(409, "username_taken");
}
