//! Access tokens: JWTs (RFC 9068 profile) signed with Ed25519 (default) or,
//! by configuration, HS256 with a shared secret.
//!
//! Verification pins everything an attacker could steer: the algorithm
//! (only the configured one, so `none` and HMAC-with-the-public-key
//! confusion fail), the
//! `typ` header (jsonwebtoken does not check it), the key id, issuer,
//! audience, expiry and not-before, with no leeway unless configured.

use crate::clock::UnixMillis;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use jsonwebtoken::{Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::keys::KeyRing;
use crate::ids::{SessionId, UserId};
use crate::metrics::CacheStats;

/// The `typ` header of an access token (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    /// The user id.
    pub sub: UserId,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub jti: String,
    /// The session (refresh-token family) the token was issued for.
    pub sid: SessionId,
    /// Space-separated scopes.
    pub scope: String,
    /// The client the session was granted to: the login's `client_id`, or
    /// `--default-client-id` (tokens from older versions may lack it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// When the user last gave their password (RFC 9068 §2.2.1): the
    /// session's login, which refreshes keep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    /// How the user authenticated (RFC 8176): the session's login methods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amr: Vec<String>,
}

/// The claims of an access token a client was granted for itself (the
/// client credentials grant): `sub` and `client_id` both name the client,
/// and there is no session (so no `sid`), no `auth_time` and no `amr`.
/// Operations on a user's account refuse it: it is not an [`AccessClaims`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientClaims {
    pub iss: String,
    pub aud: String,
    /// The client id.
    pub sub: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub jti: String,
    pub scope: String,
    pub client_id: String,
}

/// The claims of any access token Gatehouse issues: a user's or a client's.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum AnyClaims {
    User(AccessClaims),
    Client(ClientClaims),
}

/// The times every kind of claims carries, checked at verification.
pub trait Times {
    fn exp(&self) -> i64;
    fn nbf(&self) -> i64;
}

impl Times for AccessClaims {
    fn exp(&self) -> i64 {
        self.exp
    }
    fn nbf(&self) -> i64 {
        self.nbf
    }
}

impl Times for ClientClaims {
    fn exp(&self) -> i64 {
        self.exp
    }
    fn nbf(&self) -> i64 {
        self.nbf
    }
}

impl Times for AnyClaims {
    fn exp(&self) -> i64 {
        match self {
            Self::User(claims) => claims.exp,
            Self::Client(claims) => claims.exp,
        }
    }
    fn nbf(&self) -> i64 {
        match self {
            Self::User(claims) => claims.nbf,
            Self::Client(claims) => claims.nbf,
        }
    }
}

/// Who an access token is for: its session, as the login made it.
#[derive(Debug)]
pub struct Subject<'a> {
    pub user_id: &'a UserId,
    pub session_id: &'a SessionId,
    pub scope: String,
    pub client_id: &'a str,
    /// When the user gave their password: the session's start.
    pub authenticated_at: UnixMillis,
    /// How the user authenticated (RFC 8176 values, space-separated), as
    /// the session keeps it.
    pub amr: &'a str,
}

/// Why an access token was refused. Logged at debug level; clients only
/// ever see a generic `invalid_token`.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("malformed token or header: {0}")]
    Malformed(jsonwebtoken::errors::Error),
    #[error("wrong token type {0:?}")]
    WrongType(Option<String>),
    #[error("unknown key id {0:?}")]
    UnknownKey(Option<String>),
    #[error("rejected: {0}")]
    Rejected(jsonwebtoken::errors::Error),
    #[error("expired")]
    Expired,
    #[error("not valid yet (nbf)")]
    NotYetValid,
}

/// How many verified tokens [`AccessTokens`] remembers (about 80 bytes
/// each): one per active session, and then some.
pub const VERIFIED_TOKENS_KEPT: usize = 250_000;

/// Issues and verifies access tokens.
pub struct AccessTokens {
    /// Swapped whole when the keys are reloaded; readers clone the `Arc`.
    ring: RwLock<Arc<KeyRing>>,
    issuer: String,
    audience: String,
    ttl: Duration,
    leeway: Duration,
    validation: Validation,
    /// The SHA-256 of every token whose signature and claims verified
    /// lately. A client presents the same token on each request for its
    /// whole lifetime; presented again, it costs a hash instead of an
    /// Ed25519 verification. Only the exact bytes that verified match, and
    /// what can change (the clock against `exp` and `nbf`, the key still
    /// being in the ring) is checked on every use. Evicts the least useful
    /// past [`VERIFIED_TOKENS_KEPT`].
    verified: quick_cache::sync::Cache<[u8; 32], ()>,
    verified_hits: AtomicU64,
    verified_misses: AtomicU64,
}

impl std::fmt::Debug for AccessTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessTokens")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("ttl", &self.ttl)
            .field("verified", &self.verified.len())
            .finish_non_exhaustive()
    }
}

impl AccessTokens {
    pub fn new(
        ring: impl Into<KeyRing>,
        issuer: String,
        audience: String,
        ttl: Duration,
        leeway: Duration,
    ) -> Self {
        let ring = ring.into();
        let mut validation = Validation::new(ring.algorithm());
        validation.set_issuer(&[&issuer]);
        validation.set_audience(&[&audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "aud", "sub"]);
        // Time is checked below against the caller's `now`, the app's
        // clock, not against jsonwebtoken's own reading of the wall clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = leeway.as_secs();
        Self {
            ring: RwLock::new(Arc::new(ring)),
            issuer,
            audience,
            ttl,
            leeway,
            validation,
            verified: quick_cache::sync::Cache::new(VERIFIED_TOKENS_KEPT),
            verified_hits: AtomicU64::new(0),
            verified_misses: AtomicU64::new(0),
        }
    }

