//! Stored password hashes follow the configured Argon2 parameters.

use crate::helpers::{PASSWORD, Store, TestApp};
use crate::on_both_stores;

on_both_stores!(a_successful_login_upgrades_a_hash_made_with_other_parameters);

async fn stored_hash(app: &TestApp, username: &str) -> String {
    app.state
        .store
        .find_user_by_key(&gatehouse::ids::UsernameKey::of(username))
        .await
        .unwrap()
        .unwrap()
        .password_hash
}

async fn a_successful_login_upgrades_a_hash_made_with_other_parameters(store: Store) {
    let app = TestApp::spawn(store).await;
    app.register("alice", PASSWORD).await.assert_status(201);
    let old = stored_hash(&app, "alice").await;
    assert!(old.starts_with("$argon2id$v=19$m=256,t=1,p=1$"), "{old}");

    let stronger = app
        .another_instance(|config| config.passwords.argon2_memory_kib = 512)
        .await;
    // A failed login changes nothing.
    stronger
        .login("alice", "not the password")
        .await
        .assert_error(400, "invalid_grant");
    assert_eq!(stored_hash(&stronger, "alice").await, old);
    // A successful one re-hashes with the configured parameters.
    stronger.login("alice", PASSWORD).await.assert_status(200);
    let new = stored_hash(&stronger, "alice").await;
    assert!(new.starts_with("$argon2id$v=19$m=512,t=1,p=1$"), "{new}");
    // And the password still works, with either configuration.
    stronger.login("alice", PASSWORD).await.assert_status(200);
    assert_eq!(
        stored_hash(&stronger, "alice").await,
        new,
        "no needless re-hash"
    );
    app.login("alice", PASSWORD).await.assert_status(200);
}
