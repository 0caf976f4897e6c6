//! JWKS and authorization server metadata: verifying tokens independently.

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use crate::helpers::{Reply, Store, TestApp};
use crate::on_both_stores;

on_both_stores!(
    a_token_verifies_with_the_published_jwks_alone,
    the_metadata_names_the_endpoints_and_what_they_support,
);

async fn a_token_verifies_with_the_published_jwks_alone(store: Store) {
    let app = TestApp::spawn(store).await;
    let tokens = app.user_with_tokens("alice").await;
    let reply = Reply::read(app.client.get("/.well-known/jwks.json").send().await).await;
    reply.assert_status(200);
    assert!(reply.header("cache-control").unwrap().contains("max-age="));
    let keys = reply.body["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    for private in ["d", "k", "p", "q"] {
        assert!(
            keys[0].get(private).is_none(),
            "no private material in the JWKS: {}",
            keys[0]
        );
    }
    // A third party: only the JWKS, the issuer and the audience.
    let jwks: JwkSet = serde_json::from_value(reply.body.clone()).unwrap();
    let jwt = tokens.str("access_token");
    let kid = jsonwebtoken::decode_header(jwt).unwrap().kid.unwrap();
    let jwk = jwks.find(&kid).expect("the token's kid is published");
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_issuer(&["http://gatehouse.test"]);
    validation.set_audience(&["gatehouse"]);
    let key = DecodingKey::from_jwk(jwk).unwrap();
    let claims = jsonwebtoken::decode::<Value>(jwt, &key, &validation)
        .unwrap()
        .claims;
    assert_eq!(claims["scope"], "profile");
}

async fn the_metadata_names_the_endpoints_and_what_they_support(store: Store) {
    let app = TestApp::spawn(store).await;
    let reply = Reply::read(
        app.client
            .get("/.well-known/oauth-authorization-server")
            .send()
            .await,
    )
    .await;
    reply.assert_status(200);
    let meta = &reply.body;
    assert_eq!(meta["issuer"], "http://gatehouse.test");
    assert_eq!(meta["token_endpoint"], "http://gatehouse.test/oauth/token");
    assert_eq!(
        meta["revocation_endpoint"],
        "http://gatehouse.test/oauth/revoke"
    );
    assert_eq!(
        meta["jwks_uri"],
        "http://gatehouse.test/.well-known/jwks.json"
    );
    assert_eq!(
        meta["introspection_endpoint"],
        "http://gatehouse.test/oauth/introspect"
    );
    assert_eq!(
        meta["grant_types_supported"],
        serde_json::json!([
            "authorization_code",
            "password",
            "refresh_token",
            "client_credentials",
            "urn:gatehouse:grant-type:mfa-otp",
            "urn:gatehouse:grant-type:mfa-recovery-code"
        ])
    );
    assert_eq!(
        meta["authorization_endpoint"],
        "http://gatehouse.test/oauth/authorize"
    );
    assert_eq!(
        meta["response_types_supported"],
        serde_json::json!(["code"])
    );
    assert_eq!(
        meta["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(meta["authorization_response_iss_parameter_supported"], true);
    assert_eq!(meta["scopes_supported"], serde_json::json!(["profile"]));
    assert_eq!(
        meta["token_endpoint_auth_methods_supported"],
        serde_json::json!(["none", "client_secret_basic", "client_secret_post"])
    );
    assert_eq!(
        meta["introspection_endpoint_auth_methods_supported"],
        serde_json::json!(["client_secret_basic", "client_secret_post"])
    );
}
