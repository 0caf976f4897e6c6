//! The caller's sessions, and how fast revocation reaches access tokens.

use std::time::Duration;

use serde_json::Value;

use crate::helpers::{PASSWORD, Reply, Store, TestApp, claims_of};
use crate::on_both_stores;

on_both_stores!(
    listing_sessions_shows_each_login_and_marks_the_current_one,
    revoking_a_session_stops_its_refresh_and_access_tokens_at_once,
    a_session_that_is_not_the_callers_is_not_found,
    logout_all_revokes_every_session,
    a_session_revoked_on_another_instance_stops_its_access_tokens_within_the_check_ttl,
    the_session_operations_need_a_valid_token_with_the_profile_scope,
);

async fn login_with_agent(app: &TestApp, agent: &str) -> Reply {
    let form = [
        ("grant_type", "password"),
        ("username", "alice"),
        ("password", PASSWORD),
    ];
    Reply::read(
        app.client
            .post("/oauth/token")
            .header("User-Agent", agent)
            .form(&form)
            .send()
            .await,
    )
    .await
}

async fn sessions(app: &TestApp, token: &str) -> Vec<Value> {
    let reply = app.get_with_token("/users/me/sessions", token).await;
    reply.assert_status(200);
    reply.body.as_array().expect("a list of sessions").clone()
}

async fn delete_session(app: &TestApp, token: &str, id: &str) -> Reply {
    let request = app.client.delete(format!("/users/me/sessions/{id}"));
    Reply::read(
        request
            .header("Authorization", format!("Bearer {token}"))
            .send()
            .await,
    )
    .await
}

async fn post_with_token(app: &TestApp, path: &str, token: &str) -> Reply {
    Reply::read(
        app.client
            .post(path)
            .header("Authorization", format!("Bearer {token}"))
            .send()
            .await,
    )
    .await
}

async fn listing_sessions_shows_each_login_and_marks_the_current_one(store: Store) {
    let app = TestApp::spawn(store).await;
    app.register("alice", PASSWORD).await.assert_status(201);
    let laptop = login_with_agent(&app, "laptop-browser/1.0").await;
    let phone = login_with_agent(&app, "phone-app/2.0").await;
    let listed = sessions(&app, phone.str("access_token")).await;
    assert_eq!(listed.len(), 2, "{listed:#?}");
    let phone_sid = claims_of(phone.str("access_token"))["sid"].clone();
    for session in &listed {
        let current = session["id"] == phone_sid;
        assert_eq!(session["current"], current);
        let agent = if current {
            "phone-app/2.0"
        } else {
            "laptop-browser/1.0"
        };
        assert_eq!(session["user_agent"], agent);
        for field in ["created_at", "last_used_at", "expires_at"] {
            assert!(chrono::DateTime::parse_from_rfc3339(session[field].as_str().unwrap()).is_ok());
        }
    }
    // Another user's sessions are not listed.
    let bob = app.user_with_tokens("bob").await;
    assert_eq!(sessions(&app, bob.str("access_token")).await.len(), 1);
    // A logged-out session is no longer listed.
    let logout = serde_json::json!({"refresh_token": laptop.str("refresh_token")});
    app.post_json("/auth/logout", &logout)
        .await
        .assert_status(204);
    assert_eq!(sessions(&app, phone.str("access_token")).await.len(), 1);
}

async fn revoking_a_session_stops_its_refresh_and_access_tokens_at_once(store: Store) {
    let app = TestApp::spawn(store).await;
    app.register("alice", PASSWORD).await.assert_status(201);
    let laptop = app.login("alice", PASSWORD).await;
    let stolen = app.login("alice", PASSWORD).await;
    app.me(stolen.str("access_token")).await.assert_status(200);
    let stolen_sid = claims_of(stolen.str("access_token"))["sid"]
        .as_str()
        .unwrap()
        .to_owned();

    delete_session(&app, laptop.str("access_token"), &stolen_sid)
        .await
        .assert_status(204);

    app.refresh(stolen.str("refresh_token"))
        .await
        .assert_error(400, "invalid_grant");
    let reply = app.me(stolen.str("access_token")).await;
    reply.assert_error(401, "invalid_token");
    assert!(
        reply
            .header("www-authenticate")
            .unwrap()
            .contains("invalid_token")
    );
    // The caller's own session is untouched.
    app.me(laptop.str("access_token")).await.assert_status(200);
    app.refresh(laptop.str("refresh_token"))
        .await
        .assert_status(200);
}

