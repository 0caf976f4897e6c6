//! Pruning: dead sessions and stale counters go, nothing live does.

use std::time::Duration;

use gatehouse::ids::TokenHash;

use crate::helpers::{PASSWORD, Store, TestApp, claims_of};
use crate::on_both_stores;

on_both_stores!(
    pruning_deletes_expired_and_long_revoked_sessions_and_stale_counters_only,
    audit_events_past_their_retention_are_deleted,
    expired_second_factor_steps_and_enrolments_go_and_live_ones_stay,
);

async fn expired_second_factor_steps_and_enrolments_go_and_live_ones_stay(store: Store) {
    let app = TestApp::spawn(store).await;
    crate::mfa::enrolled(&app, "alice").await;
    crate::mfa::mfa_token(&app, "alice").await;
    let bob = app.user_with_tokens("bob").await;
    crate::mfa::start(&app, bob.str("access_token"), PASSWORD)
        .await
        .assert_status(200);
    let count = |table: &'static str| {
        let app = &app;
        async move {
            app.query_strings(&format!("SELECT CAST(COUNT(*) AS CHAR) FROM {table}"))
                .await
        }
    };
    let state = &app.state;
    let (retention, window) = (
        Duration::from_secs(7 * 24 * 3600),
        Duration::from_secs(3600),
    );
    state
        .sessions
        .prune(state.clock.now(), retention, window)
        .await
        .unwrap();
    assert_eq!(count("mfa_challenges").await, ["1"], "a live step stays");
    assert_eq!(count("totp_enrolments").await, ["1"]);
    let later = state.clock.now() + Duration::from_secs(16 * 60);
    state
        .sessions
        .prune(later, retention, window)
        .await
        .unwrap();
    assert_eq!(count("mfa_challenges").await, ["0"]);
    assert_eq!(count("totp_enrolments").await, ["0"]);
    assert_eq!(
        count("mfa_recovery_codes").await,
        ["10"],
        "the account's codes stay"
    );
}

async fn audit_events_past_their_retention_are_deleted(store: Store) {
    let app = TestApp::spawn(store).await;
    app.user_with_tokens("alice").await;
    let now = app.state.clock.now();
    let store = &app.state.store;
    // Nothing is older than a minute ago: nothing goes.
    assert_eq!(
        store
            .prune_audit_events(now - Duration::from_secs(60))
            .await
            .unwrap(),
        0
    );
    let events = crate::rotation::audit_events(&app, "login_succeeded").await;
    assert_eq!(events.len(), 1);
    assert_eq!(
        store
            .prune_audit_events(now + Duration::from_millis(1))
            .await
            .unwrap(),
        1
    );
    assert!(
        crate::rotation::audit_events(&app, "login_succeeded")
            .await
            .is_empty()
    );
}

async fn pruning_deletes_expired_and_long_revoked_sessions_and_stale_counters_only(store: Store) {
    let app = TestApp::spawn(store).await;
    let live = app.user_with_tokens("alice").await;
    let recently_revoked = app.login("alice", PASSWORD).await;
    let long_revoked = app.login("alice", PASSWORD).await;
    let short_lived = app
        .another_instance(|config| {
            config.refresh_ttl = Duration::from_secs(2);
            config.access_ttl = Duration::from_secs(1);
            config.refresh_grace = Duration::from_secs(1);
        })
        .await
        .login("alice", PASSWORD)
        .await;
    app.login("ghost", "wrong password")
        .await
        .assert_error(400, "invalid_grant");

    let state = &app.state;
    let now = state.clock.now();
    let logout = serde_json::json!({"refresh_token": recently_revoked.str("refresh_token")});
    app.post_json("/auth/logout", &logout)
        .await
        .assert_status(204);
    let sid = claims_of(long_revoked.str("access_token"))["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    state
        .store
        .revoke_session(
            &sid.as_str().into(),
            now - Duration::from_secs(8 * 24 * 3600),
        )
        .await
        .unwrap();

    // A day later: the 2-second session has expired, the old revocation is
    // past the 7-day retention, and the failed login's counters are stale.
    let counters_window = state.accounts.throttle().longest_window();
    let (sessions, counters) = state
        .sessions
        .prune(
            now + Duration::from_secs(25 * 3600),
            Duration::from_secs(7 * 24 * 3600),
            counters_window,
        )
        .await
        .unwrap();
    assert_eq!(sessions, 2);
    // The failed login's two: its account's, and its account's from its address.
    assert_eq!(counters, 2);

    let stored = |token: &str| {
        let token_hash = TokenHash::of(token);
        async move {
            state
                .store
                .find_refresh_token(&token_hash)
                .await
                .unwrap()
                .is_some()
        }
    };
    assert!(stored(live.str("refresh_token")).await);
    assert!(
        stored(recently_revoked.str("refresh_token")).await,
        "kept for its retention"
    );
    assert!(!stored(long_revoked.str("refresh_token")).await);
    assert!(!stored(short_lived.str("refresh_token")).await);
    // The live session works as before.
    app.refresh(live.str("refresh_token"))
        .await
        .assert_status(200);
}
