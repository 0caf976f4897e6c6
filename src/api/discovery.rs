//! What integrators need to verify tokens on their own: the JWKS (RFC 7517)
//! and the authorization server metadata (RFC 8414).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::ApiTags;
use crate::auth::grant::GrantType;
use crate::state::AppState;

/// How long clients may cache the JWKS, in seconds.
const JWKS_MAX_AGE: u32 = 300;

/// A public signing key (RFC 8037 OKP / Ed25519).
#[derive(Debug, Object)]
pub struct Jwk {
    /// `OKP`.
    pub kty: String,
    /// `Ed25519`.
    pub crv: String,
    /// The public key, base64url.
    pub x: String,
    /// Matches the `kid` header of the tokens it signed.
    pub kid: String,
    /// `EdDSA`.
    pub alg: String,
    /// `sig`.
    #[oai(rename = "use")]
    pub use_: String,
}

/// The public keys access tokens verify with: the current key, earlier keys
/// until the last token they signed has expired, and a next key that
/// `gatehouse keys rotate --activate-in` published ahead of its use. Empty
/// when tokens are signed with a shared HS256 secret, which is never
/// published.
#[derive(Debug, Object)]
pub struct JwkSet {
    pub keys: Vec<Jwk>,
}

/// The JWKS answer.
#[derive(ApiResponse)]
pub enum JwksReply {
    /// The public keys whose tokens verify now.
    #[oai(status = 200)]
    Ok(Json<JwkSet>, #[oai(header = "Cache-Control")] String),
}

/// RFC 8414 authorization server metadata.
#[derive(Debug, Object)]
pub struct ServerMetadata {
    /// The `iss` of every access token.
    pub issuer: String,
    /// RFC 6749 §3.1: Gatehouse's sign-in page (authorization code + PKCE).
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub revocation_endpoint: String,
    /// RFC 7662, for confidential clients (resource servers).
    pub introspection_endpoint: String,
    pub jwks_uri: String,
    pub grant_types_supported: Vec<String>,
    pub scopes_supported: Vec<String>,
    /// Empty: there is no authorization endpoint (no redirect flows in v1).
    pub response_types_supported: Vec<String>,
    /// PKCE (RFC 7636): `S256` only, and required.
    pub code_challenge_methods_supported: Vec<String>,
    /// RFC 9207: authorization responses carry `iss`.
    pub authorization_response_iss_parameter_supported: bool,
    /// `none` (public clients send their id alone), `client_secret_basic`
    /// and `client_secret_post` (confidential clients).
    pub token_endpoint_auth_methods_supported: Vec<String>,
    pub revocation_endpoint_auth_methods_supported: Vec<String>,
    /// Confidential clients only.
    pub introspection_endpoint_auth_methods_supported: Vec<String>,
}

/// How clients authenticate (RFC 6749 §2.3.1): public clients by their id
/// alone, confidential ones with their secret in Basic or in the body.
const AUTH_METHODS: [&str; 3] = ["none", "client_secret_basic", "client_secret_post"];

/// Discovery documents.
#[derive(Default)]
pub struct DiscoveryApi;

#[OpenApi(tag = "ApiTags::Discovery")]
impl DiscoveryApi {
    /// Public signing keys (JWKS)
    ///
    /// Verify access tokens without calling Gatehouse: pick the key whose
    /// `kid` matches the token header, and pin `alg` to `EdDSA`. After a key
    /// rotation a token may name a `kid` your cached copy lacks: fetch the
    /// JWKS again before refusing it (and rate-limit such refetches).
    #[oai(path = "/.well-known/jwks.json", method = "get", operation_id = "jwks")]
    async fn jwks(&self, state: Data<&AppState>) -> JwksReply {
        let ring = state.signing.tokens().ring();
        let keys = ring
            .published(state.clock.now())
            .filter_map(|key| {
                key.public_key().map(|public_key| Jwk {
                    kty: "OKP".into(),
                    crv: "Ed25519".into(),
                    x: URL_SAFE_NO_PAD.encode(public_key),
                    kid: key.kid().to_owned(),
                    alg: "EdDSA".into(),
                    use_: "sig".into(),
                })
            })
            .collect();
        JwksReply::Ok(
            Json(JwkSet { keys }),
            format!("public, max-age={JWKS_MAX_AGE}"),
        )
    }

    /// Authorization server metadata (RFC 8414)
    ///
    /// Where the token, revocation and key endpoints are, and which grants,
    /// scopes and client authentication methods the server supports, for
    /// OAuth2 libraries that configure themselves from the issuer.
    #[oai(
        path = "/.well-known/oauth-authorization-server",
        method = "get",
        operation_id = "serverMetadata"
    )]
    async fn metadata(&self, state: Data<&AppState>) -> Json<ServerMetadata> {
        let issuer = state.signing.tokens().issuer().to_owned();
        let base = issuer.trim_end_matches('/');
        let strings = |items: &[&str]| items.iter().map(|item| (*item).to_owned()).collect();
        Json(ServerMetadata {
            authorization_endpoint: format!("{base}/oauth/authorize"),
            token_endpoint: format!("{base}/oauth/token"),
            revocation_endpoint: format!("{base}/oauth/revoke"),
            introspection_endpoint: format!("{base}/oauth/introspect"),
            jwks_uri: format!("{base}/.well-known/jwks.json"),
            issuer,
            grant_types_supported: strings(&GrantType::NAMES),
            scopes_supported: state.clients.known_scopes().to_vec(),
            response_types_supported: strings(&["code"]),
            code_challenge_methods_supported: strings(&["S256"]),
            authorization_response_iss_parameter_supported: true,
            token_endpoint_auth_methods_supported: strings(&AUTH_METHODS),
            revocation_endpoint_auth_methods_supported: strings(&AUTH_METHODS),
            introspection_endpoint_auth_methods_supported: strings(&AUTH_METHODS[1..]),
        })
    }
}
