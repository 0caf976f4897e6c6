//! Registration and the caller's own account.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;

use crate::helpers::{PASSWORD, Store, TestApp, claims_of};
use crate::on_both_stores;

on_both_stores!(
    registering_returns_the_user_and_never_a_secret,
    registering_a_taken_username_is_a_conflict,
    usernames_are_unique_case_insensitively_and_shown_as_registered,
    registration_refuses_weak_passwords_with_the_reason,
    registration_refuses_malformed_usernames_and_emails,
    me_returns_the_caller,
    me_without_a_token_is_401_with_a_challenge_that_names_no_error,
    me_with_a_tampered_token_is_401,
    me_with_an_expired_token_is_401,
    me_with_alg_none_is_401,
    me_with_a_token_signed_by_hmac_over_the_public_key_is_401,
    me_with_a_refresh_token_in_place_of_the_access_token_is_401,
    me_with_a_token_without_the_profile_scope_is_403,
);

async fn registering_returns_the_user_and_never_a_secret(store: Store) {
    let app = TestApp::spawn(store).await;
    let reply = app
        .post_json(
            "/users",
            &json!({"username": "alice", "password": PASSWORD, "email": "alice@example.org"}),
        )
        .await;
    reply.assert_status(201);
    assert_eq!(reply.str("username"), "alice");
    assert_eq!(reply.str("email"), "alice@example.org");
    assert!(uuid::Uuid::parse_str(reply.str("id")).is_ok());
    assert!(chrono::DateTime::parse_from_rfc3339(reply.str("created_at")).is_ok());
    let mut fields: Vec<_> = reply.body.as_object().unwrap().keys().cloned().collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            "created_at",
            "email",
            "email_verified",
            "id",
            "mfa_enabled",
            "username"
        ]
    );
    assert_eq!(reply.body["email_verified"], false);
    assert_eq!(reply.body["mfa_enabled"], false);
    assert!(!reply.body.to_string().contains("argon2"));

    let without_email = app.register("bob", PASSWORD).await;
    without_email.assert_status(201);
    assert!(without_email.body["email"].is_null());
}

async fn registering_a_taken_username_is_a_conflict(store: Store) {
    let app = TestApp::spawn(store).await;
    app.register("alice", PASSWORD).await.assert_status(201);
    app.register("alice", "another password entirely")
        .await
        .assert_error(409, "username_taken");
    // The first account is intact.
    app.login("alice", PASSWORD).await.assert_status(200);
    app.login("alice", "another password entirely")
        .await
        .assert_error(400, "invalid_grant");
}

async fn usernames_are_unique_case_insensitively_and_shown_as_registered(store: Store) {
    let app = TestApp::spawn(store).await;
    app.register("Alice", PASSWORD).await.assert_status(201);
    for variant in ["alice", "ALICE", "aLiCe"] {
        app.register(variant, "a different password")
            .await
            .assert_error(409, "username_taken");
    }
    // Full-width letters are not registrable (ASCII only)...
    app.register("ａｌｉｃｅ２", PASSWORD)
        .await
        .assert_error(400, "invalid_username");
    // ...but any case or Unicode-compatible form logs in as the one account.
    for variant in ["Alice", "alice", "ALICE", "ａｌｉｃｅ"] {
        let tokens = app.login(variant, PASSWORD).await;
        tokens.assert_status(200);
        assert_eq!(
            app.me(tokens.str("access_token")).await.str("username"),
            "Alice"
        );
    }
}

async fn registration_refuses_weak_passwords_with_the_reason(store: Store) {
    let app = TestApp::spawn(store).await;
    for weak in [
        "short",
        "",
        "aaaaaaaaaaaa",
        "alicesmith",
        "password1",
        "qwertyuiop",
        "alicesmith2024",
    ] {
        let reply = app.register("alicesmith", weak).await;
        reply.assert_error(400, "invalid_password");
    }
    let too_long = "ab".repeat(513);
    let reply = app.register("alicesmith", &too_long).await;
    reply.assert_error(400, "invalid_password");
    assert!(reply.str("message").contains("1024"));
    // Passwords are taken exactly: spaces and case are significant.
    app.register("alicesmith", "  Padded Password  ")
        .await
        .assert_status(201);
    app.login("alicesmith", "Padded Password")
        .await
        .assert_error(400, "invalid_grant");
    app.login("alicesmith", "  padded password  ")
        .await
        .assert_error(400, "invalid_grant");
    app.login("alicesmith", "  Padded Password  ")
        .await
        .assert_status(200);
}

async fn registration_refuses_malformed_usernames_and_emails(store: Store) {
    let app = TestApp::spawn(store).await;
    for bad in [
        "",
        "has space",
        "semi;colon",
        "quote'",
        "élodie",
        "Ωmega",
        &"x".repeat(65),
    ] {
        app.register(bad, PASSWORD)
            .await
            .assert_error(400, "invalid_username");
    }
    for bad in ["", "no-at-sign", "two@@example.org", "a b@example.org"] {
        let reply = app
            .post_json(
                "/users",
                &json!({"username": "carol", "password": PASSWORD, "email": bad}),
            )
            .await;
        reply.assert_error(400, "invalid_email");
    }
    app.register("carol", PASSWORD).await.assert_status(201);
}

