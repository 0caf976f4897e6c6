//! The audit trail: what happened to an account, and never a secret.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{PASSWORD, Reply, Store, TestApp, claims_of};
use crate::on_both_stores;

on_both_stores!(
    an_accounts_life_is_audited_in_order_without_secrets,
    a_refresh_records_the_user_agent_exactly_whatever_it_holds,
    batched_events_still_waiting_are_all_written_by_a_flush,
);

async fn an_accounts_life_is_audited_in_order_without_secrets(store: Store) {
    let app = TestApp::spawn_with(store, |config| config.refresh_grace = Duration::ZERO).await;
    app.register("alice", PASSWORD).await.assert_status(201);
    app.login("alice", "wrong password")
        .await
        .assert_error(400, "invalid_grant");
    let form = [
        ("grant_type", "password"),
        ("username", "alice"),
        ("password", PASSWORD),
    ];
    let first = Reply::read(
        app.client
            .post("/oauth/token")
            .header("User-Agent", "audit-test/1.0")
            .form(&form)
            .send()
            .await,
    )
    .await;
    first.assert_status(200);
    let refreshed = app.refresh(first.str("refresh_token")).await;
    refreshed.assert_status(200);
    app.refresh(first.str("refresh_token"))
        .await
        .assert_error(400, "invalid_grant");
    let second = app.login("alice", PASSWORD).await;
    let change = json!({"current_password": PASSWORD, "new_password": "another passphrase"});
    let request = app.client.put("/users/me/password").header(
        "Authorization",
        format!("Bearer {}", second.str("access_token")),
    );
    Reply::read(request.body_json(&change).send().await)
        .await
        .assert_status(204);
    app.post_json(
        "/auth/logout",
        &json!({"refresh_token": second.str("refresh_token")}),
    )
    .await
    .assert_status(204);
    assert!(app.set_disabled("alice", true).await);

    let user_id = claims_of(first.str("access_token"))["sub"]
        .as_str()
        .unwrap()
        .to_owned();
    let user_id = gatehouse::ids::UserId::from(user_id.as_str());
    let events = app.state.store.audit_events_of(&user_id).await.unwrap();
    let names: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(
        names,
        [
            "login_failed",
            "login_succeeded",
            "refresh",
            "refresh_reuse_detected",
            "login_succeeded",
            "password_changed",
            "logout",
            "user_disabled",
        ]
    );
    let first_sid = claims_of(first.str("access_token"))["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    let first_sid = gatehouse::ids::SessionId::from(first_sid.as_str());
    assert_eq!(events[1].session_id.as_ref(), Some(&first_sid));
    assert_eq!(events[1].user_agent.as_deref(), Some("audit-test/1.0"));
    assert_eq!(events[3].session_id.as_ref(), Some(&first_sid));
    assert!(
        events
            .windows(2)
            .all(|pair| pair[0].occurred_at <= pair[1].occurred_at)
    );

    let trail = format!("{events:?}");
    for secret in [
        PASSWORD,
        "wrong password",
        "another passphrase",
        first.str("refresh_token"),
        first.str("access_token"),
    ] {
        assert!(
            !trail.contains(secret),
            "the audit trail holds no password or token"
        );
    }
}

/// The refresh transaction writes its values into the SQL it sends (see
/// `store::script`): quotes, backslashes, placeholders and comments in
/// them are data.
async fn a_refresh_records_the_user_agent_exactly_whatever_it_holds(store: Store) {
    let app = TestApp::spawn(store).await;
    let login = app.user_with_tokens("alice").await;
    let hostile = r#"x'); DELETE FROM users; -- \' \x27 ? "?" 0x41 /* */ `"#;
    let refreshed = Reply::read(
        app.client
            .post("/auth/refresh")
            .header("User-Agent", hostile)
            .body_json(&json!({"refresh_token": login.str("refresh_token")}))
            .send()
            .await,
    )
    .await;
    refreshed.assert_status(200);

    let events = app.state.store.audit_events_named("refresh").await.unwrap();
    let agents: Vec<_> = events.iter().map(|e| e.user_agent.as_deref()).collect();
    assert_eq!(agents, [Some(hostile)]);
    app.me(refreshed.str("access_token"))
        .await
        .assert_status(200);
    app.refresh(refreshed.str("refresh_token"))
        .await
        .assert_status(200);
}

async fn batched_events_still_waiting_are_all_written_by_a_flush(store: Store) {
    // A window long enough that nothing is written before the flush.
    let app = TestApp::spawn_with(store, |config| {
        config.audit_batch_window = Duration::from_secs(3600);
    })
    .await;
    let secret = app
        .register_client("worker", true, &["client_credentials"], &["profile"])
        .await
        .unwrap();
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", "worker"),
        ("client_secret", secret.as_str()),
    ];
    let grant = || app.post_form("/oauth/token", &form);
    let grants = 60;
    let answers = futures::future::join_all((0..grants).map(|_| grant())).await;
    assert!(answers.iter().all(|answer| answer.status == 200));
    let written = crate::rotation::audit_events(&app, "client_credentials_granted").await;
    assert!(written.len() < grants, "events gather for the window");
    app.state.flush_audit().await;
    let written = crate::rotation::audit_events(&app, "client_credentials_granted").await;
    assert_eq!(written.len(), grants, "a flush writes everything queued");

    // After the flush, a grant's event is written in its request.
    grant().await.assert_status(200);
    let written = crate::rotation::audit_events(&app, "client_credentials_granted").await;
    assert_eq!(written.len(), grants + 1);
}
