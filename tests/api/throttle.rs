//! Throttling failed logins per account and per client address.

use std::time::Duration;

use gatehouse::api::Cidr;

use std::sync::Arc;

use crate::helpers::{PASSWORD, Reply, Store, TestApp};
use crate::on_both_stores;
use crate::rotation::audit_events;

on_both_stores!(
    an_account_is_refused_with_429_after_repeated_failures_until_its_backoff_ends,
    unknown_accounts_are_throttled_exactly_like_real_ones,
    case_variants_of_a_username_share_one_counter,
    a_client_address_is_blocked_after_many_failures_across_accounts,
    behind_a_trusted_proxy_the_forwarded_address_is_the_one_throttled,
    parallel_guesses_are_counted_before_their_password_is_checked,
    parallel_guesses_across_two_instances_are_counted_before_their_password_is_checked,
    a_thousand_guesses_from_one_address_do_not_lock_the_owner_out_elsewhere,
    guesses_spread_over_many_addresses_still_slow_the_account_down,
    ipv6_guesses_from_one_64_bit_prefix_count_as_one_address,
    usernames_whose_nfkc_form_is_long_are_refused_and_counted_like_any_other,
    refusals_while_throttled_are_counted_in_metrics_but_write_no_audit_row,
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

/// Sends `total` wrong passwords for `alice`, `at_once` at a time, spread
/// over `apps` in turn; how many were checked against the hash (400).
async fn guesses_checked(apps: &[Arc<TestApp>], total: usize, at_once: usize) -> usize {
    // Blocks end by the test's steps only, however long the bursts take.
    apps[0].clock.freeze();
    let mut checked = 0;
    for batch in 0..total.div_ceil(at_once) {
        let sends = (0..at_once.min(total - batch * at_once)).map(|n| {
            let app = apps[n % apps.len()].clone();
            tokio::spawn(async move { app.login("alice", "wrong password").await })
        });
        for reply in futures::future::join_all(sends).await {
            let reply = reply.expect("the request task finished");
            match reply.status.as_u16() {
                400 => checked += 1,
                _ => {
                    assert_throttled(&reply);
                }
            }
        }
    }
    checked
}

/// The review's reproduction (issue 20, item 2): 200 wrong passwords, 64
/// at a time; each attempt is counted before it is hashed.
async fn parallel_guesses_are_counted_before_their_password_is_checked(store: Store) {
    let app = TestApp::spawn_with(store, |config| config.login_free_failures = 5).await;
    app.register("alice", PASSWORD).await.assert_status(201);
    let checked = guesses_checked(&[Arc::new(app)], 200, 64).await;
    assert!(checked <= 5 + 2, "{checked} guesses were checked");
}

async fn parallel_guesses_across_two_instances_are_counted_before_their_password_is_checked(
    store: Store,
) {
    let app = TestApp::spawn_with(store, |config| config.login_free_failures = 5).await;
    let other = app.another_instance(|_| {}).await;
    app.register("alice", PASSWORD).await.assert_status(201);
    let checked = guesses_checked(&[Arc::new(app), Arc::new(other)], 200, 64).await;
    assert!(checked <= 5 + 2, "{checked} guesses were checked");
}

/// Through a trusted proxy, as a deployment sees clients.
async fn login_via_proxy(app: &TestApp, client: &str, password: &str) -> Reply {
    let forwarded = [("x-forwarded-for", client)];
    app.post_form_from(
        "10.1.2.3:8443",
        &forwarded,
        "/oauth/token",
        &login_form("alice", password),
    )
    .await
}

async fn a_thousand_guesses_from_one_address_do_not_lock_the_owner_out_elsewhere(store: Store) {
    let app = TestApp::spawn_with(store, |config| {
        config.address_max_failures = 10_000;
        config.trusted_proxies = vec![Cidr::parse("10.0.0.0/8").unwrap()];
    })
    .await;
    app.register("alice", PASSWORD).await.assert_status(201);
    // Blocks end by the test's steps only, however long the burst takes.
    app.clock.freeze();
    let mut checked = 0;
    for round in 0..1_000 {
        let reply = login_via_proxy(&app, "203.0.113.66", "wrong password").await;
        if reply.status == 400 {
            checked += 1;
        } else {
            assert_throttled(&reply);
        }
        // Half of them in a burst; then the attacker waits out every
        // other block, as a patient one would, for days.
        if round >= 500 && round % 2 == 0 {
            app.clock.advance(Duration::from_secs(16 * 60));
        }
        if round == 499 {
            assert!(checked <= 5 + 1, "{checked} of a burst were checked");
        }
    }
    // The attacker is still blocked; the owner, elsewhere, is not.
    assert_throttled(&login_via_proxy(&app, "203.0.113.66", PASSWORD).await);
    login_via_proxy(&app, "198.51.100.20", PASSWORD)
        .await
        .assert_status(200);
}

async fn guesses_spread_over_many_addresses_still_slow_the_account_down(store: Store) {
    let app = TestApp::spawn_with(store, |config| {
        config.login_free_failures = 3;
        config.login_spread_free_failures = 12;
        config.trusted_proxies = vec![Cidr::parse("10.0.0.0/8").unwrap()];
    })
    .await;
    app.register("alice", PASSWORD).await.assert_status(201);
    // Four addresses, each within its free failures: twelve in all.
    for address in 1..=4 {
        let client = format!("203.0.113.{address}");
        for _ in 0..3 {
            login_via_proxy(&app, &client, "wrong password")
                .await
                .assert_error(400, "invalid_grant");
        }
    }
    // The thirteenth, from a fifth address, is checked and earns a block
    // for everyone: even the owner, from an address never seen, waits.
    login_via_proxy(&app, "203.0.113.5", "wrong password")
        .await
        .assert_error(400, "invalid_grant");
    assert_eq!(
        assert_throttled(&login_via_proxy(&app, "198.51.100.20", PASSWORD).await),
        1
    );
    app.clock.advance(Duration::from_secs(1));
    login_via_proxy(&app, "198.51.100.20", PASSWORD)
        .await
        .assert_status(200);
}

async fn ipv6_guesses_from_one_64_bit_prefix_count_as_one_address(store: Store) {
    let app = TestApp::spawn_with(store, |config| config.address_max_failures = 3).await;
    for n in 0..3 {
        let peer = format!("[2001:db8:1:2::{n}]:5000");
        let name = format!("victim{n}");
        app.post_form_from(&peer, &[], "/oauth/token", &login_form(&name, "password1"))
            .await
            .assert_error(400, "invalid_grant");
    }
    let same_prefix = "[2001:db8:1:2:ffff::9]:5000";
    let reply = app
        .post_form_from(same_prefix, &[], "/oauth/token", &login_form("x", "y"))
        .await;
    assert_throttled(&reply);
    let next_prefix = "[2001:db8:1:3::1]:5000";
    app.post_form_from(next_prefix, &[], "/oauth/token", &login_form("x", "y"))
        .await
        .assert_error(400, "invalid_grant");
}

/// The review's reproduction (issue 20, item 6): a 500 on MySQL, with the
/// hash spent and the address not counted.
async fn usernames_whose_nfkc_form_is_long_are_refused_and_counted_like_any_other(store: Store) {
    let app = TestApp::spawn_with(store, |config| config.address_max_failures = 2).await;
    let peer = "203.0.113.9:4000";
    for name in ["ﬀ".repeat(64), "⒇".repeat(64)] {
        app.post_form_from(peer, &[], "/oauth/token", &login_form(&name, "password1"))
            .await
            .assert_error(400, "invalid_grant");
    }
    let reply = app
        .post_form_from(peer, &[], "/oauth/token", &login_form("x", "y"))
        .await;
    assert_throttled(&reply);
}

async fn refusals_while_throttled_are_counted_in_metrics_but_write_no_audit_row(store: Store) {
    let app = TestApp::spawn_with(store, |config| config.login_free_failures = 1).await;
    app.register("alice", PASSWORD).await.assert_status(201);
    for _ in 0..2 {
        app.login("alice", "wrong password")
            .await
            .assert_error(400, "invalid_grant");
    }
    for _ in 0..20 {
        assert_throttled(&app.login("alice", "wrong password").await);
    }
    assert_eq!(audit_events(&app, "login_failed").await.len(), 2);
    assert!(audit_events(&app, "login_throttled").await.is_empty());
    let metrics = crate::metrics::metrics(&app).await;
    assert!(
        metrics.contains("gatehouse_events_total{event=\"login_throttled\"} 20"),
        "{metrics}"
    );
}
