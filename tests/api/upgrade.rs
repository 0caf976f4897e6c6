//! Upgrading a database that earlier versions wrote.

use std::time::Duration;

use gatehouse::auth::refresh::{LEGACY_SUCCESSOR_SECRET_NAME, Successors};
use gatehouse::ids::TokenHash;
use secrecy::ExposeSecret as _;

use crate::helpers::{Store, TestApp, claims_of};
use crate::on_both_stores;

on_both_stores!(
    a_token_rotated_before_the_upgrade_is_replayed_with_the_legacy_secret_until_none_can_be,
);

async fn a_token_rotated_before_the_upgrade_is_replayed_with_the_legacy_secret_until_none_can_be(
    store: Store,
) {
    let app = TestApp::spawn(store).await;
    let login = app.user_with_tokens("alice").await;
    let parent = login.str("refresh_token");
    let session_id = claims_of(login.str("access_token"))["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    // What version 1 kept and wrote: its secret in the clear, a rotation
    // that records no successor_hash, and the successor it derived.
    let legacy = "legacy-secret-of-version-1";
    let unused_key = secrecy::SecretBox::new(Box::new([0; 32]));
    let v1 = Successors::new(unused_key, Some(legacy.to_owned().into()));
    let successor = v1.legacy_successor(parent).unwrap();
    let now = app.state.clock.now();
    app.execute(&format!(
        "INSERT INTO server_secrets (name, secret, created_at) \
         VALUES ('{LEGACY_SUCCESSOR_SECRET_NAME}', '{legacy}', 0); \
         UPDATE refresh_tokens SET rotated_at = {now} WHERE token_hash = '{}'; \
         INSERT INTO refresh_tokens (token_hash, session_id, created_at) \
         VALUES ('{}', '{session_id}', {now});",
        TokenHash::of(parent),
        TokenHash::of(successor.expose_secret()),
    ))
    .await;
    let app = app.restart().await;

    // A second tab, within the grace window: the successor version 1 gave.
    let replayed = app.refresh(parent).await;
    replayed.assert_status(200);
    assert_eq!(replayed.str("refresh_token"), successor.expose_secret());

    // The secret is kept while such a token can still be replayed...
    let window = app.config.refresh_replay_window;
    let (store, sessions) = (&app.state.store, &app.state.sessions);
    let prune = |at: gatehouse::clock::UnixMillis| async move {
        sessions
            .prune(at, Duration::from_secs(3600), Duration::from_secs(3600))
            .await
            .unwrap();
        store
            .find_secret(LEGACY_SUCCESSOR_SECRET_NAME)
            .await
            .unwrap()
    };
    assert!(prune(now + Duration::from_secs(1)).await.is_some());
    // ...and deleted once none can.
    let past = now + window + Duration::from_millis(1);
    assert!(prune(past).await.is_none());
    // The session lives on.
    app.refresh(replayed.str("refresh_token"))
        .await
        .assert_status(200);
}
