//! What survives a restart.

use std::time::Duration;

use crate::helpers::{PASSWORD, Store, TestApp};
use crate::on_both_stores;

on_both_stores!(
    a_restart_keeps_users_sessions_and_the_signing_key,
    a_retry_after_a_crash_and_past_the_grace_window_keeps_the_owner_signed_in,
);

async fn a_restart_keeps_users_sessions_and_the_signing_key(store: Store) {
    let app = TestApp::spawn(store).await;
    let login = app.user_with_tokens("alice").await;
    let kid = app.state.signing.signing_key().kid().to_owned();

    let app = app.restart().await;

    assert_eq!(app.state.signing.signing_key().kid(), kid);
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

async fn a_retry_after_a_crash_and_past_the_grace_window_keeps_the_owner_signed_in(store: Store) {
    let app = TestApp::spawn(store).await;
    let login = app.user_with_tokens("alice").await;
    let parent = login.str("refresh_token");
    // The rotation commits; the process dies before the client hears of it.
    let unheard = app.refresh(parent).await;
    unheard.assert_status(200);
    let app = app.restart().await;
    app.clock
        .advance(app.config.refresh_grace + Duration::from_secs(30));
    let retried = app.refresh(parent).await;
    retried.assert_status(200);
    // A new successor: the unheard one is superseded (nobody holds it).
    assert_ne!(retried.str("refresh_token"), unheard.str("refresh_token"));
    let next = app.refresh(retried.str("refresh_token")).await;
    next.assert_status(200);
    app.me(next.str("access_token")).await.assert_status(200);
}
