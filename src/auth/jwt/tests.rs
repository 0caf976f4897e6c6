//! Issuing and verifying access tokens: claims, expiry, keys, the
//! verified-token cache.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;

use super::*;
use crate::auth::keys::TokenKey;

fn tokens() -> AccessTokens {
    AccessTokens::new(
        TokenKey::generate(),
        "http://issuer.test".into(),
        "gatehouse".into(),
        Duration::from_secs(900),
        Duration::ZERO,
    )
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// `seconds` after the epoch.
fn secs(seconds: i64) -> UnixMillis {
    UnixMillis::from_millis(seconds * 1000)
}

fn grant<'a>(user_id: &'a UserId, session_id: &'a SessionId) -> Subject<'a> {
    Subject {
        user_id,
        session_id,
        scope: "profile".into(),
        client_id: "web",
        authenticated_at: secs(now() - 3600),
        amr: "pwd",
    }
}

#[test]
fn a_signed_token_verifies_with_its_claims() {
    let tokens = tokens();
    let jwt = tokens
        .issue(&grant(&"user-1".into(), &"session-1".into()), secs(now()))
        .unwrap();
    let claims = tokens.verify(&jwt, secs(now())).unwrap();
    assert_eq!(
        (claims.sub.as_str(), claims.sid.as_str()),
        ("user-1", "session-1")
    );
    assert_eq!(claims.client_id.as_deref(), Some("web"));
    assert_eq!(claims.auth_time, Some(now() - 3600));
    assert_eq!(claims.amr, ["pwd"]);
    assert_eq!(claims.exp - claims.iat, 900);
    let header = jsonwebtoken::decode_header(&jwt).unwrap();
    assert_eq!(header.alg, Algorithm::EdDSA);
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    assert_eq!(
        header.kid.as_deref(),
        Some(tokens.ring().signing(secs(now())).kid())
    );
}

#[test]
fn a_token_is_refused_from_the_second_it_expires() {
    let tokens = tokens();
    // Expires 10 s from now by the wall clock (which jsonwebtoken also
    // checks), so only the `now` given to verify decides.
    let issued = now() - 890;
    let jwt = tokens
        .issue(&grant(&"u".into(), &"s".into()), secs(issued))
        .unwrap();
    assert!(matches!(
        tokens.verify(&jwt, secs(issued + 900)),
        Err(TokenError::Expired)
    ));
    assert!(tokens.verify(&jwt, secs(issued + 899)).is_ok());
}

#[test]
fn a_token_verified_before_still_expires() {
    let tokens = tokens();
    let issued = now() - 890;
    let jwt = tokens
        .issue(&grant(&"u".into(), &"s".into()), secs(issued))
        .unwrap();
    assert!(tokens.verify(&jwt, secs(issued + 899)).is_ok());
    assert_eq!(tokens.verified.len(), 1);
    assert!(matches!(
        tokens.verify(&jwt, secs(issued + 900)),
        Err(TokenError::Expired)
    ));
}

#[test]
fn a_token_verified_before_is_refused_once_its_key_leaves_the_ring() {
    let tokens = tokens();
    let jwt = tokens
        .issue(&grant(&"u".into(), &"s".into()), secs(now()))
        .unwrap();
    assert!(tokens.verify(&jwt, secs(now())).is_ok());
    tokens.replace_ring(TokenKey::generate().into());
    assert!(matches!(
        tokens.verify(&jwt, secs(now())),
        Err(TokenError::UnknownKey(_))
    ));
}

#[test]
fn a_token_altered_after_it_verified_is_refused() {
    let tokens = tokens();
    let jwt = tokens
        .issue(&grant(&"u".into(), &"s".into()), secs(now()))
        .unwrap();
    assert!(tokens.verify(&jwt, secs(now())).is_ok());
    // Same header and signature, another subject.
    let mut parts: Vec<String> = jwt.split('.').map(str::to_owned).collect();
    let claims = jsonwebtoken::dangerous::insecure_decode_claims::<AccessClaims>(&jwt).unwrap();
    let forged = AccessClaims {
        sub: "someone-else".into(),
        ..claims
    };
    parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
    assert!(matches!(
        tokens.verify(&parts.join("."), secs(now())),
        Err(TokenError::Rejected(_))
    ));
}

#[test]
fn a_token_from_another_key_is_refused() {
    let jwt = tokens()
        .issue(&grant(&"u".into(), &"s".into()), secs(now()))
        .unwrap();
    assert!(matches!(
        tokens().verify(&jwt, secs(now())),
        Err(TokenError::UnknownKey(_))
    ));
}
