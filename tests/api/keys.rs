//! Signing keys: HS256 with a shared secret, by configuration.

use std::time::Duration;

use gatehouse::auth::jwt::AccessTokens;
use gatehouse::auth::keys::TokenKey;
use gatehouse::config::JwtAlgorithm;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};

use crate::helpers::{Store, TestApp, claims_of, grant};
use crate::on_both_stores;

const SECRET: &str = "0123456789abcdef0123456789abcdef-shared";

on_both_stores!(
    with_hs256_access_tokens_are_signed_with_the_shared_secret,
    an_hs256_server_refuses_tokens_signed_any_other_way,
    tokens_signed_with_the_real_key_but_wrong_claims_or_type_are_refused,
);

async fn hs256_app(store: Store) -> TestApp {
    TestApp::spawn_with(store, |config| {
        let path = config.database.data_dir.join("hs256.secret");
        std::fs::write(&path, format!("{SECRET}\n")).unwrap();
        config.keys.jwt_algorithm = JwtAlgorithm::Hs256;
        config.keys.hs256_secret_file = Some(path);
    })
    .await
}

async fn with_hs256_access_tokens_are_signed_with_the_shared_secret(store: Store) {
    let app = hs256_app(store).await;
    // The secret is never published.
    let jwks =
        crate::helpers::Reply::read(app.client.get("/.well-known/jwks.json").send().await).await;
    assert_eq!(jwks.body["keys"], serde_json::json!([]));
    let tokens = app.user_with_tokens("alice").await;
    let jwt = tokens.str("access_token");
    let header = jsonwebtoken::decode_header(jwt).unwrap();
    assert_eq!(header.alg, Algorithm::HS256);
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    assert!(
        !header.kid.unwrap().contains("0123"),
        "the kid does not reveal the secret"
    );
    // Anyone holding the secret verifies it independently.
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_issuer(&["http://gatehouse.test"]);
    validation.set_audience(&["gatehouse"]);
    let key = DecodingKey::from_secret(SECRET.as_bytes()).unwrap();
    let claims = jsonwebtoken::decode::<serde_json::Value>(jwt, &key, &validation)
        .unwrap()
        .claims;
    assert_eq!(claims["sid"], claims_of(jwt)["sid"]);
    app.me(jwt).await.assert_status(200);
    let refreshed = app.refresh(tokens.str("refresh_token")).await;
    app.me(refreshed.str("access_token"))
        .await
        .assert_status(200);
}

async fn an_hs256_server_refuses_tokens_signed_any_other_way(store: Store) {
    let app = hs256_app(store).await;
    let tokens = app.user_with_tokens("alice").await;
    let claims = claims_of(tokens.str("access_token"));
    let sub = &claims["sub"].as_str().unwrap().into();
    let now = app.state.clock.now();
    // An Ed25519 token with the right issuer and audience.
    let eddsa = AccessTokens::new(
        TokenKey::generate(),
        "http://gatehouse.test".into(),
        "gatehouse".into(),
        Duration::from_secs(900),
        Duration::ZERO,
    );
    let foreign = eddsa.issue(&grant(sub, &"sid".into()), now).unwrap();
    app.me(&foreign).await.assert_error(401, "invalid_token");
    // HS256 under another secret, with the server's own kid.
    let mut header = Header::new(Algorithm::HS256);
    header.typ = Some("at+jwt".into());
    header.kid = Some(app.state.signing.signing_key().kid().to_owned());
    let wrong_secret = EncodingKey::from_secret(b"another secret, also long enough!!").unwrap();
    let forged = jsonwebtoken::encode(&header, &claims, &wrong_secret).unwrap();
    app.me(&forged).await.assert_error(401, "invalid_token");
    // HS512 under the right secret: the algorithm is pinned, not just the key.
    header.alg = Algorithm::HS512;
    let right_secret = EncodingKey::from_secret(SECRET.as_bytes()).unwrap();
    let other_alg = jsonwebtoken::encode(&header, &claims, &right_secret).unwrap();
    app.me(&other_alg).await.assert_error(401, "invalid_token");
}

/// Tokens carrying a valid signature by the server's own key, but each with
/// one thing wrong: the signature alone must not be enough.
async fn tokens_signed_with_the_real_key_but_wrong_claims_or_type_are_refused(store: Store) {
    use ed25519_dalek::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _};

    let path = tempfile::NamedTempFile::new().unwrap().into_temp_path();
    let pem = ed25519_dalek::SigningKey::from_bytes(&[7; 32])
        .to_pkcs8_pem(Default::default())
        .unwrap();
    std::fs::write(&path, pem.as_bytes()).unwrap();
    let app = TestApp::spawn_with(store, |config| {
        config.keys.signing_key_file = Some(path.to_path_buf());
    })
    .await;
    let tokens = app.user_with_tokens("alice").await;
    let claims = claims_of(tokens.str("access_token"));
    let (sub, sid) = (
        &claims["sub"].as_str().unwrap().into(),
        &claims["sid"].as_str().unwrap().into(),
    );
    let now = app.state.clock.now();
    let signer = |issuer: &str, audience: &str| {
        let keys = TokenKey::load(&path).unwrap();
        AccessTokens::new(
            keys,
            issuer.into(),
            audience.into(),
            Duration::from_secs(900),
            Duration::ZERO,
        )
    };
    // The control: the real issuer and audience work.
    let genuine = signer("http://gatehouse.test", "gatehouse")
        .issue(&grant(sub, sid), now)
        .unwrap();
    app.me(&genuine).await.assert_status(200);

    let wrong_issuer = signer("http://evil.test", "gatehouse")
        .issue(&grant(sub, sid), now)
        .unwrap();
    app.me(&wrong_issuer)
        .await
        .assert_error(401, "invalid_token");
    let wrong_audience = signer("http://gatehouse.test", "another-api")
        .issue(&grant(sub, sid), now)
        .unwrap();
    app.me(&wrong_audience)
        .await
        .assert_error(401, "invalid_token");
    let not_yet_valid = signer("http://gatehouse.test", "gatehouse")
        .issue(&grant(sub, sid), now + Duration::from_secs(3600))
        .unwrap();
    app.me(&not_yet_valid)
        .await
        .assert_error(401, "invalid_token");

    // The right claims, but typed as something other than an access token.
    let pem = std::fs::read_to_string(&path).unwrap();
    let der = ed25519_dalek::SigningKey::from_pkcs8_pem(&pem)
        .unwrap()
        .to_pkcs8_der()
        .unwrap();
    let key = EncodingKey::from_ed_der(der.as_bytes());
    for typ in [Some("JWT"), Some("id_token+jwt"), None] {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(app.state.signing.signing_key().kid().to_owned());
        header.typ = typ.map(str::to_owned);
        let retyped = jsonwebtoken::encode(&header, &claims, &key).unwrap();
        app.me(&retyped).await.assert_error(401, "invalid_token");
    }
}
