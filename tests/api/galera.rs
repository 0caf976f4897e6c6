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

use std::sync::Arc;
use std::time::Duration;

use sqlx::Connection as _;

use crate::faults::{
    OUTAGE, assert_everyone_signed_in, every_refresh_is_unavailable, for_faults,
    refresh_everyone_when_back, refresh_once, refresh_when_back, sign_in_clients,
};
use crate::helpers::{SmtpSink, TestApp, galera_node_urls, send_mail_through};
use crate::proxy::{DbProxy, Fault};
use crate::refresh_races::{
    assert_exactly_one_racer_wins, assert_racers_share_one_successor, retries,
};

/// The galera tests take the cluster in turn: one of them hangs a node,
/// which stalls the whole cluster for a few seconds.
static CLUSTER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// (concurrent refreshes, trials)
const RACES: [(usize, usize); 3] = [(3, 10), (8, 8), (32, 4)];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs tests/galera/cluster.sh start"]
async fn three_instances_started_at_once_on_an_empty_database_all_come_up() {
    // `spawn_on_galera` starts them together, each on its own node and
    // listen address, none given `--issuer`: each migrates, or waits for
    // the one that does.
    let _cluster = CLUSTER.lock().await;
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
async fn three_instances_on_three_nodes_send_each_mail_once_and_spend_a_link_once() {
    let _cluster = CLUSTER.lock().await;
    let sink = SmtpSink::start().await;
    let apps = TestApp::spawn_on_galera(|config| send_mail_through(config, &sink)).await;
    for n in 0..12 {
        crate::password_reset::register_with_email(
            &apps[n % 3],
            &format!("user{n}"),
            Some(&format!("user{n}@example.org")),
        )
        .await;
    }
    // Every instance sends at once; a mail claimed by a sender that lost a
    // certification race goes once its lease runs out.
    futures::future::join_all(apps.iter().map(|app| app.deliver_mail())).await;
    apps[0].clock.advance(Duration::from_secs(120));
    futures::future::join_all(apps.iter().map(|app| app.deliver_mail())).await;
    for n in 0..12 {
        let address = format!("user{n}@example.org");
        assert_eq!(sink.mails_to(&address).len(), 1, "{address}");
    }

    crate::password_reset::request_reset(&apps[1], serde_json::json!({"username": "user0"}))
        .await
        .assert_status(202);
    apps[1].deliver_mail().await;
    let token = sink
        .mails_to("user0@example.org")
        .into_iter()
        .find(|mail| mail.subject().starts_with("Reset"))
        .expect("the reset mail")
        .token();
    let confirmations = apps.iter().enumerate().map(|(n, app)| {
        let token = token.clone();
        async move {
            crate::password_reset::confirm(app, &token, &format!("racing passphrase {n}"))
                .await
                .status
                .as_u16()
        }
    });
    let mut statuses = futures::future::join_all(confirmations).await;
    statuses.sort();
    assert_eq!(statuses, [204, 400, 400]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs tests/galera/cluster.sh start"]
async fn racing_refreshes_on_three_nodes_all_get_the_one_successor() {
    let _cluster = CLUSTER.lock().await;
    let apps = TestApp::spawn_on_galera(|config| {
        config.database.db_max_connections = 16;
    })
    .await;
    let raced = assert_racers_share_one_successor(&apps, &RACES).await;
    eprintln!(
        "galera: {raced} raced refreshes, {} transactions retried",
        retries(&apps)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs tests/galera/cluster.sh start"]
async fn with_no_grace_window_exactly_one_racing_refresh_wins_across_nodes() {
    let _cluster = CLUSTER.lock().await;
    let apps = TestApp::spawn_on_galera(|config| {
        config.refresh_grace = Duration::ZERO;
        config.database.db_max_connections = 16;
    })
    .await;
    let winners = assert_exactly_one_racer_wins(&apps, &RACES).await;
    // The losers presented a rotated token: reuse, so each family is
    // revoked, on every node.
    for winner in &winners {
        for app in &apps {
            app.refresh(winner.str("refresh_token"))
                .await
                .assert_error(400, "invalid_grant");
        }
    }
    let raced: usize = RACES.iter().map(|(racers, trials)| racers * trials).sum();
    eprintln!(
        "galera, no grace: {raced} raced refreshes, {} transactions retried",
        retries(&apps)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs tests/galera/cluster.sh start"]
async fn a_stolen_parent_presented_on_another_node_after_its_successor_was_used_revokes_the_family()
{
    let _cluster = CLUSTER.lock().await;
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

/// Issue 20, item 1, across nodes: the thief refreshes a stolen token on
/// one node; the owner presents it past the grace window on another and
/// gets a new successor; the thief's, superseded, ends the family on a
/// third; racing reissues on two nodes give one new successor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs tests/galera/cluster.sh start"]
async fn a_thief_who_refreshed_first_on_another_node_is_caught_when_the_owner_refreshes() {
    let _cluster = CLUSTER.lock().await;
    let apps = TestApp::spawn_on_galera(|_| {}).await;
    let login = apps[0].user_with_tokens("alice").await;
    let stolen = login.str("refresh_token");
    let thief = apps[0].refresh(stolen).await;
    thief.assert_status(200);
    apps[0]
        .clock
        .advance(apps[0].config.refresh_grace + Duration::from_secs(1));
    // The owner, twice at once on two nodes (a retry racing its first try).
    let (owner, retry) = tokio::join!(apps[1].refresh(stolen), apps[2].refresh(stolen));
    owner.assert_status(200);
    retry.assert_status(200);
    assert_eq!(owner.str("refresh_token"), retry.str("refresh_token"));
    assert_ne!(owner.str("refresh_token"), thief.str("refresh_token"));
    apps[2]
        .refresh(thief.str("refresh_token"))
        .await
        .assert_error(400, "invalid_grant");
    for app in &apps {
        app.refresh(owner.str("refresh_token"))
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
    let _cluster = CLUSTER.lock().await;
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

/// Issue 26: one code, sent with three logins' `mfa_token`s at once on the
/// three nodes: the account's step moves on once, so one login gets in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs tests/galera/cluster.sh start"]
async fn one_code_raced_on_three_nodes_lets_one_login_through() {
    let _cluster = CLUSTER.lock().await;
    let apps = TestApp::spawn_on_galera(|_| {}).await;
    let alice = crate::mfa::enrolled(&apps[0], "alice").await;
    for trial in 0..10 {
        apps[0].clock.advance(Duration::from_secs(30));
        let otp = crate::mfa::code(&apps[0], &alice.secret, 0);
        let mut tokens = Vec::new();
        for app in &apps {
            tokens.push(crate::mfa::mfa_token(app, "alice").await);
        }
        let (a, b, c) = tokio::join!(
            crate::mfa::with_otp(&apps[0], &tokens[0], &otp),
            crate::mfa::with_otp(&apps[1], &tokens[1], &otp),
            crate::mfa::with_otp(&apps[2], &tokens[2], &otp),
        );
        let mut statuses = [a.status.as_u16(), b.status.as_u16(), c.status.as_u16()];
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 400, 400], "trial {trial}");
    }
}

/// The `host:port` of each node.
fn node_addrs() -> Vec<std::net::SocketAddr> {
    galera_node_urls()
        .iter()
        .map(|url| {
            let addr = url.rsplit('@').next().expect("user@host:port");
            addr.parse().expect("an IP address and port")
        })
        .collect()
}

/// Three instances, each reaching its node through a proxy, and `CLIENTS`
/// users signed in, client `i` on instance `i % 3`: their refresh tokens.
async fn signed_in_through_proxies() -> (Vec<DbProxy>, Vec<Arc<TestApp>>, Vec<String>) {
    let mut proxies = Vec::new();
    for addr in node_addrs() {
        proxies.push(DbProxy::start(addr).await);
    }
    let nodes: Vec<String> = proxies
        .iter()
        .map(|proxy| format!("mysql://root@{}", proxy.addr()))
        .collect();
    let apps = TestApp::spawn_on_nodes(&nodes, for_faults).await;
    let tokens = sign_in_clients(&apps).await;
    (proxies, apps, tokens)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs tests/galera/cluster.sh start"]
async fn an_outage_of_every_node_longer_than_the_grace_window_logs_nobody_out() {
    let _cluster = CLUSTER.lock().await;
    let (proxies, apps, tokens) = signed_in_through_proxies().await;
    for proxy in &proxies {
        proxy.inject(Fault::BlackHole);
    }
    every_refresh_is_unavailable(&apps, &tokens).await;
    apps[0].clock.advance(OUTAGE);
    for proxy in &proxies {
        proxy.heal();
    }
    let tokens = refresh_everyone_when_back(&apps, &tokens).await;
    assert_everyone_signed_in(&apps, &tokens).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs tests/galera/cluster.sh start"]
async fn connections_to_every_node_reset_mid_commit_log_nobody_out() {
    let _cluster = CLUSTER.lock().await;
    let (proxies, apps, tokens) = signed_in_through_proxies().await;
    let proxies = Arc::new(proxies);
    let resetting = {
        let proxies = proxies.clone();
        tokio::spawn(async move {
            for _ in 0..100 {
                // Pacing the resets while the refreshes run, not a window.
                tokio::time::sleep(Duration::from_millis(10)).await;
                for proxy in proxies.iter() {
                    proxy.reset();
                }
            }
        })
    };
    let tokens = refresh_everyone_when_back(&apps, &tokens).await;
    resetting.await.unwrap();
    apps[0].clock.advance(OUTAGE);
    let tokens = refresh_everyone_when_back(&apps, &tokens).await;
    assert_everyone_signed_in(&apps, &tokens).await;
}

/// A node stopped in its tracks (SIGSTOP): its instance answers 503 in
/// time, the other two go on once the cluster has evicted it; it comes
/// back (SIGCONT), rejoins, and after an outage longer than the grace
/// window nobody is signed out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs tests/galera/cluster.sh start"]
async fn a_hung_node_costs_its_instance_503s_in_time_and_logs_nobody_out() {
    let _cluster = CLUSTER.lock().await;
    let apps = TestApp::spawn_on_galera(for_faults).await;
    let tokens = sign_in_clients(&apps).await;
    let hung = HungNode::stop(2);
    let mut during = Vec::new();
    for (client, token) in tokens.iter().enumerate() {
        let app = &apps[client % apps.len()];
        during.push(if client % apps.len() == 2 {
            assert!(refresh_once(app, token).await.is_none(), "the hung node");
            token.clone()
        } else {
            // 503s until the others evict it, then 200.
            refresh_when_back(app, token).await
        });
    }
    apps[0].clock.advance(OUTAGE);
    drop(hung);
    wait_until_synced(2).await;
    let tokens = refresh_everyone_when_back(&apps, &during).await;
    assert_everyone_signed_in(&apps, &tokens).await;
}

/// A node's `mariadbd`, stopped until this is dropped.
struct HungNode(String);

impl HungNode {
    fn stop(node: usize) -> Self {
        let dir =
            std::env::var("GALERA_DIR").unwrap_or_else(|_| "/var/tmp/gatehouse-galera".into());
        let pid = std::fs::read_to_string(format!("{dir}/node{node}/mysqld.pid"))
            .expect("the node's pid file (set GALERA_DIR as for cluster.sh)")
            .trim()
            .to_owned();
        signal(&pid, "-STOP");
        Self(pid)
    }
}

impl Drop for HungNode {
    fn drop(&mut self) {
        signal(&self.0, "-CONT");
    }
}

fn signal(pid: &str, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([signal, pid])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill {signal} {pid}");
}

/// Until the node is back in the cluster and synced (bounded).
async fn wait_until_synced(node: usize) {
    let url = &galera_node_urls()[node];
    for _ in 0..300 {
        if let Ok(mut conn) = sqlx::MySqlConnection::connect(url).await {
            let state: Result<(String, String), _> =
                sqlx::query_as("SHOW STATUS LIKE 'wsrep_local_state_comment'")
                    .fetch_one(&mut conn)
                    .await;
            let _ = conn.close().await;
            if matches!(state, Ok((_, ref state)) if state == "Synced") {
                return;
            }
        }
        // Waiting for the node (another process) to rejoin the cluster.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("node {node} did not rejoin the cluster");
}
