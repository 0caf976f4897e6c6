//! Refresh-token rotation, the grace window, reuse detection and logout.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::helpers::{Store, TestApp, claims_of, concurrently};
use crate::on_both_stores;
use crate::rotation::audit_events;

on_both_stores!(
    refresh_rotates_the_token_and_keeps_the_session,
    the_parent_within_the_grace_window_returns_the_same_successor,
    a_parent_presented_after_its_successor_was_used_revokes_the_family,
    a_parent_whose_successor_was_never_used_gets_a_new_one_after_the_grace_window,
    a_thief_who_refreshes_first_is_caught_when_the_owner_refreshes,
    a_thief_who_refreshes_after_the_owner_is_caught_when_the_owner_refreshes,
    a_lost_answer_retried_twice_past_the_grace_window_keeps_the_owner_signed_in,
    past_the_replay_window_an_unused_successor_is_not_handed_out_again,
    within_the_grace_window_even_a_used_successor_is_handed_out_again,
    with_no_grace_window_any_second_use_revokes_the_family,
    sixteen_concurrent_refreshes_of_one_token_share_one_successor,
    logout_revokes_the_session,
    logging_out_twice_or_with_an_unknown_token_is_fine,
    refreshing_never_extends_the_family_absolute_expiry,
    an_idle_refresh_token_expires,
    an_unknown_refresh_token_is_invalid_grant,
);

async fn refresh_rotates_the_token_and_keeps_the_session(store: Store) {
    let app = TestApp::spawn(store).await;
    let login = app.user_with_tokens("alice").await;
    let refreshed = app.refresh(login.str("refresh_token")).await;
    refreshed.assert_status(200);
    assert_eq!(refreshed.header("cache-control"), Some("no-store"));
    assert_ne!(refreshed.str("refresh_token"), login.str("refresh_token"));
    assert_ne!(refreshed.str("access_token"), login.str("access_token"));
    let (before, after) = (
        claims_of(login.str("access_token")),
        claims_of(refreshed.str("access_token")),
    );
    assert_eq!(
        (&before["sub"], &before["sid"]),
        (&after["sub"], &after["sid"])
    );
    assert_ne!(before["jti"], after["jti"]);
    app.me(refreshed.str("access_token"))
        .await
        .assert_status(200);
    // The successor rotates in turn.
    let again = app.refresh(refreshed.str("refresh_token")).await;
    again.assert_status(200);
    assert_ne!(again.str("refresh_token"), refreshed.str("refresh_token"));
}

async fn the_parent_within_the_grace_window_returns_the_same_successor(store: Store) {
    let app = TestApp::spawn(store).await;
    let login = app.user_with_tokens("alice").await;
    let parent = login.str("refresh_token");
    let first = app.refresh(parent).await;
    let second = app.refresh(parent).await;
    first.assert_status(200);
    second.assert_status(200);
    assert_eq!(first.str("refresh_token"), second.str("refresh_token"));
    // Nothing was revoked: the successor still works.
    app.refresh(first.str("refresh_token"))
        .await
        .assert_status(200);
}

async fn a_parent_presented_after_its_successor_was_used_revokes_the_family(store: Store) {
    let app = TestApp::spawn(store).await;
    let login = app.user_with_tokens("alice").await;
    let parent = login.str("refresh_token");
    let successor = app.refresh(parent).await;
    successor.assert_status(200);
    let next = app.refresh(successor.str("refresh_token")).await;
    next.assert_status(200);
    app.clock
        .advance(app.config.refresh_grace + Duration::from_secs(1));
    // The successor was used: whoever presents the parent now stole it.
    app.refresh(parent).await.assert_error(400, "invalid_grant");
    // The whole family is revoked: the newest token too.
    app.refresh(next.str("refresh_token"))
        .await
        .assert_error(400, "invalid_grant");
    // Other sessions of the user are untouched.
    let other = app.login("alice", crate::helpers::PASSWORD).await;
    app.refresh(other.str("refresh_token"))
        .await
        .assert_status(200);
}

async fn a_parent_whose_successor_was_never_used_gets_a_new_one_after_the_grace_window(
    store: Store,
) {
    let app = TestApp::spawn(store).await;
    let login = app.user_with_tokens("alice").await;
    let parent = login.str("refresh_token");
    // The client never received this answer (a lost response, an outage).
    let lost = app.refresh(parent).await;
    lost.assert_status(200);
    app.clock
        .advance(app.config.refresh_grace + Duration::from_secs(15));
    let retried = app.refresh(parent).await;
    retried.assert_status(200);
    assert_ne!(retried.str("refresh_token"), lost.str("refresh_token"));
    // Within the grace window of that reissue, the parent gets the new one.
    let again = app.refresh(parent).await;
    again.assert_status(200);
    assert_eq!(again.str("refresh_token"), retried.str("refresh_token"));
    // Nothing was revoked: the new successor rotates, the session lives on.
    let next = app.refresh(retried.str("refresh_token")).await;
    next.assert_status(200);
    app.me(next.str("access_token")).await.assert_status(200);
    assert_eq!(audit_events(&app, "refresh_reissued").await.len(), 1);
}

