//! Bounded work: password hashing beyond the cores and the queue is refused
//! with 503 and Retry-After instead of piling up.

use std::sync::Arc;
use std::time::Duration;

use crate::helpers::{PASSWORD, Store, TestApp};
use crate::on_both_stores;

on_both_stores!(a_login_beyond_the_hashing_queue_gets_503_with_retry_after_and_then_recovers);

async fn a_login_beyond_the_hashing_queue_gets_503_with_retry_after_and_then_recovers(
    store: Store,
) {
    let app = TestApp::spawn(store).await;
    app.register("alice", PASSWORD).await.assert_status(201);
    // No queue, and hashes slow enough to be caught in the act. (A verify
    // costs what the stored hash says; an unknown user's dummy verify costs
    // what this instance is configured with.)
    let app = Arc::new(
        app.another_instance(|config| {
            config.passwords.argon2_queue = 0;
            config.passwords.argon2_wait = Duration::ZERO;
            config.passwords.argon2_memory_kib = 64 * 1024;
            config.passwords.argon2_iterations = 8;
        })
        .await,
    );
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let busy: Vec<_> = (0..cores)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { app.login("nobody", PASSWORD).await })
        })
        .collect();
    // Wait until every core is hashing (this waits on state, not on time).
    let passwords = &app.state.accounts.passwords();
    for _ in 0..2000 {
        if passwords.is_saturated() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert!(
        passwords.is_saturated(),
        "the logins did not saturate the hashers"
    );

    let refused = app.login("alice", PASSWORD).await;
    refused.assert_error(503, "unavailable");
    assert_eq!(refused.header("retry-after"), Some("1"));

    // The admitted ones finish, and nothing is stuck afterwards.
    for login in busy {
        login.await.unwrap().assert_error(400, "invalid_grant");
    }
    app.login("alice", PASSWORD).await.assert_status(200);
}
