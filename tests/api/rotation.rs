//! Signing-key rotation: keys kept in the database, sealed with a
//! key-encryption key, shared by instances, rotated without logging anyone out.

use std::time::Duration;

use gatehouse::StartError;
use gatehouse::auth::keys::TokenKey;
use gatehouse::auth::keys::{Kek, RingError};
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
    a_wrong_key_encryption_key_is_refused_with_a_clear_error,
    the_signing_key_file_of_earlier_versions_is_imported_on_first_start,
    retired_keys_are_pruned_and_the_current_one_never_is,
    a_fixed_key_file_is_not_managed_by_keys_rotate,
    a_reset_replaces_every_key_at_once_and_sessions_survive_it,
    a_lost_key_encryption_key_is_recovered_by_a_reset,
    the_key_encryption_key_is_replaced_by_resealing_and_tokens_keep_verifying,
);

/// Short lifetimes, so a rotated key retires within seconds: a key verifies
/// for access TTL + leeway + reload interval after the next one activates.
fn short_lived(config: &mut Config) {
    config.access_ttl = Duration::from_secs(1);
    config.key_reload_interval = Duration::from_secs(1);
}

async fn rotate(app: &TestApp, activate_in: Duration) -> String {
    gatehouse::rotate_keys(&app.config.keys, &app.config.database, activate_in)
        .await
        .expect("the rotation succeeds")
        .kid
}

async fn jwks_kids(app: &TestApp) -> Vec<String> {
    let jwks = Reply::read(app.client.get("/.well-known/jwks.json").send().await).await;
    jwks.assert_status(200);
    jwks.body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|key| key["kid"].as_str().unwrap().to_owned())
        .collect()
}

async fn audit_events(app: &TestApp, event: &str) -> Vec<gatehouse::store::AuditEvent> {
    app.state.store.audit_events_named(event).await.unwrap()
}

/// The kids in the database, oldest first.
async fn stored_kids(app: &TestApp) -> Vec<String> {
    let records = app.state.store.signing_keys().await.unwrap();
    records.into_iter().map(|record| record.kid).collect()
}

fn kid_of(jwt: &str) -> String {
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
        app.me(old_token).await.assert_status(200);
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
    assert!(app.clock.now_secs() >= old_exp);
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
    let hour = 3_600_000;
    let now = chrono::Utc::now().timestamp_millis();
    assert_eq!(ring.signing(now + hour + 1_000).kid(), next);
    // A rotation right after a delayed one does not activate before it.
    let third = rotate(&app, Duration::ZERO).await;
    app.state.signing.reload().await.unwrap();
    let ring = app.state.signing.tokens().ring();
    assert_eq!(ring.signing(now).kid(), current);
    assert_eq!(ring.signing(now + hour + 1_000).kid(), third);
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

async fn a_wrong_key_encryption_key_is_refused_with_a_clear_error(store: Store) {
    let app = TestApp::spawn(store).await;
    let other = app.config.database.data_dir.join("other-kek");
    std::fs::write(&other, format!("{}\n", base64_std(&[9; 32]))).unwrap();
    let mut config = app.config.clone();
    config.keys.key_encryption_key_file = Some(other);
    let Err(err) = gatehouse::build_app(&config).await else {
        panic!("an instance with another KEK started");
    };
    assert!(
        matches!(err, StartError::Ring(RingError::WrongKek { .. })),
        "{err}"
    );
    assert!(
        err.to_string().contains("--key-encryption-key-file"),
        "{err}"
    );
    let rotated = gatehouse::rotate_keys(&config.keys, &config.database, Duration::ZERO).await;
    assert!(matches!(
        rotated,
        Err(StartError::Ring(RingError::WrongKek { .. }))
    ));
    assert_eq!(app.state.store.signing_keys().await.unwrap().len(), 1);
}

fn base64_std(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

async fn the_signing_key_file_of_earlier_versions_is_imported_on_first_start(store: Store) {
    use ed25519_dalek::pkcs8::EncodePrivateKey as _;
    let key = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
    let app = TestApp::spawn_with(store, |config| {
        let pem = key.to_pkcs8_pem(Default::default()).unwrap();
        std::fs::write(
            config.database.data_dir.join("signing-key.pem"),
            pem.as_bytes(),
        )
        .unwrap();
    })
    .await;
    let legacy_kid = TokenKey::new(&key).kid().to_owned();
    assert_eq!(app.state.signing.signing_key().kid(), legacy_kid);
    let records = app.state.store.signing_keys().await.unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].kid, legacy_kid);
    // From then on the database decides: rotating replaces the imported key.
    let new_kid = rotate(&app, Duration::ZERO).await;
    let app = app.restart().await;
    assert_eq!(app.state.signing.signing_key().kid(), new_kid);
}

async fn retired_keys_are_pruned_and_the_current_one_never_is(store: Store) {
    let app = TestApp::spawn_with(store, short_lived).await;
    let old_kid = app.state.signing.signing_key().kid().to_owned();
    let new_kid = rotate(&app, Duration::ZERO).await;
    let now = chrono::Utc::now().timestamp_millis();
    // Within the overlap nothing is pruned.
    assert_eq!(app.state.signing.prune(now).await.unwrap(), 0);
    // Once the old key has retired, it goes; the current one stays forever.
    let later = now + 60_000;
    assert_eq!(app.state.signing.prune(later).await.unwrap(), 1);
    assert_eq!(app.state.signing.prune(i64::MAX / 2).await.unwrap(), 0);
    let kids = stored_kids(&app).await;
    assert_eq!(kids, [new_kid]);
    assert!(!kids.contains(&old_kid));
}