/// The review's reproduction (issue 20, item 1): the thief presents a copy
/// of the owner's token first, and the owner comes back after the grace
/// window.
async fn a_thief_who_refreshes_first_is_caught_when_the_owner_refreshes(store: Store) {
    let app = TestApp::spawn(store).await;
    let login = app.user_with_tokens("alice").await;
    let stolen = login.str("refresh_token");
    let thief = app.refresh(stolen).await;
    thief.assert_status(200);
    app.clock
        .advance(app.config.refresh_grace + Duration::from_secs(1));
    let owner = app.refresh(stolen).await;
    owner.assert_status(200);
    assert_ne!(owner.str("refresh_token"), thief.str("refresh_token"));
    // The thief's successor was superseded: its next use revokes the family.
    app.refresh(thief.str("refresh_token"))
        .await
        .assert_error(400, "invalid_grant");
    app.assert_session_ended(&owner).await;
}

async fn a_thief_who_refreshes_after_the_owner_is_caught_when_the_owner_refreshes(store: Store) {
    let app = TestApp::spawn(store).await;
    let login = app.user_with_tokens("alice").await;
    let stolen = login.str("refresh_token");
    let owner = app.refresh(stolen).await;
    owner.assert_status(200);
    app.clock
        .advance(app.config.refresh_grace + Duration::from_secs(1));
    let thief = app.refresh(stolen).await;
    thief.assert_status(200);
    // The owner's next refresh presents a superseded token: the family ends,
    // the thief's branch with it.
    app.refresh(owner.str("refresh_token"))
        .await
        .assert_error(400, "invalid_grant");
    app.refresh(thief.str("refresh_token"))
        .await
        .assert_error(400, "invalid_grant");
    assert_eq!(audit_events(&app, "refresh_reuse_detected").await.len(), 1);
}

async fn a_lost_answer_retried_twice_past_the_grace_window_keeps_the_owner_signed_in(store: Store) {
    let app = TestApp::spawn(store).await;
    let login = app.user_with_tokens("alice").await;
    let parent = login.str("refresh_token");
    let mut last = String::new();
    for _ in 0..3 {
        let answer = app.refresh(parent).await;
        answer.assert_status(200);
        assert_ne!(answer.str("refresh_token"), last);
        last = answer.str("refresh_token").to_owned();
        app.clock
            .advance(app.config.refresh_grace + Duration::from_secs(1));
    }
    let next = app.refresh(&last).await;
    next.assert_status(200);
    app.me(next.str("access_token")).await.assert_status(200);
}

async fn past_the_replay_window_an_unused_successor_is_not_handed_out_again(store: Store) {
    let window = Duration::from_secs(60);
    let app = TestApp::spawn_with(store, |config| config.refresh_replay_window = window).await;
    let login = app.user_with_tokens("alice").await;
    let parent = login.str("refresh_token");
    let successor = app.refresh(parent).await;
    successor.assert_status(200);
    app.clock.advance(window + Duration::from_secs(1));
    app.refresh(parent).await.assert_error(400, "invalid_grant");
    app.refresh(successor.str("refresh_token"))
        .await
        .assert_error(400, "invalid_grant");
}

async fn within_the_grace_window_even_a_used_successor_is_handed_out_again(store: Store) {
    let app = TestApp::spawn(store).await;
    let login = app.user_with_tokens("alice").await;
    let parent = login.str("refresh_token");
    // One tab rotates twice while another still holds the parent.
    let first = app.refresh(parent).await;
    first.assert_status(200);
    let next = app.refresh(first.str("refresh_token")).await;
    next.assert_status(200);
    let late_tab = app.refresh(parent).await;
    late_tab.assert_status(200);
    assert_eq!(late_tab.str("refresh_token"), first.str("refresh_token"));
    // Still within its own grace window, that successor gets the newest one.
    let caught_up = app.refresh(late_tab.str("refresh_token")).await;
    caught_up.assert_status(200);
    assert_eq!(caught_up.str("refresh_token"), next.str("refresh_token"));
    app.refresh(next.str("refresh_token"))
        .await
        .assert_status(200);
}