async fn me_returns_the_caller(store: Store) {
    let app = TestApp::spawn(store).await;
    let tokens = app.user_with_tokens("alice").await;
    let me = app.me(tokens.str("access_token")).await;
    me.assert_status(200);
    assert_eq!(me.str("username"), "alice");
    assert_eq!(me.str("id"), claims_of(tokens.str("access_token"))["sub"]);
}

async fn me_without_a_token_is_401_with_a_challenge_that_names_no_error(store: Store) {
    let app = TestApp::spawn(store).await;
    // No credentials, or credentials in another scheme: RFC 6750 §3.1 says
    // the challenge should then carry no error code.
    let basic = [("Authorization", "Basic YTpi")];
    for headers in [&[][..], &basic[..]] {
        let mut request = app.client.get("/users/me");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let reply = crate::helpers::Reply::read(request.send().await).await;
        reply.assert_error(401, "invalid_token");
        let challenge = reply
            .header("www-authenticate")
            .expect("a WWW-Authenticate header");
        assert_eq!(challenge, r#"Bearer realm="gatehouse""#, "{headers:?}");
    }
    // A Bearer token that is refused names the error.
    let reply = app.me("not-a-jwt").await;
    reply.assert_error(401, "invalid_token");
    let challenge = reply.header("www-authenticate").unwrap();
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert!(
        challenge.contains(r#"error="invalid_token""#),
        "{challenge}"
    );
}

async fn me_with_a_tampered_token_is_401(store: Store) {
    let app = TestApp::spawn(store).await;
    let tokens = app.user_with_tokens("alice").await;
    let jwt = tokens.str("access_token");
    let mut parts: Vec<String> = jwt.split('.').map(str::to_owned).collect();
    // Claim to be someone else, keeping the signature.
    let mut claims = claims_of(jwt);
    claims["sub"] = json!(uuid::Uuid::new_v4().to_string());
    parts[1] = URL_SAFE_NO_PAD.encode(claims.to_string());
    let reply = app.me(&parts.join(".")).await;
    reply.assert_error(401, "invalid_token");
    assert!(reply.header("www-authenticate").is_some());
    // Flip one character of the signature.
    let mut signature = jwt.rsplit('.').next().unwrap().to_owned().into_bytes();
    signature[5] = if signature[5] == b'A' { b'B' } else { b'A' };
    let forged = format!(
        "{}.{}",
        jwt.rsplit_once('.').unwrap().0,
        String::from_utf8(signature).unwrap()
    );
    app.me(&forged).await.assert_error(401, "invalid_token");
}

async fn me_with_an_expired_token_is_401(store: Store) {
    let app = TestApp::spawn(store).await;
    let tokens = app.user_with_tokens("alice").await;
    let claims = claims_of(tokens.str("access_token"));
    let now = app.state.clock.now();
    let ttl = app.config.access_ttl;
    let expired = app.sign_access_token(
        &claims,
        "profile",
        now - ttl - std::time::Duration::from_secs(1),
    );
    app.me(&expired).await.assert_error(401, "invalid_token");
    // A token of the same user and session within its lifetime works: the expiry is what counts.
    let fresh = app.sign_access_token(
        &claims,
        "profile",
        now - ttl + std::time::Duration::from_secs(60),
    );
    app.me(&fresh).await.assert_status(200);
}

async fn me_with_alg_none_is_401(store: Store) {
    let app = TestApp::spawn(store).await;
    let tokens = app.user_with_tokens("alice").await;
    let payload = tokens
        .str("access_token")
        .split('.')
        .nth(1)
        .unwrap()
        .to_owned();
    let kid = app.state.signing.signing_key().kid().to_owned();
    for alg in ["none", "None", "NONE"] {
        let header = json!({"alg": alg, "typ": "at+jwt", "kid": kid});
        let unsigned = format!("{}.{payload}.", URL_SAFE_NO_PAD.encode(header.to_string()));
        app.me(&unsigned).await.assert_error(401, "invalid_token");
    }
}

async fn me_with_a_token_signed_by_hmac_over_the_public_key_is_401(store: Store) {
    let app = TestApp::spawn(store).await;
    let tokens = app.user_with_tokens("alice").await;
    let claims = claims_of(tokens.str("access_token"));
    let keys = app.state.signing.signing_key();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.typ = Some("at+jwt".into());
    header.kid = Some(keys.kid().to_owned());
    let raw = keys.public_key().expect("an Ed25519 key");
    let public_key = URL_SAFE_NO_PAD.encode(raw);
    for secret in [raw.as_slice(), public_key.as_bytes()] {
        let confused = jsonwebtoken::encode(
            &header,
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret).unwrap(),
        )
        .unwrap();
        app.me(&confused).await.assert_error(401, "invalid_token");
    }
}

async fn me_with_a_refresh_token_in_place_of_the_access_token_is_401(store: Store) {
    let app = TestApp::spawn(store).await;
    let tokens = app.user_with_tokens("alice").await;
    app.me(tokens.str("refresh_token"))
        .await
        .assert_error(401, "invalid_token");
}

async fn me_with_a_token_without_the_profile_scope_is_403(store: Store) {
    let app = TestApp::spawn(store).await;
    let tokens = app.user_with_tokens("alice").await;
    let claims = claims_of(tokens.str("access_token"));
    let now = app.state.clock.now();
    let unscoped = app.sign_access_token(&claims, "", now);
    let reply = app.me(&unscoped).await;
    reply.assert_error(403, "insufficient_scope");
    assert!(
        reply
            .header("www-authenticate")
            .unwrap()
            .contains(r#"error="insufficient_scope""#)
    );
}
