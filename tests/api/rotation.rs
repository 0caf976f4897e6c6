//! Signing-key rotation: keys kept in the database, sealed with a
//! key-encryption key, shared by instances, rotated without logging anyone out.

use std::time::Duration;

use gatehouse::auth::keys::Kek;
use gatehouse::clock::Clock as _;
use gatehouse::config::Config;

use crate::helpers::{Reply, Store, TestApp, claims_of, fresh_database};
use crate::on_both_stores;

on_both_stores!(
    keys_are_kept_in_the_database_sealed_and_only_the_kek_is_a_file,
    after_a_rotation_new_tokens_carry_the_new_kid_and_old_ones_verify_until_they_expire,
    another_instance_verifies_a_token_signed_with_a_key_it_has_not_loaded_yet,
    a_key_activated_later_is_published_first_and_signs_only_from_its_activation,
    a_rotation_is_audited_without_key_material,
    concurrent_rotations_each_add_a_key_and_lose_none,
    instances_starting_together_on_an_empty_database_share_one_first_key,
    retired_keys_are_pruned_and_the_current_one_never_is,
);

/// Short lifetimes, so a rotated key retires within seconds: a key verifies
/// for access TTL + leeway + reload interval after the next one activates.
pub(crate) fn short_lived(config: &mut Config) {
    config.access_ttl = Duration::from_secs(1);
    config.key_reload_interval = Duration::from_secs(1);
}

pub(crate) async fn rotate(app: &TestApp, activate_in: Duration) -> String {
    gatehouse::rotate_keys(&app.config.keys, &app.config.database, activate_in)
        .await
        .expect("the rotation succeeds")
        .kid
}

pub(crate) async fn jwks_kids(app: &TestApp) -> Vec<String> {
    let jwks = Reply::read(app.client.get("/.well-known/jwks.json").send().await).await;
    jwks.assert_status(200);
    jwks.body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|key| key["kid"].as_str().unwrap().to_owned())
        .collect()
}

pub(crate) async fn audit_events(app: &TestApp, event: &str) -> Vec<gatehouse::store::AuditEvent> {
    app.state.store.audit_events_named(event).await.unwrap()
}

/// The kids in the database, oldest first.
pub(crate) async fn stored_kids(app: &TestApp) -> Vec<String> {
    let records = app.state.store.signing_keys().await.unwrap();
    records.into_iter().map(|record| record.kid).collect()
}

pub(crate) fn kid_of(jwt: &str) -> String {
    jsonwebtoken::decode_header(jwt).unwrap().kid.unwrap()
}

async fn keys_are_kept_in_the_database_sealed_and_only_the_kek_is_a_file(store: Store) {
    let app = TestApp::spawn(store).await;
    let data_dir = &app.config.database.data_dir;
    let kek_path = data_dir.join("key-encryption-key");
    let kek = Kek::load(&kek_path).expect("a KEK was generated into the data dir");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&kek_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert!(!data_dir.join("signing-key.pem").exists());
    let records = app.state.store.signing_keys().await.unwrap();
    assert_eq!(records.len(), 1);
    let record = &records[0];
    assert_eq!(record.kid, app.state.signing.signing_key().kid());
    assert_eq!(record.kek_id, kek.id());
    assert_eq!(record.algorithm, "EdDSA");
    // 24-byte nonce + 32-byte key + 16-byte tag, base64url: no PEM, no raw key.
    assert_eq!(record.private_key.len(), 96);
    assert!(!record.private_key.contains("PRIVATE"));
    let tokens = app.user_with_tokens("alice").await;
    assert_eq!(kid_of(tokens.str("access_token")), record.kid);
}

async fn after_a_rotation_new_tokens_carry_the_new_kid_and_old_ones_verify_until_they_expire(
    store: Store,
) {
    let app = TestApp::spawn_with(store, short_lived).await;
    let before = app.user_with_tokens("alice").await;
    let old_token = before.str("access_token");
    let old_kid = kid_of(old_token);
    assert_eq!(jwks_kids(&app).await, std::slice::from_ref(&old_kid));

    let new_kid = rotate(&app, Duration::ZERO).await;
    assert_ne!(new_kid, old_kid);
    assert!(
        app.state.signing.reload().await.unwrap(),
        "the signing key changed"
    );

    let after = app.login("alice", crate::helpers::PASSWORD).await;
    after.assert_status(200);
    assert_eq!(kid_of(after.str("access_token")), new_kid);
    // Both keys are published and both tokens verify.
    assert_eq!(jwks_kids(&app).await, [old_kid.clone(), new_kid.clone()]);
    app.me(after.str("access_token")).await.assert_status(200);
    let old_exp = claims_of(old_token)["exp"].as_i64().unwrap();
    if chrono::Utc::now().timestamp() < old_exp {
        let reply = app.me(old_token).await;
        // A 1 s token may expire on the way: only then is a 401 right.
        if !(reply.status == 401 && chrono::Utc::now().timestamp() >= old_exp) {
            reply.assert_status(200);
        }
    }
    // The refresh token from before the rotation still works: sessions do
    // not depend on the signing key.
    let refreshed = app.refresh(before.str("refresh_token")).await;
    refreshed.assert_status(200);
    assert_eq!(kid_of(refreshed.str("access_token")), new_kid);

    // The old key leaves the JWKS once its last token has expired and no
    // instance can still sign with it: step over that overlap.
    let config = &app.config;
    let overlap = config.access_ttl + config.jwt_leeway + config.key_reload_interval;
    app.clock.advance(overlap + Duration::from_secs(1));
    assert!(app.clock.now().as_secs() >= old_exp);
    assert_eq!(jwks_kids(&app).await, [new_kid]);
    app.me(old_token).await.assert_error(401, "invalid_token");
}