async fn with_no_grace_window_any_second_use_revokes_the_family(store: Store) {
    let app = TestApp::spawn_with(store, |config| config.refresh_grace = Duration::ZERO).await;
    let login = app.user_with_tokens("alice").await;
    let successor = app.refresh(login.str("refresh_token")).await;
    successor.assert_status(200);
    app.refresh(login.str("refresh_token"))
        .await
        .assert_error(400, "invalid_grant");
    app.refresh(successor.str("refresh_token"))
        .await
        .assert_error(400, "invalid_grant");
}

async fn sixteen_concurrent_refreshes_of_one_token_share_one_successor(store: Store) {
    let app = Arc::new(TestApp::spawn(store).await);
    let login = app.user_with_tokens("alice").await;
    let parent = login.str("refresh_token").to_owned();
    let replies = concurrently(&app, 16, |app| {
        let parent = parent.clone();
        async move { app.refresh(&parent).await }
    })
    .await;
    for reply in &replies {
        reply.assert_status(200);
    }
    let successor = replies[0].str("refresh_token");
    assert!(
        replies
            .iter()
            .all(|reply| reply.str("refresh_token") == successor),
        "{replies:#?}"
    );
    assert_ne!(successor, parent);
    // Exactly one rotation: the successor is live and rotates normally.
    let next = app.refresh(successor).await;
    next.assert_status(200);
    assert_ne!(next.str("refresh_token"), successor);
}

async fn logout_revokes_the_session(store: Store) {
    let app = TestApp::spawn(store).await;
    let login = app.user_with_tokens("alice").await;
    let successor = app.refresh(login.str("refresh_token")).await;
    let reply = app
        .post_json(
            "/auth/logout",
            &json!({"refresh_token": successor.str("refresh_token")}),
        )
        .await;
    reply.assert_status(204);
    app.refresh(successor.str("refresh_token"))
        .await
        .assert_error(400, "invalid_grant");
    // Even the rotated parent, inside its grace window, is dead with its family.
    app.refresh(login.str("refresh_token"))
        .await
        .assert_error(400, "invalid_grant");
}

async fn logging_out_twice_or_with_an_unknown_token_is_fine(store: Store) {
    let app = TestApp::spawn(store).await;
    let login = app.user_with_tokens("alice").await;
    let body = json!({"refresh_token": login.str("refresh_token")});
    app.post_json("/auth/logout", &body)
        .await
        .assert_status(204);
    app.post_json("/auth/logout", &body)
        .await
        .assert_status(204);
    app.post_json("/auth/logout", &json!({"refresh_token": "never-issued"}))
        .await
        .assert_status(204);
    app.post_json("/auth/logout", &json!({"refresh_token": "x".repeat(5000)}))
        .await
        .assert_status(204);
}

async fn refreshing_never_extends_the_family_absolute_expiry(store: Store) {
    let ttl = Duration::from_secs(3);
    let app = TestApp::spawn_with(store, |config| {
        config.refresh_ttl = ttl;
        config.access_ttl = Duration::from_secs(1);
        config.refresh_grace = Duration::from_secs(1);
    })
    .await;
    let login = app.user_with_tokens("alice").await;
    assert!(login.body["refresh_token_expires_in"].as_i64().unwrap() <= 3);
    app.clock.advance(Duration::from_millis(1100));
    let refreshed = app.refresh(login.str("refresh_token")).await;
    refreshed.assert_status(200);
    // Counted from the login, not from this refresh.
    assert!(
        refreshed.body["refresh_token_expires_in"].as_i64().unwrap() <= 2,
        "{}",
        refreshed.body
    );
    app.clock.advance(ttl);
    app.refresh(refreshed.str("refresh_token"))
        .await
        .assert_error(400, "invalid_grant");
}

async fn an_idle_refresh_token_expires(store: Store) {
    let idle = Duration::from_secs(60);
    let app = TestApp::spawn_with(store, |config| config.refresh_idle_ttl = Some(idle)).await;
    let login = app.user_with_tokens("alice").await;
    assert!(login.body["refresh_token_expires_in"].as_i64().unwrap() <= 60);
    app.clock.advance(idle / 2);
    let kept_alive = app.refresh(login.str("refresh_token")).await;
    kept_alive.assert_status(200);
    app.clock.advance(idle);
    app.refresh(kept_alive.str("refresh_token"))
        .await
        .assert_error(400, "invalid_grant");
}

async fn an_unknown_refresh_token_is_invalid_grant(store: Store) {
    let app = TestApp::spawn(store).await;
    app.refresh("bm90LWEtdG9rZW4")
        .await
        .assert_error(400, "invalid_grant");
    app.refresh(&"A".repeat(10_000))
        .await
        .assert_error(400, "invalid_grant");
}
