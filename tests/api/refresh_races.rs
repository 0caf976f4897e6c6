//! Many concurrent refreshes of one token, split across two instances of
//! one database: the database decides, nobody is signed out by a race, and
//! no transaction deadlocks.

use std::sync::Arc;
use std::time::Duration;

use crate::helpers::{Reply, Store, TestApp};
use crate::on_both_stores;

on_both_stores!(
    racing_refreshes_on_two_instances_all_get_the_one_successor,
    with_no_grace_window_exactly_one_racing_refresh_wins,
    a_refresh_abandoned_at_any_step_leaves_no_transaction_open,
    retries_racing_past_the_grace_window_on_two_instances_share_one_reissued_successor,
);

/// Issue 20: an answer was lost, and past the grace window the client's
/// retries race on two instances. The database decides one reissue: every
/// racer gets the same new successor, the lost one is superseded, nobody is
/// signed out.
async fn retries_racing_past_the_grace_window_on_two_instances_share_one_reissued_successor(
    store: Store,
) {
    let apps = two_instances(store, |_| {}).await;
    let grace = apps[0].config.refresh_grace;
    for (trial, racers) in [2, 8, 32].into_iter().enumerate() {
        let login = apps[0].user_with_tokens(&format!("retry{trial}")).await;
        let parent = login.str("refresh_token");
        let lost = apps[0].refresh(parent).await;
        lost.assert_status(200);
        apps[0].clock.advance(grace + Duration::from_secs(1));
        // All within one grace window from here, however slow the machine.
        apps[0].clock.freeze();
        let replies = race(&apps, parent, racers).await;
        for reply in &replies {
            reply.assert_status(200);
        }
        let reissued = replies[0].str("refresh_token");
        assert_ne!(reissued, lost.str("refresh_token"));
        assert!(
            replies.iter().all(|r| r.str("refresh_token") == reissued),
            "{racers} racers got different successors"
        );
        let next = apps[1].refresh(reissued).await;
        next.assert_status(200);
        apps[0]
            .me(next.str("access_token"))
            .await
            .assert_status(200);
    }
    let reissues = crate::rotation::audit_events(&apps[0], "refresh_reissued").await;
    assert_eq!(reissues.len(), 3, "one reissue per race");
}

/// (concurrent refreshes, trials)
const RACES: [(usize, usize); 4] = [(2, 10), (8, 8), (32, 4), (128, 2)];

/// Two instances on one database; `configure` applies to both.
async fn two_instances(
    store: Store,
    configure: fn(&mut gatehouse::config::Config),
) -> [Arc<TestApp>; 2] {
    let first = TestApp::spawn_with(store, |config| {
        configure(config);
        // 128 racers queue on one lock; keep them within the deadline.
        config.database.db_max_connections = 16;
    })
    .await;
    let second = first.another_instance(|_| {}).await;
    [Arc::new(first), Arc::new(second)]
}

/// `racers` refreshes of `token` at once, taking turns among the instances.
pub async fn race(apps: &[Arc<TestApp>], token: &str, racers: usize) -> Vec<Reply> {
    let tasks: Vec<_> = (0..racers)
        .map(|racer| {
            let (app, token) = (apps[racer % apps.len()].clone(), token.to_owned());
            tokio::spawn(async move { app.refresh(&token).await })
        })
        .collect();
    let mut replies = Vec::new();
    for task in tasks {
        replies.push(task.await.expect("the racer finished"));
    }
    replies
}

/// Transactions the instances tried again (after a deadlock, a lock wait
/// or a certification failure).
pub fn retries(apps: &[Arc<TestApp>]) -> u64 {
    apps.iter()
        .map(|app| app.state.store.transactions_retried())
        .sum()
}