    /// Tokens verified from the cache, and by their signature, since start.
    pub fn verified_stats(&self) -> CacheStats {
        CacheStats {
            hits: self.verified_hits.load(Ordering::Relaxed),
            misses: self.verified_misses.load(Ordering::Relaxed),
        }
    }

    /// The `iss` of issued tokens.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The lifetime of a new access token.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The keys as they are now.
    pub fn ring(&self) -> Arc<KeyRing> {
        self.ring
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the keys (after a reload). The algorithm stays pinned by
    /// the validation whatever the ring holds; reloads only ever bring
    /// Ed25519 keys, like the ring they replace.
    pub fn replace_ring(&self, ring: KeyRing) {
        debug_assert_eq!(ring.algorithm(), self.validation.algorithms[0]);
        *self.ring.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(ring);
    }

    /// Signs an access token for `subject`, issued at `now` (the claims
    /// keep whole seconds).
    pub fn issue(
        &self,
        subject: &Subject<'_>,
        now: UnixMillis,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let now_secs = now.as_secs();
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: subject.user_id.to_owned(),
            iat: now_secs,
            nbf: now_secs,
            exp: now_secs + i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX / 2),
            jti: uuid::Uuid::new_v4().to_string(),
            sid: subject.session_id.to_owned(),
            scope: subject.scope.clone(),
            client_id: Some(subject.client_id.to_owned()),
            auth_time: Some(subject.authenticated_at.as_secs()),
            amr: subject.amr.split_whitespace().map(str::to_owned).collect(),
        };
        self.sign(&claims, now)
    }

    /// Signs an access token for the client `client_id` itself, with
    /// `scope`, issued at `now`.
    pub fn issue_for_client(
        &self,
        client_id: &str,
        scope: &str,
        now: UnixMillis,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let now_secs = now.as_secs();
        let claims = ClientClaims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: client_id.to_owned(),
            iat: now_secs,
            nbf: now_secs,
            exp: now_secs + i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX / 2),
            jti: uuid::Uuid::new_v4().to_string(),
            scope: scope.to_owned(),
            client_id: client_id.to_owned(),
        };
        self.sign(&claims, now)
    }

    fn sign(
        &self,
        claims: &impl Serialize,
        now: UnixMillis,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let ring = self.ring();
        let key = ring.signing(now);
        let mut header = Header::new(key.algorithm());
        header.typ = Some(ACCESS_TOKEN_TYP.to_owned());
        header.kid = Some(key.kid().to_owned());
        key.sign(&header, claims)
    }

    /// Verifies a user's access token at `now` (to the second, as its
    /// claims count) and returns its claims; a client's token is refused.
    pub fn verify(&self, token: &str, now: UnixMillis) -> Result<AccessClaims, TokenError> {
        self.verify_as(token, now)
    }

    /// Verifies any access token Gatehouse issues, a user's or a client's.
    pub fn verify_any(&self, token: &str, now: UnixMillis) -> Result<AnyClaims, TokenError> {
        self.verify_as(token, now)
    }

    fn verify_as<T: serde::de::DeserializeOwned + Times>(
        &self,
        token: &str,
        now: UnixMillis,
    ) -> Result<T, TokenError> {
        let now_secs = now.as_secs();
        let header = jsonwebtoken::decode_header(token).map_err(TokenError::Malformed)?;
        let typ_ok = header.typ.as_deref().is_some_and(|typ| {
            typ.eq_ignore_ascii_case(ACCESS_TOKEN_TYP)
                || typ.eq_ignore_ascii_case("application/at+jwt")
        });
        if !typ_ok {
            return Err(TokenError::WrongType(header.typ));
        }
        let ring = self.ring();
        let Some(key) = header.kid.as_deref().and_then(|kid| {
            ring.verifying(kid, UnixMillis::from_millis(now_secs.saturating_mul(1000)))
        }) else {
            return Err(TokenError::UnknownKey(header.kid));
        };
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let claims = if self.verified.get(&digest).is_some() {
            self.verified_hits.fetch_add(1, Ordering::Relaxed);
            jsonwebtoken::dangerous::insecure_decode_claims::<T>(token)
                .map_err(TokenError::Rejected)?
        } else {
            let claims = jsonwebtoken::decode::<T>(token, &key.decoding, &self.validation)
                .map_err(TokenError::Rejected)?
                .claims;
            self.verified.insert(digest, ());
            self.verified_misses.fetch_add(1, Ordering::Relaxed);
            claims
        };
        // RFC 7519 §4.1.4: not accepted *on or after* exp; §4.1.5: not
        // before nbf.
        let leeway = i64::try_from(self.leeway.as_secs()).unwrap_or(0);
        if claims.exp().saturating_add(leeway) <= now_secs {
            return Err(TokenError::Expired);
        }
        if claims.nbf().saturating_sub(leeway) > now_secs {
            return Err(TokenError::NotYetValid);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests;