async fn another_instance_verifies_a_token_signed_with_a_key_it_has_not_loaded_yet(store: Store) {
    let first = TestApp::spawn(store).await;
    // A long reload interval: only the unknown kid can make it reload.
    let second = first
        .another_instance(|config| config.key_reload_interval = Duration::from_secs(3600))
        .await;
    let new_kid = rotate(&first, Duration::ZERO).await;
    first.state.signing.reload().await.unwrap();
    let tokens = first.user_with_tokens("alice").await;
    assert_eq!(kid_of(tokens.str("access_token")), new_kid);
    assert!(!jwks_kids(&second).await.contains(&new_kid));

    second
        .me(tokens.str("access_token"))
        .await
        .assert_status(200);
    assert!(jwks_kids(&second).await.contains(&new_kid));
    assert_eq!(second.state.signing.signing_key().kid(), new_kid);
    // A kid that exists nowhere is still refused.
    let mut forged = tokens.str("access_token").split('.').map(str::to_owned);
    let header = serde_json::json!({"alg": "EdDSA", "typ": "at+jwt", "kid": "no-such-key"});
    let forged = format!(
        "{}.{}.{}",
        base64_url(header.to_string().as_bytes()),
        forged.nth(1).unwrap(),
        forged.next().unwrap()
    );
    second.me(&forged).await.assert_error(401, "invalid_token");
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

async fn a_key_activated_later_is_published_first_and_signs_only_from_its_activation(store: Store) {
    let app = TestApp::spawn(store).await;
    let current = app.state.signing.signing_key().kid().to_owned();
    let next = rotate(&app, Duration::from_secs(3600)).await;
    assert!(!app.state.signing.reload().await.unwrap());
    assert_eq!(jwks_kids(&app).await, [current.clone(), next.clone()]);
    let tokens = app.user_with_tokens("alice").await;
    assert_eq!(kid_of(tokens.str("access_token")), current);
    let ring = app.state.signing.tokens().ring();
    let hour = Duration::from_secs(3600);
    let now = app.clock.now();
    assert_eq!(
        ring.signing(now + hour + Duration::from_secs(1)).kid(),
        next
    );
    // A rotation right after a delayed one does not activate before it.
    let third = rotate(&app, Duration::ZERO).await;
    app.state.signing.reload().await.unwrap();
    let ring = app.state.signing.tokens().ring();
    assert_eq!(ring.signing(now).kid(), current);
    assert_eq!(
        ring.signing(now + hour + Duration::from_secs(1)).kid(),
        third
    );
}

async fn a_rotation_is_audited_without_key_material(store: Store) {
    let app = TestApp::spawn(store).await;
    let old_kid = app.state.signing.signing_key().kid().to_owned();
    let new_kid = rotate(&app, Duration::ZERO).await;
    let events = audit_events(&app, "key_rotated").await;
    assert_eq!(events.len(), 1);
    let detail = events[0].detail.as_deref().unwrap();
    assert!(detail.contains(&format!("kid={new_kid}")), "{detail}");
    assert!(detail.contains(&format!("previous={old_kid}")), "{detail}");
    for record in app.state.store.signing_keys().await.unwrap() {
        assert!(!detail.contains(&record.private_key));
    }
}

async fn concurrent_rotations_each_add_a_key_and_lose_none(store: Store) {
    let app = TestApp::spawn(store).await;
    let rotations = futures::future::join_all((0..4).map(|_| rotate(&app, Duration::ZERO))).await;
    let mut kids = rotations.clone();
    kids.sort();
    kids.dedup();
    assert_eq!(kids.len(), 4);
    let records = app.state.store.signing_keys().await.unwrap();
    let generations: Vec<i64> = records.iter().map(|record| record.generation).collect();
    assert_eq!(generations, [1, 2, 3, 4, 5]);
    app.state.signing.reload().await.unwrap();
    assert_eq!(
        app.state.signing.signing_key().kid(),
        records.last().unwrap().kid
    );
}

async fn instances_starting_together_on_an_empty_database_share_one_first_key(store: Store) {
    let (config, _db) = fresh_database(store).await;
    gatehouse::migrate(&config.database).await.unwrap();
    let starts = futures::future::join_all((0..3).map(|_| gatehouse::build_app(&config))).await;
    let states: Vec<_> = starts
        .into_iter()
        .map(|start| start.expect("the app starts").1)
        .collect();
    let kids: Vec<String> = states
        .iter()
        .map(|state| state.signing.signing_key().kid().to_owned())
        .collect();
    assert!(kids.iter().all(|kid| *kid == kids[0]), "{kids:?}");
    assert_eq!(states[0].store.signing_keys().await.unwrap().len(), 1);
    for state in states {
        state.store.close().await;
    }
}

async fn retired_keys_are_pruned_and_the_current_one_never_is(store: Store) {
    let app = TestApp::spawn_with(store, short_lived).await;
    let old_kid = app.state.signing.signing_key().kid().to_owned();
    let new_kid = rotate(&app, Duration::ZERO).await;
    let now = app.clock.now();
    // Within the overlap nothing is pruned.
    assert_eq!(app.state.signing.prune(now).await.unwrap(), 0);
    // Once the old key has retired, it goes; the current one stays forever.
    let later = now + Duration::from_secs(60);
    assert_eq!(app.state.signing.prune(later).await.unwrap(), 1);
    let far = gatehouse::clock::UnixMillis::from_millis(i64::MAX / 2);
    assert_eq!(app.state.signing.prune(far).await.unwrap(), 0);
    let kids = stored_kids(&app).await;
    assert_eq!(kids, [new_kid]);
    assert!(!kids.contains(&old_kid));
}
