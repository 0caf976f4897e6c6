//! Throttling failed logins per account and per client address.

use std::time::Duration;

use gatehouse::api::Cidr;

use crate::helpers::{PASSWORD, Reply, Store, TestApp};
use crate::on_both_stores;

on_both_stores!(
    an_account_is_refused_with_429_after_repeated_failures_until_its_backoff_ends,
    unknown_accounts_are_throttled_exactly_like_real_ones,
    case_variants_of_a_username_share_one_counter,
    a_client_address_is_blocked_after_many_failures_across_accounts,
    behind_a_trusted_proxy_the_forwarded_address_is_the_one_throttled,
);

fn login_form<'a>(username: &'a str, password: &'a str) -> [(&'a str, &'a str); 3] {
    [
        ("grant_type", "password"),
        ("username", username),
        ("password", password),
    ]
}

#[track_caller]
fn assert_throttled(reply: &Reply) -> u64 {
    reply.assert_error(429, "too_many_attempts");
    reply
        .header("retry-after")
        .expect("a Retry-After header")
        .parse()
        .expect("seconds")
}

async fn an_account_is_refused_with_429_after_repeated_failures_until_its_backoff_ends(
    store: Store,
) {
    let app = TestApp::spawn_with(store, |config| config.login_free_failures = 3).await;
    app.register("alice", PASSWORD).await.assert_status(201);
    app.register("bob", PASSWORD).await.assert_status(201);
    for _ in 0..4 {
        app.login("alice", "wrong password")
            .await
            .assert_error(400, "invalid_grant");
    }
    // Blocked for the first backoff step: even the right password waits.
    assert_eq!(assert_throttled(&app.login("alice", PASSWORD).await), 1);
    // Another account is untouched.
    app.login("bob", PASSWORD).await.assert_status(200);
    // When the block ends, the right password works and resets the count.
    app.clock.advance(Duration::from_secs(1));
    app.login("alice", PASSWORD).await.assert_status(200);
    for _ in 0..3 {
        app.login("alice", "wrong password")
            .await
            .assert_error(400, "invalid_grant");
    }
}

async fn unknown_accounts_are_throttled_exactly_like_real_ones(store: Store) {
    let app = TestApp::spawn_with(store, |config| config.login_free_failures = 2).await;
    app.register("alice", PASSWORD).await.assert_status(201);
    let mut real = Vec::new();
    let mut ghost = Vec::new();
    for _ in 0..5 {
        let reply = app.login("alice", "wrong password").await;
        real.push((reply.status, reply.body));
        let reply = app.login("ghost", "wrong password").await;
        ghost.push((reply.status, reply.body));
    }
    assert_eq!(real, ghost);
    assert_eq!(real.last().unwrap().0, 429);
}

async fn case_variants_of_a_username_share_one_counter(store: Store) {
    let app = TestApp::spawn_with(store, |config| config.login_free_failures = 2).await;
    app.register("alice", PASSWORD).await.assert_status(201);
    for variant in ["alice", "ALICE", "Alice"] {
        app.login(variant, "wrong password")
            .await
            .assert_error(400, "invalid_grant");
    }
    assert_throttled(&app.login("aLiCe", PASSWORD).await);
}

async fn a_client_address_is_blocked_after_many_failures_across_accounts(store: Store) {
    let app = TestApp::spawn_with(store, |config| config.address_max_failures = 5).await;
    app.register("alice", PASSWORD).await.assert_status(201);
    let stuffer = "203.0.113.7:40000";
    for n in 0..5 {
        let name = format!("victim{n}");
        let reply = app
            .post_form_from(
                stuffer,
                &[],
                "/oauth/token",
                &login_form(&name, "password1"),
            )
            .await;
        reply.assert_error(400, "invalid_grant");
    }
    let blocked = app
        .post_form_from(stuffer, &[], "/oauth/token", &login_form("alice", PASSWORD))
        .await;
    let retry_after = assert_throttled(&blocked);
    assert!(
        retry_after > 500 && retry_after <= 600,
        "until the 10-minute window ends: {retry_after}"
    );
    // Another address, and the account itself, are not blocked.
    let elsewhere = app
        .post_form_from(
            "198.51.100.2:5000",
            &[],
            "/oauth/token",
            &login_form("alice", PASSWORD),
        )
        .await;
    elsewhere.assert_status(200);
}

async fn behind_a_trusted_proxy_the_forwarded_address_is_the_one_throttled(store: Store) {
    let app = TestApp::spawn_with(store, |config| {
        config.address_max_failures = 2;
        config.trusted_proxies = vec![Cidr::parse("10.0.0.0/8").unwrap()];
    })
    .await;
    app.register("alice", PASSWORD).await.assert_status(201);
    let proxy = "10.1.2.3:8443";
    // The client claims an address, the proxy appends the one it saw.
    let forwarded = [("x-forwarded-for", "192.0.2.1, 203.0.113.50")];
    for n in 0..2 {
        let name = format!("victim{n}");
        let reply = app
            .post_form_from(
                proxy,
                &forwarded,
                "/oauth/token",
                &login_form(&name, "password1"),
            )
            .await;
        reply.assert_error(400, "invalid_grant");
    }
    let blocked = app
        .post_form_from(
            proxy,
            &forwarded,
            "/oauth/token",
            &login_form("alice", PASSWORD),
        )
        .await;
    assert_throttled(&blocked);
    // Through the same proxy, another client is not blocked; the spoofable
    // left-most entry is not what counts.
    let other = [("x-forwarded-for", "192.0.2.1, 203.0.113.51")];
    app.post_form_from(
        proxy,
        &other,
        "/oauth/token",
        &login_form("alice", PASSWORD),
    )
    .await
    .assert_status(200);
}
