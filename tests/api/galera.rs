//! Three instances on the three nodes of a MariaDB Galera cluster
//! (multi-primary): races decided across nodes, certification failures
//! tried again, a node that lags behind, a joint start.
//!
//! These need the cluster, so they are ignored by a plain `cargo test`:
//!
//! ```sh
//! tests/galera/cluster.sh start
//! cargo test --test api galera -- --ignored
//! tests/galera/cluster.sh stop
//! ```
//!
//! `.ci/run` does exactly that.

use std::time::Duration;

use sqlx::Connection as _;

use crate::helpers::{TestApp, galera_node_urls};
use crate::refresh_races::{race, retries};

/// (concurrent refreshes, trials)
const RACES: [(usize, usize); 3] = [(3, 10), (8, 8), (32, 4)];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs tests/galera/cluster.sh start"]
async fn three_instances_started_at_once_on_an_empty_database_all_come_up() {
    // `spawn_on_galera` starts them together, each on its own node and
    // listen address, none given `--issuer`: each migrates, or waits for
    // the one that does.
    let apps = TestApp::spawn_on_galera(|config| config.issuer = None).await;
    // What one instance issues, the others accept.
    let login = apps[0].user_with_tokens("alice").await;
    for app in &apps[1..] {
        app.me(login.str("access_token")).await.assert_status(200);
    }
    let refreshed = apps[1].refresh(login.str("refresh_token")).await;
    refreshed.assert_status(200);
    apps[2]
        .me(refreshed.str("access_token"))
        .await
        .assert_status(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs tests/galera/cluster.sh start"]
async fn racing_refreshes_on_three_nodes_all_get_the_one_successor() {
    let apps = TestApp::spawn_on_galera(|config| {
        config.database.db_max_connections = 16;
    })
    .await;
    let mut raced = 0;
    for (racers, trials) in RACES {
        for trial in 0..trials {
            let login = apps[0]
                .user_with_tokens(&format!("u{racers}-{trial}"))
                .await;
            let parent = login.str("refresh_token");
            let replies = race(&apps, parent, racers).await;
            raced += racers;
            for reply in &replies {
                reply.assert_status(200);
            }
            let successor = replies[0].str("refresh_token");
            assert!(
                replies.iter().all(|r| r.str("refresh_token") == successor),
                "{racers} racers got different successors"
            );
            let next = apps[2].refresh(successor).await;
            next.assert_status(200);
            apps[1]
                .me(next.str("access_token"))
                .await
                .assert_status(200);
        }
    }
    eprintln!(
        "galera: {raced} raced refreshes, {} transactions retried",
        retries(&apps)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs tests/galera/cluster.sh start"]
async fn with_no_grace_window_exactly_one_racing_refresh_wins_across_nodes() {
    let apps = TestApp::spawn_on_galera(|config| {
        config.refresh_grace = Duration::ZERO;
        config.database.db_max_connections = 16;
    })
    .await;
    let mut raced = 0;
    for (racers, trials) in RACES {
        for trial in 0..trials {
            let login = apps[0]
                .user_with_tokens(&format!("u{racers}-{trial}"))
                .await;
            let replies = race(&apps, login.str("refresh_token"), racers).await;
            raced += racers;
            let won = replies.iter().filter(|r| r.status == 200).count();
            assert_eq!(won, 1, "{racers} racers: {replies:?}");
            for reply in replies.iter().filter(|r| r.status != 200) {
                reply.assert_error(400, "invalid_grant");
            }
            // The losers presented a rotated token: reuse, so the family is
            // revoked, on every node.
            let winner = replies.iter().find(|r| r.status == 200).unwrap();
            for app in &apps {
                app.refresh(winner.str("refresh_token"))
                    .await
                    .assert_error(400, "invalid_grant");
            }
        }
    }
    eprintln!(
        "galera, no grace: {raced} raced refreshes, {} transactions retried",
        retries(&apps)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs tests/galera/cluster.sh start"]
async fn a_stolen_parent_presented_on_another_node_after_its_successor_was_used_revokes_the_family()
{
    let apps = TestApp::spawn_on_galera(|_| {}).await;
    let login = apps[0].user_with_tokens("alice").await;
    let parent = login.str("refresh_token");
    let first = apps[0].refresh(parent).await;
    first.assert_status(200);
    // The successor is used, on another node.
    let second = apps[1].refresh(first.str("refresh_token")).await;
    second.assert_status(200);
    apps[0]
        .clock
        .advance(apps[0].config.refresh_grace + Duration::from_secs(1));
    // The parent, presented again on the third node: reuse.
    apps[2]
        .refresh(parent)
        .await
        .assert_error(400, "invalid_grant");
    for app in &apps {
        app.refresh(second.str("refresh_token"))
            .await
            .assert_error(400, "invalid_grant");
    }
}

/// A node applies the cluster's writes in order, and a large one takes it a
/// while: a successor rotated through the first node and presented at once
/// on the third, still busy applying, must be found there (the store makes
/// every read wait for what the cluster committed before it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs tests/galera/cluster.sh start"]
async fn a_successor_presented_at_once_on_a_lagging_node_is_accepted() {
    let apps = TestApp::spawn_on_galera(|_| {}).await;
    let nodes = galera_node_urls();
    let database = apps[0]
        .config
        .database
        .database_url
        .clone()
        .expect("a database URL");
    let name = database.rsplit('/').next().expect("a database name");
    let mut first = sqlx::MySqlConnection::connect(&format!("{}/{name}", nodes[0]))
        .await
        .expect("the first node answers");
    sqlx::query("CREATE TABLE ballast (id INT PRIMARY KEY, pad CHAR(200) NOT NULL)")
        .execute(&mut first)
        .await
        .unwrap();
    for trial in 0..3 {
        let login = apps[0].user_with_tokens(&format!("u{trial}")).await;
        // A large write, committed through the first node; the others
        // apply it after it commits there.
        sqlx::query(&format!(
            "INSERT INTO ballast (id, pad) SELECT seq + {}, REPEAT('x', 200) \
             FROM seq_1_to_150000",
            trial * 1_000_000
        ))
        .execute(&mut first)
        .await
        .unwrap();
        let rotated = apps[0].refresh(login.str("refresh_token")).await;
        rotated.assert_status(200);
        let next = apps[2].refresh(rotated.str("refresh_token")).await;
        next.assert_status(200);
    }
    first.close().await.unwrap();
}
