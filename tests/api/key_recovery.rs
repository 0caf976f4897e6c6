//! When keys go wrong: a wrong or lost key-encryption key, a key file from
//! an earlier version, a fixed key that `keys rotate` leaves alone, a reset
//! after a leak, and re-sealing under a new key-encryption key.

use std::time::Duration;

use gatehouse::StartError;
use gatehouse::auth::keys::{Kek, RingError, TokenKey};

use crate::helpers::{Store, TestApp};
use crate::on_both_stores;
use crate::rotation::{audit_events, jwks_kids, kid_of, rotate, stored_kids};

on_both_stores!(
    a_wrong_key_encryption_key_is_refused_with_a_clear_error,
    the_signing_key_file_of_earlier_versions_is_imported_on_first_start,
    a_fixed_key_file_is_not_managed_by_keys_rotate,
    a_reset_replaces_every_key_at_once_and_sessions_survive_it,
    a_lost_key_encryption_key_is_recovered_by_a_reset,
    the_key_encryption_key_is_replaced_by_resealing_and_tokens_keep_verifying,
    with_a_fixed_signing_key_a_lost_key_encryption_key_is_recovered_by_a_reset,
    with_a_fixed_signing_key_the_key_encryption_key_is_replaced_by_resealing,
);

/// With `--signing-key-file`, the key-encryption key seals only the
/// refresh-token secret.
async fn spawn_with_a_fixed_signing_key(store: Store) -> TestApp {
    use ed25519_dalek::pkcs8::EncodePrivateKey as _;
    TestApp::spawn_with(store, |config| {
        let path = config.database.data_dir.join("fixed.pem");
        let pem = ed25519_dalek::SigningKey::from_bytes(&[5; 32])
            .to_pkcs8_pem(Default::default())
            .unwrap();
        std::fs::write(&path, pem.as_bytes()).unwrap();
        config.keys.signing_key_file = Some(path);
    })
    .await
}

async fn with_a_fixed_signing_key_a_lost_key_encryption_key_is_recovered_by_a_reset(store: Store) {
    let app = spawn_with_a_fixed_signing_key(store).await;
    let before = app.user_with_tokens("alice").await;
    std::fs::remove_file(app.config.database.data_dir.join("key-encryption-key")).unwrap();
    let Err(err) = gatehouse::build_app(&app.config).await else {
        panic!("started with a refresh secret it cannot unseal");
    };
    assert!(err.to_string().contains("gatehouse keys reset"), "{err}");
    gatehouse::reset_refresh_secret(&app.config.keys, &app.config.database)
        .await
        .unwrap();
    let app = app.restart().await;
    // Sessions survive: a refresh token is a hash, not derived from the secret.
    let refreshed = app.refresh(before.str("refresh_token")).await;
    refreshed.assert_status(200);
    app.me(refreshed.str("access_token"))
        .await
        .assert_status(200);
}

async fn with_a_fixed_signing_key_the_key_encryption_key_is_replaced_by_resealing(store: Store) {
    let app = spawn_with_a_fixed_signing_key(store).await;
    let tokens = app.user_with_tokens("alice").await;
    // Within one grace window, however long the reseal takes.
    app.clock.freeze();
    let rotated = app.refresh(tokens.str("refresh_token")).await;
    rotated.assert_status(200);
    let new_kek_path = app.config.database.data_dir.join("new-kek");
    std::fs::write(&new_kek_path, base64_std(&[6; 32])).unwrap();
    let resealed = gatehouse::reseal_keys(&app.config.keys, &app.config.database, &new_kek_path)
        .await
        .unwrap();
    assert_eq!(resealed, (0, 0), "no signing key is in the database");
    assert!(gatehouse::build_app(&app.config).await.is_err());
    let second = app
        .another_instance(|config| config.keys.key_encryption_key_file = Some(new_kek_path))
        .await;
    // Resealed, not replaced: the same successor as before.
    let replayed = second.refresh(tokens.str("refresh_token")).await;
    replayed.assert_status(200);
    assert_eq!(replayed.str("refresh_token"), rotated.str("refresh_token"));
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

async fn a_fixed_key_file_is_not_managed_by_keys_rotate(store: Store) {
    let app = spawn_with_a_fixed_signing_key(store).await;
    let kid = app.state.signing.signing_key().kid().to_owned();
    let refused =
        gatehouse::rotate_keys(&app.config.keys, &app.config.database, Duration::ZERO).await;
    let Err(StartError::Config(message)) = refused else {
        panic!("a fixed key was rotated: {refused:?}");
    };
    assert!(message.contains("--signing-key-file"), "{message}");
    assert!(!app.state.signing.reload().await.unwrap());
    assert_eq!(jwks_kids(&app).await, [kid]);
    // The key-encryption key still seals the refresh-token secret.
    assert!(
        app.config
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
    // A second factor, and an enrolment waiting for its code: both sealed.
    let bob = crate::mfa::enrolled(&app, "bob").await;
    let carol = app.user_with_tokens("carol").await;
    let waiting =
        crate::mfa::start(&app, carol.str("access_token"), crate::helpers::PASSWORD).await;
    waiting.assert_status(200);
    let tokens = app.user_with_tokens("alice").await;
    // Within one grace window, however long the reseal takes.
    app.clock.freeze();
    let rotated = app.refresh(tokens.str("refresh_token")).await;
    rotated.assert_status(200);
    rotate(&app, Duration::ZERO).await;
    let kids_before = stored_kids(&app).await;
    let new_kek_path = app.config.database.data_dir.join("new-kek");
    std::fs::write(&new_kek_path, base64_std(&[4; 32])).unwrap();
    let resealed = gatehouse::reseal_keys(&app.config.keys, &app.config.database, &new_kek_path)
        .await
        .unwrap();
    assert_eq!(resealed, (2, 2), "two signing keys, two TOTP secrets");
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
    // The refresh-token secret was resealed, not replaced: a token rotated
    // before gets the very same successor from the new instance.
    let replayed = second.refresh(tokens.str("refresh_token")).await;
    replayed.assert_status(200);
    assert_eq!(replayed.str("refresh_token"), rotated.str("refresh_token"));
    let events = audit_events(&app, "keys_resealed").await;
    assert_eq!(events.len(), 1);
    // The second factor works with the new key, confirmed or waiting.
    let mfa_token = crate::mfa::mfa_token(&second, "bob").await;
    crate::mfa::with_otp(
        &second,
        &mfa_token,
        &crate::mfa::code(&second, &bob.secret, 0),
    )
    .await
    .assert_status(200);
    let code = crate::mfa::code(&second, waiting.str("secret"), 0);
    let carol = second.login("carol", crate::helpers::PASSWORD).await;
    crate::mfa::confirm(&second, carol.str("access_token"), &code)
        .await
        .assert_status(200);
}