async fn a_fixed_key_file_is_not_managed_by_keys_rotate(store: Store) {
    use ed25519_dalek::pkcs8::EncodePrivateKey as _;
    let app = TestApp::spawn_with(store, |config| {
        let path = config.database.data_dir.join("fixed.pem");
        let pem = ed25519_dalek::SigningKey::from_bytes(&[5; 32])
            .to_pkcs8_pem(Default::default())
            .unwrap();
        std::fs::write(&path, pem.as_bytes()).unwrap();
        config.keys.signing_key_file = Some(path);
    })
    .await;
    let kid = app.state.signing.signing_key().kid().to_owned();
    let refused =
        gatehouse::rotate_keys(&app.config.keys, &app.config.database, Duration::ZERO).await;
    let Err(StartError::Config(message)) = refused else {
        panic!("a fixed key was rotated: {refused:?}");
    };
    assert!(message.contains("--signing-key-file"), "{message}");
    assert!(!app.state.signing.reload().await.unwrap());
    assert_eq!(jwks_kids(&app).await, [kid]);
    assert!(
        !app.config
            .database
            .data_dir
            .join("key-encryption-key")
            .exists()
    );
}

async fn a_reset_replaces_every_key_at_once_and_sessions_survive_it(store: Store) {
    let app = TestApp::spawn(store).await;
    let before = app.user_with_tokens("alice").await;
    rotate(&app, Duration::ZERO).await;
    let reset = gatehouse::reset_keys(&app.config.keys, &app.config.database)
        .await
        .unwrap();
    assert_eq!(reset.discarded, 2);
    app.state.signing.reload().await.unwrap();
    assert_eq!(jwks_kids(&app).await, std::slice::from_ref(&reset.kid));
    // Access tokens signed before the reset no longer verify...
    app.me(before.str("access_token"))
        .await
        .assert_error(401, "invalid_token");
    // ...but the session does: refreshing gets a token signed with the new key.
    let refreshed = app.refresh(before.str("refresh_token")).await;
    refreshed.assert_status(200);
    assert_eq!(kid_of(refreshed.str("access_token")), reset.kid);
    app.me(refreshed.str("access_token"))
        .await
        .assert_status(200);
    let events = audit_events(&app, "keys_reset").await;
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].detail.as_deref(),
        Some(format!("kid={} discarded=2", reset.kid).as_str())
    );
}

async fn a_lost_key_encryption_key_is_recovered_by_a_reset(store: Store) {
    let app = TestApp::spawn(store).await;
    let before = app.user_with_tokens("alice").await;
    std::fs::remove_file(app.config.database.data_dir.join("key-encryption-key")).unwrap();
    let Err(err) = gatehouse::build_app(&app.config).await else {
        panic!("started with keys it cannot unseal");
    };
    assert!(err.to_string().contains("gatehouse keys reset"), "{err}");
    // Rotating cannot help (it keeps the unreadable keys); a reset does.
    assert!(
        gatehouse::rotate_keys(&app.config.keys, &app.config.database, Duration::ZERO)
            .await
            .is_err()
    );
    let reset = gatehouse::reset_keys(&app.config.keys, &app.config.database)
        .await
        .unwrap();
    let app = app.restart().await;
    assert_eq!(app.state.signing.signing_key().kid(), reset.kid);
    let refreshed = app.refresh(before.str("refresh_token")).await;
    refreshed.assert_status(200);
    app.me(refreshed.str("access_token"))
        .await
        .assert_status(200);
}

async fn the_key_encryption_key_is_replaced_by_resealing_and_tokens_keep_verifying(store: Store) {
    let app = TestApp::spawn(store).await;
    let tokens = app.user_with_tokens("alice").await;
    rotate(&app, Duration::ZERO).await;
    let kids_before = stored_kids(&app).await;
    let new_kek_path = app.config.database.data_dir.join("new-kek");
    std::fs::write(&new_kek_path, base64_std(&[4; 32])).unwrap();
    let resealed = gatehouse::reseal_keys(&app.config.keys, &app.config.database, &new_kek_path)
        .await
        .unwrap();
    assert_eq!(resealed, 2);
    let new_kek = Kek::load(&new_kek_path).unwrap();
    let records = app.state.store.signing_keys().await.unwrap();
    assert!(records.iter().all(|record| record.kek_id == new_kek.id()));

    // The running instance keeps the keys it holds (a reload now fails)...
    assert!(matches!(
        app.state.signing.reload().await,
        Err(RingError::WrongKek { .. })
    ));
    app.me(tokens.str("access_token")).await.assert_status(200);
    // ...an instance with the old key-encryption key no longer starts...
    assert!(gatehouse::build_app(&app.config).await.is_err());
    // ...and one with the new key has the same signing keys.
    let second = app
        .another_instance(|config| config.keys.key_encryption_key_file = Some(new_kek_path))
        .await;
    let ring = second.state.signing.tokens().ring();
    let kids_after: Vec<&str> = ring.keys().iter().map(|key| key.key.kid()).collect();
    assert_eq!(kids_after, kids_before);
    second
        .me(tokens.str("access_token"))
        .await
        .assert_status(200);
    let events = audit_events(&app, "keys_resealed").await;
    assert_eq!(events.len(), 1);
}