async fn a_session_that_is_not_the_callers_is_not_found(store: Store) {
    let app = TestApp::spawn(store).await;
    let alice = app.user_with_tokens("alice").await;
    let bob = app.user_with_tokens("bob").await;
    let bob_sid = claims_of(bob.str("access_token"))["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    delete_session(&app, alice.str("access_token"), &bob_sid)
        .await
        .assert_error(404, "not_found");
    app.me(bob.str("access_token")).await.assert_status(200);
    let unknown = uuid::Uuid::new_v4().to_string();
    delete_session(&app, alice.str("access_token"), &unknown)
        .await
        .assert_error(404, "not_found");
    // Not a session id at all.
    delete_session(&app, alice.str("access_token"), "%27%20OR%201%3D1%20--")
        .await
        .assert_error(400, "invalid_request");
    // Revoking your own session twice: the second time there is none.
    let own_sid = claims_of(alice.str("access_token"))["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    let other = app.login("alice", PASSWORD).await;
    delete_session(&app, other.str("access_token"), &own_sid)
        .await
        .assert_status(204);
    delete_session(&app, other.str("access_token"), &own_sid)
        .await
        .assert_error(404, "not_found");
}

async fn logout_all_revokes_every_session(store: Store) {
    let app = TestApp::spawn(store).await;
    let first = app.user_with_tokens("alice").await;
    let second = app.login("alice", PASSWORD).await;
    let bob = app.user_with_tokens("bob").await;
    post_with_token(&app, "/auth/logout-all", first.str("access_token"))
        .await
        .assert_status(204);
    for tokens in [&first, &second] {
        app.assert_session_ended(tokens).await;
    }
    // Other users are untouched; the user can log in again.
    app.me(bob.str("access_token")).await.assert_status(200);
    let again = app.login("alice", PASSWORD).await;
    app.me(again.str("access_token")).await.assert_status(200);
}

async fn a_session_revoked_on_another_instance_stops_its_access_tokens_within_the_check_ttl(
    store: Store,
) {
    let ttl = Duration::from_secs(30);
    let app = TestApp::spawn_with(store, |config| config.session_check_ttl = ttl).await;
    let other = app.another_instance(|_| {}).await;
    let uncached = app
        .another_instance(|config| config.session_check_ttl = Duration::ZERO)
        .await;
    let tokens = app.user_with_tokens("alice").await;
    let access = tokens.str("access_token");
    other.me(access).await.assert_status(200);
    uncached.me(access).await.assert_status(200);

    let logout = serde_json::json!({"refresh_token": tokens.str("refresh_token")});
    app.post_json("/auth/logout", &logout)
        .await
        .assert_status(204);

    // The instance that revoked knows at once, so does one without a cache...
    app.me(access).await.assert_error(401, "invalid_token");
    uncached.me(access).await.assert_error(401, "invalid_token");
    // ...and any other within the check's TTL.
    app.clock.advance(ttl);
    other.me(access).await.assert_error(401, "invalid_token");
}

async fn the_session_operations_need_a_valid_token_with_the_profile_scope(store: Store) {
    let app = TestApp::spawn(store).await;
    let tokens = app.user_with_tokens("alice").await;
    let claims = claims_of(tokens.str("access_token"));
    let sid = claims["sid"].as_str().unwrap();
    let now = app.state.clock.now();
    let unscoped = app.sign_access_token(&claims, "", now);
    for token in ["", "garbage", &unscoped] {
        let (status, code) = if token == unscoped {
            (403, "insufficient_scope")
        } else {
            (401, "invalid_token")
        };
        app.get_with_token("/users/me/sessions", token)
            .await
            .assert_error(status, code);
        delete_session(&app, token, sid)
            .await
            .assert_error(status, code);
        post_with_token(&app, "/auth/logout-all", token)
            .await
            .assert_error(status, code);
    }
    // Nothing was revoked by those attempts.
    app.me(tokens.str("access_token")).await.assert_status(200);
}
