//! Many instances of one database, as behind a load balancer: they start
//! together and agree on what they issue, with nothing set to make them.

use crate::helpers::{Store, TestApp};
use crate::on_both_stores;

on_both_stores!(
    four_instances_started_at_once_on_an_empty_database_all_come_up,
    instances_without_an_issuer_accept_each_others_tokens,
);

async fn four_instances_started_at_once_on_an_empty_database_all_come_up(store: Store) {
    // Each migrates, or waits for the one that does.
    let apps = TestApp::spawn_together(store, 4, |_, _| {}).await;
    let login = apps[3].user_with_tokens("alice").await;
    for app in &apps {
        app.me(login.str("access_token")).await.assert_status(200);
    }
}

async fn instances_without_an_issuer_accept_each_others_tokens(store: Store) {
    // Each listens on its own address, which was each one's `iss` once.
    let apps = TestApp::spawn_together(store, 3, |index, config| {
        config.issuer = None;
        config.listen = ([127, 0, 0, 1], 18600 + index as u16).into();
    })
    .await;
    let login = apps[1].user_with_tokens("alice").await;
    for app in &apps {
        app.me(login.str("access_token")).await.assert_status(200);
    }
    let refreshed = apps[2].refresh(login.str("refresh_token")).await;
    refreshed.assert_status(200);
    apps[0]
        .me(refreshed.str("access_token"))
        .await
        .assert_status(200);
    let issuers: Vec<String> = apps
        .iter()
        .map(|app| app.state.signing.tokens().issuer().to_owned())
        .collect();
    assert!(
        issuers.iter().all(|issuer| issuer == &issuers[0]),
        "{issuers:?}"
    );
}