/// For each `(racers, trials)`: a fresh session whose refresh token
/// `racers` present at once across `apps`; every one gets the same
/// successor, which then rotates and whose access token works. The
/// refreshes raced.
pub async fn assert_racers_share_one_successor(
    apps: &[Arc<TestApp>],
    races: &[(usize, usize)],
) -> usize {
    let mut raced = 0;
    for &(racers, trials) in races {
        for trial in 0..trials {
            let login = apps[0]
                .user_with_tokens(&format!("u{racers}-{trial}"))
                .await;
            let parent = login.str("refresh_token");
            let replies = race(apps, parent, racers).await;
            raced += racers;
            for reply in &replies {
                reply.assert_status(200);
            }
            let successor = replies[0].str("refresh_token");
            assert_ne!(successor, parent);
            assert!(
                replies.iter().all(|r| r.str("refresh_token") == successor),
                "{racers} racers got different successors"
            );
            // One rotation: the session is live and the successor rotates.
            let next = apps[apps.len() - 1].refresh(successor).await;
            next.assert_status(200);
            apps[0]
                .me(next.str("access_token"))
                .await
                .assert_status(200);
        }
    }
    raced
}

/// For each `(racers, trials)`, with no grace window: exactly one of the
/// racers gets a 200, the others `invalid_grant`. The winners' replies.
pub async fn assert_exactly_one_racer_wins(
    apps: &[Arc<TestApp>],
    races: &[(usize, usize)],
) -> Vec<Reply> {
    let mut winners = Vec::new();
    for &(racers, trials) in races {
        for trial in 0..trials {
            let login = apps[0]
                .user_with_tokens(&format!("u{racers}-{trial}"))
                .await;
            let replies = race(apps, login.str("refresh_token"), racers).await;
            let won = replies.iter().filter(|r| r.status == 200).count();
            assert_eq!(won, 1, "{racers} racers: {replies:?}");
            for reply in replies.iter().filter(|r| r.status != 200) {
                reply.assert_error(400, "invalid_grant");
            }
            winners.extend(replies.into_iter().filter(|r| r.status == 200));
        }
    }
    winners
}

async fn racing_refreshes_on_two_instances_all_get_the_one_successor(store: Store) {
    let apps = two_instances(store, |_| {}).await;
    let raced = assert_racers_share_one_successor(&apps, &RACES).await;
    eprintln!(
        "{raced} raced refreshes, {} transactions retried",
        retries(&apps)
    );
    assert_eq!(
        retries(&apps),
        0,
        "racers of one family queue, never deadlock"
    );
}

async fn with_no_grace_window_exactly_one_racing_refresh_wins(store: Store) {
    let apps = two_instances(store, |config| config.refresh_grace = Duration::ZERO).await;
    assert_exactly_one_racer_wins(&apps, &RACES).await;
    assert_eq!(
        retries(&apps),
        0,
        "racers of one family queue, never deadlock"
    );
}

/// A client that hangs up cancels its request wherever it is, mid
/// transaction too. Each refresh here is abandoned after one more step
/// than the last (a step: one wait for the database), then the chain goes
/// on: the connection it left must not come back with a transaction open
/// (SQLite: "cannot start a transaction within a transaction"; MySQL: its
/// row locks held, so the next refresh of the session waits out the
/// deadline).
async fn a_refresh_abandoned_at_any_step_leaves_no_transaction_open(store: Store) {
    let app = TestApp::spawn_with(store, |config| {
        config.database.db_max_connections = 2;
        config.database.db_timeout = Duration::from_secs(2);
    })
    .await;
    let mut token = app
        .user_with_tokens("alice")
        .await
        .str("refresh_token")
        .to_owned();
    for steps in 0..16 {
        abandon_after(steps, app.refresh(&token)).await;
        // The abandoned refresh may have committed: then this is its
        // replay, and gets the same successor.
        let next = app.refresh(&token).await;
        next.assert_status(200);
        token = next.str("refresh_token").to_owned();
    }
}

/// Polls `request` `steps` times, a millisecond apart (long enough for the
/// database to answer what it is waiting for), then drops it unless it is
/// done.
async fn abandon_after<T>(steps: usize, request: impl Future<Output = T>) {
    let mut request = std::pin::pin!(request);
    for _ in 0..steps {
        if futures::poll!(request.as_mut()).is_ready() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}
